/* The --json writer: one JSON line per flow run, written as it is encoded.
 *
 *   local w, why = core.json_lines(path)   -- "-": standard output
 *   local ok, why = w:write_run(flow, flow_state[, run])
 *   local ok, why = w:close()
 *
 * A line is {"flow":, "state":, "message":, "tasks": [{"name":, "state":,
 * "message":, "run_count":, "result":}]}, tasks in task_states() order. It is
 * built in one buffer that goes to the file whenever it passes CHUNK bytes,
 * so memory grows by the largest single result at most, never by the run.
 * Every string (names, messages, keys and values of results) is redacted as
 * it is written: nothing is copied when there is nothing to hide, and each
 * result is encoded once. A result that cannot be encoded (a function, a
 * sparse array, a __tojson that fails or returns invalid JSON, ...) is left
 * out of its task's entry.
 *
 * Every write, flush and close is checked: the first failure is returned as
 * the system's reason ("No space left on device"), and nothing more is
 * written after it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "json_text.h"
#include "lua_core.h"
#include "lua_json.h"
#include "lua_run_record.h"
#include "buf.h"
#include "clock.h"

#define JSON_LINES_MT "luaflow.JsonLines"
#define CHUNK ((size_t)64 << 10)

/* The start of a task's entry, up to "run_count":, for the last (name,
 * class, message) seen: tasks of a big flow mostly share them (copies share
 * their name, engine messages are static strings), so most entries start
 * with one copy of bytes already escaped and redacted. */
typedef struct {
  const char *name, *kind, *message;
  int valid;
  lf_buf bytes;
} entry_start;

typedef struct {
  FILE *f; /* NULL once closed */
  int is_stdout;
  int failed_errno; /* the first write error, 0: none */
  lf_buf b;
  const lf_redactor *red; /* the snapshot of the line being written */
  int busy;               /* a line is being written */
  entry_start start;
} json_lines;

static json_lines *check_writer(lua_State *L) {
  return luaL_checkudata(L, 1, JSON_LINES_MT);
}

/* Hands the buffer to the file; 0, or -1 with the error noted. */
static int flush_buffer(json_lines *w, int to_disk) {
  if (w->failed_errno) return -1;
  if (w->b.len > 0) {
    size_t want = w->b.len;
    errno = 0;
    size_t n = fwrite(w->b.data, 1, want, w->f);
    w->b.len = 0;
    if (n != want) w->failed_errno = errno ? errno : EIO;
  }
  if (!w->failed_errno && to_disk) {
    errno = 0;
    if (fflush(w->f) != 0) w->failed_errno = errno ? errno : EIO;
  }
  if (!w->failed_errno && ferror(w->f)) w->failed_errno = errno ? errno : EIO;
  return w->failed_errno ? -1 : 0;
}

static int push_failure(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushstring(L, strerror(err));
  return 2;
}

static void put(lua_State *L, lf_buf *b, const char *s, size_t n) {
  if (!lf_buf_put(b, s, n)) luaL_error(L, "not enough memory");
}

#define PUT_LITERAL(L, b, s) put(L, b, s, sizeof(s) - 1)

/* A string, redacted with red when there is something to hide; NULL is null. */
static void put_redacted(lua_State *L, const lf_redactor *red, lf_buf *b, const char *s,
                         size_t n) {
  if (!s) {
    PUT_LITERAL(L, b, "null");
    return;
  }
  int allocated = 0;
  char *shown = red ? lf_redact_with(red, s, n, &n, &allocated) : (char *)s;
  int rc = lf_json_put_string(b, shown, n);
  if (allocated) free(shown);
  if (rc != 0) luaL_error(L, "not enough memory");
}

static void put_text(lua_State *L, json_lines *w, lf_buf *b, const char *s, size_t n) {
  put_redacted(L, w->red, b, s, n);
}

static void put_cstring(lua_State *L, json_lines *w, lf_buf *b, const char *s) {
  put_text(L, w, b, s, s ? strlen(s) : 0);
}

typedef struct {
  lf_buf *b;
  const lf_redactor *red;
} encoding;

/* lf_json_encode_into in protected mode: (encoding, value). */
static int encode_protected(lua_State *L) {
  encoding *e = lua_touserdata(L, 1);
  lf_json_encode_into(L, 2, e->b, e->red);
  return 0;
}

static lf_state *state_at(lua_State *L, int idx, int state_mt);

