/* test_engine.c — the hunt state machine: definition rules (each one, good and bad),
 * updates that would drop used entities, scan/collect/open semantics and every error,
 * reproducible chest choice, the fairness of the draw (unpredictable from public values,
 * exactly the documented HMAC recipe, equal on replay, hunts created before seeds drawing
 * as they did, the seed's commitment and reveal), keys consumed, exactly-one-owner
 * chests, a 10M range,
 * replay through the event codec into a fresh hunt (equal digests), corrupt events
 * refused with the state unchanged, codec round trips and garbage, and a replay
 * benchmark at 1M players (printed, not asserted). Every event a test applies is
 * recorded, so any test can replay its own history. */
#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "harness.h"

#define T0 1796115600000LL /* 2026-12-01T09:00:00.000Z */
#define HOUR 3600000LL
#define NOW (T0 + HOUR)

#define MAP "\"map\":{\"width\":64,\"height\":64}"
#define WINDOW "\"starts_at\":\"2026-12-01T09:00:00.000Z\",\"ends_at\":\"2026-12-03T09:00:00Z\""
#define CODES                                                                                      \
    "\"codes\":[{\"id\":\"c1\",\"points\":50,\"x\":1,\"y\":1},"                                    \
    "{\"id\":\"c2\",\"points\":0,\"x\":2,\"y\":2},{\"id\":\"c3\",\"points\":20,\"x\":3,\"y\":3}]"
#define ITEMS                                                                                      \
    "\"items\":[{\"id\":\"key\",\"x\":5,\"y\":5,\"quantity\":2},"                                  \
    "{\"id\":\"gem\",\"x\":6,\"y\":6,\"quantity\":1}]"
#define ZONES                                                                                      \
    "\"zones\":[{\"id\":\"atrium\",\"x\":0,\"y\":0,\"w\":8,\"h\":8,\"chests\":["                   \
    "{\"id\":\"a1\",\"points\":100,\"loot\":[\"gem\",\"coin\"],\"requires\":\"key\"},"             \
    "{\"id\":\"a2\",\"points\":10}]},"                                                             \
    "{\"id\":\"hall\",\"x\":8,\"y\":8,\"w\":4,\"h\":4,\"chest_range\":"                            \
    "{\"prefix\":\"drop-\",\"count\":5,\"points\":1,\"loot\":[\"coin\"]}}]"
#define BASE "{\"name\":\"Test hunt\"," WINDOW "," MAP "," CODES "," ITEMS "," ZONES "}"

/* The seed of the hunts the tests create (the server draws one from the OS per hunt). */
static const uint8_t SEED[ENGINE_SEED_BYTES] = "seed of the unit tests: 32 bytes";

/* ---- recorded events --------------------------------------------------------------- */

struct rec { /* an event as the log keeps it: header fields and the encoded payload */
    uint64_t seq;
    int64_t time_ms;
    uint8_t type;
    uint8_t player[16];
    uint8_t *data;
    size_t len;
};
static struct rec *recs;
static size_t n_recs, cap_recs;

static void rec_reset(void)
{
    for (size_t i = 0; i < n_recs; i++)
        free(recs[i].data);
    n_recs = 0;
}

static void rec_add(const struct event *ev)
{
    if (n_recs == cap_recs) {
        cap_recs = cap_recs ? cap_recs * 2 : 1024;
        recs = realloc(recs, cap_recs * sizeof *recs);
    }
    struct rec *r = &recs[n_recs++];
    r->seq = ev->seq;
    r->time_ms = ev->time_ms;
    r->type = ev->type;
    memcpy(r->player, ev->player, 16);
    r->len = event_encode(ev, NULL, 0);
    r->data = malloc(r->len + 1);
    CHECK_EQ_INT(event_encode(ev, r->data, r->len), r->len);
}

static void pid(uint8_t out[16], unsigned n)
{
    memset(out, 0, 16);
    out[0] = 0x01;
    out[6] = 0x70;
    memcpy(out + 8, &n, sizeof n);
}

static int apply_rec(struct hunt *h, struct event *ev, struct engine_outcome *out)
{
    char err[256];
    int rc = engine_apply(h, ev, out, err, sizeof err);
    if (rc) fprintf(stderr, "  apply failed: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    if (!rc) rec_add(ev);
    return rc;
}

static int define(struct hunt *h, const char *json, struct engine_outcome *out)
{
    struct event ev;
    char err[256] = "";
    int rc = engine_define(h, json, strlen(json), SEED, NOW, &ev, err, sizeof err);
    if (rc) return rc;
    return apply_rec(h, &ev, out);
}

static struct hunt *make(const char *id, const char *json)
{
    struct hunt *h = engine_hunt_create(id);
    CHECK(h != NULL);
    CHECK_EQ_INT(define(h, json, NULL), 0);
    return h;
}

static int scan_at(struct hunt *h, unsigned p, const char *code, int64_t t,
                   struct engine_outcome *out)
{
    uint8_t id[16];
    struct event ev;
    pid(id, p);
    int rc = engine_scan(h, id, code, t, &ev);
    return rc ? rc : apply_rec(h, &ev, out);
}

static int scan(struct hunt *h, unsigned p, const char *code, struct engine_outcome *out)
{
    return scan_at(h, p, code, NOW, out);
}

static int collect(struct hunt *h, unsigned p, const char *item, struct engine_outcome *out)
{
    uint8_t id[16];
    struct event ev;
    pid(id, p);
    int rc = engine_collect(h, id, item, NOW, &ev);
    return rc ? rc : apply_rec(h, &ev, out);
}

/* Opens a chest of zone for player p; its id into chest (may be NULL). */
static int open_chest(struct hunt *h, unsigned p, const char *zone, char *chest,
                      struct engine_outcome *out)
{
    uint8_t id[16];
    struct event ev;
    pid(id, p);
    int rc = engine_open(h, id, zone, NOW, &ev);
    if (rc) return rc;
    if (chest) strcpy(chest, ev.u.open.chest);
    return apply_rec(h, &ev, out);
}

/* Replays every recorded event through the codec into a fresh hunt. */
static struct hunt *replay(const char *id)
{
    struct hunt *r = engine_hunt_create(id);
    char err[256];
    for (size_t i = 0; i < n_recs; i++) {
        struct event ev;
        ev.seq = recs[i].seq;
        ev.time_ms = recs[i].time_ms;
        memcpy(ev.player, recs[i].player, 16);
        CHECK_EQ_INT(event_decode(&ev, recs[i].type, recs[i].data, recs[i].len), 0);
        int rc = engine_apply(r, &ev, NULL, err, sizeof err);
        if (rc) fprintf(stderr, "  replay of seq %zu failed: %s\n", i + 1, err);
        CHECK_EQ_INT(rc, 0);
    }
    return r;
}

static int64_t json_int(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    return json_is_integer(v) ? json_integer_value(v) : -999;
}

static char *me_dump(struct hunt *h, unsigned p)
{
    uint8_t id[16];
    pid(id, p);
    json_t *me = engine_me_json(h, id);
    char *s = json_dumps(me, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(me);
    return s;
}

/* ---- time --------------------------------------------------------------------------- */

TEST(t_time)
{
    int64_t ms;
    char buf[32];
    CHECK_EQ_INT(vx_time_parse("2026-12-01T09:00:00.000Z", &ms), 0);
    CHECK_EQ_INT(ms, T0);
    CHECK_EQ_INT(vx_time_parse("2026-12-01T09:00:00Z", &ms), 0);
    CHECK_EQ_INT(ms, T0);
    CHECK_EQ_INT(vx_time_parse("2026-12-01T09:00:00.5Z", &ms), 0);
    CHECK_EQ_INT(ms, T0 + 500);
    CHECK_EQ_INT(vx_time_parse("1970-01-01T00:00:00.001Z", &ms), 0);
    CHECK_EQ_INT(ms, 1);
    CHECK_EQ_INT(vx_time_parse("2024-02-29T23:59:59.999Z", &ms), 0);
    vx_time_format(ms, buf);
    CHECK_EQ_STR(buf, "2024-02-29T23:59:59.999Z");
    vx_time_format(T0, buf);
    CHECK_EQ_STR(buf, "2026-12-01T09:00:00.000Z");
    vx_time_format(-1, buf);
    CHECK_EQ_STR(buf, "1969-12-31T23:59:59.999Z");
    static const char *badv[] = {"",
                                 "2026-12-01",
                                 "2026-13-01T00:00:00Z",
                                 "2023-02-29T00:00:00Z",
                                 "2026-12-01T24:00:00Z",
                                 "2026-12-01T09:60:00Z",
                                 "2026-12-01T09:00:60Z",
                                 "2026-12-01T09:00:00+01:00",
                                 "2026-12-01T09:00:00.Z",
                                 "2026-12-01T09:00:00.000",
                                 "2026-12-01 09:00:00Z",
                                 "2026-12-01T09:00:00.000Zjunk",
                                 "2026-00-01T09:00:00Z",
                                 "2026-12-00T09:00:00Z",
                                 "20x6-12-01T09:00:00Z"};
    for (size_t i = 0; i < sizeof badv / sizeof *badv; i++) {
        if (vx_time_parse(badv[i], &ms) != -1)
            fprintf(stderr, "  accepted bad time \"%s\"\n", badv[i]);
        CHECK_EQ_INT(vx_time_parse(badv[i], &ms), -1);
    }
    for (int64_t t = -400LL * 365 * 86400000; t < 400LL * 365 * 86400000;
         t += 86400000LL * 37 + 12345) {
        int64_t back;
        vx_time_format(t, buf);
        CHECK_EQ_INT(vx_time_parse(buf, &back), 0);
        CHECK_EQ_INT(back, t);
    }
}

/* ---- definitions ------------------------------------------------------------------- */

TEST(t_define_good)
{
    rec_reset();
    struct hunt *h = engine_hunt_create("h1");
    struct engine_outcome out;
    CHECK(!engine_defined(h));
    CHECK(engine_hunt_json(h) == NULL);
    CHECK_EQ_INT(define(h, BASE, &out), 0);
    CHECK_EQ_INT(out.created, 1);
    CHECK_EQ_INT(engine_seq(h), 1);
    CHECK(engine_defined(h));
    int w, ht;
    engine_map_size(h, &w, &ht);
    CHECK_EQ_INT(w, 64);
    CHECK_EQ_INT(ht, 64);
    json_t *j = engine_hunt_json(h);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "name")), "Test hunt");
    CHECK_EQ_INT(json_int(j, "chests_left", "atrium"), 2);
    CHECK_EQ_INT(json_int(j, "chests_left", "hall"), 5);
    CHECK_EQ_INT(json_int(j, "items_left", "key"), 2);
    CHECK(json_is_null(json_object_get(j, "map_version")));
    CHECK_EQ_INT(json_int(j, "players", NULL), 0);
    CHECK(json_is_array(json_object_get(j, "codes")));
    json_decref(j);
    json_t *codes = engine_codes_json(h);
    CHECK_EQ_INT(json_array_size(codes), 3);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(codes, 0), "id")), "c1");
    json_decref(codes);
    CHECK(engine_has_code(h, "c2"));
    CHECK(!engine_has_code(h, "nope"));
    CHECK_EQ_INT(define(h, BASE, &out), 0); /* an identical update */
    CHECK_EQ_INT(out.created, 0);
    /* Minimal definition: arrays absent, no window; unknown fields ignored. */
    CHECK_EQ_INT(
        define(h, "{\"name\":\"x\",\"map\":{\"width\":1,\"height\":1},\"extra\":[1]}", NULL), 0);
    CHECK_EQ_INT(define(h,
                        "{\"name\":\"x\",\"map\":{\"width\":4096,\"height\":4096},"
                        "\"codes\":null,\"starts_at\":\"2026-12-01T09:00:00Z\"}",
                        NULL),
                 0);
    engine_hunt_destroy(h);
}

struct bad_case {
    const char *json;
    const char *msg; /* expected at the start of the error */
};

#define TOP(rest) "{\"name\":\"n\"," MAP rest "}"
#define CODE1(fields) TOP(",\"codes\":[{\"id\":\"a\",\"points\":1,\"x\":1,\"y\":1},{" fields "}]")
#define ITEM(fields) TOP(",\"items\":[{" fields "}]")
#define ZONE(fields) TOP(",\"zones\":[{" fields "}]")
#define ZXY "\"id\":\"z\",\"x\":0,\"y\":0,\"w\":1,\"h\":1"
#define CHEST(fields) ZONE(ZXY ",\"chests\":[{" fields "}]")
#define RZ(z)                                                                                      \
    "{\"id\":\"" z "\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chest_range\":{\"prefix\":\"" z           \
    "\",\"count\":10000000,\"points\":1}}"
