/* An executor runs task bodies for the scheduler: it is given a task run
 * with its inputs and later hands back its outcome as an event. Local
 * (lua_executor_local.c) runs the body inline in the engine's own Lua state
 * and delivers its outcome before submit returns; worker executors run
 * bodies elsewhere and deliver outcomes later, in any order, several tasks
 * being Running at once.
 *
 * Threads: every call comes on the engine thread; outcomes are handed to the
 * run there too (lf_run_deliver), from submit or from wait: a worker's
 * thread queues its outcome with the executor, whose wait delivers it.
 * States: an outcome's state is a new reference the run takes over.
 * Inputs: a body's inputs are its upstream tasks' results, read through the
 * host (the Lua host keeps them in the boxes of their states); those states
 * stay as they are until the body's outcome is delivered. */
#ifndef LF_EXECUTOR_H
#define LF_EXECUTOR_H

#include "run.h"

typedef struct lf_executor_ops {
  const char *name;
  /* Starts task i's body. Its outcome (the body's state; end when nothing
   * more may happen to the task, as for ENDRUN or a cancelled body) comes
   * through lf_run_deliver. May unwind, as the host's calls (host.h). */
  void (*submit)(lf_executor *ex, lf_run *r, int i);
  /* Blocks until an outcome has been delivered, timeout seconds have passed
   * (< 0: no limit) or a signal came (see lf_cancel_signal). */
  void (*wait)(lf_executor *ex, lf_run *r, double timeout);
  /* The run is cancelled: the bodies in flight stop soon; their outcomes
   * (Cancelled, end) still come through wait. */
  void (*cancel)(lf_executor *ex, lf_run *r);
  /* The run is over, or ended by an error: no body of it runs any more. */
  void (*close)(lf_executor *ex, lf_run *r);
} lf_executor_ops;

struct lf_executor {
  const lf_executor_ops *ops;
};

#endif
