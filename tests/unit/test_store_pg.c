/* Unit tests: the PostgreSQL store (store_pg.c) beyond the shared suite of test_store.c —
 * the same workload on SQLite and on PostgreSQL reads back the same, row for row, through
 * every walk; walks longer than one page; a batch far over one pipeline flush, and a
 * conflict at its end that leaves nothing; reads inside a batch; a snapshot during a batch
 * that is rolled back; a connection the server dropped is made again (on another thread:
 * calls fail at once meanwhile); the postgresql:// alias; no password in any message
 * (malformed URLs, refused connections, wrong passwords); the veltrix_timeout_ms URL
 * parameter, and a server that accepts and never answers. Needs VELTRIX_TEST_PG_URL (tests/pg/pgtmp.sh); without it every test is
 * skipped and says so. */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "store.h"

static char pg_url[512], sq_url[256];
static char dir[] = "/tmp/veltrix-store-pg-XXXXXX";

static const struct store_backend *backend(const char *scheme)
{
    const struct store_backend *const *be = store_backends();
    for (size_t i = 0; be[i]; i++)
        if (!strcmp(store_backend_scheme(be[i]), scheme)) return be[i];
    return NULL;
}

/* A fresh, empty PostgreSQL database per call. */
static struct store *fresh_pg(void)
{
    struct store *s = NULL;
    char err[512];
    CHECK_EQ_INT(store_backend_test_url(backend("postgres"), dir, pg_url, sizeof pg_url), 0);
    int rc = store_open(pg_url, STORE_FSYNC_ALWAYS, &s, err, sizeof err);
    if (rc) fprintf(stderr, "  %s\n", err);
    CHECK(s != NULL);
    return s;
}

/* ---- a dump of everything a store holds, through its walks ---------------------------- */

struct dump {
    char *p;
    size_t len, cap;
    struct store *s;
};

static void out(struct dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct dump *d, const char *fmt, ...)
{
    va_list ap;
    char line[1024];
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (d->len + (size_t)n + 1 > d->cap) {
        d->cap = (d->len + (size_t)n + 1) * 2;
        d->p = realloc(d->p, d->cap);
    }
    memcpy(d->p + d->len, line, (size_t)n + 1);
    d->len += (size_t)n;
}

static unsigned long hash_bytes(const uint8_t *p, size_t n)
{
    unsigned long h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + p[i];
    return h ^ n;
}

static int dump_event(const struct store_event *ev, void *ctx)
{
    out(ctx, "ev %s %llu %lld %u %02x%02x %zu %lx\n", ev->hunt, (unsigned long long)ev->seq,
        (long long)ev->time_ms, ev->type, ev->player[0], ev->player[15], ev->data_len,
        hash_bytes(ev->data, ev->data_len));
    return 0;
}

static int dump_snapshot(uint64_t seq, const uint8_t *data, size_t len, void *ctx)
{
    out(ctx, "snap %llu %zu %lx\n", (unsigned long long)seq, len, hash_bytes(data, len));
    return 0;
}

static int dump_hunt(const char *hunt, void *ctx)
{
    struct dump *d = ctx;
    out(d, "hunt %s\n", hunt);
    int rc = store_each_event(d->s, hunt, 1, dump_event, d);
    return rc ? rc : store_get_snapshot(d->s, hunt, dump_snapshot, d) < 0;
}

static int dump_player(const struct store_player *p, void *ctx)
{
    out(ctx, "pl %02x%02x %s %lld %u\n", p->id[0], p->id[1], p->display_name,
        (long long)p->created_ms, p->gen);
    return 0;
}

static int dump_refresh(const struct store_refresh *r, void *ctx)
{
    out(ctx, "rt %02x%02x %02x %u %lld %d\n", r->id[0], r->id[1], r->player[0], r->gen,
        (long long)r->expires_ms, r->used);
    return 0;
}

