/* api_cluster.c — this node's part in a hunt when several nodes share a store (issue 15,
 * docs/DESIGN.md "Several nodes"): whether it may write the hunt now, and under which
 * lease epoch (the store fences a batch whose epoch is no longer the hunt's); and the
 * replicas: every hunt this node does not own is kept at the store's head.
 *
 * Roles, per hunt, on the event loop:
 * - OWNER under epoch E: node_owns() says so and the hunt's memory was brought up to the
 *   store's head after E began and its idempotency records loaded (ready[hunt] == E):
 *   the take, started by the first write or poll tick under E, reads both on the tail
 *   thread while the hunt's writes and token reads wait (take, api_take_wait), so a new
 *   owner never writes a seq that its predecessor already took, nor applies a retry
 *   twice. Its events, once landed, go to the other nodes (api_feed_landed: feed.h).
 * - REPLICA otherwise, fed two ways, both applied in seq order through recovery_apply and
 *   published to this node's live subscribers (replica_event):
 *   - the owner's push (POST /v1/cluster/events, api_cluster_events): an event that
 *     continues memory is applied; a gap sends the hunt to the store;
 *   - the store, read on the tail thread (tail.h): every poll tick (--replica-poll-ms)
 *     each followed hunt without a fetch in flight asks for its events after memory's
 *     seq; the answer is applied when it comes (fetched). Hunts that appear in the store
 *     are loaded (HUNTS_POLL_MS), on the tail thread too (struct hunt_load).
 * - FENCED: the store refused a write (STORE_EFENCED): memory holds events that never
 *   landed. The hunt stops being writable here and, once its writes in flight are done,
 *   is rebuilt from the store (snapshot + log, then the players of its leaderboard this
 *   node lacks) on the tail thread (struct hunt_load), and put in place on the loop
 *   (engine_hunt_move: pointers to it stay valid); its live subscribers then catch up
 *   from the store from the last seq they had (live_rebase: the new owner's seqs were
 *   never published here).
 *
 * - READ INDEX: a GET that carries a player token on a hunt this node follows as a
 *   replica is held by the gate (api_read_gate) in the hunt's `next` list. A fetch sent
 *   after it came moves it to `now`; once that fetch's events are applied, the reads in
 *   `now` run (http_resume). The owner answers a write only once it is durable, and the
 *   fetch's read of the store began after the read came, so the player sees every write
 *   of theirs that was answered, whichever node took it. One fetch per hunt is in flight
 *   at a time: every read that came before it was sent shares it. Anonymous reads never
 *   wait. A hunt not loaded here yet, or owned here, is handled in the handler
 *   (api_read_index: loaded, or held for the take under the epoch).
 * - LAG: per replica hunt, when memory was last known to be at the store's head (a fetch
 *   that found everything), and how many events each fetch found behind; each applied
 *   event's age (its owner's clock to this node's apply) goes into a histogram.
 *
 * - STATS on a replica ask the store for the hunt's head on the tail thread (api_replica_lag,
 *   head_look): the request waits, the loop does not; concurrent ones share one look.
 *
 * - MAPS: a map version published on the owner reaches a replica with its event: the tail
 *   thread reads the version's tiles with the fetch (tail_map), the loop puts them in
 *   place as it applies the event (tiles_follow_read). A pushed map event goes through the
 *   store like a gap.
 *
 * Still on the event loop (rare, small): a request for a hunt not loaded here yet, in the
 * HUNTS_POLL_MS after its definition before the hunt list shows it, loads it (load_new:
 * with the players of its leaderboard and its current map version, tiles_follow).
 *
 * Invariants: a single node (no --node-id) writes every hunt, unfenced (epoch 0), and none
 * of this runs; one of several writes a hunt only while node_owns() holds and after the
 * catch-up under that epoch; frames reach live subscribers in seq order, each once; every
 * held read is resumed exactly once (or answered 503 at stop). */
#include "api_int.h"
#include "node.h"
#include "tail.h"

#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUNTS_POLL_MS 1000
/* The poll looks at the heads of the hunts this node follows in one read of the store
 * (store_heads), every tick (--replica-poll-ms), and fetches the events of those whose
 * head is past memory. A hunt whose owner's push came within PUSH_FRESH_MS is looked at
 * only every PUSHED_POLL_MS (the push keeps it current; a gap sends it to the store at
 * once): the look finds a push that was lost. */
#define PUSH_FRESH_MS 1000
#define PUSHED_POLL_MS 250

static struct {
    struct hmap ready;   /* hunt id -> (void *)(uintptr_t) the epoch it was caught up under */
    struct hmap rebuild; /* hunt ids whose memory a fence proved ahead of the store */
    struct hmap loading; /* hunt ids first seen in the store's list, being loaded */
    struct hmap writing; /* hunt id -> (void *)(uintptr_t) writes in flight (api_cluster_write) */
    h2o_loop_t *loop;
    h2o_timeout_t poll_timeout;
    h2o_timeout_entry_t poll_tick;
    int64_t hunts_listed_ms;
    int64_t said_ms; /* store errors are logged at most once per 10 s */
    int inited, started;
    struct hmap reps;            /* hunt id -> struct rep (replica hunts seen here) */
    struct tail *tail;           /* the replicas' reads of the store, on a thread */
    struct metrics_hist age;     /* applied events' age: owner's clock -> applied here */
    uint64_t read_index_reads;   /* token reads that asked the store for a hunt's head */
    uint64_t read_index_waits;   /* ... and found memory behind it (caught up first) */
    uint64_t applied;            /* events applied as a replica */
    uint64_t fetches;            /* fetches of a hunt's events answered (tail.h) */
    uint64_t held;               /* token reads held now */
    uint64_t pushed, push_gaps;  /* events applied from the owners' feed; gaps it showed */
    uint64_t push_players;       /* pushed events whose player was not here: fetched */
    uint64_t revocations;        /* players' sessions revoked here by another node's word */
    int heads_inflight;          /* a look at the heads of the pushed hunts (one at a time) */
    int listing;                 /* a read of the store's hunt list is in flight */
    uint64_t heads_read, heads_behind; /* hunts whose head it read; found past memory */
    uint64_t idem_taken;         /* idempotency records taken over with hunts */
    uint64_t head_looks;         /* stats' looks at a replica hunt's head, answered */
    uint64_t takes_done, takes_failed, take_waits; /* takeovers; requests that waited */
    uint64_t rebuilds;           /* fenced hunts rebuilt from the store */
    uint64_t hunts_loaded;       /* hunts first seen in the store's list, loaded off the loop */
    uint64_t maps_followed;      /* map versions published elsewhere, put in place here */
    uint64_t tiles_loop_blobs;   /* ... blobs they lacked that the loop read (tiles.h) */
    int take_failed_now;         /* the reads resumed now: their hunt's take failed */
} cl;

