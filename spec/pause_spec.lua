-- Pausing: manual_only and PAUSE give Paused and the task waits (the flow
-- stays Running); flow:run{resume = } and `luaflow run --resume` approve it, a
-- terminal prompt asks, and without one `luaflow run` ends with exit 3. Pauses
-- that end: a Resume state runs its task (whoever made it), each run of a
-- task checks its trigger again (as Prefect does), luaflow.pause_task and
-- luaflow.context.resume let a body pause itself once.
local luaflow = require("luaflow")
local S, signals, triggers = luaflow.states, luaflow.signals, luaflow.triggers
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local util = require("util")
local cli = require("cli")
local timing = require("timing")
local count, has = util.count, util.has

local RUNNING = 'Running("Starting task run.")'
local SUCCESS = 'Success("Task run succeeded.")'
local MANUAL = 'Paused("Trigger function is "manual_only"")'

local function to_resume(_, _, new)
  if new:is_paused() then return S.Resume() end
end

describe("pausing", function()
  local recorder, lines_of, run_one = timing.recorder, timing.lines_of, timing.run_one
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

describe("a handler that turns Paused into Resume()", function()
  it("makes the manual_only task run, with Prefect's transitions", function()
    local log, ran = {}, 0
    local gate = Task{ name = "gate", trigger = triggers.manual_only, state_handlers = { util.recorder(log), to_resume },
                       fn = function() ran = ran + 1; return "through" end }
    local fs, ts = util.run_one(gate)
    assert.are.equal(1, ran)
    assert.are.same({
      "Pending() -> " .. MANUAL,
      "Resume() -> " .. RUNNING,
      RUNNING .. " -> " .. SUCCESS,
    }, log)
    assert.are.equal(SUCCESS, tostring(ts))
    assert.are.equal("through", ts.result)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(fs))
  end)

  it("resumes a PAUSE raised in the body; the body then sees luaflow.context.resume", function()
    local resumes = {}
    local t = Task{ name = "t", state_handlers = { to_resume }, fn = function()
      resumes[#resumes + 1] = luaflow.context.resume
      if not luaflow.context.resume then error(signals.PAUSE("hold")) end
      return "after"
    end }
    local _, ts = util.run_one(t)
    assert.are.same({ false, true }, resumes)
    assert.are.equal("after", ts.result)
  end)

  it("runs the body 3 times with max_retries = 2 and a FAIL on every exit from Running", function()
    -- Prefect's test_pause_resume_works_with_retries: each retry checks the
    -- trigger again, pauses, and the handler resumes it.
    local runs, log = 0, {}
    local function handler(_, old, new)
      if new:is_paused() then return S.Resume() end
      if old:is_running() then error(signals.FAIL("cant pass go")) end
    end
    local t = Task{ name = "fail", max_retries = 2, retry_delay = 0, trigger = triggers.manual_only,
                    state_handlers = { util.recorder(log), handler }, fn = function() runs = runs + 1 end }
    local fs = Flow{ name = "huh", tasks = { t } }:run()
    assert.are.equal(3, runs)
    assert.is_true(fs:is_failed())
    assert.are.equal('Failed("cant pass go")', tostring(fs.result[t]))
    local first_attempt = {
      "Pending() -> " .. MANUAL,
      "Resume() -> " .. RUNNING,
      RUNNING .. " -> " .. SUCCESS,
      'Failed("cant pass go") -> Retrying("Retrying Task (after attempt 1 of 3)")',
      'Retrying("Retrying Task (after attempt 1 of 3)") -> ' .. MANUAL,
    }
    for k, line in ipairs(first_attempt) do assert.are.equal(line, log[k]) end
    assert.are.equal(11, #log)
  end)

  it("under luaflow run, runs the task and exits 0", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local gate = luaflow.Task{name = "gate", trigger = luaflow.triggers.manual_only,
  state_handlers = {function(_, _, new) if new:is_paused() then return luaflow.states.Resume() end end},
  fn = function() print("MARK-gate") end}
return luaflow.Flow{name = "self-approving", tasks = {gate}}
]])
    local r = cli.run({ "run", path })
    cli.cleanup()
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("MARK-gate\n", r.stdout)
    assert.is_nil(r.stderr:find("waiting for approval", 1, true), r.stderr)
  end)
end)

describe("a retry of a manual_only task", function()
  it("pauses again, as every run of a task checks its trigger", function()
    local log, approvals = {}, 0
    local function approve_once(_, _, new)
      if new:is_paused() and approvals == 0 then
        approvals = 1
        return S.Resume()
      end
    end
    local t = Task{ name = "gate", trigger = triggers.manual_only, max_retries = 1, retry_delay = 0,
                    state_handlers = { util.recorder(log), approve_once }, fn = function() error("boom", 0) end }
    local fs = Flow{ name = "gated", tasks = { t } }:run()
    assert.are.equal(MANUAL, tostring(fs.result[t]))
    assert.are.equal('Running("Running flow.")', tostring(fs))
    assert.are.same({
      "Pending() -> " .. MANUAL,
      "Resume() -> " .. RUNNING,
      RUNNING .. ' -> Failed("Error during execution of task: boom")',
      'Failed("Error during execution of task: boom") -> Retrying("Retrying Task (after attempt 1 of 2)")',
      'Retrying("Retrying Task (after attempt 1 of 2)") -> ' .. MANUAL,
    }, log)
  end)

  it("approved in advance with flow:run{resume=} stays approved for every attempt", function()
    local runs = 0
    local t = Task{ name = "gate", trigger = triggers.manual_only, max_retries = 1, retry_delay = 0,
                    fn = function() runs = runs + 1; if runs == 1 then error("boom", 0) end; return "ok" end }
    local fs = Flow{ name = "gated", tasks = { t } }:run{ resume = { t } }
    assert.are.equal(2, runs)
    assert.are.equal(SUCCESS, tostring(fs.result[t]))
  end)
end)

