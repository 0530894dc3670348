/* bench_hunt.h — what the engine benchmarks share (bench_replay, bench_gen_store): a
 * monotonic clock, a hunt definition of BENCH_CODES codes "c0".."c999" and synthetic
 * UUIDv7-shaped player ids. Header-only: each bench C file builds into its own binary. */
#ifndef VELTRIX_BENCH_HUNT_H
#define VELTRIX_BENCH_HUNT_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_CODES 1000u

/* The benchmark hunts' seed (a server draws a random one per hunt). */
static const uint8_t BENCH_SEED[32] = "the benchmark hunts' 32-byte key";

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A definition named name with BENCH_CODES codes of 1..100 points (malloc'd). */
static inline char *bench_definition(const char *name)
{
    size_t cap = 128 + strlen(name) + (size_t)BENCH_CODES * 64, at;
    char *s = malloc(cap);
    if (!s) return NULL;
    at = (size_t)snprintf(s, cap, "{\"name\":\"%s\",\"map\":{\"width\":64,\"height\":64},\"codes\":[",
                          name);
    for (unsigned i = 0; i < BENCH_CODES; i++)
        at += (size_t)snprintf(s + at, cap - at, "%s{\"id\":\"c%u\",\"points\":%u,\"x\":1,\"y\":2}",
                               i ? "," : "", i, i % 100 + 1);
    snprintf(s + at, cap - at, "]}");
    return s;
}

/* Player p's id: UUIDv7 version and variant bits, p in the random part. */
static inline void bench_player_id(uint8_t id[16], uint32_t p)
{
    memset(id, 0, 16);
    id[0] = 0x01;
    id[6] = 0x70; /* version 7 */
    id[8] = 0x80; /* variant */
    memcpy(id + 9, &p, sizeof p);
}

#endif
