/* sim.c — deterministic simulation of a live hunt with store faults and crashes
 * (docs/DESIGN.md "Testing").
 *
 * One seed drives everything: the hunt's definition, thousands of players scanning codes,
 * collecting items and opening chests, retries with idempotency keys (duplicates in
 * flight, retries after a lost answer, a key reused with another body), a simulated
 * clock, when the log commits and when its answers go out, store faults, and crashes.
 *
 * Real code: engine.c (decide/apply/encode/decode/digest), idem.c, log.c in its manual
 * mode (log_create_manual: the writer's own batching, commit, retry and in-doubt code, one
 * writer turn per log_commit_now(), the answers handed back by log_deliver()), recovery.c
 * (recovery_load_hunt, as api_init runs it), store_fault.c over store_sqlite.c on a file
 * in a temp directory (fsync off: a simulated crash never loses what SQLite committed; a
 * real one is tested by the black-box kill -9 tests).
 *
 * Modelled here: api.c's write path without HTTP (idempotency check; 503 while the log
 * says the store is down or its queue is full; decide, apply; one log entry per write with
 * its event, the player's row, the idempotency record and now and then a prune of old
 * ones; the answer when the entry comes back durable), api_init's reload of idempotency
 * records, the clients, the event loop's timing (when the writer commits, when answers
 * go out) and the clock.
 *
 * Store faults, drawn from the seed (store_fault_set) for each commit: a commit that
 * fails, a write that fails, a commit "in doubt" (it landed but reported a failure), a
 * failed read while the log resolves a doubt; and failed reads during recovery. Crashes at
 * random points:
 *   - before a commit: the queued entries were never written and are lost;
 *   - torn, during a commit: a forked child runs the log's next commits on a connection of
 *     its own (store_fault_after_fork) and the fault backend SIGKILLs it at a write or at
 *     COMMIT (half the time after megabytes of filler rows, so uncommitted pages reach the
 *     WAL file);
 *   - after a commit, before its answers went out (log_deliver never called).
 * A stop (SIGTERM) drains the log; during an outage it exits with writes unanswered.
 *
 * What is durable is learnt from the store, not from log.c: after every commit the
 * simulator reads the store through a plain "sqlite:" connection of its own, and each
 * event found must be the next seq and, byte for byte, the event of an entry in flight.
 *
 * Checked: no answer goes out before its event is durable, and answers go out in
 * submission order; a commit fails exactly when it hit an injected fault (one attempt per
 * log_commit_now), so a batch that failed lands on the next try without one, once (a
 * rewrite of a batch that landed in doubt fails on its taken seqs); recovery fails, with a
 * message, exactly when it hit a read fault, and the next attempt succeeds; a chest never
 * has two owners (among durable events and among the events live in memory); the acting
 * player's score in the engine equals the model's sum of the points of its durable and
 * in-flight events, computed from the definition, not from the engine; whenever nothing
 * in flight is still to land, the live state (engine_digest) equals the state built from
 * the durable events; a replayed answer is byte-equal to the first; a key is applied at
 * most once; a lost write is never remembered. After every recovery: the hunt's secret
 * seed (drawn from the run's seed, carried by the define event) is the one it was created
 * with and is revealed only from ends_at on; the state equals the
 * one built from the durable events, the store's log is exactly the durable prefix byte
 * for byte, every durable key and player row is there, and every player's score equals
 * the model's.
 *
 * SIM_SEED=N reproduces a run exactly; SIM_STEPS, SIM_PLAYERS size it; SIM_FAULTS=0 turns
 * the store faults off. SIM_LOOKUP_FAULTS=N (per mille, default 50) also fails the
 * store read of an idempotency lookup that missed memory: the request is refused (503),
 * never taken for a new one (a retry of a write already applied would apply it again).
 * The last line is "N passed, N failed" (one run = one test). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "engine.h"
#include "hmap.h"
#include "idem.h"
#include "log.h"
#include "recovery.h"
#include "store.h"

#define ZONES 3
#define NAMED 4 /* named chests per zone */
#define CODES 40
#define ITEMS 4
#define BODY_MAX 200
#define QUEUE_MAX 8192 /* the log's queue: room for a torn commit's filler too */
#define FLIGHT_MAX 256 /* entries in flight at which the writer is made to commit */
#define IDEM_RETENTION_MS (24 * 3600 * 1000LL)

/* ---- randomness: splitmix64, the only source ------------------------------------------ */
static uint64_t rng;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n)
{
    return rnd() % n;
}
static int chance(int per_mille)
{
    return (int)below(1000) < per_mille;
}

static uint64_t seed, step;
static const char *store_url; /* "sqlite:PATH": the simulator's own view of the store */
static char fault_url[4300];  /* "fault:sqlite:PATH": the server's */
static struct store *eye;     /* the simulator's connection: no faults, never the server's */
static int fault_rate;        /* per mille of commits that meet a new fault */
static int lookup_fault_rate; /* per mille of keyed requests whose store lookup may fail */

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sim: seed %" PRIu64 " step %" PRIu64 ": INVARIANT BROKEN: ", seed, step);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "\nthe store is left in %s\nreproduce: SIM_SEED=%" PRIu64
            " build/sim\n0 passed, 1 failed\n",
            store_url + 7, seed);
    exit(1);
}
#define ENSURE(c, ...)                                                                             \
    do {                                                                                           \
        if (!(c)) fail(__VA_ARGS__);                                                               \
    } while (0)

/* ---- the definition and the model's own view of the rules ------------------------------- */
static struct {
    int64_t code_pts[CODES], named_pts[ZONES][NAMED], range_pts[ZONES];
    int range_count[ZONES];
    int64_t start_ms, end_ms;
    char json[8192];
    uint8_t seed[ENGINE_SEED_BYTES]; /* the hunt's secret seed */
    uint8_t payload[8192 + 64];      /* the encoded DEFINE event: seed, then json */
    size_t payload_len;
} def;

