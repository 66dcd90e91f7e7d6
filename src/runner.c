/* The runner: a flow run's task pipeline and scheduler (ready set plus timer
 * heap; it never spins), the flow's own states, and the run's result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "lua_interrupt.h"
#include "log.h"
#include "run.h"

static const char current_run_key = 0;
static const char current_boxes_key = 0; /* the running run's box table */

static lf_run *current_run(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_run_key);
  lf_run *r = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return r;
}

int lf_current_run_count(lua_State *L) {
  lf_run *r = current_run(L);
  return r && r->cur >= 0 ? r->attempt[r->cur] : 1;
}

int lf_current_loop_count(lua_State *L) {
  lf_run *r = current_run(L);
  return r && r->cur >= 0 ? r->loops[r->cur] : 1;
}

/* ---- the task pipeline ---- */

/* The INFO line of a failed attempt that will be retried (`failed` is the
 * failed state, task i is now Retrying). */
static void log_retry(lf_run *r, int i, const lf_state *failed) {
  lf_state *s = r->st[i];
  if (!lf_log_enabled(LF_LOG_INFO) || s->kind != LF_RETRYING || !s->has_start) return;
  char due[48], in[32];
  double wait = s->start_time - lf_now();
  if (wait < 0) wait = 0;
  if (wait < 60)
    snprintf(in, sizeof in, "%.3g s", wait);
  else
    snprintf(in, sizeof in, "%.0fm %.0fs", floor(wait / 60), fmod(wait, 60));
  lf_format_log_stamp(s->start_time, due, sizeof due);
  /* a plain error's text is enough */
  static const char plain[] = "Error during execution of task: ";
  const char *why = failed->message ? failed->message : lf_kind_name(failed->kind);
  if (strncmp(why, plain, sizeof plain - 1) == 0) why += sizeof plain - 1;
  lf_log(LF_LOG_INFO, "luaflow.TaskRunner",
         "Task '%s': attempt %d of %d failed: %s; retrying in %s (at %s)",
         lf_run_object(r, i)->name, r->attempt[i], r->flow->tasks[i]->max_retries + 1,
         why, in, due);
}

static void ready_push(lf_run *r, int rank) {
  if (lf_ready_push(&r->ready, rank) != 0) luaL_error(r->L, "not enough memory");
}

static void finish(lf_run *r, int i) {
  lf_state *s = r->st[i];
  if (lf_log_enabled(LF_LOG_INFO))
    lf_log(LF_LOG_INFO, "luaflow.TaskRunner",
           "Task '%s': Finished task run for task with final state: '%s'",
           lf_run_object(r, i)->name, lf_kind_name(s->kind));
  if (!LF_IS(s, LF_FINISHED)) return; /* waits: paused or pending */
  r->flags[i] |= F_FINISHED;
  for (int k = r->down_start[i]; k < r->down_start[i + 1]; k++) {
    int d = r->down_task[k];
    if (--r->npend[d] == 0) ready_push(r, r->rank[d]);
  }
}

/* Sets task i to `next` through the transition function. */
static int move(lf_run *r, int i, lf_state *next) {
  int end;
  lf_state *s = lf_transition(r, i, r->st[i], next, &end);
  lf_run_set_state(r, i, s);
  return end;
}

static void start_attempt(lf_run *r, int i);

/* After a task's last transition of this turn: a Scheduled-family state with a
 * start time (a retry) waits on the timer heap; anything else is finished
 * (or waits for approval, when Paused). */
static void settle(lf_run *r, int i, int end) {
  lf_state *s = r->st[i];
  if (!end && lf_kind_is_scheduled_family((lf_kind)s->kind) && s->has_start) {
    if (lf_heap_push(&r->timers, s->start_time, i, 0) != 0)
      luaL_error(r->L, "not enough memory");
    return;
  }
  finish(r, i);
}

