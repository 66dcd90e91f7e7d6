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
                        [--no-input] [--resume TASK]... [--store PATH] [--no-store]
                        [--no-progress] [--restart ID]
                        [--executor local|threads|processes] [--workers N]
       luaflow check FILE [--flow NAME]   list the flows FILE builds, run no task
       luaflow graph FILE [--flow NAME] [--run ID] [--format dot|svg|png] [-o PATH]
                                          draw the flows FILE builds (Graphviz)
       luaflow runs [--flow NAME] [--state CLASS] [--limit N] [--json]
                                          the runs recorded, newest first
       luaflow runs show [ID] [--transitions] [--deliveries] [--json]
                                          one run and its tasks
       luaflow runs logs [ID] [--json]    the log lines of a run
       luaflow runs prune (--keep N | --before DATE)   forget old runs
       luaflow notify test FILE [--task NAME] [--state CLASS | --overdue]
                                          send a made-up alert through the handlers
       luaflow cache [list] [--json]      the cached task results
       luaflow cache clear [KEY]          forget cached results (all, or KEY's)
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
                        "message", "run_count", "started", "ended", "duration",
                        "result"}], "run_id", "started", "ended", "duration"};
                        with -, print() output goes to stderr instead
  --log-level LEVEL     DEBUG, INFO (the default), WARNING, ERROR or CRITICAL
  --secrets FILE        read secrets from the JSON object in FILE (refused when its
                        group or others may read it: chmod 600 FILE)
  --no-input            never ask on the terminal whether a paused task may resume
  --resume TASK         approve the pause of the task named TASK in advance;
                        repeatable
  --store PATH          the run store to record into (an SQLite file, created
                        when missing); one that cannot be used is one WARNING
                        and the run goes on unrecorded
  --no-store            record nothing
  --restart ID          continue the recorded run ID (an id, a unique prefix, or
                        last) of the same flow: its tasks that succeeded keep
                        their state and result and do not run again; the
                        others run
  --no-progress         no progress line at the bottom of the terminal (there is
                        none when stderr is not a terminal)
  --executor KIND       where task bodies run, for every flow:run that names no
                        executor: local (one at a time in the script's own Lua
                        state, the default), threads (worker threads) or
                        processes (worker processes)
  --workers N           how many bodies run at once (threads, processes; the
                        number of CPUs by default); alone it means threads
  -h, --help            this text

Environment:
  LUAFLOW_LOG_LEVEL     the log level when --log-level is not given
  LUAFLOW_SECRET_<NAME> the secret NAME (upper-cased, other characters made _)
  LUAFLOW_SECRETS_FILE  the secrets file when --secrets is not given
  LUAFLOW_STORE         the run store when --store is not given (off: none)
  XDG_STATE_HOME        the default store is $XDG_STATE_HOME/luaflow/luaflow.db
                        (~/.local/state/luaflow/luaflow.db when unset)
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
       luaflow graph --run ID [options]

