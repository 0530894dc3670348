/* Unit tests: the log against a fenced PostgreSQL store (log.h; issue 15). A batch holding
 * events of a hunt whose lease moved to another node loses exactly that hunt's entries,
 * handed back with STORE_EFENCED and never written; the rest of the batch lands, and the
 * entries come back in submission order. Needs VELTRIX_TEST_PG_URL (tests/pg/pgtmp.sh);
 * without it the tests are skipped and say so. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "store.h"

static char dir[] = "/tmp/veltrix-log-fence-XXXXXX";

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

struct answers {
    int status[16];
    int order[16];
    int n;
};
struct arg {
    struct answers *a;
    int id;
};

static void on_done(void *p, int status)
{
    struct arg *g = p;
    g->a->status[g->a->n] = status;
    g->a->order[g->a->n++] = g->id;
    free(g);
}

/* Submits one entry holding hunt's event seq under epoch. */
static int submit(struct log *l, struct answers *a, int id, const char *hunt, uint64_t seq,
                  uint64_t epoch)
{
    struct arg *g = malloc(sizeof *g);
    if (!g) return -1;
    *g = (struct arg){a, id};
    struct log_entry *e = log_entry_create(on_done, g);
    struct store_event ev = {.hunt = hunt, .seq = seq, .time_ms = 1000 + (int64_t)seq,
                             .type = 1, .data = (const uint8_t *)"x", .data_len = 1,
                             .epoch = epoch};
    if (!e || log_entry_event(e, &ev)) return -1;
    return log_submit(l, e);
}

static int count(const struct store_event *ev, void *ctx)
{
    (void)ev;
    ++*(int *)ctx;
    return 0;
}

static int events_of(struct store *s, const char *hunt)
{
    int n = 0;
    CHECK_EQ_INT(store_each_event(s, hunt, 1, count, &n), 0);
    return n;
}

/* Node a holds h1 and h2 at epoch 1; b takes h1 over (epoch 2) while a's entries wait.
 * a's batch: h1's entries fenced, h2's land; later a batch of h1 alone is all fenced. */
TEST(t_fenced_hunt_is_refused_the_rest_lands)
{
    char url[512];
    if (store_backend_test_url(backend("postgres"), dir, url, sizeof url)) {
        printf("  skipped: VELTRIX_TEST_PG_URL is not set\n");
        return;
    }
    struct store *a = open_url(url), *b = open_url(url);
    if (!a || !b) return;
    uint64_t e1 = 0, e2 = 0;
    CHECK_EQ_INT(store_lease_take(a, "h1", "node-a", 60000, &e1), 1);
    CHECK_EQ_INT(store_lease_take(a, "h2", "node-a", 60000, &e2), 1);
    struct log *l = log_create_manual(a, 100);
    static struct answers ans;
    memset(&ans, 0, sizeof ans);
    CHECK_EQ_INT(submit(l, &ans, 0, "h1", 1, e1), 0);
    CHECK_EQ_INT(log_commit_now(l), 0); /* h1 seq 1 lands under epoch 1 */
    CHECK_EQ_INT(submit(l, &ans, 1, "h2", 1, e2), 0);
    CHECK_EQ_INT(submit(l, &ans, 2, "h1", 2, e1), 0);
    CHECK_EQ_INT(submit(l, &ans, 3, "h2", 2, e2), 0);
    CHECK_EQ_INT(submit(l, &ans, 4, "h1", 3, e1), 0);
    CHECK_EQ_INT(store_lease_release(a, "node-a", "h1"), 0);
    uint64_t taken = 0;
    CHECK_EQ_INT(store_lease_take(b, "h1", "node-b", 60000, &taken), 1);
    CHECK(taken > e1);
    CHECK_EQ_INT(log_commit_now(l), 0); /* lands but for the fenced entries */
    CHECK_EQ_INT(log_store_down(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 5);
    CHECK_EQ_INT(ans.n, 5);
    int order = 1;
    for (int i = 0; i < ans.n; i++) order &= ans.order[i] == i;
    CHECK(order);
    CHECK_EQ_INT(ans.status[0], 0);
    CHECK_EQ_INT(ans.status[1], 0);
    CHECK_EQ_INT(ans.status[2], STORE_EFENCED);
    CHECK_EQ_INT(ans.status[3], 0);
    CHECK_EQ_INT(ans.status[4], STORE_EFENCED);
    CHECK_EQ_INT(events_of(b, "h1"), 1);
    CHECK_EQ_INT(events_of(b, "h2"), 2);
    CHECK_EQ_INT((int)log_stats(l)->fenced, 2);
    CHECK_EQ_INT((int)log_stats(l)->events, 3);
    CHECK_EQ_INT((int)log_stats(l)->failures, 0);
    /* The new holder writes h1's seq 2 under its epoch; a's stale one is refused again. */
    struct log *lb = log_create_manual(b, 100);
    static struct answers bans;
    memset(&bans, 0, sizeof bans);
    CHECK_EQ_INT(submit(lb, &bans, 0, "h1", 2, taken), 0);
    CHECK_EQ_INT(log_commit_now(lb), 0);
    CHECK_EQ_INT((int)log_deliver(lb), 1);
    CHECK_EQ_INT(bans.status[0], 0);
    memset(&ans, 0, sizeof ans);
    CHECK_EQ_INT(submit(l, &ans, 0, "h1", 3, e1), 0);
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 1);
    CHECK_EQ_INT(ans.status[0], STORE_EFENCED);
    CHECK_EQ_INT(events_of(b, "h1"), 2);
    log_destroy(lb);
    log_destroy(l);
    store_close(a);
    store_close(b);
}

/* Epoch 0 is unfenced (a single node): it lands whatever the leases say. */
TEST(t_epoch_zero_is_not_fenced)
{
    char url[512];
    if (store_backend_test_url(backend("postgres"), dir, url, sizeof url)) {
        printf("  skipped: VELTRIX_TEST_PG_URL is not set\n");
        return;
    }
    struct store *a = open_url(url);
    if (!a) return;
    struct log *l = log_create_manual(a, 100);
    static struct answers ans;
    memset(&ans, 0, sizeof ans);
    CHECK_EQ_INT(submit(l, &ans, 0, "solo", 1, 0), 0);
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 1);
    CHECK_EQ_INT(ans.status[0], 0);
    CHECK_EQ_INT(events_of(a, "solo"), 1);
    log_destroy(l);
    store_close(a);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    RUN(t_fenced_hunt_is_refused_the_rest_lands);
    RUN(t_epoch_zero_is_not_fenced);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "  could not remove %s\n", dir);
    return HARNESS_DONE();
}