#define RANGE(fields) ZONE(ZXY ",\"chest_range\":{" fields "}")

static const struct bad_case bad_cases[] = {
    {"", "invalid JSON"},
    {"[1]", "definition: must be a JSON object"},
    {"{\"name\":\"a\",\"name\":\"b\"," MAP "}", "invalid JSON"},
    {"{" MAP "}", "name: required"},
    {"{\"name\":\"\"," MAP "}", "name: must be a string of 1..200"},
    {"{\"name\":7," MAP "}", "name: must be a string"},
    {"{\"name\":\"n\"}", "map: required"},
    {"{\"name\":\"n\",\"map\":[]}", "map: must be an object"},
    {"{\"name\":\"n\",\"map\":{\"width\":0,\"height\":1}}",
     "map.width: must be an integer 1..4096"},
    {"{\"name\":\"n\",\"map\":{\"width\":4097,\"height\":1}}", "map.width: must be an integer"},
    {"{\"name\":\"n\",\"map\":{\"width\":1}}", "map.height: required"},
    {"{\"name\":\"n\",\"map\":{\"width\":1.5,\"height\":1}}", "map.width: must be an integer"},
    {TOP(",\"starts_at\":\"tomorrow\""), "starts_at: must be an RFC 3339"},
    {TOP(",\"ends_at\":5"), "ends_at: must be an RFC 3339"},
    {TOP(",\"starts_at\":\"2026-12-02T00:00:00Z\",\"ends_at\":\"2026-12-02T00:00:00Z\""),
     "ends_at: must be later than starts_at"},
    {TOP(",\"codes\":{}"), "codes: must be an array"},
    {TOP(",\"codes\":[5]"), "codes[0]: must be an object"},
    {CODE1("\"id\":\"b\",\"points\":-1,\"x\":0,\"y\":0"),
     "codes[1].points: must be an integer 0..1000000"},
    {CODE1("\"id\":\"b\",\"points\":1000001,\"x\":0,\"y\":0"),
     "codes[1].points: must be an integer 0..1000000"},
    {CODE1("\"id\":\"b\",\"points\":\"1\",\"x\":0,\"y\":0"), "codes[1].points: must be an integer"},
    {CODE1("\"id\":\"b\",\"x\":0,\"y\":0"), "codes[1].points: required"},
    {CODE1("\"id\":\"B\",\"points\":1,\"x\":0,\"y\":0"), "codes[1].id: must be an id"},
    {CODE1("\"id\":\"\",\"points\":1,\"x\":0,\"y\":0"), "codes[1].id: must be an id"},
    {CODE1("\"id\":\"a b\",\"points\":1,\"x\":0,\"y\":0"), "codes[1].id: must be an id"},
    {CODE1("\"id\":\"x12345678901234567890123456789012345678901234567890123456789012345\","
           "\"points\":1,\"x\":0,\"y\":0"),
     "codes[1].id: must be an id"},
    {CODE1("\"points\":1,\"x\":0,\"y\":0"), "codes[1].id: required"},
    {CODE1("\"id\":\"a\",\"points\":1,\"x\":0,\"y\":0"), "codes[1].id: duplicate id \"a\""},
    {CODE1("\"id\":\"b\",\"points\":1,\"x\":64,\"y\":0"), "codes[1].x: must be an integer 0..63"},
    {CODE1("\"id\":\"b\",\"points\":1,\"x\":0,\"y\":-1"), "codes[1].y: must be an integer 0..63"},
    {ITEM("\"id\":\"i\",\"x\":0,\"y\":0,\"quantity\":0"),
     "items[0].quantity: must be an integer 1..1000000"},
    {ITEM("\"id\":\"i\",\"x\":0,\"y\":0,\"quantity\":1000001"),
     "items[0].quantity: must be an integer"},
    {ITEM("\"id\":\"i\",\"x\":0,\"y\":0"), "items[0].quantity: required"},
    {ITEM("\"id\":\"i\",\"x\":0,\"y\":99,\"quantity\":1"), "items[0].y: must be an integer"},
    {TOP(",\"items\":[{\"id\":\"i\",\"x\":0,\"y\":0,\"quantity\":1},"
         "{\"id\":\"i\",\"x\":0,\"y\":0,\"quantity\":1}]"),
     "items[1].id: duplicate id"},
    {ZONE("\"id\":\"z\",\"x\":0,\"y\":0,\"w\":0,\"h\":1"), "zones[0].w: must be an integer 1..64"},
    {ZONE("\"id\":\"z\",\"x\":60,\"y\":0,\"w\":5,\"h\":1"), "zones[0].w: must be an integer 1..4"},
    {ZONE("\"id\":\"z\",\"x\":0,\"y\":63,\"w\":1,\"h\":2"), "zones[0].h: must be an integer 1..1"},
    {ZONE("\"id\":\"z\",\"x\":0,\"y\":0,\"w\":1"), "zones[0].h: required"},
    {TOP(",\"zones\":[{" ZXY "},{" ZXY "}]"), "zones[1].id: duplicate id \"z\""},
    {ZONE(ZXY ",\"chests\":7"), "zones[0].chests: must be an array"},
    {CHEST("\"id\":\"c\",\"points\":1,\"loot\":[\"ok\",\"NO\"]"),
     "zones[0].chests[0].loot[1]: must be an id"},
    {CHEST("\"id\":\"c\",\"points\":1,\"loot\":\"gem\""),
     "zones[0].chests[0].loot: must be an array"},
    {CHEST("\"id\":\"c\",\"points\":1,\"loot\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
           "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]"),
     "zones[0].chests[0].loot: at most 16"},
    {CHEST("\"id\":\"c\",\"points\":1,\"requires\":5"),
     "zones[0].chests[0].requires: must be an id"},
    {CHEST("\"id\":\"c\""), "zones[0].chests[0].points: required"},
    {CHEST("\"points\":1"), "zones[0].chests[0].id: required"},
    {TOP(",\"zones\":[{" ZXY ",\"chests\":[{\"id\":\"c\",\"points\":1}]},"
         "{\"id\":\"y\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chests\":[{\"id\":\"c\",\"points\":2}]}"
         "]"),
     "zones[1].chests[0].id: duplicate id \"c\""},
    {RANGE("\"count\":1,\"points\":1"), "zones[0].chest_range.prefix: required"},
    {RANGE("\"prefix\":\"p\",\"count\":0,\"points\":1"),
     "zones[0].chest_range.count: must be an integer 1..10000000"},
    {RANGE("\"prefix\":\"p\",\"count\":10000001,\"points\":1"), "zones[0].chest_range.count"},
    {RANGE("\"prefix\":\"p\",\"count\":1"), "zones[0].chest_range.points: required"},
    {RANGE("\"prefix\":\"P\",\"count\":1,\"points\":1"),
     "zones[0].chest_range.prefix: must be an id (1..40"},
    {RANGE("\"prefix\":\"p12345678901234567890123456789012345678901\",\"count\":1,\"points\":1"),
     "zones[0].chest_range.prefix: must be an id"},
    {ZONE(ZXY ",\"chest_range\":[]"), "zones[0].chest_range: must be an object"},
    {TOP(",\"zones\":[" RZ("a") "," RZ("b") "," RZ("c") "," RZ("d") "," RZ("e") "," RZ("f") "," RZ(
         "g") "," RZ("h") "," RZ("i") "," RZ("j") "," RZ("k") "]"),
     "zones[10].chest_range.count: at most 100000000 range chests in all"},
    /* generated ids colliding with explicit chests and other ranges */
    {ZONE(ZXY ",\"chests\":[{\"id\":\"drop-4\",\"points\":1}],"
              "\"chest_range\":{\"prefix\":\"drop-\",\"count\":5,\"points\":1}"),
     "zones[0].chests[0].id: \"drop-4\" is also generated by zones[0].chest_range"},
    {TOP(",\"zones\":[{" ZXY ",\"chests\":[{\"id\":\"p12\",\"points\":1}]},"
         "{\"id\":\"y\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chest_range\":{\"prefix\":\"p\","
         "\"count\":13,\"points\":1}}]"),
     "zones[0].chests[0].id: \"p12\" is also generated by zones[1].chest_range"},
    {TOP(",\"zones\":[{" ZXY ",\"chest_range\":{\"prefix\":\"p\",\"count\":1,\"points\":1}},"
         "{\"id\":\"y\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chest_range\":{\"prefix\":\"p\","
         "\"count\":1,\"points\":1}}]"),
     "zones[1].chest_range.prefix: \"p\" is the prefix of another chest_range"},
    {TOP(",\"zones\":[{" ZXY ",\"chest_range\":{\"prefix\":\"p\",\"count\":11,\"points\":1}},"
         "{\"id\":\"y\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chest_range\":{\"prefix\":\"p1\","
         "\"count\":1,\"points\":1}}]"),
     "zones[1].chest_range: generated id \"p10\" is also generated by zones[0].chest_range"},
    {TOP(",\"zones\":[{" ZXY ",\"chest_range\":{\"prefix\":\"p1\",\"count\":1,\"points\":1}},"
         "{\"id\":\"y\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chest_range\":{\"prefix\":\"p\","
         "\"count\":10000000,\"points\":1}}]"),
     "zones[0].chest_range: generated id \"p10\" is also generated by zones[1].chest_range"},
};

/* Definitions next to the collisions above that must be accepted. */
static const char *good_cases[] = {
    ZONE(ZXY ",\"chests\":[{\"id\":\"drop-5\",\"points\":1},{\"id\":\"drop-04\",\"points\":1},"
             "{\"id\":\"drop-\",\"points\":1},{\"id\":\"drop-x\",\"points\":1}],"
             "\"chest_range\":{\"prefix\":\"drop-\",\"count\":5,\"points\":1}"),
    TOP(",\"zones\":[{" ZXY ",\"chest_range\":{\"prefix\":\"p\",\"count\":10,\"points\":1}},"
        "{\"id\":\"y\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chest_range\":{\"prefix\":\"p1\","
        "\"count\":1,\"points\":1}}]"),
    TOP(",\"zones\":[{" ZXY ",\"chest_range\":{\"prefix\":\"p\",\"count\":100000,\"points\":1}},"
        "{\"id\":\"y\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"chest_range\":{\"prefix\":\"p0\","
        "\"count\":100,\"points\":1}}]"),
    CHEST("\"id\":\"c\",\"points\":1000000,\"loot\":[],\"requires\":null"),
    ITEM("\"id\":\"i_-9\",\"x\":63,\"y\":63,\"quantity\":1000000"),
    RANGE(
        "\"prefix\":\"p123456789012345678901234567890123456789\",\"count\":10000000,\"points\":0"),
};

TEST(t_define_rules)
{
    struct hunt *h = engine_hunt_create("h1");
    struct event ev;
    char err[256];
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *c = &bad_cases[i];
        err[0] = '\0';
        int rc = engine_define(h, c->json, strlen(c->json), SEED, NOW, &ev, err, sizeof err);
        if (rc != ENGINE_EINVAL || strncmp(err, c->msg, strlen(c->msg)) != 0)
            fprintf(stderr, "  case %zu: rc %d err \"%s\" (want \"%s\")\n", i, rc, err, c->msg);
        CHECK_EQ_INT(rc, ENGINE_EINVAL);
        CHECK(strncmp(err, c->msg, strlen(c->msg)) == 0);
    }
    for (size_t i = 0; i < sizeof good_cases / sizeof *good_cases; i++) {
        int rc =
            engine_define(h, good_cases[i], strlen(good_cases[i]), SEED, NOW, &ev, err, sizeof err);
        if (rc) fprintf(stderr, "  good case %zu refused: %s\n", i, err);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(ev.type, EVENT_DEFINE);
        CHECK_EQ_INT(ev.seq, 1);
    }
    CHECK_EQ_INT(engine_seq(h), 0); /* deciding changes nothing */
    engine_hunt_destroy(h);
}

