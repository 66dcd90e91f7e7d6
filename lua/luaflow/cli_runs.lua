-- luaflow runs [list] | show | logs | prune: the run store's history, as
-- aligned tables on a terminal and as JSON for scripts (docs/reference.md,
-- "luaflow runs", documents every key).
local luaflow = require("luaflow")
local cli_store = require("luaflow.cli_store")
local fmt = require("luaflow.cli_format")

local M = {}

local EXIT_OK, EXIT_USAGE = 0, 2
local out = fmt.output() -- one command a process

-- ---- reading ----

-- Opens the store the options name; nil and the exit code when it cannot
-- (the error reported), false when there is none yet.
local function open(o, ctx)
  local s, why = cli_store.open_for_reading(o, ctx.usage_error)
  if s == nil then
    ctx.report(why)
    return nil, EXIT_USAGE
  end
  if s == false then return false, why end
  return s
end

-- Calls a reader; on failure reports its message and gives nil.
local function read(ctx, s, method, ...)
  local rows, msg, code = s[method](s, ...)
  if rows == nil then
    ctx.report(msg)
    return nil, code
  end
  return rows
end

-- Class names in the engine's order (Success before Failed ...).
local function class_rank(name)
  local cls = luaflow.states[name]
  return cls and cls._kind or math.huge
end

