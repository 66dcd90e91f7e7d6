/* Caching results across runs (cache_for, cache_key, cache_validator): the
 * Lua host's cache_lookup and cache_save call luaflow.cache (lookup, save)
 * with the task, the map index and the task run's inputs, in a protected
 * call of their own (a validator's error is a WARNING, never the run's).
 * Also core.cache_db(path): the cache table of a run store (SQLite), which
 * several processes share (WAL; a writer waits for another up to 60 s). */
#include <sqlite3.h>
#include "clock.h"
#include "lua_codec.h"
#include <string.h>
#include "graph.h"
#include "log.h"
#include "lua_host.h"
#include "map.h"

static const char hooks_key = 0; /* {lookup, save} of luaflow.cache */

/* Pushes the hook (1 lookup, 2 save), the task object, the map index (or
 * nil) and the task run's inputs {n =, ...}. */
static void push_call(lf_lua_host *h, lf_run *r, int i, int hook) {
  lua_State *L = h->L;
  if (!lua_checkstack(L, 24)) luaL_error(L, "stack overflow"); /* room for 8 arguments */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hooks_key);
  lua_rawgeti(L, -1, hook);
  lua_remove(L, -2);
  lf_lua_host_push_object(h, lf_run_task_index(r, i));
  int index = lf_map_index(r, i);
  if (index > 0)
    lua_pushinteger(L, index);
  else
    lua_pushnil(L);
  lua_newtable(L);
  int list = lua_gettop(L);
  int n = lf_lua_host_push_args(h, r, i);
  for (int k = n; k >= 1; k--)
    lua_rawseti(L, list, k);
  lua_pushinteger(L, n);
  lua_setfield(L, list, "n");
}

/* Calls the hook on the stack with nargs; returns the state it returned
 * (owned, its box kept by the run) or NULL. */
static lf_state *finish_call(lf_lua_host *h, int nargs, int top) {
  lua_State *L = h->L;
  lf_state *s = NULL;
  if (lf_pcall(L, nargs, 1) != LUA_OK) {
    lf_log(LF_LOG_WARNING, "luaflow.Cache", "%s", lf_safe_tostring(L, -1, NULL));
  } else if ((s = lf_test_state(L, -1)) != NULL) {
    lf_state_ref(s);
    lua_pushvalue(L, -1);
    lf_lua_host_keep_box(h);
  }
  lua_settop(L, top);
  return s;
}

lf_state *lf_lua_cache_lookup(lf_host *base, lf_run *r, int i) {
  lf_lua_host *h = (lf_lua_host *)base;
  int top = lua_gettop(h->L);
  push_call(h, r, i, 1);
  return finish_call(h, 3, top);
}

lf_state *lf_lua_cache_save(lf_host *base, lf_run *r, int i) {
  lf_lua_host *h = (lf_lua_host *)base;
  int top = lua_gettop(h->L);
  push_call(h, r, i, 2);
  lf_boxes_push(h->L, &h->boxes, r->task[i].state);
  lua_insert(h->L, -2); /* (task, index, state, inputs) */
  return finish_call(h, 4, top);
}

/* core.cache_hooks(lookup, save) */
static int cache_hooks(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hooks_key);
  return 0;
}

void lf_cached_decode(lua_State *L, int idx, const char *key) {
  lua_pop(L, 1);
  lua_pushfstring(L, "%s#", key);
  size_t len;
  lua_rawget(L, idx);
  const char *bytes = lua_tolstring(L, -1, &len);
  char err[LF_CODEC_ERRMAX];
  if (!bytes || lf_decode(L, bytes, len, NULL, err, sizeof err) != 1) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, idx, key); /* decoded once */
}

/* core.cached_state(message, result, expiration, inputs_bytes,
 * parameters_bytes) -> the Cached state of a cache entry (its result
 * decoded already, its inputs and parameters when read). */
static int cached_state(lua_State *L) {
  size_t len = 0;
  const char *msg = luaL_optlstring(L, 1, NULL, &len);
  lua_settop(L, 5);
  lf_state *s = lf_state_newl(LF_CACHED, msg, len);
  if (!s) return luaL_error(L, "not enough memory");
  lf_box_new_uv(L, s, 2, LF_BOX_EXTRA);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "cached_result_expiration");
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, "cached_inputs#");
  lua_pushvalue(L, 5);
  lua_setfield(L, -2, "cached_parameters#");
  lua_setiuservalue(L, -2, LF_BOX_EXTRA);
  return 1;
}

/* core.cache_now() -> epoch seconds (no time value made) */
static int cache_now(lua_State *L) {
  lua_pushnumber(L, lf_now());
  return 1;
}

/* core.task_cache(task) -> cache_for (nil: none), cache_key, cache_validator */
static int task_cache(lua_State *L) {
  lf_task *t = lf_test_task(L, 1);
  if (!t) return luaL_typeerror(L, 1, "task");
  if (t->policy && t->policy->cache_for > 0)
    lua_pushnumber(L, t->policy->cache_for);
  else
    lua_pushnil(L);
  lua_getiuservalue(L, 1, LF_UV_SPEC);
  lua_getfield(L, -1, "cache_key");
  lua_getfield(L, -2, "cache_validator");
  lua_remove(L, -3);
  return 3;
}

