/* The value codec (see lua_codec.h): the byte format and the walk over values.
 *
 * Format, version 1 (integers little endian; varint = unsigned LEB128,
 * zigzag for signed):
 *   message = "LFC" 0x01 varint(n) value*n
 *   value   = NIL | FALSE | TRUE | NULL (luaflow.json.null)
 *           | INT zigzag | FLOAT f64 bits | STRING varint(len) bytes
 *           | REF varint(k)                      the k-th object met (from 0)
 *           | TABLE u32(narr) u32(nhash) value*narr (key value)*nhash meta
 *           | STATE u8(kind) u8(bits) [string message] zigzag(run) zigzag(loop)
 *                   [f64 start] varint(nfields) field*nfields [value result]
 *           | TIME f64
 *           | GLOBALS | NAMED varint(len) name   (LF_CODEC_FUNCTIONS only)
 *           | FUNCTION u32(len) dump u8(nups) upvalue*nups
 *   meta    = NONE | ARRAY | OBJECT | SIGNAL u8(code) | NAMED varint(len) name
 *           | VALUE value (a table)
 *   upvalue = JOIN varint(k) u8(i) | value       share upvalue i of function k
 * Objects (TABLE, STATE, FUNCTION) are numbered in the order they start, so a
 * table reached twice, or inside itself, is a REF the second time. A table's
 * counts are patched once its pairs are written: one pass, no pre-count.
 *
 * The walk keeps an explicit frame stack: each open container sits on the Lua
 * stack with its current key above it, and a frame says where the walk is, so
 * depth costs Lua stack slots (checked), never C stack. Everything runs under
 * lf_pcall; the scratch memory lives in the encoder/decoder struct of the
 * calling C frame, which frees it whatever happened.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_codec_impl.h"
#include "lua_core.h"
#include "lua_json.h"

#define VERSION 1
enum { META_NONE, META_ARRAY, META_OBJECT, META_SIGNAL, META_NAMED, META_VALUE };
/* Frame phases. */
enum { P_ARRAY, P_KEY, P_VALUE, P_META, P_METAVALUE, P_DONE };

/* {=== Scratch: the pointer map and the frame stack ===} */

static uint32_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (uint32_t)x;
}

/* Empty; the small table is cleared on the first put, so a call that meets
 * no table pays nothing. */
static void ptrmap_init(lf_ptrmap *m) {
  m->slots = NULL;
  m->mask = 0;
  m->count = 0;
}

static void ptrmap_free(lf_ptrmap *m) {
  if (m->slots != m->small) free(m->slots);
}

int lf_ptrmap_get(const lf_ptrmap *m, const void *key, uint64_t *val) {
  if (!m->slots) return 0;
  for (uint32_t i = ptr_hash(key) & m->mask;; i = (i + 1) & m->mask) {
    if (m->slots[i].key == key) {
      *val = m->slots[i].val;
      return 1;
    }
    if (!m->slots[i].key) return 0;
  }
}

static void ptrmap_insert(lf_slot *slots, uint32_t mask, const void *key, uint64_t val) {
  uint32_t i = ptr_hash(key) & mask;
  while (slots[i].key)
    i = (i + 1) & mask;
  slots[i].key = key;
  slots[i].val = val;
}

void lf_ptrmap_put(lua_State *L, lf_ptrmap *m, const void *key, uint64_t val) {
  if (!m->slots) {
    memset(m->small, 0, sizeof m->small);
    m->slots = m->small;
    m->mask = sizeof m->small / sizeof m->small[0] - 1;
  }
  if ((m->count + 1) * 2 > m->mask + 1) { /* keep it half empty */
    uint32_t size = (m->mask + 1) * 2;
    lf_slot *grown = size > (1u << 30) ? NULL : calloc(size, sizeof *grown);
    if (!grown) luaL_error(L, "not enough memory");
    for (uint32_t i = 0; i <= m->mask; i++)
      if (m->slots[i].key)
        ptrmap_insert(grown, size - 1, m->slots[i].key, m->slots[i].val);
    ptrmap_free(m);
    m->slots = grown;
    m->mask = size - 1;
  }
  ptrmap_insert(m->slots, m->mask, key, val);
  m->count++;
}

static void frames_init(lf_frames *fr) {
  fr->v = fr->small;
  fr->n = 0;
  fr->cap = sizeof fr->small / sizeof fr->small[0];
}

static void frames_free(lf_frames *fr) {
  if (fr->v != fr->small) free(fr->v);
}

/* Pushes a zeroed frame; the caller checked the depth. */
lf_frame *lf_push_frame(lua_State *L, lf_frames *fr, int kind) {
  if (fr->n == fr->cap) {
    uint32_t cap = fr->cap * 2;
    lf_frame *grown = malloc(cap * sizeof *grown);
    if (!grown) luaL_error(L, "not enough memory");
    memcpy(grown, fr->v, fr->n * sizeof *grown);
    frames_free(fr);
    fr->v = grown;
    fr->cap = cap;
  }
  lf_frame *f = &fr->v[fr->n++];
  memset(f, 0, sizeof *f);
  f->kind = (uint8_t)kind;
  return f;
}

/* {=== Paths: "result.rows[3].fn" for the value being written ===} */

typedef struct {
  char s[400];
  size_t len;
} path;

static void path_add(path *p, const char *s, size_t n) {
  size_t room = sizeof p->s - 1 - p->len;
  if (n > room) n = room;
  memcpy(p->s + p->len, s, n);
  p->len += n;
  p->s[p->len] = '\0';
}

static void path_adds(path *p, const char *s) {
  path_add(p, s, strlen(s));
}

static void path_prepend(path *p, const char *s) {
  size_t n = strlen(s);
  if (n + p->len >= sizeof p->s) p->len = sizeof p->s - 1 - n;
  memmove(p->s + n, p->s, p->len);
  memcpy(p->s, s, n);
  p->len += n;
  p->s[p->len] = '\0';
}

