/* The public getters of tasks and flows, and a C handler's error message
 * (one per thread: handlers may run on several). Lua-free. */
#include <stdio.h>
#include "graph.h"
#include "object.h"

static _Thread_local char handler_error[1024];

void lf_handler_error(const lf_object *obj, const char *message) {
  (void)obj;
  snprintf(handler_error, sizeof handler_error, "%s",
           message ? message : "C handler failed");
}

void lf_handler_error_reset(void) {
  handler_error[0] = '\0';
}

const char *lf_handler_error_text(void) {
  return handler_error[0] ? handler_error : "C handler failed";
}

const char *lf_object_name(const lf_object *obj) {
  return obj->name;
}

int lf_object_is_flow(const lf_object *obj) {
  return obj->is_flow;
}
