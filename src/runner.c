/* The runner: one transition function for every task and flow state change,
 * and a scheduler (ready heap + timer heap) that never spins. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "graph.h"
#include "interrupt.h"
#include "log.h"
#include "lua_core.h"

static const char current_run_key = 0;
static const char current_boxes_key = 0; /* the running run's box table */
static const char handler_error_key = 0;

enum { F_STARTED = 1, F_RESUME = 2, F_FINISHED = 4, F_ASKED = 8 };

typedef struct {
  double due;
  int task;
} lf_timer;

typedef struct {
  int task;
  int end; /* ENDRUN: nothing more happens to the task */
  lf_state *state;
} lf_outcome;

typedef struct lf_run {
  lua_State *L;
  lf_flow *flow;
  int n;
  int flow_ud, tasks_t; /* stack slots of this run's Lua values */
  lf_boxes boxes;       /* the boxes of the states this run shows to Lua */
  lf_state **st;        /* current state of each task */
  lf_state *pending;    /* shared: Pending(), Running("Starting task run."), */
  lf_state *running;    /* Success("Task run succeeded.") without a result */
  lf_state *success;
  int *order, *rank, *npend, *attempt, *loops, *seen;
  int stamp;
  int *up_start, *up_task, *up_key, *down_start, *down_task;
  uint8_t *flags;
  int *heap, nheap, nready; /* the ready set: heap and bitmap (see ready_push) */
  uint64_t *bits;
  int cursor;
  lf_timer *timers; /* a heap, in a growable block at stack slot timers_slot */
  int ntimers, cap_timers, timers_slot;
  int approve_idx;  /* stack slot of the approver function, 0 when none */
  lf_outcome *done; /* outcomes from the executor: a growable ring */
  int done_head, ndone, cap_done, done_slot;
  lf_state **ups; /* scratch: distinct upstream states of one task */
  int cur;        /* the task being run, -1 for the flow */
  lf_state *loop_state;
} lf_run;

static char handler_error[1024];

void lf_handler_error(const lf_object *obj, const char *message) {
  (void)obj;
  snprintf(handler_error, sizeof handler_error, "%s",
           message ? message : "C handler failed");
}

const char *lf_handler_error_text(void) {
  return handler_error[0] ? handler_error : "C handler failed";
}

const char *lf_object_name(const lf_object *obj) {
  return obj->name;
}

int lf_object_is_flow(const lf_object *obj) {
  return obj->is_flow;
}

static lf_run *current_run(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_run_key);
  lf_run *r = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return r;
}

int lf_current_run_count(lua_State *L) {
  lf_run *r = current_run(L);
  return r && r->cur >= 0 ? r->attempt[r->cur] : 1;
}

int lf_current_loop_count(lua_State *L) {
  lf_run *r = current_run(L);
  return r && r->cur >= 0 ? r->loops[r->cur] : 1;
}

/* ---- heaps ---- */

/* The ready set: tasks are taken by topological rank, smallest first. Most
 * become ready in rank order, so a bitmap with a cursor that only moves
 * forward holds them at O(1) a task; one that becomes ready behind the
 * cursor (a retry) goes to a small heap. */
static void heap_push(lf_run *r, int rank) {
  int i = r->nheap++;
  while (i > 0 && r->heap[(i - 1) / 2] > rank) {
    r->heap[i] = r->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  r->heap[i] = rank;
}

static int heap_pop(lf_run *r) {
  int top = r->heap[0], v = r->heap[--r->nheap], i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= r->nheap) break;
    if (c + 1 < r->nheap && r->heap[c + 1] < r->heap[c]) c++;
    if (r->heap[c] >= v) break;
    r->heap[i] = r->heap[c];
    i = c;
  }
  if (r->nheap > 0) r->heap[i] = v;
  return top;
}

static void ready_push(lf_run *r, int rank) {
  r->nready++;
  if (rank >= r->cursor)
    r->bits[rank >> 6] |= 1ull << (rank & 63);
  else
    heap_push(r, rank);
}

/* The first rank at or after the cursor in the bitmap, or -1. */
static int next_bit(lf_run *r) {
  int nwords = (r->n + 63) >> 6;
  for (int w = r->cursor >> 6; w < nwords; w++) {
    uint64_t word = r->bits[w];
    if (w == r->cursor >> 6) word &= ~0ull << (r->cursor & 63);
    if (word) return (w << 6) + __builtin_ctzll(word);
  }
  r->cursor = r->n;
  return -1;
}

static int ready_pop(lf_run *r) {
  r->nready--;
  int b = next_bit(r);
  if (r->nheap > 0 && (b < 0 || r->heap[0] < b)) return heap_pop(r);
  r->bits[b >> 6] &= ~(1ull << (b & 63));
  r->cursor = b + 1;
  return b;
}

/* A block in stack slot `slot` for `cap` elements of `size` bytes (the run's
 * growable arrays live on the Lua stack, so an error unwinding frees them). */
static void *slot_block(lua_State *L, int slot, int cap, size_t size) {
  void *p = lua_newuserdatauv(L, (size_t)cap * size, 0);
  lua_replace(L, slot);
  return p;
}

