/* test_snapshot.c — engine snapshots: a rich hunt (redefinition, keys, explicit and
 * range chests, map version, long histories) round-trips with equal digest, equal
 * queries and byte-identical re-encoding; events after a snapshot apply the same as on
 * the original; every truncation and every single-bit flip is refused; a snapshot of
 * another hunt is refused; bodies with a valid checksum but garbage inside are refused
 * or decoded without harm (never a crash: run under ASan/UBSan by make SANITIZE=...). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "crc64_xz.h"
#include "harness.h"

#define T0 1796115600000LL /* 2026-12-01T09:00:00.000Z */
#define NOW (T0 + 3600000LL)
#define NCODES 30

static const uint8_t SEED[ENGINE_SEED_BYTES] = "seed of the snapshot tests: 32 b";

static void pid(uint8_t out[16], unsigned n)
{
    memset(out, 0, 16);
    out[0] = 0x01;
    out[6] = 0x70;
    memcpy(out + 8, &n, sizeof n);
}

/* A definition with NCODES codes (extra_code adds one more, for a redefinition), two
 * items, a zone of explicit chests (one needs a key) and a zone with a chest_range. */
static char *definition(int extra_code)
{
    static char buf[8192];
    int n = snprintf(buf, sizeof buf,
                     "{\"name\":\"Snap\",\"starts_at\":\"2026-12-01T09:00:00.000Z\","
                     "\"ends_at\":\"2026-12-03T09:00:00Z\",\"map\":{\"width\":64,\"height\":64},"
                     "\"codes\":[");
    for (int i = 0; i < NCODES + extra_code; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n,
                      "%s{\"id\":\"c%d\",\"points\":%d,\"x\":1,\"y\":2}", i ? "," : "", i,
                      (i * 7) % 50);
    snprintf(buf + n, sizeof buf - (size_t)n,
             "],\"items\":[{\"id\":\"key\",\"x\":5,\"y\":5,\"quantity\":50},"
             "{\"id\":\"gem\",\"x\":6,\"y\":6,\"quantity\":3}],"
             "\"zones\":[{\"id\":\"atrium\",\"x\":0,\"y\":0,\"w\":8,\"h\":8,\"chests\":["
             "{\"id\":\"a1\",\"points\":100,\"loot\":[\"gem\",\"coin\"],\"requires\":\"key\"},"
             "{\"id\":\"a2\",\"points\":10,\"requires\":\"key\"},{\"id\":\"a3\",\"points\":10}]},"
             "{\"id\":\"hall\",\"x\":8,\"y\":8,\"w\":4,\"h\":4,\"chest_range\":"
             "{\"prefix\":\"drop-\",\"count\":40,\"points\":1,\"loot\":[\"coin\"]}}]}");
    return buf;
}

static uint64_t rng = 42;
static unsigned rnd(unsigned n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng >> 33) % n);
}

/* Decides one random command on h; 1 and the event in ev when accepted. */
static int random_event(struct hunt *h, unsigned players, struct event *ev)
{
    uint8_t id[16];
    char code[16];
    pid(id, rnd(players));
    switch (rnd(6)) {
    case 0:
    case 1:
    case 2:
        snprintf(code, sizeof code, "c%u", rnd(NCODES));
        return engine_scan(h, id, code, NOW, ev) == 0;
    case 3:
        return engine_collect(h, id, rnd(4) ? "key" : "gem", NOW, ev) == 0;
    case 4:
        return engine_open(h, id, "atrium", NOW, ev) == 0;
    default:
        return engine_open(h, id, "hall", NOW, ev) == 0;
    }
}

static void apply_ok(struct hunt *h, const struct event *ev)
{
    char err[256];
    int rc = engine_apply(h, ev, NULL, err, sizeof err);
    if (rc) fprintf(stderr, "  apply: %s\n", err);
    CHECK_EQ_INT(rc, 0);
}

static void apply_json(struct hunt *h, const char *json, int64_t map)
{
    struct event ev;
    char err[256];
    if (json)
        CHECK_EQ_INT(engine_define(h, json, strlen(json), SEED, NOW, &ev, err, sizeof err), 0);
    else
        CHECK_EQ_INT(engine_map(h, map, NOW, &ev), 0);
    apply_ok(h, &ev);
}

/* A hunt with a redefinition, a published map, `events` random accepted commands among
 * `players` players, and player 0 with a long history (every code). */
