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

-- The public functions luaflow.h declares: the module table's list and the
-- linked-only LUAFLOW_API declarations.
local function header_text()
  local f = assert(io.open(root .. "/include/luaflow.h"))
  local text = f:read("a")
  f:close()
  return text
end

local function public_names()
  local names = {}
  for name in header_text():gmatch("XX%([RV], [^,]+, ([%w_]+),") do names["lf_" .. name] = true end
  for name in header_text():gmatch("LUAFLOW_API [^;(]-(lf_[%w_]+)%(") do names[name] = true end
  return names
end

local sh = require("util").sh

describe("the public header, documented", function()
  it("declares the module table's functions and the engine's, each after a comment saying what it does", function()
    local lines = {}
    for line in header_text():gmatch("[^\n]*") do lines[#lines + 1] = line end
    local undocumented, seen = {}, 0
    for i, line in ipairs(lines) do
      local name = line:match("^  XX%([RV], [^,]+, ([%w_]+),") or line:match("^LUAFLOW_API [^;(]-(lf_[%w_]+)%(")
      if name then
        seen = seen + 1
        local j = i - 1 -- a group of declarations shares the comment above it
        while lines[j]:match("^LUAFLOW_API ") do j = j - 1 end
        if not lines[j]:match("%*/%s*\\?$") then undocumented[#undocumented + 1] = name end
      end
    end
    assert.is_true(seen >= 30, "declarations found: " .. seen)
    assert.are.same({}, undocumented)
  end)

  it("gives the version as numbers and as the string luaflow reports", function()
    local path = os.tmpname() .. ".c"
    local f = assert(io.open(path, "w"))
    f:write([[
#include <stdio.h>
#include <luaflow.h>
#if LUAFLOW_VERSION_NUM != LUAFLOW_VERSION_MAJOR * 10000 + LUAFLOW_VERSION_MINOR * 100 + LUAFLOW_VERSION_PATCH
#error LUAFLOW_VERSION_NUM
#endif
int main(void) {
  printf("%d %d %d %s\n", LUAFLOW_VERSION_MAJOR, LUAFLOW_VERSION_MINOR, LUAFLOW_VERSION_PATCH, LUAFLOW_VERSION);
  return 0;
}
]])
    f:close()
    local exe = os.tmpname()
    local ok, out = sh(("cc -Wall -Wextra -Werror -I'%s/include' -o '%s' '%s' && '%s'"):format(root, exe, path, exe))
    os.remove(path)
    os.remove(exe)
    assert.is_true(ok, out)
    local major, minor, patch, text = out:match("^(%d+) (%d+) (%d+) (%S+)\n$")
    assert.are.equal(major .. "." .. minor .. "." .. patch, text)
    assert.are.equal(require("luaflow").version, text)
  end)

  it("is as clang-format writes it", function()
    if not sh("command -v clang-format >/dev/null") then
      return pending("clang-format is not installed")
    end
    local ok, out = sh(("cd '%s' && clang-format include/luaflow.h | diff -u include/luaflow.h -"):format(root))
    assert.is_true(ok, out)
  end)
end)

describe("the library exports the public API only", function()
  local build = root .. "/" .. (os.getenv("LUAFLOW_BUILD") or "build")

  -- The defined global names nm lists: name -> true.
  local function exported(cmd)
    local ok, out = sh(cmd)
    assert(ok, out)
    local names = {}
    for name in out:gmatch("%x+ [TDRB] ([%w_.@]+)\n") do names[name] = true end
    return names
  end

  local function check(names)
    local public, stray, missing = public_names(), {}, {}
    for name in pairs(names) do
      if not public[name] and not name:match("^luaopen_luaflow") then stray[#stray + 1] = name end
    end
    for name in pairs(public) do
      if not names[name] then missing[#missing + 1] = name end
    end
    table.sort(stray)
    table.sort(missing)
    assert.are.same({}, stray)
    assert.are.same({}, missing)
    assert.is_true(names.luaopen_luaflow)
  end

  it("luaflow.so: the lf_ functions of luaflow.h and luaopen_luaflow*, nothing else", function()
    check(exported(("nm -D --defined-only '%s/luaflow.so'"):format(build)))
  end)

  it("libluaflow.a: the same names; its internal functions are local to it", function()
    check(exported(("nm -g --defined-only '%s/libluaflow.a'"):format(build)))
    local _, out = sh(("nm '%s/libluaflow.a'"):format(build))
    assert.is_truthy(out:find(" t lf_state_newl\n", 1, true), "an internal function, kept local")
  end)
end)
