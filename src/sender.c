/* sender: the background delivery of notifications (see sender.h).
 *
 * The queue is a short list under one mutex: the thread scans it for the
 * item due first, takes it out while it makes the attempt (no lock held
 * during the network), and puts it back with its next attempt's time when
 * it will retry. `pending` counts items queued and not yet given their
 * outcome, the one in flight included; drainers wait for it to reach 0. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "delivery.h"
#include "http.h"
#include "log.h"
#include "sender.h"
#include "store_backend.h"

#define LOGGER "luaflow.notifications"

typedef struct item {
  struct item *next;
  char *notifier, *run_id, *transition_id, *payload, *url, *body;
  size_t body_len;
  char **headers, *username, *password, *from, **to, *ca_file;
  size_t nheaders, nto;
  int smtp, starttls, verify;
  double timeout, deliver_within;
  char destination[320];     /* scheme://host:port */
  double created;            /* epoch seconds */
  double queued, deliver_by; /* monotonic */
  double next_attempt;       /* monotonic */
  int attempts;
  int last_chance_taken; /* its last attempt was made after the interruption */
  char last_error[LF_HTTP_ERRLEN];
} item;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t wake; /* the thread: an item, a last chance, the end (monotonic) */
  pthread_cond_t done; /* drainers: an item got its outcome */
  item *head;
  size_t pending; /* queued, in flight included */
  int running, stopping;
  pthread_t thread;
  long owner; /* the pid that started the thread */
  int last_chance;
  double last_chance_end; /* monotonic */
  unsigned long delivered, failed;
  unsigned seed;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A transfer in flight stops when this monotonic time has passed (0: never). */
static _Atomic double abort_at;

static int stop_transfer(void) {
  double at = atomic_load(&abort_at);
  return at > 0 && lf_monotonic() >= at;
}

/* {=== Items ===} */

static char *dup_or_null(const char *s, int *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = 1;
  return d;
}

