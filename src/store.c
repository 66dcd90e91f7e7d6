/* The run store: opening and closing, and the record queue the engine
 * appends to (the writer thread that empties it is store_writer.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "state.h"
#include "store_codec.h"
#include "store_priv.h"

int lf_store_fail(lf_store_error *err, lf_store_code code, const char *fmt, ...) {
  if (!err) return -1;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- the queue (engine side) ---- */

/* Room for size bytes at the queue's tail (under s->mu); NULL: no memory. */
static unsigned char *reserve(lf_store *s, size_t size) {
  qblock *b = s->tail;
  if (!b || b->cap - b->used < size) {
    if (size <= QBLOCK_SIZE && s->spare) {
      b = s->spare;
      s->spare = b->next;
      s->spare_bytes -= b->cap;
    } else {
      size_t cap = size > QBLOCK_SIZE ? size : QBLOCK_SIZE;
      if (!(b = malloc(sizeof *b + cap))) return NULL;
      b->cap = cap;
    }
    b->used = 0;
    b->next = NULL;
    if (s->tail)
      s->tail->next = b;
    else
      s->head = b;
    s->tail = b;
  }
  unsigned char *p = b->data + b->used;
  b->used += size;
  return p;
}

void lf_store_set_failure(lf_store *s, const lf_store_error *err) {
  if (s->failed) return;
  s->failed = 1;
  atomic_store_explicit(&s->off, 1, memory_order_relaxed);
  s->failure = *err;
  pthread_cond_broadcast(&s->space);
  pthread_cond_broadcast(&s->done);
}

/* String lengths for a record, NO_STR for NULL; returns their bytes with
 * terminators. A string of 2 GB or more is cut (not the store). */
static inline size_t measure(const char *const *str, const size_t *given, uint32_t *len,
                             int n) {
  size_t bytes = 0;
  for (int i = 0; i < n; i++) {
    if (!str[i]) {
      len[i] = NO_STR;
      continue;
    }
    size_t l = given && given[i] != SIZE_MAX ? given[i] : strlen(str[i]);
    if (l >= NO_STR / 2) l = NO_STR / 2;
    len[i] = (uint32_t)l;
    bytes += l + 1;
  }
  return bytes;
}

/* Writes a record (its fixed part, of `size` bytes, then n strings) at p. */
static inline __attribute__((always_inline)) void
put_record(unsigned char *p, const rec_head *fixed, size_t size, const char *const *str,
           const uint32_t *len, int n) {
  memcpy(p, fixed, size);
  unsigned char *o = p + size;
  for (int i = 0; i < n; i++) {
    if (len[i] == NO_STR) continue;
    memcpy(o, str[i], len[i]);
    o[len[i]] = '\0';
    o += len[i] + 1;
  }
}

static void out_of_memory(lf_store *s) {
  pthread_mutex_lock(&s->mu);
  if (!s->failed && !s->closing) {
    lf_store_error err;
    lf_store_fail(&err, LF_STORE_EIO, "run store %s: out of memory", s->path);
    lf_store_set_failure(s, &err);
  }
  pthread_mutex_unlock(&s->mu);
}

/* Room for size bytes in r's lane (its thread only); NULL: no memory. A
 * block the writer is done with is reused when there is one. */
static unsigned char *lane_reserve(lf_store_recorder *r, size_t size) {
  lane_block *b = r->ltail;
  if (b && b->cap - r->lused >= size) return b->data + r->lused;
  lane_block *nb = NULL;
  if (size <= QBLOCK_SIZE) { /* the writer pushes spares, only we pop */
    nb = atomic_load_explicit(&r->lspare, memory_order_acquire);
    while (nb &&
           !atomic_compare_exchange_weak_explicit(
               &r->lspare, &nb, atomic_load_explicit(&nb->next, memory_order_relaxed),
               memory_order_acquire, memory_order_acquire))
      ;
  }
  if (!nb) {
    size_t cap = size > QBLOCK_SIZE ? size : QBLOCK_SIZE;
    if (!(nb = malloc(sizeof *nb + cap))) return NULL;
    nb->cap = cap;
  }
  atomic_store_explicit(&nb->next, NULL, memory_order_relaxed);
  atomic_store_explicit(&nb->published, 0, memory_order_relaxed);
  if (b)
    atomic_store_explicit(&b->next, nb, memory_order_release);
  else
    atomic_store_explicit(&r->lfirst, nb, memory_order_release);
  r->ltail = nb;
  r->lused = 0;
  return nb->data;
}

