-- The C API seen from its users: C state handlers from the
-- example module examples/c_handler/handlers.c (the same handler rules as Lua
-- handlers, the contract), the embedding program examples/embed/run_flow.c,
-- the registry after a run and the versioned function table.
local cli = require("cli")
local util = require("util")
local recorder, run_one = util.recorder, util.run_one

local ROOT = os.getenv("LUAFLOW_ROOT") or cli.root
local SANITIZE = os.getenv("LUAFLOW_SANITIZE")
local BUILD = os.getenv("LUAFLOW_BUILD") or (SANITIZE and "build-asan" or "build")
local EXAMPLES = ROOT .. "/" .. BUILD .. "/examples"
local RUN_FLOW = EXAMPLES .. "/run_flow"
-- What a child process needs to find the example module (and the engine module).
local CHILD_CPATH = EXAMPLES .. "/?.so;" .. ROOT .. "/" .. BUILD .. "/?.so;;"

package.cpath = EXAMPLES .. "/?.so;" .. package.cpath

local luaflow = require("luaflow")
local handlers = require("handlers")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local S, signals = luaflow.states, luaflow.signals

local HANDLER_ERROR = "Unexpected error while calling state handlers: "
local REFUSED = 'Failed("' .. HANDLER_ERROR .. 'the C handler refused")'
local SKIPPED_BY_C = 'Skipped("skipped by a C handler")'

local function full_gc()
  collectgarbage()
  collectgarbage()
end

-- No sanitizer (ASan, LSan, UBSan) said anything in a child's stderr.
local function assert_no_sanitizer_report(r)
  assert.is_nil(r.stderr:find("Sanitizer", 1, true), r.stderr)
  assert.is_nil(r.stderr:find("runtime error:", 1, true), r.stderr)
end

-- Runs build/examples/run_flow (build-asan/... under the sanitizer build) the
-- way cli.run runs the CLI: same quoting, same ASAN_OPTIONS for the child
-- (leak detection on under LUAFLOW_SANITIZE).
local function run_flow(args, opts)
  local saved = cli.bin
  cli.bin = RUN_FLOW
  local ok, r = pcall(cli.run, args, opts)
  cli.bin = saved
  assert(ok, r)
  assert_no_sanitizer_report(r)
  return r
end

-- Runs `luaflow run FILE` with the example module on LUA_CPATH.
local function cli_run_with_module(path)
  local r = cli.run({"run", path}, {env = {LUA_CPATH = CHILD_CPATH}})
  assert_no_sanitizer_report(r)
  return r
end

-- Runs plain lua5.4 on a script file with the example module on LUA_CPATH
-- (the sanitizer options of this process, not the children's leak check:
-- lua5.4 itself is not built for LSan).
local function lua_run(path)
  local saved = cli.bin
  cli.bin = "lua5.4"
  local ok, r = pcall(cli.run, {path}, {env = {LUA_CPATH = CHILD_CPATH,
                                               ASAN_OPTIONS = os.getenv("ASAN_OPTIONS") or false}})
  cli.bin = saved
  assert(ok, r)
  assert_no_sanitizer_report(r)
  return r
end

local function count_registry()
  local n = 0
  for _ in pairs(debug.getregistry()) do n = n + 1 end
  return n
end

