-- Runs recorded into the run store as they run (issue 14): `luaflow run`
-- records by default (runs, tasks with their results, every transition, every
-- log line, deliveries; redacted), --no-store / LUAFLOW_STORE=off record
-- nothing, flow:run{store=} and lf_engine_set_store record when asked; a run
-- killed with kill -9 reads as Crashed with its transitions; a corrupt store
-- is one WARNING and the run goes on; two processes record into one store at
-- once; --restart / flow:run{restart=} continue a failed run without running
-- again what succeeded; --json carries run_id and times, and with --json -
-- print() goes to stderr; the progress line follows the run on a terminal.
local cli = require("cli")
local util = require("util")
local proc = require("proc")
local luaflow = require("luaflow")
local json = luaflow.json
local store = require("luaflow.store")
local receiver = require("receiver")
local has = util.has

local ROOT = cli.root
local BUILD = ROOT .. "/" .. (os.getenv("LUAFLOW_BUILD") or "build")

-- `luaflow ARGS` with the store in dir (XDG_STATE_HOME) and INFO logs.
local function run_in(dir, args, env)
  local e = { XDG_STATE_HOME = dir, LUAFLOW_LOG_LEVEL = "INFO", LUAFLOW_STORE = false }
  for k, v in pairs(env or {}) do e[k] = v end
  return cli.run(args, { env = e })
end

local function db_of(dir) return dir .. "/luaflow/luaflow.db" end

-- The store at path, for reading.
local function reader(path) return assert(store.open(path)) end

