/* The Threads executor (lua_executors.h): worker threads, each with a Lua
 * state of its own, take jobs from one queue; a reply goes to the done list
 * and wakes the engine through an eventfd (a signal interrupts the engine's
 * wait, which a condition variable would not).
 *
 * Timeouts and the cancellation work in a worker as on the engine: its body
 * runs under a watch (an instruction hook; a blocking C call runs to its
 * end). SIGINT/SIGTERM are the engine thread's: the workers block them and
 * are poked with the timer signal when the run is cancelled. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "interrupt.h"
#include "lua_executors.h"
#include "lua_worker.h"

#define ERR_TEXT 512

typedef struct job {
  struct job *next;
  int task;
  int no_worker; /* its worker's state could not be made: reply is why */
  lf_buf msg, reply;
} job;

typedef struct {
  job *head, *tail;
} job_list;

typedef struct {
  lf_executor base;
  lf_lua_host *host;
  int max_workers, started, idle;
  pthread_t *threads;
  pthread_mutex_t lock;
  pthread_cond_t work;
  job_list queue, done; /* under lock */
  int stopping;         /* under lock */
  int wake_fd;          /* eventfd: something is on the done list */
  int ctx_built;
  int names_checked; /* the codec's name index was checked in this batch of jobs */
  lf_buf ctx;        /* the run's context message (written before any job is queued) */
  char ctx_error[ERR_TEXT];
  char *path, *cpath;
} threads_executor;

static void list_push(job_list *l, job *j) {
  j->next = NULL;
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
}

static job *list_take_all(job_list *l) {
  job *j = l->head;
  l->head = l->tail = NULL;
  return j;
}

static void job_free(job *j) {
  lf_buf_free(&j->msg);
  lf_buf_free(&j->reply);
  free(j);
}

static void jobs_free(job *j) {
  while (j) {
    job *next = j->next;
    job_free(j);
    j = next;
  }
}

int lf_executor_poll(struct pollfd *fds, int nfds, double timeout) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int n = 0;
  if (!lf_cancel_signal) {
    struct timespec ts, *tsp = NULL;
    if (timeout >= 0) {
      ts.tv_sec = (time_t)floor(timeout);
      ts.tv_nsec = (long)((timeout - floor(timeout)) * 1e9);
      tsp = &ts;
    }
    n = ppoll(fds, (nfds_t)nfds, tsp, &old);
    if (n < 0) n = 0; /* EINTR: the scheduler looks at what came */
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return n;
}

