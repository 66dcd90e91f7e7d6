-- The loopback receiver the notifier specs use (spec/support/receiver.c and
-- receiver.lua), checked with raw clients: bash's /dev/tcp for plain text,
-- `openssl s_client` for TLS. Every client runs under timeout(1).
local receiver = require("receiver")

local util = require("util")
local quote, slurp = util.quote, util.read


-- Runs `cmd` (a shell command reading `input` on stdin) under timeout(1);
-- returns what it printed and its exit code (124: timed out).
local function run_client(cmd, input, seconds)
  local inp, out = os.tmpname(), os.tmpname()
  local f = assert(io.open(inp, "wb"))
  f:write(input)
  f:close()
  local _, _, code = os.execute(("timeout %s %s <%s >%s 2>/dev/null"):format(
    seconds or 5, cmd, quote(inp), quote(out)))
  local text = slurp(out) or ""
  os.remove(inp)
  os.remove(out)
  return text, code
end

-- Sends `input` over plain TCP and returns everything the server answers
-- until it closes the connection.
local function tcp(port, input, seconds)
  local script = ("exec 3<>/dev/tcp/127.0.0.1/%d || exit 9; cat >&3; cat <&3"):format(port)
  return run_client("bash -c " .. quote(script), input, seconds)
end

-- The same through TLS, checking the server certificate against `ca`.
local function tls(port, ca, input, starttls)
  local cmd = ("openssl s_client -connect 127.0.0.1:%d -CAfile %s -verify_return_error"
    .. " -verify_ip 127.0.0.1 -quiet%s"):format(port, quote(ca), starttls and " -starttls smtp" or "")
  return run_client(cmd, input)
end