/* A definition with n codes (c0..), for the limit checks and the benchmark. */
static char *many_codes(unsigned n)
{
    size_t cap = 64 + (size_t)n * 64, at;
    char *s = malloc(cap);
    at = (size_t)snprintf(s, cap, "{\"name\":\"many\"," MAP ",\"codes\":[");
    for (unsigned i = 0; i < n; i++)
        at += (size_t)snprintf(s + at, cap - at, "%s{\"id\":\"c%u\",\"points\":%u,\"x\":1,\"y\":2}",
                               i ? "," : "", i, i % 100);
    snprintf(s + at, cap - at, "]}");
    return s;
}

TEST(t_define_limits)
{
    struct hunt *h = engine_hunt_create("h1");
    struct event ev;
    char err[256];
    char *ok = many_codes(100000), *over = many_codes(100001);
    CHECK_EQ_INT(engine_define(h, ok, strlen(ok), SEED, NOW, &ev, err, sizeof err), 0);
    CHECK_EQ_INT(engine_define(h, over, strlen(over), SEED, NOW, &ev, err, sizeof err),
                 ENGINE_EINVAL);
    CHECK_EQ_STR(err, "codes: at most 100000 entries");
    free(ok);
    free(over);
    engine_hunt_destroy(h);
}

/* ---- updates ------------------------------------------------------------------------ */

static int try_update(struct hunt *h, const char *json, char *err, size_t cap)
{
    struct event ev;
    int rc = engine_define(h, json, strlen(json), NULL, NOW, &ev, err, cap); /* keeps seed */
    return rc ? rc : apply_rec(h, &ev, NULL);
}

TEST(t_update_in_use)
{
    rec_reset();
    struct hunt *h = make("h1", BASE);
    char err[256], ch[ENGINE_CHEST_ID_MAX + 1];
    /* Before use anything may change or go. */
    CHECK_EQ_INT(try_update(h, "{\"name\":\"n\"," MAP "," ZONES "}", err, sizeof err), 0);
    CHECK_EQ_INT(try_update(h, BASE, err, sizeof err), 0);
    CHECK_EQ_INT(scan(h, 1, "c1", NULL), 0);
    CHECK_EQ_INT(collect(h, 1, "key", NULL), 0);
    CHECK_EQ_INT(open_chest(h, 1, "hall", ch, NULL), 0);
    CHECK(strncmp(ch, "drop-", 5) == 0);
    uint64_t before = engine_digest(h);
    const char *in_use[] = {
        "{\"name\":\"n\"," MAP "," ITEMS "," ZONES "}", /* c1 removed */
        "{\"name\":\"n\"," MAP ",\"codes\":[{\"id\":\"c1\",\"points\":51,\"x\":1,\"y\":1}]," ITEMS
        "," ZONES "}",
        "{\"name\":\"n\"," MAP ",\"codes\":[{\"id\":\"c1\",\"points\":50,\"x\":1,\"y\":2}]," ITEMS
        "," ZONES "}",
        "{\"name\":\"n\"," MAP "," CODES "," ZONES "}", /* key removed */
        "{\"name\":\"n\"," MAP "," CODES
        ",\"items\":[{\"id\":\"key\",\"x\":5,\"y\":5,\"quantity\":3}]," ZONES "}",
        "{\"name\":\"n\"," MAP "," CODES "," ITEMS "}", /* zones (with the range) removed */
        "{\"name\":\"n\"," MAP "," CODES "," ITEMS
        ",\"zones\":[{\"id\":\"hall\",\"x\":8,\"y\":8,\"w\":4,\"h\":4,"
        "\"chest_range\":{\"prefix\":\"drop-\",\"count\":6,\"points\":1,\"loot\":[\"coin\"]}}]}",
        "{\"name\":\"n\"," MAP "," CODES "," ITEMS
        ",\"zones\":[{\"id\":\"hall\",\"x\":8,\"y\":8,\"w\":4,\"h\":4,"
        "\"chest_range\":{\"prefix\":\"drop-\",\"count\":5,\"points\":1,\"loot\":[\"coin\",\"gem\"]"
        "}}]}",
    };
    for (size_t i = 0; i < sizeof in_use / sizeof *in_use; i++) {
        int rc = try_update(h, in_use[i], err, sizeof err);
        if (rc != ENGINE_ENTITY_IN_USE)
            fprintf(stderr, "  in_use case %zu: rc %d %s\n", i, rc, err);
        CHECK_EQ_INT(rc, ENGINE_ENTITY_IN_USE);
    }
    CHECK_EQ_INT(engine_digest(h), before);
    /* Keeping the used ones while changing the rest is fine; progress survives. */
    const char *keep =
        "{\"name\":\"renamed\"," MAP ",\"codes\":[{\"id\":\"new\",\"points\":5,\"x\":0,\"y\":0},"
        "{\"id\":\"c1\",\"points\":50,\"x\":1,\"y\":1}],"
        "\"items\":[{\"id\":\"key\",\"x\":5,\"y\":5,\"quantity\":2}],"
        "\"zones\":[{\"id\":\"hall\",\"x\":0,\"y\":0,\"w\":2,\"h\":2,\"chests\":[{\"id\":\"h1\","
        "\"points\":3}],"
        "\"chest_range\":{\"prefix\":\"drop-\",\"count\":5,\"points\":1,\"loot\":[\"coin\"]}}]}";
    CHECK_EQ_INT(try_update(h, keep, err, sizeof err), 0);
    json_t *j = engine_hunt_json(h);
    CHECK_EQ_INT(json_int(j, "items_left", "key"), 1);
    CHECK_EQ_INT(json_int(j, "chests_left", "hall"), 5); /* h1 + 4 closed of the range */
    CHECK_EQ_INT(json_int(j, "players", NULL), 1);
    json_decref(j);
    CHECK_EQ_INT(scan(h, 1, "c1", NULL), ENGINE_ALREADY_SCANNED);
    char *me = me_dump(h, 1), want[256];
    snprintf(want, sizeof want,
             "{\"collected\":[\"key\"],\"inventory\":{\"coin\":1,\"key\":1},"
             "\"opened\":[\"%s\"],\"rank\":1,\"scanned\":[\"c1\"],\"score\":51}",
             ch);
    CHECK_EQ_STR(me, want);
    free(me);
    /* An opened explicit chest can neither change nor move to another zone. */
    CHECK_EQ_INT(try_update(h, BASE, err, sizeof err), 0);
    CHECK_EQ_INT(open_chest(h, 2, "atrium", ch, NULL), 0);
    CHECK_EQ_STR(ch, "a2");
    const char *moved =
        "{\"name\":\"n\"," MAP "," CODES "," ITEMS ",\"zones\":["
        "{\"id\":\"atrium\",\"x\":0,\"y\":0,\"w\":8,\"h\":8},{\"id\":\"hall\",\"x\":8,\"y\":8,"
        "\"w\":4,\"h\":4,"
        "\"chests\":[{\"id\":\"a2\",\"points\":10}],"
        "\"chest_range\":{\"prefix\":\"drop-\",\"count\":5,\"points\":1,\"loot\":[\"coin\"]}}]}";
    CHECK_EQ_INT(try_update(h, moved, err, sizeof err), ENGINE_ENTITY_IN_USE);
    CHECK(strstr(err, "a2") != NULL);
    struct hunt *r = replay("h1");
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
}

/* ---- playing ------------------------------------------------------------------------ */

TEST(t_scan)
{
    rec_reset();
    struct hunt *h = engine_hunt_create("h1");
    struct engine_outcome out;
    uint8_t p1[16];
    struct event ev;
    pid(p1, 1);
    CHECK_EQ_INT(engine_scan(h, p1, "c1", NOW, &ev), ENGINE_NOT_DEFINED);
    CHECK_EQ_INT(define(h, BASE, NULL), 0);
    CHECK_EQ_INT(scan_at(h, 1, "c1", T0 - 1, NULL), ENGINE_NOT_ACTIVE);
    CHECK_EQ_INT(scan_at(h, 1, "c1", T0 + 48 * HOUR, NULL), ENGINE_NOT_ACTIVE);
    CHECK_EQ_INT(scan(h, 1, "zz", NULL), ENGINE_INVALID_CODE);
    CHECK_EQ_INT(scan(h, 1, "", NULL), ENGINE_INVALID_CODE);
    CHECK_EQ_INT(scan_at(h, 1, "c1", T0, &out), 0); /* starts_at is inclusive */
    CHECK_EQ_INT(out.points, 50);
    CHECK_EQ_INT(out.score, 50);
    CHECK_EQ_INT(out.rank, 1);
    CHECK_EQ_INT(scan(h, 1, "c1", NULL), ENGINE_ALREADY_SCANNED);
    CHECK_EQ_INT(engine_scan(h, p1, "c3", NOW, &ev), 0);
    CHECK_EQ_INT(ev.seq, engine_seq(h) + 1);
    CHECK_EQ_INT(ev.type, EVENT_SCAN);
    CHECK_EQ_STR(ev.u.scan.code, "c3");
    CHECK_EQ_INT(ev.time_ms, NOW);
    CHECK(memcmp(ev.player, p1, 16) == 0);
    /* A zero-point first scan puts the player on the leaderboard. */
    CHECK_EQ_INT(scan(h, 2, "c2", &out), 0);
    CHECK_EQ_INT(out.score, 0);
    CHECK_EQ_INT(out.rank, 2);
    CHECK_EQ_INT(engine_lb_total(h), 2);
    CHECK_EQ_INT(scan(h, 3, "c3", &out), 0);
    CHECK_EQ_INT(out.rank, 2);
    /* Equal scores: who reached it first ranks first. */
    CHECK_EQ_INT(scan(h, 4, "c3", &out), 0);
    CHECK_EQ_INT(out.rank, 3);
    CHECK_EQ_INT(scan(h, 3, "c2", &out), 0); /* 0 points: keeps its place */
    CHECK_EQ_INT(out.rank, 2);
    struct engine_lb_row rows[8];
    CHECK_EQ_INT(engine_lb_top(h, 0, 8, rows), 4);
    CHECK_EQ_INT(rows[0].score, 50);
    CHECK_EQ_INT(rows[0].rank, 1);
    CHECK(memcmp(rows[0].player, p1, 16) == 0);
    CHECK_EQ_INT(rows[3].score, 0);
    CHECK_EQ_INT(engine_lb_top(h, 3, 8, rows), 1);
    uint8_t p4[16];
    pid(p4, 4);
    CHECK_EQ_INT(engine_lb_around(h, p4, 1, rows), 3);
    CHECK_EQ_INT(rows[0].rank, 2);
    CHECK_EQ_INT(rows[1].rank, 3);
    CHECK(memcmp(rows[1].player, p4, 16) == 0);
    CHECK_EQ_INT(engine_lb_around(h, p1, 1, rows), 2);
    uint8_t p9[16];
    pid(p9, 9);
    CHECK_EQ_INT(engine_lb_around(h, p9, 1, rows), 0);
    int64_t score;
    uint64_t rank;
    engine_player_score(h, p4, &score, &rank);
    CHECK_EQ_INT(score, 20);
    CHECK_EQ_INT(rank, 3);
    struct engine_stats st;
    engine_stats(h, &st);
    CHECK_EQ_INT(st.players, 4);
    CHECK_EQ_INT(st.scans, 5);
    CHECK_EQ_INT(st.seq, engine_seq(h));
    CHECK_EQ_INT(st.chests_left, 7);
    engine_hunt_destroy(h);
}

