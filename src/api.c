/* api.c — see api.h. Runs on the event loop thread only; no locks.
 *
 * Invariants:
 * - a state-changing request is answered only from on_durable(), after its rows are in
 *   the store; rejected requests change nothing and are answered at once;
 * - the engine is told about a command only when the log has room for its event, so a
 *   decision applied in memory is always followed by its event in the log;
 * - an idempotency entry is pending until durable; duplicates wait on it. */
#include "api.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "engine.h"
#include "hmap.h"
#include "http.h"
#include "idem.h"
#include "jsonw.h"
#include "live.h"
#include "log.h"
#include "net.h"
#include "qr.h"
#include "ratelimit.h"
#include "recovery.h"
#include "snap.h"
#include "tiles.h"
#include "uuid.h"

struct player {
    uint8_t id[16];
    char *name;
    int64_t created_ms;
    uint32_t gen;
    /* The one refresh token of the player that may be used: every other correctly signed
     * one of its generation was issued before and used, so presenting it is a reuse.
     * Nothing else is remembered per token, so memory does not grow with refreshes. */
    uint8_t refresh_id[16];
    int64_t refresh_exp_ms; /* 0: none */
    int64_t rate_tat;       /* --rate-player bucket (ratelimit.h rl_take_held) */
};

static struct app {
    struct api_config cfg;
    struct auth auth;
    struct store *reader;
    struct log *log;
    struct net *net;
    struct hmap players, hunts;
    struct idem *idem;
    struct tiles *tiles;
    struct live *live;
    struct live_pending { /* the live frame of the event apply() just applied */
        struct hunt *h;
        struct ws_buf *frame;
    } live_next;
    struct uuid7_gen uuid;
    uint64_t players_created, refresh_reused, writes_rejected_busy;
    int64_t idem_pruned_ms; /* when a write last pruned the store's expired keys */
    int64_t refresh_pruned_ms; /* when a new refresh token last pruned expired ones */
} app;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static int limits_init(const struct rl_config *c)
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

static void limits_deinit(void)
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
static void client_addr(struct http_req *r, uint8_t out[16])
{
    http_peer_addr(r, out);
    if (!app.cfg.limits.proxy_set || memcmp(out, app.cfg.limits.proxy, 16)) return;
    struct http_str h = http_header(r, "x-forwarded-for");
    char buf[64];
    if (!h.p) return;
    const char *end = h.p + h.len, *p = end;
    while (p > h.p && p[-1] != ',') p--;
    while (p < end && *p == ' ') p++;
    while (end > p && end[-1] == ' ') end--;
    if (end - p <= 0 || end - p >= (long)sizeof buf) return;
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = '\0';
    uint8_t a[16] = {0};
    if (inet_pton(AF_INET, buf, a + 12) == 1) a[10] = a[11] = 0xff;
    else if (inet_pton(AF_INET6, buf, a) != 1) return;
    memcpy(out, a, 16);
}

/* Route gate classes (http_route.gate_class): which per-address bucket a route spends.
 * Tile reads have their own (--rate-ip-tiles): one map view asks for dozens of them, and
 * a venue behind one NAT address would spend --rate-ip on tiles alone (~6 µs each). */
enum { GATE_IP = 0, GATE_TILES = 1 };

/* The gate of every route: the client address's bucket for the route's class. */
static int limit_ip(struct http_req *r)
{
    uint8_t addr[16];
    int64_t retry;
    int tile = http_req_route(r)->gate_class == GATE_TILES;
    client_addr(r, addr);
    if (rl_take(tile ? lim.ip_tiles : lim.ip, addr, sizeof addr, mono_ms(), &retry) == RL_OK)
        return 0;
    too_many(r, retry, tile ? "for tiles from this address" : "from this address");
    return 1;
}

/* The authenticated player's bucket (every player endpoint). */
static int limit_player(struct http_req *r, struct player *p)
{
    int64_t retry;
    if (rl_take_held(lim.player, &p->rate_tat, mono_ms(), &retry) == RL_OK) return 0;
    too_many(r, retry, "for this player");
    return 1;
}

