-- Secrets: where they come from (flow:run{secrets=}, LUAFLOW_SECRET_<NAME>,
-- --secrets FILE and LUAFLOW_SECRETS_FILE, in that order of precedence), when
-- they may be read, and the secrets file, checked when the process starts:
-- anything but a JSON object of names to values stops it (exit 2) naming the
-- file, the line and the column. Hiding them is redaction_spec.lua's.
local luaflow = require("luaflow")
local cli = require("cli")
local util = require("util")
local json = luaflow.json
local Task, Flow = luaflow.Task, luaflow.Flow
local contains = util.has

local function starts_with(text, prefix)
  return text:sub(1, #prefix) == prefix
end

local function run_one(t, secrets)
  local state = Flow{ name = "secrets", tasks = { t } }:run{ secrets = secrets }
  return state, state.result[t]
end

-- A JSON secrets file of values with the given mode; returns its path.
local function json_secrets_file(values, mode)
  local path = cli.write_flow(json.encode(values), cli.tmpdir(), "secrets.json")
  assert(os.execute(("chmod %s %s"):format(mode, cli.quote(path))))
  return path
end

describe("secrets", function()
  after_each(cli.cleanup)

  it("come from flow:run{secrets=}, JSON-decoded, through secrets.get and Secret():get()", function()
    local seen = {}
    local t = Task{ name = "reader", fn = function()
      seen.plain = luaflow.secrets.get("PLAIN")
      seen.via_class = luaflow.Secret("PLAIN"):get()
      seen.num = luaflow.secrets.get("NUM")
      seen.obj = luaflow.Secret("OBJ"):get()
      seen.raw = luaflow.secrets.get("RAW")
    end }
    local _, ts = run_one(t, { PLAIN = "plain-value-1", NUM = "42", OBJ = '{"k":"obj-v","n":2}', RAW = 5 })
    assert.are.equal("Success", ts.name, ts.message)
    assert.are.equal("plain-value-1", seen.plain)
    assert.are.equal("plain-value-1", seen.via_class)
    assert.are.equal(42, seen.num)
    assert.are.equal("integer", math.type(seen.num))
    assert.are.same({ k = "obj-v", n = 2 }, seen.obj)
    assert.are.equal("integer", math.type(seen.obj.n))
    assert.are.equal(5, seen.raw)
  end)

  it("a missing one is the error Local Secret \"NAME\" was not found.", function()
    local err
    local t = Task{ name = "missing", fn = function()
      local ok, e = pcall(luaflow.secrets.get, "NOPE_NOT_SET")
      err = e
      assert(ok, e)
    end }
    local _, ts = run_one(t, { OTHER = "some-other-value" })
    -- a Lua error may carry the caller's position ("file:line: "), as every
    -- luaflow error does; the text itself is exact
    local want = 'Local Secret "NOPE_NOT_SET" was not found.'
    assert.are.equal(want, tostring(err):sub(-#want), tostring(err))
    local prefix = tostring(err):sub(1, -#want - 1)
    assert.is_true(prefix == "" or prefix:match("^.+:%d+: $") ~= nil, tostring(err))
    assert.are.equal("Failed", ts.name)
    assert.is_true(starts_with(ts.message, "Error during execution of task: "), ts.message)
    assert.are.equal(want, ts.message:sub(-#want), ts.message)
  end)

  local SHOW = [[
local luaflow = require("luaflow")
local show = luaflow.task{name = "show"}(function()
for _, name in ipairs({%s}) do
  local ok, v = pcall(luaflow.secrets.get, name)
  if not ok then v = "ERR " .. tostring(v) end
  local kind = math.type(v) or type(v)
  if type(v) == "table" then v = luaflow.json.encode(v) end
  print(("%%s=%%s:%%s"):format(name, kind, tostring(v)))
end
end)
local f = luaflow.Flow("show-secrets", function() show() end)
%s
]]

  local function show_script(names, run_call)
    local quoted = {}
    for i, n in ipairs(names) do quoted[i] = ("%q"):format(n) end
    return cli.write_flow(SHOW:format(table.concat(quoted, ", "), run_call or "return f"))
  end

  it("come from LUAFLOW_SECRET_<NAME> (upper-cased, non-alphanumerics made _), JSON-decoded", function()
    local path = show_script({ "slack-url", "num", "obj", "plain" })
    local res = cli.run({ "run", path }, { env = {
      LUAFLOW_SECRET_SLACK_URL = "https://hooks.example/T/B/envtoken",
      LUAFLOW_SECRET_NUM = "42",
      LUAFLOW_SECRET_OBJ = '{"a":[1,2],"b":"c"}',
      LUAFLOW_SECRET_PLAIN = "just text here",
    } })
    assert.are.equal(0, res.code, res.stderr)
    assert.are.same({
      "slack-url=string:https://hooks.example/T/B/envtoken",
      "num=integer:42",
      'obj=table:{"a":[1,2],"b":"c"}',
      "plain=string:just text here",
    }, cli.lines(res.stdout))
  end)

  it("come from --secrets FILE and LUAFLOW_SECRETS_FILE (mode 0600), run secrets then env first", function()
    local file = json_secrets_file({ FROM_FILE = "file-value-1", SHARED = "file-shared", BOTH = "file-both",
                                N = 7, DEEP = { x = "file-deep" } }, "600")
    local path = show_script({ "FROM_FILE", "N", "DEEP", "SHARED", "BOTH" },
                             'f:run{secrets = {BOTH = "run-both"}}')
    local env = { LUAFLOW_SECRET_SHARED = "env-shared", LUAFLOW_SECRET_BOTH = "env-both" }
    local expected = {
      "FROM_FILE=string:file-value-1",
      "N=integer:7",
      'DEEP=table:{"x":"file-deep"}',
      "SHARED=string:env-shared",
      "BOTH=string:run-both",
    }
    local res = cli.run({ "run", path, "--secrets", file }, { env = env })
    assert.are.equal(0, res.code, res.stderr)
    assert.are.same(expected, cli.lines(res.stdout))
    env.LUAFLOW_SECRETS_FILE = file
    res = cli.run({ "run", path }, { env = env })
    assert.are.equal(0, res.code, res.stderr)
    assert.are.same(expected, cli.lines(res.stdout))
  end)

  it("refuse a secrets file its group or others can read, and a missing one (exit 2)", function()
    local path = show_script({ "FROM_FILE" })
    for _, case in ipairs({ { mode = "640", how = "option" }, { mode = "604", how = "env" } }) do
      local file = json_secrets_file({ FROM_FILE = "file-value-1" }, case.mode)
      local args, env = { "run", path }, {}
      if case.how == "option" then
        table.insert(args, "--secrets")
        table.insert(args, file)
      else
        env.LUAFLOW_SECRETS_FILE = file
      end
      local res = cli.run(args, { env = env })
      assert.are.equal(2, res.code, res.stderr)
      assert.are.equal("", res.stdout)
      assert.is_true(contains(res.stderr, file), res.stderr)
      local lower = res.stderr:lower()
      assert.is_true(contains(lower, "group") or contains(lower, "others"), res.stderr)
    end
    local missing = cli.tmpdir() .. "/nope.json"
    local res = cli.run({ "run", path, "--secrets", missing })
    assert.are.equal(2, res.code)
    assert.are.equal("", res.stdout)
    assert.is_true(contains(res.stderr, missing), res.stderr)
    res = cli.run({ "run", path }, { env = { LUAFLOW_SECRETS_FILE = missing } })
    assert.are.equal(2, res.code)
    assert.is_true(contains(res.stderr, missing), res.stderr)
  end)

  it("refuses to read a secret while a flow is being built, as Prefect 1 does", function()
    local ok, err = pcall(Flow, "b", function() luaflow.secrets.get("X") end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("Secrets should only be retrieved during a Flow run", 1, true))
  end)
end)

local SCRIPT = [[
print("MARK script ran")
local luaflow = require("luaflow")
local t = luaflow.task{ name = "t" }(function() return luaflow.secrets.get("TOKEN") end)
return luaflow.Flow("f", function() t() end)
]]

-- A secrets file holding text, mode 0600; returns its path.
local function secrets_file(dir, text)
  local path = cli.write_flow(text, dir, "secrets.json")
  os.execute("chmod 600 " .. cli.quote(path))
  return path
end

local function run(dir, path, how)
  local args = { "run", cli.write_flow(SCRIPT, dir), "--json", "-" }
  local env = { XDG_STATE_HOME = dir, LUAFLOW_LOG_LEVEL = "ERROR" }
  if how == "env" then env.LUAFLOW_SECRETS_FILE = path else table.insert(args, "--secrets") table.insert(args, path) end
  return cli.run(args, { env = env })
end

describe("the secrets file", function()
  after_each(cli.cleanup)

  for _, case in ipairs({
    { "an array", '[\n  "TOKEN", "abcdefgh"\n]\n', "must hold a JSON object of secret names to values, not an array (line 1, column 1)" },
    { "an array after blank lines", '\n\n   ["x"]', "not an array (line 3, column 4)" },
    { "a string", '"just text"', "not a string (line 1, column 1)" },
    { "a number", '  42', "not a number (line 1, column 3)" },
    { "null", 'null', "not null (line 1, column 1)" },
    { "a trailing comma", '{\n  "TOKEN": "abcdefgh",\n}\n', "is not valid JSON: line 3, column 1: expected a string key" },
    { "a missing quote", '{\n  "TOKEN": "abc\n}', "is not valid JSON: line 2, column 16: control character in string" },
    { "a missing colon", '{"é": "x",\n "TOKEN" "abcdefgh"}', "is not valid JSON: line 2, column 10: expected ':'" },
    { "nothing", '', "is not valid JSON: line 1, column 1: unexpected end of input" },
    { "text after the object", '{"TOKEN": "abcdefgh"} x', "is not valid JSON: line 1, column 23: unexpected text after the value" },
  }) do
    for _, how in ipairs({ "--secrets", "env" }) do
      it(("holding %s is refused before the script runs (%s)"):format(case[1], how), function()
        local dir = cli.tmpdir()
        local path = secrets_file(dir, case[2])
        local res = run(dir, path, how)
        assert.are.equal(2, res.code, res.stderr)
        assert.are.equal("", res.stdout)
        assert.is_true(util.has(res.stderr, ("secrets file '%s' "):format(path)), res.stderr)
        assert.is_true(util.has(res.stderr, case[3]), res.stderr)
      end)
    end
  end

  it("holding an object is read once, at the start, and its secrets found", function()
    local dir = cli.tmpdir()
    local path = secrets_file(dir, json.encode({ TOKEN = "file-token-123" }))
    local res = run(dir, path, "--secrets")
    assert.are.equal(0, res.code, res.stderr)
    assert.is_true(util.has(res.stderr, "MARK script ran"), res.stderr) -- print: stderr with --json -
    local line = json.decode(res.stdout)
    assert.are.equal("****", line.tasks[1].result)
  end)
end)