/* A request held for its hunt: a token read until memory has every event committed before
 * it came (ReadIndex), a stats request until the store's head is read, a write or token
 * read of a hunt this node is taking over until the take ends. */
struct held {
    struct held *next;
    struct http_req *r;
    int write, fwd; /* a write held for a take: the gate's forwarded flag and client */
    uint8_t addr[16]; /* address, to resume it through the rest of the gate */
};
struct held_list {
    struct held *first, *last;
    size_t n;
};

/* A replica hunt: its lag, its fetch from the store (tail.h), the reads waiting on it.
 * Invariants: synced_ms only grows; behind is what the last successful look found (0:
 * memory was at the head); at most one fetch of the hunt is in flight; the reads in `now`
 * came before it was sent (its answer serves them), those in `next` after (they need the
 * next fetch); next is empty while no fetch is in flight. */
struct rep {
    int64_t synced_ms; /* memory held every event committed before this (0: never yet) */
    uint64_t behind;   /* events the last catch-up applied */
    int looking;       /* stats' look at the store's head is in flight (head_look) */
    int looked;        /* the stats in `stats` run now, with what the look found: */
    int head_rc;       /* 0, or the store's error */
    uint64_t head;     /* the store's head */
    struct held_list stats; /* stats requests waiting for the look */
    int fetching;      /* a fetch is in flight */
    int64_t pushed_ms; /* when the owner's push last continued memory (0: never) */
    int64_t polled_ms; /* when the poll last sent a fetch */
    struct held_list now, next;
    uint64_t taking;   /* this node took the hunt under this epoch and is catching up (take) */
    int take_fresh;    /* a fetch was sent since the take began */
    struct held_list takers; /* requests waiting for the take */
};

static struct rep *rep_of(const char *id)
{
    size_t len = strlen(id);
    struct rep *p = hmap_get(&cl.reps, id, len);
    if (p) return p;
    p = calloc(1, sizeof *p);
    VX_FATAL_IF(!p || hmap_put(&cl.reps, id, len, p));
    return p;
}

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

/* Whether this node holds the player of a replica's event (or it has none). */
static int player_known(const uint8_t player[16])
{
    static const uint8_t none[16];
    return !memcmp(player, none, 16) || hmap_get(&api_app.players, player, 16);
}

/* A replica's event, applied: the frame to this node's live subscribers (in seq order).
 * Its player is known here: the tail thread read it with the event (tail_player), or a
 * push that named one unknown here became a fetch (pushed); catch_up_event reads it. */
struct applying {
    uint64_t n;                   /* events applied */
    const struct tail_result *res; /* the fetch they came with (NULL: the owner's push) */
};

static void replica_event(struct hunt *h, const struct event *ev,
                          const struct engine_outcome *out, void *ctx)
{
    struct applying *a = ctx;
    if (ev->type == EVENT_MAP) { /* the tiles of a map published on the owner */
        const struct tiles_read *tr = NULL;
        size_t on_loop = 0;
        /* Read with the fetch, off the loop (tail_map); a pushed map event never comes
         * here (pushed: it goes to the store, as a gap does). */
        int rc = a->res ? tail_map(a->res, ev->seq, &tr) : TILES_ENOVERSION;
        if (!rc) rc = tiles_follow_read(api_app.tiles, api_app.reader, tr, &on_loop);
        if (rc == 1) rc = 0; /* a newer version follows in the same fetch */
        cl.tiles_loop_blobs += on_loop;
        if (rc) complain("cannot load a map version published on another node");
        else ++cl.maps_followed;
    }
    struct ws_buf *f = live_event_frame(api_app.live, h, ev, out);
    if (f) live_publish(api_app.live, h, f);
    int64_t age = api_now_ms() - ev->time_ms;
    metrics_observe_ns(&cl.age, age > 0 ? (uint64_t)age * 1000000u : 0);
    ++cl.applied;
    ++a->n;
}

/* A hunt loaded whole (recovery, not replica_event): its ranked players that this node
 * does not know yet (created on another node) are read from the store, so that the
 * leaderboard names them. */
static void learn_players(const struct hunt *h)
{
    static struct engine_lb_row rows[256];
    size_t n, off = 0;
    while ((n = engine_lb_top(h, off, 256, rows)) > 0) {
        for (size_t i = 0; i < n; i++)
            if (!hmap_get(&api_app.players, rows[i].player, 16))
                store_get_player(api_app.reader, rows[i].player, player_row, NULL);
        off += n;
    }
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
    learn_players(h);
    if (engine_map_version(h) >= 0 && /* published after this node read the tiles at start */
        tiles_follow(api_app.tiles, api_app.reader, id, engine_map_version(h)))
        complain("cannot load the current map version of a hunt defined on another node");
    return 0;
}

void api_cluster_write(const struct hunt *h, int delta)
{
    if (!api_app.cfg.node || !cl.inited) return;
    const char *id = engine_hunt_id(h);
    size_t len = strlen(id);
    uintptr_t n = (uintptr_t)hmap_get(&cl.writing, id, len) + (uintptr_t)(intptr_t)delta;
    if (n) VX_FATAL_IF(hmap_put(&cl.writing, id, len, (void *)n));
    else hmap_del(&cl.writing, id, len);
}

/* 1 while writes of hunt id are in flight (its memory may be ahead of the store). */
static int writing(const char *id) { return hmap_get(&cl.writing, id, strlen(id)) != NULL; }

static int take(const char *hunt, uint64_t e);

int api_write_epoch(const char *hunt, uint64_t *epoch)
{
    *epoch = 0;
    if (!api_app.cfg.node) return 1;
    uint64_t e;
    size_t len = strlen(hunt);
    if (!node_owns(api_app.cfg.node, hunt, &e) || hmap_get(&cl.rebuild, hunt, len)) return 0;
    if ((uint64_t)(uintptr_t)hmap_get(&cl.ready, hunt, len) != e) {
        if (writing(hunt)) return 0; /* writes of an older epoch still in flight: wait */
        if (!hmap_get(&api_app.hunts, hunt, len) && load_new(hunt)) return 0;
        return take(hunt, e); /* a new hunt (nothing to load) too: its records */
    }
    *epoch = e;
    return 1;
}

/* 1 when this node follows hunt as a replica now (several nodes, not its owner). */
static int is_replica(const char *id)
{
    uint64_t e;
    return api_app.cfg.node && !node_owns(api_app.cfg.node, id, &e);
}

/* ---- replicas fed by the tail thread, and the reads held for them ---------------------- */

static void held_append(struct held_list *to, struct held_list *from)
{
    if (!from->first) return;
    if (to->last) to->last->next = from->first;
    else to->first = from->first;
    to->last = from->last;
    to->n += from->n;
    *from = (struct held_list){NULL, NULL, 0};
}

/* Answers the requests of list 503 (the node is stopping) and empties it. */
static void held_stop(struct held_list *list)
{
    struct held *x = list->first;
    *list = (struct held_list){NULL, NULL, 0};
    for (struct held *next; x; x = next) {
        next = x->next;
        http_error(x->r, 503, "unavailable", "this node is stopping; retry on another");
        free(x);
    }
}

