/* Log lines on stderr: [2026-11-29 07:21:19+0000] INFO - luaflow.FlowRunner | msg */
#ifndef LF_LOG_H
#define LF_LOG_H

#include <stddef.h>
#include <sys/uio.h>

enum {
  LF_LOG_DEBUG = 10,
  LF_LOG_INFO = 20,
  LF_LOG_WARNING = 30,
  LF_LOG_ERROR = 40,
  LF_LOG_CRITICAL = 50
};

extern int lf_log_level;
#define lf_log_enabled(level) ((level) >= lf_log_level)

/* Parses a level name in any case; -1 when unknown. */
int lf_log_parse_level(const char *name);
const char *lf_log_level_name(int level);
void lf_log(int level, const char *logger, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* snprintf for messages: %s, %d and %% put together without stdio (the
 * engine's lines and states), anything else through vsnprintf. */
int lf_format(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes one finished message (no formatting). */
void lf_log_write(int level, const char *logger, const char *msg, size_t len);
/* Secrets redaction (issue 4) plugs in here: rewrites msg into out. */
typedef const char *(*lf_log_filter)(const char *msg, size_t len, size_t *out_len);
void lf_log_set_filter(lf_log_filter f);
/* The run store (run_journal.c) sees every line written, redacted, from any
 * thread, with the time the line is stamped with: NULL for none. */
typedef void (*lf_log_tap)(int level, const char *logger, const char *msg, size_t len,
                           double time);
void lf_log_set_tap(lf_log_tap tap);

/* log_out.c: where finished lines go (stderr; buffered unless it is a
 * terminal, no line waits more than 100 ms nor is lost at exit). One line
 * is the concatenation of the parts, its newline included. */
void lf_log_out(const struct iovec *parts, int nparts);
void lf_log_flush(void);
/* For a signal handler about to end the process (async-signal-safe). */
void lf_log_flush_from_signal(void);
/* The CLI: a crash signal nothing else handles flushes the lines first. */
void lf_log_flush_on_crash(void);
/* A status line (progress.h) kept under the log lines on a terminal: drawn in
 * place, erased before each log line, by lf_log_flush (which comes before any
 * other write to stderr) and when the process ends. */
void lf_log_status(const char *text, size_t len);
void lf_log_status_clear(void);
int lf_log_status_shown(void);

#endif
