/* Which process recorded a run, and is it still alive? A run records its
 * process's pid, host, "host key" (boot id and pid namespace: where that pid
 * means this process) and start time; while open, its heartbeat. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "clock.h"
#include "store_priv.h"

/* Reads the state letter and start time (clock ticks since boot) of pid from
 * /proc; 0 when found. */
static int proc_stat(long pid, char *state, long long *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: skip to its end. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p++;
  for (int field = 3; field <= 22; field++) {
    while (*p == ' ')
      p++;
    if (!*p) return -1;
    if (field == 3) *state = *p;
    if (field == 22) {
      *start = strtoll(p, NULL, 10);
      return 0;
    }
    while (*p && *p != ' ')
      p++;
  }
  return -1;
}

void lf_store_identify(lf_store *s) {
  if (gethostname(s->host, sizeof s->host - 1) != 0) strcpy(s->host, "unknown");
  s->host[sizeof s->host - 1] = '\0';
  s->self.host = s->host;
  s->self.pid = (long)getpid();
  char state;
  if (proc_stat(s->self.pid, &state, &s->self.proc_start) != 0) s->self.proc_start = 0;
  char boot[64] = "";
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
  if (f) {
    if (!fgets(boot, sizeof boot, f)) boot[0] = '\0';
    fclose(f);
    boot[strcspn(boot, "\n")] = '\0';
  }
  struct stat ns;
  if (boot[0] && stat("/proc/self/ns/pid", &ns) == 0) {
    snprintf(s->host_key, sizeof s->host_key, "%s/%llu", boot,
             (unsigned long long)ns.st_ino);
    s->self.host_key = s->host_key;
  }
}

int lf_store_run_alive(const lf_store *s, long pid, const char *host_key,
                       long long proc_start, double heartbeat) {
  if (s->self.host_key && host_key && strcmp(host_key, s->self.host_key) == 0 &&
      pid > 0) {
    char state;
    long long start;
    if (proc_stat(pid, &state, &start) != 0) return 0; /* gone */
    if (state == 'Z' || state == 'X') return 0;        /* dead, not yet reaped */
    return proc_start == 0 || start == proc_start;     /* else: the pid was reused */
  }
  /* Another machine, container or boot: only the heartbeat can tell. */
  return lf_now() - heartbeat <= LF_STORE_STALE;
}
