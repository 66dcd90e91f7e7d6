/* The versioned function table C modules reach through the registry, and C
 * handlers as Lua values. */
#include "graph.h"
#include "lua_core.h"
#include "object.h"

static const lf_api api = {.version = LF_API_VERSION,
                           .size = sizeof(lf_api),
#define LF_XX(r, type, name, params, args) .name = lf_##name,
                           LF_API_MAP(LF_XX)
#undef LF_XX
};

const lf_api *lf_api_table(void) {
  return &api;
}

void lf_handler_push(lua_State *L, lf_handler_fn fn, void *ud, void (*free_ud)(void *)) {
  lf_chandler *ch = lua_newuserdatauv(L, sizeof *ch, 0);
  ch->fn = fn;
  ch->ud = ud;
  ch->free_ud = free_ud;
  luaL_setmetatable(L, LF_CHANDLER_MT);
}

/* The object a Task or Flow userdata stands for. */
static const lf_object *check_object(lua_State *L, int idx) {
  void *p = luaL_testudata(L, idx, LF_TASK_MT);
  if (p) return &((lf_task *)p)->obj;
  return &lf_check_flow(L, idx)->obj;
}

/* A C handler called from Lua (h(obj, old, new)), with the engine's rules:
 * returns the replacement state, or nil to keep; LF_ERROR raises. */
static int chandler_call(lua_State *L) {
  lf_chandler *ch = luaL_checkudata(L, 1, LF_CHANDLER_MT);
  const lf_object *obj = check_object(L, 2);
  lf_state *old_state = lf_check_state(L, 3), *new_state = lf_check_state(L, 4);
  lf_state *out = NULL;
  lf_handler_error_reset();
  int rc = ch->fn(obj, old_state, new_state, &out, ch->ud);
  if (rc == LF_KEEP) return 0;
  if (rc == LF_REPLACE && out) {
    lf_box_new(L, out, 0);
    return 1;
  }
  if (out) lf_state_release(out);
  return luaL_error(L, "%s", lf_handler_error_text());
}

static int chandler_tostring(lua_State *L) {
  lua_pushfstring(L, "<C handler: %p>", lua_touserdata(L, 1));
  return 1;
}

void lf_open_api(lua_State *L) {
  luaL_getmetatable(L, LF_CHANDLER_MT);
  lua_pushcfunction(L, chandler_call);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, chandler_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, (void *)&api);
  lua_setfield(L, LUA_REGISTRYINDEX, LF_API_REGISTRY_KEY);
}
