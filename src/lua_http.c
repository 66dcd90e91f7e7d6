/* luaflow.core.http: Lua bindings of http.c (perform, smtp_send, origin).
 *
 * Shape of every call:
 *   1. check every argument; raising is fine, nothing is held yet;
 *   2. copy what C needs into one scratch userdata (header lines, recipient
 *      list) or keep the Lua string at a fixed stack slot (url, body, message);
 *   3. make the response box (a userdata whose __gc/__close frees what http.c
 *      allocates), then run the transfer: no Lua runs until it returns;
 *   4. push the results (a failed push leaves the box to its __close), free.
 * Transport failures are results (nil, text), not errors: the Lua side
 * decides whether to raise.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "http.h"
#include "interrupt.h"
#include "lua_http.h"

#define RESPONSE_MT "luaflow.HttpResponse"

/* {=== Argument checks ===} */

/* Raises unless every key of the table at idx is one of names (NULL-ended). */
static void check_keys(lua_State *L, int idx, const char *fname,
                       const char *const *names) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option names are strings, got a %s", fname,
                 luaL_typename(L, -1));
    const char *k = lua_tostring(L, -1);
    const char *const *n = names;
    while (*n && strcmp(*n, k) != 0)
      n++;
    if (!*n) luaL_error(L, "%s: unknown option '%s'", fname, k);
  }
}

/* Pushes t[name] and returns its string (NULL for nil); raises for other
 * types and for strings holding a NUL byte when cstring. The value stays on
 * the stack, which keeps the pointer valid. */
static const char *field_string(lua_State *L, int t, const char *fname, const char *name,
                                size_t *len, int cstring) {
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) {
    if (len) *len = 0;
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "%s: %s must be a string, got a %s", fname, name, luaL_typename(L, -1));
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  if (cstring && strlen(s) != n) luaL_error(L, "%s: %s holds a NUL byte", fname, name);
  if (len) *len = n;
  return s;
}

/* Reads an optional positive number of seconds (0 when absent). */
static double field_seconds(lua_State *L, int t, const char *fname, const char *name) {
  lua_getfield(L, t, name);
  double v = 0;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s: %s must be a number of seconds, got a %s", fname, name,
                 luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    if (!(v > 0) || v > 1e8)
      luaL_error(L, "%s: %s must be a positive number of seconds", fname, name);
  }
  lua_pop(L, 1);
  return v;
}

/* Reads an optional boolean; dflt when absent. */
static int field_bool(lua_State *L, int t, const char *fname, const char *name,
                      int dflt) {
  lua_getfield(L, t, name);
  int v = dflt;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TBOOLEAN)
      luaL_error(L, "%s: %s must be a boolean, got a %s", fname, name,
                 luaL_typename(L, -1));
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* Whether s[0..n) holds a NUL byte or any byte of set. */
static int has_byte(const char *s, size_t n, const char *set) {
  for (size_t i = 0; i < n; i++)
    if (strchr(set, s[i]) && s[i]) return 1;
  return memchr(s, '\0', n) != NULL;
}

/* A header name is an HTTP token. */
static int is_token(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c)) return 0;
  }
  return 1;
}

/* {=== Scratch memory ===} */

/* Pushes a userdata holding n pointers followed by bytes bytes of text space;
 * returns the pointer array (the text starts right after it). */
static const char **push_scratch(lua_State *L, size_t n, size_t bytes) {
  if (n > ((size_t)-1 - bytes) / sizeof(char *) - 1) luaL_error(L, "too many values");
  return lua_newuserdatauv(L, (n + 1) * sizeof(char *) + bytes, 0);
}

/* {=== Response box ===} */

typedef struct {
  lf_http_response res;
} response_box;

static int response_gc(lua_State *L) {
  response_box *b = luaL_checkudata(L, 1, RESPONSE_MT);
  lf_http_response_free(&b->res);
  return 0;
}

/* {=== perform ===} */

