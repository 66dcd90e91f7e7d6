-- Executors: Local, Threads{workers=N} and Processes{workers=N}. What every
-- executor shares (bodies in workers' own Lua states, values copied, the
-- engine keeping every state and handler call) runs under all three through
-- the executors helper; crash isolation and killing timeouts are Processes'.
local luaflow = require("luaflow")
local X = require("executors")
local cli = require("cli")
local proc = require("proc")
local util = require("util")
local timing = require("timing")
local Task, Flow, task = luaflow.Task, luaflow.Flow, luaflow.task
local executors = luaflow.executors
local SLACK = timing.SLACK

-- A real C module that crashes on demand, built once for these specs.
local crashy_dir
local function crashy_cpath()
  if crashy_dir then return crashy_dir .. "/?.so" end
  crashy_dir = cli.tmpdir()
  local src = cli.write_flow([[
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
static int segv(lua_State *L) { (void)L; raise(SIGSEGV); return 0; }
static int quit(lua_State *L) { _exit((int)luaL_checkinteger(L, 1)); }
static int block(lua_State *L) { sleep((unsigned)luaL_checkinteger(L, 1)); return 0; }
int luaopen_crashy(lua_State *L) {
  static const luaL_Reg fns[] = {{"segv", segv}, {"quit", quit}, {"block", block}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
]], crashy_dir, "crashy.c")
  local ok, out = util.sh(("cc -shared -fPIC -O1 $(pkg-config --cflags lua5.4) -o %s/crashy.so %s")
                          :format(crashy_dir, src))
  assert(ok, out)
  return crashy_dir .. "/?.so"
end

local function with_cpath(fn)
  local saved = package.cpath
  package.cpath = crashy_cpath() .. ";" .. saved
  local ok, err = pcall(fn)
  package.cpath = saved
  if not ok then error(err, 0) end
end

-- The final state of the task named name.
local function state_named(flow_state, name)
  for t, s in flow_state:task_states() do
    if t.name == name then return s end
  end
end

local function states_of(flow_state)
  local out = {}
  for t, s in flow_state:task_states() do out[#out + 1] = t.name .. " " .. tostring(s) end
  return out
end

-- Threads of this process, and its child processes (none must outlive a run).
local function my_pid() return util.read("/proc/self/stat"):match("^(%d+)") end

local function tasks()
  local list = {}
  local p = io.popen("ls /proc/" .. my_pid() .. "/task")
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

local function thread_count() return #tasks() end

local function children()
  local pid = my_pid()
  local list = {}
  for _, line in ipairs(tasks()) do
    for child in (util.read(("/proc/%s/task/%s/children"):format(pid, line)) or ""):gmatch("%d+") do
      list[#list + 1] = child
    end
  end
  return list
end

describe("executors", function()
  describe("luaflow.executors", function()
    it("makes Local(), Threads{workers=N} and Processes{workers=N}; workers default to the CPUs", function()
      assert.are.equal("<Executor: Local>", tostring(executors.Local()))
      assert.are.equal("<Executor: Threads{workers = 3}>", tostring(executors.Threads { workers = 3 }))
      assert.are.equal("<Executor: Processes{workers = 2}>", tostring(executors.Processes { workers = 2 }))
      assert.are.equal(executors.cpu_count(), executors.Threads().workers)
      assert.is_true(executors.cpu_count() >= 1)
    end)

    it("refuses bad options, naming them", function()
      assert.has_error(function() executors.Threads { workers = 0 } end,
        "luaflow.executors.Threads: workers must be an integer from 1 to 1024 (got the number 0)")
      assert.has_error(function() executors.Processes { worker = 2 } end,
        'luaflow.executors.Processes: unknown option the string "worker" (the one option is workers)')
      assert.has_error(function() Flow { name = "f", tasks = {} }:run { executor = "threads" } end)
    end)
  end)

  X.each(function(x)
    it("runs bodies in Lua states of their own: a body's upvalue change stays in its worker", function()
      local counter = 0
      local f = Flow("counter", function()
        for i = 1, 3 do task { name = "bump" .. i }(function() counter = counter + 1; return counter end)() end
      end)
      local s = f:run()
      assert.is_true(s:is_successful())
      if x.is_local then
        assert.are.equal(3, counter)
      else
        assert.are.equal(0, counter) -- each worker changed its own copy
        for _, st in s:task_states() do assert.is_true(st.result >= 1) end
      end
    end)

    it("copies local helper functions, modules and the context into bodies", function()
      local function double(v) return v * 2 end
      local json = luaflow.json
      local f = Flow("ctx", function()
        local a = task { name = "a" }(function() return double(21) end)()
        task { name = "b" }(function(v)
          local c = luaflow.context
          return { v = v, name = c.task_name, flow = c.flow_name, run = c.task_run_count,
                   loop = c.task_loop_count, p = c.parameters.p, secret = luaflow.secrets.get("K"),
                   json = json.encode({ 1, 2 }), up = string.upper("x"), will = c.task_will_retry }
        end)(a)
        luaflow.Parameter("p", { default = 5 })()
      end)
      local s = f:run { secrets = { K = "value-of-k" }, parameters = { p = 7 } }
      assert.is_true(s:is_successful(), tostring(s))
      local results = {}
      for t, st in s:task_states() do results[t.name] = st.result end
      assert.are.same({ v = 42, name = "b", flow = "ctx", run = 1, loop = 1, p = 7, secret = "value-of-k",
                        json = "[1,2]", up = "X", will = false }, results.b)
    end)

    it("fails a task whose result cannot be copied, naming the kind and the path", function()
      if x.is_local then return end -- Local copies nothing
      local f = Flow("bad", function()
        task { name = "rows" }(function() return { rows = { 1, 2, { fn = print } } } end)()
        task { name = "co" }(function() return coroutine.create(print) end)()
        task { name = "fine" }(function() return 1 end)()
      end)
      local s = f:run()
      assert.are.same({
        'rows Failed("<Task: rows>: cannot copy a function at result.rows[3].fn")',
        'co Failed("<Task: co>: cannot copy a thread at result")',
        'fine Success("Task run succeeded.")',
      }, states_of(s))
    end)

    it("fails a task whose arguments or upvalues cannot be copied", function()
      if x.is_local then return end
      local handle = io.tmpfile()
      local f = Flow("bad_in", function()
        task { name = "up" }(function() return handle ~= nil end)()
        task { name = "arg" }(function(co) return co end)(coroutine.create(print))
      end)
      local s = f:run()
      handle:close()
      local got = states_of(s)
      assert.matches('^up Failed%("<Task: up>: cannot copy a userdata at upvalue \'handle\'', got[1])
      assert.are.equal('arg Failed("<Task: arg>: cannot copy a thread at argument 1")', got[2])
    end)

    it("runs bodies at once, up to the workers, and keeps task_states in topological order", function()
      local spans = X.tally()
      local f = Flow("par", function()
        local outs = {}
        for i = 1, 4 do
          outs[i] = task { name = "t" .. i }(function()
            local t0 = luaflow.time.now():timestamp()
            luaflow.time.sleep(0.3 - i * 0.05) -- the later tasks end first
            spans.add(t0 .. " " .. luaflow.time.now():timestamp())
            return i
          end)()
        end
        task { name = "sum" }(function(a, b, c, d) return a + b + c + d end)(outs[1], outs[2], outs[3], outs[4])
      end)
      local s = f:run()
      assert.are.same({ "t1", "t2", "t3", "t4", "sum" }, (function()
        local names = {}
        for t in s:task_states() do names[#names + 1] = t.name end
        return names
      end)())
      assert.are.equal(10, state_named(s, "sum").result)
      local overlapped, list = false, spans.list()
      for i = 1, #list do
        for j = i + 1, #list do
          local a0, a1 = list[i]:match("(%S+) (%S+)")
          local b0, b1 = list[j]:match("(%S+) (%S+)")
          if tonumber(a0) < tonumber(b1) and tonumber(b0) < tonumber(a1) then overlapped = true end
        end
      end
      assert.are.equal(not x.is_local, overlapped)
      spans.remove()
    end)

    it("runs the children of a mapped task, each with its map_index and names", function()
      local f = Flow("mapped", function()
        local double = task { name = "double" }(function(v)
          local c = luaflow.context
          return { v * 2, c.map_index, c.task_name, c.task_full_name }
        end)
        double:map({ 1, 2, 3 })
      end)
      local s = f:run()
      assert.is_true(s:is_successful(), tostring(s))
      local results = state_named(s, "double").result
      local expected = { { 2, 1, "double", "double[1]" }, { 4, 2, "double", "double[2]" },
                         { 6, 3, "double", "double[3]" } }
      for k = 1, 3 do assert.are.same(expected[k], results[k]) end
    end)

    it("calls every handler on the engine, in the same order per task as under Local", function()
      local log = {}
      local function rec(t, old, new) log[#log + 1] = t.name .. ": " .. old.name .. " -> " .. new.name end
      local f = Flow("order", function()
        task { name = "a", state_handlers = { rec }, max_retries = 1, retry_delay = 0 }(function()
          if luaflow.context.task_run_count == 1 then error("first") end
          return 1
        end)()
      end)
      f:run()
      assert.are.same({ "a: Pending -> Running", "a: Running -> Failed", "a: Failed -> Retrying",
                        "a: Retrying -> Running", "a: Running -> Success" }, log)
    end)

    it("ends a body that returns after its deadline TimedOut (a blocking call included)", function()
      local f = Flow("late", function()
        task { name = "popen", timeout = 0.2 }(function() io.popen("sleep 0.6"):read("a"); return 1 end)()
      end)
      local s = f:run()
      assert.are.same({ 'popen TimedOut("Task timed out during execution.")' }, states_of(s))
    end)

    it("stops a Lua loop and luaflow.time.sleep at the timeout", function()
      local f = Flow("loops", function()
        task { name = "spin", timeout = 0.2 }(function() while true do end end)()
        task { name = "nap", timeout = 0.2 }(function() luaflow.time.sleep(30) end)()
      end)
      local t0 = timing.now()
      local s = f:run()
      assert.are.same({ 'spin TimedOut("Task timed out during execution.")',
                        'nap TimedOut("Task timed out during execution.")' }, states_of(s))
      assert.is_true(timing.now() - t0 < 5 * SLACK)
    end)

    it("keeps os.exit from ending the process inside a body", function()
      local f = Flow("exit", function() task { name = "e" }(function() os.exit(3) end)() end)
      local s = f:run()
      assert.matches("os.exit called during a flow run", tostring(state_named(s, "e").message))
    end)

    it("leaves no worker thread or process behind once flow:run returns", function()
      local before_threads, before_children = thread_count(), {}
      for _, pid in ipairs(children()) do before_children[pid] = true end
      Flow("w", function()
        for i = 1, 4 do task { name = "w" .. i }(function() luaflow.time.sleep(0.05) end)() end
      end):run()
      assert.are.equal(before_threads, thread_count())
      -- no child the run started (one an earlier spec left may end meanwhile)
      for _, pid in ipairs(children()) do
        assert.is_true(before_children[pid], "a child process left behind: " .. pid)
      end
    end)
  end)

  describe("under processes", function()
    local P = function() return executors.Processes { workers = 2 } end

    it("fails a task whose worker crashes in C, retries it on a fresh worker, and runs the others", function()
      with_cpath(function()
        local attempts = X.tally()
        local f = Flow("crash", function()
          task { name = "crash", max_retries = 1, retry_delay = 0 }(function()
            attempts.add(1)
            if luaflow.context.task_run_count == 1 then require("crashy").segv() end
            return "second try"
          end)()
          task { name = "other" }(function() luaflow.time.sleep(0.2); return "ok" end)()
        end)
        local s = f:run { executor = P() }
        assert.are.same({ 'crash Success("Task run succeeded.")', 'other Success("Task run succeeded.")' },
                        states_of(s))
        assert.are.equal(2, attempts.count())
        attempts.remove()
      end)
    end)

    it("names the signal or the exit status a worker died of", function()
      with_cpath(function()
        local f = Flow("deaths", function()
          task { name = "segv" }(function() require("crashy").segv() end)()
          task { name = "quit" }(function() require("crashy").quit(3) end)()
          task { name = "killed" }(function() os.execute("kill -9 $PPID"); luaflow.time.sleep(5) end)()
          task { name = "after" }(function() return 1 end)()
        end)
        local s = f:run { executor = executors.Processes { workers = 1 } }
        assert.are.same({
          ((os.getenv("LUAFLOW_TSAN") or os.getenv("LUAFLOW_SANITIZE")) and -- a sanitizer
                                                    -- turns a SIGSEGV into an abort
           'segv Failed("Worker process running <Task: segv> died: killed by signal 6 (SIGABRT)")' or
           'segv Failed("Worker process running <Task: segv> died: killed by signal 11 (SIGSEGV)")'),
          'quit Failed("Worker process running <Task: quit> died: exited with status 3")',
          'killed Failed("Worker process running <Task: killed> died: killed by signal 9 (SIGKILL)")',
          'after Success("Task run succeeded.")',
        }, states_of(s))
      end)
    end)

    it("kills a worker past its timeout: sleep 5 and a blocking C call end TimedOut at once", function()
      with_cpath(function()
        local f = Flow("kill", function()
          task { name = "sleep", timeout = 0.3 }(function() os.execute("sleep 5") end)()
          task { name = "block", timeout = 0.3 }(function() require("crashy").block(5) end)()
          task { name = "after", timeout = 1 }(function() return 1 end)()
        end)
        local t0 = timing.now()
        local s = f:run { executor = P() }
        assert.are.same({ 'sleep TimedOut("Task timed out during execution.")',
                          'block TimedOut("Task timed out during execution.")',
                          'after Success("Task run succeeded.")' }, states_of(s))
        assert.is_true(timing.now() - t0 < 4, "the run waited for the blocked bodies")
      end)
    end)
  end)

  describe("from the command line", function()
    local FLOW = [[
local luaflow = require("luaflow")
return luaflow.Flow("cli", function()
  for i = 1, 6 do
    luaflow.task{name = "p" .. i}(function()
      for k = 1, 50 do print(("line %d of task %d "):format(k, i) .. ("x"):rep(2000)) end
      return luaflow.context.task_name
    end)()
  end
end)
]]
    for _, kind in ipairs({ "local", "threads", "processes" }) do
      it("--executor " .. kind .. " runs the flow; print writes whole lines", function()
        local json = cli.tmpname()
        local args = { "run", cli.write_flow(FLOW), "--executor", kind, "--json", json, "--no-store" }
        if kind ~= "local" then args[#args + 1] = "--workers"; args[#args + 1] = "3" end
        local r = cli.run(args)
        assert.are.equal(0, r.code, r.stderr)
        local function count_lines(text)
          local n = 0
          for line in text:gmatch("[^\n]+") do
            assert.matches("^line %d+ of task %d x+$", line)
            assert.are.equal(2000, #line:match("x+$"))
            n = n + 1
          end
          return n
        end
        assert.are.equal(300, count_lines(r.stdout))
        -- with --json - stdout holds the JSON lines only: print goes to stderr, whole
        local r2 = cli.run({ "run", args[2], "--executor", kind, "--json", "-", "--no-store" })
        assert.are.equal(0, r2.code, r2.stderr)
        assert.are.equal(300, count_lines(r2.stderr))
        assert.are.equal(1, #util.json_lines(r2.stdout))
        local run = util.json_lines(r2.stdout)[1]
        assert.are.equal("p1", run.tasks[1].name)
        assert.are.equal("p6", run.tasks[6].result)
      end)
    end

    it("hides a secret a body read first in its worker, in --json, the store and the logs", function()
      local flow = cli.write_flow([[
local luaflow = require("luaflow")
return luaflow.Flow("leak", function()
  local t = luaflow.task{name = "reads"}(function()
    local token = luaflow.secrets.get("API_TOKEN")
    return {token = token, note = "token=" .. token}
  end)
  luaflow.task{name = "fails"}(function(r) error("bad token " .. r.token, 0) end)(t())
end)
]])
      for _, kind in ipairs({ "threads", "processes" }) do
        local dir = cli.tmpdir()
        local r = cli.run({ "run", flow, "--executor", kind, "--json", "-", "--store", dir .. "/s.db",
                            "--log-level", "INFO" },
                          { env = { LUAFLOW_SECRET_API_TOKEN = "tok-9f8e7d6c5b" } })
        assert.are.equal(1, r.code, r.stderr)
        assert.is_nil(r.stdout:find("9f8e7d6c5b", 1, true), kind .. ": --json shows the secret")
        assert.is_nil(r.stderr:find("9f8e7d6c5b", 1, true), kind .. ": the log shows the secret")
        local run = util.json_lines(r.stdout)[1]
        assert.are.equal("****", run.tasks[1].result.token)
        local logs = cli.run({ "runs", "logs", "last", "--store", dir .. "/s.db" })
        assert.are.equal(0, logs.code, logs.stderr)
        assert.is_truthy(logs.stdout:find("bad token ****", 1, true), logs.stdout)
        assert.is_nil(logs.stdout:find("9f8e7d6c5b", 1, true), kind .. ": the store shows the secret")
      end
    end)

    it("runs bodies in worker threads and processes from an embedding program", function()
      local build = os.getenv("LUAFLOW_BUILD") or "build"
      local bin = (os.getenv("LUAFLOW_ROOT") or cli.root) .. "/" .. build .. "/examples/run_flow"
      local script = cli.write_flow([[
local luaflow = require("luaflow")
local f = luaflow.Flow("emb", function()
  for i = 1, 3 do luaflow.task{name = "e" .. i}(function() return luaflow.context.task_name end)() end
end)
for _, e in ipairs{luaflow.executors.Threads{workers = 2}, luaflow.executors.Processes{workers = 2}} do
  for t, s in f:run{executor = e}:task_states() do print(tostring(e), t.name, s.result) end
end
]])
      local saved = cli.bin
      cli.bin = bin
      local ok, r = pcall(cli.run, { script })
      cli.bin = saved
      assert(ok, r)
      assert.are.equal(0, r.code, r.stderr)
      for _, kind in ipairs({ "Threads", "Processes" }) do
        for i = 1, 3 do
          assert.is_true(util.has(r.stdout, ("<Executor: %s{workers = 2}>\te%d\te%d"):format(kind, i, i)), r.stdout)
        end
      end
    end)

    it("refuses a bad --executor or --workers (exit 2)", function()
      local path = cli.write_flow(FLOW)
      local r = cli.run({ "run", path, "--executor", "gpu" })
      assert.are.equal(2, r.code)
      assert.matches("%-%-executor expects local, threads or processes, got 'gpu'", r.stderr)
      r = cli.run({ "run", path, "--workers", "two" })
      assert.are.equal(2, r.code)
      assert.matches("%-%-workers expects a whole number from 1 to 1024, got 'two'", r.stderr)
      r = cli.run({ "run", path, "--executor", "local", "--workers", "2" })
      assert.are.equal(2, r.code)
    end)

    local SLOW = [[
local luaflow = require("luaflow")
return luaflow.Flow("slow", function()
  for i = 1, 3 do
    luaflow.task{name = "s" .. i, state_handlers = {function(t, old, new)
      io.stderr:write(("handler %s %s -> %s\n"):format(t.name, old.name, new.name))
    end}}(function() print("ready") io.stdout:flush() luaflow.time.sleep(20) end)()
  end
end)
]]
    for _, kind in ipairs({ "threads", "processes" }) do
      for sig, code in pairs({ INT = 130, TERM = 143 }) do
        it(("SIGNAL %s under %s cancels every running task through its handlers (exit %d)"):format(sig, kind, code), function()
          local h = proc.spawn(SLOW, { args = { "run", "--no-input", "FILE", "--executor", kind,
                                                 "--workers", "3", "--no-store" } })
          proc.wait_for(h, "ready\nready\nready\n", 10)
          local got = proc.signal(h, sig, 10)
          assert.are.equal(code, got, proc.detail(h))
          local err = proc.stderr(h)
          for i = 1, 3 do assert.is_true(util.has(err, ("handler s%d Running -> Cancelled"):format(i)), err) end
        end)
      end
    end
  end)
end)