/* A ready task: its upstreams are finished, or the Scheduled-family state it
 * waits in (a retry, a Resume, a Paused with a start time) is due. As in
 * Prefect, every run of a task checks its trigger; a run from Resume (or a
 * due Paused) has luaflow.context.resume set, which passes manual_only. */
static void begin(lf_run *r, int i) {
  lf_task *t = r->flow->tasks[i];
  lf_state *s = r->st[i];
  r->cur = i;
  if (!(r->flags[i] & F_STARTED)) {
    r->flags[i] |= F_STARTED;
    r->attempt[i] = 1;
    r->loops[i] = 1;
    if (lf_log_enabled(LF_LOG_INFO))
      lf_log(LF_LOG_INFO, "luaflow.TaskRunner", "Task '%s': Starting task run...",
             t->obj.name);
  } else if (s->kind == LF_RETRYING) {
    r->attempt[i] = s->run_count + 1;
  }
  if (s->kind == LF_RESUME || s->kind == LF_PAUSED)
    r->flags[i] |= F_RESUMED;
  else
    r->flags[i] &= (uint8_t)~F_RESUMED;
  lf_state *fail = lf_check_trigger(r, i);
  if (fail) { /* this run ends here; a Resume a handler made runs later */
    int end = move(r, i, fail);
    settle(r, i, end);
    return;
  }
  start_attempt(r, i);
}

/* The executor seam: a task run is submitted with its inputs and its outcome
 * comes back as an event (on_outcome). This inline executor runs the body at
 * once; worker executors will deliver the same events later. */
static void executor_submit(lf_run *r, int i) {
  lf_outcome done = {i, 0, NULL};
  done.state = lf_run_body(r, i, &done.end); /* queued only once it exists */
  if (r->ndone == r->cap_done) {             /* grow the ring, oldest first */
    int cap = r->cap_done;
    lf_outcome *grown = malloc((size_t)cap * 2 * sizeof *grown);
    if (!grown) {
      lf_state_release(done.state);
      luaL_error(r->L, "not enough memory");
    }
    for (int k = 0; k < r->ndone; k++)
      grown[k] = r->done[(r->done_head + k) % cap];
    free(r->done);
    r->done = grown;
    r->done_head = 0;
    r->cap_done = cap * 2;
  }
  r->done[(r->done_head + r->ndone++) % r->cap_done] = done;
}

static void start_attempt(lf_run *r, int i) {
  int end = move(r, i, lf_state_ref(r->running));
  if (end || r->st[i]->kind != LF_RUNNING) { /* the body runs only from Running */
    settle(r, i, end);
    return;
  }
  executor_submit(r, i);
}

static void on_outcome(lf_run *r, lf_outcome o) {
  lua_State *L = r->L;
  int i = o.task;
  lf_task *t = r->flow->tasks[i];
  r->cur = i;
  int end = move(r, i, o.state) || o.end;
  lf_state *s = r->st[i];
  if (!end && LF_IS(s, LF_FAILED) && r->attempt[i] <= t->max_retries) {
    char msg[96];
    snprintf(msg, sizeof msg, "Retrying Task (after attempt %d of %d)", r->attempt[i],
             t->max_retries + 1);
    lf_state *retry = lf_state_new(LF_RETRYING, msg);
    if (!retry) luaL_error(L, "not enough memory");
    retry->has_start = 1;
    retry->start_time = lf_now() + t->retry_delay;
    retry->run_count = r->attempt[i];
    lf_state *failed = lf_state_ref(s);
    end = move(r, i, retry);
    log_retry(r, i, failed);
    lf_state_release(failed);
  } else if (!end && s->kind == LF_LOOPED) {
    /* LOOP: run again with the loop's result in the context; the Pending
     * between iterations is not a transition of its own (as in Prefect). */
    lf_state_release(r->loop_st[i]);
    r->loop_st[i] = lf_state_ref(s);
    r->loops[i]++;
    r->attempt[i] = 1; /* each iteration counts its own attempts (as Prefect) */
    char msg[64];
    snprintf(msg, sizeof msg, "Looping task (on loop index %d)", r->loops[i] - 1);
    lf_state *p = lf_state_new(LF_PENDING, msg);
    if (!p) luaL_error(L, "not enough memory");
    lf_run_set_state(r, i, p);
    start_attempt(r, i);
    return;
  }
  settle(r, i, end);
}

