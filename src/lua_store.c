/* require("luaflow.store"): the run store (store.h) from Lua.
 *
 *   local store = require("luaflow.store")
 *   local s, err, code = store.open(path, {create = true, record = true})
 *   local run = s:begin_run{id = "...", flow = "f", started = os.time()}
 *   run:transition{index = 1, seq = 1, name = "t", old = "Pending", new = "Running",
 *                  message = "Starting task run.", time = ...}
 *   run:task{index = 1, name = "t", state = "Success", run_count = 1, result = "42"}
 *   run:log{time = ..., level = "INFO", logger = "luaflow.TaskRunner", message = "..."}
 *   run:finish{ended = ..., state = "Success", message = "...", exit_code = 0}
 *   s:flush(); s:runs{flow =, state =, limit =}; s:run("last"); s:tasks(id)
 *   s:transitions(id); s:logs(id); s:prune{keep = 10} or {before = epoch}; s:close()
 *   s:delivery{run_id =, transition_id =, notifier =, destination =, time =,
 *              duration =, ok =, status =}; s:deliveries(id)
 *   s:outbox_add{...} / s:outbox_update{...} / s:outbox_remove{...}; s:outbox()
 *   s:record_deliveries([false]): the notifiers' deliveries recorded here
 *
 * The record calls return true, or nil and why recording stopped. Caller
 * mistakes raise; a store that cannot do what is asked returns nil, message,
 * code (code: "missing", "invalid", "not_found", "ambiguous", "not_a_store",
 * "corrupt", "read_only", "disk_full", "newer", "busy", "io"). Loaded from the
 * luaflow module's library (Lua's C searcher finds luaopen_luaflow_store in
 * luaflow.so); the CLI will register it with the engine's integration. */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>
#include "log.h"
#include "state.h"
#include "store.h"

#define STORE_MT "luaflow.Store"
#define RUN_MT "luaflow.StoreRun"
#define ROWS_MT "luaflow.StoreRows"

LUAFLOW_API int luaopen_luaflow_store(lua_State *L);

static const char *const code_names[] = {
    "ok",      "missing",   "invalid",   "not_found", "ambiguous", "not_a_store",
    "corrupt", "read_only", "disk_full", "newer",     "busy",      "io"};

static int push_error(lua_State *L, const lf_store_error *err) {
  lua_pushnil(L);
  lua_pushstring(L, err->msg);
  lua_pushstring(L, (unsigned)err->code < sizeof code_names / sizeof code_names[0]
                        ? code_names[err->code]
                        : "io");
  return 3;
}

/* ---- reading argument tables ---- */

static const char *field_str(lua_State *L, int t, const char *key, int required) {
  lua_getfield(L, t, key);
  /* Strings only: a number converted here would die with the popped copy. */
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (!s && (required || !lua_isnil(L, -1)))
    luaL_error(L, "field '%s' must be a string (got %s)", key, luaL_typename(L, -1));
  lua_pop(L, 1); /* the table still holds the string */
  return s;
}

