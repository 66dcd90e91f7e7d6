/* luaflow.json: a small JSON encoder/decoder for Lua 5.4.
 *
 * Why our own: Debian's lua-cjson 2.1.0 reads every number as a float and
 * writes every empty table as {}, while luaflow needs
 * integers to stay integers and a way to write [].
 *
 * Output is always valid UTF-8 JSON: strings go through json_text.c, which
 * escapes every byte that is not part of well-formed UTF-8 as \u00XX, and the
 * text a __tojson metamethod returns is checked to be one JSON value and
 * rewritten compactly (never spliced in as it is). The decoder reads UTF-8
 * only (RFC 8259), so decode(encode(decode(text))) is decode(text).
 *
 * Memory: the encoder writes into a malloc'ed buffer owned by a to-be-closed
 * userdata (a session), so a Lua error raised anywhere (a bad value, a
 * __tojson that fails, an allocation failure) leaks nothing. The decoder uses
 * luaL_Buffer for escaped strings. The only state is the null sentinel and
 * the two marker metatables, which live in the registry.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "json_text.h"
#include "lua_json.h"

#define JSON_MAX_DEPTH LF_JSON_MAX_DEPTH

/* Registry keys: addresses of distinct constants, so no string key collides. */
static const char NULL_KEY[] = "luaflow.json.null";
static const char ARRAY_MT_KEY[] = "luaflow.json.array";
static const char OBJECT_MT_KEY[] = "luaflow.json.object";
#define SESSION_MT "luaflow.json.session"

/* Every module function gets the same three upvalues. */
#define UV_NULL lua_upvalueindex(1)
#define UV_ARRAY_MT lua_upvalueindex(2)
#define UV_OBJECT_MT lua_upvalueindex(3)

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* A marked array may have holes (written null) while at least half of its
 * slots hold values; a sparser one ({[2^40] = 1}) is refused at once. */
#define SPARSE_SLACK 16

static void push_shared(lua_State *L, const char *key);

/* {=== Encoder ===} */

typedef struct {
  lua_State *L;
  lf_buf *b;
  const lf_redactor *red; /* NULL: nothing to hide */
  int null_idx;           /* stack index of json.null */
  int pretty;             /* {indent = true} */
  int depth;              /* containers currently open */
} Encoder;

enum { KIND_AUTO, KIND_ARRAY, KIND_OBJECT };

static void enc_value(Encoder *E, int idx);

static void enc_oom(Encoder *E) {
  luaL_error(E->L, "not enough memory");
}

static void enc_write(Encoder *E, const char *s, size_t n) {
  if (!lf_buf_put(E->b, s, n)) enc_oom(E);
}

static void enc_char(Encoder *E, char c) {
  if (!lf_buf_putc(E->b, c)) enc_oom(E);
}

/* Pretty printing: a new line indented for `level` open containers. */
static void enc_newline(Encoder *E, int level) {
  size_t n = (size_t)level * 2;
  if (!E->pretty) return;
  if (!lf_buf_reserve(E->b, n + 1)) enc_oom(E);
  E->b->data[E->b->len++] = '\n';
  memset(E->b->data + E->b->len, ' ', n);
  E->b->len += n;
}

/* A string, redacted first when there is something to hide. */
static void enc_string(Encoder *E, const char *s, size_t len) {
  int allocated = 0;
  char *shown = E->red ? lf_redact_with(E->red, s, len, &len, &allocated) : (char *)s;
  int rc = lf_json_put_string(E->b, shown, len);
  if (allocated) free(shown);
  if (rc != 0) enc_oom(E);
}

static int is_number_char(char c) {
  return IS_DIGIT(c) || c == '-' || c == '+' || c == 'e';
}

/* Writes x as the shortest of %.15g..%.17g that reads back as x (%.17g always
 * does), with '.' as the decimal point whatever the locale, and with ".0"
 * added when the text would otherwise read back as an integer. */
