/* The public getters of tasks and flows, and a C handler's error message
 * (one per thread: handlers may run on several). Lua-free. */
#include <stdio.h>
#include "graph.h"
#include "object.h"

_Thread_local char lf_handler_error_message[1024];

void lf_handler_error(const lf_object *obj, const char *message) {
  (void)obj;
  snprintf(lf_handler_error_message, sizeof lf_handler_error_message, "%s",
           message ? message : "C handler failed");
}

const char *lf_handler_error_text(void) {
  return lf_handler_error_message[0] ? lf_handler_error_message : "C handler failed";
}

const char *lf_object_name(const lf_object *obj) {
  return obj->name;
}

int lf_object_is_flow(const lf_object *obj) {
  return obj->is_flow;
}
