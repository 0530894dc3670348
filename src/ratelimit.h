/* ratelimit.h — abuse limits: token buckets keyed by player or client address, and the
 * plausibility check on position jumps.
 *
 * Both live in fixed-size tables sized from configuration (keys_max), so an attacker
 * with many addresses or players cannot grow memory: when a table is full, the key
 * touched longest ago leaves (a bucket that has refilled loses nothing by leaving).
 * Time is an argument (milliseconds), so everything here is unit-testable and nothing
 * reads a clock. Keys are up to RL_KEY_BYTES bytes: a player id (16), an address
 * (16, IPv4 mapped into IPv6), or a player id plus rl_key_hunt() for positions. */
#ifndef VELTRIX_RATELIMIT_H
#define VELTRIX_RATELIMIT_H
#include <stddef.h>
#include <stdint.h>

#define RL_KEY_BYTES 24
/* A move may also cover max_speed x this much time (GPS jitter, clock skew). */
#define RL_MOVE_GRACE_MS 1000

enum rl_err {
    RL_OK = 0,
    RL_LIMITED = -1,    /* no token left: retry later */
    RL_IMPLAUSIBLE = -2, /* a position jump faster than max_speed */
    RL_EINVAL = -3,     /* a bad configuration value */
};
const char *rl_strerror(int err);

/* A sustained rate and a burst; per_s == 0 means the limit is off. */
struct rl_rate {
    double per_s;
    double burst;
};

/* Parses "RPS[:BURST]" (BURST defaults to 2 x RPS, at least 1); "0" turns the limit off.
 * Returns 0 or RL_EINVAL. */
int rl_rate_parse(const char *s, struct rl_rate *out);

/* The server's limits (command line names in main.c, defaults in the README). */
struct rl_config {
    struct rl_rate player;         /* --rate-player: requests per player */
    struct rl_rate ip;             /* --rate-ip: requests per client address */
    struct rl_rate players_per_ip; /* --players-per-ip-per-min, as a rate per second */
    double max_speed;              /* --max-speed: map units per second; 0: off */
    size_t keys_max;               /* --rate-keys-max: keys per table */
    int proxy_set;                 /* --trusted-proxy: requests from proxy (16 bytes, */
    uint8_t proxy[16];             /* IPv4 mapped) are keyed on X-Forwarded-For */
    struct rl_rate ip_tiles;       /* --rate-ip-tiles: tile reads per client address */
};

struct rl_stats {
    uint64_t allowed, limited;
    uint64_t evicted_live; /* keys that left a full table before their bucket refilled */
    uint64_t keys;         /* keys in the table now */
};

/* ---- token buckets (GCRA: one "theoretical arrival time" per key) -------------------- */
struct rl_limiter;

/* A limiter of rate for at most keys_max keys (rounded up); seed keys the hash so that
 * keys cannot be chosen to collide. NULL when out of memory or rate is invalid. */
struct rl_limiter *rl_limiter_create(struct rl_rate rate, size_t keys_max, uint64_t seed);
void rl_limiter_destroy(struct rl_limiter *l);
/* Takes one token for key (len <= RL_KEY_BYTES) at now_ms. RL_OK, or RL_LIMITED with the
 * wait until a token is there in *retry_ms (>= 1). A limiter whose rate is off always
 * allows and keeps no keys. */
int rl_take(struct rl_limiter *l, const void *key, size_t len, int64_t now_ms,
            int64_t *retry_ms);
/* The same, for a bucket the caller keeps (*tat, 0 for a full one: now_ms is never
 * negative) instead of a key in
 * the limiter's table: for keys that already have a home, such as a player, whose
 * record is at hand on every request (no hash, no eviction, no table to size). */
int rl_take_held(struct rl_limiter *l, int64_t *tat, int64_t now_ms, int64_t *retry_ms);
const struct rl_stats *rl_limiter_stats(const struct rl_limiter *l);

/* ---- positions ------------------------------------------------------------------------ */
struct rl_moves;

/* Remembers the last accepted position of at most keys_max keys. max_speed is in map
 * units per second; 0 turns the check off. NULL when out of memory. */
struct rl_moves *rl_moves_create(double max_speed, size_t keys_max, uint64_t seed);
void rl_moves_destroy(struct rl_moves *m);
/* Checks a move of key to (x, y) at now_ms against its last accepted position: RL_OK
 * (and remembers it), or RL_IMPLAUSIBLE when the distance is over
 * max_speed x (elapsed + RL_MOVE_GRACE_MS) (nothing is remembered). A key seen for the
 * first time, or again after it left the table, is accepted. */
int rl_move_check(struct rl_moves *m, const void *key, size_t len, double x, double y,
                  int64_t now_ms);
/* allowed = accepted moves, limited = implausible ones. */
const struct rl_stats *rl_moves_stats(const struct rl_moves *m);

/* Builds the key of (player, hunt) for rl_move_check: the 16-byte player id and a
 * 64-bit hash of the hunt id. */
void rl_key_hunt(uint8_t out[RL_KEY_BYTES], const uint8_t player[16], const char *hunt);

#endif
