/* A flow run's result: task -> final State, without a hash entry per task.
 * A userdata holds the run's order and run counts; its user values are the
 * states (by the flow's task index) and the flow. Looking a task up goes
 * through the flow's index of its tasks; references and bare tasks work too. */
#include <string.h>
#include "graph.h"
#include "lua_core.h"

#define LF_RESULT_MT "luaflow.TaskStates"

typedef struct {
  int n;
  int data[]; /* order[n] (0-based task indices), then run counts[n] by task index */
} lf_result;

static lf_result *check_result(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, LF_RESULT_MT);
}

int *lf_result_new(lua_State *L, int n, const int *order, int states, int flow) {
  states = lua_absindex(L, states), flow = lua_absindex(L, flow);
  lf_result *res = lua_newuserdatauv(L, sizeof *res + 2 * (size_t)n * sizeof(int), 2);
  res->n = n;
  memcpy(res->data, order, (size_t)n * sizeof(int));
  luaL_setmetatable(L, LF_RESULT_MT);
  lua_pushvalue(L, states);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, flow);
  lua_setiuservalue(L, -2, 2);
  return res->data + n;
}

/* The flow index (1-based) of key, or 0: a task of the flow, a reference to
 * one ({_task = t}), or a bare task the flow holds exactly one copy of. */
static int key_index(lua_State *L, int res, int key) {
  lua_getiuservalue(L, res, 2);
  int flow = lua_gettop(L);
  int i = 0;
  if (lua_type(L, key) == LUA_TTABLE) {
    if (lua_getfield(L, key, "_task") != LUA_TNIL && lf_test_task(L, -1))
      i = lf_flow_task_index(L, flow, -1);
  } else if (lf_test_task(L, key)) {
    i = lf_flow_task_index(L, flow, key);
    if (!i) i = lf_flow_copy_index(L, flow, key);
  }
  lua_settop(L, flow - 1);
  return i;
}

static int result_index(lua_State *L) {
  check_result(L, 1);
  int i = key_index(L, 1, 2);
  if (!i || i > check_result(L, 1)->n) return 0; /* a task added after the run */
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, i);
  return 1;
}

/* Iterates task, state in task_states() order: control value is the position. */
static int result_next(lua_State *L) {
  lf_result *res = check_result(L, 1);
  lua_Integer k = lua_isnil(L, 2) ? 0 : luaL_checkinteger(L, 2);
  if (k >= res->n) return 0;
  int i = res->data[k] + 1;
  lua_getiuservalue(L, 1, 2); /* the flow */
  lua_getiuservalue(L, -1, 1);
  lua_getfield(L, -1, "tasks");
  lua_rawgeti(L, -1, i);
  int task = lua_gettop(L);
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, i);
  int state = lua_gettop(L);
  lua_pushinteger(L, k + 1);
  lua_pushvalue(L, task);
  lua_pushvalue(L, state);
  return 3;
}

/* A generic-for iterator over (task, state) hiding the position. */
static int result_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushcfunction(L, result_next);
  lua_insert(L, 1);
  lua_call(L, 2, 3);
  if (lua_isnil(L, 1)) return 0;
  lua_pushvalue(L, 1);
  lua_replace(L, lua_upvalueindex(2));
  return 2;
}

static int push_iterator(lua_State *L, int res) {
  lua_pushvalue(L, res);
  lua_pushnil(L);
  lua_pushcclosure(L, result_iter, 2);
  return 1;
}

/* pairs(result) and state:task_states(): task, state in topological order. */
static int result_pairs(lua_State *L) {
  check_result(L, 1);
  push_iterator(L, 1);
  return 1;
}

static int result_len(lua_State *L) {
  lua_pushinteger(L, check_result(L, 1)->n);
  return 1;
}

static int result_tostring(lua_State *L) {
  lua_pushfstring(L, "<task states: %d>", check_result(L, 1)->n);
  return 1;
}

static int empty_iter(lua_State *L) {
  (void)L;
  return 0;
}

/* core.result_iter(map) -> iterator over (task, state); empty for other values. */
static int core_result_iter(lua_State *L) {
  if (!luaL_testudata(L, 1, LF_RESULT_MT)) {
    lua_pushcfunction(L, empty_iter);
    return 1;
  }
  return push_iterator(L, 1);
}

/* core.result_run_count(map, task) -> how many times the task ran, or nil. */
static int core_result_run_count(lua_State *L) {
  lf_result *res = check_result(L, 1);
  int i = key_index(L, 1, 2);
  if (!i || i > res->n) return 0;
  lua_pushinteger(L, res->data[res->n + i - 1]);
  return 1;
}

const int *lf_result_order(lua_State *L, int idx, int *n, const int **counts) {
  lf_result *res = luaL_testudata(L, idx, LF_RESULT_MT);
  if (!res) return NULL;
  *n = res->n;
  *counts = res->data + res->n;
  return res->data;
}

void lf_open_result(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", result_index},
                                  {"__pairs", result_pairs},
                                  {"__len", result_len},
                                  {"__tostring", result_tostring},
                                  {NULL, NULL}};
  luaL_newmetatable(L, LF_RESULT_MT);
  luaL_setfuncs(L, meta, 0);
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"result_iter", core_result_iter},
                                 {"result_run_count", core_result_run_count},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
