/* The flow graph (graph.c): the incremental cycle check names the tasks on
 * the cycle an edge closes, and the run order is Kahn's, taking among ready
 * tasks the one added first; both checked against brute force on random
 * graphs (seeded, so a failure repeats). */
#include "graph.h"
#include "test.h"

typedef struct {
  lf_flow f;
  int cap;
} graph;

static void graph_init(graph *g, int cap) {
  memset(g, 0, sizeof *g);
  g->cap = cap;
  g->f.nodes = calloc((size_t)cap, sizeof *g->f.nodes);
  g->f.edges = calloc((size_t)cap * 4, sizeof *g->f.edges);
  g->f.cap_nodes = cap;
  g->f.cap_edges = cap * 4;
  ASSERT(g->f.nodes && g->f.edges);
}

static void graph_free(graph *g) {
  lf_flow_free_graph(&g->f);
  free(g->f.edges);
}

static int add_task(graph *g) {
  ASSERT_INT(g->f.ntasks, <, g->cap);
  g->f.ntasks++;
  ASSERT_OK(lf_flow_node_added(&g->f));
  return g->f.ntasks - 1;
}

/* Returns what lf_flow_edge_added says: 0, or 1 when the flow has a cycle. */
static int add_edge(graph *g, int up, int down) {
  ASSERT_INT(g->f.nedges, <, g->f.cap_edges);
  lf_edge e = {up, down, 0, -1, -1};
  g->f.edges[g->f.nedges++] = e;
  int rc = lf_flow_edge_added(&g->f);
  ASSERT_INT(rc, >=, 0);
  return rc;
}

static int has_edge(const graph *g, int up, int down) {
  for (int k = 0; k < g->f.nedges; k++)
    if (g->f.edges[k].up == up && g->f.edges[k].down == down) return 1;
  return 0;
}

/* Whether `to` is reachable from `from` over the edges (depth-first). */
static int reaches(const graph *g, int from, int to, char *seen) {
  if (from == to) return 1;
  if (seen[from]) return 0;
  seen[from] = 1;
  for (int k = 0; k < g->f.nedges; k++)
    if (g->f.edges[k].up == from && reaches(g, g->f.edges[k].down, to, seen)) return 1;
  return 0;
}

/* Kahn's order written plainly: the lowest ready index each time. */
static void reference_order(const graph *g, int *order) {
  int n = g->f.ntasks, *indeg = calloc((size_t)n, sizeof *indeg);
  char *done = calloc((size_t)n, 1);
  ASSERT(indeg && done);
  for (int k = 0; k < g->f.nedges; k++)
    indeg[g->f.edges[k].down]++;
  for (int pos = 0; pos < n; pos++) {
    int t = 0;
    while (t < n && (done[t] || indeg[t] > 0))
      t++;
    ASSERT_INT(t, <, n);
    order[pos] = t;
    done[t] = 1;
    for (int k = 0; k < g->f.nedges; k++)
      if (g->f.edges[k].up == t) indeg[g->f.edges[k].down]--;
  }
  free(indeg);
  free(done);
}

/* lf_flow_order fills order[ntasks] with the order reference_order gives. */
static void check_order(graph *g, int *order) {
  int *expected = malloc((size_t)g->f.ntasks * sizeof *expected);
  ASSERT_NOT_NULL(expected);
  ASSERT_OK(lf_flow_order(&g->f, order));
  reference_order(g, expected);
  for (int i = 0; i < g->f.ntasks; i++)
    ASSERT_EQ(order[i], expected[i]);
  free(expected);
}

/* The reported cycle: every consecutive pair (and last -> first) is an
 * edge, it starts with its lowest task, no task twice. */
static void check_cycle(const graph *g) {
  int n = g->f.ncycle;
  ASSERT_INT(n, >, 0);
  for (int k = 0; k < n; k++) {
    ASSERT(has_edge(g, g->f.cycle[k], g->f.cycle[(k + 1) % n]));
    ASSERT_INT(g->f.cycle[0], <=, g->f.cycle[k]);
    for (int j = 0; j < k; j++)
      ASSERT_NE(g->f.cycle[j], g->f.cycle[k]);
  }
}

static unsigned long long rng_state;
static unsigned rnd(unsigned n) {
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return (unsigned)(rng_state % n);
}