/* ---- the store's cache table ---- */

#define CACHE_DB_MT "luaflow.CacheDB"

/* The statements a run uses again and again, prepared once. */
enum {
  ST_GET,
  ST_GET_INPUTS,
  ST_GET_PARAMETERS,
  ST_GET_BOTH,
  ST_EXPIRED,
  ST_SUPERSEDED,
  ST_INSERT,
  NSTMT
};

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *st[NSTMT];
} cache_db;

/* Statement k (sql), prepared on first use; NULL on an error (the
 * connection has it). Reset after each use, never finalized before close. */
static sqlite3_stmt *prepared(cache_db *c, int k, const char *sql) {
  if (!c->st[k] && sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                      &c->st[k], NULL) != SQLITE_OK)
    c->st[k] = NULL;
  return c->st[k];
}

static void done_with(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static cache_db *check_db(lua_State *L) {
  cache_db *c = luaL_checkudata(L, 1, CACHE_DB_MT);
  if (!c->db) luaL_error(L, "the cache is closed");
  return c;
}

static int db_fail(lua_State *L, sqlite3 *db) {
  lua_pushnil(L);
  lua_pushstring(L, sqlite3_errmsg(db));
  return 2;
}

/* core.cache_db(path) -> db | nil, why: the cache table of the run store
 * at path (which must exist). */
static int cache_db_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  cache_db *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CACHE_DB_MT);
  if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open the cache in %s: %s", path,
                    c->db ? sqlite3_errmsg(c->db) : "out of memory");
    sqlite3_close(c->db);
    c->db = NULL;
    return 2;
  }
  sqlite3_busy_timeout(c->db, 60000);
  /* as the store's own connection: a commit survives the process (it is in
   * the WAL), with no fsync each */
  sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
  /* lookups by inputs (all_inputs) stay fast however many entries a key has */
  sqlite3_exec(c->db,
               "CREATE INDEX IF NOT EXISTS cache_inputs ON cache(key, map_index, inputs)",
               NULL, NULL, NULL);
  return 1;
}

static void bind_text(sqlite3_stmt *st, int k, lua_State *L, int idx) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (s)
    sqlite3_bind_blob(st, k, s, (int)n, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, k);
}

static void push_column(lua_State *L, sqlite3_stmt *st, int col) {
  switch (sqlite3_column_type(st, col)) {
  case SQLITE_NULL:
    lua_pushnil(L);
    break;
  case SQLITE_INTEGER:
    lua_pushinteger(L, sqlite3_column_int64(st, col));
    break;
  case SQLITE_FLOAT:
    lua_pushnumber(L, sqlite3_column_double(st, col));
    break;
  default:
    lua_pushlstring(L, sqlite3_column_blob(st, col),
                    (size_t)sqlite3_column_bytes(st, col));
  }
}

/* Runs st and pushes its rows as a list of {name = value}; finalizes st
 * (reset only, when `keep`). */
static int push_rows(lua_State *L, sqlite3 *db, sqlite3_stmt *st, int keep) {
  lua_newtable(L);
  int rc, n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    lua_createtable(L, 0, sqlite3_column_count(st));
    for (int col = 0; col < sqlite3_column_count(st); col++) {
      push_column(L, st, col);
      lua_setfield(L, -2, sqlite3_column_name(st, col));
    }
    lua_rawseti(L, -2, ++n);
  }
  if (keep)
    done_with(st);
  else
    sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return db_fail(L, db);
  return 1;
}

#define COLUMNS                                                                          \
  "key, map_index, created, expires, run_id, state, message, result, inputs, parameters"

static void bind_index(sqlite3_stmt *st, int k, lua_State *L, int idx) {
  if (lua_isinteger(L, idx))
    sqlite3_bind_int64(st, k, lua_tointeger(L, idx));
  else
    sqlite3_bind_null(st, k);
}

/* db:get(key, map_index|nil, now [, inputs [, parameters [, limit]]]) -> the
 * unexpired entries, newest first; with inputs (parameters) given, only
 * those whose canonical inputs (parameters) are these bytes. */
