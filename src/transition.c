/* The one transition function: every task and flow state change goes
 * through its handlers here. */
#include <stdio.h>
#include <string.h>
#include "lua_interrupt.h"
#include "log.h"
#include "run.h"

static char handler_error[1024];
/* Where the handler that returned a bad value was defined, for the ERROR line. */
static char bad_return_where[512];

void lf_handler_error(const lf_object *obj, const char *message) {
  (void)obj;
  snprintf(handler_error, sizeof handler_error, "%s",
           message ? message : "C handler failed");
}

void lf_handler_error_reset(void) {
  handler_error[0] = '\0';
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

/* The error a handler raised, as the state the object ends in. */
static lf_state *handler_failure(lf_run *r, lf_object *obj, int err_idx, lf_signal *sig) {
  lf_state *s = lf_error_to_state(r->L, err_idx, LF_FAILED,
                                  "Unexpected error while calling state handlers: ", sig);
  if (*sig == LF_SIG_NONE)
    lf_log(LF_LOG_ERROR, obj->is_flow ? "luaflow.FlowRunner" : "luaflow.TaskRunner",
           "%s '%s': %s%s", object_label(obj), obj->name, s->message, bad_return_where);
  bad_return_where[0] = '\0';
  lf_run_keep_box(r);
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
  int from, at;   /* the first handler to call; the one being called */
} lf_chain;

/* Calls C handler hd; returns 0 to go on, 1 when it failed (chain ends). */
static int call_c_handler(lf_chain *c, lf_object *obj, lf_handler *hd) {
  lf_state *out = NULL;
  lf_handler_error_reset();
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

/* Notes where Lua handler h of object i was defined, so the ERROR line about
 * its bad return value can send the user there. */
static void note_bad_return(lf_run *r, int i, int h) {
  lua_State *L = r->L;
  lua_Debug ar;
  lf_run_push_spec(r, i, LF_SPEC_HANDLERS);
  lua_rawgeti(L, -1, h);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1) && lua_getinfo(L, ">S", &ar) && ar.source[0] == '@')
    snprintf(bad_return_where, sizeof bad_return_where,
             " (the handler defined at %s:%d must return nil, false or a State)",
             ar.source + 1, ar.linedefined);
  else
    lua_pop(L, 1);
}

/* What a Lua handler returned (on top of the stack, popped): nil or false
 * keep the state, a State replaces it; anything else is a handler error and
 * its type name is returned. `given` is the box of the new state the handler
 * was given: returning it (the usual `return new_state`) keeps the state
 * without a look at the value's metatable. */
