/* Unit tests: the store interface, run against every registered backend (store.h
 * store_backends(); a backend that cannot be tested here says so and is skipped) —
 * events in one transaction, (hunt, seq) conflicts, reading back in order from a seq,
 * players/refresh/idempotency rows, reopening, snapshots, blobs, large payloads — and
 * the SQLite backend's own migrations. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "store.h"

static char dir[] = "/tmp/veltrix-store-XXXXXX";
static char url[128];

static int count_cb(const struct store_event *ev, void *ctx)
{
    uint64_t *expect = ctx;
    if (ev->seq != *expect || ev->data_len != 3 || memcmp(ev->data, "abc", 3)) return -7;
    (*expect)++;
    return 0;
}

static struct store *open_store(void)
{
    struct store *s = NULL;
    char err[256];
    int rc = store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK(s != NULL);
    return s;
}

/* Puts ev in the open transaction and commits: a taken (hunt, seq) is STORE_ECONFLICT
 * from the put (SQLite) or from the commit (PostgreSQL sends the batch's puts without
 * waiting for their answers). The caller rolls back. */
static int put_and_commit(struct store *s, const struct store_event *ev)
{
    int rc = store_put_event(s, ev);
    return rc ? rc : store_commit(s);
}

TEST(events_roundtrip)
{
    struct store *s = open_store();
    CHECK(s != NULL);
    if (!s) return;
    CHECK_EQ_INT(store_begin(s), 0);
    for (uint64_t seq = 1; seq <= 100; seq++) {
        struct store_event ev = {"h1", seq, 1000, 2, {1}, (const uint8_t *)"abc", 3, {0}, 0, 0};
        CHECK_EQ_INT(store_put_event(s, &ev), 0);
    }
    CHECK_EQ_INT(store_commit(s), 0);
    uint64_t expect = 40;
    CHECK_EQ_INT(store_each_event(s, "h1", 40, count_cb, &expect), 0);
    CHECK_EQ_INT(expect, 101);
    /* a taken seq conflicts and the whole transaction rolls back */
    CHECK_EQ_INT(store_begin(s), 0);
    struct store_event ok = {"h1", 101, 1, 2, {1}, (const uint8_t *)"abc", 3, {0}, 0, 0};
    struct store_event dup = {"h1", 5, 1, 2, {1}, (const uint8_t *)"abc", 3, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &ok), 0);
    CHECK_EQ_INT(put_and_commit(s, &dup), STORE_ECONFLICT);
    store_rollback(s);
    expect = 1;
    CHECK_EQ_INT(store_each_event(s, "h1", 1, count_cb, &expect), 0);
    CHECK_EQ_INT(expect, 101);
    store_close(s);
}

struct hash_ctx {
    int n, with, bad;
};

static int hash_cb(const struct store_event *ev, void *ctx)
{
    struct hash_ctx *c = ctx;
    uint8_t want[32];
    memset(want, (int)ev->seq, sizeof want);
    c->n++;
    if (ev->seq % 2) { /* odd seqs were written with a hash, even ones without (NULL) */
        c->with += ev->has_hash;
        c->bad += memcmp(ev->hash, want, 32) != 0;
    } else {
        c->bad += ev->has_hash;
    }
    return 0;
}

/* The hash chain's column: a stored hash reads back as written; none reads back as none. */
TEST(event_hash_roundtrip)
{
    struct store *s = open_store();
    if (!s) return;
    CHECK_EQ_INT(store_begin(s), 0);
    for (uint64_t seq = 1; seq <= 6; seq++) {
        struct store_event ev = {.hunt = "hh", .seq = seq, .time_ms = 1, .type = 2,
                                 .data = (const uint8_t *)"c1", .data_len = 2};
        ev.has_hash = seq % 2;
        if (ev.has_hash) memset(ev.hash, (int)seq, sizeof ev.hash);
        CHECK_EQ_INT(store_put_event(s, &ev), 0);
    }
    CHECK_EQ_INT(store_commit(s), 0);
    struct hash_ctx c = {0};
    CHECK_EQ_INT(store_each_event(s, "hh", 1, hash_cb, &c), 0);
    CHECK_EQ_INT(c.n, 6);
    CHECK_EQ_INT(c.with, 3);
    CHECK_EQ_INT(c.bad, 0);
    store_close(s);
}

