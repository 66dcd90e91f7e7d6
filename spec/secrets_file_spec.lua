-- A secrets file (--secrets FILE, LUAFLOW_SECRETS_FILE) is checked when the
-- process starts: anything but a JSON object of names to values stops it
-- (exit 2) naming the file, the line and the column.
local luaflow = require("luaflow")
local cli = require("cli")
local util = require("util")
local json = luaflow.json

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
    assert.is_true(util.has(res.stdout, "MARK script ran"), res.stdout)
    local line = json.decode(res.stdout:match("\n(.*)$"))
    assert.are.equal("****", line.tasks[1].result)
  end)
end)
