-- The luaflow command line (docs/reference.md, "The command line"): parses arguments, loads the
-- user's script, picks the flow to run, writes --json lines, decides the exit code.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local script = require("luaflow.script") -- running a flow script, shared with embedding
local graph = luaflow._graph
local json = luaflow.json

local M = {}

local USAGE = [[
usage: luaflow run FILE [--flow NAME] [--param NAME=VALUE]... [--param-file FILE]
                        [--json PATH|-] [--log-level LEVEL] [--secrets FILE]
                        [--no-input] [--resume TASK]...
       luaflow check FILE [--flow NAME]   list the flows FILE builds, run no task
       luaflow graph FILE [--flow NAME]   print the flows FILE builds as Graphviz DOT
       luaflow help [COMMAND]             this text, or one command's options
       luaflow --version

Run 'luaflow COMMAND --help' for a command's options and the environment
variables it reads; 'man luaflow' for all of them. The Lua reference is
reference.md (docs/ in the sources, share/doc/luaflow/ once installed).

Exit codes: 0 every flow run succeeded, 1 a flow run did not, 2 usage, script or
validation error, 3 a flow waits for approval of paused tasks, 130/143 interrupted.]]

-- What `luaflow COMMAND --help` prints.
local HELP = {
  run = [[
usage: luaflow run FILE [options]

Runs the Lua script FILE. If the script returns a Flow it did not run, that flow
runs; otherwise, if FILE defined exactly one Flow and never ran it, that one runs.
Flows the script runs itself (flow:run()) run as they are called.

Options:
  --flow NAME           run the flow named NAME among those FILE defines (when it
                        defines several); the script's own flow:run() calls still run
  --param NAME=VALUE    a value for the Parameter NAME of every flow run; VALUE is
                        JSON when it parses (3 is an integer, [1,2] a list), else
                        the text itself; repeatable; a name that matches no
                        Parameter stops the run (exit 2); values a script passes
                        in flow:run{parameters=} win
  --param-file FILE     Parameter values from a JSON object ({"n": 3, "day": "mon"});
                        --param NAME=VALUE wins over the file's NAME
  --json PATH|-         write one JSON line per flow run to PATH (- for stdout):
                        {"flow", "state", "message", "tasks": [{"name", "state",
                        "message", "run_count", "result"}]}
  --log-level LEVEL     DEBUG, INFO (the default), WARNING, ERROR or CRITICAL
  --secrets FILE        read secrets from the JSON object in FILE (refused when its
                        group or others may read it: chmod 600 FILE)
  --no-input            never ask on the terminal whether a paused task may resume
  --resume TASK         approve the pause of the task named TASK in advance;
                        repeatable
  -h, --help            this text

Environment:
  LUAFLOW_LOG_LEVEL     the log level when --log-level is not given
  LUAFLOW_SECRET_<NAME> the secret NAME (upper-cased, other characters made _)
  LUAFLOW_SECRETS_FILE  the secrets file when --secrets is not given
  NO_COLOR, TERM        set NO_COLOR (or TERM=dumb) for log levels without colour
  LUA_PATH, LUA_CPATH   where the script's require() looks for modules

Exit codes: 0 every flow run succeeded (or none ran), 1 a flow run did not,
2 usage, script or validation error, 3 a flow waits for approval of paused
tasks, 130 SIGINT, 143 SIGTERM.]],
  check = [[
usage: luaflow check FILE [options]

Runs the top-level code of the Lua script FILE with every flow:run() made to
stop it (no task runs, but the script's own code up to there does), then checks
every Flow built so far (cycles, options) and lists its tasks in run order, its
edges and its Parameters (with their defaults, and which are required).

Options:
  --flow NAME           list only the flow named NAME
  --log-level LEVEL     DEBUG, INFO (the default), WARNING, ERROR or CRITICAL
  -h, --help            this text

Environment:
  LUAFLOW_LOG_LEVEL     the log level when --log-level is not given
  LUA_PATH, LUA_CPATH   where the script's require() looks for modules

Exit codes: 0 every flow is valid, 2 a script or validation error (naming the
file and line).]],
  graph = [[
usage: luaflow graph FILE [options]

Runs the top-level code of the Lua script FILE with every flow:run() made to
stop it (no task runs, but the script's own code up to there does), then prints
every Flow built so far as a Graphviz DOT digraph: one node per task, one edge
per dependency, labelled with the argument it feeds ("arg 1", "in arg 1" for a
result inside a table argument).

Options:
  --flow NAME           print only the flow named NAME
  --log-level LEVEL     DEBUG, INFO (the default), WARNING, ERROR or CRITICAL
  -h, --help            this text

Environment:
  LUAFLOW_LOG_LEVEL     the log level when --log-level is not given
  LUA_PATH, LUA_CPATH   where the script's require() looks for modules

Example: luaflow graph flow.lua | dot -Tsvg -o flow.svg]],
}

local EXIT_OK, EXIT_FAILED, EXIT_USAGE = script.EXIT_OK, script.EXIT_FAILED, script.EXIT_USAGE

local Usage, usage_error = script.Usage, script.usage_error
local current_command -- the command being parsed, for "see 'luaflow run --help'"

-- A message on stderr, after the log lines it follows.
local function report(msg)
  core.log_flush()
  io.stderr:write("luaflow: ", msg, "\n")
end

-- CLI messages never show a secret that has been read.
local function err(msg)
  if core.cancel_signal() then return end -- interrupted: nothing more to say
  report(core.redact(tostring(msg)))
end

-- Stops the process before a flow runs (exit 2).
local function fatal(msg)
  err(msg)
  io.stdout:flush()
  core.exit_guarded(EXIT_USAGE)
end

-- ---- arguments ----

local OPTIONS = {
  run = { param = "list", ["param-file"] = "value", json = "value", ["log-level"] = "value",
          secrets = "value", ["no-input"] = "flag", resume = "list", flow = "value" },
  check = { ["log-level"] = "value", flow = "value" },
  graph = { ["log-level"] = "value", flow = "value" },
}
M.OPTIONS, M.HELP = OPTIONS, HELP -- the man page and completion specs read them

local function parse(args)
  local cmd = args[1]
  if cmd == nil then usage_error("no command given") end
  if cmd == "--help" or cmd == "-h" then return { cmd = "help" } end
  if cmd == "help" then
    if args[2] ~= nil and not HELP[args[2]] then usage_error(("unknown command '%s'"):format(args[2])) end
    return { cmd = "help", topic = args[2] }
  end
  if cmd == "--version" or cmd == "-V" or cmd == "version" then return { cmd = "version" } end
  local allowed = OPTIONS[cmd]
  if not allowed then usage_error(("unknown command '%s'"):format(cmd)) end
  local o = { cmd = cmd, param = {}, resume = {} }
  current_command = cmd
  local i = 2
  while i <= #args do
    local a = args[i]
    if a == "-h" then return { cmd = "help", topic = cmd } end
    if a:sub(1, 2) == "--" and #a > 2 then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      if name == "help" then return { cmd = "help", topic = cmd } end
      local kind = allowed[name]
      if not kind then
        local guess = require("luaflow.options").suggest(name, allowed)
        usage_error(("unknown option '--%s' for '%s'%s"):format(name, cmd,
                    guess and (" (did you mean '--%s'?)"):format(guess) or ""))
      end
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
  if o["param-file"] then o.params = script.read_param_file(o["param-file"]) end
  for _, p in ipairs(o.param) do
    local name, value = p:match("^([^=]+)=(.*)$")
    if not name then usage_error(("--param expects NAME=VALUE, got '%s'"):format(p)) end
    local ok, decoded = pcall(json.decode, value)
    if ok then o.params[name] = decoded else o.params[name] = value end -- `false` stays false
  end
  return o
end

-- ---- output ----
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
    if e[3] < 0 then out:write(" [label=", dot_quote("in arg " .. -e[3]), "]") end
    out:write(";\n")
  end
  out:write("}\n")
end

-- ---- commands ----

-- Asks on the terminal whether a paused task may resume.
local function ask(task)
  core.log_flush()
  io.stderr:write(("%s is currently Paused; enter 'y' to resume: "):format(tostring(task)))
  io.stderr:flush()
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

local function cmd_run(o)
  core.install_signal_handlers()
  script.use_secrets_file(o.secrets)
  -- --json lines are written by C as each run ends (src/lua_json_lines.c);
  -- the first write error is reported at once and makes the exit code non-zero
  local json_out, json_failed
  if o.json then
    local why
    json_out, why = core.json_lines(o.json)
    if not json_out then usage_error(("cannot write --json file '%s': %s"):format(o.json, why)) end
  end
  local function json_error(why)
    if json_failed then return end
    json_failed = true
    local where = o.json == "-" and "standard output" or ("'%s'"):format(o.json)
    err(("--json: cannot write to %s: %s"):format(where, why))
  end
  local code = script.run(o, {
    report = report,
    fatal = fatal,
    approve = not o["no-input"] and core.isatty(0) and core.isatty(2) and ask or nil,
    after_run = function(flow, state)
      if not json_out then return end
      local ok, why = json_out:write_run(flow, state)
      if not ok then json_error(why) end
    end,
    finish = function()
      if json_out then
        local ok, why = json_out:close()
        if not ok then json_error(why) end
      end
      json_out = nil
    end,
  })
  if json_failed and (code == EXIT_OK or code == script.EXIT_PAUSED) then return EXIT_FAILED end
  return code
end

local function load_only(o)
  return script.load_only(o.file, err)
end

-- The flows check/graph show: all, or the one --flow names.
local function chosen_flows(o)
  if o.flow then return { script.flow_named(o.flow, o.file) } end
  return graph.flows
end

local function plural(n, word)
  return ("%d %s%s"):format(n, word, n == 1 and "" or "s")
end

-- check's listing of one flow: its tasks in run order, its edges and its
-- Parameters. Raises on a cycle.
local function describe_flow(f, out)
  local tasks, order = core.flow_tasks(f), graph.order(f)
  local edges = core.flow_edges(f)
  out[#out + 1] = ("%s: %s, %s"):format(tostring(f), plural(#tasks, "task"), plural(#edges, "edge"))
  local pos, count = {}, {}
  for k, idx in ipairs(order) do
    pos[idx] = k
    local name = tasks[idx].name
    count[name] = (count[name] or 0) + 1
  end
  local function label(idx) -- a name several tasks share gets its number
    local name = tasks[idx].name
    return count[name] > 1 and ("%s #%d"):format(name, pos[idx]) or name
  end
  local params = graph.flow_parameters(f)
  if #order > 0 then out[#out + 1] = "  tasks, in run order:" end
  for k, idx in ipairs(order) do
    local t = tasks[idx]
    out[#out + 1] = ("    %d. %s%s"):format(k, t.name,
                                             tostring(t):match("^<Parameter") and " (Parameter)" or "")
  end
  if #edges > 0 then out[#out + 1] = "  edges:" end
  for _, e in ipairs(edges) do
    local how = e[3] > 0 and ("argument %d"):format(e[3])
             or e[3] < 0 and ("inside argument %d"):format(-e[3]) or "state only"
    out[#out + 1] = ("    %s -> %s (%s)"):format(label(e[1]), label(e[2]), how)
  end
  local names = {}
  for name in pairs(params) do names[#names + 1] = name end
  table.sort(names)
  if #names > 0 then out[#out + 1] = "  parameters:" end
  for _, name in ipairs(names) do
    local spec = params[name]
    local what
    if spec.required then
      what = "required"
    elseif spec.default ~= nil then
      local ok, text = pcall(json.encode, spec.default)
      what = "default " .. (ok and text or tostring(spec.default))
    else
      what = "optional, no default"
    end
    out[#out + 1] = ("    %s: %s"):format(name, what)
  end
end

local function cmd_check(o)
  if not load_only(o) then return EXIT_USAGE end
  local flows = chosen_flows(o)
  local lines = {}
  for _, f in ipairs(flows) do
    local ok, e = pcall(describe_flow, f, lines)
    if not ok then
      err(tostring(e))
      return EXIT_USAGE
    end
  end
  for _, l in ipairs(lines) do print(l) end
  print(("%s: %s OK"):format(o.file, plural(#flows, "flow")))
  return EXIT_OK
end

local function cmd_graph(o)
  if not load_only(o) then return EXIT_USAGE end
  for _, f in ipairs(chosen_flows(o)) do
    local ok, e = pcall(write_dot, io.stdout, f)
    if not ok then
      err(tostring(e))
      return EXIT_USAGE
    end
  end
  return EXIT_OK
end

function M.main(args)
  graph.record_flows = true
  local ok, code = pcall(function()
    local o = parse(args)
    if o.cmd == "help" then
      print(o.topic and HELP[o.topic] or USAGE)
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
  script.secret_hints(report)
  if core.cancel_signal() then -- SIGINT/SIGTERM: 130/143, whatever stopped
    io.stdout:flush()
    return 128 + core.cancel_signal()
  end
  if ok then
    io.stdout:flush()
    return code
  end
  if getmetatable(code) == Usage then
    err(code.msg .. (" (see 'luaflow %s--help')"):format(current_command and current_command .. " " or ""))
  else
    err(tostring(code))
  end
  io.stdout:flush()
  return EXIT_USAGE
end

return M
