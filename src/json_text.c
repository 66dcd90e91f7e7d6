/* json_text: JSON strings out, JSON texts checked and rewritten (see json_text.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_text.h"

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* {=== UTF-8 ===} */

size_t lf_utf8_sequence(const unsigned char *p, size_t avail) {
  unsigned char c = p[0];
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0; /* no overlong forms */
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
  } else {
    return 0;
  }
  if (avail < n || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return n;
}

size_t lf_utf8_encode(unsigned long cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* {=== Writing strings ===} */

/* 0: copied as it is; 1: escaped; 2: the start of a multi-byte sequence. */
static const unsigned char byte_class[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 2};

const char *lf_json_plain_run(const char *p, const char *end) {
  const unsigned char *q = (const unsigned char *)p, *e = (const unsigned char *)end;
  while (q < e) {
    int cls = byte_class[*q];
    if (cls == 0) {
      q++;
    } else {
      size_t n = cls == 2 ? lf_utf8_sequence(q, (size_t)(e - q)) : 0;
      if (n == 0) break;
      q += n;
    }
  }
  return (const char *)q;
}

/* \" \\ \b \f \n \r \t where JSON has them, else \u00XX. */
static int put_escape(lf_buf *b, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
  const char *k = c ? memchr(from, c, sizeof from - 1) : NULL;
  char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
  if (k) esc[1] = to[k - from];
  return lf_buf_put(b, esc, k ? 2 : 6) ? 0 : -1;
}

int lf_json_put_escaped(lf_buf *b, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, run = 0;
  if (!lf_buf_reserve(b, len)) return -1;
  while (i < len) {
    int cls = byte_class[p[i]];
    if (cls == 0) {
      i++;
      continue;
    }
    size_t n = cls == 2 ? lf_utf8_sequence(p + i, len - i) : 0;
    if (n > 0) {
      i += n;
      continue;
    }
    if (!lf_buf_put(b, s + run, i - run) || put_escape(b, p[i]) != 0) return -1;
    run = ++i;
  }
  return lf_buf_put(b, s + run, len - run) ? 0 : -1;
}

int lf_json_put_string(lf_buf *b, const char *s, size_t len) {
  size_t mark = b->len;
  if (lf_buf_putc(b, '"') && lf_json_put_escaped(b, s, len) == 0 && lf_buf_putc(b, '"'))
    return 0;
  b->len = mark;
  return -1;
}

/* {=== Scanners ===} */

static const char *fail(lf_json_error *err, const char *start, const char *at,
                        const char *what) {
  err->at = (size_t)(at - start);
  err->what = what;
  return NULL;
}

const char *lf_json_number_end(const char *start, const char *p, const char *end,
                               lf_json_error *err) {
  const char *s = p;
  if (p < end && *p == '-') p++;
  if (p == end) return fail(err, start, p, "unexpected end of input");
  if (*p == '0') {
    p++;
    if (p < end && IS_DIGIT(*p))
      return fail(err, start, s, "invalid number (leading zero)");
  } else if (IS_DIGIT(*p)) {
    while (p < end && IS_DIGIT(*p))
      p++;
  } else {
    return fail(err, start, p, "unexpected character");
  }
  if (p < end && *p == '.') {
    p++;
    if (p == end) return fail(err, start, p, "unexpected end of input");
    if (!IS_DIGIT(*p)) return fail(err, start, p, "expected a digit after '.'");
    while (p < end && IS_DIGIT(*p))
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p == end) return fail(err, start, p, "unexpected end of input");
    if (!IS_DIGIT(*p)) return fail(err, start, p, "expected a digit in exponent");
    while (p < end && IS_DIGIT(*p))
      p++;
  }
  return p;
}

/* The 4 hex digits of the \u escape at p; -1 when they are not. */
static long hex4(const char *p) {
  long v = 0;
  for (int i = 2; i < 6; i++) {
    char c = p[i];
    v <<= 4;
    if (IS_DIGIT(c))
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return -1;
  }
  return v;
}

long lf_json_unicode_escape(const char *start, const char *p, const char *end,
                            const char **next, lf_json_error *err) {
  if (end - p < 6) return fail(err, start, end, "unexpected end of input"), -1;
  long cp = hex4(p);
  if (cp < 0) return fail(err, start, p, "invalid \\u escape"), -1;
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return fail(err, start, p, "unpaired surrogate in \\u escape"), -1;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    long lo = -1;
    if (end - p >= 12 && p[6] == '\\' && p[7] == 'u') lo = hex4(p + 6);
    if (lo < 0xDC00 || lo > 0xDFFF)
      return fail(err, start, p, "unpaired surrogate in \\u escape"), -1;
    *next = p + 12;
    return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  *next = p + 6;
  return cp;
}

/* {=== Rewriting a JSON text ===} */

typedef struct {
  const char *start, *p, *end;
  lf_buf *out;
  lf_buf scratch; /* a string's bytes once unescaped */
  const lf_redactor *red;
  lf_json_error *err;
  int depth;
} rewriter;

static int rw_fail(rewriter *R, const char *at, const char *what) {
  fail(R->err, R->start, at, what);
  return -1;
}

static int rw_oom(rewriter *R) {
  return rw_fail(R, R->p, "not enough memory");
}

static void skip_ws(rewriter *R) {
  while (R->p < R->end &&
         (*R->p == ' ' || *R->p == '\t' || *R->p == '\n' || *R->p == '\r'))
    R->p++;
}

