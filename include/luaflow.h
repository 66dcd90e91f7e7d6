/* luaflow: the public C API (docs/reference.md, "The C API"). Usable from C and C++.
 *
 * States are immutable, refcounted C values. A C state handler reads them
 * without entering Lua:
 *
 *   static int count(const lf_object *obj, const lf_state *old_state,
 *                    const lf_state *new_state, lf_state **out, void *ud) {
 *     if (lf_state_is(new_state, LF_FAILED)) ++*(int *)ud;
 *     return LF_KEEP;
 *   }
 *
 * Two ways to use this header:
 *
 * - A Lua C module (`require("myhandlers")`) defines LUAFLOW_MODULE before
 *   including it and links nothing of luaflow. Its luaopen_ function calls
 *   lf_module_init(L) first; every lf_* call then goes through the versioned
 *   function table the engine keeps in the Lua registry, so the module works
 *   the same under `luaflow` and under plain `lua5.4` with the luaflow module.
 *   lf_handler_push(L, fn, ud, free_ud) makes a handler a Lua value for
 *   `state_handlers = {...}`.
 *
 * - A program that embeds luaflow links build/libluaflow.a (plus -llua5.4
 *   -lcurl -lm) and uses the lf_engine_* functions at the end of this file.
 */
#ifndef LUAFLOW_H
#define LUAFLOW_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUAFLOW_VERSION "0.1.0"
#define LF_API_VERSION 1
#define LF_API_REGISTRY_KEY "luaflow.api"

/* Every state class, in hierarchy order: XX(ENUM, Name, Parent, colour). */
#define LF_STATE_MAP(XX)                                                                 \
  XX(STATE, State, STATE, "#696969")                                                     \
  XX(PENDING, Pending, STATE, "#7ebdff")                                                 \
  XX(SCHEDULED, Scheduled, PENDING, "#ffab00")                                           \
  XX(PAUSED, Paused, SCHEDULED, "#99a8e8")                                               \
  XX(RESUME, Resume, SCHEDULED, "#f58c0c")                                               \
  XX(RETRYING, Retrying, SCHEDULED, "#f66a0a")                                           \
  XX(META, _MetaState, STATE, "#696969")                                                 \
  XX(SUBMITTED, Submitted, META, "#ffdf5d")                                              \
  XX(QUEUED, Queued, META, "#ffea7f")                                                    \
  XX(RUNNING, Running, STATE, "#3d67ff")                                                 \
  XX(CANCELLING, Cancelling, RUNNING, "#E8E8E8")                                         \
  XX(FINISHED, Finished, STATE, "#003ccb")                                               \
  XX(LOOPED, Looped, FINISHED, "#003ccb")                                                \
  XX(SUCCESS, Success, FINISHED, "#28a745")                                              \
  XX(CACHED, Cached, SUCCESS, "#34d058")                                                 \
  XX(MAPPED, Mapped, SUCCESS, "#003ccb")                                                 \
  XX(SKIPPED, Skipped, SUCCESS, "#62757f")                                               \
  XX(CANCELLED, Cancelled, FINISHED, "#bdbdbd")                                          \
  XX(FAILED, Failed, FINISHED, "#eb0000")                                                \
  XX(TIMEDOUT, TimedOut, FAILED, "#ff4e33")                                              \
  XX(TRIGGERFAILED, TriggerFailed, FAILED, "#ff5131")                                    \
  XX(VALIDATIONFAILED, ValidationFailed, FAILED, "#ff5131")

typedef enum {
#define LF_XX(e, name, parent, color) LF_##e,
  LF_STATE_MAP(LF_XX)
#undef LF_XX
      LF_NKINDS
} lf_kind;

typedef struct lf_state lf_state;
typedef struct lf_object lf_object; /* a task or a flow */

/* The scalar custom fields a signal carried (sig.flag = true; sig.value = 1). */
typedef enum {
  LF_FIELD_NONE,
  LF_FIELD_BOOL,
  LF_FIELD_INT,
  LF_FIELD_FLOAT,
  LF_FIELD_STRING
} lf_field_type;

