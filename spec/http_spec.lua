-- luaflow.http and the SMTP transport under it, against
-- real servers on 127.0.0.1 (spec/support/receiver.c).
local luaflow = require("luaflow")
local receiver = require("receiver")
local http = luaflow.http
local json = luaflow.json
local core = require("luaflow.core")

-- The header named `name` (any case) of a recorded request.
local function header(rec, name)
  name = name:lower()
  for k, v in pairs(rec.headers) do
    if k:lower() == name then return v end
  end
  return nil
end

-- Calls fn(...) expecting it to raise; returns the message.
local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function elapsed_since(t0)
  return luaflow.time.now() - t0
end

-- A port nothing listens on: bind a receiver, note its port, stop it.
local function closed_port()
  local r = receiver.start{ proto = "http" }
  local port = r.port
  r:stop()
  return port
end

local SECRET = "T0SECRETX/B0SECRETY/zzSecretToken42"

describe("luaflow.http", function()
  after_each(function() receiver.stop_all() end)

  describe("requests", function()
    it("posts json= as exactly the encoded JSON, with its content type", function()
      local r = receiver.start{ proto = "http" }
      local payload = { text = "hello", n = 3, list = json.array{}, nested = { ok = true } }
      local res = http.post(r:url("/hook"), { json = payload })
      assert.are.equal(200, res.status)
      local got = r:wait_for(1, 5)
      assert.are.equal(1, #got)
      assert.are.equal("POST", got[1].method)
      assert.are.equal("/hook", got[1].path)
      assert.are.equal(json.encode(payload), got[1].body)
      assert.are.equal("application/json", header(got[1], "content-type"))
      assert.are.equal(tostring(#got[1].body), header(got[1], "content-length"))
      assert.are.equal("luaflow/" .. luaflow.version, header(got[1], "user-agent"))
    end)

    it("keeps a Content-Type the caller gives with json=", function()
      local r = receiver.start{ proto = "http" }
      http.post(r:url("/"), { json = { a = 1 }, headers = { ["content-type"] = "application/vnd.x+json" } })
      local got = r:wait_for(1, 5)
      assert.are.equal("application/vnd.x+json", header(got[1], "content-type"))
      assert.are.equal('{"a":1}', got[1].body)
    end)

    it("sends body= and headers= as given", function()
      local r = receiver.start{ proto = "http" }
      local headers = { ["X-Token"] = "abc 123", Accept = "text/plain", ["X-Empty"] = "" }
      http.post(r:url("/raw"), { body = "a=1&b=2\nline two", headers = headers })
      local got = r:wait_for(1, 5)
      assert.are.equal("a=1&b=2\nline two", got[1].body)
      assert.are.equal("abc 123", header(got[1], "x-token"))
      assert.are.equal("text/plain", header(got[1], "accept"))
      assert.are.equal("", header(got[1], "x-empty"))
      -- no made-up form-urlencoded content type, and the caller's table is untouched
      assert.is_nil(header(got[1], "content-type"))
      assert.are.same({ ["X-Token"] = "abc 123", Accept = "text/plain", ["X-Empty"] = "" }, headers)
    end)

    it("gets, puts, patches and deletes", function()
      local r = receiver.start{ proto = "http" }
      assert.are.equal(200, http.get(r:url("/a?x=1")).status)
      assert.are.equal(200, http.put(r:url("/b"), { body = "put" }).status)
      assert.are.equal(200, http.patch(r:url("/c"), { json = { p = 1 } }).status)
      assert.are.equal(200, http.delete(r:url("/d")).status)
      assert.are.equal(200, http.request{ method = "get", url = r:url("/e") }.status)
      local got = r:wait_for(5, 5)
      local seen = {}
      for i, rec in ipairs(got) do seen[i] = rec.method .. " " .. rec.path .. " " .. rec.body end
      assert.are.same({ "GET /a?x=1 ", "PUT /b put", 'PATCH /c {"p":1}', "DELETE /d ", "GET /e " }, seen)
    end)

    it("returns the status, body and headers of the response", function()
      local r = receiver.start{ proto = "http" }
      local res = http.get(r:url("/"))
      assert.are.equal(200, res.status)
      assert.is_true(res.ok)
      assert.are.equal("ok", res.body)
      assert.are.equal("text/plain", res.headers["content-type"])
      assert.are.equal("luaflow", res.headers["x-receiver"])
      assert.are.equal("2", res.headers["content-length"])
      assert.are.equal("<Response [200]>", tostring(res))
    end)

    it("answers HEAD with the headers and no body", function()
      local r = receiver.start{ proto = "http" }
      local res = http.head(r:url("/"))
      assert.are.equal(200, res.status)
      assert.are.equal("", res.body)
      assert.are.equal("luaflow", res.headers["x-receiver"])
    end)
  end)

  describe("responses", function()
    it(":json() decodes the body with luaflow.json", function()
      local res = setmetatable({ status = 200, ok = true, body = '{"n": 3, "xs": []}', headers = {} },
        http.Response)
      local v = res:json()
      assert.are.equal(3, v.n)
      assert.are.equal("integer", math.type(v.n))
      assert.are.same({}, v.xs)
    end)

    it(":json() on a body that is not JSON raises naming the status", function()
      local r = receiver.start{ proto = "http", mode = "status:502" }
      local res = http.get(r:url("/"))
      local err = raises(res.json, res)
      assert.matches("HTTP 502 response body is not valid JSON", err, 1, true)
    end)

    it("a 500 is a response, and raise_for_status raises with host and port but no path", function()
      local r = receiver.start{ proto = "http", mode = "status:500" }
      local res = http.post(r:url("/services/" .. SECRET), { json = { a = 1 } })
      assert.are.equal(500, res.status)
      assert.is_false(res.ok)
      local err = raises(res.raise_for_status, res)
      assert.matches(("HTTP 500 from http://127.0.0.1:%d"):format(r.port), err, 1, true)
      assert.is_nil(err:find("services", 1, true))
      assert.is_nil(err:find("SECRET", 1, true))
      -- the error points at the caller's line, not at luaflow
      assert.matches("http_spec.lua:%d+:", err)
    end)

    it("raise_for_status returns the response when it succeeded", function()
      local r = receiver.start{ proto = "http" }
      local res = http.get(r:url("/"))
      assert.are.equal(res, res:raise_for_status())
    end)
  end)

  describe("transport failures", function()
    it("a server that never answers fails within the timeout", function()
      local r = receiver.start{ proto = "http", mode = "never" }
      local t0 = luaflow.time.now()
      local err = raises(http.post, r:url("/hook/" .. SECRET), { json = { a = 1 }, timeout = 0.5 })
      local took = elapsed_since(t0)
      assert.is_true(took < 2, "took " .. took .. " s")
      assert.is_true(took >= 0.4, "took " .. took .. " s")
      assert.matches(("POST to http://127.0.0.1:%d failed: Timeout was reached"):format(r.port), err, 1, true)
      assert.is_nil(err:find("SECRET", 1, true))
    end)

    it("a slow server past connect_timeout is still bounded by timeout", function()
      local r = receiver.start{ proto = "http", mode = "slow:3" }
      local t0 = luaflow.time.now()
      raises(http.get, r:url("/"), { timeout = 0.3, connect_timeout = 0.2 })
      assert.is_true(elapsed_since(t0) < 2)
    end)

    it("a connection closed without an answer raises", function()
      local r = receiver.start{ proto = "http", mode = "close" }
      local err = raises(http.post, r:url("/hook/" .. SECRET), { body = "x" })
      assert.matches(("POST to http://127.0.0.1:%d failed"):format(r.port), err, 1, true)
      assert.is_nil(err:find("SECRET", 1, true))
    end)

    it("connecting to a closed port raises naming 127.0.0.1 and the port", function()
      local port = closed_port()
      local err = raises(http.get, ("http://127.0.0.1:%d/x/%s"):format(port, SECRET), { timeout = 2 })
      assert.matches(("GET to http://127.0.0.1:%d failed"):format(port), err, 1, true)
      assert.is_nil(err:find("SECRET", 1, true))
      assert.matches("http_spec.lua:%d+:", err)
    end)

    it("never shows a URL's path, query or credentials in any error", function()
      local port = closed_port()
      local urls = {
        ("http://127.0.0.1:%d/services/%s"):format(port, SECRET),
        ("http://127.0.0.1:%d/hook?token=%s"):format(port, SECRET),
        ("http://user:%s@127.0.0.1:%d/"):format("pw" .. SECRET:gsub("/", ""), port),
        ("http://no-such-host.invalid/services/%s"):format(SECRET),
        ("gopher://127.0.0.1/%s"):format(SECRET),
        ("http://127.0.0.1:%d/#%s"):format(port, SECRET),
      }
      local token = "zzSecretToken42"
      for _, url in ipairs(urls) do
        local err = raises(http.get, url, { timeout = 2 })
        assert.is_nil(err:find(token, 1, true), err)
        assert.is_nil(err:find("SECRET", 1, true), err)
        local ok, cerr = core.http.perform{ url = url, timeout = 2 }
        assert.is_nil(ok)
        assert.is_nil(cerr:find(token, 1, true), cerr)
      end
    end)

    it("an invalid URL raises without echoing it", function()
      for _, url in ipairs({ "not a url " .. SECRET, "http://[::1/" .. SECRET, "://" .. SECRET, "" }) do
        local err = raises(http.post, url, { json = {} })
        assert.matches("POST failed: invalid URL", err, 1, true)
        assert.is_nil(err:find("SECRET", 1, true), err)
      end
    end)
  end)

  describe("options", function()
    it("rejects unknown options, naming them", function()
      local err = raises(http.post, "http://127.0.0.1:1/", { jsn = {}, timout = 1 })
      assert.matches("http.post: unknown options 'jsn', 'timout'", err, 1, true)
      err = raises(http.request, { url = "http://127.0.0.1:1/", colour = "red" })
      assert.matches("http.request: unknown option 'colour'", err, 1, true)
      err = raises(http.get, "http://127.0.0.1:1/", { url = "http://x/" })
      assert.matches("unknown option 'url'", err, 1, true)
    end)

    it("refuses json= and body= together", function()
      local err = raises(http.post, "http://127.0.0.1:1/", { json = {}, body = "x" })
      assert.matches("json= or body=, not both", err, 1, true)
    end)

    it("checks method, timeout, headers and verify", function()
      assert.matches("unsupported method 'BREW'", raises(http.request, { method = "BREW", url = "http://x/" }))
      assert.matches("timeout must be a positive number",
        raises(http.get, "http://127.0.0.1:1/", { timeout = 0 }), 1, true)
      assert.matches("verify must be a boolean",
        raises(http.get, "http://127.0.0.1:1/", { verify = "no" }), 1, true)
      assert.matches("header 'X' must be a string",
        raises(http.get, "http://127.0.0.1:1/", { headers = { X = true } }), 1, true)
      -- a header value cannot smuggle a second header
      local err = raises(http.get, "http://127.0.0.1:1/", { headers = { X = "a\r\nEvil: 1" } })
      assert.matches("http.get: header 'X' holds a line break", err, 1, true)
      assert.is_nil(err:find("Evil", 1, true))
      assert.matches("url is required", raises(http.request, { method = "GET" }), 1, true)
    end)
  end)

  describe("TLS", function()
    local dir, cert, key
    setup(function()
      local p = assert(io.popen("mktemp -d"))
      dir = p:read("l")
      p:close()
      cert, key = receiver.make_cert(dir)
    end)
    teardown(function()
      if dir then os.execute("rm -rf '" .. dir .. "'") end
    end)

    it("fails verification of a self-signed certificate by default", function()
      local r = receiver.start{ proto = "http", tls = "implicit", cert = cert, key = key }
      local err = raises(http.get, r:url("/x/" .. SECRET))
      assert.matches(("GET to https://127.0.0.1:%d failed"):format(r.port), err, 1, true)
      assert.matches("certificate", err, 1, true)
      assert.is_nil(err:find("SECRET", 1, true))
    end)

    it("succeeds with ca_file = the certificate", function()
      local r = receiver.start{ proto = "http", tls = "implicit", cert = cert, key = key }
      local res = http.post(r:url("/hook"), { json = { ok = true }, ca_file = cert })
      assert.are.equal(200, res.status)
      assert.are.equal('{"ok":true}', r:wait_for(1, 5)[1].body)
    end)

    it("succeeds with verify = false", function()
      local r = receiver.start{ proto = "http", tls = "implicit", cert = cert, key = key }
      assert.are.equal(200, http.get(r:url("/"), { verify = false }).status)
    end)
  end)

  describe("response headers", function()
    it("a header line over libcurl's limit is 'response header too large', not 'Out of memory'", function()
      local r = receiver.start{ proto = "http", mode = "header-line:200000" }
      local err = raises(http.get, r:url("/x/" .. SECRET), { timeout = 5 })
      assert.matches(("GET to http://127.0.0.1:%d failed: response header too large (a header line over 102400 bytes)")
                     :format(r.port), err, 1, true)
      assert.is_nil(err:find("memory", 1, true))
      assert.is_nil(err:find("SECRET", 1, true))
    end)

    it("more header bytes than libcurl takes in all is 'response header too large' too", function()
      local r = receiver.start{ proto = "http", mode = "repeat-header:60000" }
      local err = raises(http.get, r:url("/"), { timeout = 5 })
      assert.matches(("GET to http://127.0.0.1:%d failed: response header too large"):format(r.port), err, 1, true)
    end)

    it("a header line just under the limit is kept whole", function()
      local r = receiver.start{ proto = "http", mode = "header-line:100000" }
      local res = http.get(r:url("/"), { timeout = 5 })
      assert.are.equal(("a"):rep(100000), res.headers["x-big"])
    end)

    it("a header repeated 20000 times is joined with ', ', in order, within the request's timeout", function()
      local r = receiver.start{ proto = "http", mode = "repeat-header:20000" }
      local res = http.get(r:url("/"), { timeout = 5 })
      assert.are.equal(200, res.status)
      assert.are.equal(("v, "):rep(19999) .. "v", res.headers["x-rep"])
      assert.are.equal("luaflow", res.headers["x-receiver"])
      assert.are.equal("ok", res.body)
    end)

    it("a header folded over 20000 lines is joined with spaces, within the request's timeout", function()
      local r = receiver.start{ proto = "http", mode = "fold-header:20000" }
      local res = http.get(r:url("/"), { timeout = 5 })
      assert.are.equal("start" .. (" more"):rep(20000), res.headers["x-fold"])
      assert.are.equal("luaflow", res.headers["x-receiver"])
    end)
  end)
end)

describe("core.http.smtp_send", function()
  local smtp = core.http.smtp_send
  local dir, cert, key
  setup(function()
    local p = assert(io.popen("mktemp -d"))
    dir = p:read("l")
    p:close()
    cert, key = receiver.make_cert(dir)
  end)
  teardown(function()
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)
  after_each(function() receiver.stop_all() end)

  local MESSAGE = table.concat({
    "From: flows@example.com",
    "To: ops@example.com",
    "Subject: luaflow: t is now Failed",
    "",
    "line one",
    ".a line starting with a dot",
    "",
  }, "\r\n")

  it("sends over plain SMTP with credentials", function()
    local r = receiver.start{ proto = "smtp" }
    assert.is_true(smtp{ url = r:url(), username = "me", password = "pw-secret-1",
      from = "flows@example.com", to = { "ops@example.com", "dev@example.com" }, message = MESSAGE })
    local got = r:wait_for(1, 5)[1]
    assert.are.same({ "ops@example.com", "dev@example.com" }, got.to)
    assert.matches("flows@example.com", got.from, 1, true)
    assert.are.equal("me", got.username)
    assert.are.equal("pw-secret-1", got.password)
    assert.is_false(got.tls)
    assert.matches("\r\n.a line starting with a dot\r\n", got.data, 1, true)
    assert.matches("Subject: luaflow: t is now Failed\r\n", got.data, 1, true)
  end)

  it("upgrades with STARTTLS and verifies the certificate", function()
    local r = receiver.start{ proto = "smtp", tls = "starttls", cert = cert, key = key }
    local ok, err = smtp{ url = r:url(), starttls = true, from = "a@example.com", to = "b@example.com",
      message = MESSAGE }
    assert.is_nil(ok)
    assert.matches(("SMTP via smtp://127.0.0.1:%d failed"):format(r.port), err, 1, true)
    assert.is_true(smtp{ url = r:url(), starttls = true, ca_file = cert, from = "a@example.com",
      to = "b@example.com", message = MESSAGE })
    local got = r:wait_for(1, 5)
    assert.are.equal(1, #got)
    assert.is_true(got[1].tls)
  end)

  it("speaks SMTPS", function()
    local r = receiver.start{ proto = "smtp", tls = "implicit", cert = cert, key = key }
    assert.is_true(smtp{ url = r:url(), ca_file = cert, username = "u", password = "p",
      from = "a@example.com", to = { "b@example.com" }, message = MESSAGE })
    assert.is_true(r:wait_for(1, 5)[1].tls)
  end)

  it("reports a rejection with host, port and the server's reply, and no password", function()
    local r = receiver.start{ proto = "smtp", mode = "reject" }
    local ok, err = smtp{ url = r:url(), username = "me", password = "pw-secret-1",
      from = "a@example.com", to = { "b@example.com" }, message = MESSAGE }
    assert.is_nil(ok)
    assert.matches(("SMTP via smtp://127.0.0.1:%d failed"):format(r.port), err, 1, true)
    assert.matches("550", err, 1, true)
    assert.is_nil(err:find("pw-secret-1", 1, true))
  end)

  it("fails within its timeout against a silent server", function()
    local r = receiver.start{ proto = "smtp", mode = "never" }
    local t0 = luaflow.time.now()
    local ok, err = smtp{ url = r:url(), from = "a@example.com", to = "b@example.com", message = MESSAGE,
      timeout = 0.5 }
    assert.is_nil(ok)
    assert.is_true(elapsed_since(t0) < 2)
    assert.matches("127.0.0.1:" .. r.port, err, 1, true)
  end)

  it("never shows the URL's credentials", function()
    local port = closed_port()
    local ok, err = smtp{ url = ("smtp://me:pw%%2Dsecret@127.0.0.1:%d"):format(port), from = "a@example.com",
      to = "b@example.com", message = MESSAGE }
    assert.is_nil(ok)
    assert.matches(("SMTP via smtp://127.0.0.1:%d failed"):format(port), err, 1, true)
    assert.is_nil(err:find("secret", 1, true))
  end)

  it("checks its arguments", function()
    assert.has_error(function() smtp{ url = "smtp://127.0.0.1:1", from = "a@x", to = {}, message = "" } end)
    assert.has_error(function() smtp{ url = "smtp://127.0.0.1:1", from = "a@x", to = "b@x" } end)
    assert.has_error(function() smtp{ url = "smtp://127.0.0.1:1", from = "a@x\r\nRCPT TO:<c@x>", to = "b@x",
      message = "" } end)
    assert.has_error(function() smtp{ url = "smtp://127.0.0.1:1", form = "a@x", to = "b@x", message = "" } end)
  end)
end)
