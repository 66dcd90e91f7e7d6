/* delivery: the log line and the store row of each delivery (delivery.h). */
#include <pthread.h>
#include <stdio.h>
#include "delivery.h"
#include "log.h"

#define LOGGER "luaflow.notifications"

/* The attached store; held while a record is appended so that detaching
 * waits for the appender. */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static lf_store *store;

void lf_delivery_attach_store(lf_store *s) {
  pthread_mutex_lock(&store_mu);
  store = s;
  pthread_mutex_unlock(&store_mu);
}

void lf_delivery_detach_store(lf_store *s) {
  pthread_mutex_lock(&store_mu);
  if (s && store == s) store = NULL;
  pthread_mutex_unlock(&store_mu);
}

void lf_delivery_with_store(void (*fn)(lf_store *s, void *ud), void *ud) {
  pthread_mutex_lock(&store_mu);
  fn(store, ud);
  pthread_mutex_unlock(&store_mu);
}

static void record(lf_store *s, void *ud) {
  if (s) lf_store_record_delivery(s, ud);
}

void lf_delivery_report(const lf_delivery *d, int level, int attempts) {
  char tries[48] = "";
  if (attempts > 1) snprintf(tries, sizeof tries, ", %d attempts", attempts);
  const char *who = d->notifier ? d->notifier : "notification";
  const char *status = d->status ? d->status : "";
  if (d->ok)
    lf_log(level, LOGGER, "%s delivered to %s: %s (%.3f s%s)", who,
           d->destination ? d->destination : "?", status, d->duration, tries);
  else
    lf_log(level, LOGGER, "%s failed: %s (%.3f s%s)", who, status, d->duration, tries);
  lf_delivery_with_store(record, (void *)d);
}
