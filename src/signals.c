/* The signal table, from LF_SIGNAL_MAP. Lua-free. */
#include "signals.h"

static const struct {
  const char *name;
  lf_kind kind;
  int options;
} signals[LF_NSIGNALS] = {[LF_SIG_NONE] = {NULL, LF_FAILED, 0},
#define LF_XX(name, kind, options) [LF_SIG_##name] = {#name, LF_##kind, options},
                          LF_SIGNAL_MAP(LF_XX)
#undef LF_XX
};

const char *lf_signal_name(lf_signal code) {
  return (unsigned)code < LF_NSIGNALS ? signals[code].name : NULL;
}

lf_kind lf_signal_kind(lf_signal code) {
  return (unsigned)code < LF_NSIGNALS ? signals[code].kind : LF_FAILED;
}

int lf_signal_options(lf_signal code) {
  return (unsigned)code < LF_NSIGNALS ? signals[code].options : 0;
}

lf_signal lf_signal_for_kind(lf_kind k) {
  for (int code = 1; code < LF_NSIGNALS; code++)
    if (signals[code].kind == k && code != LF_SIG_ENDRUN) return (lf_signal)code;
  return LF_SIG_NONE;
}
