/* The run store's chunk format (see store_codec.h) and the readers' arena. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "state.h"
#include "store_codec.h"

/* ---- arena ---- */

typedef struct ablock {
  struct ablock *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} ablock;

struct lf_store_arena {
  ablock *blocks;
  void **adopted;
  size_t nadopted, capadopted;
};

#define ARENA_BLOCK (32 * 1024)

lf_store_arena *lf_arena_new(void) {
  return calloc(1, sizeof(lf_store_arena));
}

void lf_arena_free(lf_store_arena *a) {
  if (!a) return;
  for (ablock *b = a->blocks, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  for (size_t i = 0; i < a->nadopted; i++)
    free(a->adopted[i]);
  free(a->adopted);
  free(a);
}

void *lf_arena_alloc(lf_store_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  ablock *b = a->blocks;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
    ablock *nb = malloc(sizeof *nb + cap);
    if (!nb) return NULL;
    nb->used = 0;
    nb->cap = cap;
    if (b && cap != ARENA_BLOCK) { /* a big one: keep filling the current block */
      nb->next = b->next;
      b->next = nb;
      b = nb;
    } else {
      nb->next = b;
      a->blocks = b = nb;
    }
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

char *lf_arena_strndup(lf_store_arena *a, const char *s, size_t len) {
  if (!s) return NULL;
  char *p = lf_arena_alloc(a, len + 1);
  if (!p) return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

int lf_arena_adopt(lf_store_arena *a, void *p) {
  if (!p) return 0;
  if (a->nadopted == a->capadopted) {
    size_t cap = a->capadopted ? a->capadopted * 2 : 8;
    void **n = realloc(a->adopted, cap * sizeof *n);
    if (!n) {
      free(p);
      return -1;
    }
    a->adopted = n;
    a->capadopted = cap;
  }
  a->adopted[a->nadopted++] = p;
  return 0;
}

/* ---- buffer ---- */

void lf_buf_reset(lf_buf *b) {
  b->len = 0;
  b->oom = 0;
}

void lf_buf_free(lf_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

static int buf_reserve(lf_buf *b, size_t n) {
  if (b->cap - b->len >= n) return 1;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < n)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return 0;
  }
  b->p = p;
  b->cap = cap;
  return 1;
}

void lf_buf_add(lf_buf *b, const char *s, size_t n) {
  if (!buf_reserve(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void buf_char(lf_buf *b, char c) {
  if (!buf_reserve(b, 1)) return;
  b->p[b->len++] = c;
}

/* ---- encoding ---- */

static void put_int(lf_buf *b, long long v) {
  char tmp[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) tmp[n++] = '-';
  if (!buf_reserve(b, (size_t)n)) return;
  while (n)
    b->p[b->len++] = tmp[--n];
}

/* Six decimals without printf (the writer formats a few per record). */
static void put_time(lf_buf *b, double t) {
  if (!isfinite(t) || fabs(t) > 9e12) {
    lf_buf_add(b, "null", 4);
    return;
  }
  long long us = llround(t * 1e6);
  if (us < 0) {
    buf_char(b, '-');
    us = -us;
  }
  put_int(b, us / 1000000);
  char frac[6];
  long long f = us % 1000000;
  for (int i = 5; i >= 0; i--, f /= 10)
    frac[i] = (char)('0' + f % 10);
  buf_char(b, '.');
  lf_buf_add(b, frac, 6);
}

static void put_opt_time(lf_buf *b, double t) {
  if (t == 0)
    lf_buf_add(b, "null", 4);
  else
    put_time(b, t);
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

static void put_str(lf_buf *b, const char *str, size_t len) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str, *end = s + len;
  buf_char(b, '"');
  while (s < end) {
    const unsigned char *run = s;
    while (s < end && *s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\')
      s++;
    lf_buf_add(b, (const char *)run, (size_t)(s - run));
    if (s == end) break;
    unsigned c = *s;
    if (c >= 0x80) {
      size_t n = utf8_seq(s, (size_t)(end - s));
      if (n)
        lf_buf_add(b, (const char *)s, n);
      else
        lf_buf_add(b, "\\ufffd", 6);
      s += n ? n : 1;
      continue;
    }
    char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"':
    case '\\':
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    default:
      memcpy(esc + 1, "u00", 3);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      n = 6;
    }
    lf_buf_add(b, esc, n);
    s++;
  }
  buf_char(b, '"');
}

static void put_opt_str(lf_buf *b, const char *s) {
  if (s)
    put_str(b, s, strlen(s));
  else
    lf_buf_add(b, "null", 4);
}

static void open_record(lf_buf *b) {
  buf_char(b, b->len ? ',' : '[');
  buf_char(b, '[');
}

static void put_map_index(lf_buf *b, int map_index) {
  if (map_index > 0)
    put_int(b, map_index);
  else
    lf_buf_add(b, "null", 4);
}

void lf_codec_task(lf_buf *b, const lf_store_task *t) {
  open_record(b);
  put_int(b, t->index);
  buf_char(b, ',');
  put_map_index(b, t->map_index);
  buf_char(b, ',');
  put_opt_str(b, t->name ? t->name : "");
  buf_char(b, ',');
  put_opt_str(b, t->state ? t->state : "");
  buf_char(b, ',');
  put_opt_str(b, t->message);
  buf_char(b, ',');
  put_int(b, t->run_count);
  buf_char(b, ',');
  put_opt_time(b, t->started);
  buf_char(b, ',');
  put_opt_time(b, t->ended);
  buf_char(b, ',');
  if (t->result)
    put_str(b, t->result, t->result_len);
  else
    lf_buf_add(b, "null", 4);
  buf_char(b, ',');
  buf_char(b, t->result_stored ? '1' : '0');
  buf_char(b, ']');
}

void lf_codec_transition(lf_buf *b, const lf_store_transition *t) {
  open_record(b);
  put_int(b, t->index);
  buf_char(b, ',');
  put_map_index(b, t->map_index);
  buf_char(b, ',');
  put_int(b, t->seq);
  buf_char(b, ',');
  put_opt_str(b, t->name ? t->name : "");
  buf_char(b, ',');
  put_opt_str(b, t->old_state ? t->old_state : "");
  buf_char(b, ',');
  put_opt_str(b, t->new_state ? t->new_state : "");
  buf_char(b, ',');
  put_opt_str(b, t->message);
  buf_char(b, ',');
  put_time(b, t->time);
  buf_char(b, ']');
}

void lf_codec_log(lf_buf *b, const lf_store_log *l) {
  open_record(b);
  put_time(b, l->time);
  buf_char(b, ',');
  put_int(b, l->level);
  buf_char(b, ',');
  put_opt_str(b, l->logger ? l->logger : "");
  buf_char(b, ',');
  put_str(b, l->message ? l->message : "", l->message ? l->message_len : 0);
  buf_char(b, ']');
}

void lf_codec_close(lf_buf *b) {
  if (!b->len) buf_char(b, '[');
  buf_char(b, ']');
}

void lf_codec_counts(lf_buf *b, const int counts[LF_NKINDS]) {
  buf_char(b, '{');
  int first = 1;
  for (int k = 0; k < LF_NKINDS; k++) {
    if (!counts[k]) continue;
    if (!first) buf_char(b, ',');
    first = 0;
    put_opt_str(b, lf_kind_name((lf_kind)k));
    buf_char(b, ':');
    put_int(b, counts[k]);
  }
  buf_char(b, '}');
}

/* ---- decoding ---- */

typedef struct {
  const char *p, *end;
  lf_store_arena *a;
} reader;

static void skip_ws(reader *r) {
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r'))
    r->p++;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return 0;
  }
  *out = v;
  return 1;
}

static char *put_utf8(char *o, unsigned cp) {
  if (cp < 0x80)
    *o++ = (char)cp;
  else if (cp < 0x800) {
    *o++ = (char)(0xC0 | cp >> 6);
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xE0 | cp >> 12);
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *o++ = (char)(0xF0 | cp >> 18);
    *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  }
  return o;
}

/* A string at r->p (on its opening quote), unescaped into the arena. A \u
 * escape of n bytes never decodes to more than n bytes, so the raw length
 * bounds the copy. */
static int read_str(reader *r, lf_jval *v) {
  const char *s = ++r->p;
  while (r->p < r->end && *r->p != '"')
    r->p += *r->p == '\\' ? 2 : 1;
  if (r->p >= r->end) return -1;
  size_t raw = (size_t)(r->p - s);
  r->p++;
  char *out = lf_arena_alloc(r->a, raw + 1), *o = out;
  if (!out) return -1;
  for (const char *q = s; q < s + raw;) {
    if (*q != '\\') {
      *o++ = *q++;
      continue;
    }
    char c = q[1];
    q += 2;
    switch (c) {
    case 'n':
      *o++ = '\n';
      break;
    case 'r':
      *o++ = '\r';
      break;
    case 't':
      *o++ = '\t';
      break;
    case 'b':
      *o++ = '\b';
      break;
    case 'f':
      *o++ = '\f';
      break;
    case '"':
    case '\\':
    case '/':
      *o++ = c;
      break;
    case 'u': {
      unsigned cp;
      if (s + raw - q < 4 || !hex4(q, &cp)) return -1;
      q += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF && s + raw - q >= 6 && q[0] == '\\' &&
          q[1] == 'u') {
        unsigned lo;
        if (hex4(q + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          q += 6;
        }
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
      o = put_utf8(o, cp);
      break;
    }
    default:
      return -1;
    }
  }
  *o = '\0';
  v->type = LF_JSTR;
  v->str = out;
  v->len = (size_t)(o - out);
  return 0;
}

static int read_scalar(reader *r, lf_jval *v) {
  skip_ws(r);
  if (r->p >= r->end) return -1;
  char c = *r->p;
  if (c == '"') return read_str(r, v);
  static const struct {
    const char *word;
    lf_jtype type;
    double num;
  } words[] = {{"null", LF_JNULL, 0}, {"true", LF_JBOOL, 1}, {"false", LF_JBOOL, 0}};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(words[i].word);
    if ((size_t)(r->end - r->p) >= n && memcmp(r->p, words[i].word, n) == 0) {
      r->p += n;
      v->type = words[i].type;
      v->num = words[i].num;
      return 0;
    }
  }
  char tmp[48];
  size_t n = 0;
  while (r->p + n < r->end && n < sizeof tmp - 1 && strchr("+-.eE0123456789", r->p[n]))
    n++;
  if (!n || n == sizeof tmp - 1) return -1;
  memcpy(tmp, r->p, n);
  tmp[n] = '\0';
  char *e;
  v->num = strtod(tmp, &e);
  if (e != tmp + n) return -1;
  v->type = LF_JNUM;
  r->p += n;
  return 0;
}

/* Reads "x" (after skipping blanks); 0 when it is there. */
static int expect(reader *r, char x) {
  skip_ws(r);
  if (r->p < r->end && *r->p == x) {
    r->p++;
    return 0;
  }
  return -1;
}

static int peek(reader *r, char x) {
  skip_ws(r);
  return r->p < r->end && *r->p == x;
}

int lf_codec_each(const char *body, size_t len, lf_store_arena *a,
                  int (*row)(const lf_jval *v, int n, void *ud), void *ud) {
  reader r = {body, body + len, a};
  if (expect(&r, '[')) return -1;
  if (peek(&r, ']')) return expect(&r, ']');
  for (;;) {
    lf_jval v[LF_CODEC_MAXCOLS];
    int n = 0;
    if (expect(&r, '[')) return -1;
    if (!peek(&r, ']')) {
      do {
        if (n == LF_CODEC_MAXCOLS || read_scalar(&r, &v[n++])) return -1;
      } while (expect(&r, ',') == 0);
    }
    if (expect(&r, ']')) return -1;
    int rc = row(v, n, ud);
    if (rc) return rc;
    if (expect(&r, ',') == 0) continue;
    if (expect(&r, ']')) return -1;
    skip_ws(&r);
    return r.p == r.end ? 0 : -1;
  }
}

int lf_codec_parse_counts(const char *text, size_t len, int counts[LF_NKINDS]) {
  reader r = {text, text + len, NULL};
  if (expect(&r, '{')) return -1;
  if (peek(&r, '}')) return 0;
  do {
    if (expect(&r, '"')) return -1;
    const char *name = r.p;
    while (r.p < r.end && *r.p != '"' && *r.p != '\\')
      r.p++;
    if (r.p >= r.end || *r.p != '"') return -1;
    size_t n = (size_t)(r.p - name);
    r.p++;
    lf_jval v;
    if (expect(&r, ':') || read_scalar(&r, &v) || v.type != LF_JNUM) return -1;
    int k = lf_kind_from_name(name, n);
    if (k >= 0 && v.num >= 0 && v.num < 2e9) counts[k] += (int)v.num;
  } while (expect(&r, ',') == 0);
  return expect(&r, '}');
}
