-- The luaflow command line, driven as a subprocess.
local cli = require("cli")
local luaflow = require("luaflow")
local json = luaflow.json

-- The JSON lines of a --json output, decoded.
local function json_lines(text)
  local list = {}
  for _, line in ipairs(cli.lines(text)) do
    if line ~= "" then list[#list + 1] = json.decode(line) end
  end
  return list
end

local util = require("util")
local count, has = util.count, util.has

-- A flow whose task prints `marker` when (and only when) it runs.
local function printing_flow(name, marker, tail)
  return ([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "speaker", fn = function() print(%q) end}
local flow = luaflow.Flow{name = %q, tasks = {t}}
%s
]]):format(marker, name, tail or "")
end

describe("luaflow run", function()
  after_each(cli.cleanup)

  describe("which flow runs", function()
    it("lets a script that runs its flow itself run it once", function()
      local path = cli.write_flow(printing_flow("self-run", "MARK-self", "flow:run()"))
      local r = cli.run({ "run", path })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-self\n", r.stdout)
    end)

    it("does not run again a flow the script ran and returned", function()
      local path = cli.write_flow(printing_flow("ran-and-returned", "MARK-once",
                                                "flow:run()\nreturn flow"))
      local r = cli.run({ "run", path })
      assert.are.equal(0, r.code)
      assert.are.equal(1, count(r.stdout, "MARK-once"))
    end)

    it("runs nothing more when the script ran a flow and defined another", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.Task{name = "a", fn = function() print("MARK-a") end}
local b = luaflow.Task{name = "b", fn = function() print("MARK-b") end}
local first = luaflow.Flow{name = "first", tasks = {a}}
local second = luaflow.Flow{name = "second", tasks = {b}}
first:run()
]])
      local r = cli.run({ "run", path })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-a\n", r.stdout)
    end)

    it("runs the unrun Flow the script returns, among several defined", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.Task{name = "a", fn = function() print("MARK-a") end}
local b = luaflow.Task{name = "b", fn = function() print("MARK-b") end}
local first = luaflow.Flow{name = "first", tasks = {a}}
local second = luaflow.Flow{name = "second", tasks = {b}}
return second
]])
      local r = cli.run({ "run", path })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-b\n", r.stdout)
    end)

    it("runs the one Flow a script defines and never runs", function()
      local path = cli.write_flow(printing_flow("only-one", "MARK-only"))
      local r = cli.run({ "run", path })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-only\n", r.stdout)
    end)

    it("refuses a script that defines several flows and runs none, listing them", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "t", fn = function() print("MARK-ran") end}