Runs the top-level code of the Lua script FILE with every flow:run() made to
stop it (no task runs, but the script's own code up to there does), then draws
every Flow built so far as a Graphviz DOT digraph: one node per task, one edge
per dependency, labelled with the name of the parameter it feeds ("in NAME" for
a result inside a table argument; "arg N" when the function does not name it).

Options:
  --flow NAME           draw only the flow named NAME
  --run ID              fill every task with the colour of its final state in
                        the recorded run ID (an id, a unique prefix, or last) and
                        label it with its state; FILE defaults to the run's script
  --format FORMAT       dot (the default), svg or png; svg and png are made by
                        Graphviz's dot program
  -o, --output PATH     write to PATH (its extension .svg, .png or .dot gives the
                        format when --format is not given); default: stdout
  --store PATH          the run store --run reads
  --no-store            no run store (then --run cannot be used)
  --log-level LEVEL     DEBUG, INFO (the default), WARNING, ERROR or CRITICAL
  -h, --help            this text

Environment:
  LUAFLOW_LOG_LEVEL     the log level when --log-level is not given
  LUAFLOW_STORE         the run store when --store is not given (off: none)
  LUA_PATH, LUA_CPATH   where the script's require() looks for modules

Examples: luaflow graph flow.lua -o flow.svg
          luaflow graph --run last -o last-run.png]],
  runs = [[
usage: luaflow runs [list] [options]
       luaflow runs show [ID] [--transitions] [--deliveries] [--json]
       luaflow runs logs [ID] [--json]
       luaflow runs prune (--keep N | --before DATE)

Lists the flow runs the run store recorded, newest first: id (its first 8
characters; any unique prefix names a run), flow, start, duration, final state
and the tasks' final states. A run whose process died shows as Crashed. See
'luaflow runs show --help', 'luaflow runs logs --help', 'luaflow runs prune --help'.

Options:
  --flow NAME           only the runs of the flow NAME
  --state CLASS         only the runs that ended in CLASS or one of its
                        subclasses (Failed, Success ...), or Running, Crashed
  --limit N             only the N newest
  --json                a JSON array of runs (keys: see the reference)
  --store PATH          the run store to read
  --no-store            (no store: an error)
  -h, --help            this text

Environment:
  LUAFLOW_STORE         the run store when --store is not given
  XDG_STATE_HOME        the default store is $XDG_STATE_HOME/luaflow/luaflow.db
                        (~/.local/state/luaflow/luaflow.db when unset)
  NO_COLOR, TERM        set NO_COLOR (or TERM=dumb) for tables without colour

Exit codes: 0 done, 1 the output could not be written, 2 usage error, or a store
that cannot be read.]],
  ["runs show"] = [[
usage: luaflow runs show [ID] [options]

Shows one recorded run: its flow, script, state and message, times,
parameters, exit code, and every task with its final state, run count,
duration and message (mapped children under their task). ID is a run id, a
unique prefix of one (an ambiguous prefix lists the runs it matches), or last
(the default).

Options:
  --transitions         also every state transition, in order
  --deliveries          also every notification delivery: notifier,
                        destination, delivered or not, status, duration
  --json                one JSON object (keys: see the reference)
  --store PATH          the run store to read
  --no-store            (no store: an error)
  -h, --help            this text

Environment:
  LUAFLOW_STORE         the run store when --store is not given

Exit codes: 0 done, 1 the output could not be written, 2 no such run, usage
error, or a store that cannot be read.]],
  ["runs logs"] = [[
usage: luaflow runs logs [ID] [options]

Prints the log lines run ID recorded (secrets hidden as they were on stderr),
as they were written: [2026-11-29 07:21:19.123+0000] INFO - logger | message.
ID is a run id, a unique prefix of one, or last (the default).

Options:
  --json                a JSON array of {time, level, logger, message}
  --store PATH          the run store to read
  --no-store            (no store: an error)
  -h, --help            this text

Environment:
  LUAFLOW_STORE         the run store when --store is not given

Exit codes: 0 done, 1 the output could not be written, 2 no such run, usage
error, or a store that cannot be read.]],
  ["runs prune"] = [[
usage: luaflow runs prune (--keep N | --before DATE) [options]

Deletes recorded runs, with everything they recorded, and gives the space
back. Runs still in progress are never deleted.

Options:
  --keep N              keep the N newest runs, delete the others
  --before DATE         delete the runs started before DATE: 2026-11-01,
                        2026-11-01T12:00, "2026-11-01 12:00:30" (local time;
                        end with Z or +01:00 for another zone), or an age:
                        30d, 12h, 2w, 90m, 45s
  --store PATH          the run store to prune
  --no-store            (no store: an error)
  -h, --help            this text

Environment:
  LUAFLOW_STORE         the run store when --store is not given

Exit codes: 0 done, 1 the output could not be written, 2 usage error, or a
store that cannot be written.]],
  cache = [[
usage: luaflow cache [list] [options]

Lists the task results cached in the run store (tasks with cache_for), oldest
first: key, map index, when it was made, when it expires, the run that made it,
and its result.

Options:
  --json                a JSON array of {key, map_index, created, expires,
                        run_id, state, message, result}
  --store PATH          the run store to read
  --no-store            (no store: an error)
  -h, --help            this text

Environment:
  LUAFLOW_STORE         the run store when --store is not given
  XDG_STATE_HOME        the default store is $XDG_STATE_HOME/luaflow/luaflow.db

Exit codes: 0 done, 2 usage error, or a store that cannot be read.]],
  ["cache clear"] = [[
usage: luaflow cache clear [KEY] [options]

Removes the cached task results of KEY (a task's cache_key, by default
"FLOW/TASK"), or every one when KEY is not given; says how many.

Options:
  --store PATH          the run store to clear
  --no-store            (no store: an error)
  -h, --help            this text

Environment:
  LUAFLOW_STORE         the run store when --store is not given

Exit codes: 0 done, 2 usage error, or a store that cannot be written.]],
  ["notify test"] = [[
usage: luaflow notify test FILE [options]

Runs the top-level code of the Lua script FILE as 'luaflow check' does (no task
runs), then calls the state handlers of one task (or of the flow) once with a
made-up transition Running -> CLASS("This is a test notification from
luaflow"), so you see a real alert arrive without running the flow. Every
notifier delivers at once (async, digest and dedup step aside); each delivery
is one log line and one line of the summary on stdout.

Options:
  --task NAME           the task whose handlers to call (default: the flow's)
  --state CLASS         the made-up new state's class (default Failed)
  --overdue             call its on_overdue instead, as if its deadline passed
  --flow NAME           the flow to look in, when FILE defines several
  --secrets FILE        read secrets from the JSON object in FILE (as for run)
  --log-level LEVEL     DEBUG, INFO (the default), WARNING, ERROR or CRITICAL
  -h, --help            this text

Environment:
  LUAFLOW_SECRET_<NAME> the secret NAME (upper-cased, other characters made _)
  LUAFLOW_SECRETS_FILE  the secrets file when --secrets is not given
  LUAFLOW_LOG_LEVEL     the log level when --log-level is not given

Exit codes: 0 every delivery succeeded, 1 one failed (or a handler raised, or
there is no handler), 2 usage, script or validation error.]],
}

HELP.notify = HELP["notify test"] -- luaflow help notify, luaflow notify --help

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

local STORE = { store = "value", ["no-store"] = "flag" } -- every command that uses the store
local function with_store(options)
  for k, v in pairs(STORE) do options[k] = v end
  return options
end
local OPTIONS = {
  run = with_store { param = "list", ["param-file"] = "value", json = "value", ["log-level"] = "value",
                     secrets = "value", ["no-input"] = "flag", resume = "list", flow = "value",
                     ["no-progress"] = "flag", restart = "value",
                     executor = "value", workers = "value" },
  check = { ["log-level"] = "value", flow = "value" },
  graph = with_store { ["log-level"] = "value", flow = "value", run = "value", format = "value",
                       output = "value" },
  runs = with_store { flow = "value", state = "value", limit = "value", json = "flag" },
  ["runs show"] = with_store { json = "flag", transitions = "flag", deliveries = "flag" },
  ["runs logs"] = with_store { json = "flag" },
  ["runs prune"] = with_store { keep = "value", before = "value" },
  ["notify test"] = { task = "value", state = "value", flow = "value", secrets = "value", overdue = "flag",
                      ["log-level"] = "value" },
  cache = with_store { json = "flag" },
  ["cache clear"] = with_store {},
}
-- The words after the command: FILE or ID; required or not.
local ARGUMENT = { run = { "FILE", true }, check = { "FILE", true }, graph = { "FILE", false },
                   ["runs show"] = { "ID", false }, ["runs logs"] = { "ID", false },
                   ["notify test"] = { "FILE", true }, ["cache clear"] = { "KEY", false } }
local SHORT = { graph = { o = "output" } } -- -o PATH
local ALIASES = { ["runs list"] = "runs", ["cache list"] = "cache" }
local SUBCOMMANDS = { runs = { "list", "show", "logs", "prune" }, notify = { "test" },
                      cache = { "list", "clear" } }
M.OPTIONS, M.HELP, M.ARGUMENT = OPTIONS, HELP, ARGUMENT -- the man page and completion specs read them

local function parse(args)
  local cmd = args[1]
  if cmd == nil then usage_error("no command given") end
  if cmd == "--help" or cmd == "-h" then return { cmd = "help" } end
  if cmd == "help" then
    local topic = args[3] and args[2] .. " " .. args[3] -- help runs show
    topic = HELP[topic] and topic or ALIASES[topic] or args[2]
    if topic ~= nil and not HELP[topic] then usage_error(("unknown command '%s'"):format(topic)) end
    return { cmd = "help", topic = topic }
  end
  if cmd == "--version" or cmd == "-V" or cmd == "version" then return { cmd = "version" } end
  if cmd:find(" ", 1, true) then usage_error(("unknown command '%s'"):format(cmd)) end
  local i = 2
  local sub = args[2] and (cmd .. " " .. args[2])
  if sub and (OPTIONS[sub] or ALIASES[sub]) then -- luaflow runs show ...
    cmd, i = ALIASES[sub] or sub, 3
  elseif SUBCOMMANDS[cmd] and args[2] and args[2]:sub(1, 1) ~= "-" then
    current_command = cmd
    local known = {}
    for _, name in ipairs(SUBCOMMANDS[cmd]) do known[name] = true end
    local guess = require("luaflow.options").suggest(args[2], known)
    usage_error(("unknown command '%s %s' (%s: %s)%s"):format(cmd, args[2], cmd,
                table.concat(SUBCOMMANDS[cmd], ", "), guess and (": did you mean '%s %s'?"):format(cmd, guess) or ""))
  end
  if SUBCOMMANDS[cmd] and not OPTIONS[cmd] then -- luaflow notify [--help]
    current_command = cmd
    if args[2] == "--help" or args[2] == "-h" then return { cmd = "help", topic = cmd } end
    usage_error(("'%s' needs a command: %s %s"):format(cmd, cmd, table.concat(SUBCOMMANDS[cmd], ", ")))
  end
  local allowed = OPTIONS[cmd]
  if not allowed then usage_error(("unknown command '%s'"):format(cmd)) end
  local o = { cmd = cmd, param = {}, resume = {} }
  current_command = cmd
  local argument = ARGUMENT[cmd]
  while i <= #args do
    local a = args[i]
    if a == "-h" then return { cmd = "help", topic = cmd } end
    local short = SHORT[cmd] and a:match("^%-(%a)") and SHORT[cmd][a:sub(2, 2)]
    if short then -- -o PATH, -oPATH
      a = "--" .. short .. (#a > 2 and ("=" .. a:sub(3)) or "")
    end
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
    elseif argument and argument[1] == "FILE" and o.file == nil then
      o.file = a
    elseif argument and argument[1] == "ID" and o.id == nil then
      o.id = a
    elseif argument and argument[1] == "KEY" and o.key == nil then
      o.key = a
    else
      usage_error(("unexpected argument '%s'"):format(a))
    end
    i = i + 1
  end
  if argument and argument[2] and not o.file then usage_error(("'%s' needs a FILE"):format(cmd)) end
  if o["log-level"] then
    local ok = pcall(core.set_log_level, o["log-level"])
    if not ok then
      usage_error(("unknown log level '%s' (DEBUG, INFO, WARNING, ERROR, CRITICAL)"):format(o["log-level"]))
    end
  end
  if o.executor or o.workers then o.executor = script.executor_option(o.executor, o.workers) end
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

-- ---- commands ----

-- Asks on the terminal whether a paused task may resume.
local function ask(task)
  core.progress.hold(true) -- the progress line stays off while the question waits
  core.log_flush()
  io.stderr:write(("%s is currently Paused; enter 'y' to resume: "):format(tostring(task)))
  io.stderr:flush()
  local answer = io.stdin:read("l")
  core.progress.hold(false)
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

local function run_flows(o)
  core.install_signal_handlers()
  if o.executor then luaflow.executors.set_default(o.executor) end
  script.use_secrets_file(o.secrets)
  -- The CLI records by default (library and embedding runs only when asked):
  -- the engine records each flow run into M.store and shows the progress line
  -- when M.progress is set (stderr a terminal, no --no-progress).
  M.store = require("luaflow.cli_store").open_for_run(o, usage_error)
  if M.store then require("luaflow.cache").use_store(M.store:path()) end -- cache_for entries
  M.progress = not o["no-progress"] and core.isatty(2)
  require("luaflow.cli_record").start(M, o, usage_error)
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
    after_run = function(flow, state, run)
      if not json_out then return end
      local ok, why = json_out:write_run(flow, state, run)
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

-- Runs FILE's flows; the run store (when one was opened) is closed after,
-- what it queued committed.
local function cmd_run(o)
  local ok, code = pcall(run_flows, o)
  local unused_restart = require("luaflow.cli_record").stop(M, o)
  if ok and unused_restart then
    err(unused_restart)
    code = EXIT_USAGE
  end
  if M.store then
    -- the cache's connection first, so that the store's, closed last, does the
    -- checkpoint: committed now, the database closes while the process ends
    require("luaflow.cache").use_store(nil)
    local closed, why = M.store:close{ wait = false }
    M.store = nil
    if not closed then core.log("WARNING", "luaflow.RunStore", why) end
  end
  if not ok then error(code, 0) end
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
                                             tostring(t):match("^<Parameter") and " (Parameter)"
                                             or core.task_is_mapped(t) and " (mapped)" or "")
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

local function cmd_notify(o)
  script.use_secrets_file(o.secrets)
  if not load_only(o) then return EXIT_USAGE end
  return require("luaflow.cli_notify").run(o, { usage_error = usage_error, flow_named = script.flow_named })
end

-- What the commands in their own modules (cli_graph, cli_runs) use from here.
local ctx = {
  usage_error = usage_error,
  report = function(msg) err(msg) end,
  load_flows = function(o) return load_only(o) and chosen_flows(o) or nil end,
  find_run = function(...) return require("luaflow.cli_runs").find_run(...) end,
}

local COMMANDS = {
  run = function(o) return cmd_run(o) end,
  check = function(o) return cmd_check(o) end,
  graph = function(o) return require("luaflow.cli_graph").main(o, ctx) end,
  runs = function(o) return require("luaflow.cli_runs").list(o, ctx) end,
  ["runs show"] = function(o) return require("luaflow.cli_runs").show(o, ctx) end,
  ["runs logs"] = function(o) return require("luaflow.cli_runs").logs(o, ctx) end,
  ["runs prune"] = function(o) return require("luaflow.cli_runs").prune(o, ctx) end,
  ["notify test"] = function(o) return cmd_notify(o) end,
  cache = function(o) return require("luaflow.cli_cache").list(o, ctx) end,
  ["cache clear"] = function(o) return require("luaflow.cli_cache").clear(o, ctx) end,
}

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
    end
    return COMMANDS[o.cmd](o)
  end)
  -- deliveries queued with async = true go out (or are given up) first
  core.http.sender.stop()
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
