/* sim.c — deterministic simulation of a live hunt with crashes (docs/DESIGN.md "Testing").
 *
 * One seed drives everything: the hunt's definition, thousands of players scanning codes,
 * collecting items and opening chests, retries with idempotency keys (duplicates in
 * flight, retries after a lost answer, a key reused with another body), a simulated
 * clock, group commits at random points, and crashes at random points:
 *   - before a commit: the queued batch was never written and is lost;
 *   - torn, during a commit: a child process opens the store, writes part or all of the
 *     batch's rows in the open transaction (half the time with megabytes of filler after
 *     them, so uncommitted pages reach the WAL file) and is killed with SIGKILL before
 *     COMMIT;
 *   - after a commit, before the answers went out: durable, but the clients retry.
 * A restart recovers the way api.c does: replay the hunt's log from the store into a
 * fresh engine and load the idempotency records, with the store as the lookup fallback.
 *
 * Real parts: engine.c (decide/apply/encode/decode/digest), idem.c, store_sqlite.c on a
 * file in a temp directory (fsync off: a simulated crash never loses what SQLite
 * committed; a real one is tested by the black-box kill -9 tests). The group commit is
 * modelled here with the same store calls log.c makes (one transaction per batch), since
 * log.c's writer thread is not deterministic. "Acknowledged" = committed.
 *
 * Checked after every step: a chest never has two owners (among acknowledged events and
 * among the events live in memory); the acting player's score in the engine equals the
 * model's sum of the points of its acknowledged (+ still queued) events, computed from
 * the definition, not from the engine; a replayed answer is byte-equal to the first;
 * a key is applied at most once; a lost write is never remembered. After every
 * recovery: the state (engine_digest) equals the state built by applying the
 * acknowledged events in order, the store's log is exactly the acknowledged prefix
 * byte for byte, every player's score equals the model's, and the hunt's secret seed
 * (drawn from the run's seed, carried by the define event) is the one it was created
 * with and is revealed only from ends_at on.
 *
 * SIM_SEED=N reproduces a run exactly; SIM_STEPS, SIM_PLAYERS size it. The last line is
 * "N passed, N failed" (one run = one test). */
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
#include "store.h"

#define ZONES 3
#define NAMED 4 /* named chests per zone */
#define CODES 40
#define ITEMS 4
#define BODY_MAX 200

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
static const char *store_url;

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
    engine_time_format(def.start_ms, t0);
    engine_time_format(def.end_ms, t1);
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

/* Points the rules give an event, from the definition alone. */
static int64_t model_points(const struct event *ev)
{
    int z, i;
    if (ev->type == EVENT_SCAN && sscanf(ev->a, "k%d", &i) == 1 && i >= 0 && i < CODES)
        return def.code_pts[i];
    if (ev->type != EVENT_OPEN || sscanf(ev->a, "z%d", &z) != 1 || z < 0 || z >= ZONES) return 0;
    int zz;
    if (sscanf(ev->b, "c%d-%d", &zz, &i) == 2 && zz == z && i >= 0 && i < NAMED)
        return def.named_pts[z][i];
    if (sscanf(ev->b, "r%d-%d", &zz, &i) == 2 && zz == z && i >= 0 && i < def.range_count[z])
        return def.range_pts[z];
    fail("engine opened chest '%s' that zone %s does not have", ev->b, ev->a);
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
    int64_t acked_score, queued_score; /* the model */
    int row_acked;                     /* its player row is durable */
    int waiting;                       /* a request is queued: its answer has not come */
    int lost;                          /* a keyed request whose answer never came */
    struct request req;                /* the waiting or lost one */
    uint64_t keys;
};

static struct player *players;
static size_t n_players;

struct answer {
    int status;
    char body[BODY_MAX];
};

/* The model: acknowledged events by seq (their bytes), chest owners, answers by key. */
static struct {
    struct {
        uint8_t type, data[128];
        size_t len;
        int64_t time;
        int player;
    } * log;
    uint64_t acked, cap;
    struct hmap chest_owner; /* chest id -> player + 1, acknowledged opens */
    struct hmap answers;     /* scope "\n" key -> struct answer, acknowledged */
    uint64_t crashes, torn, spilled, restarts, requests, replays, events, rejected, waits, reused;
} m;