static int player_cb(const struct store_player *p, void *ctx)
{
    int *n = ctx;
    if (strcmp(p->display_name, "Ana") == 0 && p->gen == 2) (*n)++;
    return 0;
}

static int idem_cb(const struct store_idem *i, void *ctx)
{
    int *n = ctx;
    if (i->status == 201 && i->body_len == 2 && !memcmp(i->body, "{}", 2)) (*n)++;
    return 0;
}

TEST(rows_survive_reopen)
{
    struct store *s = open_store();
    if (!s) return;
    struct store_player p = {{7}, "Ana", 1, 1};
    struct store_idem i = {"me POST /x", "k1", {0}, 201, "{}", 2, 5000, NULL};
    CHECK_EQ_INT(store_begin(s), 0);
    CHECK_EQ_INT(store_put_player(s, &p), 0);
    p.gen = 2;
    CHECK_EQ_INT(store_put_player(s, &p), 0); /* update, not a second row */
    CHECK_EQ_INT(store_put_idem(s, &i), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    store_close(s);
    s = open_store();
    if (!s) return;
    int n = 0;
    CHECK_EQ_INT(store_each_player(s, player_cb, &n), 0);
    CHECK_EQ_INT(n, 1);
    n = 0;
    CHECK_EQ_INT(store_get_idem(s, "me POST /x", "k1", idem_cb, &n), 1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(store_get_idem(s, "me POST /x", "k2", idem_cb, &n), 0);
    CHECK_EQ_INT(store_prune_idem(s, 6000), 0);
    CHECK_EQ_INT(store_get_idem(s, "me POST /x", "k1", idem_cb, &n), 0);
    CHECK_EQ_INT(store_ping(s), 0);
    store_close(s);
}

static int count_idem(const struct store_idem *i, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

/* A backlog of expired keys goes in bounded bites, the live ones stay. */
TEST(prune_is_bounded)
{
    struct store *s = open_store();
    if (!s) return;
    char key[32];
    CHECK_EQ_INT(store_begin(s), 0);
    for (int k = 0; k < STORE_PRUNE_IDEM_MAX + 500; k++) {
        snprintf(key, sizeof key, "old%d", k);
        struct store_idem i = {"s", key, {0}, 200, "{}", 2, 1000 + k, NULL};
        CHECK_EQ_INT(store_put_idem(s, &i), 0);
    }
    struct store_idem live = {"s", "live", {0}, 200, "{}", 2, 900000, NULL};
    CHECK_EQ_INT(store_put_idem(s, &live), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    int n = 0;
    CHECK_EQ_INT(store_prune_idem(s, 500000), 0);
    CHECK_EQ_INT(store_each_idem(s, 0, count_idem, &n), 0);
    CHECK_EQ_INT(n, 501);
    n = 0;
    CHECK_EQ_INT(store_prune_idem(s, 500000), 0);
    CHECK_EQ_INT(store_each_idem(s, 0, count_idem, &n), 0);
    CHECK_EQ_INT(n, 1);
    store_close(s);
}

/* Refresh rows per player (player[0] is a test's tag): count, and the newest row seen. */
struct refresh_ctx {
    uint8_t tag;
    int rows, used;
    uint8_t last[16];
};

static int refresh_cb(const struct store_refresh *r, void *ctx)
{
    struct refresh_ctx *c = ctx;
    if (r->player[0] != c->tag) return 0;
    if (!c->rows || memcmp(r->id, c->last, 16) > 0) memcpy(c->last, r->id, 16);
    c->rows++;
    c->used += r->used != 0;
    return 0;
}

static struct refresh_ctx refresh_rows(struct store *s, uint8_t tag)
{
    struct refresh_ctx c = {tag, 0, 0, {0}};
    CHECK_EQ_INT(store_each_refresh(s, 0, refresh_cb, &c), 0);
    return c;
}

/* A refresh marks the token used and puts the next one, in one transaction, as api.c
 * does: whatever the number of refreshes, the store holds the player's current token
 * only (reuse is detected against it: ids are time-ordered), other players' stay. */
TEST(refresh_keeps_the_current_token)
{
    struct store *s = open_store();
    if (!s) return;
    struct store_refresh a = {{0x10, 0}, {0xa1}, 0, 1LL << 50, 0};
    struct store_refresh b = {{0x01}, {0xb2}, 0, 1LL << 50, 0};
    CHECK_EQ_INT(store_begin(s), 0);
    CHECK_EQ_INT(store_put_refresh(s, &b), 0);
    CHECK_EQ_INT(store_put_refresh(s, &a), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    for (int i = 1; i <= 100; i++) {
        CHECK_EQ_INT(store_begin(s), 0);
        a.used = 1;
        CHECK_EQ_INT(store_put_refresh(s, &a), 0);
        a.id[1] = (uint8_t)i;
        a.used = 0;
        CHECK_EQ_INT(store_put_refresh(s, &a), 0);
        CHECK_EQ_INT(store_commit(s), 0);
    }
    /* marking a token used never adds a row */
    struct store_refresh gone = {{0x99}, {0xa1}, 0, 1LL << 50, 1};
    CHECK_EQ_INT(store_begin(s), 0);
    CHECK_EQ_INT(store_put_refresh(s, &gone), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    store_close(s);
    s = open_store();
    if (!s) return;
    struct refresh_ctx ca = refresh_rows(s, 0xa1), cb = refresh_rows(s, 0xb2);
    CHECK_EQ_INT(ca.rows, 1);
    CHECK_EQ_INT(ca.used, 0);
    CHECK(!memcmp(ca.last, a.id, 16));
    CHECK_EQ_INT(cb.rows, 1);
    store_close(s);
}

static int bytes_cb(uint64_t seq, const uint8_t *data, size_t len, void *ctx)
{
    uint64_t *out = ctx;
    *out = seq * 1000 + len + (len && data[0] == 'v' ? 100 : 0);
    return 0;
}

TEST(snapshots_and_blobs)
{
    struct store *s = open_store();
    if (!s) return;
    uint64_t got = 0;
    uint8_t h[32] = {9}, h2[32] = {8};
    CHECK_EQ_INT(store_get_snapshot(s, "h1", bytes_cb, &got), 0);
    CHECK_EQ_INT(store_begin(s), 0);
    CHECK_EQ_INT(store_put_snapshot(s, "h1", 5, (const uint8_t *)"old", 3), 0);
    CHECK_EQ_INT(store_put_snapshot(s, "h1", 7, (const uint8_t *)"v2abc", 5), 0);
    CHECK_EQ_INT(store_put_blob(s, h, (const uint8_t *)"vtile", 5), 0);
    CHECK_EQ_INT(store_put_blob(s, h, (const uint8_t *)"other!", 6), 0); /* same hash: kept */
    CHECK_EQ_INT(store_commit(s), 0);
    CHECK_EQ_INT(store_get_snapshot(s, "h1", bytes_cb, &got), 1);
    CHECK_EQ_INT(got, 7105);
    CHECK_EQ_INT(store_get_blob(s, h, bytes_cb, &got), 1);
    CHECK_EQ_INT(got, 105);
    CHECK_EQ_INT(store_get_blob(s, h2, bytes_cb, &got), 0);
    store_close(s);
}

/* A snapshot is written while another handle holds the log's write transaction (with
 * SQLite's 5 s busy timeout, sharing the lock would make this fail with an error), and
 * store_last_seq sees only committed events. */
TEST(snapshot_beside_log_writer)
{
    struct store *w = open_store(), *r = open_store();
    uint64_t last = 99, got = 0;
    if (!w || !r) return;
    struct store_event ev = {"hs", 1, 1, 2, {0}, (const uint8_t *)"c1", 2, {0}, 0, 0};
    CHECK_EQ_INT(store_begin(w), 0);
    CHECK_EQ_INT(store_put_event(w, &ev), 0);
    CHECK_EQ_INT(store_last_seq(r, "hs", &last), 0);
    CHECK_EQ_INT(last, 0);
    CHECK_EQ_INT(store_put_snapshot(r, "hs", 1, (const uint8_t *)"vsnap", 5), 0);
    CHECK_EQ_INT(store_commit(w), 0);
    CHECK_EQ_INT(store_last_seq(r, "hs", &last), 0);
    CHECK_EQ_INT(last, 1);
    store_close(r);
    store_close(w);
    r = open_store();
    CHECK_EQ_INT(store_get_snapshot(r, "hs", bytes_cb, &got), 1);
    CHECK_EQ_INT(got, 1105);
    store_close(r);
}

#define SCHEMA 7 /* the newest schema version (store_sqlite.c MIGRATIONS) */

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int has_table(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

struct big_ctx {
    size_t n;
    size_t lens[8];
    int bad;
};

/* Payload byte i of event seq is (seq * 31 + i) & 0xff. */
static int big_cb(const struct store_event *ev, void *ctx)
{
    struct big_ctx *b = ctx;
    for (size_t i = 0; i < ev->data_len; i++)
        if (ev->data[i] != (uint8_t)((ev->seq * 31 + i) & 0xff)) b->bad = 1;
    if (b->n < 8) b->lens[b->n] = ev->data_len;
    b->n++;
    return 0;
}

static void put_sized(struct store *s, const char *hunt, uint64_t seq, size_t len)
{
    uint8_t *d = malloc(len + 1);
    for (size_t i = 0; i < len; i++) d[i] = (uint8_t)((seq * 31 + i) & 0xff);
    struct store_event ev = {hunt, seq, 1000, 1, {1}, d, len, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &ev), 0);
    free(d);
}

/* Payloads over 512 bytes are stored out of line; every size reads back the same. */
TEST(large_payloads_roundtrip)
{
    struct store *s = open_store();
    CHECK(s != NULL);
    if (!s) return;
    static const size_t sizes[] = {0, 3, 512, 513, 23000, 70000};
    CHECK_EQ_INT(store_begin(s), 0);
    for (size_t i = 0; i < 6; i++) put_sized(s, "big", i + 1, sizes[i]);
    CHECK_EQ_INT(store_commit(s), 0);
    struct big_ctx b = {0};
    CHECK_EQ_INT(store_each_event(s, "big", 1, big_cb, &b), 0);
    CHECK_EQ_INT((int)b.n, 6);
    CHECK_EQ_INT(b.bad, 0);
    for (size_t i = 0; i < 6; i++) CHECK_EQ_INT((int)b.lens[i], (int)sizes[i]);
    /* a taken seq still conflicts, whatever the size */
    CHECK_EQ_INT(store_begin(s), 0);
    uint8_t d[600] = {0};
    struct store_event ev = {"big", 5, 1000, 1, {1}, d, sizeof d, {0}, 0, 0};
    CHECK_EQ_INT(put_and_commit(s, &ev), STORE_ECONFLICT);
    store_rollback(s);
    store_close(s);
}

/* A store at schema 3 (the unused `snapshots` table of step 2 with a row an old binary
 * left; a 23 KB payload inline in events) opens at schema 6: the table is gone, the
 * payload moved out of line, and the log reads back the same. */
TEST(migrations_4_and_5)
{
    char u[200], path[160];
    snprintf(path, sizeof path, "%s/m.db", dir);
    snprintf(u, sizeof u, "sqlite:%s", path);
    struct store *s = NULL;
    char err[256];
    CHECK_EQ_INT(store_open(u, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    if (!s) return;
    CHECK_EQ_INT(store_begin(s), 0);
    put_sized(s, "m", 1, 3);
    CHECK_EQ_INT(store_commit(s), 0);
    store_close(s);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(user_version(db), SCHEMA);
    CHECK(!has_table(db, "snapshots"));
    /* back to what schema 3 looked like */
    sqlite3_stmt *st;
    CHECK_EQ_INT(sqlite3_exec(db, "ALTER TABLE events DROP COLUMN hash;"
                                  "DROP TABLE event_data; CREATE TABLE snapshots(hunt TEXT "
                                  "PRIMARY KEY, seq INTEGER NOT NULL, data BLOB NOT NULL); "
                                  "INSERT INTO snapshots VALUES('m', 1, x'00')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    uint8_t big[23000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)((2 * 31 + i) & 0xff);
    CHECK_EQ_INT(sqlite3_prepare_v2(db, "INSERT INTO events VALUES('m', 2, 1000, 1, "
                                        "zeroblob(16), ?)", -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_blob(st, 1, big, sizeof big, SQLITE_STATIC);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA user_version=3", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s = NULL;
    CHECK_EQ_INT(store_open(u, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    if (!s) return;
    struct big_ctx b = {0};
    CHECK_EQ_INT(store_each_event(s, "m", 1, big_cb, &b), 0);
    CHECK_EQ_INT((int)b.n, 2);
    CHECK_EQ_INT(b.bad, 0);
    CHECK_EQ_INT((int)b.lens[1], (int)sizeof big);
    store_close(s);
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(user_version(db), SCHEMA);
    CHECK(!has_table(db, "snapshots"));
    CHECK_EQ_INT(sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE data IS NULL", -1,
                                    &st, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A store at schema 5 kept every refresh token ever issued; at schema 6 each player keeps
 * its newest one: the current token, or the one whose reuse revoked the player. */
TEST(migration_6_keeps_current_refresh_rows)
{
    char u[200], path[160];
    snprintf(path, sizeof path, "%s/r.db", dir);
    snprintf(u, sizeof u, "sqlite:%s", path);
    struct store *s = NULL;
    char err[256];
    CHECK_EQ_INT(store_open(u, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    if (!s) return;
    store_close(s);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    /* player c1: five refreshes (tokens 1-5 used, 6 current); c2: its token 1 was reused
     * (gen bumped, no token since); c3: one token, never used */
    CHECK_EQ_INT(sqlite3_exec(db, "ALTER TABLE events DROP COLUMN hash;"
                                  "DROP INDEX refresh_player; DROP INDEX refresh_expires;"
                                  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n "
                                  "WHERE i<6) INSERT INTO refresh SELECT CAST(x'c1' || "
                                  "zeroblob(14) || char(i) AS BLOB), x'c1' || zeroblob(15), 0, "
                                  "1e15, i<6 FROM n;"
                                  "INSERT INTO refresh VALUES(x'c2' || zeroblob(15), "
                                  "x'c2' || zeroblob(15), 0, 1e15, 1);"
                                  "INSERT INTO refresh VALUES(x'c2' || zeroblob(14) || x'02', "
                                  "x'c2' || zeroblob(15), 0, 1e15, 0);"
                                  "INSERT INTO refresh VALUES(x'c3' || zeroblob(15), "
                                  "x'c3' || zeroblob(15), 0, 1e15, 0);"
                                  "PRAGMA user_version=5",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(store_open(u, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    if (!s) return;
    struct refresh_ctx c1 = refresh_rows(s, 0xc1), c2 = refresh_rows(s, 0xc2),
                       c3 = refresh_rows(s, 0xc3);
    CHECK_EQ_INT(c1.rows, 1);
    CHECK_EQ_INT(c1.used, 0);
    CHECK_EQ_INT(c1.last[15], 6);
    CHECK_EQ_INT(c2.rows, 1);
    CHECK_EQ_INT(c2.last[15], 2);
    CHECK_EQ_INT(c3.rows, 1);
    store_close(s);
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(user_version(db), SCHEMA);
    sqlite3_close(db);
}

/* Expired refresh rows go in bounded bites; rows still valid stay. */
TEST(refresh_prune_is_bounded)
{
    struct store *s = open_store();
    if (!s) return;
    struct store_refresh r = {{0xd1}, {0xd1}, 0, 0, 0};
    CHECK_EQ_INT(store_begin(s), 0);
    for (int k = 0; k < STORE_PRUNE_REFRESH_MAX + 5; k++) {
        r.id[1] = r.player[1] = (uint8_t)(k >> 8);
        r.id[2] = r.player[2] = (uint8_t)k;
        r.expires_ms = 1000 + k;
        CHECK_EQ_INT(store_put_refresh(s, &r), 0);
    }
    struct store_refresh live = {{0xd1, 0xff}, {0xd1, 0xff}, 0, 900000, 0};
    CHECK_EQ_INT(store_put_refresh(s, &live), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    CHECK_EQ_INT(refresh_rows(s, 0xd1).rows, STORE_PRUNE_REFRESH_MAX + 6);
    CHECK_EQ_INT(store_prune_refresh(s, 500000), 0);
    CHECK_EQ_INT(refresh_rows(s, 0xd1).rows, 6);
    CHECK_EQ_INT(store_prune_refresh(s, 500000), 0);
    struct refresh_ctx c = refresh_rows(s, 0xd1);
    CHECK_EQ_INT(c.rows, 1);
    CHECK(!memcmp(c.last, live.id, 16));
    store_close(s);
}

struct event_check {
    const struct store_event *want; /* want[i] has seq i + 2 */
    int n;
};

/* Events 2..301 as put by whole_store_walks_and_bulk_events, then its event 302. */
static int check_bulk_cb(const struct store_event *ev, void *ctx)
{
    struct event_check *c = ctx;
    if (ev->seq == 302) return c->n++ == 300 ? 0 : -1;
    const struct store_event *w = &c->want[ev->seq - 2];
    if (ev->seq < 2 || ev->seq > 301 || ev->seq != (uint64_t)c->n + 2 || ev->time_ms != w->time_ms ||
        ev->type != w->type || memcmp(ev->player, w->player, 16) || ev->data_len != w->data_len ||
        (w->data_len && memcmp(ev->data, w->data, w->data_len)) || ev->has_hash != w->has_hash ||
        (w->has_hash && memcmp(ev->hash, w->hash, 32)))
        return -1;
    c->n++;
    return 0;
}

struct walked {
    int rows;
    uint64_t sum; /* of seqs (snapshots) or first hash bytes (blobs), and lengths */
    char first[16];
};

static int snapshot_walk_cb(const char *hunt, uint64_t seq, const uint8_t *data, size_t len,
                            void *ctx)
{
    struct walked *w = ctx;
    if (hunt[0] != 'w') return 0; /* the store is shared with the other tests */
    if (!w->rows++) snprintf(w->first, sizeof w->first, "%s", hunt);
    w->sum += seq * 1000 + len + (len && data[0] == 's' ? 100 : 0);
    return 0;
}

static int blob_walk_cb(const uint8_t hash[32], const uint8_t *data, size_t len, void *ctx)
{
    struct walked *w = ctx;
    if (hash[1] != 7) return 0; /* the store is shared with the other tests */
    w->rows++;
    w->sum += hash[0] * 1000u + len + (len && data[0] == 'b' ? 100 : 0);
    return w->rows == 5 ? 42 : 0; /* a callback's non-zero stops the walk */
}

/* The walks and the bulk append of `veltrix migrate` (on the store the other tests
 * wrote: only this test's rows are counted): every snapshot and blob, in key order, over more than one page (PostgreSQL walks by pages); store_put_events reads
 * back like single puts, in a transaction with single puts around it, and a taken
 * (hunt, seq) in it fails the whole transaction. */
TEST(whole_store_walks_and_bulk_events)
{
    struct store *s = open_store();
    if (!s) return;
    struct walked w = {0};
    CHECK_EQ_INT(store_each_snapshot(s, snapshot_walk_cb, &w), 0);
    CHECK_EQ_INT(store_each_blob(s, blob_walk_cb, &w), 0);
    CHECK_EQ_INT(w.rows, 0);
    CHECK_EQ_INT(store_put_snapshot(s, "wb", 3, (const uint8_t *)"s-b", 3), 0);
    CHECK_EQ_INT(store_put_snapshot(s, "wa", 2, (const uint8_t *)"x", 1), 0);
    CHECK_EQ_INT(store_each_snapshot(s, snapshot_walk_cb, &w), 0);
    CHECK_EQ_INT(w.rows, 2);
    CHECK_EQ_STR(w.first, "wa");
    CHECK_EQ_INT(w.sum, 2001 + 3103);
    CHECK_EQ_INT(store_begin(s), 0);
    for (int i = 0; i < 40; i++) { /* 40 blobs: more than one page */
        uint8_t h[32] = {(uint8_t)(39 - i), 7};
        CHECK_EQ_INT(store_put_blob(s, h, (const uint8_t *)"blob", 4), 0);
    }
    CHECK_EQ_INT(store_commit(s), 0);
    w = (struct walked){0};
    CHECK_EQ_INT(store_each_blob(s, blob_walk_cb, &w), 42);
    CHECK_EQ_INT(w.rows, 5);
    CHECK_EQ_INT(w.sum, (0 + 1 + 2 + 3 + 4) * 1000 + 5 * 104);

    /* bulk events between single ones, payloads empty, small and large */
    static uint8_t big[70000];
    memset(big, 'q', sizeof big);
    struct store_event evs[300];
    for (int i = 0; i < 300; i++)
        evs[i] = (struct store_event){"hq", (uint64_t)i + 2, 5000 + i, (uint8_t)(i % 7),
                                      {(uint8_t)i, 1}, i == 7 ? big : (const uint8_t *)"abc",
                                      i == 7 ? sizeof big : i == 8 ? 0 : 3,
                                      {(uint8_t)i, 9, 31}, i % 3 != 0, 0}; /* some rows without a hash */
    struct store_event one = {"hq", 1, 1, 1, {1}, (const uint8_t *)"abc", 3, {0}, 0, 0};
    struct store_event last = {"hq", 302, 1, 1, {1}, (const uint8_t *)"abc", 3, {0}, 0, 0};
    CHECK_EQ_INT(store_begin(s), 0);
    CHECK_EQ_INT(store_put_event(s, &one), 0);
    CHECK_EQ_INT(store_put_events(s, evs, 300), 0);
    CHECK_EQ_INT(store_put_event(s, &last), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    uint64_t seq = 0;
    CHECK_EQ_INT(store_last_seq(s, "hq", &seq), 0);
    CHECK_EQ_INT(seq, 302);
    struct event_check c = {evs, 0};
    CHECK_EQ_INT(store_each_event(s, "hq", 2, check_bulk_cb, &c), 0);
    CHECK_EQ_INT(c.n, 301);
    /* a taken seq inside the bulk: nothing of the transaction stays */
    struct store_event more[2] = {{"hq", 303, 1, 1, {1}, (const uint8_t *)"abc", 3, {0}, 0, 0},
                                  {"hq", 2, 1, 1, {1}, (const uint8_t *)"abc", 3, {0}, 0, 0}};
    CHECK_EQ_INT(store_begin(s), 0);
    int rc = store_put_events(s, more, 2);
    if (!rc) rc = store_commit(s);
    CHECK_EQ_INT(rc, STORE_ECONFLICT);
    store_rollback(s);
    CHECK_EQ_INT(store_last_seq(s, "hq", &seq), 0);
    CHECK_EQ_INT(seq, 302);
    /* outside a transaction: its own */
    CHECK_EQ_INT(store_put_events(s, more, 1), 0);
    CHECK_EQ_INT(store_last_seq(s, "hq", &seq), 0);
    CHECK_EQ_INT(seq, 303);
    store_close(s);
}

TEST(bad_url)
{
    struct store *s = NULL;
    char err[256];
    CHECK_EQ_INT(store_open("mysql://x", STORE_FSYNC_OFF, &s, err, sizeof err), STORE_EURL);
    CHECK(s == NULL);
    CHECK(strstr(err, "sqlite:") != NULL); /* names the schemes it knows */
    /* a password in a URL never reaches the message */
    CHECK_EQ_INT(store_open("mysql://u:secret-pw@h/db", STORE_FSYNC_OFF, &s, err, sizeof err),
                 STORE_EURL);
    CHECK(strstr(err, "secret-pw") == NULL);
    CHECK_EQ_INT(store_open("sqlitex:/tmp/a", STORE_FSYNC_OFF, &s, err, sizeof err), STORE_EURL);
}

/* Runs test as "<scheme>/<name>" against the backend of the current url. */
#define RUN_ON(scheme, name)                                                     \
    do {                                                                         \
        harness_cur_failed = 0;                                                  \
        name();                                                                  \
        if (harness_cur_failed) {                                                \
            harness_failed++;                                                    \
            fprintf(stderr, "not ok %s/%s\n", scheme, #name);                    \
        } else {                                                                 \
            harness_passed++;                                                    \
            printf("ok %s/%s\n", scheme, #name);                                 \
        }                                                                        \
    } while (0)

int main(void)
{
    const struct store_backend *const *be = store_backends();
    char cmd[160];
    for (size_t i = 0; be[i]; i++) {
        const char *scheme = store_backend_scheme(be[i]);
        strcpy(dir, "/tmp/veltrix-store-XXXXXX");
        if (!mkdtemp(dir)) return 1;
        if (store_backend_test_url(be[i], dir, url, sizeof url)) {
            printf("# %s: no test store of its own here (a wrapper, or its server is "
                   "absent), skipped\n", scheme);
            /* A server the caller provided (tests/pg/pgtmp.sh) that gave no database. */
            const char *pg = getenv("VELTRIX_TEST_PG_URL");
            if (!strcmp(scheme, "postgres") && pg && *pg) {
                fprintf(stderr, "not ok postgres: VELTRIX_TEST_PG_URL is set but no test "
                                "database could be made on it (see above)\n");
                harness_failed++;
            }
            rmdir(dir);
            continue;
        }
        RUN_ON(scheme, events_roundtrip);
        RUN_ON(scheme, event_hash_roundtrip);
        RUN_ON(scheme, snapshot_beside_log_writer);
        RUN_ON(scheme, rows_survive_reopen);
        RUN_ON(scheme, prune_is_bounded);
        RUN_ON(scheme, refresh_keeps_the_current_token);
        RUN_ON(scheme, refresh_prune_is_bounded);
        RUN_ON(scheme, snapshots_and_blobs);
        RUN_ON(scheme, large_payloads_roundtrip);
        RUN_ON(scheme, whole_store_walks_and_bulk_events);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    }
    /* The SQLite backend's schema migrations (they read the file with sqlite3 itself). */
    strcpy(dir, "/tmp/veltrix-store-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
    RUN(migrations_4_and_5);
    RUN(migration_6_keeps_current_refresh_rows);
    RUN(bad_url);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return HARNESS_DONE();
}
