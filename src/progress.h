/* The progress line `luaflow run` keeps at the bottom of a terminal:
 *
 *   [37/120] 3 running, 1 failed, 0:07
 *
 * Any thread sets the counts (a mutex around four numbers, no system call);
 * a ticker thread redraws the line from them at most LF_PROGRESS_HZ times a
 * second, and every second for the clock. The line is drawn through
 * log_out.c, which erases it before each log line; the ticker draws it again
 * after. Nothing happens when stderr is not a terminal. Lua-free. */
#ifndef LF_PROGRESS_H
#define LF_PROGRESS_H

#include <stddef.h>

#define LF_PROGRESS_HZ 10 /* redraws a second, at most */

typedef struct {
  long done;    /* tasks finished */
  long total;   /* tasks in the run; 0: not known */
  long running; /* tasks running now */
  long failed;  /* tasks finished failed */
} lf_progress_counts;

/* The line for these counts after `elapsed` seconds, cut to `width` columns
 * (0: whole) and NUL-terminated. Returns its length (< n). */
size_t lf_progress_format(char *buf, size_t n, const lf_progress_counts *c,
                          double elapsed, int width);

/* A rate limit: lf_throttle_pass is 1 (and counts the event) when at least
 * `interval` seconds have passed since the last event it let pass. */
typedef struct {
  double interval;
  double last; /* 0: none yet */
} lf_throttle;
int lf_throttle_pass(lf_throttle *t, double now);

/* Starts the line when stderr is a terminal: 1 when it is shown, 0 when not
 * (not a terminal, or already started), -1 when the ticker cannot start. The
 * clock starts now. */
int lf_progress_start(void);
/* New counts (any thread); shown at the next redraw. */
void lf_progress_set(const lf_progress_counts *c);
/* Held, the line is erased and not drawn (a question asked on the terminal). */
void lf_progress_hold(int held);
/* Erases the line and stops the ticker. */
void lf_progress_stop(void);
int lf_progress_active(void);

#endif