/* Runs the handlers of the reads of list (they see memory as it is now), emptying it. */
static void resume(struct held_list *list)
{
    struct held *x = list->first;
    *list = (struct held_list){NULL, NULL, 0};
    while (x) {
        struct held *next = x->next;
        struct http_req *r = x->r;
        free(x);
        --cl.held;
        static const uint8_t none[16];
        api_gate_resume(r, 0, none, 0); /* a GET: not forwarded, no write to route */
        x = next;
    }
}

/* Asks the tail thread for h's events after its seq; the reads waiting for the next
 * fetch wait for this one. 0; -1 out of memory: they are answered from memory as it is. */
static int send_fetch(const char *id, struct rep *p, const struct hunt *h)
{
    held_append(&p->now, &p->next);
    if (tail_fetch(cl.tail, id, engine_seq(h) + 1, (uint64_t)api_now_ms())) {
        complain("out of memory asking for a hunt's events");
        resume(&p->now);
        return -1;
    }
    p->fetching = 1;
    if (p->taking) p->take_fresh = 1;
    return 0;
}

static void take_fetched(const char *hunt, struct rep *p, int ok);

/* A fetch answered (on the loop): its events applied in seq order to the hunt's memory,
 * unless the hunt is no replica here any more (being rebuilt, written, owned: but for a
 * take under the current epoch, which applies them too); then the reads it served run,
 * and the reads that came meanwhile get a fetch of their own. */
static void fetched(const struct tail_result *res, void *ctx)
{
    struct rep *p = rep_of(res->hunt);
    size_t len = strlen(res->hunt);
    struct hunt *h = hmap_get(&api_app.hunts, res->hunt, len);
    uint64_t e;
    struct applying a = {0, res};
    int again = 0, ok = 0;
    char err[512];
    p->fetching = 0;
    ++cl.fetches;
    for (size_t i = 0; i < res->n_players; i++) { /* before the events that name them */
        struct store_player pl;
        tail_player(res, i, &pl);
        player_row(&pl, NULL);
    }
    int owned = node_owns(api_app.cfg.node, res->hunt, &e), taking = owned && p->taking == e;
    if (h && !hmap_get(&cl.rebuild, res->hunt, len) && !writing(res->hunt) && (!owned || taking)) {
        ok = 1;
        for (size_t i = 0; i < res->n && ok; i++) {
            struct store_event ev;
            tail_event(res, i, &ev);
            if (ev.seq <= engine_seq(h)) continue; /* memory went ahead meanwhile */
            if (ev.seq != engine_seq(h) + 1) {     /* it did not come from here: ask again */
                again = 1;
                break;
            }
            if (recovery_apply(h, &ev, replica_event, &a, err, sizeof err)) {
                complain(err);
                ok = 0;
            }
        }
        if (res->rc) {
            snprintf(err, sizeof err, "cannot read hunt '%s' after seq %llu (%s)", res->hunt,
                     (unsigned long long)res->from - 1, store_err_str(res->rc));
            complain(err);
            ok = 0;
        } else if (ok) {
            again = again || res->more;
            if (!again && (int64_t)res->tag > p->synced_ms) p->synced_ms = (int64_t)res->tag;
            p->behind = a.n;
        }
        if (a.n) cl.read_index_waits += p->now.n;
    }
    if (again && !send_fetch(res->hunt, p, h)) return; /* the reads wait for the rest */
    resume(&p->now);
    if (p->taking) take_fetched(res->hunt, p, ok && !again && taking);
    if (p->next.first && !p->fetching) {
        if (!h || send_fetch(res->hunt, p, h)) resume(&p->next);
    }
}

/* ---- taking a hunt over ------------------------------------------------------------------
 * The node that gains a hunt's lease under epoch E brings its memory up to the store's
 * head and loads the hunt's idempotency records before it writes: the retry of a write a
 * previous owner applied is replayed, never applied again. Both reads run on the tail
 * thread (a fetch sent after the take began, then an idempotency job); the hunt's writes
 * and token reads wait meanwhile (take_wait), the event loop does not. ready[hunt] = E
 * once done. A take whose epoch is no longer this node's is dropped, and its requests go
 * where they go now (the new owner, or 503 hunt_moving). */

struct idem_rec {
    struct idem_rec *next;
    char *scope, *key, *body;
    uint8_t hash[32];
    int status;
    size_t len;
    int64_t created_ms;
};

struct idem_take {
    char id[ENGINE_ID_MAX + 1];
    uint64_t epoch;
    int64_t since_ms;
    int rc;
    struct idem_rec *first, *last;
};

static int idem_copy(const struct store_idem *i, void *arg)
{
    struct idem_take *x = arg;
    struct idem_rec *r = calloc(1, sizeof *r);
    if (!r) return STORE_EIO;
    r->scope = strdup(i->scope);
    r->key = strdup(i->key);
    r->body = malloc(i->body_len + 1);
    memcpy(r->hash, i->req_hash, 32);
    r->status = i->status;
    r->len = i->body_len;
    r->created_ms = i->created_ms;
    if (x->last) x->last->next = r;
    else x->first = r;
    x->last = r;
    if (!r->scope || !r->key || !r->body) return STORE_EIO; /* freed with the list */
    memcpy(r->body, i->body, i->body_len);
    r->body[i->body_len] = '\0';
    return 0;
}

static void idem_run(struct store *s, void *arg)
{
    struct idem_take *x = arg;
    x->rc = store_each_idem_of_hunt(s, x->id, x->since_ms, idem_copy, x);
}

/* The requests waiting for hunt's take: writes go through the rest of their gate again
 * (here now, or wherever the hunt went), token reads run; when the take failed, writes
 * are answered 503 hunt_moving (the client retries) and reads from memory; when the node
 * is stopping (ran 0), 503. */
static void takers_run(const char *hunt, struct held_list *list, int ok, int ran)
{
    if (!ran) {
        held_stop(list);
        return;
    }
    struct held *t = list->first;
    *list = (struct held_list){NULL, NULL, 0};
    for (struct held *next; t; t = next) {
        next = t->next;
        if (t->write && !ok) {
            http_error(t->r, 503, "hunt_moving",
                       "hunt '%s' is being taken over and the store did not answer; retry", hunt);
        } else if (t->write) {
            api_gate_resume(t->r, t->fwd, t->addr, 0);
        } else {
            cl.take_failed_now = !ok;
            http_resume(t->r);
            cl.take_failed_now = 0;
        }
        free(t);
    }
}

/* The take of hunt ends (ok: the hunt is ready; ran 0: the node is stopping); its
 * requests run (takers_run). */
