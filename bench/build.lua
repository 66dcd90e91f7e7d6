-- Building a flow, every way the API offers: CPU ns per task.
--   LUA_PATH="bench/?.lua;;" lua5.4 bench/build.lua API N   -> "API N ns_per_task"
-- The tasks a non-builder API adds are made before the clock starts (the
-- builder makes its copies itself, so its figure includes them); so is the
-- Flow{tasks=} that "add_edge after tasks=" adds its edges to.
local luaflow = require("luaflow")
local common = require("common")

local function body(x) return x end

local function bare_tasks(n)
  local ts = {}
  for i = 1, n do ts[i] = luaflow.Task{ name = "t", fn = body } end
  return ts
end

local APIS = {}
local ORDER = {}
local function api(name, prepare, build)
  APIS[name] = { prepare = prepare, build = build }
  ORDER[#ORDER + 1] = name
end

-- the functional builder: t() n times (the reference the others are held to)
api("builder", function() return luaflow.task{ name = "t" }(body) end, function(t, n)
  return luaflow.Flow("b", function()
    for _ = 1, n do t() end
  end)
end)
api("builder chain", function() return luaflow.task{ name = "t" }(body) end, function(t, n)
  return luaflow.Flow("b", function()
    local prev = t()
    for _ = 2, n do prev = t(prev) end
  end)
end)
api("Flow{tasks=}", bare_tasks, function(ts)
  return luaflow.Flow{ name = "f", tasks = ts }
end)
api("add_task", bare_tasks, function(ts, n)
  local f = luaflow.Flow{ name = "f" }
  for i = 1, n do f:add_task(ts[i]) end
  return f
end)
api("add_edge chain", bare_tasks, function(ts, n)
  local f = luaflow.Flow{ name = "f" }
  for i = 2, n do f:add_edge(ts[i - 1], ts[i]) end
  return f
end)
api("add_edge fan-in", bare_tasks, function(ts, n)
  local f = luaflow.Flow{ name = "f" }
  for i = 2, n do f:add_edge(ts[i], ts[1]) end
  return f
end)
-- add_edge on tasks a Flow{tasks=} holds already (the flow is made beforehand)
api("add_edge after tasks=", function(n)
  local ts = bare_tasks(n)
  return { ts = ts, flow = luaflow.Flow{ name = "f", tasks = ts } }
end, function(input, n)
  local ts, f = input.ts, input.flow
  for i = 2, n do f:add_edge(ts[i - 1], ts[i]) end
  return f
end)
api("set_upstream refs", function() return luaflow.task{ name = "t" }(body) end, function(t, n)
  return luaflow.Flow("b", function()
    local prev = t()
    for _ = 2, n do
      local r = t()
      r:set_upstream(prev)
      prev = r
    end
  end)
end)
api("set_upstream bare", bare_tasks, function(ts, n)
  return luaflow.Flow("b", function()
    for i = 2, n do ts[i]:set_upstream(ts[i - 1]) end
  end)
end)

local M = { order = ORDER }

-- The floor of building: a plain Lua loop keeping one small table per task.
local function floor(n)
  local keep = {}
  for i = 1, n do keep[i] = { i } end
  return keep
end

-- CPU ns per task of building with `name` at size n (the flow is dropped
-- after), and of the floor right after it in the same process.
function M.measure(name, n)
  local a = APIS[name]
  local input = a.prepare(n)
  local t0 = common.clock()
  local f = a.build(input, n)
  local t1 = os.clock()
  assert(#f:tasks() == n, name)
  f, input = nil, nil
  local t2 = common.clock()
  local kept = floor(n)
  local t3 = os.clock()
  assert(#kept == n)
  return (t1 - t0) / n * 1e9, (t3 - t2) / n * 1e9
end

if arg and arg[0] and arg[0]:match("build%.lua$") and arg[1] then
  local n = tonumber(arg[2]) or 10000
  print(("%-22s %8d %10.0f"):format(arg[1], n, (M.measure(arg[1], n))))
end

return M
