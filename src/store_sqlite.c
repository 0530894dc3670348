/* store_sqlite.c — the embedded store: one SQLite file in WAL mode.
 *
 * Schema version lives in PRAGMA user_version; migrate() walks it forward one step at a
 * time, so an old data directory opens with a newer binary. Events are keyed by
 * (hunt, seq) WITHOUT ROWID, so appending a taken seq fails (SQLITE_CONSTRAINT ->
 * STORE_ECONFLICT) and reading a hunt back is one range scan in seq order.
 * Durability: --fsync always = synchronous=FULL (a commit is on disk when it returns),
 * batch = NORMAL (WAL synced at checkpoints), off = OFF. Statements are prepared once. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* Event payloads longer than this live in event_data, and their events row holds NULL.
 * The events table is WITHOUT ROWID, so its interior pages hold whole rows: a hunt
 * definition (~23 KB for the demo) that became a divider, or sat next to another hunt's
 * appends in a leaf, overflowed its cell, and SQLite copies an overflowing record whole
 * (reading its overflow pages) for every comparison on the way to an insert — about 5%
 * of the server's CPU in the scan benchmark (perf). Small events never overflow. */
#define EVENT_INLINE_MAX 512

/* A handle is used by one thread at a time (store.h), so its connections skip SQLite's
 * per-call mutexes (multi-thread mode: ~6% of the log writer's CPU in the scan bench). */
#define OPEN_FLAGS (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX)

enum {
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_PUT_EVENT, Q_PUT_PLAYER, Q_PUT_REFRESH, Q_DROP_REFRESH,
    Q_USE_REFRESH, Q_PRUNE_REFRESH, Q_PUT_IDEM,
    Q_PRUNE_IDEM, Q_HUNTS, Q_EVENTS, Q_PLAYERS, Q_REFRESH, Q_IDEMS, Q_GET_IDEM, Q_PING,
    Q_PUT_EVENT_DATA, Q_GET_EVENT_DATA, Q_PUT_BLOB, Q_GET_BLOB,
    Q_PUT_TILE, Q_PUT_MAPVER, Q_PRUNE_MAPVER, Q_TILES, Q_MAPVERS, Q_MAX
};

static const char *const SQL[Q_MAX] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_PUT_EVENT] = "INSERT INTO events(hunt,seq,time_ms,type,player,data,hash) "
                    "VALUES(?,?,?,?,?,?,?)",
    [Q_PUT_EVENT_DATA] = "INSERT INTO event_data(hunt,seq,data) VALUES(?,?,?)",
    [Q_GET_EVENT_DATA] = "SELECT data FROM event_data WHERE hunt=? AND seq=?",
    [Q_PUT_PLAYER] = "INSERT INTO players(id,display_name,created_ms,gen) VALUES(?,?,?,?) "
                     "ON CONFLICT(id) DO UPDATE SET display_name=excluded.display_name, "
                     "gen=excluded.gen",
    [Q_PUT_REFRESH] = "INSERT OR REPLACE INTO refresh(id,player,gen,expires_ms,used) "
                      "VALUES(?,?,?,?,0)",
    [Q_DROP_REFRESH] = "DELETE FROM refresh WHERE player=? AND id<>?",
    [Q_USE_REFRESH] = "UPDATE refresh SET used=1 WHERE id=?",
    [Q_PRUNE_REFRESH] = "DELETE FROM refresh WHERE id IN (SELECT id FROM refresh "
                        "WHERE expires_ms < ? LIMIT " STR(STORE_PRUNE_REFRESH_MAX) ")",
    [Q_PUT_IDEM] = "INSERT OR REPLACE INTO idem(scope,key,req_hash,status,body,created_ms) "
                   "VALUES(?,?,?,?,?,?)",
    [Q_PRUNE_IDEM] = "DELETE FROM idem WHERE (scope,key) IN (SELECT scope,key FROM idem "
                     "WHERE created_ms < ? LIMIT " STR(STORE_PRUNE_IDEM_MAX) ")",
    [Q_HUNTS] = "SELECT DISTINCT hunt FROM events ORDER BY hunt",
    [Q_EVENTS] = "SELECT seq,time_ms,type,player,data,hash FROM events WHERE hunt=? AND seq>=? "
                 "ORDER BY seq",
    [Q_PLAYERS] = "SELECT id,display_name,created_ms,gen FROM players",
    [Q_REFRESH] = "SELECT id,player,gen,expires_ms,used FROM refresh WHERE expires_ms>? "
                  "ORDER BY id", /* the order every backend walks in */
    [Q_IDEMS] = "SELECT scope,key,req_hash,status,body,created_ms FROM idem "
                "WHERE created_ms>=? ORDER BY created_ms",
    [Q_GET_IDEM] = "SELECT scope,key,req_hash,status,body,created_ms FROM idem "
                   "WHERE scope=? AND key=?",
    [Q_PING] = "SELECT 1",
    [Q_PUT_BLOB] = "INSERT OR IGNORE INTO blobs(hash,data) VALUES(?,?)",
    [Q_GET_BLOB] = "SELECT 0,data FROM blobs WHERE hash=?",
    [Q_PUT_TILE] = "INSERT OR REPLACE INTO draft_tiles(hunt,x,y,hash,ctype) VALUES(?,?,?,?,?)",
    [Q_PUT_MAPVER] = "INSERT OR REPLACE INTO map_versions(hunt,version,manifest) VALUES(?,?,?)",
    [Q_PRUNE_MAPVER] = "DELETE FROM map_versions WHERE hunt=? AND version<?",
    [Q_TILES] = "SELECT hunt,x,y,hash,ctype FROM draft_tiles ORDER BY hunt,x,y",
    [Q_MAPVERS] = "SELECT hunt,version,manifest FROM map_versions ORDER BY hunt,version",
};

