/* The run store: every flow run, task, transition and log line remembered in
 * an embedded database (SQLite; a second backend can implement
 * store_backend.h). Lua-free.
 *
 * Recording never slows the engine: the lf_store_record_* calls copy their
 * already-redacted strings into memory and return. The thread that began a
 * run appends to that run's own lane, without a lock; other threads append
 * to a queue under one mutex (no malloc per record once the blocks are
 * warm). A writer thread takes the queue and what every lane has published
 * each flush interval (50 ms by default), sooner when a megabyte waits or a
 * run ends, and commits it as one transaction, one row per run and kind of
 * record (store_chunk.h). What a kill -9 loses: the records appended since
 * the writer last took them (about one flush interval) and the batch it was
 * committing at that moment (its transaction rolls back, whole); every
 * earlier commit is on disk. A power cut may also lose the commits since the
 * last checkpoint (synchronous=NORMAL), never the store's consistency.
 *
 * Threading rules:
 * - lf_store_begin_run, lf_store_record_*, lf_store_end_run, lf_store_flush and
 *   lf_store_failure may be called from any thread. A run's records from one
 *   thread keep their call order (those of the thread that began it are
 *   written before the others' of the same batch; log lines read back by
 *   time). A recorder must not be used after lf_store_end_run.
 * - The readers (lf_store_list_runs ... lf_store_prune) may be called from any
 *   thread; they share one reading connection, one call at a time.
 * - lf_store_close must not run concurrently with any other call on the store.
 * - A forked child must not use its parent's store: it opens its own.
 *
 * A run whose process died without lf_store_end_run reads as "Crashed": when
 * the reader runs on the same kernel and pid namespace as the recorder, the
 * recorder's pid must still name a live process started at the recorded time;
 * otherwise (another machine, container or boot) its heartbeat, written every
 * LF_STORE_HEARTBEAT seconds while the run is open, must be younger than
 * LF_STORE_STALE seconds. */
#ifndef LF_STORE_H
#define LF_STORE_H

#include <stddef.h>
#include "luaflow.h"

#define LF_STORE_SCHEMA_VERSION 2
#define LF_STORE_RESULT_MAX (64 * 1024) /* longest result JSON kept, in bytes */
#define LF_STORE_HEARTBEAT 10.0         /* seconds between heartbeats of an open run */
#define LF_STORE_STALE 35.0 /* a remote open run silent this long has crashed */

typedef enum {
  LF_STORE_OK = 0,
  LF_STORE_ENOENT,     /* no store at the path (and not asked to create one) */
  LF_STORE_EINVAL,     /* a bad argument: unknown state class, empty run id ... */
  LF_STORE_ENOTFOUND,  /* no run matches */
  LF_STORE_EAMBIGUOUS, /* a run id prefix matches several runs */
  LF_STORE_ENOTDB,     /* not a database, or a database that is no run store */
  LF_STORE_ECORRUPT,   /* the database is damaged */
  LF_STORE_EREADONLY,  /* the store cannot be written */
  LF_STORE_EFULL,      /* the disk is full */
  LF_STORE_ENEWER,     /* made by a newer luaflow (schema version unknown here) */
  LF_STORE_EBUSY,      /* locked by other processes for longer than the busy timeout */
  LF_STORE_EIO         /* anything else: I/O error, out of memory, directories */
} lf_store_code;

/* What went wrong: msg is one line naming the store's path. */
typedef struct {
  lf_store_code code;
  char msg[480];
} lf_store_error;

typedef struct lf_store lf_store;
typedef struct lf_store_recorder lf_store_recorder; /* one run being recorded */

enum {
  LF_STORE_CREATE = 1, /* create the file (and its directories) when missing */
  LF_STORE_RECORD = 2  /* start the writer: the store will record runs */
};

typedef struct {
  int flags;             /* LF_STORE_CREATE | LF_STORE_RECORD */
  double flush_interval; /* seconds a record may wait in memory; 0: 0.05 */
  double busy_timeout;   /* seconds a commit may wait for other writers; 0: 60 */
} lf_store_options;

/* ---- rows: what is recorded, and what readers return -------------------- */

/* A flow run. Recording reads id ... ntasks; readers fill every field. */
typedef struct {
  const char *id;         /* the flow run id (the one notifiers send) */
  const char *flow;       /* flow name */
  const char *script;     /* script path; NULL: none */
  const char *parameters; /* JSON object, redacted; NULL: none */
  const char *executor;   /* NULL: none */
  const char *restart_of; /* id of the run this one restarts; NULL: none */
  double started;         /* epoch seconds */
  int ntasks;             /* tasks in the flow; 0: unknown */
  /* readers only */
  double ended;          /* 0 while unfinished */
  const char *state;     /* final class; "Running" or "Crashed" when unfinished */
  const char *message;   /* final message; NULL: none */
  int exit_code;         /* -1: none */
  long pid;              /* the recording process */
  const char *host;      /* its host name */
  double heartbeat;      /* last sign of life of an unfinished run */
  int counts[LF_NKINDS]; /* finished tasks by final class */
} lf_store_run;

