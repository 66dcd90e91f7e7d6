/* The one transition function: every task and flow state change goes
 * through its handlers here. C handlers are called directly; a Lua one goes
 * to the host, whose error unwinds this function with r->chain in flight
 * (the host then ends it with lf_transition_drop or goes on with
 * lf_transition_cancelled). Lua-free. */
#include "host.h"
#include "log.h"
#include "object.h"
#include "run.h"

static const char *logger_of(const lf_object *obj) {
  return obj->is_flow ? "luaflow.FlowRunner" : "luaflow.TaskRunner";
}

/* A C handler returned LF_ERROR: the object fails with its message. */
static lf_state *c_handler_failed(lf_run *r, lf_object *obj) {
  lf_state *s = r->host->ops->error_state(
      r->host, r, LF_FAILED,
      "Unexpected error while calling state handlers: ", lf_handler_error_text());
  if (!s) lf_run_abort(r, "not enough memory");
  lf_log(LF_LOG_ERROR, logger_of(obj), "%s '%s': %s", lf_object_label(obj), obj->name,
         s->message);
  return s;
}

/* Calls C handler hd on old -> *next; returns 0 to go on (*next is the
 * state so far), 1 when it failed (*next released). */
static int call_c_handler(lf_object *obj, lf_handler *hd, lf_state *old,
                          lf_state **next) {
  lf_state *out = NULL;
  lf_handler_error_reset();
  int rc = hd->fn(obj, old, *next, &out, hd->ud);
  if (rc == LF_KEEP) return 0;
  if (rc == LF_REPLACE && out) {
    lf_state_release(*next);
    *next = out;
    return 0;
  }
  lf_state_release(out);
  if (rc == LF_REPLACE) lf_handler_error(obj, "C handler replaced the state with NULL");
  lf_state_release(*next);
  *next = NULL;
  return 1;
}

/* Calls the chain's handlers from r->chain.at on; returns the state the
 * object ends in (owned). */
static lf_state *run_chain(lf_run *r, int *end) {
  lf_chain *c = &r->chain;
  lf_object *obj = lf_run_object(r, c->object);
  for (; c->at < obj->nhandlers; c->at++) {
    lf_handler *hd = &obj->handlers[c->at];
    lf_state *out = NULL;
    if (hd->fn) {
      lf_handler_error_reset();
      int rc = hd->fn(obj, c->old, c->next, &out, hd->ud);
      if (rc == LF_KEEP) continue;
      if (rc == LF_REPLACE && out) {
        lf_state_release(c->next);
        c->next = out;
        continue;
      }
      lf_state_release(out);
      if (rc == LF_REPLACE)
        lf_handler_error(obj, "C handler replaced the state with NULL");
      lf_transition_drop(r);
      *end = 1;
      return c_handler_failed(r, obj);
    }
    if (hd->on_failure && !LF_IS(c->next, LF_FAILED)) continue;
    r->busy = LF_BUSY_CHAIN;
    out = r->host->ops->call_handler(r->host, r, c->object, hd, c->old, c->next);
    r->busy = LF_BUSY_NONE;
    if (out) {
      lf_state_release(c->next);
      c->next = out;
    }
  }
  c->active = 0;
  *end = c->end;
  return c->next;
}

static __attribute__((noinline)) void
log_transition(const lf_object *obj, const lf_state *old, const lf_state *next) {
  lf_log(LF_LOG_DEBUG, logger_of(obj), "%s '%s': Handling state change from %s to %s",
         lf_object_label(obj), obj->name, lf_kind_name(old->kind),
         lf_kind_name(next->kind));
}

lf_state *lf_transition(lf_run *r, int i, lf_state *old, lf_state *next, int *end) {
  lf_object *obj = lf_run_object(r, i);
  int number = i < 0 ? ++r->flow_transitions : ++r->task[i].transitions;
  r->current = i;
  *end = 0;
  if (lf_log_enabled(LF_LOG_DEBUG)) log_transition(obj, old, next);
  if (obj->nhandlers == 0) return next;
  if (obj->nlua == 0) { /* C handlers only: nothing can unwind, no chain in flight */
    for (int h = 0; h < obj->nhandlers; h++)
      if (call_c_handler(obj, &obj->handlers[h], old, &next)) {
        *end = 1;
        return c_handler_failed(r, obj);
      }
    return next;
  }
  lf_chain *c = &r->chain;
  c->active = 1;
  c->object = i;
  c->old = old;
  c->next = next;
  c->at = 0;
  c->number = number;
  c->end = 0;
  return run_chain(r, end);
}

lf_state *lf_transition_cancelled(lf_run *r, int *end) {
  /* SIGINT/SIGTERM stopped a handler: the object ends Cancelled through the
   * handlers after it, which run to their end */
  lf_chain *c = &r->chain;
  lf_state *cancelled = lf_state_static(LF_CANCELLED, "Flow run was cancelled.");
  if (!cancelled) lf_run_abort(r, "not enough memory");
  lf_state_release(c->next);
  c->next = cancelled;
  c->end = 1;
  c->at++;
  return run_chain(r, end);
}

void lf_transition_drop(lf_run *r) {
  lf_state_release(r->chain.next);
  r->chain.next = NULL;
  r->chain.active = 0;
}
