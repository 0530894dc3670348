/* test_leaderboard.c — unit tests for leaderboard.c: ordering and tie-breaks, absent
 * members, removal, ranges past the end; randomized comparisons with a brute-force model
 * (qsort of the live members) under fixed seeds, small and at 100K members grown then
 * shrunk; removal from either end, so nodes borrow both ways as well as merge; and
 * lb_check() of every internal invariant at each checkpoint. Ends by printing (not
 * asserting) the speed and memory at 1M members, in CPU time. */
#include "harness.h"
#include "leaderboard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* xorshift64*: a fixed, seedable PRNG so every run is reproducible. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

static int range_matches(struct lb *lb, size_t offset, size_t limit, const uint32_t *members,
                         const int64_t *scores, const uint64_t *seqs, size_t n)
{
    struct lb_entry out[16];
    if (limit > 16) return 0;
    if (lb_range(lb, offset, limit, out) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (out[i].member != members[i] || out[i].score != scores[i] || out[i].seq != seqs[i] ||
            out[i].rank != offset + i + 1)
            return 0;
    return 1;
}

TEST(test_order_and_ties)
{
    struct lb *lb = lb_create();
    CHECK(lb != NULL);
    CHECK_EQ_INT(lb_set(lb, 0, 10, 5), 0);
    CHECK_EQ_INT(lb_set(lb, 1, 20, 9), 0); /* higher score first */
    CHECK_EQ_INT(lb_set(lb, 2, 10, 3), 0); /* equal score: lower seq first */
    CHECK_EQ_INT(lb_set(lb, 4, 10, 3), 0); /* equal score and seq: lower member first */
    CHECK_EQ_INT(lb_set(lb, 3, 10, 3), 0);
    CHECK_EQ_INT(lb_set(lb, 5, -7, 0), 0);
    CHECK_EQ_INT(lb_count(lb), 6);
    uint32_t m[] = {1, 2, 3, 4, 0, 5};
    int64_t s[] = {20, 10, 10, 10, 10, -7};
    uint64_t q[] = {9, 3, 3, 3, 5, 0};
    CHECK(range_matches(lb, 0, 16, m, s, q, 6));
    CHECK(range_matches(lb, 2, 3, m + 2, s + 2, q + 2, 3));
    for (size_t i = 0; i < 6; i++)
        CHECK_EQ_INT(lb_rank(lb, m[i]), i + 1);
    CHECK_EQ_INT(lb_check(lb), 0);
    lb_destroy(lb);
}

TEST(test_absent_and_move)
{
    struct lb *lb = lb_create();
    CHECK_EQ_INT(lb_rank(lb, 0), 0);
    CHECK_EQ_INT(lb_rank(lb, 123456), 0);
    CHECK_EQ_INT(lb_count(lb), 0);
    CHECK_EQ_INT(lb_range(lb, 0, 0, NULL), 0);
    size_t empty_bytes = lb_memory_bytes(lb);
    CHECK(empty_bytes > 0);
    CHECK_EQ_INT(lb_set(lb, 1000, 5, 1), 0); /* members may arrive out of order */
    CHECK_EQ_INT(lb_set(lb, 7, 6, 2), 0);
    CHECK(lb_memory_bytes(lb) > empty_bytes);
    CHECK_EQ_INT(lb_rank(lb, 7), 1);
    CHECK_EQ_INT(lb_rank(lb, 1000), 2);
    CHECK_EQ_INT(lb_rank(lb, 8), 0);         /* within storage, never set */
    CHECK_EQ_INT(lb_set(lb, 1000, 9, 3), 0); /* move up */
    CHECK_EQ_INT(lb_rank(lb, 1000), 1);
    CHECK_EQ_INT(lb_set(lb, 1000, 9, 3), 0); /* same key: no change */
    CHECK_EQ_INT(lb_count(lb), 2);
    CHECK_EQ_INT(lb_set(lb, 1000, INT64_MIN, UINT64_MAX), 0); /* move to the very bottom */
    CHECK_EQ_INT(lb_set(lb, 7, INT64_MAX, 0), 0);
    CHECK_EQ_INT(lb_rank(lb, 1000), 2);
    CHECK_EQ_INT(lb_rank(lb, 7), 1);
    CHECK_EQ_INT(lb_check(lb), 0);
    lb_destroy(lb);
    lb_destroy(NULL);
}

TEST(test_remove)
{
    struct lb *lb = lb_create();
    for (uint32_t i = 0; i < 100; i++)
        CHECK_EQ_INT(lb_set(lb, i, i, 0), 0); /* member 99 ranks first */
    lb_remove(lb, 50);
    lb_remove(lb, 50);   /* twice is harmless */
    lb_remove(lb, 5000); /* never had storage */
    CHECK_EQ_INT(lb_count(lb), 99);
    CHECK_EQ_INT(lb_rank(lb, 50), 0);
    CHECK_EQ_INT(lb_rank(lb, 51), 49);
    CHECK_EQ_INT(lb_rank(lb, 49), 50);
    for (uint32_t i = 0; i < 100; i++)
        lb_remove(lb, i);
    CHECK_EQ_INT(lb_count(lb), 0);
    CHECK_EQ_INT(lb_rank(lb, 99), 0);
    CHECK_EQ_INT(lb_set(lb, 50, 1, 1), 0); /* removed members can come back */
    CHECK_EQ_INT(lb_rank(lb, 50), 1);
    CHECK_EQ_INT(lb_check(lb), 0);
    lb_destroy(lb);
}

TEST(test_range_bounds)
{
    struct lb *lb = lb_create();
    struct lb_entry out[8];
    for (uint32_t i = 0; i < 5; i++)
        lb_set(lb, i, 100 - i, 0);
    CHECK_EQ_INT(lb_range(lb, 5, 8, out), 0);
    CHECK_EQ_INT(lb_range(lb, 1000, 8, out), 0);
    CHECK_EQ_INT(lb_range(lb, SIZE_MAX, 8, out), 0);
    CHECK_EQ_INT(lb_range(lb, 3, 8, out), 2);
    CHECK_EQ_INT(out[0].member, 3);
    CHECK_EQ_INT(out[0].rank, 4);
    CHECK_EQ_INT(out[1].member, 4);
    CHECK_EQ_INT(out[1].rank, 5);
    CHECK_EQ_INT(lb_range(lb, 0, 0, out), 0);
    CHECK_EQ_INT(lb_range(lb, 4, SIZE_MAX, out), 1);
    CHECK_EQ_INT(lb_check(lb), 0);
    lb_destroy(lb);
}

/* The brute-force model: which members are present and with what key. */
static struct model {
    uint32_t members;
    char *present;
    int64_t *score;
    uint64_t *seq;
    uint32_t *order;   /* present members, sorted by model_sorted() */
    uint64_t *rank_of; /* 0 when absent */
} model;

static void model_init(uint32_t members)
{
    model.members = members;
    model.present = calloc(members, 1);
    model.score = calloc(members, sizeof(int64_t));
    model.seq = calloc(members, sizeof(uint64_t));
    model.order = calloc(members, sizeof(uint32_t));
    model.rank_of = calloc(members, sizeof(uint64_t));
}

static void model_deinit(void)
{
    free(model.present);
    free(model.score);
    free(model.seq);
    free(model.order);
    free(model.rank_of);
}

static int model_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    if (model.score[a] != model.score[b]) return model.score[a] > model.score[b] ? -1 : 1;
    if (model.seq[a] != model.seq[b]) return model.seq[a] < model.seq[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static size_t model_sorted(void)
{
    size_t n = 0;
    for (uint32_t m = 0; m < model.members; m++) {
        model.rank_of[m] = 0;
        if (model.present[m]) model.order[n++] = m;
    }
    qsort(model.order, n, sizeof(uint32_t), model_cmp);
    for (size_t i = 0; i < n; i++)
        model.rank_of[model.order[i]] = i + 1;
    return n;
}

static int entry_matches(const struct lb_entry *e, size_t i)
{
    uint32_t m = model.order[i];
    return e->member == m && e->score == model.score[m] && e->seq == model.seq[m] &&
           e->rank == i + 1;
}

/* Compares count, `ranks` random ranks (every rank when 0) and `ranges` random ranges
 * (the whole order when 0) with the model; returns 0 at the first mismatch. */
static int model_check(struct lb *lb, int ranks, int ranges)
{
    struct lb_entry out[40];
    size_t n = model_sorted();
    if (lb_count(lb) != n || lb_check(lb) != 0) return 0;
    for (uint32_t i = 0; i < (ranks ? (uint32_t)ranks : model.members + 10); i++) {
        uint32_t m = ranks ? (uint32_t)rng_below(model.members + 10) : i;
        if (lb_rank(lb, m) != (m < model.members ? model.rank_of[m] : 0)) return 0;
    }
    for (size_t start = 0; ranges == 0 && start < n + 40; start += 40) {
        size_t got = lb_range(lb, start, 40, out);
        if (got != (start >= n ? 0 : n - start < 40 ? n - start : 40)) return 0;
        for (size_t j = 0; j < got; j++)
            if (!entry_matches(&out[j], start + j)) return 0;
    }
    for (int i = 0; i < ranges; i++) {
        size_t offset = rng_below(n + 5), limit = rng_below(41);
        size_t want = offset >= n ? 0 : (n - offset < limit ? n - offset : limit);
        if (lb_range(lb, offset, limit, out) != want) return 0;
        for (size_t j = 0; j < want; j++)
            if (!entry_matches(&out[j], offset + j)) return 0;
    }
    return 1;
}

struct random_run {
    uint64_t seed;
    uint32_t members;
    int ops;
    int check_every;    /* ops between checks; small runs check a sample, large ones all */
    int64_t score_span; /* small: many equal scores, so the tie-breaks get exercised */
    uint64_t seq_span;
    unsigned remove_pct; /* in the first half; the second half removes 70% to shrink */
};

static void random_op(struct lb *lb, const struct random_run *r, int op, int *ok)
{
    uint32_t m = (uint32_t)rng_below(r->members);
    if (rng_below(100) < (op < r->ops / 2 ? r->remove_pct : 70)) {
        lb_remove(lb, m);
        model.present[m] = 0;
        return;
    }
    int64_t score = (int64_t)rng_below((uint64_t)r->score_span) - r->score_span / 2;
    uint64_t seq = rng_below(r->seq_span);
    if (rng_below(1000) == 0) score = rng_below(2) ? INT64_MAX : INT64_MIN;
    /* Sometimes a small move up, which often stays within its leaf. */
    if (rng_below(4) == 0 && model.present[m] && model.score[m] < INT64_MAX - 2)
        score = model.score[m] + (int64_t)rng_below(3);
    *ok = *ok && lb_set(lb, m, score, seq) == 0;
    model.present[m] = 1;
    model.score[m] = score;
    model.seq[m] = seq;
}

static int run_random(const struct random_run *r)
{
    struct lb *lb = lb_create();
    int ok = lb != NULL, large = r->members > 10000;
    rng_state = r->seed;
    model_init(r->members);
    for (int op = 0; op < r->ops && ok; op++) {
        random_op(lb, r, op, &ok);
        if (ok && op % r->check_every == 0)
            ok = large ? model_check(lb, 0, 0) : model_check(lb, 20, 3);
        if (!ok) fprintf(stderr, "  mismatch: seed %llu op %d\n", (unsigned long long)r->seed, op);
    }
    ok = ok && model_check(lb, 0, 0);
    for (uint32_t m = 0; m < r->members; m++) /* drain */
        lb_remove(lb, m);
    ok = ok && lb_count(lb) == 0 && lb_range(lb, 0, 1, &(struct lb_entry){0}) == 0;
    lb_destroy(lb);
    model_deinit();
    return ok;
}

TEST(test_random_vs_model)
{
    static const uint64_t seeds[] = {1, 42, 0x9E3779B97F4A7C15ULL, 20240601, 777};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        CHECK(run_random(&(struct random_run){seeds[i], 1500, 40000, 7, 8, 4, 30}));
        CHECK(run_random(&(struct random_run){seeds[i] + 1, 1500, 40000, 7, 1000000, 1000000, 30}));
    }
}

/* Enough members for three inner levels, grown then shrunk, so inner nodes split,
 * borrow and merge; every rank and the whole order are checked at each checkpoint. */
TEST(test_random_vs_model_large)
{
    CHECK(run_random(&(struct random_run){5, 100000, 400000, 40000, 1000000, 1000000, 10}));
    CHECK(run_random(&(struct random_run){6, 100000, 400000, 40000, 16, 1000, 10}));
}

/* Grows to all members then deletes everything, in ascending and descending score
 * order: the patterns that unbalance a naive tree. */
TEST(test_sorted_inserts)
{
    struct lb *lb = lb_create();
    const uint32_t n = 20000;
    for (uint32_t i = 0; i < n; i++)
        lb_set(lb, i, i, 0);
    CHECK_EQ_INT(lb_rank(lb, 0), n);
    CHECK_EQ_INT(lb_rank(lb, n - 1), 1);
    for (uint32_t i = 0; i < n; i++)
        lb_set(lb, i, -(int64_t)i, 0);
    CHECK_EQ_INT(lb_rank(lb, 0), 1);
    for (uint32_t i = 0; i < n / 2; i++)
        lb_remove(lb, i);
    CHECK_EQ_INT(lb_count(lb), n / 2);
    CHECK_EQ_INT(lb_rank(lb, n / 2), 1);
    for (uint32_t i = n; i-- > 0;)
        lb_remove(lb, i);
    CHECK_EQ_INT(lb_count(lb), 0);
    CHECK_EQ_INT(lb_check(lb), 0);
    lb_destroy(lb);
}

/* Members [lo, hi) with score = member: member m ranks hi - m. */
static int ends_match(struct lb *lb, uint32_t lo, uint32_t hi)
{
    struct lb_entry out[8];
    size_t offset = (hi - lo) / 2;
    if (lb_check(lb) != 0 || lb_count(lb) != hi - lo || lb_rank(lb, lo) != hi - lo ||
        lb_rank(lb, hi - 1) != 1 || lb_rank(lb, hi) != 0 || (lo > 0 && lb_rank(lb, lo - 1) != 0))
        return 0;
    size_t got = lb_range(lb, offset, 8, out);
    for (size_t i = 0; i < got; i++)
        if (out[i].member != hi - 1 - offset - i || out[i].rank != offset + i + 1) return 0;
    return got == (hi - lo - offset < 8 ? hi - lo - offset : 8);
}

/* Every rank and the whole order, for members [lo, hi) with score = member. */
static int all_ranks_match(struct lb *lb, uint32_t lo, uint32_t hi)
{
    struct lb_entry out[64];
    size_t offset = 0, got;
    for (uint32_t m = lo; m < hi; m++)
        if (lb_rank(lb, m) != hi - m) return 0;
    while ((got = lb_range(lb, offset, 64, out)) > 0)
        for (size_t i = 0; i < got; i++, offset++)
            if (out[i].member != hi - 1 - offset || out[i].rank != offset + 1) return 0;
    return offset == hi - lo;
}

/* Removing from one end empties the nodes on that side while their neighbours stay
 * fuller, so leaves and inner nodes borrow in both directions, not only merge. */
TEST(test_shrink_from_ends)
{
    struct lb *lb = lb_create();
    const uint32_t n = 200000;
    uint32_t lo = 0, hi = n;
    for (uint32_t i = 0; i < n; i++) { /* in a scrambled order: nodes ~70% full */
        uint32_t m = (uint32_t)((uint64_t)i * 100003 % n);
        lb_set(lb, m, m, 0);
    }
    CHECK(ends_match(lb, lo, hi));
    while (hi - lo > n / 2) { /* from the top */
        lb_remove(lb, --hi);
        if (hi % 997 == 0) CHECK(ends_match(lb, lo, hi));
    }
    while (hi - lo > n / 8) { /* from the bottom */
        lb_remove(lb, lo++);
        if (lo % 997 == 0) CHECK(ends_match(lb, lo, hi));
    }
    CHECK(ends_match(lb, lo, hi));
    CHECK(all_ranks_match(lb, lo, hi));
    for (uint32_t i = 0; i < n; i++) { /* back to full: inserts find their way down */
        uint32_t m = (uint32_t)((uint64_t)i * 100003 % n);
        lb_set(lb, m, m, 0);
    }
    CHECK(all_ranks_match(lb, 0, n));
    lb_destroy(lb);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: others share this machine */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Information only: prints speed and memory at 1M members. */
TEST(test_timing)
{
    const uint32_t n = 1000000;
    struct lb *lb = lb_create();
    struct lb_entry out[10];
    uint64_t sum = 0;
    rng_state = 12345;
    double t0 = now_s();
    for (uint32_t i = 0; i < n; i++)
        lb_set(lb, i, (int64_t)rng_below(1000000), i);
    double t1 = now_s();
    for (uint32_t i = 0; i < n; i++)
        sum += lb_rank(lb, (uint32_t)rng_below(n));
    double t2 = now_s();
    for (uint32_t i = 0; i < n; i++)
        lb_set(lb, (uint32_t)rng_below(n), (int64_t)rng_below(1000000), n + i);
    double t3 = now_s();
    for (uint32_t i = 0; i < n / 10; i++)
        sum += lb_range(lb, rng_below(n), 10, out);
    double t4 = now_s();
    CHECK_EQ_INT(lb_count(lb), n);
    printf("# 1M members (CPU time): insert 0->1M %.2fM/s, rank %.2fM/s, move %.2fM/s, range(10) "
           "%.2fM/s, "
           "%.1f bytes/member (checksum %llu)\n",
           n / (t1 - t0) / 1e6, n / (t2 - t1) / 1e6, n / (t3 - t2) / 1e6, n / 10 / (t4 - t3) / 1e6,
           (double)lb_memory_bytes(lb) / n, (unsigned long long)sum);
    CHECK_EQ_INT(lb_check(lb), 0);
    lb_destroy(lb);
}

int main(void)
{
    RUN(test_order_and_ties);
    RUN(test_absent_and_move);
    RUN(test_remove);
    RUN(test_range_bounds);
    RUN(test_random_vs_model);
    RUN(test_random_vs_model_large);
    RUN(test_sorted_inserts);
    RUN(test_shrink_from_ends);
    RUN(test_timing);
    return HARNESS_DONE();
}
