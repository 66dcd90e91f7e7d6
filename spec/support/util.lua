-- Small helpers the specs share.
local M = {}

-- One shell word, whatever the text holds.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

-- A file's whole content, or nil when it cannot be read.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- How many times `piece` occurs in `text` (plain text).
function M.count(text, piece)
  local n, at = 0, 1
  while true do
    local i, j = text:find(piece, at, true)
    if not i then return n end
    n, at = n + 1, j + 1
  end
end

function M.has(text, piece)
  return text:find(piece, 1, true) ~= nil
end

-- A state handler that appends "old -> new" to log (prefixed with tag when
-- given) and keeps the state.
function M.recorder(log, tag)
  return function(_, old, new)
    local line = tostring(old) .. " -> " .. tostring(new)
    log[#log + 1] = tag and (tag .. ": " .. line) or line
  end
end

-- A one-task flow; returns the flow's final state and the task's.
function M.run_one(t)
  local state = require("luaflow").Flow{ name = "one", tasks = { t } }:run()
  return state, state.result[t]
end

-- A flow file: task "a" prints MARK-a, then "gate" (manual_only) prints
-- MARK-gate once approved.
M.GATED_FLOW = [[
local luaflow = require("luaflow")
local a = luaflow.Task{name = "a", fn = function() print("MARK-a") end}
local gate = luaflow.Task{name = "gate", trigger = luaflow.triggers.manual_only,
                          fn = function() print("MARK-gate") end}
local f = luaflow.Flow{name = "approval", tasks = {a, gate}}
f:add_edge(a, gate)
]]

return M
