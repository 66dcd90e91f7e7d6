/* The ready set and the timer heap of a run. */
#include <stdlib.h>
#include <string.h>
#include "run.h"

/* The ready set: tasks are taken by topological rank, smallest first. Most
 * become ready in rank order, so a bitmap with a cursor that only moves
 * forward holds them at O(1) a task; one that becomes ready behind the
 * cursor (a retry) goes to a small heap. */
static void heap_push(lf_run *r, int rank) {
  int i = r->nheap++;
  while (i > 0 && r->heap[(i - 1) / 2] > rank) {
    r->heap[i] = r->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  r->heap[i] = rank;
}

static int heap_pop(lf_run *r) {
  int top = r->heap[0], v = r->heap[--r->nheap], i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= r->nheap) break;
    if (c + 1 < r->nheap && r->heap[c + 1] < r->heap[c]) c++;
    if (r->heap[c] >= v) break;
    r->heap[i] = r->heap[c];
    i = c;
  }
  if (r->nheap > 0) r->heap[i] = v;
  return top;
}

void lf_ready_push(lf_run *r, int rank) {
  r->nready++;
  if (rank >= r->cursor)
    r->bits[rank >> 6] |= 1ull << (rank & 63);
  else
    heap_push(r, rank);
}

/* The first rank at or after the cursor in the bitmap, or -1. */
static int next_bit(lf_run *r) {
  int nwords = (r->n + 63) >> 6;
  for (int w = r->cursor >> 6; w < nwords; w++) {
    uint64_t word = r->bits[w];
    if (w == r->cursor >> 6) word &= ~0ull << (r->cursor & 63);
    if (word) return (w << 6) + __builtin_ctzll(word);
  }
  r->cursor = r->n;
  return -1;
}

int lf_ready_pop(lf_run *r) {
  r->nready--;
  int b = next_bit(r);
  if (r->nheap > 0 && (b < 0 || r->heap[0] < b)) return heap_pop(r);
  r->bits[b >> 6] &= ~(1ull << (b & 63));
  r->cursor = b + 1;
  return b;
}

void lf_timer_push(lf_run *r, double due, int task) {
  if (r->ntimers == r->cap_timers) {
    lf_timer *grown = realloc(r->timers, (size_t)r->cap_timers * 2 * sizeof *grown);
    if (!grown) luaL_error(r->L, "not enough memory");
    r->timers = grown;
    r->cap_timers *= 2;
  }
  int i = r->ntimers++;
  while (i > 0 && r->timers[(i - 1) / 2].due > due) {
    r->timers[i] = r->timers[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  r->timers[i].due = due;
  r->timers[i].task = task;
}

lf_timer lf_timer_pop(lf_run *r) {
  lf_timer top = r->timers[0], v = r->timers[--r->ntimers];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= r->ntimers) break;
    if (c + 1 < r->ntimers && r->timers[c + 1].due < r->timers[c].due) c++;
    if (r->timers[c].due >= v.due) break;
    r->timers[i] = r->timers[c];
    i = c;
  }
  if (r->ntimers > 0) r->timers[i] = v;
  return top;
}
