-- luaflow.triggers, skip_on_upstream_skip, user-written triggers, reference tasks and
-- the final flow state.
local luaflow = require("luaflow")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local S, signals, triggers = luaflow.states, luaflow.signals, luaflow.triggers

-- Prefect 1's trigger failure messages (Prefect 1's behaviour).
local MSG = {
  all_successful = 'Trigger was "all_successful" but some of the upstream tasks failed.',
  all_failed = 'Trigger was "all_failed" but some of the upstream tasks succeeded.',
  any_successful = 'Trigger was "any_successful" but none of the upstream tasks succeeded.',
  any_failed = 'Trigger was "any_failed" but none of the upstream tasks failed.',
  all_finished = 'Trigger was "all_finished" but some of the upstream tasks were not finished.',
  not_all_skipped = 'Trigger was "not_all_skipped" but some of the upstream tasks failed.',
  some_successful = 'Trigger was "some_successful" but thresholds were not met.',
  some_failed = 'Trigger was "some_failed" but thresholds were not met.',
}
local UPSTREAM_SKIPPED = "Upstream task was skipped; if this was not the intended behavior, "
  .. "consider setting `skip_on_upstream_skip = false` for this task."
local MANUAL_ONLY = 'Paused("Trigger function is "manual_only"")'

local function trigger_failed(name)
  return 'TriggerFailed("' .. MSG[name] .. '")'
end

-- An upstream task that ends Success, Failed or Skipped.
local function upstream(kind, i)
  local fns = {
    success = function() return i end,
    fail = function() error("up failed", 0) end,
    skip = function() error(signals.SKIP("up skipped")) end,
  }
  return Task{name = kind .. i, fn = fns[kind]}
end

