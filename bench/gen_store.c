/* bench/gen_store.c — writes a Veltrix store with many events quickly, for the restart
 * benchmark (issue 3: a restart with 10M events in under 15 s; issue 14: the same from
 * PostgreSQL).
 *
 *   build/bench_gen_store DB_PATH|postgres://URL [events=10000000] [snapshot_tail=500000] [players]
 *
 * One hunt "restart" of 1,000 codes; players (default events/10, each also a row in the
 * players table) scan distinct codes, round-robin, so every event is one the engine
 * accepts: each is decided and applied on a live hunt, then written. When snapshot_tail >
 * 0, a snapshot is stored at seq events - snapshot_tail (so a restart restores it and
 * replays the tail; `veltrix serve --ignore-snapshots` replays everything). Prints the
 * final seq and digest of the hunt.
 *
 * SQLite (a path; the file must not exist yet): appended through store.h in transactions
 * of 100,000 events (fsync off: this is a generator).
 *
 * PostgreSQL (a postgres:// URL of an empty database): store_open creates the schema, the
 * snapshot goes through store.h, and the rows go in as the server's own statements would
 * write them (the same columns and values, bench/gen_pg.h), by one of two loaders:
 *   BENCH_PG_LOAD=copy (default)  COPY ... FROM STDIN (binary), 1,000,000 rows a transaction
 *   BENCH_PG_LOAD=store           store_put_event/store_put_player in store_begin..commit
 *                                 batches of 100,000: the server's pipelined write path
 *                                 (its rate is printed: a measure of that path)
 * then VACUUM ANALYZE and CHECKPOINT, so that the restart measured next reads a settled
 * database (as one that autovacuum has seen), not one whose hint bits are still unset. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_hunt.h"
#include "engine.h"
#include "store.h"

#define TXN_EVENTS 100000u
#define HUNT "restart"

static void fail(const char *what)
{
    fprintf(stderr, "bench_gen_store: %s\n", what);
    exit(1);
}

#include "gen_pg.h"

/* Where rows go: the store (SQLite, or PostgreSQL's pipelined path) or a COPY loader. */
struct sink {
    struct store *s;
    struct pg_copy *copy; /* NULL: through the store */
};

static void sink_begin(struct sink *k)
{
    if (!k->copy && store_begin(k->s)) fail("begin");
}

static void sink_commit(struct sink *k)
{
    if (!k->copy && store_commit(k->s)) fail("commit");
}

static void put_players(struct sink *k, uint32_t players)
{
    if (k->copy) pg_copy_start(k->copy, PG_COPY_PLAYERS);
    sink_begin(k);
    for (uint32_t p = 0; p < players; p++) {
        char name[32];
        struct store_player row = {{0}, name, 1796115600000LL, 0};
        snprintf(name, sizeof name, "player %u", p);
        bench_player_id(row.id, p);
        if (k->copy) pg_copy_player(k->copy, &row);
        else if (store_put_player(k->s, &row)) fail("put player");
    }
    sink_commit(k);
    if (k->copy) pg_copy_end(k->copy);
}

/* Decides, applies and writes event number i (0 = the definition). */
static void one_event(struct sink *k, struct hunt *h, uint64_t i, uint32_t players,
                      const char *def)
{
    struct event ev;
    char err[256];
    uint8_t small[256], *buf = small;
    if (i == 0) {
        if (engine_define(h, def, strlen(def), BENCH_SEED, 0, &ev, err, sizeof err)) fail(err);
    } else {
        uint32_t p = (uint32_t)((i - 1) % players), j = (uint32_t)((i - 1) / players);
        char code[16];
        uint8_t id[16];
        bench_player_id(id, p);
        snprintf(code, sizeof code, "c%u", (p * 7919u + j * 97u) % BENCH_CODES);
        if (engine_scan(h, id, code, 0, &ev)) fail("scan refused (too many events per player?)");
    }
    if (engine_apply(h, &ev, NULL, err, sizeof err)) fail(err);
    size_t len = event_encode(&ev, buf, sizeof small);
    if (len > sizeof small) { /* the definition */
        if (!(buf = malloc(len))) fail("out of memory");
        event_encode(&ev, buf, len);
    }
    struct store_event se = {HUNT, ev.seq, ev.time_ms, ev.type, {0}, buf, len, {0}, 0, 0};
    memcpy(se.player, ev.player, 16);
    if (k->copy) pg_copy_event(k->copy, &se);
    else if (store_put_event(k->s, &se)) fail("put event");
    if (buf != small) free(buf);
}