static int dump_idem(const struct store_idem *i, void *ctx)
{
    out(ctx, "idem %s|%s %02x %d %zu %lx %lld\n", i->scope, i->key, i->req_hash[31], i->status,
        i->body_len, hash_bytes((const uint8_t *)i->body, i->body_len), (long long)i->created_ms);
    return 0;
}

static int dump_tile(const struct store_tile *t, void *ctx)
{
    out(ctx, "tile %s %u %u %02x %s\n", t->hunt, t->x, t->y, t->hash[0], t->ctype);
    return 0;
}

static int dump_mapver(const struct store_map_version *v, void *ctx)
{
    out(ctx, "map %s %lld %zu %lx\n", v->hunt, (long long)v->version, v->len,
        hash_bytes(v->data, v->len));
    return 0;
}

static char *dump_store(struct store *s)
{
    struct dump d = {NULL, 0, 0, s};
    out(&d, "-\n");
    CHECK_EQ_INT(store_each_hunt(s, dump_hunt, &d), 0);
    CHECK_EQ_INT(store_each_player(s, dump_player, &d), 0);
    CHECK_EQ_INT(store_each_refresh(s, 5000, dump_refresh, &d), 0);
    CHECK_EQ_INT(store_each_idem(s, 100, dump_idem, &d), 0);
    CHECK_EQ_INT(store_each_tile(s, dump_tile, &d), 0);
    CHECK_EQ_INT(store_each_map_version(s, dump_mapver, &d), 0);
    for (int b = 0; b < 40; b++) {
        uint8_t h[32] = {(uint8_t)b};
        out(&d, "blob %d ", b);
        if (store_get_blob(s, h, dump_snapshot, &d) == 0) out(&d, "none\n");
    }
    return d.p;
}

/* ---- the same workload on both backends ------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* One batch of mixed rows; a taken seq one time in six (the whole batch then goes).
 * Every row is put whatever came before, so that both backends draw the same random
 * numbers (SQLite reports a conflict at the put, PostgreSQL at the commit). Returns the
 * batch's first error or the commit's result. */
static int batch(struct store *s, uint64_t *next_seq, int round)
{
    static const char *const hunts[] = {"alpha", "b-2", "c_3", "zeta"};
    uint8_t data[2000];
    int rc = store_begin(s), conflict = rnd(6) == 0;
#define DO(call)                                                                                   \
    do {                                                                                           \
        int r_ = (call);                                                                           \
        if (!rc) rc = r_;                                                                          \
    } while (0)
    for (int i = 0; i < 30; i++) {
        int h = (int)rnd(4);
        size_t len = rnd(5) == 0 ? 600 + rnd(1400) : rnd(80);
        for (size_t k = 0; k < len; k++)
            data[k] = (uint8_t)rnd(256);
        uint64_t seq = conflict && i == 20 && next_seq[h] > 1 ? 1 : next_seq[h]++;
        struct store_event ev = {hunts[h], seq, round * 100 + i, (uint8_t)rnd(256), {(uint8_t)i},
                                 data,     len, {0}, 0, 0};
        ev.player[15] = (uint8_t)h;
        DO(store_put_event(s, &ev));
        char name[32], key[32], scope[48];
        snprintf(name, sizeof name, "Pl\xc3\xa4yer %u", rnd(1000));
        struct store_player p = {{(uint8_t)rnd(50), (uint8_t)rnd(3)}, name, round, rnd(9)};
        DO(store_put_player(s, &p));
        struct store_refresh t = {
            {(uint8_t)rnd(60), 1}, {(uint8_t)i}, rnd(5), 3000 + rnd(4000), (int)rnd(2)};
        DO(store_put_refresh(s, &t));
        snprintf(scope, sizeof scope, "p%u POST /v1/hunts/x/scan\xff", rnd(4)); /* raw bytes */
        snprintf(key, sizeof key, "k-%u", rnd(200));
        struct store_idem d = {scope,
                               key,
                               {[31] = (uint8_t)i},
                               200 + (int)rnd(3),
                               "{\"ok\":1}",
                               (size_t)rnd(9),
                               100 + round * 10 + rnd(10),
                               NULL};
        DO(store_put_idem(s, &d));
        uint8_t bh[32] = {(uint8_t)rnd(40)};
        if (rnd(3) == 0) DO(store_put_blob(s, bh, data, len)); /* a known hash: kept */
        struct store_tile tile = {
            hunts[h], rnd(8), rnd(8), {(uint8_t)rnd(40)}, rnd(2) ? "image/png" : "image/webp;\x01"};
        DO(store_put_tile(s, &tile));
    }
    struct store_map_version mv = {hunts[round % 4], round, round - 2, data, 100 + (size_t)round};
    DO(store_put_map_version(s, &mv));
    if (round % 5 == 4) DO(store_prune_idem(s, 100 + round * 10 - 30));
#undef DO
    if (!rc) rc = store_commit(s);
    if (rc) store_rollback(s);
    return rc;
}

