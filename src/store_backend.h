/* What a database backend does for the run store. store.c keeps everything
 * else (the record queue, the writer thread, the chunk format, crash
 * detection, assembling rows), so a second backend (PostgreSQL, same tables)
 * implements only this table of functions. Lua-free. */
#ifndef LF_STORE_BACKEND_H
#define LF_STORE_BACKEND_H

#include "store.h"

/* One connection, used by one thread at a time. */
typedef struct lf_store_conn lf_store_conn;

/* The recording process, so that readers can tell a crashed run. */
typedef struct {
  const char *host;     /* host name (shown to users) */
  const char *host_key; /* boot id and pid namespace: where our pids mean something */
  long pid;
  long long proc_start; /* process start, in clock ticks since boot */
} lf_store_self;

/* A runs row as read; its strings live until the callback returns. */
typedef struct {
  lf_store_run run; /* counts left zero: see `counts` */
  long long key;
  const char *host_key;
  long long proc_start;
  const char *counts; /* {"Class": n}; NULL: none */
  size_t counts_len;
} lf_store_raw_run;

typedef int (*lf_store_run_cb)(const lf_store_raw_run *r, void *ud);
/* A delivery or an outbox item as read; its strings live until the callback
 * returns. */
typedef int (*lf_store_delivery_cb)(const lf_store_delivery *d, void *ud);
typedef int (*lf_store_outbox_cb)(const lf_store_outbox_item *it, void *ud);

/* What an outbox change does. */
enum { LF_OUTBOX_ADD, LF_OUTBOX_UPDATE, LF_OUTBOX_REMOVE };
/* A chunk's records: format LF_FORMAT_JSON (schema version 1, store_codec.h)
 * or LF_FORMAT_BINARY (store_chunk.h); raw: 0 when body is them as they are,
 * else body is them compressed (zlib) from raw bytes. The writer writes
 * binary chunks only. */
enum { LF_FORMAT_JSON = 1, LF_FORMAT_BINARY = 2 };
typedef int (*lf_store_chunk_cb)(const void *body, size_t len, size_t raw, int format,
                                 void *ud);

enum { LF_CHUNK_TASK, LF_CHUNK_TRANSITION, LF_CHUNK_LOG, LF_NCHUNKS };

/* Which runs a listing wants, newest first. */
typedef struct {
  const char *flow;          /* NULL: any */
  const char *const *states; /* final classes accepted; NULL: any */
  int nstates;
  int unfinished;        /* 1: only runs without an end */
  double started_before; /* 0: any */
  int limit;             /* 0: all */
} lf_store_select;

/* What the writer changes in a run's row (fields left 0/NULL are kept). */
typedef struct {
  const char *counts; /* {"Class": n} */
  size_t counts_len;
  double heartbeat;
  int end; /* 1: the run ended, with the fields below */
  double ended;
  const char *state, *message;
  int exit_code; /* -1: none */
} lf_store_run_update;

/* Every function returning int gives 0, or -1 with *err set (code and a
 * message naming the store). */
typedef struct {
  const char *name;
  /* Opens the store at path (creating the file when create), checks its
   * schema and migrates it. With write, a store that cannot be written opens
   * anyway and is reported by readonly(). */
  lf_store_conn *(*open)(const char *path, int create, int write, double busy_timeout,
                         lf_store_error *err);
  void (*close)(lf_store_conn *c);
  int (*readonly)(lf_store_conn *c);
  int (*schema_version)(lf_store_conn *c);

  /* Writing: one batch is one transaction, taken with the write lock. */
  int (*begin)(lf_store_conn *c, lf_store_error *err);
  int (*commit)(lf_store_conn *c, lf_store_error *err);
  void (*rollback)(lf_store_conn *c);
  int (*insert_run)(lf_store_conn *c, const lf_store_run *run, const lf_store_self *self,
                    long long *key, lf_store_error *err);
  int (*update_run)(lf_store_conn *c, long long key, const lf_store_run_update *u,
                    lf_store_error *err);
  int (*insert_chunk)(lf_store_conn *c, long long key, int kind, size_t n,
                      const void *body, size_t len, size_t raw, lf_store_error *err);

  /* Deliveries and the outbox, inside the open batch. A delivery's run_id
   * names its runs row (none when that run is not recorded). owner is the
   * recording process ("host:pid"), the claim of the items it adds. */
  int (*insert_delivery)(lf_store_conn *c, const lf_store_delivery *d,
                         lf_store_error *err);
  int (*change_outbox)(lf_store_conn *c, int op, const lf_store_outbox_item *it,
                       const char *owner, lf_store_error *err);

  /* Reading. find_runs: the run with this id, or (prefix) up to limit runs
   * whose id starts with it, newest first. */
  int (*select_runs)(lf_store_conn *c, const lf_store_select *sel, lf_store_run_cb cb,
                     void *ud, lf_store_error *err);
  int (*find_runs)(lf_store_conn *c, const char *id, int prefix, int limit,
                   lf_store_run_cb cb, void *ud, lf_store_error *err);
  int (*each_chunk)(lf_store_conn *c, long long key, int kind, lf_store_chunk_cb cb,
                    void *ud, lf_store_error *err);
  /* A run's deliveries in the order they were recorded; the outbox, oldest
   * first. */
  int (*select_deliveries)(lf_store_conn *c, const char *run_id, lf_store_delivery_cb cb,
                           void *ud, lf_store_error *err);
  int (*select_outbox)(lf_store_conn *c, lf_store_outbox_cb cb, void *ud,
                       lf_store_error *err);
  /* Deletes these runs and all recorded for them, in one transaction. */
  int (*delete_runs)(lf_store_conn *c, const long long *keys, size_t n,
                     lf_store_error *err);
} lf_store_backend;

extern const lf_store_backend lf_store_sqlite;

/* Fills *err: code and a formatted one-line message. Returns -1. */
int lf_store_fail(lf_store_error *err, lf_store_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