luaflow.Flow{name = "alpha-flow", tasks = {t}}
luaflow.Flow{name = "beta-flow", tasks = {t}}
]])
      local r = cli.run({ "run", path })
      assert.are.equal(2, r.code)
      assert.is_false(has(r.stdout, "MARK-ran"))
      assert.is_true(has(r.stderr, "alpha-flow"))
      assert.is_true(has(r.stderr, "beta-flow"))
    end)

    it("exits 0 for a script that defines no flow", function()
      local path = cli.write_flow('print("MARK-plain")\n')
      local r = cli.run({ "run", path })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-plain\n", r.stdout)
    end)
  end)

  describe("--param", function()
    local show_flow = [[
local luaflow = require("luaflow")
local show = luaflow.task{name = "show"}(function(label, v)
  print(label, math.type(v) or type(v), v)
end)
return luaflow.Flow("params", function()
  show("n", luaflow.Parameter("n", {default = 0}))
  show("s", luaflow.Parameter("s", {default = "d"}))
end)
]]

    it("passes a value that parses as JSON decoded: n=3 is the integer 3", function()
      local r = cli.run({ "run", cli.write_flow(show_flow), "--param", "n=3" })
      assert.are.equal(0, r.code)
      assert.is_true(has(r.stdout, "n\tinteger\t3\n"))
    end)

    it("passes a value that is not JSON as a string", function()
      local r = cli.run({ "run", cli.write_flow(show_flow), "--param", "s=hello" })
      assert.are.equal(0, r.code)
      assert.is_true(has(r.stdout, "s\tstring\thello\n"))
    end)

    it("passes a JSON string as that string and a JSON float as a float", function()
      local r = cli.run({ "run", cli.write_flow(show_flow), "--param", 's="3"', "--param", "n=2.5" })
      assert.are.equal(0, r.code)
      assert.is_true(has(r.stdout, "s\tstring\t3\n"))
      assert.is_true(has(r.stdout, "n\tfloat\t2.5\n"))
    end)

    it("reaches every flow:run of the process", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local show = luaflow.task{name = "show"}(function(label, v) print(label, v) end)
local a = luaflow.Flow("A", function() show("A.n", luaflow.Parameter("n")) end)
local b = luaflow.Flow("B", function() show("B.s", luaflow.Parameter("s")) end)
local c = luaflow.Flow("C", function() show("C.n", luaflow.Parameter("n")) end)
a:run()
b:run()
c:run()
]])
      local r = cli.run({ "run", path, "--param", "n=7", "--param", "s=word" })
      assert.are.equal(0, r.code)
      assert.are.equal("A.n\t7\nB.s\tword\nC.n\t7\n", r.stdout)
    end)

    it("lets explicit parameters= in the call win", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local show = luaflow.task{name = "show"}(function(v) print("n is", v) end)
local f = luaflow.Flow("explicit", function() show(luaflow.Parameter("n")) end)
f:run{parameters = {n = 5}}
]])
      local r = cli.run({ "run", path, "--param", "n=3" })
      assert.are.equal(0, r.code)
      assert.are.equal("n is\t5\n", r.stdout)
    end)

    it("stops with exit 2 on a name that matches no Parameter, before the flow runs", function()
      local r = cli.run({ "run", cli.write_flow(show_flow), "--param", "n=1", "--param", "nope=1" })
      assert.are.equal(2, r.code)
      assert.are.equal("", r.stdout)
      assert.is_true(has(r.stderr, "nope"))
    end)

    it("stops with exit 2 when a required Parameter has no value", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local show = luaflow.task{name = "show"}(function(v) print("MARK-got", v) end)
return luaflow.Flow("needs", function() show(luaflow.Parameter("size", {required = true})) end)
]])
      local r = cli.run({ "run", path })
      assert.are.equal(2, r.code)
      assert.is_false(has(r.stdout, "MARK-got"))
      assert.is_true(has(r.stderr, "size"))
      local given = cli.run({ "run", path, "--param", "size=4" })
      assert.are.equal(0, given.code)
      assert.are.equal("MARK-got\t4\n", given.stdout)
    end)

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
  end)

  describe("--json", function()
    local diamond = [[
local luaflow = require("luaflow")
local t = luaflow.task
return luaflow.Flow("diamond", function()
  local a = t("extract", function() return 2 end)()
  local b = t("double", function(x) return x * 2 end)(a)
  local c = t("half", function(x) return x / 4 end)(a)
  t("sum", function(x, y) return {total = x + y, parts = {x, y}} end)(b, c)
  t("fn", function() return print end)()
end)
]]

    it("writes one line per flow run to stdout with -", function()
      local r = cli.run({ "run", cli.write_flow(diamond), "--json", "-" })
      assert.are.equal(0, r.code)
      local lines = json_lines(r.stdout)
      assert.are.equal(1, #lines)
      local run = lines[1]
      assert.are.equal("diamond", run.flow)
      assert.are.equal("Success", run.state)
      assert.are.equal("All reference tasks succeeded.", run.message)
      assert.are.equal(5, #run.tasks)
      local names = {}
      for i, task in ipairs(run.tasks) do
        names[i] = task.name
        assert.are.equal("Success", task.state)
        assert.are.equal("Task run succeeded.", task.message)
        assert.are.equal(1, task.run_count)
      end
      assert.are.same({ "extract", "double", "half", "sum", "fn" }, names)
    end)

    it("keeps integers integers and floats floats in results", function()
      local r = cli.run({ "run", cli.write_flow(diamond), "--json", "-" })
      local tasks = json_lines(r.stdout)[1].tasks
      assert.are.equal(2, tasks[1].result)
      assert.are.equal("integer", math.type(tasks[1].result))
      assert.are.equal("integer", math.type(tasks[2].result))
      assert.are.equal("float", math.type(tasks[3].result))
      assert.are.equal(0.5, tasks[3].result)
      assert.are.equal(4.5, tasks[4].result.total)
      assert.are.equal("integer", math.type(tasks[4].result.parts[1]))
      assert.are.equal(4, tasks[4].result.parts[1])
      assert.matches('"result"%s*:%s*2[,}]', r.stdout)
    end)

    it("leaves out a result that is not JSON-encodable", function()
      local r = cli.run({ "run", cli.write_flow(diamond), "--json", "-" })
      local fn_task = json_lines(r.stdout)[1].tasks[5]
      assert.are.equal("fn", fn_task.name)
      assert.are.equal("Success", fn_task.state)
      assert.is_nil(fn_task.result)
    end)

    it("writes to a file with --json PATH, leaving stdout to print", function()
      local out = cli.tmpname()
      local path = cli.write_flow(printing_flow("to-file", "MARK-file"))
      local r = cli.run({ "run", path, "--json", out })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-file\n", r.stdout)
      local text = cli.read(out)
      assert.matches("^{[^\n]*}\n$", text)
      local run = json_lines(text)[1]
      assert.are.equal("to-file", run.flow)
      assert.are.equal("Success", run.state)
      assert.are.equal(1, #run.tasks)
      assert.are.equal("speaker", run.tasks[1].name)
    end)

    it("lists tasks in task_states() order", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local x, y, z = luaflow.Task{name = "x"}, luaflow.Task{name = "y"}, luaflow.Task{name = "z"}
local f = luaflow.Flow{name = "order", tasks = {x, y, z}}
f:add_edge(z, x)
return f
]])
      local r = cli.run({ "run", path, "--json", "-" })
      assert.are.equal(0, r.code)
      local names = {}
      for i, task in ipairs(json_lines(r.stdout)[1].tasks) do names[i] = task.name end
      assert.are.same({ "y", "z", "x" }, names)
    end)

    it("writes tasks as [] for a flow with no tasks", function()
      local path = cli.write_flow('return require("luaflow").Flow{name = "empty"}\n')
      local r = cli.run({ "run", path, "--json", "-" })
      assert.are.equal(0, r.code)
      assert.matches('"tasks"%s*:%s*%[%s*%]', r.stdout)
      local run = json_lines(r.stdout)[1]
      assert.are.equal("empty", run.flow)
      assert.are.equal(0, #run.tasks)
    end)

    it("writes a line for each of several runs, in run order", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.Flow{name = "one", tasks = {luaflow.Task{name = "a"}}}
local b = luaflow.Flow{name = "two", tasks = {luaflow.Task{name = "b"}}}
a:run()
b:run()
a:run()
]])
      local r = cli.run({ "run", path, "--json", "-" })
      assert.are.equal(0, r.code)
      local lines = json_lines(r.stdout)
      assert.are.equal(3, #lines)
      assert.are.equal("one", lines[1].flow)
      assert.are.equal("two", lines[2].flow)
      assert.are.equal("one", lines[3].flow)
    end)

    it("reports a failed run and its failed task, and exits 1", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
return luaflow.Flow("broken", function()
  luaflow.task("boom", function() error("kaput", 0) end)()
end)
]])
      local r = cli.run({ "run", path, "--json", "-" })
      assert.are.equal(1, r.code)
      local run = json_lines(r.stdout)[1]
      assert.are.equal("Failed", run.state)
      assert.are.equal("Some reference tasks failed.", run.message)
      assert.are.equal("boom", run.tasks[1].name)
      assert.are.equal("Failed", run.tasks[1].state)
      assert.are.equal("Error during execution of task: kaput", run.tasks[1].message)
    end)

    it("counts every attempt of a retried task in run_count", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local attempts = 0
local flaky = luaflow.task{name = "flaky", max_retries = 2, retry_delay = 0}(function()
  attempts = attempts + 1
  if attempts < 3 then error("not yet") end
  return attempts
end)
return luaflow.Flow("retried", function() flaky() end)
]])
      local r = cli.run({ "run", path, "--json", "-" })
      assert.are.equal(0, r.code)
      local task = json_lines(r.stdout)[1].tasks[1]
      assert.are.equal("Success", task.state)
      assert.are.equal(3, task.result)
      assert.are.equal(3, task.run_count)
    end)
  end)

  describe("logs and prints", function()
    local LOG = "^%[%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d%+0000%] INFO %- luaflow%.FlowRunner | "
                .. "Beginning Flow run for 'logdemo'$"

    local function log_lines(text)
      local found = 0
      for _, line in ipairs(cli.lines(text)) do
        if line:match(LOG) then found = found + 1 end
      end
      return found
    end

    it("writes logs to stderr in the documented format and prints to stdout", function()
      local path = cli.write_flow(printing_flow("logdemo", "MARK-print"))
      local r = cli.run({ "run", path }, { env = { LUAFLOW_LOG_LEVEL = "INFO" } })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-print\n", r.stdout)
      assert.are.equal(1, log_lines(r.stderr))
      assert.is_false(has(r.stderr, "MARK-print"))
    end)

    it("takes --log-level in any case", function()
      local path = cli.write_flow(printing_flow("logdemo", "MARK-print"))
      for _, level in ipairs({ "info", "Info", "INFO" }) do
        local r = cli.run({ "run", path, "--log-level", level }, { env = { LUAFLOW_LOG_LEVEL = "CRITICAL" } })
        assert.are.equal(0, r.code)
        assert.are.equal(1, log_lines(r.stderr))
      end
      for _, level in ipairs({ "debug", "Warning", "error", "CRITICAL", "critical" }) do
        local r = cli.run({ "run", path, "--log-level", level })
        assert.are.equal(0, r.code)
        assert.are.equal("MARK-print\n", r.stdout)
      end
    end)

    it("shows no INFO line above INFO", function()
      local path = cli.write_flow(printing_flow("logdemo", "MARK-print"))
      for _, level in ipairs({ "WARNING", "error", "Critical" }) do
        local r = cli.run({ "run", path, "--log-level", level }, { env = { LUAFLOW_LOG_LEVEL = "INFO" } })
        assert.are.equal(0, r.code)
        assert.are.equal(0, log_lines(r.stderr))
        assert.is_false(has(r.stderr, "INFO"))
      end
    end)

    it("refuses an unknown level with exit 2 and runs nothing", function()
      local path = cli.write_flow(printing_flow("logdemo", "MARK-print", 'print("MARK-loaded")'))
      local r = cli.run({ "run", path, "--log-level", "LOUD" })
      assert.are.equal(2, r.code)
      assert.are.equal("", r.stdout)
      assert.is_true(has(r.stderr, "LOUD"))
    end)
  end)

  describe("usage and script errors exit 2", function()
    it("on an unknown option, before anything runs", function()
      local path = cli.write_flow(printing_flow("quiet", "MARK-flow", 'print("MARK-loaded")'))
      for _, args in ipairs({ { "run", path, "--frobnicate" }, { "run", "--frobnicate", path },
                              { "run", path, "--jsn", "-" } }) do
        local r = cli.run(args)
        assert.are.equal(2, r.code)
        assert.are.equal("", r.stdout)
        assert.is_true(has(r.stderr, "frobnicate") or has(r.stderr, "jsn"))
      end
    end)

    it("on an unknown command", function()
      local path = cli.write_flow(printing_flow("quiet", "MARK-flow"))
      local r = cli.run({ "launch", path })
      assert.are.equal(2, r.code)
      assert.are.equal("", r.stdout)
      assert.is_true(has(r.stderr, "launch"))
    end)

    it("on a missing file or no file", function()
      local missing = cli.tmpdir() .. "/no-such-flow.lua"
      local r = cli.run({ "run", missing })
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, "no-such-flow.lua"))
      assert.are.equal(2, cli.run({ "run" }).code)
      assert.are.equal(2, cli.run({}).code)
    end)

    it("on a syntax error, naming the file's absolute path and line", function()
      local path = cli.write_flow("local luaflow = require('luaflow')\n\nlocal = 3\n")
      local r = cli.run({ "run", path })
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, path .. ":3:"))
    end)

    it("on a runtime error, naming the file's absolute path and line", function()
      local path = cli.write_flow(printing_flow("never", "MARK-flow",
                                                'local x = nil\nprint(x.field)'))
      local r = cli.run({ "run", path })
      assert.are.equal(2, r.code)
      assert.is_false(has(r.stdout, "MARK-flow"))
      assert.is_true(has(r.stderr, path .. ":5:"))
    end)

    it("on a luaflow API error, naming the user's line", function()
      local path = cli.write_flow('local luaflow = require("luaflow")\n\n'
                                  .. 'local t = luaflow.Task{nmae = "typo"}\n')
      local r = cli.run({ "run", path })
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, path .. ":3:"))
      assert.is_true(has(r.stderr, "nmae"))
    end)
  end)

  describe("paused tasks", function()
    local gated = util.GATED_FLOW

    it("exits 3 while a manual_only task waits, the flow staying Running", function()
      local r = cli.run({ "run", cli.write_flow(gated), "--json", "-" })
      assert.are.equal(3, r.code)
      assert.is_true(has(r.stderr, "MARK-a\n")) -- print goes to stderr with --json -
      assert.is_false(has(r.stderr, "MARK-gate"))
      local run = json_lines(r.stdout)[1]
      assert.are.equal("Running", run.state)
      assert.are.equal("Running flow.", run.message)
      assert.are.equal("gate", run.tasks[2].name)
      assert.are.equal("Paused", run.tasks[2].state)
      assert.are.equal('Trigger function is "manual_only"', run.tasks[2].message)
    end)

    it("runs the task approved with --resume and exits 0", function()
      local r = cli.run({ "run", cli.write_flow(gated), "--resume", "gate" })
      assert.are.equal(0, r.code)
      assert.are.equal("MARK-a\nMARK-gate\n", r.stdout)
    end)

    it("refuses a --resume name that matches no task with exit 2", function()
      local r = cli.run({ "run", cli.write_flow(gated), "--resume", "gaet" })
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, "gaet"))
    end)

    it("refuses a --resume name that matches several tasks", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local mk = function(label)
  return luaflow.Task{name = "gate", trigger = luaflow.triggers.manual_only,
                      fn = function() print(label) end}
end
local a = luaflow.Task{name = "a"}
local g1, g2 = mk("MARK-g1"), mk("MARK-g2")
local f = luaflow.Flow{name = "twin-gates", tasks = {a, g1, g2}}
f:add_edge(a, g1)
f:add_edge(a, g2)
]])
      local r = cli.run({ "run", path, "--resume", "gate" })
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, "gate"))
    end)

    it("exits 1 when one run failed and another waits for approval", function()
      local path = cli.write_flow(gated .. [[
local broken = luaflow.Flow{name = "broken",
                            tasks = {luaflow.Task{name = "boom", fn = function() error("x") end}}}
f:run()
broken:run()
]])
      local r = cli.run({ "run", path })
      assert.are.equal(1, r.code)
    end)
  end)
