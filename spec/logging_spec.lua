-- Runs that read well: luaflow.log and luaflow.context.logger name the task
-- they are called from, retries are visible at INFO, every TaskRunner line
-- names its task, a handler's bad return value points at the handler, and
-- levels are coloured on a terminal only.
local cli = require("cli")
local util = require("util")
local has = util.has

local STAMP = "%[%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d%+0000%]"

local function run(src, args, env)
  local path = cli.write_flow(src)
  local argv = { "run", path }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local e = { LUAFLOW_LOG_LEVEL = "INFO" }
  for k, v in pairs(env or {}) do e[k] = v end
  local r = cli.run(argv, { env = e })
  r.path = path
  return r
end

-- The log lines of a text whose logger is `logger`, without their stamps.
local function lines_of(text, logger)
  local list = {}
  for _, line in ipairs(cli.lines(text)) do
    local rest = line:match("^" .. STAMP .. " (.*)$")
    if rest and (not logger or has(rest, " - " .. logger .. " | ")) then list[#list + 1] = rest end
  end
  return list
end

describe("logging from flows and tasks", function()
  after_each(cli.cleanup)

  it("luaflow.log.* inside a task names the task, with a format", function()
    local r = run([[
local luaflow = require("luaflow")
local extract = luaflow.task(function()
  luaflow.log.info("loaded %d rows", 3)
  luaflow.log.warning("slow source")
  luaflow.log.error("bad row %s", "r7")
  luaflow.log.debug("not shown at INFO")
  return 3
end)
return luaflow.Flow("etl", function() extract() end)
]])
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "INFO - luaflow.extract | loaded 3 rows",
                      "WARNING - luaflow.extract | slow source",
                      "ERROR - luaflow.extract | bad row r7" }, lines_of(r.stderr, "luaflow.extract"))
  end)

  it("luaflow.context.logger works with : and ., and is named after where it is used", function()
    local r = run([[
local luaflow = require("luaflow")
luaflow.context.logger:info("top level")
local load = luaflow.task(function()
  local logger = luaflow.context.logger
  logger:info("method form")
  logger.info("field form")
  luaflow.context.logger:debug("debug %d", 1)
end)
local function flow_handler(flow, old, new)
  if new:is_running() then luaflow.log.info("flow handler") end
end
return luaflow.Flow({name = "sync", state_handlers = {flow_handler}}, function() load() end)
]], { "--log-level", "DEBUG" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "INFO - luaflow | top level" }, lines_of(r.stderr, "luaflow"))
    assert.are.same({ "INFO - luaflow.load | method form", "INFO - luaflow.load | field form",
                      "DEBUG - luaflow.load | debug 1" }, lines_of(r.stderr, "luaflow.load"))
    assert.are.same({ "INFO - luaflow.sync | flow handler" }, lines_of(r.stderr, "luaflow.sync"))
  end)

  it("a log line from a task is redacted like every other", function()
    local r = run([[
local luaflow = require("luaflow")
local t = luaflow.task(function() luaflow.log.info("token " .. luaflow.secrets.get("TOKEN")) end)
return luaflow.Flow("redacted", function() t() end)
]], {}, { LUAFLOW_SECRET_TOKEN = "hunter2-long" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "INFO - luaflow.t | token ****" }, lines_of(r.stderr, "luaflow.t"))
  end)
end)

