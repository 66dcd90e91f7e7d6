-- Mapping (t:map): a mapped task goes Pending -> Mapped("Ready to proceed
-- with mapping.") through its handlers, then each child (one per element of
-- the shortest mapped list) runs through the parent task's handlers with its
-- own triggers, retries, skips and failures; the parent ends Mapped with
-- map_states and the list of the children's results (with n); a reduce gets
-- that list; a map of a map goes child by child; Prefect 1's two failure
-- messages; --json lists the children.
local luaflow = require("luaflow")
local cli = require("cli")
local util = require("util")
local Flow, task, S, signals = luaflow.Flow, luaflow.task, luaflow.states, luaflow.signals
local unmapped, flatten = luaflow.unmapped, luaflow.flatten

local function sum(xs)
  local s = 0
  for i = 1, xs.n do s = s + xs[i] end
  return s
end

local function list_of(state)
  local out = {}
  for i, s in ipairs(state.map_states) do out[i] = tostring(s) end
  return out
end

describe("t:map", function()
  it("maps over a list, a map of a map goes child by child, and a reduce receives the list", function()
    local double = task(function(x) return 2 * x end)
    local add = task(function(x, y) return x + y end)
    local total = task(sum)
    local doubled, shifted, summed
    local state = Flow("mapping", function()
      doubled = double:map({1, 2, 3})
      shifted = add:map(doubled, unmapped(10))
      summed = total(shifted)
    end):run()
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
    local d, a = state.result[doubled], state.result[shifted]
    assert.are.equal('Mapped("Ready to proceed with mapping.")', tostring(d))
    assert.is_true(d:is_mapped() and d:is_successful())
    assert.are.same({2, 4, 6, n = 3}, d.result)
    assert.are.same({12, 14, 16, n = 3}, a.result)
    assert.are.equal(3, #a.map_states)
    assert.are.equal(3, a.n_map_states)
    assert.are.equal(42, state.result[summed].result)
  end)

  it("names an unnamed task after the variable it is mapped through", function()
    local double = task(function(x) return x end)
    local ref
    Flow("named", function() ref = double:map({1}) end)
    assert.are.equal("double", ref:task().name)
  end)

  it("calls the parent's handlers: Pending -> Mapped, then each child's own transitions with map_index", function()
    local log = {}
    local h = function(obj, old, new)
      log[#log + 1] = ("%s %s %s -> %s"):format(tostring(obj), tostring(luaflow.context.map_index),
                                                tostring(old), tostring(new))
    end
    local seen, n_seen = {}, nil
    local function n_of(_, _, new) if new:is_mapped() then n_seen = new.n_map_states end end
    local t = task({ name = "double", state_handlers = { h, n_of } }, function(x)
      seen[#seen + 1] = luaflow.context.map_index .. ":" .. luaflow.context.task_full_name
      return 2 * x
    end)
    Flow("handlers", function() t:map({5, 6}) end):run()
    assert.are.same({
      '<Task: double> nil Pending() -> Mapped("Ready to proceed with mapping.")',
      '<Task: double> 1 Pending() -> Running("Starting task run.")',
      '<Task: double> 1 Running("Starting task run.") -> Success("Task run succeeded.")',
      '<Task: double> 2 Pending() -> Running("Starting task run.")',
      '<Task: double> 2 Running("Starting task run.") -> Success("Task run succeeded.")',
    }, log)
    assert.are.same({ "1:double[1]", "2:double[2]" }, seen)
    assert.are.equal(2, n_seen) -- known when the handlers see Mapped, as Prefect's n_map_states
  end)

  it("retries, skips and fails each child on its own", function()
    local attempts = {}
    local t = task({ name = "m", max_retries = 1, retry_delay = 0 }, function(x)
      attempts[x] = (attempts[x] or 0) + 1
      if x == 2 and attempts[x] == 1 then error("once", 0) end
      if x == 3 then error(signals.SKIP("three")) end
      if x == 4 then error("always", 0) end
      return x
    end)
    local ref
    local state = Flow("children", function() ref = t:map({1, 2, 3, 4}) end):run()
    local m = state.result[ref]
    assert.are.same({
      'Success("Task run succeeded.")', 'Success("Task run succeeded.")',
      'Skipped("three")', 'Failed("Error during execution of task: always")',
    }, list_of(m))
    assert.are.same({ 1, 2, 1, 2 }, attempts)
    assert.are.equal(1, m.result[1])
    assert.are.equal(2, m.result[2])
    assert.are.equal(4, m.result.n)
    -- a failed child fails the flow, as Prefect counts a mapped task's children
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
  end)

  it("checks each child's trigger against the upstream child of the same index", function()
    local first = task(function(x) if x == 2 then error("bad", 0) end return x end)
    local second = task(function(x) return x * 10 end)
    local a, b
    local state = Flow("pairs", function()
      a = first:map({1, 2, 3})
      b = second:map(a)
    end):run()
    assert.are.same({
      'Success("Task run succeeded.")',
      'TriggerFailed("Trigger was "all_successful" but some of the upstream tasks failed.")',
      'Success("Task run succeeded.")',
    }, list_of(state.result[b]))
    local results = state.result[b].result
    assert.are.same({ 10, 30, 3 }, { results[1], results[3], results.n })
    assert.are.equal('TRIGGERFAIL("Trigger was "all_successful" but some of the upstream tasks failed.")',
                     tostring(results[2])) -- the child's result: its trigger's signal
  end)

  it("gives a reduce's trigger every child's state", function()
    local seen
    local m = task(function(x) if x == 2 then error("bad", 0) end return x end)
    local reduce = task({ trigger = function(states)
      seen = #states
      return true
    end }, function(xs) return xs.n end)
    local r
    local state = Flow("reduce", function() r = reduce(m:map({1, 2, 3})) end):run()
    assert.are.equal(3, seen)
    assert.are.equal(3, state.result[r].result)
    -- the default trigger fails on the failed child
    local r2
    local st2 = Flow("reduce2", function() r2 = task(sum)(m:map({1, 2, 3})) end):run()
    assert.is_true(st2.result[r2]:is(S.TriggerFailed))
  end)

  it("skips a reduce whose upstream child was skipped, unless told not to", function()
    local m = task(function(x) if x == 1 then error(signals.SKIP("no")) end return x end)
    local r
    local st = Flow("skip", function() r = task(sum)(m:map({1, 2})) end):run()
    assert.is_true(st.result[r]:is_skipped())
  end)

  it("maps over the shortest list and passes unmapped values whole", function()
    local pair = task(function(x, y, z) return x .. y .. z.tag end)
    local ref
    local st = Flow("shortest", function()
      ref = pair:map({ "a", "b", "c" }, { 1, 2 }, unmapped({ tag = "!" }))
    end):run()
    assert.are.same({ "a1!", "b2!", n = 2 }, st.result[ref].result)
  end)

  it("maps over an upstream's list result and over a flattened list of lists", function()
    local lists = task(function() return { { 1, 2 }, { 3 }, {} } end)
    local rows = task(function() return { 4, 5 } end)
    local id = task(function(x) return x end)
    local a, b
    local st = Flow("flatten", function()
      a = id:map(rows())
      b = id:map(flatten(lists()))
    end):run()
    assert.are.same({ 4, 5, n = 2 }, st.result[a].result)
    assert.are.same({ 1, 2, 3, n = 3 }, st.result[b].result)
  end)

  it("flattens a mapped task's lists", function()
    local split = task(function(x) return { x, x } end)
    local id = task(function(x) return x end)
    local b
    local st = Flow("flatten-mapped", function() b = id:map(flatten(split:map({ 1, 2 }))) end):run()
    assert.are.same({ 1, 1, 2, 2, n = 4 }, st.result[b].result)
  end)

  it("gives an empty Mapped for an empty list", function()
    local ran = false
    local t = task(function() ran = true end)
    local ref
    local st = Flow("empty", function() ref = t:map({}) end):run()
    local m = st.result[ref]
    assert.are.equal('Mapped("Ready to proceed with mapping.")', tostring(m))
    assert.are.same({}, m.result)
    assert.are.same({}, m.map_states)
    assert.is_false(ran)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(st))
  end)

  it("fails with Prefect 1's messages when nothing can be mapped", function()
    local t = task(function(x) return x end)
    local five = task(function() return 5 end)
    local bad = task(function() error("x", 0) end)
    local function mapped_state(build)
      local ref
      local st = Flow("fail", function() ref = build() end):run()
      return tostring(st.result[ref])
    end
    assert.are.equal('Failed("At least one upstream state has an unmappable result.")',
                     mapped_state(function() return t:map(five()) end))
    assert.are.equal('Failed("At least one upstream state has an unmappable result.")',
                     mapped_state(function() return t:map("abc") end))
    assert.are.equal('Failed("No upstream states can be mapped over.")',
                     mapped_state(function() return t:map(bad()) end))
    assert.are.equal('Failed("No upstream states can be mapped over.")',
                     mapped_state(function() return t:map(unmapped({ 1 })) end))
  end)

  it("pauses children on their own; the flow waits for them, resume= approves them all", function()
    local ran = {}
    local gate = task({ name = "gate", trigger = luaflow.triggers.manual_only }, function(x)
      ran[#ran + 1] = x
      return x
    end)
    local ref
    local f = Flow("paused", function() ref = gate:map({ 1, 2 }) end)
    local st = f:run()
    assert.are.equal('Running("Running flow.")', tostring(st))
    assert.are.same({ 'Paused("Trigger function is "manual_only"")', 'Paused("Trigger function is "manual_only"")' },
                    list_of(st.result[ref]))
    assert.are.same({}, ran)
    local st2 = f:run{ resume = { ref } }
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(st2))
    assert.are.same({ 1, 2 }, ran)
  end)

  it("Mapped{map_states = ...} is built as Prefect's", function()
    local m = S.Mapped{ message = "m", map_states = { S.Success(), S.Failed("x") } }
    assert.are.equal(2, m.n_map_states)
    assert.are.equal('Failed("x")', tostring(m.map_states[2]))
    assert.are.same({}, S.Mapped().map_states)
    assert.is_true(m:is_successful() and m:is_mapped() and m:is_finished())
    assert.has_error(function() return S.Mapped{ map_states = { 1 } } end)
    assert.are.equal(3, S.Mapped{ n_map_states = 3 }.n_map_states)
    assert.are.equal(0, S.Mapped().n_map_states)
  end)

  it("refuses t:map outside a builder, and unmapped/flatten in a plain call", function()
    local t = task(function() end)
    assert.has_error(function() t:map({ 1 }) end)
    local ok, err = pcall(Flow, "plain", function() t(unmapped({ 1 })) end)
    assert.is_false(ok)
    assert.matches("luaflow.unmapped%(x%) is an argument of t:map%(...%) only", err)
    assert.matches("map_spec.lua:%d+:", err) -- the user's line
  end)

  it("luaflow graph draws a mapped task with a double border, luaflow check marks it", function()
    local dir = cli.tmpdir()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local double = luaflow.task(function(x) return 2 * x end)
local total = luaflow.task(function(xs) return xs end)
return luaflow.Flow("m", function() total(double:map({1, 2})) end)
]], dir)
    local r = cli.run({ "graph", path }, { env = { XDG_STATE_HOME = dir } })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(util.has(r.stdout, 'label="double", peripheries=2]'), r.stdout)
    assert.is_true(util.has(r.stdout, 'label="total"]'), r.stdout)
    local c = cli.run({ "check", path }, { env = { XDG_STATE_HOME = dir } })
    assert.is_true(util.has(c.stdout, "1. double (mapped)\n    2. total\n"), c.stdout)
    cli.cleanup()
  end)

  it("the run store records every child: luaflow runs show and graph --run show them", function()
    local dir = cli.tmpdir()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local double = luaflow.task(function(x) if x == 2 then error("two", 0) end return 2 * x end)
return luaflow.Flow("stored-map", function() double:map({1, 2, 3}) end)
]], dir)
    local env = { XDG_STATE_HOME = dir }
    assert.are.equal(1, cli.run({ "run", path }, { env = env }).code)
    local show = cli.run({ "runs", "show", "last", "--json", "--transitions" }, { env = env })
    assert.are.equal(0, show.code, show.stderr)
    local doc = luaflow.json.decode(show.stdout)
    local rows = {}
    for _, t in ipairs(doc.tasks) do
      local index = math.type(t.map_index) == "integer" and ("[%d]"):format(t.map_index) or ""
      rows[#rows + 1] = ("%s%s %s"):format(t.name, index, t.state)
    end
    assert.are.same({ "double Mapped", "double[1] Success", "double[2] Failed", "double[3] Success" }, rows)
    assert.are.same({ 2, "two", 6 }, doc.tasks[1].result) -- as --json: the children's results
    local child_transitions = 0
    for _, t in ipairs(doc.transitions) do
      if math.type(t.map_index) == "integer" then child_transitions = child_transitions + 1 end
    end
    assert.are.equal(6, child_transitions) -- Pending -> Running -> outcome, three times
    local text = cli.run({ "runs", "show", "last" }, { env = env })
    assert.is_true(util.has(text.stdout, "  double[2]  Failed"), text.stdout)
    local g = cli.run({ "graph", "--run", "last" }, { env = env })
    assert.is_true(util.has(g.stdout, "3 children: 2 Success, 1 Failed"), g.stdout)
    -- a restart runs a mapped task again, children and all
    local again = cli.run({ "run", path, "--restart", "last", "--json", "-" }, { env = env })
    local entry = util.task_entry(util.json_lines(again.stdout)[1], "double")
    assert.are.equal(3, #entry.children, again.stderr)
    cli.cleanup()
  end)

  it("--json lists a mapped task's children and log lines name them", function()
    local dir = cli.tmpdir()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local double = luaflow.task(function(x)
  if x == 2 then error("two", 0) end
  luaflow.log.info("child %d", luaflow.context.map_index)
  return 2 * x
end)
return luaflow.Flow("m", function() double:map({1, 2, 3}) end)
]], dir)
    local r = cli.run({ "run", path, "--json", "-" }, { env = { XDG_STATE_HOME = dir, LUAFLOW_LOG_LEVEL = "INFO" } })
    assert.are.equal(1, r.code)
    local line = util.json_lines(r.stdout)[1]
    local t = util.task_entry(line, "double")
    assert.are.equal("Mapped", t.state)
    assert.are.equal(3, #t.children)
    assert.are.same({ state = "Success", message = "Task run succeeded.", run_count = 1, result = 2 },
                    t.children[1])
    assert.are.equal("Failed", t.children[2].state)
    assert.are.equal(6, t.result[3])
    assert.is_true(util.has(r.stderr, "Task 'double[2]': Exception encountered during task execution! two"))
    assert.is_true(util.has(r.stderr, "luaflow.double[3] | child 3"))
    assert.is_true(util.has(r.stderr, "Task 'double[1]': Finished task run for task with final state: 'Success'"))
    cli.cleanup()
  end)
end)
