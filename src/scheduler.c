/* The scheduler: a flow run's task pipeline (triggers, bodies through the
 * executor, retries, loops, pauses and their approval, cancellation), its
 * ready set and timers (with nothing ready it waits for the next timer or
 * outcome, it never spins), and the flow's own states. Lua-free: handlers and
 * triggers written in Lua are the host's (host.h), bodies the executor's
 * (executor.h).
 *
 * Every step that moves a task goes through move(), which names the step
 * that follows the transition (lf_then) in the run: when a Lua handler
 * raises, the host finishes the transition with the failure state and
 * moved() goes on exactly as it would have. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "deadline.h"
#include "executor.h"
#include "host.h"
#include "interrupt.h"
#include "log.h"
#include "map.h"
#include "retry_policy.h"
#include "run.h"
#include "run_journal.h"

/* Where lf_run_continue is: each phase's first step names the next one. */
enum { PHASE_NEW, PHASE_STARTING, PHASE_TASKS, PHASE_FINAL, PHASE_ENDING, PHASE_OVER };

void lf_run_abort(lf_run *r, const char *message) {
  r->host->ops->abort(r->host, r, message);
  abort(); /* a host's abort does not return */
}

static lf_state *engine_state(lf_run *r, lf_kind k, const char *static_msg) {
  lf_state *s = lf_state_static(k, static_msg);
  if (!s) lf_run_abort(r, "not enough memory");
  return s;
}

static void set_state(lf_run *r, int i, lf_state *s) {
  lf_state **slot = i < 0 ? &r->flow_state : &r->task[i].state;
  lf_state_release(*slot);
  *slot = s;
}

static void ready_push(lf_run *r, int i) {
  if (i >= r->ntasks) { /* a mapped task's child */
    lf_map_ready_push(r, i);
    return;
  }
  if (lf_ready_push(&r->ready, r->task[i].rank) != 0)
    lf_run_abort(r, "not enough memory");
}

/* ---- the task pipeline ---- */

static void move(lf_run *r, int i, lf_state *next, lf_then then);

/* ---- the retry policy (retry_policy.h) ---- */

static lf_retry_policy policy_of(const lf_task *t) {
  lf_retry_policy p = {t->max_retries, t->retry_delay, 1, 0, 0};
  if (t->policy) {
    p.backoff = t->policy->retry_backoff;
    p.max_delay = t->policy->max_retry_delay;
    p.jitter = t->policy->retry_jitter;
  }
  return p;
}

static int has_retry_on(const lf_task *t) {
  return t->policy && t->policy->has_retry_on;
}

/* Whether task i's attempt ending in s is retried, as far as the engine can
 * tell without calling retry_on: a verdict asked about s (or, for a state a
 * handler put in its place, the one asked about the outcome) stands. */
static lf_retry_verdict known_verdict(const lf_run *r, int i, const lf_state *s) {
  const lf_task *t = lf_run_task(r, i);
  lf_retry_policy p = policy_of(t);
  lf_retry_verdict v = lf_retry_check(&p, r->task[i].attempt, s);
  if (v == LF_RETRY_YES && has_retry_on(t) && r->retry_asked.state)
    v = (lf_retry_verdict)r->retry_asked.verdict;
  return v;
}

/* The verdict on task i's attempt ending in s, retry_on asked (once per
 * state) when the policy would retry it. */
static lf_retry_verdict ask_retry(lf_run *r, int i, lf_state *s) {
  const lf_task *t = lf_run_task(r, i);
  if (r->retry_asked.state == s) return (lf_retry_verdict)r->retry_asked.verdict;
  lf_retry_policy p = policy_of(t);
  lf_retry_verdict v = lf_retry_check(&p, r->task[i].attempt, s);
  if (v != LF_RETRY_YES || !has_retry_on(t)) return v;
  int current = r->current;
  r->current = i; /* luaflow.context speaks of the task */
  int answer = r->host->ops->retry_on(r->host, r, i, s);
  r->current = current;
  v = answer > 0 ? LF_RETRY_YES : answer == 0 ? LF_RETRY_REJECTED : LF_RETRY_ON_ERROR;
  lf_state_release(r->retry_asked.state);
  r->retry_asked.state = lf_state_ref(s);
  r->retry_asked.verdict = (int)v;
  return v;
}

