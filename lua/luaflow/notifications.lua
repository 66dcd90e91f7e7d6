-- Notifications: state handlers that tell the world.
-- Every notifier is usable directly (state_handlers = {slack_notifier}) or
-- configured (slack_notifier{only_states = {"Failed"}} returns a handler).
--
-- A state change goes through three steps:
--   filters   only_states / ignore_states, final_only (no alert for a failure
--             a retry will follow);
--   storms    dedup = seconds (the same object, class and message once per
--             window, the next one saying "(and N similar)"), digest = seconds
--             (collected, one message per window, the rest before flow:run
--             returns);
--   delivery  now (a failure raises unless raise_on_error = false), or queued
--             for the background sender with async = true (src/sender.c).
-- Each delivery is one log line and one row of the run store's deliveries
-- (src/delivery.c), and carries its transition id: "transition_id" in the
-- webhook document, an Idempotency-Key header, the e-mail's Message-ID.
local core = require("luaflow.core")
local json = core.json
local states = core.states
local options = require("luaflow.options")
local graph = require("luaflow.graph")

local M = {}
local sender = core.http.sender
local clock = sender.monotonic

-- ---- the transition being handled ----

-- `luaflow notify test` (and specs) drive a made-up transition with these
-- facts instead of the engine's: {task_will_retry =, transition_number =,
-- single = true (digests and dedup step aside, async delivers at once)}.
local made_up

-- luaflow.context[key], or the made-up transition's fact.
local function context(key)
  if made_up then return made_up[key] end
  return require("luaflow").context[key]
end

-- True inside the handlers of a failure that a retry will follow.
function M._will_retry()
  return context("task_will_retry") == true
end

-- Calls fn(...) with `facts` standing for the engine's view of the
-- transition; returns what fn returns (raises what it raises).
function M._with_transition(facts, fn, ...)
  local saved = made_up
  made_up = facts
  local result = table.pack(pcall(fn, ...))
  made_up = saved
  if not result[1] then error(result[2], 0) end
  return table.unpack(result, 2, result.n)
end

