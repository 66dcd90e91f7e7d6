/* Topological order of a flow; Lua-free. */
#include <stdlib.h>
#include "graph.h"

/* A binary min-heap of task indices: among ready tasks, the one added first. */
static void heap_push(int *h, int *n, int v) {
  int i = (*n)++;
  while (i > 0 && h[(i - 1) / 2] > v) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = v;
}

static int heap_pop(int *h, int *n) {
  int top = h[0], v = h[--*n], i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && h[c + 1] < h[c]) c++;
    if (h[c] >= v) break;
    h[i] = h[c];
    i = c;
  }
  if (*n > 0) h[i] = v;
  return top;
}

int lf_flow_order(const lf_flow *f, int *order, int *ncycle) {
  int n = f->ntasks, e = f->nedges;
  int *indeg = calloc((size_t)n + 1, sizeof *indeg);
  int *start = calloc((size_t)n + 1, sizeof *start);
  int *adj = malloc(((size_t)e + 1) * sizeof *adj);
  int *heap = malloc(((size_t)n + 1) * sizeof *heap);
  if (!indeg || !start || !adj || !heap) {
    free(indeg), free(start), free(adj), free(heap);
    *ncycle = 0;
    return -2;
  }
  for (int i = 0; i < e; i++)
    start[f->edges[i].up + 1]++;
  for (int i = 0; i < n; i++)
    start[i + 1] += start[i];
  for (int i = 0; i < e; i++) {
    adj[start[f->edges[i].up]++] = f->edges[i].down;
    indeg[f->edges[i].down]++;
  }
  for (int i = n; i > 0; i--)
    start[i] = start[i - 1];
  start[0] = 0;
  int hn = 0, done = 0;
  for (int i = 0; i < n; i++)
    if (indeg[i] == 0) heap_push(heap, &hn, i);
  while (hn > 0) {
    int t = heap_pop(heap, &hn);
    order[done++] = t;
    for (int k = start[t]; k < start[t + 1]; k++)
      if (--indeg[adj[k]] == 0) heap_push(heap, &hn, adj[k]);
  }
  int rc = 0;
  if (done < n) {
    /* Every task left has an unfinished upstream: they are on or behind a cycle. */
    *ncycle = 0;
    for (int i = 0; i < n; i++)
      if (indeg[i] > 0) order[(*ncycle)++] = i;
    rc = -1;
  }
  free(indeg), free(start), free(adj), free(heap);
  return rc;
}