int lf_json_put_value(lua_State *L, int idx, lf_buf *b, const lf_redactor *red) {
  size_t mark = b->len;
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    put_redacted(L, red, b, s, n);
  } else if (t == LUA_TBOOLEAN) {
    if (lua_toboolean(L, idx))
      PUT_LITERAL(L, b, "true");
    else
      PUT_LITERAL(L, b, "false");
  } else if (t == LUA_TNUMBER) {
    char buf[64];
    size_t n = lf_json_number_text(L, idx, buf);
    if (n == 0) return 0; /* NaN, inf */
    int allocated = 0;
    char *shown = red ? lf_redact_with(red, buf, n, &n, &allocated) : buf;
    int ok = allocated ? lf_json_put_string(b, shown, n) == 0 : lf_buf_put(b, buf, n);
    if (allocated) free(shown); /* a number that shows a secret: its redacted text */
    if (!ok) luaL_error(L, "not enough memory");
  } else if (t == LUA_TNIL) {
    PUT_LITERAL(L, b, "null");
  } else {
    encoding e = {b, red};
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, encode_protected);
    lua_pushlightuserdata(L, &e);
    lua_pushvalue(L, idx);
    if (lf_pcall(L, 2, 0) != LUA_OK) {
      lua_pop(L, 1);
      b->len = mark;
      return 0;
    }
  }
  return 1;
}

/* ,"result":<value> for the value at idx, or nothing when it is nil or
 * cannot be encoded. */
static void put_result(lua_State *L, json_lines *w, int idx) {
  size_t mark = w->b.len;
  if (lua_isnil(L, idx)) return;
  PUT_LITERAL(L, &w->b, ",\"result\":");
  if (!lf_json_put_value(L, idx, &w->b, w->red)) w->b.len = mark;
}

/* A mapped task's result (its children's results, null where one has none
 * or it cannot be encoded) and "children": [{"state":, "message":,
 * "run_count":, "result":}, ...], from the Mapped state's box at idx. */
static void put_children(lua_State *L, json_lines *w, int idx, int state_mt) {
  if (lua_getiuservalue(L, idx, LF_BOX_MAP_STATES) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  int states = lua_gettop(L);
  lua_getiuservalue(L, idx, LF_BOX_EXTRA); /* their run counts */
  int n = (int)lua_rawlen(L, states);
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 0)
      PUT_LITERAL(L, &w->b, ",\"result\":[");
    else
      PUT_LITERAL(L, &w->b, ",\"children\":[");
    for (int k = 1; k <= n; k++) {
      if (k > 1) PUT_LITERAL(L, &w->b, ",");
      lua_rawgeti(L, states, k);
      lf_state *s = state_at(L, -1, state_mt);
      lua_getiuservalue(L, -1, 1);
      if (pass == 0) {
        if (lua_isnil(L, -1) || !lf_json_put_value(L, lua_gettop(L), &w->b, w->red))
          PUT_LITERAL(L, &w->b, "null");
      } else {
        char num[24];
        lua_rawgeti(L, states + 1, k);
        snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, -1));
        lua_pop(L, 1);
        PUT_LITERAL(L, &w->b, "{\"state\":");
        put_cstring(L, w, &w->b, s ? lf_kind_name(s->kind) : NULL);
        PUT_LITERAL(L, &w->b, ",\"message\":");
        put_cstring(L, w, &w->b, s ? s->message : NULL);
        PUT_LITERAL(L, &w->b, ",\"run_count\":");
        put(L, &w->b, num, strlen(num));
        put_result(L, w, lua_gettop(L));
        PUT_LITERAL(L, &w->b, "}");
      }
      lua_pop(L, 2);
    }
    PUT_LITERAL(L, &w->b, "]");
  }
  lua_pop(L, 2);
}

/* The state box at idx, when it is one (its metatable is at state_mt). */
static lf_state *state_at(lua_State *L, int idx, int state_mt) {
  lf_state *s = NULL;
  idx = lua_absindex(L, idx);
  if (lua_getmetatable(L, idx)) {
    if (lua_rawequal(L, -1, state_mt)) s = ((lf_box *)lua_touserdata(L, idx))->s;
    lua_pop(L, 1);
  }
  return s;
}

/* An ISO-8601 time as a JSON string; null for 0 (unknown). */
static void put_time(lua_State *L, lf_buf *b, double t) {
  char text[64];
  if (t > 0) { /* digits, '-', 'T', ':', '.' and '+': nothing to escape */
    text[0] = '"';
    lf_format_iso(t, text + 1, sizeof text - 2);
    size_t n = strlen(text);
    text[n] = '"';
    put(L, b, text, n + 1);
  } else {
    PUT_LITERAL(L, b, "null");
  }
}

