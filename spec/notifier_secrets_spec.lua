-- Notifiers and the secrets they read: a number is text where text is needed,
-- raise_on_error = false covers every failure of a delivery, and no failure
-- shows a place inside luaflow's own code.
local luaflow = require("luaflow")
local receiver = require("receiver")
local cli = require("cli")
local N = luaflow.notifications
local Task, Flow = luaflow.Task, luaflow.Flow

local INTERNAL = "luaflow/[%w_]+%.lua:%d+"

local function run_one(t, secrets)
  local state = Flow{ name = "notify", tasks = { t } }:run{ secrets = secrets }
  return state, state.result[t]
end

local function mailer(r, extra)
  local opts = { smtp_url = r:url(), from = "flows@luaflow.test", to = "ops@example.org",
                 username_secret = "SMTP_USER", password_secret = "SMTP_PASS", only_states = { "Success" } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return N.email_notifier(opts)
end

describe("a numeric secret used by a notifier", function()
  after_each(function()
    receiver.stop_all()
    cli.cleanup()
  end)

  it("is sent as the text it was stored as (a JSON-decoded 1234 logs in as \"1234\")", function()
    local r = receiver.start{ proto = "smtp" }
    local t = Task{ name = "m", state_handlers = { mailer(r) } }
    local _, ts = run_one(t, { SMTP_USER = "4242", SMTP_PASS = "1234" })
    assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    local got = r:wait_for(1, 2)
    assert.are.equal(1, #got)
    assert.are.equal("4242", got[1].username)
    assert.are.equal("1234", got[1].password)
  end)

  it("keeps the exact text of a number (\"1.50\" stays \"1.50\")", function()
    local r = receiver.start{ proto = "smtp" }
    local t = Task{ name = "m", state_handlers = { mailer(r) } }
    run_one(t, { SMTP_USER = "someone", SMTP_PASS = "1.50" })
    local got = r:wait_for(1, 2)
    assert.are.equal("1.50", got[1].password)
  end)

  it("given as a Lua number is written as Lua writes it", function()
    local r = receiver.start{ proto = "smtp" }
    local t = Task{ name = "m", state_handlers = { mailer(r) } }
    local _, ts = run_one(t, { SMTP_USER = "someone", SMTP_PASS = 987654 })
    assert.is_true(ts:is_successful(), ts.message)
    assert.are.equal("987654", r:wait_for(1, 2)[1].password)
  end)

  it("works from the environment under luaflow run, with raise_on_error = false too", function()
    local r = receiver.start{ proto = "smtp" }
    local path = cli.write_flow(([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "m", state_handlers = {luaflow.notifications.email_notifier{
  smtp_url = %q, from = "a@luaflow.test", to = "b@luaflow.test", username_secret = "U",
  password_secret = "P", raise_on_error = false, only_states = {"Success"}}}}
return luaflow.Flow{name = "numeric", tasks = {t}}
]]):format(r:url()))
    local res = cli.run({ "run", path }, { env = { LUAFLOW_SECRET_U = "1234567", LUAFLOW_SECRET_P = "1234" } })
    assert.are.equal(0, res.code, res.stderr)
    local got = r:wait_for(1, 2)
    assert.are.equal(1, #got)
    assert.are.equal("1234567", got[1].username)
    assert.are.equal("1234", got[1].password)
    assert.is_nil(res.stderr:find("password must be a string", 1, true), res.stderr)
  end)

  it("that is neither text nor a number fails the delivery, naming the secret", function()
    local r = receiver.start{ proto = "smtp" }
    local t = Task{ name = "m", state_handlers = { mailer(r) } }
    local _, ts = run_one(t, { SMTP_USER = "someone", SMTP_PASS = '{"a": 1}' })
    assert.is_true(ts:is_failed())
    assert.is_truthy(ts.message:find('secret "SMTP_PASS"', 1, true), ts.message)
  end)
end)

describe("raise_on_error = false", function()
  after_each(function()
    receiver.stop_all()
    cli.cleanup()
  end)

  local function quiet_run(handler_source)
    local path = cli.write_flow(([[
local luaflow = require("luaflow")
local N = luaflow.notifications
local t = luaflow.Task{name = "quiet", fn = function() return 7 end, state_handlers = {%s}}
return luaflow.Flow{name = "tolerant", tasks = {t}}
]]):format(handler_source))
    return cli.run({ "run", path, "--log-level", "WARNING" })
  end

  it("covers a missing secret: the task succeeds and a WARNING names the notifier", function()
    local res = quiet_run('N.slack_notifier{webhook_secret = "NO_SUCH_SECRET", raise_on_error = false}')
    assert.are.equal(0, res.code, res.stderr)
    assert.is_truthy(res.stderr:find("WARNING", 1, true), res.stderr)
    assert.is_truthy(res.stderr:find("Slack notification for <Task: quiet> failed", 1, true), res.stderr)
    assert.is_truthy(res.stderr:find('Local Secret "NO_SUCH_SECRET" was not found.', 1, true), res.stderr)
  end)

  it("covers a bad value met at delivery time", function()
    local res = quiet_run('N.email_notifier{to = "x@luaflow.test", raise_on_error = false}')
    assert.are.equal(0, res.code, res.stderr)
    assert.is_truthy(res.stderr:find("Email notification for <Task: quiet> failed", 1, true), res.stderr)
    assert.is_nil(res.stderr:find(INTERNAL), res.stderr)
  end)

  it("covers a webhook that is down", function()
    local res = quiet_run('N.webhook_notifier{url_secret = "HOOK", raise_on_error = false}')
    assert.are.equal(0, res.code, res.stderr) -- HOOK is missing: a WARNING, no failure
    assert.is_truthy(res.stderr:find("Webhook notification for <Task: quiet> failed", 1, true), res.stderr)
  end)
end)

describe("a notifier's failure", function()
  it("shows no place inside luaflow's own code", function()
    -- a bad value is refused where the notifier is made, at the user's line
    local ok, err = pcall(N.email_notifier, { smtp_url = "smtp://127.0.0.1:9", to = "x@y.test", from = 5 })
    assert.is_false(ok)
    assert.is_nil(tostring(err):find(INTERNAL), err)
    -- a delivery that fails names the notifier and the task, not luaflow's code
    local t = Task{ name = "m", state_handlers = { N.email_notifier{ smtp_url = "smtp://127.0.0.1:9", to = "x@y.test",
                                                                    timeout = 2 } } }
    local _, ts = run_one(t, {})
    assert.is_true(ts:is_failed())
    assert.is_truthy(ts.message:find("Email notification for <Task: m> failed", 1, true), ts.message)
    assert.is_nil(ts.message:find(INTERNAL), ts.message)
    assert.is_nil(ts.message:find("smtp_send", 1, true), ts.message)
  end)
end)
