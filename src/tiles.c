/* tiles.c — map tiles in memory (see tiles.h).
 *
 * Objects, all reference counted:
 *   blob    — tile bytes, one per SHA-256 (the `blobs` table of struct tiles finds them);
 *   ent     — a blob with its content type and ETag (quoted hex of the hash), made by an
 *             upload; every chunk that carries that upload shares it;
 *   chunk   — 16 x 16 tiles (ent pointers, dense). Versions share chunks: the draft
 *             copies a chunk before changing it when any version still holds it
 *             (copy-on-write), so a publish only copies chunk pointers: O(chunks), not
 *             O(tiles) (256 for a 256 x 256 map), and the event loop never stalls on it;
 *   version — a dense grid of chunk pointers for a w x h map, its "X-Map-Version" text;
 *   state   — the kept versions of a hunt, newest first. A publish builds a new state and
 *             swaps the hunt's pointer; the old state is dropped.
 * Invariants: a blob is in `blobs` exactly while some ent refers to it, so blob_bytes
 * counts each distinct tile once and is what bytes_max bounds; a version and every chunk
 * it holds never change after tiles_publish (or restore) returned it; the draft changes
 * a chunk in place only while it holds the sole reference. */
#include "tiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "hmap.h"

#define CHUNK_BITS 4
#define CHUNK_SIDE (1 << CHUNK_BITS)
#define CHUNK_TILES (CHUNK_SIDE * CHUNK_SIDE)
#define GRID_SIDE (TILES_COORD_MAX / CHUNK_SIDE) /* chunks per side of the largest map */

struct tile_blob {
    uint32_t refs;
    struct tiles *owner;
    uint8_t hash[32];
    size_t len;
    uint8_t data[];
};

struct tile_ent {
    uint32_t refs;
    struct tile_blob *blob;
    size_t ctype_len;
    char etag[35]; /* "<32 hex>" with the quotes */
    char ctype[];
};

struct tile_chunk {
    uint32_t refs;
    uint32_t n;
    size_t bytes;
    struct tile_ent *e[CHUNK_TILES]; /* (x % 16) * 16 + y % 16 */
};

struct tile_version {
    uint32_t refs;
    int64_t number;
    uint32_t w, h, cw, ch; /* map size; chunks per column and row */
    size_t n, bytes;
    char vstr[24];
    size_t vstr_len;
    struct tile_chunk *chunks[]; /* cx * ch + cy */
};

struct tile_state {
    unsigned n;
    struct tile_version *v[]; /* newest first */
};

struct tile_hunt {
    struct hmap draft; /* chunk index cx * GRID_SIDE + cy (4 bytes) -> chunk */
    size_t draft_bytes, draft_tiles;
    struct tile_state *state; /* swapped with release/acquire */
    char id[];
};

struct tiles {
    struct tiles_config cfg;
    struct hmap hunts; /* id -> tile_hunt */
    struct hmap blobs; /* hash -> blob */
    struct tiles_stats stats;
};

const char *tiles_err_str(int err)
{
    switch (err) {
    case TILES_OK: return "ok";
    case TILES_ENOMEM: return "out of memory";
    case TILES_EFULL: return "tile memory limit reached";
    case TILES_ENOVERSION: return "no such map version";
    case TILES_EGONE: return "map version no longer kept";
    case TILES_ENOTILE: return "no tile there";
    case TILES_EBOUNDS: return "outside the map";
    case TILES_ECORRUPT: return "corrupt tile data";
    }
    return "unknown tiles error";
}

static void ref(uint32_t *refs) { __atomic_add_fetch(refs, 1, __ATOMIC_RELAXED); }
static int unref(uint32_t *refs) { return __atomic_sub_fetch(refs, 1, __ATOMIC_ACQ_REL) == 0; }
static uint32_t chunk_key(uint32_t x, uint32_t y)
{
    return (x >> CHUNK_BITS) * GRID_SIDE + (y >> CHUNK_BITS);
}
static unsigned slot(uint32_t x, uint32_t y)
{
    return (x % CHUNK_SIDE) * CHUNK_SIDE + y % CHUNK_SIDE;
}

/* ---- blobs and entries ----------------------------------------------------------- */

