/* The State userdata: boxes for C states, classes, constructors, predicates. */
#include <string.h>
#include "clock.h"
#include "lua_core.h"

static const char classes_key = 0; /* array: kind + 1 -> class table */
static const char meta_key = 0; /* the State metatable, found without hashing its name */

void lf_box_new(lua_State *L, lf_state *s, int result_idx) {
  lf_box_new_uv(L, s, result_idx, 1);
}

void lf_box_new_uv(lua_State *L, lf_state *s, int result_idx, int nuv) {
  result_idx = result_idx ? lua_absindex(L, result_idx) : 0;
  lf_box *b = lua_newuserdatauv(L, sizeof *b, nuv);
  b->s = s; /* takes over the caller's reference */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &meta_key);
  lua_setmetatable(L, -2);
  if (result_idx && !lua_isnil(L, result_idx)) {
    lua_pushvalue(L, result_idx);
    lua_setiuservalue(L, -2, 1);
    s->has_result = 1;
  }
}

lf_state *lf_test_state(lua_State *L, int idx) {
  lf_box *b = lua_touserdata(L, idx);
  if (!b || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &meta_key);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? b->s : NULL;
}

lf_state *lf_check_state(lua_State *L, int idx) {
  lf_box *b = luaL_checkudata(L, idx, LF_STATE_MT);
  if (!b->s) luaL_error(L, "attempt to use a released state");
  return b->s;
}

/* ---- a run's boxes: each state the run shows to Lua gets one box, found by
 * its slot in the run's table (no hashing), alive until the run ends ---- */

static uint32_t last_gen;
/* The generations of the runs in progress, innermost last: runs nest. A
 * state another live run has a slot for keeps it; this run finds such a
 * state's box by its address instead (a hash entry, the rare case). */
#define LF_MAX_NESTED 64
static uint32_t live[LF_MAX_NESTED];
static int nlive;

static int gen_is_live(uint32_t gen) {
  if (nlive > LF_MAX_NESTED) return 1; /* deeper than we track: assume so */
  for (int i = 0; i < nlive; i++)
    if (live[i] == gen) return 1;
  return 0;
}

void lf_boxes_init(lua_State *L, lf_boxes *b) {
  lua_newtable(L);
  b->table = lua_gettop(L);
  b->gen = ++last_gen ? last_gen : ++last_gen; /* 0 means "no slot" */
  b->n = 0;
  if (nlive < LF_MAX_NESTED) live[nlive] = b->gen;
  nlive++;
}

void lf_boxes_done(lf_boxes *b) {
  if (b->gen && nlive > 0) nlive--;
  b->gen = 0;
}

void lf_boxes_keep(lua_State *L, lf_boxes *b) {
  lf_box *box = lua_touserdata(L, -1);
  lf_state *s = box->s;
  if (s->gen == b->gen) {
    lua_pop(L, 1);
  } else if (s->gen != 0 && gen_is_live(s->gen)) {
    lua_rawsetp(L, b->table, s);
  } else {
    s->gen = b->gen;
    s->slot = ++b->n;
    lua_rawseti(L, b->table, s->slot);
  }
}

void lf_boxes_push(lua_State *L, lf_boxes *b, lf_state *s) {
  if (s->gen == b->gen) {
    lua_rawgeti(L, b->table, s->slot);
    return;
  }
  if (s->gen != 0 && lua_rawgetp(L, b->table, s) != LUA_TNIL) return;
  if (s->gen != 0) lua_pop(L, 1);
  lf_box_new(L, lf_state_ref(s), 0);
  lua_pushvalue(L, -1);
  lf_boxes_keep(L, b);
}

void lf_boxes_push_result(lua_State *L, lf_boxes *b, lf_state *s) {
  if (!s->has_result) {
    lua_pushnil(L);
    return;
  }
  lf_boxes_push(L, b, s);
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);
}

static int state_gc(lua_State *L) {
  lf_box *b = luaL_checkudata(L, 1, LF_STATE_MT);
  if (b->s) {
    lf_state_release(b->s);
    b->s = NULL;
  }
  return 0;
}

