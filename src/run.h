/* One flow run as the scheduler sees it: plain C, no Lua (internal).
 *
 * The scheduler (scheduler.c) moves the tasks and the flow from state to
 * state through the one transition function (transition.c). Handlers and
 * triggers written in Lua are called through the host (host.h), task bodies
 * run behind an executor (executor.h). The run's Lua values (task functions,
 * results, the flow object) live behind the host, never here. */
#ifndef LF_RUN_H
#define LF_RUN_H

#include <stdint.h>
#include "graph.h"
#include "heap.h"
#include "ready.h"
#include "state.h"

typedef struct lf_host lf_host;
typedef struct lf_executor lf_executor;
struct lf_map_run;

/* lf_task_run.flags */
enum {
  LF_TASK_STARTED = 1,  /* its run has begun (else it ends "Task not run.") */
  LF_TASK_APPROVED = 2, /* its pause is approved in advance (resume=) until one uses it */
  LF_TASK_FINISHED = 4, /* it reached a Finished state: its downstream tasks know */
  LF_TASK_ASKED = 8,    /* the approver was asked about its current pause */
  LF_TASK_RESUMED = 16, /* its current run started from Resume or a due Paused */
  LF_TASK_SEEN = 32,    /* scratch: met while gathering a task's upstream states */
  LF_TASK_DEADLINE = 128, /* its deadline is armed (deadline.c) */
};

/* lf_task_run.traits: what a task run needs beyond the plain pipeline, set
 * when it first begins, so that a plain task pays one test a step, not a
 * look at each option. */
enum {
  LF_TRAIT_MAPPED = 1,   /* a mapped task: it maps, its children run (map.c) */
  LF_TRAIT_DEADLINE = 2, /* a deadline (deadline.h) */
  LF_TRAIT_CACHE = 4,    /* cache_for: a cached result may stand in for its body */
};

/* What the run keeps of each task, by the flow's task index. */
typedef struct {
  lf_state *state;       /* its current state (owned) */
  lf_state *loop_state;  /* its last Looped state (owned), or NULL */
  int attempt;           /* the attempt running, or the last one (task_run_count) */
  int loop;              /* the loop iteration (task_loop_count) */
  int transitions;       /* its transitions so far (transition_number) */
  int pending_upstreams; /* upstream tasks not Finished yet */
  int rank;              /* its position in the run order */
  uint8_t flags;         /* LF_TASK_* */
  uint8_t traits;        /* LF_TRAIT_* */
} lf_task_run;

/* An outcome an executor delivered: task's body ended in state (owned); end
 * when nothing more may happen to the task (ENDRUN, a cancelled body). */
typedef struct {
  int task;
  int end;
  lf_state *state;
} lf_outcome;

/* Where the scheduler goes on once a transition has happened (the step that
 * asked for it). Kept in the run, so a transition a Lua error ended is
 * finished and followed by the same step (see host.h). */
typedef enum {
  LF_THEN_SETTLE,     /* the task waits on a timer, or it is done for now */
  LF_THEN_START,      /* -> Running: the body is submitted */
  LF_THEN_OUTCOME,    /* Running -> the body's outcome: retry, loop or settle */
  LF_THEN_RETRY,      /* Failed -> Retrying: the retry's log line, then settle */
  LF_THEN_RESUME,     /* Paused -> Resume: the task is ready again */
  LF_THEN_FLOW_START, /* Scheduled -> Running: the tasks may begin */
  LF_THEN_FLOW_END,   /* Running -> the final state: the run is over */
  LF_THEN_MAPPED,     /* a mapped task -> Mapped: its children begin (map.c) */
} lf_then;

/* The transition in flight (transition.c): object (a task index, -1 the flow)
 * goes from old to next through its handlers, handler `at` being called. */
typedef struct {
  int active;
  int object;
  lf_state *old;  /* the object's current state (the run holds it) */
  lf_state *next; /* owned: the state so far */
  int at;         /* the handler being called */
  int number;     /* the transition's number for its object, from 1 */
  int end;        /* the cancellation stopped a handler: nothing more happens */
  lf_then then;   /* the step after it */
} lf_chain;

/* What the engine thread runs for this run right now, so that the host's
 * protected frame knows what a Lua error unwound. */
typedef enum {
  LF_BUSY_NONE,    /* scheduling: an error here ends the run */
  LF_BUSY_CHAIN,   /* a handler of the transition in flight (r->chain) */
  LF_BUSY_TRIGGER, /* task r->current's trigger */
  LF_BUSY_BODY,    /* task r->current's body (an inline executor) */
} lf_busy;

