/* The embedding path waits for asynchronous deliveries as the CLI does:
 * when lf_engine_run_file returns, what the file queued has its outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "luaflow.h"
#include "sender.h"
#include "test.h"

/* A flow whose task queues one webhook delivery to a port nobody listens on:
 * the sender keeps trying for deliver_within (0.6 s), then gives up. */
static const char flow_source[] =
    "local luaflow = require('luaflow')\n"
    "local n = luaflow.notifications\n"
    "local h = n.webhook_notifier{url_secret = 'HOOK', async = true, deliver_within = "
    "0.6,\n"
    "                             only_states = {'Success'}}\n"
    "local t = luaflow.Task{name = 't', state_handlers = {h}}\n"
    "luaflow.Flow{name = 'f', tasks = {t}}:run{secrets = {HOOK = "
    "'http://127.0.0.1:1/h'}}\n";

TEST_IMPL(engine_run_file_waits_for_async_deliveries) {
  char path[] = "/tmp/luaflow-ctest-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, flow_source, sizeof flow_source - 1),
            (long)(sizeof flow_source - 1));
  close(fd);
  setenv("LUAFLOW_LOG_LEVEL", "CRITICAL", 1);
  unsigned long delivered0, failed0, delivered, failed;
  lf_sender_totals(&delivered0, &failed0);
  lf_engine *e = lf_engine_new();
  ASSERT_NOT_NULL(e);
  int code = lf_engine_run_file(e, path);
  ASSERT_EQ(lf_sender_pending(), 0); /* given up before run_file returned */
  lf_sender_totals(&delivered, &failed);
  ASSERT_EQ(failed, failed0 + 1);
  ASSERT_EQ(delivered, delivered0);
  ASSERT_EQ(code, 0); /* a failed async delivery never changes a task's state */
  lf_engine_free(e);
  unlink(path);
  return 0;
}