-- {{class, n}, ...} of a counts table, in class order.
local function sorted_counts(counts)
  local list = {}
  for class, n in pairs(counts or {}) do list[#list + 1] = { class, n } end
  table.sort(list, function(a, b)
    local ra, rb = class_rank(a[1]), class_rank(b[1])
    if ra ~= rb then return ra < rb end
    return a[1] < b[1]
  end)
  return list
end

local function counts_text(run)
  local parts, sum = {}, 0
  for _, c in ipairs(sorted_counts(run.counts)) do
    parts[#parts + 1] = ("%d %s"):format(c[2], c[1])
    sum = sum + c[2]
  end
  if not run.ended and run.ntasks and run.ntasks > sum then
    parts[#parts + 1] = ("%d unfinished"):format(run.ntasks - sum)
  end
  return #parts > 0 and table.concat(parts, ", ") or "-"
end

local function run_duration(run)
  if run.ended then return run.ended - run.started end
  return nil
end

local function short_id(id) return id:sub(1, 8) end

-- ---- JSON documents ----

local function counts_json(counts)
  local kv = {}
  for _, c in ipairs(sorted_counts(counts)) do
    kv[#kv + 1], kv[#kv + 2] = c[1], c[2]
  end
  return fmt.object(table.unpack(kv))
end

-- A run's object; more key, value pairs may follow (a nil key: left out).
local function run_json(run, ...)
  return fmt.object(
    "id", run.id, "flow", run.flow, "state", run.state, "message", run.message,
    "started", fmt.iso(run.started), "ended", fmt.iso(run.ended), "duration", run_duration(run),
    "task_counts", counts_json(run.counts), "ntasks", run.ntasks,
    "script", run.script, "parameters", fmt.stored_json(run.parameters), "executor", run.executor,
    "exit_code", run.exit_code, "restart_of", run.restart_of, "pid", run.pid, "host", run.host, ...)
end

local function task_json(t)
  local duration = (t.started and t.ended) and (t.ended - t.started) or nil
  return fmt.object(
    "index", t.index, "map_index", t.map_index, "name", t.name, "state", t.state,
    "message", t.message, "run_count", t.run_count,
    "started", fmt.iso(t.started), "ended", fmt.iso(t.ended), "duration", duration,
    "result", t.result_stored and fmt.stored_json(t.result) or nil,
    "result_stored", t.result_stored)
end

local function transition_json(t)
  return fmt.object(
    "index", t.index, "map_index", t.map_index, "seq", t.seq, "object", t.name,
    "old_state", t.old, "new_state", t.new, "message", t.message, "time", fmt.iso(t.time))
end

local function delivery_json(d)
  return fmt.object("time", fmt.iso(d.time), "transition_id", d.transition_id ~= "" and d.transition_id or nil,
                    "notifier", d.notifier, "destination", d.destination, "delivered", d.ok,
                    "status", d.status, "duration", d.duration)
end

local function log_json(l)
  return fmt.object("time", fmt.iso(l.time), "level", l.level, "logger", l.logger,
                    "message", l.message)
end

local function list_json(rows, each)
  local items = { n = #rows }
  for i, r in ipairs(rows) do items[i] = each(r) end
  return fmt.list(items)
end

-- ---- luaflow runs [list] ----

local function positive_integer(text, option, ctx)
  local n = tonumber(text)
  if not n or n ~= math.floor(n) or n < 1 or n > 1e9 then
    ctx.usage_error(("%s expects a whole number of 1 or more, got '%s'"):format(option, text))
  end
  return math.tointeger(n)
end

function M.list(o, ctx)
  local query = { flow = o.flow, state = o.state }
  if o.limit then query.limit = positive_integer(o.limit, "--limit", ctx) end
  local s, path = open(o, ctx)
  if s == nil then return path end
  local runs = {}
  if s then
    path = s:path()
    runs = read(ctx, s, "runs", query)
    s:close()
    if not runs then return EXIT_USAGE end
  end
  if o.json then
    out:write(fmt.json(list_json(runs, run_json)), "\n")
    return fmt.finish(out, ctx.report, EXIT_OK)
  end
  if #runs == 0 then
    out:write((o.flow or o.state) and "No runs match.\n" or ("No runs recorded in %s.\n"):format(path))
    return fmt.finish(out, ctx.report, EXIT_OK)
  end
  local rows, now = {}, luaflow.time.now():timestamp()
  for i, run in ipairs(runs) do
    local colour = fmt.state_colour(run.state)
    rows[i] = { short_id(run.id), fmt.one_line(run.flow), fmt.local_time(run.started),
                fmt.duration(run.ended and run.ended - run.started
                             or run.state == "Running" and now - run.started or nil),
                { run.state, colour }, counts_text(run) }
  end
  fmt.print_table(out, { "ID", "FLOW", "STARTED", "DURATION", "STATE", "TASKS" }, rows, { [4] = true })
  return fmt.finish(out, ctx.report, EXIT_OK)
end

-- ---- luaflow runs show ----

local function task_label(t)
  if t.map_index then return ("  %s[%d]"):format(fmt.one_line(t.name), t.map_index) end
  return fmt.one_line(t.name)
end

local function print_run(run, tasks, transitions, deliveries)
  local function field(name, value)
    if value ~= nil and value ~= "" then out:write(("%-11s %s\n"):format(name, value)) end
  end
  field("Run", run.id)
  field("Flow", run.flow .. (run.script and (" (%s)"):format(run.script) or ""))
  field("State", fmt.paint(fmt.state_colour(run.state), run.state)
                 .. (run.message and (": " .. fmt.one_line(run.message)) or ""))
  field("Started", fmt.local_time(run.started))
  if run.ended then
    field("Ended", ("%s (%s)"):format(fmt.local_time(run.ended), fmt.duration(run.ended - run.started)))
  end
  field("Tasks", counts_text(run))
  field("Parameters", run.parameters ~= "{}" and run.parameters or nil)
  field("Executor", run.executor)
  field("Restart of", run.restart_of)
  if run.exit_code then field("Exit code", tostring(run.exit_code)) end
  field("Process", run.pid and run.pid > 0 and ("%d on %s"):format(run.pid, run.host or "?") or nil)
  if #tasks > 0 then
    out:write("\n")
    local rows = {}
    for i, t in ipairs(tasks) do
      rows[i] = { task_label(t), { t.state, fmt.state_colour(t.state) }, tostring(t.run_count or 0),
                  fmt.duration(t.started and t.ended and t.ended - t.started or nil),
                  fmt.one_line(t.message) }
    end
    fmt.print_table(out, { "TASK", "STATE", "RUNS", "DURATION", "MESSAGE" }, rows,
                    { [3] = true, [4] = true })
  end
  if deliveries then
    out:write("\n")
    local rows = {}
    for i, d in ipairs(deliveries) do
      rows[i] = { fmt.local_time(d.time, true), fmt.one_line(d.notifier), d.destination or "-",
                  { d.ok and "delivered" or "failed", fmt.state_colour(d.ok and "Success" or "Failed") },
                  fmt.duration(d.duration), fmt.one_line(d.status) }
    end
    if #rows > 0 then
      fmt.print_table(out, { "TIME", "NOTIFICATION", "DESTINATION", "RESULT", "DURATION", "STATUS" }, rows,
                      { [5] = true })
    else
      out:write("No notification deliveries recorded.\n")
    end
  end
  if transitions then
    out:write("\n")
    local rows = {}
    for i, t in ipairs(transitions) do
      local object = fmt.one_line(t.map_index and ("%s[%d]"):format(t.name, t.map_index) or t.name)
      rows[i] = { fmt.local_time(t.time, true), object,
                  { ("%s -> %s"):format(t.old, t.new), fmt.state_colour(t.new) },
                  fmt.one_line(t.message) }
    end
    fmt.print_table(out, { "TIME", "OBJECT", "TRANSITION", "MESSAGE" }, rows)
  end
end

-- The run ID names (an id, a unique prefix of one, or "last"); nil when
-- there is none (reported).
local function find_run(o, ctx)
  local s, path = open(o, ctx)
  if s == nil then return nil, path end
  if s == false then
    ctx.report(("no runs recorded in %s"):format(path))
    return nil, EXIT_USAGE
  end
  local run = read(ctx, s, "run", o.id or "last")
  if not run then
    s:close()
    return nil, EXIT_USAGE
  end
  return s, run
end
M.find_run = find_run

function M.show(o, ctx)
  local s, run = find_run(o, ctx)
  if not s then return run end
  local tasks = read(ctx, s, "tasks", run.id)
  local transitions = tasks and o.transitions and read(ctx, s, "transitions", run.id)
  local deliveries = tasks and o.deliveries and read(ctx, s, "deliveries", run.id)
  s:close()
  if not tasks or (o.transitions and not transitions) or (o.deliveries and not deliveries) then
    return EXIT_USAGE
  end
  if o.json then
    local doc = run_json(run, "tasks", list_json(tasks, task_json),
                         transitions and "transitions", transitions and list_json(transitions, transition_json),
                         deliveries and "deliveries", deliveries and list_json(deliveries, delivery_json))
    out:write(fmt.json(doc), "\n")
  else
    print_run(run, tasks, transitions, deliveries)
  end
  return fmt.finish(out, ctx.report, EXIT_OK)
end

-- ---- luaflow runs logs ----

-- As the line was written on stderr: [2026-11-29 07:21:19.123+0000] INFO - logger | message
local function log_line(l)
  local ms = math.floor((l.time or 0) * 1000 + 0.5) -- a time kept as a double: 0.8 is 0.7999...
  local stamp = os.date("!%Y-%m-%d %H:%M:%S", ms // 1000) .. (".%03d+0000"):format(ms % 1000)
  return ("[%s] %s - %s | %s\n"):format(stamp, fmt.paint(fmt.LEVEL_COLOURS[l.level], l.level),
                                       l.logger, l.message)
end

function M.logs(o, ctx)
  local s, run = find_run(o, ctx)
  if not s then return run end
  local logs = read(ctx, s, "logs", run.id)
  s:close()
  if not logs then return EXIT_USAGE end
  if o.json then
    out:write(fmt.json(list_json(logs, log_json)), "\n")
    return fmt.finish(out, ctx.report, EXIT_OK)
  end
  for _, l in ipairs(logs) do out:write(log_line(l)) end
  return fmt.finish(out, ctx.report, EXIT_OK)
end

-- ---- luaflow runs prune ----

local UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 7 * 86400 }

-- Days since 1970-01-01 of a proleptic Gregorian date.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- --before DATE: 2026-11-01, 2026-11-01T12:00[:30[.5]] or with a space, in
-- local time unless it ends in Z or +HH:MM; or an age: 30d, 12h, 2w, 90m, 45s.
-- Epoch seconds, or nil.
function M.parse_date(text, now)
  local n, unit = text:match("^(%d+%.?%d*)%s*([smhdw])$")
  if n then return now - tonumber(n) * UNITS[unit] end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  local h, mi, sec, zone = 0, 0, 0, nil
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
    if not hh then return nil end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, after = tail:match("^:(%d%d%.?%d*)(.*)$")
    if ss then sec, tail = tonumber(ss), after end
    if tail == "Z" or tail == "z" then
      zone = 0
    elseif tail ~= "" then
      local sign, zh, zm = tail:match("^([+-])(%d%d):?(%d%d)$")
      if not sign then return nil end
      zone = (tonumber(zh) * 3600 + tonumber(zm) * 60) * (sign == "-" and -1 or 1)
    end
  end
  local month_days = { 31, (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28,
                       31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if mo < 1 or mo > 12 or d < 1 or d > month_days[mo] or h > 23 or mi > 59 or sec >= 61 then
    return nil
  end
  if zone then
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - zone
  end
  local whole = math.floor(sec)
  return os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = whole }) + (sec - whole)
end

function M.prune(o, ctx)
  if (o.keep == nil) == (o.before == nil) then
    ctx.usage_error("prune needs one of --keep N (the newest runs to keep) or --before DATE")
  end
  local how
  if o.keep then
    local n = tonumber(o.keep)
    if not n or n ~= math.floor(n) or n < 0 or n > 1e9 then
      ctx.usage_error(("--keep expects a whole number of 0 or more, got '%s'"):format(o.keep))
    end
    how = { keep = math.tointeger(n) }
  else
    local t = M.parse_date(o.before, luaflow.time.now():timestamp())
    if not t then
      ctx.usage_error(("--before: cannot read '%s' as a date (2026-11-01, 2026-11-01T12:00, "
                       .. "2026-11-01 12:00:00Z, or an age: 30d, 12h, 2w)"):format(o.before))
    end
    how = { before = t }
  end
  local s, path = open(o, ctx)
  if s == nil then return path end
  if s == false then
    out:write(("No runs recorded in %s: nothing to prune.\n"):format(path))
    return fmt.finish(out, ctx.report, EXIT_OK)
  end
  local n = read(ctx, s, "prune", how)
  local where = s:path()
  s:close()
  if not n then return EXIT_USAGE end
  out:write(("Deleted %d run%s from %s.\n"):format(n, n == 1 and "" or "s", where))
  return fmt.finish(out, ctx.report, EXIT_OK)
end

return M
