-- luaflow graph: edges named after the parameters they feed, a recorded
-- run's states as colours (--run), SVG and PNG made by the real Graphviz dot,
-- and a clear error when dot is missing.
local cli = require("cli")
local util = require("util")
local luaflow = require("luaflow")
local store = require("luaflow.store")
local has = util.has

local FLOW = [[
local luaflow = require("luaflow")
local t = luaflow.task
local counter = setmetatable({}, { __call = function(self, seen) return seen end })
return luaflow.Flow("etl", function()
  local rows = t("extract", function() return {1, 2} end)()
  local doubled = t("double", function(values, factor) return values end)(rows, 2)
  local loaded = t("load", function(items, opts) end)(doubled, {source = rows})
  local done = t("cleanup", function(...) end)(loaded)
  luaflow.Task{name = "count", fn = counter}(rows)
  t("notify", function() end)():set_upstream(done)
end)
]]

-- Node labels by task name and the DOT line of each edge "from -> to".
local function parse(dot)
  local nodes, ids, edges = {}, {}, {}
  for id, attrs in dot:gmatch("\n  (t%d+) (%b[]);") do
    local name = attrs:match('label="([^"\\]*)')
    nodes[name], ids[id] = attrs, name
  end
  for from, to, rest in dot:gmatch("\n  (t%d+) %-> (t%d+)([^\n]*);") do
    edges[ids[from] .. " -> " .. ids[to]] = rest
  end
  return nodes, edges
end

-- System tools run without the sanitizer runtime check-mem preloads (dot
-- is not ours); the ASan-built luaflow needs no preloading.
local NO_PRELOAD = { LD_PRELOAD = false }

