/* engine.c — one hunt's deterministic state machine (see engine.h).
 *
 * State of a hunt:
 *   - def: the installed definition (huntdef) plus per-entity state: scans per code,
 *     collected per item, and the chest pools. A zone's chests are grouped by their
 *     `requires` into pools (no requirement first, then by item id in byte order); in a
 *     pool the explicit chests come first in definition order, then the zone's range.
 *     "Index order" for the chest choice is pool order, then slot order.
 *   - players: a dense array in order of first event (the leaderboard member is the
 *     index), found by a hash of the 16-byte id. Each player keeps score, the seq at
 *     which the score was reached (0 = never scored: not on the leaderboard), a history
 *     of tagged 32-bit words (scan code, collect item, open zone + chest; the first two
 *     words live inside the struct) and an inventory of (item, count).
 *   - done: for the once-only rules, a hash set of (player, scan|collect word) of the
 *     players whose history outgrew HIST_LINEAR words; shorter histories are searched.
 *   - strs: every id ever defined, interned. History and inventory hold interned ids,
 *     so they survive a redefinition; the strings table only grows.
 *   - draw: the rule chests are drawn by, and the secret seed with its HMAC key schedule
 *     and commitment; set by the first definition, never changed afterwards.
 * Invariants: a chest slot is opened at most once, by the player whose history names
 * it; a player is on the leaderboard iff seq != 0, with (score, seq); an item's
 * collected count equals the players holding it from collects; a used entity is never
 * removed or changed by a redefinition (checked before one is installed); a hunt's draw
 * rule and seed never change once it is defined.
 * engine_apply checks every event first and fails (BAD_EVENT, NOMEM) before changing
 * anything: allocations are reserved up front, the leaderboard update is the last step
 * that can fail, and the commit after it cannot. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: an HMAC key schedule per hunt */
#include "engine.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chests.h"
#include "huntdef.h"
#include "leaderboard.h"
#include "strtab.h"

#define NONE UINT32_MAX
#define TAG_SHIFT 30
#define SID_MAX ((1u << TAG_SHIFT) - 1)
#define TAG_SCAN 0u
#define TAG_COLLECT 1u
#define TAG_OPEN 2u           /* followed by a chest word */
#define RANGE_BIT 0x80000000u /* chest word: range index, else explicit chest's id */
#define HIST_INLINE 2
#define MALLOC_OVERHEAD 16 /* per heap block, counted in engine_memory_bytes */
#define HIST_LINEAR 16     /* longer histories keep their scans/collects in `done` */

struct inv_entry {
    int64_t count;
    uint32_t sid;
};

struct player {
    uint8_t id[16];
    int64_t score;
    uint64_t seq; /* when score was reached; 0 = not on the leaderboard */
    union {
        uint32_t *heap;
        uint32_t in[HIST_INLINE];
    } hist;
    struct inv_entry *inv;
    uint32_t n_hist, cap_hist; /* cap_hist == HIST_INLINE: words are inline */
    uint32_t n_inv, cap_inv;
};

struct code_st {
    uint32_t sid, scans;
};
struct item_st {
    uint32_t sid, collected;
};
struct zone_st {
    uint32_t sid, pool_off, n_pools;
    uint32_t range_pool; /* NONE without a range */
    uint32_t range_opened;
};
struct chest_st {
    uint32_t sid, pool, slot;
};
struct pool {
    struct chest_pool cp;
    const char *req; /* NULL = no requirement */
    uint32_t req_sid, zone;
    uint32_t n_explicit; /* slots [0, n_explicit) are explicit chests, then the range */
    uint32_t *chests;    /* slot -> explicit chest index */
};

struct def {
    struct huntdef d;
    struct code_st *codes;
    struct item_st *items;
    struct zone_st *zones;
    struct chest_st *chests;
    uint32_t *loot_sids; /* parallel to d.loot */
    struct pool *pools;
    uint32_t n_pools;
};

struct hunt {
    char *id;
    uint64_t seq, scans;
    int64_t map_version;
    struct def *def;
    struct strtab *strs;
    struct player *players;
    uint32_t n_players, cap_players;
    uint32_t *pslots; /* player index + 1, 0 = empty; at most half full */
    uint32_t pslot_cap;
    uint64_t *done; /* done_key()s of long histories, 0 = empty; at most 3/4 full */
    uint32_t done_cap, n_done;
    struct lb *lb;
    size_t heap_bytes; /* players' history and inventory blocks */
    const char *loot_out[HUNTDEF_LOOT_MAX];
    uint8_t draw_rule;                               /* enum engine_draw_rule */
    uint8_t seed[ENGINE_SEED_BYTES], commitment[32]; /* ENGINE_DRAW_HMAC; commitment = SHA-256 */
    SHA256_CTX draw_key[2]; /* HMAC key schedule of seed: after the inner, outer key block */
    uint8_t head[ENGINE_HASH_BYTES]; /* the hash chain at seq (all zero at seq 0) */
    uint8_t audit_mode;              /* engine_audit_mode: no chain, no ranks */
};

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}


/* The value of id s in m, or NONE; s is a NUL-terminated id (checked up to cap). */
static uint32_t lookup_n(const struct strmap *m, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return n == cap ? NONE : strmap_get(m, s, n);
}

static uint32_t lookup(const struct strmap *m, const char *s)
{
    return lookup_n(m, s, ENGINE_CHEST_ID_MAX + 1);
}

static int in_window(const struct def *df, int64_t t)
{
    return t >= df->d.starts_ms && t < df->d.ends_ms;
}

__attribute__((format(printf, 4, 5))) static int bad(char *err, size_t cap, const struct event *ev,
                                                     const char *fmt, ...)
{
    if (cap) {
        int n = snprintf(err, cap, "event seq %" PRIu64 " (type %u): ", ev->seq, ev->type);
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < cap) vsnprintf(err + n, cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return ENGINE_BAD_EVENT;
}

static void event_init(const struct hunt *h, struct event *ev, uint8_t type,
                       const uint8_t player[16], int64_t now_ms)
{
    memset(ev, 0, sizeof *ev);
    ev->seq = h->seq + 1;
    ev->time_ms = now_ms;
    ev->type = type;
    if (player) memcpy(ev->player, player, 16);
}

/* ---- definitions: install, carry over, check used entities ------------------------ */

static void def_destroy(struct def *df)
{
    if (!df) return;
    for (uint32_t i = 0; i < df->n_pools; i++) {
        chest_pool_deinit(&df->pools[i].cp);
        free(df->pools[i].chests);
    }
    free(df->pools);
    free(df->codes);
    free(df->items);
    free(df->zones);
    free(df->chests);
    free(df->loot_sids);
    huntdef_deinit(&df->d);
    free(df);
}

static int intern(struct hunt *h, const char *s, uint32_t *sid)
{
    if (strtab_intern(h->strs, s, strlen(s), sid) || *sid > SID_MAX) return ENGINE_NOMEM;
    return 0;
}

static int def_alloc(struct def *df)
{
    const struct huntdef *d = &df->d;
    df->codes = calloc(d->n_codes + 1, sizeof *df->codes);
    df->items = calloc(d->n_items + 1, sizeof *df->items);
    df->zones = calloc(d->n_zones + 1, sizeof *df->zones);
    df->chests = calloc(d->n_chests + 1, sizeof *df->chests);
    df->loot_sids = calloc(d->n_loot + 1, sizeof *df->loot_sids);
    df->pools = calloc((size_t)d->n_chests + d->n_zones + 1, sizeof *df->pools);
    if (!df->codes || !df->items || !df->zones || !df->chests || !df->loot_sids || !df->pools)
        return ENGINE_NOMEM;
    return 0;
}

static int def_intern(struct hunt *h, struct def *df)
{
    const struct huntdef *d = &df->d;
    int rc = 0;
    for (uint32_t i = 0; !rc && i < d->n_codes; i++)
        rc = intern(h, d->codes[i].id, &df->codes[i].sid);
    for (uint32_t i = 0; !rc && i < d->n_items; i++)
        rc = intern(h, d->items[i].id, &df->items[i].sid);
    for (uint32_t i = 0; !rc && i < d->n_zones; i++)
        rc = intern(h, d->zones[i].id, &df->zones[i].sid);
    for (uint32_t i = 0; !rc && i < d->n_chests; i++)
        rc = intern(h, d->chests[i].id, &df->chests[i].sid);
    for (uint32_t i = 0; !rc && i < d->n_loot; i++)
        rc = intern(h, d->loot[i], &df->loot_sids[i]);
    return rc;
}

/* Pool order: no requirement first, then by item id. */
static int req_cmp(const char *a, const char *b)
{
    if (!a || !b) return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int req_qsort_cmp(const void *a, const void *b)
{
    return req_cmp(*(const char *const *)a, *(const char *const *)b);
}

/* The pool of zone zi for requirement req, or NONE. */
static uint32_t find_pool(const struct def *df, uint32_t zi, const char *req)
{
    uint32_t lo = df->zones[zi].pool_off, hi = lo + df->zones[zi].n_pools;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = req_cmp(df->pools[mid].req, req);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NONE;
}

/* Creates zone zi's pools (sorted, distinct requirements), still without slots. */
static int zone_make_pools(struct hunt *h, struct def *df, uint32_t zi, const char **tmp)
{
    const struct hd_zone *z = &df->d.zones[zi];
    uint32_t n = 0;
    for (uint32_t c = 0; c < z->n_chests; c++)
    tmp[n++] = df->d.chests[z->chest_off + c].requires;
    if (z->range.prefix) tmp[n++] = z->range.requires;
    qsort(tmp, n, sizeof *tmp, req_qsort_cmp);
    df->zones[zi].pool_off = df->n_pools;
    df->zones[zi].range_pool = NONE;
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0 && req_cmp(tmp[i - 1], tmp[i]) == 0) continue;
        struct pool *p = &df->pools[df->n_pools++];
        p->req = tmp[i];
        p->zone = zi;
        p->req_sid = NONE;
        if (p->req && intern(h, p->req, &p->req_sid)) return ENGINE_NOMEM;
    }
    df->zones[zi].n_pools = df->n_pools - df->zones[zi].pool_off;
    return 0;
}

/* Gives zone zi's chests their slots and allocates the pools' bitsets. */
static int zone_fill_pools(struct def *df, uint32_t zi)
{
    const struct hd_zone *z = &df->d.zones[zi];
    struct zone_st *zs = &df->zones[zi];
    for (uint32_t c = z->chest_off; c < z->chest_off + z->n_chests; c++) {
        df->chests[c].pool = find_pool(df, zi, df->d.chests[c].requires);
        df->chests[c].slot = df->pools[df->chests[c].pool].n_explicit++;
    }
    if (z->range.prefix) zs->range_pool = find_pool(df, zi, z->range.requires);
    for (uint32_t i = zs->pool_off; i < zs->pool_off + zs->n_pools; i++) {
        struct pool *p = &df->pools[i];
        uint32_t n = p->n_explicit + (i == zs->range_pool ? z->range.count : 0);
        p->chests = malloc(((size_t)p->n_explicit + 1) * sizeof *p->chests);
        if (!p->chests || chest_pool_init(&p->cp, n)) return ENGINE_NOMEM;
    }
    for (uint32_t c = z->chest_off; c < z->chest_off + z->n_chests; c++)
        df->pools[df->chests[c].pool].chests[df->chests[c].slot] = c;
    return 0;
}

static int def_pools(struct hunt *h, struct def *df)
{
    const char **tmp = malloc(((size_t)df->d.n_chests + 1) * sizeof *tmp);
    int rc = tmp ? 0 : ENGINE_NOMEM;
    for (uint32_t zi = 0; !rc && zi < df->d.n_zones; zi++) {
        rc = zone_make_pools(h, df, zi, tmp);
        if (!rc) rc = zone_fill_pools(df, zi);
    }
    free(tmp);
    return rc;
}

