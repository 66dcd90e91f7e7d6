/* The binary min-heap (see heap.h). */
#include <stdlib.h>
#include "heap.h"

int lf_heap_push(lf_heap *h, double key, int value, int tag) {
  if (h->count == h->cap) {
    int cap = h->cap ? h->cap * 2 : 16;
    lf_heap_entry *grown = realloc(h->entry, (size_t)cap * sizeof *grown);
    if (!grown) return -1;
    h->entry = grown;
    h->cap = cap;
  }
  int i = h->count++;
  while (i > 0 && h->entry[(i - 1) / 2].key > key) { /* sift up */
    h->entry[i] = h->entry[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->entry[i].key = key;
  h->entry[i].value = value;
  h->entry[i].tag = tag;
  return 0;
}

lf_heap_entry lf_heap_pop(lf_heap *h) {
  lf_heap_entry top = h->entry[0], last = h->entry[--h->count];
  int i = 0;
  for (;;) { /* sift the last entry down from the root */
    int c = 2 * i + 1;
    if (c >= h->count) break;
    if (c + 1 < h->count && h->entry[c + 1].key < h->entry[c].key) c++;
    if (h->entry[c].key >= last.key) break;
    h->entry[i] = h->entry[c];
    i = c;
  }
  if (h->count > 0) h->entry[i] = last;
  return top;
}

void lf_heap_free(lf_heap *h) {
  free(h->entry);
  h->entry = NULL;
  h->count = h->cap = 0;
}
