-- Signals: values raised with error(sig) that carry their own fields. The
-- classes (their names, codes and metatables) are the C side's (src/signals.h,
-- core.signals); this is the constructors' sugar.
local core = require("luaflow.core")

local M = {}
local OPTIONS = { message = true, result = true }
-- FAIL("msg", {retry = false}): a failure that is never retried.
local NO_RETRY = { FAIL = true, TRIGGERFAIL = true, VALIDATIONFAIL = true }
local time_mt = getmetatable(core.time.now())

local function check_state_option(name, k, v)
  if k == "start_time" and not (getmetatable(v) == time_mt or (type(v) == "number" and v == v)) then
    core.raise(("%s: start_time must be a time value or epoch seconds, got %s"):format(name, type(v)))
  elseif k == "run_count" and not (math.type(v) == "integer" and v >= 0 and v < 0x7fffffff) then
    core.raise(("%s: run_count must be a non-negative integer"):format(name))
  end
end

-- FAIL("msg"), FAIL("msg", {result = x}), FAIL{message =, result =}, FAIL();
-- RETRY also takes start_time and run_count, PAUSE start_time.
local function build(mt, a, b)
  local sig = setmetatable({}, mt)
  local opts = b
  if type(a) == "table" then
    opts = a
  elseif a ~= nil then
    sig.message = a
  end
  if opts ~= nil then
    if type(opts) ~= "table" then
      core.raise(("%s(message, opts): opts must be a table such as {result = x} (got %s)")
                 :format(mt.__name, require("luaflow.options").describe(opts)))
    end
    -- options that set the state's own fields, as Prefect's RETRY(start_time=...)
    local own = mt.__luaflow_state_options
    for k, v in pairs(opts) do
      if own and own[k] then
        check_state_option(mt.__name, k, v)
      elseif k == "retry" and NO_RETRY[mt.__name] then
        if type(v) ~= "boolean" then
          core.raise(("%s: retry must be true or false (got %s)")
                     :format(mt.__name, require("luaflow.options").describe(v)))
        end
        if v == false then sig._no_retry = true end
        goto next
      elseif not OPTIONS[k] then
        core.raise(("unknown option '%s' for signal %s"):format(tostring(k), mt.__name))
      end
      sig[k] = v
      ::next::
    end
    if rawget(opts, "result") ~= nil then sig._has_result = true end
  end
  return sig
end

for name, mt in pairs(core.signals) do
  local class = { name = name }
  if name == "ENDRUN" then
    setmetatable(class, { __call = function(_, state)
      if not core.is_state(state) then core.raise("ENDRUN needs a State") end
      return setmetatable({ state = state }, mt)
    end, __tostring = function() return name end })
  else
    setmetatable(class, { __call = function(_, a, b) return build(mt, a, b) end,
                          __tostring = function() return name end })
  end
  M[name] = class
end

-- The signal's name ("FAIL", ...) when v is a signal, else nil.
function M.kind(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt and mt.__luaflow_signal and mt.__name or nil
end

return M
