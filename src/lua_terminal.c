/* The terminal from Lua (luaflow.core): its width, and the progress line
 * (progress.h) for the CLI and its specs.
 *
 *   core.terminal_columns(fd)      -> columns, or nil when fd is no terminal
 *   core.progress.start()          -> true when the line is shown
 *   core.progress.set(done, total, running, failed)
 *   core.progress.hold(on), core.progress.stop(), core.progress.active()
 *   core.progress.format(done, total, running, failed, elapsed [, width]) -> text
 *
 * While the line is shown and stdout is a terminal too, the global `print`
 * erases it first (the ticker draws it again), so printed lines never end up
 * written over it. */
#include <sys/ioctl.h>
#include <unistd.h>
#include "log.h"
#include "lua_core.h"
#include "progress.h"

static int terminal_columns(lua_State *L) {
  struct winsize ws;
  int fd = (int)luaL_checkinteger(L, 1);
  if (!isatty(fd) || ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 0;
  lua_pushinteger(L, ws.ws_col);
  return 1;
}

static void check_counts(lua_State *L, lf_progress_counts *c) {
  c->done = (long)luaL_checkinteger(L, 1);
  c->total = (long)luaL_checkinteger(L, 2);
  c->running = (long)luaL_checkinteger(L, 3);
  c->failed = (long)luaL_checkinteger(L, 4);
}

static int progress_format(lua_State *L) {
  lf_progress_counts c;
  check_counts(L, &c);
  char buf[160];
  size_t len = lf_progress_format(buf, sizeof buf, &c, luaL_checknumber(L, 5),
                                  (int)luaL_optinteger(L, 6, 0));
  lua_pushlstring(L, buf, len);
  return 1;
}

/* print while the line is shown: the line goes first (upvalue 1: print). */
static int print_erasing(lua_State *L) {
  lf_log_flush();
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

static const char print_key = 'p'; /* registry: our print, while installed */

static int progress_start(lua_State *L) {
  int rc = lf_progress_start();
  if (rc < 0) return luaL_error(L, "cannot start the progress line's thread");
  if (rc > 0 && isatty(STDOUT_FILENO)) {
    lua_getglobal(L, "print");
    lua_pushcclosure(L, print_erasing, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &print_key);
    lua_setglobal(L, "print");
  }
  lua_pushboolean(L, rc > 0);
  return 1;
}

static int progress_set(lua_State *L) {
  lf_progress_counts c;
  check_counts(L, &c);
  lf_progress_set(&c);
  return 0;
}

static int progress_hold(lua_State *L) {
  lf_progress_hold(lua_toboolean(L, 1));
  return 0;
}

/* Stops the line; puts print back unless the script has replaced it since. */
static int progress_stop(lua_State *L) {
  lf_progress_stop();
  lua_rawgetp(L, LUA_REGISTRYINDEX, &print_key);
  lua_getglobal(L, "print");
  if (!lua_isnil(L, -2) && lua_rawequal(L, -1, -2)) {
    lua_getupvalue(L, -1, 1);
    lua_setglobal(L, "print");
  }
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &print_key);
  return 0;
}

static int progress_active(lua_State *L) {
  lua_pushboolean(L, lf_progress_active());
  return 1;
}

void lf_open_terminal(lua_State *L) {
  static const luaL_Reg fns[] = {{"start", progress_start},
                                 {"set", progress_set},
                                 {"hold", progress_hold},
                                 {"stop", progress_stop},
                                 {"active", progress_active},
                                 {"format", progress_format},
                                 {NULL, NULL}};
  lua_pushcfunction(L, terminal_columns);
  lua_setfield(L, -2, "terminal_columns");
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "progress");
}
