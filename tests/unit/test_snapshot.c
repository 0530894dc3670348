/* test_snapshot.c — engine snapshots: a rich hunt (redefinition, keys, explicit and
 * range chests, map version, long histories) round-trips with equal digest, equal
 * queries and byte-identical re-encoding; events after a snapshot apply the same as on
 * the original; every truncation and every single-bit flip is refused; a snapshot of
 * another hunt is refused; bodies with a valid checksum but garbage inside are refused
 * or decoded without harm (never a crash: run under ASan/UBSan by make SANITIZE=...);
 * the draw rule and the seed survive (format version 2), and a version-1 snapshot written
 * before seeds still decodes, as a hunt that keeps the legacy draw. */
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
    char sda[2 * ENGINE_SEED_BYTES + 1] = "", sdb[2 * ENGINE_SEED_BYTES + 1] = "";
    CHECK_EQ_INT(engine_draw_rule(a), engine_draw_rule(b));
    CHECK_EQ_INT(engine_seed_reveal(a, INT64_MAX - 1, sda),
                 engine_seed_reveal(b, INT64_MAX - 1, sdb));
    CHECK_EQ_STR(sda, sdb);
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
        uint8_t ha[ENGINE_HASH_BYTES], hb[ENGINE_HASH_BYTES], zero[ENGINE_HASH_BYTES] = {0};
        engine_head_hash(h, ha);
        engine_head_hash(d, hb);
        CHECK(memcmp(ha, hb, sizeof ha) == 0); /* the head of the hash chain survives */
        CHECK(memcmp(ha, zero, sizeof ha) != 0);
        CHECK_EQ_INT(engine_digest(h), engine_digest(d));
        CHECK_EQ_INT(engine_snapshot_encode(d, &again, &len2), 0);
        CHECK(len == len2 && memcmp(buf, again, len) == 0);
        free(again);
    }
    CHECK_EQ_INT(engine_snapshot_check(buf, len, NULL, 0), 0);
    engine_hunt_destroy(d);
    engine_hunt_destroy(h);
    free(buf);
}

/* The codes of json_t array arr by id: "x" present in the public view, "hidden" in the
 * admin list (-1 when absent). */
static int code_field(json_t *arr, const char *id, const char *field)
{
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) if (!strcmp(json_string_value(json_object_get(c, "id")), id))
    {
        json_t *v = json_object_get(c, field);
        return !v ? -1 : json_is_boolean(v) ? json_is_true(v) : 2;
    }
    return -2;
}

/* A hidden code stays hidden through a snapshot: the flag is part of the definition
 * the snapshot carries (as JSON), so the format needs no new field. */
