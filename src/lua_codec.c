/* luaflow.core.codec: the value codec from Lua, for specs and tools.
 *   encode(v [, opts])           -> bytes | nil, message
 *   pack(opts, ...)              -> bytes of all the values | nil, message
 *   decode(bytes [, opts])       -> true, values... | false, message
 * opts: {canonical=, functions=, trusted=, root=, max_depth=, max_size=}.
 * Test helpers, each with a second lua_State of its own:
 *   _roundtrip(v [, opts])       -> bytes here, bytes re-encoded in a fresh
 *                                   state with luaflow, the value copied back
 *   _bare_decode(bytes [, opts]) -> what decode says in a bare luaL_newstate()
 *   _worker()                    -> w; w:call(fn, ...) copies fn (with its
 *                                   upvalues) and the arguments into w's state,
 *                                   calls it there and copies back
 *                                   true, results... | false, error value
 */
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua_codec.h"
#include "lua_core.h"

int luaopen_luaflow(lua_State *L);

#define WORKER_MT "luaflow.CodecWorker"

static void read_opts(lua_State *L, int idx, lf_codec_opts *o) {
  memset(o, 0, sizeof *o);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "canonical"), lua_toboolean(L, -1))
    o->flags |= LF_CODEC_CANONICAL;
  if (lua_getfield(L, idx, "functions"), lua_toboolean(L, -1))
    o->flags |= LF_CODEC_FUNCTIONS;
  if (lua_getfield(L, idx, "trusted"), lua_toboolean(L, -1)) o->flags |= LF_CODEC_TRUSTED;
  lua_getfield(L, idx, "max_depth");
  o->max_depth = (unsigned)luaL_optinteger(L, -1, 0);
  lua_getfield(L, idx, "max_size");
  o->max_size = (size_t)luaL_optinteger(L, -1, 0);
  lua_getfield(L, idx, "root"); /* stays on the stack while o is used */
  o->root = lua_tostring(L, -1);
}