TEST(t_collect)
{
    rec_reset();
    struct hunt *h = make("h1", BASE);
    struct engine_outcome out;
    uint8_t p1[16];
    struct event ev;
    pid(p1, 1);
    CHECK_EQ_INT(collect(h, 1, "nope", NULL), ENGINE_ITEM_NOT_FOUND);
    CHECK_EQ_INT(engine_collect(h, p1, "key", T0 - 1, &ev), ENGINE_NOT_ACTIVE);
    CHECK_EQ_INT(collect(h, 1, "key", &out), 0);
    CHECK_EQ_INT(out.count, 1);
    CHECK_EQ_INT(out.remaining, 1);
    CHECK_EQ_INT(collect(h, 1, "key", NULL), ENGINE_ALREADY_COLLECTED);
    CHECK_EQ_INT(collect(h, 2, "key", &out), 0);
    CHECK_EQ_INT(out.remaining, 0);
    CHECK_EQ_INT(collect(h, 3, "key", NULL), ENGINE_ITEM_EXHAUSTED);
    CHECK_EQ_INT(collect(h, 1, "gem", &out), 0);
    /* Collecting does not score: no leaderboard entry. */
    CHECK_EQ_INT(engine_lb_total(h), 0);
    char *me = me_dump(h, 1);
    CHECK_EQ_STR(me, "{\"collected\":[\"key\",\"gem\"],\"inventory\":{\"gem\":1,\"key\":1},"
                     "\"opened\":[],\"rank\":null,\"scanned\":[],\"score\":0}");
    free(me);
    me = me_dump(h, 77);
    CHECK_EQ_STR(me, "{\"collected\":[],\"inventory\":{},\"opened\":[],\"rank\":null,"
                     "\"scanned\":[],\"score\":0}");
    free(me);
    /* A scan and a collect of the same id are different things. */
    CHECK_EQ_INT(define(h,
                        "{\"name\":\"n\"," MAP
                        ",\"codes\":[{\"id\":\"x\",\"points\":1,\"x\":0,\"y\":0}],"
                        "\"items\":[{\"id\":\"x\",\"x\":0,\"y\":0,\"quantity\":5},"
                        "{\"id\":\"key\",\"x\":5,\"y\":5,\"quantity\":2},"
                        "{\"id\":\"gem\",\"x\":6,\"y\":6,\"quantity\":1}]}",
                        NULL),
                 0);
    CHECK_EQ_INT(scan(h, 1, "x", NULL), 0);
    CHECK_EQ_INT(collect(h, 1, "x", NULL), 0);
    CHECK_EQ_INT(collect(h, 1, "x", NULL), ENGINE_ALREADY_COLLECTED);
    engine_hunt_destroy(h);
}

TEST(t_open_requires)
{
    rec_reset();
    struct hunt *h = make("h1", BASE);
    struct engine_outcome out;
    char ch[ENGINE_CHEST_ID_MAX + 1];
    uint8_t p1[16];
    struct event ev;
    pid(p1, 1);
    CHECK_EQ_INT(open_chest(h, 1, "nope", ch, NULL), ENGINE_ZONE_NOT_FOUND);
    CHECK_EQ_INT(engine_open(h, p1, "atrium", T0 + 48 * HOUR, &ev), ENGINE_NOT_ACTIVE);
    /* Without the key only a2 can be opened. */
    CHECK_EQ_INT(open_chest(h, 1, "atrium", ch, &out), 0);
    CHECK_EQ_STR(ch, "a2");
    CHECK_EQ_INT(out.points, 10);
    CHECK_EQ_INT(out.n_loot, 0);
    CHECK_EQ_INT(out.rank, 1);
    CHECK_EQ_INT(open_chest(h, 1, "atrium", ch, NULL), ENGINE_NO_CHEST);
    CHECK_EQ_INT(open_chest(h, 2, "atrium", ch, NULL), ENGINE_NO_CHEST);
    CHECK_EQ_INT(collect(h, 2, "key", NULL), 0);
    CHECK_EQ_INT(open_chest(h, 2, "atrium", ch, &out), 0);
    CHECK_EQ_STR(ch, "a1");
    CHECK_EQ_INT(out.points, 100);
    CHECK_EQ_INT(out.n_loot, 2);
    CHECK_EQ_STR(out.loot[0], "gem");
    CHECK_EQ_STR(out.loot[1], "coin");
    CHECK_EQ_INT(out.rank, 1);
    char *me = me_dump(h, 2);
    CHECK_EQ_STR(me, "{\"collected\":[\"key\"],\"inventory\":{\"coin\":1,\"gem\":1},"
                     "\"opened\":[\"a1\"],\"rank\":1,\"scanned\":[],\"score\":100}");
    free(me);
    CHECK_EQ_INT(open_chest(h, 2, "atrium", ch, NULL), ENGINE_NO_CHEST);
    /* The range: five chests, each gives a coin, then none. */
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(open_chest(h, 3, "hall", ch, &out), 0);
        CHECK(strncmp(ch, "drop-", 5) == 0 && strlen(ch) == 6);
        CHECK_EQ_INT(out.points, 1);
    }
    CHECK_EQ_INT(open_chest(h, 3, "hall", ch, NULL), ENGINE_NO_CHEST);
    me = me_dump(h, 3);
    CHECK(strstr(me, "\"inventory\":{\"coin\":5}") != NULL);
    CHECK(strstr(me, "\"score\":5") != NULL);
    free(me);
    struct hunt *r = replay("h1");
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
}

/* A key chest and a free chest in one zone: a key holder may get either. */
TEST(t_open_pools)
{
    rec_reset();
    const char *def =
        "{\"name\":\"n\"," MAP ",\"items\":[{\"id\":\"k\",\"x\":0,\"y\":0,\"quantity\":100}],"
        "\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":2,\"h\":2,\"chests\":["
        "{\"id\":\"locked\",\"points\":9,\"requires\":\"k\",\"loot\":[\"k\"]},{\"id\":\"free\","
        "\"points\":1}],"
        "\"chest_range\":{\"prefix\":\"r\",\"count\":3,\"points\":2,\"requires\":\"k\",\"loot\":["
        "\"k\"]}}]}";
    struct hunt *h = make("h1", def);
    char ch[ENGINE_CHEST_ID_MAX + 1];
    int got_locked = 0;
    for (unsigned p = 1; p <= 40 && !got_locked; p++) {
        struct hunt *t = make("h1", def);
        CHECK_EQ_INT(collect(t, p, "k", NULL), 0);
        CHECK_EQ_INT(open_chest(t, p, "z", ch, NULL), 0);
        got_locked |= strcmp(ch, "free") != 0;
        engine_hunt_destroy(t);
    }
    CHECK(got_locked);
    /* A range chest that requires k gives k back: the holder can keep going. */
    CHECK_EQ_INT(collect(h, 1, "k", NULL), 0);
    int opened = 0;
    while (open_chest(h, 1, "z", ch, NULL) == 0)
        opened++;
    CHECK_EQ_INT(opened, 5);
    struct engine_stats st;
    engine_stats(h, &st);
    CHECK_EQ_INT(st.chests_left, 0);
    engine_hunt_destroy(h);
}

TEST(t_open_reproducible)
{
    rec_reset();
    const char *def =
        "{\"name\":\"n\"," MAP ",\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":2,\"h\":2,"
        "\"chest_range\":{\"prefix\":\"c\",\"count\":1000,\"points\":1}}]}";
    struct hunt *a = make("same", def), *b = make("same", def);
    uint8_t p[16];
    struct event e1, e2;
    for (unsigned i = 0; i < 200; i++) {
        pid(p, i % 37);
        CHECK_EQ_INT(engine_open(a, p, "z", NOW + i, &e1), 0);
        CHECK_EQ_INT(engine_open(a, p, "z", NOW + i + 5, &e2), 0);
        CHECK_EQ_STR(e1.u.open.chest, e2.u.open.chest); /* time is not an input of the choice */
        CHECK_EQ_INT(engine_open(b, p, "z", NOW + i, &e2), 0);
        CHECK_EQ_STR(e1.u.open.chest, e2.u.open.chest);
        CHECK_EQ_INT(engine_apply(a, &e1, NULL, NULL, 0), 0);
        CHECK_EQ_INT(engine_apply(b, &e2, NULL, NULL, 0), 0);
    }
    CHECK_EQ_INT(engine_digest(a), engine_digest(b));
    /* Different players spread over different chests. */
    struct hunt *c = make("same", def);
    int distinct = 0;
    char first[ENGINE_CHEST_ID_MAX + 1] = "";
    for (unsigned i = 0; i < 20; i++) {
        pid(p, 1000 + i);
        CHECK_EQ_INT(engine_open(c, p, "z", NOW, &e1), 0);
        if (i == 0) strcpy(first, e1.u.open.chest);
        distinct += strcmp(first, e1.u.open.chest) != 0;
    }
    CHECK(distinct > 10);
    engine_hunt_destroy(a);
    engine_hunt_destroy(b);
    engine_hunt_destroy(c);
}

TEST(t_twenty_chests_hundred_players)
{
    rec_reset();
    char def[4096];
    size_t at = (size_t)snprintf(def, sizeof def,
                                 "{\"name\":\"n\"," MAP ",\"zones\":[{\"id\":\"z\","
                                 "\"x\":0,\"y\":0,\"w\":2,\"h\":2,\"chests\":[");
    for (int i = 0; i < 20; i++)
        at += (size_t)snprintf(def + at, sizeof def - at, "%s{\"id\":\"t%d\",\"points\":5}",
                               i ? "," : "", i);
    snprintf(def + at, sizeof def - at, "]}]}");
    struct hunt *h = make("h1", def);
    char ch[ENGINE_CHEST_ID_MAX + 1], owners[20] = {0};
    int ok = 0, none = 0;
    for (unsigned p = 0; p < 100; p++) {
        int rc = open_chest(h, p, "z", ch, NULL);
        if (rc == 0) {
            int i = atoi(ch + 1);
            CHECK(!owners[i]);
            owners[i] = 1;
            ok++;
        } else {
            CHECK_EQ_INT(rc, ENGINE_NO_CHEST);
            none++;
        }
    }
    CHECK_EQ_INT(ok, 20);
    CHECK_EQ_INT(none, 80);
    CHECK_EQ_INT(engine_lb_total(h), 20);
    struct hunt *r = replay("h1");
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
}

TEST(t_ten_million_range)
{
    rec_reset();
    struct hunt *h = engine_hunt_create("big");
    size_t empty = engine_memory_bytes(h);
    CHECK_EQ_INT(define(h,
                        "{\"name\":\"n\"," MAP ",\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":2,"
                        "\"h\":2,\"chest_range\":{\"prefix\":\"drop-\",\"count\":10000000,"
                        "\"points\":3,\"loot\":[\"coin\"]}}]}",
                        NULL),
                 0);
    size_t mem = engine_memory_bytes(h) - empty;
    printf("  10M-chest range: %zu bytes\n", mem);
    CHECK(mem < 3u * 1000 * 1000);
    char ch[ENGINE_CHEST_ID_MAX + 1];
    for (unsigned p = 0; p < 1000; p++)
        CHECK_EQ_INT(open_chest(h, p, "z", ch, NULL), 0);
    json_t *j = engine_hunt_json(h);
    CHECK_EQ_INT(json_int(j, "chests_left", "z"), 10000000 - 1000);
    json_decref(j);
    /* A replayed open of a specific range chest, and one past the end. */
    struct event ev;
    uint8_t p[16];
    pid(p, 5);
    CHECK_EQ_INT(engine_open(h, p, "z", NOW, &ev), 0);
    struct event past = ev;
    strcpy(past.u.open.chest, "drop-10000000");
    CHECK_EQ_INT(engine_apply(h, &past, NULL, NULL, 0), ENGINE_BAD_EVENT);
    strcpy(past.u.open.chest, "drop-09");
    CHECK_EQ_INT(engine_apply(h, &past, NULL, NULL, 0), ENGINE_BAD_EVENT);
    CHECK_EQ_INT(apply_rec(h, &ev, NULL), 0);
    struct hunt *r = replay("big");
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
}

TEST(t_map)
{
    rec_reset();
    struct hunt *h = engine_hunt_create("h1");
    struct event ev;
    CHECK_EQ_INT(engine_map(h, 1, NOW, &ev), ENGINE_NOT_DEFINED);
    CHECK_EQ_INT(define(h, BASE, NULL), 0);
    CHECK_EQ_INT(engine_map_version(h), -1);
    CHECK_EQ_INT(engine_map(h, 1, NOW, &ev), 0);
    CHECK_EQ_INT(ev.type, EVENT_MAP);
    CHECK_EQ_INT(ev.u.map.version, 1);
    CHECK_EQ_INT(apply_rec(h, &ev, NULL), 0);
    CHECK_EQ_INT(engine_map_version(h), 1);
    CHECK_EQ_INT(engine_map(h, 1, NOW, &ev), ENGINE_EINVAL);
    CHECK_EQ_INT(engine_map(h, 3, NOW, &ev), 0);
    CHECK_EQ_INT(apply_rec(h, &ev, NULL), 0);
    json_t *j = engine_hunt_json(h);
    CHECK_EQ_INT(json_int(j, "map_version", NULL), 3);
    json_decref(j);
    engine_hunt_destroy(h);
}

/* ---- replay and corrupt events ------------------------------------------------------ */

