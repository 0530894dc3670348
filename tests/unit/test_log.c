/* Unit tests: the durable log (log.c) over a real store — entries handed back in
 * submission order with their rows durable, the queue cap, and a store that fails its
 * commits for a while (the "fault:" backend): the batch is retried until it lands, never
 * answered before, never written twice, and log_store_down() says so meanwhile. A commit
 * in doubt (landed, reported failed) is read back and not written again. Manual mode
 * (log_create_manual, the simulator's): the same guarantees, one call at a time. */
#include <errno.h>
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "store.h"

static char dir[] = "/tmp/veltrix-log-XXXXXX";
static char url[256];

struct done {
    int order[4096];
    int n, bad_status;
};

struct arg {
    struct done *d;
    int i;
};

static void on_done(void *p, int status)
{
    struct arg *a = p;
    if (status) a->d->bad_status++;
    a->d->order[a->d->n++] = a->i;
    free(a);
}

/* Submits events seq first..first+n-1 of hunt "h" (one entry each). */
static int submit(struct log *l, struct done *d, uint64_t first, int n)
{
    for (int i = 0; i < n; i++) {
        struct arg *a = malloc(sizeof *a);
        *a = (struct arg){d, (int)(first + (uint64_t)i)};
        struct log_entry *e = log_entry_create(on_done, a);
        struct store_event ev = {"h", first + (uint64_t)i, 1000, 2, {1}, (const uint8_t *)"x", 1, {0}, 0, 0};
        if (!e || log_entry_event(e, &ev)) return -1;
        int rc = log_submit(l, e);
        if (rc) {
            free(a);
            log_entry_free(e);
            return rc;
        }
    }
    return 0;
}

static void run_until(h2o_loop_t *loop, struct done *d, int n, int *saw_down, struct log *l)
{
    for (int i = 0; i < 2000 && d->n < n; i++) {
        h2o_evloop_run(loop, 5);
        if (saw_down && log_store_down(l)) *saw_down = 1;
    }
}

static int count_cb(const struct store_event *ev, void *ctx)
{
    uint64_t *next = ctx;
    if (ev->seq != *next) return -7; /* a gap or a duplicate */
    (*next)++;
    return 0;
}

/* The events of "h" in the store are exactly 1..n. */
static int store_has(const char *u, uint64_t n)
{
    struct store *s;
    char err[256];
    uint64_t next = 1;
    if (store_open(u, STORE_FSYNC_OFF, &s, err, sizeof err)) return 0;
    int rc = store_each_event(s, "h", 1, count_cb, &next);
    store_close(s);
    return rc == 0 && next == n + 1;
}

TEST(order_and_durability)
{
    h2o_loop_t *loop = h2o_evloop_create();
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create(s, loop, 100000);
    static struct done d;
    memset(&d, 0, sizeof d);
    for (int k = 0; k < 10; k++) {
        CHECK_EQ_INT(submit(l, &d, (uint64_t)k * 300 + 1, 300), 0);
        h2o_evloop_run(loop, 0); /* ends a turn: entries go to the writer in batches */
    }
    run_until(loop, &d, 3000, NULL, l);
    CHECK_EQ_INT(d.n, 3000);
    CHECK_EQ_INT(d.bad_status, 0);
    int in_order = 1;
    for (int i = 0; i < d.n; i++) in_order &= d.order[i] == i + 1;
    CHECK(in_order);
    CHECK_EQ_INT(log_pending(l), 0);
    CHECK(store_has(url, 3000));
    log_destroy(l);
    store_close(s);
    h2o_evloop_destroy(loop);
}

TEST(queue_cap)
{
    h2o_loop_t *loop = h2o_evloop_create();
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create(s, loop, 8);
    static struct done d;
    memset(&d, 0, sizeof d);
    CHECK_EQ_INT(submit(l, &d, 3001, 8), 0);
    CHECK_EQ_INT(submit(l, &d, 3009, 1), -EAGAIN); /* the 9th while 8 are in the turn */
    run_until(loop, &d, 8, NULL, l);
    CHECK_EQ_INT(d.n, 8);
    CHECK_EQ_INT((int)log_stats(l)->rejected, 1);
    log_destroy(l);
    store_close(s);
    h2o_evloop_destroy(loop);
}

