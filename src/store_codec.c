/* The run store's chunk format (see store_codec.h) and the readers' arena. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "buf.h"
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

/* ---- encoding: the runs row's task counts ---- */

static char *w_lit(char *o, const char *s, size_t n) {
  memcpy(o, s, n);
  return o + n;
}

static char *w_uint(char *o, unsigned long long u) {
  char tmp[20], *end = tmp + sizeof tmp, *p = lf_decimal(end, u);
  memcpy(o, p, (size_t)(end - p));
  return o + (end - p);
}

static char *w_int(char *o, long long v) {
  if (v < 0) {
    *o++ = '-';
    return w_uint(o, 0ull - (unsigned long long)v);
  }
  return w_uint(o, (unsigned long long)v);
}

static char *w_kind(char *o, lf_kind k) {
  const char *name = lf_kind_name(k); /* a class name: nothing to escape */
  *o++ = '"';
  o = w_lit(o, name, strlen(name));
  *o++ = '"';
  return o;
}

void lf_codec_counts(lf_buf *b, const int counts[LF_NKINDS]) {
  if (!lf_buf_reserve(b, 2 + LF_NKINDS * 48)) return;
  char *o = b->data + b->len;
  *o++ = '{';
  for (int k = 0; k < LF_NKINDS; k++) {
    if (!counts[k]) continue;
    if (o[-1] != '{') *o++ = ',';
    o = w_kind(o, (lf_kind)k);
    *o++ = ':';
    o = w_int(o, counts[k]);
  }
  *o++ = '}';
  b->len = (size_t)(o - b->data);
}

/* ---- compression ---- */

int lf_codec_deflate(const char *in, size_t n, lf_buf *out) {
  uLongf len = compressBound((uLong)n);
  lf_buf_reset(out);
  if (!lf_buf_reserve(out, len)) return -1;
  if (compress2((Bytef *)out->data, &len, (const Bytef *)in, (uLong)n, 1) != Z_OK)
    return -1;
  out->len = len;
  return 0;
}

char *lf_codec_inflate(const void *in, size_t n, size_t raw) {
  char *out = malloc(raw + 1);
  uLongf len = raw;
  if (!out) return NULL;
  if (uncompress((Bytef *)out, &len, in, (uLong)n) != Z_OK || len != raw) {
    free(out);
    return NULL;
  }
  out[raw] = '\0';
  return out;
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
  int escaped = 0;
  while (r->p < r->end && *r->p != '"') {
    escaped |= *r->p == '\\';
    r->p += *r->p == '\\' ? 2 : 1;
  }
  if (r->p >= r->end) return -1;
  size_t raw = (size_t)(r->p - s);
  r->p++;
  char *out = lf_arena_alloc(r->a, raw + 1), *o = out;
  if (!out) return -1;
  if (!escaped) {
    memcpy(out, s, raw);
    out[raw] = '\0';
    *v = (lf_jval){.type = LF_JSTR, .str = out, .len = raw};
    return 0;
  }
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

static int read_word(reader *r, const char *word, size_t n, lf_jtype type, double num,
                     lf_jval *v) {
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return -1;
  r->p += n;
  v->type = type;
  v->num = num;
  return 0;
}

/* A number. What we write (integers, times with six decimals) is read
 * without strtod: digits / 10^k is exact below 2^53, and one division rounds
 * correctly; anything else goes to strtod. */
static int read_number(reader *r, lf_jval *v) {
  const char *p = r->p, *end = r->end;
  int neg = p < end && *p == '-';
  p += neg;
  unsigned long long digits = 0;
  int ndigits = 0, frac = 0, dot = 0;
  for (; p < end; p++) {
    if (*p >= '0' && *p <= '9') {
      digits = digits * 10 + (unsigned)(*p - '0');
      ndigits++;
      frac += dot;
    } else if (*p == '.' && !dot)
      dot = 1;
    else
      break;
  }
  if (!ndigits) return -1;
  if (p < end && (*p == 'e' || *p == 'E' || *p == '+' || *p == '-')) ndigits = 99;
  if (ndigits <= 19 && digits <= (1ull << 53) && frac <= 22) {
    static const double pow10[] = {1,    1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    v->num = (double)digits / pow10[frac];
    if (neg) v->num = -v->num;
  } else {
    char tmp[64];
    size_t n = 0;
    while (r->p + n < end && n < sizeof tmp - 1 && strchr("+-.eE0123456789", r->p[n]))
      n++;
    if (n == sizeof tmp - 1) return -1;
    memcpy(tmp, r->p, n);
    tmp[n] = '\0';
    char *e;
    v->num = strtod(tmp, &e);
    if (e != tmp + n) return -1;
    p = r->p + n;
  }
  v->type = LF_JNUM;
  r->p = p;
  return 0;
}

static int read_scalar(reader *r, lf_jval *v) {
  skip_ws(r);
  if (r->p >= r->end) return -1;
  switch (*r->p) {
  case '"':
    return read_str(r, v);
  case 'n':
    return read_word(r, "null", 4, LF_JNULL, 0, v);
  case 't':
    return read_word(r, "true", 4, LF_JBOOL, 1, v);
  case 'f':
    return read_word(r, "false", 5, LF_JBOOL, 0, v);
  default:
    return read_number(r, v);
  }
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
