/* Function transfer for the codec (LF_CODEC_FUNCTIONS): a Lua function
 * crosses as its dump (debug info kept, so errors keep file:line) plus its
 * upvalues; values of loaded modules cross by name.
 *
 * Upvalues, in this order:
 *   - _ENV (whatever it holds: busted gives each spec file a table of its
 *     own) and the globals table       -> the target's globals
 *   - a value found in a loaded module -> the target's own copy, by name
 *     (string.format, the luaflow table, luaflow.http.post, a function or
 *     table of a user's module: `require`d in the target on first use)
 *   - a Lua function                   -> copied the same way, recursively; an
 *     upvalue two copied closures share stays shared (lua_upvaluejoin)
 *   - a C function found nowhere       -> "cannot copy a C function at upvalue 'x'"
 *   - anything else                    -> the codec (tables copied by value)
 * A function reached twice (a recursive local refers to itself) is one object
 * of the message, so the copy refers to itself too.
 *
 * The name index (value -> "module\0key\0key") is built from package.loaded
 * breadth first, in sorted order, so the shortest name wins and every state
 * with the same modules picks the same one. It lives in the registry (weak
 * keys) and is rebuilt when package.loaded gains or loses a module, and once
 * more before a C function is refused. Only C functions are taken from _G
 * itself: a script's global Lua functions and tables are its own, not a
 * module's, so they are copied by value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_codec_impl.h"
#include "lua_core.h"

#define NAME_LEVELS 3        /* keys below a module's name */
#define NAME_SCAN_MAX 100000 /* entries looked at by one build */

static const char index_key = 0; /* registry: the name index */
static const char stamp_key = 0; /* registry: package.loaded's size at the build */
static const char dump_key = 0;  /* registry: function -> its dump (weak keys) */

/* {=== The name index ===} */

/* A fingerprint of package.loaded: its size and where its values live, so
 * a module unloaded and another loaded in its place (busted does this
 * between spec files) is seen too. */
static lua_Integer loaded_count(lua_State *L) {
  uint64_t n = 0;
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      n = n * 31 + 1 + (uint64_t)(uintptr_t)lua_topointer(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return (lua_Integer)(n >> 1); /* (a value, not a count: kept positive) */
}

typedef struct {
  const char *s;
  size_t len;
} key_ref;

static int cmp_key_ref(const void *pa, const void *pb) {
  const key_ref *a = pa, *b = pb;
  int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
  return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Pushes a userdata holding the sorted string keys of the table at t (keys
 * with a NUL cannot be part of a name); returns their number. The strings
 * stay alive as keys of t. */
static size_t sorted_keys(lua_State *L, int t, key_ref **out) {
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) n++;
  }
  key_ref *keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING || k == n) continue;
    keys[k].s = lua_tolstring(L, -1, &keys[k].len);
    if (!memchr(keys[k].s, '\0', keys[k].len)) k++;
  }
  qsort(keys, k, sizeof *keys, cmp_key_ref);
  *out = keys;
  return k;
}

static int nameable(int type) {
  return type == LUA_TTABLE || type == LUA_TFUNCTION || type == LUA_TUSERDATA;
}

/* index[value at v] = name at nm, unless it has a name already; a table
 * also joins the next level (the list at next: value, name, ...). */
static void add_name(lua_State *L, int index, int v, int nm, int next) {
  lua_pushvalue(L, v);
  if (lua_rawget(L, index) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, v);
  lua_pushvalue(L, nm);
  lua_rawset(L, index);
  if (next && lua_type(L, v) == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, next);
    lua_pushvalue(L, v);
    lua_rawseti(L, next, n + 1);
    lua_pushvalue(L, nm);
    lua_rawseti(L, next, n + 2);
  }
}

