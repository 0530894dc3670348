/* api_req.c — what every handler starts with: the clock, ids from the path, the hunt, tokens and
 * the admin key, JSON bodies and their fields. */
#include "api_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int64_t api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- request helpers ---------------------------------------------------------------- */

/* Copies a path parameter that must be an id; answers 400 invalid_id otherwise. */
int api_param_id(struct http_req *r, int i, char out[ENGINE_ID_MAX + 1])
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
    if (api_read_index(r, id)) return NULL; /* several nodes: a token read sees its writes */
    struct hunt *h = hmap_get(&api_app.hunts, id, strlen(id));
    if (!h || !engine_defined(h)) {
        http_error(r, 404, "hunt_not_found", "no hunt '%s'", id);
        return NULL;
    }
    return h;
}

/* Param 0 is the hunt id: validates and looks it up, answering errors itself. */
struct hunt *api_hunt_param(struct http_req *r)
{
    char id[ENGINE_ID_MAX + 1];
    return api_param_id(r, 0, id) ? NULL : find_hunt(r, id);
}

/* The bearer token of the request, or p == NULL. */
struct http_str api_bearer(struct http_req *r)
{
    struct http_str a = http_header(r, "authorization");
    if (!a.p || a.len < 8 || strncasecmp(a.p, "Bearer ", 7) != 0) return (struct http_str){NULL, 0};
    return (struct http_str){a.p + 7, a.len - 7};
}

/* ---- players of other nodes ----------------------------------------------------------- */

/* Several nodes: a token that one node issued holds on all (they share the secret), but
 * the player may have been created, or its sessions revoked, on another node since this
 * one loaded its players. Such a player is read from the store when a token whose MAC
 * holds names it, with a generation this node has not seen: once per player and
 * generation, and at most PLAYER_LOADS_PER_S a second in all. The read runs on the store
 * thread (tail_job), the request held meanwhile (api_player_gate, the gate's last step);
 * a handler then finds the player in memory. A single node holds every player. */
#define PLAYER_LOADS_PER_S 1000
static struct {
    int64_t second;
    unsigned n;
    uint64_t total, refused;
} loads;

static int player_loaded(const struct store_player *row, void *ctx)
{
    struct player **out = ctx, *p = hmap_get(&api_app.players, row->id, 16);
    if (!p && api_app.players.count >= api_app.cfg.players_max) return 0;
    if (!p) p = api_add_player(row->id, row->display_name, row->created_ms, row->gen);
    if (row->gen > p->gen) p->gen = row->gen; /* revoked elsewhere: sessions end here too */
    *out = p;
    return 0;
}

/* Whether one more player may be read this second (counted). */
static int load_allowed(void)
{
    int64_t now = api_now_ms();
    if (now / 1000 != loads.second) loads.second = now / 1000, loads.n = 0;
    if (loads.n >= PLAYER_LOADS_PER_S) {
        loads.refused++;
        return 0;
    }
    loads.n++;
    loads.total++;
    return 1;
}

static int row_copy(const struct store_player *row, void *ctx)
{
    struct api_player_row *x = ctx;
    x->row = *row;
    x->name = strdup(row->display_name ? row->display_name : "");
    x->row.display_name = x->name;
    return 0;
}

void api_player_read(struct store *s, struct api_player_row *x)
{
    x->rc = store_get_player(s, x->row.id, row_copy, x);
    if (x->rc == 1 && !x->name) x->rc = STORE_EIO; /* out of memory */
}

struct player *api_player_learn(struct api_player_row *x)
{
    struct player *p = NULL;
    if (x->rc == 1) player_loaded(&x->row, &p);
    free(x->name);
    x->name = NULL;
    return p;
}

struct player_read {
    struct http_req *r; /* held */
    int fwd;            /* the gate's: a forwarded request, and its client address */
    uint8_t addr[16];
    struct api_player_row p;
};

static void read_run(struct store *s, void *arg)
{
    api_player_read(s, &((struct player_read *)arg)->p);
}

static void read_done(void *arg, int ran)
{
    struct player_read *x = arg;
    if (ran) api_player_learn(&x->p);
    free(x->p.name);
    if (!ran)
        http_error(x->r, 503, "unavailable", "this node is stopping; retry");
    else
        api_gate_resume(x->r, x->fwd, x->addr, 1);
    free(x);
}