static const char *take_result(lua_State *L, lf_run *r, lf_chain *c, const void *given) {
  if (!lua_toboolean(L, -1) || lua_touserdata(L, -1) == given) {
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
  r->spec_slot = 0; /* the run's slots are not reachable from this frame */
  lf_object *obj = lf_run_object(r, c->i);
  lf_run_push_spec(r, c->i, LF_SPEC_HANDLERS);
  int handlers = lua_gettop(L);
  lf_run_push_object(r, c->i);
  int objv = lua_gettop(L);
  for (int h = c->from; h < obj->nhandlers; h++) {
    lf_handler *hd = &obj->handlers[h];
    c->at = h;
    if (hd->fn) {
      if (call_c_handler(c, obj, hd)) return 0;
      continue;
    }
    if (hd->on_failure && !LF_IS(c->next, LF_FAILED)) continue;
    lua_rawgeti(L, handlers, hd->lua);
    lua_pushvalue(L, objv);
    if (!hd->on_failure) lf_boxes_push(L, &r->boxes, c->old);
    lf_boxes_push(L, &r->boxes, c->next);
    const void *given = lua_touserdata(L, -1);
    lua_call(L, hd->on_failure ? 2 : 3, 1);
    if (hd->on_failure) {
      lua_pop(L, 1);
      continue;
    }
    const char *bad = take_result(L, r, c, given);
    if (bad) {
      note_bad_return(r, c->i, hd->lua);
      return luaL_error(L, "state handler returned a %s", bad);
    }
  }
  return 0;
}

/* Calls the chain's handlers from c->from on, under a watch that lets
 * SIGINT/SIGTERM stop them (*cancelled then). Returns the pcall's status,
 * the error on the stack when it is not LUA_OK. */
static int call_lua_handlers(lf_chain *c, int *cancelled) {
  lf_run *r = c->r;
  lua_State *L = r->L;
  lf_object *obj = lf_run_object(r, c->i);
  lf_lua_watch watch;
  lf_lua_watch_begin(L, &watch, 0, LF_WATCH_HANDLER);
  int rc;
  if (c->from == 0 && obj->nhandlers == 1 && !obj->handlers[0].on_failure) {
    /* one Lua handler: call it directly, without the chain's frame */
    lf_run_push_spec(r, c->i, LF_SPEC_HANDLERS); /* stays below: the caller's settop */
    lua_rawgeti(L, -1, obj->handlers[0].lua);
    lf_run_push_object(r, c->i);
    lf_boxes_push(L, &r->boxes, c->old);
    lf_boxes_push(L, &r->boxes, c->next);
    const void *given = lua_touserdata(L, -1);
    rc = lua_pcall(L, 3, 1, 0);
    const char *bad = rc == LUA_OK ? take_result(L, r, c, given) : NULL;
    if (bad) {
      note_bad_return(r, c->i, obj->handlers[0].lua);
      lua_pushfstring(L, "state handler returned a %s", bad);
      rc = LUA_ERRRUN;
    }
  } else {
    int boxes = r->boxes.table, tasks = r->tasks_t, flow = r->flow_ud,
        spec = r->spec_slot;
    lua_pushcfunction(L, run_chain);
    lua_pushlightuserdata(L, c);
    lua_pushvalue(L, boxes);
    lua_pushvalue(L, tasks);
    lua_pushvalue(L, flow);
    rc = lua_pcall(L, 4, 0, 0);
    r->boxes.table = boxes, r->tasks_t = tasks, r->flow_ud = flow, r->spec_slot = spec;
  }
  lf_lua_watch_end(L, &watch);
  *cancelled = watch.w.cancelled;
  return rc;
}

/* The one transition function: object i goes from `old` to `next` through
 * its handlers, in order; each sees the same old state and the previous
 * one's result. Returns the state the object is now in (a reference the
 * caller owns; `next` is consumed) and sets *end when nothing more may happen
 * to the object in this run (handler error, PAUSE, ENDRUN). */
lf_state *lf_transition(lf_run *r, int i, lf_state *old, lf_state *next, int *end) {
  lua_State *L = r->L;
  lf_object *obj = lf_run_object(r, i);
  *end = 0;
  if (lf_log_enabled(LF_LOG_DEBUG))
    lf_log(LF_LOG_DEBUG, i < 0 ? "luaflow.FlowRunner" : "luaflow.TaskRunner",
           "%s '%s': Handling state change from %s to %s", object_label(obj), obj->name,
           lf_kind_name(old->kind), lf_kind_name(next->kind));
  if (obj->nhandlers == 0) return next;
  lf_chain c = {r, i, old, next, 0, 0, 0};
  if (obj->nlua == 0) { /* C handlers only: no Lua at all */
    for (int h = 0; h < obj->nhandlers && !call_c_handler(&c, obj, &obj->handlers[h]);
         h++)
      ;
  } else {
    if (!lua_checkstack(L, 16)) luaL_error(L, "stack overflow in the runner");
    int top = lua_gettop(L), cancelled;
    int rc = call_lua_handlers(&c, &cancelled);
    while (rc != LUA_OK && cancelled) {
      /* SIGINT/SIGTERM stopped a handler: the object ends Cancelled through
       * the handlers after it, which run to their end */
      lua_settop(L, top);
      lf_state_release(c.next);
      c.next = lf_run_state(L, LF_CANCELLED, "Flow run was cancelled.");
      *end = 1;
      c.from = c.at + 1;
      rc = c.from < obj->nhandlers ? call_lua_handlers(&c, &cancelled) : LUA_OK;
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
