-- Tasks and flows: building, naming,
-- edges, order, parameters, runs and the errors bad input draws.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local Task, Flow, task, Parameter = luaflow.Task, luaflow.Flow, luaflow.task, luaflow.Parameter

-- ---------------------------------------------------------------- helpers

-- The error a call raises, as a string (fails the spec when it does not raise).
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function contains(haystack, needle)
  return string.find(haystack, needle, 1, true) ~= nil
end

local function assert_contains(haystack, needle)
  assert(contains(haystack, needle),
         ("expected %q to contain %q"):format(haystack, needle))
end

-- "<Task: NAME>" or "<Parameter: NAME>" -> "NAME"
local function name_of(t)
  local s = tostring(t)
  return s:match("^<Task: (.*)>$") or s:match("^<Parameter: (.*)>$") or s
end

-- Task names of a flow state, in task_states() order.
local function state_names(flow_state)
  local names = {}
  for t in flow_state:task_states() do names[#names + 1] = name_of(t) end
  return names
end

local function count_states(flow_state)
  local n = 0
  for _ in flow_state:task_states() do n = n + 1 end
  return n
end

-- A task that appends its name to `log` when it runs and returns `value`.
local function recorder(name, log, value)
  return task(name, function() log[#log + 1] = name; return value end)
end

-- The current line of the caller, for error-location specs.
local function here()
  return debug.getinfo(2, "l").currentline
end

-- ---------------------------------------------------------------- Task

describe("Task()", function()
  it("is named Task without a name and prints <Task: Task>", function()
    assert.are.equal("<Task: Task>", tostring(Task()))
    assert.are.equal("<Task: Task>", tostring(Task{}))
  end)

  it("prints its given name", function()
    assert.are.equal("<Task: load>", tostring(Task{name = "load"}))
  end)

  it("works with .. as well as tostring", function()
    assert.are.equal("x<Task: Task>", "x" .. Task())
    assert.are.equal("<Task: a>!", Task{name = "a"} .. "!")
  end)

  it("without fn does nothing and returns nil, directly and in a flow", function()
    local t = Task()
    assert.is_nil(t:run())
    local flow = Flow{name = "empty-task", tasks = {t}}
    local state = flow:run()
    assert.is_true(state:is_successful())
    assert.is_true(state.result[t]:is_successful())
    assert.is_nil(state.result[t].result)
  end)

  it("runs the fn it is given", function()
    local t = Task{name = "five", fn = function() return 5 end}
    local state = Flow{name = "task-fn", tasks = {t}}:run()
    assert.are.equal(5, state.result[t].result)
  end)

  it("keeps the name Task when called in a builder (only task(fn) is named by its call site)", function()
    local my_plain_task = Task()
    local ref
    local flow = Flow("plain", function() ref = my_plain_task() end)
    local state = flow:run()
    assert.are.equal("<Task: Task>", tostring(my_plain_task))
    assert.are.same({"Task"}, state_names(state))
    assert.is_true(state.result[ref]:is_successful())
  end)
end)

-- ---------------------------------------------------------------- task wrappers

describe("task wrappers", function()
  local function add(a, b) return a + b end

  it("task(fn) wraps a function", function()
    local t = task(add)
    assert.are.equal(5, t:run(2, 3))
  end)

  it("task(name, fn) takes the name", function()
    local t = task("adder", add)
    assert.are.equal("<Task: adder>", tostring(t))
    assert.are.equal(7, t:run(3, 4))
  end)

  it("task{...}(fn) takes the options", function()
    local t = task{name = "adder2", tags = {"x"}}(add)
    assert.are.equal("<Task: adder2>", tostring(t))
    assert.are.equal(9, t:run(4, 5))
  end)

  it("task(opts, fn) takes the options", function()
    local t = task({name = "adder3"}, add)
    assert.are.equal("<Task: adder3>", tostring(t))
    assert.are.equal(11, t:run(5, 6))
  end)

  it("each form runs in a flow and its state carries the return value", function()
    local a = task(function() return 1 end)
    local b = task("b", function(x) return x + 1 end)
    local c = task{name = "c"}(function(x) return x * 10 end)
    local d = task({name = "d"}, function(x) return x - 3 end)
    local rd
    local flow = Flow("forms", function() rd = d(c(b(a()))) end)
    local state = flow:run()
    assert.are.equal(17, state.result[rd].result)
  end)
end)

-- ---------------------------------------------------------------- naming

describe("call-site naming", function()
  it("names task(fn) after the local it is called through", function()
    local mission_critical_task = task(function(a, b) return a + b end)
    local flow = Flow("naming", function() mission_critical_task(1, 1) end)
    assert.are.equal("<Task: mission_critical_task>", tostring(mission_critical_task))
    assert.are.same({"mission_critical_task"}, state_names(flow:run()))
  end)

  it("names task(fn) after the field it is called through (M.extract() -> extract)", function()
    local M = {}
    M.extract = task(function() return {} end)
    local flow = Flow("naming-field", function() M.extract() end)
    assert.are.equal("<Task: extract>", tostring(M.extract))
    assert.are.same({"extract"}, state_names(flow:run()))
  end)

  it("leaves a task called through list[1]() named task", function()
    local list = { task(function() return 1 end) }
    local flow = Flow("naming-index", function() list[1]() end)
    assert.are.equal("<Task: task>", tostring(list[1]))
    assert.are.same({"task"}, state_names(flow:run()))
  end)

  it("never renames a task after its first call", function()
    local first_name = task(function() return 1 end)
    Flow("first", function() first_name() end)
    local second_name = first_name
    local flow = Flow("second", function() second_name() end)
    assert.are.equal("<Task: first_name>", tostring(first_name))
    assert.are.same({"first_name"}, state_names(flow:run()))
  end)

  it("keeps task after a first call that gave no name", function()
    local list = { task(function() return 1 end) }
    Flow("unnamed-first", function() list[1]() end)
    local later_name = list[1]
    local flow = Flow("unnamed-later", function() later_name() end)
    assert.are.equal("<Task: task>", tostring(later_name))
    assert.are.same({"task"}, state_names(flow:run()))
  end)

  it("does not rename a task that was given a name", function()
    local some_local = task("given", function() return 1 end)
    local flow = Flow("named", function() some_local() end)
    assert.are.equal("<Task: given>", tostring(some_local))
    assert.are.same({"given"}, state_names(flow:run()))
  end)

  it("does not name a task after a method call site (o:m())", function()
    local o = { m = luaflow.task(function(_) return 1 end) }
    local f = Flow("g", function() o:m() end)
    assert.are.equal("task", f:tasks()[1].name)
  end)
end)

-- ---------------------------------------------------------------- option checks

describe("unknown options", function()
  local function fn() end

  it("Task rejects an unknown option, naming it", function()
    assert_contains(error_of(function() return Task{bogus_opt = 1} end), "bogus_opt")
  end)

  it("task{...} rejects an unknown option, naming it", function()
    assert_contains(error_of(function() return task{bogus_opt2 = 1}(fn) end), "bogus_opt2")
  end)

  it("task(opts, fn) rejects an unknown option, naming it", function()
    assert_contains(error_of(function() return task({retires = 3}, fn) end), "retires")
  end)

  it("Flow{...} rejects an unknown option, naming it", function()
    assert_contains(error_of(function() return Flow{name = "f", taks = {}} end), "taks")
  end)

  it("Flow(opts, builder) rejects an unknown option, naming it", function()
    assert_contains(error_of(function()
      return Flow({name = "f", stat_handlers = {}}, function() end)
    end), "stat_handlers")
  end)

  it("flow:run rejects an unknown option, naming it", function()
    local flow = Flow{name = "run-opts", tasks = {Task()}}
    assert_contains(error_of(function() return flow:run{paramters = {}} end), "paramters")
  end)

  it("Parameter rejects an unknown option, naming it", function()
    assert_contains(error_of(function() return Parameter("p", {defualt = 1}) end), "defualt")
  end)
end)

describe("Flow names and printed forms", function()
  it("Flow{} without a name is an error", function()
    assert_contains(error_of(function() return Flow{} end), "A name must be provided for the flow.")
    assert_contains(error_of(function() return Flow{tasks = {Task()}} end),
                    "A name must be provided for the flow.")
  end)

  -- Prefect 1: an empty name is the same ValueError.
  it("an empty flow name is the same error", function()
    assert_contains(error_of(function() return Flow{name = ""} end), "A name must be provided for the flow.")
  end)

  it("tostring(flow) is <Flow: name=NAME>", function()
    local flow = Flow("my-flow", function() end)
    assert.are.equal("<Flow: name=my-flow>", tostring(flow))
    assert.are.equal("<Flow: name=other>", tostring(Flow{name = "other"}))
    assert.are.equal("[<Flow: name=my-flow>]", "[" .. flow .. "]")
  end)

  it("tostring(Parameter(name)) is <Parameter: name>", function()
    assert.are.equal("<Parameter: x>", tostring(Parameter("x")))
    assert.are.equal("<Parameter: rows>", tostring(Parameter("rows", {default = 1})))
  end)
end)

describe("calling a task outside a builder", function()
  it("is an error naming the task and saying why", function()
    local t = task("lonely", function() return 1 end)
    local msg = error_of(function() return t(1) end)
    assert_contains(msg, "<Task: lonely>")
    assert_contains(msg, "outside")
  end)

  it("is an error after a builder has finished too", function()
    local t = task("later", function() return 1 end)
    Flow("done", function() t() end)
    local msg = error_of(function() return t() end)
    assert_contains(msg, "<Task: later>")
    assert_contains(msg, "outside")
  end)
end)

-- ---------------------------------------------------------------- data edges

local X = require("executors") -- specs marked X.each run under every executor

describe("data edges", function() X.each(function(x)
  local sub = task("sub", function(a, b) return a - b end)
  local ten = task("ten", function() return 10 end)
  local three = task("three", function() return 3 end)

  it("pass results into arguments by position", function()
    local r1, r2
    local flow = Flow("positions", function()
      r1 = sub(ten(), three())
      r2 = sub(three(), ten())
    end)
    local state = flow:run()
    assert.are.equal(7, state.result[r1].result)
    assert.are.equal(-7, state.result[r2].result)
  end)

  it("pass constants through as they are, mixed with results", function()
    local const_tbl = {k = "v"}
    local probe = task("probe", function(a, b, c, d) return {a, b, c, d} end)
    local rp
    local flow = Flow("constants", function() rp = probe(1, ten(), const_tbl, "s") end)
    local state = flow:run()
    assert.is_true(state:is_successful())
    local seen = state.result[rp].result
    assert.are.equal(1, seen[1])
    assert.are.equal(10, seen[2])
    assert.is_true(X.same(x, const_tbl, seen[3]))
    assert.are.equal("s", seen[4])
  end)

  it("keep positions around a nil constant", function()
    local probe = task("probe_nil", function(a, b) return {a = a, b = b} end)
    local rp
    local flow = Flow("nil-const", function() rp = probe(nil, ten()) end)
    local state = flow:run()
    assert.is_true(state:is_successful())
    local got = state.result[rp].result
    assert.is_nil(got.a)
    assert.are.equal(10, got.b)
  end)

  it("take several upstreams", function()
    local join = task("join", function(a, b, c) return table.concat({a, b, c}, ",") end)
    local sa = task("sa", function() return "a" end)
    local sb = task("sb", function() return "b" end)
    local sc = task("sc", function() return "c" end)
    local r
    local flow = Flow("several", function() r = join(sa(), sb(), sc()) end)
    assert.are.equal("a,b,c", flow:run().result[r].result)
  end)

  it("fan out from one result and fan in to one task", function()
    local source = task("source", function() return 2 end)
    local times = task("times", function(x, k) return x * k end)
    local sum = task("sum", function(...)
      local s = 0
      for _, v in ipairs({...}) do s = s + v end
      return s
    end)
    local calls = X.tally()
    local counted_source = task("counted", function() calls.add(1); return 2 end)
    local r, r2
    local flow = Flow("fan", function()
      local s = source()
      r = sum(times(s, 1), times(s, 10), times(s, 100))
      local c = counted_source()
      r2 = sum(times(c, 3), times(c, 4))
    end)
    local state = flow:run()
    assert.are.equal(222, state.result[r].result)
    assert.are.equal(14, state.result[r2].result)
    assert.are.equal(1, calls.count()) -- the fanned-out upstream runs once
  end)

  it("fail the downstream when an upstream fails (default trigger)", function()
    local boom = task("boom", function() error("no") end)
    local after = task("after", function(x) return x end)
    local rb, ra
    local flow = Flow("upfail", function() rb = boom(); ra = after(rb) end)
    local state = flow:run()
    assert.is_true(state.result[rb]:is_failed())
    assert.are.equal("TriggerFailed", state.result[ra].name)
    assert.is_true(state:is_failed())
  end)
end) end)

-- ---------------------------------------------------------------- explicit edges

describe("explicit edges", function()
  it("flow:add_edge(u, d) makes u run before d", function()
    local log = {}
    local d = recorder("down", log)
    local u = recorder("up", log)
    -- without the edge, d (added first) comes first
    local plain = Flow{name = "no-edge", tasks = {d, u}}
    plain:run()
    assert.are.same({"down", "up"}, log)
    log = {}
    d = recorder("down", log)
    u = recorder("up", log)
    local flow = Flow{name = "edge", tasks = {d, u}}
    flow:add_edge(u, d)
    local state = flow:run()
    assert.are.same({"up", "down"}, log)
    assert.are.same({"up", "down"}, state_names(state))
  end)

  it("add_edge without a key passes no data", function()
    local got = "unset"
    local u = task("u", function() return 42 end)
    local d = task("d", function(...) got = select("#", ...) end)
    local flow = Flow{name = "no-key", tasks = {u, d}}
    flow:add_edge(u, d)
    assert.is_true(flow:run():is_successful())
    assert.are.equal(0, got)
  end)

  it("add_edge with an integer key passes the result at that position", function()
    local got = {}
    local u = task("u", function() return "from-u" end)
    local d = task("d", function(a, b) got.a, got.b = a, b; return b end)
    local flow = Flow{name = "int-key", tasks = {u, d}}
    flow:add_edge(u, d, 2)
    local state = flow:run()
    assert.is_nil(got.a)
    assert.are.equal("from-u", got.b)
    assert.are.equal("from-u", state.result[d].result)
  end)

  it("add_edge with a parameter name passes the result to that parameter", function()
    local got = {}
    local u1 = task("u1", function() return 1 end)
    local u2 = task("u2", function() return 2 end)
    local d = task("d", function(first, second, third) got = {first, second, third}; return true end)
    local flow = Flow{name = "name-key", tasks = {u1, u2, d}}
    flow:add_edge(u1, d, "third")
    flow:add_edge(u2, d, "first")
    assert.is_true(flow:run():is_successful())
    assert.are.equal(2, got[1])
    assert.is_nil(got[2])
    assert.are.equal(1, got[3])
  end)

  it("add_edge accepts references from a builder", function()
    local log = {}
    local a = recorder("ea", log)
    local b = recorder("eb", log)
    local ra, rb
    local flow = Flow("ref-edge", function() rb = b(); ra = a() end)
    flow:add_edge(ra, rb)
    local state = flow:run()
    assert.are.same({"ea", "eb"}, log)
    assert.are.same({"ea", "eb"}, state_names(state))
  end)

  it("t:set_upstream(u) inside a builder adds an ordering edge", function()
    local log = {}
    local first = recorder("first", log)
    local second = recorder("second", log)
    local flow = Flow("set-upstream", function()
      local s = second()
      local f = first()
      s:set_upstream(f)
    end)
    local state = flow:run()
    assert.are.same({"first", "second"}, log)
    assert.are.same({"first", "second"}, state_names(state))
  end)

  it("a bare task's set_upstream inside a builder adds it to the flow being built", function()
    local log = {}
    local first = recorder("bare_first", log)
    local second = recorder("bare_second", log)
    local flow = Flow("bare-set-upstream", function()
      local f = first()
      second:set_upstream(f)
    end)
    local state = flow:run()
    assert.are.same({"bare_first", "bare_second"}, log)
    assert.are.equal(2, count_states(state))
  end)

  it("set_upstream takes a key like add_edge", function()
    local got
    local u = task("su_u", function() return "val" end)
    local d = task("su_d", function(x) got = x end)
    local flow = Flow("set-upstream-key", function()
      local rd = d()
      rd:set_upstream(u(), 1)
    end)
    assert.is_true(flow:run():is_successful())
    assert.are.equal("val", got)
  end)

  it("leaves the engine as it was: no run in progress, state constructors work", function()
    local f = Flow{ name = "f", tasks = { Task{ name = "a" }, Task{ name = "b" } } }
    assert.has_error(function() f:add_edge(f:tasks()[1], f:tasks()[2], 2 ^ 31) end)
    assert.is_false(core.running())
    assert.are.equal(1, luaflow.states.Retrying{}.run_count)
  end)
end)

-- ---------------------------------------------------------------- order

describe("topological order of task_states()", function()
  it("is the order added for independent tasks", function()
    local log = {}
    local tasks = {}
    for _, n in ipairs({"i3", "i1", "i4", "i2"}) do tasks[#tasks + 1] = recorder(n, log) end
    local state = Flow{name = "independent", tasks = tasks}:run()
    assert.are.same({"i3", "i1", "i4", "i2"}, state_names(state))
    assert.are.same({"i3", "i1", "i4", "i2"}, log)
  end)

  it("takes a diamond in the order its tasks were added", function()
    local log = {}
    local a = task("a", function() log[#log + 1] = "a"; return 1 end)
    local b = task("b", function(x) log[#log + 1] = "b"; return x end)
    local c = task("c", function(x) log[#log + 1] = "c"; return x end)
    local d = task("d", function(x, y) log[#log + 1] = "d"; return x + y end)
    local rd
    local flow = Flow("diamond", function()
      local ra = a()
      local rc = c(ra) -- c is added before b
      local rb = b(ra)
      rd = d(rb, rc)
    end)
    local state = flow:run()
    assert.are.same({"a", "c", "b", "d"}, state_names(state))
    assert.are.same({"a", "c", "b", "d"}, log)
    assert.are.equal(2, state.result[rd].result)
  end)

  it("takes, among the ready tasks, the one added first (not FIFO)", function()
    -- added t1, t2, t3, t4; edges t3 -> t1, t4 -> t2.
    -- Ready: t3, t4 -> t3; then t1 (added before t4) is ready -> t1; then t4, t2.
    local t1, t2, t3, t4 = Task{name = "t1"}, Task{name = "t2"}, Task{name = "t3"}, Task{name = "t4"}
    local flow = Flow{name = "kahn", tasks = {t1, t2, t3, t4}}
    flow:add_edge(t3, t1)
    flow:add_edge(t4, t2)
    assert.are.same({"t3", "t1", "t4", "t2"}, state_names(flow:run()))
  end)

  it("lists every task once, upstreams before downstreams, in a larger graph", function()
    local n = {}
    for i = 1, 6 do n[i] = Task{name = "n" .. i} end
    -- added n1..n6; edges n6->n1, n5->n6, n2->n5, n4->n3
    local flow = Flow{name = "larger", tasks = n}
    flow:add_edge(n[6], n[1])
    flow:add_edge(n[5], n[6])
    flow:add_edge(n[2], n[5])
    flow:add_edge(n[4], n[3])
    -- ready {n2, n4}: n2; ready {n4, n5}: n4; ready {n3, n5}: n3; n5; n6; n1
    assert.are.same({"n2", "n4", "n3", "n5", "n6", "n1"}, state_names(flow:run()))
  end)
end)

describe("cycles", function()
  it("add_edge that closes a cycle is an error naming the tasks", function()
    local a = Task{name = "cyc_alpha"}
    local b = Task{name = "cyc_beta"}
    local flow = Flow{name = "cyclic", tasks = {a, b}}
    flow:add_edge(a, b)
    local msg = error_of(function() flow:add_edge(b, a) end)
    assert_contains(msg, "cyc_alpha")
    assert_contains(msg, "cyc_beta")
  end)

  it("a cycle through references after building is an error naming the tasks", function()
    local x = task("cyc_x", function() return 1 end)
    local y = task("cyc_y", function(v) return v end)
    local z = task("cyc_z", function(v) return v end)
    local rx, rz
    local flow = Flow("cyclic-refs", function() rx = x(); rz = z(y(rx)) end)
    local msg = error_of(function() flow:add_edge(rz, rx) end)
    assert_contains(msg, "cyc_x")
    assert_contains(msg, "cyc_y")
    assert_contains(msg, "cyc_z")
  end)

  it("a cycle made inside a builder is an error when the flow is built", function()
    local p = task("cyc_p", function() return 1 end)
    local q = task("cyc_q", function() return 1 end)
    local msg = error_of(function()
      return Flow("cyclic-builder", function()
        local rp = p()
        local rq = q(rp)
        rp:set_upstream(rq)
      end)
    end)
    assert_contains(msg, "cyc_p")
    assert_contains(msg, "cyc_q")
  end)

  it("an edge from a task to itself is a cycle", function()
    local s = Task{name = "cyc_self"}
    local flow = Flow{name = "self-loop", tasks = {s}}
    assert_contains(error_of(function() flow:add_edge(s, s) end), "cyc_self")
  end)
end)

-- ---------------------------------------------------------------- copies

describe("calling the same task twice in a builder", function()
  local double = task("double", function(x) return x * 2 end)

  it("adds two copies with the same name", function()
    local r1, r2
    local flow = Flow("copies", function() r1 = double(1); r2 = double(5) end)
    local state = flow:run()
    assert.are.same({"double", "double"}, state_names(state))
    assert.are.equal(2, state.result[r1].result)
    assert.are.equal(10, state.result[r2].result)
  end)

  it("chains copies through their references", function()
    local r
    local flow = Flow("copy-chain", function() r = double(double(double(1))) end)
    local state = flow:run()
    assert.are.equal(3, count_states(state))
    assert.are.equal(8, state.result[r].result)
  end)

  it("accepts the bare task when the flow holds exactly one copy", function()
    local once = task("once", function() return "only" end)
    local flow = Flow("one-copy", function() once() end)
    local state = flow:run()
    assert.are.equal("only", state.result[once].result)
  end)

  it("is an error naming the task when the bare task has several copies", function()
    local twice = task("twice_called", function(x) return x end)
    local flow = Flow("two-copies", function() twice(1); twice(2) end)
    local state = flow:run()
    assert.is_true(state:is_successful())
    local msg = error_of(function() return state.result[twice] end)
    assert_contains(msg, "twice_called")
  end)

  it("rejects a bare task with several copies in reference_tasks, naming it", function()
    local twice = task("twice_ref", function(x) return x end)
    local flow = Flow("two-copies-ref", function() twice(1); twice(2) end)
    -- Prefect 1: Flow.set_reference_tasks
    assert_contains(error_of(function() flow:set_reference_tasks({twice}) end), "twice_ref")
  end)
end)

describe("indexing a reference in a builder", function()
  it("adds a get-item task whose result is the field", function()
    local extract = task("extract", function() return {rows = {1, 2, 3}, count = 3} end)
    local total = task("total", function(rows) local s = 0; for _, v in ipairs(rows) do s = s + v end; return s end)
    local rrows, rtotal, rcount
    local flow = Flow("getitem", function()
      local data = extract()
      rrows = data.rows
      rcount = data.count
      rtotal = total(rrows)
    end)
    local state = flow:run()
    assert.are.equal(4, count_states(state)) -- extract, two get-item tasks, total
    assert.are.same({1, 2, 3}, state.result[rrows].result)
    assert.are.equal(3, state.result[rcount].result)
    assert.are.equal(6, state.result[rtotal].result)
  end)

  it("works inline in a call (extract().rows)", function()
    local extract = task("extract2", function() return {rows = "R"} end)
    local echo = task("echo", function(v) return v end)
    local r
    local flow = Flow("getitem-inline", function() r = echo(extract().rows) end)
    assert.are.equal("R", flow:run().result[r].result)
  end)
end)

describe("reference tasks", function()
  it("decide the flow state (terminal tasks by default)", function()
    local good = task("good", function() return 1 end)
    local bad = task("bad", function() error("bad") end)
    local flow = Flow{name = "default-ref", tasks = {good, bad}}
    local state = flow:run()
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
  end)

  it("accept bare tasks in Flow{reference_tasks=}", function()
    local good = task("good", function() return 1 end)
    local bad = task("bad", function() error("bad") end)
    local flow = Flow{name = "bare-ref", tasks = {good, bad}, reference_tasks = {good}}
    local state = flow:run()
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
    assert.is_true(state.result[bad]:is_failed())
  end)

  it("accept references", function()
    local maybe = task("maybe", function(x) if x == 0 then error("zero") end; return x end)
    local r_ok, r_bad
    local flow = Flow("ref-refs", function() r_ok = maybe(1); r_bad = maybe(0) end)
    assert.is_true(flow:run():is_failed())
    -- Prefect 1: Flow.set_reference_tasks
    flow:set_reference_tasks({r_ok})
    local state = flow:run()
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
    assert.is_true(state.result[r_bad]:is_failed())
    flow:set_reference_tasks({r_bad})
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(flow:run()))
  end)

  it("accept references filled in while Flow(opts, builder) builds", function()
    local maybe = task("maybe2", function(x) if x == 0 then error("zero") end; return x end)
    local refs = {}
    local flow = Flow({name = "ref-opts", reference_tasks = refs}, function()
      refs[1] = maybe(1)
      maybe(0)
    end)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(flow:run()))
  end)
end)

-- ---------------------------------------------------------------- t:run

describe("t:run(...)", function()
  it("calls the function directly, outside any flow", function()
    local t = task("direct", function(a, b) return a * b end)
    assert.are.equal(42, t:run(6, 7))
  end)

  it("returns only the first value", function()
    local t = task("multi", function() return 1, 2, 3 end)
    assert.are.equal(1, select("#", t:run()))
    assert.are.equal(1, (t:run()))
  end)

  it("in a flow, only the first value is the result", function()
    local t = task("multi_flow", function() return "first", "second" end)
    local got
    local consumer = task("consumer", function(...) got = {n = select("#", ...), ...}; return got.n end)
    local rt
    local flow = Flow("multi-result", function() rt = t(); consumer(rt) end)
    local state = flow:run()
    assert.are.equal("first", state.result[rt].result)
    assert.are.same({n = 1, "first"}, got)
  end)

  it("passes errors through", function()
    local t = task("raiser", function() error("direct-error", 0) end)
    assert.are.equal("direct-error", error_of(function() return t:run() end))
  end)
end)

-- ---------------------------------------------------------------- parameters

describe("Parameter", function()
  local double = task("pdouble", function(x) return x * 2 end)

  it("takes its value from flow:run{parameters=}", function()
    local x = Parameter("x")
    local r
    local flow = Flow("param", function() r = double(x) end)
    local state = flow:run{parameters = {x = 21}}
    assert.are.equal(42, state.result[r].result)
    assert.are.equal(21, state.result[x].result)
  end)

  it("uses its default when no value is given", function()
    local x = Parameter("x", {default = 3})
    local r
    local flow = Flow("param-default", function() r = double(x) end)
    assert.are.equal(6, flow:run().result[r].result)
    assert.are.equal(20, flow:run{parameters = {x = 10}}.result[r].result)
  end)

  it("passed uncalled into a task call is a data edge", function()
    local x = Parameter("x", {default = 1})
    local r
    local flow = Flow("param-edge", function() r = double(x) end)
    local state = flow:run()
    assert.are.equal(2, count_states(state))
    assert.are.same({"x", "pdouble"}, state_names(state))
  end)

  it("rejects unexpected parameter names", function()
    local flow = Flow("no-params", function() double(1) end)
    assert_contains(error_of(function() return flow:run{parameters = {a = 1}} end),
                    "Flow.run received the following unexpected parameters: a")
  end)

  it("rejects a name that matches no Parameter of this flow", function()
    local x = Parameter("x", {default = 1})
    local flow = Flow("other-params", function() double(x) end)
    assert_contains(error_of(function() return flow:run{parameters = {x = 1, a = 2}} end),
                    "Flow.run received the following unexpected parameters: a")
  end)

  it("rejects a run without a required parameter", function()
    local q = Parameter("q", {required = true})
    local flow = Flow("required", function() double(q) end)
    assert_contains(error_of(function() return flow:run() end),
                    "Flow.run did not receive the following required parameters: q")
    assert.are.equal(4, flow:run{parameters = {q = 4}}.result[q].result)
  end)

  it("can be added to a flow by Flow{tasks=}", function()
    local p = Parameter("p", {default = "d"})
    local flow = Flow{name = "param-tasks", tasks = {p}}
    assert.are.equal("d", flow:run().result[p].result)
    assert.are.equal("v", flow:run{parameters = {p = "v"}}.result[p].result)
  end)
end)

-- ---------------------------------------------------------------- flow:run

describe("flow:run()", function()
  it("returns the flow's final State", function()
    local t = task("ok", function() return 1 end)
    local flow = Flow("final", function() t() end)
    local state = flow:run()
    assert.is_true(state:is(luaflow.states.Success))
    assert.are.equal("Success", state.name)
    assert.are.equal("All reference tasks succeeded.", state.message)
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(state))
  end)

  it("maps every task to its final State, whose .result is the return value", function()
    local a = task("ra", function() return {v = 1} end)
    local b = task("rb", function(x) return x.v + 1 end)
    local c = task("rc", function() error("rc failed") end)
    local d = task("rd", function(x) return x end)
    local refs = {}
    local flow = Flow("every", function()
      refs.a = a(); refs.b = b(refs.a); refs.c = c(); refs.d = d(refs.c)
    end)
    local state = flow:run()
    local n = 0
    for t, s in state:task_states() do
      n = n + 1
      assert.is_true(s:is(luaflow.states.State))
      assert.is_true(s:is_finished())
      assert.are.equal(s, state.result[t])
    end
    assert.are.equal(4, n)
    assert.are.same({v = 1}, state.result[refs.a].result)
    assert.are.equal(2, state.result[refs.b].result)
    assert.are.equal('Success("Task run succeeded.")', tostring(state.result[refs.b]))
    assert.is_true(state.result[refs.c]:is_failed())
    assert_contains(state.result[refs.c].message, "rc failed")
    assert.are.equal("TriggerFailed", state.result[refs.d].name)
  end)

  it("maps tasks that never ran to Pending(\"Task not run.\")", function()
    local ran = false
    local t = task("never", function() ran = true end)
    local function refuse(_, _, new)
      if new:is_running() then error("no running today", 0) end
    end
    local r
    local flow = Flow({name = "not-run", state_handlers = {refuse}}, function() r = t() end)
    local state = flow:run()
    assert.is_false(ran)
    assert.are.equal('Failed("Unexpected error while calling state handlers: no running today")',
                     tostring(state))
    assert.are.equal('Pending("Task not run.")', tostring(state.result[r]))
    assert.are.equal(1, count_states(state))
  end)

  it("keeps results reachable after collectgarbage() while the state is kept", function()
    local make = task("make", function() return {payload = string.rep("x", 100), n = 7} end)
    local r
    local flow = Flow("gc-keep", function() r = make() end)
    local state = flow:run()
    flow = nil
    collectgarbage(); collectgarbage()
    local result = state.result[r].result
    assert.are.equal(7, result.n)
    assert.are.equal(100, #result.payload)
    collectgarbage(); collectgarbage()
    assert.are.equal(7, state.result[r].result.n)
  end)

  -- the contract: results live as long as the user keeps the states, and nothing
  -- of a run stays behind them.
  it("lets results be collected once the state is dropped", function()
    local weak = setmetatable({}, {__mode = "v"})
    local make = task("make_weak", function() local v = {}; weak[1] = v; return v end)
    local flow = Flow("gc-drop", function() make() end)
    local state = flow:run()
    assert.is_not_nil(weak[1])
    state = nil
    collectgarbage(); collectgarbage(); collectgarbage()
    assert.is_nil(weak[1])
  end)

  it("gives independent results when a flow runs twice", function()
    local count = 0
    local counter = task("counter", function() count = count + 1; return {run = count} end)
    local r
    local flow = Flow("twice", function() r = counter() end)
    local s1 = flow:run()
    local s2 = flow:run()
    assert.are_not.equal(s1, s2)
    assert.are.equal(1, s1.result[r].result.run)
    assert.are.equal(2, s2.result[r].result.run)
    assert.are_not.equal(s1.result[r], s2.result[r])
  end)

  it("runs a chain of 100,000 tasks without overflowing a stack", function()
    local N = 100000
    local inc = task("inc", function(x) return (x or 0) + 1 end)
    local last
    local flow = Flow("deep", function()
      local prev = inc()
      for _ = 2, N do prev = inc(prev) end
      last = prev
    end)
    local state = flow:run()
    assert.is_true(state:is_successful())
    assert.are.equal(N, state.result[last].result)
  end)

  it("gives no run count for a task added to the flow after the run", function()
    local a = Task{ name = "a" }
    local f = Flow{ name = "f", tasks = { a } }
    local state = f:run()
    local late = Task{ name = "late" }
    f:add_task(late)
    assert.is_nil(state.result[late])
    assert.is_nil(core.result_run_count(state.result, late))
  end)
end)

-- ---------------------------------------------------------------- retries

describe("max_retries and retry_delay", function()
  local function f() return 1 end

  it("requires retry_delay when max_retries > 0", function()
    assert_contains(error_of(function() return Task{max_retries = 2} end), "retry_delay")
    assert_contains(error_of(function() return task{max_retries = 1}(f) end), "retry_delay")
  end)

  -- Prefect 1: a retry_delay with a falsy max_retries (0 included) is an error.
  it("requires max_retries > 0 when a delay is given", function()
    assert_contains(error_of(function() return Task{retry_delay = 1} end), "max_retries")
    assert_contains(error_of(function() return Task{max_retries = 0, retry_delay = 1} end), "max_retries")
    assert_contains(error_of(function() return task({retry_delay = 0.5}, f) end), "max_retries")
  end)

  it("rejects a negative max_retries, naming it", function()
    assert_contains(error_of(function() return Task{max_retries = -1} end), "max_retries")
    assert_contains(error_of(function() return Task{max_retries = -1, retry_delay = 1} end), "max_retries")
  end)

  it("rejects a max_retries that is not a number, naming it", function()
    assert_contains(error_of(function() return Task{max_retries = "2", retry_delay = 1} end), "max_retries")
    assert_contains(error_of(function() return Task{max_retries = true, retry_delay = 1} end), "max_retries")
  end)

  -- the contract says "integer >= 0" (Prefect 1 itself accepted 2.5).
  it("rejects a max_retries that is not an integer, naming it", function()
    assert_contains(error_of(function() return Task{max_retries = 2.5, retry_delay = 1} end), "max_retries")
  end)

  it("rejects a negative retry_delay, naming it", function()
    assert_contains(error_of(function() return Task{max_retries = 1, retry_delay = -1} end), "retry_delay")
  end)

  it("rejects a retry_delay that is not a number, naming it", function()
    assert_contains(error_of(function() return Task{max_retries = 1, retry_delay = "5"} end), "retry_delay")
    assert_contains(error_of(function() return task({max_retries = 1, retry_delay = {}}, f) end), "retry_delay")
  end)

  it("accepts valid combinations, including fractional delays", function()
    assert.are.equal("<Task: Task>", tostring(Task{max_retries = 0}))
    assert.are.equal("<Task: Task>", tostring(Task{max_retries = 2, retry_delay = 0}))
    assert.are.equal("<Task: r>", tostring(task{name = "r", max_retries = 3, retry_delay = 0.25}(f)))
  end)

  it("retries a failing task within one run", function()
    -- (under every executor: see retries_spec.lua)
    local calls = X.tally()
    local flaky = task{name = "flaky", max_retries = 2, retry_delay = 0}(function()
      calls.add(1)
      if calls.count() < 3 then error("not yet") end
      return "done"
    end)
    local r
    local flow = Flow("retry", function() r = flaky() end)
    local state = flow:run()
    assert.are.equal(3, calls.count())
    calls.remove()
    assert.is_true(state:is_successful())
    assert.are.equal("done", state.result[r].result)
  end)
end)

-- ---------------------------------------------------------------- os.exit

describe("os.exit inside a task", function()
  it("fails the task instead of ending the process", function()
    local after_exit = false
    local quitter = task("quitter", function() os.exit(3); after_exit = true; return 1 end)
    local survivor = task("survivor", function() return "alive" end)
    local rq, rs
    local flow = Flow("exit", function() rq = quitter(); rs = survivor() end)
    local state = flow:run()
    assert.is_false(after_exit)
    assert.is_true(state.result[rq]:is_failed())
    assert_contains(state.result[rq].message, "Error during execution of task: ")
    assert.are.equal("alive", state.result[rs].result)
    assert.are.equal('Failed("Some reference tasks failed.")', tostring(state))
  end)

  it("fails the task for os.exit(true) and os.exit(0, true) too", function()
    local a = task("exit_true", function() os.exit(true) end)
    local b = task("exit_close", function() os.exit(0, true) end)
    local ra, rb
    local flow = Flow("exit-forms", function() ra = a(); rb = b() end)
    local state = flow:run()
    assert.is_true(state.result[ra]:is_failed())
    assert.is_true(state.result[rb]:is_failed())
  end)
end)

-- ---------------------------------------------------------------- error location

describe("errors for bad input name the user's file and line", function()
  local function assert_located(msg, line)
    assert_contains(msg, "flow_spec.lua:" .. line .. ":")
  end

  it("Task{bogus=1}", function()
    local line = here() + 1
    local msg = error_of(function() local _ = Task{bogus = 1} end)
    assert_located(msg, line)
  end)

  it("task{bogus=1}(fn) and task(opts, fn)", function()
    local line = here() + 1
    local msg = error_of(function() local _ = task{bogus = 1}(print) end)
    assert_located(msg, line)
    line = here() + 1
    msg = error_of(function() local _ = task({bogus = 1}, print) end)
    assert_located(msg, line)
  end)

  it("Flow{} without a name", function()
    local line = here() + 1
    local msg = error_of(function() local _ = Flow{} end)
    assert_located(msg, line)
    assert_contains(msg, "A name must be provided for the flow.")
  end)

  it("flow:run with an unknown option or an unexpected parameter", function()
    local flow = Flow{name = "loc", tasks = {Task()}}
    local line = here() + 1
    local msg = error_of(function() local _ = flow:run{bogus = 1} end)
    assert_located(msg, line)
    line = here() + 1
    msg = error_of(function() local _ = flow:run{parameters = {a = 1}} end)
    assert_located(msg, line)
  end)

  it("a retry option error", function()
    local line = here() + 1
    local msg = error_of(function() local _ = Task{max_retries = 1} end)
    assert_located(msg, line)
  end)

  it("a task called outside a builder", function()
    local t = task("outside_loc", print)
    local line = here() + 1
    local msg = error_of(function() local _ = t() end)
    assert_located(msg, line)
  end)

  it("Parameter with an unknown option", function()
    local line = here() + 1
    local msg = error_of(function() local _ = Parameter("p", {bogus = 1}) end)
    assert_located(msg, line)
  end)
end)
