-- `make install PREFIX=...` installs a working copy: the binary finds its own
-- Lua half wherever it is started from, the module loads in plain lua5.4, and
-- C programs and handler modules build against the installed tree with
-- pkg-config (luaflow.pc). DESTDIR stages the same tree; `make uninstall`
-- takes it away again.
local cli = require("cli")
local util = require("util")
local root = os.getenv("LUAFLOW_ROOT") or "."
local build = os.getenv("LUAFLOW_BUILD") or "build"
local sanitize = os.getenv("LUAFLOW_SANITIZE") and " -fsanitize=address,undefined" or ""

-- A shell command's output and exit code (0 or not), without the sanitizer
-- runtime check-mem preloads.
local function sh(cmd)
  local ok, out = util.sh(cmd)
  return out, ok and 0 or 1
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function make(target, vars)
  local words = {}
  for k, v in pairs(vars) do words[#words + 1] = k .. "=" .. cli.quote(v) end
  table.sort(words)
  return sh(("make -s -C %s %s BUILD=%s %s"):format(cli.quote(root), target, cli.quote(build),
                                                    table.concat(words, " ")))
end

-- The files under dir, relative to it, sorted.
local function files_under(dir)
  local out = sh(("cd %s && find . -type f | sort"):format(cli.quote(dir)))
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

-- The shell lines docs/reference.md gives after `marker`.
local reference = read(root .. "/docs/reference.md")
local function doc_line(marker, pattern)
  local at = assert(reference:find(marker, 1, true), marker)
  local block = assert(reference:match("```sh\n(.-)```", at), marker)
  return assert(block:match(pattern), marker)
end

describe("make install", function()
  local prefix

  setup(function()
    prefix = os.tmpname()
    os.remove(prefix)
    local out, code = make("install", { PREFIX = prefix })
    assert(code == 0, out)
  end)

  teardown(function()
    sh(("rm -rf '%s'"):format(prefix))
    cli.cleanup()
  end)

  it("installs a luaflow that runs a flow from any directory", function()
    local example = root .. "/examples/01_flow_state_handler.lua"
    local out, code = sh(("cd / && LUAFLOW_LOG_LEVEL=CRITICAL '%s/bin/luaflow' run '%s' 2>/dev/null")
                         :format(prefix, example))
    assert.are.equal(0, code)
    assert.are.equal(read(root .. "/examples/01_flow_state_handler.out"), out)
  end)

  it("installs the header, the library and the Lua module", function()
    assert.is_truthy(io.open(prefix .. "/include/luaflow.h"))
    assert.is_truthy(io.open(prefix .. "/lib/libluaflow.a"))
    local out, code = sh(("cd / && LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 -e 'print(require(\"luaflow\").version)'")
                         :format(prefix))
    assert.are.equal(0, code)
    assert.matches("^%d+%.%d+%.%d+", out)
  end)

  it("installs luaflow.pc naming the install prefix and the header's version", function()
    local pc = read(prefix .. "/lib/pkgconfig/luaflow.pc")
    assert.is_truthy(pc:find("prefix=" .. prefix .. "\n", 1, true), pc)
    local env = ("PKG_CONFIG_PATH=%s/lib/pkgconfig "):format(cli.quote(prefix))
    local version = sh(env .. "pkg-config --modversion luaflow")
    assert.are.equal(require("luaflow").version .. "\n", version)
    local cflags = sh(env .. "pkg-config --cflags luaflow")
    assert.is_truthy(cflags:find("-I" .. prefix .. "/include", 1, true), cflags)
    local libs = sh(env .. "pkg-config --libs luaflow")
    assert.is_truthy(libs:find("-L" .. prefix .. "/lib -lluaflow", 1, true), libs)
    assert.is_truthy(libs:find("-llua5.4", 1, true), libs)
  end)

  describe("with pkg-config, the lines docs/reference.md gives", function()
    local env
    before_each(function() env = ("export PKG_CONFIG_PATH=%s/lib/pkgconfig; "):format(cli.quote(prefix)) end)

    it("build a handler module that the installed luaflow uses", function()
      local dir = cli.tmpdir()
      local f = assert(io.open(dir .. "/handlers.c", "w"))
      f:write(read(root .. "/examples/c_handler/handlers.c"))
      f:close()
      local line = doc_line("Compile it with pkg-config", "(cc %-shared[^\n]+)")
                   :gsub("myhandlers", "handlers")
      local out, code = sh(("cd %s && %s%s"):format(cli.quote(dir), env, line))
      assert.are.equal(0, code, line .. "\n" .. out)
      local flow = cli.write_flow([[
local luaflow = require("luaflow")
local h = require("handlers")
local t = luaflow.Task{ name = "t", state_handlers = { h.refuse }, fn = function() return 1 end }
return luaflow.Flow{ name = "f", tasks = { t } }
]])
      local r = cli.run({ "run", flow, "--json", "-" },
                        { bin = prefix .. "/bin/luaflow", env = { LUA_CPATH = dir .. "/?.so;;" } })
      assert.are.equal(1, r.code, r.stderr)
      local run = require("luaflow").json.decode(r.stdout)
      assert.are.equal("Unexpected error while calling state handlers: the C handler refused",
                       run.tasks[1].message)
    end)

    it("link an embedding program that runs a flow", function()
      local dir = cli.tmpdir()
      local line = doc_line("Link it with pkg-config", "(cc %-o run_flow[^\n]+)")
                   :gsub("run_flow%.c", root .. "/examples/embed/run_flow.c")
      local out, code = sh(("cd %s && %s%s%s"):format(cli.quote(dir), env, line, sanitize))
      assert.are.equal(0, code, line .. "\n" .. out)
      local r = cli.run({ root .. "/examples/05_special_failure.lua" }, { bin = dir .. "/run_flow" })
      assert.are.equal(1, r.code, r.stderr)
      assert.is_truthy(r.stdout:find('task mission_critical_task: Failed("a equaled b!")', 1, true), r.stdout)
    end)
  end)
end)

describe("make install DESTDIR=... and make uninstall", function()
  after_each(cli.cleanup)

  it("stage the tree under DESTDIR for the prefix given, and take every file away again", function()
    local stage = cli.tmpdir()
    local vars = { PREFIX = "/opt/luaflow-test", DESTDIR = stage }
    local out, code = make("install", vars)
    assert.are.equal(0, code, out)
    local installed = files_under(stage)
    for _, path in ipairs({ "bin/luaflow", "lib/libluaflow.a", "include/luaflow.h", "lib/lua/5.4/luaflow.so",
                            "lib/pkgconfig/luaflow.pc", "share/man/man1/luaflow.1" }) do
      assert.is_true(util.has(table.concat(installed, "\n"), "./opt/luaflow-test/" .. path), path)
    end
    -- the pkg-config file names the final prefix, not the staging directory
    local pc = read(stage .. "/opt/luaflow-test/lib/pkgconfig/luaflow.pc")
    assert.is_truthy(pc:find("prefix=/opt/luaflow-test\n", 1, true), pc)
    assert.is_nil(pc:find(stage, 1, true), pc)
    out, code = make("uninstall", vars)
    assert.are.equal(0, code, out)
    assert.are.same({}, files_under(stage))
  end)
end)
