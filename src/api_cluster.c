/* api_cluster.c — this node's part in a hunt when several nodes share a store (issue 15,
 * docs/DESIGN.md "Several nodes"): whether it may write the hunt now, and under which
 * lease epoch (the store fences a batch whose epoch is no longer the hunt's); and the
 * replicas: every hunt this node does not own is brought up to the store's head.
 *
 * Roles, per hunt, on the event loop:
 * - OWNER under epoch E: node_owns() says so and the hunt's memory was brought up to the
 *   store's head after E began (ready[hunt] == E). The first write under a new epoch does
 *   that catch-up before the engine decides anything, so a new owner never writes a seq
 *   that its predecessor already took.
 * - REPLICA otherwise: a timer (REPLICA_POLL_MS) applies the store's new events of the
 *   hunt, in seq order, through the same engine_apply as recovery, and publishes them to
 *   this node's live subscribers; hunts that appear in the store are loaded
 *   (HUNTS_POLL_MS).
 * - FENCED: the store refused a write (STORE_EFENCED): memory holds events that never
 *   landed. The hunt stops being writable here and is rebuilt from the store (snapshot +
 *   log) on the next tick, in place (engine_hunt_move: pointers to it stay valid).
 *
 * This first slice reads the store from the event loop (one bounded round trip per hunt
 * and tick; veltrix_timeout_ms bounds each): fine for tens of hunts per node, and the
 * place to move to a thread of its own next (docs/DESIGN.md).
 *
 * Invariants: a single node (no --node-id) writes every hunt, unfenced (epoch 0), and none
 * of this runs; one of several writes a hunt only while node_owns() holds and after the
 * catch-up under that epoch; frames reach live subscribers in seq order, each once. */
#include "api_int.h"
#include "node.h"

#include <h2o.h>
#include <stdio.h>
#include <string.h>

#define REPLICA_POLL_MS 50
#define HUNTS_POLL_MS 1000

static struct {
    struct hmap ready;   /* hunt id -> (void *)(uintptr_t) the epoch it was caught up under */
    struct hmap rebuild; /* hunt ids whose memory a fence proved ahead of the store */
    h2o_loop_t *loop;
    h2o_timeout_t poll_timeout;
    h2o_timeout_entry_t poll_tick;
    int64_t hunts_listed_ms;
    int64_t said_ms; /* store errors are logged at most once per 10 s */
    int inited, started;
} cl;

static void complain(const char *msg)
{
    int64_t now = api_now_ms();
    if (cl.said_ms && now - cl.said_ms < 10000) return;
    cl.said_ms = now;
    fprintf(stderr, "veltrix: replica: %s\n", msg);
}

static int player_row(const struct store_player *row, void *ctx)
{
    if (!hmap_get(&api_app.players, row->id, 16) &&
        api_app.players.count < api_app.cfg.players_max)
        api_add_player(row->id, row->display_name, row->created_ms, row->gen);
    return 0;
}

/* A replica's event, applied: its player known here (created on another node: read from
 * the store, where it was durable before it could play), then the frame to this node's
 * live subscribers (in seq order). */
static void replica_event(struct hunt *h, const struct event *ev,
                          const struct engine_outcome *out, void *ctx)
{
    static const uint8_t none[16];
    if (memcmp(ev->player, none, 16) && !hmap_get(&api_app.players, ev->player, 16))
        store_get_player(api_app.reader, ev->player, player_row, NULL);
    struct ws_buf *f = live_event_frame(api_app.live, h, ev, out);
    if (f) live_publish(api_app.live, h, f);
    ++*(uint64_t *)ctx;
}

/* Brings h up to the store's head. 0, or -1 (logged) when the store cannot say. */
static int catch_up(struct hunt *h)
{
    char err[512];
    uint64_t n = 0;
    if (recovery_catch_up(api_app.reader, h, replica_event, &n, err, sizeof err) < 0) {
        complain(err);
        return -1;
    }
    return 0;
}

/* Loads a hunt of the store this node does not hold yet. 0 or -1 (logged). */
static int load_new(const char *id)
{
    struct recovery_config rc = {api_app.cfg.ignore_snapshots, api_app.cfg.fsync_always};
    struct recovery_stats st = {0};
    struct hunt *h;
    uint64_t from;
    char err[512];
    if (recovery_load_hunt(api_app.reader, &rc, id, &h, &from, &st, err, sizeof err)) {
        complain(err);
        return -1;
    }
    if (!engine_seq(h)) { /* nothing durable yet: its definition is on its way */
        engine_hunt_destroy(h);
        return 0;
    }
    VX_FATAL_IF(hmap_put(&api_app.hunts, id, strlen(id), h));
    VX_FATAL_IF(api_app.cfg.snap && snap_loaded(api_app.cfg.snap, id, from));
    return 0;
}

