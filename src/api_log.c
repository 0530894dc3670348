/* api_log.c — GET /v1/hunts/{hunt}/log: a hunt's public event log with its hash chain
 * (API.md "Fairness evidence"), the evidence `veltrix audit` and third-party verifiers
 * check (docs/FAIRNESS.md).
 *
 * Design: the page is read from the store through the server's reader handle (durable
 * events only), at most `limit` rows (<= 10,000), on the event loop: a bounded pause.
 * What an event did that its row does not say (a scan's points, a chest's points and
 * loot) comes from the hunt's current definition: a used code or opened chest can never
 * change (engine_define refuses it), so the current values are the ones it earned.
 * Each row's hash is the stored one; rows written before the chain existed have none, and
 * theirs is recomputed from the previous link (for a page starting inside such a prefix,
 * the chain is walked from seq 1: the rare, legacy case).
 * Invariants: no secret leaves here: the define's seed only once engine_seed_reveal says
 * the hunt has ended (and the definition's exact text with it); never a code payload, a
 * token or an idempotency key (none of them is in an event). */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#define LOG_LIMIT_MAX 10000
#define LOG_LIMIT_DEFAULT 1000

struct log_page {
    const struct hunt *h;
    uint64_t since, until; /* rows since < seq <= until are listed */
    int revealed;
    char seed[2 * ENGINE_SEED_BYTES + 1];
    uint8_t prev[ENGINE_HASH_BYTES]; /* the link before the next row */
    int prev_known;
    int need_walk; /* a row without a stored hash and no known previous link */
    json_t *events;
};

static json_t *hex_json(const uint8_t *b)
{
    char hex[2 * ENGINE_HASH_BYTES + 1];
    engine_hash_hex(b, hex);
    return json_stringn(hex, 64);
}

/* hunt_updated's fields; the first definition also carries the commitment (and seed). */
static void define_fields(json_t *o, const struct log_page *pg, const struct event *ev)
{
    const struct event_define *d = &ev->u.define;
    uint8_t sha[32];
    SHA256((const unsigned char *)d->json, d->json_len, sha);
    json_object_set_new(o, "draw_rule", json_integer(d->draw_rule));
    json_object_set_new(o, "definition_sha256", hex_json(sha));
    json_t *def = engine_definition_public(d->json, d->json_len);
    json_object_set_new(o, "definition", def ? def : json_null());
    if (pg->revealed) json_object_set_new(o, "definition_text", json_stringn(d->json, d->json_len));
    if (ev->seq != 1) return;
    if (d->draw_rule == ENGINE_DRAW_HMAC) {
        SHA256(d->seed, ENGINE_SEED_BYTES, sha);
        json_object_set_new(o, "seed_commitment", hex_json(sha));
        if (pg->revealed) json_object_set_new(o, "seed", json_string(pg->seed));
    } else {
        json_object_set_new(o, "seed_commitment", json_null());
    }
}

static void player_fields(json_t *o, const struct event *ev)
{
    char id[37];
    uuid_format(ev->player, id);
    json_object_set_new(o, "player", json_string(id));
    json_object_set_new(o, "display_name", json_string(api_live_name(ev->player, NULL)));
}

/* The event object of API.md's /log (keys in the documented order), hash last. */
static json_t *event_object(const struct log_page *pg, const struct event *ev,
                            const uint8_t hash[ENGINE_HASH_BYTES])
{
    char at[32];
    int64_t points = 0;
    const char *const *loot = NULL;
    size_t n_loot = 0;
    json_t *o = json_object();
    vx_time_format(ev->time_ms, at);
    json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
    json_object_set_new(o, "type", json_string(event_type_live((enum event_type)ev->type)));
    json_object_set_new(o, "at", json_string(at));
    switch ((enum event_type)ev->type) { /* every type, no default: -Wswitch names a new one */
    case EVENT_DEFINE:
        define_fields(o, pg, ev);
        break;
    case EVENT_SCAN:
        player_fields(o, ev);
        json_object_set_new(o, "code", json_string(ev->u.scan.code));
        engine_code_points(pg->h, ev->u.scan.code, &points);
        json_object_set_new(o, "points", json_integer(points));
        break;
    case EVENT_COLLECT:
        player_fields(o, ev);
        json_object_set_new(o, "item", json_string(ev->u.collect.item));
        break;
    case EVENT_OPEN: {
        player_fields(o, ev);
        json_object_set_new(o, "zone", json_string(ev->u.open.zone));
        json_object_set_new(o, "chest", json_string(ev->u.open.chest));
        engine_chest_reward(pg->h, ev->u.open.zone, ev->u.open.chest, &points, &loot, &n_loot);
        json_object_set_new(o, "points", json_integer(points));
        json_t *l = json_array();
        for (size_t i = 0; i < n_loot; i++) json_array_append_new(l, json_string(loot[i]));
        json_object_set_new(o, "loot", l);
        break;
    }
    case EVENT_MAP:
        json_object_set_new(o, "version", json_integer(ev->u.map.version));
        break;
    }
    json_object_set_new(o, "hash", hex_json(hash));
    return o;
}

