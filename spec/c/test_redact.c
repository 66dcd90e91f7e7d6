/* Redaction (redact.c) and the matcher under it (acmatch.c): every form of a
 * secret becomes ****, overlapping ones one ****, short values are refused,
 * and the automaton reports every occurrence in order. */
#include "acmatch.h"
#include "redact.h"
#include "test.h"

typedef struct {
  size_t pattern[16], end[16];
  int n;
} hits;

static int record_hit(void *ud, size_t pattern, size_t end) {
  hits *h = ud;
  ASSERT_INT(h->n, <, 16);
  h->pattern[h->n] = pattern, h->end[h->n] = end;
  h->n++;
  return 0;
}

TEST_IMPL(acmatch_finds_every_occurrence) {
  const char *patterns[] = {"he", "she", "his", "hers", "he"};
  size_t lens[] = {2, 3, 3, 4, 2};
  lf_ac *ac = lf_ac_build(patterns, lens, 5);
  ASSERT_NOT_NULL(ac);
  ASSERT_EQ(lf_ac_max_len(ac), 4);
  hits h = {{0}, {0}, 0};
  ASSERT_EQ(lf_ac_scan(ac, "ushers", 6, record_hit, &h), 3);
  /* in the order of their ends; "she" and "he" end at the same byte */
  ASSERT_EQ(h.end[0], 4);
  ASSERT_EQ(h.end[1], 4);
  ASSERT((h.pattern[0] == 1 && h.pattern[1] == 0) ||
         (h.pattern[0] == 0 && h.pattern[1] == 1));
  ASSERT_EQ(h.pattern[2], 3); /* hers */
  ASSERT_EQ(h.end[2], 6);
  h.n = 0;
  ASSERT_EQ(lf_ac_scan(ac, "nothing", 7, record_hit, &h), 0);
  ASSERT_EQ(lf_ac_scan(ac, "a\0hishe", 7, record_hit, &h), 3); /* bytes, NUL included */
  lf_ac_free(ac);
  return 0;
}

static int stop_at_first(void *ud, size_t pattern, size_t end) {
  (void)pattern, (void)end;
  ++*(int *)ud;
  return 1;
}

TEST_IMPL(acmatch_stops_when_asked) {
  const char *patterns[] = {"ab"};
  size_t lens[] = {2};
  lf_ac *ac = lf_ac_build(patterns, lens, 1);
  ASSERT_NOT_NULL(ac);
  int calls = 0;
  lf_ac_scan(ac, "ababab", 6, stop_at_first, &calls);
  ASSERT_EQ(calls, 1);
  lf_ac_free(ac);
  return 0;
}

/* Counts occurrences and sums their (pattern, end) pairs, to compare. */
typedef struct {
  size_t count, sum;
} tally;

static int tally_hit(void *ud, size_t pattern, size_t end) {
  tally *t = ud;
  t->count++;
  t->sum += (pattern + 1) * 1000003u + end;
  return 0;
}

/* Random patterns over a small alphabet (so they overlap and repeat) against
 * a search at every offset: the skipping at the root loses nothing, whatever
 * the shortest pattern (1 byte, 2, a few, longer than the skip table holds). */
TEST_IMPL(acmatch_random_against_brute_force) {
  unsigned seed = 12345;
#define NEXT() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)
  static const size_t shortest[] = {1, 2, 3, 6, 11, 300};
  for (size_t round = 0; round < 300; round++) {
    size_t m = shortest[round % 6], n = 1 + NEXT() % 12;
    const char *pats[12];
    size_t lens[12];
    char *store = malloc(n * (m + 8));
    ASSERT_NOT_NULL(store);
    for (size_t i = 0; i < n; i++) {
      lens[i] = m + (i ? NEXT() % 8 : 0);
      for (size_t j = 0; j < lens[i]; j++)
        store[i * (m + 8) + j] = (char)('a' + NEXT() % 3);
      pats[i] = store + i * (m + 8);
    }
    size_t len = NEXT() % 900;
    char *text = malloc(len + 1);
    ASSERT_NOT_NULL(text);
    for (size_t j = 0; j < len; j++) /* mostly letters no pattern holds */
      text[j] = (char)(NEXT() % 4 ? 'a' + NEXT() % 3 : 'x' + NEXT() % 3);
    if (len > m && NEXT() % 2) memcpy(text + NEXT() % (len - m), pats[0], m);
    tally want = {0, 0}, got = {0, 0};
    for (size_t end = 1; end <= len; end++)
      for (size_t i = 0; i < n; i++) {
        int first = 1; /* identical patterns: reported under the first */
        for (size_t k = 0; k < i; k++)
          if (lens[k] == lens[i] && memcmp(pats[k], pats[i], lens[i]) == 0) first = 0;
        if (first && lens[i] <= end &&
            memcmp(text + end - lens[i], pats[i], lens[i]) == 0)
          tally_hit(&want, i, end);
      }
    lf_ac *ac = lf_ac_build(pats, lens, n);
    ASSERT_NOT_NULL(ac);
    ASSERT_EQ(lf_ac_scan(ac, text, len, tally_hit, &got), want.count);
    ASSERT_EQ(got.count, want.count);
    ASSERT_EQ(got.sum, want.sum);
    lf_ac_free(ac);
    free(text);
    free(store);
  }
#undef NEXT
  return 0;
}

