/* bench/replay.c — replay rate and memory per player at scale (issue 3 targets: replay
 * >= 1,000,000 events/s, <= 256 bytes per player per hunt at 1M players).
 *
 *   build/bench_replay [players=1000000] [scans_per_player=2]
 *
 * Players scan scans_per_player of 1,000 codes each. The events are decided on a live
 * hunt and kept encoded as the log keeps them (type, player, payload); the measured part
 * decodes and applies all of them into a fresh hunt, as recovery does (the SQLite read is
 * not included: see bench/run.sh restart for the whole startup). Then the replayed hunt
 * is snapshotted and decoded back (size and times), and the digests must match.
 * Prints a human summary and one "RESULT key=value ..." line; exit 1 on a mismatch. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_hunt.h"
#include "engine.h"


struct rec {
    uint64_t seq;
    uint8_t player[16];
    uint8_t type;
    uint32_t off, len;
};

static void fail(const char *what)
{
    fprintf(stderr, "bench_replay: %s\n", what);
    exit(1);
}

int main(int argc, char **argv)
{
    uint32_t players = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000u;
    uint32_t per = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 2u;
    if (!players || !per || per > BENCH_CODES) fail("usage: bench_replay [players] [scans_per_player]");
    char *def = bench_definition("bench"), err[256];
    struct hunt *h = engine_hunt_create("bench"), *r = engine_hunt_create("bench"), *d = NULL;
    struct event ev;
    size_t n = (size_t)players * per + 1, data_cap = n * 8 + strlen(def) + 64, data_len = 0;
    struct rec *recs = malloc(n * sizeof *recs);
    uint8_t *data = malloc(data_cap);
    if (!h || !r || !recs || !data) fail("out of memory");
    if (engine_define(h, def, strlen(def), BENCH_SEED, 0, &ev, err, sizeof err)) fail(err);
    size_t k = 0;
    for (uint64_t i = 0;; i++) {
        if (i) {
            uint32_t p = (uint32_t)((i - 1) % players), j = (uint32_t)((i - 1) / players);
            uint8_t id[16];
            char code[16];
            if (j >= per) break;
            bench_player_id(id, p);
            snprintf(code, sizeof code, "c%u", (p * 7919u + j * 97u) % BENCH_CODES);
            if (engine_scan(h, id, code, 0, &ev)) fail("scan refused");
        }
        if (engine_apply(h, &ev, NULL, err, sizeof err)) fail(err);
        size_t len = event_encode(&ev, data + data_len, data_cap - data_len);
        if (len > data_cap - data_len) fail("event buffer too small");
        recs[k++] = (struct rec){ev.seq, {0}, ev.type, (uint32_t)data_len, (uint32_t)len};
        memcpy(recs[k - 1].player, ev.player, 16);
        data_len += len;
        if (i == 0) ev.u.define.json = NULL;
    }
    size_t base = engine_memory_bytes(r);
    double t = now_s();
    for (size_t i = 0; i < k; i++) {
        memcpy(ev.player, recs[i].player, 16);
        ev.seq = recs[i].seq;
        ev.time_ms = 0;
        if (event_decode(&ev, recs[i].type, data + recs[i].off, recs[i].len) ||
            engine_apply(r, &ev, NULL, err, sizeof err))
            fail("replay refused an event");
    }
    double replay_s = now_s() - t;
    if (engine_digest(r) != engine_digest(h)) fail("digest after replay differs");
    double per_player = (double)(engine_memory_bytes(r) - base) / players;
    engine_hunt_destroy(h);
    free(recs);
    free(data);

    uint8_t *snap;
    size_t snap_len;
    t = now_s();
    if (engine_snapshot_encode(r, &snap, &snap_len)) fail("snapshot encode failed");
    double enc_s = now_s() - t;
    t = now_s();
    if (engine_snapshot_decode("bench", snap, snap_len, &d, err, sizeof err)) fail(err);
    double dec_s = now_s() - t;
    if (engine_digest(d) != engine_digest(r)) fail("digest after snapshot decode differs");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(
        "replay: %zu events (%u players x %u scans) in %.3f s = %.0f events/s (decode + apply)\n",
        k, players, per, replay_s, k / replay_s);
    printf("memory: %.1f bytes/player/hunt at %u players (engine accounting, leaderboard "
           "included; %zu bytes in all)\n",
           per_player, players, engine_memory_bytes(r));
    printf("snapshot: %zu bytes (%.1f/player), encode %.3f s, decode %.3f s, digests equal\n",
           snap_len, (double)snap_len / players, enc_s, dec_s);
    printf("peak RSS of this process: %ld MiB\n", ru.ru_maxrss / 1024);
    printf("RESULT events=%zu players=%u replay_s=%.3f events_per_s=%.0f bytes_per_player=%.1f "
           "snapshot_bytes=%zu encode_s=%.3f decode_s=%.3f\n",
           k, players, replay_s, k / replay_s, per_player, snap_len, enc_s, dec_s);
    free(snap);
    free(def);
    engine_hunt_destroy(d);
    engine_hunt_destroy(r);
    return 0;
}
