/* A worker's Lua state (lua_worker.h): luaflow loaded as the engine's state
 * has it, a `print` that writes whole lines, and the facts of the job being
 * run for luaflow.context. A body runs under a watch (its timeout, the
 * cancellation) and inside the protected call whose message handler notes
 * its traceback, as under the Local executor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "clock.h"
#include "log.h"
#include "lua_codec.h"
#include "lua_worker.h"
#include "redact.h"

LUAFLOW_API int luaopen_luaflow(lua_State *L);

struct lf_worker {
  lua_State *L;
  uint64_t gen;     /* the run whose context the state has (0: none yet) */
  int busy;         /* a body runs */
  lf_job_head job;  /* the job running (or the last one) */
  char name[256];   /* its task's name (a mapped child's: its parent's) */
  char full[256];   /* its full name ("double[2]" for a child) */
  int loop_result;  /* registry ref of luaflow.context.task_loop_result */
  int print_stderr; /* print writes to stderr (luaflow run --json -) */
  lf_lua_watch watch;
};

static const char worker_key = 0; /* registry: the lf_worker of this state */

static lf_worker *worker_of(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &worker_key);
  lf_worker *w = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return w;
}

/* print: the whole line in one write (lines of workers never mix). */
static int whole_line_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *line = lua_tolstring(L, -1, &len);
  lf_worker *w = lua_touserdata(L, lua_upvalueindex(1));
  FILE *to = w->print_stderr ? stderr : stdout;
  if (w->print_stderr) lf_log_flush(); /* after the log lines before it */
  flockfile(to);
  fwrite(line, 1, len, to);
  fflush(to);
  funlockfile(to);
  return 0;
}

static int open_worker(lua_State *L) {
  lf_worker *w = lua_touserdata(L, 1);
  const char *path = lua_tostring(L, 2), *cpath = lua_tostring(L, 3);
  luaL_openlibs(L);
  luaL_requiref(L, "luaflow", luaopen_luaflow, 0);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  if (path) {
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
  }
  if (cpath) {
    lua_pushstring(L, cpath);
    lua_setfield(L, -2, "cpath");
  }
  lua_pop(L, 1);
  lua_pushlightuserdata(L, w);
  lua_pushcclosure(L, whole_line_print, 1);
  lua_setglobal(L, "print");
  lua_pushlightuserdata(L, w);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &worker_key);
  return 0;
}

lf_worker *lf_worker_new(const char *path, const char *cpath, char *err, size_t errlen) {
  lf_worker *w = calloc(1, sizeof *w);
  lua_State *L = w ? luaL_newstate() : NULL;
  if (!L) {
    free(w);
    snprintf(err, errlen, "not enough memory for a worker's Lua state");
    return NULL;
  }
  w->L = L;
  w->loop_result = LUA_NOREF;
  lua_pushcfunction(L, open_worker);
  lua_pushlightuserdata(L, w);
  lua_pushstring(L, path);
  lua_pushstring(L, cpath);
  if (lf_pcall(L, 3, 0) != LUA_OK) {
    snprintf(err, errlen, "cannot start a worker: %s", lf_safe_tostring(L, -1, NULL));
    lua_close(L);
    free(w);
    return NULL;
  }
  return w;
}

void lf_worker_free(lf_worker *w) {
  if (!w) return;
  lua_close(w->L);
  free(w);
}

int lf_worker_busy(lua_State *L) {
  lf_worker *w = worker_of(L);
  return w && w->busy;
}

int lf_worker_count(lua_State *L, int loop) {
  lf_worker *w = worker_of(L);
  if (!w || !w->busy) return 1;
  return loop ? w->job.loop_count : w->job.run_count;
}

int lf_worker_context(lua_State *L, const char *key) {
  lf_worker *w = worker_of(L);
  if (!w) return 0;
  if (!w->busy)
    lua_pushnil(L);
  else if (strcmp(key, "task_name") == 0)
    lua_pushstring(L, w->name);
  else if (strcmp(key, "task_full_name") == 0)
    lua_pushstring(L, w->full);
  else if (strcmp(key, "task_run_count") == 0)
    lua_pushinteger(L, w->job.run_count);
  else if (strcmp(key, "task_loop_count") == 0)
    lua_pushinteger(L, w->job.loop_count);
  else if (strcmp(key, "resume") == 0)
    lua_pushboolean(L, w->job.resume);
  else if (strcmp(key, "map_index") == 0 && w->job.map_index >= 0)
    lua_pushinteger(L, w->job.map_index);
  else if (strcmp(key, "task_will_retry") == 0)
    lua_pushboolean(L, 0); /* as in a Local body */
  else if (strcmp(key, "task_loop_result") == 0)
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->loop_result);
  else
    lua_pushnil(L);
  return 1;
}

typedef struct {
  lf_worker *w;
  uint64_t gen;
  const char *ctx, *job;
  size_t ctx_len, len;
  lf_buf *reply;
  size_t secrets_before; /* the secrets registered when the job began */
} job_call;

/* Decodes one message of the job onto the stack: its number of values. */
static int take(lua_State *L, const char **p, uint32_t len, unsigned flags,
                const char *root) {
  lf_codec_opts o = {flags | LF_CODEC_TRUSTED, 0, 0, root};
  char err[LF_CODEC_ERRMAX];
  int n = lf_decode(L, *p, len, &o, err, sizeof err);
  if (n < 0) luaL_error(L, "%s", err);
  *p += len;
  return n;
}

/* The run's context becomes the run graph.runs shows (flow name, run id,
 * parameters, secrets). */
