-- Caching (cache_for, cache_key, cache_validator): Running -> Success ->
-- Cached on a successful run; a later run with a valid, unexpired entry goes
-- Pending -> Cached through its handlers without running its body; Prefect
-- 1's validators compare inputs and parameters through the codec's canonical
-- form; mapped children are cached per child; entries survive the process in
-- the run store; luaflow cache list | clear.
local luaflow = require("luaflow")
local cache = require("luaflow.cache")
local cli = require("cli")
local util = require("util")
local Flow, Task, task, S = luaflow.Flow, luaflow.Task, luaflow.task, luaflow.states
local V = luaflow.cache_validators

local function recorder(log)
  return function(_, old, new) log[#log + 1] = tostring(old) .. " -> " .. tostring(new) end
end

local n = 0
local function fresh_name()
  n = n + 1
  return "cache-spec-" .. n .. "-" .. tostring(os.time())
end

describe("caching", function()
  before_each(function() cache.use_store(nil) end)

  it("goes Running -> Success -> Cached, then a later run Pending -> Cached without running", function()
    local log, ran = {}, 0
    local t = Task{ name = "slow", cache_for = 60, state_handlers = { recorder(log) },
                    fn = function() ran = ran + 1; return { rows = 3 } end }
    local f = Flow{ name = fresh_name(), tasks = { t } }
    local s1 = f:run().result[t]
    assert.are.same({
      'Pending() -> Running("Starting task run.")',
      'Running("Starting task run.") -> Success("Task run succeeded.")',
      'Success("Task run succeeded.") -> Cached("Task run succeeded.")',
    }, log)
    assert.is_true(s1:is_cached() and s1:is_successful())
    assert.are.same({ rows = 3 }, s1.result)
    local left = s1.cached_result_expiration:timestamp() - luaflow.time.now():timestamp()
    assert.is_true(left > 50 and left <= 60)
    local log2 = {}
    -- the same task in a flow of the same name: its key
    local t2 = Task{ name = "slow", cache_for = 60, state_handlers = { recorder(log2) },
                     fn = function() ran = ran + 1 end }
    local f2 = Flow{ name = f.name, tasks = { t2 } }
    local s2 = f2:run().result[t2]
    assert.are.same({ 'Pending() -> Cached("Task run succeeded.")' }, log2)
    assert.are.same({ rows = 3 }, s2.result)
    assert.are.equal(1, ran)
  end)

  it("ignores an expired entry", function()
    local ran = 0
    local t = Task{ name = "brief", cache_for = 0.05, fn = function() ran = ran + 1; return ran end }
    local f = Flow{ name = fresh_name(), tasks = { t } }
    f:run()
    local until_t = luaflow.time.now():timestamp() + 0.1
    while luaflow.time.now():timestamp() < until_t do end
    assert.are.equal(2, f:run().result[t].result)
  end)

  it("uses cache_key, shared between tasks", function()
    local key = fresh_name()
    local a = Task{ name = "a", cache_for = 60, cache_key = key, fn = function() return "from a" end }
    local b = Task{ name = "b", cache_for = 60, cache_key = key, fn = function() return "from b" end }
    Flow{ name = fresh_name(), tasks = { a } }:run()
    local st = Flow{ name = fresh_name(), tasks = { b } }:run()
    assert.are.equal("from a", st.result[b].result)
    assert.is_true(st.result[b]:is_cached())
  end)

  it("all_inputs compares inputs canonically", function()
    local ran = 0
    local t = task({ name = "sum", cache_for = 60, cache_validator = V.all_inputs }, function(cfg)
      ran = ran + 1
      return cfg.a + cfg.b
    end)
    local name = fresh_name()
    local function run(cfg)
      local ref
      local st = Flow(name, function() ref = t(cfg) end):run()
      return st.result[ref]
    end
    assert.are.equal(3, run({ a = 1, b = 2 }).result)
    local again = run({ b = 2, a = 1 })
    assert.is_true(again:is_cached())
    assert.are.same({ cfg = { a = 1, b = 2 } }, again.cached_inputs)
    assert.are.equal(1, ran)
    assert.are.equal(5, run({ a = 2, b = 3 }).result)
    assert.are.equal(2, ran)
  end)

  it("all_parameters and partial_parameters_only compare the run's parameters", function()
    local ran = 0
    local p = luaflow.Parameter("p")
    local q = luaflow.Parameter("q", { default = 0 })
    local t = Task{ name = "t", cache_for = 60, cache_validator = V.partial_parameters_only{ "p" },
                    fn = function() ran = ran + 1; return ran end }
    local f = Flow{ name = fresh_name(), tasks = { p, q, t } }
    f:run{ parameters = { p = 1, q = 1 } }
    assert.are.equal(1, f:run{ parameters = { p = 1, q = 2 } }.result[t].result)
    assert.are.equal(2, f:run{ parameters = { p = 2, q = 2 } }.result[t].result)
    local u = Task{ name = "u", cache_for = 60, cache_validator = V.all_parameters,
                    fn = function() ran = ran + 1; return ran end }
    local g = Flow{ name = fresh_name(), tasks = { p, u } }
    local first = g:run{ parameters = { p = 7 } }.result[u].result
    assert.are.equal(first, g:run{ parameters = { p = 7 } }.result[u].result)
    assert.are_not.equal(first, g:run{ parameters = { p = 8 } }.result[u].result)
  end)

  it("partial_inputs_only looks at the named inputs only", function()
    local ran = 0
    local t = task({ name = "pi", cache_for = 60, cache_validator = V.partial_inputs_only{ "x" } },
                   function(x, y) ran = ran + 1; return x + y end)
    local name = fresh_name()
    local function run(x, y)
      local ref
      local st = Flow(name, function() ref = t(x, y) end):run()
      return st.result[ref].result
    end
    assert.are.equal(3, run(1, 2))
    assert.are.equal(3, run(1, 5)) -- y is not looked at
    assert.are.equal(7, run(2, 5))
    assert.are.equal(2, ran)
  end)

  it("takes a function as validator", function()
    local calls = {}
    local t = Task{ name = "f", cache_for = 60, fn = function() return 1 end,
                    cache_validator = function(state, inputs, parameters)
                      calls[#calls + 1] = { state.name, type(inputs), type(parameters) }
                      return false
                    end }
    local f = Flow{ name = fresh_name(), tasks = { t } }
    f:run()
    local st = f:run().result[t]
    assert.are.same({ { "Cached", "table", "table" } }, calls)
    assert.are.equal('Cached("Task run succeeded.")', tostring(st)) -- ran again and cached again
  end)

  it("does not cache a result the codec cannot copy, with no failure", function()
    local t = Task{ name = "fn", cache_for = 60, fn = function() return { f = print } end }
    local st = Flow{ name = fresh_name(), tasks = { t } }:run()
    assert.are.equal('Success("Task run succeeded.")', tostring(st.result[t]))
    assert.are.equal('Success("All reference tasks succeeded.")', tostring(st))
  end)

  it("caches mapped children one by one", function()
    local ran = {}
    local t = task({ name = "sq", cache_for = 60 }, function(x) ran[#ran + 1] = x; return x * x end)
    local name = fresh_name()
    local function run(list)
      local ref
      local st = Flow(name, function() ref = t:map(list) end):run()
      return st.result[ref]
    end
    assert.are.same({ 1, 4, n = 2 }, run({ 1, 2 }).result)
    local m = run({ 1, 2, 3 })
    assert.are.same({ 1, 4, 9, n = 3 }, m.result)
    assert.is_true(m.map_states[1]:is_cached() and m.map_states[2]:is_cached())
    assert.are.same({ 1, 2, 3 }, ran) -- only the third child ran again
  end)

  it("Cached{...} takes Prefect's cached fields", function()
    local s = S.Cached{ message = "m", result = 5, cached_result_expiration = 100,
                        cached_inputs = { x = 1 }, cached_parameters = { p = 2 } }
    assert.are.equal(100, s.cached_result_expiration:timestamp())
    assert.are.same({ x = 1 }, s.cached_inputs)
    assert.are.same({ p = 2 }, s.cached_parameters)
    assert.is_true(V.duration_only(S.Cached{ cached_result_expiration = luaflow.time.now():timestamp() + 5 }))
    assert.is_false(V.duration_only(S.Cached{ cached_result_expiration = 1 }))
  end)

  it("warns, as Prefect 1, of a cache_validator without cache_for", function()
    local dir = cli.tmpdir()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.Task{ name = "t", cache_validator = luaflow.cache_validators.all_inputs }
return luaflow.Flow{ name = "w", tasks = { t } }
]], dir)
    local r = cli.run({ "run", path }, { env = { XDG_STATE_HOME = dir, LUAFLOW_LOG_LEVEL = "WARNING" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(util.has(r.stderr, "WARNING - luaflow.Task | cache_validator provided without specifying "
                                      .. "cache expiration (cache_for); this Task will not be cached."))
    cli.cleanup()
  end)

  it("is shared safely by processes writing to one store at once", function()
    local dir = cli.tmpdir()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local who = os.getenv("WHO")
local t = luaflow.task({ name = "t", cache_for = 600, cache_validator = luaflow.cache_validators.all_inputs },
                       function(x) return who .. ":" .. x end)
return luaflow.Flow("shared", function() for i = 1, 25 do t(who .. i) end end)
]], dir)
    local cmds = {}
    for w = 1, 4 do
      cmds[w] = ("XDG_STATE_HOME=%s WHO=p%d %s run %s --no-input </dev/null >/dev/null 2>&1 &")
                :format(cli.quote(dir), w, cli.quote(cli.bin), cli.quote(path))
    end
    assert.is_true(os.execute("unset LD_PRELOAD; " .. table.concat(cmds, " ") .. " wait") == true)
    local list = cli.run({ "cache", "--json" }, { env = { XDG_STATE_HOME = dir } })
    assert.are.equal(0, list.code, list.stderr)
    local rows = luaflow.json.decode(list.stdout)
    assert.are.equal(100, #rows) -- every process's 25 entries, none lost
    cli.cleanup()
  end)

  it("keeps entries in the store a flow:run{store = PATH} records into", function()
    local dir = cli.tmpdir()
    local path = dir .. "/runs.db"
    local ran = 0
    local t = Task{ name = "s", cache_for = 60, fn = function() ran = ran + 1; return "v" end }
    local f = Flow{ name = fresh_name(), tasks = { t } }
    f:run{ store = path }
    local st = f:run{ store = path }
    assert.are.equal(1, ran)
    assert.is_true(st.result[t]:is_cached())
    local db = assert(require("luaflow.core").cache_db(path))
    local rows = db:list()
    db:close()
    assert.are.equal(1, #rows)
    assert.are.equal(f.name .. "/s", rows[1].key)
    cli.cleanup()
  end)

  it("refuses a bad option, naming it", function()
    assert.has_error(function() Task{ cache_for = -1 } end)
    assert.has_error(function() Task{ cache_for = 1, cache_validator = 3 } end)
  end)

  it("keeps entries in the run store across processes; luaflow cache list and clear", function()
    local dir = cli.tmpdir()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local t = luaflow.task({ name = "expensive", cache_for = 600 }, function(x)
  print("RAN " .. x)
  return { value = x * 2 }
end)
return luaflow.Flow("stored", function() t(21) end)
]], dir)
    local env = { XDG_STATE_HOME = dir }
    local r1 = cli.run({ "run", path, "--json", "-" }, { env = env })
    assert.are.equal(0, r1.code, r1.stderr)
    assert.is_true(util.has(r1.stdout .. r1.stderr, "RAN 21"))
    assert.are.equal("Cached", util.task_entry(util.json_lines(r1.stdout)[1], "expensive").state)
    local r2 = cli.run({ "run", path, "--json", "-" }, { env = env })
    assert.are.equal(0, r2.code, r2.stderr)
    assert.is_false(util.has(r2.stdout .. r2.stderr, "RAN 21"))
    local entry = util.task_entry(util.json_lines(r2.stdout)[1], "expensive")
    assert.are.equal("Cached", entry.state)
    assert.are.same({ value = 42 }, entry.result)
    local mapped = cli.write_flow([[
local luaflow = require("luaflow")
local sq = luaflow.task({ name = "sq", cache_for = 600 }, function(x) print("SQ " .. x) return x * x end)
return luaflow.Flow("squares", function() sq:map({ 2, 3 }) end)
]], dir, "mapped.lua")
    local m1 = cli.run({ "run", mapped }, { env = env })
    assert.is_true(util.has(m1.stdout, "SQ 2") and util.has(m1.stdout, "SQ 3"), m1.stderr)
    local m2 = cli.run({ "run", mapped, "--json", "-" }, { env = env })
    assert.is_false(util.has(m2.stdout .. m2.stderr, "SQ "))
    local sq = util.task_entry(util.json_lines(m2.stdout)[1], "sq")
    assert.are.same({ "Cached", "Cached" }, { sq.children[1].state, sq.children[2].state })
    assert.are.same({ 4, 9 }, sq.result)
    local text = cli.run({ "cache" }, { env = env })
    assert.is_true(util.has(text.stdout, "squares/sq[2]"), text.stdout)
    cli.run({ "cache", "clear", "squares/sq" }, { env = env })
    local list = cli.run({ "cache", "list", "--json" }, { env = env })
    assert.are.equal(0, list.code, list.stderr)
    local rows = luaflow.json.decode(list.stdout)
    assert.are.equal(1, #rows)
    assert.are.equal("stored/expensive", rows[1].key)
    assert.are.same({ value = 42 }, rows[1].result)
    local text = cli.run({ "cache" }, { env = env })
    assert.is_true(util.has(text.stdout, "stored/expensive"))
    local cleared = cli.run({ "cache", "clear", "stored/expensive" }, { env = env })
    assert.are.equal(0, cleared.code, cleared.stderr)
    assert.is_true(util.has(cleared.stdout, "Removed 1 cached result"))
    local r3 = cli.run({ "run", path }, { env = env })
    assert.is_true(util.has(r3.stdout, "RAN 21"))
    local off = cli.run({ "run", path }, { env = { XDG_STATE_HOME = dir, LUAFLOW_STORE = "off" } })
    assert.is_true(util.has(off.stdout, "RAN 21")) -- no store: nothing shared
    cli.cleanup()
  end)
end)
