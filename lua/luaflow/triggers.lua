-- Triggers: built-ins run in C (src/trigger.c, their ids core.trigger_ids);
-- each is also callable from Lua as trigger(states, by_task), passing with
-- true or raising the signal the C check gives (TRIGGERFAIL, PAUSE, SKIP).
local core = require("luaflow.core")

local M = {}
local ids = core.trigger_ids

local trigger_mt = { __luaflow_kind = "trigger" }
trigger_mt.__index = trigger_mt
trigger_mt.__call = function(self, states)
  if states ~= nil and type(states) ~= "table" then
    core.raise(("%s(states, by_task): states must be a list of upstream states (got %s)")
               :format(self.name, require("luaflow.options").describe(states)))
  end
  local ok, signal = core.trigger_check(self._trigger_id, states or {}, self.at_least,
                                        self.at_most, false)
  if ok then return true end
  error(signal, 2)
end
trigger_mt.__tostring = function(self) return "<Trigger: " .. self.name .. ">" end

local function builtin(name, at_least, at_most)
  return setmetatable({ _trigger_id = ids[name], name = name, at_least = at_least,
                        at_most = at_most }, trigger_mt)
end

for name in pairs(ids) do
  if name ~= "some_successful" and name ~= "some_failed" then M[name] = builtin(name) end
end
M.always_run = M.all_finished

local function bounded(name)
  return function(opts)
    opts = require("luaflow.options").check(name, opts or {})
    return builtin(name, opts.at_least, opts.at_most)
  end
end
M.some_successful = bounded("some_successful")
M.some_failed = bounded("some_failed")

return M
