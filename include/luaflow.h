/* luaflow: the public C API (API.md section 8).
 *
 * States are immutable, refcounted C values. A C state handler reads them
 * without entering Lua:
 *
 *   static int count(const lf_object *obj, const lf_state *old_state,
 *                    const lf_state *new_state, lf_state **out, void *ud) {
 *     if (lf_state_is(new_state, LF_FAILED)) ++*(int *)ud;
 *     return LF_KEEP;
 *   }
 */
#ifndef LUAFLOW_H
#define LUAFLOW_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUAFLOW_VERSION "0.1.0"

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

/* Class membership: subclasses count (lf_state_is(timed_out, LF_FAILED) is 1). */
int lf_state_is(const lf_state *s, lf_kind cls);
lf_kind lf_state_kind(const lf_state *s);
const char *lf_kind_name(lf_kind k);
const char *lf_state_message(const lf_state *s); /* NULL when none */
int lf_state_run_count(const lf_state *s);
int lf_state_loop_count(const lf_state *s);
/* Epoch seconds (UTC); returns 0 and leaves *t alone when the state has none. */
int lf_state_start_time(const lf_state *s, double *t);

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
  int b;
  long long i;
  double f;
  const char *s; /* NUL-terminated copy, owned by the state */
  size_t len;
} lf_value;
/* Fills *v and returns its type, or LF_FIELD_NONE when the state has no such field. */
lf_field_type lf_state_field(const lf_state *s, const char *name, lf_value *v);
int lf_state_nfields(const lf_state *s);
const char *lf_state_field_name(const lf_state *s, int i);

/* Building states. A state returned by lf_state_new is owned by the caller
 * until handed to the engine (LF_REPLACE) or released. */
lf_state *lf_state_new(lf_kind k, const char *message);
lf_state *lf_state_ref(lf_state *s);
void lf_state_release(lf_state *s);

/* The name a task or flow is printed with. */
const char *lf_object_name(const lf_object *obj);
int lf_object_is_flow(const lf_object *obj);

/* A C state handler: LF_KEEP keeps new_state, LF_REPLACE hands *out to the
 * engine, LF_ERROR fails the run like a Lua handler that raised (set the
 * message with lf_handler_error). */
enum { LF_KEEP = 0, LF_REPLACE = 1, LF_ERROR = 2 };
typedef int (*lf_handler_fn)(const lf_object *obj, const lf_state *old_state,
                             const lf_state *new_state, lf_state **out, void *ud);
void lf_handler_error(const lf_object *obj, const char *message);

#ifdef __cplusplus
}
#endif
#endif
