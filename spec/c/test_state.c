/* States (state.c) and signals (signals.c): the class table comes from
 * LF_STATE_MAP, membership follows the parents, values are refcounted. */
#include "signals.h"
#include "state.h"
#include "test.h"

static const struct {
  lf_kind kind, parent;
  const char *name, *color;
} classes[] = {
#define XX(e, name, parent, color) {LF_##e, LF_##parent, #name, color},
    LF_STATE_MAP(XX)
#undef XX
};
#define NCLASSES (int)(sizeof classes / sizeof classes[0])

/* Whether a is b or one of b's descendants, walking the list's parents. */
static int descends(lf_kind a, lf_kind b) {
  for (;;) {
    if (a == b) return 1;
    if (classes[a].parent == a) return 0;
    a = classes[a].parent;
  }
}

TEST_IMPL(state_class_table) {
  ASSERT_EQ(NCLASSES, LF_NKINDS);
  for (int k = 0; k < NCLASSES; k++) {
    ASSERT_EQ(classes[k].kind, k);
    /* a parent comes before its children: the list is in hierarchy order */
    ASSERT_INT(classes[k].parent, <=, k);
    ASSERT_STR_EQ(lf_kind_name((lf_kind)k), classes[k].name);
    ASSERT_STR_EQ(lf_kind_color[k], classes[k].color);
    ASSERT_EQ(lf_kind_from_name(classes[k].name, strlen(classes[k].name)), k);
  }
  ASSERT_EQ(lf_kind_from_name("Fail", 4), -1);
  ASSERT_EQ(lf_kind_from_name("Failedx", 7), -1);
  ASSERT_STR_EQ(lf_kind_name(LF_NKINDS), "?");
  ASSERT_STR_EQ(lf_kind_name((lf_kind)-1), "?");
  return 0;
}

TEST_IMPL(state_masks_follow_the_parents) {
  for (int a = 0; a < LF_NKINDS; a++) {
    lf_state *s = lf_state_new((lf_kind)a, NULL);
    ASSERT_NOT_NULL(s);
    for (int b = 0; b < LF_NKINDS; b++) {
      int expected = descends((lf_kind)a, (lf_kind)b);
      ASSERT_EQ(lf_state_is(s, (lf_kind)b), expected);
      ASSERT_EQ(LF_IS(s, b), expected);
      ASSERT_EQ((lf_kind_mask[a] >> b) & 1u, expected);
    }
    ASSERT_EQ(lf_state_is(s, LF_NKINDS), 0);
    ASSERT_EQ(lf_state_is(s, (lf_kind)-1), 0);
    lf_state_release(s);
  }
  ASSERT_EQ(lf_state_is(NULL, LF_STATE), 0);
  /* Prefect 1's tree, spot-checked by hand */
  lf_state *timed_out = lf_state_new(LF_TIMEDOUT, "late");
  ASSERT(lf_state_is(timed_out, LF_FAILED) && lf_state_is(timed_out, LF_FINISHED));
  ASSERT(!lf_state_is(timed_out, LF_SUCCESS) && !lf_state_is(timed_out, LF_RUNNING));
  lf_state_release(timed_out);
  ASSERT(lf_kind_is_scheduled_family(LF_RETRYING) &&
         lf_kind_is_scheduled_family(LF_PAUSED));
  ASSERT(lf_kind_is_scheduled_family(LF_QUEUED) &&
         !lf_kind_is_scheduled_family(LF_PENDING));
  return 0;
}

