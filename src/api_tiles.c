/* api_tiles.c — map tiles: reads served from memory without a copy, uploads staged in the draft,
 * publishes as map events. */
#include "api_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* ---- map tiles ----------------------------------------------------------------------- */
/* Uploads stage into the hunt's draft (tiles.c) and are answered once the blob and the
 * draft row are durable. A publish is an EVENT_MAP event plus the version's manifest in
 * one log entry. Reads never touch the store: tiles_find() and a send that points at the
 * tile's bytes and precomputed header values (no copy, no formatting). */

/* Parses a tile coordinate path parameter: an optional '-' and 1-6 digits. -1 after
 * answering 400 invalid_request. */
static int tile_coord(struct http_req *r, int i, long *out)
{
    struct http_str s = http_param(r, i);
    size_t neg = s.len && s.p[0] == '-', k;
    long v = 0;
    for (k = neg; k < s.len && k < 7 && s.p[k] >= '0' && s.p[k] <= '9'; k++)
        v = v * 10 + (s.p[k] - '0');
    if (k == neg || k != s.len) {
        http_error(r, 400, "invalid_request", "tile coordinates are integers");
        return -1;
    }
    *out = neg ? -v : v;
    return 0;
}

/* Whether an If-None-Match value lists etag (or is "*"); weak tags compare too. */
static int etag_matches(struct http_str inm, const char *etag, size_t len)
{
    const char *p = inm.p, *end = inm.p + inm.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *t = q;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (t - p >= 2 && p[0] == 'W' && p[1] == '/') p += 2;
        if ((t - p == 1 && *p == '*') || ((size_t)(t - p) == len && !memcmp(p, etag, len)))
            return 1;
        p = q;
    }
    return 0;
}

static void tile_release(void *ref)
{
    tiles_release(ref);
}

/* Answers a tiles_find() failure. */
static void tile_miss(struct http_req *r, struct http_str hunt, int rc, int64_t v)
{
    if (rc == TILES_EGONE)
        http_error(r, 410, "version_gone", "map version %lld is no longer kept", (long long)v);
    else if (rc == TILES_EBOUNDS)
        http_error(r, 400, "out_of_bounds", "the tile is outside the map");
    else if (rc == TILES_ENOVERSION && !hmap_get(&api_app.hunts, hunt.p, hunt.len))
        http_error(r, 404, "hunt_not_found", "no hunt '%.*s'", (int)hunt.len, hunt.p);
    else if (rc == TILES_ENOVERSION && v >= 0)
        http_error(r, 404, "tile_not_found", "map version %lld is not published", (long long)v);
    else
        http_error(r, 404, "tile_not_found", "no tile at this position");
}

void api_tile_get(struct http_req *r)
{
    static const char cc_current[] = "public, max-age=5",
                      cc_fixed[] = "public, max-age=31536000, immutable", nosniff[] = "nosniff",
                      csp[] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                              "sandbox"; /* an SVG tile opened as a page runs no script */
    struct http_str hunt = http_param(r, 0), q = http_query(r, "v");
    long x, y, v = -1;
    struct tile_hit hit;
    if (!auth_valid_id(hunt.p, hunt.len)) {
        http_error(r, 400, "invalid_id", "ids are 1-64 characters of [a-z0-9_-]");
        return;
    }
    if (tile_coord(r, 1, &x) || tile_coord(r, 2, &y) ||
        (q.p && api_query_int(r, "v", 1, 1000000000000L, &v)))
        return;
    if (x < 0 || y < 0) {
        http_error(r, 400, "out_of_bounds", "the tile is outside the map");
        return;
    }
    int rc = tiles_find(api_app.tiles, hunt.p, hunt.len, v, (uint32_t)x, (uint32_t)y, &hit);
    if (rc) {
        tile_miss(r, hunt, rc, v);
        return;
    }
    struct http_str inm = http_header(r, "if-none-match");
    int nm = inm.p && etag_matches(inm, hit.etag, hit.etag_len);
    struct http_hdr hs[6] = {{"etag", hit.etag, hit.etag_len},
                             {"x-map-version", hit.version_str, hit.version_str_len},
                             {"cache-control", v < 0 ? cc_current : cc_fixed,
                              v < 0 ? sizeof cc_current - 1 : sizeof cc_fixed - 1},
                             {"x-content-type-options", nosniff, sizeof nosniff - 1},
                             {"content-security-policy", csp, sizeof csp - 1},
                             {"content-type", hit.ctype, hit.ctype_len}};
    tiles_count(api_app.tiles, nm);
    http_send_ref(r, nm ? 304 : 200, hs, nm ? 5 : 6, hit.body, hit.len, tile_release, hit.ref);
}

static void tile_durable(void *arg, int status)
{
    http_send(arg, 204, NULL, "", 0);
}

