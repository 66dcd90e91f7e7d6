/* core.flow_run and the run's other Lua-facing bindings (luaflow.context,
 * the cancellation): a run of the scheduler over the Lua host and the Local
 * executor, in as few protected calls as its errors allow. */
#include <string.h>
#include "lua_host.h"
#include "lua_executors.h"
#include "map.h"
#include "lua_run_record.h"
#include "lua_worker.h"

/* A run's C side, in flow_run's frame. */
typedef struct {
  lf_run run;
  lf_lua_host host;
  lf_local_executor local;
  lf_lua_watch watch; /* the protected call's: SIGINT/SIGTERM stop its handlers */
  int unwound;        /* the last protected call ended with a Lua error */
  int cancelled;      /* ... which the cancellation raised */

  lf_lua_record record; /* the run store, progress line, --json times */
} lf_lua_run;

static const char current_run_key = 0;   /* the innermost run of the state */
static const char current_boxes_key = 0; /* its box table */

static lf_run *current_run(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_run_key);
  lf_run *r = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return r;
}

lf_run *lf_lua_current_run(lua_State *L) {
  return current_run(L);
}

int lf_current_run_count(lua_State *L) {
  lf_run *r = current_run(L);
  if (!r) return lf_worker_count(L, 0);
  return r->current >= 0 ? r->task[r->current].attempt : 1;
}

int lf_current_loop_count(lua_State *L) {
  lf_run *r = current_run(L);
  if (!r) return lf_worker_count(L, 1);
  return r->current >= 0 ? r->task[r->current].loop : 1;
}

/* The run's result: the flow's final state, whose result maps every task to
 * its final state (as Prefect sets it). Boxes keep the results from here on,
 * owned by the GC. */
static void push_result(lf_lua_run *lr) {
  lua_State *L = lr->host.L;
  lf_run *r = &lr->run;
  /* the flow state gets a box of its own: a state a handler returned keeps
   * its own result */
  lf_box_new(L, lf_state_ref(r->flow_state), 0);
  int fbox = lua_gettop(L);
  lua_createtable(L, r->ntasks, 0); /* states by task index */
  for (int i = 0; i < r->ntasks; i++) {
    lf_state *s = lf_run_final_state(r, i);
    if (!s) luaL_error(L, "not enough memory");
    lf_boxes_push(L, &lr->host.boxes, s);
    lua_rawseti(L, -2, i + 1);
  }
  int *counts = lf_result_new(L, r->ntasks, r->order, -1, LF_SLOT_FLOW);
  for (int i = 0; i < r->ntasks; i++)
    counts[i] = r->task[i].attempt;
  lua_setiuservalue(L, fbox, 1);
  r->flow_state->has_result = 1;
  lua_settop(L, fbox);
}

/* One protected call of the run (arguments: the LF_SLOT_* values): finishes
 * what the previous one's error left in flight, runs the scheduler on, and
 * returns the result once the run is over. */
static int run_slice(lua_State *L) {
  lf_lua_run *lr = lua_touserdata(L, LF_SLOT_RUN);
  lf_run *r = &lr->run;
  lf_lua_host_enter(&lr->host);
  if (lr->unwound) {
    lr->unwound = 0;
    if (r->busy == LF_BUSY_BODY)
      lf_local_executor_recover(&lr->local, r, LF_SLOT_ERROR);
    else
      lf_lua_host_recover(&lr->host, r, LF_SLOT_ERROR, lr->cancelled);
  }
  lf_run_continue(r);
  push_result(lr);
  return 1;
}

int lf_is_run_frame(lua_State *L, lua_Debug *ar) {
  lua_getinfo(L, "f", ar);
  int is_run = lua_tocfunction(L, -1) == run_slice;
  lua_pop(L, 1);
  return is_run;
}

/* Runs the protected calls until the run is over (returns LUA_OK with the
 * result on top) or ends with an error (left on top). */
