/* The codec from plain C, with bare lua_States (no library opened): values
 * built with the C API round-trip bit for bit, and garbage never crashes the
 * decoder. Run by spec/codec_spec.lua; `codec_test bench [small|big|function]`
 * prints timings (CPU time).
 * Exit status 0 when every check held. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_codec.h"

static int failures;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
      failures++;                                                                        \
    }                                                                                    \
  } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static double from_bits(uint64_t b) {
  double d;
  memcpy(&d, &b, 8);
  return d;
}

static uint64_t to_bits(double d) {
  uint64_t b;
  memcpy(&b, &d, 8);
  return b;
}

/* {1, 2.5, NaN with a payload, -0.0, "a\0b", nested = {x = true}, self = <it>} */
static void push_sample(lua_State *L) {
  lua_createtable(L, 4, 4);
  lua_pushinteger(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushnumber(L, 2.5);
  lua_rawseti(L, -2, 2);
  lua_pushnumber(L, from_bits(0x7ff4000000000abcULL));
  lua_rawseti(L, -2, 3);
  lua_pushnumber(L, -0.0);
  lua_rawseti(L, -2, 4);
  lua_pushlstring(L, "a\0b", 3);
  lua_setfield(L, -2, "s");
  lua_newtable(L);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "x");
  lua_setfield(L, -2, "nested");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "self");
}

static void test_round_trip(void) {
  lua_State *A = luaL_newstate(), *B = luaL_newstate();
  lf_buf a = LF_BUF_INIT, b = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  lf_codec_opts canon = {LF_CODEC_CANONICAL, 0, 0, "sample"};
  push_sample(A);
  CHECK(lf_encode(A, -1, 1, &canon, &a, err, sizeof err) == 0);
  CHECK(lf_decode(B, a.data, a.len, NULL, err, sizeof err) == 1);
  CHECK(lua_gettop(B) == 1);
  lua_rawgeti(B, 1, 3);
  CHECK(to_bits(lua_tonumber(B, -1)) == 0x7ff4000000000abcULL);
  lua_rawgeti(B, 1, 4);
  CHECK(to_bits(lua_tonumber(B, -1)) == to_bits(-0.0));
  lua_rawgeti(B, 1, 1);
  CHECK(lua_isinteger(B, -1) && lua_tointeger(B, -1) == 1);
  lua_getfield(B, 1, "self");
  CHECK(lua_rawequal(B, -1, 1));
  size_t n;
  lua_getfield(B, 1, "s");
  const char *s = lua_tolstring(B, -1, &n);
  CHECK(n == 3 && memcmp(s, "a\0b", 3) == 0);
  lua_settop(B, 1);
  CHECK(lf_encode(B, 1, 1, &canon, &b, err, sizeof err) == 0);
  CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
  /* a failure names the value and leaves the buffer and the stack as they were */
  size_t before = b.len;
  int top = lua_gettop(B);
  lua_pushcfunction(B, lua_gettop);
  lua_setfield(B, 1, "fn");
  CHECK(lf_encode(B, 1, 1, &canon, &b, err, sizeof err) == -1);
  CHECK(strcmp(err, "cannot copy a function at sample.fn") == 0);
  CHECK(b.len == before && lua_gettop(B) == top);
  lf_buf_free(&a);
  lf_buf_free(&b);
  lua_close(A);
  lua_close(B);
}

/* Mutated and random bytes: decode returns a count or -1, the stack is
 * balanced, and nothing crashes (ASan watches under make check-mem). */
