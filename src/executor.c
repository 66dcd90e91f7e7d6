/* The inline executor: runs a task body with its inputs, under the timeout
 * and cancellation watch, and turns its outcome into a state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "interrupt.h"
#include "log.h"
#include "run.h"

static const char traceback_key = 0; /* the last plain error's traceback */

/* Replaces the traceback on top of the stack by its lines outside luaflow's
 * own modules (chunks "luaflow/...", functions "luaflow.*"): the user reads
 * their own frames. */
static void drop_internal_frames(lua_State *L) {
  size_t len;
  const char *tb = lua_tolstring(L, -1, &len), *end = tb + len;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *line = tb; line < end;) {
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    const char *next = nl ? nl + 1 : end;
    static const char chunk[] = "\tluaflow/", fn[] = "\t[C]: in function 'luaflow.";
    if (strncmp(line, chunk, sizeof chunk - 1) != 0 &&
        strncmp(line, fn, sizeof fn - 1) != 0)
      luaL_addlstring(&b, line, (size_t)(next - line));
    line = next;
  }
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

/* The body's message handler: a plain error's traceback is taken while its
 * stack still exists (for the ERROR log line); the error value itself is
 * kept as it is, since it becomes the Failed state's result. */
static int body_msgh(lua_State *L) {
  lua_settop(L, 1);
  if (lf_signal_of(L, 1) == LF_SIG_NONE && lf_log_enabled(LF_LOG_ERROR) &&
      lua_checkstack(L, 4)) {
    luaL_traceback(L, L, NULL, 1);
    /* the task's own frames: cut where the engine called the body */
    size_t len;
    const char *tb = lua_tolstring(L, -1, &len);
    const char *cut = strstr(tb, "\n\t[C]: in ?");
    if (cut) lua_pushlstring(L, tb, (size_t)(cut - tb));
    drop_internal_frames(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
    lua_settop(L, 1);
  }
  return 1;
}

static void log_signal(lf_run *r, int err_idx, lf_signal sig) {
  lua_State *L = r->L;
  err_idx = lua_absindex(L, err_idx);
  if (sig == LF_SIG_NONE) {
    if (lf_log_enabled(LF_LOG_ERROR)) {
      const char *msg = lf_safe_tostring(L, err_idx, NULL);
      lua_rawgetp(L, LUA_REGISTRYINDEX, &traceback_key);
      const char *tb = lua_tostring(L, -1);
      lf_log(LF_LOG_ERROR, "luaflow.TaskRunner",
             "Task '%s': Exception encountered during task execution! %s%s%s",
             lf_run_object(r, r->cur)->name, msg, tb ? "\n" : "", tb ? tb : "");
      lua_pop(L, 2);
      lua_pushnil(L);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
    }
  } else if (lf_log_enabled(LF_LOG_INFO)) {
    lua_getmetatable(L, err_idx);
    lua_getfield(L, -1, "__name");
    const char *msg = lf_safe_tostring(L, err_idx, NULL);
    lf_log(LF_LOG_INFO, "luaflow.TaskRunner", "Task '%s': %s signal raised: %s",
           lf_run_object(r, r->cur)->name, lua_tostring(L, -2), msg);
    lua_pop(L, 3);
  }
}

/* Calls task i's function with its inputs; returns the outcome state and
 * sets *end for ENDRUN. */
lf_state *lf_run_body(lf_run *r, int i, int *end) {
  lua_State *L = r->L;
  lf_task *t = r->flow->tasks[i];
  *end = 0;
  if (!t->has_fn) return lf_state_ref(r->success);
  int top = lua_gettop(L);
  int nargs = t->nconsts;
  for (int k = r->up_start[i]; k < r->up_start[i + 1]; k++)
    if (r->up_key[k] > nargs) nargs = r->up_key[k];
  if (!lua_checkstack(L, nargs + 8)) luaL_error(L, "too many task arguments");
  lua_pushcfunction(L, body_msgh);
  int msgh = lua_gettop(L);
  lf_run_push_spec(r, i, LF_SPEC_FN);
  int fn = lua_gettop(L);
  if (t->nconsts) {
    lf_run_push_object(r, i);
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
  if (t->has_tables) lf_table_args_expand(r, i, fn, nargs);
  lf_state *s;
  lf_watch watch;
  lf_watch_begin(L, &watch, t->timeout, LF_WATCH_BODY);
  int rc = lua_pcall(L, nargs, 1, msgh);
  lf_watch_end(L, &watch);
  if (watch.cancelled || lf_cancel_signal) {
    lf_cancel_acknowledge();
    s = lf_run_state(L, LF_CANCELLED, "Flow run was cancelled.");
    *end = 1;
  } else if (watch.timed_out) {
    /* whatever the body did with the timeout error, it ran out of time */
    s = lf_run_state(L, LF_TIMEDOUT, "Task timed out during execution.");
    lf_log(LF_LOG_ERROR, "luaflow.TaskRunner", "Task '%s': timed out after %g seconds",
           t->obj.name, t->timeout);
    lua_pushliteral(L, "Execution timed out.");
    lf_box_new(L, lf_state_ref(s), -1);
    lf_run_keep_box(r);
  } else if (rc == LUA_OK) {
    if (lua_isnil(L, -1)) {
      s = lf_state_ref(r->success);
    } else {
      s = lf_run_state(L, LF_SUCCESS, "Task run succeeded.");
      lf_box_new(L, lf_state_ref(s), -1);
      lf_run_keep_box(r);
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
    lf_run_keep_box(r);
    lf_state_ref(s);
    *end = sig == LF_SIG_ENDRUN;
  }
  lua_settop(L, top);
  return s;
}
