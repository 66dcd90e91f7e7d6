/* One binary min-heap, growing as needed: the timers of a run (retries and
 * scheduled starts, later deadlines) and the ready set's stragglers (ready.h).
 * Each entry is a key (a due time, a rank), the value it stands for (a task)
 * and a tag the owner may use to tell kinds of entries apart. Lua-free. */
#ifndef LF_HEAP_H
#define LF_HEAP_H

typedef struct {
  double key;
  int value;
  int tag;
} lf_heap_entry;

typedef struct {
  lf_heap_entry *entry; /* entry[0] has the smallest key */
  int count, cap;
} lf_heap; /* all zero: empty */

/* Adds an entry; returns 0, or -1 when out of memory (the heap unchanged). */
int lf_heap_push(lf_heap *h, double key, int value, int tag);
/* Removes and returns the entry with the smallest key (the heap is not empty). */
lf_heap_entry lf_heap_pop(lf_heap *h);
void lf_heap_free(lf_heap *h);

#endif
