/* huntdef.h — parsing and validating a hunt definition (API.md "PUT /v1/hunts/{hunt}").
 *
 * huntdef_parse turns the JSON text into flat arrays of codes, items, zones, explicit
 * chests and loot ids, with id -> index maps, after checking every rule (types, ranges,
 * id syntax, uniqueness, limits, generated chest ids colliding with anything). Every
 * string pointer in a struct huntdef points into `root`, which it owns: the definition
 * is immutable once parsed. It knows nothing of players; the engine checks that an
 * update keeps the entities players used. */
#ifndef VELTRIX_HUNTDEF_H
#define VELTRIX_HUNTDEF_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "strtab.h"
#include "vx.h"

#define HUNTDEF_NAME_MAX 200
#define HUNTDEF_PREFIX_MAX 40
#define HUNTDEF_POINTS_MAX 1000000
#define HUNTDEF_QUANTITY_MAX 1000000
#define HUNTDEF_MAP_MAX 4096
#define HUNTDEF_LOOT_MAX 16
#define HUNTDEF_RANGE_MAX 10000000
#define HUNTDEF_CODES_MAX 100000
#define HUNTDEF_ITEMS_MAX 100000
#define HUNTDEF_ZONES_MAX 10000
#define HUNTDEF_CHESTS_MAX 100000
#define HUNTDEF_RANGE_TOTAL_MAX 100000000 /* range chests over all zones: 12.5 MB of bits */

struct hd_code {
    const char *id;
    int64_t points;
    int32_t x, y;
    int hidden; /* "hidden": true: x, y are left out of the public view */
};

struct hd_item {
    const char *id;
    int64_t quantity;
    int32_t x, y;
};

struct hd_chest {
    const char *id;
    const char *requires; /* NULL = none */
    int64_t points;
    uint32_t zone; /* index into zones */
    uint32_t loot_off, n_loot;
};

struct hd_range {
    const char *prefix; /* NULL = the zone has no range */
    const char *requires;
    int64_t points;
    uint32_t count;
    uint32_t prefix_len;
    uint32_t loot_off, n_loot;
};

struct hd_zone {
    const char *id;
    int32_t x, y, w, h;
    uint32_t chest_off, n_chests; /* its explicit chests: chests[chest_off ...] */
    struct hd_range range;
};

struct huntdef {
    json_t *root; /* owned reference */
    const char *name;
    int64_t starts_ms, ends_ms; /* INT64_MIN / INT64_MAX when absent */
    int32_t width, height;
    struct hd_code *codes;
    struct hd_item *items;
    struct hd_zone *zones;
    struct hd_chest *chests;
    const char **loot;
    uint32_t n_codes, n_items, n_zones, n_chests, n_loot;
    struct strmap code_ix, item_ix, zone_ix, chest_ix, prefix_ix; /* id -> index */
    size_t json_bytes;                                            /* estimated memory of root */
};

/* huntdef's own error codes (the engine maps them to its own). */
enum huntdef_err {
    HUNTDEF_OK = 0,
    HUNTDEF_EINVAL = -2001, /* the definition breaks a rule: "field: problem" in err */
    HUNTDEF_ENOMEM = -2002,
};

/* Parses and validates json. HUNTDEF_OK (d owns everything; huntdef_deinit frees it),
 * HUNTDEF_EINVAL with "field: problem" in err, or HUNTDEF_ENOMEM. On error d is empty. */
int huntdef_parse(struct huntdef *d, const char *json, size_t len, char *err, size_t errcap);
void huntdef_deinit(struct huntdef *d);

/* The range index that the len-byte id names in range r, or UINT32_MAX. */
uint32_t huntdef_range_index(const struct hd_range *r, const char *id, size_t len);
/* 1 if chest a of da and chest b of db have equal fields (id, points, requires, loot). */
int huntdef_chest_eq(const struct huntdef *da, const struct hd_chest *a, const struct huntdef *db,
                     const struct hd_chest *b);
/* 1 if the ranges are identical (prefix, count, points, requires, loot). */
int huntdef_range_eq(const struct huntdef *da, const struct hd_range *a, const struct huntdef *db,
                     const struct hd_range *b);
size_t huntdef_memory_bytes(const struct huntdef *d);

#endif