static const char *const perform_keys[] = {"method",  "url",     "body",
                                           "headers", "timeout", "connect_timeout",
                                           "verify",  "ca_file", NULL};

/* Reads the headers table at idx into "Name: value" lines in a scratch
 * userdata it pushes; *n is the number of lines. */
static const char **collect_headers(lua_State *L, int idx, size_t *n) {
  size_t count = 0, bytes = 0;
  if (!lua_isnil(L, idx)) {
    if (!lua_istable(L, idx))
      luaL_error(L, "perform: headers must be a table, got a %s", luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* pass 1: check and measure */
      if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "perform: header names must be strings, got a %s",
                   luaL_typename(L, -2));
      size_t kl, vl;
      const char *k = lua_tolstring(L, -2, &kl);
      if (!is_token(k, kl)) luaL_error(L, "perform: invalid header name '%s'", k);
      int t = lua_type(L, -1);
      if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "perform: header '%s' must be a string, got a %s", k,
                   luaL_typename(L, -1));
      const char *v = lua_tolstring(L, -1, &vl); /* the value, never the key */
      if (has_byte(v, vl, "\r\n"))
        luaL_error(L, "perform: header '%s' holds a line break or a NUL byte", k);
      bytes += kl + vl + 3;
      count++;
      lua_pop(L, 1);
    }
  }
  const char **lines = push_scratch(L, count, bytes);
  char *text = (char *)(lines + count + 1);
  size_t i = 0;
  if (count > 0) {
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* pass 2: the same table, the same order */
      size_t kl, vl;
      const char *k = lua_tolstring(L, -2, &kl);
      const char *v = lua_tolstring(L, -1, &vl);
      lines[i++] = text;
      memcpy(text, k, kl);
      text += kl;
      if (vl == 0) { /* "Name;" is libcurl's way to send an empty value */
        *text++ = ';';
      } else {
        *text++ = ':';
        *text++ = ' ';
        memcpy(text, v, vl);
        text += vl;
      }
      *text++ = '\0';
      lua_pop(L, 1);
    }
  }
  lines[i] = NULL;
  *n = i;
  return lines;
}

static void upper(char *dst, size_t cap, const char *s) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap; i++)
    dst[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
  dst[i] = '\0';
}

/* Pushes the response headers as a table: lower-cased names, repeated
 * headers joined with ", " in the order received. Linear in the headers'
 * bytes: a first pass chains each header to the first of its name (found
 * through the table itself), a second builds each joined value once. */
static void push_headers(lua_State *L, lf_http_response *res) {
  size_t n = res->nheaders;
  size_t *link = lua_newuserdatauv(L, (n ? n : 1) * 3 * sizeof(size_t), 0);
  size_t *next = link, *last = link + n, *total = link + 2 * n;
  lua_createtable(L, 0, (int)(n < 64 ? n : 64));
  int t = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    for (char *p = res->headers[i].name; *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    next[i] = (size_t)-1;
    total[i] = strlen(res->headers[i].value);
    lua_pushstring(L, res->headers[i].name);
    if (lua_rawget(L, t) == LUA_TNUMBER) { /* the first of this name: add to its chain */
      size_t first = (size_t)lua_tointeger(L, -1);
      next[last[first]] = i;
      last[first] = i;
      total[first] += 2 + total[i];
      lua_pop(L, 1);
    } else {
      lua_pop(L, 1);
      last[i] = i;
      lua_pushstring(L, res->headers[i].name);
      lua_pushinteger(L, (lua_Integer)i);
      lua_rawset(L, t);
    }
  }
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, res->headers[i].name);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) != LUA_TNUMBER || (size_t)lua_tointeger(L, -1) != i) {
      lua_pop(L, 2); /* not the first of its name: already joined */
      continue;
    }
    lua_pop(L, 1);
    luaL_Buffer b;
    luaL_buffinitsize(L, &b, total[i]);
    for (size_t j = i; j != (size_t)-1; j = next[j]) {
      if (j != i) luaL_addlstring(&b, ", ", 2);
      luaL_addstring(&b, res->headers[j].value);
    }
    luaL_pushresult(&b);
    lua_rawset(L, t);
  }
  lua_remove(L, t - 1); /* the links */
}

