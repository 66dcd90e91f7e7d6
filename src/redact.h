/* redact: the secrets luaflow hides. Every registered string is replaced by
 * **** wherever luaflow shows it, in each form luaflow itself may give it:
 *
 *   - as it is;
 *   - JSON-escaped ("  \  control characters, bytes that are not UTF-8);
 *   - quoted by Lua's %q;
 *   - URL-encoded, %XX in upper or lower case, a space as %20 or as +;
 *   - base64, as SMTP AUTH sends credentials (LOGIN: each alone; PLAIN:
 *     "\0user\0password" in one blob): the part of the base64 text that only
 *     the secret's bytes determine, at each of the 3 byte offsets a secret can
 *     start at, with the one mixed character on either side.
 *
 * Lua-free and callable from any thread. One scan of a text finds every form
 * of every secret (an Aho–Corasick automaton built when the set changes), so
 * its cost does not grow with the number of secrets; a redaction allocates at
 * most one buffer of the text's size, and only when it finds something.
 * Occurrences that overlap, nest or touch become a single ****.
 */
#ifndef LF_REDACT_H
#define LF_REDACT_H

#include <stddef.h>

/* Values shorter than this (in bytes) are refused: hiding them would mangle
 * ordinary text. */
#define LF_REDACT_MIN 6

/* Registers a secret (copied); the next redaction builds the new set.
 * Returns 1 when it is (or already was) hidden, 0 when it is too short, -1
 * when memory ran out (the secret is then not registered and the caller must
 * not show it). Should building the set run out of memory, every text is
 * redacted to **** until a build succeeds. */
int lf_redact_add(const char *value, size_t len);

/* Returns text with every secret replaced: either `text` itself (nothing to
 * hide, *allocated = 0) or a buffer the caller frees (*allocated = 1);
 * *out_len is set either way. When memory runs out the whole text is hidden:
 * a static "****" (*allocated = 0). */
char *lf_redact(const char *text, size_t len, size_t *out_len, int *allocated);

/* The log filter: redacts into a per-thread buffer reused by the next call. */
const char *lf_redact_filter(const char *msg, size_t len, size_t *out_len);

/* Whether any secret is registered: when none is, nothing needs a look. */
int lf_redact_any(void);

/* The number of secrets registered, and secret i (0 <= i < that number) with
 * its length: a worker process tells the engine the secrets a body read. */
size_t lf_redact_count(void);
const char *lf_redact_secret(size_t i, size_t *len);

/* Forgets every secret (tests and fuzzers start each case afresh). */
void lf_redact_clear(void);

/* Calls fn for each form of value that a redaction hides (the base64 ones
 * without their mixed characters); returns the number of forms, or -1 when
 * memory ran out. For tests that check no form survives. */
int lf_redact_forms(const char *value, size_t len,
                    void (*fn)(void *ud, const char *form, size_t n), void *ud);

/* {=== Snapshots ===}
 * The set of secrets at one moment, for callers that redact many pieces of
 * one output (the JSON encoder) and want one consistent set for all. */
typedef struct lf_redactor lf_redactor;
/* NULL when no secret is registered: then there is nothing to hide. A
 * snapshot is released by the thread that acquired it (a thread keeps its
 * last one without counting it). */
const lf_redactor *lf_redactor_acquire(void);
void lf_redactor_release(const lf_redactor *r);
/* lf_redact with a snapshot (r must not be NULL). */
char *lf_redact_with(const lf_redactor *r, const char *text, size_t len, size_t *out_len,
                     int *allocated);

#endif