static inline void forget_retry_verdict(lf_run *r) {
  if (!r->retry_asked.state) return;
  lf_state_release(r->retry_asked.state);
  r->retry_asked.state = NULL;
}

int lf_run_task_will_retry(const lf_run *r) {
  const lf_chain *c = &r->chain;
  return c->active && c->object >= 0 && c->then == LF_THEN_OUTCOME && !c->end &&
         !r->outcome_end && known_verdict(r, c->object, c->next) == LF_RETRY_YES;
}

/* The INFO line of task i's failed attempt (`failed` is its failed state):
 * "Task 'x': attempt 1 of 3 failed: <why>; <then>". */
static void log_attempt_failed(lf_run *r, int i, const lf_state *failed,
                               const char *then) {
  static const char plain[] = "Error during execution of task: "; /* its text is enough */
  const char *why = failed->message ? failed->message : lf_kind_name(failed->kind);
  if (strncmp(why, plain, sizeof plain - 1) == 0) why += sizeof plain - 1;
  lf_log(LF_LOG_INFO, "luaflow.TaskRunner", "Task '%s': attempt %d of %d failed: %s; %s",
         lf_run_object(r, i)->name, r->task[i].attempt,
         lf_run_task(r, i)->max_retries + 1, why, then);
}

/* A failed attempt that could have been retried and is not (retry = false,
 * retry_on): its line says why. */
static void log_not_retried(lf_run *r, int i, const lf_state *failed,
                            lf_retry_verdict v) {
  if (!lf_log_enabled(LF_LOG_INFO)) return;
  char then[96];
  lf_format(then, sizeof then, "not retrying: %s", lf_retry_why_not(v));
  log_attempt_failed(r, i, failed, then);
}

/* A failed attempt that will be retried (task i is now Retrying): its line
 * says the delay. */
static void log_retry(lf_run *r, int i, const lf_state *failed) {
  lf_state *s = r->task[i].state;
  if (!lf_log_enabled(LF_LOG_INFO) || s->kind != LF_RETRYING || !s->has_start) return;
  char due[48], in[32], then[128];
  double wait = s->start_time == r->retry_asked.due ? r->retry_asked.delay
                                                    : s->start_time - lf_now();
  if (wait < 0) wait = 0;
  if (wait < 60)
    snprintf(in, sizeof in, "%.3g s", wait);
  else
    snprintf(in, sizeof in, "%.0fm %.0fs", floor(wait / 60), fmod(wait, 60));
  lf_format_log_stamp(s->start_time, due, sizeof due);
  lf_format(then, sizeof then, "retrying in %s (at %s)", in, due);
  log_attempt_failed(r, i, failed, then);
}

static void log_finished(lf_run *r, int i) {
  if (lf_log_enabled(LF_LOG_INFO))
    lf_log(LF_LOG_INFO, "luaflow.TaskRunner",
           "Task '%s': Finished task run for task with final state: '%s'",
           lf_run_object(r, i)->name, lf_kind_name(r->task[i].state->kind));
}

/* Task run i has settled: a Finished state releases its downstream tasks
 * (a child's, once its parent's last child has finished). */
static void finish(lf_run *r, int i) {
  log_finished(r, i);
  if (!LF_IS(r->task[i].state, LF_FINISHED)) return; /* waits: paused or pending */
  if (i >= r->ntasks) { /* a child: its parent is finished with its last child */
    if (r->journal) lf_journal_task_done(r, i);
    i = lf_map_child_finished(r, i);
    if (i < 0) return;
  }
  r->task[i].flags |= LF_TASK_FINISHED;
  if (r->journal) lf_journal_task_done(r, i);
  for (int k = r->down.start[i]; k < r->down.start[i + 1]; k++) {
    int d = r->down.task[k]; /* a task of the flow, never a child */
    if (--r->task[d].pending_upstreams == 0 &&
        lf_ready_push(&r->ready, r->task[d].rank) != 0)
      lf_run_abort(r, "not enough memory");
  }
}

/* After a task's last transition of this turn: a Scheduled-family state with a
 * start time (a retry) waits on the timer heap; anything else is finished
 * (or waits for approval, when Paused). */
static void settle(lf_run *r, int i, int end) {
  lf_state *s = r->task[i].state;
  if (!end && s->has_start && lf_kind_is_scheduled_family((lf_kind)s->kind)) {
    if (lf_heap_push(&r->timers, s->start_time, i, 0) != 0)
      lf_run_abort(r, "not enough memory");
    return;
  }
  finish(r, i);
}

