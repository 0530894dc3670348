/* chests.c — chest pools (see chests.h).
 *
 * Layout: `bits` holds one bit per slot (1 = opened) in blocks of 8 words (512 slots);
 * the tail of the last block and any bit >= n are set, so they read as "opened" and
 * are never selected. `fenwick` is a Fenwick (binary indexed) tree over the blocks'
 * closed counts: selecting the k-th closed slot descends the tree in O(log blocks),
 * then scans at most 8 words of the block; claiming updates O(log blocks) counts.
 * Invariants: closed == n - popcount(bits below n), and the Fenwick prefix sums equal
 * the blocks' closed counts. */
#include "chests.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_WORDS 8
#define BLOCK_BITS (BLOCK_WORDS * 64)

static uint32_t closed_in_block(const uint64_t *w)
{
    uint32_t c = 0;
    for (int i = 0; i < BLOCK_WORDS; i++)
        c += 64 - (uint32_t)__builtin_popcountll(w[i]);
    return c;
}

/* Linear-time Fenwick construction from the blocks' closed counts. */
static void fenwick_build(struct chest_pool *p)
{
    uint32_t nb = p->n_blocks;
    for (uint32_t i = 1; i <= nb; i++)
        p->fenwick[i] += closed_in_block(p->bits + (size_t)(i - 1) * BLOCK_WORDS);
    for (uint32_t i = 1; i <= nb; i++) {
        uint32_t j = i + (i & -i);
        if (j <= nb) p->fenwick[j] += p->fenwick[i];
    }
}

int chest_pool_init(struct chest_pool *p, uint32_t n)
{
    assert(n <= CHEST_POOL_MAX);
    memset(p, 0, sizeof *p);
    if (n == 0) return 0;
    uint32_t nb = (n + BLOCK_BITS - 1) / BLOCK_BITS;
    size_t words = (size_t)nb * BLOCK_WORDS;
    p->bits = calloc(words, sizeof *p->bits);
    p->fenwick = calloc((size_t)nb + 1, sizeof *p->fenwick);
    if (!p->bits || !p->fenwick) {
        chest_pool_deinit(p);
        return -ENOMEM;
    }
    for (size_t i = n; i < words * 64; i++) /* at most 511 padding bits */
        p->bits[i / 64] |= 1ull << (i % 64);
    p->n = n;
    p->n_blocks = nb;
    p->closed = n;
    fenwick_build(p);
    return 0;
}

void chest_pool_deinit(struct chest_pool *p)
{
    free(p->bits);
    free(p->fenwick);
    memset(p, 0, sizeof *p);
}

int chest_pool_is_open(const struct chest_pool *p, uint32_t i)
{
    assert(i < p->n);
    return (int)((p->bits[i / 64] >> (i % 64)) & 1);
}

/* Position of the k-th (0-based) set bit of x; x has more than k set bits. */
static uint32_t select_in_word(uint64_t x, uint32_t k)
{
    for (; k; k--)
        x &= x - 1;
    return (uint32_t)__builtin_ctzll(x);
}

uint32_t chest_pool_select(const struct chest_pool *p, uint32_t k)
{
    assert(k < p->closed);
    uint32_t pos = 0, step = 1;
    while (step * 2 <= p->n_blocks)
        step *= 2;
    for (; step; step /= 2) {
        if (pos + step <= p->n_blocks && p->fenwick[pos + step] <= k) {
            pos += step;
            k -= p->fenwick[pos];
        }
    }
    const uint64_t *w = p->bits + (size_t)pos * BLOCK_WORDS; /* block pos (0-based) */
    for (uint32_t i = 0; i < BLOCK_WORDS; i++) {
        uint32_t c = 64 - (uint32_t)__builtin_popcountll(w[i]);
        if (k < c) return pos * BLOCK_BITS + i * 64 + select_in_word(~w[i], k);
        k -= c;
    }
    assert(!"chest_pool_select: counts out of sync with bits");
    return p->n;
}

void chest_pool_claim(struct chest_pool *p, uint32_t i)
{
    assert(i < p->n && !chest_pool_is_open(p, i));
    p->bits[i / 64] |= 1ull << (i % 64);
    p->closed--;
    for (uint32_t b = i / BLOCK_BITS + 1; b <= p->n_blocks; b += b & -b)
        p->fenwick[b]--;
}

uint32_t chest_pool_next_open(const struct chest_pool *p, uint32_t from)
{
    if (from >= p->n) return p->n;
    size_t wi = from / 64;
    uint64_t w = p->bits[wi] & (~0ull << (from % 64));
    size_t words = ((size_t)p->n + 63) / 64;
    while (!w && ++wi < words)
        w = p->bits[wi];
    if (!w) return p->n;
    uint64_t at = wi * 64 + (uint64_t)__builtin_ctzll(w);
    return at < p->n ? (uint32_t)at : p->n;
}

/* Opened slots in [0, to). */
static uint32_t count_open_below(const struct chest_pool *p, uint32_t to)
{
    uint32_t c = 0;
    for (uint32_t wi = 0; wi < to / 64; wi++)
        c += (uint32_t)__builtin_popcountll(p->bits[wi]);
    if (to % 64) c += (uint32_t)__builtin_popcountll(p->bits[to / 64] & ((1ull << (to % 64)) - 1));
    return c;
}

uint32_t chest_pool_count_open(const struct chest_pool *p, uint32_t from, uint32_t to)
{
    assert(from <= to && to <= p->n);
    return count_open_below(p, to) - count_open_below(p, from);
}

const uint64_t *chest_pool_words(const struct chest_pool *p, size_t *n_words)
{
    *n_words = ((size_t)p->n + 63) / 64;
    return p->bits;
}

size_t chest_pool_memory_bytes(const struct chest_pool *p)
{
    if (!p->n) return 0;
    return (size_t)p->n_blocks * BLOCK_WORDS * sizeof *p->bits +
           ((size_t)p->n_blocks + 1) * sizeof *p->fenwick;
}
