/* A flow run's journal from Lua (lua_run_record.h): what the run table asks
 * to keep, the restored tasks of a restart, results as JSON for the store,
 * and the times the --json writer reads. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "interrupt.h"
#include "lua_json.h"
#include "lua_run_record.h"

#define TIMES_MT "luaflow.RunTimes"
#define STORE_MT "luaflow.Store" /* lua_store.c's box: an lf_store pointer */
/* registry: true while a result is encoded for the store (run_store.lua) */
#define LF_ENCODING_RESULT_KEY "luaflow.EncodingResult"

static const char *opt_string(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the run table keeps the string alive */
  return s;
}

static int opt_flag(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  int on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return on;
}

void lf_lua_record_read(lua_State *L, int idx, lf_lua_record *rec, lf_lua_host *h) {
  memset(rec, 0, sizeof *rec);
  rec->host = h;
  if (!lua_istable(L, idx)) return;
  idx = lua_absindex(L, idx);
  lf_store *store = NULL;
  lua_getfield(L, idx, "store");
  lf_store **box = luaL_testudata(L, -1, STORE_MT);
  if (box) store = *box;
  lua_pop(L, 1);
  rec->run.id = opt_string(L, idx, "run_id");
  rec->run.script = opt_string(L, idx, "script");
  rec->run.parameters = opt_string(L, idx, "parameters_json");
  rec->run.executor = opt_string(L, idx, "executor");
  rec->run.restart_of = opt_string(L, idx, "restart_of");
  rec->exit_codes = opt_flag(L, idx, "exit_codes");
  rec->j.progress = opt_flag(L, idx, "progress");
  rec->j.store = rec->run.id ? store : NULL;
  rec->active = rec->j.store || rec->j.progress || opt_flag(L, idx, "keep_times");
  if (lua_getfield(L, idx, "restore") == LUA_TTABLE) {
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1))
      if (lf_test_state(L, -1)) {
        lua_pushvalue(L, -1);
        lf_boxes_keep(L, &h->boxes); /* its result lives with the run */
        rec->restores = 1;
      }
  }
  lua_pop(L, 1);
}

/* The result of task i as JSON, for the store (lf_journal_result_fn). */
static int result_json(void *ud, lf_run *r, int i, const lf_state *s, const char **json,
                       size_t *len) {
  (void)r, (void)i;
  lf_lua_record *rec = ud;
  lua_State *L = rec->host->L;
  luaL_checkstack(L, 8, NULL);
  lf_boxes_push_result(L, &rec->host->boxes, (lf_state *)s);
  int value = lua_gettop(L);
  if (s->kind == LF_MAPPED && lua_istable(L, value)) { /* as --json: an array, no n */
    lua_Integer n = (lua_getfield(L, value, "n"), lua_tointeger(L, -1));
    lua_pop(L, 1);
    lua_createtable(L, n > 0 && n < INT_MAX ? (int)n : 0, 0);
    for (lua_Integer k = 1; k <= n; k++) {
      lua_rawgeti(L, value, k);
      lua_rawseti(L, -2, k);
    }
    lua_replace(L, value);
  }
  rec->result.len = 0;
  const lf_redactor *red = lf_redactor_acquire();
  /* a table's or userdata's __tojson that runs a flow would run it in the
   * middle of this run: refused meanwhile (run_store.lua) */
  int code = lua_type(L, value) >= LUA_TTABLE;
  if (code) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, LF_ENCODING_RESULT_KEY);
  }
  int ok = lf_json_put_value(L, value, &rec->result, red);
  if (code) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LF_ENCODING_RESULT_KEY);
  }
  lf_redactor_release(red);
  lua_pop(L, 1);
  if (!ok || rec->result.len > LF_STORE_RESULT_MAX) return 0;
  *json = rec->result.data;
  *len = rec->result.len;
  return 1;
}

int lf_lua_record_begin(lua_State *L, int idx, lf_lua_record *rec, lf_run *r) {
  if (rec->restores) {
    lua_getfield(L, idx, "restore");
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
      lf_state *s = lf_test_state(L, -1);
      lua_Integer i = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
      if (s && i >= 1 && i <= r->ntasks) lf_run_restore(r, (int)i - 1, s);
    }
    lua_pop(L, 1);
  }
  if (!rec->active) return 0;
  lf_store *store = rec->j.store;
  int progress = rec->j.progress;
  if (lf_journal_init(&rec->j, r->ntasks) != 0) {
    rec->active = 0;
    return -1;
  }
  rec->j.store = store;
  rec->j.progress = progress;
  rec->j.result_json = result_json;
  rec->j.result_ud = rec;
  rec->run.flow = r->flow->obj.name;
  rec->run.started = lf_now();
  rec->run.ntasks = r->ntasks;
  lf_journal_begin(&rec->j, &rec->run);
  r->journal = &rec->j;
  if (rec->restores) { /* a restored task keeps its times from the run it restarts */
    lua_getfield(L, idx, "restore_times");
    for (int i = 0; i < r->ntasks && lua_istable(L, -1); i++) {
      if (lua_rawgeti(L, -1, i + 1) == LUA_TTABLE) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        rec->j.times[2 * i] = lua_tonumber(L, -2);
        rec->j.times[2 * i + 1] = lua_tonumber(L, -1);
        lua_pop(L, 2);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  for (int i = 0; i < r->ntasks; i++)
    if (r->task[i].flags & LF_TASK_FINISHED) lf_journal_task_restored(r, i);
  if (rec->j.progress) lf_progress_set(&rec->j.counts);
  lf_journal_log_attach(&rec->j);
  return 0;
}

/* The exit code `luaflow run` gives a run that ended in state s. */
static int exit_code_of(const lf_state *s, int rc) {
  if (lf_cancel_signal) return 128 + lf_cancel_signal;
  if (rc != LUA_OK || !s) return 2;
  if (s->kind == LF_RUNNING) return 3; /* waiting for approval of paused tasks */
  return LF_IS(s, LF_SUCCESS) ? 0 : 1;
}

void lf_lua_record_end(lua_State *L, int idx, lf_lua_record *rec, lf_run *r, int rc,
                       int boxes) {
  if (!rec->active) return;
  lf_run_journal *j = &rec->j;
  lf_journal_log_detach(j);
  rec->host->boxes.table = boxes;
  int kind = -1;
  const char *message = NULL;
  const lf_state *fs = r->flow_state;
  if (rc != LUA_OK && !(fs && LF_IS(fs, LF_FINISHED))) { /* an error ended the run */
    kind = LF_FAILED;
    message = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                             : "the run ended with an error";
  }
  lf_journal_end(r, kind, message, rec->exit_codes ? exit_code_of(fs, rc) : -1);
  r->journal = NULL;
  /* the times, for --json: started, ended, then two per task */
  size_t n = 2 + 2 * (size_t)r->ntasks;
  double *t = lua_newuserdatauv(L, n * sizeof *t, 0);
  t[0] = j->started;
  t[1] = j->ended;
  memcpy(t + 2, j->times, 2 * (size_t)r->ntasks * sizeof *t);
  if (luaL_newmetatable(L, TIMES_MT)) {
    lua_pushliteral(L, "run times");
    lua_setfield(L, -2, "__name");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, idx, "times");
  lf_journal_free(j);
  lf_buf_free(&rec->result);
  rec->active = 0;
}

const double *lf_run_times(lua_State *L, int idx, int *ntasks) {
  double *t = luaL_testudata(L, idx, TIMES_MT);
  if (!t) return NULL;
  *ntasks = (int)((lua_rawlen(L, idx) / sizeof *t - 2) / 2);
  return t;
}
