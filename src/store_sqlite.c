/* The run store on SQLite: schema, migrations, and the statements behind
 * store_backend.h. WAL mode so readers never wait for the writer and several
 * processes can record at once; synchronous=NORMAL, so a commit survives the
 * process being killed (it is in the WAL) though not a power cut. */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_backend.h"

#define APPLICATION_ID 0x4C464C57 /* "LFLW": this database is a luaflow run store */

/* The schema, one script per version: migrations[v] takes version v to v+1.
 * Append only; a released script never changes. The tables are what a second
 * backend (PostgreSQL) creates too; the views are SQLite's own spelling. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE runs ("
    "  run INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE," /* the flow run id */
    "  flow TEXT NOT NULL,"
    "  script TEXT,"
    "  parameters TEXT," /* JSON object, redacted */
    "  executor TEXT,"
    "  restart_of TEXT,"       /* id of the run this one restarts */
    "  started REAL NOT NULL," /* epoch seconds */
    "  ended REAL,"            /* NULL while unfinished */
    "  state TEXT,"            /* final class; NULL while unfinished */
    "  message TEXT,"
    "  exit_code INTEGER,"
    "  ntasks INTEGER NOT NULL DEFAULT 0,"
    "  task_counts TEXT NOT NULL DEFAULT '{}'," /* finished tasks by class */
    "  pid INTEGER,"                            /* the recording process ... */
    "  host TEXT,"
    "  host_key TEXT,"      /* boot id and pid namespace */
    "  proc_start INTEGER," /* its start time, clock ticks since boot */
    "  heartbeat REAL"      /* its last sign of life */
    ");"
    "CREATE INDEX runs_started ON runs(started);"
    "CREATE INDEX runs_flow ON runs(flow, started);"
    /* Tasks, transitions and log lines: one JSON array per run, kind and
     * commit (store_codec.h has the record layouts), compressed with zlib
     * when it is large. */
    "CREATE TABLE records ("
    "  chunk INTEGER PRIMARY KEY,"
    "  run INTEGER NOT NULL REFERENCES runs(run) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('task', 'transition', 'log')),"
    "  n INTEGER NOT NULL," /* records in the chunk */
    "  size INTEGER,"       /* NULL: body is JSON text; else the */
    "  body BLOB NOT NULL"  /* JSON's size, body being it deflated */
    ");"
    "CREATE INDEX records_run ON records(run, kind);"
    "CREATE TABLE cache ("
    "  entry INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  map_index INTEGER,"
    "  created REAL NOT NULL,"
    "  expires REAL,"
    "  run_id TEXT," /* the run that made it */
    "  state TEXT NOT NULL,"
    "  message TEXT,"
    "  result TEXT,"    /* JSON */
    "  inputs TEXT,"    /* canonical encoding */
    "  parameters TEXT" /* canonical encoding */
    ");"
    "CREATE INDEX cache_key ON cache(key, map_index, expires);"
    "CREATE TABLE deliveries ("
    "  delivery INTEGER PRIMARY KEY,"
    "  run INTEGER REFERENCES runs(run) ON DELETE CASCADE,"
    "  transition_id TEXT NOT NULL,"
    "  notifier TEXT NOT NULL,"
    "  destination TEXT," /* scheme://host:port */
    "  time REAL NOT NULL,"
    "  duration REAL,"
    "  ok INTEGER NOT NULL,"
    "  status TEXT" /* HTTP status, SMTP reply or error */
    ");"
    "CREATE INDEX deliveries_run ON deliveries(run);"
    "CREATE TABLE outbox (" /* asynchronous deliveries not yet made */
    "  item INTEGER PRIMARY KEY,"
    "  run_id TEXT,"
    "  transition_id TEXT NOT NULL,"
    "  notifier TEXT NOT NULL,"
    "  destination TEXT,"
    "  payload TEXT NOT NULL," /* the request, never its credentials */
    "  created REAL NOT NULL,"
    "  deliver_by REAL NOT NULL,"
    "  next_attempt REAL NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  claimed_by TEXT,"   /* the sender holding it ... */
    "  claimed_until REAL" /* ... until its lease ends */
    ");"
    "CREATE INDEX outbox_due ON outbox(next_attempt);",
    /* 1 -> 2: records written from now on are binary (store_chunk.h); the
     * JSON chunks already there stay as they are and are read as before. */
    "ALTER TABLE records ADD COLUMN format INTEGER NOT NULL DEFAULT 1;"};