static int is_identifier(const char *s, size_t n) {
  static const char *const reserved[] = {
      "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
      "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
      "repeat",   "return", "then", "true", "until",  "while", NULL};
  if (n == 0 || n > 64 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
    return 0;
  for (size_t i = 1; i < n; i++) {
    char c = s[i];
    if (!(c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z')))
      return 0;
  }
  for (int i = 0; reserved[i]; i++)
    if (strlen(reserved[i]) == n && memcmp(reserved[i], s, n) == 0) return 0;
  return 1;
}

/* Appends the key at idx as ".name", ["a b"], [3], [1.5] or [true]. */
static void path_key(lua_State *L, int idx, path *p) {
  char tmp[64];
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (is_identifier(s, n)) {
      path_adds(p, ".");
      path_add(p, s, n);
      return;
    }
    path_adds(p, "[\"");
    for (size_t i = 0; i < n && i < 40; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c == '"' || c == '\\') {
        tmp[0] = '\\';
        tmp[1] = (char)c;
        path_add(p, tmp, 2);
      } else if (c < 32 || c >= 127) {
        path_add(p, tmp, (size_t)snprintf(tmp, sizeof tmp, "\\%u", c));
      } else {
        path_add(p, (const char *)&c, 1);
      }
    }
    path_adds(p, n > 40 ? "...\"]" : "\"]");
    return;
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      snprintf(tmp, sizeof tmp, "[%lld]", (long long)lua_tointeger(L, idx));
    } else {
      double d = lua_tonumber(L, idx);
      if (isinf(d))
        snprintf(tmp, sizeof tmp, "[%s1/0]", d < 0 ? "-" : "");
      else
        snprintf(tmp, sizeof tmp, "[%.17g]", d);
    }
    path_adds(p, tmp);
    return;
  case LUA_TBOOLEAN:
    path_adds(p, lua_toboolean(L, idx) ? "[true]" : "[false]");
    return;
  default:
    snprintf(tmp, sizeof tmp, "[<%s>]", luaL_typename(L, idx));
    path_adds(p, tmp);
  }
}

/* The root's name: opts->root with "%d" replaced by the value's number. */
static void path_root(const char *root, uint32_t number, path *p) {
  const char *d = strstr(root, "%d");
  if (!d) {
    path_adds(p, root);
    return;
  }
  char num[16];
  path_add(p, root, (size_t)(d - root));
  path_add(p, num, (size_t)snprintf(num, sizeof num, "%u", number));
  path_adds(p, d + 2);
}

/* The frame's current child, appended to (or wrapped around) p. */
static void path_step(lf_encoder *E, const lf_frame *f, int parent_is_root, int last,
                      path *p) {
  lua_State *L = E->L;
  switch (f->what) {
  case W_VALUE:
    path_key(L, f->slot + 1, p);
    break;
  case W_KEY:
    path_prepend(p, last ? "a key of " : "(a key of ");
    if (!last) path_adds(p, ")");
    break;
  case W_META:
    path_prepend(p, "getmetatable(");
    path_adds(p, ")");
    break;
  case W_RESULT:
    path_adds(p, ".result");
    break;
  case W_UPVALUE: {
    const char *name = lua_getupvalue(L, f->slot, (int)f->i);
    char tmp[96];
    snprintf(tmp, sizeof tmp, "upvalue '%s'", name && *name ? name : "?");
    if (name) lua_pop(L, 1);
    if (parent_is_root) {
      p->len = 0;
      path_adds(p, tmp);
    } else {
      path_prepend(p, " of ");
      path_prepend(p, tmp);
    }
    break;
  }
  }
}

/* The path of the value being written, eliding the middle of a deep one. */
static void enc_path(lf_encoder *E, path *p) {
  const lf_frame *fr = E->fr.v;
  uint32_t n = E->fr.n;
  p->len = 0;
  p->s[0] = '\0';
  path_root(E->root, n ? fr[0].i : 1, p);
  for (uint32_t k = 1; k < n; k++) {
    if (n > 40 && k == 16) {
      path_adds(p, "...");
      k = n - 16;
    }
    path_step(E, &fr[k], k == 1, k + 1 == n, p);
  }
}

int lf_enc_fail(lf_encoder *E, const char *kind) {
  path p;
  enc_path(E, &p);
  return luaL_error(E->L, "cannot copy a %s at %s", kind, p.s);
}

static int enc_fail_key(lf_encoder *E, const char *fmt, const char *kind) {
  path p;
  enc_path(E, &p);
  return luaL_error(E->L, fmt, kind, p.s);
}

/* {=== Encoder: bytes ===} */

/* Room for n more bytes: 0, or -1 past the size limit, -2 out of memory. */
static int enc_grow(lf_encoder *E, size_t n) {
  lf_buf *b = E->out;
  if (b->len - E->start + n > E->max_size) return -1;
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
      cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) return -2;
    b->data = grown;
    b->cap = cap;
  }
  E->end = b->cap < E->start + E->max_size ? b->cap : E->start + E->max_size;
  return 0;
}

void lf_enc_reserve(lf_encoder *E, size_t n) {
  int r = enc_grow(E, n);
  if (r == -2) luaL_error(E->L, "not enough memory");
  if (r == -1) {
    path root, p;
    root.len = 0;
    path_root(E->root, E->fr.n ? E->fr.v[0].i : 1, &root);
    enc_path(E, &p);
    luaL_error(E->L, "cannot copy %s: more than %I bytes (reached at %s)", root.s,
               (lua_Integer)E->max_size, p.s);
  }
}

