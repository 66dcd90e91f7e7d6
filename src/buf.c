#include <stdint.h>
#include <stdlib.h>
#include "buf.h"

void lf_buf_reset(lf_buf *b) {
  b->len = 0;
  b->oom = 0;
}

void lf_buf_free(lf_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

int lf_buf_reserve(lf_buf *b, size_t n) {
  if (b->cap - b->len >= n) return 1;
  if (n > SIZE_MAX / 2 - b->len) { /* no such size: doubling would wrap around */
    b->oom = 1;
    return 0;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < n)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->oom = 1;
    return 0;
  }
  b->data = p;
  b->cap = cap;
  return 1;
}
