-- The luaflow command line (API.md section 9): parses arguments, loads the
-- user's script, picks the flow to run, writes --json lines, decides the exit code.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local graph = luaflow._graph
local json = luaflow.json

local M = {}

local USAGE = [[
usage: luaflow run FILE [--param NAME=VALUE]... [--json PATH|-] [--log-level LEVEL]
                        [--secrets FILE] [--no-input] [--resume TASK]...
       luaflow check FILE      validate the flows FILE builds, run nothing
       luaflow graph FILE      print the flows FILE builds as Graphviz DOT
       luaflow --version | --help

Exit codes: 0 every flow run succeeded, 1 a flow run did not, 2 usage, script or
validation error, 3 a flow waits for approval of paused tasks, 130/143 interrupted.]]

local EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED = 0, 1, 2, 3

local Usage = {}
local function usage_error(msg) error(setmetatable({ msg = msg }, Usage), 0) end
local Stop = {} -- flow:run() under check/graph: stops the script there

-- CLI messages never show a secret that has been read. An embedding program
-- (src/embed.c) collects them instead of printing (M.report).
function M.report(msg)
  io.stderr:write("luaflow: ", msg, "\n")
end

local function err(msg)
  M.report(core.redact(tostring(msg)))
end

-- Stops the process before a flow runs (exit 2); embedded, it raises instead.
local function fatal(msg)
  if M.embedded then usage_error(msg) end
  err(msg)
  io.stdout:flush()
  core.exit_guarded(EXIT_USAGE)
end

-- ---- arguments ----
local OPTIONS = {
  run = { param = "list", json = "value", ["log-level"] = "value", secrets = "value",
          ["no-input"] = "flag", resume = "list" },
  check = { ["log-level"] = "value" },
  graph = { ["log-level"] = "value" },
}

local function parse(args)
  local cmd = args[1]
  if cmd == nil then usage_error("no command given") end
  if cmd == "--help" or cmd == "-h" or cmd == "help" then return { cmd = "help" } end
  if cmd == "--version" or cmd == "-V" or cmd == "version" then return { cmd = "version" } end
  local allowed = OPTIONS[cmd]
  if not allowed then usage_error(("unknown command '%s'"):format(cmd)) end
  local o = { cmd = cmd, param = {}, resume = {} }
  local i = 2
  while i <= #args do
    local a = args[i]
    if a:sub(1, 2) == "--" and #a > 2 then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      if name == "help" then return { cmd = "help" } end
      local kind = allowed[name]
      if not kind then usage_error(("unknown option '--%s' for '%s'"):format(name, cmd)) end
      if kind == "flag" then
        if value then usage_error(("option '--%s' takes no value"):format(name)) end
        o[name] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then usage_error(("option '--%s' needs a value"):format(name)) end
        end
        if kind == "list" then table.insert(o[name], value) else o[name] = value end
      end
    elseif o.file == nil then
      o.file = a
    else
      usage_error(("unexpected argument '%s'"):format(a))
    end
    i = i + 1
  end
  if not o.file then usage_error(("'%s' needs a FILE"):format(cmd)) end
  if o["log-level"] then
    local ok = pcall(core.set_log_level, o["log-level"])
    if not ok then
      usage_error(("unknown log level '%s' (DEBUG, INFO, WARNING, ERROR, CRITICAL)"):format(o["log-level"]))
    end
  end
  o.params = {}
  for _, p in ipairs(o.param) do
    local name, value = p:match("^([^=]+)=(.*)$")
    if not name then usage_error(("--param expects NAME=VALUE, got '%s'"):format(p)) end
    local ok, decoded = pcall(json.decode, value)
    if ok then o.params[name] = decoded else o.params[name] = value end -- `false` stays false
  end
  return o
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

local function traceback_handler(e)
  if getmetatable(e) == Stop or getmetatable(e) == Usage then return e end
  if type(e) ~= "string" then
    local ok, s = pcall(tostring, e)
    e = ok and s or ("(error object is a %s value)"):format(type(e))
  end
  return e
end

