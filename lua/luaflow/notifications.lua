-- Notifications: state handlers built from an action and a check.
local M = {}

-- A handler that calls fn(obj, new_state) when check(new_state) is true, and
-- keeps new_state.
function M.callback_factory(fn, check)
  assert(type(fn) == "function" or getmetatable(fn), "callback_factory: fn must be a function")
  assert(type(check) == "function" or getmetatable(check), "callback_factory: check must be a function")
  return function(obj, _, new_state)
    if check(new_state) == true then fn(obj, new_state) end
    return new_state
  end
end

return M
