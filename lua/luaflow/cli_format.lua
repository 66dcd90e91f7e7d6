-- What the CLI's listings share (luaflow runs, and later luaflow cache):
-- durations and times as people read them, colours by state on a terminal
-- only, aligned tables, and JSON objects whose keys keep their order.
local core = require("luaflow.core")
local json = require("luaflow").json

local M = {}

-- 0.85 -> "850 ms", 1.234 -> "1.2 s", 185 -> "3m 05s", 7260 -> "2h 01m",
-- 93600 -> "1d 02h"; nil or a negative -> "-".
function M.duration(s)
  if type(s) ~= "number" or s ~= s or s < 0 then return "-" end
  if s < 1 then return ("%d ms"):format(math.floor(s * 1000 + 0.5)) end
  if s < 59.95 then return ("%.1f s"):format(s) end
  local whole = math.floor(s + 0.5)
  if whole < 3600 then return ("%dm %02ds"):format(whole // 60, whole % 60) end
  if whole < 86400 then return ("%dh %02dm"):format(whole // 3600, whole // 60 % 60) end
  return ("%dd %02dh"):format(whole // 86400, whole // 3600 % 24)
end

-- Epoch seconds as local time, "2026-11-29 07:21:19" (with_ms: ".123").
function M.local_time(t, with_ms)
  if type(t) ~= "number" or t <= 0 then return "-" end
  if not with_ms then return os.date("%Y-%m-%d %H:%M:%S", math.floor(t)) end
  local ms = math.floor(t * 1000 + 0.5) -- a time kept as a double: 0.8 is 0.7999...
  return os.date("%Y-%m-%d %H:%M:%S", ms // 1000) .. (".%03d"):format(ms % 1000)
end

-- Epoch seconds as ISO-8601 UTC, as time values print; nil stays nil.
function M.iso(t)
  if type(t) ~= "number" or t <= 0 then return nil end
  return tostring(require("luaflow").time.from_timestamp(t))
end

-- ---- standard output that says when it could not be written ----

local Output = {}
Output.__index = Output

function Output:write(...)
  local ok, why = io.stdout:write(...)
  if not ok then self.error = self.error or why end
  return self
end

-- A writer on stdout that remembers the first write that failed.
function M.output() return setmetatable({}, Output) end

-- Flushes out: `code` when everything was written, else 1 after one line
-- saying why (a full disk, a closed pipe).
function M.finish(out, report, code)
  local ok, why = io.stdout:flush()
  why = out.error or (not ok and why)
  if not why then return code end
  report("cannot write to standard output: " .. tostring(why))
  return 1
end

-- ---- colours: by state, on a terminal, unless NO_COLOR or TERM=dumb ----

local colour_on
function M.colour_enabled()
  if colour_on == nil then
    local no_color, term = os.getenv("NO_COLOR"), os.getenv("TERM")
    colour_on = core.isatty(1) and not (no_color and no_color ~= "") and term ~= "dumb"
  end
  return colour_on
end

local GREEN, RED, BOLD_RED, YELLOW, GREY = "32", "31", "1;31", "33", "90"
local STATE_COLOURS = {
  Success = GREEN, Cached = GREEN, Mapped = GREEN, Looped = GREEN,
  Skipped = GREY, Cancelled = GREY, Cancelling = YELLOW,
  Failed = RED, TimedOut = RED, TriggerFailed = RED, ValidationFailed = RED, Crashed = BOLD_RED,
  Running = YELLOW, Pending = YELLOW, Scheduled = YELLOW, Paused = YELLOW, Resume = YELLOW,
  Retrying = YELLOW, Submitted = YELLOW, Queued = YELLOW,
}
M.LEVEL_COLOURS = { DEBUG = "2", INFO = GREEN, WARNING = YELLOW, ERROR = RED, CRITICAL = BOLD_RED }

-- text in the colour of state (a class name, "Running" or "Crashed").
function M.paint(code, text)
  if not code or not M.colour_enabled() then return text end
  return ("\27[%sm%s\27[0m"):format(code, text)
end

function M.state_colour(state) return STATE_COLOURS[state] end

-- ---- tables ----

-- Columns a text takes (UTF-8 characters; a byte that is not UTF-8 counts one).
local function width(s)
  return utf8.len(s) or #s
end
M.width = width

-- One line: newlines and tabs become spaces.
function M.one_line(s)
  return (tostring(s or ""):gsub("[\r\n\t]+", " "))
end

-- Cuts s to n columns, with "…" (three dots) at the end when cut.
function M.cut(s, n)
  if n == nil or width(s) <= n then return s end
  if n <= 3 then return s:sub(1, n) end
  local stop = utf8.offset(s, n - 2) or (n - 2)
  return s:sub(1, stop - 1) .. "..."
end

-- Prints rows (lists of cells) under headers as aligned columns. A cell is a
-- string or {text, colour}; columns named in `right` are aligned right; the
-- last column is never padded, and on a terminal it is cut to what is left
-- of its width.
function M.print_table(out, headers, rows, right)
  right = right or {}
  local widths = {}
  for i, h in ipairs(headers) do widths[i] = width(h) end
  local function text_of(cell) return type(cell) == "table" and cell[1] or cell end
  for _, row in ipairs(rows) do
    for i = 1, #headers do widths[i] = math.max(widths[i], width(text_of(row[i]) or "")) end
  end
  local columns = core.terminal_columns(1)
  local function line(cells, is_header)
    local parts, used = {}, 0
    for i = 1, #headers do
      local cell = cells[i]
      local text, code = text_of(cell) or "", type(cell) == "table" and cell[2] or nil
      if i == #headers then
        if columns and not is_header then text = M.cut(text, math.max(columns - used - 1, 10)) end
        parts[i] = M.paint(code, text)
      else
        local pad = (" "):rep(widths[i] - width(text))
        parts[i] = right[i] and (pad .. M.paint(code, text)) or (M.paint(code, text) .. pad)
        used = used + widths[i] + 2
      end
    end
    out:write((table.concat(parts, "  "):gsub("%s+$", "")), "\n")
  end
  line(headers, true)
  for _, row in ipairs(rows) do line(row) end
end

-- ---- JSON with keys in a fixed order ----

-- M.object("key1", value1, "key2", value2, ...): an object whose keys keep
-- this order. A value may be M.raw(text) (JSON text written as it is),
-- another M.object, a M.list of values, or anything json.encode takes; nil
-- is written null. A pair whose key is nil or false is left out.
local raw_mt, object_mt, list_mt = {}, {}, {}
function M.raw(text) return setmetatable({ text = text }, raw_mt) end
function M.object(...) return setmetatable(table.pack(...), object_mt) end
function M.list(items) return setmetatable(items, list_mt) end

local function encode(v, out)
  local mt = getmetatable(v)
  if v == nil then
    out[#out + 1] = "null"
  elseif mt == raw_mt then
    out[#out + 1] = v.text
  elseif mt == object_mt then
    out[#out + 1] = "{"
    local sep = ""
    for i = 1, v.n, 2 do
      if type(v[i]) == "string" then -- a pair without a key is left out
        out[#out + 1] = sep
        out[#out + 1] = json.encode(v[i])
        out[#out + 1] = ": "
        encode(v[i + 1], out)
        sep = ", "
      end
    end
    out[#out + 1] = "}"
  elseif mt == list_mt then
    out[#out + 1] = "["
    for i = 1, v.n or #v do
      if i > 1 then out[#out + 1] = ", " end
      encode(v[i], out)
    end
    out[#out + 1] = "]"
  else
    out[#out + 1] = json.encode(v)
  end
end

-- The JSON text of v (see M.object).
function M.json(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

-- JSON text kept in the store (a result, the parameters) as it is when it
-- is JSON; nil when it is not (a damaged record).
function M.stored_json(text)
  if text == nil then return nil end
  if pcall(json.decode, text) then return M.raw(text) end
  return nil
end

return M