TEST(t_hidden_code)
{
    static const char def[] =
        "{\"name\":\"Hide\",\"map\":{\"width\":8,\"height\":8},\"codes\":["
        "{\"id\":\"seen\",\"points\":1,\"x\":1,\"y\":2},"
        "{\"id\":\"secret\",\"points\":5,\"x\":3,\"y\":4,\"hidden\":true}]}";
    struct hunt *h = engine_hunt_create("hide");
    apply_json(h, def, 0);
    uint8_t *buf;
    size_t len;
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    struct hunt *d = decode_ok("hide", buf, len);
    for (int k = 0; k < 2 && d; k++) {
        const struct hunt *x = k ? d : h;
        json_t *pub = engine_hunt_json(x), *adm = engine_codes_json(x);
        json_t *codes = json_object_get(pub, "codes");
        CHECK_EQ_INT(code_field(codes, "secret", "x"), -1); /* absent */
        CHECK_EQ_INT(code_field(codes, "secret", "y"), -1);
        CHECK_EQ_INT(code_field(codes, "seen", "x"), 2);
        CHECK_EQ_INT(code_field(adm, "secret", "x"), 2);
        CHECK_EQ_INT(code_field(adm, "secret", "hidden"), 1);
        CHECK_EQ_INT(code_field(adm, "seen", "hidden"), 0);
        json_decref(pub);
        json_decref(adm);
    }
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
        uint8_t p1[256], p2[256];
        size_t n1 = event_encode(&ev, p1, sizeof p1), n2 = event_encode(&ev2, p2, sizeof p2);
        CHECK(ev.type == ev2.type && n1 == n2 && n1 <= sizeof p1 && !memcmp(p1, p2, n1));
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

/* ---- format version 1 (before seeds) ------------------------------------------------ */

#define V1_DEF                                                                                     \
    "{\"name\":\"v1\",\"map\":{\"width\":8,\"height\":8},\"codes\":[{\"id\":\"c0\",\"points\":5,"  \
    "\"x\":1,\"y\":1}],\"items\":[{\"id\":\"key\",\"x\":2,\"y\":2,\"quantity\":5}],\"zones\":[{"   \
    "\"id\":\"z\",\"x\":0,\"y\":0,\"w\":4,\"h\":4,\"chests\":[{\"id\":\"k\",\"points\":9,"         \
    "\"requires\":\"key\"}],\"chest_range\":{\"prefix\":\"r\",\"count\":20,\"points\":1,"          \
    "\"loot\":[\"gem\"]}}]}"

/* engine_snapshot_encode(v1_game()) by the engine of commit 5133acc (format version 1). */
static const char v1_snapshot_hex[] =
    "5658534e01000000b50100000000000004736e61700f0105026330036b6579017a016b0367656d01a8027b22"
    "6e616d65223a227631222c226d6170223a7b227769647468223a382c22686569676874223a387d2c22636f64"
    "6573223a5b7b226964223a226330222c22706f696e7473223a352c2278223a312c2279223a317d5d2c226974"
    "656d73223a5b7b226964223a226b6579222c2278223a322c2279223a322c227175616e74697479223a357d5d"
    "2c227a6f6e6573223a5b7b226964223a227a222c2278223a302c2279223a302c2277223a342c2268223a342c"
    "22636865737473223a5b7b226964223a226b222c22706f696e7473223a392c227265717569726573223a226b"
    "6579227d5d2c2263686573745f72616e6765223a7b22707265666978223a2272222c22636f756e74223a3230"
    "2c22706f696e7473223a312c226c6f6f74223a5b2267656d225d7d7d5d7d0401000000000070000000000000"
    "0000000e0405000a090a21010404010000000000700001000000000000000e080600050a030a0b0201020404"
    "010000000000700002000000000000000e0b05000a170a0d010404010000000000700003000000000000001e"
    "0f0600050a060a270201000402c830b12eb2b3592e";

/* A version-1 snapshot (from before seeds) is intact but has no hash chain: it is
 * refused as ENGINE_OLD_SNAPSHOT, and recovery then replays the whole log. */
TEST(t_version_1)
{
    size_t len = strlen(v1_snapshot_hex) / 2;
    uint8_t *buf = malloc(len);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(v1_snapshot_hex + 2 * i, "%2x", &v);
        buf[i] = (uint8_t)v;
    }
    CHECK_EQ_INT(buf[4], 1);
    struct hunt *d = (struct hunt *)1;
    char err[256] = "";
    CHECK_EQ_INT(engine_snapshot_decode("snap", buf, len, &d, err, sizeof err),
                 ENGINE_OLD_SNAPSHOT);
    CHECK(d == NULL);
    CHECK(strstr(err, "no hash chain") != NULL);
    buf[len - 1] ^= 1; /* a damaged old snapshot is simply bad */
    CHECK_EQ_INT(engine_snapshot_decode("snap", buf, len, &d, err, sizeof err),
                 ENGINE_BAD_SNAPSHOT);
    free(buf);
}

/* Version 2 holds the rule and the seed: a seeded hunt round-trips both; an unknown rule
 * and a seed in a hunt without a definition are refused; other versions too. */