/* A random game: scans, collects, opens, map publishes and a redefinition. */
static struct hunt *random_game(unsigned players, unsigned steps, uint64_t seed)
{
    static const char *codes[] = {"c1", "c2", "c3", "zz"};
    static const char *items[] = {"key", "gem", "nope"};
    static const char *zones[] = {"atrium", "hall", "nope"};
    struct hunt *h = make("game", BASE);
    int64_t version = 0;
    for (unsigned i = 0; i < steps; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned p = (unsigned)(seed >> 33) % players, what = (unsigned)(seed >> 20) % 10;
        if (what < 5)
            scan(h, p, codes[(seed >> 40) % 4], NULL);
        else if (what < 7)
            collect(h, p, items[(seed >> 40) % 3], NULL);
        else if (what < 9)
            open_chest(h, p, zones[(seed >> 40) % 3], NULL, NULL);
        else if ((seed >> 40) % 8 == 0)
            define(h, BASE, NULL);
        else {
            struct event ev;
            if (engine_map(h, ++version, NOW, &ev) == 0) apply_rec(h, &ev, NULL);
        }
    }
    return h;
}

TEST(t_replay)
{
    rec_reset();
    struct hunt *h = random_game(30, 3000, 42);
    struct hunt *r = replay("other-id");
    CHECK_EQ_INT(engine_seq(r), engine_seq(h));
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    for (unsigned p = 0; p < 30; p++) {
        char *a = me_dump(h, p), *b = me_dump(r, p);
        CHECK_EQ_STR(a, b);
        free(a);
        free(b);
    }
    struct engine_lb_row ra[40], rb[40];
    size_t na = engine_lb_top(h, 0, 40, ra), nb = engine_lb_top(r, 0, 40, rb);
    CHECK_EQ_INT(na, nb);
    CHECK(memcmp(ra, rb, na * sizeof *ra) == 0);
    json_t *ja = engine_hunt_json(h), *jb = engine_hunt_json(r);
    CHECK(json_equal(ja, jb));
    json_decref(ja);
    json_decref(jb);
    /* One more event changes the digest. */
    uint64_t before = engine_digest(r);
    CHECK_EQ_INT(scan(r, 999, "c1", NULL), 0);
    CHECK(engine_digest(r) != before);
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
}

static void expect_bad(struct hunt *h, const struct event *ev, const char *what)
{
    char err[256] = "";
    uint64_t before = engine_digest(h);
    size_t mem = engine_memory_bytes(h);
    struct engine_stats st;
    engine_stats(h, &st);
    int rc = engine_apply(h, ev, NULL, err, sizeof err);
    if (rc != ENGINE_BAD_EVENT || !strstr(err, what))
        fprintf(stderr, "  expected bad event \"%s\", got %d \"%s\"\n", what, rc, err);
    CHECK_EQ_INT(rc, ENGINE_BAD_EVENT);
    CHECK(strstr(err, what) != NULL);
    CHECK(strstr(err, "seq") != NULL);
    CHECK_EQ_INT(engine_digest(h), before);
    struct engine_stats st2;
    engine_stats(h, &st2);
    CHECK(memcmp(&st, &st2, sizeof st) == 0);
    (void)mem;
}

TEST(t_bad_events)
{
    rec_reset();
    struct hunt *h = make("h1", BASE);
    char ch[ENGINE_CHEST_ID_MAX + 1];
    CHECK_EQ_INT(scan(h, 1, "c1", NULL), 0);
    CHECK_EQ_INT(open_chest(h, 1, "hall", ch, NULL), 0);
    struct event ev, base;
    uint8_t p1[16], p2[16];
    pid(p1, 1);
    pid(p2, 2);
    CHECK_EQ_INT(engine_scan(h, p2, "c1", NOW, &base), 0);
    ev = base;
    ev.seq += 1;
    expect_bad(h, &ev, "expected seq");
    ev = base;
    ev.seq -= 1;
    expect_bad(h, &ev, "expected seq");
    ev = base;
    strcpy(ev.u.scan.code, "zz");
    expect_bad(h, &ev, "unknown code \"zz\"");
    ev = base;
    memcpy(ev.player, p1, 16);
    expect_bad(h, &ev, "already scanned");
    ev = base;
    ev.time_ms = T0 - 1;
    expect_bad(h, &ev, "outside the hunt's window");
    ev = base;
    memset(ev.u.scan.code, 'a', sizeof ev.u.scan.code);
    expect_bad(h, &ev, "unterminated");
    ev = base;
    ev.type = 99;
    expect_bad(h, &ev, "unknown event type");
    ev = base;
    ev.type = EVENT_COLLECT;
    strcpy(ev.u.collect.item, "gem");
    CHECK_EQ_INT(engine_apply(h, &ev, NULL, NULL, 0), 0); /* gem: quantity 1 */
    ev.seq++;
    memcpy(ev.player, p1, 16);
    expect_bad(h, &ev, "item_exhausted");
    strcpy(ev.u.collect.item, "nope");
    expect_bad(h, &ev, "unknown item");
    ev.type = EVENT_OPEN;
    memset(&ev.u, 0, sizeof ev.u);
    strcpy(ev.u.open.zone, "hall");
    strcpy(ev.u.open.chest, ch);
    expect_bad(h, &ev, "already opened");
    strcpy(ev.u.open.chest, "a2");
    expect_bad(h, &ev, "has no chest \"a2\"");
    strcpy(ev.u.open.zone, "atrium");
    strcpy(ev.u.open.chest, "a1");
    expect_bad(h, &ev, "requires \"key\"");
    strcpy(ev.u.open.zone, "nowhere");
    expect_bad(h, &ev, "unknown zone");
    memset(ev.u.open.chest, 'c', sizeof ev.u.open.chest);
    strcpy(ev.u.open.zone, "hall");
    expect_bad(h, &ev, "unterminated");
    ev.type = EVENT_MAP;
    ev.u.map.version = -1;
    expect_bad(h, &ev, "map version");
    ev.type = EVENT_DEFINE;
    memset(&ev.u, 0, sizeof ev.u);
    ev.u.define.json = "{not json";
    ev.u.define.json_len = strlen(ev.u.define.json);
    expect_bad(h, &ev, "definition refused: invalid JSON");
    ev.u.define.json = "{\"name\":\"n\"," MAP "}";
    ev.u.define.json_len = strlen(ev.u.define.json);
    expect_bad(h, &ev, "was scanned");
    ev.u.define.json = NULL;
    expect_bad(h, &ev, "without JSON");
    struct hunt *undefined = engine_hunt_create("u");
    ev = base;
    ev.seq = 1;
    expect_bad(undefined, &ev, "not defined");
    engine_hunt_destroy(undefined);
    engine_hunt_destroy(h);
}

/* A player whose history outgrows the searched prefix: the once-only rules still hold,
 * across the switch to the hash set, for scans, collects and interleaved opens. */
TEST(t_long_history)
{
    rec_reset();
    char *def = malloc(65536);
    size_t at = (size_t)snprintf(def, 65536, "{\"name\":\"n\"," MAP ",\"codes\":[");
    for (int i = 0; i < 40; i++)
        at += (size_t)snprintf(def + at, 65536 - at,
                               "%s{\"id\":\"c%d\",\"points\":1,\"x\":0,\"y\":0}", i ? "," : "", i);
    at += (size_t)snprintf(def + at, 65536 - at, "],\"items\":[");
    for (int i = 0; i < 20; i++)
        at +=
            (size_t)snprintf(def + at, 65536 - at,
                             "%s{\"id\":\"i%d\",\"x\":0,\"y\":0,\"quantity\":9}", i ? "," : "", i);
    snprintf(def + at, 65536 - at,
             "],\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":1,\"h\":1,"
             "\"chest_range\":{\"prefix\":\"r\",\"count\":100,\"points\":2}}]}");
    struct hunt *h = make("h1", def);
    free(def);
    char id[16];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "c%d", i);
        CHECK_EQ_INT(scan(h, 1, id, NULL), 0);
        if (i % 3 == 0) CHECK_EQ_INT(open_chest(h, 1, "z", NULL, NULL), 0);
        if (i < 20) {
            snprintf(id, sizeof id, "i%d", i);
            CHECK_EQ_INT(collect(h, 1, id, NULL), 0);
        }
        for (int j = 0; j <= i; j++) { /* everything done so far is refused */
            snprintf(id, sizeof id, "c%d", j);
            CHECK_EQ_INT(scan(h, 1, id, NULL), ENGINE_ALREADY_SCANNED);
            snprintf(id, sizeof id, "i%d", j);
            if (j < 20) CHECK_EQ_INT(collect(h, 1, id, NULL), ENGINE_ALREADY_COLLECTED);
        }
        CHECK_EQ_INT(scan(h, 2, "c0", NULL), i == 0 ? 0 : ENGINE_ALREADY_SCANNED);
    }
    int64_t score;
    uint64_t rank;
    uint8_t p1[16];
    pid(p1, 1);
    engine_player_score(h, p1, &score, &rank);
    CHECK_EQ_INT(score, 40 + 2 * 14);
    struct event ev = {0};
    ev.seq = engine_seq(h) + 1;
    ev.time_ms = NOW;
    ev.type = EVENT_SCAN;
    memcpy(ev.player, p1, 16);
    strcpy(ev.u.scan.code, "c17");
    expect_bad(h, &ev, "already scanned");
    struct hunt *r = replay("h1");
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    char *a = me_dump(h, 1), *b = me_dump(r, 1);
    CHECK_EQ_STR(a, b);
    free(a);
    free(b);
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
}

/* Random events, mostly well-formed and often valid: apply never crashes, and a
 * refused event leaves the digest as it was. */
TEST(t_apply_fuzz)
{
    static const char *ids[] = {"c1",     "c2",     "c3",      "key", "gem",
                                "atrium", "hall",   "a1",      "a2",  "drop-0",
                                "drop-4", "drop-5", "drop-01", "x",   ""};
    rec_reset();
    struct hunt *h = random_game(6, 300, 9);
    uint64_t s = 99;
    int ok = 0;
    for (int i = 0; i < 100000; i++) {
        struct event ev;
        memset(&ev, 0, sizeof ev);
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ev.seq = engine_seq(h) + 1 - ((s >> 60) == 0) + ((s >> 60) == 1);
        ev.type = (uint8_t)((s >> 8) % 7);
        ev.time_ms = (s >> 50) % 16 ? NOW : T0 - 1;
        pid(ev.player, (unsigned)(s >> 20) % 8);
        const char *a = ids[(s >> 30) % 15], *b = ids[(s >> 40) % 15];
        switch (ev.type) { /* a type outside the table has no payload */
        case EVENT_SCAN: strcpy(ev.u.scan.code, a); break;
        case EVENT_COLLECT: strcpy(ev.u.collect.item, a); break;
        case EVENT_OPEN:
            strcpy(ev.u.open.zone, a);
            strcpy(ev.u.open.chest, b);
            break;
        case EVENT_MAP: ev.u.map.version = (int64_t)((s >> 45) % 50) - 5; break;
        case EVENT_DEFINE:
            ev.u.define.json = (s >> 33) % 2 ? BASE : "{\"name\":\"n\"," MAP "}";
            ev.u.define.json_len = strlen(ev.u.define.json);
            break;
        default: break;
        }
        uint64_t before = engine_digest(h);
        int rc = engine_apply(h, &ev, NULL, NULL, 0);
        CHECK(rc == 0 || rc == ENGINE_BAD_EVENT);
        if (rc) CHECK_EQ_INT(engine_digest(h), before);
        ok += rc == 0;
    }
    CHECK(ok > 100);
    engine_hunt_destroy(h);
}

/* ---- fairness: the chest draw --------------------------------------------------------- */

/* The draw of hunts created before seeds (ENGINE_DRAW_LEGACY), written again from its
 * recipe: FNV-1a 64 over hunt id, NUL, zone id, NUL and the 16-byte player id; xor the
 * number n of eligible closed chests; splitmix64; mod n = the index among the eligible
 * closed chests in index order. Every input is public: any player can run this. */
static uint64_t old_splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t old_fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t old_draw(const char *hunt, const char *zone, const uint8_t player[16],
                         uint64_t closed)
{
    uint64_t s = old_fnv(0xcbf29ce484222325ull, hunt, strlen(hunt) + 1);
    s = old_fnv(old_fnv(s, zone, strlen(zone) + 1), player, 16);
    return old_splitmix(s ^ closed) % closed;
}