static void test_garbage(void) {
  lua_State *L = luaL_newstate(), *S = luaL_newstate();
  lf_buf good = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  push_sample(S);
  lua_pushstring(S, "second value");
  CHECK(lf_encode(S, 1, 2, NULL, &good, err, sizeof err) == 0);
  unsigned char buf[512];
  int decoded = 0;
  for (int round = 0; round < 200000; round++) {
    size_t len = good.len < sizeof buf ? good.len : sizeof buf;
    memcpy(buf, good.data, len);
    if (round % 4 == 3) { /* pure noise after the header */
      len = 4 + next_random() % 60;
      for (size_t i = 4; i < len; i++)
        buf[i] = (unsigned char)next_random();
    } else {
      for (int k = 1 + (int)(next_random() % 4); k > 0; k--)
        buf[next_random() % len] = (unsigned char)next_random();
      if (round % 5 == 0) len = next_random() % (len + 1);
    }
    int top = lua_gettop(L);
    int r = lf_decode(L, buf, len, NULL, err, sizeof err);
    CHECK(r == -1 ? lua_gettop(L) == top : lua_gettop(L) == top + r);
    if (r >= 0) decoded++;
    lua_settop(L, 0);
    if (round % 1000 == 0) lua_gc(L, LUA_GCCOLLECT);
  }
  CHECK(decoded > 0);
  lf_buf_free(&good);
  lua_close(L);
  lua_close(S);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Encode and decode cost with one reused buffer, side by side. */
static void bench(const char *only) {
  lua_State *L = luaL_newstate(), *T = luaL_newstate();
  lf_buf b = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  /* a small argument list: a URL, a number, an options table */
  lua_pushstring(L, "https://example.com/api/items");
  lua_pushinteger(L, 42);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, 3);
  lua_setfield(L, -2, "retries");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "verbose");
  int n = only && strcmp(only, "small") != 0 ? 0 : 200000;
  double t0 = now();
  for (int i = 0; i < n; i++) {
    b.len = 0;
    lf_encode(L, 1, 3, NULL, &b, err, sizeof err);
  }
  double t1 = now();
  for (int i = 0; i < n; i++) {
    lf_decode(T, b.data, b.len, NULL, err, sizeof err);
    lua_settop(T, 0);
  }
  double t2 = now();
  if (n)
    printf("small argument list (%zu bytes): encode %.0f ns, decode %.0f ns\n", b.len,
           (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9);
  if (only && strcmp(only, "big") != 0) goto done;
  /* about 1 MB: 8000 records */
  lua_settop(L, 0);
  lua_createtable(L, 8000, 0);
  for (int i = 1; i <= 8000; i++) {
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, i);
    lua_setfield(L, -2, "id");
    lua_pushfstring(L, "user-%d-with-a-longer-name-%d", i, i * 7);
    lua_setfield(L, -2, "name");
    lua_pushnumber(L, i * 0.5);
    lua_setfield(L, -2, "score");
    lua_createtable(L, 3, 0);
    for (int k = 1; k <= 3; k++) {
      lua_pushfstring(L, "tag%d", k);
      lua_rawseti(L, -2, k);
    }
    lua_setfield(L, -2, "tags");
    lua_pushboolean(L, i % 2);
    lua_setfield(L, -2, "active");
    lua_rawseti(L, -2, i);
  }
  n = 30;
  t0 = now();
  for (int i = 0; i < n; i++) {
    b.len = 0;
    lf_encode(L, 1, 1, NULL, &b, err, sizeof err);
  }
  t1 = now();
  for (int i = 0; i < n; i++) {
    lf_decode(T, b.data, b.len, NULL, err, sizeof err);
    lua_settop(T, 0); /* the collector's share is counted, as in real use */
  }
  t2 = now();
  printf("8000 records (%zu bytes): encode %.2f ms (%.0f MB/s), decode %.2f ms (%.0f "
         "MB/s)\n",
         b.len, (t1 - t0) / n * 1e3, b.len / ((t1 - t0) / n) / 1e6, (t2 - t1) / n * 1e3,
         b.len / ((t2 - t1) / n) / 1e6);
  lf_codec_opts canon = {LF_CODEC_CANONICAL, 0, 0, NULL};
  t0 = now();
  for (int i = 0; i < n; i++) {
    b.len = 0;
    lf_encode(L, 1, 1, &canon, &b, err, sizeof err);
  }
  printf("8000 records, canonical: encode %.2f ms\n", (now() - t0) / n * 1e3);
done:
  lf_buf_free(&b);
  lua_close(L);
  lua_close(T);
}

/* A task body with a local helper and a module function, copied into a
 * second state with the standard libraries (what a worker receives). */
static void bench_function(void) {
  static const char body[] = "local fmt = string.format\n"
                             "local function helper(x) return fmt('%d', x) end\n"
                             "return function(a) return helper(a) .. '!' end\n";
  lua_State *L = luaL_newstate(), *T = luaL_newstate();
  luaL_openlibs(L);
  luaL_openlibs(T);
  lf_buf b = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  lf_codec_opts enc = {LF_CODEC_FUNCTIONS, 0, 0, "body"};
  lf_codec_opts dec = {LF_CODEC_FUNCTIONS | LF_CODEC_TRUSTED, 0, 0, NULL};
  if (luaL_loadstring(L, body) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) return;
  int n = 100000;
  double t0 = now();
  for (int i = 0; i < n; i++) {
    b.len = 0;
    lf_encode(L, 1, 1, &enc, &b, err, sizeof err);
  }
  double t1 = now();
  for (int i = 0; i < n; i++) {
    lf_decode(T, b.data, b.len, &dec, err, sizeof err);
    lua_settop(T, 0);
  }
  double t2 = now();
  printf("task body with a helper (%zu bytes): encode %.0f ns, decode %.0f ns\n", b.len,
         (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9);
  lf_buf_free(&b);
  lua_close(L);
  lua_close(T);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "bench") == 0) {
    if (argc > 2 && strcmp(argv[2], "function") == 0)
      bench_function();
    else
      bench(argc > 2 ? argv[2] : NULL);
    return 0;
  }
  test_round_trip();
  test_garbage();
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
