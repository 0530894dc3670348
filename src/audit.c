/* audit.c — `veltrix audit` (see audit.h).
 *
 * Design: two threads in a pipeline. The reader (the calling thread) reads the events
 * (the store's rows, or the lines of a /log export), checks their seq order and the hash
 * chain, and hands them over in batches; the applier folds them into a fresh engine hunt,
 * as recovery would, checking each open's draw before engine_apply and the listed points
 * and loot after it. The chain is recomputed from each event as it was recorded (its draw
 * rule and the SHA-256 of its exact definition text), independently of the hunt the
 * engine holds: a file without the seed still has its chain checked, while its engine
 * hunt draws by the legacy rule (its opens are applied, not re-drawn: "not checked").
 * The chain needs only each line's bytes and the engine only the decoded events, so the
 * two halves share nothing but the batches (about half the work each: 2 cores, ~2x).
 * Invariants: the first failure stops the audit (exit 1) with "seq N: what": the reader
 * hands over only events before its own failure, so an applier failure is always the
 * earlier one; input that cannot be read at all exits 2; nothing is written anywhere (the
 * store is only read). */
#include "audit.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "store.h"
#include "uuid.h"
#include "vx.h"

/* Why an audit stops: 1 a check failed, 2 unreadable input; one per thread. */
struct verdict {
    int failed;
    char why[600];
};

#define CLAIM_LOOT_MAX 64

/* One event on its way to the applier: what the engine applies (a DEFINE without the seed
 * when it is unknown; its json owned here) and what its /log line claims beyond it. */
struct item {
    struct event ev;
    char *json; /* DEFINE: the definition text ev points to (malloc) */
    int has_points, has_loot;
    int64_t points;
    size_t n_loot;   /* > CLAIM_LOOT_MAX: more than any chest holds */
    size_t loot_off; /* the first listed id in the batch's arena, each NUL-terminated */
};

#define BATCH_EVENTS 1024 /* ~250 KB of items: a batch stays in cache between the threads */
#define N_BATCHES 4
/* The applier asks the engine to fetch the player records of the events this far ahead:
 * players of a big hunt come round rarely, each is two cache misses (id index, record). */
#define PREFETCH_SLOT 16
#define PREFETCH_PLAYER 8

struct batch {
    size_t n;
    int last; /* the reader's final batch (possibly empty) */
    char *arena;
    size_t arena_len, arena_cap;
    struct item items[BATCH_EVENTS];
};

struct audit {
    const char *hunt;
    struct hunt *h;
    /* the reader's */
    uint64_t read; /* events handed over (the seq check) */
    uint8_t link[ENGINE_HASH_BYTES];
    int seed_given;                       /* --seed */
    uint8_t given[ENGINE_SEED_BYTES];
    int hmac;                             /* the hunt has a seed commitment (set at seq 1) */
    int have_seed;                        /* the draws can be checked (set at seq 1) */
    uint8_t seed[ENGINE_SEED_BYTES];
    uint64_t unhashed;
    int halted; /* stopped because the applier failed */
    struct verdict rd;
    /* the applier's */
    uint64_t events, opens, draws;
    struct verdict ap;
    /* the hand-over: batches applied..filled-1 (mod N_BATCHES) are the applier's, batch
     * filled % N_BATCHES the reader's; both counters only grow, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct batch *b[N_BATCHES];
    uint64_t filled, applied; /* batches handed over, batches given back */
    int stop;                 /* the applier failed: the reader stops reading */
};

/* Records why the audit stops at seq. */
static int stop(struct verdict *v, int failed, uint64_t seq, const char *fmt, va_list ap)
{
    int n = snprintf(v->why, sizeof v->why, "seq %" PRIu64 ": ", seq);
    vsnprintf(v->why + n, sizeof v->why - (size_t)n, fmt, ap);
    v->failed = failed;
    return -1;
}

/* A check failed (exit 1). */
__attribute__((format(printf, 3, 4))) static int fail(struct verdict *v, uint64_t seq,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    stop(v, 1, seq, fmt, ap);
    va_end(ap);
    return -1;
}

