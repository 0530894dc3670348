/* fuzz_event.c — the event log records: event_decode, then engine_apply on a
 * defined hunt, the way recovery reads a hunt's log back from the store.
 *
 * Input: a sequence of records [type u8][player u8][time u8][len u8][len bytes of data].
 * Each fresh input starts from the demo hunt just defined (with a fixed seed), or, when
 * its first byte is 0xff (no record type), from an undefined hunt, so that a define
 * record (bare JSON, or 0x00, rule, 32-byte seed, JSON) creates it. Invariants: a record
 * that decodes encodes back to the very same bytes; a record that does not apply leaves
 * the state (engine_digest) and seq unchanged; one that applies moves seq by one. */
#include "engine.h"
#include "fuzz_util.h"

extern const char demo_hunt_json[];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct hunt *h = engine_hunt_create("demo");
    struct event ev;
    char err[256];
    static const uint8_t seed[ENGINE_SEED_BYTES] = "seed of the event fuzz target 32";
    FUZZ_CHECK(h);
    if (in.len && in.p[0] == 0xff) {
        fuzz_u8(&in);
    } else {
        FUZZ_CHECK(engine_define(h, demo_hunt_json, strlen(demo_hunt_json), seed, 1000, &ev,
                                 err, sizeof err) == ENGINE_OK);
        FUZZ_CHECK(engine_apply(h, &ev, NULL, err, sizeof err) == ENGINE_OK);
    }
    int64_t t = 1000;
    for (int n = 0; fuzz_more(&in) && n < 64; n++) {
        uint8_t type = fuzz_u8(&in), who = fuzz_u8(&in);
        t += fuzz_u8(&in);
        size_t len;
        const uint8_t *rec = fuzz_bytes(&in, fuzz_u8(&in), &len);
        memset(&ev, 0, sizeof ev);
        if (event_decode(&ev, type, rec, len) != ENGINE_OK) continue;
        uint8_t back[300];
        size_t blen = event_encode(&ev, back, sizeof back);
        FUZZ_CHECK(blen == len && !memcmp(back, rec, len)); /* len < 256 <= sizeof back */
        ev.seq = engine_seq(h) + 1;
        ev.time_ms = t;
        memset(ev.player, 0, 16);
        if (type != EVENT_DEFINE && type != EVENT_MAP) ev.player[15] = (uint8_t)(who % 8 + 1);
        uint64_t before = engine_digest(h), seq = engine_seq(h);
        struct engine_outcome out;
        if (engine_apply(h, &ev, &out, err, sizeof err) != ENGINE_OK) {
            FUZZ_CHECK(engine_digest(h) == before && engine_seq(h) == seq);
        } else {
            FUZZ_CHECK(engine_seq(h) == seq + 1);
            FUZZ_CHECK(type != EVENT_DEFINE || seq == 0 || ev.u.define.draw_rule == 0); /* kept */
        }
    }
    char hex[2 * ENGINE_SEED_BYTES + 1];
    if (engine_seed_reveal(h, INT64_MAX - 1, hex) == 0) FUZZ_CHECK(strlen(hex) == 64);
    json_decref(engine_hunt_json(h));
    engine_hunt_destroy(h);
    return 0;
}
