/* The run store's record format of schema version 1, still read: the records
 * of one run and one kind committed together are one JSON array of
 * positional arrays (a "chunk"). Version 2 writes binary chunks instead
 * (store_chunk.h).
 *
 *   task:       [index, map_index|null, name, state, message|null, run_count,
 *                started|null, ended|null, result_json_as_string|null, stored]
 *   transition: [index, map_index|null, seq, name, old, new, message|null, time]
 *   log:        [time, level, logger, message]
 *
 * Times are epoch seconds with six decimals; states are class names. Strings
 * are JSON strings. Also: the readers' arena, the runs row's task counts,
 * and zlib for large chunks of either format. Lua-free. */
#ifndef LF_STORE_CODEC_H
#define LF_STORE_CODEC_H

#include <stddef.h>
#include "buf.h"
#include "store.h"

/* ---- arena: many small allocations freed at once ---- */
typedef struct lf_store_arena lf_store_arena;
lf_store_arena *lf_arena_new(void);
void lf_arena_free(lf_store_arena *a);
void *lf_arena_alloc(lf_store_arena *a, size_t n); /* 8-aligned; NULL: no memory */
/* A NUL-terminated copy of s (len bytes); NULL when s is NULL or no memory
 * (check s before concluding). */
char *lf_arena_strndup(lf_store_arena *a, const char *s, size_t len);
/* The arena frees p (a malloc'ed block) with the rest; 0, or -1 (p freed). */
int lf_arena_adopt(lf_store_arena *a, void *p);

/* {"Success":3,"Failed":1}: the non-zero counts by class name. */
void lf_codec_counts(lf_buf *b, const int counts[LF_NKINDS]);

/* zlib at its fastest level: JSON chunks shrink about tenfold, which costs the
 * writer less than writing them out twice (WAL, then the database). */
#define LF_CODEC_DEFLATE_MIN 1024
int lf_codec_deflate(const char *in, size_t n, lf_buf *out); /* 0, or -1 */
/* The raw bytes of a compressed chunk, NUL-terminated (malloc'ed); NULL when
 * they do not inflate to exactly raw bytes. */
char *lf_codec_inflate(const void *in, size_t n, size_t raw);

/* ---- decoding ---- */
typedef enum { LF_JNULL, LF_JNUM, LF_JSTR, LF_JBOOL } lf_jtype;
typedef struct {
  lf_jtype type;
  double num;      /* LF_JNUM, LF_JBOOL (0 or 1) */
  const char *str; /* LF_JSTR: NUL-terminated, in the arena */
  size_t len;
} lf_jval;
#define LF_CODEC_MAXCOLS 12
/* Calls row(values, count, ud) for each record of a chunk; strings are copied
 * into a. Returns 0, the first non-zero row() result, or -1 when the chunk is
 * not well formed (or memory ran out). */
int lf_codec_each(const char *body, size_t len, lf_store_arena *a,
                  int (*row)(const lf_jval *v, int n, void *ud), void *ud);
/* Adds the counts of a {"Class":n} object to counts[]; -1 when malformed. */
int lf_codec_parse_counts(const char *text, size_t len, int counts[LF_NKINDS]);

#endif
