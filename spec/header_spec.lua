-- include/luaflow.h compiles as C and as C++, linked or as a module
-- (LUAFLOW_MODULE), with the flags the project builds with.
local root = os.getenv("LUAFLOW_ROOT") or "."

local function compile(compiler, lang, source, defines)
  local path = os.tmpname() .. (lang == "c" and ".c" or ".cpp")
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  local flags = "-Wall -Wextra -Werror -fsyntax-only"
  -- the compiler runs without the sanitizer runtime the specs may preload
  local cmd = ("env -u LD_PRELOAD -u ASAN_OPTIONS %s -x %s %s %s -I'%s/include' $(pkg-config --cflags lua5.4) '%s' 2>&1")
    :format(compiler, lang == "c" and "c" or "c++", flags, defines or "", root, path)
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return ok, out
end

local HANDLER = [[
#include <luaflow.h>
static int h(const lf_object *obj, const lf_state *old_state, const lf_state *new_state,
             lf_state **out, void *ud) {
  (void)obj; (void)old_state; (void)ud;
  lf_value v;
  if (lf_state_is(new_state, LF_FAILED) && lf_state_field(new_state, "flag", &v) == LF_FIELD_BOOL) {
    *out = lf_state_new(LF_SKIPPED, "skipped");
    return LF_REPLACE;
  }
  return LF_KEEP;
}
lf_handler_fn use(void);
lf_handler_fn use(void) { return h; }
]]

describe("include/luaflow.h", function()
  for _, case in ipairs({ { "gcc", "c" }, { "g++", "c++" } }) do
    local compiler, lang = case[1], case[2]
    it("compiles as " .. lang .. " for a linked program", function()
      local ok, out = compile(compiler, lang, HANDLER .. [[
int run(const char *path);
int run(const char *path) {
  lf_engine *e = lf_engine_new();
  int code = lf_engine_run_file(e, path);
  lf_engine_free(e);
  return code;
}
]])
      assert.is_true(ok, out)
    end)

    it("compiles as " .. lang .. " for a module (LUAFLOW_MODULE)", function()
      local entry = ([[
extern "C" int luaopen_mod(lua_State *L);
int luaopen_mod(lua_State *L) {
  lf_module_init(L);
  lf_handler_push(L, h, NULL, NULL);
  return 1;
}
]]):gsub('extern "C" ', lang == "c" and "" or 'extern "C" ')
      local ok, out = compile(compiler, lang, "#define LUAFLOW_MODULE\n" .. HANDLER .. entry)
      assert.is_true(ok, out)
    end)
  end
end)