/* A line that cannot be read as the format says (a field missing or malformed): exit 2,
 * still naming the seq (docs/FAIRNESS.md §7). */
__attribute__((format(printf, 3, 4))) static int unreadable(struct verdict *v, uint64_t seq,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    stop(v, 2, seq, fmt, ap);
    va_end(ap);
    return -1;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Each byte's hex value, or 0xff (a table: two hex fields per line of a 10M-line audit). */
static uint8_t hex_val[256];

static void hex_init(void)
{
    for (int c = 0; c < 256; c++) {
        int v = hex_digit((char)c);
        hex_val[c] = v < 0 ? 0xff : (uint8_t)v;
    }
}

/* Exactly 2n hex digits of s (NUL-terminated, or len-bounded by the caller) into out. */
static int hex_decode_n(const char *s, size_t len, uint8_t *out, size_t n)
{
    if (!s || len != 2 * n) return -1;
    const unsigned char *u = (const unsigned char *)s;
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned hi = hex_val[u[2 * i]], lo = hex_val[u[2 * i + 1]];
        bad |= hi | lo;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return bad & 0xf0 ? -1 : 0;
}

static int hex_decode(const char *s, uint8_t *out, size_t n)
{
    return s ? hex_decode_n(s, strlen(s), out, n) : -1;
}

/* ---- the hand-over ------------------------------------------------------------------- */

/* The batch the reader fills. */
static struct batch *cur(struct audit *a) { return a->b[a->filled % N_BATCHES]; }

/* The next item of the reader's batch, cleared of claims (committed by push). */
static struct item *slot(struct audit *a)
{
    struct batch *b = cur(a);
    struct item *it = &b->items[b->n];
    it->json = NULL;
    it->has_points = it->has_loot = 0;
    it->n_loot = 0;
    it->loot_off = b->arena_len;
    return it;
}

/* Appends s[0..n) and a NUL to the batch's arena. */
static void arena_put(struct batch *b, const char *s, size_t n)
{
    if (b->arena_len + n + 1 > b->arena_cap) {
        size_t cap = b->arena_cap ? b->arena_cap : 1 << 16;
        while (cap < b->arena_len + n + 1) cap *= 2;
        VX_FATAL_IF(!(b->arena = realloc(b->arena, cap)));
        b->arena_cap = cap;
    }
    memcpy(b->arena + b->arena_len, s, n);
    b->arena[b->arena_len + n] = '\0';
    b->arena_len += n + 1;
}

/* Gives the reader's batch to the applier (last: the final one) and takes the next free
 * one. -1 when the applier has failed: the reader stops. */
static int hand_over(struct audit *a, int last)
{
    pthread_mutex_lock(&a->mu);
    cur(a)->last = last;
    a->filled++;
    pthread_cond_broadcast(&a->cv);
    while (!last && a->filled - a->applied >= N_BATCHES) pthread_cond_wait(&a->cv, &a->mu);
    int stopped = a->stop;
    pthread_mutex_unlock(&a->mu);
    if (!last) {
        struct batch *b = cur(a);
        b->n = 0;
        b->arena_len = 0;
        b->last = 0;
    }
    return stopped ? -1 : 0;
}

/* Commits the item slot() gave. */
static int push(struct audit *a)
{
    struct batch *b = cur(a);
    return ++b->n == BATCH_EVENTS ? hand_over(a, 0) : 0;
}

/* ---- the reader's checks: seq order and the chain ------------------------------------ */

/* seq 1: H0 from the commitment; the seed (from the event or --seed) must match it. */
static int start_chain(struct audit *a, const struct event *ev, const uint8_t *commitment)
{
    uint8_t sha[32];
    if (ev->type != EVENT_DEFINE) return fail(&a->rd, ev->seq, "the first event is not a definition");
    if (!commitment) { /* a legacy hunt: its draws follow rule 0, from public values */
        memset(a->link, 0, sizeof a->link);
        if (a->seed_given)
            return fail(&a->rd, ev->seq, "a seed was given, but the hunt has no seed_commitment");
        return 0;
    }
    memcpy(a->link, commitment, ENGINE_HASH_BYTES);
    a->hmac = 1;
    if (a->seed_given && !a->have_seed) {
        memcpy(a->seed, a->given, ENGINE_SEED_BYTES);
        a->have_seed = 1;
    }
    if (a->have_seed && (SHA256(a->seed, ENGINE_SEED_BYTES, sha),
                         memcmp(sha, commitment, ENGINE_HASH_BYTES)))
        return fail(&a->rd, ev->seq, "the seed does not match the seed_commitment");
    if (a->seed_given && memcmp(a->given, a->seed, ENGINE_SEED_BYTES))
        return fail(&a->rd, ev->seq, "--seed differs from the hunt's seed");
    return 0;
}

/* One event as recorded (def_sha: a DEFINE's SHA-256 of its exact definition text when
 * read from a file): its seq follows, and its hash (if stored) is the chain's next link. */
static int chain_event(struct audit *a, const struct event *ev, const uint8_t *hash,
                       const uint8_t *commitment, const uint8_t *def_sha)
{
    if (ev->seq != a->read + 1)
        return fail(&a->rd, ev->seq, "expected seq %" PRIu64 " (an event is missing or out of order)",
                    a->read + 1);
    if (ev->seq == 1 && start_chain(a, ev, commitment)) return -1;
    engine_chain_next_sha(a->link, ev, def_sha, a->link);
    if (hash && memcmp(hash, a->link, ENGINE_HASH_BYTES))
        return fail(&a->rd, ev->seq, "its hash does not match the hash chain");
    if (!hash) a->unhashed++;
    a->read++;
    return 0;
}

/* ---- the applier: draw, apply, claims ------------------------------------------------ */

/* An open against the seeded draw, before it is applied. */
static int check_draw(struct audit *a, const struct event *ev)
{
    struct event d;
    a->opens++;
    int rule = engine_draw_rule(a->h);
    if (rule == ENGINE_DRAW_HMAC ? !a->have_seed : a->hmac) return 0; /* no seed to draw by */
    int rc = engine_open(a->h, ev->player, ev->u.open.zone, ev->time_ms, &d);
    if (rc)
        return fail(&a->ap, ev->seq, "no chest could be opened in zone %s (%s)", ev->u.open.zone,
                    engine_err_code(rc));
    if (strcmp(d.u.open.chest, ev->u.open.chest))
        return fail(&a->ap, ev->seq, "chest %s is not the draw: the draw gives %s",
                    ev->u.open.chest, d.u.open.chest);
    a->draws++;
    return 0;
}

static int check_claims(struct audit *a, const struct item *it, const char *arena,
                        const struct engine_outcome *o)
{
    if (it->has_points && it->points != o->points)
        return fail(&a->ap, it->ev.seq, "%" PRId64 " points listed, the rules give %" PRId64,
                    it->points, o->points);
    if (!it->has_loot) return 0;
    int same = it->n_loot == o->n_loot;
    const char *s = arena + it->loot_off;
    for (size_t i = 0; same && i < o->n_loot; s += strlen(s) + 1, i++) same = !strcmp(s, o->loot[i]);
    return same ? 0 : fail(&a->ap, it->ev.seq, "the listed loot is not the chest's");
}

static int apply_item(struct audit *a, const struct batch *b, const struct item *it)
{
    char why[300];
    struct engine_outcome out;
    if (it->ev.type == EVENT_OPEN && check_draw(a, &it->ev)) return -1;
    if (engine_apply(a->h, &it->ev, &out, why, sizeof why))
        return fail(&a->ap, it->ev.seq, "does not hold: %s", why);
    a->events++;
    return check_claims(a, it, b->arena, &out);
}

/* The applier thread: every batch in order until the last; after a failure it only gives
 * the batches back (and frees their definitions) so that the reader never waits forever. */
static void *applier(void *arg)
{
    struct audit *a = arg;
    for (int last = 0; !last;) {
        pthread_mutex_lock(&a->mu);
        while (a->applied == a->filled) pthread_cond_wait(&a->cv, &a->mu);
        struct batch *b = a->b[a->applied % N_BATCHES];
        pthread_mutex_unlock(&a->mu);
        for (size_t i = 0; i < b->n && !a->ap.failed; i++) {
            if (i + PREFETCH_SLOT < b->n)
                engine_prefetch_player(a->h, b->items[i + PREFETCH_SLOT].ev.player, 0);
            if (i + PREFETCH_PLAYER < b->n)
                engine_prefetch_player(a->h, b->items[i + PREFETCH_PLAYER].ev.player, 1);
            apply_item(a, b, &b->items[i]);
        }
        for (size_t i = 0; i < b->n; i++) free(b->items[i].json);
        last = b->last;
        pthread_mutex_lock(&a->mu);
        a->applied++;
        a->stop |= a->ap.failed != 0;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    return NULL;
}

/* ---- from the store ---------------------------------------------------------------- */

static int store_row(const struct store_event *se, void *arg)
{
    struct audit *a = arg;
    struct item *it = slot(a);
    struct event *ev = &it->ev;
    uint8_t commitment[32];
    if (event_read(ev, se->seq, se->time_ms, se->type, se->player, se->data, se->data_len))
        return fail(&a->rd, se->seq, "the row does not decode");
    const uint8_t *cm = NULL;
    if (ev->type == EVENT_DEFINE) { /* its json points into the row: the applier needs a copy */
        VX_FATAL_IF(!(it->json = malloc(ev->u.define.json_len + 1)));
        memcpy(it->json, ev->u.define.json, ev->u.define.json_len);
        it->json[ev->u.define.json_len] = '\0';
        ev->u.define.json = it->json;
    }
    if (ev->seq == 1 && ev->type == EVENT_DEFINE && ev->u.define.draw_rule == EVENT_RULE_HMAC) {
        memcpy(a->seed, ev->u.define.seed, ENGINE_SEED_BYTES);
        a->have_seed = 1;
        SHA256(a->seed, ENGINE_SEED_BYTES, commitment);
        cm = commitment;
    }
    if (chain_event(a, ev, se->has_hash ? se->hash : NULL, cm, NULL)) {
        free(it->json);
        return -1;
    }
    return push(a) ? (a->halted = 1, -1) : 0;
}

static int from_store(struct audit *a, const char *url)
{
    struct store *s = NULL;
    char err[512];
    if (store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err)) {
        snprintf(a->rd.why, sizeof a->rd.why, "cannot open the store: %s", err);
        a->rd.failed = 2;
        return -1;
    }
    int rc = store_each_event(s, a->hunt, 1, store_row, a);
    store_close(s);
    if (rc && !a->rd.failed && !a->halted) {
        snprintf(a->rd.why, sizeof a->rd.why, "cannot read the store (%s)", store_err_str(rc));
        a->rd.failed = 2;
    }
    return rc ? -1 : 0;
}

/* ---- from a /log export (JSON lines) -------------------------------------------------- */

static const char *str_of(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* The definition text the engine applies: definition_text (its SHA-256 checked), else the
 * public definition with 0 for the positions of hidden codes. Malloc'd; NULL on failure. */
static char *definition_of(struct audit *a, json_t *o, uint64_t seq, const uint8_t sha[32])
{
    const char *text = str_of(o, "definition_text");
    uint8_t got[32];
    if (text) {
        SHA256((const unsigned char *)text, strlen(text), got);
        if (memcmp(got, sha, 32)) {
            fail(&a->rd, seq, "definition_text does not match definition_sha256");
            return NULL;
        }
        return strdup(text);
    }
    json_t *def = json_object_get(o, "definition"), *c;
    size_t i;
    if (!json_is_object(def)) {
        fail(&a->rd, seq, "no definition");
        return NULL;
    }
    json_array_foreach(json_object_get(def, "codes"), i, c)
    {
        if (!json_object_get(c, "x")) json_object_set_new(c, "x", json_integer(0));
        if (!json_object_get(c, "y")) json_object_set_new(c, "y", json_integer(0));
    }
    return json_dumps(def, JSON_COMPACT);
}

/* A DEFINE line: its draw rule, definition, and at seq 1 the commitment and seed. ev is
 * the event as recorded, eng what the engine applies. */
static int line_define(struct audit *a, json_t *o, struct event *ev, struct event *eng,
                       uint8_t sha[32], uint8_t cm[32], int *has_cm, char **json)
{
    json_t *rule = json_object_get(o, "draw_rule");
    if (!json_is_integer(rule) || json_integer_value(rule) < 0 || json_integer_value(rule) > 1 ||
        hex_decode(str_of(o, "definition_sha256"), sha, 32))
        return fail(&a->rd, ev->seq, "bad draw_rule or definition_sha256");
    ev->u.define.draw_rule = (uint8_t)json_integer_value(rule);
    if (!(*json = definition_of(a, o, ev->seq, sha))) return -1;
    ev->u.define.json = *json;
    ev->u.define.json_len = strlen(*json);
    *has_cm = ev->seq == 1 && ev->u.define.draw_rule == 1;
    if (*has_cm && hex_decode(str_of(o, "seed_commitment"), cm, 32))
        return fail(&a->rd, ev->seq, "bad seed_commitment");
    if (*has_cm && str_of(o, "seed")) {
        if (hex_decode(str_of(o, "seed"), a->seed, 32)) return fail(&a->rd, ev->seq, "bad seed");
        a->have_seed = 1;
    }
    *eng = *ev;
    if (ev->seq == 1 && ev->u.define.draw_rule == 1) {
        if (a->seed_given && !a->have_seed) memcpy(a->seed, a->given, 32), a->have_seed = 1;
        if (a->have_seed) memcpy(eng->u.define.seed, a->seed, 32);
        else eng->u.define.draw_rule = 0; /* unknown seed: the draws are not checked */
    }
    return 0;
}

/* The id field k of o into out (cap bytes with the NUL). */
static int id_field(json_t *o, const char *k, char *out, size_t max)
{
    const char *s = str_of(o, k);
    if (!s || !vx_is_id(s, strlen(s), max)) return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

/* A listed loot array into the item and its batch's arena (absent: nothing claimed). -1
 * when malformed. */
static int loot_of(json_t *arr, struct item *it, struct batch *b)
{
    json_t *v;
    size_t i;
    if (!arr) return 0;
    if (!json_is_array(arr)) return -1;
    it->has_loot = 1;
    it->n_loot = json_array_size(arr);
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        if (!s || strlen(s) > VX_ID_MAX) return -1;
        if (i < CLAIM_LOOT_MAX) arena_put(b, s, strlen(s));
    }
    return 0;
}

/* The type-specific fields of a play or map line. */
static int line_fields(struct audit *a, json_t *o, struct event *ev, struct item *it)
{
    int bad = 0;
    json_t *pts = json_object_get(o, "points");
    if (ev->type != EVENT_MAP && (!str_of(o, "player") || uuid_parse(str_of(o, "player"), ev->player)))
        return fail(&a->rd, ev->seq, "bad player");
    switch ((enum event_type)ev->type) {
    case EVENT_SCAN:
        bad = id_field(o, "code", ev->u.scan.code, VX_ID_MAX);
        break;
    case EVENT_COLLECT:
        bad = id_field(o, "item", ev->u.collect.item, VX_ID_MAX);
        break;
    case EVENT_OPEN:
        bad = id_field(o, "zone", ev->u.open.zone, VX_ID_MAX) ||
              id_field(o, "chest", ev->u.open.chest, VX_CHEST_ID_MAX);
        bad = bad || loot_of(json_object_get(o, "loot"), it, cur(a));
        break;
    case EVENT_MAP:
        bad = !json_is_integer(json_object_get(o, "version"));
        ev->u.map.version = json_integer_value(json_object_get(o, "version"));
        break;
    case EVENT_DEFINE:
        break;
    }
    if (pts) {
        it->has_points = json_is_integer(pts);
        it->points = json_integer_value(pts);
        bad |= !it->has_points;
    }
    return bad ? unreadable(&a->rd, ev->seq, "a field is missing or malformed") : 0;
}

static int type_of(const char *s)
{
    for (unsigned t = 1; t < 16; t++)
        if (event_type_known(t) && s && !strcmp(s, event_type_live((enum event_type)t)))
            return (int)t;
    return -1;
}

/* A line through jansson into the slot it (not yet committed). */
static int file_line(struct audit *a, json_t *o, struct item *it)
{
    struct event ev;
    uint8_t hash[32], sha[32], cm[32];
    int has_cm = 0, rc;
    char *json = NULL;
    memset(&ev, 0, sizeof ev);
    json_t *seq = json_object_get(o, "seq");
    ev.seq = json_is_integer(seq) && json_integer_value(seq) > 0 ? (uint64_t)json_integer_value(seq) : 0;
    int type = type_of(str_of(o, "type"));
    if (!ev.seq || type < 0 || !str_of(o, "at") || vx_time_parse(str_of(o, "at"), &ev.time_ms) ||
        hex_decode(str_of(o, "hash"), hash, 32))
        return unreadable(&a->rd, ev.seq ? ev.seq : a->read + 1,
                          "seq, type, at or hash missing or malformed");
    ev.type = (uint8_t)type;
    if (type == EVENT_DEFINE) {
        rc = line_define(a, o, &ev, &it->ev, sha, cm, &has_cm, &json);
    } else {
        rc = line_fields(a, o, &ev, it);
        it->ev = ev;
    }
    if (!rc) rc = chain_event(a, &ev, hash, has_cm ? cm : NULL, type == EVENT_DEFINE ? sha : NULL);
    if (rc) free(json);
    else it->json = json;
    return rc;
}

/* ---- the fast path: the exact line shape /log writes for scans, collects and opens ---
 * A cursor over one line; any difference from the expected shape (another key order,
 * whitespace, an escape in an id) gives up, and the line goes through jansson instead. */
struct cur {
    const char *p, *end;
};

static int lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n)) return -1;
    c->p += n;
    return 0;
}

