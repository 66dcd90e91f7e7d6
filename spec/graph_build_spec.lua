-- Building a flow every way the API offers (issue 8): the cycle check is
-- exact and names the tasks on the cycle whichever way the edge that closes
-- it was made; the run order is the one Kahn's algorithm gives (among ready
-- tasks, the one added first), also when a flow changes between runs; a
-- task's copies are found from the bare task, in a run's result and in a
-- trigger's by_task, with the "several copies" error kept.
local luaflow = require("luaflow")
local cli = require("cli")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function has(text, piece) return text:find(piece, 1, true) ~= nil end

-- The task names a cycle error lists, in its order.
local function cycle_names(msg)
  local list = msg:match("has a cycle among its tasks: (.*)$")
  assert(list, "not a cycle error: " .. msg)
  local names = {}
  for name in list:gmatch("<Task: ([^>]*)>") do names[#names + 1] = name end
  return names
end

local function names_of(flow_state)
  local names = {}
  for t in flow_state:task_states() do names[#names + 1] = t.name end
  return names
end

local function tasks(prefix, n)
  local list = {}
  for i = 1, n do list[i] = Task{ name = prefix .. i } end
  return list
end

describe("a cycle", function()
  it("closed by add_edge after Flow{tasks=} names the tasks on it, in edge order", function()
    local t = tasks("c", 5)
    local flow = Flow{ name = "f", tasks = t }
    flow:add_edge(t[1], t[2])
    flow:add_edge(t[2], t[3])
    flow:add_edge(t[3], t[4])
    flow:add_edge(t[4], t[5]) -- c5 is behind the cycle, not on it
    local msg = error_of(flow.add_edge, flow, t[4], t[2])
    assert.are.same({ "c2", "c3", "c4" }, cycle_names(msg))
  end)

  it("closed by an edge against the order the tasks were added in is found", function()
    local t = tasks("r", 4)
    local flow = Flow{ name = "f", tasks = { t[4], t[3], t[2], t[1] } }
    flow:add_edge(t[1], t[2])
    flow:add_edge(t[2], t[3])
    flow:add_edge(t[3], t[4])
    -- the list starts with the task added first
    assert.are.same({ "r4", "r1", "r2", "r3" }, cycle_names(error_of(flow.add_edge, flow, t[4], t[1])))
  end)

  it("closed by add_edge on tasks not yet in the flow is found", function()
    local t = tasks("n", 3)
    local flow = Flow{ name = "f" }
    flow:add_edge(t[1], t[2])
    flow:add_edge(t[2], t[3])
    assert.are.same({ "n1", "n2", "n3" }, cycle_names(error_of(flow.add_edge, flow, t[3], t[1])))
  end)

  it("through 2,000 tasks names every one of them", function()
    local t = tasks("long", 2000)
    local flow = Flow{ name = "f", tasks = t }
    for i = 2, #t do flow:add_edge(t[i - 1], t[i]) end
    local names = cycle_names(error_of(flow.add_edge, flow, t[#t], t[1]))
    assert.are.equal(2000, #names)
    assert.are.equal("long1", names[1])
    assert.are.equal("long2000", names[2000])
  end)

  it("made with set_upstream on bare tasks in a builder is an error when built", function()
    local a, b, c = Task{ name = "bare_a" }, Task{ name = "bare_b" }, Task{ name = "bare_c" }
    local msg = error_of(Flow, "f", function()
      b:set_upstream(a)
      c:set_upstream(b)
      a:set_upstream(c)
    end)
    assert.are.same({ "bare_a", "bare_b", "bare_c" }, cycle_names(msg))
  end)

  it("made with set_downstream and flow:add_edge in a builder is an error when built", function()
    local p = task("down_p", function() return 1 end)
    local q = task("down_q", function(x) return x end)
    local msg = error_of(Flow, "f", function(flow)
      local rp = p()
      local rq = q(rp)
      rq:set_downstream(rp)
      flow:add_edge(rq, rp) -- a second edge on the same cycle
    end)
    assert.are.same({ "down_p", "down_q" }, cycle_names(msg))
  end)

  it("made between references after building names the tasks", function()
    local x = task("ref_x", function() return 1 end)
    local y = task("ref_y", function(v) return v end)
    local rx, ry
    local flow = Flow("f", function() rx = x(); ry = y(rx) end)
    assert.are.same({ "ref_x", "ref_y" }, cycle_names(error_of(flow.add_edge, flow, ry, rx)))
  end)

  it("of one task (set_upstream on itself) names it", function()
    local s = Task{ name = "itself" }
    assert.are.same({ "itself" }, cycle_names(error_of(Flow, "f", function() s:set_upstream(s) end)))
  end)

  it("stays: every later edge, run and check names the same tasks", function()
    local t = tasks("k", 3)
    local flow = Flow{ name = "f", tasks = t }
    flow:add_edge(t[1], t[2])
    assert.has_error(function() flow:add_edge(t[2], t[1]) end)
    local again = error_of(flow.add_edge, flow, t[2], t[3])
    assert.are.same({ "k1", "k2" }, cycle_names(again))
    assert.are.same({ "k1", "k2" }, cycle_names(error_of(flow.run, flow)))
  end)

  it("made by `luaflow check` on a flow built with add_edge exits 2 naming the tasks", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.Task{name = "chk_a"}
local b = luaflow.Task{name = "chk_b"}
local c = luaflow.Task{name = "chk_c"}
local f = luaflow.Flow("f", function(flow)
  flow:add_edge(a, b)
  flow:add_edge(b, c)
  c:set_upstream(b)
  a:set_upstream(c)
end)
]])
    local r = cli.run({ "check", path })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "<Task: chk_a>, <Task: chk_b>, <Task: chk_c>"), r.stderr)
    cli.cleanup()
  end)
end)

describe("the cycle check", function()
  -- A reference: is `to` reachable from `from` over the edges so far?
  local function reaches(edges, from, to)
    local seen, stack = { [from] = true }, { from }
    while #stack > 0 do
      local v = table.remove(stack)
      if v == to then return true end
      for _, e in ipairs(edges) do
        if e[1] == v and not seen[e[2]] then
          seen[e[2]] = true
          stack[#stack + 1] = e[2]
        end
      end
    end
    return false
  end

  it("agrees with a search of the whole graph on 300 random flows, edge by edge", function()
    math.randomseed(8)
    for _ = 1, 300 do
      local n = math.random(2, 12)
      local t = {}
      for i = 1, n do t[i] = Task{ name = "v" .. i } end
      local order = {}
      for i = 1, n do order[i] = t[i] end
      for i = n, 2, -1 do -- added in a random order
        local j = math.random(i)
        order[i], order[j] = order[j], order[i]
      end
      local flow = Flow{ name = "random", tasks = order }
      local edges = {}
      for _ = 1, math.random(1, 3 * n) do
        local u, d = math.random(n), math.random(n)
        local closes = u == d or reaches(edges, d, u)
        local ok, err = pcall(flow.add_edge, flow, t[u], t[d])
        assert.are.equal(not closes, ok, tostring(err))
        if not ok then
          -- the names are a real cycle: each has an edge to the next
          local names = cycle_names(tostring(err))
          edges[#edges + 1] = { u, d }
          local index = {}
          for i = 1, n do index["v" .. i] = i end
          for k = 1, #names do
            local a, b = index[names[k]], index[names[k % #names + 1]]
            local found = false
            for _, e in ipairs(edges) do found = found or (e[1] == a and e[2] == b) end
            assert.is_true(found, ("no edge %s -> %s in %s"):format(names[k], names[k % #names + 1], tostring(err)))
          end
          break
        end
        edges[#edges + 1] = { u, d }
      end
    end
  end)
end)

describe("the run order", function()
  it("follows the flow when it gains an edge or a task between runs", function()
    local a, b, c = Task{ name = "a" }, Task{ name = "b" }, Task{ name = "c" }
    local flow = Flow{ name = "f", tasks = { a, b } }
    assert.are.same({ "a", "b" }, names_of(flow:run()))
    assert.are.same({ "a", "b" }, names_of(flow:run()))
    flow:add_edge(b, a)
    assert.are.same({ "b", "a" }, names_of(flow:run()))
    flow:add_task(c)
    flow:add_edge(c, b)
    assert.are.same({ "c", "b", "a" }, names_of(flow:run()))
  end)

  it("takes, among ready tasks, the one added first, also behind an edge to an earlier task", function()
    local t = tasks("o", 6)
    local flow = Flow{ name = "f", tasks = t }
    flow:add_edge(t[6], t[1])
    flow:add_edge(t[5], t[2])
    flow:add_edge(t[3], t[4])
    -- ready: o3 o5 o6 -> o3 (o4 ready), o4, o5 (o2 ready), o2, o6 (o1 ready), o1
    assert.are.same({ "o3", "o4", "o5", "o2", "o6", "o1" }, names_of(flow:run()))
  end)
end)

describe("a bare task with copies", function()
  local double = task("double", function(x) return 2 * x end)

  it("finds its one copy in the result, by bare task and by reference", function()
    local r
    local flow = Flow("f", function() r = double(4) end)
    local state = flow:run()
    assert.are.equal(8, state.result[double].result)
    assert.are.equal(8, state.result[r].result)
    assert.are.equal(8, state.result[r:task()].result)
  end)

  it("with several copies in the result is an error naming it", function()
    local flow = Flow("f", function() double(1); double(2) end)
    local state = flow:run()
    local msg = error_of(function() return state.result[double] end)
    assert.is_true(has(msg, "<Task: double> has several copies in the flow"), msg)
    msg = error_of(function() return luaflow._graph.run_count(state, double) end)
    assert.is_true(has(msg, "several copies"), msg)
  end)

  it("is found in each flow its copies were made in", function()
    local f1 = Flow("one", function() double(1) end)
    local f2 = Flow("two", function() double(2) end)
    local f3 = Flow("three", function() double(3); double(4) end)
    assert.are.equal(2, f1:run().result[double].result)
    assert.are.equal(4, f2:run().result[double].result)
    assert.has_error(function() return f3:run().result[double] end)
    assert.are.equal(4, f2:run().result[double].result) -- still
  end)

  it("is found through a copy added to another flow", function()
    local r
    local f1 = Flow("one", function() r = double(5) end)
    local f2 = Flow{ name = "two", tasks = { r } }
    assert.are.equal(10, f2:run().result[double].result)
    assert.are.equal(10, f1:run().result[double].result)
  end)

  it("in a trigger's by_task: its one upstream copy, or the several copies error", function()
    local up = task("up", function(x) return x end)
    local seen, err
    local down = task{ name = "down", trigger = function(_, by_task)
      local ok, v = pcall(function() return by_task[up] end)
      if ok then seen = v and v.result else err = tostring(v) end
      return true
    end }(function() end)
    -- one copy upstream, another copy elsewhere in the flow
    Flow("one", function() up(7); down():set_upstream(up(3)) end):run()
    assert.are.equal(3, seen)
    -- two copies upstream
    seen = nil
    Flow("two", function()
      local d = down()
      d:set_upstream(up(1))
      d:set_upstream(up(2))
    end):run()
    assert.is_nil(seen)
    assert.is_true(has(err, "<Task: up> has several copies in the flow"), err)
  end)
end)
