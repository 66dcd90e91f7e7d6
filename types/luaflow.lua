---@meta luaflow
-- LuaLS (lua-language-server) annotations of require("luaflow"), so editors
-- complete and type-check flows. Add this directory to "workspace.library"
-- (.luarc.json); `make install` puts it in <PREFIX>/share/luaflow/types.
-- Nothing here runs: the engine is the luaflow C module.

---@alias luaflow.Handler fun(obj: luaflow.Task|luaflow.Flow, old_state: luaflow.State, new_state: luaflow.State): luaflow.State|false|nil
---@alias luaflow.HandlerLike luaflow.Handler|luaflow.Notifier|userdata
---@alias luaflow.TriggerFn fun(states: luaflow.State[], by_task: table<luaflow.Task|luaflow.TaskResult, luaflow.State>): boolean
---@alias luaflow.TaskLike luaflow.Task|luaflow.TaskResult
---@alias luaflow.StateClassLike luaflow.StateClass|string

---@class luaflow
---@field version string the version, e.g. "0.1.0"
---@field states luaflow.states
---@field signals luaflow.signals
---@field triggers luaflow.triggers
---@field notifications luaflow.notifications
---@field context luaflow.Context
---@field log luaflow.log
---@field http luaflow.http
---@field json luaflow.json
---@field secrets luaflow.secrets
---@field time luaflow.time
---@field cache_validators luaflow.cache_validators
local luaflow = {}

-- ---------------------------------------------------------------- tasks

---@class luaflow.OverdueInfo
---@field deadline number seconds
---@field elapsed number seconds since the first Running
---@field message string "<name> is overdue: running for 12m 5s (deadline 10m)"

---@alias luaflow.OverdueFn fun(obj: luaflow.Task|luaflow.Flow, state: luaflow.State, info: luaflow.OverdueInfo)

---@class luaflow.TaskOptions
---@field name? string shown in logs and in <Task: NAME>
---@field fn? function the task's body (Task{} only)
---@field state_handlers? luaflow.HandlerLike[] called on every state change, in order
---@field on_failure? fun(task: luaflow.Task, state: luaflow.State) called for every failed state
---@field on_failure_final_only? boolean on_failure skips a failure a retry will follow
---@field max_retries? integer retries of a failed run (>= 0)
---@field retry_delay? number seconds before each retry (required with max_retries > 0)
---@field retry_backoff? number each retry waits this many times longer (>= 1, default 1)
---@field max_retry_delay? number the longest a retry waits, in seconds (> 0)
---@field retry_jitter? number each wait times a random factor in [1 - j, 1 + j] (0 to 1)
---@field retry_on? fun(state: luaflow.State): boolean false: the failure is final
---@field deadline? number seconds from the first Running before on_overdue (> 0)
---@field on_overdue? luaflow.OverdueFn|luaflow.Notifier called once when the deadline passes
---@field trigger? luaflow.Trigger|luaflow.TriggerFn when the task may run
---@field skip_on_upstream_skip? boolean a skipped upstream skips the task (default true)
---@field timeout? number seconds a body may run (> 0)
---@field tags? string[]
---@field cache_for? number seconds a successful result stays cached (> 0)
---@field cache_key? string the cache entry's key (default "FLOW/TASK")
---@field cache_validator? luaflow.CacheValidator when a cached entry may stand for a run

---A task: a unit of work with a state. Called inside a flow builder it adds a
---copy of itself to the flow and returns a reference to its result.
---@class luaflow.Task
---@field name string
---@overload fun(...: any): luaflow.TaskResult
local Task = {}

---Calls the task's function directly, outside any flow (for unit tests).
---@param ... any
---@return any result the function's first return value
function Task:run(...) end

---Inside a builder: adds a mapped copy of the task, one child per element of the
---shortest mapped argument (a list or a task result); luaflow.unmapped(x) is
---passed whole, luaflow.flatten(x) maps over a list of lists.
---@param ... any
---@return luaflow.TaskResult
function Task:map(...) end

---Inside a builder: makes `upstream` an upstream of this task in the flow being built.
---@param upstream luaflow.TaskLike
---@param key? integer|string an argument position or parameter name (a data edge)
function Task:set_upstream(upstream, key) end

---Inside a builder: makes `downstream` a downstream of this task.
---@param downstream luaflow.TaskLike
---@param key? integer|string
function Task:set_downstream(downstream, key) end