/* Each step moves user_version from i to i+1. Append only; never edit a shipped step. */
static const char *const MIGRATIONS[] = {
    "CREATE TABLE events(hunt TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL,"
    " type INTEGER NOT NULL, player BLOB, data BLOB, PRIMARY KEY(hunt, seq)) WITHOUT ROWID;"
    "CREATE TABLE players(id BLOB PRIMARY KEY, display_name TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, gen INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE refresh(id BLOB PRIMARY KEY, player BLOB NOT NULL, gen INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL, used INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE idem(scope TEXT NOT NULL, key TEXT NOT NULL, req_hash BLOB NOT NULL,"
    " status INTEGER NOT NULL, body BLOB NOT NULL, created_ms INTEGER NOT NULL,"
    " PRIMARY KEY(scope, key)) WITHOUT ROWID;"
    "CREATE INDEX idem_created ON idem(created_ms);",
    "CREATE TABLE snapshots(hunt TEXT PRIMARY KEY, seq INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE blobs(hash BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;",
    /* Map tiles. blobs becomes a rowid table: WITHOUT ROWID rows over ~1 KB spill into an
     * overflow page each, which made a 1.2 KB tile cost 4-5 KB on disk. */
    "CREATE TABLE draft_tiles(hunt TEXT NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,"
    " hash BLOB NOT NULL, ctype TEXT NOT NULL, PRIMARY KEY(hunt, x, y)) WITHOUT ROWID;"
    "CREATE TABLE map_versions(hunt TEXT NOT NULL, version INTEGER NOT NULL,"
    " manifest BLOB NOT NULL, PRIMARY KEY(hunt, version));"
    "CREATE TABLE blobs_rowid(hash BLOB PRIMARY KEY, data BLOB NOT NULL);"
    "INSERT INTO blobs_rowid(hash, data) SELECT hash, data FROM blobs;"
    "DROP TABLE blobs; ALTER TABLE blobs_rowid RENAME TO blobs;",
    /* Snapshots moved to the companion file (see "snapshots" below); the table of step 2
     * was never written since. Anything an older binary left in it is only a shortcut:
     * recovery replays the log. */
    "DROP TABLE IF EXISTS snapshots;",
    /* Payloads over EVENT_INLINE_MAX leave the events b-tree (see store_put_event). */
    "CREATE TABLE event_data(hunt TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY(hunt, seq));"
    "INSERT INTO event_data(hunt, seq, data) SELECT hunt, seq, data FROM events"
    " WHERE length(data) > " STR(EVENT_INLINE_MAX) ";"
    "UPDATE events SET data = NULL WHERE length(data) > " STR(EVENT_INLINE_MAX) ";",
    /* One refresh row per player (store_put_refresh): earlier binaries kept every token
     * ever issued. Used rows go, then all but each player's newest (its current one). */
    "CREATE INDEX IF NOT EXISTS refresh_player ON refresh(player);"
    "CREATE INDEX IF NOT EXISTS refresh_expires ON refresh(expires_ms);"
    "DELETE FROM refresh WHERE used <> 0;"
    "DELETE FROM refresh WHERE id NOT IN (SELECT max(id) FROM refresh GROUP BY player);",
    /* The hash chain (engine.h): each event's link. Rows written before stay NULL; recovery
     * recomputes theirs. */
    "ALTER TABLE events ADD COLUMN hash BLOB;",
};
#define SCHEMA_VERSION ((int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0])))

