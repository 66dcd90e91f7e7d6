#include <unistd.h>
#include "clock.h"
#include "interrupt.h"

volatile sig_atomic_t lf_cancel_signal;
int lf_runs_active;
static lf_watch *current;
static lua_State *signal_state;

#define CHECK_EVERY 1000 /* instructions between clock checks */

static void watch_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lf_watch *w = current;
  if (w) {
    if (lf_cancel_signal) {
      w->cancelled = 1;
      lua_sethook(L, watch_hook, LUA_MASKCOUNT, 1); /* re-arm: pcall cannot swallow it */
      lua_pushliteral(L, "Flow run was cancelled.");
      lua_error(L);
    }
    if (w->deadline > 0 && (w->timed_out || lf_monotonic() >= w->deadline)) {
      w->timed_out = 1;
      lua_sethook(L, watch_hook, LUA_MASKCOUNT, 1);
      lua_pushliteral(L, "Execution timed out.");
      lua_error(L);
    }
    return;
  }
  if (lf_cancel_signal && lf_runs_active == 0) {
    lua_sethook(L, NULL, 0, 0);
    lua_pushliteral(L, "interrupted");
    lua_error(L);
  }
  /* inside a run but between task bodies: the runner cancels at its next step */
  lua_sethook(L, NULL, 0, 0);
}

static void on_signal(int sig) {
  if (lf_cancel_signal) _exit(128 + sig); /* a second signal: exit at once */
  lf_cancel_signal = sig;
  if (signal_state)
    lua_sethook(signal_state, watch_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
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
  w->deadline = timeout > 0 ? lf_monotonic() + timeout : 0;
  w->timed_out = w->cancelled = 0;
  w->outer = current;
  w->prev_hook = lua_gethook(L);
  w->prev_mask = lua_gethookmask(L);
  w->prev_count = lua_gethookcount(L);
  current = w;
  if (w->deadline > 0) lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY);
}

void lf_watch_end(lua_State *L, lf_watch *w) {
  current = w->outer;
  if (current && current->deadline > 0)
    lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY);
  else if (w->prev_hook != watch_hook)
    lua_sethook(L, w->prev_hook, w->prev_mask, w->prev_count);
  else
    lua_sethook(L, NULL, 0, 0);
}
