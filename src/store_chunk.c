/* The binary chunk format of schema version 2 (store_chunk.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "state.h"
#include "store_backend.h"
#include "store_chunk.h"

/* ---- writing ---- */

/* A string of the chunk's table: where its bytes are in the chunk. */
struct lf_chunk_slot {
  uint32_t hash, off, len, number; /* len 0 with off 0: empty slot */
};

#define SLOTS_MIN 256u
#define SLOTS_MAX (1u << 16) /* a chunk with more strings repeats the rest */

void lf_chunk_reset(lf_chunk_enc *e) {
  lf_buf_reset(&e->buf);
  e->n = 0;
  e->last = 0;
  e->last_index = 0;
  e->nstr = 0;
  memset(e->kind_ref, 0, sizeof e->kind_ref);
  memset(e->recent, 0, sizeof e->recent);
  if (e->used) memset(e->slots, 0, ((size_t)e->mask + 1) * sizeof *e->slots);
  e->used = 0;
}

void lf_chunk_free(lf_chunk_enc *e) {
  lf_buf_free(&e->buf);
  free(e->slots);
  memset(e, 0, sizeof *e);
}

static inline uint8_t *put_varint(uint8_t *o, uint64_t v) {
  while (v >= 0x80) {
    *o++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *o++ = (uint8_t)v;
  return o;
}

static inline uint64_t zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline uint8_t *put_int(uint8_t *o, long long v) {
  return put_varint(o, zigzag(v));
}

static inline uint8_t *put_time(lf_chunk_enc *e, uint8_t *o, double t) {
  if (t == 0 || !isfinite(t) || fabs(t) > 9e12) return put_varint(o, 0);
  int64_t us = lf_time_us(t); /* the microsecond it is shown with */
  uint64_t d = (uint64_t)us - (uint64_t)e->last;
  e->last = us;
  return put_varint(o, zigzag((int64_t)d) + 1);
}

/* FNV-1a over 8-byte words (the last one overlapping the one before): the
 * strings here are short. */
static inline uint32_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull ^ n, w;
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return (uint32_t)(h ^ h >> 32);
  }
  for (size_t i = 0; i + 8 < n; i += 8) {
    memcpy(&w, s + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  memcpy(&w, s + n - 8, 8);
  h = (h ^ w) * 0x100000001b3ull;
  return (uint32_t)(h ^ h >> 32);
}

static int grow_slots(lf_chunk_enc *e) {
  uint32_t cap = e->slots ? (e->mask + 1) * 2 : SLOTS_MIN;
  struct lf_chunk_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (uint32_t i = 0; e->slots && i <= e->mask; i++) {
    struct lf_chunk_slot *s = &e->slots[i];
    if (!s->off && !s->len) continue;
    uint32_t j = s->hash & (cap - 1);
    while (slots[j].off || slots[j].len)
      j = (j + 1) & (cap - 1);
    slots[j] = *s;
  }
  free(e->slots);
  e->slots = slots;
  e->mask = cap - 1;
  return 0;
}

/* memcmp(a, b, n) == 0 without a call for the short strings of a record. */
static inline int same_bytes(const char *a, const char *b, size_t n) {
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (a[i] != b[i]) return 0;
    return 1;
  }
  uint64_t x, y, x2, y2;
  memcpy(&x, a, 8);
  memcpy(&y, b, 8);
  memcpy(&x2, a + n - 8, 8);
  memcpy(&y2, b + n - 8, 8);
  return x == y && x2 == y2 && (n <= 16 || memcmp(a + 8, b + 8, n - 16) == 0);
}

/* Writes string s (n bytes; NULL: none) at o, which has room for it, as field
 * `field` of its record (a record's strings in order; -1: none): the last
 * two strings of a field are looked at before the table. *number (when not
 * NULL) is its number in the table, if it has one. */
