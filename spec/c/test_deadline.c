/* Durations as the overdue messages show them (deadline.c). */
#include "deadline.h"
#include "test.h"

static const char *shown(double seconds) {
  static char out[64];
  lf_format_duration(out, sizeof out, seconds);
  return out;
}

TEST_IMPL(deadline_durations_read_like_a_person_writes_them) {
  ASSERT_STR_EQ(shown(0.25), "0.25s");
  ASSERT_STR_EQ(shown(0.05), "0.05s");
  ASSERT_STR_EQ(shown(1.5), "1.5s");
  ASSERT_STR_EQ(shown(2.001), "2s");
  ASSERT_STR_EQ(shown(9.96), "9.96s");
  ASSERT_STR_EQ(shown(9.996), "10s");
  ASSERT_STR_EQ(shown(45), "45s");
  ASSERT_STR_EQ(shown(59.6), "1m");
  ASSERT_STR_EQ(shown(600), "10m");
  ASSERT_STR_EQ(shown(725), "12m 5s");
  ASSERT_STR_EQ(shown(3600), "1h");
  ASSERT_STR_EQ(shown(3725), "1h 2m 5s");
  ASSERT_STR_EQ(shown(7205), "2h 5s");
  ASSERT_STR_EQ(shown(-3), "0s");
  ASSERT_STR_EQ(shown(1e300), "277777777777h 46m 40s");
  return 0;
}
