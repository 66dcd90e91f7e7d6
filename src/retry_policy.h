/* A task's retry policy: whether a failed attempt is retried, and how long
 * the retry waits (retry_delay growing by retry_backoff, capped by
 * max_retry_delay, spread by retry_jitter). Lua-free: the scheduler asks the
 * host for the user's retry_on verdict and passes it in. */
#ifndef LF_RETRY_POLICY_H
#define LF_RETRY_POLICY_H

#include "state.h"

/* The longest a retry ever waits (seconds, about 31 years): a growing delay
 * without a cap stops here instead of overflowing. */
#define LF_RETRY_DELAY_LIMIT 1e9

typedef struct {
  int max_retries;
  double delay;     /* retry_delay: the first retry's wait */
  double backoff;   /* retry_backoff: each retry waits this much longer (>= 1) */
  double max_delay; /* max_retry_delay (0: no cap) */
  double jitter;    /* retry_jitter: 0 .. 1 */
} lf_retry_policy;

typedef enum {
  LF_RETRY_YES,        /* retried */
  LF_RETRY_NOT_FAILED, /* the state is not a failure */
  LF_RETRY_EXHAUSTED,  /* no retries left */
  LF_RETRY_REFUSED,    /* FAIL(..., {retry = false}) */
  LF_RETRY_REJECTED,   /* retry_on returned false */
  LF_RETRY_ON_ERROR,   /* retry_on raised an error */
} lf_retry_verdict;

/* The engine's part of the decision for a failed attempt (attempt counts from
 * 1) ending in s: LF_RETRY_YES leaves the last word to retry_on. */
lf_retry_verdict lf_retry_check(const lf_retry_policy *p, int attempt, const lf_state *s);

/* Why a failure is not retried, as the INFO line says it ("" for YES). */
const char *lf_retry_why_not(lf_retry_verdict v);

/* The wait before the n-th retry (n >= 1): delay * backoff^(n-1), at most
 * max_delay, times a factor in [1 - jitter, 1 + jitter] picked by u (uniform
 * in [0, 1)), and never more than max_delay nor LF_RETRY_DELAY_LIMIT. */
double lf_retry_delay(const lf_retry_policy *p, int n, double u);

/* A uniform random number in [0, 1): a per-thread generator seeded once from
 * the clock, the process and the thread (jitter needs no secrecy). */
double lf_retry_random(void);

#endif
