-- Task results inside table arguments: `total({f(1), f(2), f(3)})` in a flow
-- builder makes an edge from each f to total, and total receives the table
-- with the results in place (Prefect 1 does the same for lists, tuples, dicts
-- and sets). References are found anywhere inside a table: nested, as keys
-- and as values.
--
-- When the builder calls a task, scan() turns each table argument that holds
-- references or tasks into a template (a "node" for every table on the way to
-- one) and lists the upstream tasks; the C side (src/lua_flow.c) adds the
-- edges and keeps the template as the argument's constant. Before the body
-- runs, expand() builds a fresh table from the template with the upstream
-- results in place (src/lua_table_args.c). A table without references stays the
-- constant it was. Both walks are iterative: nesting depth costs no C stack.
local core = require("luaflow.core")

local M = {}
local task_mt = core.task_mt
local getmetatable_raw, setmetatable_raw = debug.getmetatable, debug.setmetatable

-- A template node: { mt = the table's metatable, n = entries, k1, v1, k2, v2, ... }
-- where a value is a task of the flow (its result goes there), another node,
-- or a constant.
local node_mt = { __name = "luaflow.TableArg" }
M.node_mt = node_mt

-- scan(t, flow, ref_mt, resolve, self, copy) -> nil when t holds no
-- reference or task; else its template and the list of the distinct upstream
-- tasks it names. `self` is the task being called and `copy` its copy in the
-- flow: neither is an upstream of itself.
function M.scan(root, flow, ref_mt, resolve, self, copy)
  local root_mt = getmetatable_raw(root)
  if root_mt and rawget(root_mt, "__luaflow_map_arg") then -- unmapped(x), flatten(x)
    core.raise(("%s(x) is an argument of t:map(...) only: pass x itself to %s(...)")
               :format(root_mt.__name, tostring(self)))
  end
  local seen = { [root] = true }
  local order = { root }      -- every table reachable from root
  local parents = {}          -- child table -> list of tables holding it
  local direct = {}           -- tables holding a reference or task themselves
  local upstream = {}         -- reference or task -> the flow's task
  local ups, up_seen = {}, {}

  local function visit(holder, x)
    local tx = type(x)
    if tx == "table" then
      if getmetatable_raw(x) == ref_mt then
        local t = rawget(x, "_task")
        upstream[x] = t
        direct[holder] = true
        if not up_seen[t] then up_seen[t], ups[#ups + 1] = true, t end
        return
      end
      local p = parents[x]
      if p then p[#p + 1] = holder else parents[x] = { holder } end
      if not seen[x] then
        seen[x] = true
        order[#order + 1] = x
      end
    elseif tx == "userdata" and getmetatable_raw(x) == task_mt and x ~= self and x ~= copy then
      local t = resolve(flow, x) or x -- an uncalled task joins the flow, as an argument does
      upstream[x] = t
      direct[holder] = true
      if not up_seen[t] then up_seen[t], ups[#ups + 1] = true, t end
    end
  end

  local i = 1
  while order[i] do
    local t = order[i]
    for k, v in next, t do
      visit(t, k)
      visit(t, v)
    end
    i = i + 1
  end
  if #ups == 0 then return nil end

  -- The tables to copy: those that hold a reference, and every table that
  -- holds one of them (up to root).
  local copy, queue = {}, {}
  for t in pairs(direct) do copy[t] = true; queue[#queue + 1] = t end
  i = 1
  while queue[i] do
    for _, p in ipairs(parents[queue[i]] or {}) do
      if not copy[p] then copy[p] = true; queue[#queue + 1] = p end
    end
    i = i + 1
  end

  local nodes = {}
  for t in pairs(copy) do nodes[t] = setmetatable({ mt = getmetatable_raw(t), n = 0 }, node_mt) end
  local function shown(x)
    local up = upstream[x]
    if up ~= nil then return up end
    return nodes[x] or x
  end
  for t, node in pairs(nodes) do
    local n = 0
    for k, v in next, t do
      node[n + 1], node[n + 2] = shown(k), shown(v)
      n = n + 2
    end
    node.n = n
  end
  return nodes[root], ups
end

-- expand(node, results) -> a fresh table built from the template, with
-- results[task] wherever a task stands. An entry whose key is a nil (or NaN)
-- result is left out: Lua tables cannot hold it.
function M.expand(root, results)
  local copies, queue = {}, { root }
  copies[root] = {}
  local function value(x)
    local mt = getmetatable_raw(x)
    if mt == task_mt then return results[x] end
    if mt ~= node_mt then return x end
    local c = copies[x]
    if not c then
      c = {}
      copies[x] = c
      queue[#queue + 1] = x
    end
    return c
  end
  local i = 1
  while queue[i] do
    local node = queue[i]
    local c = copies[node]
    for j = 1, node.n, 2 do
      local k = value(node[j])
      if k ~= nil and k == k then rawset(c, k, value(node[j + 1])) end
    end
    if node.mt ~= nil then setmetatable_raw(c, node.mt) end
    i = i + 1
  end
  return copies[root]
end

return M
