/* libFuzzer harness: the run store's record chunks as a reader meets them in
 * a damaged or hostile file (src/store_chunk.c, binary, schema 2; and the
 * JSON chunks of schema 1, src/store_codec.c), deflated or not.
 * The first byte picks the kind of records (low two bits), the format (bit
 * 2: JSON) and whether the rest is deflated (bit 3: then the next two bytes
 * give the size it claims to inflate to).
 * Property: decoding any bytes never crashes, leaks or trips a sanitizer;
 * binary records that decode encode again to a chunk that decodes to the same
 * records. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_backend.h"
#include "store_chunk.h"
#include "store_codec.h"

typedef struct {
  int kind;
  size_t n, cap;
  union {
    lf_store_task *tasks;
    lf_store_transition *transitions;
    lf_store_log *logs;
    void *p;
  };
} rows;

static const size_t row_size[LF_NCHUNKS] = {
    sizeof(lf_store_task), sizeof(lf_store_transition), sizeof(lf_store_log)};

static int keep(const void *record, void *ud) {
  rows *r = ud;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    void *p = realloc(r->p, cap * row_size[r->kind]);
    if (!p) return -1;
    r->p = p;
    r->cap = cap;
  }
  memcpy((char *)r->p + r->n++ * row_size[r->kind], record, row_size[r->kind]);
  return 0;
}

static int count_json(const lf_jval *v, int n, void *ud) {
  (void)v, (void)n;
  ++*(size_t *)ud;
  return 0;
}

static void fail(const char *what) {
  fprintf(stderr, "%s\n", what);
  abort();
}

static int same_str(const char *a, size_t alen, const char *b, size_t blen) {
  if (!a || !b) return a == b;
  return alen == blen && memcmp(a, b, alen) == 0;
}

static int same_time(double a, double b) {
  return a == b || fabs(a - b) <= 1e-6 * fmax(1, fabs(a));
}

/* Encodes the records of r into e. */
static void encode(const rows *r, lf_chunk_enc *e) {
  for (size_t i = 0; i < r->n; i++) {
    if (r->kind == LF_CHUNK_TASK)
      lf_chunk_task(e, &r->tasks[i], NULL);
    else if (r->kind == LF_CHUNK_TRANSITION)
      lf_chunk_transition(e, &r->transitions[i], NULL);
    else
      lf_chunk_log(e, &r->logs[i], NULL);
  }
}

static void compare(const rows *a, const rows *b) {
  if (a->n != b->n) fail("a chunk encoded again decodes to another number of records");
  for (size_t i = 0; i < a->n; i++) {
    int ok;
    if (a->kind == LF_CHUNK_TASK) {
      const lf_store_task *x = &a->tasks[i], *y = &b->tasks[i];
      ok = x->index == y->index && x->map_index == y->map_index &&
           !strcmp(x->name, y->name) && x->state == y->state &&
           same_str(x->message, x->message ? strlen(x->message) : 0, y->message,
                    y->message ? strlen(y->message) : 0) &&
           x->run_count == y->run_count && same_time(x->started, y->started) &&
           same_time(x->ended, y->ended) &&
           same_str(x->result, x->result_len, y->result, y->result_len) &&
           x->result_stored == y->result_stored;
    } else if (a->kind == LF_CHUNK_TRANSITION) {
      const lf_store_transition *x = &a->transitions[i], *y = &b->transitions[i];
      ok = x->index == y->index && x->map_index == y->map_index && x->seq == y->seq &&
           !strcmp(x->name, y->name) && x->old_state == y->old_state &&
           x->new_state == y->new_state &&
           same_str(x->message, x->message ? strlen(x->message) : 0, y->message,
                    y->message ? strlen(y->message) : 0) &&
           same_time(x->time, y->time);
    } else {
      const lf_store_log *x = &a->logs[i], *y = &b->logs[i];
      ok = same_time(x->time, y->time) && x->level == y->level &&
           !strcmp(x->logger, y->logger) &&
           same_str(x->message, x->message_len, y->message, y->message_len);
    }
    if (!ok) fail("a chunk encoded again decodes to other records");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int kind = data[0] & 3, json = data[0] & 4, deflated = data[0] & 8;
  if (kind >= LF_NCHUNKS) return 0;
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  char *plain = NULL;
  if (deflated) {
    if (len < 2) return 0;
    size_t raw = (size_t)body[0] << 8 | body[1];
    plain = lf_codec_inflate(body + 2, len - 2, raw);
    if (!plain) return 0;
    body = (const uint8_t *)plain;
    len = raw;
  }
  lf_store_arena *a = lf_arena_new();
  if (!a) fail("no memory");
  if (json) {
    size_t n = 0;
    lf_codec_each((const char *)body, len, a, count_json, &n);
  } else {
    rows first = {.kind = kind}, again = {.kind = kind};
    if (lf_chunk_each(kind, body, len, a, keep, &first) == 0) {
      lf_chunk_enc e = {0};
      encode(&first, &e);
      if (e.buf.oom) fail("no memory");
      if (e.n != first.n) fail("a record was not encoded");
      if (lf_chunk_each(kind, e.buf.data, e.buf.len, a, keep, &again) != 0)
        fail("records that decoded, encoded again, do not decode");
      compare(&first, &again);
      lf_chunk_free(&e);
    }
    free(first.p);
    free(again.p);
  }
  lf_arena_free(a);
  free(plain);
  return 0;
}
