-- require("luaflow"): the public module (docs/reference.md).
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
M.executors = require("luaflow.executors")
core.time.cpu_time = core.cpu_time
M.Task, M.task, M.Flow, M.Parameter = graph.Task, graph.task, graph.Flow, graph.Parameter
M.unmapped, M.flatten = graph.unmapped, graph.flatten
M.cache_validators = require("luaflow.cache").validators

-- ---- logging from flows and tasks ----

-- The logger's name where the code runs: luaflow.<task> inside a task (its
-- body and its handlers), luaflow.<flow> in a flow's handlers, else luaflow.
local function logger_name()
  local task_name = core.context_get("task_full_name") -- a mapped child: double[2]
  if task_name then return "luaflow." .. task_name end
  local run = graph.runs[#graph.runs]
  if run then return "luaflow." .. run.flow.name end
  return "luaflow"
end

local LEVELS = { "debug", "info", "warning", "error", "critical" }

-- fn(msg) or fn(format, ...) (string.format); `self` is skipped so that
-- logger:info(...) and logger.info(...) both work.
local function log_function(level, name_of, self)
  return function(a, ...)
    local n = select("#", ...)
    if a == self and self ~= nil then
      if n == 0 then core.raise(("%s(msg): a message is required"):format(level)) end
      return log_function(level, name_of)(...)
    end
    local msg
    if n > 0 then
      if type(a) ~= "string" then
        core.raise(("luaflow.log.%s(format, ...): the format must be a string (got %s)")
                   :format(level, require("luaflow.options").describe(a)))
      end
      local ok, text = pcall(string.format, a, ...)
      if not ok then core.raise(("luaflow.log.%s: %s"):format(level, text:gsub("^bad argument #(%d+) to 'format'", "bad argument"))) end
      msg = text
    else
      msg = tostring(a)
    end
    core.log(level, name_of(), msg)
  end
end

-- A logger object: logger:info("loaded %d rows", n) (or logger.info(...)).
local function new_logger(name)
  local logger = { name = name }
  for _, level in ipairs(LEVELS) do
    logger[level] = log_function(level, function() return name end, logger)
  end
  return setmetatable(logger, { __tostring = function() return "<Logger: " .. name .. ">" end })
end

-- luaflow.context: the run's facts, read when asked.
M.context = setmetatable({}, {
  __index = function(_, k)
    local run = graph.runs[#graph.runs]
    if k == "logger" then return new_logger(logger_name()) end
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

-- luaflow.log.info("msg") / luaflow.log.info("loaded %d rows", n): one line
-- on stderr, named after the task (or flow) it is written from.
M.log = {
  set_level = core.set_log_level,
  level = core.log_level,
  logger = function(name)
    if type(name) ~= "string" or name == "" then
      core.raise("luaflow.log.logger(name): name must be a non-empty string")
    end
    return new_logger(name)
  end,
}
for _, level in ipairs(LEVELS) do M.log[level] = log_function(level, logger_name) end

local env_level = os.getenv("LUAFLOW_LOG_LEVEL")
if env_level and env_level ~= "" then core.set_default_log_level(env_level) end

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
