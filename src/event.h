/* event.h — the one table of event types, the event record and its codec (the log's
 * data column). A new event type is one row of EVENT_TYPES plus the cases the compiler
 * then asks for: every switch on enum event_type (engine_apply, the codec, the live
 * stream's message) lists every type and has no default, so -Wswitch names each place.
 * Values read from outside (the store, a fuzzer) are checked with event_type_known()
 * before such a switch. */
#ifndef VELTRIX_EVENT_H
#define VELTRIX_EVENT_H
#include <stddef.h>
#include <stdint.h>

#include "vx.h"

#define EVENT_SEED_BYTES 32 /* a hunt's secret seed (engine.h ENGINE_SEED_BYTES) */
#define EVENT_RULE_HMAC 1   /* the seeded draw rule (engine.h ENGINE_DRAW_HMAC) */
#define EVENT_EBAD (-12)    /* a payload that does not decode (engine.h ENGINE_BAD_EVENT) */

/* The payload of each type (a member of struct event's union; ids are NUL-terminated). */
struct event_define {
    const char *json; /* the definition; not owned, must stay valid during engine_apply */
    size_t json_len;
    /* EVENT_RULE_HMAC with the seed when the event creates the hunt; 0 (no seed) for an
     * update, which keeps the hunt's seed, and in the define events of hunts created
     * before seeds. The seed is secret until the hunt ends: the event's encoding (the
     * log's data column) holds it, so that encoding is never published as is. */
    uint8_t draw_rule;
    uint8_t seed[EVENT_SEED_BYTES];
};
struct event_scan {
    char code[VX_ID_MAX + 1];
};
struct event_collect {
    char item[VX_ID_MAX + 1];
};
struct event_open {
    char zone[VX_ID_MAX + 1];
    char chest[VX_CHEST_ID_MAX + 1]; /* the chest drawn */
};
struct event_map {
    int64_t version; /* the map version published */
};

/* X(name, code in the log, the live stream's "type", payload member of struct event) */
#define EVENT_TYPES(X)                         \
    X(DEFINE, 1, "hunt_updated", define)       \
    X(SCAN, 2, "scan", scan)                   \
    X(COLLECT, 3, "item_collected", collect)   \
    X(OPEN, 4, "chest_opened", open)           \
    X(MAP, 5, "map_published", map)

enum event_type {
#define EVENT_ENUM(name, code, live, member) EVENT_##name = code,
    EVENT_TYPES(EVENT_ENUM)
#undef EVENT_ENUM
};

/* 1 when code is a type of the table. */
int event_type_known(unsigned code);
/* The live stream's "type" of t ("scan", "chest_opened"...). */
const char *event_type_live(enum event_type t);

/* An event: the header every type has, then the payload of its type (ev->type says which
 * member of u is the live one; the others must not be read). */
struct event {
    uint64_t seq;
    int64_t time_ms;
    uint8_t type;
    uint8_t player[16]; /* all zero for DEFINE and MAP */
    union {
#define EVENT_MEMBER(name, code, live, member) struct event_##member member;
        EVENT_TYPES(EVENT_MEMBER)
#undef EVENT_MEMBER
    } u;
};

/* Encodes the type-specific payload of ev into buf; returns the length it needs (which
 * may exceed cap: then nothing useful is written). DEFINE: the definition JSON, or, when
 * it carries a seed, 0x00, the rule (0x01), the 32 seed bytes, then the JSON (no JSON
 * text starts with a NUL byte, so the define events of older logs, the bare JSON, still
 * decode, as definitions without a seed). */
size_t event_encode(const struct event *ev, uint8_t *buf, size_t cap);
/* Sets ev's type and fills its payload from (type, data); a DEFINE's json points into data. 0 or EVENT_EBAD. */
int event_decode(struct event *ev, uint8_t type, const uint8_t *data, size_t len);
/* A whole event read back from a log record: ev is cleared, its header set and its
 * payload decoded (event_decode). 0 or EVENT_EBAD. */
int event_read(struct event *ev, uint64_t seq, int64_t time_ms, uint8_t type,
                      const uint8_t player[16], const uint8_t *data, size_t len);

#endif