/* Gathers the states of task i's distinct upstream tasks, in edge order. */
static int gather_upstreams(lf_run *r, int i) {
  int n = 0;
  for (int k = r->up.start[i]; k < r->up.start[i + 1]; k++) {
    lf_task_run *u = &r->task[r->up.task[k]];
    if (u->flags & LF_TASK_SEEN) continue; /* one entry per task, however many edges */
    u->flags |= LF_TASK_SEEN;
    r->upstream_states[n++] = u->state;
  }
  for (int k = r->up.start[i]; k < r->up.start[i + 1]; k++)
    r->task[r->up.task[k]].flags &= (uint8_t)~LF_TASK_SEEN;
  return n;
}

/* Skipped when task run i skips on a skipped upstream (its nups states
 * gathered), else NULL. */
static lf_state *upstream_skipped(lf_run *r, int i, int nups) {
  if (lf_run_task(r, i)->skip_on_upstream_skip)
    for (int j = 0; j < nups; j++)
      if (LF_IS(r->upstream_states[j], LF_SKIPPED))
        return engine_state(r, LF_SKIPPED,
                            "Upstream task was skipped; if this was not the intended "
                            "behavior, consider setting `skip_on_upstream_skip = false` "
                            "for this task.");
  return NULL;
}

static int all_succeeded(lf_state *const *states, int n) {
  for (int j = 0; j < n; j++)
    if (!LF_IS(states[j], LF_SUCCESS)) return 0;
  return 1;
}

/* A skipped upstream skips task i, then its trigger decides: NULL when it
 * runs, else the state it fails with. */
static lf_state *check_trigger(lf_run *r, int i) {
  lf_task *t = lf_run_task(r, i);
  int nups = r->map ? lf_map_gather(r, i) : gather_upstreams(r, i);
  if (nups > 0) {
    lf_state *skipped = upstream_skipped(r, i, nups);
    if (skipped) return skipped;
  }
  if (r->task[i].traits & LF_TRAIT_CACHE) { /* a valid cached result: Pending -> Cached */
    lf_state *cached = r->host->ops->cache_lookup(r->host, r, i);
    if (cached) return cached;
  }
  /* the default trigger passing: no call */
  if (t->trigger == LF_TRIGGER_ALL_SUCCESSFUL && all_succeeded(r->upstream_states, nups))
    return NULL;
  if (t->trigger == LF_TRIGGER_LUA) {
    r->busy = LF_BUSY_TRIGGER;
    r->current = i;
    lf_state *s = r->host->ops->trigger(r->host, r, i, r->upstream_states, nups);
    r->busy = LF_BUSY_NONE;
    return s;
  }
  const lf_task_policy *p = t->policy; /* some_successful's bounds are there */
  lf_trigger_result res = lf_trigger_check(
      t->trigger, r->upstream_states, nups, p ? p->at_least : -1, p ? p->at_most : -1,
      r->task[i].flags & (LF_TASK_APPROVED | LF_TASK_RESUMED));
  if (res.pass) return NULL;
  lf_state *s = r->host->ops->signal_state(r->host, r, res.kind, res.message);
  if (!s) lf_run_abort(r, "not enough memory");
  return s;
}

void lf_run_trigger_failed(lf_run *r, lf_state *state) {
  move(r, r->current, state, LF_THEN_SETTLE); /* this run of the task ends here */
}

static void start_attempt(lf_run *r, int i) {
  move(r, i, lf_state_ref(r->shared.running), LF_THEN_START);
}

/* A mapped task goes Pending -> Mapped (its trigger is not checked: each
 * child checks it), or Skipped, or Failed when it cannot map; its children
 * follow (map.c). */
static void begin_mapped(lf_run *r, int i) {
  if (!r->map && lf_map_init(r) != 0) lf_run_abort(r, "not enough memory");
  lf_state *next = upstream_skipped(r, i, lf_map_gather(r, i));
  move(r, i, next ? next : lf_map_begin(r, i), LF_THEN_MAPPED);
}

/* Task run i's traits (LF_TRAIT_*), read from its task when it first
 * begins: the task's struct is read then anyway. */
