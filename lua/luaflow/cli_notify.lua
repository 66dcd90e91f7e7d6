-- `luaflow notify test FILE [--task NAME] [--state CLASS] [--overdue]`: calls
-- the state handlers of one task (or of the flow) with a made-up transition
-- Running -> CLASS("This is a test notification from luaflow"), or with
-- --overdue its on_overdue as its deadline would, so a user sees a real alert
-- arrive without running the flow. Every notifier delivers
-- at once (async, digest and dedup step aside); the exit code says whether
-- every delivery succeeded.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local graph = luaflow._graph
local N = luaflow.notifications
local options = require("luaflow.options")

local M = {}

M.MESSAGE = "This is a test notification from luaflow"

-- The state class named `name` (Failed by default).
local function state_class(name, cli)
  name = name or "Failed"
  local cls = name:sub(1, 1) ~= "_" and luaflow.states[name]
  if cls then return cls end
  local guess = options.suggest(name, luaflow.states)
  cli.usage_error(("--state %s: no state class of that name%s"):format(name,
                  guess and (" (did you mean %s?)"):format(guess) or ""))
end

-- The object to test and the flow it belongs to: the task named `name`, or
-- the flow (--flow NAME, or the only one FILE builds).
local function target(o, cli)
  local flows = o.flow and { cli.flow_named(o.flow, o.file) } or graph.flows
  if o.task then
    local found, names = {}, {}
    for _, f in ipairs(flows) do
      for _, t in ipairs(core.flow_tasks(f)) do
        names[t.name] = true
        if t.name == o.task then found[#found + 1] = { t, f } end
      end
    end
    if #found == 1 then return found[1][1], found[1][2] end
    if #found > 1 then
      cli.usage_error(("--task %s matches %d tasks; give them distinct names%s"):format(o.task, #found,
                      o.flow and "" or " or choose the flow with --flow NAME"))
    end
    local guess = options.suggest(o.task, names)
    cli.usage_error(("--task %s: %s has no task of that name%s"):format(o.task, o.file,
                    guess and (" (did you mean --task %s?)"):format(guess) or ""))
  end
  if #flows == 1 then return flows[1], flows[1] end
  if #flows == 0 then cli.usage_error(("%s defines no flow"):format(o.file)) end
  local list = {}
  for i, f in ipairs(flows) do list[i] = tostring(f) end
  cli.usage_error(("%s defines several flows: %s (choose one with --flow NAME, or a task with --task NAME)")
                  :format(o.file, table.concat(list, ", ")))
end

-- What graph.lua remembers of obj in `given` (a task copy: of its original).
local function given_to(given, obj)
  return given[obj] or (graph.is_task(obj) and given[core.task_origin(obj) or false]) or nil
end

-- The handlers given to obj.
local function handlers_of(obj)
  return given_to(graph.handlers_of, obj) or {}
end

-- Whether the error `why` a notifier raised is the failure of the delivery
-- it just made (deliveries grew past `seen`): that is counted once, as the delivery.
local function raised_its_delivery(why, deliveries, seen)
  local last = deliveries[#deliveries]
  return #deliveries > seen and not last.ok and tostring(why) == ("%s failed: %s"):format(last.who, last.status)
end

-- Calls obj's handlers as the engine calls them: each gets the previous
-- one's state; on_failure after them when that state is failed. Returns
-- the errors raised (a handler's error does not stop the others here).
local function call_handlers(obj, old, new, deliveries)
  local spec, errors, called = handlers_of(obj), {}, 0
  local state = new
  for i, h in ipairs(spec.state_handlers or {}) do
    called = called + 1
    local seen = #deliveries
    local ok, result = pcall(h, obj, old, state)
    if not ok and raised_its_delivery(result, deliveries, seen) then ok, result = true, nil end
    if not ok then
      errors[#errors + 1] = ("state_handlers[%d] raised: %s"):format(i, core.redact(tostring(result)))
    elseif core.is_state(result) then
      state = result
    elseif result ~= nil and result ~= false then
      errors[#errors + 1] = ("state_handlers[%d] returned a %s, not a state"):format(i, type(result))
    end
  end
  if spec.on_failure and state:is_failed() then
    called = called + 1
    local ok, why = pcall(spec.on_failure, obj, state)
    if not ok then errors[#errors + 1] = "on_failure raised: " .. core.redact(tostring(why)) end
  end
  return errors, called
end

-- obj's on_overdue (old: the Running state it is in) with a made-up message,
-- as the engine calls it when its deadline passes.
local function call_overdue(obj, old, _, deliveries)
  local spec = given_to(graph.overdue_of, obj)
  if not spec then return {}, 0 end
  local limit = core.format_duration(spec.deadline)
  local info = { deadline = spec.deadline, elapsed = spec.deadline,
                 message = ("%s is overdue: running for %s (deadline %s) (a test notification from luaflow)")
                   :format(obj.name, limit, limit) }
  local seen = #deliveries
  local ok, why = pcall(spec.on_overdue, obj, old, info)
  if ok or raised_its_delivery(why, deliveries, seen) then return {}, 1 end
  return { "on_overdue raised: " .. core.redact(tostring(why)) }, 1
end

-- Runs the test; returns the exit code (0: every delivery succeeded).
function M.run(o, cli)
  if o.overdue and o.state then cli.usage_error("--overdue and --state do not go together") end
  local cls = state_class(o.state, cli)
  local obj, flow = target(o, cli)
  local old, new = luaflow.states.Running(), cls(M.MESSAGE)
  local deliveries = {}
  local function observer(ok, who, status) deliveries[#deliveries + 1] = { ok = ok, who = who, status = status } end
  table.insert(N.observers, observer)
  graph.runs[#graph.runs + 1] = { flow = flow, parameters = {}, run_id = graph.new_run_id() }
  local ok, errors, called = pcall(N._with_transition,
    { task_will_retry = false, transition_number = 1, single = true },
    o.overdue and call_overdue or call_handlers, obj, old, new, deliveries)
  table.remove(graph.runs)
  for i, fn in ipairs(N.observers) do
    if fn == observer then table.remove(N.observers, i) break end
  end
  if not ok then error(errors, 0) end
  core.log_flush()
  if o.overdue then
    print(("notify test: %s: overdue while %s"):format(tostring(obj), tostring(old)))
  else
    print(("notify test: %s: %s -> %s"):format(tostring(obj), tostring(old), tostring(new)))
  end
  local failed = #errors
  for _, d in ipairs(deliveries) do
    print(("  %s: %s: %s"):format(d.ok and "delivered" or "FAILED", d.who, d.status))
    if not d.ok then failed = failed + 1 end
  end
  for _, e in ipairs(errors) do print("  FAILED: " .. e) end
  if called == 0 then
    print(("notify test: %s has no %s: nothing was sent"):format(tostring(obj),
                                                                o.overdue and "on_overdue" or "state handlers"))
    return 1
  end
  if #deliveries == 0 and #errors == 0 and o.overdue then
    print("notify test: on_overdue was called and sent nothing")
    return 0
  end
  if #deliveries == 0 and #errors == 0 then
    print(("notify test: no notifier sent anything for a %s state (see their only_states "
           .. "and ignore_states)"):format(new.name))
    return 0
  end
  local total = #deliveries + #errors
  if failed > 0 then
    print(("notify test: %d of %d failed"):format(failed, total))
    return 1
  end
  print(("notify test: %d deliver%s, all succeeded"):format(#deliveries, #deliveries == 1 and "y" or "ies"))
  return 0
end

return M
