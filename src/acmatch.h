/* acmatch: find every occurrence of many byte strings in one pass over a text
 * (Aho–Corasick). Lua-free; an automaton is immutable once built, so several
 * threads may scan with the same one.
 *
 * Cost: building is linear in the total length of the patterns; a scan
 * touches each byte of the text once (plus failure steps that are paid for by
 * earlier steps forward), whatever the number of patterns. Memory: about
 * 28 bytes per pattern byte, plus 65 KB of tables for the root.
 */
#ifndef LF_ACMATCH_H
#define LF_ACMATCH_H

#include <stddef.h>

typedef struct lf_ac lf_ac;

/* Builds an automaton for the n patterns (each at least one byte; copied, so
 * the caller may free them). Identical patterns are kept once, under the
 * index of the first. NULL when memory runs out. */
lf_ac *lf_ac_build(const char *const *patterns, const size_t *lens, size_t n);
void lf_ac_free(lf_ac *ac);

/* The length of the longest pattern. */
size_t lf_ac_max_len(const lf_ac *ac);

/* Called for each occurrence, in the order of their ends: pattern index and
 * the offset just past its last byte. A non-zero return stops the scan. */
typedef int (*lf_ac_hit)(void *ud, size_t pattern, size_t end);

/* Scans text; returns the number of occurrences reported. */
size_t lf_ac_scan(const lf_ac *ac, const char *text, size_t len, lf_ac_hit hit, void *ud);

#endif