int lf_enc_try_write(lf_encoder *E, const void *p, size_t n) {
  if (enc_grow(E, n) != 0) return -1;
  memcpy(E->out->data + E->out->len, p, n);
  E->out->len += n;
  return 0;
}

#define LIKELY(x) __builtin_expect(!!(x), 1)

/* The hot path: room is there (E->end: the buffer's end or the size limit). */
static inline char *enc_room(lf_encoder *E, size_t n) {
  lf_buf *b = E->out;
  if (!LIKELY(n <= E->end - b->len)) lf_enc_reserve(E, n);
  return b->data + b->len;
}

/* Inside this file the writers are static, so they inline despite -fPIC. */
static inline void enc_write(lf_encoder *E, const void *p, size_t n) {
  memcpy(enc_room(E, n), p, n);
  E->out->len += n;
}

static inline void enc_byte(lf_encoder *E, unsigned char c) {
  *enc_room(E, 1) = (char)c;
  E->out->len++;
}

static inline void enc_varint(lf_encoder *E, uint64_t v) {
  unsigned char *o = (unsigned char *)enc_room(E, 10), *start = o;
  while (v >= 0x80) {
    *o++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *o++ = (unsigned char)v;
  E->out->len += (size_t)(o - start);
}

void lf_enc_write(lf_encoder *E, const void *p, size_t n) {
  enc_write(E, p, n);
}

void lf_enc_byte(lf_encoder *E, unsigned char c) {
  enc_byte(E, c);
}

void lf_enc_varint(lf_encoder *E, uint64_t v) {
  enc_varint(E, v);
}

static inline void put_u32(char *o, uint32_t v) {
  for (int i = 0; i < 4; i++)
    o[i] = (char)(v >> (8 * i));
}

static inline void enc_u32(lf_encoder *E, uint32_t v) {
  put_u32(enc_room(E, 4), v);
  E->out->len += 4;
}

static inline void enc_f64(lf_encoder *E, double d) {
  char *o = enc_room(E, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(o, &d, 8);
#else
  uint64_t bits;
  memcpy(&bits, &d, 8);
  for (int i = 0; i < 8; i++)
    o[i] = (char)(bits >> (8 * i));
#endif
  E->out->len += 8;
}

static inline void enc_zigzag(lf_encoder *E, int64_t v) {
  enc_varint(E, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static inline void enc_lstring(lf_encoder *E, const char *s, size_t n) {
  enc_varint(E, n);
  enc_write(E, s, n);
}

/* {=== Encoder: the walk ===} */

/* The object at the top met before: writes REF and pops it (1). Else gives
 * it the next number (E->nrefs - 1 afterwards) and returns 0. */
int lf_enc_ref(lf_encoder *E) {
  const void *p = lua_topointer(E->L, -1);
  uint64_t k;
  if (lf_ptrmap_get(&E->refs, p, &k)) {
    enc_byte(E, T_REF);
    enc_varint(E, k);
    lua_pop(E->L, 1);
    return 1;
  }
  lf_ptrmap_put(E->L, &E->refs, p, E->nrefs++);
  return 0;
}

/* The value at the top found in a loaded module: writes tag and its name
 * and pops it (1); else 0. */
static int enc_name(lf_encoder *E, unsigned char tag) {
  lua_State *L = E->L;
  if (!lf_names_find(L, -1, &E->names_checked)) return 0;
  size_t n;
  const char *name = lua_tolstring(L, -1, &n);
  enc_byte(E, tag);
  enc_lstring(E, name, n);
  lua_pop(L, 2);
  return 1;
}

int lf_enc_named(lf_encoder *E) {
  return enc_name(E, T_NAMED);
}

struct lf_canon_key {
  uint8_t rank; /* numbers, strings, booleans, null */
  uint8_t is_int;
  lua_Integer i;
  double d;
  const char *s;
  size_t len;
  uint32_t idx; /* the key's place in the Lua scratch table */
};

/* A new frame for the container at the top, within the depth limit. */
lf_frame *lf_enc_open(lf_encoder *E, int kind) {
  if (E->fr.n > E->max_depth || !lua_checkstack(E->L, 8)) {
    path root, p;
    root.len = 0;
    path_root(E->root, E->fr.v[0].i, &root);
    enc_path(E, &p);
    luaL_error(E->L, "cannot copy %s: nested deeper than %d levels (at %s)", root.s,
               (int)(E->fr.n > E->max_depth ? E->max_depth : E->fr.n - 1), p.s);
  }
  lf_frame *f = lf_push_frame(E->L, &E->fr, kind);
  f->slot = lua_gettop(E->L);
  return f;
}

/* Exact order of an integer and a float (neither NaN). */
static int cmp_int_float(lua_Integer i, double d) {
  if (d >= 9223372036854775808.0) return -1;
  if (d < -9223372036854775808.0) return 1;
  double fl = floor(d);
  lua_Integer fi = (lua_Integer)fl;
  if (i != fi) return i < fi ? -1 : 1;
  return fl < d ? -1 : 0;
}

static int cmp_keys(const void *pa, const void *pb) {
  const lf_canon_key *a = pa, *b = pb;
  if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
  switch (a->rank) {
  case 0:
    if (a->is_int && b->is_int) return a->i < b->i ? -1 : a->i > b->i;
    if (a->is_int) return cmp_int_float(a->i, b->d);
    if (b->is_int) return -cmp_int_float(b->i, a->d);
    return a->d < b->d ? -1 : a->d > b->d;
  case 1: {
    int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
  }
  case 2:
    return a->i < b->i ? -1 : a->i > b->i;
  default:
    return 0;
  }
}

static lf_canon_key *canon_key_slot(lf_encoder *E) {
  if (E->nkeys == E->keycap) {
    uint32_t cap = E->keycap ? E->keycap * 2 : 64;
    lf_canon_key *grown = realloc(E->keys, cap * sizeof *grown);
    if (!grown) luaL_error(E->L, "not enough memory");
    E->keys = grown;
    E->keycap = cap;
  }
  return &E->keys[E->nkeys++];
}

/* Canonical table at the top: the prefix 1..m goes by position, the other
 * keys are collected (C entries + the scratch table) and sorted. */
static void enc_canon_table(lf_encoder *E) {
  lua_State *L = E->L;
  luaL_checkstack(L, 8, "nested too deep");
  int t = lua_gettop(L);
  if (lua_isnil(L, E->scratch)) {
    lua_newtable(L);
    lua_replace(L, E->scratch);
  }
  lua_Integer m = 0;
  while (lua_rawgeti(L, t, m + 1) != LUA_TNIL) {
    lua_pop(L, 1);
    m++;
  }
  lua_pop(L, 1);
  uint32_t kbase = E->nkeys;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    int type = lua_type(L, -1);
    if (type == LUA_TNUMBER && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
        lua_tointeger(L, -1) <= m)
      continue;
    lf_canon_key k = {0};
    if (type == LUA_TNUMBER) {
      k.is_int = (uint8_t)lua_isinteger(L, -1);
      if (k.is_int)
        k.i = lua_tointeger(L, -1);
      else
        k.d = lua_tonumber(L, -1);
    } else if (type == LUA_TSTRING) {
      k.rank = 1;
      k.s = lua_tolstring(L, -1, &k.len);
    } else if (type == LUA_TBOOLEAN) {
      k.rank = 2;
      k.i = lua_toboolean(L, -1);
    } else {
      int null = 0;
      if (type == LUA_TUSERDATA) {
        lf_json_push_shared(L, LF_JSON_NULL);
        null = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
      }
      if (!null) {
        E->nkeys = kbase;
        if (type == LUA_TTABLE || type == LUA_TFUNCTION)
          enc_fail_key(E, "cannot hash a %s used as a key at %s", luaL_typename(L, -1));
        enc_fail_key(E, "cannot copy a %s at a key of %s",
                     type == LUA_TLIGHTUSERDATA ? "userdata" : luaL_typename(L, -1));
      }
      k.rank = 3;
    }
    uint32_t n = E->nkeys - kbase;
    k.idx = kbase + n + 1;
    *canon_key_slot(E) = k;
    lua_pushvalue(L, -1);
    lua_rawseti(L, E->scratch, k.idx);
  }
  uint32_t nhash = E->nkeys - kbase;
  if (nhash > 1) qsort(E->keys + kbase, nhash, sizeof *E->keys, cmp_keys);
  if (m > UINT32_MAX) luaL_error(L, "table too large");
  enc_byte(E, T_TABLE);
  enc_u32(E, (uint32_t)m);
  enc_u32(E, nhash);
  lf_frame *f = lf_enc_open(E, F_CANON);
  f->narr = (uint32_t)m;
  f->n = nhash;
  f->kbase = kbase;
  lua_pushnil(L); /* the current key */
}

static void enc_table(lf_encoder *E) {
  lua_State *L = E->L;
  if (E->flags & LF_CODEC_FUNCTIONS) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int globals = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (globals) {
      enc_byte(E, T_GLOBALS);
      lua_pop(L, 1);
      return;
    }
    if (lf_enc_named(E)) return;
  }
  if (lf_enc_ref(E)) return;
  if (E->flags & LF_CODEC_CANONICAL) {
    enc_canon_table(E);
    return;
  }
  enc_byte(E, T_TABLE);
  size_t hdr = E->out->len;
  enc_u32(E, 0);
  enc_u32(E, 0);
  lf_frame *f = lf_enc_open(E, F_TABLE);
  f->hdr = hdr;
  f->phase = P_KEY;
  lua_pushnil(L);
}

static void enc_state(lf_encoder *E, lf_state *s) {
  if (lf_enc_ref(E)) return;
  enc_byte(E, T_STATE);
  enc_byte(E, s->kind);
  enc_byte(E, (unsigned char)((s->message ? 1 : 0) | (s->has_start ? 2 : 0) |
                              (s->has_result ? 4 : 0) | (s->no_retry ? 8 : 0)));
  if (s->message) enc_lstring(E, s->message, strlen(s->message));
  enc_zigzag(E, s->run_count);
  enc_zigzag(E, s->loop_count);
  if (s->has_start) enc_f64(E, s->start_time);
  enc_varint(E, s->nfields);
  for (int i = 0; i < s->nfields; i++) {
    const lf_field *fd = &s->fields[i];
    enc_lstring(E, fd->name, strlen(fd->name));
    enc_byte(E, (unsigned char)fd->v.type);
    if (fd->v.type == LF_FIELD_BOOL)
      enc_byte(E, fd->v.b != 0);
    else if (fd->v.type == LF_FIELD_INT)
      enc_zigzag(E, fd->v.i);
    else if (fd->v.type == LF_FIELD_FLOAT)
      enc_f64(E, fd->v.f);
    else if (fd->v.type == LF_FIELD_STRING)
      enc_lstring(E, fd->v.s, fd->v.len);
  }
  lf_frame *f = lf_enc_open(E, F_STATE);
  f->n = s->has_result;
}

static void enc_userdata(lf_encoder *E) {
  lua_State *L = E->L;
  lf_json_push_shared(L, LF_JSON_NULL);
  int null = lua_rawequal(L, -1, -2);
  lua_pop(L, 1);
  if (null) {
    enc_byte(E, T_NULL);
    lua_pop(L, 1);
    return;
  }
  lf_state *s = lf_test_state(L, -1);
  if (s) {
    enc_state(E, s);
    return;
  }
  double t;
  if (luaL_testudata(L, -1, LF_TIME_MT) && lf_to_time(L, -1, &t)) {
    enc_byte(E, T_TIME);
    enc_f64(E, t);
    lua_pop(L, 1);
    return;
  }
  if ((E->flags & LF_CODEC_FUNCTIONS) && lf_enc_named(E)) return;
  lf_enc_fail(E, "userdata");
}

/* Writes the value at the top: a scalar is written and popped; a container
 * stays as the container of a new frame. */
static void enc_value(lf_encoder *E) {
  lua_State *L = E->L;
  switch (lua_type(L, -1)) {
  case LUA_TNIL:
    enc_byte(E, T_NIL);
    break;
  case LUA_TBOOLEAN:
    enc_byte(E, lua_toboolean(L, -1) ? T_TRUE : T_FALSE);
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, -1)) {
      enc_byte(E, T_INT);
      enc_zigzag(E, lua_tointeger(L, -1));
    } else {
      enc_byte(E, T_FLOAT);
      enc_f64(E, lua_tonumber(L, -1));
    }
    break;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    enc_byte(E, T_STRING);
    enc_lstring(E, s, n);
    break;
  }
  case LUA_TTABLE:
    enc_table(E);
    return;
  case LUA_TFUNCTION:
    if (E->flags & LF_CODEC_FUNCTIONS) {
      lf_enc_function(E);
      return;
    }
    lf_enc_fail(E, "function");
    break;
  case LUA_TUSERDATA:
    enc_userdata(E);
    return;
  case LUA_TTHREAD:
    lf_enc_fail(E, "thread");
    break;
  default:
    lf_enc_fail(E, "userdata");
  }
  lua_pop(L, 1);
}