/* A string without escapes up to its closing quote (the opening one already read). */
static int plain_str(struct cur *c, const char **s, size_t *len)
{
    const char *q = memchr(c->p, '"', (size_t)(c->end - c->p));
    if (!q || memchr(c->p, '\\', (size_t)(q - c->p))) return -1;
    *s = c->p;
    *len = (size_t)(q - c->p);
    c->p = q + 1;
    return 0;
}

/* A JSON string of any content (escapes skipped, not decoded: display names). */
static int skip_str(struct cur *c)
{
    if (lit(c, "\"")) return -1;
    while (c->p < c->end && *c->p != '"') c->p += *c->p == '\\' ? 2 : 1;
    return c->p < c->end ? (c->p++, 0) : -1;
}

static int id_into(struct cur *c, const char *key, char *out, size_t max)
{
    const char *s;
    size_t n;
    if (lit(c, key) || plain_str(c, &s, &n) || !vx_is_id(s, n, max)) return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int int_at(struct cur *c, const char *key, int64_t *v)
{
    int neg = 0;
    if (lit(c, key)) return -1;
    if (c->p < c->end && *c->p == '-') neg = 1, c->p++;
    const char *start = c->p;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && c->p - start < 18)
        x = x * 10 + (uint64_t)(*c->p++ - '0');
    if (c->p == start || (c->p < c->end && *c->p >= '0' && *c->p <= '9')) return -1;
    *v = neg ? -(int64_t)x : (int64_t)x;
    return 0;
}