static int run_slices(lua_State *L, lf_lua_run *lr, int slots) {
  lf_run *r = &lr->run;
  for (;;) {
    lua_pushcfunction(L, run_slice);
    lua_pushlightuserdata(L, lr);
    for (int k = LF_SLOT_FLOW; k <= LF_SLOT_ERROR; k++)
      lua_pushvalue(L, slots + k - LF_SLOT_FLOW);
    lf_lua_watch_begin(L, &lr->watch, 0, LF_WATCH_HANDLER);
    int rc = lf_pcall(L, LF_SLOT_ERROR, 1);
    if (rc != LUA_OK && r->busy == LF_BUSY_BODY) lf_local_executor_unwound(&lr->local);
    lf_lua_watch_end(L, &lr->watch);
    if (rc == LUA_OK || lr->host.aborted || r->busy == LF_BUSY_NONE) return rc;
    lr->unwound = 1;
    lr->cancelled = lr->watch.w.cancelled;
    lua_replace(L, slots + LF_SLOT_ERROR - LF_SLOT_FLOW); /* for the next call */
  }
}

/* core.flow_run(flow, resume_indices, approve[, run]) -> the flow's final state,
 * whose result maps every task to its final state; or nil and the indices of
 * the tasks on a cycle (nothing ran). Whatever happens inside the run (even a
 * Lua error that escapes it), the run's C memory is released and the registry
 * keys of the enclosing run are put back. */
static int flow_run(lua_State *L) {
  lf_flow *flow = lf_check_flow(L, 1);
  lua_settop(L, 4); /* 4: the run's table (lua_run_record.h) */
  lf_lua_run lr;
  memset(&lr, 0, sizeof lr);
  /* the Lua values first: nothing of the run is held while they are made */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_run_key); /* 5, 6: the enclosing run's */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  int slots = lua_gettop(L) + 1; /* LF_SLOT_FLOW .. LF_SLOT_ERROR from here */
  lua_pushvalue(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "tasks");
  lua_remove(L, -2);
  lf_lua_host_init(&lr.host, L); /* pushes the boxes table */
  lua_pushvalue(L, 3);           /* the approver */
  lua_pushnil(L);                /* no error yet */
  lua_pushvalue(L, slots + LF_SLOT_BOXES - LF_SLOT_FLOW);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  lf_local_executor_init(&lr.local, &lr.host);
  lf_lua_record_read(L, 4, &lr.record, &lr.host);
  if (lua_istable(L, 4)) /* the run's executor (luaflow.executors; nil: Local) */
    lua_getfield(L, 4, "executor");
  else
    lua_pushnil(L);
  lf_executor *executor = lf_lua_executor_new(L, lua_gettop(L), &lr.host, &lr.local.base);
  lua_pop(L, 1);
  int rc = executor ? lf_run_init(&lr.run, flow, &lr.host.base, executor) : -2;
  if (rc == 0 && lf_lua_record_begin(L, 4, &lr.record, &lr.run) != 0) rc = -2;
  if (rc == 0 && lua_istable(L, 2))
    for (size_t k = 1, n = lua_rawlen(L, 2); k <= n; k++) {
      lua_rawgeti(L, 2, (lua_Integer)k);
      lua_Integer i = lua_tointeger(L, -1);
      lua_pop(L, 1);
      if (i >= 1 && i <= lr.run.ntasks) lf_run_approve(&lr.run, (int)i - 1);
    }
  if (rc == 0) {
    lua_pushlightuserdata(L, &lr.run);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &current_run_key);
    lf_run_enter();
    rc = run_slices(L, &lr, slots);
    lf_run_leave();
    executor->ops->close(executor, &lr.run); /* its workers end here */
    lf_lua_record_end(L, 4, &lr.record, &lr.run, rc,
                      slots + LF_SLOT_BOXES - LF_SLOT_FLOW);
  } else if (executor) {
    executor->ops->close(executor, &lr.run);
  }
  lua_pushvalue(L, 5);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_run_key);
  lua_pushvalue(L, 6);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  lf_boxes_done(&lr.host.boxes);
  lf_run_release(&lr.run);
  if (rc == -2) return luaL_error(L, "not enough memory");
  if (rc == -1) { /* a cycle: nothing ran */
    lua_pushnil(L);
    lua_createtable(L, flow->ncycle, 0);
    for (int k = 0; k < flow->ncycle; k++) {
      lua_pushinteger(L, flow->cycle[k] + 1);
      lua_rawseti(L, -2, k + 1);
    }
    return 2;
  }
  if (rc != LUA_OK) return lua_error(L);
  return 1;
}

