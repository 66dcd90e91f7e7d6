/* The Processes executor (lua_executors.h): worker processes forked from the
 * engine, each making a fresh Lua state of its own (lua_worker.h) and
 * serving jobs over a socket pair. Forking needs no script file and no
 * program to start: it works the same from the CLI, from lua5.4 with the
 * module and from an embedding program.
 *
 * A worker that dies (a signal, an out-of-memory kill, exit from C) fails
 * the task it was running ("Worker process running <Task: NAME> died:
 * killed by signal 9 (SIGKILL)"); a body past its timeout is stopped by the
 * worker's own watch when it runs Lua, else killed with its worker a little
 * later (a blocking C call); the cancellation kills the busy workers. A
 * dead worker's place is taken by a fresh one when a job needs it. Workers
 * ignore SIGINT (the engine decides) and die with the engine's thread
 * (PR_SET_PDEATHSIG); close ends them all. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "clock.h"
#include "interrupt.h"
#include "log.h"
#include "lua_executors.h"
#include "lua_worker.h"

#define ERR_TEXT 512
#define KILL_GRACE 0.2 /* seconds past a deadline before the worker is killed */

enum { FRAME_REPLY, FRAME_FATAL }; /* worker -> engine */

typedef struct {
  uint32_t a, b; /* to a worker: context length, job length; back: kind, length */
} frame_head;

typedef struct {
  pid_t pid; /* 0: no worker in this slot */
  int fd;
  int task; /* the task it runs, -1: idle */
  double kill_at;
  int has_ctx; /* it has the run's context */
} slot;

typedef struct pending {
  struct pending *next;
  int task;
  double timeout;
  lf_buf msg;
} pending;

typedef struct {
  lf_executor base;
  lf_lua_host *host;
  int nslots;
  slot *slots;
  pending *head, *tail; /* jobs waiting for a worker */
  int ctx_built;
  int names_checked; /* the codec's name index was checked in this batch of jobs */
  lf_buf ctx;
  char ctx_error[ERR_TEXT];
  char *path, *cpath;
  lf_buf frame;
  pid_t engine;
} proc_executor;

/* ---- bytes over the socket ---- */

/* Sends the pieces as one message (one system call when the socket takes it
 * all, as it does for the small jobs and replies that make up the most). */
static int send_parts(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)n;
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    size_t left = (size_t)w; /* skip what went, resume inside a piece */
    for (; n > 0 && left >= iov->iov_len; iov++, n--)
      left -= iov->iov_len;
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r, n -= (size_t)r;
  }
  return 0;
}

/* Reads one frame into b (replacing what it held): 0, or -1 at the end. A
 * worker's frames carry b bytes, the engine's a + b. */
static int read_frame(int fd, frame_head *h, lf_buf *b, int from_worker) {
  if (read_all(fd, h, sizeof *h) != 0) return -1;
  size_t n = from_worker ? (size_t)h->b : (size_t)h->a + h->b;
  lf_buf_reset(b);
  if (!lf_buf_reserve(b, n ? n : 1) || read_all(fd, b->data, n) != 0) return -1;
  b->len = n;
  return 0;
}

/* ---- the worker process ---- */

static void send_frame(int fd, uint32_t kind, const char *p, size_t n) {
  frame_head h = {kind, (uint32_t)n};
  struct iovec iov[2] = {{&h, sizeof h}, {(void *)p, n}};
  if (send_parts(fd, iov, 2) != 0) _exit(1);
}

__attribute__((noreturn)) static void worker_main(proc_executor *ex, int fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != ex->engine) _exit(1); /* the engine is gone already */
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
  lf_interrupt_reset_worker();
  char err[256];
  lf_worker *w = lf_worker_new(ex->path, ex->cpath, err, sizeof err);
  if (!w) {
    send_frame(fd, FRAME_FATAL, err, strlen(err));
    _exit(1);
  }
  lf_buf in = LF_BUF_INIT, reply = LF_BUF_INIT, ctx = LF_BUF_INIT;
  for (;;) {
    frame_head h;
    if (read_frame(fd, &h, &in, 0) != 0) _exit(0); /* the engine closed: done */
    if (h.a) {
      lf_buf_reset(&ctx);
      lf_buf_put(&ctx, in.data, h.a);
    }
    lf_buf_reset(&reply);
    lf_worker_run(w, 1, ctx.data, ctx.len, in.data + h.a, h.b, &reply);
    lf_log_flush();
    if (reply.oom) {
      static const char oom[] = "not enough memory for the reply of its body";
      send_frame(fd, FRAME_FATAL, oom, sizeof oom - 1);
    } else {
      send_frame(fd, FRAME_REPLY, reply.data, reply.len);
    }
  }
}

/* ---- the engine's side ---- */

