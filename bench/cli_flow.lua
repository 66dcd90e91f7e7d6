-- The command line's rows of `make bench`, run by the shipped binary:
--   luaflow run bench/cli_flow.lua --no-input [--json F] [--secrets F] 2>LOG
-- BENCH_CLI says which row (see scripts/bench.sh); BENCH_CLI_N its size. The
-- script runs its flows itself (so `luaflow run` runs nothing more), times the
-- run phase (flow:run) and its floor in this one process, and prints one line
-- of figures on stdout:  key=value ...
local luaflow = require("luaflow")
local graph = luaflow._graph
local common = require("common") -- bench/common.lua: clock, median, the floor
local clock, median = common.clock, common.median

local ROW = os.getenv("BENCH_CLI") or "log"
local N = tonumber(os.getenv("BENCH_CLI_N") or "100000")
local REPEATS = tonumber(os.getenv("BENCH_CLI_REPEATS") or "3")

local function keep(_, _, new) return new end -- a handler returning new_state
local function body(x) return (x or 0) + 1 end -- a body returning a value

-- N independent tasks, each a copy of t.
local function independent(t, n)
  return luaflow.Flow("bench", function()
    for _ = 1, n do t() end
  end)
end

-- CPU seconds of f:run(), asserting how it ended.
local function run_time(f, ok)
  local t0 = clock()
  local s = f:run()
  local t1 = os.clock()
  assert(s:is_successful() == ok, tostring(s))
  return t1 - t0
end

local function floor_time(n, hs, fn)
  local t0 = clock()
  common.floor(n, hs, fn)
  return os.clock() - t0
end

local out = {}
local function report(k, v) out[#out + 1] = ("%s=%.4f"):format(k, v) end

if ROW == "log" or ROW == "secrets" then
  -- default logging (two INFO lines a task) to wherever stderr goes; for
  -- "secrets", the 10 secrets of --secrets FILE (k1..k10) are registered
  if ROW == "secrets" then
    for i = 1, 10 do luaflow.secrets.get("k" .. i) end
  end
  local f = independent(luaflow.task{ name = "t", state_handlers = { keep } }(body), N)
  local runs, floors, ratios = {}, {}, {}
  for i = 1, REPEATS do
    runs[i] = run_time(f, true) / N
    floors[i] = floor_time(N, { keep }, body) / N
    ratios[i] = runs[i] / floors[i]
  end
  report("run_us", median(runs) * 1e6)
  report("floor_us", median(floors) * 1e6)
  report("ratio", median(ratios))
elseif ROW == "json" then
  -- the same run with and without the --json writer (the CLI's after_run hook)
  local f = independent(luaflow.task{ name = "t", state_handlers = { keep } }(body), N)
  local hook = graph.hooks.after_run
  local with, without, floors = {}, {}, {}
  for i = 1, REPEATS do
    graph.hooks.after_run = hook
    with[i] = run_time(f, true) / N
    graph.hooks.after_run = nil
    without[i] = run_time(f, true) / N
    floors[i] = floor_time(N, { keep }, body) / N
  end
  graph.hooks.after_run = hook
  local extra = {}
  for i = 1, REPEATS do extra[i] = with[i] - without[i] end
  report("run_us", median(with) * 1e6)
  report("nojson_us", median(without) * 1e6)
  report("extra_us", median(extra) * 1e6)
  report("floor_us", median(floors) * 1e6)
elseif ROW == "failures" then
  -- 10% of the tasks fail once and are retried (default logging), against
  -- the same flow where none fails; the cost is per failed attempt
  local fails_left = {}
  local flaky = luaflow.task{ name = "flaky", state_handlers = { keep }, max_retries = 1,
                              retry_delay = 0 }(function(i)
    if fails_left[i] then
      fails_left[i] = nil
      error("failing once")
    end
    return i
  end)
  local f = luaflow.Flow("bench", function()
    for i = 1, N do flaky(i) end
  end)
  local nfail = 0
  local failing, passing, costs = {}, {}, {}
  for r = 1, REPEATS do
    passing[r] = run_time(f, true)
    nfail = 0
    for i = 1, N, 10 do
      fails_left[i] = true
      nfail = nfail + 1
    end
    failing[r] = run_time(f, true)
    costs[r] = (failing[r] - passing[r]) / nfail
  end
  report("ok_us", median(passing) / N * 1e6)
  report("fail_us", median(failing) / N * 1e6)
  report("per_failure_us", median(costs) * 1e6)
elseif ROW == "timeout" then
  -- a body that loops 10,000 times, with and without timeout=
  local function spin()
    local x = 0
    for i = 1, 10000 do x = x + i end
    return x
  end
  local plain = independent(luaflow.task{ name = "t", state_handlers = { keep } }(spin), N)
  local timed = independent(luaflow.task{ name = "t", state_handlers = { keep },
                                          timeout = 3600 }(spin), N)
  local a, b, ratios = {}, {}, {}
  for i = 1, REPEATS do
    a[i] = run_time(plain, true) / N
    b[i] = run_time(timed, true) / N
    ratios[i] = b[i] / a[i]
  end
  report("plain_us", median(a) * 1e6)
  report("timeout_us", median(b) * 1e6)
  report("ratio", median(ratios))
else
  error("unknown BENCH_CLI row " .. ROW)
end
print(table.concat(out, " "))
