/* luaflow.json: JSON encode/decode that keeps Lua integers integral. */
#ifndef LF_LUA_JSON_H
#define LF_LUA_JSON_H

#include <lua.h>

#include "redact.h"
#include "buf.h"

/* Pushes the module table: encode, decode, null, array, object.
 * Every call in one lua_State shares the same null and array/object markers. */
int luaopen_luaflow_json(lua_State *L);

/* Pushes this state's null sentinel, array mark or object mark (made on first
 * use): the codec gives copied values the target state's own. */
enum { LF_JSON_NULL, LF_JSON_ARRAY_MT, LF_JSON_OBJECT_MT };
void lf_json_push_shared(lua_State *L, int which);

/* encode_redacted(value) -> string: json.encode (compact) with every secret
 * hidden, keys and __tojson texts included; for what luaflow itself sends. */
int lf_json_encode_redacted(lua_State *L);

/* Appends the JSON text of the value at idx to b, redacted with red unless
 * it is NULL. Raises a Lua error when the value cannot be encoded; b may then
 * hold part of the text (the caller cuts it back). */
void lf_json_encode_into(lua_State *L, int idx, lf_buf *b, const lf_redactor *red);

/* lua_json_lines.c: appends the JSON text of the value at idx (nil: null)
 * to b, redacted with red unless it is NULL. Returns 1, or 0 (b as it was)
 * when it cannot be encoded; raises only when memory runs out. */
int lf_json_put_value(lua_State *L, int idx, lf_buf *b, const lf_redactor *red);

/* The JSON text of the number at idx in buf; 0 when it has none (NaN, inf). */
size_t lf_json_number_text(lua_State *L, int idx, char buf[64]);

#endif