static void take_end(const char *hunt, struct rep *p, int ok, int ran)
{
    struct held_list t = p->takers;
    p->taking = 0;
    p->takers = (struct held_list){NULL, NULL, 0};
    if (ran && ok) ++cl.takes_done;
    else if (ran) ++cl.takes_failed;
    takers_run(hunt, &t, ok, ran);
}

static void idem_done(void *arg, int ran)
{
    struct idem_take *x = arg;
    struct rep *p = rep_of(x->id);
    size_t len = strlen(x->id);
    uint64_t e, n = 0;
    int ok = ran && !x->rc;
    if (ran && x->rc) complain("taking a hunt over: cannot read its idempotency records");
    if (p->taking == x->epoch && !ran) {
        take_end(x->id, p, 0, 0); /* stopping: the node (its leases) may be gone already */
    } else if (p->taking == x->epoch) {
        if (node_owns(api_app.cfg.node, x->id, &e) && e == x->epoch &&
            !hmap_get(&cl.rebuild, x->id, len) && !writing(x->id)) {
            for (struct idem_rec *r = x->first; ok && r; r = r->next, n++)
                ok = !idem_load(api_app.idem, r->scope, r->key, r->hash, r->status, r->body, r->len,
                                r->created_ms);
            cl.idem_taken += n;
            if (ok && hmap_put(&cl.ready, x->id, len, (void *)(uintptr_t)e)) ok = 0;
            take_end(x->id, p, ok, ran);
        } else {
            take_end(x->id, p, 1, ran); /* the lease moved on: its requests go where it went */
        }
    }
    for (struct idem_rec *r = x->first, *next; r; r = next) {
        next = r->next;
        free(r->scope);
        free(r->key);
        free(r->body);
        free(r);
    }
    free(x);
}

/* The take's fetches are done (ok: memory is at the head of a fetch sent after the take
 * began, or that fetch failed): the idempotency records next. */
static void take_fetched(const char *hunt, struct rep *p, int ok)
{
    uint64_t e;
    struct hunt *h = hmap_get(&api_app.hunts, hunt, strlen(hunt));
    if (!node_owns(api_app.cfg.node, hunt, &e) || e != p->taking) {
        take_end(hunt, p, 1, 1); /* the lease moved on */
        return;
    }
    if (!ok) {
        take_end(hunt, p, 0, 1);
        return;
    }
    if (!p->take_fresh) { /* that fetch was sent before the take: one more, sent now */
        if (h && !send_fetch(hunt, p, h)) return;
        take_end(hunt, p, 0, 1);
        return;
    }
    struct idem_take *x = calloc(1, sizeof *x);
    if (x) {
        snprintf(x->id, sizeof x->id, "%s", hunt);
        x->epoch = e;
        x->since_ms = api_now_ms() - api_app.cfg.idem_retention_ms;
    }
    if (!x || api_store_job(idem_run, idem_done, x)) {
        free(x);
        take_end(hunt, p, 0, 1);
    }
}

/* Starts (or goes on with) the take of hunt under e: 2. */
static int take(const char *hunt, uint64_t e)
{
    struct rep *p = rep_of(hunt);
    struct hunt *h = hmap_get(&api_app.hunts, hunt, strlen(hunt));
    if (p->taking == e) return 2;
    struct held_list older = p->takers; /* an older epoch's take: they wait for this one */
    p->takers = (struct held_list){NULL, NULL, 0};
    p->taking = e;
    p->take_fresh = 0;
    if (!h) { /* a new hunt: nothing to fetch, its records (if any) only */
        p->take_fresh = 1;
        take_fetched(hunt, p, 1);
    } else if (!p->fetching && send_fetch(hunt, p, h)) {
        take_end(hunt, p, 0, 1);
    } /* else the fetch in flight (sent before) comes back first, then one is sent */
    takers_run(hunt, &older, 1, 1); /* they route again: to this take, or elsewhere */
    return p->taking == e ? 2 : 0;
}

int api_take_wait(struct http_req *r, const char *hunt, int fwd, const uint8_t addr[16])
{
    struct rep *p = rep_of(hunt);
    struct held *t;
    if (!p->taking || cl.take_failed_now || !(t = calloc(1, sizeof *t))) return 0;
    t->write = addr != NULL;
    t->fwd = fwd;
    if (addr) memcpy(t->addr, addr, 16);
    t->r = http_hold(r);
    struct held_list one = {t, t, 1};
    held_append(&p->takers, &one);
    ++cl.take_waits;
    return 1;
}

/* ---- the owners' feed (feed.h) -------------------------------------------------------- */

void api_feed_landed(const struct store_event *ev, void *ctx)
{
    feed_event(api_app.feed, ev);
}

/* A pushed event: applied when it continues its replica hunt's memory; a gap sends the
 * hunt to the store. Never an error: whatever is skipped, the store still has. */
static int pushed(const struct store_event *ev, void *ctx)
{
    size_t len = strlen(ev->hunt);
    struct hunt *h = hmap_get(&api_app.hunts, ev->hunt, len);
    uint64_t e;
    struct applying a = {0, NULL};
    char err[512];
    if (!h || hmap_get(&cl.rebuild, ev->hunt, len) || writing(ev->hunt) ||
        node_owns(api_app.cfg.node, ev->hunt, &e) || ev->seq <= engine_seq(h))
        return 0; /* not here yet (the hunt list poll loads it), not a replica, or old */
    if (ev->seq != engine_seq(h) + 1 || !player_known(ev->player) || ev->type == EVENT_MAP) {
        /* A gap, a player created on another node that this one does not hold, or a map
         * version: the tail thread reads the events (and the player, or the version's
         * tiles) from the store. */
        struct rep *p = rep_of(ev->hunt);
        if (ev->seq != engine_seq(h) + 1) ++cl.push_gaps;
        else if (ev->type != EVENT_MAP) ++cl.push_players;
        if (!p->fetching) send_fetch(ev->hunt, p, h);
        return 0;
    }
    if (recovery_apply(h, ev, replica_event, &a, err, sizeof err)) {
        complain(err);
        return 0;
    }
    ++cl.pushed;
    /* Every event committed before this one was decided has a lower seq (the owner
     * decides in seq order): memory holds them all. The owner's clock: skew aside. */
    struct rep *p = rep_of(ev->hunt);
    if (ev->time_ms > p->synced_ms) p->synced_ms = ev->time_ms;
    p->behind = 0;
    p->pushed_ms = api_now_ms();
    return 0;
}

/* Another node revoked a player's sessions: this node refuses the old tokens now. A player
 * not in memory here is read with its current generation when a token names it. */
static int revoked(const uint8_t player[16], uint32_t gen, void *ctx)
{
    struct player *p = hmap_get(&api_app.players, player, 16);
    if (p && gen > p->gen) {
        p->gen = gen;
        p->refresh_exp_ms = 0;
        ++cl.revocations;
    }
    return 0;
}

