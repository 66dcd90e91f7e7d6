-- luaflow.signals: building signals, printing them, and what each one does
-- when a task body raises it; plus plain errors of every Lua type.
-- Contract: the contract; Prefect 1's behaviour where the contract is silent.
local luaflow = require("luaflow")
local S = luaflow.states
local signals = luaflow.signals
local FAIL, SUCCESS, RETRY, SKIP, PAUSE, LOOP, ENDRUN, TRIGGERFAIL, VALIDATIONFAIL =
  signals.FAIL, signals.SUCCESS, signals.RETRY, signals.SKIP, signals.PAUSE,
  signals.LOOP, signals.ENDRUN, signals.TRIGGERFAIL, signals.VALIDATIONFAIL

local PREFIX = "Error during execution of task: "

-- Runs a one-task flow. Returns the flow state, the task state and the task's
-- handler calls as "old -> new" strings. opts are more task options; their
-- state_handlers run after the recorder.
local function run_one(fn, opts)
  local calls = {}
  local handlers = { function(_, old, new)
    calls[#calls + 1] = tostring(old) .. " -> " .. tostring(new)
  end }
  local task_opts = { fn = fn, state_handlers = handlers }
  for k, v in pairs(opts or {}) do
    if k == "state_handlers" then
      for _, h in ipairs(v) do handlers[#handlers + 1] = h end
    else
      task_opts[k] = v
    end
  end
  local t = luaflow.Task(task_opts)
  local flow_state = luaflow.Flow{ name = "f", tasks = { t } }:run()
  return flow_state, flow_state.result[t], calls
end

-- Runs a one-task flow whose body raises err; returns the flow and task states.
local function run_raising(err)
  local flow_state, ts = run_one(function() error(err, 0) end)
  return flow_state, ts
end

local X = require("executors") -- bodies under every executor: what they tell goes through a tally

-- Under Local a body's error value is the very value; under a worker
-- executor an equal copy (a signal keeps its class and fields).
local function same(x, expected, actual)
  return X.same(x, expected, actual)
end

-- A value set inside a body (an upvalue it assigns) is the body's own under
-- a worker executor: the spec checks what reached the engine instead.
local function raised_here(x, sig, result, printed)
  if x.is_local then return rawequal(sig, result) end
  return tostring(result) == printed
end

describe("luaflow.signals", function()
  local PLAIN = { "FAIL", "SUCCESS", "RETRY", "SKIP", "PAUSE", "LOOP", "TRIGGERFAIL", "VALIDATIONFAIL" }

  it("exports every signal", function()
    for _, name in ipairs(PLAIN) do
      assert.is_not_nil(signals[name], name)
    end
    assert.is_not_nil(signals.ENDRUN)
  end)

  describe("constructors", function()
    it("take a message: FAIL(\"msg\")", function()
      local sig = FAIL("msg")
      assert.are.equal("msg", sig.message)
      assert.are.equal('FAIL("msg")', tostring(sig))
    end)

    it("take a message and options: FAIL(\"msg\", {result=x})", function()
      local x = { 1 }
      local sig = FAIL("msg", { result = x })
      assert.are.equal("msg", sig.message)
      assert.is_true(rawequal(x, sig.result))
      assert.are.equal('FAIL("msg")', tostring(sig))
    end)

    it("take a table: FAIL{message=, result=}", function()
      local sig = FAIL{ message = "m", result = 5 }
      assert.are.equal("m", sig.message)
      assert.are.equal(5, sig.result)
      assert.are.equal('FAIL("m")', tostring(sig))
    end)

    it("take nothing: FAIL()", function()
      local sig = FAIL()
      assert.is_nil(sig.message)
      assert.are.equal("FAIL()", tostring(sig))
    end)

    it("build every signal the same way", function()
      for _, name in ipairs(PLAIN) do
        local cls = signals[name]
        assert.are.equal(name .. '("m")', tostring(cls("m")))
        assert.are.equal(name .. '("m")', tostring(cls("m", { result = 1 })))
        assert.are.equal(name .. '("m")', tostring(cls{ message = "m" }))
        assert.are.equal(name .. "()", tostring(cls()))
      end
    end)

    -- Prefect 2.2: a keyword the state does not know is an error at construction;
    -- the contract: a typo must never be silent.
    it("reject an unknown option, naming it (Prefect)", function()
      local ok, err = pcall(FAIL, "m", { reslut = 1 })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("reslut", 1, true), tostring(err))
      ok, err = pcall(SUCCESS, { mesage = "m" })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("mesage", 1, true), tostring(err))
    end)

    it("take ENDRUN(state)", function()
      assert.has_no.errors(function() ENDRUN(S.Failed("f")) end)
    end)
  end)

  describe("custom fields and printing", function()
    it("keep any custom field", function()
      local sig = FAIL("a equaled b!")
      local payload = {}
      sig.flag = true
      sig.value = 1
      sig.ratio = 0.5
      sig.label = "x"
      sig.payload = payload
      assert.are.equal(true, sig.flag)
      assert.are.equal(1, sig.value)
      assert.are.equal("integer", math.type(sig.value))
      assert.are.equal(0.5, sig.ratio)
      assert.are.equal("x", sig.label)
      assert.is_true(rawequal(payload, sig.payload))
    end)

    it("print like FAIL(\"a equaled b!\") with tostring and %s", function()
      local sig = FAIL("a equaled b!")
      sig.flag = true
      assert.are.equal('FAIL("a equaled b!")', tostring(sig))
      assert.are.equal('raised FAIL("a equaled b!")', ("raised %s"):format(sig))
    end)

    it("work with .. on both sides", function()
      local sig = SKIP("s")
      assert.are.equal('got SKIP("s")', "got " .. sig)
      assert.are.equal('SKIP("s") here', sig .. " here")
      assert.are.equal('SKIP("s")FAIL()', sig .. FAIL())
    end)

    it("print quotes in the message as they are", function()
      assert.are.equal('FAIL("say "hi"")', tostring(FAIL('say "hi"')))
    end)
  end)

  X.each(function(x)
  describe("raised in a task body", function()
    it("FAIL gives Failed(msg) whose result is the signal with its custom fields", function()
      local sig
      local seen_flag
      local flow_state, ts = run_one(function()
        sig = FAIL("a equaled b!")
        sig.flag = true
        sig.value = 1
        error(sig)
      end, { state_handlers = { function(_, _, new)
        if new:is_failed() then seen_flag = new.result.flag end
      end } })
      assert.are.equal('Failed("a equaled b!")', tostring(ts))
      assert.are.equal("Failed", ts.name)
      assert.are.equal("a equaled b!", ts.message)
      assert.is_true(raised_here(x, sig, ts.result, 'FAIL("a equaled b!")'))
      assert.are.equal(true, ts.result.flag)
      assert.are.equal(1, ts.result.value)
      assert.are.equal("integer", math.type(ts.result.value))
      assert.are.equal(true, seen_flag)
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(flow_state))
    end)

    it("FAIL built with {result=x} gives result x, not the signal", function()
      local x_ = x
      local x = { answer = 42 }
      local _, ts = run_raising(FAIL("bad", { result = x }))
      assert.are.equal('Failed("bad")', tostring(ts))
      assert.is_true(same(x_, x, ts.result))
      local _, ts2 = run_raising(FAIL{ message = "bad", result = 7 })
      assert.are.equal(7, ts2.result)
      assert.are.equal("integer", math.type(ts2.result))
    end)

    it("FAIL() gives Failed() with no message", function()
      local _, ts = run_raising(FAIL())
      assert.are.equal("Failed()", tostring(ts))
      assert.is_nil(ts.message)
      assert.is_true(ts:is_failed())
    end)

    it("SUCCESS gives Success(msg) whose result is the signal", function()
      local sig = SUCCESS("yay")
      sig.flag = true
      local flow_state, ts = run_raising(sig)
      assert.are.equal('Success("yay")', tostring(ts))
      assert.is_true(same(x, sig, ts.result))
      assert.are.equal(true, ts.result.flag)
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(flow_state))
    end)

    it("SUCCESS built with {result=5} gives result 5", function()
      local _, ts = run_raising(SUCCESS("yay", { result = 5 }))
      assert.are.equal('Success("yay")', tostring(ts))
      assert.are.equal(5, ts.result)
    end)

    it("SKIP gives Skipped(msg), a successful state", function()
      local sig = SKIP("skipping")
      local flow_state, ts = run_raising(sig)
      assert.are.equal('Skipped("skipping")', tostring(ts))
      assert.is_true(ts:is_skipped())
      assert.is_true(ts:is_successful())
      assert.is_true(same(x, sig, ts.result))
      -- Skipped is a Success, so the flow counts it as succeeded.
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(flow_state))
      local _, ts2 = run_raising(SKIP())
      assert.are.equal("Skipped()", tostring(ts2))
    end)

    it("RETRY gives Retrying(msg) due now, then the task runs again and succeeds", function()
      local counts = X.tally()
      local retrying
      local sig
      local flow_state, ts, calls = run_one(function()
        counts.add(luaflow.context.task_run_count)
        if luaflow.context.task_run_count == 1 then
          sig = RETRY("again")
          error(sig)
        end
        return "done"
      end, { state_handlers = { function(_, _, new)
        if new:is_retrying() then retrying = new end
      end } })
      assert.are.same({ 1, 2 }, counts.list())
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal("done", ts.result)
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(flow_state))
      assert.is_not_nil(retrying)
      assert.are.equal('Retrying("again")', tostring(retrying))
      -- the contract / Prefect: RETRY's run_count is the current attempt.
      assert.are.equal(1, retrying.run_count)
      assert.is_true(raised_here(x, sig, retrying.result, 'RETRY("again")'))
      assert.is_true(math.abs(retrying.start_time:timestamp() - os.time()) <= 2)
      assert.are.equal(4, #calls)
    end)

    it("RETRY makes the transitions Running -> Retrying -> Running -> Success", function()
      local _, ts, calls = run_one(function()
        if luaflow.context.task_run_count == 1 then error(RETRY("again")) end
        return 1
      end)
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Retrying("again")',
        'Retrying("again") -> Running("Starting task run.")',
        'Running("Starting task run.") -> Success("Task run succeeded.")',
      }, calls)
      assert.are.equal(1, ts.result)
    end)

    it("RETRY ignores max_retries (0 by default)", function()
      local runs = X.tally()
      local run_counts = {}
      local _, ts = run_one(function()
        runs.add(1)
        if luaflow.context.task_run_count <= 2 then error(RETRY("again")) end
        return runs.count()
      end, { state_handlers = { function(_, _, new)
        if new:is_retrying() then run_counts[#run_counts + 1] = new.run_count end
      end } })
      assert.are.equal(3, runs.count())
      assert.are.same({ 1, 2 }, run_counts)
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
    end)

    it("PAUSE gives Paused(msg) with no start_time; the flow stays Running", function()
      local sig = PAUSE("hold")
      local runs = X.tally()
      local flow_state, ts, calls = run_one(function()
        runs.add(1)
        error(sig)
      end)
      assert.are.equal('Paused("hold")', tostring(ts))
      assert.is_true(ts:is_paused())
      assert.is_nil(ts.start_time)
      assert.is_true(same(x, sig, ts.result))
      assert.are.equal(1, runs.count())
      -- the contract: with a task still Paused the flow stays Running("Running flow.").
      assert.are.equal('Running("Running flow.")', tostring(flow_state))
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Paused("hold")',
      }, calls)
    end)

    -- Prefect 4.3 item 10: a task looping while task_loop_count < 3.
    it("LOOP runs the task again with the transitions of Prefect", function()
      local loop_counts = X.tally()
      local flow_state, ts, calls = run_one(function()
        loop_counts.add(luaflow.context.task_loop_count)
        if luaflow.context.task_loop_count < 3 then error(LOOP()) end
        return "looped out"
      end)
      assert.are.same({ 1, 2, 3 }, loop_counts.list())
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Looped("Task is looping (1)")',
        'Pending("Looping task (on loop index 1)") -> Running("Starting task run.")',
        'Running("Starting task run.") -> Looped("Task is looping (2)")',
        'Pending("Looping task (on loop index 2)") -> Running("Starting task run.")',
        'Running("Starting task run.") -> Success("Task run succeeded.")',
      }, calls)
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal("looped out", ts.result)
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(flow_state))
    end)

    it("LOOP passes its result to the next iteration as task_loop_result", function()
      local looped = {}
      local _, ts = run_one(function()
        local acc = luaflow.context.task_loop_result or 0
        if luaflow.context.task_loop_count < 3 then
          error(LOOP("step", { result = acc + 10 }))
        end
        return acc + 1
      end, { state_handlers = { function(_, _, new)
        if new:is_looped() then looped[#looped + 1] = new end
      end } })
      assert.are.equal(21, ts.result)
      assert.are.equal(2, #looped)
      assert.are.equal('Looped("step")', tostring(looped[1]))
      assert.are.equal(1, looped[1].loop_count)
      assert.are.equal(2, looped[2].loop_count)
      assert.are.equal(10, looped[1].result)
      assert.are.equal(20, looped[2].result)
    end)

    it("LOOP without {result=} gives a Looped state whose result is the signal", function()
      local sig
      local looped_result
      run_one(function()
        if luaflow.context.task_loop_count == 1 then
          sig = LOOP()
          sig.flag = true
          error(sig)
        end
        return 0
      end, { state_handlers = { function(_, _, new)
        if new:is_looped() then looped_result = new.result end
      end } })
      assert.is_true(raised_here(x, sig, looped_result, 'LOOP()'))
    end)

    it("TRIGGERFAIL gives TriggerFailed(msg)", function()
      local sig = TRIGGERFAIL("tf")
      local flow_state, ts = run_raising(sig)
      assert.are.equal('TriggerFailed("tf")', tostring(ts))
      assert.are.equal("TriggerFailed", ts.name)
      assert.is_true(ts:is_failed())
      assert.is_true(same(x, sig, ts.result))
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(flow_state))
    end)

    it("VALIDATIONFAIL gives ValidationFailed(msg)", function()
      local sig = VALIDATIONFAIL("vf")
      local flow_state, ts = run_raising(sig)
      assert.are.equal('ValidationFailed("vf")', tostring(ts))
      assert.are.equal("ValidationFailed", ts.name)
      assert.is_true(ts:is_failed())
      assert.is_true(same(x, sig, ts.result))
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(flow_state))
    end)

    it("ENDRUN(state) gives that state and is never retried", function()
      local runs = X.tally()
      local flow_state, ts, calls = run_one(function()
        runs.add(1)
        error(ENDRUN(S.Failed{ message = "f", result = 7 }))
      end, { max_retries = 2, retry_delay = 0 })
      assert.are.equal(1, runs.count())
      assert.are.equal('Failed("f")', tostring(ts))
      assert.are.equal(7, ts.result)
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Failed("f")',
      }, calls)
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(flow_state))
    end)

    it("ENDRUN takes any state", function()
      local flow_state, ts = run_raising(ENDRUN(S.Skipped("enough")))
      assert.are.equal('Skipped("enough")', tostring(ts))
      assert.are.equal('Success("All reference tasks succeeded.")', tostring(flow_state))
      local _, ts2 = run_raising(ENDRUN(S.Success{ message = "early", result = "r" }))
      assert.are.equal('Success("early")', tostring(ts2))
      assert.are.equal("r", ts2.result)
    end)
  end)

  describe("retries of failures raised in a task body", function()
    it("retries FAIL with max_retries=1, retry_delay=0", function()
      local runs = X.tally()
      local flow_state, ts, calls = run_one(function()
        runs.add(1)
        error(FAIL("boom"))
      end, { max_retries = 1, retry_delay = 0 })
      assert.are.equal(2, runs.count())
      assert.are.same({
        'Pending() -> Running("Starting task run.")',
        'Running("Starting task run.") -> Failed("boom")',
        'Failed("boom") -> Retrying("Retrying Task (after attempt 1 of 2)")',
        'Retrying("Retrying Task (after attempt 1 of 2)") -> Running("Starting task run.")',
        'Running("Starting task run.") -> Failed("boom")',
      }, calls)
      assert.are.equal('Failed("boom")', tostring(ts))
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(flow_state))
    end)

    it("succeeds on the retry after a FAIL", function()
      local counts = X.tally()
      local _, ts = run_one(function()
        counts.add(luaflow.context.task_run_count)
        if luaflow.context.task_run_count == 1 then error(FAIL("first")) end
        return "second"
      end, { max_retries = 1, retry_delay = 0 })
      assert.are.same({ 1, 2 }, counts.list())
      assert.are.equal('Success("Task run succeeded.")', tostring(ts))
      assert.are.equal("second", ts.result)
    end)

    it("retries TRIGGERFAIL and VALIDATIONFAIL raised in the body", function()
      for _, cls in ipairs({ TRIGGERFAIL, VALIDATIONFAIL }) do
        local runs = X.tally()
        local _, ts = run_one(function()
          runs.add(1)
          error(cls("x"))
        end, { max_retries = 1, retry_delay = 0 })
        assert.are.equal(2, runs.count(), tostring(cls("x")))
        assert.is_true(ts:is_failed())
      end
    end)

    it("does not retry FAIL without max_retries", function()
      local runs = X.tally()
      local _, ts = run_one(function()
        runs.add(1)
        error(FAIL("once"))
      end)
      assert.are.equal(1, runs.count())
      assert.are.equal('Failed("once")', tostring(ts))
    end)
  end)

  describe("plain errors in a task body", function()
    local function check_failed(flow_state, ts, message)
      assert.are.equal("Failed", ts.name)
      assert.are.equal('Failed("' .. message .. '")', tostring(ts))
      assert.are.equal(message, ts.message)
      assert.are.equal('Failed("Some reference tasks failed.")', tostring(flow_state))
    end

    it("a string gives Failed(\"Error during execution of task: <msg>\"), result the error", function()
      local flow_state, ts = run_raising("boom")
      check_failed(flow_state, ts, PREFIX .. "boom")
      assert.are.equal("boom", ts.result)
    end)

    it("a string with position info keeps it in message and result", function()
      local flow_state, ts = run_one(function() error("with position") end)
      assert.are.equal("string", type(ts.result))
      assert.is_truthy(ts.result:find("with position", 1, true))
      check_failed(flow_state, ts, PREFIX .. ts.result)
    end)

    it("a table gives its tostring, result the same table", function()
      local e = { code = 3 }
      local flow_state, ts = run_raising(e)
      if not x.is_local then -- the worker's copy of the table is the one printed
        assert.matches("^Error during execution of task: table: 0x%x+$", ts.message)
        assert.are.same(e, ts.result)
        return
      end
      check_failed(flow_state, ts, PREFIX .. tostring(e))
      assert.is_true(same(x, e, ts.result))
      assert.are.equal(3, ts.result.code)
    end)

    it("a table with __tostring uses it", function()
      local e = setmetatable({}, { __tostring = function() return "custom error text" end })
      local flow_state, ts = run_raising(e)
      check_failed(flow_state, ts, PREFIX .. "custom error text")
      -- a worker's error value that cannot be copied (a function in its
      -- metatable) comes back as its text
      if not x.is_local then return assert.are.equal("custom error text", ts.result) end
      assert.is_true(rawequal(e, ts.result))
    end)

    it("nil gives \"nil\"", function()
      local flow_state, ts = run_raising(nil)
      check_failed(flow_state, ts, PREFIX .. "nil")
      assert.is_nil(ts.result)
    end)

    it("an integer gives its digits, result an integer", function()
      local flow_state, ts = run_raising(42)
      check_failed(flow_state, ts, PREFIX .. "42")
      assert.are.equal(42, ts.result)
      assert.are.equal("integer", math.type(ts.result))
    end)

    it("a float gives tostring of it", function()
      local flow_state, ts = run_raising(1.5)
      check_failed(flow_state, ts, PREFIX .. "1.5")
      assert.are.equal(1.5, ts.result)
    end)

    it("a boolean gives true or false", function()
      local flow_state, ts = run_raising(false)
      check_failed(flow_state, ts, PREFIX .. "false")
      assert.are.equal(false, ts.result)
      local flow_state2, ts2 = run_raising(true)
      check_failed(flow_state2, ts2, PREFIX .. "true")
      assert.are.equal(true, ts2.result)
    end)

    it("a userdata (io.stdout) gives its tostring, result the same userdata", function()
      local flow_state, ts = run_raising(io.stdout)
      if not x.is_local then -- the worker's own stdout, as text
        return assert.matches("^Error during execution of task: file %(0x%x+%)$", ts.message)
      end
      check_failed(flow_state, ts, PREFIX .. tostring(io.stdout))
      assert.is_true(rawequal(io.stdout, ts.result))
    end)

    it("a function and a coroutine give their tostring", function()
      local f = function() end
      local flow_state, ts = run_raising(f)
      if not x.is_local then -- the worker's copies, as text
        assert.matches("^Error during execution of task: function: 0x%x+$", ts.message)
        local _, ts2 = run_raising(coroutine.create(f))
        -- a coroutine the body captures cannot cross at all
        return assert.are.equal("<Task: Task>: cannot copy a thread at upvalue 'err'", ts2.message)
      end
      check_failed(flow_state, ts, PREFIX .. tostring(f))
      assert.is_true(rawequal(f, ts.result))
      local co = coroutine.create(f)
      local flow_state2, ts2 = run_raising(co)
      check_failed(flow_state2, ts2, PREFIX .. tostring(co))
      assert.is_true(rawequal(co, ts2.result))
    end)

    it("a table whose __tostring errors gives (error object is a table value)", function()
      local e = setmetatable({}, { __tostring = function() error("no text for you") end })
      local flow_state, ts = run_raising(e)
      check_failed(flow_state, ts, PREFIX .. "(error object is a table value)")
      if not x.is_local then return end -- (the text came back in its place)
      assert.is_true(rawequal(e, ts.result))
    end)

    it("a table whose __tostring returns a table gives (error object is a table value)", function()
      -- Lua 5.4's tostring raises "'__tostring' must return a string" here.
      local e = setmetatable({}, { __tostring = function() return {} end })
      local flow_state, ts = run_raising(e)
      check_failed(flow_state, ts, PREFIX .. "(error object is a table value)")
    end)

    it("a plain error is retried with max_retries", function()
      local runs = X.tally()
      local _, ts, calls = run_one(function()
        runs.add(1)
        error("again and again", 0)
      end, { max_retries = 1, retry_delay = 0 })
      assert.are.equal(2, runs.count())
      assert.are.equal(PREFIX .. "again and again", ts.message)
      assert.are.equal('Failed("' .. PREFIX .. 'again and again") -> Retrying("Retrying Task (after attempt 1 of 2)")',
        calls[3])
    end)

    it("fails the task when the error object's metatable raises on unknown fields", function()
      local Strict = setmetatable({ __tostring = function() return "MyError" end },
        { __index = function(_, k) error("strict class: no member " .. k) end })
      local t = luaflow.Task{ name = "t", fn = function() error(setmetatable({}, Strict)) end }
      local state = luaflow.Flow{ name = "f", tasks = { t } }:run()
      assert.are.equal('Failed("Error during execution of task: MyError")', tostring(state.result[t]))
    end)
  end)
  end)
end)
