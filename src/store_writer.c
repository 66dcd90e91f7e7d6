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
  lf_store_free_recorder(r);
}

/* ---- lanes ---- */

/* The bytes of block b the batch takes, from `from`. */
static size_t lane_end(const lf_store_recorder *r, lane_block *b) {
  return b == r->lmark.last ? r->lmark.end
                            : atomic_load_explicit(&b->published, memory_order_acquire);
}

/* Under s->mu, on the writer: marks how far every lane is published (what
 * this batch takes) and lists those recorders in *lanes (by lnext); returns
 * the bytes marked. */
static size_t mark_lanes(lf_store *s, lf_store_recorder **lanes) {
  size_t bytes = 0;
  *lanes = NULL;
  for (lf_store_recorder *r = s->recorders; r; r = r->next) {
    r->lmark.last = NULL;
    if (!r->lhead) {
      r->lhead = atomic_load_explicit(&r->lfirst, memory_order_acquire);
      r->lread = 0;
      if (!r->lhead) continue;
    }
    r->lnext = *lanes;
    *lanes = r;
    lane_block *b = r->lhead;
    size_t from = r->lread;
    for (;;) {
      /* next first: once it is set, the block's published count is final */
      lane_block *n = atomic_load_explicit(&b->next, memory_order_acquire);
      size_t pub = atomic_load_explicit(&b->published, memory_order_acquire);
      bytes += pub - from;
      if (!n) {
        r->lmark = (lane_mark){b, pub};
        break;
      }
      b = n;
      from = 0;
    }
  }
  return bytes;
}

/* Under s->mu: records published in a lane the writer has not taken yet. */
static int lanes_pending(lf_store *s) {
  for (lf_store_recorder *r = s->recorders; r; r = r->next) {
    lane_block *b =
        r->lhead ? r->lhead : atomic_load_explicit(&r->lfirst, memory_order_acquire);
    if (b && (atomic_load_explicit(&b->next, memory_order_acquire) ||
              atomic_load_explicit(&b->published, memory_order_acquire) >
                  (r->lhead ? r->lread : 0)))
      return 1;
  }
  return 0;
}

/* Calls fn on each record of r's lane the batch takes; stops at the first
 * non-zero result. */
static int each_lane_record(lf_store_recorder *r,
                            int (*fn)(lf_store *, const rec_head *, void *), void *ud) {
  if (!r->lmark.last) return 0;
  for (lane_block *b = r->lhead;;
       b = atomic_load_explicit(&b->next, memory_order_acquire)) {
    size_t end = lane_end(r, b);
    for (size_t off = b == r->lhead ? r->lread : 0; off < end;) {
      const rec_head *h = (const rec_head *)(b->data + off);
      off += h->size;
      int rc = fn(r->store, h, ud);
      if (rc) return rc;
    }
    if (b == r->lmark.last) return 0;
  }
}

/* After the batch (committed or dropped): the lane's blocks it finished go
 * back to the producer, and the lane reads on from the mark. */
