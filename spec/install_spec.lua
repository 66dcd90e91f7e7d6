-- `make install PREFIX=...` installs a working copy: the binary finds its own
-- Lua half wherever it is started from, and the module loads in plain lua5.4.
local root = os.getenv("LUAFLOW_ROOT") or "."
local build = os.getenv("LUAFLOW_BUILD") or "build"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("make install", function()
  local prefix

  setup(function()
    prefix = os.tmpname()
    os.remove(prefix)
    local out, code = sh(("make -s -C '%s' install BUILD='%s' PREFIX='%s'"):format(root, build, prefix))
    assert(code == 0, out)
  end)

  teardown(function()
    sh(("rm -rf '%s'"):format(prefix))
  end)

  it("installs a luaflow that runs a flow from any directory", function()
    local example = root .. "/examples/01_flow_state_handler.lua"
    local out, code = sh(("cd / && LUAFLOW_LOG_LEVEL=CRITICAL '%s/bin/luaflow' run '%s' 2>/dev/null")
                         :format(prefix, example))
    assert.are.equal(0, code)
    assert.are.equal(read(root .. "/examples/01_flow_state_handler.out"), out)
  end)

  it("installs the header, the library and the Lua module", function()
    assert.is_truthy(io.open(prefix .. "/include/luaflow.h"))
    assert.is_truthy(io.open(prefix .. "/lib/libluaflow.a"))
    local out, code = sh(("cd / && LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 -e 'print(require(\"luaflow\").version)'")
                         :format(prefix))
    assert.are.equal(0, code)
    assert.matches("^%d+%.%d+%.%d+", out)
  end)
end)
