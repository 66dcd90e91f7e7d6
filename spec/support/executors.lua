-- Runs specs under every executor: the same spec file, once per executor
-- (not copies). LUAFLOW_SPEC_EXECUTORS (a comma-separated list of local,
-- threads, processes) narrows the list; all three by default.
--
--   local X = require("executors")
--   X.each(function(x)             -- x.name, x.is_local, x.executor()
--     it("...", function() ... end) -- flow:run{} uses x's executor here
--   end)
--
-- Bodies run in workers' own Lua states under threads and processes: an
-- upvalue a body changes is its worker's copy. What a body must tell the
-- spec goes through X.tally(), an append-only file every worker can write.
local luaflow = require("luaflow")
local executors = luaflow.executors

local M = {}

local MAKERS = {
  ["local"] = function() return executors.Local() end,
  threads = function() return executors.Threads { workers = 4 } end,
  processes = function() return executors.Processes { workers = 4 } end,
}

function M.names()
  local list = {}
  local env = os.getenv("LUAFLOW_SPEC_EXECUTORS")
  for name in (env and env ~= "" and env or "local,threads,processes"):gmatch("[^,%s]+") do
    assert(MAKERS[name], "LUAFLOW_SPEC_EXECUTORS: unknown executor " .. name)
    list[#list + 1] = name
  end
  return list
end

-- body(x) declares specs (it, describe) once per executor, inside a
-- describe named after it; each spec runs with that executor as the default
-- of every flow:run.
function M.each(body)
  local busted = require("busted")
  local describe, before_each, after_each = busted.describe, busted.before_each, busted.after_each
  for _, name in ipairs(M.names()) do
    local x = { name = name, is_local = name == "local", executor = MAKERS[name] }
    describe("under " .. name, function()
      before_each(function() executors.set_default(x.executor()) end)
      after_each(function()
        executors.set_default(nil)
        for _, t in ipairs(M.made) do t.remove() end
        M.made = {}
      end)
      body(x)
    end)
  end
end

-- Something bodies append to from any worker: t.add(v) (a line of
-- tostring(v)), t.list() the values in order (numbers back as numbers),
-- t.count().
M.made = {} -- the tallies of the spec running, removed after it

function M.tally()
  local path = os.tmpname()
  local t = { path = path }
  M.made[#M.made + 1] = t
  function t.add(v)
    local f = assert(io.open(path, "a"))
    f:write(tostring(v), "\n")
    f:close()
  end
  function t.list()
    local out = {}
    local f = io.open(path, "r")
    if not f then return out end
    for line in f:lines() do out[#out + 1] = math.tointeger(tonumber(line)) or tonumber(line) or line end
    f:close()
    return out
  end
  function t.count() return #t.list() end
  function t.remove() os.remove(path) end
  return t
end

-- The value a body gave back, seen by the engine: the very value under
-- Local, an equal copy under a worker executor.
function M.same(x, expected, actual)
  if x.is_local then return rawequal(expected, actual) end
  return require("luassert.util").deepcompare(expected, actual, true)
end

return M
