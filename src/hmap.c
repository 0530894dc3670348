/* hmap.c — see hmap.h. FNV-1a-style 64-bit hash with a final mix. */
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t hmap_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

void hmap_init(struct hmap *m) { memset(m, 0, sizeof *m); }

static void free_chains(struct hmap_node **b, size_t mask)
{
    for (size_t i = 0; b && i <= mask; i++)
        for (struct hmap_node *n = b[i], *next; n; n = next) {
            next = n->next;
            free(n);
        }
    free(b);
}

void hmap_deinit(struct hmap *m)
{
    free_chains(m->buckets, m->mask);
    free_chains(m->old, m->old_mask);
    memset(m, 0, sizeof *m);
}

static struct hmap_node **find_in(struct hmap_node **b, size_t mask, const void *key, size_t klen,
                                  uint64_t h)
{
    struct hmap_node **pp = &b[h & mask];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            break;
    return pp;
}

/* The link that holds key (in either table), or the empty link at the end of its chain
 * in the current table. */
static struct hmap_node **find(const struct hmap *m, const void *key, size_t klen, uint64_t h)
{
    if (m->old) {
        struct hmap_node **pp = find_in(m->old, m->old_mask, key, klen, h);
        if (*pp) return pp;
    }
    return find_in(m->buckets, m->mask, key, klen, h);
}

void *hmap_get(const struct hmap *m, const void *key, size_t klen)
{
    if (!m->buckets) return NULL;
    struct hmap_node *n = *find(m, key, klen, hmap_hash(key, klen));
    return n ? n->value : NULL;
}

/* Moves up to n buckets of the old table into the current one. */
static void rehash_step(struct hmap *m, size_t n)
{
    for (; m->old && n > 0; n--) {
        for (struct hmap_node *e = m->old[m->moved], *next; e; e = next) {
            next = e->next;
            e->next = m->buckets[e->hash & m->mask];
            m->buckets[e->hash & m->mask] = e;
        }
        m->old[m->moved] = NULL;
        if (++m->moved > m->old_mask) {
            free(m->old);
            m->old = NULL;
        }
    }
}

static int grow(struct hmap *m)
{
    rehash_step(m, SIZE_MAX); /* only when the table doubled again before the last move ended */
    size_t size = m->buckets ? (m->mask + 1) * 2 : 16;
    struct hmap_node **b = calloc(size, sizeof *b);
    if (!b) return -ENOMEM;
    m->old = m->buckets;
    m->old_mask = m->mask;
    m->moved = 0;
    m->buckets = b;
    m->mask = size - 1;
    return 0;
}

int hmap_put(struct hmap *m, const void *key, size_t klen, void *value)
{
    if ((!m->buckets || m->count > m->mask) && grow(m)) return -ENOMEM;
    rehash_step(m, 2);
    uint64_t h = hmap_hash(key, klen);
    struct hmap_node **pp = find(m, key, klen, h);
    if (*pp) {
        (*pp)->value = value;
        return 0;
    }
    struct hmap_node *n = malloc(sizeof *n + klen);
    if (!n) return -ENOMEM;
    n->next = NULL;
    n->hash = h;
    n->value = value;
    n->klen = klen;
    memcpy(n->key, key, klen);
    *pp = n;
    m->count++;
    return 0;
}

void *hmap_del(struct hmap *m, const void *key, size_t klen)
{
    if (!m->buckets) return NULL;
    rehash_step(m, 2);
    struct hmap_node **pp = find(m, key, klen, hmap_hash(key, klen)), *n = *pp;
    if (!n) return NULL;
    void *v = n->value;
    *pp = n->next;
    free(n);
    m->count--;
    return v;
}

static void each_in(struct hmap_node **b, size_t mask,
                    void (*fn)(const void *key, size_t klen, void *value, void *ctx), void *ctx)
{
    for (size_t i = 0; b && i <= mask; i++)
        for (struct hmap_node *n = b[i]; n; n = n->next) fn(n->key, n->klen, n->value, ctx);
}

void hmap_each_entry(const struct hmap *m,
                     void (*fn)(const void *key, size_t klen, void *value, void *ctx), void *ctx)
{
    if (m->old) each_in(m->old, m->old_mask, fn, ctx);
    each_in(m->buckets, m->mask, fn, ctx);
}

struct each_value {
    void (*fn)(void *value, void *ctx);
    void *ctx;
};

static void value_only(const void *key, size_t klen, void *value, void *ctx)
{
    struct each_value *e = ctx;
    e->fn(value, e->ctx);
}

void hmap_each(const struct hmap *m, void (*fn)(void *value, void *ctx), void *ctx)
{
    struct each_value e = {fn, ctx};
    hmap_each_entry(m, value_only, &e);
}
