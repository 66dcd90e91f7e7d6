/* Shared by the Task and Flow bindings (lua_task.c, lua_flow.c). */
#ifndef LF_LUA_GRAPH_H
#define LF_LUA_GRAPH_H

#include "graph.h"
#include "lua_core.h"

/* The Task and Flow metatables are upvalues 1 and 2 of the core functions
 * (a Task function has only the first), and registry entries by address. */
enum { LF_UP_TASK_META = 1, LF_UP_FLOW_META = 2 };
extern const char lf_task_mt_key, lf_flow_mt_key;

/* The userdata at idx when its metatable is upvalue `up` (or the registry's
 * at key), else NULL. */
void *lf_test_ud(lua_State *L, int idx, int up, const void *key);

#define LF_IS_PARAMETER(t) ((t)->has_fn == 2)

int lf_is_callable(lua_State *L, int idx);
void lf_set_name(lua_State *L, lf_object *obj, const char *name);
/* state_handlers (at list) and on_failure into obj's handler array; the Lua
 * values go to the spec table at uv. */
void lf_parse_handlers(lua_State *L, lf_object *obj, int uv, int list, int on_failure);
/* lua_task_policy.c: retry_backoff, max_retry_delay, retry_jitter, retry_on,
 * deadline and on_overdue from opts (functions go to the spec table uv). */
void lf_parse_task_policy(lua_State *L, lf_task *t, int opts, int uv);
/* Task t's rarer options (graph.h), made with their defaults when the
 * first one is given; its spec table (at uv) keeps them. */
lf_task_policy *lf_task_policy_make(lua_State *L, lf_task *t, int uv);
/* A copy of the task at idx for one call in a builder (mt: the Task
 * metatable's index); pushes it. */
lf_task *lf_task_copy(lua_State *L, int idx, int mt);
void lf_task_rename(lua_State *L, lf_task *t, const char *name);
/* Argument position pos of the task at `task` is the constant at `value`. */
void lf_task_set_const(lua_State *L, int task, lf_task *t, int pos, int value);

#endif
