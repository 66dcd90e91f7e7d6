/* The inline executor: runs a task body with its inputs, under the timeout
 * and cancellation watch, and turns its outcome into a state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lua_interrupt.h"
#include "log.h"
#include "run.h"

static const char traceback_key = 0; /* the last plain error's traceback */
static int body_base;                /* stack levels below the running body */

/* How many stack levels L has (a binary search, as lauxlib does). */
static int count_levels(lua_State *L) {
  lua_Debug ar;
  int known = 0, beyond = 1;
  while (lua_getstack(L, beyond, &ar)) {
    known = beyond;
    beyond *= 2;
  }
  while (known + 1 < beyond) { /* level `known` exists, `beyond` does not */
    int mid = (known + beyond) / 2;
    if (lua_getstack(L, mid, &ar))
      known = mid;
    else
      beyond = mid;
  }
  return known + 1;
}

/* The library Lua's own traceback would name the frame's function after,
 * for the functions a body usually fails in: "" for a global ("error"), or
 * a standard library ("string" for string.rep); NULL for any other. One
 * lookup a library, where Lua searches the whole of package.loaded. */
static const char *known_library(lua_State *L, lua_Debug *ar) {
  static const char *const libs[] = {"string",    "table", "math",  "io", "os",
                                     "coroutine", "utf8",  "debug", NULL};
  if (!ar->name) return NULL;
  int global = strcmp(ar->namewhat, "global") == 0;
  if (!global && strcmp(ar->namewhat, "field") != 0 &&
      strcmp(ar->namewhat, "method") != 0)
    return NULL;
  lua_getinfo(L, "f", ar);
  int fn = lua_gettop(L);
  const char *found = NULL;
  if (global) {
    lua_getglobal(L, ar->name);
    if (lua_rawequal(L, -1, fn)) found = "";
  } else {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    for (int k = 0; libs[k] && !found; k++) {
      if (lua_getfield(L, fn + 1, libs[k]) == LUA_TTABLE) {
        lua_getfield(L, -1, ar->name);
        if (lua_rawequal(L, -1, fn)) found = libs[k];
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, fn - 1);
  return found;
}

static void add_int(luaL_Buffer *b, int v) {
  char num[16];
  luaL_addlstring(b, num, (size_t)snprintf(num, sizeof num, "%d", v));
}

/* Adds one frame as luaL_traceback prints it. */
static void add_frame(lua_State *L, luaL_Buffer *b, lua_Debug *ar) {
  luaL_addstring(b, "\n\t");
  luaL_addstring(b, ar->short_src);
  if (ar->currentline > 0) {
    luaL_addchar(b, ':');
    add_int(b, ar->currentline);
  }
  luaL_addstring(b, ": in ");
  const char *lib = known_library(L, ar);
  if (lib) {
    luaL_addstring(b, "function '");
    if (*lib) {
      luaL_addstring(b, lib);
      luaL_addchar(b, '.');
    }
    luaL_addstring(b, ar->name);
    luaL_addchar(b, '\'');
  } else if (*ar->namewhat != '\0') {
    luaL_addstring(b, ar->namewhat);
    luaL_addstring(b, " '");
    luaL_addstring(b, ar->name);
    luaL_addchar(b, '\'');
  } else if (*ar->what == 'm') {
    luaL_addstring(b, "main chunk");
  } else if (*ar->what != 'C') {
    luaL_addstring(b, "function <");
    luaL_addstring(b, ar->short_src);
    luaL_addchar(b, ':');
    add_int(b, ar->linedefined);
    luaL_addchar(b, '>');
  } else {
    luaL_addchar(b, '?');
  }
  if (ar->istailcall) luaL_addstring(b, "\n\t(...tail calls...)");
}

/* Frames of luaflow's own Lua modules (chunks "=luaflow...", see
 * lua_module.c), and C functions they call, are not the user's; the body's
 * own frame (level `last`) is. */
static int is_internal(lua_State *L, int level, int last, const lua_Debug *ar) {
  if (*ar->what == 'C') {
    lua_Debug caller;
    return level < last && lua_getstack(L, level + 1, &caller) &&
           lua_getinfo(L, "S", &caller) && is_internal(L, level + 1, last, &caller);
  }
  return ar->source[0] == '=' && strncmp(ar->source + 1, "luaflow", 7) == 0;
}

/* "stack traceback:" and the frames of the failing body only, from the
 * error up to the body's own frame (the levels below it are the engine's
 * and the script's, known from body_base), without luaflow's own frames: the
 * user reads theirs. A long one keeps its first 10 and last 11 levels, as
 * Lua's does. */
static void push_body_traceback(lua_State *L) {
  int last = count_levels(L) - body_base; /* the body's level, seen from here */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "stack traceback:");
  int shown = last > 21 ? 10 : last;
  for (int level = 1; level <= last; level++) {
    if (level == shown + 1) {
      luaL_addstring(&b, "\n\t...\t(skipping ");
      add_int(&b, last - 11 - shown);
      luaL_addstring(&b, " levels)");
      level = last - 10;
    }
    lua_Debug ar;
    if (!lua_getstack(L, level, &ar) || !lua_getinfo(L, "Slnt", &ar)) break;
    if (!is_internal(L, level, last, &ar)) add_frame(L, &b, &ar);
  }
  luaL_pushresult(&b);
}

/* The body's message handler: a plain error's traceback is taken while its
 * stack still exists (for the ERROR log line); the error value itself is
 * kept as it is, since it becomes the Failed state's result. */
static int body_msgh(lua_State *L) {
  lua_settop(L, 1);
  if (lf_signal_of(L, 1) == LF_SIG_NONE && lf_log_enabled(LF_LOG_ERROR) &&
      lua_checkstack(L, 8) && body_base > 0) {
    push_body_traceback(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
  }
  lua_settop(L, 1);
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
  lf_lua_watch watch;
  if (!r->body_base) r->body_base = count_levels(L) + 1; /* the same for every body */
  int outer_base = body_base;
  body_base = r->body_base;
  lf_lua_watch_begin(L, &watch, t->timeout, LF_WATCH_BODY);
  int rc = lua_pcall(L, nargs, 1, msgh);
  lf_lua_watch_end(L, &watch);
  body_base = outer_base;
  if (watch.w.cancelled || lf_cancel_signal) {
    lf_cancel_acknowledge();
    s = lf_run_state(L, LF_CANCELLED, "Flow run was cancelled.");
    *end = 1;
  } else if (watch.w.timed_out) {
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
