/* The run store's readers: runs, tasks, transitions and log lines as rows,
 * with unfinished runs shown as Running or Crashed; and pruning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "state.h"
#include "store_codec.h"
#include "store_priv.h"

/* ---- a growable array whose memory the result's arena takes over ---- */

typedef struct {
  void *p;
  size_t n, cap, size;
} vec;

static void *vec_push(vec *v) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 16;
    void *p = realloc(v->p, cap * v->size);
    if (!p) return NULL;
    v->p = p;
    v->cap = cap;
  }
  void *e = (char *)v->p + v->n++ * v->size;
  memset(e, 0, v->size);
  return e;
}

static int oom(lf_store *s, lf_store_error *err) {
  return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", s->path);
}

/* Hands v's rows to out (its arena owns them from now on). */
static int give_rows(lf_store *s, vec *v, lf_store_arena *a, lf_store_rows *out,
                     lf_store_error *err) {
  void *rows = v->p;
  v->p = NULL;
  if (lf_arena_adopt(a, rows)) {
    lf_arena_free(a);
    return oom(s, err);
  }
  out->n = v->n;
  out->runs = rows;
  out->arena = a;
  return 0;
}

void lf_store_rows_free(lf_store_rows *rows) {
  if (!rows) return;
  lf_arena_free(rows->arena);
  memset(rows, 0, sizeof *rows);
}

/* ---- runs ---- */

typedef struct {
  lf_store *s;
  lf_store_arena *a;
  vec v;
  const char *want; /* "Running" or "Crashed": keep only those */
  int limit;
} runs_ctx;

static int copy_str(lf_store_arena *a, const char **dst, const char *src) {
  if (!src) return 0;
  *dst = lf_arena_strndup(a, src, strlen(src));
  return *dst ? 0 : -1;
}

static int collect_run(const lf_store_raw_run *raw, void *ud) {
  runs_ctx *c = ud;
  const char *state = raw->run.state;
  if (!state)
    state = lf_store_run_alive(c->s, raw->run.pid, raw->host_key, raw->proc_start,
                               raw->run.heartbeat)
                ? "Running"
                : "Crashed";
  if (c->want && strcmp(state, c->want) != 0) return 0;
  if (c->limit > 0 && c->v.n >= (size_t)c->limit) return 0;
  lf_store_run *r = vec_push(&c->v);
  if (!r) return -1;
  *r = raw->run;
  r->id = r->flow = r->script = r->parameters = r->executor = r->restart_of = NULL;
  r->state = r->message = r->host = NULL;
  if (raw->counts) lf_codec_parse_counts(raw->counts, raw->counts_len, r->counts);
  return copy_str(c->a, &r->id, raw->run.id) || copy_str(c->a, &r->flow, raw->run.flow) ||
         copy_str(c->a, &r->script, raw->run.script) ||
         copy_str(c->a, &r->parameters, raw->run.parameters) ||
         copy_str(c->a, &r->executor, raw->run.executor) ||
         copy_str(c->a, &r->restart_of, raw->run.restart_of) ||
         copy_str(c->a, &r->state, state) ||
         copy_str(c->a, &r->message, raw->run.message) ||
         copy_str(c->a, &r->host, raw->run.host);
}

static void runs_begin(lf_store *s, runs_ctx *c) {
  memset(c, 0, sizeof *c);
  c->s = s;
  c->v.size = sizeof(lf_store_run);
}

static int runs_end(runs_ctx *c, int rc, lf_store_rows *out, lf_store_error *err) {
  if (rc == 0) return give_rows(c->s, &c->v, c->a, out, err);
  free(c->v.p);
  lf_arena_free(c->a);
  return -1;
}

