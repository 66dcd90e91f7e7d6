/* Deadlines and wake-ups: a run's alarms, on a heap of their own
 * (r->alarms, key: epoch seconds) next to its timers. The scheduler's wait
 * ends at the next alarm, so each fires on time under the worker executors
 * (under Local, as soon as the engine regains control from a body); nothing
 * polls and no thread waits per deadline. Unlike timers, alarms never keep a
 * run going: one still set when the last task is done is dropped. Lua-free. */
#ifndef LF_DEADLINE_H
#define LF_DEADLINE_H

#include <stddef.h>
#include "run.h"

enum { LF_ALARM_DEADLINE = 1, LF_ALARM_WAKE = 2 }; /* r->alarms' tags */

/* Object i (-1: the flow) is Running for the first time: its deadline, if it
 * has one, is set from now (once per run). */
void lf_deadline_arm(lf_run *r, int i);

/* The host wants its wake op called at `when` (epoch seconds; the notifiers'
 * digest windows). */
void lf_run_wake_at(lf_run *r, double when);

/* Fires every alarm that is due: a deadline of an object not finished yet
 * logs its WARNING line and calls the host's overdue op, a wake-up its wake
 * op. Returns how many fired. */
int lf_alarms_fire(lf_run *r);

/* The scheduler's wait (seconds, < 0: no limit) shortened to the next alarm. */
double lf_alarms_wait(const lf_run *r, double wait);

/* "45s", "1.5s", "12m 5s", "10m", "2h 3m" ... */
void lf_format_duration(char *out, size_t size, double seconds);

#endif
