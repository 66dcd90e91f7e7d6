-- What a flow run keeps beyond its states: its recording in the run store,
-- the progress line, the times of the --json lines, and a restart from a
-- recorded run. flow:run asks prepare() before it runs and finish() after;
-- the engine (src/lua_run_record.c) does the recording itself, in C.
--
-- The CLI records every run into its store (M.use); a library or embedding
-- user records only when asked: flow:run{store = PATH}, or
-- lf_engine_set_store (M.set_default_path).
local core = require("luaflow.core")

local M = {}

M.default = nil        -- the store every flow:run records into unless store= says otherwise
M.progress = false     -- the CLI shows the progress line (stderr is a terminal)
M.keep_times = false   -- the CLI writes --json lines: keep the run's times
M.exit_codes = false   -- the CLI records the exit code each run gives
M.script = nil         -- the script's path (the CLI's FILE)
M.restart = nil        -- --restart ID: the first run of the recorded flow restarts that run
M.restart_flow = nil   -- ... whose flow name is this (known from the store)
M.defines_flow = nil   -- fn(name): the script built a flow of that name (the CLI's)

local registry = debug.getregistry()
local opened = {}      -- path -> store (false: could not be opened), for store = PATH

local function warn(msg) core.log("WARNING", "luaflow.RunStore", msg) end

-- A store opened for recording at path, once per path and process.
local function open_path(path)
  local s = opened[path]
  if s ~= nil then return s or nil end
  local why
  s, why = require("luaflow.store").open(path, { create = true, record = true })
  if not s then
    warn(why .. "; runs are not recorded there")
    opened[path] = false
    return nil
  end
  s:record_deliveries()
  opened[path] = s
  return s
end

-- The store the run records into: store = PATH, a store object, false (none),
-- or nil (the default).
local function store_for(opts)
  local s = opts.store
  if s == nil then return M.default end
  if s == false then return nil end
  if type(s) == "string" then return open_path(s) end
  return s
end

-- For lf_engine_set_store: the store the engine's runs record into. Returns
-- true, or nil and why it cannot be used.
function M.set_default_path(path)
  if path == nil then
    M.default = nil
    return true
  end
  local s, why = require("luaflow.store").open(path, { create = true, record = true })
  if not s then return nil, why end
  s:record_deliveries()
  M.default = s
  return true
end

-- The CLI's settings (see the fields above).
function M.use(settings)
  for k, v in pairs(settings) do M[k] = v end
end

local function restart_error(ref, msg)
  core.raise(("cannot restart run %s: %s"):format(ref, msg))
end

-- The tasks run `ref` of store s ended successful in, as states to restore
-- into this run of flow f: {[task index] = State}; and the run's full id.
local function restored_states(f, s, ref)
  if not s then restart_error(ref, "no run store (give flow:run{store = PATH}, or --store PATH)") end
  s:flush() -- a run this process recorded is read back whole
  local rec, why = s:run(ref)
  if not rec then restart_error(ref, why) end
  if rec.flow ~= f.name then
    restart_error(ref, ("it is a run of flow '%s', not of '%s'"):format(rec.flow, f.name))
  end
  if rec.state == "Running" and not rec.ended then
    restart_error(ref, "it is still running")
  end
  local rows, terr = s:tasks(rec.id)
  if not rows then restart_error(ref, terr) end
  local tasks = core.flow_tasks(f)
  if rec.ntasks ~= #tasks then
    restart_error(ref, ("flow '%s' had %d tasks in that run and has %d now: it changed since")
                  :format(f.name, rec.ntasks, #tasks))
  end
  local json, states = require("luaflow").json, core.states
  local restore, times = {}, {}
  for _, t in ipairs(rows) do
    local mine = tasks[t.index]
    if not mine or mine.name ~= t.name then
      restart_error(ref, ("task %d of flow '%s' was '%s' in that run and is '%s' now: the flow changed since")
                    :format(t.index, f.name, t.name, mine and mine.name or "missing"))
    end
    local cls = states[t.state]
    -- a mapped task runs again, children and all (its row holds no child)
    local probe = t.map_index == nil and t.state ~= "Mapped" and cls and cls("")
    if probe and probe:is_successful() then
      if t.result_stored then
        local ok, value = true, nil
        if t.result then ok, value = pcall(json.decode, t.result) end
        if ok then
          restore[t.index] = cls { message = t.message, result = value, run_count = t.run_count }
          times[t.index] = { t.started or 0, t.ended or 0 }
        end
      end
      if not restore[t.index] then
        core.log("INFO", "luaflow.FlowRunner",
                 ("Task '%s': its result in run %s was not stored (not JSON-encodable, or over 64 KiB); it runs again")
                 :format(t.name, rec.id:sub(1, 8)))
      end
    end
  end
  return restore, rec.id, times
end

-- Before flow f runs with options opts: fills the run's table (graph.lua's
-- M.runs entry) with what the engine keeps (lua_run_record.h).
function M.prepare(f, opts, run)
  if registry["luaflow.EncodingResult"] then
    core.raise(("%s cannot run inside the __tojson of a result being recorded"):format(tostring(f)))
  end
  local s = store_for(opts)
  local restart = opts.restart
  if restart == nil and M.restart then
    -- --restart applies to the first run of the recorded flow; another flow
    -- the script runs before it runs as usual, unless the script has no
    -- flow of that name (then this one is the mistake, said at once)
    local other = M.restart_flow and f.name ~= M.restart_flow and M.defines_flow
                  and M.defines_flow(M.restart_flow)
    if not other then restart, M.restart = M.restart, nil end
  end
  if restart then
    local restore, id, times = restored_states(f, s, restart)
    run.restore, run.restart_of, run.restore_times = restore, id, times
    local n = 0
    for _ in pairs(restore) do n = n + 1 end
    core.log("INFO", "luaflow.FlowRunner",
             ("Restarting run %s of flow '%s': %d task%s keep%s the state and result recorded")
             :format(id:sub(1, 8), f.name, n, n == 1 and "" or "s", n == 1 and "s" or ""))
  end
  if s then
    run.store = s
    run.script = M.script
    -- the executor's name (flow:run{executor=} names one, or gives one that
    -- knows its name); Local when none is given
    local ex = opts.executor
    run.executor = type(ex) == "string" and ex or type(ex) == "table" and rawget(ex, "name")
                   or run.executor or "local"
    local ok, text = pcall(core.json_redacted, run.parameters or {})
    if ok then run.parameters_json = text end
  end
  run.keep_times = M.keep_times or nil
  run.exit_codes = M.exit_codes or nil
  if M.progress and not core.progress.active() then
    run.progress = core.progress.start()
    run.stops_progress = run.progress
  end
end

-- After the run (whatever happened to it).
function M.finish(run)
  if run.stops_progress then core.progress.stop() end
  -- outside the CLI, a recorded run is committed when flow:run returns (the
  -- CLI's are when the process ends)
  if run.store and not M.exit_codes then run.store:flush() end
end

return M