int lf_store_list_runs(lf_store *s, const lf_store_query *q, lf_store_rows *out,
                       lf_store_error *err) {
  memset(out, 0, sizeof *out);
  lf_store_query none = {0};
  if (!q) q = &none;
  const char *names[LF_NKINDS];
  lf_store_select sel = {.flow = q->flow};
  runs_ctx c;
  runs_begin(s, &c);
  if (q->state && (!strcmp(q->state, "Running") || !strcmp(q->state, "Crashed"))) {
    sel.unfinished = 1; /* which of them is decided here, not by the database */
    c.want = q->state;
    c.limit = q->limit;
  } else if (q->state) {
    int cls = lf_kind_from_name(q->state, strlen(q->state));
    if (cls < 0)
      return lf_store_fail(err, LF_STORE_EINVAL,
                           "unknown state '%s' (a state class, Running or Crashed)",
                           q->state);
    for (int k = 0; k < LF_NKINDS; k++) /* the class and its subclasses */
      if (lf_kind_mask[k] >> cls & 1u) names[sel.nstates++] = lf_kind_name((lf_kind)k);
    sel.states = names;
    sel.limit = q->limit;
  } else
    sel.limit = q->limit;
  if (!(c.a = lf_arena_new())) return oom(s, err);
  pthread_mutex_lock(&s->read_mu);
  int rc = s->be->select_runs(s->reader, &sel, collect_run, &c, err);
  pthread_mutex_unlock(&s->read_mu);
  return runs_end(&c, rc, out, err);
}

typedef struct {
  runs_ctx *c;
  long long key;
  int finished;
} keyed_ctx;

static int collect_keyed(const lf_store_raw_run *raw, void *ud) {
  keyed_ctx *k = ud;
  k->key = raw->key;
  k->finished = raw->run.state != NULL;
  return collect_run(raw, k->c);
}

/* Under read_mu: the run with exactly this id (c->v.n is 0 or 1); *finished
 * (when not NULL) tells whether it ended. */
static int exact_run(lf_store *s, const char *id, runs_ctx *c, long long *key,
                     int *finished, lf_store_error *err) {
  keyed_ctx k = {c, 0, 0};
  int rc = s->be->find_runs(s->reader, id, 0, 1, collect_keyed, &k, err);
  *key = k.key;
  if (finished) *finished = k.finished;
  return rc;
}

int lf_store_find_run(lf_store *s, const char *ref, lf_store_rows *out,
                      lf_store_error *err) {
  memset(out, 0, sizeof *out);
  if (!ref || !*ref) return lf_store_fail(err, LF_STORE_EINVAL, "empty run id");
  runs_ctx c;
  runs_begin(s, &c);
  if (!(c.a = lf_arena_new())) return oom(s, err);
  long long key;
  pthread_mutex_lock(&s->read_mu);
  int rc;
  if (strcmp(ref, "last") == 0) {
    lf_store_select sel = {.limit = 1};
    rc = s->be->select_runs(s->reader, &sel, collect_run, &c, err);
    if (rc == 0 && c.v.n == 0)
      rc = lf_store_fail(err, LF_STORE_ENOTFOUND, "no runs recorded in %s", s->path);
  } else {
    rc = exact_run(s, ref, &c, &key, NULL, err);
    if (rc == 0 && c.v.n == 0) /* a prefix, then */
      rc = s->be->find_runs(s->reader, ref, 1, 6, collect_run, &c, err);
    if (rc == 0 && c.v.n == 0)
      rc = lf_store_fail(err, LF_STORE_ENOTFOUND, "no run '%s' in %s", ref, s->path);
    if (rc == 0 && c.v.n > 1) {
      char list[320] = "";
      const lf_store_run *runs = c.v.p;
      for (size_t i = 0; i < c.v.n && i < 5; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s (%s)",
                 i ? ", " : "", runs[i].id, runs[i].flow);
      rc =
          lf_store_fail(err, LF_STORE_EAMBIGUOUS, "run id prefix '%s' is ambiguous: %s%s",
                        ref, list, c.v.n > 5 ? " and more" : "");
    }
  }
  pthread_mutex_unlock(&s->read_mu);
  return runs_end(&c, rc, out, err);
}

/* ---- what a run recorded ---- */

typedef struct {
  vec v;
  lf_store_arena *a;
  int kind;
  int (*row)(const lf_jval *v, int n, void *ud); /* a JSON chunk's records */
} records_ctx;

/* A binary chunk's record, as it is. */
static int binary_row(const void *record, void *ud) {
  records_ctx *c = ud;
  void *e = vec_push(&c->v);
  if (!e) return -1;
  memcpy(e, record, c->v.size);
  return 0;
}

