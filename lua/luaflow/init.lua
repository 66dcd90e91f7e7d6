-- require("luaflow"): the public module (API.md section 1).
local core = require("luaflow.core")
local graph = require("luaflow.graph")

local M = {}
M.version = core.version
M.states = {}
for name, class in pairs(core.states) do
  if name:sub(1, 1) ~= "_" then M.states[name] = class end
end
core.states._methods.task_states = graph.task_states

M.signals = require("luaflow.signals")
M.triggers = require("luaflow.triggers")
M.notifications = require("luaflow.notifications")
M.json = core.json
M.http = require("luaflow.http")
M.secrets = require("luaflow.secrets")
M.Secret = M.secrets.Secret
M.time = core.time
core.time.cpu_time = core.cpu_time
M.Task, M.task, M.Flow, M.Parameter = graph.Task, graph.task, graph.Flow, graph.Parameter

-- luaflow.context: the run's facts, read when asked.
M.context = setmetatable({}, {
  __index = function(_, k)
    local run = graph.runs[#graph.runs]
    if k == "parameters" then return run and run.parameters end
    if k == "flow_name" then return run and run.flow.name end
    if k == "flow_run_id" then return run and run.run_id end
    return core.context_get(k)
  end,
  __newindex = function() core.raise("luaflow.context is read-only") end,
})

-- luaflow.pause_task([message [, duration]]): pauses the task's body unless
-- its pause was approved (luaflow.context.resume), as Prefect's pause_task.
-- With a duration (seconds) the task resumes by itself when it has passed.
function M.pause_task(message, duration)
  if core.context_get("resume") then return end
  local opts = { message = message or "Pause signal raised during task execution." }
  if duration ~= nil then
    if type(duration) ~= "number" or not (duration >= 0) or duration == math.huge then
      core.raise("pause_task: duration must be a non-negative number of seconds")
    end
    opts.start_time = core.time.now() + duration
  end
  error(M.signals.PAUSE(opts))
end

M.log = {
  set_level = core.set_log_level,
  level = core.log_level,
}
for _, level in ipairs({ "debug", "info", "warning", "error", "critical" }) do
  M.log[level] = function(msg) core.log(level, "luaflow", tostring(msg)) end
end

local env_level = os.getenv("LUAFLOW_LOG_LEVEL")
if env_level and env_level ~= "" then core.set_log_level(env_level) end

-- os.exit inside a task or handler raises instead of ending the host.
if not core.exit_guarded then
  local exit = os.exit
  core.exit_guarded = exit
  os.exit = function(...)
    if core.running() then error("os.exit called during a flow run", 2) end
    return exit(...)
  end
end

M._graph = graph
return M