static void timer_push(lf_run *r, double due, int task) {
  if (r->ntimers == r->cap_timers) {
    lf_timer *old = r->timers;
    r->cap_timers *= 2;
    r->timers = slot_block(r->L, r->timers_slot, r->cap_timers, sizeof *r->timers);
    memcpy(r->timers, old, (size_t)r->ntimers * sizeof *old);
  }
  int i = r->ntimers++;
  while (i > 0 && r->timers[(i - 1) / 2].due > due) {
    r->timers[i] = r->timers[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  r->timers[i].due = due;
  r->timers[i].task = task;
}

static lf_timer timer_pop(lf_run *r) {
  lf_timer top = r->timers[0], v = r->timers[--r->ntimers];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= r->ntimers) break;
    if (c + 1 < r->ntimers && r->timers[c + 1].due < r->timers[c].due) c++;
    if (r->timers[c].due >= v.due) break;
    r->timers[i] = r->timers[c];
    i = c;
  }
  if (r->ntimers > 0) r->timers[i] = v;
  return top;
}

/* ---- objects and states ---- */

static lf_object *object(lf_run *r, int i) {
  return i < 0 ? &r->flow->obj : &r->flow->tasks[i]->obj;
}

static void push_object(lf_run *r, int i) {
  if (i < 0)
    lua_pushvalue(r->L, r->flow_ud);
  else
    lua_rawgeti(r->L, r->tasks_t, i + 1);
}

/* Pushes entry `key` (LF_SPEC_*) of object i's spec table. */
static void push_spec(lf_run *r, int i, int key) {
  push_object(r, i);
  lua_getiuservalue(r->L, -1, LF_UV_SPEC);
  lua_rawgeti(r->L, -1, key);
  lua_replace(r->L, -3);
  lua_pop(r->L, 1);
}

/* The box on top of the stack belongs to the run from now on (it may hold
 * the result of a state the engine still uses); pops it. */
static void keep_box(lf_run *r) {
  lf_boxes_keep(r->L, &r->boxes);
}

static lf_state *make_state(lua_State *L, lf_kind k, const char *static_msg) {
  lf_state *s = lf_state_static(k, static_msg);
  if (!s) luaL_error(L, "not enough memory");
  return s;
}

static void set_state(lf_run *r, int i, lf_state *s) {
  lf_state_release(r->st[i]);
  r->st[i] = s;
}

static const char *object_label(lf_object *obj) {
  return obj->is_flow ? "Flow" : "Task";
}

/* The error a handler raised, as the state the object ends in. */
static lf_state *handler_failure(lf_run *r, lf_object *obj, int err_idx, lf_signal *sig) {
  lf_state *s = lf_error_to_state(r->L, err_idx, LF_FAILED,
                                  "Unexpected error while calling state handlers: ", sig);
  if (*sig == LF_SIG_NONE)
    lf_log(LF_LOG_ERROR, obj->is_flow ? "luaflow.FlowRunner" : "luaflow.TaskRunner", "%s",
           s->message);
  keep_box(r);
  return lf_state_ref(s);
}

static lf_state *handler_failure_text(lf_run *r, lf_object *obj, const char *text) {
  lua_pushstring(r->L, text);
  lf_signal sig;
  return handler_failure(r, obj, -1, &sig);
}

/* The one transition function: object i goes from `old` to `next` through
 * its handlers, in order; each sees the same old state and the previous
 * one's result. Returns the state the object is now in (a reference the
 * caller owns; `next` is consumed) and sets *end when nothing more may happen
 * to the object in this run (handler error, PAUSE, ENDRUN). */
/* One transition's handler chain. When the object has Lua handlers the whole
 * chain runs in one protected call (an error ends the chain anyway), so a
 * handler costs a Lua call, not a pcall. */
typedef struct {
  lf_run *r;
  int i;
  lf_state *old;
  lf_state *next; /* owned: the state so far */
  int c_failed;   /* a C handler returned LF_ERROR (text in handler_error) */
} lf_chain;

/* Calls C handler hd; returns 0 to go on, 1 when it failed (chain ends). */
static int call_c_handler(lf_chain *c, lf_object *obj, lf_handler *hd) {
  lf_state *out = NULL;
  handler_error[0] = '\0';
  int rc = hd->fn(obj, c->old, c->next, &out, hd->ud);
  if (rc == LF_KEEP) return 0;
  if (rc == LF_REPLACE && out) {
    lf_state_release(c->next);
    c->next = out;
    return 0;
  }
  if (out) lf_state_release(out);
  if (rc == LF_REPLACE) lf_handler_error(obj, "C handler replaced the state with NULL");
  c->c_failed = 1;
  return 1;
}

/* What a Lua handler returned (on top of the stack, popped): nil or false
 * keep the state, a State replaces it; anything else is a handler error and
 * its type name is returned. */
static const char *take_result(lua_State *L, lf_run *r, lf_chain *c) {
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  lf_state *s = lf_test_state(L, -1);
  if (!s) return luaL_typename(L, -1);
  if (s == c->next) {
    lua_pop(L, 1);
    return NULL;
  }
  lf_state_ref(s);
  lf_boxes_keep(L, &r->boxes); /* the replacement's box stays for the run */
  lf_state_release(c->next);
  c->next = s;
  return NULL;
}