/* perform{...} -> status, body, headers, origin | nil, errtext */
static int http_perform(lua_State *L) {
  static const char *const methods[] = {"GET",    "POST", "PUT", "PATCH",
                                        "DELETE", "HEAD", NULL};
  lf_http_request req;
  lf_http_request_init(&req);
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "perform", perform_keys);
  lua_settop(L, 1);
  char method[8];
  const char *m = field_string(L, 1, "perform", "method", NULL, 1); /* slot 2 */
  if (!m) m = "GET";
  upper(method, sizeof method, m);
  const char *const *known = methods;
  while (*known && (strlen(m) >= sizeof method || strcmp(method, *known) != 0))
    known++;
  if (!*known) return luaL_error(L, "perform: unsupported HTTP method '%s'", m);
  req.method = *known;
  req.url = field_string(L, 1, "perform", "url", NULL, 1); /* slot 3 */
  if (!req.url) return luaL_error(L, "perform: url is required");
  req.body = field_string(L, 1, "perform", "body", &req.body_len, 0); /* slot 4 */
  req.ca_file = field_string(L, 1, "perform", "ca_file", NULL, 1);    /* slot 5 */
  req.timeout = field_seconds(L, 1, "perform", "timeout");
  req.connect_timeout = field_seconds(L, 1, "perform", "connect_timeout");
  req.verify = field_bool(L, 1, "perform", "verify", 1);
  req.stop = lf_interrupt_due;   /* SIGINT/SIGTERM or the task's timeout */
  lua_getfield(L, 1, "headers"); /* slot 6 */
  req.headers = collect_headers(L, 6, &req.nheaders); /* slot 7 */
  char origin[LF_HTTP_ERRLEN];
  lf_url_origin(req.url, origin, sizeof origin);

  response_box *box = lua_newuserdatauv(L, sizeof *box, 0); /* slot 8 */
  memset(box, 0, sizeof *box);
  luaL_setmetatable(L, RESPONSE_MT);
  lua_toclose(L, -1);
  /* Only C from here until the transfer is over. */
  int rc = lf_http_perform(&req, &box->res);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, box->res.err);
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)box->res.status);
  lua_pushlstring(L, box->res.body, box->res.body_len);
  push_headers(L, &box->res);
  lua_pushstring(L, origin);
  lf_http_response_free(&box->res);
  return 4;
}

/* {=== smtp_send ===} */

static const char *const smtp_keys[] = {
    "url",     "starttls", "username",        "password", "from",    "to",
    "message", "timeout",  "connect_timeout", "verify",   "ca_file", NULL};

/* Copies the recipients at idx (a string or a list of strings) into a
 * scratch userdata it pushes; *n is their number. */
