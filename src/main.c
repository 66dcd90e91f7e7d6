/* The luaflow CLI: a Lua host whose argument handling lives in luaflow.cli. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include "lua_core.h"
#include "lua_interrupt.h"
#include "log.h"
#include "redact.h"

int luaopen_luaflow(lua_State *L);

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luaflow);
  lua_setfield(L, -2, "luaflow");
  lua_pop(L, 1);
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaflow");
  lua_call(L, 1, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaflow.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_getglobal(L, "arg");
  lua_call(L, 1, 1);
  return 1;
}

static lua_State *state; /* global: still reachable when an interrupted run exits */

/* Before the shared libraries' initialisers (libcurl's TLS stacks take tens
 * of milliseconds): from the first moment SIGINT/SIGTERM end us with 130/143. */
static void install_early(int argc, char **argv, char **envp) {
  (void)argc, (void)argv, (void)envp;
  lf_interrupt_install(NULL);
}
__attribute__((section(".preinit_array"),
               used)) static void (*const early)(int, char **, char **) = install_early;

int main(int argc, char **argv) {
  lf_interrupt_install(NULL); /* first: SIGINT/SIGTERM from now on end us with 130/143 */
  lf_log_flush_on_crash();    /* a crashing task loses no log line */
  lua_State *L = state = luaL_newstate();
  if (!L) {
    fprintf(stderr, "luaflow: cannot create a Lua state\n");
    return 2;
  }
  lf_lua_interrupt_install(L);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int code = 2;
  if (lf_pcall(L, 2, 1) == LUA_OK) {
    code = (int)lua_tointeger(L, -1);
  } else if (!lf_cancel_signal) { /* an error the CLI could not report: redacted too */
    lf_log_flush();
    size_t len = 0;
    const char *msg = lua_tolstring(L, -1, &len);
    if (!msg) msg = "(error object is not a string)", len = strlen(msg);
    int allocated = 0;
    char *shown = lf_redact(msg, len, &len, &allocated);
    fprintf(stderr, "luaflow: %.*s\n", (int)len, shown);
    if (allocated) free(shown);
  }
  fflush(stdout);
  if (lf_cancel_signal) return 128 + lf_cancel_signal; /* promptly: exit frees it all */
  lf_interrupt_install(NULL);
  lua_close(L);
  return code;
}