static void blob_release(struct tile_blob *b)
{
    if (!unref(&b->refs)) return;
    hmap_del(&b->owner->blobs, b->hash, 32);
    b->owner->stats.blobs--;
    b->owner->stats.blob_bytes -= b->len;
    free(b);
}

/* The blob for hash, new (refs 1, *is_new = 1) or shared (one more ref). check: apply
 * bytes_max. */
static int blob_get(struct tiles *t, const uint8_t hash[32], const uint8_t *data, size_t len,
                    int check, struct tile_blob **out, int *is_new)
{
    struct tile_blob *b = hmap_get(&t->blobs, hash, 32);
    *is_new = !b;
    if (b) {
        ref(&b->refs);
        *out = b;
        return 0;
    }
    if (check && t->stats.blob_bytes + len > t->cfg.bytes_max) {
        t->stats.rejected_full++;
        return TILES_EFULL;
    }
    if (!(b = malloc(sizeof *b + len))) return TILES_ENOMEM;
    b->refs = 1;
    b->owner = t;
    memcpy(b->hash, hash, 32);
    b->len = len;
    if (len) memcpy(b->data, data, len);
    if (hmap_put(&t->blobs, b->hash, 32, b)) {
        free(b);
        return TILES_ENOMEM;
    }
    t->stats.blobs++;
    t->stats.blob_bytes += len;
    *out = b;
    return 0;
}

static void ent_release(struct tile_ent *e)
{
    if (!e || !unref(&e->refs)) return;
    blob_release(e->blob);
    free(e);
}

/* A new entry (refs 1) owning blob's reference; NULL when out of memory. */
static struct tile_ent *ent_create(struct tile_blob *blob, const char *ctype)
{
    size_t len = strnlen(ctype, TILES_CTYPE_MAX);
    struct tile_ent *e = malloc(sizeof *e + len + 1);
    if (!e) return NULL;
    e->refs = 1;
    e->blob = blob;
    e->ctype_len = len;
    memcpy(e->ctype, ctype, len);
    e->ctype[len] = '\0';
    /* The tag names the bytes and their type: re-uploading the same bytes as another type
     * must not be answered 304 with the old type. */
    uint8_t tag[32 + TILES_CTYPE_MAX], h[32];
    memcpy(tag, blob->hash, 32);
    memcpy(tag + 32, ctype, len);
    auth_sha256(tag, 32 + len, h);
    e->etag[0] = '"';
    for (int i = 0; i < 16; i++) snprintf(e->etag + 1 + 2 * i, 3, "%02x", h[i]);
    e->etag[33] = '"';
    e->etag[34] = '\0';
    return e;
}

/* ---- chunks, versions and states -------------------------------------------------- */

static void chunk_release(struct tile_chunk *c)
{
    if (!c || !unref(&c->refs)) return;
    for (unsigned i = 0; i < CHUNK_TILES; i++) ent_release(c->e[i]);
    free(c);
}

/* A copy of c (or an empty chunk when c is NULL), refs 1. */
static struct tile_chunk *chunk_clone(const struct tile_chunk *c)
{
    struct tile_chunk *k = c ? malloc(sizeof *k) : calloc(1, sizeof *k);
    if (!k) return NULL;
    if (c) *k = *c;
    k->refs = 1;
    for (unsigned i = 0; i < CHUNK_TILES; i++)
        if (k->e[i]) ref(&k->e[i]->refs);
    return k;
}

/* Puts e (its reference moves in) at slot i of c, which the caller owns alone. */
static void chunk_put(struct tile_chunk *c, unsigned i, struct tile_ent *e)
{
    struct tile_ent *old = c->e[i];
    if (old) {
        c->n--;
        c->bytes -= old->blob->len;
        ent_release(old);
    }
    c->e[i] = e;
    c->n++;
    c->bytes += e->blob->len;
}

static struct tile_version *version_create(int64_t number, uint32_t w, uint32_t h)
{
    uint32_t cw = (w + CHUNK_SIDE - 1) / CHUNK_SIDE, ch = (h + CHUNK_SIDE - 1) / CHUNK_SIDE;
    struct tile_version *v = calloc(1, sizeof *v + (size_t)cw * ch * sizeof v->chunks[0]);
    if (!v) return NULL;
    v->refs = 1;
    v->number = number;
    v->w = w, v->h = h, v->cw = cw, v->ch = ch;
    v->vstr_len = (size_t)snprintf(v->vstr, sizeof v->vstr, "%lld", (long long)number);
    return v;
}

