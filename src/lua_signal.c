/* The signal classes (their metatables are made here, from signals.h), the
 * one translator from Lua error values (signals or plain errors) to states,
 * and errors that name the user's file and line. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "lua_core.h"
#include "redact.h"

/* tostring(sig): FAIL("message"), FAIL(), ENDRUN(<state>) */
static int signal_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lf_signal code = lf_signal_of(L, 1);
  const char *name = lf_signal_name(code);
  if (!name) return luaL_error(L, "not a luaflow signal");
  lua_pushstring(L, code == LF_SIG_ENDRUN ? "state" : "message");
  if (lua_rawget(L, 1) == LUA_TNIL && code != LF_SIG_ENDRUN) {
    lua_pushfstring(L, "%s()", name);
    return 1;
  }
  const char *inner = luaL_tolstring(L, -1, NULL);
  if (code == LF_SIG_ENDRUN)
    lua_pushfstring(L, "%s(%s)", name, inner);
  else
    lua_pushfstring(L, "%s(\"%s\")", name, inner);
  return 1;
}

static int signal_concat(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  luaL_tolstring(L, 2, NULL);
  lua_concat(L, 2);
  return 1;
}

static void new_signal_mt(lua_State *L, lf_signal code) {
  int options = lf_signal_options(code);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "__luaflow_signal");
  lua_pushstring(L, lf_signal_name(code));
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "signal");
  lua_setfield(L, -2, "__luaflow_kind");
  lua_pushcfunction(L, signal_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, signal_concat);
  lua_setfield(L, -2, "__concat");
  if (options) { /* the option names that set the state's own fields */
    lua_newtable(L);
    if (options & LF_SIGOPT_START_TIME) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "start_time");
    }
    if (options & LF_SIGOPT_RUN_COUNT) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "run_count");
    }
    lua_setfield(L, -2, "__luaflow_state_options");
  }
}

/* Pushes the registry's code -> metatable table, made on first use (also in a
 * Lua state where luaflow was never loaded: the codec decodes signals there). */
static void push_signal_mts(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LF_SIGNAL_CLASSES_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, LF_NSIGNALS - 1, 0);
  for (int code = 1; code < LF_NSIGNALS; code++) {
    new_signal_mt(L, (lf_signal)code);
    lua_rawseti(L, -2, code);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, LF_SIGNAL_CLASSES_KEY);
}

int lf_signal_push_mt(lua_State *L, lf_signal code) {
  if (code <= LF_SIG_NONE || code >= LF_NSIGNALS) {
    lua_pushnil(L);
    return 0;
  }
  push_signal_mts(L);
  lua_rawgeti(L, -1, code);
  lua_remove(L, -2);
  return 1;
}

void lf_signal_new(lua_State *L, lf_signal code, const char *message) {
  lua_createtable(L, 0, 1);
  if (message) {
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
  }
  lf_signal_push_mt(L, code);
  lua_setmetatable(L, -2);
}

void lf_open_signals(lua_State *L) {
  lua_createtable(L, 0, LF_NSIGNALS - 1);
  for (int code = 1; code < LF_NSIGNALS; code++) {
    lf_signal_push_mt(L, (lf_signal)code);
    lua_setfield(L, -2, lf_signal_name((lf_signal)code));
  }
}

lf_signal lf_signal_of(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return LF_SIG_NONE;
  lua_pushliteral(L,
                  "__luaflow_signal"); /* raw: an error's metatable may have an __index */
  lua_rawget(L, -2);
  lua_Integer code = lua_tointeger(L, -1);
  lua_pop(L, 2);
  return code > 0 && code < LF_NSIGNALS ? (lf_signal)code : LF_SIG_NONE;
}

static int tostring_call(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

const char *lf_safe_tostring(lua_State *L, int idx, size_t *len) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, tostring_call);
  lua_pushvalue(L, idx);
  if (lf_pcall(L, 1, 1) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
  return lua_tolstring(L, -1, len);
}

/* The fields RETRY and PAUSE give their state (start_time, run_count): they
 * are the state's own, not custom fields. */
static int is_state_option(lf_signal code, const char *name) {
  int options = lf_signal_options(code);
  return ((options & LF_SIGOPT_START_TIME) && strcmp(name, "start_time") == 0) ||
         ((options & LF_SIGOPT_RUN_COUNT) && strcmp(name, "run_count") == 0);
}

/* Copies the signal's scalar custom fields into the C state. */
static void copy_fields(lua_State *L, int sig, lf_signal code, lf_state *s) {
  lua_pushnil(L);
  while (lua_next(L, sig)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *name = lua_tostring(L, -2);
      lf_value v = {0};
      switch (lua_type(L, -1)) {
      case LUA_TBOOLEAN:
        v.type = LF_FIELD_BOOL;
        v.b = lua_toboolean(L, -1);
        break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
          v.type = LF_FIELD_INT;
          v.i = lua_tointeger(L, -1);
        } else {
          v.type = LF_FIELD_FLOAT;
          v.f = lua_tonumber(L, -1);
        }
        break;
      case LUA_TSTRING:
        v.type = LF_FIELD_STRING;
        v.s = lua_tolstring(L, -1, &v.len);
        break;
      default:
        break;
      }
      if (v.type != LF_FIELD_NONE && strcmp(name, "message") != 0 &&
          strcmp(name, "result") != 0 && name[0] != '_' && !is_state_option(code, name))
        lf_state_add_field(s, name, &v);
    }
    lua_pop(L, 1);
  }
}

