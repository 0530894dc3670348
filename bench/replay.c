/* bench/replay.c — replay rate and memory per player at scale (issue 3 targets: replay
 * >= 1,000,000 events/s, <= 256 bytes per player per hunt at 1M players).
 *
 *   build/bench_replay [players=1000000] [scans_per_player=2]
 *   build/bench_replay --store URL [hunt=restart] [digest]
 *
 * Players scan scans_per_player of 1,000 codes each. The events are decided on a live
 * hunt and kept encoded as the log keeps them (type, player, payload); the measured part
 * decodes and applies all of them into a fresh hunt, as recovery does (the SQLite read is
 * not included: see bench/run.sh restart for the whole startup). Then the replayed hunt
 * is snapshotted and decoded back (size and times), and the digests must match.
 * With --store (issue 14: full replay from PostgreSQL >= 500,000 events/s): the hunt's
 * whole log as recovery reads it, from a store that bench_gen_store wrote
 * (postgres://... or sqlite:PATH): first read alone (store_each_event, rows counted),
 * then read + decode + apply into a fresh hunt (recovery's load_event), each timed, so
 * the report says where the time goes; the digest must equal the one given.
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
#include "store.h"


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

struct from_store {
    struct hunt *h; /* NULL: read only */
    uint64_t rows, bytes;
};

static int read_row(const struct store_event *se, void *arg)
{
    struct from_store *f = arg;
    f->rows++;
    f->bytes += se->data_len;
    return 0;
}

static int replay_row(const struct store_event *se, void *arg)
{
    struct from_store *f = arg;
    struct event ev;
    char why[256];
    if (event_read(&ev, se->seq, se->time_ms, se->type, se->player, se->data, se->data_len) ||
        engine_apply(f->h, &ev, NULL, why, sizeof why))
        return -1;
    f->rows++;
    return 0;
}

/* bench_replay --store URL [hunt] [digest]: the whole log of hunt from the store. */
static int from_store(const char *url, const char *hunt, const char *want)
{
    struct store *s;
    char err[256];
    if (store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err)) fail(err);
    struct from_store rd = {0}, rp = {engine_hunt_create(hunt), 0, 0};
    double t = now_s();
    if (store_each_event(s, hunt, 1, read_row, &rd)) fail("reading the log failed");
    double read_s = now_s() - t;
    t = now_s();
    if (!rp.h || store_each_event(s, hunt, 1, replay_row, &rp)) fail("replay refused an event");
    double replay_s = now_s() - t;
    char got[17];
    snprintf(got, sizeof got, "%016" PRIx64, engine_digest(rp.h));
    if (!rd.rows || rp.rows != rd.rows || (want && strcmp(got, want))) {
        fprintf(stderr, "bench_replay: %" PRIu64 " rows read, %" PRIu64 " replayed, digest %s "
                "(expected %s)\n", rd.rows, rp.rows, got, want ? want : "any");
        return 1;
    }
    printf("read alone: %" PRIu64 " events (%.1f MB of payload) in %.3f s = %.0f events/s\n",
           rd.rows, rd.bytes / 1e6, read_s, rd.rows / read_s);
    printf("replay (read + decode + apply): %.3f s = %.0f events/s; digest %s%s\n", replay_s,
           rp.rows / replay_s, got, want ? " (equal to the generator's)" : "");
    printf("RESULT events=%" PRIu64 " read_s=%.3f read_events_per_s=%.0f replay_s=%.3f "
           "events_per_s=%.0f digest=%s\n",
           rp.rows, read_s, rd.rows / read_s, replay_s, rp.rows / replay_s, got);
    engine_hunt_destroy(rp.h);
    store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "--store"))
        return from_store(argv[2], argc > 3 ? argv[3] : "restart", argc > 4 ? argv[4] : NULL);
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