/* "started":, "ended":, "duration": from two times (0: unknown, null). */
static void put_times(lua_State *L, lf_buf *b, double started, double ended) {
  char text[64];
  PUT_LITERAL(L, b, "\"started\":");
  put_time(L, b, started);
  PUT_LITERAL(L, b, ",\"ended\":");
  put_time(L, b, ended);
  PUT_LITERAL(L, b, ",\"duration\":");
  if (started > 0 && ended >= started) {
    /* from the times as written (to the microsecond), so a restarted run's
     * kept task, whose times come back from the store, says the same */
    long long us = lf_time_us(ended) - lf_time_us(started);
    if (us < 0) us = 0;
    char *end = text + sizeof text, *p = end;
    for (int k = 0; k < 6; k++, us /= 10) /* seconds with six decimals */
      *--p = (char)('0' + us % 10);
    *--p = '.';
    p = lf_decimal(p, (unsigned long long)us);
    put(L, b, p, (size_t)(end - p));
  } else {
    PUT_LITERAL(L, b, "null");
  }
  if (b->oom) luaL_error(L, "not enough memory");
}

/* One task's entry: {"name":,"state":,"message":,"run_count":[,"started":,
 * "ended":,"duration":][,"result":]}; times: the task's two, or NULL. */
static void put_task(lua_State *L, json_lines *w, const lf_task *task, int states,
                     int state_mt, int i, int run_count, const double *times) {
  char num[24], *end = num + sizeof num;
  char *p = lf_decimal(end, run_count > 0 ? (unsigned)run_count : 0);
  lua_rawgeti(L, states, i);
  lf_state *s = state_at(L, -1, state_mt);
  const char *kind = s ? lf_kind_name(s->kind) : NULL, *message = s ? s->message : NULL;
  entry_start *e = &w->start;
  if (!e->valid || e->name != task->obj.name || e->kind != kind ||
      e->message != message) {
    e->valid = 0;
    e->bytes.len = 0;
    PUT_LITERAL(L, &e->bytes, "{\"name\":");
    put_cstring(L, w, &e->bytes, task->obj.name);
    PUT_LITERAL(L, &e->bytes, ",\"state\":");
    put_cstring(L, w, &e->bytes, kind);
    PUT_LITERAL(L, &e->bytes, ",\"message\":");
    put_cstring(L, w, &e->bytes, message);
    PUT_LITERAL(L, &e->bytes, ",\"run_count\":");
    e->name = task->obj.name, e->kind = kind, e->message = message;
    e->valid = 1;
  }
  put(L, &w->b, e->bytes.data, e->bytes.len);
  put(L, &w->b, p, (size_t)(end - p));
  if (times) {
    PUT_LITERAL(L, &w->b, ",");
    put_times(L, &w->b, times[0], times[1]);
  }
  if (s && s->kind == LF_MAPPED) {
    put_children(L, w, lua_gettop(L), state_mt);
  } else if (s && s->has_result) {
    lua_getiuservalue(L, -1, 1);
    put_result(L, w, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  PUT_LITERAL(L, &w->b, "}");
}

/* The line of a run, in protected mode: (writer, flow, flow_state, run). */
static int write_line(lua_State *L) {
  json_lines *w = lua_touserdata(L, 1);
  lf_flow *flow = lua_touserdata(L, 2);
  lf_state *fs = ((lf_box *)lua_touserdata(L, 3))->s;
  const char *run_id = NULL;
  const double *times = NULL;
  int ntimes = 0;
  if (lua_istable(L, 4)) { /* the run's table: its id and times */
    lua_getfield(L, 4, "run_id");
    run_id = lua_tostring(L, -1);
    lua_getfield(L, 4, "times");
    times = lf_run_times(L, -1, &ntimes);
  }
  lua_settop(L, 3); /* the table stays alive in the caller's frame, and keeps both */
  w->start.valid = 0;
  w->b.len = 0;
  PUT_LITERAL(L, &w->b, "{\"flow\":");
  put_cstring(L, w, &w->b, flow->obj.name);
  PUT_LITERAL(L, &w->b, ",\"state\":");
  put_cstring(L, w, &w->b, lf_kind_name(fs->kind));
  PUT_LITERAL(L, &w->b, ",\"message\":");
  put_cstring(L, w, &w->b, fs->message);
  PUT_LITERAL(L, &w->b, ",\"tasks\":[");
  lua_getiuservalue(L, 3, 1);        /* the run's result: 4 */
  lua_getiuservalue(L, 4, 1);        /* its states by task index: 5 */
  lua_getiuservalue(L, 4, 2);        /* its flow: 6 */
  luaL_getmetatable(L, LF_STATE_MT); /* 7 */
  lf_flow *ran = luaL_testudata(L, 6, LF_FLOW_MT);
  int n = 0;
  const int *counts = NULL, *order = ran ? lf_result_order(L, 4, &n, &counts) : NULL;
  for (int k = 0; order && k < n; k++) {
    int i = order[k];
    if (k > 0) PUT_LITERAL(L, &w->b, ",");
    if (i < ran->ntasks)
      put_task(L, w, ran->tasks[i], 5, 7, i + 1, counts[i],
               times && i < ntimes ? times + 2 + 2 * i : NULL);
    if (w->b.len >= CHUNK && flush_buffer(w, 0) != 0) return 0;
  }
  PUT_LITERAL(L, &w->b, "]");
  if (run_id) {
    PUT_LITERAL(L, &w->b, ",\"run_id\":");
    put_cstring(L, w, &w->b, run_id);
  }
  if (times) {
    PUT_LITERAL(L, &w->b, ",");
    put_times(L, &w->b, times[0], times[1]);
  }
  PUT_LITERAL(L, &w->b, "}\n");
  return 0;
}

/* w:write_run(flow, flow_state[, run]) -> true | nil, reason (run: the
 * run's table, whose run_id and times join the line). The line is written
 * in protected mode, so whatever happens (no memory, a result's __tojson
 * running a flow whose line would come in the middle of this one) the
 * writer is left consistent: a line that cannot be finished counts as a
 * failed write. */
static int writer_write_run(lua_State *L) {
  json_lines *w = check_writer(L);
  lf_check_flow(L, 2);
  lf_check_state(L, 3);
  lua_settop(L, 4); /* 4: the run's table (run_id, times), or nil */
  if (!w->f) return luaL_error(L, "the --json writer is closed");
  if (w->busy)
    return luaL_error(L, "a --json line is being written (a flow run inside __tojson?)");
  if (w->failed_errno) return push_failure(L, w->failed_errno);
  w->busy = 1;
  w->red = lf_redactor_acquire();
  lua_pushvalue(L, 4); /* a copy stays here while the line is written */
  lua_insert(L, 1);
  lua_pushcfunction(L, write_line);
  lua_insert(L, 2);
  int status = lf_pcall(L, 4, 0);
  lf_redactor_release(w->red);
  w->red = NULL;
  w->busy = 0;
  if (status != LUA_OK && !w->failed_errno) {
    w->b.len = 0; /* the line is cut: nothing more may follow it */
    w->failed_errno = ENOMEM;
  }
  if (flush_buffer(w, 1) != 0) return push_failure(L, w->failed_errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* w:close() -> true | nil, reason (the first error of any write, else of
 * the close itself). Standard output is flushed, not closed. */
static int writer_close(lua_State *L) {
  json_lines *w = check_writer(L);
  if (w->f) {
    flush_buffer(w, 1);
    if (!w->is_stdout) {
      errno = 0;
      if (fclose(w->f) != 0 && !w->failed_errno) w->failed_errno = errno ? errno : EIO;
    }
    w->f = NULL;
  }
  lf_buf_free(&w->b);
  lf_buf_free(&w->start.bytes);
  if (w->failed_errno) return push_failure(L, w->failed_errno);
  lua_pushboolean(L, 1);
  return 1;
}

static int writer_gc(lua_State *L) {
  json_lines *w = check_writer(L);
  if (w->f && !w->is_stdout) fclose(w->f);
  w->f = NULL;
  lf_buf_free(&w->b);
  lf_buf_free(&w->start.bytes);
  return 0;
}

/* core.json_lines(path) -> writer | nil, reason; "-" is standard output. */
static int core_json_lines(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  json_lines *w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  luaL_setmetatable(L, JSON_LINES_MT);
  if (strcmp(path, "-") == 0) {
    w->f = stdout;
    w->is_stdout = 1;
  } else {
    errno = 0;
    w->f = fopen(path, "w");
    if (!w->f) return push_failure(L, errno ? errno : EIO);
  }
  return 1;
}

void lf_open_json_lines(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"write_run", writer_write_run}, {"close", writer_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, JSON_LINES_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, writer_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, core_json_lines);
  lua_setfield(L, -2, "json_lines");
}
