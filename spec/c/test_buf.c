/* The growable byte buffer (buf.c). */
#include "buf.h"
#include "clock.h"
#include "test.h"

TEST_IMPL(buf_decimal_writes_digits_before_the_end) {
  char text[24], *end = text + sizeof text;
  char *p = lf_decimal(end, 0);
  ASSERT_MEM_EQ(p, (size_t)(end - p), "0");
  p = lf_decimal(end, 1234567890);
  ASSERT_MEM_EQ(p, (size_t)(end - p), "1234567890");
  p = lf_decimal(end, 18446744073709551615ull);
  ASSERT_MEM_EQ(p, (size_t)(end - p), "18446744073709551615");
  return 0;
}

/* The printed times: ISO 8601 to the microsecond and the log stamp to the
 * millisecond, both written without strftime for years of four digits. */
TEST_IMPL(clock_formats_times) {
  char buf[64];
  lf_format_iso(1764524000.123456, buf, sizeof buf);
  ASSERT_STR_EQ(buf, "2025-11-30T17:33:20.123456+00:00");
  lf_format_iso(1764524000.9999996, buf, sizeof buf); /* rounds into the next second */
  ASSERT_STR_EQ(buf, "2025-11-30T17:33:21.000000+00:00");
  lf_format_iso(253402300800.5, buf, sizeof buf); /* year 10000: strftime's form */
  ASSERT_STR_EQ(buf, "10000-01-01T00:00:00.500000+00:00");
  lf_format_log_stamp(1764524000.1239, buf, sizeof buf);
  ASSERT_STR_EQ(buf, "2025-11-30 17:33:20.123+0000");
  lf_format_iso(1764524000.123456, buf, 11); /* cut to fit, NUL included */
  ASSERT_STR_EQ(buf, "2025-11-30");
  return 0;
}

TEST_IMPL(buf_grows_and_keeps_its_bytes) {
  lf_buf b = LF_BUF_INIT;
  ASSERT(lf_buf_put(&b, "", 0));
  for (int i = 0; i < 10000; i++)
    ASSERT(lf_buf_putc(&b, (char)('a' + i % 26)));
  ASSERT(lf_buf_put(&b, "xyz", 3));
  ASSERT_EQ(b.len, 10003);
  ASSERT_INT(b.cap, >=, b.len);
  ASSERT_EQ(b.data[0], 'a');
  ASSERT_EQ(b.data[9999], 'a' + 9999 % 26);
  ASSERT(memcmp(b.data + 10000, "xyz", 3) == 0);
  ASSERT_EQ(b.oom, 0);
  size_t cap = b.cap;
  char *data = b.data;
  lf_buf_reset(&b); /* empty, same memory */
  ASSERT_EQ(b.len, 0);
  ASSERT_EQ(b.cap, cap);
  ASSERT(b.data == data);
  ASSERT(lf_buf_reserve(&b, cap)); /* room for cap bytes from len 0: no growth */
  ASSERT(b.data == data);
  lf_buf_free(&b);
  ASSERT_NULL(b.data);
  ASSERT_EQ(b.cap, 0);
  lf_buf_free(&b); /* twice is harmless */
  return 0;
}

TEST_IMPL(buf_reports_a_size_it_cannot_have) {
  lf_buf b = LF_BUF_INIT;
  ASSERT(lf_buf_putc(&b, 'x'));
  ASSERT_EQ(lf_buf_reserve(&b, (size_t)-1 / 2), 0);
  ASSERT_EQ(b.oom, 1);
  ASSERT_EQ(b.len, 1); /* what it held is kept */
  ASSERT_EQ(b.data[0], 'x');
  lf_buf_free(&b);
  return 0;
}