static void *worker_main(void *arg) {
  threads_executor *ex = arg;
  sigset_t mask; /* SIGINT/SIGTERM go to the engine; the timer signal comes here */
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  sigemptyset(&mask);
  sigaddset(&mask, LF_TIMER_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
  char err[256] = "";
  lf_worker *w = lf_worker_new(ex->path, ex->cpath, err, sizeof err);
  pthread_mutex_lock(&ex->lock);
  for (;;) {
    while (!ex->queue.head && !ex->stopping) {
      ex->idle++;
      pthread_cond_wait(&ex->work, &ex->lock);
      ex->idle--;
    }
    job *j = ex->queue.head;
    if (!j) break; /* stopping, nothing left */
    ex->queue.head = j->next;
    if (!ex->queue.head) ex->queue.tail = NULL;
    pthread_mutex_unlock(&ex->lock);
    if (w)
      lf_worker_run(w, 1, ex->ctx.data, ex->ctx.len, j->msg.data, j->msg.len, &j->reply);
    else
      j->no_worker = lf_buf_put(&j->reply, err, strlen(err) + 1);
    pthread_mutex_lock(&ex->lock);
    int first = ex->done.head == NULL; /* else the engine was woken already */
    list_push(&ex->done, j);
    if (first) {
      uint64_t one = 1;
      ssize_t rc = write(ex->wake_fd, &one, sizeof one);
      (void)rc; /* a full counter wakes the engine all the same */
    }
  }
  pthread_mutex_unlock(&ex->lock);
  lf_worker_free(w);
  return NULL;
}

static void deliver_failed(threads_executor *ex, lf_run *r, int i, const char *text) {
  lf_run_deliver(r, i, lf_job_failed(ex->host, r, i, LF_FAILED, 1, text), 0);
}

static void deliver_cancelled(threads_executor *ex, lf_run *r, int i) {
  lf_body_end how = {0, 1, 0, NULL};
  int end;
  lf_state *s = lf_body_outcome(ex->host, r, i, 0, &how, &end);
  lf_run_deliver(r, i, s, end);
}

/* The replies on the done list become outcomes; returns how many. */
static int drain(threads_executor *ex, lf_run *r) {
  pthread_mutex_lock(&ex->lock);
  job *j = list_take_all(&ex->done);
  pthread_mutex_unlock(&ex->lock);
  int n = 0;
  while (j) {
    job *next = j->next;
    int task = -1, end;
    lf_state *s = j->no_worker ? NULL
                               : lf_job_outcome(ex->host, r, j->reply.data, j->reply.len,
                                                &task, &end);
    if (s)
      lf_run_deliver(r, task, s, end);
    else if (j->reply.oom)
      deliver_failed(ex, r, j->task, "not enough memory for the reply of its body");
    else
      deliver_failed(ex, r, j->task, j->no_worker ? j->reply.data : "bad reply");
    job_free(j);
    j = next;
    n++;
  }
  return n;
}

static void submit(lf_executor *base, lf_run *r, int i) {
  threads_executor *ex = (threads_executor *)base;
  char err[ERR_TEXT];
  if (!ex->ctx_built) {
    ex->ctx_built = 1;
    if (lf_job_run_context(ex->host, r, &ex->ctx, ex->ctx_error, sizeof ex->ctx_error))
      ex->ctx_error[sizeof ex->ctx_error - 1] = '\0';
  }
  if (ex->ctx_error[0]) {
    deliver_failed(ex, r, i, ex->ctx_error);
    return;
  }
  job *j = calloc(1, sizeof *j);
  if (!j) lf_run_abort(r, "not enough memory");
  j->task = i;
  if (lf_job_build(ex->host, r, i, lf_run_task(r, i)->timeout,
                   lf_executor_names_fresh(ex->host, &ex->names_checked), &j->msg, err,
                   sizeof err)) {
    job_free(j);
    deliver_failed(ex, r, i, err);
    return;
  }
  pthread_mutex_lock(&ex->lock);
  list_push(&ex->queue, j);
  int start = ex->idle == 0 && ex->started < ex->max_workers;
  if (start && pthread_create(&ex->threads[ex->started], NULL, worker_main, ex) == 0)
    ex->started++;
  else if (ex->idle > 0)
    pthread_cond_signal(&ex->work);
  int none = ex->started == 0;
  if (none) ex->queue.head = ex->queue.tail = NULL;
  pthread_mutex_unlock(&ex->lock);
  if (none) {
    job_free(j);
    deliver_failed(ex, r, i, "cannot start a worker thread");
  }
}

static void wait_outcomes(lf_executor *base, lf_run *r, double timeout) {
  threads_executor *ex = (threads_executor *)base;
  ex->names_checked = 0; /* Lua code runs from here on (handlers) */
  if (drain(ex, r)) return;
  struct pollfd pfd = {ex->wake_fd, POLLIN, 0};
  if (lf_executor_poll(&pfd, 1, timeout) > 0) {
    uint64_t count;
    ssize_t rc = read(ex->wake_fd, &count, sizeof count);
    (void)rc;
  }
  drain(ex, r);
}

/* Bodies waiting for a worker end Cancelled now; the running ones are poked
 * (their watches raise the cancellation at their next instruction). */
static void cancel(lf_executor *base, lf_run *r) {
  threads_executor *ex = (threads_executor *)base;
  pthread_mutex_lock(&ex->lock);
  job *j = list_take_all(&ex->queue);
  for (int k = 0; k < ex->started; k++)
    pthread_kill(ex->threads[k], LF_TIMER_SIGNAL);
  pthread_mutex_unlock(&ex->lock);
  while (j) {
    job *next = j->next;
    int i = j->task;
    job_free(j);
    deliver_cancelled(ex, r, i);
    j = next;
  }
}

static void close_executor(lf_executor *base, lf_run *r) {
  threads_executor *ex = (threads_executor *)base;
  (void)r;
  pthread_mutex_lock(&ex->lock);
  ex->stopping = 1;
  job *j = list_take_all(&ex->queue); /* the run is over: nothing more starts */
  pthread_cond_broadcast(&ex->work);
  pthread_mutex_unlock(&ex->lock);
  for (int k = 0; k < ex->started; k++)
    pthread_join(ex->threads[k], NULL);
  jobs_free(j);
  jobs_free(list_take_all(&ex->done));
  close(ex->wake_fd);
  pthread_mutex_destroy(&ex->lock);
  pthread_cond_destroy(&ex->work);
  lf_buf_free(&ex->ctx);
  free(ex->threads);
  free(ex->path);
  free(ex->cpath);
  free(ex);
}

static const lf_executor_ops threads_ops = {"threads", submit, wait_outcomes, cancel,
                                            close_executor};

lf_executor *lf_threads_executor_new(lf_lua_host *h, int workers, const char *path,
                                     const char *cpath) {
  threads_executor *ex = calloc(1, sizeof *ex);
  if (!ex) return NULL;
  ex->base.ops = &threads_ops;
  ex->host = h;
  ex->max_workers = workers > 0 ? workers : 1;
  ex->threads = calloc((size_t)ex->max_workers, sizeof *ex->threads);
  ex->path = path ? strdup(path) : NULL;
  ex->cpath = cpath ? strdup(cpath) : NULL;
  ex->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!ex->threads || ex->wake_fd < 0 || (path && !ex->path) || (cpath && !ex->cpath)) {
    if (ex->wake_fd >= 0) close(ex->wake_fd);
    free(ex->threads);
    free(ex->path);
    free(ex->cpath);
    free(ex);
    return NULL;
  }
  pthread_mutex_init(&ex->lock, NULL);
  pthread_cond_init(&ex->work, NULL);
  return &ex->base;
}
