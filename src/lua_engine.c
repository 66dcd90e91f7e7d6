/* Embedding: an engine is a Lua state with luaflow loaded; running a file
 * keeps the final states (C references) after the Lua values are gone. */
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "graph.h"
#include "interrupt.h"
#include "lua_core.h"
#include "sender.h"

int luaopen_luaflow(lua_State *L);

typedef struct {
  char *flow_name;
  lf_state *state;
  int ntasks;
  char **task_names;
  lf_state **task_states;
} lf_run_record;

struct lf_engine {
  lua_State *L;
  char *error;
  lf_run_record *runs;
  int nruns;
};

static const char params_key = 0; /* registry: the --param table */

static void set_error(lf_engine *e, const char *msg) {
  free(e->error);
  e->error = msg && msg[0] ? strdup(msg) : NULL;
}

static void clear_runs(lf_engine *e) {
  for (int i = 0; i < e->nruns; i++) {
    lf_run_record *r = &e->runs[i];
    free(r->flow_name);
    lf_state_release(r->state);
    for (int k = 0; k < r->ntasks; k++) {
      free(r->task_names[k]);
      lf_state_release(r->task_states[k]);
    }
    free(r->task_names);
    free(r->task_states);
  }
  free(e->runs);
  e->runs = NULL;
  e->nruns = 0;
}

static int open_engine(lua_State *L) {
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luaflow);
  lua_setfield(L, -2, "luaflow");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaflow");
  lua_call(L, 1, 0);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &params_key);
  return 0;
}

lf_engine *lf_engine_new(void) {
  lf_engine *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->L = luaL_newstate();
  if (!e->L) {
    free(e);
    return NULL;
  }
  lua_pushcfunction(e->L, open_engine);
  if (lf_pcall(e->L, 0, 0) != LUA_OK) {
    lua_close(e->L);
    free(e);
    return NULL;
  }
  return e;
}

static int set_param(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &params_key);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "luaflow.core");
  lua_getfield(L, -1, "json");
  lua_getfield(L, -1, "decode");
  lua_pushvalue(L, 2);
  if (lf_pcall(L, 1, 1) != LUA_OK) { /* not JSON: the string itself */
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
  }
  lua_setfield(L, -5, lua_tostring(L, 1));
  return 0;
}

int lf_engine_set_param(lf_engine *e, const char *name, const char *value) {
  lua_pushcfunction(e->L, set_param);
  lua_pushstring(e->L, name);
  lua_pushstring(e->L, value);
  if (lf_pcall(e->L, 2, 0) != LUA_OK) {
    set_error(e, lua_tostring(e->L, -1));
    lua_pop(e->L, 1);
    return -1;
  }
  return 0;
}

/* run_store.set_default_path(path or nil); raises why it cannot. */
static int set_store(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaflow.run_store");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "set_default_path");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 2);
  if (!lua_toboolean(L, -2)) return lua_error(L);
  return 0;
}

int lf_engine_set_store(lf_engine *e, const char *path) {
  lua_pushcfunction(e->L, set_store);
  if (path)
    lua_pushstring(e->L, path);
  else
    lua_pushnil(e->L);
  if (lf_pcall(e->L, 1, 0) != LUA_OK) {
    set_error(e, lua_tostring(e->L, -1));
    lua_pop(e->L, 1);
    return -1;
  }
  set_error(e, NULL);
  return 0;
}

static char *copy_string(lua_State *L, int idx) {
  const char *s = lua_tostring(L, idx);
  return strdup(s ? s : "");
}

