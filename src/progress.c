/* The progress line: its text, its rate limit and the ticker that redraws it
 * (see progress.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "log.h"
#include "progress.h"

size_t lf_progress_format(char *buf, size_t n, const lf_progress_counts *c,
                          double elapsed, int width) {
  if (n == 0) return 0;
  char total[24] = "";
  if (c->total > 0) snprintf(total, sizeof total, "/%ld", c->total);
  char failed[32] = "";
  if (c->failed > 0) snprintf(failed, sizeof failed, " %ld failed,", c->failed);
  long s = elapsed > 0 ? (long)elapsed : 0;
  char clock[32];
  if (s >= 3600)
    snprintf(clock, sizeof clock, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    snprintf(clock, sizeof clock, "%ld:%02ld", s / 60, s % 60);
  int len = snprintf(buf, n, "[%ld%s] %ld running,%s %s", c->done, total, c->running,
                     failed, clock);
  size_t out = len < 0 ? 0 : (size_t)len >= n ? n - 1 : (size_t)len;
  if (width > 0 && out > (size_t)width) out = (size_t)width;
  buf[out] = '\0';
  return out;
}

int lf_throttle_pass(lf_throttle *t, double now) {
  if (t->last != 0 && now - t->last < t->interval) return 0;
  t->last = now;
  return 1;
}

/* ---- the ticker ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t ticker;
static int running, stopping, held, cond_ready, atfork_done;
static lf_progress_counts counts;
static double started;

/* Columns of the terminal on stderr; 0 when it does not say. */
static int columns(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

/* Draws the line when it changed, or a log line erased it, and the rate
 * allows (mu held). */
static void redraw(lf_throttle *limit, char *last, size_t size) {
  char text[160];
  int width = columns();
  /* the last column is left free: writing there makes some terminals wrap */
  size_t len = lf_progress_format(text, sizeof text, &counts, lf_monotonic() - started,
                                  width > 1 ? width - 1 : 0);
  if (held) return;
  if (lf_log_status_shown() && strcmp(text, last) == 0) return;
  if (!lf_throttle_pass(limit, lf_monotonic())) return;
  lf_log_status(text, len);
  snprintf(last, size, "%s", text);
}

static void *tick(void *arg) {
  (void)arg;
  sigset_t all; /* the engine's thread takes the signals */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  lf_throttle limit = {1.0 / LF_PROGRESS_HZ, 0};
  char last[160] = "";
  pthread_mutex_lock(&mu);
  while (!stopping) {
    redraw(&limit, last, sizeof last);
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    due.tv_nsec += 1000000000L / LF_PROGRESS_HZ;
    if (due.tv_nsec >= 1000000000L) due.tv_sec++, due.tv_nsec -= 1000000000L;
    while (!stopping && pthread_cond_timedwait(&wake, &mu, &due) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* A forked child has no ticker, and its terminal line is its parent's. */
static void after_fork_child(void) {
  running = 0;
  pthread_mutex_init(&mu, NULL);
}

int lf_progress_start(void) {
  if (!isatty(STDERR_FILENO)) return 0;
  pthread_mutex_lock(&mu);
  if (running) {
    pthread_mutex_unlock(&mu);
    return 0;
  }
  if (!cond_ready) { /* the ticker waits on the monotonic clock */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    cond_ready = 1;
  }
  if (!atfork_done) atfork_done = pthread_atfork(NULL, NULL, after_fork_child) == 0;
  memset(&counts, 0, sizeof counts);
  started = lf_monotonic();
  stopping = held = 0;
  running = pthread_create(&ticker, NULL, tick, NULL) == 0;
  int rc = running ? 1 : -1;
  pthread_mutex_unlock(&mu);
  return rc;
}

void lf_progress_set(const lf_progress_counts *c) {
  pthread_mutex_lock(&mu);
  counts = *c;
  pthread_mutex_unlock(&mu);
}

void lf_progress_hold(int on) {
  pthread_mutex_lock(&mu);
  held = on;
  if (on) lf_log_status_clear();
  pthread_mutex_unlock(&mu);
}

int lf_progress_active(void) {
  pthread_mutex_lock(&mu);
  int r = running;
  pthread_mutex_unlock(&mu);
  return r;
}

void lf_progress_stop(void) {
  pthread_mutex_lock(&mu);
  int was = running;
  running = 0;
  stopping = 1;
  if (was) pthread_cond_signal(&wake);
  pthread_mutex_unlock(&mu);
  if (was) pthread_join(ticker, NULL);
  lf_log_status_clear();
}

/* The module's unloading (and exit): the ticker's code must not run on. */
__attribute__((destructor)) static void progress_end(void) {
  lf_progress_stop();
}
