/* api.c — see api.h: the route table (one row a route), startup (recovery glue), the demo
 * hunt and shutdown. The endpoints live in api_<resource>.c behind api_int.h; everything
 * runs on the event loop thread only, with no locks.
 *
 * Invariants:
 * - a state-changing request is answered only from on_durable(), after its rows are in
 *   the store; rejected requests change nothing and are answered at once;
 * - the engine is told about a command only when the log has room for its event, so a
 *   decision applied in memory is always followed by its event in the log;
 * - an idempotency entry is pending until durable; duplicates wait on it. */
#include "api_int.h"
#include "demo.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct app api_app;

#define MiB (1024 * 1024)
static struct http_route routes[] = {
    {"GET", "/healthz", api_healthz, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/metrics", api_metrics, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/cluster", api_cluster, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", FEED_PATH, api_cluster_events, 0, GATE_NODE, {0}, {{0}, 0, 0}},
    {"POST", FWDBATCH_PATH, api_cluster_batch, 0, GATE_NODE, {0}, {{0}, 0, 0}},
    {"POST", "/v1/players", api_players_create, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/players/me", api_me, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/sessions/refresh", api_refresh, 0, 0, {0}, {{0}, 0, 0}},
    {"PUT", "/v1/hunts/:", api_hunt_put, 16 * MiB, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:", api_hunt_get, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/codes", api_codes, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/codes/:/qr.svg", api_qr, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/digest", api_digest, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/tiles/:/:/:", api_tile_get, 0, GATE_TILES, {0}, {{0}, 0, 0}},
    {"PUT", "/v1/hunts/:/tiles/:/:", api_tile_put, TILES_FILE_MAX, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/map/publish", api_map_publish, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/scans", api_scan, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/items/:/collect", api_collect, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/zones/:/open", api_open, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/position", api_position, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/me", api_hunt_me, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/leaderboard", api_leaderboard, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/stats", api_stats, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/live", api_live, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/log", api_hunt_log, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/", api_web_player, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/admin", api_web_admin, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/board/:", api_web_board, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/assets/:", api_web_asset, 0, 0, {0}, {{0}, 0, 0}},
};
/* ---- recovery (recovery.c replays the hunts; the rest of the server's state here) -- */

/* Installs a hunt recovery.c brought back. */
static int keep_hunt(struct hunt *h, uint64_t from, void *ctx)
{
    const char *id = engine_hunt_id(h);
    VX_FATAL_IF(hmap_put(&api_app.hunts, id, strlen(id), h));
    VX_FATAL_IF(api_app.cfg.snap && snap_loaded(api_app.cfg.snap, id, from));
    return 0;
}

static int load_player(const struct store_player *p, void *arg)
{
    api_add_player(p->id, p->display_name, p->created_ms, p->gen);
    return 0;
}

/* The store keeps one refresh token per player (store_put_refresh), its current one
 * unless that was used or its sessions revoked; memory keeps it when it is unused and of
 * the player's generation. */
static int load_refresh(const struct store_refresh *row, void *arg)
{
    struct player *p = hmap_get(&api_app.players, row->player, 16);
    if (!p || row->used || row->gen != p->gen) return 0;
    if (p->refresh_exp_ms && memcmp(row->id, p->refresh_id, 16) < 0) return 0; /* newest */
    memcpy(p->refresh_id, row->id, 16);
    p->refresh_exp_ms = row->expires_ms;
    return 0;
}

/* Records of scope "-" are refresh answers kept by earlier versions: they hold tokens
 * and are never replayed (api_refresh), so they are not loaded (the store prunes them). */
static int load_idem(const struct store_idem *i, void *arg)
{
    if (!strcmp(i->scope, "-")) return 0;
    return idem_load(api_app.idem, i->scope, i->key, i->req_hash, i->status, i->body, i->body_len,
                     i->created_ms);
}

struct fallback_out {
    uint8_t *hash;
    int *status;
    char **body;
    size_t *len;
    int64_t *created;
};

static int fallback_row(const struct store_idem *i, void *arg)
{
    struct fallback_out *o = arg;
    memcpy(o->hash, i->req_hash, 32);
    *o->status = i->status;
    *o->len = i->body_len;
    *o->created = i->created_ms;
    *o->body = strndup(i->body, i->body_len);
    return *o->body ? 0 : -1;
}

static int idem_fallback(void *ctx, const char *scope, const char *key, uint8_t hash[32],
                         int *status, char **body, size_t *len, int64_t *created)
{
    struct fallback_out o = {hash, status, body, len, created};
    /* On the event loop: while the store is down, fail at once (the caller answers 503). */
    if (log_store_down(api_app.log)) return STORE_EIO;
    return store_get_idem(api_app.reader, scope, key, fallback_row, &o);
}

int api_init(const struct api_config *cfg, struct store *reader, struct log *log, struct net *net,
             char *err, size_t errcap)
{
    char path[4096];
    api_app.cfg = *cfg;
    api_app.reader = reader;
    api_app.log = log;
    api_app.net = net;
    hmap_init(&api_app.players);
    hmap_init(&api_app.hunts);
    if (!(api_app.idem = idem_create(cfg->idem_max, cfg->idem_retention_ms)) ||
        !(api_app.live = live_create(net_loop(net), reader, &cfg->live, api_live_name, NULL)))
        return -1;
    idem_set_fallback(api_app.idem, idem_fallback, NULL);
    live_set_move_check(api_app.live, api_live_move_check);
    snprintf(path, sizeof path, "%s/secret.key", cfg->data_dir);
    int rc = 0;
    if (cfg->cluster_secret)
        auth_set_secret(&api_app.auth, cfg->cluster_secret);
    else
        rc = auth_load_secret(&api_app.auth, path);
    if (rc) {
        snprintf(err, errcap, "cannot load or create %s: %s", path, strerror(-rc));
        return -1;
    }
    struct forward_config fc = FORWARD_CONFIG_DEFAULT;
    fc.loop = net_loop(net), fc.node = cfg->node, fc.auth = &api_app.auth;
    if (cfg->node && !(api_app.fwd = forward_create(&fc))) return -1;
    if (cfg->node && cfg->feed_push) {
        if (!(api_app.feed = feed_create(net_loop(net), api_app.fwd))) return -1;
        log_on_landed(log, api_feed_landed, NULL);
    }
    struct recovery_stats rs = {0};
    struct recovery_config rc_cfg = {cfg->ignore_snapshots, cfg->fsync_always};
    err[0] = '\0';
    int64_t now = api_now_ms();
    uint64_t t0 = metrics_now_ns(), t1;
    if (store_each_player(reader, load_player, NULL) ||
        store_each_refresh(reader, now, load_refresh, NULL) ||
        store_each_idem(reader, now - cfg->idem_retention_ms, load_idem, NULL)) {
        snprintf(err, errcap, "cannot load players, sessions or idempotency records");
        return -1;
    }
    t1 = metrics_now_ns();
    if (recovery_load_hunts(reader, &rc_cfg, keep_hunt, NULL, &rs, err, errcap)) return -1;
    fprintf(stderr,
            "veltrix: recovered %zu players, %zu hunts (%zu from a snapshot), %llu events "
            "replayed; players and sessions %.2f s, hunts %.2f s\n",
            api_app.players.count, api_app.hunts.count, rs.snapshots, (unsigned long long)rs.events,
            (t1 - t0) / 1e9, (metrics_now_ns() - t1) / 1e9);
    struct tiles_config tc = {cfg->tiles_bytes_max, cfg->map_versions_kept};
    if (!(api_app.tiles = tiles_create(&tc))) return -1;
    if (tiles_restore(api_app.tiles, reader, err, errcap)) return -1;
    if (api_limits_init(&cfg->limits)) {
        snprintf(err, errcap, "cannot allocate the rate limit tables");
        return -1;
    }
    http_set_gate(api_limit_ip);
    http_set_routes(routes, sizeof routes / sizeof routes[0]);
    struct http_limits hl = {HTTP_HEAD_BYTES_MAX, HTTP_BODY_BYTES_DEFAULT, api_big_body_ok};
    http_set_limits(&hl);
    api_cluster_start(net_loop(net));
    return 0;
}

static void demo_done(void *arg, int status)
{
    struct live_pending *lp = arg;
    if (lp->frame && !status) live_publish(api_app.live, lp->h, lp->frame);
    else if (lp->frame) ws_buf_unref(lp->frame); /* fenced: never written */
    free(lp);
}

/* Submits a log entry of the demo hunt; the live frame of the event api_apply() just applied,
 * if any, goes out once it is durable. At startup, before serving: when the queue is full
 * (a small --log-queue-max), the loop runs until the writer has made room. */
static void demo_submit(struct log_entry *e)
{
    struct live_pending *lp = malloc(sizeof *lp);
    VX_FATAL_IF(!lp);
    *lp = api_app.live_next;
    api_app.live_next = (struct live_pending){NULL, NULL};
    log_entry_on_done(e, demo_done, lp);
    while (log_submit(api_app.log, e) == -EAGAIN)
        net_run_once(api_app.net, 10);
}

/* The demo hunt's map: one generated SVG tile per map cell (demo.c), then version 1.
 * One log entry per tile, like uploads; the publish follows them in the log. */
static void demo_map(struct hunt *h)
{
    char svg[2048];
    int w, ht;
    engine_map_size(h, &w, &ht);
    for (int x = 0; x < w; x++)
        for (int y = 0; y < ht; y++) {
            size_t len = demo_tile_svg((unsigned)x, (unsigned)y, svg, sizeof svg);
            struct log_entry *e = api_new_entry();
            VX_FATAL_IF(
                api_tile_stage(e, "demo", (uint32_t)x, (uint32_t)y, "image/svg+xml", svg, len));
            demo_submit(e);
        }
    struct log_entry *e = api_new_entry();
    api_publish_map(h, e);
    demo_submit(e);
}

int api_create_demo(char *err, size_t errcap)
{
    if (hmap_get(&api_app.hunts, "demo", 4)) return 0;
    struct hunt *h = engine_hunt_create("demo");
    struct event ev;
    int rc = api_define_hunt(h, demo_hunt_json, strlen(demo_hunt_json), &ev, err, errcap);
    if (rc) {
        engine_hunt_destroy(h);
        return -1;
    }
    api_apply(h, &ev, NULL);
    VX_FATAL_IF(hmap_put(&api_app.hunts, "demo", 4, h));
    struct log_entry *e = api_new_entry();
    api_entry_event(e, h, &ev);
    demo_submit(e);
    demo_map(h);
    fprintf(stderr, "veltrix: created the demo hunt 'demo' with a published map\n");
    return 0;
}

static void free_player(void *v, void *ctx)
{
    struct player *p = v;
    free(p->name);
    free(p);
}

static void free_hunt(void *v, void *ctx)
{
    engine_hunt_destroy(v);
}

void api_deinit(void)
{
    api_cluster_stop();
    forward_destroy(api_app.fwd); /* before the feed: its posts in flight report to it */
    feed_destroy(api_app.feed);
    api_app.feed = NULL;
    live_destroy(api_app.live);
    hmap_each(&api_app.players, free_player, NULL);
    hmap_each(&api_app.hunts, free_hunt, NULL);
    hmap_deinit(&api_app.players);
    hmap_deinit(&api_app.hunts);
    idem_destroy(api_app.idem);
    api_limits_deinit();
    tiles_destroy(api_app.tiles);
    auth_wipe(&api_app.auth);
}
