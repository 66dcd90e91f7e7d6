-- `luaflow run`'s side of the run store (run_store.lua): every flow run is
-- recorded into the store the CLI opened, with the progress line, the --json
-- times and the exit code of each run; --restart ID; and with --json - the
-- script's print() goes to stderr, so stdout holds JSON lines only.
local core = require("luaflow.core")
local run_store = require("luaflow.run_store")

local M = {}

-- print(...) as Lua's, on stderr (after the log lines before it).
local function print_to_stderr(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  core.log_flush()
  io.stderr:write(table.concat(parts, "\t"), "\n")
end

-- Before the script runs. cli: the CLI module (its store and progress).
function M.start(cli, o, usage_error)
  local store = cli.store
  if o.restart then
    if not store then
      usage_error(("--restart %s needs the run store, and no store is recording"):format(o.restart))
    end
    local rec, why = store:run(o.restart)
    if not rec then usage_error(("--restart %s: %s"):format(o.restart, why)) end
    run_store.restart_flow = rec.flow
    run_store.defines_flow = function(name)
      for _, f in ipairs(require("luaflow")._graph.flows) do
        if f.name == name then return true end
      end
      return false
    end
  end
  if store then store:record_deliveries() end
  run_store.use({ default = store, progress = cli.progress or false, keep_times = o.json ~= nil,
                  exit_codes = true, script = o.file and (core.realpath(o.file) or o.file),
                  restart = o.restart })
  if o.json == "-" then print = print_to_stderr end -- luacheck: ignore (the script's global)
end

-- After the runs, before the store is closed: the deliveries still queued
-- go out (and are recorded) first. Returns an error message when --restart
-- was given and no run of its flow ran.
function M.stop(cli, o)
  local unused, flow = run_store.restart and o.restart, run_store.restart_flow
  core.http.sender.stop()
  if cli.store then cli.store:record_deliveries(false) end
  run_store.use({ default = false, progress = false, keep_times = false, exit_codes = false,
                  script = false, restart = false, restart_flow = false, defines_flow = false })
  if unused and not core.cancel_signal() then
    return ("--restart %s: no run of flow '%s' was made: nothing was restarted"):format(unused, flow)
  end
end

return M
