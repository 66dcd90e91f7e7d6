/* Stopping Lua code (see lua_interrupt.h): the hook, the coroutines resumed
 * under a watch, and the shield of the CLI's bookkeeping. */
#include <stdatomic.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lua_core.h"
#include "lua_interrupt.h"

#define ARMED (LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT)
#define CHECK_EVERY 1000 /* instructions between clock checks without a timer */
#define SHIELD_CHECK_EVERY 1000

static const char shield_key = 0; /* registry: functions that defer it */

static void watch_hook(lua_State *L, lua_Debug *ar);

static void barrier(void) {
  atomic_signal_fence(memory_order_seq_cst);
}

/* A poke (signal handler): L stops at its next instruction. */
static void poke_state(void *L) {
  lua_sethook(L, watch_hook, ARMED, 1);
}

/* Puts L's hook back as it was before the watches (nothing to stop). */
static void rest(lua_State *L) {
  unsigned pokes = lf_interrupt_pokes();
  barrier();
  lf_lua_watch *first = NULL;
  int deadlines = 0;
  for (lf_watch *w = lf_watch_current(); w; w = w->outer) {
    if (w->target == L && w->poke == poke_state && w->kind == LF_WATCH_BODY)
      first = (lf_lua_watch *)w;
    deadlines |= w->deadline > 0;
  }
  if (!lf_watch_has_timer() && deadlines)
    lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY); /* no timer: poll */
  else if (first && first->prev_hook != watch_hook)
    lua_sethook(L, first->prev_hook, first->prev_mask, first->prev_count);
  else
    lua_sethook(L, NULL, 0, 0);
  barrier();
  if (lf_interrupt_pokes() != pokes)
    lua_sethook(L, watch_hook, ARMED, 1); /* a signal came meanwhile */
}

/* Outside a run the script stops at once, except in the code that runs scripts (cli.lua,
 * script.lua) and while a shielded function (the end of a flow run: its --json line)
 * runs. */
static int may_stop_script(lua_State *L, lua_Debug *ar) {
  if (!lua_getinfo(L, "S", ar)) return 0;
  if (strcmp(ar->source, "=luaflow/cli.lua") == 0 ||
      strcmp(ar->source, "=luaflow/script.lua") == 0)
    return 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &shield_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 1;
  }
  lua_Debug frame;
  int shielded = 0;
  for (int level = 0; !shielded && lua_getstack(L, level, &frame); level++) {
    lua_getinfo(L, "f", &frame);
    shielded = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return !shielded;
}

static void watch_hook(lua_State *L, lua_Debug *ar) {
  const char *why = NULL;
  if (ar->event != LUA_HOOKCOUNT && lua_getinfo(L, "S", ar) && ar->what[0] == 'C')
    return; /* C code finishes its call: stop at the next Lua instruction */
  if (lf_watch_current()) {
    why = lf_watch_stop_reason();
  } else if (lf_cancel_signal && lf_runs_active == 0) {
    if (!may_stop_script(L, ar)) {
      lua_sethook(L, watch_hook, LUA_MASKCOUNT, SHIELD_CHECK_EVERY); /* ask again soon */
      return;
    }
    why = "interrupted";
  }
  if (why) {
    lua_sethook(L, watch_hook, ARMED, 1); /* re-armed: a pcall cannot swallow it */
    lua_pushstring(L, why);
    lua_error(L);
  }
  rest(L);
}

static lf_poke_target script = {poke_state, NULL, NULL};

void lf_lua_interrupt_install(lua_State *L) {
  script.target = L;
  lf_interrupt_install(L ? &script : NULL);
  if (L && lf_cancel_signal) lua_sethook(L, watch_hook, ARMED, 1); /* it came early */
}

/* ---- watches ---- */

void lf_lua_watch_begin(lua_State *L, lf_lua_watch *lw, double timeout,
                        lf_watch_kind kind) {
  lf_watch *w = &lw->w;
  w->poke = poke_state;
  w->target = L;
  if (kind == LF_WATCH_BODY) {
    lw->prev_hook = lua_gethook(L);
    lw->prev_mask = lua_gethookmask(L);
    lw->prev_count = lua_gethookcount(L);
  } else {
    lw->prev_hook = NULL, lw->prev_mask = lw->prev_count = 0;
  }
  if (lf_watch_push(w, timeout, kind))
    lua_sethook(L, watch_hook, ARMED, 1);
  else if (w->deadline > 0 && !lf_watch_has_timer())
    lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY);
}

void lf_lua_watch_end(lua_State *L, lf_lua_watch *lw) {
  lf_watch *w = &lw->w;
  if (lf_watch_pop(w) && w->outer) {
    lua_sethook(L, watch_hook, ARMED, 1); /* the enclosing code must stop too */
    return;
  }
  if (w->timed_out || w->cancelled || w->expired ||
      (w->deadline > 0 && !lf_watch_has_timer()))
    rest(L);
}

/* ---- coroutines ---- */

/* Calls the original coroutine.resume (at index orig) on co with the values
 * on the stack (co first); leaves its results. While co runs, the signal
 * handlers can reach it. */
static int resume_watched(lua_State *L, lua_State *co, int orig) {
  lf_poke_target link = {poke_state, co, NULL};
  lf_interrupt_push_target(&link);
  if (lf_interrupt_due_now()) lua_sethook(co, watch_hook, ARMED, 1);
  lua_pushvalue(L, orig);
  lua_insert(L, 1);
  int rc = lf_pcall(L, lua_gettop(L) - 1, LUA_MULTRET);
  lf_interrupt_pop_target(&link);
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* coroutine.resume(co, ...) */
static int co_resume(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_State *co = lua_tothread(L, 1);
  return resume_watched(L, co, lua_upvalueindex(1));
}

static int close_thread(lua_State *co, lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, L);
#else
  (void)L;
  return lua_resetthread(co);
#endif
}

/* The function coroutine.wrap returns (upvalues: the coroutine, the original
 * resume); errors behave as the standard wrap's. */
static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  int n = resume_watched(L, co, lua_upvalueindex(2));
  if (lua_toboolean(L, 1)) return n - 1;
  int status = lua_status(co);
  if (status != LUA_OK && status != LUA_YIELD) { /* it died: close its variables */
    status = close_thread(co, L);
    lua_pop(L, 1);
    lua_xmove(co, L, 1); /* the error after closing */
  }
  if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/* coroutine.wrap(f) */
static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, co_wrapped, 2);
  return 1;
}

/* core.shield(fn): an interruption outside a run waits while fn runs. */
static int shield(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &shield_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &shield_key);
  }
  lua_pushvalue(L, 1);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  return 0;
}

void lf_open_interrupt(lua_State *L) {
  lua_pushcfunction(L, shield);
  lua_setfield(L, -2, "shield");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE) {
    lua_getfield(L, -1, "resume");
    if (lua_tocfunction(L, -1) != co_resume && lua_iscfunction(L, -1)) {
      lua_pushvalue(L, -1);
      lua_pushcclosure(L, co_resume, 1);
      lua_setfield(L, -3, "resume");
      lua_pushcclosure(L, co_wrap, 1); /* takes the original resume */
      lua_setfield(L, -2, "wrap");
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
}
