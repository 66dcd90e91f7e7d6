/* luaflow.json: JSON encode/decode that keeps Lua integers integral. */
#ifndef LF_LUA_JSON_H
#define LF_LUA_JSON_H

#include <lua.h>

/* Pushes the module table: encode, decode, null, array, object.
 * Every call in one lua_State shares the same null and array/object markers. */
int luaopen_luaflow_json(lua_State *L);

#endif