static uint32_t find_in(const struct strmap *m, const char *id)
{
    return strmap_get(m, id, strlen(id));
}

/* Re-opens in df every chest opened under old (all kept: check_in_use passed). */
static void carry_pool(struct def *df, const struct def *old, const struct pool *op)
{
    const struct hd_zone *oz = &old->d.zones[op->zone];
    for (uint32_t s = chest_pool_next_open(&op->cp, 0); s < op->cp.n;
         s = chest_pool_next_open(&op->cp, s + 1)) {
        if (s < op->n_explicit) {
            uint32_t c = find_in(&df->d.chest_ix, old->d.chests[op->chests[s]].id);
            assert(c != NONE);
            chest_pool_claim(&df->pools[df->chests[c].pool].cp, df->chests[c].slot);
        } else {
            uint32_t zi = find_in(&df->d.zone_ix, oz->id);
            assert(zi != NONE && df->zones[zi].range_pool != NONE);
            struct pool *np = &df->pools[df->zones[zi].range_pool];
            chest_pool_claim(&np->cp, np->n_explicit + (s - op->n_explicit));
        }
    }
}

static void def_carry(struct def *df, const struct def *old)
{
    for (uint32_t i = 0; i < old->d.n_codes; i++) {
        uint32_t j = find_in(&df->d.code_ix, old->d.codes[i].id);
        if (j != NONE) df->codes[j].scans = old->codes[i].scans;
    }
    for (uint32_t i = 0; i < old->d.n_items; i++) {
        uint32_t j = find_in(&df->d.item_ix, old->d.items[i].id);
        if (j != NONE) df->items[j].collected = old->items[i].collected;
    }
    for (uint32_t i = 0; i < old->d.n_zones; i++) {
        uint32_t j = find_in(&df->d.zone_ix, old->d.zones[i].id);
        if (j != NONE) df->zones[j].range_opened = old->zones[i].range_opened;
    }
    for (uint32_t i = 0; i < old->n_pools; i++)
        carry_pool(df, old, &old->pools[i]);
}

__attribute__((format(printf, 3, 4))) static int in_use(char *err, size_t cap, const char *fmt, ...)
{
    if (cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return ENGINE_ENTITY_IN_USE;
}

static int check_codes_items(const struct def *old, const struct huntdef *nd, char *err, size_t cap)
{
    for (uint32_t i = 0; i < old->d.n_codes; i++) {
        const struct hd_code *a = &old->d.codes[i];
        uint32_t j = find_in(&nd->code_ix, a->id);
        if (old->codes[i].scans && (j == NONE || nd->codes[j].points != a->points ||
                                    nd->codes[j].x != a->x || nd->codes[j].y != a->y))
            return in_use(err, cap, "code \"%s\" was scanned: it cannot be %s", a->id,
                          j == NONE ? "removed" : "changed");
    }
    for (uint32_t i = 0; i < old->d.n_items; i++) {
        const struct hd_item *a = &old->d.items[i];
        uint32_t j = find_in(&nd->item_ix, a->id);
        if (old->items[i].collected && (j == NONE || nd->items[j].quantity != a->quantity ||
                                        nd->items[j].x != a->x || nd->items[j].y != a->y))
            return in_use(err, cap, "item \"%s\" was collected: it cannot be %s", a->id,
                          j == NONE ? "removed" : "changed");
    }
    return 0;
}

static int check_chests(const struct def *old, const struct huntdef *nd, char *err, size_t cap)
{
    for (uint32_t i = 0; i < old->d.n_chests; i++) {
        const struct hd_chest *a = &old->d.chests[i];
        const struct chest_st *cs = &old->chests[i];
        if (!chest_pool_is_open(&old->pools[cs->pool].cp, cs->slot)) continue;
        uint32_t j = find_in(&nd->chest_ix, a->id);
        if (j == NONE || strcmp(nd->zones[nd->chests[j].zone].id, old->d.zones[a->zone].id) ||
            !huntdef_chest_eq(&old->d, a, nd, &nd->chests[j]))
            return in_use(err, cap, "chest \"%s\" was opened: it cannot be %s", a->id,
                          j == NONE ? "removed" : "changed");
    }
    for (uint32_t i = 0; i < old->d.n_zones; i++) {
        const struct hd_zone *a = &old->d.zones[i];
        if (!old->zones[i].range_opened) continue;
        uint32_t j = find_in(&nd->zone_ix, a->id);
        if (j == NONE || !huntdef_range_eq(&old->d, &a->range, nd, &nd->zones[j].range))
            return in_use(err, cap,
                          "zone \"%s\": chests of its chest_range were opened: the "
                          "range must stay identical",
                          a->id);
    }
    return 0;
}

/* ENGINE_ENTITY_IN_USE when nd drops or changes something a player used. */
static int check_in_use(const struct def *old, const struct huntdef *nd, char *err, size_t cap)
{
    if (!old) return 0;
    int rc = check_codes_items(old, nd, err, cap);
    return rc ? rc : check_chests(old, nd, err, cap);
}

/* Builds the installed form of parsed definition d (taken over), carrying old's state. */
static int def_build(struct hunt *h, struct huntdef *d, const struct def *old, struct def **out)
{
    struct def *df = calloc(1, sizeof *df);
    if (!df) {
        huntdef_deinit(d);
        return ENGINE_NOMEM;
    }
    df->d = *d;
    memset(d, 0, sizeof *d);
    int rc = def_alloc(df);
    if (!rc) rc = def_intern(h, df);
    if (!rc) rc = def_pools(h, df);
    if (rc) {
        def_destroy(df);
        return rc;
    }
    if (old) def_carry(df, old);
    *out = df;
    return 0;
}

/* ---- players ------------------------------------------------------------------- */

static uint64_t pid_hash(const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    return splitmix64(a ^ splitmix64(b));
}

static uint32_t player_find(const struct hunt *h, const uint8_t id[16])
{
    if (!h->pslot_cap) return NONE;
    uint32_t mask = h->pslot_cap - 1;
    for (uint32_t i = (uint32_t)pid_hash(id) & mask; h->pslots[i]; i = (i + 1) & mask)
        if (memcmp(h->players[h->pslots[i] - 1].id, id, 16) == 0) return h->pslots[i] - 1;
    return NONE;
}

void engine_prefetch_player(const struct hunt *h, const uint8_t id[16], int stage)
{
    if (!h->pslot_cap) return;
    uint32_t i = (uint32_t)pid_hash(id) & (h->pslot_cap - 1);
    if (stage == 0) {
        __builtin_prefetch(&h->pslots[i]);
        return;
    }
    uint32_t s = h->pslots[i]; /* the first candidate: the index is at most half full */
    if (s) {
        const char *p = (const char *)&h->players[s - 1];
        __builtin_prefetch(p);
        __builtin_prefetch(p + sizeof h->players[s - 1] - 1);
    }
}

static void pslot_insert(uint32_t *slots, uint32_t cap, const uint8_t id[16], uint32_t pi)
{
    uint32_t i = (uint32_t)pid_hash(id) & (cap - 1);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = pi + 1;
}

static int pslots_grow(struct hunt *h)
{
    uint32_t cap = h->pslot_cap ? h->pslot_cap * 2 : 64;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return ENGINE_NOMEM;
    for (uint32_t pi = 0; pi < h->n_players; pi++)
        pslot_insert(slots, cap, h->players[pi].id, pi);
    free(h->pslots);
    h->pslots = slots;
    h->pslot_cap = cap;
    return 0;
}

/* Room for one more player in the array and the id hash. */
static int players_reserve(struct hunt *h)
{
    if (h->n_players == UINT32_MAX - 1) return ENGINE_NOMEM;
    if (h->n_players == h->cap_players) {
        /* Strictly growing from any size (a decoded snapshot sizes the array exactly). */
        uint32_t cap = h->cap_players < 64 ? 64 : h->cap_players + h->cap_players / 2;
        struct player *p = realloc(h->players, (size_t)cap * sizeof *p);
        if (!p) return ENGINE_NOMEM;
        h->players = p;
        h->cap_players = cap;
    }
    if ((uint64_t)(h->n_players + 1) * 2 > h->pslot_cap) return pslots_grow(h);
    return 0;
}

/* ---- the (player, scan|collect, id) set ------------------------------------------ */

/* Key of player pi's SCAN or COLLECT history word. */
static uint64_t done_key(uint32_t pi, uint32_t word)
{
    return (((uint64_t)pi << 32) | word) + 1;
}

static void done_insert(uint64_t *t, uint32_t cap, uint64_t key)
{
    uint32_t i = (uint32_t)splitmix64(key) & (cap - 1);
    while (t[i])
        i = (i + 1) & (cap - 1);
    t[i] = key;
}

static int done_has(const struct hunt *h, uint64_t key)
{
    if (!h->done_cap) return 0;
    uint32_t mask = h->done_cap - 1;
    for (uint32_t i = (uint32_t)splitmix64(key) & mask; h->done[i]; i = (i + 1) & mask)
        if (h->done[i] == key) return 1;
    return 0;
}

/* Room for extra more keys. */
static int done_reserve(struct hunt *h, uint32_t extra)
{
    uint64_t need = (uint64_t)h->n_done + extra, cap = h->done_cap ? h->done_cap : 256;
    if (need * 4 <= (uint64_t)h->done_cap * 3) return 0;
    while (need * 4 > cap * 3)
        cap *= 2;
    if (cap > (1u << 31)) return ENGINE_NOMEM;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) return ENGINE_NOMEM;
    for (uint32_t i = 0; i < h->done_cap; i++)
        if (h->done[i]) done_insert(t, (uint32_t)cap, h->done[i]);
    free(h->done);
    h->done = t;
    h->done_cap = (uint32_t)cap;
    return 0;
}

static void done_put(struct hunt *h, uint64_t key)
{
    assert((uint64_t)(h->n_done + 1) * 4 <= (uint64_t)h->done_cap * 3);
    done_insert(h->done, h->done_cap, key);
    h->n_done++;
}

static uint32_t *hist_words(struct player *p)
{
    return p->cap_hist > HIST_INLINE ? p->hist.heap : p->hist.in;
}

static const uint32_t *hist_cwords(const struct player *p)
{
    return p->cap_hist > HIST_INLINE ? p->hist.heap : p->hist.in;
}

static void player_free(struct hunt *h, struct player *p)
{
    if (p->cap_hist > HIST_INLINE) {
        free(p->hist.heap);
        h->heap_bytes -= (size_t)p->cap_hist * 4 + MALLOC_OVERHEAD;
    }
    if (p->cap_inv) {
        free(p->inv);
        h->heap_bytes -= (size_t)p->cap_inv * sizeof *p->inv + MALLOC_OVERHEAD;
    }
}

/* 1 if player pi's history holds `word` (a SCAN or COLLECT word): a short history is
 * searched, a long one was moved into the done set. */
static int player_did(const struct hunt *h, uint32_t pi, uint32_t word)
{
    const struct player *p = &h->players[pi];
    if (p->n_hist > HIST_LINEAR) return done_has(h, done_key(pi, word));
    const uint32_t *w = hist_cwords(p);
    for (uint32_t i = 0; i < p->n_hist; i++) {
        if (w[i] == word) return 1;
        i += w[i] >> TAG_SHIFT == TAG_OPEN; /* skip the chest word */
    }
    return 0;
}