static uint8_t traits_of(const lf_run *r, int i) {
  const lf_task *t = lf_run_task(r, i);
  const lf_task_policy *p = t->policy;
  uint8_t traits = t->mapped && i < r->ntasks ? LF_TRAIT_MAPPED : 0;
  if (p) /* the rarer options */
    traits |= (p->deadline > 0 ? LF_TRAIT_DEADLINE : 0) |
              (p->cache_for > 0 ? LF_TRAIT_CACHE : 0);
  return traits;
}

/* A ready task: its upstreams are finished, or the Scheduled-family state it
 * waits in (a retry, a Resume, a Paused with a start time) is due. As in
 * Prefect, every run of a task checks its trigger; a run from Resume (or a
 * due Paused) has luaflow.context.resume set, which passes manual_only. */
static void begin(lf_run *r, int i) {
  lf_task_run *tr = &r->task[i];
  lf_state *s = tr->state;
  if (!(tr->flags & LF_TASK_STARTED)) {
    tr->flags |= LF_TASK_STARTED;
    tr->attempt = 1;
    tr->loop = 1;
    tr->traits = traits_of(r, i);
    if (lf_log_enabled(LF_LOG_INFO))
      lf_log(LF_LOG_INFO, "luaflow.TaskRunner", "Task '%s': Starting task run...",
             lf_run_object(r, i)->name);
  } else if (s->kind == LF_RETRYING) {
    tr->attempt = s->run_count + 1;
  }
  if (s->kind == LF_RESUME || s->kind == LF_PAUSED)
    tr->flags |= LF_TASK_RESUMED;
  else
    tr->flags &= (uint8_t)~LF_TASK_RESUMED;
  if (tr->traits & LF_TRAIT_MAPPED) {
    begin_mapped(r, i);
    return;
  }
  lf_state *fail = check_trigger(r, i);
  if (fail) /* this run ends here; a Resume a handler made runs later */
    move(r, i, fail, LF_THEN_SETTLE);
  else
    start_attempt(r, i);
}

/* Task i is Running: its body goes to the executor (a task without a
 * function succeeds at once). */
static void submit(lf_run *r, int i) {
  r->bodies_running++;
  if (!lf_run_task(r, i)->has_fn)
    lf_run_deliver(r, i, lf_state_ref(r->shared.success), 0);
  else
    r->executor->ops->submit(r->executor, r, i);
}

void lf_run_deliver(lf_run *r, int i, lf_state *state, int end) {
  r->bodies_running--;
  if (r->outcomes.count == r->outcomes.cap) { /* grow the ring, oldest first */
    int cap = r->outcomes.cap ? r->outcomes.cap * 2 : 16;
    lf_outcome *grown = malloc((size_t)cap * sizeof *grown);
    if (!grown) {
      lf_state_release(state);
      lf_run_abort(r, "not enough memory");
    }
    for (int k = 0; k < r->outcomes.count; k++)
      grown[k] = r->outcomes.ring[(r->outcomes.head + k) % r->outcomes.cap];
    free(r->outcomes.ring);
    r->outcomes.ring = grown;
    r->outcomes.head = 0;
    r->outcomes.cap = cap;
  }
  lf_outcome o = {i, end, state};
  r->outcomes.ring[(r->outcomes.head + r->outcomes.count++) % r->outcomes.cap] = o;
}

static void on_outcome(lf_run *r, lf_outcome o) {
  r->outcome_end = o.end;
  forget_retry_verdict(r);
  if (!o.end && LF_IS(o.state, LF_FAILED))
    ask_retry(r, o.task, o.state); /* luaflow.context.task_will_retry */
  move(r, o.task, o.state, LF_THEN_OUTCOME);
}

/* Task i failed an attempt (state s): retried when its retry policy (and
 * retry_on) says so, else it settles, its line saying why when it could
 * have been retried. */
static void after_failure(lf_run *r, int i, lf_state *s) {
  lf_task_run *tr = &r->task[i];
  lf_retry_verdict verdict = ask_retry(r, i, s);
  forget_retry_verdict(r);
  if (verdict != LF_RETRY_YES) {
    if (verdict >= LF_RETRY_REFUSED) log_not_retried(r, i, s, verdict);
    settle(r, i, 0);
    return;
  }
  lf_task *t = lf_run_task(r, i);
  char msg[96];
  lf_format(msg, sizeof msg, "Retrying Task (after attempt %d of %d)", tr->attempt,
            t->max_retries + 1);
  lf_state *retry = lf_state_new(LF_RETRYING, msg);
  if (!retry) lf_run_abort(r, "not enough memory");
  retry->has_start = 1;
  lf_retry_policy p = policy_of(t);
  r->retry_asked.delay = lf_retry_delay(&p, tr->attempt, lf_retry_random());
  r->retry_asked.due = retry->start_time = lf_now() + r->retry_asked.delay;
  retry->run_count = tr->attempt;
  r->retry_of = lf_state_ref(s);
  move(r, i, retry, LF_THEN_RETRY);
}

