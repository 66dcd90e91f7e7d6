-- The documentation stands alone: the reference (docs/reference.md) covers every
-- public function, every option, every CLI option and environment variable;
-- its C examples compile and run with the exact lines it gives; nothing in the
-- repository points at files users do not have.
local cli = require("cli")
local util = require("util")
local luaflow = require("luaflow")
local has = util.has

local root = cli.root
local reference = assert(util.read(root .. "/docs/reference.md"), "docs/reference.md")
local readme = assert(util.read(root .. "/README.md"))
local manpage = assert(util.read(root .. "/docs/luaflow.1"))

local function public_paths() return util.public_functions(luaflow, "luaflow") end

-- A man page's text with its escapes undone ("\-" is "-").
local function man_text(s) return (s:gsub("\\%-", "-"):gsub("\\f[BIR]", "")) end

describe("docs/reference.md", function()
  it("is linked from the README's tour", function()
    assert.is_true(has(readme, "](docs/reference.md)"), "README links docs/reference.md")
  end)

  it("documents every public function of the module", function()
    local missing = {}
    for _, path in ipairs(public_paths()) do
      local parent, name = path:match("^(.*)%.([^.]+)$")
      local short = parent:gsub("^luaflow%.", "") .. "." .. name
      local documented = has(reference, "`" .. path) or has(reference, "`" .. short)
        or (has(reference, parent) and (has(reference, "`" .. name .. "`") or has(reference, "`" .. name .. "(")
                                        or has(reference, "`" .. name .. "{") or has(reference, ":" .. name .. "(")))
        or (parent:match("^luaflow%.states$") and has(reference, name)) -- the class tree
      if not documented then missing[#missing + 1] = path end
    end
    assert.are.same({}, missing)
  end)

  it("documents every method of states, tasks, flows, references, responses and time values", function()
    local methods = {
      "run", "set_upstream", "set_downstream", "add_task", "add_edge", "set_reference_tasks",
      "tasks", "edges", "task_states", "is", "json", "raise_for_status", "timestamp", "get",
    }
    local state = luaflow.states.Failed()
    local _, predicates = debug.getupvalue(getmetatable(state).__index, 1) -- the methods table
    for name in pairs(predicates) do methods[#methods + 1] = name end
    for _, name in ipairs(methods) do
      assert.is_true(has(reference, ":" .. name .. "(") or has(reference, "`" .. name .. "("), name)
    end
  end)

  it("documents every option of every function that takes options", function()
    local specs = require("luaflow.options").specs
    for what, spec in pairs(specs) do
      for option in pairs(spec) do
        assert.is_true(has(reference, "`" .. option .. "`") or has(reference, "`" .. option .. " ="),
                       what .. " option " .. option)
      end
    end
  end)

  it("documents every command-line option and environment variable, as the man page does", function()
    local man = man_text(manpage)
    for command, options in pairs(require("luaflow.cli").OPTIONS) do
      assert.is_true(has(reference, "### luaflow " .. command), command)
      assert.is_true(has(man, command), command)
      for option in pairs(options) do
        assert.is_true(has(reference, "`--" .. option), command .. " --" .. option)
        assert.is_true(has(man, "--" .. option), "man page: --" .. option)
      end
    end
    for _, var in ipairs({ "LUAFLOW_LOG_LEVEL", "LUAFLOW_SECRET_<NAME>", "LUAFLOW_SECRETS_FILE", "NO_COLOR",
                           "LUA_PATH", "LUA_CPATH" }) do
      assert.is_true(has(reference, var), var)
      assert.is_true(has(man, (var:gsub("<NAME>", ""))), "man page: " .. var)
    end
    for _, code in ipairs({ "| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130, 143 |" }) do
      assert.is_true(has(reference, code), code)
    end
  end)

  it("documents the --json and webhook documents key by key", function()
    for _, key in ipairs({ '"flow"', '"state"', '"message"', '"tasks"', '"name"', '"run_count"', '"result"',
                           '"event"', '"time"', '"run_id"', '"object"', '"kind"', '"old_state"',
                           '"new_state"', '"class"', '"start_time"', '"fields"', '"attachments"' }) do
      assert.is_true(has(reference, key), key)
    end
  end)

  describe("its C examples, built with the exact lines it gives", function()
    after_each(cli.cleanup)

    local function block_after(marker, lang)
      local at = assert(reference:find(marker, 1, true), marker)
      return assert(reference:match("```" .. lang .. "\n(.-)```", at), marker)
    end

    -- System tools run without the sanitizer runtime check-mem preloads.
    local function sh(cmd)
      local p = io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1")
      local out = p:read("a")
      local ok = p:close()
      return ok, out
    end

    local include = root .. "/include"
    local build = root .. "/" .. (os.getenv("LUAFLOW_BUILD") or "build")
    local sanitize = os.getenv("LUAFLOW_SANITIZE") and " -fsanitize=address,undefined" or ""

    it("a handler module: compiled with the documented line, used from a flow", function()
      local dir = cli.tmpdir()
      local source = block_after("A handler module is a Lua C module", "c")
      local f = assert(io.open(dir .. "/myhandlers.c", "w"))
      f:write(source)
      f:close()
      local line = assert(block_after("Or name the directories yourself", "sh"):match("(cc %-shared[^\n]+)"))
      line = line:gsub("%-I/usr/local/include", "-I" .. include)
      local ok, out = sh(("cd %s && %s"):format(cli.quote(dir), line))
      assert.is_true(ok, line .. "\n" .. out)
      local lua_use = block_after("and use it from Lua", "lua")
      local path = cli.write_flow('local luaflow = require("luaflow")\n' .. lua_use
        .. '\nlocal _ = t:run()\nreturn luaflow.Flow{name = "c", tasks = {t, luaflow.Task{name = "bad", '
        .. 'state_handlers = {h.alert}, fn = function() error("no") end}}}\n')
      local r = cli.run({ "run", path }, { env = { LUA_CPATH = dir .. "/?.so;;" } })
      assert.are.equal(1, r.code, r.stderr)
      assert.are.equal("bad failed\n", r.stdout)
    end)

    it("an embedding program: linked with the documented line, runs a flow", function()
      local dir = cli.tmpdir()
      local line = assert(block_after("Or name the library and what it needs yourself", "sh")
                          :match("(cc %-o run_flow[^\n]+)"))
      line = line:gsub("%-I/usr/local/include", "-I" .. include)
                 :gsub("/usr/local/lib/libluaflow%.a", build .. "/libluaflow.a")
                 :gsub("run_flow%.c", root .. "/examples/embed/run_flow.c")
      local ok, out = sh(("cd %s && %s%s"):format(cli.quote(dir), line, sanitize))
      assert.is_true(ok, line .. "\n" .. out)
      local r = cli.run({ root .. "/examples/05_special_failure.lua" }, { bin = dir .. "/run_flow" })
      assert.are.equal(1, r.code, r.stderr)
      assert.is_true(has(r.stdout, "task mission_critical_task: Failed(\"a equaled b!\")"), r.stdout)
    end)
  end)
end)

describe("the repository stands alone", function()
  it("no file points at the developers' documents outside it", function()
    local names = { "API" .. ".md", "DESIGN" .. ".md", "STYLE" .. ".md", "PREFECT1" .. ".md", "../" .. "shared" }
    local p = assert(io.popen(("unset LD_PRELOAD; cd %s && git ls-files -z | xargs -0 grep -l -F %s 2>/dev/null"):format(
      cli.quote(root), table.concat((function()
        local words = {}
        for i, n in ipairs(names) do words[i] = "-e " .. cli.quote(n) end
        return words
      end)(), " "))))
    local found = p:read("a")
    p:close()
    assert.are.equal("", found)
    -- and the search did look at the repository's files
    local listing = assert(io.popen(("unset LD_PRELOAD; cd %s && git ls-files | grep -c -e README.md -e reference.md")
                                    :format(cli.quote(root))))
    assert.are.equal("2", listing:read("l"))
    listing:close()
  end)
end)