typedef struct {
  lf_field_type type;
  int b;          /* LF_FIELD_BOOL */
  long long i;    /* LF_FIELD_INT */
  double f;       /* LF_FIELD_FLOAT */
  const char *s;  /* LF_FIELD_STRING: NUL-terminated, owned by the state */
  size_t len;     /* LF_FIELD_STRING */
} lf_value;

/* A C state handler. Return LF_KEEP to keep new_state, LF_REPLACE after
 * setting *out to a state built with lf_state_new (the engine takes it over),
 * or LF_ERROR after lf_handler_error: the object then fails as if a Lua handler
 * had raised ("Unexpected error while calling state handlers: <message>"). */
enum { LF_KEEP = 0, LF_REPLACE = 1, LF_ERROR = 2 };
typedef int (*lf_handler_fn)(const lf_object *obj, const lf_state *old_state,
                             const lf_state *new_state, lf_state **out, void *ud);

struct lua_State;

/* The function table a module reaches through the registry. New entries are
 * only ever appended; `size` tells which ones an engine has. */
typedef struct lf_api {
  int version; /* LF_API_VERSION */
  size_t size; /* sizeof(lf_api) of the engine */
  int (*state_is)(const lf_state *s, lf_kind cls);
  lf_kind (*state_kind)(const lf_state *s);
  const char *(*kind_name)(lf_kind k);
  const char *(*state_message)(const lf_state *s);
  int (*state_run_count)(const lf_state *s);
  int (*state_loop_count)(const lf_state *s);
  int (*state_start_time)(const lf_state *s, double *t);
  lf_field_type (*state_field)(const lf_state *s, const char *name, lf_value *v);
  int (*state_nfields)(const lf_state *s);
  const char *(*state_field_name)(const lf_state *s, int i);
  lf_state *(*state_new)(lf_kind k, const char *message);
  lf_state *(*state_ref)(lf_state *s);
  void (*state_release)(lf_state *s);
  const char *(*object_name)(const lf_object *obj);
  int (*object_is_flow)(const lf_object *obj);
  void (*handler_error)(const lf_object *obj, const char *message);
  void (*handler_push)(struct lua_State *L, lf_handler_fn fn, void *ud, void (*free_ud)(void *));
} lf_api;

#ifndef LUAFLOW_MODULE
/* ---- linked: the engine itself and programs that embed it ---- */

/* Class membership: subclasses count (lf_state_is(timed_out, LF_FAILED) is 1). */
int lf_state_is(const lf_state *s, lf_kind cls);
lf_kind lf_state_kind(const lf_state *s);
const char *lf_kind_name(lf_kind k);
const char *lf_state_message(const lf_state *s); /* NULL when none */
int lf_state_run_count(const lf_state *s);       /* Retrying: the attempt it follows */
int lf_state_loop_count(const lf_state *s);      /* Looped */
/* Epoch seconds (UTC); returns 0 and leaves *t alone when the state has none. */
int lf_state_start_time(const lf_state *s, double *t);
/* Fills *v and returns its type, or LF_FIELD_NONE when there is no such field. */
lf_field_type lf_state_field(const lf_state *s, const char *name, lf_value *v);
int lf_state_nfields(const lf_state *s);
const char *lf_state_field_name(const lf_state *s, int i);

/* A new state (message copied; NULL for none), owned by the caller until it
 * is handed to the engine (LF_REPLACE) or released. */
lf_state *lf_state_new(lf_kind k, const char *message);
lf_state *lf_state_ref(lf_state *s);
void lf_state_release(lf_state *s);

const char *lf_object_name(const lf_object *obj);
int lf_object_is_flow(const lf_object *obj);
/* Sets the message of an LF_ERROR return (copied). */
void lf_handler_error(const lf_object *obj, const char *message);
/* Pushes a Lua value standing for the handler; free_ud(ud) runs when it is
 * collected (free_ud may be NULL). */
void lf_handler_push(struct lua_State *L, lf_handler_fn fn, void *ud, void (*free_ud)(void *));

/* The engine's function table (what lf_module_init finds in the registry). */
const lf_api *lf_api_table(void);

/* ---- embedding ---- */
typedef struct lf_engine lf_engine;

