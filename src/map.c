/* Mapped tasks in a run (see map.h): the children's ids, objects, ready
 * queue and upstream states. Lua-free. */
#include <stdlib.h>
#include <string.h>
#include "host.h"
#include "map.h"

struct lf_map_run {
  int *first;       /* by task index: the id of its first child, -1 until mapped */
  int *count;       /* by task index: its number of children */
  int *left;        /* by task index: its children not finished yet */
  lf_object **objs; /* by task index: its children's objects (owned) */
  char **names;     /* by task index: their names, one block (owned) */
  int *parent;      /* by child (id - ntasks): its parent's task index */
  int nkids, cap_kids;
  int task_cap; /* r->task's capacity once it has left the run's block (0: in it) */
  struct {      /* children ready to begin: a ring */
    int *ring;
    int head, count, cap;
  } ready;
  lf_state **scratch; /* the gathered upstream states */
  int cap_scratch;
};

static void *grow_array(lf_run *r, void *p, int *cap, int need, size_t size) {
  if (need <= *cap) return p;
  int ncap = *cap ? *cap : 16;
  while (ncap < need)
    ncap *= 2;
  void *np = realloc(p, (size_t)ncap * size);
  if (!np) lf_run_abort(r, "not enough memory");
  *cap = ncap;
  return np;
}

int lf_map_init(lf_run *r) {
  struct lf_map_run *m = calloc(1, sizeof *m);
  if (!m) return -1;
  r->map = m;
  size_t n = (size_t)r->ntasks;
  m->first = malloc(n * sizeof *m->first);
  m->count = calloc(n, sizeof *m->count);
  m->left = calloc(n, sizeof *m->left);
  m->objs = calloc(n, sizeof *m->objs);
  m->names = calloc(n, sizeof *m->names);
  if (!m->first || !m->count || !m->left || !m->objs || !m->names) return -1;
  for (int i = 0; i < r->ntasks; i++)
    m->first[i] = -1;
  return 0;
}

void lf_map_release(lf_run *r) {
  struct lf_map_run *m = r->map;
  if (!m) return;
  if (r->task)
    for (int k = 0; k < m->nkids; k++) {
      lf_state_release(r->task[r->ntasks + k].state);
      lf_state_release(r->task[r->ntasks + k].loop_state);
    }
  if (m->objs && m->names)
    for (int i = 0; i < r->ntasks; i++) {
      free(m->objs[i]);
      free(m->names[i]);
    }
  if (m->task_cap) free(r->task); /* the run's block no longer holds it */
  r->task = NULL;
  free(m->first);
  free(m->count);
  free(m->left);
  free(m->objs);
  free(m->names);
  free(m->parent);
  free(m->ready.ring);
  free(m->scratch);
  free(m);
  r->map = NULL;
}

int lf_map_parent(const lf_run *r, int c) {
  return r->map->parent[c - r->ntasks];
}

lf_object *lf_map_object(const lf_run *r, int c) {
  int p = lf_map_parent(r, c);
  return &r->map->objs[p][c - r->map->first[p]];
}

int lf_map_index(const lf_run *r, int c) {
  if (c < r->ntasks) return 0;
  return c - r->map->first[lf_map_parent(r, c)] + 1;
}

int lf_map_nkids(const lf_run *r) {
  return r->map ? r->map->nkids : 0;
}

int lf_map_edge_mode(const lf_run *r, int i, int k) {
  const lf_task *t = r->flow->tasks[i];
  int key = r->up.key[k];
  if (!t->mapped || key <= 0 || key > t->nmap) return LF_MAP_WHOLE;
  return t->arg_map[key];
}

/* ---- the ready children ---- */

int lf_map_ready_count(const lf_run *r) {
  return r->map ? r->map->ready.count : 0;
}

void lf_map_ready_push(lf_run *r, int c) {
  struct lf_map_run *m = r->map;
  if (m->ready.count == m->ready.cap) { /* grow the ring, oldest first */
    int cap = m->ready.cap ? m->ready.cap * 2 : 64;
    int *grown = malloc((size_t)cap * sizeof *grown);
    if (!grown) lf_run_abort(r, "not enough memory");
    for (int k = 0; k < m->ready.count; k++)
      grown[k] = m->ready.ring[(m->ready.head + k) % m->ready.cap];
    free(m->ready.ring);
    m->ready.ring = grown;
    m->ready.head = 0;
    m->ready.cap = cap;
  }
  m->ready.ring[(m->ready.head + m->ready.count++) % m->ready.cap] = c;
}