void api_cluster_events(struct http_req *r)
{
    struct http_str b = http_body(r);
    if (!api_app.node_checked) {
        http_error(r, 403, "forbidden", "only the nodes of this cluster push events");
        return;
    }
    api_app.node_checked = 0;
    if (feed_parse(b.p, b.len, NULL, NULL, NULL)) {
        http_error(r, 400, "invalid_request", "a malformed feed of events");
        return;
    }
    feed_parse(b.p, b.len, pushed, revoked, NULL);
    http_send(r, 204, NULL, "", 0);
}

int api_read_gate(struct http_req *r)
{
    static const char prefix[] = "/v1/hunts/:";
    const struct http_route *rt = http_req_route(r);
    struct http_str id = http_param(r, 0);
    char hunt[ENGINE_ID_MAX + 1];
    uint64_t e;
    if (!cl.tail || strcmp(rt->method, "GET") || strncmp(rt->pattern, prefix, sizeof prefix - 1) ||
        (rt->pattern[sizeof prefix - 1] != '/' && rt->pattern[sizeof prefix - 1] != '\0') ||
        !auth_valid_id(id.p, id.len) || !(api_bearer(r).p || http_query(r, "token").p))
        return 0; /* not a token read of a hunt (or a single node) */
    memcpy(hunt, id.p, id.len);
    hunt[id.len] = '\0';
    struct hunt *h = hmap_get(&api_app.hunts, hunt, id.len);
    if (!h || hmap_get(&cl.rebuild, hunt, id.len) || writing(hunt) ||
        node_owns(api_app.cfg.node, hunt, &e))
        return 0; /* not a replica here now: api_read_index, in the handler, does the rest */
    struct rep *p = rep_of(hunt);
    struct held *x = malloc(sizeof *x);
    if (!x) return 0; /* out of memory: answered from memory as it is */
    *x = (struct held){.r = http_hold(r)};
    struct held_list one = {x, x, 1};
    held_append(&p->next, &one);
    ++cl.read_index_reads;
    ++cl.held;
    if (!p->fetching) send_fetch(hunt, p, h);
    return 1;
}

int api_read_index(struct http_req *r, const char *id)
{
    struct http_str m = http_method(r);
    size_t len = strlen(id);
    int token = api_bearer(r).p || http_query(r, "token").p; /* live: ?token= too */
    if (!api_app.cfg.node || m.len != 3 || memcmp(m.p, "GET", 3) || !token ||
        hmap_get(&cl.rebuild, id, len) || writing(id))
        return 0;
    uint64_t e;
    if (node_owns(api_app.cfg.node, id, &e)) /* taken over: caught up before it answers */
        return api_write_epoch(id, &e) == 2 && api_take_wait(r, id, 0, NULL);
    if (hmap_get(&api_app.hunts, id, len)) return 0; /* api_read_gate held it for a fetch */
    ++cl.read_index_reads; /* not here yet: loaded whole, up to the store's head */
    load_new(id);
    return 0;
}

const char *api_hunt_owner(const char *hunt)
{
    uint64_t e;
    if (!api_app.cfg.node) return NULL;
    if (node_owns(api_app.cfg.node, hunt, &e)) return node_id(api_app.cfg.node);
    return api_app.fwd ? forward_owner(api_app.fwd, hunt) : NULL;
}

/* Stats' look at a replica hunt's head, on the tail thread: the request waits, the event
 * loop does not. Every stats request that comes while a look is in flight shares it. */
struct head_look {
    char id[ENGINE_ID_MAX + 1];
    uint64_t head;
    int rc;
};

static void look_run(struct store *s, void *arg)
{
    struct head_look *x = arg;
    x->rc = store_last_seq(s, x->id, &x->head);
}

static void look_done(void *arg, int ran)
{
    struct head_look *x = arg;
    struct rep *p = rep_of(x->id);
    p->looking = 0;
    p->head_rc = ran ? x->rc : STORE_EIO;
    p->head = x->head;
    free(x);
    if (!ran) {
        held_stop(&p->stats);
        return;
    }
    ++cl.head_looks;
    struct held *w = p->stats.first;
    p->stats = (struct held_list){NULL, NULL, 0};
    for (struct held *next; w; w = next) { /* each runs api_stats again, with the look's */
        next = w->next;
        p->looked = 1;
        http_resume(w->r);
        p->looked = 0;
        free(w);
    }
}

int api_replica_lag(struct http_req *r, const struct hunt *h, int64_t *ms, uint64_t *events)
{
    const char *id = engine_hunt_id(h);
    *ms = 0;
    *events = 0;
    if (!is_replica(id)) return 0;
    struct rep *p = rep_of(id);
    int64_t now = api_now_ms(), since = p->synced_ms && now > p->synced_ms ? now - p->synced_ms : 0;
    if (!p->looked) { /* ask the store (off the loop) while this request waits */
        struct held *w = malloc(sizeof *w);
        struct head_look *x = p->looking ? NULL : calloc(1, sizeof *x);
        if (x) snprintf(x->id, sizeof x->id, "%s", id);
        if (w && (p->looking || (x && !api_store_job(look_run, look_done, x)))) {
            *w = (struct held){.r = http_hold(r)};
            struct held_list one = {w, w, 1};
            held_append(&p->stats, &one);
            p->looking = 1;
            return 1;
        }
        free(w); /* out of memory: the last look is all we know */
        free(x);
    } else if (!p->head_rc) {
        if (p->head > engine_seq(h)) {
            *events = p->head - engine_seq(h);
            *ms = since;
        }
        return 0;
    }
    *ms = p->behind ? since : 0;
    *events = p->behind;
    return 0;
}

struct lag_sum {
    int64_t now, max_ms;
    uint64_t events, hunts;
};

static void lag_of(const void *key, size_t klen, void *value, void *ctx)
{
    char id[ENGINE_ID_MAX + 1];
    const struct rep *p = value;
    struct lag_sum *s = ctx;
    snprintf(id, sizeof id, "%.*s", (int)klen, (const char *)key);
    if (!is_replica(id) || !p->synced_ms) return;
    s->hunts++;
    s->events += p->behind;
    if (s->now - p->synced_ms > s->max_ms) s->max_ms = s->now - p->synced_ms;
}

