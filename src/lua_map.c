/* The Lua host's part of mapped tasks (see map.h): a mapped task's
 * arguments are read once, when it maps (they stay in the run's box table
 * until its children are done); each child takes element k of every mapped
 * argument and the others whole; the parent's final Mapped state holds the
 * list of its children's results (with n) and their states. Also
 * core.task_set_map, which the builder's t:map(...) uses. */
#include <stdlib.h>
#include <string.h>
#include "lua_graph.h"
#include "lua_host.h"
#include "map.h"

/* Where mapped task i's arguments wait in the run's box table (whose
 * positive keys are the boxes' slots). */
static lua_Integer args_key(int i) {
  return -(lua_Integer)i - 1;
}

/* Pushes mapped task i's arguments as its body would get them (constants,
 * upstream results, results inside tables) in a list with n. */
static void push_arguments(lf_lua_host *h, lf_run *r, int i) {
  lua_State *L = h->L;
  lf_task *t = r->flow->tasks[i];
  if (!lua_checkstack(L, 24)) luaL_error(L, "stack overflow"); /* room for 8 arguments */
  lua_newtable(L);
  int list = lua_gettop(L);
  int nargs = lf_lua_host_push_args(h, r, i);
  for (; nargs < t->nmap; nargs++) /* a mapped nil at the end still counts */
    lua_pushnil(L);
  for (int k = nargs; k >= 1; k--)
    lua_rawseti(L, list, k);
  lua_pushinteger(L, nargs);
  lua_setfield(L, list, "n");
}

/* The length of the list at idx: its integer field n when it has one (a
 * mapped task's result list, table.pack's), else #; -1 when it is no table. */
static lua_Integer list_length(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) return -1;
  lua_Integer n = -1;
  if (lua_getfield(L, idx, "n") == LUA_TNUMBER && lua_isinteger(L, -1))
    n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n >= 0 ? n : (lua_Integer)lua_rawlen(L, idx);
}

/* Replaces the list of lists at idx by their concatenation (a value that is
 * no list is one element; a nil hole, a child without a result, none).
 * Returns 0 when idx holds no table. */
static int flatten(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_Integer n = list_length(L, idx), out = 0;
  if (n < 0) return 0;
  lua_createtable(L, (int)n, 1);
  int flat = lua_gettop(L);
  for (lua_Integer j = 1; j <= n; j++) {
    lua_rawgeti(L, idx, j);
    lua_Integer m = list_length(L, -1);
    if (m >= 0) {
      for (lua_Integer k = 1; k <= m; k++) {
        lua_rawgeti(L, -1, k);
        lua_rawseti(L, flat, ++out);
      }
      lua_pop(L, 1);
    } else if (!lua_isnil(L, -1)) {
      lua_rawseti(L, flat, ++out);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushinteger(L, out);
  lua_setfield(L, flat, "n");
  lua_replace(L, idx);
  return 1;
}

/* The upstream task of mapped task i's argument position pos, or -1. */
static int upstream_at(const lf_run *r, int i, int pos) {
  for (int k = r->up.start[i]; k < r->up.start[i + 1]; k++)
    if (r->up.key[k] == pos) return r->up.task[k];
  return -1;
}

/* As Prefect 1: the shortest mapped list decides, among the arguments whose
 * upstream succeeded (a constant always has). */
lf_state *lf_lua_map_count(lf_host *base, lf_run *r, int i, int *n) {
  lf_lua_host *h = (lf_lua_host *)base;
  lua_State *L = h->L;
  lf_task *t = r->flow->tasks[i];
  int top = lua_gettop(L);
  push_arguments(h, r, i);
  int list = lua_gettop(L);
  int inputs = t->nmap > 0 || t->nconsts > 0 || r->up.start[i] < r->up.start[i + 1];
  int succeeded = 0, unmappable = 0;
  lua_Integer shortest = -1;
  for (int pos = 1; pos <= t->nmap; pos++) {
    if (t->arg_map[pos] == LF_MAP_WHOLE) continue;
    int u = upstream_at(r, i, pos);
    if (u >= 0 && !LF_IS(r->task[u].state, LF_SUCCESS)) continue;
    succeeded = 1;
    lua_rawgeti(L, list, pos);
    if (t->arg_map[pos] == LF_MAP_FLATTEN && flatten(L, -1)) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, list, pos);
    }
    lua_Integer len = list_length(L, -1);
    lua_pop(L, 1);
    if (len < 0)
      unmappable = 1;
    else if (shortest < 0 || len < shortest)
      shortest = len;
  }
  const char *why = NULL;
  if (inputs && !succeeded)
    why = "No upstream states can be mapped over.";
  else if (unmappable)
    why = "At least one upstream state has an unmappable result.";
  if (why) {
    lua_settop(L, top);
    lf_state *s = lf_state_static(LF_FAILED, why);
    if (!s) luaL_error(L, "not enough memory");
    return s;
  }
  if (shortest > 100000000) luaL_error(L, "too many children to map over");
  *n = shortest < 0 ? 0 : (int)shortest;
  lua_rawseti(L, h->boxes.table, args_key(i)); /* until its children are done */
  lua_settop(L, top);
  /* Mapped("Ready to proceed with mapping."), its n_map_states known */
  lf_state *s = lf_state_static(LF_MAPPED, "Ready to proceed with mapping.");
  if (!s) luaL_error(L, "not enough memory");
  lf_box_new_uv(L, s, 0, LF_BOX_EXTRA);
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, *n);
  lua_setfield(L, -2, "n_map_states");
  lua_setiuservalue(L, -2, LF_BOX_EXTRA);
  lf_lua_host_keep_box(h);
  return lf_state_ref(s);
}

