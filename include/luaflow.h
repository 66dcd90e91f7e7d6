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
 * - A program that embeds luaflow links the library
 *   (`cc prog.c $(pkg-config --cflags --libs luaflow)`) and uses the
 *   lf_engine_* functions at the end of this file.
 *
 * Strings and states the API returns are borrowed: they stay valid as long as
 * the object they were read from (a state while a reference to it is held, an
 * object while its handler runs, an engine's runs until its next run or
 * lf_engine_free). Reference counts are not atomic: take and release
 * references to a state on one thread at a time.
 */
#ifndef LUAFLOW_H
#define LUAFLOW_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version; LUAFLOW_VERSION_NUM is major * 10000 + minor * 100 + patch. */
#define LUAFLOW_VERSION_MAJOR 0
#define LUAFLOW_VERSION_MINOR 1
#define LUAFLOW_VERSION_PATCH 0
#define LUAFLOW_VERSION_NUM                                                              \
  (LUAFLOW_VERSION_MAJOR * 10000 + LUAFLOW_VERSION_MINOR * 100 + LUAFLOW_VERSION_PATCH)
#define LF__STRING(x) #x
#define LF__VERSION(major, minor, patch)                                                 \
  LF__STRING(major) "." LF__STRING(minor) "." LF__STRING(patch)
#define LUAFLOW_VERSION                                                                  \
  LF__VERSION(LUAFLOW_VERSION_MAJOR, LUAFLOW_VERSION_MINOR, LUAFLOW_VERSION_PATCH)

/* The version of the module function table (struct lf_api), and its
 * registry key. */
#define LF_API_VERSION 1
#define LF_API_REGISTRY_KEY "luaflow.api"

/* Marks the public functions: the only symbols luaflow.so and libluaflow.a
 * export (the rest of the library is built hidden). */
#if defined(__GNUC__) || defined(__clang__)
#define LUAFLOW_API __attribute__((visibility("default")))
#else
#define LUAFLOW_API
#endif

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
  int b;         /* LF_FIELD_BOOL */
  long long i;   /* LF_FIELD_INT */
  double f;      /* LF_FIELD_FLOAT */
  const char *s; /* LF_FIELD_STRING: NUL-terminated, owned by the state */
  size_t len;    /* LF_FIELD_STRING */
} lf_value;

/* A C state handler: obj goes from old_state to new_state (both borrowed for
 * the call). Return LF_KEEP to keep new_state, LF_REPLACE after setting *out
 * to a state built with lf_state_new (the engine takes that reference over),
 * or LF_ERROR after lf_handler_error: the object then fails as if a Lua
 * handler had raised ("Unexpected error while calling state handlers:
 * <message>"). A handler must not call into Lua nor longjmp out. */
enum { LF_KEEP = 0, LF_REPLACE = 1, LF_ERROR = 2 };
typedef int (*lf_handler_fn)(const lf_object *obj, const lf_state *old_state,
                             const lf_state *new_state, lf_state **out, void *ud);

struct lua_State;

/* Every function of the module function table, in its order (new ones are
 * only ever appended): XX(R when it returns a value or V, return type, name
 * without lf_, (parameters), (arguments)). From this one list come the
 * table's fields, the linked prototypes, a module's inline wrappers and the
 * engine's table (src/api.c). */
#define LF_API_MAP(XX)                                                                   \
  /* Class membership: 1 when s is of class cls or of one of its subclasses              \
   * (lf_state_is(timed_out, LF_FAILED) is 1), else 0 (also for a NULL s or an           \
   * unknown cls). */                                                                    \
  XX(R, int, state_is, (const lf_state *s, lf_kind cls), (s, cls))                       \
  /* The state's own class. */                                                           \
  XX(R, lf_kind, state_kind, (const lf_state *s), (s))                                   \
  /* The class's name ("Failed"), a static string; "?" for an unknown kind. */           \
  XX(R, const char *, kind_name, (lf_kind k), (k))                                       \
  /* The state's message, or NULL when it has none. */                                   \
  XX(R, const char *, state_message, (const lf_state *s), (s))                           \
  /* Retrying: the attempt it follows (1 for every other state). */                      \
  XX(R, int, state_run_count, (const lf_state *s), (s))                                  \
  /* Looped: the loop iteration it ends (1 for every other state). */                    \
  XX(R, int, state_loop_count, (const lf_state *s), (s))                                 \
  /* When a Scheduled-family state is due: stores epoch seconds (UTC) in *t and          \
   * returns 1; returns 0 and leaves *t alone when the state has no start time. */       \
  XX(R, int, state_start_time, (const lf_state *s, double *t), (s, t))                   \
  /* A scalar custom field a signal carried (sig.flag = true): fills *v and              \
   * returns its type, or returns LF_FIELD_NONE (*v untouched) when there is no          \
   * such field. A string value belongs to the state. */                                 \
  XX(R, lf_field_type, state_field, (const lf_state *s, const char *name, lf_value *v),  \
     (s, name, v))                                                                       \
  /* How many custom fields the state has. */                                            \
  XX(R, int, state_nfields, (const lf_state *s), (s))                                    \
  /* The name of custom field i (0 to lf_state_nfields - 1), NULL out of range. */       \
  XX(R, const char *, state_field_name, (const lf_state *s, int i), (s, i))              \
  /* A new state of class k with a copy of message (NULL: none), holding one             \
   * reference the caller owns until it hands the state to the engine                    \
   * (LF_REPLACE) or releases it. NULL when out of memory or k is no class. */           \
  XX(R, lf_state *, state_new, (lf_kind k, const char *message), (k, message))           \
  /* Takes one more reference to s, to keep it after the handler returns;                \
   * returns s (NULL stays NULL). */                                                     \
  XX(R, lf_state *, state_ref, (lf_state * s), (s))                                      \
  /* Drops one reference; the last one frees the state. NULL is ignored. */              \
  XX(V, void, state_release, (lf_state * s), (s))                                        \
  /* The task's or flow's name. */                                                       \
  XX(R, const char *, object_name, (const lf_object *obj), (obj))                        \
  /* 1 for a flow, 0 for a task. */                                                      \
  XX(R, int, object_is_flow, (const lf_object *obj), (obj))                              \
  /* Sets the message of the handler's LF_ERROR return (copied, at most 1023             \
   * bytes; NULL: "C handler failed"). The message is per thread: it is the one the      \
   * handler set on the thread it runs on. */                                            \
  XX(V, void, handler_error, (const lf_object *obj, const char *message),                \
     (obj, message))                                                                     \
  /* Pushes a Lua value (a luaflow.CHandler userdata) standing for the handler,          \
   * for state_handlers = {...}; free_ud(ud) runs when it is collected (free_ud          \
   * may be NULL). Raises a Lua error when out of memory. */                             \
  XX(V, void, handler_push,                                                              \
     (struct lua_State * L, lf_handler_fn fn, void *ud, void (*free_ud)(void *)),        \
     (L, fn, ud, free_ud))

