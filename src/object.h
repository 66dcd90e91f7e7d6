/* Tasks and flows as C handlers see them (the public lf_object getters and
 * lf_handler_error are in luaflow.h). Lua-free. */
#ifndef LF_OBJECT_H
#define LF_OBJECT_H

/* The message of this thread's last LF_ERROR (or a default); reset before
 * each C handler call. */
const char *lf_handler_error_text(void);
extern _Thread_local char lf_handler_error_message[1024];
static inline void lf_handler_error_reset(void) {
  lf_handler_error_message[0] = '\0';
}

#endif
