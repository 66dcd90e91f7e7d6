/* The run's journal (run_journal.h): transitions, tasks and log lines into
 * the run store's queue, counts for the progress line, times for --json.
 * Lua-free. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "log.h"
#include "map.h"
#include "redact.h"
#include "run_journal.h"

int lf_journal_init(lf_run_journal *j, int ntasks) {
  memset(j, 0, sizeof *j);
  j->off = 1; /* until lf_journal_begin */
  size_t n = ntasks > 0 ? (size_t)ntasks : 1;
  j->times = calloc(2 * n, sizeof *j->times);
  j->done = calloc(n, 1);
  j->counts.total = ntasks;
  if (!j->times || !j->done) {
    lf_journal_free(j);
    return -1;
  }
  return 0;
}

void lf_journal_free(lf_run_journal *j) {
  free(j->times);
  free(j->done);
  j->times = NULL;
  j->done = NULL;
}

/* Recording stopped (the store failed: disk full, read-only, corrupt ...):
 * one WARNING, and the run goes on unrecorded. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
/* Where log lines go now: changed under log_mu; read without it only by the
 * journal's own thread (the run's), which alone detaches it. */
static _Atomic(lf_run_journal *) log_journal;

static void stop_recording(lf_run_journal *j) {
  if (j->warned) return;
  pthread_mutex_lock(&log_mu); /* the log tap reads j->off on other threads */
  j->warned = j->off = 1;
  pthread_mutex_unlock(&log_mu);
  const char *why = j->store ? lf_store_failure(j->store) : NULL;
  lf_log(LF_LOG_WARNING, "luaflow.RunStore", "%s; the rest of this run is not recorded",
         why ? why : "the run store stopped recording");
}

void lf_journal_begin(lf_run_journal *j, const lf_store_run *run) {
  j->started = run->started;
  if (!j->store) return;
  j->rec = lf_store_begin_run(j->store, run);
  j->off = !j->rec;
  if (!j->rec) stop_recording(j);
}

/* A message as it may be stored: redacted; *allocated when it must be freed. */
static const char *redacted(const char *msg, int *allocated) {
  *allocated = 0;
  if (!msg || !lf_redact_any()) return msg;
  size_t n;
  char *out = lf_redact(msg, strlen(msg), &n, allocated);
  return out; /* NUL-terminated either way */
}

/* The name the store keeps for task run i: a mapped task's child is its
 * task's row, told apart by its map index (lf_map_index). */
static const char *stored_name(const lf_run *r, int i) {
  return i < r->ntasks ? lf_run_object(r, i)->name : lf_run_task(r, i)->obj.name;
}

void lf_journal_transition(lf_run *r, int i, const lf_state *old, const lf_state *next) {
  lf_run_journal *j = r->journal;
  double now = lf_now();
  if (i < 0) {
    if (!j->started) j->started = now;
    if (LF_IS(next, LF_FINISHED)) j->ended = now;
  } else if (i < r->ntasks) { /* (an object the run adds, a mapped child, has no slot) */
    if (next->kind == LF_RUNNING && !j->times[2 * i]) j->times[2 * i] = now;
    if (LF_IS(next, LF_FINISHED)) j->times[2 * i + 1] = now; /* the last one is its end */
    if (j->progress) {
      j->counts.running += (next->kind == LF_RUNNING) - (old->kind == LF_RUNNING);
      lf_progress_set(&j->counts);
    }
  }
  if (j->off) return;
  int allocated;
  const char *msg = redacted(next->message, &allocated);
  lf_store_transition t = {
      .index = lf_run_task_index(r, i) + 1,
      .map_index = i < 0 ? 0 : lf_map_index(r, i),
      .seq = i < 0 ? r->flow_transitions : r->task[i].transitions,
      .name = stored_name(r, i),
      .old_state = (lf_kind)old->kind,
      .new_state = (lf_kind)next->kind,
      .message = msg,
      .time = now,
  };
  int rc = lf_store_record_transition(j->rec, &t);
  if (allocated) free((char *)msg);
  if (rc != 0 || j->log_failed) stop_recording(j);
}

/* Task run i's final record, in state s (a mapped task's child: a row of
 * its task's, with its map index and no times). */
static void record_task(lf_run *r, int i, const lf_state *s, int started) {
  lf_run_journal *j = r->journal;
  int child = i >= r->ntasks;
  if (!child) j->done[i] = 1;
  if (j->off) return;
  int allocated;
  const char *msg = redacted(s->message, &allocated);
  lf_store_task t = {
      .index = lf_run_task_index(r, i) + 1,
      .map_index = lf_map_index(r, i),
      .name = stored_name(r, i),
      .state = (lf_kind)s->kind,
      .message = msg,
      .run_count = started ? r->task[i].attempt : 0,
      .started = child ? 0 : j->times[2 * i],
      .ended = child ? 0 : j->times[2 * i + 1],
      .result_stored = 1,
  };
  if (s->has_result && j->result_json)
    t.result_stored = j->result_json(j->result_ud, r, i, s, &t.result, &t.result_len);
  int rc = lf_store_record_task(j->rec, &t);
  if (allocated) free((char *)msg);
  if (rc != 0) stop_recording(j);
}

