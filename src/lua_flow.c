/* The Flow userdata and the flow builder: tasks added once, edges with the
 * cycle check, copies of tasks called in a builder, references, the order. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "lua_graph.h"

lf_flow *lf_check_flow(lua_State *L, int idx) {
  lf_flow *f = lf_test_ud(L, idx, LF_UP_FLOW_META, &lf_flow_mt_key);
  return f ? f : luaL_checkudata(L, idx, LF_FLOW_MT);
}

static int is_identifier(const char *s) {
  if (!(isalpha((unsigned char)*s) || *s == '_')) return 0;
  for (s++; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
  return 1;
}

static uint32_t last_flow_id;

static int flow_new(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lf_flow *f = lua_newuserdatauv(L, sizeof *f, 2); /* {tasks=, index=, ...}, tasks */
  memset(f, 0, sizeof *f);
  f->obj.is_flow = 1;
  f->id = ++last_flow_id;
  lua_pushvalue(L, lua_upvalueindex(LF_UP_FLOW_META));
  lua_setmetatable(L, -2);
  int ud = lua_gettop(L);
  lf_set_name(L, &f->obj, name);
  lua_newtable(L);
  int uv = lua_gettop(L);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, ud, 2); /* the tasks again, reached without a name */
  lua_setfield(L, uv, "tasks");
  lua_newtable(L);
  lua_setfield(L, uv, "index"); /* tasks first added to another flow -> index */
  lf_parse_handlers(L, &f->obj, uv, 2, 3);
  lua_setiuservalue(L, ud, 1);
  lua_settop(L, ud);
  return 1;
}

static int flow_gc(lua_State *L) {
  lf_flow *f = lf_check_flow(L, 1);
  free(f->obj.name);
  free(f->obj.handlers);
  free(f->tasks);
  free(f->edges);
  free(f->refs);
  lf_flow_free_graph(f);
  memset(f, 0, sizeof *f);
  return 0;
}

static int flow_tostring(lua_State *L) {
  lua_pushfstring(L, "<Flow: name=%s>", lf_check_flow(L, 1)->obj.name);
  return 1;
}

static int flow_name(lua_State *L) {
  lua_pushstring(L, lf_check_flow(L, 1)->obj.name);
  return 1;
}

static int flow_tasks(lua_State *L) {
  lf_check_flow(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "tasks");
  return 1;
}

/* Index (1-based) of the task at `task` in the flow at `flow`, or 0. A task
 * knows its index in the first flow it joined; others are in uv.index. */
static int task_index(lua_State *L, int flow, int task) {
  lf_flow *f = lua_touserdata(L, flow);
  lf_task *t = lua_touserdata(L, task);
  if (t->flow_id == f->id) return t->flow_index + 1;
  if (t->flow_id == 0) return 0;
  task = lua_absindex(L, task);
  lua_getiuservalue(L, flow, 1);
  lua_getfield(L, -1, "index");
  lua_pushvalue(L, task);
  lua_rawget(L, -2);
  int i = (int)lua_tointeger(L, -1);
  lua_pop(L, 3);
  return i;
}

int lf_flow_task_index(lua_State *L, int flow, int task) {
  return task_index(L, lua_absindex(L, flow), lua_absindex(L, task));
}

/* Notes that the flow at `flow` holds a copy of t->origin at index i. */
static void note_copy(lua_State *L, int flow, lf_task *t, int i) {
  lf_flow *f = lua_touserdata(L, flow);
  lf_task *o = t->origin;
  if (o->copies_flow == 0) o->copies_flow = f->id;
  if (o->copies_flow == f->id) {
    o->copy_index = o->copy_index ? -1 : i;
    return;
  }
  lua_getiuservalue(L, flow, 1);
  if (lua_getfield(L, -1, "copies") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "copies");
  }
  lua_pushlightuserdata(L, o);
  int seen = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 1);
  lua_pushlightuserdata(L, o);
  lua_pushinteger(L, seen ? -1 : i);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

/* The index (1-based) of the one copy of the bare task at `bare` in the flow
 * at `flow`: 0 when it has none, -1 when several. */
static int copy_index(lua_State *L, int flow, int bare) {
  lf_flow *f = lua_touserdata(L, flow);
  lf_task *o = lua_touserdata(L, bare);
  int i = 0;
  if (o->copies_flow == f->id) {
    i = o->copy_index;
  } else if (o->copies_flow != 0) {
    lua_getiuservalue(L, flow, 1);
    if (lua_getfield(L, -1, "copies") == LUA_TTABLE) {
      lua_rawgetp(L, -1, o);
      i = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 2);
  }
  return i;
}