describe("luaflow graph", function()
  local dir, path, script

  before_each(function()
    dir = cli.tmpdir()
    path = dir .. "/runs.db"
    script = cli.write_flow(FLOW, dir, "etl.lua")
  end)
  after_each(cli.cleanup)

  local function graph(args, env)
    local e = { LUAFLOW_STORE = path, LD_PRELOAD = false }
    for k, v in pairs(env or {}) do e[k] = v end
    return cli.run(args, { env = e })
  end

  -- A run of etl.lua where double's children went one each way and load failed.
  local function record_run(id, flow)
    local s = assert(store.open(path, { create = true, record = true }))
    local run = assert(s:begin_run{ id = id, flow = flow or "etl", script = script, started = 1764400000, ntasks = 6 })
    run:task{ index = 1, name = "extract", state = "Success", run_count = 1 }
    run:task{ index = 2, name = "double", state = "Mapped", run_count = 1 }
    run:task{ index = 2, map_index = 1, name = "double", state = "Success", run_count = 1 }
    run:task{ index = 2, map_index = 2, name = "double", state = "Failed", run_count = 1 }
    run:task{ index = 3, name = "load", state = "TriggerFailed", run_count = 1 }
    run:task{ index = 5, name = "count", state = "Cached", run_count = 1 }
    run:finish{ ended = 1764400002.5, state = "Failed", exit_code = 1 }
    assert(s:close())
  end

  it("labels each edge with the parameter it feeds", function()
    local r = graph({ "graph", script })
    assert.are.equal(0, r.code, r.stderr)
    local nodes, edges = parse(r.stdout)
    assert.are.same({ "cleanup", "count", "double", "extract", "load", "notify" },
                    (function() local l = {} for k in pairs(nodes) do l[#l + 1] = k end table.sort(l) return l end)())
    assert.are.equal(' [label="values"]', edges["extract -> double"])
    assert.are.equal(' [label="items"]', edges["double -> load"])
    assert.are.equal(' [label="in opts"]', edges["extract -> load"])   -- inside a table argument
    assert.are.equal(' [label="arg 1"]', edges["load -> cleanup"])     -- a vararg function
    assert.are.equal(' [label="seen"]', edges["extract -> count"])     -- a callable table
    assert.are.equal(' [style=dashed]', edges["cleanup -> notify"])    -- order only
    assert.is_nil(r.stdout:find("fillcolor", 1, true))
  end)

  it("fills each task with the colour of its final state in a recorded run", function()
    record_run("abcdef01-0000-4000-8000-000000000001")
    local r = graph({ "graph", script, "--run", "abcdef" })
    assert.are.equal(0, r.code, r.stderr)
    local nodes = parse(r.stdout)
    local function fill(name) return nodes[name]:match('fillcolor="(#%x+)"') end
    assert.are.equal(luaflow.states.Success.color, fill("extract"))
    assert.are.equal(luaflow.states.Mapped.color, fill("double"))
    assert.are.equal(luaflow.states.TriggerFailed.color, fill("load"))
    assert.are.equal(luaflow.states.Cached.color, fill("count"))
    assert.is_true(has(nodes.extract, 'label="extract\\nSuccess"'), nodes.extract)
    assert.is_true(has(nodes.double, 'label="double\\nMapped\\n2 children: 1 Success, 1 Failed"'), nodes.double)
    assert.is_true(has(nodes.load, 'fontcolor="#ffffff"'), nodes.load)   -- white on red
    assert.is_true(has(nodes.count, 'fontcolor="#000000"'), nodes.count) -- black on light green
    assert.is_true(has(nodes.cleanup, 'label="cleanup\\nnot run", style="rounded,dashed"'), nodes.cleanup)
    assert.is_true(has(r.stdout, 'graph [label="etl: run abcdef01, Failed, 2.5 s"'), r.stdout)
    -- the script the run recorded, when no FILE is given
    assert.are.equal(r.stdout, graph({ "graph", "--run", "last" }).stdout)
  end)

  it("names the run's flow when the script does not define it", function()
    record_run("abcdef02-0000-4000-8000-000000000002", "other")
    local r = graph({ "graph", script, "--run", "last" })
    assert.are.equal(2, r.code)
    assert.are.equal("luaflow: run abcdef02 is a run of flow 'other': " .. script
                     .. " defines no flow of that name\n", r.stderr)
    r = graph({ "graph", script, "--run", "nope" })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "no run"), r.stderr)
  end)

  it("makes a real SVG and PNG with Graphviz's dot", function()
    record_run("abcdef03-0000-4000-8000-000000000003")
    local svg = dir .. "/etl.svg"
    local r = graph({ "graph", script, "--run", "last", "-o", svg })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    local text = assert(util.read(svg))
    assert.matches("^<%?xml", text)
    assert.is_true(has(text, "<svg"), text)
    for _, word in ipairs({ ">extract<", ">TriggerFailed<", ">not run<", ">items<", ">in opts<",
                            'fill="' .. luaflow.states.TriggerFailed.color .. '"' }) do
      assert.is_true(has(text, word), word)
    end
    r = graph({ "graph", script, "--format", "svg" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^<%?xml.*</svg>%s*$", r.stdout)
    local png = dir .. "/out.image"
    r = graph({ "graph", script, "--format", "PNG", "--output=" .. png })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("\137PNG\r\n\26\n", (util.read(png) or ""):sub(1, 8))
    r = graph({ "graph", script, "-o" .. dir .. "/plain.dot" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches('^digraph "etl" {', util.read(dir .. "/plain.dot"))
  end)

  it("says clearly that dot is missing, and refuses a format it does not know", function()
    local r = graph({ "graph", script, "--format", "svg" }, { PATH = dir })
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
    assert.are.equal("luaflow: --format svg needs Graphviz's 'dot' program, which is not installed (on PATH); "
                     .. "install Graphviz (Debian, Ubuntu: apt install graphviz) or use --format dot\n", r.stderr)
    r = graph({ "graph", script, "-o", dir .. "/x.png" }, { PATH = dir })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "--format png needs Graphviz's 'dot'"), r.stderr)
    r = graph({ "graph", script, "--format", "jpeg" })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "--format expects dot, svg or png, got 'jpeg'"), r.stderr)
  end)

  it("draws one flow as SVG: several need --flow", function()
    local two = cli.write_flow([[
local luaflow = require("luaflow")
luaflow.Flow("a", function() luaflow.task(print)() end)
luaflow.Flow("b", function() luaflow.task(print)() end)
]], dir, "two.lua")
    local r = graph({ "graph", two, "--format", "svg" })
    assert.are.equal(2, r.code)
    assert.are.equal("luaflow: " .. two .. " builds 2 flows: --format svg draws one, choose it with --flow NAME\n",
                     r.stderr)
    r = graph({ "graph", two, "--format", "svg", "--flow", "b" }, NO_PRELOAD)
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(has(r.stdout, "<svg"))
  end)

  it("reports a path it cannot write", function()
    local r = graph({ "graph", script, "-o", dir .. "/no/such/dir/g.dot" })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "cannot write -o " .. dir .. "/no/such/dir/g.dot"), r.stderr)
  end)
end)
