/* Stopping Lua code that runs past its timeout or is cancelled (SIGINT,
 * SIGTERM): an instruction-count hook that re-arms itself, so even a task
 * that wraps its loop in pcall is stopped. */
#ifndef LF_INTERRUPT_H
#define LF_INTERRUPT_H

#include <signal.h>
#include <lua.h>

/* The signal that asked for cancellation, 0 when none. */
extern volatile sig_atomic_t lf_cancel_signal;

/* SIGINT and SIGTERM cancel the run (a second one exits at once); L is the
 * state whose code the signal interrupts. */
void lf_interrupt_install(lua_State *L);

/* Watches one task body. */
typedef struct lf_watch {
  lua_State *L;    /* the thread running the body */
  double deadline; /* monotonic seconds; 0: no timeout */
  int timed_out;
  int cancelled;
  struct lf_watch *outer;
  lua_Hook prev_hook;
  int prev_mask, prev_count;
} lf_watch;

void lf_watch_begin(lua_State *L, lf_watch *w, double timeout);
void lf_watch_end(lua_State *L, lf_watch *w);

/* Runs in progress (a run cancels at its next step; outside a run the
 * signal interrupts the script itself). */
extern int lf_runs_active;

#endif
