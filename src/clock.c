#include <math.h>
#include <stdio.h>
#include <string.h>
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
  if (!(fabs(t) < 9e12)) { /* not a time lf_time_us takes: as before */
    double whole = floor(t);
    *sec = (time_t)whole;
    *usec = isfinite(t) ? lround((t - whole) * 1e6) % 1000000 : 0;
    return;
  }
  long long us = lf_time_us(t), s = us / 1000000, u = us % 1000000;
  if (u < 0) {
    u += 1000000;
    s--;
  }
  *sec = (time_t)s;
  *usec = (long)u;
}

/* The calendar fields of second sec: a thread keeps those of the last
 * second it asked for (lines and times come many to a second). */
static const struct tm *utc_fields(time_t sec) {
  static _Thread_local time_t last;
  static _Thread_local struct tm tm;
  static _Thread_local int valid;
  if (!valid || sec != last) {
    if (!gmtime_r(&sec, &tm)) tm = (struct tm){.tm_mday = 1, .tm_year = 70};
    last = sec;
    valid = 1;
  }
  return &tm;
}

static char *put_digits(char *p, long v, int width) {
  for (int k = width - 1; k >= 0; k--, v /= 10)
    p[k] = (char)('0' + v % 10);
  return p + width;
}

/* "2026-11-29<sep>07:21:19" (19 bytes, no NUL); a year of other than four
 * digits as strftime writes it. Returns the end. */
static char *put_date_time(char *p, const struct tm *tm, char sep, size_t room) {
  long year = (long)tm->tm_year + 1900;
  if (year < 0 || year > 9999) {
    char fmt[] = "%Y-%m-%d %H:%M:%S";
    fmt[8] = sep;
    return p + strftime(p, room, fmt, tm);
  }
  p = put_digits(p, year, 4);
  *p++ = '-';
  p = put_digits(p, tm->tm_mon + 1, 2);
  *p++ = '-';
  p = put_digits(p, tm->tm_mday, 2);
  *p++ = sep;
  p = put_digits(p, tm->tm_hour, 2);
  *p++ = ':';
  p = put_digits(p, tm->tm_min, 2);
  *p++ = ':';
  return put_digits(p, tm->tm_sec, 2);
}

/* Copies the len bytes at text into buf (n bytes, NUL included), cut to fit. */
static void copy_out(char *buf, size_t n, const char *text, size_t len) {
  if (n == 0) return;
  if (len >= n) len = n - 1;
  memcpy(buf, text, len);
  buf[len] = '\0';
}

void lf_format_iso(double t, char *buf, size_t n) {
  time_t sec;
  long usec;
  split(t, &sec, &usec);
  char text[80];
  char *p = put_date_time(text, utc_fields(sec), 'T', 48);
  *p++ = '.';
  p = put_digits(p, usec, 6);
  memcpy(p, "+00:00", 6);
  copy_out(buf, n, text, (size_t)(p + 6 - text));
}

/* 2026-11-29 07:21:19.123+0000 (milliseconds, truncated) */
void lf_format_log_stamp(double t, char *buf, size_t n) {
  double whole = floor(t);
  int ms = (int)((t - whole) * 1000);
  char text[80];
  char *p = put_date_time(text, utc_fields((time_t)whole), ' ', 48);
  *p++ = '.';
  p = put_digits(p, ms > 999 ? 999 : ms, 3);
  memcpy(p, "+0000", 5);
  copy_out(buf, n, text, (size_t)(p + 5 - text));
}

void lf_sleep(double seconds) {
  if (!(seconds > 0)) return;
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
}
