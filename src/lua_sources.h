/* The Lua half of luaflow, compiled in by tools/lua2c.c. */
#ifndef LF_LUA_SOURCES_H
#define LF_LUA_SOURCES_H

#include <stddef.h>

typedef struct {
  const char *module; /* "luaflow", "luaflow.flow", ... */
  const char *path;
  const char *source;
  size_t len;
} lf_lua_source;

extern const lf_lua_source lf_lua_sources[];

#endif