static uint8_t *put_str_numbered(lf_chunk_enc *e, uint8_t *o, const char *s, size_t n,
                                 int field, uint32_t *number_out) {
  if (!s) return put_varint(o, 0);
  if (n > LF_CHUNK_STR_MAX) {
    o = put_varint(o, (uint64_t)n << 1 | 1);
    memcpy(o, s, n);
    return o + n;
  }
  struct lf_chunk_recent *recent = field >= 0 ? e->recent[field] : NULL;
  for (int k = 0; recent && k < 2; k++) {
    struct lf_chunk_recent c = recent[k];
    if (c.len1 == n + 1 && same_bytes(e->buf.data + c.off, s, n)) {
      if (k) { /* the most recent first */
        recent[1] = recent[0];
        recent[0] = c;
      }
      if (number_out) *number_out = c.number;
      return put_varint(o, (uint64_t)(c.number + 1) << 1);
    }
  }
  uint32_t h = hash_bytes(s, n);
  struct lf_chunk_slot *slot = NULL;
  if (e->slots) {
    for (uint32_t i = h & e->mask;; i = (i + 1) & e->mask) {
      struct lf_chunk_slot *c = &e->slots[i];
      if (!c->off && !c->len) {
        slot = c;
        break;
      }
      if (c->hash == h && c->len == n && same_bytes(e->buf.data + c->off, s, n)) {
        if (number_out) *number_out = c->number;
        if (recent) {
          recent[1] = recent[0];
          recent[0] = (struct lf_chunk_recent){c->number, c->off, (uint32_t)n + 1};
        }
        return put_varint(o, (uint64_t)(c->number + 1) << 1);
      }
    }
  }
  o = put_varint(o, (uint64_t)n << 1 | 1);
  size_t off = (size_t)(o - (uint8_t *)e->buf.data);
  memcpy(o, s, n);
  uint32_t number = e->nstr++;
  if (number_out) *number_out = number;
  /* off is never 0 (a varint comes first), so a used slot is never blank */
  if (off < UINT32_MAX && (e->used + 1) * 2 <= SLOTS_MAX) {
    if (!slot || (e->used + 1) * 2 > e->mask + 1) {
      if (grow_slots(e) == 0) {
        uint32_t i = h & e->mask;
        while (e->slots[i].off || e->slots[i].len)
          i = (i + 1) & e->mask;
        slot = &e->slots[i];
      } else
        slot = NULL;
    }
    if (slot) {
      *slot = (struct lf_chunk_slot){h, (uint32_t)off, (uint32_t)n, number};
      e->used++;
    }
  }
  if (recent && off < UINT32_MAX) {
    recent[1] = recent[0];
    recent[0] = (struct lf_chunk_recent){number, (uint32_t)off, (uint32_t)n + 1};
  }
  return o + n;
}

static uint8_t *put_str(lf_chunk_enc *e, uint8_t *o, const char *s, size_t n, int field) {
  return put_str_numbered(e, o, s, n, field, NULL);
}

static uint8_t *put_kind(lf_chunk_enc *e, uint8_t *o, lf_kind k) {
  if ((unsigned)k >= LF_NKINDS) k = LF_STATE;
  if (e->kind_ref[k]) return put_varint(o, (uint64_t)e->kind_ref[k] << 1);
  const char *name = lf_kind_name(k);
  uint32_t number;
  o = put_str_numbered(e, o, name, strlen(name), -1, &number);
  e->kind_ref[k] = number + 1;
  return o;
}

/* Room for a record with `text` bytes of strings; the cursor. Each varint
 * takes at most 10 bytes. */
static uint8_t *open_record(lf_chunk_enc *e, size_t text) {
  if (e->buf.cap - e->buf.len < 160 + text && !lf_buf_reserve(&e->buf, 160 + text))
    return NULL;
  return (uint8_t *)e->buf.data + e->buf.len;
}

static void close_record(lf_chunk_enc *e, uint8_t *o) {
  e->buf.len = (size_t)((char *)o - e->buf.data);
  e->n++;
}

/* The length of string i of a record: given, or measured. */
static size_t len_of(const char *s, const uint32_t *len, int i) {
  return !s ? 0 : len ? len[i] : strlen(s);
}

