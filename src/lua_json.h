/* luaflow.json: JSON encode/decode that keeps Lua integers integral. */
#ifndef LF_LUA_JSON_H
#define LF_LUA_JSON_H

#include <lua.h>

/* Pushes the module table: encode, decode, null, array, object.
 * Every call in one lua_State shares the same null and array/object markers. */
int luaopen_luaflow_json(lua_State *L);

/* Pushes this state's null sentinel, array mark or object mark (made on first
 * use): the codec gives copied values the target state's own. */
enum { LF_JSON_NULL, LF_JSON_ARRAY_MT, LF_JSON_OBJECT_MT };
void lf_json_push_shared(lua_State *L, int which);

#endif