/* Players created per address (POST /v1/players). */
static int limit_new_player(struct http_req *r)
{
    uint8_t addr[16];
    int64_t retry;
    client_addr(r, addr);
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
static int live_move_check(const uint8_t player[16], const char *hunt_id, double x, double y)
{
    struct hunt *h = hmap_get(&app.hunts, hunt_id, strlen(hunt_id));
    if (!h || engine_playable(h, now_ms())) return ENGINE_NOT_ACTIVE;
    return api_move_check(player, hunt_id, x, y);
}

/* A position faster than --max-speed from the player's last one in this hunt: 422. */
static int limit_move(struct http_req *r, const struct player *p, struct hunt *h, double x,
                      double y)
{
    if (api_move_check(p->id, engine_hunt_id(h), x, y) == RL_OK) return 0;
    http_error(r, 422, "implausible_move", "the position is too far from the last one");
    return 1;
}

/* Each metric family in one block (Prometheus text format wants them contiguous). */
static void limits_render(struct metrics_buf *b)
{
    const char *name[5] = {"ip", "player", "players_per_ip", "ip_tiles", "moves"};
    const struct rl_stats *st[5] = {rl_limiter_stats(lim.ip), rl_limiter_stats(lim.player),
                                    rl_limiter_stats(lim.new_player),
                                    rl_limiter_stats(lim.ip_tiles), rl_moves_stats(lim.moves)};
    metrics_printf(b, "# TYPE veltrix_rate_limited_total counter\n");
    for (int i = 0; i < 4; i++)
        metrics_printf(b, "veltrix_rate_limited_total{limit=\"%s\"} %llu\n", name[i],
                       (unsigned long long)st[i]->limited);
    metrics_printf(b, "# TYPE veltrix_implausible_moves_total counter\n"
                      "veltrix_implausible_moves_total %llu\n# TYPE veltrix_limit_keys gauge\n",
                   (unsigned long long)st[4]->limited);
    /* Player buckets live in the players' records: one per player while the limit is on. */
    uint64_t keys[5] = {st[0]->keys, app.cfg.limits.player.per_s > 0 ? app.players.count : 0,
                        st[2]->keys, st[3]->keys, st[4]->keys};
    for (int i = 0; i < 5; i++)
        metrics_printf(b, "veltrix_limit_keys{limit=\"%s\"} %llu\n", name[i],
                       (unsigned long long)keys[i]);
    metrics_printf(b, "# TYPE veltrix_limit_evicted_live_total counter\n");
    for (int i = 0; i < 5; i++)
        metrics_printf(b, "veltrix_limit_evicted_live_total{limit=\"%s\"} %llu\n", name[i],
                       (unsigned long long)st[i]->evicted_live);
}

/* ---- request helpers ---------------------------------------------------------------- */

/* Copies a path parameter that must be an id; answers 400 invalid_id otherwise. */
static int param_id(struct http_req *r, int i, char out[ENGINE_ID_MAX + 1])
{
    struct http_str s = http_param(r, i);
    if (!auth_valid_id(s.p, s.len)) {
        http_error(r, 400, "invalid_id", "ids are 1-64 characters of [a-z0-9_-]");
        return -1;
    }
    memcpy(out, s.p, s.len);
    out[s.len] = '\0';
    return 0;
}

static struct hunt *find_hunt(struct http_req *r, const char *id)
{
    struct hunt *h = hmap_get(&app.hunts, id, strlen(id));
    if (!h || !engine_defined(h)) {
        http_error(r, 404, "hunt_not_found", "no hunt '%s'", id);
        return NULL;
    }
    return h;
}

/* Param 0 is the hunt id: validates and looks it up, answering errors itself. */
static struct hunt *hunt_param(struct http_req *r)
{
    char id[ENGINE_ID_MAX + 1];
    return param_id(r, 0, id) ? NULL : find_hunt(r, id);
}

/* The bearer token of the request, or p == NULL. */
static struct http_str bearer(struct http_req *r)
{
    struct http_str a = http_header(r, "authorization");
    if (!a.p || a.len < 8 || strncasecmp(a.p, "Bearer ", 7) != 0) return (struct http_str){NULL, 0};
    return (struct http_str){a.p + 7, a.len - 7};
}

static struct player *check_token(const char *tok, size_t len, int *err)
{
    struct auth_claims c;
    int rc = auth_token_check(&app.auth, tok, len, now_ms(), &c);
    struct player *p = rc == AUTH_INVALID ? NULL : hmap_get(&app.players, c.player, 16);
    if (!p || p->gen != c.gen) {
        *err = AUTH_INVALID;
        return NULL;
    }
    *err = rc;
    return rc == AUTH_OK ? p : NULL;
}

/* The authenticated player, or NULL after answering 401. */
static struct player *authed(struct http_req *r)
{
    struct http_str t = bearer(r);
    int err = AUTH_INVALID;
    struct player *p = t.p ? check_token(t.p, t.len, &err) : NULL;
    if (p) return limit_player(r, p) ? NULL : p;
    if (err == AUTH_EXPIRED)
        http_error(r, 401, "token_expired", "the token has expired; refresh it");
    else
        http_error(r, 401, "unauthorized", "a valid player token is required");
    return NULL;
}

/* 0 for the admin key; otherwise answers 403 (a player token) or 401 and returns -1. */
static int admin(struct http_req *r)
{
    struct http_str t = bearer(r);
    int err;
    if (t.p && auth_equal(t.p, t.len, app.cfg.admin_key, strlen(app.cfg.admin_key))) return 0;
    if (t.p && (check_token(t.p, t.len, &err) || err == AUTH_EXPIRED))
        http_error(r, 403, "forbidden", "this endpoint needs the admin key");
    else
        http_error(r, 401, "unauthorized", "the admin key is required");
    return -1;
}

/* Whether an Authorization header value carries the admin key: bodies over 64 KiB are
 * read only then (http.h http_limits, checked before the body arrives). */
static int big_body_ok(const char *v, size_t len)
{
    return len > 7 && strncasecmp(v, "Bearer ", 7) == 0 &&
           auth_equal(v + 7, len - 7, app.cfg.admin_key, strlen(app.cfg.admin_key));
}

/* 1 when b is empty or "{}" (white space allowed): the common body of open and collect. */
static int body_empty_object(struct http_str b)
{
    size_t i = 0, n = 0;
    char want[2] = {'{', '}'};
    for (; i < b.len; i++) {
        char c = b.p[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (n == 2 || c != want[n]) return 0;
        n++;
    }
    return n == 0 || n == 2;
}

/* The JSON object body (empty body = {} when allow_empty), or NULL after a 400. */
static json_t *body_object(struct http_req *r, int allow_empty)
{
    struct http_str b = http_body(r);
    json_error_t e;
    if (allow_empty && body_empty_object(b)) return json_object();
    json_t *j = json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!j) {
        http_error(r, 400, "invalid_json", "invalid JSON at line %d column %d: %s", e.line,
                   e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_error(r, 400, "invalid_request", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* A required string field, or NULL after a 400. */
static const char *str_field(struct http_req *r, json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        http_error(r, 400, "invalid_request", "'%s' must be a string without NUL", name);
        return NULL;
    }
    return json_string_value(v);
}

/* The value of a body of exactly the form {"name":"value"} (white space around tokens
 * allowed) whose value is printable ASCII without escapes, copied to out; 1 when the body
 * has that form. Every other body returns 0 and goes through jansson, which reads this
 * form the same way: a short cut for the shape clients send on hot paths. */
static int body_plain_string(struct http_str b, const char *name, char *out, size_t cap)
{
    const char *p = b.p, *end = b.p + b.len;
    size_t nl = strlen(name), n = 0;
#define SKIP_WS() while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++
    SKIP_WS();
    if (p == end || *p++ != '{') return 0;
    SKIP_WS();
    if ((size_t)(end - p) < nl + 2 || p[0] != '"' || memcmp(p + 1, name, nl) || p[nl + 1] != '"')
        return 0;
    p += nl + 2;
    SKIP_WS();
    if (p == end || *p++ != ':') return 0;
    SKIP_WS();
    if (p == end || *p++ != '"') return 0;
    for (; p < end && *p != '"'; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *p;
    }
    if (p++ == end) return 0;
    SKIP_WS();
    if (p == end || *p++ != '}') return 0;
    SKIP_WS();
#undef SKIP_WS
    out[n] = '\0';
    return p == end;
}

/* Appends the rank, or null for an unranked player. */
static void rank_w(struct jsonw *w, uint64_t rank)
{
    if (rank)
        jsonw_u64(w, rank);
    else
        jsonw_lit(w, "null");
}

/* ---- idempotent, durable writes ------------------------------------------------------ */

struct write {
    struct http_req *req; /* held */
    struct idem_entry *idem;
    struct live_pending live; /* published once durable (frame NULL: none) */
    int status;
    char *body;
    size_t len;
};

struct idem_req {
    char scope[200];
    char key[256];
    uint8_t hash[32];
    int present;
};

static void replay(struct http_req *r, int status, const char *body, size_t len)
{
    http_add_header(r, "idempotent-replayed", "true");
    http_send(r, status, "application/json", body, len);
}

/* Reads the Idempotency-Key header and looks it up for (who, method, path). Returns 1
 * when the request was answered (replayed, key reused with another body, waiting on a
 * pending duplicate, or a malformed key); 0 to go on (ir->present says if a key came). */
static int idem_check(struct http_req *r, const char *who, struct idem_req *ir)
{
    struct http_str k = http_header(r, "idempotency-key");
    ir->present = 0;
    if (!k.p) return 0;
    int ok = k.len >= 1 && k.len <= 255;
    for (size_t i = 0; ok && i < k.len; i++)
        ok = k.p[i] >= 0x20 && k.p[i] <= 0x7e;
    if (!ok) {
        http_error(r, 400, "invalid_request", "Idempotency-Key must be 1-255 printable ASCII");
        return 1;
    }
    memcpy(ir->key, k.p, k.len);
    ir->key[k.len] = '\0';
    struct http_str m = http_method(r), path = http_path(r);
    snprintf(ir->scope, sizeof ir->scope, "%s %.*s %.*s", who, (int)m.len, m.p,
             (int)(path.len > 150 ? 150 : path.len), path.p);
    struct http_str b = http_body(r);
    auth_sha256(b.p, b.len, ir->hash);
    ir->present = 1;
    struct idem_entry *e = idem_find(app.idem, ir->scope, ir->key, now_ms());
    if (!e) return 0;
    int same = memcmp(e->req_hash, ir->hash, 32) == 0;
    idem_count(app.idem, same);
    if (!same) {
        http_error(r, 422, "idempotency_key_reused",
                   "this Idempotency-Key was used with a different body");
        return 1;
    }
    if (!e->pending) {
        replay(r, e->status, e->body, e->body_len);
        return 1;
    }
    struct idem_waiter *w = malloc(sizeof *w);
    if (!w) {
        http_error(r, 503, "unavailable", "out of memory");
        return 1;
    }
    w->req = http_hold(r);
    w->next = e->waiters;
    e->waiters = w;
    return 1;
}

/* Answers 503 unless the log can take one more entry. Checked before the engine decides,
 * so that everything applied in memory reaches the log. */
static int log_room(struct http_req *r)
{
    if (log_store_down(app.log)) {
        http_error(r, 503, "store_unavailable",
                   "the store cannot take writes right now (disk full or unreachable); retry");
        return 0;
    }
    if (log_pending(app.log) < app.cfg.queue_max) return 1;
    app.writes_rejected_busy++;
    http_error(r, 503, "busy", "too many writes in flight; retry shortly");
    return 0;
}

static void on_durable(void *arg, int status)
{
    struct write *w = arg;
    if (w->idem) {
        struct idem_waiter *wt = w->idem->waiters, *next;
        w->idem->waiters = NULL;
        if (idem_finish(app.idem, w->idem, w->status, w->body, w->len)) abort();
        for (; wt; wt = next) {
            next = wt->next;
            replay(wt->req, w->status, w->body, w->len);
            free(wt);
        }
    }
    if (w->live.frame) live_publish(app.live, w->live.h, w->live.frame);
    http_send(w->req, w->status, "application/json", w->body, w->len);
    free(w->body);
    free(w);
}

/* Queues e (ownership moves) with the idempotency record, and answers r with status and
 * body (malloc'd, ownership moves) once durable. log_room() must have been checked. */
static void submit_raw(struct http_req *r, struct idem_req *ir, struct log_entry *e, int status,
                       char *body, size_t len)
{
    struct write *w = calloc(1, sizeof *w);
    if (!w || !body) abort(); /* small allocations: out of memory is fatal here */
    w->status = status;
    w->body = body;
    w->len = len;
    w->live = app.live_next; /* the event in e, if it has one */
    app.live_next = (struct live_pending){NULL, NULL};
    if (ir && ir->present) {
        int64_t now = now_ms();
        /* Every 100 ms a keyed write also prunes up to STORE_PRUNE_IDEM_MAX of the store's
         * expired records: 20,000/s at most, in bounded bites, whatever the backlog. */
        if (now - app.idem_pruned_ms >= 100) {
            if (log_entry_prune_idem(e, now - app.cfg.idem_retention_ms)) abort();
            app.idem_pruned_ms = now;
        }
        w->idem = idem_begin(app.idem, ir->scope, ir->key, ir->hash, now);
        struct store_idem row = {ir->scope, ir->key, {0}, status, body, w->len, now};
        memcpy(row.req_hash, ir->hash, 32);
        if (!w->idem || log_entry_idem(e, &row)) abort();
    }
    w->req = http_hold(r);
    log_entry_on_done(e, on_durable, w);
    if (log_submit(app.log, e) != 0) abort(); /* log_room() said there was room */
}

/* submit_raw with resp (stolen) encoded compactly. */
static void submit(struct http_req *r, struct idem_req *ir, struct log_entry *e, int status,
                   json_t *resp)
{
    char *body = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    submit_raw(r, ir, e, status, body, body ? strlen(body) : 0);
}

static struct log_entry *new_entry(void)
{
    struct log_entry *e = log_entry_create(NULL, NULL);
    if (!e) abort();
    return e;
}

/* Adds ev (of hunt h) to entry e. */
static void entry_event(struct log_entry *e, struct hunt *h, const struct event *ev)
{
    uint8_t small[256], *buf = small;
    size_t need = engine_event_encode(ev, small, sizeof small);
    if (need > sizeof small) {
        buf = malloc(need);
        if (!buf) abort();
        engine_event_encode(ev, buf, need);
    }
    struct store_event se = {engine_hunt_id(h), ev->seq, ev->time_ms, ev->type, {0}, buf, need};
    memcpy(se.player, ev->player, 16);
    if (log_entry_event(e, &se)) abort();
    if (buf != small) free(buf);
}

/* Applies an event the engine just decided; a failure here is a programmer error. Its
 * live message is encoded now, while the outcome is fresh, and published once durable
 * (see submit() and on_durable()). */
static void apply(struct hunt *h, const struct event *ev, struct engine_outcome *out)
{
    char err[256];
    int rc = engine_apply(h, ev, out, err, sizeof err);
    if (rc) {
        fprintf(stderr, "veltrix: engine refused its own decision: %s\n", err);
        abort();
    }
    assert(!app.live_next.frame);
    app.live_next.h = h;
    if (!(app.live_next.frame = live_event_frame(app.live, h, ev, out))) abort();
    snap_after_event(app.cfg.snap, h);
}

static void engine_error(struct http_req *r, int rc)
{
    http_error(r, engine_err_status(rc), engine_err_code(rc), "%s", engine_err_code(rc));
}

/* ---- players and sessions ------------------------------------------------------------ */

static int is_space(uint32_t c)
{
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* Decodes one UTF-8 code point (input already validated by jansson). */
static uint32_t utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    if (n) c &= 0x3f >> n;
    for (int i = 1; i <= n; i++)
        c = c << 6 | (s[i] & 0x3f);
    *p = s + n + 1;
    return c;
}

/* Trims white space; 1..32 code points, none of category Cc. Returns the trimmed copy. */
static char *display_name(const char *in)
{
    const unsigned char *p = (const unsigned char *)in, *start = NULL, *end = NULL;
    int count = 0, kept = 0;
    while (*p) {
        const unsigned char *at = p;
        uint32_t c = utf8_next(&p);
        if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return NULL;
        if (start) count++;
        if (is_space(c)) continue;
        if (!start) start = at, count = 1;
        end = p;
        kept = count;
    }
    if (!start || kept > 32) return NULL;
    return strndup((const char *)start, (size_t)(end - start));
}

static void player_json_tokens(json_t *j, struct player *p, const struct store_refresh *rt)
{
    char tok[AUTH_TOKEN_MAX], ref[AUTH_TOKEN_MAX];
    struct auth_claims c = {.gen = p->gen, .exp_ms = now_ms() + app.cfg.token_ttl_s * 1000};
    memcpy(c.player, p->id, 16);
    auth_token_make(&app.auth, &c, tok);
    struct auth_refresh ar = {.gen = rt->gen};
    memcpy(ar.id, rt->id, 16);
    memcpy(ar.player, rt->player, 16);
    auth_refresh_make(&app.auth, &ar, ref);
    json_object_set_new(j, "token", json_string(tok));
    json_object_set_new(j, "expires_in", json_integer(app.cfg.token_ttl_s));
    json_object_set_new(j, "refresh_token", json_string(ref));
}

/* A fresh refresh token for p (its current one from now on) into *rt, added to e. */
static void new_refresh(struct player *p, struct log_entry *e, struct store_refresh *rt)
{
    uint64_t rnd;
    if (auth_random(&rnd, sizeof rnd)) abort();
    memset(rt, 0, sizeof *rt);
    /* Time-ordered (UUIDv7) like player ids, so that the store appends to its index
     * instead of dirtying a random page per token; the token's MAC is what makes it
     * unforgeable, not the id. */
    uuid7_next(&app.uuid, now_ms(), rnd, rt->id);
    memcpy(rt->player, p->id, 16);
    rt->gen = p->gen;
    rt->expires_ms = now_ms() + app.cfg.refresh_ttl_s * 1000;
    memcpy(p->refresh_id, rt->id, 16);
    p->refresh_exp_ms = rt->expires_ms;
    if (log_entry_refresh(e, rt)) abort(); /* the player's only row in the store now */
    /* Tokens of players who stopped refreshing expire in place: once a second, a new
     * token also prunes a bounded bite of expired rows. */
    if (now_ms() - app.refresh_pruned_ms >= 1000) {
        if (log_entry_prune_refresh(e, now_ms())) abort();
        app.refresh_pruned_ms = now_ms();
    }
}

/* When a refresh token id was issued: its UUIDv7 time (ms). */
static int64_t refresh_issued_ms(const uint8_t id[16])
{
    int64_t ms = 0;
    for (int i = 0; i < 6; i++) ms = ms << 8 | id[i];
    return ms;
}

static struct player *add_player(const uint8_t id[16], const char *name, int64_t created,
                                 uint32_t gen)
{
    struct player *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) abort();
    memcpy(p->id, id, 16);
    p->created_ms = created;
    p->gen = gen;
    if (hmap_put(&app.players, p->id, 16, p)) abort();
    return p;
}

static void player_row(struct log_entry *e, const struct player *p)
{
    struct store_player row = {{0}, p->name, p->created_ms, p->gen};
    memcpy(row.id, p->id, 16);
    if (log_entry_player(e, &row)) abort();
}

/* The idempotency scope of player creation: the client address, so that a key (and the
 * credentials its answer holds) never crosses from one client to another. */
static void anon_scope(struct http_req *r, char out[64])
{
    uint8_t a[16];
    char txt[INET6_ADDRSTRLEN];
    client_addr(r, a);
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, v4, 12)) inet_ntop(AF_INET, a + 12, txt, sizeof txt);
    else inet_ntop(AF_INET6, a, txt, sizeof txt);
    snprintf(out, 64, "anon:%s", txt);
}

static void h_players_create(struct http_req *r)
{
    struct idem_req ir;
    char who[64];
    anon_scope(r, who);
    /* A replay first: a retry of a creation that succeeded costs no sign-up budget. */
    if (idem_check(r, who, &ir) || limit_new_player(r)) return;
    json_t *b = body_object(r, 0);
    if (!b) return;
    const char *raw = str_field(r, b, "display_name");
    char *name = raw ? display_name(raw) : NULL;
    json_decref(b);
    if (raw && !name)
        http_error(r, 400, "invalid_request",
                   "display_name must be 1-32 characters after trimming, no control characters");
    if (!name) return;
    if (app.players.count >= app.cfg.players_max) {
        free(name);
        http_error(r, 503, "player_limit", "the server holds its maximum number of players");
        return;
    }
    if (!log_room(r)) {
        free(name);
        return;
    }
    uint8_t id[16];
    uint64_t rnd;
    if (auth_random(&rnd, sizeof rnd)) abort();
    uuid7_next(&app.uuid, now_ms(), rnd, id);
    struct player *p = add_player(id, name, now_ms(), 0);
    free(name);
    app.players_created++;
    struct log_entry *e = new_entry();
    player_row(e, p);
    struct store_refresh rt0, *rt = &rt0;
    new_refresh(p, e, rt);
    char sid[37];
    uuid_format(p->id, sid);
    json_t *j = json_pack("{s:s,s:s}", "player_id", sid, "display_name", p->name);
    player_json_tokens(j, p, rt);
    submit(r, &ir, e, 201, j);
}

/* POST /v1/sessions/refresh. Never answered from an idempotency record: the answer holds
 * credentials, and the request's only proof of identity is the refresh token in its body,
 * which a thief may hold too. A refresh token works once; presenting it again, with or
 * without the same Idempotency-Key, is a reuse and revokes every session of the player. */
static void h_refresh(struct http_req *r)
{
    json_t *b = body_object(r, 0);
    if (!b) return;
    const char *tok = str_field(r, b, "refresh_token");
    struct auth_refresh ar;
    struct player *p = NULL;
    int64_t now = now_ms();
    if (tok && auth_refresh_check(&app.auth, tok, strlen(tok), &ar) == AUTH_OK &&
        (p = hmap_get(&app.players, ar.player, 16)) && ar.gen == p->gen) {
        int cmp = p->refresh_exp_ms ? memcmp(ar.id, p->refresh_id, 16) : 1, current = !cmp;
        int64_t exp = current ? p->refresh_exp_ms
                              : refresh_issued_ms(ar.id) + app.cfg.refresh_ttl_s * 1000;
        /* cmp > 0: newer than the current one (ids are time-ordered), so never used here:
         * one whose issue a lost log tail undid (--fsync batch/off). Not a reuse. */
        if (exp <= now || cmp > 0) {
            http_error(r, 401, "unauthorized", "invalid or expired refresh token");
        } else if (!limit_player(r, p) && log_room(r)) {
            struct log_entry *e = new_entry();
            if (!current) { /* an earlier token: someone holds a copy; revoke every session */
                p->gen++;
                p->refresh_exp_ms = 0;
                app.refresh_reused++;
                player_row(e, p);
                submit(r, NULL, e, 401,
                       json_pack("{s:{s:s,s:s}}", "error", "code", "refresh_token_reused",
                                 "message", "refresh token reused; all sessions revoked"));
            } else {
                struct store_refresh used = {.gen = p->gen, .expires_ms = exp, .used = 1}, nrt;
                memcpy(used.id, ar.id, 16);
                memcpy(used.player, p->id, 16);
                if (log_entry_refresh(e, &used)) abort();
                new_refresh(p, e, &nrt);
                json_t *j = json_object();
                player_json_tokens(j, p, &nrt);
                submit(r, NULL, e, 200, j);
            }
        }
    } else if (tok) {
        http_error(r, 401, "unauthorized", "invalid or expired refresh token");
    }
    json_decref(b);
}

static void time_json(json_t *obj, const char *key, int64_t ms)
{
    char buf[32];
    engine_time_format(ms, buf);
    json_object_set_new(obj, key, json_string(buf));
}

static void h_me(struct http_req *r)
{
    struct player *p = authed(r);
    if (!p) return;
    char sid[37];
    uuid_format(p->id, sid);
    json_t *j = json_pack("{s:s,s:s}", "player_id", sid, "display_name", p->name);
    time_json(j, "created_at", p->created_ms);
    http_send_json(r, 200, j);
}

/* ---- hunts (admin) ------------------------------------------------------------------- */

/* The public view of a hunt: the engine's, plus the seed once the hunt has ended (API.md
 * "Fairness evidence"). New reference; NULL if not defined. */
static json_t *hunt_view(const struct hunt *h)
{
    char seed[2 * ENGINE_SEED_BYTES + 1];
    json_t *o = engine_hunt_json(h);
    if (o && engine_seed_reveal(h, now_ms(), seed) == 0)
        json_object_set_new(o, "seed", json_string(seed));
    return o;
}

/* engine_define with a fresh secret seed from the OS when h is not defined yet (an
 * update keeps the hunt's seed). */
static int define_hunt(const struct hunt *h, const char *json, size_t len, struct event *ev,
                       char *err, size_t errcap)
{
    uint8_t seed[ENGINE_SEED_BYTES];
    if (!engine_defined(h) && auth_random(seed, sizeof seed)) abort(); /* no OS randomness */
    return engine_define(h, json, len, engine_defined(h) ? NULL : seed, now_ms(), ev, err,
                         errcap);
}

static void h_hunt_put(struct http_req *r)
{
    char id[ENGINE_ID_MAX + 1], err[512];
    if (admin(r) || param_id(r, 0, id)) return;
    struct hunt *h = hmap_get(&app.hunts, id, strlen(id));
    int created = !h;
    if (created && app.hunts.count >= app.cfg.hunts_max) {
        http_error(r, 503, "hunt_limit", "the server holds its maximum number of hunts");
        return;
    }
    if (!log_room(r)) return;
    if (created && !(h = engine_hunt_create(id))) abort();
    struct http_str b = http_body(r);
    struct event ev;
    err[0] = '\0';
    int rc = define_hunt(h, b.p, b.len, &ev, err, sizeof err);
    if (rc) {
        if (created) engine_hunt_destroy(h);
        json_t *parsed = rc == ENGINE_EINVAL ? json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL) : NULL;
        if (rc == ENGINE_EINVAL && !parsed)
            http_error(r, 400, "invalid_json", "the body is not valid JSON");
        else
            http_error(r, engine_err_status(rc), engine_err_code(rc), "%s",
                       err[0] ? err : engine_err_code(rc));
        json_decref(parsed);
        return;
    }
    apply(h, &ev, NULL);
    if (created && hmap_put(&app.hunts, engine_hunt_id(h), strlen(id), h)) abort();
    struct log_entry *e = new_entry();
    entry_event(e, h, &ev);
    submit(r, NULL, e, created ? 201 : 200, hunt_view(h));
}

