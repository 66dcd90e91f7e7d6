/* Secrets the logger knows: every registered string is replaced by ****
 * (also in its URL-encoded form) wherever luaflow prints it. Lua-free. */
#ifndef LF_REDACT_H
#define LF_REDACT_H

#include <stddef.h>

/* Registers a secret value (copied); values shorter than LF_REDACT_MIN are
 * refused (returns 0) since hiding them would mangle ordinary text. */
#define LF_REDACT_MIN 6
int lf_redact_add(const char *value, size_t len);
/* Returns text with every secret replaced: either `text` itself (nothing to
 * hide) or a buffer the caller frees; *out_len is set either way. */
char *lf_redact(const char *text, size_t len, size_t *out_len, int *allocated);
/* The log filter: redacts into a per-thread buffer reused by the next call. */
const char *lf_redact_filter(const char *msg, size_t len, size_t *out_len);

#endif
