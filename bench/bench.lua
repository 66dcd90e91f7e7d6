-- make bench: luaflow's run phase against its floor (a plain Lua loop making the same calls).
-- Run by scripts/bench.sh under the counting malloc (bench/memcount.c).
local luaflow = require("luaflow")
local core = require("luaflow.core")
local chandlers = require("handlers") -- examples/c_handler, built by `make examples`

local function list_env(name, default)
  local out = {}
  for v in (os.getenv(name) or default):gmatch("[^,]+") do out[#out + 1] = tonumber(v) end
  return out
end
local SIZES = list_env("BENCH_SIZES", "1000,10000,100000,1000000")
local RATIO_N = tonumber(os.getenv("BENCH_RATIO_N") or "100000")

local SHAPES = { "independent", "chain", "fan-out/in" }
local VARIANTS = {
  { label = "0 Lua", lua = 0 },
  { label = "1 Lua", lua = 1 },
  { label = "3 Lua", lua = 3 },
  { label = "1 C", c = true },
}

local function keep(_, _, _) end   -- the handler every variant calls: keeps the state
local function body(x) return x end -- the task function

local function handlers_for(v)
  if v.c then return { (chandlers.counter()) } end
  local hs = {}
  for i = 1, v.lua do hs[i] = keep end
  return hs
end

local function build(shape, n, hs)
  local t = luaflow.task{ name = "t", state_handlers = hs }(body)
  return luaflow.Flow("bench", function()
    if shape == "independent" then
      for _ = 1, n do t() end
    elseif shape == "chain" then
      local prev = t()
      for _ = 2, n do prev = t(prev) end
    else
      local src, sink = t(), t()
      for _ = 3, n do sink:set_upstream(t(src)) end
    end
  end)
end

-- The floor: a plain Lua loop making the same calls, one small table per
-- state a task passes (Pending, Running, Success).
local function floor(shape, n, hs)
  local nh, prev, t = #hs, nil, {}
  for _ = 1, n do
    local pending = { name = "Pending" }
    local running = { name = "Running", message = "Starting task run." }
    for j = 1, nh do hs[j](t, pending, running) end
    local r = body(prev)
    local success = { name = "Success", message = "Task run succeeded.", result = r }
    for j = 1, nh do hs[j](t, running, success) end
    if shape == "chain" then prev = r end
  end
end

local function clock()
  collectgarbage()
  collectgarbage()
  return os.clock()
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function repeats(n)
  if n <= 10000 then return 7 end
  return 3 -- N = 1e6 too: one run alone is at the mercy of the machine
end

-- One measurement of a shape/variant at size n: ns per task (build, run,
-- floor) and bytes per task (after building, at the run's peak).
local function measure(shape, v, n)
  local hs = handlers_for(v)
  local floor_hs = v.c and {} or hs -- a C handler's floor is the loop without handlers
  local base = select(1, core.mem()) or 0
  local t0 = clock()
  local flow = build(shape, n, hs)
  local t1 = os.clock()
  collectgarbage()
  local built = (select(1, core.mem()) or 0) - base
  core.mem(true)
  local t2 = clock()
  local state = flow:run()
  local t3 = os.clock()
  local _, peak = core.mem()
  peak = (peak or 0) - base
  assert(state:is_successful(), tostring(state))
  state, flow = nil, nil
  local t4 = clock()
  floor(shape, n, floor_hs)
  local t5 = os.clock()
  return { build = (t1 - t0) / n * 1e9, run = (t3 - t2) / n * 1e9, floor = (t5 - t4) / n * 1e9,
           built = built / n, peak = peak / n }
end

local function measure_median(shape, v, n)
  local runs = {}
  for i = 1, repeats(n) do runs[i] = measure(shape, v, n) end
  local out = {}
  for _, k in ipairs({ "build", "run", "floor", "built", "peak" }) do
    local xs = {}
    for i, r in ipairs(runs) do xs[i] = r[k] end
    out[k] = median(xs)
  end
  -- the ratio of each repetition (same process, same run), then the median
  local ratios = {}
  for i, r in ipairs(runs) do ratios[i] = r.run / r.floor end
  out.ratio = median(ratios)
  return out
end

print(("%-12s %-6s %8s %10s %10s %10s %7s %10s %10s"):format(
  "shape", "hdlrs", "N", "build ns", "run ns", "floor ns", "ratio", "B/task bld", "B/task pk"))
local results = {}
for _, n in ipairs(SIZES) do
  -- warm up: the first run at a new size grows the process heap (page faults
  -- that no later run pays), so it is not measured
  measure("independent", VARIANTS[1], n)
  for _, shape in ipairs(SHAPES) do
    for _, v in ipairs(VARIANTS) do
      local r = measure_median(shape, v, n)
      results[#results + 1] = { shape = shape, v = v.label, n = n, r = r }
      print(("%-12s %-6s %8d %10.0f %10.0f %10.0f %7.2f %10.0f %10.0f"):format(
        shape, v.label, n, r.build, r.run, r.floor, r.ratio, r.built, r.peak))
      io.stdout:flush()
    end
  end
end

-- Verdicts: ratio <= 2 at RATIO_N for every shape and variant;
-- N=1e6 within 1.5x of N=1e4 per task; <= 400 bytes per task at 1e6.
local function find(shape, v, n)
  for _, x in ipairs(results) do
    if x.shape == shape and x.v == v and x.n == n then return x.r end
  end
end
local verdict = {}
local worst_ratio = 0
for _, x in ipairs(results) do
  if x.n == RATIO_N then worst_ratio = math.max(worst_ratio, x.r.ratio) end
end
verdict[#verdict + 1] = ("ratio<=2: %s (worst %.2f at N=%d)"):format(worst_ratio <= 2 and "met" or "NOT met", worst_ratio, RATIO_N)
local worst_scale, worst_mem = 0, 0
for _, x in ipairs(results) do
  if x.n == 1000000 then
    local small = find(x.shape, x.v, 10000)
    if small then worst_scale = math.max(worst_scale, x.r.run / small.run) end
    worst_mem = math.max(worst_mem, x.r.built, x.r.peak)
  end
end
verdict[#verdict + 1] = ("1e6 vs 1e4<=1.5x: %s (worst %.2f)"):format(worst_scale <= 1.5 and "met" or "NOT met", worst_scale)
verdict[#verdict + 1] = ("bytes/task<=400: %s (worst %.0f)"):format(worst_mem <= 400 and "met" or "NOT met", worst_mem)
local cost = os.getenv("BENCH_HANDLER_COST")
if cost then verdict[#verdict + 1] = cost end
print("verdict: " .. table.concat(verdict, "; "))