static const char *field_lstr(lua_State *L, int t, const char *key, size_t *len) {
  lua_getfield(L, t, key);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
  if (!s && !lua_isnil(L, -1))
    luaL_error(L, "field '%s' must be a string (got %s)", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return s;
}

static double field_num(lua_State *L, int t, const char *key, double def) {
  lua_getfield(L, t, key);
  int isnum;
  double v = lua_tonumberx(L, -1, &isnum);
  if (!isnum && !lua_isnil(L, -1))
    luaL_error(L, "field '%s' must be a number (got %s)", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return isnum ? v : def;
}

static lf_kind field_kind(lua_State *L, int t, const char *key) {
  size_t len = 0; /* luaL_error below does not return */
  lua_getfield(L, t, key);
  const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (!name)
    luaL_error(L, "field '%s' must be a state class (got %s)", key, luaL_typename(L, -1));
  int k = lf_kind_from_name(name, len);
  if (k < 0) luaL_error(L, "field '%s': unknown state class '%s'", key, name);
  lua_pop(L, 1);
  return (lf_kind)k;
}

static int field_int(lua_State *L, int t, const char *key, int def) {
  lua_getfield(L, t, key);
  int isint;
  lua_Integer v = lua_tointegerx(L, -1, &isint);
  if (!isint && !lua_isnil(L, -1))
    luaL_error(L, "field '%s' must be an integer (got %s)", key, luaL_typename(L, -1));
  if (isint && (v < -1000000000 || v > 1000000000))
    luaL_error(L, "field '%s' is out of range", key);
  lua_pop(L, 1);
  return isint ? (int)v : def;
}

/* ---- the store ---- */

static lf_store **check_box(lua_State *L) {
  return luaL_checkudata(L, 1, STORE_MT);
}

static lf_store *check_store(lua_State *L) {
  lf_store **box = check_box(L);
  if (!*box) luaL_error(L, "attempt to use a closed run store");
  return *box;
}

static int store_open(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  if (strlen(path) != len) luaL_argerror(L, 1, "path holds a NUL byte");
  lf_store_options o = {0};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "create");
    o.flags |= lua_toboolean(L, -1) ? LF_STORE_CREATE : 0;
    lua_getfield(L, 2, "record");
    o.flags |= lua_toboolean(L, -1) ? LF_STORE_RECORD : 0;
    lua_pop(L, 2);
    o.flush_interval = field_num(L, 2, "flush_interval", 0);
    o.busy_timeout = field_num(L, 2, "busy_timeout", 0);
  }
  lf_store **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, STORE_MT);
  lf_store_error err;
  if (!(*box = lf_store_open(path, &o, &err))) return push_error(L, &err);
  return 1;
}

/* s:close() or s:close{wait = false}: the latter returns once what is queued
 * is committed, the database being closed in the background before the
 * process exits (lf_store_close_later). */