static lf_state *signal_to_state(lua_State *L, int sig, lf_signal code) {
  if (code == LF_SIG_ENDRUN) {
    lua_pushliteral(L, "state");
    lua_rawget(L, sig);
    lf_state *s = lf_test_state(L, -1);
    if (!s) {
      lua_pop(L, 1);
      return NULL;
    }
    return s; /* its box is on the stack */
  }
  size_t len = 0;
  const char *msg = NULL;
  lua_pushliteral(L, "message");
  lua_rawget(L, sig);
  if (!lua_isnil(L, -1)) msg = lf_safe_tostring(L, -1, &len);
  int allocated = 0;
  if (msg) msg = lf_redact(msg, len, &len, &allocated); /* secrets never reach a state */
  lf_state *s = lf_state_newl(lf_signal_kind(code), msg, len);
  if (allocated) free((char *)msg);
  lua_settop(L, sig);
  if (!s) luaL_error(L, "not enough memory");
  if (code == LF_SIG_RETRY || code == LF_SIG_PAUSE) {
    /* RETRY is due now unless given a start_time; PAUSE waits for approval */
    double start;
    lua_pushliteral(L, "start_time");
    lua_rawget(L, sig);
    s->has_start = lf_to_time(L, -1, &start) || code == LF_SIG_RETRY;
    s->start_time = lf_to_time(L, -1, &start) ? start : lf_now();
    lua_pushliteral(L, "run_count");
    lua_rawget(L, sig);
    s->run_count = code == LF_SIG_RETRY && lua_isinteger(L, -1)
                       ? (int32_t)lua_tointeger(L, -1)
                       : lf_current_run_count(L);
    lua_settop(L, sig);
  } else if (code == LF_SIG_LOOP) {
    s->loop_count = lf_current_loop_count(L);
  } else if (LF_IS(s, LF_FAILED)) { /* FAIL(..., {retry = false}) */
    lua_pushliteral(L, "_no_retry");
    s->no_retry = lua_rawget(L, sig) != LUA_TNIL;
    lua_pop(L, 1);
  }
  copy_fields(L, sig, code, s);
  /* result: the `result` given when the signal was built, else the signal */
  lua_pushliteral(L, "_has_result");
  if (lua_rawget(L, sig) != LUA_TNIL) {
    lua_pushliteral(L, "result");
    lua_rawget(L, sig);
  } else
    lua_pushvalue(L, sig);
  lua_remove(L, -2);
  lf_box_new(L, s, -1);
  lua_remove(L, -2);
  return s;
}

lf_state *lf_error_to_state(lua_State *L, int idx, lf_kind plain_kind, const char *prefix,
                            lf_signal *sig) {
  idx = lua_absindex(L, idx);
  lf_signal code = lf_signal_of(L, idx);
  if (code != LF_SIG_NONE) {
    lf_state *s = signal_to_state(L, idx, code);
    if (s) {
      *sig = code;
      return s;
    }
  }
  *sig = LF_SIG_NONE;
  luaL_Buffer b;
  size_t len;
  const char *text = lf_safe_tostring(L, idx, &len);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, prefix);
  luaL_addlstring(&b, text, len);
  luaL_pushresult(&b);
  text = lua_tolstring(L, -1, &len);
  int allocated;
  char *shown = lf_redact(text, len, &len, &allocated);
  lf_state *s = lf_state_newl(plain_kind, shown, len);
  if (allocated) free(shown);
  lua_pop(L, 2);
  if (!s) luaL_error(L, "not enough memory");
  lf_box_new(L, s, idx);
  return s;
}

/* Frames of luaflow's own Lua modules are named "=luaflow..." (see lua_module.c). */
static int is_internal(const lua_Debug *ar) {
  return ar->source[0] == '=' && strncmp(ar->source + 1, "luaflow", 7) == 0;
}

void lf_push_where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    /* luaflow's own code called by a run (a notifier, a trigger): the
     * user's flow:run line below it is not where the mistake is */
    if (strcmp(ar.what, "C") == 0 && lf_is_run_frame(L, &ar)) break;
    if (ar.currentline > 0 && !is_internal(&ar) && strcmp(ar.what, "C") != 0) {
      /* the full path of a file chunk, not the shortened short_src */
      const char *src = ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
      lua_pushfstring(L, "%s:%d: ", src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

int lf_raise(lua_State *L, const char *fmt, ...) {
  va_list ap;
  lf_push_where(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}