static void h_hunt_get(struct http_req *r)
{
    struct hunt *h = hunt_param(r);
    if (h) http_send_json(r, 200, hunt_view(h));
}

static void h_codes(struct http_req *r)
{
    struct hunt *h;
    if (admin(r) || !(h = hunt_param(r))) return;
    json_t *codes = engine_codes_json(h), *c;
    size_t i;
    json_array_foreach(codes, i, c)
    {
        char payload[AUTH_PAYLOAD_MAX];
        auth_payload_make(&app.auth, engine_hunt_id(h), json_string_value(json_object_get(c, "id")),
                          payload);
        json_object_set_new(c, "payload", json_string(payload));
    }
    http_send_json(r, 200, json_pack("{s:o}", "codes", codes));
}

static void h_qr(struct http_req *r)
{
    struct hunt *h;
    char code[ENGINE_ID_MAX + 1], payload[AUTH_PAYLOAD_MAX];
    if (admin(r) || !(h = hunt_param(r)) || param_id(r, 1, code)) return;
    if (!engine_has_code(h, code)) {
        http_error(r, 404, "code_not_found", "no code '%s' in this hunt", code);
        return;
    }
    auth_payload_make(&app.auth, engine_hunt_id(h), code, payload);
    size_t len;
    char *svg = qr_svg(payload, &len);
    if (!svg) {
        http_error(r, 503, "unavailable", "could not encode the QR code");
        return;
    }
    http_send(r, 200, "image/svg+xml", svg, len);
    free(svg);
}

