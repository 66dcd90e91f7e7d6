-- Random graphs against a reference: every edge's upstream runs before its
-- downstream, data reaches the right argument, task_states() follows Kahn's
-- order taking the first-added ready task, and the final state follows the
-- terminal tasks. Seeded, so a failure can be replayed.
local luaflow = require("luaflow")

-- Kahn's algorithm over n tasks, taking the smallest index among the ready.
local function reference_order(n, edges)
  local indeg, down = {}, {}
  for i = 1, n do indeg[i], down[i] = 0, {} end
  for _, e in ipairs(edges) do
    indeg[e[2]] = indeg[e[2]] + 1
    table.insert(down[e[1]], e[2])
  end
  local order, ready = {}, {}
  for i = 1, n do if indeg[i] == 0 then ready[#ready + 1] = i end end
  while #ready > 0 do
    table.sort(ready, function(a, b) return a > b end)
    local t = table.remove(ready)
    order[#order + 1] = t
    for _, d in ipairs(down[t]) do
      indeg[d] = indeg[d] - 1
      if indeg[d] == 0 then ready[#ready + 1] = d end
    end
  end
  return order
end

local function random_case(seed)
  math.randomseed(seed)
  local n = math.random(1, 40)
  local edges, seen = {}, {}
  -- edges go from a lower to a higher position in a random permutation: a DAG
  local perm = {}
  for i = 1, n do perm[i] = i end
  for i = n, 2, -1 do
    local j = math.random(1, i)
    perm[i], perm[j] = perm[j], perm[i]
  end
  for _ = 1, math.random(0, n * 2) do
    local a, b = math.random(1, n), math.random(1, n)
    if a ~= b then
      if a > b then a, b = b, a end
      local u, d = perm[a], perm[b]
      local key = u .. ">" .. d
      if not seen[key] then
        seen[key] = true
        edges[#edges + 1] = { u, d }
      end
    end
  end
  return n, edges
end

describe("random graphs", function()
  for seed = 1, 60 do
    it("seed " .. seed .. " runs in a valid order with the right data", function()
      local n, edges = random_case(seed)
      local ran, tasks = {}, {}
      local fail_at = seed % 7 == 0 and math.random(1, n) or nil
      for i = 1, n do
        tasks[i] = luaflow.Task{ name = "t" .. i, fn = function(...)
          ran[#ran + 1] = i
          if i == fail_at then error("boom") end
          local sum = i
          for k = 1, select("#", ...) do sum = sum + (select(k, ...) or 0) end
          return sum
        end }
      end
      local flow = luaflow.Flow{ name = "random", tasks = tasks }
      local inputs = {}
      for _, e in ipairs(edges) do
        inputs[e[2]] = (inputs[e[2]] or 0) + 1
        flow:add_edge(tasks[e[1]], tasks[e[2]], inputs[e[2]])
      end
      local state = flow:run()

      -- upstreams ran before downstreams
      local pos = {}
      for k, i in ipairs(ran) do pos[i] = k end
      for _, e in ipairs(edges) do
        if pos[e[2]] then assert.is_truthy(pos[e[1]] and pos[e[1]] < pos[e[2]]) end
      end
      -- task_states() order
      local expected, got = reference_order(n, edges), {}
      for t in state:task_states() do got[#got + 1] = tonumber(t.name:sub(2)) end
      assert.are.same(expected, got)
      -- data: each result is its own index plus its upstreams' results
      local value = {}
      for _, i in ipairs(expected) do
        local s = state.result[tasks[i]]
        local failed_upstream = false
        local sum = i
        for _, e in ipairs(edges) do
          if e[2] == i then
            if value[e[1]] == nil then failed_upstream = true else sum = sum + value[e[1]] end
          end
        end
        if i == fail_at then
          assert.are.equal("Failed", s.name)
        elseif failed_upstream then
          assert.are.equal("TriggerFailed", s.name)
        else
          assert.are.equal("Success", s.name)
          assert.are.equal(sum, s.result)
          value[i] = sum
        end
      end
      -- the flow's state follows its terminal tasks
      local has_down, any_bad = {}, false
      for _, e in ipairs(edges) do has_down[e[1]] = true end
      for i = 1, n do
        if not has_down[i] and state.result[tasks[i]]:is_failed() then any_bad = true end
      end
      assert.are.equal(any_bad and "Failed" or "Success", state.name)
    end)
  end
end)
