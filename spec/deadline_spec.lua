-- Deadlines: deadline = seconds and on_overdue on tasks and flows, fired once
-- from the engine's timer heap when the object has not finished (on time while
-- the engine waits, as soon as it regains control from a Local body); it never
-- stops the work. Notifiers serve as on_overdue with the overdue message. And
-- digest windows that end while the run goes on are delivered then.
local luaflow = require("luaflow")
local timing = require("timing")
local receiver = require("receiver")
local cli = require("cli")
local util = require("util")
local Task, Flow = luaflow.Task, luaflow.Flow
local N = luaflow.notifications
local json = luaflow.json
local now, busy, SLACK = timing.now, timing.busy, timing.SLACK
local has = util.has

local function bodies(records)
  local out = {}
  for i, rec in ipairs(records) do out[i] = json.decode(rec.body) end
  return out
end

describe("deadlines", function()
  after_each(function()
    N.flush()
    receiver.stop_all()
    cli.cleanup()
  end)

  it("fire on time while a task waits for its retry, once, with the task's state and the times", function()
    local calls = {}
    local t0
    local t = Task{ name = "slow_retry", max_retries = 1, retry_delay = 0.6, deadline = 0.2,
                    on_overdue = function(obj, state, info)
                      calls[#calls + 1] = { obj = obj, state = tostring(state), at = now() - t0, info = info,
                                            name = luaflow.context.task_name }
                    end,
                    fn = function()
                      t0 = t0 or now()
                      if luaflow.context.task_run_count == 1 then error("later", 0) end
                      return "done"
                    end }
    local fs = Flow{ name = "waits", tasks = { t } }:run()
    assert.are.equal("Success", fs.name)
    assert.are.equal("done", fs.result[t].result) -- the deadline did not stop the work
    assert.are.equal(1, #calls)
    local c = calls[1]
    assert.are.equal(t, c.obj)
    assert.are.equal("slow_retry", c.name)
    assert.are.equal('Retrying("Retrying Task (after attempt 1 of 2)")', c.state)
    assert.is_true(c.at >= 0.2 and c.at < 0.2 + 0.1 * SLACK, ("fired at %.3f s"):format(c.at))
    assert.are.equal(0.2, c.info.deadline)
    assert.is_true(c.info.elapsed >= 0.2 and c.info.elapsed < 0.3 * SLACK + 0.1)
    assert.is_truthy(c.info.message:match("^slow_retry is overdue: running for 0%.2%d?s %(deadline 0%.2s%)$"), c.info.message)
  end)

  it("under Local, fire as soon as the engine regains control from a long body, before its outcome", function()
    local order = {}
    local t = Task{ name = "long", deadline = 0.1,
                    state_handlers = { function(_, _, new) order[#order + 1] = new.name end },
                    on_overdue = function(_, state) order[#order + 1] = "overdue while " .. state.name end,
                    fn = function() busy(0.3) return 1 end }
    local fs = Flow{ name = "long_body", tasks = { t } }:run()
    assert.are.equal("Success", fs.name)
    assert.are.same({ "Running", "overdue while Running", "Success" }, order)
  end)

  for _, kind in ipairs({ "Threads", "Processes" }) do
    it("under " .. kind .. ", fire on time while the body still runs in its worker", function()
      local order, fired_at = {}, nil
      local t0 = now()
      local t = Task{ name = "in_worker", deadline = 0.15,
                      state_handlers = { function(_, _, new) order[#order + 1] = new.name end },
                      on_overdue = function(_, state)
                        fired_at = now() - t0
                        order[#order + 1] = "overdue while " .. state.name
                      end,
                      fn = function() luaflow.time.sleep(0.6) return 1 end }
      local fs = Flow{ name = "worker_body", tasks = { t } }:run{ executor = luaflow.executors[kind]{ workers = 2 } }
      assert.are.equal("Success", fs.name)
      assert.are.same({ "Running", "overdue while Running", "Success" }, order)
      -- before the body ends (0.6 s): on time, not when the outcome comes
      assert.is_true(fired_at >= 0.15 and fired_at < math.min(0.55, 0.15 + 0.2 * SLACK), ("fired at %.3f s"):format(fired_at))
    end)
  end

  it("never fire for what finished in time, and never hold the run until they would", function()
    local called = false
    local t = Task{ name = "quick", deadline = 30, on_overdue = function() called = true end,
                    fn = function() return 1 end }
    local t1 = now()
    local fs = Flow{ name = "quick_flow", deadline = 30, on_overdue = function() called = true end,
                     tasks = { t } }:run()
    assert.is_true(now() - t1 < 1, "flow:run waited for a deadline")
    assert.are.equal("Success", fs.name)
    assert.is_false(called)
  end)

  it("a flow's deadline counts from its Running; its on_overdue gets the flow and its state", function()
    local seen = {}
    local a = Task{ name = "a", max_retries = 1, retry_delay = 0.4,
                    fn = function() if luaflow.context.task_run_count == 1 then error("x", 0) end end }
    local f
    f = Flow{ name = "late_flow", deadline = 0.15, tasks = { a },
              on_overdue = function(obj, state, info)
                seen[#seen + 1] = { obj == f, tostring(state), info.message }
              end }
    local fs = f:run()
    assert.are.equal("Success", fs.name)
    assert.are.equal(1, #seen)
    assert.is_true(seen[1][1])
    assert.are.equal('Running("Running flow.")', seen[1][2])
    assert.is_true(has(seen[1][3], "late_flow is overdue: running for "), seen[1][3])
  end)

  it("each copy of a task has its own deadline; an on_overdue that raises is logged and the run goes on", function()
    local names = {}
    local t = luaflow.task{ deadline = 0.05, on_overdue = function(obj)
      names[#names + 1] = obj.name
      error("alert system down")
    end }(function() busy(0.1) return 1 end)
    local f = Flow("copies", function() t() t() end)
    local fs = f:run()
    assert.are.equal("Success", fs.name)
    assert.are.same({ "t", "t" }, names)
  end)

  it("log a WARNING line, recorded in the run store, and check their options", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.Task{name = "late", deadline = 0.05, fn = function()
  local t0 = os.clock() while os.clock() - t0 < 0.15 do end
end}
return luaflow.Flow{name = "warns", tasks = {t}}
]])
    local store = cli.tmpdir() .. "/runs.db"
    local r = cli.run({ "run", path, "--log-level", "INFO", "--store", store })
    assert.are.equal(0, r.code, r.stderr)
    local line = "WARNING %- luaflow%.TaskRunner | Task 'late': overdue: running for 0%.%d+s %(deadline 0%.05s%)"
    assert.is_truthy(r.stderr:find(line), r.stderr)
    local logs = cli.run({ "runs", "logs", "--store", store }) -- the run store keeps it
    assert.are.equal(0, logs.code, logs.stderr)
    assert.is_truthy(logs.stdout:find(line), logs.stdout)
    local bad = cli.write_flow([[
local luaflow = require("luaflow")
local opts = load("return " .. os.getenv("OPTS"))()
local what = os.getenv("WHAT")
if what == "Flow" then opts.name = "f" luaflow.Flow(opts) else luaflow.Task(opts) end
]])
    local cases = {
      { "Task", "{deadline = 0}", "deadline must be a number of seconds > 0 (got the number 0)" },
      { "Task", "{deadline = '10'}", "deadline must be a number of seconds > 0 (got the string \"10\")" },
      { "Task", "{on_overdue = 3, deadline = 1}", "on_overdue must be a function (got the number 3)" },
      { "Task", "{on_overdue = print}", "on_overdue needs a deadline: give deadline = seconds too" },
      { "Flow", "{deadline = -1}", "deadline must be a number of seconds > 0 (got the number -1)" },
      { "Flow", "{on_overdue = print}", "on_overdue needs a deadline" },
      { "Flow", "{deadlin = 5}", "unknown option 'deadlin' for Flow (did you mean 'deadline'?)" },
    }
    for _, c in ipairs(cases) do
      local res = cli.run({ "run", bad }, { env = { OPTS = c[2], WHAT = c[1] } })
      assert.are.equal(2, res.code, c[2] .. ": " .. res.stderr)
      assert.is_true(has(res.stderr, bad .. ":4: "), c[2] .. ": " .. res.stderr)
      assert.is_true(has(res.stderr, c[3]), c[2] .. ": " .. res.stderr)
    end
  end)

  describe("notifiers as on_overdue", function()
    it("webhook: an overdue document with the message, the times and a stable id", function()
      local r = receiver.start{ proto = "http" }
      local t = Task{ name = "etl", deadline = 0.05, on_overdue = N.webhook_notifier{ url_secret = "HOOK" },
                      fn = function() busy(0.12) end }
      local other = Task{ name = "other" }
      local fs = Flow{ name = "nightly", tasks = { other, t } }:run{ secrets = { HOOK = r:url("/h") } }
      assert.are.equal("Success", fs.name)
      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      local doc = json.decode(got[1].body)
      assert.are.equal("overdue", doc.event)
      assert.are.equal("nightly", doc.flow.name)
      assert.are.same({ kind = "task", name = "etl" }, doc.object)
      assert.are.equal("Running", doc.state.class)
      assert.are.equal(0.05, doc.deadline)
      assert.is_true(doc.elapsed >= 0.1)
      assert.is_truthy(doc.message:match("^etl is overdue: running for 0%.%d+s %(deadline 0%.05s%)$"), doc.message)
      assert.are.equal(doc.flow.run_id .. "/2/overdue", doc.transition_id)
      local key
      for k, v in pairs(got[1].headers or {}) do if k:lower() == "idempotency-key" then key = v end end
      assert.are.equal(doc.transition_id, key)
    end)

    it("slack, used directly, and e-mail say '<name> is overdue: running for ... (deadline ...)'", function()
      local r = receiver.start{ proto = "http" }
      local smtp = receiver.start{ proto = "smtp" }
      local a = Task{ name = "report", deadline = 0.05, on_overdue = N.slack_notifier,
                      fn = function() busy(0.1) end }
      local b = Task{ name = "export", deadline = 0.05,
                      on_overdue = N.email_notifier{ smtp_url = smtp:url(), from = "lf@example.com", to = "ops@example.com" },
                      fn = function() busy(0.1) end }
      local f = Flow{ name = "mixed", deadline = 0.05, on_overdue = N.slack_notifier{ only_states = { "Failed" } },
                      tasks = { a, b } }
      f:run{ secrets = { SLACK_WEBHOOK_URL = r:url("/slack") } }
      local texts = {}
      for _, d in ipairs(bodies(r:wait_for(2, 2))) do texts[#texts + 1] = d.attachments[1].text end
      table.sort(texts)
      assert.are.equal(2, #texts) -- the task's and the flow's (state filters do not apply to overdue)
      assert.is_truthy(texts[1]:match("^mixed is overdue: running for .+ %(deadline 0%.%d+s%)$"), texts[1])
      assert.is_truthy(texts[2]:match("^report is overdue: running for .+ %(deadline 0%.%d+s%)$"), texts[2])
      local mail = smtp:wait_for(1, 2)
      assert.are.equal(1, #mail)
      local raw = mail[1].data
      assert.is_true(has(raw, "Subject: luaflow: export is overdue"), raw)
      assert.is_true(has(raw, "export is overdue: running for "), raw)
    end)
  end)
end)

describe("luaflow notify test --overdue", function()
  after_each(function()
    receiver.stop_all()
    cli.cleanup()
  end)

  local FILE = [[
local luaflow = require("luaflow")
local n = luaflow.notifications
local t = luaflow.Task{name = "etl", deadline = 600, fn = function() print("THE TASK RAN") end,
  on_overdue = n.webhook_notifier{url_secret = "HOOK", async = true}}
local plain = luaflow.Task{name = "plain"}
local copy = luaflow.task{name = "copied", deadline = 90, on_overdue = function(obj, state, info)
  print("on_overdue: " .. obj.name .. " " .. state.name .. " " .. info.message)
end}(function() end)
return luaflow.Flow("nightly", function() copy() plain() t() end)
]]

  local function notify(r, args)
    local argv = { "notify", "test", cli.write_flow(FILE) }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return cli.run(argv, { env = { LUAFLOW_SECRET_HOOK = r and r:url("/h") or "http://127.0.0.1:1/h" } })
  end

  it("calls the task's on_overdue with the overdue message; its notifier delivers at once", function()
    local r = receiver.start{ proto = "http" }
    local res = notify(r, { "--task", "etl", "--overdue" })
    assert.are.equal(0, res.code, res.stdout .. res.stderr)
    assert.is_false(has(res.stdout, "THE TASK RAN"))
    local got = r:wait_for(1, 2)
    assert.are.equal(1, #got)
    local doc = json.decode(got[1].body)
    assert.are.equal("overdue", doc.event)
    assert.are.equal("etl is overdue: running for 10m (deadline 10m) (a test notification from luaflow)", doc.message)
    assert.is_true(has(res.stdout, "notify test: <Task: etl>: overdue while Running()"), res.stdout)
    assert.is_true(has(res.stdout, "delivered: Webhook overdue notification for <Task: etl>: HTTP 200"), res.stdout)
  end)

  it("reaches the on_overdue of a task called in a builder; says so when there is none or it fails", function()
    local res = notify(nil, { "--task", "copied", "--overdue" })
    assert.are.equal(0, res.code, res.stdout .. res.stderr)
    assert.is_true(has(res.stdout, "on_overdue: copied Running copied is overdue: running for 1m 30s (deadline 1m 30s)"),
                   res.stdout)
    res = notify(nil, { "--task", "plain", "--overdue" })
    assert.are.equal(1, res.code, res.stdout .. res.stderr)
    assert.is_true(has(res.stdout, "<Task: plain> has no on_overdue: nothing was sent"), res.stdout)
    res = notify(nil, { "--overdue" }) -- the flow: neither on_overdue nor handlers, not an error
    assert.are.equal(1, res.code, res.stdout .. res.stderr)
    assert.is_true(has(res.stdout, "<Flow: name=nightly> has no on_overdue: nothing was sent"), res.stdout)
    res = notify(nil, {})
    assert.are.equal(1, res.code, res.stdout .. res.stderr)
    assert.is_true(has(res.stdout, "<Flow: name=nightly> has no state handlers: nothing was sent"), res.stdout)
    res = notify(nil, { "--task", "etl", "--overdue" }) -- nobody listens: one failure, exit 1
    assert.are.equal(1, res.code, res.stdout .. res.stderr)
    assert.is_true(has(res.stdout, "notify test: 1 of 1 failed"), res.stdout)
    res = notify(nil, { "--task", "etl", "--overdue", "--state", "Failed" })
    assert.are.equal(2, res.code)
    assert.is_true(has(res.stderr, "--overdue and --state do not go together"), res.stderr)
  end)
end)

describe("digest windows", function()
  after_each(function()
    N.flush()
    receiver.stop_all()
  end)

  it("are delivered when they end, while the run goes on, with no state change needed", function()
    local r = receiver.start{ proto = "http" }
    local h = N.webhook_notifier{ url_secret = "HOOK", only_states = { "Failed" }, digest = 0.2 }
    local seen_during_run
    local a = Task{ name = "a", state_handlers = { h }, fn = function() error("a broke", 0) end }
    -- b waits for its retry well past the window: nothing changes state meanwhile
    local b = Task{ name = "b", max_retries = 1, retry_delay = 0.6, trigger = luaflow.triggers.always_run,
                    fn = function()
                      if luaflow.context.task_run_count == 1 then error("not yet", 0) end
                      seen_during_run = #r:requests()
                    end }
    local f = Flow{ name = "windows", tasks = { a, b } }
    f:add_edge(a, b)
    f:run{ secrets = { HOOK = r:url("/hook") } }
    assert.are.equal(1, seen_during_run)
    local docs = bodies(r:requests())
    assert.are.equal(1, #docs)
    assert.are.equal("digest", docs[1].event)
    assert.are.equal("a", docs[1].items[1].object.name)
  end)
end)
