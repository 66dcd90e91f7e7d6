/* The C unit tests' runner (libuv's habit): each test runs in a process of
 * its own, so a crash, an abort or a leak report fails that test only; its
 * output is kept and shown under a failure. Results are TAP lines
 * ("ok 3 - C unit: state_masks") that scripts/run-specs.sh counts with busted's.
 *
 *   ctest          runs every test of test_list.h
 *   ctest NAME...  runs those in this process, one after the other (for a debugger) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test.h"
#include "test_list.h"

#define DECLARE(name) int run_test_##name(void);
TEST_LIST(DECLARE)

static const struct {
  const char *name;
  int (*fn)(void);
} tests[] = {
#define ENTRY(name) {#name, run_test_##name},
    TEST_LIST(ENTRY)};
#define NTESTS (int)(sizeof tests / sizeof tests[0])

enum { TIMEOUT_SECONDS = 60 };

/* Prints text as TAP diagnostics, "# " before each line. */
static void print_diagnostics(const char *text, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++)
    if (i == len || text[i] == '\n') {
      if (i > start) printf("# %.*s\n", (int)(i - start), text + start);
      start = i + 1;
    }
}

/* Runs test k in a child; returns 1 when it passed. */
static int run_isolated(int k) {
  int fds[2];
  fflush(stdout);
  if (pipe(fds) != 0) return 0;
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    alarm(TIMEOUT_SECONDS);
    int rc = tests[k].fn();
    fflush(NULL);
    exit(rc);
  }
  close(fds[1]);
  char *out = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? 2 * cap : 4096;
      char *grown = realloc(out, cap);
      if (!grown) break;
      out = grown;
    }
    ssize_t n = read(fds[0], out + len, cap - len);
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  int passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  printf("%s %d - C unit: %s\n", passed ? "ok" : "not ok", k + 1, tests[k].name);
  if (!passed) {
    print_diagnostics(out ? out : "", out ? len : 0);
    if (WIFSIGNALED(status))
      printf("# killed by signal %d%s\n", WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
    else
      printf("# exit status %d\n", WEXITSTATUS(status));
  }
  free(out);
  return passed;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    for (int a = 1; a < argc; a++) {
      int k = 0;
      while (k < NTESTS && strcmp(tests[k].name, argv[a]) != 0)
        k++;
      if (k == NTESTS) {
        fprintf(stderr, "ctest: no test named '%s'\n", argv[a]);
        return 2;
      }
      if (tests[k].fn() != 0) return 1;
      printf("ok - C unit: %s\n", tests[k].name);
    }
    return 0;
  }
  printf("1..%d\n", NTESTS);
  int failed = 0;
  for (int k = 0; k < NTESTS; k++)
    failed += !run_isolated(k);
  return failed ? 1 : 0;
}
