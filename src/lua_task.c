/* The Task userdata: options, handlers, triggers, copies; and C handlers
 * as Lua values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lua_graph.h"

/* Every core function checks its arguments: the Task and Flow metatables
 * are upvalues 1 and 2 of the core functions (lua_graph.h), and are found in
 * the registry by address (no name hashed) from anywhere else. */
const char lf_task_mt_key = 0, lf_flow_mt_key = 0;

void *lf_test_ud(lua_State *L, int idx, int up, const void *key) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  int same = lua_rawequal(L, -1, lua_upvalueindex(up)); /* none: not a core function */
  if (!same) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return same ? p : NULL;
}

lf_task *lf_test_task(lua_State *L, int idx) {
  return lf_test_ud(L, idx, LF_UP_TASK_META, &lf_task_mt_key);
}

lf_task *lf_check_task(lua_State *L, int idx) {
  lf_task *t = lf_test_task(L, idx);
  return t ? t : luaL_checkudata(L, idx, LF_TASK_MT); /* raises, naming the type */
}

static char *dup_string(lua_State *L, const char *s) {
  char *d = strdup(s);
  if (!d) luaL_error(L, "not enough memory");
  return d;
}

void lf_set_name(lua_State *L, lf_object *obj, const char *name) {
  char *d = dup_string(L, name);
  free(obj->name);
  obj->name = d;
}

int lf_is_callable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return 1;
  int callable = luaL_getmetafield(L, idx, "__call") != LUA_TNIL;
  if (callable) lua_pop(L, 1);
  return callable;
}

/* state_handlers (a list) and on_failure into obj's handler array; the Lua
 * values go to uv[LF_SPEC_HANDLERS]. */
void lf_parse_handlers(lua_State *L, lf_object *obj, int uv, int list, int on_failure) {
  int n = 0;
  if (!lua_isnoneornil(L, list)) {
    if (!lua_istable(L, list)) lf_raise(L, "state_handlers should be iterable.");
    n = (int)luaL_len(L, list);
  }
  int total = n + (lua_isnoneornil(L, on_failure) ? 0 : 1);
  lf_handler *hs = total ? calloc((size_t)total, sizeof *hs) : NULL;
  if (total && !hs) luaL_error(L, "not enough memory");
  free(obj->handlers);
  obj->handlers = hs;
  obj->nhandlers = 0;
  obj->nlua = 0;
  lua_createtable(L, total, 0);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lf_chandler *ch = luaL_testudata(L, -1, LF_CHANDLER_MT);
    if (ch) {
      hs[i - 1].fn = ch->fn;
      hs[i - 1].ud = ch->ud;
    } else if (!lf_is_callable(L, -1)) {
      lf_raise(L, "state_handlers[%d] is a %s, not a function", i, luaL_typename(L, -1));
    } else {
      obj->nlua++;
    }
    hs[i - 1].lua = i;
    lua_rawseti(L, -2, i); /* C handlers stay here too, to keep them alive */
    obj->nhandlers++;
  }
  if (total > n) {
    if (!lf_is_callable(L, on_failure)) lf_raise(L, "on_failure must be a function");
    lua_pushvalue(L, on_failure);
    lua_rawseti(L, -2, total);
    hs[n].lua = total;
    hs[n].on_failure = 1;
    obj->nhandlers++;
    obj->nlua++;
  }
  lua_rawseti(L, uv, LF_SPEC_HANDLERS);
}

static double opt_number(lua_State *L, int opts, const char *key, double dflt,
                         int *given) {
  double v = dflt;
  *given = 0;
  int t = lua_getfield(L, opts, key);
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER)
      lf_raise(L, "%s must be a number, got %s", key, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    if (!(v >= 0) || isinf(v)) lf_raise(L, "%s must be a non-negative number", key);
    *given = 1;
  }
  lua_pop(L, 1);
  return v;
}

