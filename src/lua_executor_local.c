/* The Local executor (see lua_host.h): a task body runs inline in the
 * engine's Lua state, under its timeout and the cancellation, inside the
 * run's protected call; its outcome is delivered before submit returns (or,
 * when it raised, by the next protected call). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "lua_host.h"

static const char traceback_key = 0;    /* the last failing body's traceback */
static const char traceback_of_key = 0; /* the error value it was taken for */
/* Stack levels below the running body's frame, + 1: 0 when no body runs on
 * this thread; and the state it runs on. */
static _Thread_local int body_base;
static _Thread_local lua_State *body_state;

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

static void add_int(luaL_Buffer *b, int v) { /* line numbers: not negative */
  char num[24], *end = num + sizeof num, *p = lf_decimal(end, v > 0 ? (unsigned)v : 0);
  luaL_addlstring(b, p, (size_t)(end - p));
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

void lf_local_note_traceback(lua_State *L) {
  if (body_base <= 0 || L != body_state || lf_signal_of(L, 1) != LF_SIG_NONE ||
      !lf_log_enabled(LF_LOG_ERROR) || !lua_checkstack(L, 8))
    return;
  push_body_traceback(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_of_key);
}

/* The ERROR line of a plain error (with its traceback: the one given, or
 * the one noted for it), or the INFO line of a signal. */
static void log_signal(lua_State *L, const char *task, int err, lf_signal sig,
                       const char *given_tb) {
  err = lua_absindex(L, err);
  if (sig == LF_SIG_NONE) {
    if (lf_log_enabled(LF_LOG_ERROR)) {
      const char *msg = lf_safe_tostring(L, err, NULL);
      lua_rawgetp(L, LUA_REGISTRYINDEX, &traceback_of_key);
      int mine = lua_rawequal(L, -1, err);
      lua_rawgetp(L, LUA_REGISTRYINDEX, &traceback_key);
      const char *tb = given_tb ? given_tb : mine ? lua_tostring(L, -1) : NULL;
      lf_log(LF_LOG_ERROR, "luaflow.TaskRunner",
             "Task '%s': Exception encountered during task execution! %s%s%s", task, msg,
             tb ? "\n" : "", tb ? tb : "");
      lua_pop(L, 3);
      lua_pushnil(L);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
      lua_pushnil(L);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_of_key);
    }
  } else if (lf_log_enabled(LF_LOG_INFO)) {
    lua_getmetatable(L, err);
    lua_getfield(L, -1, "__name");
    const char *msg = lf_safe_tostring(L, err, NULL);
    lf_log(LF_LOG_INFO, "luaflow.TaskRunner", "Task '%s': %s signal raised: %s", task,
           lua_tostring(L, -2), msg);
    lua_pop(L, 3);
  }
}

lf_state *lf_body_outcome(lf_lua_host *h, lf_run *r, int i, int value,
                          const lf_body_end *how, int *end) {
  lua_State *L = h->L;
  lf_state *s;
  *end = 0;
  if (!how->failed && !how->cancelled && !how->timed_out && !lf_cancel_signal) {
    if (lua_isnil(L, value)) return lf_state_ref(r->shared.success);
    s = lf_state_static(LF_SUCCESS, "Task run succeeded.");
    if (!s) luaL_error(L, "not enough memory");
    lf_box_new(L, lf_state_ref(s), value);
    lf_lua_host_keep_box(h);
    return s;
  }
  const char *name = lf_run_object(r, i)->name; /* a child's: "double[2]" */
  if (how->cancelled || lf_cancel_signal) {
    lf_cancel_acknowledge();
    s = lf_state_static(LF_CANCELLED, "Flow run was cancelled.");
    *end = 1;
  } else if (how->timed_out) {
    /* whatever the body did with the timeout error, it ran out of time */
    s = lf_state_static(LF_TIMEDOUT, "Task timed out during execution.");
    if (!s) luaL_error(L, "not enough memory");
    lf_log(LF_LOG_ERROR, "luaflow.TaskRunner", "Task '%s': timed out after %g seconds",
           name, lf_run_task(r, i)->timeout);
    lua_pushliteral(L, "Execution timed out.");
    lf_box_new(L, lf_state_ref(s), -1);
    lf_lua_host_keep_box(h);
    lua_pop(L, 1);
  } else {
    lf_signal sig;
    s = lf_lua_host_error_state(h, value, LF_FAILED,
                                "Error during execution of task: ", &sig);
    log_signal(L, name, value, sig, how->traceback);
    if (s->kind == LF_LOOPED && !s->message) {
      char msg[64];
      snprintf(msg, sizeof msg, "Task is looping (%d)", r->task[i].loop);
      s->message = strdup(msg);
      s->owns_message = s->message != NULL;
    }
    *end = sig == LF_SIG_ENDRUN;
  }
  if (!s) luaL_error(L, "not enough memory");
  return s;
}