void api_cluster_metrics(struct metrics_buf *b)
{
    struct lag_sum s = {.now = api_now_ms()};
    if (cl.inited) hmap_each_entry(&cl.reps, lag_of, &s);
    metrics_printf(b,
                   "# TYPE veltrix_replica_hunts gauge\nveltrix_replica_hunts %llu\n"
                   "# TYPE veltrix_replication_lag_ms gauge\nveltrix_replication_lag_ms %lld\n"
                   "# TYPE veltrix_replication_lag_events gauge\n"
                   "veltrix_replication_lag_events %llu\n"
                   "# TYPE veltrix_replica_events_applied_total counter\n"
                   "veltrix_replica_events_applied_total %llu\n"
                   "# TYPE veltrix_read_index_total counter\nveltrix_read_index_total %llu\n"
                   "# TYPE veltrix_read_index_waits_total counter\n"
                   "veltrix_read_index_waits_total %llu\n"
                   "# TYPE veltrix_idem_taken_over_total counter\n"
                   "veltrix_idem_taken_over_total %llu\n"
                   "# TYPE veltrix_replica_fetches_total counter\n"
                   "veltrix_replica_fetches_total %llu\n"
                   "# TYPE veltrix_read_index_held gauge\nveltrix_read_index_held %llu\n",
                   (unsigned long long)s.hunts, (long long)s.max_ms,
                   (unsigned long long)s.events, (unsigned long long)cl.applied,
                   (unsigned long long)cl.read_index_reads,
                   (unsigned long long)cl.read_index_waits, (unsigned long long)cl.idem_taken,
                   (unsigned long long)cl.fetches, (unsigned long long)cl.held);
    metrics_printf(b,
                   "# TYPE veltrix_replica_pushed_events_total counter\n"
                   "veltrix_replica_pushed_events_total %llu\n"
                   "# TYPE veltrix_replica_push_gaps_total counter\n"
                   "veltrix_replica_push_gaps_total %llu\n"
                   "# TYPE veltrix_replica_push_new_players_total counter\n"
                   "veltrix_replica_push_new_players_total %llu\n"
                   "# TYPE veltrix_replica_heads_read_total counter\n"
                   "veltrix_replica_heads_read_total %llu\n"
                   "# TYPE veltrix_replica_heads_behind_total counter\n"
                   "veltrix_replica_heads_behind_total %llu\n"
                   "# TYPE veltrix_revocations_received_total counter\n"
                   "veltrix_revocations_received_total %llu\n"
                   "# TYPE veltrix_replica_head_looks_total counter\n"
                   "veltrix_replica_head_looks_total %llu\n"
                   "# TYPE veltrix_takeovers_total counter\n"
                   "veltrix_takeovers_total{result=\"done\"} %llu\n"
                   "veltrix_takeovers_total{result=\"failed\"} %llu\n"
                   "# TYPE veltrix_takeover_waits_total counter\n"
                   "veltrix_takeover_waits_total %llu\n"
                   "# TYPE veltrix_fenced_rebuilds_total counter\n"
                   "veltrix_fenced_rebuilds_total %llu\n"
                   "# TYPE veltrix_replica_hunts_loaded_total counter\n"
                   "veltrix_replica_hunts_loaded_total %llu\n"
                   "# TYPE veltrix_replica_maps_followed_total counter\n"
                   "veltrix_replica_maps_followed_total %llu\n"
                   "# TYPE veltrix_replica_map_blobs_read_on_loop_total counter\n"
                   "veltrix_replica_map_blobs_read_on_loop_total %llu\n",
                   (unsigned long long)cl.pushed, (unsigned long long)cl.push_gaps,
                   (unsigned long long)cl.push_players, (unsigned long long)cl.heads_read,
                   (unsigned long long)cl.heads_behind, (unsigned long long)cl.revocations,
                   (unsigned long long)cl.head_looks, (unsigned long long)cl.takes_done,
                   (unsigned long long)cl.takes_failed, (unsigned long long)cl.take_waits,
                   (unsigned long long)cl.rebuilds, (unsigned long long)cl.hunts_loaded,
                   (unsigned long long)cl.maps_followed,
                   (unsigned long long)cl.tiles_loop_blobs);
    if (api_app.feed) feed_render_metrics(api_app.feed, b);
    metrics_printf(b, "# TYPE veltrix_replication_event_age_seconds histogram\n");
    metrics_render_hist(b, "veltrix_replication_event_age_seconds", "", &cl.age, 0);
}

/* cl.rebuild's values: the hunt waits for its rebuild to start (its writes in flight
 * finish first); the rebuild is on its way; ... and a fence came meanwhile (memory may
 * have gone ahead of what it read: rebuilt once more after). */
/* Up to 64 hunt ids, copied out of a map's walk. */
struct hunt_ids {
    char id[64][ENGINE_ID_MAX + 1];
    size_t n;
};

#define REBUILD_WAITING 1
#define REBUILD_RUNNING 2
#define REBUILD_AGAIN 3

void api_hunt_fenced(const char *hunt)
{
    size_t len = strlen(hunt);
    uintptr_t was = (uintptr_t)hmap_get(&cl.rebuild, hunt, len);
    hmap_del(&cl.ready, hunt, len);
    VX_FATAL_IF(hmap_put(&cl.rebuild, hunt, len,
                         (void *)(uintptr_t)(was >= REBUILD_RUNNING ? REBUILD_AGAIN
                                                                    : REBUILD_WAITING)));
}

/* A hunt read from the store off the loop (struct hunt_load): a fenced hunt's rebuild, or
 * a hunt the store's list shows that this node does not hold. The tail thread reads it
 * (snapshot + log) and the tiles of its current map version; then, on the loop, the
 * players of its leaderboard this node does not know are read there too; then it is put
 * in place: a rebuilt hunt takes its old memory's place (engine_hunt_move: pointers to it
 * stay valid; it is in cl.rebuild all along, so no write, feed or take touches it
 * meanwhile), a new one joins the hunts unless a request loaded it meanwhile (load_new). */
struct hunt_load {
    char id[ENGINE_ID_MAX + 1];
    int rebuild; /* 1: a fenced hunt's rebuild; 0: a hunt first seen here */
    struct recovery_config rc;
    struct hunt *fresh;
    uint64_t from; /* the seq its log replay began after (snap_loaded) */
    int failed;
    char err[512];
    int64_t had_map; /* the map version memory had (a rebuild; -1 none): its tiles are here */
    struct tiles_read *tiles; /* its current map version (NULL: none, or tiles_rc) */
    int tiles_rc;
    struct api_player_row *rows; /* its ranked players not known here */
    size_t n_rows;
};

static void hunt_load_free(struct hunt_load *x)
{
    for (size_t i = 0; i < x->n_rows; i++) free(x->rows[i].name);
    free(x->rows);
    tiles_read_free(x->tiles);
    if (x->fresh) engine_hunt_destroy(x->fresh);
    free(x);
}

/* The hunt's map version in place (or the reason it is not, said). */
static void hunt_load_tiles(struct hunt_load *x)
{
    size_t on_loop = 0;
    if (!x->tiles && !x->tiles_rc) return; /* no map, or the one memory had */
    int rc = x->tiles ? tiles_follow_read(api_app.tiles, api_app.reader, x->tiles, &on_loop)
                      : x->tiles_rc;
    cl.tiles_loop_blobs += on_loop;
    if (rc) complain("cannot load the current map version of a hunt defined on another node");
}

/* The load of x ends: in place (ok), or tried again (a rebuild at the next tick, a new
 * hunt at the next list); or the node is stopping (ran 0: its maps may be gone already). */
