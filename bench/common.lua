-- What bench/bench.lua and bench/cli_flow.lua share: the clock, medians and
-- the floor every run-phase row is measured against.
local M = {}

-- CPU seconds (os.clock: every thread of the process) after a full collection,
-- so that no row pays for the garbage of the one before: neither Lua's
-- collector nor malloc's merging of the chunks it freed (glibc does that at
-- the next request of a few KB, which this one string makes).
function M.clock()
  collectgarbage()
  collectgarbage()
  local _ = ("x"):rep(8192)
  return os.clock()
end

function M.median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

-- The floor: a plain Lua loop that calls the same task function and the same
-- handlers the same number of times, making one small table per state a task
-- passes (Pending, Running, Success with the body's result). With `chained`,
-- each call gets the result of the one before, as a chain's tasks do.
function M.floor(n, hs, fn, chained)
  local nh, prev, t = #hs, nil, {}
  for _ = 1, n do
    local pending = { name = "Pending" }
    local running = { name = "Running", message = "Starting task run." }
    for j = 1, nh do hs[j](t, pending, running) end
    local r = fn(prev)
    local success = { name = "Success", message = "Task run succeeded.", result = r }
    for j = 1, nh do hs[j](t, running, success) end
    if chained then prev = r end
  end
end

return M