int lf_flow_copy_index(lua_State *L, int flow, int bare) {
  flow = lua_absindex(L, flow), bare = lua_absindex(L, bare);
  int i = copy_index(L, flow, bare);
  if (i < 0)
    return lf_raise(L,
                    "%s has several copies in the flow; use the reference its call "
                    "returned",
                    luaL_tolstring(L, bare, NULL));
  return i;
}

/* Pushes the task of the flow at `flow` that the value at x stands for: a
 * reference's task, a task of the flow, or the one copy of a bare task
 * (several: an error naming it). With `or_bare`, a bare task the flow holds
 * no copy of stands for itself. Returns 0, pushing nothing, when none. */
static int push_task_of(lua_State *L, int flow, int x, int or_bare) {
  if (lua_type(L, x) == LUA_TTABLE) {
    lua_pushliteral(L, "_task");
    lua_rawget(L, x);
    if (lf_test_task(L, -1)) return 1;
    lua_pop(L, 1);
    return 0;
  }
  if (!lf_test_task(L, x)) return 0;
  if (!task_index(L, flow, x)) {
    int i = lf_flow_copy_index(L, flow, x);
    if (i > 0) {
      lua_getiuservalue(L, flow, 2);
      lua_rawgeti(L, -1, i);
      lua_remove(L, -2);
      return 1;
    }
    if (!or_bare) return 0;
  }
  lua_pushvalue(L, x);
  return 1;
}

/* core.flow_resolve(f, x) -> the task of f that x stands for: a reference's
 * task, a task of f, or the one copy of a bare task; nil when none (a bare
 * task with several copies is an error naming it). */
static int flow_resolve(lua_State *L) {
  lf_check_flow(L, 1);
  lua_settop(L, 2);
  return push_task_of(L, 1, 2, 0);
}

/* core.flow_copy(f, bare) -> the one copy of the bare task in f; nil when
 * it has none; false when it has several. */
static int flow_copy(lua_State *L) {
  lf_check_flow(L, 1);
  lf_check_task(L, 2);
  int i = copy_index(L, 1, 2);
  if (i < 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (i == 0) return 0;
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "tasks");
  lua_rawgeti(L, -1, i);
  return 1;
}

static int flow_index(lua_State *L) {
  lf_check_flow(L, 1);
  if (!lf_test_task(L, 2)) return 0;
  int i = task_index(L, 1, 2);
  if (!i) return 0;
  lua_pushinteger(L, i);
  return 1;
}

static void *grow(lua_State *L, void *p, int *cap, int need, size_t size) {
  if (need <= *cap) return p;
  int ncap = *cap ? *cap * 2 : 8;
  while (ncap < need)
    ncap *= 2;
  void *np = realloc(p, (size_t)ncap * size);
  if (!np) luaL_error(L, "not enough memory");
  *cap = ncap;
  return np;
}

/* A flow holds one Parameter of each name (uv.parameters: name -> task). */
static void claim_parameter_name(lua_State *L, int flow, int task, lf_task *t) {
  lua_getiuservalue(L, flow, 1);
  if (lua_getfield(L, -1, "parameters") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "parameters");
  }
  if (lua_getfield(L, -1, t->obj.name) != LUA_TNIL)
    lf_raise(
        L,
        "%s already has a Parameter named \"%s\" (Parameter names are unique in a flow)",
        luaL_tolstring(L, flow, NULL), t->obj.name);
  lua_pushvalue(L, task);
  lua_setfield(L, -3, t->obj.name);
  lua_pop(L, 3);
}

/* Adds the task at `task` to the flow at `flow` once; returns its 1-based index. */
static int add_task(lua_State *L, int flow, int task) {
  lf_flow *f = lua_touserdata(L, flow);
  lf_task *t = lua_touserdata(L, task);
  int i = task_index(L, flow, task);
  if (i) return i;
  task = lua_absindex(L, task);
  if (LF_IS_PARAMETER(t)) claim_parameter_name(L, flow, task, t);
  f->tasks = grow(L, f->tasks, &f->cap_tasks, f->ntasks + 1, sizeof *f->tasks);
  f->nodes = grow(L, f->nodes, &f->cap_nodes, f->ntasks + 1, sizeof *f->nodes);
  f->tasks[f->ntasks++] = t;
  lf_flow_node_added(f);
  i = f->ntasks;
  if (t->origin) note_copy(L, flow, t, i);
  lua_getiuservalue(L, flow, 2);
  lua_pushvalue(L, task);
  lua_rawseti(L, -2, i);
  lua_pop(L, 1);
  if (t->flow_id == 0) {
    t->flow_id = f->id;
    t->flow_index = i - 1;
  } else {
    lua_getiuservalue(L, flow, 1);
    lua_getfield(L, -1, "index");
    lua_pushvalue(L, task);
    lua_pushinteger(L, i);
    lua_rawset(L, -3);
    lua_pop(L, 2);
  }
  return i;
}

