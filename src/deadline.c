/* Deadlines and wake-ups (see deadline.h). */
#include <math.h>
#include <stdio.h>
#include "clock.h"
#include "deadline.h"
#include "host.h"
#include "log.h"
#include "run_journal.h"

static void push_alarm(lf_run *r, double when, int i, int tag) {
  if (lf_heap_push(&r->alarms, when, i, tag) != 0) lf_run_abort(r, "not enough memory");
}

void lf_deadline_arm(lf_run *r, int i) {
  double deadline;
  if (i < 0) {
    deadline = r->flow->deadline;
  } else {
    if (r->task[i].flags & LF_TASK_DEADLINE) return;
    r->task[i].flags |= LF_TASK_DEADLINE;
    const lf_task_policy *p = lf_run_task(r, i)->policy;
    deadline = p ? p->deadline : 0;
  }
  if (deadline > 0) push_alarm(r, lf_now() + deadline, i, LF_ALARM_DEADLINE);
}

void lf_run_wake_at(lf_run *r, double when) {
  push_alarm(r, when, -1, LF_ALARM_WAKE);
}

void lf_format_duration(char *out, size_t size, double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  if (seconds < 9.995 && fabs(seconds - round(seconds)) >= 0.005) {
    int n = snprintf(out, size, "%.2f", seconds); /* "0.05", "1.5", not "1.50" */
    while (n > 0 && (size_t)n < size && out[n - 1] == '0')
      out[--n] = '\0';
    snprintf(out + n, size - (size_t)n, "s");
    return;
  }
  long long total = llround(seconds < 1e15 ? seconds : 1e15);
  long long h = total / 3600, m = total / 60 % 60, s = total % 60;
  if (total < 60) {
    snprintf(out, size, "%llds", s);
  } else if (h == 0) {
    snprintf(out, size, s ? "%lldm %llds" : "%lldm", m, s);
  } else {
    int n = snprintf(out, size, "%lldh", h);
    if (m && n > 0 && (size_t)n < size)
      n += snprintf(out + n, size - (size_t)n, " %lldm", m);
    if (s && n > 0 && (size_t)n < size) snprintf(out + n, size - (size_t)n, " %llds", s);
  }
}

/* Object i's deadline has passed: unless it has finished, one WARNING line
 * (the run store records log lines) and its on_overdue. */
static void overdue(lf_run *r, int i, double due) {
  const lf_state *s = i < 0 ? r->flow_state : r->task[i].state;
  if (!s || LF_IS(s, LF_FINISHED)) return;
  double deadline = i < 0 ? r->flow->deadline : lf_run_task(r, i)->policy->deadline;
  double elapsed = lf_now() - (due - deadline);
  const lf_object *obj = lf_run_object(r, i);
  char ran[48], limit[48], message[160];
  lf_format_duration(ran, sizeof ran, elapsed);
  lf_format_duration(limit, sizeof limit, deadline);
  snprintf(message, sizeof message, "running for %s (deadline %s)", ran, limit);
  /* the run store keeps this line with the run's logs (run_journal.c's tap),
   * and keeps it too when the log level hides WARNING lines */
  const char *logger = obj->is_flow ? "luaflow.FlowRunner" : "luaflow.TaskRunner";
  char line[400];
  snprintf(line, sizeof line, "%s '%s': overdue: %s", lf_object_label(obj), obj->name,
           message);
  if (lf_log_enabled(LF_LOG_WARNING))
    lf_log(LF_LOG_WARNING, logger, "%s", line);
  else if (r->journal)
    lf_journal_note(r, LF_LOG_WARNING, logger, line);
  int current = r->current;
  r->current = i; /* luaflow.context speaks of it */
  r->host->ops->overdue(r->host, r, i, deadline, elapsed, message);
  r->current = current;
}

int lf_alarms_fire(lf_run *r) {
  int fired = 0;
  double now = lf_now();
  while (r->alarms.count > 0 && r->alarms.entry[0].key <= now) {
    lf_heap_entry e = lf_heap_pop(&r->alarms);
    if (e.tag == LF_ALARM_DEADLINE)
      overdue(r, e.value, e.key);
    else
      r->host->ops->wake(r->host, r);
    fired++;
  }
  return fired;
}

double lf_alarms_wait(const lf_run *r, double wait) {
  if (r->alarms.count == 0) return wait;
  double left = r->alarms.entry[0].key - lf_now();
  if (left < 0) left = 0;
  if (left > 1e9) left = 1e9; /* a deadline decades away: the wait stays a sane number */
  return wait < 0 || left < wait ? left : wait;
}