static int store_close(lua_State *L) {
  lf_store **box = check_box(L);
  int wait = 1;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "wait");
    wait = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lf_store *s = *box;
  *box = NULL;
  lf_store_error err;
  lf_store_detach_deliveries(s);
  if (s && (wait ? lf_store_close(s, &err) : lf_store_close_later(s, &err)) != 0)
    return push_error(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int store_gc(lua_State *L) {
  lf_store **box = check_box(L);
  if (*box) lf_store_detach_deliveries(*box);
  if (*box) lf_store_close(*box, NULL);
  *box = NULL;
  return 0;
}

static int store_path(lua_State *L) {
  lua_pushstring(L, lf_store_path(check_store(L)));
  return 1;
}

static int store_schema_version(lua_State *L) {
  lua_pushinteger(L, lf_store_schema_version(check_store(L)));
  return 1;
}

static int store_flush(lua_State *L) {
  lf_store_error err;
  if (lf_store_flush(check_store(L), &err) != 0) return push_error(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int store_failure(lua_State *L) {
  const char *f = lf_store_failure(check_store(L));
  if (!f) return 0;
  lua_pushstring(L, f);
  return 1;
}

/* ---- recording ---- */

/* A run box: the recorder, and (user value 1) its store's box. */
typedef struct {
  lf_store_recorder *r;
} run_box;

static int store_begin_run(lua_State *L) {
  lf_store *s = check_store(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lf_store_run run = {0};
  run.id = field_str(L, 2, "id", 1);
  run.flow = field_str(L, 2, "flow", 1);
  run.script = field_str(L, 2, "script", 0);
  run.parameters = field_str(L, 2, "parameters", 0);
  run.executor = field_str(L, 2, "executor", 0);
  run.restart_of = field_str(L, 2, "restart_of", 0);
  run.started = field_num(L, 2, "started", 0);
  run.ntasks = field_int(L, 2, "ntasks", 0);
  if (!*run.id) luaL_argerror(L, 2, "empty run id");
  run_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->r = NULL;
  luaL_setmetatable(L, RUN_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  if (!(b->r = lf_store_begin_run(s, &run))) {
    const char *f = lf_store_failure(s);
    lua_pushnil(L);
    lua_pushstring(L, f ? f : "run store: not recording");
    return 2;
  }
  return 1;
}

/* What a record call returns: true, or nil and why recording stopped. */
static int recorded(lua_State *L, int rc) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  const char *f = lf_store_failure(*(lf_store **)lua_touserdata(L, -1));
  lua_pushnil(L);
  lua_pushstring(L, f ? f : "run store: not recording");
  return 2;
}

static lf_store_recorder *check_run(lua_State *L) {
  run_box *b = luaL_checkudata(L, 1, RUN_MT);
  lua_getiuservalue(L, 1, 1);
  lf_store **store = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!store || !*store) luaL_error(L, "attempt to record into a closed run store");
  if (!b->r) luaL_error(L, "attempt to record into a finished run");
  luaL_checktype(L, 2, LUA_TTABLE);
  return b->r;
}

static int run_task(lua_State *L) {
  lf_store_recorder *r = check_run(L);
  lf_store_task t = {0};
  t.index = field_int(L, 2, "index", 0);
  t.map_index = field_int(L, 2, "map_index", 0);
  t.name = field_str(L, 2, "name", 1);
  t.state = field_kind(L, 2, "state");
  t.message = field_str(L, 2, "message", 0);
  t.run_count = field_int(L, 2, "run_count", 0);
  t.started = field_num(L, 2, "started", 0);
  t.ended = field_num(L, 2, "ended", 0);
  t.result = field_lstr(L, 2, "result", &t.result_len);
  lua_getfield(L, 2, "result_stored");
  t.result_stored = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return recorded(L, lf_store_record_task(r, &t));
}

static int run_transition(lua_State *L) {
  lf_store_recorder *r = check_run(L);
  lf_store_transition t = {0};
  t.index = field_int(L, 2, "index", 0);
  t.map_index = field_int(L, 2, "map_index", 0);
  t.seq = field_int(L, 2, "seq", 0);
  t.name = field_str(L, 2, "name", 1);
  t.old_state = field_kind(L, 2, "old");
  t.new_state = field_kind(L, 2, "new");
  t.message = field_str(L, 2, "message", 0);
  t.time = field_num(L, 2, "time", 0);
  return recorded(L, lf_store_record_transition(r, &t));
}

static int run_log(lua_State *L) {
  lf_store_recorder *r = check_run(L);
  lf_store_log l = {0};
  l.time = field_num(L, 2, "time", 0);
  lua_getfield(L, 2, "level");
  l.level = lua_type(L, -1) == LUA_TSTRING ? lf_log_parse_level(lua_tostring(L, -1))
                                           : (int)luaL_optinteger(L, -1, LF_LOG_INFO);
  if (l.level < 0) luaL_error(L, "unknown log level '%s'", lua_tostring(L, -1));
  lua_pop(L, 1);
  l.logger = field_str(L, 2, "logger", 1);
  l.message = field_lstr(L, 2, "message", &l.message_len);
  if (!l.message) luaL_error(L, "field 'message' must be a string (got nil)");
  return recorded(L, lf_store_record_log(r, &l));
}

static int run_finish(lua_State *L) {
  lf_store_recorder *r = check_run(L);
  double ended = field_num(L, 2, "ended", 0);
  lf_kind state = field_kind(L, 2, "state");
  const char *message = field_str(L, 2, "message", 0);
  int exit_code = field_int(L, 2, "exit_code", -1);
  int rc = lf_store_end_run(r, ended, state, message, exit_code);
  ((run_box *)lua_touserdata(L, 1))->r = NULL;
  return recorded(L, rc);
}

/* ---- reading ---- */

static int rows_gc(lua_State *L) {
  lf_store_rows_free(luaL_checkudata(L, 1, ROWS_MT));
  return 0;
}

/* A box on the stack that frees the rows if building their tables raises. */
static lf_store_rows *new_rows(lua_State *L) {
  lf_store_rows *rows = lua_newuserdatauv(L, sizeof *rows, 0);
  memset(rows, 0, sizeof *rows);
  luaL_setmetatable(L, ROWS_MT);
  return rows;
}

static void set_str(lua_State *L, const char *key, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, key);
}

static void set_num(lua_State *L, const char *key, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, key);
}

static void set_int(lua_State *L, const char *key, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, key);
}

