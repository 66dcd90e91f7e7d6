/* delivery: the log line and the journal record of each delivery (delivery.h). */
#include <pthread.h>
#include <stdio.h>
#include "delivery.h"
#include "log.h"

#define LOGGER "luaflow.notifications"

/* The journal; held while it is called, so that changing it waits for the
 * callers. */
static pthread_mutex_t journal_mu = PTHREAD_MUTEX_INITIALIZER;
static lf_delivery_journal journal;

void lf_delivery_set_journal(const lf_delivery_journal *j) {
  pthread_mutex_lock(&journal_mu);
  journal = j ? *j : (lf_delivery_journal){0};
  pthread_mutex_unlock(&journal_mu);
}

void lf_delivery_unset_journal(void *ud) {
  pthread_mutex_lock(&journal_mu);
  if (ud && journal.ud == ud) journal = (lf_delivery_journal){0};
  pthread_mutex_unlock(&journal_mu);
}

void lf_delivery_outbox(int op, const lf_store_outbox_item *it) {
  pthread_mutex_lock(&journal_mu);
  if (journal.outbox) journal.outbox(journal.ud, op, it);
  pthread_mutex_unlock(&journal_mu);
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
  pthread_mutex_lock(&journal_mu);
  if (journal.delivered) journal.delivered(journal.ud, d);
  pthread_mutex_unlock(&journal_mu);
}