/* The function table a module reaches through the registry. `size` tells
 * which entries an engine has (sizeof(lf_api) of the engine). */
typedef struct lf_api {
  int version; /* LF_API_VERSION */
  size_t size;
#define LF__API_FIELD(r, type, name, params, args) type(*name) params;
  LF_API_MAP(LF__API_FIELD)
#undef LF__API_FIELD
} lf_api;

#ifndef LUAFLOW_MODULE
/* ---- linked: the engine itself and programs that embed it ---- */

#define LF__API_DECL(r, type, name, params, args) LUAFLOW_API type lf_##name params;
LF_API_MAP(LF__API_DECL)
#undef LF__API_DECL

/* The engine's function table (what lf_module_init finds in the registry):
 * static, never NULL. */
LUAFLOW_API const lf_api *lf_api_table(void);

/* ---- embedding ---- */
typedef struct lf_engine lf_engine;

/* A Lua state with the standard libraries and luaflow loaded; NULL when out of
 * memory. Free it with lf_engine_free. One engine is used by one thread at a
 * time. */
LUAFLOW_API lf_engine *lf_engine_new(void);
/* A --param NAME=VALUE for the runs to come (VALUE is JSON when it parses,
 * else the string itself; both copied). Returns 0, or -1 with
 * lf_engine_error set. */
LUAFLOW_API int lf_engine_set_param(lf_engine *e, const char *name, const char *value);
/* Records the runs to come into the run store at path (an SQLite file,
 * created when missing), as `luaflow run --store PATH` does; NULL records
 * nothing (the default). Returns 0, or -1 with lf_engine_error set when the
 * store cannot be opened (corrupt, read-only, made by a newer luaflow ...). */
LUAFLOW_API int lf_engine_set_store(lf_engine *e, const char *path);
/* Runs a flow script as `luaflow run FILE` does (the flows it runs, else the
 * flow it returns or defines). Returns the exit code `luaflow run` would give:
 * 0 every flow run succeeded, 1 one did not, 2 script or usage error (see
 * lf_engine_error), 3 waiting for approval of paused tasks. The runs of an
 * earlier call are forgotten (the strings and states read from them too). */
LUAFLOW_API int lf_engine_run_file(lf_engine *e, const char *path);
/* The last error message, or NULL when the last run had none; valid until the
 * next call on e. */
LUAFLOW_API const char *lf_engine_error(const lf_engine *e);
/* How many flow runs the last lf_engine_run_file made (0 before any). */
LUAFLOW_API int lf_engine_nruns(const lf_engine *e);
/* The flow name and final state of run number `run` (0-based, in the order
 * they ran); NULL when out of range. Valid until the next lf_engine_run_file
 * or lf_engine_free (lf_state_ref the state to keep it longer). */
LUAFLOW_API const char *lf_engine_flow_name(const lf_engine *e, int run);
LUAFLOW_API const lf_state *lf_engine_flow_state(const lf_engine *e, int run);
/* How many tasks run number `run` has (0 when out of range); its tasks are
 * numbered 0 .. n - 1 in task_states() order. */
LUAFLOW_API int lf_engine_ntasks(const lf_engine *e, int run);
/* A task's name and final state, NULL when out of range; valid as the flow's. */
LUAFLOW_API const char *lf_engine_task_name(const lf_engine *e, int run, int task);
LUAFLOW_API const lf_state *lf_engine_task_state(const lf_engine *e, int run, int task);
/* The engine's Lua state, for anything else; it belongs to the engine. */
LUAFLOW_API struct lua_State *lf_engine_lua(lf_engine *e);
/* Closes the Lua state and frees everything the engine holds. NULL is ignored. */
LUAFLOW_API void lf_engine_free(lf_engine *e);

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

#define LF__RETURN_R return
#define LF__RETURN_V
#define LF__API_WRAPPER(r, type, name, params, args)                                     \
  static inline type lf_##name params {                                                  \
    LF__RETURN_##r lf__api->name args;                                                   \
  }
LF_API_MAP(LF__API_WRAPPER)
#undef LF__API_WRAPPER
#endif

#ifdef __cplusplus
}
#endif
#endif
