/* One growable byte buffer, shared by the codecs and the run store. */
#ifndef LF_BUF_H
#define LF_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
  char *data;
  size_t len, cap;
  int oom; /* an append failed for lack of memory */
} lf_buf;
#define LF_BUF_INIT                                                                      \
  { NULL, 0, 0, 0 }

/* len = 0, keeps the memory. */
void lf_buf_reset(lf_buf *b);
void lf_buf_free(lf_buf *b);
/* Room for n more bytes; 0 (and b->oom set) when there is no memory. */
int lf_buf_reserve(lf_buf *b, size_t n);
/* Appends n bytes, or one; 0 (and b->oom set) when there is no memory. */
static inline int lf_buf_put(lf_buf *b, const void *p, size_t n) {
  if (!lf_buf_reserve(b, n)) return 0;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 1;
}
static inline int lf_buf_putc(lf_buf *b, char c) {
  if (b->len == b->cap && !lf_buf_reserve(b, 1)) return 0;
  b->data[b->len++] = c;
  return 1;
}

/* Writes v in decimal into the bytes just before end (20 at most); returns
 * where the digits start. */
static inline char *lf_decimal(char *end, unsigned long long v) {
  do
    *--end = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  return end;
}

#endif