/* The chain in protected mode: run_chain(chain, boxes, tasks, flow). The
 * run's Lua values are this frame's arguments while it runs (the stack slots
 * of flow_run's frame cannot be reached from here). */
static int run_chain(lua_State *L) {
  lf_chain *c = lua_touserdata(L, 1);
  lf_run *r = c->r;
  r->boxes.table = 2, r->tasks_t = 3, r->flow_ud = 4;
  lf_object *obj = object(r, c->i);
  push_spec(r, c->i, LF_SPEC_HANDLERS);
  int handlers = lua_gettop(L);
  push_object(r, c->i);
  int objv = lua_gettop(L);
  for (int h = 0; h < obj->nhandlers; h++) {
    lf_handler *hd = &obj->handlers[h];
    if (hd->fn) {
      if (call_c_handler(c, obj, hd)) return 0;
      continue;
    }
    if (hd->on_failure && !LF_IS(c->next, LF_FAILED)) continue;
    lua_rawgeti(L, handlers, hd->lua);
    lua_pushvalue(L, objv);
    if (!hd->on_failure) lf_boxes_push(L, &r->boxes, c->old);
    lf_boxes_push(L, &r->boxes, c->next);
    lua_call(L, hd->on_failure ? 2 : 3, 1);
    if (hd->on_failure) {
      lua_pop(L, 1);
      continue;
    }
    const char *bad = take_result(L, r, c);
    if (bad) return luaL_error(L, "state handler returned a %s", bad);
  }
  return 0;
}

/* The one transition function: object i goes from `old` to `next` through
 * its handlers, in order; each sees the same old state and the previous
 * one's result. Returns the state the object is now in (a reference the
 * caller owns; `next` is consumed) and sets *end when nothing more may happen
 * to the object in this run (handler error, PAUSE, ENDRUN). */
static lf_state *transition(lf_run *r, int i, lf_state *old, lf_state *next, int *end) {
  lua_State *L = r->L;
  lf_object *obj = object(r, i);
  *end = 0;
  if (lf_log_enabled(LF_LOG_DEBUG))
    lf_log(LF_LOG_DEBUG, i < 0 ? "luaflow.FlowRunner" : "luaflow.TaskRunner",
           "%s '%s': Handling state change from %s to %s", object_label(obj), obj->name,
           lf_kind_name(old->kind), lf_kind_name(next->kind));
  if (obj->nhandlers == 0) return next;
  lf_chain c = {r, i, old, next, 0};
  if (obj->nlua == 0) { /* C handlers only: no Lua at all */
    for (int h = 0; h < obj->nhandlers && !call_c_handler(&c, obj, &obj->handlers[h]);
         h++)
      ;
  } else {
    if (!lua_checkstack(L, 16)) luaL_error(L, "stack overflow in the runner");
    int top = lua_gettop(L), rc;
    if (obj->nhandlers == 1 && !obj->handlers[0].on_failure) {
      /* one Lua handler: call it directly, without the chain's frame */
      push_spec(r, i, LF_SPEC_HANDLERS);
      lua_rawgeti(L, -1, obj->handlers[0].lua);
      lua_remove(L, -2);
      push_object(r, i);
      lf_boxes_push(L, &r->boxes, old);
      lf_boxes_push(L, &r->boxes, c.next);
      rc = lua_pcall(L, 3, 1, 0);
      const char *bad = rc == LUA_OK ? take_result(L, r, &c) : NULL;
      if (bad) {
        lua_pushfstring(L, "state handler returned a %s", bad);
        rc = LUA_ERRRUN;
      }
    } else {
      int boxes = r->boxes.table, tasks = r->tasks_t, flow = r->flow_ud;
      lua_pushcfunction(L, run_chain);
      lua_pushlightuserdata(L, &c);
      lua_pushvalue(L, boxes);
      lua_pushvalue(L, tasks);
      lua_pushvalue(L, flow);
      rc = lua_pcall(L, 4, 0, 0);
      r->boxes.table = boxes, r->tasks_t = tasks, r->flow_ud = flow;
    }
    if (rc != LUA_OK) {
      lf_signal sig;
      lf_state *s = handler_failure(r, obj, -1, &sig);
      lua_settop(L, top);
      lf_state_release(c.next);
      *end = sig == LF_SIG_NONE || sig == LF_SIG_PAUSE || sig == LF_SIG_ENDRUN;
      return s;
    }
    lua_settop(L, top);
  }
  if (c.c_failed) {
    lf_state_release(c.next);
    *end = 1;
    return handler_failure_text(r, obj, lf_handler_error_text());
  }
  return c.next;
}

/* ---- running a task body (the inline executor) ---- */

static void log_signal(lf_run *r, int err_idx, lf_signal sig) {
  lua_State *L = r->L;
  err_idx = lua_absindex(L, err_idx);
  if (sig == LF_SIG_NONE) {
    if (lf_log_enabled(LF_LOG_ERROR)) {
      const char *msg = lf_safe_tostring(L, err_idx, NULL);
      lf_log(LF_LOG_ERROR, "luaflow.TaskRunner",
             "Task '%s': Exception encountered during task execution! %s",
             object(r, r->cur)->name, msg);
      lua_pop(L, 1);
    }
  } else if (lf_log_enabled(LF_LOG_INFO)) {
    lua_getmetatable(L, err_idx);
    lua_getfield(L, -1, "__name");
    const char *msg = lf_safe_tostring(L, err_idx, NULL);
    lf_log(LF_LOG_INFO, "luaflow.TaskRunner", "%s signal raised: %s", lua_tostring(L, -2),
           msg);
    lua_pop(L, 3);
  }
}

