-- Mistakes are caught where they are made: every option value is checked when
-- the task, flow, run, Parameter, notifier or trigger is made, and every
-- misuse of the API is an error naming the user's own file and line (never a
-- path inside luaflow), saying what was expected and what was given.
local cli = require("cli")
local util = require("util")

-- luaflow's own modules are chunks named "luaflow/<name>.lua": none may show.
local INTERNAL = "luaflow/[%w_]+%.lua"

-- Writes `src` to a file, runs it in this process and returns the error it
-- raises, the file's path and the line marked `-- <` (if any).
local function misuse(src)
  local path = cli.write_flow('local luaflow = require("luaflow")\n'
    .. 'local Task, Flow, task, N = luaflow.Task, luaflow.Flow, luaflow.task, luaflow.notifications\n'
    .. src .. "\n")
  local line
  local n = 0
  for l in (util.read(path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if l:find("-- <", 1, true) then line = n end
  end
  local chunk = assert(loadfile(path))
  local ok, err = pcall(chunk)
  assert.is_false(ok, "expected an error from:\n" .. src)
  return tostring(err), path, line
end

-- The error names path:line first, holds `expected`, and no internal path.
local function assert_misuse(src, expected)
  local err, path, line = misuse(src)
  assert(line, "the snippet marks its line with -- <")
  local where = ("%s:%d: "):format(path, line)
  assert.are.equal(where, err:sub(1, #where), "\n" .. err)
  assert.is_true(util.has(err, expected), ("expected %q in\n%s"):format(expected, err))
  assert.is_nil(err:find(INTERNAL), err)
end

describe("option values are checked where they are given", function()
  after_each(cli.cleanup)

  describe("Task and task", function()
    local cases = {
      { "local t = Task{state_handlers = N.slack_notifier} -- <",
        "Task: state_handlers must be a list of handlers (got a notifier (slack_notifier)): "
          .. "put it in a list, state_handlers = {slack_notifier}" },
      { "local function my_handler() end\nlocal t = Task{state_handlers = my_handler} -- <",
        "state_handlers must be a list of handlers (got a function): put it in a list, "
          .. "state_handlers = {my_handler}" },
      { "local t = Task{state_handlers = {print, 'x'}} -- <",
        "state_handlers[2] must be a handler: a function, a notifier or a C handler (got the string \"x\")" },
      { "local t = Task{state_handlers = {failed = print}} -- <",
        "state_handlers must be a list of handlers (got a table with the key \"failed\")" },
      { "local t = Task{on_failure = {print}} -- <", "Task: on_failure must be a function (got a table)" },
      { "local t = Task{max_retries = '2', retry_delay = 1} -- <",
        "max_retries must be an integer >= 0 (got the string \"2\")" },
      { "local t = Task{max_retries = 1.5, retry_delay = 1} -- <",
        "max_retries must be an integer >= 0 (got the number 1.5)" },
      { "local t = Task{max_retries = -1} -- <", "max_retries must be an integer >= 0 (got the number -1)" },
      { "local t = Task{max_retries = 1, retry_delay = '5'} -- <",
        "retry_delay must be a number of seconds >= 0 (got the string \"5\")" },
      { "local t = Task{timeout = 0} -- <", "timeout must be a number of seconds > 0 (got the number 0)" },
      { "local t = Task{timeout = 0/0} -- <", "timeout must be a number of seconds > 0" },
      { "local t = Task{trigger = 'all_failed'} -- <",
        "trigger must be one of luaflow.triggers or a function(states, by_task) (got the string \"all_failed\"): "
          .. "write trigger = luaflow.triggers.all_failed" },
      { "local t = Task{trigger = luaflow.triggers.some_failed} -- <",
        "trigger = luaflow.triggers.some_failed needs its bounds: write trigger = luaflow.triggers.some_failed{at_least = 1}" },
      { "local t = Task{skip_on_upstream_skip = 'no'} -- <",
        "skip_on_upstream_skip must be true or false (got the string \"no\")" },
      { "local t = Task{tags = 'etl'} -- <", "tags must be a list of strings, not a string: write tags = {\"etl\"}" },
      { "local t = Task{tags = {1}} -- <", "tags[1] must be a string (got the number 1)" },
      { "local t = Task{name = 3} -- <", "Task: name must be a string (got the number 3)" },
      { "local t = Task{fn = 'print'} -- <", "Task: fn must be a function (got the string \"print\")" },
      { "local t = Task{max_retires = 2} -- <", "unknown option 'max_retires' for Task (did you mean 'max_retries'?)" },
      { "local t = Task{colour = 'red'} -- <", "unknown option 'colour' for Task (options: " },
      { "local t = Task('extract') -- <", "Task: options must be a table (got the string \"extract\")" },
      { "local t = task{state_handlers = print}(function() end) -- <",
        "task: state_handlers must be a list of handlers (got a function)" },
      { "local t = task({timeout = '1'}, function() end) -- <", "task: timeout must be a number of seconds > 0" },
      { "local t = task(42) -- <", "task() takes a function, a name and a function, or options (got the number 42)" },
      { "local t = task('extract', 'fn') -- <", "task(\"extract\", fn): fn must be a function (got the string \"fn\")" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function() assert_misuse(case[1], case[2]) end)
    end
  end)

  describe("Flow", function()
    local cases = {
      { "local f = Flow(42) -- <", "Flow() takes a name and a builder function, or a table of options (got the number 42)" },
      { "local f = Flow('etl', 'builder') -- <",
        "Flow(name, builder): the builder must be a function(flow) (got the string \"builder\")" },
      { "local f = Flow{name = 3} -- <", "Flow: name must be a string (got the number 3)" },
      { "local f = Flow{taks = {}} -- <", "unknown option 'taks' for Flow (did you mean 'tasks'?)" },
      { "local f = Flow{name = 'etl', tasks = Task()} -- <",
        "Flow: tasks must be a list of tasks (got a task (<Task: Task>)): put it in a list, tasks = {" },
      { "local f = Flow{name = 'etl', tasks = {Task(), 'load'}} -- <",
        "tasks[2] must be a task or the result of a task call (got the string \"load\")" },
      { "local f = Flow{name = 'etl', state_handlers = N.webhook_notifier} -- <",
        "Flow: state_handlers must be a list of handlers (got a notifier (webhook_notifier))" },
      { "local f = Flow{name = 'etl', on_failure = 'alert'} -- <", "Flow: on_failure must be a function" },
      { "local f = Flow{name = 'etl', reference_tasks = Task()} -- <", "Flow: reference_tasks must be a list of tasks" },
      { "local f = Flow{name = 'etl', task = {}} -- <", "unknown option 'task' for Flow (did you mean 'tasks'?)" },
      { "local f = Flow({name = 'etl', stat_handlers = {}}, function() end) -- <",
        "unknown option 'stat_handlers' for Flow (did you mean 'state_handlers'?)" },
      { "local f = Flow{} -- <", "A name must be provided for the flow." },
    }
    for _, case in ipairs(cases) do
      it(case[2], function() assert_misuse(case[1], case[2]) end)
    end
  end)

  describe("flow:run, Parameter, notifiers and triggers", function()
    local cases = {
      { "local f = Flow{name = 'etl'}\nf:run{parameters = 3} -- <",
        "flow:run: parameters must be a table of NAME = value (got the number 3)" },
      { "local f = Flow{name = 'etl'}\nf:run{secrets = {[1] = 'x'}} -- <",
        "flow:run: secrets must be a table of NAME = value (got the key the number 1)" },
      { "local f = Flow{name = 'etl'}\nf:run{resume = 'gate'} -- <",
        "flow:run: resume must be a list of tasks (got the string \"gate\")" },
      { "local f = Flow{name = 'etl'}\nf:run{paramters = {}} -- <",
        "unknown option 'paramters' for flow:run (did you mean 'parameters'?)" },
      { "local p = luaflow.Parameter(3) -- <",
        "Parameter(name [, opts]): the name must be a non-empty string (got the number 3)" },
      { "local p = luaflow.Parameter('p', {required = 'yes'}) -- <",
        "Parameter: required must be true or false (got the string \"yes\")" },
      { "local p = luaflow.Parameter('p', {defualt = 1}) -- <",
        "unknown option 'defualt' for Parameter (did you mean 'default'?)" },
      { "local h = N.slack_notifier{only_states = 'Faild'} -- <", "slack_notifier: only_states: unknown state class \"Faild\"" },
      { "local h = N.slack_notifier{only_states = {3}} -- <",
        "only_states[1] must be a state class or a class name (got the number 3)" },
      { "local h = N.slack_notifier{timeout = '5'} -- <",
        "slack_notifier: timeout must be a number of seconds > 0 (got the string \"5\")" },
      { "local h = N.slack_notifier{raise_on_eror = false} -- <",
        "unknown option 'raise_on_eror' for slack_notifier (did you mean 'raise_on_error'?)" },
      { "local h = N.webhook_notifier{url_secret = 3} -- <",
        "webhook_notifier: url_secret must be a non-empty string (got the number 3)" },
      { "local h = N.email_notifier{smtp_url = 'smtp://h:25', to = 3} -- <",
        "email_notifier: to must be an e-mail address or a list of them (got the number 3)" },
      { "local h = N.slack_notifier('Failed') -- <", "slack_notifier{...} takes a table of options (got the string \"Failed\")" },
      { "local h = N.callback_factory(print, 'failed') -- <",
        "callback_factory(fn, check): check must be a function (got the string \"failed\")" },
      { "local tr = luaflow.triggers.some_successful{at_least = -1} -- <",
        "some_successful: at_least must be a number >= 0 (got the number -1)" },
      { "local tr = luaflow.triggers.some_failed{at_mots = 1} -- <",
        "unknown option 'at_mots' for some_failed (did you mean 'at_most'?)" },
      { "local s = luaflow.signals.FAIL('no', 3) -- <",
        "FAIL(message, opts): opts must be a table such as {result = x} (got the number 3)" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function() assert_misuse(case[1], case[2]) end)
    end
  end)
end)

describe("API misuse names the user's file and line", function()
  after_each(cli.cleanup)

  local cases = {
    { "local f = Flow{name = 'etl'}\nf.run() -- <", "f.run() was called without the flow: did you mean f:run()?" },
    { "local my_flow = Flow{name = 'etl'}\nmy_flow.run{parameters = {}} -- <",
      "my_flow.run() was called without the flow: did you mean my_flow:run()?" },
    { "local flows = {etl = Flow{name = 'etl'}}\nflows.etl.run() -- <",
      "flows.etl.run() was called without the flow: did you mean flows.etl:run()?" },
    { "local f = Flow{name = 'etl'}\nf.add_task(Task()) -- <", "did you mean f:add_task()?" },
    { "local f, a, b = Flow{name = 'etl'}, Task(), Task()\nf.add_edge(a, b) -- <", "did you mean f:add_edge()?" },
    { "local t = task(print)\nt.run('x') -- <", "t.run() was called without the task: did you mean t:run()?" },
    { "local state = Flow{name = 'etl'}:run()\nfor t, s in state.task_states() do end -- <",
      "state.task_states() was called without the state: did you mean state:task_states()?" },
    { "local a = Task{name = 'a'}\nFlow('etl', function()\n  local r = task(print)()\n  r.set_upstream(a) -- <\nend)",
      "r.set_upstream() was called without the task result: did you mean r:set_upstream()?" },
    { "local a = Task{name = 'a'}\nFlow('etl', function()\n  local b = Task{name = 'b'}\n  b.set_upstream(a) -- <\nend)",
      "b.set_upstream() was called without the task: did you mean b:set_upstream()?" },
    { "Flow('etl', function()\n  local r = task(print)()\n  r:set_upstream(3) -- <\nend)",
      "set_upstream(u): u must be a task or the result of a task call (got the number 3)" },
    { "local t = task('lonely', print)\nlocal r = t(1) -- <", "cannot call task <Task: lonely> outside a flow builder" },
    { "local a, b = Task(), Task()\nlocal f = Flow{name = 'etl', tasks = {a, b}}\nf:add_edge(a, b, 0) -- <",
      "key must be an argument position (an integer >= 1) or a parameter name (got the number 0)" },
    { "local a = Task()\nlocal f = Flow{name = 'etl', tasks = {a}}\nf:add_edge(a) -- <",
      "downstream must be a task (got nil)" },
    { "local f = Flow{name = 'etl'}\nf:set_reference_tasks(3) -- <", "reference_tasks must be a list of tasks (got the number 3)" },
    { "local s = luaflow.states.Failed()\nfor t in s:task_states() do end -- <",
      "Failed() has no task states: task_states() is for the state flow:run returns" },
    { "local ok = luaflow.triggers.all_successful(3) -- <",
      "all_successful(states, by_task): states must be a list of upstream states (got the number 3)" },
    { "luaflow.log.info('%d rows', 'three') -- <", "luaflow.log.info: bad argument" },
    { "luaflow.log.warning(3, 4) -- <", "luaflow.log.warning(format, ...): the format must be a string (got the number 3)" },
    { "local v = luaflow.secrets.get('NO_SUCH_SECRET_ANYWHERE') -- <", 'Local Secret "NO_SUCH_SECRET_ANYWHERE" was not found.' },
    { "Flow('etl', function()\n  local f = Flow{name = 'inner'}\n  f:run() -- <\nend)", "cannot run a flow inside a flow builder" },
  }
  for _, case in ipairs(cases) do
    it(case[2], function() assert_misuse(case[1], case[2]) end)
  end
end)

describe("no message shows a path inside luaflow", function()
  after_each(cli.cleanup)

  it("a task that misuses the API: its ERROR line and traceback show the user's frames only", function()
    local path = cli.write_flow([[
local luaflow = require("luaflow")
local function fetch() local v = luaflow.secrets.get(3); return v end
local t = luaflow.task("t", function()
  local v = fetch()
  return v
end)
return luaflow.Flow("tb", function() t() end)
]])
    local r = cli.run({ "run", path }, { env = { LUAFLOW_LOG_LEVEL = "ERROR" } })
    assert.are.equal(1, r.code, r.stderr)
    assert.is_true(util.has(r.stderr, "Task 't': Exception encountered during task execution! " .. path
                                      .. ":2: a secret name must be a non-empty string"), r.stderr)
    assert.is_true(util.has(r.stderr, "\n\t" .. path .. ":4: in "), r.stderr)
    assert.is_nil(r.stderr:find(INTERNAL), r.stderr)
    assert.is_nil(r.stderr:find("in function 'luaflow.", 1, true), r.stderr)
  end)

  -- Each snippet's error, through `luaflow run` and in-process: the user's
  -- path, and never one of luaflow's own modules.
  local snippets = {
    "local t = Task{state_handlers = N.gmail_notifier}",
    "local f = Flow{name = 'x'}\nf.run()",
    "local f = Flow{name = 'x'}\nf.tasks()",
    "local f = Flow{name = 'x'}\nf.edges()",
    "local f = Flow{name = 'x'}\nf:add_edge(Task(), 'b')",
    "local f = Flow{name = 'x'}\nf:add_edge(Task(), Task(), 'nope')",
    "local f = Flow{name = 'x'}\nf:set_reference_tasks({Task()})",
    "local f = Flow{name = 'x', tasks = {Task()}}\nf:run{resume = {Task()}}",
    "local s = Flow{name = 'x'}:run()\nlocal _ = s.task_states()",
    "local t = Task()\nt:set_upstream(Task())",
    "local t = Task()\nt.set_downstream(Task())",
    "luaflow.context.flow_name = 'x'",
    "luaflow.log.set_level('LOUD')",
    "local _ = luaflow.json.decode('{')",
    "local _ = luaflow.json.encode(print)",
    "local _ = luaflow.http.post(3)",
    "local _ = luaflow.http.get('http://127.0.0.1:1/', {timeout = 'x'})",
    "local _ = luaflow.states.Failed{bogus = 1}",
    "local _ = luaflow.signals.ENDRUN(3)",
    "local _ = luaflow.secrets.get(3)",
    "local _ = luaflow.triggers.any_failed('x')",
    "local _ = luaflow.Parameter('p', 3)",
    "local _ = N.callback_factory()",
    "Flow('x', function() local r = task(print)(); r:set_downstream() end)",
    "Flow('x', function() local r = task(print)(); r.set_downstream(Task()) end)",
    "local _ = luaflow.notifications.email_notifier{smtp_url = 3}",
  }
  for _, src in ipairs(snippets) do
    it(src:gsub("\n", "; "), function()
      local err, path = misuse(src)
      assert.is_nil(err:find(INTERNAL), err)
      assert.is_true(util.has(err, path .. ":"), err)
      local r = cli.run({ "run", path })
      assert.are.equal(2, r.code, r.stderr)
      assert.is_nil(r.stderr:find(INTERNAL), r.stderr)
      assert.is_true(util.has(r.stderr, path .. ":"), r.stderr)
    end)
  end
end)