/* A record's index: its distance from the chunk's previous record's. */
static inline uint8_t *put_index(lf_chunk_enc *e, uint8_t *o, int index) {
  o = put_int(o, (long long)index - e->last_index);
  e->last_index = index;
  return o;
}

void lf_chunk_task(lf_chunk_enc *e, const lf_store_task *t, const uint32_t *len) {
  size_t name = len_of(t->name, len, 0), msg = len_of(t->message, len, 1);
  size_t result = t->result ? t->result_len : 0;
  uint8_t *o = open_record(e, name + msg + result);
  if (!o) return;
  o = put_index(e, o, t->index);
  o = put_int(o, t->map_index);
  o = put_str(e, o, t->name ? t->name : "", name, 0);
  o = put_kind(e, o, t->state);
  o = put_str(e, o, t->message, msg, 1);
  o = put_int(o, t->run_count);
  o = put_time(e, o, t->started);
  o = put_time(e, o, t->ended);
  o = put_str(e, o, t->result, result, 2);
  o = put_int(o, t->result_stored != 0);
  close_record(e, o);
}

void lf_chunk_transition(lf_chunk_enc *e, const lf_store_transition *t,
                         const uint32_t *len) {
  size_t name = len_of(t->name, len, 0), msg = len_of(t->message, len, 1);
  uint8_t *o = open_record(e, name + msg);
  if (!o) return;
  o = put_index(e, o, t->index);
  o = put_int(o, t->map_index);
  o = put_int(o, t->seq);
  o = put_str(e, o, t->name ? t->name : "", name, 0);
  o = put_kind(e, o, t->old_state);
  o = put_kind(e, o, t->new_state);
  o = put_str(e, o, t->message, msg, 1);
  o = put_time(e, o, t->time);
  close_record(e, o);
}

void lf_chunk_log(lf_chunk_enc *e, const lf_store_log *l, const uint32_t *len) {
  size_t logger = len_of(l->logger, len, 0), msg = l->message ? l->message_len : 0;
  uint8_t *o = open_record(e, logger + msg);
  if (!o) return;
  o = put_time(e, o, l->time);
  o = put_int(o, l->level);
  o = put_str(e, o, l->logger ? l->logger : "", logger, 0);
  o = put_str(e, o, l->message ? l->message : "", msg, 1);
  close_record(e, o);
}

/* ---- reading ---- */

typedef struct {
  const char *s;
  size_t len;
} str_ref;

typedef struct {
  const uint8_t *p, *end;
  lf_store_arena *a;
  int64_t last;
  int last_index;
  str_ref *table;
  size_t ntable, captable;
  int bad;
} reader;

static uint64_t get_varint(reader *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) break;
    uint8_t b = *r->p++;
    if (shift == 63 && b > 1) break; /* more than 64 bits */
    v |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = 1;
  return 0;
}

static long long get_int(reader *r) {
  uint64_t v = get_varint(r);
  int64_t i = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
  return i;
}

static int get_int32(reader *r) {
  long long v = get_int(r);
  if (v < -2147483647LL || v > 2147483647LL) r->bad = 1;
  return (int)v;
}

static int get_index(reader *r) {
  long long d = get_int(r);
  if (d < -4294967294LL || d > 4294967294LL) d = 1LL << 32; /* out of range, below */
  long long v = r->last_index + d;
  if (v < -2147483647LL || v > 2147483647LL) r->bad = 1;
  r->last_index = (int)v;
  return r->last_index;
}

static double get_time(reader *r) {
  uint64_t v = get_varint(r);
  if (v == 0) return 0;
  uint64_t z = v - 1;
  uint64_t d = (z >> 1) ^ -(z & 1);
  r->last = (int64_t)((uint64_t)r->last + d);
  double t = (double)r->last / 1e6;
  return fabs(t) > 9e12 ? 0 : t; /* as written: not a time */
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return len;
}

/* A copy of n bytes in the arena, NUL-terminated, with what is not UTF-8
 * replaced by U+FFFD (3 bytes for 1 at most). */
