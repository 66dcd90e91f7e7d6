-- Caching task results across runs: cache_for (seconds), cache_key (default
-- "<flow name>/<task name>") and cache_validator (luaflow.cache_validators or
-- a function(cached_state, inputs, parameters) -> boolean).
--
-- A successful run of a task with cache_for goes Running -> Success -> Cached
-- and leaves an entry: its result, message, expiry, inputs and the run's
-- parameters, each copied by the value codec (inputs and parameters in its
-- canonical form, so {a=1, b=2} and {b=2, a=1} are the same). A later run of
-- the task (a mapped child: of the same index) that finds an unexpired entry
-- its validator accepts goes Pending -> Cached without running its body.
-- Entries live in the run store's cache table when a store is in use (the
-- CLI's, or cache.use_store(path)), else in this process's memory.
local core = require("luaflow.core")
local graph = require("luaflow.graph")

local M = {}
local codec = core.codec
local CANONICAL = { canonical = true }
local clock = core.cache_now -- epoch seconds

-- ---- validators ----

-- Built-in validators compare canonical encodings without decoding them:
-- builtin[fn] = { inputs = true | {names}, parameters = true | {names} }.
local builtin = setmetatable({}, { __mode = "k" })

local function unexpired(state)
  local e = state.cached_result_expiration
  return e == nil or e:timestamp() > clock()
end

local function canon(v)
  local bytes = codec.encode(v, CANONICAL)
  return bytes
end

local function same(a, b)
  local ca, cb = canon(a), canon(b)
  return ca ~= nil and ca == cb
end

local function same_fields(cached, given, names)
  cached, given = cached or {}, given or {}
  for _, name in ipairs(names) do
    if not same(cached[name], given[name]) then return false end
  end
  return true
end

local function names_list(names, what)
  if type(names) == "string" then names = { names } end
  if type(names) ~= "table" or #names == 0 then
    core.raise(("luaflow.cache_validators.%s{names...} needs a list of names"):format(what))
  end
  for i, n in ipairs(names) do
    if type(n) ~= "string" then
      core.raise(("luaflow.cache_validators.%s: name %d must be a string"):format(what, i))
    end
  end
  return names
end

local V = {}
function V.duration_only(state) return unexpired(state) end
function V.all_inputs(state, inputs)
  return unexpired(state) and same(state.cached_inputs, inputs)
end
function V.all_parameters(state, _, parameters)
  return unexpired(state) and same(state.cached_parameters, parameters)
end
function V.partial_inputs_only(names)
  names = names_list(names, "partial_inputs_only")
  local fn = function(state, inputs)
    return unexpired(state) and same_fields(state.cached_inputs, inputs, names)
  end
  builtin[fn] = { inputs = names }
  return fn
end
function V.partial_parameters_only(names)
  names = names_list(names, "partial_parameters_only")
  local fn = function(state, _, parameters)
    return unexpired(state) and same_fields(state.cached_parameters, parameters, names)
  end
  builtin[fn] = { parameters = names }
  return fn
end
builtin[V.duration_only] = {}
builtin[V.all_inputs] = { inputs = true }
builtin[V.all_parameters] = { parameters = true }
M.validators = V

-- ---- where entries live ----

-- In memory, by key and map index: the entries by their canonical inputs
-- and parameters (a newer one supersedes), and the newest by inputs, by
-- parameters and of all, so a lookup costs the same however many entries a
-- key has.
local memory = {}
local db, db_path -- the run store's cache table, when one is in use

-- Entries go to the run store at path (created when missing); nil: memory.
function M.use_store(path)
  if db then db:close() end
  db, db_path = nil, nil
  if not path then return true end
  local store = require("luaflow.store")
  local s, why = store.open(path, { create = true })
  if not s then return nil, why end
  s:close()
  local opened, err = core.cache_db(path)
  if not opened then return nil, err end
  db, db_path = opened, path
  return true
end

function M.store_path() return db_path end

local current_run -- below

-- The cache table of the run's store (flow:run{store = PATH}, the CLI's
-- store), else the one use_store gave, else nil (memory).
local by_path = {}
local function run_db()
  local run = current_run()
  local s = run and run.store
  if not s then return db end
  local path = s:path()
  if path == db_path then return db end
  local d = by_path[path]
  if d == nil then
    d = core.cache_db(path) or false
    by_path[path] = d
  end
  return d or nil
end

local function memory_key(key, index) return key .. "\0" .. tostring(index or 0) end

local function live(e, t) return e and (e.expires == nil or e.expires > t) and e or nil end

