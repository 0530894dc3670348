/* chests.h — a pool of interchangeable-for-selection chests: slots 0..n-1, each closed
 * or opened, with "the k-th closed slot" in O(log n).
 *
 * The engine keeps one pool per (zone, requires) group. A pool costs one bit per chest
 * plus one 32-bit count per 512 chests, never a struct per chest, so a 10,000,000-chest
 * range is about 1.33 MB. A slot goes from closed to opened exactly once (claim) and
 * never back. Pure data structure: no I/O, single-threaded. */
#ifndef VELTRIX_CHESTS_H
#define VELTRIX_CHESTS_H
#include <stddef.h>
#include <stdint.h>

#define CHEST_POOL_MAX 20000000u /* slots per pool; bounds the uint32 arithmetic */

struct chest_pool {
    uint64_t *bits;    /* 1 = opened; bits at n and above are set (padding) */
    uint32_t *fenwick; /* Fenwick tree over 512-slot blocks of closed counts, 1-based */
    uint32_t n;        /* slots */
    uint32_t n_blocks;
    uint32_t closed; /* slots not yet opened */
};

/* A pool of n closed slots (n may be 0). 0 or -ENOMEM (the pool is then empty but
 * valid for chest_pool_deinit). */
int chest_pool_init(struct chest_pool *p, uint32_t n);
void chest_pool_deinit(struct chest_pool *p);

static inline uint32_t chest_pool_closed(const struct chest_pool *p)
{
    return p->closed;
}
/* 1 if slot i (< n) was opened. */
int chest_pool_is_open(const struct chest_pool *p, uint32_t i);
/* The slot of the k-th (0-based, in slot order) closed chest; k < chest_pool_closed. */
uint32_t chest_pool_select(const struct chest_pool *p, uint32_t k);
/* Marks closed slot i opened. Claiming an opened slot is a programmer error. */
void chest_pool_claim(struct chest_pool *p, uint32_t i);
/* The first opened slot >= from, or n when there is none (iterates opened slots). */
uint32_t chest_pool_next_open(const struct chest_pool *p, uint32_t from);
/* Number of opened slots in [from, to). */
uint32_t chest_pool_count_open(const struct chest_pool *p, uint32_t from, uint32_t to);
/* The opened-bitset words (ceil(n/64) of them, padding bits set), for digests. */
const uint64_t *chest_pool_words(const struct chest_pool *p, size_t *n_words);
size_t chest_pool_memory_bytes(const struct chest_pool *p);

#endif
