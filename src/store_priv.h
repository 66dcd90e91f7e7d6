/* The run store's insides, shared by store.c (opening, the queue, the writer
 * thread) and store_read.c (the readers). */
#ifndef LF_STORE_PRIV_H
#define LF_STORE_PRIV_H

#include <pthread.h>
#include "store_backend.h"

typedef struct qblock qblock;

struct lf_store {
  char *path;
  long owner; /* the pid that opened it: a forked child leaves it alone */
  const lf_store_backend *be;
  lf_store_self self;
  char host[256], host_key[96];

  /* Readers: one connection, one call at a time. */
  pthread_mutex_t read_mu;
  lf_store_conn *reader;

  /* The queue the engine appends to (everything below under mu). */
  pthread_mutex_t mu;
  pthread_cond_t wake;  /* the writer: records arrived, a flush, closing */
  pthread_cond_t done;  /* flushers: a batch was committed */
  pthread_cond_t space; /* appenders held back by a full queue */
  qblock *head, *tail, *spare;
  size_t queued, spare_bytes;
  unsigned long long appended, committed; /* records */
  int flush_wanted, closing, failed;
  lf_store_error failure;
  lf_store_recorder *recorders; /* unfinished, for close to free */

  /* The writer thread and what only it touches. */
  int recording;
  pthread_t thread;
  lf_store_conn *writer;
  double flush_interval, busy_timeout;
  double next_heartbeat; /* monotonic */
};

/* Fills s->self (and s->host, s->host_key) for this process. */
void lf_store_identify(lf_store *s);
/* Is the process that recorded an unfinished run still alive? */
int lf_store_run_alive(const lf_store *s, long pid, const char *host_key,
                       long long proc_start, double heartbeat);

#endif
