#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "log.h"

int lf_log_level = LF_LOG_INFO;
static lf_log_filter log_filter;

static const struct {
  int level;
  const char *name;
} levels[] = {{LF_LOG_DEBUG, "DEBUG"},
              {LF_LOG_INFO, "INFO"},
              {LF_LOG_WARNING, "WARNING"},
              {LF_LOG_ERROR, "ERROR"},
              {LF_LOG_CRITICAL, "CRITICAL"}};

int lf_log_parse_level(const char *name) {
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
    if (strcasecmp(name, levels[i].name) == 0) return levels[i].level;
  return -1;
}

const char *lf_log_level_name(int level) {
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
    if (levels[i].level == level) return levels[i].name;
  return "INFO";
}

void lf_log_set_filter(lf_log_filter f) {
  log_filter = f;
}

/* The level as shown: coloured when stderr is a terminal (and NO_COLOR and
 * TERM=dumb do not say otherwise), plain in files and pipes. */
static const char *level_label(int level) {
  static int colour = -1;
  if (colour < 0) {
    const char *term = getenv("TERM");
    colour = isatty(2) && !getenv("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
  }
  if (!colour) return lf_log_level_name(level);
  switch (level) {
  case LF_LOG_DEBUG:
    return "\033[2mDEBUG\033[0m";
  case LF_LOG_INFO:
    return "\033[32mINFO\033[0m";
  case LF_LOG_WARNING:
    return "\033[33mWARNING\033[0m";
  case LF_LOG_ERROR:
    return "\033[31mERROR\033[0m";
  default:
    return "\033[1;31mCRITICAL\033[0m";
  }
}

void lf_log_write(int level, const char *logger, const char *msg, size_t len) {
  if (!lf_log_enabled(level)) return;
  if (log_filter) msg = log_filter(msg, len, &len);
  char stamp[40];
  lf_format_log_stamp(lf_now(), stamp, sizeof stamp);
  fprintf(stderr, "[%s] %s - %s | %.*s\n", stamp, level_label(level), logger, (int)len,
          msg);
  fflush(stderr);
}

/* The whole message is formatted (and so redacted) before anything is cut:
 * a secret must not be shown in part. */
void lf_log(int level, const char *logger, const char *fmt, ...) {
  if (!lf_log_enabled(level)) return;
  char buf[2048], *msg = buf;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof buf) {
    msg = malloc((size_t)n + 1);
    if (!msg) return;
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  lf_log_write(level, logger, msg, (size_t)n);
  if (msg != buf) free(msg);
}
