-- Signals: values raised with error(sig) that carry their own fields. The C
-- side (src/lua_signal.c) reads the code in the metatable's __luaflow_signal.
local core = require("luaflow.core")

local M = {}
-- code -> metatable: the codec (src/lua_codec_walk.c) gives a signal that crosses
-- between Lua states the target state's own class.
M._metatables = {}
local codes = { FAIL = 1, SUCCESS = 2, RETRY = 3, SKIP = 4, PAUSE = 5, LOOP = 6,
                ENDRUN = 7, TRIGGERFAIL = 8, VALIDATIONFAIL = 9 }
local OPTIONS = { message = true, result = true }
-- Options that set the state's own fields, as Prefect's RETRY(start_time=...)
local STATE_OPTIONS = { RETRY = { start_time = true, run_count = true }, PAUSE = { start_time = true } }
local time_mt = getmetatable(core.time.now())

local function check_state_option(name, k, v)
  if k == "start_time" and not (getmetatable(v) == time_mt or (type(v) == "number" and v == v)) then
    core.raise(("%s: start_time must be a time value or epoch seconds, got %s"):format(name, type(v)))
  elseif k == "run_count" and not (math.type(v) == "integer" and v >= 0 and v < 0x7fffffff) then
    core.raise(("%s: run_count must be a non-negative integer"):format(name))
  end
end

local function printed(sig)
  local mt = getmetatable(sig)
  if mt.__name == "ENDRUN" then return "ENDRUN(" .. tostring(rawget(sig, "state")) .. ")" end
  local msg = rawget(sig, "message")
  if msg == nil then return mt.__name .. "()" end
  return ("%s(\"%s\")"):format(mt.__name, tostring(msg))
end

local function concat(a, b)
  return tostring(a) .. tostring(b)
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
    local own = STATE_OPTIONS[mt.__name]
    for k, v in pairs(opts) do
      if own and own[k] then
        check_state_option(mt.__name, k, v)
      elseif not OPTIONS[k] then
        core.raise(("unknown option '%s' for signal %s"):format(tostring(k), mt.__name))
      end
      sig[k] = v
    end
    if rawget(opts, "result") ~= nil then sig._has_result = true end
  end
  return sig
end

for name, code in pairs(codes) do
  local mt = { __luaflow_signal = code, __name = name, __tostring = printed, __concat = concat,
               __luaflow_kind = "signal" }
  M._metatables[code] = mt
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
