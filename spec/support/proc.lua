-- Runs `luaflow` in the background for the specs that signal it.
--
--   local proc = require("proc")
--   local h = proc.spawn(source)            -- `luaflow run --no-input FILE --json JSON`
--   proc.wait_for(h, "ready\n")              -- a line the script prints when it is ready
--   local code = proc.signal(h, "INT")       -- sends it; the exit code (nil: it hung)
--   proc.stdout(h), proc.stderr(h), proc.json_runs(h)
--
-- Every run gets XDG_STATE_HOME in its own temp dir (cli.cleanup removes it).
local cli = require("cli")
local util = require("util")
local luaflow = require("luaflow")

local M = {}

-- Sanitizer builds run slower: waits scale with this.
M.SLACK = ((os.getenv("LUAFLOW_SANITIZE") or "") ~= "" or (os.getenv("LUAFLOW_TSAN") or "") ~= "") and 3 or 1

local function now() return luaflow.time.now():timestamp() end

-- Polls `ready()` every 20 ms for at most `limit` seconds; returns its last value.
function M.wait_until(ready, limit)
  local deadline = now() + limit
  local v = ready()
  while not v and now() < deadline do
    os.execute("sleep 0.02")
    v = ready()
  end
  return v
end

-- `env NAME=VALUE...` words: XDG_STATE_HOME in dir, the sanitizer options, extra.
local function env_words(dir, extra)
  local env = { XDG_STATE_HOME = dir }
  local child_asan = os.getenv("LUAFLOW_CHILD_ASAN_OPTIONS")
  if child_asan then env.ASAN_OPTIONS = child_asan end
  for k, v in pairs(extra or {}) do env[k] = v end
  local words = { "env" }
  for k, v in pairs(env) do words[#words + 1] = cli.quote(k .. "=" .. tostring(v)) end
  return table.concat(words, " ")
end

-- The command line: the binary and args, "FILE" standing for path.
local function command(path, args)
  local words = { cli.quote(cli.bin) }
  for _, a in ipairs(args) do words[#words + 1] = cli.quote(a == "FILE" and path or a) end
  return table.concat(words, " ")
end

-- Starts luaflow on a script (`source`) in the background. opts:
--   args  the arguments ("FILE" stands for the script; default
--         {"run", "--no-input", "FILE", "--json", JSON})
--   env   extra environment
-- Returns a handle: pid, dir, flow, json and the files the run writes.
function M.spawn(source, opts)
  opts = opts or {}
  local dir = cli.tmpdir()
  local h = { dir = dir, flow = cli.write_flow(source, dir), out = dir .. "/out",
              err = dir .. "/err", json = dir .. "/runs.json", pidfile = dir .. "/pid",
              codefile = dir .. "/code" }
  local args = opts.args or { "run", "--no-input", "FILE", "--json", h.json }
  local run = ("%s %s </dev/null >%s 2>%s"):format(env_words(dir, opts.env),
    command(h.flow, args), cli.quote(h.out), cli.quote(h.err))
  -- the subshell records the pid, waits for the run and records its exit code
  local cmd = ("(%s & echo $! >%s; wait $!; echo $? >%s.tmp; mv %s.tmp %s) >/dev/null 2>&1 &")
              :format(run, cli.quote(h.pidfile), cli.quote(h.codefile),
                      cli.quote(h.codefile), cli.quote(h.codefile))
  assert(os.execute(cmd))
  h.pid = tonumber(M.wait_until(function()
    local text = util.read(h.pidfile)
    return text and text:match("^%d+")
  end, 5))
  assert(h.pid, "the background run did not start")
  return h
end

function M.stdout(h) return util.read(h.out) or "" end
function M.stderr(h) return util.read(h.err) or "" end

-- What the run printed, for assertion messages.
function M.detail(h)
  return "stdout:\n" .. M.stdout(h) .. "\nstderr:\n" .. M.stderr(h)
end

function M.kill(h)
  os.execute("kill -KILL " .. h.pid .. " 2>/dev/null")
end

-- Waits until stdout holds `text`; raises (killing the run) when it never does.
function M.wait_for(h, text, limit)
  local seen = M.wait_until(function() return util.has(M.stdout(h), text) end,
                            (limit or 5) * M.SLACK)
  if not seen then
    M.kill(h)
    error(("the run never printed %q\n%s"):format(text, M.detail(h)))
  end
end

-- Waits (bounded) for the run to exit; returns its code and how long it took
-- from the call, or nil when it hung (it is then killed).
function M.wait_exit(h, limit)
  local t0 = now()
  local text = M.wait_until(function() return util.read(h.codefile) end,
                            (limit or 8) * M.SLACK)
  if not text then
    M.kill(h)
    return nil
  end
  return tonumber(text:match("%d+")), now() - t0
end

-- Sends SIGsig to the run; returns its exit code and the seconds it took to exit.
function M.signal(h, sig, limit)
  assert(os.execute(("kill -%s %d"):format(sig, h.pid)))
  return M.wait_exit(h, limit)
end

-- The runs of the --json file, decoded (a line that does not decode is an error).
function M.json_runs(h)
  local runs = {}
  for line in (util.read(h.json) or ""):gmatch("[^\n]+") do
    runs[#runs + 1] = luaflow.json.decode(line)
  end
  return runs
end

-- Runs luaflow (args as for spawn, "FILE" standing for path) and sends it
-- SIGsig as soon as it catches SIGINT and SIGTERM (its /proc status says
-- so), or `delay` seconds after the start when a delay is given, waiting
-- for nothing else. Returns "exit N" or "signal N": how the process ended
-- (a default signal action shows as "signal N", never as an exit code).
local EARLY = [[
my ($sig, $delay, @cmd) = @ARGV;
my $pid = fork() // die "fork: $!";
if ($pid == 0) { open(STDIN, "<", "/dev/null"); exec(@cmd) or exit 127; }
if ($delay > 0) { select(undef, undef, undef, $delay); }
else {
  for (1 .. 20000) {   # SigCgt holds bits 2 (INT) and 15 (TERM), in luaflow itself
    open(my $f, "<", "/proc/$pid/status") or last;
    my ($name, $cgt) = ("", "0");
    while (<$f>) { $name = $1 if /^Name:\s*(\S+)/; $cgt = $1 if /^SigCgt:\s*([0-9a-f]+)/; }
    close($f);
    last if $name eq "luaflow" && (hex(substr($cgt, -4)) & 0x4002) == 0x4002;
    select(undef, undef, undef, 0.0002);
  }
}
kill($sig, $pid);
waitpid($pid, 0);
print(($? & 127) ? "signal " . ($? & 127) : "exit " . ($? >> 8));
]]

function M.signal_early(path, args, sig, delay)
  local cmd = ("perl -e %s %s %s %s %s 2>/dev/null"):format(cli.quote(EARLY), sig, delay or 0,
    env_words(cli.tmpdir()), command(path, args))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

return M
