#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "clock.h"
#include "log.h"

int lf_log_level = LF_LOG_INFO;
static lf_log_filter log_filter;
static _Atomic(lf_log_tap) log_tap; /* set once, read by any thread */

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
  if (log_filter != f) log_filter = f; /* a worker's Lua state sets the same one */
}

void lf_log_set_tap(lf_log_tap tap) {
  atomic_store_explicit(&log_tap, tap, memory_order_release);
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

/* A line's head, "[2026-11-29 07:21:19.123+0000] INFO - luaflow.TaskRunner | ",
 * put together again only when the second or the logger changes (one head
 * kept per level: a failure's ERROR line between INFO lines costs no
 * rebuild); the milliseconds are written into it for each line. */
typedef struct {
  time_t second;
  int level;
  size_t logger_len, len;
  char logger[64];
  char text[160];
} line_head;

#define MS_AT 21 /* "[2026-11-29 07:21:19." */

static const char *head_of(int level, const char *logger, struct timespec now,
                           size_t *len) {
  static _Thread_local line_head heads[5] = {
      {.second = -1}, {.second = -1}, {.second = -1}, {.second = -1}, {.second = -1}};
  int slot = level / 10 - 1;
  if (slot < 0 || slot > 4) return NULL;
  line_head *h = &heads[slot];
  size_t logger_len = strlen(logger);
  if (now.tv_sec != h->second || level != h->level || logger_len != h->logger_len ||
      memcmp(logger, h->logger, logger_len) != 0) {
    char stamp[40];
    lf_format_log_stamp((double)now.tv_sec, stamp, sizeof stamp);
    int n = snprintf(h->text, sizeof h->text, "[%s] %s - %s | ", stamp,
                     level_label(level), logger);
    if (n < 0 || (size_t)n >= sizeof h->text || logger_len >= sizeof h->logger ||
        h->text[MS_AT - 1] != '.') {
      h->second = -1; /* not kept: the caller puts it together */
      return NULL;
    }
    h->second = now.tv_sec;
    h->level = level;
    h->logger_len = logger_len;
    memcpy(h->logger, logger, logger_len);
    h->len = (size_t)n;
  }
  int ms = (int)(now.tv_nsec / 1000000);
  h->text[MS_AT] = (char)('0' + ms / 100);
  h->text[MS_AT + 1] = (char)('0' + ms / 10 % 10);
  h->text[MS_AT + 2] = (char)('0' + ms % 10);
  *len = h->len;
  return h->text;
}

#define PART(p, n) ((struct iovec){(void *)(p), (n)})

void lf_log_write(int level, const char *logger, const char *msg, size_t len) {
  if (!lf_log_enabled(level)) return;
  if (log_filter) msg = log_filter(msg, len, &len);
  struct timespec now; /* one clock reading for the line and the tap */
  clock_gettime(CLOCK_REALTIME, &now);
  lf_log_tap tap = atomic_load_explicit(&log_tap, memory_order_acquire);
  if (tap) tap(level, logger, msg, len, (double)now.tv_sec + now.tv_nsec / 1e9);
  size_t head_len;
  const char *head = head_of(level, logger, now, &head_len);
  if (head) {
    struct iovec parts[] = {PART(head, head_len), PART(msg, len), PART("\n", 1)};
    lf_log_out(parts, 3);
    return;
  }
  char stamp[40];
  lf_format_log_stamp((double)now.tv_sec + now.tv_nsec / 1e9, stamp, sizeof stamp);
  const char *name = level_label(level);
  struct iovec parts[] = {PART("[", 1),   PART(stamp, strlen(stamp)),
                          PART("] ", 2),  PART(name, strlen(name)),
                          PART(" - ", 3), PART(logger, strlen(logger)),
                          PART(" | ", 3), PART(msg, len),
                          PART("\n", 1)};
  lf_log_out(parts, (int)(sizeof parts / sizeof parts[0]));
}

/* A message made of %s, %d and %% only is put together here (most of the
 * engine's lines); anything else goes through vsnprintf. */
static int format_simple(char *buf, size_t size, const char *fmt, va_list ap) {
  size_t n = 0;
  for (const char *f = fmt; *f;) {
    const char *piece = f;
    size_t len;
    char num[24];
    if (*f != '%') { /* the text up to the next directive */
      const char *next = strchr(f, '%');
      len = next ? (size_t)(next - f) : strlen(f);
      f += len;
    } else if (f[1] == 's') {
      piece = va_arg(ap, const char *);
      if (!piece) piece = "(null)";
      len = strlen(piece);
      f += 2;
    } else if (f[1] == 'd') {
      int v = va_arg(ap, int);
      char *end = num + sizeof num;
      char *p = lf_decimal(end, v < 0 ? 0u - (unsigned)v : (unsigned)v);
      if (v < 0) *--p = '-';
      piece = p;
      len = (size_t)(end - p);
      f += 2;
    } else if (f[1] == '%') {
      len = 1;
      f += 2;
    } else {
      return -1;
    }
    if (n + len >= size) return -1;
    memcpy(buf + n, piece, len);
    n += len;
  }
  buf[n] = '\0';
  return (int)n;
}

int lf_format(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = format_simple(buf, size, fmt, ap);
  va_end(ap);
  if (n < 0) {
    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
  }
  return n;
}

/* The whole message is formatted (and so redacted) before anything is cut:
 * a secret must not be shown in part. */
void lf_log(int level, const char *logger, const char *fmt, ...) {
  if (!lf_log_enabled(level)) return;
  char buf[2048], *msg = buf;
  va_list ap;
  va_start(ap, fmt);
  int n = format_simple(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) {
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
  }
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