static int each_records(const void *body, size_t len, int format, records_ctx *c) {
  if (format == LF_FORMAT_BINARY)
    return lf_chunk_each(c->kind, body, len, c->a, binary_row, c);
  if (format == LF_FORMAT_JSON) return lf_codec_each(body, len, c->a, c->row, c);
  return -1; /* a format this luaflow does not know: a corrupt row */
}

static int each_body(const void *body, size_t len, size_t raw, int format, void *ud) {
  records_ctx *c = ud;
  if (!raw) return each_records(body, len, format, c);
  char *plain = lf_codec_inflate(body, len, raw);
  int rc = plain ? each_records(plain, raw, format, c) : -1;
  free(plain);
  return rc;
}

/* A class by name; one this luaflow does not know is State. */
static lf_kind kind_of(const lf_jval *v) {
  int k = lf_kind_from_name(v->str, v->len);
  return k < 0 ? LF_STATE : (lf_kind)k;
}

static double num_or_zero(const lf_jval *v) {
  return v->type == LF_JNUM ? v->num : 0;
}

static const char *str_or_null(const lf_jval *v) {
  return v->type == LF_JSTR ? v->str : NULL;
}

static int task_row(const lf_jval *v, int n, void *ud) {
  records_ctx *c = ud;
  if (n != 10 || v[0].type != LF_JNUM || v[2].type != LF_JSTR || v[3].type != LF_JSTR)
    return -1;
  lf_store_task *t = vec_push(&c->v);
  if (!t) return -1;
  t->index = (int)v[0].num;
  t->map_index = (int)num_or_zero(&v[1]);
  t->name = v[2].str;
  t->state = kind_of(&v[3]);
  t->message = str_or_null(&v[4]);
  t->run_count = (int)num_or_zero(&v[5]);
  t->started = num_or_zero(&v[6]);
  t->ended = num_or_zero(&v[7]);
  t->result = str_or_null(&v[8]);
  t->result_len = t->result ? v[8].len : 0;
  t->result_stored = num_or_zero(&v[9]) != 0;
  return 0;
}

static int transition_row(const lf_jval *v, int n, void *ud) {
  records_ctx *c = ud;
  if (n != 8 || v[0].type != LF_JNUM || v[2].type != LF_JNUM || v[3].type != LF_JSTR ||
      v[4].type != LF_JSTR || v[5].type != LF_JSTR || v[7].type != LF_JNUM)
    return -1;
  lf_store_transition *t = vec_push(&c->v);
  if (!t) return -1;
  t->index = (int)v[0].num;
  t->map_index = (int)num_or_zero(&v[1]);
  t->seq = (int)v[2].num;
  t->name = v[3].str;
  t->old_state = kind_of(&v[4]);
  t->new_state = kind_of(&v[5]);
  t->message = str_or_null(&v[6]);
  t->time = v[7].num;
  return 0;
}

static int log_row(const lf_jval *v, int n, void *ud) {
  records_ctx *c = ud;
  if (n != 4 || v[0].type != LF_JNUM || v[1].type != LF_JNUM || v[2].type != LF_JSTR ||
      v[3].type != LF_JSTR)
    return -1;
  lf_store_log *l = vec_push(&c->v);
  if (!l) return -1;
  l->time = v[0].num;
  l->level = (int)v[1].num;
  l->logger = v[2].str;
  l->message = v[3].str;
  l->message_len = v[3].len;
  return 0;
}

/* Under read_mu: decodes every record of one kind the run holds into c. */
static int read_records(lf_store *s, long long key, int kind, records_ctx *c,
                        lf_store_error *err) {
  static int (*const rows[LF_NCHUNKS])(const lf_jval *, int,
                                       void *) = {task_row, transition_row, log_row};
  static const size_t sizes[LF_NCHUNKS] = {
      sizeof(lf_store_task), sizeof(lf_store_transition), sizeof(lf_store_log)};
  c->row = rows[kind];
  c->kind = kind;
  c->v.size = sizes[kind];
  return s->be->each_chunk(s->reader, key, kind, each_body, c, err);
}

