-- Every wait can be interrupted: timeouts armed only when a deadline passes
-- (bodies in coroutines and nested flows included), and SIGINT/SIGTERM stop
-- a looping or blocked state handler, a trigger, a notifier's delivery, and
-- the script itself outside a run (exit 130/143, --json still written).
local luaflow = require("luaflow")
local cli = require("cli")
local proc = require("proc")
local receiver = require("receiver")
local util = require("util")
local Task, Flow = luaflow.Task, luaflow.Flow
local has, count = util.has, util.count
local SLACK = proc.SLACK

local function now() return luaflow.time.now():timestamp() end

local CANCELLED = 'Cancelled("Flow run was cancelled.")'

-- Runs task t alone; asserts it ends TimedOut within `limit` seconds.
local function assert_times_out(t, limit)
  local t0 = now()
  local fs = Flow{name = "f", tasks = {t}}:run()
  assert.are.equal('TimedOut("Task timed out during execution.")', tostring(fs.result[t]))
  assert.is_true(now() - t0 < limit * SLACK, "took " .. (now() - t0))
end

describe("timeouts", function()
  -- A task (timeout 0.3 s) whose body runs a nested flow of `inner`, then `after`.
  local function outer_of(inner, after)
    return Task{name = "outer", timeout = 0.3, fn = function()
      Flow{name = "nested", tasks = {inner}}:run()
      return after()
    end}
  end

  it("stop a body that spins inside a coroutine (wrap, resume, pcall inside)", function()
    local bodies = {
      function() coroutine.wrap(function() while true do end end)() end,
      function()
        local co = coroutine.create(function() while true do pcall(function() while true do end end) end end)
        coroutine.resume(co)
        return "resumed"
      end,
      function() -- nested coroutines
        coroutine.wrap(function() coroutine.wrap(function() while true do end end)() end)()
      end,
    }
    for k, fn in ipairs(bodies) do
      assert_times_out(Task{name = "t" .. k, fn = fn, timeout = 0.2}, 3)
    end
  end)

  it("an outer task's timeout holds while it runs a nested flow whose task has a longer one", function()
    local inner = Task{name = "inner", fn = function() while true do end end, timeout = 60}
    assert_times_out(outer_of(inner, function() while true do end end), 5)
  end)

  it("a nested run waiting for a retry wakes at the enclosing task's deadline", function()
    local inner = Task{name = "inner", max_retries = 1, retry_delay = 60, fn = function() error("once") end}
    assert_times_out(outer_of(inner, function() return "done" end), 5)
  end)

  it("an inner task's timeout ends that task only; the outer body goes on", function()
    local inner = Task{name = "inner", fn = function() while true do end end, timeout = 0.2}
    local outer = Task{name = "outer", timeout = 30, fn = function()
      local s = Flow{name = "nested", tasks = {inner}}:run()
      return tostring(s.result[inner]) .. " then more"
    end}
    local fs = Flow{name = "f", tasks = {outer}}:run()
    assert.is_true(fs.result[outer]:is_successful(), tostring(fs.result[outer]))
    assert.are.equal('TimedOut("Task timed out during execution.") then more', fs.result[outer].result)
  end)

  it("a passed deadline of an earlier task does not break a later body's blocking read", function()
    local quick = Task{name = "quick", fn = function() return 1 end, timeout = 0.1}
    local reader = Task{name = "reader", timeout = 30, fn = function()
      local p = io.popen("sleep 0.4; echo hi")
      local text = p:read("a")
      p:close()
      return text
    end}
    local f = Flow{name = "f", tasks = {quick, reader}}
    f:add_edge(quick, reader)
    local fs = f:run()
    assert.are.equal("hi\n", fs.result[reader].result, tostring(fs.result[reader]))
  end)

  it("a timed body that finishes in time costs no hook: a user's debug hook survives it", function()
    local calls = 0
    local t = Task{name = "t", timeout = 10, fn = function()
      debug.sethook(function() calls = calls + 1 end, "", 1)
      for _ = 1, 100 do end
      local h = debug.gethook()
      debug.sethook()
      return h ~= nil
    end}
    local fs = Flow{name = "f", tasks = {t}}:run()
    assert.is_true(fs.result[t].result)
    assert.is_true(calls > 100)
  end)
end)

