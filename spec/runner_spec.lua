-- The runner's bookkeeping: upstream states are counted per upstream task,
-- even where the engine shares one state value between tasks.
local luaflow = require("luaflow")
local task, Flow, triggers = luaflow.task, luaflow.Flow, luaflow.triggers

local function fan_in(n_ok, n_bad, trigger)
  local ok = task(function() end) -- every success without a result
  local bad = task(function() error("x") end)
  local sink = task{ name = "sink", trigger = trigger }(function() return "ran" end)
  local flow = Flow("fan-in", function()
    local s = sink()
    for _ = 1, n_ok do s:set_upstream(ok()) end
    for _ = 1, n_bad do s:set_upstream(bad()) end
  end)
  return flow:run().result[sink]
end

describe("triggers over many upstreams", function()
  it("counts each upstream task's success, not each distinct state value", function()
    assert.are.equal("Success", fan_in(18, 2, triggers.some_successful{ at_least = 18, at_most = 18 }).name)
    assert.are.equal("TriggerFailed", fan_in(17, 3, triggers.some_successful{ at_least = 18, at_most = 18 }).name)
  end)

  it("passes the trigger one state per upstream task, in edge order", function()
    local seen
    local spy = function(states) seen = #states; return true end
    assert.are.equal("Success", fan_in(5, 0, spy).name)
    assert.are.equal(5, seen)
  end)

  it("gives a built-in trigger called from Lua the list as it is", function()
    local s = luaflow.states.Success()
    assert.is_true(triggers.some_successful{ at_least = 3 }({ s, s, s }))
    assert.has_error(function() triggers.some_successful{ at_least = 4 }({ s, s, s }) end)
  end)

  it("runs a fan-in of 20,000 upstreams", function()
    assert.are.equal("Success", fan_in(20000, 0, triggers.all_successful).name)
  end)
end)

describe("a task's plain error in the log", function()
  local cli = require("cli")

  it("comes with the task's own stack traceback, at ERROR", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local function deep() error("deep trouble") end
local t = luaflow.task{ name = "t" }(function() deep() end)
return luaflow.Flow("f", function() t() end)
]])
    local r = cli.run({ "run", path }, { env = { LUAFLOW_LOG_LEVEL = "ERROR" } })
    assert.are.equal(1, r.code)
    assert.is_truthy(r.stderr:find("Exception encountered during task execution! ", 1, true))
    assert.is_truthy(r.stderr:find("deep trouble\nstack traceback:", 1, true))
    assert.is_truthy(r.stderr:find("in upvalue 'deep'", 1, true) or r.stderr:find("in local 'deep'", 1, true))
    assert.is_nil(r.stderr:find("flow_run", 1, true)) -- the engine's own frames are cut
  end)
end)

describe("the command line, more", function()
  local cli = require("cli")

  it("passes --param flag=false as the boolean false", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local p = luaflow.Parameter("flag")
local t = luaflow.task{ name = "t" }(function(v) print(type(v), tostring(v)) end)
return luaflow.Flow("f", function() t(p) end)
]])
    local r = cli.run({ "run", path, "--param", "flag=false" })
    assert.are.equal(0, r.code)
    assert.are.equal("boolean\tfalse\n", r.stdout)
  end)

  it("prints the usage for `luaflow run --help` and exits 0", function()
    local r = cli.run({ "run", "--help" }, { no_input = false })
    assert.are.equal(0, r.code)
    assert.is_truthy(r.stdout:find("usage: luaflow run FILE", 1, true))
  end)
end)
