/* redact: registered secrets, the forms they take, and hiding them (see redact.h).
 *
 * The registry (every secret, copied) changes under a mutex. Each change
 * builds a new snapshot: the forms of all secrets in one Aho–Corasick
 * automaton. Snapshots are immutable and reference-counted, so a redaction
 * runs on the snapshot it took without holding the lock, and a snapshot is
 * freed by whoever drops its last reference.
 *
 * A redaction scans the text once. Each occurrence becomes a span; spans that
 * overlap merge. A span is written out (text before it, then ****) once the
 * scan is far enough past it that no later occurrence can reach back into it,
 * so only the spans of the last (longest pattern) bytes are ever kept.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acmatch.h"
#include "json_text.h"
#include "redact.h"

#define MASK "****"
#define MASK_LEN 4
_Static_assert(LF_REDACT_MIN > MASK_LEN, "a redacted text must never grow");

enum { EXT_LEFT = 1, EXT_RIGHT = 2 }; /* base64: hide the mixed character there too */

struct lf_redactor {
  unsigned refs; /* under the registry's mutex */
  lf_ac *ac;
  size_t *len;        /* by pattern */
  unsigned char *ext; /* by pattern */
  size_t window;      /* longest pattern + its mixed characters */
  int has_star;       /* a pattern holds '*': **** could complete one */
};

/* {=== Forms ===} */

typedef int (*form_fn)(void *ud, const char *p, size_t n, unsigned ext);

/* Lua's string.format("%q"): a control character is \N, or \NNN when a digit
 * follows it (for the last byte that depends on the text after the secret:
 * long_last says which). */
static int put_lua_quoted(lf_buf *b, const char *s, size_t n, int long_last) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok;
    if (c == '"' || c == '\\' || c == '\n') {
      char esc[2] = {'\\', (char)c};
      ok = lf_buf_put(b, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      int digit_next = i + 1 < n ? s[i + 1] >= '0' && s[i + 1] <= '9' : long_last;
      char esc[8];
      int k = snprintf(esc, sizeof esc, digit_next ? "\\%03d" : "\\%d", c);
      ok = lf_buf_put(b, esc, (size_t)k);
    } else {
      ok = lf_buf_putc(b, (char)c);
    }
    if (!ok) return -1;
  }
  return 0;
}

static int is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