/* LOOP: task i runs again with the loop's result (state s) in the context;
 * the Pending between iterations is not a transition of its own (as in
 * Prefect). */
static void loop_again(lf_run *r, int i, lf_state *s) {
  lf_task_run *tr = &r->task[i];
  lf_state_release(tr->loop_state);
  tr->loop_state = lf_state_ref(s);
  tr->loop++;
  tr->attempt = 1; /* each iteration counts its own attempts (as Prefect) */
  char msg[64];
  lf_format(msg, sizeof msg, "Looping task (on loop index %d)", tr->loop - 1);
  lf_state *p = lf_state_new(LF_PENDING, msg);
  if (!p) lf_run_abort(r, "not enough memory");
  set_state(r, i, p);
  start_attempt(r, i);
}

/* Task i's body's outcome is its state now: a failed attempt with retries
 * left is retried, a LOOP runs again, a success of a task with cache_for is
 * cached, anything else settles. */
static void after_outcome(lf_run *r, int i, int end) {
  lf_task_run *tr = &r->task[i];
  lf_state *s = tr->state;
  if (!end && LF_IS(s, LF_FAILED)) {
    after_failure(r, i, s);
    return;
  }
  forget_retry_verdict(r);
  if (end) {
    settle(r, i, end);
  } else if (s->kind == LF_LOOPED) {
    loop_again(r, i, s);
  } else if ((tr->traits & LF_TRAIT_CACHE) && LF_IS(s, LF_SUCCESS) &&
             !LF_IS(s, LF_SKIPPED) && !LF_IS(s, LF_CACHED)) {
    lf_state *cached = r->host->ops->cache_save(r->host, r, i); /* Success -> Cached */
    if (cached)
      move(r, i, cached, LF_THEN_SETTLE);
    else
      settle(r, i, end);
  } else {
    settle(r, i, end);
  }
}

/* Object i is now in state s: the step that asked for the transition goes on. */
static void moved(lf_run *r, int i, lf_state *s, int end) {
  lf_then then = r->chain.then;
  if (r->journal)
    lf_journal_transition(r, i, i < 0 ? r->flow_state : r->task[i].state, s);
  set_state(r, i, s);
  switch (then) {
  case LF_THEN_SETTLE:
    settle(r, i, end);
    break;
  case LF_THEN_START: /* the body runs only from Running */
    if (end || s->kind != LF_RUNNING) {
      settle(r, i, end);
    } else {
      if (r->task[i].traits & LF_TRAIT_DEADLINE)
        lf_deadline_arm(r, i); /* it may have one */
      submit(r, i);
    }
    break;
  case LF_THEN_OUTCOME:
    after_outcome(r, i, end || r->outcome_end);
    break;
  case LF_THEN_RETRY: {
    lf_state *failed = r->retry_of;
    r->retry_of = NULL;
    log_retry(r, i, failed);
    lf_state_release(failed);
    settle(r, i, end);
    break;
  }
  case LF_THEN_RESUME:
    if (!end && s->kind == LF_RESUME)
      ready_push(r, i);
    else
      settle(r, i, end);
    break;
  case LF_THEN_FLOW_START:
    r->phase = !end && s->kind == LF_RUNNING ? PHASE_TASKS : PHASE_OVER;
    if (r->phase == PHASE_TASKS) lf_deadline_arm(r, -1);
    if (r->phase == PHASE_TASKS)
      for (int k = 0; k < r->ntasks; k++) /* a task a restart restored has finished */
        if (r->task[k].pending_upstreams == 0 && !(r->task[k].flags & LF_TASK_FINISHED) &&
            lf_ready_push(&r->ready, r->task[k].rank) != 0)
          lf_run_abort(r, "not enough memory");
    break;
  case LF_THEN_FLOW_END:
    r->phase = PHASE_OVER;
    break;
  case LF_THEN_MAPPED: /* with children, its downstream tasks wait for them */
    if (!end && s->kind == LF_MAPPED && lf_map_expand(r, i) > 0)
      log_finished(r, i);
    else
      settle(r, i, end);
    break;
  }
}

