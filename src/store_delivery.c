/* The run store's notification deliveries and outbox: recorded through the
 * same queue and writer as runs (records of no run), read straight from
 * their tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "delivery.h"
#include "store_codec.h"
#include "store_priv.h"

/* ---- recording (any thread) ---- */

int lf_store_record_delivery(lf_store *s, const lf_store_delivery *d) {
  if (!s || !d) return -1;
  rec_delivery k = {.h = {.type = REC_DELIVERY, .flag = (uint8_t)(d->ok != 0)},
                    .time = d->time,
                    .duration = d->duration};
  const char *str[] = {d->run_id, d->transition_id, d->notifier, d->destination,
                       d->status};
  return lf_store_append(s, &k.h, sizeof k, str, k.len, 5);
}

static int outbox_change(lf_store *s, int type, const lf_store_outbox_item *it) {
  if (!s || !it) return -1;
  rec_outbox k = {.h.type = (uint8_t)type,
                  .created = it->created,
                  .deliver_by = it->deliver_by,
                  .next_attempt = it->next_attempt,
                  .attempts = it->attempts};
  int add = type == REC_OUTBOX_ADD;
  const char *str[] = {
      add ? it->run_id : NULL,      it->transition_id,        it->notifier,
      add ? it->destination : NULL, add ? it->payload : NULL, it->last_error};
  return lf_store_append(s, &k.h, sizeof k, str, k.len, 6);
}

int lf_store_outbox_add(lf_store *s, const lf_store_outbox_item *it) {
  return outbox_change(s, REC_OUTBOX_ADD, it);
}

int lf_store_outbox_update(lf_store *s, const lf_store_outbox_item *it) {
  return outbox_change(s, REC_OUTBOX_UPDATE, it);
}

int lf_store_outbox_remove(lf_store *s, const lf_store_outbox_item *it) {
  return outbox_change(s, REC_OUTBOX_REMOVE, it);
}

/* ---- the journal of deliveries (delivery.h) ---- */

static void journal_delivered(void *ud, const lf_delivery *d) {
  lf_store_record_delivery(ud, d);
}

static void journal_outbox(void *ud, int op, const lf_store_outbox_item *it) {
  if (op == LF_OUTBOX_ADD)
    lf_store_outbox_add(ud, it);
  else if (op == LF_OUTBOX_UPDATE)
    lf_store_outbox_update(ud, it);
  else
    lf_store_outbox_remove(ud, it);
}

void lf_store_attach_deliveries(lf_store *s) {
  if (!s) return;
  lf_delivery_journal j = {s, journal_delivered, journal_outbox};
  lf_delivery_set_journal(&j);
}

void lf_store_detach_deliveries(lf_store *s) {
  lf_delivery_unset_journal(s);
}

/* ---- the writer's part ---- */

int lf_store_write_loose(lf_store *s, const rec_head *h, lf_store_error *err) {
  if (h->type == REC_DELIVERY) {
    const rec_delivery *k = (const rec_delivery *)h;
    const char *str[5];
    lf_rec_strings(h, sizeof *k, k->len, 5, str);
    lf_store_delivery d = {str[0],  str[1],      str[2],  str[3],
                           k->time, k->duration, h->flag, str[4]};
    return s->be->insert_delivery(s->writer, &d, err);
  }
  const rec_outbox *k = (const rec_outbox *)h;
  const char *str[6];
  lf_rec_strings(h, sizeof *k, k->len, 6, str);
  lf_store_outbox_item it = {.run_id = str[0],
                             .transition_id = str[1],
                             .notifier = str[2],
                             .destination = str[3],
                             .payload = str[4],
                             .created = k->created,
                             .deliver_by = k->deliver_by,
                             .next_attempt = k->next_attempt,
                             .attempts = k->attempts,
                             .last_error = str[5]};
  int op = h->type == REC_OUTBOX_ADD      ? LF_OUTBOX_ADD
           : h->type == REC_OUTBOX_UPDATE ? LF_OUTBOX_UPDATE
                                          : LF_OUTBOX_REMOVE;
  char owner[320];
  snprintf(owner, sizeof owner, "%s:%ld", s->host, (long)s->self.pid);
  return s->be->change_outbox(s->writer, op, &it, owner, err);
}

/* ---- reading ---- */

typedef struct {
  lf_store_arena *a;
  void *rows;
  size_t n, cap, size;
} rows_ctx;

static void *next_row(rows_ctx *c) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    void *p = realloc(c->rows, cap * c->size);
    if (!p) return NULL;
    c->rows = p;
    c->cap = cap;
  }
  void *row = (char *)c->rows + c->n++ * c->size;
  memset(row, 0, c->size);
  return row;
}

/* Copies *p into the arena (a NULL stays NULL); nonzero when memory ran out. */
static int keep(lf_store_arena *a, const char **p) {
  if (!*p) return 0;
  *p = lf_arena_strndup(a, *p, strlen(*p));
  return *p == NULL;
}

static int collect_delivery(const lf_store_delivery *d, void *ud) {
  rows_ctx *c = ud;
  lf_store_delivery *row = next_row(c);
  if (!row) return -1;
  *row = *d;
  return keep(c->a, &row->run_id) | keep(c->a, &row->transition_id) |
         keep(c->a, &row->notifier) | keep(c->a, &row->destination) |
         keep(c->a, &row->status);
}

static int collect_item(const lf_store_outbox_item *it, void *ud) {
  rows_ctx *c = ud;
  lf_store_outbox_item *row = next_row(c);
  if (!row) return -1;
  *row = *it;
  return keep(c->a, &row->run_id) | keep(c->a, &row->transition_id) |
         keep(c->a, &row->notifier) | keep(c->a, &row->destination) |
         keep(c->a, &row->payload) | keep(c->a, &row->last_error) |
         keep(c->a, &row->claimed_by);
}

/* Runs one select under the reader's lock and hands its rows to out. */
static int read_rows(lf_store *s, const char *run_id, size_t size, lf_store_rows *out,
                     lf_store_error *err) {
  memset(out, 0, sizeof *out);
  rows_ctx c = {.a = lf_arena_new(), .size = size};
  int rc = -1;
  if (!c.a) {
    lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", s->path);
  } else {
    pthread_mutex_lock(&s->read_mu);
    rc = run_id ? s->be->select_deliveries(s->reader, run_id, collect_delivery, &c, err)
                : s->be->select_outbox(s->reader, collect_item, &c, err);
    pthread_mutex_unlock(&s->read_mu);
  }
  if (rc == 0 && c.rows && lf_arena_adopt(c.a, c.rows)) {
    c.rows = NULL; /* freed by the adoption that failed */
    rc = lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", s->path);
  }
  if (rc != 0) {
    free(c.rows);
    lf_arena_free(c.a);
    return -1;
  }
  out->n = c.n;
  out->deliveries = c.rows;
  out->arena = c.a;
  return 0;
}

int lf_store_run_deliveries(lf_store *s, const char *run_id, lf_store_rows *out,
                            lf_store_error *err) {
  if (!run_id) {
    memset(out, 0, sizeof *out);
    return lf_store_fail(err, LF_STORE_EINVAL, "run store %s: no run id", s->path);
  }
  return read_rows(s, run_id, sizeof(lf_store_delivery), out, err);
}

int lf_store_outbox_list(lf_store *s, lf_store_rows *out, lf_store_error *err) {
  return read_rows(s, NULL, sizeof(lf_store_outbox_item), out, err);
}
