/* leaderboard.h — an order-statistic set of a hunt's scoring players.
 *
 * Order: score descending, then the seq at which that score was reached ascending
 * (earlier first), then member ascending. Members are dense hunt-local player indexes
 * (0, 1, 2, ...) handed out by the engine. Every operation is O(log n); nothing is ever
 * recomputed in bulk, so an answer always reflects every update made before it.
 * Pure data structure: no I/O, no clock, no locks (the owning thread calls it). */
#ifndef VELTRIX_LEADERBOARD_H
#define VELTRIX_LEADERBOARD_H
#include <stddef.h>
#include <stdint.h>

struct lb; /* opaque */

struct lb_entry {
    uint32_t member;
    int64_t score;
    uint64_t seq;  /* when the score was reached */
    uint64_t rank; /* 1-based */
};

/* Returns NULL when out of memory. */
struct lb *lb_create(void);
void lb_destroy(struct lb *lb);

/* Inserts member, or moves it to its new (score, seq). 0, or -ENOMEM. */
int lb_set(struct lb *lb, uint32_t member, int64_t score, uint64_t seq);
/* Removes member if present. */
void lb_remove(struct lb *lb, uint32_t member);

/* 1-based rank of member, 0 when absent. */
uint64_t lb_rank(const struct lb *lb, uint32_t member);
/* Number of members. */
size_t lb_count(const struct lb *lb);
/* Copies up to limit entries starting at 0-based position offset, in order; returns
 * how many were written. */
size_t lb_range(const struct lb *lb, size_t offset, size_t limit, struct lb_entry *out);
/* Bytes of memory held (for metrics and the memory benchmark). */
size_t lb_memory_bytes(const struct lb *lb);
/* Walks the whole structure, O(n), verifying every invariant (for tests and fuzzing).
 * 0 when all hold, else minus the leaderboard.c line of the first check that failed. */
int lb_check(const struct lb *lb);

#endif
