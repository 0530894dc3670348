/* Unit tests: the hash map against a plain array model, through many incremental
 * rehashes (puts, replaces and deletes while a move is under way). */
#include <stdlib.h>

#include "harness.h"
#include "hmap.h"

#define N 50000

static uintptr_t model[N]; /* 0 = absent, else the value */

static void count_value(void *v, void *ctx)
{
    uintptr_t k = (uintptr_t)v >> 8;
    size_t *seen = ctx;
    if (k < N && model[k] == (uintptr_t)v) seen[0]++;
    else seen[1]++;
}

static void check_all(struct hmap *m)
{
    size_t present = 0, bad = 0;
    for (uint32_t k = 0; k < N; k++) {
        void *v = hmap_get(m, &k, sizeof k);
        if ((uintptr_t)v != model[k]) bad++;
        present += model[k] != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(m->count, present);
    size_t seen[2] = {0, 0};
    hmap_each(m, count_value, seen);
    CHECK_EQ_INT(seen[0], present);
    CHECK_EQ_INT(seen[1], 0);
}

TEST(random_ops_against_model)
{
    struct hmap m;
    hmap_init(&m);
    uint64_t x = 88172645463325252ull;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 5000; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint32_t k = (uint32_t)(x % N);
            if (x >> 60 < 11) { /* mostly puts (growth), some replaces */
                uintptr_t v = ((uintptr_t)k << 8) | (uintptr_t)(1 + (x >> 40) % 255);
                CHECK_EQ_INT(hmap_put(&m, &k, sizeof k, (void *)v), 0);
                model[k] = v;
            } else {
                void *got = hmap_del(&m, &k, sizeof k);
                CHECK_EQ_INT((uintptr_t)got, model[k]);
                model[k] = 0;
            }
        }
        check_all(&m);
    }
    hmap_deinit(&m);
}

TEST(growth_is_incremental)
{
    struct hmap m;
    hmap_init(&m);
    int saw_move = 0;
    for (uint32_t k = 0; k < 100000; k++) {
        hmap_put(&m, &k, sizeof k, (void *)(uintptr_t)(k + 1));
        saw_move |= m.old != NULL;
        /* never more than one old table, and it drains before the next doubling */
        CHECK(!m.old || m.old_mask + 1 == (m.mask + 1) / 2);
    }
    CHECK(saw_move);
    for (uint32_t k = 0; k < 100000; k++)
        CHECK_EQ_INT((uintptr_t)hmap_get(&m, &k, sizeof k), k + 1);
    hmap_deinit(&m);
}

int main(void)
{
    RUN(random_ops_against_model);
    RUN(growth_is_incremental);
    return HARNESS_DONE();
}