int lf_map_ready_pop(lf_run *r) {
  struct lf_map_run *m = r->map;
  int c = m->ready.ring[m->ready.head];
  m->ready.head = (m->ready.head + 1) % m->ready.cap;
  m->ready.count--;
  return c;
}

/* ---- the parent's life ---- */

lf_state *lf_map_begin(lf_run *r, int i) {
  int n = -1;
  lf_state *s = r->host->ops->map_count(r->host, r, i, &n);
  if (!s) lf_run_abort(r, "not enough memory");
  r->map->count[i] = n < 0 ? 0 : n;
  return s;
}

/* Parent i's Mapped state with its children's states as they are now:
 * final once they have all finished. */
static void finalize(lf_run *r, int i) {
  struct lf_map_run *m = r->map;
  lf_state *s = r->host->ops->map_final(r->host, r, i, m->first[i], m->count[i]);
  if (!s) lf_run_abort(r, "not enough memory");
  lf_state_release(r->task[i].state);
  r->task[i].state = s;
}

/* Room in r->task for `more` children after the ones it has. */
static void grow_tasks(lf_run *r, int more) {
  struct lf_map_run *m = r->map;
  int need = r->ntasks + m->nkids + more;
  if (need <= (m->task_cap ? m->task_cap : r->ntasks)) return;
  int cap = m->task_cap ? m->task_cap : r->ntasks;
  if (cap < 16) cap = 16;
  while (cap < need)
    cap *= 2;
  lf_task_run *t;
  if (m->task_cap) {
    t = realloc(r->task, (size_t)cap * sizeof *t);
    if (!t) lf_run_abort(r, "not enough memory");
  } else { /* the first children: the task runs leave the run's block */
    t = malloc((size_t)cap * sizeof *t);
    if (!t) lf_run_abort(r, "not enough memory");
    memcpy(t, r->task, (size_t)r->ntasks * sizeof *t);
  }
  r->task = t;
  m->task_cap = cap;
}

/* Writes "[k]" and a NUL at p; returns the length written, NUL aside. */
static size_t put_index(char *p, int k) {
  char digits[12];
  size_t n = 0, len = 0;
  do
    digits[n++] = (char)('0' + k % 10);
  while ((k /= 10) > 0);
  p[len++] = '[';
  while (n > 0)
    p[len++] = digits[--n];
  p[len++] = ']';
  p[len] = '\0';
  return len;
}

/* The objects of parent i's n children: "name[k]", with its handlers. */
static void make_objects(lf_run *r, int i, int n) {
  struct lf_map_run *m = r->map;
  const lf_object *po = &r->flow->tasks[i]->obj;
  size_t len = strlen(po->name), size = 0;
  for (int k = 1, digits = 1, next = 10; k <= n; k++) {
    if (k == next) digits++, next *= 10;
    size += len + (size_t)digits + 3;
  }
  lf_object *objs = calloc((size_t)n, sizeof *objs);
  char *names = malloc(size);
  if (!objs || !names) {
    free(objs);
    free(names);
    lf_run_abort(r, "not enough memory");
  }
  m->objs[i] = objs; /* a task maps once: Mapped is final */
  m->names[i] = names;
  char *p = names;
  for (int k = 0; k < n; k++) {
    objs[k] = *po;
    objs[k].name = p;
    memcpy(p, po->name, len);
    p += len;
    p += put_index(p, k + 1) + 1;
  }
}

int lf_map_expand(lf_run *r, int i) {
  struct lf_map_run *m = r->map;
  int n = m->count[i];
  grow_tasks(r, n);
  m->parent = grow_array(r, m->parent, &m->cap_kids, m->nkids + n, sizeof *m->parent);
  int first = r->ntasks + m->nkids;
  m->first[i] = first;
  if (n == 0) {
    finalize(r, i);
    return 0;
  }
  make_objects(r, i, n);
  m->left[i] = n;
  uint8_t approved = r->task[i].flags & LF_TASK_APPROVED; /* resume= covers every child */
  for (int k = 0; k < n; k++) {
    lf_task_run *tr = &r->task[first + k];
    memset(tr, 0, sizeof *tr);
    tr->state = lf_state_ref(r->shared.pending);
    tr->rank = r->task[i].rank;
    tr->flags = approved;
    m->parent[m->nkids + k] = i;
  }
  m->nkids += n;
  for (int k = 0; k < n; k++)
    lf_map_ready_push(r, first + k);
  return n;
}

