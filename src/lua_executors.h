/* The worker executors of the Lua host (executor.h): Threads (worker
 * threads, lua_executor_threads.c) and Processes (forked worker processes,
 * lua_executor_processes.c). Each worker has a Lua state of its own
 * (lua_worker.h); the engine keeps every state and handler call.
 *
 * Both start their workers on first need, at most `workers` of them, and
 * stop them all in close (which frees the executor): no worker outlives the
 * run. Outcomes are delivered from wait, on the engine's thread. */
#ifndef LF_LUA_EXECUTORS_H
#define LF_LUA_EXECUTORS_H

#include <poll.h>
#include "lua_host.h"

/* NULL when out of memory. path and cpath: package.path and package.cpath
 * of the workers' states (copied). */
lf_executor *lf_threads_executor_new(lf_lua_host *h, int workers, const char *path,
                                     const char *cpath);
lf_executor *lf_processes_executor_new(lf_lua_host *h, int workers, const char *path,
                                       const char *cpath);

/* lua_executors.c: the executor of the executor table at idx (nil: local,
 * returned as it is); NULL when out of memory. core.cpu_count. */
lf_executor *lf_lua_executor_new(lua_State *L, int idx, lf_lua_host *h,
                                 lf_executor *local);
void lf_open_executors(lua_State *L);

/* Checks the codec's name index once per batch of jobs (*checked, reset by
 * the executor when Lua code may have run); returns 1 for lf_job_build. */
int lf_executor_names_fresh(lf_lua_host *h, int *checked);

/* Shared by both: waits until fd is readable, timeout seconds have passed
 * (< 0: no limit) or a signal came; SIGINT/SIGTERM arriving just before the
 * wait are not missed. Returns poll's count (0 on a timeout or signal). */
int lf_executor_poll(struct pollfd *fds, int nfds, double timeout);

#endif
