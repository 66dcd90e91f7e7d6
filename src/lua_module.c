/* luaopen_luaflow: the C core plus the embedded Lua modules, for the CLI and
 * for `require("luaflow")` from plain lua5.4. */
#include <stdatomic.h>
#include <string.h>
#include <dlfcn.h>
#include <pthread.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "graph.h"
#include "lua_interrupt.h"
#include "log.h"
#include "lua_core.h"
#include "lua_executors.h"
#include "lua_http.h"
#include "lua_json.h"
#include "lua_sources.h"
#include "redact.h"

LUAFLOW_API int luaopen_luaflow(lua_State *L);
LUAFLOW_API int luaopen_luaflow_store(lua_State *L);

static const lf_lua_source *find_source(const char *module) {
  for (const lf_lua_source *s = lf_lua_sources; s->module; s++)
    if (strcmp(s->module, module) == 0) return s;
  return NULL;
}

/* Chunk names start with "=luaflow" so errors can skip our own frames. */
static int load_embedded(lua_State *L, const lf_lua_source *src) {
  char chunk[128];
  const char *base = strstr(src->path, "luaflow/");
  snprintf(chunk, sizeof chunk, "=%s", base ? base : src->path);
  return luaL_loadbuffer(L, src->source, src->len, chunk);
}