static size_t format_float(char *buf, size_t size, double x) {
  int prec, n = 0, is_float = 0;
  size_t i = 0, j = 0;
  for (prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, size, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break; /* strtod reads the same locale */
  }
  while (i < (size_t)n) {
    if (is_number_char(buf[i])) {
      if (buf[i] == 'e') is_float = 1;
      buf[j++] = buf[i++];
    } else { /* the locale's decimal point, possibly several bytes */
      buf[j++] = '.';
      is_float = 1;
      while (i < (size_t)n && !is_number_char(buf[i]))
        i++;
    }
  }
  if (!is_float) {
    buf[j++] = '.';
    buf[j++] = '0';
  }
  return j;
}

/* The JSON text of the number at idx in buf; 0 when it has none (NaN, inf). */
size_t lf_json_number_text(lua_State *L, int idx, char buf[64]) {
  if (lua_isinteger(L, idx)) {
    lua_Integer v = lua_tointeger(L, idx);
    char tmp[24], *end = tmp + sizeof tmp;
    char *p = lf_decimal(end, v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v);
    if (v < 0) *--p = '-';
    memcpy(buf, p, (size_t)(end - p));
    return (size_t)(end - p);
  }
  double x = (double)lua_tonumber(L, idx);
  if (!isfinite(x)) return 0;
  return format_float(buf, 62, x); /* room for ".0" */
}

/* A number; one whose text shows a secret is written as the redacted text. */
static void enc_number(Encoder *E, int idx) {
  char buf[64];
  size_t n = lf_json_number_text(E->L, idx, buf);
  if (n == 0) luaL_error(E->L, "cannot encode NaN/inf");
  if (E->red) {
    int allocated = 0;
    size_t shown_len;
    char *shown = lf_redact_with(E->red, buf, n, &shown_len, &allocated);
    if (allocated) {
      int rc = lf_json_put_string(E->b, shown, shown_len);
      free(shown);
      if (rc != 0) enc_oom(E);
      return;
    }
  }
  enc_write(E, buf, n);
}

/* A value whose metatable has __tojson is written as the JSON text that
 * __tojson(value) returns, once it is known to be one valid JSON value
 * (rewritten compactly, and redacted like any other string of the output).
 * Returns 0 when there is no __tojson. */
static int enc_tojson(Encoder *E, int idx) {
  lua_State *L = E->L;
  const char *s;
  size_t len;
  lf_json_error err;
  if (luaL_getmetafield(L, idx, "__tojson") == LUA_TNIL) return 0;
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "__tojson must return a string, not %s", luaL_typename(L, -1));
  s = lua_tolstring(L, -1, &len);
  if (lf_json_rewrite(E->b, s, len, E->red, &err) != 0)
    luaL_error(L, "__tojson returned invalid JSON at position %I: %s",
               (LUAI_UACINT)(err.at + 1), err.what);
  lua_pop(L, 1);
  return 1;
}

/* The metatable's __jsontype ("array" or "object"), read raw. */
static int table_kind(lua_State *L, int idx) {
  int kind = KIND_AUTO;
  if (luaL_getmetafield(L, idx, "__jsontype") == LUA_TNIL) return kind;
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *t = lua_tostring(L, -1);
    if (strcmp(t, "array") == 0)
      kind = KIND_ARRAY;
    else if (strcmp(t, "object") == 0)
      kind = KIND_OBJECT;
  }
  if (kind == KIND_AUTO) luaL_error(L, "__jsontype must be \"array\" or \"object\"");
  lua_pop(L, 1);
  return kind;
}

/* Counts the keys of the table at idx and finds the largest positive integer
 * key; *only_pos says whether every key was a positive integer.
 * Never converts a key (lua_tolstring would confuse lua_next). */
static lua_Integer scan_keys(lua_State *L, int idx, lua_Integer *max, int *only_pos) {
  lua_Integer count = 0;
  *max = 0;
  *only_pos = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k > *max) *max = k;
    } else {
      *only_pos = 0;
    }
  }
  return count;
}

