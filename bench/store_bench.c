/* The run store's cost, measured from C (no Lua): a synthetic run of N tasks,
 * each with the records the engine will append for it (two transitions, its
 * final record and, with --logs, its two INFO lines).
 *
 *   build/store_bench [N] [--logs] [--path FILE]
 *
 * Prints the engine side (what recording costs the thread that appends),
 * how long the writer needed after the last append, the writer's throughput,
 * and the bytes the run takes on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "store.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long file_bytes(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

int main(int argc, char **argv) {
  long n = 100000;
  int logs = 0;
  char path[4096];
  snprintf(path, sizeof path, "/tmp/luaflow-store-bench-%d.db", (int)getpid());
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--logs") == 0)
      logs = 1;
    else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc)
      snprintf(path, sizeof path, "%s", argv[++i]);
    else
      n = atol(argv[i]);
  }
  lf_store_options o = {.flags = LF_STORE_CREATE | LF_STORE_RECORD};
  lf_store_error err;
  lf_store *s = lf_store_open(path, &o, &err);
  if (!s) {
    fprintf(stderr, "store_bench: %s\n", err.msg);
    return 1;
  }
  long long empty = file_bytes(path);
  char id[64], name[32], msg[128];
  snprintf(id, sizeof id, "bench-%d-%ld", (int)getpid(), (long)time(NULL));
  double t0 = 1.7e9;
  lf_store_run run = {.id = id,
                      .flow = "bench",
                      .script = "/bench/flow.lua",
                      .executor = "Local",
                      .started = t0,
                      .ntasks = (int)n};

  double wall0 = now(), cpu0 = cpu();
  lf_store_recorder *r = lf_store_begin_run(s, &run);
  for (long i = 1; i <= n; i++) {
    snprintf(name, sizeof name, "t%ld", i % 100);
    double t = t0 + (double)i * 1e-6;
    lf_store_transition a = {
        (int)i, 0, 1, name, LF_PENDING, LF_RUNNING, "Starting task run.", t};
    lf_store_transition b = {
        (int)i, 0, 2, name, LF_RUNNING, LF_SUCCESS, "Task run succeeded.", t};
    lf_store_record_transition(r, &a);
    if (logs) {
      int len = snprintf(msg, sizeof msg, "Task '%s': Starting task run...", name);
      lf_store_log l = {t, 20, "luaflow.TaskRunner", msg, (size_t)len};
      lf_store_record_log(r, &l);
    }
    lf_store_record_transition(r, &b);
    lf_store_task task = {(int)i, 0,   name, LF_SUCCESS, "Task run succeeded.", 1, t,
                          t,      "1", 1,    1};
    lf_store_record_task(r, &task);
    if (logs) {
      int len = snprintf(
          msg, sizeof msg,
          "Task '%s': Finished task run for task with final state: 'Success'", name);
      lf_store_log l = {t, 20, "luaflow.TaskRunner", msg, (size_t)len};
      lf_store_record_log(r, &l);
    }
  }
  lf_store_end_run(r, t0 + 1, LF_SUCCESS, "All reference tasks succeeded.", 0);
  double appended = now(), engine_cpu = cpu() - cpu0;
  if (lf_store_close(s, &err) != 0) {
    fprintf(stderr, "store_bench: %s\n", err.msg);
    return 1;
  }
  double closed = now();
  long long bytes = file_bytes(path) - empty;
  long records = n * (logs ? 5 : 3) + 2;
  printf("store_bench: %ld tasks, %ld records (%s)\n", n, records,
         logs ? "2 transitions, 1 task record, 2 log lines a task"
              : "2 transitions and 1 task record a task");
  printf("  engine side: %.3f s wall, %.3f s CPU for the appends: %.0f ns a record, "
         "%.2f M records/s\n",
         appended - wall0, engine_cpu, engine_cpu / (double)records * 1e9,
         (double)records / engine_cpu / 1e6);
  printf("  writer: done %.3f s after the last append; %.3f s in all: %.2f us a task\n",
         closed - appended, closed - wall0, (closed - wall0) / (double)n * 1e6);
  printf("  on disk: %lld bytes for the run, %.1f bytes a task\n", bytes,
         (double)bytes / (double)n);

  /* Reading it back, as `luaflow runs show` and a restart will. */
  lf_store *rd = lf_store_open(path, NULL, &err);
  lf_store_rows tasks, transitions;
  double r0 = now();
  if (!rd || lf_store_run_tasks(rd, id, &tasks, &err) != 0) {
    fprintf(stderr, "store_bench: %s\n", err.msg);
    return 1;
  }
  double r1 = now();
  if (lf_store_run_transitions(rd, id, &transitions, &err) != 0) {
    fprintf(stderr, "store_bench: %s\n", err.msg);
    return 1;
  }
  double r2 = now();
  printf("  reading back: %zu tasks in %.3f s, %zu transitions in %.3f s\n", tasks.n,
         r1 - r0, transitions.n, r2 - r1);
  lf_store_rows_free(&tasks);
  lf_store_rows_free(&transitions);
  lf_store_close(rd, NULL);
  unlink(path);
  char aux[4200];
  snprintf(aux, sizeof aux, "%s-wal", path);
  unlink(aux);
  snprintf(aux, sizeof aux, "%s-shm", path);
  unlink(aux);
  return 0;
}