describe("coroutine.resume and coroutine.wrap under luaflow", function()
  -- the same script under plain lua5.4 and with luaflow loaded first
  local SCRIPT = [[
local function show(...) local t = table.pack(...)
  for i = 1, t.n do t[i] = type(t[i]) == "table" and "<table>" or tostring(t[i]) end
  print(table.concat(t, " | ")) end
local w = coroutine.wrap(function(a, b) local c = coroutine.yield(a + b); error("boom " .. c) end)
show(w(1, 2))
show(pcall(function() return w(7) end))
show(pcall(w))
show(pcall(coroutine.wrap(function() error({}) end)))
show(pcall(coroutine.wrap(function() error() end)))
show(pcall(coroutine.resume, 5))
show(pcall(coroutine.wrap, 5))
local co = coroutine.create(function(x) local y = coroutine.yield(x * 2); return y, "done" end)
show(coroutine.resume(co, 4))
show(coroutine.resume(co, "back"))
show(coroutine.resume(co))
show(coroutine.status(co))
local closed = {}
local w2 = coroutine.wrap(function()
  local _ <close> = setmetatable({}, {__close = function() closed[1] = true end})
  coroutine.yield(1); error("after yield") end)
w2()
show(pcall(w2))
show(closed[1])
]]

  it("behave as Lua's own (results, errors with positions, closing)", function()
    local dir = cli.tmpdir()
    local plain = cli.write_flow(SCRIPT, dir, "plain.lua")
    local with = cli.write_flow('require("luaflow")\n' .. SCRIPT, dir, "with.lua")
    local function run(path)
      local p = io.popen(("cd %s && lua5.4 %s 2>&1"):format(cli.quote(dir), cli.quote(path:match("[^/]+$"))))
      local out = p:read("a")
      p:close()
      return out
    end
    local expected = run(plain):gsub("plain%.lua:(%d+)", function(n) return "LINE:" .. (n + 1) end)
    local got = run(with):gsub("with%.lua:(%d+)", "LINE:%1")
    assert.are.equal(expected, got)
    assert.is_true(has(got, "boom 7"), got)
    cli.cleanup()
  end)
end)

