/* The run store: opening, the record queue the engine appends to, and the
 * writer thread that commits it in batches (see store.h). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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

#define QBLOCK_SIZE (64 * 1024) /* queue memory comes in blocks this big */
#define BATCH_BYTES (1u << 20)  /* a queue this full wakes the writer early */
#define QUEUE_MAX (64u << 20)   /* appenders wait while the queue is this full */
#define SPARE_MAX (4u << 20)    /* queue blocks kept for reuse */
#define CHUNK_MAX (1u << 20)    /* a records row holds about this much */

struct qblock {
  qblock *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

enum { REC_BEGIN, REC_TASK, REC_TRANSITION, REC_LOG, REC_END };

/* A queued record: a fixed part by type, then its strings in order (each
 * NUL-terminated; a length of NO_STR is a NULL string). Sizes are multiples
 * of 8. State classes travel as one byte. */
typedef struct {
  uint32_t size;
  uint8_t type, kind_a, kind_b, flag;
  lf_store_recorder *run;
} rec_head;

#define NO_STR UINT32_MAX

typedef struct {
  rec_head h; /* kind_a: old, kind_b: new */
  double time;
  int32_t index, map_index, seq;
  uint32_t len[2]; /* name, message */
} rec_transition;

typedef struct {
  rec_head h; /* kind_a: state, flag: result stored */
  double started, ended;
  int32_t index, map_index, run_count;
  uint32_t len[3]; /* name, message, result */
} rec_task;

typedef struct {
  rec_head h;
  double time;
  int32_t level;
  uint32_t len[2]; /* logger, message */
} rec_log;

typedef struct {
  rec_head h; /* kind_a: final state */
  double ended;
  int32_t exit_code;
  uint32_t len[1]; /* message */
} rec_end;

typedef struct {
  rec_head h;
  double started;
  int32_t ntasks;
  uint32_t len[6]; /* id, flow, script, parameters, executor, restart_of */
} rec_begin;

struct lf_store_recorder {
  lf_store *store;
  lf_store_recorder *prev, *next; /* s->recorders, under s->mu */
  /* The writer thread's alone: */
  long long key, new_key; /* its runs row (new_: written in the open batch) */
  int rejected, new_rejected;
  const rec_head *end; /* its END record, in the open batch */
  int touched;
  lf_store_recorder *next_touched;
  lf_buf chunk[LF_NCHUNKS];
  size_t nrec[LF_NCHUNKS];
  int counts[LF_NKINDS], delta[LF_NKINDS];
};

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

static void set_failure(lf_store *s, const lf_store_error *err) {
  if (s->failed) return;
  s->failed = 1;
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

/* Copies a record (its fixed part `fixed`, of `size` bytes, then n strings)
 * into the queue. Inlined into each record function, where the sizes are
 * constants. */
static inline __attribute__((always_inline)) int
push(lf_store_recorder *r, rec_head *fixed, size_t size, const char *const *str,
     const uint32_t *len, int n, size_t text) {
  lf_store *s = r->store;
  size_t total = (size + text + 7) & ~(size_t)7;
  fixed->size = (uint32_t)total;
  fixed->run = r;
  pthread_mutex_lock(&s->mu);
  while (s->queued >= QUEUE_MAX && !s->failed && !s->closing)
    pthread_cond_wait(&s->space, &s->mu);
  unsigned char *p = s->failed || s->closing ? NULL : reserve(s, total);
  if (!p) {
    if (!s->failed && !s->closing) {
      lf_store_error err;
      lf_store_fail(&err, LF_STORE_EIO, "run store %s: out of memory", s->path);
      set_failure(s, &err);
    }
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
  memcpy(p, fixed, size);
  unsigned char *o = p + size;
  for (int i = 0; i < n; i++) {
    if (len[i] == NO_STR) continue;
    memcpy(o, str[i], len[i]);
    o[len[i]] = '\0';
    o += len[i] + 1;
  }
  size_t before = s->queued;
  s->queued += total;
  s->appended++;
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
  pthread_mutex_lock(&s->mu);
  int usable = !s->failed && !s->closing;
  if (usable) {
    r->next = s->recorders;
    if (r->next) r->next->prev = r;
    s->recorders = r;
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
  push(r, &b.h, sizeof b, str, b.len, 6,
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
  return push(r, &k.h, sizeof k, str, k.len, 3, text);
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
  return push(r, &k.h, sizeof k, str, k.len, 2, text);
}

int lf_store_record_log(lf_store_recorder *r, const lf_store_log *l) {
  if (!r) return -1;
  rec_log k = {.h.type = REC_LOG, .time = l->time, .level = l->level};
  const char *str[] = {l->logger, l->message};
  size_t given[] = {SIZE_MAX, l->message_len};
  size_t text = measure(str, given, k.len, 2);
  return push(r, &k.h, sizeof k, str, k.len, 2, text);
}

int lf_store_end_run(lf_store_recorder *r, double ended, lf_kind state,
                     const char *message, int exit_code) {
  if (!r) return -1;
  rec_end k = {.h = {.type = REC_END, .kind_a = (uint8_t)state},
               .ended = ended,
               .exit_code = exit_code};
  const char *str[] = {message};
  size_t text = measure(str, NULL, k.len, 1);
  return push(r, &k.h, sizeof k, str, k.len, 1, text);
}

/* ---- the writer ---- */

/* The strings that follow a record's fixed part (size bytes). */
static void strings(const rec_head *h, size_t size, const uint32_t *len, int n,
                    const char **str) {
  const char *p = (const char *)h + size;
  for (int i = 0; i < n; i++) {
    str[i] = len[i] == NO_STR ? NULL : p;
    if (str[i]) p += len[i] + 1;
  }
}

/* Frees a recorder whose run ended (its END record is written or dropped). */
static void drop_recorder(lf_store *s, lf_store_recorder *r) {
  pthread_mutex_lock(&s->mu);
  if (r->prev)
    r->prev->next = r->next;
  else
    s->recorders = r->next;
  if (r->next) r->next->prev = r->prev;
  pthread_mutex_unlock(&s->mu);
  for (int k = 0; k < LF_NCHUNKS; k++)
    lf_buf_free(&r->chunk[k]);
  free(r);
}

static int write_chunk(lf_store *s, lf_store_recorder *r, int kind, lf_buf *zbuf,
                       lf_store_error *err) {
  lf_buf *b = &r->chunk[kind];
  lf_codec_close(b);
  if (b->oom)
    return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", s->path);
  const char *body = b->p;
  size_t len = b->len, raw = 0;
  if (len >= LF_CODEC_DEFLATE_MIN && lf_codec_deflate(b->p, b->len, zbuf) == 0) {
    body = zbuf->p;
    raw = len;
    len = zbuf->len;
  }
  long long key = r->new_key ? r->new_key : r->key;
  int rc = s->be->insert_chunk(s->writer, key, kind, r->nrec[kind], body, len, raw, err);
  lf_buf_reset(b);
  r->nrec[kind] = 0;
  return rc;
}

/* Encodes one task, transition or log record into its run's open chunk. */
static int encode(lf_store *s, lf_store_recorder *r, const rec_head *h, lf_buf *zbuf,
                  lf_store_error *err) {
  const char *str[3];
  int kind;
  if (h->type == REC_TASK) {
    const rec_task *k = (const rec_task *)h;
    strings(h, sizeof *k, k->len, 3, str);
    lf_store_task t = {k->index, k->map_index,           str[0],     (lf_kind)h->kind_a,
                       str[1],   k->run_count,           k->started, k->ended,
                       str[2],   str[2] ? k->len[2] : 0, h->flag};
    lf_codec_task(&r->chunk[kind = LF_CHUNK_TASK], &t);
    if (h->kind_a < LF_NKINDS) r->delta[h->kind_a]++;
  } else if (h->type == REC_TRANSITION) {
    const rec_transition *k = (const rec_transition *)h;
    strings(h, sizeof *k, k->len, 2, str);
    lf_store_transition t = {k->index,           k->map_index,       k->seq, str[0],
                             (lf_kind)h->kind_a, (lf_kind)h->kind_b, str[1], k->time};
    lf_codec_transition(&r->chunk[kind = LF_CHUNK_TRANSITION], &t);
  } else {
    const rec_log *k = (const rec_log *)h;
    strings(h, sizeof *k, k->len, 2, str);
    lf_store_log l = {k->time, k->level, str[0], str[1], str[1] ? k->len[1] : 0};
    lf_codec_log(&r->chunk[kind = LF_CHUNK_LOG], &l);
  }
  r->nrec[kind]++;
  return r->chunk[kind].len >= CHUNK_MAX ? write_chunk(s, r, kind, zbuf, err) : 0;
}

/* Brings a run's row up to date at the end of a batch. */
static int update_run(lf_store *s, lf_store_recorder *r, lf_buf *scratch, double now,
                      lf_store_error *err) {
  for (int k = 0; k < LF_NCHUNKS; k++)
    if (r->nrec[k] && write_chunk(s, r, k, scratch, err)) return -1;
  lf_store_run_update u = {.heartbeat = now};
  int counts[LF_NKINDS], changed = 0;
  for (int k = 0; k < LF_NKINDS; k++) {
    counts[k] = r->counts[k] + r->delta[k];
    changed |= r->delta[k];
  }
  if (changed) {
    lf_buf_reset(scratch);
    lf_codec_counts(scratch, counts);
    if (scratch->oom)
      return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", s->path);
    u.counts = scratch->p;
    u.counts_len = scratch->len;
  }
  if (r->end) {
    const rec_end *k = (const rec_end *)r->end;
    const char *message;
    strings(r->end, sizeof *k, k->len, 1, &message);
    u.end = 1;
    u.ended = k->ended;
    u.exit_code = k->exit_code;
    u.state = lf_kind_name((lf_kind)r->end->kind_a);
    u.message = message;
  }
  return s->be->update_run(s->writer, r->new_key ? r->new_key : r->key, &u, err);
}

/* The keys of open runs the batch did not touch, for their heartbeat. */
static size_t idle_runs(lf_store *s, long long *keys, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&s->mu);
  for (lf_store_recorder *r = s->recorders; r && n < max; r = r->next)
    if (r->key && !r->touched && !r->rejected) keys[n++] = r->key;
  pthread_mutex_unlock(&s->mu);
  return n;
}

static int heartbeats(lf_store *s, double now, lf_store_error *err) {
  long long keys[256];
  size_t n = idle_runs(s, keys, sizeof keys / sizeof keys[0]);
  lf_store_run_update u = {.heartbeat = now};
  for (size_t i = 0; i < n; i++)
    if (s->be->update_run(s->writer, keys[i], &u, err)) return -1;
  s->next_heartbeat = lf_monotonic() + LF_STORE_HEARTBEAT;
  return 0;
}

/* Writes one batch in one transaction; the touched recorders are listed in
 * *touched so the caller can apply (or forget) what the batch did. */
static int write_batch(lf_store *s, qblock *blocks, lf_store_recorder **touched,
                       lf_buf *scratch, lf_store_error *err) {
  if (s->be->begin(s->writer, err)) return -1;
  for (qblock *b = blocks; b; b = b->next) {
    for (size_t off = 0; off < b->used;) {
      const rec_head *h = (const rec_head *)(b->data + off);
      off += h->size;
      lf_store_recorder *r = h->run;
      if (!r->touched) {
        r->touched = 1;
        r->next_touched = *touched;
        *touched = r;
      }
      if (h->type == REC_BEGIN) {
        const rec_begin *k = (const rec_begin *)h;
        const char *str[6];
        strings(h, sizeof *k, k->len, 6, str);
        lf_store_run run = {.id = str[0],
                            .flow = str[1],
                            .script = str[2],
                            .parameters = str[3],
                            .executor = str[4],
                            .restart_of = str[5],
                            .started = k->started,
                            .ntasks = k->ntasks};
        if (s->be->insert_run(s->writer, &run, &s->self, &r->new_key, err)) {
          if (err->code != LF_STORE_EINVAL) goto fail;
          r->new_rejected = 1; /* an id already recorded: this run is not */
        }
      } else if (h->type == REC_END) {
        r->end = h;
      } else if (!r->rejected && !r->new_rejected && (r->key || r->new_key)) {
        if (encode(s, r, h, scratch, err)) goto fail;
      }
    }
  }
  double now = lf_now();
  for (lf_store_recorder *r = *touched; r; r = r->next_touched)
    if ((r->key || r->new_key) && !r->rejected && !r->new_rejected &&
        update_run(s, r, scratch, now, err))
      goto fail;
  if (lf_monotonic() >= s->next_heartbeat && heartbeats(s, now, err)) goto fail;
  if (s->be->commit(s->writer, err)) goto fail;
  return 0;
fail:
  s->be->rollback(s->writer);
  return -1;
}

/* After a batch: keep what it did (ok) or forget it, and free the recorders
 * whose run ended in it. */
static void settle(lf_store *s, lf_store_recorder *touched, int ok) {
  for (lf_store_recorder *r = touched, *next; r; r = next) {
    next = r->next_touched;
    if (ok) {
      if (r->new_key) r->key = r->new_key;
      if (r->new_rejected) r->rejected = 1;
      for (int k = 0; k < LF_NKINDS; k++)
        r->counts[k] += r->delta[k];
    }
    r->new_key = 0;
    r->new_rejected = 0;
    memset(r->delta, 0, sizeof r->delta);
    for (int k = 0; k < LF_NCHUNKS; k++) {
      lf_buf_reset(&r->chunk[k]);
      r->nrec[k] = 0;
    }
    r->touched = 0;
    r->next_touched = NULL;
    const rec_head *end = r->end;
    r->end = NULL;
    if (ok && end) drop_recorder(s, r);
  }
}

/* Commits a batch, retrying while other processes hold the lock; on any other
 * failure the store stops recording. 0 when committed. */
static int commit_batch(lf_store *s, qblock *blocks, lf_buf *scratch) {
  double deadline = lf_monotonic() + s->busy_timeout, pause = 0.005;
  for (;;) {
    lf_store_recorder *touched = NULL;
    lf_store_error err = {0};
    int rc = write_batch(s, blocks, &touched, scratch, &err);
    settle(s, touched, rc == 0);
    if (rc == 0) return 0;
    if (err.code == LF_STORE_EBUSY && lf_monotonic() < deadline) {
      lf_sleep(pause);
      pause = pause < 0.2 ? pause * 2 : 0.2;
      continue;
    }
    pthread_mutex_lock(&s->mu);
    set_failure(s, &err);
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
}

/* A failed store drops batches; the runs that end in them are freed. */
static void drop_batch(lf_store *s, qblock *blocks) {
  for (qblock *b = blocks; b; b = b->next)
    for (size_t off = 0; off < b->used;) {
      const rec_head *h = (const rec_head *)(b->data + off);
      off += h->size;
      if (h->type == REC_END) drop_recorder(s, h->run);
    }
}

static void timespec_at(double monotonic_deadline, struct timespec *ts) {
  double whole = floor(monotonic_deadline);
  ts->tv_sec = (time_t)whole;
  ts->tv_nsec = (long)((monotonic_deadline - whole) * 1e9);
}

static int has_open_runs(lf_store *s) {
  for (lf_store_recorder *r = s->recorders; r; r = r->next)
    if (r->key) return 1;
  return 0;
}

/* Under s->mu: sleeps until the queue should be written (or closing). */
static void await_batch(lf_store *s) {
  struct timespec ts;
  while (!s->head && !s->closing && !s->flush_wanted) {
    if (!has_open_runs(s)) {
      pthread_cond_wait(&s->wake, &s->mu);
      continue;
    }
    if (lf_monotonic() >= s->next_heartbeat) return; /* an empty batch: heartbeats */
    timespec_at(s->next_heartbeat, &ts);
    pthread_cond_timedwait(&s->wake, &s->mu, &ts);
  }
  double deadline = lf_monotonic() + s->flush_interval;
  timespec_at(deadline, &ts);
  while (s->head && !s->closing && !s->flush_wanted && s->queued < BATCH_BYTES &&
         lf_monotonic() < deadline)
    pthread_cond_timedwait(&s->wake, &s->mu, &ts);
}

static void *writer_main(void *arg) {
  lf_store *s = arg;
  lf_buf scratch = {0};
  pthread_mutex_lock(&s->mu);
  for (;;) {
    await_batch(s);
    qblock *blocks = s->head;
    unsigned long long taken = s->appended;
    int closing = s->closing, failed = s->failed;
    s->head = s->tail = NULL;
    s->queued = 0;
    s->flush_wanted = 0;
    pthread_cond_broadcast(&s->space);
    pthread_mutex_unlock(&s->mu);

    if (failed || (blocks && commit_batch(s, blocks, &scratch)))
      drop_batch(s, blocks);
    else if (!blocks && lf_monotonic() >= s->next_heartbeat) {
      lf_store_error err; /* a missed heartbeat is not worth failing for */
      if (s->be->begin(s->writer, &err) == 0 &&
          (heartbeats(s, lf_now(), &err) || s->be->commit(s->writer, &err)))
        s->be->rollback(s->writer);
      s->next_heartbeat = lf_monotonic() + LF_STORE_HEARTBEAT;
    }

    pthread_mutex_lock(&s->mu);
    while (blocks) { /* keep a few blocks for the next batches */
      qblock *next = blocks->next;
      if (blocks->cap == QBLOCK_SIZE && s->spare_bytes < SPARE_MAX) {
        blocks->next = s->spare;
        s->spare = blocks;
        s->spare_bytes += blocks->cap;
      } else
        free(blocks);
      blocks = next;
    }
    s->committed = taken;
    pthread_cond_broadcast(&s->done);
    if (closing && !s->head) break;
  }
  pthread_mutex_unlock(&s->mu);
  lf_buf_free(&scratch);
  return NULL;
}

int lf_store_flush(lf_store *s, lf_store_error *err) {
  if (!s) return 0;
  pthread_mutex_lock(&s->mu);
  unsigned long long target = s->appended;
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

static void free_store(lf_store *s) {
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
    for (int k = 0; k < LF_NCHUNKS; k++)
      lf_buf_free(&r->chunk[k]);
    free(r);
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
  int rc = pthread_create(&s->thread, NULL, writer_main, s);
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
  free_store(s);
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
  free_store(s);
  return rc;
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
