/* The Lua host (host.h over a lua_State) and the Local executor (executor.h:
 * bodies run inline in the engine's Lua state).
 *
 * A run of the Lua host is a series of protected calls (lua_run.c), normally
 * one: each gets the run's Lua values as its arguments, in the slots below,
 * and runs the scheduler, which calls handlers, triggers and Local bodies
 * with a plain lua_call. When one raises, the protected call returns; the
 * next one first finishes what was in flight (lf_lua_host_recover,
 * lf_local_executor_recover) and runs the scheduler on. Worker executors
 * (threads, processes) use the same host: they read a body's inputs with
 * lf_lua_host_push_spec and the boxes of the upstream states. */
#ifndef LF_LUA_HOST_H
#define LF_LUA_HOST_H

#include "executor.h"
#include "host.h"
#include "lua_core.h"
#include "lua_interrupt.h"

/* The stack slots of a run's Lua values in each of its protected calls. */
enum {
  LF_SLOT_RUN = 1,  /* light userdata: the run's C side (lua_run.c) */
  LF_SLOT_FLOW,     /* the Flow userdata */
  LF_SLOT_TASKS,    /* its tasks, by index */
  LF_SLOT_BOXES,    /* the boxes of the states shown to Lua (lf_boxes) */
  LF_SLOT_APPROVER, /* the approver (the terminal prompt), or nil */
  LF_SLOT_ERROR,    /* the error that ended the previous protected call, or nil */
  LF_SLOT_SPEC,     /* the spec table used last (see lf_lua_host_push_spec) */
  LF_SLOT_HANDLERS, /* the handlers of the object whose handler ran last */
  LF_NSLOTS = LF_SLOT_HANDLERS
};

typedef struct {
  lf_host base;
  lua_State *L;
  lf_boxes boxes;             /* boxes.table is LF_SLOT_BOXES */
  const void *spec_of;        /* whose spec table LF_SLOT_SPEC holds; NULL: none */
  const void *handlers_of;    /* whose handlers LF_SLOT_HANDLERS holds; NULL: none */
  int aborted;                /* the run ended with an error (lf_run_abort) */
  char bad_return_where[512]; /* where the handler that returned a bad value is */
} lf_lua_host;

/* A host for runs on L; creates the boxes table (pushes it). */
void lf_lua_host_init(lf_lua_host *h, lua_State *L);
/* Each protected call of the run starts with this. */
void lf_lua_host_enter(lf_lua_host *h);
void lf_lua_host_push_object(lf_lua_host *h, int i);
/* Pushes entry `key` (LF_SPEC_*) of object i's spec table. The copies of a
 * task share theirs: the last one used stays in LF_SLOT_SPEC. */
void lf_lua_host_push_spec(lf_lua_host *h, lf_run *r, int i, int key);
/* The one helper turning an error value (at err) into an owned state: a
 * signal's own state, or kind("<prefix><tostring(e)>") with e as result.
 * Its box stays with the run (it holds the result). */
lf_state *lf_lua_host_error_state(lf_lua_host *h, int err, lf_kind kind,
                                  const char *prefix, lf_signal *sig);
/* Pushes task run i's arguments, as its body gets them (constants, then
 * the upstream results at their positions, then the results inside
 * tables; a mapped task's child: its elements); returns how many. */
int lf_lua_host_push_args(lf_lua_host *h, lf_run *r, int i);
static inline int lf_lua_host_push_task_args(lf_lua_host *h, lf_run *r, int i, int fn);
/* The box on top of the stack belongs to the run from now on; pops it. */
void lf_lua_host_keep_box(lf_lua_host *h);
/* Finishes the handler chain or trigger a Lua error (at err) ended; the
 * cancellation stopped it when `cancelled`. */
void lf_lua_host_recover(lf_lua_host *h, lf_run *r, int err, int cancelled);

typedef struct {
  lf_executor base;
  lf_lua_host *host;
  lf_lua_watch watch; /* the running body's timeout and cancellation */
  int body_base;      /* stack levels below a body's frame, + 1 (0: not known yet) */
  int outer_base;     /* the thread's body base before this body (nested runs) */
} lf_local_executor;

void lf_local_executor_init(lf_local_executor *ex, lf_lua_host *host);
/* The protected call returned with an error while a body ran: its watch
 * ends (before the enclosing ones). */