static void enc_array(Encoder *E, int idx, lua_Integer n) {
  lua_Integer i;
  enc_char(E, '[');
  for (i = 1; i <= n; i++) {
    if (i > 1) enc_char(E, ',');
    enc_newline(E, E->depth);
    lua_rawgeti(E->L, idx, i); /* a hole in a marked array is written null */
    enc_value(E, lua_gettop(E->L));
    lua_pop(E->L, 1);
  }
  if (n > 0) enc_newline(E, E->depth - 1);
  enc_char(E, ']');
}

/* One object key, copied into a userdata so qsort can compare it without Lua. */
typedef struct {
  const char *s;
  size_t len;
  lua_Integer pos; /* where the original key sits in the keys table */
} KeyRef;

static int cmp_keys(const void *a, const void *b) {
  const KeyRef *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->s, y->s, n);
  if (c != 0) return c;
  return (x->len > y->len) - (x->len < y->len);
}

/* Raises unless the sorted keys are distinct (only 1 and "1" can meet). */
static void check_distinct(lua_State *L, const KeyRef *refs, lua_Integer n) {
  for (lua_Integer i = 1; i < n; i++) {
    if (cmp_keys(&refs[i - 1], &refs[i]) == 0) {
      lua_pushlstring(L, refs[i].s, refs[i].len);
      luaL_error(L, "cannot encode table with both an integer and a string key \"%s\"",
                 lua_tostring(L, -1));
    }
  }
}

/* Pushes the text of the key on top of the stack (integers as decimals). */
static void push_key_text(lua_State *L) {
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_pushvalue(L, -1);
  } else if (lua_isinteger(L, -1)) {
    lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
  } else {
    luaL_error(L, "cannot encode table key of type %s",
               lua_type(L, -1) == LUA_TNUMBER ? "float" : luaL_typename(L, -1));
  }
}

/* Writes the members of the table at idx in the order of refs. A key is
 * found at stack index pos, or at keys[pos] when keys is not 0. */
static void enc_members(Encoder *E, int idx, const KeyRef *refs, lua_Integer n,
                        int keys) {
  lua_State *L = E->L;
  enc_char(E, '{');
  for (lua_Integer i = 0; i < n; i++) {
    if (i > 0) enc_char(E, ',');
    enc_newline(E, E->depth);
    enc_string(E, refs[i].s, refs[i].len); /* a key is redacted like a value */
    enc_write(E, ": ", E->pretty ? 2 : 1);
    if (keys)
      lua_rawgeti(L, keys, refs[i].pos);
    else
      lua_pushvalue(L, (int)refs[i].pos);
    lua_rawget(L, idx);
    enc_value(E, lua_gettop(L));
    lua_pop(L, 1);
  }
  enc_newline(E, E->depth - 1);
  enc_char(E, '}');
}

/* Few keys: each key and its text stay on the stack (which keeps the texts
 * alive) and the references sit in a C array; nothing is allocated. */
#define SMALL_OBJECT 32

static void enc_small_object(Encoder *E, int idx, lua_Integer count) {
  lua_State *L = E->L;
  KeyRef refs[SMALL_OBJECT];
  lua_Integer n = 0;
  int base = lua_gettop(L);
  luaL_checkstack(L, 2 * SMALL_OBJECT + 4, "nesting too deep");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (n == count) luaL_error(L, "table changed while it was encoded");
    push_key_text(L); /* stack: key, text */
    refs[n].s = lua_tolstring(L, -1, &refs[n].len);
    refs[n].pos = lua_gettop(L) - 1;
    n++;
    lua_pushvalue(L, -2); /* the key lua_next goes on from */
  }
  qsort(refs, (size_t)n, sizeof *refs, cmp_keys);
  check_distinct(L, refs, n);
  enc_members(E, idx, refs, n, 0);
  lua_settop(L, base);
}

/* Writes the table at idx (with count keys) as an object with sorted keys;
 * integer keys are written as their decimal text. */