static struct hunt *rich(unsigned players, unsigned events)
{
    struct hunt *h = engine_hunt_create("snap");
    struct event ev;
    apply_json(h, definition(0), 0);
    for (unsigned i = 0; i < NCODES; i++) {
        char code[16];
        uint8_t id[16];
        pid(id, 0);
        snprintf(code, sizeof code, "c%u", i);
        if (engine_scan(h, id, code, NOW, &ev) == 0) apply_ok(h, &ev);
    }
    for (unsigned n = 0; n < events / 2;)
        if (random_event(h, players, &ev)) apply_ok(h, &ev), n++;
    apply_json(h, definition(1), 0);
    apply_json(h, NULL, 3);
    for (unsigned n = 0; n < events - events / 2;)
        if (random_event(h, players, &ev)) apply_ok(h, &ev), n++;
    return h;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* Every query of a and b answers the same. */
static void same_answers(const struct hunt *a, const struct hunt *b, unsigned players)
{
    CHECK_EQ_INT(engine_digest(a), engine_digest(b));
    CHECK_EQ_INT(engine_seq(a), engine_seq(b));
    CHECK_EQ_INT(engine_map_version(a), engine_map_version(b));
    char *x = dump(engine_hunt_json(a)), *y = dump(engine_hunt_json(b));
    CHECK_EQ_STR(x, y);
    free(x);
    free(y);
    for (unsigned p = 0; p < players; p++) {
        uint8_t id[16];
        pid(id, p);
        x = dump(engine_me_json(a, id));
        y = dump(engine_me_json(b, id));
        CHECK_EQ_STR(x, y);
        free(x);
        free(y);
    }
    struct engine_lb_row ra[100], rb[100];
    size_t na = engine_lb_top(a, 0, 100, ra), nb = engine_lb_top(b, 0, 100, rb);
    CHECK_EQ_INT(na, nb);
    CHECK(memcmp(ra, rb, na * sizeof ra[0]) == 0);
    struct engine_stats sa, sb;
    engine_stats(a, &sa);
    engine_stats(b, &sb);
    CHECK(memcmp(&sa, &sb, sizeof sa) == 0);
}

static struct hunt *decode_ok(const char *id, const uint8_t *buf, size_t len)
{
    struct hunt *h = NULL;
    char err[256];
    int rc = engine_snapshot_decode(id, buf, len, &h, err, sizeof err);
    if (rc) fprintf(stderr, "  decode: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    return h;
}

TEST(t_round_trip)
{
    struct hunt *h = rich(40, 600);
    uint8_t *buf, *again;
    size_t len, len2;
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    struct hunt *d = decode_ok("snap", buf, len);
    if (d) {
        same_answers(h, d, 40);
        CHECK_EQ_INT(engine_snapshot_encode(d, &again, &len2), 0);
        CHECK(len == len2 && memcmp(buf, again, len) == 0);
        free(again);
    }
    CHECK_EQ_INT(engine_snapshot_check(buf, len, NULL, 0), 0);
    engine_hunt_destroy(d);
    engine_hunt_destroy(h);
    free(buf);
}

TEST(t_empty_and_fresh)
{
    struct hunt *h = engine_hunt_create("empty");
    uint8_t *buf;
    size_t len;
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    struct hunt *d = decode_ok("empty", buf, len);
    if (d) CHECK_EQ_INT(engine_digest(d), engine_digest(h));
    CHECK(d && !engine_defined(d));
    engine_hunt_destroy(d);
    free(buf);
    apply_json(h, definition(0), 0);
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    d = decode_ok("empty", buf, len);
    if (d) same_answers(h, d, 3);
    engine_hunt_destroy(d);
    engine_hunt_destroy(h);
    free(buf);
}

/* The same events, decided on the original, applied to both: equal after each, and
 * the copy decides the same (the chest choice included). */
TEST(t_events_after)
{
    struct hunt *h = rich(30, 300);
    uint8_t *buf;
    size_t len;
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    struct hunt *d = decode_ok("snap", buf, len);
    free(buf);
    if (!d) {
        engine_hunt_destroy(h);
        return;
    }
    unsigned accepted = 0;
    for (int i = 0; i < 600; i++) {
        struct event ev, ev2;
        uint64_t saved = rng;
        int ok = random_event(h, 35, &ev);
        rng = saved;
        int ok2 = random_event(d, 35, &ev2);
        CHECK_EQ_INT(ok, ok2);
        if (!ok || !ok2) continue;
        CHECK(ev.type == ev2.type && !strcmp(ev.a, ev2.a) && !strcmp(ev.b, ev2.b));
        apply_ok(h, &ev);
        apply_ok(d, &ev);
        accepted++;
        CHECK_EQ_INT(engine_digest(h), engine_digest(d));
    }
    CHECK(accepted > 100);
    same_answers(h, d, 35);
    engine_hunt_destroy(d);
    engine_hunt_destroy(h);
}

/* A snapshot of a hunt with very few players, joined by many more afterwards: the
 * decoded player array must grow (it was sized exactly, and 1 + 1/2 stayed 1). */
TEST(t_few_players_then_many)
{
    for (unsigned before = 1; before <= 3; before++) {
        struct hunt *h = rich(before, 8);
        uint8_t *buf;
        size_t len;
        CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
        struct hunt *d = decode_ok("snap", buf, len);
        free(buf);
        for (int i = 0; d && i < 400; i++) {
            struct event ev;
            if (!random_event(h, 60, &ev)) continue;
            apply_ok(h, &ev);
            apply_ok(d, &ev);
        }
        if (d) CHECK_EQ_INT(engine_digest(h), engine_digest(d));
        if (d) same_answers(h, d, 60);
        engine_hunt_destroy(d);
        engine_hunt_destroy(h);
    }
}

static void refused(const uint8_t *buf, size_t len, const char *why, size_t at)
{
    struct hunt *d = (struct hunt *)1;
    char err[256] = "";
    int rc = engine_snapshot_decode("snap", buf, len, &d, err, sizeof err);
    if (rc != ENGINE_BAD_SNAPSHOT || d != NULL || !err[0]) {
        fprintf(stderr, "  %s at %zu accepted (rc %d)\n", why, at, rc);
        CHECK(0);
    }
    engine_hunt_destroy(rc ? NULL : d);
}

TEST(t_truncations_and_flips)
{
    struct hunt *h = rich(8, 60);
    uint8_t *buf;
    size_t len;
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    int before = harness_cur_failed;
    for (size_t n = 0; n < len && harness_cur_failed == before; n++)
        refused(buf, n, "truncation", n);
    for (size_t i = 0; i < len && harness_cur_failed == before; i++)
        for (int b = 0; b < 8; b++) {
            buf[i] ^= (uint8_t)(1u << b);
            refused(buf, len, "bit flip", i * 8 + (size_t)b);
            buf[i] ^= (uint8_t)(1u << b);
        }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    refused(longer, len + 1, "extra byte", len);
    free(longer);
    printf("  %zu truncations and %zu bit flips of a %zu-byte snapshot refused\n", len, len * 8,
           len);
    engine_hunt_destroy(h);
    free(buf);
}

TEST(t_other_hunt)
{
    struct hunt *h = rich(4, 20), *d = NULL;
    uint8_t *buf;
    size_t len;
    char err[256];
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    CHECK_EQ_INT(engine_snapshot_decode("other", buf, len, &d, err, sizeof err),
                 ENGINE_BAD_SNAPSHOT);
    CHECK(strstr(err, "'snap'") && strstr(err, "'other'"));
    CHECK_EQ_STR(engine_err_code(ENGINE_BAD_SNAPSHOT), "bad_snapshot");
    engine_hunt_destroy(h);
    free(buf);
}

static void reseal(uint8_t *buf, size_t len)
{
    uint64_t c = crc64_xz(buf, len - 8);
    for (int i = 0; i < 8; i++)
        buf[len - 8 + i] = (uint8_t)(c >> (8 * i));
}

/* Bodies that pass the checksum but were changed inside: decoding never crashes or
 * leaks; a decoded hunt is usable. Also shows the checksum is the CRC-64 it claims. */
TEST(t_resealed_garbage)
{
    struct hunt *h = rich(6, 40);
    uint8_t *buf;
    size_t len;
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    uint8_t *m = malloc(len);
    memcpy(m, buf, len);
    reseal(m, len);
    CHECK(memcmp(m, buf, len) == 0);
    unsigned ok = 0, bad = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(m, buf, len);
        for (int k = 0, n = 1 + (int)rnd(3); k < n; k++)
            m[16 + rnd((unsigned)(len - 24))] = (uint8_t)rnd(256);
        reseal(m, len);
        struct hunt *d = NULL;
        char err[256];
        int rc = engine_snapshot_decode("snap", m, len, &d, err, sizeof err);
        CHECK(rc == 0 || rc == ENGINE_BAD_SNAPSHOT);
        if (rc == 0) {
            ok++;
            uint8_t *again;
            size_t n2;
            CHECK_EQ_INT(engine_snapshot_encode(d, &again, &n2), 0);
            free(again);
            engine_hunt_destroy(d);
        } else {
            bad++;
        }
    }
    printf("  resealed random changes: %u refused, %u decoded (changes a checksum cannot "
           "tell from real state, such as a score)\n",
           bad, ok);
    CHECK(bad > 0);
    free(m);
    free(buf);
    engine_hunt_destroy(h);
}

int main(void)
{
    RUN(t_round_trip);
    RUN(t_empty_and_fresh);
    RUN(t_events_after);
    RUN(t_few_players_then_many);
    RUN(t_truncations_and_flips);
    RUN(t_other_hunt);
    RUN(t_resealed_garbage);
    return HARNESS_DONE();
}
