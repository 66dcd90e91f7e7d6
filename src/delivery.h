/* delivery: every notification luaflow sends is visible. Its outcome is one
 * log line, and a record in the journal when one is set (the run store's
 * deliveries table: lf_store_attach_deliveries). Lua-free; any thread.
 *
 *   INFO    Slack notification for <Task: extract> delivered to
 *           https://hooks.slack.com:443: HTTP 200 (0.118 s)
 *   ERROR   Slack notification for <Task: extract> failed: HTTP 500 from
 *           https://hooks.slack.com:443; ... (0.031 s, 4 attempts)
 *
 * The destination is "scheme://host:port", never a URL's path (a webhook's
 * token) nor its credentials; the status is "HTTP <code>", the SMTP server's
 * reply, or why the delivery failed. Lines go through the log's redaction
 * like every other line. */
#ifndef LF_DELIVERY_H
#define LF_DELIVERY_H

#include "store.h"

typedef lf_store_delivery lf_delivery;

/* Where deliveries and asynchronous items waiting for theirs are recorded.
 * A journal only holds pointers: nothing here links the store in. */
typedef struct {
  void *ud;
  void (*delivered)(void *ud, const lf_delivery *d);
  /* op: LF_OUTBOX_ADD, LF_OUTBOX_UPDATE or LF_OUTBOX_REMOVE (store_backend.h) */
  void (*outbox)(void *ud, int op, const lf_store_outbox_item *it);
} lf_delivery_journal;

/* Records into j from now on (copied; NULL stops it). Once this returns the
 * previous journal is no longer used. */
void lf_delivery_set_journal(const lf_delivery_journal *j);
/* Stops recording when the journal's ud is `ud` (a store about to close). */
void lf_delivery_unset_journal(void *ud);

/* Logs the outcome at `level` (LF_LOG_INFO for a delivery made; WARNING or
 * ERROR for one that failed) and records it. attempts > 1 is said in the
 * line. */
void lf_delivery_report(const lf_delivery *d, int level, int attempts);

/* An asynchronous item's outbox row changes (recorded when a journal is set). */
void lf_delivery_outbox(int op, const lf_store_outbox_item *it);

#endif