TEST_IMPL(graph_chain_keeps_the_added_order) {
  graph g;
  graph_init(&g, 8);
  for (int i = 0; i < 5; i++)
    add_task(&g);
  for (int i = 0; i + 1 < 5; i++)
    ASSERT_OK(add_edge(&g, i, i + 1));
  ASSERT_EQ(g.f.nbackward, 0);
  int order[5];
  ASSERT_OK(lf_flow_order(&g.f, order));
  for (int i = 0; i < 5; i++)
    ASSERT_EQ(order[i], i);
  graph_free(&g);
  return 0;
}

TEST_IMPL(graph_edge_back_names_the_cycle) {
  graph g;
  graph_init(&g, 8);
  for (int i = 0; i < 4; i++)
    add_task(&g);
  ASSERT_OK(add_edge(&g, 1, 2));
  ASSERT_OK(add_edge(&g, 2, 3));
  ASSERT_OK(add_edge(&g, 0, 1));
  ASSERT_EQ(add_edge(&g, 3, 1), 1); /* 1 -> 2 -> 3 -> 1 */
  ASSERT_EQ(g.f.ncycle, 3);
  ASSERT_EQ(g.f.cycle[0], 1);
  ASSERT_EQ(g.f.cycle[1], 2);
  ASSERT_EQ(g.f.cycle[2], 3);
  int order[4];
  ASSERT_EQ(lf_flow_order(&g.f, order), -1);
  ASSERT_EQ(add_edge(&g, 0, 3), 1); /* the flow stays cyclic; the first cycle is kept */
  ASSERT_EQ(g.f.cycle[0], 1);
  graph_free(&g);
  return 0;
}

TEST_IMPL(graph_self_edge_is_a_cycle_of_one) {
  graph g;
  graph_init(&g, 4);
  add_task(&g);
  add_task(&g);
  ASSERT_EQ(add_edge(&g, 1, 1), 1);
  ASSERT_EQ(g.f.ncycle, 1);
  ASSERT_EQ(g.f.cycle[0], 1);
  graph_free(&g);
  return 0;
}

TEST_IMPL(graph_backward_edges_reorder) {
  graph g;
  graph_init(&g, 8);
  for (int i = 0; i < 4; i++)
    add_task(&g);
  ASSERT_OK(add_edge(&g, 3, 0)); /* 3 must run before 0 */
  ASSERT_OK(add_edge(&g, 2, 3));
  ASSERT_EQ(g.f.nbackward, 1);
  int order[4];
  check_order(&g, order); /* 1 2 3 0 */
  ASSERT_EQ(order[0], 1);
  ASSERT_EQ(order[3], 0);
  /* asked again for the same shape: the kept order */
  ASSERT_OK(lf_flow_order(&g.f, order));
  ASSERT_EQ(order[3], 0);
  /* a new task changes the shape: worked out again */
  add_task(&g);
  ASSERT_OK(add_edge(&g, 4, 2));
  int order5[5];
  check_order(&g, order5);
  graph_free(&g);
  return 0;
}

TEST_IMPL(graph_random_against_brute_force) {
  rng_state = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 300; round++) {
    int n = 2 + (int)rnd(40), nedges = (int)rnd((unsigned)(n * 3));
    graph g;
    graph_init(&g, n);
    for (int i = 0; i < n; i++)
      add_task(&g);
    char *seen = malloc((size_t)n);
    ASSERT_NOT_NULL(seen);
    int cyclic = 0;
    for (int k = 0; k < nedges && !cyclic; k++) {
      int up = (int)rnd((unsigned)n), down = (int)rnd((unsigned)n);
      if (rnd(4)) { /* mostly edges that keep a DAG */
        if (up > down) {
          int t = up;
          up = down, down = t;
        }
      }
      memset(seen, 0, (size_t)n);
      int closes = reaches(&g, down, up, seen); /* before the edge exists */
      int rc = add_edge(&g, up, down);
      ASSERT_EQ(rc, closes);
      if (rc) {
        check_cycle(&g);
        cyclic = 1;
      } else { /* the kept positions are a topological order */
        for (int e = 0; e < g.f.nedges; e++)
          ASSERT_INT(g.f.nodes[g.f.edges[e].up].ord, <, g.f.nodes[g.f.edges[e].down].ord);
      }
    }
    if (!cyclic) {
      int *order = malloc((size_t)n * sizeof *order);
      ASSERT_NOT_NULL(order);
      check_order(&g, order);
      free(order);
    }
    free(seen);
    graph_free(&g);
  }
  return 0;
}