-- Runs FILE; returns ok, value (the script's first return value) or the error.
local function run_script(path)
  local f = io.open(path, "r")
  if not f then usage_error(("cannot open '%s'"):format(path)) end
  f:close()
  local chunk, msg = loadfile(absolute(path))
  if not chunk then return false, msg end
  return xpcall(chunk, traceback_handler)
end

-- ---- output ----
local function encodable(v)
  local ok, text = pcall(json.encode, v)
  return ok and text or nil
end

local function json_line(flow, state)
  local tasks = {}
  for t, s in state:task_states() do
    local entry = { name = t.name, state = s.name, message = s.message or json.null }
    entry.run_count = graph.run_count(state, t) or 0
    local result = s.result
    if result ~= nil and encodable(result) then entry.result = result end
    tasks[#tasks + 1] = entry
  end
  -- redacted before encoding: a secret's escaped form would not be found after
  local doc = { flow = flow.name, state = state.name, message = state.message or json.null,
                tasks = json.array(tasks) }
  return json.encode(luaflow.secrets.redacted(doc))
end

local function dot_quote(s)
  return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

local function write_dot(out, flow)
  local tasks = core.flow_tasks(flow)
  local order = graph.order(flow)
  out:write("digraph ", dot_quote(flow.name), " {\n")
  for _, idx in ipairs(order) do
    out:write("  t", idx, " [label=", dot_quote(tasks[idx].name), "];\n")
  end
  for _, e in ipairs(core.flow_edges(flow)) do
    out:write("  t", e[1], " -> t", e[2])
    if e[3] > 0 then out:write(" [label=", dot_quote("arg " .. e[3]), "]") end
    out:write(";\n")
  end
  out:write("}\n")
end

-- ---- commands ----
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
  end
  return list
end

-- Asks on the terminal whether a paused task may resume.
local function ask(task)
  io.stderr:write(("%s is currently Paused; enter 'y' to resume: "):format(tostring(task)))
  io.stderr:flush()
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

local function cmd_run(o)
  if not o.embedded then core.install_signal_handlers() end
  local secrets_file = o.secrets or os.getenv("LUAFLOW_SECRETS_FILE")
  if secrets_file and secrets_file ~= "" then
    local ok, why = luaflow.secrets.use_file(secrets_file)
    if not ok then usage_error(why) end
  end
  if not o["no-input"] and core.isatty(0) and core.isatty(2) then graph.hooks.approve = ask end
  local outcomes = {}
  M.outcomes = outcomes
  local json_out
  if o.json then
    if o.json == "-" then
      json_out = io.stdout
    else
      json_out = io.open(o.json, "w")
      if not json_out then usage_error(("cannot write --json file '%s'"):format(o.json)) end
    end
  end
  local resume_names = {}
  for _, name in ipairs(o.resume) do resume_names[name] = true end
  graph.hooks.before_run = function(flow, opts, params)
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
  graph.hooks.after_run = function(flow, state)
    outcomes[#outcomes + 1] = { flow = flow, state = state }
    if json_out then
      json_out:write(json_line(flow, state), "\n")
      json_out:flush()
    end
  end
  local function close_json()
    if json_out and json_out ~= io.stdout then json_out:close() end
    json_out = nil
  end
  local ok, value = run_script(o.file)
  if core.cancel_signal() then
    close_json()
    return 128 + core.cancel_signal()
  end
  if not ok then
    if getmetatable(value) == Usage then error(value, 0) end
    err(tostring(value))
    return EXIT_USAGE
  end
  local to_run
  if graph.is_flow(value) and not (graph.ran or {})[value] then
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
      usage_error(("%s defines several flows and runs none: %s (return the one to run)")
                  :format(o.file, table.concat(names, ", ")))
    end
  end
  if to_run then
    local rok, rerr = xpcall(to_run.run, traceback_handler, to_run)
    if core.cancel_signal() then
      close_json()
      return 128 + core.cancel_signal()
    end
    if not rok and getmetatable(rerr) == Usage then error(rerr, 0) end
    if not rok then
      err(tostring(rerr))
      return EXIT_USAGE
    end
  end
  close_json()
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
  if failed then return EXIT_FAILED end
  if paused then return EXIT_PAUSED end
  return EXIT_OK
end

local function load_only(o)
  graph.hooks.before_run = function() error(setmetatable({}, Stop), 0) end
  local ok, value = run_script(o.file)
  if not ok and getmetatable(value) ~= Stop then
    if getmetatable(value) == Usage then error(value, 0) end
    err(tostring(value))
    return false
  end
  return true
end

local function cmd_check(o)
  if not load_only(o) then return EXIT_USAGE end
  local lines = {}
  for _, f in ipairs(graph.flows) do
    local ok, e = pcall(graph.order, f)
    if not ok then
      err(tostring(e))
      return EXIT_USAGE
    end
    local nt, ne = #f:tasks(), #f:edges()
    lines[#lines + 1] = ("%s: %d task%s, %d edge%s"):format(tostring(f), nt, nt == 1 and "" or "s",
                                                           ne, ne == 1 and "" or "s")
  end
  for _, l in ipairs(lines) do print(l) end
  print(("%s: %d flow%s OK"):format(o.file, #graph.flows, #graph.flows == 1 and "" or "s"))
  return EXIT_OK
end

local function cmd_graph(o)
  if not load_only(o) then return EXIT_USAGE end
  for _, f in ipairs(graph.flows) do
    local ok, e = pcall(write_dot, io.stdout, f)
    if not ok then
      err(tostring(e))
      return EXIT_USAGE
    end
  end
  return EXIT_OK
end

-- For embedding: runs FILE as `luaflow run FILE --param ...` would, without
-- signal handlers or a terminal prompt. Returns the exit code, the flow runs
-- ({flow=, state=}) and the error messages.
function M.run_file(path, params)
  M.embedded = true
  graph.record_flows = true
  graph.flows = {} -- each file picks among its own flows
  local messages = {}
  M.report = function(msg) messages[#messages + 1] = msg end
  M.outcomes = {}
  local ok, code = pcall(cmd_run, { file = path, params = params or {}, resume = {},
                                    ["no-input"] = true, embedded = true })
  if not ok then
    messages[#messages + 1] = getmetatable(code) == Usage and code.msg or tostring(code)
    code = EXIT_USAGE
  end
  return code, M.outcomes, table.concat(messages, "\n")
end

function M.main(args)
  graph.record_flows = true
  local ok, code = pcall(function()
    local o = parse(args)
    if o.cmd == "help" then
      print(USAGE)
      return EXIT_OK
    elseif o.cmd == "version" then
      print("luaflow " .. luaflow.version)
      return EXIT_OK
    elseif o.cmd == "run" then
      return cmd_run(o)
    elseif o.cmd == "check" then
      return cmd_check(o)
    else
      return cmd_graph(o)
    end
  end)
  if ok then
    io.stdout:flush()
    return code
  end
  if getmetatable(code) == Usage then
    err(code.msg .. " (see 'luaflow --help')")
  else
    err(tostring(code))
  end
  io.stdout:flush()
  return EXIT_USAGE
end

return M