local function current_run()
  return graph.runs[#graph.runs]
end

-- "<run id>/<object>/<n>": the object is 0 for the flow, else the task's
-- 1-based index in the flow ("3.2" for map index 2 of task 3); n is the
-- engine's count of that object's transitions. nil while the engine does
-- not give n.
local function transition_id(obj)
  local run, n = current_run(), context("transition_number")
  if not (run and math.type(n) == "integer") then return nil end
  local key
  if graph.is_flow(obj) then
    key = "0"
  else
    local i = core.flow_index(run.flow, obj)
    if not i then return nil end
    local map = context("map_index")
    key = math.type(map) == "integer" and ("%d.%d"):format(i, map) or tostring(i)
  end
  return ("%s/%s/%d"):format(run.run_id, key, n)
end

-- ---- callbacks ----

-- A handler that calls fn(obj, new_state) when check(new_state) is true, and
-- keeps new_state; {final_only = true} skips a failure a retry will follow.
function M.callback_factory(fn, check, opts)
  for _, arg in ipairs({ { "fn", fn }, { "check", check } }) do
    if not options.is_callable(arg[2]) then
      core.raise(("callback_factory(fn, check): %s must be a function (got %s)"):format(arg[1], options.describe(arg[2])))
    end
  end
  local final_only = opts ~= nil and options.check("callback_factory", opts).final_only
  return function(obj, _, new_state)
    if final_only and new_state:is_failed() and M._will_retry() then return new_state end
    if check(new_state) == true then fn(obj, new_state) end
    return new_state
  end
end

-- on_failure with on_failure_final_only = true (graph.lua wraps it).
function M._final_failures_only(fn)
  return function(obj, state)
    if M._will_retry() then return end
    return fn(obj, state)
  end
end

-- ---- filters ----

-- only_states / ignore_states (checked by luaflow.options) as a list of classes.
local function classes(list)
  if list == nil then return nil end
  if type(list) ~= "table" or getmetatable(list) then list = { list } end
  local out = {}
  for i, v in ipairs(list) do out[i] = type(v) == "string" and states[v] or v end
  return out
end

-- ignore_states is checked first; only_states, when given, must match. Both
-- are subclass-aware (state:is); final_only drops a failure a retry follows.
local function wanted(cfg, state)
  for _, cls in ipairs(cfg.ignore_states or {}) do
    if state:is(cls) then return false end
  end
  if cfg.only_states and #cfg.only_states > 0 then
    local any = false
    for _, cls in ipairs(cfg.only_states) do
      if state:is(cls) then any = true break end
    end
    if not any then return false end
  end
  return not (cfg.final_only and state:is_failed() and M._will_retry())
end

local ENGINE_ERROR_PREFIXES = { "Error during execution of task: ",
                                "Unexpected error while calling state handlers: ",
                                "Unexpected error while checking task trigger: " }

-- The error text of a Failed state made from a plain (non-signal) error.
local function error_text(state)
  if not state:is_failed() then return nil end
  local result = state.result
  if result == nil or core.signal_of(result) ~= 0 then return nil end
  local msg = state.message or ""
  for _, prefix in ipairs(ENGINE_ERROR_PREFIXES) do
    if msg:sub(1, #prefix) == prefix then
      local ok, text = pcall(tostring, result)
      return ok and text or msg:sub(#prefix + 1)
    end
  end
end

local function similar_note(n)
  return n and n > 0 and (" (and %d similar)"):format(n) or ""
end

-- ---- storms: dedup ----

-- cfg._seen[key] = {until_t =, similar =}: the window of the last delivery
-- of that object, class and message, and how many were held back since.
local SEEN_MAX = 4096

-- nil when the change must be held back; else how many similar ones were.
local function dedup(cfg, obj, state)
  local key = ("%s\0%s\0%s"):format(tostring(obj), state.name, state.message or "")
  local now = clock()
  local seen = cfg._seen
  local entry = seen[key]
  if entry and now < entry.until_t then
    entry.similar = entry.similar + 1
    return nil
  end
  local similar = entry and entry.similar or 0
  if not entry then
    cfg._nseen = cfg._nseen + 1
    if cfg._nseen > SEEN_MAX then -- forget the windows that are over
      for k, e in pairs(seen) do
        if now >= e.until_t then seen[k] = nil; cfg._nseen = cfg._nseen - 1 end
      end
    end
  end
  seen[key] = { until_t = now + cfg.dedup, similar = 0 }
  return similar
end

-- ---- delivery ----

local function http()
  return require("luaflow.http")
end

local function secret(name)
  return require("luaflow.secrets").text(name)
end

-- What a non-2xx answer most likely means, and what to do about it.
local function status_hint(status, secret_name)
  local where = ("the URL in secret %q"):format(secret_name)
  if status == 404 or status == 410 then
    return ("no webhook at that address: check %s (it may have been revoked)"):format(where)
  elseif status == 401 or status == 403 then
    return ("the service refused the request: check %s and its permissions"):format(where)
  elseif status == 429 then
    return "rate limited by the service: send fewer notifications (only_states = {...})"
  elseif status >= 500 then
    return "the service failed: try again later (raise_on_error = false lets the task go on)"
  elseif status >= 400 then
    return "the service refused the payload"
  end
  return ("unexpected answer: check %s"):format(where)
end

-- A message to send, made by a notifier's `make`: either
--   {secret = NAME, body = JSON text}                           (HTTP POST)
-- or
--   {smtp = true, url =, starttls =, username_secret =, password_secret =,
--    from =, to = {...}, message = MIME text}
-- with tid (its transition id) and run_id.

local function headers_of(msg)
  local h = { ["Content-Type"] = "application/json" }
  if msg.tid then h["Idempotency-Key"] = msg.tid end
  return h
end

-- The secrets' values and where they lead; raises when one is missing.
local function resolve(msg)
  if msg.smtp then
    local t = { url = msg.url }
    t.username = msg.username_secret and secret(msg.username_secret)
    t.password = msg.password_secret and secret(msg.password_secret)
    t.destination = core.http.origin(msg.url) or "invalid URL"
    return t
  end
  local url = secret(msg.secret)
  return { url = url, destination = core.http.origin(url) or "invalid URL" }
end

-- One delivery now: its status text, or raises why it failed.
local function send_now(cfg, msg, target)
  if msg.smtp then
    -- called through pcall so that a bad value's error names no place inside luaflow
    local called, ok, reply = pcall(core.http.smtp_send, {
      url = target.url, starttls = msg.starttls, username = target.username,
      password = target.password, from = msg.from, to = msg.to, message = msg.message,
      timeout = cfg.timeout or 10, verify = cfg.verify, ca_file = cfg.ca_file,
    })
    if not called then error((tostring(ok):gsub("^smtp_send: ", "")), 0) end
    if not ok then error(reply, 0) end
    return reply ~= "" and reply or "accepted"
  end
  local res = http().post(target.url, { body = msg.body, headers = headers_of(msg),
                                        timeout = cfg.timeout or 10,
                                        ca_file = cfg.ca_file, verify = cfg.verify })
  if res.status < 200 or res.status > 299 then
    error(("HTTP %d from %s; %s"):format(res.status, target.destination,
                                        status_hint(res.status, msg.secret)), 0)
  end
  return "HTTP " .. res.status
end

-- What the outbox keeps of a message: the request naming its secrets,
-- never their values.
local function outbox_doc(msg)
  if msg.smtp then
    return json.encode({ kind = "smtp", smtp_url = core.redact(msg.url), starttls = msg.starttls == true,
                         username_secret = msg.username_secret or json.null,
                         password_secret = msg.password_secret or json.null,
                         from = msg.from, to = json.array(msg.to), message = msg.message })
  end
  return json.encode({ kind = "http", url_secret = msg.secret, headers = headers_of(msg),
                       body = msg.body })
end

-- Observers of every delivery's outcome (`luaflow notify test` counts them).
M.observers = {}
local function observe(ok, who, status)
  for _, fn in ipairs(M.observers) do fn(ok, who, status) end
end

-- Queues msg for the background sender; never raises: a message that cannot
-- be queued is logged at ERROR and recorded.
local function enqueue(cfg, who, msg)
  local destination
  local ok, why = pcall(function()
    local target = resolve(msg)
    destination = target.destination
    local queued, err = sender.enqueue({
      notifier = who, run_id = msg.run_id, transition_id = msg.tid, payload = outbox_doc(msg),
      smtp = msg.smtp == true, url = target.url,
      body = msg.smtp and msg.message or msg.body, headers = not msg.smtp and headers_of(msg) or nil,
      starttls = msg.starttls, username = target.username, password = target.password,
      from = msg.from, to = msg.to, timeout = cfg.timeout, verify = cfg.verify ~= false,
      ca_file = cfg.ca_file, deliver_within = cfg.deliver_within,
    })
    if not queued then error(err, 0) end
  end)
  if ok then return end
  local status = "not queued: " .. core.redact(tostring(why))
  sender.report({ notifier = who, run_id = msg.run_id, transition_id = msg.tid,
                  destination = destination, ok = false, status = status, level = "ERROR" })
  observe(false, who, status)
end

-- Makes (make() -> msg) and delivers one message as cfg says. Synchronous:
-- a failure raises "<who> failed: why" unless raise_on_error = false (then
-- it is a WARNING line).
local function deliver(cfg, who, make)
  if cfg.async and not (made_up and made_up.single) then
    local ok, msg = pcall(make)
    if ok then return enqueue(cfg, who, msg) end
    local status = "not queued: " .. core.redact(tostring(msg))
    sender.report({ notifier = who, ok = false, status = status, level = "ERROR" })
    return observe(false, who, status)
  end
  local t0, msg, destination, sending = clock(), nil, nil, false
  local ok, status = pcall(function()
    msg = make()
    local target = resolve(msg)
    destination, sending = target.destination, true
    return send_now(cfg, msg, target)
  end)
  local report = { notifier = who, run_id = msg and msg.run_id, transition_id = msg and msg.tid,
                   destination = destination, duration = clock() - t0, ok = ok }
  if ok then
    report.status = status
    sender.report(report)
    return observe(true, who, status)
  end
  local why = core.redact(tostring(status))
  local prefix = who .. " failed: "
  if why:sub(1, #prefix) == prefix then why = why:sub(#prefix + 1) end
  report.status = why
  report.level = cfg.raise_on_error == false and "WARNING" or "ERROR"
  sender.report(report)
  observe(false, who, why)
  if cfg.raise_on_error == false then return end
  if not sending then error(status, 0) end -- a missing secret, a bad option: as raised
  error(prefix .. why, 0)
end

-- ---- storms: digests ----

-- Digests being collected: pending[i] = {cfg =, kind =, run =, opened =, items = {...}}.
local pending = {}

-- Delivers one digest (taken out of `pending`).
local function send_digest(d)
  local items = d.items
  local flow = d.run and d.run.flow
  local who = ("%s digest of %d state change%s for %s"):format(d.kind.label, #items, #items == 1 and "" or "s",
                                                             flow and tostring(flow) or "a flow")
  deliver(d.cfg, who, function()
    local msg = d.kind.digest(d.cfg, items, d.run)
    msg.run_id = d.run and d.run.run_id
    msg.tid = items[1].tid and ("%s+%d"):format(items[1].tid, #items)
    return msg
  end)
end

-- Delivers the digests whose window is over (all of `run` when `all`);
-- failures are logged, never raised: the states they carry are past.
local function flush_digests(run, all)
  local now, due = clock(), {}
  for i = #pending, 1, -1 do
    local d = pending[i]
    if (all and d.run == run) or (not all and now >= d.opened + d.cfg.digest) then
      table.remove(pending, i)
      table.insert(due, 1, d)
    end
  end
  for _, d in ipairs(due) do
    local ok, err = pcall(send_digest, d)
    if not ok then core.log("ERROR", "luaflow.notifications", core.redact(tostring(err))) end
  end
end

-- Before flow:run returns, the run's digests go out.
table.insert(graph.end_of_run, function(run) flush_digests(run, true) end)

-- A window that ends while the run goes on is delivered then: the engine
-- wakes the notifiers on its timer heap (core.wake_after), even when no state
-- changes; a window not quite over yet asks to be woken again.
core.set_wake_handler(function()
  flush_digests(current_run(), false)
  local run, now = current_run(), clock()
  for _, d in ipairs(pending) do
    if d.run == run then core.wake_after(d.opened + d.cfg.digest - now + 0.001) end
  end
end)

local function collect(cfg, kind, item)
  local run = current_run()
  for _, d in ipairs(pending) do
    if d.cfg == cfg and d.run == run then
      d.items[#d.items + 1] = item
      return
    end
  end
  pending[#pending + 1] = { cfg = cfg, kind = kind, run = run, opened = clock(), items = { item } }
  core.wake_after(cfg.digest)
end

-- ---- overdue objects (on_overdue) ----

-- handler -> function(obj, state, info) sending the overdue message: a
-- notifier given as on_overdue says "<name> is overdue: running for ...".
local overdue_senders = setmetatable({}, { __mode = "k" })

-- The id of an overdue message: one per object and run.
local function overdue_id(obj, run)
  if not run then return nil end
  local key = graph.is_flow(obj) and "0" or core.flow_index(run.flow, obj)
  return key and ("%s/%s/overdue"):format(run.run_id, key)
end

local function overdue_sender(cfg, kind)
  return function(obj, state, info)
    if type(info) ~= "table" or type(info.message) ~= "string" then
      core.raise("an overdue notifier is called by the engine as on_overdue(obj, state, info)")
    end
    local run = current_run()
    local item = { obj = obj, state = state, info = info, run = run, tid = overdue_id(obj, run) }
    deliver(cfg, ("%s overdue notification for %s"):format(kind.label, tostring(obj)), function()
      local msg = kind.overdue(cfg, item)
      msg.run_id, msg.tid = run and run.run_id, item.tid
      return msg
    end)
  end
end

-- on_overdue as the engine calls it (graph.lua): a notifier, used directly
-- or configured, sends its overdue message; any other function is itself.
function M._overdue_handler(fn)
  return overdue_senders[fn] or fn
end

-- ---- notifiers ----

-- Builds a notifier of `kind`:
--   kind.label    "Slack" (names it in log lines and failures);
--   kind.defaults its options' defaults;
--   kind.make(cfg, item)           -> msg   (one state change);
--   kind.digest(cfg, items, run)   -> msg   (several);
-- item = {obj =, old =, new =, tid =, similar =, run =}.
local function notifier(name, kind)
  local function configure(opts)
    local cfg = {}
    for k, v in pairs(kind.defaults) do cfg[k] = v end
    for k, v in pairs(options.check(name, opts or {})) do cfg[k] = v end
    cfg.only_states = classes(cfg.only_states)
    cfg.ignore_states = classes(cfg.ignore_states)
    cfg._seen, cfg._nseen = {}, 0
    local handler
    handler = function(obj, old_state, new_state)
      local single = made_up and made_up.single
      if #pending > 0 and not single then flush_digests(current_run(), false) end
      if not wanted(cfg, new_state) then return new_state end
      local similar = 0
      if cfg.dedup and not single then
        similar = dedup(cfg, obj, new_state)
        if not similar then return new_state end
      end
      local item = { obj = obj, old = old_state, new = new_state, tid = transition_id(obj),
                     similar = similar, run = current_run() }
      if cfg.digest and not single then
        collect(cfg, kind, item)
        return new_state
      end
      local who = ("%s notification for %s"):format(kind.label, tostring(obj))
      deliver(cfg, who, function()
        local msg = kind.make(cfg, item)
        msg.run_id, msg.tid = item.run and item.run.run_id, item.tid
        return msg
      end)
      return new_state
    end
    overdue_senders[handler] = overdue_sender(cfg, kind)
    return handler
  end
  local direct
  local self
  self = setmetatable({ name = name }, {
    __call = function(_, a, b, c)
      if b == nil and c == nil then -- configuring: the engine always passes both states
        if a ~= nil and (type(a) ~= "table" or getmetatable(a)) then
          core.raise(("%s{...} takes a table of options (got %s)"):format(name, options.describe(a)))
        end
        return configure(a)
      end
      direct = direct or configure(nil)
      return direct(a, b, c)
    end,
    __tostring = function() return "<notifier: " .. name .. ">" end,
    __luaflow_kind = "notifier",
  })
  overdue_senders[self] = function(...)
    direct = direct or configure(nil)
    return overdue_senders[direct](...)
  end
  return self
end

-- ---- Slack ----

local function slack_attachment(obj, state, similar)
  local class = state.name
  local value = error_text(state)
  if value then
    value = "```" .. value .. "```"
  else
    value = state.message
    if value == "" then value = nil end
  end
  local fields = json.array({})
  if value ~= nil then fields[1] = { title = "Message", value = value, short = false } end
  return {
    fallback = "State change notification",
    color = state.color,
    author_name = "luaflow",
    title = class,
    text = ("%s is now in a %s state%s"):format(obj.name, class, similar_note(similar)),
    fields = fields,
    footer = "luaflow notification",
  }
end

function M.slack_payload(obj, state)
  return { attachments = json.array({ slack_attachment(obj, state) }) }
end

local DIGEST_MAX = 20 -- states shown one by one in a Slack digest
local OVERDUE_COLOR = "#f66a0a" -- Retrying's orange: late, not failed

M.slack_notifier = notifier("slack_notifier", {
  label = "Slack",
  defaults = { webhook_secret = "SLACK_WEBHOOK_URL" },
  make = function(cfg, item)
    local doc = { attachments = json.array({ slack_attachment(item.obj, item.new, item.similar) }) }
    return { secret = cfg.webhook_secret, body = core.json_redacted(doc) }
  end,
  digest = function(cfg, items)
    local list = json.array({})
    for i = 1, math.min(#items, DIGEST_MAX) do
      list[i] = slack_attachment(items[i].obj, items[i].new, items[i].similar)
    end
    if #items > DIGEST_MAX then
      local more = ("… and %d more"):format(#items - DIGEST_MAX)
      list[#list + 1] = { fallback = more, text = more, footer = "luaflow notification" }
    end
    return { secret = cfg.webhook_secret, body = core.json_redacted({ attachments = list }) }
  end,
  overdue = function(cfg, item)
    local state = item.state
    local doc = { attachments = json.array({ {
      fallback = item.info.message,
      color = OVERDUE_COLOR,
      author_name = "luaflow",
      title = "Overdue",
      text = item.info.message,
      fields = json.array({ { title = "State", value = tostring(state), short = false } }),
      footer = "luaflow notification",
    } }) }
    return { secret = cfg.webhook_secret, body = core.json_redacted(doc) }
  end,
})

-- ---- generic webhook ----

local function or_null(v)
  if v == nil then return json.null end
  return v
end

local function state_doc(state, full)
  local doc = { class = state.name, message = or_null(state.message) }
  if full then
    doc.run_count = or_null(state.run_count)
    doc.start_time = state.start_time and tostring(state.start_time) or json.null
    doc.fields = json.object(states._fields(state))
  end
  return doc
end

local function flow_doc(run)
  return { name = run and run.flow.name or json.null, run_id = run and run.run_id or json.null }
end

local function webhook_doc(obj, old_state, new_state, tid, similar, run)
  local doc = {
    event = "state_change",
    time = tostring(core.time.now()),
    flow = flow_doc(run),
    transition_id = or_null(tid),
    object = { kind = graph.is_flow(obj) and "flow" or "task", name = obj.name },
    old_state = state_doc(old_state, false),
    new_state = state_doc(new_state, true),
  }
  if similar and similar > 0 then doc.similar = similar end
  return doc
end

function M.webhook_payload(obj, old_state, new_state)
  return webhook_doc(obj, old_state, new_state, transition_id(obj), nil, current_run())
end

M.webhook_notifier = notifier("webhook_notifier", {
  label = "Webhook",
  defaults = { url_secret = "WEBHOOK_URL" },
  make = function(cfg, item)
    local doc = webhook_doc(item.obj, item.old, item.new, item.tid, item.similar, item.run)
    return { secret = cfg.url_secret, body = core.json_redacted(doc) }
  end,
  digest = function(cfg, items, run)
    local list = json.array({})
    for i, it in ipairs(items) do
      list[i] = webhook_doc(it.obj, it.old, it.new, it.tid, it.similar, it.run)
    end
    local tid = items[1].tid and ("%s+%d"):format(items[1].tid, #items)
    local doc = { event = "digest", time = tostring(core.time.now()), flow = flow_doc(run),
                  transition_id = or_null(tid), count = #items, items = list }
    return { secret = cfg.url_secret, body = core.json_redacted(doc) }
  end,
  overdue = function(cfg, item)
    local obj, info = item.obj, item.info
    local doc = {
      event = "overdue",
      time = tostring(core.time.now()),
      flow = flow_doc(item.run),
      transition_id = or_null(item.tid),
      object = { kind = graph.is_flow(obj) and "flow" or "task", name = obj.name },
      state = state_doc(item.state, true),
      deadline = info.deadline,
      elapsed = info.elapsed,
      message = info.message,
    }
    return { secret = cfg.url_secret, body = core.json_redacted(doc) }
  end,
})

-- ---- e-mail ----

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local function crlf(s)
  return (s:gsub("\r?\n", "\r\n"))
end

-- What a state's e-mail shows as its message: the error of a plain error,
-- else the state's message; nil when there is neither.
local function shown_message(state)
  local shown = error_text(state) or state.message
  if shown == "" then return nil end
  return shown
end

-- Subject, plain text and HTML of the message for a state change.
function M.email_content(obj, state, similar)
  local class = state.name
  local shown = shown_message(state)
  local note = similar_note(similar)
  local subject = ("luaflow: %s is now %s%s"):format(obj.name, class, note)
  local text = ("%s is now in a %s state%s.\n"):format(obj.name, class, note)
  if shown then text = text .. "\nMessage: " .. shown .. "\n" end
  local html = ([[<html><body><table style="border-left: 4px solid %s; padding-left: 8px">
<tr><td><pre>%s</pre> is now in a <font color="%s"><b>%s</b></font> state%s</td></tr>%s
</table></body></html>
]]):format(state.color, html_escape(obj.name), state.color, class, html_escape(note),
           shown and ("\n<tr><td>Message: <pre>%s</pre></td></tr>"):format(html_escape(shown)) or "")
  return subject, text, html
end

-- Subject, plain text and HTML of a digest of several state changes.
local function email_digest_content(items, run)
  local flow = run and run.flow.name or "a flow"
  local subject = ("luaflow: %d state change%s in %s"):format(#items, #items == 1 and "" or "s", flow)
  local lines, rows = {}, {}
  for i, it in ipairs(items) do
    local shown = shown_message(it.new)
    local note = similar_note(it.similar)
    lines[i] = ("- %s is now in a %s state%s%s"):format(it.obj.name, it.new.name, note,
                                                         shown and (": " .. shown) or "")
    rows[i] = ('<tr><td style="border-left: 4px solid %s; padding-left: 8px"><pre>%s</pre> is now in a '
               .. '<font color="%s"><b>%s</b></font> state%s%s</td></tr>')
      :format(it.new.color, html_escape(it.obj.name), it.new.color, it.new.name, html_escape(note),
              shown and (": <pre>%s</pre>"):format(html_escape(shown)) or "")
  end
  local text = ("%d state change%s in %s:\n\n%s\n"):format(#items, #items == 1 and "" or "s", flow,
                                                           table.concat(lines, "\n"))
  local html = ("<html><body><p>%s</p><table>\n%s\n</table></body></html>\n")
    :format(html_escape(subject:sub(10)), table.concat(rows, "\n"))
  return subject, text, html
end

local function address_list(v, option)
  if type(v) == "string" then return { v } end
  if type(v) == "table" and #v > 0 then return v end
  core.raise(option .. " must be an address or a list of addresses")
end

-- The Message-ID of a message whose transition id is tid (a random one
-- without), in the sender's domain.
local function message_id(tid, from)
  local domain = tostring(from):match("@([%w%.%-]+)>?%s*$") or "luaflow.localhost"
  local left = tid and tid:gsub("[^%w%.%-/+=_]", "_")
    or ("%08x.%08x"):format(math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  return ("<%s@%s>"):format(left, domain)
end

function M.email_message(from, to, subject, text, html, tid)
  local boundary = ("luaflow-%08x%08x"):format(math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local lines = {
    "From: " .. from,
    "To: " .. table.concat(to, ", "),
    "Subject: " .. subject,
    "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S +0000"),
    "Message-ID: " .. message_id(tid, from),
    "MIME-Version: 1.0",
    ('Content-Type: multipart/alternative; boundary="%s"'):format(boundary),
    "",
    "--" .. boundary,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    text,
    "--" .. boundary,
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    html,
    "--" .. boundary .. "--",
    "",
  }
  return crlf(table.concat(lines, "\n"))
end

-- An e-mail msg (see deliver) with the given content. The user name is read
-- here only when it stands in for `to` or `from`.
local function email_msg(cfg, subject, text, html, tid)
  if not cfg.smtp_url then core.raise("email_notifier: smtp_url is required") end
  local username = (cfg.to == nil or cfg.from == nil) and cfg.username_secret and secret(cfg.username_secret)
  local to = cfg.to or username
  if to == nil or to == false then core.raise("email_notifier: no recipient (give `to`)") end
  to = address_list(to, "to")
  local from = cfg.from or username or "luaflow@localhost"
  return { smtp = true, url = cfg.smtp_url, starttls = cfg.starttls,
           username_secret = cfg.username_secret, password_secret = cfg.password_secret,
           from = from, to = to,
           message = M.email_message(from, to, core.redact(subject), core.redact(text), core.redact(html), tid) }
end

local email_kind = {
  label = "Email",
  defaults = {},
  make = function(cfg, item)
    local subject, text, html = M.email_content(item.obj, item.new, item.similar)
    return email_msg(cfg, subject, text, html, item.tid)
  end,
  digest = function(cfg, items, run)
    local subject, text, html = email_digest_content(items, run)
    return email_msg(cfg, subject, text, html, items[1].tid and ("%s+%d"):format(items[1].tid, #items))
  end,
  overdue = function(cfg, item)
    local message = item.info.message
    local subject = ("luaflow: %s is overdue"):format(item.obj.name)
    local text = ("%s.\n\nState: %s\n"):format(message, tostring(item.state))
    local html = ([[<html><body><table style="border-left: 4px solid %s; padding-left: 8px">
<tr><td>%s.</td></tr>
<tr><td>State: <pre>%s</pre></td></tr>
</table></body></html>
]]):format(OVERDUE_COLOR, html_escape(message), html_escape(tostring(item.state)))
    return email_msg(cfg, subject, text, html, item.tid)
  end,
}

M.email_notifier = notifier("email_notifier", email_kind)
M.gmail_notifier = notifier("gmail_notifier", setmetatable({ defaults = {
  smtp_url = "smtps://smtp.gmail.com:465",
  username_secret = "EMAIL_USERNAME",
  password_secret = "EMAIL_PASSWORD",
} }, { __index = email_kind }))

-- ---- waiting for asynchronous deliveries ----

-- Waits until every delivery queued with async = true is delivered or given
-- up (each within its deliver_within); returns how many were pending.
function M.flush()
  return sender.drain()
end

return M