/* Calls task i's function with its inputs; returns the outcome state and
 * sets *end for ENDRUN. */
static lf_state *run_body(lf_run *r, int i, int *end) {
  lua_State *L = r->L;
  lf_task *t = r->flow->tasks[i];
  *end = 0;
  if (!t->has_fn) return lf_state_ref(r->success);
  int top = lua_gettop(L);
  int nargs = t->nconsts;
  for (int k = r->up_start[i]; k < r->up_start[i + 1]; k++)
    if (r->up_key[k] > nargs) nargs = r->up_key[k];
  if (!lua_checkstack(L, nargs + 8)) luaL_error(L, "too many task arguments");
  push_spec(r, i, LF_SPEC_FN);
  int fn = lua_gettop(L);
  if (t->nconsts) {
    push_object(r, i);
    lua_getiuservalue(L, -1, LF_UV_CONSTS);
    lua_remove(L, -2);
    for (int k = 1; k <= nargs; k++)
      lua_rawgeti(L, fn + 1, k);
    lua_remove(L, fn + 1);
  } else {
    for (int k = 1; k <= nargs; k++)
      lua_pushnil(L);
  }
  for (int k = r->up_start[i]; k < r->up_start[i + 1]; k++)
    if (r->up_key[k] > 0) {
      lf_boxes_push_result(L, &r->boxes, r->st[r->up_task[k]]);
      lua_replace(L, fn + r->up_key[k]);
    }
  lf_state *s;
  lf_watch watch;
  lf_watch_begin(L, &watch, t->timeout);
  int rc = lua_pcall(L, nargs, 1, 0);
  lf_watch_end(L, &watch);
  if (watch.cancelled || lf_cancel_signal) {
    s = make_state(L, LF_CANCELLED, "Flow run was cancelled.");
    *end = 1;
  } else if (watch.timed_out) {
    /* whatever the body did with the timeout error, it ran out of time */
    s = make_state(L, LF_TIMEDOUT, "Task timed out during execution.");
    lf_log(LF_LOG_ERROR, "luaflow.TaskRunner", "Task '%s': timed out after %g seconds",
           t->obj.name, t->timeout);
    lua_pushliteral(L, "Execution timed out.");
    lf_box_new(L, lf_state_ref(s), -1);
    keep_box(r);
  } else if (rc == LUA_OK) {
    if (lua_isnil(L, -1)) {
      s = lf_state_ref(r->success);
    } else {
      s = make_state(L, LF_SUCCESS, "Task run succeeded.");
      lf_box_new(L, lf_state_ref(s), -1);
      keep_box(r);
    }
  } else {
    lf_signal sig;
    s = lf_error_to_state(L, -1, LF_FAILED, "Error during execution of task: ", &sig);
    log_signal(r, -2, sig);
    if (s->kind == LF_LOOPED && !s->message) {
      char msg[64];
      snprintf(msg, sizeof msg, "Task is looping (%d)", r->loops[i]);
      s->message = strdup(msg);
      s->owns_message = s->message != NULL;
    }
    keep_box(r);
    lf_state_ref(s);
    *end = sig == LF_SIG_ENDRUN;
  }
  lua_settop(L, top);
  return s;
}

/* ---- triggers ---- */

/* Gathers the states of task i's distinct upstream tasks, in edge order. */
static int gather_upstreams(lf_run *r, int i) {
  int n = 0, stamp = ++r->stamp; /* one entry per upstream task, however many edges */
  for (int k = r->up_start[i]; k < r->up_start[i + 1]; k++) {
    int u = r->up_task[k];
    if (r->seen[u] == stamp) continue;
    r->seen[u] = stamp;
    r->ups[n++] = r->st[u];
  }
  return n;
}

/* The state a trigger fails with, made from its signal (TRIGGERFAIL or PAUSE,
 * as Prefect's triggers raise them) so the state's result is that signal. */
static lf_state *trigger_signal_state(lf_run *r, lf_kind kind, const char *message) {
  lua_State *L = r->L;
  const char *name = kind == LF_PAUSED          ? "PAUSE"
                     : kind == LF_TRIGGERFAILED ? "TRIGGERFAIL"
                                                : NULL;
  if (!name) return make_state(L, kind, message); /* SKIP: Prefect gives no result */
  int top = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "luaflow.signals");
  lua_getfield(L, -1, name);
  lua_pushstring(L, message);
  lf_state *s;
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lf_signal sig;
    s = lf_error_to_state(L, -1, kind, "", &sig);
    keep_box(r);
    lf_state_ref(s);
  } else {
    s = make_state(L, kind, message);
  }
  lua_settop(L, top);
  return s;
}

/* Calls a Lua trigger as trigger(states, by_task); returns NULL when it
 * passes, else the state it fails the task with. */