static void advance_lane(lf_store_recorder *r) {
  if (!r->lmark.last) return;
  size_t done = 0;
  for (lane_block *b = r->lhead; b != r->lmark.last;) {
    lane_block *n = atomic_load_explicit(&b->next, memory_order_acquire);
    done += atomic_load_explicit(&b->published, memory_order_relaxed) -
            (b == r->lhead ? r->lread : 0);
    if (b->cap == QBLOCK_SIZE) {
      lane_block *top = atomic_load_explicit(&r->lspare, memory_order_relaxed);
      do
        atomic_store_explicit(&b->next, top, memory_order_relaxed);
      while (!atomic_compare_exchange_weak_explicit(
          &r->lspare, &top, b, memory_order_release, memory_order_relaxed));
    } else
      free(b);
    b = n;
  }
  done += r->lmark.end - (r->lmark.last == r->lhead ? r->lread : 0);
  r->lhead = r->lmark.last;
  r->lread = r->lmark.end;
  r->lmark.last = NULL;
  atomic_fetch_add_explicit(&r->lconsumed, done, memory_order_release);
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

typedef struct {
  lf_store_recorder **touched;
  lf_buf *scratch;
  lf_store_error *err;
} batch_ctx;

/* One record of the batch, in the open transaction. */
static int write_record(lf_store *s, const rec_head *h, void *ud) {
  batch_ctx *c = ud;
  lf_store_recorder *r = h->run;
  if (!r) return lf_store_write_loose(s, h, c->err); /* a delivery or an outbox change */
  if (!r->touched) {
    r->touched = 1;
    r->next_touched = *c->touched;
    *c->touched = r;
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
    if (s->be->insert_run(s->writer, &run, &s->self, &r->new_key, c->err)) {
      if (c->err->code != LF_STORE_EINVAL) return -1;
      r->new_rejected = 1; /* an id already recorded: this run is not */
    }
  } else if (h->type == REC_END) {
    r->end = h;
  } else if (!r->rejected && !r->new_rejected && (r->key || r->new_key)) {
    return encode(s, r, h, c->scratch, c->err);
  }
  return 0;
}

/* Writes one batch in one transaction: the lanes (each run's own thread's
 * records: a run's BEGIN is first in its lane) then the queue; the touched
 * recorders are listed in *touched so the caller can apply (or forget) what
 * the batch did. */
static int write_batch(lf_store *s, qblock *blocks, lf_store_recorder *lanes,
                       lf_store_recorder **touched, lf_buf *scratch,
                       lf_store_error *err) {
  batch_ctx c = {touched, scratch, err};
  if (s->be->begin(s->writer, err)) return -1;
  for (lf_store_recorder *r = lanes; r; r = r->lnext)
    if (each_lane_record(r, write_record, &c)) goto fail;
  for (qblock *b = blocks; b; b = b->next) {
    for (size_t off = 0; off < b->used;) {
      const rec_head *h = (const rec_head *)(b->data + off);
      off += h->size;
      if (write_record(s, h, &c)) goto fail;
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
static int commit_batch(lf_store *s, qblock *blocks, lf_store_recorder *lanes,
                        lf_buf *scratch) {
  double deadline = lf_monotonic() + s->busy_timeout, pause = 0.005;
  for (;;) {
    lf_store_recorder *touched = NULL;
    lf_store_error err = {0};
    int rc = write_batch(s, blocks, lanes, &touched, scratch, &err);
    for (lf_store_recorder *r = lanes; rc == 0 && r; r = r->lnext)
      advance_lane(r); /* before settle frees the runs that ended */
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

static int is_end(lf_store *s, const rec_head *h, void *ud) {
  (void)s, (void)ud;
  return h->type == REC_END;
}

/* A failed store drops batches; the runs that end in them are freed. */
static void drop_batch(lf_store *s, qblock *blocks, lf_store_recorder *lanes) {
  for (lf_store_recorder *r = lanes, *next; r; r = next) {
    next = r->lnext;
    int ended = each_lane_record(r, is_end, NULL);
    advance_lane(r);
    if (ended) drop_recorder(s, r);
  }
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

/* Under s->mu: sleeps until there is a batch to write (or closing). A lane
 * does not wake the writer: while runs are open it looks at their lanes
 * every flush interval, and writes at once what it finds then. */
static void await_batch(lf_store *s) {
  struct timespec ts;
  if (!s->head && !lanes_pending(s)) {
    while (!s->closing && !s->flush_wanted && !s->lanes_full) {
      if (s->head) break; /* the queue woke it: gather as below */
      if (!s->recorders) {
        pthread_cond_wait(&s->wake, &s->mu);
        continue;
      }
      double now = lf_monotonic();
      if (now >= s->next_heartbeat || lanes_pending(s)) return;
      double until = now + s->flush_interval;
      timespec_at(until < s->next_heartbeat ? until : s->next_heartbeat, &ts);
      pthread_cond_timedwait(&s->wake, &s->mu, &ts);
    }
  }
  /* Records came while the last batch was written, or the queue woke it:
   * give the next ones one flush interval to join them. */
  double deadline = lf_monotonic() + s->flush_interval;
  timespec_at(deadline, &ts);
  while (!s->closing && !s->flush_wanted && !s->lanes_full && s->queued < BATCH_BYTES &&
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
    lf_store_recorder *lanes;
    size_t bytes = s->queued + mark_lanes(s, &lanes);
    unsigned long long batch = ++s->taken;
    int closing = s->closing, failed = s->failed;
    /* Compression doubles what the writer spends on a record: it is spent
     * only on runs that make records slowly (under 128 KiB a batch, about a
     * thousand tasks a flush interval), where the writer has time to spare.
     * Faster runs are stored uncompressed (about twice the bytes), so the
     * writer's work never competes with the run's for the cores, nor holds
     * up its end. */
    s->hurry = bytes >= BATCH_BYTES / 8;
    s->head = s->tail = NULL;
    s->queued = 0;
    s->flush_wanted = 0;
    s->lanes_full = 0;
    pthread_cond_broadcast(&s->space);
    pthread_mutex_unlock(&s->mu);

    if (failed || ((blocks || lanes) && commit_batch(s, blocks, lanes, &scratch)))
      drop_batch(s, blocks, lanes);
    else if (!blocks && !lanes && lf_monotonic() >= s->next_heartbeat) {
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
    s->committed = batch;
    pthread_cond_broadcast(&s->done);
    pthread_cond_broadcast(&s->space);
    if (closing && !s->head && !lanes_pending(s)) break;
  }
  int detached = s->detached;
  pthread_mutex_unlock(&s->mu);
  lf_buf_free(&scratch);
  if (detached) lf_store_free(s); /* lf_store_close_later: nobody else will */
  return NULL;
}
