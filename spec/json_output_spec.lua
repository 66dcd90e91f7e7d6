-- luaflow run --json: one valid UTF-8 JSON line per flow run, written as the
-- run ends, whatever the results hold; every write error is reported.
local luaflow = require("luaflow")
local cli = require("cli")
local util = require("util")
local json = luaflow.json

-- Runs SCRIPT with --json PATH (a fresh file unless given); returns the CLI
-- result and the text of the fresh file (never reads a given path: it may
-- be /dev/full, which reads as endless zeros).
local function run_json(script, path, env)
  local dir = cli.tmpdir()
  local out = path or dir .. "/out.json"
  local e = { XDG_STATE_HOME = dir, LUAFLOW_LOG_LEVEL = "ERROR" }
  for k, v in pairs(env or {}) do e[k] = v end
  local res = cli.run({ "run", cli.write_flow(script, dir), "--json", out }, { env = e })
  return res, not path and cli.read(out) or nil
end

local function entries(line)
  local by = {}
  for i, t in ipairs(line.tasks) do by[t.name] = t; by[i] = t end
  return by
end

-- A flow whose task `name` returns the Lua expression `expr`, beside a task
-- "plain" that returns 1.
local function returning(expr, prelude)
  return ([[
local luaflow = require("luaflow")
local json = luaflow.json
%s
local t = luaflow.task{ name = "t" }(function() return %s end)
local plain = luaflow.task{ name = "plain" }(function() return 1 end)
return luaflow.Flow("f", function() t(); plain() end)
]]):format(prelude or "", expr)
end

