/* Unit tests: what feeds a replica (issue 15 item 4).
 * - tail.c: fetches answered on the loop, in the order asked, with every event of the
 *   store from the asked seq (data, hash, player), at most TAIL_ROWS_MAX at a time
 *   (`more`), and tail_destroy with fetches unanswered.
 * - feed.c's body format (feed_parse): records built here by hand, independently of the
 *   encoder, parse to the same events; every malformed body is refused whole.
 * - log.c's landed callback: each durable event once, in seq order, before the entry's
 *   own callback. */
#include <h2o.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feed.h"
#include "harness.h"
#include "log.h"
#include "store.h"
#include "tail.h"

static char dir[] = "/tmp/veltrix-feed-XXXXXX";
static char url[256];

/* Appends events from..to of hunt (data "e<seq>", hash byte = seq % 251) in one batch. */
static int put_events(struct store *s, const char *hunt, uint64_t from, uint64_t to)
{
    static char data[16][16];
    int rc = store_begin(s);
    for (uint64_t q = from; !rc && q <= to; q++) {
        char *d = data[q % 16];
        int n = snprintf(d, 16, "e%llu", (unsigned long long)q);
        struct store_event ev = {hunt, q, 1000 + (int64_t)q, 2, {(uint8_t)q}, (const uint8_t *)d,
                                 (size_t)n, {0}, 1, 0};
        memset(ev.hash, (int)(q % 251), 32);
        rc = store_put_event(s, &ev);
    }
    return rc ? rc : store_commit(s);
}

struct got {
    int answers, bad;
    uint64_t from[8], n[8], tag[8];
    int more[8], rc[8];
};

static void on_fetched(const struct tail_result *res, void *ctx)
{
    struct got *g = ctx;
    int i = g->answers++;
    if (i >= 8) return;
    g->from[i] = res->from;
    g->n[i] = res->n;
    g->tag[i] = res->tag;
    g->more[i] = res->more;
    g->rc[i] = res->rc;
    for (size_t k = 0; k < res->n; k++) { /* each event as stored */
        struct store_event ev;
        char want[16];
        tail_event(res, k, &ev);
        uint64_t q = res->from + k;
        int n = snprintf(want, sizeof want, "e%llu", (unsigned long long)q);
        uint8_t hash[32];
        memset(hash, (int)(q % 251), 32);
        if (ev.seq != q || ev.time_ms != 1000 + (int64_t)q || ev.player[0] != (uint8_t)q ||
            ev.data_len != (size_t)n || memcmp(ev.data, want, (size_t)n) || !ev.has_hash ||
            memcmp(ev.hash, hash, 32) || strcmp(ev.hunt, res->hunt))
            g->bad++;
    }
}

static void run_until(h2o_loop_t *loop, struct got *g, int n)
{
    for (int i = 0; i < 4000 && g->answers < n; i++) h2o_evloop_run(loop, 5);
}

TEST(tail_fetches_in_order_with_every_event)
{
    struct store *w, *r;
    char err[256];
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &w, err, sizeof err), 0);
    CHECK_EQ_INT(put_events(w, "a", 1, 5000), 0);
    CHECK_EQ_INT(put_events(w, "b", 1, 3), 0);
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &r, err, sizeof err), 0);
    h2o_loop_t *loop = h2o_evloop_create();
    static struct got g;
    memset(&g, 0, sizeof g);
    struct tail *t = tail_create(loop, r, on_fetched, &g);
    CHECK(t != NULL);
    CHECK_EQ_INT(tail_fetch(t, "a", 1, 11), 0);
    CHECK_EQ_INT(tail_fetch(t, "b", 2, 12), 0);
    CHECK_EQ_INT(tail_fetch(t, "a", 1 + TAIL_ROWS_MAX, 13), 0);
    CHECK_EQ_INT(tail_fetch(t, "a", 5001, 14), 0); /* at the head: nothing */
    CHECK_EQ_INT(tail_fetch(t, "nope", 1, 15), 0);
    CHECK_EQ_INT((int)tail_pending(t), 5);
    run_until(loop, &g, 5);
    CHECK_EQ_INT(g.answers, 5);
    CHECK_EQ_INT(g.bad, 0);
    CHECK_EQ_INT((int)g.tag[0], 11);
    CHECK_EQ_INT((int)g.n[0], TAIL_ROWS_MAX); /* capped ... */
    CHECK_EQ_INT(g.more[0], 1);                /* ... and says so */
    CHECK_EQ_INT((int)g.tag[1], 12);
    CHECK_EQ_INT((int)g.n[1], 2);
    CHECK_EQ_INT(g.more[1], 0);
    CHECK_EQ_INT((int)g.n[2], 5000 - TAIL_ROWS_MAX);
    CHECK_EQ_INT(g.more[2], 0);
    CHECK_EQ_INT((int)g.n[3], 0);
    CHECK_EQ_INT((int)g.n[4], 0);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(g.rc[i], 0);
    CHECK_EQ_INT((int)tail_pending(t), 0);
    /* Fetches never answered are dropped at destroy (no callback, no leak). */
    int before = g.answers;
    for (int i = 0; i < 50; i++) CHECK_EQ_INT(tail_fetch(t, "a", 1, 99), 0);
    tail_destroy(t);
    CHECK_EQ_INT(g.answers, before);
    store_close(w);
    h2o_evloop_destroy(loop);
}