static lf_state *lua_trigger(lf_run *r, int i, int nups) {
  lua_State *L = r->L;
  int top = lua_gettop(L);
  push_spec(r, i, LF_SPEC_TRIGGER);
  lua_createtable(L, nups, 0);
  for (int j = 0; j < nups; j++) {
    lf_boxes_push(L, &r->boxes, r->ups[j]);
    lua_rawseti(L, -2, j + 1);
  }
  lua_newtable(L);
  for (int k = r->up_start[i]; k < r->up_start[i + 1]; k++) {
    lua_rawgeti(L, r->tasks_t, r->up_task[k] + 1);
    lf_boxes_push(L, &r->boxes, r->st[r->up_task[k]]);
    lua_rawset(L, -3);
  }
  luaL_setmetatable(L, "luaflow.TaskMap");
  lf_state *s = NULL;
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    lf_signal sig;
    s = lf_error_to_state(L, -1, LF_TRIGGERFAILED,
                          "Unexpected error while checking task trigger: ", &sig);
    keep_box(r);
    lf_state_ref(s);
  } else if (!lua_toboolean(L, -1)) {
    s = trigger_signal_state(r, LF_TRIGGERFAILED, "Trigger failed");
  }
  lua_settop(L, top);
  return s;
}

static lf_state *check_trigger(lf_run *r, int i) {
  lf_task *t = r->flow->tasks[i];
  int nups = gather_upstreams(r, i);
  if (t->skip_on_upstream_skip)
    for (int j = 0; j < nups; j++)
      if (LF_IS(r->ups[j], LF_SKIPPED))
        return make_state(
            r->L, LF_SKIPPED,
            "Upstream task was skipped; if this was not the intended "
            "behavior, consider setting `skip_on_upstream_skip = false` for "
            "this task.");
  if (t->trigger == LF_TRIGGER_LUA) return lua_trigger(r, i, nups);
  lf_trigger_result res = lf_trigger_check(t->trigger, r->ups, nups, t->at_least,
                                           t->at_most, r->flags[i] & F_RESUME);
  return res.pass ? NULL : trigger_signal_state(r, res.kind, res.message);
}

/* ---- the task pipeline ---- */

static void finish(lf_run *r, int i) {
  lf_state *s = r->st[i];
  if (lf_log_enabled(LF_LOG_INFO))
    lf_log(LF_LOG_INFO, "luaflow.TaskRunner",
           "Task '%s': Finished task run for task with final state: '%s'",
           object(r, i)->name, lf_kind_name(s->kind));
  if (!LF_IS(s, LF_FINISHED)) return; /* waits: paused or pending */
  r->flags[i] |= F_FINISHED;
  for (int k = r->down_start[i]; k < r->down_start[i + 1]; k++) {
    int d = r->down_task[k];
    if (--r->npend[d] == 0) ready_push(r, r->rank[d]);
  }
}

/* Sets task i to `next` through the transition function. */
static int move(lf_run *r, int i, lf_state *next) {
  int end;
  lf_state *s = transition(r, i, r->st[i], next, &end);
  set_state(r, i, s);
  return end;
}

static void start_attempt(lf_run *r, int i);

/* After a task's last transition of this turn: a Scheduled-family state with a
 * start time (a retry) waits on the timer heap; anything else is finished
 * (or waits for approval, when Paused). */
static void settle(lf_run *r, int i, int end) {
  lf_state *s = r->st[i];
  if (!end && lf_kind_is_scheduled_family((lf_kind)s->kind) && s->has_start) {
    timer_push(r, s->start_time, i);
    return;
  }
  finish(r, i);
}

/* A ready task (its upstreams are finished, or its retry is due). */
static void begin(lf_run *r, int i) {
  lf_task *t = r->flow->tasks[i];
  r->cur = i;
  if (!(r->flags[i] & F_STARTED)) {
    r->flags[i] |= F_STARTED;
    r->attempt[i] = 1;
    r->loops[i] = 1;
    if (lf_log_enabled(LF_LOG_INFO))
      lf_log(LF_LOG_INFO, "luaflow.TaskRunner", "Task '%s': Starting task run...",
             t->obj.name);
    lf_state *fail = check_trigger(r, i);
    if (fail) {
      move(r, i, fail);
      finish(r, i); /* a trigger that does not pass is final */
      return;
    }
  } else if (r->st[i]->kind == LF_RETRYING) {
    r->attempt[i] = r->st[i]->run_count + 1;
  }
  start_attempt(r, i);
}

/* The executor seam: a task run is submitted with its inputs and its outcome
 * comes back as an event (on_outcome). This inline executor runs the body at
 * once; worker executors will deliver the same events later. */
static void executor_submit(lf_run *r, int i) {
  if (r->ndone == r->cap_done) { /* grow the ring, oldest first */
    lf_outcome *old = r->done;
    int cap = r->cap_done;
    r->done = slot_block(r->L, r->done_slot, cap * 2, sizeof *r->done);
    for (int k = 0; k < r->ndone; k++)
      r->done[k] = old[(r->done_head + k) % cap];
    r->done_head = 0;
    r->cap_done = cap * 2;
  }
  lf_outcome *o = &r->done[(r->done_head + r->ndone++) % r->cap_done];
  o->task = i;
  o->state = run_body(r, i, &o->end);
}

