/* The run store's writer thread: takes the queue the engine fills, turns each
 * run's records into chunks (store_codec.h) and commits them in one
 * transaction per batch, retrying while other processes hold the lock. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "state.h"
#include "store_priv.h"

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
    lf_chunk_free(&r->chunk[k]);
  free(r);
}

static int write_chunk(lf_store *s, lf_store_recorder *r, int kind, lf_buf *zbuf,
                       lf_store_error *err) {
  lf_chunk_enc *e = &r->chunk[kind];
  if (e->buf.oom)
    return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", s->path);
  const char *body = e->buf.data;
  size_t len = e->buf.len, raw = 0;
  if (len >= LF_CODEC_DEFLATE_MIN && !s->hurry &&
      lf_codec_deflate(e->buf.data, e->buf.len, zbuf) == 0) {
    body = zbuf->data;
    raw = len;
    len = zbuf->len;
  }
  long long key = r->new_key ? r->new_key : r->key;
  int rc = s->be->insert_chunk(s->writer, key, kind, e->n, body, len, raw, err);
  lf_chunk_reset(e);
  return rc;
}

/* Encodes one task, transition or log record into its run's open chunk. */
static int encode(lf_store *s, lf_store_recorder *r, const rec_head *h, lf_buf *zbuf,
                  lf_store_error *err) {
  const char *str[3];
  int kind;
  if (h->type == REC_TASK) {
    const rec_task *k = (const rec_task *)h;
    lf_rec_strings(h, sizeof *k, k->len, 3, str);
    lf_store_task t = {k->index, k->map_index,           str[0],     (lf_kind)h->kind_a,
                       str[1],   k->run_count,           k->started, k->ended,
                       str[2],   str[2] ? k->len[2] : 0, h->flag};
    lf_chunk_task(&r->chunk[kind = LF_CHUNK_TASK], &t, k->len);
    if (h->kind_a < LF_NKINDS) r->delta[h->kind_a]++;
  } else if (h->type == REC_TRANSITION) {
    const rec_transition *k = (const rec_transition *)h;
    lf_rec_strings(h, sizeof *k, k->len, 2, str);
    lf_store_transition t = {k->index,           k->map_index,       k->seq, str[0],
                             (lf_kind)h->kind_a, (lf_kind)h->kind_b, str[1], k->time};
    lf_chunk_transition(&r->chunk[kind = LF_CHUNK_TRANSITION], &t, k->len);
  } else {
    const rec_log *k = (const rec_log *)h;
    lf_rec_strings(h, sizeof *k, k->len, 2, str);
    lf_store_log l = {k->time, k->level, str[0], str[1], str[1] ? k->len[1] : 0};
    lf_chunk_log(&r->chunk[kind = LF_CHUNK_LOG], &l, k->len);
  }
  return r->chunk[kind].buf.len >= CHUNK_MAX ? write_chunk(s, r, kind, zbuf, err) : 0;
}

/* Brings a run's row up to date at the end of a batch. */
static int update_run(lf_store *s, lf_store_recorder *r, lf_buf *scratch, double now,
                      lf_store_error *err) {
  for (int k = 0; k < LF_NCHUNKS; k++)
    if (r->chunk[k].n && write_chunk(s, r, k, scratch, err)) return -1;
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
    u.counts = scratch->data;
    u.counts_len = scratch->len;
  }
  if (r->end) {
    const rec_end *k = (const rec_end *)r->end;
    const char *message;
    lf_rec_strings(r->end, sizeof *k, k->len, 1, &message);
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
      if (!r) { /* a delivery or an outbox change */
        if (lf_store_write_loose(s, h, err)) goto fail;
        continue;
      }
      if (!r->touched) {
        r->touched = 1;
        r->next_touched = *touched;
        *touched = r;
      }
      if (h->type == REC_BEGIN) {
        const rec_begin *k = (const rec_begin *)h;
        const char *str[6];
        lf_rec_strings(h, sizeof *k, k->len, 6, str);
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
    for (int k = 0; k < LF_NCHUNKS; k++)
      lf_chunk_reset(&r->chunk[k]);
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
    lf_store_set_failure(s, &err);
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

void *lf_store_writer_main(void *arg) {
  lf_store *s = arg;
  lf_buf scratch = {0};
  pthread_mutex_lock(&s->mu);
  for (;;) {
    await_batch(s);
    qblock *blocks = s->head;
    unsigned long long taken = s->appended;
    int closing = s->closing, failed = s->failed;
    /* Compression costs the writer more than the engine spends making the
     * records: it is spent only while the writer keeps up (a batch taken
     * before it filled up). A run that makes records faster than that is
     * stored as plain JSON (about ten times the bytes), so recording never
     * holds the run up, nor its end. */
    s->hurry = s->queued >= BATCH_BYTES || (closing && s->queued >= BATCH_BYTES / 4);
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
