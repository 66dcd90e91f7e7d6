/* Task results inside table arguments, at run time: a table argument that
 * held references when the builder called the task is kept as a template
 * (lua/luaflow/table_args.lua); before the body runs it becomes a fresh table
 * with the upstream results in place. */
#include "lua_host.h"

static const char table_args_key = 0; /* the luaflow.table_args module */

void lf_table_args_set(lua_State *L, int module) {
  lua_pushvalue(L, module);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &table_args_key);
}

/* Replaces each template among task i's nargs arguments (at fn+1 ...) by its
 * expansion. */
void lf_table_args_expand(lf_lua_host *h, lf_run *r, int i, int fn, int nargs) {
  lua_State *L = h->L;
  if (!lua_checkstack(L, 8)) luaL_error(L, "stack overflow");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &table_args_key);
  int mod = lua_gettop(L);
  lua_getfield(L, mod, "node_mt");
  lua_getfield(L, mod, "expand");
  int node_mt = mod + 1, expand = mod + 2;
  lua_newtable(L); /* upstream task -> its result */
  int results = lua_gettop(L);
  for (int k = r->up.start[i]; k < r->up.start[i + 1]; k++)
    if (r->up.key[k] < 0) {
      lua_rawgeti(L, LF_SLOT_TASKS, r->up.task[k] + 1);
      lf_boxes_push_result(L, &h->boxes, r->task[r->up.task[k]].state);
      lua_rawset(L, results);
    }
  for (int a = fn + 1; a <= fn + nargs; a++) {
    if (!lua_getmetatable(L, a)) continue;
    int is_node = lua_rawequal(L, -1, node_mt);
    lua_pop(L, 1);
    if (!is_node) continue;
    lua_pushvalue(L, expand);
    lua_pushvalue(L, a);
    lua_pushvalue(L, results);
    lua_call(L, 2, 1);
    lua_replace(L, a);
  }
  lua_settop(L, mod - 1);
}