static int fast_loot(struct cur *c, struct item *it, struct batch *b)
{
    if (lit(c, ",\"loot\":[")) return -1;
    it->has_loot = 1;
    while (lit(c, "]")) { /* until the closing bracket */
        const char *s;
        size_t n;
        if ((it->n_loot && lit(c, ",")) || lit(c, "\"") || plain_str(c, &s, &n) || n > VX_ID_MAX ||
            it->n_loot >= CLAIM_LOOT_MAX)
            return -1;
        arena_put(b, s, n);
        it->n_loot++;
    }
    return 0;
}

/* The fields after "display_name" of a scan, collect or open. */
static int fast_fields(struct cur *c, struct item *it, struct batch *b)
{
    struct event *ev = &it->ev;
    switch (ev->type) {
    case EVENT_SCAN:
        if (id_into(c, ",\"code\":\"", ev->u.scan.code, VX_ID_MAX)) return -1;
        break;
    case EVENT_COLLECT:
        return id_into(c, ",\"item\":\"", ev->u.collect.item, VX_ID_MAX);
    case EVENT_OPEN:
        if (id_into(c, ",\"zone\":\"", ev->u.open.zone, VX_ID_MAX) ||
            id_into(c, ",\"chest\":\"", ev->u.open.chest, VX_CHEST_ID_MAX))
            return -1;
        break;
    default:
        return -1;
    }
    it->has_points = 1;
    if (int_at(c, ",\"points\":", &it->points)) return -1;
    return ev->type == EVENT_OPEN ? fast_loot(c, it, b) : 0;
}