/* Room for `words` more history words, and for the done-set keys they may add. */
static int hist_reserve(struct hunt *h, struct player *p, uint32_t words)
{
    uint32_t keys = 0;
    if (p->n_hist + words > HIST_LINEAR)
        keys = p->n_hist <= HIST_LINEAR ? p->n_hist + words : words;
    if (keys && done_reserve(h, keys)) return ENGINE_NOMEM;
    if (p->n_hist + words <= p->cap_hist) return 0;
    uint64_t cap = (uint64_t)p->cap_hist * 2;
    while (cap < (uint64_t)p->n_hist + words)
        cap *= 2;
    if (cap > UINT32_MAX) return ENGINE_NOMEM;
    uint32_t *w = malloc(cap * 4);
    if (!w) return ENGINE_NOMEM;
    memcpy(w, hist_words(p), (size_t)p->n_hist * 4);
    if (p->cap_hist > HIST_INLINE) {
        free(p->hist.heap);
        h->heap_bytes -= (size_t)p->cap_hist * 4 + MALLOC_OVERHEAD;
    }
    p->hist.heap = w;
    p->cap_hist = (uint32_t)cap;
    h->heap_bytes += (size_t)cap * 4 + MALLOC_OVERHEAD;
    return 0;
}

/* Player pi's SCAN and COLLECT words into the done set, as its history outgrows
 * HIST_LINEAR. */
static void done_migrate(struct hunt *h, uint32_t pi, const struct player *p)
{
    const uint32_t *w = hist_cwords(p);
    for (uint32_t i = 0; i < p->n_hist; i++) {
        if (w[i] >> TAG_SHIFT == TAG_OPEN)
            i++;
        else
            done_put(h, done_key(pi, w[i]));
    }
}

/* Appends word (reserved by hist_reserve); `once` marks a SCAN or COLLECT word. */
static void hist_push(struct hunt *h, uint32_t pi, struct player *p, uint32_t word, int once)
{
    assert(p->n_hist < p->cap_hist);
    hist_words(p)[p->n_hist++] = word;
    if (p->n_hist == HIST_LINEAR + 1)
        done_migrate(h, pi, p);
    else if (once && p->n_hist > HIST_LINEAR)
        done_put(h, done_key(pi, word));
}

static int inv_reserve(struct hunt *h, struct player *p, uint32_t extra)
{
    if (p->n_inv + extra <= p->cap_inv) return 0;
    uint64_t cap = p->cap_inv ? (uint64_t)p->cap_inv * 2 : 2;
    while (cap < (uint64_t)p->n_inv + extra)
        cap *= 2;
    if (cap > UINT32_MAX) return ENGINE_NOMEM;
    struct inv_entry *inv = realloc(p->inv, cap * sizeof *inv);
    if (!inv) return ENGINE_NOMEM;
    if (p->cap_inv) h->heap_bytes -= (size_t)p->cap_inv * sizeof *inv + MALLOC_OVERHEAD;
    h->heap_bytes += (size_t)cap * sizeof *inv + MALLOC_OVERHEAD;
    p->inv = inv;
    p->cap_inv = (uint32_t)cap;
    return 0;
}

static int64_t inv_count(const struct player *p, uint32_t sid)
{
    for (uint32_t i = 0; i < p->n_inv; i++)
        if (p->inv[i].sid == sid) return p->inv[i].count;
    return 0;
}

/* Adds delta of sid; a new entry needs reserved room. Returns the new count. */
static int64_t inv_add(struct player *p, uint32_t sid, int64_t delta)
{
    for (uint32_t i = 0; i < p->n_inv; i++)
        if (p->inv[i].sid == sid) return p->inv[i].count += delta;
    assert(p->n_inv < p->cap_inv && delta > 0);
    p->inv[p->n_inv++] = (struct inv_entry){delta, sid};
    return delta;
}

/* ---- transactions on one player -------------------------------------------------- */

/* The player an event applies to: an existing one, or a new one built in the array's
 * spare slot and published only by txn_commit. */
struct txn {
    struct player *p;
    uint32_t pi;
    int is_new;
};

static int txn_begin(struct hunt *h, const uint8_t id[16], struct txn *t)
{
    t->pi = player_find(h, id);
    if (t->pi == NONE) {
        if (players_reserve(h)) return ENGINE_NOMEM;
        t->is_new = 1;
        t->pi = h->n_players;
        memset(&h->players[t->pi], 0, sizeof h->players[t->pi]);
        memcpy(h->players[t->pi].id, id, 16);
        h->players[t->pi].cap_hist = HIST_INLINE;
    }
    t->p = &h->players[t->pi];
    return 0;
}

static int txn_fail(struct hunt *h, struct txn *t, int rc)
{
    if (t->is_new && t->p) player_free(h, t->p);
    return rc;
}

static void txn_commit(struct hunt *h, struct txn *t)
{
    if (!t->is_new) return;
    h->n_players++;
    pslot_insert(h->pslots, h->pslot_cap, t->p->id, t->pi);
}

/* Puts the player at (score + points, seq) on the leaderboard when that changes its
 * place: the first scoring event, or points > 0. The last step that may fail. */
static int txn_rank(struct hunt *h, struct txn *t, int64_t points, uint64_t seq)
{
    if (t->p->seq && points == 0) return 0;
    if (!h->audit_mode && lb_set(h->lb, t->pi, t->p->score + points, seq)) return ENGINE_NOMEM;
    t->p->score += points;
    t->p->seq = seq;
    return 0;
}

static void fill_score(const struct hunt *h, const struct txn *t, int64_t points,
                       struct engine_outcome *out)
{
    if (!out) return;
    out->points = points;
    out->score = t->p->score;
    out->rank = h->audit_mode ? 0 : lb_rank(h->lb, t->pi);
}

/* ---- hunts ------------------------------------------------------------------------ */

struct hunt *engine_hunt_create(const char *id)
{
    struct hunt *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->id = strdup(id);
    h->strs = strtab_create();
    h->lb = lb_create();
    h->map_version = -1;
    if (!h->id || !h->strs || !h->lb) {
        engine_hunt_destroy(h);
        return NULL;
    }
    return h;
}

void engine_hunt_destroy(struct hunt *h)
{
    if (!h) return;
    for (uint32_t i = 0; i < h->n_players; i++)
        player_free(h, &h->players[i]);
    free(h->players);
    free(h->pslots);
    free(h->done);
    def_destroy(h->def);
    if (h->lb) lb_destroy(h->lb);
    strtab_destroy(h->strs);
    free(h->id);
    OPENSSL_cleanse(h, sizeof *h); /* the seed and its key schedule */
    free(h);
}

void engine_hunt_move(struct hunt *dst, struct hunt *src)
{
    struct hunt old = *dst;
    char *id = dst->id;
    *dst = *src;
    dst->id = id;
    old.id = src->id;
    *src = old;
    engine_hunt_destroy(src);
}

const char *engine_hunt_id(const struct hunt *h)
{
    return h->id;
}

uint64_t engine_seq(const struct hunt *h)
{
    return h->seq;
}

int engine_defined(const struct hunt *h)
{
    return h->def != NULL;
}

/* ---- decide ----------------------------------------------------------------------- */

int engine_define(const struct hunt *h, const char *json, size_t len,
                  const uint8_t seed[ENGINE_SEED_BYTES], int64_t now_ms, struct event *ev,
                  char *err, size_t errcap)
{
    struct huntdef d;
    if (errcap) err[0] = '\0';
    int rc = huntdef_parse(&d, json, len, err, errcap);
    rc = rc == HUNTDEF_ENOMEM ? ENGINE_NOMEM : rc ? ENGINE_EINVAL : ENGINE_OK;
    if (rc) return rc;
    rc = check_in_use(h->def, &d, err, errcap);
    huntdef_deinit(&d);
    if (rc) return rc;
    event_init(h, ev, EVENT_DEFINE, NULL, now_ms);
    ev->u.define.json = json;
    ev->u.define.json_len = len;
    if (!h->def) {
        assert(seed && "a new hunt needs its seed");
        ev->u.define.draw_rule = ENGINE_DRAW_HMAC;
        memcpy(ev->u.define.seed, seed, ENGINE_SEED_BYTES);
    }
    return ENGINE_OK;
}

static int playable(const struct hunt *h, int64_t now_ms)
{
    if (!h->def) return ENGINE_NOT_DEFINED;
    return in_window(h->def, now_ms) ? 0 : ENGINE_NOT_ACTIVE;
}

int engine_playable(const struct hunt *h, int64_t now_ms) { return playable(h, now_ms); }

int engine_scan(const struct hunt *h, const uint8_t player[16], const char *code, int64_t now_ms,
                struct event *ev)
{
    int rc = playable(h, now_ms);
    if (rc) return rc;
    uint32_t ci = lookup(&h->def->d.code_ix, code), pi = player_find(h, player);
    if (ci == NONE) return ENGINE_INVALID_CODE;
    if (pi != NONE && player_did(h, pi, TAG_SCAN << TAG_SHIFT | h->def->codes[ci].sid))
        return ENGINE_ALREADY_SCANNED;
    event_init(h, ev, EVENT_SCAN, player, now_ms);
    strcpy(ev->u.scan.code, h->def->d.codes[ci].id);
    return ENGINE_OK;
}

/* 0 when player pi (NONE: new) may collect item ii, else the error. */
static int can_collect(const struct hunt *h, uint32_t pi, uint32_t ii)
{
    const struct item_st *it = &h->def->items[ii];
    if (pi != NONE && player_did(h, pi, TAG_COLLECT << TAG_SHIFT | it->sid))
        return ENGINE_ALREADY_COLLECTED;
    if (it->collected >= h->def->d.items[ii].quantity) return ENGINE_ITEM_EXHAUSTED;
    return 0;
}

int engine_collect(const struct hunt *h, const uint8_t player[16], const char *item, int64_t now_ms,
                   struct event *ev)
{
    int rc = playable(h, now_ms);
    if (rc) return rc;
    uint32_t ii = lookup(&h->def->d.item_ix, item);
    if (ii == NONE) return ENGINE_ITEM_NOT_FOUND;
    rc = can_collect(h, player_find(h, player), ii);
    if (rc) return rc;
    event_init(h, ev, EVENT_COLLECT, player, now_ms);
    strcpy(ev->u.collect.item, h->def->d.items[ii].id);
    return ENGINE_OK;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The pools of zone zi that player p (NULL: new) may open, in pool order, into buf
 * (room for p->n_inv + 1). Returns how many. */
static uint32_t eligible_pools(const struct hunt *h, uint32_t zi, const struct player *p,
                               uint32_t *buf)
{
    const struct def *df = h->def;
    uint32_t n = 0, none = find_pool(df, zi, NULL);
    if (none != NONE) buf[n++] = none;
    for (uint32_t i = 0; p && i < p->n_inv; i++) {
        if (p->inv[i].count <= 0) continue;
        uint32_t pool = find_pool(df, zi, strtab_str(h->strs, p->inv[i].sid));
        if (pool != NONE) buf[n++] = pool;
    }
    qsort(buf, n, sizeof *buf, u32_cmp);
    return n;
}

/* ---- the chest draw -------------------------------------------------------------------
 * An open gives the player the k-th (0-based) closed chest, in index order (see the top
 * of this file: pool order, then slot order), among the n closed chests of the zone's
 * pools that the player may open: the pool without a requirement and the pools of the
 * items the player holds (count > 0). k depends on the hunt's draw rule:
 *
 * ENGINE_DRAW_HMAC (1), every hunt created with a seed:
 *   msg    = "veltrix-draw-v1"                 15 ASCII bytes, no NUL
 *            || len(zone) as 1 byte || zone id  1..64 bytes of [a-z0-9_-]
 *            || player id                       the 16 bytes of the UUID, as in the event
 *            || opened as 8 bytes big-endian    chests of the zone opened so far, all
 *                                               pools: one more after every open in the
 *                                               zone, so a (zone, player, opened) never
 *                                               repeats and no draw repeats another
 *            || n as 8 bytes big-endian
 *   mac    = HMAC-SHA-256(key = the 32-byte seed, msg)         (RFC 2104, FIPS 180-4)
 *   x      = the first 8 bytes of mac as a big-endian unsigned 64-bit integer
 *   k      = floor(x * n / 2^64)               the high 64 bits of the 128-bit product
 *   Each k in [0, n) is the image of floor(2^64 / n) or ceil(2^64 / n) values of x, so
 *   no k is likelier than another by more than n / 2^64 (< 2^-32 for any n < 2^32).
 *   Without the seed (secret until the hunt ends; its SHA-256 is public from the start)
 *   nobody can compute mac, so nobody can predict or time a draw; with the revealed seed
 *   anybody can recompute every draw from the public log.
 *
 * ENGINE_DRAW_LEGACY (0), hunts created before seeds, kept so that they go on drawing as
 * they always did (predictable from public values: hunts are moved off it by creating
 * them anew):
 *   s = FNV-1a-64(hunt id || 0x00 || zone id || 0x00 || player id), offset basis
 *       0xcbf29ce484222325, prime 0x100000001b3;  k = splitmix64(s ^ n) mod n. */

#define DRAW_DOMAIN "veltrix-draw-v1"

/* Installs seed: the HMAC key schedule (the SHA-256 states after the key block xor 0x36
 * and xor 0x5c) and the public commitment. */
static void seed_install(struct hunt *h, const uint8_t seed[ENGINE_SEED_BYTES])
{
    uint8_t pad[SHA256_CBLOCK];
    memmove(h->seed, seed, ENGINE_SEED_BYTES);
    SHA256(h->seed, ENGINE_SEED_BYTES, h->commitment);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < SHA256_CBLOCK; i++)
            pad[i] = (uint8_t)((i < ENGINE_SEED_BYTES ? h->seed[i] : 0) ^ (k ? 0x5c : 0x36));
        SHA256_Init(&h->draw_key[k]);
        SHA256_Update(&h->draw_key[k], pad, sizeof pad);
    }
    OPENSSL_cleanse(pad, sizeof pad);
    h->draw_rule = ENGINE_DRAW_HMAC;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* k of ENGINE_DRAW_HMAC: one HMAC from the key schedule (two or three SHA-256 blocks). */
