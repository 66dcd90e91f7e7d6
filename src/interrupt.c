/* Timeouts and cancellation (see interrupt.h): watches per thread, one
 * deadline timer per thread, the signal handlers that poke what runs. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "interrupt.h"
#include "log.h"

volatile atomic_int lf_cancel_signal;
int lf_runs_active;

/* Set once the cancellation has stopped some code or the engine has acted
 * on it: later handlers run to their end. */
static volatile atomic_int cancel_delivered; /* read by worker threads too */

/* One per thread. The signal handlers read the lists; the thread changes
 * them with single pointer stores, so a handler always sees a whole list. */
typedef struct {
  lf_watch *volatile current;
  lf_poke_target *volatile targets; /* coroutines resumed under the watches */
  timer_t timer;
  int has_timer;                /* 0: not made yet, 1: made, -1: cannot be made */
  double armed;                 /* when the timer fires next; 0: not set */
  volatile sig_atomic_t busy;   /* the thread is setting the timer itself */
  volatile sig_atomic_t missed; /* the timer fired while it was busy */
  volatile sig_atomic_t pokes;  /* pokes by signal handlers so far */
  int is_engine;                /* the thread that installed the handlers */
  int deadlines;                /* watches in the list that have a deadline */
} watcher;

static _Thread_local watcher self;

static pthread_t engine;
static volatile sig_atomic_t have_engine;
static lf_poke_target *volatile script; /* the CLI's script (engine thread) */

static void barrier(void) {
  atomic_signal_fence(memory_order_seq_cst);
}

/* ---- deadlines ---- */

/* The nearest deadline of this thread's watches that has not passed yet. */
static double nearest(const watcher *me) {
  double d = 0;
  for (lf_watch *w = me->current; w; w = w->outer)
    if (w->deadline > 0 && !w->expired && (d == 0 || w->deadline < d)) d = w->deadline;
  return d;
}

/* The watch whose deadline has passed, innermost first, or NULL. */
static lf_watch *late_watch(const watcher *me) {
  double now = 0;
  for (lf_watch *w = me->current; w; w = w->outer) {
    if (w->deadline <= 0) continue;
    if (!w->expired) {
      if (now == 0) now = lf_monotonic();
      if (now < w->deadline) continue;
      w->expired = 1;
    }
    return w;
  }
  return NULL;
}

static void set_timer(watcher *me, double at) {
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (at > 0) {
    double sec = floor(at);
    its.it_value.tv_sec = (time_t)sec;
    its.it_value.tv_nsec = (long)ceil((at - sec) * 1e9); /* never early */
    if (its.it_value.tv_nsec >= 1000000000L) {
      its.it_value.tv_sec++;
      its.it_value.tv_nsec -= 1000000000L;
    }
  }
  timer_settime(me->timer, TIMER_ABSTIME, &its, NULL);
  me->armed = at;
}

/* The thread sets its timer to its nearest deadline unless it already fires
 * earlier (a stale earlier expiry only re-arms it then). */
static void arm_nearest(watcher *me) {
  for (;;) {
    me->busy = 1;
    barrier();
    if (me->missed) me->missed = 0, me->armed = 0;
    double d = nearest(me);
    if (d > 0 && (me->armed == 0 || d < me->armed)) set_timer(me, d);
    barrier();
    me->busy = 0;
    barrier();
    if (!me->missed) return;
  }
}

/* ---- pokes ---- */

/* Whether the cancellation stops the code of watch w. */
static int cancel_applies(const lf_watch *w) {
  return lf_cancel_signal &&
         (w->kind == LF_WATCH_BODY || w->cancelled || !cancel_delivered);
}

/* Something this thread runs must stop at once (flags only: no clock). */
static int due_now(const watcher *me) {
  lf_watch *w = me->current;
  if (!lf_cancel_signal && me->deadlines == 0) return 0; /* nothing can be due */
  if (!w) return lf_cancel_signal && lf_runs_active == 0;
  if (cancel_applies(w)) return 1;
  for (; w; w = w->outer)
    if (w->expired || w->timed_out) return 1;
  return 0;
}

/* Called from the signal handlers: every target this thread is running
 * gets poked (the Lua binding sets its hook, which decides). */
static void poke(watcher *me) {
  for (lf_watch *w = me->current; w; w = w->outer)
    w->poke(w->target);
  for (lf_poke_target *t = me->targets; t; t = t->outer)
    t->poke(t->target);
  lf_poke_target *sc = script;
  if (me->is_engine && sc && lf_cancel_signal) sc->poke(sc->target);
  me->pokes++;
}

/* ---- signals ---- */

static void on_timer(int sig, siginfo_t *si, void *ctx) {
  (void)sig, (void)ctx;
  int saved = errno;
  watcher *me = &self;
  int fired = si->si_code == SI_TIMER;
  if (fired) {
    if (me->busy)
      me->missed = 1;
    else
      me->armed = 0;
  }
  double now = lf_monotonic();
  int due = lf_cancel_signal != 0;
  for (lf_watch *w = me->current; w; w = w->outer)
    if (w->deadline > 0 && (w->expired || now >= w->deadline)) w->expired = due = 1;
  if (fired && !me->busy && me->has_timer > 0) {
    double d = nearest(me);
    if (d > 0) set_timer(me, d);
  }
  if (due) poke(me);
  errno = saved;
}

