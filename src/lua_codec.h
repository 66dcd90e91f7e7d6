/* The value codec: copies Lua values from one lua_State to another through a
 * self-contained byte buffer (worker threads, worker processes, cache keys).
 *
 * What crosses: nil, booleans, integers (kept integers), floats bit for bit
 * (NaN payloads, infinities, -0.0), binary-safe strings, tables nested with
 * shared and cyclic references kept, luaflow.json.null and the json array /
 * object marks, luaflow signals, luaflow.State and luaflow.Time values. A
 * table's metatable crosses too: a mark, a signal's class, or a metatable
 * found in a loaded module (bound by name to the target's own copy of that
 * module, like pickle's class references) are named; any other metatable is
 * copied by value like a table. Functions, threads and other userdata fail
 * with their kind and path: "cannot copy a function at result.rows[3].fn".
 *
 * With LF_CODEC_FUNCTIONS (task bodies, lua_transfer.c): a Lua function is
 * copied with its upvalues (lua_dump with debug info; shared upvalues stay
 * shared), a value found in a loaded module (string.format, the luaflow
 * table, a function of a user's module) is bound by name, the globals table
 * is the target's globals, and a C function found nowhere fails:
 * "cannot copy a C function at upvalue 'x'".
 *
 * LF_CODEC_CANONICAL writes table keys in one total order (numbers, then
 * strings, then booleans), so equal values give equal bytes (a cache key).
 *
 * Nothing here raises: both calls run protected and return an error text.
 * The walk keeps its own stack (no C recursion); depth and size are bounded.
 * Decoding bytes from anywhere never crashes as long as LF_CODEC_TRUSTED is
 * off (bytecode and module loading are for bytes we made ourselves).
 */
#ifndef LF_CODEC_H
#define LF_CODEC_H

#include <stddef.h>
#include <lua.h>

#include "buf.h"

enum {
  /* encode: table keys in one total order, so equal values give equal bytes */
  LF_CODEC_CANONICAL = 1,
  /* encode: functions (with their upvalues) and module values cross;
   * decode: accept them (a function also needs LF_CODEC_TRUSTED) */
  LF_CODEC_FUNCTIONS = 2,
  /* decode: the bytes come from our own encoder (a worker, the engine), so
   * bytecode may be loaded and a module named in them may be `require`d.
   * Without it only modules already loaded are used, and no code runs. */
  LF_CODEC_TRUSTED = 4,
  /* encode: the caller knows no module was loaded since the name index was
   * last checked (lf_codec_names_check): a miss costs no walk of
   * package.loaded (a worker executor checks once per batch of jobs) */
  LF_CODEC_NAMES_FRESH = 8,
};

/* Brings L's name index up to date with package.loaded (lua_transfer.c). */
void lf_codec_names_check(lua_State *L);

#define LF_CODEC_MAX_DEPTH 10000            /* tables, metatables, functions nested */
#define LF_CODEC_MAX_SIZE ((size_t)1 << 30) /* encoded bytes */
#define LF_CODEC_MAX_VALUES 100000          /* values in one message */
#define LF_CODEC_ERRMAX 256                 /* a comfortable size for err */

typedef struct {
  unsigned flags;
  unsigned max_depth; /* 0: LF_CODEC_MAX_DEPTH */
  size_t max_size; /* 0: LF_CODEC_MAX_SIZE (encode only; decode reads what it is given) */
  /* The name of the values in errors ("result", "argument %d": %d is the
   * value's number, from 1). NULL: "value %d". */
  const char *root;
} lf_codec_opts;

/* Appends the encoding of the n values at idx .. idx+n-1 of L to out (one
 * message: references shared between the values stay shared). opts may be
 * NULL. Returns 0, or -1 with out->len unchanged (its memory is still the
 * caller's to free) and a message in err (errlen bytes, may be NULL/0). The
 * stack of L is left as it was. */
int lf_encode(lua_State *L, int idx, int n, const lf_codec_opts *opts, lf_buf *out,
              char *err, size_t errlen);

/* Decodes one message (len bytes at data) and pushes its values onto L.
 * Returns the number of values pushed, or -1 with nothing pushed and a
 * message in err. L may be a bare luaL_newstate(): values that need luaflow
 * (marks, signals, states) then fail with an error, never a crash. */
int lf_decode(lua_State *L, const void *data, size_t len, const lf_codec_opts *opts,
              char *err, size_t errlen);

#endif