static void make_definition(void)
{
    char *p = def.json, *end = def.json + sizeof def.json;
    char t0[32], t1[32];
    def.start_ms = 1796112000000; /* 2026-12-01 */
    def.end_ms = def.start_ms + 3600 * 1000;
    vx_time_format(def.start_ms, t0);
    vx_time_format(def.end_ms, t1);
    p += snprintf(p, (size_t)(end - p),
                  "{\"name\":\"sim\",\"starts_at\":\"%s\",\"ends_at\":"
                  "\"%s\",\"map\":{\"width\":64,\"height\":64},\"codes\":[",
                  t0, t1);
    for (int i = 0; i < CODES; i++) {
        def.code_pts[i] = (int64_t)below(100) * 5;
        p += snprintf(p, (size_t)(end - p),
                      "%s{\"id\":\"k%d\",\"points\":%" PRId64 ",\"x\":%d,\"y\":%d}", i ? "," : "",
                      i, def.code_pts[i], i, i);
    }
    p += snprintf(p, (size_t)(end - p), "],\"items\":[");
    for (int i = 0; i < ITEMS; i++)
        p += snprintf(p, (size_t)(end - p), "%s{\"id\":\"i%d\",\"x\":1,\"y\":%d,\"quantity\":%d}",
                      i ? "," : "", i, i, 5 + (int)below(400));
    p += snprintf(p, (size_t)(end - p), "],\"zones\":[");
    for (int z = 0; z < ZONES; z++) {
        p += snprintf(p, (size_t)(end - p),
                      "%s{\"id\":\"z%d\",\"x\":%d,\"y\":0,\"w\":8,"
                      "\"h\":8,\"chests\":[",
                      z ? "," : "", z, z * 8);
        for (int c = 0; c < NAMED; c++) {
            def.named_pts[z][c] = 50 + (int64_t)below(500);
            p += snprintf(p, (size_t)(end - p),
                          "%s{\"id\":\"c%d-%d\",\"points\":%" PRId64 ",\"loot\":[\"gem\"]%s}",
                          c ? "," : "", z, c, def.named_pts[z][c],
                          c == 0 ? ",\"requires\":\"i0\"" : "");
        }
        def.range_pts[z] = 1 + (int64_t)below(20);
        def.range_count[z] = 50 + (int)below(400);
        p += snprintf(p, (size_t)(end - p),
                      "],\"chest_range\":{\"prefix\":\"r%d-\",\"count\":%d,"
                      "\"points\":%" PRId64 ",\"loot\":[\"coin\"]}}",
                      z, def.range_count[z], def.range_pts[z]);
    }
    snprintf(p, (size_t)(end - p), "]}");
}

/* The chest an event opened ("" for the other types). */
static const char *chest_of(const struct event *ev)
{
    return ev->type == EVENT_OPEN ? ev->u.open.chest : "";
}

/* The code, item or zone an event names ("" for the other types). */
static const char *subject_of(const struct event *ev)
{
    switch (ev->type) {
    case EVENT_SCAN: return ev->u.scan.code;
    case EVENT_COLLECT: return ev->u.collect.item;
    case EVENT_OPEN: return ev->u.open.zone;
    default: return "";
    }
}

/* Points the rules give an event, from the definition alone. */
static int64_t model_points(const struct event *ev)
{
    int z, i;
    if (ev->type == EVENT_SCAN && sscanf(ev->u.scan.code, "k%d", &i) == 1 && i >= 0 && i < CODES)
        return def.code_pts[i];
    if (ev->type != EVENT_OPEN) return 0;
    const struct event_open *o = &ev->u.open;
    if (sscanf(o->zone, "z%d", &z) != 1 || z < 0 || z >= ZONES) return 0;
    int zz;
    if (sscanf(o->chest, "c%d-%d", &zz, &i) == 2 && zz == z && i >= 0 && i < NAMED)
        return def.named_pts[z][i];
    if (sscanf(o->chest, "r%d-%d", &zz, &i) == 2 && zz == z && i >= 0 && i < def.range_count[z])
        return def.range_pts[z];
    fail("engine opened chest '%s' that zone %s does not have", o->chest, o->zone);
    return 0;
}

/* ---- players (clients) and the model ------------------------------------------------------ */
enum { OP_SCAN, OP_COLLECT, OP_OPEN };

struct request {
    int op, has_key;
    char target[16], key[40], scope[120], body[64];
};

struct player {
    uint8_t id[16];
    char hex[33];
    int64_t durable_score, flight_score; /* the model: points of durable / in-flight events */
    int row_durable;                     /* its player row is durable */
    int waiting;                         /* a request is in flight: its answer has not come */
    int lost;                            /* a keyed request whose answer never came */
    struct request req;                  /* the waiting or lost one */
    uint64_t keys;
};

static struct player *players;
static size_t n_players;

struct answer {
    int status;
    char body[BODY_MAX];
};

/* The model: durable events by seq (their bytes), chest owners, answers by key. */
static struct {
    struct {
        uint8_t type, data[128];
        size_t len;
        int64_t time;
        int player;
    } * log;
    uint64_t durable, cap;
    struct hmap chest_owner; /* chest id -> player + 1, durable opens */
    struct hmap answers;     /* scope "\n" key -> struct answer, durable */
    uint64_t snap_seq;       /* the seq of the snapshot in the store (0: none) */
    uint64_t crashes, torn, spilled, restarts, stops_down, requests, replays, events, rejected,
        unavailable, waits, reused, answered, commit_faults, doubts, recovery_faults, snapshots,
        lookup_refused;
} m;

/* ---- the server: volatile state, lost on a crash ------------------------------------------ */
struct entry {
    struct entry *next;
    struct event ev;
    uint8_t data[128]; /* the encoded event (a DEFINE's is def.payload) */
    size_t len;
    int player, with_row, prune, dups;
    int landed; /* the simulator found its event in the store */
    int64_t points;
    struct request req;
    uint8_t hash[32];
    struct idem_entry *ie;
    struct answer ans;
};

static struct {
    struct store *st, *reader; /* the log's handle; recovery's and idempotency lookups' */
    struct store *snaps;       /* the snapshot thread's (snap.c) */
    struct log *log;
    struct hunt *h, *ref; /* ref: only durable events, applied from their bytes */
    struct idem *idem;
    struct entry *head, *tail; /* in flight (submitted, not answered), in submission order */
    size_t flight;
    int failing; /* the last commit failed: the log holds its batch */
    int64_t idem_pruned_ms;
    struct {
        uint8_t *data;
        size_t len;
        uint64_t seq;
    } snap; /* encoded, waiting for the log to hold its seq */
} srv;

