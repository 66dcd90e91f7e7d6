/* The built-in triggers seen from Lua: core.trigger_ids (name -> id, from
 * trigger.h) and core.trigger_check, which luaflow.triggers' callables use. */
#include "lua_core.h"
#include "trigger.h"

/* core.trigger_check(id, states, at_least, at_most, resume) -> true, or
 * false and the signal the trigger raises (TRIGGERFAIL, PAUSE or SKIP). */
static int core_trigger_check(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)luaL_len(L, 2);
  lf_state **states = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *states, 0);
  for (int i = 1; i <= n; i++) { /* the caller's list, as given */
    lua_rawgeti(L, 2, i);
    states[i - 1] = lf_check_state(L, -1);
    lua_pop(L, 1);
  }
  lf_trigger_result r = lf_trigger_check(id, states, n, luaL_optnumber(L, 3, -1),
                                         luaL_optnumber(L, 4, -1), lua_toboolean(L, 5));
  lua_pushboolean(L, r.pass);
  if (r.pass) return 1;
  lf_signal_new(L, lf_signal_for_kind(r.kind), r.message);
  return 2;
}

void lf_open_triggers(lua_State *L) {
  lua_pushcfunction(L, core_trigger_check);
  lua_setfield(L, -2, "trigger_check");
  lua_createtable(L, 0, LF_NTRIGGERS);
  for (int id = 1; id < LF_NTRIGGERS; id++) {
    lua_pushinteger(L, id);
    lua_setfield(L, -2, lf_trigger_name(id));
  }
  lua_setfield(L, -2, "trigger_ids");
}