static void h_digest(struct http_req *r)
{
    struct hunt *h;
    if (admin(r) || !(h = hunt_param(r))) return;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)engine_digest(h));
    http_send_json(r, 200, json_pack("{s:I,s:s}", "seq", (json_int_t)engine_seq(h), "digest", hex));
}

/* ---- map tiles ----------------------------------------------------------------------- */
/* Uploads stage into the hunt's draft (tiles.c) and are answered once the blob and the
 * draft row are durable. A publish is an EVENT_MAP event plus the version's manifest in
 * one log entry. Reads never touch the store: tiles_find() and a send that points at the
 * tile's bytes and precomputed header values (no copy, no formatting). */

static int query_int(struct http_req *r, const char *name, long lo, long hi, long *out);

/* Parses a tile coordinate path parameter: an optional '-' and 1-6 digits. -1 after
 * answering 400 invalid_request. */
static int tile_coord(struct http_req *r, int i, long *out)
{
    struct http_str s = http_param(r, i);
    size_t neg = s.len && s.p[0] == '-', k;
    long v = 0;
    for (k = neg; k < s.len && k < 7 && s.p[k] >= '0' && s.p[k] <= '9'; k++)
        v = v * 10 + (s.p[k] - '0');
    if (k == neg || k != s.len) {
        http_error(r, 400, "invalid_request", "tile coordinates are integers");
        return -1;
    }
    *out = neg ? -v : v;
    return 0;
}