/* A table's metatable, after its pairs. Returns 1 with a metatable to write
 * by value on the top, else 0 (the table is done). */
static int enc_meta(lf_encoder *E, lf_frame *f) {
  lua_State *L = E->L;
  f->phase = P_DONE;
  if (!lua_getmetatable(L, f->slot)) {
    enc_byte(E, META_NONE);
    return 0;
  }
  for (int mark = LF_JSON_ARRAY_MT; mark <= LF_JSON_OBJECT_MT; mark++) {
    lf_json_push_shared(L, mark);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (same) {
      enc_byte(E, mark == LF_JSON_ARRAY_MT ? META_ARRAY : META_OBJECT);
      lua_pop(L, 1);
      return 0;
    }
  }
  lua_pushliteral(L, "__luaflow_signal");
  lua_rawget(L, -2);
  lua_Integer code = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  if (code > 0 && code < LF_NSIGNALS) {
    enc_byte(E, META_SIGNAL);
    enc_byte(E, (unsigned char)code);
    lua_pop(L, 1);
    return 0;
  }
  if (enc_name(E, META_NAMED)) return 0;
  enc_byte(E, META_VALUE);
  f->what = W_META;
  return 1;
}

/* Advances frame f: returns 1 with the next value to write on the top,
 * 2 when it wrote something itself, 0 when the frame is done. */
