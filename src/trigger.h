/* Built-in triggers: when a task may run, from its upstreams' states, with
 * Prefect 1's messages. One list, read by trigger.c and exported to Lua as
 * core.trigger_ids (lua/luaflow/triggers.lua). Lua-free. */
#ifndef LF_TRIGGER_H
#define LF_TRIGGER_H

#include "luaflow.h"

/* Every built-in trigger, by id (1, 2, ...): XX(ENUM, name). */
#define LF_TRIGGER_MAP(XX)                                                               \
  XX(ALL_SUCCESSFUL, all_successful)                                                     \
  XX(ALL_FAILED, all_failed)                                                             \
  XX(ANY_SUCCESSFUL, any_successful)                                                     \
  XX(ANY_FAILED, any_failed)                                                             \
  XX(ALL_FINISHED, all_finished)                                                         \
  XX(MANUAL_ONLY, manual_only)                                                           \
  XX(NOT_ALL_SKIPPED, not_all_skipped)                                                   \
  XX(SOME_SUCCESSFUL, some_successful)                                                   \
  XX(SOME_FAILED, some_failed)

enum {
  LF_TRIGGER_LUA, /* a trigger written in Lua: the host calls it */
#define LF_XX(e, name) LF_TRIGGER_##e,
  LF_TRIGGER_MAP(LF_XX)
#undef LF_XX
      LF_NTRIGGERS
};

/* "all_successful", ...; NULL for LF_TRIGGER_LUA or an unknown id. */
const char *lf_trigger_name(int trigger);

/* Trigger outcome: pass, or the state it fails the task with. */
typedef struct {
  int pass;
  lf_kind kind;
  const char *message; /* a static string */
} lf_trigger_result;

/* Checks a built-in trigger over the n upstream states (one per upstream
 * task). at_least/at_most bound some_successful and some_failed (below 1 a
 * fraction of n, else a count; < 0 unset); resume: the task was approved to
 * run (manual_only passes). An unknown id passes. */
lf_trigger_result lf_trigger_check(int trigger, lf_state *const *states, int n,
                                   double at_least, double at_most, int resume);

#endif
