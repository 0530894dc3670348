/* api_limits.c — abuse limits wired into the API: the per-address gate of every route, the player's
 * bucket, players created per address, the position speed check, and their metrics (the buckets
 * themselves are ratelimit.c). */
#include "api_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* ---- limits -------------------------------------------------------------------------- */

/* Per-address and per-player token buckets, players created per address, and the speed
 * check on positions (ratelimit.h). Each answers the request itself when it says no. */
static struct limits {
    struct rl_limiter *ip, *ip_tiles, *player, *new_player;
    struct rl_moves *moves;
} lim;

/* Limits run on the monotonic clock: a wall clock stepping back must not block anyone. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int api_limits_init(const struct rl_config *c)
{
    uint64_t seed[5];
    if (auth_random(seed, sizeof seed)) return -1;
    lim.ip = rl_limiter_create(c->ip, c->keys_max, seed[0]);
    lim.player = rl_limiter_create(c->player, 1, seed[1]); /* buckets in struct player */
    lim.new_player = rl_limiter_create(c->players_per_ip, c->keys_max, seed[2]);
    lim.moves = rl_moves_create(c->max_speed, c->keys_max, seed[3]);
    lim.ip_tiles = rl_limiter_create(c->ip_tiles, c->keys_max, seed[4]);
    return lim.ip && lim.ip_tiles && lim.player && lim.new_player && lim.moves ? 0 : -1;
}

void api_limits_deinit(void)
{
    rl_limiter_destroy(lim.ip);
    rl_limiter_destroy(lim.ip_tiles);
    rl_limiter_destroy(lim.player);
    rl_limiter_destroy(lim.new_player);
    rl_moves_destroy(lim.moves);
}

/* Answers 429 rate_limited with Retry-After in whole seconds (at least 1). */
static void too_many(struct http_req *r, int64_t retry_ms, const char *who)
{
    char secs[24];
    snprintf(secs, sizeof secs, "%lld", (long long)((retry_ms + 999) / 1000));
    http_add_header(r, "retry-after", secs);
    http_error(r, 429, "rate_limited", "too many requests %s; retry in %s s", who, secs);
}

/* The client's address: the peer's, or behind --trusted-proxy the last address of
 * X-Forwarded-For (the one that proxy added; earlier ones are the client's say-so). */