static int max_seq(const struct store_event *ev, void *ctx)
{
    *(uint64_t *)ctx = ev->seq;
    return 0;
}

static void workload(struct store *s, int *conflicts)
{
    static const char *const hunts[] = {"alpha", "b-2", "c_3", "zeta"};
    uint64_t next[4] = {1, 1, 1, 1};
    for (int round = 1; round <= 40; round++) {
        int rc = batch(s, next, round);
        if (rc == STORE_ECONFLICT)
            ++*conflicts;
        else
            CHECK_EQ_INT(rc, 0);
        for (int h = 0; rc && h < 4; h++) { /* after a rollback: the durable ends */
            uint64_t last = 0;
            CHECK_EQ_INT(store_each_event(s, hunts[h], 1, max_seq, &last), 0);
            next[h] = last + 1;
        }
        if (round % 7 == 0) {
            uint8_t snap[64] = {(uint8_t)round};
            CHECK_EQ_INT(
                store_put_snapshot(s, hunts[round % 4], next[round % 4] - 1, snap, (size_t)round),
                0);
        }
    }
}

TEST(same_rows_as_sqlite)
{
    struct store *pg = fresh_pg(), *sq = NULL;
    char err[256];
    CHECK_EQ_INT(store_open(sq_url, STORE_FSYNC_OFF, &sq, err, sizeof err), 0);
    if (!pg || !sq) return;
    int c_pg = 0, c_sq = 0;
    uint64_t seed = rng;
    workload(pg, &c_pg);
    rng = seed;
    workload(sq, &c_sq);
    CHECK_EQ_INT(c_pg, c_sq);
    CHECK(c_pg > 0); /* the conflicts were exercised */
    char *a = dump_store(pg), *b = dump_store(sq);
    CHECK(strlen(a) > 10000);
    if (strcmp(a, b)) {
        size_t i = 0;
        while (a[i] == b[i])
            i++;
        while (i && a[i - 1] != '\n')
            i--;
        fprintf(stderr, "  postgres: %.200s\n  sqlite:   %.200s\n", a + i, b + i);
        CHECK(!"the dumps differ");
    }
    free(a);
    free(b);
    store_close(sq);
    /* and again after reopening */
    char *c = dump_store(pg);
    store_close(pg);
    struct store *again = NULL;
    CHECK_EQ_INT(store_open(pg_url, STORE_FSYNC_ALWAYS, &again, err, sizeof err), 0);
    if (!again) return;
    char *d = dump_store(again);
    CHECK(!strcmp(c, d));
    free(c);
    free(d);
    store_close(again);
}

struct count {
    uint64_t n, last;
    int ordered;
};

static int count_event(const struct store_event *ev, void *ctx)
{
    struct count *c = ctx;
    if (ev->seq != c->last + 1) c->ordered = 0;
    c->last = ev->seq;
    c->n++;
    return 0;
}

