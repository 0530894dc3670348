/* tiles.c — map tiles in memory (see tiles.h).
 *
 * Objects, all reference counted and immutable once built:
 *   blob    — tile bytes, one per SHA-256 (the `blobs` table of struct tiles finds them);
 *   ent     — a blob with its content type and ETag (quoted hex of the hash), made by an
 *             upload; the draft slot and every version that carry that upload share it;
 *   version — an open-addressing table (x, y) -> ent, sized at 2x its tiles, plus its
 *             map size and its "X-Map-Version" text;
 *   state   — the kept versions of a hunt, newest first. A publish builds a new state and
 *             swaps the hunt's pointer; the old state is dropped.
 * Invariants: a blob is in `blobs` exactly while some ent refers to it, so blob_bytes
 * counts each distinct tile once and is what bytes_max bounds; a version never changes
 * after tiles_publish (or restore) returned it. */
#include "tiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "hmap.h"

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
    char ctype[TILES_CTYPE_MAX + 1];
    char etag[35]; /* "<32 hex>" with the quotes */
};

struct tile_slot {
    uint32_t key; /* x * TILES_COORD_MAX + y + 1; 0 = empty */
    struct tile_ent *ent;
};

struct tile_version {
    uint32_t refs;
    int64_t number;
    uint32_t w, h, bits;
    size_t n, bytes;
    char vstr[24];
    size_t vstr_len;
    struct tile_slot slots[];
};

struct tile_state {
    unsigned n;
    struct tile_version *v[]; /* newest first */
};

struct tile_hunt {
    struct hmap draft; /* 4-byte key -> ent */
    size_t draft_bytes;
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

static uint32_t tile_key(uint32_t x, uint32_t y) { return x * TILES_COORD_MAX + y + 1; }

static void ref(uint32_t *refs) { __atomic_add_fetch(refs, 1, __ATOMIC_RELAXED); }
static int unref(uint32_t *refs) { return __atomic_sub_fetch(refs, 1, __ATOMIC_ACQ_REL) == 0; }

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
    if (!unref(&e->refs)) return;
    blob_release(e->blob);
    free(e);
}

/* A new entry (refs 1) owning blob's reference. */
static struct tile_ent *ent_create(struct tile_blob *blob, const char *ctype)
{
    struct tile_ent *e = malloc(sizeof *e);
    if (!e) return NULL;
    e->refs = 1;
    e->blob = blob;
    e->ctype_len = strnlen(ctype, TILES_CTYPE_MAX);
    memcpy(e->ctype, ctype, e->ctype_len);
    e->ctype[e->ctype_len] = '\0';
    e->etag[0] = '"';
    for (int i = 0; i < 16; i++) snprintf(e->etag + 1 + 2 * i, 3, "%02x", blob->hash[i]);
    e->etag[33] = '"';
    e->etag[34] = '\0';
    return e;
}

/* ---- versions and states ---------------------------------------------------------- */

static struct tile_version *version_create(int64_t number, uint32_t w, uint32_t h, size_t n)
{
    uint32_t bits = 3;
    while (bits < 31 && ((size_t)1 << bits) < 2 * n) bits++;
    size_t cap = (size_t)1 << bits;
    struct tile_version *v = calloc(1, sizeof *v + cap * sizeof v->slots[0]);
    if (!v) return NULL;
    v->refs = 1;
    v->number = number;
    v->w = w;
    v->h = h;
    v->bits = bits;
    v->vstr_len = (size_t)snprintf(v->vstr, sizeof v->vstr, "%lld", (long long)number);
    return v;
}

static struct tile_slot *slot_of(const struct tile_version *v, uint32_t key)
{
    uint32_t mask = ((uint32_t)1 << v->bits) - 1;
    uint32_t i = (key * 0x9E3779B1u) >> (32 - v->bits);
    while (v->slots[i].key && v->slots[i].key != key) i = (i + 1) & mask;
    return (struct tile_slot *)&v->slots[i];
}

/* Adds (key, e) to a version under construction (one more ref on e). */
static void version_put(struct tile_version *v, uint32_t key, struct tile_ent *e)
{
    struct tile_slot *s = slot_of(v, key);
    if (s->key) {
        v->bytes -= s->ent->blob->len;
        v->n--;
        ent_release(s->ent);
    }
    ref(&e->refs);
    s->key = key;
    s->ent = e;
    v->n++;
    v->bytes += e->blob->len;
}