/* Under read_mu: the key of the run with this id. */
/* Under read_mu: the key of the run with this id; *finished (when not NULL)
 * tells whether it ended. */
static int key_of(lf_store *s, const char *run_id, long long *key, int *finished,
                  lf_store_error *err) {
  runs_ctx c;
  runs_begin(s, &c);
  if (!(c.a = lf_arena_new())) return oom(s, err);
  int rc = exact_run(s, run_id ? run_id : "", &c, key, finished, err);
  if (rc == 0 && c.v.n == 0)
    rc = lf_store_fail(err, LF_STORE_ENOTFOUND, "no run '%s' in %s", run_id, s->path);
  free(c.v.p);
  lf_arena_free(c.a);
  return rc;
}

static int read_run_records(lf_store *s, const char *run_id, int kind, lf_store_rows *out,
                            lf_store_error *err) {
  memset(out, 0, sizeof *out);
  records_ctx c = {0};
  if (!(c.a = lf_arena_new())) return oom(s, err);
  long long key;
  pthread_mutex_lock(&s->read_mu);
  int rc = key_of(s, run_id, &key, NULL, err);
  if (rc == 0) rc = read_records(s, key, kind, &c, err);
  pthread_mutex_unlock(&s->read_mu);
  if (rc == 0) return give_rows(s, &c.v, c.a, out, err);
  free(c.v.p);
  lf_arena_free(c.a);
  return -1;
}

int lf_store_run_transitions(lf_store *s, const char *run_id, lf_store_rows *out,
                             lf_store_error *err) {
  return read_run_records(s, run_id, LF_CHUNK_TRANSITION, out, err);
}

/* Log lines by time, those of one time in the order they were stored. */
typedef struct {
  double time;
  size_t at;
} log_key;

static int cmp_log(const void *a, const void *b) {
  const log_key *x = a, *y = b;
  if (x->time != y->time) return x->time < y->time ? -1 : 1;
  return (x->at > y->at) - (x->at < y->at);
}

int lf_store_run_logs(lf_store *s, const char *run_id, lf_store_rows *out,
                      lf_store_error *err) {
  if (read_run_records(s, run_id, LF_CHUNK_LOG, out, err)) return -1;
  /* The run's own thread and the others (worker threads) record through
   * different paths, each in order: shown merged by the time of each line. */
  size_t n = out->n, sorted = 1;
  for (size_t i = 1; i < n && sorted; i++)
    sorted = !(out->logs[i].time < out->logs[i - 1].time);
  if (sorted) return 0;
  log_key *keys = malloc(n * sizeof *keys);
  lf_store_log *copy = malloc(n * sizeof *copy);
  if (!keys || !copy) {
    free(keys);
    free(copy);
    lf_store_rows_free(out);
    return oom(s, err);
  }
  for (size_t i = 0; i < n; i++)
    keys[i] = (log_key){out->logs[i].time, i};
  qsort(keys, n, sizeof *keys, cmp_log);
  memcpy(copy, out->logs, n * sizeof *copy);
  for (size_t i = 0; i < n; i++)
    out->logs[i] = copy[keys[i].at];
  free(keys);
  free(copy);
  return 0;
}

/* ---- tasks: final records, plus the last state of tasks without one ---- */

static int cmp_task(const void *a, const void *b) {
  const lf_store_task *x = a, *y = b;
  if (x->index != y->index) return x->index < y->index ? -1 : 1;
  return (x->map_index > y->map_index) - (x->map_index < y->map_index);
}

/* Sorts transitions by object, keeping their recorded order within one. */
typedef struct {
  int index, map_index;
  size_t at;
} object_ref;

static int cmp_object(const void *a, const void *b) {
  const object_ref *x = a, *y = b;
  if (x->index != y->index) return x->index < y->index ? -1 : 1;
  if (x->map_index != y->map_index) return x->map_index < y->map_index ? -1 : 1;
  return (x->at > y->at) - (x->at < y->at);
}

