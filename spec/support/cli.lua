-- Runs the luaflow CLI as a subprocess for the specs.
--
--   local cli = require("cli")
--   local r = cli.run({"run", path, "--json", "-"}, {env = {LUAFLOW_LOG_LEVEL = "INFO"}})
--   r.code, r.stdout, r.stderr
--
-- The binary is $LUAFLOW_BIN (set by scripts/run-specs.sh). stdin is /dev/null
-- and `luaflow run` gets --no-input, so a paused task never waits on a terminal.
local M = {}

M.root = os.getenv("LUAFLOW_ROOT") or "/work/main"
M.bin = os.getenv("LUAFLOW_BIN") or (M.root .. "/build/luaflow")

local temp_files, temp_dirs = {}, {}

local util = require("util")
M.quote = util.quote

M.read = util.read
local slurp = util.read

-- A fresh temp file name, removed by cleanup().
function M.tmpname()
  local path = os.tmpname()
  temp_files[#temp_files + 1] = path
  return path
end

-- A fresh temp directory, removed (with what it holds) by cleanup().
function M.tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir:sub(1, 1) == "/", "mktemp -d failed")
  temp_dirs[#temp_dirs + 1] = dir
  return dir
end

-- Writes a flow script; returns its absolute path. With `dir`, the file is
-- dir/name (name defaults to "flow.lua"), else a temp file.
function M.write_flow(source, dir, name)
  local path
  if dir then
    path = dir .. "/" .. (name or "flow.lua")
    temp_files[#temp_files + 1] = path
  else
    path = M.tmpname()
  end
  local f = assert(io.open(path, "wb"))
  f:write(source)
  f:close()
  return path
end

-- args: list of arguments after the binary. opts:
--   env       table NAME -> value (false unsets NAME for the child)
--   cwd       directory to start in
--   no_input  false to leave --no-input out of a `run` command
--   bin       another program to run instead of luaflow (an embedding program)
-- Returns {stdout=, stderr=, code=}; a child killed by signal N gives 128 + N.
function M.run(args, opts)
  opts = opts or {}
  local argv = {}
  for i, a in ipairs(args) do argv[i] = a end
  if argv[1] == "run" and opts.no_input ~= false then table.insert(argv, 2, "--no-input") end

  local env = {}
  local child_asan = os.getenv("LUAFLOW_CHILD_ASAN_OPTIONS")
  if child_asan then env.ASAN_OPTIONS = child_asan end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  -- env(1) takes its -u options before the NAME=VALUE words.
  local unset_words, set_words = {}, {}
  for k, v in pairs(env) do
    if v == false then
      unset_words[#unset_words + 1] = "-u " .. M.quote(k)
    else
      set_words[#set_words + 1] = M.quote(k .. "=" .. tostring(v))
    end
  end
  local env_words = table.move(set_words, 1, #set_words, #unset_words + 1, unset_words)

  local out, err = os.tmpname(), os.tmpname()
  local words = {}
  for i, a in ipairs(argv) do words[i] = M.quote(a) end
  local cmd = ("exec env %s %s %s </dev/null >%s 2>%s"):format(
    table.concat(env_words, " "), M.quote(opts.bin or M.bin), table.concat(words, " "),
    M.quote(out), M.quote(err))
  if opts.cwd then cmd = "cd " .. M.quote(opts.cwd) .. " && " .. cmd end

  local ok, how, n = os.execute(cmd)
  local code
  if how == "exit" then code = n else code = 128 + n end
  local result = { stdout = slurp(out) or "", stderr = slurp(err) or "", code = code, ok = ok }
  os.remove(out)
  os.remove(err)
  return result
end

-- The lines of a text, without their newlines.
function M.lines(text)
  local list = {}
  for line in text:gmatch("([^\n]*)\n") do list[#list + 1] = line end
  local rest = text:match("([^\n]+)$")
  if rest then list[#list + 1] = rest end
  return list
end

-- Removes every temp file and directory made since the last cleanup.
function M.cleanup()
  for _, path in ipairs(temp_files) do os.remove(path) end
  for _, dir in ipairs(temp_dirs) do os.execute("rm -rf " .. M.quote(dir)) end
  temp_files, temp_dirs = {}, {}
end

return M