struct tile_version *tiles_retain(const struct tile_version *v)
{
    struct tile_version *m = (struct tile_version *)v; /* the count is not the content */
    ref(&m->refs);
    return m;
}

void tiles_release(struct tile_version *v)
{
    if (!v || !unref(&v->refs)) return;
    for (size_t i = 0; i < (size_t)v->cw * v->ch; i++) chunk_release(v->chunks[i]);
    free(v);
}

static void state_free(struct tile_state *s)
{
    if (!s) return;
    for (unsigned i = 0; i < s->n; i++) tiles_release(s->v[i]);
    free(s);
}

/* Makes v (reference moves in) the newest version of th, keeping at most `kept`. */
static int state_push(struct tile_hunt *th, struct tile_version *v, unsigned kept)
{
    struct tile_state *old = th->state, *s;
    unsigned n = old ? old->n : 0;
    if (n >= kept) n = kept - 1;
    if (!(s = malloc(sizeof *s + (n + 1) * sizeof s->v[0]))) return TILES_ENOMEM;
    s->n = n + 1;
    s->v[0] = v;
    for (unsigned i = 0; i < n; i++) {
        s->v[i + 1] = old->v[i];
        ref(&old->v[i]->refs);
    }
    __atomic_store_n(&th->state, s, __ATOMIC_RELEASE);
    /* With a second reading thread this free would wait for an epoch to pass. */
    state_free(old);
    return 0;
}

/* ---- hunts, draft ----------------------------------------------------------------- */

static struct tile_hunt *hunt_get(struct tiles *t, const char *id, int create)
{
    size_t len = strlen(id);
    struct tile_hunt *th = hmap_get(&t->hunts, id, len);
    if (th || !create) return th;
    if (!(th = calloc(1, sizeof *th + len + 1))) return NULL;
    memcpy(th->id, id, len + 1);
    hmap_init(&th->draft);
    if (hmap_put(&t->hunts, th->id, len, th)) {
        free(th);
        return NULL;
    }
    return th;
}

/* Puts e (its reference moves in) at (x, y) of th's draft, copying the chunk first when a
 * version shares it. */
static int draft_put(struct tile_hunt *th, uint32_t x, uint32_t y, struct tile_ent *e)
{
    uint32_t key = chunk_key(x, y);
    struct tile_chunk *c = hmap_get(&th->draft, &key, sizeof key);
    if (!c || __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE) > 1) {
        struct tile_chunk *k = chunk_clone(c);
        if (!k || hmap_put(&th->draft, &key, sizeof key, k)) {
            chunk_release(k);
            return TILES_ENOMEM;
        }
        chunk_release(c);
        c = k;
    }
    struct tile_ent *old = c->e[slot(x, y)];
    th->draft_bytes += e->blob->len - (old ? old->blob->len : 0);
    th->draft_tiles += !old;
    chunk_put(c, slot(x, y), e);
    return 0;
}

static int stage(struct tiles *t, const char *hunt, uint32_t x, uint32_t y, const char *ctype,
                 const uint8_t hash[32], const uint8_t *data, size_t len, int check,
                 int *new_blob)
{
    struct tile_hunt *th = hunt_get(t, hunt, 1);
    struct tile_blob *b;
    struct tile_ent *e;
    if (!th || x >= TILES_COORD_MAX || y >= TILES_COORD_MAX) return TILES_ENOMEM;
    int rc = blob_get(t, hash, data, len, check, &b, new_blob);
    if (rc) return rc;
    if (!(e = ent_create(b, ctype))) {
        blob_release(b);
        return TILES_ENOMEM;
    }
    if ((rc = draft_put(th, x, y, e))) ent_release(e);
    return rc;
}

int tiles_stage(struct tiles *t, const char *hunt, uint32_t x, uint32_t y, const char *ctype,
                const uint8_t hash[32], const uint8_t *data, size_t len, int *new_blob)
{
    return stage(t, hunt, x, y, ctype, hash, data, len, 1, new_blob);
}

