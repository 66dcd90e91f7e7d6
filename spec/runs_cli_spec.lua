-- The run store from the command line: which store every command uses
-- (--store, --no-store, LUAFLOW_STORE, XDG_STATE_HOME, HOME), `luaflow run`
-- going on with one WARNING when it cannot be opened, and luaflow runs
-- [list] / show / logs / prune over runs recorded with the luaflow.store
-- binding (tables and JSON).
local cli = require("cli")
local util = require("util")
local json = require("luaflow").json
local store = require("luaflow.store")
local has = util.has

local T0 = 1764400000 -- 2025-11-29 07:06:40 UTC

-- Records a finished run: tasks is a list of {name, state, seconds, extra fields}.
local function record(s, id, opts)
  local t0 = opts.started or T0
  local run = assert(s:begin_run{id = id, flow = opts.flow or "etl", script = opts.script or "/flows/etl.lua",
                                 parameters = opts.parameters or '{"day":"mon"}', executor = "Local",
                                 started = t0, ntasks = #(opts.tasks or {}), restart_of = opts.restart_of})
  run:transition{index = 0, seq = 1, name = opts.flow or "etl", old = "Pending", new = "Running",
                 message = "Running flow.", time = t0}
  local at = t0
  for i, t in ipairs(opts.tasks or {}) do
    run:transition{index = i, seq = 1, name = t[1], old = "Pending", new = "Running",
                   message = "Starting task run.", time = at}
    run:log{time = at + 0.001, level = t[2] == "Success" and "INFO" or "ERROR", logger = "luaflow.TaskRunner",
            message = ("Task '%s': Finished task run for task with final state: '%s'"):format(t[1], t[2])}
    run:transition{index = i, seq = 2, name = t[1], old = "Running", new = t[2],
                   message = t.message or (t[2] .. " message"), time = at + t[3]}
    run:task{index = i, name = t[1], state = t[2], run_count = t.run_count or 1, started = at,
             ended = at + t[3], message = t.message or (t[2] .. " message"), result = t.result,
             result_stored = t.result_stored}
    for k, child in ipairs(t.children or {}) do
      run:task{index = i, map_index = k, name = t[1], state = child, run_count = 1, started = at,
               ended = at + 0.01, message = child .. " child"}
    end
    at = at + t[3]
  end
  assert(run:finish{ended = opts.ended or (t0 + (opts.duration or 1.25)), state = opts.state or "Success",
                    message = opts.message or "All reference tasks succeeded.", exit_code = opts.exit_code or 0})
end

-- Three runs of two flows, oldest first.
local function three_runs(path)
  local s = assert(store.open(path, { create = true, record = true }))
  record(s, "11111111-aaaa-4aaa-8aaa-000000000001", {
    started = T0, duration = 185.2, state = "Failed", message = "Some reference tasks failed.", exit_code = 1,
    tasks = { { "extract", "Success", 0.5, result = "[1,2,3]" },
              { "double", "Mapped", 0.2, children = { "Success", "Failed" } },
              { "load", "TimedOut", 3, run_count = 3, message = "Task timed out\nafter 3 s" } } })
  record(s, "22222222-bbbb-4bbb-8bbb-000000000002", {
    flow = "report", started = T0 + 3600, duration = 0.85,
    tasks = { { "mail", "Success", 0.8, result = '{"sent":true}' } } })
  record(s, "22223333-cccc-4ccc-8ccc-000000000003", {
    started = T0 + 7200, duration = 1.25, restart_of = "11111111-aaaa-4aaa-8aaa-000000000001",
    tasks = { { "extract", "Cached", 0.01, result_stored = false }, { "double", "Success", 0.2 },
              { "load", "Success", 1, result = "null" } } })
  assert(s:close())
end

local function lines(text) return cli.lines(text) end

describe("luaflow runs", function()
  local dir, path, env

  before_each(function()
    dir = cli.tmpdir()
    path = dir .. "/runs.db"
    env = { TZ = "UTC", LUAFLOW_STORE = path, NO_COLOR = false }
  end)
  after_each(cli.cleanup)

  local function runs(args, extra)
    local e = {}
    for k, v in pairs(env) do e[k] = v end
    for k, v in pairs(extra or {}) do e[k] = v end
    return cli.run(args, { env = e })
  end

  describe("which store", function()
    it("is $XDG_STATE_HOME/luaflow/luaflow.db, else ~/.local/state/luaflow/luaflow.db", function()
      local xdg, home = dir .. "/xdg", dir .. "/home"
      three_runs(cli.tmpdir() .. "/unused.db") -- a store elsewhere changes nothing
      local s = assert(store.open(xdg .. "/luaflow/luaflow.db", { create = true, record = true }))
      record(s, "aaaa0000-0000-4000-8000-000000000000", { flow = "from-xdg" })
      assert(s:close())
      s = assert(store.open(home .. "/.local/state/luaflow/luaflow.db", { create = true, record = true }))
      record(s, "bbbb0000-0000-4000-8000-000000000000", { flow = "from-home" })
      assert(s:close())
      local r = runs({ "runs" }, { LUAFLOW_STORE = false, XDG_STATE_HOME = xdg, HOME = home })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_true(has(r.stdout, "from-xdg"), r.stdout)
      r = runs({ "runs" }, { LUAFLOW_STORE = false, XDG_STATE_HOME = false, HOME = home })
      assert.is_true(has(r.stdout, "from-home"), r.stdout)
      -- a relative XDG_STATE_HOME does not count (the XDG rule)
      r = runs({ "runs" }, { LUAFLOW_STORE = false, XDG_STATE_HOME = "rel", HOME = home })
      assert.is_true(has(r.stdout, "from-home"), r.stdout)
    end)

    it("is LUAFLOW_STORE over the default, and --store over both", function()
      three_runs(path)
      local other = dir .. "/other.db"
      local s = assert(store.open(other, { create = true, record = true }))
      record(s, "cccc0000-0000-4000-8000-000000000000", { flow = "other-flow" })
      assert(s:close())
      local r = runs({ "runs" }, { XDG_STATE_HOME = dir .. "/xdg" })
      assert.is_true(has(r.stdout, "report"), r.stdout)
      r = runs({ "runs", "--store", other })
      assert.is_true(has(r.stdout, "other-flow") and not has(r.stdout, "report"), r.stdout)
      r = runs({ "runs", "--store=" .. other, "--json" })
      assert.are.equal("other-flow", json.decode(r.stdout)[1].flow)
    end)

    it("says so when no run was recorded yet, and creates nothing", function()
      local r = runs({ "runs" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("No runs recorded in " .. path .. ".\n", r.stdout)
      assert.are.equal("[]\n", runs({ "runs", "--json" }).stdout)
      assert.is_nil(io.open(path))
      r = runs({ "runs", "show" })
      assert.are.equal(2, r.code)
      assert.are.equal("luaflow: no runs recorded in " .. path .. "\n", r.stderr)
    end)

    it("is an error (exit 2) for the readers when turned off", function()
      for _, case in ipairs({ { { "runs" }, { LUAFLOW_STORE = "off" }, "LUAFLOW_STORE=off" },
                              { { "runs", "--no-store" }, {}, "--no-store" },
                              { { "runs", "show", "last", "--no-store" }, {}, "--no-store" },
                              { { "graph", "x.lua", "--run", "last" }, { LUAFLOW_STORE = "OFF" }, "LUAFLOW_STORE=off" } }) do
        local r = runs(case[1], case[2])
        assert.are.equal(2, r.code, table.concat(case[1], " "))
        assert.are.equal("luaflow: no run store to read: it is turned off (" .. case[3] .. "); give --store PATH\n",
                         r.stderr)
      end
      local r = runs({ "runs", "--store", path, "--no-store" })
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, "--store and --no-store cannot be given together"), r.stderr)
    end)

    it("is one clear error (exit 2) when it cannot be read", function()
      local f = assert(io.open(path, "wb"))
      f:write(("not a database, not at all "):rep(100))
      f:close()
      for _, args in ipairs({ { "runs" }, { "runs", "show", "last" }, { "runs", "logs", "x" },
                              { "runs", "prune", "--keep", "1" } }) do
        local r = runs(args)
        assert.are.equal(2, r.code, r.stderr)
        assert.are.equal(1, #lines(r.stderr), r.stderr)
        assert.matches("^luaflow: [^\n]*" .. path:gsub("%p", "%%%0") .. " ", r.stderr)
        assert.are.equal("", r.stdout)
      end
      local r = runs({ "runs", "--store", dir })
      assert.are.equal(2, r.code)
      assert.are.equal("luaflow: run store " .. dir .. " is a directory, not a file\n", r.stderr)
    end)
  end)

  describe("luaflow run and its store", function()
    local flow = [[
local luaflow = require("luaflow")
return luaflow.Flow("f", function() luaflow.task(function() print("MARK-ran") end)() end)
]]

    it("opens (creating it 0600) the default store, or none with --no-store or LUAFLOW_STORE=off", function()
      local script = cli.write_flow(flow)
      local xdg = dir .. "/state"
      local db = xdg .. "/luaflow/luaflow.db"
      local r = cli.run({ "run", script }, { env = { XDG_STATE_HOME = xdg, LUAFLOW_STORE = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("MARK-ran\n", r.stdout)
      assert.are.equal(384, require("luaflow.core").file_mode(db)) -- 0600
      os.remove(db)
      r = cli.run({ "run", script, "--no-store" }, { env = { XDG_STATE_HOME = xdg, LUAFLOW_STORE = false } })
      assert.are.equal(0, r.code, r.stderr)
      r = cli.run({ "run", script }, { env = { XDG_STATE_HOME = xdg, LUAFLOW_STORE = "off" } })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_nil(io.open(db))
      r = cli.run({ "run", script, "--store", dir .. "/given.db" }, { env = { XDG_STATE_HOME = xdg } })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(io.open(dir .. "/given.db"))
      assert.is_nil(io.open(db))
    end)

    it("goes on with one WARNING when the store cannot be opened", function()
      local script = cli.write_flow(flow)
      local bad = dir .. "/bad.db"
      local f = assert(io.open(bad, "wb"))
      f:write(("garbage "):rep(200))
      f:close()
      for _, case in ipairs({ { "--store", bad, bad .. " is not a luaflow run store" },
                              { "--store", "/dev/null/x.db", "/dev/null/x.db" },
                              { "--store", dir, "run store " .. dir .. " is a directory" } }) do
        local r = cli.run({ "run", script, case[1], case[2] }, { env = { LUAFLOW_LOG_LEVEL = "WARNING" } })
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal("MARK-ran\n", r.stdout)
        local warning = lines(r.stderr)
        assert.are.equal(1, #warning, r.stderr)
        assert.matches("WARNING %- luaflow%.RunStore | .*" .. case[3]:gsub("%p", "%%%0"), warning[1])
        assert.is_true(has(warning[1], "; this run is not recorded"), warning[1])
      end
      local r = cli.run({ "run", script }, { env = { LUAFLOW_LOG_LEVEL = "WARNING", LUAFLOW_STORE = false,
                                                       XDG_STATE_HOME = false, HOME = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_true(has(r.stderr, "no place for the run store"), r.stderr)
    end)

    it("refuses --store with --no-store, and an empty --store, before anything runs", function()
      local script = cli.write_flow(flow)
      local r = cli.run({ "run", script, "--store", dir .. "/x.db", "--no-store" })
      assert.are.equal(2, r.code)
      assert.are.equal("", r.stdout)
      r = cli.run({ "run", script, "--store", "" })
      assert.are.equal(2, r.code)
      assert.is_true(has(r.stderr, "--store needs a path"), r.stderr)
      r = cli.run({ "run", script, "--no-progress", "--no-store" })
      assert.are.equal(0, r.code, r.stderr)
    end)
  end)

  describe("list", function()
    it("shows the runs newest first in aligned columns", function()
      three_runs(path)
      local r = runs({ "runs" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        "ID        FLOW    STARTED              DURATION  STATE    TASKS",
        "22223333  etl     2025-11-29 09:06:40     1.2 s  Success  2 Success, 1 Cached",
        "22222222  report  2025-11-29 08:06:40    850 ms  Success  1 Success",
        "11111111  etl     2025-11-29 07:06:40    3m 05s  Failed   2 Success, 1 Mapped, 1 Failed, 1 TimedOut",
      }, lines(r.stdout))
      assert.are.same(lines(r.stdout), lines(runs({ "runs", "list" }).stdout))
      assert.is_nil(r.stdout:find("\27", 1, true)) -- no colour in a pipe
    end)

    it("filters by flow, by state class (subclasses too) and limits", function()
      three_runs(path)
      local function ids(args)
        local list = {}
        for _, run in ipairs(json.decode(runs(args).stdout)) do list[#list + 1] = run.id:sub(1, 8) end
        return list
      end
      assert.are.same({ "22223333", "11111111" }, ids({ "runs", "--flow", "etl", "--json" }))
      assert.are.same({ "11111111" }, ids({ "runs", "--state", "Failed", "--json" }))
      assert.are.same({ "22223333", "22222222" }, ids({ "runs", "--state", "Success", "--json" }))
      assert.are.same({ "22223333" }, ids({ "runs", "--limit", "1", "--json" }))
      assert.are.same({}, ids({ "runs", "--state", "Crashed", "--json" }))
      assert.are.equal("No runs match.\n", runs({ "runs", "--flow", "nope" }).stdout)
      local r = runs({ "runs", "--state", "Broken" })
      assert.are.equal(2, r.code)
      assert.are.equal("luaflow: unknown state 'Broken' (a state class, Running or Crashed)\n", r.stderr)
      for _, bad in ipairs({ "0", "-1", "two", "1.5" }) do
        r = runs({ "runs", "--limit", bad })
        assert.are.equal(2, r.code, bad)
        assert.is_true(has(r.stderr, "--limit expects a whole number of 1 or more, got '" .. bad .. "'"), r.stderr)
      end
    end)

    it("writes a stable JSON array, keys in a fixed order", function()
      three_runs(path)
      local r = runs({ "runs", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      local first = lines(r.stdout)[1]
      assert.are.equal(1, #lines(r.stdout))
      local keys = {}
      for key in first:sub(1, first:find("}, {", 1, true)):gmatch('"([%w_]+)": ') do keys[#keys + 1] = key end
      assert.are.same({ "id", "flow", "state", "message", "started", "ended", "duration", "task_counts",
                        "Success", "Cached", "ntasks", "script", "parameters", "executor", "exit_code",
                        "restart_of", "pid", "host" }, keys)
      local list = json.decode(r.stdout)
      assert.are.equal(3, #list)
      local run = list[3]
      assert.are.equal("11111111-aaaa-4aaa-8aaa-000000000001", run.id)
      assert.are.equal("Failed", run.state)
      assert.are.equal("Some reference tasks failed.", run.message)
      assert.are.equal("2025-11-29T07:06:40.000000+00:00", run.started)
      assert.are.equal("2025-11-29T07:09:45.200000+00:00", run.ended)
      assert.is_true(math.abs(run.duration - 185.2) < 1e-6)
      assert.are.same({ Success = 2, Mapped = 1, Failed = 1, TimedOut = 1 }, run.task_counts)
      assert.are.same({ day = "mon" }, run.parameters)
      assert.are.equal(3, run.ntasks)
      assert.are.equal(1, run.exit_code)
      assert.are.equal(json.null, run.restart_of)
      assert.are.equal("11111111-aaaa-4aaa-8aaa-000000000001", list[1].restart_of)
    end)

    it("shows a run whose process died as Crashed, and one in progress as Running", function()
      local s = assert(store.open(path, { create = true, record = true }))
      local live = assert(s:begin_run{ id = "44444444-dddd-4ddd-8ddd-000000000004", flow = "live",
                                       started = os.time() - 65, ntasks = 2 })
      assert(s:flush())
      local child = cli.write_flow(([[
local store = require("luaflow.store")
local s = assert(store.open(%q, {record = true}))
local run = assert(s:begin_run{id = "55555555-eeee-4eee-8eee-000000000005", flow = "dead", started = 1764400000, ntasks = 1})
run:transition{index = 1, seq = 1, name = "t", old = "Pending", new = "Running", time = 1764400001}
assert(s:flush())
os.exit(0, false) -- no finish: the process is gone
]]):format(path))
      os.execute("lua5.4 " .. cli.quote(child))
      local r = runs({ "runs" })
      local text = r.stdout
      assert.matches("55555555  dead  2025%-11%-29 07:06:40         %-  Crashed  1 unfinished", text)
      assert.matches("44444444  live  [%d%- :]+  1m 0[5-9]s  Running  2 unfinished", text)
      assert.are.equal("Crashed", json.decode(runs({ "runs", "--state", "Crashed", "--json" }).stdout)[1].state)
      live:finish{ ended = os.time(), state = "Success" }
      assert(s:close())
    end)
  end)

  describe("show", function()
    it("shows one run by id, unique prefix or last, with its tasks and mapped children", function()
      three_runs(path)
      local r = runs({ "runs", "show", "1111" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        "Run         11111111-aaaa-4aaa-8aaa-000000000001",
        "Flow        etl (/flows/etl.lua)",
        "State       Failed: Some reference tasks failed.",
        "Started     2025-11-29 07:06:40",
        "Ended       2025-11-29 07:09:45 (3m 05s)",
        "Tasks       2 Success, 1 Mapped, 1 Failed, 1 TimedOut",
        'Parameters  {"day":"mon"}',
        "Executor    Local",
        "Exit code   1",
      }, { table.unpack(lines(r.stdout), 1, 9) })
      assert.matches("\nProcess     %d+ on ", r.stdout)
      local tail = { table.unpack(lines(r.stdout), 11) }
      assert.are.same({
        "",
        "TASK         STATE     RUNS  DURATION  MESSAGE",
        "extract      Success      1    500 ms  Success message",
        "double       Mapped       1    200 ms  Mapped message",
        "  double[1]  Success      1     10 ms  Success child",
        "  double[2]  Failed       1     10 ms  Failed child",
        "load         TimedOut     3     3.0 s  Task timed out after 3 s",
      }, tail)
      assert.are.same(lines(r.stdout), lines(runs({ "runs", "show", "11111111-aaaa-4aaa-8aaa-000000000001" }).stdout))
      local last = runs({ "runs", "show", "last" }).stdout
      assert.is_true(has(last, "22223333-cccc-4ccc-8ccc-000000000003"), last)
      assert.is_true(has(last, "Restart of  11111111-aaaa-4aaa-8aaa-000000000001"), last)
      assert.are.equal(last, runs({ "runs", "show" }).stdout)
    end)

    it("lists the runs an ambiguous prefix matches, and names an unknown id", function()
      three_runs(path)
      local r = runs({ "runs", "show", "2222" })
      assert.are.equal(2, r.code)
      assert.are.equal("", r.stdout)
      assert.is_true(has(r.stderr, "run id prefix '2222' is ambiguous: "), r.stderr)
      assert.is_true(has(r.stderr, "22222222-bbbb-4bbb-8bbb-000000000002 (report)"), r.stderr)
      assert.is_true(has(r.stderr, "22223333-cccc-4ccc-8ccc-000000000003 (etl)"), r.stderr)
      r = runs({ "runs", "show", "9999" })
      assert.are.equal(2, r.code)
      assert.are.equal("luaflow: no run '9999' in " .. path .. "\n", r.stderr)
    end)

    it("lists every transition with --transitions", function()
      three_runs(path)
      local r = runs({ "runs", "show", "2222222", "--transitions" })
      assert.are.equal(0, r.code, r.stderr)
      local text = r.stdout
      local at = assert(text:find("TIME                     OBJECT  TRANSITION          MESSAGE", 1, true), text)
      assert.are.same({
        "2025-11-29 08:06:40.000  report  Pending -> Running  Running flow.",
        "2025-11-29 08:06:40.000  mail    Pending -> Running  Starting task run.",
        "2025-11-29 08:06:40.800  mail    Running -> Success  Success message",
      }, { table.unpack(lines(text:sub(at)), 2) })
    end)

    it("lists the notification deliveries with --deliveries, in a table and in JSON", function()
      three_runs(path)
      local id = "22222222-bbbb-4bbb-8bbb-000000000002"
      local s = assert(store.open(path, { record = true }))
      assert(s:delivery{ run_id = id, transition_id = id .. "/1/2", notifier = "Slack notification for <Task: mail>",
                         destination = "https://hooks.slack.com:443", time = T0 + 3601, duration = 0.118, ok = true,
                         status = "HTTP 200" })
      assert(s:delivery{ run_id = id, notifier = "Email notification for <Task: mail>",
                         destination = "smtps://smtp.example.com:465", time = T0 + 3602, duration = 2.5, ok = false,
                         status = "SMTP via smtps://smtp.example.com:465 failed: Login denied" })
      assert(s:close())
      local r = runs({ "runs", "show", "2222222", "--deliveries" })
      assert.are.equal(0, r.code, r.stderr)
      local at = assert(r.stdout:find("TIME                     NOTIFICATION", 1, true), r.stdout)
      local rows = { table.unpack(lines(r.stdout:sub(at)), 2) }
      assert.are.equal(2, #rows, r.stdout)
      assert.is_truthy(rows[1]:find("^2025%-11%-29 08:06:41%.000  Slack notification for <Task: mail>  "
                                    .. "https://hooks%.slack%.com:443 +delivered +118 ms  HTTP 200$"), rows[1])
      assert.is_truthy(rows[2]:find("smtps://smtp.example.com:465  failed", 1, true), rows[2])
      assert.is_truthy(rows[2]:find("Login denied$"), rows[2])
      local doc = json.decode(runs({ "runs", "show", id, "--json", "--deliveries" }).stdout)
      assert.are.same({ time = "2025-11-29T08:06:41.000000+00:00", transition_id = id .. "/1/2",
                        notifier = "Slack notification for <Task: mail>", destination = "https://hooks.slack.com:443",
                        delivered = true, status = "HTTP 200", duration = 0.118 }, doc.deliveries[1])
      assert.is_false(doc.deliveries[2].delivered)
      assert.are.equal(json.null, doc.deliveries[2].transition_id)
      r = runs({ "runs", "show", "1111", "--deliveries" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_true(has(r.stdout, "No notification deliveries recorded."), r.stdout)
    end)

    it("writes the run, its tasks and transitions as one JSON object", function()
      three_runs(path)
      local r = runs({ "runs", "show", "last", "--json", "--transitions" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(1, #lines(r.stdout))
      assert.is_truthy(r.stdout:find('"host": "[^"]*", "tasks": %[{"index": 1, "map_index": null, "name": "extract", '
                                     .. '"state": "Cached", "message": "Cached message", "run_count": 1, "started": '))
      local doc = json.decode(r.stdout)
      assert.are.equal("22223333-cccc-4ccc-8ccc-000000000003", doc.id)
      assert.are.equal(3, #doc.tasks)
      local t = doc.tasks[1]
      assert.are.equal(json.null, t.result)
      assert.is_false(t.result_stored)
      assert.is_true(doc.tasks[3].result_stored)
      assert.are.equal(json.null, doc.tasks[3].result)
      assert.are.equal("2025-11-29T09:06:40.000000+00:00", t.started)
      assert.is_true(math.abs(doc.tasks[3].duration - 1) < 1e-6)
      assert.are.equal(7, #doc.transitions)
      assert.are.same({ index = 3, map_index = json.null, seq = 2, object = "load", old_state = "Running",
                        new_state = "Success", message = "Success message", time = "2025-11-29T09:06:41.210000+00:00" },
                      doc.transitions[7])
      doc = json.decode(runs({ "runs", "show", "1111", "--json" }).stdout)
      assert.are.same({ 1, 2, 3 }, doc.tasks[1].result)
      assert.are.same({ 2, 1, 2 }, { doc.tasks[3].index, doc.tasks[3].map_index, doc.tasks[4].map_index })
      assert.is_nil(doc.transitions)
    end)
  end)

  describe("logs", function()
    it("prints the lines as they were written on stderr, or as JSON", function()
      three_runs(path)
      local r = runs({ "runs", "logs", "2222222" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("[2025-11-29 08:06:40.001+0000] INFO - luaflow.TaskRunner | Task 'mail': Finished task run "
                       .. "for task with final state: 'Success'\n", r.stdout)
      local list = json.decode(runs({ "runs", "logs", "1111", "--json" }).stdout)
      assert.are.equal(3, #list)
      assert.are.same({ time = "2025-11-29T07:06:40.701000+00:00", level = "ERROR", logger = "luaflow.TaskRunner",
                        message = "Task 'load': Finished task run for task with final state: 'TimedOut'" }, list[3])
    end)
  end)

  describe("prune", function()
    local function count() return #json.decode(runs({ "runs", "--json" }).stdout) end

    it("keeps the N newest runs", function()
      three_runs(path)
      local r = runs({ "runs", "prune", "--keep", "1" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Deleted 2 runs from " .. path .. ".\n", r.stdout)
      assert.are.equal("22223333", json.decode(runs({ "runs", "--json" }).stdout)[1].id:sub(1, 8))
      assert.are.equal("Deleted 0 runs from " .. path .. ".\n", runs({ "runs", "prune", "--keep", "1" }).stdout)
      assert.are.equal(1, count())
    end)

    it("deletes the runs started before a date, a date and time, or an age", function()
      three_runs(path)
      assert.are.equal("Deleted 1 run from " .. path .. ".\n",
                       runs({ "runs", "prune", "--before", "2025-11-29T08:00:00Z" }).stdout)
      assert.are.equal(2, count())
      runs({ "runs", "prune", "--before", "2025-11-29 09:00" }) -- TZ=UTC: local is UTC
      assert.are.equal(1, count())
      runs({ "runs", "prune", "--before", "2025-11-29T10:06:40+01:00" })
      assert.are.equal(1, count()) -- 09:06:40 UTC: not before
      runs({ "runs", "prune", "--before", "1d" })
      assert.are.equal(0, count())
    end)

    it("wants one of --keep and --before, and says which DATE it cannot read", function()
      three_runs(path)
      for _, args in ipairs({ { "runs", "prune" }, { "runs", "prune", "--keep", "1", "--before", "1d" } }) do
        local r = runs(args)
        assert.are.equal(2, r.code)
        assert.is_true(has(r.stderr, "prune needs one of --keep N (the newest runs to keep) or --before DATE"),
                       r.stderr)
      end
      for _, bad in ipairs({ "yesterday", "2025-13-01", "2025-02-30", "2025-11-29T25:00", "2025-11-29X" }) do
        local r = runs({ "runs", "prune", "--before", bad })
        assert.are.equal(2, r.code, bad)
        assert.is_true(has(r.stderr, "--before: cannot read '" .. bad .. "' as a date"), r.stderr)
      end
      local r = runs({ "runs", "prune", "--keep", "-2" })
      assert.are.equal(2, r.code)
      assert.are.equal(3, count())
    end)

    it("has nothing to do without a store", function()
      local r = runs({ "runs", "prune", "--keep", "0" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("No runs recorded in " .. path .. ": nothing to prune.\n", r.stdout)
      assert.is_nil(io.open(path))
    end)
  end)

  describe("on a terminal", function()
    local has_script = os.execute("command -v script >/dev/null 2>&1")

    -- What `luaflow ARGS` writes on a pseudo-terminal.
    local function on_tty(args, extra)
      local words = { "env", "TZ=UTC", "LUAFLOW_STORE=" .. path }
      for k, v in pairs(extra or {}) do words[#words + 1] = k .. "=" .. v end
      words[#words + 1] = cli.bin
      for _, a in ipairs(args) do words[#words + 1] = a end
      for i, w in ipairs(words) do words[i] = cli.quote(w) end
      local out = cli.tmpname()
      os.execute(("env -u LD_PRELOAD -u NO_COLOR script -qec %s /dev/null </dev/null >%s 2>&1")
                 :format(cli.quote("stty cols 80; " .. table.concat(words, " ")), cli.quote(out)))
      return (cli.read(out) or ""):gsub("\r\n", "\n")
    end

    it("colours the states, cuts the last column to the width, and leaves colour out with NO_COLOR", function()
      if not has_script then return pending("script(1) is not installed") end
      three_runs(path)
      local text = on_tty({ "runs" })
      assert.is_true(has(text, "\27[31mFailed\27[0m"), text)
      assert.is_true(has(text, "\27[32mSuccess\27[0m"), text)
      for line in text:gmatch("[^\n]+") do
        assert.is_true(utf8.len((line:gsub("\27%[[%d;]*m", ""))) < 80, line)
      end
      assert.is_true(has(text, "..."), text)
      local plain = on_tty({ "runs" }, { NO_COLOR = "1" })
      assert.is_nil(plain:find("\27", 1, true))
      assert.is_true(has(plain, "Failed"), plain)
    end)
  end)
end)

describe("luaflow runs and graph output", function()
  after_each(cli.cleanup)

  it("is checked: a full disk is one error and exit 1", function()
    local dir = cli.tmpdir()
    local s = assert(store.open(dir .. "/r.db", { create = true, record = true }))
    record(s, "12345678-0000-4000-8000-000000000000", { tasks = { { "a", "Success", 1 } } })
    assert(s:close())
    local script = cli.write_flow('return require("luaflow").Flow("f", function() end)')
    for _, args in ipairs({ { "runs" }, { "runs", "--json" }, { "runs", "show" }, { "runs", "logs" },
                            { "graph", script } }) do
      local words = {}
      for i, a in ipairs(args) do words[i] = cli.quote(a) end
      local err = cli.tmpname()
      local ok, _, code = os.execute(("LUAFLOW_STORE=%s %s %s >/dev/full 2>%s"):format(
        cli.quote(dir .. "/r.db"), cli.quote(cli.bin), table.concat(words, " "), cli.quote(err)))
      assert.is_nil(ok, args[1])
      assert.are.equal(1, code, table.concat(args, " "))
      assert.are.equal("luaflow: cannot write to standard output: No space left on device\n", cli.read(err))
    end
  end)
end)

describe("luaflow runs sub-commands", function()
  it("names an unknown one, with a guess", function()
    local r = cli.run({ "runs", "shwo" })
    assert.are.equal(2, r.code)
    assert.are.equal("luaflow: unknown command 'runs shwo' (runs: list, show, logs, prune): did you mean "
                     .. "'runs show'? (see 'luaflow runs --help')\n", r.stderr)
    r = cli.run({ "runs show", "--help" })
    assert.are.equal(2, r.code) -- one word is not a command and its sub-command
    r = cli.run({ "help", "runs", "prune" })
    assert.are.equal(0, r.code)
    assert.is_true(has(r.stdout, "usage: luaflow runs prune"), r.stdout)
  end)
end)
