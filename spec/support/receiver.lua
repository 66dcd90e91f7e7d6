-- Loopback HTTP / SMTP servers for the specs (the program is
-- spec/support/receiver.c, built as $LUAFLOW_BUILD/receiver).
--
--   local receiver = require("receiver")
--   local r = receiver.start{proto = "http", mode = "status:500"}
--   ... point a notifier at r:url("/hook") ...
--   local got = r:wait_for(1, 5)      -- list of decoded JSON records
--   r:stop()
--
-- start{} options:
--   proto    "http" (default) | "smtp"
--   tls      "none" (default) | "starttls" (smtp) | "implicit" (https / smtps)
--   mode     "ok" (default) | "status:NNN" (http) | "slow:SECONDS" | "never"
--            | "close" | "reject" (smtp: RCPT TO answered 550)
--            | "header-line:N" | "repeat-header:N" | "fold-header:N" (http: a 200
--              with one N-byte header line, one header N times, or one header
--              folded over N lines)
--            | "auth-echo:plain" | "auth-echo:login" (smtp: offers that one
--              mechanism and answers with a 535 quoting the base64 it got)
--            | "fail-first:N" (http: the first N requests answered 503 with
--              Retry-After: 0, then 200; smtp: the first N RCPT TO get a 451)
--            | "retry-after:SECONDS" (http: always 503 with that Retry-After)
--   cert,key PEM files; with tls ~= "none" and no cert, make_cert() makes a
--            pair in the receiver's temp dir (r.cert doubles as the CA file)
--   timeout  seconds to wait for the program to report its port (default 5)
--
-- The program's stdin is the write end of an io.popen pipe: it exits when
-- r:stop() closes it, or when this Lua process ends, whatever happens.
local M = {}

local root = os.getenv("LUAFLOW_ROOT") or "."
M.bin = root .. "/" .. (os.getenv("LUAFLOW_BUILD") or "build") .. "/receiver"

local running = {}

local util = require("util")
local quote, slurp = util.quote, util.read


local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

local function mktemp_dir()
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir:sub(1, 1) == "/", "mktemp -d failed")
  return dir
end

-- A self-signed certificate for localhost and 127.0.0.1, valid one day.
-- Returns cert_path, key_path; the certificate is also the CA file to trust.
-- Without `dir` the files go in a fresh temp dir (the caller removes it).
function M.make_cert(dir)
  dir = dir or mktemp_dir()
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local cmd = ("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
    .. " -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s -out %s >%s 2>&1")
    :format(quote(key), quote(cert), quote(dir .. "/openssl.out"))
  if not os.execute(cmd) then
    error("openssl could not make a certificate: " .. (slurp(dir .. "/openssl.out") or ""))
  end
  os.remove(dir .. "/openssl.out")
  return cert, key
end

local Receiver = {}
Receiver.__index = Receiver

function M.start(opts)
  opts = opts or {}
  local self = setmetatable({
    proto = opts.proto or "http",
    tls = opts.tls or "none",
    mode = opts.mode or "ok",
    dir = mktemp_dir(),
  }, Receiver)
  self.log_path = self.dir .. "/log.jsonl"
  self.stdout_path = self.dir .. "/stdout"
  self.stderr_path = self.dir .. "/stderr"
  local status_path = self.dir .. "/status"

  local args = { "--proto", self.proto, "--tls", self.tls, "--mode", self.mode,
                 "--log", self.log_path }
  if self.tls ~= "none" then
    self.cert, self.key = opts.cert, opts.key
    if not self.cert then self.cert, self.key = M.make_cert(self.dir) end
    self.ca = self.cert
    table.move({ "--cert", self.cert, "--key", self.key }, 1, 4, #args + 1, args)
  end
  local words = {}
  for i, a in ipairs(args) do words[i] = quote(a) end
  -- The shell stays as the parent so it can note an early exit in `status`;
  -- the receiver inherits the pipe as its stdin.
  local cmd = ("%s %s >%s 2>%s; echo $? >%s"):format(quote(M.bin), table.concat(words, " "),
    quote(self.stdout_path), quote(self.stderr_path), quote(status_path))
  self.pipe = assert(io.popen(cmd, "w"))
  running[self] = true

  local tries = math.ceil((opts.timeout or 5) / 0.02)
  for _ = 1, tries do
    local port = (slurp(self.stdout_path) or ""):match("^PORT (%d+)\n")
    if port then
      self.port = tonumber(port)
      return self
    end
    if slurp(status_path) then break end
    sleep(0.02)
  end
  local err = slurp(self.stderr_path) or ""
  self:stop()
  error("receiver did not start (" .. M.bin .. "): " .. err, 2)
end

-- URL of this server: http(s)://127.0.0.1:PORT/path, or smtp(s)://127.0.0.1:PORT
-- (with a path only when one is given). STARTTLS servers use smtp://.
function Receiver:url(path)
  local scheme = self.proto
  if self.tls == "implicit" then scheme = scheme .. "s" end
  if path == nil then path = self.proto == "http" and "/" or "" end
  if path ~= "" and path:sub(1, 1) ~= "/" then path = "/" .. path end
  return ("%s://127.0.0.1:%d%s"):format(scheme, self.port, path)
end

-- The records so far (HTTP requests or accepted e-mails), decoded, in order.
-- A line still being written (no newline yet) is left for the next call.
function Receiver:requests()
  local json = require("luaflow").json
  local list = {}
  for line in (slurp(self.log_path) or ""):gmatch("([^\n]*)\n") do
    if line ~= "" then list[#list + 1] = json.decode(line) end
  end
  return list
end

-- Polls until there are at least n records or `seconds` (default 5) pass;
-- returns the records either way.
function Receiver:wait_for(n, seconds)
  local tries = math.ceil((seconds or 5) / 0.02)
  local list = self:requests()
  for _ = 1, tries do
    if #list >= n then break end
    sleep(0.02)
    list = self:requests()
  end
  return list
end

-- What the program wrote to stderr (TLS handshake failures and the like).
function Receiver:errors()
  return slurp(self.stderr_path) or ""
end

-- Closes the program's stdin (it exits, and the close waits for that) and
-- removes its temp files. Safe to call twice. Raises, after cleaning up, when
-- the program did not exit with status 0 (a crash, a sanitizer report).
function Receiver:stop()
  local problem
  if self.pipe then
    self.pipe:close()
    self.pipe = nil
    local status = tonumber(slurp(self.dir .. "/status") or "")
    if status ~= 0 and self.port then
      problem = ("receiver exited with status %s: %s"):format(status, self:errors())
    end
  end
  running[self] = nil
  if self.dir then
    os.execute("rm -rf " .. quote(self.dir))
    self.dir = nil
  end
  if problem then error(problem, 2) end
end

-- Stops every receiver still running (for after_each).
function M.stop_all()
  local list = {}
  for r in pairs(running) do list[#list + 1] = r end
  local first_error
  for _, r in ipairs(list) do
    local ok, err = pcall(r.stop, r)
    if not ok then first_error = first_error or err end
  end
  if first_error then error(first_error, 2) end
end

return M