void tiles_release(struct tile_version *v)
{
    if (!v || !unref(&v->refs)) return;
    for (size_t i = 0; i < ((size_t)1 << v->bits); i++)
        if (v->slots[i].key) ent_release(v->slots[i].ent);
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

static int draft_put(struct tile_hunt *th, uint32_t key, struct tile_ent *e)
{
    struct tile_ent *old = hmap_get(&th->draft, &key, sizeof key);
    if (hmap_put(&th->draft, &key, sizeof key, e)) return TILES_ENOMEM;
    th->draft_bytes += e->blob->len;
    if (old) {
        th->draft_bytes -= old->blob->len;
        ent_release(old);
    }
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
    if ((rc = draft_put(th, tile_key(x, y), e))) ent_release(e);
    return rc;
}

int tiles_stage(struct tiles *t, const char *hunt, uint32_t x, uint32_t y, const char *ctype,
                const uint8_t hash[32], const uint8_t *data, size_t len, int *new_blob)
{
    return stage(t, hunt, x, y, ctype, hash, data, len, 1, new_blob);
}

int tiles_publish(struct tiles *t, const char *hunt, int64_t number, uint32_t w, uint32_t h,
                  const struct tile_version **out)
{
    struct tile_hunt *th = hunt_get(t, hunt, 1);
    if (!th) return TILES_ENOMEM;
    struct tile_version *v = version_create(number, w, h, th->draft.count);
    if (!v) return TILES_ENOMEM;
    /* hmap_each gives values only: walk the nodes for their keys. */
    if (th->draft.buckets)
        for (size_t i = 0; i <= th->draft.mask; i++)
            for (struct hmap_node *nd = th->draft.buckets[i]; nd; nd = nd->next) {
                uint32_t key;
                memcpy(&key, nd->key, sizeof key);
                version_put(v, key, nd->value);
            }
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

int tiles_manifest(const struct tile_version *v, uint8_t **out, size_t *len)
{
    size_t cap = 16, nslots = (size_t)1 << v->bits;
    for (size_t i = 0; i < nslots; i++)
        if (v->slots[i].key) cap += 37 + v->slots[i].ent->ctype_len;
    uint8_t *buf = malloc(cap), *p = buf;
    if (!buf) return TILES_ENOMEM;
    memcpy(p, "VXM1", 4);
    p = put32(put32(put32(p + 4, v->w), v->h), (uint32_t)v->n);
    for (size_t i = 0; i < nslots; i++) {
        const struct tile_slot *s = &v->slots[i];
        if (!s->key) continue;
        uint32_t x = (s->key - 1) / TILES_COORD_MAX, y = (s->key - 1) % TILES_COORD_MAX;
        *p++ = (uint8_t)x, *p++ = (uint8_t)(x >> 8), *p++ = (uint8_t)y, *p++ = (uint8_t)(y >> 8);
        memcpy(p, s->ent->blob->hash, 32);
        p += 32;
        *p++ = (uint8_t)s->ent->ctype_len;
        memcpy(p, s->ent->ctype, s->ent->ctype_len);
        p += s->ent->ctype_len;
    }
    *out = buf;
    *len = (size_t)(p - buf);
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
    const struct tile_slot *sl = slot_of(v, tile_key(x, y));
    if (!sl->key) return TILES_ENOTILE;
    const struct tile_ent *e = sl->ent;
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
    struct store *s;
    struct tile_blob *blob; /* out of load_blob */
    int64_t last_version;
    char last_hunt[128];
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
        draft_put(th, tile_key(row->x, row->y), e)) {
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
    struct tile_version *v = version_create(number, w, h, n);
    if (!v) return TILES_ENOMEM;
    p += 16;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 37 || end - p < 37 + p[36]) goto corrupt;
        uint32_t x = get_le(p, 2), y = get_le(p + 2, 2);
        char ctype[TILES_CTYPE_MAX + 1];
        memcpy(ctype, p + 37, p[36]);
        ctype[p[36] > TILES_CTYPE_MAX ? TILES_CTYPE_MAX : p[36]] = '\0';
        struct tile_blob *b = x < TILES_COORD_MAX && y < TILES_COORD_MAX ? load_blob(c, p + 4) : NULL;
        struct tile_ent *e = b ? ent_create(b, ctype) : NULL;
        if (!e) {
            if (b) blob_release(b);
            goto corrupt;
        }
        version_put(v, tile_key(x, y), e);
        ent_release(e);
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

int tiles_restore(struct tiles *t, struct store *s, char *err, size_t errcap)
{
    struct restore_ctx c = {t, s, NULL, 0, ""};
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

static void release_ent(void *value, void *ctx) { ent_release(value); }

static void free_hunt(void *value, void *ctx)
{
    struct tile_hunt *th = value;
    hmap_each(&th->draft, release_ent, NULL);
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
    metrics_printf(b, "veltrix_tiles_draft_tiles{hunt=\"%s\"} %zu\n", th->id, th->draft.count);
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