static int count_player(const struct store_player *p, void *ctx)
{
    ((struct count *)ctx)->n++;
    return 0;
}

static int count_idem(const struct store_idem *i, void *ctx)
{
    struct count *c = ctx;
    if ((uint64_t)i->created_ms < c->last) c->ordered = 0;
    c->last = (uint64_t)i->created_ms;
    c->n++;
    return 0;
}

static int stop_at_5000(const struct store_event *ev, void *ctx)
{
    return ++((struct count *)ctx)->n == 5000 ? 42 : 0;
}

/* 20,000 events in one batch (pipeline flushes every 64 KB), read back over pages; a
 * conflict at the very end of the next big batch leaves nothing of it. */
TEST(big_batches_and_pages)
{
    struct store *s = fresh_pg();
    if (!s) return;
    uint8_t pl[16] = {1};
    CHECK_EQ_INT(store_begin(s), 0);
    for (uint64_t seq = 1; seq <= 20000; seq++) {
        struct store_event ev = {"big", seq, 1, 1, {0}, pl, 16, {0}, 0, 0};
        CHECK_EQ_INT(store_put_event(s, &ev), 0);
        struct store_player p = {{(uint8_t)seq, (uint8_t)(seq >> 8)}, "P", 1, 1};
        if (seq <= 9000) CHECK_EQ_INT(store_put_player(s, &p), 0);
        char key[16];
        snprintf(key, sizeof key, "%05llu", (unsigned long long)(seq % 9000));
        static const char *const hunt_of[] = {"ha", "hb", NULL}; /* by key: 3,000 each */
        struct store_idem i = {"s", key, {0}, 200, "{}", 2, (int64_t)(seq % 9000) / 3,
                               hunt_of[seq % 9000 % 3]};
        CHECK_EQ_INT(store_put_idem(s, &i), 0);
    }
    CHECK_EQ_INT(store_commit(s), 0);
    struct count c = {0, 0, 1};
    CHECK_EQ_INT(store_each_event(s, "big", 1, count_event, &c), 0);
    CHECK_EQ_INT(c.n, 20000);
    CHECK(c.ordered);
    c = (struct count){0, 4999, 1};
    CHECK_EQ_INT(store_each_event(s, "big", 5000, count_event, &c), 0);
    CHECK_EQ_INT(c.n, 15001);
    c = (struct count){0, 0, 1};
    CHECK_EQ_INT(store_each_event(s, "big", 1, stop_at_5000, &c), 42); /* stops mid-page */
    c = (struct count){0, 0, 1};
    CHECK_EQ_INT(store_each_player(s, count_player, &c), 0);
    CHECK_EQ_INT(c.n, 9000);
    c = (struct count){0, 0, 1};
    CHECK_EQ_INT(store_each_idem(s, 0, count_idem, &c), 0);
    CHECK_EQ_INT(c.n, 9000);
    CHECK(c.ordered);
    c = (struct count){0, 0, 1}; /* a hunt's records (several nodes: taken over with it) */
    CHECK_EQ_INT(store_each_idem_of_hunt(s, "ha", 0, count_idem, &c), 0);
    CHECK_EQ_INT(c.n, 3000);
    CHECK(c.ordered);
    c = (struct count){0, 0, 1};
    CHECK_EQ_INT(store_each_idem_of_hunt(s, "ha", 1000, count_idem, &c), 0);
    CHECK_EQ_INT(c.n, 2000); /* keys 3000..8999 of "ha": created_ms = key / 3 >= 1000 */
    c = (struct count){0, 0, 1};
    CHECK_EQ_INT(store_each_idem_of_hunt(s, "none", 0, count_idem, &c), 0);
    CHECK_EQ_INT(c.n, 0);
    CHECK_EQ_INT(store_begin(s), 0);
    for (uint64_t seq = 20001; seq <= 30000; seq++) {
        struct store_event ev = {"big", seq, 1, 1, {0}, pl, 16, {0}, 0, 0};
        CHECK_EQ_INT(store_put_event(s, &ev), 0);
    }
    struct store_event dup = {"big", 20000, 1, 1, {0}, pl, 16, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &dup), 0); /* sent, not yet answered */
    CHECK_EQ_INT(store_commit(s), STORE_ECONFLICT);
    store_rollback(s);
    uint64_t last = 0;
    CHECK_EQ_INT(store_last_seq(s, "big", &last), 0);
    CHECK_EQ_INT(last, 20000);
    /* the handle goes on */
    CHECK_EQ_INT(store_begin(s), 0);
    struct store_event next = {"big", 20001, 1, 1, {0}, pl, 16, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &next), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    CHECK_EQ_INT(store_last_seq(s, "big", &last), 0);
    CHECK_EQ_INT(last, 20001);
    /* Every hunt's head in one read, in the order asked; 0 for a hunt without events. */
    static char many[2500][16];
    static const char *ids[2503];
    static uint64_t seqs[2503];
    ids[0] = "none", ids[1] = "big", ids[2] = "a\"b\\c"; /* quoted in the text[] literal */
    for (int i = 0; i < 2500; i++) {
        snprintf(many[i], sizeof many[i], "m%d", i);
        ids[3 + i] = many[i];
    }
    CHECK_EQ_INT(store_begin(s), 0);
    for (uint64_t q = 1; q <= 3; q++) {
        struct store_event ev = {"a\"b\\c", q, 1, 1, {0}, pl, 16, {0}, 0, 0};
        CHECK_EQ_INT(store_put_event(s, &ev), 0);
    }
    struct store_event m = {"m2222", 1, 1, 1, {0}, pl, 16, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &m), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    memset(seqs, 0xff, sizeof seqs);
    CHECK_EQ_INT(store_heads(s, ids, 2503, seqs), 0); /* three queries of at most 1,000 */
    CHECK_EQ_INT((int)seqs[0], 0);
    CHECK_EQ_INT((int)seqs[1], 20001);
    CHECK_EQ_INT((int)seqs[2], 3);
    int others = 0;
    for (int i = 0; i < 2500; i++) others += i != 2222 && seqs[3 + i] != 0;
    CHECK_EQ_INT(others, 0);
    CHECK_EQ_INT((int)seqs[3 + 2222], 1);
    store_close(s);
}

