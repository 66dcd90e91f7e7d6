/* States: immutable refcounted C values; class membership is one AND. */
#ifndef LF_STATE_H
#define LF_STATE_H

#include <stdint.h>
#include "luaflow.h"

typedef struct {
  char *name;
  lf_value v;
} lf_field;

struct lf_state {
  uint32_t refs;
  uint8_t kind;
  uint8_t owns_message; /* message is malloc'ed (else a static string) */
  uint8_t has_result;   /* the result is a non-nil Lua value kept by the state's box */
  uint8_t has_start;
  uint8_t no_retry; /* a failure never retried: FAIL(..., {retry = false}) */
  int32_t run_count;
  int32_t loop_count;
  uint16_t nfields;
  uint32_t gen, slot; /* its box in a run (see lf_boxes) */
  double start_time;  /* epoch seconds, when has_start */
  const char *message;
  lf_field *fields;
};

extern const uint32_t lf_kind_mask[LF_NKINDS];
extern const char *const lf_kind_color[LF_NKINDS];

#define LF_IS(s, cls) ((lf_kind_mask[(s)->kind] >> (cls)) & 1u)

/* A state whose message is a static string (engine messages). */
lf_state *lf_state_static(lf_kind k, const char *message);
/* A state that copies message (len bytes). */
lf_state *lf_state_newl(lf_kind k, const char *message, size_t len);
/* Adds a scalar field (copies name and string value). Only before sharing. */
int lf_state_add_field(lf_state *s, const char *name, const lf_value *v);
/* Looks a class up by name ("Failed"); -1 when unknown. */
int lf_kind_from_name(const char *name, size_t len);
int lf_kind_is_scheduled_family(lf_kind k);

#endif