static void enter_run(lua_State *L, const char *ctx, size_t len) {
  const char *p = ctx;
  take(L, &p, (uint32_t)len, 0, "luaflow.context");
  lua_getfield(L, -1, "print_to");
  lf_worker *w = worker_of(L);
  w->print_stderr = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "stderr") == 0;
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "luaflow.graph");
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, -4);
  lua_rawseti(L, -2, 1);
  lua_setfield(L, -2, "runs");
  lua_pop(L, 3);
}

/* Appends the secrets registered since the job began: the engine hides
 * them too (a worker process has a redactor of its own). */
static uint32_t put_secrets(const job_call *c, lf_buf *out) {
  size_t at = out->len;
  for (size_t i = c->secrets_before, n = lf_redact_count(); i < n; i++) {
    size_t len;
    const char *text = lf_redact_secret(i, &len);
    uint32_t len32 = (uint32_t)len;
    if (!text || len > UINT32_MAX) continue;
    lf_buf_put(out, &len32, sizeof len32);
    lf_buf_put(out, text, len);
  }
  return (uint32_t)(out->len - at);
}

/* Appends the reply: its head, then the value at idx (encoded; an error
 * value that cannot be copied goes as its text), then the traceback, then
 * the secrets the body registered. */
static void put_reply(lua_State *L, job_call *c, int kind, int idx, int tb) {
  lf_worker *w = c->w;
  lf_reply_head head;
  memset(&head, 0, sizeof head);
  head.task = w->job.task;
  head.kind = (uint8_t)kind;
  head.timed_out =
      (uint8_t)(w->watch.w.timed_out ||
                (w->watch.w.deadline > 0 && lf_monotonic() >= w->watch.w.deadline));
  head.cancelled = (uint8_t)w->watch.w.cancelled;
  lf_buf *out = c->reply;
  size_t at = out->len;
  lf_buf_put(out, &head, sizeof head);
  lf_codec_opts o = {0, 0, 0, kind == LF_REPLY_RAISED ? "error" : "result"};
  char err[LF_CODEC_ERRMAX];
  if (lf_encode(L, idx, 1, &o, out, err, sizeof err) != 0) {
    if (kind == LF_REPLY_RAISED) { /* the error's text will do */
      lua_pushstring(L, lf_safe_tostring(L, idx, NULL));
      lf_encode(L, -1, 1, &o, out, err, sizeof err);
      lua_pop(L, 1);
    } else {
      head.kind = LF_REPLY_UNCOPYABLE;
      lf_buf_put(out, err, strlen(err));
    }
  }
  head.value_len = (uint32_t)(out->len - at - sizeof head);
  if (tb) {
    size_t n;
    const char *text = lua_tolstring(L, tb, &n);
    lf_buf_put(out, text, n);
    head.tb_len = (uint32_t)n;
  }
  head.secrets_len = put_secrets(c, out);
  if (!out->oom) memcpy(out->data + at, &head, sizeof head);
}

static int run_job(lua_State *L) {
  job_call *c = lua_touserdata(L, 1);
  lf_worker *w = c->w;
  lua_settop(L, 0);
  const char *p = c->job + sizeof(lf_job_head) + w->job.name_len + w->job.full_len;
  if (c->gen != w->gen) {
    w->gen = 0;
    enter_run(L, c->ctx, c->ctx_len);
    w->gen = c->gen;
  }
  take(L, &p, w->job.fn_len, LF_CODEC_FUNCTIONS, "the task's function");
  int n = take(L, &p, w->job.args_len, 0, "argument %d");
  luaL_unref(L, LUA_REGISTRYINDEX, w->loop_result);
  w->loop_result = LUA_NOREF;
  if (w->job.has_loop_result) {
    w->loop_result = luaL_ref(L, LUA_REGISTRYINDEX);
    n--;
  }
  int outer = lf_body_enter(L);
  w->busy = 1;
  lf_lua_watch_begin(L, &w->watch, w->job.timeout, LF_WATCH_BODY);
  int rc = lf_pcall(L, n, 1);
  lf_lua_watch_end(L, &w->watch);
  w->busy = 0;
  lf_body_leave(outer);
  int tb = 0;
  if (rc != LUA_OK && lf_body_push_traceback(L, 1)) tb = 2;
  put_reply(L, c, rc == LUA_OK ? LF_REPLY_RETURNED : LF_REPLY_RAISED, 1, tb);
  return 0;
}

void lf_worker_run(lf_worker *w, uint64_t gen, const char *ctx, size_t ctx_len,
                   const char *job, size_t len, lf_buf *reply) {
  lua_State *L = w->L;
  job_call c = {w, gen, ctx, job, ctx_len, len, reply, lf_redact_count()};
  memset(&w->watch, 0, sizeof w->watch);
  memcpy(&w->job, job, sizeof w->job);
  size_t nlen = w->job.name_len < sizeof w->name ? w->job.name_len : sizeof w->name - 1;
  memcpy(w->name, job + sizeof w->job, nlen);
  w->name[nlen] = '\0';
  size_t flen = w->job.full_len < sizeof w->full ? w->job.full_len : sizeof w->full - 1;
  memcpy(w->full, job + sizeof w->job + w->job.name_len, flen);
  w->full[flen] = '\0';
  size_t at = reply->len;
  lua_settop(L, 0);
  lua_pushcfunction(L, run_job);
  lua_pushlightuserdata(L, &c);
  if (lf_pcall(L, 1, 0) != LUA_OK) { /* the job could not start (a module failed) */
    w->busy = 0;
    reply->len = at;
    lua_pushvalue(L, -1);
    put_reply(L, &c, LF_REPLY_RAISED, lua_gettop(L), 0);
  }
  lua_settop(L, 0);
}