static int snap_seq(uint64_t seq, const uint8_t *data, size_t len, void *ctx)
{
    *(uint64_t *)ctx = len == 4 && !memcmp(data, "snap", 4) ? seq : 999;
    return 0;
}

/* A read on the writing handle inside a batch sees the batch (as SQLite's does); after a
 * conflict, reads fail and the commit reports the conflict. A snapshot written during a
 * batch is its own transaction: it stays when the batch is rolled back. */
TEST(reads_and_snapshots_inside_a_batch)
{
    struct store *s = fresh_pg(), *other = NULL;
    char err[256];
    if (!s) return;
    CHECK_EQ_INT(store_open(pg_url, STORE_FSYNC_ALWAYS, &other, err, sizeof err), 0);
    uint64_t last = 0, got = 0;
    CHECK_EQ_INT(store_begin(s), 0);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        struct store_event ev = {"r", seq, 1, 1, {0}, (const uint8_t *)"x", 1, {0}, 0, 0};
        CHECK_EQ_INT(store_put_event(s, &ev), 0);
    }
    CHECK_EQ_INT(store_last_seq(s, "r", &last), 0);
    CHECK_EQ_INT(last, 3);
    CHECK_EQ_INT(store_last_seq(other, "r", &last), 0); /* not committed yet */
    CHECK_EQ_INT(last, 0);
    struct store_event ev4 = {"r", 4, 1, 1, {0}, (const uint8_t *)"x", 1, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &ev4), 0); /* back into the pipeline */
    CHECK_EQ_INT(store_commit(s), 0);
    CHECK_EQ_INT(store_last_seq(other, "r", &last), 0);
    CHECK_EQ_INT(last, 4);

    CHECK_EQ_INT(store_begin(s), 0);
    struct store_event dup = {"r", 2, 1, 1, {0}, (const uint8_t *)"x", 1, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &dup), 0);
    CHECK_EQ_INT(store_put_snapshot(s, "r", 4, (const uint8_t *)"snap", 4), 0);
    CHECK(store_last_seq(s, "r", &last) != 0); /* the batch has failed */
    CHECK_EQ_INT(store_commit(s), STORE_ECONFLICT);
    store_rollback(s);
    CHECK_EQ_INT(store_get_snapshot(other, "r", snap_seq, &got), 1);
    CHECK_EQ_INT(got, 4);
    got = 0;
    CHECK_EQ_INT(store_get_snapshot(s, "r", snap_seq, &got), 1);
    CHECK_EQ_INT(got, 4);
    CHECK_EQ_INT(store_delete_snapshot(s, "r"), 0);
    CHECK_EQ_INT(store_get_snapshot(other, "r", snap_seq, &got), 0);
    store_close(other);
    store_close(s);
}