static uint64_t draw_hmac(const struct hunt *h, const char *zone, const uint8_t player[16],
                          uint64_t opened, uint64_t n)
{
    uint8_t msg[sizeof DRAW_DOMAIN - 1 + 1 + ENGINE_ID_MAX + 16 + 16], inner[32], mac[32];
    size_t zl = strlen(zone), at = sizeof DRAW_DOMAIN - 1;
    assert(zl >= 1 && zl <= ENGINE_ID_MAX);
    memcpy(msg, DRAW_DOMAIN, at);
    msg[at++] = (uint8_t)zl;
    memcpy(msg + at, zone, zl);
    memcpy(msg + (at += zl), player, 16);
    put_be64(msg + (at += 16), opened);
    put_be64(msg + (at += 8), n);
    SHA256_CTX c = h->draw_key[0];
    SHA256_Update(&c, msg, at + 8);
    SHA256_Final(inner, &c);
    c = h->draw_key[1];
    SHA256_Update(&c, inner, sizeof inner);
    SHA256_Final(mac, &c);
    OPENSSL_cleanse(&c, sizeof c);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | mac[i];
    return (uint64_t)(((unsigned __int128)x * n) >> 64);
}

/* k of ENGINE_DRAW_LEGACY. */
static uint64_t draw_legacy(const struct hunt *h, const char *zone, const uint8_t player[16],
                            uint64_t n)
{
    uint64_t s = fnv1a(0xcbf29ce484222325ull, h->id, strlen(h->id) + 1);
    s = fnv1a(fnv1a(s, zone, strlen(zone) + 1), player, 16);
    return splitmix64(s ^ n) % n;
}

/* Chests of zone zi opened so far (all its pools). */
static uint64_t zone_opened(const struct def *df, uint32_t zi)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < df->zones[zi].n_pools; i++) {
        const struct chest_pool *cp = &df->pools[df->zones[zi].pool_off + i].cp;
        n += cp->n - chest_pool_closed(cp);
    }
    return n;
}

/* Writes the chest id of slot of pool into out (ENGINE_CHEST_ID_MAX + 1 bytes). */
static void chest_id(const struct def *df, const struct pool *p, uint32_t slot, char *out)
{
    if (slot < p->n_explicit) {
        strcpy(out, df->d.chests[p->chests[slot]].id);
        return;
    }
    const struct hd_range *r = &df->d.zones[p->zone].range;
    char digits[10];
    int nd = 0;
    size_t pl = strlen(r->prefix);
    uint32_t v = slot - p->n_explicit;
    do digits[nd++] = (char)('0' + v % 10);
    while (v /= 10);
    assert(pl + (size_t)nd <= ENGINE_CHEST_ID_MAX);
    memcpy(out, r->prefix, pl); /* prefix + decimal index (an opener's hot path: no printf) */
    for (int i = 0; i < nd; i++) out[pl + (size_t)i] = digits[nd - 1 - i];
    out[pl + (size_t)nd] = '\0';
}

static int pick_chest(const struct hunt *h, uint32_t zi, const uint8_t player[16],
                      const uint32_t *pools, uint32_t n, char *out)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += chest_pool_closed(&h->def->pools[pools[i]].cp);
    if (!total) return ENGINE_NO_CHEST;
    const char *zone = h->def->d.zones[zi].id;
    uint64_t k = h->draw_rule == ENGINE_DRAW_HMAC
                     ? draw_hmac(h, zone, player, zone_opened(h->def, zi), total)
                     : draw_legacy(h, zone, player, total);
    for (uint32_t i = 0;; i++) {
        const struct pool *p = &h->def->pools[pools[i]];
        if (k < chest_pool_closed(&p->cp)) {
            chest_id(h->def, p, chest_pool_select(&p->cp, (uint32_t)k), out);
            return 0;
        }
        k -= chest_pool_closed(&p->cp);
    }
}

int engine_open(const struct hunt *h, const uint8_t player[16], const char *zone, int64_t now_ms,
                struct event *ev)
{
    int rc = playable(h, now_ms);
    if (rc) return rc;
    uint32_t zi = lookup(&h->def->d.zone_ix, zone), pi = player_find(h, player);
    if (zi == NONE) return ENGINE_ZONE_NOT_FOUND;
    const struct player *p = pi == NONE ? NULL : &h->players[pi];
    uint32_t stack[64], *buf = stack, n_inv = p ? p->n_inv : 0;
    if (n_inv + 1 > 64 && !(buf = malloc(((size_t)n_inv + 1) * sizeof *buf))) return ENGINE_NOMEM;
    event_init(h, ev, EVENT_OPEN, player, now_ms);
    uint32_t n = eligible_pools(h, zi, p, buf);
    rc = pick_chest(h, zi, player, buf, n, ev->u.open.chest);
    if (buf != stack) free(buf);
    strcpy(ev->u.open.zone, h->def->d.zones[zi].id);
    return rc;
}

int engine_map(const struct hunt *h, int64_t version, int64_t now_ms, struct event *ev)
{
    if (!h->def) return ENGINE_NOT_DEFINED;
    if (version < 0 || version <= h->map_version) return ENGINE_EINVAL;
    event_init(h, ev, EVENT_MAP, NULL, now_ms);
    ev->u.map.version = version;
    return ENGINE_OK;
}

/* ---- the hash chain ------------------------------------------------------------------
 * Every applied event extends the hunt's public hash chain (docs/FAIRNESS.md):
 *   canonical(ev) = "VXEV1" || seq (u64 BE) || time_ms (i64 BE) || type (1 byte)
 *                   || player (16 bytes, zero for DEFINE and MAP) || len(P) (u32 BE) || P
 *   P = the event's log payload (event_encode) for SCAN, COLLECT, OPEN and MAP; for
 *       DEFINE the draw rule byte || SHA-256 of the definition JSON (never the seed).
 *   hash(1) = SHA-256(H0 || canonical(event 1)), hash(n) = SHA-256(hash(n-1) || canonical(n))
 *   H0 = the seed commitment SHA-256(seed), or 32 zero bytes for a legacy hunt. */
#define CHAIN_MAGIC "VXEV1"
#define CHAIN_HEAD 42 /* magic, seq, time, type, player, len(P) */

/* P of a DEFINE: the rule byte and the definition's SHA-256. */
static size_t define_public(const struct event *ev, uint8_t out[1 + 32])
{
    const struct event_define *d = &ev->u.define;
    out[0] = d->draw_rule;
    SHA256((const unsigned char *)(d->json ? d->json : ""), d->json ? d->json_len : 0, out + 1);
    return 1 + 32;
}

void engine_chain_next(const uint8_t prev[ENGINE_HASH_BYTES], const struct event *ev,
                       uint8_t out[ENGINE_HASH_BYTES])
{
    engine_chain_next_sha(prev, ev, NULL, out);
}

void engine_chain_next_sha(const uint8_t prev[ENGINE_HASH_BYTES], const struct event *ev,
                           const uint8_t *def_sha, uint8_t out[ENGINE_HASH_BYTES])
{
    uint8_t buf[ENGINE_HASH_BYTES + CHAIN_HEAD + 2 * VX_ID_MAX + VX_CHEST_ID_MAX + 64];
    uint8_t *c = buf + ENGINE_HASH_BYTES, *p = c + CHAIN_HEAD;
    const size_t pcap = sizeof buf - ENGINE_HASH_BYTES - CHAIN_HEAD;
    size_t plen;
    if (ev->type == EVENT_DEFINE && def_sha) {
        p[0] = ev->u.define.draw_rule;
        memcpy(p + 1, def_sha, 32);
        plen = 33;
    } else if (ev->type == EVENT_DEFINE) {
        plen = define_public(ev, p);
    } else {
        plen = event_encode(ev, p, pcap);
    }
    VX_FATAL_IF(plen > pcap); /* ids are bounded: a public payload always fits */
    memcpy(buf, prev, ENGINE_HASH_BYTES);
    memcpy(c, CHAIN_MAGIC, 5);
    put_be64(c + 5, ev->seq);
    put_be64(c + 13, (uint64_t)ev->time_ms);
    c[21] = ev->type;
    memcpy(c + 22, ev->player, 16);
    for (int i = 0; i < 4; i++)
        c[38 + i] = (uint8_t)(plen >> (24 - 8 * i));
    SHA256_CTX ctx; /* the low-level interface: SHA256() fetches the algorithm under a lock */
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, buf, ENGINE_HASH_BYTES + CHAIN_HEAD + plen);
    SHA256_Final(out, &ctx);
}

/* h->head after ev (just applied, h->seq already ev's). H0 is known only now for seq 1:
 * the first definition carries the seed. */
static void chain_extend(struct hunt *h, const struct event *ev)
{
    if (ev->seq == 1) {
        if (h->draw_rule == ENGINE_DRAW_HMAC) memcpy(h->head, h->commitment, ENGINE_HASH_BYTES);
        else memset(h->head, 0, ENGINE_HASH_BYTES);
    }
    engine_chain_next(h->head, ev, h->head);
}

void engine_audit_mode(struct hunt *h) { h->audit_mode = 1; }

int engine_audit_ranks(struct hunt *h)
{
    for (uint32_t pi = 0; pi < h->n_players; pi++) {
        const struct player *p = &h->players[pi];
        if (p->seq && lb_set(h->lb, pi, p->score, p->seq)) return ENGINE_NOMEM;
    }
    return 0;
}

void engine_head_hash(const struct hunt *h, uint8_t out[ENGINE_HASH_BYTES])
{
    memcpy(out, h->head, ENGINE_HASH_BYTES);
}

void engine_chain_h0(const struct hunt *h, uint8_t out[ENGINE_HASH_BYTES])
{
    if (h->draw_rule == ENGINE_DRAW_HMAC) memcpy(out, h->commitment, ENGINE_HASH_BYTES);
    else memset(out, 0, ENGINE_HASH_BYTES);
}

/* ---- apply ------------------------------------------------------------------------ */

