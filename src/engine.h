/* engine.h — one hunt's deterministic state machine.
 *
 * A hunt's state is the fold of its events. Commands are split in two steps:
 *   decide: engine_define/engine_scan/engine_collect/engine_open validate a command
 *           against the current state and, when it is accepted, fill a `struct event`
 *           (seq = engine_seq() + 1, every decision made, e.g. which chest). They change
 *           nothing.
 *   apply:  engine_apply folds an event into the state. The live path applies the event
 *           it just decided; recovery applies events read back from the log. Both give
 *           the same state.
 * Pure: no I/O, no clock, no random source. Time comes in as `now_ms` (Unix ms), and the
 * hunt's secret seed (random bytes the caller draws from the OS when it creates the hunt)
 * comes in with its first definition: the chest choice is a keyed function of (seed,
 * zone, player, the closed chests), so it reproduces, yet nobody without the seed can
 * predict it (engine.c "the chest draw" has the exact recipe).
 * Single-threaded: the thread that owns a hunt is the only one that calls these. */
#ifndef VELTRIX_ENGINE_H
#define VELTRIX_ENGINE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "vx.h"

#define ENGINE_ID_MAX VX_ID_MAX             /* ids: 1..64 chars of [a-z0-9_-] */
#define ENGINE_CHEST_ID_MAX VX_CHEST_ID_MAX /* range chest ids: prefix + decimal index */
#define ENGINE_SEED_BYTES EVENT_SEED_BYTES /* a hunt's secret seed */
#define ENGINE_HASH_BYTES 32                /* a link of the hash chain (SHA-256) */

/* How a hunt draws its chests; fixed when the hunt is created, kept by every update. */
enum engine_draw_rule {
    ENGINE_DRAW_LEGACY = 0, /* hunts created before seeds: a hash of public values only */
    ENGINE_DRAW_HMAC = 1,   /* HMAC-SHA-256 keyed with the hunt's secret seed */
};

enum engine_err {
    ENGINE_OK = 0,
    ENGINE_EINVAL = -1,           /* bad definition: message in err buffer (400) */
    ENGINE_ENTITY_IN_USE = -2,    /* update removes/changes a used entity (409) */
    ENGINE_INVALID_CODE = -3,     /* unknown code in this hunt (400 invalid_code) */
    ENGINE_ALREADY_SCANNED = -4,  /* 409 */
    ENGINE_NOT_ACTIVE = -5,       /* before starts_at / after ends_at (403 hunt_not_active) */
    ENGINE_ITEM_NOT_FOUND = -6,   /* 404 */
    ENGINE_ITEM_EXHAUSTED = -7,   /* 409 */
    ENGINE_ALREADY_COLLECTED = -8,/* 409 */
    ENGINE_ZONE_NOT_FOUND = -9,   /* 404 zone_not_found */
    ENGINE_NO_CHEST = -10,        /* 404 no_chest_available */
    ENGINE_NOMEM = -11,           /* 503 */
    ENGINE_BAD_EVENT = EVENT_EBAD, /* recovery: an event that does not apply (corrupt log) */
    ENGINE_NOT_DEFINED = -13,     /* the hunt has no definition yet (404 hunt_not_found) */
    ENGINE_BAD_SNAPSHOT = -14,    /* recovery: a snapshot that does not decode */
    ENGINE_OLD_SNAPSHOT = -15,    /* recovery: a snapshot from before the hash chain (replay the log) */
};
/* snake_case error code for the API ("already_scanned"...), and its HTTP status. */
const char *engine_err_code(int err);


/* What an applied event did, for building the response. Pointers stay valid until the
 * next engine call on this hunt. */
struct engine_outcome {
    int64_t points;    /* SCAN, OPEN: points awarded */
    int64_t score;     /* the player's score after the event */
    uint64_t rank;     /* the player's rank after the event, 0 = not ranked */
    int64_t count;     /* COLLECT: how many of the item the player now holds */
    int64_t remaining; /* COLLECT: how many of the item are left to collect */
    const char *const *loot; /* OPEN: loot item ids */
    size_t n_loot;
    int created;       /* DEFINE: 1 if this was the hunt's first definition */
    uint8_t hash[ENGINE_HASH_BYTES]; /* the hunt's hash chain after the event */
};

struct engine_lb_row {
    uint8_t player[16];
    int64_t score;
    uint64_t rank;
};

struct engine_stats {
    uint64_t seq;
    uint64_t players;     /* players with at least one event in this hunt */
    uint64_t scans;
    uint64_t chests_left; /* over all zones */
    uint64_t events;
};

struct hunt; /* opaque */

/* A hunt with no definition and seq 0. id is copied. NULL when out of memory. */
struct hunt *engine_hunt_create(const char *id);
void engine_hunt_destroy(struct hunt *h);
/* Moves src's state into dst and destroys src and dst's old state: dst keeps its address
 * (and id), so whoever holds it sees the new state. Both must have the same id. For a
 * hunt rebuilt from the store while pointers to it live on (several nodes: a fenced
 * owner's memory was ahead of the store). */