/* Object i (-1 the flow) goes to next through the one transition function;
 * `then` follows. */
static void move(lf_run *r, int i, lf_state *next, lf_then then) {
  lf_state *old = i < 0 ? r->flow_state : r->task[i].state;
  int end;
  r->chain.then = then;
  lf_state *s = lf_transition(r, i, old, next, &end);
  moved(r, i, s, end);
}

void lf_run_handler_failed(lf_run *r, lf_state *failure, int end) {
  int i = r->chain.object;
  lf_transition_drop(r);
  moved(r, i, failure, end);
}

void lf_run_handler_cancelled(lf_run *r) {
  int i = r->chain.object, end;
  lf_state *s = lf_transition_cancelled(r, &end);
  moved(r, i, s, end);
}

/* ---- pauses ---- */

/* Paused -> Resume("Approval given to resume.") through the handlers. */
static void resume_task(lf_run *r, int i) {
  r->task[i].flags &= (uint8_t) ~(LF_TASK_APPROVED | LF_TASK_ASKED);
  lf_state *next = engine_state(r, LF_RESUME, "Approval given to resume.");
  next->has_start = 1;
  next->start_time = lf_now();
  move(r, i, next, LF_THEN_RESUME);
}

/* With nothing else to do, paused tasks approved in advance resume, and the
 * approver (the CLI's prompt), when there is one, is asked about the others
 * once per pause. Returns how many resumed. */
static int approve_paused(lf_run *r) {
  int resumed = 0;
  for (int k = 0, n = r->ntasks + lf_map_nkids(r); k < n; k++) {
    int i = k < r->ntasks ? r->order[k] : k; /* then the children */
    lf_task_run *tr = &r->task[i];
    if (tr->state->kind != LF_PAUSED || tr->state->has_start ||
        (tr->flags & LF_TASK_ASKED))
      continue;
    int approved = (tr->flags & LF_TASK_APPROVED) != 0;
    if (!approved) {
      tr->flags |= LF_TASK_ASKED;
      approved = r->host->ops->approve(r->host, r, i);
    }
    if (approved) {
      resume_task(r, i);
      resumed++;
    }
  }
  return resumed;
}

void lf_run_approve(lf_run *r, int i) {
  r->task[i].flags |= LF_TASK_APPROVED;
}

/* ---- the loop ---- */

/* Outcomes first, then ready tasks in topological order, then timers; with
 * nothing ready it waits until the next timer is due or an outcome comes.
 * Returns when nothing more can happen. */
static void schedule(lf_run *r) {
  for (;;) {
    if (r->alarms.count > 0 && !lf_cancel_signal && lf_alarms_fire(r) > 0) continue;
    if (r->outcomes.count > 0) {
      lf_outcome o = r->outcomes.ring[r->outcomes.head];
      r->outcomes.head = (r->outcomes.head + 1) % r->outcomes.cap;
      r->outcomes.count--;
      on_outcome(r, o);
      continue;
    }
    if (lf_cancel_signal) { /* nothing new starts once cancelled */
      if (r->bodies_running == 0) return;
      if (!r->cancel_sent) r->executor->ops->cancel(r->executor, r);
      r->cancel_sent = 1;
      r->executor->ops->wait(r->executor, r, -1);
      continue;
    }
    int next = -1;
    if (r->map && lf_map_ready_count(r) > 0) /* children before the tasks after them */
      next = lf_map_ready_pop(r);
    else if (r->ready.count > 0)
      next = r->order[lf_ready_pop(&r->ready)];
    if (next >= 0) {
      begin(r, next);
      continue;
    }
    double wait = -1; /* no limit */
    if (r->timers.count > 0) {
      wait = r->timers.entry[0].key - lf_now();
      if (wait < 0) wait = 0;
    } else if (r->bodies_running == 0) {
      if (approve_paused(r)) continue;
      return;
    }
    double left = lf_watch_time_left(); /* a nested run: the enclosing task's timeout */
    if (left == 0) lf_run_abort(r, "Execution timed out.");
    if (left > 0 && (wait < 0 || left < wait)) wait = left;
    wait = lf_alarms_wait(r, wait);
    if (wait != 0) r->executor->ops->wait(r->executor, r, wait);
    double now = lf_now();
    while (r->timers.count > 0 && r->timers.entry[0].key <= now)
      ready_push(r, lf_heap_pop(&r->timers).value);
  }
}

