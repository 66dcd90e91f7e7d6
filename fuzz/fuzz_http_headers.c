/* libFuzzer harness: the HTTP response header parser (src/http.c), fed a
 * raw header block as libcurl hands it over (status line first).
 * Property: nothing crashes, leaks or trips a sanitizer; every header has a
 * non-empty name without ':' or a line feed, and its value holds no line
 * feed and no leading or trailing blank. (A bare CR inside a line is not a
 * line end to the parser, as it is not to libcurl, and may appear.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The parser is private to http.c: the harness is compiled with it. */
#include "../src/http.c"

static int blank(char c) {
  return c == ' ' || c == '\t';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* libcurl refuses a header line holding a NUL byte ("Nul byte in header")
   * before this parser sees it: such blocks are outside the parser's world */
  if (memchr(data, 0, size)) return 0;
  lf_http_response res;
  memset(&res, 0, sizeof res);
  if (parse_headers((const char *)data, size, &res) == 0) {
    for (size_t i = 0; i < res.nheaders; i++) {
      const char *name = res.headers[i].name, *value = res.headers[i].value;
      size_t vlen = strlen(value);
      if (!name[0] || strpbrk(name, ":\n") || strchr(value, '\n')) abort();
      if (vlen && (blank(value[0]) || blank(value[vlen - 1]))) abort();
    }
  }
  lf_http_response_free(&res);
  return 0;
}
