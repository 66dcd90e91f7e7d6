-- Timeouts: an endless loop, pcall-wrapped or not, ends TimedOut through the
-- handlers; the other tasks go on; a timed-out task is retried; the engine
-- stays usable. How a deadline interrupts each kind of wait is
-- interrupt_spec.lua's.
local luaflow = require("luaflow")
local timing = require("timing")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local S = luaflow.states
local now, busy, SLACK = timing.now, timing.busy, timing.SLACK
local recorder, lines_of, run_one, RUNNING = timing.recorder, timing.lines_of, timing.run_one, timing.RUNNING
local X = require("executors") -- under every executor: what a body tells goes through a tally

describe("timeouts", function() X.each(function()
  local TIMED_OUT = 'TimedOut("Task timed out during execution.")'

  local function timed(fn, timeout)
    local log = {}
    local t = Task{name = "slow", timeout = timeout or 0.2, fn = fn, state_handlers = {recorder(log)}}
    local t0 = now()
    local fs, ts = run_one(t)
    return fs, ts, log, now() - t0
  end

  it("end an endless Lua loop TimedOut through the handlers", function()
    local fs, ts, log, elapsed = timed(function() while true do end end)
    assert.are.same({"Pending() -> " .. RUNNING, RUNNING .. " -> " .. TIMED_OUT}, lines_of(log))
    assert.are.equal(TIMED_OUT, tostring(ts))
    assert.is_true(ts:is(S.Failed))
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(fs))
    assert.is_true(elapsed >= 0.19, "stopped after " .. elapsed .. " s")
    assert.is_true(elapsed < 0.2 + 0.4 * SLACK, "stopped after " .. elapsed .. " s")
  end)

  it("also when the loop body is wrapped in pcall", function()
    local swallowed = 0
    local _, ts, log = timed(function()
      while true do
        if not pcall(function() local x = 0; for i = 1, 50 do x = x + i end end) then
          swallowed = swallowed + 1
        end
      end
    end)
    assert.are.same({"Pending() -> " .. RUNNING, RUNNING .. " -> " .. TIMED_OUT}, lines_of(log))
    assert.are.equal(TIMED_OUT, tostring(ts))
  end)

  it("also when a pcall is the outermost thing and the body returns normally", function()
    local _, ts, log = timed(function() return pcall(function() while true do end end) end)
    assert.are.same({"Pending() -> " .. RUNNING, RUNNING .. " -> " .. TIMED_OUT}, lines_of(log))
    assert.are.equal(TIMED_OUT, tostring(ts))
  end)

  it("also when an outer pcall wraps a loop of pcalls and the body goes on after it", function()
    local _, ts = timed(function()
      pcall(function() while true do pcall(function() local _ = {} end) end end)
      return "swallowed"
    end)
    assert.are.equal(TIMED_OUT, tostring(ts))
    assert.are_not.equal("swallowed", ts.result)
  end)

  it("leave the other tasks of the flow running and succeeding afterwards", function()
    local ran = X.tally()
    local stuck = Task{name = "stuck", timeout = 0.2, fn = function() while true do end end}
    local other = Task{name = "other", fn = function() ran.add("other"); return 1 end}
    local cleanup = Task{name = "cleanup", trigger = luaflow.triggers.all_finished,
                         fn = function() ran.add("cleanup"); return 2 end}
    local f = Flow{name = "mixed", tasks = {stuck, other, cleanup}}
    f:add_edge(stuck, cleanup)
    local fs = f:run()
    assert.are.equal(TIMED_OUT, tostring(fs.result[stuck]))
    assert.are.equal('Success("Task run succeeded.")', tostring(fs.result[other]))
    assert.are.equal('Success("Task run succeeded.")', tostring(fs.result[cleanup]))
    local seen = {}
    for _, v in ipairs(ran.list()) do seen[v] = true end
    assert.are.same({other = true, cleanup = true}, seen)
    assert.are.equal(2, fs.result[cleanup].result)
  end)

  it("are retried: max_retries = 1, retry_delay = 0 times out twice", function()
    local log, calls = {}, X.tally()
    local t = Task{name = "slow", timeout = 0.1, max_retries = 1, retry_delay = 0,
                   state_handlers = {recorder(log)},
                   fn = function() calls.add(1); while true do end end}
    local _, ts = run_one(t)
    assert.are.equal(2, calls.count())
    assert.are.same({
      "Pending() -> " .. RUNNING,
      RUNNING .. " -> " .. TIMED_OUT,
      TIMED_OUT .. ' -> Retrying("Retrying Task (after attempt 1 of 2)")',
      'Retrying("Retrying Task (after attempt 1 of 2)") -> ' .. RUNNING,
      RUNNING .. " -> " .. TIMED_OUT,
    }, lines_of(log))
    assert.are.equal(TIMED_OUT, tostring(ts))
  end)

  it("let a task that finishes in time succeed", function()
    local _, ts, log = timed(function() busy(0.05); return "in time" end, 1.5)
    assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    assert.are.equal("in time", ts.result)
    assert.are.equal(2, #log)
  end)

  it("let a pcall-heavy task that finishes in time succeed", function()
    local _, ts = timed(function()
      local failures = 0
      for _ = 1, 20000 do
        if not pcall(error, "inner") then failures = failures + 1 end
      end
      return failures
    end, 5)
    assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    assert.are.equal(20000, ts.result)
  end)

  it("leave the engine usable: the next flow runs long loops and its own pcalls", function()
    timed(function() while true do pcall(function() end) end end)
    -- outside any flow, a long loop is not interrupted by a leftover hook
    local x = 0
    for i = 1, 3000000 do x = x + i end
    assert.are.equal(3000000 * 3000001 // 2, x)
    local log = {}
    local t = Task{name = "after", state_handlers = {recorder(log)}, fn = function()
      local ok, e = pcall(error, "mine", 0)
      local y = 0
      local t0 = now()
      while now() - t0 < 0.3 do y = y + 1 end -- longer than the earlier timeout
      return {ok = ok, e = e, spun = y > 0}
    end}
    local fs, ts = run_one(t)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    assert.are.same({ok = false, e = "mine", spun = true}, ts.result)
    assert.are.equal(2, #log)
  end)

  it("reject bad values (negative, 0, a string) with an error naming timeout", function()
    for _, bad in ipairs({-1, -0.5, 0, "5"}) do
      local ok, err = pcall(Task, {name = "t", timeout = bad})
      assert.is_false(ok, "timeout = " .. tostring(bad) .. " was accepted")
      assert.is_truthy(tostring(err):find("timeout", 1, true), tostring(err))
      ok, err = pcall(function() return task{timeout = bad}(function() end) end)
      assert.is_false(ok, "task{timeout = " .. tostring(bad) .. "} was accepted")
      assert.is_truthy(tostring(err):find("timeout", 1, true), tostring(err))
    end
  end)

  it("holds an outer task's timeout while it runs a flow of its own", function()
    -- (the inner flow is made in the body: a Flow object cannot cross to a worker)
    local outer_t = Task{ name = "outer_t", timeout = 0.2, fn = function()
      local busy = luaflow.Task{ name = "busy", fn = function()
        local t0 = os.clock()
        while os.clock() - t0 < 1.5 do end
      end }
      luaflow.Flow{ name = "inner", tasks = { busy } }:run()
    end }
    local t0 = luaflow.time.now()
    local state = Flow{ name = "outer", tasks = { outer_t } }:run()
    assert.are.equal("TimedOut", state.result[outer_t].name)
    assert.is_true(luaflow.time.now() - t0 < 1.2)
  end)
end) end)
