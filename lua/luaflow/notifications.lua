-- Notifications: state handlers that tell the world.
-- Every notifier is usable directly (state_handlers = {slack_notifier}) or
-- configured (slack_notifier{only_states = {"Failed"}} returns a handler).
local core = require("luaflow.core")
local json = core.json
local states = core.states
local options = require("luaflow.options")

local M = {}

-- A handler that calls fn(obj, new_state) when check(new_state) is true, and
-- keeps new_state.
function M.callback_factory(fn, check)
  for _, arg in ipairs({ { "fn", fn }, { "check", check } }) do
    if not options.is_callable(arg[2]) then
      core.raise(("callback_factory(fn, check): %s must be a function (got %s)"):format(arg[1], options.describe(arg[2])))
    end
  end
  return function(obj, _, new_state)
    if check(new_state) == true then fn(obj, new_state) end
    return new_state
  end
end

-- ---- shared by the notifiers ----

-- only_states / ignore_states (checked by luaflow.options) as a list of classes.
local function classes(list)
  if list == nil then return nil end
  if type(list) ~= "table" or getmetatable(list) then list = { list } end
  local out = {}
  for i, v in ipairs(list) do out[i] = type(v) == "string" and states[v] or v end
  return out
end

-- ignore_states is checked first; only_states, when given, must match. Both
-- are subclass-aware (state:is).
local function wanted(cfg, state)
  for _, cls in ipairs(cfg.ignore_states or {}) do
    if state:is(cls) then return false end
  end
  if cfg.only_states and #cfg.only_states > 0 then
    for _, cls in ipairs(cfg.only_states) do
      if state:is(cls) then return true end
    end
    return false
  end
  return true
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

local function failure(what, obj, reason)
  local msg = ("%s notification for %s failed"):format(what, tostring(obj))
  if reason then msg = msg .. ": " .. core.redact(tostring(reason)) end
  error(msg, 0)
end

local function http()
  return require("luaflow.http")
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

local function post_json(cfg, what, obj, url, payload, secret_name)
  -- encoded with every secret hidden (keys and values); the URL is sent as it is
  local ok, res = pcall(http().post, url, { body = core.json_redacted(payload),
                                            headers = { ["Content-Type"] = "application/json" },
                                            timeout = cfg.timeout or 10,
                                            ca_file = cfg.ca_file, verify = cfg.verify })
  if not ok then return failure(what, obj, res) end
  if res.status < 200 or res.status > 299 then
    local origin = core.http.origin(url) or "the server"
    return failure(what, obj, ("HTTP %d from %s; %s"):format(res.status, origin,
                                                             status_hint(res.status, secret_name)))
  end
end

