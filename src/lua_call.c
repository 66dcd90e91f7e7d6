/* The one protected call of luaflow's C code and its one message handler. */
#include "lua_host.h"

/* Keeps the error value as it was raised (a signal or a table error stays
 * itself: it becomes a state's result); a failing task body's traceback is
 * noted while its stack still exists. Never raises. */
static int message_handler(lua_State *L) {
  lua_settop(L, 1);
  lf_local_note_traceback(L);
  lua_settop(L, 1);
  return 1;
}

int lf_pcall(lua_State *L, int nargs, int nresults) {
  int fn = lua_gettop(L) - nargs;
  lua_pushcfunction(L, message_handler);
  lua_insert(L, fn);
  int status = lua_pcall(L, nargs, nresults, fn);
  lua_remove(L, fn);
  return status;
}
