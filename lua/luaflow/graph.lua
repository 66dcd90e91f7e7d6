-- Tasks, flows and the flow builder: thin sugar over the C graph (src/lua_task.c, src/lua_flow.c).
local core = require("luaflow.core")

local M = {}
local raise = core.raise

local options = require("luaflow.options")
local describe = options.describe
local run_store = require("luaflow.run_store")

local task_mt, flow_mt = core.task_mt, core.flow_mt
local function is_task(v) return getmetatable(v) == task_mt end
local function is_flow(v) return getmetatable(v) == flow_mt end
M.is_task, M.is_flow = is_task, is_flow

-- Everything a run needs that lives on the Lua side.
M.building = {}       -- flows whose builder is running, innermost last
M.flows = {}          -- every Flow built, in order, when M.record_flows is set (the CLI
                      -- picks from them; a library user's flows are not kept alive)
M.runs = {}           -- { parameters = } of the runs in progress, innermost last
M.parameters = setmetatable({}, { __mode = "k" }) -- Parameter task -> spec
M.hooks = {}          -- before_run(flow, opts), after_run(flow, state) (the CLI)
M.end_of_run = {}     -- fn(run) called when a run's engine work is over, before
                      -- flow:run returns (the notifiers' pending digests)
-- task or flow -> {state_handlers =, on_failure =} as given (luaflow notify test)
M.handlers_of = setmetatable({}, { __mode = "k" })
-- task or flow -> {on_overdue =, deadline =} as the engine calls it (luaflow notify test --overdue)
M.overdue_of = setmetatable({}, { __mode = "k" })
-- flow -> its terminal_state_handler (weak keys); the runner looks it up here
local terminal_handlers = core.terminal_handlers

-- ---- references: what a task call inside a builder returns ----
local ref_mt = { __luaflow_kind = "reference" }
local ref_methods = {}
local function new_ref(task, flow) return setmetatable({ _task = task, _flow = flow }, ref_mt) end
local function is_ref(v) return getmetatable(v) == ref_mt end
M.is_ref = is_ref

local origin_of = core.task_origin

-- The task in `flow` that x stands for: a reference, a task of the flow, or a
-- bare task the flow holds exactly one copy of (several: an error). nil when none.
local resolve = core.flow_resolve
M.resolve = resolve

local function current_builder()
  return M.building[#M.building]
end

-- ---- tasks ----
local task_methods = {}
task_mt.__index = function(t, k)
  if k == "name" then return core.task_name(t) end
  local m = task_methods[k]
  if m == nil and (k == "default" or k == "required") then -- a Parameter's, as in Prefect
    local spec = M.parameters[t]
    return spec and spec[k]
  end
  return m
end
task_mt.__concat = function(a, b) return tostring(a) .. tostring(b) end

-- ref[key] in a builder: a GetItem task. A key that is a task's result (a
-- reference, or an uncalled task) is a second data edge, as in Prefect.
local function get_item_task(flow, up, key)
  local key_task = is_ref(key) and rawget(key, "_task") or (is_task(key) and (resolve(flow, key) or key))
  local fn = key_task and function(v, k) return v[k] end or function(v) return v[key] end
  local t = core.new_task({ name = "GetItem", fn = fn })
  core.flow_add_task(flow, t)
  core.flow_add_edge(flow, up, t, 1)
  if key_task then
    core.flow_add_task(flow, key_task)
    core.flow_add_edge(flow, key_task, t, 2)
  end
  return t
end

-- t(args...) in a builder (C: src/lua_flow.c task_call) adds a copy of t
-- with data edges from the references among args and constants for the rest.
task_mt.__call = core.make_task_call(M.building, ref_mt, resolve, require("luaflow.table_args"))

-- ---- mapping: t:map(args...) ----
-- luaflow.unmapped(x) passes x whole to every child; luaflow.flatten(x)
-- maps over the concatenation of a list of lists. Both only mean something
-- as arguments of t:map.
local unmapped_mt = { __name = "luaflow.unmapped", __luaflow_map_arg = true }
local flatten_mt = { __name = "luaflow.flatten", __luaflow_map_arg = true }
local MAP_WHOLE, MAP_EACH, MAP_FLATTEN = 0, 1, 2
function M.unmapped(x) return setmetatable({ value = x }, unmapped_mt) end
function M.flatten(x) return setmetatable({ value = x }, flatten_mt) end

-- The name a local, an upvalue or a global of the caller (at level) gives v,
-- or nil: `double:map(...)` names an unnamed task "double", as `double(...)` would.
local function name_in_caller(level, v)
  local info = debug.getinfo(level + 1, "f")
  for i = 1, 250 do
    local name, value = debug.getlocal(level + 1, i)
    if not name then break end
    if rawequal(value, v) and name:match("^[%a_][%w_]*$") then return name end
  end
  for i = 1, 255 do
    local name, value = debug.getupvalue(info.func, i)
    if not name then break end
    if rawequal(value, v) and name:match("^[%a_][%w_]*$") then return name end
  end
  for name, value in pairs(_G) do
    if rawequal(value, v) and type(name) == "string" then return name end
  end
end

function task_methods.map(t, ...)
  if not is_task(t) then options.self_error("task", "map") end
  if not current_builder() then
    raise(("cannot map task %s outside a flow builder: call t:map(...) inside Flow(name, function(flow) ... end)")
          :format(tostring(t)))
  end
  if M.parameters[t] or M.parameters[origin_of(t) or false] then
    raise(("%s cannot be mapped: a Parameter takes no arguments"):format(tostring(t)))
  end
  local n = select("#", ...)
  local args, modes = { ... }, {}
  for i = 1, n do
    local a = args[i]
    local mt = getmetatable(a)
    if mt == unmapped_mt then
      args[i], modes[i] = a.value, MAP_WHOLE
    elseif mt == flatten_mt then
      args[i], modes[i] = a.value, MAP_FLATTEN
    else
      modes[i] = MAP_EACH
    end
  end
  if not core.task_named(t) then
    core.task_set_name(t, name_in_caller(2, t) or "task", true)
  end
  local call = task_mt.__call -- a plain call: a table first argument is data, not self
  local ref = call(t, table.unpack(args, 1, n))
  core.task_set_map(rawget(ref, "_task"), modes)
  return ref
end

function task_methods.run(t, ...)
  if not is_task(t) then options.self_error("task", "run") end
  local fn = core.task_fn(t)
  if fn == nil then return nil end
  return (fn(...))
end

-- u of t:set_upstream(u) (or d of set_downstream(d)) must stand for a task.
local function check_other(method, x)
  if not (is_task(x) or is_ref(x)) then
    raise(("%s(%s): %s must be a task or the result of a task call (got %s)")
          :format(method, method == "set_upstream" and "u" or "d", method == "set_upstream" and "u" or "d",
                  describe(x)))
  end
end

-- Inside a builder: an edge in the flow being built.
function task_methods.set_upstream(t, u, key)
  if not is_task(t) or (u == nil and options.dot_call("set_upstream")) then
    options.self_error("task", "set_upstream")
  end
  check_other("set_upstream", u)
  local flow = current_builder()
  if not flow then raise("set_upstream outside a flow builder: use flow:add_edge(upstream, downstream)") end
  flow:add_edge(u, t, key)
end

function task_methods.set_downstream(t, d, key)
  if not is_task(t) or (d == nil and options.dot_call("set_downstream")) then
    options.self_error("task", "set_downstream")
  end
  check_other("set_downstream", d)
  local flow = current_builder()
  if not flow then raise("set_downstream outside a flow builder: use flow:add_edge(upstream, downstream)") end
  flow:add_edge(t, d, key)
end

-- The handler options as the engine takes them (on_failure_final_only
-- wraps on_failure), remembered for obj once it is made.
local function handler_options(opts)
  local on_failure = opts.on_failure
  if on_failure == nil and opts.state_handlers == nil then return nil, nil end -- the common case: free
  if on_failure ~= nil and opts.on_failure_final_only then
    on_failure = require("luaflow.notifications")._final_failures_only(on_failure)
  end
  local list = nil
  if type(opts.state_handlers) == "table" then list = table.move(opts.state_handlers, 1, #opts.state_handlers, 1, {}) end
  return on_failure, { state_handlers = list, on_failure = on_failure }
end

-- As Prefect 1: a cache_validator without cache_for caches nothing.
local function check_cache(opts)
  if opts.cache_validator ~= nil and opts.cache_for == nil then
    core.log("WARNING", "luaflow.Task", "cache_validator provided without specifying cache expiration "
             .. "(cache_for); this Task will not be cached.")
  end
end

-- on_overdue as the engine calls it: a notifier sends its overdue message.
local function overdue_handler(fn)
  if fn == nil then return nil end
  return require("luaflow.notifications")._overdue_handler(fn)
end

function M.Task(opts)
  opts = opts or {}
  options.check("Task", opts)
  check_cache(opts)
  local on_failure, handlers = handler_options(opts)
  local on_overdue = overdue_handler(opts.on_overdue)
  if on_failure ~= opts.on_failure or on_overdue ~= opts.on_overdue then
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.on_failure, o.on_overdue, opts = on_failure, on_overdue, o
  end
  local t = core.new_task(opts)
  M.handlers_of[t] = handlers
  if on_overdue then M.overdue_of[t] = { on_overdue = on_overdue, deadline = opts.deadline } end
  if opts.name == nil then core.task_set_name(t, "Task", true) end -- never named by a call site
  return t
end

-- task(fn), task(name, fn), task{...}(fn), task(opts, fn)
function M.task(a, b)
  local opts, fn
  if type(a) == "function" then
    opts, fn = {}, a
  elseif type(a) == "string" then
    opts, fn = { name = a }, b
  elseif type(a) == "table" then
    opts, fn = a, b
    if fn == nil then
      options.check("task", opts)
      return function(f) return M.task(opts, f) end
    end
  else
    raise(("task() takes a function, a name and a function, or options (got %s)"):format(describe(a)))
  end
  if type(fn) ~= "function" then
    raise(("task(%s, fn): fn must be a function (got %s)"):format(type(a) == "string" and ("%q"):format(a) or "opts", describe(fn)))
  end
  options.check("task", opts)
  check_cache(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.fn = fn
  local handlers
  o.on_failure, handlers = handler_options(opts)
  o.on_overdue = overdue_handler(opts.on_overdue)
  local t = core.new_task(o)
  M.handlers_of[t] = handlers
  if o.on_overdue then M.overdue_of[t] = { on_overdue = o.on_overdue, deadline = o.deadline } end
  if o.name == nil then core.task_set_name(t, "task", false) end
  return t
end

-- A Parameter is required unless it has a default (as Prefect 1); a root
-- task, one per name in a flow (src/lua_flow.c enforces both).
function M.Parameter(name, opts)
  if type(name) ~= "string" or name == "" then
    raise(("Parameter(name [, opts]): the name must be a non-empty string (got %s)"):format(describe(name)))
  end
  opts = opts or {}
  options.check("Parameter", opts)
  local default, required = opts.default, opts.required
  if required == nil then required = default == nil end
  local t = core.new_task({ name = name, fn = function()
    local run = M.runs[#M.runs]
    local v = run and run.parameters[name]
    if v == nil and required then
      error(require("luaflow.signals").FAIL(('Parameter "%s" was required but not provided.'):format(name)))
    end
    if v == nil then v = default end
    return v
  end })
  core.task_mark_parameter(t)
  M.parameters[t] = { name = name, default = default, required = required }
  return t
end

-- ---- references ----
-- r.method, else r[k] adds a get-item task (C: src/lua_flow.c ref_index)
ref_mt.__index = core.make_ref_index(ref_methods, function(r, k)
  local flow = current_builder()
  if not flow then raise("indexing a task result outside a flow builder") end
  return new_ref(get_item_task(flow, rawget(r, "_task"), k), flow)
end)
ref_mt.__tostring = function(r) return tostring(rawget(r, "_task")) end
ref_mt.__concat = function(a, b) return tostring(a) .. tostring(b) end
-- r:set_upstream(u, key): the common case inside a builder (two references
-- of the flow being built, no key) is C's (src/lua_flow.c ref_set_upstream);
-- the rest comes here.
ref_methods.set_upstream = core.make_ref_set_upstream(M.building, ref_mt, function(r, u, key)
  if not is_ref(r) or (u == nil and options.dot_call("set_upstream")) then
    options.self_error("task result", "set_upstream")
  end
  check_other("set_upstream", u)
  rawget(r, "_flow"):add_edge(u, r, key)
end)
function ref_methods.set_downstream(r, d, key)
  if not is_ref(r) or (d == nil and options.dot_call("set_downstream")) then
    options.self_error("task result", "set_downstream")
  end
  check_other("set_downstream", d)
  rawget(r, "_flow"):add_edge(r, d, key)
end
function ref_methods.task(r) return rawget(r, "_task") end

-- ---- flows ----
local flow_methods = {}
flow_mt.__index = function(f, k)
  if k == "name" then return core.flow_name(f) end
  return flow_methods[k]
end
flow_mt.__concat = function(a, b) return tostring(a) .. tostring(b) end

local function cycle_error(flow, members)
  local tasks = core.flow_tasks(flow)
  local names = {}
  for i, idx in ipairs(members) do names[i] = tostring(tasks[idx]) end
  raise(("%s has a cycle among its tasks: %s"):format(tostring(flow), table.concat(names, ", ")))
end

function M.order(flow)
  local order, cycle = core.flow_order(flow)
  if not order then cycle_error(flow, cycle) end
  return order
end

-- flow:add_task(t) -> the task t stands for (a task, a reference, or the one
-- copy of a bare task), added once; C does it all but name a mistake.
local flow_add = core.flow_add
function flow_methods.add_task(f, t)
  local task = flow_add(f, t)
  if task then return task end
  if not is_flow(f) then options.self_error("flow", "add_task") end
  raise(("flow:add_task(t): t must be a task (got %s)"):format(describe(t)))
end

-- key: an argument position, or the name of one of the downstream function's parameters.
local function key_position(task, key)
  if key == nil then return 0 end
  if math.type(key) == "integer" and key > 0 then return key end
  if type(key) == "string" then
    local fn = core.task_fn(task)
    if type(fn) == "function" then
      local i = 1
      while true do
        local name = debug.getlocal(fn, i)
        if not name then break end
        if name == key then return i end
        i = i + 1
      end
    end
    raise(("%s has no parameter named '%s'"):format(tostring(task), key))
  end
  raise(("flow:add_edge(upstream, downstream, key): key must be an argument position (an integer >= 1) or a parameter name (got %s)"):format(describe(key)))
end

-- The tasks up and down stand for in f, or the error naming what is wrong.
local function edge_ends(f, up, down)
  if not is_flow(f) then options.self_error("flow", "add_edge") end
  local u = resolve(f, up) or (is_task(up) and up)
    or raise(("flow:add_edge(upstream, downstream): upstream must be a task (got %s)"):format(describe(up)))
  local d = resolve(f, down) or (is_task(down) and down)
    or raise(("flow:add_edge(upstream, downstream): downstream must be a task (got %s)"):format(describe(down)))
  return u, d
end

function flow_methods.add_edge(f, up, down, key)
  if key ~= nil then
    local _, d = edge_ends(f, up, down)
    key = key_position(d, key)
  end
  -- a cycle is an error when it is made (in a builder: when the flow is built)
  local cycle = core.flow_link(f, up, down, key)
  if cycle == false then edge_ends(f, up, down) end -- names what is wrong
  if cycle and current_builder() ~= f then cycle_error(f, cycle) end
end

function flow_methods.tasks(f)
  if not is_flow(f) then options.self_error("flow", "tasks") end
  local list = {}
  for i, t in ipairs(core.flow_tasks(f)) do list[i] = t end
  return list
end

-- The flow's Parameters, in the order they joined it (Prefect's flow.parameters()).
function flow_methods.parameters(f)
  local list = {}
  for _, t in ipairs(core.flow_tasks(f)) do
    if M.parameters[t] then list[#list + 1] = t end
  end
  return list
end

function flow_methods.edges(f)
  if not is_flow(f) then options.self_error("flow", "edges") end
  local tasks = core.flow_tasks(f)
  local list = {}
  for i, e in ipairs(core.flow_edges(f)) do
    list[i] = { upstream = tasks[e[1]], downstream = tasks[e[2]], key = e[3] > 0 and e[3] or nil }
  end
  return list
end

function flow_methods.set_reference_tasks(f, list)
  if not is_flow(f) then options.self_error("flow", "set_reference_tasks") end
  local problem = options.checks.tasks(list, "reference_tasks")
  if problem then raise(problem) end
  local indices = {}
  for i, t in ipairs(list) do
    local task = resolve(f, t)
    if not task then raise("reference tasks must be part of the flow.") end
    indices[i] = core.flow_index(f, task)
  end
  core.flow_set_reference(f, indices)
end

-- The Parameters of a flow, by name; worked out again only when the flow
-- has gained tasks since (a run of a big flow must not pay a scan each time).
local parameter_cache = setmetatable({}, { __mode = "k" })
function M.flow_parameters(f)
  local tasks = core.flow_tasks(f)
  local cached = parameter_cache[f]
  if cached and cached.n == #tasks then return cached.specs end
  local found = {}
  if next(M.parameters) then
    for _, t in ipairs(tasks) do
      local spec = M.parameters[t] or M.parameters[origin_of(t) or false]
      if spec then found[spec.name] = spec end
    end
  end
  parameter_cache[f] = { n = #tasks, specs = found }
  return found
end

-- A trigger's by_task (task -> State; its metatable is the C side's) accepts
-- references and bare tasks too.
-- A bare task with one copy in the running flow is that copy; otherwise it
-- is looked up through a map of the copies among the keys, made at the first
-- such lookup (false: several copies).
local copies_of = setmetatable({}, { __mode = "k" })
core.task_map_mt.__index = function(map, k)
  if is_ref(k) then return rawget(map, rawget(k, "_task")) end
  if not is_task(k) then return nil end
  local run = M.runs[#M.runs]
  local copy = run and core.flow_copy(run.flow, k)
  if copy then
    local state = rawget(map, copy)
    if state ~= nil then return state end
  end
  local copies = copies_of[map]
  if not copies then
    copies = {}
    for t, state in next, map do
      local o = origin_of(t)
      if o then copies[o] = copies[o] == nil and state end
    end
    copies_of[map] = copies
  end
  local found = copies[k]
  if found == false then
    raise(("%s has several copies in the flow; use the reference its call returned")
          :format(tostring(k)))
  end
  return found
end

local function sorted_names(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ", ")
end

local function run_parameters(f, given)
  local specs = M.flow_parameters(f)
  local values, unexpected, missing = {}, {}, {}
  for name, spec in pairs(specs) do -- defaults first, then the values given
    if not spec.required then values[name] = spec.default end
  end
  for k, v in pairs(given) do
    if specs[k] then values[k] = v else unexpected[k] = true end
  end
  if next(unexpected) then
    raise("Flow.run received the following unexpected parameters: " .. sorted_names(unexpected))
  end
  for name, spec in pairs(specs) do
    if spec.required and values[name] == nil then missing[name] = true end
  end
  if next(missing) then
    raise("Flow.run did not receive the following required parameters: " .. sorted_names(missing))
  end
  return values
end

function flow_methods.run(f, opts)
  if not is_flow(f) then options.self_error("flow", "run") end
  opts = opts or {}
  options.check("flow:run", opts)
  if #M.building > 0 then raise("cannot run a flow inside a flow builder") end
  for _, run in ipairs(M.runs) do -- a body or handler of f running f again
    if run.flow == f then raise(("%s cannot run inside its own run"):format(tostring(f))) end
  end
  local params = {}
  if M.hooks.before_run then M.hooks.before_run(f, opts, params) end
  for k, v in pairs(opts.parameters or {}) do params[k] = v end
  params = run_parameters(f, params)
  local resume = {}
  for i, t in ipairs(opts.resume or {}) do
    local task = resolve(f, t)
    if not task then raise(("resume: %s is not in %s"):format(tostring(t), tostring(f))) end
    resume[i] = core.flow_index(f, task)
  end
  local run = { flow = f, parameters = params, secrets = opts.secrets, run_id = M.new_run_id(),
                executor = opts.executor or require("luaflow.executors").default }
  M.runs[#M.runs + 1] = run
  -- the run store, the progress line, a restart (run_store.lua)
  local ok, state, cycle = pcall(run_store.prepare, f, opts, run)
  if ok then ok, state, cycle = pcall(core.flow_run, f, resume, M.hooks.approve, run) end
  run_store.finish(run)
  for _, hook in ipairs(M.end_of_run) do hook(M.runs[#M.runs]) end
  table.remove(M.runs)
  if not ok then error(state, 0) end
  if not state then cycle_error(f, cycle) end
  M.ran = M.ran or setmetatable({}, { __mode = "k" })
  M.ran[f] = true
  if M.hooks.after_run then M.hooks.after_run(f, state, run) end
  if core.cancel_signal() then error("interrupted", 0) end -- SIGINT/SIGTERM stop the script too
  return state
end
-- SIGINT/SIGTERM outside a run wait while a run reports (its --json line)
core.shield(flow_methods.run)

-- A random UUID (version 4) naming one flow run: 16 bytes from the system's
-- random source once a process (math.random's seed may be the same in two
-- processes started together, or set by the script), counted up for each
-- run.
local id_base, id_count
function M.new_run_id()
  if not id_base then
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(16)
    if f then f:close() end
    id_base, id_count = {}, 0
    for i = 1, 16 do
      id_base[i] = bytes and #bytes == 16 and bytes:byte(i) or math.random(0, 255)
    end
  end
  id_count = id_count + 1
  local b, carry = {}, id_count
  for i = 16, 1, -1 do -- base + count, as one 128-bit number
    local v = id_base[i] + carry
    b[i], carry = v % 256, v // 256
  end
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  return ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"):format(table.unpack(b))
end

-- How many times task t ran in the run that ended in flow_state.
function M.run_count(state, t)
  return core.result_run_count(state.result, t)
end

-- flow_state:task_states(): task, state in topological order.
function M.task_states(state)
  if not core.is_state(state) then options.self_error("state", "task_states") end
  if state.result == nil then
    raise(("%s has no task states: task_states() is for the state flow:run returns"):format(tostring(state)))
  end
  return core.result_iter(state.result)
end

local function add_listed(f, list)
  for _, t in ipairs(list) do flow_methods.add_task(f, t) end
end

-- Flow{...}, Flow(name, builder), Flow(opts, builder)
function M.Flow(a, builder)
  local opts
  if type(a) == "string" then
    opts = { name = a }
  elseif type(a) == "table" then
    opts = a
  else
    raise(("Flow() takes a name and a builder function, or a table of options (got %s)"):format(describe(a)))
  end
  options.check("Flow", opts)
  if opts.name == nil or opts.name == "" then raise("A name must be provided for the flow.") end
  if builder ~= nil and type(builder) ~= "function" then
    raise(("Flow(name, builder): the builder must be a function(flow) (got %s)"):format(describe(builder)))
  end
  local on_failure, handlers = handler_options(opts)
  local f = core.new_flow(opts.name, opts.state_handlers, on_failure)
  M.handlers_of[f] = handlers
  if opts.deadline ~= nil or opts.on_overdue ~= nil then
    local on_overdue = overdue_handler(opts.on_overdue)
    core.flow_set_deadline(f, { deadline = opts.deadline, on_overdue = on_overdue })
    if on_overdue then M.overdue_of[f] = { on_overdue = on_overdue, deadline = opts.deadline } end
  end
  if opts.tasks then add_listed(f, opts.tasks) end
  if builder then
    M.building[#M.building + 1] = f
    local ok, err = pcall(builder, f)
    table.remove(M.building)
    if not ok then error(err, 0) end
  end
  if opts.reference_tasks then f:set_reference_tasks(opts.reference_tasks) end
  terminal_handlers[f] = opts.terminal_state_handler
  local cycle = core.flow_cycle(f)
  if cycle then cycle_error(f, cycle) end
  if M.record_flows then M.flows[#M.flows + 1] = f end
  return f
end

return M