/* The values of the table at t, named prefix\0key; tables go to next. */
static void scan_table(lua_State *L, int index, int t, int prefix, int next,
                       int c_functions_only, long *budget) {
  key_ref *keys;
  size_t n = sorted_keys(L, t, &keys);
  for (size_t i = 0; i<n && * budget> 0; i++, (*budget)--) {
    lua_pushlstring(L, keys[i].s, keys[i].len);
    int type = lua_rawget(L, t);
    if (nameable(type) && (!c_functions_only || lua_iscfunction(L, -1))) {
      lua_pushvalue(L, prefix);
      lua_pushlstring(L, "", 1); /* the separator: one NUL byte */
      lua_pushlstring(L, keys[i].s, keys[i].len);
      lua_concat(L, 3);
      add_name(L, index, lua_gettop(L) - 1, lua_gettop(L), c_functions_only ? 0 : next);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1); /* the keys */
}

void lf_names_refresh(lua_State *L) {
  lua_checkstack(L, 24);
  int top = lua_gettop(L);
  lua_newtable(L); /* the index, weak keys */
  int index = top + 1;
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, index);
  long budget = NAME_SCAN_MAX;
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) {
    int loaded = top + 2;
    lua_newtable(L); /* level 0: the modules (value, name, ...) */
    int level = top + 3;
    key_ref *mods;
    size_t n = sorted_keys(L, loaded, &mods);
    for (size_t i = 0; i < n; i++) {
      lua_pushlstring(L, mods[i].s, mods[i].len);
      lua_pushvalue(L, -1);
      int type = lua_rawget(L, loaded); /* name value */
      if (nameable(type)) {
        add_name(L, index, lua_gettop(L), lua_gettop(L) - 1, 0);
        if (type == LUA_TTABLE) {
          int is_g = mods[i].len == 2 && memcmp(mods[i].s, "_G", 2) == 0;
          if (is_g) { /* only the base library's C functions */
            scan_table(L, index, lua_gettop(L), lua_gettop(L) - 1, 0, 1, &budget);
          } else {
            lua_Integer k = (lua_Integer)lua_rawlen(L, level);
            lua_pushvalue(L, -1);
            lua_rawseti(L, level, k + 1);
            lua_pushvalue(L, -2);
            lua_rawseti(L, level, k + 2);
          }
        }
      }
      lua_pop(L, 2);
    }
    lua_pop(L, 1); /* the module names */
    for (int depth = 1; depth <= NAME_LEVELS && budget > 0; depth++) {
      lua_newtable(L);
      int next = lua_gettop(L);
      lua_Integer count = (lua_Integer)lua_rawlen(L, level);
      for (lua_Integer i = 1; i + 1 <= count && budget > 0; i += 2) {
        lua_rawgeti(L, level, i);
        lua_rawgeti(L, level, i + 1);
        scan_table(L, index, next + 1, next + 2, depth < NAME_LEVELS ? next : 0, 0,
                   &budget);
        lua_pop(L, 2);
      }
      lua_replace(L, level);
    }
  }
  lua_settop(L, index);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &index_key);
  lua_pushinteger(L, loaded_count(L));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stamp_key);
  lua_settop(L, top);
}

static int lookup(lua_State *L, int idx) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &index_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) != LUA_TSTRING) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

/* A hit needs no check; the first miss of an encode checks that no module
 * was loaded since the build (counting package.loaded is the costly part). */
int lf_names_find(lua_State *L, int idx, int *checked) {
  idx = lua_absindex(L, idx);
  if (lookup(L, idx)) return 1;
  if (*checked) return 0;
  *checked = 1;
  int fresh = lua_rawgetp(L, LUA_REGISTRYINDEX, &stamp_key) == LUA_TNUMBER &&
              lua_tointeger(L, -1) == loaded_count(L);
  lua_pop(L, 1);
  if (fresh) return 0;
  lf_names_refresh(L);
  return lookup(L, idx);
}

