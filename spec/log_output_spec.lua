-- Where log lines go (issue 8): stderr, buffered when it is a file or a
-- pipe, at once on a terminal. However the process ends (normally, on an
-- error, by os.exit, on SIGTERM, on a second SIGTERM that exits at once, on
-- a crash) no line logged before is lost, each line is whole, and lines do
-- not wait for the end of a long task.
local cli = require("cli")
local proc = require("proc")
local util = require("util")
local has, count = util.has, util.count
local wait_until = proc.wait_until

-- A flow of n tasks named t1..tn (two INFO lines each), then `last`, whose
-- body is the Lua source given.
local function flow_source(n, last_body, after)
  return ([[
local luaflow = require("luaflow")
local last = luaflow.Task{name = "last", fn = function()
  %s
end}
local f = luaflow.Flow("logged", function()
  local prev
  for i = 1, %d do
    prev = luaflow.task{name = "t" .. i}(function() return i end)()
  end
  last:set_upstream(prev)
end)
%s
]]):format(last_body, n, after or "")
end

-- Every line of the log is whole: a stamp, a level, a logger and a message.
local function assert_whole_lines(text)
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) == "[" then
      assert.is_truthy(line:match("^%[%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d[%.%d]*%+0000%] %u+ %- [%w%.]+ | "),
                       "not a whole line: " .. line)
    end
  end
end

-- Starts `luaflow run FILE` in the background, logging at INFO.
local function spawn(source)
  return proc.spawn(source, { env = { LUAFLOW_LOG_LEVEL = "INFO" } })
end

local function wait_exit(h) return (proc.wait_exit(h, 10)) end
local function wait_ready(h) proc.wait_for(h, "ready\n", 10) end

local READY = 'print("ready"); io.stdout:flush()'

describe("log lines to a file", function()
  after_each(cli.cleanup)

  local function run(source)
    return cli.run({ "run", cli.write_flow(source) }, { env = { LUAFLOW_LOG_LEVEL = "INFO" } })
  end

  it("are all there, whole and in order, when the run ends", function()
    local r = run(flow_source(3000, "return 1"))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(3001, count(r.stderr, "Starting task run..."))
    assert.are.equal(3001, count(r.stderr, "Finished task run for task with final state: 'Success'"))
    assert.is_true(has(r.stderr, "Flow run SUCCESS: all reference tasks succeeded"))
    assert_whole_lines(r.stderr)
    local first = r.stderr:find("Task 't1': Starting", 1, true)
    local last = r.stderr:find("Task 'last': Finished", 1, true)
    assert.is_true(first < last)
  end)

  it("come before the error that ends the script", function()
    local r = run(flow_source(100, "return 1", 'f:run()\nerror("script trouble")'))
    assert.are.equal(2, r.code)
    local last_line = r.stderr:find("Flow run SUCCESS", 1, true)
    local err = r.stderr:find("luaflow: [^\n]*script trouble")
    assert.is_truthy(last_line, r.stderr)
    assert.is_truthy(err, r.stderr)
    assert.is_true(last_line < err, r.stderr)
  end)

  it("are there when the script ends with os.exit", function()
    local r = run(flow_source(100, "return 1", "f:run()\nos.exit(5)"))
    assert.are.equal(5, r.code)
    assert.are.equal(101, count(r.stderr, "Finished task run"))
    assert.is_true(has(r.stderr, "Flow run SUCCESS"))
  end)

  it("are there when a task fails and when a task's os.exit is refused", function()
    local r = run(flow_source(100, 'os.exit(3)'))
    assert.are.equal(1, r.code)
    assert.is_true(has(r.stderr, "Task 'last': Exception encountered during task execution!"))
    assert.is_true(has(r.stderr, "os.exit called during a flow run\nstack traceback:"), r.stderr)
    assert.are.equal(100, count(r.stderr, "final state: 'Success'"))
    assert.is_true(has(r.stderr, "Task 'last': Finished task run for task with final state: 'Failed'"))
    assert.is_true(has(r.stderr, "Flow run FAILED"))
  end)

  it("do not wait for the end of a long task", function()
    local h = spawn(flow_source(50, READY .. "\nlocal t0 = os.time()\nwhile os.time() - t0 < 20 do end"))
    wait_ready(h)
    -- the lines logged before the long task are written while it runs
    local text = wait_until(function()
      local err = cli.read(h.err) or ""
      return has(err, "Task 'last': Starting task run...") and err
    end, 3 * proc.SLACK)
    local running = cli.read(h.codefile) == nil
    os.execute("kill -KILL " .. h.pid .. " 2>/dev/null")
    wait_exit(h)
    assert.is_truthy(text, "the lines were not written while the task ran")
    assert.is_true(running)
    assert.are.equal(50, count(text, "final state: 'Success'"))
  end)

  it("are all there after SIGTERM", function()
    local h = spawn(flow_source(2000, READY .. "\nwhile true do end"))
    wait_ready(h)
    os.execute("kill -TERM " .. h.pid)
    local code = wait_exit(h)
    local err = cli.read(h.err) or ""
    assert.are.equal(143, code, err)
    assert.are.equal(2000, count(err, "final state: 'Success'"))
    assert.is_true(has(err, "Flow run was cancelled."), err)
    assert_whole_lines(err)
  end)

  it("are all there when a second SIGTERM ends the process at once", function()
    -- the task waits in a C call (os.execute) that cancellation cannot stop
    local h = spawn(flow_source(2000, READY .. '\nos.execute("sleep 4")'))
    wait_ready(h)
    os.execute("kill -TERM " .. h.pid)
    os.execute("sleep 0.1")
    os.execute("kill -TERM " .. h.pid)
    local code = wait_exit(h)
    local err = cli.read(h.err) or ""
    assert.are.equal(143, code, err)
    assert.are.equal(2000, count(err, "final state: 'Success'"))
    assert.is_true(has(err, "Task 'last': Starting task run..."), err)
    assert_whole_lines(err)
  end)

  it("are all there when the process crashes (SIGABRT) in a task", function()
    -- the task aborts the process it runs in, as a C function calling abort() would
    local r = run(flow_source(2000, [[
local stat = io.open("/proc/self/stat")
local pid = stat:read("n")
stat:close()
os.execute("kill -ABRT " .. pid)
os.execute("sleep 5") -- not reached]]))
    assert.are.equal(128 + 6, r.code, r.stderr)
    assert.are.equal(2000, count(r.stderr, "final state: 'Success'"))
    assert.is_true(has(r.stderr, "Task 'last': Starting task run..."), r.stderr)
    assert_whole_lines(r.stderr)
  end)
end)