_Static_assert(sizeof migrations / sizeof migrations[0] == LF_STORE_SCHEMA_VERSION,
               "one migration per schema version");

static const char *const chunk_kind[LF_NCHUNKS] = {"task", "transition", "log"};

struct lf_store_conn {
  sqlite3 *db;
  char *path;
  int readonly;
  int version;
  sqlite3_stmt *insert_run, *update_run, *insert_chunk, *delete_run;
  sqlite3_stmt *insert_delivery, *outbox[3]; /* by LF_OUTBOX_* */
};

/* ---- errors ---- */

/* Turns an SQLite failure into one line about the store. */
static int sq_fail(const char *path, sqlite3 *db, int rc, lf_store_error *err) {
  int sys = db ? sqlite3_system_errno(db) : 0;
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
    return lf_store_fail(err, LF_STORE_ENOTDB,
                         "%s is not a luaflow run store (file is not a database)", path);
  case SQLITE_CORRUPT:
    return lf_store_fail(err, LF_STORE_ECORRUPT, "run store %s is corrupt (%s)", path,
                         msg);
  case SQLITE_READONLY:
  case SQLITE_PERM:
    return lf_store_fail(err, LF_STORE_EREADONLY, "run store %s is read-only", path);
  case SQLITE_FULL:
    return lf_store_fail(err, LF_STORE_EFULL, "run store %s: the disk is full", path);
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return lf_store_fail(err, LF_STORE_EBUSY,
                         "run store %s is locked by another process for too long", path);
  case SQLITE_CANTOPEN:
    return lf_store_fail(err, LF_STORE_EIO, "cannot open run store %s (%s)", path,
                         sys ? strerror(sys) : msg);
  case SQLITE_IOERR:
    if (sys == ENOSPC || sys == EDQUOT || sys == EFBIG)
      return lf_store_fail(err, LF_STORE_EFULL, "run store %s: the disk is full (%s)",
                           path, strerror(sys));
    return lf_store_fail(err, LF_STORE_EIO, "run store %s: I/O error (%s)", path,
                         sys ? strerror(sys) : msg);
  case SQLITE_NOMEM:
    return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", path);
  default:
    return lf_store_fail(err, LF_STORE_EIO, "run store %s: %s", path, msg);
  }
}

static int conn_fail(lf_store_conn *c, int rc, lf_store_error *err) {
  return sq_fail(c->path, c->db, rc, err);
}

/* ---- small helpers ---- */

static int exec(lf_store_conn *c, const char *sql, lf_store_error *err) {
  int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : conn_fail(c, rc, err);
}

static int query_int(lf_store_conn *c, const char *sql, long long *out,
                     lf_store_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return conn_fail(c, rc, err);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return conn_fail(c, rc, err);
  return 0;
}

/* A statement kept for the connection's life. */
static int prepared(lf_store_conn *c, sqlite3_stmt **st, const char *sql,
                    lf_store_error *err) {
  if (*st) {
    sqlite3_reset(*st);
    sqlite3_clear_bindings(*st);
    return 0;
  }
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  return rc == SQLITE_OK ? 0 : conn_fail(c, rc, err);
}

/* Runs a prepared statement that returns no rows, then resets it. */
static int step_done(lf_store_conn *c, sqlite3_stmt *st, lf_store_error *err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : conn_fail(c, rc, err);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static const char *column_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

/* ---- opening and migrating ---- */

static void sq_close(lf_store_conn *c) {
  if (!c) return;
  sqlite3_finalize(c->insert_run);
  sqlite3_finalize(c->update_run);
  sqlite3_finalize(c->insert_chunk);
  sqlite3_finalize(c->delete_run);
  sqlite3_finalize(c->insert_delivery);
  for (int i = 0; i < 3; i++)
    sqlite3_finalize(c->outbox[i]);
  sqlite3_close_v2(c->db);
  free(c->path);
  free(c);
}

/* file:PATH?immutable=1, for reading a store in a directory we cannot write
 * (SQLite could not make the WAL index there). */
static char *immutable_uri(const char *path) {
  size_t n = strlen(path);
  char *uri = malloc(n * 3 + 32), *o = uri;
  if (!uri) return NULL;
  o += sprintf(o, "file:");
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || strchr("/-_.~", *p))
      *o++ = (char)*p;
    else
      o += sprintf(o, "%%%02X", *p);
  }
  strcpy(o, "?immutable=1");
  return uri;
}