/* A handle: store.c's `struct store` first, so that SQ() finds the rest. */
#define SQ(base) ((struct sq *)(base))
struct sq {
    struct store base; /* first: store.c dispatches through it */
    sqlite3 *db;
    sqlite3_stmt *q[Q_MAX];
    sqlite3 *snapdb;  /* the snapshots file, opened on first use */
    char *snap_path;
    enum store_fsync fsync;
};

static int exec(sqlite3 *db, const char *sql, char *err, size_t errcap)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errcap, "sqlite: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return STORE_EIO;
}

static int migrate(sqlite3 *db, char *err, size_t errcap)
{
    sqlite3_stmt *st;
    int version = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return exec(db, "PRAGMA user_version", err, errcap);
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > SCHEMA_VERSION) {
        snprintf(err, errcap, "store schema version %d is newer than this binary's (%d)",
                 version, SCHEMA_VERSION);
        return STORE_ECORRUPT;
    }
    for (; version < SCHEMA_VERSION; version++) {
        char sql[64];
        int rc = exec(db, "BEGIN", err, errcap);
        if (!rc) rc = exec(db, MIGRATIONS[version], err, errcap);
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", version + 1);
        if (!rc) rc = exec(db, sql, err, errcap);
        if (!rc) rc = exec(db, "COMMIT", err, errcap);
        if (rc) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    return 0;
}

static int configure(sqlite3 *db, enum store_fsync fsync, char *err, size_t errcap)
{
    static const char *const sync[] = {"PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL",
                                       "PRAGMA synchronous=OFF"};
    sqlite3_busy_timeout(db, 5000);
    if (exec(db, "PRAGMA journal_mode=WAL", err, errcap)) return STORE_EIO;
    if (exec(db, sync[fsync], err, errcap)) return STORE_EIO;
    return exec(db, "PRAGMA wal_autocheckpoint=4000", err, errcap);
}

static char *snap_path_of(const char *path);
static void sq_close(struct store *base);

/* url is "sqlite:PATH" (store.c matched the scheme). */
static int sq_open(const char *url, enum store_fsync fsync, struct store **out, char *err,
                   size_t errcap)
{
    struct sq *s = calloc(1, sizeof *s);
    if (!s) return STORE_EIO;
    int rc = STORE_EIO;
    if (sqlite3_open_v2(url + 7, &s->db, OPEN_FLAGS, NULL)) {
        snprintf(err, errcap, "cannot open %s: %s", url + 7, sqlite3_errmsg(s->db));
        goto fail;
    }
    if ((rc = configure(s->db, fsync, err, errcap)) || (rc = migrate(s->db, err, errcap)))
        goto fail;
    for (int i = 0; i < Q_MAX; i++) {
        if (sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL)) {
            snprintf(err, errcap, "sqlite prepare: %s", sqlite3_errmsg(s->db));
            rc = STORE_EIO;
            goto fail;
        }
    }
    s->fsync = fsync;
    if (!(s->snap_path = snap_path_of(url + 7))) goto fail;
    *out = &s->base;
    return 0;
fail:
    sq_close(&s->base);
    return rc;
}

/* An exclusive lock on "<PATH>.lock" for the life of the process (the descriptor stays
 * open): a second server or a `tiles import` cannot then write the same file behind this
 * one's back, where its memory would no longer match the store. */
