-- State handlers on tasks and flows.
local luaflow = require("luaflow")
local util = require("util")
local recorder, run_one = util.recorder, util.run_one
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local S, signals = luaflow.states, luaflow.signals
local callback_factory = luaflow.notifications.callback_factory

local HANDLER_ERROR = "Unexpected error while calling state handlers: "
local X = require("executors") -- under every executor: what a body tells goes through a tally

-- A one-task flow; returns the flow's final state and the task's final state.

local function failing(n)
  return function()
    n.add(1)
    error("boom", 0)
  end
end

describe("state handlers", function() X.each(function()
  describe("call sequences", function()
    it("a plain success makes exactly two task transitions", function()
      local log = {}
      local t = Task{name = "t", fn = function() return 42 end, state_handlers = {recorder(log)}}
      local _, ts = run_one(t)
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Success("Task run succeeded.")',
      }, log)
      assert.are.equal(42, ts.result)
    end)

    it("a task raising a plain error makes two transitions, the second to Failed", function()
      local log = {}
      local t = Task{name = "t", fn = function() error("kaput", 0) end, state_handlers = {recorder(log)}}
      run_one(t)
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Failed("Error during execution of task: kaput")',
      }, log)
    end)

    it("flow handlers see Scheduled -> Running and Running -> Success", function()
      local log = {}
      local f = Flow{name = "f", tasks = {Task(), Task()}, state_handlers = {recorder(log)}}
      local state = f:run()
      assert.are.same({
        'Scheduled() -> Running("Running flow.")',
        'Running("Running flow.") -> Success("All reference tasks succeeded.")',
      }, log)
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
    end)

    it("flow handlers see Running -> Failed when a reference task fails", function()
      local log = {}
      local f = Flow{name = "f", tasks = {Task{fn = function() error("x", 0) end}},
                     state_handlers = {recorder(log)}}
      f:run()
      assert.are.same({
        'Scheduled() -> Running("Running flow.")',
        'Running("Running flow.") -> Failed("Some reference tasks failed.")',
      }, log)
    end)

    it("flow handlers see only two transitions even when a task retries", function()
      local log, n = {}, X.tally()
      local t = Task{name = "t", fn = failing(n), max_retries = 2, retry_delay = 0}
      Flow{name = "f", tasks = {t}, state_handlers = {recorder(log)}}:run()
      assert.are.equal(3, n.count())
      assert.are.same({
        'Scheduled() -> Running("Running flow.")',
        'Running("Running flow.") -> Failed("Some reference tasks failed.")',
      }, log)
    end)

    it("a retried failure goes Running -> Failed -> Retrying, then Retrying -> Running", function()
      local log, n = {}, X.tally()
      local t = Task{name = "t", fn = failing(n), max_retries = 1, retry_delay = 0,
                     state_handlers = {recorder(log)}}
      local _, ts = run_one(t)
      local failed = 'Failed("Error during execution of task: boom")'
      local retrying = 'Retrying("Retrying Task (after attempt 1 of 2)")'
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> ' .. failed,
        failed .. " -> " .. retrying,
        retrying .. ' -> Running("Starting task run.")',
        'Running("Starting task run.") -> ' .. failed,
      }, log)
      assert.are.equal(2, n.count())
      assert.are.equal(failed, tostring(ts))
    end)

    it("a Retrying state carries run_count and a start_time of now + retry_delay", function()
      local retrying
      local t = Task{name = "t", fn = function() error("x", 0) end, max_retries = 1, retry_delay = 0,
                     state_handlers = {function(_, _, new)
                       if new:is_retrying() then retrying = new end
                     end}}
      local before = os.time()
      run_one(t)
      assert.are.equal(1, retrying.run_count)
      local at = retrying.start_time:timestamp()
      assert.is_true(at >= before - 1 and at <= os.time() + 1)
    end)

    it("a failure that succeeds on retry ends Success after five transitions", function()
      -- Prefect 1: Running, Failed, Retrying, Running, Success.
      local log = {}
      local t = Task{name = "t", max_retries = 1, retry_delay = 0, state_handlers = {recorder(log)},
                     fn = function()
                       if luaflow.context.task_run_count == 1 then error("first", 0) end
                       return "second"
                     end}
      local _, ts = run_one(t)
      assert.are.equal(5, #log)
      assert.are.equal('Running("Starting task run.") -> Success("Task run succeeded.")', log[5])
      assert.are.equal("second", ts.result)
    end)

    it("calls a task's handlers in list order", function()
      local log = {}
      local t = Task{name = "t", state_handlers = {recorder(log, "h1"), recorder(log, "h2"),
                                                   recorder(log, "h3")}}
      run_one(t)
      assert.are.same({
        'h1: Pending() -> Running("Starting task run.")',
        'h2: Pending() -> Running("Starting task run.")',
        'h3: Pending() -> Running("Starting task run.")',
        'h1: Running("Starting task run.") -> Success("Task run succeeded.")',
        'h2: Running("Starting task run.") -> Success("Task run succeeded.")',
        'h3: Running("Starting task run.") -> Success("Task run succeeded.")',
      }, log)
    end)

    it("calls a flow's handlers in list order", function()
      local log = {}
      Flow{name = "f", tasks = {Task()}, state_handlers = {recorder(log, "a"), recorder(log, "b")}}:run()
      assert.are.same({
        'a: Scheduled() -> Running("Running flow.")',
        'b: Scheduled() -> Running("Running flow.")',
        'a: Running("Running flow.") -> Success("All reference tasks succeeded.")',
        'b: Running("Running flow.") -> Success("All reference tasks succeeded.")',
      }, log)
    end)
  end)

  describe("the obj argument", function()
    it("is the task, printed <Task: NAME>", function()
      local seen = {}
      local t = Task{name = "extract", state_handlers = {function(obj) seen[#seen + 1] = obj end}}
      run_one(t)
      assert.are.equal(2, #seen)
      assert.are.equal("<Task: extract>", tostring(seen[1]))
      assert.is_true(rawequal(t, seen[1]))
    end)

    it("is the flow, printed <Flow: name=NAME>", function()
      local seen = {}
      local f = Flow{name = "etl", tasks = {Task()}, state_handlers = {function(obj) seen[#seen + 1] = obj end}}
      f:run()
      assert.are.equal(2, #seen)
      assert.are.equal("<Flow: name=etl>", tostring(seen[1]))
      assert.is_true(rawequal(f, seen[2]))
    end)

    it("prints the task's name for a task called in a flow builder", function()
      local seen = {}
      local load = task{name = "load", state_handlers = {function(obj) seen[#seen + 1] = tostring(obj) end}}(
        function() end)
      Flow("builder", function() load() end):run()
      assert.are.same({"<Task: load>", "<Task: load>"}, seen)
    end)
  end)

  describe("chaining", function()
    it("gives each handler the same old_state and the previous handler's result", function()
      local log = {}
      local function swap(_, _, new)
        if new:is_successful() then return S.Success("from h1") end
      end
      local t = Task{name = "t", state_handlers = {swap, recorder(log)}}
      local _, ts = run_one(t)
      assert.are.equal('Running("Starting task run.") -> Success("from h1")', log[2])
      assert.are.equal('Success("from h1")', tostring(ts))
    end)

    it("keeps new_state when a handler returns nil or false", function()
      local log = {}
      local t = Task{name = "t", fn = function() return "v" end,
                     state_handlers = {function() return nil end, function() return false end, recorder(log)}}
      local _, ts = run_one(t)
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Success("Task run succeeded.")',
      }, log)
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal("v", ts.result)
    end)

    it("replaces the state with a returned State, which later handlers see", function()
      -- Prefect 1: Success -> Skipped("swapped") makes the task end Skipped.
      local log = {}
      local function swap(_, _, new)
        if new:is_successful() then return S.Skipped("swapped") end
      end
      local t = Task{name = "t", state_handlers = {swap, recorder(log)}}
      local fs, ts = run_one(t)
      assert.are.equal('Running("Starting task run.") -> Skipped("swapped")', log[2])
      assert.are.equal('Skipped("swapped")', tostring(ts))
      assert.is_true(ts:is_skipped())
      -- Skipped is a Success, so the flow succeeds.
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    end)

    it("a replacement on a flow's final transition becomes the flow's state", function()
      local function swap(_, _, new)
        if new:is_finished() then return S.Failed("vetoed") end
      end
      local state = Flow{name = "f", tasks = {Task()}, state_handlers = {swap}}:run()
      assert.are.equal('Failed("vetoed")', tostring(state))
    end)

    for _, case in ipairs({
      {"a number", 1, "number"},
      {"a string", "Success", "string"},
      {"a table", {}, "table"},
      {"true", true, "boolean"},
    }) do
      it("treats a task handler returning " .. case[1] .. " as a handler error", function()
        local ran = X.tally()
        local t = Task{name = "t", fn = function() ran.add(1) end,
                       state_handlers = {function() return case[2] end}}
        local _, ts = run_one(t)
        assert.are.equal("Failed", ts.name)
        assert.are.equal(HANDLER_ERROR .. "state handler returned a " .. case[3], ts.message)
        assert.are.equal(0, ran.count())
      end)
    end

    it("treats a flow handler returning a non-State as a handler error", function()
      local state = Flow{name = "f", tasks = {Task()}, state_handlers = {function() return 7 end}}:run()
      assert.are.equal("Failed", state.name)
      assert.are.equal(HANDLER_ERROR .. "state handler returned a number", state.message)
    end)
  end)

  describe("a handler raising a plain error", function()
    it("ends the task Failed with the handler error message", function()
      local ran = X.tally()
      local t = Task{name = "t", fn = function() ran.add(1) end,
                     state_handlers = {function() error("handler broke", 0) end}}
      local fs, ts = run_one(t)
      assert.are.equal('Failed("Unexpected error while calling state handlers: handler broke")', tostring(ts))
      assert.are.equal("handler broke", ts.result) -- Prefect 1: result = the error
      assert.are.equal(0, ran.count())
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(fs))
    end)

    it("after the body ran, still ends the task Failed", function()
      local ran = X.tally()
      local t = Task{name = "t", fn = function() ran.add(1); return 1 end,
                     state_handlers = {function(_, _, new)
                       if new:is_successful() then error("late", 0) end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal(1, ran.count())
      assert.are.equal(HANDLER_ERROR .. "late", ts.message)
      assert.is_true(ts:is_failed())
    end)

    it("is final: no retry even with max_retries", function()
      local log, n = {}, X.tally()
      local t = Task{name = "t", fn = failing(n), max_retries = 2, retry_delay = 0,
                     state_handlers = {recorder(log), function(_, _, new)
                       if new:is_failed() then error("no retry", 0) end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal(1, n.count())
      assert.are.equal(HANDLER_ERROR .. "no retry", ts.message)
      assert.are.equal(2, #log)
      for _, line in ipairs(log) do
        assert.is_nil(line:find("Retrying", 1, true))
      end
    end)

    it("skips the remaining handlers and calls none for the resulting Failed", function()
      local before, after, failures = {}, {}, 0
      local t = Task{name = "t",
                     state_handlers = {recorder(before), function(_, _, new)
                       if new:is_successful() then error("stop", 0) end
                     end, recorder(after)},
                     on_failure = function() failures = failures + 1 end}
      local _, ts = run_one(t)
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Success("Task run succeeded.")',
      }, before)
      assert.are.same({'Pending() -> Running("Starting task run.")'}, after)
      -- Prefect 1: on_failure does not fire for a handler error.
      assert.are.equal(0, failures)
      assert.are.equal(HANDLER_ERROR .. "stop", ts.message)
    end)

    it("lets independent tasks run and succeed while the downstream is TriggerFailed", function()
      local bad = Task{name = "bad", state_handlers = {function() error("handler broke", 0) end}}
      local after_bad = Task{name = "after_bad"}
      local good = Task{name = "good", fn = function() return "ok" end}
      local f = Flow{name = "f", tasks = {bad, after_bad, good}}
      f:add_edge(bad, after_bad)
      local state = f:run()
      assert.are.equal('Success("Task run succeeded.")', tostring(state.result[good]))
      assert.are.equal("ok", state.result[good].result)
      assert.are.equal("TriggerFailed", state.result[after_bad].name)
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
    end)
  end)

  describe("a handler raising a signal", function()
    it("PAUSE ends the task Paused, with no retry and no later handler call", function()
      -- Prefect 1 (test_task_handlers_respect_signals).
      local log, n = {}, X.tally()
      local function pauser(_, _, new)
        if new:is_failed() then error(signals.PAUSE("Pausing.")) end
      end
      local t = Task{name = "t", fn = failing(n), max_retries = 1, retry_delay = 0,
                     state_handlers = {pauser, recorder(log)}}
      local fs, ts = run_one(t)
      assert.are.equal('Paused("Pausing.")', tostring(ts))
      assert.are.equal(1, n.count())
      assert.are.same({'Pending() -> Running("Starting task run.")'}, log)
      -- A task waiting for approval keeps the flow Running.
      assert.are.equal('Running("Running flow.")', tostring(fs))
    end)

    it("ENDRUN on Pending -> Running ends the task in its state without running the body", function()
      local log, ran = {}, X.tally()
      local t = Task{name = "t", fn = function() ran.add(1) end,
                     state_handlers = {function(_, _, new)
                       if new:is_running() then error(signals.ENDRUN(S.Success("short-circuit"))) end
                     end, recorder(log)}}
      local fs, ts = run_one(t)
      assert.are.equal('Success("short-circuit")', tostring(ts))
      assert.are.equal(0, ran.count())
      assert.are.same({}, log) -- Prefect 1: no handler is called for that state
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    end)

    it("ENDRUN with a failed state is final: no retry", function()
      local n = X.tally()
      local t = Task{name = "t", fn = failing(n), max_retries = 2, retry_delay = 0,
                     state_handlers = {function(_, _, new)
                       if new:is_failed() then error(signals.ENDRUN(S.Failed("ended"))) end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal('Failed("ended")', tostring(ts))
      assert.are.equal(1, n.count())
    end)

    it("FAIL on Pending -> Running ends the task Failed without running the body or retrying", function()
      -- Prefect 1: the run step sees a non-Running state, so no retry.
      local log, n = {}, X.tally()
      local function refuse(_, _, new)
        if new:is_running() then
          local sig = signals.FAIL("refused")
          sig.flag = true
          error(sig)
        end
      end
      local t = Task{name = "t", fn = failing(n), max_retries = 2, retry_delay = 0,
                     state_handlers = {refuse, recorder(log)}}
      local fs, ts = run_one(t)
      assert.are.equal('Failed("refused")', tostring(ts))
      assert.are.equal(0, n.count())
      assert.are.same({}, log) -- the remaining handler was skipped
      assert.is_true(ts.result.flag)
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(fs))
    end)

    it("SKIP replaces the new state and skips the remaining handlers", function()
      local log = {}
      local function skipper(_, _, new)
        if new:is_successful() then error(signals.SKIP("skip it")) end
      end
      local t = Task{name = "t", state_handlers = {skipper, recorder(log)}}
      local _, ts = run_one(t)
      assert.are.equal('Skipped("skip it")', tostring(ts))
      assert.are.same({'Pending() -> Running("Starting task run.")'}, log)
    end)

    it("SUCCESS replaces a Failed state, so the failure is not retried", function()
      local n = X.tally()
      local t = Task{name = "t", fn = failing(n), max_retries = 1, retry_delay = 0,
                     state_handlers = {function(_, _, new)
                       if new:is_failed() then error(signals.SUCCESS("rescued")) end
                     end}}
      local fs, ts = run_one(t)
      assert.are.equal('Success("rescued")', tostring(ts))
      assert.are.equal(1, n.count())
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    end)
  end)

  describe("a handler raising a signal (continued)", function()
    it("FAIL skips an on_failure appended after the handlers", function()
      -- on_failure is just the last handler, so it is among the ones skipped.
      local failures = 0
      local t = Task{name = "t", on_failure = function() failures = failures + 1 end,
                     state_handlers = {function(_, _, new)
                       if new:is_running() then error(signals.FAIL("no")) end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal('Failed("no")', tostring(ts))
      assert.are.equal(0, failures)
    end)

    it("RETRY on a Failed state makes the task run again, ignoring max_retries", function()
      -- Prefect 1 (test_task_handlers_handle_retry_signals).
      local calls = X.tally()
      local t = Task{name = "t", fn = function()
                       calls.add(1)
                       if calls.count() == 1 then error("first", 0) end
                       return calls.count()
                     end,
                     state_handlers = {function(_, _, new)
                       if new:is_failed() then error(signals.RETRY("again")) end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal(2, calls.count())
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal(2, ts.result)
    end)
  end)

  describe("the body runs only if the state after the handlers is Running", function()
    it("does not run when a handler replaces Running with Skipped", function()
      local ran = X.tally()
      local t = Task{name = "t", fn = function() ran.add(1) end,
                     state_handlers = {function(_, _, new)
                       if new:is_running() then return S.Skipped("not today") end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal(0, ran.count())
      assert.are.equal('Skipped("not today")', tostring(ts))
    end)

    it("does not run and does not retry when a handler returns a Failed state for Running", function()
      local n = X.tally()
      local t = Task{name = "t", fn = failing(n), max_retries = 2, retry_delay = 0,
                     state_handlers = {function(_, _, new)
                       if new:is_running() then return S.Failed("blocked") end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal(0, n.count())
      assert.are.equal('Failed("blocked")', tostring(ts))
    end)

    it("runs when a handler returns a fresh Running state", function()
      local ran = X.tally()
      local t = Task{name = "t", fn = function() ran.add(1) end,
                     state_handlers = {function(_, _, new)
                       if new:is_running() then return S.Running("my own running") end
                     end}}
      local _, ts = run_one(t)
      assert.are.equal(1, ran.count())
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    end)
  end)

  describe("on_failure", function()
    it("is called with (obj, state) when the task fails", function()
      local calls = {}
      local t = Task{name = "t", fn = function() error("bad", 0) end,
                     on_failure = function(obj, state) calls[#calls + 1] = {tostring(obj), tostring(state)} end}
      run_one(t)
      assert.are.same({{"<Task: t>", 'Failed("Error during execution of task: bad")'}}, calls)
    end)

    it("runs after the state_handlers and sees their result", function()
      local log = {}
      local t = Task{name = "t",
                     state_handlers = {function(_, _, new)
                       log[#log + 1] = "handler"
                       if new:is_successful() then return S.Failed("forced") end
                     end},
                     on_failure = function(_, state) log[#log + 1] = "on_failure " .. tostring(state) end}
      local _, ts = run_one(t)
      assert.are.same({"handler", "handler", 'on_failure Failed("forced")'}, log)
      assert.are.equal('Failed("forced")', tostring(ts))
    end)

    it("fires on each failed attempt, not on Retrying", function()
      local seen = {}
      local t = Task{name = "t", fn = function() error("again", 0) end, max_retries = 1, retry_delay = 0,
                     on_failure = function(_, state) seen[#seen + 1] = tostring(state) end}
      run_one(t)
      assert.are.same({
        'Failed("Error during execution of task: again")',
        'Failed("Error during execution of task: again")',
      }, seen)
    end)

    it("does not fire on success", function()
      local calls = 0
      local t = Task{name = "t", on_failure = function() calls = calls + 1 end}
      local _, ts = run_one(t)
      assert.is_true(ts:is_successful())
      assert.are.equal(0, calls)
    end)

    it("fires for TriggerFailed", function()
      local seen = {}
      local up = Task{name = "up", fn = function() error("x", 0) end}
      local down = Task{name = "down", on_failure = function(obj, state)
        seen[#seen + 1] = tostring(obj) .. " " .. tostring(state)
      end}
      local f = Flow{name = "f", tasks = {up, down}}
      f:add_edge(up, down)
      f:run()
      assert.are.same({
        '<Task: down> TriggerFailed("Trigger was "all_successful" but some of the upstream tasks failed.")',
      }, seen)
    end)

    it("on a flow, fires once when the flow fails", function()
      local seen = {}
      local f = Flow{name = "f", tasks = {Task{fn = function() error("x", 0) end}},
                     on_failure = function(obj, state) seen[#seen + 1] = tostring(obj) .. " " .. tostring(state) end}
      f:run()
      assert.are.same({'<Flow: name=f> Failed("Some reference tasks failed.")'}, seen)
    end)

    it("on a flow, does not fire when the flow succeeds", function()
      local calls = 0
      local state = Flow{name = "f", tasks = {Task()}, on_failure = function() calls = calls + 1 end}:run()
      assert.is_true(state:is_successful())
      assert.are.equal(0, calls)
    end)

    it("on a flow, runs after the flow's state_handlers", function()
      local log = {}
      local f = Flow{name = "f", tasks = {Task{fn = function() error("x", 0) end}},
                     state_handlers = {function() log[#log + 1] = "handler" end},
                     on_failure = function() log[#log + 1] = "on_failure" end}
      f:run()
      assert.are.same({"handler", "handler", "on_failure"}, log)
    end)
  end)

  describe("callback_factory", function()
    it("calls fn(obj, new_state) only when check(new_state) is true", function()
      local seen = {}
      local h = callback_factory(function(obj, state)
        seen[#seen + 1] = tostring(obj) .. " " .. tostring(state)
      end, function(s) return s:is_retrying() end)
      local t = Task{name = "r", fn = function() error("no", 0) end, max_retries = 1, retry_delay = 0,
                     state_handlers = {h}}
      local _, ts = run_one(t)
      assert.are.same({'<Task: r> Retrying("Retrying Task (after attempt 1 of 2)")'}, seen)
      assert.are.equal('Failed("Error during execution of task: no")', tostring(ts))
    end)

    it("keeps the state, whatever fn returns", function()
      local calls = 0
      local h = callback_factory(function()
        calls = calls + 1
        return S.Failed("ignored")
      end, function(s) return s:is_successful() end)
      local t = Task{name = "t", fn = function() return 3 end, state_handlers = {h}}
      local _, ts = run_one(t)
      assert.are.equal(1, calls)
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal(3, ts.result)
    end)

    it("returns new_state when called directly", function()
      local called = false
      local h = callback_factory(function() called = true end, function() return false end)
      local new = S.Success("x")
      assert.is_true(rawequal(new, h(Task(), S.Running("r"), new)))
      assert.is_false(called)
    end)
  end)

  describe("a flow handler replacing Running", function()
    it("keeps the flow from running its tasks", function()
      -- Prefect 1: the flow-run step ends when the state is not Running.
      local ran = X.tally()
      local a = Task{name = "a", fn = function() ran.add(1) end}
      local state = Flow{name = "f", tasks = {a}, state_handlers = {function(_, _, new)
        if new:is_running() then return S.Skipped("no flow today") end
      end}}:run()
      assert.are.equal('Skipped("no flow today")', tostring(state))
      assert.are.equal(0, ran.count())
      assert.are.equal('Pending("Task not run.")', tostring(state.result[a]))
    end)
  end)

  describe("a flow handler that errors", function()
    it("on Scheduled -> Running fails the flow and maps every task to Pending(\"Task not run.\")", function()
      local ran = X.tally()
      local a = Task{name = "a", fn = function() ran.add(1) end}
      local b = Task{name = "b"}
      local f = Flow{name = "f", tasks = {a, b}, state_handlers = {function() error("flow handler broke", 0) end}}
      f:add_edge(a, b)
      local state = f:run()
      assert.are.equal('Failed("Unexpected error while calling state handlers: flow handler broke")', tostring(state))
      assert.are.equal(0, ran.count())
      assert.are.equal('Pending("Task not run.")', tostring(state.result[a]))
      assert.are.equal('Pending("Task not run.")', tostring(state.result[b]))
      local names = {}
      for t, s in state:task_states() do names[#names + 1] = tostring(t) .. " " .. tostring(s) end
      assert.are.same({'<Task: a> Pending("Task not run.")', '<Task: b> Pending("Task not run.")'}, names)
    end)

    it("on the final transition fails the flow and keeps the tasks' states", function()
      local a = Task{name = "a", fn = function() return 1 end}
      local f = Flow{name = "f", tasks = {a}, state_handlers = {function(_, _, new)
        if new:is_finished() then error("too late", 0) end
      end}}
      local state = f:run()
      assert.are.equal(HANDLER_ERROR .. "too late", state.message)
      assert.is_true(state:is_failed())
      assert.are.equal('Success("Task run succeeded.")', tostring(state.result[a]))
      assert.are.equal(1, state.result[a].result)
    end)
  end)

  describe("luaflow.context.task_run_count", function()
    it("is the attempt number inside handlers", function()
      local counts = {}
      local t = Task{name = "t", fn = function() error("x", 0) end, max_retries = 1, retry_delay = 0,
                     state_handlers = {function() counts[#counts + 1] = luaflow.context.task_run_count end}}
      run_one(t)
      -- Prefect 1: the Failed -> Retrying call still belongs to attempt 1.
      assert.are.same({1, 1, 1, 2, 2}, counts)
    end)

    it("is the attempt number inside the task", function()
      local counts = X.tally()
      local t = Task{name = "t", max_retries = 2, retry_delay = 0, fn = function()
        counts.add(luaflow.context.task_run_count)
        if counts.count() < 3 then error("again", 0) end
        return "done"
      end}
      local _, ts = run_one(t)
      assert.are.same({1, 2, 3}, counts.list())
      assert.are.equal("done", ts.result)
    end)
  end)

  describe("a state a handler returns", function()
    it("keeps a task's result when an inner run's handler returns the outer run's state", function()
      local saved
      local inner_t = Task{ name = "inner", state_handlers = { function(_, _, new)
        if new:is_successful() then return saved end
      end } }
      local inner = Flow{ name = "inner", tasks = { inner_t } }
      local a = Task{ name = "a", fn = function() return 42 end, state_handlers = { function(_, _, new)
        if new:is_successful() then saved = new; inner:run() end
      end } }
      local got = X.tally()
      local b = Task{ name = "b", fn = function(x) got.add(x); return x end }
      local f = Flow{ name = "outer", tasks = { a, b } }
      f:add_edge(a, b, 1)
      local state = f:run()
      assert.are.same({ 42 }, got.list())
      assert.are.equal(42, state.result[a].result)
    end)
  
    it("does not take over the result of a state a handler returns and the user keeps", function()
      local DONE = S.Success{ message = "done", result = "my payload" }
      local h = { function(_, _, new) if new:is_finished() then return DONE end end }
      local a, b = Task{ name = "a", fn = function() return "A" end }, Task{ name = "b" }
      local s1 = Flow{ name = "f1", tasks = { a }, state_handlers = h }:run()
      local s2 = Flow{ name = "f2", tasks = { b }, state_handlers = h }:run()
      assert.are.equal("my payload", DONE.result)
      assert.are.equal("A", s1.result[a].result)
      assert.are.equal("Success", s2.result[b].name)
    end)
  end)
end) end)