/* A job (tail_job): its run reads the store on the thread, its done comes on the loop
 * in order with the fetches. */
struct job {
    struct got *g;
    int order, ran, done, on_thread;
    uint64_t last;
    pthread_t loop_thread;
};

static int last_seq_of(const struct store_event *ev, void *ctx)
{
    ((struct job *)ctx)->last = ev->seq;
    return 0;
}

static void job_run(struct store *s, void *arg)
{
    struct job *j = arg;
    j->on_thread = !pthread_equal(pthread_self(), j->loop_thread);
    store_each_event(s, "b", 1, last_seq_of, j);
}

static void job_done(void *arg, int ran)
{
    struct job *j = arg;
    j->ran = ran;
    j->done++;
    j->order = j->g->answers++; /* counted with the fetches' answers */
}

TEST(tail_jobs_run_on_the_thread_in_order_with_fetches)
{
    struct store *r;
    char err[256];
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &r, err, sizeof err), 0);
    h2o_loop_t *loop = h2o_evloop_create();
    static struct got g;
    memset(&g, 0, sizeof g);
    struct tail *t = tail_create(loop, r, on_fetched, &g);
    struct job j = {.g = &g, .loop_thread = pthread_self()}, k = j;
    CHECK(t != NULL);
    CHECK_EQ_INT(tail_fetch(t, "b", 1, 21), 0);
    CHECK_EQ_INT(tail_job(t, job_run, job_done, &j), 0);
    CHECK_EQ_INT(tail_fetch(t, "b", 2, 22), 0);
    run_until(loop, &g, 3);
    CHECK_EQ_INT(g.answers, 3);
    CHECK_EQ_INT(j.done, 1);
    CHECK_EQ_INT(j.ran, 1);
    CHECK_EQ_INT(j.on_thread, 1);
    CHECK_EQ_INT((int)j.last, 3); /* the store (hunt b of the test above), read there */
    CHECK_EQ_INT(j.order, 1);     /* between the two fetches */
    CHECK_EQ_INT((int)g.tag[0], 21);
    CHECK_EQ_INT((int)g.tag[2], 22); /* index 1 is the job's answer */
    /* A job not run (or not back) by tail_destroy is told so, once. */
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(tail_fetch(t, "b", 1, 99), 0);
    CHECK_EQ_INT(tail_job(t, job_run, job_done, &k), 0);
    tail_destroy(t);
    CHECK_EQ_INT(k.done, 1);
    h2o_evloop_destroy(loop);
}

/* One record, built byte by byte as feed.h describes it. */
static size_t record(uint8_t *p, const char *hunt, uint64_t seq, const char *data, int has_hash)
{
    size_t n = 0, hl = strlen(hunt), dl = strlen(data);
    p[n++] = (uint8_t)hl;
    memcpy(p + n, hunt, hl), n += hl;
    for (int i = 7; i >= 0; i--) p[n++] = (uint8_t)(seq >> (8 * i));
    for (int i = 7; i >= 0; i--) p[n++] = (uint8_t)((uint64_t)(2000 + seq) >> (8 * i));
    p[n++] = 3;
    memset(p + n, 0xAB, 16), n += 16;
    p[n++] = (uint8_t)has_hash;
    memset(p + n, (int)seq, 32), n += 32;
    for (int i = 3; i >= 0; i--) p[n++] = (uint8_t)(dl >> (8 * i));
    memcpy(p + n, data, dl), n += dl;
    return n;
}

struct seen {
    int n, bad, revoked, order_ok;
    uint64_t seq[8];
    uint32_t gen;
};

static int on_revoked(const uint8_t player[16], uint32_t gen, void *ctx)
{
    struct seen *s = ctx;
    s->revoked++;
    s->gen = gen;
    s->order_ok = s->n == 1 && player[0] == 0x5A && player[15] == 0x5A;
    return 0;
}

static int on_record(const struct store_event *ev, void *ctx)
{
    struct seen *s = ctx;
    if (s->n < 8) s->seq[s->n] = ev->seq;
    s->n++;
    if (ev->time_ms != 2000 + (int64_t)ev->seq || ev->type != 3 || ev->player[15] != 0xAB ||
        ev->hash[31] != (uint8_t)ev->seq)
        s->bad++;
    return 0;
}