/* A Lua state with luaflow loaded; NULL when out of memory. */
lf_engine *lf_engine_new(void);
/* A --param NAME=VALUE for the runs to come (VALUE is JSON when it parses). */
int lf_engine_set_param(lf_engine *e, const char *name, const char *value);
/* Runs a flow script as `luaflow run FILE` does (the flows it runs, else the
 * flow it returns or defines). Returns the exit code `luaflow run` would give:
 * 0 every flow run succeeded, 1 one did not, 2 script or usage error (see
 * lf_engine_error), 3 waiting for approval of paused tasks. */
int lf_engine_run_file(lf_engine *e, const char *path);
const char *lf_engine_error(const lf_engine *e); /* the last error, or NULL */
/* The flow runs of the last lf_engine_run_file, in order. */
int lf_engine_nruns(const lf_engine *e);
const char *lf_engine_flow_name(const lf_engine *e, int run);
const lf_state *lf_engine_flow_state(const lf_engine *e, int run);
/* Its tasks in task_states() order. */
int lf_engine_ntasks(const lf_engine *e, int run);
const char *lf_engine_task_name(const lf_engine *e, int run, int task);
const lf_state *lf_engine_task_state(const lf_engine *e, int run, int task);
/* The Lua state, for anything else. */
struct lua_State *lf_engine_lua(lf_engine *e);
void lf_engine_free(lf_engine *e);

#else
/* ---- a Lua C module: every call goes through the registry's table ---- */
#include <lauxlib.h>
#include <lua.h>

static const lf_api *lf__api;

/* Finds the engine's function table (loading luaflow if needed); raises a Lua
 * error when there is none or its version is not LF_API_VERSION. */
static inline void lf_module_init(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LF_API_REGISTRY_KEY) != LUA_TLIGHTUSERDATA) {
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "luaflow");
    lua_call(L, 1, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, LF_API_REGISTRY_KEY);
  }
  const lf_api *api = (const lf_api *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!api || api->version != LF_API_VERSION || api->size < sizeof(lf_api))
    luaL_error(L, "luaflow: this module needs luaflow C API version %d", LF_API_VERSION);
  lf__api = api;
}

static inline int lf_state_is(const lf_state *s, lf_kind cls) { return lf__api->state_is(s, cls); }
static inline lf_kind lf_state_kind(const lf_state *s) { return lf__api->state_kind(s); }
static inline const char *lf_kind_name(lf_kind k) { return lf__api->kind_name(k); }
static inline const char *lf_state_message(const lf_state *s) { return lf__api->state_message(s); }
static inline int lf_state_run_count(const lf_state *s) { return lf__api->state_run_count(s); }
static inline int lf_state_loop_count(const lf_state *s) { return lf__api->state_loop_count(s); }
static inline int lf_state_start_time(const lf_state *s, double *t) {
  return lf__api->state_start_time(s, t);
}
static inline lf_field_type lf_state_field(const lf_state *s, const char *name, lf_value *v) {
  return lf__api->state_field(s, name, v);
}
static inline int lf_state_nfields(const lf_state *s) { return lf__api->state_nfields(s); }
static inline const char *lf_state_field_name(const lf_state *s, int i) {
  return lf__api->state_field_name(s, i);
}
static inline lf_state *lf_state_new(lf_kind k, const char *message) {
  return lf__api->state_new(k, message);
}
static inline lf_state *lf_state_ref(lf_state *s) { return lf__api->state_ref(s); }
static inline void lf_state_release(lf_state *s) { lf__api->state_release(s); }
static inline const char *lf_object_name(const lf_object *obj) { return lf__api->object_name(obj); }
static inline int lf_object_is_flow(const lf_object *obj) { return lf__api->object_is_flow(obj); }
static inline void lf_handler_error(const lf_object *obj, const char *message) {
  lf__api->handler_error(obj, message);
}
static inline void lf_handler_push(lua_State *L, lf_handler_fn fn, void *ud, void (*free_ud)(void *)) {
  lf__api->handler_push(L, fn, ud, free_ud);
}
#endif

#ifdef __cplusplus
}
#endif
#endif
