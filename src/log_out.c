/* Where log lines go: stderr, written at once on a terminal, buffered
 * otherwise (a file or a pipe) with these promises:
 *   - a line waits at most LF_LOG_MAX_WAIT: a flusher thread, woken when
 *     the buffer stops being empty, writes it out by that deadline, whatever
 *     the engine is doing (a long task body, a sleep until a retry);
 *   - nothing is lost when the process ends: exit() and the module's
 *     unloading flush (a destructor), so do a second SIGINT/SIGTERM (which
 *     exits at once) and a crash (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL
 *     when nothing else handles them);
 *   - lines stay whole and in order: one lock around the buffer and its writes;
 *   - a status line (the progress of a run) stays under them on a terminal:
 *     erased before a line is written, drawn again by its owner (progress.c).
 * A fork (io.popen, os.execute) leaves the child with an empty buffer. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "log.h"

#define LF_LOG_BUFSIZE 65536
#define LF_LOG_MAX_WAIT_NS 50000000L /* 50 ms: half the 100 ms promised */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static char buf[LF_LOG_BUFSIZE];
static atomic_size_t used; /* bytes of whole lines in buf */
static enum { UNDECIDED, AT_ONCE, BUFFERED } mode;
static pthread_t flusher;
static int flusher_running, stopping;
static atomic_int flusher_writing; /* the flusher holds the lock for a write */
static struct timespec first_line; /* when buf stopped being empty */
static atomic_int status_shown;    /* a status line is on the terminal */
static int status_off;             /* the process is ending: no more status */

#define ERASE_LINE "\r\033[K"

/* Writes all of it to stderr (retrying short writes and EINTR); an error
 * (a closed pipe, a full disk) drops the rest: nothing else can be done. */
static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w, n -= (size_t)w;
  }
}

/* Writes the buffer out (the lock held). The bytes are claimed first, so a
 * signal handler that flushes too never writes them a second time. */
static void flush_locked(void) {
  size_t n = atomic_exchange(&used, 0);
  if (n) write_all(buf, n);
}

static void *flush_loop(void *arg) {
  (void)arg;
  sigset_t all; /* the engine's thread takes the signals */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&lock);
  while (!stopping) {
    if (atomic_load(&used) == 0) {
      pthread_cond_wait(&wake, &lock);
      continue;
    }
    struct timespec due = first_line;
    due.tv_nsec += LF_LOG_MAX_WAIT_NS;
    if (due.tv_nsec >= 1000000000L) due.tv_sec++, due.tv_nsec -= 1000000000L;
    if (pthread_cond_timedwait(&wake, &lock, &due) != ETIMEDOUT) continue;
    atomic_store(&flusher_writing, 1);
    flush_locked();
    atomic_store(&flusher_writing, 0);
  }
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void before_fork(void) {
  pthread_mutex_lock(&lock);
}

static void after_fork_parent(void) {
  pthread_mutex_unlock(&lock);
}

/* The child has no flusher and must not write the parent's lines again. */
static void after_fork_child(void) {
  atomic_store(&used, 0);
  flusher_running = 0;
  mode = UNDECIDED;
  pthread_mutex_unlock(&lock);
}

static void decide_mode(void) {
  mode = AT_ONCE;
  if (isatty(STDERR_FILENO)) return;
  /* the condition variable waits on the monotonic clock */
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_destroy(&wake);
  pthread_cond_init(&wake, &attr);
  pthread_condattr_destroy(&attr);
  static int atfork_done;
  if (!atfork_done &&
      pthread_atfork(before_fork, after_fork_parent, after_fork_child) != 0)
    return;
  atfork_done = 1;
  stopping = 0;
  if (pthread_create(&flusher, NULL, flush_loop, NULL) != 0) return;
  flusher_running = 1;
  mode = BUFFERED;
}

/* Copies one line into the buffer (it fits); counted once it is whole, so
 * a signal handler that flushes never writes part of it. */