static int fallback_row(const struct store_idem *i, void *arg)
{
    void **o = arg;
    memcpy(o[0], i->req_hash, 32);
    *(int *)o[1] = i->status;
    *(char **)o[2] = strndup(i->body, i->body_len);
    *(size_t *)o[3] = i->body_len;
    *(int64_t *)o[4] = i->created_ms;
    return *(char **)o[2] ? 0 : -1;
}

static int idem_fallback(void *ctx, const char *scope, const char *key, uint8_t hash[32],
                         int *status, char **body, size_t *len, int64_t *created)
{
    void *o[5] = {hash, status, body, len, created};
    return store_get_idem(srv.reader, scope, key, fallback_row, o);
}

static void hkey(const struct request *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s\n%s", r->scope, r->key);
}

/* Builds the request a player sends: an operation, its path (scope), body, maybe a key. */
static void new_request(struct player *p, struct request *r)
{
    uint64_t k = below(100);
    r->op = k < 60 ? OP_SCAN : k < 75 ? OP_COLLECT : OP_OPEN;
    static const char *const paths[] = {"scans", "items/%s/collect", "zones/%s/open"};
    char path[64];
    if (r->op == OP_SCAN) snprintf(r->target, sizeof r->target, "k%d", (int)below(CODES));
    if (r->op == OP_COLLECT) snprintf(r->target, sizeof r->target, "i%d", (int)below(ITEMS));
    if (r->op == OP_OPEN) snprintf(r->target, sizeof r->target, "z%d", (int)below(ZONES));
    snprintf(path, sizeof path, paths[r->op], r->target);
    snprintf(r->scope, sizeof r->scope, "%s POST /v1/hunts/sim/%s", p->hex, path);
    if (r->op == OP_SCAN)
        snprintf(r->body, sizeof r->body, "{\"code\":\"%s\"}", r->target);
    else
        snprintf(r->body, sizeof r->body, "{}");
    r->has_key = chance(700);
    snprintf(r->key, sizeof r->key, "key-%" PRIu64, p->keys++);
}

/* ---- the write path (api.c's, without HTTP): idempotency, room, decide, apply, log ------- */
static int64_t now_ms;
static size_t idem_max = 64; /* small, so evictions send lookups to the store */

static void on_answer(void *arg, int status);

static struct entry *flight_key(const char *hk)
{
    char k[200];
    for (struct entry *e = srv.head; e; e = e->next) {
        if (!e->req.has_key || e->player < 0) continue;
        hkey(&e->req, k, sizeof k);
        if (!strcmp(k, hk)) return e;
    }
    return NULL;
}

static const uint8_t *entry_bytes(const struct entry *e)
{
    return e->player < 0 ? def.payload : e->data;
}

/* Store rows the log writes for e. */
static long entry_rows(const struct entry *e)
{
    return 1 + (e->player >= 0) * (e->with_row + e->req.has_key + e->prune);
}

/* Submits e to the log as api.c's submit_raw does: one log entry with the event, the
 * player's row until it is durable, the idempotency record (after a prune of expired ones
 * at most every 100 ms); e joins the in-flight list until the log hands it back. */
static void submit(struct entry *e)
{
    struct log_entry *le = log_entry_create(on_answer, e);
    struct store_event se = {"sim", e->ev.seq,      e->ev.time_ms, e->ev.type,
                             {0},   entry_bytes(e), e->len, {0}, 0, 0};
    if (!le) abort();
    memcpy(se.player, e->ev.player, 16);
    if (log_entry_event(le, &se)) abort();
    if (e->player >= 0 && e->with_row) {
        struct player *p = &players[e->player];
        struct store_player row = {{0}, p->hex, now_ms, 0};
        memcpy(row.id, p->id, 16);
        if (log_entry_player(le, &row)) abort();
    }
    if (e->player >= 0 && e->req.has_key) {
        if (now_ms - srv.idem_pruned_ms >= 100) {
            if (log_entry_prune_idem(le, now_ms - IDEM_RETENTION_MS)) abort();
            srv.idem_pruned_ms = now_ms;
            e->prune = 1;
        }
        struct store_idem ir = {e->req.scope, e->req.key,          {0},   e->ans.status,
                                e->ans.body,  strlen(e->ans.body), now_ms, NULL};
        memcpy(ir.req_hash, e->hash, 32);
        if (log_entry_idem(le, &ir)) abort();
    }
    ENSURE(log_submit(srv.log, le) == 0, "the log refused an entry although it had room");
    if (srv.tail)
        srv.tail->next = e;
    else
        srv.head = e;
    srv.tail = e;
    srv.flight++;
}

/* idem_find; with SIM_LOOKUP_FAULTS, its store lookup (if it makes one) fails now and then:
 * *failed says so (the request is then answered 503, as api.c does, and not applied). */
static struct idem_entry *find_key(const struct request *r, int *failed)
{
    struct store_fault f;
    if (!lookup_fault_rate || !chance(lookup_fault_rate))
        return idem_find(srv.idem, r->scope, r->key, now_ms, failed);
    store_fault_get(&f);
    f.fail_reads = 1;
    store_fault_set(&f);
    struct idem_entry *e = idem_find(srv.idem, r->scope, r->key, now_ms, failed);
    f.fail_reads = 0;
    store_fault_set(&f);
    return e;
}