/* A record of r from the thread that began its run: into its lane, no lock.
 * The writer is woken only when the run ends or the lane has filled a
 * batch; it looks at the lanes every flush interval anyway. */
static inline __attribute__((always_inline)) int
lane_push(lf_store *s, lf_store_recorder *r, rec_head *fixed, size_t size,
          const char *const *str, const uint32_t *len, int n, size_t total) {
  if (atomic_load_explicit(&s->off, memory_order_relaxed)) return -1;
  unsigned char *p = lane_reserve(r, total);
  if (!p) {
    out_of_memory(s);
    return -1;
  }
  put_record(p, fixed, size, str, len, n);
  r->lused += total;
  r->lappended += total;
  r->lsince += total;
  int end = fixed->type == REC_END, full = r->lsince >= BATCH_BYTES;
  size_t appended = r->lappended;
  if (full) r->lsince = 0;
  atomic_store_explicit(&r->ltail->published, r->lused, memory_order_release);
  if (!end && !full) return 0;
  /* After its END the writer may free r at any time: only s from here. */
  pthread_mutex_lock(&s->mu);
  if (end)
    s->flush_wanted = 1;
  else
    s->lanes_full = 1;
  pthread_cond_signal(&s->wake);
  while (!end && !s->failed && !s->closing &&
         appended - atomic_load_explicit(&r->lconsumed, memory_order_acquire) >=
             QUEUE_MAX)
    pthread_cond_wait(&s->space, &s->mu);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* Copies a record (its fixed part `fixed`, of `size` bytes, then n strings)
 * into r's lane, or the queue when another thread records. Inlined into
 * each record function, where the sizes are constants. */
static inline __attribute__((always_inline)) int
push(lf_store *s, lf_store_recorder *r, rec_head *fixed, size_t size,
     const char *const *str, const uint32_t *len, int n, size_t text) {
  size_t total = (size + text + 7) & ~(size_t)7;
  fixed->size = (uint32_t)total;
  fixed->run = r;
  if (r && pthread_equal(r->thread, pthread_self()))
    return lane_push(s, r, fixed, size, str, len, n, total);
  pthread_mutex_lock(&s->mu);
  while (s->queued >= QUEUE_MAX && !s->failed && !s->closing)
    pthread_cond_wait(&s->space, &s->mu);
  unsigned char *p = s->failed || s->closing ? NULL : reserve(s, total);
  if (!p) {
    pthread_mutex_unlock(&s->mu);
    if (!s->failed && !s->closing) out_of_memory(s);
    return -1;
  }
  put_record(p, fixed, size, str, len, n);
  size_t before = s->queued;
  s->queued += total;
  /* Wake the writer to start its clock, early when a batch is full, and at
   * once when a run ends. */
  if (fixed->type == REC_END) s->flush_wanted = 1;
  if (before == 0 || (before < BATCH_BYTES && s->queued >= BATCH_BYTES) ||
      fixed->type == REC_END)
    pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

lf_store_recorder *lf_store_begin_run(lf_store *s, const lf_store_run *run) {
  if (!s || !s->recording || !run || !run->id || !run->id[0]) return NULL;
  lf_store_recorder *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->store = s;
  r->thread = pthread_self();
  pthread_mutex_lock(&s->mu);
  int usable = !s->failed && !s->closing;
  if (usable) {
    r->next = s->recorders;
    if (r->next) r->next->prev = r;
    s->recorders = r;
    pthread_cond_signal(&s->wake); /* to look at its lane from now on */
  }
  pthread_mutex_unlock(&s->mu);
  if (!usable) {
    free(r);
    return NULL;
  }
  rec_begin b = {.h.type = REC_BEGIN, .started = run->started, .ntasks = run->ntasks};
  const char *str[] = {run->id,       run->flow ? run->flow : "",
                       run->script,   run->parameters,
                       run->executor, run->restart_of};
  size_t text = measure(str, NULL, b.len, 6);
  push(s, r, &b.h, sizeof b, str, b.len, 6,
       text); /* dropped: the store failed, and says so */
  return r;
}

int lf_store_record_task(lf_store_recorder *r, const lf_store_task *t) {
  if (!r) return -1;
  rec_task k = {.h = {.type = REC_TASK,
                      .kind_a = (uint8_t)t->state,
                      .flag = (uint8_t)(t->result_stored != 0)},
                .started = t->started,
                .ended = t->ended,
                .index = t->index,
                .map_index = t->map_index,
                .run_count = t->run_count};
  const char *str[] = {t->name, t->message, t->result};
  size_t given[] = {SIZE_MAX, SIZE_MAX, t->result_len};
  if (t->result && t->result_len > LF_STORE_RESULT_MAX) {
    str[2] = NULL; /* too long to keep: a restart runs the task again */
    k.h.flag = 0;
  }
  size_t text = measure(str, given, k.len, 3);
  return push(r->store, r, &k.h, sizeof k, str, k.len, 3, text);
}

int lf_store_record_transition(lf_store_recorder *r, const lf_store_transition *t) {
  if (!r) return -1;
  rec_transition k = {.h = {.type = REC_TRANSITION,
                            .kind_a = (uint8_t)t->old_state,
                            .kind_b = (uint8_t)t->new_state},
                      .time = t->time,
                      .index = t->index,
                      .map_index = t->map_index,
                      .seq = t->seq};
  const char *str[] = {t->name, t->message};
  size_t text = measure(str, NULL, k.len, 2);
  return push(r->store, r, &k.h, sizeof k, str, k.len, 2, text);
}

int lf_store_record_log(lf_store_recorder *r, const lf_store_log *l) {
  if (!r) return -1;
  rec_log k = {.h.type = REC_LOG, .time = l->time, .level = l->level};
  const char *str[] = {l->logger, l->message};
  size_t given[] = {SIZE_MAX, l->message_len};
  size_t text = measure(str, given, k.len, 2);
  return push(r->store, r, &k.h, sizeof k, str, k.len, 2, text);
}

int lf_store_end_run(lf_store_recorder *r, double ended, lf_kind state,
                     const char *message, int exit_code) {
  if (!r) return -1;
  rec_end k = {.h = {.type = REC_END, .kind_a = (uint8_t)state},
               .ended = ended,
               .exit_code = exit_code};
  const char *str[] = {message};
  size_t text = measure(str, NULL, k.len, 1);
  return push(r->store, r, &k.h, sizeof k, str, k.len, 1, text);
}

int lf_store_append(lf_store *s, rec_head *fixed, size_t size, const char *const *str,
                    uint32_t *len, int n) {
  if (!s || !s->recording) return -1;
  size_t text = measure(str, NULL, len, n);
  return push(s, NULL, fixed, size, str, len, n, text);
}

int lf_store_flush(lf_store *s, lf_store_error *err) {
  if (!s) return 0;
  pthread_mutex_lock(&s->mu);
  /* the next batch the writer takes holds everything recorded until now */
  unsigned long long target = s->taken + 1;
  while (s->recording && s->committed < target && !s->failed) {
    s->flush_wanted = 1;
    pthread_cond_signal(&s->wake);
    pthread_cond_wait(&s->done, &s->mu);
  }
  int rc = 0;
  if (s->failed) {
    if (err) *err = s->failure;
    rc = -1;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

const char *lf_store_failure(lf_store *s) {
  if (!s) return NULL;
  pthread_mutex_lock(&s->mu);
  const char *msg = s->failed ? s->failure.msg : NULL;
  pthread_mutex_unlock(&s->mu);
  return msg; /* stable: failure is set once */
}

/* ---- opening and closing ---- */

static lf_store_code errno_code(int e) {
  switch (e) {
  case EACCES:
  case EPERM:
  case EROFS:
    return LF_STORE_EREADONLY;
  case ENOSPC:
  case EDQUOT:
    return LF_STORE_EFULL;
  default:
    return LF_STORE_EIO;
  }
}

/* Creates the directories above path (0700; existing ones are left alone). */
static int make_parents(const char *path, lf_store_error *err) {
  char *dir = strdup(path);
  if (!dir) return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", path);
  char *slash = strrchr(dir, '/');
  int rc = 0;
  if (slash && slash != dir) {
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
      if (*p != '/' && *p) continue;
      char c = *p;
      *p = '\0';
      struct stat st;
      if (mkdir(dir, 0700) != 0 &&
          (errno != EEXIST || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        int e = errno == EEXIST ? ENOTDIR : errno;
        rc = lf_store_fail(err, errno_code(e),
                           "cannot create directory %s for run store %s (%s)", dir, path,
                           strerror(e));
        break;
      }
      *p = c;
      if (!c) break;
    }
  }
  free(dir);
  return rc;
}

/* Makes the file ourselves so it is private (0600); SQLite gives its WAL and
 * index files the same mode. 1 when made, 0 when it was there, else -1. */
static int create_file(const char *path, lf_store_error *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) return close(fd), 1;
  if (errno == EEXIST) return 0;
  return lf_store_fail(err, errno_code(errno), "cannot create run store %s (%s)", path,
                       strerror(errno));
}

int lf_store_env_path(char *buf, size_t n) {
  const char *v = getenv("LUAFLOW_STORE");
  int len;
  if (v && *v) {
    if (strcasecmp(v, "off") == 0) return 0;
    len = snprintf(buf, n, "%s", v);
  } else if ((v = getenv("XDG_STATE_HOME")) && v[0] == '/') {
    len = snprintf(buf, n, "%s/luaflow/luaflow.db", v);
  } else if ((v = getenv("HOME")) && *v) {
    len = snprintf(buf, n, "%s/.local/state/luaflow/luaflow.db", v);
  } else
    return -1;
  return len > 0 && (size_t)len < n ? 1 : -1;
}

static void free_blocks(lane_block *b) {
  while (b) {
    lane_block *next = atomic_load_explicit(&b->next, memory_order_relaxed);
    free(b);
    b = next;
  }
}

void lf_store_free_recorder(lf_store_recorder *r) {
  for (int k = 0; k < LF_NCHUNKS; k++)
    lf_chunk_free(&r->chunk[k]);
  /* the blocks before lhead went back to lspare or were freed */
  free_blocks(r->lhead ? r->lhead
                       : atomic_load_explicit(&r->lfirst, memory_order_relaxed));
  free_blocks(atomic_load_explicit(&r->lspare, memory_order_relaxed));
  free(r);
}

void lf_store_free(lf_store *s) {
  if (s->writer) s->be->close(s->writer);
  if (s->reader) s->be->close(s->reader);
  for (qblock *b = s->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  for (qblock *b = s->spare, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  for (lf_store_recorder *r = s->recorders, *next; r; r = next) {
    next = r->next;
    lf_store_free_recorder(r);
  }
  pthread_mutex_destroy(&s->read_mu);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->wake);
  pthread_cond_destroy(&s->done);
  pthread_cond_destroy(&s->space);
  free(s->path);
  free(s);
}

static int start_writer(lf_store *s, lf_store_error *err) {
  /* The writer takes no signals: SIGINT and SIGTERM belong to the engine. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&s->thread, NULL, lf_store_writer_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    return lf_store_fail(err, LF_STORE_EIO, "run store %s: cannot start its writer (%s)",
                         s->path, strerror(rc));
  s->recording = 1;
  return 0;
}

lf_store *lf_store_open(const char *path, const lf_store_options *opts,
                        lf_store_error *err) {
  lf_store_error scratch;
  if (!err) err = &scratch;
  memset(err, 0, sizeof *err);
  lf_store_options o = opts ? *opts : (lf_store_options){0};
  if (!path || !*path) {
    lf_store_fail(err, LF_STORE_EINVAL, "run store: empty path");
    return NULL;
  }
  int create = o.flags & LF_STORE_CREATE, record = o.flags & LF_STORE_RECORD;
  struct stat st;
  int created = 0;
  if (create) {
    if (make_parents(path, err) || (created = create_file(path, err)) < 0) return NULL;
  } else if (stat(path, &st) != 0) {
    lf_store_fail(err, errno == ENOENT ? LF_STORE_ENOENT : LF_STORE_EIO,
                  "no run store at %s (%s)", path, strerror(errno));
    return NULL;
  }
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    lf_store_fail(err, LF_STORE_EINVAL, "run store %s is a directory, not a file", path);
    return NULL;
  }
  lf_store *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", path);
    return NULL;
  }
  s->be = &lf_store_sqlite;
  s->owner = (long)getpid();
  s->flush_interval = o.flush_interval > 0 ? o.flush_interval : 0.05;
  s->busy_timeout = o.busy_timeout > 0 ? o.busy_timeout : 60;
  s->next_heartbeat = lf_monotonic() + LF_STORE_HEARTBEAT;
  pthread_mutex_init(&s->read_mu, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&s->done, NULL);
  pthread_cond_init(&s->space, NULL);
  lf_store_identify(s);

  /* Readers open read-write when they can (to migrate, to prune); a store
   * only read is still shown when it cannot be written. */
  double busy = s->busy_timeout < 5 ? s->busy_timeout : 5;
  s->reader = s->be->open(path, create, 1, busy, err);
  if (!s->reader && !record &&
      (err->code == LF_STORE_EREADONLY || err->code == LF_STORE_EIO))
    s->reader = s->be->open(path, 0, 0, busy, err);
  if (!s->reader) goto fail;
  if (record) {
    if (s->be->readonly(s->reader)) {
      lf_store_fail(err, LF_STORE_EREADONLY, "run store %s is read-only", path);
      goto fail;
    }
    if (!(s->writer = s->be->open(path, 0, 1, busy, err)) || start_writer(s, err))
      goto fail;
  }
  return s;
fail:
  lf_store_free(s);
  if (created) unlink(path); /* an empty file would only be in the way */
  return NULL;
}

int lf_store_close(lf_store *s, lf_store_error *err) {
  if (!s) return 0;
  /* A forked child has no writer thread and must not touch the parent's
   * connections: it only forgets the store. */
  if ((long)getpid() != s->owner) return 0;
  if (s->recording) {
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    atomic_store_explicit(&s->off, 1, memory_order_relaxed);
    pthread_cond_signal(&s->wake);
    pthread_cond_broadcast(&s->space);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
  }
  int rc = 0;
  if (s->failed) {
    if (err) *err = s->failure;
    rc = -1;
  }
  lf_store_free(s);
  return rc;
}

/* Writers closing stores in the background, for the exit to wait for. */
static pthread_mutex_t closing_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t *closing;
static size_t nclosing;
static long closing_pid;

static void wait_closing(void) {
  pthread_mutex_lock(&closing_mu);
  if (closing_pid == (long)getpid()) /* a forked child has none of them */
    for (size_t i = 0; i < nclosing; i++)
      pthread_join(closing[i], NULL);
  free(closing);
  closing = NULL;
  nclosing = 0;
  pthread_mutex_unlock(&closing_mu);
}

/* Remembers a writer for the exit to wait for; 0 when it cannot. */
static int wait_at_exit(pthread_t t) {
  static int registered;
  pthread_mutex_lock(&closing_mu);
  if (closing_pid != (long)getpid()) { /* a forked child starts its own list */
    free(closing);
    closing = NULL;
    nclosing = 0;
    closing_pid = (long)getpid();
  }
  pthread_t *grown = realloc(closing, (nclosing + 1) * sizeof *grown);
  if (grown) closing = grown;
  if (!registered) registered = atexit(wait_closing) == 0;
  int ok = grown && registered;
  if (ok) closing[nclosing++] = t;
  pthread_mutex_unlock(&closing_mu);
  return ok;
}

int lf_store_close_later(lf_store *s, lf_store_error *err) {
  if (!s || (long)getpid() != s->owner || !s->recording) return lf_store_close(s, err);
  int rc = lf_store_flush(s, err);
  if (!wait_at_exit(s->thread)) {
    lf_store_close(s, NULL);
    return rc;
  }
  pthread_mutex_lock(&s->mu);
  s->detached = 1;
  s->closing = 1;
  atomic_store_explicit(&s->off, 1, memory_order_relaxed);
  pthread_cond_signal(&s->wake);
  pthread_cond_broadcast(&s->space);
  pthread_mutex_unlock(&s->mu);
  return rc; /* s is the writer's from here */
}

const char *lf_store_path(const lf_store *s) {
  return s->path;
}

int lf_store_schema_version(lf_store *s) {
  pthread_mutex_lock(&s->read_mu);
  int v = s->be->schema_version(s->reader);
  pthread_mutex_unlock(&s->read_mu);
  return v;
}
