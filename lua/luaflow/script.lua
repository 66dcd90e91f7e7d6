-- Running a flow script as `luaflow run FILE` does, for the command line (luaflow.cli) and
-- for programs that embed luaflow (lf_engine_run_file): load the script, check the
-- parameters given against the flows it builds, pick the flow to run, collect the runs
-- and decide the exit code. How messages are told and what stops a run before it starts
-- are the caller's.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local graph = luaflow._graph
local json = luaflow.json

local M = {}

M.EXIT_OK, M.EXIT_FAILED, M.EXIT_USAGE, M.EXIT_PAUSED = 0, 1, 2, 3

-- A mistake in how luaflow was asked to run (a usage error): {msg = ...}.
M.Usage = {}
function M.usage_error(msg) error(setmetatable({ msg = msg }, M.Usage), 0) end
local usage_error = M.usage_error
-- flow:run() while only loading a script (M.load_only): stops the script there.
M.Stop = {}

-- --param-file FILE: a JSON object of Parameter values.
function M.read_param_file(path)
  local f, why = io.open(path, "r")
  if not f then usage_error(("--param-file: cannot read '%s': %s"):format(path, why)) end
  local text = f:read("a")
  f:close()
  local ok, values = pcall(json.decode, text)
  if not ok then
    usage_error(("--param-file '%s' is not valid JSON: %s"):format(path, tostring(values)))
  end
  if type(values) ~= "table" or getmetatable(values) ~= nil then -- arrays carry a mark
    usage_error(("--param-file '%s' must hold a JSON object of NAME: value pairs"):format(path))
  end
  return values
end

-- ---- loading the script ----
local function absolute(path)
  local real = core.realpath(path)
  if real then return real end
  if path:sub(1, 1) == "/" then return path end
  local pwd = os.getenv("PWD")
  if not pwd then
    local p = io.popen("pwd")
    pwd = p and p:read("l")
    if p then p:close() end
  end
  return (pwd or ".") .. "/" .. path
end

-- The user's frame nearest the error: "/path/flow.lua:12: ", or nil.
local function user_where()
  local source, line = require("luaflow.options").user_frame()
  if not source then return nil end
  return ("%s:%d: "):format(source:sub(1, 1) == "@" and source:sub(2) or source, line)
end

local function traceback_handler(e)
  if getmetatable(e) == M.Stop or getmetatable(e) == M.Usage then return e end
  if type(e) ~= "string" then -- error(nil), error(table): no position of their own
    local ok, s = pcall(tostring, e)
    e = (user_where() or "") .. (ok and s or ("(error object is a %s value)"):format(type(e)))
  end
  -- an error raised inside luaflow's own Lua code is shown at the user's line
  local inside = e:match("^luaflow/[%w_]+%.lua:%d+: ()")
  if inside then e = (user_where() or "") .. e:sub(inside) end
  return e
end

