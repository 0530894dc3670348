/* api_play.c — playing: scans, items, chests, positions, /me, the leaderboard, stats and the live
 * stream's upgrade. */
#include "api_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* ---- playing ------------------------------------------------------------------------- */

/* Everything a player write starts with. Returns 0 with p, h, ir filled, or -1 answered. */
static int player_write(struct http_req *r, struct player **p, struct hunt **h, struct idem_req *ir)
{
    char who[37];
    if (!(*p = api_authed(r)) || !(*h = api_hunt_param(r))) return -1;
    uuid_format((*p)->id, who);
    if (api_idem_check(r, who, ir)) return -1;
    return api_log_room(r) ? 0 : -1;
}

/* The common end of a player write: answer the engine's refusal, or apply the decided
 * event and fill out. 0 when applied; -1 when answered. */
static int decided(struct http_req *r, struct hunt *h, int rc, const struct event *ev,
                   struct engine_outcome *out)
{
    if (rc) {
        api_engine_error(r, rc);
        return -1;
    }
    api_apply(h, ev, out);
    return 0;
}

/* Logs ev and answers 200 with the body in w (its buffer is stolen) once it is durable. */
static void submit_event(struct http_req *r, struct hunt *h, struct idem_req *ir,
                         const struct event *ev, struct jsonw *w)
{
    VX_FATAL_IF(w->oom); /* a few dozen bytes: out of memory here is not recoverable */
    struct log_entry *e = api_new_entry();
    api_entry_event(e, h, ev);
    api_submit_raw(r, ir, e, 200, w->p, w->len);
}

void api_scan(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    struct idem_req ir;
    if (player_write(r, &p, &h, &ir)) return;
    char plain[AUTH_PAYLOAD_MAX], code[ENGINE_ID_MAX + 1];
    json_t *b = NULL;
    const char *payload = plain;
    if (!api_body_plain_string(http_body(r), "code", plain, sizeof plain))
        payload = (b = api_body_object(r, 0)) ? api_str_field(r, b, "code") : NULL;
    struct event ev;
    struct engine_outcome out;
    if (!payload) {
    } else if (auth_payload_check(&api_app.auth, engine_hunt_id(h), payload, strlen(payload),
                                  code) != AUTH_OK) {
        http_error(r, 400, "invalid_code", "not a code of this hunt");
    } else if (!decided(r, h, engine_scan(h, p->id, code, api_now_ms(), &ev), &ev, &out)) {
        struct jsonw w = {0}; /* ids are [a-z0-9_-]: nothing here needs escaping */
        jsonw_lit(&w, "{\"code\":\"");
        jsonw_lit(&w, code);
        jsonw_lit(&w, "\",\"points\":");
        jsonw_i64(&w, out.points);
        jsonw_lit(&w, ",\"score\":");
        jsonw_i64(&w, out.score);
        jsonw_lit(&w, ",\"rank\":");
        api_rank_w(&w, out.rank);
        jsonw_lit(&w, "}");
        submit_event(r, h, &ir, &ev, &w);
    }
    json_decref(b);
}

