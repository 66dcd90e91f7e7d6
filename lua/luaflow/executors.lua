-- luaflow.executors: where task bodies run. Local() runs them one at a time
-- in the engine's own Lua state (the default); Threads{workers = N} and
-- Processes{workers = N} run up to N at once in worker threads or worker
-- processes, each with a Lua state of its own (src/lua_executors.h).
local core = require("luaflow.core")
local options = require("luaflow.options")

local M = {}

local executor_mt = { __name = "luaflow.Executor" }
executor_mt.__index = {}
executor_mt.__tostring = function(e)
  if e.kind == "local" then return "<Executor: Local>" end
  return ("<Executor: %s{workers = %d}>"):format(e.kind == "threads" and "Threads" or "Processes", e.workers)
end

function M.is_executor(v)
  return getmetatable(v) == executor_mt
end

-- The number of CPUs this process may use: the default number of workers.
M.cpu_count = core.cpu_count

local function workers_of(name, opts)
  if opts == nil then return core.cpu_count() end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    core.raise(("luaflow.executors.%s: options must be a table like {workers = 4} (got %s)")
               :format(name, options.describe(opts)))
  end
  for k in pairs(opts) do
    if k ~= "workers" then
      core.raise(("luaflow.executors.%s: unknown option %s (the one option is workers)")
                 :format(name, options.describe(k)))
    end
  end
  local n = opts.workers
  if n == nil then return core.cpu_count() end
  if math.type(n) ~= "integer" or n < 1 or n > 1024 then
    core.raise(("luaflow.executors.%s: workers must be an integer from 1 to 1024 (got %s)")
               :format(name, options.describe(n)))
  end
  return n
end

function M.Local()
  return setmetatable({ kind = "local", workers = 1 }, executor_mt)
end

function M.Threads(opts)
  return setmetatable({ kind = "threads", workers = workers_of("Threads", opts) }, executor_mt)
end

function M.Processes(opts)
  return setmetatable({ kind = "processes", workers = workers_of("Processes", opts) }, executor_mt)
end

-- Where print in a worker writes: "stdout", or "stderr" (luaflow run --json -,
-- whose stdout holds JSON lines only).
M.print_to = "stdout"

-- The executor of every flow:run that names none (the CLI's --executor);
-- nil: Local.
M.default = nil

function M.set_default(e)
  if e ~= nil and not M.is_executor(e) then
    core.raise(("luaflow.executors.set_default: expected an executor (got %s)"):format(options.describe(e)))
  end
  M.default = e
end

return M