static void push_run(lua_State *L, const void *row) {
  const lf_store_run *r = row;
  lua_createtable(L, 0, 18);
  set_str(L, "id", r->id);
  set_str(L, "flow", r->flow);
  set_str(L, "script", r->script);
  set_str(L, "parameters", r->parameters);
  set_str(L, "executor", r->executor);
  set_str(L, "restart_of", r->restart_of);
  set_num(L, "started", r->started);
  if (r->ended) set_num(L, "ended", r->ended);
  set_str(L, "state", r->state);
  set_str(L, "message", r->message);
  if (r->exit_code >= 0) set_int(L, "exit_code", r->exit_code);
  set_int(L, "ntasks", r->ntasks);
  set_int(L, "pid", r->pid);
  set_str(L, "host", r->host);
  set_num(L, "heartbeat", r->heartbeat);
  lua_newtable(L);
  for (int k = 0; k < LF_NKINDS; k++)
    if (r->counts[k]) set_int(L, lf_kind_name((lf_kind)k), r->counts[k]);
  lua_setfield(L, -2, "counts");
}

static void push_task(lua_State *L, const void *row) {
  const lf_store_task *t = row;
  lua_createtable(L, 0, 11);
  set_int(L, "index", t->index);
  if (t->map_index) set_int(L, "map_index", t->map_index);
  set_str(L, "name", t->name);
  set_str(L, "state", lf_kind_name(t->state));
  set_str(L, "message", t->message);
  set_int(L, "run_count", t->run_count);
  if (t->started) set_num(L, "started", t->started);
  if (t->ended) set_num(L, "ended", t->ended);
  if (t->result) {
    lua_pushlstring(L, t->result, t->result_len);
    lua_setfield(L, -2, "result");
  }
  lua_pushboolean(L, t->result_stored);
  lua_setfield(L, -2, "result_stored");
}

static void push_transition(lua_State *L, const void *row) {
  const lf_store_transition *t = row;
  lua_createtable(L, 0, 8);
  set_int(L, "index", t->index);
  if (t->map_index) set_int(L, "map_index", t->map_index);
  set_int(L, "seq", t->seq);
  set_str(L, "name", t->name);
  set_str(L, "old", lf_kind_name(t->old_state));
  set_str(L, "new", lf_kind_name(t->new_state));
  set_str(L, "message", t->message);
  set_num(L, "time", t->time);
}

static void push_log(lua_State *L, const void *row) {
  const lf_store_log *l = row;
  lua_createtable(L, 0, 4);
  set_num(L, "time", l->time);
  set_str(L, "level", lf_log_level_name(l->level));
  set_str(L, "logger", l->logger);
  lua_pushlstring(L, l->message, l->message_len);
  lua_setfield(L, -2, "message");
}

/* Pushes the rows as a list (the rows box below it is freed and popped). */
static int push_rows(lua_State *L, lf_store_rows *rows,
                     void (*push)(lua_State *, const void *), size_t size) {
  lua_createtable(L, rows->n > 1000000 ? 1000000 : (int)rows->n, 0);
  for (size_t i = 0; i < rows->n; i++) {
    push(L, (const char *)rows->runs + i * size);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lf_store_rows_free(rows);
  lua_remove(L, -2);
  return 1;
}

static int store_runs(lua_State *L) {
  lf_store *s = check_store(L);
  lf_store_query q = {0};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    q.flow = field_str(L, 2, "flow", 0);
    q.state = field_str(L, 2, "state", 0);
    q.limit = field_int(L, 2, "limit", 0);
  }
  lf_store_rows *rows = new_rows(L);
  lf_store_error err;
  if (lf_store_list_runs(s, &q, rows, &err) != 0) return push_error(L, &err);
  return push_rows(L, rows, push_run, sizeof(lf_store_run));
}

static int store_run(lua_State *L) {
  lf_store *s = check_store(L);
  const char *ref = luaL_checkstring(L, 2);
  lf_store_rows *rows = new_rows(L);
  lf_store_error err;
  if (lf_store_find_run(s, ref, rows, &err) != 0) return push_error(L, &err);
  push_run(L, &rows->runs[0]);
  lf_store_rows_free(rows);
  return 1;
}

typedef int (*run_reader)(lf_store *, const char *, lf_store_rows *, lf_store_error *);

static int read_run(lua_State *L, run_reader read,
                    void (*push)(lua_State *, const void *), size_t size) {
  lf_store *s = check_store(L);
  const char *id = luaL_checkstring(L, 2);
  lf_store_rows *rows = new_rows(L);
  lf_store_error err;
  if (read(s, id, rows, &err) != 0) return push_error(L, &err);
  return push_rows(L, rows, push, size);
}

