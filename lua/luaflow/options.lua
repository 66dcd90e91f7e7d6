-- One checker for the options of every luaflow function (Task, task, Flow,
-- flow:run, Parameter, the notifiers, the triggers): an unknown name or a value
-- of the wrong kind is an error raised at the user's own file and line, saying
-- what was expected and what was given.
local core = require("luaflow.core")

local M = {}
local raise = core.raise

-- ---- naming a value in a message ----

local function short(s)
  if #s > 40 then s = s:sub(1, 37) .. "..." end
  return s
end

-- "a notifier (slack_notifier)", "the string \"3\"", "a function", "nil", ...
function M.describe(v)
  local t = type(v)
  if t == "nil" then return "nil" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return "the number " .. tostring(v) end
  if t == "string" then return ("the string %q"):format(short(v)) end
  if t == "function" then return "a function" end
  local mt = getmetatable(v)
  if t == "userdata" then
    if mt == core.task_mt then return "a task (" .. tostring(v) .. ")" end
    if mt == core.flow_mt then return "a flow (" .. tostring(v) .. ")" end
    if core.is_state(v) then return "a state (" .. short(tostring(v)) .. ")" end
    if mt and mt.__name == "luaflow.CHandler" then return "a C handler" end
    return "a userdata"
  end
  if t == "table" then
    local kind = type(mt) == "table" and rawget(mt, "__luaflow_kind")
    if kind == "notifier" then return ("a notifier (%s)"):format(rawget(v, "name")) end
    if kind == "reference" then return ("a task result (%s)"):format(tostring(v)) end
    if kind then return ("a %s (%s)"):format(kind, short(tostring(v))) end
    if type(rawget(v, "_kind")) == "number" then return ("a state class (%s)"):format(v.name) end
    return next(v) == nil and "an empty table" or "a table"
  end
  return "a " .. t
end

-- ---- what a value may be ----

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end
M.is_callable = is_callable

