/* Wall-clock and monotonic time, and their printed forms. */
#ifndef LF_CLOCK_H
#define LF_CLOCK_H

#include <stddef.h>

double lf_now(void);       /* epoch seconds, UTC */
double lf_monotonic(void); /* seconds, for waiting */
/* t in whole microseconds, as times are shown (whole seconds, then the
 * fraction rounded): what the run store keeps and --json's durations are
 * differences of, so a time read back from the store shows the same digits. */
static inline long long lf_time_us(double t) {
  long long sec = (long long)t; /* |t| < 9e12: the caller's to check */
  if ((double)sec > t) sec--;
  return sec * 1000000 + (long long)((t - (double)sec) * 1e6 + 0.5);
}
/* 2026-11-29T07:21:19.123456+00:00 (always six fractional digits). */
void lf_format_iso(double t, char *buf, size_t n);
/* 2026-11-29 07:21:19+0000 (the log line stamp). */
void lf_format_log_stamp(double t, char *buf, size_t n);
/* Sleeps for up to `seconds`; returns early when interrupted by a signal. */
void lf_sleep(double seconds);

#endif