end)

describe("luaflow check", function()
  after_each(cli.cleanup)

  it("validates a flow without running its tasks", function()
    local path = cli.write_flow(printing_flow("checked", "MARK-body"))
    local r = cli.run({ "check", path })
    assert.are.equal(0, r.code)
    assert.is_false(has(r.stdout, "MARK-body"))
  end)

  it("validates a script that calls flow:run() without running it", function()
    local path = cli.write_flow(printing_flow("checked", "MARK-body",
                                              'local s = flow:run()\nprint("MARK-after", s)'))
    local r = cli.run({ "check", path })
    assert.are.equal(0, r.code)
    assert.is_false(has(r.stdout, "MARK-body"))
    assert.is_false(has(r.stdout, "MARK-after"))
  end)

  it("exits 2 on a cycle, naming its tasks", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.task
local f = luaflow.Flow("loop", function(flow)
  local a = t("first", function() print("MARK-ran") end)()
  local b = t("second", function(x) return x end)(a)
  local c = t("third", function(x) return x end)(b)
  flow:add_edge(c, a)
end)
f:run()
]])
    local r = cli.run({ "check", path })
    assert.are.equal(2, r.code)
    assert.is_false(has(r.stdout, "MARK-ran"))
    for _, name in ipairs({ "first", "second", "third" }) do
      assert.is_true(has(r.stderr, name), name)
    end
  end)

  it("exits 2 on a script error", function()
    local path = cli.write_flow('error("broken script")\n')
    local r = cli.run({ "check", path })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, path .. ":1:"))
  end)
