/* The run store's record format from schema version 2 on: a chunk (the
 * records of one run and one kind committed together) is a sequence of
 * fixed-layout binary records, cheap to write and about a tenth of the JSON
 * chunks of version 1 (store_codec.h, still read).
 *
 *   task:       index map_index name state message run_count started ended
 *               result stored
 *   transition: index map_index seq name old new message time
 *   log:        time level logger message
 *
 * Integers (map_index, seq, run_count, level, stored) are zigzag varints
 * (LEB128); an index is the zigzag varint of its difference from the chunk's
 * previous record's index (the first's from 0). A time is a varint: 0 for none (0, or not
 * a finite time within 9e12 s), else 1 + the zigzag of its distance in microseconds from
 * the chunk's previous time (the first from 0). A string is a varint v:
 * 0 for NULL; odd: v >> 1 bytes follow, and a string of at most
 * LF_CHUNK_STR_MAX bytes also takes the chunk's next table number (from 0);
 * even: the string numbered v / 2 - 1 again. State classes are their names,
 * so a class this luaflow does not know reads as State. Strings are kept as
 * given; readers get bytes that are not UTF-8 as U+FFFD. Lua-free. */
#ifndef LF_STORE_CHUNK_H
#define LF_STORE_CHUNK_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "store.h"
#include "store_codec.h"

#define LF_CHUNK_STR_MAX 255

/* One chunk being written: zero-initialised, reset after each chunk. */
typedef struct {
  lf_buf buf;                   /* the records */
  size_t n;                     /* how many */
  int64_t last;                 /* previous time, microseconds */
  int last_index;               /* previous record's index */
  uint32_t nstr;                /* numbers given to strings so far */
  uint32_t kind_ref[LF_NKINDS]; /* 1 + number of a class's name; 0: not yet */
  struct lf_chunk_slot *slots;  /* strings by hash */
  struct lf_chunk_recent {      /* a field's last two strings (len1 0: none) */
    uint32_t number, off, len1;
  } recent[3][2];
  uint32_t mask, used;
} lf_chunk_enc;

/* Empties e for a new chunk (keeps its memory). */
void lf_chunk_reset(lf_chunk_enc *e);
void lf_chunk_free(lf_chunk_enc *e);
/* Append one record; e->buf.oom tells when memory ran out. len: the lengths
 * of its strings in the order above (NULL: measured); a task's result and a
 * log line's message have their own. */
void lf_chunk_task(lf_chunk_enc *e, const lf_store_task *t, const uint32_t *len);
void lf_chunk_transition(lf_chunk_enc *e, const lf_store_transition *t,
                         const uint32_t *len);
void lf_chunk_log(lf_chunk_enc *e, const lf_store_log *l, const uint32_t *len);

/* Decodes a chunk of `kind` (LF_CHUNK_*), calling row(record, ud) with an
 * lf_store_task, lf_store_transition or lf_store_log for each; strings are
 * copied into a. Returns 0, the first non-zero row() result, or -1 when the
 * bytes are not a well-formed chunk (or memory ran out). Any bytes are safe
 * to give it. */
int lf_chunk_each(int kind, const void *body, size_t len, lf_store_arena *a,
                  int (*row)(const void *record, void *ud), void *ud);

#endif
