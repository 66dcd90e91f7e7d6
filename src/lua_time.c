/* Time values: epoch seconds printed as ISO-8601 UTC, comparable. */
#include "clock.h"
#include "interrupt.h"
#include "lua_core.h"

typedef struct {
  double t;
} lf_time;

void lf_push_time(lua_State *L, double t) {
  lf_time *v = lua_newuserdatauv(L, sizeof *v, 0);
  v->t = t;
  luaL_setmetatable(L, LF_TIME_MT);
}

int lf_to_time(lua_State *L, int idx, double *t) {
  lf_time *v = luaL_testudata(L, idx, LF_TIME_MT);
  if (v) {
    *t = v->t;
    return 1;
  }
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *t = lua_tonumber(L, idx);
    return 1;
  }
  return 0;
}

static double check_time(lua_State *L, int idx) {
  double t = 0; /* luaL_typeerror does not return */
  if (!lf_to_time(L, idx, &t)) luaL_typeerror(L, idx, "time value");
  return t;
}

static int time_tostring(lua_State *L) {
  char buf[64];
  lf_format_iso(check_time(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

/* Either operand may be the time value: `"at " .. t` and `t .. "!"`. */
static int time_concat(lua_State *L) {
  for (int i = 1; i <= 2; i++) {
    if (luaL_testudata(L, i, LF_TIME_MT)) {
      char buf[64];
      lf_format_iso(check_time(L, i), buf, sizeof buf);
      lua_pushstring(L, buf);
    } else {
      luaL_tolstring(L, i, NULL);
    }
    lua_replace(L, i);
  }
  lua_concat(L, 2);
  return 1;
}

static int time_eq(lua_State *L) {
  lua_pushboolean(L, check_time(L, 1) == check_time(L, 2));
  return 1;
}

static int time_lt(lua_State *L) {
  lua_pushboolean(L, check_time(L, 1) < check_time(L, 2));
  return 1;
}

static int time_le(lua_State *L) {
  lua_pushboolean(L, check_time(L, 1) <= check_time(L, 2));
  return 1;
}

/* time - time is seconds; time - seconds is a time. */
static int time_sub(lua_State *L) {
  double a = check_time(L, 1);
  if (luaL_testudata(L, 2, LF_TIME_MT))
    lua_pushnumber(L, a - check_time(L, 2));
  else
    lf_push_time(L, a - luaL_checknumber(L, 2));
  return 1;
}

static int time_add(lua_State *L) {
  int ti = luaL_testudata(L, 1, LF_TIME_MT) ? 1 : 2;
  lf_push_time(L, check_time(L, ti) + luaL_checknumber(L, 3 - ti));
  return 1;
}

static int time_timestamp(lua_State *L) {
  lua_pushnumber(L, check_time(L, 1));
  return 1;
}

static int time_now(lua_State *L) {
  lf_push_time(L, lf_now());
  return 1;
}

/* luaflow.time.sleep(seconds): blocks the body that calls it (a worker's
 * only); a timeout or the cancellation ends it early, the watch's hook then
 * raises at the next instruction. Short naps, so a signal that lands just
 * before one is seen soon. */
static int time_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s < 1e9, 1, "seconds must be a number from 0 to 1e9");
  double end = lf_monotonic() + s;
  for (double left = s; left > 0 && !lf_interrupt_due(); left = end - lf_monotonic())
    lf_sleep(left < 0.25 ? left : 0.25);
  return 0;
}

static int time_new(lua_State *L) {
  lf_push_time(L, luaL_checknumber(L, 1));
  return 1;
}

int lf_open_time(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", time_tostring},
                                  {"__concat", time_concat},
                                  {"__eq", time_eq},
                                  {"__lt", time_lt},
                                  {"__le", time_le},
                                  {"__sub", time_sub},
                                  {"__add", time_add},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {{"timestamp", time_timestamp}, {NULL, NULL}};
  luaL_newmetatable(L, LF_TIME_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  static const luaL_Reg lib[] = {{"now", time_now},
                                 {"from_timestamp", time_new},
                                 {"sleep", time_sleep},
                                 {NULL, NULL}};
  luaL_newlib(L, lib);
  return 1;
}