describe("C API", function()
  after_each(function() cli.cleanup() end)

  describe("the counting C handler", function()
    it("counts the two transitions of a plain success and no failure", function()
      local counter, read = handlers.counter()
      local _, ts = run_one(Task{name = "t", fn = function() return 1 end, state_handlers = {counter}})
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      local calls, failures = read()
      assert.are.equal(2, calls)
      assert.are.equal(0, failures)
      assert.are.equal("integer", math.type(calls))
    end)

    it("counts five transitions and one failure for one retry then success", function()
      local counter, read = handlers.counter()
      local n = 0
      local t = Task{name = "t", max_retries = 1, retry_delay = 0, state_handlers = {counter},
                     fn = function()
                       n = n + 1
                       if n == 1 then error("first attempt fails", 0) end
                       return "done"
                     end}
      local _, ts = run_one(t)
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal("done", ts.result)
      assert.are.equal(2, n)
      local calls, failures = read()
      assert.are.equal(5, calls)
      assert.are.equal(1, failures)
    end)

    it("counts every failed attempt of a task that never succeeds", function()
      local counter, read = handlers.counter()
      local t = Task{name = "t", max_retries = 1, retry_delay = 0, state_handlers = {counter},
                     fn = function() error("always", 0) end}
      local _, ts = run_one(t)
      assert.are.equal('Failed("Error during execution of task: always")', tostring(ts))
      local calls, failures = read()
      -- Pending->Running, Running->Failed, Failed->Retrying, Retrying->Running, Running->Failed
      assert.are.equal(5, calls)
      assert.are.equal(2, failures)
    end)

    it("counts failures of every Failed subclass (TriggerFailed)", function()
      local counter, read = handlers.counter()
      local up = Task{name = "up", fn = function() error("x", 0) end}
      local down = Task{name = "down", state_handlers = {counter}}
      local f = Flow{name = "f", tasks = {up, down}}
      f:add_edge(up, down)
      local state = f:run()
      assert.is_true(state.result[down]:is(S.TriggerFailed))
      local calls, failures = read()
      assert.are.equal(1, calls)
      assert.are.equal(1, failures)
    end)

    it("is shared by the copies of a task called twice in a builder", function()
      local counter, read = handlers.counter()
      local add = task{state_handlers = {counter}}(function(a, b) return a + b end)
      local state = Flow("twice", function()
        add(1, 2)
        add(3, 4)
      end):run()
      assert.is_true(state:is_successful())
      local calls, failures = read()
      assert.are.equal(4, calls)
      assert.are.equal(0, failures)
    end)

    it("counts a flow's two transitions whatever its tasks do", function()
      local counter, read = handlers.counter()
      local t = Task{name = "t", max_retries = 2, retry_delay = 0, fn = function() error("x", 0) end}
      local state = Flow{name = "f", tasks = {t, Task()}, state_handlers = {counter}}:run()
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
      local calls, failures = read()
      assert.are.equal(2, calls)
      assert.are.equal(1, failures)
    end)

    it("counters made separately count separately", function()
      local c1, read1 = handlers.counter()
      local c2, read2 = handlers.counter()
      run_one(Task{name = "a", state_handlers = {c1}})
      run_one(Task{name = "b", state_handlers = {c1, c2}})
      assert.are.equal(4, (read1()))
      assert.are.equal(2, (read2()))
    end)
  end)

  describe("the C handler that reads a signal's fields (through the CLI)", function()
    it("reads flag and value, each with its type", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local alert = require("handlers").alert
local function failing(name, flag, value)
  return luaflow.Task{name = name, state_handlers = {alert}, fn = function()
    local sig = luaflow.signals.FAIL("failed " .. name)
    sig.flag = flag
    sig.value = value
    error(sig)
  end}
end
luaflow.Flow{name = "alerts", tasks = {
  failing("int", true, 1),
  failing("float", true, 2.5),
  failing("string", true, "x"),
  failing("integral_float", true, 3.0),
  failing("boolean", true, false),
  failing("missing", true, nil),
  failing("no_flag", nil, 7),
  failing("flag_false", false, 8),
  failing("flag_string", "yes", 9),
}}:run()
]])
      local r = cli_run_with_module(path)
      assert.are.equal(1, r.code, r.stderr)
      assert.are.same({
        "C alert on int: failed int",
        "value = 1 (integer)",
        "C alert on float: failed float",
        "value = 2.5 (float)",
        "C alert on string: failed string",
        "value = x (string)",
        "C alert on integral_float: failed integral_float",
        "value = 3 (float)",
        "C alert on boolean: failed boolean",
        "value = false (boolean)",
        "C alert on missing: failed missing",
        "value = nil",
      }, cli.lines(r.stdout))
    end)

    it("says nothing for a success, a plain error or a signal without fields", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local alert = require("handlers").alert
luaflow.Flow{name = "quiet", tasks = {
  luaflow.Task{name = "ok", state_handlers = {alert}, fn = function() return 1 end},
  luaflow.Task{name = "plain", state_handlers = {alert}, fn = function() error({flag = true, value = 1}) end},
  luaflow.Task{name = "bare", state_handlers = {alert}, fn = function() error(luaflow.signals.FAIL("bare")) end},
}}:run()
print("end")
]])
      local r = cli_run_with_module(path)
      assert.are.equal(1, r.code, r.stderr)
      assert.are.equal("end\n", r.stdout)
    end)

    it("runs the example flow under build/luaflow", function()
      local r = cli_run_with_module(ROOT .. "/examples/c_handler/flow.lua")
      assert.are.equal(1, r.code, r.stderr)
      assert.are.same({
        "C alert on check: a equaled b!",
        "value = 3 (integer)",
        "counted 4 state changes, 1 failed",
      }, cli.lines(r.stdout))
    end)

    it("prints in order with the Lua handlers around it", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local alert = require("handlers").alert
local function say(what)
  return function(_, _, new) if new:is_failed() then print(what .. " " .. tostring(new)) end end
end
local t = luaflow.Task{name = "t", state_handlers = {say("before"), alert, say("after")}, fn = function()
  local sig = luaflow.signals.FAIL("boom")
  sig.flag, sig.value = true, 42
  error(sig)
end}
luaflow.Flow{name = "f", tasks = {t}}:run()
]])
      local r = cli_run_with_module(path)
      assert.are.equal(1, r.code, r.stderr)
      assert.are.same({
        'before Failed("boom")',
        "C alert on t: boom",
        "value = 42 (integer)",
        'after Failed("boom")',
      }, cli.lines(r.stdout))
    end)
  end)

  describe("a C handler replacing the state", function()
    it("replaces a Failed with Skipped, and a later Lua handler sees the replacement", function()
      local log = {}
      local t = Task{name = "t", fn = function() error("kaput", 0) end,
                     state_handlers = {handlers.skip_failures, recorder(log)}}
      local fs, ts = run_one(t)
      assert.are.equal(SKIPPED_BY_C, tostring(ts))
      assert.is_true(ts:is_skipped())
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> ' .. SKIPPED_BY_C,
      }, log)
      -- Skipped is a Success: the flow succeeds.
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    end)

    it("keeps a state that is not failed", function()
      local log = {}
      local _, ts = run_one(Task{name = "t", fn = function() return 7 end,
                                 state_handlers = {handlers.skip_failures, recorder(log)}})
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal(7, ts.result)
      assert.are.equal(2, #log)
    end)

    it("sees a Lua handler's replacement as its new state", function()
      local log = {}
      local make_failed = function(_, _, new)
        if new:is_successful() then return S.Failed("made by Lua") end
      end
      local _, ts = run_one(Task{name = "t", fn = function() return 1 end,
                                 state_handlers = {make_failed, handlers.skip_failures, recorder(log)}})
      assert.are.equal(SKIPPED_BY_C, tostring(ts))
      assert.are.equal('Running("Starting task run.") -> ' .. SKIPPED_BY_C, log[2])
    end)

    it("ends the task: a replaced failure is not retried", function()
      local n = 0
      local _, ts = run_one(Task{name = "t", max_retries = 3, retry_delay = 0,
                                 state_handlers = {handlers.skip_failures},
                                 fn = function() n = n + 1; error("x", 0) end})
      assert.are.equal(SKIPPED_BY_C, tostring(ts))
      assert.are.equal(1, n)
    end)

    it("replaces a failed flow's final state", function()
      local log = {}
      local f = Flow{name = "f", tasks = {Task{name = "bad", fn = function() error("x", 0) end}},
                     state_handlers = {handlers.skip_failures, recorder(log)}}
      local state = f:run()
      assert.are.equal(SKIPPED_BY_C, tostring(state))
      assert.are.same({
        'Scheduled() -> Running("Running flow.")',
        'Running("Running flow.") -> ' .. SKIPPED_BY_C,
      }, log)
      -- the task states are still there
      assert.are.equal('Failed("Error during execution of task: x")',
                       tostring(state.result[f:tasks()[1]]))
    end)
  end)

  describe("a C handler returning LF_ERROR", function()
    it("fails the task with the handler's message, final even with retries left", function()
      local counter, read = handlers.counter()
      local log, n = {}, 0
      local t = Task{name = "t", max_retries = 2, retry_delay = 0,
                     state_handlers = {counter, handlers.refuse, recorder(log)},
                     fn = function() n = n + 1 end}
      local fs, ts = run_one(t)
      assert.are.equal(REFUSED, tostring(ts))
      assert.is_true(ts:is_failed())
      assert.are.equal(0, n)            -- the body never ran
      assert.are.same({}, log)          -- the Lua handler after it was not called
      assert.are.equal(1, (read()))     -- one transition: no Failed -> Retrying
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(fs))
    end)

    it("lets the other tasks go on by their triggers", function()
      local bad = Task{name = "bad", state_handlers = {handlers.refuse}}
      local other = Task{name = "other", fn = function() return "fine" end}
      local down = Task{name = "down"}
      local after_all = Task{name = "after_all", trigger = luaflow.triggers.all_finished}
      local f = Flow{name = "f", tasks = {bad, other, down, after_all}}
      f:add_edge(bad, down)
      f:add_edge(bad, after_all)
      local state = f:run()
      assert.are.equal(REFUSED, tostring(state.result[bad]))
      assert.are.equal('Success("Task run succeeded.")', tostring(state.result[other]))
      assert.are.equal("fine", state.result[other].result)
      assert.is_true(state.result[down]:is(S.TriggerFailed))
      assert.are.equal('Success("Task run succeeded.")', tostring(state.result[after_all]))
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
    end)

    it("fails a flow whose handler refuses, its tasks not run", function()
      local log = {}
      local t = Task{name = "t"}
      local f = Flow{name = "f", tasks = {t}, state_handlers = {handlers.refuse, recorder(log)}}
      local state = f:run()
      assert.are.equal(REFUSED, tostring(state))
      assert.are.same({}, log)
      assert.are.equal('Pending("Task not run.")', tostring(state.result[t]))
    end)

    it("is not reached when a Lua handler before it raises a signal", function()
      local counter, read = handlers.counter()
      local skip_on_success = function(_, _, new)
        if new:is_successful() then error(signals.SKIP("skipped by Lua")) end
      end
      local _, ts = run_one(Task{name = "t", state_handlers = {skip_on_success, counter}})
      assert.are.equal('Skipped("skipped by Lua")', tostring(ts))
      assert.are.equal(1, (read()))   -- called for Pending -> Running, not for Running -> Success
    end)
  end)

  describe("C handlers mixed with Lua handlers", function()
    it("run in list order, each seeing the previous one's result", function()
      local counter, read = handlers.counter()
      local seen = {}
      local function peek(tag)
        return function(_, old, new)
          seen[#seen + 1] = ("%s %d %s -> %s"):format(tag, (read()), tostring(old), tostring(new))
        end
      end
      local t = Task{name = "t", fn = function() error("bad", 0) end,
                     state_handlers = {peek("A"), counter, peek("B"), handlers.skip_failures, peek("C")}}
      local _, ts = run_one(t)
      assert.are.equal(SKIPPED_BY_C, tostring(ts))
      local running = 'Running("Starting task run.")'
      local failed = 'Failed("Error during execution of task: bad")'
      assert.are.same({
        "A 0 Pending() -> " .. running,
        "B 1 Pending() -> " .. running,
        "C 1 Pending() -> " .. running,
        "A 1 " .. running .. " -> " .. failed,
        "B 2 " .. running .. " -> " .. failed,
        "C 2 " .. running .. " -> " .. SKIPPED_BY_C,
      }, seen)
      local _, failures = read()
      assert.are.equal(1, failures)
    end)

    it("work with on_failure, which comes after them", function()
      local calls = {}
      local t = Task{name = "t", fn = function() error("bad", 0) end,
                     state_handlers = {handlers.skip_failures},
                     on_failure = function(_, s) calls[#calls + 1] = tostring(s) end}
      local _, ts = run_one(t)
      assert.are.equal(SKIPPED_BY_C, tostring(ts))
      assert.are.same({}, calls) -- the failure was replaced before on_failure saw it
      local counter, read = handlers.counter()
      local t2 = Task{name = "t2", fn = function() error("bad", 0) end,
                      state_handlers = {counter},
                      on_failure = function(_, s) calls[#calls + 1] = tostring(s) .. " " .. (read()) end}
      run_one(t2)
      assert.are.same({'Failed("Error during execution of task: bad") 2'}, calls)
    end)
  end)

  describe("calling a C handler value from Lua", function()
    local t = Task{name = "direct"}
    local running, failed, success = S.Running("r"), S.Failed("f"), S.Success("s")

    it("returns nil to keep the state", function()
      assert.is_nil(handlers.skip_failures(t, running, success))
      assert.are.equal(0, select("#", handlers.skip_failures(t, running, success)))
      assert.is_nil(handlers.alert(t, running, success))
    end)

    it("returns a State to replace it", function()
      local out = handlers.skip_failures(t, running, failed)
      assert.are.equal(SKIPPED_BY_C, tostring(out))
      assert.is_true(out:is_skipped())
      assert.is_true(out:is(S.Skipped))
      assert.are.equal("skipped by a C handler", out.message)
      -- subclasses of Failed are failures too
      assert.are.equal(SKIPPED_BY_C, tostring(handlers.skip_failures(t, running, S.TimedOut("late"))))
    end)

    it("raises the handler's message for LF_ERROR", function()
      local ok, err = pcall(handlers.refuse, t, running, success)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("the C handler refused", 1, true))
    end)

    it("accepts a flow as the object", function()
      local f = Flow{name = "direct-flow", tasks = {Task()}}
      assert.are.equal(SKIPPED_BY_C, tostring(handlers.skip_failures(f, running, failed)))
      assert.is_false(pcall(handlers.refuse, f, running, failed))
    end)

    it("counts like the engine calls it", function()
      local counter, read = handlers.counter()
      assert.is_nil(counter(t, running, failed))
      assert.is_nil(counter(t, running, success))
      local calls, failures = read()
      assert.are.equal(2, calls)
      assert.are.equal(1, failures)
    end)

    it("can be wrapped in a Lua handler with the same effect", function()
      local wrapped = function(obj, old, new) return handlers.skip_failures(obj, old, new) end
      local _, ts = run_one(Task{name = "t", fn = function() error("x", 0) end, state_handlers = {wrapped}})
      assert.are.equal(SKIPPED_BY_C, tostring(ts))
      local refusing = function(obj, old, new) return handlers.refuse(obj, old, new) end
      local _, ts2 = run_one(Task{name = "t", max_retries = 1, retry_delay = 0, state_handlers = {refusing}})
      -- raised from Lua, the message may carry the caller's position, as error() does
      assert.is_true(ts2:is_failed())
      assert.are.equal(1, ts2.message:find(HANDLER_ERROR, 1, true))
      assert.is_truthy(ts2.message:find("the C handler refused$"))
    end)
  end)

  describe("the C module outside the busted process", function()
    it("loads luaflow itself when required first under plain lua5.4", function()
      local path = cli.write_flow([[
local handlers = require("handlers")
local luaflow = require("luaflow")
local counter, read = handlers.counter()
local state = luaflow.Flow{name = "f", tasks = {
  luaflow.Task{name = "t", state_handlers = {counter, handlers.skip_failures},
               fn = function() error("x", 0) end}}}:run()
local _, ts = state:task_states()()
print(tostring(state), tostring(ts))
print(read())
]])
      local r = lua_run(path)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        'Success("All reference tasks succeeded.")\t' .. SKIPPED_BY_C,
        "2\t1",
      }, cli.lines(r.stdout))
    end)

    it("refuses to load without a function table of its version", function()
      local path = cli.write_flow([[
require("luaflow")
debug.getregistry()["luaflow.api"] = "not the table"
local ok, err = pcall(require, "handlers")
print(ok, err)
]])
      local r = lua_run(path)
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("false\t", 1, true), r.stdout)
      assert.is_truthy(r.stdout:find("luaflow C API version 1", 1, true), r.stdout)
    end)
  end)

  describe("the embedding program run_flow", function()
    it("runs seed example 5: the handler's lines, then the final states, exit 1", function()
      local r = run_flow({ROOT .. "/examples/05_special_failure.lua"})
      assert.are.equal(1, r.code, r.stderr)
      assert.are.same({
        "Special failure mode!  Send all the alerts!",
        "a == b == 1",
        'flow state-inspection-handler: Failed("Some reference tasks failed.")',
        '  task mission_critical_task: Failed("a equaled b!")',
      }, cli.lines(r.stdout))
    end)

    it("exits 0 with Success lines for a succeeding flow", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.Task{name = "a", fn = function() return 1 end}
local b = luaflow.Task{name = "b"}
local f = luaflow.Flow{name = "good", tasks = {a, b}}
f:add_edge(a, b)
return f
]])
      local r = run_flow({path})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        'flow good: Success("All reference tasks succeeded.")',
        '  task a: Success("Task run succeeded.")',
        '  task b: Success("Task run succeeded.")',
      }, cli.lines(r.stdout))
    end)

    it("passes NAME=VALUE to the Parameters, JSON-decoded", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local n, s, d = luaflow.Parameter("n"), luaflow.Parameter("s"), luaflow.Parameter("d", {default = "dflt"})
local show = luaflow.task("show", function(a, b, c)
  print(math.type(a), a, type(b), b, c)
end)
return luaflow.Flow("params", function() show(n, s, d) end)
]])
      local r = run_flow({path, "n=3", "s=hello world"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("integer\t3\tstring\thello world\tdflt", cli.lines(r.stdout)[1])
      local r2 = run_flow({path, "n=2.5", 's="quoted"', "d=true"})
      assert.are.equal(0, r2.code, r2.stderr)
      assert.are.equal("float\t2.5\tstring\tquoted\ttrue", cli.lines(r2.stdout)[1])
    end)

    it("passes parameters to a flow the script runs itself", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local n = luaflow.Parameter("n", {required = true})
local double = luaflow.task("double", function(x) print(x * 2) return x * 2 end)
luaflow.Flow("self-run", function() double(n) end):run()
]])
      local r = run_flow({path, "n=21"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("42", cli.lines(r.stdout)[1])
    end)

    it("rejects a NAME that matches no Parameter (exit 2, naming it)", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local n = luaflow.Parameter("n", {default = 1})
return luaflow.Flow("p", function() luaflow.task("t", function(x) return x end)(n) end)
]])
      local r = run_flow({path, "zz=1"})
      assert.are.equal(2, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("zz", 1, true), r.stderr)
      assert.is_nil(r.stderr:find("table: 0x", 1, true), r.stderr)
      assert.is_nil(r.stdout:find("flow p", 1, true))
    end)

    it("reports a required Parameter without a value (exit 2, naming it)", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local needed = luaflow.Parameter("needed", {required = true})
return luaflow.Flow("p", function() luaflow.task("t", function(x) return x end)(needed) end)
]])
      local r = run_flow({path})
      assert.are.equal(2, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("needed", 1, true), r.stderr)
      assert.is_nil(r.stderr:find("table: 0x", 1, true), r.stderr)
    end)

    it("exits 2 for a script error, naming the file and line on stderr", function()
      local path = cli.write_flow("local luaflow = require('luaflow')\nlocal x = 1\nerror('kaboom')\n")
      local r = run_flow({path})
      assert.are.equal(2, r.code)
      assert.is_truthy(r.stderr:find(path .. ":3:", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("kaboom", 1, true), r.stderr)
      assert.are.equal("", r.stdout)
    end)

    it("names the user's line for an error raised inside luaflow", function()
      local path = cli.write_flow("local luaflow = require('luaflow')\n\nlocal t = luaflow.Task{nme = 'x'}\n")
      local r = run_flow({path})
      assert.are.equal(2, r.code)
      assert.is_truthy(r.stderr:find(path .. ":3:", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("nme", 1, true), r.stderr)
    end)

    it("exits 2 for a file that defines several flows and runs none", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.Flow{name = "first", tasks = {luaflow.Task()}}
local b = luaflow.Flow{name = "second", tasks = {luaflow.Task()}}
]])
      local r = run_flow({path})
      assert.are.equal(2, r.code)
      assert.is_truthy(r.stderr:find("<Flow: name=first>", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("<Flow: name=second>", 1, true), r.stderr)
      assert.are.equal("", r.stdout)
    end)

    it("runs the one flow a file defines without running it", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local only = luaflow.Flow{name = "only", tasks = {luaflow.Task{name = "t", fn = function() print("ran") end}}}
]])
      local r = run_flow({path})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({"ran", 'flow only: Success("All reference tasks succeeded.")',
                       '  task t: Success("Task run succeeded.")'}, cli.lines(r.stdout))
    end)

    it("reports every flow the script ran, in order; exit 1 when one failed", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
luaflow.Flow{name = "one", tasks = {luaflow.Task{name = "ok"}}}:run()
luaflow.Flow{name = "two", tasks = {luaflow.Task{name = "bad", fn = function() error("nope", 0) end}}}:run()
]])
      local r = run_flow({path})
      assert.are.equal(1, r.code, r.stderr)
      assert.are.same({
        'flow one: Success("All reference tasks succeeded.")',
        '  task ok: Success("Task run succeeded.")',
        'flow two: Failed("Some reference tasks failed.")',
        '  task bad: Failed("Error during execution of task: nope")',
      }, cli.lines(r.stdout))
    end)

    it("exits 3 when a flow waits for approval of a paused task", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.Task{name = "a"}
local b = luaflow.Task{name = "b", trigger = luaflow.triggers.manual_only}
local f = luaflow.Flow{name = "pz", tasks = {a, b}}
f:add_edge(a, b)
return f
]])
      local r = run_flow({path})
      assert.are.equal(3, r.code, r.stderr)
      assert.are.same({
        'flow pz: Running("Running flow.")',
        '  task a: Success("Task run succeeded.")',
        '  task b: Paused("Trigger function is "manual_only"")',
      }, cli.lines(r.stdout))
    end)

    it("runs C handlers loaded with require in the embedded engine", function()
      local r = run_flow({ROOT .. "/examples/c_handler/flow.lua"}, {env = {LUA_CPATH = CHILD_CPATH}})
      assert.are.equal(1, r.code, r.stderr)
      assert.are.same({
        "C alert on check: a equaled b!",
        "value = 3 (integer)",
        "counted 4 state changes, 1 failed",
        'flow c-handlers: Failed("Some reference tasks failed.")',
        '  task check: Success("Task run succeeded.")',
        '  task check: Failed("a equaled b!")',
      }, cli.lines(r.stdout))
    end)

    it("reports a missing file and bad arguments with exit 2", function()
      local r = run_flow({ROOT .. "/no/such/flow.lua"})
      assert.are.equal(2, r.code)
      assert.is_truthy(r.stderr:find("no/such/flow.lua", 1, true), r.stderr)
      local r2 = run_flow({ROOT .. "/examples/01_flow_state_handler.lua", "not-a-pair"})
      assert.are.equal(2, r2.code)
      assert.is_truthy(r2.stderr:find("not-a-pair", 1, true), r2.stderr)
      assert.are.equal("", r2.stdout)
      local r3 = run_flow({})
      assert.are.equal(2, r3.code)
      assert.is_truthy(r3.stderr:find("usage", 1, true), r3.stderr)
    end)

    if SANITIZE then
      it("runs under the sanitizer build with leak detection on", function()
        assert.are.equal(ROOT .. "/build-asan/examples/run_flow", RUN_FLOW)
        local child = os.getenv("LUAFLOW_CHILD_ASAN_OPTIONS") or ""
        assert.is_truthy(child:find("detect_leaks=1", 1, true), child)
        -- a run with handlers, signals, retries and an error path: nothing leaks
        local path = cli.write_flow([[
local luaflow = require("luaflow")
local h = require("handlers")
local counter = h.counter()
local n = 0
local t = luaflow.Task{name = "t", max_retries = 1, retry_delay = 0,
  state_handlers = {counter, h.alert, h.skip_failures, function() end},
  fn = function()
    n = n + 1
    local sig = luaflow.signals.FAIL("fail " .. n)
    sig.flag, sig.value, sig.text = true, n, ("x"):rep(100)
    error(sig)
  end}
local r = luaflow.Task{name = "r", state_handlers = {h.refuse}}
return luaflow.Flow{name = "leaks", tasks = {t, r}}
]])
        local r = run_flow({path}, {env = {LUA_CPATH = CHILD_CPATH}})
        assert.are.equal(1, r.code, r.stderr)
        assert.is_truthy(r.stdout:find("value = 1 (integer)", 1, true), r.stdout)
        assert.is_truthy(r.stdout:find("  task r: " .. REFUSED, 1, true), r.stdout)
      end)
    end
  end)

  describe("the registry after a run", function()
    -- Builds and runs a flow with every kind of thing a run can hold on to;
    -- puts what should die with it in `weak`.
    local function busy_run(weak)
      local counter, read = handlers.counter()
      local lua_calls = 0
      local lua_handler = function(_, _, new)
        lua_calls = lua_calls + 1
        if new:is_failed() and new.message == "replace me" then
          return S.Failed{message = "replaced", result = {payload = "replacement"}}
        end
      end
      local attempts = 0
      local retried = Task{name = "retried", max_retries = 1, retry_delay = 0,
                           state_handlers = {lua_handler, counter},
                           fn = function()
                             attempts = attempts + 1
                             if attempts == 1 then error({reason = "first"}) end
                             return {rows = {1, 2, 3}}
                           end}
      local signalled = Task{name = "signalled", state_handlers = {handlers.alert, lua_handler},
                             fn = function()
                               local sig = signals.FAIL("replace me")
                               -- flag is not a boolean: alert reads it and stays quiet (no output here)
                               sig.flag, sig.value, sig.blob = 1, 2.5, {big = ("y"):rep(1000)}
                               error(sig)
                             end}
      local skipped = Task{name = "skipped", state_handlers = {handlers.skip_failures, lua_handler},
                           fn = function() error("to skip", 0) end}
      local refused = Task{name = "refused", state_handlers = {handlers.refuse}}
      local raising = Task{name = "raising", state_handlers = {function() error({not_a = "string"}) end}}
      local down = Task{name = "down", fn = function(x) return x end}
      local f = Flow{name = "busy", tasks = {retried, signalled, skipped, refused, raising, down},
                     state_handlers = {counter, lua_handler}}
      f:add_edge(retried, down, 1)
      local state = f:run()
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
      assert.are.equal('Success("Task run succeeded.")', tostring(state.result[retried]))
      assert.are.equal('Failed("replaced")', tostring(state.result[signalled]))
      assert.are.equal(SKIPPED_BY_C, tostring(state.result[skipped]))
      assert.are.equal(REFUSED, tostring(state.result[refused]))
      assert.is_truthy(tostring(state.result[raising]):find(HANDLER_ERROR, 1, true))
      assert.are.same({1, 2, 3}, state.result[down].result.rows)
      assert.are.equal(2, attempts)
      assert.is_true((read()) > 0)
      assert.is_true(lua_calls > 0)
      weak[1], weak[2], weak[3], weak[4] = f, retried, counter, lua_handler
      weak[5], weak[6] = state, state.result[down].result
      weak[7] = state.result[signalled].result
    end

    it("holds no more entries once the run and its states are dropped", function()
      full_gc()
      local before = count_registry()
      local weak = setmetatable({}, {__mode = "v"})
      busy_run(weak)
      full_gc()
      assert.are.equal(before, count_registry())
      -- and the run's objects are gone, not kept elsewhere
      assert.is_nil(next(weak))
    end)

    it("holds no more entries after a run in a flow handler error and a retry", function()
      full_gc()
      local before = count_registry()
      for _ = 1, 3 do
        local weak = setmetatable({}, {__mode = "v"})
        busy_run(weak)
      end
      local f = Flow{name = "refusing", tasks = {Task{name = "t", fn = function() return {1} end}},
                     state_handlers = {handlers.refuse}}
      assert.are.equal(REFUSED, tostring(f:run()))
      f = nil -- luacheck: ignore
      full_gc()
      assert.are.equal(before, count_registry())
    end)

    it("keeps results as long as the returned state is kept", function()
      local weak = setmetatable({}, {__mode = "v"})
      local function run()
        local t = Task{name = "t", state_handlers = {handlers.skip_failures},
                       fn = function() return {value = "kept"} end}
        local state = Flow{name = "keep", tasks = {t}}:run()
        weak.result = state.result[t].result
        weak.flow_state = state
        return state
      end
      local state = run()
      full_gc()
      -- only the flow state is held: the flow and the task are no longer referenced
      assert.are.equal("kept", weak.result and weak.result.value)
      local _, ts = state:task_states()()
      assert.are.equal(weak.result, ts.result)
      ts = nil -- luacheck: ignore
      state = nil -- luacheck: ignore
      full_gc()
      assert.is_nil(weak.result)
      assert.is_nil(weak.flow_state)
    end)

    it("keeps a signal (and its fields) as long as its state is kept", function()
      local weak = setmetatable({}, {__mode = "v"})
      local function run()
        local t = Task{name = "t", state_handlers = {handlers.alert}, fn = function()
          local sig = signals.FAIL("with fields")
          sig.value, sig.payload = 5, {n = 1}
          error(sig)
        end}
        local state = Flow{name = "sig", tasks = {t}}:run()
        local ts = state.result[t]
        weak.signal, weak.payload = ts.result, ts.result.payload
        return ts
      end
      local ts = run()
      full_gc()
      assert.are.equal(5, weak.signal and weak.signal.value)
      assert.are.equal(1, weak.payload and weak.payload.n)
      ts = nil -- luacheck: ignore
      full_gc()
      assert.is_nil(weak.signal)
      assert.is_nil(weak.payload)
    end)

    it("lets a C handler value be collected once nothing refers to it", function()
      local weak = setmetatable({}, {__mode = "v"})
      local function run()
        local counter, read = handlers.counter()
        weak.counter, weak.read = counter, read
        run_one(Task{name = "t", state_handlers = {counter}})
        assert.are.equal(2, (read()))
      end
      run()
      full_gc()
      assert.is_nil(weak.counter)
      assert.is_nil(weak.read)
    end)
  end)

  describe("the C API function table", function()
    it("is a light userdata in the registry under luaflow.api", function()
      local api = debug.getregistry()["luaflow.api"]
      assert.are.equal("userdata", type(api))
      -- Light userdata share one metatable; a full userdata has its own. Set one
      -- on the table and look at another light userdata (a registry key the
      -- engine stores by pointer).
      local other
      for k in pairs(debug.getregistry()) do
        if type(k) == "userdata" and k ~= api then other = k break end
      end
      assert.is_not_nil(other, "no other light userdata in the registry to compare with")
      local saved = debug.getmetatable(api)
      local mt = {}
      debug.setmetatable(api, mt)
      local shared = debug.getmetatable(other) == mt
      debug.setmetatable(api, saved)
      assert.is_true(shared)
    end)

    it("stays the same table after the C module is loaded", function()
      local api = debug.getregistry()["luaflow.api"]
      package.loaded.handlers = nil
      local again = require("handlers")
      assert.are.equal(api, debug.getregistry()["luaflow.api"])
      assert.are.equal("function", type(again.counter))
      package.loaded.handlers = handlers
    end)
  end)
end)