/* A duplicate or retry with a key the server knows. Returns 1 when answered. */
static int idem_answer(struct player *p, const struct request *r, const uint8_t hash[32])
{
    char hk[200];
    hkey(r, hk, sizeof hk);
    struct answer *known = hmap_get(&m.answers, hk, strlen(hk));
    int failed;
    struct idem_entry *e = find_key(r, &failed);
    if (failed) { /* 503 store_unavailable: the client retries later; nothing applied */
        m.lookup_refused++;
        return 1;
    }
    if (!e) {
        ENSURE(!known, "durable key '%s' forgotten", r->key);
        return 0;
    }
    if (memcmp(e->req_hash, hash, 32) != 0) return 1; /* 422 idempotency_key_reused */
    if (e->pending) {
        struct entry *q = flight_key(hk);
        ENSURE(q, "key '%s' pending with nothing in flight", r->key);
        q->dups++; /* answered with q's answer when it is durable */
        m.waits++;
        return 1;
    }
    ENSURE(known, "key '%s' replayed, but its write never became durable", r->key);
    ENSURE(e->status == known->status && e->body_len == strlen(known->body) &&
               !memcmp(e->body, known->body, e->body_len),
           "replay of '%s' differs", r->key);
    m.replays++;
    p->lost = 0;
    return 1;
}

static int decide(struct player *p, const struct request *r, struct event *ev)
{
    switch (r->op) {
    case OP_SCAN:
        return engine_scan(srv.h, p->id, r->target, now_ms, ev);
    case OP_COLLECT:
        return engine_collect(srv.h, p->id, r->target, now_ms, ev);
    default:
        return engine_open(srv.h, p->id, r->target, now_ms, ev);
    }
}

static void check_chest_free(const char *chest)
{
    ENSURE(!hmap_get(&m.chest_owner, chest, strlen(chest)), "chest %s opened twice", chest);
    for (struct entry *q = srv.head; q; q = q->next)
        ENSURE(strcmp(chest_of(&q->ev), chest), "chest %s twice", chest);
}

/* Applies a decided event and submits it with its idempotency record and answer. */
static void accept(struct player *p, const struct request *r, struct event *ev,
                   const uint8_t hash[32])
{
    struct entry *e = calloc(1, sizeof *e);
    struct engine_outcome out;
    char err[256];
    if (!e) abort();
    if (ev->type == EVENT_OPEN) check_chest_free(ev->u.open.chest);
    ENSURE(engine_apply(srv.h, ev, &out, err, sizeof err) == ENGINE_OK, "apply: %s", err);
    e->ev = *ev;
    e->player = (int)(p - players);
    e->req = *r;
    e->points = model_points(ev);
    ENSURE(ev->type == EVENT_COLLECT || out.points == e->points, "points %" PRId64 " != %" PRId64,
           out.points, e->points);
    p->flight_score += e->points;
    if (ev->type != EVENT_COLLECT)
        ENSURE(out.score == p->durable_score + p->flight_score,
               "score %" PRId64 " != model %" PRId64, out.score,
               p->durable_score + p->flight_score);
    e->len = event_encode(ev, e->data, sizeof e->data);
    ENSURE(e->len <= sizeof e->data, "event too long");
    memcpy(e->hash, hash, 32);
    e->ans.status = 200;
    snprintf(e->ans.body, sizeof e->ans.body,
             "{\"seq\":%" PRIu64 ",\"a\":\"%s\",\"b\":\"%s\","
             "\"points\":%" PRId64 ",\"score\":%" PRId64 "}",
             ev->seq, subject_of(ev), chest_of(ev), out.points, out.score);
    if (r->has_key && !(e->ie = idem_begin(srv.idem, r->scope, r->key, hash, now_ms))) abort();
    e->with_row = !p->row_durable;
    submit(e);
    p->waiting = 1;
    p->lost = 0;
    p->req = *r;
    m.events++;
}

/* One request from player p, as api.c's player_write + decided + submit_event. */
static void serve(struct player *p, const struct request *r)
{
    uint8_t hash[32];
    struct event ev;
    m.requests++;
    auth_sha256(r->body, strlen(r->body), hash);
    if (r->has_key && idem_answer(p, r, hash)) return;
    if (log_store_down(srv.log) || log_pending(srv.log) >= QUEUE_MAX) {
        m.unavailable++; /* 503 (log_room): nothing decided, nothing applied */
        return;
    }
    uint64_t before = (m.rejected & 63) == 0 ? engine_digest(srv.h) : 0;
    int rc = decide(p, r, &ev);
    if (rc != ENGINE_OK) {
        m.rejected++;
        ENSURE(!before || engine_digest(srv.h) == before, "a refused command changed the state");
        p->lost = 0; /* answered with an error: the client moves on */
        return;
    }
    accept(p, r, &ev, hash);
}

static void define_hunt(void)
{
    struct entry *e = calloc(1, sizeof *e);
    char err[256];
    if (!e) abort();
    ENSURE(engine_define(srv.h, def.json, strlen(def.json), def.seed, now_ms, &e->ev, err,
                         sizeof err) == ENGINE_OK,
           "define: %s", err);
    ENSURE(engine_apply(srv.h, &e->ev, NULL, err, sizeof err) == ENGINE_OK, "define: %s", err);
    def.payload_len = event_encode(&e->ev, def.payload, sizeof def.payload);
    ENSURE(def.payload_len == 2 + ENGINE_SEED_BYTES + strlen(def.json), "define payload");
    e->len = def.payload_len;
    e->player = -1;
    submit(e);
}

/* ---- durability, learnt from the store; answers, handed back by the log ------------------ */

