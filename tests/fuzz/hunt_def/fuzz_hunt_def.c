/* fuzz_hunt_def.c — hunt definitions (the PUT /v1/hunts/{id} body) through
 * engine_define, and play on whatever definition is accepted.
 *
 * Input: the JSON definition. When engine_define accepts it: the DEFINE event encodes
 * and decodes to the same definition, applies, and redefining the hunt with the same
 * text is accepted again (an update that changes nothing keeps every used entity). Then
 * every code is scanned and every item collected once by one player, each decision
 * applied, and a scan repeated is refused (already_scanned) without changing state. */
#include "engine.h"
#include "fuzz_util.h"

static const uint8_t player[16] = {1, 2, 3};

static void play(struct hunt *h, int64_t now)
{
    json_t *def = engine_hunt_json(h), *codes = engine_codes_json(h);
    FUZZ_CHECK(def && codes);
    struct event ev;
    struct engine_outcome out;
    char err[256];
    size_t i;
    json_t *c;
    json_array_foreach(codes, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        FUZZ_CHECK(id && engine_has_code(h, id));
        if (engine_scan(h, player, id, now, &ev) != ENGINE_OK) continue;
        FUZZ_CHECK(engine_apply(h, &ev, &out, err, sizeof err) == ENGINE_OK);
        uint64_t d = engine_digest(h);
        FUZZ_CHECK(engine_scan(h, player, id, now, &ev) == ENGINE_ALREADY_SCANNED);
        FUZZ_CHECK(engine_digest(h) == d);
    }
    json_array_foreach(json_object_get(def, "items"), i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id && engine_collect(h, player, id, now, &ev) == ENGINE_OK)
            FUZZ_CHECK(engine_apply(h, &ev, &out, err, sizeof err) == ENGINE_OK);
    }
    json_array_foreach(json_object_get(def, "zones"), i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id && engine_open(h, player, id, now, &ev) == ENGINE_OK)
            FUZZ_CHECK(engine_apply(h, &ev, &out, err, sizeof err) == ENGINE_OK);
    }
    json_decref(engine_me_json(h, player));
    json_decref(def);
    json_decref(codes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hunt *h = engine_hunt_create("fz");
    struct event ev, back;
    char err[256];
    const int64_t now = 1798761600000; /* 2027-01-01: inside or after any window */
    FUZZ_CHECK(h);
    static const uint8_t seed[ENGINE_SEED_BYTES] = "seed of the hunt_def fuzz target";
    if (engine_define(h, (const char *)data, size, seed, now, &ev, err, sizeof err) == ENGINE_OK) {
        size_t need = event_encode(&ev, NULL, 0);
        uint8_t *buf = malloc(need ? need : 1);
        FUZZ_CHECK(buf && event_encode(&ev, buf, need) == need);
        FUZZ_CHECK(event_decode(&back, EVENT_DEFINE, buf, need) == ENGINE_OK);
        const struct event_define *d = &back.u.define;
        FUZZ_CHECK(d->json_len == ev.u.define.json_len &&
                   !memcmp(d->json, ev.u.define.json, d->json_len));
        FUZZ_CHECK(d->draw_rule == ENGINE_DRAW_HMAC && !memcmp(d->seed, seed, sizeof seed));
        FUZZ_CHECK(engine_apply(h, &ev, NULL, err, sizeof err) == ENGINE_OK);
        free(buf);
        play(h, now);
        FUZZ_CHECK(engine_define(h, (const char *)data, size, NULL, now, &ev, err, sizeof err) ==
                   ENGINE_OK);
        FUZZ_CHECK(engine_apply(h, &ev, NULL, err, sizeof err) == ENGINE_OK);
    }
    engine_hunt_destroy(h);
    return 0;
}
