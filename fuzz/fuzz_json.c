/* libFuzzer harness: the JSON codec (luaflow.json).
 * Property: whatever decode accepts encodes (unless it holds an infinity, as
 * 1e400 decodes to), and decode -> encode is stable: decoding the text again
 * and encoding it gives the same text. The pretty form ({indent = true})
 * decodes to the same value. Nothing crashes, leaks or trips a sanitizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lua_json.h"

static lua_State *L;

/* The property, in Lua over the C codec; raises when it does not hold. */
static const char CHECK[] =
    "local json, text = ...\n"
    "local ok, v = pcall(json.decode, text)\n"
    "if not ok then assert(type(v) == 'string', 'decode error is not a string') return "
    "end\n"
    "local ok1, s1 = pcall(json.encode, v)\n"
    "if not ok1 then\n"
    "  assert(tostring(s1):find('NaN/inf', 1, true), 'decoded value does not encode: ' "
    ".. "
    "tostring(s1))\n"
    "  return\n"
    "end\n"
    "local s2 = json.encode(json.decode(s1))\n"
    "assert(s1 == s2, 'not stable:\\n' .. s1 .. '\\n' .. s2)\n"
    "local pretty = json.encode(v, {indent = true})\n"
    "assert(json.encode(json.decode(pretty)) == s1, 'pretty form does not round-trip')\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_loadbuffer(L, CHECK, sizeof CHECK - 1, "=check") != LUA_OK) abort();
  lua_setglobal(L, "check");
  luaopen_luaflow_json(L);
  lua_setglobal(L, "json");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_getglobal(L, "check");
  lua_getglobal(L, "json");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "property failed: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}