/* Puts a draft chunk (key: its chunk index) into version v, sharing it. */
static void add_chunk(const void *key, size_t klen, void *value, void *ctx)
{
    struct tile_version *v = ctx;
    struct tile_chunk *c = value;
    uint32_t k, cx, cy;
    memcpy(&k, key, sizeof k);
    cx = k / GRID_SIDE, cy = k % GRID_SIDE;
    if (cx >= v->cw || cy >= v->ch) return; /* beyond a map that shrank */
    ref(&c->refs);
    v->chunks[cx * v->ch + cy] = c;
    v->n += c->n;
    v->bytes += c->bytes;
}

int tiles_publish(struct tiles *t, const char *hunt, int64_t number, uint32_t w, uint32_t h,
                  const struct tile_version **out)
{
    struct tile_hunt *th = hunt_get(t, hunt, 1);
    if (!th) return TILES_ENOMEM;
    struct tile_version *v = version_create(number, w, h);
    if (!v) return TILES_ENOMEM;
    hmap_each_entry(&th->draft, add_chunk, v);
    int rc = state_push(th, v, t->cfg.versions_kept);
    if (rc) {
        tiles_release(v);
        return rc;
    }
    if (out) *out = v;
    return 0;
}

int64_t tiles_keep_from(const struct tiles *t, int64_t number)
{
    int64_t k = number - (int64_t)t->cfg.versions_kept + 1;
    return k < 1 ? 1 : k;
}

