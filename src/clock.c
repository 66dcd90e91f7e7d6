#include <math.h>
#include <stdio.h>
#include <time.h>
#include "clock.h"

double lf_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double lf_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Splits t into whole seconds and microseconds, rounding to the microsecond. */
static void split(double t, time_t *sec, long *usec) {
  double whole = floor(t);
  long us = lround((t - whole) * 1e6);
  if (us >= 1000000) {
    whole += 1;
    us -= 1000000;
  }
  *sec = (time_t)whole;
  *usec = us;
}

void lf_format_iso(double t, char *buf, size_t n) {
  time_t sec;
  long usec;
  split(t, &sec, &usec);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char day[32];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%06ld+00:00", day, usec);
}

/* 2026-11-29 07:21:19.123+0000 (milliseconds, truncated) */
void lf_format_log_stamp(double t, char *buf, size_t n) {
  double whole = floor(t);
  time_t sec = (time_t)whole;
  int ms = (int)((t - whole) * 1000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char day[32];
  strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
  snprintf(buf, n, "%s.%03d+0000", day, ms > 999 ? 999 : ms);
}

void lf_sleep(double seconds) {
  if (!(seconds > 0)) return;
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
}