static void enc_object(Encoder *E, int idx, lua_Integer count) {
  lua_State *L = E->L;
  lua_Integer i, n = 0;
  size_t total = 0;
  int keys;
  KeyRef *refs;
  char *bytes;
  if (count == 0) {
    enc_write(E, "{}", 2);
    return;
  }
  if (count <= SMALL_OBJECT) {
    enc_small_object(E, idx, count);
    return;
  }
  if (count > INT_MAX / 2) luaL_error(L, "table too large to encode");
  /* stack: keys = {text1, key1, text2, key2, ...} */
  lua_createtable(L, (int)(count * 2), 0);
  keys = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    push_key_text(L);
    total += lua_rawlen(L, -1);
    lua_rawseti(L, keys, 2 * n + 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, 2 * n + 2);
    n++;
  }
  /* stack: keys, refs (KeyRef[n] followed by the key bytes) */
  refs = lua_newuserdatauv(L, (size_t)n * sizeof(KeyRef) + total, 0);
  bytes = (char *)(refs + n);
  for (i = 0; i < n; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, keys, 2 * i + 1);
    s = lua_tolstring(L, -1, &len);
    memcpy(bytes, s, len);
    refs[i].s = bytes;
    refs[i].len = len;
    refs[i].pos = 2 * i + 2;
    bytes += len;
    lua_pop(L, 1);
  }
  qsort(refs, (size_t)n, sizeof *refs, cmp_keys);
  check_distinct(L, refs, n);
  enc_members(E, idx, refs, n, keys);
  lua_pop(L, 2);
}

static void enc_table(Encoder *E, int idx) {
  lua_State *L = E->L;
  lua_Integer count, max;
  int only_pos, kind;
  if (++E->depth > JSON_MAX_DEPTH) luaL_error(L, "nesting too deep");
  luaL_checkstack(L, 8, "nesting too deep");
  kind = table_kind(L, idx);
  count = scan_keys(L, idx, &max, &only_pos);
  if (kind == KIND_AUTO)
    kind = count > 0 && only_pos && max == count ? KIND_ARRAY : KIND_OBJECT;
  if (kind == KIND_ARRAY) {
    if (!only_pos) luaL_error(L, "cannot encode array with a key that is not 1, 2, ...");
    if (max > SPARSE_SLACK && max / 2 > count)
      luaL_error(L, "cannot encode sparse array (%I slots for %I values)",
                 (LUAI_UACINT)max, (LUAI_UACINT)count);
    enc_array(E, idx, max);
  } else {
    enc_object(E, idx, count);
  }
  E->depth--;
}

/* Appends the value at absolute index idx; leaves the stack as it found it. */
static void enc_value(Encoder *E, int idx) {
  lua_State *L = E->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    enc_write(E, "null", 4);
    break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx))
      enc_write(E, "true", 4);
    else
      enc_write(E, "false", 5);
    break;
  case LUA_TNUMBER:
    enc_number(E, idx);
    break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    enc_string(E, s, len);
    break;
  }
  case LUA_TTABLE:
    if (!enc_tojson(E, idx)) enc_table(E, idx);
    break;
  case LUA_TUSERDATA:
  case LUA_TLIGHTUSERDATA:
    if (lua_rawequal(L, idx, E->null_idx))
      enc_write(E, "null", 4);
    else if (!enc_tojson(E, idx))
      luaL_error(L, "cannot encode %s value", luaL_typename(L, idx));
    break;
  default:
    luaL_error(L, "cannot encode %s value", luaL_typename(L, idx));
    break;
  }
}

void lf_json_encode_into(lua_State *L, int idx, lf_buf *b, const lf_redactor *red) {
  Encoder E = {L, b, red, 0, 0, 0};
  idx = lua_absindex(L, idx);
  push_shared(L, NULL_KEY);
  E.null_idx = lua_gettop(L);
  enc_value(&E, idx);
  lua_pop(L, 1);
}

/* {=== Encoding sessions ===}
 * The buffer and the redaction snapshot of one encode call, in a userdata
 * that frees them when it is closed or collected. */

typedef struct {
  lf_buf b;
  const lf_redactor *red;
} Session;

static int session_close(lua_State *L) {
  Session *S = luaL_checkudata(L, 1, SESSION_MT);
  lf_buf_free(&S->b);
  lf_redactor_release(S->red);
  S->red = NULL;
  return 0;
}

/* Pushes a new session, marked to be closed when the calling C function
 * returns or raises. */