describe("--json", function()
  after_each(cli.cleanup)

  it("writes the keys of a line in the documented order, one line per run", function()
    local res, text = run_json(returning("{ a = 1 }"))
    assert.are.equal(0, res.code, res.stderr)
    assert.is_truthy(text:find('^{"flow":"f","state":"Success","message":"All reference tasks succeeded.","tasks":%['), text)
    assert.is_truthy(text:find('{"name":"t","state":"Success","message":"Task run succeeded.","run_count":1,'
                               .. '"started":"[^"]+","ended":"[^"]+","duration":[%d.]+,"result":{"a":1}}'), text)
    assert.is_truthy(text:find('%],"run_id":"[%x-]+","started":"[^"]+","ended":"[^"]+","duration":[%d.]+}\n$'), text)
    assert.are.equal(1, util.count(text, "\n"))
    assert.are.equal("\n", text:sub(-1))
  end)

  describe("a result with __tojson", function()
    it("is written compactly on the run's one line when its text is one JSON value", function()
      local res, text = run_json(returning([[setmetatable({}, { __tojson = function()
        return '  {\n  "x" : [1, 2.5, "a\\u00e9"] ,\n "y": null }\n' end })]]))
      assert.are.equal(0, res.code, res.stderr)
      assert.are.equal(1, util.count(text, "\n"), text)
      assert.is_truthy(text:find('"result":{"x":[1,2.5,"aé"],"y":null}', 1, true), text)
    end)

    for _, case in ipairs({
      { "invalid JSON", [['{"x": ']] },
      { "two values", [['1 2']] },
      { "a raw newline inside a string", '"\\"a\\nb\\""' },
      { "nothing", [['']] },
      { "a JSON text with a trailing comma", [['[1, 2,]']] },
    }) do
      it("is left out when it returns " .. case[1] .. ", the line staying valid", function()
        local res, text = run_json(returning(("setmetatable({}, { __tojson = function() return %s end })")
                                             :format(case[2])))
        assert.are.equal(0, res.code, res.stderr)
        assert.are.equal(1, util.count(text, "\n"), text)
        local by = entries(json.decode(text))
        assert.is_nil(by.t.result)
        assert.are.equal("Success", by.t.state)
        assert.are.equal(1, by.plain.result)
      end)
    end

    it("is left out when __tojson raises or returns a non-string", function()
      for _, body in ipairs({ "error('no json')", "return 42" }) do
        local res, text = run_json(returning(("setmetatable({}, { __tojson = function() %s end })"):format(body)))
        assert.are.equal(0, res.code, res.stderr)
        local by = entries(json.decode(text))
        assert.is_nil(by.t.result)
        assert.are.equal(1, by.plain.result)
      end
    end)

    it("that runs a flow is left out, the line it was in staying whole", function()
      local res, text = run_json(returning([[setmetatable({}, { __tojson = function()
        luaflow.Flow("inner", function() luaflow.task{ name = "i" }(function() return 2 end)() end):run()
        return "1" end })]]))
      assert.are.equal(0, res.code, res.stderr)
      local lines = cli.lines(text)
      assert.are.equal(1, #lines, text)
      local by = entries(json.decode(lines[1]))
      assert.is_nil(by.t.result)
      assert.are.equal(1, by.plain.result)
    end)

    it("makes json.encode raise naming the position", function()
      local v = setmetatable({}, { __tojson = function() return "[1,,2]" end })
      local ok, err = pcall(json.encode, { v })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("__tojson returned invalid JSON at position 4", 1, true), err)
    end)
  end)

  it("is valid UTF-8 whatever bytes a result holds (each stray byte written \\u00XX)", function()
    local res, text = run_json(returning([[{ ["k\255ey"] = "caf\233 \192\175 ok \240\159\152\128", ctl = "\0\1\127" }]]))
    assert.are.equal(0, res.code, res.stderr)
    assert.is_truthy(utf8.len(text), "not UTF-8: " .. text)
    assert.is_truthy(text:find([["k\u00ffey":"caf\u00e9 \u00c0\u00af ok 😀"]], 1, true), text)
    local result = entries(json.decode(text)).t.result
    assert.are.equal("café \u{c0}\u{af} ok 😀", result["kÿey"])
    assert.are.equal("\0\1\127", result.ctl)
  end)

  it("refuses a sparse array at once and leaves the result out", function()
    local res, text = run_json(returning("json.array({ [2^40 // 1] = 1 })"))
    assert.are.equal(0, res.code, res.stderr)
    local by = entries(json.decode(text))
    assert.is_nil(by.t.result)
    assert.are.equal(1, by.plain.result)
    local ok, err = pcall(json.encode, json.array({ [2 ^ 40 // 1] = 1 }))
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("sparse array", 1, true), err)
    -- a few holes are still written null
    assert.are.equal("[1,null,3]", json.encode(json.array({ 1, nil, 3 })))
    assert.are.equal(("[" .. ("null,"):rep(15) .. "1]"), json.encode(json.array({ [16] = 1 })))
  end)

  it("leaves out results that are not encodable and keeps the others", function()
    local script = [[
local luaflow = require("luaflow")
local cyc = {}
cyc.self = cyc
local values = { 0/0, 1/0, print, coroutine.create(print), cyc, { [1.5] = 1 }, "ok", 2^53, -7, true, false }
local tasks = {}
for i, v in ipairs(values) do tasks[i] = luaflow.Task{ name = "t" .. i, fn = function() return v end } end
return luaflow.Flow{ name = "f", tasks = tasks }
]]
    local res, text = run_json(script)
    assert.are.equal(0, res.code, res.stderr)
    local by = entries(json.decode(text))
    for i = 1, 6 do assert.is_nil(by["t" .. i].result, "t" .. i) end
    assert.are.equal("ok", by.t7.result)
    assert.are.equal(2 ^ 53, by.t8.result)
    assert.are.equal(-7, by.t9.result)
    assert.is_true(by.t10.result)
    assert.is_false(by.t11.result)
  end)

  it("writes a run's line when the run ends, and big lines whole", function()
    local dir = cli.tmpdir()
    local out = dir .. "/out.json"
    local script = ([[
local luaflow = require("luaflow")
local big = luaflow.task{ name = "big" }(function(i) return i %% 2 == 0 and ("x"):rep(20000) .. i or i end)
local f = luaflow.Flow("many", function() for i = 1, 600 do big(i) end end)
f:run()
local file = assert(io.open(%q))
local first = file:read("a")
file:close()
print(("after run 1: %%d lines, %%d bytes"):format(select(2, first:gsub("\n", "")), #first))
f:run()
]]):format(out)
    local res = cli.run({ "run", cli.write_flow(script, dir), "--json", out },
                        { env = { XDG_STATE_HOME = dir, LUAFLOW_LOG_LEVEL = "ERROR" } })
    assert.are.equal(0, res.code, res.stderr)
    local text = cli.read(out)
    local lines = {}
    for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    assert.are.equal(2, #lines)
    assert.are.equal("\n", text:sub(-1))
    assert.are.equal(("after run 1: 1 lines, %d bytes\n"):format(#lines[1] + 1), res.stdout)
    local run = json.decode(lines[2])
    assert.are.equal(600, #run.tasks)
    assert.are.equal(1, run.tasks[1].result)
    assert.are.equal(("x"):rep(20000) .. "2", run.tasks[2].result)
    assert.are.equal(("x"):rep(20000) .. "600", run.tasks[600].result)
  end)

  describe("write errors", function()
    local FLOW = [[
local luaflow = require("luaflow")
local t = luaflow.task{ name = "t" }(function() return ("r"):rep(100) end)
local f = luaflow.Flow("f", function() for _ = 1, 2000 do t() end end)
f:run()
f:run()
]]

    it("on a full device exit 1 and name the path and the reason, once", function()
      local res = run_json(FLOW, "/dev/full")
      assert.are.equal(1, res.code, res.stderr)
      local lines = cli.lines(res.stderr)
      assert.are.equal(1, #lines, res.stderr)
      assert.are.equal("luaflow: --json: cannot write to '/dev/full': No space left on device", lines[1])
    end)

    it("on standard output (--json -) too", function()
      local dir = cli.tmpdir()
      local path = cli.write_flow(FLOW, dir)
      local errs = dir .. "/stderr"
      local ok, how, code = os.execute(("env XDG_STATE_HOME=%s LUAFLOW_LOG_LEVEL=ERROR %s run --no-input %s --json - </dev/null >/dev/full 2>%s")
        :format(cli.quote(dir), cli.quote(cli.bin), cli.quote(path), cli.quote(errs)))
      assert.is_falsy(ok)
      assert.are.equal("exit", how)
      assert.are.equal(1, code)
      assert.are.equal("luaflow: --json: cannot write to standard output: No space left on device\n", cli.read(errs))
    end)

    it("on a path that cannot be opened stop before anything runs (exit 2)", function()
      local dir = cli.tmpdir()
      local res = run_json('print("MARK") ' .. FLOW, dir)
      assert.are.equal(2, res.code)
      assert.are.equal("", res.stdout)
      assert.is_truthy(res.stderr:find(("cannot write --json file '%s': Is a directory"):format(dir), 1, true), res.stderr)
    end)
  end)
end)
