/* json_text: JSON as text, without Lua. Writing strings so that the output is
 * always valid UTF-8 JSON, checking and rewriting a JSON text, and the small
 * scanners the Lua decoder (lua_json.c) shares with them.
 *
 * Bytes that are not UTF-8: a string is written with every byte that does not
 * belong to a well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) escaped as \u00XX, XX being the byte, so
 * a reader sees the Latin-1 character of that byte. Nothing is dropped.
 */
#ifndef LF_JSON_TEXT_H
#define LF_JSON_TEXT_H

#include <stddef.h>

#include "redact.h"
#include "buf.h"

/* Containers nested deeper than this are refused. */
#define LF_JSON_MAX_DEPTH 1000

/* Appends s as a JSON string, quotes included; -1 when memory runs out. */
int lf_json_put_string(lf_buf *b, const char *s, size_t len);
/* The same without the quotes: what a JSON text shows for s. */
int lf_json_put_escaped(lf_buf *b, const char *s, size_t len);

/* Why a JSON text was refused: the byte offset (0-based) and a static text. */
typedef struct {
  size_t at;
  const char *what;
} lf_json_error;

/* Checks that text is exactly one JSON value (blanks around it allowed; its
 * strings must be UTF-8, as RFC 8259 asks of JSON texts) and
 * appends it to out in compact form: no blanks, each string re-escaped as
 * lf_json_put_string writes it. With a redactor, every string (keys too) is
 * redacted before it is written, and a number whose text shows a secret is
 * written as the redacted text in a string. Returns 0; or -1 with *err set
 * (err->what is "not enough memory" when memory ran out) and out as it was. */
int lf_json_rewrite(lf_buf *out, const char *text, size_t len, const lf_redactor *red,
                    lf_json_error *err);

/* {=== Scanners shared with the decoder ===} */

/* The end of the JSON number that starts at p (a '-' or a digit), or NULL
 * with *err set when its grammar is wrong. */
const char *lf_json_number_end(const char *start, const char *p, const char *end,
                               lf_json_error *err);
/* Reads the \u escape at p (pointing at the backslash), with the low half
 * when it is a surrogate pair; returns the code point and sets *next, or
 * returns -1 with *err set. */
long lf_json_unicode_escape(const char *start, const char *p, const char *end,
                            const char **next, lf_json_error *err);
/* The end of the run of bytes at p that a JSON string holds as they are:
 * printable ASCII but '"' and '\\', and well-formed UTF-8 sequences. What
 * stops it (if not end) is a quote, a backslash, a control character or a
 * byte that is not UTF-8. */
const char *lf_json_plain_run(const char *p, const char *end);
/* Writes code point cp as UTF-8 into out; returns the byte count (1-4). */
size_t lf_utf8_encode(unsigned long cp, char out[4]);
/* The length of the well-formed UTF-8 sequence at p (1-4), or 0. */
size_t lf_utf8_sequence(const unsigned char *p, size_t avail);

#endif
