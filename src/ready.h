/* A ready set: ranks 0 .. n-1 taken smallest first, for items that mostly
 * become ready in rank order (tasks in a topological order). A bitmap read
 * by a cursor that only moves forward holds them at O(1) each; one that
 * becomes ready behind the cursor (a retry, an edge to an earlier task) goes
 * to a heap. The run's ready tasks and the run order's computation share it.
 * Lua-free. */
#ifndef LF_READY_H
#define LF_READY_H

#include <stdint.h>
#include "heap.h"

typedef struct {
  uint64_t *bits;
  int n;          /* ranks 0 .. n-1 */
  int cursor;     /* no bit below it is set */
  int count;      /* ranks in the set */
  lf_heap behind; /* ranks that became ready behind the cursor */
} lf_ready;

/* An empty set of ranks 0 .. n-1; returns 0, or -1 when out of memory. */
int lf_ready_init(lf_ready *s, int n);
void lf_ready_free(lf_ready *s);
/* Adds a rank not in the set; returns 0, or -1 when out of memory. */
int lf_ready_push(lf_ready *s, int rank);
/* Removes and returns the smallest rank (the set is not empty). */
int lf_ready_pop(lf_ready *s);

#endif