/* Writes bytes as a JSON string, redacted first when there is a redactor. */
static int put_text(rewriter *R, const char *s, size_t n) {
  int allocated = 0;
  char *shown = R->red ? lf_redact_with(R->red, s, n, &n, &allocated) : (char *)s;
  int rc = lf_json_put_string(R->out, shown, n);
  if (allocated) free(shown);
  return rc != 0 ? rw_oom(R) : 0;
}

/* The string at R->p (its opening quote). */
static int rw_string(rewriter *R) {
  lf_buf *b = &R->scratch;
  const char *p = ++R->p, *end = R->end;
  b->len = 0;
  for (;;) {
    const char *q = lf_json_plain_run(p, end);
    if (!lf_buf_put(b, p, (size_t)(q - p))) return rw_oom(R);
    p = q;
    if (p == end) return rw_fail(R, p, "unexpected end of input");
    if (*p == '"') break;
    if ((unsigned char)*p >= 0x80) return rw_fail(R, p, "invalid UTF-8 in string");
    if (*p != '\\') return rw_fail(R, p, "control character in string");
    if (end - p < 2) return rw_fail(R, end, "unexpected end of input");
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = p[1] ? strchr(from, p[1]) : NULL;
    char utf8[4];
    size_t n;
    if (k) {
      utf8[0] = to[k - from];
      n = 1;
      p += 2;
    } else if (p[1] == 'u') {
      long cp = lf_json_unicode_escape(R->start, p, end, &p, R->err);
      if (cp < 0) return -1;
      n = lf_utf8_encode((unsigned long)cp, utf8);
    } else {
      return rw_fail(R, p, "invalid escape in string");
    }
    if (!lf_buf_put(b, utf8, n)) return rw_oom(R);
  }
  R->p = p + 1;
  return put_text(R, b->data, b->len);
}

static int rw_number(rewriter *R) {
  const char *s = R->p, *e = lf_json_number_end(R->start, s, R->end, R->err);
  if (!e) return -1;
  R->p = e;
  size_t n = (size_t)(e - s);
  if (R->red) {
    int allocated = 0;
    size_t shown_len;
    char *shown = lf_redact_with(R->red, s, n, &shown_len, &allocated);
    if (allocated) { /* a secret: written as the redacted text */
      int rc = lf_json_put_string(R->out, shown, shown_len);
      free(shown);
      return rc != 0 ? rw_oom(R) : 0;
    }
  }
  return !lf_buf_put(R->out, s, n) ? rw_oom(R) : 0;
}

static int rw_literal(rewriter *R, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(R->end - R->p) < n || memcmp(R->p, word, n) != 0)
    return rw_fail(R, R->p, "unexpected character");
  R->p += n;
  return !lf_buf_put(R->out, word, n) ? rw_oom(R) : 0;
}

static int rw_value(rewriter *R);

/* An array or object: the opening byte is at R->p. */
static int rw_container(rewriter *R, char open, char close) {
  if (++R->depth > LF_JSON_MAX_DEPTH) return rw_fail(R, R->p, "nesting too deep");
  if (!lf_buf_putc(R->out, open)) return rw_oom(R);
  R->p++;
  skip_ws(R);
  if (R->p < R->end && *R->p == close) {
    R->p++;
  } else {
    for (;;) {
      skip_ws(R);
      if (open == '{') {
        if (R->p == R->end) return rw_fail(R, R->p, "unexpected end of input");
        if (*R->p != '"') return rw_fail(R, R->p, "expected a string key");
        if (rw_string(R) != 0) return -1;
        skip_ws(R);
        if (R->p == R->end) return rw_fail(R, R->p, "unexpected end of input");
        if (*R->p != ':') return rw_fail(R, R->p, "expected ':'");
        R->p++;
        if (!lf_buf_putc(R->out, ':')) return rw_oom(R);
      }
      if (rw_value(R) != 0) return -1;
      skip_ws(R);
      if (R->p == R->end) return rw_fail(R, R->p, "unexpected end of input");
      if (*R->p == close) break;
      if (*R->p != ',')
        return rw_fail(R, R->p,
                       open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
      R->p++;
      if (!lf_buf_putc(R->out, ',')) return rw_oom(R);
    }
    R->p++;
  }
  R->depth--;
  return !lf_buf_putc(R->out, close) ? rw_oom(R) : 0;
}

static int rw_value(rewriter *R) {
  skip_ws(R);
  if (R->p == R->end) return rw_fail(R, R->p, "unexpected end of input");
  switch (*R->p) {
  case '{':
    return rw_container(R, '{', '}');
  case '[':
    return rw_container(R, '[', ']');
  case '"':
    return rw_string(R);
  case 't':
    return rw_literal(R, "true");
  case 'f':
    return rw_literal(R, "false");
  case 'n':
    return rw_literal(R, "null");
  default:
    if (*R->p == '-' || IS_DIGIT(*R->p)) return rw_number(R);
    return rw_fail(R, R->p, "unexpected character");
  }
}

int lf_json_rewrite(lf_buf *out, const char *text, size_t len, const lf_redactor *red,
                    lf_json_error *err) {
  rewriter R = {text, text, text + len, out, LF_BUF_INIT, red, err, 0};
  size_t mark = out->len;
  int rc = rw_value(&R);
  if (rc == 0) {
    skip_ws(&R);
    if (R.p != R.end) rc = rw_fail(&R, R.p, "unexpected text after the value");
  }
  lf_buf_free(&R.scratch);
  if (rc != 0) out->len = mark;
  return rc;
}
