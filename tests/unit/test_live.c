/* Unit tests: live.c resumes (since=) — served in bounded slices per connection and per
 * loop turn, gapless and without duplicates while events are published during the
 * catch-up, one archive (one pass over the log) per hunt whatever the number of
 * resumes, another hunt's subscribers unaffected, resyncs only for what is not kept.
 *
 * A real libh2o loop, one end of a socketpair as each WebSocket connection (the test
 * reads the other end), a SQLite store as the log. Each h2o_evloop_run is one loop turn,
 * so a test can publish between turns and check what a single turn sent. */
#include <fcntl.h>
#include <h2o.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "live.h"
#include "store.h"

static char dir[] = "/tmp/veltrix-live-XXXXXX";
static int db_n;

struct fx {
    h2o_evloop_t *loop;
    struct store *st;
    struct live *l;
    struct hunt *h[2];
    int64_t now_ms;
};

static const char *name_of(const uint8_t player[16], void *ctx) { return "p"; }

static struct live_config config(void)
{
    struct live_config c = {64, 1 << 20, 600000, 250, 200, 32 * 1024, 100000, 1024, 1 << 20, 60000};
    return c;
}

static int unpublished; /* commit() writes the store only: events another node wrote */

/* Writes ev to the store, then publishes its frame (as api.c does once it is durable). */
static void commit(struct fx *f, struct hunt *h, const struct event *ev)
{
    struct engine_outcome out;
    CHECK_EQ_INT(engine_apply(h, ev, &out, NULL, 0), 0);
    struct ws_buf *b = unpublished ? NULL : live_event_frame(f->l, h, ev, &out);
    uint8_t small[256], *data = small;
    size_t n = event_encode(ev, small, sizeof small);
    if (n > sizeof small && (data = malloc(n))) event_encode(ev, data, n);
    struct store_event se = {engine_hunt_id(h), ev->seq, ev->time_ms, ev->type, {0}, data, n, {0}, 0, 0};
    memcpy(se.player, ev->player, 16);
    CHECK_EQ_INT(store_begin(f->st), 0);
    CHECK_EQ_INT(store_put_event(f->st, &se), 0);
    CHECK_EQ_INT(store_commit(f->st), 0);
    if (data != small) free(data);
    CHECK(b != NULL || unpublished);
    if (b) live_publish(f->l, h, b);
}

/* Defines h with codes c0..c<codes-1>; pad makes each code id that much longer. */
static void define(struct fx *f, struct hunt *h, int codes, int pad)
{
    size_t cap = (size_t)codes * (size_t)(80 + pad) + 100, len = 0;
    char *j = malloc(cap), err[200];
    len += (size_t)snprintf(j + len, cap - len, "{\"name\":\"t\",\"map\":{\"width\":10,\"height\""
                                                ":10},\"items\":[],\"zones\":[],\"codes\":[");
    for (int i = 0; i < codes; i++)
        len += (size_t)snprintf(j + len, cap - len, "%s{\"id\":\"c%d%.*s\",\"points\":%d,\"x\":1,"
                                "\"y\":1}", i ? "," : "", i, pad,
                                "-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 1 + i % 7);
    len += (size_t)snprintf(j + len, cap - len, "]}");
    struct event ev;
    static const uint8_t seed[ENGINE_SEED_BYTES] = {7};
    int rc = engine_define(h, j, len, engine_defined(h) ? NULL : seed, f->now_ms, &ev, err,
                           sizeof err);
    if (rc) fprintf(stderr, "  define: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    if (!rc) commit(f, h, &ev);
    free(j);
}

/* Player p scans code k (of a definition with pad 0). */
static void scan(struct fx *f, struct hunt *h, int p, int k)
{
    uint8_t player[16] = {(uint8_t)(p + 1), (uint8_t)((p + 1) >> 8)};
    char code[16];
    struct event ev;
    snprintf(code, sizeof code, "c%d", k);
    int rc = engine_scan(h, player, code, ++f->now_ms, &ev);
    CHECK_EQ_INT(rc, 0);
    if (!rc) commit(f, h, &ev);
}

/* n events in h: the definition (100 codes) and n - 1 scans. */
static void fill(struct fx *f, struct hunt *h, int n)
{
    define(f, h, 100, 0);
    for (int i = 0; i < n - 1; i++) scan(f, h, i / 100, i % 100);
}

/* The next scan of h, for a hunt made by fill(). */
static void one_more(struct fx *f, struct hunt *h)
{
    uint64_t i = engine_seq(h) - 1;
    scan(f, h, (int)(i / 100), (int)(i % 100));
}

static void fx_init(struct fx *f, struct live_config cfg, int with_store)
{
    char url[128], err[200];
    memset(f, 0, sizeof *f);
    f->now_ms = 1700000000000;
    snprintf(url, sizeof url, "sqlite:%s/t%d.db", dir, db_n++);
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &f->st, err, sizeof err), 0);
    f->loop = h2o_evloop_create();
    f->l = live_create(f->loop, with_store ? f->st : NULL, &cfg, name_of, NULL);
    f->h[0] = engine_hunt_create("ha");
    f->h[1] = engine_hunt_create("hb");
    CHECK(f->l && f->h[0] && f->h[1]);
}

