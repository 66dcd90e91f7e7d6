/* Durations as the overdue messages show them (deadline.c). */
#include "deadline.h"
#include "test.h"

TEST_IMPL(deadline_durations_read_like_a_person_writes_them) {
  static const struct {
    double seconds;
    const char *shown;
  } cases[] = {
      {0.25, "0.25s"}, {0.05, "0.05s"}, {1.5, "1.5s"},
      {2.001, "2s"},   {9.96, "9.96s"}, {9.996, "10s"},
      {45, "45s"},     {59.6, "1m"},    {600, "10m"},
      {725, "12m 5s"}, {3600, "1h"},    {3725, "1h 2m 5s"},
      {7205, "2h 5s"}, {-3, "0s"},      {1e300, "277777777777h 46m 40s"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char out[64];
    lf_format_duration(out, sizeof out, cases[k].seconds);
    ASSERT_STR_EQ(out, cases[k].shown);
  }
  return 0;
}
