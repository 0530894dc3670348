/* ratelimit.c — see ratelimit.h.
 *
 * Design: a set-associative table (8 ways per set, sets a power of two) of fixed slots,
 * allocated once. A key hashes (with a secret seed) to one set; a miss takes the slot of
 * that set touched longest ago. Token buckets use GCRA: a slot keeps the "theoretical
 * arrival time" tat in nanoseconds; a request at now is allowed when tat - now <= tau
 * (tau = (burst - 1) x interval) and pushes tat to max(tat, now) + interval. A slot whose
 * tat has passed is a full bucket, so it is the natural one to evict: nothing is lost.
 *
 * Invariants: slots never move or grow; keys counts the non-empty slots; an empty slot
 * has t == EMPTY, which is smaller than any time, so it is always chosen first. Times are
 * stored with the sign bit flipped (stored 0 is EMPTY), so the table comes zeroed from
 * calloc and its pages are only touched as keys arrive. */
#include "ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 8
#define EMPTY INT64_MIN
#define NS_PER_MS 1000000LL

struct slot {
    uint8_t key[RL_KEY_BYTES];
    uint64_t t_flipped; /* buckets: tat in ns; moves: last accepted position's time in ms */
    double x, y;
};

static int64_t get_t(const struct slot *s) { return (int64_t)(s->t_flipped ^ (1ULL << 63)); }
static void set_t(struct slot *s, int64_t t) { s->t_flipped = (uint64_t)t ^ (1ULL << 63); }

struct table {
    struct slot *slots;
    size_t set_mask;
    uint64_t seed;
};

struct rl_limiter {
    struct table t;
    struct rl_rate rate;
    int64_t interval_ns, tau_ns;
    struct rl_stats stats;
};

struct rl_moves {
    struct table t;
    double max_speed;
    struct rl_stats stats;
};

const char *rl_strerror(int err)
{
    switch (err) {
    case RL_OK: return "ok";
    case RL_LIMITED: return "rate limited";
    case RL_IMPLAUSIBLE: return "implausible move";
    case RL_EINVAL: return "invalid limit";
    }
    return "unknown error";
}

int rl_rate_parse(const char *s, struct rl_rate *out)
{
    char *end;
    double per_s = strtod(s, &end), burst = 2 * per_s;
    /* 0 (off), or at least one request every ~11 days: the interval must fit in ns */
    if (end == s || !isfinite(per_s) || per_s < 0 || per_s > 1e7 || (per_s > 0 && per_s < 1e-6))
        return RL_EINVAL;
    if (*end == ':') {
        const char *b = end + 1;
        burst = strtod(b, &end);
        if (end == b || !isfinite(burst) || burst < 1 || burst > 1e9) return RL_EINVAL;
    }
    if (*end) return RL_EINVAL;
    if (burst < 1) burst = 1;
    if (per_s > 0 && (burst - 1) / per_s > 1e8) return RL_EINVAL; /* tau must fit in ns */
    out->per_s = per_s;
    out->burst = per_s > 0 ? burst : 0;
    return RL_OK;
}

/* ---- the table ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static int table_init(struct table *t, size_t keys_max, uint64_t seed)
{
    size_t sets = 1;
    while (sets * WAYS < keys_max && sets < ((size_t)1 << 40)) sets <<= 1;
    t->slots = calloc(sets * WAYS, sizeof *t->slots); /* all EMPTY */
    if (!t->slots) return -1;
    t->set_mask = sets - 1;
    t->seed = seed;
    return 0;
}

static void pad_key(uint8_t k[RL_KEY_BYTES], const void *key, size_t len)
{
    if (len > RL_KEY_BYTES) len = RL_KEY_BYTES;
    memset(k, 0, RL_KEY_BYTES);
    memcpy(k, key, len);
}

/* The slot holding k (*found = 1), or the one of k's set to give to k (*found = 0). */
static struct slot *lookup(struct table *t, const uint8_t k[RL_KEY_BYTES], int *found)
{
    uint64_t w[RL_KEY_BYTES / 8], h = t->seed;
    memcpy(w, k, sizeof w);
    for (size_t i = 0; i < RL_KEY_BYTES / 8; i++) h = mix(h ^ w[i]);
    struct slot *set = t->slots + (h & t->set_mask) * WAYS, *victim = set;
    for (int i = 0; i < WAYS; i++) {
        if (get_t(&set[i]) != EMPTY && memcmp(set[i].key, k, RL_KEY_BYTES) == 0) {
            *found = 1;
            return &set[i];
        }
        if (get_t(&set[i]) < get_t(victim)) victim = &set[i];
    }
    *found = 0;
    return victim;
}

