/* Timeouts and cancellation (see interrupt.h): watches per thread, one
 * deadline timer per thread, and the hook that stops Lua code. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lualib.h>
#include "clock.h"
#include "interrupt.h"
#include "log.h"

volatile sig_atomic_t lf_cancel_signal;
int lf_runs_active;

/* Set once the cancellation has stopped some code or the engine has acted
 * on it: later handlers run to their end. */
static volatile sig_atomic_t cancel_delivered;

#define ARMED (LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT)
#define CHECK_EVERY 1000 /* instructions between clock checks without a timer */
#define SHIELD_CHECK_EVERY 1000

/* A coroutine resumed through coroutine.resume/wrap on this thread. */
typedef struct resumed {
  lua_State *co;
  struct resumed *outer;
} resumed;

/* One per thread. The signal handlers read the lists; the thread changes
 * them with single pointer stores, so a handler always sees a whole list. */
typedef struct {
  lf_watch *volatile current;
  resumed *volatile coroutines;
  timer_t timer;
  int has_timer;                /* 0: not made yet, 1: made, -1: cannot be made */
  double armed;                 /* when the timer fires next; 0: not set */
  volatile sig_atomic_t busy;   /* the thread is setting the timer itself */
  volatile sig_atomic_t missed; /* the timer fired while it was busy */
  volatile sig_atomic_t pokes;  /* hooks set by signal handlers so far */
  int is_engine;                /* the thread that installed the handlers */
} watcher;

static _Thread_local watcher self;

static pthread_t engine;
static volatile sig_atomic_t have_engine;
static lua_State *volatile script_state; /* the CLI's state (engine thread) */
static const char shield_key = 0;        /* registry: functions that defer it */

static void watch_hook(lua_State *L, lua_Debug *ar);

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

/* ---- hooks ---- */

/* Whether the cancellation stops the code of watch w. */
static int cancel_applies(const lf_watch *w) {
  return lf_cancel_signal &&
         (w->kind == LF_WATCH_BODY || w->cancelled || !cancel_delivered);
}

/* Something this thread runs must stop at once (flags only: no clock). */
static int due_now(const watcher *me) {
  lf_watch *w = me->current;
  if (!w) return lf_cancel_signal && lf_runs_active == 0;
  if (cancel_applies(w)) return 1;
  for (; w; w = w->outer)
    if (w->expired || w->timed_out) return 1;
  return 0;
}

/* Called from the signal handlers: every Lua state this thread is running
 * gets the hook, which decides. */
static void poke(watcher *me) {
  for (lf_watch *w = me->current; w; w = w->outer)
    lua_sethook(w->L, watch_hook, ARMED, 1);
  for (resumed *c = me->coroutines; c; c = c->outer)
    lua_sethook(c->co, watch_hook, ARMED, 1);
  lua_State *L = script_state;
  if (me->is_engine && L && lf_cancel_signal) lua_sethook(L, watch_hook, ARMED, 1);
  me->pokes++;
}

/* Puts L's hook back as it was before the watches (nothing to stop). */
static void rest(watcher *me, lua_State *L) {
  sig_atomic_t pokes = me->pokes;
  barrier();
  lf_watch *first = NULL;
  int deadlines = 0;
  for (lf_watch *w = me->current; w; w = w->outer) {
    if (w->L == L && w->kind == LF_WATCH_BODY) first = w;
    deadlines |= w->deadline > 0;
  }
  if (me->has_timer < 0 && deadlines)
    lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY); /* no timer: poll */
  else if (first && first->prev_hook != watch_hook)
    lua_sethook(L, first->prev_hook, first->prev_mask, first->prev_count);
  else
    lua_sethook(L, NULL, 0, 0);
  barrier();
  if (me->pokes != pokes)
    lua_sethook(L, watch_hook, ARMED, 1); /* a signal came meanwhile */
}

/* Outside a run the script stops at once, except in the CLI's own code and
 * while a shielded function (the end of a flow run: its --json line) runs. */
static int may_stop_script(lua_State *L, lua_Debug *ar) {
  if (!lua_getinfo(L, "S", ar)) return 0;
  if (strcmp(ar->source, "=luaflow/cli.lua") == 0) return 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &shield_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 1;
  }
  lua_Debug frame;
  int shielded = 0;
  for (int level = 0; !shielded && lua_getstack(L, level, &frame); level++) {
    lua_getinfo(L, "f", &frame);
    shielded = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return !shielded;
}

