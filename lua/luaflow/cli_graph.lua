-- luaflow graph: the flows a script builds as Graphviz DOT, or as SVG/PNG
-- through Graphviz's `dot`; with --run ID, every task filled with the colour
-- of the final state it had in that recorded run.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local graph = luaflow._graph
local fmt = require("luaflow.cli_format")

local M = {}

local EXIT_OK, EXIT_USAGE = 0, 2
local FORMATS = { dot = true, svg = true, png = true }
local EXTENSIONS = { dot = "dot", gv = "dot", svg = "svg", png = "png" }

-- ---- DOT ----

local function dot_quote(s)
  return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"'):gsub("\r?\n", "\\n") .. '"'
end

-- Lines of a label, quoted once: "name\nSuccess".
local function label(lines)
  local quoted = {}
  for i, l in ipairs(lines) do quoted[i] = dot_quote(l):sub(2, -2) end
  return '"' .. table.concat(quoted, "\\n") .. '"'
end

-- The name of parameter k of fn; nil for luaflow's own functions, C
-- functions and the arguments a vararg function takes as `...`.
local function parameter_name(fn, k)
  local offset = 0
  if type(fn) ~= "function" then -- a callable table: __call's first parameter is the table
    local mt = getmetatable(fn)
    fn = type(mt) == "table" and rawget(mt, "__call") or nil
    offset = 1
  end
  if type(fn) ~= "function" then return nil end
  local info = debug.getinfo(fn, "Su")
  if info.what ~= "Lua" or info.source:match("^=luaflow/") or k + offset > info.nparams then
    return nil
  end
  return (debug.getlocal(fn, k + offset))
end

local function edge_label(fn, key)
  if key == 0 then return nil end
  local name = parameter_name(fn, math.abs(key))
  if key > 0 then return name or ("arg " .. key) end
  return "in " .. (name or ("arg " .. -key))
end

-- Black or white, whichever reads better on the fill colour "#rrggbb".
local function text_colour(fill)
  local r, g, b = fill:match("^#(%x%x)(%x%x)(%x%x)$")
  if not r then return "#000000" end
  local luma = (0.2126 * tonumber(r, 16) + 0.7152 * tonumber(g, 16) + 0.0722 * tonumber(b, 16)) / 255
  return luma < 0.55 and "#ffffff" or "#000000"
end

local function state_fill(state)
  local cls = luaflow.states[state]
  return cls and cls.color or "#696969"
end

-- What the run recorded for the task at idx named name: its row and its
-- mapped children's rows. By index when the name there agrees, else by name
-- when only one task has it (the script changed since the run).
local function recorded(record, idx, name)
  local row = record.by_index[idx]
  if not (row and row.name == name) then
    row = record.by_name[name] ~= false and record.by_name[name] or nil
  end
  return row, row and record.children[row.index] or nil
end

