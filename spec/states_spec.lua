-- luaflow.states: the state classes, their hierarchy, predicates, constructors,
-- fields, printed forms, time values and equality.
-- Contract: the contract; Prefect 1's behaviour where the contract is silent.
local luaflow = require("luaflow")
local S = luaflow.states

-- Every class and its parent.
local PARENT = {
  State = nil,
  Pending = "State",
  Scheduled = "Pending",
  Paused = "Scheduled",
  Resume = "Scheduled",
  Retrying = "Scheduled",
  Submitted = "State",
  Queued = "State",
  Running = "State",
  Cancelling = "Running",
  Finished = "State",
  Looped = "Finished",
  Success = "Finished",
  Cached = "Success",
  Mapped = "Success",
  Skipped = "Success",
  Cancelled = "Finished",
  Failed = "Finished",
  TimedOut = "Failed",
  TriggerFailed = "Failed",
  ValidationFailed = "Failed",
}

local CLASSES = {
  "State", "Pending", "Scheduled", "Paused", "Resume", "Retrying", "Submitted",
  "Queued", "Running", "Cancelling", "Finished", "Looped", "Success", "Cached",
  "Mapped", "Skipped", "Cancelled", "Failed", "TimedOut", "TriggerFailed",
  "ValidationFailed",
}

local PREDICATES = {
  "is_pending", "is_scheduled", "is_retrying", "is_paused", "is_submitted",
  "is_queued", "is_meta_state", "is_running", "is_finished", "is_successful",
  "is_failed", "is_skipped", "is_cached", "is_mapped", "is_looped", "is_cancelled",
}

-- The predicates that are true for each class; every other one is false.
-- Prefect 1 (test_state_is_methods) plus the contract for is_paused and
-- is_cancelled, which Prefect 1.4 does not list.
local TRUE_FOR = {
  State = {},
  Pending = { "is_pending" },
  Scheduled = { "is_pending", "is_scheduled" },
  Paused = { "is_pending", "is_scheduled", "is_paused" },
  Resume = { "is_pending", "is_scheduled" },
  Retrying = { "is_pending", "is_scheduled", "is_retrying" },
  Submitted = { "is_meta_state", "is_submitted" },
  Queued = { "is_meta_state", "is_queued", "is_scheduled" },
  Running = { "is_running" },
  Cancelling = { "is_running" },
  Finished = { "is_finished" },
  Looped = { "is_finished", "is_looped" },
  Success = { "is_finished", "is_successful" },
  Cached = { "is_finished", "is_successful", "is_cached" },
  Mapped = { "is_finished", "is_successful", "is_mapped" },
  Skipped = { "is_finished", "is_successful", "is_skipped" },
  Cancelled = { "is_finished", "is_cancelled" },
  Failed = { "is_finished", "is_failed" },
  TimedOut = { "is_finished", "is_failed" },
  TriggerFailed = { "is_finished", "is_failed" },
  ValidationFailed = { "is_finished", "is_failed" },
}

local function is_ancestor_or_self(ancestor, cls)
  while cls do
    if cls == ancestor then return true end
    cls = PARENT[cls]
  end
  return false
end

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%+00:00$"