static int enc_step(lf_encoder *E, lf_frame *f) {
  lua_State *L = E->L;
  switch (f->kind) {
  case F_ROOT:
    if (f->i == f->n) return 0;
    lua_pushvalue(L, E->idx + (int)f->i++);
    return 1;
  case F_TABLE:
    if (f->phase == P_VALUE) { /* the key was written; now its value */
      f->phase = P_KEY;
      f->what = W_VALUE;
      return 1;
    }
    if (f->phase == P_KEY) {
      if (lua_next(L, f->slot)) {
        if (f->nhash == 0 && lua_isinteger(L, -2) &&
            lua_tointeger(L, -2) == (lua_Integer)f->narr + 1 && f->narr < UINT32_MAX) {
          f->narr++;
          f->what = W_VALUE;
          return 1;
        }
        if (f->nhash == UINT32_MAX) luaL_error(L, "table too large");
        f->nhash++;
        lua_pushvalue(L, -2);
        f->what = W_KEY;
        f->phase = P_VALUE;
        return 1;
      }
      lua_pushnil(L);
      put_u32(E->out->data + f->hdr, f->narr);
      put_u32(E->out->data + f->hdr + 4, f->nhash);
      return enc_meta(E, f);
    }
    return 0;
  case F_CANON:
    if (f->phase == P_ARRAY) {
      if (f->i < f->narr) {
        lua_pushinteger(L, ++f->i);
        lua_replace(L, f->slot + 1);
        lua_rawgeti(L, f->slot, f->i);
        f->what = W_VALUE;
        return 1;
      }
      f->phase = P_KEY;
      f->i = 0;
    }
    if (f->phase == P_KEY) {
      if (f->i < f->n) {
        lua_rawgeti(L, E->scratch, E->keys[f->kbase + f->i].idx);
        lua_copy(L, -1, f->slot + 1);
        f->what = W_KEY;
        f->phase = P_VALUE;
        return 1;
      }
      return enc_meta(E, f);
    }
    if (f->phase == P_VALUE) {
      lua_pushvalue(L, f->slot + 1);
      lua_rawget(L, f->slot);
      f->what = W_VALUE;
      f->phase = P_KEY;
      f->i++;
      return 1;
    }
    return 0;
  case F_FUNC:
    return lf_enc_upvalue(E, f);
  case F_STATE:
    if (f->n) {
      f->n = 0;
      lua_getiuservalue(L, f->slot, 1);
      f->what = W_RESULT;
      return 1;
    }
    return 0;
  }
  return 0;
}