local function json_of(r)
  local docs = {}
  for line in r.stdout:gmatch("[^\n]+") do docs[#docs + 1] = json.decode(line) end
  return docs
end

local function by_name(rows)
  local t = {}
  for _, row in ipairs(rows) do t[row.name] = row end
  return t
end

-- a -> b -> c; c fails when FAIL is set; every body appends to count_<name>.
local COUNTED = [[
local luaflow = require("luaflow")
local dir = os.getenv("COUNT_DIR")
local function bump(name)
  local f = assert(io.open(dir .. "/count_" .. name, "a")); f:write("x"); f:close()
end
local calls = function(obj, old, new)
  local f = assert(io.open(dir .. "/handlers", "a"))
  f:write(obj.name, " ", tostring(old), " -> ", tostring(new), "\n"); f:close()
end
local a = luaflow.task{name = "a", state_handlers = {calls}}(function() bump("a") return {x = 1, tag = "hello"} end)
local b = luaflow.task{name = "b", state_handlers = {calls}}(function(v) bump("b") return v.x + 1 end)
local c = luaflow.task{name = "c", state_handlers = {calls}}(function(v)
  bump("c")
  if os.getenv("FAIL") then error("boom") end
  return v * 10
end)
return luaflow.Flow("counted", function() c(b(a())) end)
]]

local function count(dir, name) return #(util.read(dir .. "/count_" .. name) or "") end

describe("recording runs", function()
  after_each(function()
    receiver.stop_all()
    cli.cleanup()
  end)

  it("records every run by default under XDG_STATE_HOME: run, tasks, results, transitions, logs", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow(COUNTED, dir)
    local r = run_in(dir, { "run", flow, "--json", dir .. "/out.json" }, { COUNT_DIR = dir, FAIL = "1" })
    assert.are.equal(1, r.code, r.stderr)
    local line = json.decode(util.read(dir .. "/out.json"))
    local s = reader(db_of(dir))
    local runs = assert(s:runs())
    assert.are.equal(1, #runs)
    local run = runs[1]
    assert.are.equal(line.run_id, run.id)
    assert.are.equal("counted", run.flow)
    assert.are.equal(flow, run.script)
    assert.are.equal("Failed", run.state)
    assert.are.equal("Some reference tasks failed.", run.message)
    assert.are.equal(1, run.exit_code)
    assert.are.equal(3, run.ntasks)
    assert.is_true(run.ended >= run.started)
    local tasks = by_name(assert(s:tasks(run.id)))
    assert.are.equal("Success", tasks.a.state)
    assert.are.same({ x = 1, tag = "hello" }, json.decode(tasks.a.result))
    assert.are.equal("2", tasks.b.result)
    assert.are.equal("Failed", tasks.c.state)
    assert.is_truthy(tasks.c.message:find("boom", 1, true))
    assert.are.equal(1, tasks.c.run_count)
    assert.is_true(tasks.a.started > 0 and tasks.a.ended >= tasks.a.started)
    local tr = assert(s:transitions(run.id))
    local seen = {}
    for _, t in ipairs(tr) do seen[#seen + 1] = ("%s %s->%s #%d"):format(t.name, t.old, t.new, t.seq) end
    assert.are.same({ "counted Scheduled->Running #1", "a Pending->Running #1", "a Running->Success #2",
                      "b Pending->Running #1", "b Running->Success #2", "c Pending->Running #1",
                      "c Running->Failed #2", "counted Running->Failed #2" }, seen)
    local logs = assert(s:logs(run.id))
    local text = {}
    for _, l in ipairs(logs) do text[#text + 1] = l.level .. " " .. l.message end
    text = table.concat(text, "\n")
    assert.is_truthy(text:find("INFO Beginning Flow run for 'counted'", 1, true), text)
    assert.is_truthy(text:find("ERROR Task 'c': Exception encountered during task execution!", 1, true), text)
    assert.is_truthy(text:find("INFO Flow run FAILED: some reference tasks failed.", 1, true), text)
    s:close()
    -- and the CLI shows it
    r = run_in(dir, { "runs", "show", "last", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(line.run_id, json.decode(r.stdout).id)
  end)

  it("records nothing with --no-store or LUAFLOW_STORE=off: no file is made", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow(COUNTED, dir)
    assert.are.equal(0, run_in(dir, { "run", flow, "--no-store" }, { COUNT_DIR = dir }).code)
    assert.are.equal(0, run_in(dir, { "run", flow }, { COUNT_DIR = dir, LUAFLOW_STORE = "off" }).code)
    assert.is_nil(util.read(db_of(dir)))
    assert.are.equal(0, run_in(dir, { "run", flow, "--store", dir .. "/given.db" }, { COUNT_DIR = dir }).code)
    assert.are.equal(1, #assert(reader(dir .. "/given.db"):runs()))
  end)

  it("keeps secrets out of the store: messages, results, logs and parameters are redacted", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow([[
local luaflow = require("luaflow")
local token = luaflow.secrets.get("TOKEN")
local p = luaflow.Parameter("who", {default = "x"})
local leak = luaflow.task{name = "leak"}(function(who)
  luaflow.log.info("using " .. token)
  return {token = token, who = who}
end)
local bad = luaflow.task{name = "bad"}(function() error("failed with " .. token) end)
return luaflow.Flow("secretive", function() leak(p); bad() end)
]], dir)
    local secret = "s3cr3t-t0ken-value"
    local r = run_in(dir, { "run", flow, "--param", "who=" .. secret }, { LUAFLOW_SECRET_TOKEN = secret })
    assert.are.equal(1, r.code, r.stderr)
    local s = reader(db_of(dir))
    local run = assert(s:run("last"))
    local all = { json.encode(run) }
    for _, rows in ipairs({ s:tasks(run.id), s:transitions(run.id), s:logs(run.id) }) do
      all[#all + 1] = json.encode(rows)
    end
    all = table.concat(all, "\n")
    assert.is_nil(all:find(secret, 1, true), all)
    assert.is_truthy(all:find("using ****", 1, true), all)
    assert.is_truthy(all:find("failed with ****", 1, true), all)
    s:close()
    -- nor in the file's bytes (WAL included)
    for _, f in ipairs({ db_of(dir), db_of(dir) .. "-wal" }) do
      assert.is_nil((util.read(f) or ""):find(secret, 1, true), f)
    end
  end)

  it("shows a run killed with kill -9 as Crashed, with every transition up to its death", function()
    local h = proc.spawn([[
local luaflow = require("luaflow")
local first = luaflow.task{name = "first"}(function() return 1 end)
local sleeper = luaflow.task{name = "sleeper"}(function()
  print("ready"); io.stdout:flush()
  os.execute("sleep 5") -- outlives the kill; ends soon after it
end)
return luaflow.Flow("doomed", function() sleeper(first()) end)
]])
    proc.wait_for(h, "ready\n")
    -- more than the writer's 50 ms: the Running transition is committed
    os.execute(("sleep %.2f"):format(0.4 * proc.SLACK))
    proc.kill(h)
    assert.is_truthy(proc.wait_exit(h, 5))
    local r = run_in(h.dir, { "runs", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    local runs = json.decode(r.stdout)
    assert.are.equal(1, #runs)
    assert.are.equal("Crashed", runs[1].state)
    r = run_in(h.dir, { "runs", "show", "last", "--transitions", "--json" })
    local doc = json.decode(r.stdout)
    local seen = {}
    for _, t in ipairs(doc.transitions) do
      seen[#seen + 1] = ("%s %s->%s"):format(t.object, t.old_state, t.new_state)
    end
    assert.are.same({ "doomed Scheduled->Running", "first Pending->Running", "first Running->Success",
                      "sleeper Pending->Running" }, seen)
    local tasks = by_name(doc.tasks)
    assert.are.equal("Success", tasks.first.state)
    assert.are.equal("Running", tasks.sleeper.state)
    r = run_in(h.dir, { "runs", "--state", "Crashed" })
    assert.is_truthy(r.stdout:find("doomed", 1, true), r.stdout)
  end)

  it("goes on unrecorded with one WARNING when the store is corrupt", function()
    local dir = cli.tmpdir()
    local path = dir .. "/bad.db"
    local f = assert(io.open(path, "wb"))
    f:write(("this is no database\n"):rep(500))
    f:close()
    local flow = cli.write_flow(COUNTED, dir)
    local r = run_in(dir, { "run", flow, "--store", path, "--json", "-" }, { COUNT_DIR = dir })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(1, util.count(r.stderr, "WARNING"), r.stderr)
    assert.is_truthy(r.stderr:find(path, 1, true), r.stderr)
    assert.are.equal("Success", json_of(r)[1].state)
    assert.are.equal(("this is no database\n"):rep(500), util.read(path)) -- left as it was
  end)

  it("goes on unrecorded with one WARNING when the store was made by a newer luaflow", function()
    if not os.execute("command -v sqlite3 >/dev/null 2>&1") then return pending("sqlite3 is not installed") end
    local dir = cli.tmpdir()
    local path = dir .. "/newer.db"
    assert(store.open(path, { create = true })):close()
    assert(os.execute(("sqlite3 %s 'PRAGMA user_version = 99'"):format(cli.quote(path))))
    local flow = cli.write_flow(COUNTED, dir)
    local r = run_in(dir, { "run", flow, "--store", path }, { COUNT_DIR = dir })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(1, util.count(r.stderr, "WARNING"), r.stderr)
    assert.is_truthy(r.stderr:find("schema version 99", 1, true), r.stderr)
  end)

  it("records a run SIGTERM cancels as Cancelled, with exit code 143", function()
    local h = proc.spawn([[
local luaflow = require("luaflow")
local waiter = luaflow.task{name = "waiter"}(function()
  print("ready"); io.stdout:flush()
  os.execute("sleep 1")
end)
return luaflow.Flow("stopped", function() waiter() end)
]])
    proc.wait_for(h, "ready\n")
    assert.are.equal(143, proc.signal(h, "TERM"))
    local r = run_in(h.dir, { "runs", "show", "last", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.are.equal("Cancelled", doc.state)
    assert.are.equal(143, doc.exit_code)
    assert.are.equal("Cancelled", doc.tasks[1].state)
  end)

  it("keeps the lines worker threads log in order with the run's own", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow([[
local luaflow = require("luaflow")
local tasks = {}
for i = 1, 6 do
  tasks[i] = luaflow.task{name = "w" .. i}(function()
    luaflow.context.logger:info("body of w" .. i)
    return i
  end)
end
return luaflow.Flow("threads", function() for i = 1, 6 do tasks[i]() end end)
]], dir)
    local r = run_in(dir, { "run", flow, "--executor", "threads", "--workers", "3" })
    assert.are.equal(0, r.code, r.stderr)
    local s = reader(db_of(dir))
    local at = {}
    for i, l in ipairs(assert(s:logs(s:run("last").id))) do at[l.message] = i end
    s:close()
    for i = 1, 6 do
      local started = at[("Task 'w%d': Starting task run..."):format(i)]
      local body = at["body of w" .. i]
      local finished = at[("Task 'w%d': Finished task run for task with final state: 'Success'"):format(i)]
      assert.is_truthy(started and body and finished, r.stderr)
      assert.is_true(started < body and body < finished, r.stderr)
    end
  end)

  it("loses nothing when two processes record into one store at once", function()
    local dir = cli.tmpdir()
    local path = dir .. "/shared.db"
    local source = [[
local luaflow = require("luaflow")
local t = luaflow.task{name = "t"}(function(i) return i end)
return luaflow.Flow(os.getenv("NAME"), function() for i = 1, 300 do t(i) end end)
]]
    local a = proc.spawn(source, { args = { "run", "--no-input", "FILE", "--store", path }, env = { NAME = "one" } })
    local b = proc.spawn(source, { args = { "run", "--no-input", "FILE", "--store", path }, env = { NAME = "two" } })
    assert.are.equal(0, proc.wait_exit(a, 20), proc.detail(a))
    assert.are.equal(0, proc.wait_exit(b, 20), proc.detail(b))
    local s = reader(path)
    local runs = assert(s:runs())
    assert.are.equal(2, #runs)
    for _, run in ipairs(runs) do
      assert.are.equal("Success", run.state)
      assert.are.equal(300, run.counts.Success)
      assert.are.equal(300, #assert(s:tasks(run.id)))
      assert.are.equal(2 + 600, #assert(s:transitions(run.id)))
    end
  end)

  it("records a deadline that passed with the run's log lines", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow([[
local luaflow = require("luaflow")
local slow = luaflow.task{name = "slow", deadline = 0.05}(function() os.execute("sleep 0.3") end)
return luaflow.Flow("late", function() slow() end)
]], dir)
    -- recorded whether the log level shows WARNING lines on stderr or not
    for _, level in ipairs({ "INFO", "ERROR" }) do
      local r = run_in(dir, { "run", flow, "--log-level", level })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(level == "INFO", r.stderr:find("overdue", 1, true) ~= nil, r.stderr)
      r = run_in(dir, { "runs", "logs", "last" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("WARNING - luaflow.TaskRunner | Task 'slow': overdue: running for", 1, true), r.stdout)
    end
  end)

  it("records the notifications' deliveries with the run", function()
    local dir = cli.tmpdir()
    local http = receiver.start{ proto = "http" }
    local flow = cli.write_flow([[
local luaflow = require("luaflow")
local hook = luaflow.notifications.webhook_notifier{url_secret = "HOOK", only_states = {"Failed"}}
local t = luaflow.task{name = "t", state_handlers = {hook}}(function() error("down") end)
return luaflow.Flow("alerting", function() t() end)
]], dir)
    local r = run_in(dir, { "run", flow }, { LUAFLOW_SECRET_HOOK = http:url("/hook") })
    assert.are.equal(1, r.code, r.stderr)
    assert.are.equal(1, #http:wait_for(1, 2))
    r = run_in(dir, { "runs", "show", "last", "--deliveries", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.are.equal(1, #doc.deliveries)
    assert.is_true(doc.deliveries[1].delivered)
    assert.are.equal(doc.id .. "/1/2", doc.deliveries[1].transition_id)
  end)
end)

describe("the store's text", function()
  after_each(cli.cleanup)

  it("keeps every string byte for byte: quotes, backslashes, control characters, UTF-8", function()
    local dir = cli.tmpdir()
    local s = assert(store.open(dir .. "/text.db", { create = true, record = true }))
    local run = assert(s:begin_run{ id = "text-run", flow = "f", started = 1 })
    local pieces = { "a", "plain text ", '"', "\\", "\n", "\t", "\1", "\31", "\127", "é", "日本", "😀",
                     "0123456789abcdef", "luaflow.TaskRunner" }
    math.randomseed(14)
    local sent = {}
    for i = 1, 300 do
      local parts = {}
      for k = 1, math.random(0, 12) do parts[k] = pieces[math.random(#pieces)] end
      sent[i] = table.concat(parts)
      assert(run:log{ time = i, level = "INFO", logger = sent[i], message = sent[i] })
    end
    assert(run:finish{ ended = 400, state = "Success" })
    assert(s:flush())
    local logs = assert(s:logs("text-run"))
    assert.are.equal(#sent, #logs)
    for i, l in ipairs(logs) do
      assert.are.equal(sent[i], l.message)
      assert.are.equal(sent[i], l.logger)
    end
    s:close()
  end)
end)

describe("restarting a recorded run", function()
  after_each(cli.cleanup)

  it("runs only what did not succeed; the rest keeps its state and result and calls no handler", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow(COUNTED, dir)
    local env = { COUNT_DIR = dir, FAIL = "1" }
    local first = run_in(dir, { "run", flow, "--json", "-" }, env)
    assert.are.equal(1, first.code, first.stderr)
    local failed_id = json_of(first)[1].run_id
    os.remove(dir .. "/handlers")
    env.FAIL = false
    local r = run_in(dir, { "run", flow, "--restart", failed_id:sub(1, 8), "--json", "-" }, env)
    assert.are.equal(0, r.code, r.stderr)
    -- a and b ran once (in the first run), c twice
    assert.are.same({ 1, 1, 2 }, { count(dir, "a"), count(dir, "b"), count(dir, "c") })
    local line = json_of(r)[1]
    assert.are.equal("Success", line.state)
    local tasks = by_name(line.tasks)
    assert.are.same({ x = 1, tag = "hello" }, tasks.a.result)
    assert.are.equal(2, tasks.b.result)
    assert.are.equal(20, tasks.c.result) -- from b's restored result
    local before = by_name(json_of(first)[1].tasks)
    assert.are.equal(before.a.started, tasks.a.started) -- a kept task keeps its times
    assert.are.equal(before.b.duration, tasks.b.duration)
    assert.is_truthy(r.stderr:find("Restarting run " .. failed_id:sub(1, 8) .. " of flow 'counted': 2 tasks keep", 1, true),
                     r.stderr)
    -- only c's handlers ran
    assert.are.same({ 'c Pending -> Running("Starting task run.")', 'c Running("Starting task run.") -> Success("Task run succeeded.")' },
                    cli.lines((util.read(dir .. "/handlers") or ""):gsub('Pending%(%)', "Pending")))
    -- the new run is linked to the one it restarts, and complete
    local s = reader(db_of(dir))
    local run = assert(s:run(line.run_id))
    assert.are.equal(failed_id, run.restart_of)
    assert.are.equal(3, run.counts.Success)
    assert.are.equal("2", by_name(assert(s:tasks(run.id))).b.result)
    s:close()
  end)

  it("restarts `last`, and a restart can be restarted", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow(COUNTED, dir)
    local env = { COUNT_DIR = dir, FAIL = "1" }
    assert.are.equal(1, run_in(dir, { "run", flow }, env).code)
    assert.are.equal(1, run_in(dir, { "run", flow, "--restart", "last" }, env).code)
    env.FAIL = false
    assert.are.equal(0, run_in(dir, { "run", flow, "--restart", "last" }, env).code)
    assert.are.same({ 1, 1, 3 }, { count(dir, "a"), count(dir, "b"), count(dir, "c") })
  end)

  it("runs again a successful task whose result was not stored, saying so", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow([[
local luaflow = require("luaflow")
local dir = os.getenv("COUNT_DIR")
local function bump(name) local f = io.open(dir .. "/count_" .. name, "a"); f:write("x"); f:close() end
local fn = luaflow.task{name = "fn"}(function() bump("fn") return function() end end)
local big = luaflow.task{name = "big"}(function() bump("big") return string.rep("y", 70000) end)
local last = luaflow.task{name = "last"}(function(f, s)
  bump("last")
  if os.getenv("FAIL") then error("no") end
  return type(f) .. #s
end)
return luaflow.Flow("unstored", function() last(fn(), big()) end)
]], dir)
    assert.are.equal(1, run_in(dir, { "run", flow }, { COUNT_DIR = dir, FAIL = "1" }).code)
    local r = run_in(dir, { "run", flow, "--restart", "last", "--json", "-" }, { COUNT_DIR = dir })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ 2, 2, 2 }, { count(dir, "fn"), count(dir, "big"), count(dir, "last") })
    assert.are.equal("function70000", by_name(json_of(r)[1].tasks).last.result)
    assert.is_truthy(r.stderr:find("Task 'fn': its result in run %x+ was not stored"), r.stderr)
    assert.is_truthy(r.stderr:find("Task 'big': its result in run %x+ was not stored"), r.stderr)
  end)

  it("refuses a run of another flow, a changed flow, an unknown id, or no store (exit 2)", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow(COUNTED, dir)
    assert.are.equal(1, run_in(dir, { "run", flow }, { COUNT_DIR = dir, FAIL = "1" }).code)
    local other = cli.write_flow([[
local luaflow = require("luaflow")
return luaflow.Flow("other", function() luaflow.task{name = "a"}(function() end)() end)
]], dir, "other.lua")
    local r = run_in(dir, { "run", other, "--restart", "last" })
    assert.are.equal(2, r.code, r.stderr)
    assert.is_truthy(r.stderr:find("it is a run of flow 'counted', not of 'other'", 1, true), r.stderr)
    local changed = cli.write_flow(COUNTED:gsub('name = "b"', 'name = "b2"'), dir, "changed.lua")
    r = run_in(dir, { "run", changed, "--restart", "last" }, { COUNT_DIR = dir })
    assert.are.equal(2, r.code, r.stderr)
    assert.is_truthy(r.stderr:find("task 2 of flow 'counted' was 'b' in that run and is 'b2' now", 1, true), r.stderr)
    r = run_in(dir, { "run", flow, "--restart", "ffffffff" }, { COUNT_DIR = dir })
    assert.are.equal(2, r.code, r.stderr)
    assert.is_truthy(r.stderr:find("--restart ffffffff", 1, true), r.stderr)
    r = run_in(dir, { "run", flow, "--restart", "last", "--no-store" }, { COUNT_DIR = dir })
    assert.are.equal(2, r.code, r.stderr)
    assert.is_truthy(r.stderr:find("needs the run store", 1, true), r.stderr)
    assert.are.same({ 1, 1, 1 }, { count(dir, "a"), count(dir, "b"), count(dir, "c") }) -- nothing ran
  end)

  it("applies --restart to the run of the recorded flow, other flows of the script running as usual", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow(COUNTED, dir)
    assert.are.equal(1, run_in(dir, { "run", flow }, { COUNT_DIR = dir, FAIL = "1" }).code)
    local failed_id = reader(db_of(dir)):run("last").id
    local two = cli.write_flow(([[
local luaflow = require("luaflow")
local counted = dofile(%q)
local first = luaflow.Flow("first", function() luaflow.task{name = "x"}(function() return 1 end)() end)
first:run()
counted:run()
]]):format(flow), dir, "two.lua")
    local r = run_in(dir, { "run", two, "--restart", failed_id, "--json", "-" }, { COUNT_DIR = dir })
    assert.are.equal(0, r.code, r.stderr)
    local lines = json_of(r)
    assert.are.equal("first", lines[1].flow)
    assert.are.equal("counted", lines[2].flow)
    assert.are.same({ 1, 1, 2 }, { count(dir, "a"), count(dir, "b"), count(dir, "c") })
    assert.are.equal(failed_id, reader(db_of(dir)):run(lines[2].run_id).restart_of)
    -- a script that never runs the recorded flow: said at the end, exit 2
    local none = cli.write_flow([[
local luaflow = require("luaflow")
luaflow.Flow("counted", function() end)
luaflow.Flow("first", function() luaflow.task{name = "x"}(function() return 1 end)() end):run()
]], dir, "none.lua")
    r = run_in(dir, { "run", none, "--restart", failed_id })
    assert.are.equal(2, r.code, r.stderr)
    assert.is_truthy(r.stderr:find("no run of flow 'counted' was made: nothing was restarted", 1, true), r.stderr)
  end)
end)

describe("recording outside the CLI", function()
  after_each(cli.cleanup)

  it("flow:run{store = PATH} records, and flow:run{restart = ID} continues the run", function()
    local dir = cli.tmpdir()
    local path = dir .. "/lib.db"
    local script = cli.write_flow(([[
local luaflow = require("luaflow")
local n = {a = 0, b = 0}
local fail = true
local a = luaflow.task{name = "a"}(function() n.a = n.a + 1 return "A" end)
local b = luaflow.task{name = "b"}(function(x) n.b = n.b + 1 if fail then error("no") end return x .. "B" end)
local f = luaflow.Flow("lib", function() b(a()) end)
local plain = f:run()
local first = f:run{store = %q}
fail = false
local s = require("luaflow.store").open(%q)
local id = s:runs()[1].id
local second = f:run{store = %q, restart = id}
print(#s:runs(), tostring(first), tostring(second), second.result[b].result, n.a, n.b)
]]):format(path, path, path), dir, "lib.lua")
    local r = cli.run({ script }, { bin = "lua5.4", env = { LUAFLOW_LOG_LEVEL = "ERROR" } })
    assert.are.equal(0, r.code, r.stderr)
    -- the plain run recorded nothing; the restart ran a once in all for the two recorded runs
    assert.are.equal('2\tFailed("Some reference tasks failed.")\tSuccess("All reference tasks succeeded.")\tAB\t2\t3\n',
                     r.stdout)
  end)

  it("lf_engine_set_store records an embedding program's runs", function()
    local dir = cli.tmpdir()
    local path = dir .. "/embed.db"
    local flow = cli.write_flow(COUNTED, dir)
    local saved = cli.bin
    cli.bin = BUILD .. "/examples/run_flow"
    local ok, r = pcall(cli.run, { flow, "--store", path }, { env = { COUNT_DIR = dir } })
    -- a store that cannot be made: the error, and the run goes on unrecorded
    local ok2, r2 = pcall(cli.run, { flow, "--store", flow .. "/x.db" }, { env = { COUNT_DIR = dir } })
    cli.bin = saved
    assert(ok, r)
    assert(ok2, r2)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(0, r2.code, r2.stderr)
    assert.is_truthy(r2.stderr:find("run_flow: .*" .. flow:gsub("%p", "%%%0")), r2.stderr)
    assert.is_truthy(r2.stdout:find("flow counted: Success", 1, true), r2.stdout)
    local s = reader(path)
    local runs = assert(s:runs())
    assert.are.equal(1, #runs)
    assert.are.equal("counted", runs[1].flow)
    assert.are.equal(3, runs[1].counts.Success)
    assert.are.equal("20", by_name(assert(s:tasks(runs[1].id))).c.result)
  end)
end)

describe("--json and the run", function()
  after_each(cli.cleanup)

  it("carries run_id, times and durations; with --json - print() goes to stderr", function()
    local dir = cli.tmpdir()
    local flow = cli.write_flow([[
local luaflow = require("luaflow")
local nap = luaflow.task{name = "nap"}(function() print("PRINTED") os.execute("sleep 0.2") return 1 end)
local never = luaflow.task{name = "never", trigger = luaflow.triggers.all_failed}(function() end)
return luaflow.Flow("timed", function() never(nap()) end)
]], dir)
    local r = run_in(dir, { "run", flow, "--json", "-" })
    assert.are.equal(1, r.code, r.stderr) -- `never` ends TriggerFailed
    assert.is_truthy(r.stderr:find("PRINTED\n", 1, true), r.stderr)
    assert.is_nil(r.stdout:find("PRINTED", 1, true))
    local line = json_of(r)[1]
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", line.run_id)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+%+00:00$", line.started)
    assert.is_true(line.duration >= 0.2 and line.duration < 5, tostring(line.duration))
    local tasks = by_name(line.tasks)
    assert.is_true(tasks.nap.duration >= 0.2 and tasks.nap.duration <= line.duration)
    assert.is_true(tasks.nap.started >= line.started and tasks.nap.ended <= line.ended)
    assert.are.equal("TriggerFailed", tasks.never.state)
    -- the same id as the store's
    assert.are.equal(line.run_id, reader(db_of(dir)):run("last").id)
  end)
end)

describe("the progress line of a run", function()
  local has_script = os.execute("command -v script >/dev/null 2>&1")
  after_each(cli.cleanup)

  it("counts the run's tasks on a terminal and is erased at the end", function()
    if not has_script then return pending("script(1) (bsdutils) is not installed") end
    local dir = cli.tmpdir()
    local flow = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.task{name = "t"}(function() os.execute("sleep 0.15") end)
local bad = luaflow.task{name = "bad"}(function() error("x") end)
return luaflow.Flow("shown", function() bad(); for _ = 1, 8 do t() end end)
]], dir)
    local inner = ("env XDG_STATE_HOME=%s LUAFLOW_LOG_LEVEL=CRITICAL %s run --no-input %s")
                  :format(cli.quote(dir), cli.quote(cli.bin), cli.quote(flow))
    local out = dir .. "/tty"
    os.execute(("env -u LD_PRELOAD -u ASAN_OPTIONS script -qec %s /dev/null </dev/null >%s 2>&1")
               :format(cli.quote(inner), cli.quote(out)))
    local text = util.read(out) or ""
    -- drawn with the run's counts: 9 tasks, the failed one counted
    assert.is_truthy(text:find("\r%[%d/9%] 1 running, 1 failed, 0:0%d"), text)
    -- erased at the end: nothing follows the last erase
    assert.matches("\r\27%[K$", text)
    -- not drawn with --no-progress
    os.execute(("env -u LD_PRELOAD -u ASAN_OPTIONS script -qec %s /dev/null </dev/null >%s 2>&1")
               :format(cli.quote(inner .. " --no-progress"), cli.quote(out)))
    assert.is_nil((util.read(out) or ""):find("running", 1, true))
  end)
end)
