/* tiles.h — map tiles: per hunt a draft and immutable published versions, in memory.
 *
 * A tile is a blob of bytes (stored once per SHA-256, shared by every draft slot and
 * version that uses it) with a content type and an ETag computed once. A hunt's draft
 * maps (x, y) to tiles and changes with every upload. tiles_publish() freezes the draft
 * into an immutable version (16 x 16 chunks shared copy-on-write with the draft and the
 * other versions, so publishing costs O(chunks)) and swaps one pointer to a new
 * immutable "state" (the kept versions, newest first): readers see the old state or the
 * new one, never a mix. Versions are reference counted; a reader holds one for as long
 * as the response needs the bytes.
 *
 * Threads: writes (stage, publish, restore) come from the thread that owns the hunts;
 * today that is the only I/O thread too. Refcounts are atomic and the state pointer is
 * published with release/acquire, so a second reading thread would see complete
 * versions; what it would still need is deferred freeing of a retired state (an epoch),
 * noted where the state is swapped. */
#ifndef VELTRIX_TILES_H
#define VELTRIX_TILES_H
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

#define TILES_CTYPE_MAX 127 /* content-type bytes kept */
#define TILES_COORD_MAX 4096 /* x, y < this (the map is at most 4096 x 4096) */
#define TILES_KEPT_MAX 64
#define TILES_FILE_MAX (1024 * 1024) /* bytes of one tile file `tiles import` reads */

enum tiles_err {
    TILES_OK = 0,
    TILES_ENOMEM = -1,     /* out of memory */
    TILES_EFULL = -2,      /* tile bytes in memory would exceed bytes_max */
    TILES_ENOVERSION = -3, /* nothing published yet, or ?v= a version not published yet */
    TILES_EGONE = -4,      /* ?v= a version no longer kept */
    TILES_ENOTILE = -5,    /* no tile at (x, y) in that version */
    TILES_EBOUNDS = -6,    /* (x, y) outside that version's map */
    TILES_ECORRUPT = -7,   /* a stored manifest or row that does not decode */
};
const char *tiles_err_str(int err);

struct tiles_config {
    size_t bytes_max;       /* distinct tile bytes held in memory (all hunts) */
    unsigned versions_kept; /* published versions readable per hunt, 1..TILES_KEPT_MAX */
};

struct tiles_stats {
    uint64_t served, not_modified; /* updated by the HTTP layer (tiles_count) */
    uint64_t rejected_full;        /* stage refused: bytes_max */
    uint64_t blobs, blob_bytes;    /* distinct tiles held, and their bytes */
};

/* A tile found for a request: everything the response needs, computed at upload time.
 * Valid until tiles_release(hit.version). */
struct tile_hit {
    const uint8_t *body;
    size_t len;
    const char *ctype, *etag, *version_str; /* NUL-terminated */
    size_t ctype_len, etag_len, version_str_len;
    int64_t version;
    int current; /* 1 when the current version (not a ?v= of an older one) */
    struct tile_version *ref;
};

struct tiles;
struct tile_version;

struct tiles *tiles_create(const struct tiles_config *cfg);
void tiles_destroy(struct tiles *t);

/* Places data (len bytes, SHA-256 hash) with content type ctype at (x, y) of hunt's
 * draft, replacing what was there. *new_blob = 1 when these bytes were not held before
 * (the caller must make the blob durable). TILES_EFULL, TILES_ENOMEM. */
int tiles_stage(struct tiles *t, const char *hunt, uint32_t x, uint32_t y, const char *ctype,
                const uint8_t hash[32], const uint8_t *data, size_t len, int *new_blob);
/* Freezes hunt's draft into version `number` of a w x h map and makes it current; the
 * oldest version beyond versions_kept stops being readable. *out (borrowed, valid until
 * the next publish of this hunt) is the new version, e.g. for tiles_manifest(). */
int tiles_publish(struct tiles *t, const char *hunt, int64_t number, uint32_t w, uint32_t h,
                  const struct tile_version **out);
/* The lowest version number still readable for hunt after publishing `number`. */
int64_t tiles_keep_from(const struct tiles *t, int64_t number);

/* A version's manifest (w, h, then x, y, hash, content type per tile): malloc'd into
 * *out (the caller frees). 0 or TILES_ENOMEM. Reads only immutable data: any thread may
 * call it while it holds a reference on v. */
int tiles_manifest(const struct tile_version *v, uint8_t **out, size_t *len);