static void start_attempt(lf_run *r, int i) {
  int end = move(r, i, lf_state_ref(r->running));
  if (end || r->st[i]->kind != LF_RUNNING) { /* the body runs only from Running */
    settle(r, i, end);
    return;
  }
  executor_submit(r, i);
}

static void on_outcome(lf_run *r, lf_outcome o) {
  lua_State *L = r->L;
  int i = o.task;
  lf_task *t = r->flow->tasks[i];
  r->cur = i;
  int end = move(r, i, o.state) || o.end;
  lf_state *s = r->st[i];
  if (!end && LF_IS(s, LF_FAILED) && r->attempt[i] <= t->max_retries) {
    char msg[96];
    snprintf(msg, sizeof msg, "Retrying Task (after attempt %d of %d)", r->attempt[i],
             t->max_retries + 1);
    lf_state *retry = lf_state_new(LF_RETRYING, msg);
    if (!retry) luaL_error(L, "not enough memory");
    retry->has_start = 1;
    retry->start_time = lf_now() + t->retry_delay;
    retry->run_count = r->attempt[i];
    end = move(r, i, retry);
  } else if (!end && s->kind == LF_LOOPED) {
    /* LOOP: run again with the loop's result in the context; the Pending
     * between iterations is not a transition of its own (as in Prefect). */
    lf_state_release(r->loop_state);
    r->loop_state = lf_state_ref(s);
    r->loops[i]++;
    char msg[64];
    snprintf(msg, sizeof msg, "Looping task (on loop index %d)", r->loops[i] - 1);
    lf_state *p = lf_state_new(LF_PENDING, msg);
    if (!p) luaL_error(L, "not enough memory");
    set_state(r, i, p);
    start_attempt(r, i);
    return;
  }
  settle(r, i, end);
}

/* ---- the flow ---- */

static int is_terminal(lf_run *r, int i) {
  return r->down_start[i] == r->down_start[i + 1];
}

static lf_state *final_flow_state(lf_run *r) {
  lf_flow *f = r->flow;
  for (int i = 0; i < r->n; i++)
    if (is_terminal(r, i) && !LF_IS(r->st[i], LF_FINISHED)) {
      lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
             "Flow run RUNNING: terminal tasks are incomplete.");
      return NULL;
    }
  int failed = 0, all_ok = 1;
  for (int i = 0; i < r->n; i++) {
    int ref = 0;
    if (f->nrefs) {
      for (int k = 0; k < f->nrefs && !ref; k++)
        ref = f->refs[k] == i;
    } else {
      ref = is_terminal(r, i);
    }
    if (!ref) continue;
    if (LF_IS(r->st[i], LF_FAILED)) failed = 1;
    if (!LF_IS(r->st[i], LF_SUCCESS)) all_ok = 0;
  }
  if (failed) {
    lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
           "Flow run FAILED: some reference tasks failed.");
    return make_state(r->L, LF_FAILED, "Some reference tasks failed.");
  }
  if (all_ok) {
    lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
           "Flow run SUCCESS: all reference tasks succeeded");
    return make_state(r->L, LF_SUCCESS, "All reference tasks succeeded.");
  }
  lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
         "Flow run SUCCESS: no reference tasks failed");
  return make_state(r->L, LF_SUCCESS, "No reference tasks failed.");
}

/* Paused -> Resume("Approval given to resume.") through the handlers. */
static void resume_task(lf_run *r, int i) {
  r->cur = i;
  r->flags[i] &= ~(F_RESUME | F_ASKED);
  lf_state *next = make_state(r->L, LF_RESUME, "Approval given to resume.");
  next->has_start = 1;
  next->start_time = lf_now();
  int end = move(r, i, next);
  if (!end && r->st[i]->kind == LF_RESUME)
    ready_push(r, r->rank[i]);
  else
    settle(r, i, end);
}

/* With nothing else to do, paused tasks approved in advance resume, and the
 * approver (the CLI's prompt), when there is one, is asked about the others
 * once per pause. Returns how many resumed. */