int api_player_gate(struct http_req *r, int fwd, const uint8_t addr[16])
{
    struct auth_claims c;
    if (!api_app.cfg.node) return 0; /* a single node holds every player */
    struct http_str t = api_bearer(r);
    if (!t.p) t = http_query(r, "token"); /* live's */
    if (!t.p || log_store_down(api_app.log) ||
        auth_token_check(&api_app.auth, t.p, t.len, api_now_ms(), &c) == AUTH_INVALID)
        return 0;
    struct player *p = hmap_get(&api_app.players, c.player, 16);
    if ((p && p->gen >= c.gen) || !load_allowed()) return 0; /* known; or refused: 401 */
    struct player_read *x = calloc(1, sizeof *x);
    if (!x) return 0;
    x->fwd = fwd;
    memcpy(x->addr, addr, 16);
    memcpy(x->p.row.id, c.player, 16);
    if (api_store_job(read_run, read_done, x)) {
        free(x);
        return 0;
    }
    x->r = http_hold(r); /* read_done runs on the loop, after this returns */
    return 1;
}

void api_player_loads_render(struct metrics_buf *b)
{
    metrics_printf(b,
                   "# TYPE veltrix_player_loads_total counter\n"
                   "veltrix_player_loads_total{result=\"read\"} %llu\n"
                   "veltrix_player_loads_total{result=\"refused\"} %llu\n",
                   (unsigned long long)loads.total, (unsigned long long)loads.refused);
}

struct player *api_check_token(const char *tok, size_t len, int *err)
{
    struct auth_claims c;
    int rc = auth_token_check(&api_app.auth, tok, len, api_now_ms(), &c);
    /* Several nodes: the gate read the player from the store if it had to. */
    struct player *p = rc == AUTH_INVALID ? NULL : hmap_get(&api_app.players, c.player, 16);
    if (!p || p->gen != c.gen) {
        *err = AUTH_INVALID;
        return NULL;
    }
    *err = rc;
    return rc == AUTH_OK ? p : NULL;
}

/* The authenticated player, or NULL after answering 401. */
struct player *api_authed(struct http_req *r)
{
    struct http_str t = api_bearer(r);
    int err = AUTH_INVALID;
    struct player *p = t.p ? api_check_token(t.p, t.len, &err) : NULL;
    if (p) return api_limit_player(r, p) ? NULL : p;
    if (err == AUTH_EXPIRED)
        http_error(r, 401, "token_expired", "the token has expired; refresh it");
    else
        http_error(r, 401, "unauthorized", "a valid player token is required");
    return NULL;
}

/* 0 for the admin key; otherwise answers 403 (a player token) or 401 and returns -1. */
int api_admin(struct http_req *r)
{
    struct http_str t = api_bearer(r);
    int err;
    if (t.p && auth_equal(t.p, t.len, api_app.cfg.admin_key, strlen(api_app.cfg.admin_key)))
        return 0;
    if (t.p && (api_check_token(t.p, t.len, &err) || err == AUTH_EXPIRED))
        http_error(r, 403, "forbidden", "this endpoint needs the admin key");
    else
        http_error(r, 401, "unauthorized", "the admin key is required");
    return -1;
}

/* Whether an Authorization header value carries the admin key: bodies over 64 KiB are
 * read only then (http.h http_limits, checked before the body arrives). */
int api_big_body_ok(const char *v, size_t len)
{
    return len > 7 && strncasecmp(v, "Bearer ", 7) == 0 &&
           auth_equal(v + 7, len - 7, api_app.cfg.admin_key, strlen(api_app.cfg.admin_key));
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
json_t *api_body_object(struct http_req *r, int allow_empty)
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
const char *api_str_field(struct http_req *r, json_t *obj, const char *name)
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
int api_body_plain_string(struct http_str b, const char *name, char *out, size_t cap)
{
    const char *p = b.p, *end = b.p + b.len;
    size_t nl = strlen(name), n = 0;
#define SKIP_WS()                                                                                  \
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))                       \
    p++
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
void api_rank_w(struct jsonw *w, uint64_t rank)
{
    if (rank)
        jsonw_u64(w, rank);
    else
        jsonw_lit(w, "null");
}
