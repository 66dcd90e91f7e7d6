/* The state of one flow run, shared by the runner's files (internal). */
#ifndef LF_RUN_H
#define LF_RUN_H

#include <stdint.h>
#include "graph.h"
#include "heap.h"
#include "ready.h"
#include "lua_core.h"

/* F_RESUME: approved in advance (resume=) until a pause uses it up;
 * F_RESUMED: the task's current run started from Resume or a due Paused. */
enum { F_STARTED = 1, F_RESUME = 2, F_FINISHED = 4, F_ASKED = 8, F_RESUMED = 16 };

typedef struct {
  int task;
  int end; /* ENDRUN: nothing more happens to the task */
  lf_state *state;
} lf_outcome;

typedef struct lf_run {
  lua_State *L;
  lf_flow *flow;
  int n;
  int flow_ud, tasks_t; /* stack slots of this run's Lua values */
  int spec_slot;        /* slot of the last spec table used (0: none here) */
  const void *spec_of;  /* whose spec table it is: a task's origin, or the flow */
  lf_boxes boxes;       /* the boxes of the states this run shows to Lua */
  lf_state **st;        /* current state of each task */
  lf_state *pending;    /* shared: Pending(), Running("Starting task run."), */
  lf_state *running;    /* Success("Task run succeeded.") without a result */
  lf_state *success;
  int *order, *rank, *npend, *attempt, *loops, *seen;
  int stamp;
  int *up_start, *up_task, *up_key, *down_start, *down_task;
  uint8_t *flags;
  lf_ready ready;   /* ready tasks by rank */
  lf_heap timers;   /* tasks waiting for a start time */
  int approve_idx;  /* stack slot of the approver function, 0 when none */
  lf_outcome *done; /* outcomes from the executor: a ring (malloc'ed, grows) */
  int done_head, ndone, cap_done;
  void *block;                        /* the arrays above, one allocation */
  lf_state *scheduled, *fs, *not_run; /* the flow's states, held until the end */
  lf_state **ups;                     /* scratch: distinct upstream states of one task */
  int cur;                            /* the task being run, -1 for the flow */
  lf_state **loop_st;                 /* each task's last Looped state, or NULL */
  int body_base; /* stack levels below a task body's frame, + 1 (0: not known yet) */
} lf_run;

static inline lf_object *lf_run_object(lf_run *r, int i) {
  return i < 0 ? &r->flow->obj : &r->flow->tasks[i]->obj;
}

static inline void lf_run_push_object(lf_run *r, int i) {
  if (i < 0)
    lua_pushvalue(r->L, r->flow_ud);
  else
    lua_rawgeti(r->L, r->tasks_t, i + 1);
}

/* Pushes entry `key` (LF_SPEC_*) of object i's spec table. The copies of
 * one task share theirs: the last one used stays in a slot of the run. */
static inline void lf_run_push_spec(lf_run *r, int i, int key) {
  const void *of = r->flow;
  if (i >= 0)
    of = r->flow->tasks[i]->origin ? (void *)r->flow->tasks[i]->origin
                                   : (void *)r->flow->tasks[i];
  if (!r->spec_slot || of != r->spec_of) {
    lf_run_push_object(r, i);
    lua_getiuservalue(r->L, -1, LF_UV_SPEC);
    if (!r->spec_slot) {
      lua_rawgeti(r->L, -1, key);
      lua_replace(r->L, -3);
      lua_pop(r->L, 1);
      return;
    }
    lua_replace(r->L, r->spec_slot);
    lua_pop(r->L, 1);
    r->spec_of = of;
  }
  lua_rawgeti(r->L, r->spec_slot, key);
}

/* The box on top of the stack belongs to the run from now on (it may hold
 * the result of a state the engine still uses); pops it. */
static inline void lf_run_keep_box(lf_run *r) {
  lf_boxes_keep(r->L, &r->boxes);
}

static inline lf_state *lf_run_state(lua_State *L, lf_kind k, const char *static_msg) {
  lf_state *s = lf_state_static(k, static_msg);
  if (!s) luaL_error(L, "not enough memory");
  return s;
}

static inline void lf_run_set_state(lf_run *r, int i, lf_state *s) {
  lf_state_release(r->st[i]);
  r->st[i] = s;
}

static inline const char *object_label(lf_object *obj) {
  return obj->is_flow ? "Flow" : "Task";
}

/* transition.c: the one transition function */
lf_state *lf_transition(lf_run *r, int i, lf_state *old, lf_state *next, int *end);

/* executor.c: the inline executor runs a task body */
lf_state *lf_run_body(lf_run *r, int i, int *end);

/* table_args.c: task results inside table arguments, put in place */
void lf_table_args_expand(lf_run *r, int i, int fn, int nargs);

/* run_trigger.c: skip on upstream skip and the task's trigger */
lf_state *lf_check_trigger(lf_run *r, int i);

#endif
