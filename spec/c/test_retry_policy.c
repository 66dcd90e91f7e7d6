/* The retry policy (retry_policy.c): which failures are retried, and how
 * long each retry waits. */
#include <math.h>
#include "retry_policy.h"
#include "test.h"

#define ASSERT_NEAR(a, b)                                                                \
  do {                                                                                   \
    double a_ = (a), b_ = (b);                                                           \
    if (!(fabs(a_ - b_) <= 1e-9 * (1 + fabs(b_))))                                       \
      TEST_FAIL("%s == %s: %.12g != %.12g", #a, #b, a_, b_);                             \
  } while (0)

TEST_IMPL(retry_delay_grows_by_the_backoff_up_to_the_cap) {
  lf_retry_policy p = {5, 2.0, 1.0, 0, 0};
  for (int n = 1; n <= 5; n++) /* no backoff: every retry waits retry_delay */
    ASSERT_NEAR(lf_retry_delay(&p, n, 0.9), 2.0);
  p.backoff = 3;
  ASSERT_NEAR(lf_retry_delay(&p, 1, 0.5), 2.0);
  ASSERT_NEAR(lf_retry_delay(&p, 2, 0.5), 6.0);
  ASSERT_NEAR(lf_retry_delay(&p, 3, 0.5), 18.0);
  p.max_delay = 10;
  ASSERT_NEAR(lf_retry_delay(&p, 2, 0.5), 6.0);
  ASSERT_NEAR(lf_retry_delay(&p, 3, 0.5), 10.0);
  ASSERT_NEAR(lf_retry_delay(&p, 1000, 0.5), 10.0); /* 3^999 overflows: still the cap */
  p.max_delay = 0;                                  /* no cap: the limit, never inf */
  ASSERT_NEAR(lf_retry_delay(&p, 1000, 0.5), LF_RETRY_DELAY_LIMIT);
  p.delay = 0; /* retry_delay = 0 stays 0 whatever the backoff (no 0 * inf) */
  ASSERT_NEAR(lf_retry_delay(&p, 1000, 0.5), 0);
  return 0;
}

TEST_IMPL(retry_jitter_spreads_within_its_bounds_and_under_the_cap) {
  lf_retry_policy p = {5, 10.0, 2.0, 0, 0.5};
  ASSERT_NEAR(lf_retry_delay(&p, 1, 0.0), 5.0);  /* 1 - jitter */
  ASSERT_NEAR(lf_retry_delay(&p, 1, 0.5), 10.0); /* the middle */
  ASSERT_NEAR(lf_retry_delay(&p, 2, 0.75), 25.0);
  p.max_delay = 12; /* the cap holds after the jitter too */
  ASSERT_NEAR(lf_retry_delay(&p, 1, 0.99), 12.0);
  ASSERT_NEAR(lf_retry_delay(&p, 2, 0.0), 6.0);
  p.jitter = 1; /* full jitter: anything from 0 */
  ASSERT_NEAR(lf_retry_delay(&p, 1, 0.0), 0.0);
  double lo = 1e9, hi = 0, sum = 0;
  p.jitter = 0.2;
  p.max_delay = 0;
  for (int k = 0; k < 20000; k++) {
    double u = lf_retry_random();
    ASSERT(u >= 0 && u < 1);
    double d = lf_retry_delay(&p, 1, u);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
    sum += d;
  }
  ASSERT(lo >= 8.0 && lo < 8.05); /* the generator covers the range evenly */
  ASSERT(hi <= 12.0 && hi > 11.95);
  ASSERT(fabs(sum / 20000 - 10.0) < 0.05);
  return 0;
}

TEST_IMPL(retry_check_says_why_a_failure_is_not_retried) {
  lf_retry_policy p = {2, 1.0, 1.0, 0, 0};
  lf_state *failed = lf_state_new(LF_TIMEDOUT, "late");
  lf_state *ok = lf_state_new(LF_SUCCESS, NULL);
  ASSERT_NOT_NULL(failed);
  ASSERT_NOT_NULL(ok);
  ASSERT_EQ(lf_retry_check(&p, 1, failed), LF_RETRY_YES); /* TimedOut is a Failed */
  ASSERT_EQ(lf_retry_check(&p, 2, failed), LF_RETRY_YES);
  ASSERT_EQ(lf_retry_check(&p, 3, failed), LF_RETRY_EXHAUSTED);
  ASSERT_EQ(lf_retry_check(&p, 1, ok), LF_RETRY_NOT_FAILED);
  failed->no_retry = 1; /* FAIL(..., {retry = false}) */
  ASSERT_EQ(lf_retry_check(&p, 1, failed), LF_RETRY_REFUSED);
  ASSERT_EQ(lf_retry_check(&p, 3, failed), LF_RETRY_EXHAUSTED);
  ASSERT_STR_EQ(lf_retry_why_not(LF_RETRY_REFUSED),
                "the failure was raised with retry = false");
  ASSERT_STR_EQ(lf_retry_why_not(LF_RETRY_REJECTED), "retry_on rejected this failure");
  ASSERT_STR_EQ(lf_retry_why_not(LF_RETRY_YES), "");
  lf_state_release(failed);
  lf_state_release(ok);
  return 0;
}
