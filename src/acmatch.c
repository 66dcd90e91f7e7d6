/* acmatch: Aho–Corasick over bytes (see acmatch.h).
 *
 * The trie's root has a full 256-entry table. A scan spends most of its time
 * at the root, and there it skips ahead as Wu and Manber's search does: with m
 * the length of the shortest pattern, the byte pair ending a window of m bytes
 * tells how far along the first pattern could start (a pair found in no
 * pattern's first m bytes: m - 1 bytes at once). Every other node keeps its few
 * edges in one contiguous run of the edge array, found by a short linear search. Each
 * node has a failure link (the longest proper suffix of its path that is also a trie
 * path) and a dictionary link (the nearest node on the failure chain that ends a
 * pattern), so reporting costs one step per occurrence.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acmatch.h"

typedef struct {
  uint32_t fail;  /* failure link (0 = root) */
  uint32_t dict;  /* next node on the failure chain that ends a pattern, 0: none */
  uint32_t out;   /* 1 + index of the pattern ending here, 0: none */
  uint32_t edges; /* first edge in ac->edge */
  uint32_t nedges;
} node;

typedef struct {
  uint32_t next;
  unsigned char byte;
} edge;

struct lf_ac {
  uint32_t root[256]; /* the root's children (0: none, stay at the root) */
  /* skip[a << 8 | b]: how far a window of `window` bytes ending with the
   * pair a, b may move on with no pattern starting in the bytes it passes */
  unsigned char skip[65536];
  size_t window; /* the shortest pattern's length, at most 256; 1: no skipping */
  node *nodes;   /* nodes[0] is the root */
  edge *edge;
  size_t max_len;
};

/* {=== Building ===} */

/* The trie while it is built: children as sibling lists. */
typedef struct {
  uint32_t child, sibling;
  unsigned char byte;
} tnode;

static uint32_t find_child(const lf_ac *ac, const tnode *t, uint32_t at,
                           unsigned char c) {
  if (at == 0) return ac->root[c];
  for (uint32_t k = t[at].child; k; k = t[k].sibling)
    if (t[k].byte == c) return k;
  return 0;
}

/* The skip table: a pair ending at byte q (1 <= q < window) of some pattern
 * allows no more than window - 1 - q; a pair in no pattern, window - 1. */
static void build_skip(lf_ac *ac, const char *const *patterns, const size_t *lens,
                       size_t n) {
  size_t m = 256;
  for (size_t i = 0; i < n; i++)
    if (lens[i] < m) m = lens[i];
  ac->window = n > 0 && m > 1 ? m : 1;
  if (ac->window == 1) return;
  memset(ac->skip, (int)(m - 1), sizeof ac->skip);
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = (const unsigned char *)patterns[i];
    for (size_t q = 1; q < m; q++) {
      unsigned pair = (unsigned)p[q - 1] << 8 | p[q];
      if (ac->skip[pair] > m - 1 - q) ac->skip[pair] = (unsigned char)(m - 1 - q);
    }
  }
}

lf_ac *lf_ac_build(const char *const *patterns, const size_t *lens, size_t n) {
  size_t total = 1;
  for (size_t i = 0; i < n; i++) {
    if (lens[i] > UINT32_MAX - 2 - total) return NULL;
    total += lens[i];
  }
  lf_ac *ac = calloc(1, sizeof *ac);
  tnode *t = calloc(total, sizeof *t);
  uint32_t *queue = malloc(total * sizeof *queue);
  if (ac) {
    ac->nodes = calloc(total, sizeof *ac->nodes);
    ac->edge = malloc(total * sizeof *ac->edge);
  }
  if (!ac || !t || !queue || !ac->nodes || !ac->edge) {
    free(t);
    free(queue);
    lf_ac_free(ac);
    return NULL;
  }
  node *nd = ac->nodes;
  uint32_t count = 1;
  for (size_t i = 0; i < n; i++) { /* the trie */
    const unsigned char *p = (const unsigned char *)patterns[i];
    uint32_t at = 0;
    for (size_t j = 0; j < lens[i]; j++) {
      uint32_t next = find_child(ac, t, at, p[j]);
      if (!next) {
        next = count++;
        t[next].byte = p[j];
        if (at == 0) {
          ac->root[p[j]] = next;
        } else {
          t[next].sibling = t[at].child;
          t[at].child = next;
        }
      }
      at = next;
    }
    if (lens[i] && !nd[at].out) nd[at].out = (uint32_t)i + 1;
    if (lens[i] > ac->max_len) ac->max_len = lens[i];
  }
  build_skip(ac, patterns, lens, n);
  /* Breadth first, so a node's failure target is done before the node. */
  uint32_t head = 0, tail = 0, nedges = 0;
  for (int c = 0; c < 256; c++)
    if (ac->root[c]) queue[tail++] = ac->root[c];
  while (head < tail) {
    uint32_t u = queue[head++];
    nd[u].edges = nedges;
    for (uint32_t v = t[u].child; v; v = t[v].sibling) {
      ac->edge[nedges].next = v;
      ac->edge[nedges].byte = t[v].byte;
      nedges++;
      nd[u].nedges++;
      uint32_t f = nd[u].fail, target;
      for (;;) {
        target = find_child(ac, t, f, t[v].byte);
        if (target || f == 0) break;
        f = nd[f].fail;
      }
      nd[v].fail = target;
      nd[v].dict = nd[target].out ? target : nd[target].dict;
      queue[tail++] = v;
    }
  }
  free(t);
  free(queue);
  return ac;
}

void lf_ac_free(lf_ac *ac) {
  if (!ac) return;
  free(ac->nodes);
  free(ac->edge);
  free(ac);
}

size_t lf_ac_max_len(const lf_ac *ac) {
  return ac->max_len;
}

/* {=== Scanning ===} */

static uint32_t step(const lf_ac *ac, uint32_t s, unsigned char c) {
  for (;;) {
    const node *n = &ac->nodes[s];
    const edge *e = ac->edge + n->edges;
    for (uint32_t k = 0; k < n->nedges; k++)
      if (e[k].byte == c) return e[k].next;
    s = n->fail;
    if (s == 0) return ac->root[c];
  }
}

size_t lf_ac_scan(const lf_ac *ac, const char *text, size_t len, lf_ac_hit hit,
                  void *ud) {
  const unsigned char *p = (const unsigned char *)text;
  const node *nd = ac->nodes;
  size_t i = 0, found = 0;
  uint32_t s = 0;
  const size_t m = ac->window;
  while (i < len) {
    if (s == 0 && m > 1) {
      /* At the root nothing has begun: jump over every place no pattern
       * can start at, and stop when none fits in the text left. */
      for (;;) {
        if (len - i < m) return found;
        unsigned k = ac->skip[p[i + m - 2] << 8 | p[i + m - 1]];
        if (k == 0) break;
        i += k;
      }
    }
    s = s == 0 ? ac->root[p[i]] : step(ac, s, p[i]);
    i++;
    for (uint32_t x = nd[s].out ? s : nd[s].dict; x; x = nd[x].dict) {
      found++;
      if (hit(ud, nd[x].out - 1, i)) return found;
    }
  }
  return found;
}
