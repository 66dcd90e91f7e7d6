-- A flow whose handlers are C functions (examples/c_handler/handlers.c).
-- Run: LUA_CPATH="build/examples/?.so;;" build/luaflow run examples/c_handler/flow.lua
local luaflow = require("luaflow")
local handlers = require("handlers")
local counter, read = handlers.counter()

local check = luaflow.task{state_handlers = {counter, handlers.alert}}(function(a, b)
  if a == b then
    local sig = luaflow.signals.FAIL("a equaled b!")
    sig.flag = true
    sig.value = a
    error(sig)
  end
  return a + b
end)

local flow = luaflow.Flow("c-handlers", function()
  check(1, 2)
  check(3, 3)
end)
flow:run()
local calls, failures = read()
print(("counted %d state changes, %d failed"):format(calls, failures))