static Session *push_session(lua_State *L, int redact) {
  Session *S = lua_newuserdatauv(L, sizeof *S, 0);
  memset(S, 0, sizeof *S);
  if (luaL_newmetatable(L, SESSION_MT)) {
    lua_pushcfunction(L, session_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, session_close);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, -1);
  if (redact) S->red = lf_redactor_acquire();
  return S;
}

/* Reads encode's options table; unknown names are errors, never ignored. */
static int read_options(lua_State *L, int arg) {
  int pretty = 0;
  if (lua_isnoneornil(L, arg)) return 0;
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "indent") == 0) {
      pretty = lua_toboolean(L, -1);
    } else {
      lua_pushvalue(L, -2);
      luaL_argerror(
          L, arg, lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -1, NULL)));
    }
    lua_pop(L, 1);
  }
  return pretty;
}

static int encode(lua_State *L, int pretty, int redact) {
  lua_settop(L, 1);
  Session *S = push_session(L, redact);
  push_shared(L, NULL_KEY);
  Encoder E = {L, &S->b, S->red, lua_gettop(L), pretty, 0};
  enc_value(&E, 1);
  lua_pushlstring(L, S->b.data ? S->b.data : "", S->b.len);
  return 1; /* returning closes the session */
}

/* encode(value [, {indent = true}]) -> string */
static int json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  return encode(L, read_options(L, 2), 0);
}

int lf_json_encode_redacted(lua_State *L) {
  luaL_checkany(L, 1);
  return encode(L, 0, 1);
}

/* {=== Decoder ===} */

typedef struct {
  lua_State *L;
  const char *start; /* the text, kept alive as argument 1 */
  const char *p;     /* next byte to read */
  const char *end;
  int depth;
} Decoder;

/* Raises "invalid JSON at position N: what", N counted from 1 like string.sub,
 * so text:sub(N, N) is the offending byte (N = #text + 1 at the end). */
static void dec_error(Decoder *D, const char *at, const char *what) {
  luaL_error(D->L, "invalid JSON at position %I: %s", (LUAI_UACINT)(at - D->start + 1),
             what);
}

static void dec_eof(Decoder *D) {
  dec_error(D, D->end, "unexpected end of input");
}

static void dec_unexpected(Decoder *D, const char *at) {
  char what[40];
  unsigned char c;
  if (at == D->end) dec_eof(D);
  c = (unsigned char)*at;
  if (c > 0x20 && c < 0x7f)
    snprintf(what, sizeof what, "unexpected character '%c'", c);
  else
    snprintf(what, sizeof what, "unexpected byte 0x%02X", c);
  dec_error(D, at, what);
}

static void skip_ws(Decoder *D) {
  while (D->p < D->end &&
         (*D->p == ' ' || *D->p == '\t' || *D->p == '\n' || *D->p == '\r'))
    D->p++;
}

static void dec_value(Decoder *D);

static void dec_enter(Decoder *D) {
  if (++D->depth > JSON_MAX_DEPTH) dec_error(D, D->p, "nesting too deep");
  luaL_checkstack(D->L, 6, "nesting too deep");
}

/* Decodes the \u escape (or surrogate pair) at D->p into UTF-8. */
static void dec_unicode(Decoder *D, luaL_Buffer *b) {
  lf_json_error err;
  char out[4];
  long cp = lf_json_unicode_escape(D->start, D->p, D->end, &D->p, &err);
  if (cp < 0) dec_error(D, D->start + err.at, err.what);
  luaL_addlstring(b, out, lf_utf8_encode((unsigned long)cp, out));
}

/* Pushes the string that starts at the '"' at D->p. Nothing else is pushed
 * while the luaL_Buffer is in use, as luaL_Buffer requires. */
