/* bench/hash.c — what the hash chain costs per event (issue 17 target: <= 0.5 us of server
 * CPU per event), measured on the one call the write path adds: engine_apply extends the
 * hunt's chain with engine_chain_next (the event's canonical bytes, docs/FAIRNESS.md, and
 * one SHA-256 over them and the previous link). Nothing else on the write path hashes.
 *
 *   build/bench_hash [events=2000000]
 *
 * The events are the scans of the scan benchmark's shape (a random player, a code id of
 * the benchmark definition), each chained on the previous link; timed with the thread's
 * CPU clock. The HTTP rows before/after (bench/run.sh hashcost) measure the same cost as
 * part of a whole request, where it is within the runs' noise.
 * Prints a human line and "RESULT ns_per_event=... events=...". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000u;
    if (!n) {
        fprintf(stderr, "usage: bench_hash [events]\n");
        return 2;
    }
    enum { KINDS = 1024 };
    static struct event evs[KINDS];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < KINDS; i++) { /* players and codes vary; seq and time grow */
        struct event *e = &evs[i];
        memset(e, 0, sizeof *e);
        e->type = EVENT_SCAN;
        for (int b = 0; b < 16; b++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            e->player[b] = (uint8_t)x;
        }
        snprintf(e->u.scan.code, sizeof e->u.scan.code, "c%d", (int)(x % 1000));
    }
    uint8_t link[ENGINE_HASH_BYTES] = {0};
    double t0 = cpu_s();
    for (uint64_t i = 0; i < n; i++) {
        struct event *e = &evs[i % KINDS];
        e->seq = i + 1;
        e->time_ms = 1796115600000 + (int64_t)i;
        engine_chain_next(link, e, link);
    }
    double s = cpu_s() - t0;
    char hex[2 * ENGINE_HASH_BYTES + 1];
    engine_hash_hex(link, hex);
    printf("hash chain: %" PRIu64 " scan events chained in %.3f s of CPU = %.0f ns per event "
           "(last link %.16s...)\n", n, s, s * 1e9 / (double)n, hex);
    printf("RESULT ns_per_event=%.1f events=%" PRIu64 "\n", s * 1e9 / (double)n, n);
    return 0;
}