static void fx_deinit(struct fx *f)
{
    live_destroy(f->l);
    for (int i = 0; i < 100; i++) h2o_evloop_run(f->loop, 0); /* the sockets' close callbacks */
    h2o_evloop_destroy(f->loop);
    engine_hunt_destroy(f->h[0]);
    engine_hunt_destroy(f->h[1]);
    store_close(f->st);
}

static void turn(struct fx *f) { h2o_evloop_run(f->loop, 5); }

/* One line of /metrics. */
static uint64_t metric(struct fx *f, const char *name)
{
    struct metrics_buf b = {0};
    live_render_metrics(f->l, &b);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = b.p ? strstr(b.p, key) : NULL;
    uint64_t v = p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
    free(b.p);
    CHECK(p != NULL);
    return v;
}

/* The test's end of one live connection. */
struct client {
    int fd;
    uint8_t buf[1 << 16];
    size_t len;
    uint64_t *seqs; /* durable events received, in order */
    size_t n, cap;
    int resyncs, closed;
    uint64_t resync_seq, resync_after; /* the resync's seq; events before it */
    size_t event_bytes;                /* frame bytes of the durable events received */
};

static void client_open(struct fx *f, struct hunt *h, struct client *c, int64_t since)
{
    int sv[2];
    uint8_t player[16] = {0xee};
    memset(c, 0, sizeof *c);
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    c->fd = sv[1];
    h2o_socket_t *sock = h2o_evloop_socket_create(f->loop, sv[0], 0);
    CHECK_EQ_INT(live_subscribe(f->l, h, sock, player, since), 0);
}

static void client_close(struct client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->seqs);
    c->seqs = NULL;
}

static void got_text(struct client *c, const uint8_t *p, size_t n, size_t frame_len)
{
    json_t *j = json_loadb((const char *)p, n, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *seq = json_object_get(j, "seq");
    CHECK(j != NULL);
    if (type && !strcmp(type, "resync")) {
        c->resyncs++;
        c->resync_seq = (uint64_t)json_integer_value(seq);
        c->resync_after = c->n;
    } else if (json_is_integer(seq) && !(type && !strcmp(type, "leaderboard"))) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 256;
            c->seqs = realloc(c->seqs, c->cap * sizeof *c->seqs);
        }
        c->seqs[c->n++] = (uint64_t)json_integer_value(seq);
        c->event_bytes += frame_len;
    }
    json_decref(j);
}

/* Reads what the server sent so far; returns the frame bytes of durable events in it. */
static size_t client_read(struct client *c)
{
    size_t before = c->event_bytes;
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (r == 0) c->closed = 1;
        if (r <= 0) break;
        c->len += (size_t)r;
        size_t at = 0;
        while (c->len - at >= 2) {
            const uint8_t *p = c->buf + at;
            uint64_t n = p[1] & 0x7f;
            size_t h = 2;
            CHECK(n != 127); /* no frame here is 64 KiB */
            if (n == 126) {
                if (c->len - at < 4) break;
                n = (uint64_t)p[2] << 8 | p[3];
                h = 4;
            }
            if (c->len - at < h + n) break;
            if ((p[0] & 0x0f) == 1) got_text(c, p + h, n, h + n);
            if ((p[0] & 0x0f) == 8) c->closed = 1;
            at += h + n;
        }
        memmove(c->buf, c->buf + at, c->len - at);
        c->len -= at;
    }
    return c->event_bytes - before;
}