static int migrate(lf_store_conn *c, lf_store_error *err) {
  long long version = 0;
  if (c->version == 0) exec(c, "PRAGMA auto_vacuum = INCREMENTAL", NULL);
  if (exec(c, "PRAGMA journal_mode = WAL", err) || exec(c, "BEGIN IMMEDIATE", err))
    return -1;
  /* Another process may have migrated while we waited for the lock. */
  if (query_int(c, "PRAGMA user_version", &version, err)) goto fail;
  if (version > LF_STORE_SCHEMA_VERSION) {
    lf_store_fail(err, LF_STORE_ENEWER,
                  "run store %s has schema version %lld, newer than this luaflow "
                  "knows (%d): use a newer luaflow",
                  c->path, version, LF_STORE_SCHEMA_VERSION);
    goto fail;
  }
  for (long long v = version; v < LF_STORE_SCHEMA_VERSION; v++)
    if (exec(c, migrations[v], err)) goto fail;
  char sql[96];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
           LF_STORE_SCHEMA_VERSION, APPLICATION_ID);
  if (exec(c, sql, err) || exec(c, "COMMIT", err)) goto fail;
  c->version = LF_STORE_SCHEMA_VERSION;
  return 0;
fail:
  sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return -1;
}

/* Reads the header: is this a run store, of a version we know? */
static int check_schema(lf_store_conn *c, lf_store_error *err) {
  long long version = 0, app = 0, tables = 0;
  /* One read transaction: a process creating the store at the same time
   * commits its tables, version and id together, and we see all or none. */
  if (exec(c, "BEGIN", err)) return -1;
  int rc = query_int(c, "PRAGMA user_version", &version, err) ||
           query_int(c, "PRAGMA application_id", &app, err) ||
           query_int(c, "SELECT count(*) FROM sqlite_master", &tables, err);
  sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
  if (rc) return -1;
  if ((app != 0 && app != APPLICATION_ID) || (app == 0 && (version != 0 || tables != 0)))
    return lf_store_fail(err, LF_STORE_ENOTDB,
                         "%s is not a luaflow run store (it holds another database)",
                         c->path);
  if (version > LF_STORE_SCHEMA_VERSION)
    return lf_store_fail(err, LF_STORE_ENEWER,
                         "run store %s has schema version %lld, newer than this luaflow "
                         "knows (%d): use a newer luaflow",
                         c->path, version, LF_STORE_SCHEMA_VERSION);
  c->version = (int)version;
  if (version == LF_STORE_SCHEMA_VERSION) return 0;
  if (c->readonly)
    return lf_store_fail(err, LF_STORE_EREADONLY,
                         "run store %s is read-only and has schema version %lld, "
                         "older than this luaflow's (%d)",
                         c->path, version, LF_STORE_SCHEMA_VERSION);
  return migrate(c, err);
}

static lf_store_conn *sq_open(const char *path, int create, int write,
                              double busy_timeout, lf_store_error *err) {
  lf_store_conn *c = calloc(1, sizeof *c);
  if (!c || !(c->path = strdup(path))) {
    free(c);
    lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", path);
    return NULL;
  }
  int flags = SQLITE_OPEN_NOMUTEX |
              (write ? SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)
                     : SQLITE_OPEN_READONLY);
  int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, (int)(busy_timeout * 1000));
    c->readonly = sqlite3_db_readonly(c->db, "main") == 1;
    rc = check_schema(c, err) ? -1 : SQLITE_OK;
    if (rc != SQLITE_OK && !write &&
        (err->code == LF_STORE_EIO || err->code == LF_STORE_EREADONLY)) {
      /* A read-only directory: read the file as it is, without a WAL index. */
      char *uri = immutable_uri(path);
      sqlite3_close_v2(c->db);
      c->db = NULL;
      rc =
          uri ? sqlite3_open_v2(uri, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL)
              : SQLITE_NOMEM;
      free(uri);
      if (rc == SQLITE_OK) {
        c->readonly = 1;
        rc = check_schema(c, err) ? -1 : SQLITE_OK;
      } else
        sq_fail(path, c->db, rc, err);
    }
  } else
    sq_fail(path, c->db, rc, err);
  if (rc == SQLITE_OK && !c->readonly &&
      exec(c,
           "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
           "PRAGMA journal_size_limit = 8388608",
           err))
    rc = -1;
  if (rc != SQLITE_OK) {
    sq_close(c);
    return NULL;
  }
  return c;
}

