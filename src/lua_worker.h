/* Workers: task bodies run in Lua states of their own (worker threads,
 * worker processes), fed with jobs and answering with replies, both plain
 * bytes (the value codec, lua_codec.h), so the same worker serves a thread
 * or a process.
 *
 * A job: task i's function with its upvalues (copied by value, modules bound
 * by name), its arguments, the facts luaflow.context shows in a body, its
 * timeout. A run's context (flow name, run id, parameters, secrets) is one
 * message of its own, sent to a worker once per run (its generation).
 * A reply: the result, the error raised (with its traceback), or the text of
 * why the result could not be copied; whether the body was stopped by its
 * timeout or the cancellation.
 *
 * Engine side (lua_worker_job.c): builds jobs from the run and turns replies
 * into outcome states (lf_body_outcome, as Local does). Worker side
 * (lua_worker.c): a Lua state with luaflow loaded that runs jobs. */
#ifndef LF_LUA_WORKER_H
#define LF_LUA_WORKER_H

#include <stdint.h>
#include "buf.h"
#include "lua_host.h"

typedef struct {
  int32_t task;
  int32_t run_count, loop_count, map_index;
  uint8_t resume, has_loop_result, pad[2];
  uint32_t name_len, full_len; /* task_name (a child's: its parent's), task_full_name */
  uint32_t fn_len, args_len, nargs;
  double timeout; /* seconds; 0: none (a thread worker watches it itself) */
} lf_job_head;    /* then the names, fn message, args message (+ the loop result) */

enum {
  LF_REPLY_RETURNED,   /* value: the result */
  LF_REPLY_RAISED,     /* value: the error raised; then its traceback text */
  LF_REPLY_UNCOPYABLE, /* value bytes: the codec's message ("cannot copy ...") */
};

typedef struct {
  int32_t task;
  uint8_t kind, timed_out, cancelled, pad;
  uint32_t value_len, tb_len;
  uint32_t secrets_len; /* the secrets the body registered: (uint32 length, bytes)... */
} lf_reply_head;        /* then value bytes, traceback bytes, secrets */

/* ---- engine side (lua_worker_job.c) ---- */

/* Task i's job (appended to out). Returns 0, or -1 with the text of why it
 * cannot cross in err ("cannot copy a function at argument 1.fn").
 * names_fresh: the codec's name index was checked since the last Lua code
 * ran that may have loaded a module (LF_CODEC_NAMES_FRESH). */
int lf_job_build(lf_lua_host *h, lf_run *r, int i, double timeout, int names_fresh,
                 lf_buf *out, char *err, size_t errlen);
/* The run's context message (appended to out): 0, or -1 with err. */
int lf_job_run_context(lf_lua_host *h, lf_run *r, lf_buf *out, char *err, size_t errlen);
/* The outcome of a reply for its task (*task set; -1 on garbage): a state
 * the run takes over, *end as lf_body_outcome. May raise (memory). */
lf_state *lf_job_outcome(lf_lua_host *h, lf_run *r, const char *reply, size_t len,
                         int *task, int *end);
/* Task i failed (kind) without a reply of its own: "<Task: NAME>: text"
 * (prefixed) or text itself, as its message and result. */
lf_state *lf_job_failed(lf_lua_host *h, lf_run *r, int i, lf_kind kind, int prefixed,
                        const char *text);

/* ---- worker side (lua_worker.c) ---- */

typedef struct lf_worker lf_worker;

/* A worker's Lua state with luaflow loaded, package.path and cpath as
 * given. NULL (err set) when it cannot be made. */
lf_worker *lf_worker_new(const char *path, const char *cpath, char *err, size_t errlen);
/* Runs one job; the run's context message (ctx) is read when gen differs
 * from the last one's. The reply is appended to reply. */
void lf_worker_run(lf_worker *w, uint64_t gen, const char *ctx, size_t ctx_len,
                   const char *job, size_t len, lf_buf *reply);
void lf_worker_free(lf_worker *w);
/* Is L a worker's state running a body? (os.exit refuses then) */
int lf_worker_busy(lua_State *L);
/* luaflow.context in a worker: pushes key's value and returns 1; 0 when L
 * is not a worker's state. */
int lf_worker_context(lua_State *L, const char *key);
/* task_run_count / task_loop_count of the body running on L (1 if none). */
int lf_worker_count(lua_State *L, int loop);

#endif