static void put_snapshot(struct store *s, const struct hunt *h)
{
    uint8_t *buf;
    size_t len;
    if (engine_snapshot_encode(h, &buf, &len)) fail("snapshot encode");
    if (store_put_snapshot(s, HUNT, engine_seq(h), buf, len)) fail("put snapshot");
    printf("snapshot at seq %" PRIu64 ": %zu bytes\n", engine_seq(h), len);
    free(buf);
}

/* Opens the target: a new SQLite file, or an empty PostgreSQL database (with a COPY
 * connection unless BENCH_PG_LOAD=store). */
static void open_target(const char *target, struct sink *k)
{
    char url[4200], err[256];
    int pg = strstr(target, "://") != NULL;
    if (!pg && access(target, F_OK) == 0) fail("the store file exists already");
    snprintf(url, sizeof url, "%s%s", pg ? "" : "sqlite:", target);
    if (store_open(url, STORE_FSYNC_OFF, &k->s, err, sizeof err)) fail(err);
    if (!pg) return;
    uint64_t seq = 1;
    if (store_last_seq(k->s, HUNT, &seq) || seq) fail("the database has a hunt '" HUNT "' already");
    const char *load = getenv("BENCH_PG_LOAD");
    if (load && !strcmp(load, "store")) return;
    if (load && strcmp(load, "copy")) fail("BENCH_PG_LOAD is copy or store");
    k->copy = pg_copy_open(target);
}

int main(int argc, char **argv)
{
    if (argc < 2) fail("usage: bench_gen_store DB_PATH|postgres://URL [events] [snapshot_tail] [players]");
    uint64_t events = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000u;
    uint64_t tail = argc > 3 ? strtoull(argv[3], NULL, 10) : 500000u;
    uint32_t players = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : (uint32_t)(events / 10);
    if (events < 2 || !players || (events - 1) / players >= BENCH_CODES || tail >= events)
        fail("events/players must stay below 1000 scans per player, tail below events");
    struct sink k = {0};
    open_target(argv[1], &k);
    uint64_t txn = k.copy ? PG_COPY_TXN_ROWS : TXN_EVENTS;
    char *def = bench_definition("restart bench");
    struct hunt *h = engine_hunt_create(HUNT);
    double t = now_s(), tp;
    put_players(&k, players);
    tp = now_s() - t;
    for (uint64_t i = 0; i < events; i += txn) {
        if (k.copy) pg_copy_start(k.copy, PG_COPY_EVENTS);
        sink_begin(&k);
        for (uint64_t j = i; j < events && j < i + txn; j++) {
            one_event(&k, h, j, players, def);
            if (tail && engine_seq(h) == events - tail) put_snapshot(k.s, h);
        }
        sink_commit(&k);
        if (k.copy) pg_copy_end(k.copy);
    }
    double tw = now_s() - t;
    if (strstr(argv[1], "://"))
        printf("loaded by %s: %u players in %.1f s, %" PRIu64 " events in %.1f s (%.0f rows/s, "
               "deciding and encoding each event included)\n",
               k.copy ? "COPY (binary)" : "the store's pipelined inserts", players, tp, events,
               tw - tp, events / (tw - tp));
    if (k.copy) pg_copy_settle(k.copy);
    printf("generated %" PRIu64 " events of hunt '" HUNT "', %u players, in %.1f s; seq %" PRIu64
           " digest %016" PRIx64 "\n",
           events, players, now_s() - t, engine_seq(h), engine_digest(h));
    if (k.copy) pg_copy_close(k.copy);
    engine_hunt_destroy(h);
    free(def);
    store_close(k.s);
    return 0;
}
