-- The command line a new user meets in the first hour: --flow, --param-file,
-- check's listing, --help for every command, the hint for a missing secret,
-- and notifier failures that say what failed and how to fix it.
local cli = require("cli")
local util = require("util")
local receiver = require("receiver")
local luaflow = require("luaflow")
local has = util.has

local TWO_FLOWS = [[
local luaflow = require("luaflow")
local task = luaflow.task
local day = luaflow.Parameter("day")
local n = luaflow.Parameter("n", {default = 3})
local label = luaflow.Parameter("label", {required = false})
local f = task(function(x) return x * 10 end)
local total = task(function(xs) local s = 0; for _, v in ipairs(xs) do s = s + v end; return s end)
local daily = luaflow.Flow("daily", function()
  local t = total({f(1), f(n)})
  local c = task("cleanup", function() end)()
  t:set_upstream(c)
  task("show", function(v, d, l) print("DAILY", v, d, l) end)(t, day, label)
end)
local weekly = luaflow.Flow("weekly", function()
  task("report", function(d) print("WEEKLY", d) end)(day)
end)
]]

describe("luaflow run --flow NAME", function()
  after_each(cli.cleanup)

  it("runs the named flow among several", function()
    local path = cli.write_flow(TWO_FLOWS)
    local r = cli.run({ "run", path, "--flow", "weekly", "--param", "day=mon" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("WEEKLY\tmon\n", r.stdout)
  end)

  it("without it, several unrun flows are a usage error that suggests --flow", function()
    local r = cli.run({ "run", cli.write_flow(TWO_FLOWS) })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "choose one with --flow NAME"), r.stderr)
  end)

  it("an unknown name is a usage error listing the flows, with a guess", function()
    local path = cli.write_flow(TWO_FLOWS)
    local r = cli.run({ "run", path, "--flow", "wekly" })
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
    assert.is_true(has(r.stderr, "--flow wekly: " .. path .. " defines no flow of that name "
                               .. "(its flows: 'daily', 'weekly'): did you mean --flow weekly?"), r.stderr)
  end)

  it("does not run again a flow the script ran itself", function()
    local path = cli.write_flow(TWO_FLOWS .. "weekly:run{parameters = {day = 'sun'}}\n")
    local r = cli.run({ "run", path, "--flow", "weekly" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("WEEKLY\tsun\n", r.stdout)
  end)
end)

describe("luaflow run --param-file FILE", function()
  after_each(cli.cleanup)

  local function param_file(text)
    local path = cli.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
  end

  it("reads Parameter values from a JSON object; --param wins over it", function()
    local path = cli.write_flow(TWO_FLOWS)
    local file = param_file('{"day": "tue", "n": 5, "label": [1, 2]}')
    local r = cli.run({ "run", path, "--flow", "daily", "--param-file", file, "--json", "-" })
    assert.are.equal(0, r.code, r.stderr)
    local lines = cli.lines(r.stderr) -- print goes to stderr with --json -
    assert.are.equal("DAILY\t60\ttue\ttable", lines[1]:gsub(": 0x%x+", ""):match("^DAILY\t%d+\t%a+\t%a+"))
    r = cli.run({ "run", path, "--flow", "daily", "--param-file", file, "--param", "day=wed" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(has(r.stdout, "DAILY\t60\twed\t"), r.stdout)
  end)

  it("a name in the file that matches no Parameter stops the run like --param", function()
    local r = cli.run({ "run", cli.write_flow(TWO_FLOWS), "--flow", "weekly",
                        "--param-file", param_file('{"day": "x", "dya": 1}') })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "dya"), r.stderr)
  end)

  it("refuses a file that is missing, not JSON, or not an object", function()
    local path = cli.write_flow(TWO_FLOWS)
    for _, case in ipairs({
      { cli.tmpdir() .. "/none.json", "--param-file: cannot read" },
      { param_file("{day: 1}"), "is not valid JSON: " },
      { param_file("[1, 2]"), "must hold a JSON object of NAME: value pairs" },
      { param_file("3"), "must hold a JSON object of NAME: value pairs" },
    }) do
      local r = cli.run({ "run", path, "--param-file", case[1] })
      assert.are.equal(2, r.code)
      assert.are.equal("", r.stdout)
      assert.is_true(has(r.stderr, case[2]), r.stderr)
    end
  end)
end)

describe("luaflow check lists each flow", function()
  after_each(cli.cleanup)

  it("its tasks in run order, its edges and its Parameters with defaults and which are required", function()
    local path = cli.write_flow(TWO_FLOWS)
    local r = cli.run({ "check", path })
    assert.are.equal(0, r.code, r.stderr)
    local daily_required = luaflow.Parameter("probe-required")
    local required = tostring(luaflow._graph.parameters[daily_required].required)
    local day = required == "true" and "required" or "optional, no default"
    assert.are.equal(table.concat({
      "<Flow: name=daily>: 8 tasks, 7 edges",
      "  tasks, in run order:",
      "    1. f",
      "    2. n (Parameter)",
      "    3. f",
      "    4. cleanup",
      "    5. total",
      "    6. day (Parameter)",
      "    7. label (Parameter)",
      "    8. show",
      "  edges:",
      "    n -> f #3 (argument 1)",
      "    f #1 -> total (inside argument 1)",
      "    f #3 -> total (inside argument 1)",
      "    cleanup -> total (state only)",
      "    total -> show (argument 1)",
      "    day -> show (argument 2)",
      "    label -> show (argument 3)",
      "  parameters:",
      "    day: " .. day,
      "    label: optional, no default",
      "    n: default 3",
      "<Flow: name=weekly>: 2 tasks, 1 edge",
      "  tasks, in run order:",
      "    1. day (Parameter)",
      "    2. report",
      "  edges:",
      "    day -> report (argument 1)",
      "  parameters:",
      "    day: " .. day,
      path .. ": 2 flows OK",
      "",
    }, "\n"), r.stdout)
  end)

  it("--flow NAME lists that flow only", function()
    local path = cli.write_flow(TWO_FLOWS)
    local r = cli.run({ "check", path, "--flow", "weekly" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_false(has(r.stdout, "daily"))
    assert.is_true(has(r.stdout, path .. ": 1 flow OK"), r.stdout)
    r = cli.run({ "graph", path, "--flow", "weekly" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_false(has(r.stdout, "daily"))
    assert.is_true(has(r.stdout, 'digraph "weekly"'), r.stdout)
  end)
end)

describe("--help for every command", function()
  local commands = {
    run = { options = { "--flow", "--param", "--param-file", "--json", "--log-level", "--secrets",
                        "--no-input", "--resume", "--help" },
            env = { "LUAFLOW_LOG_LEVEL", "LUAFLOW_SECRET_<NAME>", "LUAFLOW_SECRETS_FILE", "NO_COLOR" } },
    check = { options = { "--flow", "--log-level", "--help" }, env = { "LUAFLOW_LOG_LEVEL" },
              says = "top-level code" },
    graph = { options = { "--flow", "--log-level", "--help" }, env = { "LUAFLOW_LOG_LEVEL" },
              says = "top-level code" },
  }
  for name, want in pairs(commands) do
    it(name .. " describes each option and the environment variables it reads", function()
      for _, args in ipairs({ { name, "--help" }, { name, "-h" }, { "help", name }, { name, "x.lua", "--help" } }) do
        local r = cli.run(args)
        assert.are.equal(0, r.code)
        assert.are.equal("", r.stderr)
        assert.is_true(has(r.stdout, "usage: luaflow " .. name), r.stdout)
        for _, opt in ipairs(want.options) do
          assert.matches("\n  [%-%w, ]-" .. opt:gsub("%-", "%%-") .. "[ ,=]", r.stdout, 1)
        end
        for _, var in ipairs(want.env) do assert.is_true(has(r.stdout, "\n  " .. var), var) end
        if want.says then assert.is_true(has(r.stdout, want.says), r.stdout) end
      end
    end)
  end

  it("every option a command accepts is in its --help", function()
    for name, options in pairs(require("luaflow.cli").OPTIONS) do
      local args = {}
      for word in name:gmatch("%S+") do args[#args + 1] = word end -- "runs show"
      args[#args + 1] = "--help"
      local text = cli.run(args).stdout
      assert.is_true(has(text, "usage: luaflow " .. name), name)
      for opt in pairs(options) do assert.is_true(has(text, "--" .. opt), name .. " --" .. opt) end
    end
  end)

  it("a usage error points at the command's --help; a typo gets a guess", function()
    local r = cli.run({ "check", "x.lua", "--flwo", "a" })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, "unknown option '--flwo' for 'check' (did you mean '--flow'?) "
                               .. "(see 'luaflow check --help')"), r.stderr)
    assert.are.equal(2, cli.run({ "help", "launch" }).code)
  end)
end)

describe("a missing secret", function()
  after_each(cli.cleanup)

  it("keeps its message, and the CLI adds one hint line naming the three ways to give it", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "notify", state_handlers = {luaflow.notifications.slack_notifier}}
return luaflow.Flow{name = "hooked", tasks = {t}}
]])
    local r = cli.run({ "run", path, "--json", "-" }, { env = { LUAFLOW_SECRET_SLACK_WEBHOOK_URL = false,
                                                               LUAFLOW_SECRETS_FILE = false } })
    assert.are.equal(1, r.code, r.stderr)
    local line = luaflow.json.decode(cli.lines(r.stdout)[1])
    assert.are.equal('Unexpected error while calling state handlers: Local Secret "SLACK_WEBHOOK_URL" was not found.',
                     line.tasks[1].message)
    local hints = {}
    for _, l in ipairs(cli.lines(r.stderr)) do
      if has(l, "hint:") then hints[#hints + 1] = l end
    end
    assert.are.same({ 'luaflow: hint: secret "SLACK_WEBHOOK_URL" was not found: set '
                      .. "LUAFLOW_SECRET_SLACK_WEBHOOK_URL, give --secrets FILE (a JSON object), "
                      .. "or pass flow:run{secrets = {SLACK_WEBHOOK_URL = ...}}" }, hints)
  end)

  it("keeps its exact text when the script runs the flow itself (no line of flow:run() in it)", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "notify", state_handlers = {luaflow.notifications.slack_notifier}}
local state = luaflow.Flow{name = "hooked", tasks = {t}}:run()
print(state.result[t].message)
]])
    local r = cli.run({ "run", path }, { env = { LUAFLOW_SECRET_SLACK_WEBHOOK_URL = false } })
    assert.are.equal(1, r.code, r.stderr)
    assert.are.equal('Unexpected error while calling state handlers: Local Secret "SLACK_WEBHOOK_URL" was not found.\n',
                     r.stdout)
  end)

  it("an embedding program gets the same hint through lf_engine_error", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "notify", state_handlers = {luaflow.notifications.webhook_notifier}}