static char **dup_list(const char *const *list, size_t n, int *oom) {
  if (!n) return NULL;
  char **out = calloc(n, sizeof *out);
  if (!out) {
    *oom = 1;
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = dup_or_null(list[i], oom);
  return out;
}

static void wipe_free(char *s) { /* credentials do not linger in freed memory */
  if (!s) return;
  memset(s, 0, strlen(s));
  free(s);
}

static void item_free(item *it) {
  if (!it) return;
  free(it->notifier);
  free(it->run_id);
  free(it->transition_id);
  free(it->payload);
  wipe_free(it->url);
  free(it->body);
  for (size_t i = 0; it->headers && i < it->nheaders; i++)
    free(it->headers[i]);
  free(it->headers);
  wipe_free(it->username);
  wipe_free(it->password);
  free(it->from);
  for (size_t i = 0; it->to && i < it->nto; i++)
    free(it->to[i]);
  free(it->to);
  free(it->ca_file);
  free(it);
}

static item *item_new(const lf_send_request *req) {
  item *it = calloc(1, sizeof *it);
  if (!it) return NULL;
  int oom = 0;
  it->notifier = dup_or_null(req->notifier ? req->notifier : "notification", &oom);
  it->run_id = dup_or_null(req->run_id, &oom);
  it->transition_id = dup_or_null(req->transition_id, &oom);
  it->payload = dup_or_null(req->outbox_payload ? req->outbox_payload : "{}", &oom);
  it->url = dup_or_null(req->url, &oom);
  if (req->body) {
    it->body = malloc(req->body_len + 1);
    if (it->body) {
      memcpy(it->body, req->body, req->body_len);
      it->body[req->body_len] = '\0';
      it->body_len = req->body_len;
    } else
      oom = 1;
  }
  it->headers = dup_list(req->headers, req->nheaders, &oom);
  it->nheaders = req->nheaders;
  it->username = dup_or_null(req->username, &oom);
  it->password = dup_or_null(req->password, &oom);
  it->from = dup_or_null(req->from, &oom);
  it->to = dup_list(req->to, req->nto, &oom);
  it->nto = req->nto;
  it->ca_file = dup_or_null(req->ca_file, &oom);
  it->smtp = req->smtp;
  it->starttls = req->starttls;
  it->verify = req->verify;
  it->timeout = req->timeout > 0 ? req->timeout : LF_HTTP_DEFAULT_TIMEOUT;
  it->deliver_within =
      req->deliver_within > 0 ? req->deliver_within : LF_SENDER_DELIVER_WITHIN;
  if (oom) {
    item_free(it);
    return NULL;
  }
  return it;
}

/* {=== The outbox (when a store is attached) ===} */

static void outbox_fill(const item *it, lf_store_outbox_item *o) {
  double now = lf_now(), mono = lf_monotonic();
  *o = (lf_store_outbox_item){.run_id = it->run_id,
                              .transition_id = it->transition_id,
                              .notifier = it->notifier,
                              .destination = it->destination,
                              .payload = it->payload,
                              .created = it->created,
                              .deliver_by = now + (it->deliver_by - mono),
                              .next_attempt = now + (it->next_attempt - mono),
                              .attempts = it->attempts,
                              .last_error = it->last_error[0] ? it->last_error : NULL};
}

static void outbox(int op, const item *it) {
  lf_store_outbox_item o;
  outbox_fill(it, &o);
  lf_delivery_outbox(op, &o);
}

/* {=== One attempt ===} */

typedef struct {
  int ok;
  int retry;          /* worth another attempt */
  double retry_after; /* seconds the server asked for; 0: none */
  char status[LF_HTTP_ERRLEN];
} outcome;

static int retryable_status(long status) {
  return status == 408 || status == 425 || status == 429 ||
         (status >= 500 && status < 600);
}

/* Retry-After in seconds (its HTTP-date form is not honoured). */
static double retry_after(const lf_http_response *res) {
  for (size_t i = 0; i < res->nheaders; i++) {
    if (strcasecmp(res->headers[i].name, "Retry-After") != 0) continue;
    char *end;
    double v = strtod(res->headers[i].value, &end);
    if (end != res->headers[i].value && *end == '\0' && v > 0 && v < 1e6) return v;
  }
  return 0;
}

static void attempt_http(lf_http_client *c, const item *it, double timeout, outcome *o) {
  lf_http_request req;
  lf_http_request_init(&req);
  req.method = "POST";
  req.url = it->url;
  req.body = it->body ? it->body : "";
  req.body_len = it->body_len;
  req.headers = (const char *const *)it->headers;
  req.nheaders = it->nheaders;
  req.timeout = timeout;
  req.connect_timeout = timeout < LF_HTTP_DEFAULT_CONNECT_TIMEOUT ? timeout : 0;
  req.verify = it->verify;
  req.ca_file = it->ca_file;
  req.max_body = 1 << 20; /* the answer is not read: a small cap */
  req.stop = stop_transfer;
  lf_http_response res;
  if (lf_http_perform_with(c, &req, &res) != 0) {
    snprintf(o->status, sizeof o->status, "%s", res.err);
    o->retry = 1;
  } else if (res.status >= 200 && res.status < 300) {
    snprintf(o->status, sizeof o->status, "HTTP %ld", res.status);
    o->ok = 1;
  } else {
    snprintf(o->status, sizeof o->status, "HTTP %ld from %s", res.status,
             it->destination);
    o->retry = retryable_status(res.status);
    o->retry_after = retry_after(&res);
  }
  lf_http_response_free(&res);
}

static void attempt_smtp(lf_http_client *c, const item *it, double timeout, outcome *o) {
  lf_smtp_request req;
  lf_smtp_request_init(&req);
  char reply[256] = "";
  req.url = it->url;
  req.starttls = it->starttls;
  req.username = it->username;
  req.password = it->password;
  req.from = it->from;
  req.to = (const char *const *)it->to;
  req.nto = it->nto;
  req.message = it->body ? it->body : "";
  req.message_len = it->body_len;
  req.timeout = timeout;
  req.connect_timeout = timeout < LF_HTTP_DEFAULT_CONNECT_TIMEOUT ? timeout : 0;
  req.verify = it->verify;
  req.ca_file = it->ca_file;
  req.stop = stop_transfer;
  req.reply = reply;
  req.reply_len = sizeof reply;
  if (lf_smtp_send_with(c, &req, o->status, sizeof o->status) == 0) {
    snprintf(o->status, sizeof o->status, "%s", reply[0] ? reply : "accepted");
    o->ok = 1;
  } else {
    o->retry = reply[0] != '5'; /* a 5xx refusal is final; 4xx and the network are not */
  }
}

/* {=== The thread ===} */

/* The item to attempt next (under S.mu): in a last chance, the first not yet
 * given it; else the one due first. */
static item *next_item(void) {
  item *best = NULL;
  for (item *it = S.head; it; it = it->next) {
    if (S.last_chance) {
      if (!it->last_chance_taken) return it;
    } else if (!best || it->next_attempt < best->next_attempt) {
      best = it;
    }
  }
  return best;
}

static void unlink_item(item *it) {
  for (item **p = &S.head; *p; p = &(*p)->next)
    if (*p == it) {
      *p = it->next;
      it->next = NULL;
      return;
    }
}

static void timed_wait(pthread_cond_t *cv, double monotonic_deadline) {
  struct timespec ts;
  double whole = floor(monotonic_deadline);
  ts.tv_sec = (time_t)whole;
  ts.tv_nsec = (long)((monotonic_deadline - whole) * 1e9);
  pthread_cond_timedwait(cv, &S.mu, &ts);
}

/* The item's outcome (outside S.mu): reported, removed from the outbox. */
static void finish(item *it, int ok, const char *status) {
  lf_delivery d = {.run_id = it->run_id,
                   .transition_id = it->transition_id,
                   .notifier = it->notifier,
                   .destination = it->destination,
                   .time = lf_now(),
                   .duration = lf_monotonic() - it->queued,
                   .ok = ok,
                   .status = status};
  lf_delivery_report(&d, ok ? LF_LOG_INFO : LF_LOG_ERROR, it->attempts);
  outbox(LF_OUTBOX_REMOVE, it);
  pthread_mutex_lock(&S.mu);
  if (ok)
    S.delivered++;
  else
    S.failed++;
  S.pending--;
  pthread_cond_broadcast(&S.done);
  pthread_mutex_unlock(&S.mu);
  item_free(it);
}

/* The wait before attempt n+1 (n made so far). */
static double backoff(int n, double asked) {
  double d = LF_SENDER_FIRST_DELAY * pow(2, n > 1 ? n - 1 : 0);
  if (d > LF_SENDER_MAX_DELAY) d = LF_SENDER_MAX_DELAY;
  pthread_mutex_lock(&S.mu);
  double jitter = (double)rand_r(&S.seed) / RAND_MAX * 0.4 - 0.2;
  pthread_mutex_unlock(&S.mu);
  d *= 1 + jitter;
  return asked > d ? asked : d;
}

/* One attempt at `it` (taken out of the queue), then its outcome or its
 * next attempt. */
static void attempt(lf_http_client *c, item *it, int last_chance, double last_end) {
  double now = lf_monotonic();
  double left = it->deliver_by - now;
  if (last_chance && last_end - now < left) left = last_end - now;
  if (left <= 0.01) {
    char status[LF_HTTP_ERRLEN + 64];
    snprintf(status, sizeof status, "%s%snot delivered within %g s", it->last_error,
             it->last_error[0] ? "; " : "", it->deliver_within);
    finish(it, 0, status);
    return;
  }
  outcome o = {0};
  double timeout = it->timeout < left ? it->timeout : left;
  it->attempts++;
  if (it->smtp)
    attempt_smtp(c, it, timeout, &o);
  else
    attempt_http(c, it, timeout, &o);
  if (o.ok) {
    finish(it, 1, o.status);
    return;
  }
  snprintf(it->last_error, sizeof it->last_error, "%s", o.status);
  pthread_mutex_lock(&S.mu);
  last_chance |= S.last_chance; /* interrupted while it was in flight: that was it */
  pthread_mutex_unlock(&S.mu);
  now = lf_monotonic();
  double wait = o.retry ? backoff(it->attempts, o.retry_after) : 0;
  if (!o.retry || last_chance || now + wait >= it->deliver_by) {
    char status[LF_HTTP_ERRLEN + 96];
    if (last_chance)
      snprintf(status, sizeof status, "%s; interrupted: that was its last attempt",
               o.status);
    else if (o.retry)
      snprintf(status, sizeof status, "%s; not delivered within %g s", o.status,
               it->deliver_within);
    else
      snprintf(status, sizeof status, "%s", o.status);
    finish(it, 0, status);
    return;
  }
  lf_log(LF_LOG_WARNING, LOGGER, "%s failed: %s (attempt %d; next in %.1f s)",
         it->notifier, o.status, it->attempts, wait);
  it->next_attempt = now + wait;
  outbox(LF_OUTBOX_UPDATE, it);
  pthread_mutex_lock(&S.mu);
  it->next = S.head;
  S.head = it;
  pthread_mutex_unlock(&S.mu);
}

/* After a last chance ran out: every item left is given up. */
static void give_up_all(void) {
  item *list = S.head;
  S.head = NULL;
  pthread_mutex_unlock(&S.mu);
  while (list) {
    item *it = list;
    list = it->next;
    char status[LF_HTTP_ERRLEN + 64];
    snprintf(status, sizeof status, "%s%sinterrupted before it could be delivered",
             it->last_error, it->last_error[0] ? "; " : "");
    finish(it, 0, status);
  }
  pthread_mutex_lock(&S.mu);
}

static void *sender_main(void *arg) {
  (void)arg;
  lf_http_client *client = lf_http_client_new(); /* NULL: a handle per attempt */
  pthread_mutex_lock(&S.mu);
  for (;;) {
    if (S.stopping && !S.head) break;
    double now = lf_monotonic();
    if (S.last_chance && now >= S.last_chance_end) {
      give_up_all();
      continue;
    }
    item *it = next_item();
    if (!it) {
      if (S.last_chance)
        timed_wait(&S.wake, S.last_chance_end);
      else
        pthread_cond_wait(&S.wake, &S.mu);
      continue;
    }
    if (!S.last_chance && it->next_attempt > now) {
      timed_wait(&S.wake, it->next_attempt);
      continue;
    }
    unlink_item(it);
    int last_chance = S.last_chance;
    double last_end = S.last_chance_end;
    if (last_chance) it->last_chance_taken = 1;
    pthread_mutex_unlock(&S.mu);
    attempt(client, it, last_chance, last_end);
    pthread_mutex_lock(&S.mu);
  }
  pthread_mutex_unlock(&S.mu);
  lf_http_client_free(client);
  return NULL;
}

/* {=== Starting, forking, stopping ===} */

static void before_fork(void) {
  pthread_mutex_lock(&S.mu);
}

static void after_fork_parent(void) {
  pthread_mutex_unlock(&S.mu);
}

/* The child has no sender thread: it starts afresh (what was queued is the
 * parent's to deliver). */
static void after_fork_child(void) {
  item *list = S.head;
  S.head = NULL;
  S.pending = 0;
  S.running = S.stopping = S.last_chance = 0;
  pthread_mutex_unlock(&S.mu);
  while (list) {
    item *next = list->next;
    item_free(list);
    list = next;
  }
}

static void init_once(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&S.wake, &ca);
  pthread_cond_init(&S.done, &ca);
  pthread_condattr_destroy(&ca);
  S.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Under S.mu: the thread runs (started now when it did not). */
static int ensure_thread(char *err, size_t errlen) {
  if (S.running) return 0;
  /* The thread takes no signals: SIGINT and SIGTERM belong to the engine. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&S.thread, NULL, sender_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    snprintf(err, errlen, "cannot start the notification sender (%s)", strerror(rc));
    return -1;
  }
  S.running = 1;
  S.stopping = 0;
  S.owner = (long)getpid();
  return 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

int lf_sender_enqueue(const lf_send_request *req, char *err, size_t errlen) {
  pthread_once(&once, init_once);
  char origin[320];
  if (!req->url || lf_url_origin(req->url, origin, sizeof origin) != 0) {
    snprintf(err, errlen, "invalid URL");
    return -1;
  }
  const char *scheme_ok = req->smtp ? "smtp" : "http";
  if (strncmp(origin, scheme_ok, 4) != 0) {
    snprintf(err, errlen, "unsupported URL scheme (%s)",
             req->smtp ? "smtp or smtps only" : "http or https only");
    return -1;
  }
  item *it = item_new(req);
  if (!it) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  snprintf(it->destination, sizeof it->destination, "%s", origin);
  it->created = lf_now();
  it->queued = it->next_attempt = lf_monotonic();
  it->deliver_by = it->queued + it->deliver_within;
  outbox(LF_OUTBOX_ADD, it); /* before the thread can take it */
  pthread_mutex_lock(&S.mu);
  int rc = -1;
  if (S.pending >= LF_SENDER_MAX_ITEMS)
    snprintf(err, errlen, "%d deliveries are already waiting", LF_SENDER_MAX_ITEMS);
  else if (ensure_thread(err, errlen) == 0)
    rc = 0;
  if (rc == 0) {
    it->next = S.head;
    S.head = it;
    S.pending++;
    pthread_cond_signal(&S.wake);
  }
  pthread_mutex_unlock(&S.mu);
  if (rc != 0) {
    outbox(LF_OUTBOX_REMOVE, it);
    item_free(it);
    return -1;
  }
  return 0;
}

size_t lf_sender_pending(void) {
  pthread_mutex_lock(&S.mu);
  size_t n = S.pending;
  pthread_mutex_unlock(&S.mu);
  return n;
}

void lf_sender_totals(unsigned long *delivered, unsigned long *failed) {
  pthread_mutex_lock(&S.mu);
  if (delivered) *delivered = S.delivered;
  if (failed) *failed = S.failed;
  pthread_mutex_unlock(&S.mu);
}

/* Under S.mu: the longest any pending item may still take. */
static double longest_wait(void) {
  double now = lf_monotonic(), most = 0;
  for (item *it = S.head; it; it = it->next)
    if (it->deliver_by - now > most) most = it->deliver_by - now;
  return most;
}

size_t lf_sender_drain(int (*interrupted)(void)) {
  pthread_mutex_lock(&S.mu);
  size_t start = S.pending;
  if (!S.running || (long)getpid() != S.owner || S.pending == 0) {
    pthread_mutex_unlock(&S.mu);
    return 0;
  }
  lf_log(LF_LOG_INFO, LOGGER, "waiting for %zu notification deliver%s (at most %.0f s)",
         S.pending, S.pending == 1 ? "y" : "ies", ceil(longest_wait()));
  while (S.pending > 0) {
    if (!S.last_chance && interrupted && interrupted()) {
      S.last_chance = 1;
      S.last_chance_end = lf_monotonic() + LF_SENDER_LAST_CHANCE;
      atomic_store(&abort_at, S.last_chance_end);
      lf_log(LF_LOG_WARNING, LOGGER,
             "interrupted: %zu notification deliver%s one last attempt (at most %.0f s)",
             S.pending, S.pending == 1 ? "y gets" : "ies get", LF_SENDER_LAST_CHANCE);
      pthread_cond_signal(&S.wake);
    }
    timed_wait(&S.done, lf_monotonic() + 0.1);
  }
  S.last_chance = 0;
  atomic_store(&abort_at, 0.0);
  pthread_mutex_unlock(&S.mu);
  return start;
}

void lf_sender_stop(int (*interrupted)(void)) {
  pthread_mutex_lock(&S.mu);
  int mine = S.running && (long)getpid() == S.owner;
  pthread_mutex_unlock(&S.mu);
  if (!mine) return;
  lf_sender_drain(interrupted);
  pthread_mutex_lock(&S.mu);
  S.stopping = 1;
  pthread_cond_signal(&S.wake);
  pthread_mutex_unlock(&S.mu);
  pthread_join(S.thread, NULL);
  pthread_mutex_lock(&S.mu);
  S.running = S.stopping = 0;
  pthread_mutex_unlock(&S.mu);
}

/* At exit (or when the module is unloaded), for a host that did not stop
 * the sender: what is pending is delivered or given up, then the thread
 * ends. Before http.c's libcurl cleanup, which has the lowest priority of the
 * destructors. */
__attribute__((destructor)) static void sender_exit(void) {
  lf_sender_stop(NULL);
}
