-- Secrets: from flow:run{secrets=}, then LUAFLOW_SECRET_<NAME>,
-- then a JSON secrets file. Every string secret read is redacted from what
-- luaflow prints (src/redact.c).
local core = require("luaflow.core")
local json = core.json

local M = {}
local file_values -- the decoded contents of the secrets file
local warned = {}             -- secrets too short to hide, warned about once
M.missing = {}                -- names asked for and not found, in order (the CLI's hints)

-- LUAFLOW_SECRET_<NAME>: upper-cased, every character not a letter or digit made _.
function M.env_name(name)
  return "LUAFLOW_SECRET_" .. name:upper():gsub("[^%w]", "_")
end

-- "line L, column C" of byte position pos (1-based) in text; a column
-- counts characters (UTF-8), a tab as one.
local function line_column(text, pos)
  local before = text:sub(1, pos - 1)
  local line, start = 1, 1
  for nl in before:gmatch("()\n") do line, start = line + 1, nl + 1 end
  local _, chars = before:sub(start):gsub("[^\128-\191]", "")
  return ("line %d, column %d"):format(line, chars + 1)
end

-- The secrets file's contents: a JSON object of secret names to values;
-- nil, message (naming the file, the line and the column) otherwise.
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, ("secrets file '%s' cannot be read: %s"):format(path, err) end
  local text = f:read("a")
  f:close()
  if not text then return nil, ("secrets file '%s' cannot be read"):format(path) end
  local ok, values = pcall(json.decode, text)
  if not ok then
    local pos, what = tostring(values):match("invalid JSON at position (%d+): (.*)$")
    if not pos then return nil, ("secrets file '%s' is not valid JSON: %s"):format(path, tostring(values)) end
    return nil, ("secrets file '%s' is not valid JSON: %s: %s"):format(path, line_column(text, tonumber(pos)), what)
  end
  if type(values) ~= "table" or getmetatable(values) ~= nil then -- a JSON array carries a mark
    local found = type(values) == "table" and "an array" or values == json.null and "null"
                  or ("a %s"):format(math.type(values) and "number" or type(values))
    return nil, ("secrets file '%s' must hold a JSON object of secret names to values, not %s (%s)")
      :format(path, found, line_column(text, text:find("%S") or 1))
  end
  return values
end

-- Checks, reads and selects the JSON secrets file; nil, message when it is
-- refused (readable by its group or others, unreadable, not a JSON object).
function M.use_file(path)
  local mode, err = core.file_mode(path)
  if not mode then return nil, ("secrets file '%s' cannot be read: %s"):format(path, err) end
  if mode & 63 ~= 0 then -- mode & 077
    return nil, ("secrets file '%s' can be read by its group or others (mode %04o); run chmod 600 on it")
      :format(path, mode)
  end
  local values, why = read_file(path)
  if not values then return nil, why end
  file_values = values
  return true
end

-- The secrets file's values: the one the CLI checked when it started, else
-- LUAFLOW_SECRETS_FILE (read on first use when luaflow is a library).
local function load_file()
  if file_values then return file_values end
  local env = os.getenv("LUAFLOW_SECRETS_FILE")
  if not env or env == "" then return nil end
  local ok, err = M.use_file(env)
  if not ok then core.raise(err) end
  return file_values
end

local function decoded(value)
  if type(value) ~= "string" then return value end
  local ok, v = pcall(json.decode, value)
  if ok then return v end
  return value
end

-- Registers every string inside a secret value with the redactor.
local function remember(name, value, seen)
  if type(value) == "string" then
    if not core.add_secret(value) and not warned[name] then
      warned[name] = true
      core.log("WARNING", "luaflow.secrets",
               ("Secret \"%s\" is too short to be hidden in logs (fewer than 6 characters)"):format(name))
    end
  elseif type(value) == "table" then
    seen = seen or {}
    if seen[value] then return end
    seen[value] = true
    for _, v in pairs(value) do remember(name, v, seen) end
  end
end

local function current_run_secrets()
  local graph = package.loaded["luaflow.graph"]
  for i = #graph.runs, 1, -1 do
    local s = graph.runs[i].secrets
    if s ~= nil then return s end
  end
end

-- The secret's value as stored (a string is not decoded yet).
local function stored(name)
  if type(name) ~= "string" or name == "" then core.raise("a secret name must be a non-empty string") end
  if #package.loaded["luaflow.graph"].building > 0 then -- as Prefect 1
    core.raise("Secrets should only be retrieved during a Flow run, not while building a Flow.")
  end
  local value
  local given = current_run_secrets()
  if given then value = given[name] end
  if value == nil then
    local env = os.getenv(M.env_name(name))
    if env ~= nil then value = env end
  end
  if value == nil then
    local file = load_file()
    if file then value = file[name] end
  end
  if value == nil then
    if not M.missing[name] then
      M.missing[name] = true
      M.missing[#M.missing + 1] = name
    end
    core.raise(("Local Secret \"%s\" was not found."):format(name))
  end
  if type(value) == "string" then remember(name, value) end -- the raw text is hidden too
  return value
end

function M.get(name)
  local value = decoded(stored(name))
  remember(name, value)
  return value
end

-- A secret used where text is needed (a URL, a user name, a password): a
-- JSON string is decoded, a number keeps the text it was stored as ("1.50"
-- stays "1.50"; a number given as a Lua value is written as Lua does).
function M.text(name)
  local value = stored(name)
  local v = decoded(value)
  if type(v) == "string" then
    remember(name, v)
    return v
  end
  if math.type(v) then
    if type(value) ~= "string" then value = tostring(value) end
    remember(name, value)
    return value
  end
  core.raise(("secret \"%s\" must be text or a number here, not a %s"):format(name, type(v)))
end

-- luaflow.Secret(name):get()
local secret_mt = { __index = { get = function(self) return M.get(self.name) end } }
secret_mt.__tostring = function(self) return ("<Secret: %s>"):format(self.name) end
function M.Secret(name) return setmetatable({ name = name }, secret_mt) end

M.redact = core.redact

-- A copy of v with every string in it redacted, keys too (tables rebuilt,
-- metatables kept). luaflow's own outputs redact as they encode instead.
function M.redacted(v, seen)
  if type(v) == "string" then return core.redact(v) end
  if type(v) ~= "table" or v == core.json.null then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[M.redacted(k, seen)] = M.redacted(x, seen) end
  return setmetatable(out, getmetatable(v))
end

return M