static int spawn(proc_executor *ex, slot *s) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  fflush(NULL); /* nothing buffered is written twice */
  lf_log_flush();
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  if (pid == 0) {
    close(sv[0]);
    for (int k = 0; k < ex->nslots; k++)
      if (ex->slots[k].pid > 0) close(ex->slots[k].fd);
    worker_main(ex, sv[1]);
  }
  close(sv[1]);
  s->pid = pid;
  s->fd = sv[0];
  s->task = -1;
  s->has_ctx = 0;
  return 0;
}

/* Ends slot s's worker (killed when busy) and empties the slot. */
static int reap(slot *s, int kill_it) {
  int status = 0;
  if (kill_it) kill(s->pid, SIGKILL);
  close(s->fd);
  while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
    ;
  s->pid = 0;
  s->task = -1;
  return status;
}

static void deliver_failed(proc_executor *ex, lf_run *r, int i, const char *text) {
  lf_run_deliver(r, i, lf_job_failed(ex->host, r, i, LF_FAILED, 1, text), 0);
}

static void deliver_end(proc_executor *ex, lf_run *r, int i, int cancelled) {
  lf_body_end how = {0, cancelled, !cancelled, NULL};
  int end;
  lf_state *s = lf_body_outcome(ex->host, r, i, 0, &how, &end);
  lf_run_deliver(r, i, s, end);
}

