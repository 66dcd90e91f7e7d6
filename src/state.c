/* States: the class table (names, parents, colours) and the C state value. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "state.h"

#define LF_BIT(e) (1u << LF_##e)

static const char *const kind_name[LF_NKINDS] = {
#define LF_XX(e, name, parent, color) #name,
    LF_STATE_MAP(LF_XX)
#undef LF_XX
};

const char *const lf_kind_color[LF_NKINDS] = {
#define LF_XX(e, name, parent, color) color,
    LF_STATE_MAP(LF_XX)
#undef LF_XX
};

/* Each class's bit plus its ancestors' bits, worked out from the list's
 * parents at compile time, one level of ancestors a pass: M<n>_X knows n
 * levels. The last two passes must agree (the hierarchy is no deeper). */
#define M0(e, name, parent, color) M0_##e = 1u << LF_##e,
#define M1(e, name, parent, color) M1_##e = M0_##e | M0_##parent,
#define M2(e, name, parent, color) M2_##e = M0_##e | M1_##parent,
#define M3(e, name, parent, color) M3_##e = M0_##e | M2_##parent,
#define M4(e, name, parent, color) M4_##e = M0_##e | M3_##parent,
#define M5(e, name, parent, color) M5_##e = M0_##e | M4_##parent,
enum { LF_STATE_MAP(M0) };
enum { LF_STATE_MAP(M1) };
enum { LF_STATE_MAP(M2) };
enum { LF_STATE_MAP(M3) };
enum { LF_STATE_MAP(M4) };
enum { LF_STATE_MAP(M5) };
#define DEEP_ENOUGH(e, name, parent, color)                                              \
  _Static_assert((unsigned)M5_##e == (unsigned)M4_##e, "a class deeper than 5 levels");
LF_STATE_MAP(DEEP_ENOUGH)
_Static_assert(LF_NKINDS <= 31, "more classes than an int's bits");

const uint32_t lf_kind_mask[LF_NKINDS] = {
#define LF_XX(e, name, parent, color) [LF_##e] = M5_##e,
    LF_STATE_MAP(LF_XX)
#undef LF_XX
};

int lf_state_is(const lf_state *s, lf_kind cls) {
  return s && (unsigned)cls < LF_NKINDS && LF_IS(s, cls);
}

lf_kind lf_state_kind(const lf_state *s) {
  return (lf_kind)s->kind;
}

const char *lf_kind_name(lf_kind k) {
  return (unsigned)k < LF_NKINDS ? kind_name[k] : "?";
}

int lf_kind_from_name(const char *name, size_t len) {
  for (int k = 0; k < LF_NKINDS; k++)
    if (strlen(kind_name[k]) == len && memcmp(kind_name[k], name, len) == 0) return k;
  return -1;
}

int lf_kind_is_scheduled_family(lf_kind k) {
  return (lf_kind_mask[k] & LF_BIT(SCHEDULED)) || k == LF_QUEUED;
}

const char *lf_state_message(const lf_state *s) {
  return s->message;
}

int lf_state_run_count(const lf_state *s) {
  return s->run_count;
}

int lf_state_loop_count(const lf_state *s) {
  return s->loop_count;
}

int lf_state_start_time(const lf_state *s, double *t) {
  if (!s->has_start) return 0;
  *t = s->start_time;
  return 1;
}

lf_field_type lf_state_field(const lf_state *s, const char *name, lf_value *v) {
  for (int i = 0; i < s->nfields; i++)
    if (strcmp(s->fields[i].name, name) == 0) {
      *v = s->fields[i].v;
      return v->type;
    }
  return LF_FIELD_NONE;
}

int lf_state_nfields(const lf_state *s) {
  return s->nfields;
}

const char *lf_state_field_name(const lf_state *s, int i) {
  return i >= 0 && i < s->nfields ? s->fields[i].name : NULL;
}

static lf_state *state_alloc(lf_kind k) {
  lf_state *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->refs = 1;
  s->kind = (uint8_t)k;
  s->run_count = 1;
  s->loop_count = 1;
  return s;
}

lf_state *lf_state_static(lf_kind k, const char *message) {
  lf_state *s = state_alloc(k);
  if (s) s->message = message;
  return s;
}

lf_state *lf_state_newl(lf_kind k, const char *message, size_t len) {
  lf_state *s = state_alloc(k);
  if (!s || !message) return s;
  char *copy = malloc(len + 1);
  if (!copy) {
    free(s);
    return NULL;
  }
  memcpy(copy, message, len);
  copy[len] = '\0';
  s->message = copy;
  s->owns_message = 1;
  return s;
}

lf_state *lf_state_new(lf_kind k, const char *message) {
  if ((unsigned)k >= LF_NKINDS) return NULL;
  return lf_state_newl(k, message, message ? strlen(message) : 0);
}

lf_state *lf_state_ref(lf_state *s) {
  if (s) s->refs++;
  return s;
}

void lf_state_release(lf_state *s) {
  if (!s || --s->refs > 0) return;
  if (s->owns_message) free((char *)s->message);
  for (int i = 0; i < s->nfields; i++) {
    free(s->fields[i].name);
    if (s->fields[i].v.type == LF_FIELD_STRING) free((char *)s->fields[i].v.s);
  }
  free(s->fields);
  free(s);
}

int lf_state_add_field(lf_state *s, const char *name, const lf_value *v) {
  lf_field *grown = realloc(s->fields, (s->nfields + 1) * sizeof *grown);
  if (!grown) return -1;
  s->fields = grown;
  lf_field *f = &s->fields[s->nfields];
  f->name = strdup(name);
  f->v = *v;
  if (v->type == LF_FIELD_STRING) {
    char *copy = malloc(v->len + 1);
    if (copy) {
      memcpy(copy, v->s, v->len);
      copy[v->len] = '\0';
    }
    f->v.s = copy;
    if (!copy) f->v.type = LF_FIELD_NONE;
  }
  if (!f->name) return -1;
  s->nfields++;
  return 0;
}
