-- Notifications people can trust: final-only alerts, no storms (dedup,
-- digest), transition ids, visible deliveries, asynchronous delivery that
-- never blocks nor vanishes, and `luaflow notify test`. Against the real
-- loopback receivers (spec/support/receiver.lua), in process and through the
-- CLI.
--
-- Two facts come from the engine: luaflow.context.task_will_retry and
-- luaflow.context.transition_number. The specs that need the engine to give
-- them run once it does and are pending until then; the notifier side of
-- those rules is driven meanwhile through notifications._with_transition,
-- the seam `luaflow notify test` uses for its made-up transition.
local luaflow = require("luaflow")
local receiver = require("receiver")
local cli = require("cli")
local proc = require("proc")
local util = require("util")
local json = luaflow.json
local S = luaflow.states
local N = luaflow.notifications
local Task, Flow = luaflow.Task, luaflow.Flow
local sender = require("luaflow.core").http.sender
local has = util.has

local HOOK_PATH = "/hook/T000/B000/XXXXsecret"

local function bodies(records)
  local out = {}
  for i, rec in ipairs(records) do out[i] = json.decode(rec.body) end
  return out
end

local function sleep(seconds) os.execute("sleep " .. seconds) end

-- Lines of text that hold every one of the strings.
local function lines_with(text, ...)
  local found = {}
  for _, line in ipairs(cli.lines(text)) do
    local all = true
    for _, s in ipairs({ ... }) do all = all and has(line, s) end
    if all then found[#found + 1] = line end
  end
  return found
end

-- Runs fn() inside a task body of a flow that holds `others` too (so they
-- have their index), with secrets; returns the flow's state.
local function in_a_run(fn, secrets, others)
  local driver = Task{ name = "driver", fn = fn }
  local tasks = { driver }
  for _, t in ipairs(others or {}) do tasks[#tasks + 1] = t end
  return Flow{ name = "driven", tasks = tasks }:run{ secrets = secrets }
end

describe("notifications people can trust", function()
  after_each(function()
    N.flush()
    receiver.stop_all()
    cli.cleanup()
  end)

  -- ------------------------------------------------------------ final_only
  describe("final_only", function()
    it("skips a failure a retry follows and sends the last one (made-up transitions)", function()
      local r = receiver.start{ proto = "http" }
      local final = N.webhook_notifier{ url_secret = "HOOK", final_only = true }
      local every = N.webhook_notifier{ url_secret = "OTHER" }
      local target = Task{ name = "flaky" }
      in_a_run(function()
        for n, will_retry in ipairs({ true, true, false }) do
          N._with_transition({ task_will_retry = will_retry, transition_number = n }, function()
            final(target, S.Running(), S.Failed("boom " .. n))
            every(target, S.Running(), S.Failed("boom " .. n))
          end)
        end
        N._with_transition({ task_will_retry = false, transition_number = 4 }, function()
          final(target, S.Failed(), S.Success("done")) -- not a failure: sent
        end)
      end, { HOOK = r:url("/final"), OTHER = r:url("/every") }, { target })
      local got = r:wait_for(5, 2)
      local final_docs, every_docs = {}, {}
      for _, rec in ipairs(got) do
        local doc = json.decode(rec.body)
        table.insert(rec.path == "/final" and final_docs or every_docs, doc.new_state.message)
      end
      assert.are.same({ "boom 3", "done" }, final_docs)
      assert.are.same({ "boom 1", "boom 2", "boom 3" }, every_docs)
    end)

    it("callback_factory takes {final_only = true}", function()
      local calls = {}
      local h = N.callback_factory(function(_, s) calls[#calls + 1] = s.message end,
                                   function(s) return s:is_failed() end, { final_only = true })
      local t = Task{ name = "cb" }
      N._with_transition({ task_will_retry = true }, h, t, S.Running(), S.Failed("first"))
      N._with_transition({ task_will_retry = false }, h, t, S.Running(), S.Failed("last"))
      assert.are.same({ "last" }, calls)
      local ok, err = pcall(N.callback_factory, print, print, { final = true })
      assert.is_false(ok)
      assert.is_true(has(err, "unknown option 'final' for callback_factory"), err)
      assert.has_error(function() N.callback_factory(print, print, { final_only = "yes" }) end)
    end)

    it("checks its value and on_failure_final_only's, on every notifier", function()
      for _, name in ipairs({ "slack_notifier", "webhook_notifier", "email_notifier", "gmail_notifier" }) do
        assert.has_error(function() N[name]{ final_only = 1 } end,
                         name .. ": final_only must be true or false (got the number 1)")
      end
      assert.has_error(function() Task{ on_failure = print, on_failure_final_only = "yes" } end)
      assert.has_no.errors(function() Task{ on_failure = print, on_failure_final_only = true } end)
      assert.has_no.errors(function() Flow{ name = "f", on_failure = print, on_failure_final_only = true } end)
    end)

    it("a task that fails twice then succeeds notifies nothing; one out of retries notifies once", function()
      local r = receiver.start{ proto = "http" }
      local h = N.slack_notifier{ only_states = { "Failed" }, final_only = true }
      local failures = {}
      local function on_failure(obj) failures[#failures + 1] = obj.name end
      local recovers = Task{ name = "recovers", max_retries = 2, retry_delay = 0, state_handlers = { h },
                             on_failure = on_failure, on_failure_final_only = true, fn = function()
        if luaflow.context.task_run_count < 3 then error("not yet", 0) end
      end }
      local gives_up = Task{ name = "gives_up", max_retries = 2, retry_delay = 0, state_handlers = { h },
                             on_failure = on_failure, on_failure_final_only = true,
                             fn = function() error("never", 0) end }
      local fs = Flow{ name = "retried", tasks = { recovers, gives_up } }:run{
        secrets = { SLACK_WEBHOOK_URL = r:url(HOOK_PATH) } }
      assert.are.equal("Success", fs.result[recovers].name)
      assert.are.equal("Failed", fs.result[gives_up].name)
      local got = bodies(r:wait_for(2, 0.5))
      assert.are.equal(1, #got)
      assert.are.equal("gives_up is now in a Failed state", got[1].attachments[1].text)
      assert.are.same({ "gives_up" }, failures)
    end)
  end)

  -- ------------------------------------------------------------ dedup
  describe("dedup", function()
    it("delivers the same object, class and message once per window; the next says (and N similar)", function()
      local r = receiver.start{ proto = "http" }
      local window = 1.5
      local h = N.slack_notifier{ only_states = { "Failed" }, dedup = window }
      local t = Task{ name = "db", fn = function() error("connection refused", 0) end, state_handlers = { h } }
      local f = Flow{ name = "storm", tasks = { t } }
      local secrets = { SLACK_WEBHOOK_URL = r:url(HOOK_PATH) }
      local t0 = sender.monotonic()
      for _ = 1, 3 do f:run{ secrets = secrets } end
      assert.is_true(sender.monotonic() - t0 < window, "three runs took longer than the window")
      assert.are.equal(1, #r:requests())
      sleep(window - (sender.monotonic() - t0) + 0.1)
      f:run{ secrets = secrets }
      local got = bodies(r:wait_for(2, 2))
      assert.are.equal(2, #got)
      assert.are.equal("db is now in a Failed state", got[1].attachments[1].text)
      assert.are.equal("db is now in a Failed state (and 2 similar)", got[2].attachments[1].text)
      assert.are.equal("```connection refused```", got[2].attachments[1].fields[1].value)
    end)

    it("a different message, class or object is not similar", function()
      local r = receiver.start{ proto = "http" }
      local h = N.webhook_notifier{ url_secret = "HOOK", dedup = 60 }
      local n = 0
      local a = Task{ name = "a", state_handlers = { h }, fn = function()
        n = n + 1
        error(luaflow.signals.FAIL("attempt " .. n))
      end }
      local b = Task{ name = "b", state_handlers = { h }, fn = function() error(luaflow.signals.FAIL("attempt 1")) end }
      local f = Flow{ name = "varied", tasks = { a, b } }
      f:run{ secrets = { HOOK = r:url("/h") } }
      f:run{ secrets = { HOOK = r:url("/h") } }
      -- a: Running once (then similar), Failed twice (two messages); b: Running, Failed once
      local seen = {}
      for _, d in ipairs(bodies(r:wait_for(5, 1))) do
        seen[#seen + 1] = d.object.name .. " " .. d.new_state.class .. " " .. tostring(d.new_state.message)
        assert.is_nil(d.similar)
      end
      table.sort(seen)
      assert.are.same({ "a Failed attempt 1", "a Failed attempt 2", "a Running Starting task run.",
                        "b Failed attempt 1", "b Running Starting task run." }, seen)
    end)
  end)

  -- ------------------------------------------------------------ digest
  describe("digest", function()
    local function failing_tasks(n, h)
      local list = {}
      for i = 1, n do
        list[i] = Task{ name = ("t%02d"):format(i), state_handlers = { h },
                        fn = function() error(luaflow.signals.FAIL("broken " .. i)) end }
      end
      return list
    end

    it("Slack: one message, one attachment per state up to 20 and '… and N more', before flow:run returns", function()
      local r = receiver.start{ proto = "http" }
      local h = N.slack_notifier{ only_states = { "Failed" }, digest = 60 }
      local fs = Flow{ name = "many", tasks = failing_tasks(25, h) }:run{
        secrets = { SLACK_WEBHOOK_URL = r:url(HOOK_PATH) } }
      assert.are.equal("Failed", fs.name)
      -- the receiver logs a request before answering it: it is there once flow:run returned
      local got = r:requests()
      assert.are.equal(1, #got)
      sleep(0.2)
      assert.are.equal(1, #r:requests())
      local atts = json.decode(got[1].body).attachments
      assert.are.equal(21, #atts)
      for i = 1, 20 do
        assert.are.equal(("t%02d is now in a Failed state"):format(i), atts[i].text)
        assert.are.equal("Failed", atts[i].title)
        assert.are.equal("#eb0000", atts[i].color)
        assert.are.equal("broken " .. i, atts[i].fields[1].value)
      end
      assert.are.equal("… and 5 more", atts[21].text)
      assert.are.equal("… and 5 more", atts[21].fallback)
    end)

    it("webhook: {\"event\": \"digest\", \"items\": [...]}, each item a state_change document", function()
      local r = receiver.start{ proto = "http" }
      local h = N.webhook_notifier{ url_secret = "HOOK", only_states = { "Failed" }, digest = 60 }
      Flow{ name = "three", tasks = failing_tasks(3, h) }:run{ secrets = { HOOK = r:url("/hook") } }
      local got = r:requests()
      assert.are.equal(1, #got)
      local doc = json.decode(got[1].body)
      assert.are.equal("digest", doc.event)
      assert.are.equal("three", doc.flow.name)
      assert.are.equal(3, doc.count)
      assert.are.equal(3, #doc.items)
      for i, item in ipairs(doc.items) do
        assert.are.equal("state_change", item.event)
        assert.are.equal(("t%02d"):format(i), item.object.name)
        assert.are.equal("Failed", item.new_state.class)
        assert.are.equal(doc.flow.run_id, item.flow.run_id)
      end
    end)

    it("e-mail: one message listing them", function()
      local r = receiver.start{ proto = "smtp" }
      local h = N.email_notifier{ smtp_url = r:url(), from = "flows@luaflow.test", to = "ops@example.org",
                                  only_states = { "Failed" }, digest = 60 }
      Flow{ name = "mailed", tasks = failing_tasks(3, h) }:run()
      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      assert.is_true(has(got[1].data, "Subject: luaflow: 3 state changes in mailed\r\n"), got[1].data)
      for i = 1, 3 do
        assert.is_true(has(got[1].data, ("- t%02d is now in a Failed state: broken %d"):format(i, i)), got[1].data)
      end
    end)

    it("a window that is over goes out at the next state change; the rest when the run ends", function()
      local r = receiver.start{ proto = "http" }
      local h = N.webhook_notifier{ url_secret = "HOOK", only_states = { "Failed" }, digest = 0.3 }
      local a = Task{ name = "a", state_handlers = { h }, fn = function() error("a broke", 0) end }
      local b = Task{ name = "b", state_handlers = { h }, trigger = luaflow.triggers.always_run, fn = function()
        sleep(0.5) -- longer than the window opened by a's failure
        error("b broke", 0)
      end }
      local f = Flow{ name = "windows", tasks = { a, b } }
      f:add_edge(a, b)
      f:run{ secrets = { HOOK = r:url("/hook") } }
      local docs = bodies(r:requests())
      assert.are.equal(2, #docs)
      assert.are.equal("a", docs[1].items[1].object.name)
      assert.are.equal(1, docs[1].count)
      assert.are.equal("b", docs[2].items[1].object.name)
      assert.are.equal(1, docs[2].count)
    end)

    it("with async = true the digest is queued when the run ends", function()
      local r = receiver.start{ proto = "http" }
      local h = N.webhook_notifier{ url_secret = "HOOK", only_states = { "Failed" }, digest = 60, async = true }
      Flow{ name = "queued", tasks = failing_tasks(4, h) }:run{ secrets = { HOOK = r:url("/hook") } }
      N.flush()
      local docs = bodies(r:requests())
      assert.are.equal(1, #docs)
      assert.are.equal(4, docs[1].count)
    end)
  end)

  -- ------------------------------------------------------------ idempotency
  describe("transition ids", function()
    local FILE = [[
local luaflow = require("luaflow")
local n = luaflow.notifications
local t = luaflow.Task{name = "extract", state_handlers = {
  n.webhook_notifier{url_secret = "HOOK"},
  n.slack_notifier,
  n.email_notifier{smtp_url = os.getenv("SMTP"), from = "flows@luaflow.test", to = "ops@example.org"}}}
return luaflow.Flow{name = "etl", tasks = {luaflow.Task{name = "first"}, t}}
]]

    it("are in the webhook document, the Idempotency-Key header and the e-mail's Message-ID", function()
      local http, smtp = receiver.start{ proto = "http" }, receiver.start{ proto = "smtp" }
      local res = cli.run({ "notify", "test", cli.write_flow(FILE), "--task", "extract" }, { env = {
        LUAFLOW_SECRET_HOOK = http:url("/hook"), LUAFLOW_SECRET_SLACK_WEBHOOK_URL = http:url(HOOK_PATH),
        SMTP = smtp:url() } })
      assert.are.equal(0, res.code, res.stdout .. res.stderr)
      local got = http:wait_for(2, 2)
      assert.are.equal(2, #got)
      local doc = json.decode(got[1].body)
      local run_id = doc.flow.run_id
      -- <run id>/<object>/<n>: the task's index in its flow, its n-th transition
      assert.are.equal(run_id .. "/2/1", doc.transition_id)
      assert.are.equal(doc.transition_id, got[1].headers["idempotency-key"])
      assert.are.equal(doc.transition_id, got[2].headers["idempotency-key"])
      local mail = smtp:wait_for(1, 2)[1].data
      assert.is_truthy(mail:find("\r\nMessage%-ID: <" .. run_id:gsub("%-", "%%-") .. "/2/1@luaflow%.test>\r\n"), mail)
    end)

    it("are unique per transition and stable within a run (engine)", function()
      local r = receiver.start{ proto = "http" }
      local h = N.webhook_notifier{ url_secret = "HOOK" }
      local a = Task{ name = "a", max_retries = 1, retry_delay = 0, state_handlers = { h }, fn = function()
        if luaflow.context.task_run_count < 2 then error("once", 0) end
      end }
      local f = Flow{ name = "ids", tasks = { a }, state_handlers = { h } }
      f:run{ secrets = { HOOK = r:url("/h") } }
      f:run{ secrets = { HOOK = r:url("/h") } }
      local got = r:wait_for(16, 2)
      local seen, per_run = {}, {}
      for _, rec in ipairs(got) do
        local d = json.decode(rec.body)
        assert.are.equal(d.transition_id, rec.headers["idempotency-key"])
        assert.is_nil(seen[d.transition_id], d.transition_id)
        seen[d.transition_id] = true
        local run, object, n = d.transition_id:match("^(.+)/(%d+)/(%d+)$")
        assert.are.equal(d.flow.run_id, run)
        assert.are.equal(d.object.kind == "flow" and "0" or "1", object)
        local key = run .. object
        per_run[key] = (per_run[key] or 0) + 1
        assert.are.equal(per_run[key], tonumber(n))
      end
    end)
  end)

  -- ------------------------------------------------------------ visible deliveries
  describe("deliveries are visible", function()
    local FILE = [[
local luaflow = require("luaflow")
local n = luaflow.notifications
local t = luaflow.Task{name = "job", state_handlers = {
  n.slack_notifier{only_states = {"Success"}},
  n.webhook_notifier{url_secret = "BAD_HOOK", only_states = {"Success"}, raise_on_error = false},
  n.email_notifier{smtp_url = os.getenv("SMTP"), from = "flows@luaflow.test", to = "ops@example.org",
                   only_states = {"Success"}}}}
return luaflow.Flow{name = "visible", tasks = {t}}
]]

    it("one log line each: notifier, scheme://host:port, status or SMTP reply, duration", function()
      local ok, bad, smtp = receiver.start{ proto = "http" }, receiver.start{ proto = "http", mode = "status:500" },
                            receiver.start{ proto = "smtp" }
      local res = cli.run({ "run", cli.write_flow(FILE) }, { env = {
        LUAFLOW_LOG_LEVEL = "INFO", LUAFLOW_SECRET_SLACK_WEBHOOK_URL = ok:url(HOOK_PATH),
        LUAFLOW_SECRET_BAD_HOOK = bad:url("/bad/XXXXsecret"), SMTP = smtp:url() } })
      assert.are.equal(0, res.code, res.stderr)
      local slack = lines_with(res.stderr, "INFO", "Slack notification for <Task: job> delivered to "
                                            .. ok:url(""):gsub("/$", "") .. ": HTTP 200 (")
      assert.are.equal(1, #slack, res.stderr)
      assert.is_truthy(slack[1]:match("%(%d+%.%d%d%d s%)$"), slack[1])
      local hook = lines_with(res.stderr, "WARNING", "Webhook notification for <Task: job> failed: HTTP 500 from http://127.0.0.1:"
                                           .. bad.port)
      assert.are.equal(1, #hook, res.stderr)
      local mail = lines_with(res.stderr, "INFO", "Email notification for <Task: job> delivered to smtp://127.0.0.1:"
                                           .. smtp.port .. ": 250 ")
      assert.are.equal(1, #mail, res.stderr)
      assert.is_false(has(res.stderr, "XXXXsecret"))
    end)

    it("are recorded in the run store", function()
      local store = require("luaflow.store")
      local dir = cli.tmpdir()
      local s = assert(store.open(dir .. "/runs.db", { create = true, record = true }))
      s:record_deliveries()
      local ok, bad = receiver.start{ proto = "http" }, receiver.start{ proto = "http", mode = "status:503" }
      local run_id
      -- until runs are recorded by the engine, the flow's first handler records its run
      local begin = function(flow, _, new)
        if new:is_running() then
          run_id = luaflow.context.flow_run_id
          assert(s:begin_run{ id = run_id, flow = flow.name, started = os.time() })
        end
      end
      local t = Task{ name = "job", state_handlers = {
        N.slack_notifier{ only_states = { "Success" } },
        N.webhook_notifier{ url_secret = "BAD", only_states = { "Success" }, raise_on_error = false } } }
      Flow{ name = "recorded", tasks = { t }, state_handlers = { begin } }:run{
        secrets = { SLACK_WEBHOOK_URL = ok:url(HOOK_PATH), BAD = bad:url("/bad/XXXXsecret") } }
      assert(s:flush())
      local rows = s:deliveries(run_id)
      assert.are.equal(2, #rows)
      assert.are.equal("Slack notification for <Task: job>", rows[1].notifier)
      assert.are.equal(("http://127.0.0.1:%d"):format(ok.port), rows[1].destination)
      assert.is_true(rows[1].ok)
      assert.are.equal("HTTP 200", rows[1].status)
      assert.is_true(rows[1].duration >= 0)
      assert.are.equal("Webhook notification for <Task: job>", rows[2].notifier)
      assert.is_false(rows[2].ok)
      assert.is_true(has(rows[2].status, "HTTP 503 from http://127.0.0.1:" .. bad.port), rows[2].status)
      for _, row in ipairs(rows) do
        assert.is_false(has(json.encode(row), "XXXXsecret"))
        assert.is_true(row.transition_id == "" or has(row.transition_id, run_id .. "/1/"), row.transition_id)
      end
      s:record_deliveries(false)
      s:close()
    end)
  end)

  -- ------------------------------------------------------------ async
  describe("async = true", function()
    it("a notifier blocked for 10 s does not slow the flow: the next task runs while it waits", function()
      local r = receiver.start{ proto = "http", mode = "slow:10" }
      local delivered0, failed0 = sender.totals()
      local seen = {}
      local a = Task{ name = "a", state_handlers = {
        N.slack_notifier{ async = true, only_states = { "Success" }, deliver_within = 1.5 } } }
      local b = Task{ name = "b", fn = function()
        seen.pending = sender.pending()
        seen.delivered = sender.totals() - delivered0
      end }
      local f = Flow{ name = "unblocked", tasks = { a, b } }
      f:add_edge(a, b)
      local fs = f:run{ secrets = { SLACK_WEBHOOK_URL = r:url(HOOK_PATH) } }
      assert.are.equal("Success", fs.name)
      -- b ran, and flow:run returned, while the delivery was still waiting for its answer
      assert.are.same({ pending = 1, delivered = 0 }, seen)
      assert.are.equal(1, sender.pending())
      r:stop() -- the receiver goes: the delivery fails, is retried, and is given up in time
      assert.are.equal(1, N.flush())
      local delivered, failed = sender.totals()
      assert.are.equal(delivered0, delivered)
      assert.are.equal(failed0 + 1, failed)
      assert.are.equal("Success", fs.result[a].name)
    end)

    local function async_flow(notifier_opts)
      return ([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "job", fn = function() return 42 end, state_handlers = {
  luaflow.notifications.slack_notifier{async = true, only_states = {"Success"}, %s}}}
return luaflow.Flow{name = "async", tasks = {t}}
]]):format(notifier_opts or "")
    end

    local function run_async(r, opts, extra_env)
      local env = { LUAFLOW_LOG_LEVEL = "INFO", LUAFLOW_SECRET_SLACK_WEBHOOK_URL = r and r:url(HOOK_PATH)
                    or "http://127.0.0.1:9/hook/XXXXsecret" }
      for k, v in pairs(extra_env or {}) do env[k] = v end
      return cli.run({ "run", cli.write_flow(async_flow(opts)), "--json", "-" }, { env = env })
    end

    it("a receiver answering 500: retried with backoff, then ERROR; the task stays Success, exit 0", function()
      local r = receiver.start{ proto = "http", mode = "status:500" }
      local res = run_async(r, "deliver_within = 2")
      assert.are.equal(0, res.code, res.stderr)
      local line = json.decode(cli.lines(res.stdout)[1])
      assert.are.equal("Success", line.state)
      assert.are.equal("Success", line.tasks[1].state)
      local retries = lines_with(res.stderr, "WARNING", "Slack notification for <Task: job> failed: HTTP 500", "next in")
      assert.is_true(#retries >= 1, res.stderr)
      assert.are.equal(#retries + 1, #r:requests())
      local final = lines_with(res.stderr, "ERROR", "Slack notification for <Task: job> failed: HTTP 500 from",
                               "not delivered within 2 s")
      assert.are.equal(1, #final, res.stderr)
      assert.is_truthy(final[1]:match(", %d+ attempts%)$"), final[1])
      -- the process waited for the delivery's outcome before it exited
      assert.is_true(has(res.stderr, "waiting for 1 notification delivery"), res.stderr)
    end)

    it("retries until the receiver takes it: delivered on the third attempt", function()
      local r = receiver.start{ proto = "http", mode = "fail-first:2" }
      local res = run_async(r, "deliver_within = 30")
      assert.are.equal(0, res.code, res.stderr)
      assert.are.equal(3, #r:requests())
      local done = lines_with(res.stderr, "INFO", "Slack notification for <Task: job> delivered to", "HTTP 200", "3 attempts)")
      assert.are.equal(1, #done, res.stderr)
      local keys = {}
      for _, rec in ipairs(r:requests()) do keys[rec.headers["idempotency-key"] or "none"] = true end
      assert.are.equal(1, #(function() local l = {} for k in pairs(keys) do l[#l + 1] = k end return l end)())
    end)

    it("honours Retry-After", function()
      local r = receiver.start{ proto = "http", mode = "retry-after:2" }
      local res = run_async(r, "deliver_within = 3")
      assert.are.equal(0, res.code, res.stderr)
      -- attempts at 0 s and 2 s; the next would be at 4 s, past deliver_within
      assert.are.equal(2, #r:requests())
      assert.are.equal(1, #lines_with(res.stderr, "ERROR", "HTTP 503", "2 attempts)"), res.stderr)
    end)

    it("a receiver that is down: ERROR once given up, the run unaffected", function()
      local res = run_async(nil, "deliver_within = 1")
      assert.are.equal(0, res.code, res.stderr)
      local final = lines_with(res.stderr, "ERROR", "Slack notification for <Task: job> failed: POST to http://127.0.0.1:9 failed")
      assert.are.equal(1, #final, res.stderr)
      assert.is_false(has(res.stderr, "XXXXsecret"))
    end)

    it("e-mail too: an SMTP 4xx is retried, the server's reply logged", function()
      local r = receiver.start{ proto = "smtp", mode = "fail-first:1" }
      local res = cli.run({ "run", cli.write_flow(([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "job", state_handlers = {
  luaflow.notifications.email_notifier{async = true, only_states = {"Success"}, smtp_url = %q,
                                       from = "flows@luaflow.test", to = "ops@example.org"}}}
return luaflow.Flow{name = "mail", tasks = {t}}
]]):format(r:url())) }, { env = { LUAFLOW_LOG_LEVEL = "INFO" } })
      assert.are.equal(0, res.code, res.stderr)
      assert.are.equal(1, #r:requests())
      assert.are.equal(1, #lines_with(res.stderr, "WARNING", "451 4.3.0 try again later", "attempt 1;"), res.stderr)
      assert.are.equal(1, #lines_with(res.stderr, "INFO", "Email notification for <Task: job> delivered to smtp://127.0.0.1:"
                                       .. r.port .. ": 250", "2 attempts)"), res.stderr)
    end)

    it("SIGTERM while waiting at exit: one last bounded attempt, then recorded as not delivered", function()
      local r = receiver.start{ proto = "http", mode = "slow:30" }
      local h = proc.spawn(async_flow("deliver_within = 60, timeout = 30"), { env = {
        LUAFLOW_LOG_LEVEL = "INFO", LUAFLOW_SECRET_SLACK_WEBHOOK_URL = r:url(HOOK_PATH) } })
      assert.is_truthy(proc.wait_until(function() return has(proc.stderr(h), "waiting for 1 notification delivery") end,
                                       10 * proc.SLACK), proc.detail(h))
      local code = proc.signal(h, "TERM", 10)
      assert.are.equal(143, code, proc.detail(h))
      local err = proc.stderr(h)
      assert.are.equal(1, #lines_with(err, "WARNING", "interrupted: 1 notification delivery gets one last attempt"), err)
      assert.are.equal(1, #lines_with(err, "ERROR", "Slack notification for <Task: job> failed:", "interrupted"), err)
      assert.are.equal("Success", proc.json_runs(h)[1].state)
    end)

    it("waits in the run store's outbox until its outcome, naming its secret, never holding it", function()
      local store = require("luaflow.store")
      local dir = cli.tmpdir()
      local s = assert(store.open(dir .. "/runs.db", { create = true, record = true }))
      s:record_deliveries()
      local r = receiver.start{ proto = "http", mode = "slow:1" }
      local t = Task{ name = "job", state_handlers = { N.slack_notifier{ async = true, only_states = { "Success" } } } }
      Flow{ name = "outboxed", tasks = { t } }:run{ secrets = { SLACK_WEBHOOK_URL = r:url(HOOK_PATH) } }
      assert(s:flush())
      local waiting = s:outbox()
      assert.are.equal(1, #waiting)
      local payload = json.decode(waiting[1].payload)
      assert.are.equal("http", payload.kind)
      assert.are.equal("SLACK_WEBHOOK_URL", payload.url_secret)
      assert.are.equal("application/json", payload.headers["Content-Type"])
      assert.are.equal("job is now in a Success state", json.decode(payload.body).attachments[1].text)
      assert.are.equal(("http://127.0.0.1:%d"):format(r.port), waiting[1].destination)
      assert.are.equal("Slack notification for <Task: job>", waiting[1].notifier)
      assert.is_true(waiting[1].deliver_by > waiting[1].created)
      assert.is_false(has(json.encode(waiting), "XXXXsecret"))
      N.flush()
      assert(s:flush())
      assert.are.same({}, s:outbox())
      s:record_deliveries(false)
      s:close()
    end)

    it("checks deliver_within and async", function()
      assert.has_error(function() N.slack_notifier{ async = "yes" } end,
                       "slack_notifier: async must be true or false (got the string \"yes\")")
      assert.has_error(function() N.webhook_notifier{ deliver_within = 0 } end,
                       "webhook_notifier: deliver_within must be a number of seconds > 0 (got the number 0)")
      assert.has_error(function() N.email_notifier{ dedup = -1 } end,
                       "email_notifier: dedup must be a number of seconds > 0 (got the number -1)")
      assert.has_error(function() N.slack_notifier{ digest = "1m" } end)
    end)
  end)

  -- ------------------------------------------------------------ notify test
  describe("luaflow notify test", function()
    local FILE = [[
local luaflow = require("luaflow")
local n = luaflow.notifications
local t = luaflow.Task{name = "extract", fn = function() print("THE TASK RAN") end,
  on_failure = function(obj, state) print("on_failure: " .. obj.name .. " " .. state.name) end,
  on_failure_final_only = true,
  state_handlers = {n.slack_notifier{only_states = {"Failed"}, %s}}}
local quiet = luaflow.Task{name = "quiet"}
print("top-level code runs")
return luaflow.Flow{name = "etl", tasks = {t, quiet},
                    state_handlers = {n.webhook_notifier{url_secret = "HOOK"}}}
]]

    local function notify(r, args, opts)
      local path = cli.write_flow(FILE:format(opts or ""))
      local argv = { "notify", "test", path }
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      return cli.run(argv, { env = { LUAFLOW_LOG_LEVEL = "INFO",
        LUAFLOW_SECRET_SLACK_WEBHOOK_URL = r:url(HOOK_PATH), LUAFLOW_SECRET_HOOK = r:url("/flow-hook") } })
    end

    it("calls a task's handlers with Running -> Failed(...) and exits 0 when the delivery succeeded", function()
      local r = receiver.start{ proto = "http" }
      local res = notify(r, { "--task", "extract" })
      assert.are.equal(0, res.code, res.stdout .. res.stderr)
      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      local att = json.decode(got[1].body).attachments[1]
      assert.are.equal("extract is now in a Failed state", att.text)
      assert.are.equal("This is a test notification from luaflow", att.fields[1].value)
      assert.is_false(has(res.stdout, "THE TASK RAN"))
      assert.is_true(has(res.stdout, "top-level code runs"))
      assert.is_true(has(res.stdout, "on_failure: extract Failed"), res.stdout)
      assert.is_true(has(res.stdout, "delivered: Slack notification for <Task: extract>: HTTP 200"), res.stdout)
      assert.are.equal(1, #lines_with(res.stderr, "INFO", "Slack notification for <Task: extract> delivered to"),
                       res.stderr)
    end)

    it("--state CLASS; without --task, the flow's handlers", function()
      local r = receiver.start{ proto = "http" }
      local res = notify(r, { "--state", "TimedOut" })
      assert.are.equal(0, res.code, res.stdout .. res.stderr)
      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      assert.are.equal("/flow-hook", got[1].path)
      local doc = json.decode(got[1].body)
      assert.are.same({ kind = "flow", name = "etl" }, doc.object)
      assert.are.same({ class = "Running", message = json.null }, doc.old_state)
      assert.are.equal("TimedOut", doc.new_state.class)
      assert.are.equal("This is a test notification from luaflow", doc.new_state.message)
      assert.are.equal(doc.flow.run_id .. "/0/1", doc.transition_id)
    end)

    it("async, digest and dedup step aside: the alert goes out at once", function()
      local r = receiver.start{ proto = "http" }
      local res = notify(r, { "--task", "extract" }, "async = true, digest = 600, dedup = 600")
      assert.are.equal(0, res.code, res.stdout .. res.stderr)
      assert.are.equal(1, #r:requests())
      assert.are.equal("extract is now in a Failed state",
                       json.decode(r:requests()[1].body).attachments[1].text)
    end)

    it("exits 1 when a delivery failed, raise_on_error = false or not", function()
      local r = receiver.start{ proto = "http", mode = "status:500" }
      for _, opts in ipairs({ "", "raise_on_error = false" }) do
        local res = notify(r, { "--task", "extract" }, opts)
        assert.are.equal(1, res.code, res.stdout .. res.stderr)
        assert.is_true(has(res.stdout, "FAILED: Slack notification for <Task: extract>: HTTP 500 from"), res.stdout)
        assert.is_true(has(res.stdout, "notify test: 1 of 1 failed"), res.stdout)
      end
    end)

    it("a state the notifiers do not send, a task without handlers, unknown names", function()
      local r = receiver.start{ proto = "http" }
      local res = notify(r, { "--task", "extract", "--state", "Success" })
      assert.are.equal(0, res.code, res.stdout .. res.stderr)
      assert.is_true(has(res.stdout, "no notifier sent anything for a Success state"), res.stdout)
      assert.are.equal(0, #r:requests())
      res = notify(r, { "--task", "quiet" })
      assert.are.equal(1, res.code)
      assert.is_true(has(res.stdout, "<Task: quiet> has no state handlers"), res.stdout)
      res = notify(r, { "--task", "extrct" })
      assert.are.equal(2, res.code)
      assert.is_true(has(res.stderr, "--task extrct: ") and has(res.stderr, "(did you mean --task extract?)"), res.stderr)
      res = notify(r, { "--state", "Faild" })
      assert.are.equal(2, res.code)
      assert.is_true(has(res.stderr, "--state Faild: no state class of that name (did you mean Failed?)"), res.stderr)
      res = cli.run({ "notify", "send", "x.lua" })
      assert.are.equal(2, res.code)
      assert.is_true(has(res.stderr, "unknown command 'notify send' (notify: test)"), res.stderr)
      res = cli.run({ "notify" })
      assert.are.equal(2, res.code)
      assert.is_true(has(res.stderr, "'notify' needs a command: notify test"), res.stderr)
      res = cli.run({ "notify", "--help" })
      assert.are.equal(0, res.code)
      assert.is_true(has(res.stdout, "usage: luaflow notify test FILE"), res.stdout)
      assert.are.equal(res.stdout, cli.run({ "help", "notify" }).stdout)
      assert.are.equal(res.stdout, cli.run({ "notify", "test", "--help" }).stdout)
      assert.are.equal(0, #r:requests())
    end)
  end)

  -- ------------------------------------------------------------ the store's API
  describe("the run store's deliveries and outbox", function()
    it("keeps what is recorded, by run, and forgets outbox items once removed", function()
      local store = require("luaflow.store")
      local s = assert(store.open(cli.tmpdir() .. "/runs.db", { create = true, record = true }))
      local run = assert(s:begin_run{ id = "run-1", flow = "f", started = 100 })
      assert(s:delivery{ run_id = "run-1", transition_id = "run-1/1/2", notifier = "Slack notification for <Task: a>",
                         destination = "https://h:443", time = 101, duration = 0.25, ok = true, status = "HTTP 200" })
      assert(s:delivery{ run_id = "not-recorded", notifier = "x", time = 102, ok = false, status = "HTTP 500" })
      for i, created in ipairs({ 100.5, 101 }) do
        assert(s:outbox_add{ run_id = "run-1", transition_id = "t" .. i, notifier = "n", destination = "https://h:443",
                             payload = '{"i":' .. i .. '}', created = created, deliver_by = created + 60,
                             next_attempt = created })
      end
      assert(s:outbox_update{ transition_id = "t1", notifier = "n", created = 100.5, attempts = 2,
                              next_attempt = 103, last_error = "HTTP 500" })
      assert(s:outbox_remove{ transition_id = "t2", notifier = "n", created = 101 })
      run:finish{ ended = 110, state = "Success" }
      assert(s:flush())
      local rows = s:deliveries("run-1")
      assert.are.equal(1, #rows)
      assert.are.same({ run_id = "run-1", transition_id = "run-1/1/2", notifier = "Slack notification for <Task: a>",
                        destination = "https://h:443", time = 101, duration = 0.25, ok = true, status = "HTTP 200" },
                      rows[1])
      local items = s:outbox()
      assert.are.equal(1, #items)
      assert.are.equal("t1", items[1].transition_id)
      assert.are.equal(2, items[1].attempts)
      assert.are.equal("HTTP 500", items[1].last_error)
      assert.are.equal(103, items[1].next_attempt)
      assert.are.equal(160.5, items[1].claimed_until)
      assert.is_truthy(items[1].claimed_by:match(":%d+$"))
      assert(s:prune{ keep = 0 })
      assert.are.same({}, s:deliveries("run-1"))
      s:close()
    end)
  end)
end)