void engine_hunt_move(struct hunt *dst, struct hunt *src);
const char *engine_hunt_id(const struct hunt *h);
uint64_t engine_seq(const struct hunt *h);
int engine_defined(const struct hunt *h);

/* --- decide (no state change) ------------------------------------------------------ */
/* Validates a definition (API.md "Hunts") and that it keeps every used entity.
 * ENGINE_EINVAL with a message naming the field in err, or ENGINE_ENTITY_IN_USE. seed: the
 * new hunt's secret (ENGINE_SEED_BYTES random bytes from the OS), required when h is not
 * defined yet (the event then carries it: ENGINE_DRAW_HMAC); ignored, and may be NULL,
 * for an update, which keeps the hunt's seed. */
int engine_define(const struct hunt *h, const char *json, size_t len,
                  const uint8_t seed[ENGINE_SEED_BYTES], int64_t now_ms, struct event *ev,
                  char *err, size_t errcap);
int engine_scan(const struct hunt *h, const uint8_t player[16], const char *code,
                int64_t now_ms, struct event *ev);
int engine_collect(const struct hunt *h, const uint8_t player[16], const char *item,
                   int64_t now_ms, struct event *ev);
int engine_open(const struct hunt *h, const uint8_t player[16], const char *zone,
                int64_t now_ms, struct event *ev);
int engine_map(const struct hunt *h, int64_t version, int64_t now_ms, struct event *ev);
/* The check every play command starts with, for what is not an event (positions):
 * ENGINE_OK when the hunt is defined and now_ms is inside starts_at/ends_at, else
 * ENGINE_NOT_DEFINED or ENGINE_NOT_ACTIVE. */
int engine_playable(const struct hunt *h, int64_t now_ms);

/* --- apply ---------------------------------------------------------------------------- */
/* Folds ev into the state. ev->seq must be engine_seq() + 1. Returns ENGINE_BAD_EVENT
 * (with a message in err when errcap > 0) for an event that does not apply: the state is
 * then unchanged. out may be NULL. */
int engine_apply(struct hunt *h, const struct event *ev, struct engine_outcome *out,
                 char *err, size_t errcap);

/* A hint, no effect on the state: player's record will be needed soon (a caller holding
 * a batch of events ahead, the audit). Stage 0 fetches its slot in the id index into the
 * cache, stage 1 (some events later, the slot then at hand) the record itself. */
void engine_prefetch_player(const struct hunt *h, const uint8_t player[16], int stage);

/* --- the hash chain ------------------------------------------------------------------ */
/* Every applied event extends the hunt's hash chain (engine.c "the hash chain" has the
 * recipe, docs/FAIRNESS.md the spec): engine_apply puts the new link in out->hash. */
/* The link after ev given the previous one (prev: engine_chain_h0 for seq 1). Pure. */
void engine_chain_next(const uint8_t prev[ENGINE_HASH_BYTES], const struct event *ev,
                       uint8_t out[ENGINE_HASH_BYTES]);
/* The same with the definition's SHA-256 given (def_sha, 32 bytes) rather than computed
 * from a DEFINE's JSON: for a verifier that has only the hash of the exact text. */
void engine_chain_next_sha(const uint8_t prev[ENGINE_HASH_BYTES], const struct event *ev,
                           const uint8_t *def_sha, uint8_t out[ENGINE_HASH_BYTES]);
/* From now on engine_apply neither extends h's chain (out->hash and engine_head_hash keep
 * the last link before) nor keeps the leaderboard (out->rank 0): for the audit, which
 * checks the chain itself from the events as recorded and reads only points and loot;
 * never for a hunt that serves or is snapshotted. engine_audit_ranks then ranks every
 * player once, from the scores and the seqs they were reached at (the leaderboard's
 * order), for the final ranking. 0 or ENGINE_NOMEM. */
void engine_audit_mode(struct hunt *h);
int engine_audit_ranks(struct hunt *h);
/* The hash of the hunt's last event (32 zero bytes at seq 0). */
void engine_head_hash(const struct hunt *h, uint8_t out[ENGINE_HASH_BYTES]);
/* H0: the seed commitment, or 32 zero bytes for a legacy (or undefined) hunt. */
void engine_chain_h0(const struct hunt *h, uint8_t out[ENGINE_HASH_BYTES]);
/* hash as 64 lowercase hex characters and a NUL into out. */
void engine_hash_hex(const uint8_t hash[ENGINE_HASH_BYTES], char out[2 * ENGINE_HASH_BYTES + 1]);