static int apply_define(struct hunt *h, const struct event *ev, struct engine_outcome *out,
                        char *err, size_t cap)
{
    struct huntdef d;
    char why[256];
    struct def *df;
    const struct event_define *e = &ev->u.define;
    if (!e->json) return bad(err, cap, ev, "definition without JSON");
    if (e->draw_rule > ENGINE_DRAW_HMAC)
        return bad(err, cap, ev, "unknown draw rule %u", e->draw_rule);
    if (e->draw_rule && h->def) return bad(err, cap, ev, "an update cannot change the seed");
    int rc = huntdef_parse(&d, e->json, e->json_len, why, sizeof why);
    rc = rc == HUNTDEF_ENOMEM ? ENGINE_NOMEM : rc ? ENGINE_EINVAL : ENGINE_OK;
    if (rc == ENGINE_OK && (rc = check_in_use(h->def, &d, why, sizeof why)) != 0)
        huntdef_deinit(&d);
    if (rc == ENGINE_NOMEM) return rc;
    if (rc) return bad(err, cap, ev, "definition refused: %s", why);
    rc = def_build(h, &d, h->def, &df);
    if (rc) return rc;
    if (out) out->created = h->def == NULL;
    if (e->draw_rule == ENGINE_DRAW_HMAC) seed_install(h, e->seed);
    def_destroy(h->def);
    h->def = df;
    return 0;
}

/* Checks common to SCAN, COLLECT and OPEN, whose payload's first id is id[idcap]. */
static int check_play(const struct hunt *h, const struct event *ev, const char *id, size_t idcap,
                      char *err, size_t cap)
{
    if (!h->def) return bad(err, cap, ev, "the hunt is not defined");
    if (strnlen(id, idcap) == idcap) return bad(err, cap, ev, "unterminated id");
    if (!in_window(h->def, ev->time_ms))
        return bad(err, cap, ev, "time %" PRId64 " is outside the hunt's window", ev->time_ms);
    return 0;
}

static int apply_scan(struct hunt *h, const struct event *ev, struct engine_outcome *out, char *err,
                      size_t cap)
{
    struct txn t = {0};
    const char *code = ev->u.scan.code;
    int rc = check_play(h, ev, code, sizeof ev->u.scan.code, err, cap);
    if (rc) return rc;
    uint32_t ci = lookup_n(&h->def->d.code_ix, code, sizeof ev->u.scan.code);
    if (ci == NONE) return bad(err, cap, ev, "unknown code \"%s\"", code);
    struct code_st *cs = &h->def->codes[ci];
    uint32_t pi = player_find(h, ev->player);
    uint32_t word = TAG_SCAN << TAG_SHIFT | cs->sid;
    if (pi != NONE && player_did(h, pi, word))
        return bad(err, cap, ev, "code \"%s\" already scanned by this player", code);
    int64_t points = h->def->d.codes[ci].points;
    if ((rc = txn_begin(h, ev->player, &t)) || (rc = hist_reserve(h, t.p, 1)) ||
        (rc = txn_rank(h, &t, points, ev->seq)))
        return txn_fail(h, &t, rc);
    hist_push(h, t.pi, t.p, word, 1);
    cs->scans++;
    h->scans++;
    txn_commit(h, &t);
    fill_score(h, &t, points, out);
    return 0;
}

static int apply_collect(struct hunt *h, const struct event *ev, struct engine_outcome *out,
                         char *err, size_t cap)
{
    struct txn t = {0};
    const char *item = ev->u.collect.item;
    int rc = check_play(h, ev, item, sizeof ev->u.collect.item, err, cap);
    if (rc) return rc;
    uint32_t ii = lookup_n(&h->def->d.item_ix, item, sizeof ev->u.collect.item),
             pi = player_find(h, ev->player);
    if (ii == NONE) return bad(err, cap, ev, "unknown item \"%s\"", item);
    if ((rc = can_collect(h, pi, ii)) != 0)
        return bad(err, cap, ev, "item \"%s\": %s", item, engine_err_code(rc));
    struct item_st *it = &h->def->items[ii];
    if ((rc = txn_begin(h, ev->player, &t)) || (rc = hist_reserve(h, t.p, 1)) ||
        (rc = inv_reserve(h, t.p, 1)))
        return txn_fail(h, &t, rc);
    hist_push(h, t.pi, t.p, TAG_COLLECT << TAG_SHIFT | it->sid, 1);
    it->collected++;
    int64_t count = inv_add(t.p, it->sid, 1);
    txn_commit(h, &t);
    if (out) {
        out->count = count;
        out->remaining = h->def->d.items[ii].quantity - it->collected;
    }
    return 0;
}

/* The pool and slot of chest id in zone zi; 0, or -1 when the zone has no such chest. */
static int find_chest(const struct def *df, uint32_t zi, const char *id, uint32_t *pool,
                      uint32_t *slot)
{
    uint32_t c = lookup(&df->d.chest_ix, id);
    if (c != NONE && df->d.chests[c].zone == zi) {
        *pool = df->chests[c].pool;
        *slot = df->chests[c].slot;
        return 0;
    }
    uint32_t ri = huntdef_range_index(&df->d.zones[zi].range, id, strlen(id));
    if (ri == NONE) return -1;
    *pool = df->zones[zi].range_pool;
    *slot = df->pools[*pool].n_explicit + ri;
    return 0;
}

/* Opens (pool, slot) for the txn's player: every allocation is already reserved. */
static void open_commit(struct hunt *h, struct txn *t, uint32_t zi, struct pool *p, uint32_t slot,
                        struct engine_outcome *out)
{
    const struct def *df = h->def;
    uint32_t off, n;
    chest_pool_claim(&p->cp, slot);
    hist_push(h, t->pi, t->p, TAG_OPEN << TAG_SHIFT | df->zones[zi].sid, 0);
    if (slot < p->n_explicit) {
        hist_push(h, t->pi, t->p, df->chests[p->chests[slot]].sid, 0);
        off = df->d.chests[p->chests[slot]].loot_off;
        n = df->d.chests[p->chests[slot]].n_loot;
    } else {
        hist_push(h, t->pi, t->p, RANGE_BIT | (slot - p->n_explicit), 0);
        h->def->zones[zi].range_opened++;
        off = df->d.zones[zi].range.loot_off;
        n = df->d.zones[zi].range.n_loot;
    }
    if (p->req) inv_add(t->p, p->req_sid, -1);
    for (uint32_t i = 0; i < n; i++) {
        inv_add(t->p, df->loot_sids[off + i], 1);
        h->loot_out[i] = df->d.loot[off + i];
    }
    if (out) {
        out->loot = h->loot_out;
        out->n_loot = n;
    }
}

/* Loot entries of (pool, slot) that p does not hold yet (an upper bound). */
static uint32_t loot_missing(const struct def *df, const struct pool *p, uint32_t zi, uint32_t slot,
                             const struct player *pl)
{
    const struct hd_range *r = &df->d.zones[zi].range;
    uint32_t off = slot < p->n_explicit ? df->d.chests[p->chests[slot]].loot_off : r->loot_off;
    uint32_t n = slot < p->n_explicit ? df->d.chests[p->chests[slot]].n_loot : r->n_loot;
    uint32_t missing = 0;
    for (uint32_t i = 0; i < n; i++)
        missing += !pl || inv_count(pl, df->loot_sids[off + i]) == 0;
    return missing;
}

static int64_t slot_points(const struct def *df, const struct pool *p, uint32_t zi, uint32_t slot)
{
    if (slot < p->n_explicit) return df->d.chests[p->chests[slot]].points;
    return df->d.zones[zi].range.points;
}

static int apply_open(struct hunt *h, const struct event *ev, struct engine_outcome *out, char *err,
                      size_t cap)
{
    struct txn t = {0};
    uint32_t pool, slot;
    const struct event_open *o = &ev->u.open;
    int rc = check_play(h, ev, o->zone, sizeof o->zone, err, cap);
    if (rc) return rc;
    if (strnlen(o->chest, sizeof o->chest) == sizeof o->chest)
        return bad(err, cap, ev, "unterminated id");
    uint32_t zi = lookup_n(&h->def->d.zone_ix, o->zone, sizeof o->zone),
             pi = player_find(h, ev->player);
    if (zi == NONE) return bad(err, cap, ev, "unknown zone \"%s\"", o->zone);
    if (find_chest(h->def, zi, o->chest, &pool, &slot))
        return bad(err, cap, ev, "zone \"%s\" has no chest \"%s\"", o->zone, o->chest);
    struct pool *p = &h->def->pools[pool];
    if (chest_pool_is_open(&p->cp, slot))
        return bad(err, cap, ev, "chest \"%s\" already opened", o->chest);
    if (p->req && (pi == NONE || inv_count(&h->players[pi], p->req_sid) < 1))
        return bad(err, cap, ev, "chest \"%s\" requires \"%s\"", o->chest, p->req);
    int64_t points = slot_points(h->def, p, zi, slot);
    if ((rc = txn_begin(h, ev->player, &t)) || (rc = hist_reserve(h, t.p, 2)) ||
        (rc = inv_reserve(h, t.p, loot_missing(h->def, p, zi, slot, t.p))) ||
        (rc = txn_rank(h, &t, points, ev->seq)))
        return txn_fail(h, &t, rc);
    open_commit(h, &t, zi, p, slot, out);
    txn_commit(h, &t);
    fill_score(h, &t, points, out);
    return 0;
}

static int apply_map(struct hunt *h, const struct event *ev, char *err, size_t cap)
{
    if (!h->def) return bad(err, cap, ev, "the hunt is not defined");
    int64_t version = ev->u.map.version;
    if (version < 0 || version <= h->map_version)
        return bad(err, cap, ev, "map version %" PRId64 " is not above %" PRId64, version,
                   h->map_version);
    h->map_version = version;
    return 0;
}

int engine_apply(struct hunt *h, const struct event *ev, struct engine_outcome *out, char *err,
                 size_t errcap)
{
    int rc = ENGINE_BAD_EVENT;
    if (out) memset(out, 0, sizeof *out);
    if (errcap) err[0] = '\0';
    if (ev->seq != h->seq + 1) return bad(err, errcap, ev, "expected seq %" PRIu64, h->seq + 1);
    if (!event_type_known(ev->type)) return bad(err, errcap, ev, "unknown event type");
    switch ((enum event_type)ev->type) { /* every type, no default: -Wswitch names a new one */
    case EVENT_DEFINE:
        rc = apply_define(h, ev, out, err, errcap);
        break;
    case EVENT_SCAN:
        rc = apply_scan(h, ev, out, err, errcap);
        break;
    case EVENT_COLLECT:
        rc = apply_collect(h, ev, out, err, errcap);
        break;
    case EVENT_OPEN:
        rc = apply_open(h, ev, out, err, errcap);
        break;
    case EVENT_MAP:
        rc = apply_map(h, ev, err, errcap);
        break;
    }
    if (rc == ENGINE_NOMEM && errcap)
        snprintf(err, errcap, "event seq %" PRIu64 ": out of memory", ev->seq);
    if (rc == 0) {
        h->seq = ev->seq;
#ifndef VELTRIX_BENCH_NO_CHAIN
        if (!h->audit_mode) chain_extend(h, ev);
#else /* make NOCHAIN=1: a benchmark's baseline, never served */
        (void)chain_extend;
#endif
        if (out) memcpy(out->hash, h->head, ENGINE_HASH_BYTES);
    }
    return rc;
}

/* ---- queries ----------------------------------------------------------------------- */

static uint64_t zone_closed(const struct def *df, uint32_t zi)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < df->zones[zi].n_pools; i++)
        n += chest_pool_closed(&df->pools[df->zones[zi].pool_off + i].cp);
    return n;
}

/* The definition's codes array with x and y left out of the hidden codes (their other
 * fields shared with the definition), or a new reference to it when none is hidden. */