/* 1: line is not of the fast shape (use jansson; the slot is left for it); else the
 * reader's checks' result, the item filled in the slot it. */
static int fast_line(struct audit *a, const char *line, size_t len, struct item *it)
{
    struct cur c = {line, line + len};
    struct event *ev = &it->ev;
    struct batch *b = cur(a);
    const char *s;
    size_t n;
    int64_t seq;
    uint8_t hash[32];
    char tmp[40];
    while (c.end > c.p && (c.end[-1] == '\n' || c.end[-1] == '\r')) c.end--;
    memset(ev, 0, sizeof *ev);
    if (int_at(&c, "{\"seq\":", &seq) || seq <= 0 || lit(&c, ",\"type\":\"") || plain_str(&c, &s, &n))
        return 1;
    ev->seq = (uint64_t)seq;
    ev->type = n == 4 && !memcmp(s, "scan", 4) ? EVENT_SCAN
               : n == 12 && !memcmp(s, "chest_opened", 12) ? EVENT_OPEN
               : n == 14 && !memcmp(s, "item_collected", 14) ? EVENT_COLLECT : 0;
    if (!ev->type || lit(&c, ",\"at\":\"") || plain_str(&c, &s, &n) || n >= sizeof tmp) return 1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (vx_time_parse(tmp, &ev->time_ms) || lit(&c, ",\"player\":\"") || plain_str(&c, &s, &n) ||
        n != 36)
        return 1;
    memcpy(tmp, s, 36);
    tmp[36] = '\0';
    if (uuid_parse(tmp, ev->player) || lit(&c, ",\"display_name\":") || skip_str(&c) ||
        fast_fields(&c, it, b) || lit(&c, ",\"hash\":\"") || plain_str(&c, &s, &n) ||
        hex_decode_n(s, n, hash, 32) || lit(&c, "}") || c.p != c.end) {
        b->arena_len = it->loot_off; /* the slot goes to jansson afresh */
        it->has_points = it->has_loot = 0;
        it->n_loot = 0;
        return 1;
    }
    return chain_event(a, ev, hash, NULL, NULL);
}