static int sq_lock(const char *url, char *err, size_t errcap)
{
    char path[4300];
    snprintf(path, sizeof path, "%s.lock", url + 7);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    snprintf(err, errcap, "%s: %s", path,
             fd < 0 ? strerror(errno)
                    : "locked: a server (or an import) is using this store; stop it first");
    if (fd >= 0) close(fd);
    return -1;
}

static int sq_test_url(const char *dir, char *out, size_t cap)
{
    int n = dir ? snprintf(out, cap, "sqlite:%s/t.db", dir) : snprintf(out, cap, "sqlite::memory:");
    return n < (int)cap ? 0 : -1;
}

static void sq_close(struct store *base)
{
    struct sq *s = SQ(base);
    for (int i = 0; i < Q_MAX; i++) sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    sqlite3_close(s->snapdb);
    free(s->snap_path);
    free(s);
}

/* Runs a statement that returns no rows, then resets it. */
static int run(struct sq *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return STORE_ECONFLICT;
    fprintf(stderr, "veltrix: sqlite: %s\n", sqlite3_errmsg(s->db));
    return STORE_EIO;
}

static int sq_begin(struct store *base) { return run(SQ(base), SQ(base)->q[Q_BEGIN]); }
static int sq_commit(struct store *base) { return run(SQ(base), SQ(base)->q[Q_COMMIT]); }
static void sq_rollback(struct store *base) { run(SQ(base), SQ(base)->q[Q_ROLLBACK]); }

static int sq_put_event(struct store *base, const struct store_event *ev)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[Q_PUT_EVENT];
    int inline_data = ev->data_len <= EVENT_INLINE_MAX;
    sqlite3_bind_text(st, 1, ev->hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->seq);
    sqlite3_bind_int64(st, 3, ev->time_ms);
    sqlite3_bind_int(st, 4, ev->type);
    sqlite3_bind_blob(st, 5, ev->player, 16, SQLITE_STATIC);
    if (inline_data)
        sqlite3_bind_blob(st, 6, ev->data ? (const void *)ev->data : "", (int)ev->data_len,
                          SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    if (ev->has_hash) sqlite3_bind_blob(st, 7, ev->hash, 32, SQLITE_STATIC);
    else sqlite3_bind_null(st, 7);
    int rc = run(s, st);
    if (rc || inline_data) return rc;
    st = s->q[Q_PUT_EVENT_DATA];
    sqlite3_bind_text(st, 1, ev->hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->seq);
    sqlite3_bind_blob(st, 3, ev->data, (int)ev->data_len, SQLITE_STATIC);
    return run(s, st);
}

static int sq_put_player(struct store *base, const struct store_player *p)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[Q_PUT_PLAYER];
    sqlite3_bind_blob(st, 1, p->id, 16, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->display_name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, p->created_ms);
    sqlite3_bind_int64(st, 4, p->gen);
    return run(s, st);
}

static int sq_put_refresh(struct store *base, const struct store_refresh *r)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[r->used ? Q_USE_REFRESH : Q_PUT_REFRESH];
    sqlite3_bind_blob(st, 1, r->id, 16, SQLITE_STATIC);
    if (r->used) return run(s, st);
    sqlite3_bind_blob(st, 2, r->player, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->gen);
    sqlite3_bind_int64(st, 4, r->expires_ms);
    int rc = run(s, st);
    if (rc) return rc;
    st = s->q[Q_DROP_REFRESH];
    sqlite3_bind_blob(st, 1, r->player, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, r->id, 16, SQLITE_STATIC);
    return run(s, st);
}

static int sq_prune_refresh(struct store *base, int64_t now_ms)
{
    struct sq *s = SQ(base);
    sqlite3_bind_int64(s->q[Q_PRUNE_REFRESH], 1, now_ms);
    return run(s, s->q[Q_PRUNE_REFRESH]);
}

static int sq_put_idem(struct store *base, const struct store_idem *i)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[Q_PUT_IDEM];
    sqlite3_bind_text(st, 1, i->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, i->key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, i->req_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, i->status);
    sqlite3_bind_blob(st, 5, i->body ? i->body : "", (int)i->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, i->created_ms);
    return run(s, st);
}

static int sq_prune_idem(struct store *base, int64_t cutoff_ms)
{
    struct sq *s = SQ(base);
    sqlite3_bind_int64(s->q[Q_PRUNE_IDEM], 1, cutoff_ms);
    return run(s, s->q[Q_PRUNE_IDEM]);
}