static int store_tasks(lua_State *L) {
  return read_run(L, lf_store_run_tasks, push_task, sizeof(lf_store_task));
}

static int store_transitions(lua_State *L) {
  return read_run(L, lf_store_run_transitions, push_transition,
                  sizeof(lf_store_transition));
}

static int store_logs(lua_State *L) {
  return read_run(L, lf_store_run_logs, push_log, sizeof(lf_store_log));
}

static int store_prune(lua_State *L) {
  lf_store *s = check_store(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "keep");
  int has_keep = !lua_isnil(L, -1);
  lua_pop(L, 1);
  int keep = has_keep ? field_int(L, 2, "keep", 0) : -1;
  double before = field_num(L, 2, "before", 0);
  if (has_keep == (before != 0)) luaL_argerror(L, 2, "give either keep or before");
  if (has_keep && keep < 0) luaL_argerror(L, 2, "keep must be 0 or more");
  size_t n;
  lf_store_error err;
  if (lf_store_prune(s, keep, before, &n, &err) != 0) return push_error(L, &err);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* ---- notification deliveries and the outbox ---- */

/* What a delivery or outbox record call returns: true, or nil and why the
 * store stopped recording. */
static int queued(lua_State *L, lf_store *s, int rc) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  const char *f = lf_store_failure(s);
  lua_pushnil(L);
  lua_pushstring(L, f ? f : "run store: not recording");
  return 2;
}

/* s:delivery{run_id=, transition_id=, notifier=, destination=, time=,
 * duration=, ok=, status=} -> true | nil, why */