static void dec_string(Decoder *D) {
  const char *s = ++D->p, *q = lf_json_plain_run(s, D->end);
  luaL_Buffer b;
  if (q < D->end && *q == '"') { /* no escapes: the common case */
    lua_pushlstring(D->L, s, (size_t)(q - s));
    D->p = q + 1;
    return;
  }
  luaL_buffinit(D->L, &b);
  luaL_addlstring(&b, s, (size_t)(q - s));
  D->p = q;
  for (;;) {
    unsigned char c;
    if (D->p == D->end) dec_eof(D);
    c = (unsigned char)*D->p;
    if (c == '"') break;
    if (c < 0x20) dec_error(D, D->p, "control character in string");
    if (c != '\\') {
      q = lf_json_plain_run(D->p, D->end);
      if (q == D->p) dec_error(D, q, "invalid UTF-8 in string");
      luaL_addlstring(&b, D->p, (size_t)(q - D->p));
      D->p = q;
      continue;
    }
    if (D->end - D->p < 2) dec_eof(D);
    switch (D->p[1]) {
    case '"':
      luaL_addchar(&b, '"');
      break;
    case '\\':
      luaL_addchar(&b, '\\');
      break;
    case '/':
      luaL_addchar(&b, '/');
      break;
    case 'b':
      luaL_addchar(&b, '\b');
      break;
    case 'f':
      luaL_addchar(&b, '\f');
      break;
    case 'n':
      luaL_addchar(&b, '\n');
      break;
    case 'r':
      luaL_addchar(&b, '\r');
      break;
    case 't':
      luaL_addchar(&b, '\t');
      break;
    case 'u':
      dec_unicode(D, &b);
      continue;
    default:
      dec_error(D, D->p, "invalid escape in string");
      break;
    }
    D->p += 2;
  }
  D->p++;
  luaL_pushresult(&b);
}

/* Pushes the number at D->p: an integer when it has no fraction or exponent
 * and fits in lua_Integer, else a float (lua_stringtonumber decides both, and
 * copes with the locale's decimal point). */
static void dec_number(Decoder *D) {
  lua_State *L = D->L;
  const char *s = D->p, *q;
  char small[64];
  size_t len, ok;
  lf_json_error err;
  q = lf_json_number_end(D->start, s, D->end, &err);
  if (!q && strcmp(err.what, "unexpected character") == 0)
    dec_unexpected(D, D->start + err.at);
  if (!q) dec_error(D, D->start + err.at, err.what);
  len = (size_t)(q - s);
  if (len < sizeof small) {
    memcpy(small, s, len);
    small[len] = '\0';
    ok = lua_stringtonumber(L, small);
  } else { /* a long number: let a Lua string hold the copy */
    lua_pushlstring(L, s, len);
    ok = lua_stringtonumber(L, lua_tostring(L, -1));
    if (ok) lua_remove(L, -2);
  }
  if (!ok) dec_error(D, s, "invalid number");
  D->p = q;
}

static void dec_literal(Decoder *D, const char *word) {
  const char *w = word;
  while (*w) {
    if (D->p == D->end) dec_eof(D);
    if (*D->p != *w) dec_unexpected(D, D->p);
    D->p++;
    w++;
  }
}

static void dec_array(Decoder *D) {
  lua_State *L = D->L;
  lua_Integer n = 0;
  dec_enter(D);
  lua_newtable(L);
  lua_pushvalue(L, UV_ARRAY_MT); /* so that [] is written back as [] */
  lua_setmetatable(L, -2);
  D->p++;
  skip_ws(D);
  if (D->p < D->end && *D->p == ']') {
    D->p++;
    D->depth--;
    return;
  }
  for (;;) {
    dec_value(D);
    lua_rawseti(L, -2, ++n);
    skip_ws(D);
    if (D->p == D->end) dec_eof(D);
    if (*D->p == ']') break;
    if (*D->p != ',') dec_error(D, D->p, "expected ',' or ']'");
    D->p++;
  }
  D->p++;
  D->depth--;
}