/* Name("message"), or Name() when there is no message. */
static void push_printed(lua_State *L, lf_state *s) {
  luaL_Buffer buf;
  luaL_buffinit(L, &buf);
  luaL_addstring(&buf, lf_kind_name(s->kind));
  if (s->message && s->message[0]) {
    luaL_addstring(&buf, "(\"");
    luaL_addstring(&buf, s->message);
    luaL_addstring(&buf, "\")");
  } else {
    luaL_addstring(&buf, "()");
  }
  luaL_pushresult(&buf);
}

static int state_tostring(lua_State *L) {
  push_printed(L, lf_check_state(L, 1));
  return 1;
}

static int state_concat(lua_State *L) {
  for (int i = 1; i <= 2; i++) {
    lf_state *s = lf_test_state(L, i);
    if (s)
      push_printed(L, s);
    else
      luaL_tolstring(L, i, NULL);
    lua_replace(L, i);
  }
  lua_concat(L, 2);
  return 1;
}

/* Prefect's equality: same class, same result, same scheduling fields. The
 * results compare with Lua's ==, so a result that is itself a State compares
 * by this same rule (and the message is left out at every level). */
static int state_eq(lua_State *L) {
  lf_state *a = lf_test_state(L, 1), *b = lf_test_state(L, 2);
  int eq = a && b && a->kind == b->kind && a->run_count == b->run_count &&
           a->loop_count == b->loop_count && a->has_start == b->has_start &&
           (!a->has_start || a->start_time == b->start_time);
  if (eq) {
    lua_getiuservalue(L, 1, 1);
    lua_getiuservalue(L, 2, 1);
    eq = lua_compare(L, -1, -2, LUA_OPEQ);
  }
  lua_pushboolean(L, eq);
  return 1;
}

static int state_index(lua_State *L) {
  lf_state *s = lf_check_state(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "message") == 0) {
    if (s->message)
      lua_pushstring(L, s->message);
    else
      lua_pushnil(L);
  } else if (strcmp(k, "result") == 0) {
    lua_getiuservalue(L, 1, 1);
  } else if (strcmp(k, "name") == 0) {
    lua_pushstring(L, lf_kind_name(s->kind));
  } else if (strcmp(k, "start_time") == 0) {
    if (s->has_start)
      lf_push_time(L, s->start_time);
    else
      lua_pushnil(L);
  } else if (strcmp(k, "run_count") == 0) {
    if (s->kind == LF_RETRYING)
      lua_pushinteger(L, s->run_count);
    else
      lua_pushnil(L);
  } else if (strcmp(k, "loop_count") == 0) {
    if (s->kind == LF_LOOPED)
      lua_pushinteger(L, s->loop_count);
    else
      lua_pushnil(L);
  } else if (strcmp(k, "color") == 0) {
    lua_pushstring(L, lf_kind_color[s->kind]);
  } else if (s->kind == LF_MAPPED && strcmp(k, "map_states") == 0) {
    if (lua_getiuservalue(L, 1, LF_BOX_MAP_STATES) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L); /* Prefect's default: [] */
    }
  } else if (s->kind == LF_CACHED && strncmp(k, "cached_", 7) == 0) {
    /* cached_result_expiration, cached_inputs, cached_parameters */
    if (lua_getiuservalue(L, 1, LF_BOX_EXTRA) != LUA_TTABLE) {
      lua_pushnil(L);
    } else if (strcmp(k, "cached_result_expiration") == 0) {
      lua_getfield(L, -1, k);
      if (lua_isnumber(L, -1)) lf_push_time(L, lua_tonumber(L, -1));
    } else if (lua_getfield(L, -1, k) == LUA_TNIL) {
      lf_cached_decode(L, lua_absindex(L, -2), k); /* a cache entry's, read when asked */
    }
  } else if (s->kind == LF_MAPPED && strcmp(k, "n_map_states") == 0) {
    /* as Prefect's: the explicit value when there is one, else #map_states */
    lua_Integer n = 0;
    if (lua_getiuservalue(L, 1, LF_BOX_EXTRA) == LUA_TTABLE &&
        lua_getfield(L, -1, "n_map_states") == LUA_TNUMBER)
      n = lua_tointeger(L, -1);
    if (n <= 0 && lua_getiuservalue(L, 1, LF_BOX_MAP_STATES) == LUA_TTABLE)
      n = (lua_Integer)lua_rawlen(L, -1);
    lua_pushinteger(L, n);
  } else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1)); /* methods */
  }
  return 1;
}