/* ---- manifests ---------------------------------------------------------------------- */
/* "VXM1", u32 w, u32 h, u32 n, then per tile: u16 x, u16 y, hash[32], u8 ctype length,
 * ctype bytes. Little-endian. */

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint32_t get_le(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* Calls fn for every tile of v inside its map. */
static void each_tile(const struct tile_version *v,
                      void (*fn)(uint32_t x, uint32_t y, const struct tile_ent *e, void *ctx),
                      void *ctx)
{
    for (uint32_t cx = 0; cx < v->cw; cx++)
        for (uint32_t cy = 0; cy < v->ch; cy++) {
            const struct tile_chunk *c = v->chunks[cx * v->ch + cy];
            for (unsigned i = 0; c && i < CHUNK_TILES; i++) {
                uint32_t x = cx * CHUNK_SIDE + i / CHUNK_SIDE, y = cy * CHUNK_SIDE + i % CHUNK_SIDE;
                if (c->e[i] && x < v->w && y < v->h) fn(x, y, c->e[i], ctx);
            }
        }
}

struct enc {
    uint8_t *p;
    size_t need, n;
};

static void measure(uint32_t x, uint32_t y, const struct tile_ent *e, void *ctx)
{
    struct enc *m = ctx;
    m->need += 37 + e->ctype_len;
    m->n++;
}

static void encode(uint32_t x, uint32_t y, const struct tile_ent *e, void *ctx)
{
    struct enc *m = ctx;
    uint8_t *p = m->p;
    *p++ = (uint8_t)x, *p++ = (uint8_t)(x >> 8), *p++ = (uint8_t)y, *p++ = (uint8_t)(y >> 8);
    memcpy(p, e->blob->hash, 32);
    p[32] = (uint8_t)e->ctype_len;
    memcpy(p + 33, e->ctype, e->ctype_len);
    m->p = p + 33 + e->ctype_len;
}

int tiles_manifest(const struct tile_version *v, uint8_t **out, size_t *len)
{
    struct enc m = {NULL, 16, 0};
    each_tile(v, measure, &m);
    uint8_t *buf = malloc(m.need);
    if (!buf) return TILES_ENOMEM;
    memcpy(buf, "VXM1", 4);
    m.p = put32(put32(put32(buf + 4, v->w), v->h), (uint32_t)m.n);
    each_tile(v, encode, &m);
    *out = buf;
    *len = (size_t)(m.p - buf);
    return 0;
}

/* ---- reads -------------------------------------------------------------------------- */

int tiles_find(struct tiles *t, const char *hunt, size_t hunt_len, int64_t version, uint32_t x,
               uint32_t y, struct tile_hit *hit)
{
    struct tile_hunt *th = hmap_get(&t->hunts, hunt, hunt_len);
    struct tile_state *s = th ? __atomic_load_n(&th->state, __ATOMIC_ACQUIRE) : NULL;
    if (!s) return TILES_ENOVERSION;
    struct tile_version *v = s->v[0];
    if (version >= 0 && version != v->number) {
        if (version > v->number) return TILES_ENOVERSION;
        unsigned i = 1;
        while (i < s->n && s->v[i]->number != version) i++;
        if (i == s->n) return TILES_EGONE;
        v = s->v[i];
    }
    if (x >= v->w || y >= v->h) return TILES_EBOUNDS;
    const struct tile_chunk *c = v->chunks[(x >> CHUNK_BITS) * v->ch + (y >> CHUNK_BITS)];
    const struct tile_ent *e = c ? c->e[slot(x, y)] : NULL;
    if (!e) return TILES_ENOTILE;
    ref(&v->refs);
    *hit = (struct tile_hit){e->blob->data, e->blob->len, e->ctype, e->etag, v->vstr,
                             e->ctype_len, 34, v->vstr_len, v->number, v == s->v[0], v};
    return 0;
}

void tiles_count(struct tiles *t, int not_modified)
{
    metrics_inc(not_modified ? &t->stats.not_modified : &t->stats.served, 1);
}

const struct tiles_stats *tiles_stats(const struct tiles *t) { return &t->stats; }

/* ---- restore ------------------------------------------------------------------------ */

struct restore_ctx {
    struct tiles *t;
    struct store *s;                /* NULL: no store to read (tiles_follow_read) */
    struct tile_blob *blob; /* out of load_blob */
    int64_t last_version;
    char last_hunt[128];
    const struct tiles_read *pre;   /* blobs read beforehand (tiles_follow_read) */
    size_t from_store;              /* blobs load_blob read from the store */
};

/* A map version read off the loop (tiles_read_version): its manifest, and the blobs it
 * names that the reading thread had not read before, checked against their hashes. */
struct pre_blob {
    size_t len;
    uint8_t data[];
};
struct tiles_read {
    char hunt[128];
    int64_t number;
    uint8_t *manifest;
    size_t len;
    struct hmap blobs; /* hash (32 bytes) -> struct pre_blob */
};

static int blob_row(uint64_t unused, const uint8_t *data, size_t len, void *arg)
{
    struct restore_ctx *c = arg;
    uint8_t hash[32];
    int is_new;
    (void)unused;
    auth_sha256(data, len, hash);
    return blob_get(c->t, hash, data, len, 0, &c->blob, &is_new) ? -1 : 0;
}

/* The blob of hash with one more reference, from memory or the store. */
static struct tile_blob *load_blob(struct restore_ctx *c, const uint8_t hash[32])
{
    struct tile_blob *b = hmap_get(&c->t->blobs, hash, 32);
    if (b) {
        ref(&b->refs);
        return b;
    }
    c->blob = NULL;
    const struct pre_blob *pb = c->pre ? hmap_get(&c->pre->blobs, hash, 32) : NULL;
    int is_new;
    if (pb) { /* read and checked off the loop */
        if (blob_get(c->t, hash, pb->data, pb->len, 0, &c->blob, &is_new)) return NULL;
        return c->blob;
    }
    if (!c->s) return NULL;
    c->from_store++;
    if (store_get_blob(c->s, hash, blob_row, c) != 1 || !c->blob) return NULL;
    if (memcmp(c->blob->hash, hash, 32)) { /* the stored bytes do not match their hash */
        blob_release(c->blob);
        return NULL;
    }
    return c->blob;
}

static int restore_tile(const struct store_tile *row, void *arg)
{
    struct restore_ctx *c = arg;
    struct tile_hunt *th = hunt_get(c->t, row->hunt, 1);
    struct tile_blob *b = load_blob(c, row->hash);
    struct tile_ent *e = b ? ent_create(b, row->ctype) : NULL;
    if (!th || !e || row->x >= TILES_COORD_MAX || row->y >= TILES_COORD_MAX ||
        draft_put(th, row->x, row->y, e)) {
        if (e) ent_release(e);
        else if (b) blob_release(b);
        return TILES_ECORRUPT;
    }
    return 0;
}

/* Decodes one manifest into a new version (refs 1). */
static int decode_manifest(struct restore_ctx *c, int64_t number, const uint8_t *p, size_t len,
                           struct tile_version **out)
{
    const uint8_t *end = p + len;
    if (len < 16 || memcmp(p, "VXM1", 4)) return TILES_ECORRUPT;
    uint32_t w = get_le(p + 4, 4), h = get_le(p + 8, 4), n = get_le(p + 12, 4);
    if (w > TILES_COORD_MAX || h > TILES_COORD_MAX || n > (len - 16) / 37) return TILES_ECORRUPT;
    struct tile_version *v = version_create(number, w, h);
    if (!v) return TILES_ENOMEM;
    p += 16;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 37 || end - p < 37 + p[36]) goto corrupt;
        uint32_t x = get_le(p, 2), y = get_le(p + 2, 2);
        char ctype[TILES_CTYPE_MAX + 1];
        memcpy(ctype, p + 37, p[36]);
        ctype[p[36] > TILES_CTYPE_MAX ? TILES_CTYPE_MAX : p[36]] = '\0';
        struct tile_blob *b = x < w && y < h ? load_blob(c, p + 4) : NULL;
        struct tile_ent *e = b ? ent_create(b, ctype) : NULL;
        struct tile_chunk **ck = &v->chunks[(x >> CHUNK_BITS) * v->ch + (y >> CHUNK_BITS)];
        if (e && !*ck) *ck = chunk_clone(NULL);
        if (!e || !*ck) {
            if (e) ent_release(e);
            else if (b) blob_release(b);
            goto corrupt;
        }
        v->n -= (*ck)->n, v->bytes -= (*ck)->bytes;
        chunk_put(*ck, slot(x, y), e);
        v->n += (*ck)->n, v->bytes += (*ck)->bytes;
        p += 37 + p[36];
    }
    *out = v;
    return 0;