static int approve_paused(lf_run *r) {
  lua_State *L = r->L;
  int resumed = 0;
  for (int k = 0; k < r->n; k++) {
    int i = r->order[k];
    if (r->st[i]->kind != LF_PAUSED || r->st[i]->has_start || (r->flags[i] & F_ASKED))
      continue;
    int approved = (r->flags[i] & F_RESUME) != 0;
    if (!approved && r->approve_idx) {
      r->flags[i] |= F_ASKED;
      lua_pushvalue(L, r->approve_idx);
      push_object(r, i);
      approved = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    if (approved) {
      resume_task(r, i);
      resumed++;
    }
  }
  return resumed;
}

/* Outcomes first, then ready tasks in topological order, then timers; with
 * nothing ready it sleeps until the next timer is due. */
static void schedule(lf_run *r) {
  for (;;) {
    if (r->ndone > 0) {
      lf_outcome o = r->done[r->done_head];
      r->done_head = (r->done_head + 1) % r->cap_done;
      r->ndone--;
      on_outcome(r, o);
      continue;
    }
    if (lf_cancel_signal) break; /* nothing new starts once cancelled */
    if (r->nready > 0) {
      begin(r, r->order[ready_pop(r)]);
      continue;
    }
    if (r->ntimers == 0) {
      if (approve_paused(r)) continue;
      break;
    }
    double wait = r->timers[0].due - lf_now();
    if (wait > 0) lf_sleep(wait); /* nothing is ready: sleep until the next timer */
    double now = lf_now();
    while (r->ntimers > 0 && r->timers[0].due <= now) {
      lf_timer tm = timer_pop(r);
      ready_push(r, r->rank[tm.task]);
    }
  }
}

/* Lays the run's arrays out in one block owned by a userdata on the stack, so
 * an error unwinding the run frees them. */
static void layout(lf_run *r, lua_State *L) {
  int n = r->n, e = r->flow->nedges;
  size_t ints = (size_t)n * 7 + 2 * ((size_t)n + 1) + 3 * (size_t)e + 4;
  size_t size = ints * sizeof(int) + (size_t)n * 2 * sizeof(lf_state *) + (size_t)n + 64 +
                ((size_t)n + 63) / 64 * sizeof(uint64_t) + 8;
  char *p = lua_newuserdatauv(L, size, 0);
  memset(p, 0, size);
  r->st = (lf_state **)p;
  p += (size_t)n * sizeof(lf_state *);
  r->ups = (lf_state **)p;
  p += (size_t)n * sizeof(lf_state *);
  int *ip = (int *)p;
  r->order = ip, ip += n;
  r->rank = ip, ip += n;
  r->npend = ip, ip += n;
  r->attempt = ip, ip += n;
  r->loops = ip, ip += n;
  r->seen = ip, ip += n;
  r->heap = ip, ip += n;
  r->up_start = ip, ip += n + 1;
  r->down_start = ip, ip += n + 1;
  r->up_task = ip, ip += e;
  r->up_key = ip, ip += e;
  r->down_task = ip, ip += e;
  r->flags = (uint8_t *)ip;
  r->bits = (uint64_t *)(((uintptr_t)(r->flags + n) + 7) & ~(uintptr_t)7);
}

static void build_adjacency(lf_run *r) {
  lf_flow *f = r->flow;
  int n = r->n;
  for (int k = 0; k < f->nedges; k++) {
    r->up_start[f->edges[k].down + 1]++;
    r->down_start[f->edges[k].up + 1]++;
  }
  for (int i = 0; i < n; i++) {
    r->up_start[i + 1] += r->up_start[i];
    r->down_start[i + 1] += r->down_start[i];
  }
  int *ufill = r->npend, *dfill = r->attempt; /* scratch, reset below */
  for (int i = 0; i < n; i++)
    ufill[i] = r->up_start[i], dfill[i] = r->down_start[i];
  for (int k = 0; k < f->nedges; k++) {
    lf_edge *ed = &f->edges[k];
    r->up_task[ufill[ed->down]] = ed->up;
    r->up_key[ufill[ed->down]++] = ed->key;
    r->down_task[dfill[ed->up]++] = ed->down;
  }
  for (int i = 0; i < n; i++) {
    r->npend[i] = r->up_start[i + 1] - r->up_start[i];
    r->attempt[i] = 0;
  }
}

/* core.flow_run(flow, order, resume_indices, approve) -> the flow's final
 * state, whose result maps every task to its final state
 * `order` comes from core.flow_order (the Lua side reports cycles). */
static int flow_run(lua_State *L) {
  lf_run run = {0}, *r = &run;
  r->L = L;
  r->flow = lf_check_flow(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  r->n = r->flow->ntasks;
  r->flow_ud = 1;
  r->cur = -1;
  lua_settop(L, 4);
  if (!lua_isnil(L, 4)) r->approve_idx = 4;
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "tasks");
  r->tasks_t = lua_gettop(L);
  lf_boxes_init(L, &r->boxes);
  layout(r, L);
  r->cap_timers = r->cap_done = 16;
  lua_pushnil(L);
  r->timers_slot = lua_gettop(L);
  r->timers = slot_block(L, r->timers_slot, r->cap_timers, sizeof *r->timers);
  lua_pushnil(L);
  r->done_slot = lua_gettop(L);
  r->done = slot_block(L, r->done_slot, r->cap_done, sizeof *r->done);
  for (int k = 0; k < r->n; k++) {
    lua_rawgeti(L, 2, k + 1);
    r->order[k] = (int)lua_tointeger(L, -1) - 1;
    r->rank[r->order[k]] = k;
    lua_pop(L, 1);
  }
  if (lua_istable(L, 3))
    for (lua_Integer k = 1, n = luaL_len(L, 3); k <= n; k++) {
      lua_rawgeti(L, 3, k);
      r->flags[lua_tointeger(L, -1) - 1] |= F_RESUME;
      lua_pop(L, 1);
    }
  build_adjacency(r);
  r->pending = make_state(L, LF_PENDING, NULL);
  r->running = make_state(L, LF_RUNNING, "Starting task run.");
  r->success = make_state(L, LF_SUCCESS, "Task run succeeded.");
  for (int i = 0; i < r->n; i++)
    r->st[i] = lf_state_ref(r->pending);

  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_run_key);
  int outer = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  lua_pushvalue(L, r->boxes.table);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  lf_runs_active++;
  lua_pushlightuserdata(L, r);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_run_key);

  lf_log(LF_LOG_INFO, "luaflow.FlowRunner", "Beginning Flow run for '%s'",
         r->flow->obj.name);
  lf_state *scheduled = make_state(L, LF_SCHEDULED, NULL);
  scheduled->has_start = 1;
  scheduled->start_time = lf_now();
  int end;
  lf_state *fs =
      transition(r, -1, scheduled, make_state(L, LF_RUNNING, "Running flow."), &end);
  lf_state_release(scheduled);
  if (!end && fs->kind == LF_RUNNING) {
    for (int i = 0; i < r->n; i++)
      if (r->npend[i] == 0) ready_push(r, r->rank[i]);
    schedule(r);
    r->cur = -1;
    lf_state *final;
    if (lf_cancel_signal) {
      lf_log(LF_LOG_WARNING, "luaflow.FlowRunner", "Flow run was cancelled.");
      final = make_state(L, LF_CANCELLED, "Flow run was cancelled.");
    } else {
      final = final_flow_state(r);
    }
    if (final) {
      lf_state *s = transition(r, -1, fs, final, &end);
      lf_state_release(fs);
      fs = s;
    }
  }

  lua_pushvalue(L, outer);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_run_key);
  lua_pushvalue(L, outer + 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  lf_runs_active--;
  /* Results: boxes keep them from here on, owned by the GC. */
  lf_boxes_push(L, &r->boxes, fs);
  lf_state_release(fs);
  int fbox = lua_gettop(L);
  lua_createtable(L, r->n, 0); /* states by task index */
  lf_state *not_run = NULL;
  for (int i = 0; i < r->n; i++) {
    if (!(r->flags[i] & F_STARTED)) {
      if (!not_run) not_run = make_state(L, LF_PENDING, "Task not run.");
      lf_boxes_push(L, &r->boxes, not_run);
    } else {
      lf_boxes_push(L, &r->boxes, r->st[i]);
    }
    lua_rawseti(L, -2, i + 1);
  }
  lf_state_release(not_run);
  /* the flow state's result maps every task to its state (as Prefect sets it) */
  lf_result_new(L, r->n, r->order, r->attempt, -1, r->flow_ud);
  lua_setiuservalue(L, fbox, 1);
  lf_check_state(L, fbox)->has_result = 1;
  lua_settop(L, fbox);
  for (int i = 0; i < r->n; i++)
    lf_state_release(r->st[i]);
  lf_state_release(r->pending);
  lf_state_release(r->running);
  lf_state_release(r->success);
  lf_state_release(r->loop_state);
  return 1;
}

