/* idem.c — see idem.h. Entries sit in a hash map and in a FIFO by creation time; expiry
 * and the memory cap both pop the FIFO's oldest end. Pending entries are never evicted
 * (their requests are in flight; the log's queue cap bounds how many there are). */
#include "idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

struct idem {
    struct hmap map;
    struct idem_entry *oldest, *newest;
    size_t max;
    int64_t retention_ms;
    int64_t evicted_young_until; /* an entry created before this was evicted early */
    idem_fallback_fn fallback;
    void *fallback_ctx;
    struct idem_stats stats;
};

struct idem *idem_create(size_t entries_max, int64_t retention_ms)
{
    struct idem *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    hmap_init(&t->map);
    t->max = entries_max;
    t->retention_ms = retention_ms;
    return t;
}

static void free_entry(struct idem_entry *e)
{
    free(e->hkey);
    free(e->body);
    free(e);
}

void idem_destroy(struct idem *t)
{
    if (!t) return;
    for (struct idem_entry *e = t->oldest, *n; e; e = n) {
        n = e->newer;
        free_entry(e);
    }
    hmap_deinit(&t->map);
    free(t);
}

void idem_set_fallback(struct idem *t, idem_fallback_fn fn, void *ctx)
{
    t->fallback = fn;
    t->fallback_ctx = ctx;
}

static void unlink_entry(struct idem *t, struct idem_entry *e)
{
    if (e->older) e->older->newer = e->newer;
    else t->oldest = e->newer;
    if (e->newer) e->newer->older = e->older;
    else t->newest = e->older;
    hmap_del(&t->map, e->hkey, e->hkey_len);
    t->stats.entries--;
}

/* Drops expired entries, and the oldest done ones while over the cap. */
static void trim(struct idem *t, int64_t now_ms)
{
    struct idem_entry *e;
    while ((e = t->oldest) && !e->pending &&
           (e->created_ms < now_ms - t->retention_ms || t->stats.entries > t->max)) {
        if (e->created_ms >= now_ms - t->retention_ms) {
            t->stats.evicted++;
            if (e->created_ms >= t->evicted_young_until) t->evicted_young_until = e->created_ms + 1;
        }
        unlink_entry(t, e);
        free_entry(e);
    }
}

static char *make_hkey(const char *scope, const char *key, size_t *len)
{
    size_t sl = strlen(scope), kl = strlen(key);
    char *k = malloc(sl + kl + 2);
    if (!k) return NULL;
    memcpy(k, scope, sl);
    k[sl] = '\n';
    memcpy(k + sl + 1, key, kl + 1);
    *len = sl + kl + 1;
    return k;
}

static struct idem_entry *insert(struct idem *t, const char *scope, const char *key,
                                 const uint8_t req_hash[32], int64_t created_ms)
{
    struct idem_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->hkey = make_hkey(scope, key, &e->hkey_len)) ||
        hmap_put(&t->map, e->hkey, e->hkey_len, e)) {
        if (e) free(e->hkey);
        free(e);
        return NULL;
    }
    memcpy(e->req_hash, req_hash, 32);
    e->created_ms = created_ms;
    e->older = t->newest;
    if (t->newest) t->newest->newer = e;
    else t->oldest = e;
    t->newest = e;
    t->stats.entries++;
    return e;
}

struct idem_entry *idem_find(struct idem *t, const char *scope, const char *key, int64_t now_ms,
                             int *failed)
{
    size_t len;
    if (failed) *failed = 0;
    char *hk = make_hkey(scope, key, &len);
    if (!hk) return NULL;
    struct idem_entry *e = hmap_get(&t->map, hk, len);
    free(hk);
    struct idem_entry *stale = NULL;
    if (e && e->created_ms < now_ms - t->retention_ms && !e->pending) stale = e, e = NULL;
    if (e || !t->fallback || t->evicted_young_until <= now_ms - t->retention_ms) return e;
    /* Evicted early under the cap: the store still has it. */
    uint8_t h[32];
    int status;
    char *body;
    size_t blen;
    int64_t created;
    t->stats.fallback_lookups++;
    int found = t->fallback(t->fallback_ctx, scope, key, h, &status, &body, &blen, &created);
    if (found < 0 && failed) *failed = 1;
    if (found != 1) return NULL;
    /* The store keeps rows past the retention until they are pruned: such a row is gone. */
    int fresh = created >= now_ms - t->retention_ms;
    if (fresh && stale) { /* the store has a newer record of this key */
        unlink_entry(t, stale);
        free_entry(stale);
    }
    if (fresh) idem_load(t, scope, key, h, status, body, blen, created);
    free(body);
    if (!fresh) return NULL;
    if (!(hk = make_hkey(scope, key, &len))) return NULL;
    e = hmap_get(&t->map, hk, len);
    free(hk);
    return e && e->created_ms >= now_ms - t->retention_ms ? e : NULL;
}

struct idem_entry *idem_begin(struct idem *t, const char *scope, const char *key,
                              const uint8_t req_hash[32], int64_t now_ms)
{
    trim(t, now_ms);
    size_t hl;
    char *hk = make_hkey(scope, key, &hl);
    if (!hk) return NULL;
    struct idem_entry *old = hmap_get(&t->map, hk, hl);
    free(hk);
    if (old && !old->pending) { /* expired but not trimmed yet: the new one replaces it */
        unlink_entry(t, old);
        free_entry(old);
    }
    struct idem_entry *e = insert(t, scope, key, req_hash, now_ms);
    if (e) e->pending = 1;
    return e;
}

int idem_finish(struct idem *t, struct idem_entry *e, int status, const char *body, size_t len)
{
    e->body = malloc(len + 1);
    if (!e->body) return -1;
    memcpy(e->body, body, len);
    e->body[len] = '\0';
    e->body_len = len;
    e->status = status;
    e->pending = 0;
    return 0;
}

void idem_abort(struct idem *t, struct idem_entry *e)
{
    unlink_entry(t, e);
    free_entry(e);
}

int idem_load(struct idem *t, const char *scope, const char *key, const uint8_t req_hash[32],
              int status, const char *body, size_t len, int64_t created_ms)
{
    size_t hl;
    char *hk = make_hkey(scope, key, &hl);
    if (!hk) return -1;
    struct idem_entry *old = hmap_get(&t->map, hk, hl);
    free(hk);
    if (old) return 0;
    struct idem_entry *e = insert(t, scope, key, req_hash, created_ms);
    if (!e) return -1;
    int rc = idem_finish(t, e, status, body, len);
    trim(t, created_ms);
    return rc;
}

void idem_count(struct idem *t, int replayed)
{
    if (replayed) t->stats.replayed++;
    else t->stats.mismatched++;
}

const struct idem_stats *idem_stats(const struct idem *t) { return &t->stats; }