static void hunt_load_end(struct hunt_load *x, int ok, int ran)
{
    size_t len = strlen(x->id);
    struct hunt *h = ran ? hmap_get(&api_app.hunts, x->id, len) : NULL;
    if (!ran) {
        hunt_load_free(x);
        return;
    }
    if (!x->rebuild) {
        hmap_del(&cl.loading, x->id, len);
        if (ok && !h && engine_seq(x->fresh)) { /* (seq 0: its definition is on its way) */
            VX_FATAL_IF(hmap_put(&api_app.hunts, x->id, len, x->fresh));
            VX_FATAL_IF(api_app.cfg.snap && snap_loaded(api_app.cfg.snap, x->id, x->from));
            x->fresh = NULL;
            ++cl.hunts_loaded;
            hunt_load_tiles(x);
        }
        hunt_load_free(x);
        return;
    }
    if (ok && h) {
        ++cl.rebuilds;
        fprintf(stderr, "veltrix: hunt %s: a write was fenced (its lease moved): memory rebuilt "
                        "from the store, seq %llu -> %llu\n", x->id,
                (unsigned long long)engine_seq(h), (unsigned long long)engine_seq(x->fresh));
        engine_hunt_move(h, x->fresh);
        x->fresh = NULL;
        live_rebase(api_app.live, h, engine_seq(h)); /* subscribers get the store's seqs */
        hunt_load_tiles(x); /* the new owner may have published meanwhile */
    }
    if (ok && (uintptr_t)hmap_get(&cl.rebuild, x->id, len) != REBUILD_AGAIN)
        hmap_del(&cl.rebuild, x->id, len);
    else
        VX_FATAL_IF(hmap_put(&cl.rebuild, x->id, len, (void *)(uintptr_t)REBUILD_WAITING));
    hunt_load_free(x);
}

static void hunt_load_players_run(struct store *s, void *arg)
{
    struct hunt_load *x = arg;
    for (size_t i = 0; i < x->n_rows; i++) api_player_read(s, &x->rows[i]);
}

static void hunt_load_players_done(void *arg, int ran)
{
    struct hunt_load *x = arg;
    int ok = ran;
    for (size_t i = 0; ran && i < x->n_rows; i++) {
        if (x->rows[i].rc < 0) ok = 0;
        api_player_learn(&x->rows[i]);
    }
    if (ran && !ok) complain("loading a hunt: cannot read the players of its leaderboard");
    hunt_load_end(x, ok, ran);
}

static void hunt_load_run(struct store *s, void *arg)
{
    struct hunt_load *x = arg;
    struct recovery_stats st = {0};
    x->failed = recovery_load_hunt(s, &x->rc, x->id, &x->fresh, &x->from, &st, x->err,
                                   sizeof x->err);
    if (!x->failed && engine_map_version(x->fresh) > x->had_map)
        x->tiles = tiles_read_version(s, NULL, x->id, engine_map_version(x->fresh), &x->tiles_rc);
}

/* The hunt is read: the players of its leaderboard this node lacks are read next (the
 * leaderboard names them), if any. */
static void hunt_load_done(void *arg, int ran)
{
    struct hunt_load *x = arg;
    if (!ran || x->failed) {
        if (ran) complain(x->err);
        hunt_load_end(x, 0, ran);
        return;
    }
    struct engine_lb_row rows[256];
    size_t n, off = 0, cap = 0;
    while ((n = engine_lb_top(x->fresh, off, 256, rows)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (hmap_get(&api_app.players, rows[i].player, 16)) continue;
            if (x->n_rows == cap) {
                cap = cap ? 2 * cap : 16;
                void *a = realloc(x->rows, cap * sizeof *x->rows);
                if (!a) {
                    hunt_load_end(x, 0, 1);
                    return;
                }
                x->rows = a;
            }
            memset(&x->rows[x->n_rows], 0, sizeof *x->rows);
            memcpy(x->rows[x->n_rows++].row.id, rows[i].player, 16);
        }
        off += n;
    }
    if (!x->n_rows) hunt_load_end(x, 1, 1);
    else if (api_store_job(hunt_load_players_run, hunt_load_players_done, x))
        hunt_load_end(x, 0, 1);
}

/* Sends the load of hunt id to the tail thread. 0, or -1 (out of memory: nothing sent). */
static int hunt_load_start(const char *id, int rebuild)
{
    struct hunt_load *x = calloc(1, sizeof *x);
    if (!x) return -1;
    snprintf(x->id, sizeof x->id, "%s", id);
    x->rebuild = rebuild;
    x->rc = (struct recovery_config){api_app.cfg.ignore_snapshots, api_app.cfg.fsync_always};
    const struct hunt *h = rebuild ? hmap_get(&api_app.hunts, id, strlen(id)) : NULL;
    x->had_map = h ? engine_map_version(h) : -1;
    if (api_store_job(hunt_load_run, hunt_load_done, x)) {
        free(x);
        return -1;
    }
    return 0;
}

/* Starts the rebuild of a fenced hunt whose writes in flight are done. */
static void rebuild_start(const char *id)
{
    size_t len = strlen(id);
    if ((uintptr_t)hmap_get(&cl.rebuild, id, len) != REBUILD_WAITING || writing(id)) return;
    if (!hmap_get(&api_app.hunts, id, len)) { /* nothing in memory to rebuild */
        hmap_del(&cl.rebuild, id, len);
        return;
    }
    if (!hunt_load_start(id, 1)) /* else out of memory: the next tick */
        VX_FATAL_IF(hmap_put(&cl.rebuild, id, len, (void *)(uintptr_t)REBUILD_RUNNING));
}

static void rebuild_each(const void *key, size_t klen, void *value, void *ctx)
{
    struct hunt_ids *ids = ctx;
    if ((uintptr_t)value == REBUILD_WAITING && ids->n < sizeof ids->id / sizeof ids->id[0])
        snprintf(ids->id[ids->n++], sizeof ids->id[0], "%.*s", (int)klen, (const char *)key);
}

/* The store's hunt list, read on the tail thread (every HUNTS_POLL_MS). */
struct hunt_list {
    char (*ids)[VX_ID_MAX + 1];
    size_t n, cap;
    int rc;
};

static int list_hunt(const char *id, void *ctx)
{
    struct hunt_list *x = ctx;
    if (x->n == x->cap) {
        size_t c = x->cap ? 2 * x->cap : 64;
        void *a = realloc(x->ids, c * sizeof *x->ids);
        if (!a) return STORE_EIO; /* out of memory: as a failed read, listed again later */
        x->ids = a;
        x->cap = c;
    }
    snprintf(x->ids[x->n++], sizeof x->ids[0], "%s", id);
    return 0;
}

static void list_run(struct store *s, void *arg)
{
    struct hunt_list *x = arg;
    x->rc = store_each_hunt(s, list_hunt, x);
}