/* State classes are recorded as kinds and stored by name; a name this
 * luaflow does not know reads back as LF_STATE. */

/* A task (or a mapped child) at the end of its run. */
typedef struct {
  int index;     /* 1-based position of the task in its flow */
  int map_index; /* 1-based index of a mapped child; 0: not a child */
  const char *name;
  lf_kind state;       /* final class (readers: the last one known) */
  const char *message; /* NULL: none */
  int run_count;
  double started, ended; /* epoch seconds; 0: unknown */
  const char *result;    /* result as JSON; NULL: no result kept */
  size_t result_len;
  /* 1 when `result` is the whole result (NULL meaning nil); 0 when the task
   * had a result that was not stored (not encodable, or longer than
   * LF_STORE_RESULT_MAX: such a result is dropped when recorded). */
  int result_stored;
} lf_store_task;

/* One state change of the flow (index 0) or of a task. */
typedef struct {
  int index;     /* 0: the flow; else the task's 1-based index */
  int map_index; /* 1-based index of a mapped child; 0: not a child */
  int seq;       /* n-th transition of this object in the run, from 1 */
  const char *name;
  lf_kind old_state, new_state;
  const char *message; /* new state's message; NULL: none */
  double time;
} lf_store_transition;

typedef struct {
  double time;
  int level; /* 10 DEBUG ... 50 CRITICAL */
  const char *logger;
  const char *message;
  size_t message_len;
} lf_store_log;

/* One delivery of a notification, made or given up (delivery.h). */
typedef struct {
  const char *run_id;        /* the flow run it belongs to; NULL: none */
  const char *transition_id; /* NULL: none (read back as "") */
  const char *notifier;      /* e.g. "Slack notification for <Task: extract>" */
  const char *destination;   /* scheme://host:port; NULL: unknown */
  double time;               /* epoch seconds, when it ended */
  double duration;           /* seconds, every attempt included */
  int ok;                    /* 1: delivered */
  const char *status;        /* "HTTP 200", the SMTP reply, or why it failed */
} lf_store_delivery;

/* An asynchronous delivery not yet made, in the outbox. It holds the request
 * but never a credential: `payload` names the secrets the sender reads
 * (see sender.h), so a store never keeps a webhook URL or a password. An
 * item is known by (transition_id, notifier, created). */
typedef struct {
  const char *run_id;        /* NULL: none */
  const char *transition_id; /* NULL: none */
  const char *notifier;
  const char *destination; /* scheme://host:port */
  const char *payload;     /* JSON: the request without its credentials */
  double created;          /* epoch seconds */
  double deliver_by;       /* epoch seconds: given up after */
  double next_attempt;     /* epoch seconds */
  int attempts;            /* made so far */
  const char *last_error;  /* NULL: none yet */
  /* readers only */
  const char *claimed_by; /* the process sending it: "host:pid" */
  double claimed_until;   /* its claim ends (deliver_by) */
} lf_store_outbox_item;

/* ---- opening ------------------------------------------------------------- */

/* Opens (and with LF_STORE_CREATE creates: parent directories 0700, file 0600)
 * the store at path and brings its schema up to date. NULL with *err set when
 * it cannot: one clear message per case (lf_store_code). */
lf_store *lf_store_open(const char *path, const lf_store_options *opts,
                        lf_store_error *err);
/* Commits what is queued, stops the writer, frees everything. Returns 0, or -1
 * with *err set (err may be NULL) when recording failed at some point. */
int lf_store_close(lf_store *s, lf_store_error *err);
/* lf_store_close for a process about to end (`luaflow run`): commits what is
 * queued and returns the same status at once; the writer then closes the
 * database (its checkpoint: an fsync or two) and frees the store in the
 * background, while the process goes on; the process's exit waits for that
 * (an atexit handler). */
int lf_store_close_later(lf_store *s, lf_store_error *err);
const char *lf_store_path(const lf_store *s);
int lf_store_schema_version(lf_store *s);

/* The path the CLI records into: $LUAFLOW_STORE, else
 * $XDG_STATE_HOME/luaflow/luaflow.db, else ~/.local/state/luaflow/luaflow.db.
 * Returns 1 with the path in buf, 0 when LUAFLOW_STORE is "off", -1 when no
 * path can be made (no HOME, or too long for buf). */
int lf_store_env_path(char *buf, size_t n);