/* Steps a query to its end, calling row() per row; stops early when row() returns non-0. */
static int walk(struct sq *s, sqlite3_stmt *st, int (*row)(sqlite3_stmt *, void *),
                void *ctx)
{
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((ret = row(st, ctx)) != 0) break;
    if (!ret && rc != SQLITE_DONE) {
        fprintf(stderr, "veltrix: sqlite: %s\n", sqlite3_errmsg(s->db));
        ret = STORE_EIO;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int blob16(sqlite3_stmt *st, int col, uint8_t out[16])
{
    if (sqlite3_column_bytes(st, col) != 16) return STORE_ECORRUPT;
    memcpy(out, sqlite3_column_blob(st, col), 16);
    return 0;
}

struct walk_ctx {
    void *cb;
    void *ctx;
    const char *hunt;
    struct sq *s;
};

static int hunt_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    return ((store_hunt_cb)w->cb)((const char *)sqlite3_column_text(st, 0), w->ctx);
}

static int sq_each_hunt(struct store *base, store_hunt_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    return walk(s, s->q[Q_HUNTS], hunt_row, &w);
}

static int event_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    struct store_event ev = {.hunt = w->hunt};
    ev.seq = (uint64_t)sqlite3_column_int64(st, 0);
    ev.time_ms = sqlite3_column_int64(st, 1);
    ev.type = (uint8_t)sqlite3_column_int(st, 2);
    if (blob16(st, 3, ev.player)) return STORE_ECORRUPT;
    if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
        if (sqlite3_column_bytes(st, 5) != 32) return STORE_ECORRUPT;
        memcpy(ev.hash, sqlite3_column_blob(st, 5), 32);
        ev.has_hash = 1;
    }
    if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
        ev.data = sqlite3_column_blob(st, 4);
        ev.data_len = (size_t)sqlite3_column_bytes(st, 4);
        return ((store_event_cb)w->cb)(&ev, w->ctx);
    }
    /* A payload kept out of line (EVENT_INLINE_MAX); a missing row is corruption. */
    sqlite3_stmt *d = w->s->q[Q_GET_EVENT_DATA];
    sqlite3_bind_text(d, 1, w->hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d, 2, (sqlite3_int64)ev.seq);
    int rc = sqlite3_step(d), ret;
    if (rc == SQLITE_ROW) {
        ev.data = sqlite3_column_blob(d, 0);
        ev.data_len = (size_t)sqlite3_column_bytes(d, 0);
        ret = ((store_event_cb)w->cb)(&ev, w->ctx);
    } else {
        if (rc != SQLITE_DONE) fprintf(stderr, "veltrix: sqlite: %s\n", sqlite3_errmsg(w->s->db));
        ret = rc == SQLITE_DONE ? STORE_ECORRUPT : STORE_EIO;
    }
    sqlite3_reset(d);
    sqlite3_clear_bindings(d);
    return ret;
}

static int sq_each_event(struct store *base, const char *hunt, uint64_t from_seq, store_event_cb cb,
                     void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, hunt, s};
    sqlite3_stmt *st = s->q[Q_EVENTS];
    sqlite3_bind_text(st, 1, hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)from_seq);
    return walk(s, st, event_row, &w);
}

static int player_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    struct store_player pl;
    if (blob16(st, 0, pl.id)) return STORE_ECORRUPT;
    pl.display_name = (const char *)sqlite3_column_text(st, 1);
    pl.created_ms = sqlite3_column_int64(st, 2);
    pl.gen = (uint32_t)sqlite3_column_int64(st, 3);
    if (!pl.display_name) return STORE_ECORRUPT;
    return ((store_player_cb)w->cb)(&pl, w->ctx);
}

static int sq_each_player(struct store *base, store_player_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    return walk(s, s->q[Q_PLAYERS], player_row, &w);
}

static int refresh_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    struct store_refresh r;
    if (blob16(st, 0, r.id) || blob16(st, 1, r.player)) return STORE_ECORRUPT;
    r.gen = (uint32_t)sqlite3_column_int64(st, 2);
    r.expires_ms = sqlite3_column_int64(st, 3);
    r.used = sqlite3_column_int(st, 4);
    return ((store_refresh_cb)w->cb)(&r, w->ctx);
}

