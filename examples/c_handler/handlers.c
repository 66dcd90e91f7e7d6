/* Example C state handlers for luaflow, loaded with require("handlers").
 * It links nothing of luaflow: every lf_* call goes through the function
 * table the engine keeps in the Lua registry (LUAFLOW_MODULE). */
#define LUAFLOW_MODULE
#include <stdio.h>
#include <stdlib.h>
#include <luaflow.h>

typedef struct {
  lua_Integer calls, failures;
} counter;

/* Counts every state change and the failed ones; keeps the state. */
static int count(const lf_object *obj, const lf_state *old_state,
                 const lf_state *new_state, lf_state **out, void *ud) {
  (void)obj, (void)old_state, (void)out;
  counter *c = ud;
  c->calls++;
  if (lf_state_is(new_state, LF_FAILED)) c->failures++;
  return LF_KEEP;
}

/* Reads the flag and value a FAIL signal carried, from C. */
static int alert(const lf_object *obj, const lf_state *old_state,
                 const lf_state *new_state, lf_state **out, void *ud) {
  (void)old_state, (void)out, (void)ud;
  lf_value flag, value;
  if (!lf_state_is(new_state, LF_FAILED)) return LF_KEEP;
  if (lf_state_field(new_state, "flag", &flag) != LF_FIELD_BOOL || !flag.b)
    return LF_KEEP;
  printf("C alert on %s: %s\n", lf_object_name(obj), lf_state_message(new_state));
  switch (lf_state_field(new_state, "value", &value)) {
  case LF_FIELD_INT:
    printf("value = %lld (integer)\n", value.i);
    break;
  case LF_FIELD_FLOAT:
    printf("value = %g (float)\n", value.f);
    break;
  case LF_FIELD_STRING:
    printf("value = %s (string)\n", value.s);
    break;
  case LF_FIELD_BOOL:
    printf("value = %s (boolean)\n", value.b ? "true" : "false");
    break;
  default:
    printf("value = nil\n");
    break;
  }
  fflush(stdout);
  return LF_KEEP;
}

/* Replaces a failure with Skipped. */
static int skip_failures(const lf_object *obj, const lf_state *old_state,
                         const lf_state *new_state, lf_state **out, void *ud) {
  (void)obj, (void)old_state, (void)ud;
  if (!lf_state_is(new_state, LF_FAILED)) return LF_KEEP;
  *out = lf_state_new(LF_SKIPPED, "skipped by a C handler");
  return LF_REPLACE;
}

/* Always fails, like a Lua handler that raises. */
static int refuse(const lf_object *obj, const lf_state *old_state,
                  const lf_state *new_state, lf_state **out, void *ud) {
  (void)old_state, (void)new_state, (void)out, (void)ud;
  lf_handler_error(obj, "the C handler refused");
  return LF_ERROR;
}

static int counter_read(lua_State *L) {
  counter *c = lua_touserdata(L, lua_upvalueindex(2));
  lua_pushinteger(L, c->calls);
  lua_pushinteger(L, c->failures);
  return 2;
}

/* handlers.counter() -> handler, read() -> calls, failures */
static int new_counter(lua_State *L) {
  counter *c = calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "out of memory");
  lf_handler_push(L, count, c, free);
  lua_pushvalue(L, -1); /* read() keeps the handler (and so c) alive */
  lua_pushlightuserdata(L, c);
  lua_pushcclosure(L, counter_read, 2);
  return 2;
}

int luaopen_handlers(lua_State *L);
int luaopen_handlers(lua_State *L) {
  lf_module_init(L);
  lua_newtable(L);
  lua_pushcfunction(L, new_counter);
  lua_setfield(L, -2, "counter");
  lf_handler_push(L, alert, NULL, NULL);
  lua_setfield(L, -2, "alert");
  lf_handler_push(L, skip_failures, NULL, NULL);
  lua_setfield(L, -2, "skip_failures");
  lf_handler_push(L, refuse, NULL, NULL);
  lua_setfield(L, -2, "refuse");
  return 1;
}