static char *copy_text(lf_store_arena *a, const uint8_t *s, size_t n, size_t *out_len) {
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = utf8_seq(s + i, n - i);
    if (!k) break;
    i += k;
  }
  if (i == n) {
    *out_len = n;
    return lf_arena_strndup(a, (const char *)s, n);
  }
  char *out = lf_arena_alloc(a, 3 * n + 1), *o = out;
  if (!out) return NULL;
  memcpy(o, s, i);
  o += i;
  while (i < n) {
    size_t k = s[i] < 0x80 ? 1 : utf8_seq(s + i, n - i);
    if (k) {
      memcpy(o, s + i, k);
      o += k;
      i += k;
    } else {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  *o = '\0';
  *out_len = (size_t)(o - out);
  return out;
}

static const char *get_str(reader *r, size_t *len) {
  uint64_t v = get_varint(r);
  size_t ignored;
  if (!len) len = &ignored;
  *len = 0;
  if (r->bad || v == 0) return NULL;
  if (!(v & 1)) {
    uint64_t i = (v >> 1) - 1;
    if (i >= r->ntable) {
      r->bad = 1;
      return NULL;
    }
    *len = r->table[i].len;
    return r->table[i].s;
  }
  uint64_t n = v >> 1;
  if (n > (uint64_t)(r->end - r->p)) {
    r->bad = 1;
    return NULL;
  }
  const char *s = copy_text(r->a, r->p, (size_t)n, len);
  r->p += n;
  if (!s) {
    r->bad = 1;
    return NULL;
  }
  if (n <= LF_CHUNK_STR_MAX) {
    if (r->ntable == r->captable) {
      size_t cap = r->captable ? r->captable * 2 : 64;
      str_ref *t = realloc(r->table, cap * sizeof *t);
      if (!t) {
        r->bad = 1;
        return NULL;
      }
      r->table = t;
      r->captable = cap;
    }
    r->table[r->ntable++] = (str_ref){s, *len};
  }
  return s;
}

static const char *get_name(reader *r) {
  const char *s = get_str(r, NULL);
  if (!s) r->bad = 1;
  return s;
}

static lf_kind get_kind(reader *r) {
  size_t n;
  const char *s = get_str(r, &n);
  if (!s) {
    r->bad = 1;
    return LF_STATE;
  }
  int k = lf_kind_from_name(s, n);
  return k < 0 ? LF_STATE : (lf_kind)k;
}

int lf_chunk_each(int kind, const void *body, size_t len, lf_store_arena *a,
                  int (*row)(const void *record, void *ud), void *ud) {
  if (len == 0) return 0; /* no records (body may be NULL) */
  reader r = {.p = body, .end = (const uint8_t *)body + len, .a = a};
  int rc = 0;
  while (rc == 0 && r.p < r.end) {
    if (kind == LF_CHUNK_TASK) {
      lf_store_task t;
      t.index = get_index(&r);
      t.map_index = get_int32(&r);
      t.name = get_name(&r);
      t.state = get_kind(&r);
      t.message = get_str(&r, NULL);
      t.run_count = get_int32(&r);
      t.started = get_time(&r);
      t.ended = get_time(&r);
      t.result = get_str(&r, &t.result_len);
      t.result_stored = get_int(&r) != 0;
      if (!r.bad) rc = row(&t, ud);
    } else if (kind == LF_CHUNK_TRANSITION) {
      lf_store_transition t;
      t.index = get_index(&r);
      t.map_index = get_int32(&r);
      t.seq = get_int32(&r);
      t.name = get_name(&r);
      t.old_state = get_kind(&r);
      t.new_state = get_kind(&r);
      t.message = get_str(&r, NULL);
      t.time = get_time(&r);
      if (!r.bad) rc = row(&t, ud);
    } else if (kind == LF_CHUNK_LOG) {
      lf_store_log l;
      l.time = get_time(&r);
      l.level = get_int32(&r);
      l.logger = get_name(&r);
      l.message = get_str(&r, &l.message_len);
      if (!l.message) r.bad = 1;
      if (!r.bad) rc = row(&l, ud);
    } else
      r.bad = 1;
    if (r.bad) rc = -1;
  }
  free(r.table);
  return rc;
}
