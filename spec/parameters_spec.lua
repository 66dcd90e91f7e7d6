-- Parameters as Prefect 1 has them: required unless they have a default, root
-- tasks, unique by name in a flow, and all of them (given or defaulted) in
-- luaflow.context.parameters.
local luaflow = require("luaflow")
local Task, Flow, task, Parameter = luaflow.Task, luaflow.Flow, luaflow.task, luaflow.Parameter
local cli = require("cli")

local function error_of(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local ROOT = "Parameters must be root tasks and can not have upstream dependencies."

describe("luaflow.context.parameters", function()
  it("holds every Parameter of the flow, given or defaulted", function()
    local seen
    local f = Flow("params", function()
      local y = Parameter("y")()
      local z = Parameter("z", { default = 19 })()
      task("look", function() seen = luaflow.context.parameters end)(y, z)
    end)
    f:run{ parameters = { y = 42 } }
    assert.are.equal(42, seen.y)
    assert.are.equal(19, seen.z)
  end)

  it("lets a given value win over the default", function()
    local seen
    local f = Flow("params-given", function()
      Parameter("z", { default = 19 })()
      task("look", function() seen = luaflow.context.parameters.z end)()
    end)
    f:run{ parameters = { z = 1 } }
    assert.are.equal(1, seen)
  end)

  it("leaves out an optional Parameter with neither value nor default", function()
    local seen
    local f = Flow("params-optional", function()
      Parameter("o", { required = false })()
      task("look", function() seen = luaflow.context.parameters end)()
    end)
    local state = f:run()
    assert.is_true(state:is_successful())
    assert.are.same({}, seen)
  end)
end)

describe("a Parameter is a root task", function()
  it("cannot be the downstream end of add_edge", function()
    local f = Flow{ name = "root" }
    local msg = error_of(function() f:add_edge(Task(), Parameter("p")) end)
    assert.is_truthy(msg:find(ROOT, 1, true), msg)
    assert.is_truthy(msg:find("<Parameter: p>", 1, true), msg)
  end)

  it("cannot be set downstream of a task in a builder", function()
    local msg = error_of(function()
      Flow("root-builder", function()
        local p = Parameter("p", { default = 1 })
        local t = Task()
        t:set_downstream(p)
      end)
    end)
    assert.is_truthy(msg:find(ROOT, 1, true), msg)
  end)

  it("cannot take an upstream through set_upstream on its reference", function()
    local msg = error_of(function()
      Flow("root-ref", function()
        local p = Parameter("p", { default = 1 })()
        p:set_upstream(task("before", function() end)())
      end)
    end)
    assert.is_truthy(msg:find(ROOT, 1, true), msg)
  end)

  it("takes no arguments when called in a builder", function()
    local msg = error_of(function()
      Flow("root-call", function()
        local up = task("up", function() return 1 end)()
        Parameter("p", { default = 1 })(up)
      end)
    end)
    assert.is_truthy(msg:find(ROOT, 1, true), msg)
  end)

  it("names the user's file and line in the error", function()
    local msg = error_of(function() Flow{ name = "where" }:add_edge(Task(), Parameter("p")) end)
    assert.is_truthy(msg:find("parameters_spec.lua:%d+:"), msg)
  end)

  it("may still feed other tasks", function()
    local p = Parameter("p", { default = 2 })
    local r
    local f = Flow("feeds", function() r = task("double", function(x) return 2 * x end)(p()) end)
    assert.are.equal(4, f:run().result[r].result)
  end)
end)

describe("Parameter names in a flow", function()
  it("are unique: a second Parameter with the same name is an error naming it", function()
    local msg = error_of(function()
      Flow("dup", function()
        Parameter("a", { default = 1 })()
        Parameter("a", { default = 2 })()
      end)
    end)
    assert.is_truthy(msg:find('"a"', 1, true), msg)
    assert.is_truthy(msg:find("dup", 1, true), msg)
  end)

  it("are unique in Flow{tasks=} and add_task too", function()
    assert.is_truthy(error_of(function()
      Flow{ name = "dup-tasks", tasks = { Parameter("b"), Parameter("b") } }
    end):find('"b"', 1, true))
    local f = Flow{ name = "dup-add", tasks = { Parameter("c") } }
    assert.is_truthy(error_of(function() f:add_task(Parameter("c")) end):find('"c"', 1, true))
  end)

  it("let one Parameter be called and passed several times: it is one task", function()
    local a = Parameter("a", { default = 3 })
    local r1, r2, r3
    local f = Flow("same", function()
      r1 = task("one", function(x) return x end)(a())
      r2 = task("two", function(x) return x end)(a())
      r3 = task("three", function(x) return x end)(a)
    end)
    local params = 0
    for _, t in ipairs(f:tasks()) do
      if tostring(t) == "<Parameter: a>" then params = params + 1 end
    end
    assert.are.equal(1, params)
    local state = f:run{ parameters = { a = 5 } }
    assert.are.equal(5, state.result[r1].result)
    assert.are.equal(5, state.result[r2].result)
    assert.are.equal(5, state.result[r3].result)
    assert.are.equal(5, state.result[a].result)
  end)

  it("may repeat across different flows", function()
    local f1 = Flow("one", function() Parameter("x", { default = 1 })() end)
    local f2 = Flow("two", function() Parameter("x", { default = 2 })() end)
    assert.is_true(f1:run():is_successful())
    assert.is_true(f2:run():is_successful())
  end)
end)

describe("Parameter fields and flow:parameters()", function()
  it("give required and default, and the flow's Parameters in order", function()
    local x, y = Parameter("x"), Parameter("y", { default = 1 })
    assert.is_true(x.required)
    assert.is_nil(x.default)
    assert.is_false(y.required)
    assert.are.equal(1, y.default)
    assert.is_nil(Task().required)
    local f = Flow{ name = "params", tasks = { Task(), x, Task(), y } }
    assert.are.same({ x, y }, f:parameters())
  end)
end)

describe("a Parameter without a default", function()
  it("is required: flow:run without it is an error naming it", function()
    local x = Parameter("x")
    local f = Flow("required", function() task("use", function(v) return v end)(x) end)
    local msg = error_of(function() return f:run() end)
    assert.is_truthy(msg:find("Flow.run did not receive the following required parameters: x", 1, true), msg)
    assert.are.equal(4, f:run{ parameters = { x = 4 } }.result[x].result)
  end)

  it("is optional with {required = false}: its value is then nil", function()
    local got = "unset"
    local x = Parameter("x", { required = false })
    local f = Flow("optional", function() task("use", function(v) got = v end)(x) end)
    assert.is_true(f:run():is_successful())
    assert.is_nil(got)
  end)

  it("with a default is optional, and {required = true} makes it required anyway", function()
    local f1 = Flow("dflt", function() Parameter("d", { default = 1 })() end)
    assert.is_true(f1:run():is_successful())
    local f2 = Flow("dflt-required", function() Parameter("d", { default = 1, required = true })() end)
    assert.is_truthy(error_of(function() return f2:run() end):find("required parameters: d", 1, true))
  end)

  it("fails its task when it runs without a value anyway (t:run outside a flow)", function()
    local x = Parameter("x")
    local ok, err = pcall(x.run, x)
    assert.is_false(ok)
    assert.are.equal('FAIL("Parameter "x" was required but not provided.")', tostring(err))
    assert.are.equal(7, Parameter("y", { default = 7 }):run())
  end)

  it("rejects a `required` that is not a boolean", function()
    assert.is_truthy(error_of(function() Parameter("x", { required = "yes" }) end):find("required", 1, true))
  end)
end)

describe("a required Parameter under the command line", function()
  after_each(cli.cleanup)

  it("stops the run with exit 2, listing every missing one, before anything runs", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local show = luaflow.task{ name = "show" }(function(...) print("MARK-ran", ...) end)
return luaflow.Flow("needs", function()
  show(luaflow.Parameter("size"), luaflow.Parameter("colour"), luaflow.Parameter("opt", {required = false}))
end)
]])
    local r = cli.run({ "run", path })
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
    assert.is_truthy(r.stderr:find("size", 1, true), r.stderr)
    assert.is_truthy(r.stderr:find("colour", 1, true), r.stderr)
    assert.is_nil(r.stderr:find("opt", 1, true), r.stderr)
    local given = cli.run({ "run", path, "--param", "size=4", "--param", "colour=red" })
    assert.are.equal(0, given.code, given.stderr)
    assert.are.equal("MARK-ran\t4\tred\tnil\n", given.stdout)
  end)
end)
