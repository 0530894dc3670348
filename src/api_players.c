/* api_players.c — players and sessions: POST /v1/players, POST /v1/sessions/refresh, GET
 * /v1/players/me. */
#include "api_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    struct auth_claims c = {.gen = p->gen, .exp_ms = api_now_ms() + api_app.cfg.token_ttl_s * 1000};
    memcpy(c.player, p->id, 16);
    auth_token_make(&api_app.auth, &c, tok);
    struct auth_refresh ar = {.gen = rt->gen};
    memcpy(ar.id, rt->id, 16);
    memcpy(ar.player, rt->player, 16);
    auth_refresh_make(&api_app.auth, &ar, ref);
    json_object_set_new(j, "token", json_string(tok));
    json_object_set_new(j, "expires_in", json_integer(api_app.cfg.token_ttl_s));
    json_object_set_new(j, "refresh_token", json_string(ref));
}

/* A fresh refresh token for p (its current one from now on) into *rt, added to e. */
static void new_refresh(struct player *p, struct log_entry *e, struct store_refresh *rt)
{
    uint64_t rnd;
    VX_FATAL_IF(auth_random(&rnd, sizeof rnd));
    memset(rt, 0, sizeof *rt);
    /* Time-ordered (UUIDv7) like player ids, so that the store appends to its index
     * instead of dirtying a random page per token; the token's MAC is what makes it
     * unforgeable, not the id. */
    uuid7_next(&api_app.uuid, api_now_ms(), rnd, rt->id);
    memcpy(rt->player, p->id, 16);
    rt->gen = p->gen;
    rt->expires_ms = api_now_ms() + api_app.cfg.refresh_ttl_s * 1000;
    memcpy(p->refresh_id, rt->id, 16);
    p->refresh_exp_ms = rt->expires_ms;
    VX_FATAL_IF(log_entry_refresh(e, rt)); /* the player's only row in the store now */
    /* Tokens of players who stopped refreshing expire in place: once a second, a new
     * token also prunes a bounded bite of expired rows. */
    if (api_now_ms() - api_app.refresh_pruned_ms >= 1000) {
        VX_FATAL_IF(log_entry_prune_refresh(e, api_now_ms()));
        api_app.refresh_pruned_ms = api_now_ms();
    }
}

/* When a refresh token id was issued: its UUIDv7 time (ms). */
static int64_t refresh_issued_ms(const uint8_t id[16])
{
    int64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | id[i];
    return ms;
}

struct player *api_add_player(const uint8_t id[16], const char *name, int64_t created, uint32_t gen)
{
    struct player *p = calloc(1, sizeof *p);
    VX_FATAL_IF(!p || !(p->name = strdup(name)));
    memcpy(p->id, id, 16);
    p->created_ms = created;
    p->gen = gen;
    VX_FATAL_IF(hmap_put(&api_app.players, p->id, 16, p));
    return p;
}

static void player_row(struct log_entry *e, const struct player *p)
{
    struct store_player row = {{0}, p->name, p->created_ms, p->gen};
    memcpy(row.id, p->id, 16);
    VX_FATAL_IF(log_entry_player(e, &row));
}

/* The idempotency scope of player creation: the client address, so that a key (and the
 * credentials its answer holds) never crosses from one client to another. */
static void anon_scope(struct http_req *r, char out[64])
{
    uint8_t a[16];
    char txt[INET6_ADDRSTRLEN];
    api_client_addr(r, a);
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, v4, 12))
        inet_ntop(AF_INET, a + 12, txt, sizeof txt);
    else
        inet_ntop(AF_INET6, a, txt, sizeof txt);
    snprintf(out, 64, "anon:%s", txt);
}

