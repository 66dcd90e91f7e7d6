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

/* Each class's bit plus its ancestors' bits, written out so it is a constant. */
#define M_STATE LF_BIT(STATE)
#define M_PENDING (M_STATE | LF_BIT(PENDING))
#define M_SCHEDULED (M_PENDING | LF_BIT(SCHEDULED))
#define M_META (M_STATE | LF_BIT(META))
#define M_RUNNING (M_STATE | LF_BIT(RUNNING))
#define M_FINISHED (M_STATE | LF_BIT(FINISHED))
#define M_SUCCESS (M_FINISHED | LF_BIT(SUCCESS))
#define M_FAILED (M_FINISHED | LF_BIT(FAILED))
const uint32_t lf_kind_mask[LF_NKINDS] = {
    [LF_STATE] = M_STATE,
    [LF_PENDING] = M_PENDING,
    [LF_SCHEDULED] = M_SCHEDULED,
    [LF_PAUSED] = M_SCHEDULED | LF_BIT(PAUSED),
    [LF_RESUME] = M_SCHEDULED | LF_BIT(RESUME),
    [LF_RETRYING] = M_SCHEDULED | LF_BIT(RETRYING),
    [LF_META] = M_META,
    [LF_SUBMITTED] = M_META | LF_BIT(SUBMITTED),
    [LF_QUEUED] = M_META | LF_BIT(QUEUED),
    [LF_RUNNING] = M_RUNNING,
    [LF_CANCELLING] = M_RUNNING | LF_BIT(CANCELLING),
    [LF_FINISHED] = M_FINISHED,
    [LF_LOOPED] = M_FINISHED | LF_BIT(LOOPED),
    [LF_SUCCESS] = M_SUCCESS,
    [LF_CACHED] = M_SUCCESS | LF_BIT(CACHED),
    [LF_MAPPED] = M_SUCCESS | LF_BIT(MAPPED),
    [LF_SKIPPED] = M_SUCCESS | LF_BIT(SKIPPED),
    [LF_CANCELLED] = M_FINISHED | LF_BIT(CANCELLED),
    [LF_FAILED] = M_FAILED,
    [LF_TIMEDOUT] = M_FAILED | LF_BIT(TIMEDOUT),
    [LF_TRIGGERFAILED] = M_FAILED | LF_BIT(TRIGGERFAILED),
    [LF_VALIDATIONFAILED] = M_FAILED | LF_BIT(VALIDATIONFAILED),
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
