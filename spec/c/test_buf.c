/* The growable byte buffer (buf.c). */
#include "buf.h"
#include "test.h"

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