corrupt:
    tiles_release(v);
    return TILES_ECORRUPT;
}

static int restore_version(const struct store_map_version *row, void *arg)
{
    struct restore_ctx *c = arg;
    struct tile_hunt *th = hunt_get(c->t, row->hunt, 1);
    struct tile_version *v;
    snprintf(c->last_hunt, sizeof c->last_hunt, "%s", row->hunt);
    c->last_version = row->version;
    if (!th) return TILES_ENOMEM;
    int rc = decode_manifest(c, row->version, row->data, row->len, &v);
    if (rc) return rc;
    if ((rc = state_push(th, v, c->t->cfg.versions_kept))) tiles_release(v);
    return rc;
}

/* 1 when t holds version number of hunt's map, or a newer one. */
static int holds(struct tiles *t, const char *hunt, int64_t number)
{
    struct tile_hunt *th = hunt_get(t, hunt, 0);
    return th && th->state && th->state->n && th->state->v[0]->number >= number;
}

int tiles_follow(struct tiles *t, struct store *s, const char *hunt, int64_t number)
{
    if (holds(t, hunt, number)) return 0;
    struct restore_ctx c = {t, s, NULL, 0, "", NULL, 0};
    int rc = store_get_map_version(s, hunt, number, restore_version, &c);
    return rc < 0 ? rc : rc ? 0 : TILES_ENOVERSION;
}

/* ---- following a map version off the loop ----------------------------------------- */

struct read_ctx {
    struct tiles_read *r;
    const uint8_t *hash; /* the blob being read */
};

static int read_manifest(const struct store_map_version *row, void *arg)
{
    struct read_ctx *c = arg;
    if (!(c->r->manifest = malloc(row->len ? row->len : 1))) return TILES_ENOMEM;
    memcpy(c->r->manifest, row->data, row->len);
    c->r->len = row->len;
    return 0;
}

static int read_blob(uint64_t unused, const uint8_t *data, size_t len, void *arg)
{
    struct read_ctx *c = arg;
    uint8_t hash[32];
    (void)unused;
    auth_sha256(data, len, hash);
    if (memcmp(hash, c->hash, 32)) return TILES_ECORRUPT; /* the bytes do not match their hash */
    struct pre_blob *b = malloc(sizeof *b + len);
    if (!b) return TILES_ENOMEM;
    b->len = len;
    if (len) memcpy(b->data, data, len);
    if (hmap_put(&c->r->blobs, hash, 32, b)) {
        free(b);
        return TILES_ENOMEM;
    }
    return 0;
}