static int encode_protected(lua_State *L) {
  lf_encoder *E = lua_touserdata(L, 1);
  E->L = L;
  E->idx = 2;
  lua_pushnil(L); /* the canonical key scratch, made when needed */
  E->scratch = lua_gettop(L);
  enc_write(E, "LFC", 3);
  enc_byte(E, VERSION);
  enc_varint(E, (uint64_t)E->nvalues);
  lf_frame *root = lf_push_frame(L, &E->fr, F_ROOT);
  root->n = (uint32_t)E->nvalues;
  while (E->fr.n) {
    lf_frame *f = &E->fr.v[E->fr.n - 1];
    int r = enc_step(E, f);
    if (r == 1) {
      enc_value(E);
    } else if (r == 0) {
      if (f->kind == F_CANON) E->nkeys = f->kbase;
      if (f->kind != F_ROOT) lua_settop(L, f->slot - 1);
      E->fr.n--;
    }
  }
  return 0;
}

static void copy_error(lua_State *L, char *err, size_t errlen) {
  if (!err || !errlen) return;
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  snprintf(err, errlen, "%s", msg ? msg : "not enough memory");
}

int lf_encode(lua_State *L, int idx, int n, const lf_codec_opts *opts, lf_buf *out,
              char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  if (n < 0 || n > LF_CODEC_MAX_VALUES || !lua_checkstack(L, n + 4)) {
    if (err && errlen) snprintf(err, errlen, "cannot copy %d values at once", n);
    return -1;
  }
  lf_encoder E; /* only the scalars are set: the small arrays stay uncleared */
  E.L = L;
  E.nrefs = E.nkeys = E.keycap = 0;
  E.keys = NULL;
  E.names_checked = 0;
  E.out = out;
  E.start = out->len;
  E.flags = opts ? opts->flags : 0;
  E.max_depth = opts && opts->max_depth ? opts->max_depth : LF_CODEC_MAX_DEPTH;
  E.max_size = opts && opts->max_size ? opts->max_size : LF_CODEC_MAX_SIZE;
  E.end = out->len; /* the first write makes room */
  E.root = opts && opts->root ? opts->root : "value %d";
  E.nvalues = n;
  frames_init(&E.fr);
  ptrmap_init(&E.refs);
  ptrmap_init(&E.upvals);
  int top = lua_gettop(L);
  lua_pushcfunction(L, encode_protected);
  lua_pushlightuserdata(L, &E);
  for (int i = 0; i < n; i++)
    lua_pushvalue(L, idx + i);
  int status = lf_pcall(L, n + 1, 0);
  if (status != LUA_OK) {
    copy_error(L, err, errlen);
    out->len = E.start;
  }
  lua_settop(L, top);
  frames_free(&E.fr);
  ptrmap_free(&E.refs);
  ptrmap_free(&E.upvals);
  free(E.keys);
  return status == LUA_OK ? 0 : -1;
}

/* {=== Decoder ===} */

int lf_dec_fail(lf_decoder *D, const char *what) {
  return luaL_error(D->L, "bad encoded value at byte %I: %s",
                    (lua_Integer)(D->p - D->start), what);
}

static inline const unsigned char *dec_take(lf_decoder *D, size_t n) {
  if ((size_t)(D->end - D->p) < n) lf_dec_fail(D, "truncated");
  const unsigned char *p = D->p;
  D->p += n;
  return p;
}

const unsigned char *lf_dec_take(lf_decoder *D, size_t n) {
  return dec_take(D, n);
}

static inline unsigned dec_byte(lf_decoder *D) {
  return *dec_take(D, 1);
}

static inline uint64_t dec_varint(lf_decoder *D) {
  if (D->p < D->end && *D->p < 0x80) return *D->p++;
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    unsigned c = dec_byte(D);
    if (shift == 63 && c > 1) break;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) return v;
  }
  return (uint64_t)lf_dec_fail(D, "bad varint");
}

uint64_t lf_dec_varint(lf_decoder *D) {
  return dec_varint(D);
}