describe("log lines to a pipe", function()
  it("are all there when the run ends", function()
    local path = cli.write_flow(flow_source(3000, "return 1"))
    local out = cli.tmpname()
    local cmd = ("env LUAFLOW_LOG_LEVEL=INFO %s run --no-input %s 2>&1 >/dev/null </dev/null | cat >%s")
                :format(cli.quote(cli.bin), cli.quote(path), cli.quote(out))
    assert(os.execute(cmd))
    local text = cli.read(out) or ""
    assert.are.equal(3001, count(text, "final state: 'Success'"))
    assert_whole_lines(text)
    cli.cleanup()
  end)
end)

local has_script = os.execute("command -v script >/dev/null 2>&1")

describe("log lines on a terminal", function()
  if not has_script then
    pending("script(1) (bsdutils) is not installed")
    return
  end

  it("are written at once, before what the next task prints", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.task{name = "first"}(function() print("MARK-first") end)
local b = luaflow.task{name = "second"}(function() print("MARK-second") end)
return luaflow.Flow("f", function() b():set_upstream(a()) end)
]])
    local out = cli.tmpname()
    local env = "LUAFLOW_LOG_LEVEL=INFO"
    local child_asan = os.getenv("LUAFLOW_CHILD_ASAN_OPTIONS")
    if child_asan then env = env .. " " .. cli.quote("ASAN_OPTIONS=" .. child_asan) end
    local inner = ("env %s %s run --no-input %s"):format(env, cli.quote(cli.bin), cli.quote(path))
    local cmd = ("env -u LD_PRELOAD -u ASAN_OPTIONS script -qec %s /dev/null </dev/null >%s 2>&1")
                :format(cli.quote(inner), cli.quote(out))
    os.execute(cmd)
    local text = (cli.read(out) or ""):gsub("\r", "")
    local started = text:find("Task 'second': Starting task run...", 1, true)
    local first_done = text:find("Task 'first': Finished task run", 1, true)
    local marked = text:find("MARK-second", 1, true)
    assert.is_truthy(started and first_done and marked, text)
    assert.is_true(first_done < marked and started < marked, text)
    cli.cleanup()
  end)
end)