/* ---- the server: volatile state, lost on a crash ------------------------------------------ */
struct entry {
    struct entry *next;
    struct event ev;
    uint8_t data[128]; /* the encoded event (a DEFINE's is def.payload) */
    size_t len;
    int player, with_row, dups;
    int64_t points;
    struct request req;
    uint8_t hash[32];
    struct idem_entry *ie;
    struct answer ans;
};

static struct {
    struct store *st;
    struct hunt *h, *ref; /* ref: only acknowledged events, applied from their bytes */
    struct idem *idem;
    struct entry *head, *tail;
    size_t queued;
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
    return store_get_idem(srv.st, scope, key, fallback_row, o);
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

/* ---- the write path (api.c's, without HTTP): idempotency, decide, apply, queue ---------- */
static int64_t now_ms;
static size_t idem_max = 64; /* small, so evictions send lookups to the store */

static void enqueue(struct entry *e)
{
    if (srv.tail)
        srv.tail->next = e;
    else
        srv.head = e;
    srv.tail = e;
    srv.queued++;
}

static struct entry *queued_key(const char *hk)
{
    char k[200];
    for (struct entry *e = srv.head; e; e = e->next) {
        if (!e->req.has_key || e->player < 0) continue;
        hkey(&e->req, k, sizeof k);
        if (!strcmp(k, hk)) return e;
    }
    return NULL;
}

/* A duplicate or retry with a key the server knows. Returns 1 when answered. */
static int idem_answer(struct player *p, const struct request *r, const uint8_t hash[32])
{
    char hk[200];
    hkey(r, hk, sizeof hk);
    struct answer *known = hmap_get(&m.answers, hk, strlen(hk));
    struct idem_entry *e = idem_find(srv.idem, r->scope, r->key, now_ms);
    if (!e) {
        ENSURE(!known, "acknowledged key '%s' forgotten", r->key);
        return 0;
    }
    if (memcmp(e->req_hash, hash, 32) != 0) return 1; /* 422 idempotency_key_reused */
    if (e->pending) {
        struct entry *q = queued_key(hk);
        ENSURE(q, "key '%s' pending with nothing queued", r->key);
        q->dups++; /* answered with q's answer when it is durable */
        m.waits++;
        return 1;
    }
    ENSURE(known, "key '%s' replayed, but its write was never acknowledged", r->key);
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
        ENSURE(q->ev.type != EVENT_OPEN || strcmp(q->ev.b, chest), "chest %s twice", chest);
}

/* Applies a decided event and queues it with its idempotency record and answer. */
static void accept(struct player *p, const struct request *r, struct event *ev,
                   const uint8_t hash[32])
{
    struct entry *e = calloc(1, sizeof *e);
    struct engine_outcome out;
    char err[256];
    if (!e) abort();
    if (ev->type == EVENT_OPEN) check_chest_free(ev->b);
    ENSURE(engine_apply(srv.h, ev, &out, err, sizeof err) == ENGINE_OK, "apply: %s", err);
    e->ev = *ev;
    e->player = (int)(p - players);
    e->req = *r;
    e->points = model_points(ev);
    ENSURE(ev->type == EVENT_COLLECT || out.points == e->points, "points %" PRId64 " != %" PRId64,
           out.points, e->points);
    p->queued_score += e->points;
    if (ev->type != EVENT_COLLECT)
        ENSURE(out.score == p->acked_score + p->queued_score, "score %" PRId64 " != model %" PRId64,
               out.score, p->acked_score + p->queued_score);
    e->len = engine_event_encode(ev, e->data, sizeof e->data);
    ENSURE(e->len <= sizeof e->data, "event too long");
    memcpy(e->hash, hash, 32);
    e->ans.status = 200;
    snprintf(e->ans.body, sizeof e->ans.body,
             "{\"seq\":%" PRIu64 ",\"a\":\"%s\",\"b\":\"%s\","
             "\"points\":%" PRId64 ",\"score\":%" PRId64 "}",
             ev->seq, ev->a, ev->b, out.points, out.score);
    if (r->has_key && !(e->ie = idem_begin(srv.idem, r->scope, r->key, hash, now_ms))) abort();
    e->with_row = !p->row_acked;
    enqueue(e);
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
    def.payload_len = engine_event_encode(&e->ev, def.payload, sizeof def.payload);
    ENSURE(def.payload_len == 2 + ENGINE_SEED_BYTES + strlen(def.json), "define payload");
    e->len = def.payload_len;
    e->player = -1;
    enqueue(e);
}

/* ---- group commit ------------------------------------------------------------------------ */
static const uint8_t *entry_bytes(const struct entry *e)
{
    return e->player < 0 ? def.payload : e->data;
}

/* Puts the rows of the first n entries (all when n < 0) into st's open transaction. */
static void put_rows(struct store *st, long n)
{
    for (struct entry *e = srv.head; e && n-- != 0; e = e->next) {
        struct store_event se = {"sim", e->ev.seq,      e->ev.time_ms, e->ev.type,
                                 {0},   entry_bytes(e), e->len};
        memcpy(se.player, e->ev.player, 16);
        ENSURE(store_put_event(st, &se) == 0, "store_put_event seq %" PRIu64, e->ev.seq);
        if (e->player < 0) continue;
        struct player *p = &players[e->player];
        struct store_player row = {{0}, p->hex, now_ms, 0};
        memcpy(row.id, p->id, 16);
        if (e->with_row) ENSURE(store_put_player(st, &row) == 0, "store_put_player");
        if (!e->req.has_key) continue;
        struct store_idem ir = {e->req.scope, e->req.key,          {0},   e->ans.status,
                                e->ans.body,  strlen(e->ans.body), now_ms};
        memcpy(ir.req_hash, e->hash, 32);
        ENSURE(store_put_idem(st, &ir) == 0, "store_put_idem");
    }
}

/* The model learns that e is durable: its bytes, its chest, its points, its answer. */
static void acknowledge(struct entry *e)
{
    char err[256], hk[200];
    struct event d;
    memset(&d, 0, sizeof d);
    d.seq = e->ev.seq;
    d.time_ms = e->ev.time_ms;
    memcpy(d.player, e->ev.player, 16);
    ENSURE(engine_event_decode(&d, e->ev.type, entry_bytes(e), e->len) == ENGINE_OK, "decode");
    ENSURE(engine_apply(srv.ref, &d, NULL, err, sizeof err) == ENGINE_OK, "ref apply: %s", err);
    ENSURE(m.acked + 1 == e->ev.seq, "acknowledged out of order");
    if (m.acked == m.cap) {
        m.cap = m.cap ? 2 * m.cap : 1024;
        if (!(m.log = realloc(m.log, m.cap * sizeof *m.log))) abort();
    }
    m.log[m.acked].type = e->ev.type;
    m.log[m.acked].len = e->player < 0 ? 0 : e->len; /* DEFINE: compared by length below */
    memcpy(m.log[m.acked].data, e->data, e->player < 0 ? 0 : e->len);
    m.log[m.acked].time = e->ev.time_ms;
    m.log[m.acked++].player = e->player;
    if (e->player < 0) return;
    struct player *p = &players[e->player];
    if (e->ev.type == EVENT_OPEN) {
        ENSURE(!hmap_get(&m.chest_owner, e->ev.b, strlen(e->ev.b)), "chest %s: two owners",
               e->ev.b);
        if (hmap_put(&m.chest_owner, e->ev.b, strlen(e->ev.b), (void *)(intptr_t)(e->player + 1)))
            abort();
    }
    p->acked_score += e->points;
    p->queued_score -= e->points;
    if (e->with_row) p->row_acked = 1;
    if (!e->req.has_key) return;
    hkey(&e->req, hk, sizeof hk);
    ENSURE(!hmap_get(&m.answers, hk, strlen(hk)), "key '%s' applied twice", e->req.key);
    struct answer *a = malloc(sizeof *a);
    if (!a) abort();
    *a = e->ans;
    if (hmap_put(&m.answers, hk, strlen(hk), a)) abort();
    ENSURE(idem_finish(srv.idem, e->ie, e->ans.status, e->ans.body, strlen(e->ans.body)) == 0,
           "idem_finish");
}

static void drop_queue(void)
{
    for (struct entry *e = srv.head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    srv.head = srv.tail = NULL;
    srv.queued = 0;
}

/* One group commit of everything queued. deliver = 0: the process dies right after the
 * commit, so no client hears its answer. */
static void commit(int deliver)
{
    if (!srv.queued) return;
    ENSURE(store_begin(srv.st) == 0, "store_begin");
    put_rows(srv.st, -1);
    ENSURE(store_commit(srv.st) == 0, "store_commit");
    for (struct entry *e = srv.head; e; e = e->next) {
        acknowledge(e);
        if (e->player < 0) continue;
        struct player *p = &players[e->player];
        p->waiting = 0;
        p->lost = !deliver && e->req.has_key;
    }
    drop_queue();
    ENSURE(engine_digest(srv.h) == engine_digest(srv.ref),
           "live state differs from the acknowledged log");
}

/* ---- crashes and recovery ---------------------------------------------------------------- */
struct replay {
    struct hunt *h;
    uint64_t n;
};

/* Recovery reads the log back: each row must be the acknowledged event of that seq. */
static int replay_event(const struct store_event *se, void *arg)
{
    struct replay *rp = arg;
    struct event ev;
    char err[256] = "";
    ENSURE(se->seq == rp->n + 1 && se->seq <= m.acked,
           "store has seq %" PRIu64 " (acked %" PRIu64 ")", se->seq, m.acked);
    const typeof(*m.log) *want = &m.log[se->seq - 1];
    int define = se->type == EVENT_DEFINE;
    ENSURE(se->type == want->type && se->time_ms == want->time, "event %" PRIu64 " differs",
           se->seq);
    ENSURE(define ? se->data_len == def.payload_len && !memcmp(se->data, def.payload, se->data_len)
                  : se->data_len == want->len && !memcmp(se->data, want->data, want->len),
           "event %" PRIu64 " bytes differ", se->seq);
    ENSURE(engine_event_read(&ev, se->seq, se->time_ms, se->type, se->player, se->data,
                             se->data_len) == ENGINE_OK,
           "decode");
    ENSURE(engine_apply(rp->h, &ev, NULL, err, sizeof err) == ENGINE_OK, "replay: %s", err);
    rp->n++;
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
        ENSURE(score == players[i].acked_score + players[i].queued_score,
               "player %zu: score %" PRId64 " != model %" PRId64, i, score,
               players[i].acked_score + players[i].queued_score);
    }
}

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

/* Starts the server from what the store holds, as api_init does. */
static void recover(void)
{
    char err[256];
    struct replay rp = {NULL, 0};
    uint64_t idems = 0, rows = 0, want_rows = 0;
    ENSURE(store_open(store_url, STORE_FSYNC_OFF, &srv.st, err, sizeof err) == 0, "open: %s", err);
    if (!(rp.h = srv.h = engine_hunt_create("sim"))) abort();
    ENSURE(store_each_event(srv.st, "sim", 1, replay_event, &rp) == 0, "replay failed");
    int hunts = 0;
    ENSURE(store_each_hunt(srv.st, count_hunt, &hunts) == 0 && hunts == (m.acked > 0),
           "hunts in the store");
    ENSURE(rp.n == m.acked, "store has %" PRIu64 " events, %" PRIu64 " acknowledged", rp.n,
           m.acked);
    ENSURE(engine_digest(srv.h) == engine_digest(srv.ref),
           "recovered state differs from the acknowledged prefix");
    check_seed(srv.h);
    if (!(srv.idem = idem_create(idem_max, 24 * 3600 * 1000LL))) abort();
    idem_set_fallback(srv.idem, idem_fallback, NULL);
    ENSURE(store_each_idem(srv.st, now_ms - 24 * 3600 * 1000LL, load_idem, &idems) == 0, "idem");
    ENSURE(idems == m.answers.count, "store has %" PRIu64 " keys, %zu acknowledged", idems,
           m.answers.count);
    ENSURE(store_each_player(srv.st, count_player, &rows) == 0, "players");
    for (size_t i = 0; i < n_players; i++)
        want_rows += players[i].row_acked;
    ENSURE(rows == want_rows, "store has %" PRIu64 " players, model %" PRIu64, rows, want_rows);
    check_scores();
    m.restarts++;
}

/* The process dies: everything in memory goes, the queued batch with it. */
static void die(void)
{
    for (struct entry *e = srv.head; e; e = e->next) {
        if (e->player < 0) continue;
        struct player *p = &players[e->player];
        p->queued_score -= e->points;
        p->waiting = 0;
        p->lost = e->req.has_key;
    }
    drop_queue();
    engine_hunt_destroy(srv.h);
    idem_destroy(srv.idem);
    store_close(srv.st);
    srv.h = NULL;
    srv.idem = NULL;
    srv.st = NULL;
}

/* Rows enough to overflow SQLite's page cache (2 MiB by default), so that the open
 * transaction spills pages into the WAL file before it is killed. */
static void put_filler(struct store *st)
{
    static uint8_t blob[1024];
    for (uint64_t seq = 1; seq <= 4096; seq++) {
        struct store_event se = {"zz-uncommitted", seq, 0, EVENT_SCAN, {0}, blob, sizeof blob};
        if (store_put_event(st, &se)) _exit(5);
    }
}

static off_t wal_size(void)
{
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s-wal", store_url + 7);
    return stat(path, &sb) ? 0 : sb.st_size;
}

/* A writer killed in the middle of a commit: a child process writes the first n rows of
 * the batch in an open transaction (half the time followed by megabytes of filler, so
 * uncommitted pages reach the WAL file) and is SIGKILLed before COMMIT. */
static void torn_commit(void)
{
    long n = (long)below(srv.queued + 1);
    int spill = chance(500);
    off_t wal0 = wal_size();
    fflush(NULL);
    pid_t pid = fork();
    ENSURE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct store *st;
        char err[256];
        if (store_open(store_url, STORE_FSYNC_OFF, &st, err, sizeof err) || store_begin(st))
            _exit(3);
        put_rows(st, n);
        if (spill) put_filler(st);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status;
    ENSURE(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
           "torn writer did not die as planned (%d)", status);
    m.torn++;
    m.spilled += spill && wal_size() > wal0;
}

static void crash(void)
{
    int kind = (int)below(3);
    if (kind == 1 && srv.queued) torn_commit();
    if (kind == 2) commit(0);
    die();
    m.crashes++;
    recover();
}

/* SIGTERM: everything queued becomes durable and answered, then a restart. */
static void clean_restart(void)
{
    commit(1);
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
        if (hmap_get(&m.answers, hk, strlen(hk)) && !queued_key(hk)) {
            uint8_t hash[32];
            auth_sha256("{\"other\":1}", 11, hash);
            uint64_t before = engine_digest(srv.h);
            struct idem_entry *e = idem_find(srv.idem, r.scope, r.key, now_ms);
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
    ENSURE(score == p->acked_score + p->queued_score, "score of the acting player");
}

static void one_step(void)
{
    now_ms += (int64_t)below(150);
    if (!engine_defined(srv.h) && !srv.head) define_hunt();
    uint64_t r = below(1000);
    if (r < 3)
        crash();
    else if (r < 4)
        clean_restart();
    else if (r < 120 || srv.queued >= 256)
        commit(1);
    else
        client_step();
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
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = env_u64("SIM_SEED", ((uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 20) % 1000000000);
    uint64_t steps = env_u64("SIM_STEPS", 20000);
    n_players = env_u64("SIM_PLAYERS", 2000);
    printf("sim: seed %" PRIu64 " (SIM_SEED=%" PRIu64 " reproduces), %" PRIu64
           " steps, %zu players\n",
           seed, seed, steps, n_players);
    fflush(stdout);
    rng = seed;
    char dir[4096], url[4200], path[4200];
    snprintf(dir, sizeof dir, "%s/veltrix-sim-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir) || !(players = calloc(n_players ? n_players : 1, sizeof *players))) abort();
    snprintf(url, sizeof url, "sqlite:%s/sim.db", dir);
    store_url = url;
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
    clean_restart();
    printf("sim: seed %" PRIu64 ": %" PRIu64 " steps, %" PRIu64 " requests, %" PRIu64
           " events acknowledged, %" PRIu64 " refused, %" PRIu64 " replays, %" PRIu64
           " duplicates waited, %" PRIu64 " keys reused, %zu chests opened, %" PRIu64
           " crashes (%" PRIu64 " torn commits, %" PRIu64
           " of them spilling into the WAL), %" PRIu64 " restarts: every invariant held\n",
           seed, steps, m.requests, m.acked, m.rejected, m.replays, m.waits, m.reused,
           m.chest_owner.count, m.crashes, m.torn, m.spilled, m.restarts);
    die();
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