/* Encodes n values at idx and pushes the bytes, or nil and the message. */
static int push_encoded(lua_State *L, int idx, int n, const lf_codec_opts *o) {
  lf_buf b = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  if (lf_encode(L, idx, n, o, &b, err, sizeof err) != 0) {
    lf_buf_free(&b);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushlstring(L, b.data, b.len);
  lf_buf_free(&b);
  return 1;
}

static int codec_encode(lua_State *L) {
  lf_codec_opts o;
  luaL_checkany(L, 1);
  lua_settop(L, 2);
  read_opts(L, 2, &o);
  return push_encoded(L, 1, 1, &o);
}

static int codec_pack(lua_State *L) {
  lf_codec_opts o;
  int n = lua_gettop(L) - 1;
  read_opts(L, 1, &o);
  return push_encoded(L, 2, n < 0 ? 0 : n, &o);
}

/* Pushes true and the values, or false and the message. */
static int push_decoded(lua_State *L, const char *s, size_t len, const lf_codec_opts *o) {
  char err[LF_CODEC_ERRMAX];
  lua_pushboolean(L, 1);
  int n = lf_decode(L, s, len, o, err, sizeof err);
  if (n < 0) {
    lua_pop(L, 1);
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
  }
  return n + 1;
}

/* (bytes [, opts]): the bytes and the options. */
static const char *check_bytes(lua_State *L, size_t *len, lf_codec_opts *o) {
  const char *s = luaL_checklstring(L, 1, len);
  lua_settop(L, 2);
  read_opts(L, 2, o);
  return s;
}

static int codec_decode(lua_State *L) {
  size_t len;
  lf_codec_opts o;
  const char *s = check_bytes(L, &len, &o);
  return push_decoded(L, s, len, &o);
}

/* {=== A second Lua state, for the specs ===} */

static int open_luaflow(lua_State *T) {
  luaL_openlibs(T);
  luaL_requiref(T, "luaflow", luaopen_luaflow, 0);
  return 0;
}

/* A fresh state with the standard libraries, luaflow, and L's module paths. */
static lua_State *fresh_state(lua_State *L) {
  lua_State *T = luaL_newstate();
  if (!T) luaL_error(L, "not enough memory");
  lua_pushcfunction(T, open_luaflow);
  if (lf_pcall(T, 0, 0) != LUA_OK) {
    lua_pushstring(L, lua_tostring(T, -1));
    lua_close(T);
    lua_error(L);
  }
  lua_getglobal(T, "package");
  lua_getglobal(L, "package");
  for (int i = 0; i < 2; i++) {
    const char *field = i ? "cpath" : "path";
    lua_getfield(L, -1, field);
    lua_pushstring(T, lua_tostring(L, -1));
    lua_setfield(T, -2, field);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pop(T, 1);
  return T;
}

/* Encodes the value at idx of L (raises the message on failure); pushes the
 * bytes as a string onto P, which may be L itself. */
static void encode_to(lua_State *L, int idx, const lf_codec_opts *o, lua_State *P) {
  lf_buf b = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  if (lf_encode(L, idx, 1, o, &b, err, sizeof err) != 0) {
    lf_buf_free(&b);
    lua_pushstring(P, err);
    return;
  }
  lua_pushlstring(P, b.data, b.len);
  lf_buf_free(&b);
  lua_pushboolean(P, 1);
  lua_insert(P, -2);
}

static int codec_roundtrip(lua_State *L) {
  lf_codec_opts o;
  luaL_checkany(L, 1);
  lua_settop(L, 2);
  read_opts(L, 2, &o);
  encode_to(L, 1, &o, L);
  if (lua_type(L, -1) != LUA_TSTRING || !lua_toboolean(L, -2)) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  lua_remove(L, -2);
  int here = lua_gettop(L);
  size_t len;
  const char *bytes = lua_tolstring(L, here, &len);
  lua_State *T = fresh_state(L);
  char err[LF_CODEC_ERRMAX];
  if (lf_decode(T, bytes, len, &o, err, sizeof err) != 1) {
    lua_close(T);
    return luaL_error(L, "%s", err);
  }
  encode_to(T, -1, &o, L); /* true, bytes | message */
  lua_close(T);
  if (lua_type(L, -1) != LUA_TSTRING || lua_type(L, -2) != LUA_TBOOLEAN)
    return lua_error(L);
  lua_remove(L, -2);
  bytes = lua_tolstring(L, -1, &len);
  if (lf_decode(L, bytes, len, &o, err, sizeof err) != 1) return luaL_error(L, "%s", err);
  return 3;
}

static int codec_bare_decode(lua_State *L) {
  size_t len;
  lf_codec_opts o;
  const char *s = check_bytes(L, &len, &o);
  lua_State *T = luaL_newstate();
  if (!T) return luaL_error(L, "not enough memory");
  char err[LF_CODEC_ERRMAX];
  int n = lf_decode(T, s, len, &o, err, sizeof err);
  lua_close(T);
  lua_pushboolean(L, n >= 0);
  if (n < 0) {
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushinteger(L, n);
  return 2;
}

typedef struct {
  lua_State *T;
} worker;

static worker *check_worker(lua_State *L) {
  worker *w = luaL_checkudata(L, 1, WORKER_MT);
  if (!w->T) luaL_error(L, "worker is closed");
  return w;
}

static int worker_close(lua_State *L) {
  worker *w = luaL_checkudata(L, 1, WORKER_MT);
  if (w->T) lua_close(w->T);
  w->T = NULL;
  return 0;
}

/* Copies the values T's pcall left (its error or its results) back to L. */
static int copy_back(lua_State *L, lua_State *T, int base, int ok) {
  lf_codec_opts o = {LF_CODEC_TRUSTED, 0, 0, ok ? "result %d" : "error"};
  lf_buf b = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  int n = lua_gettop(T) - base;
  lua_settop(L, 1);
  if (lf_encode(T, base + 1, n, &o, &b, err, sizeof err) != 0) {
    lf_buf_free(&b);
    lua_settop(T, base);
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
  }
  lua_settop(T, base);
  lua_pushboolean(L, ok);
  n = lf_decode(L, b.data, b.len, &o, err, sizeof err);
  lf_buf_free(&b);
  if (n < 0) return luaL_error(L, "%s", err);
  return n + 1;
}

static int worker_call(lua_State *L) {
  worker *w = check_worker(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_State *T = w->T;
  int nargs = lua_gettop(L) - 2;
  lf_codec_opts fo = {LF_CODEC_FUNCTIONS | LF_CODEC_TRUSTED, 0, 0, "function"};
  lf_codec_opts ao = {LF_CODEC_TRUSTED, 0, 0, "argument %d"};
  lf_buf fb = LF_BUF_INIT, ab = LF_BUF_INIT;
  char err[LF_CODEC_ERRMAX];
  int base = lua_gettop(T);
  if (lf_encode(L, 2, 1, &fo, &fb, err, sizeof err) != 0 ||
      lf_encode(L, 3, nargs, &ao, &ab, err, sizeof err) != 0 ||
      lf_decode(T, fb.data, fb.len, &fo, err, sizeof err) != 1 ||
      lf_decode(T, ab.data, ab.len, &ao, err, sizeof err) != nargs) {
    lf_buf_free(&fb);
    lf_buf_free(&ab);
    lua_settop(T, base);
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
  }
  lf_buf_free(&fb);
  lf_buf_free(&ab);
  int ok = lf_pcall(T, nargs, LUA_MULTRET) == LUA_OK;
  return copy_back(L, T, base, ok);
}

static int codec_worker(lua_State *L) {
  worker *w = lua_newuserdatauv(L, sizeof *w, 0);
  w->T = NULL;
  luaL_setmetatable(L, WORKER_MT);
  w->T = fresh_state(L);
  return 1;
}

void lf_open_codec(lua_State *L) {
  static const luaL_Reg fns[] = {{"encode", codec_encode},
                                 {"pack", codec_pack},
                                 {"decode", codec_decode},
                                 {"_roundtrip", codec_roundtrip},
                                 {"_bare_decode", codec_bare_decode},
                                 {"_worker", codec_worker},
                                 {NULL, NULL}};
  if (luaL_newmetatable(L, WORKER_MT)) {
    static const luaL_Reg methods[] = {
        {"call", worker_call}, {"close", worker_close}, {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, worker_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fns);
}