static void dec_object(Decoder *D) {
  lua_State *L = D->L;
  dec_enter(D);
  lua_newtable(L);
  D->p++;
  skip_ws(D);
  if (D->p < D->end && *D->p == '}') {
    D->p++;
    D->depth--;
    return;
  }
  for (;;) {
    skip_ws(D);
    if (D->p == D->end) dec_eof(D);
    if (*D->p != '"') dec_error(D, D->p, "expected a string key");
    dec_string(D);
    skip_ws(D);
    if (D->p == D->end) dec_eof(D);
    if (*D->p != ':') dec_error(D, D->p, "expected ':'");
    D->p++;
    dec_value(D);
    lua_rawset(L, -3); /* a repeated key: the last one wins */
    skip_ws(D);
    if (D->p == D->end) dec_eof(D);
    if (*D->p == '}') break;
    if (*D->p != ',') dec_error(D, D->p, "expected ',' or '}'");
    D->p++;
  }
  D->p++;
  D->depth--;
}

/* Pushes the value that starts at D->p (after blanks). */
static void dec_value(Decoder *D) {
  lua_State *L = D->L;
  skip_ws(D);
  if (D->p == D->end) dec_eof(D);
  switch (*D->p) {
  case '{':
    dec_object(D);
    break;
  case '[':
    dec_array(D);
    break;
  case '"':
    dec_string(D);
    break;
  case 't':
    dec_literal(D, "true");
    lua_pushboolean(L, 1);
    break;
  case 'f':
    dec_literal(D, "false");
    lua_pushboolean(L, 0);
    break;
  case 'n':
    dec_literal(D, "null");
    lua_pushvalue(L, UV_NULL);
    break;
  default:
    if (*D->p == '-' || IS_DIGIT(*D->p))
      dec_number(D);
    else
      dec_unexpected(D, D->p);
    break;
  }
}

/* decode(text) -> value */
static int json_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  Decoder D;
  D.L = L;
  D.start = D.p = s;
  D.end = s + len;
  D.depth = 0;
  lua_settop(L, 1);
  dec_value(&D);
  skip_ws(&D);
  if (D.p != D.end) dec_error(&D, D.p, "unexpected text after the value");
  return 1;
}

/* {=== null, array, object ===} */

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

/* Gives the table at 1 (a new one when absent) the marker metatable mt. */
static int mark_table(lua_State *L, int mt) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    /* never overwrite (or edit) a metatable that is not ours */
    if (!lua_rawequal(L, -1, UV_ARRAY_MT) && !lua_rawequal(L, -1, UV_OBJECT_MT))
      return luaL_argerror(L, 1,
                           "table already has a metatable (give it a __jsontype "
                           "field instead)");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, mt);
  lua_setmetatable(L, 1);
  return 1;
}

/* array([t]) -> t, written as a JSON array even when empty */
static int json_array(lua_State *L) {
  return mark_table(L, UV_ARRAY_MT);
}

/* object([t]) -> t, written as a JSON object even when it is a sequence */
static int json_object(lua_State *L) {
  return mark_table(L, UV_OBJECT_MT);
}

/* Pushes registry[key], making it on first use, so that every copy of the
 * module in one lua_State shares one null and one pair of markers. */
static void push_shared(lua_State *L, const char *key) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TNIL) return;
  lua_pop(L, 1);
  if (key == NULL_KEY) {
    lua_newuserdatauv(L, 0, 0);
    luaL_newmetatable(L, NULL_KEY);
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_setmetatable(L, -2);
  } else {
    lua_createtable(L, 0, 1);
    lua_pushstring(L, key == ARRAY_MT_KEY ? "array" : "object");
    lua_setfield(L, -2, "__jsontype");
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

void lf_json_push_shared(lua_State *L, int which) {
  push_shared(L, which == LF_JSON_NULL       ? NULL_KEY
                 : which == LF_JSON_ARRAY_MT ? ARRAY_MT_KEY
                                             : OBJECT_MT_KEY);
}

int luaopen_luaflow_json(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"encode", json_encode},
      {"decode", json_decode},
      {"array", json_array},
      {"object", json_object},
      {NULL, NULL},
  };
  luaL_checkversion(L);
  lua_createtable(L, 0, 5);
  push_shared(L, NULL_KEY);
  push_shared(L, ARRAY_MT_KEY);
  push_shared(L, OBJECT_MT_KEY);
  luaL_setfuncs(L, funcs, 3);
  push_shared(L, NULL_KEY);
  lua_setfield(L, -2, "null");
  return 1;
}
