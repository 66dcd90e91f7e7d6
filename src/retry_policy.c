/* The retry policy (see retry_policy.h). */
#include <math.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "retry_policy.h"

lf_retry_verdict lf_retry_check(const lf_retry_policy *p, int attempt,
                                const lf_state *s) {
  if (!LF_IS(s, LF_FAILED)) return LF_RETRY_NOT_FAILED;
  if (attempt > p->max_retries) return LF_RETRY_EXHAUSTED;
  if (s->no_retry) return LF_RETRY_REFUSED;
  return LF_RETRY_YES;
}

const char *lf_retry_why_not(lf_retry_verdict v) {
  switch (v) {
  case LF_RETRY_NOT_FAILED:
    return "the task did not fail";
  case LF_RETRY_EXHAUSTED:
    return "no retries left";
  case LF_RETRY_REFUSED:
    return "the failure was raised with retry = false";
  case LF_RETRY_REJECTED:
    return "retry_on rejected this failure";
  case LF_RETRY_ON_ERROR:
    return "retry_on raised an error";
  default:
    return "";
  }
}

double lf_retry_delay(const lf_retry_policy *p, int n, double u) {
  double limit = LF_RETRY_DELAY_LIMIT;
  if (p->max_delay > 0 && p->max_delay < limit) limit = p->max_delay;
  if (!(p->delay > 0)) return 0;
  double d = p->delay;
  if (p->backoff > 1 && n > 1) d *= pow(p->backoff, n - 1); /* inf when huge: capped */
  if (!(d <= limit)) d = limit;
  if (p->jitter > 0) d *= 1 + p->jitter * (2 * u - 1);
  if (d > limit) d = limit;
  return d < 0 ? 0 : d;
}

/* splitmix64: small, fast, good enough to spread retries apart. */
static uint64_t next_random(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

double lf_retry_random(void) {
  static _Thread_local uint64_t seed;
  static _Thread_local int seeded;
  if (!seeded) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid() ^
           (uint64_t)(uintptr_t)&seeded;
    seeded = 1;
  }
  return (double)(next_random(&seed) >> 11) * 0x1.0p-53;
}