-- The unexpired entries of key (and map index), newest first; `inputs` or
-- `parameters` (canonical bytes) narrow them, `limit` caps them.
local function fetch(key, index, inputs, parameters, limit)
  local t = clock()
  local db = run_db()
  if db then
    local rows, why = db:get(key, index, t, inputs, parameters, limit)
    if not rows then error("the run store's cache cannot be read: " .. why, 0) end
    return rows
  end
  local m = memory[memory_key(key, index)]
  if not m then return {} end
  if limit == 1 then
    local e = inputs and m.by_inputs[inputs] or parameters and m.by_parameters[parameters] or
      not (inputs or parameters) and m.newest or nil
    e = live(e, t)
    return { e }
  end
  local out = {}
  for _, e in pairs(m.exact) do
    if live(e, t) and (inputs == nil or e.inputs == inputs) and (parameters == nil or e.parameters == parameters) then
      out[#out + 1] = e
    end
  end
  table.sort(out, function(a, b) return a.seq > b.seq end)
  return out
end

local seq = 0
local function put(entry)
  local db = run_db()
  if db then
    local ok, why = db:put(entry)
    if not ok then error("the run store's cache cannot be written: " .. why, 0) end
    return
  end
  local k = memory_key(entry.key, entry.map_index)
  local m = memory[k]
  if not m then
    m = { exact = {}, by_inputs = {}, by_parameters = {} }
    memory[k] = m
  end
  seq = seq + 1
  entry.seq = seq
  local inputs = entry.inputs or ""
  m.exact[#inputs .. ":" .. inputs .. (entry.parameters or "")] = entry
  if entry.inputs then m.by_inputs[entry.inputs] = entry end
  if entry.parameters then m.by_parameters[entry.parameters] = entry end
  m.newest = entry
end

-- ---- the engine's hooks ----

function current_run() return graph.runs[#graph.runs] end

local function key_of(task, key)
  if key ~= nil then return tostring(key) end
  local run = current_run()
  return (run and run.flow.name or "") .. "/" .. task.name
end

-- The inputs by parameter name where the task's function names them, else
-- by position.
local function named_inputs(task, inputs)
  local fn = core.task_fn(task)
  local out = {}
  for k = 1, inputs.n or #inputs do
    local name = type(fn) == "function" and debug.getlocal(fn, k)
    if name and name:sub(1, 1) ~= "(" then out[name] = inputs[k] else out[k] = inputs[k] end
  end
  return out
end

local function decode(bytes)
  if bytes == nil then return nil end
  local ok, v = codec.decode(bytes)
  if not ok then error("a cache entry cannot be read: " .. tostring(v), 0) end
  return v
end

local Cached = core.states.Cached

-- The Cached state of an entry (its inputs and parameters decoded when read).
local function cached_state(e)
  return core.cached_state(e.message, decode(e.result), e.expires, e.inputs, e.parameters)
end

-- The run's parameters and their canonical form, worked out once a run.
local function run_parameters()
  local run = current_run()
  if not run then return {}, canon({}) end
  local c = run.cache_canonical_parameters
  if c == nil then
    c = canon(run.parameters or {}) or false
    run.cache_canonical_parameters = c
  end
  return run.parameters or {}, c or nil
end

-- Whether a built-in validator that names inputs or parameters accepts
-- entry e.
local function builtin_accepts(spec, e, inputs, parameters)
  if type(spec.inputs) == "table" and not same_fields(decode(e.inputs), inputs, spec.inputs) then return false end
  if type(spec.parameters) == "table" and not same_fields(decode(e.parameters), parameters, spec.parameters) then
    return false
  end
  return true
end

function M.lookup(task, index, inputs)
  local _, key, validator = core.task_cache(task)
  local parameters, canon_parameters = run_parameters()
  inputs = named_inputs(task, inputs)
  validator = validator or V.duration_only
  local spec = builtin[validator]
  -- the built-in validators that compare whole inputs or parameters (or
  -- nothing) need the newest matching entry only
  local want_inputs = spec and spec.inputs == true and canon(inputs) or nil
  local want_parameters = spec and spec.parameters == true and canon_parameters or nil
  local whole = spec and type(spec.inputs) ~= "table" and type(spec.parameters) ~= "table"
  if whole and (spec.inputs and not want_inputs or spec.parameters and not want_parameters) then
    return nil -- inputs (or parameters) the codec cannot copy never match
  end
  local found = fetch(key_of(task, key), index, want_inputs, want_parameters, whole and 1 or nil)
  if whole then return found[1] and cached_state(found[1]) end -- fetch compared them already
  for _, e in ipairs(found) do
    if spec then
      if builtin_accepts(spec, e, inputs, parameters) then return cached_state(e) end
    else
      local state = cached_state(e)
      if validator(state, inputs, parameters) then return state end
    end
  end
  return nil
end

function M.save(task, index, state, inputs)
  local cache_for, key = core.task_cache(task)
  local run = current_run()
  local parameters, canon_parameters = run_parameters()
  local result, why = codec.encode(state.result)
  if result == nil then
    core.log("WARNING", "luaflow.Cache", ("Task '%s': its result is not cached: %s")
             :format(task.name .. (index and ("[%d]"):format(index) or ""), why))
    return nil
  end
  inputs = named_inputs(task, inputs)
  local created = clock()
  local expires = created + cache_for
  local entry = { key = key_of(task, key), map_index = index, created = created,
                  expires = expires, run_id = run and run.run_id, state = "Cached",
                  message = state.message, result = result, inputs = canon(inputs),
                  parameters = canon_parameters }
  put(entry)
  return Cached{ message = state.message, result = state.result, cached_result_expiration = expires,
                 cached_inputs = inputs, cached_parameters = parameters }
end

core.cache_hooks(M.lookup, M.save)

-- ---- luaflow cache list | clear ----

function M.list()
  if db then
    local rows, why = db:list()
    if not rows then return nil, why end
    return rows
  end
  local out = {}
  for _, m in pairs(memory) do
    for _, e in pairs(m.exact) do out[#out + 1] = e end
  end
  table.sort(out, function(a, b) return a.seq < b.seq end)
  return out
end

function M.clear(key)
  if db then return db:clear(key) end
  local n = 0
  for k, m in pairs(memory) do
    if key == nil or m.newest.key == key then
      for _ in pairs(m.exact) do n = n + 1 end
      memory[k] = nil
    end
  end
  return n
end

M.decode = decode
return M