TEST(t_version_2_seed)
{
    struct hunt *h = engine_hunt_create("empty"), *d;
    uint8_t *buf;
    size_t len;
    char err[256];
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    CHECK_EQ_INT(buf[4], 3);
    /* Body: id (1 + 5 bytes), seq 0, map_version -1 (1 byte each), then the rule. */
    CHECK_EQ_INT(buf[24], ENGINE_DRAW_LEGACY);
    uint8_t *m = malloc(len + 32);
    memcpy(m, buf, len);
    m[24] = 7;
    reseal(m, len);
    d = (struct hunt *)1;
    CHECK_EQ_INT(engine_snapshot_decode("empty", m, len, &d, err, sizeof err), ENGINE_BAD_SNAPSHOT);
    CHECK(d == NULL && strstr(err, "unknown draw rule 7"));
    memcpy(m, buf, 25);
    m[24] = ENGINE_DRAW_HMAC;
    memcpy(m + 25, SEED, 32);
    memcpy(m + 57, buf + 25, len - 25);
    m[8] = (uint8_t)(buf[8] + 32); /* body length (small: one byte) */
    reseal(m, len + 32);
    CHECK_EQ_INT(engine_snapshot_decode("empty", m, len + 32, &d, err, sizeof err),
                 ENGINE_BAD_SNAPSHOT);
    CHECK(strstr(err, "a seed without a definition") != NULL);
    memcpy(m, buf, len);
    m[4] = 4;
    reseal(m, len);
    CHECK_EQ_INT(engine_snapshot_decode("empty", m, len, &d, err, sizeof err), ENGINE_BAD_SNAPSHOT);
    CHECK(strstr(err, "format version 4") != NULL);
    m[4] = 0;
    reseal(m, len);
    CHECK_EQ_INT(engine_snapshot_decode("empty", m, len, &d, err, sizeof err), ENGINE_BAD_SNAPSHOT);
    free(m);
    free(buf);
    /* A seeded hunt: rule, commitment and seed survive, and so do its draws. */
    apply_json(h, definition(0), 0);
    CHECK_EQ_INT(engine_draw_rule(h), ENGINE_DRAW_HMAC);
    CHECK_EQ_INT(engine_snapshot_encode(h, &buf, &len), 0);
    d = decode_ok("empty", buf, len);
    if (d) {
        char hex[2 * ENGINE_SEED_BYTES + 1], want[2 * ENGINE_SEED_BYTES + 1];
        for (int i = 0; i < ENGINE_SEED_BYTES; i++)
            snprintf(want + 2 * i, 3, "%02x", SEED[i]);
        CHECK_EQ_INT(engine_seed_reveal(d, INT64_MAX - 1, hex), 0);
        CHECK_EQ_STR(hex, want);
        CHECK_EQ_INT(engine_draw_rule(d), ENGINE_DRAW_HMAC);
        same_answers(h, d, 3);
        for (unsigned p = 0; p < 30; p++) {
            uint8_t id[16];
            struct event e1, e2;
            pid(id, p);
            CHECK_EQ_INT(engine_open(h, id, "hall", NOW, &e1), 0);
            CHECK_EQ_INT(engine_open(d, id, "hall", NOW, &e2), 0);
            CHECK_EQ_STR(e1.u.open.chest, e2.u.open.chest);
            apply_ok(h, &e1);
            apply_ok(d, &e2);
        }
        CHECK_EQ_INT(engine_digest(h), engine_digest(d));
    }
    engine_hunt_destroy(d);
    engine_hunt_destroy(h);
    free(buf);
}

int main(void)
{
    RUN(t_round_trip);
    RUN(t_empty_and_fresh);
    RUN(t_hidden_code);
    RUN(t_events_after);
    RUN(t_few_players_then_many);
    RUN(t_truncations_and_flips);
    RUN(t_other_hunt);
    RUN(t_resealed_garbage);
    RUN(t_version_1);
    RUN(t_version_2_seed);
    return HARNESS_DONE();
}