static json_t *public_codes(const struct huntdef *d)
{
    json_t *codes = json_object_get(d->root, "codes"), *out;
    uint32_t i = 0;
    while (i < d->n_codes && !d->codes[i].hidden) i++;
    if (i == d->n_codes) return json_incref(codes);
    if (!(out = json_array())) return NULL;
    for (i = 0; i < d->n_codes; i++) {
        json_t *c = json_array_get(codes, i);
        c = d->codes[i].hidden ? json_copy(c) : json_incref(c);
        if (c && d->codes[i].hidden) {
            json_object_del(c, "x");
            json_object_del(c, "y");
        }
        if (json_array_append_new(out, c)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* 32 bytes as 64 lowercase hex characters and a NUL into out; returns out. */
static char *hex32(const uint8_t b[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[64] = '\0';
    return out;
}

void engine_hash_hex(const uint8_t hash[ENGINE_HASH_BYTES], char out[2 * ENGINE_HASH_BYTES + 1])
{
    hex32(hash, out);
}

json_t *engine_hunt_json(const struct hunt *h)
{
    char hex[65];
    const struct def *df = h->def;
    if (!df) return NULL;
    json_t *o = json_copy(df->d.root), *chests = json_object(), *items = json_object();
    json_t *codes = df->d.n_codes ? public_codes(&df->d) : NULL;
    if (!o || !chests || !items || (df->d.n_codes && !codes)) {
        json_decref(o);
        json_decref(chests);
        json_decref(items);
        json_decref(codes);
        return NULL;
    }
    if (codes) json_object_set_new(o, "codes", codes);
    for (uint32_t i = 0; i < df->d.n_zones; i++)
        json_object_set_new(chests, df->d.zones[i].id,
                            json_integer((json_int_t)zone_closed(df, i)));
    for (uint32_t i = 0; i < df->d.n_items; i++)
        json_object_set_new(items, df->d.items[i].id,
                            json_integer(df->d.items[i].quantity - df->items[i].collected));
    json_object_set_new(o, "chests_left", chests);
    json_object_set_new(o, "items_left", items);
    json_object_set_new(o, "map_version",
                        h->map_version < 0 ? json_null() : json_integer(h->map_version));
    json_object_set_new(o, "players", json_integer(h->n_players));
    /* The definition may hold keys of any name: never one that could pass for these. */
    json_object_del(o, "seed");
    json_object_set_new(o, "seed_commitment",
                        h->draw_rule == ENGINE_DRAW_HMAC
                            ? json_stringn(hex32(h->commitment, hex), 64)
                            : json_null());
    return o;
}

int engine_draw_rule(const struct hunt *h)
{
    return h->draw_rule;
}

int engine_seed_reveal(const struct hunt *h, int64_t now_ms, char hex[2 * ENGINE_SEED_BYTES + 1])
{
    if (!h->def || h->draw_rule != ENGINE_DRAW_HMAC || h->def->d.ends_ms == INT64_MAX ||
        now_ms < h->def->d.ends_ms)
        return -1;
    hex32(h->seed, hex);
    return 0;
}

json_t *engine_codes_json(const struct hunt *h)
{
    json_t *arr = json_array();
    if (!arr || !h->def) return arr;
    for (uint32_t i = 0; i < h->def->d.n_codes; i++) {
        const struct hd_code *c = &h->def->d.codes[i];
        json_array_append_new(arr, json_pack("{s:s,s:I,s:i,s:i,s:b}", "id", c->id, "points",
                                             (json_int_t)c->points, "x", c->x, "y", c->y,
                                             "hidden", c->hidden));
    }
    return arr;
}

int engine_code_points(const struct hunt *h, const char *code, int64_t *points)
{
    uint32_t c = h->def ? lookup(&h->def->d.code_ix, code) : NONE;
    if (c == NONE) return -1;
    *points = h->def->d.codes[c].points;
    return 0;
}

int engine_chest_reward(const struct hunt *h, const char *zone, const char *chest,
                        int64_t *points, const char *const **loot, size_t *n_loot)
{
    const struct def *df = h->def;
    uint32_t zi = df ? lookup(&df->d.zone_ix, zone) : NONE, pool, slot;
    if (zi == NONE || find_chest(df, zi, chest, &pool, &slot)) return -1;
    const struct pool *p = &df->pools[pool];
    int explicit_chest = slot < p->n_explicit;
    const struct hd_range *rg = &df->d.zones[zi].range;
    uint32_t off = explicit_chest ? df->d.chests[p->chests[slot]].loot_off : rg->loot_off;
    *n_loot = explicit_chest ? df->d.chests[p->chests[slot]].n_loot : rg->n_loot;
    *loot = (const char *const *)df->d.loot + off;
    *points = slot_points(df, p, zi, slot);
    return 0;
}

json_t *engine_definition_public(const char *json, size_t len)
{
    struct huntdef d;
    char why[256];
    if (huntdef_parse(&d, json, len, why, sizeof why)) return NULL;
    json_t *o = json_copy(d.root), *codes = d.n_codes ? public_codes(&d) : NULL;
    if (o && codes) json_object_set_new(o, "codes", codes);
    else json_decref(codes);
    if (o && d.n_codes && !codes) {
        json_decref(o);
        o = NULL;
    }
    huntdef_deinit(&d);
    return o;
}

int engine_has_code(const struct hunt *h, const char *code)
{
    return h->def && lookup(&h->def->d.code_ix, code) != NONE;
}

/* The id of the chest named by history words (zone, chest). */
static json_t *opened_json(const struct hunt *h, uint32_t zone_sid, uint32_t word)
{
    if (!(word & RANGE_BIT)) return json_string(strtab_str(h->strs, word));
    const char *zone = strtab_str(h->strs, zone_sid);
    uint32_t zi = find_in(&h->def->d.zone_ix, zone);
    assert(zi != NONE && h->def->d.zones[zi].range.prefix);
    char id[ENGINE_CHEST_ID_MAX + 1];
    snprintf(id, sizeof id, "%s%" PRIu32, h->def->d.zones[zi].range.prefix, word & ~RANGE_BIT);
    return json_string(id);
}

static void me_history(const struct hunt *h, const struct player *p, json_t *scanned,
                       json_t *opened, json_t *collected)
{
    const uint32_t *w = hist_cwords(p);
    for (uint32_t i = 0; i < p->n_hist; i++) {
        uint32_t tag = w[i] >> TAG_SHIFT, sid = w[i] & SID_MAX;
        if (tag == TAG_SCAN)
            json_array_append_new(scanned, json_string(strtab_str(h->strs, sid)));
        else if (tag == TAG_COLLECT)
            json_array_append_new(collected, json_string(strtab_str(h->strs, sid)));
        else
            json_array_append_new(opened, opened_json(h, sid, w[++i]));
    }
}

json_t *engine_me_json(const struct hunt *h, const uint8_t player[16])
{
    uint32_t pi = player_find(h, player);
    const struct player *p = pi == NONE ? NULL : &h->players[pi];
    uint64_t rank = p ? lb_rank(h->lb, pi) : 0;
    json_t *inv = json_object(), *sc = json_array(), *op = json_array(), *co = json_array();
    for (uint32_t i = 0; p && i < p->n_inv; i++)
        if (p->inv[i].count > 0)
            json_object_set_new(inv, strtab_str(h->strs, p->inv[i].sid),
                                json_integer(p->inv[i].count));
    if (p && h->def) me_history(h, p, sc, op, co);
    return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "score", (json_int_t)(p ? p->score : 0), "rank",
                     rank ? json_integer((json_int_t)rank) : json_null(), "inventory", inv,
                     "scanned", sc, "opened", op, "collected", co);
}

void engine_player_score(const struct hunt *h, const uint8_t player[16], int64_t *score,
                         uint64_t *rank)
{
    uint32_t pi = player_find(h, player);
    *score = pi == NONE ? 0 : h->players[pi].score;
    *rank = pi == NONE ? 0 : lb_rank(h->lb, pi);
}

size_t engine_lb_total(const struct hunt *h)
{
    return lb_count(h->lb);
}

size_t engine_lb_top(const struct hunt *h, size_t offset, size_t limit, struct engine_lb_row *out)
{
    struct lb_entry buf[64];
    size_t done = 0;
    while (done < limit) {
        size_t want = limit - done < 64 ? limit - done : 64;
        size_t got = lb_range(h->lb, offset + done, want, buf);
        for (size_t i = 0; i < got; i++) {
            memcpy(out[done + i].player, h->players[buf[i].member].id, 16);
            out[done + i].score = buf[i].score;
            out[done + i].rank = buf[i].rank;
        }
        done += got;
        if (got < want) break;
    }
    return done;
}

size_t engine_lb_around(const struct hunt *h, const uint8_t player[16], size_t radius,
                        struct engine_lb_row *out)
{
    uint32_t pi = player_find(h, player);
    uint64_t rank = pi == NONE ? 0 : lb_rank(h->lb, pi);
    if (!rank) return 0;
    size_t at = (size_t)rank - 1, start = at > radius ? at - radius : 0;
    return engine_lb_top(h, start, at - start + 1 + radius, out);
}

void engine_stats(const struct hunt *h, struct engine_stats *st)
{
    memset(st, 0, sizeof *st);
    st->seq = h->seq;
    st->events = h->seq;
    st->players = h->n_players;
    st->scans = h->scans;
    for (uint32_t i = 0; h->def && i < h->def->n_pools; i++)
        st->chests_left += chest_pool_closed(&h->def->pools[i].cp);
}

int64_t engine_map_version(const struct hunt *h)
{
    return h->map_version;
}

void engine_map_size(const struct hunt *h, int *width, int *height)
{
    *width = h->def ? h->def->d.width : 0;
    *height = h->def ? h->def->d.height : 0;
}

/* Digest: a multiply-xorshift fold of 64-bit words; strings enter by their hash. */
static uint64_t dg(uint64_t d, uint64_t w)
{
    return splitmix64(d ^ w);
}

static uint64_t dg_str(uint64_t d, const char *s)
{
    return dg(d, strtab_hash(s, strlen(s)));
}

static uint64_t digest_player(const struct hunt *h, const struct player *p, uint64_t d)
{
    uint64_t a, b;
    memcpy(&a, p->id, 8);
    memcpy(&b, p->id + 8, 8);
    d = dg(dg(dg(dg(d, a), b), (uint64_t)p->score), p->seq);
    const uint32_t *w = hist_cwords(p);
    for (uint32_t i = 0; i < p->n_hist; i++) {
        uint32_t tag = w[i] >> TAG_SHIFT;
        d = dg_str(dg(d, tag), strtab_str(h->strs, w[i] & SID_MAX));
        if (tag == TAG_OPEN) {
            i++;
            d = w[i] & RANGE_BIT ? dg(d, w[i]) : dg_str(d, strtab_str(h->strs, w[i]));
        }
    }
    for (uint32_t i = 0; i < p->n_inv; i++)
        d = dg(dg_str(d, strtab_str(h->strs, p->inv[i].sid)), (uint64_t)p->inv[i].count);
    return dg(d, p->n_hist);
}

static uint64_t digest_def(const struct def *df, uint64_t d)
{
    for (uint32_t i = 0; i < df->d.n_codes; i++)
        d = dg(d, df->codes[i].scans);
    for (uint32_t i = 0; i < df->d.n_items; i++)
        d = dg(d, df->items[i].collected);
    for (uint32_t i = 0; i < df->n_pools; i++) {
        size_t n;
        const uint64_t *w = chest_pool_words(&df->pools[i].cp, &n);
        d = dg(d, n);
        for (size_t j = 0; j < n; j++)
            d = dg(d, w[j]);
    }
    return d;
}

/* The draw rule and the seed's commitment (public), not the seed. Legacy hunts add
 * nothing, so their digests are the ones they had before seeds. */
static uint64_t digest_draw(const struct hunt *h, uint64_t d)
{
    if (h->draw_rule == ENGINE_DRAW_LEGACY) return d;
    d = dg(d, h->draw_rule);
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, h->commitment + 8 * i, 8);
        d = dg(d, w);
    }
    return d;
}

uint64_t engine_digest(const struct hunt *h)
{
    uint64_t d = dg(dg(dg(0x56656c74ull, h->seq), (uint64_t)h->map_version), h->scans);
    d = digest_draw(h, d);
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, h->head + 8 * i, 8);
        d = dg(d, w);
    }
    d = dg(d, h->n_players);
    for (uint32_t i = 0; i < h->n_players; i++)
        d = digest_player(h, &h->players[i], d);
    return h->def ? digest_def(h->def, d) : d;
}

