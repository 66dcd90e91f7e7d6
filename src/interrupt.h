/* Stopping Lua code that runs past its timeout or is cancelled (SIGINT,
 * SIGTERM).
 *
 * Nothing watches a body while it is on time: each thread that runs watched
 * code owns a POSIX timer set to its nearest deadline, whose signal is
 * delivered to that thread only; the signal handler sets the instruction
 * hook (lua_sethook is safe there, as in lua.c) on the Lua states of that
 * thread's watches and on the coroutines they resumed. The hook raises at
 * the next instruction and re-arms itself, so a pcall cannot swallow it.
 * SIGINT/SIGTERM set the same hooks. Several threads (a worker executor)
 * each keep their own watches and timer. */
#ifndef LF_INTERRUPT_H
#define LF_INTERRUPT_H

#include <signal.h>
#include <lua.h>

/* The signal that asked for cancellation, 0 when none. */
extern volatile sig_atomic_t lf_cancel_signal;

/* Runs in progress on this process (a run cancels at its next step; outside
 * a run the signal interrupts the script itself). */
extern int lf_runs_active;

/* The signal a thread's deadline timer sends to that thread (also used to
 * wake the engine's thread when SIGINT/SIGTERM land on another thread). */
#define LF_TIMER_SIGNAL (SIGRTMAX - 3)

/* SIGINT and SIGTERM cancel (a second one exits at once with 128 + N). L is
 * the state running the script, NULL before there is one or after it is
 * closed; call it again to change it. The calling thread is the engine's. */
void lf_interrupt_install(lua_State *L);

typedef enum {
  LF_WATCH_BODY,   /* a task body: timeout and cancellation */
  LF_WATCH_HANDLER /* a handler or trigger: stopped by the cancellation only
                      when it is the code running when the signal comes (or
                      the next to start); the handlers that carry the
                      Cancelled states afterwards run to their end */
} lf_watch_kind;

/* Watches Lua code the engine calls, from begin to end (LIFO per thread;
 * the struct lives in the caller's frame). */
typedef struct lf_watch {
  lua_State *L;    /* the thread running the code */
  double deadline; /* monotonic seconds; 0: no timeout */
  int kind;
  volatile sig_atomic_t expired; /* the deadline has passed (set by the timer) */
  int timed_out;                 /* the code was stopped for its deadline */
  int cancelled;                 /* the code was stopped by SIGINT/SIGTERM */
  struct lf_watch *outer;
  lua_Hook prev_hook;
  int prev_mask, prev_count;
} lf_watch;

void lf_watch_begin(lua_State *L, lf_watch *w, double timeout, lf_watch_kind kind);
void lf_watch_end(lua_State *L, lf_watch *w);

/* Flow runs call these around their work; leaving the last one puts the
 * thread's timer to rest. */
void lf_run_enter(void);
void lf_run_leave(void);

/* The engine has acted on the cancellation (it ends the run): handlers that
 * start from now on run to their end. */
void lf_cancel_acknowledge(void);

/* Nonzero when the code running on this thread should stop now: it was
 * cancelled, or its deadline or an enclosing one has passed. Long C calls
 * (HTTP and SMTP transfers) poll it. */
int lf_interrupt_due(void);

/* Seconds until the nearest deadline of this thread's watches (0 when one
 * has passed), or -1 when none has a deadline: a nested run's scheduler
 * sleeps no longer than its enclosing task may run. */
double lf_watch_time_left(void);

/* Makes coroutine.resume and coroutine.wrap of L's globals visible to the
 * watches (a body that spins inside a coroutine stops too), and adds
 * shield(fn) to the table on top of the stack: while fn is running outside
 * a flow run, an interruption waits (the CLI's bookkeeping after a run). */
void lf_open_interrupt(lua_State *L);

#endif