typedef struct lf_run {
  lf_flow *flow;
  int ntasks;
  lf_host *host;
  lf_executor *executor;

  lf_task_run *task; /* by task index */
  int *order;        /* the run order: order[rank] is a task index */
  struct {
    int *start; /* task i's upstream edges: start[i] .. start[i + 1] - 1 */
    int *task;  /* each edge's upstream task */
    int *key;   /* its argument position: 0 order only, < 0 inside a table */
  } up;
  struct {
    int *start; /* task i's downstream edges: start[i] .. start[i + 1] - 1 */
    int *task;
  } down;
  lf_state **upstream_states; /* scratch: the distinct upstream states of a task */

  lf_ready ready; /* tasks ready to begin, by rank */
  lf_heap timers; /* tasks waiting for a start time (key: epoch seconds) */
  struct {        /* outcomes delivered, oldest first: a ring */
    lf_outcome *ring;
    int head, count, cap;
  } outcomes;
  int bodies_running; /* submitted, outcome not delivered yet */
  int cancel_sent;    /* the executor was told of the cancellation */
  lf_chain chain;     /* the transition in flight */
  lf_busy busy;       /* what runs now (see lf_busy) */
  int current;        /* the object whose handlers, trigger or body run; -1 the flow */
  int outcome_end;    /* LF_THEN_OUTCOME: the outcome itself ended the task */
  lf_state *retry_of; /* LF_THEN_RETRY: the failed state retried (owned) */
  int phase;          /* where lf_run_continue is (scheduler.c) */

  lf_heap alarms; /* deadlines and wake-ups (deadline.h): they never keep a run going */
  struct {        /* retry_on's verdict on the last failed outcome (scheduler.c) */
    lf_state *state;
    int verdict;       /* lf_retry_verdict */
    double delay, due; /* the retry's wait, as the policy set it, and its start_time */
  } retry_asked;

  /* the flow's own state */
  lf_state *flow_state; /* Scheduled, then Running, then its final state */
  lf_state *flow_final; /* the state the reference tasks decided, while the host's
                           terminal handler looks at it (owned) */
  int flow_transitions;

  struct lf_map_run *map;         /* mapped tasks' children (map.c); NULL: none */
  struct lf_run_journal *journal; /* run_journal.h; NULL: none */

  struct { /* states many tasks share */
    lf_state *pending, *running, *success, *not_run;
  } shared;
  void *block; /* the arrays above, one allocation */
} lf_run;

/* The children of mapped tasks are task runs too, with the ids ntasks and up
 * (map.c): each has an object of its own (named "double[2]", with its
 * parent's handlers) and its parent's task (options, function). */
lf_object *lf_map_object(const lf_run *r, int i);
int lf_map_parent(const lf_run *r, int i);

/* The task (its options) of task run i: a child's is its parent's. */
static inline lf_task *lf_run_task(const lf_run *r, int i) {
  return r->flow->tasks[i < r->ntasks ? i : lf_map_parent(r, i)];
}

/* The flow's index of task run i's task: a child's parent. */
static inline int lf_run_task_index(const lf_run *r, int i) {
  return i < r->ntasks ? i : lf_map_parent(r, i);
}

static inline lf_object *lf_run_object(const lf_run *r, int i) {
  return i < 0           ? &r->flow->obj
         : i < r->ntasks ? &r->flow->tasks[i]->obj
                         : lf_map_object(r, i);
}

static inline const char *lf_object_label(const lf_object *obj) {
  return obj->is_flow ? "Flow" : "Task";
}

/* ---- scheduler.c ---- */

/* Sets up a run of flow (its arrays and its run order). Returns 0; -1 when
 * the flow has a cycle (nothing is held then; flow->cycle names its tasks),
 * -2 when out of memory. Release it with lf_run_release either way. */
int lf_run_init(lf_run *r, lf_flow *flow, lf_host *host, lf_executor *executor);
/* Approves task i's pause in advance (resume=). */
void lf_run_approve(lf_run *r, int i);
/* Runs the run on from where it is until it is over. Lua errors may unwind
 * it (host.h): call it again once the host has finished what was in flight. */
void lf_run_continue(lf_run *r);
int lf_run_over(const lf_run *r);
/* The state task i ended the run in ("Task not run." when it never began);
 * NULL when out of memory. */
lf_state *lf_run_final_state(lf_run *r, int i);
void lf_run_release(lf_run *r);

/* An executor hands task i's outcome to the run (engine thread; state owned). */
void lf_run_deliver(lf_run *r, int i, lf_state *state, int end);
/* The host's protected frame finishes what a Lua error ended (see host.h):
 * the handler being called failed, and the object ends in `failure` (owned);
 * the trigger of task r->current failed with state (owned). */
void lf_run_handler_failed(lf_run *r, lf_state *failure, int end);
void lf_run_handler_cancelled(lf_run *r);
void lf_run_trigger_failed(lf_run *r, lf_state *state);
/* Ends the run with an error (out of memory, an enclosing task's timeout). */
void lf_run_abort(lf_run *r, const char *message) __attribute__((noreturn));

/* Run facts the host shows (luaflow.context): inside the handlers of a
 * Running -> Failed transition that a retry will follow. */
int lf_run_task_will_retry(const lf_run *r);

/* ---- transition.c: the one transition function ---- */

/* Object i (-1 the flow) goes from old (its current state) to next (owned)
 * through its handlers, in order; each sees the same old state and the
 * previous one's result. Returns the state the object is now in (owned)
 * and sets *end when nothing more may happen to it (handler error, PAUSE,
 * ENDRUN). A Lua handler's error unwinds it (r->chain stays in flight). */
lf_state *lf_transition(lf_run *r, int i, lf_state *old, lf_state *next, int *end);
/* The chain in flight goes on from its next handler with next = Cancelled. */
lf_state *lf_transition_cancelled(lf_run *r, int *end);
/* The chain in flight is over: its state so far is released. */
void lf_transition_drop(lf_run *r);

#endif
