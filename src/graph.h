/* Tasks and flows as the engine sees them: plain C structs inside userdata.
 * Their Lua values (functions, handlers, constants) live in the userdata's
 * user value table, so they die with it and never leak a registry ref. */
#ifndef LF_GRAPH_H
#define LF_GRAPH_H

#include <stdint.h>
#include "luaflow.h"

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

enum {
  LF_TRIGGER_LUA,
  LF_TRIGGER_ALL_SUCCESSFUL,
  LF_TRIGGER_ALL_FAILED,
  LF_TRIGGER_ANY_SUCCESSFUL,
  LF_TRIGGER_ANY_FAILED,
  LF_TRIGGER_ALL_FINISHED,
  LF_TRIGGER_MANUAL_ONLY,
  LF_TRIGGER_NOT_ALL_SKIPPED,
  LF_TRIGGER_SOME_SUCCESSFUL,
  LF_TRIGGER_SOME_FAILED,
  LF_NTRIGGERS
};

/* Keys of a task's spec table (its first user value, shared by its copies). */
enum { LF_SPEC_FN = 1, LF_SPEC_HANDLERS = 2, LF_SPEC_TRIGGER = 3 };
/* A task's user values. */
enum { LF_UV_SPEC = 1, LF_UV_CONSTS = 2, LF_UV_ORIGIN = 3, LF_TASK_NUV = 3 };

typedef struct lf_task {
  lf_object obj;
  uint8_t owns_name, owns_handlers; /* copies share them with the task they copy */
  uint32_t flow_id;                 /* the first flow the task was added to */
  int flow_index;                   /* its index there (0-based) */
  int max_retries;
  double retry_delay;
  double timeout; /* seconds; 0 = none */
  uint8_t skip_on_upstream_skip;
  uint8_t has_fn;
  uint8_t named; /* explicit name or named from its first call site */
  uint8_t trigger;
  double at_least, at_most; /* some_successful / some_failed bounds (<0: unset) */
  int nconsts;              /* highest argument position holding a constant */
  uint8_t has_tables;       /* some constant is a table template (table_args.c) */
} lf_task;

/* The most arguments a task function is called with (Lua's own limit is
 * about 250 for a C call's stack slots). */
#define LF_MAX_ARGS 200

typedef struct {
  int up, down; /* indices into the flow's tasks (0-based) */
  int key;      /* argument position (1-based), 0 for an ordering edge */
} lf_edge;

typedef struct lf_flow {
  lf_object obj;
  uint32_t id;
  lf_task **tasks; /* in the order they were added */
  int ntasks, cap_tasks;
  lf_edge *edges;
  int nedges, cap_edges;
  int *refs; /* reference task indices; none = the terminal tasks */
  int nrefs;
} lf_flow;

/* Trigger outcome: pass, or the state it fails the task with. */
typedef struct {
  int pass;
  lf_kind kind;
  const char *message;
} lf_trigger_result;
lf_trigger_result lf_trigger_check(int trigger, lf_state *const *states, int n,
                                   double at_least, double at_most, int resume);

/* Kahn's algorithm taking, among ready tasks, the one added first. Fills
 * order[ntasks]; returns 0, or -1 on a cycle (order then holds the tasks on
 * the cycle, count in *ncycle). */
int lf_flow_order(const lf_flow *f, int *order, int *ncycle);

#endif
