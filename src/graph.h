/* Tasks and flows as the engine sees them: plain C structs inside userdata.
 * Their Lua values (functions, handlers, constants) live in the userdata's
 * user value table, so they die with it and never leak a registry ref. */
#ifndef LF_GRAPH_H
#define LF_GRAPH_H

#include <stdint.h>
#include "luaflow.h"
#include "trigger.h"

typedef struct {
  lf_handler_fn fn; /* a C handler, or NULL for a Lua one */
  void *ud;
  int lua;            /* index in the user value's `handlers` array (Lua handlers) */
  uint8_t on_failure; /* on_failure: calls fn(obj, state) for failed states */
} lf_handler;

struct lf_object {
  uint8_t is_flow;
  char *name;
  lf_handler *handlers;
  int nhandlers;
  int nlua; /* how many of them are Lua values */
};

/* Keys of a task's spec table (its first user value, shared by its copies). */
enum { LF_SPEC_FN = 1, LF_SPEC_HANDLERS = 2, LF_SPEC_TRIGGER = 3 };
/* A task's user values. */
enum { LF_UV_SPEC = 1, LF_UV_CONSTS = 2, LF_UV_ORIGIN = 3, LF_TASK_NUV = 3 };

/* A task's rarer options: its retry policy beyond max_retries and
 * retry_delay, its deadline, its trigger's bounds, cache_for. Made only when
 * one of them is given (a flow holds many tasks: each stays small), kept by
 * the spec table its copies share (retry_on and on_overdue are there too). */
typedef struct lf_task_policy {
  double retry_backoff;     /* >= 1 */
  double max_retry_delay;   /* 0: no cap */
  double retry_jitter;      /* 0 .. 1 */
  double deadline;          /* seconds from the first Running; 0 = none */
  double at_least, at_most; /* some_successful / some_failed bounds (<0: unset) */
  double cache_for;         /* seconds a successful result stays cached; 0: none */
  uint8_t has_retry_on, has_on_overdue;
} lf_task_policy;

/* (Its fields are ordered so that no padding makes every task bigger.) */
typedef struct lf_task {
  lf_object obj;
  uint8_t owns_name, owns_handlers; /* copies share them with the task they copy */
  uint8_t skip_on_upstream_skip;
  uint8_t has_fn;
  uint8_t named; /* explicit name or named from its first call site */
  uint8_t trigger;
  uint8_t has_tables; /* some constant is a table template (table_args.c) */
  uint8_t mapped;     /* t:map(...): the run maps it over its arguments (map.c) */
  uint32_t flow_id;   /* the first flow the task was added to */
  int flow_index;     /* its index there (0-based) */
  int max_retries;
  /* Copies of this task in the first flow that got one: the copy's index
   * (1-based; -1 when it holds several) and that flow's id (copies_flow).
   * Other flows keep theirs in their `copies` table. */
  int copy_index;
  double retry_delay;
  double timeout;                      /* seconds; 0 = none */
  const struct lf_task_policy *policy; /* NULL: none given (lua_task_policy.c) */
  int nconsts;                         /* highest argument position holding a constant */
  int nmap;                            /* positions 1 .. nmap in arg_map */
  uint8_t *arg_map; /* mapped: each argument position's LF_MAP_* (owned) */
  uint32_t copies_flow;
  struct lf_task *origin; /* the task this one copies (kept alive by a user value) */
} lf_task;

/* How a mapped task takes an argument position (t:map(...)). */
enum { LF_MAP_WHOLE = 0, LF_MAP_EACH = 1, LF_MAP_FLATTEN = 2 };

/* The most arguments a task function is called with (Lua's own limit is
 * about 250 for a C call's stack slots). */
#define LF_MAX_ARGS 200

typedef struct {
  int up, down;          /* indices into the flow's tasks (0-based) */
  int key;               /* argument position (1-based), 0 for an ordering edge */
  int next_out, next_in; /* the previous edge leaving `up` / entering `down`, or -1 */
} lf_edge;

/* What the graph keeps of each task for the cycle check: its position in a
 * topological order kept up to date edge by edge (Pearce-Kelly), its last
 * edge out and in (lists through lf_edge), and a search stamp (so a search
 * costs what it visits, not the size of the window it looks in). */
typedef struct {
  int ord;
  int last_out, last_in;
  int mark;
} lf_node;

typedef struct lf_flow {
  lf_object obj;
  uint32_t id;
  lf_task **tasks; /* in the order they were added */
  int ntasks, cap_tasks;
  lf_edge *edges;
  int nedges, cap_edges;
  int *refs; /* reference task indices; none = the terminal tasks */
  int nrefs;
  lf_node *nodes; /* by task index */
  int cap_nodes;
  int stamp;
  int *scratch; /* the searches' work lists */
  int cap_scratch;
  int *cycle;     /* the tasks on the first cycle an edge closed, in edge order */
  int ncycle;     /* 0: the flow is acyclic */
  int nbackward;  /* edges to a task added earlier (none: the run order is the added one)
                   */
  int *run_order; /* the run order, kept while the flow does not change */
  int run_order_tasks, run_order_edges;
  double deadline;        /* seconds from its Running; 0 = none (lua_task_policy.c) */
  uint8_t has_on_overdue; /* its on_overdue is in its spec table */
} lf_flow;

/* Kahn's algorithm taking, among ready tasks, the one added first. Fills
 * order[ntasks]; returns 0, -1 on a cycle (f->cycle names its tasks), or -2
 * when out of memory. Worked out once for each shape the flow takes. */
int lf_flow_order(lf_flow *f, int *order);

/* Task index f->ntasks - 1 has just been added: it comes last in the order.
 * Returns 0, or -1 when out of memory (the task is then not counted). */
int lf_flow_node_added(lf_flow *f);
/* Edge index f->nedges - 1 has just been added: links it and keeps the
 * order. Returns 0, 1 when the flow has a cycle (this edge closed it, or an
 * earlier one did; f->cycle), or -2 when out of memory. */
int lf_flow_edge_added(lf_flow *f);
void lf_flow_free_graph(lf_flow *f);

#endif
