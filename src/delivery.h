/* delivery: every notification luaflow sends is visible. Its outcome is one
 * log line, and a row of the run store's deliveries when a store is
 * attached. Lua-free; any thread.
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

/* Records deliveries (and asynchronous ones' outbox rows) into s from now
 * on; NULL stops it. Once this returns, the previous store is no longer
 * used: detach a store before closing it. */
void lf_delivery_attach_store(lf_store *s);
/* Detaches s when it is the attached store (a store about to close). */
void lf_delivery_detach_store(lf_store *s);

/* Logs the outcome at `level` (LF_LOG_INFO for a delivery made; WARNING or
 * ERROR for one that failed) and records it. attempts > 1 is said in the
 * line. */
void lf_delivery_report(const lf_delivery *d, int level, int attempts);

/* Runs fn(store, ud) with the attached store (NULL when none), the store
 * held attached meanwhile. */
void lf_delivery_with_store(void (*fn)(lf_store *s, void *ud), void *ud);

#endif