static int from_file(struct audit *a, const char *path)
{
    FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t no = 0;
    int rc = 0;
    if (!f) {
        snprintf(a->rd.why, sizeof a->rd.why, "cannot open %s", path);
        a->rd.failed = 2;
        return -1;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20); /* 1 MB reads: 10M lines are ~2.4 GB */
    while (!rc && (n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        no++;
        if (n == 1 && line[0] == '\n') continue;
        struct item *it = slot(a);
        if ((rc = fast_line(a, line, (size_t)n, it)) == 1) {
            json_t *o = json_loadb(line, (size_t)n, 0, &je);
            if (!json_is_object(o)) {
                snprintf(a->rd.why, sizeof a->rd.why, "%s line %" PRIu64 ": not a JSON object", path, no);
                a->rd.failed = 2;
                rc = -1;
            } else {
                rc = file_line(a, o, it);
            }
            json_decref(o);
        }
        if (!rc && push(a)) a->halted = 1, rc = -1;
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

/* ---- the command -------------------------------------------------------------------- */

static void summary(const struct audit *a, double secs)
{
    struct engine_stats st;
    struct engine_lb_row top[10];
    char hex[65], id[37];
    engine_stats(a->h, &st);
    engine_hash_hex(a->link, hex);
    printf("audit: hunt %s: %" PRIu64 " events, %" PRIu64 " players, %" PRIu64 " chests opened\n",
           a->hunt, a->events, st.players, a->opens);
    if (a->have_seed && a->hmac)
        printf("draws: %" PRIu64 " checked against the seed\n", a->draws);
    else if (!a->hmac)
        printf("draws: %" PRIu64 " checked by the legacy rule (public values)\n", a->draws);
    else
        printf("draws: not checked (no seed)\n");
    if (a->unhashed) printf("rows without a stored hash (written before the chain): %" PRIu64 "\n", a->unhashed);
    size_t n = engine_lb_top(a->h, 0, 10, top);
    printf("top %zu:\n", n);
    for (size_t i = 0; i < n; i++) {
        uuid_format(top[i].player, id);
        printf("  %" PRIu64 ". %s %" PRId64 "\n", top[i].rank, id, top[i].score);
    }
    printf("head: seq %" PRIu64 " hash %s\n", a->events, hex);
    printf("audit: %" PRIu64 " events in %.3f s = %.0f events/s\n", a->events, secs,
           secs > 0 ? a->events / secs : 0.0);
    printf("audit: OK\n");
}

static int usage(void)
{
    fprintf(stderr, "usage: veltrix audit HUNT (--store URL | --log FILE) [--seed HEX]\n");
    return 2;
}

/* Reads everything (the calling thread) while the applier thread applies it; the verdict
 * is the applier's failure if any (always the earlier seq), else the reader's. */
static int run(struct audit *a, const char *store, const char *file)
{
    pthread_t t;
    VX_FATAL_IF(pthread_mutex_init(&a->mu, NULL) || pthread_cond_init(&a->cv, NULL));
    for (int i = 0; i < N_BATCHES; i++) VX_FATAL_IF(!(a->b[i] = calloc(1, sizeof *a->b[i])));
    VX_FATAL_IF(pthread_create(&t, NULL, applier, a));
    if (store) from_store(a, store);
    else from_file(a, file);
    hand_over(a, 1);
    pthread_join(t, NULL);
    VX_FATAL_IF(engine_audit_ranks(a->h)); /* the final ranking, once (timed with the rest) */
    for (int i = 0; i < N_BATCHES; i++) {
        free(a->b[i]->arena);
        free(a->b[i]);
    }
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    return a->ap.failed || a->rd.failed ? -1 : 0;
}

int audit_main(int argc, char **argv)
{
    hex_init();
    struct audit a = {0};
    const char *store = NULL, *file = NULL;
    if (argc < 2 || argv[1][0] == '-') return usage();
    a.hunt = argv[1];
    for (int i = 2; i < argc; i += 2) { /* flag value pairs */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(argv[i], "--store")) store = v;
        else if (!strcmp(argv[i], "--log")) file = v;
        else if (!strcmp(argv[i], "--seed") && !hex_decode(v, a.given, 32)) a.seed_given = 1;
        else return usage();
    }
    if (!store == !file || !vx_is_id(a.hunt, strlen(a.hunt), VX_ID_MAX)) return usage();
    VX_FATAL_IF(!(a.h = engine_hunt_create(a.hunt)));
    engine_audit_mode(a.h); /* the reader checks the chain from the events as recorded */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = run(&a, store, file);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const struct verdict *v = a.ap.failed ? &a.ap : &a.rd;
    if (!rc && !a.events) {
        snprintf(a.rd.why, sizeof a.rd.why, "no events of hunt %s", a.hunt);
        a.rd.failed = 2;
        rc = -1;
    }
    if (rc) fprintf(stderr, "veltrix: audit: %s\n", v->why);
    else summary(&a, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    engine_hunt_destroy(a.h);
    return rc ? v->failed : 0;
}
