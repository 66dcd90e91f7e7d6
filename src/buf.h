/* One growable byte buffer, shared by the codecs and the run store. */
#ifndef LF_BUF_H
#define LF_BUF_H

#include <stddef.h>

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

#endif