/* core.flow_add_task(f, t) -> its 1-based index (the same task is added once). */
static int flow_add_task(lua_State *L) {
  lf_check_flow(L, 1);
  lf_check_task(L, 2);
  lua_pushinteger(L, add_task(L, 1, 2));
  return 1;
}

/* core.flow_add(f, x) -> the task x stands for (a task, a reference, or the
 * one copy of a bare task), added to the flow once; nothing when f is not a
 * flow or x no task (the Lua side names the mistake). */
static int flow_add(lua_State *L) {
  lua_settop(L, 2);
  if (!lf_test_ud(L, 1, LF_UP_FLOW_META, &lf_flow_mt_key) || !push_task_of(L, 1, 2, 1))
    return 0;
  add_task(L, 1, 3);
  return 1;
}

/* Adds an edge between 1-based indices; returns 1 when the flow now has a
 * cycle (this edge closed it, or an earlier one did), else 0. */
static int add_edge(lua_State *L, lf_flow *f, int up, int down, int key) {
  f->edges = grow(L, f->edges, &f->cap_edges, f->nedges + 1, sizeof *f->edges);
  lf_edge e = {up - 1, down - 1, key, -1, -1};
  f->edges[f->nedges++] = e;
  int rc = lf_flow_edge_added(f);
  if (rc < 0) {
    f->nedges--;
    luaL_error(L, "not enough memory");
  }
  return rc;
}

/* Pushes the flow's cycle as a list of 1-based task indices. */
static void push_cycle(lua_State *L, const lf_flow *f) {
  lua_createtable(L, f->ncycle, 0);
  for (int k = 0; k < f->ncycle; k++) {
    lua_pushinteger(L, f->cycle[k] + 1);
    lua_rawseti(L, -2, k + 1);
  }
}

static int parameter_is_root(lua_State *L, int param) {
  return lf_raise(L,
                  "%s: Parameters must be root tasks and can not have upstream "
                  "dependencies.",
                  luaL_tolstring(L, param, NULL));
}

/* core.flow_add_edge(f, up, down, key): both tasks must be in f already.
 * Returns the tasks on the flow's cycle (1-based indices) when it has one. */
static int flow_add_edge(lua_State *L) {
  lf_flow *f = lf_check_flow(L, 1);
  lf_check_task(L, 2);
  if (LF_IS_PARAMETER(lf_check_task(L, 3))) return parameter_is_root(L, 3);
  lua_Integer key = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, key >= 0 && key <= LF_MAX_ARGS, 4, "argument position out of range");
  int up = task_index(L, 1, 2), down = task_index(L, 1, 3);
  if (!up || !down) return luaL_error(L, "task is not in the flow");
  if (!add_edge(L, f, up, down, (int)key)) return 0;
  push_cycle(L, f);
  return 1;
}

/* core.flow_link(f, up, down [, key]): the edge up -> down between what up
 * and down stand for (tasks, references, copies of bare tasks), added to f
 * with them; key is an argument position. Returns the tasks on the flow's
 * cycle (1-based indices) when it has one; false when f is not a flow or up
 * or down no task (the Lua side names the mistake). */
static int flow_link(lua_State *L) {
  lua_settop(L, 4);
  lf_flow *f = lf_test_ud(L, 1, LF_UP_FLOW_META, &lf_flow_mt_key);
  lua_Integer key = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, key >= 0 && key <= LF_MAX_ARGS, 4, "argument position out of range");
  if (!f || !push_task_of(L, 1, 2, 1) || !push_task_of(L, 1, 3, 1)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int up = add_task(L, 1, 5), down = add_task(L, 1, 6);
  if (LF_IS_PARAMETER((lf_task *)lua_touserdata(L, 6))) return parameter_is_root(L, 6);
  if (!add_edge(L, f, up, down, (int)key)) return 0;
  push_cycle(L, f);
  return 1;
}

