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

void hmap_deinit(struct hmap *m)
{
    if (m->buckets)
        for (size_t i = 0; i <= m->mask; i++)
            for (struct hmap_node *n = m->buckets[i], *next; n; n = next) {
                next = n->next;
                free(n);
            }
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

static struct hmap_node **find(const struct hmap *m, const void *key, size_t klen, uint64_t h)
{
    struct hmap_node **pp = &m->buckets[h & m->mask];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            break;
    return pp;
}

void *hmap_get(const struct hmap *m, const void *key, size_t klen)
{
    if (!m->buckets) return NULL;
    struct hmap_node *n = *find(m, key, klen, hmap_hash(key, klen));
    return n ? n->value : NULL;
}

static int grow(struct hmap *m)
{
    size_t size = m->buckets ? (m->mask + 1) * 2 : 16;
    struct hmap_node **b = calloc(size, sizeof *b);
    if (!b) return -ENOMEM;
    if (m->buckets)
        for (size_t i = 0; i <= m->mask; i++)
            for (struct hmap_node *n = m->buckets[i], *next; n; n = next) {
                next = n->next;
                n->next = b[n->hash & (size - 1)];
                b[n->hash & (size - 1)] = n;
            }
    free(m->buckets);
    m->buckets = b;
    m->mask = size - 1;
    return 0;
}

int hmap_put(struct hmap *m, const void *key, size_t klen, void *value)
{
    if ((!m->buckets || m->count > m->mask) && grow(m)) return -ENOMEM;
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
    struct hmap_node **pp = find(m, key, klen, hmap_hash(key, klen)), *n = *pp;
    if (!n) return NULL;
    void *v = n->value;
    *pp = n->next;
    free(n);
    m->count--;
    return v;
}

void hmap_each(const struct hmap *m, void (*fn)(void *value, void *ctx), void *ctx)
{
    if (!m->buckets) return;
    for (size_t i = 0; i <= m->mask; i++)
        for (struct hmap_node *n = m->buckets[i]; n; n = n->next) fn(n->value, ctx);
}
