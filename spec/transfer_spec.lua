-- Function transfer (src/lua_transfer.c): a function crosses into another Lua
-- state with its upvalues, the way a task body will reach its worker. The
-- worker here is core.codec._worker(): a second lua_State with luaflow, in
-- which w:call(fn, ...) runs a fresh copy of fn and copies the results back.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local codec = core.codec
local signals = luaflow.signals

local THIS_FILE = debug.getinfo(1, "S").source:sub(2)

-- Calls fn in w and returns its results, failing the spec on an error.
local function call(w, fn, ...)
  local r = table.pack(w:call(fn, ...))
  assert(r[1], r[2])
  return table.unpack(r, 2, r.n)
end

local function call_error(w, fn, ...)
  local ok, err = w:call(fn, ...)
  assert.is_false(ok)
  return err
end

describe("function transfer", function()
  local w, dir, saved_path

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/transfer_fixture.lua", "w"))
    f:write([[
local M = { calls = 0 }
function M.greet(name) M.calls = M.calls + 1; return "hello " .. name end
M.nested = { deeper = { shout = function(s) return s:upper() .. "!" end } }
return M
]])
    f:close()
    saved_path = package.path
    package.path = dir .. "/?.lua;" .. package.path -- the worker copies the paths
    w = codec._worker()
  end)

  teardown(function()
    w:close()
    package.path = saved_path
    package.loaded.transfer_fixture = nil
    os.remove(dir .. "/transfer_fixture.lua")
    os.remove(dir)
  end)

  it("runs a function with its arguments and copies the results back", function()
    local a, b = call(w, function(x, y) return x + y, { x, y } end, 2, 3.5)
    assert.are.equal(5.5, a)
    assert.are.same({ 2, 3.5 }, b)
  end)

  it("copies upvalues by value: a counter in an upvalue is the worker's own", function()
    local n = 0
    local function bump()
      n = n + 1
      return n
    end
    assert.are.equal(1, call(w, bump))
    assert.are.equal(1, call(w, bump)) -- every transfer copies n as it is here
    assert.are.equal(0, n) -- and the engine's n never moved
    n = 10
    assert.are.equal(11, call(w, bump))
    assert.are.equal(10, n)
    local t = { hits = 0 }
    assert.are.equal(1, call(w, function() t.hits = t.hits + 1; return t.hits end))
    assert.are.equal(0, t.hits)
  end)

  it("binds standard library and luaflow functions by name to the worker's own", function()
    local fmt, concat, encode, json = string.format, table.concat, luaflow.json.encode, luaflow.json
    local out = io.stdout
    local s, c, e, null_is_own, file = call(w, function()
      return fmt("%05.1f", 3.14159), concat({ "a", "b" }, "-"), encode({ 1, json.null }),
             rawequal(json.null, require("luaflow").json.null), io.type(out)
    end)
    assert.are.equal("003.1", s)
    assert.are.equal("a-b", c)
    assert.are.equal("[1,null]", e)
    assert.is_true(null_is_own)
    assert.are.equal("file", file)
  end)

  it("binds the luaflow table itself, and signals raised there are signals here", function()
    local lf = luaflow
    local version, is_own = call(w, function()
      return lf.version, rawequal(lf, require("luaflow"))
    end)
    assert.are.equal(luaflow.version, version)
    assert.is_true(is_own)
    local err = call_error(w, function()
      local sig = lf.signals.FAIL("bad input", { result = { row = 3 } })
      sig.flag = true
      error(sig)
    end)
    assert.are.equal("FAIL", signals.kind(err))
    assert.are.equal('FAIL("bad input")', tostring(err))
    assert.are.equal(true, err.flag)
    assert.are.same({ row = 3 }, err.result)
  end)

  it("requires a user's module in the worker on first use and binds its functions", function()
    local fixture = require("transfer_fixture")
    local greet, shout = fixture.greet, fixture.nested.deeper.shout
    assert.is_false(call(w, function() return package.loaded.transfer_fixture ~= nil end))
    local g, s, calls_there = call(w, function()
      return greet("ada"), shout("hey"), require("transfer_fixture").calls
    end)
    assert.are.equal("hello ada", g)
    assert.are.equal("HEY!", s)
    assert.are.equal(1, calls_there) -- the worker's module counted its own call
    assert.are.equal(0, fixture.calls)
    assert.is_true(call(w, function() return package.loaded.transfer_fixture ~= nil end))
    -- the module table as an upvalue is the worker's module too
    assert.are.equal(2, call(w, function() fixture.greet("x"); return fixture.calls end))
  end)

  it("copies local helpers, recursive locals and mutually recursive locals", function()
    local function fact(k)
      if k <= 1 then return 1 end
      return k * fact(k - 1)
    end
    local is_even, is_odd
    function is_even(k) return k == 0 or is_odd(k - 1) end
    function is_odd(k) return k ~= 0 and is_even(k - 1) end
    local function helper(x) return fact(x) + 1 end
    local a, b, c = call(w, function(x) return helper(x), is_even(10), is_odd(7) end, 5)
    assert.are.equal(121, a)
    assert.is_true(b)
    assert.is_true(c)
  end)

  it("keeps upvalues shared between copied closures shared", function()
    local x = 0
    local function inc() x = x + 1 end
    local function get() return x end
    assert.are.equal(2, call(w, function() inc(); inc(); return get() end))
    assert.are.equal(0, x)
    -- the body's own assignment is seen by a helper sharing the variable
    local y = 1
    local function read_y() return y end
    assert.are.equal(42, call(w, function() y = 42; return read_y() end))
    assert.are.equal(1, y)
  end)

  it("copies functions kept in an upvalue table, and local classes with methods", function()
    local ops = { double = function(v) return v * 2 end, name = "ops" }
    local Acc = {}
    Acc.__index = Acc
    function Acc.new() return setmetatable({ total = 0 }, Acc) end
    function Acc:add(v) self.total = self.total + v; return self end
    local d, total = call(w, function() return ops.double(21), Acc.new():add(2):add(3).total end)
    assert.are.equal(42, d)
    assert.are.equal(5, total)
  end)

  it("uses the worker's globals, not the engine's", function()
    TRANSFER_SPEC_GLOBAL = "engine"
    local seen, has_print = call(w, function() return TRANSFER_SPEC_GLOBAL, type(print) end)
    TRANSFER_SPEC_GLOBAL = nil
    assert.is_nil(seen)
    assert.are.equal("function", has_print)
  end)

  it("keeps file:line in errors raised by a copied function", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local function boom() error("boom") end
    local err = call_error(w, function() boom() end)
    assert.are.equal(THIS_FILE .. ":" .. line .. ": boom", err)
  end)

  it("refuses a C function found in no module, naming the upvalue", function()
    local it = string.gmatch("a b", "%a")
    local err = call_error(w, function() return it() end)
    assert.are.equal("cannot copy a C function at upvalue 'it'", err)
    local function helper() return it() end
    err = call_error(w, function() return helper() end)
    assert.are.equal("cannot copy a C function at upvalue 'it' of upvalue 'helper'", err)
    local cfg = { db = { next_row = it } }
    err = call_error(w, function() return cfg end)
    assert.are.equal("cannot copy a C function at upvalue 'cfg'.db.next_row", err)
  end)

  it("refuses other values a body cannot have, naming them", function()
    local co = coroutine.create(print)
    assert.are.equal("cannot copy a thread at upvalue 'co'",
                     call_error(w, function() return co end))
    assert.are.equal("cannot copy a function at argument 2",
                     call_error(w, function() end, 1, print))
    assert.are.equal("cannot copy a function at result 1.f",
                     call_error(w, function() return { f = function() end } end))
  end)

  it("copies a function once however often it is reached", function()
    local function f() return 1 end
    local bytes = assert(codec.encode({ f, f, f }, { functions = true }))
    local ok, t = codec.decode(bytes, { functions = true, trusted = true })
    assert.is_true(ok)
    assert.is_true(rawequal(t[1], t[2]) and rawequal(t[2], t[3]))
    assert.are.equal(1, t[1]())
  end)

  it("gives module functions the same name in every state (canonical bytes agree)", function()
    local fmt, gsub = string.format, string.gsub
    local function body() return fmt, gsub, luaflow.json.encode end
    local opts = { functions = true, canonical = true, trusted = true }
    local here, there = codec._roundtrip(body, opts)
    assert.is_string(here, there)
    assert.are.equal(here, there)
  end)
end)