/* Finds tile (x, y) of hunt: version < 0 is the current one. Takes a reference in
 * hit->ref on success. TILES_ENOVERSION (also for an unknown hunt), TILES_EGONE,
 * TILES_EBOUNDS, TILES_ENOTILE. */
int tiles_find(struct tiles *t, const char *hunt, size_t hunt_len, int64_t version, uint32_t x,
               uint32_t y, struct tile_hit *hit);
void tiles_release(struct tile_version *v);
/* One more reference on v (e.g. for the log writer that encodes its manifest); returns
 * it, to be given to tiles_release(). */
struct tile_version *tiles_retain(const struct tile_version *v);
void tiles_count(struct tiles *t, int not_modified);

/* Loads every hunt's draft and kept versions from the store (blobs by hash). */
int tiles_restore(struct tiles *t, struct store *s, char *err, size_t errcap);
/* Several nodes: version `number` of hunt's map, published by another node (a replica
 * applied its map_published event), read from the store with its blobs and made current.
 * 0 (also when this node holds it or a newer one already), or a TILES_/STORE_ error. */
int tiles_follow(struct tiles *t, struct store *s, const char *hunt, int64_t number);
/* The same in two steps, so that the store is read off the event loop (a replica's
 * fetch, tail.c): tiles_read_version, on the reading thread, reads the version's manifest
 * and the blobs it names, checked against their hashes, but for those this thread handed
 * over before (`seen`, the thread's own: NULL reads them all); tiles_follow_read, on the
 * loop, makes the version current from it: a blob neither in memory nor read (the loop
 * let it go since) is read from s there (*from_store counts them; s NULL: an error). */
struct tiles_read;
struct tiles_seen;
struct tiles_seen *tiles_seen_create(void);
void tiles_seen_destroy(struct tiles_seen *x);
/* NULL with *rc a TILES_ or STORE_ error (TILES_ENOVERSION: no such version). */
struct tiles_read *tiles_read_version(struct store *s, struct tiles_seen *seen, const char *hunt,
                                      int64_t number, int *rc);
/* Blobs r holds (read from the store for it). */
size_t tiles_read_blobs(const struct tiles_read *r);
int tiles_follow_read(struct tiles *t, struct store *s, const struct tiles_read *r,
                      size_t *from_store);
void tiles_read_free(struct tiles_read *r);

const struct tiles_stats *tiles_stats(const struct tiles *t);
/* Prometheus text: bytes and tiles per hunt (draft and each kept version), totals. */
void tiles_render_metrics(const struct tiles *t, struct metrics_buf *b);

/* A content type for a file name's extension (png, svg, jpg, webp...). */
const char *tiles_ctype_for(const char *filename);
/* What tiles_import_walk does with the entries of a bundle. */
struct tiles_walk {
    uint32_t width, height; /* the map: columns 0..width-1, rows 0..height-1 */
    /* A regular file dir/{x}/{y}.{ext}: entry is "{x}/{y}.{ext}", data (len bytes) is
     * borrowed for the call. 0 goes on; anything else stops the walk and is returned. */
    int (*tile)(void *arg, const char *entry, uint32_t x, uint32_t y, const uint8_t *data,
                size_t len);
    /* An entry not read (may be NULL): why names its type, e.g. "a symbolic link". */
    void (*skipped)(void *arg, const char *entry, const char *why);
    void *arg;
};
/* The bundle walk of tiles_import, reading only what is inside dir (dir itself may be a
 * link): directories as columns, regular files as tiles, each opened relative to its
 * parent without following a link or blocking; links, FIFOs, sockets, devices and
 * entries of the wrong type are skipped (never opened if seen first). Names starting
 * with '.' are ignored. 0; -1 with a message in err for a name that is not a position in
 * the map, a file over TILES_FILE_MAX bytes or an I/O error; or what wk->tile returned. */
int tiles_import_walk(const char *dir, const struct tiles_walk *wk, char *err, size_t errcap);
/* `veltrix tiles import`: reads dir/{x}/{y}.{ext} into hunt's draft in the store at url
 * and publishes it as the next version, in one transaction (blobs, draft rows, the
 * EVENT_MAP event, the manifest), through tiles_import_walk. The server must not be
 * running on that store. Prints each skipped entry and a summary to stderr. 0, or -1
 * with a message in err. */
int tiles_import(const char *url, const char *hunt, const char *dir, unsigned versions_kept,
                 char *err, size_t errcap);

#endif