static int state_predicate(lua_State *L) {
  lf_state *s = lf_check_state(L, 1);
  uint32_t mask = (uint32_t)lua_tointeger(L, lua_upvalueindex(1));
  lua_pushboolean(L, (lf_kind_mask[s->kind] & mask) != 0);
  return 1;
}

/* A class table, a class name, or a State (its class). */
static int check_class(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *name = lua_tolstring(L, idx, &len);
    int k = lf_kind_from_name(name, len);
    if (k < 0 || k == LF_META) luaL_error(L, "unknown state class '%s'", name);
    return k;
  }
  if (lua_type(L, idx) == LUA_TTABLE && lua_getfield(L, idx, "_kind") == LUA_TNUMBER) {
    lua_Integer k = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (k >= 0 && k < LF_NKINDS && k != LF_META) return (int)k;
  }
  return luaL_typeerror(L, idx, "state class");
}

static int state_is(lua_State *L) {
  lf_state *s = lf_check_state(L, 1);
  lua_pushboolean(L, LF_IS(s, check_class(L, 2)));
  return 1;
}

static double opt_time_field(lua_State *L, int t, const char *key, int *has) {
  double v = 0;
  *has = 0;
  if (lua_getfield(L, t, key) != LUA_TNIL) {
    if (!lf_to_time(L, -1, &v))
      lf_raise(L, "%s must be a time value or epoch seconds", key);
    *has = 1;
  }
  lua_pop(L, 1);
  return v;
}

static const char *const cached_fields[] = {"cached_result_expiration", "cached_inputs",
                                            "cached_parameters", NULL};

static int check_fields(lua_State *L, int t, int kind) {
  static const char *const allowed[] = {"message",   "result",     "start_time",
                                        "run_count", "loop_count", NULL};
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      for (int i = 0; allowed[i]; i++)
        if (strcmp(lua_tostring(L, -1), allowed[i]) == 0) ok = 1;
      for (int i = 0; kind == LF_CACHED && cached_fields[i]; i++)
        if (strcmp(lua_tostring(L, -1), cached_fields[i]) == 0) ok = 1;
      if (kind == LF_MAPPED && (strcmp(lua_tostring(L, -1), "map_states") == 0 ||
                                strcmp(lua_tostring(L, -1), "n_map_states") == 0))
        ok = 1;
    }
    if (!ok)
      return lf_raise(L, "unknown field '%s' for %s", luaL_tolstring(L, -1, NULL),
                      lf_kind_name(kind));
  }
  return 0;
}

/* Cls("msg"), Cls{message=, result=, start_time=, run_count=, loop_count=},
 * Cls("msg", {result=...}). */