/* The draw of seeded hunts (ENGINE_DRAW_HMAC), written again from engine.c's recipe with
 * OpenSSL's one-shot HMAC: k = floor(x * n / 2^64), x = the first 8 bytes (big-endian) of
 * HMAC-SHA-256(seed, "veltrix-draw-v1" || u8 len(zone) || zone || player[16] ||
 * u64be(opened in the zone) || u64be(n)). */
static uint64_t hmac_draw(const uint8_t seed[32], const char *zone, const uint8_t player[16],
                          uint64_t opened, uint64_t n)
{
    uint8_t msg[128], mac[32];
    unsigned mac_len = 0;
    size_t at = 15, zl = strlen(zone);
    memcpy(msg, "veltrix-draw-v1", 15);
    msg[at++] = (uint8_t)zl;
    memcpy(msg + at, zone, zl);
    memcpy(msg + at + zl, player, 16);
    at += zl + 16;
    for (int i = 0; i < 8; i++) {
        msg[at + (size_t)i] = (uint8_t)(opened >> (56 - 8 * i));
        msg[at + 8 + (size_t)i] = (uint8_t)(n >> (56 - 8 * i));
    }
    HMAC(EVP_sha256(), seed, 32, msg, at + 16, mac, &mac_len);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | mac[i];
    return (uint64_t)(((unsigned __int128)x * n) >> 64);
}

/* A distinct seed per n (the tests' stand-in for the OS's random bytes). */
static void test_seed(uint8_t seed[32], uint64_t n)
{
    for (int i = 0; i < 4; i++) {
        uint64_t w = old_splitmix(n * 4 + (uint64_t)i + 0x5eed);
        memcpy(seed + 8 * i, &w, 8);
    }
}