static inline uint32_t dec_u32(lf_decoder *D) {
  const unsigned char *p = dec_take(D, 4);
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static inline double dec_f64(lf_decoder *D) {
  const unsigned char *p = dec_take(D, 8);
  double d;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(&d, p, 8);
#else
  uint64_t bits = 0;
  for (int i = 0; i < 8; i++)
    bits |= (uint64_t)p[i] << (8 * i);
  memcpy(&d, &bits, 8);
#endif
  return d;
}

static inline int64_t dec_zigzag(lf_decoder *D) {
  uint64_t u = dec_varint(D);
  return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static inline const char *dec_lstring(lf_decoder *D, size_t *n) {
  uint64_t len = dec_varint(D);
  if (len > (uint64_t)(D->end - D->p)) lf_dec_fail(D, "truncated string");
  *n = (size_t)len;
  return (const char *)dec_take(D, (size_t)len);
}

static size_t dec_left(const lf_decoder *D) {
  return (size_t)(D->end - D->p);
}

lf_frame *lf_dec_open(lf_decoder *D, int kind) {
  if (D->fr.n > D->max_depth) lf_dec_fail(D, "nested too deep");
  if (!lua_checkstack(D->L, 8)) lf_dec_fail(D, "nested too deep for the Lua stack");
  lf_frame *f = lf_push_frame(D->L, &D->fr, kind);
  f->slot = lua_gettop(D->L);
  return f;
}

/* Numbers the object at the top (the object table is made on first use). */
void lf_dec_keep(lf_decoder *D) {
  if (D->nrefs == 0) {
    lua_createtable(D->L, 4, 0);
    lua_replace(D->L, D->refs);
  }
  lua_pushvalue(D->L, -1);
  lua_rawseti(D->L, D->refs, (lua_Integer)++D->nrefs);
}

static void dec_table(lf_decoder *D) {
  lua_State *L = D->L;
  uint32_t narr = dec_u32(D), nhash = dec_u32(D);
  /* every element takes a byte at least: counts cannot promise more than is left */
  if (narr > dec_left(D) || nhash > dec_left(D) / 2) lf_dec_fail(D, "bad table size");
  lua_createtable(L, (int)narr, (int)nhash);
  lf_dec_keep(D);
  lf_frame *f = lf_dec_open(D, F_TABLE);
  f->narr = narr;
  f->nhash = nhash;
  f->phase = P_ARRAY;
}

/* STATE: the box exists before the state, so no path leaks the state. */
static int dec_state(lf_decoder *D) {
  lua_State *L = D->L;
  unsigned kind = dec_byte(D), bits = dec_byte(D);
  if (kind >= LF_NKINDS || bits > 15) lf_dec_fail(D, "bad state");
  size_t mlen = 0;
  const char *msg = (bits & 1) ? dec_lstring(D, &mlen) : NULL;
  if (msg && memchr(msg, '\0', mlen)) lf_dec_fail(D, "bad state message");
  int64_t run = dec_zigzag(D), loop = dec_zigzag(D);
  if (run < INT32_MIN || run > INT32_MAX || loop < INT32_MIN || loop > INT32_MAX)
    lf_dec_fail(D, "bad state counts");
  double start = (bits & 2) ? dec_f64(D) : 0;
  uint64_t nfields = dec_varint(D);
  if (nfields > 65535 || nfields > dec_left(D)) lf_dec_fail(D, "bad state fields");
  if (luaL_getmetatable(L, LF_STATE_MT) != LUA_TTABLE)
    luaL_error(L,
               "cannot decode a luaflow.State: luaflow is not loaded in this Lua state");
  lf_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->s = NULL;
  lua_insert(L, -2);
  lua_setmetatable(L, -2);
  lf_state *s = lf_state_newl((lf_kind)kind, msg, mlen);
  if (!s) luaL_error(L, "not enough memory");
  b->s = s;
  s->run_count = (int32_t)run;
  s->loop_count = (int32_t)loop;
  s->has_start = (bits & 2) != 0;
  s->no_retry = (bits & 8) != 0;
  s->start_time = start;
  for (uint64_t i = 0; i < nfields; i++) {
    size_t nlen;
    const char *name = dec_lstring(D, &nlen);
    if (nlen == 0 || memchr(name, '\0', nlen)) lf_dec_fail(D, "bad state field name");
    lua_pushlstring(L, name, nlen); /* a NUL-terminated copy */
    const char *cname = lua_tostring(L, -1);
    lf_value v = {0};
    v.type = (lf_field_type)dec_byte(D);
    if (v.type == LF_FIELD_BOOL)
      v.b = dec_byte(D) != 0;
    else if (v.type == LF_FIELD_INT)
      v.i = dec_zigzag(D);
    else if (v.type == LF_FIELD_FLOAT)
      v.f = dec_f64(D);
    else if (v.type == LF_FIELD_STRING)
      v.s = dec_lstring(D, &v.len);
    else
      lf_dec_fail(D, "bad state field");
    if (lf_state_add_field(s, cname, &v) != 0) luaL_error(L, "not enough memory");
    lua_pop(L, 1);
  }
  lf_dec_keep(D);
  if (!(bits & 4)) return 1;
  lf_dec_open(D, F_STATE)->n = 1;
  return 0;
}

static void dec_need_functions(lf_decoder *D) {
  if (!(D->flags & LF_CODEC_FUNCTIONS))
    lf_dec_fail(D, "a function or module value where only plain values may be");
}

/* Reads one value: pushes it and returns 1, or pushes a container with its
 * frame and returns 0 (the value is complete when the frame is). */
static int dec_value(lf_decoder *D) {
  lua_State *L = D->L;
  unsigned tag = dec_byte(D);
  switch (tag) {
  case T_NIL:
    lua_pushnil(L);
    return 1;
  case T_FALSE:
  case T_TRUE:
    lua_pushboolean(L, tag == T_TRUE);
    return 1;
  case T_INT:
    lua_pushinteger(L, (lua_Integer)dec_zigzag(D));
    return 1;
  case T_FLOAT:
    lua_pushnumber(L, dec_f64(D));
    return 1;
  case T_STRING: {
    size_t n;
    const char *s = dec_lstring(D, &n);
    lua_pushlstring(L, s, n);
    return 1;
  }
  case T_REF: {
    uint64_t k = dec_varint(D);
    if (k >= D->nrefs) lf_dec_fail(D, "bad reference");
    lua_rawgeti(L, D->refs, (lua_Integer)k + 1);
    return 1;
  }
  case T_NULL:
    lf_json_push_shared(L, LF_JSON_NULL);
    return 1;
  case T_TABLE:
    dec_table(D);
    return 0;
  case T_STATE:
    return dec_state(D);
  case T_TIME: {
    double t = dec_f64(D);
    if (luaL_getmetatable(L, LF_TIME_MT) != LUA_TTABLE)
      luaL_error(L,
                 "cannot decode a luaflow.Time: luaflow is not loaded in this Lua state");
    lua_pop(L, 1);
    lf_push_time(L, t);
    return 1;
  }
  case T_GLOBALS:
    dec_need_functions(D);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    return 1;
  case T_NAMED: {
    dec_need_functions(D);
    size_t n;
    const char *name = dec_lstring(D, &n);
    lf_names_resolve(L, name, n, D->flags & LF_CODEC_TRUSTED);
    return 1;
  }
  case T_FUNCTION:
    dec_need_functions(D);
    if (!(D->flags & LF_CODEC_TRUSTED)) lf_dec_fail(D, "bytecode in untrusted bytes");
    lf_dec_function(D);
    return 0;
  default:
    D->p--;
    return lf_dec_fail(D, "unknown tag");
  }
}

/* Pushes the metatable a signal of that code has in this state. */
static void push_signal_mt(lf_decoder *D, unsigned code) {
  lf_signal_push_mt(D->L, (lf_signal)code);
}

static void dec_set_meta(lf_decoder *D, lf_frame *f) {
  lua_State *L = D->L;
  if (lua_type(L, -1) != LUA_TTABLE) lf_dec_fail(D, "a metatable that is not a table");
  lua_setmetatable(L, f->slot);
}

/* The table's metatable: returns 1 when one must be read by value. */
static int dec_meta(lf_decoder *D, lf_frame *f) {
  lua_State *L = D->L;
  unsigned meta = dec_byte(D);
  f->phase = P_DONE;
  switch (meta) {
  case META_NONE:
    return 0;
  case META_ARRAY:
  case META_OBJECT:
    lf_json_push_shared(L, meta == META_ARRAY ? LF_JSON_ARRAY_MT : LF_JSON_OBJECT_MT);
    break;
  case META_SIGNAL: {
    unsigned code = dec_byte(D);
    if (code == 0 || code >= LF_NSIGNALS) lf_dec_fail(D, "bad signal");
    push_signal_mt(D, code);
    break;
  }
  case META_NAMED: {
    size_t n;
    const char *name = dec_lstring(D, &n);
    lf_names_resolve(L, name, n, D->flags & LF_CODEC_TRUSTED);
    break;
  }
  case META_VALUE:
    f->phase = P_METAVALUE;
    return 1;
  default:
    D->p--;
    lf_dec_fail(D, "bad metatable tag");
  }
  dec_set_meta(D, f);
  return 0;
}

/* Like enc_step: 1 when frame f wants a value read, 2 to step again, 0 done. */
static int dec_step(lf_decoder *D, lf_frame *f) {
  switch (f->kind) {
  case F_ROOT:
    if (f->i == f->n) return 0;
    f->i++;
    return 1;
  case F_TABLE:
    if (f->phase == P_ARRAY) {
      if (f->i < f->narr) return 1;
      f->phase = P_KEY;
      f->i = 0;
    }
    if (f->phase == P_KEY || f->phase == P_VALUE) {
      if (f->i < f->nhash) return 1;
      f->phase = P_META;
    }
    if (f->phase == P_META) return dec_meta(D, f);
    return 0;
  case F_FUNC:
    return lf_dec_upvalue(D, f);
  case F_STATE:
    return f->n ? 1 : 0;
  }
  return 0;
}

/* The value on the top is frame f's next child. */
static void dec_deliver(lf_decoder *D, lf_frame *f) {
  lua_State *L = D->L;
  switch (f->kind) {
  case F_ROOT: /* root values stay on the stack */
    break;
  case F_TABLE:
    if (f->phase == P_ARRAY) {
      lua_rawseti(L, f->slot, (lua_Integer)++f->i);
    } else if (f->phase == P_KEY) {
      int t = lua_type(L, -1);
      if (t == LUA_TNIL ||
          (t == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1)))
        lf_dec_fail(D, "a nil or NaN key");
      f->phase = P_VALUE;
    } else if (f->phase == P_VALUE) {
      lua_rawset(L, f->slot);
      f->i++;
      f->phase = P_KEY;
    } else {
      dec_set_meta(D, f);
      f->phase = P_DONE;
    }
    break;
  case F_FUNC:
    lf_dec_set_upvalue(D, f);
    break;
  case F_STATE: {
    lf_box *b = lua_touserdata(L, f->slot);
    if (!lua_isnil(L, -1)) b->s->has_result = 1;
    lua_setiuservalue(L, f->slot, 1);
    f->n = 0;
    break;
  }
  }
}

static int decode_protected(lua_State *L) {
  lf_decoder *D = lua_touserdata(L, 1);
  D->L = L;
  lua_settop(L, 0);
  lua_pushnil(L); /* the object table's slot */
  D->refs = 1;
  const unsigned char *magic = dec_take(D, 4);
  if (memcmp(magic, "LFC", 3) != 0) lf_dec_fail(D, "not a luaflow value");
  if (magic[3] != VERSION) lf_dec_fail(D, "unknown format version");
  uint64_t n = dec_varint(D);
  if (n > dec_left(D) || n > LF_CODEC_MAX_VALUES || !lua_checkstack(L, (int)n + 16))
    lf_dec_fail(D, "bad value count");
  lf_push_frame(L, &D->fr, F_ROOT)->n = (uint32_t)n;
  while (D->fr.n) {
    lf_frame *f = &D->fr.v[D->fr.n - 1];
    int r = dec_step(D, f);
    if (r == 1) {
      if (dec_value(D)) dec_deliver(D, &D->fr.v[D->fr.n - 1]);
    } else if (r == 0) {
      D->fr.n--; /* the container is on the top: its parent's child */
      if (D->fr.n) dec_deliver(D, &D->fr.v[D->fr.n - 1]);
    }
  }
  if (D->p != D->end) lf_dec_fail(D, "bytes after the last value");
  return (int)n;
}

int lf_decode(lua_State *L, const void *data, size_t len, const lf_codec_opts *opts,
              char *err, size_t errlen) {
  lf_decoder D;
  D.nrefs = 0;
  D.start = D.p = data;
  D.end = D.start + len;
  D.flags = opts ? opts->flags : 0;
  D.max_depth = opts && opts->max_depth ? opts->max_depth : LF_CODEC_MAX_DEPTH;
  frames_init(&D.fr);
  int top = lua_gettop(L);
  int status = LUA_ERRMEM;
  if (lua_checkstack(L, 4)) {
    lua_pushcfunction(L, decode_protected);
    lua_pushlightuserdata(L, &D);
    status = lf_pcall(L, 1, LUA_MULTRET);
  }
  frames_free(&D.fr);
  if (status != LUA_OK) {
    if (lua_gettop(L) > top)
      copy_error(L, err, errlen);
    else if (err && errlen)
      snprintf(err, errlen, "not enough memory");
    lua_settop(L, top);
    return -1;
  }
  return lua_gettop(L) - top;
}
