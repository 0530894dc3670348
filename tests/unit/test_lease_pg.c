/* Unit tests: membership and hunt leases in the PostgreSQL store (store.h "Several
 * nodes"): heartbeats aged by the server's clock, a lease taken once, extended by its
 * holder without a new epoch, refused to others while it runs, taken over with a new
 * epoch once expired or released, and renewals that skip what was lost. Other backends
 * answer STORE_ENOTSUP. Needs VELTRIX_TEST_PG_URL (tests/pg/pgtmp.sh); without it the
 * PostgreSQL tests are skipped and say so. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "store.h"

static char dir[] = "/tmp/veltrix-lease-pg-XXXXXX";

static const struct store_backend *backend(const char *scheme)
{
    const struct store_backend *const *be = store_backends();
    for (size_t i = 0; be[i]; i++)
        if (!strcmp(store_backend_scheme(be[i]), scheme)) return be[i];
    return NULL;
}

static struct store *open_url(const char *url)
{
    struct store *s = NULL;
    char err[512];
    if (store_open(url, STORE_FSYNC_ALWAYS, &s, err, sizeof err)) fprintf(stderr, "  %s\n", err);
    CHECK(s != NULL);
    return s;
}

struct seen {
    char ids[8][32];
    int64_t ages[8];
    int draining[8];
    uint64_t epochs[8];
    int n;
};

static int see_node(const struct store_node *n, void *ctx)
{
    struct seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->ids[s->n], 32, "%s@%s", n->id, n->advertise);
        s->ages[s->n] = n->age_ms;
        s->draining[s->n++] = n->draining;
    }
    return 0;
}

static int see_lease(const struct store_lease *l, void *ctx)
{
    struct seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->ids[s->n], 32, "%s:%s", l->hunt, l->owner);
        s->ages[s->n] = l->left_ms;
        s->epochs[s->n++] = l->epoch;
    }
    return 0;
}

TEST(t_other_backends_refuse)
{
    char url[512];
    struct store *s;
    CHECK_EQ_INT(store_backend_test_url(backend("sqlite"), dir, url, sizeof url), 0);
    if (!(s = open_url(url))) return;
    uint64_t epoch;
    CHECK_EQ_INT(store_node_beat(s, "a", "http://127.0.0.1:1", 0), STORE_ENOTSUP);
    CHECK_EQ_INT(store_lease_take(s, "h", "a", 1000, &epoch), STORE_ENOTSUP);
    CHECK_EQ_INT(store_each_node(s, see_node, NULL), STORE_ENOTSUP);
    store_close(s);
}

TEST(t_membership)
{
    char url[512];
    if (store_backend_test_url(backend("postgres"), dir, url, sizeof url)) {
        printf("  skipped: VELTRIX_TEST_PG_URL is not set\n");
        return;
    }
    struct store *a = open_url(url), *b = open_url(url);
    if (!a || !b) return;
    CHECK_EQ_INT(store_node_beat(a, "node-b", "http://127.0.0.1:2", 0), 0);
    CHECK_EQ_INT(store_node_beat(b, "node-a", "http://127.0.0.1:1", 0), 0);
    usleep(300000);
    CHECK_EQ_INT(store_node_beat(b, "node-a", "http://127.0.0.1:9", 1), 0); /* moved, draining */
    struct seen s = {0};
    CHECK_EQ_INT(store_each_node(a, see_node, &s), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_STR(s.ids[0], "node-a@http://127.0.0.1:9");
    CHECK_EQ_STR(s.ids[1], "node-b@http://127.0.0.1:2");
    CHECK(s.ages[0] >= 0 && s.ages[0] < 250);  /* just beat */
    CHECK(s.ages[1] >= 250 && s.ages[1] < 60000);
    CHECK(s.draining[0] == 1 && s.draining[1] == 0);
    store_close(a);
    store_close(b);
}

TEST(t_leases)
{
    char url[512];
    if (store_backend_test_url(backend("postgres"), dir, url, sizeof url)) {
        printf("  skipped: VELTRIX_TEST_PG_URL is not set\n");
        return;
    }
    struct store *a = open_url(url), *b = open_url(url);
    if (!a || !b) return;
    uint64_t e = 0;
    CHECK_EQ_INT(store_lease_take(a, "h1", "node-a", 60000, &e), 1);
    CHECK_EQ_INT(e, 1);
    CHECK_EQ_INT(store_lease_take(b, "h1", "node-b", 60000, &e), 0); /* held */
    CHECK_EQ_INT(store_lease_take(a, "h1", "node-a", 60000, &e), 1); /* extended */
    CHECK_EQ_INT(e, 1);
    CHECK_EQ_INT(store_lease_take(b, "h2", "node-b", 400, &e), 1);
    CHECK_EQ_INT(e, 1);
    /* b's lease on h2 runs out; a takes it over with a new epoch, and b's renewal no
     * longer finds it. */
    usleep(600000);
    CHECK_EQ_INT(store_lease_take(a, "h2", "node-a", 60000, &e), 1);
    CHECK_EQ_INT(e, 2);
    struct seen s = {0};
    CHECK_EQ_INT(store_lease_renew(b, "node-b", 60000, see_lease, &s), 0);
    CHECK_EQ_INT(s.n, 0);
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(store_lease_renew(a, "node-a", 30000, see_lease, &s), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK(s.epochs[0] + s.epochs[1] == 3); /* h1 at 1, h2 at 2, in any order */
    for (int i = 0; i < s.n; i++) CHECK(s.ages[i] > 25000 && s.ages[i] <= 30000);
    /* A release lets another node take it at once, with a new epoch. */
    CHECK_EQ_INT(store_lease_release(a, "node-a", "h1"), 0);
    CHECK_EQ_INT(store_lease_take(b, "h1", "node-b", 60000, &e), 1);
    CHECK_EQ_INT(e, 2);
    /* The old holder cannot take it back, nor renew it. */
    CHECK_EQ_INT(store_lease_take(a, "h1", "node-a", 60000, &e), 0);
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(store_each_lease(a, see_lease, &s), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_STR(s.ids[0], "h1:node-b");
    CHECK_EQ_STR(s.ids[1], "h2:node-a");
    CHECK(s.epochs[0] == 2 && s.epochs[1] == 2);
    /* Releasing everything of a node; a holder re-taking its own expired lease gets a
     * new epoch too (its writes of the old epoch must not land any more). */
    CHECK_EQ_INT(store_lease_release(a, "node-a", NULL), 0);
    CHECK_EQ_INT(store_lease_take(a, "h2", "node-a", 60000, &e), 1);
    CHECK_EQ_INT(e, 3);
    store_close(a);
    store_close(b);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    RUN(t_other_backends_refuse);
    RUN(t_membership);
    RUN(t_leases);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "  could not remove %s\n", dir);
    return HARNESS_DONE();
}