describe("SIGINT/SIGTERM", function()
  after_each(function()
    receiver.stop_all()
    cli.cleanup()
  end)

  local SHOW = [[
local luaflow = require("luaflow")
local function show(obj, old, new)
  print(("%s: %s -> %s"):format(obj.name, tostring(old), tostring(new)))
  io.stdout:flush()
end
local function ready() print("ready"); io.stdout:flush() end
]]

  -- The printed transitions, in order.
  local function transitions(h)
    local list = {}
    for line in proc.stdout(h):gmatch("[^\n]+") do
      if has(line, " -> ") then list[#list + 1] = line end
    end
    return list
  end

  local function check_json(h, flow, tasks)
    local runs = proc.json_runs(h)
    assert.are.equal(1, #runs, proc.detail(h))
    assert.are.equal(flow, runs[1].flow)
    assert.are.equal("Cancelled", runs[1].state)
    assert.are.equal("Flow run was cancelled.", runs[1].message)
    for i, want in ipairs(tasks) do
      assert.are.equal(want[1], runs[1].tasks[i].name)
      assert.are.equal(want[2], runs[1].tasks[i].state)
    end
  end

  it("a looping state handler stops like a body: the task ends Cancelled through the handlers after it", function()
    local h = proc.spawn(SHOW .. [[
local function stuck(_, _, new)
  if new:is_successful() then ready(); while true do pcall(function() end) end end
end
local t = luaflow.Task{name = "t", fn = function() return 1 end, state_handlers = {stuck, show}}
local after = luaflow.Task{name = "after", fn = function() print("AFTER-RAN") end}
local f = luaflow.Flow{name = "f", tasks = {t, after}, state_handlers = {show}}
f:add_edge(t, after)
]])
    proc.wait_for(h, "ready\n")
    local code, took = proc.signal(h, "INT")
    assert.are.equal(130, code, proc.detail(h))
    assert.is_true(took < 3 * SLACK, "took " .. took)
    assert.are.same({
      'f: Scheduled() -> Running("Running flow.")',
      't: Pending() -> Running("Starting task run.")',
      't: Running("Starting task run.") -> ' .. CANCELLED,
      'f: Running("Running flow.") -> ' .. CANCELLED,
    }, transitions(h))
    assert.is_false(has(proc.stdout(h), "AFTER-RAN"))
    check_json(h, "f", {{"t", "Cancelled"}, {"after", "Pending"}})
  end)

  it("a flow handler looping on the final transition: the flow ends Cancelled (SIGTERM, 143)", function()
    local h = proc.spawn(SHOW .. [[
local function stuck(_, _, new)
  if new:is_finished() then ready(); while true do end end
end
local t = luaflow.Task{name = "t", fn = function() return 1 end}
luaflow.Flow{name = "f", tasks = {t}, state_handlers = {stuck, show}}
]])
    proc.wait_for(h, "ready\n")
    assert.are.equal(143, proc.signal(h, "TERM"), proc.detail(h))
    assert.are.same({
      'f: Scheduled() -> Running("Running flow.")',
      'f: Running("Running flow.") -> ' .. CANCELLED,
    }, transitions(h))
    check_json(h, "f", {{"t", "Success"}})
  end)

  it("a handler blocked in a system call (opening a FIFO nobody writes) stops", function()
    local dir = cli.tmpdir()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. cli.quote(fifo)))
    local h = proc.spawn(SHOW .. ([[
local function blocked(_, _, new)
  if new:is_running() then ready(); local f = io.open(%q, "r"); print("OPENED", f) end
end
local t = luaflow.Task{name = "t", fn = function() print("BODY-RAN") end, state_handlers = {blocked, show}}
luaflow.Flow{name = "f", tasks = {t}}
]]):format(fifo))
    proc.wait_for(h, "ready\n")
    os.execute("sleep 0.1")
    assert.are.equal(130, proc.signal(h, "INT"), proc.detail(h))
    assert.is_false(has(proc.stdout(h), "BODY-RAN"), proc.detail(h))
    assert.are.same({'t: Pending() -> ' .. CANCELLED}, transitions(h))
    check_json(h, "f", {{"t", "Cancelled"}})
  end)

  it("a trigger that loops stops; its task ends Cancelled", function()
    local h = proc.spawn(SHOW .. [[
local up = luaflow.Task{name = "up", fn = function() return 1 end}
local t = luaflow.Task{name = "t", fn = function() print("BODY-RAN") end, state_handlers = {show},
                       trigger = function() ready(); while true do end end}
local f = luaflow.Flow{name = "f", tasks = {up, t}}
f:add_edge(up, t)
]])
    proc.wait_for(h, "ready\n")
    assert.are.equal(130, proc.signal(h, "INT"), proc.detail(h))
    assert.are.same({'t: Pending() -> ' .. CANCELLED}, transitions(h))
    check_json(h, "f", {{"up", "Success"}, {"t", "Cancelled"}})
  end)

  it("a notifier's delivery in progress stops at once; the task ends Cancelled, not Failed", function()
    local r = receiver.start{proto = "http", mode = "never"}
    local h = proc.spawn(SHOW .. [[
local N = luaflow.notifications
local function announce(_, _, new) if new:is_successful() then ready() end end
local t = luaflow.Task{name = "t", fn = function() return 1 end,
  state_handlers = {announce, N.webhook_notifier{url_secret = "HOOK", only_states = {"Success"}}, show}}
luaflow.Flow{name = "f", tasks = {t}}
]], {env = {LUAFLOW_SECRET_HOOK = r:url("/hook")}})
    proc.wait_for(h, "ready\n")
    os.execute("sleep 0.2")
    local code, took = proc.signal(h, "INT")
    assert.are.equal(130, code, proc.detail(h))
    assert.is_true(took < 3 * SLACK, "took " .. took .. " (the delivery's timeout is 10 s)")
    assert.are.same({
      't: Pending() -> Running("Starting task run.")',
      't: Running("Starting task run.") -> ' .. CANCELLED,
    }, transitions(h))
    assert.is_false(has(proc.stderr(h), "notification for"), proc.detail(h))
    check_json(h, "f", {{"t", "Cancelled"}})
  end)

  it("an e-mail delivery in progress stops at once too", function()
    local r = receiver.start{proto = "smtp", mode = "never"}
    local h = proc.spawn(SHOW .. [[
local N = luaflow.notifications
local function announce(_, _, new) if new:is_successful() then ready() end end
local t = luaflow.Task{name = "t", fn = function() return 1 end,
  state_handlers = {announce, N.email_notifier{smtp_url = os.getenv("SMTP"), from = "f@luaflow.test",
    to = "ops@example.org", only_states = {"Success"}}, show}}
luaflow.Flow{name = "f", tasks = {t}}
]], {env = {SMTP = r:url()}})
    proc.wait_for(h, "ready\n")
    os.execute("sleep 0.2")
    local code, took = proc.signal(h, "TERM")
    assert.are.equal(143, code, proc.detail(h))
    assert.is_true(took < 3 * SLACK, "took " .. took)
    check_json(h, "f", {{"t", "Cancelled"}})
  end)

  it("a body's HTTP request in progress stops at once; a timeout cuts it too", function()
    local r = receiver.start{proto = "http", mode = "never"}
    local h = proc.spawn(SHOW .. [[
local t = luaflow.Task{name = "t", state_handlers = {show}, fn = function()
  ready()
  local ok, e = pcall(luaflow.http.post, os.getenv("HOOK"), {json = {}, timeout = 30})
  print("AFTER-POST", e)
end}
luaflow.Flow{name = "f", tasks = {t}}
]], {env = {HOOK = r:url("/hook")}})
    proc.wait_for(h, "ready\n")
    os.execute("sleep 0.2")
    local code, took = proc.signal(h, "INT")
    assert.are.equal(130, code, proc.detail(h))
    assert.is_true(took < 3 * SLACK, "took " .. took)
    assert.is_false(has(proc.stdout(h), "AFTER-POST"), proc.detail(h))
    check_json(h, "f", {{"t", "Cancelled"}})

    assert_times_out(Task{name = "t", timeout = 0.3, fn = function()
      return luaflow.http.post(r:url("/hook"), {json = {}, timeout = 30})
    end}, 3)
  end)
end)