TEST(feed_bodies_parse_or_are_refused_whole)
{
    uint8_t b[1024];
    size_t n = record(b, "hunt-1", 7, "{\"x\":1}", 1);
    n += record(b + n, "h", 8, "", 0);
    struct seen s = {0};
    CHECK_EQ_INT(feed_parse(b, n, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(feed_parse(b, n, on_record, NULL, &s), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_INT(s.bad, 0);
    CHECK_EQ_INT((int)s.seq[0], 7);
    CHECK_EQ_INT((int)s.seq[1], 8);
    CHECK_EQ_INT(feed_parse(b, 0, NULL, NULL, NULL), 0); /* nothing: fine */
    for (size_t cut = 1; cut < n; cut++) { /* every prefix that ends inside a record */
        size_t first = record((uint8_t[1024]){0}, "hunt-1", 7, "{\"x\":1}", 1);
        if (cut == first) continue;
        CHECK_EQ_INT(feed_parse(b, cut, NULL, NULL, NULL), -1);
    }
    uint8_t bad[256];
    size_t m = record(bad, "h", 0, "", 0); /* seq 0 */
    CHECK_EQ_INT(feed_parse(bad, m, NULL, NULL, NULL), -1);
    m = record(bad, "h", 1, "", 2); /* has_hash neither 0 nor 1 */
    CHECK_EQ_INT(feed_parse(bad, m, NULL, NULL, NULL), -1);
    m = record(bad, "ab", 1, "", 0);
    bad[2] = '\0'; /* a NUL inside the id */
    CHECK_EQ_INT(feed_parse(bad, m, NULL, NULL, NULL), -1);
    m = record(bad, "h", 1, "abc", 0);
    bad[m - 4] = 0xff; /* a data length past the end */
    CHECK_EQ_INT(feed_parse(bad, m, NULL, NULL, NULL), -1);
    /* Revocations (a 0 where a hunt id's length would be) between events. */
    uint8_t rv[21] = {0};
    memset(rv + 1, 0x5A, 16);
    rv[17] = 0, rv[18] = 0, rv[19] = 1, rv[20] = 2; /* generation 258 */
    n = record(b, "h", 9, "", 0);
    memcpy(b + n, rv, sizeof rv), n += sizeof rv;
    n += record(b + n, "h", 10, "", 0);
    struct seen s2 = {0};
    CHECK_EQ_INT(feed_parse(b, n, on_record, on_revoked, &s2), 0);
    CHECK_EQ_INT(s2.n, 2);
    CHECK_EQ_INT(s2.revoked, 1);
    CHECK_EQ_INT((int)s2.gen, 258);
    CHECK_EQ_INT(s2.order_ok, 1); /* the revocation between the two events */
    CHECK_EQ_INT(feed_parse(rv, sizeof rv - 1, NULL, NULL, NULL), -1); /* cut short */
}

struct landed {
    uint64_t seqs[64];
    int n, done_before_landed;
    int dones;
};

static void on_landed(const struct store_event *ev, void *ctx)
{
    struct landed *l = ctx;
    if (l->n < 64) l->seqs[l->n] = ev->seq;
    if (l->dones > l->n) l->done_before_landed++;
    l->n++;
}

static void on_entry_done(void *arg, int status)
{
    struct landed *l = arg;
    l->dones++;
}

TEST(the_log_reports_each_landed_event_before_its_entry)
{
    h2o_loop_t *loop = h2o_evloop_create();
    struct store *s;
    char err[256];
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct log *l = log_create(s, loop, 1000);
    static struct landed got;
    memset(&got, 0, sizeof got);
    log_on_landed(l, on_landed, &got);
    for (uint64_t q = 1; q <= 40; q++) {
        struct log_entry *e = log_entry_create(on_entry_done, &got);
        struct store_event ev = {"landed", q, 1, 2, {0}, (const uint8_t *)"x", 1, {0}, 0, 0};
        CHECK(e && !log_entry_event(e, &ev));
        if (q % 2) { /* entries without an event report nothing */
            struct store_player p = {{(uint8_t)q}, "p", 1, 0};
            CHECK_EQ_INT(log_entry_player(e, &p), 0);
        }
        CHECK_EQ_INT(log_submit(l, e), 0);
        if (q % 7 == 0) h2o_evloop_run(loop, 0);
    }
    struct log_entry *e = log_entry_create(on_entry_done, &got);
    struct store_player p = {{0xEE}, "only", 1, 0};
    CHECK(e && !log_entry_player(e, &p));
    CHECK_EQ_INT(log_submit(l, e), 0);
    for (int i = 0; i < 2000 && got.dones < 41; i++) h2o_evloop_run(loop, 5);
    CHECK_EQ_INT(got.dones, 41);
    CHECK_EQ_INT(got.n, 40);
    CHECK_EQ_INT(got.done_before_landed, 0);
    int in_order = 1;
    for (int i = 0; i < 40; i++) in_order &= got.seqs[i] == (uint64_t)i + 1;
    CHECK(in_order);
    log_destroy(l);
    store_close(s);
    h2o_evloop_destroy(loop);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(url, sizeof url, "sqlite:%s/feed.db", dir);
    RUN(tail_fetches_in_order_with_every_event);
    RUN(tail_jobs_run_on_the_thread_in_order_with_fetches);
    RUN(feed_bodies_parse_or_are_refused_whole);
    RUN(the_log_reports_each_landed_event_before_its_entry);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return HARNESS_DONE();
}
