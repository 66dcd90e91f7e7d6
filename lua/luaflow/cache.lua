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
local now = core.time.now

-- ---- validators ----

-- Built-in validators compare canonical encodings without decoding them:
-- builtin[fn] = { inputs = true | {names}, parameters = true | {names} }.
local builtin = setmetatable({}, { __mode = "k" })

local function unexpired(state)
  local e = state.cached_result_expiration
  return e == nil or e:timestamp() > now():timestamp()
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

local memory = {} -- key .. "\0" .. map index -> entries, oldest first
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

local function memory_key(key, index) return key .. "\0" .. tostring(index or 0) end

local function fetch(key, index)
  if db then
    local rows, why = db:get(key, index, now():timestamp())
    if not rows then error("the run store's cache cannot be read: " .. why, 0) end
    return rows
  end
  local list, out, t = memory[memory_key(key, index)] or {}, {}, now():timestamp()
  for i = #list, 1, -1 do
    if list[i].expires == nil or list[i].expires > t then out[#out + 1] = list[i] end
  end
  return out
end

local function put(entry)
  if db then
    local ok, why = db:put(entry)
    if not ok then error("the run store's cache cannot be written: " .. why, 0) end
    return
  end
  local k = memory_key(entry.key, entry.map_index)
  local list = memory[k] or {}
  memory[k] = list
  list[#list + 1] = entry
end

-- ---- the engine's hooks ----

local function current_run() return graph.runs[#graph.runs] end

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

-- The Cached state of an entry.
local function cached_state(e)
  return Cached{ message = e.message, result = decode(e.result),
                 cached_result_expiration = e.expires,
                 cached_inputs = decode(e.inputs), cached_parameters = decode(e.parameters) }
end

-- Whether a built-in validator accepts entry e (no decoding needed).
local function builtin_accepts(spec, e, inputs, parameters)
  if spec.inputs == true and e.inputs ~= canon(inputs) then return false end
  if spec.parameters == true and e.parameters ~= canon(parameters) then return false end
  if type(spec.inputs) == "table" and not same_fields(decode(e.inputs), inputs, spec.inputs) then return false end
  if type(spec.parameters) == "table" and not same_fields(decode(e.parameters), parameters, spec.parameters) then
    return false
  end
  return true
end

function M.lookup(task, index, inputs)
  local _, key, validator = core.task_cache(task)
  local run = current_run()
  local parameters = run and run.parameters or {}
  inputs = named_inputs(task, inputs)
  validator = validator or V.duration_only
  local spec = builtin[validator]
  for _, e in ipairs(fetch(key_of(task, key), index)) do
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
  local parameters = run and run.parameters or {}
  local result, why = codec.encode(state.result)
  if result == nil then
    core.log("WARNING", "luaflow.Cache", ("Task '%s': its result is not cached: %s")
             :format(task.name .. (index and ("[%d]"):format(index) or ""), why))
    return nil
  end
  inputs = named_inputs(task, inputs)
  local expires = now():timestamp() + cache_for
  local entry = { key = key_of(task, key), map_index = index, created = now():timestamp(),
                  expires = expires, run_id = run and run.run_id, state = "Cached",
                  message = state.message, result = result, inputs = canon(inputs),
                  parameters = canon(parameters) }
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
  for _, list in pairs(memory) do
    for _, e in ipairs(list) do out[#out + 1] = e end
  end
  table.sort(out, function(a, b) return a.created < b.created end)
  return out
end

function M.clear(key)
  if db then return db:clear(key) end
  local n = 0
  for k, list in pairs(memory) do
    if key == nil or list[1] and list[1].key == key then
      n = n + #list
      memory[k] = nil
    end
  end
  return n
end

M.decode = decode
return M