static void parse_trigger(lua_State *L, lf_task *t, int opts, int uv) {
  t->trigger = LF_TRIGGER_ALL_SUCCESSFUL;
  if (lua_getfield(L, opts, "trigger") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  int trig = lua_gettop(L);
  if (lua_istable(L, trig) && lua_getfield(L, trig, "_trigger_id") == LUA_TNUMBER) {
    t->trigger = (uint8_t)lua_tointeger(L, -1);
    int least = lua_getfield(L, trig, "at_least") == LUA_TNUMBER;
    int most = lua_getfield(L, trig, "at_most") == LUA_TNUMBER;
    if (least || most) { /* some_successful / some_failed bounds */
      double at_least = least ? lua_tonumber(L, -2) : -1;
      double at_most = most ? lua_tonumber(L, -1) : -1;
      lf_task_policy *p = lf_task_policy_make(L, t, uv);
      p->at_least = at_least;
      p->at_most = at_most;
    }
    lua_settop(L, trig - 1);
    return;
  }
  lua_settop(L, trig);
  if (!lf_is_callable(L, trig))
    lf_raise(L, "trigger must be a function, got %s", luaL_typename(L, trig));
  t->trigger = LF_TRIGGER_LUA;
  lua_rawseti(L, uv, LF_SPEC_TRIGGER);
}

/* A new task userdata; `mt` is the index of the Task metatable. */
static lf_task *new_task_ud(lua_State *L, int mt) {
  lf_task *t = lua_newuserdatauv(L, sizeof *t, LF_TASK_NUV);
  memset(t, 0, sizeof *t);
  t->owns_name = t->owns_handlers = 1;
  lua_pushvalue(L, mt);
  lua_setmetatable(L, -2);
  return t;
}

/* core.new_task(opts): option names were checked by the Lua side. */
static int task_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lf_task *t = new_task_ud(L, lua_upvalueindex(LF_UP_TASK_META));
  int ud = lua_gettop(L);
  lua_createtable(L, 3, 1); /* the spec table */
  int uv = lua_gettop(L);
  lua_pushvalue(L, uv);
  lua_setiuservalue(L, ud, LF_UV_SPEC);
  t->skip_on_upstream_skip = 1;
  if (lua_getfield(L, 1, "name") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) lf_raise(L, "name must be a string");
    lf_set_name(L, &t->obj, lua_tostring(L, -1));
    t->named = 1;
  } else {
    lf_set_name(L, &t->obj, "Task");
  }
  if (lua_getfield(L, 1, "fn") != LUA_TNIL) {
    if (!lf_is_callable(L, -1)) lf_raise(L, "fn must be a function");
    t->has_fn = 1;
    lua_pushvalue(L, -1);
    lua_rawseti(L, uv, LF_SPEC_FN);
  }
  lua_settop(L, uv);
  int mr_type = lua_getfield(L, 1, "max_retries");
  if (mr_type != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
        lua_tointeger(L, -1) > 1000000000)
      lf_raise(L, "max_retries must be a non-negative integer");
    t->max_retries = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  int delay_given, timeout_given;
  t->retry_delay = opt_number(L, 1, "retry_delay", 0, &delay_given);
  if (t->max_retries > 0 && !delay_given)
    lf_raise(L, "A `retry_delay` must be provided if max_retries > 0");
  if (delay_given && t->max_retries == 0)
    lf_raise(L,
             "A `max_retries` argument greater than 0 must be provided if specifying a "
             "retry delay.");
  t->timeout = opt_number(L, 1, "timeout", 0, &timeout_given);
  if (timeout_given && t->timeout <= 0) lf_raise(L, "timeout must be a positive number");
  int cache_given;
  double cache_for = opt_number(L, 1, "cache_for", 0, &cache_given);
  if (cache_given && cache_for <= 0) lf_raise(L, "cache_for must be a positive number");
  if (cache_given) lf_task_policy_make(L, t, uv)->cache_for = cache_for;
  lua_getfield(L, 1, "cache_key"); /* read by lua/luaflow/cache.lua */
  lua_setfield(L, uv, "cache_key");
  lua_getfield(L, 1, "cache_validator");
  lua_setfield(L, uv, "cache_validator");
  if (lua_getfield(L, 1, "skip_on_upstream_skip") != LUA_TNIL) {
    if (!lua_isboolean(L, -1)) lf_raise(L, "skip_on_upstream_skip must be a boolean");
    t->skip_on_upstream_skip = (uint8_t)lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "tags") != LUA_TNIL) {
    if (lua_type(L, -1) == LUA_TSTRING)
      lf_raise(L, "Tags should be a set of tags, not a string.");
    if (!lua_istable(L, -1)) lf_raise(L, "tags must be a list of strings");
    lua_setfield(L, uv, "tags");
  } else {
    lua_pop(L, 1);
  }
  parse_trigger(L, t, 1, uv);
  lf_parse_task_policy(L, t, 1, uv);
  lua_getfield(L, 1, "state_handlers");
  lua_getfield(L, 1, "on_failure");
  lf_parse_handlers(L, &t->obj, uv, lua_gettop(L) - 1, lua_gettop(L));
  lua_settop(L, ud);
  return 1;
}

/* A copy of the task at idx for one call in a builder: it shares the
 * original's spec (function, handlers, name) and keeps the original alive.
 * `mt`: the stack index of the Task metatable. */
