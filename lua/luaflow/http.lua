-- luaflow.http: HTTP requests on libcurl.
--
--   local http = require("luaflow").http
--   local r = http.post(url, {json = {text = "hi"}, timeout = 5})
--   r.status, r.ok, r.body, r.headers["content-type"], r:json(), r:raise_for_status()
--
-- Options: json= (encoded with luaflow.json; sets Content-Type:
-- application/json unless headers= has one), body= (a string; not with json=),
-- headers= ({["Name"] = "value"}), timeout= and connect_timeout= (seconds;
-- default 10 and 5), verify= (TLS verification, default true), ca_file= (a PEM
-- bundle to trust instead of the system's). Redirects are not followed.
--
-- Transport failures raise a message that names the scheme, host and port
-- only; URL paths (a Slack webhook's token), queries and credentials never
-- appear in an error. The work is done in C (src/http.c, src/lua_http.c); no
-- Lua runs while a transfer is in progress.
local core = require("luaflow.core")
local json = core.json

local M = {}

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, HEAD = true }
local OPTIONS = {
  method = true, url = true, json = true, body = true, headers = true,
  timeout = true, connect_timeout = true, verify = true, ca_file = true,
}

-- The C functions, looked up when first needed.
local function c_http()
  local c = core.http
  if not c then core.raise("luaflow.http: the C transport is not built into this luaflow") end
  return c
end

-- ---- responses ----

local Response = {}
Response.__index = Response
Response.__name = "luaflow.http.Response"

-- "scheme://host:port" of each response, kept out of the object itself.
local origin_of = setmetatable({}, { __mode = "k" })

function Response:json()
  local ok, value = pcall(json.decode, self.body)
  if not ok then
    core.raise(("HTTP %d response body is not valid JSON: %s"):format(self.status, tostring(value)))
  end
  return value
end

function Response:raise_for_status()
  if self.status >= 400 then
    core.raise(("HTTP %d from %s"):format(self.status, origin_of[self] or "the server"))
  end
  return self
end

function Response:__tostring()
  return ("<Response [%d]>"):format(self.status)
end

-- ---- requests ----

local function check_options(opts, what, allowed)
  if type(opts) ~= "table" then core.raise(what .. ": options must be a table") end
  local unknown = {}
  for k in pairs(opts) do
    if not allowed[k] then unknown[#unknown + 1] = ("'%s'"):format(tostring(k)) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    core.raise(("%s: unknown option%s %s"):format(what, #unknown > 1 and "s" or "", table.concat(unknown, ", ")))
  end
end

local function check_type(what, name, value, expected)
  if value ~= nil and type(value) ~= expected then
    core.raise(("%s: %s must be a %s, got a %s"):format(what, name, expected, type(value)))
  end
end

local function check_seconds(what, name, value)
  check_type(what, name, value, "number")
  if value ~= nil and not (value > 0 and value <= 1e8) then
    core.raise(("%s: %s must be a positive number of seconds"):format(what, name))
  end
end

-- Copies the headers table (the caller's is never changed) and checks it.
local function copy_headers(what, headers)
  local out = {}
  if headers == nil then return out end
  check_type(what, "headers", headers, "table")
  for k, v in pairs(headers) do
    if type(k) ~= "string" then core.raise(("%s: header names must be strings"):format(what)) end
    if type(v) ~= "string" and math.type(v) ~= "integer" then
      core.raise(("%s: header '%s' must be a string, got a %s"):format(what, k, type(v)))
    end
    out[k] = tostring(v)
  end
  return out
end

local function has_header(headers, name)
  name = name:lower()
  for k in pairs(headers) do
    if k:lower() == name then return true end
  end
  return false
end

local function request(what, opts)
  local method = opts.method == nil and "GET" or opts.method
  check_type(what, "method", method, "string")
  method = method:upper()
  if not METHODS[method] then
    core.raise(("%s: unsupported method '%s' (GET, POST, PUT, PATCH, DELETE or HEAD)"):format(what, opts.method))
  end
  if opts.url == nil then core.raise(what .. ": url is required") end
  check_type(what, "url", opts.url, "string")
  check_type(what, "body", opts.body, "string")
  if opts.json ~= nil and opts.body ~= nil then
    core.raise(what .. ": give json= or body=, not both")
  end
  check_seconds(what, "timeout", opts.timeout)
  check_seconds(what, "connect_timeout", opts.connect_timeout)
  check_type(what, "verify", opts.verify, "boolean")
  check_type(what, "ca_file", opts.ca_file, "string")

  local headers = copy_headers(what, opts.headers)
  local body = opts.body
  if opts.json ~= nil then
    local ok, text = pcall(json.encode, opts.json)
    if not ok then core.raise(("%s: json= cannot be encoded: %s"):format(what, tostring(text))) end
    body = text
    if not has_header(headers, "Content-Type") then headers["Content-Type"] = "application/json" end
  end

  local perform = c_http().perform
  local ok, status, rbody, rheaders, origin = pcall(perform, {
    method = method,
    url = opts.url,
    body = body,
    headers = headers,
    timeout = opts.timeout,
    connect_timeout = opts.connect_timeout,
    verify = opts.verify,
    ca_file = opts.ca_file,
  })
  if not ok then -- a bad argument the checks above let through
    core.raise(("%s: %s"):format(what, (tostring(status):gsub("^perform: ", ""))))
  end
  if status == nil then core.raise(rbody) end -- a transport failure, already safe to show
  local r = setmetatable({
    status = status,
    ok = status >= 200 and status < 300,
    body = rbody,
    headers = rheaders,
  }, Response)
  origin_of[r] = origin
  return r
end

-- http.request{method=, url=, json=, body=, headers=, timeout=, ...}
function M.request(opts)
  check_options(opts, "http.request", OPTIONS)
  return request("http.request", opts)
end

-- http.get(url, opts), http.post(url, opts), ...: the same options without
-- method= and url=.
local VERB_OPTIONS = {}
for k in pairs(OPTIONS) do
  if k ~= "method" and k ~= "url" then VERB_OPTIONS[k] = true end
end

for method in pairs(METHODS) do
  local name = method:lower()
  local what = "http." .. name
  M[name] = function(url, opts)
    if opts == nil then opts = {} end
    check_options(opts, what, VERB_OPTIONS)
    if type(url) ~= "string" then
      core.raise(("%s: the URL (argument 1) must be a string, got a %s"):format(what, type(url)))
    end
    local o = { method = method, url = url }
    for k, v in pairs(opts) do o[k] = v end
    return request(what, o)
  end
end

M.Response = Response
return M