/* Copies the runs table ({flow=, state=}, ...) at idx into C records. */
static void record_runs(lf_engine *e, int idx) {
  lua_State *L = e->L;
  int top = lua_gettop(L); /* the values above idx (the messages) stay */
  int n = (int)luaL_len(L, idx);
  e->runs = calloc((size_t)n + 1, sizeof *e->runs);
  if (!e->runs) return;
  for (int i = 0; i < n; i++) {
    lf_run_record *r = &e->runs[e->nruns++];
    lua_rawgeti(L, idx, i + 1);
    lua_getfield(L, -1, "flow");
    r->flow_name = strdup(lf_check_flow(L, -1)->obj.name);
    lua_getfield(L, -2, "state");
    lf_state *fs = lf_check_state(L, -1);
    r->state = lf_state_ref(fs);
    /* tasks, in task_states() order */
    lua_getfield(L, -1, "task_states");
    lua_pushvalue(L, -2);
    lua_call(L, 1, 1);
    int iter = lua_gettop(L);
    int cap = 16;
    r->task_names = malloc((size_t)cap * sizeof *r->task_names);
    r->task_states = malloc((size_t)cap * sizeof *r->task_states);
    for (;;) {
      lua_pushvalue(L, iter);
      lua_call(L, 0, 2);
      if (lua_isnil(L, -2)) {
        lua_pop(L, 2);
        break;
      }
      if (r->ntasks == cap) {
        cap *= 2;
        r->task_names = realloc(r->task_names, (size_t)cap * sizeof *r->task_names);
        r->task_states = realloc(r->task_states, (size_t)cap * sizeof *r->task_states);
      }
      lua_getfield(L, -2, "name");
      r->task_names[r->ntasks] = copy_string(L, -1);
      r->task_states[r->ntasks] = lf_state_ref(lf_check_state(L, -2));
      r->ntasks++;
      lua_pop(L, 3);
    }
    lua_settop(L, top);
  }
}

static int run_file(lua_State *L) {
  lf_engine *e = lua_touserdata(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaflow.script");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "run_file");
  lua_pushvalue(L, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &params_key);
  lua_call(L, 2, 3); /* code, runs, messages */
  int base = lua_gettop(L) - 2;
  record_runs(e, base + 1);
  set_error(e, lua_tostring(L, base + 2));
  lua_pushvalue(L, base);
  return 1;
}

static int cancelled(void) {
  return lf_cancel_signal != 0;
}

int lf_engine_run_file(lf_engine *e, const char *path) {
  clear_runs(e);
  set_error(e, NULL);
  lua_pushcfunction(e->L, run_file);
  lua_pushlightuserdata(e->L, e);
  lua_pushstring(e->L, path);
  int rc = lf_pcall(e->L, 2, 1);
  /* as the CLI: the file's asynchronous deliveries are delivered or given
   * up (each within its deliver_within) before its outcome is told */
  lf_sender_stop(cancelled);
  if (rc != LUA_OK) {
    set_error(e, lua_tostring(e->L, -1));
    lua_pop(e->L, 1);
    return 2;
  }
  int code = (int)lua_tointeger(e->L, -1);
  lua_pop(e->L, 1);
  lua_gc(e->L, LUA_GCCOLLECT);
  return code;
}

const char *lf_engine_error(const lf_engine *e) {
  return e->error;
}

int lf_engine_nruns(const lf_engine *e) {
  return e->nruns;
}

static const lf_run_record *record(const lf_engine *e, int run) {
  return run >= 0 && run < e->nruns ? &e->runs[run] : NULL;
}

const char *lf_engine_flow_name(const lf_engine *e, int run) {
  const lf_run_record *r = record(e, run);
  return r ? r->flow_name : NULL;
}

const lf_state *lf_engine_flow_state(const lf_engine *e, int run) {
  const lf_run_record *r = record(e, run);
  return r ? r->state : NULL;
}

int lf_engine_ntasks(const lf_engine *e, int run) {
  const lf_run_record *r = record(e, run);
  return r ? r->ntasks : 0;
}

const char *lf_engine_task_name(const lf_engine *e, int run, int task) {
  const lf_run_record *r = record(e, run);
  return r && task >= 0 && task < r->ntasks ? r->task_names[task] : NULL;
}

const lf_state *lf_engine_task_state(const lf_engine *e, int run, int task) {
  const lf_run_record *r = record(e, run);
  return r && task >= 0 && task < r->ntasks ? r->task_states[task] : NULL;
}

lua_State *lf_engine_lua(lf_engine *e) {
  return e->L;
}

void lf_engine_free(lf_engine *e) {
  if (!e) return;
  clear_runs(e);
  lf_sender_stop(cancelled); /* what its Lua code queued since goes out first */
  lua_close(e->L);
  free(e->error);
  free(e);
}
