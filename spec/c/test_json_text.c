/* JSON as text (json_text.c): the checker rewrites one JSON value compactly
 * or names the byte at fault; strings are written as valid UTF-8 JSON. */
#include "json_text.h"
#include "test.h"

/* Rewrites text; returns 0 with out NUL-terminated, or -1 with *err. */
static int rewrite(lf_buf *out, const char *text, lf_json_error *err) {
  lf_buf_reset(out);
  int rc = lf_json_rewrite(out, text, strlen(text), NULL, err);
  if (rc == 0) ASSERT(lf_buf_putc(out, '\0'));
  return rc;
}

#define ASSERT_REWRITES(text, expected)                                                  \
  do {                                                                                   \
    lf_json_error err_;                                                                  \
    ASSERT_OK(rewrite(&out, text, &err_));                                               \
    ASSERT_STR_EQ(out.data, expected);                                                   \
  } while (0)

#define ASSERT_REFUSES(text, offset, why)                                                \
  do {                                                                                   \
    lf_json_error err_ = {0, NULL};                                                      \
    ASSERT_EQ(rewrite(&out, text, &err_), -1);                                           \
    ASSERT_EQ(err_.at, offset);                                                          \
    ASSERT_NOT_NULL(err_.what);                                                          \
    ASSERT_STR_EQ(err_.what, why);                                                       \
  } while (0)

TEST_IMPL(json_text_rewrites_compactly) {
  lf_buf out = LF_BUF_INIT;
  ASSERT_REWRITES(" { \"a\" : [1, 2.5e3, -0, true, false, null] ,\n \"b\":{} } ",
                  "{\"a\":[1,2.5e3,-0,true,false,null],\"b\":{}}");
  ASSERT_REWRITES("\"\\u00e9\\n\\/\"", "\"\xc3\xa9\\n/\"");
  ASSERT_REWRITES("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
  ASSERT_REWRITES("[]", "[]");
  lf_buf_free(&out);
  return 0;
}

TEST_IMPL(json_text_names_the_byte_at_fault) {
  lf_buf out = LF_BUF_INIT;
  ASSERT_REFUSES("", 0, "unexpected end of input");
  ASSERT_REFUSES("[1,]", 3, "unexpected character");
  ASSERT_REFUSES("{\"a\" 1}", 5, "expected ':'");
  ASSERT_REFUSES("[1] 2", 4, "unexpected text after the value"); /* one value only */
  ASSERT_REFUSES("01", 0, "invalid number (leading zero)");
  ASSERT_REFUSES("\"a\xff\"", 2, "invalid UTF-8 in string");    /* strings are UTF-8 */
  ASSERT_REFUSES("\"\xc0\xaf\"", 1, "invalid UTF-8 in string"); /* no overlong form */
  ASSERT_REFUSES("\"\\ud800\"", 1, "unpaired surrogate in \\u escape");
  ASSERT_REFUSES("\"a\nb\"", 2, "control character in string");
  /* nesting: the limit is accepted, one level more is not */
  for (size_t depth = LF_JSON_MAX_DEPTH; depth <= LF_JSON_MAX_DEPTH + 1; depth++) {
    char *deep = malloc(2 * depth + 1);
    ASSERT_NOT_NULL(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    lf_json_error err;
    ASSERT_EQ(rewrite(&out, deep, &err), depth > LF_JSON_MAX_DEPTH ? -1 : 0);
    free(deep);
  }
  lf_buf_free(&out);
  return 0;
}

TEST_IMPL(json_text_writes_strings_as_utf8_json) {
  lf_buf out = LF_BUF_INIT;
  ASSERT_OK(lf_json_put_string(&out, "a\"b\\c\n\x01", 7));
  ASSERT_MEM_EQ(out.data, out.len, "\"a\\\"b\\\\c\\n\\u0001\"");
  lf_buf_reset(&out);
  /* a byte that is not UTF-8 is kept as the Latin-1 character of that byte */
  ASSERT_OK(lf_json_put_escaped(&out, "x\xffy\xc3\xa9", 5));
  ASSERT_MEM_EQ(out.data, out.len, "x\\u00ffy\xc3\xa9");
  lf_buf_free(&out);

  char enc[4];
  ASSERT_EQ(lf_utf8_encode(0x41, enc), 1);
  ASSERT_EQ(lf_utf8_encode(0xe9, enc), 2);
  ASSERT_EQ(lf_utf8_encode(0x20ac, enc), 3);
  ASSERT_EQ(lf_utf8_encode(0x1f600, enc), 4);
  ASSERT(memcmp(enc, "\xf0\x9f\x98\x80", 4) == 0);
  ASSERT_EQ(lf_utf8_sequence((const unsigned char *)"\xc3\xa9", 2), 2);
  ASSERT_EQ(lf_utf8_sequence((const unsigned char *)"\xc3", 1), 0); /* cut */
  ASSERT_EQ(lf_utf8_sequence((const unsigned char *)"\xed\xa0\x80", 3),
            0); /* surrogate */
  ASSERT_EQ(lf_utf8_sequence((const unsigned char *)"\xf4\x90\x80\x80", 4),
            0); /* > 10FFFF */
  return 0;
}

TEST_IMPL(json_text_number_grammar) {
  static const struct {
    const char *text;
    int ok;
    size_t len; /* of the number, when ok */
  } cases[] = {
      {"0", 1, 1},  {"-12.5e+3,", 1, 8}, {"1E9]", 1, 3}, {"-", 0, 0},
      {"1.", 0, 0}, {"1.e5", 0, 0},      {"1e", 0, 0},   {"-01", 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *t = cases[i].text;
    lf_json_error err = {0, NULL};
    const char *end = lf_json_number_end(t, t, t + strlen(t), &err);
    if (cases[i].ok) {
      ASSERT_NOT_NULL(end);
      ASSERT_EQ(end - t, cases[i].len);
    } else {
      ASSERT_NULL(end);
      ASSERT_NOT_NULL(err.what);
    }
  }
  return 0;
}
