/* Signals: the values a task, handler or trigger raises with error(sig) to
 * choose the state it ends in. One list, read by the C side (lua_signal.c)
 * and exported to Lua as core.signals (lua/luaflow/signals.lua). Lua-free. */
#ifndef LF_SIGNALS_H
#define LF_SIGNALS_H

#include "luaflow.h"

/* Options a signal passes to its state's own fields (not custom fields). */
enum { LF_SIGOPT_START_TIME = 1, LF_SIGOPT_RUN_COUNT = 2 };

/* Every signal, by code (1, 2, ...; codes cross between Lua states and are
 * stored, so only ever append): XX(NAME, state kind, state options). ENDRUN
 * carries a whole state; its kind column is unused. */
#define LF_SIGNAL_MAP(XX)                                                                \
  XX(FAIL, FAILED, 0)                                                                    \
  XX(SUCCESS, SUCCESS, 0)                                                                \
  XX(RETRY, RETRYING, LF_SIGOPT_START_TIME | LF_SIGOPT_RUN_COUNT)                        \
  XX(SKIP, SKIPPED, 0)                                                                   \
  XX(PAUSE, PAUSED, LF_SIGOPT_START_TIME)                                                \
  XX(LOOP, LOOPED, 0)                                                                    \
  XX(ENDRUN, STATE, 0)                                                                   \
  XX(TRIGGERFAIL, TRIGGERFAILED, 0)                                                      \
  XX(VALIDATIONFAIL, VALIDATIONFAILED, 0)

typedef enum {
  LF_SIG_NONE, /* not a signal */
#define LF_XX(name, kind, options) LF_SIG_##name,
  LF_SIGNAL_MAP(LF_XX)
#undef LF_XX
      LF_NSIGNALS
} lf_signal;

/* "FAIL", ...; NULL for LF_SIG_NONE or an unknown code. */
const char *lf_signal_name(lf_signal code);
/* The class of state a signal gives (LF_FAILED for LF_SIG_NONE: a plain error). */
lf_kind lf_signal_kind(lf_signal code);
/* Its LF_SIGOPT_* bits. */
int lf_signal_options(lf_signal code);
/* The signal that gives a state of class k (TRIGGERFAIL for TriggerFailed,
 * ...), or LF_SIG_NONE when none does. */
lf_signal lf_signal_for_kind(lf_kind k);

#endif
