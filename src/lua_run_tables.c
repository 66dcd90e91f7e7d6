/* The tables a run hands to Lua code, made by C so that the run never depends
 * on a Lua module having written the registry:
 * - LF_TASKMAP_MT: a trigger's by_task (task -> State); graph.lua gives it the
 *   __index that also finds a task through its reference or its bare task;
 * - LF_REFERENCE_STATES_KEY: the constructor of a terminal_state_handler's
 *   third argument, the reference tasks' States as a list that is also a
 *   task map (so code written either way Prefect 1 has it works);
 * - LF_TERMINAL_HANDLERS_KEY: flow -> its terminal_state_handler (weak keys). */
#include "lua_core.h"

/* registry: reference states map -> its list (weak keys) */
static const char reference_lists_key = 0;

static void push_reference_list(lua_State *L, int map) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &reference_lists_key);
  lua_pushvalue(L, map);
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

/* refs[i]: the list's i-th State; refs[task]: the task map's lookup */
static int reference_states_index(lua_State *L) {
  if (lua_isinteger(L, 2)) {
    push_reference_list(L, 1);
    if (!lua_istable(L, -1)) return 0;
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
  }
  luaL_getmetatable(L, LF_TASKMAP_MT);
  if (lua_getfield(L, -1, "__index") != LUA_TFUNCTION) return 0;
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

static int reference_states_len(lua_State *L) {
  push_reference_list(L, 1);
  lua_pushinteger(L, lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0);
  return 1;
}

/* registry[LF_REFERENCE_STATES_KEY](list, map) -> map, now also the list */
static int reference_states_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &reference_lists_key);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, 2);
  lua_settop(L, 2);
  return 1;
}

static void new_weak_table(lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

void lf_open_run_tables(lua_State *L) {
  luaL_newmetatable(L, LF_TASKMAP_MT);
  lua_setfield(L, -2, "task_map_mt");

  new_weak_table(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &reference_lists_key);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, reference_states_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, reference_states_len);
  lua_setfield(L, -2, "__len");
  lua_pushliteral(L, "luaflow.ReferenceStates");
  lua_setfield(L, -2, "__name");
  lua_pushcclosure(L, reference_states_new, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, LF_REFERENCE_STATES_KEY);

  if (lua_getfield(L, LUA_REGISTRYINDEX, LF_TERMINAL_HANDLERS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    new_weak_table(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, LF_TERMINAL_HANDLERS_KEY);
  }
  lua_setfield(L, -2, "terminal_handlers");
}