/* One row: its link (stored, else recomputed), listed when inside the page. */
static int page_row(const struct store_event *se, void *arg)
{
    struct log_page *pg = arg;
    struct event ev;
    if (se->seq > pg->until) return 1;
    if (event_read(&ev, se->seq, se->time_ms, se->type, se->player, se->data, se->data_len))
        return STORE_ECORRUPT;
    if (se->has_hash) {
        memcpy(pg->prev, se->hash, ENGINE_HASH_BYTES);
    } else if (pg->prev_known) {
        engine_chain_next(pg->prev, &ev, pg->prev);
    } else {
        pg->need_walk = 1;
        return 1;
    }
    pg->prev_known = 1;
    if (se->seq > pg->since) json_array_append_new(pg->events, event_object(pg, &ev, pg->prev));
    return se->seq >= pg->until ? 1 : 0;
}

/* pg->events = the rows of the page; 0 or a store error. */
static int read_page(struct log_page *pg)
{
    const char *id = engine_hunt_id(pg->h);
    if (pg->since >= pg->until) return 0;
    /* From the row `since` (its stored link is the previous one), or from H0. */
    pg->prev_known = pg->since == 0;
    if (pg->prev_known) engine_chain_h0(pg->h, pg->prev);
    int rc = store_each_event(api_app.reader, id, pg->since ? pg->since : 1, page_row, pg);
    if (rc < 0 || !pg->need_walk) return rc < 0 ? rc : 0;
    /* A row from before the chain: walk it from seq 1. */
    json_array_clear(pg->events);
    pg->need_walk = 0;
    pg->prev_known = 1;
    engine_chain_h0(pg->h, pg->prev);
    rc = store_each_event(api_app.reader, id, 1, page_row, pg);
    return rc < 0 ? rc : 0;
}

void api_hunt_log(struct http_req *r)
{
    long since = 0, limit = LOG_LIMIT_DEFAULT;
    struct hunt *h = api_hunt_param(r);
    if (!h || api_query_int(r, "since", 0, 1L << 53, &since) ||
        api_query_int(r, "limit", 1, LOG_LIMIT_MAX, &limit))
        return;
    struct log_page pg = {.h = h, .since = (uint64_t)since, .events = json_array()};
    uint64_t head_seq = engine_seq(h);
    pg.until = pg.since + (uint64_t)limit < head_seq ? pg.since + (uint64_t)limit : head_seq;
    pg.revealed = engine_seed_reveal(h, api_now_ms(), pg.seed) == 0;
    int rc = read_page(&pg);
    if (rc) {
        json_decref(pg.events);
        http_error(r, 503, "unavailable", "cannot read the log (%s)", store_err_str(rc));
        return;
    }
    uint8_t head[ENGINE_HASH_BYTES], h0[ENGINE_HASH_BYTES];
    engine_head_hash(h, head);
    engine_chain_h0(h, h0);
    json_t *o = json_object();
    json_object_set_new(o, "hunt", json_string(engine_hunt_id(h)));
    json_object_set_new(o, "draw_rule", json_integer(engine_draw_rule(h)));
    json_object_set_new(o, "seed_commitment",
                        engine_draw_rule(h) == ENGINE_DRAW_HMAC ? hex_json(h0) : json_null());
    if (pg.revealed) json_object_set_new(o, "seed", json_string(pg.seed));
    json_object_set_new(o, "events", pg.events);
    json_object_set_new(o, "head", json_pack("{s:I,s:o}", "seq", (json_int_t)head_seq, "hash",
                                             hex_json(head)));
    http_send_json(r, 200, o);
}
