/* Internals shared by lua_codec_walk.c (the format and the walk) and lua_transfer.c
 * (functions, upvalues and values bound by module name). Not for other files. */
#ifndef LF_CODEC_IMPL_H
#define LF_CODEC_IMPL_H

#include <stdint.h>
#include "lua_codec.h"

/* The tags of the format (see lua_codec_walk.c for the grammar). */
enum {
  T_NIL,
  T_FALSE,
  T_TRUE,
  T_INT,
  T_FLOAT,
  T_STRING,
  T_REF,
  T_NULL,
  T_TABLE,
  T_STATE,
  T_TIME,
  T_GLOBALS,
  T_NAMED,
  T_FUNCTION,
  T_JOIN,
  T_NTAGS
};

/* Frames of the walk: a container being written or read. */
enum { F_ROOT, F_TABLE, F_CANON, F_FUNC, F_STATE };
/* What the frame's current child is (for paths in errors). */
enum { W_VALUE, W_KEY, W_META, W_RESULT, W_UPVALUE };

typedef struct {
  uint8_t kind, phase, what;
  int slot;      /* stack index of the container (encode: its key is at slot + 1) */
  uint32_t ref;  /* the container's object number */
  size_t hdr;    /* encode: where the table's counts are patched */
  uint32_t i, n; /* position among n children (values, keys, upvalues) */
  uint32_t narr, nhash;
  uint32_t kbase; /* canonical: this frame's first key in the key scratch */
} lf_frame;

/* Pointer -> number, open addressing; the first 32 slots need no malloc. */
typedef struct {
  const void *key;
  uint64_t val;
} lf_slot;
typedef struct {
  lf_slot *slots;
  uint32_t mask, count;
  lf_slot small[32];
} lf_ptrmap;

typedef struct {
  lf_frame *v;
  uint32_t n, cap;
  lf_frame small[24];
} lf_frames;

typedef struct lf_canon_key lf_canon_key;

typedef struct {
  lua_State *L;
  lf_buf *out;
  size_t start;
  unsigned flags, max_depth;
  size_t max_size;
  size_t end; /* writes up to here need no check: min(capacity, size limit) */
  const char *root;
  int idx, nvalues;
  int scratch; /* stack slot of the canonical key scratch table (or nil) */
  lf_frames fr;
  lf_ptrmap refs;   /* object -> its number */
  lf_ptrmap upvals; /* upvalue id -> (function number << 8 | upvalue index) */
  uint32_t nrefs;
  lf_canon_key *keys;
  uint32_t nkeys, keycap;
  int names_checked;
} lf_encoder;

typedef struct {
  lua_State *L;
  const unsigned char *start, *p, *end;
  unsigned flags, max_depth;
  int refs; /* stack slot of the object table: number + 1 -> object */
  uint32_t nrefs;
  lf_frames fr;
} lf_decoder;

/* lua_codec_walk.c */
void lf_enc_write(lf_encoder *E, const void *p, size_t n);
/* Makes room for n bytes or raises (size limit, memory). */
void lf_enc_reserve(lf_encoder *E, size_t n);
/* Appends without raising: 0, or -1 when lf_enc_reserve would raise. */
int lf_enc_try_write(lf_encoder *E, const void *p, size_t n);
void lf_enc_byte(lf_encoder *E, unsigned char c);
void lf_enc_varint(lf_encoder *E, uint64_t v);
int lf_ptrmap_get(const lf_ptrmap *m, const void *key, uint64_t *val);
void lf_ptrmap_put(lua_State *L, lf_ptrmap *m, const void *key, uint64_t val);
lf_frame *lf_push_frame(lua_State *L, lf_frames *fr, int kind);
/* A frame for the container at the top of the stack, within the depth limit. */
lf_frame *lf_enc_open(lf_encoder *E, int kind);
lf_frame *lf_dec_open(lf_decoder *D, int kind);
/* Gives the object at the top the decoder's next object number. */
void lf_dec_keep(lf_decoder *D);
/* The object at the top met before: writes REF and pops it (1); else numbers
 * it (E->nrefs - 1) and returns 0. */
int lf_enc_ref(lf_encoder *E);
/* The value at the top found in a loaded module: writes NAMED, pops it (1). */
int lf_enc_named(lf_encoder *E);
/* Raises "cannot copy a <kind> at <path of the value being written>". */
int lf_enc_fail(lf_encoder *E, const char *kind);
int lf_dec_fail(lf_decoder *D, const char *what);
uint64_t lf_dec_varint(lf_decoder *D);
const unsigned char *lf_dec_take(lf_decoder *D, size_t n);

/* lua_transfer.c */
/* When the value at idx is found in a loaded module, pushes its name
 * ("module\0key\0key", shortest first) and returns 1; else pushes nothing.
 * *checked: 0 on an encode's first call, which checks that the index is fresh. */
int lf_names_find(lua_State *L, int idx, int *checked);
/* Rebuilds the index from package.loaded now. */
void lf_names_refresh(lua_State *L);
/* Pushes the value named name in L's own modules; loads a module that is
 * not loaded yet when may_require. Raises when the name does not resolve. */
void lf_names_resolve(lua_State *L, const char *name, size_t len, int may_require);
/* The function at the top (LF_CODEC_FUNCTIONS): writes it (by name, or its
 * dump plus an F_FUNC frame for its upvalues) or fails. */
void lf_enc_function(lf_encoder *E);
/* The next upvalue of F_FUNC frame f: pushes it and returns 1, or writes a
 * join and returns 2 (nothing pushed), or returns 0 when done. */
int lf_enc_upvalue(lf_encoder *E, lf_frame *f);
/* Reads T_FUNCTION's body: loads the function, pushes it and an F_FUNC frame. */
void lf_dec_function(lf_decoder *D);
/* The F_FUNC frame f wants its next upvalue: joins it (returns 2), or returns
 * 1 when a value must be read (then lf_dec_set_upvalue), 0 when done. */
int lf_dec_upvalue(lf_decoder *D, lf_frame *f);
void lf_dec_set_upvalue(lf_decoder *D, lf_frame *f);

#endif
