#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "redact.h"

typedef struct {
  char *text;
  size_t len;
} lf_secret;

static lf_secret
    *secrets; /* longest first, so a secret inside another is not half-hidden */
static int nsecrets, cap;

static int add_one(const char *value, size_t len) {
  for (int i = 0; i < nsecrets; i++)
    if (secrets[i].len == len && memcmp(secrets[i].text, value, len) == 0) return 1;
  if (nsecrets == cap) {
    int ncap = cap ? cap * 2 : 8;
    lf_secret *grown = realloc(secrets, (size_t)ncap * sizeof *grown);
    if (!grown) return 0;
    secrets = grown;
    cap = ncap;
  }
  char *copy = malloc(len + 1);
  if (!copy) return 0;
  memcpy(copy, value, len);
  copy[len] = '\0';
  int at = nsecrets++;
  while (at > 0 && secrets[at - 1].len < len) {
    secrets[at] = secrets[at - 1];
    at--;
  }
  secrets[at].text = copy;
  secrets[at].len = len;
  return 1;
}

/* A form a secret takes inside a URL or a form body: %XX escapes in upper
 * or lower case, and a space as %20 or as +. */
static char *url_encode(const char *s, size_t len, size_t *out_len, int lower, int plus) {
  const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
  char *out = malloc(len * 3 + 1);
  if (!out) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out[n++] = (char)c;
    } else if (c == ' ' && plus) {
      out[n++] = '+';
    } else {
      out[n++] = '%';
      out[n++] = hex[c >> 4];
      out[n++] = hex[c & 15];
    }
  }
  out[n] = '\0';
  *out_len = n;
  return out;
}

int lf_redact_add(const char *value, size_t len) {
  if (len < LF_REDACT_MIN) return 0;
  if (!add_one(value, len)) return 0;
  for (int form = 0; form < 4; form++) {
    size_t elen;
    char *enc = url_encode(value, len, &elen, form & 1, form & 2);
    if (!enc) continue;
    if (elen != len || memcmp(enc, value, len) != 0) add_one(enc, elen);
    free(enc);
  }
  return 1;
}

static const char *find(const char *hay, size_t n, const char *needle, size_t m) {
  return m <= n ? memmem(hay, n, needle, m) : NULL;
}

char *lf_redact(const char *text, size_t len, size_t *out_len, int *allocated) {
  *allocated = 0;
  *out_len = len;
  char *cur = (char *)text;
  size_t cur_len = len;
  for (int i = 0; i < nsecrets; i++) {
    const lf_secret *s = &secrets[i];
    if (!find(cur, cur_len, s->text, s->len)) continue;
    /* worst case: every byte starts a match replaced by 4 stars */
    char *out = malloc(cur_len * 4 + 1);
    if (!out) break;
    size_t n = 0, pos = 0;
    const char *hit;
    while ((hit = find(cur + pos, cur_len - pos, s->text, s->len))) {
      size_t skip = (size_t)(hit - (cur + pos));
      memcpy(out + n, cur + pos, skip);
      n += skip;
      memcpy(out + n, "****", 4);
      n += 4;
      pos += skip + s->len;
    }
    memcpy(out + n, cur + pos, cur_len - pos);
    n += cur_len - pos;
    out[n] = '\0';
    if (*allocated) free(cur);
    cur = out;
    cur_len = n;
    *allocated = 1;
  }
  *out_len = cur_len;
  return cur;
}

static _Thread_local char *last; /* the log filter's buffer, reused */

/* The secrets live as long as the process, or until the Lua module is
 * unloaded (lua_close unloads C modules): then they are freed. */
__attribute__((destructor)) static void redact_free(void) {
  for (int i = 0; i < nsecrets; i++)
    free(secrets[i].text);
  free(secrets);
  secrets = NULL;
  nsecrets = cap = 0;
  free(last);
  last = NULL;
}

const char *lf_redact_filter(const char *msg, size_t len, size_t *out_len) {
  free(last);
  last = NULL;
  int allocated;
  char *r = lf_redact(msg, len, out_len, &allocated);
  if (allocated) last = r;
  return r;
}