void api_players_create(struct http_req *r)
{
    struct idem_req ir;
    char who[64];
    anon_scope(r, who);
    /* A replay first: a retry of a creation that succeeded costs no sign-up budget. */
    if (api_idem_check(r, who, &ir) || api_limit_new_player(r)) return;
    json_t *b = api_body_object(r, 0);
    if (!b) return;
    const char *raw = api_str_field(r, b, "display_name");
    char *name = raw ? display_name(raw) : NULL;
    json_decref(b);
    if (raw && !name)
        http_error(r, 400, "invalid_request",
                   "display_name must be 1-32 characters after trimming, no control characters");
    if (!name) return;
    if (api_app.players.count >= api_app.cfg.players_max) {
        free(name);
        http_error(r, 503, "player_limit", "the server holds its maximum number of players");
        return;
    }
    if (!api_log_room(r)) {
        free(name);
        return;
    }
    uint8_t id[16];
    uint64_t rnd;
    VX_FATAL_IF(auth_random(&rnd, sizeof rnd));
    uuid7_next(&api_app.uuid, api_now_ms(), rnd, id);
    struct player *p = api_add_player(id, name, api_now_ms(), 0);
    free(name);
    api_app.players_created++;
    struct log_entry *e = api_new_entry();
    player_row(e, p);
    struct store_refresh rt0, *rt = &rt0;
    new_refresh(p, e, rt);
    char sid[37];
    uuid_format(p->id, sid);
    json_t *j = json_pack("{s:s,s:s}", "player_id", sid, "display_name", p->name);
    player_json_tokens(j, p, rt);
    api_submit(r, &ir, e, 201, j);
}

/* Several nodes: the store decides (store_refresh_rotate), whichever node issued the
 * token, so that a token works once across all of them and a second use anywhere is a
 * reuse. The statements run on the store thread (api_store_job), the request held
 * meanwhile: the player read first if this node does not hold it, the rotation, and on a
 * reuse the revocation. Durable before the answer, so nothing goes through the log. */
struct rotation {
    struct http_req *r; /* held */
    struct auth_refresh ar;
    struct store_refresh nw;
    struct api_player_row p; /* p.rc: 1 when the player was held here already */
    int load, rc, revoked;   /* rc: store_refresh_rotate's; revoked: store_revoke_player's */
    uint64_t gen;            /* the generation it revoked to */
    int64_t now;
};

static void rotate_run(struct store *s, void *arg)
{
    struct rotation *x = arg;
    uint8_t cur[16];
    uint64_t cur_gen;
    if (x->load) api_player_read(s, &x->p);
    if (x->p.rc != 1) return;
    x->rc = store_refresh_rotate(s, x->ar.player, x->ar.id, x->ar.gen, x->now, &x->nw, cur,
                                 &cur_gen);
    /* An earlier token of the current generation, or this one used twice at once: a
     * reuse; every session of the player ends. */
    if (x->rc == 0 && cur_gen == x->ar.gen && memcmp(x->ar.id, cur, 16) <= 0)
        x->revoked = store_revoke_player(s, x->ar.player, &x->gen) < 0 ? -1 : 1;
}

static void rotate_done(void *arg, int ran)
{
    struct rotation *x = arg;
    struct http_req *r = x->r;
    struct player *p = NULL;
    if (ran && x->load) api_player_learn(&x->p);
    free(x->p.name);
    if (ran && x->p.rc == 1) p = hmap_get(&api_app.players, x->ar.player, 16);
    if (!ran || x->p.rc < 0 || x->rc < 0 || x->revoked < 0) {
        http_error(r, 503, ran ? "store_unavailable" : "unavailable",
                   ran ? "the store did not answer; retry" : "this node is stopping; retry");
    } else if (!p) {
        http_error(r, 401, "unauthorized", "invalid or expired refresh token");
    } else if (x->rc == 1) {
        if (x->ar.gen > p->gen) p->gen = x->ar.gen;
        memcpy(p->refresh_id, x->nw.id, 16);
        p->refresh_exp_ms = x->nw.expires_ms;
        json_t *j = json_object();
        player_json_tokens(j, p, &x->nw);
        http_send_json(r, 200, j);
    } else if (x->revoked) {
        if (x->gen > p->gen) p->gen = (uint32_t)x->gen;
        p->refresh_exp_ms = 0;
        api_app.refresh_reused++;
        /* The other nodes refuse the revoked access tokens now, not at their expiry (a
         * node that misses this word still refuses every refresh of them). */
        if (api_app.feed) feed_revocation(api_app.feed, p->id, p->gen);
        http_error(r, 401, "refresh_token_reused", "refresh token reused; all sessions revoked");
    } else { /* revoked, expired and pruned, or never issued by this store */
        http_error(r, 401, "unauthorized", "invalid or expired refresh token");
    }
    free(x);
}