/* ---- the flow ---- */

static int is_terminal(lf_run *r, int i) {
  return r->down_start[i] == r->down_start[i + 1];
}

static lf_state *final_flow_state(lf_run *r) {
  lf_flow *f = r->flow;
  for (int i = 0; i < r->n; i++)
    if (is_terminal(r, i) && !LF_IS(r->st[i], LF_FINISHED)) {
      lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
             "Flow run RUNNING: terminal tasks are incomplete.");
      return NULL;
    }
  int failed = 0, all_ok = 1;
  int nrefs = f->nrefs ? f->nrefs : r->n;
  for (int k = 0; k < nrefs; k++) { /* the reference tasks, or the terminal ones */
    int i = f->nrefs ? f->refs[k] : k;
    if (i >= r->n || (!f->nrefs && !is_terminal(r, i))) continue;
    if (LF_IS(r->st[i], LF_FAILED)) failed = 1;
    if (!LF_IS(r->st[i], LF_SUCCESS)) all_ok = 0;
  }
  if (failed) {
    lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
           "Flow run FAILED: some reference tasks failed.");
    return lf_run_state(r->L, LF_FAILED, "Some reference tasks failed.");
  }
  if (all_ok) {
    lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
           "Flow run SUCCESS: all reference tasks succeeded");
    return lf_run_state(r->L, LF_SUCCESS, "All reference tasks succeeded.");
  }
  lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
         "Flow run SUCCESS: no reference tasks failed");
  return lf_run_state(r->L, LF_SUCCESS, "No reference tasks failed.");
}

/* Pushes the reference tasks' states (default: the terminal tasks, in
 * topological order) as a list that also maps every task to its state (see
 * luaflow.ReferenceStates in graph.lua). */
static void push_reference_states(lf_run *r) {
  lua_State *L = r->L;
  lf_flow *f = r->flow;
  if (!r->not_run) r->not_run = lf_run_state(L, LF_PENDING, "Task not run.");
  lua_getfield(L, LUA_REGISTRYINDEX, "luaflow.ReferenceStates");
  lua_newtable(L);
  for (int k = 0, n = 0; k < (f->nrefs ? f->nrefs : r->n); k++) {
    int i = f->nrefs ? f->refs[k] : r->order[k];
    if (f->nrefs || is_terminal(r, i)) {
      lf_boxes_push(L, &r->boxes, r->st[i]);
      lua_rawseti(L, -2, ++n);
    }
  }
  lua_createtable(L, 0, r->n);
  for (int i = 0; i < r->n; i++) {
    lua_rawgeti(L, r->tasks_t, i + 1);
    lf_boxes_push(L, &r->boxes, (r->flags[i] & F_STARTED) ? r->st[i] : r->not_run);
    lua_rawset(L, -3);
  }
  lua_call(L, 2, 1);
}

/* Flow{terminal_state_handler = fn}, as Prefect's: fn(flow, state, reference
 * states) once the reference tasks have decided `final` (NULL: the
 * flow stays Running). A State it returns replaces the state; an error or a
 * signal is the step's outcome ("Unexpected error: ..." for a plain error).
 * Returns the state the flow moves to (consuming `final`), or NULL. */