static int sq_each_refresh(struct store *base, int64_t now_ms, store_refresh_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    sqlite3_bind_int64(s->q[Q_REFRESH], 1, now_ms);
    return walk(s, s->q[Q_REFRESH], refresh_row, &w);
}

static int idem_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    struct store_idem i;
    i.scope = (const char *)sqlite3_column_text(st, 0);
    i.key = (const char *)sqlite3_column_text(st, 1);
    if (!i.scope || !i.key || sqlite3_column_bytes(st, 2) != 32) return STORE_ECORRUPT;
    memcpy(i.req_hash, sqlite3_column_blob(st, 2), 32);
    i.status = sqlite3_column_int(st, 3);
    i.body = sqlite3_column_blob(st, 4);
    i.body_len = (size_t)sqlite3_column_bytes(st, 4);
    i.created_ms = sqlite3_column_int64(st, 5);
    i.hunt = NULL; /* not kept here: a single node has no one to hand hunts to */
    return ((store_idem_cb)w->cb)(&i, w->ctx);
}

static int sq_each_idem(struct store *base, int64_t since_ms, store_idem_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    sqlite3_bind_int64(s->q[Q_IDEMS], 1, since_ms);
    return walk(s, s->q[Q_IDEMS], idem_row, &w);
}

static int found_row(sqlite3_stmt *st, void *p)
{
    int rc = idem_row(st, p);
    return rc ? rc : 1;
}

static int sq_get_idem(struct store *base, const char *scope, const char *key, store_idem_cb cb,
                   void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    sqlite3_stmt *st = s->q[Q_GET_IDEM];
    sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    return walk(s, st, found_row, &w);
}

static int sq_ping(struct store *base)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[Q_PING];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : STORE_EIO;
}

static int sq_put_blob(struct store *base, const uint8_t hash[32], const uint8_t *data, size_t len)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[Q_PUT_BLOB];
    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 2, len ? (const void *)data : "", len, SQLITE_STATIC);
    return run(s, st);
}

static int bytes_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    int rc = ((store_snapshot_cb)w->cb)((uint64_t)sqlite3_column_int64(st, 0),
                                        sqlite3_column_blob(st, 1),
                                        (size_t)sqlite3_column_bytes(st, 1), w->ctx);
    return rc ? rc : 1;
}

static int sq_get_blob(struct store *base, const uint8_t hash[32], store_snapshot_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    sqlite3_bind_blob(s->q[Q_GET_BLOB], 1, hash, 32, SQLITE_STATIC);
    return walk(s, s->q[Q_GET_BLOB], bytes_row, &w);
}

static int sq_put_tile(struct store *base, const struct store_tile *t)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[Q_PUT_TILE];
    sqlite3_bind_text(st, 1, t->hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, t->x);
    sqlite3_bind_int64(st, 3, t->y);
    sqlite3_bind_blob(st, 4, t->hash, 32, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->ctype, -1, SQLITE_STATIC);
    return run(s, st);
}

static int sq_put_map_version(struct store *base, const struct store_map_version *v)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st = s->q[Q_PUT_MAPVER];
    sqlite3_bind_text(st, 1, v->hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v->version);
    sqlite3_bind_blob64(st, 3, v->len ? (const void *)v->data : "", v->len, SQLITE_STATIC);
    int rc = run(s, st);
    if (rc) return rc;
    st = s->q[Q_PRUNE_MAPVER];
    sqlite3_bind_text(st, 1, v->hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v->keep_from);
    return run(s, st);
}

static int tile_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    struct store_tile t;
    t.hunt = (const char *)sqlite3_column_text(st, 0);
    sqlite3_int64 x = sqlite3_column_int64(st, 1), y = sqlite3_column_int64(st, 2);
    t.ctype = (const char *)sqlite3_column_text(st, 4);
    if (!t.hunt || !t.ctype || x < 0 || y < 0 || x > UINT32_MAX || y > UINT32_MAX ||
        sqlite3_column_bytes(st, 3) != 32)
        return STORE_ECORRUPT;
    t.x = (uint32_t)x;
    t.y = (uint32_t)y;
    memcpy(t.hash, sqlite3_column_blob(st, 3), 32);
    return ((store_tile_cb)w->cb)(&t, w->ctx);
}

