-- Behaviours that follow Prefect Core 1.x's own tests: state equality, the
-- bounded triggers with no upstreams, run counts inside a loop, get-item with a
-- task's result as key, RETRY with start_time and run_count.
local luaflow = require("luaflow")
local S, signals, triggers = luaflow.states, luaflow.signals, luaflow.triggers
local Task, Flow, task, Parameter = luaflow.Task, luaflow.Flow, luaflow.task, luaflow.Parameter
local util = require("util")

describe("state equality", function()
  it("compares a result that is itself a State by state equality", function()
    local s1 = S.State{ result = S.Success{ result = 1 } }
    local s2 = S.State{ result = S.Success{ result = 2 } }
    local s3 = S.State{ result = S.Success{ result = 1 } }
    assert.is_true(s1 == s3)
    assert.is_false(s1 == s2)
  end)

  it("ignores the message at every level, as a state's own equality does", function()
    assert.is_true(S.State{ result = S.Success("a", { result = 1 }) }
                   == S.State{ result = S.Success("b", { result = 1 }) })
    assert.is_true(S.State("x", { result = 1 }) == S.State("y", { result = 1 }))
  end)

  it("tells nested states of different classes apart", function()
    assert.is_false(S.State{ result = S.Success{ result = 1 } } == S.State{ result = S.Failed{ result = 1 } })
    assert.is_false(S.State{ result = S.Success() } == S.State{ result = 1 })
  end)

  it("compares states nested two deep", function()
    local function nest(v) return S.Failed{ result = S.Success{ result = S.Skipped{ result = v } } } end
    assert.is_true(nest("x") == nest("x"))
    assert.is_false(nest("x") == nest("y"))
  end)

  it("still compares other results by identity", function()
    local t = {}
    assert.is_true(S.Success{ result = t } == S.Success{ result = t })
    assert.is_false(S.Success{ result = {} } == S.Success{ result = {} })
  end)
end)

describe("some_successful and some_failed with bounds", function()
  it("pass with no upstream tasks at all", function()
    assert.is_true(triggers.some_failed{ at_least = 2, at_most = 4 }({}, {}))
    assert.is_true(triggers.some_successful{ at_least = 2, at_most = 4 }({}, {}))
    assert.is_true(triggers.some_successful{ at_least = 0.5 }({}, {}))
  end)

  it("let a root task with such a trigger run", function()
    local t = Task{ name = "root", trigger = triggers.some_failed{ at_least = 2 }, fn = function() return 7 end }
    local _, ts = util.run_one(t)
    assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    assert.are.equal(7, ts.result)
  end)

  it("still count when there are upstreams", function()
    local ok = S.Success()
    assert.has_error(function() triggers.some_failed{ at_least = 2 }({ ok, ok }, {}) end)
  end)
end)