-- Runs FILE; returns ok, value (the script's first return value) or the error.
local function run_script(path)
  local f = io.open(path, "r")
  if not f then usage_error(("cannot open '%s'"):format(path)) end
  f:close()
  local chunk, msg = loadfile(absolute(path), "t") -- bytecode is never trusted
  if not chunk and msg:find("binary chunk", 1, true) then
    msg = absolute(path) .. ": precompiled Lua bytecode; luaflow runs Lua source files only"
  end
  if not chunk then return false, msg end
  return xpcall(chunk, traceback_handler)
end

-- Runs the top-level code of FILE with every flow:run() made to stop it there (no task
-- runs). Returns true, or false after telling the error with report(msg).
function M.load_only(file, report)
  graph.hooks.before_run = function() error(setmetatable({}, M.Stop), 0) end
  local ok, value = run_script(file)
  if not ok and getmetatable(value) ~= M.Stop then
    if getmetatable(value) == M.Usage then error(value, 0) end
    report(tostring(value))
    return false
  end
  return true
end

-- ---- choosing ----

-- The one Flow named `name` among those the script built (--flow NAME).
function M.flow_named(name, file)
  local found, names, known = {}, {}, {}
  for _, f in ipairs(graph.flows) do
    names[#names + 1] = ("'%s'"):format(f.name)
    known[f.name] = true
    if f.name == name then found[#found + 1] = f end
  end
  if #found == 1 then return found[1] end
  if #found > 1 then
    usage_error(("--flow %s: %s defines %d flows of that name; give them distinct names")
                :format(name, file, #found))
  end
  local guess = require("luaflow.options").suggest(name, known)
  usage_error(("--flow %s: %s defines no flow of that name (%s)%s"):format(name, file,
              #names > 0 and ("its flows: " .. table.concat(names, ", ")) or "it defines no flow",
              guess and (": did you mean --flow %s?"):format(guess) or ""))
end

local function all_parameter_names()
  local names = {}
  for _, f in ipairs(graph.flows) do
    for name in pairs(graph.flow_parameters(f)) do names[name] = true end
  end
  return names
end

local function paused_tasks(state)
  local list = {}
  for t, s in state:task_states() do
    if s:is_paused() then list[#list + 1] = tostring(t) end
    for i, child in ipairs(s:is_mapped() and s.map_states or {}) do -- a mapped task's children
      if child:is_paused() then list[#list + 1] = ("%s[%d]"):format(tostring(t), i) end
    end
  end
  return list
end

-- Before each flow run: the parameters given must name Parameters and fill the required
-- ones, and --resume names must name tasks; fatal(msg) stops the run before it starts.
local function check_run(o, fatal)
  local resume_names = {}
  for _, name in ipairs(o.resume) do resume_names[name] = true end
  return function(flow, opts, params)
    local known = all_parameter_names()
    for name in pairs(o.params) do
      if not known[name] then
        fatal(("--param %s matches no Parameter of any flow"):format(name))
      end
    end
    for k, v in pairs(o.params) do params[k] = v end
    local specs = graph.flow_parameters(flow)
    local missing = {}
    for name, spec in pairs(specs) do
      local given = (opts.parameters or {})[name]
      if spec.required and given == nil and params[name] == nil then missing[#missing + 1] = name end
    end
    table.sort(missing)
    if #missing == 1 then
      fatal(("%s: required parameter '%s' has no value (use --param %s=VALUE)")
            :format(tostring(flow), missing[1], missing[1]))
    elseif #missing > 1 then
      fatal(("%s: required parameters without a value: %s (use --param NAME=VALUE for each)")
            :format(tostring(flow), table.concat(missing, ", ")))
    end
    for k in pairs(params) do if not specs[k] then params[k] = nil end end
    for name in pairs(resume_names) do
      local anywhere, here = 0, {}
      for _, f in ipairs(graph.flows) do
        for _, t in ipairs(core.flow_tasks(f)) do
          if t.name == name then
            anywhere = anywhere + 1
            if f == flow then here[#here + 1] = t end
          end
        end
      end
      if anywhere == 0 then
        fatal(("--resume %s matches no task"):format(name))
      elseif #here > 1 then
        fatal(("--resume %s matches %d tasks of %s; give the tasks distinct names")
            :format(name, #here, tostring(flow)))
      elseif #here == 1 then
        opts.resume = opts.resume or {}
        table.insert(opts.resume, here[1])
      end
    end
  end
end

-- ---- running ----

-- Reads secrets from `file` (--secrets), else from $LUAFLOW_SECRETS_FILE when set.
-- --executor KIND and --workers N: the executor of every flow:run that names
-- none (--workers alone means threads).
function M.executor_option(kind, workers)
  local executors = require("luaflow.executors")
  local n
  if workers ~= nil then
    n = tostring(workers):match("^%d+$") and math.tointeger(tonumber(workers))
    if not n or n < 1 or n > 1024 then
      usage_error(("--workers expects a whole number from 1 to 1024, got '%s'"):format(workers))
    end
  end
  kind = kind or "threads"
  if kind == "local" then
    if n then usage_error("--workers needs --executor threads or processes (local runs one body at a time)") end
    return executors.Local()
  elseif kind == "threads" then
    return executors.Threads { workers = n }
  elseif kind == "processes" then
    return executors.Processes { workers = n }
  end
  usage_error(("--executor expects local, threads or processes, got '%s'"):format(kind))
end

function M.use_secrets_file(file)
  file = file or os.getenv("LUAFLOW_SECRETS_FILE")
  if file and file ~= "" then
    local ok, why = luaflow.secrets.use_file(file)
    if not ok then usage_error(why) end
  end
end

-- Runs the script o.file as `luaflow run` does: o.params (name -> value), o.resume (task
-- names), o.flow (a flow name or nil). The caller's
-- hooks: report(msg) tells an error (already redacted), fatal(msg) stops a run that
-- cannot start (default: a usage error), approve(task) asks whether a paused task may
-- resume (nil: never asked), after_run(flow, state) sees each run end, finish() comes
-- once the runs are over, before the exit code's messages. Returns the exit code and the
-- runs ({flow =, state =}, in order).
function M.run(o, hooks)
  local function err(msg)
    if core.cancel_signal() then return end -- interrupted: nothing more to say
    hooks.report(core.redact(tostring(msg)))
  end
  local finish = hooks.finish or function() end
  graph.hooks.approve = hooks.approve
  local outcomes = {}
  graph.hooks.before_run = check_run(o, hooks.fatal or usage_error)
  graph.hooks.after_run = function(flow, state, run)
    outcomes[#outcomes + 1] = { flow = flow, state = state }
    if hooks.after_run then hooks.after_run(flow, state, run) end
  end
  local ok, value = run_script(o.file)
  if core.cancel_signal() then
    finish()
    return 128 + core.cancel_signal(), outcomes
  end
  if not ok then
    if getmetatable(value) == M.Usage then error(value, 0) end
    err(tostring(value))
    finish()
    return M.EXIT_USAGE, outcomes
  end
  local to_run
  if o.flow then
    to_run = M.flow_named(o.flow, o.file)
    if (graph.ran or {})[to_run] then to_run = nil end
  elseif graph.is_flow(value) and not (graph.ran or {})[value] then
    to_run = value
  elseif #outcomes == 0 then
    local unrun = {}
    for _, f in ipairs(graph.flows) do
      if not (graph.ran or {})[f] then unrun[#unrun + 1] = f end
    end
    if #unrun == 1 then
      to_run = unrun[1]
    elseif #unrun > 1 then
      local names = {}
      for i, f in ipairs(unrun) do names[i] = tostring(f) end
      usage_error(("%s defines several flows and runs none: %s (choose one with --flow NAME, or return it)")
                  :format(o.file, table.concat(names, ", ")))
    end
  end
  if to_run then
    local rok, rerr = xpcall(to_run.run, traceback_handler, to_run)
    if core.cancel_signal() then
      finish()
      return 128 + core.cancel_signal(), outcomes
    end
    if not rok and getmetatable(rerr) == M.Usage then error(rerr, 0) end
    if not rok then
      err(tostring(rerr))
      finish()
      return M.EXIT_USAGE, outcomes
    end
  end
  finish()
  local failed, paused = false, false
  for _, run in ipairs(outcomes) do
    local s = run.state
    if s:is_running() then
      paused = true
      err(("%s is waiting for approval of paused tasks: %s (approve with --resume NAME)")
          :format(tostring(run.flow), table.concat(paused_tasks(s), ", ")))
    elseif not s:is_successful() then
      failed = true
    end
  end
  if failed then return M.EXIT_FAILED, outcomes end
  if paused then return M.EXIT_PAUSED, outcomes end
  return M.EXIT_OK, outcomes
end

-- One line for each secret the script asked for and did not find.
function M.secret_hints(report)
  local secrets = luaflow.secrets
  for _, name in ipairs(secrets.missing) do
    local key = name:match("^[%a_][%w_]*$") and name or ("[%q]"):format(name)
    report(("hint: secret \"%s\" was not found: set %s, give --secrets FILE (a JSON object), "
            .. "or pass flow:run{secrets = {%s = ...}}"):format(name, secrets.env_name(name), key))
  end
  secrets.missing = {}
end

-- For programs that embed luaflow (lf_engine_run_file): runs FILE as `luaflow run FILE
-- --param ...` would, without signal handlers or a terminal prompt, each file choosing
-- among its own flows. Returns the exit code, the flow runs ({flow=, state=}) and the
-- messages (one text).
function M.run_file(path, params)
  graph.record_flows = true
  graph.flows = {}
  local messages = {}
  local function report(msg) messages[#messages + 1] = msg end
  local runs = {}
  local ok, code, outcomes = pcall(function()
    M.use_secrets_file(nil)
    return M.run({ file = path, params = params or {}, resume = {} }, {
      report = report,
      after_run = function(flow, state) runs[#runs + 1] = { flow = flow, state = state } end,
    })
  end)
  if ok then
    runs = outcomes
  else
    messages[#messages + 1] = core.redact(getmetatable(code) == M.Usage and code.msg or tostring(code))
    code = M.EXIT_USAGE
  end
  M.secret_hints(report)
  return code, runs, table.concat(messages, "\n")
end

return M