static int sq_each_tile(struct store *base, store_tile_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    return walk(s, s->q[Q_TILES], tile_row, &w);
}

static int map_version_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    struct store_map_version v = {(const char *)sqlite3_column_text(st, 0),
                                  sqlite3_column_int64(st, 1), 0, NULL, 0};
    if (!v.hunt) return STORE_ECORRUPT;
    v.keep_from = v.version;
    v.data = sqlite3_column_blob(st, 2);
    v.len = (size_t)sqlite3_column_bytes(st, 2);
    return ((store_map_version_cb)w->cb)(&v, w->ctx);
}

static int sq_each_map_version(struct store *base, store_map_version_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    return walk(s, s->q[Q_MAPVERS], map_version_row, &w);
}

/* ---- snapshots --------------------------------------------------------------------------
 * Snapshots live in a companion file (veltrix.db -> veltrix-snapshots.db, same WAL mode
 * and synchronous setting). SQLite has one writer per file: writing a 30 MB snapshot into
 * the log's file held the log writer for ~200 ms (measured at 1M players); in its own
 * file it holds nothing the log needs. A snapshot is written only once the log holds its
 * seq (snap.c checks with store_last_seq), so the two files never disagree in a way that
 * recovery could not see (api.c checks the log reaches the snapshot's seq). (Migration
 * 2's `snapshots` table in the main file is dropped by migration 4.) Rarely called (once per
 * snapshot, once per hunt at startup): statements are prepared on each call. */

/* "DIR/NAME.db" -> "DIR/NAME-snapshots.db" (any other path: PATH + "-snapshots.db"); an
 * in-memory store keeps its snapshots in memory too. */
static char *snap_path_of(const char *path)
{
    if (!strcmp(path, ":memory:")) return strdup(path);
    size_t n = strlen(path);
    if (n >= 3 && !strcmp(path + n - 3, ".db")) n -= 3;
    char *p = malloc(n + sizeof "-snapshots.db");
    if (p) {
        memcpy(p, path, n);
        memcpy(p + n, "-snapshots.db", sizeof "-snapshots.db");
    }
    return p;
}

static sqlite3 *snapdb(struct sq *s)
{
    char err[256];
    sqlite3 *db = NULL;
    if (s->snapdb) return s->snapdb;
    if (sqlite3_open_v2(s->snap_path, &db, OPEN_FLAGS, NULL) ||
        configure(db, s->fsync, err, sizeof err) ||
        exec(db,
             "CREATE TABLE IF NOT EXISTS snapshots(hunt TEXT PRIMARY KEY, "
             "seq INTEGER NOT NULL, data BLOB NOT NULL)",
             err, sizeof err)) {
        fprintf(stderr, "veltrix: sqlite: %s: %s\n", s->snap_path, db ? sqlite3_errmsg(db) : "");
        sqlite3_close(db);
        return NULL;
    }
    return s->snapdb = db;
}