describe("TaskRunner lines", function()
  after_each(cli.cleanup)

  it("a failed attempt that will be retried: which attempt of how many, the error, when the next is due", function()
    local r = run([[
local luaflow = require("luaflow")
local n = 0
local flaky = luaflow.task{name = "flaky", max_retries = 2, retry_delay = 0.3}(function()
  n = n + 1
  if n < 3 then error("source busy " .. n, 0) end
  return n
end)
return luaflow.Flow("retries", function() flaky() end)
]])
    assert.are.equal(0, r.code, r.stderr)
    local retries = {}
    for _, line in ipairs(cli.lines(r.stderr)) do
      local at, attempt, of, why, wait, due =
        line:match("^%[(.-)%] INFO %- luaflow%.TaskRunner | Task 'flaky': attempt (%d) of (%d) failed: (.-); "
                   .. "retrying in ([%d%.]+) s %(at (.-)%)$")
      if at then retries[#retries + 1] = { at = at, attempt = attempt, of = of, why = why, wait = wait, due = due } end
    end
    assert.are.equal(2, #retries, r.stderr)
    assert.are.same({ "1", "3", "source busy 1" }, { retries[1].attempt, retries[1].of, retries[1].why })
    assert.are.same({ "2", "3", "source busy 2" }, { retries[2].attempt, retries[2].of, retries[2].why })
    assert.are.equal("0.3", retries[1].wait)
    -- the due time is 0.3 s after the line's own time (same minute in practice)
    local function seconds(stamp)
      local h, m, s = stamp:match("(%d%d):(%d%d):(%d%d%.%d%d%d)")
      return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(s)
    end
    local gap = seconds(retries[1].due) - seconds(retries[1].at)
    assert.is_true(math.abs(gap - 0.3) < 0.05 or math.abs(gap - 0.3 + 86400) < 0.05, tostring(gap))
  end)

  it("every TaskRunner line names its task: starts, signals, errors, handler errors, retries, timeouts", function()
    local r = run([[
local luaflow = require("luaflow")
local signals = luaflow.signals
local a = luaflow.task{name = "fails_once", max_retries = 1, retry_delay = 0}(function()
  if luaflow.context.task_run_count == 1 then error(signals.FAIL("a equaled b!")) end
end)
local b = luaflow.task{name = "raises"}(function() error("plain") end)
local c = luaflow.task{name = "slow", timeout = 0.05}(function() while true do end end)
local d = luaflow.Task{name = "bad_handler", state_handlers = {function() error("handler broke", 0) end}}
local e = luaflow.task{name = "skips"}(function() error(signals.SKIP("nothing to do")) end)
return luaflow.Flow("many", function() a(); b(); c(); d(); e() end)
]], { "--log-level", "DEBUG" })
    assert.are.equal(1, r.code, r.stderr)
    local lines = lines_of(r.stderr, "luaflow.TaskRunner")
    assert.is_true(#lines >= 15, r.stderr)
    for _, line in ipairs(lines) do
      assert.matches("| Task '[%w_]+': ", line, 1)
    end
    local text = table.concat(lines, "\n")
    assert.is_true(has(text, "INFO - luaflow.TaskRunner | Task 'fails_once': FAIL signal raised: FAIL(\"a equaled b!\")"), text)
    assert.is_true(has(text, "INFO - luaflow.TaskRunner | Task 'skips': SKIP signal raised: SKIP(\"nothing to do\")"), text)
    assert.is_true(has(text, "ERROR - luaflow.TaskRunner | Task 'bad_handler': Unexpected error while calling state handlers: handler broke"), text)
    assert.is_true(has(text, "Task 'fails_once': attempt 1 of 2 failed: a equaled b!; retrying in 0 s"), text)
  end)

  it("a handler that returns a string: the ERROR line names the handler's file and line", function()
    local r = run([[
local luaflow = require("luaflow")

local function returns_text(task, old, new)
  return "Success"
end
local function fine(task, old, new) end

local t = luaflow.Task{name = "wrong_return", state_handlers = {fine, returns_text}}
local u = luaflow.Task{name = "alone", state_handlers = {returns_text}}
return luaflow.Flow{name = "handlers", tasks = {t, u}}
]])
    assert.are.equal(1, r.code, r.stderr)
    local errors = {}
    for _, line in ipairs(lines_of(r.stderr, "luaflow.TaskRunner")) do
      if line:match("^ERROR") then errors[#errors + 1] = line end
    end
    local where = ("(the handler defined at %s:3 must return nil, false or a State)"):format(r.path)
    assert.are.same({
      "ERROR - luaflow.TaskRunner | Task 'wrong_return': Unexpected error while calling state handlers: "
        .. "state handler returned a string " .. where,
      "ERROR - luaflow.TaskRunner | Task 'alone': Unexpected error while calling state handlers: "
        .. "state handler returned a string " .. where,
    }, errors)
  end)

  it("comes with the task's own stack traceback, at ERROR", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local function deep() error("deep trouble") end
local t = luaflow.task{ name = "t" }(function() deep() end)
return luaflow.Flow("f", function() t() end)
]])
    local r = cli.run({ "run", path }, { env = { LUAFLOW_LOG_LEVEL = "ERROR" } })
    assert.are.equal(1, r.code)
    assert.is_truthy(r.stderr:find("Exception encountered during task execution! ", 1, true))
    assert.is_truthy(r.stderr:find("deep trouble\nstack traceback:", 1, true))
    assert.is_truthy(r.stderr:find("in upvalue 'deep'", 1, true) or r.stderr:find("in local 'deep'", 1, true))
    assert.is_nil(r.stderr:find("flow_run", 1, true)) -- the engine's own frames are cut
  end)
end)

describe("log levels in colour", function()
  after_each(cli.cleanup)

  local src = [[
local luaflow = require("luaflow")
luaflow.log.warning("careful")
luaflow.log.info("fine")
]]

  it("never in a file or a pipe", function()
    local r = run(src)
    assert.is_true(has(r.stderr, "WARNING - luaflow | careful"), r.stderr)
    assert.is_false(has(r.stderr, "\27["))
  end)

  -- script(1) gives the program a terminal; its output file gets what it wrote.
  local function on_terminal(env)
    local path = cli.write_flow(src)
    local out = cli.tmpname()
    local cmd = ("env -u LD_PRELOAD LUAFLOW_LOG_LEVEL=INFO %s script -qec %s %s >/dev/null 2>&1 </dev/null"):format(
      env or "", cli.quote(cli.quote(cli.bin) .. " run --no-input " .. cli.quote(path)), cli.quote(out))
    assert.is_true(os.execute(cmd) == true, cmd)
    return util.read(out) or ""
  end

  it("by level on a terminal", function()
    local text = on_terminal()
    assert.is_true(has(text, "\27[33mWARNING\27[0m - luaflow | careful"), text)
    assert.is_true(has(text, "\27[32mINFO\27[0m - luaflow | fine"), text)
  end)

  it("not on a terminal when NO_COLOR is set", function()
    local text = on_terminal("NO_COLOR=1")
    assert.is_true(has(text, "WARNING - luaflow | careful"), text)
    assert.is_false(has(text, "\27["), text)
  end)
end)
