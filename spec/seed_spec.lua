-- The seed examples (examples/, copied from the seed document) under `luaflow run`.
local cli = require("cli")
local luaflow = require("luaflow")

local root = os.getenv("LUAFLOW_ROOT") or "/work/main"
local function example(name) return root .. "/examples/" .. name end

local ISO = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%+00:00"

-- Epoch seconds of an ISO-8601 UTC time such as 2026-11-29T07:21:19.123456+00:00.
local function epoch(iso)
  local y, mo, d, h, mi, s, frac = iso:match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)%.(%d+)%+00:00$")
  assert(y, "not an ISO-8601 UTC time: " .. tostring(iso))
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days since 1970-01-01 of a proleptic Gregorian date (years counted from March)
  if mo <= 2 then y = y - 1 end
  local era = y // 400
  local year_of_era = y - era * 400
  local day_of_year = (153 * ((mo + 9) % 12) + 2) // 5 + d - 1
  local day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
  local days = era * 146097 + day_of_era - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
         + tonumber(frac) / 10 ^ #frac
end

local function now() return luaflow.time.now():timestamp() end

describe("seed examples", function()
  it("converts ISO times to epoch seconds (the helper below relies on it)", function()
    assert.are.equal(0, epoch("1970-01-01T00:00:00.000000+00:00"))
    assert.are.equal(951782400.5, epoch("2000-02-29T00:00:00.500000+00:00"))
    local t = luaflow.time.from_timestamp(1795941609.25)
    assert.is_true(math.abs(epoch(tostring(t)) - 1795941609.25) < 1e-6)
  end)

  for _, case in ipairs({
    { "01_flow_state_handler", 0 },
    { "02_task_state_handler", 0 },
    { "05_special_failure", 1 },
  }) do
    local name, code = case[1], case[2]
    it(name .. " prints exactly its .out file and exits " .. code, function()
      local expected = cli.read(example(name .. ".out"))
      assert.is_not_nil(expected)
      local r = cli.run({ "run", example(name .. ".lua") })
      assert.are.equal(expected, r.stdout)
      assert.are.equal(code, r.code)
    end)
  end

  it("04_retry_notifier announces two retries 0.2 s apart, then the result", function()
    local started = now()
    local r = cli.run({ "run", example("04_retry_notifier.lua") })
    local ended = now()
    assert.are.equal(0, r.code)
    local lines = cli.lines(r.stdout)
    assert.are.equal(3, #lines)
    local times = {}
    for i = 1, 2 do
      local iso = lines[i]:match("^Task <Task: flaky> failed and is retrying at (" .. ISO .. ")$")
      assert.is_not_nil(iso, lines[i])
      times[i] = epoch(iso)
    end
    assert.are.equal('Success("All reference tasks succeeded.")\t3', lines[3])
    -- a retry is due retry_delay after the failure that made it, and the
    -- second failure comes only once the first retry ran
    assert.is_true(times[1] >= started + 0.2 - 0.001, "first retry before the run began + 0.2 s")
    local gap = times[2] - times[1]
    assert.is_true(gap >= 0.2 - 0.001 and gap < 0.5, "retries " .. gap .. " s apart")
    assert.is_true(times[2] <= ended + 0.001, "second retry after the process ended")
  end)

  it("06_callback_factory prints the failure, the retry and both failures again", function()
    local started = now()
    local r = cli.run({ "run", example("06_callback_factory.lua") })
    local ended = now()
    assert.are.equal(1, r.code)
    local lines = cli.lines(r.stdout)
    assert.are.equal(4, #lines)
    assert.are.equal('<Task: boom> failed: Failed("Error during execution of task: boom")', lines[1])
    local iso = lines[2]:match("^Task <Task: boom> failed and is retrying at (" .. ISO .. ")$")
    assert.is_not_nil(iso, lines[2])
    local t = epoch(iso)
    assert.is_true(t >= started - 0.001 and t <= ended + 0.001, "retry time outside the run")
    assert.are.equal('<Task: boom> failed: Failed("Error during execution of task: boom")', lines[3])
    assert.are.equal('<Flow: name=callbacks> failed: Failed("Some reference tasks failed.")', lines[4])
  end)
end)