/* The model learns that e is durable: its bytes, its chest, its points, its key. */
static void land(struct entry *e)
{
    char err[256], hk[200];
    struct event d;
    memset(&d, 0, sizeof d);
    d.seq = e->ev.seq;
    d.time_ms = e->ev.time_ms;
    memcpy(d.player, e->ev.player, 16);
    ENSURE(event_decode(&d, e->ev.type, entry_bytes(e), e->len) == ENGINE_OK, "decode");
    ENSURE(engine_apply(srv.ref, &d, NULL, err, sizeof err) == ENGINE_OK, "ref apply: %s", err);
    if (m.durable == m.cap) {
        m.cap = m.cap ? 2 * m.cap : 1024;
        if (!(m.log = realloc(m.log, m.cap * sizeof *m.log))) abort();
    }
    m.log[m.durable].type = e->ev.type;
    m.log[m.durable].len = e->player < 0 ? 0 : e->len; /* DEFINE: compared with def.payload */
    memcpy(m.log[m.durable].data, e->data, e->player < 0 ? 0 : e->len);
    m.log[m.durable].time = e->ev.time_ms;
    m.log[m.durable++].player = e->player;
    e->landed = 1;
    if (e->player < 0) return;
    struct player *p = &players[e->player];
    if (e->ev.type == EVENT_OPEN) {
        const char *chest = e->ev.u.open.chest;
        ENSURE(!hmap_get(&m.chest_owner, chest, strlen(chest)), "chest %s: two owners", chest);
        if (hmap_put(&m.chest_owner, chest, strlen(chest), (void *)(intptr_t)(e->player + 1)))
            abort();
    }
    p->durable_score += e->points;
    p->flight_score -= e->points;
    if (e->with_row) p->row_durable = 1;
    if (!e->req.has_key) return;
    hkey(&e->req, hk, sizeof hk);
    ENSURE(!hmap_get(&m.answers, hk, strlen(hk)), "key '%s' applied twice", e->req.key);
    struct answer *a = malloc(sizeof *a);
    if (!a) abort();
    *a = e->ans;
    if (hmap_put(&m.answers, hk, strlen(hk), a)) abort();
}

/* An event the store holds past the durable prefix: the next seq, and byte for byte the
 * event of the oldest entry in flight not yet durable (*next). */
static int look_event(const struct store_event *se, void *arg)
{
    struct entry **next = arg, *e = *next;
    ENSURE(se->seq == m.durable + 1, "the store has seq %" PRIu64 " after durable seq %" PRIu64,
           se->seq, m.durable);
    ENSURE(e && e->ev.seq == se->seq, "the store has seq %" PRIu64 " that no entry in flight holds",
           se->seq);
    ENSURE(se->type == e->ev.type && se->time_ms == e->ev.time_ms &&
               !memcmp(se->player, e->ev.player, 16) && se->data_len == e->len &&
               !memcmp(se->data, entry_bytes(e), e->len),
           "the store's seq %" PRIu64 " is not the event submitted", se->seq);
    land(e);
    *next = e->next;
    return 0;
}

/* After the log (or a torn writer) touched the store: what landed is now durable. */
static void observe(void)
{
    struct entry *next = srv.head;
    uint64_t durable = m.durable;
    while (next && next->landed)
        next = next->next;
    ENSURE(store_each_event(eye, "sim", m.durable + 1, look_event, &next) == 0,
           "the simulator cannot read the store");
    if (!next && m.durable > durable)
        ENSURE(engine_digest(srv.h) == engine_digest(srv.ref),
               "live state differs from the durable log");
}

/* The log hands e back (api.c's on_durable): the answer goes out. */
static void on_answer(void *arg, int status)
{
    struct entry *e = arg;
    ENSURE(status == 0, "an entry handed back with status %d", status);
    ENSURE(e == srv.head, "seq %" PRIu64 " answered out of submission order", e->ev.seq);
    ENSURE(e->landed, "seq %" PRIu64 " answered before it was durable", e->ev.seq);
    srv.head = e->next;
    if (!srv.head) srv.tail = NULL;
    srv.flight--;
    if (e->player >= 0) {
        struct player *p = &players[e->player];
        p->waiting = 0;
        p->lost = 0;
        if (e->ie)
            ENSURE(idem_finish(srv.idem, e->ie, e->ans.status, e->ans.body, strlen(e->ans.body)) ==
                       0,
                   "idem_finish");
    }
    m.answered++;
    free(e);
}

/* This commit's faults: maybe a new one, and a failed read while a doubt may be resolved. */
static void arm_faults(void)
{
    struct store_fault f;
    store_fault_get(&f);
    if (!f.fail_commits && !f.doubt_commits && !f.fail_writes && chance(fault_rate)) {
        uint64_t k = below(3);
        if (k == 0) f.fail_commits = 1 + (int)below(3);
        if (k == 1) f.fail_writes = 1;
        if (k == 2) f.doubt_commits = 1;
    }
    if (srv.failing && chance(300)) f.fail_reads = 1, f.skip_reads = 0;
    store_fault_set(&f);
}

/* One turn of the log's writer. A commit fails exactly when it hits an injected fault:
 * log_commit_now makes one attempt, and a batch that failed must land on its next try
 * without a fault (a batch that landed in doubt and were written again would fail on its
 * taken seqs). Returns the commit's result. */
static int commit_turn(void)
{
    struct store_fault before, after;
    ENSURE(log_pending(srv.log) == srv.flight, "the log has %zu entries in flight, the server %zu",
           log_pending(srv.log), srv.flight);
    arm_faults();
    store_fault_get(&before);
    int rc = log_commit_now(srv.log);
    store_fault_get(&after);
    int hit = before.fail_commits != after.fail_commits ||
              before.doubt_commits != after.doubt_commits ||
              before.fail_writes != after.fail_writes || before.fail_reads != after.fail_reads;
    m.doubts += before.doubt_commits != after.doubt_commits;
    after.fail_reads = 0; /* for this commit only: idempotency lookups never meet it */
    store_fault_set(&after);
    observe();
    ENSURE(!rc || hit, "a commit failed (%s) with no fault injected", store_err_str(rc));
    ENSURE(rc || !hit, "a commit succeeded through an injected fault");
    ENSURE(log_store_down(srv.log) == (rc != 0), "log_store_down() is %d after a commit (%d)",
           log_store_down(srv.log), rc);
    m.commit_faults += hit;
    srv.failing = rc != 0;
    return rc;
}

/* ---- snapshots (snap.c's, without its fork: the hunt is encoded in place) ----------------- */
static void snapshot_take(void)
{
    if (srv.snap.data || engine_seq(srv.h) <= m.snap_seq) return;
    ENSURE(engine_snapshot_encode(srv.h, &srv.snap.data, &srv.snap.len) == 0, "snapshot");
    srv.snap.seq = engine_seq(srv.h);
}