local function index_run(tasks)
  local record = { by_index = {}, by_name = {}, children = {} }
  for _, t in ipairs(tasks) do
    if t.map_index then
      local list = record.children[t.index] or {}
      list[#list + 1] = t
      record.children[t.index] = list
    else
      record.by_index[t.index] = t
      record.by_name[t.name] = record.by_name[t.name] == nil and t or false -- false: not unique
    end
  end
  return record
end

local function children_text(children)
  local counts, order = {}, {}
  for _, c in ipairs(children) do
    if not counts[c.state] then order[#order + 1] = c.state end
    counts[c.state] = (counts[c.state] or 0) + 1
  end
  local parts = {}
  for i, state in ipairs(order) do parts[i] = ("%d %s"):format(counts[state], state) end
  return ("%d %s: %s"):format(#children, #children == 1 and "child" or "children",
                              table.concat(parts, ", "))
end

-- The DOT text of flow; run and tasks: a recorded run to colour it with.
function M.dot(flow, run, tasks)
  local out = {}
  local function add(...) for _, s in ipairs({ ... }) do out[#out + 1] = s end end
  local nodes = core.flow_tasks(flow)
  add("digraph ", dot_quote(flow.name), " {\n")
  if run then
    local title = ("%s: run %s, %s"):format(flow.name, run.id:sub(1, 8), run.state)
    if run.ended then title = title .. ", " .. fmt.duration(run.ended - run.started) end
    add("  graph [label=", dot_quote(title), ", labelloc=t, fontname=\"Helvetica\"];\n")
    add("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n")
  else
    add("  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n")
  end
  add("  edge [fontname=\"Helvetica\", fontsize=10];\n")
  local record = run and index_run(tasks)
  for _, idx in ipairs(graph.order(flow)) do
    local name = nodes[idx].name
    local mapped = core.task_is_mapped(nodes[idx]) and ", peripheries=2" or "" -- t:map(...)
    if not record then
      add("  t", idx, " [label=", dot_quote(name), mapped, "];\n")
    else
      local row, children = recorded(record, idx, name)
      if row then
        local lines = { name, row.state }
        if children then lines[3] = children_text(children) end
        local fill = state_fill(row.state)
        add("  t", idx, " [label=", label(lines), ", fillcolor=\"", fill, "\", fontcolor=\"",
            text_colour(fill), "\"", mapped, "];\n")
      else
        add("  t", idx, " [label=", label({ name, "not run" }),
            ", style=\"rounded,dashed\", fillcolor=\"#ffffff\"];\n")
      end
    end
  end
  for _, e in ipairs(core.flow_edges(flow)) do
    add("  t", e[1], " -> t", e[2])
    local text = edge_label(core.task_fn(nodes[e[2]]), e[3])
    if text then
      add(" [label=", dot_quote(text), "]")
    elseif e[3] == 0 then
      add(" [style=dashed]") -- the order only, no data
    end
    add(";\n")
  end
  add("}\n")
  return table.concat(out)
end

-- ---- output ----

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Graphviz's dot on PATH, or nil.
local function find_dot()
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local path = dir .. "/dot"
    local mode = core.file_mode(path)
    if mode and mode & 73 ~= 0 then return path end -- 0111: executable
  end
  return nil
end

local function format_of(o, usage_error)
  local format = o.format
  if format then
    format = format:lower()
    if not FORMATS[format] then
      usage_error(("--format expects dot, svg or png, got '%s'"):format(o.format))
    end
    return format
  end
  local ext = o.output and o.output:match("%.(%w+)$")
  return ext and EXTENSIONS[ext:lower()] or "dot"
end

local function write_file(path, text)
  local f, why = io.open(path, "wb")
  if not f then return nil, "cannot write -o " .. why end
  local ok, werr = f:write(text)
  local closed, cerr = f:close()
  if not ok or not closed then return nil, ("cannot write '%s': %s"):format(path, werr or cerr) end
  return true
end

-- Renders DOT text with dot -T<format> into path (nil: stdout).
local function render(dot_program, format, text, path)
  io.stdout:flush()
  local cmd = ("%s -T%s%s"):format(shell_quote(dot_program), format,
                                   path and (" -o " .. shell_quote(path)) or "")
  local pipe = io.popen(cmd, "w")
  if not pipe then return nil, "cannot start " .. dot_program end
  pipe:write(text)
  local ok, how, code = pipe:close()
  if ok then return true end
  return nil, ("%s -T%s failed (%s %s)"):format(dot_program, format, how, tostring(code))
end

-- ---- the command ----

-- ctx: usage_error(msg), report(msg), load_flows(o) -> the flows (nil when
-- the script failed, reported), find_run(o) -> store, run (runs.find_run).
function M.main(o, ctx)
  local format = format_of(o, ctx.usage_error)
  local dot_program
  if format ~= "dot" then
    dot_program = find_dot()
    if not dot_program then
      ctx.report(("--format %s needs Graphviz's 'dot' program, which is not installed "
                  .. "(on PATH); install Graphviz (Debian, Ubuntu: apt install graphviz) "
                  .. "or use --format dot"):format(format))
      return EXIT_USAGE
    end
    if not o.output and format == "png" and core.isatty(1) then
      ctx.usage_error("refusing to write PNG to a terminal: give -o PATH")
    end
  end
  local run, tasks
  if o.run then
    local s
    s, run = ctx.find_run({ id = o.run, store = o.store, ["no-store"] = o["no-store"] }, ctx)
    if not s then return run end
    local why, code
    tasks, why, code = s:tasks(run.id)
    s:close()
    if not tasks then
      ctx.report(why)
      return EXIT_USAGE
    end
    if not o.file then
      if not run.script then
        ctx.usage_error(("run %s recorded no script: give the FILE"):format(run.id:sub(1, 8)))
      end
      o.file = run.script
    end
  elseif not o.file then
    ctx.usage_error("'graph' needs a FILE")
  end
  local flows = ctx.load_flows(o)
  if not flows then return EXIT_USAGE end
  if run then
    local same = {}
    for _, f in ipairs(flows) do
      if f.name == run.flow then same[#same + 1] = f end
    end
    if #same ~= 1 then
      ctx.report(("run %s is a run of flow '%s': %s %s"):format(run.id:sub(1, 8), run.flow, o.file,
                 #same == 0 and "defines no flow of that name"
                 or ("defines %d flows of that name"):format(#same)))
      return EXIT_USAGE
    end
    flows = same
  end
  if format ~= "dot" and #flows ~= 1 then
    ctx.report(("%s builds %d flows: --format %s draws one, choose it with --flow NAME")
               :format(o.file, #flows, format))
    return EXIT_USAGE
  end
  local texts = {}
  for i, f in ipairs(flows) do
    local ok, text = pcall(M.dot, f, run, tasks)
    if not ok then
      ctx.report(tostring(text))
      return EXIT_USAGE
    end
    texts[i] = text
  end
  local text = table.concat(texts)
  local ok, why
  if format ~= "dot" then
    ok, why = render(dot_program, format, text, o.output)
  elseif o.output then
    ok, why = write_file(o.output, text)
  else
    local out = fmt.output()
    return fmt.finish(out:write(text), ctx.report, EXIT_OK)
  end
  if not ok then
    ctx.report(why)
    return EXIT_USAGE
  end
  return EXIT_OK
end

return M