static struct hunt *make_seeded(const char *id, const char *json, const uint8_t seed[32])
{
    struct hunt *h = engine_hunt_create(id);
    struct event ev;
    char err[256] = "";
    CHECK(h != NULL);
    int rc = engine_define(h, json, strlen(json), seed, NOW, &ev, err, sizeof err);
    if (rc) fprintf(stderr, "  define refused: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    if (!rc) CHECK_EQ_INT(apply_rec(h, &ev, NULL), 0);
    return h;
}

#define FAIR_CHESTS 16u
#define FAIR_HUNTS 500u
#define FAIR_OPENS 4u /* per hunt: 2,000 draws in all */

/* 500 hunts alike in every public value (hunt id, definition, zone, the same four
 * players opening in the same order), differing only in their secret seed. A player who
 * knows every public value and computes the old draw guesses no better than chance: the
 * hits stay within 6 sigma of the expected sum of 1/closed over the 2,000 draws (a false
 * failure for a fair draw has a probability below 1e-8; the seeds are fixed, so the run
 * reproduces). And since the first draws of all 500 hunts have the very same public
 * inputs, no function of public values at all can guess them better than the most
 * frequent chest does: they spread evenly over the 16 chests (chi-square within 6 sigma
 * of its mean). Before seeds the predictor was right 2,000 times out of 2,000 and every
 * hunt's first draw was the same chest. */
TEST(t_draw_unpredictable)
{
    const char *def = "{\"name\":\"n\"," MAP ",\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":2,"
                      "\"h\":2,\"chest_range\":{\"prefix\":\"c\",\"count\":16,\"points\":1}}]}";
    double expect = 0, var = 0;
    unsigned hits = 0, draws = 0, first[FAIR_CHESTS] = {0};
    for (unsigned i = 0; i < FAIR_HUNTS; i++) {
        char id[32], ch[ENGINE_CHEST_ID_MAX + 1];
        uint8_t seed[32], closed[FAIR_CHESTS], p[16];
        rec_reset();
        snprintf(id, sizeof id, "fair");
        test_seed(seed, i);
        struct hunt *h = make_seeded(id, def, seed);
        memset(closed, 1, sizeof closed);
        for (unsigned k = 0; k < FAIR_OPENS; k++) {
            unsigned n = FAIR_CHESTS - k, who = k, guess = 0;
            pid(p, who);
            uint64_t want = old_draw(id, "z", p, n);
            for (unsigned c = 0, seen = 0; c < FAIR_CHESTS; c++)
                if (closed[c] && seen++ == want) guess = c;
            if (open_chest(h, who, "z", ch, NULL) != 0) break;
            unsigned got = (unsigned)atoi(ch + 1);
            CHECK(got < FAIR_CHESTS && closed[got]);
            closed[got] = 0;
            hits += got == guess;
            draws++;
            expect += 1.0 / n;
            var += (1.0 / n) * (1 - 1.0 / n);
            if (k == 0) first[got]++;
        }
        engine_hunt_destroy(h);
    }
    double sigma = sqrt(var), chi2 = 0, e = (double)FAIR_HUNTS / FAIR_CHESTS;
    for (unsigned c = 0; c < FAIR_CHESTS; c++)
        chi2 += (first[c] - e) * (first[c] - e) / e;
    printf("  public-value predictor: %u hits in %u draws (chance %.1f +- %.1f); first draws "
           "chi2 %.1f (15 dof)\n",
           hits, draws, expect, sigma, chi2);
    CHECK_EQ_INT(draws, FAIR_HUNTS * FAIR_OPENS);
    CHECK(fabs(hits - expect) <= 6 * sigma);
    CHECK(chi2 <= 15 + 6 * sqrt(30.0));
    rec_reset();
}

/* The engine draws exactly by the documented recipe (hmac_draw above, itself checked
 * against vectors computed with Python's hmac module): three pools in one zone (none,
 * "amulet", "key": byte order of the item ids), explicit chests before the range,
 * players holding no item, one or both, keys consumed; every open compared. */
TEST(t_draw_recipe)
{
    static const uint8_t kat_seed[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                         11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                         22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    uint8_t p1[16];
    pid(p1, 1);
    CHECK_EQ_INT(hmac_draw(kat_seed, "z", p1, 0, 16), 12);
    CHECK_EQ_INT(hmac_draw(kat_seed, "hall", p1, 7, 1000), 353);
    CHECK_EQ_INT(hmac_draw(kat_seed, "z", p1, 3, 10000000), 3715466);
    rec_reset();
    const char *kat_def = "{\"name\":\"n\"," MAP ",\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,"
                          "\"w\":2,\"h\":2,\"chest_range\":{\"prefix\":\"c\",\"count\":16,"
                          "\"points\":1}}]}";
    struct hunt *k = make_seeded("kat", kat_def, kat_seed);
    char ch[ENGINE_CHEST_ID_MAX + 1];
    CHECK_EQ_INT(open_chest(k, 1, "z", ch, NULL), 0);
    CHECK_EQ_STR(ch, "c12");
    engine_hunt_destroy(k);

    /* Index order: pool none [e0 e1 r0..r29], pool amulet [a0 a1], pool key [k0 k1 k2]. */
    static const char *order[] = {"e0", "e1", "a0", "a1", "k0", "k1", "k2"};
    enum { N_EXPL = 2, N_RANGE = 30, N_ALL = N_EXPL + N_RANGE + 5 };
    const char *def =
        "{\"name\":\"n\"," MAP ",\"items\":[{\"id\":\"key\",\"x\":0,\"y\":0,\"quantity\":1000},"
        "{\"id\":\"amulet\",\"x\":0,\"y\":0,\"quantity\":1000}],\"zones\":[{\"id\":\"vault\","
        "\"x\":0,\"y\":0,\"w\":2,\"h\":2,\"chests\":[{\"id\":\"k0\",\"points\":1,\"requires\":"
        "\"key\"},{\"id\":\"e0\",\"points\":1},{\"id\":\"a0\",\"points\":1,\"requires\":"
        "\"amulet\"},{\"id\":\"k1\",\"points\":1,\"requires\":\"key\"},{\"id\":\"e1\",\"points\":"
        "1},{\"id\":\"a1\",\"points\":1,\"requires\":\"amulet\"},{\"id\":\"k2\",\"points\":1,"
        "\"requires\":\"key\"}],\"chest_range\":{\"prefix\":\"r\",\"count\":30,\"points\":1}}]}";
    uint8_t seed[32];
    test_seed(seed, 4242);
    struct hunt *h = make_seeded("recipe", def, seed);
    uint8_t closed[N_ALL];
    memset(closed, 1, sizeof closed);
    unsigned opened = 0, checked = 0;
    for (unsigned p = 0; p < 60 && opened < N_ALL; p++) {
        int key = p % 3 == 1, amulet = p % 4 == 2;
        if (key) CHECK_EQ_INT(collect(h, p, "key", NULL), 0);
        if (amulet) CHECK_EQ_INT(collect(h, p, "amulet", NULL), 0);
        /* The eligible closed chests in index order: slot numbers into closed[] are
         * e0 e1 r0..r29 (0..31), a0 a1 (32, 33), k0..k2 (34..36). */
        unsigned elig[N_ALL], n = 0;
        for (unsigned c = 0; c < N_EXPL + N_RANGE; c++)
            if (closed[c]) elig[n++] = c;
        for (unsigned c = 32; amulet && c < 34; c++)
            if (closed[c]) elig[n++] = c;
        for (unsigned c = 34; key && c < 37; c++)
            if (closed[c]) elig[n++] = c;
        int rc = open_chest(h, p, "vault", ch, NULL);
        if (!n) {
            CHECK_EQ_INT(rc, ENGINE_NO_CHEST);
            continue;
        }
        CHECK_EQ_INT(rc, 0);
        uint8_t id[16];
        pid(id, p);
        unsigned want = elig[hmac_draw(seed, "vault", id, opened, n)];
        char want_id[16];
        if (want < N_EXPL)
            strcpy(want_id, order[want]);
        else if (want < N_EXPL + N_RANGE)
            snprintf(want_id, sizeof want_id, "r%u", want - N_EXPL);
        else
            strcpy(want_id, order[want - N_RANGE]);
        CHECK_EQ_STR(ch, want_id);
        for (unsigned c = 0; c < N_ALL; c++) { /* follow the engine (it is checked above) */
            char cid[16];
            if (c < N_EXPL || c >= N_EXPL + N_RANGE)
                strcpy(cid, order[c < N_EXPL ? c : c - N_RANGE]);
            else
                snprintf(cid, sizeof cid, "r%u", c - N_EXPL);
            if (!strcmp(cid, ch)) closed[c] = 0;
        }
        opened++;
        checked++;
    }
    CHECK(checked > 30);
    engine_hunt_destroy(h);
}

/* The same seed and the same history give the same draws: on two hunts fed the same
 * commands, and on a hunt rebuilt from the encoded events (the seed travels in the
 * define event; an update keeps it). Another seed gives other draws. */
TEST(t_draw_replay)
{
    rec_reset();
    uint8_t other[32];
    test_seed(other, 77);
    const char *def = "{\"name\":\"n\"," MAP ",\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":2,"
                      "\"h\":2,\"chest_range\":{\"prefix\":\"c\",\"count\":1000,\"points\":1}}]}";
    struct hunt *b = make("same", def), *c = make_seeded("same", def, other);
    rec_reset(); /* the records are a's */
    struct hunt *a = make("same", def);
    unsigned differ = 0;
    for (unsigned i = 0; i < 300; i++) {
        uint8_t p[16];
        struct event e1, e2, e3;
        pid(p, i % 41);
        if (i == 150) { /* an update in the middle keeps the seed */
            CHECK_EQ_INT(try_update(a, def, NULL, 0), 0);
            CHECK_EQ_INT(engine_define(b, def, strlen(def), NULL, NOW, &e2, NULL, 0), 0);
            CHECK_EQ_INT(e2.u.define.draw_rule, 0);
            CHECK_EQ_INT(engine_apply(b, &e2, NULL, NULL, 0), 0);
            CHECK_EQ_INT(engine_define(c, def, strlen(def), NULL, NOW, &e3, NULL, 0), 0);
            CHECK_EQ_INT(engine_apply(c, &e3, NULL, NULL, 0), 0);
        }
        CHECK_EQ_INT(engine_open(a, p, "z", NOW, &e1), 0);
        CHECK_EQ_INT(engine_open(b, p, "z", NOW + 1000, &e2), 0);
        CHECK_EQ_STR(e1.u.open.chest, e2.u.open.chest);
        CHECK_EQ_INT(engine_open(c, p, "z", NOW, &e3), 0);
        differ += strcmp(e1.u.open.chest, e3.u.open.chest) != 0;
        CHECK_EQ_INT(apply_rec(a, &e1, NULL), 0);
        CHECK_EQ_INT(engine_apply(b, &e2, NULL, NULL, 0), 0);
        e1.seq = engine_seq(c) + 1; /* c takes a's choice, to keep the same closed set */
        CHECK_EQ_INT(engine_apply(c, &e1, NULL, NULL, 0), 0);
    }
    CHECK(differ > 250);
    /* a and b hold the same state; their hash chains differ (times are part of them) */
    for (unsigned i = 0; i < 41; i++) {
        uint8_t p[16];
        pid(p, i);
        json_t *ma = engine_me_json(a, p), *mb = engine_me_json(b, p);
        CHECK(json_equal(ma, mb));
        json_decref(ma);
        json_decref(mb);
    }
    CHECK(engine_digest(a) != engine_digest(c)); /* only the seed differs */
    struct hunt *r = replay("same");
    CHECK_EQ_INT(engine_digest(r), engine_digest(a));
    CHECK_EQ_INT(engine_draw_rule(r), ENGINE_DRAW_HMAC);
    for (unsigned i = 0; i < 50; i++) {
        uint8_t p[16];
        struct event e1, e2;
        pid(p, 500 + i);
        CHECK_EQ_INT(engine_open(a, p, "z", NOW, &e1), 0);
        CHECK_EQ_INT(engine_open(r, p, "z", NOW, &e2), 0);
        CHECK_EQ_STR(e1.u.open.chest, e2.u.open.chest);
        CHECK_EQ_INT(engine_apply(a, &e1, NULL, NULL, 0), 0);
        CHECK_EQ_INT(engine_apply(r, &e2, NULL, NULL, 0), 0);
    }
    engine_hunt_destroy(r);
    engine_hunt_destroy(a);
    engine_hunt_destroy(b);
    engine_hunt_destroy(c);
}

/* Hunts created before seeds: their define event is the bare JSON (what an old log
 * holds). They keep drawing exactly as before: the choices recorded from the code before
 * seeds for one scenario (pools with and without a key, explicit chests and a range, two
 * zones), and the old recipe over a long run. */
#define LEGACY_DEF                                                                                 \
    "{\"name\":\"old\"," MAP ",\"items\":[{\"id\":\"key\",\"x\":0,\"y\":0,\"quantity\":100}],"     \
    "\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":2,\"h\":2,\"chests\":["                        \
    "{\"id\":\"e0\",\"points\":1},{\"id\":\"e1\",\"points\":1},{\"id\":\"e2\",\"points\":1},"      \
    "{\"id\":\"k0\",\"points\":5,\"requires\":\"key\"},{\"id\":\"k1\",\"points\":5,"               \
    "\"requires\":\"key\"}],\"chest_range\":{\"prefix\":\"r\",\"count\":40,\"points\":2}},"        \
    "{\"id\":\"y\",\"x\":4,\"y\":4,\"w\":2,\"h\":2,\"chest_range\":{\"prefix\":\"y-\",\"count\":"  \
    "1000,\"points\":1}}]}"

static struct hunt *make_legacy(const char *id, const char *json)
{
    struct hunt *h = engine_hunt_create(id);
    struct event ev;
    CHECK(h != NULL);
    memset(&ev, 0x55, sizeof ev);
    ev.seq = 1;
    ev.time_ms = NOW;
    memset(ev.player, 0, 16);
    CHECK_EQ_INT(event_decode(&ev, EVENT_DEFINE, (const uint8_t *)json, strlen(json)), 0);
    CHECK_EQ_INT(ev.u.define.draw_rule, ENGINE_DRAW_LEGACY);
    CHECK_EQ_INT(apply_rec(h, &ev, NULL), 0);
    CHECK_EQ_INT(engine_draw_rule(h), ENGINE_DRAW_LEGACY);
    return h;
}

TEST(t_draw_legacy)
{
    /* Recorded with the engine of commit 5133acc (before seeds). */
    static const char golden[] =
        "r28 y-826 r17 r24 y-558 r25 r23 y-281 r36 r32 y-300 e0 r13 y-337 r26 r8 y-654 r37 "
        "r31 y-642 r34 r21 y-366 r10 r30 y-57 r35 r33 y-862 r11 r20 y-123 r19 r2 y-115 r9 r14 "
        "y-751 r15 r7 y-489 r27 r12 y-163 r16 e2 y-51 r3 r38 y-909 r1 r18 y-400 r6 r4 y-389 "
        "r0 r22 y-866 r39 r5 y-347 e1 r29 y-391 - - y-299 - k1 y-336 - - y-931 - - y-882 - k0 "
        "y-852 - - y-626 - - y-296 - - y-74 -";
    rec_reset();
    struct hunt *h = make_legacy("legacy", LEGACY_DEF);
    char got[4096] = "";
    size_t at = 0;
    for (unsigned p = 1; p <= 30; p++) {
        static const char *zones[] = {"z", "y", "z"};
        if (p % 3 == 0) CHECK_EQ_INT(collect(h, p, "key", NULL), 0);
        for (int i = 0; i < 3; i++) {
            char ch[ENGINE_CHEST_ID_MAX + 1];
            if (open_chest(h, p, zones[i], ch, NULL)) strcpy(ch, "-");
            at += (size_t)snprintf(got + at, sizeof got - at, "%s%s", at ? " " : "", ch);
        }
    }
    CHECK_EQ_STR(got, golden);
    /* An update keeps the legacy rule; a replay of the log too. */
    CHECK_EQ_INT(try_update(h, LEGACY_DEF, NULL, 0), 0);
    CHECK_EQ_INT(engine_draw_rule(h), ENGINE_DRAW_LEGACY);
    json_t *j = engine_hunt_json(h);
    CHECK(json_is_null(json_object_get(j, "seed_commitment")));
    json_decref(j);
    struct hunt *r = replay("legacy");
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    CHECK_EQ_INT(engine_draw_rule(r), ENGINE_DRAW_LEGACY);
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
    /* The old recipe, 1,000 draws of a 1,000-chest range. */
    rec_reset();
    h = make_legacy("legacy-2", LEGACY_DEF);
    uint8_t closed[1000];
    memset(closed, 1, sizeof closed);
    for (unsigned i = 0; i < 1000; i++) {
        uint8_t p[16];
        char ch[ENGINE_CHEST_ID_MAX + 1], want[16];
        pid(p, i * 7919 % 613);
        uint64_t k = old_draw("legacy-2", "y", p, 1000 - i);
        for (unsigned c = 0, seen = 0; c < 1000; c++)
            if (closed[c] && seen++ == k) snprintf(want, sizeof want, "y-%u", c);
        if (open_chest(h, i * 7919 % 613, "y", ch, NULL)) break;
        CHECK_EQ_STR(ch, want);
        closed[atoi(ch + 2)] = 0;
    }
    engine_hunt_destroy(h);
}

/* The seed: carried by the creating define event only (encoded 0x00, rule, seed, JSON),
 * committed to in the public view from the start, revealed only once ends_at has passed
 * (never without ends_at), kept by updates, never replaced by an event, and never put
 * in the public view by a definition that holds keys named like it. */
TEST(t_seed_lifecycle)
{
    rec_reset();
    uint8_t seed[32], digest[32];
    char hex[65], want[65];
    test_seed(seed, 9);
    SHA256(seed, 32, digest);
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", digest[i]);
    const char *def = "{\"name\":\"n\"," WINDOW "," MAP ",\"seed\":\"00\",\"seed_commitment\":1}";
    struct hunt *h = engine_hunt_create("life");
    struct event ev;
    CHECK_EQ_INT(engine_define(h, def, strlen(def), seed, NOW, &ev, NULL, 0), 0);
    CHECK_EQ_INT(ev.u.define.draw_rule, ENGINE_DRAW_HMAC);
    CHECK(memcmp(ev.u.define.seed, seed, 32) == 0);
    uint8_t buf[512];
    size_t n = event_encode(&ev, buf, sizeof buf);
    CHECK_EQ_INT(n, 2 + 32 + strlen(def));
    CHECK(buf[0] == 0 && buf[1] == ENGINE_DRAW_HMAC && !memcmp(buf + 2, seed, 32) &&
          !memcmp(buf + 34, def, strlen(def)));
    CHECK_EQ_INT(apply_rec(h, &ev, NULL), 0);
    json_t *j = engine_hunt_json(h);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "seed_commitment")), want);
    CHECK(json_object_get(j, "seed") == NULL);
    json_decref(j);
    /* Revealed from ends_at on (2026-12-03T09:00:00Z), not a millisecond before. */
    int64_t end = T0 + 48 * HOUR;
    CHECK_EQ_INT(engine_seed_reveal(h, end - 1, hex), -1);
    CHECK_EQ_INT(engine_seed_reveal(h, end, hex), 0);
    for (int i = 0; i < 32; i++)
        CHECK_EQ_INT(strtoul((char[]){hex[2 * i], hex[2 * i + 1], 0}, NULL, 16), seed[i]);
    /* An update keeps it (whatever seed the caller passes); a seed in an update event is
     * refused; so is an unknown rule. */
    uint8_t other[32];
    test_seed(other, 10);
    const char *no_end = "{\"name\":\"n\"," MAP "}";
    CHECK_EQ_INT(engine_define(h, no_end, strlen(no_end), other, NOW, &ev, NULL, 0), 0);
    CHECK_EQ_INT(ev.u.define.draw_rule, 0);
    struct event forged = ev;
    forged.u.define.draw_rule = ENGINE_DRAW_HMAC;
    memcpy(forged.u.define.seed, other, 32);
    expect_bad(h, &forged, "cannot change the seed");
    forged.u.define.draw_rule = 2;
    expect_bad(h, &forged, "unknown draw rule");
    CHECK_EQ_INT(apply_rec(h, &ev, NULL), 0);
    j = engine_hunt_json(h);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "seed_commitment")), want);
    json_decref(j);
    CHECK_EQ_INT(engine_seed_reveal(h, INT64_MAX - 1, hex), -1); /* no ends_at: never */
    struct hunt *r = replay("life");
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    j = engine_hunt_json(r);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "seed_commitment")), want);
    json_decref(j);
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
    /* Not defined, or legacy: nothing to reveal. */
    h = engine_hunt_create("none");
    CHECK_EQ_INT(engine_seed_reveal(h, INT64_MAX - 1, hex), -1);
    CHECK_EQ_INT(engine_draw_rule(h), ENGINE_DRAW_LEGACY);
    engine_hunt_destroy(h);
    rec_reset();
    h = make_legacy("old", "{\"name\":\"n\"," WINDOW "," MAP "}");
    CHECK_EQ_INT(engine_seed_reveal(h, INT64_MAX - 1, hex), -1);
    engine_hunt_destroy(h);
    /* No definition starts with a NUL byte, so a bare-JSON define event of an old log
     * can never be read as a seeded one. */
    char nul_def[128] = "";
    strcpy(nul_def + 1, "{\"name\":\"n\"," MAP "}");
    h = engine_hunt_create("nul");
    CHECK_EQ_INT(engine_define(h, nul_def, 1 + strlen(nul_def + 1), seed, NOW, &ev, NULL, 0),
                 ENGINE_EINVAL);
    engine_hunt_destroy(h);
}

/* ---- codec ------------------------------------------------------------------------- */