/* 1 if c got exactly from..to, in order. */
static int got_range(const struct client *c, uint64_t from, uint64_t to)
{
    if (c->n != to + 1 - from) {
        fprintf(stderr, "  got %zu events, want %llu..%llu\n", c->n, (unsigned long long)from,
                (unsigned long long)to);
        return 0;
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->seqs[i] != from + i) {
            fprintf(stderr, "  event %zu is seq %llu, want %llu\n", i,
                    (unsigned long long)c->seqs[i], (unsigned long long)(from + i));
            return 0;
        }
    return 1;
}

/* Turns (reading c) until c has seq `last` or `turns` turns went by. */
static void run_until(struct fx *f, struct client *c, uint64_t last, int turns)
{
    for (int i = 0; i < turns && !(c->n && c->seqs[c->n - 1] >= last); i++) {
        turn(f);
        client_read(c);
    }
}

/* One turn sends at most one slice (1 KiB) of catch-up to a connection; an event is
 * published between every two turns, and with a window of 8 most of them have left it
 * before the connection reaches them: it still gets 1..N once each, in order. */
TEST(catch_up_sliced_and_gapless)
{
    struct fx f;
    struct live_config cfg = config();
    cfg.window_events = 8;
    fx_init(&f, cfg, 1);
    fill(&f, f.h[0], 300);
    struct client c;
    client_open(&f, f.h[0], &c, 0);
    int published = 0, over = 0, catching_turns = 0;
    for (int i = 0; i < 5000 && (published < 200 || c.n < 500); i++) {
        int catching = metric(&f, "veltrix_live_replay_catching_up") == 1;
        turn(&f);
        size_t got = client_read(&c);
        if (catching) catching_turns++;
        if (catching && got > 1024) over++;
        if (published < 200 && i % 2) {
            one_more(&f, f.h[0]);
            published++;
        }
    }
    CHECK(got_range(&c, 1, 500));
    CHECK_EQ_INT(c.resyncs, 0);
    CHECK_EQ_INT(over, 0);
    CHECK(catching_turns > 10);
    CHECK(metric(&f, "veltrix_live_replay_slices_total") >= c.event_bytes / 1024);
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_catching_up"), 0);
    CHECK_EQ_INT(metric(&f, "veltrix_live_resyncs_total"), 0);
    client_close(&c);
    fx_deinit(&f);
}

/* Three resumes of a hunt with a 1 MB definition, two at once and one after 20 more
 * events (which left the window of 4 once the archive had joined it): the log is read
 * once into one archive (the definition parsed once), and each gets every event. */