static lf_state *terminal_state_handler(lf_run *r, lf_state *final) {
  lua_State *L = r->L;
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "luaflow.TerminalStateHandlers");
  if (!lua_istable(L, -1)) {
    lua_settop(L, top);
    return final;
  }
  lua_pushvalue(L, r->flow_ud);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_settop(L, top);
    return final;
  }
  lf_state *given = final ? final : r->fs, *s = NULL;
  lua_pushvalue(L, r->flow_ud);
  lf_boxes_push(L, &r->boxes, given);
  push_reference_states(r);
  int rc = lua_pcall(L, 3, 1, 0);
  if (rc == LUA_OK && lua_toboolean(L, -1) && (s = lf_test_state(L, -1)) != NULL) {
    lf_state_ref(s);
    lf_run_keep_box(r); /* the replacement keeps its result for the run */
  } else if (rc != LUA_OK || lua_toboolean(L, -1)) {
    if (rc == LUA_OK)
      lua_pushfstring(L, "terminal_state_handler returned a %s", luaL_typename(L, -1));
    lf_signal sig;
    s = lf_error_to_state(L, -1, LF_FAILED, "Unexpected error: ", &sig);
    if (sig == LF_SIG_NONE) lf_log(LF_LOG_ERROR, "luaflow.FlowRunner", "%s", s->message);
    lf_run_keep_box(r);
    lf_state_ref(s);
  }
  lua_settop(L, top);
  if (!s || s == given) { /* kept: the very same state */
    lf_state_release(s);
    return final;
  }
  lf_state_release(final);
  if (s == r->fs) { /* back to the flow's own Running state: no change */
    lf_state_release(s);
    return NULL;
  }
  return s;
}

/* Paused -> Resume("Approval given to resume.") through the handlers. */
static void resume_task(lf_run *r, int i) {
  r->cur = i;
  r->flags[i] &= ~(F_RESUME | F_ASKED);
  lf_state *next = lf_run_state(r->L, LF_RESUME, "Approval given to resume.");
  next->has_start = 1;
  next->start_time = lf_now();
  int end = move(r, i, next);
  if (!end && r->st[i]->kind == LF_RESUME)
    ready_push(r, r->rank[i]);
  else
    settle(r, i, end);
}

/* With nothing else to do, paused tasks approved in advance resume, and the
 * approver (the CLI's prompt), when there is one, is asked about the others
 * once per pause. Returns how many resumed. */