static size_t def_memory_bytes(const struct def *df)
{
    const struct huntdef *d = &df->d;
    size_t sum = sizeof *df + huntdef_memory_bytes(d) +
                 (size_t)(d->n_codes + 1) * sizeof *df->codes +
                 (size_t)(d->n_items + 1) * sizeof *df->items +
                 (size_t)(d->n_zones + 1) * sizeof *df->zones +
                 (size_t)(d->n_chests + 1) * sizeof *df->chests +
                 (size_t)(d->n_loot + 1) * sizeof *df->loot_sids +
                 ((size_t)d->n_chests + d->n_zones + 1) * sizeof *df->pools;
    for (uint32_t i = 0; i < df->n_pools; i++)
        sum += chest_pool_memory_bytes(&df->pools[i].cp) +
               ((size_t)df->pools[i].n_explicit + 1) * sizeof(uint32_t);
    return sum;
}

size_t engine_memory_bytes(const struct hunt *h)
{
    return sizeof *h + strlen(h->id) + 1 + strtab_memory_bytes(h->strs) +
           (size_t)h->cap_players * sizeof *h->players + (size_t)h->pslot_cap * sizeof *h->pslots +
           (size_t)h->done_cap * sizeof *h->done + h->heap_bytes + lb_memory_bytes(h->lb) +
           (h->def ? def_memory_bytes(h->def) : 0);
}

/* ---- snapshots ------------------------------------------------------------------------
 * Layout (little-endian): "VXSN", u32 version, u64 body length, body, u64 CRC-64/XZ of
 * everything before it. Body: hunt id, seq, map_version, the draw rule and, for
 * ENGINE_DRAW_HMAC, the 32 seed bytes (version 2; version 1 has neither and decodes as
 * ENGINE_DRAW_LEGACY: it was written before seeds), the interned strings in id
 * order, the definition as JSON (or none), then every player in index order: id, score,
 * seq reached, history, inventory. Everything derivable is rebuilt on decode rather than
 * stored: scans per code and in all, collected per item, the chest bitsets (from the
 * histories, which name every opened chest exactly once), the done set and the
 * leaderboard. Rebuilding is also a check: a history naming an unknown code or a chest
 * twice is refused. Integers are LEB128 varints (signed ones zigzag). */

#define SNAP_MAGIC "VXSN"
#define SNAP_VERSION 3u /* written; 1 and 2 (no head hash) are refused: ENGINE_OLD_SNAPSHOT */
#define SNAP_VERSION_MIN 3u
#define SNAP_HEAD 16
#define SNAP_TAIL 8

static uint64_t crc_table[256];

__attribute__((constructor)) static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint64_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xC96C5795D7870F42ull : c >> 1;
        crc_table[i] = c;
    }
}

static uint64_t crc64(const uint8_t *p, size_t n)
{
    uint64_t c = ~0ull;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return ~c;
}

struct sbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
};

static void sb_bytes(struct sbuf *b, const void *p, size_t n)
{
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    sb_bytes(b, tmp, n);
}

