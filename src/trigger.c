/* The built-in triggers with Prefect 1's messages; Lua-free. */
#include "trigger.h"
#include "state.h"

static const char *const trigger_name[LF_NTRIGGERS] = {
#define LF_XX(e, name) [LF_TRIGGER_##e] = #name,
    LF_TRIGGER_MAP(LF_XX)
#undef LF_XX
};

const char *lf_trigger_name(int trigger) {
  return trigger > 0 && trigger < LF_NTRIGGERS ? trigger_name[trigger] : NULL;
}

static int count(lf_state *const *states, int n, lf_kind cls) {
  int c = 0;
  for (int i = 0; i < n; i++)
    c += (int)LF_IS(states[i], cls);
  return c;
}

static lf_trigger_result fail(const char *message) {
  lf_trigger_result r = {0, LF_TRIGGERFAILED, message};
  return r;
}

/* A bound below 1 is a fraction of the upstreams, else a count. */
static double bound(double v, int n, double unset) {
  if (v < 0) return unset;
  return v < 1 ? v * n : v;
}

lf_trigger_result lf_trigger_check(int trigger, lf_state *const *states, int n,
                                   double at_least, double at_most, int resume) {
  lf_trigger_result pass = {1, LF_STATE, NULL};
  switch (trigger) {
  case LF_TRIGGER_ALL_SUCCESSFUL:
    if (count(states, n, LF_SUCCESS) == n) return pass;
    return fail("Trigger was \"all_successful\" but some of the upstream tasks failed.");
  case LF_TRIGGER_ALL_FAILED:
    if (count(states, n, LF_FAILED) == n) return pass;
    return fail("Trigger was \"all_failed\" but some of the upstream tasks succeeded.");
  case LF_TRIGGER_ANY_SUCCESSFUL:
    if (n == 0 || count(states, n, LF_SUCCESS) > 0) return pass;
    return fail(
        "Trigger was \"any_successful\" but none of the upstream tasks succeeded.");
  case LF_TRIGGER_ANY_FAILED:
    if (n == 0 || count(states, n, LF_FAILED) > 0) return pass;
    return fail("Trigger was \"any_failed\" but none of the upstream tasks failed.");
  case LF_TRIGGER_ALL_FINISHED:
    if (count(states, n, LF_FINISHED) == n) return pass;
    return fail(
        "Trigger was \"all_finished\" but some of the upstream tasks were not finished.");
  case LF_TRIGGER_MANUAL_ONLY: {
    if (resume) return pass;
    lf_trigger_result r = {0, LF_PAUSED, "Trigger function is \"manual_only\""};
    return r;
  }
  case LF_TRIGGER_NOT_ALL_SKIPPED:
    if (count(states, n, LF_SKIPPED) == n) {
      lf_trigger_result r = {0, LF_SKIPPED, "All upstreams were skipped"};
      return r;
    }
    if (count(states, n, LF_SUCCESS) == n) return pass;
    return fail("Trigger was \"not_all_skipped\" but some of the upstream tasks failed.");
  case LF_TRIGGER_SOME_SUCCESSFUL:
  case LF_TRIGGER_SOME_FAILED: {
    int ok = trigger == LF_TRIGGER_SOME_SUCCESSFUL;
    if (n == 0) return pass; /* as Prefect: no upstreams, nothing to count */
    double c = count(states, n, ok ? LF_SUCCESS : LF_FAILED);
    if (bound(at_least, n, 0) <= c && c <= bound(at_most, n, n)) return pass;
    return fail(ok ? "Trigger was \"some_successful\" but thresholds were not met."
                   : "Trigger was \"some_failed\" but thresholds were not met.");
  }
  default:
    return pass;
  }
}
