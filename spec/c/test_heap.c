/* The binary heap (heap.c) and the ready set on it (ready.c): entries come
 * out smallest key first whatever order they went in, ties included, and
 * the ready set hands back ranks in order when some arrive behind its
 * cursor. Checked against a sort of the same random input. */
#include <stdlib.h>
#include "heap.h"
#include "ready.h"
#include "test.h"

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

TEST_IMPL(heap_pops_in_key_order) {
  enum { N = 5000 };
  static double keys[N];
  lf_heap h = {0};
  srand(7);
  for (int i = 0; i < N; i++) {
    keys[i] = (double)(rand() % 100); /* many equal keys */
    ASSERT_OK(lf_heap_push(&h, keys[i], i, i % 3));
  }
  ASSERT_EQ(h.count, N);
  qsort(keys, N, sizeof keys[0], compare_doubles);
  for (int i = 0; i < N; i++) {
    lf_heap_entry e = lf_heap_pop(&h);
    ASSERT(e.key == keys[i]);
    ASSERT_EQ(e.tag, e.value % 3); /* value and tag travel with their key */
  }
  ASSERT_EQ(h.count, 0);
  lf_heap_free(&h);
  ASSERT_NULL(h.entry);
  return 0;
}

TEST_IMPL(heap_interleaved_pushes_and_pops) {
  lf_heap h = {0};
  ASSERT_OK(lf_heap_push(&h, 3.0, 3, 0));
  ASSERT_OK(lf_heap_push(&h, 1.0, 1, 0));
  ASSERT_EQ(lf_heap_pop(&h).value, 1);
  ASSERT_OK(lf_heap_push(&h, 2.0, 2, 0));
  ASSERT_OK(lf_heap_push(&h, -1.5, 0, 0));
  ASSERT_EQ(lf_heap_pop(&h).value, 0);
  ASSERT_EQ(lf_heap_pop(&h).value, 2);
  ASSERT_EQ(lf_heap_pop(&h).value, 3);
  ASSERT_EQ(h.count, 0);
  lf_heap_free(&h);
  return 0;
}

TEST_IMPL(ready_set_gives_the_smallest_rank) {
  enum { N = 300 };
  lf_ready s;
  ASSERT_OK(lf_ready_init(&s, N));
  /* in order, as tasks in a topological order mostly become ready */
  for (int i = 0; i < 100; i++)
    ASSERT_OK(lf_ready_push(&s, i));
  for (int i = 0; i < 50; i++)
    ASSERT_EQ(lf_ready_pop(&s), i);
  /* behind the cursor (a retry of an earlier task) and far ahead of it */
  ASSERT_OK(lf_ready_push(&s, 10));
  ASSERT_OK(lf_ready_push(&s, 250));
  ASSERT_OK(lf_ready_push(&s, 3));
  ASSERT_EQ(s.count, 53);
  ASSERT_EQ(lf_ready_pop(&s), 3);
  ASSERT_EQ(lf_ready_pop(&s), 10);
  for (int i = 50; i < 100; i++)
    ASSERT_EQ(lf_ready_pop(&s), i);
  ASSERT_EQ(lf_ready_pop(&s), 250);
  ASSERT_EQ(s.count, 0);
  lf_ready_free(&s);
  return 0;
}

TEST_IMPL(ready_set_random_against_a_sort) {
  enum { N = 2000 };
  static char in_set[N];
  lf_ready s;
  ASSERT_OK(lf_ready_init(&s, N));
  srand(11);
  for (int round = 0; round < 20000; round++) {
    int r = rand() % N;
    if (rand() % 3 && !in_set[r]) {
      ASSERT_OK(lf_ready_push(&s, r));
      in_set[r] = 1;
    } else if (s.count > 0) {
      int smallest = 0;
      while (!in_set[smallest])
        smallest++;
      ASSERT_EQ(lf_ready_pop(&s), smallest);
      in_set[smallest] = 0;
    }
  }
  lf_ready_free(&s);
  return 0;
}
