/* test_chests.c — chest pools against a brute-force model (a plain array of flags):
 * select, claim, is_open, next_open and count_open for sizes around the word (64) and
 * block (512) boundaries, random claim orders, ranges of millions, and the memory bound
 * of a 10,000,000-chest range. Randomness is a fixed-seed xorshift: runs reproduce. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chests.h"
#include "harness.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Checks every query of p against the model (opened[i] flags). */
static void check_model(const struct chest_pool *p, const uint8_t *opened, uint32_t n)
{
    uint32_t k = 0, open_count = 0, expect_next = n;
    CHECK_EQ_INT(p->n, n);
    for (uint32_t i = 0; i < n; i++) {
        CHECK_EQ_INT(chest_pool_is_open(p, i), opened[i]);
        if (!opened[i]) {
            uint32_t got = chest_pool_select(p, k++);
            if (got != i) {
                CHECK_EQ_INT(got, i);
                return;
            }
        }
        open_count += opened[i];
    }
    CHECK_EQ_INT(chest_pool_closed(p), k);
    CHECK_EQ_INT(chest_pool_count_open(p, 0, n), open_count);
    for (uint32_t i = n; i-- > 0;) { /* next_open from every position */
        if (opened[i]) expect_next = i;
        if (chest_pool_next_open(p, i) != expect_next) {
            CHECK_EQ_INT(chest_pool_next_open(p, i), expect_next);
            return;
        }
    }
}

TEST(t_empty_pool)
{
    struct chest_pool p;
    CHECK_EQ_INT(chest_pool_init(&p, 0), 0);
    CHECK_EQ_INT(chest_pool_closed(&p), 0);
    CHECK_EQ_INT(chest_pool_next_open(&p, 0), 0);
    CHECK_EQ_INT(chest_pool_memory_bytes(&p), 0);
    chest_pool_deinit(&p);
}

static void random_claims(uint32_t n, int check_every)
{
    struct chest_pool p;
    uint8_t *opened = calloc(n + 1, 1);
    CHECK_EQ_INT(chest_pool_init(&p, n), 0);
    check_model(&p, opened, n);
    for (uint32_t step = 0; step < n; step++) {
        uint32_t k = (uint32_t)(rnd() % chest_pool_closed(&p));
        uint32_t slot = chest_pool_select(&p, k);
        CHECK(!opened[slot]);
        opened[slot] = 1;
        chest_pool_claim(&p, slot);
        if (check_every && step % (uint32_t)check_every == 0) check_model(&p, opened, n);
    }
    check_model(&p, opened, n);
    CHECK_EQ_INT(chest_pool_closed(&p), 0);
    chest_pool_deinit(&p);
    free(opened);
}

TEST(t_boundary_sizes)
{
    static const uint32_t sizes[] = {1,   2,   63,   64,   65,   127,  128, 511,
                                     512, 513, 1023, 1024, 1025, 4096, 5000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        random_claims(sizes[i], sizes[i] < 600 ? 1 : 97);
}

TEST(t_bigger_random)
{
    random_claims(100003, 9973);
}

/* Claims in a pattern that empties whole blocks, then selects across the holes. */
TEST(t_claim_blocks)
{
    uint32_t n = 4 * 512 + 17;
    struct chest_pool p;
    uint8_t *opened = calloc(n, 1);
    CHECK_EQ_INT(chest_pool_init(&p, n), 0);
    for (uint32_t i = 512; i < 3 * 512; i++) {
        chest_pool_claim(&p, i);
        opened[i] = 1;
    }
    check_model(&p, opened, n);
    CHECK_EQ_INT(chest_pool_select(&p, 511), 511);
    CHECK_EQ_INT(chest_pool_select(&p, 512), 3 * 512);
    CHECK_EQ_INT(chest_pool_count_open(&p, 500, 600), 88);
    CHECK_EQ_INT(chest_pool_next_open(&p, 0), 512);
    CHECK_EQ_INT(chest_pool_next_open(&p, 3 * 512), n);
    chest_pool_claim(&p, n - 1);
    opened[n - 1] = 1;
    check_model(&p, opened, n);
    CHECK_EQ_INT(chest_pool_select(&p, chest_pool_closed(&p) - 1), n - 2);
    chest_pool_deinit(&p);
    free(opened);
}

TEST(t_ten_million)
{
    uint32_t n = 10000000;
    struct chest_pool p;
    CHECK_EQ_INT(chest_pool_init(&p, n), 0);
    printf("  10M-chest pool: %zu bytes\n", chest_pool_memory_bytes(&p));
    CHECK(chest_pool_memory_bytes(&p) < 3u * 1000 * 1000);
    CHECK_EQ_INT(chest_pool_select(&p, n - 1), n - 1);
    CHECK_EQ_INT(chest_pool_select(&p, 0), 0);
    /* Model a few thousand random claims with a sorted list of opened slots. */
    uint32_t *claimed = malloc(5000 * sizeof *claimed), m = 0;
    for (int i = 0; i < 5000; i++) {
        uint32_t slot = chest_pool_select(&p, (uint32_t)(rnd() % chest_pool_closed(&p)));
        CHECK(!chest_pool_is_open(&p, slot));
        chest_pool_claim(&p, slot);
        claimed[m++] = slot;
    }
    CHECK_EQ_INT(chest_pool_closed(&p), n - 5000);
    CHECK_EQ_INT(chest_pool_count_open(&p, 0, n), 5000);
    for (uint32_t i = 0; i < m; i++)
        CHECK(chest_pool_is_open(&p, claimed[i]));
    /* select(k) == k + (opened slots <= result): check a sample of ks. */
    for (int t = 0; t < 200; t++) {
        uint32_t k = (uint32_t)(rnd() % chest_pool_closed(&p));
        uint32_t s = chest_pool_select(&p, k);
        CHECK(!chest_pool_is_open(&p, s));
        CHECK_EQ_INT(s - chest_pool_count_open(&p, 0, s), k);
    }
    uint32_t visited = 0;
    for (uint32_t s = chest_pool_next_open(&p, 0); s < n; s = chest_pool_next_open(&p, s + 1))
        visited++;
    CHECK_EQ_INT(visited, 5000);
    size_t words;
    chest_pool_words(&p, &words);
    CHECK_EQ_INT(words, (n + 63) / 64);
    free(claimed);
    chest_pool_deinit(&p);
}

/* Claim everything of a pool that is not a multiple of 64, in slot order. */
TEST(t_claim_all_in_order)
{
    uint32_t n = 1000;
    struct chest_pool p;
    CHECK_EQ_INT(chest_pool_init(&p, n), 0);
    for (uint32_t i = 0; i < n; i++) {
        CHECK_EQ_INT(chest_pool_select(&p, 0), i);
        chest_pool_claim(&p, i);
    }
    CHECK_EQ_INT(chest_pool_closed(&p), 0);
    CHECK_EQ_INT(chest_pool_count_open(&p, 0, n), n);
    chest_pool_deinit(&p);
}

int main(void)
{
    RUN(t_empty_pool);
    RUN(t_boundary_sizes);
    RUN(t_bigger_random);
    RUN(t_claim_blocks);
    RUN(t_ten_million);
    RUN(t_claim_all_in_order);
    return HARNESS_DONE();
}