/* snap.c's store_when_durable: stored once the log holds its seq (asked of the store). */
static void snapshot_store(void)
{
    uint64_t last = 0;
    struct store_fault before, after;
    if (!srv.snap.data) return;
    ENSURE(store_last_seq(srv.snaps, "sim", &last) == 0, "store_last_seq");
    ENSURE(last == m.durable, "the store's last seq is %" PRIu64 ", %" PRIu64 " durable", last,
           m.durable);
    if (last < srv.snap.seq) return;
    store_fault_get(&before);
    int rc = store_put_snapshot(srv.snaps, "sim", srv.snap.seq, srv.snap.data, srv.snap.len);
    store_fault_get(&after);
    ENSURE(!rc == (before.fail_writes == after.fail_writes), "store_put_snapshot: %d", rc);
    if (!rc) m.snap_seq = srv.snap.seq, m.snapshots++;
    free(srv.snap.data);
    srv.snap.data = NULL;
}

/* ---- crashes and recovery ---------------------------------------------------------------- */

/* The store's log read back by the simulator: exactly the durable prefix, byte for byte. */
static int check_event(const struct store_event *se, void *arg)
{
    uint64_t *n = arg;
    ENSURE(se->seq == *n + 1 && se->seq <= m.durable,
           "store has seq %" PRIu64 " (durable %" PRIu64 ")", se->seq, m.durable);
    const typeof(*m.log) *want = &m.log[se->seq - 1];
    int define = se->type == EVENT_DEFINE;
    ENSURE(se->type == want->type && se->time_ms == want->time, "event %" PRIu64 " differs",
           se->seq);
    ENSURE(define ? se->data_len == def.payload_len && !memcmp(se->data, def.payload, se->data_len)
                  : se->data_len == want->len && !memcmp(se->data, want->data, want->len),
           "event %" PRIu64 " bytes differ", se->seq);
    (*n)++;
    return 0;
}

static int load_idem(const struct store_idem *i, void *arg)
{
    (*(uint64_t *)arg)++;
    return idem_load(srv.idem, i->scope, i->key, i->req_hash, i->status, i->body, i->body_len,
                     i->created_ms);
}

static int count_player(const struct store_player *p, void *arg)
{
    (*(uint64_t *)arg)++;
    return 0;
}

static int count_hunt(const char *hunt, void *arg)
{
    ENSURE(!strcmp(hunt, "sim"), "store lists hunt '%s' that nothing committed", hunt);
    (*(int *)arg)++;
    return 0;
}

static void check_scores(void)
{
    for (size_t i = 0; i < n_players; i++) {
        int64_t score;
        uint64_t rank;
        engine_player_score(srv.h, players[i].id, &score, &rank);
        ENSURE(score == players[i].durable_score + players[i].flight_score,
               "player %zu: score %" PRId64 " != model %" PRId64, i, score,
               players[i].durable_score + players[i].flight_score);
    }
}

/* One try at what api_init does with the store: the idempotency records, then the hunt
 * (recovery.c). 0, or -1 with err set and nothing kept. */
static int load(struct recovery_stats *rs, uint64_t *idems, char *err, size_t errcap)
{
    static const struct recovery_config cfg = {0, 0};
    uint64_t from = 0;
    *idems = 0;
    err[0] = '\0';
    if (!(srv.idem = idem_create(idem_max, IDEM_RETENTION_MS))) abort();
    idem_set_fallback(srv.idem, idem_fallback, NULL);
    if (store_each_idem(srv.reader, now_ms - IDEM_RETENTION_MS, load_idem, idems)) {
        snprintf(err, errcap, "cannot load the idempotency records");
    } else if (recovery_load_hunt(srv.reader, &cfg, "sim", &srv.h, &from, rs, err, errcap) == 0) {
        ENSURE(from == m.snap_seq,
               "replay began after seq %" PRIu64 ", the snapshot is at %" PRIu64, from, m.snap_seq);
        return 0;
    }
    idem_destroy(srv.idem);
    srv.idem = NULL;
    return -1;
}

/* load() until it succeeds; now and then its reads fail first: each failed attempt must
 * have hit an injected fault and say why, and one that hit a fault must fail. */
static void load_retrying(struct recovery_stats *rs, uint64_t *idems)
{
    char err[512];
    struct store_fault f, before, after;
    store_fault_get(&f);
    if (fault_rate && chance(300)) {
        f.fail_reads = 1 + (int)below(2);
        f.skip_reads = (int)below(4); /* idempotency records, snapshot, log, its last seq */
        store_fault_set(&f);
    }
    for (;;) {
        *rs = (struct recovery_stats){0};
        store_fault_get(&before);
        int rc = load(rs, idems, err, sizeof err);
        store_fault_get(&after);
        int hit = before.fail_reads != after.fail_reads;
        ENSURE(!rc || hit, "recovery failed with no fault injected: %s", err);
        ENSURE(rc || !hit, "recovery went on through a failed read");
        if (!rc) break;
        ENSURE(err[0], "recovery failed without a message");
        m.recovery_faults++;
    }
    after.fail_reads = after.skip_reads = 0;
    store_fault_set(&after);
}

/* What recovery brought back, against the store (read by the simulator) and the model. */
/* A recovered hunt has the seed it was created with, revealed from ends_at on only. */
static void check_seed(const struct hunt *h)
{
    char hex[2 * ENGINE_SEED_BYTES + 1], want[2 * ENGINE_SEED_BYTES + 1];
    if (!engine_defined(h)) return;
    for (int i = 0; i < ENGINE_SEED_BYTES; i++)
        snprintf(want + 2 * i, 3, "%02x", def.seed[i]);
    ENSURE(engine_draw_rule(h) == ENGINE_DRAW_HMAC, "draw rule %d", engine_draw_rule(h));
    ENSURE(engine_seed_reveal(h, def.end_ms - 1, hex) == -1, "seed revealed before the end");
    ENSURE(engine_seed_reveal(h, def.end_ms, hex) == 0 && !strcmp(hex, want), "seed lost");
}