void api_collect(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    struct idem_req ir;
    char item[ENGINE_ID_MAX + 1];
    struct event ev;
    json_t *b;
    if (player_write(r, &p, &h, &ir) || api_param_id(r, 1, item) || !(b = api_body_object(r, 1)))
        return;
    json_decref(b);
    struct engine_outcome out;
    if (decided(r, h, engine_collect(h, p->id, item, api_now_ms(), &ev), &ev, &out)) return;
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

void api_open(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    struct idem_req ir;
    char zone[ENGINE_ID_MAX + 1];
    struct event ev;
    json_t *b;
    if (player_write(r, &p, &h, &ir) || api_param_id(r, 1, zone) || !(b = api_body_object(r, 1)))
        return;
    json_decref(b);
    struct engine_outcome out;
    if (decided(r, h, engine_open(h, p->id, zone, api_now_ms(), &ev), &ev, &out)) return;
    struct jsonw w = {0}; /* ids are [a-z0-9_-]: nothing here needs escaping */
    jsonw_lit(&w, "{\"chest\":\"");
    jsonw_lit(&w, ev.u.open.chest);
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
    api_rank_w(&w, out.rank);
    jsonw_lit(&w, "}");
    submit_event(r, h, &ir, &ev, &w);
}

void api_position(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    json_t *b;
    if (!(p = api_authed(r)) || !(h = api_hunt_param(r)) || !(b = api_body_object(r, 0))) return;
    json_t *x = json_object_get(b, "x"), *y = json_object_get(b, "y");
    int w, ht, rc;
    engine_map_size(h, &w, &ht);
    if (!json_is_number(x) || !json_is_number(y)) {
        http_error(r, 400, "invalid_request", "'x' and 'y' must be numbers");
    } else if (json_number_value(x) < 0 || json_number_value(x) >= w || json_number_value(y) < 0 ||
               json_number_value(y) >= ht) {
        http_error(r, 400, "out_of_bounds", "the position is outside the map (%d x %d)", w, ht);
    } else if ((rc = engine_playable(h, api_now_ms())) != 0) { /* like scans: 403 hunt_not_active */
        api_engine_error(r, rc);
    } else if (!api_limit_move(r, p, h, json_number_value(x), json_number_value(y))) {
        live_position(api_app.live, h, p->id, json_number_value(x), json_number_value(y));
        http_send(r, 202, "application/json", "{}", 2);
    }
    json_decref(b);
}

void api_hunt_me(struct http_req *r)
{
    struct player *p;
    struct hunt *h;
    if ((p = api_authed(r)) && (h = api_hunt_param(r)))
        http_send_json(r, 200, engine_me_json(h, p->id));
}

/* ---- leaderboard and stats ----------------------------------------------------------- */

/* Parses an optional integer query parameter in [lo, hi]; -1 after answering 400. */
int api_query_int(struct http_req *r, const char *name, long lo, long hi, long *out)
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
        struct player *p = hmap_get(&api_app.players, rows[i].player, 16);
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

void api_leaderboard(struct http_req *r)
{
    struct hunt *h = api_hunt_param(r);
    long limit = 10, offset = 0, radius = 5;
    if (!h || api_query_int(r, "limit", 1, 1000, &limit) ||
        api_query_int(r, "offset", 0, 1000000000L, &offset) ||
        api_query_int(r, "radius", 0, 500, &radius))
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

void api_stats(struct http_req *r)
{
    struct hunt *h = api_hunt_param(r);
    if (!h) return;
    struct engine_stats st;
    uint8_t head[ENGINE_HASH_BYTES];
    char hex[2 * ENGINE_HASH_BYTES + 1];
    int64_t lag_ms;
    uint64_t lag_events;
    if (api_replica_lag(r, h, &lag_ms, &lag_events)) return; /* held: the store is asked */
    engine_stats(h, &st);
    engine_head_hash(h, head);
    engine_hash_hex(head, hex);
    const char *owner = api_hunt_owner(engine_hunt_id(h));
    http_send_json(r, 200,
                   json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:s?}", "seq", (json_int_t)st.seq, "players",
                             (json_int_t)st.players, "scans", (json_int_t)st.scans, "chests_left",
                             (json_int_t)st.chests_left, "live_connections",
                             (json_int_t)live_connections(api_app.live, h), "store_lag_ms",
                             (json_int_t)log_lag_ms(api_app.log), "head_hash", hex,
                             "replication_lag_ms", (json_int_t)lag_ms, "replication_lag_events",
                             (json_int_t)lag_events, "owner", owner));
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
    if (sock) live_subscribe(api_app.live, lr->h, sock, lr->player, lr->since);
    free(lr);
}

/* GET /v1/hunts/{hunt}/live?token=...[&since=N]: checks everything, then upgrades. */
void api_live(struct http_req *r)
{
    struct http_str t = http_query(r, "token");
    if (!t.p) t = api_bearer(r);
    int err = AUTH_INVALID;
    struct player *p = t.p ? api_check_token(t.p, t.len, &err) : NULL;
    struct hunt *h;
    long since = -1;
    if (!p) {
        if (err == AUTH_EXPIRED)
            http_error(r, 401, "token_expired", "the token has expired");
        else
            http_error(r, 401, "unauthorized", "a valid player token is required");
        return;
    }
    if (!(h = api_hunt_param(r)) || api_query_int(r, "since", 0, LONG_MAX, &since)) return;
    if (!http_is_websocket(r)) {
        http_error(r, 426, "upgrade_required", "this endpoint is a WebSocket (RFC 6455)");
        return;
    }
    struct live_req *lr = malloc(sizeof *lr);
    VX_FATAL_IF(!lr); /* small allocation: out of memory is fatal here */
    lr->h = h;
    memcpy(lr->player, p->id, 16);
    lr->since = since;
    http_upgrade_websocket(r, on_live_upgraded, lr);
}

const char *api_live_name(const uint8_t player[16], void *ctx)
{
    struct player *p = hmap_get(&api_app.players, player, 16);
    return p ? p->name : "";
}