/* core.flow_cycle(f) -> the tasks on the flow's cycle (1-based), or nil. */
static int flow_cycle(lua_State *L) {
  lf_flow *f = lf_check_flow(L, 1);
  if (!f->ncycle) return 0;
  push_cycle(L, f);
  return 1;
}

/* The upvalues of the builder's closures, task_call and ref_set_upstream:
 * 1 the stack of flows being built, 2 the reference metatable, 3 resolve(flow,
 * task) for bare tasks (ref_set_upstream: its general case), 4
 * luaflow.table_args.scan (ref_set_upstream: unused), 5 the Task metatable,
 * 6 and 7 the strings "_task" and "_flow" (no lookup of a name on every call). */
enum {
  UP_BUILDING = 1,
  UP_REF_MT,
  UP_RESOLVE,
  UP_SCAN,
  UP_TASK_MT,
  UP_TASK_KEY,
  UP_FLOW_KEY
};

/* Pushes upvalues UP_TASK_MT to UP_FLOW_KEY. */
static void push_shared_upvalues(lua_State *L) {
  luaL_getmetatable(L, LF_TASK_MT);
  lua_pushliteral(L, "_task");
  lua_pushliteral(L, "_flow");
}

/* Is the value at idx a Task? (its metatable against the upvalue's) */
static int is_task_here(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  int same = lua_rawequal(L, -1, lua_upvalueindex(UP_TASK_MT));
  lua_pop(L, 1);
  return same;
}

/* A reference to the task at `task` of the flow at `flow`. */
static int push_ref(lua_State *L, int task, int flow) {
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, lua_upvalueindex(UP_TASK_KEY));
  lua_pushvalue(L, task);
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(UP_FLOW_KEY));
  lua_pushvalue(L, flow);
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(UP_REF_MT));
  lua_setmetatable(L, -2);
  return 1;
}

/* Whether the running task call was written o:m(...). */
static int is_method_call(lua_State *L) {
  lua_Debug ar;
  return lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.namewhat &&
         strcmp(ar.namewhat, "method") == 0;
}

/* A table argument at `arg` (position pos of the copy at ci): when it holds
 * references or tasks, its template becomes the constant and each upstream
 * task an edge (key -pos: "inside argument pos"); returns 0 when it holds
 * none (it is then a plain constant). */
static int table_arg(lua_State *L, int flow, int ci, lf_task *copy, int arg, int pos) {
  lf_flow *f = lua_touserdata(L, flow);
  lua_pushvalue(
      L, lua_upvalueindex(UP_SCAN)); /* scan(t, flow, ref_mt, resolve, self, copy) */
  lua_pushvalue(L, arg);
  lua_pushvalue(L, flow);
  lua_pushvalue(L, lua_upvalueindex(UP_REF_MT));
  lua_pushvalue(L, lua_upvalueindex(UP_RESOLVE));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, ci);
  lua_call(L, 6, 2);
  if (lua_isnil(L, -2)) {
    lua_pop(L, 2);
    return 0;
  }
  lf_task_set_const(L, ci, copy, pos, -2);
  copy->has_tables = 1;
  int down = task_index(L, flow, ci);
  for (lua_Integer k = 1, n = luaL_len(L, -1); k <= n; k++) {
    lua_rawgeti(L, -1, k);
    add_edge(L, f, add_task(L, flow, -1), down, -pos);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return 1;
}

/* t(args...) inside a builder (the Task __call): adds a copy of t to the
 * flow being built, a data edge for each reference or task among args (or
 * inside a table among args) and a constant for each other value; returns
 * the copy's reference. Upvalues: see UP_BUILDING. */
