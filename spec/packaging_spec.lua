-- What users of C and Lua tools expect: a luaflow(1) man page and bash
-- completion installed by `make install`, LuaLS annotations that cover every
-- public function, and a rockspec that `luarocks make` builds (no network).
local cli = require("cli")
local util = require("util")
local luaflow = require("luaflow")
local has = util.has

local root = cli.root
local build = os.getenv("LUAFLOW_BUILD") or "build"

-- System tools (bash, groff, luarocks) run without the sanitizer runtime
-- that check-mem preloads; luaflow's own binaries carry theirs.
local function sh(cmd)
  local p = io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local CLI = require("luaflow.cli")

describe("make install", function()
  local prefix

  setup(function()
    prefix = cli.tmpdir()
    local ok, out = sh(("make -s -C %s install BUILD=%s PREFIX=%s"):format(cli.quote(root), cli.quote(build),
                                                                           cli.quote(prefix)))
    assert(ok, out)
  end)

  teardown(cli.cleanup)

  it("installs a man page that man renders without a warning, naming every option", function()
    local page = prefix .. "/share/man/man1/luaflow.1"
    assert.is_truthy(util.read(page), page)
    local ok, out = sh(("LC_ALL=C.UTF-8 MANWIDTH=80 groff -man -Tutf8 -ww %s"):format(cli.quote(page)))
    assert.is_true(ok, out)
    assert.is_nil(out:find("warning"), out)
    local text = out:gsub("\27%[[%d;]*m", ""):gsub(".\8", "")
    assert.is_true(has(text, "luaflow - run, check and draw workflows written in Lua"), text)
    for command, options in pairs(CLI.OPTIONS) do
      local argument = CLI.ARGUMENT[command] -- FILE when the command needs one
      assert.is_true(has(text, command .. (argument and argument[2] and (" " .. argument[1]) or "")), command)
      for option in pairs(options) do assert.is_true(has(text, "--" .. option), "--" .. option) end
    end
    assert.is_true(has(text, "EXIT STATUS"))
  end)

  it("installs the LuaLS annotations, bash completion and the reference", function()
    assert.are.equal(util.read(root .. "/docs/reference.md"), util.read(prefix .. "/share/doc/luaflow/reference.md"))
    assert.are.equal(util.read(root .. "/types/luaflow.lua"), util.read(prefix .. "/share/luaflow/types/luaflow.lua"))
    assert.are.equal(util.read(root .. "/completion/luaflow.bash"),
                     util.read(prefix .. "/share/bash-completion/completions/luaflow"))
  end)
end)

