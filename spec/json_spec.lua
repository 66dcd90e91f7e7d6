-- luaflow.json: the JSON codec the engine, the CLI and the notifiers share.
local json = require("luaflow").json

-- n arrays nested inside each other, as text and as a Lua value.
local function nested_text(n)
  return string.rep("[", n) .. string.rep("]", n)
end

local function nested_table(n)
  local root = json.array({})
  local cur = root
  for _ = 2, n do
    cur[1] = json.array({})
    cur = cur[1]
  end
  return root
end

describe("luaflow.json", function()
  it("exports encode, decode, null, array and object", function()
    assert.are.equal("function", type(json.encode))
    assert.are.equal("function", type(json.decode))
    assert.are.equal("function", type(json.array))
    assert.are.equal("function", type(json.object))
    assert.are.equal("userdata", type(json.null))
    assert.are.equal("null", tostring(json.null))
  end)

  describe("numbers", function()
    it("writes integers without a decimal point", function()
      assert.are.equal("3", json.encode(3))
      assert.are.equal("-42", json.encode(-42))
      assert.are.equal("0", json.encode(0))
      assert.are.equal("9223372036854775807", json.encode(math.maxinteger))
      assert.are.equal("-9223372036854775808", json.encode(math.mininteger))
    end)

    it("writes floats so that they read back as floats", function()
      assert.are.equal("3.0", json.encode(3.0))
      assert.are.equal("1.0", json.encode(1.0))
      assert.are.equal("100.0", json.encode(100.0))
      assert.are.equal("-0.0", json.encode(-0.0))
      assert.are.equal("1.5", json.encode(1.5))
      assert.are.equal("0.1", json.encode(0.1))
      assert.are.equal("1e+300", json.encode(1e300))
    end)

    it("reads integers as integers and everything else as floats", function()
      assert.are.equal("integer", math.type(json.decode("3")))
      assert.are.equal(3, json.decode("3"))
      assert.are.equal("integer", math.type(json.decode("-17")))
      assert.are.equal("float", math.type(json.decode("3.0")))
      assert.are.equal("float", math.type(json.decode("1e2")))
      assert.are.equal(100.0, json.decode("1e2"))
      assert.are.equal(-0.25, json.decode("-2.5E-1"))
      assert.are.equal(math.maxinteger, json.decode("9223372036854775807"))
      assert.are.equal(math.mininteger, json.decode("-9223372036854775808"))
    end)

    it("reads integers that do not fit in a Lua integer as floats", function()
      local v = json.decode("9223372036854775808")
      assert.are.equal("float", math.type(v))
      assert.are.equal(2.0 ^ 63, v)
      assert.are.equal("float", math.type(json.decode(string.rep("9", 100))))
    end)

    it("round-trips floats exactly", function()
      for _, x in ipairs({ 0.1, 1 / 3, 2 / 3, 1e300, -1e-300, 5e-324, 123456789.125,
                           math.pi, 2.0 ^ 63, 1e15, 1e16, 0.5, -7.0 }) do
        local back = json.decode(json.encode(x))
        assert.are.equal("float", math.type(back))
        assert.are.equal(x, back)
      end
    end)

    it("keeps integers integral through a round trip", function()
      local doc = json.decode(json.encode({ count = 3, ratio = 3.0, list = { 1, 2.0 } }))
      assert.are.equal("integer", math.type(doc.count))
      assert.are.equal("float", math.type(doc.ratio))
      assert.are.equal("integer", math.type(doc.list[1]))
      assert.are.equal("float", math.type(doc.list[2]))
    end)

    it("refuses NaN and infinities", function()
      assert.has_error(function() json.encode(0 / 0) end, "cannot encode NaN/inf")
      assert.has_error(function() json.encode(math.huge) end, "cannot encode NaN/inf")
      assert.has_error(function() json.encode({ x = -math.huge }) end,
                       "cannot encode NaN/inf")
    end)
  end)

  describe("scalars", function()
    it("writes booleans, nil and json.null", function()
      assert.are.equal("true", json.encode(true))
      assert.are.equal("false", json.encode(false))
      assert.are.equal("null", json.encode(nil))
      assert.are.equal("null", json.encode(json.null))
    end)

    it("reads literals", function()
      assert.is_true(json.decode("true"))
      assert.is_false(json.decode("false"))
      assert.are.equal(json.null, json.decode("null"))
    end)

    it("needs a value to encode", function()
      assert.has_error(function() json.encode() end)
    end)
  end)

  describe("strings", function()
    it("escapes quotes, backslashes and control characters but not '/'", function()
      assert.are.equal([["a\"b\\c/d"]], json.encode('a"b\\c/d'))
      assert.are.equal([["\u0001\u001f"]], json.encode("\1\31"))
      assert.are.equal([["\n\t\r\b\f"]], json.encode("\n\t\r\b\f"))
      assert.are.equal([["\u0000"]], json.encode("\0"))
      assert.are.equal('"\127"', json.encode("\127"))
    end)

    it("passes UTF-8 through and writes each byte that is not UTF-8 as \\u00XX", function()
      assert.are.equal('"héllo 😀"', json.encode("héllo 😀"))
      assert.are.equal([["\u00ff\u00fe\u00c3"]], json.encode("\xff\xfe\xc3"))
      -- overlong forms, surrogates, code points above U+10FFFF, cut sequences
      assert.are.equal([["\u00c0\u00af"]], json.encode("\xc0\xaf"))
      assert.are.equal([["\u00ed\u00a0\u0080"]], json.encode("\xed\xa0\x80"))
      assert.are.equal([["\u00f4\u0090\u0080\u0080"]], json.encode("\xf4\x90\x80\x80"))
      assert.are.equal([["a\u00e2\u0082b€"]], json.encode("a\xe2\x82b€"))
      assert.are.equal('"\u{10ffff}\u{d7ff}\u{e000}"', json.encode("\u{10ffff}\u{d7ff}\u{e000}"))
      -- the reader sees each such byte as its Latin-1 character
      assert.are.equal("ÿþ", json.decode(json.encode("\xff\xfe")))
    end)

    it("reads only UTF-8 strings, as RFC 8259 asks of JSON texts", function()
      assert.are.equal("é😀", json.decode('"é😀"'))
      assert.has_error(function() json.decode('"ab\xff"') end, "invalid JSON at position 4: invalid UTF-8 in string")
      assert.has_error(function() json.decode('["ok", "\\n\xc0\xaf"]') end,
                       "invalid JSON at position 11: invalid UTF-8 in string")
      assert.has_error(function() json.decode('{"\xed\xa0\x80": 1}') end,
                       "invalid JSON at position 3: invalid UTF-8 in string")
    end)

    it("reads every escape", function()
      assert.are.equal('"\\/\b\f\n\r\t', json.decode([["\"\\\/\b\f\n\r\t"]]))
      assert.are.equal("A", json.decode([["\u0041"]]))
      assert.are.equal("\0", json.decode([["\u0000"]]))
      assert.are.equal("é", json.decode([["\u00e9"]]))
      assert.are.equal("€", json.decode([["\u20AC"]]))
      assert.are.equal("x\u{ffff}y", json.decode([["x\uffffy"]]))
    end)

    it("joins \\u surrogate pairs into one UTF-8 character", function()
      assert.are.equal("😀", json.decode([["\ud83d\ude00"]]))
      assert.are.equal("a😀b", json.decode([["a\uD83D\uDE00b"]]))
      assert.are.equal("\u{10ffff}", json.decode([["\udbff\udfff"]]))
    end)

    it("refuses unpaired surrogates", function()
      assert.has_error(function() json.decode([["\ud83d"]]) end,
                       "invalid JSON at position 2: unpaired surrogate in \\u escape")
      assert.has_error(function() json.decode([["\ud83dx"]]) end,
                       "invalid JSON at position 2: unpaired surrogate in \\u escape")
      assert.has_error(function() json.decode([["\ude00"]]) end,
                       "invalid JSON at position 2: unpaired surrogate in \\u escape")
      assert.has_error(function() json.decode([["\ud83d\u0041"]]) end,
                       "invalid JSON at position 2: unpaired surrogate in \\u escape")
    end)

    it("round-trips any UTF-8 string, and any byte string once read back", function()
      local bytes = {}
      for i = 0, 127 do bytes[#bytes + 1] = string.char(i) end
      local s = table.concat(bytes) .. "é€😀"
      assert.are.equal(s, json.decode(json.encode(s)))
      for i = 128, 255 do bytes[#bytes + 1] = string.char(i) end
      local once = json.decode(json.encode(table.concat(bytes)))
      assert.is_truthy(utf8.len(once))
      assert.are.equal(once, json.decode(json.encode(once)))
      local long = string.rep("abc\"\\\n", 10000)
      assert.are.equal(long, json.decode(json.encode(long)))
    end)
  end)

  describe("tables", function()
    it("writes a sequence 1..n as an array", function()
      assert.are.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
      assert.are.equal('["a",true,[1]]', json.encode({ "a", true, { 1 } }))
    end)

    it("writes an empty table as {}", function()
      assert.are.equal("{}", json.encode({}))
    end)

    it("writes an empty table marked with json.array as []", function()
      assert.are.equal("[]", json.encode(json.array({})))
      assert.are.equal("[]", json.encode(json.array()))
      assert.are.equal('{"list":[]}', json.encode({ list = json.array({}) }))
    end)

    it("json.array and json.object return the table they mark", function()
      local t = {}
      assert.are.equal(t, json.array(t))
      assert.are.equal("array", getmetatable(t).__jsontype)
      assert.are.equal(t, json.object(t))
      assert.are.equal("object", getmetatable(t).__jsontype)
    end)

    it("writes holes in a marked array as null", function()
      assert.are.equal('["a",null,"c"]', json.encode(json.array({ [1] = "a", [3] = "c" })))
    end)

    it("refuses a marked array with keys other than 1, 2, ...", function()
      assert.error_matches(function() json.encode(json.array({ x = 1 })) end,
                           "cannot encode array", 1, true)
    end)

    it("writes a table marked with json.object as an object", function()
      assert.are.equal("{}", json.encode(json.object({})))
      assert.are.equal('{"1":"a","2":"b"}', json.encode(json.object({ "a", "b" })))
    end)

    it("honours a __jsontype field in the table's own metatable", function()
      local t = setmetatable({}, { __jsontype = "array" })
      assert.are.equal("[]", json.encode(t))
      t = setmetatable({ 1 }, { __jsontype = "object" })
      assert.are.equal('{"1":1}', json.encode(t))
      assert.error_matches(function() json.encode(setmetatable({}, { __jsontype = "list" })) end,
                           "__jsontype must be", 1, true)
    end)

    it("will not replace a metatable that is not its own", function()
      assert.error_matches(function() json.array(setmetatable({}, {})) end,
                           "table already has a metatable", 1, true)
    end)

    it("writes objects with sorted keys", function()
      assert.are.equal('{"a":1,"b":2,"c":3}', json.encode({ c = 3, a = 1, b = 2 }))
      assert.are.equal('{"B":1,"a":2,"aa":3,"b":4}', json.encode({ b = 4, aa = 3, a = 2, B = 1 }))
    end)

    it("writes integer keys of a non-sequence as decimal strings", function()
      assert.are.equal('{"1":"a","3":"c"}', json.encode({ [1] = "a", [3] = "c" }))
      assert.are.equal('{"-1":true,"0":true}', json.encode({ [0] = true, [-1] = true }))
      assert.are.equal('{"1":1,"x":2}', json.encode({ 1, x = 2 }))
    end)

    it("refuses keys that are neither strings nor integers", function()
      assert.has_error(function() json.encode({ [1.5] = 1 }) end,
                       "cannot encode table key of type float")
      assert.has_error(function() json.encode({ [true] = 1 }) end,
                       "cannot encode table key of type boolean")
    end)

    it("refuses an integer key and a string key that would both be written \"1\"", function()
      assert.error_matches(function() json.encode({ [1] = "a", ["1"] = "b" }) end,
                           'both an integer and a string key "1"', 1, true)
    end)

    it("reads arrays as tables marked with json.array", function()
      local a = json.decode("[]")
      assert.are.equal("array", getmetatable(a).__jsontype)
      assert.are.equal("[]", json.encode(a))
      assert.are.same({ 1, 2, 3 }, json.decode("[1,2,3]"))
    end)

    it("reads objects as plain tables", function()
      local o = json.decode('{"a":1,"b":{"c":[true]}}')
      assert.is_nil(getmetatable(o))
      assert.are.same({ a = 1, b = { c = { true } } }, o)
      assert.are.equal("{}", json.encode(json.decode("{}")))
    end)

    it("keeps string keys that look like numbers as strings", function()
      local o = json.decode('{"1":"a","2":"b"}')
      assert.are.equal("a", o["1"])
      assert.is_nil(o[1])
      assert.are.equal('{"1":"a","2":"b"}', json.encode(o))
    end)

    it("lets the last of repeated keys win", function()
      assert.are.same({ a = 2 }, json.decode('{"a":1,"a":2}'))
    end)
  end)

  describe("null", function()
    it("is one value, the same on every read", function()
      assert.are.equal(json.null, json.decode("null"))
      assert.are.equal(json.decode("[null]")[1], json.decode('{"x":null}').x)
    end)

    it("keeps array positions and object keys through a round trip", function()
      local a = json.decode("[1,null,3]")
      assert.are.equal(3, #a)
      assert.are.equal(json.null, a[2])
      assert.are.equal("[1,null,3]", json.encode(a))
      local o = json.decode('{"a":null}')
      assert.are.equal(json.null, o.a)
      assert.are.equal('{"a":null}', json.encode(o))
    end)
  end)

  describe("__tojson", function()
    it("inserts the JSON text the metamethod returns", function()
      local Point = { __tojson = function(p) return string.format('{"x":%d}', p.x) end }
      local p = setmetatable({ x = 4 }, Point)
      assert.are.equal('{"x":4}', json.encode(p))
      assert.are.equal('[{"x":4},{"x":4}]', json.encode({ p, p }))
      assert.are.equal('{"at":{"x":4}}', json.encode({ at = p }))
    end)

    it("takes precedence over __jsontype", function()
      local t = setmetatable({}, { __jsontype = "array", __tojson = function() return '"t"' end })
      assert.are.equal('"t"', json.encode(t))
    end)

    it("must return a string", function()
      local t = setmetatable({}, { __tojson = function() return 1 end })
      assert.has_error(function() json.encode(t) end, "__tojson must return a string, not number")
    end)

    it("passes the metamethod's own error through", function()
      local t = setmetatable({}, { __tojson = function() error("no way", 0) end })
      assert.has_error(function() json.encode({ t }) end, "no way")
    end)
  end)

  describe("values that cannot be encoded", function()
    it("raises 'cannot encode <type> value'", function()
      assert.has_error(function() json.encode(print) end, "cannot encode function value")
      assert.has_error(function() json.encode({ f = print }) end, "cannot encode function value")
      assert.has_error(function() json.encode(coroutine.create(print)) end,
                       "cannot encode thread value")
      assert.has_error(function() json.encode(io.stdout) end, "cannot encode userdata value")
    end)
  end)

  describe("depth", function()
    it("encodes 1000 nested containers and refuses 1001", function()
      assert.are.equal(nested_text(1000), json.encode(nested_table(1000)))
      assert.has_error(function() json.encode(nested_table(1001)) end, "nesting too deep")
    end)

    it("stops cycles at the depth limit", function()
      local t = {}
      t.self = t
      assert.has_error(function() json.encode(t) end, "nesting too deep")
      local a = json.array({})
      a[1] = a
      assert.has_error(function() json.encode(a) end, "nesting too deep")
    end)

    it("decodes 1000 nested containers and refuses 1001", function()
      local v = json.decode(nested_text(1000))
      assert.are.equal("table", type(v))
      assert.has_error(function() json.decode(nested_text(1001)) end,
                       "invalid JSON at position 1001: nesting too deep")
      assert.has_error(function() json.decode(string.rep('{"a":', 1001)) end,
                       "invalid JSON at position 5001: nesting too deep")
    end)
  end)

  describe("decode errors", function()
    -- position N is 1-based: text:sub(N, N) is the offending byte, #text + 1 the end
    local cases = {
      { "", "position 1: unexpected end of input" },
      { "   ", "position 4: unexpected end of input" },
      { "[", "position 2: unexpected end of input" },
      { "[1,", "position 4: unexpected end of input" },
      { '{"a"', "position 5: unexpected end of input" },
      { '"abc', "position 5: unexpected end of input" },
      { "tru", "position 4: unexpected end of input" },
      { "1.", "position 3: unexpected end of input" },
      { "-", "position 2: unexpected end of input" },
      { '{"a" 1}', "position 6: expected ':'" },
      { '{"a":1 "b":2}', "position 8: expected ',' or '}'" },
      { "[1 2]", "position 4: expected ',' or ']'" },
      { "{1:2}", "position 2: expected a string key" },
      { '{"a":1,}', "position 8: expected a string key" },
      { "[1,]", "position 4: unexpected character ']'" },
      { "nul", "position 4: unexpected end of input" },
      { "nUll", "position 2: unexpected character 'U'" },
      { "True", "position 1: unexpected character 'T'" },
      { "'a'", "position 1: unexpected character '''" },
      { "\1", "position 1: unexpected byte 0x01" },
      { "01", "position 1: invalid number (leading zero)" },
      { "1.e5", "position 3: expected a digit after '.'" },
      { "1e", "position 3: unexpected end of input" },
      { "1e+x", "position 4: expected a digit in exponent" },
      { "-x", "position 2: unexpected character 'x'" },
      { "+1", "position 1: unexpected character '+'" },
      { ".5", "position 1: unexpected character '.'" },
      { '"a\\qb"', "position 3: invalid escape in string" },
      { '"\\u12g4"', "position 2: invalid \\u escape" },
      { '"a\nb"', "position 3: control character in string" },
      { "[1] x", "position 5: unexpected text after the value" },
      { "1 2", "position 3: unexpected text after the value" },
      { "{} {}", "position 4: unexpected text after the value" },
      { "\xef\xbb\xbf1", "position 1: unexpected byte 0xEF" },
    }
    for _, case in ipairs(cases) do
      it(string.format("%q -> %s", case[1], case[2]), function()
        assert.has_error(function() json.decode(case[1]) end, "invalid JSON at " .. case[2])
      end)
    end

    it("accepts blanks around and inside a document", function()
      assert.are.same({ a = { 1, 2 } }, json.decode(' \t\r\n{ "a" : [ 1 , 2 ] } \n'))
    end)

    it("needs a string", function()
      assert.has_error(function() json.decode() end)
      assert.has_error(function() json.decode({}) end)
    end)
  end)

  describe("pretty printing", function()
    it("indents with 2 spaces when asked", function()
      local text = json.encode({ name = "x", list = { 1, { ok = true } }, none = json.array({}),
                                 empty = {} }, { indent = true })
      assert.are.equal(table.concat({
        "{",
        '  "empty": {},',
        '  "list": [',
        "    1,",
        "    {",
        '      "ok": true',
        "    }",
        "  ],",
        '  "name": "x",',
        '  "none": []',
        "}",
      }, "\n"), text)
    end)

    it("writes scalars and compact output the same as without the option", function()
      assert.are.equal("3", json.encode(3, { indent = true }))
      assert.are.equal("[1,2]", json.encode({ 1, 2 }, { indent = false }))
      assert.are.equal("[1,2]", json.encode({ 1, 2 }, {}))
    end)

    it("refuses an unknown option", function()
      assert.error_matches(function() json.encode(1, { indnet = true }) end,
                           "unknown option 'indnet'", 1, true)
    end)
  end)

  describe("round trips", function()
    it("decodes what it encodes", function()
      local doc = {
        name = "flow",
        run_count = 2,
        ratio = 0.75,
        ok = false,
        tags = json.array({}),
        meta = {},
        nothing = json.null,
        tasks = {
          { name = "extract", state = "Success", result = { 1, 2, 3 } },
          { name = "load", state = "Failed", message = "boom\n\"quoted\"",
            fields = { flag = true, value = -1.5 } },
        },
        unicode = "naïve ☃ 😀",
      }
      local text = json.encode(doc)
      local back = json.decode(text)
      assert.are.same(doc, back)
      assert.are.equal(text, json.encode(back))
      assert.are.equal("integer", math.type(back.run_count))
      assert.are.equal(json.null, back.nothing)
      assert.are.equal("[]", json.encode(back.tags))
      assert.are.equal("{}", json.encode(back.meta))
    end)

    it("re-encodes canonical text unchanged", function()
      for _, text in ipairs({
        '{"a":[1,2.5,"x",null,true,false,[],{}],"b":{"c":{"d":[[[-1]]]}}}',
        '[{"id":1,"tags":[]},{"id":2,"tags":["a"]}]',
        '"\\u0001\\n\\"\\\\"',
        "[0,-0.0,1e+300,1e-05,0.1]",
      }) do
        assert.are.equal(text, json.encode(json.decode(text)))
      end
    end)

    it("round-trips through pretty output", function()
      local doc = { a = { 1, { b = json.array({}) } }, c = "d" }
      assert.are.same(doc, json.decode(json.encode(doc, { indent = true })))
    end)
  end)
end)
