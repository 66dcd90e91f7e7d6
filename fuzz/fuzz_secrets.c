/* libFuzzer harness: the secrets file (luaflow.secrets, through the whole
 * luaflow module). The input is the file's content, written with mode 0600.
 * Property: the file is either refused with a message or accepted; when it
 * is accepted, it is a JSON object and every string value of it is what
 * secrets.get returns for its name (numbers and tables too, decoded). Nothing
 * crashes, leaks or trips a sanitizer. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_luaflow(lua_State *L);

static lua_State *L;
static char path[4096];

static const char CHECK[] =
    "local path = ...\n"
    "local secrets = require('luaflow.secrets')\n"
    "local json = require('luaflow').json\n"
    "local ok, why = secrets.use_file(path)\n"
    "if not ok then assert(type(why) == 'string' and #why > 0, 'refused without a "
    "message') "
    "return end\n"
    "local f = assert(io.open(path, 'rb')); local text = f:read('a'); f:close()\n"
    "local dok, doc = pcall(json.decode, text)\n"
    "local got_ok, got = pcall(secrets.get, 'name')\n"
    "if not (dok and type(doc) == 'table') then\n"
    "  assert(not got_ok, 'a file that is not a JSON object gave a secret')\n"
    "  return\n"
    "end\n"
    "if doc.name == nil then assert(not got_ok, 'a missing name was found') return end\n"
    "assert(got_ok, 'a present name was not found: ' .. tostring(got))\n"
    "if type(doc.name) == 'string' and not doc.name:match('^%s*[%[{\"%d%-tfn]') then\n"
    "  assert(got == doc.name, 'the value differs')\n"
    "end\n";

static void remove_file(void) {
  unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/luaflow-fuzz-secrets-%ld.json",
           tmp && *tmp ? tmp : "/tmp", (long)getpid());
  atexit(remove_file);
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "luaflow", luaopen_luaflow, 0);
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, CHECK, sizeof CHECK - 1, "=check") != LUA_OK) abort();
  lua_setglobal(L, "check");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
  close(fd);
  /* a fresh module table each time: the file is read once per process */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  lua_setfield(L, -2, "luaflow.secrets");
  lua_pop(L, 1);
  lua_getglobal(L, "check");
  lua_pushstring(L, path);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "property failed: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