TEST(failing_commits_are_retried_until_they_land)
{
    char furl[300];
    snprintf(furl, sizeof furl, "fault:%s", url);
    h2o_loop_t *loop = h2o_evloop_create();
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(furl, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create(s, loop, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    /* more failures than the 5 attempts the log used to make before it aborted */
    store_fault_set(&(struct store_fault){.fail_commits = 7});
    CHECK_EQ_INT(submit(l, &d, 3009, 50), 0);
    int saw_down = 0;
    run_until(loop, &d, 50, &saw_down, l);
    CHECK_EQ_INT(d.n, 50);
    CHECK_EQ_INT(d.bad_status, 0);
    CHECK(saw_down);                 /* the outage was visible while it lasted */
    CHECK_EQ_INT(log_store_down(l), 0); /* and is over */
    CHECK_EQ_INT((int)log_stats(l)->failures, 7);
    CHECK_EQ_INT((int)log_stats(l)->outages, 1);
    CHECK(store_has(url, 3058)); /* every event once, no gap: nothing written twice */
    struct store_fault f;
    store_fault_get(&f);
    CHECK_EQ_INT(f.fail_commits, 0);
    log_destroy(l);
    store_close(s);
    h2o_evloop_destroy(loop);
}

/* A commit that landed but reported a failure: the writer reads the store back and does
 * not write the batch again (which would fail for ever on its taken seqs: the log before
 * this test never answered again). */
TEST(commit_in_doubt_is_read_back_not_rewritten)
{
    char furl[300];
    snprintf(furl, sizeof furl, "fault:%s", url);
    h2o_loop_t *loop = h2o_evloop_create();
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(furl, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create(s, loop, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    /* in doubt, then the read that resolves it fails once too */
    store_fault_set(&(struct store_fault){.doubt_commits = 1, .fail_reads = 1});
    CHECK_EQ_INT(submit(l, &d, 3059, 20), 0);
    run_until(loop, &d, 20, NULL, l);
    CHECK_EQ_INT(d.n, 20);
    CHECK_EQ_INT(d.bad_status, 0);
    CHECK_EQ_INT((int)log_stats(l)->failures, 2);
    CHECK_EQ_INT(log_store_down(l), 0);
    CHECK(store_has(url, 3078));
    log_destroy(l);
    store_close(s);
    h2o_evloop_destroy(loop);
}

/* Manual mode: nothing is written before log_commit_now(), nothing answered before
 * log_deliver(), one transaction per call, answers in submission order. */
TEST(manual_commit_then_deliver)
{
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create_manual(s, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    CHECK_EQ_INT(submit(l, &d, 3079, 10), 0);
    CHECK(store_has(url, 3078));
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK(store_has(url, 3088));
    CHECK_EQ_INT(d.n, 0);
    CHECK_EQ_INT(submit(l, &d, 3089, 5), 0);
    CHECK_EQ_INT(log_pending(l), 15);
    CHECK_EQ_INT((int)log_deliver(l), 10);
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 5);
    CHECK_EQ_INT(log_commit_now(l), 0); /* nothing queued */
    CHECK_EQ_INT(d.n, 15);
    int in_order = 1;
    for (int i = 0; i < d.n; i++) in_order &= d.order[i] == 3079 + i;
    CHECK(in_order);
    CHECK_EQ_INT((int)log_stats(l)->batches, 2);
    CHECK_EQ_INT(log_pending(l), 0);
    log_destroy(l);
    store_close(s);
}

/* Manual mode: a failing commit returns the error; its batch stays held and unanswered
 * while later entries queue behind it; the next call retries that batch alone. */
TEST(manual_failed_commit_is_held_and_retried)
{
    char furl[300];
    snprintf(furl, sizeof furl, "fault:%s", url);
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(furl, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create_manual(s, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    CHECK_EQ_INT(submit(l, &d, 3094, 4), 0);
    store_fault_set(&(struct store_fault){.fail_commits = 1, .fail_writes = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO); /* a write fails */
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO); /* the commit fails */
    CHECK_EQ_INT(log_store_down(l), 1);
    CHECK_EQ_INT(submit(l, &d, 3098, 3), 0);
    CHECK_EQ_INT((int)log_deliver(l), 0);
    CHECK(store_has(url, 3093));
    CHECK_EQ_INT(log_commit_now(l), 0); /* the held batch alone */
    CHECK_EQ_INT(log_store_down(l), 0);
    CHECK(store_has(url, 3097));
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 7);
    CHECK_EQ_INT(d.bad_status, 0);
    CHECK(store_has(url, 3100));
    CHECK_EQ_INT((int)log_stats(l)->failures, 2);
    CHECK_EQ_INT((int)log_stats(l)->outages, 1);
    log_destroy(l);
    store_close(s);
}

/* Manual mode, a commit in doubt: the error is returned, the retry reads the store back
 * (a failed read keeps it in doubt) and finds the batch there: it succeeds without writing
 * anything (every write would fail meanwhile). */
TEST(manual_commit_in_doubt_is_not_written_again)
{
    char furl[300];
    snprintf(furl, sizeof furl, "fault:%s", url);
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(furl, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create_manual(s, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    CHECK_EQ_INT(submit(l, &d, 3101, 6), 0);
    store_fault_set(&(struct store_fault){.doubt_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO);
    CHECK(store_has(url, 3106)); /* it landed all the same */
    CHECK_EQ_INT((int)log_deliver(l), 0);
    store_fault_set(&(struct store_fault){.fail_reads = 1, .fail_writes = -1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO); /* cannot tell yet */
    CHECK_EQ_INT(log_commit_now(l), 0);         /* read back: landed */
    store_fault_set(&(struct store_fault){0});
    CHECK_EQ_INT((int)log_deliver(l), 6);
    CHECK_EQ_INT(d.bad_status, 0);
    CHECK(store_has(url, 3106));
    /* the next batch is written as usual */
    CHECK_EQ_INT(submit(l, &d, 3107, 2), 0);
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 2);
    CHECK(store_has(url, 3108));
    log_destroy(l);
    store_close(s);
}

static int count_players(const struct store_player *p, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

/* A batch in doubt with no event to read back is written again: its rows are upserts. */
TEST(manual_doubt_without_events_is_written_again)
{
    char furl[300];
    snprintf(furl, sizeof furl, "fault:%s", url);
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(furl, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create_manual(s, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    struct arg *a = malloc(sizeof *a);
    *a = (struct arg){&d, 1};
    struct log_entry *e = log_entry_create(on_done, a);
    struct store_player p = {{7}, "seven", 1000, 1};
    CHECK_EQ_INT(log_entry_player(e, &p), 0);
    CHECK_EQ_INT(log_submit(l, e), 0);
    store_fault_set(&(struct store_fault){.doubt_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO);
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 1);
    int n = 0;
    CHECK_EQ_INT(store_each_player(s, count_players, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT((int)log_stats(l)->batches, 1);
    log_destroy(l);
    store_close(s);
}

/* One event of hunt, in an entry of its own; its callback's arg is left in last_arg (a
 * crash runs no callback: the test frees it). */
static struct arg *last_arg;
static int submit_ev(struct log *l, struct done *d, const char *hunt, uint64_t seq,
                     const char *data)
{
    struct arg *a = malloc(sizeof *a);
    *a = (struct arg){d, (int)seq};
    last_arg = a;
    struct log_entry *e = log_entry_create(on_done, a);
    struct store_event ev = {hunt, seq, 1000, 2, {1}, (const uint8_t *)data, strlen(data), {0}, 0, 0};
    if (!e || log_entry_event(e, &ev) || log_submit(l, e)) return -1;
    return 0;
}

/* Writes one event straight into the store at url (another writer, for the tests). */
static int put_direct(const char *u, const char *hunt, uint64_t seq, const char *data)
{
    struct store *s;
    char err[256];
    struct store_event ev = {hunt, seq, 1000, 2, {1}, (const uint8_t *)data, strlen(data), {0}, 0, 0};
    if (store_open(u, STORE_FSYNC_OFF, &s, err, sizeof err)) return -1;
    int rc = store_begin(s);
    if (!rc) rc = store_put_event(s, &ev);
    if (!rc) rc = store_commit(s);
    else store_rollback(s);
    store_close(s);
    return rc;
}

/* The read-back of a batch in doubt looks for every event of every hunt in it, row by
 * row: all there (landed: nothing written again), none there (written again), part of it
 * or another row at one of its seqs (STORE_ECORRUPT: held, never acknowledged). */
TEST(manual_doubt_reads_back_every_hunt)
{
    char furl[300];
    snprintf(furl, sizeof furl, "fault:%s", url);
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(furl, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create_manual(s, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    /* landed, two hunts interleaved */
    CHECK_EQ_INT(submit_ev(l, &d, "ra", 1, "a1") | submit_ev(l, &d, "rb", 1, "b1") |
                     submit_ev(l, &d, "ra", 2, "a2") | submit_ev(l, &d, "rb", 2, "b2"), 0);
    store_fault_set(&(struct store_fault){.doubt_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO);
    store_fault_set(&(struct store_fault){.fail_writes = -1, .fail_commits = -1});
    CHECK_EQ_INT(log_commit_now(l), 0); /* read back: nothing written */
    store_fault_set(&(struct store_fault){0});
    CHECK_EQ_INT((int)log_deliver(l), 4);
    /* absent: written again */
    CHECK_EQ_INT(submit_ev(l, &d, "ra", 3, "a3") | submit_ev(l, &d, "rb", 3, "b3"), 0);
    store_fault_set(&(struct store_fault){.fail_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO);
    CHECK_EQ_INT(log_commit_now(l), 0);
    CHECK_EQ_INT((int)log_deliver(l), 2);
    uint64_t last = 0;
    CHECK_EQ_INT(store_last_seq(s, "rb", &last), 0);
    CHECK_EQ_INT((int)last, 3);
    /* one hunt's event there, the other's not: never acknowledged */
    struct arg *crashed[3];
    CHECK_EQ_INT(submit_ev(l, &d, "ra", 4, "a4"), 0);
    crashed[0] = last_arg;
    CHECK_EQ_INT(submit_ev(l, &d, "rb", 4, "b4"), 0);
    crashed[1] = last_arg;
    store_fault_set(&(struct store_fault){.fail_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO);
    CHECK_EQ_INT(put_direct(url, "rb", 4, "b4"), 0);
    CHECK_EQ_INT(log_commit_now(l), STORE_ECORRUPT);
    CHECK_EQ_INT(log_commit_now(l), STORE_ECORRUPT);
    CHECK_EQ_INT((int)log_deliver(l), 0);
    log_destroy(l); /* manual: a crash, nothing acknowledged */
    /* another row at the batch's seq */
    l = log_create_manual(s, 1000);
    CHECK_EQ_INT(submit_ev(l, &d, "rc", 1, "mine"), 0);
    crashed[2] = last_arg;
    store_fault_set(&(struct store_fault){.fail_commits = 1});
    CHECK_EQ_INT(log_commit_now(l), STORE_EIO);
    CHECK_EQ_INT(put_direct(url, "rc", 1, "theirs"), 0);
    CHECK_EQ_INT(log_commit_now(l), STORE_ECORRUPT);
    CHECK_EQ_INT((int)log_deliver(l), 0);
    CHECK_EQ_INT(d.bad_status, 0);
    log_destroy(l);
    for (int i = 0; i < 3; i++) free(crashed[i]);
    store_close(s);
}

/* Manual mode, destroyed with entries queued, held and committed: no callback runs (the
 * simulator's crash) and nothing leaks (ASan). */
TEST(manual_destroy_is_a_crash)
{
    char furl[300];
    snprintf(furl, sizeof furl, "fault:%s", url);
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(furl, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create_manual(s, 1000);
    static struct done d;
    memset(&d, 0, sizeof d);
    static struct arg keep[3];
    for (int i = 0; i < 3; i++) {
        keep[i] = (struct arg){&d, i};
        struct log_entry *e = log_entry_create(on_done, &keep[i]);
        struct store_event ev = {"h", 3109 + (uint64_t)i, 1000, 2, {1}, (const uint8_t *)"x", 1, {0}, 0, 0};
        CHECK_EQ_INT(log_entry_event(e, &ev), 0);
        CHECK_EQ_INT(log_submit(l, e), 0);
        if (i == 0) CHECK_EQ_INT(log_commit_now(l), 0); /* committed, not delivered */
        if (i == 1) {
            store_fault_set(&(struct store_fault){.fail_commits = 1});
            CHECK_EQ_INT(log_commit_now(l), STORE_EIO); /* held */
        }
    }
    log_destroy(l);
    CHECK_EQ_INT(d.n, 0);
    CHECK(store_has(url, 3109));
    store_close(s);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(url, sizeof url, "sqlite:%s/log.db", dir);
    RUN(order_and_durability);
    RUN(queue_cap);
    RUN(failing_commits_are_retried_until_they_land);
    RUN(commit_in_doubt_is_read_back_not_rewritten);
    RUN(manual_commit_then_deliver);
    RUN(manual_failed_commit_is_held_and_retried);
    RUN(manual_commit_in_doubt_is_not_written_again);
    RUN(manual_doubt_without_events_is_written_again);
    RUN(manual_doubt_reads_back_every_hunt);
    RUN(manual_destroy_is_a_crash);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return HARNESS_DONE();
}