int api_write_epoch(const char *hunt, uint64_t *epoch)
{
    *epoch = 0;
    if (!api_app.cfg.node) return 1;
    uint64_t e;
    size_t len = strlen(hunt);
    if (!node_owns(api_app.cfg.node, hunt, &e) || hmap_get(&cl.rebuild, hunt, len)) return 0;
    if ((uint64_t)(uintptr_t)hmap_get(&cl.ready, hunt, len) != e) {
        struct hunt *h = hmap_get(&api_app.hunts, hunt, len);
        if (h ? catch_up(h) : load_new(hunt)) return 0;
        if (hmap_put(&cl.ready, hunt, len, (void *)(uintptr_t)e)) return 0;
    }
    *epoch = e;
    return 1;
}

void api_hunt_fenced(const char *hunt)
{
    size_t len = strlen(hunt);
    hmap_del(&cl.ready, hunt, len);
    VX_FATAL_IF(hmap_put(&cl.rebuild, hunt, len, (void *)1));
}

/* The fenced hunt rebuilt from the store, in place. */
static void rebuild(const void *key, size_t klen, void *value, void *ctx)
{
    char id[ENGINE_ID_MAX + 1], err[512];
    snprintf(id, sizeof id, "%.*s", (int)klen, (const char *)key);
    struct hunt *h = hmap_get(&api_app.hunts, id, klen), *fresh;
    struct recovery_config rc = {api_app.cfg.ignore_snapshots, api_app.cfg.fsync_always};
    struct recovery_stats st = {0};
    uint64_t from;
    if (!h) return;
    if (recovery_load_hunt(api_app.reader, &rc, id, &fresh, &from, &st, err, sizeof err)) {
        complain(err);
        ++*(size_t *)ctx; /* stays in the set: tried again next tick */
        return;
    }
    fprintf(stderr, "veltrix: hunt %s: a write was fenced (its lease moved): memory rebuilt "
                    "from the store, seq %llu -> %llu\n", id, (unsigned long long)engine_seq(h),
            (unsigned long long)engine_seq(fresh));
    engine_hunt_move(h, fresh);
}

static int list_hunt(const char *id, void *ctx)
{
    if (!hmap_get(&api_app.hunts, id, strlen(id))) load_new(id);
    return 0;
}

static void follow(void *value, void *ctx)
{
    struct hunt *h = value;
    const char *id = engine_hunt_id(h);
    uint64_t e;
    if (node_owns(api_app.cfg.node, id, &e) || hmap_get(&cl.rebuild, id, strlen(id))) return;
    hmap_del(&cl.ready, id, strlen(id));
    catch_up(h);
}

static void on_poll(h2o_timeout_entry_t *t)
{
    if (cl.rebuild.count) {
        size_t failed = 0;
        hmap_each_entry(&cl.rebuild, rebuild, &failed);
        if (!failed) {
            hmap_deinit(&cl.rebuild);
            hmap_init(&cl.rebuild);
        }
    }
    int64_t now = api_now_ms();
    if (now - cl.hunts_listed_ms >= HUNTS_POLL_MS) {
        cl.hunts_listed_ms = now;
        if (store_each_hunt(api_app.reader, list_hunt, NULL)) complain("cannot list the hunts");
    }
    hmap_each(&api_app.hunts, follow, NULL);
    h2o_timeout_link(cl.loop, &cl.poll_timeout, &cl.poll_tick);
}

void api_cluster_start(void *loop)
{
    hmap_init(&cl.ready);
    hmap_init(&cl.rebuild);
    cl.inited = 1;
    if (!api_app.cfg.node) return;
    cl.loop = loop;
    h2o_timeout_init(cl.loop, &cl.poll_timeout, REPLICA_POLL_MS);
    cl.poll_tick.cb = on_poll;
    h2o_timeout_link(cl.loop, &cl.poll_timeout, &cl.poll_tick);
    cl.started = 1;
}

void api_cluster_stop(void)
{
    if (cl.started) {
        if (h2o_timeout_is_linked(&cl.poll_tick)) h2o_timeout_unlink(&cl.poll_tick);
        h2o_timeout_dispose(cl.loop, &cl.poll_timeout);
        cl.started = 0;
    }
    if (!cl.inited) return;
    hmap_deinit(&cl.ready);
    hmap_deinit(&cl.rebuild);
    cl.inited = 0;
}
