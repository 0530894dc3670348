/* Unit tests: recovery and the hash chain (recovery.c) on a real SQLite store — a log
 * written with its hashes recovers to the same head; rows without a stored hash (written
 * before the chain) get theirs recomputed; a stored hash that does not match the chain
 * recomputed from the log (a tampered store) stops recovery with a message naming the hunt
 * and the seq; a snapshot keeps the head. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "harness.h"
#include "recovery.h"
#include "store.h"

#define DEF                                                                                        \
    "{\"name\":\"r\",\"starts_at\":\"2020-01-01T00:00:00Z\",\"map\":{\"width\":8,\"height\":8},"   \
    "\"codes\":[{\"id\":\"c1\",\"points\":5,\"x\":1,\"y\":1},{\"id\":\"c2\",\"points\":7,\"x\":2,"  \
    "\"y\":2}],\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":4,\"h\":4,\"chest_range\":{"         \
    "\"prefix\":\"r\",\"count\":20,\"points\":1}}]}"
#define NOW 1796115600000LL

static char dir[] = "/tmp/veltrix-recovery-XXXXXX";
static char url[260], path[200];
static const uint8_t SEED[32] = "recovery test seed, 32 bytes...";

/* Puts ev (just applied to h) in s, with its hash when with_hash. */
static void put(struct store *s, struct hunt *h, const struct event *ev, int with_hash)
{
    uint8_t buf[4096];
    size_t n = event_encode(ev, buf, sizeof buf);
    struct store_event se = {.hunt = engine_hunt_id(h), .seq = ev->seq, .time_ms = ev->time_ms,
                             .type = ev->type, .data = buf, .data_len = n};
    memcpy(se.player, ev->player, 16);
    se.has_hash = with_hash;
    engine_head_hash(h, se.hash);
    CHECK_EQ_INT(store_put_event(s, &se), 0);
}

/* Writes hunt "r": a define, then scans and opens by 3 players; the first `bare` events
 * without a stored hash. Returns the head it reached (copied to head). */
static void write_hunt(int bare, uint8_t head[32], uint64_t *seq)
{
    struct store *s = NULL;
    char err[256];
    struct event ev;
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    if (!s) return;
    struct hunt *h = engine_hunt_create("r");
    CHECK_EQ_INT(store_begin(s), 0);
    CHECK_EQ_INT(engine_define(h, DEF, strlen(DEF), SEED, NOW, &ev, err, sizeof err), 0);
    CHECK_EQ_INT(engine_apply(h, &ev, NULL, NULL, 0), 0);
    put(s, h, &ev, bare < 1);
    for (unsigned p = 0; p < 3; p++) {
        uint8_t id[16] = {1, 2, 3, (uint8_t)p};
        const char *codes[] = {"c1", "c2"};
        for (int i = 0; i < 2; i++) {
            CHECK_EQ_INT(engine_scan(h, id, codes[i], NOW + p * 10 + i, &ev), 0);
            CHECK_EQ_INT(engine_apply(h, &ev, NULL, NULL, 0), 0);
            put(s, h, &ev, (int)ev.seq > bare);
        }
        CHECK_EQ_INT(engine_open(h, id, "z", NOW + p * 10 + 5, &ev), 0);
        CHECK_EQ_INT(engine_apply(h, &ev, NULL, NULL, 0), 0);
        put(s, h, &ev, (int)ev.seq > bare);
    }
    CHECK_EQ_INT(store_commit(s), 0);
    engine_head_hash(h, head);
    *seq = engine_seq(h);
    engine_hunt_destroy(h);
    store_close(s);
}

/* Recovers hunt "r": 0 with its head in head, or -1 with the message in err. */
static int recover(uint8_t head[32], char *err, size_t cap)
{
    struct store *s = NULL;
    struct hunt *h = NULL;
    struct recovery_config cfg = {0};
    struct recovery_stats st = {0};
    uint64_t from;
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, cap), 0);
    if (!s) return -1;
    int rc = recovery_load_hunt(s, &cfg, "r", &h, &from, &st, err, cap);
    if (!rc) engine_head_hash(h, head);
    engine_hunt_destroy(h);
    store_close(s);
    return rc;
}

static void reset_store(void)
{
    char f[260];
    unlink(path);
    snprintf(f, sizeof f, "%s-wal", path);
    unlink(f);
    snprintf(f, sizeof f, "%s-shm", path);
    unlink(f);
}

static void sql(const char *q)
{
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

TEST(honest_log_recovers_its_head)
{
    uint8_t want[32], got[32];
    uint64_t seq;
    char err[512] = "";
    reset_store();
    write_hunt(0, want, &seq);
    CHECK_EQ_INT(recover(got, err, sizeof err), 0);
    CHECK(memcmp(want, got, 32) == 0);
}

TEST(rows_before_the_chain_get_theirs_recomputed)
{
    uint8_t want[32], got[32];
    uint64_t seq;
    char err[512] = "";
    reset_store();
    write_hunt(4, want, &seq); /* seqs 1..4 without a stored hash */
    CHECK_EQ_INT(recover(got, err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  %s\n", err);
    CHECK(memcmp(want, got, 32) == 0);
}

TEST(tampered_hash_stops_recovery)
{
    uint8_t want[32], got[32];
    uint64_t seq;
    char err[512] = "";
    reset_store();
    write_hunt(0, want, &seq);
    sql("UPDATE events SET hash = zeroblob(32) WHERE hunt = 'r' AND seq = 5");
    CHECK_EQ_INT(recover(got, err, sizeof err), -1);
    CHECK(strstr(err, "hunt 'r'") && strstr(err, "seq 5") && strstr(err, "hash"));
    /* a changed owner (the hash still the honest one) is caught as well */
    reset_store();
    write_hunt(0, want, &seq);
    sql("UPDATE events SET player = x'01020302000000000000000000000000' "
        "WHERE hunt = 'r' AND seq = 4");
    err[0] = '\0';
    CHECK_EQ_INT(recover(got, err, sizeof err), -1);
    CHECK(strstr(err, "seq 4") != NULL);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/r.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", path);
    RUN(honest_log_recovers_its_head);
    RUN(rows_before_the_chain_get_theirs_recomputed);
    RUN(tampered_hash_stops_recovery);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return HARNESS_DONE();
}
