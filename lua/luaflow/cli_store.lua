-- Which run store a command uses, and opening it: --store PATH, else
-- --no-store (nothing), else LUAFLOW_STORE (a path, or "off"), else
-- $XDG_STATE_HOME/luaflow/luaflow.db (~/.local/state/luaflow/luaflow.db when
-- XDG_STATE_HOME is unset or not an absolute path).
--
-- `luaflow run` records into it: a store that cannot be opened is one WARNING
-- and the run goes on unrecorded. The commands that read it (runs, graph
-- --run) stop with one clear error (exit 2) instead.
local core = require("luaflow.core")
local store = require("luaflow.store")

local M = {}

-- The store's path; false when recording is turned off; nil and why when no
-- path can be made. usage_error(msg) is called for options that contradict.
function M.choose(o, usage_error)
  if o.store and o["no-store"] then usage_error("--store and --no-store cannot be given together") end
  if o["no-store"] then return false, "--no-store" end
  if o.store then
    if o.store == "" then usage_error("--store needs a path") end
    return o.store
  end
  local env = os.getenv("LUAFLOW_STORE")
  if env and env:lower() == "off" then return false, "LUAFLOW_STORE=off" end
  local path = store.env_path()
  if not path then
    return nil, "no place for the run store: set XDG_STATE_HOME or HOME, give --store PATH or LUAFLOW_STORE"
  end
  return path
end

-- For `luaflow run`: the store, opened to record (created when missing), or
-- nil when it is off or cannot be opened (then one WARNING line says why).
function M.open_for_run(o, usage_error)
  local path, why = M.choose(o, usage_error)
  if path == false then return nil end
  local s, msg
  if path then s, msg = store.open(path, { create = true, record = true }) else msg = why end
  if not s then
    core.log("WARNING", "luaflow.RunStore", msg .. "; this run is not recorded")
    return nil
  end
  return s
end

-- For the commands that read: the store; false (and its path) when there is
-- no store at the path yet; nil and one line saying why it cannot be read.
function M.open_for_reading(o, usage_error)
  local path, why = M.choose(o, usage_error)
  if path == false then
    return nil, ("no run store to read: it is turned off (%s); give --store PATH"):format(why)
  end
  if not path then return nil, why end
  local s, msg, code = store.open(path)
  if not s and code == "missing" then return false, path end
  if not s then return nil, msg end
  return s
end

return M
