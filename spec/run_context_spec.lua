-- luaflow.context facts a notifier builds on: the transition a handler is called for
-- (transition_number; with flow_run_id and the object's name, an id unique to that
-- transition) and whether a retry follows a failed attempt (task_will_retry).
local luaflow = require("luaflow")
local Task, Flow = luaflow.Task, luaflow.Flow
local signals = luaflow.signals
local ctx = luaflow.context

-- A handler that notes "<object> <old> -> <new> #<transition_number>".
local function numbering(log)
  return function(obj, old, new)
    log[#log + 1] = ("%s %s -> %s #%s"):format(obj.name, old.name, new.name,
                                               tostring(ctx.transition_number))
  end
end

-- A handler that notes "<old> -> <new>: <task_will_retry>".
local function retry_watch(log)
  return function(_, old, new)
    log[#log + 1] = ("%s -> %s: %s"):format(old.name, new.name, tostring(ctx.task_will_retry))
  end
end

-- A body that fails its first `n` calls, then returns "ok".
local function fails_first(n)
  local calls = 0
  return function()
    calls = calls + 1
    if calls <= n then error("boom " .. calls, 0) end
    return "ok"
  end
end

describe("luaflow.context.transition_number", function()
  it("counts each object's transitions from 1, retries included", function()
    local log = {}
    local t = Task{name = "t", fn = fails_first(1), max_retries = 1, retry_delay = 0,
                   state_handlers = {numbering(log)}}
    local f = Flow{name = "f", tasks = {t}, state_handlers = {numbering(log)}}
    assert.is_true(f:run():is_successful())
    assert.are.same({
      "f Scheduled -> Running #1",
      "t Pending -> Running #1",
      "t Running -> Failed #2",
      "t Failed -> Retrying #3",
      "t Retrying -> Running #4",
      "t Running -> Success #5",
      "f Running -> Success #2",
    }, log)
  end)

  it("counts transitions no handler is called for", function()
    local seen = {}
    local t = Task{name = "t", fn = fails_first(1),
                   on_failure = function() seen[#seen + 1] = ctx.transition_number end}
    Flow{name = "f", tasks = {t}}:run()
    assert.are.same({2}, seen) -- Pending -> Running was the first
  end)

  it("starts from 1 again in each run, for each task of its own", function()
    local log = {}
    local a = Task{name = "a", state_handlers = {numbering(log)}}
    local b = Task{name = "b", state_handlers = {numbering(log)}}
    local f = Flow{name = "f", tasks = {a, b}}
    f:run()
    f:run()
    assert.are.same({
      "a Pending -> Running #1", "a Running -> Success #2",
      "b Pending -> Running #1", "b Running -> Success #2",
      "a Pending -> Running #1", "a Running -> Success #2",
      "b Pending -> Running #1", "b Running -> Success #2",
    }, log)
  end)

  it("with the run id and the object's name, names each transition once", function()
    local ids, n = {}, 0
    local function note(obj)
      ids[("%s/%s/%d"):format(ctx.flow_run_id, obj.name, ctx.transition_number)] = true
      n = n + 1
    end
    local up = Task{name = "up", fn = fails_first(2), max_retries = 2, retry_delay = 0,
                    state_handlers = {note}}
    local down = Task{name = "down", state_handlers = {note}}
    local f = Flow{name = "f", tasks = {up, down}, state_handlers = {note}}
    f:add_edge(up, down)
    f:run()
    f:run()
    local distinct = 0
    for _ in pairs(ids) do distinct = distinct + 1 end
    assert.are.equal(n, distinct)
    -- first run: up fails twice (8 transitions), down and the flow 2 each; the second
    -- run, up's body having failed its two calls already, 2 each
    assert.are.equal(8 + 2 + 2 + 2 + 2 + 2, n)
  end)

  it("is nil in a body, in a trigger and outside a run", function()
    local inside = {}
    local up = Task{name = "up", fn = function() inside.body = ctx.transition_number or "nil" end}
    local down = Task{name = "down", trigger = function()
      inside.trigger = ctx.transition_number or "nil"
      return true
    end}
    local f = Flow{name = "f", tasks = {up, down}}
    f:add_edge(up, down)
    f:run()
    assert.are.same({body = "nil", trigger = "nil"}, inside)
    assert.is_nil(ctx.transition_number)
  end)

  it("stays the outer handler's after a run nested inside it", function()
    local log = {}
    local inner = Flow{name = "inner", tasks = {Task{name = "i", state_handlers = {numbering(log)}}}}
    local t = Task{name = "t", state_handlers = {function(obj, old, new)
      if new:is_running() then inner:run() end
      log[#log + 1] = ("%s %s -> %s #%s"):format(obj.name, old.name, new.name,
                                                 tostring(ctx.transition_number))
    end}}
    Flow{name = "outer", tasks = {t}}:run()
    assert.are.same({
      "i Pending -> Running #1", "i Running -> Success #2",
      "t Pending -> Running #1", "t Running -> Success #2",
    }, log)
  end)
end)

describe("luaflow.context.task_will_retry", function()
  it("is true only in the handlers of a failed attempt that a retry follows", function()
    local log = {}
    local t = Task{name = "t", fn = fails_first(5), max_retries = 1, retry_delay = 0,
                   state_handlers = {retry_watch(log)}}
    Flow{name = "f", tasks = {t}}:run()
    assert.are.same({
      "Pending -> Running: false",
      "Running -> Failed: true",
      "Failed -> Retrying: false",
      "Retrying -> Running: false",
      "Running -> Failed: false", -- the last attempt: no retry follows
    }, log)
  end)

  it("is true for a FAIL signal and a timeout with retries left", function()
    local log = {}
    local failing = Task{name = "fails", max_retries = 1, retry_delay = 0,
                         fn = function() error(signals.FAIL("no")) end,
                         state_handlers = {retry_watch(log)}}
    local slow = Task{name = "slow", max_retries = 1, retry_delay = 0, timeout = 0.05,
                      fn = function() while true do end end,
                      state_handlers = {retry_watch(log)}}
    Flow{name = "f", tasks = {failing}}:run()
    Flow{name = "g", tasks = {slow}}:run()
    assert.are.same("Running -> Failed: true", log[2])
    assert.are.same("Running -> TimedOut: true", log[7])
    assert.are.same("Running -> TimedOut: false", log[10])
  end)

  it("follows the state a handler is given: false once a handler made it a success", function()
    local log = {}
    local t = Task{name = "t", fn = fails_first(1), max_retries = 1, retry_delay = 0,
                   state_handlers = {
                     function(_, _, new)
                       if new:is_failed() then return luaflow.states.Success("forgiven") end
                     end,
                     retry_watch(log),
                   }}
    assert.is_true(Flow{name = "f", tasks = {t}}:run():is_successful())
    assert.are.same({"Pending -> Running: false", "Running -> Success: false"}, log)
  end)

  it("is false in the flow's handlers, in bodies and in triggers; nil outside a run", function()
    local seen = {}
    local t = Task{name = "t", max_retries = 1, retry_delay = 0, fn = function()
      seen.body = ctx.task_will_retry
      error("boom", 0)
    end}
    local f = Flow{name = "f", tasks = {t}, state_handlers = {function()
      seen.flow = seen.flow or ctx.task_will_retry
    end}}
    f:run()
    assert.are.same({body = false, flow = false}, seen)
    assert.is_nil(ctx.task_will_retry)
  end)

  it("is false when the failure is final for a task without retries", function()
    local log = {}
    local t = Task{name = "t", fn = fails_first(1), state_handlers = {retry_watch(log)}}
    Flow{name = "f", tasks = {t}}:run()
    assert.are.same({"Pending -> Running: false", "Running -> Failed: false"}, log)
  end)
end)