static int is_terminal(const lf_run *r, int i) {
  return r->down.start[i] == r->down.start[i + 1];
}

/* The flow's final state as its reference tasks decide it (by default its
 * terminal tasks); NULL while some terminal task is not finished. */
static lf_state *final_flow_state(lf_run *r) {
  lf_flow *f = r->flow;
  for (int i = 0; i < r->ntasks; i++)
    if (is_terminal(r, i) &&
        (!LF_IS(r->task[i].state, LF_FINISHED) || (r->map && lf_map_waiting(r, i)))) {
      lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
             "Flow run RUNNING: terminal tasks are incomplete.");
      return NULL;
    }
  int failed = 0, all_ok = 1;
  int nrefs = f->nrefs ? f->nrefs : r->ntasks;
  for (int k = 0; k < nrefs; k++) { /* the reference tasks, or the terminal ones */
    int i = f->nrefs ? f->refs[k] : k;
    if (i >= r->ntasks || (!f->nrefs && !is_terminal(r, i))) continue;
    if (LF_IS(r->task[i].state, LF_FAILED)) failed = 1;
    if (!LF_IS(r->task[i].state, LF_SUCCESS)) all_ok = 0;
    if (r->map) /* a mapped task's children count too */
      lf_map_reference(r, i, &failed, &all_ok);
  }
  if (failed) {
    lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
           "Flow run FAILED: some reference tasks failed.");
    return engine_state(r, LF_FAILED, "Some reference tasks failed.");
  }
  if (all_ok) {
    lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
           "Flow run SUCCESS: all reference tasks succeeded");
    return engine_state(r, LF_SUCCESS, "All reference tasks succeeded.");
  }
  lf_log(LF_LOG_INFO, "luaflow.FlowRunner",
         "Flow run SUCCESS: no reference tasks failed");
  return engine_state(r, LF_SUCCESS, "No reference tasks failed.");
}

static void start_flow(lf_run *r) {
  lf_log(LF_LOG_INFO, "luaflow.FlowRunner", "Beginning Flow run for '%s'",
         r->flow->obj.name);
  r->flow_state = engine_state(r, LF_SCHEDULED, NULL);
  r->flow_state->has_start = 1;
  r->flow_state->start_time = lf_now();
  r->phase = PHASE_STARTING;
  move(r, -1, engine_state(r, LF_RUNNING, "Running flow."), LF_THEN_FLOW_START);
}

static void end_flow(lf_run *r) {
  r->phase = PHASE_ENDING;
  r->current = -1;
  lf_map_end_all(r); /* mapped tasks whose children could not all finish */
  lf_state *final;
  if (lf_cancel_signal) {
    lf_cancel_acknowledge(); /* the flow's handlers carry it from here */
    lf_log(LF_LOG_WARNING, "luaflow.FlowRunner", "Flow run was cancelled.");
    final = engine_state(r, LF_CANCELLED, "Flow run was cancelled.");
  } else {
    r->flow_final = final_flow_state(r); /* the run holds it while Lua runs */
    final = r->host->ops->terminal(r->host, r, r->flow_final);
    r->flow_final = NULL; /* consumed */
  }
  if (final)
    move(r, -1, final, LF_THEN_FLOW_END);
  else
    r->phase = PHASE_OVER; /* the flow stays Running */
}

void lf_run_continue(lf_run *r) {
  for (;;) {
    switch (r->phase) {
    case PHASE_NEW:
      start_flow(r);
      break;
    case PHASE_TASKS:
      schedule(r);
      r->phase = PHASE_FINAL;
      break;
    case PHASE_FINAL:
      end_flow(r);
      break;
    default: /* over (a step in flight always names the phase after it) */
      return;
    }
  }
}

int lf_run_over(const lf_run *r) {
  return r->phase == PHASE_OVER;
}

/* ---- setting up and releasing ---- */