-- With raise_on_error = false nothing a delivery does fails the task (a
-- missing secret, a bad value, the transport): it is logged as a WARNING.
local function send_quietly(what, send, cfg, obj, old_state, new_state)
  local ok, err = pcall(send, cfg, obj, old_state, new_state)
  if ok then return end
  local msg = core.redact(tostring(err))
  local prefix = ("%s notification for %s failed"):format(what, tostring(obj))
  if msg:sub(1, #prefix) ~= prefix then msg = prefix .. ": " .. msg end
  core.log("WARNING", "luaflow.notifications", msg)
end

-- Builds a notifier: `send(cfg, obj, old_state, new_state)` does the work;
-- `what` names it in failures ("Slack notification for <Task: t> failed").
local function notifier(name, what, defaults, send)
  local function configure(opts)
    local cfg = {}
    for k, v in pairs(defaults) do cfg[k] = v end
    for k, v in pairs(options.check(name, opts or {})) do cfg[k] = v end
    cfg.only_states = classes(cfg.only_states)
    cfg.ignore_states = classes(cfg.ignore_states)
    return function(obj, old_state, new_state)
      if not wanted(cfg, new_state) then return new_state end
      if cfg.raise_on_error == false then
        send_quietly(what, send, cfg, obj, old_state, new_state)
      else
        send(cfg, obj, old_state, new_state)
      end
      return new_state
    end
  end
  local direct
  return setmetatable({ name = name }, {
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
end

local function secret(name)
  return require("luaflow.secrets").text(name)
end

-- ---- Slack ----

function M.slack_payload(obj, state)
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
  return { attachments = json.array({ {
    fallback = "State change notification",
    color = state.color,
    author_name = "luaflow",
    title = class,
    text = ("%s is now in a %s state"):format(obj.name, class),
    fields = fields,
    footer = "luaflow notification",
  } }) }
end

M.slack_notifier = notifier("slack_notifier", "Slack",
  { webhook_secret = "SLACK_WEBHOOK_URL" },
  function(cfg, obj, _, new_state)
    local url = secret(cfg.webhook_secret)
    post_json(cfg, "Slack", obj, url, M.slack_payload(obj, new_state), cfg.webhook_secret)
  end)

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

function M.webhook_payload(obj, old_state, new_state)
  local graph = require("luaflow.graph")
  local run = graph.runs[#graph.runs]
  local is_flow = graph.is_flow(obj)
  return {
    event = "state_change",
    time = tostring(core.time.now()),
    flow = { name = run and run.flow.name or json.null, run_id = run and run.run_id or json.null },
    object = { kind = is_flow and "flow" or "task", name = obj.name },
    old_state = state_doc(old_state, false),
    new_state = state_doc(new_state, true),
  }
end

M.webhook_notifier = notifier("webhook_notifier", "Webhook",
  { url_secret = "WEBHOOK_URL" },
  function(cfg, obj, old_state, new_state)
    local url = secret(cfg.url_secret)
    post_json(cfg, "Webhook", obj, url, M.webhook_payload(obj, old_state, new_state), cfg.url_secret)
  end)

-- ---- e-mail ----

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local function crlf(s)
  return (s:gsub("\r?\n", "\r\n"))
end

-- Subject, plain text and HTML of the message for a state change.
function M.email_content(obj, state)
  local class = state.name
  local detail = error_text(state)
  local shown = detail or state.message
  local subject = ("luaflow: %s is now %s"):format(obj.name, class)
  local text = ("%s is now in a %s state.\n"):format(obj.name, class)
  if shown and shown ~= "" then text = text .. "\nMessage: " .. shown .. "\n" end
  local html = ([[<html><body><table style="border-left: 4px solid %s; padding-left: 8px">
<tr><td><pre>%s</pre> is now in a <font color="%s"><b>%s</b></font> state</td></tr>%s
</table></body></html>
]]):format(state.color, html_escape(obj.name), state.color, class,
           (shown and shown ~= "") and ("\n<tr><td>Message: <pre>%s</pre></td></tr>"):format(html_escape(shown)) or "")
  return subject, text, html
end

local function address_list(v, option)
  if type(v) == "string" then return { v } end
  if type(v) == "table" and #v > 0 then return v end
  core.raise(option .. " must be an address or a list of addresses")
end

function M.email_message(from, to, subject, text, html)
  local boundary = ("luaflow-%08x%08x"):format(math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local lines = {
    "From: " .. from,
    "To: " .. table.concat(to, ", "),
    "Subject: " .. subject,
    "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S +0000"),
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

local function send_email(cfg, obj, _, new_state)
  local username = cfg.username_secret and secret(cfg.username_secret)
  local password = cfg.password_secret and secret(cfg.password_secret)
  local to = cfg.to or username
  if to == nil then core.raise("email_notifier: no recipient (give `to`)") end
  to = address_list(to, "to")
  local from = cfg.from or username or "luaflow@localhost"
  if not cfg.smtp_url then core.raise("email_notifier: smtp_url is required") end
  local subject, text, html = M.email_content(obj, new_state)
  local message = M.email_message(from, to, core.redact(subject), core.redact(text), core.redact(html))
  -- called through pcall so that a bad value's error names no place inside luaflow
  local called, ok, err = pcall(core.http.smtp_send, {
    url = cfg.smtp_url, starttls = cfg.starttls, username = username, password = password,
    from = from, to = to, message = message, timeout = cfg.timeout or 10,
    verify = cfg.verify, ca_file = cfg.ca_file,
  })
  if not called then err = (tostring(ok):gsub("^smtp_send: ", "")) end
  if not called or not ok then failure("Email", obj, err) end
end

M.email_notifier = notifier("email_notifier", "Email", {}, send_email)
M.gmail_notifier = notifier("gmail_notifier", "Email", {
  smtp_url = "smtps://smtp.gmail.com:465",
  username_secret = "EMAIL_USERNAME",
  password_secret = "EMAIL_PASSWORD",
}, send_email)

return M
