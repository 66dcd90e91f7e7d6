-- The bad-input battery: scripts that misbehave in every way we could think
-- of. Each one asserts the exact exit code, a clear message (naming the
-- file and line where there is one) and that nothing crashed: the engine
-- goes on with the other tasks and --json stays valid. The same specs run
-- under the sanitizers (make check-mem).
local luaflow = require("luaflow")
local cli = require("cli")
local util = require("util")
local has = util.has

-- Runs `luaflow ARGS...` on a script; returns the result and the script's path.
local function run(source, args, name)
  local path = cli.write_flow(source, cli.tmpdir(), name)
  local argv = {}
  for i, a in ipairs(args or {"run", "FILE"}) do argv[i] = a == "FILE" and path or a end
  return cli.run(argv), path
end

local function starts(s, prefix) return s:sub(1, #prefix) == prefix end

local function detail(r) return "exit " .. tostring(r.code) .. "\nstdout:\n" .. r.stdout:sub(1, 4000) .. "\nstderr:\n" .. r.stderr:sub(1, 4000) end

-- The one --json line on stdout, decoded: {task name -> entry}, and the run.
local function json_tasks(r)
  local line = r.stdout:match("(%b{})%s*$")
  assert(line, "no --json line\n" .. detail(r))
  local doc = luaflow.json.decode(line)
  local by_name = {}
  for _, t in ipairs(doc.tasks) do by_name[t.name] = t end
  return by_name, doc
end

-- stderr is exactly one "luaflow: MESSAGE" line
local function message(r)
  assert.are.equal(1, select(2, r.stderr:gsub("\n", "")), detail(r))
  return r.stderr:match("^luaflow: (.-)\n$")
end

describe("bad input: the script itself", function()
  after_each(cli.cleanup)

  it("a syntax error: exit 2 naming the file and line", function()
    local r, path = run('local luaflow = require("luaflow")\nlocal x = = 1\n')
    assert.are.equal(2, r.code, detail(r))
    assert.are.equal(path .. ":2: unexpected symbol near '='", message(r))
  end)

  it("error(nil), a table error and errors whose __tostring fails: the file and line, no crash", function()
    local cases = {
      {"error(nil)\n", ":1: nil"},
      {"local function f() error(setmetatable({}, {__tostring = function() error('no') end})) end\nf()\n",
       ":1: (error object is a table value)"},
      {"error(setmetatable({}, {__tostring = function() return {} end}))\n", ":1: (error object is a table value)"},
      {"local t = setmetatable({}, {__tostring = function() return 'custom error' end})\nerror(t)\n", ":2: custom error"},
    }
    for _, c in ipairs(cases) do
      local r, path = run('local luaflow = require("luaflow")\n' .. c[1])
      assert.are.equal(2, r.code, detail(r))
      local line = tonumber(c[2]:match("^:(%d+)")) + 1
      assert.are.equal(path .. c[2]:gsub("^:%d+", ":" .. line), message(r))
    end
  end)

  it("a stack overflow and a C stack overflow at top level: exit 2 with the file", function()
    local r, path = run("local function f() return f() + 1 end\nf()\n")
    assert.are.equal(2, r.code, detail(r))
    local m = message(r)
    assert.is_true(starts(m, path .. ":1: stack overflow"), m)
    r = run("local function f(s) return (s:gsub('.', f)) end\nf('ab')\n")
    assert.are.equal(2, r.code, detail(r))
    assert.is_true(has(r.stderr, "stack overflow"), detail(r))
  end)

  it("binary files: random bytes, a NUL byte, corrupt and real bytecode are refused (exit 2)", function()
    local dir = cli.tmpdir()
    local random = io.open("/dev/urandom", "rb"):read(4096)
    local bytecode = string.dump(function() print("BYTECODE-RAN") end)
    local cases = {
      {"random.bin", "\1\2\3" .. random, ":1: "},
      {"nul.lua", 'print("x")\0print("y")\n', ":1: unexpected symbol"},
      {"corrupt.luac", "\27Lua\84\0garbage", ": precompiled Lua bytecode; luaflow runs Lua source files only"},
      {"real.luac", bytecode, ": precompiled Lua bytecode; luaflow runs Lua source files only"},
    }
    for _, c in ipairs(cases) do
      local path = cli.write_flow(c[2], dir, c[1])
      for _, cmd in ipairs{"run", "check"} do
        local r = cli.run({cmd, path})
        assert.are.equal(2, r.code, c[1] .. " " .. detail(r))
        local m = message(r)
        assert.is_true(starts(m, path .. c[3]), c[1] .. ": " .. m)
        assert.is_false(has(r.stdout, "BYTECODE-RAN"))
      end
    end
  end)

  it("a directory or a missing file as the script: exit 2 naming it", function()
    local dir = cli.tmpdir()
    local r = cli.run({"run", dir})
    assert.are.equal(2, r.code, detail(r))
    assert.is_true(has(message(r), dir), detail(r))
    r = cli.run({"run", dir .. "/missing.lua"})
    assert.are.equal(2, r.code, detail(r))
    assert.is_true(has(message(r), dir .. "/missing.lua"), detail(r))
  end)

  it("a 5 MB error message is printed once, whole", function()
    local r, path = run('error(string.rep("m", 5 * 1024 * 1024))\n')
    assert.are.equal(2, r.code, detail(r))
    assert.is_true(message(r) == path .. ":1: " .. string.rep("m", 5 * 1024 * 1024))
  end)

  it("wrong option values name the file and line (run and check)", function()
    local cases = {
      {"fn = 42", "Task: fn must be a function (got the number 42)"},
      {"trigger = 42", "Task: trigger must be one of luaflow.triggers or a function(states, by_task) (got the number 42)"},
      {"state_handlers = {1, 2}",
       "Task: state_handlers[1] must be a handler: a function, a notifier or a C handler (got the number 1)"},
    }
    for _, c in ipairs(cases) do
      for _, cmd in ipairs{"run", "check"} do
        local r, path = run(('local luaflow = require("luaflow")\nlocal t = luaflow.Task{name = "t", %s}\n'):format(c[1]),
                            {cmd, "FILE"})
        assert.are.equal(2, r.code, detail(r))
        assert.are.equal(path .. ":2: " .. c[2], message(r))
      end
    end
  end)

  it("a strict global environment (unknown globals raise) does not disturb the engine", function()
    local r = run([[
setmetatable(_G, {__index = function(_, k) error("undefined global " .. tostring(k), 2) end,
                  __newindex = function(_, k) error("assignment to undefined global " .. tostring(k), 2) end})
local luaflow = require("luaflow")
local t = luaflow.Task{name = "t", fn = function() return {a = 1} end, timeout = 5, max_retries = 1,
  retry_delay = 0, state_handlers = {function(_, _, new) return new end}}
local u = luaflow.Task{name = "u", fn = function() error(luaflow.signals.FAIL("no")) end}
local f = luaflow.Flow{name = "strict", tasks = {t, u}}
f:add_edge(t, u)
return f
]], {"run", "FILE", "--json", "-"})
    assert.are.equal(1, r.code, detail(r))
    local tasks = json_tasks(r)
    assert.are.same({a = 1}, tasks.t.result)
    assert.are.equal("Failed", tasks.u.state)
    assert.are.equal("no", tasks.u.message)
  end)
end)

describe("bad input: task bodies", function()
  after_each(cli.cleanup)

  it("every kind of misbehaving body fails or succeeds alone; the others run and --json is valid", function()
    local r, path = run([[
local luaflow = require("luaflow")
local T = luaflow.Task
local function rec(n) return rec(n + 1) + 1 end
local function crec() return pcall(crec) end
local tasks = {
  T{name = "nil_error", fn = function() error(nil) end},
  T{name = "bad_tostring", fn = function() error(setmetatable({}, {__tostring = function() error("no") end})) end},
  T{name = "tostring_table", fn = function() error(setmetatable({}, {__tostring = function() return {} end})) end},
  T{name = "stack_overflow", fn = function() return rec(1) end},
  T{name = "pcall_overflow", fn = function() return crec() end},
  T{name = "c_stack_overflow", fn = function() local function f(s) return (s:gsub(".", f)) end return f("ab") end},
  T{name = "yield_outside", fn = function() coroutine.yield(1) end},
  T{name = "nan_result", fn = function() return 0/0 end},
  T{name = "cycle_result", fn = function() local t = {} t.t = t return t end},
  T{name = "deep_result", fn = function() local t = {} for _ = 1, 100000 do t = {t} end return t end},
  T{name = "function_result", fn = function() return print end},
  T{name = "huge_result", fn = function() return string.rep("x", 8 * 1024 * 1024) end},
  T{name = "exit", fn = function() os.exit(3) end},
  T{name = "survivor", fn = function() print("SURVIVOR") return "alive" end},
}
luaflow.Flow{name = "bodies", tasks = tasks}
]], {"run", "FILE", "--json", "-"})
    assert.are.equal(1, r.code, detail(r))
    assert.is_true(has(r.stderr, "SURVIVOR\n")) -- print goes to stderr with --json -
    local t = json_tasks(r)
    local E = "Error during execution of task: "
    assert.are.equal(E .. "nil", t.nil_error.message)
    assert.are.equal(E .. "(error object is a table value)", t.bad_tostring.message)
    assert.are.equal(E .. "(error object is a table value)", t.tostring_table.message)
    assert.is_true(starts(t.stack_overflow.message, E .. path .. ":3: stack overflow"), t.stack_overflow.message)
    assert.are.equal("Success", t.pcall_overflow.state)
    assert.are.equal("Failed", t.c_stack_overflow.state)
    assert.is_true(has(t.c_stack_overflow.message, "stack overflow"), t.c_stack_overflow.message)
    assert.are.equal(E .. "attempt to yield from outside a coroutine", t.yield_outside.message)
    for _, name in ipairs{"nan_result", "cycle_result", "deep_result", "function_result"} do
      assert.are.equal("Success", t[name].state, name) -- not encodable: no "result" key
      assert.is_nil(t[name].result, name)
    end
    assert.are.equal(8 * 1024 * 1024, #t.huge_result.result)
    assert.are.equal("Failed", t.exit.state)
    assert.are.equal("alive", t.survivor.result)
  end)

  it("a flow run inside its own run (from a body or a handler) is refused, naming the flow", function()
    local r = run([[
local luaflow = require("luaflow")
local f
local again = luaflow.Task{name = "again", fn = function() local s = f:run() return s end}
local in_handler = luaflow.Task{name = "in_handler", fn = function() return 1 end,
  state_handlers = {function(_, _, new) if new:is_successful() then f:run() end end}}
f = luaflow.Flow{name = "reentrant", tasks = {again, in_handler}}
]], {"run", "FILE", "--json", "-"})
    assert.are.equal(1, r.code, detail(r))
    local t = json_tasks(r)
    local why = "<Flow: name=reentrant> cannot run inside its own run"
    assert.are.equal("Failed", t.again.state)
    assert.is_true(has(t.again.message, ":3: " .. why), t.again.message)
    assert.is_true(has(t.in_handler.message, "Unexpected error while calling state handlers: "), t.in_handler.message)
    assert.is_true(has(t.in_handler.message, ":5: " .. why), t.in_handler.message)
  end)

  it("yields across the engine (a flow run inside a coroutine) fail the task, not the process", function()
    local r = run([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "yields", fn = function() coroutine.yield("from body") return 1 end}
local h = luaflow.Task{name = "handler_yields", fn = function() return 1 end,
  state_handlers = {function() coroutine.yield("from handler") end}}
local f = luaflow.Flow{name = "co", tasks = {t, h}}
local co = coroutine.create(function() return f:run() end)
local ok, s = coroutine.resume(co)
print("RESUMED", ok, coroutine.status(co), tostring(s))
]])
    assert.are.equal(1, r.code, detail(r))
    assert.is_true(has(r.stdout, 'RESUMED\ttrue\tdead\tFailed("Some reference tasks failed.")'), detail(r))
  end)

  it("a chain of 100,000 tasks runs without overflowing any stack", function()
    local r = run([[
local luaflow = require("luaflow")
local inc = luaflow.task("inc", function(x) return (x or 0) + 1 end)
return luaflow.Flow("chain", function()
  local r = inc(0)
  for _ = 2, 100000 do r = inc(r) end
end)
]], {"run", "FILE", "--json", "-"})
    assert.are.equal(0, r.code, detail(r))
    local _, doc = json_tasks(r)
    assert.are.equal(100000, #doc.tasks)
    assert.are.equal(100000, doc.tasks[100000].result)
  end)
end)

describe("bad input: handlers and triggers", function()
  after_each(cli.cleanup)

  it("strange handler returns, errors and overflows fail their task with a clear message", function()
    local r, path = run([[
local luaflow = require("luaflow")
local T = luaflow.Task
local function returning(v) return function(_, _, new) if new:is_successful() then return v end end end
local function rec(n) return rec(n + 1) + 1 end
local tasks = {}
for _, case in ipairs{{"number", 42}, {"string", "Success"}, {"function", print}, {"thread", coroutine.create(print)},
                      {"userdata", io.stdout}, {"table", {}}, {"boolean", true}, {"class", luaflow.states.Failed}} do
  tasks[#tasks + 1] = T{name = "returns_" .. case[1], fn = function() return 1 end, state_handlers = {returning(case[2])}}
end
tasks[#tasks + 1] = T{name = "overflow", fn = function() return 1 end, state_handlers = {function() rec(1) end}}
tasks[#tasks + 1] = T{name = "nil_error", fn = function() return 1 end, state_handlers = {function() error(nil) end}}
tasks[#tasks + 1] = T{name = "yield", fn = function() return 1 end, state_handlers = {function() coroutine.yield() end}}
tasks[#tasks + 1] = T{name = "trigger_raises", fn = function() return 1 end, trigger = function() error("trig") end}
tasks[#tasks + 1] = T{name = "trigger_table", fn = function() return 1 end, trigger = function() return {} end}
tasks[#tasks + 1] = T{name = "trigger_overflow", fn = function() return 1 end, trigger = function() return rec(1) end}
tasks[#tasks + 1] = T{name = "survivor", fn = function() return "alive" end}
luaflow.Flow{name = "handlers", tasks = tasks}
]], {"run", "FILE", "--json", "-"})
    assert.are.equal(1, r.code, detail(r))
    local t = json_tasks(r)
    local H = "Unexpected error while calling state handlers: "
    for _, c in ipairs{{"number", "number"}, {"string", "string"}, {"function", "function"}, {"thread", "thread"},
                       {"userdata", "userdata"}, {"table", "table"}, {"boolean", "boolean"}, {"class", "table"}} do
      assert.are.equal(H .. "state handler returned a " .. c[2], t["returns_" .. c[1]].message, c[1])
    end
    assert.is_true(starts(t.overflow.message, H .. path .. ":4: stack overflow"), t.overflow.message)
    assert.are.equal(H .. "nil", t.nil_error.message)
    assert.are.equal(H .. "attempt to yield from outside a coroutine", t.yield.message)
    assert.are.equal("TriggerFailed", t.trigger_raises.state)
    assert.are.equal("Unexpected error while checking task trigger: " .. path .. ":13: trig", t.trigger_raises.message)
    assert.are.equal("Success", t.trigger_table.state)
    assert.are.equal("TriggerFailed", t.trigger_overflow.state)
    assert.is_true(has(t.trigger_overflow.message, "stack overflow"))
    assert.are.equal("alive", t.survivor.result)
  end)
end)
