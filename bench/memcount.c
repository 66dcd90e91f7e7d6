/* A malloc shim for `make bench` (LD_PRELOAD): counts the live bytes of the
 * whole process, Lua's and the engine's, and their peak. luaflow finds the
 * counters with dlsym (core.mem_live / core.mem_peak) when the shim is loaded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stddef.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static long long live, peak;

/* dlsym's own calloc during start-up is served from this buffer. */
static char boot[4096];
static size_t boot_used;

static void init(void) {
  real_malloc = dlsym(RTLD_NEXT, "malloc");
  real_calloc = dlsym(RTLD_NEXT, "calloc");
  real_realloc = dlsym(RTLD_NEXT, "realloc");
  real_free = dlsym(RTLD_NEXT, "free");
}

static int from_boot(void *p) {
  return (char *)p >= boot && (char *)p < boot + sizeof boot;
}

static void count(void *p, int sign) {
  if (!p) return;
  live += sign * (long long)malloc_usable_size(p);
  if (live > peak) peak = live;
}

void *malloc(size_t n) {
  if (!real_malloc) init();
  void *p = real_malloc(n);
  count(p, 1);
  return p;
}

void *calloc(size_t a, size_t b) {
  if (!real_calloc) {
    if (boot_used + a * b > sizeof boot) return NULL;
    void *p = boot + boot_used;
    boot_used += (a * b + 15) & ~(size_t)15;
    return p;
  }
  void *p = real_calloc(a, b);
  count(p, 1);
  return p;
}

void *realloc(void *old, size_t n) {
  if (!real_realloc) init();
  if (from_boot(old)) return NULL;
  if (old) count(old, -1);
  void *p = real_realloc(old, n);
  if (p)
    count(p, 1);
  else if (old && n)
    count(old, 1); /* the old block is still there */
  return p;
}

void free(void *p) {
  if (!p || from_boot(p)) return;
  if (!real_free) init();
  count(p, -1);
  real_free(p);
}

long long lf_memcount_live(void);
long long lf_memcount_peak(void);
void lf_memcount_reset_peak(void);
long long lf_memcount_live(void) {
  return live;
}
long long lf_memcount_peak(void) {
  return peak;
}
void lf_memcount_reset_peak(void) {
  peak = live;
}
