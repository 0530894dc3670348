/* Unit tests: membership and hunt leases in the PostgreSQL store (store.h "Several
 * nodes"): heartbeats aged by the server's clock, a lease taken once, extended by its
 * holder without a new epoch, refused to others while it runs, taken over with a new
  * epoch once expired or released, renewals that skip what was lost, and the log fenced by
 * a lease that moved (a batch loses exactly that hunt's entries). Other backends
 * answer STORE_ENOTSUP. Needs VELTRIX_TEST_PG_URL (tests/pg/pgtmp.sh); without it the
 * PostgreSQL tests are skipped and say so. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
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

/* The test PostgreSQL's URL into url: 0, or -1 (said: skipped) without
 * VELTRIX_TEST_PG_URL. */
static int pg_url(char *url, size_t cap)
{
    if (!store_backend_test_url(backend("postgres"), dir, url, cap)) return 0;
    printf("  skipped: VELTRIX_TEST_PG_URL is not set\n");
    return -1;
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
    /* several nodes' idempotency hand-over and refresh rotation: PostgreSQL's only */
    uint8_t id[16] = {1}, cur[16];
    uint64_t gen;
    struct store_refresh nw = {{2}, {1}, 0, 1000, 0};
    CHECK_EQ_INT(store_each_idem_of_hunt(s, "h", 0, NULL, NULL), STORE_ENOTSUP);
    CHECK_EQ_INT(store_refresh_rotate(s, id, id, 0, 0, &nw, cur, &gen), STORE_ENOTSUP);
    CHECK_EQ_INT(store_revoke_player(s, id, &gen), STORE_ENOTSUP);
    store_close(s);
}

TEST(t_membership)
{
    char url[512];
    if (pg_url(url, sizeof url)) return;
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
    if (pg_url(url, sizeof url)) return;
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

/* ---- the log against the fence (log.h): a batch holding events of a hunt whose lease
 * moved loses exactly that hunt's entries, handed back with STORE_EFENCED and never
 * written; the rest lands, and entries come back in submission order. */

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

static struct arg *last_arg; /* the last submitted entry's (freed by a test that drops it) */

/* Submits one entry holding hunt's event seq under epoch, its payload data. */
static int submit_data(struct log *l, struct answers *a, int id, const char *hunt, uint64_t seq,
                       uint64_t epoch, const char *data)
{
    struct arg *g = malloc(sizeof *g);
    if (!g) return -1;
    last_arg = g;
    *g = (struct arg){a, id};
    struct log_entry *e = log_entry_create(on_done, g);
    struct store_event ev = {.hunt = hunt, .seq = seq, .time_ms = 1000 + (int64_t)seq,
                             .type = 1, .data = (const uint8_t *)data, .data_len = strlen(data),
                             .epoch = epoch};
    if (!e || log_entry_event(e, &ev)) return -1;
    return log_submit(l, e);
}

static int submit(struct log *l, struct answers *a, int id, const char *hunt, uint64_t seq,
                  uint64_t epoch)
{
    return submit_data(l, a, id, hunt, seq, epoch, "x");
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
    if (pg_url(url, sizeof url)) return;
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

/* A commit in doubt (its answer lost) while the hunt moved: the read-back finds the new
 * owner's rows at the batch's seqs and none of its own. The entries of that hunt (they
 * carry an epoch) are handed back STORE_EFENCED, never acknowledged, and the rest of the
 * batch is written again; an unfenced hunt in the same state still stops the log
 * (STORE_ECORRUPT: another writer of a single node's store). */
TEST(t_doubt_of_a_moved_hunt_is_fenced)
{
    char url[512], furl[600];
    if (pg_url(url, sizeof url)) return;
    snprintf(furl, sizeof furl, "fault:%s", url);
    struct store *a = open_url(furl), *b = open_url(url);
    if (!a || !b) return;
    uint64_t ea = 0, eb = 0;
    CHECK_EQ_INT(store_lease_take(a, "dm", "node-a", 60000, &ea), 1);
    struct log *l = log_create_manual(a, 100);
    static struct answers ans;
    memset(&ans, 0, sizeof ans);
    CHECK_EQ_INT(submit(l, &ans, 0, "dm", 1, ea), 0);
    CHECK_EQ_INT(submit(l, &ans, 1, "dstay", 1, 0), 0);
    CHECK_EQ_INT(submit(l, &ans, 2, "dm", 2, ea), 0);
    store_fault_set(&(struct store_fault){.fail_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO); /* in doubt */
    CHECK_EQ_INT(store_lease_release(a, "node-a", "dm"), 0);
    CHECK_EQ_INT(store_lease_take(b, "dm", "node-b", 60000, &eb), 1);
    struct log *lb = log_create_manual(b, 100);
    static struct answers bans;
    memset(&bans, 0, sizeof bans);
    CHECK_EQ_INT(submit_data(lb, &bans, 0, "dm", 1, eb, "b's"), 0); /* the new owner's */
    CHECK_EQ_INT(submit_data(lb, &bans, 1, "dm", 2, eb, "b's"), 0);
    CHECK_EQ_INT(log_commit_now(lb), 0);
    CHECK_EQ_INT((int)log_deliver(lb), 2);
    CHECK_EQ_INT(log_commit_now(l), 0); /* read back: dm moved, dstay written again */
    CHECK_EQ_INT((int)log_deliver(l), 3);
    CHECK_EQ_INT(ans.status[0], STORE_EFENCED);
    CHECK_EQ_INT(ans.status[1], 0);
    CHECK_EQ_INT(ans.status[2], STORE_EFENCED);
    CHECK_EQ_INT(events_of(b, "dm"), 2);
    CHECK_EQ_INT(events_of(b, "dstay"), 1);
    CHECK_EQ_INT((int)log_stats(l)->fenced, 2);
    /* unfenced: another writer's row at the seq stops the log, nothing acknowledged */
    memset(&ans, 0, sizeof ans);
    CHECK_EQ_INT(submit(l, &ans, 0, "dstay", 2, 0), 0);
    struct arg *held = last_arg; /* never answered: the log is destroyed like a crash */
    store_fault_set(&(struct store_fault){.fail_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO);
    CHECK_EQ_INT(submit_data(lb, &bans, 2, "dstay", 2, 0, "b's"), 0);
    CHECK_EQ_INT(log_commit_now(lb), 0);
    CHECK_EQ_INT((int)log_deliver(lb), 1);
    CHECK_EQ_INT(log_commit_now(l), STORE_ECORRUPT);
    CHECK_EQ_INT((int)log_deliver(l), 0);
    store_fault_set(&(struct store_fault){0});
    log_destroy(lb);
    log_destroy(l);
    free(held);
    store_close(a);
    store_close(b);
}

/* Epoch 0 is unfenced (a single node): it lands whatever the leases say. */
TEST(t_epoch_zero_is_not_fenced)
{
    char url[512];
    if (pg_url(url, sizeof url)) return;
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
    RUN(t_other_backends_refuse);
    RUN(t_membership);
    RUN(t_leases);
    RUN(t_fenced_hunt_is_refused_the_rest_lands);
    RUN(t_epoch_zero_is_not_fenced);
    RUN(t_doubt_of_a_moved_hunt_is_fenced);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "  could not remove %s\n", dir);
    return HARNESS_DONE();
}