local function is_c_handler(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return mt and mt.__name == "luaflow.CHandler" or false
end

local function is_handler(v) return is_callable(v) or is_c_handler(v) end

local function is_task_like(v)
  local mt = getmetatable(v)
  return mt == core.task_mt or (type(mt) == "table" and rawget(mt, "__luaflow_kind") == "reference")
end

-- The first key of t that is not an index of its list part, or nil.
local function non_list_key(t)
  local n = #t
  for k in next, t do
    if math.type(k) ~= "integer" or k < 1 or k > n then return k end
  end
end

local function plain_table(v)
  return type(v) == "table" and not is_callable(v)
end

-- A check: test(value, option) -> nil when fine, else the error message
-- (the option's name is in it). Each is built by one of the makers below.
local function simple(expected, ok)
  return function(v, option)
    if not ok(v) then return ("%s must be %s (got %s)"):format(option, expected, M.describe(v)) end
  end
end

local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

local C = {}
C.string = simple("a string", function(v) return type(v) == "string" end)
C.name = simple("a non-empty string", function(v) return type(v) == "string" and v ~= "" end)
C.boolean = simple("true or false", function(v) return type(v) == "boolean" end)
C.callable = simple("a function", is_callable)
C.count = simple("an integer >= 0", function(v) return math.type(v) == "integer" and v >= 0 end)
C.seconds = simple("a number of seconds >= 0", function(v) return finite(v) and v >= 0 end)
C.positive_seconds = simple("a number of seconds > 0", function(v) return finite(v) and v > 0 end)
C.non_negative = simple("a number >= 0", function(v) return finite(v) and v >= 0 end)
C.factor = simple("a number >= 1", function(v) return finite(v) and v >= 1 end)
C.fraction = simple("a number from 0 to 1", function(v) return finite(v) and v >= 0 and v <= 1 end)
C.table = simple("a table", plain_table)
C.any = function() end
C.executor = simple("luaflow.executors.Local(), Threads{workers = N} or Processes{workers = N}",
                    function(v) return require("luaflow.executors").is_executor(v) end)

-- A list whose items each pass `item`; a hint for the common slip of giving
-- one item where a list is wanted.
local function list_of(what, item, item_expected)
  return function(v, option)
    if not plain_table(v) then
      local msg = ("%s must be a list of %s (got %s)"):format(option, what, M.describe(v))
      if item(v) then
        local name = type(v) == "table" and rawget(v, "name")
        if type(name) ~= "string" then
          local line = M.user_line()
          name = line and line:match(option .. "%s*=%s*([%a_][%w_%.]*)") or "..."
        end
        msg = msg .. (": put it in a list, %s = {%s}"):format(option, name)
      end
      return msg
    end
    local k = non_list_key(v)
    if k ~= nil then
      return ("%s must be a list of %s (got a table with the key %s)"):format(option, what,
        type(k) == "string" and ("%q"):format(short(k)) or tostring(k))
    end
    for i = 1, #v do
      if not item(v[i]) then
        return ("%s[%d] must be %s (got %s)"):format(option, i, item_expected, M.describe(v[i]))
      end
    end
  end
end

C.handlers = list_of("handlers", is_handler, "a handler: a function, a notifier or a C handler")
C.tasks = list_of("tasks", is_task_like, "a task or the result of a task call")
C.strings = function(v, option)
  if type(v) == "string" then
    return ("%s must be a list of strings, not a string: write %s = {%q}"):format(option, option, short(v))
  end
  return list_of("strings", function(x) return type(x) == "string" end, "a string")(v, option)
end

-- A trigger: one of luaflow.triggers or a function(states, by_task).
C.trigger = function(v, option)
  local triggers = require("luaflow.triggers")
  for _, name in ipairs({ "some_successful", "some_failed" }) do
    if v == triggers[name] then
      return ("%s = luaflow.triggers.%s needs its bounds: write %s = luaflow.triggers.%s{at_least = 1}")
        :format(option, name, option, name)
    end
  end
  if is_callable(v) then return end
  local msg = ("%s must be one of luaflow.triggers or a function(states, by_task) (got %s)")
    :format(option, M.describe(v))
  if type(v) == "string" and require("luaflow.triggers")[v] then
    msg = msg .. (": write %s = luaflow.triggers.%s"):format(option, v)
  end
  return msg
end

-- A map of names to values (parameters =, secrets =).
C.named_values = function(v, option)
  if not plain_table(v) then return ("%s must be a table of NAME = value (got %s)"):format(option, M.describe(v)) end
  for k in next, v do
    if type(k) ~= "string" then
      return ("%s must be a table of NAME = value (got the key %s)"):format(option, M.describe(k))
    end
  end
end

-- A state class, its name, or a list of them (only_states, ignore_states).
local function is_state_class(x)
  return type(x) == "table" and type(rawget(x, "_kind")) == "number"
end
C.state_classes = function(v, option)
  local list = v
  if type(v) == "string" or is_state_class(v) then list = { v } end
  if not plain_table(list) or non_list_key(list) ~= nil then
    return ("%s must be a list of state classes or class names (got %s)"):format(option, M.describe(v))
  end
  for i = 1, #list do
    local x = list[i]
    if type(x) == "string" then
      local cls = core.states[x]
      if not cls or x:sub(1, 1) == "_" then
        return ("%s: unknown state class %q"):format(option, short(x))
      end
    elseif not is_state_class(x) then
      return ("%s[%d] must be a state class or a class name (got %s)"):format(option, i, M.describe(x))
    end
  end
end

-- An address or a list of addresses (to =).
C.addresses = function(v, option)
  if type(v) == "string" and v ~= "" then return end
  if plain_table(v) and #v > 0 and non_list_key(v) == nil then
    for i = 1, #v do
      if type(v[i]) ~= "string" or v[i] == "" then
        return ("%s[%d] must be an e-mail address (got %s)"):format(option, i, M.describe(v[i]))
      end
    end
    return
  end
  return ("%s must be an e-mail address or a list of them (got %s)"):format(option, M.describe(v))
end

-- flow:run's store =: a path, a store from luaflow.store.open, or false (none).
C.run_store = function(v, option)
  if v == false or (type(v) == "string" and v ~= "") then return end
  if type(v) == "userdata" and tostring(v):find("^luaflow.Store") then return end
  return ("%s must be the path of a run store, a store, or false (got %s)"):format(option, M.describe(v))
end

M.checks = C

-- ---- the options of each function ----

-- name -> check, for every function that takes options. A name with `true`
-- instead of a check is allowed with any value.
M.specs = {
  Task = { name = C.string, fn = C.callable, state_handlers = C.handlers, on_failure = C.callable,
           on_failure_final_only = C.boolean,
           max_retries = C.count, retry_delay = C.seconds, trigger = C.trigger,
           skip_on_upstream_skip = C.boolean, timeout = C.positive_seconds, tags = C.strings,
           cache_for = C.positive_seconds, cache_key = C.name, cache_validator = C.callable,
           retry_backoff = C.factor, max_retry_delay = C.positive_seconds, retry_jitter = C.fraction,
           retry_on = C.callable, deadline = C.positive_seconds, on_overdue = C.callable },
  Flow = { name = C.string, tasks = C.tasks, state_handlers = C.handlers, on_failure = C.callable,
           on_failure_final_only = C.boolean, deadline = C.positive_seconds, on_overdue = C.callable,
           reference_tasks = C.tasks, terminal_state_handler = C.callable },
  ["flow:run"] = { parameters = C.named_values, secrets = C.named_values, resume = C.tasks,
                  store = C.run_store, restart = C.string,
                   executor = C.executor },
  Parameter = { default = C.any, required = C.boolean },
}
M.specs.task = M.specs.Task

local NOTIFIER = { only_states = C.state_classes, ignore_states = C.state_classes,
                   raise_on_error = C.boolean, timeout = C.positive_seconds, ca_file = C.string,
                   verify = C.boolean, final_only = C.boolean, dedup = C.positive_seconds,
                   digest = C.positive_seconds, async = C.boolean,
                   deliver_within = C.positive_seconds }
local function notifier(extra)
  local spec = {}
  for k, v in pairs(NOTIFIER) do spec[k] = v end
  for k, v in pairs(extra) do spec[k] = v end
  return spec
end
M.specs.slack_notifier = notifier({ webhook_secret = C.name })
M.specs.webhook_notifier = notifier({ url_secret = C.name })
M.specs.email_notifier = notifier({ smtp_url = C.name, from = C.name, to = C.addresses,
                                    username_secret = C.name, password_secret = C.name,
                                    starttls = C.boolean })
M.specs.gmail_notifier = M.specs.email_notifier
M.specs.callback_factory = { final_only = C.boolean }
M.specs.some_successful = { at_least = C.non_negative, at_most = C.non_negative }
M.specs.some_failed = M.specs.some_successful

-- ---- unknown names ----

-- Levenshtein distance, for "did you mean" (option names are short).
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- The known name closest to `name`, when it is close enough to be a typo.
function M.suggest(name, known)
  local best, best_d
  for k in pairs(known) do
    local d = distance(name, k)
    if d <= math.max(2, #k // 4) and (not best_d or d < best_d or (d == best_d and k < best)) then
      best, best_d = k, d
    end
  end
  return best
end

local function sorted_keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- check(what, opts [, spec]): opts must be a table whose every key is one of
-- spec's (default M.specs[what]) and whose values pass their checks.
function M.check(what, opts, spec)
  spec = spec or M.specs[what]
  if not plain_table(opts) then
    raise(("%s: options must be a table (got %s)"):format(what, M.describe(opts)))
  end
  for k, v in next, opts do
    local check = type(k) == "string" and spec[k]
    if not check then
      local msg = ("unknown option '%s' for %s"):format(tostring(k), what)
      local guess = type(k) == "string" and M.suggest(k, spec)
      if guess then
        msg = msg .. (" (did you mean '%s'?)"):format(guess)
      else
        msg = msg .. (" (options: %s)"):format(table.concat(sorted_keys(spec), ", "))
      end
      raise(msg)
    end
    if check ~= true then
      local problem = check(v, k)
      if problem then raise(what .. ": " .. problem) end
    end
  end
  return opts
end

-- ---- methods called with '.' instead of ':' ----

-- The user's frame nearest the caller (the first outside luaflow's own
-- modules): its source and current line, or nil.
local function user_frame()
  for level = 2, 64 do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    if info.currentline > 0 and info.what ~= "C" and not info.source:match("^=luaflow") then
      return info.source, info.currentline
    end
  end
end

-- The text of line `n` of the user's file, or nil.
local function source_line(source, n)
  if type(source) ~= "string" or source:sub(1, 1) ~= "@" then return nil end
  local f = io.open(source:sub(2), "r")
  if not f then return nil end
  local i, found = 0, nil
  for line in f:lines() do
    i = i + 1
    if i == n then found = line break end
  end
  f:close()
  return found
end

M.user_frame = user_frame

-- The text of the user's line that called into luaflow, or nil.
function M.user_line()
  local source, line = user_frame()
  return source and source_line(source, line)
end

-- True when the user's line calls `.method(` (not `:method(`).
function M.dot_call(method)
  local text = M.user_line()
  return text ~= nil and text:find("[%w_%]%)]%." .. method .. "%s*[%(%{\"']") ~= nil
end

-- Raises "<obj>.<method>() was called without the <kind>: did you mean
-- <obj>:<method>()?", naming the variable the user's line calls it on.
function M.self_error(kind, method)
  local text = M.user_line()
  local var = text and text:match("([%a_][%w_%.]*)%." .. method .. "%s*[%(%{\"']")
  var = var or kind
  raise(("%s.%s() was called without the %s: did you mean %s:%s()?"):format(var, method, kind, var, method))
end

return M