/* Whether an If-None-Match value lists etag (or is "*"); weak tags compare too. */
static int etag_matches(struct http_str inm, const char *etag, size_t len)
{
    const char *p = inm.p, *end = inm.p + inm.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
        const char *q = p;
        while (q < end && *q != ',') q++;
        const char *t = q;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if (t - p >= 2 && p[0] == 'W' && p[1] == '/') p += 2;
        if ((t - p == 1 && *p == '*') || ((size_t)(t - p) == len && !memcmp(p, etag, len)))
            return 1;
        p = q;
    }
    return 0;
}

static void tile_release(void *ref) { tiles_release(ref); }

/* Answers a tiles_find() failure. */
static void tile_miss(struct http_req *r, struct http_str hunt, int rc, int64_t v)
{
    if (rc == TILES_EGONE)
        http_error(r, 410, "version_gone", "map version %lld is no longer kept", (long long)v);
    else if (rc == TILES_EBOUNDS)
        http_error(r, 400, "out_of_bounds", "the tile is outside the map");
    else if (rc == TILES_ENOVERSION && !hmap_get(&app.hunts, hunt.p, hunt.len))
        http_error(r, 404, "hunt_not_found", "no hunt '%.*s'", (int)hunt.len, hunt.p);
    else if (rc == TILES_ENOVERSION && v >= 0)
        http_error(r, 404, "tile_not_found", "map version %lld is not published", (long long)v);
    else
        http_error(r, 404, "tile_not_found", "no tile at this position");
}

static void h_tile_get(struct http_req *r)
{
    static const char cc_current[] = "public, max-age=5",
                      cc_fixed[] = "public, max-age=31536000, immutable", nosniff[] = "nosniff",
                      csp[] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                              "sandbox"; /* an SVG tile opened as a page runs no script */
    struct http_str hunt = http_param(r, 0), q = http_query(r, "v");
    long x, y, v = -1;
    struct tile_hit hit;
    if (!auth_valid_id(hunt.p, hunt.len)) {
        http_error(r, 400, "invalid_id", "ids are 1-64 characters of [a-z0-9_-]");
        return;
    }
    if (tile_coord(r, 1, &x) || tile_coord(r, 2, &y) ||
        (q.p && query_int(r, "v", 1, 1000000000000L, &v)))
        return;
    if (x < 0 || y < 0) {
        http_error(r, 400, "out_of_bounds", "the tile is outside the map");
        return;
    }
    int rc = tiles_find(app.tiles, hunt.p, hunt.len, v, (uint32_t)x, (uint32_t)y, &hit);
    if (rc) {
        tile_miss(r, hunt, rc, v);
        return;
    }
    struct http_str inm = http_header(r, "if-none-match");
    int nm = inm.p && etag_matches(inm, hit.etag, hit.etag_len);
    struct http_hdr hs[6] = {{"etag", hit.etag, hit.etag_len},
                             {"x-map-version", hit.version_str, hit.version_str_len},
                             {"cache-control", v < 0 ? cc_current : cc_fixed,
                              v < 0 ? sizeof cc_current - 1 : sizeof cc_fixed - 1},
                             {"x-content-type-options", nosniff, sizeof nosniff - 1},
                             {"content-security-policy", csp, sizeof csp - 1},
                             {"content-type", hit.ctype, hit.ctype_len}};
    tiles_count(app.tiles, nm);
    http_send_ref(r, nm ? 304 : 200, hs, nm ? 5 : 6, hit.body, hit.len, tile_release, hit.ref);
}

static void tile_durable(void *arg, int status) { http_send(arg, 204, NULL, "", 0); }

/* The upload's content type (default application/octet-stream), or NULL after a 400. */
static const char *tile_ctype(struct http_req *r, char out[TILES_CTYPE_MAX + 1])
{
    struct http_str c = http_header(r, "content-type");
    if (!c.p || !c.len) return "application/octet-stream";
    int ok = c.len <= TILES_CTYPE_MAX;
    for (size_t i = 0; ok && i < c.len; i++) ok = c.p[i] >= 0x20 && c.p[i] <= 0x7e;
    if (!ok) {
        http_error(r, 400, "invalid_request", "Content-Type must be 1-%d printable ASCII bytes",
                   TILES_CTYPE_MAX);
        return NULL;
    }
    memcpy(out, c.p, c.len);
    out[c.len] = '\0';
    return out;
}

/* Stages one tile in memory and adds its rows (the blob when new, the draft row) to e.
 * 0, or a tiles error (nothing changed). */
static int tile_stage(struct log_entry *e, const char *hunt, uint32_t x, uint32_t y,
                      const char *ctype, const void *data, size_t len)
{
    uint8_t hash[32];
    int new_blob;
    auth_sha256(data, len, hash);
    int rc = tiles_stage(app.tiles, hunt, x, y, ctype, hash, data, len, &new_blob);
    if (rc) return rc;
    struct store_tile row = {hunt, x, y, {0}, ctype};
    memcpy(row.hash, hash, 32);
    if ((new_blob && log_entry_blob(e, hash, data, len)) || log_entry_tile(e, &row)) abort();
    return 0;
}