TEST(one_archive_for_many_resumes)
{
    struct fx f;
    struct live_config cfg = config();
    cfg.window_events = 4;
    fx_init(&f, cfg, 1);
    define(&f, f.h[0], 10000, 58);
    struct client a, b, c;
    for (int i = 0; i < 219; i++) {
        uint8_t player[16] = {(uint8_t)(1 + i / 50)};
        char code[96];
        struct event ev;
        snprintf(code, sizeof code, "c%d%.58s", i % 50,
                 "-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        CHECK_EQ_INT(engine_scan(f.h[0], player, code, ++f.now_ms, &ev), 0);
        commit(&f, f.h[0], &ev);
        if (i != 198) continue;
        client_open(&f, f.h[0], &a, 0);
        client_open(&f, f.h[0], &b, 50);
        for (int k = 0; k < 3000 && (a.n < 200 || b.n < 150); k++) {
            turn(&f);
            client_read(&a);
            client_read(&b);
        }
    }
    client_open(&f, f.h[0], &c, 0);
    run_until(&f, &c, 220, 3000);
    for (int i = 0; i < 5; i++) {
        turn(&f);
        client_read(&a);
        client_read(&b);
    }
    CHECK(got_range(&a, 1, 220));
    CHECK(got_range(&b, 51, 220));
    CHECK(got_range(&c, 1, 220));
    CHECK_EQ_INT(a.resyncs + b.resyncs + c.resyncs, 0);
    CHECK_EQ_INT(metric(&f, "veltrix_live_store_replays_total"), 1);
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_store_events_total"), 200 - 4);
    CHECK(metric(&f, "veltrix_live_replay_archive_bytes") > 0);
    client_close(&a);
    client_close(&b);
    client_close(&c);
    fx_deinit(&f);
}

/* With a turn budget of 2 KiB, hunt A's resume of 2,000 events that nobody reads, and
 * hunt B's resume and live subscriber: B's get every event in order, no resync, while A's
 * waits for its socket; then A's gets all of its own, including those published since. */
TEST(other_hunt_unaffected)
{
    struct fx f;
    struct live_config cfg = config();
    cfg.window_events = 16;
    cfg.replay_turn_bytes = 2048;
    fx_init(&f, cfg, 1);
    fill(&f, f.h[0], 2000);
    fill(&f, f.h[1], 50);
    struct client a, br, bl;
    client_open(&f, f.h[0], &a, 0);
    client_open(&f, f.h[1], &br, 0);
    client_open(&f, f.h[1], &bl, 50);
    for (int i = 0; i < 300; i++) {
        turn(&f);
        client_read(&br);
        client_read(&bl);
        if (i % 2) one_more(&f, f.h[1]);
        if (i % 3 == 0) one_more(&f, f.h[0]);
    }
    run_until(&f, &bl, 200, 100);
    client_read(&br); /* the same flush as bl's */
    CHECK(got_range(&br, 1, 200));
    CHECK(got_range(&bl, 51, 200));
    CHECK_EQ_INT(br.resyncs + bl.resyncs, 0);
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_catching_up"), 1); /* A's, not read */
    run_until(&f, &a, 2100, 20000);
    CHECK(got_range(&a, 1, 2100));
    CHECK_EQ_INT(a.resyncs, 0);
    CHECK_EQ_INT(metric(&f, "veltrix_live_resyncs_total"), 0);
    client_close(&a);
    client_close(&br);
    client_close(&bl);
    fx_deinit(&f);
}

/* Resyncs only for what is not kept: a since ahead of the hunt; older than the window of
 * a hunt over replay_events_max, or with no store; the window itself is always served. */
TEST(resync_only_when_not_kept)
{
    struct fx f;
    struct live_config cfg = config();
    cfg.window_events = 8;
    cfg.replay_events_max = 50;
    fx_init(&f, cfg, 1);
    fill(&f, f.h[0], 100);
    struct client old, ahead, edge, now;
    client_open(&f, f.h[0], &old, 10);
    client_open(&f, f.h[0], &ahead, 200);
    client_open(&f, f.h[0], &edge, 92);
    client_open(&f, f.h[0], &now, 100);
    for (int i = 0; i < 20; i++) turn(&f);
    one_more(&f, f.h[0]);
    struct client *all[] = {&old, &ahead, &edge, &now};
    for (int i = 0; i < 20; i++) {
        turn(&f);
        for (int k = 0; k < 4; k++) client_read(all[k]);
    }
    CHECK_EQ_INT(old.resyncs, 1);
    CHECK_EQ_INT(old.resync_seq, 100);
    CHECK(got_range(&old, 101, 101));
    CHECK_EQ_INT(ahead.resyncs, 1);
    CHECK_EQ_INT(ahead.resync_seq, 100);
    CHECK(got_range(&edge, 93, 101));
    CHECK_EQ_INT(edge.resyncs, 0);
    CHECK(got_range(&now, 101, 101));
    CHECK_EQ_INT(now.resyncs, 0);
    CHECK(metric(&f, "veltrix_live_store_replays_refused_total") >= 1);
    for (int k = 0; k < 4; k++) client_close(all[k]);
    fx_deinit(&f);

    fx_init(&f, config(), 0); /* no store to replay from */
    fill(&f, f.h[0], 10);
    live_destroy(f.l);
    cfg = config();
    f.l = live_create(f.loop, NULL, &cfg, name_of, NULL); /* a restart: windows empty */
    client_open(&f, f.h[0], &old, 0);
    for (int i = 0; i < 10; i++) turn(&f);
    client_read(&old);
    CHECK_EQ_INT(old.resyncs, 1);
    CHECK_EQ_INT(old.resync_seq, 10);
    client_close(&old);
    fx_deinit(&f);
}

/* A hunt that grows past replay_events_max while a resume is under way: the resume gets
 * what the archive had, gapless, then a resync (what it needs is no longer kept), then
 * live events. */
TEST(hunt_outgrows_replay_max_mid_catch_up)
{
    struct fx f;
    struct live_config cfg = config();
    cfg.window_events = 4;
    cfg.replay_events_max = 3000;
    fx_init(&f, cfg, 1);
    fill(&f, f.h[0], 2990);
    struct client c;
    client_open(&f, f.h[0], &c, 0);
    for (int i = 0; i < 50; i++) turn(&f); /* not read: stops when the socket is full */
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_catching_up"), 1);
    for (int i = 0; i < 20; i++) one_more(&f, f.h[0]);
    for (int i = 0; i < 20000 && !c.resyncs; i++) {
        turn(&f);
        client_read(&c);
    }
    CHECK_EQ_INT(c.resyncs, 1);
    CHECK_EQ_INT(c.resync_seq, 3010);
    CHECK(c.resync_after >= 1 && c.resync_after < 2990);
    CHECK(c.n == c.resync_after && got_range(&c, 1, c.resync_after));
    one_more(&f, f.h[0]);
    size_t before = c.n;
    for (int i = 0; i < 20; i++) {
        turn(&f);
        client_read(&c);
    }
    CHECK_EQ_INT(c.n, before + 1);
    CHECK(c.n && c.seqs[c.n - 1] == 3011);
    client_close(&c);
    fx_deinit(&f);
}

/* A connection that goes away mid catch-up, and one still catching up when live is
 * destroyed: nothing leaks (LeakSanitizer), the gauges go back to 0, and with a keep of
 * 0 ms the archive is freed once its last reader left. */
TEST(close_mid_catch_up)
{
    struct fx f;
    struct live_config cfg = config();
    cfg.window_events = 4;
    cfg.replay_keep_ms = 0;
    fx_init(&f, cfg, 1);
    fill(&f, f.h[0], 2000);
    struct client a, b;
    client_open(&f, f.h[0], &a, 0);
    client_open(&f, f.h[0], &b, 0);
    for (int i = 0; i < 30; i++) turn(&f);
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_catching_up"), 2);
    CHECK(metric(&f, "veltrix_live_replay_archive_bytes") > 0);
    client_close(&a);
    client_close(&b);
    for (int i = 0; i < 50; i++) turn(&f);
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_catching_up"), 0);
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_archive_bytes"), 0);
    CHECK_EQ_INT(live_connections(f.l, f.h[0]), 0);
    client_open(&f, f.h[0], &a, 0);
    for (int i = 0; i < 30; i++) turn(&f);
    CHECK_EQ_INT(metric(&f, "veltrix_live_replay_catching_up"), 1);
    fx_deinit(&f); /* with a's catch-up and its archive under way */
    client_close(&a);
}

/* Several nodes: a fenced owner's hunt is rebuilt from the store at seq 30 while this
 * node published up to 20 (21..30 were written by the new owner). live_rebase: the live
 * clients get 21..30 out of the store, then 31 live, once each, with no resync; a hunt
 * over replay_events_max gets a resync at the new seq instead. */
TEST(rebase_after_a_rebuild)
{
    for (int big = 0; big < 2; big++) {
        struct fx f;
        struct live_config cfg = config();
        cfg.window_events = 8;
        if (big) cfg.replay_events_max = 25;
        fx_init(&f, cfg, 1);
        fill(&f, f.h[0], 20);
        struct client a, b;
        client_open(&f, f.h[0], &a, 20); /* up to date: live */
        client_open(&f, f.h[0], &b, -1);
        turn(&f);
        client_read(&a);
        client_read(&b);
        unpublished = 1;
        for (int i = 0; i < 10; i++) one_more(&f, f.h[0]);
        unpublished = 0;
        live_rebase(f.l, f.h[0], engine_seq(f.h[0]));
        one_more(&f, f.h[0]);
        run_until(&f, &a, 31, 200);
        run_until(&f, &b, 31, 200);
        if (!big) {
            CHECK(got_range(&a, 21, 31));
            CHECK(got_range(&b, 21, 31));
            CHECK_EQ_INT(a.resyncs + b.resyncs, 0);
        } else {
            CHECK(got_range(&a, 31, 31));
            CHECK_EQ_INT(a.resyncs, 1);
            CHECK_EQ_INT(a.resync_seq, 30);
            CHECK_EQ_INT(b.resyncs, 1);
        }
        live_rebase(f.l, f.h[0], engine_seq(f.h[0])); /* nothing missed: nothing happens */
        turn(&f);
        client_read(&a);
        CHECK_EQ_INT(a.resyncs, big);
        client_close(&a);
        client_close(&b);
        fx_deinit(&f);
    }
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    RUN(catch_up_sliced_and_gapless);
    RUN(one_archive_for_many_resumes);
    RUN(other_hunt_unaffected);
    RUN(resync_only_when_not_kept);
    RUN(hunt_outgrows_replay_max_mid_catch_up);
    RUN(close_mid_catch_up);
    RUN(rebase_after_a_rebuild);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return HARNESS_DONE();
}