/* %XX escapes in upper or lower case; a space as %20 or as + (form bodies). */
static int put_url_encoded(lf_buf *b, const char *s, size_t n, int lower, int plus) {
  const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok;
    if (is_unreserved(c)) {
      ok = lf_buf_putc(b, (char)c);
    } else if (c == ' ' && plus) {
      ok = lf_buf_putc(b, '+');
    } else {
      char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
      ok = lf_buf_put(b, esc, 3);
    }
    if (!ok) return -1;
  }
  return 0;
}

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int is_b64(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

/* The base64 characters that only s determines when s starts at byte offset
 * `shift` (0-2) of a group of three; *ext says which ends also have a
 * character mixing s with its neighbours. */
static int put_base64_core(lf_buf *b, const char *s, size_t n, int shift, unsigned *ext) {
  size_t first_bit = 8 * (size_t)shift, end_bit = first_bit + 8 * n;
  *ext = (first_bit % 6 ? EXT_LEFT : 0) | (end_bit % 6 ? EXT_RIGHT : 0);
  for (size_t j = (first_bit + 5) / 6; 6 * j + 6 <= end_bit; j++) {
    size_t bit = 6 * j, byte = bit / 8 - (size_t)shift; /* bit >= first_bit */
    unsigned hi = (unsigned char)s[byte];
    unsigned lo = byte + 1 < n ? (unsigned char)s[byte + 1] : 0;
    unsigned v = ((hi << 8 | lo) >> (10 - bit % 8)) & 63;
    if (!lf_buf_putc(b, B64[v])) return -1;
  }
  return 0;
}

/* Calls add for every form of s; -1 when memory ran out. */
static int each_form(const char *s, size_t n, form_fn add, void *ud) {
  lf_buf b = LF_BUF_INIT;
  int rc = add(ud, s, n, 0);
  for (int i = 0; rc == 0 && i < 10; i++) {
    unsigned ext = 0;
    b.len = 0;
    if (i == 0)
      rc = lf_json_put_escaped(&b, s, n);
    else if (i <= 2)
      rc = put_lua_quoted(&b, s, n, i == 2);
    else if (i <= 6)
      rc = put_url_encoded(&b, s, n, (i - 3) & 1, (i - 3) & 2);
    else
      rc = put_base64_core(&b, s, n, i - 7, &ext);
    if (rc == 0 && (ext || b.len != n || memcmp(b.data, s, n) != 0))
      rc = add(ud, b.data, b.len, ext);
  }
  lf_buf_free(&b);
  return rc;
}

typedef struct {
  void (*fn)(void *ud, const char *form, size_t n);
  void *ud;
  int count;
} form_visit;

static int visit_form(void *ud, const char *p, size_t n, unsigned ext) {
  form_visit *v = ud;
  (void)ext;
  v->fn(v->ud, p, n);
  v->count++;
  return 0;
}

int lf_redact_forms(const char *value, size_t len,
                    void (*fn)(void *ud, const char *form, size_t n), void *ud) {
  form_visit v = {fn, ud, 0};
  return each_form(value, len, visit_form, &v) == 0 ? v.count : -1;
}

/* {=== Snapshots ===} */

typedef struct {
  size_t off, len;
  unsigned ext;
} pattern;

typedef struct {
  lf_buf bytes;
  pattern *p;
  size_t n, cap;
} pattern_set;

static int collect(void *ud, const char *p, size_t n, unsigned ext) {
  pattern_set *ps = ud;
  if (n == 0) return 0;
  if (ps->n == ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 64;
    pattern *grown = realloc(ps->p, cap * sizeof *grown);
    if (!grown) return -1;
    ps->p = grown;
    ps->cap = cap;
  }
  ps->p[ps->n] = (pattern){ps->bytes.len, n, ext};
  if (!lf_buf_put(&ps->bytes, p, n)) return -1;
  ps->n++;
  return 0;
}

static const char *sort_bytes; /* qsort's comparison has no user pointer */

static int cmp_pattern(const void *a, const void *b) {
  const pattern *x = a, *y = b;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return memcmp(sort_bytes + x->off, sort_bytes + y->off, x->len);
}

static void free_snapshot(lf_redactor *r) {
  if (!r) return;
  lf_ac_free(r->ac);
  free(r->len);
  free(r->ext);
  free(r);
}

typedef struct {
  char *text;
  size_t len;
} secret;

/* A snapshot of every form of the n secrets; NULL when memory runs out.
 * Called under the registry's mutex (sort_bytes is shared). */
static lf_redactor *build(const secret *secrets, size_t n) {
  pattern_set ps = {LF_BUF_INIT, NULL, 0, 0};
  lf_redactor *r = calloc(1, sizeof *r);
  const char **texts = NULL;
  size_t *lens = NULL, kept = 0;
  int ok = r != NULL;
  for (size_t i = 0; ok && i < n; i++)
    ok = each_form(secrets[i].text, secrets[i].len, collect, &ps) == 0;
  if (ok) {
    sort_bytes = ps.bytes.data;
    qsort(ps.p, ps.n, sizeof *ps.p, cmp_pattern);
    for (size_t i = 0; i < ps.n; i++) { /* one entry per text, their ext merged */
      if (kept && cmp_pattern(&ps.p[kept - 1], &ps.p[i]) == 0)
        ps.p[kept - 1].ext |= ps.p[i].ext;
      else
        ps.p[kept++] = ps.p[i];
    }
    texts = malloc((kept + 1) * sizeof *texts);
    lens = malloc((kept + 1) * sizeof *lens);
    r->len = lens;
    r->ext = malloc(kept + 1);
    ok = texts && lens && r->ext;
  }
  for (size_t i = 0; ok && i < kept; i++) {
    texts[i] = ps.bytes.data + ps.p[i].off;
    lens[i] = ps.p[i].len;
    r->ext[i] = (unsigned char)ps.p[i].ext;
    r->has_star |= memchr(texts[i], '*', lens[i]) != NULL;
  }
  if (ok) r->ac = lf_ac_build(texts, lens, kept);
  if (ok && r->ac) {
    r->refs = 1;
    r->window = lf_ac_max_len(r->ac) + 2;
  } else {
    free_snapshot(r);
    r = NULL;
  }
  free(texts);
  free(ps.p);
  lf_buf_free(&ps.bytes);
  return r;
}

/* {=== The registry ===}
 * Adding a secret only records it; the next redaction builds the snapshot,
 * so a secret holding a table of many strings costs one build, not one per
 * string. A build that runs out of memory hides everything instead. */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static secret *secrets;
static size_t nsecrets, cap_secrets;
static _Atomic(lf_redactor *) current; /* holds one reference */
static atomic_int stale;               /* secrets were added since it was built */
static lf_redactor hide_all;           /* no automaton: every text becomes **** */

static atomic_uint generation; /* changes with current (under the lock) */

/* Makes r current (under the lock); returns the old one if it is to be freed. */
static lf_redactor *swap_current(lf_redactor *r) {
  lf_redactor *old = atomic_exchange_explicit(&current, r, memory_order_acq_rel);
  atomic_fetch_add_explicit(&generation, 1, memory_order_release);
  return old && --old->refs == 0 ? old : NULL;
}

/* A counted reference to the current snapshot, built first if secrets were
 * added; &hide_all when that build ran out of memory. */
static lf_redactor *take_current(void) {
  lf_redactor *old = NULL, *r;
  pthread_mutex_lock(&registry_lock);
  if (atomic_load_explicit(&stale, memory_order_relaxed)) {
    lf_redactor *built = build(secrets, nsecrets);
    if (built) {
      old = swap_current(built);
      atomic_store_explicit(&stale, 0, memory_order_relaxed);
    }
  }
  r = atomic_load_explicit(&stale, memory_order_relaxed)
          ? &hide_all
          : atomic_load_explicit(&current, memory_order_relaxed);
  if (r && r != &hide_all) r->refs++;
  pthread_mutex_unlock(&registry_lock);
  free_snapshot(old);
  return r;
}

static void drop(lf_redactor *r) {
  if (!r || r == &hide_all) return;
  pthread_mutex_lock(&registry_lock);
  int last = --r->refs == 0;
  pthread_mutex_unlock(&registry_lock);
  if (last) free_snapshot(r);
}

/* Each thread keeps the snapshot it used last, with one reference, for as
 * long as no secret is added: redacting a log line then takes no lock. While
 * the thread is using it (uses > 0) it is not replaced; a newer snapshot is
 * then handed out counted, as before. Dropped when the thread ends. */
typedef struct {
  lf_redactor *r;
  unsigned generation, uses;
} held_snapshot;

static _Thread_local held_snapshot held;
static pthread_key_t held_key; /* its destructor drops a thread's snapshot */
static pthread_once_t held_once = PTHREAD_ONCE_INIT;
static int held_key_made;

static void drop_held(void *unused) {
  (void)unused;
  drop(held.r);
  held = (held_snapshot){0};
}

static void make_held_key(void) {
  held_key_made = pthread_key_create(&held_key, drop_held) == 0;
}

const lf_redactor *lf_redactor_acquire(void) {
  if (!atomic_load_explicit(&current, memory_order_acquire) &&
      !atomic_load_explicit(&stale, memory_order_acquire)) {
    if (held.r && held.uses == 0) drop_held(NULL); /* the secrets were cleared */
    return NULL;
  }
  unsigned gen = atomic_load_explicit(&generation, memory_order_acquire);
  if (!atomic_load_explicit(&stale, memory_order_acquire) && held.r &&
      held.generation == gen) {
    held.uses++;
    return held.r;
  }
  if (held.uses > 0) return take_current();
  pthread_once(&held_once, make_held_key);
  lf_redactor *r = take_current();
  if (!held_key_made || !r || r == &hide_all) return r;
  drop(held.r);
  held = (held_snapshot){r, gen, 1};
  pthread_setspecific(held_key, &held);
  return r;
}

void lf_redactor_release(const lf_redactor *snapshot) {
  if (snapshot && snapshot == held.r && held.uses > 0)
    held.uses--;
  else
    drop((lf_redactor *)snapshot);
}

int lf_redact_add(const char *value, size_t len) {
  if (len < LF_REDACT_MIN) return 0;
  pthread_mutex_lock(&registry_lock);
  int rc = 1;
  for (size_t i = 0; i < nsecrets; i++)
    if (secrets[i].len == len && memcmp(secrets[i].text, value, len) == 0) goto done;
  rc = -1;
  if (nsecrets == cap_secrets) {
    size_t ncap = cap_secrets ? cap_secrets * 2 : 8;
    secret *grown = realloc(secrets, ncap * sizeof *grown);
    if (!grown) goto done;
    secrets = grown;
    cap_secrets = ncap;
  }
  char *copy = malloc(len + 1);
  if (!copy) goto done;
  memcpy(copy, value, len);
  copy[len] = '\0';
  secrets[nsecrets++] = (secret){copy, len};
  atomic_store_explicit(&stale, 1, memory_order_release);
  rc = 1;
done:
  pthread_mutex_unlock(&registry_lock);
  return rc;
}

int lf_redact_any(void) {
  return atomic_load_explicit(&current, memory_order_acquire) != NULL ||
         atomic_load_explicit(&stale, memory_order_acquire);
}

size_t lf_redact_count(void) {
  pthread_mutex_lock(&registry_lock);
  size_t n = nsecrets;
  pthread_mutex_unlock(&registry_lock);
  return n;
}

const char *lf_redact_secret(size_t i, size_t *len) {
  pthread_mutex_lock(&registry_lock);
  const char *text = i < nsecrets ? secrets[i].text : NULL;
  *len = i < nsecrets ? secrets[i].len : 0;
  pthread_mutex_unlock(&registry_lock);
  return text; /* kept until lf_redact_clear */
}

void lf_redact_clear(void) {
  pthread_mutex_lock(&registry_lock);
  for (size_t i = 0; i < nsecrets; i++)
    free(secrets[i].text);
  free(secrets);
  secrets = NULL;
  nsecrets = cap_secrets = 0;
  atomic_store_explicit(&stale, 0, memory_order_relaxed);
  lf_redactor *old = swap_current(NULL);
  pthread_mutex_unlock(&registry_lock);
  free_snapshot(old);
}

/* {=== Redacting ===} */

typedef struct {
  size_t start, end;
} span;

typedef struct {
  const lf_redactor *r;
  const char *text;
  size_t len;
  char *out;   /* allocated at the first span written */
  size_t n;    /* bytes in out */
  size_t done; /* text before this offset is in out */
  span *sp;    /* spans not written yet: sp[first .. nsp), sorted, disjoint */
  size_t first, nsp, cap;
  span small[16];
  int oom;
} job;

static int write_span(job *J, span s) {
  if (!J->out && !(J->out = malloc(J->len + 1))) return -1;
  memcpy(J->out + J->n, J->text + J->done, s.start - J->done);
  J->n += s.start - J->done;
  memcpy(J->out + J->n, MASK, MASK_LEN);
  J->n += MASK_LEN;
  J->done = s.end;
  return 0;
}

static int push_span(job *J, span s) {
  if (J->nsp == J->cap) {
    if (J->first > 0) {
      memmove(J->sp, J->sp + J->first, (J->nsp - J->first) * sizeof *J->sp);
      J->nsp -= J->first;
      J->first = 0;
    } else {
      size_t cap = J->cap * 2;
      span *grown = J->sp == J->small ? malloc(cap * sizeof *grown)
                                      : realloc(J->sp, cap * sizeof *grown);
      if (!grown) return -1;
      if (J->sp == J->small) memcpy(grown, J->small, sizeof J->small);
      J->sp = grown;
      J->cap = cap;
    }
  }
  J->sp[J->nsp++] = s;
  return 0;
}

static int on_hit(void *ud, size_t pattern_index, size_t end) {
  job *J = ud;
  const lf_redactor *r = J->r;
  const unsigned char *t = (const unsigned char *)J->text;
  span s = {end - r->len[pattern_index], end};
  if ((r->ext[pattern_index] & EXT_LEFT) && s.start > 0 && is_b64(t[s.start - 1]))
    s.start--;
  if ((r->ext[pattern_index] & EXT_RIGHT) && s.end < J->len && is_b64(t[s.end])) s.end++;
  while (J->nsp > J->first && J->sp[J->nsp - 1].end >= s.start) { /* touches: merge */
    span top = J->sp[--J->nsp];
    if (top.start < s.start) s.start = top.start;
    if (top.end > s.end) s.end = top.end;
  }
  /* no later occurrence can start before end - window */
  while (J->first < J->nsp && J->sp[J->first].end + r->window <= end)
    if (write_span(J, J->sp[J->first++]) != 0) return J->oom = 1;
  if (J->first == J->nsp) J->first = J->nsp = 0;
  if (push_span(J, s) != 0) return J->oom = 1;
  return 0;
}

/* One pass: 0 (nothing found), 1 (J->out holds the result), -1 (no memory). */
static int redact_pass(const lf_redactor *r, const char *text, size_t len, job *J) {
  /* every field but the spans' room (clearing it would cost more than a scan) */
  J->r = r;
  J->text = text;
  J->len = len;
  J->out = NULL;
  J->n = J->done = J->first = J->nsp = 0;
  J->sp = J->small;
  J->cap = sizeof J->small / sizeof J->small[0];
  J->oom = 0;
  size_t hits = lf_ac_scan(r->ac, text, len, on_hit, J);
  for (size_t i = J->first; !J->oom && i < J->nsp; i++)
    if (write_span(J, J->sp[i]) != 0) J->oom = 1;
  if (J->sp != J->small) free(J->sp);
  if (J->oom) {
    free(J->out);
    return -1;
  }
  if (hits == 0) return 0;
  memcpy(J->out + J->n, text + J->done, len - J->done);
  J->n += len - J->done;
  J->out[J->n] = '\0';
  return 1;
}

char *lf_redact_with(const lf_redactor *r, const char *text, size_t len, size_t *out_len,
                     int *allocated) {
  char *cur = (char *)text;
  *allocated = 0;
  *out_len = len;
  if (!r->ac) { /* hide_all */
    if (len > 0) *out_len = MASK_LEN;
    return len > 0 ? (char *)MASK : cur;
  }
  for (;;) {
    job J;
    int rc = redact_pass(r, cur, *out_len, &J);
    if (rc == 0) break;
    if (*allocated) free(cur);
    if (rc < 0) { /* hide everything rather than show a secret */
      *allocated = 0;
      *out_len = MASK_LEN;
      return (char *)MASK;
    }
    cur = J.out;
    *out_len = J.n;
    *allocated = 1;
    if (!r->has_star) break; /* else **** may have completed a pattern: again */
  }
  return cur;
}

char *lf_redact(const char *text, size_t len, size_t *out_len, int *allocated) {
  const lf_redactor *r = lf_redactor_acquire();
  if (!r) {
    *allocated = 0;
    *out_len = len;
    return (char *)text;
  }
  char *out = lf_redact_with(r, text, len, out_len, allocated);
  lf_redactor_release(r);
  return out;
}

static _Thread_local char *last; /* the log filter's buffer, reused */

/* The secrets live as long as the process, or until the Lua module is
 * unloaded (lua_close unloads C modules): then they are freed. */
__attribute__((destructor)) static void redact_free(void) {
  drop_held(NULL);
  if (held_key_made) pthread_key_delete(held_key);
  held_key_made = 0;
  lf_redact_clear();
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