/* Adds a row for every task that has transitions in tr but no final record. */
static int add_unfinished(vec *tasks, const lf_store_transition *tr, size_t ntr) {
  object_ref *refs = malloc((ntr ? ntr : 1) * sizeof *refs);
  if (!refs) return -1;
  for (size_t i = 0; i < ntr; i++)
    refs[i] = (object_ref){tr[i].index, tr[i].map_index, i};
  qsort(refs, ntr, sizeof *refs, cmp_object);
  size_t nfinal = tasks->n;
  for (size_t i = 0; i < ntr;) {
    size_t j = i, running = 0;
    for (; j < ntr && refs[j].index == refs[i].index &&
           refs[j].map_index == refs[i].map_index;
         j++)
      running += tr[refs[j].at].new_state == LF_RUNNING;
    const lf_store_transition *first = &tr[refs[i].at], *last = &tr[refs[j - 1].at];
    lf_store_task key = {.index = first->index, .map_index = first->map_index};
    if (first->index > 0 &&
        !(nfinal && bsearch(&key, tasks->p, nfinal, sizeof(lf_store_task), cmp_task))) {
      lf_store_task *t = vec_push(tasks);
      if (!t) {
        free(refs);
        return -1;
      }
      *t = (lf_store_task){first->index,
                           first->map_index,
                           last->name,
                           last->new_state,
                           last->message,
                           (int)running,
                           first->time,
                           0,
                           NULL,
                           0,
                           1};
    }
    i = j;
  }
  free(refs);
  return 0;
}

int lf_store_run_tasks(lf_store *s, const char *run_id, lf_store_rows *out,
                       lf_store_error *err) {
  memset(out, 0, sizeof *out);
  records_ctx c = {0}, tr = {0};
  if (!(c.a = lf_arena_new())) return oom(s, err);
  tr.a = c.a; /* the unfinished tasks' strings live in the result */
  long long key;
  int finished = 0;
  pthread_mutex_lock(&s->read_mu);
  int rc = key_of(s, run_id, &key, &finished, err);
  if (rc == 0) rc = read_records(s, key, LF_CHUNK_TASK, &c, err);
  if (rc == 0 && !finished) rc = read_records(s, key, LF_CHUNK_TRANSITION, &tr, err);
  pthread_mutex_unlock(&s->read_mu);
  if (rc == 0) {
    if (c.v.n > 1) qsort(c.v.p, c.v.n, sizeof(lf_store_task), cmp_task);
    if (add_unfinished(&c.v, tr.v.p, tr.v.n))
      rc = oom(s, err);
    else if (c.v.n > 1)
      qsort(c.v.p, c.v.n, sizeof(lf_store_task), cmp_task);
  }
  free(tr.v.p);
  if (rc == 0) return give_rows(s, &c.v, c.a, out, err);
  free(c.v.p);
  lf_arena_free(c.a);
  return -1;
}

/* ---- prune ---- */

typedef struct {
  lf_store *s;
  int keep;
  size_t seen;
  vec keys;
} prune_ctx;

static int collect_doomed(const lf_store_raw_run *raw, void *ud) {
  prune_ctx *p = ud;
  if (p->keep >= 0 && p->seen++ < (size_t)p->keep) return 0;
  if (!raw->run.state && lf_store_run_alive(p->s, raw->run.pid, raw->host_key,
                                            raw->proc_start, raw->run.heartbeat))
    return 0; /* still being recorded */
  long long *k = vec_push(&p->keys);
  if (!k) return -1;
  *k = raw->key;
  return 0;
}

int lf_store_prune(lf_store *s, int keep, double before, size_t *deleted,
                   lf_store_error *err) {
  *deleted = 0;
  if (keep < 0 && !(before > 0))
    return lf_store_fail(err, LF_STORE_EINVAL,
                         "prune: give a number of runs to keep or a date");
  prune_ctx p = {s, keep, 0, {.size = sizeof(long long)}};
  lf_store_select sel = {.started_before = keep < 0 ? before : 0};
  pthread_mutex_lock(&s->read_mu);
  int rc = s->be->select_runs(s->reader, &sel, collect_doomed, &p, err);
  if (rc == 0 && p.keys.n) rc = s->be->delete_runs(s->reader, p.keys.p, p.keys.n, err);
  pthread_mutex_unlock(&s->read_mu);
  if (rc == 0) *deleted = p.keys.n;
  free(p.keys.p);
  return rc;
}