/* Lays the per-task and per-edge arrays out in one block. */
static int layout(lf_run *r) {
  int n = r->ntasks, e = r->flow->nedges;
  size_t size = (size_t)n * sizeof(lf_task_run) + (size_t)n * sizeof(lf_state *) +
                ((size_t)n + 2 * ((size_t)n + 1) + 3 * (size_t)e) * sizeof(int);
  char *p = calloc(1, size + 1);
  if (!p) return -1;
  r->block = p;
  r->task = (lf_task_run *)p;
  p += (size_t)n * sizeof(lf_task_run);
  r->upstream_states = (lf_state **)p;
  p += (size_t)n * sizeof(lf_state *);
  int *ip = (int *)p;
  r->order = ip, ip += n;
  r->up.start = ip, ip += n + 1;
  r->down.start = ip, ip += n + 1;
  r->up.task = ip, ip += e;
  r->up.key = ip, ip += e;
  r->down.task = ip;
  return 0;
}

/* Each task's upstream and downstream edges, in the order they were added. */
static void build_adjacency(lf_run *r) {
  lf_flow *f = r->flow;
  int n = r->ntasks;
  for (int k = 0; k < f->nedges; k++) {
    r->up.start[f->edges[k].down + 1]++;
    r->down.start[f->edges[k].up + 1]++;
  }
  for (int i = 0; i < n; i++) {
    r->up.start[i + 1] += r->up.start[i];
    r->down.start[i + 1] += r->down.start[i];
  }
  for (int k = 0; k < f->nedges; k++) { /* start[i] moves to start[i + 1] ... */
    lf_edge *ed = &f->edges[k];
    int u = r->up.start[ed->down]++;
    r->up.task[u] = ed->up;
    r->up.key[u] = ed->key;
    r->down.task[r->down.start[ed->up]++] = ed->down;
  }
  for (int i = n; i > 0; i--) { /* ... and back */
    r->up.start[i] = r->up.start[i - 1];
    r->down.start[i] = r->down.start[i - 1];
  }
  r->up.start[0] = r->down.start[0] = 0;
}

int lf_run_init(lf_run *r, lf_flow *flow, lf_host *host, lf_executor *executor) {
  memset(r, 0, sizeof *r);
  r->flow = flow;
  r->ntasks = flow->ntasks;
  r->host = host;
  r->executor = executor;
  r->current = -1;
  r->phase = PHASE_NEW;
  r->shared.pending = lf_state_static(LF_PENDING, NULL);
  r->shared.running = lf_state_static(LF_RUNNING, "Starting task run.");
  r->shared.success = lf_state_static(LF_SUCCESS, "Task run succeeded.");
  if (!r->shared.pending || !r->shared.running || !r->shared.success || layout(r) != 0 ||
      lf_ready_init(&r->ready, r->ntasks) != 0)
    return -2;
  int rc = lf_flow_order(flow, r->order);
  if (rc != 0) return rc == -2 ? -2 : -1;
  build_adjacency(r);
  for (int k = 0; k < r->ntasks; k++)
    r->task[r->order[k]].rank = k;
  for (int i = 0; i < r->ntasks; i++) {
    r->task[i].state = lf_state_ref(r->shared.pending);
    r->task[i].pending_upstreams = r->up.start[i + 1] - r->up.start[i];
  }
  return 0;
}

lf_state *lf_run_final_state(lf_run *r, int i) {
  if (r->task[i].flags & LF_TASK_STARTED) return r->task[i].state;
  if (!r->shared.not_run)
    r->shared.not_run = lf_state_static(LF_PENDING, "Task not run.");
  return r->shared.not_run;
}

void lf_run_release(lf_run *r) {
  if (r->block)
    for (int i = 0; i < r->ntasks; i++) {
      lf_state_release(r->task[i].state);
      lf_state_release(r->task[i].loop_state);
    }
  for (int k = 0; k < r->outcomes.count; k++)
    lf_state_release(r->outcomes.ring[(r->outcomes.head + k) % r->outcomes.cap].state);
  if (r->chain.active) lf_transition_drop(r);
  lf_map_release(r);
  lf_state *held[] = {r->retry_of,       r->flow_state,     r->flow_final,
                      r->shared.pending, r->shared.running, r->shared.success,
                      r->shared.not_run};
  for (size_t k = 0; k < sizeof held / sizeof held[0]; k++)
    lf_state_release(held[k]);
  forget_retry_verdict(r);
  lf_heap_free(&r->timers);
  lf_heap_free(&r->alarms);
  lf_ready_free(&r->ready);
  free(r->outcomes.ring);
  free(r->block);
  memset(r, 0, sizeof *r);
}
