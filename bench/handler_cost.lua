-- The cost of one handler call, Lua or C, counted by callgrind in
-- scripts/bench.sh: a flow of N independent tasks with no handler, with one
-- Lua handler, with one C handler; (instructions - no-handler) / (2 N).
-- lua_new and lua3_new (one and three handlers returning new_state) are the
-- run-phase shapes of `make bench` whose cost per task callgrind tracks.
-- Run by the shipped binary: BENCH_COST=none|lua|lua_new|lua3_new|c
-- BENCH_COST_N=N luaflow run FILE
local luaflow = require("luaflow")
local chandlers = require("handlers")
local variant, n = os.getenv("BENCH_COST"), tonumber(os.getenv("BENCH_COST_N"))
local function keep_new(_, _, new) return new end
local hs = {}
if variant == "lua" then hs = { function(_, _, _) end } end
if variant == "lua_new" then hs = { keep_new } end
if variant == "lua3_new" then hs = { keep_new, keep_new, keep_new } end
if variant == "c" then hs = { (chandlers.counter()) } end
local t = luaflow.task{ state_handlers = hs }(function() end)
local flow = luaflow.Flow("cost", function()
  for _ = 1, n do t() end
end)
assert(flow:run():is_successful())
