/* migrate.c — `veltrix migrate`: a whole store copied into an empty one, then proved
 * equal (see migrate.h for the contract).
 *
 * Design: each table other than the event log has one walk (TABLES[]) that feeds every
 * row through a `struct pass`, used three ways: over the target, stopping at the first
 * row, to prove it empty; over the source, putting each row into the target (BATCH_ROWS
 * rows per transaction); over the target again, to count and digest what landed. A
 * table's digest is the sum of its rows' hashes, each over every field, so it does not
 * depend on the order a backend walks in. Events go hunt by hunt, BATCH_EVENTS at a time
 * through store_put_events (PostgreSQL: one COPY per batch), one transaction per batch,
 * their bytes copied as stored, never decoded or re-encoded; each hunt's events are
 * digested the same way, and read back from the target by a checker thread as the
 * batches commit. Snapshots follow, each its own write (store.h), once every log is
 * committed; then the checker recovers every hunt from both stores by recovery.c
 * (snapshot + log replay, what a server does at start) and compares the engine digests,
 * while the main thread copies the other tables.
 *
 * Invariants:
 * - nothing is written to the target before prepare() found it empty and the source not;
 * - the source is only read, under its store lock (no server can write it meanwhile);
 * - the checker reads only rows that `struct committed` says are committed, and a hunt's
 *   source tally only once its whole log is;
 * - verification changes neither store: recovery runs with fsync_always, so a snapshot
 *   ahead of its log is an error rather than deleted;
 * - no message carries a password: URLs are shown through store_url_redact, and the
 *   stores' own messages are scrubbed by their backends. */
#include "migrate.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "recovery.h"
#include "store.h"
#include "vx.h"

#define BATCH_EVENTS 50000            /* events per target transaction */
#define BATCH_EVENT_BYTES (32u << 20) /* or payload bytes, whichever comes first */
#define BATCH_ROWS 20000              /* rows of the other tables per transaction */
#define PROGRESS_NS 500000000LL       /* at most two progress lines a second */
#define FOUND 1                       /* a first-row walk: stop, there is a row */
#define URL_SHOWN 512

/* ---- row digests ---------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t w;
    h = mix(h, n);
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = mix(h, w);
    }
    w = 0;
    memcpy(&w, p, n);
    return mix(h, w);
}

static uint64_t hash_str(uint64_t h, const char *s) { return hash_bytes(h, s, strlen(s)); }

/* A row's hash before it is summed (murmur3's finalizer: every bit reaches the sum). */
static uint64_t fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* ---- one pass over a table ------------------------------------------------------------ */

struct tally {
    uint64_t rows, sum; /* row count; sum of the rows' hashes */
};

struct pass {
    struct store *dst; /* each row is put here (NULL: only counted and digested) */
    int batched;       /* dst is in a transaction, committed every BATCH_ROWS rows */
    int open;          /* that transaction is open (to roll back on failure) */
    int first_only;    /* stop at the first row with FOUND */
    uint64_t in_txn;
    struct tally t;
};

/* Counts a row whose hash is h once its put (rc) succeeded. */
static int took(struct pass *p, uint64_t h, int rc)
{
    if (rc) return rc;
    p->t.rows++;
    p->t.sum += fmix(h);
    if (p->first_only) return FOUND;
    if (!p->batched || ++p->in_txn < BATCH_ROWS) return 0;
    p->in_txn = 0;
    if ((rc = store_commit(p->dst))) return rc;
    p->open = 0;
    if ((rc = store_begin(p->dst))) return rc;
    p->open = 1;
    return 0;
}

static int player_row(const struct store_player *r, void *arg)
{
    struct pass *p = arg;
    uint64_t h = hash_bytes(hash_str(1, r->display_name), r->id, 16);
    h = mix(mix(h, (uint64_t)r->created_ms), r->gen);
    return took(p, h, p->dst ? store_put_player(p->dst, r) : 0);
}