static int preload_loader(lua_State *L) {
  const lf_lua_source *src = lua_touserdata(L, lua_upvalueindex(1));
  if (load_embedded(L, src) != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

static int core_log(lua_State *L) {
  int level = lf_log_parse_level(luaL_checkstring(L, 1));
  size_t len;
  const char *logger = luaL_checkstring(L, 2);
  const char *msg = luaL_checklstring(L, 3, &len);
  lf_log_write(level < 0 ? LF_LOG_INFO : level, logger, msg, len);
  return 0;
}

/* core.log_flush(): the log lines buffered so far go out (before anything
 * else is written to stderr). */
static int core_log_flush(lua_State *L) {
  (void)L;
  lf_log_flush();
  return 0;
}

static int core_set_log_level(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int level = lf_log_parse_level(name);
  if (level < 0) return lf_raise(L, "unknown log level '%s'", name);
  if (lf_log_level != level) lf_log_level = level; /* a worker's state sets the same */
  return 0;
}

/* core.set_default_log_level(name): the level LUAFLOW_LOG_LEVEL gives, once
 * a process: a worker's Lua state loading luaflow later must not undo a
 * --log-level or luaflow.log.set_level given since. */
static int core_set_default_log_level(lua_State *L) {
  static atomic_flag applied = ATOMIC_FLAG_INIT;
  if (atomic_flag_test_and_set(&applied)) return 0;
  return core_set_log_level(L);
}

static int core_log_level(lua_State *L) {
  lua_pushstring(L, lf_log_level_name(lf_log_level));
  return 1;
}

static int core_raise(lua_State *L) {
  return lf_raise(L, "%s", luaL_checkstring(L, 1));
}

static int core_is_state(lua_State *L) {
  lua_pushboolean(L, lf_test_state(L, 1) != NULL);
  return 1;
}

static int core_signal_of(lua_State *L) {
  lua_pushinteger(L, lf_signal_of(L, 1));
  return 1;
}

/* core.cpu_time(): user + system CPU seconds of this process (getrusage). */
static int core_cpu_time(lua_State *L) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  lua_pushnumber(L, (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                        (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
  return 1;
}

static int core_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.add_secret(value) -> true when it will be redacted (long enough).
 * Raises when it cannot be hidden for lack of memory: it must not be used. */
static int core_add_secret(lua_State *L) {
  size_t len;
  const char *v = luaL_checklstring(L, 1, &len);
  int rc = lf_redact_add(v, len);
  if (rc < 0) return luaL_error(L, "not enough memory to hide a secret");
  lua_pushboolean(L, rc);
  return 1;
}

/* core.redact(text) -> text with every registered secret replaced by ****. */
static int core_redact(lua_State *L) {
  size_t len, out_len;
  const char *text = luaL_checklstring(L, 1, &len);
  int allocated;
  char *r = lf_redact(text, len, &out_len, &allocated);
  if (!allocated) {
    lua_settop(L, 1);
    return 1;
  }
  lua_pushlstring(L, r, out_len);
  free(r);
  return 1;
}

/* core.file_mode(path) -> permission bits, or nil, message. */
static int core_file_mode(lua_State *L) {
  struct stat st;
  if (stat(luaL_checkstring(L, 1), &st) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* core.realpath(path) -> the canonical absolute path, or nil. */
static int core_realpath(lua_State *L) {
  char *p = realpath(luaL_checkstring(L, 1), NULL);
  if (!p) return 0;
  lua_pushstring(L, p);
  free(p);
  return 1;
}

/* core.mem() -> live bytes, peak bytes of the process when the benchmark's
 * counting malloc (bench/memcount.c) is preloaded, else nothing.
 * core.mem(true) also restarts the peak from now. */
static int core_mem(lua_State *L) {
  long long (*live)(void) = (long long (*)(void))dlsym(RTLD_DEFAULT, "lf_memcount_live");
  long long (*peak)(void) = (long long (*)(void))dlsym(RTLD_DEFAULT, "lf_memcount_peak");
  void (*reset)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "lf_memcount_reset_peak");
  if (!live || !peak || !reset) return 0;
  if (lua_toboolean(L, 1)) reset();
  lua_pushinteger(L, live());
  lua_pushinteger(L, peak());
  return 2;
}

static void open_core(lua_State *L) {
  static const luaL_Reg fns[] = {{"log", core_log},
                                 {"log_flush", core_log_flush},
                                 {"set_log_level", core_set_log_level},
                                 {"log_level", core_log_level},
                                 {"set_default_log_level", core_set_default_log_level},
                                 {"raise", core_raise},
                                 {"is_state", core_is_state},
                                 {"signal_of", core_signal_of},
                                 {"cpu_time", core_cpu_time},
                                 {"mem", core_mem},
                                 {"add_secret", core_add_secret},
                                 {"redact", core_redact},
                                 {"file_mode", core_file_mode},
                                 {"realpath", core_realpath},
                                 {"isatty", core_isatty},
                                 {NULL, NULL}};
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  lf_open_signals(L);
  lua_setfield(L, -2, "signals");
  lf_open_triggers(L);
  lf_open_run_tables(L);
  lf_open_task(L);
  lf_open_flow(L);
  lf_open_run(L);
  lf_open_executors(L);
  lf_open_map(L);
  lf_open_cache(L);
  lf_open_task_policy(L);
  lf_open_interrupt(L);
  lf_open_api(L);
  lf_open_result(L);
  lf_open_states(L);
  lua_setfield(L, -2, "states");
  lf_open_time(L);
  lua_setfield(L, -2, "time");
  luaopen_luaflow_json(L);
  lua_setfield(L, -2, "json");
  lua_pushcfunction(L, lf_json_encode_redacted);
  lua_setfield(L, -2, "json_redacted");
  lf_open_json_lines(L);
  lf_open_terminal(L);
  luaopen_luaflow_http(L);
  lua_setfield(L, -2, "http");
  lf_open_codec(L);
  lua_setfield(L, -2, "codec");
  lua_pushstring(L, LUAFLOW_VERSION);
  lua_setfield(L, -2, "version");
}

#if defined(__SANITIZE_THREAD__)
/* make check-threads preloads the TSan runtime into lua5.4 only: the shells
 * and tools the specs start must not inherit it (they are not built for it) */
static void forget_preload(void) {
  unsetenv("LD_PRELOAD");
}
#endif

int luaopen_luaflow(lua_State *L) {
#if defined(__SANITIZE_THREAD__)
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, forget_preload);
#endif
  lf_log_set_filter(lf_redact_filter);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  open_core(L);
  lua_setfield(L, -2, "luaflow.core");
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const lf_lua_source *s = lf_lua_sources; s->module; s++) {
    if (strcmp(s->module, "luaflow") == 0) continue;
    lua_pushlightuserdata(L, (void *)s);
    lua_pushcclosure(L, preload_loader, 1);
    lua_setfield(L, -2, s->module);
  }
  /* the run store (the CLI's runs commands): this copy of the library's,
   * not another one Lua's C searcher would load from luaflow.so */
  lua_pushcfunction(L, luaopen_luaflow_store);
  lua_setfield(L, -2, "luaflow.store");
  lua_pop(L, 1);
  const lf_lua_source *init = find_source("luaflow");
  if (!init || load_embedded(L, init) != LUA_OK)
    return luaL_error(L, "luaflow: no init module");
  lua_pushliteral(L, "luaflow");
  lua_call(L, 1, 1);
  return 1;
}