/* ---- recording (any thread; never waits for the database, only for the
 * writer when it has fallen 64 MB behind) ---------------------------------- */

/* Starts recording a run; NULL when the store has failed (see
 * lf_store_failure) or memory is short. The record functions return 0 when
 * the record is queued, -1 when it is dropped because recording has failed
 * (the moment to warn, once); a NULL recorder is accepted and drops all. */
lf_store_recorder *lf_store_begin_run(lf_store *s, const lf_store_run *run);
int lf_store_record_task(lf_store_recorder *r, const lf_store_task *t);
int lf_store_record_transition(lf_store_recorder *r, const lf_store_transition *t);
int lf_store_record_log(lf_store_recorder *r, const lf_store_log *l);
/* Ends the run (exit_code -1: none); r must not be used afterwards. */
int lf_store_end_run(lf_store_recorder *r, double ended, lf_kind state,
                     const char *message, int exit_code);
/* Deliveries and the outbox, recorded like the rest (queued, committed by
 * the writer; any thread; 0 when queued, -1 when dropped). A delivery is
 * attached to its run's row when that run is recorded in the store; the
 * recording may come after the run ended (asynchronous deliveries do). */
int lf_store_record_delivery(lf_store *s, const lf_store_delivery *d);
int lf_store_outbox_add(lf_store *s, const lf_store_outbox_item *it);
/* Brings the item's attempts, next_attempt and last_error up to date. */
int lf_store_outbox_update(lf_store *s, const lf_store_outbox_item *it);
/* The item was delivered or given up (its delivery is recorded apart). */
int lf_store_outbox_remove(lf_store *s, const lf_store_outbox_item *it);
/* Makes s the journal of notification deliveries (delivery.h): every
 * delivery's outcome and every asynchronous item's outbox row are recorded
 * here from now on. lf_store_detach_deliveries(s) stops it (a no-op when s
 * is not attached); detach a store before closing it. */
void lf_store_attach_deliveries(lf_store *s);
void lf_store_detach_deliveries(lf_store *s);
/* Waits until everything recorded before the call is committed. 0, or -1 with
 * *err set when recording has failed. */
int lf_store_flush(lf_store *s, lf_store_error *err);
/* NULL while recording works; else why it stopped (records are then dropped). */
const char *lf_store_failure(lf_store *s);

/* ---- reading --------------------------------------------------------------- */

/* Rows a reader returns; everything they point to lives until
 * lf_store_rows_free. */
typedef struct {
  size_t n;
  union {
    lf_store_run *runs;
    lf_store_task *tasks;
    lf_store_transition *transitions;
    lf_store_log *logs;
    lf_store_delivery *deliveries;
    lf_store_outbox_item *outbox;
  };
  struct lf_store_arena *arena; /* private */
} lf_store_rows;
void lf_store_rows_free(lf_store_rows *rows);

typedef struct {
  const char *flow;  /* NULL: any flow */
  const char *state; /* a class (its subclasses too), "Running" or "Crashed"; NULL: any */
  int limit;         /* 0: all */
} lf_store_query;

/* Runs, newest first. Every reader returns 0, or -1 with *err set (and rows
 * empty). */
int lf_store_list_runs(lf_store *s, const lf_store_query *q, lf_store_rows *out,
                       lf_store_error *err);
/* One run (out->n == 1) by id, by "last", or by a unique prefix of its id. */
int lf_store_find_run(lf_store *s, const char *ref, lf_store_rows *out,
                      lf_store_error *err);
/* A run's tasks, by index then map index. For an unfinished run, a task that
 * has transitions but no final record is shown with its last state. */
int lf_store_run_tasks(lf_store *s, const char *run_id, lf_store_rows *out,
                       lf_store_error *err);
/* A run's transitions, in the order they were recorded; its log lines by time
 * (lines of one time in the order they were recorded: the run's own thread and
 * worker threads record through different paths). */
int lf_store_run_transitions(lf_store *s, const char *run_id, lf_store_rows *out,
                             lf_store_error *err);
int lf_store_run_logs(lf_store *s, const char *run_id, lf_store_rows *out,
                      lf_store_error *err);
/* A run's deliveries (run_id: its full id), in the order they ended. */
int lf_store_run_deliveries(lf_store *s, const char *run_id, lf_store_rows *out,
                            lf_store_error *err);
/* The outbox: every item not yet delivered nor given up, oldest first. */
int lf_store_outbox_list(lf_store *s, lf_store_rows *out, lf_store_error *err);
/* Deletes runs (with everything recorded for them) but the `keep` newest
 * (keep >= 0), or those started before `before` (keep < 0). Runs still in
 * progress are never deleted. *deleted counts the runs removed. */
int lf_store_prune(lf_store *s, int keep, double before, size_t *deleted,
                   lf_store_error *err);

#endif