/* The upload's content type (default application/octet-stream), or NULL after a 400. */
static const char *tile_ctype(struct http_req *r, char out[TILES_CTYPE_MAX + 1])
{
    struct http_str c = http_header(r, "content-type");
    if (!c.p || !c.len) return "application/octet-stream";
    int ok = c.len <= TILES_CTYPE_MAX;
    for (size_t i = 0; ok && i < c.len; i++)
        ok = c.p[i] >= 0x20 && c.p[i] <= 0x7e;
    if (!ok) {
        http_error(r, 400, "invalid_request", "Content-Type must be 1-%d printable ASCII bytes",
                   TILES_CTYPE_MAX);
        return NULL;
    }
    memcpy(out, c.p, c.len);
    out[c.len] = '\0';
    return out;
}

/* Stages one tile in memory and adds its rows (the blob when new, the draft row) to e.
 * 0, or a tiles error (nothing changed). */
int api_tile_stage(struct log_entry *e, const char *hunt, uint32_t x, uint32_t y, const char *ctype,
                   const void *data, size_t len)
{
    uint8_t hash[32];
    int new_blob;
    auth_sha256(data, len, hash);
    int rc = tiles_stage(api_app.tiles, hunt, x, y, ctype, hash, data, len, &new_blob);
    if (rc) return rc;
    struct store_tile row = {hunt, x, y, {0}, ctype};
    memcpy(row.hash, hash, 32);
    VX_FATAL_IF((new_blob && log_entry_blob(e, hash, data, len)) || log_entry_tile(e, &row));
    return 0;
}

void api_tile_put(struct http_req *r)
{
    struct hunt *h;
    long x, y;
    int w, ht;
    char buf[TILES_CTYPE_MAX + 1];
    const char *ctype;
    if (api_admin(r) || !(h = api_hunt_param(r)) || tile_coord(r, 1, &x) || tile_coord(r, 2, &y))
        return;
    engine_map_size(h, &w, &ht);
    if (x < 0 || y < 0 || x >= w || y >= ht) {
        http_error(r, 400, "out_of_bounds", "the tile is outside the map (%d x %d)", w, ht);
        return;
    }
    if (!(ctype = tile_ctype(r, buf)) || !api_log_room(r)) return;
    struct http_str b = http_body(r);
    struct log_entry *e = api_new_entry();
    int rc = api_tile_stage(e, engine_hunt_id(h), (uint32_t)x, (uint32_t)y, ctype, b.p, b.len);
    if (rc) {
        log_entry_free(e);
        if (rc == TILES_EFULL)
            http_error(r, 503, "tile_limit", "tile memory is full (--tiles-bytes-max)");
        else
            http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    log_entry_on_done(e, tile_durable, http_hold(r));
    VX_FATAL_IF(log_submit(api_app.log, e)); /* api_log_room() said there was room */
}

/* The log writer encodes a published version's manifest (it holds a reference). */
static int manifest_encode(void *v, uint8_t **data, size_t *len)
{
    return tiles_manifest(v, data, len);
}

static void manifest_release(void *v)
{
    tiles_release(v);
}

/* Publishes h's draft as its next map version: in memory now (O(chunks)), the event and
 * the manifest in e. Returns the version number. */
int64_t api_publish_map(struct hunt *h, struct log_entry *e)
{
    int64_t n = engine_map_version(h) < 1 ? 1 : engine_map_version(h) + 1;
    struct event ev;
    int w, ht;
    const struct tile_version *tv;
    engine_map_size(h, &w, &ht);
    /* A defined hunt always takes its next version; only out of memory fails here. */
    VX_FATAL_IF(engine_map(h, n, api_now_ms(), &ev) ||
                tiles_publish(api_app.tiles, engine_hunt_id(h), n, (uint32_t)w, (uint32_t)ht, &tv));
    api_apply(h, &ev, NULL);
    api_entry_event(e, h, &ev);
    struct store_map_version mv = {engine_hunt_id(h), n, tiles_keep_from(api_app.tiles, n), NULL,
                                   0};
    struct tile_version *ref = tiles_retain(tv);
    VX_FATAL_IF(log_entry_map_version(e, &mv, manifest_encode, manifest_release, ref));
    return n;
}

void api_map_publish(struct http_req *r)
{
    struct hunt *h;
    struct idem_req ir;
    json_t *b;
    if (api_admin(r) || !(h = api_hunt_param(r)) || api_idem_check(r, "admin", &ir) ||
        !(b = api_body_object(r, 1)))
        return;
    json_decref(b);
    if (!api_log_room(r)) return;
    struct log_entry *e = api_new_entry();
    int64_t n = api_publish_map(h, e);
    api_submit(r, &ir, e, 200, json_pack("{s:I}", "version", (json_int_t)n));
}