int lf_map_child_finished(lf_run *r, int c) {
  lf_task_run *tr = &r->task[c];
  if (tr->flags & LF_TASK_FINISHED) return -1;
  tr->flags |= LF_TASK_FINISHED;
  int p = lf_map_parent(r, c);
  if (--r->map->left[p] > 0) return -1;
  finalize(r, p);
  return p;
}

int lf_map_waiting(const lf_run *r, int i) {
  return r->map && r->map->first[i] >= 0 && r->map->left[i] > 0;
}

void lf_map_end_all(lf_run *r) {
  struct lf_map_run *m = r->map;
  if (!m) return;
  for (int i = 0; i < r->ntasks; i++) {
    if (m->first[i] < 0 || m->left[i] == 0) continue;
    for (int c = m->first[i]; c < m->first[i] + m->count[i]; c++) {
      /* "Task not run." when it never began (a cancelled run) */
      lf_state *s = lf_run_final_state(r, c);
      if (!s) lf_run_abort(r, "not enough memory");
      if (s != r->task[c].state) {
        lf_state_release(r->task[c].state);
        r->task[c].state = lf_state_ref(s);
      }
    }
    finalize(r, i);
  }
}

/* ---- upstream states ---- */

static void add_state(lf_run *r, int *n, int id) {
  lf_task_run *u = &r->task[id];
  if (u->flags & LF_TASK_SEEN) return; /* one entry per task run, however many edges */
  u->flags |= LF_TASK_SEEN;
  r->upstream_states[(*n)++] = u->state;
}

/* Calls add (or clears the marks) for each upstream task run i sees. */
static int walk_upstreams(lf_run *r, int i, int clear) {
  struct lf_map_run *m = r->map;
  int p = lf_run_task_index(r, i), index = lf_map_index(r, i), n = 0;
  int mapped_parent = i < r->ntasks && r->flow->tasks[i]->mapped;
  for (int k = r->up.start[p]; k < r->up.start[p + 1]; k++) {
    int u = r->up.task[k], from = u, to = u + 1;
    if (m->first[u] >= 0) { /* a mapped upstream */
      int each = lf_map_edge_mode(r, p, k) == LF_MAP_EACH;
      if (each && index > 0) {
        from = m->first[u] + index - 1, to = from + 1; /* child by child */
      } else if (!(each && mapped_parent)) {
        from = m->first[u], to = from + m->count[u]; /* every child */
      }
    }
    for (int id = from; id < to; id++)
      if (clear)
        r->task[id].flags &= (uint8_t)~LF_TASK_SEEN;
      else
        add_state(r, &n, id);
  }
  return n;
}

int lf_map_gather(lf_run *r, int i) {
  struct lf_map_run *m = r->map;
  m->scratch = grow_array(r, m->scratch, &m->cap_scratch, r->ntasks + m->nkids,
                          sizeof *m->scratch);
  r->upstream_states = m->scratch;
  int n = walk_upstreams(r, i, 0);
  walk_upstreams(r, i, 1);
  return n;
}

lf_state *lf_map_upstream_state(const lf_run *r, int i, int k) {
  int u = r->up.task[k];
  if (i < r->ntasks || r->map->first[u] < 0) return r->task[u].state;
  int p = lf_map_parent(r, i);
  if (lf_map_edge_mode(r, p, k) != LF_MAP_EACH) return r->task[u].state;
  return r->task[r->map->first[u] + lf_map_index(r, i) - 1].state;
}

void lf_map_reference(const lf_run *r, int i, int *failed, int *all_ok) {
  if (!r->map || r->map->first[i] < 0) return;
  for (int c = r->map->first[i]; c < r->map->first[i] + r->map->count[i]; c++) {
    if (LF_IS(r->task[c].state, LF_FAILED)) *failed = 1;
    if (!LF_IS(r->task[c].state, LF_SUCCESS)) *all_ok = 0;
  }
}