void api_client_addr(struct http_req *r, uint8_t out[16])
{
    if (http_synth_of(r)) { /* a write of another node's batch: the address it carries */
        http_peer_addr(r, out);
        return;
    }
    if (api_app.fwd && http_header(r, "x-veltrix-forwarded").p && !forward_client_addr(r, out))
        return; /* the gate refused every forwarded request that does not check */
    http_peer_addr(r, out);
    if (!api_app.cfg.limits.proxy_set || memcmp(out, api_app.cfg.limits.proxy, 16)) return;
    struct http_str h = http_header(r, "x-forwarded-for");
    char buf[64];
    if (!h.p) return;
    const char *end = h.p + h.len, *p = end;
    while (p > h.p && p[-1] != ',')
        p--;
    while (p < end && *p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    if (end - p <= 0 || end - p >= (long)sizeof buf) return;
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = '\0';
    uint8_t a[16] = {0};
    if (inet_pton(AF_INET, buf, a + 12) == 1)
        a[10] = a[11] = 0xff;
    else if (inet_pton(AF_INET6, buf, a) != 1)
        return;
    memcpy(out, a, 16);
}

/* The gate's steps after a replica's read (which may have held the request): where a
 * hunt write goes, then (unless read already) the player its token names. */
static int gate_after_read(struct http_req *r, int fwd, const uint8_t addr[16], int player_read)
{
    if (api_write_route(r, fwd, addr)) return 1;
    return !player_read && api_player_gate(r, fwd, addr);
}

/* The gate of every route: a forwarded request's proof, the client address's bucket for
 * the route's class, then where a hunt write goes (here, the owner, or 503). */
int api_limit_ip(struct http_req *r)
{
    uint8_t addr[16];
    int64_t retry;
    int tile = http_req_route(r)->gate_class == GATE_TILES, fwd = 0;
    api_app.node_checked = 0;
    if (http_synth_of(r)) { /* a write inside a batch: the batch's signature covered it */
        fwd = 1;
        http_peer_addr(r, addr);
        if (http_req_route(r)->gate_class == GATE_NODE) {
            http_error(r, 403, "forbidden", "a node-only route inside a batch");
            return 1;
        }
    } else if (api_app.fwd && (fwd = forward_check(api_app.fwd, r, addr)) < 0) {
        /* Nobody outside the cluster skips rate limits or the owner's checks this way. */
        http_error(r, 403, "forbidden", "X-Veltrix-Forwarded does not check");
        return 1;
    }
    if (http_req_route(r)->gate_class == GATE_NODE) { /* another node's push or batch */
        api_app.node_checked = fwd == 1;
        return 0; /* the handler refuses it unchecked */
    }
    if (!fwd) api_client_addr(r, addr);
    if (rl_take(tile ? lim.ip_tiles : lim.ip, addr, sizeof addr, mono_ms(), &retry) != RL_OK) {
        too_many(r, retry, tile ? "for tiles from this address" : "from this address");
        return 1;
    }
    if (api_read_gate(r)) return 1; /* a token read on a replica waits for the store */
    return gate_after_read(r, fwd, addr, 0);
}

void api_gate_resume(struct http_req *r, int fwd, const uint8_t addr[16], int player_read)
{
    if (!http_alive(r) || !gate_after_read(r, fwd, addr, player_read))
        http_resume(r); /* its handler, or (the client left) its release */
}

/* The authenticated player's bucket (every player endpoint). */
int api_limit_player(struct http_req *r, struct player *p)
{
    int64_t retry;
    if (rl_take_held(lim.player, &p->rate_tat, mono_ms(), &retry) == RL_OK) return 0;
    too_many(r, retry, "for this player");
    return 1;
}

/* Players created per address (POST /v1/players). */
int api_limit_new_player(struct http_req *r)
{
    uint8_t addr[16];
    int64_t retry;
    api_client_addr(r, addr);
    if (rl_take(lim.new_player, addr, sizeof addr, mono_ms(), &retry) == RL_OK) return 0;
    too_many(r, retry, "creating players from this address");
    return 1;
}

int api_move_check(const uint8_t player[16], const char *hunt_id, double x, double y)
{
    uint8_t key[RL_KEY_BYTES];
    rl_key_hunt(key, player, hunt_id);
    return rl_move_check(lim.moves, key, sizeof key, x, y, mono_ms());
}

/* A live client's position: dropped outside the hunt's window (as POST .../position is
 * refused), then the speed check. */
int api_live_move_check(const uint8_t player[16], const char *hunt_id, double x, double y)
{
    struct hunt *h = hmap_get(&api_app.hunts, hunt_id, strlen(hunt_id));
    if (!h || engine_playable(h, api_now_ms())) return ENGINE_NOT_ACTIVE;
    return api_move_check(player, hunt_id, x, y);
}

/* A position faster than --max-speed from the player's last one in this hunt: 422. */
int api_limit_move(struct http_req *r, const struct player *p, struct hunt *h, double x, double y)
{
    if (api_move_check(p->id, engine_hunt_id(h), x, y) == RL_OK) return 0;
    http_error(r, 422, "implausible_move", "the position is too far from the last one");
    return 1;
}

/* Each metric family in one block (Prometheus text format wants them contiguous). */
void api_limits_render(struct metrics_buf *b)
{
    const char *name[5] = {"ip", "player", "players_per_ip", "ip_tiles", "moves"};
    const struct rl_stats *st[5] = {rl_limiter_stats(lim.ip), rl_limiter_stats(lim.player),
                                    rl_limiter_stats(lim.new_player),
                                    rl_limiter_stats(lim.ip_tiles), rl_moves_stats(lim.moves)};
    metrics_printf(b, "# TYPE veltrix_rate_limited_total counter\n");
    for (int i = 0; i < 4; i++)
        metrics_printf(b, "veltrix_rate_limited_total{limit=\"%s\"} %llu\n", name[i],
                       (unsigned long long)st[i]->limited);
    metrics_printf(b,
                   "# TYPE veltrix_implausible_moves_total counter\n"
                   "veltrix_implausible_moves_total %llu\n# TYPE veltrix_limit_keys gauge\n",
                   (unsigned long long)st[4]->limited);
    /* Player buckets live in the players' records: one per player while the limit is on. */
    uint64_t keys[5] = {st[0]->keys,
                        api_app.cfg.limits.player.per_s > 0 ? api_app.players.count : 0,
                        st[2]->keys, st[3]->keys, st[4]->keys};
    for (int i = 0; i < 5; i++)
        metrics_printf(b, "veltrix_limit_keys{limit=\"%s\"} %llu\n", name[i],
                       (unsigned long long)keys[i]);
    metrics_printf(b, "# TYPE veltrix_limit_evicted_live_total counter\n");
    for (int i = 0; i < 5; i++)
        metrics_printf(b, "veltrix_limit_evicted_live_total{limit=\"%s\"} %llu\n", name[i],
                       (unsigned long long)st[i]->evicted_live);
    if (api_app.fwd) { /* several nodes: forwarded writes, players of other nodes */
        forward_render_metrics(api_app.fwd, b);
        api_batch_render_metrics(b);
        api_player_loads_render(b);
    }
}
