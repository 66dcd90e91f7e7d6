/* Before a task runs: a skipped upstream skips it, then its trigger decides. */
#include <string.h>
#include "lua_interrupt.h"
#include "run.h"

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
  if (!name) return lf_run_state(L, kind, message); /* SKIP: Prefect gives no result */
  int top = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "luaflow.signals");
  lua_getfield(L, -1, name);
  lua_pushstring(L, message);
  lf_state *s;
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lf_signal sig;
    s = lf_error_to_state(L, -1, kind, "", &sig);
    lf_run_keep_box(r);
    lf_state_ref(s);
  } else {
    s = lf_run_state(L, kind, message);
  }
  lua_settop(L, top);
  return s;
}

/* Calls a Lua trigger as trigger(states, by_task); returns NULL when it
 * passes, else the state it fails the task with. */
static lf_state *lua_trigger(lf_run *r, int i, int nups) {
  lua_State *L = r->L;
  int top = lua_gettop(L);
  lf_run_push_spec(r, i, LF_SPEC_TRIGGER);
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
  lf_lua_watch watch; /* SIGINT/SIGTERM stop a trigger that loops */
  lf_lua_watch_begin(L, &watch, 0, LF_WATCH_HANDLER);
  int rc = lua_pcall(L, 2, 1, 0);
  lf_lua_watch_end(L, &watch);
  if (watch.w.cancelled) {
    s = lf_run_state(L, LF_CANCELLED, "Flow run was cancelled.");
  } else if (rc != LUA_OK) {
    lf_signal sig;
    s = lf_error_to_state(L, -1, LF_TRIGGERFAILED,
                          "Unexpected error while checking task trigger: ", &sig);
    lf_run_keep_box(r);
    lf_state_ref(s);
  } else if (!lua_toboolean(L, -1)) {
    s = trigger_signal_state(r, LF_TRIGGERFAILED, "Trigger failed");
  }
  lua_settop(L, top);
  return s;
}

lf_state *lf_check_trigger(lf_run *r, int i) {
  lf_task *t = r->flow->tasks[i];
  int nups = gather_upstreams(r, i);
  if (t->skip_on_upstream_skip)
    for (int j = 0; j < nups; j++)
      if (LF_IS(r->ups[j], LF_SKIPPED))
        return lf_run_state(
            r->L, LF_SKIPPED,
            "Upstream task was skipped; if this was not the intended "
            "behavior, consider setting `skip_on_upstream_skip = false` for "
            "this task.");
  if (t->trigger == LF_TRIGGER_LUA) return lua_trigger(r, i, nups);
  lf_trigger_result res =
      lf_trigger_check(t->trigger, r->ups, nups, t->at_least, t->at_most,
                       r->flags[i] & (F_RESUME | F_RESUMED));
  return res.pass ? NULL : trigger_signal_state(r, res.kind, res.message);
}