describe("signals outside a run", function()
  after_each(cli.cleanup)

  it("from the moment the process starts end it with 130/143, not by the default action", function()
    local path = cli.write_flow("local x = 0\nwhile true do x = x + 1 end\n", cli.tmpdir())
    for _ = 1, 3 do -- the handlers are set before the libraries' initialisers and main
      assert.are.equal("exit 130", proc.signal_early(path, {"run", "--no-input", "FILE"}, "INT"))
      assert.are.equal("exit 143", proc.signal_early(path, {"check", "FILE"}, "TERM"))
    end
    -- and later, while the script runs
    assert.are.equal("exit 130", proc.signal_early(path, {"run", "--no-input", "FILE"}, "INT", 0.2 * SLACK))
  end)

  it("while the script builds a flow: exit 143 at once, the --json line of an earlier run is kept", function()
    local h = proc.spawn([[
local luaflow = require("luaflow")
luaflow.Flow{name = "first", tasks = {luaflow.Task{name = "a", fn = function() return 1 end}}}:run()
print("ready"); io.stdout:flush()
local tasks = {}
for i = 1, 1e9 do tasks[#tasks + 1] = luaflow.Task{name = "t" .. i, fn = function() end} end
]])
    proc.wait_for(h, "ready\n")
    os.execute("sleep 0.2")
    local code, took = proc.signal(h, "TERM")
    assert.are.equal(143, code, proc.detail(h))
    assert.is_true(took < 2 * SLACK, "took " .. took)
    local runs = proc.json_runs(h)
    assert.are.equal(1, #runs)
    assert.are.equal("first", runs[1].flow)
    assert.are.equal("Success", runs[1].state)
    assert.are.equal("", proc.stderr(h):gsub("[^\n]*INFO[^\n]*\n", ""), proc.detail(h))
  end)

  it("inside luaflow's own building code (Flow{tasks=...} again and again) too, under check", function()
    local h = proc.spawn([[
local luaflow = require("luaflow")
local tasks = {}
for i = 1, 20000 do tasks[i] = luaflow.Task{name = "t" .. i, fn = function() end} end
print("ready"); io.stdout:flush()
while true do luaflow.Flow{name = "big", tasks = tasks} end
]], {args = {"check", "FILE"}})
    proc.wait_for(h, "ready\n", 30)
    os.execute("sleep 0.3")
    local code, took = proc.signal(h, "INT")
    assert.are.equal(130, code, proc.detail(h))
    assert.is_true(took < 3 * SLACK, "took " .. took)
  end)

  it("a second signal ends the process at once (a handler that loops on Cancelled)", function()
    local h = proc.spawn([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "t", fn = function() print("ready"); io.stdout:flush(); while true do end end}
luaflow.Flow{name = "f", tasks = {t}, state_handlers = {function(_, _, new)
  if new:is_cancelled() then print("looping"); io.stdout:flush(); while true do end end end}}
]])
    proc.wait_for(h, "ready\n")
    assert.is_true(os.execute(("kill -INT %d"):format(h.pid)))
    proc.wait_for(h, "looping\n")
    os.execute("sleep 0.2")
    assert.is_nil(util.read(h.codefile), "the first signal let the Cancelled handlers run")
    local code, took = proc.signal(h, "INT")
    assert.are.equal(130, code, proc.detail(h))
    assert.is_true(took < 2 * SLACK, "took " .. took)
  end)
end)
