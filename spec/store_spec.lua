-- The run store (src/store*.c) through its Lua binding, luaflow.store: schema
-- and migrations, recording and reading, concurrent writer processes, a writer
-- killed with kill -9, damaged, read-only, newer and full stores, pruning.
local store = require("luaflow.store")
local util = require("util")

local LUA = "lua5.4"

-- Runs a command, returns its output and exit code. Only our own Lua children
-- keep the sanitizer runtime that a check-mem run preloads (lua_cmd).
local function run_cmd(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function sh(cmd)
  return run_cmd("env -u LD_PRELOAD sh -c " .. util.quote(cmd))
end

local function lua_cmd(script, ...)
  local words = { LUA, script }
  for _, a in ipairs({ ... }) do words[#words + 1] = util.quote(a) end
  return table.concat(words, " ")
end

local function tmpdir()
  local out = sh("mktemp -d")
  return (out:gsub("%s+$", ""))
end

local function sleep(s)
  sh("sleep " .. s)
end

-- Overwrites bytes of a file in place.
local function patch(path, offset, bytes)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", offset)
  f:write(bytes)
  f:close()
end

-- Text that does not compress: about n bytes of random hex.
local function noise(n)
  local words = {}
  for i = 1, n // 16 do words[i] = ("%016x"):format(math.random(0, math.maxinteger)) end
  return table.concat(words)
end

local function be32(s, at)
  local a, b, c, d = s:byte(at + 1, at + 4)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- A Lua program for a child process; the store binding comes from LUA_CPATH.
local function write_script(dir, name, source)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  return path
end

-- Records a finished run with ntasks tasks (two transitions and a log line each).
local function record_run(s, id, opts)
  opts = opts or {}
  local t0 = opts.started or 1700000000
  local run = assert(s:begin_run{id = id, flow = opts.flow or "f", script = "/flows/f.lua",
                                 parameters = '{"n":3}', executor = "Local", started = t0,
                                 ntasks = opts.ntasks or 2, restart_of = opts.restart_of})
  run:transition{index = 0, seq = 1, name = opts.flow or "f", old = "Pending", new = "Running",
                 message = "Running flow.", time = t0}
  for i = 1, opts.ntasks or 2 do
    local name = "t" .. i
    run:transition{index = i, seq = 1, name = name, old = "Pending", new = "Running",
                   message = "Starting task run.", time = t0 + i}
    run:log{time = t0 + i, level = "INFO", logger = "luaflow.TaskRunner",
            message = ("Task '%s': Starting task run..."):format(name)}
    local state = (opts.failing == i) and "Failed" or "Success"
    run:transition{index = i, seq = 2, name = name, old = "Running", new = state,
                   message = state == "Success" and "Task run succeeded." or "boom",
                   time = t0 + i + 0.25}
    run:task{index = i, name = name, state = state, run_count = 1, started = t0 + i,
             ended = t0 + i + 0.25, message = state == "Success" and "Task run succeeded." or "boom",
             result = tostring(i * 10)}
  end
  local final = opts.failing and "Failed" or "Success"
  assert(run:finish{ended = t0 + 100, state = final, exit_code = opts.failing and 1 or 0,
             message = opts.failing and "Some reference tasks failed." or "All reference tasks succeeded."})
end

describe("run store", function()
  local dir

  before_each(function()
    dir = tmpdir()
  end)

  after_each(function()
    sh("chattr -i " .. util.quote(dir) .. "/* 2>/dev/null; chmod -R u+rwx " .. util.quote(dir))
    sh("rm -rf " .. util.quote(dir))
  end)

  -- A new store in dir, recording; and its path.
  local function fresh_store()
    local path = dir .. "/luaflow.db"
    return assert(store.open(path, { create = true, record = true })), path
  end

  describe("schema", function()
    it("creates the file 0600 in new 0700 directories, at the current version", function()
      local path = dir .. "/state/luaflow/luaflow.db"
      local s = assert(store.open(path, { create = true }))
      assert.are.equal(store.SCHEMA_VERSION, s:schema_version())
      assert(s:close())
      assert.are.equal("600", (sh("stat -c %a " .. util.quote(path)):gsub("%s", "")))
      assert.are.equal("700", (sh("stat -c %a " .. util.quote(dir .. "/state/luaflow")):gsub("%s", "")))
      assert.are.equal("700", (sh("stat -c %a " .. util.quote(dir .. "/state")):gsub("%s", "")))
      local header = util.read(path):sub(1, 100)
      assert.are.equal("SQLite format 3\0", header:sub(1, 16))
      assert.are.equal(store.SCHEMA_VERSION, be32(header, 60)) -- user_version
      assert.are.equal("LFLW", header:sub(69, 72))             -- application_id
    end)

    it("leaves the mode of directories that were there alone", function()
      sh("chmod 755 " .. util.quote(dir))
      assert(assert(store.open(dir .. "/luaflow.db", { create = true })):close())
      assert.are.equal("755", (sh("stat -c %a " .. util.quote(dir)):gsub("%s", "")))
    end)

    it("migrates an empty database file from version 0", function()
      local path = dir .. "/empty.db"
      assert(io.open(path, "wb")):close()
      local s = assert(store.open(path, { record = true }))
      assert.are.equal(store.SCHEMA_VERSION, s:schema_version())
      record_run(s, "run-1")
      assert(s:close())
    end)

    it("keeps what a store of the current version holds when opened again", function()
      local path = dir .. "/luaflow.db"
      local s = assert(store.open(path, { create = true, record = true }))
      record_run(s, "run-1", { ntasks = 3 })
      assert(s:close())
      s = assert(store.open(path, { create = true, record = true }))
      assert.are.equal(3, #s:tasks("run-1"))
      assert.are.equal(7, #s:transitions("run-1"))
      assert(s:close())
    end)

    it("says there is no store rather than creating one when not asked to", function()
      local s, err, code = store.open(dir .. "/nope.db")
      assert.is_nil(s)
      assert.are.equal("missing", code)
      assert.matches("no run store at " .. dir .. "/nope.db", err, 1, true)
      assert.is_nil(io.open(dir .. "/nope.db"))
    end)

    it("migrates a version 1 store (JSON records) and reads all it holds, old and new", function()
      -- spec/fixtures/store_v1.lua made this file with the luaflow of version 1
      local root = os.getenv("LUAFLOW_ROOT") or "."
      local path = dir .. "/v1.db"
      sh(("cp %s/spec/fixtures/store_v1.db %s"):format(util.quote(root), util.quote(path)))
      assert.are.equal(1, be32(assert(io.open(path, "rb")):read(64), 60)) -- user_version
      local s = assert(store.open(path, { record = true }))
      assert.are.equal(2, store.SCHEMA_VERSION)
      assert.are.equal(store.SCHEMA_VERSION, s:schema_version())

      -- the big run: its records were deflated JSON
      local big = s:run("v1-big")
      assert.are.same({ "big", "/flows/big.lua", '{"n":300}', "LocalExecutor", "Failed", 1,
                        "Some reference tasks failed.", 1700000000, 1700000004, 300 },
                      { big.flow, big.script, big.parameters, big.executor, big.state,
                        big.exit_code, big.message, big.started, big.ended, big.ntasks })
      assert.are.same({ Success = 299, Failed = 1 }, big.counts)
      local tasks = s:tasks("v1-big")
      assert.are.equal(300, #tasks)
      assert.are.same({ index = 7, name = "t7", state = "Failed", message = "boom", run_count = 1,
                        started = 1700000000.07, ended = 1700000000.075, result_stored = true },
                      tasks[7])
      assert.are.same({ index = 300, name = "t300", state = "Success", result = '{"i":300}',
                        message = "Task run succeeded.", run_count = 1, started = 1700000003,
                        ended = 1700000003.005, result_stored = true }, tasks[300])
      local tr = s:transitions("v1-big")
      assert.are.equal(602, #tr)
      assert.are.same({ index = 150, seq = 2, name = "t150", old = "Running", new = "Success",
                        message = "Task run succeeded.", time = 1700000001.505 }, tr[301])
      local logs = s:logs("v1-big")
      assert.are.equal(300, #logs)
      assert.are.same({ time = 1700000000.42, level = "INFO", logger = "luaflow.TaskRunner",
                        message = "Task 't42': Starting task run..." }, logs[42])

      -- the small one: JSON text, a mapped child, odd text, a result not stored
      local small = s:run("v1-small")
      assert.are.equal("v1-big", small.restart_of)
      tasks = s:tasks("v1-small")
      assert.are.same({ index = 1, map_index = 2, name = "m[2]", state = "Success", run_count = 1,
                        result = "[1,2]", result_stored = true }, tasks[1])
      assert.are.same({ index = 2, name = "big result", state = "Success", run_count = 1,
                        started = 1700000011, ended = 1700000012.25, result_stored = false },
                      tasks[2])
      assert.are.equal("quote \" backslash \\ tab \t nul \0 é ✓ 😀 bad \u{FFFD} end",
                       s:logs("v1-small")[1].message)
      assert.are.equal(1700000011.000001, s:logs("v1-small")[1].time)
      -- the one whose process went away
      assert.are.equal("Crashed", s:run("v1-crashed").state)
      assert.are.same({ "t", "Running" }, { s:tasks("v1-crashed")[1].name, s:tasks("v1-crashed")[1].state })

      -- a run recorded now (binary records) sits next to them
      record_run(s, "v2-run", { ntasks = 3, failing = 2 })
      assert(s:close())
      s = assert(store.open(path))
      assert.are.equal(4, #s:runs())
      assert.are.equal(300, #s:tasks("v1-big"))
      assert.are.same({ index = 2, name = "t2", state = "Failed", message = "boom", run_count = 1,
                        started = 1700000002, ended = 1700000002.25, result = "20",
                        result_stored = true }, s:tasks("v2-run")[2])
      assert.are.equal(7, #s:transitions("v2-run"))
      assert(s:close())
      if select(2, sh("command -v sqlite3")) == 0 then
        local out = sh(("sqlite3 %s 'SELECT DISTINCT format FROM records ORDER BY 1'"):format(util.quote(path)))
        assert.are.equal("1\n2\n", out)
      end
    end)

    it("refuses a store made by a newer luaflow, naming both versions", function()
      local path = dir .. "/luaflow.db"
      assert(assert(store.open(path, { create = true })):close())
      patch(path, 60, "\0\0\0\42")
      for _, opts in ipairs({ {}, { record = true }, { create = true, record = true } }) do
        local s, err, code = store.open(path, opts)
        assert.is_nil(s)
        assert.are.equal("newer", code)
        assert.are.equal("run store " .. path .. " has schema version 42, newer than this luaflow knows ("
                         .. store.SCHEMA_VERSION .. "): use a newer luaflow", err)
      end
    end)
  end)

  describe("recording and reading", function()
    local s, path

    before_each(function()
      s, path = fresh_store()
    end)

    after_each(function()
      if s then s:close() end
    end)

    it("reads back a run, its tasks, transitions and log lines", function()
      record_run(s, "9f0c1d2e-aaaa", { ntasks = 3, failing = 2 })
      assert(s:flush())
      local run = s:run("9f0c1d2e-aaaa")
      assert.is_nil(s:failure())
      assert.are.same({ "9f0c1d2e-aaaa", "f", "/flows/f.lua", '{"n":3}', "Local", "Failed",
                        "Some reference tasks failed.", 1, 1700000000, 1700000100, 3 },
                      { run.id, run.flow, run.script, run.parameters, run.executor, run.state,
                        run.message, run.exit_code, run.started, run.ended, run.ntasks })
      assert.are.same({ Success = 2, Failed = 1 }, run.counts)
      local tasks = s:tasks(run.id)
      assert.are.equal(3, #tasks)
      assert.are.same({ index = 2, name = "t2", state = "Failed", message = "boom", run_count = 1,
                        started = 1700000002, ended = 1700000002.25, result = "20",
                        result_stored = true }, tasks[2])
      local tr = s:transitions(run.id)
      assert.are.equal(7, #tr)
      assert.are.same({ index = 0, seq = 1, name = "f", old = "Pending", new = "Running",
                        message = "Running flow.", time = 1700000000 }, tr[1])
      assert.are.same({ "t3", 2, "Running", "Success", 1700000003.25 },
                      { tr[7].name, tr[7].seq, tr[7].old, tr[7].new, tr[7].time })
      local logs = s:logs(run.id)
      assert.are.same({ time = 1700000001, level = "INFO", logger = "luaflow.TaskRunner",
                        message = "Task 't1': Starting task run..." }, logs[1])
    end)

    it("keeps any text exactly, and bytes that are not UTF-8 as U+FFFD", function()
      local run = s:begin_run{ id = "r", flow = "f\"low\n", started = 1 }
      local text = "quote \" backslash \\ tab \t nul \0 bell \7 é ✓ 😀 end"
      run:log{ time = 1.5, level = "ERROR", logger = "l", message = text }
      run:log{ time = 2, level = 10, logger = "l", message = "bad \255\254 utf8 \192\128" }
      run:transition{ index = 1, map_index = 3, seq = 1, name = "t[3]", old = "Pending",
                      new = "Running", time = 2 }
      run:finish{ ended = 3, state = "Success" }
      assert(s:flush())
      local logs = s:logs("r")
      assert.are.equal(text, logs[1].message)
      assert.are.equal("ERROR", logs[1].level)
      assert.are.equal("bad \u{FFFD}\u{FFFD} utf8 \u{FFFD}\u{FFFD}", logs[2].message)
      assert.are.equal("DEBUG", logs[2].level)
      assert.are.equal("f\"low\n", s:run("r").flow)
      assert.are.equal(3, s:transitions("r")[1].map_index)
    end)

    it("keeps a result up to 64 KiB and marks a longer one as not stored", function()
      local run = s:begin_run{ id = "r", flow = "f", started = 1 }
      local fits = '"' .. ("x"):rep(store.RESULT_MAX - 2) .. '"'
      run:task{ index = 1, name = "fits", state = "Success", result = fits }
      run:task{ index = 2, name = "too_long", state = "Success", result = fits .. " " }
      run:task{ index = 3, name = "nil", state = "Success" }
      run:task{ index = 4, name = "not_encodable", state = "Success", result_stored = false }
      run:finish{ ended = 2, state = "Success" }
      assert(s:flush())
      local t = s:tasks("r")
      assert.are.equal(fits, t[1].result)
      assert.is_true(t[1].result_stored)
      assert.is_nil(t[2].result)
      assert.is_false(t[2].result_stored)
      assert.is_nil(t[3].result)
      assert.is_true(t[3].result_stored)
      assert.is_false(t[4].result_stored)
    end)

    it("lists runs newest first, by flow, by state class, with a limit", function()
      record_run(s, "a1", { flow = "alpha", started = 100 })
      record_run(s, "b1", { flow = "beta", started = 300, failing = 1 })
      record_run(s, "a2", { flow = "alpha", started = 200 })
      local open = s:begin_run{ id = "a3", flow = "alpha", started = 400 }
      assert(s:flush())
      local function ids(list)
        local out = {}
        for i, r in ipairs(list) do out[i] = r.id end
        return out
      end
      assert.are.same({ "a3", "b1", "a2", "a1" }, ids(s:runs()))
      assert.are.same({ "a3", "a2", "a1" }, ids(s:runs{ flow = "alpha" }))
      assert.are.same({ "a3", "b1" }, ids(s:runs{ limit = 2 }))
      assert.are.same({ "b1" }, ids(s:runs{ state = "Failed" }))
      assert.are.same({ "b1", "a2", "a1" }, ids(s:runs{ state = "Finished" })) -- subclasses too
      assert.are.same({ "a2", "a1" }, ids(s:runs{ state = "Success" }))
      assert.are.same({ "a3" }, ids(s:runs{ state = "Running" }))
      assert.are.same({}, ids(s:runs{ state = "Crashed" }))
      local none, err, code = s:runs{ state = "Sucess" }
      assert.is_nil(none)
      assert.are.equal("invalid", code)
      assert.matches("unknown state 'Sucess'", err, 1, true)
      open:finish{ ended = 500, state = "Cancelled" }
    end)

    it("finds a run by id, by `last`, by a unique prefix, and lists an ambiguous one", function()
      record_run(s, "c0ffee-1111", { started = 10 })
      record_run(s, "c0ffee-2222", { started = 20, flow = "second" })
      record_run(s, "d00d-3333", { started = 5, restart_of = "c0ffee-1111" })
      assert(s:flush())
      assert.are.equal("c0ffee-2222", s:run("last").id)
      assert.are.equal("c0ffee-1111", s:run("d00d").restart_of)
      assert.are.equal("c0ffee-1111", s:run("c0ffee-1").id)
      local r, err, code = s:run("c0ffee")
      assert.is_nil(r)
      assert.are.equal("ambiguous", code)
      assert.are.equal("run id prefix 'c0ffee' is ambiguous: c0ffee-2222 (second), c0ffee-1111 (f)", err)
      r, err, code = s:run("beef")
      assert.is_nil(r)
      assert.are.equal("not_found", code)
      assert.are.equal("no run 'beef' in " .. path, err)
      assert.are.equal("not_found", select(3, s:tasks("c0ffee")))
    end)

    it("shows an unfinished run's tasks with the last state recorded", function()
      local run = s:begin_run{ id = "r", flow = "f", started = 1, ntasks = 3 }
      run:transition{ index = 1, seq = 1, name = "a", old = "Pending", new = "Running", time = 2 }
      run:transition{ index = 1, seq = 2, name = "a", old = "Running", new = "Success", time = 3 }
      run:task{ index = 1, name = "a", state = "Success", run_count = 1, started = 2, ended = 3 }
      run:transition{ index = 2, seq = 1, name = "b", old = "Pending", new = "Running", time = 4 }
      run:transition{ index = 2, seq = 2, name = "b", old = "Running", new = "Retrying",
                      message = "Retrying in 10 s", time = 5 }
      run:transition{ index = 2, seq = 3, name = "b", old = "Retrying", new = "Running", time = 15 }
      assert(s:flush())
      local tasks = s:tasks("r")
      assert.are.equal(2, #tasks)
      assert.are.same({ "a", "Success", 1 }, { tasks[1].name, tasks[1].state, tasks[1].run_count })
      assert.are.same({ "b", "Running", 2, 4 },
                      { tasks[2].name, tasks[2].state, tasks[2].run_count, tasks[2].started })
      assert.are.equal("Running", s:run("r").state) -- this very process is recording it
      run:finish{ ended = 20, state = "Failed" }
    end)

    it("records nothing for a second run with an id already recorded, and goes on", function()
      record_run(s, "same", { ntasks = 1 })
      record_run(s, "same", { ntasks = 5, flow = "other" })
      record_run(s, "next", { ntasks = 1 })
      assert(s:flush())
      assert.is_nil(s:failure())
      assert.are.equal("f", s:run("same").flow)
      assert.are.equal(1, #s:tasks("same"))
      assert.are.equal(1, #s:tasks("next"))
    end)

    it("commits a run that ends at once, not at the next flush interval", function()
      local slow = assert(store.open(dir .. "/slow.db", { create = true, record = true,
                                                          flush_interval = 30 }))
      record_run(slow, "quick")
      local reader = assert(store.open(dir .. "/slow.db"))
      local deadline = os.time() + 10
      while not reader:run("quick") and os.time() < deadline do sleep(0.02) end
      assert.are.equal("Success", (reader:run("quick") or {}).state)
      assert(reader:close())
      assert(slow:close())
    end)

    it("commits everything queued when closed, without a flush", function()
      local run = s:begin_run{ id = "big", flow = "f", started = 1 }
      for i = 1, 20000 do
        run:transition{ index = i, seq = 1, name = "t", old = "Pending", new = "Running", time = i }
      end
      run:finish{ ended = 2, state = "Success" }
      assert(s:close())
      s = assert(store.open(path))
      local tr = s:transitions("big")
      assert.are.equal(20000, #tr)
      assert.are.equal(20000, tr[20000].index)
    end)

    it("closed without waiting, commits at once and closes the file before the process exits", function()
      local child = write_script(dir, "later.lua", [[
        local store = require("luaflow.store")
        local s = assert(store.open(arg[1], {create = true, record = true}))
        local run = assert(s:begin_run{id = "later", flow = "f", started = 1})
        for i = 1, 5000 do
          run:transition{index = i, seq = 1, name = "t", old = "Pending", new = "Running", time = i}
        end
        assert(s:close{wait = false}) -- committed: another process sees it now
        local r = assert(store.open(arg[1]))
        print(#r:transitions("later"))
        r:close()
      ]])
      local other = dir .. "/other.db"
      local out, code = run_cmd(lua_cmd(child, other))
      assert.are.equal(0, code, out)
      assert.are.equal("5000\n", out)
      -- the exit waited for the close: its checkpoint left no write-ahead log
      assert.is_nil(io.open(other .. "-wal"))
      local r = assert(store.open(other))
      assert.are.equal(5000, #r:transitions("later"))
      assert(r:close())
    end)

    it("refuses use after close and records after finish", function()
      local run = s:begin_run{ id = "r", flow = "f", started = 1 }
      run:finish{ ended = 2, state = "Success" }
      assert.has_error(function() run:log{ time = 1, logger = "l", message = "m" } end,
                       "attempt to record into a finished run")
      local other = s:begin_run{ id = "r2", flow = "f", started = 1 }
      assert(s:close())
      assert.has_error(function() s:runs() end, "attempt to use a closed run store")
      assert.has_error(function() other:log{ time = 1, logger = "l", message = "m" } end,
                       "attempt to record into a closed run store")
      s = nil
    end)

    it("says which field is wrong", function()
      assert.has_error(function() s:begin_run{ id = "r", started = 1 } end,
                       "field 'flow' must be a string (got nil)")
      local run = s:begin_run{ id = "r", flow = "f", started = 1 }
      assert.has_error(function() run:task{ index = 1.5, name = "t", state = "Success" } end,
                       "field 'index' must be an integer (got number)")
      assert.has_error(function() run:log{ time = 1, level = "LOUD", logger = "l", message = "m" } end,
                       "unknown log level 'LOUD'")
      run:finish{ ended = 1, state = "Success" }
    end)
  end)

  describe("several processes", function()
    it("record into one store at once and nothing is lost", function()
      local path = dir .. "/luaflow.db"
      local child = write_script(dir, "writer.lua", [[
        local store = require("luaflow.store")
        local path, tag, go = arg[1], arg[2], arg[3]
        local s = assert(store.open(path, {create = true, record = true, flush_interval = 0.002}))
        while not io.open(go) do os.execute("env -u LD_PRELOAD sleep 0.01") end
        for r = 1, 15 do
          local id = tag .. "-" .. r
          local run = assert(s:begin_run{id = id, flow = tag, started = os.time() + r})
          for i = 1, 200 do
            run:transition{index = i, seq = 1, name = "t", old = "Pending", new = "Running", time = i}
            run:log{time = i, logger = "w", message = id .. "/" .. i}
            run:transition{index = i, seq = 2, name = "t", old = "Running", new = "Success", time = i}
            run:task{index = i, name = "t", state = "Success", run_count = 1, result = tostring(i)}
            if i % 50 == 0 then os.execute("env -u LD_PRELOAD sleep 0.001") end
          end
          run:finish{ended = os.time(), state = "Success", exit_code = 0}
        end
        assert(s:close())
        print("done " .. tag)
      ]])
      local go = dir .. "/go"
      local p1 = io.popen(lua_cmd(child, path, "one", go) .. " 2>&1")
      local p2 = io.popen(lua_cmd(child, path, "two", go) .. " 2>&1")
      sleep(0.2)
      assert(io.open(go, "w")):close()
      assert.are.equal("done one\n", p1:read("a"))
      assert.are.equal("done two\n", p2:read("a"))
      assert(p1:close())
      assert(p2:close())

      local s = assert(store.open(path))
      local runs = s:runs()
      assert.are.equal(30, #runs)
      for _, run in ipairs(runs) do
        assert.are.equal("Success", run.state)
        assert.are.same({ Success = 200 }, run.counts)
        local tr, logs, tasks = s:transitions(run.id), s:logs(run.id), s:tasks(run.id)
        assert.are.equal(400, #tr)
        assert.are.equal(200, #logs)
        assert.are.equal(200, #tasks)
        for i = 1, 200 do
          assert.are.equal(run.id .. "/" .. i, logs[i].message)
          assert.are.equal(tostring(i), tasks[i].result)
        end
      end
      assert(s:close())
    end)

    it("show a run whose writer was killed with kill -9 as Crashed, with what it committed", function()
      local path = dir .. "/luaflow.db"
      local child = write_script(dir, "victim.lua", [[
        local store = require("luaflow.store")
        local s = assert(store.open(arg[1], {create = true, record = true, flush_interval = 0.02}))
        local run = assert(s:begin_run{id = "victim", flow = "doomed", started = os.time(), ntasks = 2})
        local function step(i)
          run:transition{index = 1, seq = i, name = "t", old = i == 1 and "Pending" or "Running",
                         new = "Running", message = "step " .. i, time = i}
        end
        for i = 1, 300 do step(i) end
        run:task{index = 2, name = "done", state = "Success", run_count = 1}
        assert(s:flush())            -- committed for sure
        for i = 301, 500 do step(i) end
        os.execute("env -u LD_PRELOAD sleep 0.3") -- committed by the writer's clock
        io.write("ready\n")
        io.flush()
        io.open(arg[2]):read("a") -- a FIFO nobody writes: waits for the kill
      ]])
      local out, fifo = dir .. "/victim.out", dir .. "/fifo"
      sh("mkfifo " .. util.quote(fifo))
      local pid = assert(tonumber((run_cmd(lua_cmd(child, path, fifo) .. " >" .. out
                                           .. " 2>&1 & echo $!"))))
      local deadline = os.time() + 20
      while not (util.read(out) or ""):find("ready", 1, true) do
        assert(os.time() < deadline, "the child never got ready: " .. (util.read(out) or ""))
        sleep(0.05)
      end
      sh("kill -9 " .. pid)
      while (util.read("/proc/" .. pid .. "/stat") or " Z "):match("^%d+ %b() ([^Z])") do sleep(0.05) end

      local s = assert(store.open(path))
      local run = s:run("victim")
      assert.are.equal("Crashed", run.state)
      assert.is_nil(run.ended)
      assert.are.equal(pid, run.pid)
      assert.are.same({ "victim" }, { s:runs{ state = "Crashed" }[1].id })
      local tr = s:transitions("victim")
      assert.are.equal(500, #tr)
      for i = 1, 500 do assert.are.equal("step " .. i, tr[i].message) end
      local tasks = s:tasks("victim")
      assert.are.same({ { "t", "Running", 500 }, { "done", "Success", 1 } },
                      { { tasks[1].name, tasks[1].state, tasks[1].run_count },
                        { tasks[2].name, tasks[2].state, tasks[2].run_count } })
      assert(s:close())
    end)
  end)

  describe("changed behind its back (with the sqlite3 command)", function()
    local path

    before_each(function()
      if select(2, sh("command -v sqlite3")) ~= 0 then return end
      local s
      s, path = fresh_store()
      record_run(s, "done", { ntasks = 300 })
      s:begin_run{ id = "remote", flow = "f", started = 1 }
      assert(s:close())
    end)

    local function set(sql)
      if not path then
        pending("the sqlite3 command is not installed (scripts/install-deps.sh installs it)")
        return false
      end
      local out, code = sh(("sqlite3 %s %s"):format(util.quote(path), util.quote(sql)))
      assert(code == 0, out)
      return true
    end

    it("shows a run of another machine Running while its heartbeat is fresh, then Crashed", function()
      -- Another host: its pid means nothing here, only its heartbeat does.
      if not set(("UPDATE runs SET host = 'elsewhere', host_key = 'other-boot/1', pid = 1,"
                  .. " heartbeat = %f WHERE id = 'remote'"):format(os.time())) then
        return
      end
      local s = assert(store.open(path))
      assert.are.equal("Running", s:run("remote").state)
      assert.are.equal("elsewhere", s:run("remote").host)
      assert(s:close())
      set(("UPDATE runs SET heartbeat = %f WHERE id = 'remote'"):format(os.time() - store.STALE - 5))
      s = assert(store.open(path))
      assert.are.equal("Crashed", s:run("remote").state)
      assert.are.equal("Success", s:run("done").state)
      assert(s:close())
    end)

    -- Another process holds the write lock for `seconds` (started in the background).
    local function hold_lock(seconds)
      local ready = dir .. "/locked"
      run_cmd(("(echo 'BEGIN IMMEDIATE;'; touch %s; sleep %s; echo 'COMMIT;') | env -u LD_PRELOAD"
               .. " sqlite3 %s >/dev/null 2>&1 &"):format(util.quote(ready), seconds, util.quote(path)))
      while not io.open(ready) do sleep(0.02) end
      sleep(0.2) -- sqlite3 has read its BEGIN by now
    end

    it("waits for another process's write lock, then commits everything", function()
      if not set("SELECT 1") then return end
      local s = assert(store.open(path, { record = true, flush_interval = 0.01 }))
      hold_lock(1.5)
      record_run(s, "patient", { ntasks = 50 })
      assert(s:flush())
      assert.is_nil(s:failure())
      assert.are.equal(50, #s:tasks("patient"))
      assert(s:close())
    end)

    it("gives up with one clear error when the lock is held past the busy timeout", function()
      if not set("SELECT 1") then return end
      local s = assert(store.open(path, { record = true, flush_interval = 0.01, busy_timeout = 0.3 }))
      hold_lock(2)
      record_run(s, "impatient")
      local ok, err = s:flush()
      assert.is_nil(ok)
      assert.are.equal("run store " .. path .. " is locked by another process for too long", err)
      assert.are.equal("busy", select(3, s:close()))
      sleep(2) -- the lock is gone: what was committed before is intact
      s = assert(store.open(path))
      assert.are.equal("Success", s:run("done").state)
      assert.are.equal("not_found", select(3, s:run("impatient")))
      assert(s:close())
    end)

    it("reports a damaged record as corrupt, and reads the rest", function()
      if not set("UPDATE records SET body = '[[1,null,1,\"t\"' , size = NULL WHERE kind = 'transition'"
                 .. "; UPDATE records SET size = size + 1 WHERE kind = 'log'") then
        return
      end
      local s = assert(store.open(path))
      for _, read in ipairs({ "transitions", "logs" }) do
        local rows, err, code = s[read](s, "done")
        assert.is_nil(rows)
        assert.are.equal("corrupt", code)
        assert.are.equal(("run store %s is corrupt (a %s record cannot be read)")
                         :format(path, read == "logs" and "log" or "transition"), err)
      end
      assert.are.equal(300, #s:tasks("done"))
      assert.are.equal("Success", s:run("done").state)
      assert(s:close())
    end)
  end)

  describe("damaged binary records (with the sqlite3 command)", function()
    local path

    before_each(function()
      if select(2, sh("command -v sqlite3")) ~= 0 then return end
      local s
      s, path = fresh_store()
      record_run(s, "small", { ntasks = 3 }) -- chunks this small are not deflated
      assert(s:close())
    end)

    -- Sets the transition chunk's bytes (hex) and format, then reads the run.
    local function read_with(hex, format)
      if not path then
        pending("the sqlite3 command is not installed (scripts/install-deps.sh installs it)")
        return
      end
      local out, code = sh(("sqlite3 %s %s"):format(util.quote(path), util.quote(
        ("UPDATE records SET body = %s, size = NULL, format = %d WHERE kind = 'transition'")
          :format(hex, format or 2))))
      assert(code == 0, out)
      local s = assert(store.open(path))
      local rows, err, code2 = s:transitions("small")
      local tasks, logs = s:tasks("small"), s:logs("small")
      assert(s:close())
      return rows, err, code2, tasks, logs
    end

    local function corrupt(hex, format)
      local rows, err, code, tasks, logs = read_with(hex, format)
      if not path then return end
      assert.is_nil(rows)
      assert.are.equal("corrupt", code)
      assert.are.equal(("run store %s is corrupt (a transition record cannot be read)"):format(path), err)
      assert.are.equal(3, #tasks) -- the rest reads
      assert.are.equal(3, #logs)
    end

    it("reports a chunk cut short as corrupt", function()
      corrupt("substr(body, 1, length(body) - 1)")
    end)

    it("reports a varint that runs off the end or past 64 bits as corrupt", function()
      corrupt("X'80'")
      corrupt("X'FFFFFFFFFFFFFFFFFFFF7F'")
    end)

    it("reports a string longer than the chunk or a reference to one not seen as corrupt", function()
      corrupt("X'020002FF7F'")       -- index 1, map 0, seq 1, a name of 8191 bytes
      corrupt("X'02000204'")         -- the name: string number 1, before any string
      corrupt("X'0200020374040400'") -- name "t" (string 0), then a class: string 1, not seen
    end)

    it("reports a number out of range and a format it does not know as corrupt", function()
      corrupt("X'FEFFFFFFFF7F'")    -- an index over 2^31
      corrupt("body", 9)
    end)

    it("reads an empty chunk as no records, and an unknown class as State", function()
      local rows = read_with("X''")
      if not path then return end
      assert.are.same({}, rows)
      -- name "t", old "NotAState" (string 1), new: string 1 again, no message, time 0
      rows = read_with("X'0200020374" .. "134E6F744153746174650400" .. "00'")
      assert.are.same({ { index = 1, seq = 1, name = "t", old = "State", new = "State", time = 0 } }, rows)
    end)
  end)

  describe("a store that cannot be used", function()
    it("gives one clear error for a file that is not a database", function()
      local path = dir .. "/luaflow.db"
      local f = assert(io.open(path, "wb"))
      f:write(("not a database at all\n"):rep(200))
      f:close()
      for _, opts in ipairs({ {}, { record = true }, { create = true, record = true } }) do
        local s, err, code = store.open(path, opts)
        assert.is_nil(s)
        assert.are.equal("not_a_store", code)
        assert.are.equal(path .. " is not a luaflow run store (file is not a database)", err)
      end
      assert.are.equal(("not a database at all\n"):rep(200), util.read(path))
    end)

    it("names the path at fault when it cannot be a store", function()
      local cases = {
        { dir, {}, "invalid", "run store " .. dir .. " is a directory, not a file" },
        { dir, { create = true, record = true }, "invalid",
          "run store " .. dir .. " is a directory, not a file" },
        { dir .. "/f/x/luaflow.db", { create = true }, "io",
          "cannot create directory " .. dir .. "/f for run store " .. dir
          .. "/f/x/luaflow.db (Not a directory)" },
        { "", { create = true }, "invalid", "run store: empty path" },
      }
      assert(io.open(dir .. "/f", "w")):close()
      for _, c in ipairs(cases) do
        local s, err, code = store.open(c[1], c[2])
        assert.is_nil(s)
        assert.are.same({ c[3], c[4] }, { code, err })
      end
      local ok, nul = pcall(store.open, dir .. "/a\0b", { create = true })
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*open' %(path holds a NUL byte%)", nul)
      assert.is_nil(io.open(dir .. "/a"))
    end)

    it("refuses another program's SQLite database", function()
      local path = dir .. "/other.db"
      assert(assert(store.open(path, { create = true })):close())
      patch(path, 68, "ABCD") -- another application id
      local s, err, code = store.open(path, { record = true })
      assert.is_nil(s)
      assert.are.equal("not_a_store", code)
      assert.are.equal(path .. " is not a luaflow run store (it holds another database)", err)
    end)

    it("reports a damaged store as corrupt when opened or read, and never crashes", function()
      local path = dir .. "/luaflow.db"
      local s = assert(store.open(path, { create = true, record = true }))
      record_run(s, "r1", { ntasks = 50 })
      assert(s:close())
      local good = util.read(path)
      local page = good:byte(17) * 256 + good:byte(18)
      page = page == 1 and 65536 or page
      patch(path, page, ("\171"):rep(3 * page)) -- the tables' pages
      s = assert(store.open(path))
      local rows, err, code = s:runs()
      assert.is_nil(rows)
      assert.are.equal("corrupt", code)
      assert.are.equal("run store " .. path .. " is corrupt (database disk image is malformed)", err)
      assert.are.equal("corrupt", select(3, s:transitions("r1")))
      assert(s:close())
      local w = assert(store.open(path, { record = true }))
      w:begin_run{ id = "r2", flow = "f", started = 1 }
      local ok, ferr = w:flush()
      assert.is_nil(ok)
      assert.matches("is corrupt", ferr, 1, true)
      assert.matches("is corrupt", w:failure(), 1, true)
      assert.is_nil(w:begin_run{ id = "r3", flow = "f", started = 1 })
      assert.are.equal("corrupt", select(3, w:close()))

      local f = assert(io.open(path, "wb"))
      f:write(good:sub(1, 200), ("\171"):rep(page - 300), good:sub(page - 99)) -- the schema page
      f:close()
      s, err, code = store.open(path)
      assert.is_nil(s)
      assert.are.equal("corrupt", code)
      assert.matches("^run store " .. path:gsub("%p", "%%%0") .. " is corrupt", err)
    end)

    it("reads a read-only store and refuses to record into it", function()
      local path = dir .. "/luaflow.db"
      local s = assert(store.open(path, { create = true, record = true }))
      record_run(s, "r1")
      assert(s:close())
      local root = sh("id -u"):match("^0")
      if root then
        local out, code = sh("chattr +i " .. util.quote(path))
        if code ~= 0 then
          pending("running as root on a file system without chattr +i: " .. out)
          return
        end
      else
        sh("chmod 0400 " .. util.quote(path))
      end
      for _, opts in ipairs({ { record = true }, { create = true, record = true } }) do
        local w, err, code = store.open(path, opts)
        assert.is_nil(w)
        assert.are.equal("read_only", code)
        assert.are.equal("run store " .. path .. " is read-only", err)
      end
      s = assert(store.open(path))
      assert.are.equal("Success", s:run("r1").state)
      local n, err, code = s:prune{ keep = 0 }
      assert.is_nil(n)
      assert.are.equal("read_only", code)
      assert.are.equal("run store " .. path .. " is read-only", err)
      assert(s:close())
    end)

    it("stops recording with one clear error when the disk is full", function()
      local mnt = dir .. "/small"
      sh("mkdir -p " .. util.quote(mnt))
      local out, code = sh("mount -t tmpfs -o size=512k tmpfs " .. util.quote(mnt))
      if code ~= 0 then
        pending("cannot mount a 512 KiB tmpfs to fill (needs root): " .. out:gsub("\n", " "))
        return
      end
      finally(function() sh("umount " .. util.quote(mnt)) end)
      local path = mnt .. "/luaflow.db"
      local s = assert(store.open(path, { create = true, record = true, flush_interval = 0.01 }))
      local run = assert(s:begin_run{ id = "big", flow = "f", started = 1 })
      local failed
      for i = 1, 2000 do
        run:log{ time = i, logger = "l", message = noise(1000) }
        if i % 20 == 0 and not s:flush() then
          failed = i
          break
        end
      end
      assert.is_number(failed)
      assert.are.equal("run store " .. path .. ": the disk is full", s:failure())
      assert.are.same({ nil, "run store " .. path .. ": the disk is full" },
                      { run:log{ time = 1, logger = "l", message = "dropped" } })
      assert.is_nil(s:begin_run{ id = "next", flow = "f", started = 1 })
      local ok, err, ecode = s:close()
      assert.is_nil(ok)
      assert.are.equal("disk_full", ecode)
      assert.are.equal("run store " .. path .. ": the disk is full", err)
      -- what was committed before the disk filled is still there
      s = assert(store.open(path))
      assert.are.equal("big", s:run("last").id)
      assert(s:close())
      -- a new store on the full disk: the same error, and no empty file left
      local fresh = mnt .. "/new/luaflow.db"
      local none, cerr, ccode = store.open(fresh, { create = true, record = true })
      assert.is_nil(none)
      assert.are.equal("disk_full", ccode)
      assert.are.equal("run store " .. fresh .. ": the disk is full", cerr)
      assert.is_nil(io.open(fresh))
    end)
  end)

  describe("prune", function()
    local s, path

    before_each(function()
      s, path = fresh_store()
    end)

    after_each(function()
      s:close()
    end)

    local function ids()
      local out = {}
      for i, r in ipairs(assert(s:runs())) do out[i] = r.id end
      return out
    end

    it("keeps the N newest runs and deletes what the others recorded", function()
      for i = 1, 5 do record_run(s, "r" .. i, { started = i * 100, ntasks = 3 }) end
      assert(s:flush())
      assert.are.equal(3, s:prune{ keep = 2 })
      assert.are.same({ "r5", "r4" }, ids())
      assert.are.equal("not_found", select(3, s:transitions("r1")))
      assert.are.equal(0, s:prune{ keep = 2 })
      assert.are.equal(2, s:prune{ keep = 0 })
      assert.are.same({}, ids())
    end)

    it("deletes the runs started before a date", function()
      for i = 1, 4 do record_run(s, "r" .. i, { started = i * 100 }) end
      assert(s:flush())
      assert.are.equal(2, s:prune{ before = 250 })
      assert.are.same({ "r4", "r3" }, ids())
    end)

    it("never deletes a run still in progress", function()
      local open = s:begin_run{ id = "open", flow = "f", started = 1 }
      record_run(s, "done", { started = 2 })
      assert(s:flush())
      assert.are.equal(1, s:prune{ keep = 0 })
      assert.are.same({ "open" }, ids())
      assert.are.equal(0, s:prune{ before = 1e10 })
      open:finish{ ended = 3, state = "Success" }
      assert(s:flush())
      assert.are.equal(1, s:prune{ before = 1e10 })
    end)

    it("gives the space back to the file system", function()
      local run = s:begin_run{ id = "huge", flow = "f", started = 1 }
      for i = 1, 2000 do run:log{ time = i, logger = "l", message = noise(1000) } end
      run:finish{ ended = 2, state = "Success" }
      assert(s:close())
      s = assert(store.open(path, { record = true }))
      local before = #util.read(path)
      assert.are.equal(1, s:prune{ keep = 0 })
      assert(s:close())
      s = assert(store.open(path, { record = true }))
      assert.is_true(#util.read(path) < before / 4, ("%d -> %d bytes"):format(before, #util.read(path)))
    end)

    it("wants keep or before, not both", function()
      assert.has_error(function() s:prune{} end)
      assert.has_error(function() s:prune{ keep = 1, before = 2 } end)
      assert.has_error(function() s:prune{ keep = -1 } end)
    end)
  end)

  describe("default path", function()
    local function env_path(env)
      local keep = {}
      for _, name in ipairs({ "PATH", "LUA_CPATH", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
        if os.getenv(name) then keep[#keep + 1] = util.quote(name .. "=" .. os.getenv(name)) end
      end
      local out = run_cmd(("env -i %s %s %s -e 'print(require(\"luaflow.store\").env_path())'")
                          :format(table.concat(keep, " "), env, LUA))
      return (out:gsub("\n$", ""))
    end

    it("is LUAFLOW_STORE, else under XDG_STATE_HOME, else under HOME; off is off", function()
      assert.are.equal("/x/my.db", env_path("LUAFLOW_STORE=/x/my.db XDG_STATE_HOME=/s HOME=/h"))
      assert.are.equal("/s/luaflow/luaflow.db", env_path("XDG_STATE_HOME=/s HOME=/h"))
      assert.are.equal("/h/.local/state/luaflow/luaflow.db", env_path("XDG_STATE_HOME=rel HOME=/h"))
      assert.are.equal("false", env_path("LUAFLOW_STORE=off HOME=/h"))
      assert.are.equal("false", env_path(""))
    end)
  end)
end)