static int approve_paused(lf_run *r) {
  lua_State *L = r->L;
  int resumed = 0;
  for (int k = 0; k < r->n; k++) {
    int i = r->order[k];
    if (r->st[i]->kind != LF_PAUSED || r->st[i]->has_start || (r->flags[i] & F_ASKED))
      continue;
    int approved = (r->flags[i] & F_RESUME) != 0;
    if (!approved && r->approve_idx) {
      r->flags[i] |= F_ASKED;
      lua_pushvalue(L, r->approve_idx);
      lf_run_push_object(r, i);
      approved = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    if (approved) {
      resume_task(r, i);
      resumed++;
    }
  }
  return resumed;
}

/* Outcomes first, then ready tasks in topological order, then timers; with
 * nothing ready it sleeps until the next timer is due. */
static void schedule(lf_run *r) {
  for (;;) {
    if (r->ndone > 0) {
      lf_outcome o = r->done[r->done_head];
      r->done_head = (r->done_head + 1) % r->cap_done;
      r->ndone--;
      on_outcome(r, o);
      continue;
    }
    if (lf_cancel_signal) break; /* nothing new starts once cancelled */
    if (r->ready.count > 0) {
      begin(r, r->order[lf_ready_pop(&r->ready)]);
      continue;
    }
    if (r->timers.count == 0) {
      if (approve_paused(r)) continue;
      break;
    }
    double wait = r->timers.entry[0].key - lf_now();
    double left = lf_watch_time_left(); /* a nested run: the enclosing task's timeout */
    if (left == 0) luaL_error(r->L, "Execution timed out.");
    if (left > 0 && left < wait) wait = left;
    if (wait > 0) lf_sleep(wait); /* nothing is ready: sleep until the next timer */
    double now = lf_now();
    while (r->timers.count > 0 && r->timers.entry[0].key <= now)
      ready_push(r, r->rank[lf_heap_pop(&r->timers).value]);
  }
}

/* Lays the run's arrays out in one block owned by a userdata on the stack, so
 * an error unwinding the run frees them. */
/* Lays the run's arrays out in one C block (freed by flow_run, whatever
 * happens in the protected part of the run). */
static int layout(lf_run *r) {
  int n = r->n, e = r->flow->nedges;
  size_t ints = (size_t)n * 6 + 2 * ((size_t)n + 1) + 3 * (size_t)e + 4;
  size_t size = ints * sizeof(int) + (size_t)n * 3 * sizeof(lf_state *) + (size_t)n + 64;
  char *p = calloc(1, size);
  if (!p) return -1;
  r->block = p;
  r->st = (lf_state **)p;
  p += (size_t)n * sizeof(lf_state *);
  r->ups = (lf_state **)p;
  p += (size_t)n * sizeof(lf_state *);
  r->loop_st = (lf_state **)p;
  p += (size_t)n * sizeof(lf_state *);
  int *ip = (int *)p;
  r->order = ip, ip += n;
  r->rank = ip, ip += n;
  r->npend = ip, ip += n;
  r->attempt = ip, ip += n;
  r->loops = ip, ip += n;
  r->seen = ip, ip += n;
  r->up_start = ip, ip += n + 1;
  r->down_start = ip, ip += n + 1;
  r->up_task = ip, ip += e;
  r->up_key = ip, ip += e;
  r->down_task = ip, ip += e;
  r->flags = (uint8_t *)ip;
  r->cap_done = 16;
  r->done = malloc((size_t)r->cap_done * sizeof *r->done);
  return r->done && lf_ready_init(&r->ready, n) == 0 ? 0 : -1;
}

static void build_adjacency(lf_run *r) {
  lf_flow *f = r->flow;
  int n = r->n;
  for (int k = 0; k < f->nedges; k++) {
    r->up_start[f->edges[k].down + 1]++;
    r->down_start[f->edges[k].up + 1]++;
  }
  for (int i = 0; i < n; i++) {
    r->up_start[i + 1] += r->up_start[i];
    r->down_start[i + 1] += r->down_start[i];
  }
  int *ufill = r->npend, *dfill = r->attempt; /* scratch, reset below */
  for (int i = 0; i < n; i++)
    ufill[i] = r->up_start[i], dfill[i] = r->down_start[i];
  for (int k = 0; k < f->nedges; k++) {
    lf_edge *ed = &f->edges[k];
    r->up_task[ufill[ed->down]] = ed->up;
    r->up_key[ufill[ed->down]++] = ed->key;
    r->down_task[dfill[ed->up]++] = ed->down;
  }
  for (int i = 0; i < n; i++) {
    r->npend[i] = r->up_start[i + 1] - r->up_start[i];
    r->attempt[i] = 0;
  }
}

/* The run itself, in protected mode: run_protected(r, flow, resume, approve)
 * -> the flow's final state, whose result maps every task to its final
 * state. Its Lua values live in this frame. */
static int run_protected(lua_State *L) {
  lf_run *r = lua_touserdata(L, 1);
  r->flow_ud = 2;
  if (!lua_isnil(L, 4)) r->approve_idx = 4;
  lua_settop(L, 4);
  lua_getiuservalue(L, 2, 1);
  lua_getfield(L, -1, "tasks");
  r->tasks_t = lua_gettop(L);
  lua_pushnil(L);
  r->spec_slot = lua_gettop(L);
  lf_boxes_init(L, &r->boxes);
  lua_pushvalue(L, r->boxes.table);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  for (int k = 0; k < r->n; k++)
    r->rank[r->order[k]] = k;
  if (lua_istable(L, 3))
    for (lua_Integer k = 1, n = luaL_len(L, 3); k <= n; k++) {
      lua_rawgeti(L, 3, k);
      lua_Integer i = lua_tointeger(L, -1);
      if (i >= 1 && i <= r->n) r->flags[i - 1] |= F_RESUME;
      lua_pop(L, 1);
    }
  build_adjacency(r);
  for (int i = 0; i < r->n; i++)
    r->st[i] = lf_state_ref(r->pending);

  lf_log(LF_LOG_INFO, "luaflow.FlowRunner", "Beginning Flow run for '%s'",
         r->flow->obj.name);
  r->scheduled = lf_run_state(L, LF_SCHEDULED, NULL);
  r->scheduled->has_start = 1;
  r->scheduled->start_time = lf_now();
  int end;
  r->fs = lf_transition(r, -1, r->scheduled, lf_run_state(L, LF_RUNNING, "Running flow."),
                        &end);
  if (!end && r->fs->kind == LF_RUNNING) {
    for (int i = 0; i < r->n; i++)
      if (r->npend[i] == 0) ready_push(r, r->rank[i]);
    schedule(r);
    r->cur = -1;
    lf_state *final;
    if (lf_cancel_signal) {
      lf_cancel_acknowledge(); /* the flow's handlers carry it from here */
      lf_log(LF_LOG_WARNING, "luaflow.FlowRunner", "Flow run was cancelled.");
      final = lf_run_state(L, LF_CANCELLED, "Flow run was cancelled.");
    } else {
      final = terminal_state_handler(r, final_flow_state(r));
    }
    if (final) {
      lf_state *s = lf_transition(r, -1, r->fs, final, &end);
      lf_state_release(r->fs);
      r->fs = s;
    }
  }

  /* Results: boxes keep them from here on, owned by the GC. The flow state
   * gets a box of its own: a state a handler returned keeps its own result. */
  lf_box_new(L, lf_state_ref(r->fs), 0);
  int fbox = lua_gettop(L);
  lua_createtable(L, r->n, 0); /* states by task index */
  for (int i = 0; i < r->n; i++) {
    if (!(r->flags[i] & F_STARTED)) {
      if (!r->not_run) r->not_run = lf_run_state(L, LF_PENDING, "Task not run.");
      lf_boxes_push(L, &r->boxes, r->not_run);
    } else {
      lf_boxes_push(L, &r->boxes, r->st[i]);
    }
    lua_rawseti(L, -2, i + 1);
  }
  /* the flow state's result maps every task to its state (as Prefect sets it) */
  lf_result_new(L, r->n, r->order, r->attempt, -1, r->flow_ud);
  lua_setiuservalue(L, fbox, 1);
  r->fs->has_result = 1;
  lua_settop(L, fbox);
  return 1;
}

int lf_is_run_frame(lua_State *L, lua_Debug *ar) {
  lua_getinfo(L, "f", ar);
  int is_run = lua_tocfunction(L, -1) == run_protected;
  lua_pop(L, 1);
  return is_run;
}

/* Releases every state the run still holds and frees its arrays. */
static void release_run(lf_run *r) {
  lf_boxes_done(&r->boxes);
  if (r->st)
    for (int i = 0; i < r->n; i++) {
      lf_state_release(r->st[i]);
      lf_state_release(r->loop_st[i]);
    }
  for (int k = 0; k < r->ndone; k++)
    lf_state_release(r->done[(r->done_head + k) % r->cap_done].state);
  lf_state *held[] = {r->pending,   r->running, r->success,
                      r->scheduled, r->fs,      r->not_run};
  for (size_t k = 0; k < sizeof held / sizeof held[0]; k++)
    lf_state_release(held[k]);
  lf_heap_free(&r->timers);
  lf_ready_free(&r->ready);
  free(r->done);
  free(r->block);
}

/* core.flow_run(flow, resume_indices, approve) -> the flow's final state,
 * whose result maps every task to its final state; or nil and the indices of
 * the tasks on a cycle (nothing ran). Whatever happens inside the run (even a
 * Lua error that escapes it), the run's C memory is released and the registry
 * keys of the enclosing run are put back. */
static int flow_run(lua_State *L) {
  lf_run run = {0}, *r = &run;
  r->L = L;
  r->flow = lf_check_flow(L, 1);
  lua_settop(L, 3);
  r->n = r->flow->ntasks;
  r->cur = -1;
  r->pending = lf_state_static(LF_PENDING, NULL);
  r->running = lf_state_static(LF_RUNNING, "Starting task run.");
  r->success = lf_state_static(LF_SUCCESS, "Task run succeeded.");
  if (layout(r) != 0 || !r->pending || !r->running || !r->success) {
    release_run(r);
    return luaL_error(L, "not enough memory");
  }
  int rc = lf_flow_order(r->flow, r->order);
  if (rc != 0) {
    lf_flow *f = r->flow;
    release_run(r);
    if (rc == -2) return luaL_error(L, "not enough memory");
    lua_pushnil(L);
    lua_createtable(L, f->ncycle, 0);
    for (int k = 0; k < f->ncycle; k++) {
      lua_pushinteger(L, f->cycle[k] + 1);
      lua_rawseti(L, -2, k + 1);
    }
    return 2;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_run_key);
  int outer = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  lua_pushlightuserdata(L, r);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_run_key);
  lf_run_enter();
  lua_pushcfunction(L, run_protected);
  lua_pushlightuserdata(L, r);
  for (int k = 1; k <= 3; k++)
    lua_pushvalue(L, k);
  rc = lua_pcall(L, 4, 1, 0);
  lf_run_leave();
  lua_pushvalue(L, outer);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_run_key);
  lua_pushvalue(L, outer + 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
  release_run(r);
  if (rc != LUA_OK) return lua_error(L);
  return 1;
}