/* core.context_get(key): the current task's context values. */
static int context_get(lua_State *L) {
  lf_run *r = current_run(L);
  const char *key = luaL_checkstring(L, 1);
  if (!r || r->cur < 0) {
    if (strcmp(key, "task_run_count") == 0 || strcmp(key, "task_loop_count") == 0)
      lua_pushnil(L);
    else if (r && strcmp(key, "flow_name") == 0)
      lua_pushstring(L, r->flow->obj.name);
    else
      lua_pushnil(L);
    return 1;
  }
  int i = r->cur;
  if (strcmp(key, "task_run_count") == 0)
    lua_pushinteger(L, r->attempt[i]);
  else if (strcmp(key, "task_loop_count") == 0)
    lua_pushinteger(L, r->loops[i]);
  else if (strcmp(key, "task_loop_result") == 0) {
    lf_boxes boxes = r->boxes; /* its table lives in the run's frame: reach it by key */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
    boxes.table = lua_gettop(L);
    if (r->loop_state)
      lf_boxes_push_result(L, &boxes, r->loop_state);
    else
      lua_pushnil(L);
  } else if (strcmp(key, "task_name") == 0)
    lua_pushstring(L, object(r, i)->name);
  else if (strcmp(key, "flow_name") == 0)
    lua_pushstring(L, r->flow->obj.name);
  else
    lua_pushnil(L);
  return 1;
}

static int running(lua_State *L) {
  lua_pushboolean(L, current_run(L) != NULL);
  return 1;
}

/* core.state_set_result(box, value): the flow state's task map, set once the
 * run is over (as Prefect sets the flow state's result). */
static int state_set_result(lua_State *L) {
  lf_state *s = lf_check_state(L, 1);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 1);
  s->has_result = 1;
  return 0;
}

/* core.install_signal_handlers(): SIGINT/SIGTERM cancel the run (the CLI). */
static int install_signal_handlers(lua_State *L) {
  lua_State *main;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  lf_interrupt_install(main);
  return 0;
}

/* core.cancel_signal() -> the signal number that cancelled, or nil. */
static int cancel_signal(lua_State *L) {
  if (lf_cancel_signal)
    lua_pushinteger(L, lf_cancel_signal);
  else
    lua_pushnil(L);
  return 1;
}

void lf_open_runner(lua_State *L) {
  static const luaL_Reg fns[] = {{"flow_run", flow_run},
                                 {"install_signal_handlers", install_signal_handlers},
                                 {"cancel_signal", cancel_signal},
                                 {"context_get", context_get},
                                 {"running", running},
                                 {"state_set_result", state_set_result},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  (void)handler_error_key;
}