describe("bash completion", function()
  after_each(cli.cleanup)

  local script = root .. "/completion/luaflow.bash"

  -- The words bash would offer after the command line `words` (the last word
  -- is the one being completed), run in `dir`.
  local function complete(words, dir)
    local quoted = {}
    for i, w in ipairs(words) do quoted[i] = cli.quote(w) end
    local cmd = ("cd %s && bash -c %s"):format(cli.quote(dir or "/"), cli.quote(
      ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _luaflow; printf '%%s\\n' \"${COMPREPLY[@]}\""):format(
        cli.quote(script), table.concat(quoted, " "), #words - 1)))
    local ok, out = sh(cmd)
    assert(ok, out)
    local list = {}
    for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
    table.sort(list)
    return list
  end

  it("is registered for the luaflow command", function()
    local ok, out = sh(("bash -c %s"):format(cli.quote(("source %s; complete -p luaflow"):format(cli.quote(script)))))
    assert.is_true(ok, out)
    assert.matches("complete %-F _luaflow luaflow", out)
  end)

  it("completes the commands and the sub-commands of runs, notify and cache", function()
    assert.are.same({ "--help", "--version", "cache", "check", "graph", "help", "notify", "run", "runs" },
                    complete({ "luaflow", "" }))
    assert.are.same({ "check" }, complete({ "luaflow", "ch" }))
    assert.are.same({ "cache", "check", "graph", "notify", "run", "runs" }, complete({ "luaflow", "help", "" }))
    assert.are.same({ "clear", "list" }, complete({ "luaflow", "cache", "" }))
    assert.are.same({ "list", "logs", "prune", "show" }, complete({ "luaflow", "runs", "" }))
    assert.are.same({ "show" }, complete({ "luaflow", "help", "runs", "s" }))
    assert.are.same({ "last" }, complete({ "luaflow", "runs", "show", "" }))
    assert.are.same({ "test" }, complete({ "luaflow", "notify", "" }))
  end)

  -- The words of a command ("runs show") on a command line.
  local function words(command, ...)
    local list = { "luaflow" }
    for w in command:gmatch("%S+") do list[#list + 1] = w end
    for _, w in ipairs({ ... }) do list[#list + 1] = w end
    return list
  end

  it("offers exactly the options each command accepts", function()
    for command, options in pairs(CLI.OPTIONS) do
      local expected = { "--help" }
      for option in pairs(options) do expected[#expected + 1] = "--" .. option end
      table.sort(expected)
      assert.are.same(expected, complete(words(command, "flow.lua", "--")), command)
    end
  end)

  it("completes the values of the run store's and graph's options", function()
    assert.are.same({ "dot", "png", "svg" }, complete({ "luaflow", "graph", "f.lua", "--format", "" }))
    assert.are.same({ "Failed" }, complete({ "luaflow", "runs", "--state", "Fa" }))
    assert.are.same({ "last" }, complete({ "luaflow", "graph", "--run", "" }))
    assert.are.same({ "--transitions" }, complete({ "luaflow", "runs", "show", "last", "--t" }))
  end)

  it("completes flow files, log levels, and the flow and Parameter names a file mentions", function()
    local dir = cli.tmpdir()
    cli.write_flow([[
local luaflow = require("luaflow")
local day = luaflow.Parameter("day")
local a = luaflow.Flow("nightly", function() end)
local b = luaflow.Flow{name = "weekly", tasks = {luaflow.Task{name = "report"}, luaflow.task("mail", print)}}
]], dir, "etl.lua")
    cli.write_flow("", dir, "notes.txt")
    assert.are.same({ "etl.lua" }, complete({ "luaflow", "run", "" }, dir))
    assert.are.same({ "nightly", "weekly" }, complete({ "luaflow", "run", "etl.lua", "--flow", "" }, dir))
    assert.are.same({ "weekly" }, complete({ "luaflow", "check", "--log-level", "INFO", "etl.lua", "--flow", "w" }, dir))
    assert.are.same({ "day=" }, complete({ "luaflow", "run", "etl.lua", "--param", "" }, dir))
    assert.are.same({ "mail", "report" }, complete({ "luaflow", "run", "etl.lua", "--resume", "" }, dir))
    assert.are.same({ "warning" }, complete({ "luaflow", "run", "etl.lua", "--log-level", "w" }, dir))
    assert.are.same({ "WARNING" }, complete({ "luaflow", "run", "etl.lua", "--log-level", "W" }, dir))
    assert.are.same({ "mail", "report" }, complete({ "luaflow", "notify", "test", "etl.lua", "--task", "" }, dir))
    assert.are.same({ "weekly" }, complete({ "luaflow", "notify", "test", "etl.lua", "--flow", "w" }, dir))
    assert.are.same({ "TimedOut", "TriggerFailed" }, complete({ "luaflow", "notify", "test", "etl.lua", "--state", "T" }, dir))
    assert.are.same({ "etl.lua" }, complete({ "luaflow", "notify", "test", "" }, dir))
  end)
end)

describe("LuaLS annotations (types/luaflow.lua)", function()
  local path = root .. "/types/luaflow.lua"
  local text = assert(util.read(path))

  it("is a ---@meta file of valid Lua", function()
    assert.matches("^%-%-%-@meta luaflow\n", text)
    assert.is_truthy(loadfile(path))
  end)

  it("annotates every public function of the module", function()
    local missing = {}
    for _, p in ipairs(util.public_functions(luaflow, "luaflow")) do
      local parent, name = p:match("^(.*)%.([^.]+)$")
      local short = parent:match("([^.]+)$")
      local annotated = has(text, "function " .. p .. "(")
        or has(text, "\n" .. short .. "." .. name .. " = nil")        -- a typed callable value
        or has(text, "---@field " .. name .. " luaflow.")               -- a field of a class
      if not annotated then missing[#missing + 1] = p end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("annotates every method of states, tasks, flows, references, responses, secrets, loggers and times", function()
    local core = require("luaflow.core")
    local function upvalue(fn, wanted)
      for i = 1, 60 do
        local name, value = debug.getupvalue(fn, i)
        if name == nil then return nil end
        if name == wanted or wanted == nil then return value end
      end
    end
    local classes = {
      State = upvalue(getmetatable(luaflow.states.Failed()).__index),
      Task = upvalue(core.task_mt.__index, "task_methods"),
      Flow = upvalue(core.flow_mt.__index, "flow_methods"),
      Response = luaflow.http.Response,
      Time = getmetatable(luaflow.time.now()).__index,
      Secret = getmetatable(luaflow.Secret("x")).__index,
      Logger = luaflow.context.logger,
    }
    local ref
    luaflow.Flow("annotations", function() ref = luaflow.task(print)() end)
    classes.TaskResult = upvalue(getmetatable(ref).__index, "ref_methods")
    local missing = {}
    for class, methods in pairs(classes) do
      assert.is_table(methods, class)
      for name, v in pairs(methods) do
        if type(v) == "function" and not name:match("^_") then
          if not has(text, ("function %s:%s("):format(class, name)) then missing[#missing + 1] = class .. ":" .. name end
        end
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("annotates every option of every function that takes options", function()
    local classes = { Task = "TaskOptions", task = "TaskOptions", Flow = "FlowOptions", ["flow:run"] = "RunOptions",
                      Parameter = "ParameterOptions", some_successful = "TriggerBounds", some_failed = "TriggerBounds",
                      callback_factory = "CallbackOptions" }
    for what, spec in pairs(require("luaflow.options").specs) do
      local class = classes[what] or "NotifierOptions"
      local body = assert(text:match("%-%-%-@class luaflow%." .. class .. "\n(.-)\n[^%-]"), class)
      for option in pairs(spec) do
        assert.is_true(has(body, "---@field " .. option .. "? ") or has(body, "---@field " .. option .. " "),
                       what .. " " .. option)
      end
    end
  end)
end)

describe("the rockspec", function()
  after_each(cli.cleanup)

  local rockspec = ("luaflow-%s-1.rockspec"):format(luaflow.version)

  it("is named for this version and passes luarocks lint", function()
    assert.is_truthy(util.read(root .. "/" .. rockspec), rockspec)
    local ok, out = sh(("cd %s && HOME=%s luarocks --lua-version=5.4 lint %s"):format(
      cli.quote(root), cli.quote(cli.tmpdir()), rockspec))
    assert.is_true(ok, out)
  end)

  it("builds the Lua module with luarocks make into a fresh tree, which then runs a flow", function()
    local home = cli.tmpdir()
    local src = home .. "/src"
    local tree = home .. "/tree"
    -- a copy of the sources, so the rock's build stays out of the working tree
    local ok, out = sh(("mkdir -p %s && cd %s && cp -r Makefile %s include src lua tools scripts %s"):format(
      cli.quote(src), cli.quote(root), rockspec, cli.quote(src)))
    assert.is_true(ok, out)
    ok, out = sh(("cd %s && env -u LUAFLOW_BUILD HOME=%s XDG_CACHE_HOME=%s/cache MAKEFLAGS=-j2 "
                  .. "luarocks --lua-version=5.4 make --tree=%s %s"):format(
      cli.quote(src), cli.quote(home), cli.quote(home), cli.quote(tree), rockspec))
    assert.is_true(ok, out)
    assert.is_true(has(out, "luaflow " .. luaflow.version .. "-1 is now installed"), out)
    local script = cli.write_flow([[
local luaflow = require("luaflow")
local state = luaflow.Flow("rock", function() luaflow.task("t", function() return 42 end)() end):run()
io.write(luaflow.version, " ", tostring(state), "\n")
]])
    ok, out = sh(("cd / && LUAFLOW_LOG_LEVEL=CRITICAL LUA_CPATH=%s lua5.4 %s"):format(
      cli.quote(tree .. "/lib/lua/5.4/?.so"), cli.quote(script)))
    assert.is_true(ok, out)
    assert.are.equal(luaflow.version .. ' Success("All reference tasks succeeded.")\n', out)
  end)
end)