static void check_recovered(const struct recovery_stats *rs, uint64_t idems)
{
    uint64_t rows = 0, want_rows = 0, events = 0;
    int hunts = 0;
    ENSURE(store_each_event(eye, "sim", 1, check_event, &events) == 0 && events == m.durable,
           "store has %" PRIu64 " events, %" PRIu64 " durable", events, m.durable);
    ENSURE(rs->events == m.durable - m.snap_seq && rs->snapshots == (m.snap_seq > 0),
           "recovery replayed %" PRIu64 " events (%zu snapshots), %" PRIu64
           " durable after seq %" PRIu64,
           rs->events, rs->snapshots, m.durable, m.snap_seq);
    ENSURE(store_each_hunt(eye, count_hunt, &hunts) == 0 && hunts == (m.durable > 0),
           "hunts in the store");
    ENSURE(engine_digest(srv.h) == engine_digest(srv.ref),
           "recovered state differs from the durable prefix");
    check_seed(srv.h);
    ENSURE(idems == m.answers.count, "store has %" PRIu64 " keys, %zu durable", idems,
           m.answers.count);
    ENSURE(store_each_player(eye, count_player, &rows) == 0, "players");
    for (size_t i = 0; i < n_players; i++)
        want_rows += players[i].row_durable;
    ENSURE(rows == want_rows, "store has %" PRIu64 " players, model %" PRIu64, rows, want_rows);
    check_scores();
}

/* Starts the server from what the store holds, as api_init does. */
static void recover(void)
{
    char err[256];
    struct recovery_stats rs;
    uint64_t idems = 0;
    struct store **handles[] = {&srv.st, &srv.reader, &srv.snaps};
    for (int i = 0; i < 3; i++)
        ENSURE(store_open(fault_url, STORE_FSYNC_OFF, handles[i], err, sizeof err) == 0, "open: %s",
               err);
    load_retrying(&rs, &idems);
    check_recovered(&rs, idems);
    if (!(srv.log = log_create_manual(srv.st, QUEUE_MAX))) abort();
    srv.failing = 0;
    srv.idem_pruned_ms = 0;
    m.restarts++;
}

/* The process dies: everything in memory goes, the log's queue and held batch with it. */
static void die(void)
{
    log_destroy(srv.log); /* manual mode: no callback runs */
    for (struct entry *e = srv.head, *next; e; e = next) {
        next = e->next;
        if (e->player >= 0) {
            struct player *p = &players[e->player];
            if (!e->landed) p->flight_score -= e->points;
            p->waiting = 0;
            p->lost = e->req.has_key;
        }
        free(e);
    }
    srv.head = srv.tail = NULL;
    srv.flight = 0;
    engine_hunt_destroy(srv.h);
    idem_destroy(srv.idem);
    store_close(srv.st);
    store_close(srv.reader);
    store_close(srv.snaps);
    free(srv.snap.data);
    srv.snap.data = NULL;
    srv.h = NULL;
    srv.idem = NULL;
    srv.st = srv.reader = srv.snaps = NULL;
    srv.log = NULL;
}

static void no_answer(void *arg, int status)
{
    _exit(6); /* the torn writer never gets this far */
}

/* Entries enough to overflow SQLite's page cache (2 MiB by default), so that the open
 * transaction spills pages into the WAL file before it is killed. */
static void submit_filler(void)
{
    static uint8_t blob[1024];
    for (uint64_t seq = 1; seq <= 4096; seq++) {
        struct log_entry *le = log_entry_create(no_answer, NULL);
        struct store_event se = {"zz-uncommitted", seq, 0, EVENT_SCAN, {0}, blob, sizeof blob, {0}, 0, 0};
        if (!le || log_entry_event(le, &se) || log_submit(srv.log, le)) _exit(5);
    }
}

/* The WAL file's size and modification time: a spill into it changes one (once the file
 * is large, a spill reuses its pages without growing it). */
static uint64_t wal_stamp(void)
{
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s-wal", store_url + 7);
    if (stat(path, &sb)) return 0;
    return (uint64_t)sb.st_size ^ (uint64_t)sb.st_mtim.tv_sec * 1000000007u ^
           (uint64_t)sb.st_mtim.tv_nsec;
}

/* The log's writer killed in the middle of a commit: a child process takes over this
 * server's log (its store handle reconnected: store_fault_after_fork) and runs its next
 * commits until the fault backend kills it, before one of the rows still to be written
 * or at COMMIT (half the time after megabytes of filler rows). A batch the log held from
 * a failed commit may land first: that is what would have happened. */
static void torn_commit(void)
{
    long rows = 0;
    for (struct entry *e = srv.head; e; e = e->next)
        rows += e->landed ? 0 : entry_rows(e);
    if (!rows) return;
    int spill = chance(500), at_commit = spill || chance(300);
    int kill_write = at_commit ? 0 : 1 + (int)below((uint64_t)rows);
    uint64_t wal0 = wal_stamp();
    fflush(NULL);
    pid_t pid = fork();
    ENSURE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (store_fault_after_fork(srv.st)) _exit(3);
        store_fault_set(
            &(struct store_fault){.kill_writes = kill_write, .kill_commits = at_commit});
        if (spill) submit_filler();
        for (int i = 0; i < 3; i++)
            log_commit_now(srv.log);
        _exit(4); /* alive: the log wrote fewer rows than its entries hold */
    }
    int status;
    ENSURE(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
           "the torn writer did not die as planned (status %d; exit 4: it wrote fewer than the "
           "%ld rows of the entries in flight)",
           status, rows);
    m.torn++;
    m.spilled += spill && wal_stamp() != wal0;
    observe();
}

static void crash(void)
{
    int kind = (int)below(3);
    if (kind == 1) torn_commit();
    if (kind == 2) commit_turn(); /* and no answer goes out */
    die();
    m.crashes++;
    recover();
}

/* SIGTERM: the log drains (each batch committed, its answers out), then a restart. A stop
 * while the store fails exits with that batch unanswered (log.c's writer: _exit(1)). */
static void clean_restart(void)
{
    for (int i = 0; log_pending(srv.log); i++) {
        ENSURE(i < 8, "the log does not drain: %zu entries stay in flight", log_pending(srv.log));
        if (commit_turn()) {
            m.stops_down++;
            die();
            recover();
            return;
        }
        log_deliver(srv.log);
    }
    ENSURE(!srv.head, "the log is empty, but seq %" PRIu64 " was never answered", srv.head->ev.seq);
    uint64_t before = engine_digest(srv.h);
    die();
    recover();
    ENSURE(engine_digest(srv.h) == before, "clean restart changed the state");
}