/* Task i's body ended under the Local executor, returning the value at
 * `value` or raising it (`failed`). A body that returns after its deadline
 * (a blocking C call the hook could not stop) timed out all the same. */
static lf_state *outcome(lf_local_executor *ex, lf_run *r, int i, int value, int failed,
                         int *end) {
  const lf_watch *w = &ex->watch.w;
  lf_body_end how = {failed, w->cancelled,
                     w->timed_out || (w->deadline > 0 && lf_monotonic() >= w->deadline),
                     NULL};
  return lf_body_outcome(ex->host, r, i, value, &how, end);
}

int lf_body_push_call(lf_lua_host *h, lf_run *r, int i) {
  lf_lua_host_push_spec(h, r, i, LF_SPEC_FN);
  return lf_lua_host_push_args(h, r, i);
}

/* Calls task i's function with its inputs: constants, then the upstream
 * results at their argument positions, then the results inside tables. */
static void submit(lf_executor *base, lf_run *r, int i) {
  lf_local_executor *ex = (lf_local_executor *)base;
  lf_lua_host *h = ex->host;
  lua_State *L = h->L;
  lf_task *t = lf_run_task(r, i);
  int top = lua_gettop(L), fn = top + 1;
  lf_lua_host_push_spec(h, r, i, LF_SPEC_FN);
  int nargs = i < r->ntasks ? lf_lua_host_push_task_args(h, r, i, fn) /* inline */
                            : lf_lua_map_push_args(h, r, i);
  if (!ex->body_base) ex->body_base = count_levels(L) + 1; /* the same for every body */
  ex->outer_base = body_base;
  body_base = ex->body_base;
  body_state = L;
  r->busy = LF_BUSY_BODY;
  r->current = i;
  lf_lua_watch_begin(L, &ex->watch, t->timeout, LF_WATCH_BODY);
  lua_call(L, nargs, 1);
  lf_lua_watch_end(L, &ex->watch);
  body_base = ex->outer_base;
  r->busy = LF_BUSY_NONE;
  int end;
  lf_state *s = outcome(ex, r, i, fn, 0, &end);
  lua_settop(L, top);
  lf_run_deliver(r, i, s, end);
}

int lf_body_enter(lua_State *L) {
  int outer = body_base;
  body_base = count_levels(L) + 1;
  body_state = L;
  return outer;
}

void lf_body_leave(int outer) {
  body_base = outer;
}

int lf_body_push_traceback(lua_State *L, int err) {
  err = lua_absindex(L, err);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &traceback_of_key);
  int mine = lua_rawequal(L, -1, err);
  lua_pop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &traceback_key);
  if (!mine || !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_of_key);
  return 1;
}

void lf_local_executor_unwound(lf_local_executor *ex) {
  lf_lua_watch_end(ex->host->L, &ex->watch);
  body_base = ex->outer_base;
}

void lf_local_executor_recover(lf_local_executor *ex, lf_run *r, int err) {
  int i = r->current, end;
  r->busy = LF_BUSY_NONE; /* an error from here on ends the run */
  lf_state *s = outcome(ex, r, i, err, 1, &end);
  lf_run_deliver(r, i, s, end);
}

/* Bodies run inline: an outcome is delivered before submit returns, so
 * waiting is for timers only. */
static void wait(lf_executor *ex, lf_run *r, double timeout) {
  (void)ex, (void)r;
  if (timeout > 0) lf_sleep(timeout);
}

static void cancel(lf_executor *ex, lf_run *r) {
  (void)ex, (void)r; /* nothing runs between two calls */
}

static void close_executor(lf_executor *ex, lf_run *r) {
  (void)ex, (void)r;
}

static const lf_executor_ops local_ops = {"local", submit, wait, cancel, close_executor};

void lf_local_executor_init(lf_local_executor *ex, lf_lua_host *host) {
  memset(ex, 0, sizeof *ex);
  ex->base.ops = &local_ops;
  ex->host = host;
}
