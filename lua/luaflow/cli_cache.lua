-- luaflow cache [list] [--json] and luaflow cache clear [KEY]: the task
-- results cached in the run store (tasks with cache_for; lua/luaflow/cache.lua).
local core = require("luaflow.core")
local json = core.json
local cli_store = require("luaflow.cli_store")

local M = {}
local EXIT_OK, EXIT_USAGE = 0, 2

-- The store's cache table; false (and the path) when there is no store yet;
-- nil when it cannot be opened (reported).
local function open(o, ctx)
  local s, why = cli_store.open_for_reading(o, ctx.usage_error)
  if s == false then return false, why end
  if not s then
    ctx.report(why)
    return nil
  end
  local path = s:path()
  s:close()
  local db, err = core.cache_db(path)
  if not db then
    ctx.report(err)
    return nil
  end
  return db, path
end

local function stamp(t)
  if t == nil then return "never" end
  return tostring(core.time.from_timestamp and core.time.from_timestamp(t) or os.date("!%Y-%m-%dT%H:%M:%S+00:00", math.floor(t)))
end

-- The entry's result as JSON text (redacted), or nil when it cannot be shown.
local function result_json(e)
  if e.result == nil then return nil end
  local ok, v = core.codec.decode(e.result)
  if not ok then return nil end
  local fine, text = pcall(core.json_redacted, v)
  return fine and text or nil
end

function M.list(o, ctx)
  local db, path = open(o, ctx)
  if db == nil then return EXIT_USAGE end
  local rows = {}
  if db then
    local why
    rows, why = db:list()
    db:close()
    if not rows then
      ctx.report(why)
      return EXIT_USAGE
    end
  end
  if o.json then
    local list = json.array({})
    for i, e in ipairs(rows) do
      local r = result_json(e)
      list[i] = { key = core.redact(e.key), map_index = e.map_index or json.null, created = e.created,
                  expires = e.expires or json.null, run_id = e.run_id or json.null, state = e.state,
                  message = e.message and core.redact(e.message) or json.null,
                  result = r and json.decode(r) or json.null }
    end
    io.stdout:write(json.encode(list), "\n")
    return EXIT_OK
  end
  if #rows == 0 then
    io.stdout:write(("No cached results in %s.\n"):format(path))
    return EXIT_OK
  end
  local t = core.time.now():timestamp()
  for _, e in ipairs(rows) do
    local key = e.map_index and ("%s[%d]"):format(e.key, e.map_index) or e.key
    local left = e.expires and (e.expires > t and ("expires in %ds"):format(math.ceil(e.expires - t)) or "expired")
      or "never expires"
    local r = result_json(e)
    io.stdout:write(("%s  %s  %s  run %s  %s\n"):format(core.redact(key), stamp(e.created), left,
      e.run_id and e.run_id:sub(1, 8) or "-", r and core.redact(#r > 60 and r:sub(1, 57) .. "..." or r) or "(no JSON form)"))
  end
  return EXIT_OK
end

function M.clear(o, ctx)
  local db, path = open(o, ctx)
  if db == nil then return EXIT_USAGE end
  local n = 0
  if db then
    local why
    n, why = db:clear(o.key)
    db:close()
    if not n then
      ctx.report(why)
      return EXIT_USAGE
    end
  end
  io.stdout:write(("Removed %d cached result%s%s from %s.\n"):format(n, n == 1 and "" or "s",
    o.key and (" of '%s'"):format(o.key) or "", path))
  return EXIT_OK
end

return M