static void sb_i64(struct sbuf *b, int64_t v)
{
    sb_u64(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void sb_str(struct sbuf *b, const char *s, size_t n)
{
    sb_u64(b, n);
    sb_bytes(b, s, n);
}

static void sb_fixed(struct sbuf *b, uint64_t v, int n)
{
    uint8_t tmp[8];
    for (int i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    sb_bytes(b, tmp, (size_t)n);
}

/* A history word as stored: (sid << 2 | tag); an OPEN's chest word: idx << 1 | 1 for a
 * range chest, sid << 1 for an explicit one. */
static void snap_player(struct sbuf *b, const struct player *p)
{
    const uint32_t *w = hist_cwords(p);
    sb_bytes(b, p->id, 16);
    sb_i64(b, p->score);
    sb_u64(b, p->seq);
    sb_u64(b, p->n_hist);
    for (uint32_t i = 0; i < p->n_hist; i++) {
        uint32_t tag = w[i] >> TAG_SHIFT;
        sb_u64(b, (uint64_t)(w[i] & SID_MAX) << 2 | tag);
        if (tag == TAG_OPEN && ++i < p->n_hist)
            sb_u64(b,
                   w[i] & RANGE_BIT ? (uint64_t)(w[i] & ~RANGE_BIT) << 1 | 1 : (uint64_t)w[i] << 1);
    }
    sb_u64(b, p->n_inv);
    for (uint32_t i = 0; i < p->n_inv; i++) {
        sb_u64(b, p->inv[i].sid);
        sb_i64(b, p->inv[i].count);
    }
}

static int snap_def(struct sbuf *b, const struct hunt *h)
{
    if (!h->def) {
        sb_u64(b, 0);
        return 0;
    }
    char *json = json_dumps(h->def->d.root, JSON_COMPACT);
    if (!json) return ENGINE_NOMEM;
    sb_u64(b, 1);
    sb_str(b, json, strlen(json));
    free(json);
    return 0;
}

int engine_snapshot_encode(const struct hunt *h, uint8_t **out, size_t *len)
{
    struct sbuf b = {0};
    sb_bytes(&b, SNAP_MAGIC, 4);
    sb_fixed(&b, SNAP_VERSION, 4);
    sb_fixed(&b, 0, 8); /* body length, filled in below */
    sb_str(&b, h->id, strlen(h->id));
    sb_u64(&b, h->seq);
    sb_i64(&b, h->map_version);
    sb_u64(&b, h->draw_rule);
    if (h->draw_rule == ENGINE_DRAW_HMAC) sb_bytes(&b, h->seed, ENGINE_SEED_BYTES);
    sb_bytes(&b, h->head, ENGINE_HASH_BYTES);
    uint32_t n_strs = strtab_count(h->strs);
    sb_u64(&b, n_strs);
    for (uint32_t i = 0; i < n_strs; i++) {
        const char *s = strtab_str(h->strs, i);
        sb_str(&b, s, strlen(s));
    }
    int rc = snap_def(&b, h);
    sb_u64(&b, h->n_players);
    for (uint32_t i = 0; !rc && i < h->n_players; i++)
        snap_player(&b, &h->players[i]);
    if (!rc && !b.oom)
        for (int i = 0; i < 8; i++)
            b.p[8 + i] = (uint8_t)((uint64_t)(b.len - SNAP_HEAD) >> (8 * i));
    if (!rc && !b.oom) sb_fixed(&b, crc64(b.p, b.len), 8);
    if (rc || b.oom) {
        free(b.p);
        return rc ? rc : ENGINE_NOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- snapshot decoding: a bounds-checked reader; the first problem is kept ---------- */

struct sread {
    const uint8_t *p;
    size_t at, end;
    char *err;
    size_t errcap;
    int failed;
    uint32_t version;
};

__attribute__((format(printf, 2, 3))) static int sr_fail(struct sread *r, const char *fmt, ...)
{
    if (r->failed) return ENGINE_BAD_SNAPSHOT;
    r->failed = 1;
    if (r->errcap) {
        int n = snprintf(r->err, r->errcap, "snapshot byte %zu: ", r->at);
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < r->errcap) vsnprintf(r->err + n, r->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return ENGINE_BAD_SNAPSHOT;
}

static uint64_t sr_u64(struct sread *r)
{
    uint64_t v = 0;
    for (int shift = 0; !r->failed && shift < 64; shift += 7) {
        if (r->at >= r->end) return sr_fail(r, "truncated"), 0;
        uint8_t c = r->p[r->at++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
    }
    sr_fail(r, "varint too long");
    return 0;
}

static int64_t sr_i64(struct sread *r)
{
    uint64_t v = sr_u64(r);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* A count of items that each take at least `unit` bytes: refused if the rest is shorter. */
static uint64_t sr_count(struct sread *r, size_t unit, uint64_t max, const char *what)
{
    uint64_t n = sr_u64(r);
    if (!r->failed && (n > max || n > (r->end - r->at) / unit))
        sr_fail(r, "%s count %" PRIu64 " is impossible", what, n);
    return r->failed ? 0 : n;
}

static const uint8_t *sr_bytes(struct sread *r, size_t n)
{
    if (r->failed) return NULL;
    if (n > r->end - r->at) return sr_fail(r, "truncated"), NULL;
    r->at += n;
    return r->p + r->at - n;
}

/* Header and checksum; on success r covers the body. */
static int sr_open(struct sread *r, const uint8_t *buf, size_t len)
{
    uint64_t body = 0, crc = 0;
    if (len < SNAP_HEAD + SNAP_TAIL) return sr_fail(r, "too short (%zu bytes)", len);
    if (memcmp(buf, SNAP_MAGIC, 4)) return sr_fail(r, "bad magic");
    for (int i = 7; i >= 0; i--) {
        body = body << 8 | buf[8 + i];
        crc = crc << 8 | buf[len - SNAP_TAIL + i];
    }
    uint32_t version =
        (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 | (uint32_t)buf[7] << 24;
    if (version < 1 || version > SNAP_VERSION)
        return sr_fail(r, "format version %" PRIu32 " (this build reads %u to %u)", version,
                       SNAP_VERSION_MIN, SNAP_VERSION);
    if (body != len - SNAP_HEAD - SNAP_TAIL)
        return sr_fail(r, "length %" PRIu64 " does not match the %zu bytes stored", body, len);
    if (crc64(buf, len - SNAP_TAIL) != crc) return sr_fail(r, "checksum mismatch");
    if (version < SNAP_VERSION_MIN) { /* intact, from before the hash chain */
        sr_fail(r, "format version %" PRIu32 " has no hash chain: replay the log", version);
        return ENGINE_OLD_SNAPSHOT;
    }
    r->p = buf;
    r->at = SNAP_HEAD;
    r->end = len - SNAP_TAIL;
    r->version = version;
    return 0;
}

/* Version 2's draw rule and seed (installed at once; a seed without a definition is
 * refused once the definition is read); version 1 is a legacy hunt. */
static int sr_draw(struct sread *r, struct hunt *h)
{
    uint64_t rule = sr_u64(r);
    if (r->failed) return ENGINE_BAD_SNAPSHOT;
    if (rule > ENGINE_DRAW_HMAC) return sr_fail(r, "unknown draw rule %" PRIu64, rule);
    if (rule == ENGINE_DRAW_HMAC) {
        const uint8_t *seed = sr_bytes(r, ENGINE_SEED_BYTES);
        if (!seed) return ENGINE_BAD_SNAPSHOT;
        seed_install(h, seed);
    }
    const uint8_t *head = sr_bytes(r, ENGINE_HASH_BYTES);
    if (!head) return ENGINE_BAD_SNAPSHOT;
    memcpy(h->head, head, ENGINE_HASH_BYTES);
    return 0;
}

static int sr_strings(struct sread *r, struct hunt *h)
{
    uint64_t n = sr_count(r, 1, SID_MAX, "string");
    for (uint64_t i = 0; !r->failed && i < n; i++) {
        uint64_t len = sr_count(r, 1, 65536, "string byte");
        const uint8_t *s = sr_bytes(r, len);
        uint32_t id;
        if (!s) break;
        if (memchr(s, 0, len)) return sr_fail(r, "string %" PRIu64 " holds a NUL", i);
        if (strtab_intern(h->strs, (const char *)s, len, &id)) return ENGINE_NOMEM;
        if (id != i) return sr_fail(r, "string %" PRIu64 " repeats string %" PRIu32, i, id);
    }
    return r->failed ? ENGINE_BAD_SNAPSHOT : 0;
}

static int sr_def(struct sread *r, struct hunt *h)
{
    struct huntdef d;
    char why[256];
    uint64_t has = sr_u64(r);
    if (r->failed || has == 0) return r->failed ? ENGINE_BAD_SNAPSHOT : 0;
    if (has != 1) return sr_fail(r, "bad definition flag %" PRIu64, has);
    uint64_t len = sr_count(r, 1, UINT32_MAX, "definition byte");
    const uint8_t *s = sr_bytes(r, len);
    if (!s) return ENGINE_BAD_SNAPSHOT;
    uint32_t n_strs = strtab_count(h->strs);
    int rc = huntdef_parse(&d, (const char *)s, len, why, sizeof why);
    rc = rc == HUNTDEF_ENOMEM ? ENGINE_NOMEM : rc ? ENGINE_EINVAL : ENGINE_OK;
    if (rc == ENGINE_NOMEM) return rc;
    if (rc) return sr_fail(r, "definition refused: %s", why);
    if ((rc = def_build(h, &d, NULL, &h->def)) != 0) return rc;
    if (strtab_count(h->strs) != n_strs)
        return sr_fail(r, "the definition names strings the snapshot does not hold");
    return 0;
}

/* The string of sid, or NULL (after failing r) when there is no such string. */
static const char *sr_sid(struct sread *r, const struct hunt *h, uint64_t sid)
{
    if (sid >= strtab_count(h->strs)) {
        sr_fail(r, "string id %" PRIu64 " out of range", sid);
        return NULL;
    }
    return strtab_str(h->strs, (uint32_t)sid);
}

/* Re-opens the chest that an OPEN of zone zi with stored chest word c names; returns the
 * in-memory chest word, or NONE after failing r. */
static uint32_t sr_reopen(struct sread *r, struct hunt *h, uint32_t zi, uint64_t c)
{
    struct def *df = h->def;
    uint32_t pool, slot, word;
    if (c & 1) {
        uint64_t idx = c >> 1;
        pool = df->zones[zi].range_pool;
        if (pool == NONE || idx >= df->d.zones[zi].range.count)
            return sr_fail(r, "range chest %" PRIu64 " out of range", idx), NONE;
        slot = df->pools[pool].n_explicit + (uint32_t)idx;
        word = RANGE_BIT | (uint32_t)idx;
    } else {
        const char *id = sr_sid(r, h, c >> 1);
        uint32_t ci = id ? find_in(&df->d.chest_ix, id) : NONE;
        if (ci == NONE || df->d.chests[ci].zone != zi)
            return sr_fail(r, "opened chest is not a chest of its zone"), NONE;
        pool = df->chests[ci].pool;
        slot = df->chests[ci].slot;
        word = (uint32_t)(c >> 1);
    }
    if (chest_pool_is_open(&df->pools[pool].cp, slot))
        return sr_fail(r, "a chest is opened twice"), NONE;
    chest_pool_claim(&df->pools[pool].cp, slot);
    if (c & 1) df->zones[zi].range_opened++;
    return word;
}

/* Reads one stored history entry of p (room reserved) and redoes its effect on the
 * hunt's counters and chests. */
static int sr_hist_entry(struct sread *r, struct hunt *h, struct player *p, uint64_t n)
{
    uint64_t v = sr_u64(r);
    uint32_t tag = (uint32_t)(v & 3), ix;
    const char *s = r->failed ? NULL : sr_sid(r, h, v >> 2);
    if (!s) return ENGINE_BAD_SNAPSHOT;
    if (tag == TAG_SCAN && (ix = find_in(&h->def->d.code_ix, s)) != NONE) {
        h->def->codes[ix].scans++;
        h->scans++;
    } else if (tag == TAG_COLLECT && (ix = find_in(&h->def->d.item_ix, s)) != NONE) {
        h->def->items[ix].collected++;
    } else if (tag == TAG_OPEN && (ix = find_in(&h->def->d.zone_ix, s)) != NONE) {
        if (p->n_hist + 1 >= n) return sr_fail(r, "an open without its chest");
        uint64_t c = sr_u64(r);
        uint32_t word = r->failed ? NONE : sr_reopen(r, h, ix, c);
        if (word == NONE) return ENGINE_BAD_SNAPSHOT;
        hist_words(p)[p->n_hist++] = TAG_OPEN << TAG_SHIFT | (uint32_t)(v >> 2);
        hist_words(p)[p->n_hist++] = word;
        return 0;
    } else {
        return sr_fail(r, "history entry (tag %" PRIu32 ", \"%s\") names nothing defined", tag, s);
    }
    hist_words(p)[p->n_hist++] = tag << TAG_SHIFT | (uint32_t)(v >> 2);
    return 0;
}

static int sr_inventory(struct sread *r, struct hunt *h, struct player *p)
{
    uint64_t n = sr_count(r, 2, UINT32_MAX / 2, "inventory entry");
    if (r->failed) return ENGINE_BAD_SNAPSHOT;
    if (inv_reserve(h, p, (uint32_t)n)) return ENGINE_NOMEM;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t sid = sr_u64(r);
        int64_t count = sr_i64(r);
        if (!sr_sid(r, h, sid)) return ENGINE_BAD_SNAPSHOT;
        if (count < 0) return sr_fail(r, "negative inventory count");
        p->inv[p->n_inv++] = (struct inv_entry){count, (uint32_t)sid};
    }
    return 0;
}

/* Player pi: published at once (so that destroy frees it), then filled. */
static int sr_player(struct sread *r, struct hunt *h, uint32_t pi)
{
    struct player *p = &h->players[pi];
    const uint8_t *id = sr_bytes(r, 16);
    if (!id) return ENGINE_BAD_SNAPSHOT;
    memset(p, 0, sizeof *p);
    p->cap_hist = HIST_INLINE;
    memcpy(p->id, id, 16);
    if (player_find(h, p->id) != NONE) return sr_fail(r, "player %" PRIu32 " repeats an id", pi);
    pslot_insert(h->pslots, h->pslot_cap, p->id, pi);
    h->n_players++;
    p->score = sr_i64(r);
    p->seq = sr_u64(r);
    uint64_t n = sr_count(r, 1, UINT32_MAX / 2, "history word");
    if (r->failed) return ENGINE_BAD_SNAPSHOT;
    if (p->seq > h->seq || (!p->seq && p->score))
        return sr_fail(r, "player %" PRIu32 ": score reached at seq %" PRIu64, pi, p->seq);
    if (hist_reserve(h, p, (uint32_t)n)) return ENGINE_NOMEM;
    while (p->n_hist < n)
        if (sr_hist_entry(r, h, p, n)) return ENGINE_BAD_SNAPSHOT;
    if (p->n_hist > HIST_LINEAR) done_migrate(h, pi, p);
    if (p->seq && lb_set(h->lb, pi, p->score, p->seq)) return ENGINE_NOMEM;
    return sr_inventory(r, h, p);
}

static int sr_players(struct sread *r, struct hunt *h)
{
    uint64_t n = sr_count(r, 20, UINT32_MAX - 2, "player");
    if (r->failed) return ENGINE_BAD_SNAPSHOT;
    if (n && !h->def) return sr_fail(r, "players in a hunt without a definition");
    if (!n) return 0;
    uint32_t cap = 64;
    while ((uint64_t)cap < (n + 1) * 2)
        cap *= 2;
    h->players = malloc(n * sizeof *h->players);
    h->pslots = calloc(cap, sizeof *h->pslots);
    if (!h->players || !h->pslots) return ENGINE_NOMEM;
    h->cap_players = (uint32_t)n;
    h->pslot_cap = cap;
    for (uint32_t i = 0; i < n; i++) {
        int rc = sr_player(r, h, i);
        if (rc) return rc;
    }
    for (uint32_t i = 0; i < h->def->d.n_items; i++)
        if (h->def->items[i].collected > h->def->d.items[i].quantity)
            return sr_fail(r, "item \"%s\" collected more often than its quantity",
                           h->def->d.items[i].id);
    return 0;
}

static int sr_hunt_id(struct sread *r, const char *id)
{
    uint64_t n = sr_count(r, 1, ENGINE_ID_MAX, "hunt id byte");
    const uint8_t *s = sr_bytes(r, n);
    if (!s) return ENGINE_BAD_SNAPSHOT;
    if (n != strlen(id) || memcmp(s, id, n))
        return sr_fail(r, "a snapshot of hunt '%.*s', not of '%s'", (int)n, (const char *)s, id);
    return 0;
}

int engine_snapshot_check(const uint8_t *buf, size_t len, char *err, size_t errcap)
{
    struct sread r = {.err = err, .errcap = errcap};
    if (errcap) err[0] = '\0';
    return sr_open(&r, buf, len);
}

int engine_snapshot_decode(const char *id, const uint8_t *buf, size_t len, struct hunt **out,
                           char *err, size_t errcap)
{
    struct sread r = {.err = err, .errcap = errcap};
    struct hunt *h = NULL;
    if (errcap) err[0] = '\0';
    *out = NULL;
    int rc = sr_open(&r, buf, len);
    if (!rc) rc = sr_hunt_id(&r, id);
    if (!rc) rc = (h = engine_hunt_create(id)) ? 0 : ENGINE_NOMEM;
    if (!rc) {
        h->seq = sr_u64(&r);
        h->map_version = sr_i64(&r);
        if (!r.failed && h->map_version < -1) sr_fail(&r, "bad map version");
        rc = r.failed ? ENGINE_BAD_SNAPSHOT : sr_draw(&r, h);
        if (!rc) rc = sr_strings(&r, h);
    }
    if (!rc) rc = sr_def(&r, h);
    if (!rc && h->draw_rule && !h->def) rc = sr_fail(&r, "a seed without a definition");
    if (!rc) rc = sr_players(&r, h);
    if (!rc && r.at != r.end) rc = sr_fail(&r, "%zu bytes after the last player", r.end - r.at);
    if (rc) {
        engine_hunt_destroy(h);
        if (rc == ENGINE_NOMEM && errcap) snprintf(err, errcap, "snapshot: out of memory");
        return rc;
    }
    *out = h;
    return 0;
}

/* ---- errors ------------------------------------------------------------------------ */

const char *engine_err_code(int err)
{
    switch (err) {
    case ENGINE_OK:
        return "ok";
    case ENGINE_EINVAL:
        return "invalid_request";
    case ENGINE_ENTITY_IN_USE:
        return "entity_in_use";
    case ENGINE_INVALID_CODE:
        return "invalid_code";
    case ENGINE_ALREADY_SCANNED:
        return "already_scanned";
    case ENGINE_NOT_ACTIVE:
        return "hunt_not_active";
    case ENGINE_ITEM_NOT_FOUND:
        return "item_not_found";
    case ENGINE_ITEM_EXHAUSTED:
        return "item_exhausted";
    case ENGINE_ALREADY_COLLECTED:
        return "already_collected";
    case ENGINE_ZONE_NOT_FOUND:
        return "zone_not_found";
    case ENGINE_NO_CHEST:
        return "no_chest_available";
    case ENGINE_NOMEM:
        return "unavailable";
    case ENGINE_BAD_EVENT:
        return "bad_event";
    case ENGINE_BAD_SNAPSHOT:
        return "bad_snapshot";
    case ENGINE_OLD_SNAPSHOT:
        return "old_snapshot";
    case ENGINE_NOT_DEFINED:
        return "hunt_not_found";
    default:
        return "internal_error";
    }
}