static void h_tile_put(struct http_req *r)
{
    struct hunt *h;
    long x, y;
    int w, ht;
    char buf[TILES_CTYPE_MAX + 1];
    const char *ctype;
    if (admin(r) || !(h = hunt_param(r)) || tile_coord(r, 1, &x) || tile_coord(r, 2, &y)) return;
    engine_map_size(h, &w, &ht);
    if (x < 0 || y < 0 || x >= w || y >= ht) {
        http_error(r, 400, "out_of_bounds", "the tile is outside the map (%d x %d)", w, ht);
        return;
    }
    if (!(ctype = tile_ctype(r, buf)) || !log_room(r)) return;
    struct http_str b = http_body(r);
    struct log_entry *e = new_entry();
    int rc = tile_stage(e, engine_hunt_id(h), (uint32_t)x, (uint32_t)y, ctype, b.p, b.len);
    if (rc) {
        log_entry_free(e);
        if (rc == TILES_EFULL)
            http_error(r, 503, "tile_limit", "tile memory is full (--tiles-bytes-max)");
        else
            http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    log_entry_on_done(e, tile_durable, http_hold(r));
    if (log_submit(app.log, e)) abort(); /* log_room() said there was room */
}

/* The log writer encodes a published version's manifest (it holds a reference). */
static int manifest_encode(void *v, uint8_t **data, size_t *len)
{
    return tiles_manifest(v, data, len);
}

static void manifest_release(void *v) { tiles_release(v); }

/* Publishes h's draft as its next map version: in memory now (O(chunks)), the event and
 * the manifest in e. Returns the version number. */
static int64_t map_publish(struct hunt *h, struct log_entry *e)
{
    int64_t n = engine_map_version(h) < 1 ? 1 : engine_map_version(h) + 1;
    struct event ev;
    int w, ht;
    const struct tile_version *tv;
    engine_map_size(h, &w, &ht);
    if (engine_map(h, n, now_ms(), &ev) ||
        tiles_publish(app.tiles, engine_hunt_id(h), n, (uint32_t)w, (uint32_t)ht, &tv))
        abort(); /* a defined hunt always takes its next version; out of memory */
    apply(h, &ev, NULL);
    entry_event(e, h, &ev);
    struct store_map_version mv = {engine_hunt_id(h), n, tiles_keep_from(app.tiles, n), NULL, 0};
    struct tile_version *ref = tiles_retain(tv);
    if (log_entry_map_version(e, &mv, manifest_encode, manifest_release, ref)) abort();
    return n;
}

static void h_map_publish(struct http_req *r)
{
    struct hunt *h;
    struct idem_req ir;
    json_t *b;
    if (admin(r) || !(h = hunt_param(r)) || idem_check(r, "admin", &ir) ||
        !(b = body_object(r, 1)))
        return;
    json_decref(b);
    if (!log_room(r)) return;
    struct log_entry *e = new_entry();
    int64_t n = map_publish(h, e);
    submit(r, &ir, e, 200, json_pack("{s:I}", "version", (json_int_t)n));
}

/* ---- playing ------------------------------------------------------------------------- */

/* Everything a player write starts with. Returns 0 with p, h, ir filled, or -1 answered. */
static int player_write(struct http_req *r, struct player **p, struct hunt **h, struct idem_req *ir)
{
    char who[37];
    if (!(*p = authed(r)) || !(*h = hunt_param(r))) return -1;
    uuid_format((*p)->id, who);
    if (idem_check(r, who, ir)) return -1;
    return log_room(r) ? 0 : -1;
}

/* The common end of a player write: answer the engine's refusal, or apply the decided
 * event and fill out. 0 when applied; -1 when answered. */
static int decided(struct http_req *r, struct hunt *h, int rc, const struct event *ev,
                   struct engine_outcome *out)
{
    if (rc) {
        engine_error(r, rc);
        return -1;
    }
    apply(h, ev, out);
    return 0;
}

/* Logs ev and answers 200 with the body in w (its buffer is stolen) once it is durable. */
static void submit_event(struct http_req *r, struct hunt *h, struct idem_req *ir,
                         const struct event *ev, struct jsonw *w)
{
    if (w->oom) abort(); /* a few dozen bytes: out of memory here is not recoverable */
    struct log_entry *e = new_entry();
    entry_event(e, h, ev);
    submit_raw(r, ir, e, 200, w->p, w->len);
}

static void h_scan(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    struct idem_req ir;
    if (player_write(r, &p, &h, &ir)) return;
    char plain[AUTH_PAYLOAD_MAX], code[ENGINE_ID_MAX + 1];
    json_t *b = NULL;
    const char *payload = plain;
    if (!body_plain_string(http_body(r), "code", plain, sizeof plain))
        payload = (b = body_object(r, 0)) ? str_field(r, b, "code") : NULL;
    struct event ev;
    struct engine_outcome out;
    if (!payload) {
    } else if (auth_payload_check(&app.auth, engine_hunt_id(h), payload, strlen(payload), code) !=
               AUTH_OK) {
        http_error(r, 400, "invalid_code", "not a code of this hunt");
    } else if (!decided(r, h, engine_scan(h, p->id, code, now_ms(), &ev), &ev, &out)) {
        struct jsonw w = {0}; /* ids are [a-z0-9_-]: nothing here needs escaping */
        jsonw_lit(&w, "{\"code\":\"");
        jsonw_lit(&w, code);
        jsonw_lit(&w, "\",\"points\":");
        jsonw_i64(&w, out.points);
        jsonw_lit(&w, ",\"score\":");
        jsonw_i64(&w, out.score);
        jsonw_lit(&w, ",\"rank\":");
        rank_w(&w, out.rank);
        jsonw_lit(&w, "}");
        submit_event(r, h, &ir, &ev, &w);
    }
    json_decref(b);
}

static void h_collect(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    struct idem_req ir;
    char item[ENGINE_ID_MAX + 1];
    struct event ev;
    json_t *b;
    if (player_write(r, &p, &h, &ir) || param_id(r, 1, item) || !(b = body_object(r, 1))) return;
    json_decref(b);
    struct engine_outcome out;
    if (decided(r, h, engine_collect(h, p->id, item, now_ms(), &ev), &ev, &out)) return;
    struct jsonw w = {0};
    jsonw_lit(&w, "{\"item\":\"");
    jsonw_lit(&w, item);
    jsonw_lit(&w, "\",\"count\":");
    jsonw_i64(&w, out.count);
    jsonw_lit(&w, ",\"remaining\":");
    jsonw_i64(&w, out.remaining);
    jsonw_lit(&w, "}");
    submit_event(r, h, &ir, &ev, &w);
}

static void h_open(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    struct idem_req ir;
    char zone[ENGINE_ID_MAX + 1];
    struct event ev;
    json_t *b;
    if (player_write(r, &p, &h, &ir) || param_id(r, 1, zone) || !(b = body_object(r, 1))) return;
    json_decref(b);
    struct engine_outcome out;
    if (decided(r, h, engine_open(h, p->id, zone, now_ms(), &ev), &ev, &out)) return;
    struct jsonw w = {0}; /* ids are [a-z0-9_-]: nothing here needs escaping */
    jsonw_lit(&w, "{\"chest\":\"");
    jsonw_lit(&w, ev.b);
    jsonw_lit(&w, "\",\"points\":");
    jsonw_i64(&w, out.points);
    jsonw_lit(&w, ",\"loot\":[");
    for (size_t i = 0; i < out.n_loot; i++) {
        jsonw_lit(&w, i ? ",\"" : "\"");
        jsonw_lit(&w, out.loot[i]);
        jsonw_lit(&w, "\"");
    }
    jsonw_lit(&w, "],\"score\":");
    jsonw_i64(&w, out.score);
    jsonw_lit(&w, ",\"rank\":");
    rank_w(&w, out.rank);
    jsonw_lit(&w, "}");
    submit_event(r, h, &ir, &ev, &w);
}

static void h_position(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    json_t *b;
    if (!(p = authed(r)) || !(h = hunt_param(r)) || !(b = body_object(r, 0))) return;
    json_t *x = json_object_get(b, "x"), *y = json_object_get(b, "y");
    int w, ht, rc;
    engine_map_size(h, &w, &ht);
    if (!json_is_number(x) || !json_is_number(y)) {
        http_error(r, 400, "invalid_request", "'x' and 'y' must be numbers");
    } else if (json_number_value(x) < 0 || json_number_value(x) >= w || json_number_value(y) < 0 ||
               json_number_value(y) >= ht) {
        http_error(r, 400, "out_of_bounds", "the position is outside the map (%d x %d)", w, ht);
    } else if ((rc = engine_playable(h, now_ms())) != 0) { /* like scans: 403 hunt_not_active */
        engine_error(r, rc);
    } else if (!limit_move(r, p, h, json_number_value(x), json_number_value(y))) {
        live_position(app.live, h, p->id, json_number_value(x), json_number_value(y));
        http_send(r, 202, "application/json", "{}", 2);
    }
    json_decref(b);
}

static void h_hunt_me(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    if ((p = authed(r)) && (h = hunt_param(r))) http_send_json(r, 200, engine_me_json(h, p->id));
}

/* ---- leaderboard and stats ----------------------------------------------------------- */

/* Parses an optional integer query parameter in [lo, hi]; -1 after answering 400. */
static int query_int(struct http_req *r, const char *name, long lo, long hi, long *out)
{
    struct http_str q = http_query(r, name);
    if (!q.p) return 0;
    char buf[24], *end;
    if (q.len == 0 || q.len >= sizeof buf) goto bad;
    memcpy(buf, q.p, q.len);
    buf[q.len] = '\0';
    long v = strtol(buf, &end, 10);
    if (*end || v < lo || v > hi) goto bad;
    *out = v;
    return 0;
bad:
    http_error(r, 400, "invalid_request", "'%s' must be an integer %ld..%ld", name, lo, hi);
    return -1;
}

/* The leaderboard answer, written directly: it is the hottest read after tiles. */
static void send_lb(struct http_req *r, const struct hunt *h, const struct engine_lb_row *rows,
                    size_t n)
{
    struct jsonw w = {0};
    jsonw_reserve(&w, 64 + n * 128);
    jsonw_lit(&w, "{\"total\":");
    jsonw_u64(&w, engine_lb_total(h));
    jsonw_lit(&w, ",\"seq\":");
    jsonw_u64(&w, engine_seq(h));
    jsonw_lit(&w, ",\"entries\":[");
    for (size_t i = 0; i < n; i++) {
        struct player *p = hmap_get(&app.players, rows[i].player, 16);
        jsonw_lit(&w, i ? ",{\"rank\":" : "{\"rank\":");
        jsonw_u64(&w, rows[i].rank);
        jsonw_lit(&w, ",\"player_id\":");
        jsonw_uuid(&w, rows[i].player);
        jsonw_lit(&w, ",\"display_name\":");
        jsonw_str(&w, p ? p->name : "");
        jsonw_lit(&w, ",\"score\":");
        jsonw_i64(&w, rows[i].score);
        jsonw_lit(&w, "}");
    }
    jsonw_lit(&w, "]}");
    if (w.oom) {
        free(w.p);
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    http_send(r, 200, "application/json", w.p, w.len);
    free(w.p);
}

static void h_leaderboard(struct http_req *r)
{
    struct hunt *h = hunt_param(r);
    long limit = 10, offset = 0, radius = 5;
    if (!h || query_int(r, "limit", 1, 1000, &limit) ||
        query_int(r, "offset", 0, 1000000000L, &offset) || query_int(r, "radius", 0, 500, &radius))
        return;
    struct http_str around = http_query(r, "around");
    struct engine_lb_row rows[1001];
    size_t n;
    if (around.p) {
        char s[40];
        uint8_t id[16];
        if (around.len != 36 || (memcpy(s, around.p, 36), s[36] = '\0', uuid_parse(s, id))) {
            http_error(r, 400, "invalid_request", "'around' must be a player id");
            return;
        }
        n = engine_lb_around(h, id, (size_t)radius, rows);
    } else {
        n = engine_lb_top(h, (size_t)offset, (size_t)limit, rows);
    }
    send_lb(r, h, rows, n);
}

static void h_stats(struct http_req *r)
{
    struct hunt *h = hunt_param(r);
    if (!h) return;
    struct engine_stats st;
    engine_stats(h, &st);
    http_send_json(r, 200,
                   json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "seq", (json_int_t)st.seq, "players",
                             (json_int_t)st.players, "scans", (json_int_t)st.scans, "chests_left",
                             (json_int_t)st.chests_left, "live_connections",
                             (json_int_t)live_connections(app.live, h),
                             "store_lag_ms", (json_int_t)log_lag_ms(app.log)));
}

/* ---- live ---------------------------------------------------------------------------- */

struct live_req {
    struct hunt *h;
    uint8_t player[16];
    long since;
};

static void on_live_upgraded(void *arg, void *sock)
{
    struct live_req *lr = arg;
    if (sock) live_subscribe(app.live, lr->h, sock, lr->player, lr->since);
    free(lr);
}

/* GET /v1/hunts/{hunt}/live?token=...[&since=N]: checks everything, then upgrades. */
static void h_live(struct http_req *r)
{
    struct http_str t = http_query(r, "token");
    if (!t.p) t = bearer(r);
    int err = AUTH_INVALID;
    struct player *p = t.p ? check_token(t.p, t.len, &err) : NULL;
    struct hunt *h;
    long since = -1;
    if (!p) {
        if (err == AUTH_EXPIRED) http_error(r, 401, "token_expired", "the token has expired");
        else http_error(r, 401, "unauthorized", "a valid player token is required");
        return;
    }
    if (!(h = hunt_param(r)) || query_int(r, "since", 0, LONG_MAX, &since)) return;
    if (!http_is_websocket(r)) {
        http_error(r, 426, "upgrade_required", "this endpoint is a WebSocket (RFC 6455)");
        return;
    }
    struct live_req *lr = malloc(sizeof *lr);
    if (!lr) abort(); /* small allocation: out of memory is fatal here */
    lr->h = h;
    memcpy(lr->player, p->id, 16);
    lr->since = since;
    http_upgrade_websocket(r, on_live_upgraded, lr);
}

static const char *live_name(const uint8_t player[16], void *ctx)
{
    struct player *p = hmap_get(&app.players, player, 16);
    return p ? p->name : "";
}

/* ---- operations ---------------------------------------------------------------------- */

static void h_healthz(struct http_req *r)
{
    if (!log_store_down(app.log) && store_ping(app.reader) == 0)
        http_send(r, 200, "application/json", "{\"status\":\"ok\"}", 15);
    else
        http_error(r, 503, "store_unavailable", "the store does not answer");
}

static void render_log(struct metrics_buf *b)
{
    const struct log_stats *s = log_stats(app.log);
    metrics_printf(
        b,
        "# TYPE veltrix_events_appended_total counter\n"
        "veltrix_events_appended_total %llu\n"
        "# TYPE veltrix_log_batches_total counter\nveltrix_log_batches_total %llu\n"
        "# TYPE veltrix_log_commit_failures_total counter\n"
        "veltrix_log_commit_failures_total %llu\n"
        "# TYPE veltrix_log_pending gauge\nveltrix_log_pending %zu\n"
        "# TYPE veltrix_store_down gauge\nveltrix_store_down %d\n"
        "# TYPE veltrix_store_outages_total counter\nveltrix_store_outages_total %llu\n"
        "# TYPE veltrix_store_lag_ms gauge\nveltrix_store_lag_ms %llu\n"
        "# TYPE veltrix_writes_rejected_busy_total counter\n"
        "veltrix_writes_rejected_busy_total %llu\n",
        (unsigned long long)metrics_get(&s->events), (unsigned long long)metrics_get(&s->batches),
        (unsigned long long)metrics_get(&s->failures), log_pending(app.log),
        log_store_down(app.log), (unsigned long long)metrics_get(&s->outages),
        (unsigned long long)log_lag_ms(app.log), (unsigned long long)app.writes_rejected_busy);
    metrics_printf(b, "# TYPE veltrix_log_batch_entries histogram\n");
    metrics_render_hist(b, "veltrix_log_batch_entries", "", &s->batch_entries, 1);
    metrics_printf(b, "# TYPE veltrix_log_commit_seconds histogram\n");
    metrics_render_hist(b, "veltrix_log_commit_seconds", "", &s->commit_ns, 0);
    metrics_printf(b, "# TYPE veltrix_log_wait_seconds histogram\n");
    metrics_render_hist(b, "veltrix_log_wait_seconds", "", &s->wait_ns, 0);
}

static void render_hunt(void *value, void *ctx)
{
    struct hunt *h = value;
    struct metrics_buf *b = ctx;
    struct engine_stats st;
    engine_stats(h, &st);
    const char *id = engine_hunt_id(h);
    metrics_printf(b, "veltrix_hunt_seq{hunt=\"%s\"} %llu\n", id, (unsigned long long)st.seq);
    metrics_printf(b, "veltrix_hunt_players{hunt=\"%s\"} %llu\n", id,
                   (unsigned long long)st.players);
    metrics_printf(b, "veltrix_hunt_chests_left{hunt=\"%s\"} %llu\n", id,
                   (unsigned long long)st.chests_left);
    metrics_printf(b, "veltrix_hunt_memory_bytes{hunt=\"%s\"} %zu\n", id, engine_memory_bytes(h));
}

/* /metrics is public on loopback listeners by default; otherwise it needs the admin key
 * or the metrics token (--metrics-access, --metrics-token). 0 to go on. */
static int metrics_denied(struct http_req *r)
{
    struct http_str t = bearer(r);
    const char *mt = app.cfg.metrics_token;
    if (app.cfg.metrics_public || (t.p && mt && auth_equal(t.p, t.len, mt, strlen(mt))))
        return 0;
    if (t.p && auth_equal(t.p, t.len, app.cfg.admin_key, strlen(app.cfg.admin_key))) return 0;
    http_error(r, 401, "unauthorized", "/metrics needs the admin key or the metrics token");
    return 1;
}

static void h_metrics(struct http_req *r)
{
    struct metrics_buf b = {0};
    if (metrics_denied(r)) return;
    const struct idem_stats *is = idem_stats(app.idem);
    http_render_metrics(&b);
    net_render_metrics(app.net, &b);
    render_log(&b);
    live_render_metrics(app.live, &b);
    metrics_printf(
        &b,
        "# TYPE veltrix_idempotent_replays_total counter\n"
        "veltrix_idempotent_replays_total %llu\n"
        "# TYPE veltrix_idempotency_key_reused_total counter\n"
        "veltrix_idempotency_key_reused_total %llu\n"
        "# TYPE veltrix_idempotency_entries gauge\nveltrix_idempotency_entries %llu\n"
        "# TYPE veltrix_players gauge\nveltrix_players %zu\n"
        "# TYPE veltrix_refresh_token_reuse_total counter\n"
        "veltrix_refresh_token_reuse_total %llu\n"
        "# TYPE veltrix_hunt_seq gauge\n# TYPE veltrix_hunt_players gauge\n"
        "# TYPE veltrix_hunt_chests_left gauge\n# TYPE veltrix_hunt_memory_bytes gauge\n",
        (unsigned long long)is->replayed, (unsigned long long)is->mismatched,
        (unsigned long long)is->entries, app.players.count, (unsigned long long)app.refresh_reused);
    hmap_each(&app.hunts, render_hunt, &b);
    snap_render_metrics(app.cfg.snap, &b);
    limits_render(&b);
    tiles_render_metrics(app.tiles, &b);
    if (!b.p) {
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    http_send(r, 200, "text/plain; version=0.0.4", b.p, b.len);
    free(b.p);
}

#define MiB (1024 * 1024)
static struct http_route routes[] = {
    {"GET", "/healthz", h_healthz, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/metrics", h_metrics, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/players", h_players_create, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/players/me", h_me, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/sessions/refresh", h_refresh, 0, 0, {0}, {{0}, 0, 0}},
    {"PUT", "/v1/hunts/:", h_hunt_put, 16 * MiB, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:", h_hunt_get, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/codes", h_codes, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/codes/:/qr.svg", h_qr, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/digest", h_digest, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/tiles/:/:/:", h_tile_get, 0, GATE_TILES, {0}, {{0}, 0, 0}},
    {"PUT", "/v1/hunts/:/tiles/:/:", h_tile_put, TILES_FILE_MAX, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/map/publish", h_map_publish, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/scans", h_scan, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/items/:/collect", h_collect, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/zones/:/open", h_open, 0, 0, {0}, {{0}, 0, 0}},
    {"POST", "/v1/hunts/:/position", h_position, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/me", h_hunt_me, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/leaderboard", h_leaderboard, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/stats", h_stats, 0, 0, {0}, {{0}, 0, 0}},
    {"GET", "/v1/hunts/:/live", h_live, 0, 0, {0}, {{0}, 0, 0}},
};

/* ---- recovery (recovery.c replays the hunts; the rest of the server's state here) -- */

/* Installs a hunt recovery.c brought back. */
static int keep_hunt(struct hunt *h, uint64_t from, void *ctx)
{
    const char *id = engine_hunt_id(h);
    if (hmap_put(&app.hunts, id, strlen(id), h)) abort();
    if (app.cfg.snap && snap_loaded(app.cfg.snap, id, from)) abort();
    return 0;
}

static int load_player(const struct store_player *p, void *arg)
{
    add_player(p->id, p->display_name, p->created_ms, p->gen);
    return 0;
}

/* The store keeps one refresh token per player (store_put_refresh), its current one
 * unless that was used or its sessions revoked; memory keeps it when it is unused and of
 * the player's generation. */
static int load_refresh(const struct store_refresh *row, void *arg)
{
    struct player *p = hmap_get(&app.players, row->player, 16);
    if (!p || row->used || row->gen != p->gen) return 0;
    if (p->refresh_exp_ms && memcmp(row->id, p->refresh_id, 16) < 0) return 0; /* newest */
    memcpy(p->refresh_id, row->id, 16);
    p->refresh_exp_ms = row->expires_ms;
    return 0;
}

/* Records of scope "-" are refresh answers kept by earlier versions: they hold tokens
 * and are never replayed (h_refresh), so they are not loaded (the store prunes them). */
static int load_idem(const struct store_idem *i, void *arg)
{
    if (!strcmp(i->scope, "-")) return 0;
    return idem_load(app.idem, i->scope, i->key, i->req_hash, i->status, i->body, i->body_len,
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
    return store_get_idem(app.reader, scope, key, fallback_row, &o);
}

int api_init(const struct api_config *cfg, struct store *reader, struct log *log, struct net *net,
             char *err, size_t errcap)
{
    char path[4096];
    app.cfg = *cfg;
    app.reader = reader;
    app.log = log;
    app.net = net;
    hmap_init(&app.players);
    hmap_init(&app.hunts);
    if (!(app.idem = idem_create(cfg->idem_max, cfg->idem_retention_ms)) ||
        !(app.live = live_create(net_loop(net), reader, &cfg->live, live_name, NULL)))
        return -1;
    idem_set_fallback(app.idem, idem_fallback, NULL);
    live_set_move_check(app.live, live_move_check);
    snprintf(path, sizeof path, "%s/secret.key", cfg->data_dir);
    int rc = auth_load_secret(&app.auth, path);
    if (rc) {
        snprintf(err, errcap, "cannot load or create %s: %s", path, strerror(-rc));
        return -1;
    }
    struct recovery_stats rs = {0};
    struct recovery_config rc_cfg = {cfg->ignore_snapshots, cfg->fsync_always};
    err[0] = '\0';
    int64_t now = now_ms();
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
            app.players.count, app.hunts.count, rs.snapshots, (unsigned long long)rs.events,
            (t1 - t0) / 1e9, (metrics_now_ns() - t1) / 1e9);
    struct tiles_config tc = {cfg->tiles_bytes_max, cfg->map_versions_kept};
    if (!(app.tiles = tiles_create(&tc))) return -1;
    if (tiles_restore(app.tiles, reader, err, errcap)) return -1;
    if (limits_init(&cfg->limits)) {
        snprintf(err, errcap, "cannot allocate the rate limit tables");
        return -1;
    }
    http_set_gate(limit_ip);
    http_set_routes(routes, sizeof routes / sizeof routes[0]);
    struct http_limits hl = {HTTP_HEAD_BYTES_MAX, HTTP_BODY_BYTES_DEFAULT, big_body_ok};
    http_set_limits(&hl);
    return 0;
}

static void demo_done(void *arg, int status)
{
    struct live_pending *lp = arg;
    if (lp->frame) live_publish(app.live, lp->h, lp->frame);
    free(lp);
}

/* Submits a log entry of the demo hunt; the live frame of the event apply() just applied,
 * if any, goes out once it is durable. At startup, before serving: when the queue is full
 * (a small --log-queue-max), the loop runs until the writer has made room. */
static void demo_submit(struct log_entry *e)
{
    struct live_pending *lp = malloc(sizeof *lp);
    if (!lp) abort();
    *lp = app.live_next;
    app.live_next = (struct live_pending){NULL, NULL};
    log_entry_on_done(e, demo_done, lp);
    while (log_submit(app.log, e) == -EAGAIN) net_run_once(app.net, 10);
}

/* The demo hunt's map: one generated SVG tile per map cell (demo.c), then version 1.
 * One log entry per tile, like uploads; the publish follows them in the log. */
static void demo_map(struct hunt *h)
{
    extern size_t demo_tile_svg(unsigned x, unsigned y, char *out, size_t cap);
    char svg[2048];
    int w, ht;
    engine_map_size(h, &w, &ht);
    for (int x = 0; x < w; x++)
        for (int y = 0; y < ht; y++) {
            size_t len = demo_tile_svg((unsigned)x, (unsigned)y, svg, sizeof svg);
            struct log_entry *e = new_entry();
            if (tile_stage(e, "demo", (uint32_t)x, (uint32_t)y, "image/svg+xml", svg, len))
                abort();
            demo_submit(e);
        }
    struct log_entry *e = new_entry();
    map_publish(h, e);
    demo_submit(e);
}

int api_create_demo(char *err, size_t errcap)
{
    extern const char demo_hunt_json[];
    if (hmap_get(&app.hunts, "demo", 4)) return 0;
    struct hunt *h = engine_hunt_create("demo");
    struct event ev;
    int rc = define_hunt(h, demo_hunt_json, strlen(demo_hunt_json), &ev, err, errcap);
    if (rc) {
        engine_hunt_destroy(h);
        return -1;
    }
    apply(h, &ev, NULL);
    if (hmap_put(&app.hunts, "demo", 4, h)) abort();
    struct log_entry *e = new_entry();
    entry_event(e, h, &ev);
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
    live_destroy(app.live);
    hmap_each(&app.players, free_player, NULL);
    hmap_each(&app.hunts, free_hunt, NULL);
    hmap_deinit(&app.players);
    hmap_deinit(&app.hunts);
    idem_destroy(app.idem);
    limits_deinit();
    tiles_destroy(app.tiles);
    auth_wipe(&app.auth);
}