static int task_call(lua_State *L) {
  lf_task *t = is_task_here(L, 1) ? lua_touserdata(L, 1) : lf_check_task(L, 1);
  int nargs = lua_gettop(L) - 1;
  lua_Integer depth = luaL_len(L, lua_upvalueindex(UP_BUILDING));
  if (depth == 0) {
    return lf_raise(L,
                    "cannot call task <Task: %s> outside a flow builder: call it inside "
                    "Flow(name, function(flow) ... end), or use t:run(...) to run its "
                    "function directly",
                    t->obj.name);
  }
  if (!lua_checkstack(L, 8)) return luaL_error(L, "stack overflow");
  lua_rawgeti(L, lua_upvalueindex(UP_BUILDING), depth);
  int flow = lua_gettop(L);
  lf_flow *f = lua_touserdata(L, flow);
  if (LF_IS_PARAMETER(t)) { /* as Prefect: the Parameter itself joins the flow, once */
    if (nargs > 0) return parameter_is_root(L, 1);
    add_task(L, flow, 1);
    return push_ref(L, 1, flow);
  }
  if (!t->named) { /* named after the call site: mission_critical_task(1, 1) */
    lua_Debug ar;
    const char *name = "task";
    /* a method call (o:m()) does not name a task */
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name &&
        strcmp(ar.namewhat, "method") != 0 && is_identifier(ar.name))
      name = ar.name;
    lf_task_rename(L, t, name);
    t->named = 1;
  }
  lf_task *copy = lf_task_copy(L, 1, lua_upvalueindex(UP_TASK_MT));
  int ci = lua_gettop(L);
  int down = add_task(L, flow, ci);
  for (int i = 1; i <= nargs; i++) {
    int arg = i + 1, up = 0;
    if (lua_type(L, arg) == LUA_TTABLE) {
      int is_ref = 0;
      if (lua_getmetatable(L, arg)) {
        is_ref = lua_rawequal(L, -1, lua_upvalueindex(UP_REF_MT));
        lua_pop(L, 1);
      }
      if (is_ref) {
        lua_pushvalue(L, lua_upvalueindex(UP_TASK_KEY));
        lua_rawget(L, arg);
        if (is_task_here(L, -1)) up = add_task(L, flow, -1);
        lua_pop(L, 1);
      } else if (!(i == 1 && is_method_call(L)) && table_arg(L, flow, ci, copy, arg, i)) {
        continue; /* o:m() passes o as self, not as data */
      }
    } else if (lua_type(L, arg) == LUA_TUSERDATA && is_task_here(L, arg)) {
      lua_pushvalue(L, lua_upvalueindex(UP_RESOLVE));
      lua_pushvalue(L, flow);
      lua_pushvalue(L, arg);
      lua_call(L, 2, 1);
      up = add_task(L, flow,
                    lua_isnil(L, -1) ? arg : -1); /* an uncalled task: a data edge */
      lua_pop(L, 1);
    }
    if (up)
      add_edge(L, f, up, down, i);
    else
      lf_task_set_const(L, ci, copy, i, arg);
  }
  return push_ref(L, ci, flow);
}

/* core.make_task_call(building, ref_mt, resolve, table_args) -> the Task __call. */
static int make_task_call(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  lf_table_args_set(L, 4);
  lua_getfield(L, 4, "scan");
  lua_remove(L, 4);
  push_shared_upvalues(L);
  lua_pushcclosure(L, task_call, UP_FLOW_KEY);
  return 1;
}

/* ref:set_upstream(u [, key]) (a reference's method). The common case in a
 * builder, two references of the flow being built and no key, adds the edge
 * here; any other goes to upvalue 3, set_upstream(r, u, key) in Lua.
 * Upvalues: as task_call's, 3 being the general case and 4 unused. */
static int ref_set_upstream(lua_State *L) {
  lua_settop(L, 3);
  if (lua_isnil(L, 3) && lua_type(L, 1) == LUA_TTABLE && lua_type(L, 2) == LUA_TTABLE &&
      lua_getmetatable(L, 1) && lua_getmetatable(L, 2) &&
      lua_rawequal(L, 4, lua_upvalueindex(UP_REF_MT)) && lua_rawequal(L, 4, 5)) {
    lua_settop(L, 3);
    lua_rawgeti(L, lua_upvalueindex(UP_BUILDING),
                (lua_Integer)lua_rawlen(L, lua_upvalueindex(UP_BUILDING))); /* 4 */
    lua_pushvalue(L, lua_upvalueindex(UP_FLOW_KEY));
    lua_rawget(L, 1); /* 5: r's flow */
    lua_pushvalue(L, lua_upvalueindex(UP_FLOW_KEY));
    lua_rawget(L, 2); /* 6: u's flow */
    if (!lua_isnil(L, 4) && lua_rawequal(L, 4, 5) && lua_rawequal(L, 4, 6)) {
      lua_pushvalue(L, lua_upvalueindex(UP_TASK_KEY));
      lua_rawget(L, 2); /* 7: u's task */
      lua_pushvalue(L, lua_upvalueindex(UP_TASK_KEY));
      lua_rawget(L, 1); /* 8: r's task */
      if (is_task_here(L, 7) && is_task_here(L, 8)) {
        if (LF_IS_PARAMETER((lf_task *)lua_touserdata(L, 8)))
          return parameter_is_root(L, 8);
        int up = task_index(L, 4, 7), down = task_index(L, 4, 8);
        if (up && down) {
          add_edge(L, lua_touserdata(L, 4), up, down, 0); /* a cycle: when built */
          return 0;
        }
      }
    }
  }
  lua_settop(L, 3);
  lua_pushvalue(L, lua_upvalueindex(UP_RESOLVE));
  lua_insert(L, 1);
  lua_call(L, 3, 0);
  return 0;
}

