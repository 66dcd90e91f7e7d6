-- The time-dependent parts of the state machine (issue 3): retries that wait
-- without blocking the others, timeouts, pausing and cancellation (where the
-- contract is silent, Prefect 1's behaviour). Seed examples 04 and 06 are covered by seed_spec.lua.
local luaflow = require("luaflow")
local cli = require("cli")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local S, signals = luaflow.states, luaflow.signals

-- Sanitizer builds run slower: timing tolerances scale with this.
local SANITIZE = (os.getenv("LUAFLOW_SANITIZE") or "") ~= ""
local SLACK = SANITIZE and 3 or 1

local function now() return luaflow.time.now():timestamp() end

-- Spins for `seconds` of wall time (a task that does work without yielding).
local function busy(seconds)
  local t0 = now()
  while now() - t0 < seconds do end
end

local function pause_briefly() os.execute("sleep 0.05") end

-- Polls `ready()` every 50 ms for at most `limit` seconds; returns its last value.
local function wait_until(ready, limit)
  local deadline = now() + limit
  local v = ready()
  while not v and now() < deadline do
    pause_briefly()
    v = ready()
  end
  return v
end

local util = require("util")
local count, has = util.count, util.has

-- A handler that records every transition of its object: the printed form
-- ("old -> new"), when it happened, the attempt number the context gives, and
-- for Scheduled-family states their start_time and run_count.
local function recorder(log)
  return function(_, old, new)
    log[#log + 1] = {
      line = tostring(old) .. " -> " .. tostring(new),
      at = now(),
      attempt = luaflow.context.task_run_count,
      new_name = new.name,
      start = new.start_time and new.start_time:timestamp(),
      run_count = new.run_count,
    }
  end
end

local function lines_of(log)
  local list = {}
  for i, e in ipairs(log) do list[i] = e.line end
  return list
end

-- Runs a one-task flow; returns the flow state and the task's final state.
local function run_one(t, opts)
  local state = Flow{name = "one", tasks = {t}}:run(opts)
  return state, state.result[t]
end

local RUNNING = 'Running("Starting task run.")'

describe("retries", function()
  it("go Running -> Failed -> Retrying(attempt N of M) -> Running, due retry_delay later", function()
    local log, calls = {}, 0
    local t = Task{name = "flaky", max_retries = 2, retry_delay = 0.12,
                   state_handlers = {recorder(log)},
                   fn = function() calls = calls + 1; error("boom", 0) end}
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
    assert.are.equal(3, calls)
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
    local log, calls = {}, 0
    local t = task{name = "second_time_lucky", max_retries = 3, retry_delay = 0.01,
                   state_handlers = {recorder(log)}}(function()
      calls = calls + 1
      if calls == 1 then error("not yet", 0) end
      return "got it"
    end)
    local fs, ts = run_one(t)
    assert.are.equal(2, calls)
    assert.are.equal(5, #log)
    assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    assert.are.equal("got it", ts.result)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
  end)

  it("luaflow.context.task_run_count is the attempt number in the task and in its handlers", function()
    local log, seen_in_task = {}, {}
    local t = Task{name = "counted", max_retries = 2, retry_delay = 0,
                   state_handlers = {recorder(log)},
                   fn = function()
                     seen_in_task[#seen_in_task + 1] = luaflow.context.task_run_count
                     error("again", 0)
                   end}
    run_one(t)
    assert.are.same({1, 2, 3}, seen_in_task)
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
      local log, calls = {}, 0
      local t = Task{name = "again", state_handlers = {recorder(log)}, fn = function()
        calls = calls + 1
        if calls <= 2 then error(signals.RETRY("go again")) end
        return calls
      end}
      local _, ts = run_one(t)
      assert.are.equal(3, calls)
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
      local log, trigger_calls, calls = {}, 0, 0
      local up = Task{name = "up"}
      local t = Task{name = "guarded", max_retries = 2, retry_delay = 0,
                     state_handlers = {recorder(log)},
                     trigger = function() trigger_calls = trigger_calls + 1; return false end,
                     fn = function() calls = calls + 1 end}
      local f = Flow{name = "f", tasks = {up, t}}
      f:add_edge(up, t)
      local fs = f:run()
      assert.are.equal(1, trigger_calls)
      assert.are.equal(0, calls)
      assert.are.same({'Pending() -> TriggerFailed("Trigger failed")'}, lines_of(log))
      assert.are.equal('TriggerFailed("Trigger failed")', tostring(fs.result[t]))
    end)

    it("a trigger that does not pass (all_successful after a failed upstream)", function()
      local log, calls = {}, 0
      local up = Task{name = "up", fn = function() error("upstream broke", 0) end}
      local t = Task{name = "down", max_retries = 2, retry_delay = 0,
                     state_handlers = {recorder(log)}, fn = function() calls = calls + 1 end}
      local f = Flow{name = "f", tasks = {up, t}}
      f:add_edge(up, t)
      local fs = f:run()
      assert.are.equal(0, calls)
      assert.are.equal(1, #log)
      assert.are.equal(
        'TriggerFailed("Trigger was "all_successful" but some of the upstream tasks failed.")',
        tostring(fs.result[t]))
    end)

    it("a handler error", function()
      local calls, handler_calls = 0, 0
      local t = Task{name = "h", max_retries = 2, retry_delay = 0,
                     state_handlers = {function(_, _, new)
                       handler_calls = handler_calls + 1
                       if new:is_failed() then error("handler broke", 0) end
                     end},
                     fn = function() calls = calls + 1; error("body broke", 0) end}
      local _, ts = run_one(t)
      assert.are.equal(1, calls)
      assert.are.equal(2, handler_calls) -- Pending->Running, Running->Failed; none after
      assert.are.equal('Failed("Unexpected error while calling state handlers: handler broke")',
                       tostring(ts))
    end)

    it("ENDRUN raised in the body", function()
      local log, calls = {}, 0
      local t = Task{name = "e", max_retries = 2, retry_delay = 0,
                     state_handlers = {recorder(log)},
                     fn = function() calls = calls + 1; error(signals.ENDRUN(S.Failed("f"))) end}
      local _, ts = run_one(t)
      assert.are.equal(1, calls)
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
        local log, calls = {}, 0
        local t = Task{name = "s", max_retries = 1, retry_delay = 0,
                       state_handlers = {recorder(log)},
                       fn = function() calls = calls + 1; error(signals[signal]("no good")) end}
        local _, ts = run_one(t)
        local failed = class .. '("no good")'
        assert.are.equal(2, calls)
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
end)

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
    print(("\n# time_spec: a 2 s retry wait took %.3f s wall, %.4f s CPU (user+sys)%s")
          :format(wall, cpu, SANITIZE and " [sanitizer build]" or ""))
    assert.are.equal(2, calls)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
    assert.is_true(wall >= 1.9, "wall " .. wall .. " s")
    assert.is_true(wall < 2 + 0.5 * SLACK, "wall " .. wall .. " s")
    assert.is_true(cpu < (SANITIZE and 0.3 or 0.1), "cpu " .. cpu .. " s")
  end)
end)

describe("timeouts", function()
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
    local ran = {}
    local stuck = Task{name = "stuck", timeout = 0.2, fn = function() while true do end end}
    local other = Task{name = "other", fn = function() ran.other = true; return 1 end}
    local cleanup = Task{name = "cleanup", trigger = luaflow.triggers.all_finished,
                         fn = function() ran.cleanup = true; return 2 end}
    local f = Flow{name = "mixed", tasks = {stuck, other, cleanup}}
    f:add_edge(stuck, cleanup)
    local fs = f:run()
    assert.are.equal(TIMED_OUT, tostring(fs.result[stuck]))
    assert.are.equal('Success("Task run succeeded.")', tostring(fs.result[other]))
    assert.are.equal('Success("Task run succeeded.")', tostring(fs.result[cleanup]))
    assert.are.same({other = true, cleanup = true}, ran)
    assert.are.equal(2, fs.result[cleanup].result)
  end)

  it("are retried: max_retries = 1, retry_delay = 0 times out twice", function()
    local log, calls = {}, 0
    local t = Task{name = "slow", timeout = 0.1, max_retries = 1, retry_delay = 0,
                   state_handlers = {recorder(log)},
                   fn = function() calls = calls + 1; while true do end end}
    local _, ts = run_one(t)
    assert.are.equal(2, calls)
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
end)

describe("pausing", function()
  local MANUAL = 'Paused("Trigger function is "manual_only"")'

  local function gated_flow(marks)
    local a = Task{name = "a", fn = function() marks.a = true end}
    local gate = Task{name = "gate", trigger = luaflow.triggers.manual_only,
                      fn = function() marks.gate = true; return "opened" end}
    local f = Flow{name = "approval", tasks = {a, gate}}
    f:add_edge(a, gate)
    return f, gate
  end

  it("manual_only gives Paused; the task waits and the flow stays Running", function()
    local marks = {}
    local f, gate = gated_flow(marks)
    local fs = f:run()
    assert.are.equal(MANUAL, tostring(fs.result[gate]))
    assert.is_true(fs.result[gate]:is_paused())
    assert.is_nil(fs.result[gate].start_time)
    assert.are.same({a = true}, marks)
    assert.are.equal('Running("Running flow.")', tostring(fs))
  end)

  it("PAUSE gives Paused with the signal's message", function()
    local log = {}
    local t = Task{name = "p", state_handlers = {recorder(log)},
                   fn = function() error(signals.PAUSE("waiting for a human")) end}
    local fs, ts = run_one(t)
    assert.are.same({"Pending() -> " .. RUNNING, RUNNING .. ' -> Paused("waiting for a human")'},
                    lines_of(log))
    assert.are.equal('Paused("waiting for a human")', tostring(ts))
    assert.are.equal('Running("Running flow.")', tostring(fs))
  end)

  it("flow:run{resume = {t}} approves a manual_only pause in advance and the task runs", function()
    local marks = {}
    local f, gate = gated_flow(marks)
    local fs = f:run{resume = {gate}}
    assert.are.same({a = true, gate = true}, marks)
    assert.are.equal('Success("Task run succeeded.")', tostring(fs.result[gate]))
    assert.are.equal("opened", fs.result[gate].result)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
  end)

  it("flow:run{resume = {t}} approves a PAUSE: Resume(\"Approval given to resume.\"), then it runs", function()
    local log, calls = {}, 0
    local t = Task{name = "p", state_handlers = {recorder(log)}, fn = function()
      calls = calls + 1
      if calls == 1 then error(signals.PAUSE("hold")) end
      return "resumed"
    end}
    local fs, ts = run_one(t, {resume = {t}})
    assert.are.equal(2, calls)
    assert.are.same({
      "Pending() -> " .. RUNNING,
      RUNNING .. ' -> Paused("hold")',
      'Paused("hold") -> Resume("Approval given to resume.")',
      'Resume("Approval given to resume.") -> ' .. RUNNING,
      RUNNING .. ' -> Success("Task run succeeded.")',
    }, lines_of(log))
    assert.are.equal("resumed", ts.result)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
  end)

  describe("under luaflow run", function()
    local gated = util.GATED_FLOW
    after_each(cli.cleanup)

    it("without a terminal (stdin /dev/null) ends with exit 3, listing the paused task", function()
      local r = cli.run({"run", cli.write_flow(gated)}, {no_input = false})
      assert.are.equal(3, r.code)
      assert.is_true(has(r.stderr, "<Task: gate>"), r.stderr)
      assert.are.equal("MARK-a\n", r.stdout)
    end)

    it("with --no-input ends the same way", function()
      local r = cli.run({"run", "--no-input", cli.write_flow(gated)}, {no_input = false})
      assert.are.equal(3, r.code)
      assert.is_true(has(r.stderr, "<Task: gate>"), r.stderr)
      assert.is_false(has(r.stdout, "MARK-gate"))
    end)

    it("--resume NAME runs the paused task (exit 0)", function()
      local r = cli.run({"run", cli.write_flow(gated), "--resume", "gate"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("MARK-a\nMARK-gate\n", r.stdout)
    end)

    it("--resume with a name that matches no task is a usage error (exit 2)", function()
      local r = cli.run({"run", cli.write_flow(gated), "--resume", "nosuch"})
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, "nosuch"), r.stderr)
      assert.is_false(has(r.stdout, "MARK-a"))
    end)

    -- The prompt needs stdin and stderr on a terminal: script(1) gives it one.
    local has_script = os.execute("command -v script >/dev/null 2>&1")
    local PROMPT = "<Task: gate> is currently Paused; enter 'y' to resume:"

    -- Runs FILE under a pseudo-terminal with `answer` typed on it; returns
    -- the terminal's text (stdout and stderr together) and the exit code.
    local function run_on_terminal(path, answer)
      local out = cli.tmpname()
      local env = ""
      local child_asan = os.getenv("LUAFLOW_CHILD_ASAN_OPTIONS")
      if child_asan then env = "env " .. cli.quote("ASAN_OPTIONS=" .. child_asan) .. " " end
      local inner = env .. cli.quote(cli.bin) .. " run " .. cli.quote(path)
      -- script(1) itself runs without the sanitizer runtime the specs preload
      local cmd = ("printf %s | env -u LD_PRELOAD -u ASAN_OPTIONS script -qec %s /dev/null >%s 2>&1")
                  :format(cli.quote(answer .. "\n"), cli.quote(inner), cli.quote(out))
      local _, how, n = os.execute(cmd)
      return (cli.read(out) or ""):gsub("\r", ""), how == "exit" and n or 128 + n
    end

    if has_script then
      it("on a terminal asks about the paused task; 'y' runs it (exit 0)", function()
        local text, code = run_on_terminal(cli.write_flow(gated), "y")
        assert.is_true(has(text, PROMPT), text)
        assert.are.equal(1, count(text, PROMPT))
        assert.is_true(has(text, "MARK-a\n"), text)
        assert.is_true(has(text, "MARK-gate\n"), text)
        assert.are.equal(0, code, text)
      end)

      it("on a terminal, answering 'n' leaves it paused (exit 3)", function()
        local text, code = run_on_terminal(cli.write_flow(gated), "n")
        assert.is_true(has(text, PROMPT), text)
        assert.is_false(has(text, "MARK-gate"))
        assert.are.equal(3, code, text)
      end)
    else
      pending("the terminal prompt: script(1) (bsdutils) is not installed")
    end
  end)
end)

describe("cancellation", function()
  after_each(cli.cleanup)

  local proc = require("proc")
  local function stdout_of(h) return proc.stdout(h) end

  local function cancel(h, sig)
    proc.wait_for(h, "ready\n")
    pause_briefly() -- let it spin
    return (proc.signal(h, sig))
  end

  local function spinning_flow(body)
    return ([[
local luaflow = require("luaflow")
local function show(obj, old, new)
  print(("%%s: %%s -> %%s"):format(obj.name, tostring(old), tostring(new)))
  io.stdout:flush()
end
local spin = luaflow.Task{name = "spin", state_handlers = {show}, fn = function()
  print("ready")
  io.stdout:flush()
  %s
end}
local after = luaflow.Task{name = "after", state_handlers = {show},
                           fn = function() print("AFTER-RAN") end}
local f = luaflow.Flow{name = "cancel-me", tasks = {spin, after}, state_handlers = {show}}
f:add_edge(spin, after)
]]):format(body)
  end

  local CANCELLED = 'Cancelled("Flow run was cancelled.")'
  local TRANSITIONS = {
    'cancel-me: Scheduled() -> Running("Running flow.")',
    'spin: Pending() -> Running("Starting task run.")',
    'spin: Running("Starting task run.") -> ' .. CANCELLED,
    'cancel-me: Running("Running flow.") -> ' .. CANCELLED,
  }

  local function check_cancelled(h, code, expected_code)
    local out = stdout_of(h)
    local detail = "stdout:\n" .. out .. "\nstderr:\n" .. (cli.read(h.err) or "")
    assert.are.equal(expected_code, code, detail)
    for _, line in ipairs(TRANSITIONS) do
      assert.are.equal(1, count(out, line .. "\n"), "expected once: " .. line .. "\n" .. detail)
    end
    -- in that order, and nothing else happened to the tasks
    local pos = 0
    for _, line in ipairs(TRANSITIONS) do
      local at = out:find(line, pos + 1, true)
      assert.is_truthy(at and at > pos, "out of order: " .. line .. "\n" .. detail)
      pos = at
    end
    assert.are.equal(4, count(out, " -> "), detail)
    assert.is_false(has(out, "AFTER-RAN"), detail)
    assert.is_false(has(out, "after:"), detail)
    -- --json is still written
    local json_text = cli.read(h.json) or ""
    local run
    for line in json_text:gmatch("[^\n]+") do
      local ok, v = pcall(luaflow.json.decode, line)
      if ok and type(v) == "table" and v.state == "Cancelled" then run = v end
    end
    assert.is_truthy(run, "no Cancelled line in --json: " .. json_text)
    assert.are.equal("cancel-me", run.flow)
    assert.are.equal("Flow run was cancelled.", run.message)
    assert.are.equal("spin", run.tasks[1].name)
    assert.are.equal("Cancelled", run.tasks[1].state)
    assert.are.equal("Flow run was cancelled.", run.tasks[1].message)
    assert.are.equal("after", run.tasks[2].name)
    assert.are.equal("Pending", run.tasks[2].state)
    assert.are.equal("Task not run.", run.tasks[2].message)
  end

  it("SIGINT during a run: the running task and the flow end Cancelled, exit 130", function()
    local h = proc.spawn(spinning_flow("while true do end"))
    local code = cancel(h, "INT")
    check_cancelled(h, code, 130)
  end)

  it("SIGTERM does the same with exit 143", function()
    local h = proc.spawn(spinning_flow("while true do end"))
    local code = cancel(h, "TERM")
    check_cancelled(h, code, 143)
  end)

  it("a task that spins inside pcall is still cancelled", function()
    local h = proc.spawn(spinning_flow(
      "while true do pcall(function() local x = 0; for i = 1, 100 do x = x + i end end) end"))
    local code = cancel(h, "INT")
    check_cancelled(h, code, 130)
  end)

  it("os.exit(3) inside a task fails the task; the process does not exit with 3", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local quitter = luaflow.Task{name = "quitter", fn = function() os.exit(3); print("AFTER-EXIT") end}
local other = luaflow.Task{name = "other", fn = function() print("OTHER-RAN") end}
luaflow.Flow{name = "exiting", tasks = {quitter, other}}
]])
    local r = cli.run({"run", path, "--json", "-"})
    assert.are.equal(1, r.code, r.stderr)
    assert.is_false(has(r.stdout, "AFTER-EXIT"))
    assert.is_true(has(r.stdout, "OTHER-RAN\n"))
    local line = r.stdout:match("(%b{})%s*$")
    local run = luaflow.json.decode(line)
    assert.are.equal("Failed", run.state)
    assert.are.equal("quitter", run.tasks[1].name)
    assert.are.equal("Failed", run.tasks[1].state)
    assert.are.equal("Error during execution of task: ",
                     run.tasks[1].message:sub(1, #"Error during execution of task: "))
    assert.are.equal("Success", run.tasks[2].state)
  end)

  it("os.exit inside a handler fails the task as a handler error, and the run goes on", function()
    local t = Task{name = "t", fn = function() return 1 end, state_handlers = {function(_, _, new)
      if new:is_successful() then os.exit(0) end
    end}}
    local other = Task{name = "other", fn = function() return 2 end}
    local fs = Flow{name = "f", tasks = {t, other}}:run()
    local ts = fs.result[t]
    assert.is_true(ts:is(S.Failed))
    local prefix = "Unexpected error while calling state handlers: "
    assert.are.equal(prefix, ts.message:sub(1, #prefix))
    assert.are.equal(2, fs.result[other].result)
  end)
end)
