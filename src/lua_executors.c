/* The executor a flow:run names (luaflow.executors, lua/luaflow/executors.lua):
 * its table read into the executor the run uses. */
#include <string.h>
#include <unistd.h>
#include "lua_codec.h"
#include "lua_executors.h"

/* core.cpu_count(): the CPUs online (the default number of workers). */
static int cpu_count(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

void lf_open_executors(lua_State *L) {
  lua_pushcfunction(L, cpu_count);
  lua_setfield(L, -2, "cpu_count");
}

/* The executor of the table at idx (nil: local), or local itself. The
 * workers' states get this state's package.path and cpath. NULL when out of
 * memory. Never raises. */
lf_executor *lf_lua_executor_new(lua_State *L, int idx, lf_lua_host *h,
                                 lf_executor *local) {
  if (!lua_istable(L, idx)) return local; /* (flow:run checked it) */
  lua_getfield(L, idx, "kind");
  const char *kind = lua_tostring(L, -1);
  lua_getfield(L, idx, "workers");
  int workers = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  if (!kind || strcmp(kind, "local") == 0) return local;
  if (workers < 1) workers = 1;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_getfield(L, -2, "cpath");
  const char *path = lua_tostring(L, -2), *cpath = lua_tostring(L, -1);
  lf_executor *ex = strcmp(kind, "processes") == 0
                        ? lf_processes_executor_new(h, workers, path, cpath)
                        : lf_threads_executor_new(h, workers, path, cpath);
  lua_pop(L, 3);
  return ex;
}

int lf_executor_names_fresh(lf_lua_host *h, int *checked) {
  if (!*checked) lf_codec_names_check(h->L);
  *checked = 1;
  return 1;
}
