/* core.http.sender: the notifiers' side of sender.c and delivery.c.
 *
 *   enqueue{notifier=, run_id=, transition_id=, payload=, smtp=, url=,
 *           body=, headers={Name="value"}, starttls=, username=, password=,
 *           from=, to={...}, timeout=, verify=, ca_file=, deliver_within=}
 *       -> true | nil, why            (queued; the delivery happens later)
 *   report{notifier=, run_id=, transition_id=, destination=, ok=, status=,
 *          duration=, level="INFO"|"WARNING"|"ERROR"}
 *       -> nothing                    (a synchronous delivery's outcome)
 *   drain() -> n                      (waits for the queued deliveries; n were
 *                                      pending; SIGINT/SIGTERM: last chance)
 *   stop()                            (drain, then end the thread)
 *   pending() -> n; totals() -> delivered, failed
 *   monotonic() -> seconds
 *
 * A userdata in the registry stops the sender when the Lua state closes, so
 * a script run by a plain lua5.4 waits for its deliveries too. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "clock.h"
#include "delivery.h"
#include "interrupt.h"
#include "log.h"
#include "lua_http.h"
#include "sender.h"

#define DRAIN_MT "luaflow.SenderDrain"

static int cancelled(void) {
  return lf_cancel_signal != 0;
}

/* t[key] as a string (NULL when nil); the table keeps it alive. */
static const char *opt_string(lua_State *L, int t, const char *key, size_t *len) {
  lua_getfield(L, t, key);
  const char *s = NULL;
  if (lua_type(L, -1) == LUA_TSTRING)
    s = lua_tolstring(L, -1, len);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "sender: %s must be a string, got a %s", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return s;
}

static double opt_number(lua_State *L, int t, const char *key, double dflt) {
  lua_getfield(L, t, key);
  double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, int t, const char *key, int dflt) {
  lua_getfield(L, t, key);
  int v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* The strings of t[key] (a list, or a map made "Name: value") as a C array
 * in a userdata it pushes, the strings anchored in a table it pushes too. */
static const char **string_list(lua_State *L, int t, const char *key, int map,
                                size_t *n) {
  lua_getfield(L, t, key);
  int src = lua_gettop(L);
  lua_newtable(L); /* anchors */
  int anchors = src + 1;
  size_t count = 0;
  if (lua_istable(L, src)) {
    lua_pushnil(L);
    while (lua_next(L, src)) {
      if (map)
        lua_pushfstring(L, "%s: %s", luaL_checkstring(L, -2), luaL_checkstring(L, -1));
      else
        lua_pushvalue(L, -1);
      luaL_checkstring(L, -1);
      lua_rawseti(L, anchors, (lua_Integer)++count);
      lua_pop(L, 1);
    }
  }
  const char **list = lua_newuserdatauv(L, (count + 1) * sizeof *list, 0);
  for (size_t i = 0; i < count; i++) {
    lua_rawgeti(L, anchors, (lua_Integer)i + 1);
    list[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  list[count] = NULL;
  *n = count;
  return list;
}

static int sender_enqueue(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lf_send_request r;
  memset(&r, 0, sizeof r);
  r.notifier = opt_string(L, 1, "notifier", NULL);
  r.run_id = opt_string(L, 1, "run_id", NULL);
  r.transition_id = opt_string(L, 1, "transition_id", NULL);
  r.outbox_payload = opt_string(L, 1, "payload", NULL);
  r.smtp = opt_bool(L, 1, "smtp", 0);
  r.url = opt_string(L, 1, "url", NULL);
  r.body = opt_string(L, 1, "body", &r.body_len);
  r.starttls = opt_bool(L, 1, "starttls", 0);
  r.username = opt_string(L, 1, "username", NULL);
  r.password = opt_string(L, 1, "password", NULL);
  r.from = opt_string(L, 1, "from", NULL);
  r.timeout = opt_number(L, 1, "timeout", 0);
  r.verify = opt_bool(L, 1, "verify", 1);
  r.ca_file = opt_string(L, 1, "ca_file", NULL);
  r.deliver_within = opt_number(L, 1, "deliver_within", 0);
  r.headers = string_list(L, 1, "headers", 1, &r.nheaders);
  r.to = string_list(L, 1, "to", 0, &r.nto);
  char err[256];
  if (lf_sender_enqueue(&r, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int sender_report(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lf_delivery d;
  memset(&d, 0, sizeof d);
  d.notifier = opt_string(L, 1, "notifier", NULL);
  d.run_id = opt_string(L, 1, "run_id", NULL);
  d.transition_id = opt_string(L, 1, "transition_id", NULL);
  d.destination = opt_string(L, 1, "destination", NULL);
  d.status = opt_string(L, 1, "status", NULL);
  d.ok = opt_bool(L, 1, "ok", 0);
  d.duration = opt_number(L, 1, "duration", 0);
  d.time = lf_now();
  const char *level = opt_string(L, 1, "level", NULL);
  int lv = level ? lf_log_parse_level(level) : -1;
  if (lv < 0) lv = d.ok ? LF_LOG_INFO : LF_LOG_ERROR;
  lf_delivery_report(&d, lv, 1);
  return 0;
}

static int sender_drain(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lf_sender_drain(cancelled));
  return 1;
}

static int sender_stop(lua_State *L) {
  (void)L;
  lf_sender_stop(cancelled);
  return 0;
}

static int sender_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lf_sender_pending());
  return 1;
}

static int sender_totals(lua_State *L) {
  unsigned long delivered, failed;
  lf_sender_totals(&delivered, &failed);
  lua_pushinteger(L, (lua_Integer)delivered);
  lua_pushinteger(L, (lua_Integer)failed);
  return 2;
}

static int sender_monotonic(lua_State *L) {
  lua_pushnumber(L, lf_monotonic());
  return 1;
}

static int drain_gc(lua_State *L) {
  (void)L;
  lf_sender_stop(cancelled);
  return 0;
}

void lf_open_sender(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"enqueue", sender_enqueue},     {"report", sender_report},
      {"drain", sender_drain},         {"stop", sender_stop},
      {"pending", sender_pending},     {"totals", sender_totals},
      {"monotonic", sender_monotonic}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "sender");
  if (luaL_newmetatable(L, DRAIN_MT)) {
    lua_pushcfunction(L, drain_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, DRAIN_MT ".sentinel") == LUA_TNIL) {
    lua_newuserdatauv(L, 1, 0);
    luaL_setmetatable(L, DRAIN_MT);
    lua_setfield(L, LUA_REGISTRYINDEX, DRAIN_MT ".sentinel");
  }
  lua_pop(L, 1);
}