/* ---- the steps ---------------------------------------------------------------------------- */
static void client_step(void)
{
    struct player *p = &players[below(n_players)];
    struct request r;
    if (p->waiting) { /* impatient: the same request again (a keyed one waits) */
        if (p->req.has_key && chance(300)) serve(p, &p->req);
        return;
    }
    if (p->lost) { /* the answer never came: retry with the same key and body */
        serve(p, &p->req);
        p->lost = 0;
        return;
    }
    new_request(p, &r);
    if (chance(20)) { /* an old key again with another body: 422, nothing changes */
        char hk[200];
        snprintf(r.key, sizeof r.key, "key-%" PRIu64, below(p->keys));
        r.has_key = 1;
        hkey(&r, hk, sizeof hk);
        if (hmap_get(&m.answers, hk, strlen(hk)) && !flight_key(hk)) {
            uint8_t hash[32];
            auth_sha256("{\"other\":1}", 11, hash);
            uint64_t before = engine_digest(srv.h);
            struct idem_entry *e = idem_find(srv.idem, r.scope, r.key, now_ms, NULL);
            ENSURE(e && !e->pending && memcmp(e->req_hash, hash, 32), "key reuse not caught");
            ENSURE(engine_digest(srv.h) == before, "key reuse changed the state");
            m.reused++;
            return;
        }
        snprintf(r.key, sizeof r.key, "key-%" PRIu64, p->keys++);
    }
    serve(p, &r);
    int64_t score;
    uint64_t rank;
    engine_player_score(srv.h, p->id, &score, &rank);
    ENSURE(score == p->durable_score + p->flight_score, "score of the acting player");
}

static void one_step(void)
{
    now_ms += (int64_t)below(150);
    if (!engine_defined(srv.h) && !srv.head) define_hunt();
    uint64_t r = below(1000);
    if (r < 3) {
        crash();
    } else if (r < 4) {
        clean_restart();
    } else if (r < 120 || srv.flight >= FLIGHT_MAX) {
        if (commit_turn() == 0 && chance(800)) log_deliver(srv.log);
        snapshot_store();
    } else if (r < 125) {
        snapshot_take();
    } else if (r < 150) {
        log_deliver(srv.log); /* a loop turn that hands back what the writer committed */
    } else {
        client_step();
    }
    if (step % 512 == 0) check_scores();
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

int main(void)
{
    struct timespec ts;
    char err[256];
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = env_u64("SIM_SEED", ((uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 20) % 1000000000);
    uint64_t steps = env_u64("SIM_STEPS", 20000);
    n_players = env_u64("SIM_PLAYERS", 2000);
    rng = seed;
    fault_rate = 10 + (int)below(50);
    if (!env_u64("SIM_FAULTS", 1)) fault_rate = 0;
    lookup_fault_rate = (int)env_u64("SIM_LOOKUP_FAULTS", 50);
    printf("sim: seed %" PRIu64 " (SIM_SEED=%" PRIu64 " reproduces), %" PRIu64
           " steps, %zu players, faults at %d per mille of commits\n",
           seed, seed, steps, n_players, fault_rate);
    fflush(stdout);
    char dir[4096], url[4200], path[4200];
    snprintf(dir, sizeof dir, "%s/veltrix-sim-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir) || !(players = calloc(n_players ? n_players : 1, sizeof *players))) abort();
    snprintf(url, sizeof url, "sqlite:%s/sim.db", dir);
    snprintf(fault_url, sizeof fault_url, "fault:%s", url);
    store_url = url;
    ENSURE(store_open(store_url, STORE_FSYNC_OFF, &eye, err, sizeof err) == 0, "open: %s", err);
    make_definition();
    uint64_t saved = rng; /* the hunt's seed, from the run's; rng's sequence stays as it was */
    rng = seed ^ 0x5eed5eed5eed5eedull;
    for (int i = 0; i < ENGINE_SEED_BYTES / 8; i++) {
        uint64_t w = rnd();
        memcpy(def.seed + 8 * i, &w, 8);
    }
    rng = saved;
    for (size_t i = 0; i < n_players; i++) {
        for (int b = 0; b < 16; b++)
            players[i].id[b] = (uint8_t)rnd();
        for (int b = 0; b < 16; b++)
            sprintf(players[i].hex + 2 * b, "%02x", players[i].id[b]);
    }
    hmap_init(&m.chest_owner);
    hmap_init(&m.answers);
    now_ms = def.start_ms - 60000;
    if (!(srv.ref = engine_hunt_create("sim"))) abort();
    recover();
    for (step = 1; step <= steps; step++)
        one_step();
    fault_rate = 0; /* the end: the store heals, everything in flight lands and is answered */
    store_fault_set(&(struct store_fault){0});
    clean_restart();
    printf("sim: seed %" PRIu64 ": %" PRIu64 " steps, %" PRIu64 " requests, %" PRIu64
           " events durable, %" PRIu64 " answers, %" PRIu64 " refused, %" PRIu64
           " unavailable (503), %" PRIu64 " replays, %" PRIu64 " duplicates waited, %" PRIu64
           " keys reused, %zu chests opened, %" PRIu64 " commits failed (%" PRIu64
           " in doubt), %" PRIu64 " recoveries failed, %" PRIu64 " crashes (%" PRIu64
           " torn commits, %" PRIu64 " of them spilling into the WAL), %" PRIu64
           " stops during an outage, %" PRIu64 " restarts, %" PRIu64 " snapshots, %" PRIu64
           " key lookups refused (503): every invariant held\n",
           seed, steps, m.requests, m.durable, m.answered, m.rejected, m.unavailable, m.replays,
           m.waits, m.reused, m.chest_owner.count, m.commit_faults, m.doubts, m.recovery_faults,
           m.crashes, m.torn, m.spilled, m.stops_down, m.restarts, m.snapshots, m.lookup_refused);
    die();
    store_close(eye);
    engine_hunt_destroy(srv.ref);
    static const char *const files[] = {"sim.db", "sim.db-wal", "sim.db-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    printf("1 passed, 0 failed\n");
    return 0;
}
