-- make bench: every row with its target and verdict. Run by scripts/bench.sh
-- inside the shipped binary (`build/luaflow run bench/bench.lua`) under the
-- counting malloc (bench/memcount.c); the command-line rows start the same
-- binary again (bench/cli_flow.lua). Figures are CPU time (os.clock: every
-- thread of the process), medians of repeated measurements, and each row's
-- floor is measured in the same process, right after it.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local graph = luaflow._graph
local chandlers = require("handlers") -- examples/c_handler, built by `make examples`
local building = require("build")     -- bench/build.lua: the ways of building a flow
local common = require("common")      -- bench/common.lua: clock, median, the floor
local clock, median = common.clock, common.median

-- Flows here are the benchmark's own: the command line keeps nothing of them.
graph.record_flows = false
graph.hooks.before_run, graph.hooks.after_run = nil, nil

local function list_env(name, default)
  local out = {}
  for v in (os.getenv(name) or default):gmatch("[^,]+") do out[#out + 1] = tonumber(v) end
  return out
end
local SIZES = list_env("BENCH_SIZES", "1000,10000,100000,1000000")
local RATIO_N = tonumber(os.getenv("BENCH_RATIO_N") or "100000")
local BUILD_SIZES = list_env("BENCH_BUILD_SIZES", "10000,100000,1000000")
local CLI_N = tonumber(os.getenv("BENCH_CLI_N") or "100000")
local BIN = os.getenv("BENCH_BIN") or "build/luaflow"
local STORE_N = tonumber(os.getenv("BENCH_STORE_N") or "100000")
-- BENCH_ONLY=run,build,cli,store,redact,executors runs those sections only
local ONLY = os.getenv("BENCH_ONLY")
local function section(name) return not ONLY or ONLY:find(name, 1, true) ~= nil end

local verdicts = {}
-- Records a verdict; returns the text for the row.
local function judge(name, ok, detail)
  local text = (ok and "met" or "NOT met") .. (detail and (" (" .. detail .. ")") or "")
  verdicts[#verdicts + 1] = name .. ": " .. text
  return ok and "met" or "NOT met"
end

-- ---------------------------------------------------------------- executors
-- First, while this process is small: Processes fork the engine, and after
-- the 1e6-task rows below it holds some 600 MB, which every fork would copy
-- the page tables of (a cost of the bench, not of a worker).

if section("executors") then
  require("executors").run(judge, os.getenv("BENCH_RECEIVER"))
end

-- ---------------------------------------------------------------- run phase

local SHAPES = { "independent", "chain", "fan-out/in" }
local function keep_nil(_, _, _) end         -- a handler that returns nothing
local function keep_new(_, _, new) return new end -- a handler that returns new_state
-- Every body returns a value but the first variant's, whose rows hold the
-- memory bar (results aside).
local VARIANTS = {
  { label = "0 Lua", lua = 0, target = 2, nil_body = true },
  { label = "0 Lua val", lua = 0, target = 2 },
  { label = "1 Lua nil", lua = 1, fn = keep_nil, target = 2 },
  { label = "1 Lua new", lua = 1, fn = keep_new, target = 1.1 },
  { label = "3 Lua new", lua = 3, fn = keep_new, target = 1.5 },
  { label = "1 C", c = true, target = 2 },
}

local function body(x) return (x or 0) + 1 end -- a body that returns a value
local function nil_body(_) end

local function handlers_for(v)
  if v.c then return { (chandlers.counter()) } end
  local hs = {}
  for i = 1, v.lua do hs[i] = v.fn end
  return hs
end

local function build(shape, n, hs, fn)
  local t = luaflow.task{ name = "t", state_handlers = hs }(fn)
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
  local fn = v.nil_body and nil_body or body
  local t0 = clock()
  local flow = build(shape, n, hs, fn)
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
  common.floor(n, floor_hs, fn, shape ~= "independent")
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

if section("run") then
print("run phase: flow:run against its floor (CPU ns per task; bodies return a value but in the first rows)")
print(("%-12s %-9s %8s %9s %8s %8s %6s %8s %8s  %-22s %s"):format(
  "shape", "handlers", "N", "build ns", "run ns", "floor ns", "ratio", "B/t bld", "B/t peak",
  "target", "verdict"))
local results = {}
local function find(shape, v, n)
  for _, x in ipairs(results) do
    if x.shape == shape and x.v == v and x.n == n then return x.r end
  end
end
for _, n in ipairs(SIZES) do
  -- warm up: the first run at a new size grows the process heap (page faults
  -- that no later run pays), so it is not measured
  measure("independent", VARIANTS[1], n)
  for _, shape in ipairs(SHAPES) do
    for _, v in ipairs(VARIANTS) do
      local r = measure_median(shape, v, n)
      results[#results + 1] = { shape = shape, v = v.label, n = n, r = r }
      local target, verdict = "", ""
      local name = ("run %s %s"):format(shape, v.label)
      if n == RATIO_N then
        target = ("ratio<=%g"):format(v.target)
        verdict = judge(name .. " ratio<=" .. v.target, r.ratio <= v.target, ("%.2f"):format(r.ratio))
      elseif n == 1000000 then
        -- per task against 1e4, each side as its ratio to the floor measured
        -- with it: the machine's own drift between the two is taken out
        local small = find(shape, v.label, 10000)
        local scale = small and r.ratio / small.ratio
        target = "1e6/1e4<=1.5"
        verdict = judge(name .. " 1e6/1e4<=1.5", scale and scale <= 1.5,
                        scale and ("%.2f; raw %.2f"):format(scale, r.run / small.run))
        if v.nil_body then -- the memory bar is results aside
          local mem = math.max(r.built, r.peak)
          target = target .. ", <=400 B"
          verdict = verdict .. "/" .. judge(name .. " B/task<=400", mem <= 400, ("%.0f"):format(mem))
        end
      end
      print(("%-12s %-9s %8d %9.0f %8.0f %8.0f %6.2f %8.0f %8.0f  %-22s %s"):format(
        shape, v.label, n, r.build, r.run, r.floor, r.ratio, r.built, r.peak, target, verdict))
      io.stdout:flush()
    end
  end
end

end

-- ---------------------------------------------------------------- building
if section("build") then
print()
print("building a flow: CPU ns per task (the bare tasks an API is given are made beforehand);")
print("vs builder and 1e6/1e4 compare ratios to the floor measured with each build")
local size_heads = {}
for i, n in ipairs(BUILD_SIZES) do size_heads[i] = ("%10s"):format(("N=%g"):format(n)) end
print(("%-22s%s %11s %8s  %-30s %s"):format("api", table.concat(size_heads), "vs builder",
                                            "1e6/1e4", "target", "verdict"))
-- The verdicts compare ratios to the floor measured with each build (a Lua
-- loop keeping one small table per task), so the machine's drift between
-- two measurements is taken out.
local build_ns, build_ratio = {}, {}
for _, name in ipairs(building.order) do
  build_ns[name], build_ratio[name] = {}, {}
  for _, n in ipairs(BUILD_SIZES) do
    local xs, rs = {}, {}
    for i = 1, (n >= 1000000 and 3 or n >= 100000 and 5 or 9) do
      local b, f = building.measure(name, n)
      xs[i], rs[i] = b, b / f
    end
    build_ns[name][n], build_ratio[name][n] = median(xs), median(rs)
  end
  local row, ratio = build_ns[name], build_ratio[name]
  local vs = ratio[100000] and build_ratio.builder[100000] and ratio[100000] / build_ratio.builder[100000]
  local scale = ratio[1000000] and ratio[10000] and ratio[1000000] / ratio[10000]
  local cells = {}
  for i, n in ipairs(BUILD_SIZES) do cells[i] = ("%10.0f"):format(row[n]) end
  local verdict = "-"
  if vs then verdict = judge("build " .. name .. " vs builder<=2", vs <= 2, ("%.2f"):format(vs)) end
  if scale then
    verdict = verdict .. "/" .. judge("build " .. name .. " 1e6/1e4<=1.5", scale <= 1.5, ("%.2f"):format(scale))
  end
  print(("%-22s%s %11s %8s  %-30s %s"):format(name, table.concat(cells),
    vs and ("%.2f"):format(vs) or "-", scale and ("%.2f"):format(scale) or "-",
    "1e5<=2x builder, 1e6/1e4<=1.5", verdict))
  io.stdout:flush()
end

end

-- ---------------------------------------------------------------- command line

-- Runs one row of bench/cli_flow.lua in the shipped binary; returns its figures.
-- The run store is off: its cost has a row of its own (below).
local function cli_row(row, redirect, extra, n)
  local tmp = os.tmpname()
  local cmd = ("env -u LD_PRELOAD -u LUAFLOW_LOG_LEVEL BENCH_CLI=%s BENCH_CLI_N=%d %s run "
               .. "bench/cli_flow.lua --no-input --no-store %s </dev/null %s"):format(
    row, n or CLI_N, BIN, extra or "", redirect:gsub("OUT", tmp))
  local ok = os.execute(cmd)
  local f = io.open(tmp)
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(tmp)
  local out = {}
  for k, v in text:gmatch("([%w_]+)=([%d%.%-]+)") do out[k] = tonumber(v) end
  assert(ok and next(out), "command-line row " .. row .. " failed: " .. cmd .. "\n" .. text)
  return out
end

local function secrets_file()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("{")
  for i = 1, 10 do f:write(("%s\"k%d\": \"not-in-any-line-%02d\""):format(i > 1 and ", " or "", i, i)) end
  f:write("}\n")
  f:close()
  os.execute("chmod 600 " .. path)
  return path
end

if section("cli") then
print()
print(("command line: %s run, N=%d independent tasks, one Lua handler returning new_state,")
      :format(BIN:match("[^/]*/?[^/]+$"), CLI_N))
print("default log level (two INFO lines a task); run phase against the floor in the same process")
print(("%-36s %9s %9s %9s  %-30s %s"):format("row", "run us", "base us", "measure", "target", "verdict"))
local function cli_print(label, run, base, measure, target, verdict)
  print(("%-36s %9.3f %9.3f %9.2f  %-30s %s"):format(label, run, base, measure, target, verdict))
  io.stdout:flush()
end
local logs = os.tmpname()
local r = cli_row("log", ">OUT 2>" .. logs)
cli_print("log to a file", r.run_us, r.floor_us, r.ratio, "run<=2x floor",
          judge("cli log to a file ratio<=2", r.ratio <= 2, ("%.2f"):format(r.ratio)))
local file_run = r.run_us
r = cli_row("log", "2>&1 >OUT | cat >/dev/null")
cli_print("log to a pipe", r.run_us, r.floor_us, r.ratio, "run<=2x floor",
          judge("cli log to a pipe ratio<=2", r.ratio <= 2, ("%.2f"):format(r.ratio)))
local secrets = secrets_file()
r = cli_row("secrets", ">OUT 2>" .. logs, "--secrets " .. secrets)
cli_print("log to a file, 10 secrets", r.run_us, r.floor_us, r.ratio, "run<=2x floor",
          judge("cli log with 10 secrets ratio<=2", r.ratio <= 2, ("%.2f"):format(r.ratio)))
print(("%-36s %9s %9s %9.2f  %s"):format("  (10 secrets / none, run)", "", "", r.run_us / file_run,
                                           "informative: two processes"))
os.remove(secrets)
r = cli_row("json", ">OUT 2>" .. logs, "--json " .. logs .. ".json")
os.remove(logs .. ".json")
cli_print("--json: extra us per task", r.run_us, r.nojson_us, r.extra_us, "extra<=1.5 us",
          judge("cli --json extra<=1.5us", r.extra_us <= 1.5, ("%.2f us"):format(r.extra_us)))
r = cli_row("failures", ">OUT 2>" .. logs)
local beyond = r.per_failure_us - r.ok_us
cli_print("10% fail once: us per failed attempt", r.per_failure_us, r.ok_us, beyond,
          "failed - successful<=10 us", judge("cli failed attempt<=10us beyond a successful one",
                                              beyond <= 10, ("%.1f us"):format(beyond)))
r = cli_row("timeout", ">OUT 2>" .. logs, nil, math.max(1000, CLI_N // 5))
cli_print(("timeout= on every task (N=%d)"):format(math.max(1000, CLI_N // 5)), r.timeout_us,
          r.plain_us, r.ratio, "with<=1.1x without",
          judge("cli timeout= ratio<=1.1", r.ratio <= 1.1, ("%.2f"):format(r.ratio)))
os.remove(logs)
end

-- ---------------------------------------------------------------- run store

-- `luaflow run` on N independent tasks with one Lua handler, as users run it
-- (default log level, stderr to a file): the whole process's wall time with
-- the run store recording against --no-store, alternated; the store is made
-- by a first run (as a user's store is there from their first run on), and
-- what each run adds to its size on disk, per task.
if section("store") then
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local script = dir .. "/flow.lua"
local f = assert(io.open(script, "w"))
f:write(([[
local luaflow = require("luaflow")
local function keep(_, _, new) return new end
local t = luaflow.task{name = "t", state_handlers = {keep}}(function() return 1 end)
return luaflow.Flow("store_bench", function() for _ = 1, %d do t() end end)
]]):format(STORE_N))
f:close()
local function wall(args)
  local t0 = luaflow.time.now():timestamp()
  local ok = os.execute(("env -u LD_PRELOAD -u LUAFLOW_LOG_LEVEL %s run %s --no-input %s </dev/null >/dev/null 2>%s/log")
                        :format(BIN, script, args, dir))
  assert(ok, "the store row's run failed: see " .. dir .. "/log")
  return luaflow.time.now():timestamp() - t0
end
local function size(path)
  local h = io.open(path, "rb")
  if not h then return 0 end
  local n = h:seek("end")
  h:close()
  return n
end
local on, off, ratios, bytes = {}, {}, {}, {}
local db = dir .. "/store.db"
wall("--store " .. db)
-- seven alternations: one pair of runs moves by up to 2x on a shared machine
for i = 1, 7 do
  local before = size(db) + size(db .. "-wal")
  off[i] = wall("--no-store")
  on[i] = wall("--store " .. db)
  ratios[i] = on[i] / off[i]
  bytes[i] = (size(db) + size(db .. "-wal") - before) / STORE_N
end
os.execute("rm -rf " .. dir)
local ratio = median(ratios)
print()
print(("run store: luaflow run, N=%d independent tasks, one Lua handler, default log level, stderr to a file")
      :format(STORE_N))
print(("  wall: store %.3f s, --no-store %.3f s: %.2fx  target<=1.3x  %s;  %.1f bytes per task on disk")
      :format(median(on), median(off), ratio,
              judge("run store wall ratio<=1.3", ratio <= 1.3, ("%.2f"):format(ratio)), median(bytes)))
io.stdout:flush()
end

-- ---------------------------------------------------------------- redaction

-- One scan of a line for all secrets: redacting a log line costs the same
-- with 10 secrets registered as with 1 (this process's own secrets).
if section("redact") then
local line = "Task 'transform': Finished task run for task with final state: 'Success' " .. ("x"):rep(40)
local function redact_ns(reps)
  local t0 = clock()
  for _ = 1, reps do core.redact(line) end
  return (os.clock() - t0) / reps * 1e9
end
core.add_secret("first-secret-never-logged")
local one = median({ redact_ns(200000), redact_ns(200000), redact_ns(200000) })
for i = 2, 10 do core.add_secret(("secret-number-%02d-never-logged"):format(i)) end
local ten = median({ redact_ns(200000), redact_ns(200000), redact_ns(200000) })
print()
print(("redacting a %d-byte line: %.0f ns with 1 secret, %.0f ns with 10: %.2fx  target<=1.5x  %s"):format(
  #line, one, ten, ten / one, judge("redaction 10 secrets/1<=1.5", ten / one <= 1.5, ("%.2f"):format(ten / one))))
end

-- ---------------------------------------------------------------- mapping and caching

-- A map of MAP_N children with one Lua handler against MAP_N plain tasks
-- with the same handler and body (each given its element as a constant),
-- ratios per repetition in one process; bytes per child at the run's peak
-- above the plain tasks' per task. Then a run where every task is a cache
-- hit against the same tasks without caching (entries in memory here).
if section("map") then
local MAP_N = tonumber(os.getenv("BENCH_MAP_N") or "100000")
local function keep(_, _, new) return new end
local function inc(x) return x + 1 end
local t = luaflow.task{ name = "t", state_handlers = { keep } }(inc)
local list = {}
for i = 1, MAP_N do list[i] = i end
local function timed(flow)
  collectgarbage()
  local base = select(1, core.mem()) or 0
  core.mem(true)
  local t0 = clock()
  local state = flow:run()
  local t1 = os.clock()
  local _, peak = core.mem()
  assert(state:is_successful(), tostring(state))
  return (t1 - t0) / MAP_N * 1e9, ((peak or 0) - base) / MAP_N
end
local ratios, plain_ns, map_ns, plain_b, map_b = {}, {}, {}, {}, {}
for i = 1, 3 do
  local plain = luaflow.Flow("plain", function() for k = 1, MAP_N do t(k) end end)
  local mapped = luaflow.Flow("mapped", function() t:map(list) end)
  plain_ns[i], plain_b[i] = timed(plain)
  map_ns[i], map_b[i] = timed(mapped)
  ratios[i] = map_ns[i] / plain_ns[i]
end
local ratio = median(ratios)
print()
print(("mapping: %d children, 1 Lua handler: %.0f ns per child, %.0f per plain task: %.2fx  target<=1.5x  %s"):format(
  MAP_N, median(map_ns), median(plain_ns), ratio,
  judge("map child/plain task<=1.5", ratio <= 1.5, ("%.2f"):format(ratio))))
print(("         bytes per child at the run's peak: %.0f (a plain task: %.0f)  informative"):format(
  median(map_b), median(plain_b)))
io.stdout:flush()

local CACHE_N = tonumber(os.getenv("BENCH_CACHE_N") or "10000")
local cache = require("luaflow.cache")
cache.use_store(nil)
local plain_t = luaflow.task{ name = "c" }(inc)
local cached_t = luaflow.task{ name = "c", cache_for = 3600,
                                cache_validator = luaflow.cache_validators.all_inputs }(inc)
local function flow_of(task_) return luaflow.Flow("cache-bench", function() for k = 1, CACHE_N do task_(k) end end) end
local cached_flow = flow_of(cached_t)
assert(cached_flow:run():is_successful()) -- fills the cache: one entry per input
local hit_ns, miss_ns, cratios = {}, {}, {}
for i = 1, 3 do
  local c0 = clock(); local s = cached_flow:run(); local c1 = os.clock()
  local p0 = clock(); flow_of(plain_t):run(); local p1 = os.clock()
  assert(s:is_successful())
  hit_ns[i], miss_ns[i] = (c1 - c0) / CACHE_N * 1e9, (p1 - p0) / CACHE_N * 1e9
  cratios[i] = hit_ns[i] / miss_ns[i]
end
print(("caching: %d tasks, every one a cache hit: %.0f ns per task; the same tasks uncached: %.0f ns: %.2fx  informative"):format(
  CACHE_N, median(hit_ns), median(miss_ns), median(cratios)))
io.stdout:flush()
-- the same with the entries in a run store (SQLite): wall time, a file's work
local path = os.tmpname()
os.remove(path)
assert(cache.use_store(path))
local now = function() return core.cache_now() end
local store_flow = flow_of(cached_t)
local s0 = now(); assert(store_flow:run():is_successful()); local s1 = now()
assert(store_flow:run():is_successful()); local s2 = now()
print(("         in a run store: saving an entry %.0f us per task, a hit %.0f us per task (wall)  informative"):format(
  (s1 - s0) / CACHE_N * 1e6, (s2 - s1) / CACHE_N * 1e6))
cache.use_store(nil)
os.remove(path); os.remove(path .. "-wal"); os.remove(path .. "-shm")
io.stdout:flush()
end

local cost = os.getenv("BENCH_HANDLER_COST")
if cost then
  print(cost)
  verdicts[#verdicts + 1] = cost
end
local missed = 0
for _, v in ipairs(verdicts) do
  if v:find("NOT met", 1, true) then missed = missed + 1 end
end
print()
print(("verdict: %d of %d targets met"):format(#verdicts - missed, #verdicts))
for _, v in ipairs(verdicts) do
  if v:find("NOT met", 1, true) then print("  missed: " .. v) end
end