static int class_call(lua_State *L) {
  int kind = (int)lua_tointeger(L, lua_upvalueindex(1));
  int opts = 0;
  size_t len = 0;
  const char *msg = NULL;
  if (lua_type(L, 2) == LUA_TTABLE) {
    opts = 2;
  } else if (!lua_isnoneornil(L, 2)) {
    msg = luaL_checklstring(L, 2, &len);
    if (lua_type(L, 3) == LUA_TTABLE) opts = 3;
  }
  if (opts) {
    check_fields(L, opts, kind);
    if (lua_getfield(L, opts, "message") != LUA_TNIL)
      msg = luaL_checklstring(L, -1, &len);
    lua_replace(L, 1); /* keep the message string alive in slot 1 */
  }
  /* every option is read and checked before the state exists: a bad one
   * raises with nothing to free */
  int has_start = 0, result_idx = 0;
  double start = 0;
  lua_Integer run_count = -1, loop_count = -1;
  if (opts) {
    start = opt_time_field(L, opts, "start_time", &has_start);
    if (has_start && !lf_kind_is_scheduled_family((lf_kind)kind))
      return lf_raise(L, "%s has no start_time", lf_kind_name(kind));
    if (lua_getfield(L, opts, "run_count") != LUA_TNIL) {
      if (!lua_isinteger(L, -1)) return lf_raise(L, "run_count must be an integer");
      run_count = lua_tointeger(L, -1);
    }
    if (lua_getfield(L, opts, "loop_count") != LUA_TNIL) {
      if (!lua_isinteger(L, -1)) return lf_raise(L, "loop_count must be an integer");
      loop_count = lua_tointeger(L, -1);
    }
    lua_pop(L, 2);
    lua_getfield(L, opts, "result");
    result_idx = lua_gettop(L);
  }
  int map_states = 0, n_map_states = 0;
  if (kind == LF_MAPPED && opts && lua_getfield(L, opts, "n_map_states") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
      return lf_raise(L, "n_map_states must be an integer >= 0");
    n_map_states = lua_gettop(L);
  }
  if (kind == LF_MAPPED && opts && lua_getfield(L, opts, "map_states") != LUA_TNIL) {
    map_states = lua_gettop(L); /* a list of States */
    if (!lua_istable(L, map_states))
      return lf_raise(L, "map_states must be a list of States");
    for (lua_Integer k = 1, n = (lua_Integer)lua_rawlen(L, map_states); k <= n; k++) {
      lua_rawgeti(L, map_states, k);
      if (!lf_test_state(L, -1))
        return lf_raise(L, "map_states[%d] must be a State", (int)k);
      lua_pop(L, 1);
    }
  }
  lf_state *s = lf_state_newl((lf_kind)kind, msg, len);
  if (!s) return luaL_error(L, "not enough memory");
  if (has_start || (lf_kind_is_scheduled_family((lf_kind)kind) && kind != LF_PAUSED)) {
    s->has_start = 1;
    s->start_time = has_start ? start : lf_now();
  }
  s->run_count = run_count >= 0        ? (int32_t)run_count
                 : kind == LF_RETRYING ? lf_current_run_count(L)
                                       : 1;
  s->loop_count = loop_count >= 0     ? (int32_t)loop_count
                  : kind == LF_LOOPED ? lf_current_loop_count(L)
                                      : 1;
  if (kind == LF_CACHED && opts) { /* Cached{cached_result_expiration =, ...} */
    lf_box_new_uv(L, s, result_idx, LF_BOX_EXTRA);
    lua_newtable(L);
    for (int i = 0; cached_fields[i]; i++) {
      lua_getfield(L, opts, cached_fields[i]);
      double t;
      if (i == 0 && !lua_isnil(L, -1)) {
        if (!lf_to_time(L, -1, &t))
          return lf_raise(
              L, "cached_result_expiration must be a time value or epoch seconds");
        lua_pushnumber(L, t);
        lua_replace(L, -2);
      }
      lua_setfield(L, -2, cached_fields[i]);
    }
    lua_setiuservalue(L, -2, LF_BOX_EXTRA);
    return 1;
  }
  if (map_states || n_map_states) { /* Mapped{map_states = {...}, n_map_states = n} */
    lf_box_new_uv(L, s, result_idx, LF_BOX_EXTRA);
    if (map_states) {
      lua_pushvalue(L, map_states);
      lua_setiuservalue(L, -2, LF_BOX_MAP_STATES);
    }
    if (n_map_states) {
      lua_createtable(L, 0, 1);
      lua_pushvalue(L, n_map_states);
      lua_setfield(L, -2, "n_map_states");
      lua_setiuservalue(L, -2, LF_BOX_EXTRA);
    }
    return 1;
  }
  lf_box_new(L, s, result_idx);
  return 1;
}

static int class_tostring(lua_State *L) {
  lua_getfield(L, 1, "name");
  lua_pushfstring(L, "<class '%s'>", lua_tostring(L, -1));
  return 1;
}