/* A used token is put as current first (a row of its own), then marked used. */
static int refresh_row(const struct store_refresh *r, void *arg)
{
    struct pass *p = arg;
    struct store_refresh current = *r;
    current.used = 0;
    int rc = p->dst ? store_put_refresh(p->dst, &current) : 0;
    if (!rc && p->dst && r->used) rc = store_put_refresh(p->dst, r);
    uint64_t h = hash_bytes(hash_bytes(2, r->id, 16), r->player, 16);
    h = mix(mix(mix(h, r->gen), (uint64_t)r->expires_ms), r->used != 0);
    return took(p, h, rc);
}

/* The hunt of a record's scope ("who METHOD /v1/hunts/{hunt}[/...]") into out, or NULL:
 * on PostgreSQL the record then goes with its hunt to the hunt's next owner. */
static const char *scope_hunt(const char *scope, char out[VX_ID_MAX + 1])
{
    static const char mark[] = " /v1/hunts/";
    const char *at = strstr(scope, mark);
    if (!at) return NULL;
    at += sizeof mark - 1;
    size_t n = strcspn(at, "/?");
    if (!vx_is_id(at, n, VX_ID_MAX)) return NULL;
    memcpy(out, at, n);
    out[n] = '\0';
    return out;
}

static int idem_row(const struct store_idem *i, void *arg)
{
    struct pass *p = arg;
    uint64_t h = hash_bytes(hash_str(hash_str(3, i->scope), i->key), i->req_hash, 32);
    h = mix(mix(hash_bytes(h, i->body, i->body_len), (uint64_t)i->status),
            (uint64_t)i->created_ms);
    char hunt[VX_ID_MAX + 1];
    struct store_idem row = *i;
    row.hunt = scope_hunt(i->scope, hunt);
    return took(p, h, p->dst ? store_put_idem(p->dst, &row) : 0);
}

static int blob_row(const uint8_t hash[32], const uint8_t *data, size_t len, void *arg)
{
    struct pass *p = arg;
    uint64_t h = hash_bytes(hash_bytes(4, hash, 32), data, len);
    return took(p, h, p->dst ? store_put_blob(p->dst, hash, data, len) : 0);
}

static int tile_row(const struct store_tile *t, void *arg)
{
    struct pass *p = arg;
    uint64_t h = hash_str(hash_bytes(hash_str(5, t->hunt), t->hash, 32), t->ctype);
    h = mix(mix(h, t->x), t->y);
    return took(p, h, p->dst ? store_put_tile(p->dst, t) : 0);
}

/* Every kept version is copied: keep_from below them all (a walk gives keep_from = the
 * row's version, which would delete the versions before it). */
static int map_version_row(const struct store_map_version *v, void *arg)
{
    struct pass *p = arg;
    struct store_map_version keep = *v;
    keep.keep_from = INT64_MIN;
    uint64_t h = mix(hash_bytes(hash_str(6, v->hunt), v->data, v->len), (uint64_t)v->version);
    return took(p, h, p->dst ? store_put_map_version(p->dst, &keep) : 0);
}

static int snapshot_row(const char *hunt, uint64_t seq, const uint8_t *data, size_t len,
                        void *arg)
{
    struct pass *p = arg;
    uint64_t h = mix(hash_bytes(hash_str(7, hunt), data, len), seq);
    return took(p, h, p->dst ? store_put_snapshot(p->dst, hunt, seq, data, len) : 0);
}

static int walk_players(struct store *s, struct pass *p)
{
    return store_each_player(s, player_row, p);
}
static int walk_refresh(struct store *s, struct pass *p)
{
    return store_each_refresh(s, INT64_MIN, refresh_row, p); /* expired rows too */
}
static int walk_idem(struct store *s, struct pass *p)
{
    return store_each_idem(s, INT64_MIN, idem_row, p);
}
static int walk_blobs(struct store *s, struct pass *p) { return store_each_blob(s, blob_row, p); }
static int walk_tiles(struct store *s, struct pass *p) { return store_each_tile(s, tile_row, p); }
static int walk_map_versions(struct store *s, struct pass *p)
{
    return store_each_map_version(s, map_version_row, p);
}
static int walk_snapshots(struct store *s, struct pass *p)
{
    return store_each_snapshot(s, snapshot_row, p);
}