void lf_local_executor_unwound(lf_local_executor *ex);
/* In the next protected call: the body's outcome from its error (at err). */
void lf_local_executor_recover(lf_local_executor *ex, lf_run *r, int err);
/* The message handler's part: notes a failing body's traceback (the error
 * value at index 1) while its stack still exists. */
void lf_local_note_traceback(lua_State *L);

/* How a body ended: raised (failed), stopped by the cancellation, past its
 * deadline; traceback: a failing body's traceback taken elsewhere (a
 * worker), NULL: the one noted on the engine's state. */
typedef struct {
  int failed, cancelled, timed_out;
  const char *traceback;
} lf_body_end;

/* The one place a body's end becomes task i's outcome state (owned; *end
 * set for ENDRUN and a cancelled body), from the value at `value` (its
 * result or error), with its log line: every executor's. */
lf_state *lf_body_outcome(lf_lua_host *h, lf_run *r, int i, int value,
                          const lf_body_end *how, int *end);
/* Pushes task i's function and its arguments; returns their number. */
int lf_body_push_call(lf_lua_host *h, lf_run *r, int i);
/* A body runs on L from here (its traceback stops at this level): returns
 * what lf_body_leave puts back. */
int lf_body_enter(lua_State *L);
void lf_body_leave(int outer);
/* Pushes the traceback noted for the error at err (and forgets it); 0 when
 * none was noted. */
int lf_body_push_traceback(lua_State *L, int err);

/* lua_map.c: the host's part of mapped tasks (host.h map_count and
 * map_final) and a child's arguments for its body, pushed after its
 * function (returns how many). */
lf_state *lf_lua_map_count(lf_host *host, lf_run *r, int i, int *n);
lf_state *lf_lua_map_final(lf_host *host, lf_run *r, int i, int first, int n);
int lf_lua_map_push_args(lf_lua_host *h, lf_run *r, int c);
/* lua_cache.c: the host's cache_lookup and cache_save (luaflow.cache). */
lf_state *lf_lua_cache_lookup(lf_host *host, lf_run *r, int i);
lf_state *lf_lua_cache_save(lf_host *host, lf_run *r, int i);

/* lua_table_args.c: the results inside task i's table arguments (at fn + 1
 * .. fn + nargs), put in place. */
void lf_table_args_expand(lf_lua_host *h, lf_run *r, int i, int fn, int nargs);

/* lf_lua_host_push_args for task i of the flow (no child), its function at
 * fn, the top of the stack: inline, as the Local executor calls it for
 * every body. */
static inline int lf_lua_host_push_task_args(lf_lua_host *h, lf_run *r, int i, int fn) {
  lua_State *L = h->L;
  const lf_task *t = r->flow->tasks[i];
  int first = r->up.start[i], last = r->up.start[i + 1], nargs = t->nconsts;
  if (nargs == 0 && first == last && !t->has_tables) return 0; /* no inputs */
  for (int k = first; k < last; k++)
    if (r->up.key[k] > nargs) nargs = r->up.key[k];
  /* the protected call's frame starts with room for a few arguments */
  if (nargs > 8 && !lua_checkstack(L, nargs + 8))
    luaL_error(L, "too many task arguments");
  if (t->nconsts) {
    lf_lua_host_push_object(h, i);
    lua_getiuservalue(L, -1, LF_UV_CONSTS);
    lua_remove(L, -2);
    for (int k = 1; k <= nargs; k++)
      lua_rawgeti(L, fn + 1, k);
    lua_remove(L, fn + 1);
  } else {
    for (int k = 1; k <= nargs; k++)
      lua_pushnil(L);
  }
  for (int k = first; k < last; k++)
    if (r->up.key[k] > 0) {
      lf_boxes_push_result(L, &h->boxes, r->task[r->up.task[k]].state);
      lua_replace(L, fn + r->up.key[k]);
    }
  if (t->has_tables) lf_table_args_expand(h, r, i, fn, nargs);
  return nargs;
}

/* lua_task_policy.c: the host's retry_on, overdue and wake ops (host.h). */
int lf_lua_host_retry_on(lf_host *base, lf_run *r, int i, lf_state *failed);
void lf_lua_host_overdue(lf_host *base, lf_run *r, int i, double deadline, double elapsed,
                         const char *message);
void lf_lua_host_wake(lf_host *base, lf_run *r);
/* lua_run.c: the innermost run of L's engine, or NULL. */
lf_run *lf_lua_current_run(lua_State *L);

#endif
