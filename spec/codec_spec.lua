-- The value codec (src/codec.c): what crosses between Lua states, bit for
-- bit, what fails and where, the canonical form, and bytes from anywhere.
local luaflow = require("luaflow")
local core = require("luaflow.core")
local codec = core.codec
local json, S, signals = luaflow.json, luaflow.states, luaflow.signals

local ID = "\0id" -- every generated table carries its number under this key

local function bits(x)
  return string.pack("<d", x)
end

local function float_from_bits(hi, lo)
  return (string.unpack("<d", string.pack("<I4I4", lo, hi)))
end

local SPECIAL_FLOATS = {
  0.0, -0.0, 1 / 0, -1 / 0, 0.1, -2.5, 5e-324, 2 ^ 53, -2 ^ 63, 2 ^ 63, 1e308,
  0 / 0, -(0 / 0),
  float_from_bits(0x7ff00000, 1),          -- a signalling NaN
  float_from_bits(0x7ff80000, 0xdeadbeef), -- a quiet NaN with a payload
  float_from_bits(0xfff12345, 0x6789abcd), -- negative, payload
}
local SPECIAL_INTS = { 0, 1, -1, 127, 128, -129, 2 ^ 31 | 0, math.maxinteger, math.mininteger }

-- {=== A seeded generator of values ===}

local function gen_string()
  local n = math.random(0, 3) == 0 and math.random(100, 400) or math.random(0, 12)
  local b = {}
  for i = 1, n do b[i] = string.char(math.random(0, 255)) end
  return table.concat(b)
end

