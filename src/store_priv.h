/* The run store's insides, shared by store.c (opening, the queue),
 * store_writer.c (the writer thread), store_read.c (the readers) and
 * store_proc.c (which process recorded a run). */
#ifndef LF_STORE_PRIV_H
#define LF_STORE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "store_backend.h"
#include "store_chunk.h"
#include "store_codec.h"

typedef struct qblock qblock;

#define QBLOCK_SIZE (64 * 1024) /* queue memory comes in blocks this big */
#define BATCH_BYTES (1u << 20)  /* a queue this full wakes the writer early */
#define QUEUE_MAX (64u << 20)   /* appenders wait while the queue is this full */
#define SPARE_MAX (4u << 20)    /* queue blocks kept for reuse */
#define CHUNK_MAX (1u << 20)    /* a records row holds about this much */

struct qblock {
  qblock *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

enum {
  REC_BEGIN,
  REC_TASK,
  REC_TRANSITION,
  REC_LOG,
  REC_END,
  /* records of no run (rec_head.run is NULL): store_delivery.c writes them */
  REC_DELIVERY,
  REC_OUTBOX_ADD,
  REC_OUTBOX_UPDATE,
  REC_OUTBOX_REMOVE
};

/* A queued record: a fixed part by type, then its strings in order (each
 * NUL-terminated; a length of NO_STR is a NULL string). Sizes are multiples
 * of 8. State classes travel as one byte. */
typedef struct {
  uint32_t size;
  uint8_t type, kind_a, kind_b, flag;
  lf_store_recorder *run;
} rec_head;

#define NO_STR UINT32_MAX

typedef struct {
  rec_head h; /* kind_a: old, kind_b: new */
  double time;
  int32_t index, map_index, seq;
  uint32_t len[2]; /* name, message */
} rec_transition;

typedef struct {
  rec_head h; /* kind_a: state, flag: result stored */
  double started, ended;
  int32_t index, map_index, run_count;
  uint32_t len[3]; /* name, message, result */
} rec_task;

typedef struct {
  rec_head h;
  double time;
  int32_t level;
  uint32_t len[2]; /* logger, message */
} rec_log;

typedef struct {
  rec_head h; /* kind_a: final state */
  double ended;
  int32_t exit_code;
  uint32_t len[1]; /* message */
} rec_end;

typedef struct {
  rec_head h;
  double started;
  int32_t ntasks;
  uint32_t len[6]; /* id, flow, script, parameters, executor, restart_of */
} rec_begin;

typedef struct {
  rec_head h; /* flag: ok */
  double time, duration;
  uint32_t len[5]; /* run_id, transition_id, notifier, destination, status */
} rec_delivery;

typedef struct {
  rec_head h;
  double created, deliver_by, next_attempt;
  int32_t attempts;
  uint32_t len[6]; /* run_id, transition_id, notifier, destination, payload, last_error */
} rec_outbox;

/* The strings that follow a record's fixed part (size bytes). */
static inline void lf_rec_strings(const rec_head *h, size_t size, const uint32_t *len,
                                  int n, const char **str) {
  const char *p = (const char *)h + size;
  for (int i = 0; i < n; i++) {
    str[i] = len[i] == NO_STR ? NULL : p;
    if (str[i]) p += len[i] + 1;
  }
}

/* A recorder's lane: the records of the thread that began its run, appended
 * without a lock (that thread the one producer, the writer the one
 * consumer). A block's `published` bytes are complete; its `next` is set
 * once the producer has published the last of it. */
typedef struct lane_block {
  _Atomic(struct lane_block *) next;
  _Atomic size_t published;
  size_t cap;
  _Alignas(16) unsigned char data[];
} lane_block;

/* What a batch takes of a lane: up to `end` bytes of block `last`. */
typedef struct {
  lane_block *last;
  size_t end;
} lane_mark;

struct lf_store_recorder {
  lf_store *store;
  lf_store_recorder *prev, *next; /* s->recorders, under s->mu */
  pthread_t thread;               /* the one that began the run: it uses the lane */
  /* The lane's producer (that thread) alone: */
  lane_block *ltail;
  size_t lused;             /* bytes of ltail written */
  size_t lappended, lsince; /* bytes in all; since the writer was last woken */
  /* Shared: */
  _Atomic(lane_block *) lfirst; /* the lane's first block */
  _Atomic(lane_block *) lspare; /* consumed blocks for the producer to reuse */
  _Atomic size_t lconsumed;     /* bytes the writer is done with */
  /* The writer thread's alone: */
  lane_block *lhead; /* the block it reads, from byte lread */
  size_t lread;
  lane_mark lmark;          /* what the open batch takes */
  lf_store_recorder *lnext; /* the next recorder whose lane the batch takes */
  long long key, new_key;   /* its runs row (new_: written in the open batch) */
  int rejected, new_rejected;
  const rec_head *end; /* its END record, in the open batch */
  int touched;
  lf_store_recorder *next_touched;
  lf_chunk_enc chunk[LF_NCHUNKS];
  int counts[LF_NKINDS], delta[LF_NKINDS];
};

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
  unsigned long long taken, committed; /* batches */
  int flush_wanted, closing, failed;
  int lanes_full;  /* a lane holds BATCH_BYTES since the writer was woken */
  _Atomic int off; /* failed or closing: appenders stop (read without mu) */
  lf_store_error failure;
  lf_store_recorder *recorders; /* unfinished, for close to free */

  /* The writer thread and what only it touches. */
  int recording;
  pthread_t thread;
  lf_store_conn *writer;
  double flush_interval, busy_timeout;
  double next_heartbeat; /* monotonic */
  int hurry;    /* the engine outruns the writer: this batch is stored uncompressed */
  int detached; /* lf_store_close_later: the writer frees the store when done */
};

/* Queues a record of no run (a delivery, an outbox change): its fixed part
 * (size bytes) then n strings. 0, or -1 when dropped. */
int lf_store_append(lf_store *s, rec_head *fixed, size_t size, const char *const *str,
                    uint32_t *len, int n);
/* The writer's part for those records, inside its open transaction. */
int lf_store_write_loose(lf_store *s, const rec_head *h, lf_store_error *err);
/* Closes the connections and frees everything (the writer has stopped). */
void lf_store_free(lf_store *s);
/* Frees a recorder: its chunks, its lane, itself. */
void lf_store_free_recorder(lf_store_recorder *r);
/* Stops recording for good (under s->mu): records are dropped from now on. */
void lf_store_set_failure(lf_store *s, const lf_store_error *err);
/* The writer thread (store_writer.c). */
void *lf_store_writer_main(void *arg);

/* Fills s->self (and s->host, s->host_key) for this process. */
void lf_store_identify(lf_store *s);
/* Is the process that recorded an unfinished run still alive? */
int lf_store_run_alive(const lf_store *s, long pid, const char *host_key,
                       long long proc_start, double heartbeat);

#endif