static const char **collect_recipients(lua_State *L, int idx, size_t *n) {
  size_t count, bytes = 0;
  if (lua_type(L, idx) == LUA_TSTRING) {
    count = 1;
  } else if (lua_istable(L, idx)) {
    lua_Integer len = luaL_len(L, idx);
    if (len < 1) luaL_error(L, "smtp_send: to must name at least one recipient");
    count = (size_t)len;
  } else {
    return (luaL_error(L, "smtp_send: to must be a string or a list of strings"), NULL);
  }
  for (size_t i = 1; i <= count; i++) { /* pass 1: check and measure */
    if (lua_type(L, idx) == LUA_TSTRING)
      lua_pushvalue(L, idx);
    else
      lua_rawgeti(L, idx, (lua_Integer)i); /* raw: the length measured stays true */
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "smtp_send: recipient %d must be a string, got a %s", (int)i,
                 luaL_typename(L, -1));
    size_t l;
    const char *s = lua_tolstring(L, -1, &l);
    if (l == 0 || has_byte(s, l, "\r\n"))
      luaL_error(L, "smtp_send: recipient %d is empty or holds a line break", (int)i);
    bytes += l + 1;
    lua_pop(L, 1);
  }
  const char **list = push_scratch(L, count, bytes);
  char *text = (char *)(list + count + 1);
  for (size_t i = 1; i <= count; i++) { /* pass 2: copy */
    if (lua_type(L, idx) == LUA_TSTRING)
      lua_pushvalue(L, idx);
    else
      lua_rawgeti(L, idx, (lua_Integer)i); /* raw: the length measured stays true */
    size_t l;
    const char *s = lua_tolstring(L, -1, &l);
    if (!s) luaL_error(L, "smtp_send: recipients changed while read");
    memcpy(text, s, l + 1);
    list[i - 1] = text;
    text += l + 1;
    lua_pop(L, 1);
  }
  list[count] = NULL;
  *n = count;
  return list;
}

/* smtp_send{...} -> true, the server's reply to the message | nil, errtext */
static int http_smtp_send(lua_State *L) {
  lf_smtp_request req;
  lf_smtp_request_init(&req);
  luaL_checktype(L, 1, LUA_TTABLE);
  check_keys(L, 1, "smtp_send", smtp_keys);
  lua_settop(L, 1);
  req.url = field_string(L, 1, "smtp_send", "url", NULL, 1);
  if (!req.url) return luaL_error(L, "smtp_send: url is required");
  req.username = field_string(L, 1, "smtp_send", "username", NULL, 1);
  req.password = field_string(L, 1, "smtp_send", "password", NULL, 1);
  req.from = field_string(L, 1, "smtp_send", "from", NULL, 1);
  if (!req.from || !req.from[0]) return luaL_error(L, "smtp_send: from is required");
  if (has_byte(req.from, strlen(req.from), "\r\n"))
    return luaL_error(L, "smtp_send: from holds a line break");
  req.message = field_string(L, 1, "smtp_send", "message", &req.message_len, 0);
  if (!req.message) return luaL_error(L, "smtp_send: message is required");
  req.ca_file = field_string(L, 1, "smtp_send", "ca_file", NULL, 1);
  req.starttls = field_bool(L, 1, "smtp_send", "starttls", 0);
  req.verify = field_bool(L, 1, "smtp_send", "verify", 1);
  req.stop = lf_interrupt_due;
  req.timeout = field_seconds(L, 1, "smtp_send", "timeout");
  req.connect_timeout = field_seconds(L, 1, "smtp_send", "connect_timeout");
  lua_getfield(L, 1, "to");
  req.to = collect_recipients(L, lua_gettop(L), &req.nto);
  char err[LF_HTTP_ERRLEN], reply[256];
  req.reply = reply;
  req.reply_len = sizeof reply;
  /* Only C from here until the transfer is over; nothing to free afterwards. */
  if (lf_smtp_send(&req, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_pushstring(L, reply);
  return 2;
}

/* {=== origin ===} */

/* origin(url) -> "scheme://host:port" | nil, "invalid URL" */
static int http_origin(lua_State *L) {
  size_t len;
  const char *url = luaL_checklstring(L, 1, &len);
  char out[LF_HTTP_ERRLEN];
  int rc = strlen(url) == len ? lf_url_origin(url, out, sizeof out) : -1;
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "invalid URL");
    return 2;
  }
  lua_pushstring(L, out);
  return 1;
}

int luaopen_luaflow_http(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__gc", response_gc}, {"__close", response_gc}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"perform", http_perform},
                                 {"smtp_send", http_smtp_send},
                                 {"origin", http_origin},
                                 {NULL, NULL}};
  if (luaL_newmetatable(L, RESPONSE_MT)) {
    luaL_setfuncs(L, meta, 0);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  lf_open_sender(L);
  return 1;
}
