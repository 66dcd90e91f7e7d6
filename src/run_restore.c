/* A restart keeps what succeeded: a task restored from an earlier run starts
 * this run finished in its recorded state, without a transition or a
 * handler call (as Prefect's task runner ends a run that finds its task
 * already finished), and its downstream tasks see it so. Lua-free. */
#include "run_journal.h"

void lf_run_restore(lf_run *r, int i, lf_state *s) {
  lf_task_run *tr = &r->task[i];
  if (tr->flags & LF_TASK_FINISHED) return; /* restored once already */
  lf_state_release(tr->state);
  tr->state = lf_state_ref(s);
  tr->flags |= LF_TASK_STARTED | LF_TASK_FINISHED;
  tr->attempt = s->run_count > 0 ? s->run_count : 1;
  tr->loop = 1;
  for (int k = r->down.start[i]; k < r->down.start[i + 1]; k++)
    r->task[r->down.task[k]].pending_upstreams--;
}
