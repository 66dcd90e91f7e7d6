-- The progress line (src/progress.c): its text, and on a real pseudo-terminal
-- (script -qec) driven by a fake source of counts: at most 10 redraws a second,
-- erased before each log line and printed line, drawn again after, erased at
-- the end; nothing at all when stderr is not a terminal.
local cli = require("cli")
local util = require("util")
require("luaflow")
local core = require("luaflow.core")
local has = util.has

describe("the progress line's text", function()
  local format = core.progress.format

  it("counts done of total, running, failed, and the time since the start", function()
    assert.are.equal("[37/120] 3 running, 1 failed, 0:07", format(37, 120, 3, 1, 7.9))
    assert.are.equal("[0/5] 0 running, 0:00", format(0, 5, 0, 0, 0))      -- no failure: not mentioned
    assert.are.equal("[12] 2 running, 1:05", format(12, 0, 2, 0, 65))      -- total not known
    assert.are.equal("[9/9] 0 running, 4 failed, 1:02:05", format(9, 9, 0, 4, 3725))
    assert.are.equal("[1/2] 0 running, 0:00", format(1, 2, 0, 0, -3))      -- a clock that went back
  end)

  it("is cut to the width it is given", function()
    assert.are.equal("[37/120] 3", format(37, 120, 3, 1, 7, 10))
    assert.are.equal("[37/120] 3 running, 1 failed, 0:07", format(37, 120, 3, 1, 7, 200))
  end)
end)

-- Plays bytes written to a terminal: carriage returns, line feeds, ESC[K
-- (erase to the end of the line) and colours. Returns the lines that
-- scrolled up, the line left at the bottom, and how many times the progress
-- line was drawn.
local function play(bytes)
  local lines, line, col, draws = {}, {}, 1, 0
  local i = 1
  while i <= #bytes do
    local c = bytes:sub(i, i)
    if c == "\r" then
      col = 1
      if bytes:find("^%[%d+/?%d*%] %d+ running", i + 1) then draws = draws + 1 end
      i = i + 1
    elseif c == "\n" then
      lines[#lines + 1] = table.concat(line)
      line, col = {}, 1
      i = i + 1
    elseif c == "\27" then
      local params, final = bytes:match("^%[([%d;]*)(%a)", i + 1)
      if final == "K" then for k = col, #line do line[k] = nil end end
      i = i + 2 + #(params or "") + (final and 1 or 0)
    else
      line[col] = c
      col = col + 1
      i = i + 1
    end
  end
  return lines, table.concat(line), draws
end

-- Sets counts thousands of times a second for about `seconds`, logs a line
-- and prints one now and then; stops the line and says how long it took.
local DRIVER = [[
local luaflow = require("luaflow")
require("luaflow")
local core = require("luaflow.core")
local t0 = luaflow.time.now()
print("STARTED " .. tostring(core.progress.start()))
local n = 0
for step = 1, %d do
  for _ = 1, 100 do
    n = n + 1
    core.progress.set(n, 1000000, 3, step // 10)
  end
  if step %% 10 == 5 then luaflow.log.info("log line " .. step) end
  if step %% 10 == 0 then print("printed " .. step) end
  os.execute("sleep 0.02")
end
core.progress.stop()
print(("ELAPSED %%.3f"):format(luaflow.time.now() - t0))
]]

describe("the progress line on a terminal", function()
  local has_script = os.execute("command -v script >/dev/null 2>&1")
  after_each(cli.cleanup)

  local function driver(steps)
    return cli.write_flow(DRIVER:format(steps))
  end

  -- Runs `luaflow run script` on a pseudo-terminal; all it wrote.
  local function on_tty(script)
    local env = "LUAFLOW_LOG_LEVEL=INFO LUAFLOW_STORE=off"
    local child_asan = os.getenv("LUAFLOW_CHILD_ASAN_OPTIONS")
    if child_asan then env = env .. " " .. cli.quote("ASAN_OPTIONS=" .. child_asan) end
    local inner = ("env %s %s run --no-input %s"):format(env, cli.quote(cli.bin), cli.quote(script))
    local out = cli.tmpname()
    os.execute(("env -u LD_PRELOAD -u ASAN_OPTIONS script -qec %s /dev/null </dev/null >%s 2>&1")
               :format(cli.quote(inner), cli.quote(out)))
    return (cli.read(out) or ""):gsub("\r\n", "\n")
  end

  it("is redrawn at most 10 times a second, under the log and printed lines, and erased at the end", function()
    if not has_script then return pending("script(1) (bsdutils) is not installed") end
    local text = on_tty(driver(60))
    local lines, bottom, draws = play(text)
    assert.are.equal("STARTED true", lines[1], text)
    local elapsed = tonumber(text:match("ELAPSED ([%d.]+)"))
    assert.is_truthy(elapsed, text)
    assert.is_true(draws >= 3, ("drawn %d times in %.2f s"):format(draws, elapsed))
    assert.is_true(draws <= 10 * elapsed + 1, ("drawn %d times in %.2f s"):format(draws, elapsed))
    -- what scrolled up is whole lines: no progress text is ever left in them
    local logs, prints = 0, 0
    for _, line in ipairs(lines) do
      assert.is_nil(line:find("running", 1, true), line)
      if line:find("log line", 1, true) then
        logs = logs + 1
        assert.matches("^%[%d%d%d%d%-%d%d%-%d%d [%d:.]+%+0000%] .*INFO.* %- luaflow | log line %d+$", line)
      end
      if line:find("printed", 1, true) then
        prints = prints + 1
        assert.matches("^printed %d+$", line)
      end
    end
    assert.are.equal(6, logs, text)
    assert.are.equal(6, prints, text)
    assert.are.equal("", bottom) -- erased at the end
    -- drawn again after a log line
    local after = text:match("log line 35[^\n]*\n(.*)")
    assert.is_truthy(after and after:find("\r%[%d+/1000000%] 3 running, 3 failed, 0:0%d"), text)
  end)

  it("is never written when stderr is not a terminal", function()
    local script = driver(5)
    local r = cli.run({ "run", script }, { env = { LUAFLOW_LOG_LEVEL = "INFO", LUAFLOW_STORE = "off" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(has(r.stdout, "STARTED false"), r.stdout)
    assert.is_nil(r.stderr:find("\r", 1, true))
    assert.is_nil(r.stderr:find("running", 1, true))
  end)

  it("stays off the terminal while a paused task's question waits", function()
    if not has_script then return pending("script(1) (bsdutils) is not installed") end
    local script = cli.write_flow([[
require("luaflow")
local core = require("luaflow.core")
core.progress.start()
core.progress.set(1, 2, 1, 0)
os.execute("sleep 0.3")
core.progress.hold(true)
io.stderr:write("QUESTION? ")
os.execute("sleep 0.4")
io.stderr:write("\n")
core.progress.hold(false)
os.execute("sleep 0.3")
core.progress.stop()
]])
    local text = on_tty(script)
    local question = assert(text:find("QUESTION? ", 1, true), text)
    local answered = text:find("\n", question, true)
    assert.is_nil(text:sub(question, answered):find("running", 1, true), text)
    assert.is_truthy(text:sub(1, question):find("[1/2] 1 running, 0:00", 1, true), text)
    assert.is_truthy(text:sub(answered):find("[1/2] 1 running, 0:00", 1, true), text)
  end)
end)
