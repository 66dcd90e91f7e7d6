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

-- Runs a shell command without the sanitizer runtime check-mem preloads (for
-- system tools); returns whether it succeeded and its output (stderr too).
function M.sh(cmd)
  local p = io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

-- The JSON lines a `--json -` run wrote to stdout, decoded.
function M.json_lines(stdout)
  local json = require("luaflow").json
  local out = {}
  for line in stdout:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then out[#out + 1] = json.decode(line) end
  end
  return out
end

-- The entry of task `name` in a decoded --json line.
function M.task_entry(line, name)
  for _, t in ipairs(line.tasks) do
    if t.name == name then return t end
  end
  error("no task " .. name .. " in the --json line")
end

-- The decoded JSON bodies of a receiver's HTTP records.
function M.bodies(records)
  local json = require("luaflow").json
  local out = {}
  for i, rec in ipairs(records) do out[i] = json.decode(rec.body) end
  return out
end

-- "luaflow.x.y" for every function and callable value reachable from the
-- module (names starting with "_" left out), sorted.
function M.public_functions(module, name)
  local list, seen = {}, {}
  local function walk(t, prefix)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(k) == "string" and not k:match("^_") then
        local path = prefix .. "." .. k
        local mt = getmetatable(v)
        local callable = type(v) == "function" or (type(mt) == "table" and rawget(mt, "__call") ~= nil)
        if callable then list[#list + 1] = path end
        if type(v) == "table" and not callable and not k:match("^%u") then walk(v, path) end
      end
    end
  end
  walk(module, name)
  table.sort(list)
  return list
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
