-- Cancellation: SIGINT and SIGTERM during a run end the running task and the
-- flow Cancelled (exit 130 / 143, --json still written), also a task that
-- spins inside pcall; os.exit inside a task or a handler fails it instead of
-- ending the process.
local luaflow = require("luaflow")
local cli = require("cli")
local util = require("util")
local timing = require("timing")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local S = luaflow.states
local count, has = util.count, util.has
local pause_briefly = timing.pause_briefly

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
    assert.is_false(has(r.stderr, "AFTER-EXIT")) -- print goes to stderr with --json -
    assert.is_true(has(r.stderr, "OTHER-RAN\n"))
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