static void on_cancel(int sig) {
  if (lf_cancel_signal) { /* a second signal: exit at once, the log written */
    lf_log_flush_from_signal();
    _exit(128 + sig);
  }
  lf_cancel_signal = sig;
  if (have_engine && !pthread_equal(pthread_self(), engine)) {
    pthread_kill(engine, LF_TIMER_SIGNAL); /* the engine's thread sets its hooks */
    return;
  }
  poke(&self);
}

static void handle(int sig, void (*fn)(int), void (*action)(int, siginfo_t *, void *),
                   int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  if (action)
    sa.sa_sigaction = action;
  else
    sa.sa_handler = fn;
  sa.sa_flags = flags | (action ? SA_SIGINFO : 0);
  sigemptyset(&sa.sa_mask); /* the handlers never run inside one another */
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, LF_TIMER_SIGNAL);
  sigaction(sig, &sa, NULL);
}

static void forget_timer_after_fork(void) {
  self.has_timer = 0; /* timers are not inherited */
  self.armed = 0;
  self.busy = self.missed = 0;
}

static void init_once(void) {
  /* SA_RESTART: a deadline passing does not break the body's reads */
  handle(LF_TIMER_SIGNAL, NULL, on_timer, SA_RESTART);
  pthread_atfork(NULL, NULL, forget_timer_after_fork);
}

static void init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_once);
}

static int make_timer(watcher *me) {
  init();
#if defined(__SANITIZE_THREAD__)
  /* ThreadSanitizer holds a signal back until the thread makes an intercepted
   * call, which a Lua loop never does: watched code polls the clock instead */
  me->has_timer = -1;
  return -1;
#endif
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = LF_TIMER_SIGNAL;
  sev._sigev_un._tid = gettid(); /* this thread only */
  me->has_timer = timer_create(CLOCK_MONOTONIC, &sev, &me->timer) == 0 ? 1 : -1;
  return me->has_timer;
}

void lf_interrupt_install(lf_poke_target *script_target) {
  init();
  watcher *me = &self;
  me->is_engine = 1;
  engine = pthread_self();
  have_engine = 1;
  script = script_target;
  /* no SA_RESTART: a sleeping scheduler or a blocked read wakes up */
  handle(SIGINT, on_cancel, NULL, 0);
  handle(SIGTERM, on_cancel, NULL, 0);
}

/* ---- watches ---- */

int lf_watch_push(lf_watch *w, double timeout, lf_watch_kind kind) {
  watcher *me = &self;
  w->kind = kind;
  w->expired = 0;
  w->timed_out = w->cancelled = 0;
  w->deadline = timeout > 0 ? lf_monotonic() + timeout : 0;
  w->outer = me->current;
  me->deadlines += w->deadline > 0;
  barrier();
  me->current = w;
  if (w->deadline > 0 &&
      (me->has_timer > 0 || (me->has_timer == 0 && make_timer(me) > 0)))
    arm_nearest(me);
  return due_now(me);
}

int lf_watch_pop(lf_watch *w) {
  watcher *me = &self;
  me->current = w->outer;
  me->deadlines -= w->deadline > 0;
  barrier();
  return due_now(me);
}

lf_watch *lf_watch_current(void) {
  return self.current;
}

const char *lf_watch_stop_reason(void) {
  watcher *me = &self;
  lf_watch *w = me->current, *late;
  if (!w) return NULL;
  if (cancel_applies(w)) {
    w->cancelled = 1;
    cancel_delivered = 1;
    return "Flow run was cancelled.";
  }
  if ((late = late_watch(me))) {
    late->timed_out = 1;
    return "Execution timed out.";
  }
  return NULL;
}

int lf_watch_has_timer(void) {
  return self.has_timer >= 0;
}

unsigned lf_interrupt_pokes(void) {
  return (unsigned)self.pokes;
}

void lf_interrupt_push_target(lf_poke_target *t) {
  watcher *me = &self;
  t->outer = me->targets;
  barrier();
  me->targets = t;
}

void lf_interrupt_pop_target(lf_poke_target *t) {
  self.targets = t->outer;
  barrier();
}

void lf_interrupt_reset_worker(void) {
  watcher *me = &self;
  me->current = NULL;
  me->targets = NULL;
  me->deadlines = 0;
  me->is_engine = 0;
  forget_timer_after_fork();
  have_engine = 0;
  script = NULL;
  lf_runs_active = 0;
  lf_cancel_signal = 0;
  cancel_delivered = 0;
}

int lf_interrupt_due_now(void) {
  return due_now(&self);
}

void lf_run_enter(void) {
  lf_runs_active++;
}

void lf_run_leave(void) {
  watcher *me = &self;
  if (--lf_runs_active > 0 || me->current || me->has_timer <= 0 || me->armed == 0) return;
  me->busy = 1; /* the last run is over: the timer rests */
  barrier();
  set_timer(me, 0);
  me->missed = 0;
  barrier();
  me->busy = 0;
}

void lf_cancel_acknowledge(void) {
  if (lf_cancel_signal) cancel_delivered = 1;
}

int lf_interrupt_due(void) {
  watcher *me = &self;
  if (due_now(me)) return 1;
  return me->current && late_watch(me) != NULL;
}

double lf_watch_time_left(void) {
  watcher *me = &self;
  if (late_watch(me)) return 0;
  double d = nearest(me);
  if (d == 0) return -1;
  double left = d - lf_monotonic();
  return left > 0 ? left : 0;
}