local function post(path, body, extra)
  return ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %d\r\n\r\n%s")
    :format(path, extra or "", #body, body)
end

-- An SMTP session as one pipelined script (the receiver reads line by line).
local function smtp_script(auth, extra)
  return table.concat({
    "EHLO spec.local", auth, "MAIL FROM:<flow@luaflow.test>",
    "RCPT TO:<ops@example.org>", "RCPT TO:<dev@example.org>", "DATA",
    "Subject: hello", "", "first line", "..starts with a dot", ".",
    extra or "NOOP", "QUIT", "",
  }, "\r\n")
end

describe("receiver", function()
  after_each(receiver.stop_all)

  describe("http", function()
    it("records method, path, lower-cased headers and the exact body, answering 200 ok", function()
      local r = receiver.start{proto = "http"}
      local body = '{"text":"a \\"quoted\\" line\\n","raw":"\t\1 é ✓"}'
      local answer = tcp(r.port, post("/hook?x=1", body,
        "Content-Type: application/json\r\nX-Dup: 1\r\nx-dup: 2\r\n"))
      assert.truthy(answer:match("^HTTP/1%.1 200 OK\r\n"))
      assert.truthy(answer:find("\r\nX-Receiver: luaflow\r\n", 1, true))
      assert.truthy(answer:find("\r\nConnection: close\r\n", 1, true))
      assert.are.equal("ok", answer:match("\r\n\r\n(.*)$"))

      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      assert.are.equal("POST", got[1].method)
      assert.are.equal("/hook?x=1", got[1].path)
      assert.are.equal("application/json", got[1].headers["content-type"])
      assert.are.equal("1, 2", got[1].headers["x-dup"])
      assert.are.equal(tostring(#body), got[1].headers["content-length"])
      assert.are.equal(body, got[1].body)
    end)

    it("decodes a chunked body and logs every request of a run", function()
      local r = receiver.start{proto = "http"}
      tcp(r.port, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: t\r\n\r\n")
      tcp(r.port, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
      local got = r:wait_for(2, 2)
      assert.are.equal(2, #got)
      assert.are.equal("hello, world", got[1].body)
      assert.are.equal("chunked", got[1].headers["transfer-encoding"])
      assert.are.equal("GET", got[2].method)
      assert.are.equal("", got[2].body)
    end)

    it("answers status:NNN with that status and body error, still recording", function()
      local r = receiver.start{proto = "http", mode = "status:500"}
      local answer = tcp(r.port, post("/x", "{}"))
      assert.truthy(answer:match("^HTTP/1%.1 500 Internal Server Error\r\n"))
      assert.are.equal("error", answer:match("\r\n\r\n(.*)$"))
      assert.are.equal(1, #r:wait_for(1, 2))
    end)

    it("hangs up without an answer (close), keeps quiet (never), answers late (slow)", function()
      local closing = receiver.start{proto = "http", mode = "close"}
      local answer, code = tcp(closing.port, post("/x", "a"))
      assert.are.equal("", answer)
      assert.are.equal(0, code)
      assert.are.equal("a", closing:wait_for(1, 2)[1].body)

      local never = receiver.start{proto = "http", mode = "never"}
      answer, code = tcp(never.port, post("/x", "b"), 1)
      assert.are.equal("", answer)
      assert.are.equal(124, code) -- still waiting when timeout(1) gave up
      assert.are.equal("b", never:wait_for(1, 2)[1].body)

      local slow = receiver.start{proto = "http", mode = "slow:0.3"}
      answer = tcp(slow.port, post("/x", "c"), 3)
      assert.truthy(answer:match("^HTTP/1%.1 200 OK\r\n"))
    end)
  end)

  describe("smtp", function()
    it("records a message: AUTH PLAIN, several recipients, dot-stuffing undone", function()
      local r = receiver.start{proto = "smtp"}
      local answer = tcp(r.port, smtp_script("AUTH PLAIN AHVzZXJAeC5vcmcAcyNjcjN0"))
      assert.truthy(answer:match("^220 "))
      assert.truthy(answer:find("\r\n250%-AUTH PLAIN LOGIN\r\n"))
      assert.falsy(answer:find("STARTTLS", 1, true))
      assert.truthy(answer:find("\r\n235 ", 1, true))
      assert.truthy(answer:find("\r\n250 2.0.0 Ok: queued\r\n", 1, true))
      assert.truthy(answer:find("221 2.0.0 Bye\r\n$"))

      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      assert.are.same({
        from = "flow@luaflow.test", to = {"ops@example.org", "dev@example.org"},
        username = "user@x.org", password = "s#cr3t", tls = false,
        data = "Subject: hello\r\n\r\nfirst line\r\n.starts with a dot\r\n",
      }, got[1])
    end)

    it("takes AUTH LOGIN through its prompts; RSET drops a transaction", function()
      local r = receiver.start{proto = "smtp"}
      local script = "EHLO x\r\nMAIL FROM:<dropped@x>\r\nRSET\r\n"
        .. smtp_script("AUTH LOGIN\r\ndTE=\r\ncDE=")
      local answer = tcp(r.port, script)
      assert.truthy(answer:find("\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ", 1, true))
      local got = r:wait_for(1, 2)
      assert.are.equal(1, #got)
      assert.are.equal("u1", got[1].username)
      assert.are.equal("p1", got[1].password)
      assert.are.equal("flow@luaflow.test", got[1].from)
    end)

    it("answers 550 to RCPT TO (reject) or hangs up at once (close), recording nothing", function()
      local rejecting = receiver.start{proto = "smtp", mode = "reject"}
      local answer = tcp(rejecting.port, smtp_script("NOOP"))
      assert.truthy(answer:find("\r\n550 5.7.1 rejected\r\n", 1, true))
      assert.falsy(answer:find("queued", 1, true))

      local closing = receiver.start{proto = "smtp", mode = "close"}
      answer = tcp(closing.port, smtp_script("NOOP"))
      assert.are.equal("", answer)

      assert.are.equal(0, #rejecting:requests())
      assert.are.equal(0, #closing:requests())
    end)
  end)

  describe("tls", function()
    it("serves HTTPS and SMTP STARTTLS with a certificate from make_cert", function()
      local cert, key = receiver.make_cert(nil)
      local dir = cert:match("^(.*)/")
      local https = receiver.start{proto = "http", tls = "implicit", cert = cert, key = key}
      assert.are.equal("https://127.0.0.1:" .. https.port .. "/hook", https:url("hook"))
      local answer = tls(https.port, cert, post("/hook", "secure"))
      assert.truthy(answer:match("^HTTP/1%.1 200 OK\r\n"))
      assert.are.equal("secure", https:wait_for(1, 2)[1].body)

      local smtp = receiver.start{proto = "smtp", tls = "starttls", cert = cert, key = key}
      assert.are.equal("smtp://127.0.0.1:" .. smtp.port, smtp:url())
      -- Before STARTTLS credentials are refused and STARTTLS is offered.
      local plain = tcp(smtp.port, "EHLO x\r\nAUTH PLAIN AHUAcA==\r\nQUIT\r\n")
      assert.truthy(plain:find("\r\n250%-STARTTLS\r\n"))
      assert.truthy(plain:find("\r\n530 ", 1, true))
      tls(smtp.port, cert, smtp_script("AUTH PLAIN AHUAcA=="), true)
      local got = smtp:wait_for(1, 2)
      assert.are.equal(1, #got)
      assert.is_true(got[1].tls)
      assert.are.equal("u", got[1].username)
      os.execute("rm -rf " .. quote(dir))
    end)

    it("makes its own certificate for SMTPS; stop() ends the program and removes its files", function()
      local r = receiver.start{proto = "smtp", tls = "implicit"}
      assert.are.equal("smtps://127.0.0.1:" .. r.port, r:url())
      assert.are.equal(r.cert, r.ca)
      tls(r.port, r.ca, smtp_script("AUTH PLAIN AHUAcA=="))
      assert.is_true(r:wait_for(1, 2)[1].tls)
      -- A client that does not trust the certificate is dropped; serving goes on.
      local _, code = run_client(("openssl s_client -connect 127.0.0.1:%d -verify_return_error -quiet")
        :format(r.port), "")
      assert.are_not.equal(0, code)
      tls(r.port, r.ca, smtp_script("AUTH PLAIN AHUAcA=="))
      assert.are.equal(2, #r:wait_for(2, 2))

      local dir, port = r.dir, r.port
      r:stop()
      r:stop()
      assert.is_nil(slurp(dir .. "/log.jsonl"))
      local answer, code2 = tcp(port, "")
      assert.are.equal("", answer)
      assert.are.equal(9, code2) -- connection refused: nothing listens any more
    end)
  end)
end)
