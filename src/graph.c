/* Topological order of a flow and its cycle check; Lua-free. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "ready.h"

/* Kahn's algorithm; among ready tasks, the lowest index (the ready set of
 * ready.h: a flow whose edges mostly go forward costs no heap at all). */
static int kahn(const lf_flow *f, int *order) {
  int n = f->ntasks;
  int *indeg = calloc((size_t)n + 1, sizeof *indeg);
  lf_ready ready;
  if (lf_ready_init(&ready, n) != 0 || !indeg) {
    free(indeg);
    lf_ready_free(&ready);
    return -2;
  }
  for (int k = 0; k < f->nedges; k++)
    indeg[f->edges[k].down]++;
  for (int i = 0; i < n; i++)
    if (indeg[i] == 0) lf_ready_push(&ready, i); /* ahead of the cursor: no heap */
  int done = 0, rc = 0;
  while (ready.count > 0 && rc == 0) {
    int t = lf_ready_pop(&ready);
    order[done++] = t;
    for (int e = f->nodes[t].last_out; e >= 0 && rc == 0; e = f->edges[e].next_out) {
      int d = f->edges[e].down;
      if (--indeg[d] == 0 && lf_ready_push(&ready, d) != 0) rc = -2;
    }
  }
  free(indeg);
  lf_ready_free(&ready);
  if (rc != 0) return rc;
  return done == n ? 0 : -1; /* -1 cannot happen: the edges were checked one by one */
}

int lf_flow_order(lf_flow *f, int *order) {
  if (f->ncycle) return -1;
  int n = f->ntasks;
  if (f->nbackward == 0) { /* every edge goes forward: the order they were added in */
    for (int i = 0; i < n; i++)
      order[i] = i;
    return 0;
  }
  if (f->run_order && f->run_order_tasks == n && f->run_order_edges == f->nedges) {
    memcpy(order, f->run_order, (size_t)n * sizeof *order);
    return 0;
  }
  int rc = kahn(f, order);
  if (rc != 0) return rc;
  int *kept = realloc(f->run_order, ((size_t)n + 1) * sizeof *kept);
  if (kept) { /* without it, the next run works the order out again */
    memcpy(kept, order, (size_t)n * sizeof *order);
    f->run_order = kept;
    f->run_order_tasks = n;
    f->run_order_edges = f->nedges;
  }
  return 0;
}

/* ---- the cycle check, edge by edge ----
 * A new edge x -> y can close a cycle only if x is reachable from y. The
 * flow keeps a topological order `ord` (Pearce and Kelly, "A dynamic
 * topological sort algorithm for directed acyclic graphs", 2006): an edge
 * that agrees with it (ord[x] < ord[y]) needs no search at all, which is
 * every edge of a chain or a fan built in the order its tasks were added.
 * Otherwise only the tasks whose positions lie between ord[y] and ord[x] are
 * searched: forward from y (reaching x is the cycle, and the search's parent
 * links name its tasks), backward from x; the tasks found swap positions
 * among themselves, x's ancestors first. A search never leaves that window,
 * so its cost is that of the region the edge disorders, not of the flow. */

int lf_flow_node_added(lf_flow *f) {
  int i = f->ntasks - 1;
  lf_node nd = {i, -1, -1, 0};
  f->nodes[i] = nd;
  return 0;
}

static int next_stamp(lf_flow *f) {
  if (f->stamp == INT_MAX) {
    for (int i = 0; i < f->ntasks; i++)
      f->nodes[i].mark = 0;
    f->stamp = 0;
  }
  return ++f->stamp;
}