/* A hunt of the store this node does not hold yet is loaded off the loop (hunt_load). */
static void list_done(void *arg, int ran)
{
    struct hunt_list *x = arg;
    static char marker;
    cl.listing = 0;
    if (ran && x->rc) complain("cannot list the hunts");
    for (size_t i = 0; ran && !x->rc && i < x->n; i++) {
        const char *id = x->ids[i];
        size_t len = strlen(id);
        if (!hmap_get(&api_app.hunts, id, len) && !hmap_get(&cl.loading, id, len) &&
            !hmap_put(&cl.loading, id, len, &marker) && hunt_load_start(id, 0))
            hmap_del(&cl.loading, id, len); /* out of memory: the next list */
    }
    free(x->ids);
    free(x);
}

/* The pushed hunts whose heads the poll looks at, in one read on the tail thread. */
struct heads {
    size_t n, cap;
    char (*ids)[VX_ID_MAX + 1];
    const char **ptrs; /* into ids, for store_heads */
    uint64_t *seqs;
    int rc;
    int64_t sent_ms;
};

static void heads_free(struct heads *x)
{
    if (!x) return;
    free(x->ids);
    free(x->ptrs);
    free(x->seqs);
    free(x);
}

static void heads_run(struct store *s, void *arg)
{
    struct heads *x = arg;
    x->rc = store_heads(s, x->ptrs, x->n, x->seqs);
}

/* The heads came: a hunt whose head is past memory (a push was lost, or is late) gets a
 * fetch; one at its head held every event committed before the look was sent. */
static void heads_done(void *arg, int ran)
{
    struct heads *x = arg;
    cl.heads_inflight = 0;
    if (ran && x->rc) complain("cannot read the heads of the pushed hunts");
    for (size_t i = 0; ran && !x->rc && i < x->n; i++) {
        const char *id = x->ids[i];
        size_t len = strlen(id);
        struct hunt *h = hmap_get(&api_app.hunts, id, len);
        uint64_t e;
        if (!h || hmap_get(&cl.rebuild, id, len) || writing(id) || node_owns(api_app.cfg.node, id, &e))
            continue;
        struct rep *p = rep_of(id);
        ++cl.heads_read;
        if (x->seqs[i] > engine_seq(h)) {
            ++cl.heads_behind;
            if (!p->fetching) send_fetch(id, p, h);
        } else {
            if (x->sent_ms > p->synced_ms) p->synced_ms = x->sent_ms;
            p->behind = 0;
        }
    }
    heads_free(x);
}

/* Adds id to the look at the heads (*xp, made on first use); out of memory: not looked at. */
static void heads_add(struct heads **xp, const char *id)
{
    struct heads *x = *xp;
    if (!x && !(x = *xp = calloc(1, sizeof *x))) return;
    if (x->n == x->cap) {
        size_t c = x->cap ? 2 * x->cap : 64;
        void *a = realloc(x->ids, c * sizeof *x->ids);
        if (!a) return;
        x->ids = a;
        x->cap = c;
    }
    snprintf(x->ids[x->n++], sizeof x->ids[0], "%s", id);
}

static void follow(void *value, void *ctx)
{
    struct hunt *h = value;
    const char *id = engine_hunt_id(h);
    uint64_t e;
    if (hmap_get(&cl.rebuild, id, strlen(id)) || writing(id)) return;
    if (node_owns(api_app.cfg.node, id, &e)) { /* a hunt just taken: up to date at once, */
        api_write_epoch(id, &e);                 /* not at its first write (reads see it) */
        return;
    }
    hmap_del(&cl.ready, id, strlen(id));
    struct rep *p = rep_of(id);
    int64_t now = api_now_ms();
    if (p->fetching || cl.heads_inflight ||
        (now - p->pushed_ms < PUSH_FRESH_MS && now - p->polled_ms < PUSHED_POLL_MS))
        return;
    p->polled_ms = now;
    heads_add(ctx, id); /* its head first: its events only if memory lacks some */
}

static void on_poll(h2o_timeout_entry_t *t)
{
    if (cl.rebuild.count) { /* (started outside the walk: rebuild_start changes the map) */
        struct hunt_ids ids;
        ids.n = 0;
        hmap_each_entry(&cl.rebuild, rebuild_each, &ids);
        for (size_t i = 0; i < ids.n; i++) rebuild_start(ids.id[i]);
    }
    int64_t now = api_now_ms();
    if (now - cl.hunts_listed_ms >= HUNTS_POLL_MS && !cl.listing) {
        struct hunt_list *l = calloc(1, sizeof *l);
        cl.hunts_listed_ms = now;
        if (l && !api_store_job(list_run, list_done, l)) cl.listing = 1;
        else free(l);
    }
    struct heads *x = NULL;
    hmap_each(&api_app.hunts, follow, &x);
    if (x && x->n) {
        x->ptrs = malloc(x->n * sizeof *x->ptrs);
        x->seqs = calloc(x->n, sizeof *x->seqs);
        for (size_t i = 0; x->ptrs && i < x->n; i++) x->ptrs[i] = x->ids[i];
        x->sent_ms = now;
        if (x->ptrs && x->seqs && !api_store_job(heads_run, heads_done, x)) {
            cl.heads_inflight = 1;
            x = NULL;
        }
    }
    heads_free(x); /* nothing to look at, or out of memory: the next tick looks again */
    h2o_timeout_link(cl.loop, &cl.poll_timeout, &cl.poll_tick);
}

void api_cluster_start(void *loop)
{
    hmap_init(&cl.ready);
    hmap_init(&cl.rebuild);
    hmap_init(&cl.loading);
    hmap_init(&cl.writing);
    hmap_init(&cl.reps);
    cl.inited = 1;
    if (!api_app.cfg.node) return;
    cl.loop = loop;
    h2o_timeout_init(cl.loop, &cl.poll_timeout,
                     api_app.cfg.replica_poll_ms ? api_app.cfg.replica_poll_ms : 20);
    cl.poll_tick.cb = on_poll;
    h2o_timeout_link(cl.loop, &cl.poll_timeout, &cl.poll_tick);
    cl.started = 1;
    VX_FATAL_IF(!(cl.tail = tail_create(loop, api_app.cfg.follower, fetched, NULL)));
}

/* A replica's state freed; reads still held are answered 503 (the node is stopping). */
static void free_rep(void *value, void *ctx)
{
    struct rep *p = value;
    held_append(&p->now, &p->next);
    held_stop(&p->now);
    take_end("", p, 0, 0); /* a take whose fetch tail_destroy dropped: its requests */
    free(p);
}

int api_store_job(tail_job_run run, tail_job_done done, void *arg)
{
    return cl.tail ? tail_job(cl.tail, run, done, arg) : -1;
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
    hmap_deinit(&cl.loading);
    hmap_deinit(&cl.writing);
    tail_destroy(cl.tail); /* fetches not answered are dropped: their reads are below */
    cl.tail = NULL;
    hmap_each(&cl.reps, free_rep, NULL);
    hmap_deinit(&cl.reps);
    cl.inited = 0;
}