/* Ends every connection to the test database (the store's) and waits until they are gone. */
static void drop_connections(PGconn *admin)
{
    char sql[256];
    const char *db = strrchr(pg_url, '/') + 1;
    int n = (int)strcspn(db, "?");
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='%.*s'", n, db);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE datname='%.*s'", n, db);
    for (int i = 0; i < 200; i++) {
        PGresult *r = PQexec(admin, sql);
        int left = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (left == 0) return;
        usleep(50000);
    }
}

/* Calls store_ping until it answers (a reconnection runs on a thread of its own: calls
 * fail at once meanwhile); how many failed, or -1 when it never came back (30 s). */
static int ping_until_back(struct store *s)
{
    for (int failed = 0; failed < 3000; failed++) {
        if (!store_ping(s)) return failed;
        usleep(10000);
    }
    return -1;
}

/* The server ends the store's connection: calls fail at once (never wait) until a
 * reconnection made on another thread is ready; a batch cut off by it fails as a whole,
 * nothing of it stays, and the next batch (the log writer retries) goes through on a new
 * connection. */
TEST(reconnects_after_the_server_drops_it)
{
    struct store *s = fresh_pg();
    if (!s) return;
    PGconn *admin = PQconnectdb(getenv("VELTRIX_TEST_PG_URL"));
    CHECK(PQstatus(admin) == CONNECTION_OK);
    drop_connections(admin);
    CHECK(ping_until_back(s) >= 1); /* the drop is noticed by the first */
    CHECK_EQ_INT(store_begin(s), 0);
    struct store_event ev = {"c", 1, 1, 1, {0}, (const uint8_t *)"x", 1, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &ev), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    uint64_t last = 0;
    CHECK_EQ_INT(store_last_seq(s, "c", &last), 0);
    CHECK_EQ_INT(last, 1);
    /* cut in the middle of a batch */
    CHECK_EQ_INT(store_begin(s), 0);
    ev.seq = 2;
    CHECK_EQ_INT(store_put_event(s, &ev), 0);
    drop_connections(admin);
    ev.seq = 3;
    store_put_event(s, &ev); /* may already see the connection gone */
    CHECK_EQ_INT(store_commit(s), STORE_EIO);
    store_rollback(s);
    CHECK(ping_until_back(s) >= 0);
    CHECK_EQ_INT(store_begin(s), 0);
    ev.seq = 2;
    CHECK_EQ_INT(store_put_event(s, &ev), 0);
    CHECK_EQ_INT(store_commit(s), 0);
    CHECK_EQ_INT(store_last_seq(s, "c", &last), 0);
    CHECK_EQ_INT(last, 2);
    PQfinish(admin);
    store_close(s);
}