/* Every table but the event log, in copy order: snapshots first, right after the logs
 * (never ahead of them) and before the check thread recovers hunts from the target. */
static const struct table {
    const char *name;
    int (*walk)(struct store *s, struct pass *p);
    int own_writes; /* each row is its own write, outside a transaction (store.h) */
    size_t stat;    /* its row count in struct migrate_stats */
} TABLES[] = {
    {"snapshots", walk_snapshots, 1, offsetof(struct migrate_stats, snapshots)},
    {"players", walk_players, 0, offsetof(struct migrate_stats, players)},
    {"refresh tokens", walk_refresh, 0, offsetof(struct migrate_stats, refresh)},
    {"idempotency records", walk_idem, 0, offsetof(struct migrate_stats, idem)},
    {"blobs", walk_blobs, 0, offsetof(struct migrate_stats, blobs)},
    {"tiles", walk_tiles, 0, offsetof(struct migrate_stats, tiles)},
    {"map versions", walk_map_versions, 0, offsetof(struct migrate_stats, map_versions)},
};
#define N_TABLES (sizeof TABLES / sizeof TABLES[0])

/* ---- the run ---------------------------------------------------------------------------- */

/* A batch of events: their rows, and their payloads in one buffer (a row's data holds its
 * offset in bytes until the batch is sent: the buffer may move as it grows). */
struct batch {
    struct store_event *ev;
    size_t n;
    uint8_t *bytes;
    size_t len, cap;
    size_t last_hunt; /* the last row's hunt (index) and seq */
    uint64_t last_seq;
};

/* What the main thread has committed, for the checker thread (fields under mu): every
 * log before hunt index `hunt` whole, and that hunt's up to `seq` (hunt == n_hunts: every
 * log); flags: the snapshots are copied too, or the copy failed (the checker stops). */
enum { COMMITTED_SNAPSHOTS = 1, COMMITTED_ABORTED = 2 };
struct committed {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t hunt;
    uint64_t seq;
    int flags;
};

