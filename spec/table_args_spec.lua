-- Task results inside table arguments of a builder call: each reference (or
-- uncalled task) anywhere inside a table argument makes an edge, and the task
-- receives a fresh table with the results in place.
local luaflow = require("luaflow")
local task, Flow, Task, Parameter = luaflow.task, luaflow.Flow, luaflow.Task, luaflow.Parameter

local function sum(xs)
  local s = 0
  for _, v in ipairs(xs) do s = s + v end
  return s
end

-- "up -> down" for every edge of a flow, sorted.
local function edge_names(flow)
  local list = {}
  for _, e in ipairs(flow:edges()) do list[#list + 1] = e.upstream.name .. " -> " .. e.downstream.name end
  table.sort(list)
  return list
end

describe("references inside table arguments", function()
  it("a list of results: one edge each, the function gets the numbers", function()
    local f = task(function(x) return x * 10 end)
    local total = task(sum)
    local r
    local flow = Flow("list", function() r = total({ f(1), f(2), f(3) }) end)
    assert.are.same({ "f -> total", "f -> total", "f -> total" }, edge_names(flow))
    local state = flow:run()
    assert.are.equal("Success", state.name)
    assert.are.equal(60, state.result[r].result)
  end)

  it("nested tables, keys and values, sets, and a Parameter inside", function()
    local f = task(function(x) return x end)
    local seen
    local probe = task(function(t) seen = t; return true end)
    local p = Parameter("p", { default = "pv" })
    local flow = Flow("nested", function()
      probe({ a = { b = { 1, f(2) } }, [f("key")] = "value", set = { [f("member")] = true }, par = p, n = 4 })
    end)
    local state = flow:run()
    assert.are.equal("Success", state.name)
    assert.are.equal(2, seen.a.b[2])
    assert.are.equal(1, seen.a.b[1])
    assert.are.equal("value", seen.key)
    assert.is_true(seen.set.member)
    assert.are.equal("pv", seen.par)
    assert.are.equal(4, seen.n)
    assert.are.equal(4, #flow:edges())
  end)

  it("keeps shared and cyclic structure, metatables, and tables without references as they are", function()
    local f = task(function(x) return x end)
    local got
    local probe = task(function(t, plain) got = { t = t, plain = plain }; return 1 end)
    local mt = { __index = { kind = "custom" } }
    local plain = { 1, 2, { 3 } }
    local shared
    Flow("shapes", function()
      shared = { f(1) }
      local cyclic = setmetatable({ f(2) }, mt)
      cyclic.self = cyclic
      probe({ s1 = shared, s2 = shared, c = cyclic }, plain)
    end):run()
    assert.are.equal(got.t.s1, got.t.s2)
    assert.are.equal(1, got.t.s1[1])
    assert.are.equal(got.t.c, got.t.c.self)
    assert.are.equal(2, got.t.c[1])
    assert.are.equal("custom", got.t.c.kind)
    assert.are.equal(plain, got.plain) -- a constant: the very table
    assert.are_not.equal(shared, got.t.s1) -- a fresh table, the builder's stays a list of references
  end)

  it("hands each attempt a fresh table, so a retry does not see the last attempt's changes", function()
    local f = task(function() return 5 end)
    local seen = {}
    local attempts = 0
    local flaky = task{ max_retries = 1, retry_delay = 0 }(function(t)
      attempts = attempts + 1
      seen[attempts] = t[1]
      t[1] = "changed"
      if attempts == 1 then error("first attempt fails") end
      return t[1]
    end)
    local state = Flow("fresh", function() flaky({ f() }) end):run()
    assert.are.equal("Success", state.name)
    assert.are.same({ 5, 5 }, seen)
  end)

  it("an upstream that fails stops the task, as a direct argument does", function()
    local bad = task(function() error("no data") end)
    local ok = task(function() return 1 end)
    local ran = false
    local r
    local flow = Flow("failing", function()
      r = task(function() ran = true end)({ ok(), { deep = bad() } })
    end)
    local state = flow:run()
    assert.are.equal("Failed", state.name)
    assert.are.equal("TriggerFailed", state.result[r].name)
    assert.is_false(ran)
  end)

  it("a nil result leaves a hole (a nil key leaves its entry out)", function()
    local none = task(function() return nil end)
    local some = task(function() return 2 end)
    local got
    local probe = task(function(t) got = t end)
    Flow("holes", function() probe({ a = none(), b = some(), [none()] = "dropped" }) end):run()
    assert.is_nil(got.a)
    assert.are.equal(2, got.b)
    local n = 0
    for _ in pairs(got) do n = n + 1 end
    assert.are.equal(1, n)
  end)

  it("an uncalled task inside a table is an upstream, as it is as an argument", function()
    local up = Task{ name = "up", fn = function() return "u" end }
    local got
    local flow = Flow("bare", function() task(function(t) got = t.x end)({ x = up }) end)
    assert.are.same({ "up -> task" }, edge_names(flow))
    flow:run()
    assert.are.equal("u", got)
  end)

  it("a table with no reference is a constant: no edge", function()
    local got
    local flow = Flow("const", function() task(function(t) got = t end)({ 1, { 2 } }) end)
    assert.are.equal(0, #flow:edges())
    flow:run()
    assert.are.same({ 1, { 2 } }, got)
  end)

  it("deep nesting costs no C stack (10,000 levels)", function()
    local f = task(function() return "bottom" end)
    local got
    local depth = 10000
    local flow = Flow("deep", function()
      local t = { f() }
      for _ = 1, depth do t = { t } end
      task(function(x) got = x end)(t)
    end)
    flow:run()
    for _ = 1, depth do got = got[1] end
    assert.are.equal("bottom", got[1])
  end)

  it("check lists such edges as inside their argument", function()
    local cli = require("cli")
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local f = luaflow.task(function(x) return x end)
local total = luaflow.task(function(xs) return #xs end)
return luaflow.Flow("listed", function() total({f(1), f(2)}) end)
]])
    local r = cli.run({ "check", path })
    cli.cleanup()
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("f #1 -> total (inside argument 1)", r.stdout, 1, true)
    assert.matches("f #2 -> total (inside argument 1)", r.stdout, 1, true)
  end)

  it("the state-only form: ref:set_upstream(u) orders without passing data", function()
    local order = {}
    local cleanup = task("cleanup", function() order[#order + 1] = "cleanup" end)
    local load = task("load", function(x) order[#order + 1] = "load " .. tostring(x) end)
    local flow = Flow("state-only", function()
      local c = cleanup()
      local l = load(1)
      l:set_upstream(c)
    end)
    assert.is_nil(flow:edges()[1].key)
    flow:run()
    assert.are.same({ "cleanup", "load 1" }, order)
  end)
end)