return luaflow.Flow{name = "hooked", tasks = {t}}
]])
    local saved = cli.bin
    cli.bin = ("%s/%s/examples/run_flow"):format(cli.root, os.getenv("LUAFLOW_BUILD") or "build")
    local ok, r = pcall(cli.run, { path }, { env = { LUAFLOW_SECRET_WEBHOOK_URL = false } })
    cli.bin = saved
    assert(ok, r)
    assert.are.equal(1, r.code, r.stderr)
    assert.is_true(has(r.stderr, 'run_flow: hint: secret "WEBHOOK_URL" was not found: set LUAFLOW_SECRET_WEBHOOK_URL'),
                   r.stderr)
    assert.is_nil(r.stderr:find("luaflow/[%w_]+%.lua"), r.stderr)
  end)

  it("a name that is not an identifier gets its environment form and a quoted key", function()
    local path = cli.write_flow('local v = require("luaflow").secrets.get("slack-url")\n')
    local r = cli.run({ "run", path }, { env = { LUAFLOW_SECRET_SLACK_URL = false } })
    assert.are.equal(2, r.code)
    assert.is_true(has(r.stderr, path .. ':1: Local Secret "slack-url" was not found.'), r.stderr)
    assert.is_true(has(r.stderr, 'set LUAFLOW_SECRET_SLACK_URL, give --secrets FILE (a JSON object), '
                               .. 'or pass flow:run{secrets = {["slack-url"] = ...}}'), r.stderr)
  end)