/* The worker of slot s died while running its task. */
static void worker_died(proc_executor *ex, lf_run *r, slot *s, const char *why) {
  int i = s->task;
  int status = reap(s, 1);
  char msg[ERR_TEXT];
  const char *name = lf_run_object(r, i)->name;
  if (why)
    snprintf(msg, sizeof msg, "Worker process running <Task: %s> failed: %s", name, why);
  else if (WIFSIGNALED(status)) {
    const char *abbrev = sigabbrev_np(WTERMSIG(status));
    snprintf(msg, sizeof msg,
             "Worker process running <Task: %s> died: killed by signal %d (SIG%s)", name,
             WTERMSIG(status), abbrev ? abbrev : "?");
  } else {
    snprintf(msg, sizeof msg,
             "Worker process running <Task: %s> died: exited with status %d", name,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  lf_run_deliver(r, i, lf_job_failed(ex->host, r, i, LF_FAILED, 0, msg), 0);
}

/* Sends job p to slot s's worker (with the run's context the first time). */
static int dispatch(proc_executor *ex, lf_run *r, slot *s, pending *p) {
  frame_head h = {s->has_ctx ? 0 : (uint32_t)ex->ctx.len, (uint32_t)p->msg.len};
  s->task = p->task;
  s->kill_at = p->timeout > 0 ? lf_monotonic() + p->timeout + KILL_GRACE : 0;
  struct iovec iov[3] = {{&h, sizeof h}, {ex->ctx.data, h.a}, {p->msg.data, p->msg.len}};
  if (send_parts(s->fd, iov, 3) != 0) {
    worker_died(ex, r, s, NULL);
    return -1;
  }
  s->has_ctx = 1;
  return 0;
}

static void pending_free(pending *p) {
  lf_buf_free(&p->msg);
  free(p);
}

static pending *take_pending(proc_executor *ex) {
  pending *p = ex->head;
  ex->head = p->next;
  if (!ex->head) ex->tail = NULL;
  return p;
}

/* Jobs go to idle workers, then to new ones while there is room. When no
 * worker can be started and none is alive, the job fails. */
static void pump(proc_executor *ex, lf_run *r) {
  int alive = 0;
  for (int k = 0; k < ex->nslots; k++)
    alive += ex->slots[k].pid > 0;
  for (int k = 0; k < ex->nslots && ex->head; k++) {
    slot *s = &ex->slots[k];
    if (s->pid > 0 && s->task >= 0) continue;
    if (s->pid == 0) {
      if (spawn(ex, s) != 0) {
        if (alive == 0) {
          char why[ERR_TEXT];
          snprintf(why, sizeof why, "cannot start a worker process: %s", strerror(errno));
          pending *p = take_pending(ex);
          deliver_failed(ex, r, p->task, why);
          pending_free(p);
        }
        continue;
      }
      alive++;
    }
    pending *p = take_pending(ex);
    dispatch(ex, r, s, p);
    pending_free(p);
  }
}

static void submit(lf_executor *base, lf_run *r, int i) {
  proc_executor *ex = (proc_executor *)base;
  char err[ERR_TEXT];
  if (!ex->ctx_built) {
    ex->ctx_built = 1;
    lf_job_run_context(ex->host, r, &ex->ctx, ex->ctx_error, sizeof ex->ctx_error);
  }
  if (ex->ctx_error[0]) {
    deliver_failed(ex, r, i, ex->ctx_error);
    return;
  }
  pending *p = calloc(1, sizeof *p);
  if (!p) lf_run_abort(r, "not enough memory");
  p->task = i;
  p->timeout = lf_run_task(r, i)->timeout;
  if (lf_job_build(ex->host, r, i, p->timeout,
                   lf_executor_names_fresh(ex->host, &ex->names_checked), &p->msg, err,
                   sizeof err)) {
    pending_free(p);
    deliver_failed(ex, r, i, err);
    return;
  }
  if (ex->tail)
    ex->tail->next = p;
  else
    ex->head = p;
  ex->tail = p;
  pump(ex, r);
}

/* Slot s's worker has something to say: its reply, or its end. */
static void hear(proc_executor *ex, lf_run *r, slot *s) {
  frame_head h;
  if (read_frame(s->fd, &h, &ex->frame, 1) != 0) {
    worker_died(ex, r, s, NULL);
    return;
  }
  if (h.a == FRAME_FATAL) {
    lf_buf_putc(&ex->frame, '\0');
    worker_died(ex, r, s, ex->frame.data);
    return;
  }
  int task, end, i = s->task;
  s->task = -1;
  lf_state *st = lf_job_outcome(ex->host, r, ex->frame.data, ex->frame.len, &task, &end);
  if (!st || task != i) {
    if (st) lf_state_release(st);
    s->task = i;
    worker_died(ex, r, s, "its reply was garbled");
    return;
  }
  lf_run_deliver(r, i, st, end);
}

static void wait_outcomes(lf_executor *base, lf_run *r, double timeout) {
  proc_executor *ex = (proc_executor *)base;
  ex->names_checked = 0; /* Lua code runs from here on (handlers) */
  struct pollfd fds[ex->nslots > 0 ? ex->nslots : 1];
  int owner[ex->nslots > 0 ? ex->nslots : 1], n = 0;
  double now = lf_monotonic();
  for (int k = 0; k < ex->nslots; k++) {
    slot *s = &ex->slots[k];
    if (s->pid <= 0 || s->task < 0) continue;
    fds[n] = (struct pollfd){s->fd, POLLIN, 0};
    owner[n++] = k;
    if (s->kill_at > 0) {
      double left = s->kill_at > now ? s->kill_at - now : 0;
      if (timeout < 0 || left < timeout) timeout = left;
    }
  }
  int ready = lf_executor_poll(fds, n, timeout);
  for (int k = 0; k < n && ready > 0; k++)
    if (fds[k].revents) hear(ex, r, &ex->slots[owner[k]]);
  now = lf_monotonic();
  for (int k = 0; k < ex->nslots; k++) { /* past the deadline: killed, TimedOut */
    slot *s = &ex->slots[k];
    if (s->pid > 0 && s->task >= 0 && s->kill_at > 0 && now >= s->kill_at) {
      int i = s->task;
      reap(s, 1);
      deliver_end(ex, r, i, 0);
    }
  }
  pump(ex, r);
}

static void cancel(lf_executor *base, lf_run *r) {
  proc_executor *ex = (proc_executor *)base;
  for (pending *p = ex->head, *next; p; p = next) {
    next = p->next;
    deliver_end(ex, r, p->task, 1);
    pending_free(p);
  }
  ex->head = ex->tail = NULL;
  for (int k = 0; k < ex->nslots; k++) {
    slot *s = &ex->slots[k];
    if (s->pid > 0 && s->task >= 0) {
      int i = s->task;
      reap(s, 1);
      deliver_end(ex, r, i, 1);
    }
  }
}

static void close_executor(lf_executor *base, lf_run *r) {
  proc_executor *ex = (proc_executor *)base;
  (void)r;
  for (int k = 0; k < ex->nslots; k++) /* an idle worker ends when its socket closes */
    if (ex->slots[k].pid > 0) reap(&ex->slots[k], ex->slots[k].task >= 0);
  for (pending *p = ex->head, *next; p; p = next) {
    next = p->next;
    pending_free(p);
  }
  lf_buf_free(&ex->ctx);
  lf_buf_free(&ex->frame);
  free(ex->slots);
  free(ex->path);
  free(ex->cpath);
  free(ex);
}

static const lf_executor_ops processes_ops = {"processes", submit, wait_outcomes, cancel,
                                              close_executor};

lf_executor *lf_processes_executor_new(lf_lua_host *h, int workers, const char *path,
                                       const char *cpath) {
  proc_executor *ex = calloc(1, sizeof *ex);
  if (!ex) return NULL;
  ex->base.ops = &processes_ops;
  ex->host = h;
  ex->nslots = workers > 0 ? workers : 1;
  ex->slots = calloc((size_t)ex->nslots, sizeof *ex->slots);
  ex->path = path ? strdup(path) : NULL;
  ex->cpath = cpath ? strdup(cpath) : NULL;
  ex->engine = getpid();
  if (!ex->slots || (path && !ex->path) || (cpath && !ex->cpath)) {
    free(ex->slots);
    free(ex->path);
    free(ex->cpath);
    free(ex);
    return NULL;
  }
  for (int k = 0; k < ex->nslots; k++)
    ex->slots[k].task = -1;
  return &ex->base;
}