static int db_get(lua_State *L) {
  cache_db *c = check_db(L);
  /* one statement for each filter, so that the indexes serve it */
#define GET                                                                              \
  "SELECT " COLUMNS " FROM cache WHERE key = ?1 AND map_index IS ?2"                     \
  " AND (expires IS NULL OR expires > ?3)"
#define NEWEST " ORDER BY entry DESC LIMIT ?6"
  static const char *const sql[] = {
      GET " AND ?4 IS NULL AND ?5 IS NULL" NEWEST,
      GET " AND inputs = ?4 AND ?5 IS NULL" NEWEST,
      GET " AND ?4 IS NULL AND parameters = ?5" NEWEST,
      GET " AND inputs = ?4 AND parameters = ?5" NEWEST,
  };
  int which = (lua_isnoneornil(L, 5) ? 0 : 1) + (lua_isnoneornil(L, 6) ? 0 : 2);
  sqlite3_stmt *st = prepared(c, ST_GET + which, sql[which]);
  if (!st) return db_fail(L, c->db);
  bind_text(st, 1, L, 2);
  bind_index(st, 2, L, 3);
  sqlite3_bind_double(st, 3, luaL_checknumber(L, 4));
  bind_text(st, 4, L, 5);
  bind_text(st, 5, L, 6);
  sqlite3_bind_int64(st, 6, luaL_optinteger(L, 7, -1));
  return push_rows(L, c->db, st, 1);
}

/* Runs one statement with fields of the entry table at idx bound in order;
 * returns 0, or -1 (the connection has the error). */
static int run_with(cache_db *c, lua_State *L, int idx, int k_st, const char *sql,
                    const char *const *fields, int n) {
  sqlite3_stmt *st = prepared(c, k_st, sql);
  if (!st) return -1;
  for (int k = 0; k < n; k++) {
    int t = lua_getfield(L, idx, fields[k]);
    if (t == LUA_TNUMBER && lua_isinteger(L, -1))
      sqlite3_bind_int64(st, k + 1, lua_tointeger(L, -1));
    else if (t == LUA_TNUMBER)
      sqlite3_bind_double(st, k + 1, lua_tonumber(L, -1));
    else if (t == LUA_TSTRING)
      bind_text(st, k + 1, L, -1);
    else
      sqlite3_bind_null(st, k + 1);
    lua_pop(L, 1);
  }
  int rc = sqlite3_step(st);
  done_with(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

/* db:put{key=, map_index=, created=, expires=, run_id=, state=, message=,
 * result=, inputs=, parameters=} -> true | nil, why. In the same
 * transaction, the entries of the key (and map index) that expired, or that
 * the new one supersedes (same inputs and parameters), are removed. */
static int db_put(lua_State *L) {
  cache_db *c = check_db(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  static const char *const all[] = {"key",    "map_index", "created", "expires",
                                    "run_id", "state",     "message", "result",
                                    "inputs", "parameters"};
  static const char *const stale[] = {"key", "map_index", "created"};
  static const char *const same[] = {"key", "map_index", "inputs", "parameters"};
  if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return db_fail(L, c->db);
  if (run_with(c, L, 2, ST_EXPIRED,
               "DELETE FROM cache WHERE key = ?1 AND map_index IS ?2 AND expires <= ?3",
               stale, 3) != 0 ||
      run_with(c, L, 2, ST_SUPERSEDED,
               "DELETE FROM cache WHERE key = ?1 AND map_index IS ?2 AND inputs IS ?3"
               " AND parameters IS ?4",
               same, 4) != 0 ||
      run_with(c, L, 2, ST_INSERT,
               "INSERT INTO cache (" COLUMNS
               ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
               all, 10) != 0 ||
      sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    int n = db_fail(L, c->db);
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return n;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* db:list() -> every entry, oldest first */
static int db_list(lua_State *L) {
  cache_db *c = check_db(L);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT " COLUMNS " FROM cache ORDER BY entry", -1, &st,
                         NULL) != SQLITE_OK)
    return db_fail(L, c->db);
  return push_rows(L, c->db, st, 0);
}

/* db:clear([key]) -> how many entries were removed */
static int db_clear(lua_State *L) {
  cache_db *c = check_db(L);
  sqlite3_stmt *st;
  const char *sql =
      lua_isnoneornil(L, 2) ? "DELETE FROM cache" : "DELETE FROM cache WHERE key = ?1";
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
    return db_fail(L, c->db);
  if (!lua_isnoneornil(L, 2)) bind_text(st, 1, L, 2);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return db_fail(L, c->db);
  lua_pushinteger(L, sqlite3_changes(c->db));
  return 1;
}

static int db_close(lua_State *L) {
  cache_db *c = luaL_checkudata(L, 1, CACHE_DB_MT);
  for (int k = 0; k < NSTMT; k++) {
    sqlite3_finalize(c->st[k]); /* NULL is fine */
    c->st[k] = NULL;
  }
  if (c->db) sqlite3_close(c->db);
  c->db = NULL;
  return 0;
}

void lf_open_cache(lua_State *L) {
  static const luaL_Reg methods[] = {{"get", db_get},     {"put", db_put},
                                     {"list", db_list},   {"clear", db_clear},
                                     {"close", db_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, CACHE_DB_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, db_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg core_functions[] = {
      {"cache_db", cache_db_open}, {"cache_hooks", cache_hooks},
      {"task_cache", task_cache},  {"cached_state", cached_state},
      {"cache_now", cache_now},    {NULL, NULL}};
  luaL_setfuncs(L, core_functions, 0);
}
