-- Prefect Core 1.4.1's task-runner scenarios, each with the exact sequence of
-- (old -> new) handler calls Prefect makes, its final state and its result.
-- (Mapping and caching have specs of their own where they are built.)
local luaflow = require("luaflow")
local S, signals, triggers = luaflow.states, luaflow.signals, luaflow.triggers
local Task, Flow = luaflow.Task, luaflow.Flow
local util = require("util")

local RUNNING = 'Running("Starting task run.")'
local SUCCESS = 'Success("Task run succeeded.")'
local ERR = 'Failed("Error during execution of task: custom-error-message")'

-- Runs task `t` (options plus a recorder) in a flow, after `ups` upstream
-- tasks when given; returns the handler calls, the task's state and the flow's.
local function scenario(opts, ups)
  local log = {}
  opts.name = opts.name or "t"
  opts.state_handlers = { util.recorder(log) }
  local t = Task(opts)
  local tasks = { t }
  for _, u in ipairs(ups or {}) do tasks[#tasks + 1] = u end
  local f = Flow{ name = "scenario", tasks = tasks }
  for _, u in ipairs(ups or {}) do f:add_edge(u, t) end
  local fs = f:run()
  return log, fs.result[t], fs
end

local function raising(v) return function() error(v, 0) end end

describe("Prefect's task scenarios", function()
  it("1. a plain success: two calls", function()
    local log, ts = scenario{ fn = function() return 1 end }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. " -> " .. SUCCESS }, log)
    assert.are.equal(1, ts.result)
  end)

  it("2. a plain error: two calls, the error is the result", function()
    local e = setmetatable({}, { __tostring = function() return "custom-error-message" end })
    local log, ts = scenario{ fn = raising(e) }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. " -> " .. ERR }, log)
    assert.is_true(rawequal(e, ts.result))
  end)

  it("3. max_retries = 2, always failing: three attempts, the last Failed is final", function()
    local log, ts = scenario{ max_retries = 2, retry_delay = 0, fn = function()
      error("custom-error-message", 0)
    end }
    local r1 = 'Retrying("Retrying Task (after attempt 1 of 3)")'
    local r2 = 'Retrying("Retrying Task (after attempt 2 of 3)")'
    assert.are.same({
      "Pending() -> " .. RUNNING, RUNNING .. " -> " .. ERR, ERR .. " -> " .. r1,
      r1 .. " -> " .. RUNNING, RUNNING .. " -> " .. ERR, ERR .. " -> " .. r2,
      r2 .. " -> " .. RUNNING, RUNNING .. " -> " .. ERR,
    }, log)
    assert.are.equal(ERR, tostring(ts))
  end)

  it("4. FAIL: Failed(msg) whose result is the signal, retried with retries left", function()
    local sig = signals.FAIL("custom-fail-message")
    local log, ts = scenario{ fn = raising(sig) }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. ' -> Failed("custom-fail-message")' }, log)
    assert.is_true(rawequal(sig, ts.result))
    local log2 = scenario{ max_retries = 1, retry_delay = 0, fn = raising(signals.FAIL("custom-fail-message")) }
    assert.are.equal('Failed("custom-fail-message") -> Retrying("Retrying Task (after attempt 1 of 2)")', log2[3])
    assert.are.equal(5, #log2)
  end)

  it("5. SUCCESS: Success(msg) whose result is the signal, or the result given", function()
    local sig = signals.SUCCESS("yay")
    local log, ts = scenario{ fn = raising(sig) }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. ' -> Success("yay")' }, log)
    assert.is_true(rawequal(sig, ts.result))
    local _, ts5 = scenario{ fn = raising(signals.SUCCESS("yay", { result = 5 })) }
    assert.are.equal(5, ts5.result)
  end)

  it("6. RETRY: Retrying(msg) due now, run_count the attempt, even with no retries", function()
    local log, ts = scenario{ fn = function()
      if luaflow.context.task_run_count < 3 then error(signals.RETRY("again")) end
      return "third"
    end, name = "r" }
    assert.are.same({
      "Pending() -> " .. RUNNING, RUNNING .. ' -> Retrying("again")',
      'Retrying("again") -> ' .. RUNNING, RUNNING .. ' -> Retrying("again")',
      'Retrying("again") -> ' .. RUNNING, RUNNING .. " -> " .. SUCCESS,
    }, log)
    assert.are.equal("third", ts.result)
  end)

  it("7. SKIP: Skipped(msg), never retried; SKIP() prints Skipped()", function()
    local log, ts = scenario{ max_retries = 1, retry_delay = 0, fn = raising(signals.SKIP("skipping")) }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. ' -> Skipped("skipping")' }, log)
    assert.are.equal("SKIP", signals.kind(ts.result))
    local _, ts2 = scenario{ fn = raising(signals.SKIP()) }
    assert.are.equal("Skipped()", tostring(ts2))
  end)

  it("8. PAUSE: Paused(msg) without a start time; the run ends there", function()
    local log, ts, fs = scenario{ fn = raising(signals.PAUSE("hold")) }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. ' -> Paused("hold")' }, log)
    assert.is_nil(ts.start_time)
    assert.are.equal('Running("Running flow.")', tostring(fs))
  end)

  it("9. TRIGGERFAIL and VALIDATIONFAIL in the body: failures that are retried", function()
    local log = scenario{ fn = raising(signals.TRIGGERFAIL("tf")) }
    assert.are.equal(RUNNING .. ' -> TriggerFailed("tf")', log[2])
    local log2 = scenario{ fn = raising(signals.VALIDATIONFAIL("vf")) }
    assert.are.equal(RUNNING .. ' -> ValidationFailed("vf")', log2[2])
    local log3, ts3 = scenario{ max_retries = 1, retry_delay = 0, fn = raising(signals.VALIDATIONFAIL("vf")) }
    assert.are.equal('ValidationFailed("vf") -> Retrying("Retrying Task (after attempt 1 of 2)")', log3[3])
    assert.are.equal('ValidationFailed("vf")', tostring(ts3))
  end)

  it("10. LOOP: six calls for three iterations", function()
    local log, ts = scenario{ fn = function()
      if luaflow.context.task_loop_count < 3 then error(signals.LOOP()) end
      return "out"
    end }
    assert.are.same({
      "Pending() -> " .. RUNNING, RUNNING .. ' -> Looped("Task is looping (1)")',
      'Pending("Looping task (on loop index 1)") -> ' .. RUNNING, RUNNING .. ' -> Looped("Task is looping (2)")',
      'Pending("Looping task (on loop index 2)") -> ' .. RUNNING, RUNNING .. " -> " .. SUCCESS,
    }, log)
    assert.are.equal("out", ts.result)
  end)

  it("11. ENDRUN(Failed(\"f\")): final, not retried", function()
    local log, ts = scenario{ max_retries = 1, retry_delay = 0, fn = raising(signals.ENDRUN(S.Failed("f"))) }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. ' -> Failed("f")' }, log)
    assert.are.equal('Failed("f")', tostring(ts))
  end)

  it("12. a timeout: TimedOut with the timeout's own message as result", function()
    local log, ts = scenario{ timeout = 0.1, fn = function() while true do end end }
    assert.are.same({ "Pending() -> " .. RUNNING, RUNNING .. ' -> TimedOut("Task timed out during execution.")' }, log)
    assert.are.equal("Execution timed out.", ts.result)
  end)

  it("13. a failed upstream with the default trigger: one call, the body never runs", function()
    local ran = false
    local up = Task{ name = "up", fn = raising("no") }
    local log, ts = scenario({ fn = function() ran = true end }, { up })
    assert.are.same({
      'Pending() -> TriggerFailed("Trigger was "all_successful" but some of the upstream tasks failed.")',
    }, log)
    assert.are.equal("TRIGGERFAIL", signals.kind(ts.result))
    assert.is_false(ran)
  end)

  it("14. a skipped upstream: one call to Skipped, no result, whatever the trigger", function()
    local up = Task{ name = "up", fn = raising(signals.SKIP()) }
    local failed = Task{ name = "failed", fn = raising("no") }
    local log, ts = scenario({ trigger = triggers.any_failed }, { up, failed })
    assert.are.equal(1, #log)
    assert.is_truthy(log[1]:find("^Pending%(%) %-> Skipped%(\"Upstream task was skipped"), log[1])
    assert.is_nil(ts.result)
  end)

  it("15. an upstream that never finishes: no call at all", function()
    local up = Task{ name = "up", trigger = triggers.manual_only }
    local log, ts = scenario({}, { up })
    assert.are.same({}, log)
    assert.are.equal('Pending("Task not run.")', tostring(ts))
  end)

  it("16. manual_only: one call to Paused, no start time, the PAUSE as result; resumed it runs", function()
    local log, ts = scenario{ trigger = triggers.manual_only, fn = function() return "go" end }
    assert.are.same({ 'Pending() -> Paused("Trigger function is "manual_only"")' }, log)
    assert.is_nil(ts.start_time)
    assert.are.equal("PAUSE", signals.kind(ts.result))
    local t = Task{ name = "m", trigger = triggers.manual_only, fn = function() return "go" end }
    local fs = Flow{ name = "m", tasks = { t } }:run{ resume = { t } }
    assert.are.equal("go", fs.result[t].result)
  end)
end)

describe("Prefect's flow-level scenarios", function()
  it("a task retried inside flow:run makes five calls; the flow's handlers still see two", function()
    local task_log, flow_log = {}, {}
    local t = Task{ name = "t", max_retries = 1, retry_delay = 0, state_handlers = { util.recorder(task_log) },
                    fn = function() if luaflow.context.task_run_count == 1 then error("once", 0) end end }
    local fs = Flow{ name = "f", tasks = { t }, state_handlers = { util.recorder(flow_log) } }:run()
    local classes = {}
    for k, line in ipairs(task_log) do classes[k] = line:match("-> (%a+)") end
    assert.are.same({ "Running", "Failed", "Retrying", "Running", "Success" }, classes)
    assert.are.same({ 'Scheduled() -> Running("Running flow.")',
                      'Running("Running flow.") -> Success("All reference tasks succeeded.")' }, flow_log)
    assert.is_true(fs:is_successful())
  end)
end)