local function gen_number()
  local r = math.random(1, 4)
  if r == 1 then return SPECIAL_FLOATS[math.random(#SPECIAL_FLOATS)] end
  if r == 2 then return SPECIAL_INTS[math.random(#SPECIAL_INTS)] end
  if r == 3 then return math.random(-1000000, 1000000) end
  return (math.random() - 0.5) * 10 ^ math.random(-10, 10)
end

local gen_value

-- g: {pool = tables made so far, n = ids, table_keys = may tables be keys}
local function new_table(g)
  local t = {}
  g.n = g.n + 1
  t[ID] = g.n
  g.pool[#g.pool + 1] = t
  return t
end

local function gen_key(g, depth)
  local r = math.random(1, 10)
  if r <= 3 then return math.random(1, 8) end
  if r <= 6 then return gen_string() end
  if r == 7 then
    local x = gen_number()
    if x ~= x then x = 1.5 end
    return x
  end
  if r == 8 then return math.random(0, 1) == 1 end
  if r == 9 then return json.null end
  if g.table_keys then
    return gen_value(g, depth + 1, "table")
  end
  return gen_string()
end

local function gen_table(g, depth)
  local r = math.random(1, 12)
  if r == 1 and #g.pool > 0 then return g.pool[math.random(#g.pool)] end -- shared or cyclic
  local t
  if r == 2 then
    t = signals.FAIL(gen_string())
    g.n = g.n + 1
    t[ID] = g.n
    t.flag, t.count = true, math.random(1, 5)
    g.pool[#g.pool + 1] = t
  else
    t = new_table(g)
  end
  if r == 3 then json.array(t) elseif r == 4 then json.object(t) end
  if r == 5 then -- a metatable made of data only crosses by value
    local mt = new_table(g)
    mt.__jsontype = "array"
    mt.extra = gen_string()
    setmetatable(t, mt)
  end
  if depth >= 4 then return t end
  local n = math.random(0, 6)
  if math.random(1, 8) == 1 then n = math.random(20, 60) end
  if math.random(1, 2) == 1 then -- an array, maybe with holes
    for i = 1, n do
      if math.random(1, 10) > 1 then t[i] = gen_value(g, depth + 1) end
    end
  end
  for _ = 1, math.random(0, 4) do
    local k = gen_key(g, depth)
    if k ~= nil then t[k] = gen_value(g, depth + 1) end
  end
  return t
end

gen_value = function(g, depth, want)
  local r = want == "table" and 10 or math.random(1, 14)
  if r <= 1 then return math.random(0, 1) == 1 end
  if r <= 4 then return gen_number() end
  if r <= 6 then return gen_string() end
  if r == 7 then return json.null end
  if r == 8 then return luaflow.time.from_timestamp(math.random(0, 2 ^ 31) + 0.25) end
  if r == 9 and depth < 4 then
    return S.Success{ message = gen_string():gsub("%z", ""), result = gen_value(g, depth + 1) }
  end
  if r == 10 or r >= 11 then return gen_table(g, depth) end
  return gen_string()
end

local function generate(seed, table_keys)
  math.randomseed(seed)
  local g = { pool = {}, n = 0, table_keys = table_keys }
  return gen_table(g, 0)
end

-- {=== Equality that sees sharing, bits and classes ===}

-- b is a copy of a: same structure, the same table for the same table (a
-- bijection), floats bit for bit, integers still integers. Both live in this
-- state, so marks and signal classes must be the very same metatables.
local function same(a, b, seen, where)
  where = where or "value"
  local ta = type(a)
  if ta ~= type(b) then return false, where .. ": " .. ta .. " vs " .. type(b) end
  if ta == "number" then
    if math.type(a) ~= math.type(b) then return false, where .. ": number subtype" end
    if bits(a) ~= bits(b) and not (math.type(a) == "integer" and a == b) then
      return false, where .. ": " .. tostring(a) .. " vs " .. tostring(b)
    end
    return true
  end
  if ta ~= "table" and ta ~= "userdata" then
    return a == b, where .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  if seen[a] ~= nil then return rawequal(seen[a], b), where .. ": sharing not kept" end
  seen[a] = b
  if ta == "userdata" then
    if rawequal(a, json.null) then return rawequal(b, json.null), where .. ": null" end
    if core.is_state(a) then
      if tostring(a) ~= tostring(b) or a.run_count ~= b.run_count then
        return false, where .. ": state " .. tostring(a) .. " vs " .. tostring(b)
      end
      return same(a.result, b.result, seen, where .. ".result")
    end
    return a:timestamp() == b:timestamp(), where .. ": time"
  end
  local ma, mb = getmetatable(a), getmetatable(b)
  if ma ~= nil and ma.__luaflow_signal or ma == getmetatable(json.array()) or
     ma == getmetatable(json.object()) then
    if not rawequal(ma, mb) then return false, where .. ": metatable" end
  elseif ma ~= nil then
    local ok, why = same(ma, mb, seen, "getmetatable(" .. where .. ")")
    if not ok then return false, why end
  elseif mb ~= nil then
    return false, where .. ": a metatable appeared"
  end
  local bkeys = {} -- b's table keys by id
  local nb = 0
  for k in pairs(b) do
    nb = nb + 1
    if type(k) == "table" then bkeys[rawget(k, ID)] = k end
  end
  local na = 0
  for k, v in pairs(a) do
    na = na + 1
    local kb = k
    if type(k) == "table" then
      kb = bkeys[rawget(k, ID)]
      local ok, why = same(k, kb, seen, where .. "[key]")
      if not ok then return false, why end
    end
    local ok, why = same(v, rawget(b, kb), seen, where .. "[" .. tostring(k) .. "]")
    if not ok then return false, why end
  end
  if na ~= nb then return false, where .. ": " .. na .. " keys vs " .. nb end
  return true
end

local function assert_same(a, b, label)
  local ok, why = same(a, b, {})
  assert(ok, (label or "") .. " " .. tostring(why))
end

local function roundtrip(v, opts)
  local here, there, copy = codec._roundtrip(v, opts)
  assert(here, there)
  return copy, here, there
end

describe("the value codec", function()
  describe("scalars", function()
    it("keeps nil, booleans and integers, integers as integers", function()
      for _, v in ipairs({ true, false, 0, -1, 2 ^ 31 | 0, math.maxinteger, math.mininteger }) do
        local copy = roundtrip(v)
        assert.are.equal(v, copy)
        assert.are.equal(math.type(v), math.type(copy))
      end
      assert.is_nil(roundtrip(nil))
      assert.are.equal("integer", math.type(roundtrip({ n = 3 }).n))
      assert.are.equal("float", math.type(roundtrip({ n = 3.0 }).n))
    end)

    it("keeps floats bit for bit: NaN payloads, signalling NaNs, infinities, -0.0", function()
      for _, x in ipairs(SPECIAL_FLOATS) do
        local copy = roundtrip(x)
        assert.are.equal("float", math.type(copy))
        assert.are.equal(bits(x), bits(copy))
        assert.are.equal(bits(x), bits(roundtrip({ x })[1]))
      end
      assert.are.equal(-1 / 0, 1 / roundtrip(-0.0))
    end)

    it("keeps strings byte for byte, NUL and high bytes included", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local s = table.concat(all)
      assert.are.equal(s, roundtrip(s))
      assert.are.equal("", roundtrip(""))
      local long = string.rep("\0\255x", 100000)
      assert.are.equal(long, roundtrip(long))
      assert.are.equal(s, roundtrip({ [s] = s })[s])
    end)

    it("gives the target state its own json null and array/object marks", function()
      local v = { json.null, json.array(), json.object({ 1, 2 }), [json.null] = "k" }
      local copy = roundtrip(v)
      assert.is_true(rawequal(json.null, copy[1]))
      assert.are.equal("k", copy[json.null])
      copy[json.null] = nil
      assert.are.equal("[null,[],{\"1\":1,\"2\":2}]", json.encode(copy))
      -- in a bare state the codec makes that state's own null and marks
      local ok, n = codec._bare_decode(codec.encode(v))
      assert.is_true(ok, n)
    end)

    it("keeps luaflow Time values", function()
      local t = luaflow.time.from_timestamp(1700000000.5)
      local copy = roundtrip({ at = t }).at
      assert.are.equal(1700000000.5, copy:timestamp())
      assert.are.equal(tostring(t), tostring(copy))
    end)
  end)

  describe("tables", function()
    it("keeps nesting, holes and every kind of key", function()
      local key = { "k" }
      local v = { 1, nil, 3, [10] = 10, [-1] = "neg", [0.5] = "half", [1 / 0] = "inf",
                  [true] = "t", [false] = "f", a = { b = { c = "deep" } }, [key] = "tk" }
      local copy = roundtrip(v)
      assert.are.equal(1, copy[1])
      assert.is_nil(copy[2])
      assert.are.equal(3, copy[3])
      assert.are.equal(10, copy[10])
      assert.are.equal("neg", copy[-1])
      assert.are.equal("half", copy[0.5])
      assert.are.equal("inf", copy[1 / 0])
      assert.are.equal("t", copy[true])
      assert.are.equal("f", copy[false])
      assert.are.equal("deep", copy.a.b.c)
      local k2, val = next({}, nil)
      for k, x in pairs(copy) do if type(k) == "table" then k2, val = k, x end end
      assert.are.equal("k", k2[1])
      assert.are.equal("tk", val)
    end)

    it("keeps shared and cyclic references: the same table reached twice is one table", function()
      local shared = { "s" }
      local v = { a = shared, b = shared, list = { shared, shared } }
      v.self = v
      v.list.up = v
      local copy = roundtrip(v)
      assert.is_true(rawequal(copy.a, copy.b))
      assert.is_true(rawequal(copy.a, copy.list[1]))
      assert.is_true(rawequal(copy.list[1], copy.list[2]))
      assert.is_true(rawequal(copy, copy.self))
      assert.is_true(rawequal(copy, copy.list.up))
      assert.is_false(rawequal(copy, v))
    end)

    it("keeps references shared between the values of one message", function()
      local shared = {}
      local ok, a, b = codec.decode(codec.pack(nil, shared, { shared }))
      assert.is_true(ok)
      assert.is_true(rawequal(a, b[1]))
    end)

    it("copies a metatable made of data by value, and a module's metatable by name", function()
      local mt = { __jsontype = "array", note = "x" }
      local a, b = setmetatable({}, mt), setmetatable({ 1 }, mt)
      local copy = roundtrip({ a, b })
      assert.are.equal("x", getmetatable(copy[1]).note)
      assert.is_true(rawequal(getmetatable(copy[1]), getmetatable(copy[2])))
      assert.are.equal("[]", json.encode(copy[1]))
      -- a class whose metatable lives in a loaded module crosses by name:
      -- the copy has the target's own class (required there), methods included
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      local f = assert(io.open(dir .. "/codec_spec_point.lua", "w"))
      f:write("local P = {}\nP.__index = P\nfunction P.norm(p) return p.x + p.y end\nreturn P\n")
      f:close()
      local saved = package.path
      package.path = dir .. "/?.lua;" .. package.path
      local Point = require("codec_spec_point")
      local ok, err = pcall(function()
        local p = roundtrip(setmetatable({ x = 1, y = 2 }, Point), { trusted = true })
        assert.is_true(rawequal(Point, getmetatable(p)))
        assert.are.equal(3, p:norm())
        -- bytes from elsewhere name a module: it is not loaded for them
        local here = codec.encode(setmetatable({}, Point))
        package.loaded.codec_spec_point = nil
        local ok2, msg = codec.decode(here)
        assert.is_false(ok2)
        assert.are.equal("cannot find module 'codec_spec_point' in this Lua state", msg)
        assert.is_true((codec.decode(here, { trusted = true })))
      end)
      package.path = saved
      package.loaded.codec_spec_point = nil
      os.remove(dir .. "/codec_spec_point.lua")
      os.remove(dir)
      assert(ok, err)
    end)
  end)

  describe("signals and states", function()
    it("a signal crosses as a signal of the target's own class, with its fields", function()
      local sig = signals.FAIL("a equaled b!", { result = { rows = { 1, 2 } } })
      sig.flag, sig.value, sig.ratio = true, 1, 0.5
      local copy = roundtrip(sig)
      assert.are.equal("FAIL", signals.kind(copy))
      assert.is_true(rawequal(getmetatable(sig), getmetatable(copy)))
      assert.are.equal('FAIL("a equaled b!")', tostring(copy))
      assert.are.equal(true, copy.flag)
      assert.are.equal("integer", math.type(copy.value))
      assert.are.equal(0.5, copy.ratio)
      assert.are.same({ rows = { 1, 2 } }, copy.result)
      for name in pairs({ SUCCESS = 1, RETRY = 1, SKIP = 1, PAUSE = 1, LOOP = 1,
                          TRIGGERFAIL = 1, VALIDATIONFAIL = 1 }) do
        assert.are.equal(name, signals.kind(roundtrip(signals[name]("m"))))
      end
    end)

    it("ENDRUN crosses with its State, and a State with its result and fields", function()
      local st = S.Retrying("bad", { result = { n = 1 }, run_count = 3, start_time = 1e9 + 0.5 })
      local copy = roundtrip(signals.ENDRUN(st))
      assert.are.equal("ENDRUN", signals.kind(copy))
      assert.is_true(core.is_state(copy.state))
      assert.are.equal('Retrying("bad")', tostring(copy.state))
      assert.are.equal(3, copy.state.run_count)
      assert.are.equal(1e9 + 0.5, copy.state.start_time:timestamp())
      assert.are.same({ n = 1 }, copy.state.result)
      local scalar = S.Retrying("r", { result = 5, run_count = 2, start_time = 1e9 })
      assert.is_true(scalar == roundtrip(scalar)) -- Prefect's equality holds for the copy
      -- fields a signal put into its state
      local _, ts = require("util").run_one(luaflow.Task{ name = "t", fn = function()
        local s = signals.FAIL("x")
        s.flag, s.n, s.label = true, 7, "l\0b"
        error(s)
      end })
      local fields = core.states._fields(roundtrip(ts))
      assert.are.same({ flag = true, n = 7, label = "l\0b" }, fields)
      assert.are.equal("integer", math.type(fields.n))
    end)

    it("a State needs luaflow in the target state; a signal's class is the C side's", function()
      local ok, n = codec._bare_decode(codec.encode(signals.SKIP("s")))
      assert.is_true(ok, n)
      assert.are.equal(1, n)
      local err
      ok, err = codec._bare_decode(codec.encode(S.Success()))
      assert.is_false(ok)
      assert.matches("cannot decode a luaflow.State: luaflow is not loaded", err, 1, true)
    end)
  end)

  describe("round trips of random values (seeded)", function()
    it("copy every value bit for bit, sharing and cycles kept", function()
      for seed = 1, 150 do
        local v = generate(seed, true)
        local copy = roundtrip(v)
        assert_same(v, copy, "seed " .. seed)
      end
    end)

    it("give the same canonical bytes in both states and again from the copy", function()
      for seed = 1, 150 do
        local v = generate(seed, false)
        local copy, here, there = roundtrip(v, { canonical = true })
        assert_same(v, copy, "seed " .. seed)
        assert(here == there, "seed " .. seed .. ": canonical bytes differ across states")
        assert(codec.encode(copy, { canonical = true }) == here, "seed " .. seed)
      end
    end)
  end)

  describe("the canonical form", function()
    it("does not depend on the order keys were set in", function()
      local c = { canonical = true }
      assert.are.equal(codec.encode({ a = 1, b = 2 }, c), codec.encode({ b = 2, a = 1 }, c))
      local keys = {}
      for i = 1, 200 do keys[i] = i % 3 == 0 and ("k" .. i) or i % 3 == 1 and i * 1.5 or -i end
      local t1, t2 = {}, {}
      for i = 1, #keys do t1[keys[i]] = i end
      for i = #keys, 1, -1 do t2[keys[i]] = i end
      assert.are.equal(codec.encode(t1, c), codec.encode(t2, c))
      -- a hole: the array part differs, the bytes do not
      local h1 = { 1, nil, 3 }
      local h2 = {}
      h2[3] = 3
      h2[1] = 1
      assert.are.equal(codec.encode(h1, c), codec.encode(h2, c))
      -- every key type in one total order, integers and floats mixed
      local mixed = { [2] = 1, [1.5] = 1, [-1] = 1, [2 ^ 63] = 1, [math.maxinteger] = 1,
                      x = 1, [true] = 1, [false] = 1, [json.null] = 1 }
      local copy = roundtrip(mixed, c)
      assert.are.equal(codec.encode(mixed, c), codec.encode(copy, c))
    end)

    it("tells values apart: integer and float, shared and equal, -0.0 and 0.0", function()
      local c = { canonical = true }
      assert.are_not.equal(codec.encode({ 1 }, c), codec.encode({ 1.0 }, c))
      assert.are_not.equal(codec.encode(0.0, c), codec.encode(-0.0, c))
      local t = {}
      assert.are_not.equal(codec.encode({ t, t }, c), codec.encode({ {}, {} }, c))
    end)

    it("refuses a table used as a key, naming where", function()
      local bytes, err = codec.encode({ rows = { [{}] = 1 } }, { canonical = true, root = "argument 1" })
      assert.is_nil(bytes)
      assert.are.equal("cannot hash a table used as a key at argument 1.rows", err)
    end)
  end)

  describe("values that cannot cross", function()
    local function fails(v, expected, opts)
      opts = opts or {}
      opts.root = opts.root or "result"
      local bytes, err = codec.encode(v, opts)
      assert.is_nil(bytes)
      assert.are.equal(expected, err)
    end

    it("name the kind and the path of the bad part", function()
      fails({ rows = { 1, 2, { fn = print } } }, "cannot copy a function at result.rows[3].fn")
      fails(function() end, "cannot copy a function at result")
      fails({ co = coroutine.create(print) }, "cannot copy a thread at result.co")
      fails({ f = io.stdout }, "cannot copy a userdata at result.f")
      fails({ ["a b"] = { [1.5] = { [true] = print } } },
            'cannot copy a function at result["a b"][1.5][true]')
      fails({ ["end"] = print }, 'cannot copy a function at result["end"]')
      fails({ [-3] = { ["q\"\n"] = print } }, 'cannot copy a function at result[-3]["q\\"\\10"]')
      fails({ m = { [print] = 1 } }, "cannot copy a function at a key of result.m")
      fails({ m = { [{ f = print }] = 1 } }, "cannot copy a function at (a key of result.m).f")
      fails({ obj = setmetatable({}, { __index = function() end }) },
            "cannot copy a function at getmetatable(result.obj).__index")
      fails({ st = S.Success{ result = { print } } }, "cannot copy a function at result.st.result[1]")
      fails({ sig = signals.FAIL("x", { result = print }) }, "cannot copy a function at result.sig.result")
    end)

    it("number the values of a list", function()
      local bytes, err = codec.pack({ root = "argument %d" }, 1, { x = print })
      assert.is_nil(bytes)
      assert.are.equal("cannot copy a function at argument 2.x", err)
    end)

    it("bound the depth, without using the C stack", function()
      local deep = {}
      local cur = deep
      for _ = 1, 200000 do
        cur.next = {}
        cur = cur.next
      end
      local bytes, err = codec.encode(deep, { root = "result" })
      assert.is_nil(bytes)
      assert.matches("^cannot copy result: nested deeper than 10000 levels %(at result%.next%.next", err)
      assert.matches("%.%.%.", err)
      local ok_bytes = codec.encode(deep.next, { max_depth = 300000 })
      assert.is_string(ok_bytes)
      local ok = codec.decode(ok_bytes)
      assert.is_false(ok) -- the decoder has its own default limit
      local ok2, copy = codec.decode(ok_bytes, { max_depth = 300000 })
      assert.is_true(ok2)
      local n = 0
      while copy do
        n = n + 1
        copy = copy.next
      end
      assert.are.equal(200000, n)
      local _, small = codec.encode({ { { {} } } }, { max_depth = 3, root = "x" })
      assert.are.equal("cannot copy x: nested deeper than 3 levels (at x[1][1][1])", small)
    end)

    it("bound the size", function()
      local bytes, err = codec.encode({ string.rep("x", 100), string.rep("y", 100) },
                                      { max_size = 150, root = "result" })
      assert.is_nil(bytes)
      assert.are.equal("cannot copy result: more than 150 bytes (reached at result[2])", err)
    end)
  end)

  describe("decoding bytes from anywhere", function()
    local samples
    setup(function()
      samples = {}
      for seed = 1, 12 do samples[#samples + 1] = assert(codec.encode(generate(seed, true))) end
    end)

    it("fails cleanly on every truncation", function()
      for _, s in ipairs(samples) do
        for i = 0, #s - 1 do
          local ok, err = codec.decode(s:sub(1, i))
          assert(ok == false and err:match("^bad encoded value at byte %d+: "), tostring(err))
        end
      end
    end)

    it("never crashes on garbage or on mutated messages", function()
      math.randomseed(42)
      for _, s in ipairs(samples) do
        for _ = 1, 300 do
          local b = { s:byte(1, -1) }
          for _ = 1, math.random(1, 4) do
            local at = math.random(1, #b)
            local r = math.random(1, 3)
            if r == 1 then b[at] = math.random(0, 255)
            elseif r == 2 then table.insert(b, at, math.random(0, 255))
            else table.remove(b, at) end
          end
          local ok, err = codec.decode(string.char(table.unpack(b)))
          assert(ok == true or type(err) == "string")
        end
      end
      for _ = 1, 2000 do
        local n = math.random(0, 40)
        local b = {}
        for i = 1, n do b[i] = math.random(0, 255) end
        local bytes = "LFC\1" .. string.char(table.unpack(b))
        local ok, err = codec.decode(bytes)
        assert(ok == true or type(err) == "string")
        ok, err = codec._bare_decode(bytes)
        assert(ok == true or type(err) == "string")
      end
    end)

    it("says what is wrong", function()
      assert.are.same({ false, "bad encoded value at byte 0: truncated" }, { codec.decode("") })
      assert.are.same({ false, "bad encoded value at byte 4: not a luaflow value" },
                      { codec.decode("JSON{}") })
      assert.are.same({ false, "bad encoded value at byte 4: unknown format version" },
                      { codec.decode("LFC\9\0") })
      assert.are.same({ false, "bad encoded value at byte 5: unknown tag" },
                      { codec.decode("LFC\1\1\99") })
      assert.are.same({ false, "bad encoded value at byte 7: bytes after the last value" },
                      { codec.decode(codec.encode(1) .. "x") })
      assert.are.same({ false, "bad encoded value at byte 7: bad reference" },
                      { codec.decode("LFC\1\1\6\0") })
    end)

    it("works from plain C with bare lua_States (spec/support/codec_test.c)", function()
      local cli = require("cli")
      local build = os.getenv("LUAFLOW_BUILD") or "build"
      local saved = cli.bin
      cli.bin = (os.getenv("LUAFLOW_ROOT") or cli.root) .. "/" .. build .. "/codec_test"
      local ok, r = pcall(cli.run, {})
      cli.bin = saved
      assert(ok, r)
      assert.are.equal("", r.stderr)
      assert.are.equal("ok\n", r.stdout)
      assert.are.equal(0, r.code)
    end)

    it("refuses functions and module values unless told the bytes are trusted", function()
      local bytes = assert(codec.encode(function() return 1 end, { functions = true }))
      local ok, err = codec.decode(bytes)
      assert.is_false(ok)
      assert.are.equal("bad encoded value at byte 6: a function or module value where only plain values may be", err)
      ok, err = codec.decode(bytes, { functions = true })
      assert.is_false(ok)
      assert.are.equal("bad encoded value at byte 6: bytecode in untrusted bytes", err)
      local ok2, f = codec.decode(bytes, { functions = true, trusted = true })
      assert.is_true(ok2)
      assert.are.equal(1, f())
    end)
  end)
end)
