/* Unit tests: idempotency entries — pending then done, expiry, the memory cap, and the
 * store fallback after an early eviction. */
#include <stdlib.h>

#include "harness.h"
#include "idem.h"

static const uint8_t H1[32] = {1}, H2[32] = {2};
static int fallback_calls;

static int fallback(void *ctx, const char *scope, const char *key, uint8_t h[32], int *status,
                    char **body, size_t *len, int64_t *created)
{
    fallback_calls++;
    if (strcmp(key, "k0") != 0) return 0;
    memcpy(h, H1, 32);
    *status = 201;
    *body = strdup("{\"old\":1}");
    *len = strlen(*body);
    *created = 1000;
    return 1;
}

TEST(pending_then_done)
{
    struct idem *t = idem_create(10, 1000);
    CHECK(idem_find(t, "p POST /x", "k", 0, NULL) == NULL);
    struct idem_entry *e = idem_begin(t, "p POST /x", "k", H1, 0);
    CHECK(e && e->pending);
    CHECK(idem_find(t, "p POST /x", "k", 1, NULL) == e);
    CHECK(idem_find(t, "q POST /x", "k", 1, NULL) == NULL); /* another scope */
    CHECK_EQ_INT(idem_finish(t, e, 200, "{}", 2), 0);
    CHECK(!e->pending && e->status == 200 && e->body_len == 2);
    CHECK(idem_find(t, "p POST /x", "k", 999, NULL) == e);
    CHECK(idem_find(t, "p POST /x", "k", 1001, NULL) == NULL); /* expired */
    /* the same key again after expiry: a fresh entry that later trims do not disturb */
    struct idem_entry *again = idem_begin(t, "p POST /x", "k", H2, 1002);
    CHECK(again && again != NULL && idem_find(t, "p POST /x", "k", 1003, NULL) == again);
    idem_finish(t, again, 201, "{}", 2);
    struct idem_entry *a = idem_begin(t, "p POST /x", "gone", H2, 5);
    idem_abort(t, a);
    CHECK(idem_find(t, "p POST /x", "gone", 6, NULL) == NULL);
    idem_destroy(t);
}

TEST(cap_and_fallback)
{
    struct idem *t = idem_create(3, 100000);
    idem_set_fallback(t, fallback, NULL);
    char key[8];
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct idem_entry *e = idem_begin(t, "s", key, H1, 1000 + i);
        idem_finish(t, e, 201, "{}", 2);
    }
    CHECK(idem_stats(t)->entries <= 4);
    CHECK(idem_stats(t)->evicted >= 2);
    fallback_calls = 0;
    struct idem_entry *e = idem_find(t, "s", "k0", 2000, NULL); /* evicted: asks the store */
    CHECK_EQ_INT(fallback_calls, 1);
    CHECK(e && e->status == 201 && memcmp(e->req_hash, H1, 32) == 0);
    CHECK(idem_find(t, "s", "k5", 2000, NULL) != NULL);
    idem_destroy(t);
}

static int failing_fallback(void *ctx, const char *scope, const char *key, uint8_t hash[32],
                            int *status, char **body, size_t *len, int64_t *created)
{
    return -1001; /* STORE_EIO: the store does not answer */
}

/* A lookup that had to ask the store, which failed: NULL with *failed = 1, never a silent
 * "no such key" (a retry of a write already applied would be applied again). */
TEST(fallback_failure_is_not_a_miss)
{
    struct idem *t = idem_create(1, 100000);
    idem_set_fallback(t, failing_fallback, NULL);
    idem_finish(t, idem_begin(t, "s", "k0", H1, 1000), 201, "{}", 2);
    idem_finish(t, idem_begin(t, "s", "k1", H1, 1001), 201, "{}", 2);
    idem_finish(t, idem_begin(t, "s", "k2", H1, 1002), 201, "{}", 2);
    CHECK(idem_stats(t)->evicted >= 1); /* k0 left memory early: a lookup asks the store */
    int failed = 0;
    CHECK(idem_find(t, "s", "k0", 2000, &failed) == NULL);
    CHECK_EQ_INT(failed, 1);
    CHECK(idem_find(t, "s", "k2", 2000, &failed) != NULL); /* in memory: no store read */
    CHECK_EQ_INT(failed, 0);
    idem_destroy(t);
}

/* A key evicted early whose store row is past the retention: gone, asked once (it used
 * to be loaded, found expired, asked for again... until the stack ran out). */
TEST(fallback_row_past_retention)
{
    struct idem *t = idem_create(1, 1000);
    idem_set_fallback(t, fallback, NULL);
    char key[8];
    for (int i = 1; i <= 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        idem_finish(t, idem_begin(t, "s", key, H1, 4000 + i), 201, "{}", 2);
    }
    fallback_calls = 0;
    CHECK(idem_find(t, "s", "k0", 4500, NULL) == NULL); /* the store's k0 is from t=1000 */
    CHECK_EQ_INT(fallback_calls, 1);
    idem_destroy(t);
}

int main(void)
{
    RUN(pending_then_done);
    RUN(cap_and_fallback);
    RUN(fallback_row_past_retention);
    RUN(fallback_failure_is_not_a_miss);
    return HARNESS_DONE();
}
