-- `luarocks --lua-version=5.4 make` in the repository builds and installs the
-- luaflow Lua module (the whole engine, its Lua half compiled in) with the
-- project's Makefile. The luaflow command itself is installed by `make install`.
rockspec_format = "3.0"
package = "luaflow"
version = "0.1.0-1"
source = {
   url = "git+https://example.invalid/luaflow.git",
   tag = "v0.1.0",
}
description = {
   summary = "Prefect 1's task/flow state machine and state handlers, small, fast and in C, for Lua 5.4",
   detailed = [[
luaflow runs workflows whose flows, tasks and state handlers are Lua 5.4
scripts: Prefect Core 1's states, triggers, retries, signals and
"Notifications and State Handlers" (Slack, webhooks, e-mail over libcurl),
with state handlers in Lua or C.]],
   license = "MIT",
   labels = { "workflow", "scheduler", "prefect" },
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   CURL = { library = "curl" },
   SQLITE = { header = "sqlite3.h", library = "sqlite3" },
   ZLIB = { header = "zlib.h", library = "z" },
}
build = {
   type = "make",
   build_target = "rock",
   build_variables = {
      BUILD = "build-rock",
      DEPS = "",
      CFLAGS = "$(CFLAGS)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      CURL_LIBDIR = "$(CURL_LIBDIR)",
      SQLITE_INCDIR = "$(SQLITE_INCDIR)",
      SQLITE_LIBDIR = "$(SQLITE_LIBDIR)",
      ZLIB_INCDIR = "$(ZLIB_INCDIR)",
      ZLIB_LIBDIR = "$(ZLIB_LIBDIR)",
   },
   install_target = "rock-install",
   install_variables = {
      BUILD = "build-rock",
      LIBDIR = "$(LIBDIR)",
   },
}