describe("luaflow.states", function()
  describe("classes", function()
    it("exports every state class", function()
      for _, name in ipairs(CLASSES) do
        assert.is_not_nil(S[name], "missing class " .. name)
      end
    end)

    it("builds an instance of each class whose name is the class name", function()
      for _, name in ipairs(CLASSES) do
        local st = S[name]()
        assert.are.equal(name, st.name)
        assert.is_true(st:is(S[name]), name .. " is not its own class")
        assert.is_true(st:is(name), name .. " is not its own class name")
      end
    end)
  end)

  describe("hierarchy via state:is", function()
    it("follows the class tree with class objects, subclasses counting", function()
      for _, cname in ipairs(CLASSES) do
        local st = S[cname]()
        for _, other in ipairs(CLASSES) do
          assert.are.equal(is_ancestor_or_self(other, cname), st:is(S[other]),
            ("%s():is(%s)"):format(cname, other))
        end
      end
    end)

    it("follows the class tree with class names, subclasses counting", function()
      for _, cname in ipairs(CLASSES) do
        local st = S[cname]()
        for _, other in ipairs(CLASSES) do
          assert.are.equal(is_ancestor_or_self(other, cname), st:is(other),
            ("%s():is(%q)"):format(cname, other))
        end
      end
    end)

    it("makes Skipped a Success and Cancelled not a Failed", function()
      assert.is_true(S.Skipped():is(S.Success))
      assert.is_true(S.Skipped():is("Success"))
      assert.is_false(S.Cancelled():is(S.Failed))
      assert.is_false(S.Cancelled():is("Failed"))
      assert.is_true(S.Cancelled():is(S.Finished))
    end)

    -- Prefect 1.1: Queued is a meta state, not Pending; Looped is Finished, not Success.
    it("keeps Queued out of Pending and Looped out of Success (Prefect)", function()
      assert.is_false(S.Queued():is(S.Pending))
      assert.is_false(S.Looped():is(S.Success))
      assert.is_true(S.Mapped():is(S.Success))
      assert.is_true(S.Retrying():is(S.Pending))
      assert.is_true(S.Paused():is("Pending"))
    end)

    it("does not treat a parent as an instance of its subclass", function()
      assert.is_false(S.Success():is(S.Skipped))
      assert.is_false(S.Failed():is("TriggerFailed"))
      assert.is_false(S.State():is(S.Pending))
    end)

    it("rejects a class table with an out-of-range kind in state:is", function()
      assert.has_error(function() S.Success():is({ _kind = 40 }) end)
    end)
  end)

  describe("predicates", function()
    for _, cname in ipairs(CLASSES) do
      it("gives the truth table of " .. cname, function()
        local want = {}
        for _, p in ipairs(TRUE_FOR[cname]) do want[p] = true end
        local st = S[cname]("m")
        for _, p in ipairs(PREDICATES) do
          assert.are.equal(want[p] == true, st[p](st), ("%s:%s()"):format(cname, p))
        end
      end)
    end

    it("answers with real booleans", function()
      local st = S.Success()
      assert.are.equal(true, st:is_successful())
      assert.are.equal(false, st:is_failed())
      assert.are.equal(true, st:is(S.Finished))
      assert.are.equal(false, st:is(S.Failed))
    end)
  end)

  describe("constructors", function()
    it("takes a message as Cls(\"msg\")", function()
      local st = S.Success("msg")
      assert.are.equal("msg", st.message)
      assert.is_nil(st.result)
    end)

    it("takes a table of fields", function()
      local payload = { 1, 2 }
      local st = S.Failed{ message = "boom", result = payload }
      assert.are.equal("boom", st.message)
      assert.is_true(rawequal(payload, st.result))
      assert.are.equal("Failed", st.name)
    end)

    it("takes nothing: no message, no result", function()
      for _, name in ipairs(CLASSES) do
        local st = S[name]()
        assert.is_nil(st.message, name)
        assert.is_nil(st.result, name)
      end
    end)

    it("accepts every documented field on every class", function()
      for _, name in ipairs(CLASSES) do
        local ok, err = pcall(S[name], { message = "m", result = 1 })
        assert.is_true(ok, name .. ": " .. tostring(err))
      end
      assert.has_no.errors(function() S.Retrying{ start_time = 0, run_count = 3 } end)
      assert.has_no.errors(function() S.Scheduled{ start_time = 0 } end)
      assert.has_no.errors(function() S.Looped{ loop_count = 4 } end)
    end)

    it("keeps any Lua value as result, including false", function()
      assert.are.equal(false, S.Success{ result = false }.result)
      assert.are.equal(0, S.Success{ result = 0 }.result)
      assert.are.equal("s", S.Success{ result = "s" }.result)
      local f = function() end
      assert.is_true(rawequal(f, S.Success{ result = f }.result))
      assert.are.equal("integer", math.type(S.Success{ result = 7 }.result))
    end)

    it("rejects an unknown field, naming it", function()
      local ok, err = pcall(S.Failed, { message = "m", bogus_field = 1 })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("bogus_field", 1, true), tostring(err))
      ok, err = pcall(S.Success, { mesage = "typo" })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("mesage", 1, true), tostring(err))
    end)

    it("rejects a bad start_time without building a state", function()
      assert.has_error(function() S.Scheduled("m", { start_time = "bad" }) end)
      assert.has_error(function() S.Success{ start_time = 1 } end)
    end)
  end)

  describe("fields", function()
    it("gives Retrying its run_count, default 1 (Prefect 1.3)", function()
      assert.are.equal(1, S.Retrying().run_count)
      assert.are.equal(1, S.Retrying("r").run_count)
      local r = S.Retrying{ run_count = 3, message = "again" }
      assert.are.equal(3, r.run_count)
      assert.are.equal("integer", math.type(r.run_count))
      assert.are.equal("again", r.message)
    end)

    it("gives Looped its loop_count, default 1 (Prefect 1.3)", function()
      assert.are.equal(1, S.Looped().loop_count)
      assert.are.equal(5, S.Looped{ loop_count = 5 }.loop_count)
    end)

    it("gives Scheduled and Retrying a start_time of about now by default", function()
      for _, name in ipairs({ "Scheduled", "Retrying", "Resume" }) do
        local before = os.time()
        local st = S[name]()
        local after = os.time()
        assert.is_not_nil(st.start_time, name)
        local ts = st.start_time:timestamp()
        assert.is_true(ts >= before - 1 and ts <= after + 1, name .. " start_time " .. tostring(ts))
      end
    end)

    -- Prefect 1.3: Queued also has start_time, default now.
    it("gives Queued a start_time of about now (Prefect)", function()
      local st = S.Queued()
      assert.is_not_nil(st.start_time)
      assert.is_true(math.abs(st.start_time:timestamp() - os.time()) <= 2)
    end)

    it("gives Paused no start_time unless one is passed", function()
      assert.is_nil(S.Paused().start_time)
      assert.is_nil(S.Paused("hold").start_time)
      assert.are.equal(100, S.Paused{ start_time = 100 }.start_time:timestamp())
    end)

    -- Prefect 1.3: only the Scheduled family and Queued have start_time.
    it("gives no start_time outside the Scheduled family and Queued (Prefect)", function()
      for _, name in ipairs({ "Pending", "Running", "Success", "Failed", "Submitted" }) do
        assert.is_nil(S[name]().start_time, name)
      end
    end)

    it("takes start_time as epoch seconds", function()
      local st = S.Scheduled{ start_time = 1000000000 }
      assert.are.equal(1000000000, st.start_time:timestamp())
      assert.are.equal("2001-09-09T01:46:40.000000+00:00", tostring(st.start_time))
    end)

    it("takes start_time as fractional epoch seconds", function()
      local st = S.Retrying{ start_time = 1000000000.25 }
      assert.are.equal(1000000000.25, st.start_time:timestamp())
      assert.are.equal("2001-09-09T01:46:40.250000+00:00", tostring(st.start_time))
    end)

    it("takes start_time as a time value", function()
      local t = S.Scheduled{ start_time = 1500000000.5 }.start_time
      local st = S.Retrying{ start_time = t, run_count = 2 }
      assert.is_true(st.start_time == t)
      assert.are.equal(tostring(t), tostring(st.start_time))
      assert.are.equal(1500000000.5, st.start_time:timestamp())
    end)
  end)

  describe("printed form", function()
    it("is Name(\"message\") with a message", function()
      assert.are.equal('Success("msg")', tostring(S.Success("msg")))
      assert.are.equal('Running("Running flow.")', tostring(S.Running("Running flow.")))
      assert.are.equal('Failed("boom")', tostring(S.Failed{ message = "boom", result = 3 }))
    end)

    it("is Name() without a message, nil or empty", function()
      assert.are.equal("Scheduled()", tostring(S.Scheduled()))
      assert.are.equal("Pending()", tostring(S.Pending()))
      assert.are.equal("Pending()", tostring(S.Pending("")))
      assert.are.equal("Pending()", tostring(S.Pending{ message = "" }))
      assert.are.equal("Failed()", tostring(S.Failed{ result = 1 }))
    end)

    it("prints every class by its name", function()
      for _, name in ipairs(CLASSES) do
        assert.are.equal(name .. "()", tostring(S[name]()))
        assert.are.equal(name .. '("x")', tostring(S[name]("x")))
      end
    end)

    it("does not escape quotes in the message", function()
      local msg = 'Trigger was "all_successful" but some of the upstream tasks failed.'
      assert.are.equal('TriggerFailed("' .. msg .. '")', tostring(S.TriggerFailed(msg)))
      assert.are.equal('Paused("Trigger function is "manual_only"")',
        tostring(S.Paused('Trigger function is "manual_only"')))
      assert.are.equal('Failed("a\\b")', tostring(S.Failed("a\\b")))
    end)

    it("works with %s", function()
      assert.are.equal('state: Success("msg")', ("state: %s"):format(S.Success("msg")))
      assert.are.equal("Scheduled() -> Running()",
        ("%s -> %s"):format(S.Scheduled(), S.Running()))
    end)

    it("works with .. on both sides", function()
      assert.are.equal('now Success("msg")', "now " .. S.Success("msg"))
      assert.are.equal('Success("msg") now', S.Success("msg") .. " now")
      assert.are.equal("Pending()!", S.Pending() .. "!")
      assert.are.equal("Scheduled()Running()", S.Scheduled() .. S.Running())
      assert.are.equal("1 Pending()", 1 .. " " .. S.Pending())
    end)
  end)

  describe("time values", function()
    it("print as ISO-8601 UTC with six fractional digits", function()
      local t = S.Scheduled().start_time
      assert.matches(ISO, tostring(t))
      assert.are.equal("1970-01-01T00:00:00.000000+00:00",
        tostring(S.Scheduled{ start_time = 0 }.start_time))
      assert.are.equal("1970-01-01T00:00:01.500000+00:00",
        tostring(S.Scheduled{ start_time = 1.5 }.start_time))
      assert.are.equal("2001-09-09T01:46:40.000000+00:00",
        tostring(S.Queued{ start_time = 1000000000 }.start_time))
    end)

    it("work with %s and .. on both sides", function()
      local t = S.Scheduled{ start_time = 0 }.start_time
      local iso = "1970-01-01T00:00:00.000000+00:00"
      assert.are.equal("at " .. iso, ("at %s"):format(t))
      assert.are.equal("at " .. iso, "at " .. t)
      assert.are.equal(iso .. " ok", t .. " ok")
      assert.are.equal(iso .. iso, t .. t)
    end)

    it("give epoch seconds with :timestamp()", function()
      local t = S.Scheduled{ start_time = 1234567890.5 }.start_time
      assert.are.equal("number", type(t:timestamp()))
      assert.are.equal(1234567890.5, t:timestamp())
    end)

    it("compare with <, <= and ==", function()
      local a = S.Scheduled{ start_time = 100 }.start_time
      local a2 = S.Retrying{ start_time = 100 }.start_time
      local b = S.Scheduled{ start_time = 100.5 }.start_time
      assert.is_true(a < b)
      assert.is_false(b < a)
      assert.is_true(a <= b)
      assert.is_true(a <= a2)
      assert.is_false(b <= a)
      assert.is_true(b > a)
      assert.is_true(b >= a)
      assert.is_true(a == a2)
      assert.is_false(a == b)
      assert.is_true(a ~= b)
    end)

    it("order states built one after the other", function()
      local first = S.Scheduled().start_time
      local later = S.Scheduled{ start_time = first:timestamp() + 60 }.start_time
      assert.is_true(first < later)
      assert.is_true(first <= later)
    end)
  end)

  -- Prefect 1.5: same exact class, equal result and equal public attributes
  -- (run_count, start_time, loop_count); the message does not count.
  describe("equality (Prefect)", function()
    it("holds for the same class and the same result", function()
      assert.is_true(S.Success{ result = 1 } == S.Success{ result = 1 })
      assert.is_true(S.Success{ message = "a", result = 1 } == S.Success{ message = "b", result = 1 })
      assert.is_true(S.Failed("x") == S.Failed("x"))
      assert.is_true(S.Pending() == S.Pending())
    end)

    it("fails for a different result", function()
      assert.is_false(S.Success{ result = 1 } == S.Success{ result = 2 })
      assert.is_false(S.Success{ result = 1 } == S.Success())
      assert.is_true(S.Success{ result = 1 } ~= S.Success{ result = "1" })
    end)

    it("fails between different classes, even parent and child", function()
      assert.is_false(S.Success() == S.Cached())
      assert.is_false(S.Success{ result = 1 } == S.Skipped{ result = 1 })
      assert.is_false(S.Failed("x") == S.TriggerFailed("x"))
      assert.is_false(S.Pending() == S.Running())
    end)

    it("compares run_count and start_time of Retrying", function()
      local t = 1000
      assert.is_true(S.Retrying{ start_time = t, run_count = 1 } == S.Retrying{ start_time = t, run_count = 1 })
      assert.is_false(S.Retrying{ start_time = t, run_count = 1 } == S.Retrying{ start_time = t, run_count = 2 })
      assert.is_false(S.Scheduled{ start_time = 1 } == S.Scheduled{ start_time = 2 })
    end)
  end)
end)
