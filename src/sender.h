/* sender: notifications delivered in the background (a notifier's
 * async = true), so a slow or dead receiver never holds up a task or a
 * handler. Lua-free.
 *
 * One queue and one thread for the process, started by the first
 * lf_sender_enqueue. The thread takes the item due first and makes one
 * attempt on its own libcurl handle (lf_http_client: one handle per thread,
 * libcurl initialised once). A failure worth retrying (a transport error, a
 * timeout, HTTP 408, 425, 429 or 5xx, an SMTP 4xx reply) is tried again after
 * a backoff (0.5 s, doubled each time up to 30 s, each delay moved by up to
 * 20% at random, an HTTP Retry-After in seconds honoured) while the item's
 * deadline (deliver_within seconds after it was queued) allows; any other
 * failure is final. Each failed attempt that will be retried is one WARNING
 * line; the final outcome is a delivery (delivery.h): an INFO line, or an
 * ERROR line when it was not delivered, and a row in the attached run store.
 * Nothing the sender does changes a task's state.
 *
 * Credentials: a webhook's URL, an SMTP user name and password are secrets.
 * An item holds their values in this process's memory only. When a run store
 * is attached (lf_store_attach_deliveries) each item also waits in its outbox
 * until its outcome, as `outbox_payload`, which the caller makes naming the
 * secrets instead of holding them; so the store never keeps a credential,
 * and only a process that can read those secrets can send the item.
 *
 * Exit: lf_sender_drain (and lf_sender_stop, which then ends the thread) waits until
 * every item has its outcome (each item's deadline bounds the wait). When SIGINT or
 * SIGTERM came (`interrupted` says so), every pending item gets one last attempt, all
 * within LF_SENDER_LAST_CHANCE seconds; the ones still not delivered then are given up,
 * each reported as not delivered.
 *
 * Threads: every function may be called from any thread. A forked child
 * starts with an empty queue (its parent delivers what was queued). */
#ifndef LF_SENDER_H
#define LF_SENDER_H

#include <stddef.h>

#define LF_SENDER_DELIVER_WITHIN 60.0 /* seconds, default */
#define LF_SENDER_LAST_CHANCE 5.0     /* seconds for the last attempts */
#define LF_SENDER_MAX_ITEMS 10000     /* pending items; more are refused */
#define LF_SENDER_FIRST_DELAY 0.5     /* seconds before the first retry */
#define LF_SENDER_MAX_DELAY 30.0      /* longest wait between attempts */

typedef struct {
  const char *notifier;       /* "Slack notification for <Task: extract>" */
  const char *run_id;         /* NULL: none */
  const char *transition_id;  /* NULL: none */
  const char *outbox_payload; /* JSON, the request without credentials; NULL: "{}" */
  int smtp;                   /* 0: an HTTP POST, 1: an e-mail */
  const char *url;            /* the URL to post to, or the SMTP server's */
  const char *body;           /* the HTTP body, or the whole e-mail message */
  size_t body_len;
  const char *const *headers; /* HTTP: "Name: value" lines */
  size_t nheaders;
  int starttls;          /* SMTP, as lf_smtp_request */
  const char *username;  /* SMTP; NULL: no AUTH */
  const char *password;  /* SMTP */
  const char *from;      /* SMTP envelope sender */
  const char *const *to; /* SMTP envelope recipients */
  size_t nto;
  double timeout;        /* seconds an attempt may take; <= 0: 10 */
  int verify;            /* TLS verification (1, as lf_http_request) */
  const char *ca_file;   /* NULL: the system's */
  double deliver_within; /* seconds to keep trying; <= 0: LF_SENDER_DELIVER_WITHIN */
} lf_send_request;

/* Copies req into the queue and returns at once: 0, or -1 with err set when
 * it is refused (a URL that does not parse, a full queue, no memory, no
 * thread). Never waits for the network. */
int lf_sender_enqueue(const lf_send_request *req, char *err, size_t errlen);

/* Waits until every item queued so far has its outcome. interrupted (NULL:
 * never) is polled ten times a second: once it returns nonzero, the items
 * left get their last chance. Returns how many items were pending when it
 * started. */
size_t lf_sender_drain(int (*interrupted)(void));

/* Drains (as lf_sender_drain) and ends the thread; the next
 * lf_sender_enqueue starts it again. Hosts call it before the process exits:
 * a thread still running when the TLS library's own exit cleanup has run
 * would leave its per-thread state behind. Also called at exit by a
 * destructor, for hosts that did not. */
void lf_sender_stop(int (*interrupted)(void));

/* Items queued and not yet given their outcome. */
size_t lf_sender_pending(void);

/* Outcomes since the process started: delivered, and given up. */
void lf_sender_totals(unsigned long *delivered, unsigned long *failed);

#endif