static int store_delivery(lua_State *L) {
  lf_store *s = check_store(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lf_store_delivery d = {0};
  d.run_id = field_str(L, 2, "run_id", 0);
  d.transition_id = field_str(L, 2, "transition_id", 0);
  d.notifier = field_str(L, 2, "notifier", 1);
  d.destination = field_str(L, 2, "destination", 0);
  d.time = field_num(L, 2, "time", 0);
  d.duration = field_num(L, 2, "duration", 0);
  lua_getfield(L, 2, "ok");
  d.ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  d.status = field_str(L, 2, "status", 0);
  return queued(L, s, lf_store_record_delivery(s, &d));
}

static void read_outbox_item(lua_State *L, lf_store_outbox_item *it) {
  luaL_checktype(L, 2, LUA_TTABLE);
  it->run_id = field_str(L, 2, "run_id", 0);
  it->transition_id = field_str(L, 2, "transition_id", 0);
  it->notifier = field_str(L, 2, "notifier", 1);
  it->destination = field_str(L, 2, "destination", 0);
  it->payload = field_str(L, 2, "payload", 0);
  it->created = field_num(L, 2, "created", 0);
  it->deliver_by = field_num(L, 2, "deliver_by", 0);
  it->next_attempt = field_num(L, 2, "next_attempt", 0);
  it->attempts = field_int(L, 2, "attempts", 0);
  it->last_error = field_str(L, 2, "last_error", 0);
}

/* s:outbox_add{...}, s:outbox_update{...}, s:outbox_remove{...}: an item
 * (fields as lf_store_outbox_item) -> true | nil, why */
static int outbox_change(lua_State *L,
                         int (*change)(lf_store *, const lf_store_outbox_item *)) {
  lf_store *s = check_store(L);
  lf_store_outbox_item it = {0};
  read_outbox_item(L, &it);
  return queued(L, s, change(s, &it));
}

static int store_outbox_add(lua_State *L) {
  return outbox_change(L, lf_store_outbox_add);
}

static int store_outbox_update(lua_State *L) {
  return outbox_change(L, lf_store_outbox_update);
}

static int store_outbox_remove(lua_State *L) {
  return outbox_change(L, lf_store_outbox_remove);
}

static void push_delivery(lua_State *L, const void *row) {
  const lf_store_delivery *d = row;
  lua_createtable(L, 0, 8);
  set_str(L, "run_id", d->run_id);
  set_str(L, "transition_id", d->transition_id);
  set_str(L, "notifier", d->notifier);
  set_str(L, "destination", d->destination);
  set_num(L, "time", d->time);
  set_num(L, "duration", d->duration);
  lua_pushboolean(L, d->ok);
  lua_setfield(L, -2, "ok");
  set_str(L, "status", d->status);
}

static void push_outbox_item(lua_State *L, const void *row) {
  const lf_store_outbox_item *it = row;
  lua_createtable(L, 0, 12);
  set_str(L, "run_id", it->run_id);
  set_str(L, "transition_id", it->transition_id);
  set_str(L, "notifier", it->notifier);
  set_str(L, "destination", it->destination);
  set_str(L, "payload", it->payload);
  set_num(L, "created", it->created);
  set_num(L, "deliver_by", it->deliver_by);
  set_num(L, "next_attempt", it->next_attempt);
  set_int(L, "attempts", it->attempts);
  set_str(L, "last_error", it->last_error);
  set_str(L, "claimed_by", it->claimed_by);
  set_num(L, "claimed_until", it->claimed_until);
}

/* s:record_deliveries([on]): the notifiers' deliveries (and asynchronous
 * items' outbox rows) are recorded here from now on; false stops it. The
 * store is kept alive meanwhile; closing it stops it too. */
static int store_record_deliveries(lua_State *L) {
  lf_store *s = check_store(L);
  int on = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
  if (on) {
    lf_store_attach_deliveries(s);
    lua_pushvalue(L, 1);
  } else {
    lf_store_detach_deliveries(s);
    lua_pushnil(L);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "luaflow.DeliveryStore");
  return 0;
}

static int store_deliveries(lua_State *L) {
  return read_run(L, lf_store_run_deliveries, push_delivery, sizeof(lf_store_delivery));
}

static int store_outbox(lua_State *L) {
  lf_store *s = check_store(L);
  lf_store_rows *rows = new_rows(L);
  lf_store_error err;
  if (lf_store_outbox_list(s, rows, &err) != 0) return push_error(L, &err);
  return push_rows(L, rows, push_outbox_item, sizeof(lf_store_outbox_item));
}

static int store_env_path(lua_State *L) {
  char path[4096];
  int rc = lf_store_env_path(path, sizeof path);
  if (rc > 0)
    lua_pushstring(L, path);
  else
    lua_pushboolean(L, 0); /* off, or no home to put it in */
  return 1;
}

int luaopen_luaflow_store(lua_State *L) {
  static const luaL_Reg store_methods[] = {{"close", store_close},
                                           {"path", store_path},
                                           {"schema_version", store_schema_version},
                                           {"flush", store_flush},
                                           {"failure", store_failure},
                                           {"begin_run", store_begin_run},
                                           {"runs", store_runs},
                                           {"run", store_run},
                                           {"tasks", store_tasks},
                                           {"transitions", store_transitions},
                                           {"logs", store_logs},
                                           {"prune", store_prune},
                                           {"delivery", store_delivery},
                                           {"record_deliveries", store_record_deliveries},
                                           {"deliveries", store_deliveries},
                                           {"outbox_add", store_outbox_add},
                                           {"outbox_update", store_outbox_update},
                                           {"outbox_remove", store_outbox_remove},
                                           {"outbox", store_outbox},
                                           {NULL, NULL}};
  static const luaL_Reg run_methods[] = {{"task", run_task},
                                         {"transition", run_transition},
                                         {"log", run_log},
                                         {"finish", run_finish},
                                         {NULL, NULL}};
  luaL_newmetatable(L, STORE_MT);
  luaL_newlib(L, store_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, store_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, store_gc);
  lua_setfield(L, -2, "__close");
  luaL_newmetatable(L, RUN_MT);
  luaL_newlib(L, run_methods);
  lua_setfield(L, -2, "__index");
  luaL_newmetatable(L, ROWS_MT);
  lua_pushcfunction(L, rows_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 3);

  lua_newtable(L);
  lua_pushcfunction(L, store_open);
  lua_setfield(L, -2, "open");
  lua_pushcfunction(L, store_env_path);
  lua_setfield(L, -2, "env_path");
  set_int(L, "SCHEMA_VERSION", LF_STORE_SCHEMA_VERSION);
  set_int(L, "RESULT_MAX", LF_STORE_RESULT_MAX);
  set_num(L, "HEARTBEAT", LF_STORE_HEARTBEAT);
  set_num(L, "STALE", LF_STORE_STALE);
  return 1;
}
