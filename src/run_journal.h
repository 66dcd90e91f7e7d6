/* The run's journal: what the scheduler tells about a run as it goes, for
 * the run store (store.h), the progress line (progress.h) and the times of
 * the --json lines. Lua-free.
 *
 * The scheduler calls it once per transition (lf_journal_transition) and
 * once when a task has finished for good (lf_journal_task_done), and only
 * when the run has a journal (r->journal, NULL otherwise: one branch). The
 * calls only append to the store's in-memory queue; the store's writer
 * thread commits. Everything recorded is redacted as log lines are.
 *
 * Log lines reach the run being recorded through a tap on the logger
 * (lf_journal_log_attach): any thread, in the order they are logged. */
#ifndef LF_RUN_JOURNAL_H
#define LF_RUN_JOURNAL_H

#include <pthread.h>
#include <stddef.h>
#include "progress.h"
#include "run.h"
#include "store.h"

/* The result of task i (state s) as JSON: sets *json and *len (NULL: a nil
 * result) and returns 1; returns 0 when it cannot be stored (not
 * encodable, or longer than LF_STORE_RESULT_MAX). *json lives until the next
 * call. */
typedef int (*lf_journal_result_fn)(void *ud, lf_run *r, int i, const lf_state *s,
                                    const char **json, size_t *len);

typedef struct lf_run_journal {
  lf_store *store;        /* NULL: not recording */
  lf_store_recorder *rec; /* the run's recorder (NULL: none) */
  int off;                /* nothing (more) is recorded */
  int warned;             /* recording failed and the WARNING was logged */
  int progress;           /* the progress line shows this run's counts */
  double started, ended;  /* the flow's first and last transitions (0: none) */
  double *times;          /* task i: times[2i] first Running, times[2i+1] done */
  unsigned char *done;    /* task i's final record is written */
  lf_progress_counts counts;
  lf_journal_result_fn result_json;
  void *result_ud;
  struct lf_run_journal *log_prev; /* the journal the log lines went to before */
  _Atomic int log_failed;          /* a log line could not be recorded */
  pthread_t thread;                /* the run's, which attached the log tap */
} lf_run_journal;

/* Sets j up for a run of ntasks tasks (j->store, progress and result_json
 * are the caller's to set). 0, or -1 when out of memory. */
int lf_journal_init(lf_run_journal *j, int ntasks);
/* Starts recording run into j->store (the run's id, flow, started ...); on
 * failure logs the one WARNING and the run goes on unrecorded. */
void lf_journal_begin(lf_run_journal *j, const lf_store_run *run);
void lf_journal_free(lf_run_journal *j);

/* Object i (-1 the flow) moved from old to next. */
void lf_journal_transition(lf_run *r, int i, const lf_state *old, const lf_state *next);
/* Task i reached its final state (r->task[i].state). */
void lf_journal_task_done(lf_run *r, int i);
/* Task i keeps state s from an earlier run (a restart): recorded as done. */
void lf_journal_task_restored(lf_run *r, int i);
/* The run is over: tasks not recorded yet are recorded with their final
 * state, then the run with the flow's state (or `kind`/`message` when the
 * run ended with an error: kind >= 0), and exit_code (-1: none). */
void lf_journal_end(lf_run *r, int kind, const char *message, int exit_code);

/* Records a line in the run's log, with the run, without writing it to
 * stderr: for facts the store keeps that the terminal does not show. A line
 * logged with lf_log during the run is recorded anyway (the log tap), as the
 * WARNING of a deadline that passes (deadline.c) is: do not note it twice.
 * Engine thread; nothing happens when the run has no journal. */
void lf_journal_note(lf_run *r, int level, const char *logger, const char *message);

/* Log lines go to j's recorder from now on, until lf_journal_log_detach(j)
 * puts back the one before (runs nest). */
void lf_journal_log_attach(lf_run_journal *j);
void lf_journal_log_detach(lf_run_journal *j);

/* run_restore.c: task i starts the run finished in state s (a restart keeps
 * what succeeded): no transition, no handler; its downstream tasks see it
 * finished. Before the run begins. */
void lf_run_restore(lf_run *r, int i, lf_state *s);

#endif
