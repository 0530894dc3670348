/* hmap.h — a hash map from byte-string keys to pointers (chained, power-of-two buckets,
 * doubling at load 1). Keys are copied; values are the caller's. Single-threaded.
 * Growth is incremental (as in Redis's dict): after a doubling, each put or delete moves
 * a couple of buckets of the old table, and lookups search both tables meanwhile, so no
 * single insert pays for rehashing millions of entries (a pause on the event loop). */
#ifndef VELTRIX_HMAP_H
#define VELTRIX_HMAP_H
#include <stddef.h>
#include <stdint.h>

struct hmap_node {
    struct hmap_node *next;
    uint64_t hash;
    void *value;
    size_t klen;
    unsigned char key[];
};

struct hmap {
    struct hmap_node **buckets, **old; /* old: the table being moved out, or NULL */
    size_t mask, old_mask, count;
    size_t moved; /* old buckets [0, moved) are empty */
};

uint64_t hmap_hash(const void *key, size_t len);
void hmap_init(struct hmap *m);
/* Frees the nodes (not the values). */
void hmap_deinit(struct hmap *m);
void *hmap_get(const struct hmap *m, const void *key, size_t klen);
/* Inserts or replaces. 0 or -ENOMEM. */
int hmap_put(struct hmap *m, const void *key, size_t klen, void *value);
/* Removes; returns the value that was there or NULL. */
void *hmap_del(struct hmap *m, const void *key, size_t klen);
/* Calls fn for each value (do not modify the map meanwhile). */
void hmap_each(const struct hmap *m, void (*fn)(void *value, void *ctx), void *ctx);
/* The same with each entry's key. */
void hmap_each_entry(const struct hmap *m,
                     void (*fn)(const void *key, size_t klen, void *value, void *ctx), void *ctx);

#endif
