/* The Lua host (see lua_host.h): Lua handlers, Lua triggers, signal states,
 * the approver and the terminal_state_handler of a run, over the run's Lua
 * values in the slots of its protected call. */
#include <stdio.h>
#include <string.h>
#include "log.h"
#include "lua_host.h"
#include "map.h"

static lf_lua_host *lua_host(lf_host *base) {
  return (lf_lua_host *)base;
}

void lf_lua_host_enter(lf_lua_host *h) {
  lua_settop(h->L, LF_NSLOTS);
  h->boxes.table = LF_SLOT_BOXES;
  h->spec_of = h->handlers_of = NULL;
}

void lf_lua_host_push_object(lf_lua_host *h, int i) {
  if (i < 0)
    lua_pushvalue(h->L, LF_SLOT_FLOW);
  else
    lua_rawgeti(h->L, LF_SLOT_TASKS, i + 1);
}

/* Whose spec table object i has: the copies of a task share their origin's. */
static const void *spec_owner(const lf_run *r, int i) {
  if (i < 0) return r->flow;
  const lf_task *t = lf_run_task(r, i);
  return t->origin ? (const void *)t->origin : (const void *)t;
}

void lf_lua_host_push_spec(lf_lua_host *h, lf_run *r, int i, int key) {
  lua_State *L = h->L;
  const void *of = spec_owner(r, i);
  if (of != h->spec_of) {
    lf_lua_host_push_object(h, lf_run_task_index(r, i));
    lua_getiuservalue(L, -1, LF_UV_SPEC);
    lua_replace(L, LF_SLOT_SPEC);
    lua_pop(L, 1);
    h->spec_of = of;
  }
  lua_rawgeti(L, LF_SLOT_SPEC, key);
}

int lf_lua_host_push_args(lf_lua_host *h, lf_run *r, int i) {
  if (i >= r->ntasks) return lf_lua_map_push_args(h, r, i);
  return lf_lua_host_push_task_args(h, r, i, lua_gettop(h->L));
}

void lf_lua_host_keep_box(lf_lua_host *h) {
  lf_boxes_keep(h->L, &h->boxes);
}

lf_state *lf_lua_host_error_state(lf_lua_host *h, int err, lf_kind kind,
                                  const char *prefix, lf_signal *sig) {
  lua_pushvalue(h->L, err); /* the translator works at the top of the stack */
  lf_state *s = lf_error_to_state(h->L, -1, kind, prefix, sig);
  lf_lua_host_keep_box(h);
  lua_pop(h->L, 1);
  return lf_state_ref(s);
}

static lf_state *engine_state(lf_lua_host *h, lf_kind k, const char *static_msg) {
  lf_state *s = lf_state_static(k, static_msg);
  if (!s) luaL_error(h->L, "not enough memory");
  return s;
}

/* ---- handlers ---- */

/* Notes where Lua handler h of object i was defined, so the ERROR line about
 * its bad return value can send the user there. */
static void note_bad_return(lf_lua_host *h, lf_run *r, int i, int handler) {
  lua_State *L = h->L;
  lua_Debug ar;
  lf_lua_host_push_spec(h, r, i, LF_SPEC_HANDLERS);
  lua_rawgeti(L, -1, handler);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1) && lua_getinfo(L, ">S", &ar) && ar.source[0] == '@')
    snprintf(h->bad_return_where, sizeof h->bad_return_where,
             " (the handler defined at %s:%d must return nil, false or a State)",
             ar.source + 1, ar.linedefined);
  else
    lua_pop(L, 1);
}

/* handler(obj, old_state, new_state): nil or false keep the state, a State
 * replaces it, anything else is the handler's error. Returning the box it
 * was given (the usual `return new_state`) keeps the state without a look at
 * the value's metatable. on_failure(obj, state) returns nothing of use. */
static lf_state *call_handler(lf_host *base, lf_run *r, int i, const lf_handler *hd,
                              lf_state *old, lf_state *next) {
  lf_lua_host *h = lua_host(base);
  lua_State *L = h->L;
  const void *of = spec_owner(r, i);
  if (of != h->handlers_of) { /* a chain calls its object's handlers in turn */
    lf_lua_host_push_spec(h, r, i, LF_SPEC_HANDLERS);
    lua_replace(L, LF_SLOT_HANDLERS);
    h->handlers_of = of;
  }
  lua_rawgeti(L, LF_SLOT_HANDLERS, hd->lua);
  if (i < 0)
    lua_pushvalue(L, LF_SLOT_FLOW);
  else /* a mapped task's child: the parent task */
    lua_rawgeti(L, LF_SLOT_TASKS, lf_run_task_index(r, i) + 1);
  if (hd->on_failure) {
    lf_boxes_push(L, &h->boxes, next);
    lua_call(L, 2, 0);
    return NULL;
  }
  lf_boxes_push(L, &h->boxes, old);
  lf_boxes_push(L, &h->boxes, next);
  const void *given = lua_touserdata(L, -1);
  lua_call(L, 3, 1);
  const void *got = lua_touserdata(L, -1); /* the box given back: no more to look at */
  if (got == given || (!got && !lua_toboolean(L, -1))) {
    lua_pop(L, 1);
    return NULL;
  }
  lf_state *s = lf_test_state(L, -1);
  if (!s) {
    const char *type = luaL_typename(L, -1);
    note_bad_return(h, r, i, hd->lua);
    lua_pushfstring(L, "state handler returned a %s", type);
    lua_error(L);
  }
  if (s == next) {
    lua_pop(L, 1);
    return NULL;
  }
  lf_lua_host_keep_box(h); /* the replacement's box stays for the run */
  return lf_state_ref(s);
}