static int sq_put_snapshot(struct store *base, const char *hunt, uint64_t seq, const uint8_t *data,
                       size_t len)
{
    struct sq *s = SQ(base);
    sqlite3 *db = snapdb(s);
    sqlite3_stmt *st;
    if (!db || sqlite3_prepare_v2(db,
                                  "INSERT OR REPLACE INTO snapshots(hunt,seq,data) "
                                  "VALUES(?,?,?)",
                                  -1, &st, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(st, 1, hunt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_blob64(st, 3, len ? (const void *)data : "", len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "veltrix: sqlite: %s: %s\n", s->snap_path, sqlite3_errmsg(db));
        return STORE_EIO;
    }
    /* Move it out of the WAL now, on the caller's (the snapshot thread's) time. */
    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return 0;
}

static int sq_delete_snapshot(struct store *base, const char *hunt)
{
    struct sq *s = SQ(base);
    sqlite3 *db = snapdb(s);
    sqlite3_stmt *st;
    if (!db || sqlite3_prepare_v2(db, "DELETE FROM snapshots WHERE hunt=?", -1, &st, NULL) !=
                   SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(st, 1, hunt, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : STORE_EIO;
}

static int sq_get_snapshot(struct store *base, const char *hunt, store_snapshot_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    sqlite3 *db = snapdb(s);
    sqlite3_stmt *st;
    if (!db || sqlite3_prepare_v2(db, "SELECT seq,data FROM snapshots WHERE hunt=?", -1, &st,
                                  NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(st, 1, hunt, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        ret = cb((uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                 (size_t)sqlite3_column_bytes(st, 1), ctx);
        if (!ret) ret = 1;
    } else if (rc != SQLITE_DONE) {
        ret = STORE_EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

static int sq_last_seq(struct store *base, const char *hunt, uint64_t *seq)
{
    struct sq *s = SQ(base);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq),0) FROM events WHERE hunt=?", -1, &st,
                           NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(st, 1, hunt, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *seq = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : STORE_EIO;
}

/* ---- whole-store walks (veltrix migrate) ---------------------------------------------
 * Rare (a migration, once): statements are prepared on each call. */

/* Steps st to its end, calling row() per row; finalizes st. */
static int walk_once(sqlite3 *db, sqlite3_stmt *st, int (*row)(sqlite3_stmt *, void *),
                     void *ctx)
{
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((ret = row(st, ctx)) != 0) break;
    if (!ret && rc != SQLITE_DONE) {
        fprintf(stderr, "veltrix: sqlite: %s\n", sqlite3_errmsg(db));
        ret = STORE_EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

static int snapshot_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    const char *hunt = (const char *)sqlite3_column_text(st, 0);
    if (!hunt) return STORE_ECORRUPT;
    return ((store_hunt_snapshot_cb)w->cb)(hunt, (uint64_t)sqlite3_column_int64(st, 1),
                                           sqlite3_column_blob(st, 2),
                                           (size_t)sqlite3_column_bytes(st, 2), w->ctx);
}

static int sq_each_snapshot(struct store *base, store_hunt_snapshot_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    sqlite3 *db = snapdb(s);
    sqlite3_stmt *st;
    if (!db || sqlite3_prepare_v2(db, "SELECT hunt,seq,data FROM snapshots ORDER BY hunt", -1,
                                  &st, NULL) != SQLITE_OK)
        return STORE_EIO;
    return walk_once(db, st, snapshot_row, &w);
}

static int blob_row(sqlite3_stmt *st, void *p)
{
    struct walk_ctx *w = p;
    if (sqlite3_column_bytes(st, 0) != 32) return STORE_ECORRUPT;
    return ((store_blob_cb)w->cb)(sqlite3_column_blob(st, 0), sqlite3_column_blob(st, 1),
                                  (size_t)sqlite3_column_bytes(st, 1), w->ctx);
}

static int sq_each_blob(struct store *base, store_blob_cb cb, void *ctx)
{
    struct sq *s = SQ(base);
    struct walk_ctx w = {(void *)cb, ctx, NULL, s};
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT hash,data FROM blobs ORDER BY hash", -1, &st, NULL) !=
        SQLITE_OK)
        return STORE_EIO;
    return walk_once(s->db, st, blob_row, &w);
}

const struct store_backend store_sqlite_backend = {
    .scheme = "sqlite",
    .open = sq_open,
    .lock = sq_lock,
    .test_url = sq_test_url,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .put_event = sq_put_event,
    .put_player = sq_put_player,
    .put_refresh = sq_put_refresh,
    .prune_refresh = sq_prune_refresh,
    .put_idem = sq_put_idem,
    .prune_idem = sq_prune_idem,
    .each_hunt = sq_each_hunt,
    .each_event = sq_each_event,
    .each_player = sq_each_player,
    .each_refresh = sq_each_refresh,
    .each_idem = sq_each_idem,
    .get_idem = sq_get_idem,
    .put_snapshot = sq_put_snapshot,
    .get_snapshot = sq_get_snapshot,
    .delete_snapshot = sq_delete_snapshot,
    .put_blob = sq_put_blob,
    .get_blob = sq_get_blob,
    .put_tile = sq_put_tile,
    .put_map_version = sq_put_map_version,
    .each_tile = sq_each_tile,
    .each_map_version = sq_each_map_version,
    .ping = sq_ping,
    .last_seq = sq_last_seq,
    .each_snapshot = sq_each_snapshot,
    .each_blob = sq_each_blob,
};