/* core.make_ref_set_upstream(building, ref_mt, general) -> ref:set_upstream. */
static int make_ref_set_upstream(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  lua_pushboolean(L, 0); /* UP_SCAN: unused here */
  push_shared_upvalues(L);
  lua_pushcclosure(L, ref_set_upstream, UP_FLOW_KEY);
  return 1;
}

/* A reference's __index: its method, else upvalue 2 (a get-item task).
 * Upvalues: 1 the methods, 2 get_item(r, k). */
static int ref_index(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

/* core.make_ref_index(methods, get_item) -> the reference __index. */
static int make_ref_index(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_pushcclosure(L, ref_index, 2);
  return 1;
}

/* core.flow_edges(f) -> {{up, down, key}, ...} (1-based indices) */
static int flow_edges(lua_State *L) {
  lf_flow *f = lf_check_flow(L, 1);
  lua_createtable(L, f->nedges, 0);
  for (int i = 0; i < f->nedges; i++) {
    lua_createtable(L, 3, 0);
    lua_pushinteger(L, f->edges[i].up + 1);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, f->edges[i].down + 1);
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, f->edges[i].key);
    lua_rawseti(L, -2, 3);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.flow_order(f) -> {1-based indices}, or nil, {indices on a cycle}. */
static int flow_order(lua_State *L) {
  lf_flow *f = lf_check_flow(L, 1);
  int *order = lua_newuserdatauv(L, ((size_t)f->ntasks + 1) * sizeof *order, 0);
  int rc = lf_flow_order(f, order);
  if (rc == -2) return luaL_error(L, "not enough memory");
  if (rc != 0) {
    lua_pushnil(L);
    push_cycle(L, f);
    return 2;
  }
  lua_createtable(L, f->ntasks, 0);
  for (int i = 0; i < f->ntasks; i++) {
    lua_pushinteger(L, order[i] + 1);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.flow_set_reference(f, {indices}) */
static int flow_set_reference(lua_State *L) {
  lf_flow *f = lf_check_flow(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)luaL_len(L, 2);
  int *refs = n ? malloc((size_t)n * sizeof *refs) : NULL;
  if (n && !refs) return luaL_error(L, "not enough memory");
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    refs[i] = (int)lua_tointeger(L, -1) - 1;
    lua_pop(L, 1);
  }
  free(f->refs);
  f->refs = refs;
  f->nrefs = n;
  return 0;
}

void lf_open_flow(lua_State *L) {
  static const luaL_Reg flow_meta[] = {
      {"__gc", flow_gc}, {"__tostring", flow_tostring}, {NULL, NULL}};
  luaL_newmetatable(L, LF_FLOW_MT);
  luaL_setfuncs(L, flow_meta, 0);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lf_flow_mt_key);
  lua_setfield(L, -2, "flow_mt");
  static const luaL_Reg fns[] = {{"make_task_call", make_task_call},
                                 {"make_ref_set_upstream", make_ref_set_upstream},
                                 {"make_ref_index", make_ref_index},
                                 {"flow_tasks", flow_tasks},
                                 {"flow_index", flow_index},
                                 {"flow_resolve", flow_resolve},
                                 {"flow_copy", flow_copy},
                                 {"new_flow", flow_new},
                                 {"flow_name", flow_name},
                                 {"flow_add_task", flow_add_task},
                                 {"flow_add_edge", flow_add_edge},
                                 {"flow_add", flow_add},
                                 {"flow_link", flow_link},
                                 {"flow_edges", flow_edges},
                                 {"flow_order", flow_order},
                                 {"flow_cycle", flow_cycle},
                                 {"flow_set_reference", flow_set_reference},
                                 {NULL, NULL}};
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lf_task_mt_key);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lf_flow_mt_key);
  luaL_setfuncs(L, fns, 2);
}