struct tiles_seen {
    struct hmap hashes; /* hashes of the blobs handed to the loop (values: a marker) */
};

struct tiles_seen *tiles_seen_create(void)
{
    struct tiles_seen *x = calloc(1, sizeof *x);
    if (x) hmap_init(&x->hashes);
    return x;
}

static void free_value(void *value, void *ctx) { free(value); }

void tiles_seen_destroy(struct tiles_seen *x)
{
    if (!x) return;
    hmap_deinit(&x->hashes);
    free(x);
}

static void seen_add(struct tiles_seen *x, const uint8_t hash[32])
{
    static char marker;
    hmap_put(&x->hashes, hash, 32, &marker); /* out of memory: read again next time */
}

struct tiles_read *tiles_read_version(struct store *s, struct tiles_seen *seen, const char *hunt,
                                      int64_t number, int *rc)
{
    struct tiles_read *r = calloc(1, sizeof *r);
    if (!r) {
        *rc = TILES_ENOMEM;
        return NULL;
    }
    snprintf(r->hunt, sizeof r->hunt, "%s", hunt);
    r->number = number;
    hmap_init(&r->blobs);
    struct read_ctx c = {r, NULL};
    *rc = store_get_map_version(s, hunt, number, read_manifest, &c);
    if (*rc == 0) *rc = TILES_ENOVERSION;
    if (*rc < 0) goto fail;
    *rc = 0;
    if (r->len < 16 || memcmp(r->manifest, "VXM1", 4)) {
        *rc = TILES_ECORRUPT;
        goto fail;
    }
    uint32_t n = get_le(r->manifest + 12, 4);
    const uint8_t *p = r->manifest + 16, *end = r->manifest + r->len;
    for (uint32_t i = 0; i < n && end - p >= 37 && end - p >= 37 + p[36]; i++, p += 37 + p[36]) {
        const uint8_t *hash = p + 4;
        if (hmap_get(&r->blobs, hash, 32) || (seen && hmap_get(&seen->hashes, hash, 32)))
            continue; /* read already, or handed to the loop before: it holds it */
        c.hash = hash;
        int got = store_get_blob(s, hash, read_blob, &c);
        if (got != 1) { /* an error, or a manifest naming a blob the store lacks */
            *rc = got < 0 ? got : TILES_ECORRUPT;
            goto fail;
        }
    }
    /* Handed to the loop: once it put the version in place, it holds these blobs. */
    for (p = r->manifest + 16; seen && p + 37 <= end && p + 37 + p[36] <= end; p += 37 + p[36])
        seen_add(seen, p + 4);
    return r;
fail:
    tiles_read_free(r);
    return NULL;
}

void tiles_read_free(struct tiles_read *r)
{
    if (!r) return;
    hmap_each(&r->blobs, free_value, NULL);
    hmap_deinit(&r->blobs);
    free(r->manifest);
    free(r);
}

size_t tiles_read_blobs(const struct tiles_read *r) { return r->blobs.count; }

int tiles_follow_read(struct tiles *t, struct store *s, const struct tiles_read *r,
                      size_t *from_store)
{
    *from_store = 0;
    if (holds(t, r->hunt, r->number)) return 0;
    struct restore_ctx c = {t, s, NULL, 0, "", r, 0};
    struct store_map_version row = {r->hunt, r->number, 0, r->manifest, r->len};
    int rc = restore_version(&row, &c);
    *from_store = c.from_store;
    return rc;
}

int tiles_restore(struct tiles *t, struct store *s, char *err, size_t errcap)
{
    struct restore_ctx c = {t, s, NULL, 0, "", NULL, 0};
    int rc = store_each_tile(s, restore_tile, &c);
    if (rc) {
        snprintf(err, errcap, "cannot restore the draft tiles: %s",
                 rc < -1000 ? store_err_str(rc) : tiles_err_str(rc));
        return -1;
    }
    if ((rc = store_each_map_version(s, restore_version, &c))) {
        snprintf(err, errcap, "cannot restore map version %lld of hunt '%s': %s",
                 (long long)c.last_version, c.last_hunt,
                 rc < -1000 ? store_err_str(rc) : tiles_err_str(rc));
        return -1;
    }
    return 0;
}