static int sq_readonly(lf_store_conn *c) {
  return c->readonly;
}

static int sq_schema_version(lf_store_conn *c) {
  return c->version;
}

/* ---- writing ---- */

static int sq_begin(lf_store_conn *c, lf_store_error *err) {
  return exec(c, "BEGIN IMMEDIATE", err);
}

static int sq_commit(lf_store_conn *c, lf_store_error *err) {
  return exec(c, "COMMIT", err);
}

static void sq_rollback(lf_store_conn *c) {
  if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static int sq_insert_run(lf_store_conn *c, const lf_store_run *run,
                         const lf_store_self *self, long long *key, lf_store_error *err) {
  /* OR IGNORE: an id already recorded is reported, not a failed batch. */
  if (prepared(c, &c->insert_run,
               "INSERT OR IGNORE INTO runs(id, flow, script, parameters, executor, "
               "restart_of, started, ntasks, pid, host, host_key, proc_start, heartbeat) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?7)",
               err))
    return -1;
  sqlite3_stmt *st = c->insert_run;
  bind_text(st, 1, run->id);
  bind_text(st, 2, run->flow);
  bind_text(st, 3, run->script);
  bind_text(st, 4, run->parameters);
  bind_text(st, 5, run->executor);
  bind_text(st, 6, run->restart_of);
  sqlite3_bind_double(st, 7, run->started);
  sqlite3_bind_int(st, 8, run->ntasks);
  sqlite3_bind_int64(st, 9, self->pid);
  bind_text(st, 10, self->host);
  bind_text(st, 11, self->host_key);
  sqlite3_bind_int64(st, 12, self->proc_start);
  if (step_done(c, st, err)) return -1;
  if (sqlite3_changes(c->db) == 0)
    return lf_store_fail(err, LF_STORE_EINVAL, "run store %s: run %s is already recorded",
                         c->path, run->id);
  *key = sqlite3_last_insert_rowid(c->db);
  return 0;
}

static int sq_update_run(lf_store_conn *c, long long key, const lf_store_run_update *u,
                         lf_store_error *err) {
  if (prepared(c, &c->update_run,
               "UPDATE runs SET task_counts = coalesce(?2, task_counts),"
               " heartbeat = coalesce(?3, heartbeat),"
               " ended = CASE WHEN ?4 THEN ?5 ELSE ended END,"
               " state = CASE WHEN ?4 THEN ?6 ELSE state END,"
               " message = CASE WHEN ?4 THEN ?7 ELSE message END,"
               " exit_code = CASE WHEN ?4 THEN ?8 ELSE exit_code END"
               " WHERE run = ?1",
               err))
    return -1;
  sqlite3_stmt *st = c->update_run;
  sqlite3_bind_int64(st, 1, key);
  if (u->counts) sqlite3_bind_text(st, 2, u->counts, (int)u->counts_len, SQLITE_STATIC);
  if (u->heartbeat) sqlite3_bind_double(st, 3, u->heartbeat);
  sqlite3_bind_int(st, 4, u->end);
  if (u->end) {
    sqlite3_bind_double(st, 5, u->ended);
    bind_text(st, 6, u->state);
    bind_text(st, 7, u->message);
    if (u->exit_code >= 0) sqlite3_bind_int(st, 8, u->exit_code);
  }
  return step_done(c, st, err);
}

static int sq_insert_chunk(lf_store_conn *c, long long key, int kind, size_t n,
                           const void *body, size_t len, size_t raw,
                           lf_store_error *err) {
  if (prepared(c, &c->insert_chunk,
               "INSERT INTO records(run, kind, n, size, body, format)"
               " VALUES (?1, ?2, ?3, ?4, ?5, 2)",
               err))
    return -1;
  sqlite3_stmt *st = c->insert_chunk;
  sqlite3_bind_int64(st, 1, key);
  sqlite3_bind_text(st, 2, chunk_kind[kind], -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (long long)n);
  if (raw) sqlite3_bind_int64(st, 4, (long long)raw);
  sqlite3_bind_blob64(st, 5, body, len, SQLITE_STATIC);
  return step_done(c, st, err);
}

/* ---- deliveries and the outbox ---- */

static int sq_insert_delivery(lf_store_conn *c, const lf_store_delivery *d,
                              lf_store_error *err) {
  if (prepared(c, &c->insert_delivery,
               "INSERT INTO deliveries(run, transition_id, notifier, destination, time,"
               " duration, ok, status) VALUES ((SELECT run FROM runs WHERE id = ?1),"
               " ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
               err))
    return -1;
  sqlite3_stmt *st = c->insert_delivery;
  bind_text(st, 1, d->run_id);
  bind_text(st, 2, d->transition_id ? d->transition_id : "");
  bind_text(st, 3, d->notifier ? d->notifier : "");
  bind_text(st, 4, d->destination);
  sqlite3_bind_double(st, 5, d->time);
  sqlite3_bind_double(st, 6, d->duration);
  sqlite3_bind_int(st, 7, d->ok != 0);
  bind_text(st, 8, d->status);
  return step_done(c, st, err);
}

/* An item is known by (transition_id, notifier, created): ?1, ?2, ?3. */
static const char *const outbox_sql[3] = {
    "INSERT INTO outbox(transition_id, notifier, created, run_id, destination, payload,"
    " deliver_by, next_attempt, attempts, last_error, claimed_by, claimed_until)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?7)",
    "UPDATE outbox SET next_attempt = ?8, attempts = ?9, last_error = ?10"
    " WHERE transition_id = ?1 AND notifier = ?2 AND created = ?3",
    "DELETE FROM outbox WHERE transition_id = ?1 AND notifier = ?2 AND created = ?3"};

static int sq_change_outbox(lf_store_conn *c, int op, const lf_store_outbox_item *it,
                            const char *owner, lf_store_error *err) {
  if (op < 0 || op > 2) return lf_store_fail(err, LF_STORE_EINVAL, "bad outbox change");
  if (prepared(c, &c->outbox[op], outbox_sql[op], err)) return -1;
  sqlite3_stmt *st = c->outbox[op];
  bind_text(st, 1, it->transition_id ? it->transition_id : "");
  bind_text(st, 2, it->notifier ? it->notifier : "");
  sqlite3_bind_double(st, 3, it->created);
  if (op == LF_OUTBOX_ADD) {
    bind_text(st, 4, it->run_id);
    bind_text(st, 5, it->destination);
    bind_text(st, 6, it->payload ? it->payload : "{}");
    sqlite3_bind_double(st, 7, it->deliver_by);
    bind_text(st, 11, owner);
  }
  if (op != LF_OUTBOX_REMOVE) {
    sqlite3_bind_double(st, 8, it->next_attempt);
    sqlite3_bind_int(st, 9, it->attempts);
    bind_text(st, 10, it->last_error);
  }
  return step_done(c, st, err);
}

/* Steps st to its end, calling row(st) for each row; finalizes it. */
static int each_row(lf_store_conn *c, sqlite3_stmt *st,
                    int (*row)(sqlite3_stmt *, void *), void *ud, lf_store_error *err) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    if (row(st, ud)) {
      sqlite3_finalize(st);
      return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", c->path);
    }
  if (rc != SQLITE_DONE) conn_fail(c, rc, err);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

typedef struct {
  lf_store_delivery_cb cb;
  lf_store_outbox_cb ocb;
  void *ud;
} row_cb;

static int delivery_row(sqlite3_stmt *st, void *ud) {
  row_cb *r = ud;
  lf_store_delivery d = {.run_id = column_text(st, 0),
                         .transition_id = column_text(st, 1),
                         .notifier = column_text(st, 2),
                         .destination = column_text(st, 3),
                         .time = sqlite3_column_double(st, 4),
                         .duration = sqlite3_column_double(st, 5),
                         .ok = sqlite3_column_int(st, 6),
                         .status = column_text(st, 7)};
  return r->cb(&d, r->ud);
}

static int sq_select_deliveries(lf_store_conn *c, const char *run_id,
                                lf_store_delivery_cb cb, void *ud, lf_store_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(
      c->db,
      "SELECT ?1, transition_id, notifier, destination, time, duration, ok, status"
      " FROM deliveries WHERE run = (SELECT run FROM runs WHERE id = ?1) ORDER BY "
      "delivery",
      -1, &st, NULL);
  if (rc != SQLITE_OK) return conn_fail(c, rc, err);
  bind_text(st, 1, run_id);
  row_cb r = {.cb = cb, .ud = ud};
  return each_row(c, st, delivery_row, &r, err);
}

static int outbox_row(sqlite3_stmt *st, void *ud) {
  row_cb *r = ud;
  lf_store_outbox_item it = {.run_id = column_text(st, 0),
                             .transition_id = column_text(st, 1),
                             .notifier = column_text(st, 2),
                             .destination = column_text(st, 3),
                             .payload = column_text(st, 4),
                             .created = sqlite3_column_double(st, 5),
                             .deliver_by = sqlite3_column_double(st, 6),
                             .next_attempt = sqlite3_column_double(st, 7),
                             .attempts = sqlite3_column_int(st, 8),
                             .last_error = column_text(st, 9),
                             .claimed_by = column_text(st, 10),
                             .claimed_until = sqlite3_column_double(st, 11)};
  return r->ocb(&it, r->ud);
}

static int sq_select_outbox(lf_store_conn *c, lf_store_outbox_cb cb, void *ud,
                            lf_store_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(
      c->db,
      "SELECT run_id, transition_id, notifier, destination, payload, created, deliver_by,"
      " next_attempt, attempts, last_error, claimed_by, claimed_until FROM outbox"
      " ORDER BY created, item",
      -1, &st, NULL);
  if (rc != SQLITE_OK) return conn_fail(c, rc, err);
  row_cb r = {.ocb = cb, .ud = ud};
  return each_row(c, st, outbox_row, &r, err);
}

/* ---- reading ---- */

#define RUN_COLUMNS                                                                      \
  "SELECT run, id, flow, script, parameters, executor, restart_of, started, ntasks,"     \
  " ended, state, message, exit_code, pid, host, host_key, proc_start, heartbeat,"       \
  " task_counts FROM runs"

static int each_run(lf_store_conn *c, sqlite3_stmt *st, lf_store_run_cb cb, void *ud,
                    lf_store_error *err) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    lf_store_raw_run r;
    memset(&r, 0, sizeof r);
    r.key = sqlite3_column_int64(st, 0);
    r.run.id = column_text(st, 1);
    r.run.flow = column_text(st, 2);
    r.run.script = column_text(st, 3);
    r.run.parameters = column_text(st, 4);
    r.run.executor = column_text(st, 5);
    r.run.restart_of = column_text(st, 6);
    r.run.started = sqlite3_column_double(st, 7);
    r.run.ntasks = sqlite3_column_int(st, 8);
    r.run.ended = sqlite3_column_double(st, 9);
    r.run.state = column_text(st, 10);
    r.run.message = column_text(st, 11);
    r.run.exit_code =
        sqlite3_column_type(st, 12) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 12);
    r.run.pid = (long)sqlite3_column_int64(st, 13);
    r.run.host = column_text(st, 14);
    r.host_key = column_text(st, 15);
    r.proc_start = sqlite3_column_int64(st, 16);
    r.run.heartbeat = sqlite3_column_double(st, 17);
    r.counts = column_text(st, 18);
    r.counts_len = (size_t)sqlite3_column_bytes(st, 18);
    if (!r.run.id || !r.run.flow) continue; /* cannot happen: NOT NULL columns */
    if (cb(&r, ud)) {
      sqlite3_finalize(st);
      return lf_store_fail(err, LF_STORE_EIO, "run store %s: out of memory", c->path);
    }
  }
  if (rc != SQLITE_DONE) conn_fail(c, rc, err);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_select_runs(lf_store_conn *c, const lf_store_select *sel,
                          lf_store_run_cb cb, void *ud, lf_store_error *err) {
  char sql[1024];
  size_t n = (size_t)snprintf(sql, sizeof sql, "%s WHERE 1", RUN_COLUMNS);
  if (sel->flow) n += (size_t)snprintf(sql + n, sizeof sql - n, " AND flow = ?");
  if (sel->states) {
    n += (size_t)snprintf(sql + n, sizeof sql - n, " AND state IN (");
    for (int i = 0; i < sel->nstates; i++)
      n += (size_t)snprintf(sql + n, sizeof sql - n, i ? ", ?" : "?");
    n += (size_t)snprintf(sql + n, sizeof sql - n, ")");
  }
  if (sel->unfinished)
    n += (size_t)snprintf(sql + n, sizeof sql - n, " AND ended IS NULL");
  if (sel->started_before)
    n += (size_t)snprintf(sql + n, sizeof sql - n, " AND started < ?");
  n += (size_t)snprintf(sql + n, sizeof sql - n, " ORDER BY started DESC, run DESC");
  if (sel->limit > 0) snprintf(sql + n, sizeof sql - n, " LIMIT %d", sel->limit);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return conn_fail(c, rc, err);
  int i = 1;
  if (sel->flow) bind_text(st, i++, sel->flow);
  for (int k = 0; sel->states && k < sel->nstates; k++)
    bind_text(st, i++, sel->states[k]);
  if (sel->started_before) sqlite3_bind_double(st, i++, sel->started_before);
  return each_run(c, st, cb, ud, err);
}