int lf_lua_map_push_args(lf_lua_host *h, lf_run *r, int c) {
  lua_State *L = h->L;
  int p = lf_map_parent(r, c), index = lf_map_index(r, c);
  const lf_task *t = r->flow->tasks[p];
  lua_rawgeti(L, h->boxes.table, args_key(p));
  int list = lua_gettop(L);
  lua_getfield(L, list, "n");
  int nargs = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (!lua_checkstack(L, nargs + 8)) luaL_error(L, "too many task arguments");
  for (int pos = 1; pos <= nargs; pos++) {
    int type = lua_rawgeti(L, list, pos);
    if (pos <= t->nmap && t->arg_map[pos] != LF_MAP_WHOLE) {
      if (type == LUA_TTABLE)
        lua_rawgeti(L, -1, index);
      else
        lua_pushnil(L); /* an upstream that failed: its child's trigger decides */
      lua_remove(L, -2);
    }
  }
  lua_remove(L, list);
  return nargs;
}

lf_state *lf_lua_map_final(lf_host *base, lf_run *r, int i, int first, int n) {
  lf_lua_host *h = (lf_lua_host *)base;
  lua_State *L = h->L;
  int top = lua_gettop(L);
  lf_state *cur = r->task[i].state;
  if (!lua_checkstack(L, 8)) luaL_error(L, "stack overflow");
  lua_createtable(L, n, 1); /* the children's results, with n */
  int results = lua_gettop(L);
  lua_createtable(L, n, 0); /* their states */
  lua_createtable(L, n, 0); /* their run counts */
  for (int k = 0; k < n; k++) {
    lf_state *s = r->task[first + k].state;
    lf_boxes_push_result(L, &h->boxes, s);
    lua_rawseti(L, results, k + 1);
    lf_boxes_push(L, &h->boxes, s);
    lua_rawseti(L, results + 1, k + 1);
    lua_pushinteger(L, r->task[first + k].attempt);
    lua_rawseti(L, results + 2, k + 1);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, results + 2, "n_map_states");
  if (n > 0) { /* an empty map's result is {} */
    lua_pushinteger(L, n);
    lua_setfield(L, results, "n");
  }
  lf_state *s =
      lf_state_newl(LF_MAPPED, cur->message, cur->message ? strlen(cur->message) : 0);
  if (!s) luaL_error(L, "not enough memory");
  lf_box_new_uv(L, s, results, 3);
  lua_pushvalue(L, results + 1);
  lua_setiuservalue(L, -2, LF_BOX_MAP_STATES);
  lua_pushvalue(L, results + 2);
  lua_setiuservalue(L, -2, LF_BOX_EXTRA);
  lf_lua_host_keep_box(h);
  lua_pushnil(L);
  lua_rawseti(L, h->boxes.table, args_key(i)); /* its arguments are no longer needed */
  lua_settop(L, top);
  return lf_state_ref(s);
}

/* core.task_set_map(task, modes): the task (a copy a builder's t:map made)
 * is mapped; modes[pos] is how it takes argument position pos (LF_MAP_*). */
static int task_set_map(lua_State *L) {
  lf_task *t = lf_check_task(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 2);
  if (n > LF_MAX_ARGS) return luaL_error(L, "too many task arguments");
  uint8_t *modes = calloc((size_t)n + 1, 1);
  if (!modes) return luaL_error(L, "not enough memory");
  for (int pos = 1; pos <= n; pos++) {
    lua_rawgeti(L, 2, pos);
    lua_Integer m = lua_tointeger(L, -1);
    lua_pop(L, 1);
    modes[pos] = (uint8_t)(m >= LF_MAP_WHOLE && m <= LF_MAP_FLATTEN ? m : LF_MAP_WHOLE);
  }
  free(t->arg_map);
  t->arg_map = modes;
  t->nmap = n;
  t->mapped = 1;
  return 0;
}

/* core.task_named(task): named by its options or a call site already */
static int task_named(lua_State *L) {
  lua_pushboolean(L, lf_check_task(L, 1)->named);
  return 1;
}

/* core.task_is_mapped(task) */
static int task_is_mapped(lua_State *L) {
  lua_pushboolean(L, lf_check_task(L, 1)->mapped);
  return 1;
}

void lf_open_map(lua_State *L) {
  static const luaL_Reg fns[] = {{"task_set_map", task_set_map},
                                 {"task_is_mapped", task_is_mapped},
                                 {"task_named", task_named},
                                 {NULL, NULL}};
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lf_task_mt_key);
  luaL_setfuncs(L, fns, 1);
}