static int cmp_packed(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The tasks on the cycle y -> ... -> found[at] -> x -> y, from the search's
 * parent links (found[k]'s parent is found[parent[k]]), starting with the
 * task added first. */
static void reverse(int *a, int n) {
  for (int i = 0, j = n - 1; i < j; i++, j--) {
    int t = a[i];
    a[i] = a[j], a[j] = t;
  }
}

static int record_cycle(lf_flow *f, const int *found, const int *parent, int at, int x) {
  int len = 1;
  for (int k = at; k >= 0; k = parent[k])
    len++;
  int *cycle = malloc((size_t)len * sizeof *cycle);
  if (!cycle) return -2;
  int pos = len - 1, low = pos;
  cycle[pos] = x;
  for (int k = at; k >= 0; k = parent[k]) {
    cycle[--pos] = found[k];
    if (found[k] < cycle[low]) low = pos;
  }
  reverse(cycle, low), reverse(cycle + low, len - low), reverse(cycle, len); /* rotate */
  f->cycle = cycle;
  f->ncycle = len;
  return 1;
}

int lf_flow_edge_added(lf_flow *f) {
  int e = f->nedges - 1, x = f->edges[e].up, y = f->edges[e].down;
  lf_node *nd = f->nodes;
  if (x >= y) f->nbackward++;
  if (f->ncycle) goto link;
  if (x == y) {
    f->cycle = malloc(sizeof *f->cycle);
    if (!f->cycle) return -2;
    f->cycle[0] = x;
    f->ncycle = 1;
    goto link;
  }
  int lb = nd[y].ord, ub = nd[x].ord;
  if (lb > ub) goto link; /* agrees with the order */
  /* Room for the window's tasks: the packed (ord, task) pairs of both
   * searches, then found (forward), their parents, backward. */
  size_t window = (size_t)(ub - lb) + 1;
  size_t need = 2 * window + 3 * window;
  if ((size_t)f->cap_scratch < need) {
    int *grown = realloc(f->scratch, need * sizeof *grown);
    if (!grown) return -2;
    f->scratch = grown;
    f->cap_scratch = (int)need;
  }
  uint64_t *packed = (uint64_t *)f->scratch; /* malloc'ed: aligned */
  int *found = f->scratch + 2 * window, *parent = found + window, *back = parent + window;
  int nf = 0, nb = 0;
  /* forward from y, within the window */
  int stamp = next_stamp(f);
  found[nf] = y, parent[nf++] = -1;
  nd[y].mark = stamp;
  for (int k = 0; k < nf; k++) {
    for (int ed = nd[found[k]].last_out; ed >= 0; ed = f->edges[ed].next_out) {
      int w = f->edges[ed].down;
      if (w == x) {
        int rc = record_cycle(f, found, parent, k, x);
        if (rc < 0) return rc;
        goto link;
      }
      if (nd[w].mark == stamp || nd[w].ord > ub) continue;
      nd[w].mark = stamp;
      found[nf] = w, parent[nf++] = k;
    }
  }
  /* backward from x, within the window */
  stamp = next_stamp(f);
  back[nb++] = x;
  nd[x].mark = stamp;
  for (int k = 0; k < nb; k++) {
    for (int ed = nd[back[k]].last_in; ed >= 0; ed = f->edges[ed].next_in) {
      int w = f->edges[ed].up;
      if (nd[w].mark == stamp || nd[w].ord < lb) continue;
      nd[w].mark = stamp;
      back[nb++] = w;
    }
  }
  /* x's ancestors, then y's descendants, each in their old order, take the
   * positions both held, in increasing order */
  for (int k = 0; k < nb; k++)
    packed[k] = (uint64_t)nd[back[k]].ord << 32 | (uint32_t)back[k];
  for (int k = 0; k < nf; k++)
    packed[nb + k] = (uint64_t)nd[found[k]].ord << 32 | (uint32_t)found[k];
  qsort(packed, (size_t)nb, sizeof *packed, cmp_packed);
  qsort(packed + nb, (size_t)nf, sizeof *packed, cmp_packed);
  int *slots = found, i = 0, j = nb; /* the search lists are done with */
  for (int k = 0; k < nb + nf; k++)  /* both runs' positions, merged */
    slots[k] =
        (int)(packed[j >= nb + nf || (i < nb && packed[i] < packed[j]) ? i++ : j++] >>
              32);
  for (int k = 0; k < nb + nf; k++)
    nd[(uint32_t)packed[k]].ord = slots[k];
link:
  f->edges[e].next_out = nd[x].last_out;
  nd[x].last_out = e;
  f->edges[e].next_in = nd[y].last_in;
  nd[y].last_in = e;
  if (f->cap_scratch > 4096) { /* a big reorder does not keep its memory */
    free(f->scratch);
    f->scratch = NULL;
    f->cap_scratch = 0;
  }
  return f->ncycle ? 1 : 0;
}

void lf_flow_free_graph(lf_flow *f) {
  free(f->nodes);
  free(f->scratch);
  free(f->cycle);
  free(f->run_order);
  f->nodes = NULL, f->scratch = NULL, f->cycle = NULL, f->run_order = NULL;
}
