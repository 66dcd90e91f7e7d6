-- Regressions found by reviewing the engine: errors that escape a run, runs
-- inside runs, a state a handler keeps, and bad values that reach C.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local Task, Flow, S = luaflow.Task, luaflow.Flow, luaflow.states

describe("a Lua error escaping a run", function()
  it("fails the task when the error object's metatable raises on unknown fields", function()
    local Strict = setmetatable({ __tostring = function() return "MyError" end },
      { __index = function(_, k) error("strict class: no member " .. k) end })
    local t = Task{ name = "t", fn = function() error(setmetatable({}, Strict)) end }
    local state = Flow{ name = "f", tasks = { t } }:run()
    assert.are.equal('Failed("Error during execution of task: MyError")', tostring(state.result[t]))
  end)

  it("leaves the engine as it was: no run in progress, state constructors work", function()
    local f = Flow{ name = "f", tasks = { Task{ name = "a" }, Task{ name = "b" } } }
    assert.has_error(function() f:add_edge(f:tasks()[1], f:tasks()[2], 2 ^ 31) end)
    assert.is_false(core.running())
    assert.are.equal(1, S.Retrying{}.run_count)
  end)
end)

describe("runs inside runs", function()
  it("keeps a task's result when an inner run's handler returns the outer run's state", function()
    local saved
    local inner_t = Task{ name = "inner", state_handlers = { function(_, _, new)
      if new:is_successful() then return saved end
    end } }
    local inner = Flow{ name = "inner", tasks = { inner_t } }
    local a = Task{ name = "a", fn = function() return 42 end, state_handlers = { function(_, _, new)
      if new:is_successful() then saved = new; inner:run() end
    end } }
    local got
    local b = Task{ name = "b", fn = function(x) got = x; return x end }
    local f = Flow{ name = "outer", tasks = { a, b } }
    f:add_edge(a, b, 1)
    local state = f:run()
    assert.are.equal(42, got)
    assert.are.equal(42, state.result[a].result)
  end)

  it("holds an outer task's timeout while it runs a flow of its own", function()
    local busy = Task{ name = "busy", fn = function()
      local t0 = os.clock()
      while os.clock() - t0 < 1.5 do end
    end }
    local inner = Flow{ name = "inner", tasks = { busy } }
    local outer_t = Task{ name = "outer_t", timeout = 0.2, fn = function() inner:run() end }
    local t0 = luaflow.time.now()
    local state = Flow{ name = "outer", tasks = { outer_t } }:run()
    assert.are.equal("TimedOut", state.result[outer_t].name)
    assert.is_true(luaflow.time.now() - t0 < 1.2)
  end)
end)

describe("the flow's final state", function()
  it("does not take over the result of a state a handler returns and the user keeps", function()
    local DONE = S.Success{ message = "done", result = "my payload" }
    local h = { function(_, _, new) if new:is_finished() then return DONE end end }
    local a, b = Task{ name = "a", fn = function() return "A" end }, Task{ name = "b" }
    local s1 = Flow{ name = "f1", tasks = { a }, state_handlers = h }:run()
    local s2 = Flow{ name = "f2", tasks = { b }, state_handlers = h }:run()
    assert.are.equal("my payload", DONE.result)
    assert.are.equal("A", s1.result[a].result)
    assert.are.equal("Success", s2.result[b].name)
  end)
end)

describe("bad values", function()
  it("rejects a class table with an out-of-range kind in state:is", function()
    assert.has_error(function() S.Success():is({ _kind = 40 }) end)
  end)

  it("rejects a bad start_time without building a state", function()
    assert.has_error(function() S.Scheduled("m", { start_time = "bad" }) end)
    assert.has_error(function() S.Success{ start_time = 1 } end)
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

describe("second review", function()
  local cli = require("cli")

  it("redacts a secret holding quotes, backslashes and newlines from --json", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.task{ name = "t" }(function() return luaflow.secrets.get("pw") end)
local f = luaflow.Flow("f", function() t() end)
f:run{ secrets = { pw = "pa\"ss\\wo\nrd9" } }
]])
    local r = cli.run({ "run", path, "--json", "-" }, { env = { LUAFLOW_LOG_LEVEL = "ERROR" } })
    assert.are.equal(0, r.code)
    local line = luaflow.json.decode(r.stdout)
    assert.are.equal("****", line.tasks[1].result)
  end)

  it("hides a secret's form-encoded (+) and lower-case %xx forms too", function()
    local t = Task{ name = "t", fn = function()
      local s = luaflow.secrets.get("phrase")
      local form = s:gsub(" ", "+"):gsub("/", "%%2F")           -- open+sesame%2Fnow
      local lower = s:gsub(" ", "%%20"):gsub("/", "%%2f")       -- open%20sesame%2fnow
      error("sent " .. form .. " and " .. lower, 0)
    end }
    local state = Flow{ name = "f", tasks = { t } }:run{ secrets = { phrase = "open sesame/now" } }
    assert.are.equal('Failed("Error during execution of task: sent **** and ****")',
                     tostring(state.result[t]))
  end)

  it("does not name a task after a method call site (o:m())", function()
    local o = { m = luaflow.task(function(_) return 1 end) }
    local f = Flow("g", function() o:m() end)
    assert.are.equal("task", f:tasks()[1].name)
  end)

  it("shows a trigger's plain error as error text in the Slack payload", function()
    local up = Task{ name = "up" }
    local down = Task{ name = "down", trigger = function() error("terr", 0) end }
    local f = Flow{ name = "f", tasks = { up, down } }
    f:add_edge(up, down)
    local s = f:run().result[down]
    local payload = luaflow.notifications.slack_payload(down, s)
    assert.are.equal("```terr```", payload.attachments[1].fields[1].value)
  end)

  it("refuses to read a secret while a flow is being built, as Prefect 1 does", function()
    local ok, err = pcall(Flow, "b", function() luaflow.secrets.get("X") end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("Secrets should only be retrieved during a Flow run", 1, true))
  end)
end)