lf_task *lf_task_copy(lua_State *L, int idx, int mt) {
  idx = lua_absindex(L, idx);
  lf_task *src = lua_touserdata(L, idx);
  lua_Integer origin_uv = LF_UV_ORIGIN;
  lf_task *t = new_task_ud(L, mt);
  *t = *src;
  t->owns_name = t->owns_handlers = 0;
  t->flow_id = 0;
  t->nconsts = 0;
  t->has_tables = 0;
  t->mapped = 0;
  t->arg_map = NULL;
  t->nmap = 0;
  t->origin = src->origin ? src->origin : src;
  t->copies_flow = 0;
  t->copy_index = 0;
  lua_getiuservalue(L, idx, LF_UV_SPEC);
  lua_setiuservalue(L, -2, LF_UV_SPEC);
  if (lua_getiuservalue(L, idx, (int)origin_uv) ==
      LUA_TNIL) { /* a copy of a copy: same origin */
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
  }
  lua_setiuservalue(L, -2, LF_UV_ORIGIN);
  return t;
}

static int task_gc(lua_State *L) {
  lf_task *t = lf_check_task(L, 1);
  if (t->owns_name) free(t->obj.name);
  if (t->owns_handlers) free(t->obj.handlers);
  free(t->arg_map);
  t->arg_map = NULL;
  t->obj.name = NULL;
  t->obj.handlers = NULL;
  t->obj.nhandlers = 0;
  return 0;
}

static int task_tostring(lua_State *L) {
  lf_task *t = lf_check_task(L, 1);
  lua_pushfstring(L, "<%s: %s>", t->has_fn == 2 ? "Parameter" : "Task", t->obj.name);
  return 1;
}

static int task_name(lua_State *L) {
  lua_pushstring(L, lf_check_task(L, 1)->obj.name);
  return 1;
}

void lf_task_rename(lua_State *L, lf_task *t, const char *name) {
  char *d = dup_string(L, name);
  if (t->owns_name) free(t->obj.name);
  t->obj.name = d;
  t->owns_name = 1;
}

/* core.task_set_name(t, name [, named]) */
static int task_set_name(lua_State *L) {
  lf_task *t = lf_check_task(L, 1);
  lf_task_rename(L, t, luaL_checkstring(L, 2));
  t->named = (uint8_t)(lua_isnone(L, 3) || lua_toboolean(L, 3));
  return 0;
}

static int task_fn(lua_State *L) {
  lf_check_task(L, 1);
  lua_getiuservalue(L, 1, LF_UV_SPEC);
  lua_rawgeti(L, -1, LF_SPEC_FN);
  return 1;
}

/* core.task_origin(t) -> the task t was copied from, or nil. */
static int task_origin(lua_State *L) {
  lf_check_task(L, 1);
  lua_getiuservalue(L, 1, LF_UV_ORIGIN);
  return 1;
}

void lf_task_set_const(lua_State *L, int task, lf_task *t, int pos, int value) {
  value = lua_absindex(L, value);
  if (lua_getiuservalue(L, task, LF_UV_CONSTS) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, pos, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, task, LF_UV_CONSTS);
  }
  lua_pushvalue(L, value);
  lua_rawseti(L, -2, pos);
  lua_pop(L, 1);
  if (pos > t->nconsts) t->nconsts = pos;
}

/* core.task_mark_parameter(t): prints as <Parameter: NAME>. */
static int task_mark_parameter(lua_State *L) {
  lf_check_task(L, 1)->has_fn = 2;
  return 0;
}

static int chandler_gc(lua_State *L) {
  lf_chandler *ch = luaL_checkudata(L, 1, LF_CHANDLER_MT);
  if (ch->free_ud) ch->free_ud(ch->ud);
  ch->free_ud = NULL;
  ch->ud = NULL;
  return 0;
}
void lf_open_task(lua_State *L) {
  static const luaL_Reg task_meta[] = {
      {"__gc", task_gc}, {"__tostring", task_tostring}, {NULL, NULL}};
  luaL_newmetatable(L, LF_TASK_MT);
  luaL_setfuncs(L, task_meta, 0);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lf_task_mt_key);
  lua_setfield(L, -2, "task_mt");
  luaL_newmetatable(L, LF_CHANDLER_MT);
  lua_pushcfunction(L, chandler_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"new_task", task_new},
                                 {"task_name", task_name},
                                 {"task_set_name", task_set_name},
                                 {"task_fn", task_fn},
                                 {"task_origin", task_origin},
                                 {"task_mark_parameter", task_mark_parameter},
                                 {NULL, NULL}};
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lf_task_mt_key);
  luaL_setfuncs(L, fns, 1);
}
