/* Stopping Lua code (see interrupt.h): a watch pokes a lua_State by setting
 * an instruction hook that raises "Execution timed out." or "Flow run was
 * cancelled." at the next Lua instruction, and re-arms itself. */
#ifndef LF_LUA_INTERRUPT_H
#define LF_LUA_INTERRUPT_H

#include <lua.h>
#include "interrupt.h"

/* A watch over Lua code running on L. */
typedef struct {
  lf_watch w;         /* first: the thread's watch list links these */
  lua_Hook prev_hook; /* L's hook before a body's watch (a debugger's) */
  int prev_mask, prev_count;
} lf_lua_watch;

void lf_lua_watch_begin(lua_State *L, lf_lua_watch *w, double timeout,
                        lf_watch_kind kind);
void lf_lua_watch_end(lua_State *L, lf_lua_watch *w);

/* SIGINT and SIGTERM cancel (interrupt.h); L is the state running the
 * script, NULL before there is one or after it is closed. */
void lf_lua_interrupt_install(lua_State *L);

/* Makes coroutine.resume and coroutine.wrap of L's globals visible to the
 * watches (a body that spins inside a coroutine stops too), and adds
 * shield(fn) to the table on top of the stack: while fn is running outside
 * a flow run, an interruption waits (the CLI's bookkeeping after a run). */
void lf_open_interrupt(lua_State *L);

#endif
