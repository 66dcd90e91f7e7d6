/* require("luaflow.store") (lua_store.c), and its store objects for other
 * bindings. */
#ifndef LF_LUA_STORE_H
#define LF_LUA_STORE_H

#include <lua.h>
#include "store.h"

int luaopen_luaflow_store(lua_State *L);
/* The open run store at idx (a luaflow.Store); raises when it is not one or
 * it is closed. */
lf_store *lf_lua_check_store(lua_State *L, int idx);

#endif