/* core.context_get(key): the run's facts where the code asking runs (a
 * task's handlers, trigger or body; the flow's handlers). */
static int context_get(lua_State *L) {
  lf_run *r = current_run(L);
  const char *key = luaL_checkstring(L, 1);
  if (!r) {
    if (!lf_worker_context(L, key)) lua_pushnil(L); /* a body in a worker */
  } else if (strcmp(key, "flow_name") == 0) {
    lua_pushstring(L, r->flow->obj.name);
  } else if (strcmp(key, "transition_number") == 0) {
    if (r->chain.active)
      lua_pushinteger(L, r->chain.number);
    else
      lua_pushnil(L);
  } else if (strcmp(key, "task_will_retry") == 0) {
    lua_pushboolean(L, lf_run_task_will_retry(r));
  } else if (r->current < 0) {
    lua_pushnil(L);
  } else {
    int i = r->current;
    lf_task_run *tr = &r->task[i];
    if (strcmp(key, "task_run_count") == 0) {
      lua_pushinteger(L, tr->attempt);
    } else if (strcmp(key, "task_loop_count") == 0) {
      lua_pushinteger(L, tr->loop);
    } else if (strcmp(key, "resume") == 0) {
      lua_pushboolean(L, (tr->flags & (LF_TASK_APPROVED | LF_TASK_RESUMED)) != 0);
    } else if (strcmp(key, "task_loop_result") == 0) {
      /* the box table lives in the run's frame: reached by key */
      lf_lua_host *h = (lf_lua_host *)r->host;
      lf_boxes boxes = h->boxes;
      lua_rawgetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
      boxes.table = lua_gettop(L);
      if (tr->loop_state)
        lf_boxes_push_result(L, &boxes, tr->loop_state);
      else
        lua_pushnil(L);
      h->boxes.n = boxes.n; /* a slot it took is the run's from now on */
    } else if (strcmp(key, "task_name") == 0) {
      lua_pushstring(L, lf_run_task(r, i)->obj.name);
    } else if (strcmp(key, "task_full_name") == 0) { /* "double[2]" for a child */
      lua_pushstring(L, lf_run_object(r, i)->name);
    } else if (strcmp(key, "map_index") == 0 && i >= r->ntasks) {
      lua_pushinteger(L, lf_map_index(r, i));
    } else {
      lua_pushnil(L);
    }
  }
  return 1;
}

static int running(lua_State *L) {
  lua_pushboolean(L, current_run(L) != NULL || lf_worker_busy(L));
  return 1;
}

/* core.install_signal_handlers(): SIGINT/SIGTERM cancel the run (the CLI). */
static int install_signal_handlers(lua_State *L) {
  lua_State *main;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  lf_lua_interrupt_install(main);
  return 0;
}

/* core.cancel_signal() -> the signal number that cancelled, or nil. */
static int cancel_signal(lua_State *L) {
  if (lf_cancel_signal)
    lua_pushinteger(L, lf_cancel_signal);
  else
    lua_pushnil(L);
  return 1;
}

void lf_open_run(lua_State *L) {
  static const luaL_Reg fns[] = {{"flow_run", flow_run},
                                 {"install_signal_handlers", install_signal_handlers},
                                 {"cancel_signal", cancel_signal},
                                 {"context_get", context_get},
                                 {"running", running},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
