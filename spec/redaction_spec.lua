-- Secrets are hidden in every form luaflow itself gives them, on every
-- channel: log lines, CLI errors, engine-built and signal messages, --json
-- (keys, values, numbers, __tojson texts), notifier payloads and errors;
-- never in what the user's own code prints or sends. Where secrets come from
-- is secrets_spec.lua's.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local cli = require("cli")
local receiver = require("receiver")
local util = require("util")
local json = luaflow.json
local Task, Flow = luaflow.Task, luaflow.Flow
local N, signals = luaflow.notifications, luaflow.signals
local contains = util.has
local HOOK_PATH = "/hook/T000/B000/XXXXsecret"

local function run_one(t, secrets)
  local state = Flow{ name = "redaction", tasks = { t } }:run{ secrets = secrets }
  return state, state.result[t]
end

local bodies, json_lines, task_entry = util.bodies, util.json_lines, util.task_entry

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    for j = 3, 0, -1 do
      local k = (n >> (6 * j)) & 63
      out[#out + 1] = B64:sub(k + 1, k + 1)
    end
    if not b then out[#out - 1], out[#out] = "=", "=" elseif not c then out[#out] = "=" end
  end
  return table.concat(out)
end

-- The base64 characters that only s determines when it starts at byte offset
-- shift (0-2) of a group of three: what any base64 text holding s shows of it.
local function base64_core(s, shift)
  local enc = base64(("\0"):rep(shift) .. s .. "\0\0\0")
  local first = (8 * shift + 5) // 6
  local last = (8 * (shift + #s)) // 6 - 1
  return enc:sub(first + 1, last + 1)
end

local function url_encoded(s, lower, plus)
  local fmt = lower and "%%%02x" or "%%%02X"
  return (s:gsub("[^%w%-_%.~]", function(c)
    if c == " " and plus then return "+" end
    return fmt:format(c:byte())
  end))
end

-- Every form of s that must never be shown.
local function forms(s)
  local list = { s, json.encode(s):sub(2, -2), ("%q"):format(s):sub(2, -2),
                 ("%q"):format(s .. "1"):sub(2, -3) }
  for _, lower in ipairs({ false, true }) do
    for _, plus in ipairs({ false, true }) do list[#list + 1] = url_encoded(s, lower, plus) end
  end
  for shift = 0, 2 do list[#list + 1] = base64_core(s, shift) end
  return list
end

-- Asserts that text shows no form of any of the secrets.
local function assert_hidden(text, secrets, where)
  for _, s in ipairs(secrets) do
    for i, form in ipairs(forms(s)) do
      assert(not util.has(text, form),
             ("%s shows form %d of secret %q: %q"):format(where, i, s, form))
    end
  end
end

describe("redaction", function()
  after_each(function()
    receiver.stop_all()
    cli.cleanup()
  end)

  describe("core.redact", function()
    local A = 'qu"ote\\back%25pct\nnl-A' -- quote, backslash, percent, newline
    local B = "space word+/=?&#-B"
    local C = "ctl\1\tchar\127end9C"
    local D = "ünï-cødé-sécret-D"
    local E = "%s%d%%q-format-E"
    local ALL = { A, B, C, D, E }
    setup(function()
      for _, s in ipairs(ALL) do assert.is_true(core.add_secret(s)) end
    end)

    it("hides every form of every secret in one text", function()
      local parts = {}
      for _, s in ipairs(ALL) do
        for _, form in ipairs(forms(s)) do parts[#parts + 1] = "<" .. form .. ">" end
      end
      local text = table.concat(parts, " ")
      local shown = core.redact(text)
      assert_hidden(shown, ALL, "core.redact")
      assert.are.equal(#parts, util.count(shown, "****"), shown)
      assert.is_true(#shown <= #text)
    end)

    it("hides the base64 that SMTP AUTH sends, whatever the offset of a secret", function()
      local user, pass = "mail-user@example.org", 'p"a\\ss%word!'
      assert.is_true(core.add_secret(user))
      assert.is_true(core.add_secret(pass))
      for _, authzid in ipairs({ "", "x", "xy", "xyz" }) do
        local plain = base64(authzid .. "\0" .. user .. "\0" .. pass)
        local shown = core.redact("535 5.7.8 rejected " .. plain .. " done")
        assert_hidden(shown, { user, pass }, "AUTH PLAIN with authzid " .. authzid)
      end
      local login = core.redact("got " .. base64(user) .. " and " .. base64(pass))
      assert.are.equal("got ****" .. base64(user):match("=*$") .. " and ****" .. base64(pass):match("=*$"), login)
    end)

    it("leaves a text without secrets as it is", function()
      local text = ("nothing to hide here, 100% sure "):rep(1000)
      assert.are.equal(text, core.redact(text))
      assert.are.equal("", core.redact(""))
    end)

    it("makes overlapping, nested and adjacent secrets one ****", function()
      assert.is_true(core.add_secret("abcdef-overlap"))
      assert.is_true(core.add_secret("overlap-uvwxyz"))
      assert.is_true(core.add_secret("inner-secret"))
      assert.is_true(core.add_secret("outer-inner-secret-outer"))
      assert.are.equal("[****]", core.redact("[abcdef-overlap-uvwxyz]"))
      assert.are.equal("[****]", core.redact("[outer-inner-secret-outer]"))
      assert.are.equal("[****]", core.redact("[inner-secretabcdef-overlap]"))
    end)

    it("never leaves a secret that **** completes", function()
      assert.is_true(core.add_secret("zzzzzzzz"))
      assert.is_true(core.add_secret("a****b-star"))
      assert.are.equal("[****]", core.redact("[azzzzzzzzb-star]"))
    end)

    it("hides a secret in a text of several megabytes, anywhere", function()
      local big = ("x"):rep(3 << 20)
      local text = A .. big .. B .. big .. json.encode(C)
      local shown = core.redact(text)
      assert.are.equal(#big * 2 + 4 + 4 + #'"****"', #shown)
      assert_hidden(shown, ALL, "a long text")
    end)

    it("hides every string of a secret that holds a table of thousands", function()
      local values = {}
      for i = 1, 3000 do values["k" .. i] = ("value-%04d-of-a-big-secret"):format(i) end
      local t = luaflow.Task{ name = "t", fn = function()
        local v = luaflow.secrets.get("BIG")
        error(("%s %s %s"):format(v.k1, v.k1500, v.k3000), 0)
      end }
      local state = luaflow.Flow{ name = "big", tasks = { t } }:run{ secrets = { BIG = json.encode(values) } }
      assert.are.equal("Error during execution of task: **** **** ****", state.result[t].message)
      assert.are.equal("x ****", core.redact("x " .. values.k2999))
    end)

    it("refuses a value shorter than 6 bytes, which stays visible", function()
      assert.is_false(core.add_secret("12345"))
      assert.are.equal("pin 12345", core.redact("pin 12345"))
    end)
  end)

  describe("on every channel of a run", function()
    local SECRETS = {
      S1 = 'qu"ote\\back%25pct\nnl-1',
      S2 = "space word+/=?&#x-2",
      S3 = "ctl\1\tchar\127end9-3",
      S4 = "ünï-cødé-sécret-4",
      S5 = "%s%d%%q-format-5",
      NUM = "987654321",
    }
    local LIST = { SECRETS.S1, SECRETS.S2, SECRETS.S3, SECRETS.S4, SECRETS.S5, SECRETS.NUM }

    local SCRIPT = [[
local luaflow = require("luaflow")
local json = luaflow.json
local S = luaflow.secrets
local names = { "S1", "S2", "S3", "S4", "S5" }
-- every secret, in every form luaflow may print it
local function all()
  local t = {}
  for _, n in ipairs(names) do
    local s = S.get(n)
    local url = s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end)
    t[#t + 1] = table.concat({ s, json.encode(s), ("%q"):format(s), url, url:lower() }, " | ")
  end
  return table.concat(t, " || ") .. " || " .. tostring(S.get("NUM"))
end
local logs = luaflow.task{ name = "logs" }(function() luaflow.log.warning("log: " .. all()); return 1 end)
local errs = luaflow.task{ name = "errs" }(function() error("boom: " .. all(), 0) end)
local sig = luaflow.task{ name = "sig" }(function()
  local s = luaflow.signals.FAIL("signal: " .. all())
  s.token = S.get("S1")
  error(s)
end)
local res = luaflow.task{ name = "res" }(function()
  local t = {}
  for _, n in ipairs(names) do
    local v = S.get(n)
    t[v] = { v, nested = { deep = v .. "!" } }
  end
  t.number = S.get("NUM")
  t.tojson = setmetatable({}, { __tojson = function() return json.encode({ [S.get("S3")] = S.get("S1") }) end })
  return t
end)
local hook = luaflow.task{ name = "hook",
  state_handlers = { luaflow.notifications.webhook_notifier{ only_states = { "Failed" } } } }(function()
  local s = luaflow.signals.FAIL("hooked: " .. all())
  s.token = S.get("S4")
  error(s)
end)
luaflow.Flow("leaks", function() logs(); errs(); sig(); res(); hook() end):run()
error("script ends: " .. all(), 0)
]]

    it("shows none of them in logs, --json, messages, payloads or the CLI error", function()
      local r = receiver.start{ proto = "http" }
      local dir = cli.tmpdir()
      local values = { WEBHOOK_URL = r:url("/hook/path-is-a-secret") }
      for k, v in pairs(SECRETS) do values[k] = v end
      local secrets_path = cli.write_flow(json.encode(values), dir, "secrets.json")
      os.execute("chmod 600 " .. cli.quote(secrets_path))
      local out = dir .. "/run.json"
      local res = cli.run({ "run", cli.write_flow(SCRIPT, dir), "--json", out, "--secrets", secrets_path },
                          { env = { LUAFLOW_LOG_LEVEL = "DEBUG", XDG_STATE_HOME = dir } })
      assert.are.equal(2, res.code, res.stderr)
      assert_hidden(res.stderr, LIST, "stderr")
      assert_hidden(res.stdout, LIST, "stdout")
      assert.is_true(util.has(res.stderr, "log: ****"), res.stderr)
      assert.is_true(util.has(res.stderr, "luaflow: script ends: ****"), res.stderr)

      local text = cli.read(out)
      assert_hidden(text, LIST, "--json")
      assert.are.equal(1, util.count(text, "\n"))
      local line = json.decode(text)
      local by = {}
      for _, t in ipairs(line.tasks) do by[t.name] = t end
      assert.is_truthy(by.errs.message:find("^Error during execution of task: boom: %*%*%*%*"), by.errs.message)
      assert.is_truthy(by.sig.message:find("^signal: %*%*%*%*"), by.sig.message)
      local result = by.res.result
      assert.are.equal("****", result.number)
      assert.are.same({ ["****"] = "****" }, result.tojson)
      assert.are.equal("****", result["****"]["1"], text)
      assert.are.equal("****!", result["****"].nested.deep)

      local got = r:wait_for(1, 5)
      assert.are.equal(1, #got)
      assert_hidden(got[1].body, LIST, "the webhook payload")
      local payload = json.decode(got[1].body)
      assert.is_truthy(payload.new_state.message:find("^hooked: %*%*%*%*"), payload.new_state.message)
      assert.are.equal("****", payload.new_state.fields.token)
    end)

    it("shows none of the credentials an SMTP server echoes back (AUTH PLAIN and LOGIN)", function()
      local user, pass = "mailer-user@example.com", 'p"a\\ss%word!'
      for _, mech in ipairs({ "plain", "login" }) do
        local r = receiver.start{ proto = "smtp", mode = "auth-echo:" .. mech }
        local dir = cli.tmpdir()
        local path = cli.write_flow(([[
local luaflow = require("luaflow")
local N = luaflow.notifications
local t = luaflow.Task{ name = "mail", fn = function() return 1 end, state_handlers = {
  N.email_notifier{ smtp_url = %q, from = "flows@luaflow.test", to = "ops@example.org",
                    username_secret = "SMTP_USER", password_secret = "SMTP_PASSWORD", timeout = 5 } } }
return luaflow.Flow{ name = "mailer", tasks = { t } }
]]):format(r:url()), dir)
        local res = cli.run({ "run", path, "--json", "-" }, { env = {
          LUAFLOW_SECRET_SMTP_USER = user, LUAFLOW_SECRET_SMTP_PASSWORD = pass,
          LUAFLOW_LOG_LEVEL = "INFO", XDG_STATE_HOME = dir } })
        assert.are.equal(1, res.code, res.stderr)
        assert.is_true(util.has(res.stderr, "server said: 535 5.7.8 Authentication failed for"), res.stderr)
        local blobs = { base64(user), base64(pass), base64("\0" .. user .. "\0" .. pass) }
        for _, where in ipairs({ { "stderr", res.stderr }, { "--json", res.stdout } }) do
          assert_hidden(where[2], { user, pass }, mech .. " " .. where[1])
          for _, blob in ipairs(blobs) do
            assert.is_false(util.has(where[2], blob:sub(2, -3)), mech .. " " .. where[1] .. ": " .. where[2])
          end
        end
        local task = json.decode(res.stdout).tasks[1]
        assert.are.equal("Failed", task.state)
        assert.is_truthy(task.message:find("Authentication failed for %S*%*%*%*%*"), task.message)
      end
    end)
  end)

  describe("of a secret read in a run", function()
    local SECRET = "tok en/42:Xyz" -- has characters that URL-encoding changes
    local ENCODED = "tok%20en%2F42%3AXyz"

    it("hides a secret that was read from logs, --json, engine-built and signal messages, not from print", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local signals = luaflow.signals
local leak = luaflow.task{name = "leak"}(function()
  local s = luaflow.secrets.get("API_TOKEN")
  print("user print: " .. s)
  luaflow.log.info("user log: " .. s)
  error("cannot log in with " .. s, 0)
end)
local sig = luaflow.task{name = "sig"}(function()
  error(signals.FAIL("signal says " .. luaflow.secrets.get("API_TOKEN")))
end)
local enc = luaflow.task{name = "enc"}(function()
  local s = luaflow.secrets.get("API_TOKEN")
  local e = s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end)
  error("encoded " .. e, 0)
end)
return luaflow.Flow("redact", function() leak(); sig(); enc() end)
]])
      local out = cli.tmpdir() .. "/run.json"
      local res = cli.run({ "run", path, "--json", out, "--log-level", "DEBUG" },
        { env = { LUAFLOW_SECRET_API_TOKEN = SECRET, LUAFLOW_LOG_LEVEL = "DEBUG" } })
      assert.are.equal(1, res.code, res.stderr)
      assert.are.equal("user print: " .. SECRET .. "\n", res.stdout)
      assert.is_true(contains(res.stderr, "user log: ****"), res.stderr)
      assert.is_false(contains(res.stderr, SECRET), res.stderr)
      assert.is_false(contains(res.stderr, ENCODED), res.stderr)
      local text = cli.read(out)
      assert.is_false(contains(text, SECRET))
      assert.is_false(contains(text, ENCODED))
      local line = json.decode(text)
      assert.are.equal("Error during execution of task: cannot log in with ****", task_entry(line, "leak").message)
      assert.are.equal("signal says ****", task_entry(line, "sig").message)
      assert.are.equal("Error during execution of task: encoded ****", task_entry(line, "enc").message)
    end)

    it("hides a secret from CLI error messages", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
error("script failed with " .. luaflow.secrets.get("API_TOKEN"))
]])
      local res = cli.run({ "run", path }, { env = { LUAFLOW_SECRET_API_TOKEN = SECRET } })
      assert.are.equal(2, res.code)
      assert.is_true(contains(res.stderr, "script failed with ****"), res.stderr)
      assert.is_false(contains(res.stderr, SECRET), res.stderr)
    end)

    it("hides a secret from the states the engine builds and from notifier payloads", function()
      local r = receiver.start{ proto = "http" }
      local token = "pw-Zq81-secret"
      local t = Task{ name = "leaky", state_handlers = { N.slack_notifier{ only_states = { "Failed" } } },
                      fn = function() error(signals.FAIL("login as " .. luaflow.secrets.get("DB_PASSWORD"))) end }
      local u = Task{ name = "leaky2", state_handlers = { N.slack_notifier{ only_states = { "Failed" } } },
                      fn = function() error("db said " .. luaflow.secrets.get("DB_PASSWORD"), 0) end }
      local fs = Flow{ name = "redacted", tasks = { t, u } }:run{
        secrets = { DB_PASSWORD = token, SLACK_WEBHOOK_URL = r:url(HOOK_PATH) } }
      assert.are.equal('Failed("login as ****")', tostring(fs.result[t]))
      assert.are.equal('Failed("Error during execution of task: db said ****")', tostring(fs.result[u]))
      local got = r:wait_for(2, 2)
      assert.are.equal(2, #got)
      for _, rec in ipairs(got) do assert.is_false(contains(rec.body, token), rec.body) end
      local b1, b2 = table.unpack(bodies(got))
      assert.are.equal("login as ****", b1.attachments[1].fields[1].value)
      assert.are.equal("```db said ****```", b2.attachments[1].fields[1].value)
    end)

    it("never touches what the user's own code sends", function()
      local r = receiver.start{ proto = "http" }
      local token = "usr-token-abc123"
      local t = Task{ name = "sender", fn = function()
        local s = luaflow.secrets.get("USER_TOKEN")
        local res = luaflow.http.post(r:url("/api?token=" .. s), { body = "token=" .. s,
                                                                   headers = { ["X-Token"] = s } })
        return res.status
      end }
      local _, ts = run_one(t, { USER_TOKEN = token })
      assert.are.equal(200, ts.result)
      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      assert.are.equal("/api?token=" .. token, got[1].path)
      assert.are.equal("token=" .. token, got[1].body)
      assert.are.equal(token, got[1].headers["x-token"])
    end)

    it("a secret shorter than 6 characters draws exactly one WARNING and is not hidden", function()
      local path = cli.write_flow([[
local luaflow = require("luaflow")
local a = luaflow.task{name = "a"}(function() return luaflow.secrets.get("PIN") end)
local b = luaflow.task{name = "b"}(function() error("pin " .. luaflow.secrets.get("PIN"), 0) end)
return luaflow.Flow("short", function() a(); b() end)
]])
      local res = cli.run({ "run", path, "--json", "-", "--log-level", "WARNING" },
        { env = { LUAFLOW_SECRET_PIN = "zq7", LUAFLOW_LOG_LEVEL = "WARNING" } })
      assert.are.equal(1, res.code, res.stderr)
      local warnings = {}
      for _, l in ipairs(cli.lines(res.stderr)) do
        if contains(l, "WARNING") then warnings[#warnings + 1] = l end
      end
      assert.are.equal(1, #warnings, res.stderr)
      assert.is_true(contains(warnings[1], "PIN"), warnings[1])
      assert.are.equal("Error during execution of task: pin zq7", task_entry(json_lines(res.stdout)[1], "b").message)
    end)

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
  end)
end)