void lf_codec_names_check(lua_State *L) {
  int fresh = lua_rawgetp(L, LUA_REGISTRYINDEX, &stamp_key) == LUA_TNUMBER &&
              lua_tointeger(L, -1) == loaded_count(L);
  lua_pop(L, 1);
  if (!fresh) lf_names_refresh(L);
}

/* "mod\0a\0b" as "mod.a.b", for messages. */
static const char *printable(lua_State *L, const char *name, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++)
    luaL_addchar(&b, name[i] ? name[i] : '.');
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

void lf_names_resolve(lua_State *L, const char *name, size_t len, int may_require) {
  const char *end = name + len, *sep = memchr(name, '\0', len);
  size_t mlen = sep ? (size_t)(sep - name) : len;
  lua_checkstack(L, 6);
  if (mlen == 2 && memcmp(name, "_G", 2) == 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  } else {
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) {
      lua_pushlstring(L, name, mlen);
      lua_rawget(L, -2);
    } else {
      lua_pushnil(L);
    }
    lua_remove(L, -2);
    if (lua_isnil(L, -1) && may_require) {
      lua_pop(L, 1);
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      lua_pushliteral(L, "require");
      lua_rawget(L, -2);
      lua_remove(L, -2);
      if (!lua_isfunction(L, -1))
        luaL_error(L, "cannot load module '%s': no require in this Lua state",
                   printable(L, name, mlen));
      lua_pushlstring(L, name, mlen);
      if (lf_pcall(L, 1, 1) != LUA_OK)
        luaL_error(L, "cannot load module '%s': %s", printable(L, name, mlen),
                   lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
    }
    if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
      luaL_error(L, "cannot find module '%s' in this Lua state",
                 printable(L, name, mlen));
  }
  for (const char *p = sep; p && p < end;) {
    const char *key = p + 1, *next = memchr(key, '\0', (size_t)(end - key));
    size_t klen = next ? (size_t)(next - key) : (size_t)(end - key);
    if (lua_type(L, -1) != LUA_TTABLE ||
        (lua_pushlstring(L, key, klen), lua_rawget(L, -2)) == LUA_TNIL)
      luaL_error(L, "cannot find %s in this Lua state", printable(L, name, len));
    lua_remove(L, -2);
    p = next;
  }
}

/* {=== Functions ===} */

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return lf_enc_try_write(ud, p, n) != 0;
}

/* The function at the top's dump (debug info kept), length first. A
 * function's dump never changes, so it is kept (weak keys) for its next
 * transfer: lua_dump is most of the cost of copying a small function. */
static void write_dump(lf_encoder *E) {
  lua_State *L = E->L;
  int fn = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dump_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 4);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &dump_key);
  }
  lua_pushvalue(L, fn);
  size_t len;
  if (lua_rawget(L, -2) == LUA_TSTRING) {
    const char *dump = lua_tolstring(L, -1, &len);
    if (len > UINT32_MAX) luaL_error(L, "function too large");
    lf_enc_reserve(E, 4 + len);
    for (int i = 0; i < 4; i++)
      lf_enc_byte(E, (unsigned char)(len >> (8 * i)));
    lf_enc_write(E, dump, len);
    lua_pop(L, 2);
    return;
  }
  lua_pop(L, 1);
  lf_enc_reserve(E, 4);
  size_t hdr = E->out->len;
  E->out->len += 4;
  lua_pushvalue(L, fn);
  if (lua_dump(L, dump_writer, E, 0) != 0) {
    lf_enc_reserve(E, E->max_size); /* raises the size error */
    luaL_error(L, "not enough memory");
  }
  lua_pop(L, 1);
  len = E->out->len - hdr - 4;
  if (len > UINT32_MAX) luaL_error(L, "function too large");
  for (int i = 0; i < 4; i++)
    E->out->data[hdr + i] = (char)(len >> (8 * i));
  lua_pushvalue(L, fn);
  lua_pushlstring(L, E->out->data + hdr + 4, len);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void lf_enc_function(lf_encoder *E) {
  lua_State *L = E->L;
  if (lf_enc_named(E)) return;
  if (lua_iscfunction(L, -1)) {
    lf_names_refresh(L); /* a module may have gained it since the index was built */
    if (lf_enc_named(E)) return;
    lf_enc_fail(E, "C function");
  }
  if (lf_enc_ref(E)) return;
  uint32_t number = E->nrefs - 1;
  lf_enc_byte(E, T_FUNCTION);
  write_dump(E);
  lua_Debug ar;
  lua_pushvalue(L, -1);
  lua_getinfo(L, ">u", &ar);
  lf_enc_byte(E, ar.nups);
  lf_frame *f = lf_enc_open(E, F_FUNC);
  f->ref = number;
  f->n = ar.nups;
}

