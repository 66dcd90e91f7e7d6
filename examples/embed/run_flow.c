/* Embedding luaflow: run a flow file and print every final state.
 * Usage: run_flow FILE [--store PATH] [NAME=VALUE]...   (VALUE is JSON when
 * it parses; --store records the runs into the run store at PATH) */
#include <stdio.h>
#include <string.h>
#include <luaflow.h>

static void print_state(const char *label, const char *name, const lf_state *s) {
  const char *msg = lf_state_message(s);
  printf("%s %s: %s(%s%s%s)\n", label, name, lf_kind_name(lf_state_kind(s)),
         msg ? "\"" : "", msg ? msg : "", msg ? "\"" : "");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [--store PATH] [NAME=VALUE]...\n", argv[0]);
    return 2;
  }
  lf_engine *e = lf_engine_new();
  if (!e) {
    fprintf(stderr, "run_flow: cannot create an engine\n");
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
      if (lf_engine_set_store(e, argv[++i]) != 0) /* the run goes on unrecorded */
        fprintf(stderr, "run_flow: %s\n", lf_engine_error(e));
      continue;
    }
    char name[256];
    const char *eq = strchr(argv[i], '=');
    if (!eq || (size_t)(eq - argv[i]) >= sizeof name) {
      fprintf(stderr, "run_flow: expected NAME=VALUE, got '%s'\n", argv[i]);
      lf_engine_free(e);
      return 2;
    }
    memcpy(name, argv[i], (size_t)(eq - argv[i]));
    name[eq - argv[i]] = '\0';
    lf_engine_set_param(e, name, eq + 1);
  }
  int code = lf_engine_run_file(e, argv[1]);
  if (lf_engine_error(e)) fprintf(stderr, "run_flow: %s\n", lf_engine_error(e));
  for (int r = 0; r < lf_engine_nruns(e); r++) {
    print_state("flow", lf_engine_flow_name(e, r), lf_engine_flow_state(e, r));
    for (int t = 0; t < lf_engine_ntasks(e, r); t++)
      print_state("  task", lf_engine_task_name(e, r, t), lf_engine_task_state(e, r, t));
  }
  lf_engine_free(e);
  return code;
}