/* core.context_get(key): the current task's context values. */
static int context_get(lua_State *L) {
  lf_run *r = current_run(L);
  const char *key = luaL_checkstring(L, 1);
  if (!r || r->cur < 0) {
    if (strcmp(key, "task_run_count") == 0 || strcmp(key, "task_loop_count") == 0)
      lua_pushnil(L);
    else if (r && strcmp(key, "flow_name") == 0)
      lua_pushstring(L, r->flow->obj.name);
    else
      lua_pushnil(L);
    return 1;
  }
  int i = r->cur;
  if (strcmp(key, "task_run_count") == 0)
    lua_pushinteger(L, r->attempt[i]);
  else if (strcmp(key, "task_loop_count") == 0)
    lua_pushinteger(L, r->loops[i]);
  else if (strcmp(key, "resume") == 0)
    lua_pushboolean(L, (r->flags[i] & (F_RESUME | F_RESUMED)) != 0);
  else if (strcmp(key, "task_loop_result") == 0) {
    lf_boxes boxes = r->boxes; /* its table lives in the run's frame: reach it by key */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &current_boxes_key);
    boxes.table = lua_gettop(L);
    if (r->loop_st[i])
      lf_boxes_push_result(L, &boxes, r->loop_st[i]);
    else
      lua_pushnil(L);
    r->boxes.n = boxes.n; /* a slot it took is the run's from now on */
  } else if (strcmp(key, "task_name") == 0)
    lua_pushstring(L, lf_run_object(r, i)->name);
  else if (strcmp(key, "flow_name") == 0)
    lua_pushstring(L, r->flow->obj.name);
  else
    lua_pushnil(L);
  return 1;
}

static int running(lua_State *L) {
  lua_pushboolean(L, current_run(L) != NULL);
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

void lf_open_runner(lua_State *L) {
  static const luaL_Reg fns[] = {{"flow_run", flow_run},
                                 {"install_signal_handlers", install_signal_handlers},
                                 {"cancel_signal", cancel_signal},
                                 {"context_get", context_get},
                                 {"running", running},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
