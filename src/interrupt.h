/* Stopping code that runs past its timeout or is cancelled (SIGINT,
 * SIGTERM); Lua-free (lua_interrupt.h stops Lua code with it).
 *
 * Nothing watches code while it is on time: each thread that runs watched
 * code owns a POSIX timer set to its nearest deadline, whose signal is
 * delivered to that thread only; the signal handler pokes the targets of that
 * thread's watches (the Lua binding sets an instruction hook on their Lua
 * states, which raises at the next instruction and re-arms itself, so a pcall
 * cannot swallow it). SIGINT/SIGTERM poke them too. Several threads (a worker
 * executor) each keep their own watches and timer. */
#ifndef LF_INTERRUPT_H
#define LF_INTERRUPT_H

#include <signal.h>
#include <stdatomic.h>

/* The signal that asked for cancellation, 0 when none (atomic: set by a
 * signal handler, read by worker threads too). */
extern volatile atomic_int lf_cancel_signal;

/* Runs in progress on this process (a run cancels at its next step; outside
 * a run the signal interrupts the script itself). */
extern int lf_runs_active;

/* The signal a thread's deadline timer sends to that thread (also used to
 * wake the engine's thread when SIGINT/SIGTERM land on another thread). */
#define LF_TIMER_SIGNAL (SIGRTMAX - 3)

/* Something that runs code which must stop soon when poked: poke(target) is
 * called from a signal handler (it must be async-signal-safe). */
typedef struct lf_poke_target {
  void (*poke)(void *target);
  void *target;
  struct lf_poke_target *outer; /* the thread's list (lf_interrupt_push_target) */
} lf_poke_target;

/* SIGINT and SIGTERM cancel (a second one exits at once with 128 + N).
 * `script` is poked on cancellation when it comes outside any watch (the
 * CLI's script), NULL before there is one or after it is gone; call it again
 * to change it. The calling thread is the engine's. */
void lf_interrupt_install(lf_poke_target *script);

typedef enum {
  LF_WATCH_BODY,   /* a task body: timeout and cancellation */
  LF_WATCH_HANDLER /* a handler or trigger: stopped by the cancellation only
                      when it is the code running when the signal comes (or
                      the next to start); the handlers that carry the
                      Cancelled states afterwards run to their end */
} lf_watch_kind;

/* Watches code the engine calls, from lf_watch_push to lf_watch_pop (LIFO
 * per thread; the struct outlives the watch). */
typedef struct lf_watch {
  void (*poke)(void *target); /* makes the watched code stop soon (signal-safe) */
  void *target;               /* what runs the code (the Lua binding: its state) */
  double deadline;            /* monotonic seconds; 0: no timeout */
  int kind;
  volatile sig_atomic_t expired; /* the deadline has passed (set by the timer) */
  int timed_out;                 /* the code was stopped for its deadline */
  int cancelled;                 /* the code was stopped by SIGINT/SIGTERM */
  struct lf_watch *outer;
} lf_watch;

/* Starts watching (w->poke and w->target set by the caller); returns
 * lf_interrupt_due_now(). */
int lf_watch_push(lf_watch *w, double timeout, lf_watch_kind kind);
/* Stops watching; returns lf_interrupt_due_now() for the enclosing watches. */
int lf_watch_pop(lf_watch *w);
/* The innermost watch of this thread, or NULL. */
lf_watch *lf_watch_current(void);
/* What must stop the watched code now, marking the watch that stops it:
 * "Flow run was cancelled." or "Execution timed out."; NULL when nothing. */
const char *lf_watch_stop_reason(void);
/* Whether this thread can be woken at a deadline by its timer (else watched
 * code must poll the clock). */
int lf_watch_has_timer(void);
/* Signal handlers' pokes on this thread so far (to tell one came meanwhile). */
unsigned lf_interrupt_pokes(void);
/* The targets code resumed while watched (coroutines) register: a poke
 * reaches them too (LIFO per thread). */
void lf_interrupt_push_target(lf_poke_target *t);
void lf_interrupt_pop_target(lf_poke_target *t);

/* Flow runs call these around their work; leaving the last one puts the
 * thread's timer to rest. */
void lf_run_enter(void);
void lf_run_leave(void);

/* The engine has acted on the cancellation (it ends the run): handlers that
 * start from now on run to their end. */
void lf_cancel_acknowledge(void);

/* A forked worker process starts afresh: no watches, runs or cancellation
 * of the engine it was forked from. */
void lf_interrupt_reset_worker(void);

/* Nonzero when something this thread runs must stop at once (flags only, no
 * clock): the cancellation applies to the innermost watch, a deadline was
 * seen passed, or a signal came outside any run. */
int lf_interrupt_due_now(void);

/* Nonzero when the code running on this thread should stop now: it was
 * cancelled, or its deadline or an enclosing one has passed. Long C calls
 * (HTTP and SMTP transfers) poll it. */
int lf_interrupt_due(void);

/* Seconds until the nearest deadline of this thread's watches (0 when one
 * has passed), or -1 when none has a deadline: a nested run's scheduler
 * sleeps no longer than its enclosing task may run. */
double lf_watch_time_left(void);

#endif
