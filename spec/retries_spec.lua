-- Retries (where the contract is silent, Prefect 1's behaviour): Running ->
-- Failed -> Retrying(attempt N of M) -> Running, due retry_delay later; the
-- RETRY signal; what is never retried; and a waiting retry does not block the
-- other tasks nor burn CPU. Seed examples 04 and 06 are seed_spec.lua's.
local luaflow = require("luaflow")
local timing = require("timing")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local S, signals = luaflow.states, luaflow.signals
local now, busy, SANITIZE, SLACK = timing.now, timing.busy, timing.SANITIZE, timing.SLACK
local recorder, lines_of, run_one, RUNNING = timing.recorder, timing.lines_of, timing.run_one, timing.RUNNING
local X = require("executors") -- under every executor: what a body tells goes through a tally

describe("retries", function() X.each(function()
  it("go Running -> Failed -> Retrying(attempt N of M) -> Running, due retry_delay later", function()
    local log, calls = {}, X.tally()
    local t = Task{name = "flaky", max_retries = 2, retry_delay = 0.12,
                   state_handlers = {recorder(log)},
                   fn = function() calls.add(1); error("boom", 0) end}
    local _, ts = run_one(t)
    local FAILED = 'Failed("Error during execution of task: boom")'
    assert.are.same({
      "Pending() -> " .. RUNNING,
      RUNNING .. " -> " .. FAILED,
      FAILED .. ' -> Retrying("Retrying Task (after attempt 1 of 3)")',
      'Retrying("Retrying Task (after attempt 1 of 3)") -> ' .. RUNNING,
      RUNNING .. " -> " .. FAILED,
      FAILED .. ' -> Retrying("Retrying Task (after attempt 2 of 3)")',
      'Retrying("Retrying Task (after attempt 2 of 3)") -> ' .. RUNNING,
      RUNNING .. " -> " .. FAILED,
    }, lines_of(log))
    -- total attempts = max_retries + 1; no "retries exhausted" message
    assert.are.equal(3, calls.count())
    assert.are.equal(FAILED, tostring(ts))
    assert.is_true(ts:is(S.Failed))
    for _, k in ipairs({3, 6}) do
      local retrying = log[k]
      assert.are.equal("Retrying", retrying.new_name)
      assert.are.equal(k // 3, retrying.run_count)
      -- start_time = now + retry_delay (fractional seconds)
      local ahead = retrying.start - retrying.at
      assert.is_true(ahead > 0.12 - 0.03 * SLACK and ahead <= 0.12 + 0.005,
                     "start_time is " .. ahead .. " s ahead, expected 0.12")
      -- the next Running comes when it is due, not before
      assert.is_true(log[k + 1].at >= retrying.start - 0.005,
                     "re-ran " .. (retrying.start - log[k + 1].at) .. " s early")
      assert.is_true(log[k + 1].at - retrying.start < 0.1 * SLACK)
    end
  end)

  it("a failure that succeeds on its second attempt ends Success with that result", function()
    local log, calls = {}, X.tally()
    local t = task{name = "second_time_lucky", max_retries = 3, retry_delay = 0.01,
                   state_handlers = {recorder(log)}}(function()
      calls.add(1)
      if calls.count() == 1 then error("not yet", 0) end
      return "got it"
    end)
    local fs, ts = run_one(t)
    assert.are.equal(2, calls.count())
    assert.are.equal(5, #log)
    assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    assert.are.equal("got it", ts.result)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
  end)

  it("luaflow.context.task_run_count is the attempt number in the task and in its handlers", function()
    local log, seen_in_task = {}, X.tally()
    local t = Task{name = "counted", max_retries = 2, retry_delay = 0,
                   state_handlers = {recorder(log)},
                   fn = function()
                     seen_in_task.add(luaflow.context.task_run_count)
                     error("again", 0)
                   end}
    run_one(t)
    assert.are.same({1, 2, 3}, seen_in_task.list())
    local by_transition = {}
    for i, e in ipairs(log) do by_transition[i] = e.new_name .. "@" .. tostring(e.attempt) end
    assert.are.same({
      "Running@1", "Failed@1", "Retrying@1",
      "Running@2", "Failed@2", "Retrying@2",
      "Running@3", "Failed@3",
    }, by_transition)
  end)

  describe("the RETRY signal", function()
    it("retries now even with max_retries = 0, run_count being the current attempt", function()
      local log, calls = {}, X.tally()
      local t = Task{name = "again", state_handlers = {recorder(log)}, fn = function()
        calls.add(1)
        if calls.count() <= 2 then error(signals.RETRY("go again")) end
        return calls.count()
      end}
      local _, ts = run_one(t)
      assert.are.equal(3, calls.count())
      assert.are.same({
        "Pending() -> " .. RUNNING,
        RUNNING .. ' -> Retrying("go again")',
        'Retrying("go again") -> ' .. RUNNING,
        RUNNING .. ' -> Retrying("go again")',
        'Retrying("go again") -> ' .. RUNNING,
        RUNNING .. ' -> Success("Task run succeeded.")',
      }, lines_of(log))
      assert.are.equal(1, log[2].run_count)
      assert.are.equal(2, log[4].run_count)
      -- due now
      assert.is_true(math.abs(log[2].start - log[2].at) < 0.05 * SLACK)
      assert.are.equal(3, ts.result)
    end)
  end)

  describe("are never made for", function()
    it("a trigger that does not pass (a user trigger returning false)", function()
      local log, trigger_calls, calls = {}, 0, X.tally()
      local up = Task{name = "up"}
      local t = Task{name = "guarded", max_retries = 2, retry_delay = 0,
                     state_handlers = {recorder(log)},
                     trigger = function() trigger_calls = trigger_calls + 1; return false end,
                     fn = function() calls.add(1) end}
      local f = Flow{name = "f", tasks = {up, t}}
      f:add_edge(up, t)
      local fs = f:run()
      assert.are.equal(1, trigger_calls)
      assert.are.equal(0, calls.count())
      assert.are.same({'Pending() -> TriggerFailed("Trigger failed")'}, lines_of(log))
      assert.are.equal('TriggerFailed("Trigger failed")', tostring(fs.result[t]))
    end)

    it("a trigger that does not pass (all_successful after a failed upstream)", function()
      local log, calls = {}, X.tally()
      local up = Task{name = "up", fn = function() error("upstream broke", 0) end}
      local t = Task{name = "down", max_retries = 2, retry_delay = 0,
                     state_handlers = {recorder(log)}, fn = function() calls.add(1) end}
      local f = Flow{name = "f", tasks = {up, t}}
      f:add_edge(up, t)
      local fs = f:run()
      assert.are.equal(0, calls.count())
      assert.are.equal(1, #log)
      assert.are.equal(
        'TriggerFailed("Trigger was "all_successful" but some of the upstream tasks failed.")',
        tostring(fs.result[t]))
    end)

    it("a handler error", function()
      local calls, handler_calls = X.tally(), 0
      local t = Task{name = "h", max_retries = 2, retry_delay = 0,
                     state_handlers = {function(_, _, new)
                       handler_calls = handler_calls + 1
                       if new:is_failed() then error("handler broke", 0) end
                     end},
                     fn = function() calls.add(1); error("body broke", 0) end}
      local _, ts = run_one(t)
      assert.are.equal(1, calls.count())
      assert.are.equal(2, handler_calls) -- Pending->Running, Running->Failed; none after
      assert.are.equal('Failed("Unexpected error while calling state handlers: handler broke")',
                       tostring(ts))
    end)

    it("ENDRUN raised in the body", function()
      local log, calls = {}, X.tally()
      local t = Task{name = "e", max_retries = 2, retry_delay = 0,
                     state_handlers = {recorder(log)},
                     fn = function() calls.add(1); error(signals.ENDRUN(S.Failed("f"))) end}
      local _, ts = run_one(t)
      assert.are.equal(1, calls.count())
      assert.are.same({"Pending() -> " .. RUNNING, RUNNING .. ' -> Failed("f")'}, lines_of(log))
      assert.are.equal('Failed("f")', tostring(ts))
    end)
  end)

  describe("are made for a failure raised in the body:", function()
    for _, case in ipairs({
      {"FAIL", "Failed"},
      {"TRIGGERFAIL", "TriggerFailed"},
      {"VALIDATIONFAIL", "ValidationFailed"},
    }) do
      local signal, class = case[1], case[2]
      it(signal .. " gives " .. class .. ", retried while retries are left", function()
        local log, calls = {}, X.tally()
        local t = Task{name = "s", max_retries = 1, retry_delay = 0,
                       state_handlers = {recorder(log)},
                       fn = function() calls.add(1); error(signals[signal]("no good")) end}
        local _, ts = run_one(t)
        local failed = class .. '("no good")'
        assert.are.equal(2, calls.count())
        assert.are.same({
          "Pending() -> " .. RUNNING,
          RUNNING .. " -> " .. failed,
          failed .. ' -> Retrying("Retrying Task (after attempt 1 of 2)")',
          'Retrying("Retrying Task (after attempt 1 of 2)") -> ' .. RUNNING,
          RUNNING .. " -> " .. failed,
        }, lines_of(log))
        assert.are.equal(failed, tostring(ts))
        assert.is_true(ts:is(S[class]))
      end)
    end
  end)
end) end)

describe("the scheduler", function()
  it("runs independent tasks while a retry waits; the run takes the retry's delay, not a sum", function()
    local events, attempts = {}, 0
    local function mark(name) events[#events + 1] = {name = name, at = now()} end
    local flaky = task{name = "flaky", max_retries = 1, retry_delay = 0.5}(function()
      attempts = attempts + 1
      mark("flaky#" .. attempts)
      if attempts == 1 then error("first attempt fails", 0) end
      return "ok"
    end)
    local function worker(name)
      return Task{name = name, fn = function() busy(0.12); mark(name) end}
    end
    local a, b, c = worker("a"), worker("b"), worker("c")
    local after = Task{name = "after_flaky", fn = function() mark("after_flaky") end}
    local f = Flow{name = "sched", tasks = {flaky, a, b, c, after}}
    f:add_edge(flaky, after)
    local t0 = now()
    local fs = f:run()
    local elapsed = now() - t0
    local order = {}
    for i, e in ipairs(events) do order[i] = e.name end
    assert.are.same({"flaky#1", "a", "b", "c", "flaky#2", "after_flaky"}, order)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    assert.is_true(events[5].at - events[1].at >= 0.5 - 0.005, "the retry came early")
    -- 0.5 s of waiting overlapped with 0.36 s of work: about 0.5 s, never 0.86 s
    assert.is_true(elapsed >= 0.5, "run took " .. elapsed .. " s")
    assert.is_true(elapsed < 0.75, "run took " .. elapsed .. " s: the wait blocked the others")
  end)

  it("sleeps while a retry waits: 2 s of waiting costs well under 0.1 s of CPU", function()
    assert.are.equal("function", type(luaflow.time.cpu_time))
    local calls = 0
    local t = task{name = "waits", max_retries = 1, retry_delay = 2}(function()
      calls = calls + 1
      if calls == 1 then error("retry me", 0) end
      return "done"
    end)
    local f = Flow{name = "cpu", tasks = {t}}
    local cpu0, wall0 = luaflow.time.cpu_time(), now()
    local fs = f:run()
    local cpu, wall = luaflow.time.cpu_time() - cpu0, now() - wall0
    print(("\n# retries_spec: a 2 s retry wait took %.3f s wall, %.4f s CPU (user+sys)%s")
          :format(wall, cpu, SANITIZE and " [sanitizer build]" or ""))
    assert.are.equal(2, calls)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    assert.is_true(wall >= 1.9, "wall " .. wall .. " s")
    assert.is_true(wall < 2 + 0.5 * SLACK, "wall " .. wall .. " s")
    assert.is_true(cpu < (SANITIZE and 0.3 or 0.1), "cpu " .. cpu .. " s")
  end)
end)