TEST(postgresql_scheme)
{
    struct store *s = NULL;
    char u[600], err[256];
    CHECK_EQ_INT(store_backend_test_url(backend("postgres"), dir, pg_url, sizeof pg_url), 0);
    snprintf(u, sizeof u, "postgresql%s", pg_url + strlen("postgres"));
    CHECK_EQ_INT(store_open(u, STORE_FSYNC_ALWAYS, &s, err, sizeof err), 0);
    if (s) CHECK_EQ_INT(store_ping(s), 0);
    store_close(s);
}

/* Opens url, which must fail; the message must name what went wrong and never the
 * password. */
static void refused(const char *url, int want_rc, const char *want, const char *secret)
{
    struct store *s = NULL;
    char err[1024] = "";
    int rc = store_open(url, STORE_FSYNC_ALWAYS, &s, err, sizeof err);
    CHECK_EQ_INT(rc, want_rc);
    CHECK(s == NULL);
    if (!strstr(err, want) || strstr(err, secret) || strchr(err, '\n')) {
        fprintf(stderr, "  for %s: %s\n", url, err);
        CHECK(!"message");
    }
}

TEST(no_password_in_messages)
{
    char u[600];
    const char *base = getenv("VELTRIX_TEST_PG_URL");
    PGconn *admin = PQconnectdb(base);
    CHECK(PQstatus(admin) == CONNECTION_OK);
    /* pgtmp.sh's pg_hba.conf: the role veltrix_pw must give its password (scram) */
    PQclear(PQexec(admin, "DROP ROLE IF EXISTS veltrix_pw"));
    PQclear(PQexec(admin, "CREATE ROLE veltrix_pw LOGIN PASSWORD 'right-Pw-1'"));
    CHECK_EQ_INT(store_backend_test_url(backend("postgres"), dir, pg_url, sizeof pg_url), 0);
    PQconninfoOption *o = PQconninfoParse(pg_url, NULL), *port = NULL;
    for (PQconninfoOption *i = o; i && i->keyword; i++)
        if (!strcmp(i->keyword, "port")) port = i;
    snprintf(u, sizeof u, "postgres://veltrix_pw:wrong-Secret-9@127.0.0.1:%s/postgres",
             port && port->val ? port->val : "5432");
    refused(u, STORE_EIO, "password authentication failed", "wrong-Secret-9");
    snprintf(u, sizeof u, "postgres://veltrix_pw:right-Pw-1@127.0.0.1:%s/postgres",
             port && port->val ? port->val : "5432");
    struct store *s = NULL;
    char err[512];
    CHECK_EQ_INT(store_open(u, STORE_FSYNC_ALWAYS, &s, err, sizeof err), STORE_EIO);
    CHECK(strstr(err, "permission denied") && !strstr(err, "right-Pw-1")); /* no CREATE */
    PQconninfoFree(o);
    /* nobody listens on port 1 */
    refused("postgres://u:Secret-1x@127.0.0.1:1/db", STORE_EIO, "postgres://u:***@127.0.0.1:1/db",
            "Secret-1x");
    refused("postgres://u:Secret-2x@127.0.0.1:1/db?password=Secret-3y", STORE_EIO, "password=***",
            "Secret-3y");
    /* libpq cannot parse these: its messages quote the URL */
    refused("postgres://u:Sec%zzret@h/db", STORE_EURL, "malformed postgres url", "Sec");
    refused("postgres://u:Secret-4x@[::1/db", STORE_EURL, "malformed postgres url", "Secret-4x");
    refused("postgres://u:Secret-5x@h/db?bogus=1", STORE_EURL, "malformed", "Secret-5x");
    refused("postgres://u:Secret-6x@h:notaport/db", STORE_EIO, "port", "Secret-6x");
    refused("postgres:u:Secret-7x@h/db", STORE_EURL, "postgres://", "Secret-7x");
    refused("postgres://u:Sec/ret-8x@127.0.0.1:1/db", STORE_EIO, "u:***@127.0.0.1:1/db", "Sec");
    refused("postgres://u:Secret-9x@h/db?bogus=1", STORE_EURL, "parameter: \"bogus\"", "Secret");
    char shown[128];
    store_url_redact("postgresql://u:p@ss:w@rd@h:5/d?x=1&password=Pw2&y=2", shown, sizeof shown);
    CHECK_EQ_STR(shown, "postgresql://u:***@h:5/d?x=1&password=***&y=2");
    store_url_redact("postgres://h:5/d", shown, sizeof shown);
    CHECK_EQ_STR(shown, "postgres://h:5/d");
    store_url_redact("postgres://u:Secret-long-password@h/d", shown, 20); /* truncated */
    CHECK(!strstr(shown, "Secret"));
    PQclear(PQexec(admin, "DROP ROLE IF EXISTS veltrix_pw"));
    PQfinish(admin);
}

