/* The public C API from C: a handler's error message belongs to the thread
 * that set it (handlers may run on worker threads). */
#include <pthread.h>
#include "lua_core.h"
#include "object.h"
#include "test.h"

static void *set_and_read(void *arg) {
  const char *message = arg;
  for (int i = 0; i < 1000; i++) {
    lf_handler_error_reset();
    lf_handler_error(NULL, message);
    if (strcmp(lf_handler_error_text(), message) != 0) return (void *)"mixed";
  }
  return NULL;
}

TEST_IMPL(api_handler_error_is_per_thread) {
  lf_handler_error_reset();
  ASSERT_STR_EQ(lf_handler_error_text(), "C handler failed"); /* nothing set */
  lf_handler_error(NULL, "main thread");
  pthread_t a, b;
  ASSERT_OK(pthread_create(&a, NULL, set_and_read, (void *)"thread a"));
  ASSERT_OK(pthread_create(&b, NULL, set_and_read, (void *)"thread b"));
  void *ra, *rb;
  ASSERT_OK(pthread_join(a, &ra));
  ASSERT_OK(pthread_join(b, &rb));
  ASSERT_NULL(ra);
  ASSERT_NULL(rb);
  ASSERT_STR_EQ(lf_handler_error_text(), "main thread"); /* untouched by the others */
  lf_handler_error(NULL, NULL);
  ASSERT_STR_EQ(lf_handler_error_text(), "C handler failed");
  return 0;
}

TEST_IMPL(api_table_matches_the_linked_functions) {
  const lf_api *api = lf_api_table();
  ASSERT_NOT_NULL(api);
  ASSERT_EQ(api->version, LF_API_VERSION);
  ASSERT_EQ(api->size, sizeof(lf_api));
#define XX(r, type, name, params, args) ASSERT(api->name == lf_##name);
  LF_API_MAP(XX)
#undef XX
  lf_state *s = api->state_new(LF_RETRYING, "again");
  ASSERT(api->state_is(s, LF_SCHEDULED));
  ASSERT_STR_EQ(api->state_message(s), "again");
  api->state_release(s);
  return 0;
}
