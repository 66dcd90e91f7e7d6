/* The engine's side of a worker's job (lua_worker.h): a task's body and
 * inputs made into bytes on the way out, its reply made into the task's
 * outcome state on the way back, on the engine's Lua state. */
#include <stdio.h>
#include <string.h>
#include "log.h"
#include "lua_codec.h"
#include "lua_worker.h"
#include "map.h"
#include "redact.h"

/* Appends the n values at idx encoded as one message, its length first. */
static int put_message(lua_State *L, int idx, int n, const lf_codec_opts *o, lf_buf *out,
                       uint32_t *len, char *err, size_t errlen) {
  size_t before = out->len;
  if (lf_encode(L, idx, n, o, out, err, errlen) != 0) return -1;
  *len = (uint32_t)(out->len - before);
  return 0;
}

int lf_job_build(lf_lua_host *h, lf_run *r, int i, double timeout, int names_fresh,
                 lf_buf *out, char *err, size_t errlen) {
  lua_State *L = h->L;
  int top = lua_gettop(L);
  lf_task_run *tr = &r->task[i];
  lf_job_head head;
  memset(&head, 0, sizeof head);
  head.task = i;
  head.run_count = tr->attempt;
  head.loop_count = tr->loop;
  head.map_index = i >= r->ntasks ? lf_map_index(r, i) : -1; /* a mapped child's */
  head.resume = (tr->flags & (LF_TASK_APPROVED | LF_TASK_RESUMED)) != 0;
  head.timeout = timeout;
  const char *name = lf_run_object(r, i)->name;
  const char *full = name;
  name = lf_run_task(r, i)->obj.name;
  head.name_len = (uint32_t)strlen(name);
  head.full_len = (uint32_t)strlen(full);
  size_t at = out->len;
  if (!lf_buf_put(out, &head, sizeof head) || !lf_buf_put(out, name, head.name_len) ||
      !lf_buf_put(out, full, head.full_len)) {
    snprintf(err, errlen, "not enough memory");
    return -1;
  }
  int nargs = lf_body_push_call(h, r, i);
  head.nargs = (uint32_t)nargs;
  if (tr->loop_state) { /* luaflow.context.task_loop_result crosses with the arguments */
    lf_boxes_push_result(L, &h->boxes, tr->loop_state);
    head.has_loop_result = 1;
  }
  unsigned fresh = names_fresh ? LF_CODEC_NAMES_FRESH : 0;
  lf_codec_opts fo = {LF_CODEC_FUNCTIONS | fresh, 0, 0, "the task's function"};
  lf_codec_opts ao = {fresh, 0, 0, "argument %d"};
  int rc = put_message(L, top + 1, 1, &fo, out, &head.fn_len, err, errlen);
  if (rc == 0)
    rc = put_message(L, top + 2, nargs + head.has_loop_result, &ao, out, &head.args_len,
                     err, errlen);
  lua_settop(L, top);
  if (rc != 0) {
    out->len = at;
    return -1;
  }
  memcpy(out->data + at, &head, sizeof head);
  return 0;
}

int lf_job_run_context(lf_lua_host *h, lf_run *r, lf_buf *out, char *err, size_t errlen) {
  lua_State *L = h->L;
  int top = lua_gettop(L);
  lua_createtable(L, 0, 4); /* what graph.runs keeps of the run, in the worker */
  int ctx = top + 1;
  lua_createtable(L, 0, 1);
  lua_pushstring(L, r->flow->obj.name);
  lua_setfield(L, -2, "name");
  lua_setfield(L, ctx, "flow");
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "luaflow.graph");
  if (lua_istable(L, -1) && lua_getfield(L, -1, "runs") == LUA_TTABLE) {
    lua_rawgeti(L, -1, (lua_Integer)lua_rawlen(L, -1));
    if (lua_istable(L, -1)) {
      static const char *const keys[] = {"parameters", "secrets", "run_id"};
      for (int k = 0; k < 3; k++) {
        lua_getfield(L, -1, keys[k]);
        lua_setfield(L, ctx, keys[k]);
      }
    }
  }
  lua_settop(L, ctx);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "luaflow.executors") == LUA_TTABLE) {
    lua_getfield(L, -1, "print_to");
    lua_setfield(L, ctx, "print_to");
  }
  lua_settop(L, ctx);
  lf_codec_opts o = {0, 0, 0, "luaflow.context"};
  uint32_t len;
  int rc = put_message(L, ctx, 1, &o, out, &len, err, errlen);
  lua_settop(L, top);
  return rc;
}

lf_state *lf_job_failed(lf_lua_host *h, lf_run *r, int i, lf_kind kind, int prefixed,
                        const char *text) {
  lua_State *L = h->L;
  if (prefixed)
    lua_pushfstring(L, "<Task: %s>: %s", lf_run_object(r, i)->name, text);
  else
    lua_pushstring(L, text);
  lf_state *s = lf_state_new(kind, lua_tostring(L, -1));
  if (!s) luaL_error(L, "not enough memory");
  lf_log(LF_LOG_ERROR, "luaflow.TaskRunner", "Task '%s': %s", lf_run_object(r, i)->name,
         lua_tostring(L, -1));
  lf_box_new(L, lf_state_ref(s), -1);
  lf_lua_host_keep_box(h);
  lua_pop(L, 1);
  return s;
}

/* The secrets a body registered in its worker are hidden here too, before
 * its result or error is shown anywhere. */
static void register_secrets(const char *p, uint32_t len) {
  while (len >= sizeof(uint32_t)) {
    uint32_t n;
    memcpy(&n, p, sizeof n);
    p += sizeof n;
    len -= (uint32_t)sizeof n;
    if (n > len) return;
    lf_redact_add(p, n);
    p += n;
    len -= n;
  }
}

lf_state *lf_job_outcome(lf_lua_host *h, lf_run *r, const char *reply, size_t len,
                         int *task, int *end) {
  lua_State *L = h->L;
  lf_reply_head head;
  *task = -1;
  if (len < sizeof head) return NULL;
  memcpy(&head, reply, sizeof head);
  if (head.task < 0 || head.task >= r->ntasks + lf_map_nkids(r) ||
      (uint64_t)head.value_len + head.tb_len + head.secrets_len > len - sizeof head)
    return NULL;
  *task = head.task;
  const char *value = reply + sizeof head, *tb = value + head.value_len;
  register_secrets(tb + head.tb_len, head.secrets_len);
  lf_body_end how = {head.kind == LF_REPLY_RAISED, head.cancelled, head.timed_out, NULL};
  int top = lua_gettop(L);
  lf_state *s;
  if (head.kind == LF_REPLY_UNCOPYABLE && !how.cancelled && !how.timed_out) {
    lua_pushlstring(L, value, head.value_len);
    s = lf_job_failed(h, r, head.task, LF_FAILED, 1, lua_tostring(L, -1));
    *end = 0;
    lua_settop(L, top);
    return s;
  }
  lf_codec_opts o = {LF_CODEC_TRUSTED, 0, 0, "result"};
  char err[LF_CODEC_ERRMAX];
  if (head.kind == LF_REPLY_UNCOPYABLE ||
      lf_decode(L, value, head.value_len, &o, err, sizeof err) != 1)
    lua_pushnil(L); /* (a reply our own worker wrote decodes) */
  if (head.tb_len) {
    lua_pushlstring(L, tb, head.tb_len);
    how.traceback = lua_tostring(L, -1);
  }
  s = lf_body_outcome(h, r, head.task, top + 1, &how, end);
  lua_settop(L, top);
  return s;
}
