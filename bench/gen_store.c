/* bench/gen_store.c — writes a Veltrix store with many events quickly, for the restart
 * benchmark (issue 3: a restart with 10M events in under 15 s).
 *
 *   build/bench_gen_store DB_PATH [events=10000000] [snapshot_tail=500000] [players]
 *
 * One hunt "restart" of 1,000 codes; players (default events/10, each also a row in the
 * players table) scan distinct codes, round-robin, so every event is one the engine
 * accepts: each is decided and applied on a live hunt, then appended through store.h in
 * transactions of 100,000 events (fsync off: this is a generator). When snapshot_tail > 0,
 * a snapshot is stored at seq events - snapshot_tail (so a restart restores it and
 * replays the tail; `veltrix serve --ignore-snapshots` replays everything). Prints the
 * final seq and digest of the hunt. The file must not exist yet. */
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

static void put_players(struct store *s, uint32_t players)
{
    if (store_begin(s)) fail("begin");
    for (uint32_t p = 0; p < players; p++) {
        char name[32];
        struct store_player row = {{0}, name, 1796115600000LL, 0};
        snprintf(name, sizeof name, "player %u", p);
        bench_player_id(row.id, p);
        if (store_put_player(s, &row)) fail("put player");
    }
    if (store_commit(s)) fail("commit players");
}

/* Decides, applies and appends event number i (0 = the definition). */
static void one_event(struct store *s, struct hunt *h, uint64_t i, uint32_t players,
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
    struct store_event se = {HUNT, ev.seq, ev.time_ms, ev.type, {0}, buf, len, {0}, 0};
    memcpy(se.player, ev.player, 16);
    if (store_put_event(s, &se)) fail("put event");
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

int main(int argc, char **argv)
{
    if (argc < 2) fail("usage: bench_gen_store DB_PATH [events] [snapshot_tail] [players]");
    uint64_t events = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000u;
    uint64_t tail = argc > 3 ? strtoull(argv[3], NULL, 10) : 500000u;
    uint32_t players = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : (uint32_t)(events / 10);
    if (events < 2 || !players || (events - 1) / players >= BENCH_CODES || tail >= events)
        fail("events/players must stay below 1000 scans per player, tail below events");
    if (access(argv[1], F_OK) == 0) fail("the store file exists already");
    char url[4200], err[256];
    struct store *s;
    snprintf(url, sizeof url, "sqlite:%s", argv[1]);
    if (store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err)) fail(err);
    char *def = bench_definition("restart bench");
    struct hunt *h = engine_hunt_create(HUNT);
    double t = now_s();
    put_players(s, players);
    for (uint64_t i = 0; i < events; i += TXN_EVENTS) {
        if (store_begin(s)) fail("begin");
        for (uint64_t k = i; k < events && k < i + TXN_EVENTS; k++) {
            one_event(s, h, k, players, def);
            if (tail && engine_seq(h) == events - tail) put_snapshot(s, h);
        }
        if (store_commit(s)) fail("commit");
    }
    printf("generated %" PRIu64 " events of hunt '" HUNT "', %u players, in %.1f s; seq %" PRIu64
           " digest %016" PRIx64 "\n",
           events, players, now_s() - t, engine_seq(h), engine_digest(h));
    engine_hunt_destroy(h);
    free(def);
    store_close(s);
    return 0;
}