describe("task_run_count inside a loop", function()
  -- Prefect starts each loop iteration from Pending, which carries no run
  -- count, so every iteration counts its attempts from 1.
  it("starts again from 1 in each loop iteration after a retry", function()
    local counts, failed = {}, false
    local t = Task{ name = "looper", max_retries = 1, retry_delay = 0, fn = function()
      local loop = luaflow.context.task_loop_count
      counts[#counts + 1] = luaflow.context.task_run_count
      if loop == 2 and not failed then
        failed = true
        error("once in loop 2", 0)
      end
      if loop < 4 then error(signals.LOOP()) end
      return "done"
    end }
    local _, ts = util.run_one(t)
    assert.are.same({ 1, 1, 2, 1, 1 }, counts)
    assert.are.equal("done", ts.result)
  end)

  it("retries a failure in a later iteration again", function()
    local counts, failures = {}, {}
    local t = Task{ name = "looper", max_retries = 1, retry_delay = 0, fn = function()
      local loop = luaflow.context.task_loop_count
      counts[#counts + 1] = loop .. ":" .. luaflow.context.task_run_count
      if (loop == 2 or loop == 3) and not failures[loop] then
        failures[loop] = true
        error("once in loop " .. loop, 0)
      end
      if loop < 3 then error(signals.LOOP()) end
      return "done"
    end }
    local _, ts = util.run_one(t)
    assert.are.same({ "1:1", "2:1", "2:2", "3:1", "3:2" }, counts)
    assert.are.equal('Success("Task run succeeded.")', tostring(ts))
  end)

  it("keeps the loop's result and count across the retry", function()
    local seen, failed = {}, false
    local t = Task{ name = "acc", max_retries = 1, retry_delay = 0, fn = function()
      local acc = luaflow.context.task_loop_result or 0
      seen[#seen + 1] = luaflow.context.task_loop_count .. "=" .. acc
      if luaflow.context.task_loop_count == 2 and not failed then
        failed = true
        error("hiccup", 0)
      end
      if luaflow.context.task_loop_count < 3 then error(signals.LOOP{ result = acc + 1 }) end
      return acc
    end }
    local _, ts = util.run_one(t)
    assert.are.same({ "1=0", "2=1", "2=1", "3=2" }, seen)
    assert.are.equal(2, ts.result)
  end)

  it("gives a task that never looped no loop result, even after another task looped", function()
    local seen = "unset"
    local looper = Task{ name = "looper", fn = function()
      if luaflow.context.task_loop_count < 2 then error(signals.LOOP{ result = "mine" }) end
    end }
    local after = Task{ name = "after", fn = function() seen = luaflow.context.task_loop_result end }
    local f = Flow{ name = "loops", tasks = { looper, after } }
    f:add_edge(looper, after)
    f:run()
    assert.is_nil(seen)
  end)
end)

describe("indexing a reference with a reference", function()
  it("makes a get-item task whose key is the second task's result", function()
    local out
    local f = Flow("get-item", function()
      local x, y = Parameter("x")(), Parameter("y")()
      out = x[y]
    end)
    local state = f:run{ parameters = { x = { a = 1, b = 2 }, y = "b" } }
    assert.are.equal(2, state.result[out].result)
    local names = {}
    for _, e in ipairs(f:edges()) do names[#names + 1] = e.upstream.name .. "->" .. e.downstream.name end
    table.sort(names)
    assert.are.same({ "x->GetItem", "y->GetItem" }, names)
  end)

  it("takes an uncalled task as key as a data edge too", function()
    local out
    local y = Parameter("y", { default = 1 })
    local f = Flow("get-item-bare", function()
      out = task("rows", function() return { "first", "second" } end)()[y]
    end)
    assert.are.equal("first", f:run().result[out].result)
    assert.are.equal("second", f:run{ parameters = { y = 2 } }.result[out].result)
  end)

  it("feeds the item to a downstream task", function()
    local got
    local f = Flow("get-item-down", function()
      local pick = task("pick", function() return "k" end)()
      local data = task("data", function() return { k = "v" } end)()
      task("use", function(v) got = v end)(data[pick])
    end)
    assert.is_true(f:run():is_successful())
    assert.are.equal("v", got)
  end)
end)

describe("RETRY with start_time and run_count", function()
  it("gives a Retrying state that carries them and is due at start_time", function()
    local retrying, started
    local counts = {}
    local t = Task{ name = "later", fn = function()
      counts[#counts + 1] = luaflow.context.task_run_count
      if #counts == 1 then
        started = luaflow.time.now():timestamp()
        error(signals.RETRY{ message = "later", start_time = started + 0.3, run_count = 5 })
      end
      return luaflow.time.now():timestamp() - started
    end, state_handlers = { function(_, _, new) if new:is_retrying() then retrying = new end end } }
    local _, ts = util.run_one(t)
    assert.are.equal('Retrying("later")', tostring(retrying))
    assert.are.equal(5, retrying.run_count)
    assert.is_true(math.abs(retrying.start_time:timestamp() - (started + 0.3)) < 1e-3)
    assert.is_true(ts.result >= 0.29, "ran again before start_time: " .. ts.result)
    assert.are.same({ 1, 6 }, counts) -- the next attempt follows the given run_count
  end)

  it("takes a time value as start_time and keeps its custom fields", function()
    local retrying
    local due = luaflow.time.now()
    local t = Task{ name = "t", fn = function()
      if luaflow.context.task_run_count == 1 then
        local sig = signals.RETRY("now", { start_time = due })
        sig.flag = true
        error(sig)
      end
    end, state_handlers = { function(_, _, new) if new:is_retrying() then retrying = new end end } }
    util.run_one(t)
    assert.are.equal(due:timestamp(), retrying.start_time:timestamp())
    assert.are.equal(1, retrying.run_count)
    assert.is_true(retrying.result.flag)
    assert.are.same({ flag = true }, require("luaflow.core").states._fields(retrying))
  end)

  it("rejects a start_time that is not a time and a run_count that is not an integer", function()
    assert.has_error(function() signals.RETRY{ start_time = "soon" } end)
    assert.has_error(function() signals.RETRY{ run_count = 1.5 } end)
    assert.has_error(function() signals.FAIL{ start_time = 1 } end)
  end)
end)