struct run {
    const struct migrate_config *cfg;
    struct migrate_stats *st;
    struct store *src, *dst;
    char **hunts; /* the source's, in its order */
    size_t n_hunts, hunts_cap;
    struct tally *hunt_events;   /* each hunt's events in the source */
    struct tally tables[N_TABLES];
    struct batch b;
    struct committed *committed;
    uint64_t events_total;       /* the sum of the hunts' last seqs (for progress) */
    int64_t start_ns, shown_ns;
    uint64_t shown_events;       /* in the last progress line */
    int wrote;                   /* the target has been written to */
    char from[URL_SHOWN], to[URL_SHOWN]; /* redacted */
    char *err;
    size_t errcap;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Tells the checker what is committed now (struct committed). */
static void publish(struct run *r, size_t hunt, uint64_t seq, int flags)
{
    struct committed *c = r->committed;
    pthread_mutex_lock(&c->mu);
    if (!(flags & COMMITTED_ABORTED)) {
        c->hunt = hunt;
        c->seq = seq;
    }
    c->flags |= flags;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Puts the message in r->err (saying when the target is already partly written) and
 * returns code. */
__attribute__((format(printf, 3, 4))) static int fail(struct run *r, int code, const char *fmt,
                                                      ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->errcap, "%s%s", msg,
             code == MIGRATE_EFAIL && r->wrote
                 ? "; the target is partly written: empty it before migrating again"
                 : "");
    return code;
}

static void progress(struct run *r, int last)
{
    int64_t now = now_ns();
    if (!r->cfg->progress || (!last && now - r->shown_ns < PROGRESS_NS) ||
        (last && r->shown_events == r->st->events))
        return;
    r->shown_ns = now;
    r->shown_events = r->st->events;
    double s = (double)(now - r->start_ns) / 1e9;
    uint64_t done = r->st->events, total = r->events_total > done ? r->events_total : done;
    fprintf(r->cfg->progress, "veltrix: migrate: %llu/%llu events (%.0f%%), %.0f events/s\n",
            (unsigned long long)done, (unsigned long long)total,
            total ? 100.0 * (double)done / (double)total : 100.0, s > 0 ? (double)done / s : 0);
    fflush(r->cfg->progress);
}

/* ---- events ------------------------------------------------------------------------------ */

static uint64_t event_hash(const struct store_event *e)
{
    uint64_t h = mix(mix(mix(8, e->seq), (uint64_t)e->time_ms), e->type);
    h = hash_bytes(hash_bytes(h, e->player, 16), e->data, e->data_len);
    return e->has_hash ? hash_bytes(mix(h, 1), e->hash, 32) : mix(h, 0); /* the chain's link */
}

/* Sends the batch to the target as one transaction. */
static int flush_events(struct run *r)
{
    struct batch *b = &r->b;
    if (!b->n) return 0;
    for (size_t i = 0; i < b->n; i++) b->ev[i].data = b->bytes + (uintptr_t)b->ev[i].data;
    r->wrote = 1;
    int rc = store_begin(r->dst);
    if (!rc && (rc = store_put_events(r->dst, b->ev, b->n)) == 0) rc = store_commit(r->dst);
    if (rc) {
        store_rollback(r->dst);
        return rc;
    }
    r->st->events += b->n;
    publish(r, b->last_hunt, b->last_seq, 0);
    b->n = b->len = 0;
    progress(r, 0);
    return 0;
}

struct hunt_ctx {
    struct run *r;
    size_t i;
    const char *hunt; /* r->hunts[i]: lives as long as the run */
    struct tally *t;
};

static int copy_event(const struct store_event *e, void *arg)
{
    struct hunt_ctx *c = arg;
    struct batch *b = &c->r->b;
    if (b->len + e->data_len > b->cap) {
        size_t cap = b->cap;
        while (cap < b->len + e->data_len) cap *= 2;
        uint8_t *p = realloc(b->bytes, cap);
        if (!p) return STORE_EIO;
        b->bytes = p;
        b->cap = cap;
    }
    if (e->data_len) memcpy(b->bytes + b->len, e->data, e->data_len);
    b->ev[b->n] = *e;
    b->ev[b->n].hunt = c->hunt;
    b->ev[b->n++].data = (const uint8_t *)(uintptr_t)b->len;
    b->len += e->data_len;
    b->last_hunt = c->i;
    b->last_seq = e->seq;
    c->t->rows++;
    c->t->sum += fmix(event_hash(e));
    return b->n == BATCH_EVENTS || b->len >= BATCH_EVENT_BYTES ? flush_events(c->r) : 0;
}

/* Every hunt's log, in batches that may span hunts. */
static int copy_events(struct run *r)
{
    int rc = 0;
    VX_FATAL_IF(!(r->b.ev = malloc(BATCH_EVENTS * sizeof *r->b.ev)));
    VX_FATAL_IF(!(r->b.bytes = malloc(r->b.cap = 1 << 20)));
    for (size_t i = 0; !rc && i < r->n_hunts; i++) {
        struct hunt_ctx c = {r, i, r->hunts[i], &r->hunt_events[i]};
        rc = store_each_event(r->src, r->hunts[i], 1, copy_event, &c);
        if (rc) fail(r, MIGRATE_EFAIL, "copying the events of hunt '%s': %s", r->hunts[i],
                     store_err_str(rc));
    }
    if (!rc && (rc = flush_events(r)))
        fail(r, MIGRATE_EFAIL, "copying events: %s", store_err_str(rc));
    if (!rc) publish(r, r->n_hunts, 0, 0);
    progress(r, 1);
    return rc ? MIGRATE_EFAIL : 0;
}

static int tally_event(const struct store_event *e, void *arg)
{
    struct tally *t = arg;
    t->rows++;
    t->sum += fmix(event_hash(e));
    return 0;
}

/* ---- the other tables ---------------------------------------------------------------------- */

static int copy_table(struct run *r, size_t i)
{
    const struct table *tb = &TABLES[i];
    struct pass p = {.dst = r->dst, .batched = !tb->own_writes};
    int rc = 0;
    r->wrote = 1;
    if (p.batched && !(rc = store_begin(r->dst))) p.open = 1;
    if (!rc) rc = tb->walk(r->src, &p);
    if (!rc && p.batched) rc = store_commit(r->dst);
    if (rc) {
        if (p.open) store_rollback(r->dst);
        return fail(r, MIGRATE_EFAIL, "copying the %s: %s", tb->name, store_err_str(rc));
    }
    r->tables[i] = p.t;
    *(uint64_t *)((char *)r->st + tb->stat) = p.t.rows;
    return 0;
}

/* ---- before writing anything ------------------------------------------------------------- */

static const char *sqlite_path(const char *url)
{
    return strncmp(url, "sqlite:", 7) ? NULL : url + 7;
}

/* 1 when a and b name one store: the same URL, or SQLite URLs of the same file. */
static int same_store(const char *a, const char *b)
{
    const char *pa = sqlite_path(a), *pb = sqlite_path(b);
    struct stat sa, sb;
    if (!strcmp(a, b)) return 1;
    return pa && pb && !stat(pa, &sa) && !stat(pb, &sb) && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int add_hunt(const char *hunt, void *arg)
{
    struct run *r = arg;
    if (r->n_hunts == r->hunts_cap) {
        size_t cap = r->hunts_cap ? 2 * r->hunts_cap : 64;
        char **h = realloc(r->hunts, cap * sizeof *h);
        struct tally *t = realloc(r->hunt_events, cap * sizeof *t);
        if (h) r->hunts = h;
        if (t) r->hunt_events = t;
        if (!h || !t) return STORE_EIO;
        r->hunts_cap = cap;
    }
    if (!(r->hunts[r->n_hunts] = strdup(hunt))) return STORE_EIO;
    r->hunt_events[r->n_hunts++] = (struct tally){0};
    return 0;
}

static int first_hunt(const char *hunt, void *arg)
{
    snprintf(arg, VX_ID_MAX + 1, "%s", hunt);
    return FOUND;
}

/* What s holds first, as "events of hunt 'x'" or a table's name; "" when s is empty. -1
 * when it cannot be read. */
static int first_thing(struct store *s, char *what, size_t cap)
{
    char hunt[VX_ID_MAX + 1] = "";
    int rc = store_each_hunt(s, first_hunt, hunt);
    what[0] = '\0';
    if (rc == FOUND) snprintf(what, cap, "events of hunt '%s'", hunt);
    for (size_t i = 0; rc != FOUND && i < N_TABLES; i++) {
        struct pass p = {.first_only = 1};
        if ((rc = TABLES[i].walk(s, &p)) == FOUND) snprintf(what, cap, "%s", TABLES[i].name);
    }
    return rc == FOUND || rc == 0 ? 0 : -1;
}

/* Holds url's store (store_lock) and opens it. */
static int open_one(struct run *r, const char *url, const char *which, struct store **out)
{
    char why[1024];
    int rc = store_lock(url, why, sizeof why);
    if (!rc) rc = store_open(url, STORE_FSYNC_ALWAYS, out, why, sizeof why);
    return rc ? fail(r, MIGRATE_EINPUT, "%s store: %s", which, why) : 0;
}

/* Every check that comes before the first write; then the source's hunts are listed. */
static int prepare(struct run *r)
{
    const char *path = sqlite_path(r->cfg->from);
    char what[128];
    if (same_store(r->cfg->from, r->cfg->to))
        return fail(r, MIGRATE_EINPUT, "--from and --to are the same store (%s)", r->from);
    /* SQLite would make an empty store of a mistyped path */
    if (path && strcmp(path, ":memory:") && access(path, F_OK))
        return fail(r, MIGRATE_EINPUT, "source store: no store at %s", path);
    if (open_one(r, r->cfg->from, "source", &r->src) || open_one(r, r->cfg->to, "target", &r->dst))
        return MIGRATE_EINPUT;
    if (first_thing(r->dst, what, sizeof what))
        return fail(r, MIGRATE_EINPUT, "target store %s cannot be read", r->to);
    if (what[0])
        return fail(r, MIGRATE_EINPUT,
                    "target store %s is not empty (it holds %s): veltrix migrate copies into "
                    "an empty store only", r->to, what);
    if (first_thing(r->src, what, sizeof what))
        return fail(r, MIGRATE_EINPUT, "source store %s cannot be read", r->from);
    if (!what[0])
        return fail(r, MIGRATE_EINPUT, "source store %s holds nothing to migrate", r->from);
    int rc = store_each_hunt(r->src, add_hunt, r);
    for (size_t i = 0; !rc && i < r->n_hunts; i++) {
        uint64_t last = 0;
        rc = store_last_seq(r->src, r->hunts[i], &last);
        r->events_total += last;
    }
    if (rc) return fail(r, MIGRATE_EFAIL, "listing the source's hunts: %s", store_err_str(rc));
    return 0;
}

/* ---- verification ------------------------------------------------------------------------- */

/* hunt from both stores by recovery.c: equal seqs and engine digests. */
static int verify_hunt(struct run *r, const char *hunt)
{
    const struct recovery_config rc = {.ignore_snapshots = 0, .fsync_always = 1};
    struct recovery_stats st = {0};
    struct hunt *a = NULL, *b = NULL;
    uint64_t from;
    char why[1024];
    if (recovery_load_hunt(r->src, &rc, hunt, &a, &from, &st, why, sizeof why))
        return fail(r, MIGRATE_EFAIL, "verify: hunt '%s' does not recover from the source: %s",
                    hunt, why);
    int code = 0;
    if (recovery_load_hunt(r->dst, &rc, hunt, &b, &from, &st, why, sizeof why)) {
        code = fail(r, MIGRATE_EMISMATCH, "verify: hunt '%s' does not recover from the target: %s",
                    hunt, why);
    } else if (engine_seq(a) != engine_seq(b) || engine_digest(a) != engine_digest(b)) {
        code = fail(r, MIGRATE_EMISMATCH,
                    "verify: hunt '%s' differs: seq %llu, digest %016llx in the source; seq "
                    "%llu, digest %016llx in the target", hunt, (unsigned long long)engine_seq(a),
                    (unsigned long long)engine_digest(a), (unsigned long long)engine_seq(b),
                    (unsigned long long)engine_digest(b));
    }
    engine_hunt_destroy(a);
    if (b) engine_hunt_destroy(b);
    return code;
}

static int count_hunt(const char *hunt, void *arg)
{
    (*(uint64_t *)arg)++;
    return 0;
}

/* Reading a log back: rows up to limit are committed; the next round starts at next. */
struct readback {
    struct tally t;
    uint64_t limit, next;
};

static int readback_event(const struct store_event *e, void *arg)
{
    struct readback *rb = arg;
    if (e->seq > rb->limit) return FOUND; /* not yet committed when asked: next round */
    rb->next = e->seq + 1;
    return tally_event(e, &rb->t);
}

/* Waits until hunt i's log is committed beyond seq next, or whole: the highest committed
 * seq (UINT64_MAX: whole), or 0 when the copy failed. */
static uint64_t wait_committed(struct committed *c, size_t i, uint64_t next)
{
    pthread_mutex_lock(&c->mu);
    while (!(c->flags & COMMITTED_ABORTED) && (c->hunt < i || (c->hunt == i && c->seq < next)))
        pthread_cond_wait(&c->cv, &c->mu);
    uint64_t limit = c->flags & COMMITTED_ABORTED ? 0 : c->hunt > i ? UINT64_MAX : c->seq;
    pthread_mutex_unlock(&c->mu);
    return limit;
}

/* Hunt i's log read back from the target as the copy commits it, row for row (count and
 * digest) against the source's. */
static int read_back(struct run *r, size_t i)
{
    struct readback rb = {{0}, 0, 1};
    const struct tally *want = &r->hunt_events[i];
    do {
        if (!(rb.limit = wait_committed(r->committed, i, rb.next))) return MIGRATE_EFAIL;
        int rc = store_each_event(r->dst, r->hunts[i], rb.next, readback_event, &rb);
        if (rc && rc != FOUND)
            return fail(r, MIGRATE_EFAIL, "verify: reading the events of hunt '%s': %s",
                        r->hunts[i], store_err_str(rc));
    } while (rb.limit != UINT64_MAX);
    if (rb.t.rows != want->rows || rb.t.sum != want->sum)
        return fail(r, MIGRATE_EMISMATCH,
                    "verify: hunt '%s': %llu events in the source, %llu in the target%s",
                    r->hunts[i], (unsigned long long)want->rows, (unsigned long long)rb.t.rows,
                    rb.t.rows == want->rows ? ", with different contents" : "");
    return 0;
}

/* Once the snapshots are copied: as many hunts in the target, each recovered alike. */
static int verify_hunts(struct run *r)
{
    struct committed *c = r->committed;
    uint64_t n = 0;
    pthread_mutex_lock(&c->mu);
    while (!(c->flags & (COMMITTED_SNAPSHOTS | COMMITTED_ABORTED))) pthread_cond_wait(&c->cv, &c->mu);
    int aborted = c->flags & COMMITTED_ABORTED;
    pthread_mutex_unlock(&c->mu);
    if (aborted) return MIGRATE_EFAIL;
    int rc = store_each_hunt(r->dst, count_hunt, &n);
    if (rc) return fail(r, MIGRATE_EFAIL, "verify: listing the target's hunts: %s", store_err_str(rc));
    if (n != r->n_hunts)
        return fail(r, MIGRATE_EMISMATCH, "verify: %zu hunts in the source, %llu in the target",
                    r->n_hunts, (unsigned long long)n);
    for (size_t i = 0; !rc && i < r->n_hunts; i++) rc = verify_hunt(r, r->hunts[i]);
    return rc;
}

static int verify_tables(struct run *r)
{
    for (size_t i = 0; i < N_TABLES; i++) {
        struct pass p = {0};
        int rc = TABLES[i].walk(r->dst, &p);
        if (rc) return fail(r, MIGRATE_EFAIL, "verify: reading the target's %s: %s",
                            TABLES[i].name, store_err_str(rc));
        if (p.t.rows != r->tables[i].rows || p.t.sum != r->tables[i].sum)
            return fail(r, MIGRATE_EMISMATCH, "verify: %llu %s in the source, %llu in the target%s",
                        (unsigned long long)r->tables[i].rows, TABLES[i].name,
                        (unsigned long long)p.t.rows,
                        p.t.rows == r->tables[i].rows ? ", with different contents" : "");
    }
    return 0;
}

/* The checks of the logs run in a thread of their own, on handles of its own, beside the
 * copy: it reads each log back from the target as its batches commit (struct committed),
 * then, once the snapshots are there, recovers every hunt from both stores, while the
 * main thread copies the other tables; the target reads on one core while it writes on
 * the other. It works on a copy of the run (its handles, its message); of the shared
 * rows it reads only what `committed` says is final. */
struct checker {
    struct run r;
    pthread_t thread;
    int rc;
    char err[1024];
};

static void *check_logs(void *arg)
{
    struct checker *c = arg;
    int rc = 0;
    for (size_t i = 0; !rc && i < c->r.n_hunts; i++) rc = read_back(&c->r, i);
    c->rc = rc ? rc : verify_hunts(&c->r);
    return NULL;
}

static int checker_start(struct run *r, struct checker *c)
{
    char why[1024];
    c->r = *r;
    c->r.src = c->r.dst = NULL;
    c->r.err = c->err;
    c->r.errcap = sizeof c->err;
    c->r.wrote = 1; /* by the time it finds anything */
    if (store_open(r->cfg->from, STORE_FSYNC_ALWAYS, &c->r.src, why, sizeof why) ||
        store_open(r->cfg->to, STORE_FSYNC_ALWAYS, &c->r.dst, why, sizeof why) ||
        (errno = pthread_create(&c->thread, NULL, check_logs, c))) {
        store_close(c->r.src);
        store_close(c->r.dst);
        return fail(r, MIGRATE_EFAIL, "verify: %s", c->r.dst ? strerror(errno) : why);
    }
    return 0;
}

/* Joins the checker (stopping it first when rc is an error); its verdict unless rc
 * already is an error. */
static int checker_end(struct run *r, struct checker *c, int rc)
{
    if (rc) publish(r, 0, 0, COMMITTED_ABORTED);
    pthread_join(c->thread, NULL);
    store_close(c->r.src);
    store_close(c->r.dst);
    if (!rc && c->rc) snprintf(r->err, r->errcap, "%s", c->err);
    return rc ? rc : c->rc;
}

/* The checker beside the copy: events, snapshots, the other tables, their check. */
static int copy_and_verify(struct run *r)
{
    struct committed committed = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    struct checker c;
    r->committed = &committed;
    r->start_ns = now_ns();
    int rc = checker_start(r, &c);
    if (rc) return rc;
    rc = copy_events(r);
    if (!rc && !(rc = copy_table(r, 0))) publish(r, r->n_hunts, 0, COMMITTED_SNAPSHOTS);
    for (size_t i = 1; !rc && i < N_TABLES; i++) rc = copy_table(r, i);
    int64_t copied_ns = now_ns();
    r->st->hunts = r->n_hunts;
    r->st->copy_s = (double)(copied_ns - r->start_ns) / 1e9;
    if (!rc) rc = verify_tables(r);
    rc = checker_end(r, &c, rc);
    r->st->verify_s = (double)(now_ns() - copied_ns) / 1e9;
    return rc;
}

/* ---- the command -------------------------------------------------------------------------- */

static void summary(const struct run *r)
{
    const struct migrate_stats *s = r->st;
    FILE *f = r->cfg->out;
    if (!f) return;
    fprintf(f, "veltrix migrate: %s -> %s\n", r->from, r->to);
    fprintf(f, "copied %llu hunts, %llu events, %llu players, %llu refresh tokens, %llu "
               "idempotency records, %llu blobs, %llu tiles, %llu map versions, %llu snapshots "
               "in %.2f s (%.0f events/s)\n",
            (unsigned long long)s->hunts, (unsigned long long)s->events,
            (unsigned long long)s->players, (unsigned long long)s->refresh,
            (unsigned long long)s->idem, (unsigned long long)s->blobs,
            (unsigned long long)s->tiles, (unsigned long long)s->map_versions,
            (unsigned long long)s->snapshots, s->copy_s,
            s->copy_s > 0 ? (double)s->events / s->copy_s : 0);
    fprintf(f, "verified (beside the copy, then %.2f s more): every table's rows and every "
               "hunt's events equal in count and content; %llu hunts recovered from both stores "
               "(snapshot + log), engine digests equal\n", s->verify_s,
            (unsigned long long)s->hunts);
}

int migrate_run(const struct migrate_config *cfg, struct migrate_stats *st, char *err,
                size_t errcap)
{
    struct run r = {.cfg = cfg, .st = st, .err = err, .errcap = errcap};
    *st = (struct migrate_stats){0};
    err[0] = '\0';
    store_url_redact(cfg->from, r.from, sizeof r.from);
    store_url_redact(cfg->to, r.to, sizeof r.to);
    int rc = prepare(&r);
    if (!rc) rc = copy_and_verify(&r);
    if (!rc) summary(&r);
    store_close(r.src);
    store_close(r.dst);
    for (size_t i = 0; i < r.n_hunts; i++) free(r.hunts[i]);
    free(r.hunts);
    free(r.hunt_events);
    free(r.b.ev);
    free(r.b.bytes);
    return rc;
}
