/* lf_buf: a growable byte buffer on malloc. Lua-free; every call returns -1
 * (leaving the buffer as it was) when memory runs out, so callers that must
 * not raise while they hold memory can clean up first. */
#ifndef LF_STRBUF_H
#define LF_STRBUF_H

#include <stdlib.h>
#include <string.h>

typedef struct {
  char *data;
  size_t len, cap;
} lf_buf;

/* Makes room for n more bytes. */
static inline int lf_buf_reserve(lf_buf *b, size_t n) {
  if (b->cap - b->len >= n) return 0;
  if (n > ((size_t)-1 >> 2) - b->len) return -1;
  size_t cap = b->cap ? b->cap * 2 : 256;
  if (cap < b->len + n) cap = b->len + n;
  char *d = realloc(b->data, cap);
  if (!d) return -1;
  b->data = d;
  b->cap = cap;
  return 0;
}

static inline int lf_buf_put(lf_buf *b, const void *p, size_t n) {
  if (lf_buf_reserve(b, n) != 0) return -1;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static inline int lf_buf_putc(lf_buf *b, char c) {
  if (b->len == b->cap && lf_buf_reserve(b, 1) != 0) return -1;
  b->data[b->len++] = c;
  return 0;
}

static inline void lf_buf_free(lf_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

#endif
