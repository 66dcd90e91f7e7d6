/* A task's retry policy and the deadlines of tasks and flows on the Lua side:
 * their options (core.new_task, core.flow_set_deadline), the Lua host's
 * retry_on, overdue and wake ops (host.h), and core.wake_after, which the
 * notifiers' digests use to be woken when a window ends. */
#include <float.h>
#include <math.h>
#include <string.h>
#include "clock.h"
#include "deadline.h"
#include "log.h"
#include "lua_graph.h"
#include "lua_host.h"

static const char wake_handler_key = 0; /* registry: the function wake calls */

/* opts[key] as a number in [lo, hi] (lo itself excluded when open); dflt
 * when absent. */
static double number_option(lua_State *L, int opts, const char *key, double dflt,
                            double lo, int open, double hi, const char *expected) {
  double v = dflt;
  if (lua_getfield(L, opts, key) != LUA_TNIL) {
    v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(open ? v > lo : v >= lo) || !(v <= hi))
      lf_raise(L, "%s must be %s", key, expected);
  }
  lua_pop(L, 1);
  return v;
}

/* opts[key], a function, into the spec table uv under the same name;
 * returns whether there was one. */
static int function_option(lua_State *L, int opts, int uv, const char *key) {
  if (lua_getfield(L, opts, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lf_is_callable(L, -1)) lf_raise(L, "%s must be a function", key);
  lua_setfield(L, uv, key);
  return 1;
}

static int given(lua_State *L, int opts, const char *key) {
  int there = lua_getfield(L, opts, key) != LUA_TNIL;
  lua_pop(L, 1);
  return there;
}

void lf_parse_task_policy(lua_State *L, lf_task *t, int opts, int uv) {
  static const char *const options[] = {"retry_backoff", "max_retry_delay",
                                        "retry_jitter",  "retry_on",
                                        "deadline",      "on_overdue"};
  int any = 0;
  for (size_t k = 0; k < sizeof options / sizeof *options; k++) {
    if (!given(L, opts, options[k])) continue;
    any = 1;
    if (k < 4 && t->max_retries == 0)
      lf_raise(L, "%s needs retries: give max_retries (> 0) and retry_delay too",
               options[k]);
  }
  if (!any) return; /* the common case: nothing to keep */
  lf_task_policy *p = lf_task_policy_make(L, t, uv);
  p->retry_backoff =
      number_option(L, opts, "retry_backoff", 1, 1, 0, DBL_MAX,
                    "a number >= 1 (each retry waits that many times longer)");
  p->max_retry_delay = number_option(L, opts, "max_retry_delay", 0, 0, 1, DBL_MAX,
                                     "a number of seconds > 0");
  p->retry_jitter =
      number_option(L, opts, "retry_jitter", 0, 0, 0, 1, "a number from 0 to 1");
  p->has_retry_on = (uint8_t)function_option(L, opts, uv, "retry_on");
  p->deadline =
      number_option(L, opts, "deadline", 0, 0, 1, DBL_MAX, "a number of seconds > 0");
  if (given(L, opts, "on_overdue") && p->deadline == 0)
    lf_raise(L, "on_overdue needs a deadline: give deadline = seconds too");
  p->has_on_overdue = (uint8_t)function_option(L, opts, uv, "on_overdue");
}

lf_task_policy *lf_task_policy_make(lua_State *L, lf_task *t, int uv) {
  if (t->policy) return (lf_task_policy *)t->policy; /* made by an earlier option */
  lf_task_policy *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  p->retry_backoff = 1;
  p->at_least = p->at_most = -1;
  lua_setfield(L, uv, "policy"); /* the spec table keeps it for every copy */
  t->policy = p;
  return p;
}

/* core.flow_set_deadline(flow, {deadline =, on_overdue =}) */
static int flow_set_deadline(lua_State *L) {
  lf_flow *f = lf_check_flow(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  f->deadline =
      number_option(L, 2, "deadline", 0, 0, 1, DBL_MAX, "a number of seconds > 0");
  if (given(L, 2, "on_overdue") && f->deadline == 0)
    lf_raise(L, "on_overdue needs a deadline: give deadline = seconds too");
  lua_getiuservalue(L, 1, 1);
  f->has_on_overdue = (uint8_t)function_option(L, 2, lua_gettop(L), "on_overdue");
  return 0;
}

/* core.wake_after(seconds) -> true, or false outside a run: the run calls
 * core.set_wake_handler's function once that time has passed. */
static int wake_after(lua_State *L) {
  double seconds = luaL_checknumber(L, 1);
  lf_run *r = lf_lua_current_run(L);
  if (r && seconds == seconds) lf_run_wake_at(r, lf_now() + (seconds > 0 ? seconds : 0));
  lua_pushboolean(L, r != NULL);
  return 1;
}

/* core.format_duration(seconds) -> "12m 5s" (as the overdue messages say it) */
static int format_duration(lua_State *L) {
  char out[64];
  lf_format_duration(out, sizeof out, luaL_checknumber(L, 1));
  lua_pushstring(L, out);
  return 1;
}

static int set_wake_handler(lua_State *L) {
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &wake_handler_key);
  return 0;
}

/* ---- the Lua host's ops ---- */

/* Pushes field `key` of object i's spec table. */
static void push_spec_field(lf_lua_host *h, lf_run *r, int i, const char *key) {
  lf_lua_host_push_spec(h, r, i, LF_SPEC_FN); /* LF_SLOT_SPEC now holds the table */
  lua_pop(h->L, 1);
  lua_getfield(h->L, LF_SLOT_SPEC, key);
}

static const char *logger_of(const lf_object *obj) {
  return obj->is_flow ? "luaflow.FlowRunner" : "luaflow.TaskRunner";
}

int lf_lua_host_retry_on(lf_host *base, lf_run *r, int i, lf_state *failed) {
  lf_lua_host *h = (lf_lua_host *)base;
  lua_State *L = h->L;
  int top = lua_gettop(L);
  push_spec_field(h, r, i, "retry_on");
  lf_boxes_push(L, &h->boxes, failed);
  int answer;
  if (lf_pcall(L, 1, 1) == LUA_OK) {
    answer = lua_toboolean(L, -1);
  } else {
    const lf_object *obj = lf_run_object(r, i);
    lf_log(LF_LOG_WARNING, logger_of(obj), "%s '%s': retry_on raised an error: %s",
           lf_object_label(obj), obj->name, lf_safe_tostring(L, -1, NULL));
    answer = -1;
  }
  lua_settop(L, top);
  return answer;
}

void lf_lua_host_overdue(lf_host *base, lf_run *r, int i, double deadline, double elapsed,
                         const char *message) {
  lf_lua_host *h = (lf_lua_host *)base;
  lua_State *L = h->L;
  const lf_object *obj = lf_run_object(r, i);
  const lf_task_policy *p = i < 0 ? NULL : lf_run_task(r, i)->policy;
  if (!(i < 0 ? r->flow->has_on_overdue : p && p->has_on_overdue)) return;
  int top = lua_gettop(L);
  push_spec_field(h, r, i, "on_overdue");
  lf_lua_host_push_object(h, lf_run_task_index(r, i)); /* a child: its task */
  lf_boxes_push(L, &h->boxes, i < 0 ? r->flow_state : r->task[i].state);
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, deadline);
  lua_setfield(L, -2, "deadline");
  lua_pushnumber(L, elapsed);
  lua_setfield(L, -2, "elapsed");
  lua_pushfstring(L, "%s is overdue: %s", obj->name, message);
  lua_setfield(L, -2, "message");
  if (lf_pcall(L, 3, 0) != LUA_OK)
    lf_log(LF_LOG_ERROR, logger_of(obj), "%s '%s': on_overdue raised an error: %s",
           lf_object_label(obj), obj->name, lf_safe_tostring(L, -1, NULL));
  lua_settop(L, top);
}

void lf_lua_host_wake(lf_host *base, lf_run *r) {
  (void)r;
  lua_State *L = ((lf_lua_host *)base)->L;
  int top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &wake_handler_key) != LUA_TNIL &&
      lf_pcall(L, 0, 0) != LUA_OK)
    lf_log(LF_LOG_ERROR, "luaflow.notifications", "%s", lf_safe_tostring(L, -1, NULL));
  lua_settop(L, top);
}

void lf_open_task_policy(lua_State *L) {
  static const luaL_Reg fns[] = {{"flow_set_deadline", flow_set_deadline},
                                 {"wake_after", wake_after},
                                 {"set_wake_handler", set_wake_handler},
                                 {"format_duration", format_duration},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