---A reference to the result of one task call in a flow builder. Passed to
---another call (or inside a table passed to it) it makes a data edge;
---indexing it (`ref.rows`) adds a task that reads that field.
---@class luaflow.TaskResult
---@field [any] luaflow.TaskResult
local TaskResult = {}

---A dependency without data (Prefect's upstream_tasks=): this call runs after `upstream`.
---@param upstream luaflow.TaskLike
---@param key? integer|string
function TaskResult:set_upstream(upstream, key) end

---@param downstream luaflow.TaskLike
---@param key? integer|string
function TaskResult:set_downstream(downstream, key) end

---The task copy this reference stands for.
---@return luaflow.Task
function TaskResult:task() end

---@alias luaflow.CacheValidator fun(cached_state: luaflow.State, inputs: table, parameters: table): boolean

---@class luaflow.cache_validators
---@field duration_only luaflow.CacheValidator the entry has not expired (the default)
---@field all_inputs luaflow.CacheValidator ... and the inputs are the same
---@field all_parameters luaflow.CacheValidator ... and the run's parameters are the same
local cache_validators = {}
luaflow.cache_validators = cache_validators

---... and the named inputs are the same.
---@param names string[]
---@return luaflow.CacheValidator
function luaflow.cache_validators.partial_inputs_only(names) end

---... and the named parameters are the same.
---@param names string[]
---@return luaflow.CacheValidator
function luaflow.cache_validators.partial_parameters_only(names) end

---An argument of t:map(...) passed whole to every child.
---@param x any
---@return any
function luaflow.unmapped(x) end

---An argument of t:map(...) mapped over as the concatenation of its lists.
---@param x any
---@return any
function luaflow.flatten(x) end

---A task from options: Task{name = "extract", fn = function() ... end}.
---@param opts? luaflow.TaskOptions
---@return luaflow.Task
function luaflow.Task(opts) end

---Wraps a function as a task: task(fn), task(name, fn), task(opts)(fn), task(opts, fn).
---@overload fun(fn: function): luaflow.Task
---@overload fun(name: string, fn: function): luaflow.Task
---@overload fun(opts: luaflow.TaskOptions): fun(fn: function): luaflow.Task
---@param opts luaflow.TaskOptions
---@param fn function
---@return luaflow.Task
function luaflow.task(opts, fn) end

---@class luaflow.ParameterOptions
---@field default? any the value when none is given
---@field required? boolean default: true when there is no default

---A task whose value comes from flow:run{parameters=}, --param or --param-file.
---@param name string
---@param opts? luaflow.ParameterOptions
---@return luaflow.Task
function luaflow.Parameter(name, opts) end

---Pauses the running task's body unless its pause was approved; with seconds it
---resumes by itself when they have passed.
---@param message? string
---@param seconds? number
function luaflow.pause_task(message, seconds) end

-- ---------------------------------------------------------------- flows

---@class luaflow.FlowOptions
---@field name string required
---@field tasks? luaflow.TaskLike[]
---@field state_handlers? luaflow.HandlerLike[]
---@field on_failure? fun(flow: luaflow.Flow, state: luaflow.State)
---@field on_failure_final_only? boolean as for tasks (a flow is never retried)
---@field deadline? number seconds from the flow's Running before on_overdue (> 0)
---@field on_overdue? luaflow.OverdueFn|luaflow.Notifier called once when the deadline passes
---@field reference_tasks? luaflow.TaskLike[] the tasks that decide the flow's state
---@field terminal_state_handler? fun(flow: luaflow.Flow, state: luaflow.State, reference_states: table): luaflow.State|nil called once a run before the flow's handlers

---@class luaflow.RunOptions
---@field parameters? table<string, any> Parameter values
---@field secrets? table<string, any> secrets, looked up before the environment
---@field resume? luaflow.TaskLike[] tasks whose pauses are approved in advance
---@field executor? luaflow.Executor where the bodies run (default: Local, or the CLI's --executor)
---@field store? string|userdata|false record the run into the run store at this path (false: not recorded)
---@field restart? string continue the recorded run with this id (a unique prefix, or "last"): its successful tasks keep their state and result

---@class luaflow.Executor
---@field kind "local"|"threads"|"processes"
---@field workers integer bodies run at once

---@class luaflow.Edge
---@field upstream luaflow.Task
---@field downstream luaflow.Task
---@field key? integer the argument position of a data edge

---@class luaflow.Flow
---@field name string
local Flow = {}

---Runs the flow to the end; returns its final state (result: task -> State).
---@param opts? luaflow.RunOptions
---@return luaflow.State
function Flow:run(opts) end

---Adds a task (once) and returns it.
---@param task luaflow.TaskLike
---@return luaflow.Task
function Flow:add_task(task) end

---A dependency; with `key` a data edge (an argument position or parameter name).
---@param upstream luaflow.TaskLike
---@param downstream luaflow.TaskLike
---@param key? integer|string
function Flow:add_edge(upstream, downstream, key) end

---@param tasks luaflow.TaskLike[] ({} goes back to the terminal tasks)
function Flow:set_reference_tasks(tasks) end

---@return luaflow.Task[] tasks in the order they were added
function Flow:tasks() end

---@return luaflow.Edge[]
function Flow:edges() end

---@return luaflow.Task[] the flow's Parameters, in the order they joined it
function Flow:parameters() end

---A flow: Flow(name, builder), Flow(opts, builder) or Flow{name =, tasks = {...}}.
---@overload fun(name: string, builder: fun(flow: luaflow.Flow)): luaflow.Flow
---@overload fun(opts: luaflow.FlowOptions, builder: fun(flow: luaflow.Flow)): luaflow.Flow
---@param opts luaflow.FlowOptions
---@return luaflow.Flow
function luaflow.Flow(opts) end

-- ---------------------------------------------------------------- states

---@class luaflow.State
---@field name string the class name
---@field message string|nil
---@field result any the return value, error or signal
---@field start_time luaflow.Time|nil Scheduled family and Queued
---@field run_count integer|nil Retrying
---@field loop_count integer|nil Looped
---@field color string the class colour
---@field map_states luaflow.State[]|nil Mapped: the children's final states
---@field n_map_states integer|nil Mapped: how many children
---@field cached_result_expiration luaflow.Time|nil Cached
---@field cached_inputs table|nil Cached: the inputs by parameter name
---@field cached_parameters table|nil Cached: the run's parameters
local State = {}

---@return boolean
function State:is_pending() end
---@return boolean
function State:is_scheduled() end
---@return boolean
function State:is_retrying() end
---@return boolean
function State:is_paused() end
---@return boolean
function State:is_resume() end
---@return boolean
function State:is_submitted() end
---@return boolean
function State:is_queued() end
---@return boolean
function State:is_meta_state() end
---@return boolean
function State:is_running() end
---@return boolean
function State:is_finished() end
---@return boolean
function State:is_successful() end
---@return boolean
function State:is_failed() end
---@return boolean
function State:is_skipped() end
---@return boolean
function State:is_cached() end
---@return boolean
function State:is_mapped() end
---@return boolean
function State:is_looped() end
---@return boolean
function State:is_cancelled() end

---Class membership, subclasses included.
---@param cls luaflow.StateClassLike
---@return boolean
function State:is(cls) end

---A flow's final state: each task and its final state, in run order.
---@return fun(): luaflow.Task, luaflow.State
function State:task_states() end

---@class luaflow.StateFields
---@field message? string
---@field result? any
---@field start_time? luaflow.Time|number
---@field run_count? integer
---@field loop_count? integer

---A state class: Failed("msg") or Failed{message =, result =, ...}.
---@class luaflow.StateClass
---@field name string
---@field color string
---@overload fun(message?: string|luaflow.StateFields): luaflow.State

---@class luaflow.states
---@field State luaflow.StateClass
---@field Pending luaflow.StateClass
---@field Scheduled luaflow.StateClass
---@field Paused luaflow.StateClass
---@field Resume luaflow.StateClass
---@field Retrying luaflow.StateClass
---@field Submitted luaflow.StateClass
---@field Queued luaflow.StateClass
---@field Running luaflow.StateClass
---@field Cancelling luaflow.StateClass
---@field Finished luaflow.StateClass
---@field Looped luaflow.StateClass
---@field Success luaflow.StateClass
---@field Cached luaflow.StateClass
---@field Mapped luaflow.StateClass
---@field Skipped luaflow.StateClass
---@field Cancelled luaflow.StateClass
---@field Failed luaflow.StateClass
---@field TimedOut luaflow.StateClass
---@field TriggerFailed luaflow.StateClass
---@field ValidationFailed luaflow.StateClass
luaflow.states = {}

-- ---------------------------------------------------------------- signals

---A signal: raise it with error(sig); it takes any custom field.
---@class luaflow.Signal
---@field message? string
---@field result? any
---@field [string] any

---@class luaflow.SignalOptions
---@field message? string
---@field result? any
---@field retry? boolean FAIL, TRIGGERFAIL, VALIDATIONFAIL: false, the failure is never retried

---FAIL("msg"), FAIL("msg", {result = x}), FAIL{message =, result =}.
---@class luaflow.SignalClass
---@overload fun(message?: string|luaflow.SignalOptions, opts?: luaflow.SignalOptions): luaflow.Signal

---@class luaflow.signals
local signals = {}
luaflow.signals = signals
---@type luaflow.SignalClass
signals.FAIL = nil
---@type luaflow.SignalClass
signals.SUCCESS = nil
---@type luaflow.SignalClass
signals.RETRY = nil
---@type luaflow.SignalClass
signals.SKIP = nil
---@type luaflow.SignalClass
signals.PAUSE = nil
---@type luaflow.SignalClass
signals.LOOP = nil
---@type luaflow.SignalClass
signals.TRIGGERFAIL = nil
---@type luaflow.SignalClass
signals.VALIDATIONFAIL = nil
---ENDRUN(state): the run ends in `state`, final.
---@type fun(state: luaflow.State): luaflow.Signal
signals.ENDRUN = nil

---The signal's name ("FAIL", ...), or nil for any other value.
---@param v any
---@return string|nil
function luaflow.signals.kind(v) end

-- ---------------------------------------------------------------- triggers

---@class luaflow.Trigger
---@field name string
---@overload fun(states: luaflow.State[], by_task?: table): boolean

---@class luaflow.TriggerBounds
---@field at_least? number a count, or a fraction of the upstreams when below 1
---@field at_most? number

---@class luaflow.triggers
local triggers = {}
luaflow.triggers = triggers
---@type luaflow.Trigger
triggers.all_successful = nil
---@type luaflow.Trigger
triggers.all_failed = nil
---@type luaflow.Trigger
triggers.any_successful = nil
---@type luaflow.Trigger
triggers.any_failed = nil
---@type luaflow.Trigger
triggers.all_finished = nil
---@type luaflow.Trigger
triggers.always_run = nil
---@type luaflow.Trigger
triggers.manual_only = nil
---@type luaflow.Trigger
triggers.not_all_skipped = nil

---@param bounds? luaflow.TriggerBounds
---@return luaflow.Trigger
function luaflow.triggers.some_successful(bounds) end

---@param bounds? luaflow.TriggerBounds
---@return luaflow.Trigger
function luaflow.triggers.some_failed(bounds) end

-- ---------------------------------------------------------------- notifications

---@class luaflow.NotifierOptions
---@field only_states? luaflow.StateClassLike|luaflow.StateClassLike[]
---@field ignore_states? luaflow.StateClassLike|luaflow.StateClassLike[]
---@field final_only? boolean ignore a failed state a retry will follow
---@field dedup? number seconds: the same object, class and message once per window
---@field digest? number seconds: states collected, one message per window
---@field async? boolean queue the delivery for the background sender; never raises
---@field deliver_within? number seconds async deliveries are tried for (default 60)
---@field raise_on_error? boolean default true: a failed delivery fails the task
---@field timeout? number seconds (default 10; each attempt with async)
---@field verify? boolean TLS verification (default true)
---@field ca_file? string
---@field webhook_secret? string slack_notifier (default "SLACK_WEBHOOK_URL")
---@field url_secret? string webhook_notifier (default "WEBHOOK_URL")
---@field smtp_url? string email_notifier: smtp://host:port or smtps://host:port
---@field starttls? boolean
---@field from? string
---@field to? string|string[]
---@field username_secret? string
---@field password_secret? string

---A state handler usable as it is, or configured: slack_notifier{only_states = {"Failed"}}.
---@class luaflow.Notifier
---@field name string
---@overload fun(opts?: luaflow.NotifierOptions): luaflow.Handler
---@overload fun(obj: luaflow.Task|luaflow.Flow, old_state: luaflow.State, new_state: luaflow.State): luaflow.State

---@class luaflow.notifications
local notifications = {}
luaflow.notifications = notifications
---@type luaflow.Notifier
notifications.slack_notifier = nil
---@type luaflow.Notifier
notifications.webhook_notifier = nil
---@type luaflow.Notifier
notifications.email_notifier = nil
---@type luaflow.Notifier
notifications.gmail_notifier = nil

---@class luaflow.CallbackOptions
---@field final_only? boolean skip a failed state a retry will follow

---A handler that calls fn(obj, new_state) when check(new_state) is true.
---@param fn fun(obj: luaflow.Task|luaflow.Flow, state: luaflow.State)
---@param check fun(state: luaflow.State): boolean
---@param opts? luaflow.CallbackOptions
---@return luaflow.Handler
function luaflow.notifications.callback_factory(fn, check, opts) end

---Waits until every delivery queued with async = true is delivered or given up.
---@return integer pending how many were waiting
function luaflow.notifications.flush() end

---The Slack document for a state.
---@param obj luaflow.Task|luaflow.Flow
---@param state luaflow.State
---@return table
function luaflow.notifications.slack_payload(obj, state) end

---The webhook document for a state change.
---@param obj luaflow.Task|luaflow.Flow
---@param old_state luaflow.State
---@param new_state luaflow.State
---@return table
function luaflow.notifications.webhook_payload(obj, old_state, new_state) end

---Subject, plain text and HTML of the e-mail for a state.
---@param obj luaflow.Task|luaflow.Flow
---@param state luaflow.State
---@param similar? integer held back by dedup: "(and N similar)"
---@return string subject, string text, string html
function luaflow.notifications.email_content(obj, state, similar) end

---The MIME message (CRLF line ends).
---@param from string
---@param to string[]
---@param subject string
---@param text string
---@param html string
---@param transition_id? string its Message-ID is made from it
---@return string
function luaflow.notifications.email_message(from, to, subject, text, html, transition_id) end

-- ---------------------------------------------------------------- context and logs

---@class luaflow.Logger
---@field name string
local Logger = {}
---@param fmt any a message, or a string.format format
---@param ... any
function Logger:debug(fmt, ...) end
---@param fmt any
---@param ... any
function Logger:info(fmt, ...) end
---@param fmt any
---@param ... any
function Logger:warning(fmt, ...) end
---@param fmt any
---@param ... any
function Logger:error(fmt, ...) end
---@param fmt any
---@param ... any
function Logger:critical(fmt, ...) end

---Facts about the run in progress (read-only).
---@class luaflow.Context
---@field task_name string|nil
---@field map_index integer|nil in a mapped task's child: its index, from 1
---@field task_full_name string|nil the task's name, "double[2]" for a child
---@field task_run_count integer|nil the attempt number
---@field task_loop_count integer|nil
---@field task_loop_result any
---@field resume boolean|nil true once the running task's pause has been approved
---@field flow_name string|nil
---@field flow_run_id string|nil
---@field transition_number integer|nil in a handler: its transition's number for the task or flow, from 1 in each run
---@field task_will_retry boolean|nil in a handler: a retry follows this failed attempt
---@field parameters table<string, any>|nil
---@field logger luaflow.Logger named luaflow.<task> inside a task
luaflow.context = {}

---@class luaflow.log
luaflow.log = {}

---@param fmt any a message, or a string.format format
---@param ... any
function luaflow.log.debug(fmt, ...) end
---@param fmt any
---@param ... any
function luaflow.log.info(fmt, ...) end
---@param fmt any
---@param ... any
function luaflow.log.warning(fmt, ...) end
---@param fmt any
---@param ... any
function luaflow.log.error(fmt, ...) end
---@param fmt any
---@param ... any
function luaflow.log.critical(fmt, ...) end

---@param level "DEBUG"|"INFO"|"WARNING"|"ERROR"|"CRITICAL"|string any case
function luaflow.log.set_level(level) end

---@return string level the current level's name
function luaflow.log.level() end

---A logger with a name of your own.
---@param name string
---@return luaflow.Logger
function luaflow.log.logger(name) end

-- ---------------------------------------------------------------- HTTP

---@class luaflow.HttpOptions
---@field json? any encoded with luaflow.json
---@field body? string
---@field headers? table<string, string>
---@field timeout? number seconds (default 10)
---@field connect_timeout? number seconds (default 5)
---@field verify? boolean TLS verification (default true)
---@field ca_file? string

---@class luaflow.HttpRequest: luaflow.HttpOptions
---@field method? "GET"|"POST"|"PUT"|"PATCH"|"DELETE"|"HEAD"
---@field url string

---@class luaflow.http.Response
---@field status integer
---@field ok boolean a 2xx status
---@field body string
---@field headers table<string, string> names in lower case
local Response = {}

---The body decoded as JSON.
---@return any
function Response:json() end

---Raises "HTTP <status> from scheme://host:port" for 4xx and 5xx; returns the response.
---@return luaflow.http.Response
function Response:raise_for_status() end

---@class luaflow.http
---@field Response luaflow.http.Response
luaflow.http = {}

---@param opts luaflow.HttpRequest
---@return luaflow.http.Response
function luaflow.http.request(opts) end
---@param url string
---@param opts? luaflow.HttpOptions
---@return luaflow.http.Response
function luaflow.http.get(url, opts) end
---@param url string
---@param opts? luaflow.HttpOptions
---@return luaflow.http.Response
function luaflow.http.post(url, opts) end
---@param url string
---@param opts? luaflow.HttpOptions
---@return luaflow.http.Response
function luaflow.http.put(url, opts) end
---@param url string
---@param opts? luaflow.HttpOptions
---@return luaflow.http.Response
function luaflow.http.patch(url, opts) end
---@param url string
---@param opts? luaflow.HttpOptions
---@return luaflow.http.Response
function luaflow.http.delete(url, opts) end
---@param url string
---@param opts? luaflow.HttpOptions
---@return luaflow.http.Response
function luaflow.http.head(url, opts) end

-- ---------------------------------------------------------------- JSON

---@class luaflow.json
---@field null userdata stands for JSON null
luaflow.json = {}

---@param value any
---@param opts? {indent?: boolean}
---@return string
function luaflow.json.encode(value, opts) end

---Integers stay integers; arrays carry the array mark.
---@param text string
---@return any
function luaflow.json.decode(text) end

---Marks t to be written as a JSON array ([] when empty); returns t.
---@generic T: table
---@param t T
---@return T
function luaflow.json.array(t) end

---Marks t to be written as a JSON object ({} when empty); returns t.
---@generic T: table
---@param t T
---@return T
function luaflow.json.object(t) end

-- ---------------------------------------------------------------- secrets

---@class luaflow.Secret
---@field name string
local Secret = {}

---@return any
function Secret:get() end

---@class luaflow.secrets
---@field missing string[] names asked for and not found (the CLI's hints)
luaflow.secrets = {}

---From flow:run{secrets=}, then LUAFLOW_SECRET_<NAME>, then the secrets file.
---@param name string
---@return any
function luaflow.secrets.get(name) end

---@param name string
---@return luaflow.Secret
function luaflow.secrets.Secret(name) end

---A secret as text (a number keeps the text it was stored as).
---@param name string
---@return string
function luaflow.secrets.text(name) end

---@param name string
---@return luaflow.Secret
function luaflow.Secret(name) end

---LUAFLOW_SECRET_<NAME> for a secret's name.
---@param name string
---@return string
function luaflow.secrets.env_name(name) end

---Selects a JSON secrets file, as --secrets does.
---@param path string
---@return true|nil ok
---@return string|nil why it was refused
function luaflow.secrets.use_file(path) end

---The text with every secret read so far shown as ****.
---@param text string
---@return string
function luaflow.secrets.redact(text) end

---A copy of a value with every secret in its strings shown as ****.
---@generic T
---@param value T
---@return T
function luaflow.secrets.redacted(value) end

-- ---------------------------------------------------------------- time

---A point in time: prints as ISO-8601 UTC, compares, takes + and - seconds.
---@class luaflow.Time
---@operator add(number): luaflow.Time
---@operator sub(luaflow.Time): number
local Time = {}

---@return number seconds since the epoch
function Time:timestamp() end

---@class luaflow.time
luaflow.time = {}

---@return luaflow.Time
function luaflow.time.now() end

---@param seconds number since the epoch
---@return luaflow.Time
function luaflow.time.from_timestamp(seconds) end

---@return number the process's CPU seconds
function luaflow.time.cpu_time() end

---Blocks the calling body (under a worker executor, only its worker).
---@param seconds number
function luaflow.time.sleep(seconds) end

luaflow.executors = {}

---Bodies run one at a time in the engine's Lua state (the default).
---@return luaflow.Executor
function luaflow.executors.Local() end

---Bodies run in up to `workers` worker threads, each with its own Lua state.
---@param opts? {workers?: integer}
---@return luaflow.Executor
function luaflow.executors.Threads(opts) end

---Bodies run in up to `workers` forked worker processes (crash isolation, killing timeouts).
---@param opts? {workers?: integer}
---@return luaflow.Executor
function luaflow.executors.Processes(opts) end

---The executor of every flow:run that names none (nil: Local).
---@param e luaflow.Executor|nil
function luaflow.executors.set_default(e) end

---@return integer the CPUs online
function luaflow.executors.cpu_count() end

---@param v any
---@return boolean whether v is an executor of luaflow.executors
function luaflow.executors.is_executor(v) end

return luaflow