int lf_enc_upvalue(lf_encoder *E, lf_frame *f) {
  lua_State *L = E->L;
  if (f->i == f->n) return 0;
  f->i++;
  const char *name = lua_getupvalue(L, f->slot, (int)f->i);
  if (name && strcmp(name, "_ENV") == 0) { /* whatever it holds here (busted */
    lua_pop(L, 1);                         /* gives each spec file its own) */
    lf_enc_byte(E, T_GLOBALS);
    return 2;
  }
  void *id = lua_upvalueid(L, f->slot, (int)f->i);
  uint64_t owner;
  if (id && lf_ptrmap_get(&E->upvals, id, &owner)) {
    lua_pop(L, 1);
    lf_enc_byte(E, T_JOIN);
    lf_enc_varint(E, owner >> 8);
    lf_enc_byte(E, (unsigned char)(owner & 0xff));
    return 2;
  }
  if (id) lf_ptrmap_put(L, &E->upvals, id, (uint64_t)f->ref << 8 | f->i);
  f->what = W_UPVALUE;
  return 1;
}

typedef struct {
  const char *p;
  size_t n;
} chunk;

static const char *read_chunk(lua_State *L, void *ud, size_t *size) {
  chunk *c = ud;
  (void)L;
  *size = c->n;
  c->n = 0;
  return *size ? c->p : NULL;
}

static int lua_nups(lua_State *L, int idx) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}

void lf_dec_function(lf_decoder *D) {
  lua_State *L = D->L;
  const unsigned char *h = lf_dec_take(D, 4);
  uint32_t len =
      (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
  chunk c = {(const char *)lf_dec_take(D, len), len};
  if (lua_load(L, read_chunk, &c, "=(copied function)", "b") != LUA_OK)
    luaL_error(L, "cannot load a copied function: %s", lua_tostring(L, -1));
  lf_dec_keep(D);
  unsigned nups = *lf_dec_take(D, 1);
  if ((int)nups != lua_nups(L, -1)) lf_dec_fail(D, "bad upvalue count");
  lf_dec_open(D, F_FUNC)->n = nups;
}

int lf_dec_upvalue(lf_decoder *D, lf_frame *f) {
  lua_State *L = D->L;
  if (f->i == f->n) return 0;
  if (D->p == D->end || *D->p != T_JOIN) return 1;
  D->p++;
  uint64_t k = lf_dec_varint(D);
  unsigned j = *lf_dec_take(D, 1);
  if (k >= D->nrefs) lf_dec_fail(D, "bad reference");
  lua_rawgeti(L, D->refs, (lua_Integer)k + 1);
  if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1) || j < 1 ||
      (int)j > lua_nups(L, -1))
    lf_dec_fail(D, "bad shared upvalue");
  lua_upvaluejoin(L, f->slot, (int)++f->i, -1, (int)j);
  lua_pop(L, 1);
  return 2;
}

void lf_dec_set_upvalue(lf_decoder *D, lf_frame *f) {
  if (!lua_setupvalue(D->L, f->slot, (int)++f->i)) lua_pop(D->L, 1);
}