TEST(t_codec)
{
    struct event ev, back;
    uint8_t buf[256];
    memset(&ev, 0, sizeof ev);
    ev.type = EVENT_OPEN;
    strcpy(ev.u.open.zone, "atrium");
    strcpy(ev.u.open.chest, "drop-123");
    size_t n = event_encode(&ev, buf, sizeof buf);
    CHECK_EQ_INT(n, 6 + 1 + 8);
    CHECK(memcmp(buf, "atrium\0drop-123", n) == 0);
    CHECK_EQ_INT(event_decode(&back, EVENT_OPEN, buf, n), 0);
    CHECK_EQ_STR(back.u.open.zone, "atrium");
    CHECK_EQ_STR(back.u.open.chest, "drop-123");
    CHECK_EQ_INT(event_encode(&ev, buf, 3), n); /* too small: reports the need */
    memset(&ev.u, 0, sizeof ev.u);
    ev.type = EVENT_SCAN;
    strcpy(ev.u.scan.code, "atrium");
    n = event_encode(&ev, buf, sizeof buf);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(event_decode(&back, EVENT_SCAN, buf, n), 0);
    CHECK_EQ_INT(back.type, EVENT_SCAN);
    CHECK_EQ_STR(back.u.scan.code, "atrium");
    ev.type = EVENT_COLLECT;
    strcpy(ev.u.collect.item, "gem");
    n = event_encode(&ev, buf, sizeof buf);
    CHECK_EQ_INT(event_decode(&back, EVENT_COLLECT, buf, n), 0);
    CHECK_EQ_STR(back.u.collect.item, "gem");
    ev.type = EVENT_MAP;
    ev.u.map.version = 1234567;
    n = event_encode(&ev, buf, sizeof buf);
    CHECK(memcmp(buf, "1234567", n) == 0);
    CHECK_EQ_INT(event_decode(&back, EVENT_MAP, buf, n), 0);
    CHECK_EQ_INT(back.u.map.version, 1234567);
    ev.type = EVENT_DEFINE;
    memset(&ev.u, 0, sizeof ev.u);
    ev.u.define.json = BASE;
    ev.u.define.json_len = strlen(BASE);
    uint8_t big[2048];
    n = event_encode(&ev, big, sizeof big);
    CHECK_EQ_INT(n, strlen(BASE));
    CHECK_EQ_INT(event_decode(&back, EVENT_DEFINE, big, n), 0);
    CHECK(back.u.define.json == (const char *)big && back.u.define.json_len == n);
    /* Rejections. */
    static const struct {
        uint8_t type;
        const char *data;
        size_t len;
    } bad[] = {
        {EVENT_SCAN, "", 0},
        {EVENT_SCAN, "A", 1},
        {EVENT_SCAN, "a\0", 2},
        {EVENT_COLLECT, "a b", 3},
        {EVENT_OPEN, "zone", 4},
        {EVENT_OPEN, "\0c", 2},
        {EVENT_OPEN, "z\0", 2},
        {EVENT_OPEN, "z\0c\0", 4},
        {EVENT_DEFINE, "", 0},
        {EVENT_MAP, "", 0},
        {EVENT_MAP, "-1", 2},
        {EVENT_MAP, "01", 2},
        {EVENT_MAP, "1x", 2},
        {EVENT_MAP, "9999999999999999999", 19},
        {0, "a", 1},
        {6, "a", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = event_decode(&back, bad[i].type, (const uint8_t *)bad[i].data, bad[i].len);
        if (rc != ENGINE_BAD_EVENT) fprintf(stderr, "  decode case %zu accepted\n", i);
        CHECK_EQ_INT(rc, ENGINE_BAD_EVENT);
    }
    char longid[80];
    memset(longid, 'a', 65);
    CHECK_EQ_INT(event_decode(&back, EVENT_SCAN, (uint8_t *)longid, 65), ENGINE_BAD_EVENT);
    CHECK_EQ_INT(event_decode(&back, EVENT_SCAN, (uint8_t *)longid, 64), 0);
}

TEST(t_codec_garbage)
{
    uint64_t s = 7;
    uint8_t data[200];
    struct event ev;
    int accepted = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (size_t)(s >> 40) % sizeof data;
        for (size_t j = 0; j < len; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            /* mostly id characters, some NULs and anything */
            uint8_t r = (uint8_t)(s >> 56);
            data[j] = r < 200 ? "abc-_09\0"[r % 8] : r;
        }
        memset(&ev, 0x55, sizeof ev);
        int rc = event_decode(&ev, (uint8_t)(s >> 8) % 8, data, len);
        CHECK(rc == 0 || rc == ENGINE_BAD_EVENT);
        if (rc == 0 && ev.type == EVENT_OPEN) {
            CHECK(strlen(ev.u.open.zone) < sizeof ev.u.open.zone);
            CHECK(strlen(ev.u.open.chest) < sizeof ev.u.open.chest);
        }
        if (rc == 0 && ev.type == EVENT_SCAN) CHECK(strlen(ev.u.scan.code) < sizeof ev.u.scan.code);
        if (rc == 0 && ev.type == EVENT_COLLECT)
            CHECK(strlen(ev.u.collect.item) < sizeof ev.u.collect.item);
        accepted += rc == 0;
    }
    CHECK(accepted > 0);
    CHECK_EQ_INT(event_decode(&ev, EVENT_SCAN, NULL, 0), ENGINE_BAD_EVENT);
}

TEST(t_err_codes)
{
    static const struct {
        int err;
        const char *code;
    } m[] = {
        {ENGINE_EINVAL, "invalid_request"},
        {ENGINE_ENTITY_IN_USE, "entity_in_use"},
        {ENGINE_INVALID_CODE, "invalid_code"},
        {ENGINE_ALREADY_SCANNED, "already_scanned"},
        {ENGINE_NOT_ACTIVE, "hunt_not_active"},
        {ENGINE_ITEM_NOT_FOUND, "item_not_found"},
        {ENGINE_ITEM_EXHAUSTED, "item_exhausted"},
        {ENGINE_ALREADY_COLLECTED, "already_collected"},
        {ENGINE_ZONE_NOT_FOUND, "zone_not_found"},
        {ENGINE_NO_CHEST, "no_chest_available"},
        {ENGINE_NOMEM, "unavailable"},
        {ENGINE_BAD_EVENT, "bad_event"},
        {ENGINE_NOT_DEFINED, "hunt_not_found"},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        CHECK_EQ_STR(engine_err_code(m[i].err), m[i].code); /* statuses: api_write.c */
    }
}

/* ---- benchmark ---------------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define BENCH_PLAYERS 100000u
#else
#define BENCH_PLAYERS 1000000u
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* BENCH_PLAYERS players scan two of 1000 codes each: the events are built by deciding
 * them on a live hunt, then replayed into a fresh one through the codec. */
TEST(t_bench_replay)
{
    rec_reset();
    char *def = many_codes(1000);
    struct hunt *h = make("bench", def);
    free(def);
    size_t base = engine_memory_bytes(h);
    uint64_t s = 1;
    for (unsigned p = 0; p < BENCH_PLAYERS; p++) {
        for (int k = 0; k < 2; k++) {
            char code[16];
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            snprintf(code, sizeof code, "c%u", (unsigned)((s >> 33) % 1000));
            scan(h, p, code, NULL);
        }
    }
    size_t n = n_recs;
    double t = now_s();
    struct hunt *r = replay("bench");
    t = now_s() - t;
    CHECK_EQ_INT(engine_digest(r), engine_digest(h));
    double per_player = (double)(engine_memory_bytes(r) - base) / BENCH_PLAYERS;
    printf("  replay: %zu events in %.3f s = %.0f events/s (decode + apply)\n", n, t, n / t);
    printf("  memory: %.1f bytes/player at %u players (%zu bytes in all)\n", per_player,
           BENCH_PLAYERS, engine_memory_bytes(r));
    engine_hunt_destroy(r);
    engine_hunt_destroy(h);
    rec_reset();
}

/* ---- the hash chain: a known-answer vector built by hand from the recipe ----------- */

/* canonical(ev) per docs/FAIRNESS.md, written out field by field. */
static size_t kat_canonical(uint8_t *out, uint64_t seq, int64_t t, uint8_t type,
                            const uint8_t player[16], const uint8_t *p, uint32_t plen)
{
    size_t n = 0;
    memcpy(out, "VXEV1", 5);
    n = 5;
    for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)(seq >> (8 * i));
    for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)((uint64_t)t >> (8 * i));
    out[n++] = type;
    memcpy(out + n, player, 16);
    n += 16;
    out[n++] = (uint8_t)(plen >> 24);
    out[n++] = (uint8_t)(plen >> 16);
    out[n++] = (uint8_t)(plen >> 8);
    out[n++] = (uint8_t)plen;
    memcpy(out + n, p, plen);
    return n + plen;
}

/* link = SHA-256(prev || canonical) */
static void kat_link(uint8_t link[32], const uint8_t *canon, size_t n)
{
    uint8_t buf[32 + 512];
    memcpy(buf, link, 32);
    memcpy(buf + 32, canon, n);
    SHA256(buf, 32 + n, link);
}

TEST(t_chain_vector)
{
    static const uint8_t zero[16];
    uint8_t link[32], canon[512], p[64], head[32], player[16];
    struct event ev;
    struct engine_outcome out;
    struct hunt *h = engine_hunt_create("kat");
    pid(player, 3);
    /* 1: the define, H0 = SHA-256(seed); P = rule 1 || SHA-256(definition) */
    CHECK_EQ_INT(engine_define(h, BASE, strlen(BASE), SEED, NOW, &ev, NULL, 0), 0);
    CHECK_EQ_INT(engine_apply(h, &ev, &out, NULL, 0), 0);
    SHA256(SEED, 32, link);
    p[0] = 1;
    SHA256((const uint8_t *)BASE, strlen(BASE), p + 1);
    kat_link(link, canon, kat_canonical(canon, 1, NOW, 1, zero, p, 33));
    CHECK(memcmp(out.hash, link, 32) == 0);
    /* 2: a scan of c1 by player 3 at NOW + 1; P = the code id */
    CHECK_EQ_INT(engine_scan(h, player, "c1", NOW + 1, &ev), 0);
    CHECK_EQ_INT(engine_apply(h, &ev, &out, NULL, 0), 0);
    kat_link(link, canon, kat_canonical(canon, 2, NOW + 1, 2, player, (const uint8_t *)"c1", 2));
    CHECK(memcmp(out.hash, link, 32) == 0);
    /* 3: an open in the atrium (a2: a1 needs a key); P = zone 0x00 chest */
    CHECK_EQ_INT(engine_open(h, player, "atrium", NOW + 2, &ev), 0);
    CHECK_EQ_STR(ev.u.open.chest, "a2");
    CHECK_EQ_INT(engine_apply(h, &ev, &out, NULL, 0), 0);
    kat_link(link, canon,
             kat_canonical(canon, 3, NOW + 2, 4, player, (const uint8_t *)"atrium\0a2", 9));
    CHECK(memcmp(out.hash, link, 32) == 0);
    /* 4: map version 12; P = "12" */
    CHECK_EQ_INT(engine_map(h, 12, NOW + 3, &ev), 0);
    CHECK_EQ_INT(engine_apply(h, &ev, &out, NULL, 0), 0);
    kat_link(link, canon, kat_canonical(canon, 4, NOW + 3, 5, zero, (const uint8_t *)"12", 2));
    CHECK(memcmp(out.hash, link, 32) == 0);
    engine_head_hash(h, head);
    CHECK(memcmp(head, link, 32) == 0);
    char hex[65], want[65];
    engine_hash_hex(head, hex);
    for (int i = 0; i < 32; i++) snprintf(want + 2 * i, 3, "%02x", link[i]);
    CHECK_EQ_STR(hex, want);
    engine_hunt_destroy(h);
    /* a legacy hunt (bare-JSON define, rule 0): H0 is 32 zero bytes */
    h = engine_hunt_create("kat");
    memset(&ev, 0, sizeof ev);
    ev.seq = 1;
    ev.time_ms = NOW;
    CHECK_EQ_INT(event_decode(&ev, EVENT_DEFINE, (const uint8_t *)BASE, strlen(BASE)), 0);
    CHECK_EQ_INT(engine_apply(h, &ev, &out, NULL, 0), 0);
    memset(link, 0, 32);
    p[0] = 0;
    kat_link(link, canon, kat_canonical(canon, 1, NOW, 1, zero, p, 33));
    CHECK(memcmp(out.hash, link, 32) == 0);
    engine_hunt_destroy(h);
}

int main(void)
{
    RUN(t_time);
    RUN(t_define_good);
    RUN(t_define_rules);
    RUN(t_define_limits);
    RUN(t_update_in_use);
    RUN(t_scan);
    RUN(t_collect);
    RUN(t_open_requires);
    RUN(t_open_pools);
    RUN(t_open_reproducible);
    RUN(t_twenty_chests_hundred_players);
    RUN(t_ten_million_range);
    RUN(t_map);
    RUN(t_replay);
    RUN(t_bad_events);
    RUN(t_draw_unpredictable);
    RUN(t_draw_recipe);
    RUN(t_draw_replay);
    RUN(t_draw_legacy);
    RUN(t_seed_lifecycle);
    RUN(t_long_history);
    RUN(t_apply_fuzz);
    RUN(t_codec);
    RUN(t_codec_garbage);
    RUN(t_err_codes);
    RUN(t_chain_vector);
    RUN(t_bench_replay);
    rec_reset();
    free(recs);
    return HARNESS_DONE();
}