/* core.state_fields(state) -> {name = value} of the signal's scalar fields. */
static int state_fields(lua_State *L) {
  lf_state *s = lf_check_state(L, 1);
  lua_createtable(L, 0, s->nfields);
  for (int i = 0; i < s->nfields; i++) {
    const lf_value *v = &s->fields[i].v;
    switch (v->type) {
    case LF_FIELD_BOOL:
      lua_pushboolean(L, v->b);
      break;
    case LF_FIELD_INT:
      lua_pushinteger(L, (lua_Integer)v->i);
      break;
    case LF_FIELD_FLOAT:
      lua_pushnumber(L, v->f);
      break;
    case LF_FIELD_STRING:
      lua_pushlstring(L, v->s, v->len);
      break;
    default:
      continue;
    }
    lua_setfield(L, -2, s->fields[i].name);
  }
  return 1;
}

/* The methods table is returned so the Lua side can add to it (task_states). */
int lf_open_states(lua_State *L) {

  static const struct {
    const char *name;
    uint32_t mask;
  } predicates[] = {
      {"is_pending", 1u << LF_PENDING},
      {"is_scheduled", (1u << LF_SCHEDULED) | (1u << LF_QUEUED)},
      {"is_retrying", 1u << LF_RETRYING},
      {"is_paused", 1u << LF_PAUSED},
      {"is_resume", 1u << LF_RESUME},
      {"is_submitted", 1u << LF_SUBMITTED},
      {"is_queued", 1u << LF_QUEUED},
      {"is_meta_state", 1u << LF_META},
      {"is_running", 1u << LF_RUNNING},
      {"is_finished", 1u << LF_FINISHED},
      {"is_successful", 1u << LF_SUCCESS},
      {"is_failed", 1u << LF_FAILED},
      {"is_skipped", 1u << LF_SKIPPED},
      {"is_cached", 1u << LF_CACHED},
      {"is_mapped", 1u << LF_MAPPED},
      {"is_looped", 1u << LF_LOOPED},
      {"is_cancelled", 1u << LF_CANCELLED},
  };
  lua_newtable(L); /* methods */
  int methods = lua_gettop(L);
  for (size_t i = 0; i < sizeof predicates / sizeof predicates[0]; i++) {
    lua_pushinteger(L, predicates[i].mask);
    lua_pushcclosure(L, state_predicate, 1);
    lua_setfield(L, methods, predicates[i].name);
  }
  lua_pushcfunction(L, state_is);
  lua_setfield(L, methods, "is");

  luaL_newmetatable(L, LF_STATE_MT);
  static const luaL_Reg meta[] = {{"__tostring", state_tostring},
                                  {"__concat", state_concat},
                                  {"__eq", state_eq},
                                  {"__gc", state_gc},
                                  {"__close", state_gc},
                                  {NULL, NULL}};
  luaL_setfuncs(L, meta, 0);
  lua_pushvalue(L, methods);
  lua_pushcclosure(L, state_index, 1);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &meta_key);

  /* luaflow.states: one callable class table per public class. */
  lua_newtable(L);
  int states = lua_gettop(L);
  lua_newtable(L);
  int classes = lua_gettop(L);
  for (int k = 0; k < LF_NKINDS; k++) {
    if (k == LF_META) continue;
    lua_newtable(L);
    lua_pushstring(L, lf_kind_name(k));
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, k);
    lua_setfield(L, -2, "_kind");
    lua_pushstring(L, lf_kind_color[k]);
    lua_setfield(L, -2, "color");
    lua_newtable(L);
    lua_pushinteger(L, k);
    lua_pushcclosure(L, class_call, 1);
    lua_setfield(L, -2, "__call");
    lua_pushcfunction(L, class_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawseti(L, classes, k + 1);
    lua_setfield(L, states, lf_kind_name(k));
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &classes_key);
  lua_pushvalue(L, methods);
  lua_setfield(L, states, "_methods");
  lua_pushcfunction(L, state_fields);
  lua_setfield(L, states, "_fields");
  lua_remove(L, methods);
  return 1;
}