-- Builds `down` from opts, gives it one upstream per entry of kinds (edges in that
-- order), runs the flow; returns down's final state, whether its body ran, and the
-- flow state.
local function run_down(kinds, opts)
  local ups, ran = {}, false
  for i, k in ipairs(kinds) do ups[i] = upstream(k, i) end
  opts = opts or {}
  opts.name = opts.name or "down"
  opts.fn = function() ran = true; return "ran" end
  local down = Task(opts)
  local tasks = {table.unpack(ups)}
  tasks[#tasks + 1] = down
  local f = Flow{name = "triggers", tasks = tasks}
  for _, u in ipairs(ups) do f:add_edge(u, down) end
  local state = f:run()
  return state.result[down], ran, state
end

local function rep(kind, n, list)
  list = list or {}
  for _ = 1, n do list[#list + 1] = kind end
  return list
end

describe("triggers in a flow", function()
  -- {description, upstream kinds, task options, expected final state (nil: it runs)}
  local cases = {
    {"all_successful is the default and fails on a failed upstream", {"success", "fail"}, {},
     trigger_failed("all_successful")},
    {"all_successful passes when every upstream succeeded", {"success", "success"},
     {trigger = triggers.all_successful}},
    {"all_successful counts Skipped as successful", {"success", "skip"},
     {trigger = triggers.all_successful, skip_on_upstream_skip = false}},
    {"all_successful fails on a failed upstream", {"fail", "success"},
     {trigger = triggers.all_successful}, trigger_failed("all_successful")},
    {"all_failed passes when every upstream failed", {"fail", "fail"}, {trigger = triggers.all_failed}},
    {"all_failed fails when one upstream succeeded", {"fail", "success"},
     {trigger = triggers.all_failed}, trigger_failed("all_failed")},
    -- Prefect 1: a Skipped upstream makes all_failed fail.
    {"all_failed fails when one upstream was skipped", {"fail", "skip"},
     {trigger = triggers.all_failed, skip_on_upstream_skip = false}, trigger_failed("all_failed")},
    {"any_successful passes with one success", {"fail", "success"}, {trigger = triggers.any_successful}},
    {"any_successful fails when none succeeded", {"fail", "fail"},
     {trigger = triggers.any_successful}, trigger_failed("any_successful")},
    {"any_failed passes with one failure", {"success", "fail"}, {trigger = triggers.any_failed}},
    {"any_failed fails when none failed", {"success", "success"},
     {trigger = triggers.any_failed}, trigger_failed("any_failed")},
    {"all_finished runs after a failure", {"fail", "success"}, {trigger = triggers.all_finished}},
    {"always_run runs after failures", {"fail", "fail"}, {trigger = triggers.always_run}},
    {"not_all_skipped passes with one skipped and one successful", {"skip", "success"},
     {trigger = triggers.not_all_skipped, skip_on_upstream_skip = false}},
    {"not_all_skipped skips when every upstream was skipped", {"skip", "skip"},
     {trigger = triggers.not_all_skipped, skip_on_upstream_skip = false},
     'Skipped("All upstreams were skipped")'},
    {"not_all_skipped fails when an upstream failed", {"skip", "fail"},
     {trigger = triggers.not_all_skipped, skip_on_upstream_skip = false}, trigger_failed("not_all_skipped")},
    -- some_*: a bound of 1 or more is a count, below 1 a fraction (Prefect 1's behaviour).
    {"some_successful{at_least=2} passes with 2 of 3 successful", {"success", "success", "fail"},
     {trigger = triggers.some_successful{at_least = 2}}},
    {"some_successful{at_least=2} fails with 1 of 3 successful", {"success", "fail", "fail"},
     {trigger = triggers.some_successful{at_least = 2}}, trigger_failed("some_successful")},
    {"some_successful{at_most=0.5} passes with 2 of 4 successful", {"success", "success", "fail", "fail"},
     {trigger = triggers.some_successful{at_most = 0.5}}},
    {"some_successful{at_most=0.5} fails with 3 of 4 successful", {"success", "success", "success", "fail"},
     {trigger = triggers.some_successful{at_most = 0.5}}, trigger_failed("some_successful")},
    {"some_failed{at_least=1} counts one failure, not a fraction", {"fail", "success", "success", "success"},
     {trigger = triggers.some_failed{at_least = 1}}},
    {"some_failed{at_least=1} fails with no failure", {"success", "success"},
     {trigger = triggers.some_failed{at_least = 1}}, trigger_failed("some_failed")},
    {"some_failed{at_least=0.1, at_most=2} passes with exactly 2 of 20 failed", rep("success", 18, rep("fail", 2)),
     {trigger = triggers.some_failed{at_least = 0.1, at_most = 2}}},
    {"some_failed{at_least=0.1, at_most=2} fails with 1 of 20 failed", rep("success", 19, rep("fail", 1)),
     {trigger = triggers.some_failed{at_least = 0.1, at_most = 2}}, trigger_failed("some_failed")},
    {"some_failed{at_least=0.1, at_most=2} fails with 3 of 20 failed", rep("success", 17, rep("fail", 3)),
     {trigger = triggers.some_failed{at_least = 0.1, at_most = 2}}, trigger_failed("some_failed")},
  }
  for _, case in ipairs(cases) do
    local description, kinds, opts, expected = case[1], case[2], case[3], case[4]
    it(description, function()
      local state, ran = run_down(kinds, opts)
      if expected == nil then
        assert.is_true(ran)
        assert.are.equal('Success("Task run succeeded.")', tostring(state))
        assert.are.equal("ran", state.result)
      else
        assert.is_false(ran)
        assert.are.equal(expected, tostring(state))
      end
    end)
  end

  it("prints a TriggerFailed message as is, quotes unescaped", function()
    local state = run_down({"fail"})
    assert.are.equal("TriggerFailed", state.name)
    assert.are.equal(MSG.all_successful, state.message)
    assert.is_true(state:is_failed())
    assert.is_truthy(tostring(state):find('"all_successful"', 1, true))
  end)

  it("a TriggerFailed from a built-in trigger has the TRIGGERFAIL signal as its result", function()
    -- the contract: a state made from a signal has the signal as its result;
    -- Prefect 1: the result is the TRIGGERFAIL object.
    local state = run_down({"fail"})
    assert.are.equal('TRIGGERFAIL("' .. MSG.all_successful .. '")', tostring(state.result))
  end)

  it("a trigger failure is final: no retry even with max_retries", function()
    local log = {}
    local state, ran = run_down({"fail"}, {max_retries = 2, retry_delay = 0, state_handlers = {
      function(_, old, new) log[#log + 1] = tostring(old) .. " -> " .. tostring(new) end}})
    assert.is_false(ran)
    assert.are.equal(trigger_failed("all_successful"), tostring(state))
    -- Prefect 1: a single handler call.
    assert.are.same({"Pending() -> " .. trigger_failed("all_successful")}, log)
  end)

  it("is checked only once the upstream is finished, after its retries", function()
    local seen
    local attempts = 0
    local up = Task{name = "up", max_retries = 1, retry_delay = 0, fn = function()
      attempts = attempts + 1
      if attempts == 1 then error("flaky", 0) end
      return "fine"
    end}
    local down = Task{name = "down", trigger = function(states)
      seen = {}
      for i, s in ipairs(states) do seen[i] = tostring(s) end
      return triggers.all_successful(states)
    end}
    local f = Flow{name = "retry", tasks = {up, down}}
    f:add_edge(up, down)
    local state = f:run()
    assert.are.equal(2, attempts)
    assert.are.same({'Success("Task run succeeded.")'}, seen)
    assert.are.equal('Success("Task run succeeded.")', tostring(state.result[down]))
  end)

  it("a downstream of a TriggerFailed task is TriggerFailed too, and the flow Failed", function()
    local a = upstream("fail", 1)
    local b, c = Task{name = "b"}, Task{name = "c"}
    local f = Flow{name = "chain", tasks = {a, b, c}}
    f:add_edge(a, b)
    f:add_edge(b, c)
    local state = f:run()
    assert.are.equal('Failed("Error during execution of task: up failed")', tostring(state.result[a]))
    assert.are.equal(trigger_failed("all_successful"), tostring(state.result[b]))
    assert.are.equal(trigger_failed("all_successful"), tostring(state.result[c]))
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
  end)
end)

describe("manual_only", function()
  it("pauses the task without running it and leaves the flow Running", function()
    local log, ran = {}, false
    local up = upstream("success", 1)
    local gate = Task{name = "gate", trigger = triggers.manual_only, fn = function() ran = true end,
                      state_handlers = {function(_, old, new) log[#log + 1] = tostring(old) .. " -> " .. tostring(new) end}}
    local f = Flow{name = "manual", tasks = {up, gate}}
    f:add_edge(up, gate)
    local state = f:run()
    assert.is_false(ran)
    assert.are.equal(MANUAL_ONLY, tostring(state.result[gate]))
    assert.is_true(state.result[gate]:is_paused())
    assert.is_nil(state.result[gate].start_time) -- paused until resumed
    assert.are.same({"Pending() -> " .. MANUAL_ONLY}, log)
    assert.are.equal('Running("Running flow.")', tostring(state))
    assert.are.equal('Success("Task run succeeded.")', tostring(state.result[up]))
  end)

  it("gives the Paused state the PAUSE signal as its result", function()
    -- Prefect 1: result = the PAUSE signal.
    local gate = Task{name = "gate", trigger = triggers.manual_only}
    local state = Flow{name = "manual", tasks = {gate}}:run()
    assert.are.equal('PAUSE("Trigger function is "manual_only"")', tostring(state.result[gate].result))
  end)

  it("ignores the upstream states: a failed upstream still pauses, and resume runs it", function()
    -- Prefect 1: manual_only ignores the upstream states.
    local up = upstream("fail", 1)
    local gate = Task{name = "gate", trigger = triggers.manual_only}
    local f = Flow{name = "manual", tasks = {up, gate}}
    f:add_edge(up, gate)
    local paused = f:run()
    assert.are.equal(MANUAL_ONLY, tostring(paused.result[gate]))
    local resumed = f:run{resume = {gate}}
    assert.are.equal('Success("Task run succeeded.")', tostring(resumed.result[gate]))
  end)

  it("leaves the tasks downstream of the paused task unrun", function()
    local ran = false
    local gate = Task{name = "gate", trigger = triggers.manual_only}
    local after = Task{name = "after", fn = function() ran = true end}
    local f = Flow{name = "manual", tasks = {gate, after}}
    f:add_edge(gate, after)
    local state = f:run()
    assert.is_false(ran)
    assert.is_true(state.result[after]:is_pending())
    assert.are.equal('Running("Running flow.")', tostring(state))
  end)

  it("runs the task when flow:run{resume={t}} approves it", function()
    local ran = false
    local gate = Task{name = "gate", trigger = triggers.manual_only, fn = function() ran = true; return "go" end}
    local after = Task{name = "after"}
    local f = Flow{name = "manual", tasks = {gate, after}}
    f:add_edge(gate, after)
    local state = f:run{resume = {gate}}
    assert.is_true(ran)
    assert.are.equal('Success("Task run succeeded.")', tostring(state.result[gate]))
    assert.are.equal("go", state.result[gate].result)
    assert.are.equal('Success("Task run succeeded.")', tostring(state.result[after]))
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
  end)

  it("accepts the reference a builder call returned in resume", function()
    local gate_ref
    local gate = task{name = "gate", trigger = triggers.manual_only}(function() return 5 end)
    local f = Flow("manual", function() gate_ref = gate() end)
    local state = f:run{resume = {gate_ref}}
    assert.are.equal(5, state.result[gate_ref].result)
    assert.is_true(state:is_successful())
  end)
end)

describe("skip_on_upstream_skip", function()
  it("by default skips the task with the exact message, before the trigger is checked", function()
    local state, ran = run_down({"skip", "success"})
    assert.is_false(ran)
    assert.are.equal("Skipped", state.name)
    assert.are.equal(UPSTREAM_SKIPPED, state.message)
    assert.is_nil(state.result)
  end)

  it("skips even when the trigger would fail", function()
    local state, ran = run_down({"skip"}, {trigger = triggers.all_failed})
    assert.is_false(ran)
    assert.are.equal('Skipped("' .. UPSTREAM_SKIPPED .. '")', tostring(state))
  end)

  it("skips even when another upstream failed and any_failed would pass", function()
    -- Prefect 1 step 4: an upstream skip wins over every trigger.
    local state, ran = run_down({"skip", "fail"}, {trigger = triggers.any_failed})
    assert.is_false(ran)
    assert.are.equal(UPSTREAM_SKIPPED, state.message)
  end)

  it("with false lets the trigger pass the task", function()
    local state, ran = run_down({"skip"}, {skip_on_upstream_skip = false})
    assert.is_true(ran)
    assert.are.equal('Success("Task run succeeded.")', tostring(state))
  end)

  it("with false lets the trigger fail the task", function()
    local state, ran = run_down({"skip"}, {skip_on_upstream_skip = false, trigger = triggers.all_failed})
    assert.is_false(ran)
    assert.are.equal(trigger_failed("all_failed"), tostring(state))
  end)

  it("a skip propagates down a chain and the flow succeeds", function()
    local a = upstream("skip", 1)
    local b, c = Task{name = "b"}, Task{name = "c"}
    local f = Flow{name = "chain", tasks = {a, b, c}}
    f:add_edge(a, b)
    f:add_edge(b, c)
    local state = f:run()
    assert.are.equal('Skipped("up skipped")', tostring(state.result[a]))
    assert.are.equal(UPSTREAM_SKIPPED, state.result[b].message)
    assert.are.equal(UPSTREAM_SKIPPED, state.result[c].message)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
  end)
end)

describe("user-written triggers", function()
  it("pass by returning true", function()
    local state, ran = run_down({"fail"}, {trigger = function() return true end})
    assert.is_true(ran)
    assert.are.equal('Success("Task run succeeded.")', tostring(state))
  end)

  it("fail by returning false with TriggerFailed(\"Trigger failed\"), final", function()
    local state, ran = run_down({"success"}, {trigger = function() return false end,
                                              max_retries = 1, retry_delay = 0})
    assert.is_false(ran)
    assert.are.equal('TriggerFailed("Trigger failed")', tostring(state))
  end)

  it("returning false gives a TriggerFailed whose result is a TRIGGERFAIL signal", function()
    -- Prefect 1 step 9: the engine raises TRIGGERFAIL("Trigger failed").
    local state = run_down({"success"}, {trigger = function() return false end})
    assert.are.equal('TRIGGERFAIL("Trigger failed")', tostring(state.result))
  end)

  for _, case in ipairs({
    {"SKIP", function() return signals.SKIP("nah") end, 'Skipped("nah")'},
    {"PAUSE", function() return signals.PAUSE("wait") end, 'Paused("wait")'},
    {"TRIGGERFAIL", function() return signals.TRIGGERFAIL("custom") end, 'TriggerFailed("custom")'},
    {"FAIL", function() return signals.FAIL("no way") end, 'Failed("no way")'},
  }) do
    it("raising " .. case[1] .. " gives the signal's state", function()
      local state, ran = run_down({"success"}, {trigger = function() error(case[2]()) end})
      assert.is_false(ran)
      assert.are.equal(case[3], tostring(state))
    end)
  end

  it("a signal raised in a trigger is the state's result, with its custom fields", function()
    local state = run_down({"success"}, {trigger = function()
      local sig = signals.TRIGGERFAIL("flagged")
      sig.flag = true
      error(sig)
    end})
    assert.are.equal('TriggerFailed("flagged")', tostring(state))
    assert.is_true(state.result.flag)
  end)

  it("raising a plain error gives TriggerFailed with the trigger error message", function()
    local state, ran = run_down({"success"}, {trigger = function() error("oops", 0) end,
                                              max_retries = 1, retry_delay = 0})
    assert.is_false(ran)
    assert.are.equal("TriggerFailed", state.name)
    local prefix = "Unexpected error while checking task trigger: "
    assert.are.equal(prefix, state.message:sub(1, #prefix))
    assert.is_truthy(state.message:find("oops", #prefix, true))
  end)

  it("receive the distinct upstream states in edge order", function()
    local seen
    local a, b, c = upstream("success", 1), upstream("fail", 2), upstream("skip", 3)
    local down = Task{name = "down", skip_on_upstream_skip = false, trigger = function(states)
      seen = {}
      for i, s in ipairs(states) do seen[i] = tostring(s) end
      return true
    end}
    local f = Flow{name = "order", tasks = {a, b, c, down}}
    f:add_edge(c, down)
    f:add_edge(a, down)
    f:add_edge(b, down)
    f:run()
    assert.are.same({
      'Skipped("up skipped")',
      'Success("Task run succeeded.")',
      'Failed("Error during execution of task: up failed")',
    }, seen)
  end)

  it("receive an upstream used by two edges only once", function()
    local count
    local up = task{name = "up"}(function() return 1 end)
    local other = task{name = "other"}(function() return 2 end)
    local down = task{name = "down", trigger = function(states) count = #states; return true end}(
      function(x, y, z) return x + y + z end)
    local f = Flow("distinct", function()
      local u = up()
      local o = other()
      down(u, o, u)
    end)
    local state = f:run()
    assert.are.equal(2, count)
    assert.is_true(state:is_successful())
  end)

  it("find an upstream's state in by_task by builder reference and by bare task", function()
    local by_ref, by_bare, first
    local up_ref
    local up = task{name = "up"}(function() return "u" end)
    local down = task{name = "down", trigger = function(states, by_task)
      by_ref, by_bare, first = by_task[up_ref], by_task[up], states[1]
      return true
    end}(function(x) return x .. "!" end)
    local f = Flow("by_task", function()
      up_ref = up()
      down(up_ref)
    end)
    local state = f:run()
    assert.are.equal('Success("Task run succeeded.")', tostring(by_ref))
    assert.are.equal("u", by_ref.result)
    assert.is_true(rawequal(by_ref, by_bare))
    assert.is_true(rawequal(by_ref, first))
    assert.is_true(state:is_successful())
  end)

  it("tell two copies of one task apart in by_task by their references", function()
    local s1, s2
    local r1, r2
    local up = task{name = "up"}(function(x)
      if x == 2 then error("two", 0) end
      return x
    end)
    local down = task{name = "down", trigger = function(_, by_task)
      s1, s2 = by_task[r1], by_task[r2]
      return true
    end}(function() end)
    Flow("copies", function()
      r1 = up(1)
      r2 = up(2)
      down(r1, r2)
    end):run()
    assert.are.equal('Success("Task run succeeded.")', tostring(s1))
    assert.are.equal('Failed("Error during execution of task: two")', tostring(s2))
  end)
end)

describe("built-in triggers called directly", function()
  local ok_, fail_, skip_ = S.Success("ok"), S.Failed("no"), S.Skipped("skip")

  -- {trigger name, trigger, states, expected: true or the printed signal}
  local cases = {
    {"all_successful", triggers.all_successful, {ok_, skip_}, true},
    {"all_successful", triggers.all_successful, {ok_, fail_}, 'TRIGGERFAIL("' .. MSG.all_successful .. '")'},
    {"all_failed", triggers.all_failed, {fail_, S.TriggerFailed("t")}, true},
    {"all_failed", triggers.all_failed, {fail_, ok_}, 'TRIGGERFAIL("' .. MSG.all_failed .. '")'},
    {"any_successful", triggers.any_successful, {fail_, ok_}, true},
    {"any_successful", triggers.any_successful, {fail_}, 'TRIGGERFAIL("' .. MSG.any_successful .. '")'},
    {"any_failed", triggers.any_failed, {ok_, fail_}, true},
    {"any_failed", triggers.any_failed, {ok_}, 'TRIGGERFAIL("' .. MSG.any_failed .. '")'},
    {"all_finished", triggers.all_finished, {ok_, fail_, S.Cancelled("c")}, true},
    {"all_finished", triggers.all_finished, {ok_, S.Running("r")}, 'TRIGGERFAIL("' .. MSG.all_finished .. '")'},
    {"always_run", triggers.always_run, {ok_, S.Pending()}, 'TRIGGERFAIL("' .. MSG.all_finished .. '")'},
    {"manual_only", triggers.manual_only, {ok_}, 'PAUSE("Trigger function is "manual_only"")'},
    {"not_all_skipped", triggers.not_all_skipped, {skip_, ok_}, true},
    {"not_all_skipped", triggers.not_all_skipped, {skip_, S.Skipped()}, 'SKIP("All upstreams were skipped")'},
    {"not_all_skipped", triggers.not_all_skipped, {skip_, fail_}, 'TRIGGERFAIL("' .. MSG.not_all_skipped .. '")'},
    -- Prefect 1: an empty set counts as all skipped.
    {"not_all_skipped", triggers.not_all_skipped, {}, 'SKIP("All upstreams were skipped")'},
    {"some_successful{at_least=0.5}", triggers.some_successful{at_least = 0.5}, {ok_, fail_}, true},
    {"some_successful{at_least=0.5}", triggers.some_successful{at_least = 0.5}, {ok_, fail_, S.Failed()},
     'TRIGGERFAIL("' .. MSG.some_successful .. '")'},
    {"some_successful{}", triggers.some_successful{}, {fail_, S.Failed()}, true},
    {"some_failed{at_most=1}", triggers.some_failed{at_most = 1}, {fail_, ok_}, true},
    {"some_failed{at_most=1}", triggers.some_failed{at_most = 1}, {fail_, S.Failed()},
     'TRIGGERFAIL("' .. MSG.some_failed .. '")'},
  }
  for _, name in ipairs({"all_successful", "all_failed", "any_successful", "any_failed", "all_finished",
                         "some_successful", "some_failed"}) do
    local t = triggers[name]
    if name:sub(1, 5) == "some_" then t = t{at_least = 1} end
    -- As in Prefect 1, every one of them passes with no upstream at all.
    cases[#cases + 1] = {name .. " (no upstream)", t, {}, true}
  end

  for _, case in ipairs(cases) do
    local name, trig, states, expected = case[1], case[2], case[3], case[4]
    local outcome = expected == true and "passes" or ("raises " .. expected)
    it(name .. " over {" .. #states .. " states} " .. outcome, function()
      local ok, res = pcall(trig, states)
      if expected == true then
        assert.is_true(ok)
        assert.are.equal(true, res)
      else
        assert.is_false(ok)
        assert.are.equal(expected, tostring(res))
      end
    end)
  end

  it("some_failed{at_least=0.1, at_most=2} over 20 states passes only with exactly 2 failures", function()
    local trig = triggers.some_failed{at_least = 0.1, at_most = 2}
    for failures, passes in pairs({[1] = false, [2] = true, [3] = false}) do
      local states = {}
      for i = 1, 20 do states[i] = i <= failures and S.Failed("f" .. i) or S.Success("s" .. i) end
      local ok, res = pcall(trig, states)
      assert.are.equal(passes, ok, failures .. " failures")
      if not passes then
        assert.are.equal('TRIGGERFAIL("' .. MSG.some_failed .. '")', tostring(res))
      end
    end
  end)
end)

describe("reference tasks and the final flow state", function()
  -- a fails; b runs because its trigger is all_failed.
  local function failing_then_recovering(opts)
    local a = upstream("fail", 1)
    local b = Task{name = "b", trigger = triggers.all_failed}
    opts.name = "refs"
    opts.tasks = {a, b}
    if opts.reference_tasks == "a" then opts.reference_tasks = {a} end
    local f = Flow(opts)
    f:add_edge(a, b)
    return f:run(), a, b
  end

  it("defaults to the terminal tasks", function()
    local state, a, b = failing_then_recovering({})
    assert.is_true(state.result[a]:is_failed())
    assert.are.equal('Success("Task run succeeded.")', tostring(state.result[b]))
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
  end)

  it("uses reference_tasks when given", function()
    local state = failing_then_recovering({reference_tasks = "a"})
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
  end)

  it("ignores a failed terminal task that is not a reference task", function()
    local good, bad = Task{name = "good"}, upstream("fail", 1)
    local state = Flow{name = "refs", tasks = {good, bad}, reference_tasks = {good}}:run()
    assert.is_true(state.result[bad]:is_failed())
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
  end)

  it("accepts the bare task in reference_tasks of a builder flow with one copy of it", function()
    local a = task{name = "a"}(function() error("a broke", 0) end)
    local b = task{name = "b", trigger = triggers.all_failed}(function() end)
    local f = Flow({name = "refs", reference_tasks = {a}}, function() b(a()) end)
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(f:run()))
  end)

  it("is Failed when any reference task failed, even beside a Cancelled one", function()
    local cancel = Task{name = "c", state_handlers = {function(_, _, new)
      if new:is_successful() then return S.Cancelled("stopped") end
    end}}
    local state = Flow{name = "refs", tasks = {cancel, upstream("fail", 1)}}:run()
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
  end)

  it("is Success(\"All reference tasks succeeded.\") when every reference task succeeded or skipped", function()
    local state = Flow{name = "refs", tasks = {upstream("success", 1), upstream("skip", 2)}}:run()
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
  end)

  it("is Success(\"No reference tasks failed.\") when a reference task ends Cancelled", function()
    local cancel = Task{name = "c", state_handlers = {function(_, _, new)
      if new:is_successful() then return S.Cancelled("stopped") end
    end}}
    local state = Flow{name = "refs", tasks = {cancel, upstream("success", 1)}}:run()
    assert.are.equal('Cancelled("stopped")', tostring(state.result[cancel]))
    assert.are.equal('Success("No reference tasks failed.")', tostring(state))
  end)

  it("is Success(\"No reference tasks failed.\") when a reference task ends Looped", function()
    -- Replacing Running keeps the body from running, so the task does not loop.
    local looped = Task{name = "l", state_handlers = {function(_, _, new)
      if new:is_running() then return S.Looped("looping") end
    end}}
    local state = Flow{name = "refs", tasks = {looped}}:run()
    assert.are.equal('Looped("looping")', tostring(state.result[looped]))
    assert.are.equal('Success("No reference tasks failed.")', tostring(state))
  end)

  it("maps every task to its final State, whose result is the return value", function()
    local a = upstream("success", 7)
    local b = Task{name = "b", fn = function() return {n = 1} end}
    local state = Flow{name = "refs", tasks = {a, b}}:run()
    assert.are.equal(7, state.result[a].result)
    assert.are.same({n = 1}, state.result[b].result)
    local order = {}
    for t in state:task_states() do order[#order + 1] = tostring(t) end
    assert.are.same({"<Task: success7>", "<Task: b>"}, order)
  end)
end)

-- A flow whose task "sink" has n_ok + n_bad upstream tasks; its final state.
local function fan_in(n_ok, n_bad, trigger)
  local ok = task(function() end) -- every success without a result
  local bad = task(function() error("x") end)
  local sink = task{ name = "sink", trigger = trigger }(function() return "ran" end)
  local flow = Flow("fan-in", function()
    local s = sink()
    for _ = 1, n_ok do s:set_upstream(ok()) end
    for _ = 1, n_bad do s:set_upstream(bad()) end
  end)
  return flow:run().result[sink]
end

describe("triggers over many upstreams", function()
  it("counts each upstream task's success, not each distinct state value", function()
    assert.are.equal("Success", fan_in(18, 2, triggers.some_successful{ at_least = 18, at_most = 18 }).name)
    assert.are.equal("TriggerFailed", fan_in(17, 3, triggers.some_successful{ at_least = 18, at_most = 18 }).name)
  end)

  it("passes the trigger one state per upstream task, in edge order", function()
    local seen
    local spy = function(states) seen = #states; return true end
    assert.are.equal("Success", fan_in(5, 0, spy).name)
    assert.are.equal(5, seen)
  end)

  it("gives a built-in trigger called from Lua the list as it is", function()
    local s = luaflow.states.Success()
    assert.is_true(triggers.some_successful{ at_least = 3 }({ s, s, s }))
    assert.has_error(function() triggers.some_successful{ at_least = 4 }({ s, s, s }) end)
  end)

  it("runs a fan-in of 20,000 upstreams", function()
    assert.are.equal("Success", fan_in(20000, 0, triggers.all_successful).name)
  end)
end)