/* Redacts text; returns a malloc'ed NUL-terminated copy of the result. */
static char *redacted(const char *text) {
  size_t out_len;
  int allocated;
  char *r = lf_redact(text, strlen(text), &out_len, &allocated);
  char *copy = malloc(out_len + 1);
  ASSERT_NOT_NULL(copy);
  memcpy(copy, r, out_len);
  copy[out_len] = '\0';
  if (allocated) free(r);
  return copy;
}

#define ASSERT_REDACTS(text, expected)                                                   \
  do {                                                                                   \
    char *got_ = redacted(text);                                                         \
    ASSERT_STR_EQ(got_, expected);                                                       \
    free(got_);                                                                          \
  } while (0)

TEST_IMPL(redact_hides_every_form) {
  lf_redact_clear();
  ASSERT_EQ(lf_redact_add("open sesame/now", 15), 1);
  ASSERT_EQ(lf_redact_add("pa\"ss\\wd", 8), 1);
  ASSERT_REDACTS("nothing to hide", "nothing to hide");
  ASSERT_REDACTS("say open sesame/now!", "say ****!");
  ASSERT_REDACTS("url open%20sesame%2Fnow end", "url **** end");
  ASSERT_REDACTS("form open+sesame%2fnow end", "form **** end");
  ASSERT_REDACTS("json pa\\\"ss\\\\wd end", "json **** end");
  /* SMTP AUTH LOGIN sends it in base64: cGEic3Ncd2Q= */
  int allocated;
  size_t n;
  const char *b64 = "AUTH cGEic3Ncd2Q=";
  char *r = lf_redact(b64, strlen(b64), &n, &allocated);
  ASSERT(allocated);
  ASSERT(memmem(r, n, "****", 4) != NULL);
  free(r);
  lf_redact_clear();
  ASSERT_REDACTS("say open sesame/now!", "say open sesame/now!");
  return 0;
}

/* A thread keeps the snapshot it used last: a secret added after it, or the
 * secrets cleared, are seen by its next redaction all the same, and a
 * snapshot in use (acquired) stays valid while a newer one is made. */
TEST_IMPL(redact_sees_secrets_added_after_a_redaction) {
  lf_redact_clear();
  ASSERT_EQ(lf_redact_add("first-secret", 12), 1);
  ASSERT_REDACTS("a first-secret b second-secret", "a **** b second-secret");
  const lf_redactor *held = lf_redactor_acquire();
  ASSERT_NOT_NULL(held);
  ASSERT_EQ(lf_redact_add("second-secret", 13), 1);
  ASSERT_REDACTS("a first-secret b second-secret", "a **** b ****");
  size_t n;
  int allocated;
  char *r = lf_redact_with(held, "x first-secret y", 16, &n, &allocated);
  ASSERT(allocated);
  ASSERT_MEM_EQ(r, n, "x **** y");
  free(r);
  lf_redactor_release(held);
  ASSERT_REDACTS("a first-secret b second-secret", "a **** b ****");
  lf_redact_clear();
  ASSERT_REDACTS("a first-secret b second-secret", "a first-secret b second-secret");
  return 0;
}

TEST_IMPL(redact_merges_overlaps_and_refuses_short_values) {
  lf_redact_clear();
  ASSERT_EQ(lf_redact_add("short", 5), 0); /* under LF_REDACT_MIN */
  ASSERT_EQ(lf_redact_add("abcabcabd", 9), 1);
  ASSERT_EQ(lf_redact_add("abcabd-1", 8), 1);
  ASSERT_EQ(lf_redact_add("abcabcabd", 9), 1); /* already hidden */
  ASSERT_REDACTS("a short text", "a short text");
  /* overlapping and touching occurrences become one **** */
  ASSERT_REDACTS("xabcabcabd-1y", "x****y");
  ASSERT_REDACTS("abcabcabdabcabcabd", "****");
  lf_redact_clear();
  return 0;
}

static void count_form(void *ud, const char *form, size_t n) {
  int *count = ud;
  ASSERT_INT(n, >, 0);
  /* each form, shown alone, is hidden */
  size_t out_len;
  int allocated;
  char *r = lf_redact(form, n, &out_len, &allocated);
  ASSERT(allocated);
  ASSERT(memmem(r, out_len, form, n) == NULL);
  free(r);
  ++*count;
}

TEST_IMPL(redact_forms_are_each_hidden) {
  lf_redact_clear();
  const char *secret = "tok\"en\\9x 100%";
  ASSERT_EQ(lf_redact_add(secret, strlen(secret)), 1);
  int count = 0;
  int forms = lf_redact_forms(secret, strlen(secret), count_form, &count);
  ASSERT_INT(forms, >=, 8);
  ASSERT_EQ(count, forms);
  lf_redact_clear();
  return 0;
}