end)

describe("notifier failures say what failed and how to fix it", function()
  local N = luaflow.notifications
  local Task, Flow = luaflow.Task, luaflow.Flow

  local function failed_message(handler, secrets)
    local t = Task{ name = "alerting", state_handlers = { handler } }
    local state = Flow{ name = "alerts", tasks = { t } }:run{ secrets = secrets }
    return state.result[t].message
  end

  it("an HTTP answer: the status and scheme://host:port, never the path, and a fix", function()
    for _, case in ipairs({
      { 404, "no webhook at that address: check the URL in secret \"SLACK_WEBHOOK_URL\" (it may have been revoked)" },
      { 403, "the service refused the request: check the URL in secret \"SLACK_WEBHOOK_URL\" and its permissions" },
      { 503, "the service failed: try again later (raise_on_error = false lets the task go on)" },
    }) do
      local r = receiver.start{ proto = "http", mode = "status:" .. case[1] }
      local msg = failed_message(N.slack_notifier, { SLACK_WEBHOOK_URL = r:url("/services/T000/B000/XXXXsecretpath") })
      r:stop()
      assert.are.equal(("Unexpected error while calling state handlers: Slack notification for <Task: alerting> "
                        .. "failed: HTTP %d from http://127.0.0.1:%d; %s"):format(case[1], r.port, case[2]), msg)
      assert.is_false(has(msg, "XXXXsecretpath"))
    end
  end)

  it("the webhook notifier names its own secret", function()
    local r = receiver.start{ proto = "http", mode = "status:410" }
    local msg = failed_message(N.webhook_notifier{ url_secret = "HOOK" }, { HOOK = r:url("/hook/abc") })
    r:stop()
    assert.is_true(has(msg, ("Webhook notification for <Task: alerting> failed: HTTP 410 from http://127.0.0.1:%d; "
                             .. "no webhook at that address: check the URL in secret \"HOOK\""):format(r.port)), msg)
  end)

  it("an SMTP rejection: the server's reply", function()
    local r = receiver.start{ proto = "smtp", mode = "reject" }
    local msg = failed_message(N.email_notifier{ smtp_url = r:url(), from = "a@b.test", to = "c@d.test" })
    r:stop()
    assert.is_true(has(msg, "Email notification for <Task: alerting> failed"), msg)
    assert.is_true(has(msg, "550 5.7.1 rejected"), msg)
    assert.is_true(has(msg, ("smtp://127.0.0.1:%d"):format(r.port)), msg)
  end)
end)