/* ---- lifecycle and metrics ------------------------------------------------------- */

struct tiles *tiles_create(const struct tiles_config *cfg)
{
    struct tiles *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cfg = *cfg;
    if (t->cfg.versions_kept < 1) t->cfg.versions_kept = 1;
    if (t->cfg.versions_kept > TILES_KEPT_MAX) t->cfg.versions_kept = TILES_KEPT_MAX;
    hmap_init(&t->hunts);
    hmap_init(&t->blobs);
    return t;
}

static void release_chunk(void *value, void *ctx) { chunk_release(value); }

static void free_hunt(void *value, void *ctx)
{
    struct tile_hunt *th = value;
    hmap_each(&th->draft, release_chunk, NULL);
    hmap_deinit(&th->draft);
    state_free(th->state);
    free(th);
}

void tiles_destroy(struct tiles *t)
{
    if (!t) return;
    hmap_each(&t->hunts, free_hunt, NULL);
    hmap_deinit(&t->hunts);
    hmap_deinit(&t->blobs);
    free(t);
}

static void render_hunt(void *value, void *ctx)
{
    const struct tile_hunt *th = value;
    struct metrics_buf *b = ctx;
    metrics_printf(b, "veltrix_tiles_draft_bytes{hunt=\"%s\"} %zu\n", th->id, th->draft_bytes);
    metrics_printf(b, "veltrix_tiles_draft_tiles{hunt=\"%s\"} %zu\n", th->id, th->draft_tiles);
    for (unsigned i = 0; th->state && i < th->state->n; i++) {
        const struct tile_version *v = th->state->v[i];
        metrics_printf(b, "veltrix_tiles_version_bytes{hunt=\"%s\",version=\"%lld\"} %zu\n",
                       th->id, (long long)v->number, v->bytes);
        metrics_printf(b, "veltrix_tiles_version_tiles{hunt=\"%s\",version=\"%lld\"} %zu\n",
                       th->id, (long long)v->number, v->n);
    }
}

void tiles_render_metrics(const struct tiles *t, struct metrics_buf *b)
{
    const struct tiles_stats *s = &t->stats;
    metrics_printf(b,
                   "# TYPE veltrix_tiles_served_total counter\nveltrix_tiles_served_total %llu\n"
                   "# TYPE veltrix_tiles_not_modified_total counter\n"
                   "veltrix_tiles_not_modified_total %llu\n"
                   "# TYPE veltrix_tiles_rejected_full_total counter\n"
                   "veltrix_tiles_rejected_full_total %llu\n"
                   "# TYPE veltrix_tiles_memory_bytes gauge\nveltrix_tiles_memory_bytes %llu\n"
                   "# TYPE veltrix_tiles_memory_bytes_max gauge\n"
                   "veltrix_tiles_memory_bytes_max %zu\n"
                   "# TYPE veltrix_tiles_blobs gauge\nveltrix_tiles_blobs %llu\n"
                   "# TYPE veltrix_tiles_draft_bytes gauge\n# TYPE veltrix_tiles_draft_tiles gauge\n"
                   "# TYPE veltrix_tiles_version_bytes gauge\n"
                   "# TYPE veltrix_tiles_version_tiles gauge\n",
                   (unsigned long long)metrics_get(&s->served),
                   (unsigned long long)metrics_get(&s->not_modified),
                   (unsigned long long)s->rejected_full, (unsigned long long)s->blob_bytes,
                   t->cfg.bytes_max, (unsigned long long)s->blobs);
    hmap_each(&t->hunts, render_hunt, b);
}

const char *tiles_ctype_for(const char *filename)
{
    static const char *const map[][2] = {
        {".png", "image/png"},   {".svg", "image/svg+xml"},  {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"}, {".webp", "image/webp"},    {".gif", "image/gif"},
        {".avif", "image/avif"}, {".pbf", "application/x-protobuf"},
        {".mvt", "application/vnd.mapbox-vector-tile"},      {".json", "application/json"},
    };
    const char *dot = strrchr(filename, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot, map[i][0])) return map[i][1];
    return "application/octet-stream";
}
