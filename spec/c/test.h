/* The C unit tests' macros (libuv's test/task.h habit): TEST_IMPL(name)
 * defines a test, listed once in test_list.h; an ASSERT that fails prints
 * the expression, both values and where, then aborts the test's process. */
#ifndef LF_TEST_H
#define LF_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_IMPL(name)                                                                  \
  int run_test_##name(void);                                                             \
  int run_test_##name(void)

#define TEST_FAIL(...)                                                                   \
  do {                                                                                   \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                      \
    fprintf(stderr, __VA_ARGS__);                                                        \
    fputc('\n', stderr);                                                                 \
    abort();                                                                             \
  } while (0)

#define ASSERT(expr)                                                                     \
  do {                                                                                   \
    if (!(expr)) TEST_FAIL("assertion failed: %s", #expr);                               \
  } while (0)

/* Integers of any width (long long), compared with op. */
#define ASSERT_INT(a, op, b)                                                             \
  do {                                                                                   \
    long long a_ = (long long)(a), b_ = (long long)(b);                                  \
    if (!(a_ op b_))                                                                     \
      TEST_FAIL("%s %s %s: %lld %s %lld is false", #a, #op, #b, a_, #op, b_);            \
  } while (0)
#define ASSERT_EQ(a, b) ASSERT_INT(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT(a, !=, b)
#define ASSERT_OK(a) ASSERT_INT(a, ==, 0)

#define ASSERT_NULL(p) ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)

/* NUL-terminated strings; NULL is shown as (null). */
#define ASSERT_STR_EQ(a, b)                                                              \
  do {                                                                                   \
    const char *a_ = (a), *b_ = (b);                                                     \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                               \
      TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                \
                b_ ? b_ : "(null)");                                                     \
  } while (0)

/* Bytes: a (alen bytes) equals the string b. */
#define ASSERT_MEM_EQ(a, alen, b)                                                        \
  do {                                                                                   \
    const char *a_ = (a), *b_ = (b);                                                     \
    size_t alen_ = (alen);                                                               \
    if (alen_ != strlen(b_) || memcmp(a_, b_, alen_) != 0)                               \
      TEST_FAIL("%s == %s: \"%.*s\" != \"%s\"", #a, #b, (int)alen_, a_, b_);             \
  } while (0)

#endif