/* ---- triggers ---- */

/* The state of a failed built-in trigger, made from its signal (TRIGGERFAIL
 * or PAUSE, as Prefect's triggers raise them) so the state's result is that
 * signal. */
static lf_state *signal_state(lf_host *base, lf_run *r, lf_kind kind,
                              const char *message) {
  (void)r;
  lf_lua_host *h = lua_host(base);
  lua_State *L = h->L;
  lf_signal code = kind == LF_SKIPPED ? LF_SIG_NONE : lf_signal_for_kind(kind);
  if (!code) return lf_state_static(kind, message); /* SKIP: Prefect gives no result */
  int top = lua_gettop(L);
  lf_signal_new(L, code, message);
  lf_signal sig;
  lf_state *s = lf_lua_host_error_state(h, -1, kind, "", &sig);
  lua_settop(L, top);
  return s;
}

/* trigger(states, by_task): the states of the distinct upstream tasks in
 * edge order, and each upstream task's state by task. */
static lf_state *trigger(lf_host *base, lf_run *r, int i, lf_state *const *ups, int n) {
  lf_lua_host *h = lua_host(base);
  lua_State *L = h->L;
  lf_lua_host_push_spec(h, r, i, LF_SPEC_TRIGGER);
  lua_createtable(L, n, 0);
  for (int j = 0; j < n; j++) {
    lf_boxes_push(L, &h->boxes, ups[j]);
    lua_rawseti(L, -2, j + 1);
  }
  lua_newtable(L);
  int p = lf_run_task_index(r, i); /* a child: its parent's edges, its own states */
  for (int k = r->up.start[p]; k < r->up.start[p + 1]; k++) {
    lua_rawgeti(L, LF_SLOT_TASKS, r->up.task[k] + 1);
    lf_boxes_push(L, &h->boxes,
                  r->map ? lf_map_upstream_state(r, i, k) : r->task[r->up.task[k]].state);
    lua_rawset(L, -3);
  }
  luaL_setmetatable(L, LF_TASKMAP_MT);
  lua_call(L, 2, 1);
  int passed = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return passed ? NULL : signal_state(base, r, LF_TRIGGERFAILED, "Trigger failed");
}

/* ---- the flow's end ---- */

static int approve(lf_host *base, lf_run *r, int i) {
  lf_lua_host *h = lua_host(base);
  lua_State *L = h->L;
  if (lua_isnil(L, LF_SLOT_APPROVER)) return 0;
  lua_pushvalue(L, LF_SLOT_APPROVER);
  lf_lua_host_push_object(h, lf_run_task_index(r, i));
  int approved = lf_pcall(L, 1, 1) == LUA_OK && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return approved;
}

/* Pushes the reference tasks' states (default: the terminal tasks, in
 * topological order) as a list that also maps every task to its state (see
 * LF_REFERENCE_STATES_KEY in lua_run_tables.c). */
static void push_reference_states(lf_lua_host *h, lf_run *r) {
  lua_State *L = h->L;
  lf_flow *f = r->flow;
  lua_getfield(L, LUA_REGISTRYINDEX, LF_REFERENCE_STATES_KEY);
  lua_newtable(L);
  for (int k = 0, n = 0; k < (f->nrefs ? f->nrefs : r->ntasks); k++) {
    int i = f->nrefs ? f->refs[k] : r->order[k];
    if (f->nrefs || r->down.start[i] == r->down.start[i + 1]) {
      lf_boxes_push(L, &h->boxes, r->task[i].state);
      lua_rawseti(L, -2, ++n);
    }
  }
  lua_createtable(L, 0, r->ntasks);
  for (int i = 0; i < r->ntasks; i++) {
    lf_state *s = lf_run_final_state(r, i);
    if (!s) luaL_error(L, "not enough memory");
    lua_rawgeti(L, LF_SLOT_TASKS, i + 1);
    lf_boxes_push(L, &h->boxes, s);
    lua_rawset(L, -3);
  }
  lua_call(L, 2, 1);
}

