/* libFuzzer harness: the value codec (src/codec.c), decoding untrusted bytes
 * in a state with luaflow loaded (marks, signals, states and times decode).
 * Property: decoding any bytes never crashes, leaks or trips a sanitizer;
 * what decodes encodes again, and the canonical encoding is stable: decoding
 * it and encoding once more gives the same bytes. Decoded with and without
 * LF_CODEC_FUNCTIONS (never LF_CODEC_TRUSTED: no code is loaded). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "codec.h"

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

/* Encodes the n values from idx canonically into out; aborts on failure. */
static void encode(int idx, int n, lf_buf *out, const char *what) {
  char err[LF_CODEC_ERRMAX];
  lf_codec_opts opts = {.flags = LF_CODEC_CANONICAL};
  if (lf_encode(L, idx, n, &opts, out, err, sizeof err) != 0) {
    fprintf(stderr, "%s: decoded values do not encode: %s\n", what, err);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[LF_CODEC_ERRMAX];
  unsigned flags = size > 0 && (data[0] & 1) ? LF_CODEC_FUNCTIONS : 0;
  lf_codec_opts opts = {.flags = flags};
  int n = lf_decode(L, data, size, &opts, err, sizeof err);
  if (n < 0) {
    if (lua_gettop(L) != 0 || !err[0]) abort(); /* nothing pushed, a message */
    return 0;
  }
  lf_buf first = LF_BUF_INIT, second = LF_BUF_INIT;
  encode(1, n, &first, "first");
  lua_settop(L, 0);
  int m = lf_decode(L, first.data, first.len, &opts, err, sizeof err);
  if (m != n) {
    fprintf(stderr, "our own encoding does not decode: %s\n", err);
    abort();
  }
  encode(1, m, &second, "second");
  if (first.len != second.len || memcmp(first.data, second.data, first.len) != 0) {
    fprintf(stderr, "the canonical encoding is not stable\n");
    abort();
  }
  lf_buf_free(&first);
  lf_buf_free(&second);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