describe("luaflow.pause_task", function()
  it("pauses the body with Prefect's default message", function()
    local log = {}
    local t = Task{ name = "t", state_handlers = { util.recorder(log) }, fn = function()
      luaflow.pause_task()
      return "never"
    end }
    local fs, ts = util.run_one(t)
    assert.are.equal('Paused("Pause signal raised during task execution.")', tostring(ts))
    assert.is_nil(ts.start_time)
    assert.are.equal('Running("Running flow.")', tostring(fs))
    assert.are.equal(RUNNING .. ' -> Paused("Pause signal raised during task execution.")', log[2])
  end)

  it("goes on once the pause is approved: the body pauses itself once", function()
    local before, after = 0, 0
    local t = Task{ name = "t", fn = function()
      before = before + 1
      luaflow.pause_task("approve me")
      after = after + 1
      return "approved"
    end }
    local f = Flow{ name = "self-pausing", tasks = { t } }
    local fs = f:run()
    assert.are.equal('Paused("approve me")', tostring(fs.result[t]))
    assert.are.same({ 1, 0 }, { before, after })
    local approved = f:run{ resume = { t } }
    assert.are.equal(SUCCESS, tostring(approved.result[t]))
    assert.are.equal("approved", approved.result[t].result)
    assert.are.equal(1, after)
  end)

  it("goes on after an approval given when asked (the terminal prompt's way)", function()
    local hooks = luaflow._graph.hooks
    local asked, after = {}, 0
    hooks.approve = function(t) asked[#asked + 1] = tostring(t); return true end
    local t = Task{ name = "asked", fn = function()
      luaflow.pause_task("may I?")
      after = after + 1
    end }
    local ok, fs = pcall(function() return Flow{ name = "prompted", tasks = { t } }:run() end)
    hooks.approve = nil
    assert.is_true(ok, tostring(fs))
    assert.are.same({ "<Task: asked>" }, asked)
    assert.are.equal(1, after)
    assert.are.equal(SUCCESS, tostring(fs.result[t]))
  end)

  it("with a duration, resumes by itself when the time comes", function()
    local started, resumed_at
    local t = Task{ name = "t", fn = function()
      if not started then started = luaflow.time.now():timestamp() end
      luaflow.pause_task("a short nap", 0.2)
      resumed_at = luaflow.time.now():timestamp()
      return luaflow.context.resume
    end }
    local _, ts = util.run_one(t)
    assert.are.equal(SUCCESS, tostring(ts))
    assert.is_true(ts.result)
    assert.is_true(resumed_at - started >= 0.19)
  end)

  it("rejects a duration that is not a non-negative number", function()
    local t = Task{ name = "t", fn = function() luaflow.pause_task("x", "soon") end }
    local _, ts = util.run_one(t)
    assert.is_true(ts:is_failed())
    assert.is_truthy(ts.message:find("duration", 1, true), ts.message)
  end)

  it("under luaflow run --resume NAME goes on at once", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "review", fn = function()
  print("MARK-before")
  luaflow.pause_task("needs a review")
  print("MARK-after")
end}
return luaflow.Flow{name = "reviewed", tasks = {t}}
]])
    local waiting = cli.run({ "run", path })
    assert.are.equal(3, waiting.code)
    assert.are.equal("MARK-before\n", waiting.stdout)
    assert.is_truthy(waiting.stderr:find("<Task: review>", 1, true), waiting.stderr)
    local approved = cli.run({ "run", path, "--resume", "review" })
    cli.cleanup()
    assert.are.equal(0, approved.code, approved.stderr)
    assert.are.equal("MARK-before\nMARK-after\n", approved.stdout)
  end)
end)

describe("luaflow.context.resume", function()
  it("is false in a task that was not resumed and nil outside a run", function()
    local seen = "unset"
    util.run_one(Task{ name = "t", fn = function() seen = luaflow.context.resume end })
    assert.is_false(seen)
    assert.is_nil(luaflow.context.resume)
  end)

  it("is true after approval and stays so through the task's loop iterations", function()
    local seen = {}
    local t = Task{ name = "t", fn = function()
      luaflow.pause_task()
      seen[#seen + 1] = luaflow.context.resume
      if luaflow.context.task_loop_count < 3 then error(signals.LOOP()) end
    end }
    local fs = Flow{ name = "f", tasks = { t } }:run{ resume = { t } }
    assert.is_true(fs:is_successful())
    assert.are.same({ true, true, true }, seen)
  end)

  it("is set for a Paused state whose start_time has come (PAUSE{start_time=})", function()
    local seen = {}
    local t = Task{ name = "t", fn = function()
      seen[#seen + 1] = luaflow.context.resume
      if not luaflow.context.resume then error(signals.PAUSE{ start_time = luaflow.time.now() + 0.05 }) end
    end }
    local _, ts = util.run_one(t)
    assert.are.same({ false, true }, seen)
    assert.is_true(ts:is_successful())
  end)
end)
