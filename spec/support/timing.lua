-- Helpers of the specs of the time-dependent state machine (retries_spec,
-- timeouts_spec, pause_spec, cancellation_spec): clocks, waiting, and a
-- handler that records every transition with the time it happened.
local luaflow = require("luaflow")

local M = {}

-- Sanitizer builds run slower: timing tolerances scale with this.
M.SANITIZE = (os.getenv("LUAFLOW_SANITIZE") or "") ~= "" or (os.getenv("LUAFLOW_TSAN") or "") ~= ""
M.SLACK = M.SANITIZE and 3 or 1

function M.now() return luaflow.time.now():timestamp() end

-- Spins for `seconds` of wall time (a task that does work without yielding).
function M.busy(seconds)
  local t0 = M.now()
  while M.now() - t0 < seconds do end
end

function M.pause_briefly() os.execute("sleep 0.05") end

-- Polls `ready()` every 50 ms for at most `limit` seconds; returns its last value.
function M.wait_until(ready, limit)
  local deadline = M.now() + limit
  local v = ready()
  while not v and M.now() < deadline do
    M.pause_briefly()
    v = ready()
  end
  return v
end

-- A handler that records every transition of its object: the printed form
-- ("old -> new"), when it happened, the attempt number the context gives, and
-- for Scheduled-family states their start_time and run_count.
function M.recorder(log)
  return function(_, old, new)
    log[#log + 1] = {
      line = tostring(old) .. " -> " .. tostring(new),
      at = M.now(),
      attempt = luaflow.context.task_run_count,
      new_name = new.name,
      start = new.start_time and new.start_time:timestamp(),
      run_count = new.run_count,
    }
  end
end

function M.lines_of(log)
  local list = {}
  for i, e in ipairs(log) do list[i] = e.line end
  return list
end

-- Runs a one-task flow; returns the flow state and the task's final state.
function M.run_one(t, opts)
  local state = luaflow.Flow{name = "one", tasks = {t}}:run(opts)
  return state, state.result[t]
end

M.RUNNING = 'Running("Starting task run.")'

return M