static int sq_find_runs(lf_store_conn *c, const char *id, int prefix, int limit,
                        lf_store_run_cb cb, void *ud, lf_store_error *err) {
  char sql[512];
  snprintf(sql, sizeof sql, "%s WHERE %s ORDER BY started DESC, run DESC LIMIT %d",
           RUN_COLUMNS, prefix ? "substr(id, 1, length(?1)) = ?1" : "id = ?1",
           limit > 0 ? limit : 1);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return conn_fail(c, rc, err);
  bind_text(st, 1, id);
  return each_run(c, st, cb, ud, err);
}

static int sq_each_chunk(lf_store_conn *c, long long key, int kind, lf_store_chunk_cb cb,
                         void *ud, lf_store_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT size, body, format FROM records WHERE run = ?1 AND "
                              "kind = ?2 ORDER BY chunk",
                              -1, &st, NULL);
  if (rc != SQLITE_OK) return conn_fail(c, rc, err);
  sqlite3_bind_int64(st, 1, key);
  sqlite3_bind_text(st, 2, chunk_kind[kind], -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    long long raw = sqlite3_column_int64(st, 0);
    int format = sqlite3_column_int(st, 2);
    const void *body = raw > 0 || format != LF_FORMAT_JSON ? sqlite3_column_blob(st, 1)
                                                           : sqlite3_column_text(st, 1);
    size_t len = (size_t)sqlite3_column_bytes(st, 1);
    if (!body) { /* an empty body: no records */
      body = format == LF_FORMAT_JSON ? "[]" : "";
      len = strlen(body);
    }
    if (cb(body, len, raw > 0 ? (size_t)raw : 0, format, ud)) {
      sqlite3_finalize(st);
      return lf_store_fail(err, LF_STORE_ECORRUPT,
                           "run store %s is corrupt (a %s record cannot be read)",
                           c->path, chunk_kind[kind]);
    }
  }
  if (rc != SQLITE_DONE) conn_fail(c, rc, err);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_delete_runs(lf_store_conn *c, const long long *keys, size_t n,
                          lf_store_error *err) {
  if (c->readonly)
    return lf_store_fail(err, LF_STORE_EREADONLY, "run store %s is read-only", c->path);
  if (sq_begin(c, err)) return -1;
  for (size_t i = 0; i < n; i++) {
    if (prepared(c, &c->delete_run, "DELETE FROM runs WHERE run = ?1", err)) goto fail;
    sqlite3_bind_int64(c->delete_run, 1, keys[i]);
    if (step_done(c, c->delete_run, err)) goto fail;
  }
  if (sq_commit(c, err)) goto fail;
  /* Give the freed pages back to the file system (the checkpoint is what
   * shortens the file; it does less when other processes are reading). */
  sqlite3_exec(c->db, "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE)", NULL,
               NULL, NULL);
  return 0;
fail:
  sq_rollback(c);
  return -1;
}

const lf_store_backend lf_store_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .readonly = sq_readonly,
    .schema_version = sq_schema_version,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .insert_run = sq_insert_run,
    .update_run = sq_update_run,
    .insert_chunk = sq_insert_chunk,
    .insert_delivery = sq_insert_delivery,
    .change_outbox = sq_change_outbox,
    .select_runs = sq_select_runs,
    .find_runs = sq_find_runs,
    .each_chunk = sq_each_chunk,
    .select_deliveries = sq_select_deliveries,
    .select_outbox = sq_select_outbox,
    .delete_runs = sq_delete_runs,
};
