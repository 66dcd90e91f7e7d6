/* libFuzzer harness: the value codec (src/lua_codec_walk.c), decoding untrusted bytes
 * in a state with luaflow loaded (marks, signals, states and times decode).
 * Property: decoding any bytes never crashes, leaks or trips a sanitizer;
 * what decodes encodes again and that decodes to as many values; where the
 * canonical form applies (no table used as a key) it is stable: decoding it
 * and encoding once more gives the same bytes. Decoded with and without
 * LF_CODEC_FUNCTIONS (never LF_CODEC_TRUSTED: no code is loaded). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lua_codec.h"

int luaopen_luaflow(lua_State *L);

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "luaflow", luaopen_luaflow, 0);
  lua_settop(L, 0);
  return 0;
}

/* Encodes the n values from idx into out; returns 0, or -1 with err set. */
static int encode(int idx, int n, unsigned flags, lf_buf *out, char *err, size_t errlen) {
  lf_codec_opts opts = {.flags = flags};
  return lf_encode(L, idx, n, &opts, out, err, errlen);
}

static void fail(const char *what, const char *err) {
  fprintf(stderr, "%s%s%s\n", what, err ? ": " : "", err ? err : "");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[LF_CODEC_ERRMAX];
  unsigned flags = size > 0 && (data[0] & 1) ? LF_CODEC_FUNCTIONS : 0;
  lf_codec_opts opts = {.flags = flags};
  int n = lf_decode(L, data, size, &opts, err, sizeof err);
  if (n < 0) {
    if (lua_gettop(L) != 0 || !err[0])
      fail("a refusal pushed values or gave no message", NULL);
    return 0;
  }
  lf_buf plain = LF_BUF_INIT, first = LF_BUF_INIT, second = LF_BUF_INIT;
  if (encode(1, n, flags, &plain, err, sizeof err) != 0)
    fail("decoded values do not encode", err);
  /* the canonical form refuses some values by design (a table used as a key) */
  if (encode(1, n, flags | LF_CODEC_CANONICAL, &first, err, sizeof err) == 0) {
    lua_settop(L, 0);
    if (lf_decode(L, first.data, first.len, &opts, err, sizeof err) != n)
      fail("our own canonical encoding does not decode", err);
    if (encode(1, n, flags | LF_CODEC_CANONICAL, &second, err, sizeof err) != 0)
      fail("a canonical encoding's values do not encode again", err);
    if (first.len != second.len || memcmp(first.data, second.data, first.len) != 0)
      fail("the canonical encoding is not stable", NULL);
  }
  lua_settop(L, 0);
  if (lf_decode(L, plain.data, plain.len, &opts, err, sizeof err) != n)
    fail("our own encoding does not decode", err);
  lf_buf_free(&plain);
  lf_buf_free(&first);
  lf_buf_free(&second);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
