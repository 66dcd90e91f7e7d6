/* The ready set (see ready.h). */
#include <stdlib.h>
#include "ready.h"

int lf_ready_init(lf_ready *s, int n) {
  s->n = n;
  s->cursor = s->count = 0;
  s->behind = (lf_heap){0};
  s->bits = calloc(((size_t)n + 63) / 64 + 1, sizeof *s->bits);
  return s->bits ? 0 : -1;
}

void lf_ready_free(lf_ready *s) {
  free(s->bits);
  s->bits = NULL;
  lf_heap_free(&s->behind);
}

int lf_ready_push(lf_ready *s, int rank) {
  if (rank < s->cursor) {
    if (lf_heap_push(&s->behind, rank, rank, 0) != 0) return -1;
  } else {
    s->bits[rank >> 6] |= 1ull << (rank & 63);
  }
  s->count++;
  return 0;
}

/* The first rank at or after the cursor in the bitmap, or -1; the cursor
 * moves up to it (nothing below is set). */
static int next_bit(lf_ready *s) {
  int nwords = (s->n + 63) >> 6;
  for (int w = s->cursor >> 6; w < nwords; w++) {
    uint64_t word = s->bits[w];
    if (w == s->cursor >> 6) word &= ~0ull << (s->cursor & 63);
    if (word) return s->cursor = (w << 6) + __builtin_ctzll(word);
  }
  s->cursor = s->n;
  return -1;
}

int lf_ready_pop(lf_ready *s) {
  s->count--;
  int b = next_bit(s);
  if (s->behind.count > 0 && (b < 0 || s->behind.entry[0].key < b))
    return lf_heap_pop(&s->behind).value;
  s->bits[b >> 6] &= ~(1ull << (b & 63));
  s->cursor = b + 1;
  return b;
}
