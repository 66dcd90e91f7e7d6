#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "interrupt.h"

volatile sig_atomic_t lf_cancel_signal;
int lf_runs_active;
static lf_watch *current;
static lua_State *signal_state;

#define CHECK_EVERY 1000 /* instructions between clock checks */

#define ARMED (LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT)

/* The watch whose deadline has passed, innermost first (an outer task's
 * timeout holds while it runs a nested flow), or NULL. */
static lf_watch *overdue(void) {
  double now = 0;
  for (lf_watch *w = current; w; w = w->outer) {
    if (w->deadline <= 0) continue;
    if (!w->timed_out) {
      if (now == 0) now = lf_monotonic();
      if (now < w->deadline) continue;
    }
    return w;
  }
  return NULL;
}

static int any_deadline(void) {
  for (lf_watch *w = current; w; w = w->outer)
    if (w->deadline > 0) return 1;
  return 0;
}

/* luaflow's own code (the CLI, the sugar, C functions) is never interrupted
 * outside a task body: it has to finish the run's bookkeeping. The user's
 * Lua code is, at its next instruction. */
static int in_luaflow(lua_State *L, lua_Debug *ar) {
  if (!lua_getinfo(L, "S", ar) || ar->what[0] == 'C') return 1;
  return ar->source[0] == '=' && strncmp(ar->source + 1, "luaflow", 7) == 0;
}

static void watch_hook(lua_State *L, lua_Debug *ar) {
  if (current) {
    if (lf_cancel_signal) {
      current->cancelled = 1;
      lua_sethook(L, watch_hook, ARMED, 1); /* re-armed: a pcall cannot swallow it */
      lua_pushliteral(L, "Flow run was cancelled.");
      lua_error(L);
    }
    lf_watch *w = overdue();
    if (w) {
      w->timed_out = 1;
      lua_sethook(L, watch_hook, ARMED, 1);
      lua_pushliteral(L, "Execution timed out.");
      lua_error(L);
    }
    return;
  }
  if (!lf_cancel_signal) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  /* cancelled: inside a run the runner stops at its next step; outside one
   * the script itself is interrupted, and stays so */
  if (lf_runs_active == 0 && !in_luaflow(L, ar)) {
    lua_sethook(L, watch_hook, ARMED, 1);
    lua_pushliteral(L, "interrupted");
    lua_error(L);
  }
}

static void on_signal(int sig) {
  if (lf_cancel_signal) _exit(128 + sig); /* a second signal: exit at once */
  lf_cancel_signal = sig;
  /* lua_sethook is safe here (lua.c does the same) */
  if (signal_state) lua_sethook(signal_state, watch_hook, ARMED, 1);
  lf_watch *w = current;
  if (w && w->L != signal_state) lua_sethook(w->L, watch_hook, ARMED, 1);
}

void lf_interrupt_install(lua_State *L) {
  struct sigaction sa;
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a sleeping scheduler wakes up */
  signal_state = L;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

void lf_watch_begin(lua_State *L, lf_watch *w, double timeout) {
  w->L = L;
  w->deadline = timeout > 0 ? lf_monotonic() + timeout : 0;
  w->timed_out = w->cancelled = 0;
  w->outer = current;
  w->prev_hook = lua_gethook(L);
  w->prev_mask = lua_gethookmask(L);
  w->prev_count = lua_gethookcount(L);
  current = w;
  if (lf_cancel_signal)
    lua_sethook(L, watch_hook, ARMED, 1);
  else if (any_deadline())
    lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY);
}

void lf_watch_end(lua_State *L, lf_watch *w) {
  current = w->outer;
  if (lf_cancel_signal || (current && current->timed_out))
    lua_sethook(L, watch_hook, ARMED, 1); /* the enclosing body must stop too */
  else if (any_deadline())
    lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY);
  else if (w->prev_hook != watch_hook)
    lua_sethook(L, w->prev_hook, w->prev_mask, w->prev_count);
  else
    lua_sethook(L, NULL, 0, 0);
}
