/* libFuzzer harness: the redactor (src/redact.c, its C entry points).
 * A fixed set of secrets is registered once (quotes, backslashes, percent
 * signs, a line break, UTF-8, self-overlapping ones, a long one); the input
 * is the text. Property: the output never holds a registered secret, and
 * redacting it again changes nothing (no piece of a secret is left that a
 * second look would find). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "redact.h"

static const char *const SECRETS[] = {
    "hunter2-pass",
    "tok\"en\\9x",
    "pct%41%zz",
    "line1\nline2",
    "abcabcabd",
    "abcabd-1",
    "\xc3\xa9\xc3\xbc-\xc3\xbcn\xc3\xaf",
    "0123456789",
    "sk-live-"
    "4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
    "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c"
    "8d7e6f5a4b3c2d1e0",
};
#define NSECRETS (sizeof SECRETS / sizeof SECRETS[0])

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  for (size_t i = 0; i < NSECRETS; i++)
    if (!lf_redact_add(SECRETS[i], strlen(SECRETS[i]))) abort();
  return 0;
}

static int holds(const char *text, size_t len, const char *s) {
  return memmem(text, len, s, strlen(s)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  size_t out_len = 0;
  int allocated = 0;
  char *out = lf_redact(text, size, &out_len, &allocated);
  if (!out) abort();
  for (size_t i = 0; i < NSECRETS; i++)
    if (holds(out, out_len, SECRETS[i])) {
      fprintf(stderr, "secret %zu survives redaction\n", i);
      abort();
    }
  size_t again_len = 0;
  int again_allocated = 0;
  char *again = lf_redact(out, out_len, &again_len, &again_allocated);
  if (!again || again_len != out_len || memcmp(again, out, out_len) != 0) {
    fprintf(stderr, "redacting the output again changed it\n");
    abort();
  }
  if (again_allocated) free(again);
  if (allocated) free(out);
  return 0;
}
