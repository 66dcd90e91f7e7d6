-- make bench's executor rows, each side by side with Local in one process
-- (wall seconds: what running bodies at once buys):
--   8 CPU-bound tasks, 2 workers          target: Threads and Processes >= 1.8x faster
--   64 tasks each waiting 0.2 s on the loopback HTTP receiver, 16 workers
--                                         target: >= 10x faster
--   dispatch cost per no-op task          target: Threads <= 10 us, Processes <= 50 us
--                                         more than Local
-- BENCH_EXEC_DISPATCH_N sets the no-op tasks (default 20000).
local luaflow = require("luaflow")
local executors = luaflow.executors
local M = {}

local function now() return luaflow.time.now():timestamp() end

local function wall(flow, executor)
  collectgarbage()
  local t0 = now()
  local s = flow:run { executor = executor }
  local t = now() - t0
  assert(s:is_successful(), tostring(s))
  return t
end

local function best_of(k, flow, executor)
  local best = math.huge
  for _ = 1, k do best = math.min(best, wall(flow, executor)) end
  return best
end

-- A loopback receiver that answers each request after 0.2 s, a process per
-- connection; returns its port and a function that stops it.
local function start_receiver(bin)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local out = dir .. "/stdout"
  local pipe = assert(io.popen(("%s --proto http --mode slow:0.2 --parallel yes >%s 2>/dev/null")
                               :format(bin, out), "w"))
  for _ = 1, 250 do
    local f = io.open(out)
    local port = f and f:read("a"):match("PORT (%d+)")
    if f then f:close() end
    if port then
      return tonumber(port), function()
        pipe:close()
        os.execute("rm -rf " .. dir)
      end
    end
    luaflow.time.sleep(0.02)
  end
  pipe:close()
  error("the receiver did not start")
end

function M.run(judge, receiver_bin)
  local rows = {}
  local function row(label, base, other, measure, target, verdict)
    print(("%-44s %9.3f %9.3f %9.2f  %-26s %s"):format(label, base, other, measure, target, verdict))
  end
  print()
  print("executors: wall seconds, Local against a worker executor in the same process")
  print(("%-44s %9s %9s %9s  %-26s %s"):format("row", "local", "workers", "measure", "target", "verdict"))

  -- 8 CPU-bound tasks (about 0.25 s each on this machine), 2 workers
  local cpu = luaflow.Flow("cpu", function()
    for i = 1, 8 do
      luaflow.task { name = "cpu" .. i }(function()
        local x = 0
        for k = 1, 12000000 do x = x + k % 7 end
        return x
      end)()
    end
  end)
  local cpu_local = best_of(2, cpu, executors.Local())
  for _, kind in ipairs({ "Threads", "Processes" }) do
    local t = best_of(2, cpu, executors[kind] { workers = 2 })
    local speedup = cpu_local / t
    row(("8 CPU-bound tasks, %s{workers = 2}"):format(kind), cpu_local, t, speedup, "speedup>=1.8x",
        judge(("executors: 8 CPU tasks %s speedup>=1.8"):format(kind), speedup >= 1.8, ("%.2f"):format(speedup)))
  end

  -- 64 tasks each waiting 0.2 s on the receiver, 16 workers
  if receiver_bin then
    local port, stop = start_receiver(receiver_bin)
    local url = ("http://127.0.0.1:%d/wait"):format(port)
    local waits = luaflow.Flow("waits", function()
      for i = 1, 64 do
        luaflow.task { name = "get" .. i }(function()
          return luaflow.http.get(url).status
        end)()
      end
    end)
    local ok, err = pcall(function()
      local base = wall(waits, executors.Local())
      for _, kind in ipairs({ "Threads", "Processes" }) do
        local t = wall(waits, executors[kind] { workers = 16 })
        local speedup = base / t
        row(("64 HTTP waits of 0.2 s, %s{workers = 16}"):format(kind), base, t, speedup, "speedup>=10x",
            judge(("executors: 64 HTTP waits %s speedup>=10"):format(kind), speedup >= 10, ("%.2f"):format(speedup)))
      end
    end)
    stop()
    if not ok then error(err, 0) end
  end

  -- dispatch: independent no-op tasks, microseconds per task beyond Local
  local n = tonumber(os.getenv("BENCH_EXEC_DISPATCH_N") or "20000")
  local noop = luaflow.Flow("noop", function()
    for i = 1, n do luaflow.task { name = "n" .. i }(function() return nil end)() end
  end)
  local base = best_of(3, noop, executors.Local()) / n * 1e6
  for _, case in ipairs({ { "Threads", 10 }, { "Processes", 50 } }) do
    local kind, limit = case[1], case[2]
    local t = best_of(3, noop, executors[kind] { workers = 2 }) / n * 1e6
    local extra = t - base
    row(("dispatch per no-op task (us), %s{workers = 2}"):format(kind), base, t, extra,
        ("extra<=%d us"):format(limit),
        judge(("executors: %s dispatch extra<=%d us"):format(kind, limit), extra <= limit, ("%.1f us"):format(extra)))
  end
  return rows
end

return M