void lf_journal_task_done(lf_run *r, int i) {
  lf_run_journal *j = r->journal;
  if (i >= r->ntasks) { /* a mapped task's child: its own row, not counted */
    record_task(r, i, r->task[i].state, 1);
    return;
  }
  if (j->done[i]) return;
  if (!j->times[2 * i + 1]) j->times[2 * i + 1] = lf_now();
  const lf_state *s = r->task[i].state;
  if (j->progress) {
    j->counts.done++;
    j->counts.failed += LF_IS(s, LF_FAILED);
    lf_progress_set(&j->counts);
  }
  record_task(r, i, s, 1);
}

void lf_journal_task_restored(lf_run *r, int i) {
  lf_run_journal *j = r->journal;
  j->counts.done++;
  record_task(r, i, r->task[i].state, 1);
}

void lf_journal_end(lf_run *r, int kind, const char *message, int exit_code) {
  lf_run_journal *j = r->journal;
  double now = lf_now();
  if (!j->ended) j->ended = now;
  for (int i = 0; i < r->ntasks; i++) {
    if (j->done[i]) continue;
    lf_state *s = lf_run_final_state(r, i);
    if (!s) continue; /* out of memory: the task's transitions tell */
    record_task(r, i, s, (r->task[i].flags & LF_TASK_STARTED) != 0);
  }
  for (int c = r->ntasks; c < r->ntasks + lf_map_nkids(r); c++) /* children not done */
    if (!(r->task[c].flags & LF_TASK_FINISHED))
      record_task(r, c, r->task[c].state, (r->task[c].flags & LF_TASK_STARTED) != 0);
  if (j->progress) lf_progress_set(&j->counts);
  if (!j->rec) return; /* ended even when recording stopped: the store frees it */
  const lf_state *fs = r->flow_state;
  if (kind < 0 && fs) {
    kind = fs->kind;
    message = fs->message;
  } else if (kind < 0) {
    kind = LF_FAILED;
  }
  int allocated;
  const char *msg = redacted(message, &allocated);
  lf_store_end_run(j->rec, j->ended, (lf_kind)kind, msg, exit_code);
  if (allocated) free((char *)msg);
  j->rec = NULL;
}

/* ---- log lines ---- */

void lf_journal_note(lf_run *r, int level, const char *logger, const char *message) {
  lf_run_journal *j = r->journal;
  if (!j || j->off || !message) return;
  int allocated;
  const char *msg = redacted(message, &allocated);
  lf_store_log l = {lf_now(), level, logger, msg, strlen(msg)};
  int rc = lf_store_record_log(j->rec, &l);
  if (allocated) free((char *)msg);
  if (rc != 0) stop_recording(j);
}

static void tap_into(lf_run_journal *j, int level, const char *logger, const char *msg,
                     size_t len, double time) {
  if (j && j->rec && !j->off &&
      !atomic_load_explicit(&j->log_failed, memory_order_relaxed)) {
    lf_store_log l = {time, level, logger, msg, len};
    if (lf_store_record_log(j->rec, &l) != 0)
      atomic_store_explicit(&j->log_failed, 1, memory_order_relaxed);
  }
}

static void log_tap(int level, const char *logger, const char *msg, size_t len,
                    double time) {
  /* The run's own thread logs most lines: it needs no lock, as only it
   * detaches its journal or stops its recording. */
  lf_run_journal *j = atomic_load_explicit(&log_journal, memory_order_acquire);
  if (j && pthread_equal(j->thread, pthread_self())) {
    tap_into(j, level, logger, msg, len, time);
    return;
  }
  pthread_mutex_lock(&log_mu);
  tap_into(atomic_load_explicit(&log_journal, memory_order_relaxed), level, logger, msg,
           len, time);
  pthread_mutex_unlock(&log_mu);
}

/* A forked child (a worker process) records nothing into its parent's
 * store: its log lines are not the run's to write. */
static void forked_child(void) {
  pthread_mutex_init(&log_mu, NULL); /* another thread may have held it */
  atomic_store_explicit(&log_journal, NULL, memory_order_relaxed);
}

void lf_journal_log_attach(lf_run_journal *j) {
  static int tapped;
  if (!tapped) {
    tapped = 1;
    pthread_atfork(NULL, NULL, forked_child);
    lf_log_set_tap(log_tap);
  }
  j->thread = pthread_self();
  pthread_mutex_lock(&log_mu);
  j->log_prev = atomic_load_explicit(&log_journal, memory_order_relaxed);
  atomic_store_explicit(&log_journal, j, memory_order_release);
  pthread_mutex_unlock(&log_mu);
}

void lf_journal_log_detach(lf_run_journal *j) {
  pthread_mutex_lock(&log_mu);
  if (atomic_load_explicit(&log_journal, memory_order_relaxed) == j)
    atomic_store_explicit(&log_journal, j->log_prev, memory_order_release);
  pthread_mutex_unlock(&log_mu);
}