/* Flow{terminal_state_handler = fn}, as Prefect's: fn(flow, state, reference
 * states) once the reference tasks have decided `final` (NULL: the
 * flow stays Running). A State it returns replaces the state; an error or a
 * signal is the step's outcome ("Unexpected error: ..." for a plain error).
 * Returns the state the flow moves to (consuming `final`), or NULL. */
static lf_state *terminal(lf_host *base, lf_run *r, lf_state *final) {
  lf_lua_host *h = lua_host(base);
  lua_State *L = h->L;
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LF_TERMINAL_HANDLERS_KEY);
  if (!lua_istable(L, -1)) {
    lua_settop(L, top);
    return final;
  }
  lua_pushvalue(L, LF_SLOT_FLOW);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_settop(L, top);
    return final;
  }
  lf_state *given = final ? final : r->flow_state, *s = NULL;
  lua_pushvalue(L, LF_SLOT_FLOW);
  lf_boxes_push(L, &h->boxes, given);
  push_reference_states(h, r);
  int rc = lf_pcall(L, 3, 1);
  if (rc == LUA_OK && lua_toboolean(L, -1) && (s = lf_test_state(L, -1)) != NULL) {
    lf_state_ref(s);
    lf_lua_host_keep_box(h); /* the replacement keeps its result for the run */
  } else if (rc != LUA_OK || lua_toboolean(L, -1)) {
    if (rc == LUA_OK)
      lua_pushfstring(L, "terminal_state_handler returned a %s", luaL_typename(L, -1));
    lf_signal sig;
    s = lf_lua_host_error_state(h, -1, LF_FAILED, "Unexpected error: ", &sig);
    if (sig == LF_SIG_NONE) lf_log(LF_LOG_ERROR, "luaflow.FlowRunner", "%s", s->message);
  }
  lua_settop(L, top);
  if (!s || s == given) { /* kept: the very same state */
    lf_state_release(s);
    return final;
  }
  lf_state_release(final);
  if (s == r->flow_state) { /* back to the flow's own Running state: no change */
    lf_state_release(s);
    return NULL;
  }
  return s;
}

/* ---- errors ---- */

static lf_state *error_state(lf_host *base, lf_run *r, lf_kind kind, const char *prefix,
                             const char *text) {
  (void)r;
  lf_lua_host *h = lua_host(base);
  lua_pushstring(h->L, text);
  lf_signal sig;
  lf_state *s = lf_lua_host_error_state(h, -1, kind, prefix, &sig);
  lua_pop(h->L, 1);
  return s;
}

static void host_abort(lf_host *base, lf_run *r, const char *message) {
  (void)r;
  lf_lua_host *h = lua_host(base);
  h->aborted = 1;
  lua_pushstring(h->L, message);
  lua_error(h->L);
}

void lf_lua_host_recover(lf_lua_host *h, lf_run *r, int err, int cancelled) {
  lf_busy busy = r->busy;
  r->busy = LF_BUSY_NONE; /* an error from here on ends the run */
  lf_signal sig;
  if (busy == LF_BUSY_CHAIN) {
    if (cancelled) {
      lf_run_handler_cancelled(r);
      return;
    }
    lf_object *obj = lf_run_object(r, r->chain.object);
    lf_state *s = lf_lua_host_error_state(
        h, err, LF_FAILED, "Unexpected error while calling state handlers: ", &sig);
    if (sig == LF_SIG_NONE)
      lf_log(LF_LOG_ERROR, obj->is_flow ? "luaflow.FlowRunner" : "luaflow.TaskRunner",
             "%s '%s': %s%s", lf_object_label(obj), obj->name, s->message,
             h->bad_return_where);
    h->bad_return_where[0] = '\0';
    lf_run_handler_failed(
        r, s, sig == LF_SIG_NONE || sig == LF_SIG_PAUSE || sig == LF_SIG_ENDRUN);
  } else if (busy == LF_BUSY_TRIGGER) {
    lf_state *s = cancelled ? engine_state(h, LF_CANCELLED, "Flow run was cancelled.")
                            : lf_lua_host_error_state(
                                  h, err, LF_TRIGGERFAILED,
                                  "Unexpected error while checking task trigger: ", &sig);
    lf_run_trigger_failed(r, s);
  }
}

static const lf_host_ops lua_host_ops = {
    .call_handler = call_handler,
    .trigger = trigger,
    .signal_state = signal_state,
    .error_state = error_state,
    .approve = approve,
    .terminal = terminal,
    .map_count = lf_lua_map_count,
    .map_final = lf_lua_map_final,
    .cache_lookup = lf_lua_cache_lookup,
    .cache_save = lf_lua_cache_save,
    .retry_on = lf_lua_host_retry_on,
    .overdue = lf_lua_host_overdue,
    .wake = lf_lua_host_wake,
    .abort = host_abort,
};

void lf_lua_host_init(lf_lua_host *h, lua_State *L) {
  memset(h, 0, sizeof *h);
  h->base.ops = &lua_host_ops;
  h->L = L;
  lf_boxes_init(L, &h->boxes);
}