TEST_IMPL(state_values) {
  ASSERT_NULL(lf_state_new(LF_NKINDS, "x"));
  lf_state *s = lf_state_new(LF_FAILED, "boom");
  ASSERT_NOT_NULL(s);
  ASSERT_EQ(lf_state_kind(s), LF_FAILED);
  ASSERT_STR_EQ(lf_state_message(s), "boom");
  ASSERT_EQ(lf_state_run_count(s), 1);
  ASSERT_EQ(lf_state_loop_count(s), 1);
  double t = 42;
  ASSERT_EQ(lf_state_start_time(s, &t), 0);
  ASSERT(t == 42); /* left alone */
  lf_state *none = lf_state_new(LF_SUCCESS, NULL);
  ASSERT_NULL(lf_state_message(none));
  lf_state_release(none);

  lf_value v = {0};
  v.type = LF_FIELD_STRING;
  v.s = "a\0b";
  v.len = 3;
  ASSERT_OK(lf_state_add_field(s, "label", &v));
  v.type = LF_FIELD_INT;
  v.i = 7;
  ASSERT_OK(lf_state_add_field(s, "n", &v));
  ASSERT_EQ(lf_state_nfields(s), 2);
  ASSERT_STR_EQ(lf_state_field_name(s, 0), "label");
  ASSERT_STR_EQ(lf_state_field_name(s, 1), "n");
  ASSERT_NULL(lf_state_field_name(s, 2));
  ASSERT_NULL(lf_state_field_name(s, -1));
  lf_value got;
  ASSERT_EQ(lf_state_field(s, "label", &got), LF_FIELD_STRING);
  ASSERT_EQ(got.len, 3);
  ASSERT(memcmp(got.s, "a\0b", 4) == 0); /* copied, NUL-terminated */
  ASSERT_EQ(lf_state_field(s, "n", &got), LF_FIELD_INT);
  ASSERT_EQ(got.i, 7);
  ASSERT_EQ(lf_state_field(s, "missing", &got), LF_FIELD_NONE);

  ASSERT(lf_state_ref(s) == s);
  ASSERT_EQ(s->refs, 2);
  lf_state_release(s);
  ASSERT_STR_EQ(lf_state_message(s), "boom"); /* one reference left */
  lf_state_release(s);
  ASSERT_NULL(lf_state_ref(NULL));
  lf_state_release(NULL);

  lf_state *st = lf_state_static(LF_RUNNING, "Starting task run.");
  ASSERT_STR_EQ(lf_state_message(st), "Starting task run.");
  lf_state_release(st);
  lf_state *nl = lf_state_newl(LF_SKIPPED, "skipped-and-more", 7);
  ASSERT_STR_EQ(lf_state_message(nl), "skipped");
  lf_state_release(nl);
  return 0;
}

TEST_IMPL(signal_table) {
  static const struct {
    lf_signal code;
    const char *name;
    lf_kind kind;
  } expected[] = {
#define XX(name, kind, options) {LF_SIG_##name, #name, LF_##kind},
      LF_SIGNAL_MAP(XX)
#undef XX
  };
  int n = (int)(sizeof expected / sizeof expected[0]);
  ASSERT_EQ(n, LF_NSIGNALS - 1);
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(expected[i].code, i + 1); /* codes are positions: only ever append */
    ASSERT_STR_EQ(lf_signal_name(expected[i].code), expected[i].name);
    ASSERT_EQ(lf_signal_kind(expected[i].code), expected[i].kind);
  }
  ASSERT_NULL(lf_signal_name(LF_SIG_NONE));
  ASSERT_NULL(lf_signal_name(LF_NSIGNALS));
  ASSERT_EQ(lf_signal_kind(LF_SIG_NONE), LF_FAILED); /* a plain error fails */
  ASSERT_EQ(lf_signal_options(LF_SIG_RETRY), LF_SIGOPT_START_TIME | LF_SIGOPT_RUN_COUNT);
  ASSERT_EQ(lf_signal_options(LF_SIG_PAUSE), LF_SIGOPT_START_TIME);
  ASSERT_EQ(lf_signal_options(LF_SIG_FAIL), 0);
  ASSERT_EQ(lf_signal_for_kind(LF_TRIGGERFAILED), LF_SIG_TRIGGERFAIL);
  ASSERT_EQ(lf_signal_for_kind(LF_PAUSED), LF_SIG_PAUSE);
  ASSERT_EQ(lf_signal_for_kind(LF_SKIPPED), LF_SIG_SKIP);
  ASSERT_EQ(lf_signal_for_kind(LF_STATE), LF_SIG_NONE); /* not ENDRUN's placeholder */
  ASSERT_EQ(lf_signal_for_kind(LF_CANCELLED), LF_SIG_NONE);
  return 0;
}