static void append(const struct iovec *parts, int nparts, size_t line) {
  size_t n = atomic_load(&used);
  char *p = buf + n;
  for (int k = 0; k < nparts; k++) {
    memcpy(p, parts[k].iov_base, parts[k].iov_len);
    p += parts[k].iov_len;
  }
  atomic_store(&used, n + line);
  if (n == 0 && mode == BUFFERED) { /* the flusher's deadline starts now */
    clock_gettime(CLOCK_MONOTONIC, &first_line);
    pthread_cond_signal(&wake);
  }
}

/* Takes the status line off the terminal (the lock held). */
static void erase_status(void) {
  if (atomic_exchange(&status_shown, 0)) write_all(ERASE_LINE, sizeof ERASE_LINE - 1);
}

void lf_log_out(const struct iovec *parts, int nparts) {
  size_t line = 0;
  for (int k = 0; k < nparts; k++)
    line += parts[k].iov_len;
  pthread_mutex_lock(&lock);
  if (mode == UNDECIDED) decide_mode();
  erase_status();
  if (atomic_load(&used) + line > sizeof buf) flush_locked();
  if (line > sizeof buf) { /* a huge line: straight out */
    for (int k = 0; k < nparts; k++)
      write_all(parts[k].iov_base, parts[k].iov_len);
  } else {
    append(parts, nparts, line);
    if (mode == AT_ONCE) flush_locked();
  }
  pthread_mutex_unlock(&lock);
}

void lf_log_flush(void) {
  pthread_mutex_lock(&lock);
  erase_status();
  flush_locked();
  pthread_mutex_unlock(&lock);
}

/* Drawn in place: back to the line's start, the text, the rest cleared. */
void lf_log_status(const char *text, size_t len) {
  pthread_mutex_lock(&lock);
  if (!status_off) {
    flush_locked();
    write_all("\r", 1);
    write_all(text, len);
    write_all("\033[K", 3);
    atomic_store(&status_shown, 1);
  }
  pthread_mutex_unlock(&lock);
}

void lf_log_status_clear(void) {
  pthread_mutex_lock(&lock);
  erase_status();
  pthread_mutex_unlock(&lock);
}

int lf_log_status_shown(void) {
  return atomic_load(&status_shown);
}

/* From a signal handler, on the engine's thread, just before the process
 * ends. The lock may be held by the code the signal interrupted: the whole
 * lines in the buffer are claimed and written all the same (a line being
 * copied in is not counted yet). Lines the flusher has claimed are its to
 * write: it is given up to 100 ms to finish. Only async-signal-safe calls
 * (write, nanosleep, atomics). */
void lf_log_flush_from_signal(void) {
  int saved = errno;
  if (atomic_exchange(&status_shown, 0)) write_all(ERASE_LINE, sizeof ERASE_LINE - 1);
  size_t n = atomic_exchange(&used, 0);
  if (n) write_all(buf, n);
  for (int ms = 0; ms < 100 && atomic_load(&flusher_writing); ms++) {
    struct timespec one = {0, 1000000L};
    nanosleep(&one, NULL);
  }
  errno = saved;
}

/* A crash: the lines logged so far go out, then the signal does what it
 * would have done. */
static void on_crash(int sig) {
  lf_log_flush_from_signal();
  signal(sig, SIG_DFL);
  raise(sig);
}

void lf_log_flush_on_crash(void) {
  static const int sigs[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};
  for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
    struct sigaction old;
    if (sigaction(sigs[k], NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
        (old.sa_flags & SA_SIGINFO))
      continue; /* someone else (a sanitizer, the embedding program) handles it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(sigs[k], &sa, NULL);
  }
}

/* exit() and the unloading of the Lua module: write what is left and stop
 * the flusher (its code may be about to be unmapped). */
__attribute__((destructor)) static void log_out_end(void) {
  pthread_mutex_lock(&lock);
  erase_status();
  status_off = 1;
  flush_locked();
  int running = flusher_running;
  stopping = 1;
  flusher_running = 0;
  mode = AT_ONCE; /* a line logged later still goes out */
  pthread_cond_signal(&wake);
  pthread_mutex_unlock(&lock);
  if (running) pthread_join(flusher, NULL);
}