/* Gives victim to key k; live says whether losing the old key loses state. */
static void claim(struct slot *victim, const uint8_t k[RL_KEY_BYTES], int live,
                  struct rl_stats *st)
{
    if (get_t(victim) == EMPTY) st->keys++;
    else if (live) st->evicted_live++;
    memcpy(victim->key, k, RL_KEY_BYTES);
}

/* ---- token buckets -------------------------------------------------------------------- */

struct rl_limiter *rl_limiter_create(struct rl_rate rate, size_t keys_max, uint64_t seed)
{
    if (rate.per_s < 0 || (rate.per_s > 0 && rate.burst < 1)) return NULL;
    struct rl_limiter *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->rate = rate;
    if (rate.per_s > 0) {
        l->interval_ns = (int64_t)(1e9 / rate.per_s);
        if (l->interval_ns < 1) l->interval_ns = 1;
        l->tau_ns = (int64_t)((rate.burst - 1) * (double)l->interval_ns);
    }
    if (table_init(&l->t, rate.per_s > 0 ? keys_max : 1, seed)) {
        free(l);
        return NULL;
    }
    return l;
}

void rl_limiter_destroy(struct rl_limiter *l)
{
    if (!l) return;
    free(l->t.slots);
    free(l);
}

/* GCRA on one bucket whose tat (ns) is *t; *t is updated when a token is taken. */
static int gcra(struct rl_limiter *l, int64_t *t, int64_t now, int64_t *retry_ms)
{
    int64_t tat = *t > now ? *t : now;
    if (tat - now > l->tau_ns) {
        l->stats.limited++;
        int64_t wait = tat - now - l->tau_ns;
        *retry_ms = (wait + NS_PER_MS - 1) / NS_PER_MS;
        if (*retry_ms < 1) *retry_ms = 1;
        return RL_LIMITED;
    }
    *t = tat + l->interval_ns;
    l->stats.allowed++;
    return RL_OK;
}

int rl_take(struct rl_limiter *l, const void *key, size_t len, int64_t now_ms,
            int64_t *retry_ms)
{
    if (l->rate.per_s <= 0) {
        l->stats.allowed++;
        return RL_OK;
    }
    uint8_t k[RL_KEY_BYTES];
    int found;
    int64_t now = now_ms * NS_PER_MS;
    pad_key(k, key, len);
    struct slot *s = lookup(&l->t, k, &found);
    if (!found) {
        claim(s, k, get_t(s) > now, &l->stats);
        set_t(s, now);
    }
    int64_t t = get_t(s);
    int rc = gcra(l, &t, now, retry_ms);
    set_t(s, t);
    return rc;
}

int rl_take_held(struct rl_limiter *l, int64_t *tat, int64_t now_ms, int64_t *retry_ms)
{
    if (l->rate.per_s <= 0) {
        l->stats.allowed++;
        return RL_OK;
    }
    return gcra(l, tat, now_ms * NS_PER_MS, retry_ms);
}

const struct rl_stats *rl_limiter_stats(const struct rl_limiter *l) { return &l->stats; }

/* ---- positions ------------------------------------------------------------------------ */

struct rl_moves *rl_moves_create(double max_speed, size_t keys_max, uint64_t seed)
{
    if (!(max_speed >= 0)) return NULL;
    struct rl_moves *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->max_speed = max_speed;
    if (table_init(&m->t, max_speed > 0 ? keys_max : 1, seed)) {
        free(m);
        return NULL;
    }
    return m;
}

void rl_moves_destroy(struct rl_moves *m)
{
    if (!m) return;
    free(m->t.slots);
    free(m);
}

int rl_move_check(struct rl_moves *m, const void *key, size_t len, double x, double y,
                  int64_t now_ms)
{
    uint8_t k[RL_KEY_BYTES];
    int found;
    if (m->max_speed > 0) {
        pad_key(k, key, len);
        struct slot *s = lookup(&m->t, k, &found);
        if (found) {
            int64_t dt = now_ms > get_t(s) ? now_ms - get_t(s) : 0;
            double reach = m->max_speed * (double)(dt + RL_MOVE_GRACE_MS) / 1000.0;
            if (!(hypot(x - s->x, y - s->y) <= reach)) {
                m->stats.limited++;
                return RL_IMPLAUSIBLE;
            }
        } else {
            claim(s, k, 1, &m->stats);
        }
        s->x = x;
        s->y = y;
        set_t(s, now_ms);
    }
    m->stats.allowed++;
    return RL_OK;
}

const struct rl_stats *rl_moves_stats(const struct rl_moves *m) { return &m->stats; }

void rl_key_hunt(uint8_t out[RL_KEY_BYTES], const uint8_t player[16], const char *hunt)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)hunt; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    memcpy(out, player, 16);
    memcpy(out + 16, &h, 8);
}
