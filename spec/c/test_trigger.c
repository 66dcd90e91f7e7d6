/* The built-in triggers (trigger.c): Prefect 1's rules and messages. */
#include "state.h"
#include "test.h"
#include "trigger.h"

/* States of the given classes (LF_NKINDS ends the list). */
static int make(lf_state **out, const lf_kind *kinds) {
  int n = 0;
  for (; kinds[n] != LF_NKINDS; n++)
    ASSERT_NOT_NULL(out[n] = lf_state_new(kinds[n], NULL));
  return n;
}

static void release(lf_state **s, int n) {
  for (int i = 0; i < n; i++)
    lf_state_release(s[i]);
}

static lf_trigger_result check(int trigger, const lf_kind *kinds) {
  lf_state *s[16];
  int n = make(s, kinds);
  lf_trigger_result r = lf_trigger_check(trigger, s, n, -1, -1, 0);
  release(s, n);
  return r;
}

#define END LF_NKINDS
static const lf_kind all_ok[] = {LF_SUCCESS, LF_CACHED, LF_SKIPPED, END};
static const lf_kind one_failed[] = {LF_SUCCESS, LF_TIMEDOUT, END};
static const lf_kind all_failed[] = {LF_FAILED, LF_TRIGGERFAILED, END};
static const lf_kind all_skipped[] = {LF_SKIPPED, LF_SKIPPED, END};
static const lf_kind running[] = {LF_SUCCESS, LF_RUNNING, END};
static const lf_kind none[] = {END};

TEST_IMPL(trigger_names_from_the_list) {
  ASSERT_STR_EQ(lf_trigger_name(LF_TRIGGER_ALL_SUCCESSFUL), "all_successful");
  ASSERT_STR_EQ(lf_trigger_name(LF_TRIGGER_SOME_FAILED), "some_failed");
  ASSERT_NULL(lf_trigger_name(LF_TRIGGER_LUA));
  ASSERT_NULL(lf_trigger_name(LF_NTRIGGERS));
  ASSERT_EQ(LF_NTRIGGERS, 10);
  return 0;
}

TEST_IMPL(trigger_all_and_any) {
  ASSERT(check(LF_TRIGGER_ALL_SUCCESSFUL, all_ok).pass);
  lf_trigger_result r = check(LF_TRIGGER_ALL_SUCCESSFUL, one_failed);
  ASSERT(!r.pass);
  ASSERT_EQ(r.kind, LF_TRIGGERFAILED);
  ASSERT_STR_EQ(r.message,
                "Trigger was \"all_successful\" but some of the upstream tasks failed.");
  ASSERT(check(LF_TRIGGER_ALL_FAILED, all_failed).pass);
  ASSERT(!check(LF_TRIGGER_ALL_FAILED, one_failed).pass);
  ASSERT(check(LF_TRIGGER_ANY_SUCCESSFUL, one_failed).pass);
  ASSERT(!check(LF_TRIGGER_ANY_SUCCESSFUL, all_failed).pass);
  ASSERT(check(LF_TRIGGER_ANY_SUCCESSFUL, none).pass); /* nothing upstream */
  ASSERT(check(LF_TRIGGER_ANY_FAILED, one_failed).pass);
  r = check(LF_TRIGGER_ANY_FAILED, all_ok);
  ASSERT_STR_EQ(r.message,
                "Trigger was \"any_failed\" but none of the upstream tasks failed.");
  ASSERT(check(LF_TRIGGER_ALL_FINISHED, one_failed).pass);
  r = check(LF_TRIGGER_ALL_FINISHED, running);
  ASSERT(!r.pass);
  ASSERT_STR_EQ(
      r.message,
      "Trigger was \"all_finished\" but some of the upstream tasks were not finished.");
  return 0;
}

TEST_IMPL(trigger_manual_only_and_not_all_skipped) {
  lf_trigger_result r = check(LF_TRIGGER_MANUAL_ONLY, all_ok);
  ASSERT(!r.pass);
  ASSERT_EQ(r.kind, LF_PAUSED);
  ASSERT_STR_EQ(r.message, "Trigger function is \"manual_only\"");
  lf_state *s[4];
  int n = make(s, all_ok);
  ASSERT(lf_trigger_check(LF_TRIGGER_MANUAL_ONLY, s, n, -1, -1, 1).pass); /* approved */
  release(s, n);
  r = check(LF_TRIGGER_NOT_ALL_SKIPPED, all_skipped);
  ASSERT(!r.pass);
  ASSERT_EQ(r.kind, LF_SKIPPED);
  ASSERT_STR_EQ(r.message, "All upstreams were skipped");
  ASSERT(check(LF_TRIGGER_NOT_ALL_SKIPPED, all_ok).pass);
  r = check(LF_TRIGGER_NOT_ALL_SKIPPED, one_failed);
  ASSERT_EQ(r.kind, LF_TRIGGERFAILED);
  return 0;
}

TEST_IMPL(trigger_some_with_bounds) {
  static const lf_kind mix[] = {LF_SUCCESS, LF_SUCCESS, LF_SUCCESS, LF_FAILED, END};
  lf_state *s[4];
  int n = make(s, mix);
  /* counts */
  ASSERT(lf_trigger_check(LF_TRIGGER_SOME_SUCCESSFUL, s, n, 3, -1, 0).pass);
  ASSERT(!lf_trigger_check(LF_TRIGGER_SOME_SUCCESSFUL, s, n, 4, -1, 0).pass);
  ASSERT(!lf_trigger_check(LF_TRIGGER_SOME_SUCCESSFUL, s, n, -1, 2, 0).pass);
  ASSERT(lf_trigger_check(LF_TRIGGER_SOME_FAILED, s, n, 1, 1, 0).pass);
  /* below 1: a fraction of the upstreams (0.75 * 4 = 3 succeeded) */
  ASSERT(lf_trigger_check(LF_TRIGGER_SOME_SUCCESSFUL, s, n, 0.75, -1, 0).pass);
  lf_trigger_result r = lf_trigger_check(LF_TRIGGER_SOME_FAILED, s, n, 0.5, -1, 0);
  ASSERT(!r.pass);
  ASSERT_STR_EQ(r.message, "Trigger was \"some_failed\" but thresholds were not met.");
  release(s, n);
  /* no upstreams: nothing to count, as Prefect */
  ASSERT(lf_trigger_check(LF_TRIGGER_SOME_SUCCESSFUL, NULL, 0, 5, -1, 0).pass);
  /* an unknown id passes */
  ASSERT(lf_trigger_check(LF_NTRIGGERS + 3, NULL, 0, -1, -1, 0).pass);
  return 0;
}
