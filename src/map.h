/* Mapped tasks in a run (t:map(...)): a mapped task goes Pending -> Mapped
 * through its handlers, then one child task run per element of its mapped
 * arguments runs the parent's task through the whole pipeline (triggers,
 * retries, the executor) under its own id (ntasks and up; see run.h). The
 * parent counts as finished for its downstream tasks once every child is.
 * Lua-free: the arguments are the host's (map_count, map_final). */
#ifndef LF_MAP_H
#define LF_MAP_H

#include "run.h"

/* Sets up r->map, when the run's first mapped task begins (until then no
 * task run is a child and every upstream state is its task's own); 0, or
 * -1 out of memory. */
int lf_map_init(lf_run *r);
/* Releases the children (their states, objects) and r->map. */
void lf_map_release(lf_run *r);

/* Mapped task i's upstreams are finished and none skipped it: the state it
 * moves to (owned), Mapped with its number of children noted, or Failed. */
lf_state *lf_map_begin(lf_run *r, int i);
/* Task i is Mapped: its children are made and ready. Returns how many; with
 * none, its final Mapped state is already set (it is finished). */
int lf_map_expand(lf_run *r, int i);
/* Child c has finished: returns its parent when every child of it has (its
 * final Mapped state is then set), else -1. */
int lf_map_child_finished(lf_run *r, int c);
/* The run is over: the parents whose children have not all finished (paused
 * children, a cancelled run) get their Mapped state with the children's
 * states as they are; they stay waiting (lf_map_waiting). */
void lf_map_end_all(lf_run *r);

/* Whether mapped task i waits for children that have not finished. */
int lf_map_waiting(const lf_run *r, int i);

/* The children ready to begin, oldest first. */
int lf_map_ready_count(const lf_run *r);
int lf_map_ready_pop(lf_run *r);
void lf_map_ready_push(lf_run *r, int c);
/* How many children the run has so far (ids ntasks .. ntasks + n - 1). */
int lf_map_nkids(const lf_run *r);
/* Child c's map index (1-based); 0 when c is no child. */
int lf_map_index(const lf_run *r, int c);

/* Gathers the distinct upstream states task run i's trigger sees into
 * r->upstream_states: a child sees the children of the same index of its
 * mapped upstreams; any other edge from a mapped task gives every child's
 * state (a mapped task's own mapped edges give the upstream's state).
 * Returns how many. */
int lf_map_gather(lf_run *r, int i);
/* The state of the upstream of edge k (of i's task) as task run i sees it. */
lf_state *lf_map_upstream_state(const lf_run *r, int i, int k);
/* Task i's children as the flow's reference states: *failed when one
 * failed, *all_ok cleared when one is not successful. */
void lf_map_reference(const lf_run *r, int i, int *failed, int *all_ok);
/* How mapped task i takes the argument of edge k (LF_MAP_*). */
int lf_map_edge_mode(const lf_run *r, int i, int k);

#endif
