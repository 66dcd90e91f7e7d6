-- Flow{terminal_state_handler = fn}: called once a run with (flow, state,
-- reference_task_states) after the reference tasks decide the flow's state and
-- before the flow's own handlers see it; a State it returns replaces the state.
local luaflow = require("luaflow")
local S, signals, triggers = luaflow.states, luaflow.signals, luaflow.triggers
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local util = require("util")
local cli = require("cli")

local function two_task_flow(opts)
  local ok = Task{ name = "ok", fn = function() return 1 end }
  local bad = Task{ name = "bad", fn = function() error("broken", 0) end }
  opts.name = opts.name or "terminal"
  opts.tasks = { ok, bad }
  return Flow(opts), ok, bad
end

describe("Flow{terminal_state_handler = fn}", function()
  it("is called once with the flow, the decided state and the reference tasks' states", function()
    local calls = {}
    local f, ok, bad
    f, ok, bad = two_task_flow{ terminal_state_handler = function(flow, state, ref_states)
      local names = {}
      for k, s in ipairs(ref_states) do names[k] = s.name end
      calls[#calls + 1] = { flow = flow, state = tostring(state), n = #ref_states, names = table.concat(names, ","),
                            ok = tostring(ref_states[ok]), bad = tostring(ref_states[bad]) }
    end }
    local fs = f:run()
    assert.are.equal(1, #calls)
    assert.are.equal(f, calls[1].flow)
    assert.are.equal('Failed("Some reference tasks failed.")', calls[1].state)
    assert.are.equal(2, calls[1].n)
    assert.are.equal("Success,Failed", calls[1].names)
    assert.are.equal('Success("Task run succeeded.")', calls[1].ok)
    assert.are.equal('Failed("Error during execution of task: broken")', calls[1].bad)
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(fs))
  end)

  -- Prefect 1.4.1's own tests read the third argument as a task -> state map.
  it("maps every task to its state for pairs(), as Prefect's tests read it", function()
    local fake, fake_2 = Task{ name = "fake" }, Task{ name = "fake_2" }
    local f = Flow{ name = "test", tasks = { fake, fake_2 }, terminal_state_handler = function(_, _, task_states)
      for t, ts in pairs(task_states) do
        if t.name == "fake_2" and ts:is_successful() then return S.Success("Custom message here") end
      end
    end }
    f:add_edge(fake, fake_2)
    assert.are.equal("Custom message here", f:run().message)
  end)

  it("lists the failed reference tasks, as the example in Prefect's docs does", function()
    local failing = Task{ name = "FailingTask", fn = function() error("x") end }
    local after = Task{ name = "after", trigger = triggers.always_run }
    local f = Flow{ name = "docs", tasks = { failing, after }, reference_tasks = { failing },
                    terminal_state_handler = function(_, state, task_states)
      local failed, seen = {}, 0
      for t, ts in pairs(task_states) do
        seen = seen + 1
        if ts:is_failed() then failed[#failed + 1] = t.name end
      end
      return S.Failed(("The following tasks failed: %s (of %d)"):format(table.concat(failed, ", "), seen))
    end }
    f:add_edge(failing, after)
    assert.are.equal("The following tasks failed: FailingTask (of 2)", f:run().message)
  end)

  it("shows a task that never ran as Pending(\"Task not run.\")", function()
    local seen
    local gate = Task{ name = "gate", trigger = triggers.manual_only }
    local later = Task{ name = "later" }
    local f = Flow{ name = "not-run", tasks = { gate, later }, terminal_state_handler = function(_, _, states)
      seen = tostring(states[later])
    end }
    f:add_edge(gate, later)
    f:run()
    assert.are.equal('Pending("Task not run.")', seen)
  end)

  it("replaces the state with a State it returns, before the flow's handlers see it", function()
    local log = {}
    local f = two_task_flow{
      state_handlers = { util.recorder(log) },
      terminal_state_handler = function(_, state)
        if state:is_failed() then return S.Success("failures were expected") end
      end,
    }
    local fs = f:run()
    assert.are.equal('Success("failures were expected")', tostring(fs))
    assert.are.same({
      'Scheduled() -> Running("Running flow.")',
      'Running("Running flow.") -> Success("failures were expected")',
    }, log)
    -- the run's result still maps every task to its state
    local count = 0
    for _ in fs:task_states() do count = count + 1 end
    assert.are.equal(2, count)
  end)

  it("passes only the reference tasks' states when reference_tasks are given", function()
    local seen
    local a = Task{ name = "a" }
    local b = Task{ name = "b", fn = function() error("x", 0) end }
    local f = Flow{ name = "refs", tasks = { a, b }, reference_tasks = { a },
                    terminal_state_handler = function(_, _, states) seen = states end }
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(f:run()))
    assert.are.equal(1, #seen)
    assert.are.equal("Success", seen[1].name)
  end)

  it("keeps the state when it returns nil or false", function()
    local f = two_task_flow{ terminal_state_handler = function() return false end }
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(f:run()))
  end)

  it("is called with the Running state when paused tasks keep the flow running", function()
    local seen
    local gate = Task{ name = "gate", trigger = triggers.manual_only }
    local f = Flow{ name = "paused", tasks = { gate }, terminal_state_handler = function(_, state, states)
      seen = tostring(state) .. " / " .. tostring(states[1])
    end }
    assert.are.equal('Running("Running flow.")', tostring(f:run()))
    assert.are.equal('Running("Running flow.") / Paused("Trigger function is "manual_only"")', seen)
  end)

  it("turns a plain error into Failed(\"Unexpected error: ...\") with the error as result", function()
    local log = {}
    local payload = { why = "bad" }
    local f = two_task_flow{ state_handlers = { util.recorder(log) },
                             terminal_state_handler = function() error(payload) end }
    local fs = f:run()
    assert.is_true(fs:is_failed())
    assert.is_truthy(fs.message:find("^Unexpected error: "), fs.message)
    assert.are.equal(2, #log)
    assert.are.equal('Running("Running flow.") -> ' .. tostring(fs), log[2])
    local f2 = two_task_flow{ terminal_state_handler = function() error("nope", 0) end }
    assert.are.equal('Failed("Unexpected error: nope")', tostring(f2:run()))
  end)

  it("turns a signal into its state", function()
    local f = two_task_flow{ terminal_state_handler = function() error(signals.SKIP("not today")) end }
    assert.are.equal('Skipped("not today")', tostring(f:run()))
    local f2 = two_task_flow{ terminal_state_handler = function() error(signals.ENDRUN(S.Cancelled("stop"))) end }
    assert.are.equal('Cancelled("stop")', tostring(f2:run()))
  end)

  it("reports a return that is neither a State, nil nor false", function()
    local f = two_task_flow{ terminal_state_handler = function() return 42 end }
    assert.are.equal('Failed("Unexpected error: terminal_state_handler returned a number")', tostring(f:run()))
  end)

  it("works on a flow built with a builder", function()
    local f = Flow({ name = "built", terminal_state_handler = function() return S.Failed("vetoed") end },
                   function() task("t", function() return 1 end)() end)
    assert.are.equal('Failed("vetoed")', tostring(f:run()))
  end)

  it("must be a function", function()
    local ok, err = pcall(Flow, { name = "bad", terminal_state_handler = 5 })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("terminal_state_handler", 1, true))
  end)

  it("decides the exit code under luaflow run", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local bad = luaflow.Task{name = "bad", fn = function() error("broken", 0) end}
return luaflow.Flow{name = "forgiving", tasks = {bad},
  terminal_state_handler = function() return luaflow.states.Success("forgiven") end}
]])
    local r = cli.run({ "run", path, "--json", "-" })
    cli.cleanup()
    assert.are.equal(0, r.code, r.stderr)
    assert.is_truthy(r.stdout:find('"message":"forgiven"', 1, true), r.stdout)
  end)
end)
