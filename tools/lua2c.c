/* Turns the lua/luaflow sources into a C table of module names and sources. */
#include <stdio.h>
#include <string.h>

static void module_name(const char *path, char *out, size_t n) {
  const char *base = strstr(path, "lua/");
  base = base ? base + 4 : path;
  snprintf(out, n, "%s", base);
  char *dot = strrchr(out, '.');
  if (dot) *dot = '\0';
  for (char *p = out; *p; p++)
    if (*p == '/') *p = '.';
  size_t len = strlen(out);
  if (len > 5 && strcmp(out + len - 5, ".init") == 0) out[len - 5] = '\0';
}

int main(int argc, char **argv) {
  printf("#include <stddef.h>\n#include \"lua_sources.h\"\n");
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return 1;
    }
    printf("static const char src%d[] = {", i);
    int c, col = 0;
    while ((c = fgetc(f)) != EOF)
      printf("%s%d,", (col++ % 24) ? "" : "\n", c);
    printf("0};\n");
    fclose(f);
  }
  printf("const lf_lua_source lf_lua_sources[] = {\n");
  for (int i = 1; i < argc; i++) {
    char name[256];
    module_name(argv[i], name, sizeof name);
    printf("  {\"%s\", \"%s\", src%d, sizeof src%d - 1},\n", name, argv[i], i, i);
  }
  printf("  {NULL, NULL, NULL, 0}};\n");
  return 0;
}
