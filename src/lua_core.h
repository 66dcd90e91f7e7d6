/* Shared by the lua_*.c bindings: metatable names, boxes, errors with a place. */
#ifndef LF_LUA_CORE_H
#define LF_LUA_CORE_H

#include <lauxlib.h>
#include <lua.h>
#include "signals.h"
#include "state.h"

#define LF_STATE_MT "luaflow.State"
#define LF_TIME_MT "luaflow.Time"
#define LF_TASK_MT "luaflow.Task"
#define LF_FLOW_MT "luaflow.Flow"
#define LF_CHANDLER_MT "luaflow.CHandler"
/* registry: code -> metatable of that signal class (lua_signal.c) */
#define LF_SIGNAL_CLASSES_KEY "luaflow.SignalClasses"
/* Made by lua_run_tables.c (see there). */
#define LF_TASKMAP_MT "luaflow.TaskMap"
#define LF_REFERENCE_STATES_KEY "luaflow.ReferenceStates"
#define LF_TERMINAL_HANDLERS_KEY "luaflow.TerminalStateHandlers"

/* A Lua box for a C state: the box holds one reference, its user value holds
 * the state's result. */
typedef struct {
  lf_state *s;
} lf_box;

/* Boxes a new state s (taking over the caller's reference) with the value at
 * result_idx as its result (0: none); leaves the box on the stack. */
void lf_box_new(lua_State *L, lf_state *s, int result_idx);
/* The same with nuv user values: 1 the result, then a Mapped state's
 * map_states and its children's run counts, a Cached state's facts. */
void lf_box_new_uv(lua_State *L, lf_state *s, int result_idx, int nuv);
enum { LF_BOX_MAP_STATES = 2, LF_BOX_EXTRA = 3 };
/* lua_cache.c: a Cached state of a cache entry keeps its inputs and
 * parameters as codec bytes (at "<key>#" of its facts table at idx) until
 * they are read: replaces the nil on top by the decoded value of key. */
void lf_cached_decode(lua_State *L, int idx, const char *key);
lf_state *lf_test_state(lua_State *L, int idx);
lf_state *lf_check_state(lua_State *L, int idx);
/* The boxes of one run: a state shown to Lua in a run has one box for the
 * whole run, found by slot (s->gen, s->slot), and kept alive by the run. */
typedef struct {
  int table; /* stack index of slot -> box */
  uint32_t gen;
  uint32_t n;
} lf_boxes;
void lf_boxes_init(lua_State *L, lf_boxes *b);
void lf_boxes_done(lf_boxes *b); /* the run is over (innermost first) */
/* The box on top of the stack belongs to the run from now on; pops it. */
void lf_boxes_keep(lua_State *L, lf_boxes *b);
void lf_boxes_push(lua_State *L, lf_boxes *b, lf_state *s);
void lf_boxes_push_result(lua_State *L, lf_boxes *b, lf_state *s);

void lf_push_time(lua_State *L, double t);
/* Reads a time value or epoch seconds; 0 when idx is neither. */
int lf_to_time(lua_State *L, int idx, double *t);

/* Signals (signals.h): their metatables are made here, in C (lua_signal.c). */
lf_signal lf_signal_of(lua_State *L, int idx);
/* Pushes the metatable of signals with that code (made on first use), or nil
 * for LF_SIG_NONE or an unknown code; returns whether it pushed one. */
int lf_signal_push_mt(lua_State *L, lf_signal code);
/* Pushes a new signal of that code with message (NULL: none), as
 * luaflow.signals.<NAME>(message) builds it. Not for ENDRUN. */
void lf_signal_new(lua_State *L, lf_signal code, const char *message);
/* Pushes core.signals: NAME -> metatable of every signal class. */
void lf_open_signals(lua_State *L);
/* Turns the error value at idx into its state: a signal's own state, or
 * plain_kind("<prefix><tostring(e)>") with e as result. Pushes the state's box
 * and returns the state (the box owns it). */
lf_state *lf_error_to_state(lua_State *L, int idx, lf_kind plain_kind, const char *prefix,
                            lf_signal *sig);
/* Pushes tostring(v), or "(error object is a T value)" when that fails. */
const char *lf_safe_tostring(lua_State *L, int idx, size_t *len);
/* Raises msg prefixed with the first stack frame outside luaflow ("/path/f.lua:3: "). */
int lf_raise(lua_State *L, const char *fmt, ...);
/* Pushes "/path/f.lua:3: " for that frame, or "" when there is none (or
 * when the engine, not the user's code, made the call that failed). */
void lf_push_where(lua_State *L);
/* Whether stack frame ar is a flow run's own C frame (lua_run.c). */
int lf_is_run_frame(lua_State *L, lua_Debug *ar);

/* Current-run facts the state constructors default from. */
int lf_current_run_count(lua_State *L);
int lf_current_loop_count(lua_State *L);

/* A C handler as a Lua value (state_handlers = {require("mod").count}). */
typedef struct {
  lf_handler_fn fn;
  void *ud;
  void (*free_ud)(void *ud);
} lf_chandler;

struct lf_task;
struct lf_flow;
struct lf_task *lf_check_task(lua_State *L, int idx);
struct lf_task *lf_test_task(lua_State *L, int idx); /* NULL when not a Task */
struct lf_flow *lf_check_flow(lua_State *L, int idx);

void lf_open_api(lua_State *L);

/* The one protected call: calls the function below nargs arguments with the
 * one message handler (lua_call.c); on an error leaves the error value as it
 * was raised and returns its status. */
int lf_pcall(lua_State *L, int nargs, int nresults);

/* Keeps the luaflow.table_args module (at idx) for the runs to come. */
void lf_table_args_set(lua_State *L, int idx);

/* The flow's index (1-based) of the task at `task`, or 0. */
int lf_flow_task_index(lua_State *L, int flow, int task);
/* The index of the one copy of the bare task at `bare` (0: none; several raise). */
int lf_flow_copy_index(lua_State *L, int flow, int bare);
/* Pushes a run's result (task -> state) from its states by task index at
 * `states`; returns its run counts by task index, for the caller to fill. */
int *lf_result_new(lua_State *L, int n, const int *order, int states, int flow);
/* The run result at idx in task_states() order: *n positions, order[k] the
 * task index (0-based) at position k, (*counts)[i] the run count of task i;
 * NULL when idx is no result. Valid while the result lives. Its user values
 * are its states by task index (1-based) and its flow. */
const int *lf_result_order(lua_State *L, int idx, int *n, const int **counts);
void lf_open_result(lua_State *L);

int lf_open_states(lua_State *L);
int lf_open_time(lua_State *L);
/* Sets core.task_map_mt and core.terminal_handlers in the table on the top. */
void lf_open_run_tables(lua_State *L);
/* Sets core.trigger_ids and core.trigger_check in the table on the top. */
void lf_open_triggers(lua_State *L);
void lf_open_task(lua_State *L);
void lf_open_flow(lua_State *L);
void lf_open_run(lua_State *L);
void lf_open_map(lua_State *L);   /* core.task_set_map (lua_map.c) */
void lf_open_cache(lua_State *L); /* core.cache_db, core.cache_hooks (lua_cache.c) */
void lf_open_task_policy(lua_State *L); /* lua_task_policy.c */
void lf_open_codec(lua_State *L);
void lf_open_json_lines(lua_State *L); /* core.json_lines: the --json writer */
void lf_open_terminal(lua_State *L);   /* core.terminal_columns, core.progress */

#endif
