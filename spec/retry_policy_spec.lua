-- The retry policy: retry_backoff, max_retry_delay, retry_jitter, retry_on
-- and FAIL(..., {retry = false}); the INFO line says each retry's delay, or
-- why a failure that had retries left is not retried; the options are
-- checked, naming the user's file and line.
local luaflow = require("luaflow")
local timing = require("timing")
local cli = require("cli")
local util = require("util")
local Task, Flow = luaflow.Task, luaflow.Flow
local signals = luaflow.signals
local recorder, run_one, SLACK = timing.recorder, timing.run_one, timing.SLACK
local has = util.has

-- The waits (start_time - time of the transition) of the Retrying states in log.
local function waits(log)
  local list = {}
  for _, e in ipairs(log) do
    if e.new_name == "Retrying" then list[#list + 1] = e.start - e.at end
  end
  return list
end

local function near(expected, got, what)
  assert.is_true(got > expected - 0.02 * SLACK and got <= expected + 0.005,
                 ("%s: expected about %.3f s, got %.3f s"):format(what, expected, got))
end

describe("the retry policy", function()
  after_each(cli.cleanup)

  it("retry_backoff multiplies each wait; max_retry_delay caps it", function()
    local log = {}
    local t = Task{ name = "backs_off", max_retries = 4, retry_delay = 0.02, retry_backoff = 2,
                    max_retry_delay = 0.1, state_handlers = { recorder(log) },
                    fn = function() error("down", 0) end }
    local _, ts = run_one(t)
    assert.are.equal("Failed", ts.name)
    local w = waits(log)
    assert.are.equal(4, #w)
    near(0.02, w[1], "retry 1")
    near(0.04, w[2], "retry 2")
    near(0.08, w[3], "retry 3")
    near(0.1, w[4], "retry 4 (capped)")
  end)

  it("without the new options every retry waits retry_delay, as before", function()
    local log = {}
    local t = Task{ name = "plain", max_retries = 2, retry_delay = 0.03, state_handlers = { recorder(log) },
                    fn = function() error("down", 0) end }
    run_one(t)
    local w = waits(log)
    near(0.03, w[1], "retry 1")
    near(0.03, w[2], "retry 2")
  end)

  it("retry_jitter spreads the waits within [1 - j, 1 + j] of the delay, never past the cap", function()
    local log = {}
    local t = Task{ name = "jittery", max_retries = 12, retry_delay = 0.02, retry_jitter = 0.5,
                    max_retry_delay = 0.025, state_handlers = { recorder(log) },
                    fn = function() error("down", 0) end }
    run_one(t)
    local w = waits(log)
    assert.are.equal(12, #w)
    local distinct = {}
    for i, d in ipairs(w) do
      assert.is_true(d >= 0.01 - 0.005 and d <= 0.025 + 0.005, ("wait %d: %.4f"):format(i, d))
      distinct[("%.4f"):format(d)] = true
    end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.is_true(n >= 4, "the waits are spread, not all equal")
  end)

  it("retry_on decides which failures are retried; a rejected one is final", function()
    local calls, seen = 0, {}
    local t = Task{ name = "picky", max_retries = 5, retry_delay = 0,
                    retry_on = function(state)
                      seen[#seen + 1] = { state.name, luaflow.context.task_name, luaflow.context.task_run_count }
                      return not state.message:find("fatal", 1, true)
                    end,
                    fn = function()
                      calls = calls + 1
                      error(calls < 3 and "transient" or "fatal", 0)
                    end }
    local _, ts = run_one(t)
    assert.are.equal(3, calls)
    assert.are.equal('Failed("Error during execution of task: fatal")', tostring(ts))
    assert.are.same({ { "Failed", "picky", 1 }, { "Failed", "picky", 2 }, { "Failed", "picky", 3 } }, seen)
  end)

  it("retry_on sees signals and timeouts too, and is not asked about successes", function()
    local asked = {}
    local n = 0
    local t = Task{ name = "signals", max_retries = 3, retry_delay = 0,
                    retry_on = function(state) asked[#asked + 1] = state.name; return state.name ~= "ValidationFailed" end,
                    fn = function()
                      n = n + 1
                      if n == 1 then error(signals.FAIL("f")) end
                      if n == 2 then error(signals.TRIGGERFAIL("t")) end
                      error(signals.VALIDATIONFAIL("v"))
                    end }
    local _, ts = run_one(t)
    assert.are.same({ "Failed", "TriggerFailed", "ValidationFailed" }, asked)
    assert.are.equal('ValidationFailed("v")', tostring(ts))
    local ok = Task{ name = "fine", max_retries = 1, retry_delay = 0,
                     retry_on = function() error("must not be asked") end }
    local _, s2 = run_one(ok)
    assert.are.equal("Success", s2.name)
  end)

  it("a retry_on that raises is a rejection (logged), never a crash", function()
    local calls = 0
    local t = Task{ name = "broken_policy", max_retries = 3, retry_delay = 0,
                    retry_on = function() error("policy bug") end,
                    fn = function() calls = calls + 1; error("down", 0) end }
    local fs, ts = run_one(t)
    assert.are.equal(1, calls)
    assert.are.equal("Failed", ts.name)
    assert.are.equal("Failed", fs.name)
  end)

  it("FAIL(msg, {retry = false}) is never retried; FAIL(msg) still is", function()
    local calls = 0
    local t = Task{ name = "refuses", max_retries = 3, retry_delay = 0, fn = function()
      calls = calls + 1
      error(signals.FAIL("bad input", { retry = false, result = 7 }))
    end }
    local _, ts = run_one(t)
    assert.are.equal(1, calls)
    assert.are.equal('Failed("bad input")', tostring(ts))
    assert.are.equal(7, ts.result)
    local again = 0
    local u = Task{ name = "retried", max_retries = 2, retry_delay = 0, fn = function()
      again = again + 1
      error(signals.FAIL("flaky", { retry = true }))
    end }
    run_one(u)
    assert.are.equal(3, again)
    -- the option is not a custom field of the state
    local sig = signals.FAIL{ message = "m", retry = false }
    assert.are.equal("m", sig.message)
    assert.is_nil(sig.retry)
  end)

  it("a refused failure stays refused when its state crosses to another Lua state (the codec)", function()
    local codec = require("luaflow.core").codec
    local probe = Task{ name = "probe", fn = function() error(signals.FAIL("nope", { retry = false })) end }
    local refused = run_one(probe).result[probe]
    local ok, copy = codec.decode(codec.encode(refused))
    assert.is_true(ok, copy)
    assert.are.equal('Failed("nope")', tostring(copy))
    -- a handler puts the copy in place of the body's failure: the engine reads its no-retry mark
    local calls = 0
    local t = Task{ name = "swapped", max_retries = 3, retry_delay = 0,
                    state_handlers = { function(_, old, new)
                      if old:is_running() and new:is_failed() then return copy end
                    end },
                    fn = function() calls = calls + 1; error("plain", 0) end }
    local _, ts = run_one(t)
    assert.are.equal(1, calls)
    assert.are.equal('Failed("nope")', tostring(ts))
  end)

  it("task_will_retry follows the policy, so final_only alerts fire on a rejected retry", function()
    local seen = {}
    local h = function(_, _, new)
      if new:is_failed() then seen[#seen + 1] = tostring(luaflow.context.task_will_retry) end
    end
    local n = 0
    local t = Task{ name = "ctx", max_retries = 3, retry_delay = 0, state_handlers = { h },
                    retry_on = function(s) return s.message ~= "stop" end,
                    fn = function()
                      n = n + 1
                      if n == 1 then error("again", 0) end
                      if n == 2 then error(signals.FAIL("no", { retry = false })) end
                    end }
    run_one(t)
    assert.are.same({ "true", "false" }, seen)
    local finals = {}
    local u = Task{ name = "final", max_retries = 2, retry_delay = 0,
                    retry_on = function() return false end,
                    on_failure = function(_, s) finals[#finals + 1] = s.message end, on_failure_final_only = true,
                    fn = function() error("once", 0) end }
    run_one(u)
    assert.are.same({ "Error during execution of task: once" }, finals)
  end)

  it("the INFO line says each retry's delay, and why a failure is not retried", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local n = 0
local a = luaflow.Task{name = "grows", max_retries = 2, retry_delay = 0.05, retry_backoff = 3,
  fn = function() error("down", 0) end}
local b = luaflow.Task{name = "picky", max_retries = 2, retry_delay = 0,
  retry_on = function(s) return false end, fn = function() error("fatal", 0) end}
local c = luaflow.Task{name = "refuses", max_retries = 2, retry_delay = 0,
  fn = function() error(luaflow.signals.FAIL("bad input", {retry = false})) end}
local d = luaflow.Task{name = "broken", max_retries = 2, retry_delay = 0,
  retry_on = function(s) error("policy bug", 0) end, fn = function() error("x", 0) end}
return luaflow.Flow{name = "policy", tasks = {a, b, c, d}}
]])
    local r = cli.run({ "run", path, "--log-level", "INFO" })
    assert.are.equal(1, r.code, r.stderr)
    local e = r.stderr
    assert.is_true(has(e, "INFO - luaflow.TaskRunner | Task 'grows': attempt 1 of 3 failed: down; retrying in 0.05 s"), e)
    assert.is_true(has(e, "Task 'grows': attempt 2 of 3 failed: down; retrying in 0.15 s"), e)
    assert.is_true(has(e, "INFO - luaflow.TaskRunner | Task 'picky': attempt 1 of 3 failed: fatal; not retrying: retry_on rejected this failure"), e)
    assert.is_true(has(e, "Task 'refuses': attempt 1 of 3 failed: bad input; not retrying: the failure was raised with retry = false"), e)
    assert.is_true(has(e, "WARNING - luaflow.TaskRunner | Task 'broken': retry_on raised an error: policy bug"), e)
    assert.is_true(has(e, "Task 'broken': attempt 1 of 3 failed: x; not retrying: retry_on raised an error"), e)
    assert.are.equal(0, util.count(e, "Task 'grows': attempt 3"), e) -- exhausted: no retry line
  end)

  it("checks its options' types and ranges, naming the user's file and line", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local opts = load("return " .. os.getenv("OPTS"))()
local t = luaflow.Task(opts)
]])
    local cases = {
      { "{max_retries = 1, retry_delay = 1, retry_backoff = 0.5}", "retry_backoff must be a number >= 1 (got the number 0.5)" },
      { "{max_retries = 1, retry_delay = 1, retry_backoff = '2'}", "retry_backoff must be a number >= 1 (got the string \"2\")" },
      { "{max_retries = 1, retry_delay = 1, max_retry_delay = 0}", "max_retry_delay must be a number of seconds > 0 (got the number 0)" },
      { "{max_retries = 1, retry_delay = 1, retry_jitter = 1.5}", "retry_jitter must be a number from 0 to 1 (got the number 1.5)" },
      { "{max_retries = 1, retry_delay = 1, retry_jitter = 0/0}", "retry_jitter must be a number from 0 to 1" },
      { "{max_retries = 1, retry_delay = 1, retry_on = 'Failed'}", "retry_on must be a function (got the string \"Failed\")" },
      { "{retry_backoff = 2}", "retry_backoff needs retries: give max_retries (> 0) and retry_delay too" },
      { "{retry_on = function() end}", "retry_on needs retries" },
      { "{max_retries = 1, retry_delay = 1, retry_backof = 2}", "unknown option 'retry_backof' for Task (did you mean 'retry_backoff'?)" },
    }
    for _, c in ipairs(cases) do
      local r = cli.run({ "run", path }, { env = { OPTS = c[1] } })
      assert.are.equal(2, r.code, c[1] .. ": " .. r.stderr)
      assert.is_true(has(r.stderr, path .. ":3: "), c[1] .. ": " .. r.stderr)
      assert.is_true(has(r.stderr, c[2]), c[1] .. ": " .. r.stderr)
    end
    assert.has_error(function() signals.FAIL("x", { retry = "no" }) end)
    assert.has_error(function() signals.SKIP("x", { retry = false }) end)
  end)
end)