/* veltrix_timeout_ms is veltrix's own URL parameter, taken out before libpq sees the URL;
 * a bad value is a bad URL. A server that accepts the connection and never answers (a
 * socket nobody reads) fails the open after connect_timeout, with the URL redacted. */
TEST(timeout_parameter_and_a_silent_server)
{
    char u[700], err[512];
    struct store *s = NULL;
    CHECK_EQ_INT(store_backend_test_url(backend("postgres"), dir, pg_url, sizeof pg_url), 0);
    const char *sep = strchr(pg_url, '?') ? "&" : "?";
    snprintf(u, sizeof u, "%s%sveltrix_timeout_ms=1500", pg_url, sep);
    CHECK_EQ_INT(store_open(u, STORE_FSYNC_ALWAYS, &s, err, sizeof err), 0);
    if (s) CHECK_EQ_INT(store_ping(s), 0);
    store_close(s);
    snprintf(u, sizeof u, "postgres://h/db?veltrix_timeout_ms=1500&connect_timeout=1&x=1");
    refused(u, STORE_EURL, "parameter: \"x\"", "1500"); /* taken out: libpq names the next */
    refused("postgres://u:Pw-1@h/db?veltrix_timeout_ms=soon", STORE_EURL, "veltrix_timeout_ms",
            "Pw-1");
    refused("postgres://u:Pw-1@h/db?veltrix_timeout_ms=5", STORE_EURL, "100 to", "Pw-1");
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(ls >= 0 && !bind(ls, (struct sockaddr *)&a, sizeof a) && !listen(ls, 8) &&
          !getsockname(ls, (struct sockaddr *)&a, &alen));
    snprintf(u, sizeof u, "postgres://u:Silent-9@127.0.0.1:%d/db?connect_timeout=1",
             ntohs(a.sin_port));
    refused(u, STORE_EIO, "timeout expired", "Silent-9");
    close(ls);
}

int main(void)
{
    if (!getenv("VELTRIX_TEST_PG_URL") || !*getenv("VELTRIX_TEST_PG_URL")) {
        printf("# VELTRIX_TEST_PG_URL is not set (tests/pg/pgtmp.sh -- %s): skipped\n",
               "build/test_store_pg");
        return HARNESS_DONE();
    }
    if (!mkdtemp(dir)) return 1;
    snprintf(sq_url, sizeof sq_url, "sqlite:%s/parity.db", dir);
    RUN(same_rows_as_sqlite);
    RUN(big_batches_and_pages);
    RUN(reads_and_snapshots_inside_a_batch);
    RUN(reconnects_after_the_server_drops_it);
    RUN(postgresql_scheme);
    RUN(no_password_in_messages);
    RUN(timeout_parameter_and_a_silent_server);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return HARNESS_DONE();
}