end)

describe("luaflow graph", function()
  after_each(cli.cleanup)

  -- Reads one DOT id at position i: a quoted string or a bare word.
  local function id_at(s, i)
    i = s:find("%S", i)
    if s:sub(i, i) == '"' then
      local j = s:find('"', i + 1, true)
      return s:sub(i + 1, j - 1), j + 1
    end
    local a, b = s:find("^[%w_%.]+", i)
    if not a then return nil, i end
    return s:sub(a, b), b + 1
  end

  -- Nodes (id -> label) and edges ({from_label, to_label}) of one digraph.
  local function parse_dot(text)
    local labels, raw_edges, node_count = {}, {}, 0
    for _, line in ipairs(cli.lines(text)) do
      local arrow = line:find("->", 1, true)
      if arrow then
        local from = id_at(line, 1)
        local to = id_at(line, arrow + 2)
        raw_edges[#raw_edges + 1] = { from, to }
      elseif not line:match("^%s*digraph") and not line:match("^%s*}")
             and not line:match("^%s*node%s*%[") and not line:match("^%s*edge%s*%[")
             and not line:match("^%s*graph%s*%[") and line:match("%S") then
        local id = id_at(line, 1)
        if id and not line:match("^%s*[%w_]+%s*=") then
          labels[id] = line:match('label%s*=%s*"([^"]*)"') or id
          node_count = node_count + 1
        end
      end
    end
    local edges = {}
    for i, e in ipairs(raw_edges) do
      edges[i] = (labels[e[1]] or e[1]) .. " -> " .. (labels[e[2]] or e[2])
    end
    table.sort(edges)
    local names = {}
    for _, label in pairs(labels) do names[#names + 1] = label end
    table.sort(names)
    return names, edges, node_count
  end

  local pipeline = [[
local luaflow = require("luaflow")
local t = luaflow.task
local f = luaflow.Flow("pipeline", function()
  local a = t("extract", function() print("MARK-ran") return 2 end)()
  local b = t("double", function(x) return x * 2 end)(a)
  local c = t("square", function(x) return x * x end)(a)
  local s = t("sum", function(x, y) return x + y end)(b, c)
  local r = t("report", function() end)()
  r:set_upstream(s)
end)
f:run()
]]

  it("prints Graphviz DOT with one node per task and one edge per dependency", function()
    local r = cli.run({ "graph", cli.write_flow(pipeline) })
    assert.are.equal(0, r.code)
    assert.matches("^%s*digraph", r.stdout)
    assert.is_false(has(r.stdout, "MARK-ran"))
    local names, edges, node_count = parse_dot(r.stdout)
    assert.are.equal(5, node_count)
    assert.are.same({ "double", "extract", "report", "square", "sum" }, names)
    assert.are.same({ "double -> sum", "extract -> double", "extract -> square",
                      "square -> sum", "sum -> report" }, edges)
  end)
end)

describe("luaflow --version and --help", function()
  it("prints the version", function()
    local r = cli.run({ "--version" })
    assert.are.equal(0, r.code)
    assert.matches("%d+%.%d+%.%d+", r.stdout)
    assert.is_true(has(r.stdout, luaflow.version))
  end)

  it("prints usage with exit 0", function()
    local r = cli.run({ "--help" })
    assert.are.equal(0, r.code)
    assert.matches("[Uu]sage", r.stdout)
    for _, word in ipairs({ "run", "check", "graph", "--param", "--json", "--log-level", "--resume" }) do
      assert.is_true(has(r.stdout, word), word)
    end
  end)

  it("prints the usage for `luaflow run --help` and exits 0", function()
    local r = cli.run({ "run", "--help" }, { no_input = false })
    assert.are.equal(0, r.code)
    assert.is_truthy(r.stdout:find("usage: luaflow run FILE", 1, true))
  end)
end)

describe("luaflow started from another directory", function()
  after_each(cli.cleanup)

  -- No Lua search path that could lead to the project's sources.
  local bare_env = { LUA_PATH = "/nonexistent/?.lua", LUA_CPATH = "/nonexistent/?.so",
                     LUA_PATH_5_4 = false, LUA_CPATH_5_4 = false, LUA_INIT = false }

  it("runs a flow given by a relative path", function()
    local dir = cli.tmpdir()
    os.execute("mkdir " .. cli.quote(dir .. "/flows"))
    cli.write_flow(printing_flow("elsewhere", "MARK-relative"), dir .. "/flows", "here.lua")
    local r = cli.run({ "run", "flows/here.lua", "--json", "-" }, { cwd = dir, env = bare_env })
    assert.are.equal(0, r.code)
    assert.is_true(has(r.stderr, "MARK-relative\n")) -- print goes to stderr with --json -
    assert.are.equal("Success", json_lines(r.stdout)[1].state)
  end)

  it("runs a flow given by an absolute path", function()
    local dir = cli.tmpdir()
    local path = cli.write_flow(printing_flow("elsewhere", "MARK-absolute"))
    local r = cli.run({ "run", path }, { cwd = dir, env = bare_env })
    assert.are.equal(0, r.code)
    assert.are.equal("MARK-absolute\n", r.stdout)
  end)

  it("names the absolute path of a relative FILE in a script error", function()
    local dir = cli.tmpdir()
    cli.write_flow('local x = 1\nerror("broken here")\n', dir, "bad.lua")
    local r = cli.run({ "run", "bad.lua" }, { cwd = dir, env = bare_env })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, dir .. "/bad.lua:2:"))
  end)
end)