/* --- snapshots ------------------------------------------------------------------------ */
/* The complete state of h as one versioned, checksummed byte string ("VXSN", version,
 * length, body, CRC-64): definition, seq, map version, draw rule and seed, interned ids,
 * the head of the hash chain, every player's score, reached seq, history and inventory
 * (version 3; versions 1 and 2, from before the hash chain, are refused with
 * ENGINE_OLD_SNAPSHOT: recovery then replays the whole log). Chest bitsets, per-code
 * and per-item counters, the leaderboard and the once-only index are rebuilt on decode.
 * The seed is secret until the hunt ends: a snapshot is never published. *out is
 * malloc'd (the caller frees it). ENGINE_OK or ENGINE_NOMEM. */
int engine_snapshot_encode(const struct hunt *h, uint8_t **out, size_t *len);
/* A new hunt `id` from a snapshot: its engine_digest equals the encoded hunt's, and
 * events after it apply the same. ENGINE_BAD_SNAPSHOT with the reason in err for
 * anything that is not a whole, intact snapshot of hunt `id` (every truncation or bit
 * flip is caught by the length and checksum, and the body is bounds-checked anyway);
 * ENGINE_NOMEM. *out is NULL on error. */
int engine_snapshot_decode(const char *id, const uint8_t *buf, size_t len, struct hunt **out,
                           char *err, size_t errcap);
/* Only the header, length and checksum of a snapshot: ENGINE_OK or ENGINE_BAD_SNAPSHOT. */
int engine_snapshot_check(const uint8_t *buf, size_t len, char *err, size_t errcap);

/* --- queries ------------------------------------------------------------------------- */
/* GET /v1/hunts/{hunt}: the definition (without x, y of hidden codes) plus chests_left,
 * items_left, map_version (null before the first publish), players and seed_commitment
 * (hex SHA-256 of the seed; null for a hunt created before seeds), never the seed (see
 * engine_seed_reveal). New reference; NULL if not defined. */
json_t *engine_hunt_json(const struct hunt *h);
/* ENGINE_DRAW_LEGACY or ENGINE_DRAW_HMAC (LEGACY while not defined). */
int engine_draw_rule(const struct hunt *h);
/* The seed as 64 lowercase hex characters into hex, once the hunt has ended at now_ms
 * (now_ms >= its ends_at): 0. -1, hex untouched, before that, for a hunt without ends_at
 * (it never ends), and for a hunt without a seed. */
int engine_seed_reveal(const struct hunt *h, int64_t now_ms, char hex[2 * ENGINE_SEED_BYTES + 1]);
/* [{"id","points","x","y","hidden"}...] of every code (the admin list). New reference. */
json_t *engine_codes_json(const struct hunt *h);
/* The current definition's points of code: 0, or -1 when it has no such code. A code
 * once scanned never changes (engine_define refuses that), so these are the points every
 * past scan of it earned. */
int engine_code_points(const struct hunt *h, const char *code, int64_t *points);
/* The current definition's points and loot of chest in zone: 0, or -1 when there is no
 * such chest. An opened chest never changes, so these are what its opening gave. *loot
 * stays valid until the next engine_apply on h. */
int engine_chest_reward(const struct hunt *h, const char *zone, const char *chest,
                        int64_t *points, const char *const **loot, size_t *n_loot);
/* A definition's public JSON (GET /v1/hunts/{hunt}'s rule: hidden codes without "x" and
 * "y"). New reference; NULL when json is not a valid definition or out of memory. */
json_t *engine_definition_public(const char *json, size_t len);
/* 1 if code is defined in this hunt. */
int engine_has_code(const struct hunt *h, const char *code);
/* GET /v1/hunts/{hunt}/me: {"score","rank"(null when unranked),"inventory","scanned",
 * "opened","collected"}. New reference. */
json_t *engine_me_json(const struct hunt *h, const uint8_t player[16]);
void engine_player_score(const struct hunt *h, const uint8_t player[16], int64_t *score,
                         uint64_t *rank);
size_t engine_lb_total(const struct hunt *h);
size_t engine_lb_top(const struct hunt *h, size_t offset, size_t limit,
                     struct engine_lb_row *out);
/* The player and up to radius rows each side; 0 rows when the player is unranked. */
size_t engine_lb_around(const struct hunt *h, const uint8_t player[16], size_t radius,
                        struct engine_lb_row *out);
void engine_stats(const struct hunt *h, struct engine_stats *st);
int64_t engine_map_version(const struct hunt *h); /* -1 before the first publish */
/* Map width and height of the current definition (0, 0 when not defined). */
void engine_map_size(const struct hunt *h, int *width, int *height);
/* A 64-bit digest of the whole state (scores, ranks, inventories, chests, items, seq,
 * draw rule and seed commitment, head of the hash chain, never the seed), equal for equal states; for crash tests
 * and audits. */
uint64_t engine_digest(const struct hunt *h);
size_t engine_memory_bytes(const struct hunt *h);


#endif