static void refresh_in_store(struct http_req *r, const struct auth_refresh *ar)
{
    int64_t now = api_now_ms();
    struct player *p = hmap_get(&api_app.players, ar->player, 16);
    if (log_store_down(api_app.log)) {
        http_error(r, 503, "store_unavailable", "the store does not answer; retry");
        return;
    }
    if (refresh_issued_ms(ar->id) + api_app.cfg.refresh_ttl_s * 1000 <= now) {
        http_error(r, 401, "unauthorized", "invalid or expired refresh token");
        return;
    }
    if (p && api_limit_player(r, p)) return; /* one read from the store: a fresh bucket */
    struct rotation *x = calloc(1, sizeof *x);
    if (!x) {
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    uint64_t rnd;
    VX_FATAL_IF(auth_random(&rnd, sizeof rnd));
    x->ar = *ar;
    x->now = now;
    x->nw = (struct store_refresh){.gen = ar->gen, .expires_ms = now + api_app.cfg.refresh_ttl_s * 1000};
    uuid7_next(&api_app.uuid, now, rnd, x->nw.id);
    memcpy(x->nw.player, ar->player, 16);
    memcpy(x->p.row.id, ar->player, 16);
    x->load = !p;
    x->p.rc = 1; /* held here: found */
    if (api_store_job(rotate_run, rotate_done, x)) {
        free(x);
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    x->r = http_hold(r);
}

/* POST /v1/sessions/refresh. Never answered from an idempotency record: the answer holds
 * credentials, and the request's only proof of identity is the refresh token in its body,
 * which a thief may hold too. A refresh token works once; presenting it again, with or
 * without the same Idempotency-Key, is a reuse and revokes every session of the player. */
void api_refresh(struct http_req *r)
{
    json_t *b = api_body_object(r, 0);
    if (!b) return;
    const char *tok = api_str_field(r, b, "refresh_token");
    struct auth_refresh ar;
    struct player *p = NULL;
    int64_t now = api_now_ms();
    int signed_ok = tok && auth_refresh_check(&api_app.auth, tok, strlen(tok), &ar) == AUTH_OK;
    if (signed_ok && api_app.cfg.node) {
        refresh_in_store(r, &ar);
    } else if (signed_ok && (p = hmap_get(&api_app.players, ar.player, 16)) && ar.gen == p->gen) {
        int cmp = p->refresh_exp_ms ? memcmp(ar.id, p->refresh_id, 16) : 1, current = !cmp;
        int64_t exp = current ? p->refresh_exp_ms
                              : refresh_issued_ms(ar.id) + api_app.cfg.refresh_ttl_s * 1000;
        /* cmp > 0: newer than the current one (ids are time-ordered), so never used here:
         * one whose issue a lost log tail undid (--fsync batch/off). Not a reuse. */
        if (exp <= now || cmp > 0) {
            http_error(r, 401, "unauthorized", "invalid or expired refresh token");
        } else if (!api_limit_player(r, p) && api_log_room(r)) {
            struct log_entry *e = api_new_entry();
            if (!current) { /* an earlier token: someone holds a copy; revoke every session */
                p->gen++;
                p->refresh_exp_ms = 0;
                api_app.refresh_reused++;
                player_row(e, p);
                api_submit(r, NULL, e, 401,
                           json_pack("{s:{s:s,s:s}}", "error", "code", "refresh_token_reused",
                                     "message", "refresh token reused; all sessions revoked"));
            } else {
                struct store_refresh used = {.gen = p->gen, .expires_ms = exp, .used = 1}, nrt;
                memcpy(used.id, ar.id, 16);
                memcpy(used.player, p->id, 16);
                VX_FATAL_IF(log_entry_refresh(e, &used));
                new_refresh(p, e, &nrt);
                json_t *j = json_object();
                player_json_tokens(j, p, &nrt);
                api_submit(r, NULL, e, 200, j);
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
    vx_time_format(ms, buf);
    json_object_set_new(obj, key, json_string(buf));
}

void api_me(struct http_req *r)
{
    struct player *p = api_authed(r);
    if (!p) return;
    char sid[37];
    uuid_format(p->id, sid);
    json_t *j = json_pack("{s:s,s:s}", "player_id", sid, "display_name", p->name);
    time_json(j, "created_at", p->created_ms);
    http_send_json(r, 200, j);
}
