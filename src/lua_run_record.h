/* A flow run's journal from Lua (lua_run_record.c): core.flow_run's fourth
 * argument is the run's table (graph.lua's M.runs entry), whose fields say
 * what to keep:
 *
 *   run_id      the flow run id (notifiers send it too)
 *   store       a luaflow.Store to record into (nil: not recorded)
 *   script, parameters_json, executor, restart_of: recorded as given
 *   progress    true: the run's counts drive the progress line
 *   keep_times  true: keep the times --json writes
 *   exit_codes  true: record the exit code `luaflow run` gives this run
 *   restore     {[task index] = State}: tasks a restart keeps as they were
 *
 * After the run it gains `times` (a userdata the --json writer reads) when
 * anything was kept. */
#ifndef LF_LUA_RUN_RECORD_H
#define LF_LUA_RUN_RECORD_H

#include "buf.h"
#include "lua_host.h"
#include "run_journal.h"

typedef struct {
  lf_run_journal j;
  int active;       /* the run has a journal */
  int exit_codes;   /* record luaflow run's exit code */
  int restores;     /* the run table has tasks to restore */
  lf_store_run run; /* what begins the recording (strings in the run table) */
  lf_lua_host *host;
  lf_buf result; /* the last result's JSON */
} lf_lua_record;

/* Reads the run table at idx (any value: not a table means nothing to keep)
 * before the run is set up; keeps the restored states' boxes in the run's
 * boxes (h). May raise. */
void lf_lua_record_read(lua_State *L, int idx, lf_lua_record *rec, lf_lua_host *h);
/* Once the run is set up: restores tasks, starts the journal (r->journal).
 * 0, or -1 when out of memory (nothing held). */
int lf_lua_record_begin(lua_State *L, int idx, lf_lua_record *rec, lf_run *r);
/* After the run (rc: how its protected calls ended, the error on top when
 * not LUA_OK), before the run is released: ends the recording, sets the run
 * table's `times`. boxes: the stack index of the run's boxes table. Does not
 * raise. */
void lf_lua_record_end(lua_State *L, int idx, lf_lua_record *rec, lf_run *r, int rc,
                       int boxes);

/* The times userdata at idx (the run table's `times`): started, ended, then
 * two per task (first Running, done; 0: none); NULL when idx is not one. */
const double *lf_run_times(lua_State *L, int idx, int *ntasks);

#endif