static void watch_hook(lua_State *L, lua_Debug *ar) {
  watcher *me = &self;
  lf_watch *w = me->current, *late;
  const char *why = NULL;
  if (ar->event != LUA_HOOKCOUNT && lua_getinfo(L, "S", ar) && ar->what[0] == 'C')
    return; /* C code finishes its call: stop at the next Lua instruction */
  if (w) {
    if (cancel_applies(w)) {
      w->cancelled = 1;
      cancel_delivered = 1;
      why = "Flow run was cancelled.";
    } else if ((late = late_watch(me))) {
      late->timed_out = 1;
      why = "Execution timed out.";
    }
  } else if (lf_cancel_signal && lf_runs_active == 0) {
    if (!may_stop_script(L, ar)) {
      lua_sethook(L, watch_hook, LUA_MASKCOUNT, SHIELD_CHECK_EVERY); /* ask again soon */
      return;
    }
    why = "interrupted";
  }
  if (why) {
    lua_sethook(L, watch_hook, ARMED, 1); /* re-armed: a pcall cannot swallow it */
    lua_pushstring(L, why);
    lua_error(L);
  }
  rest(me, L);
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
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = LF_TIMER_SIGNAL;
  sev._sigev_un._tid = gettid(); /* this thread only */
  me->has_timer = timer_create(CLOCK_MONOTONIC, &sev, &me->timer) == 0 ? 1 : -1;
  return me->has_timer;
}

void lf_interrupt_install(lua_State *L) {
  init();
  watcher *me = &self;
  me->is_engine = 1;
  engine = pthread_self();
  have_engine = 1;
  script_state = L;
  /* no SA_RESTART: a sleeping scheduler or a blocked read wakes up */
  handle(SIGINT, on_cancel, NULL, 0);
  handle(SIGTERM, on_cancel, NULL, 0);
  if (L && lf_cancel_signal) lua_sethook(L, watch_hook, ARMED, 1); /* it came early */
}

/* ---- watches ---- */

void lf_watch_begin(lua_State *L, lf_watch *w, double timeout, lf_watch_kind kind) {
  watcher *me = &self;
  w->L = L;
  w->kind = kind;
  w->expired = 0;
  w->timed_out = w->cancelled = 0;
  w->deadline = timeout > 0 ? lf_monotonic() + timeout : 0;
  if (kind == LF_WATCH_BODY) {
    w->prev_hook = lua_gethook(L);
    w->prev_mask = lua_gethookmask(L);
    w->prev_count = lua_gethookcount(L);
  } else {
    w->prev_hook = NULL, w->prev_mask = w->prev_count = 0;
  }
  w->outer = me->current;
  barrier();
  me->current = w;
  if (w->deadline > 0 &&
      (me->has_timer > 0 || (me->has_timer == 0 && make_timer(me) > 0)))
    arm_nearest(me);
  if (due_now(me))
    lua_sethook(L, watch_hook, ARMED, 1);
  else if (w->deadline > 0 && me->has_timer < 0)
    lua_sethook(L, watch_hook, LUA_MASKCOUNT, CHECK_EVERY);
}

void lf_watch_end(lua_State *L, lf_watch *w) {
  watcher *me = &self;
  me->current = w->outer;
  barrier();
  if (w->outer && due_now(me)) {
    lua_sethook(L, watch_hook, ARMED, 1); /* the enclosing code must stop too */
    return;
  }
  if (w->timed_out || w->cancelled || w->expired ||
      (w->deadline > 0 && me->has_timer < 0))
    rest(me, L);
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

/* ---- coroutines ---- */

/* Calls the original coroutine.resume (at index orig) on co with the values
 * on the stack (co first); leaves its results. While co runs, the signal
 * handlers can reach it. */
static int resume_watched(lua_State *L, lua_State *co, int orig) {
  watcher *me = &self;
  resumed link = {co, me->coroutines};
  barrier();
  me->coroutines = &link;
  if (due_now(me)) lua_sethook(co, watch_hook, ARMED, 1);
  lua_pushvalue(L, orig);
  lua_insert(L, 1);
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  me->coroutines = link.outer;
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* coroutine.resume(co, ...) */
static int co_resume(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_State *co = lua_tothread(L, 1);
  return resume_watched(L, co, lua_upvalueindex(1));
}

static int close_thread(lua_State *co, lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, L);
#else
  (void)L;
  return lua_resetthread(co);
#endif
}

/* The function coroutine.wrap returns (upvalues: the coroutine, the original
 * resume); errors behave as the standard wrap's. */
static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  int n = resume_watched(L, co, lua_upvalueindex(2));
  if (lua_toboolean(L, 1)) return n - 1;
  int status = lua_status(co);
  if (status != LUA_OK && status != LUA_YIELD) { /* it died: close its variables */
    status = close_thread(co, L);
    lua_pop(L, 1);
    lua_xmove(co, L, 1); /* the error after closing */
  }
  if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/* coroutine.wrap(f) */
static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, co_wrapped, 2);
  return 1;
}

/* core.shield(fn): an interruption outside a run waits while fn runs. */
static int shield(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &shield_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &shield_key);
  }
  lua_pushvalue(L, 1);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  return 0;
}

void lf_open_interrupt(lua_State *L) {
  lua_pushcfunction(L, shield);
  lua_setfield(L, -2, "shield");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE) {
    lua_getfield(L, -1, "resume");
    if (lua_tocfunction(L, -1) != co_resume && lua_iscfunction(L, -1)) {
      lua_pushvalue(L, -1);
      lua_pushcclosure(L, co_resume, 1);
      lua_setfield(L, -3, "resume");
      lua_pushcclosure(L, co_wrap, 1); /* takes the original resume */
      lua_setfield(L, -2, "wrap");
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
}
