/* The host: what the Lua-free scheduler asks of the language its flows are
 * written in. The Lua host implements it over a lua_State; it owns the run's
 * Lua values (task functions, handlers, results, the flow object) and the
 * boxes of the states it shows to Lua.
 *
 * Threads: every call comes on the engine thread, one at a time.
 * States: arguments are borrowed; a state returned is a new reference the
 * caller owns.
 * Errors: calls marked "may unwind" run user code without a protected call of
 * their own (one protected call serves a whole stretch of the run): an error
 * there does not return, it unwinds the scheduler's C frames to the host's
 * protected frame. The scheduler keeps everything it owns in the run
 * (r->chain, r->busy, r->current ...) while such a call runs, never in C
 * locals; the host then finishes what was in flight (lf_run_handler_failed,
 * lf_run_handler_cancelled, lf_run_trigger_failed, or an executor's
 * lf_run_deliver) and calls lf_run_continue again. The other calls return. */
#ifndef LF_HOST_H
#define LF_HOST_H

#include "graph.h"
#include "run.h"

typedef struct lf_host_ops {
  /* Calls handler h (not a C one) of object i (-1: the flow) on the
   * transition old -> next in flight. Returns the state it leaves the object
   * in: NULL keeps next, else a new reference. May unwind. */
  lf_state *(*call_handler)(lf_host *host, lf_run *r, int i, const lf_handler *h,
                            lf_state *old, lf_state *next);
  /* Task i's own trigger (not a built-in one) over the states of its n
   * distinct upstream tasks: NULL when it passes, else the state the task
   * fails with. May unwind. */
  lf_state *(*trigger)(lf_host *host, lf_run *r, int i, lf_state *const *ups, int n);
  /* A state of kind k with message whose result is the signal a trigger
   * raises for it (TRIGGERFAIL, PAUSE; Skipped gets none). */
  lf_state *(*signal_state)(lf_host *host, lf_run *r, lf_kind k, const char *message);
  /* A state of kind k, message prefix .. text, whose result is text (a C
   * handler's LF_ERROR message): as a raised error would make it. */
  lf_state *(*error_state)(lf_host *host, lf_run *r, lf_kind k, const char *prefix,
                           const char *text);
  /* Whether paused task i may resume now (the terminal prompt): 0 no (also
   * when there is no approver). */
  int (*approve)(lf_host *host, lf_run *r, int i);
  /* The flow's terminal_state_handler on the final state the reference
   * tasks decided (NULL: the flow stays Running; the host takes it over when
   * it returns, the run holds it until then): returns the state the flow
   * moves to (owned), or NULL. */
  lf_state *(*terminal)(lf_host *host, lf_run *r, lf_state *final);
  /* Mapped task i is ready to map (map.c): reads its arguments, sets *n to
   * its number of children and returns Mapped("Ready to proceed with
   * mapping."), or the state it fails with (no mapped argument that
   * succeeded, an argument that is no list) leaving *n < 0. Owned. */
  lf_state *(*map_count)(lf_host *host, lf_run *r, int i, int *n);
  /* Mapped task i's n children (ids first ..) are finished: its final
   * Mapped state (the list of their results, their states). */
  lf_state *(*map_final)(lf_host *host, lf_run *r, int i, int first, int n);
  /* Task run i (a task with cache_for) is about to run: a valid cached
   * state for it (owned), or NULL. Errors are the host's own (a WARNING). */
  lf_state *(*cache_lookup)(lf_host *host, lf_run *r, int i);
  /* Task run i has just succeeded: its result is cached; returns the Cached
   * state it moves to (owned), or NULL when the result cannot be cached. */
  lf_state *(*cache_save)(lf_host *host, lf_run *r, int i);
  /* Task i's retry_on(failed), asked once the retry policy would retry the
   * failure: 1 retry, 0 not, -1 it raised (the host logs why). Returns. */
  int (*retry_on)(lf_host *host, lf_run *r, int i, lf_state *failed);
  /* Object i (-1: the flow) is overdue, as `message` says: its
   * on_overdue(obj, state, info), when it has one. Returns (an error is
   * logged, the run goes on). */
  void (*overdue)(lf_host *host, lf_run *r, int i, double deadline, double elapsed,
                  const char *message);
  /* The wake-up the host asked for (lf_run_wake_at) is due. Returns. */
  void (*wake)(lf_host *host, lf_run *r);
  /* Ends the run with an error (lf_run_abort); does not return. */
  void (*abort)(lf_host *host, lf_run *r, const char *message);
} lf_host_ops;

struct lf_host {
  const lf_host_ops *ops;
};

#endif
