/* tiles_import.c — `veltrix tiles import HUNT DIR`: a whole map in one step, offline.
 *
 * Reads DIR/{x}/{y}.{ext} (png, svg, jpg, webp... the extension gives the content type)
 * into the hunt's draft and publishes it as the hunt's next map version, writing straight
 * into the store in ONE transaction: the new blobs, the draft rows, the EVENT_MAP event
 * (seq = the hunt's last seq + 1, decided by the engine after replaying the hunt's log)
 * and the version's manifest. Either all of it is durable or none. The draft carries
 * over as with uploads: tiles that are not in DIR keep their draft content. The server
 * must not be running on the same store (main.c holds a lock file to refuse that). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth.h"
#include "engine.h"
#include "tiles.h"

#define TILE_FILE_MAX (1024 * 1024)

struct import {
    struct store *s;
    struct tiles *t;
    struct hunt *h;
    const char *hunt;
    char *err;
    size_t errcap;
    size_t files, new_blobs, bytes;
};

static int replay_event(const struct store_event *se, void *arg)
{
    struct import *im = arg;
    struct event ev;
    if (engine_event_read(&ev, se->seq, se->time_ms, se->type, se->player, se->data,
                          se->data_len) ||
        engine_apply(im->h, &ev, NULL, im->err, im->errcap)) {
        if (!im->err[0]) snprintf(im->err, im->errcap, "event %llu does not decode",
                                  (unsigned long long)se->seq);
        return -1;
    }
    return 0;
}

/* Parses a whole decimal name (for y: up to the extension) below limit; -1 if not. */
static long coord_of(const char *name, int stop_at_dot, long limit)
{
    long v = 0;
    const char *p = name;
    for (; *p >= '0' && *p <= '9' && p - name < 6; p++) v = v * 10 + (*p - '0');
    if (p == name || (*p && !(stop_at_dot && *p == '.')) || v >= limit) return -1;
    return v;
}

static uint8_t *read_file(const char *path, size_t *len, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = f ? malloc(TILE_FILE_MAX + 1) : NULL;
    *len = buf ? fread(buf, 1, TILE_FILE_MAX + 1, f) : 0;
    int bad = !buf || ferror(f);
    if (f) fclose(f);
    if (bad || *len > TILE_FILE_MAX) {
        snprintf(err, errcap, "%s: %s", path, bad ? strerror(errno) : "over 1 MiB");
        free(buf);
        return NULL;
    }
    return buf;
}

/* Stages one file and writes its rows (the blob if new, the draft row). */
static int import_file(struct import *im, const char *path, uint32_t x, uint32_t y,
                       const char *ctype)
{
    size_t len;
    uint8_t *data = read_file(path, &len, im->err, im->errcap), hash[32];
    int new_blob, rc = -1;
    if (!data) return -1;
    auth_sha256(data, len, hash);
    struct store_tile row = {im->hunt, x, y, {0}, ctype};
    memcpy(row.hash, hash, 32);
    if (tiles_stage(im->t, im->hunt, x, y, ctype, hash, data, len, &new_blob))
        snprintf(im->err, im->errcap, "%s: out of memory", path);
    else if ((new_blob && store_put_blob(im->s, hash, data, len)) || store_put_tile(im->s, &row))
        snprintf(im->err, im->errcap, "%s: the store refused the tile", path);
    else
        rc = 0;
    im->files++;
    im->new_blobs += new_blob;
    im->bytes += len;
    free(data);
    return rc;
}

/* Every DIR/{x}/{y}.{ext} inside the map; anything else is an error naming it. */
static int import_dir(struct import *im, const char *dir)
{
    int w, h;
    engine_map_size(im->h, &w, &h);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(im->err, im->errcap, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *xe;
    int rc = 0;
    char sub[4096], path[8192];
    while (!rc && (xe = readdir(d))) {
        if (xe->d_name[0] == '.') continue;
        long x = coord_of(xe->d_name, 0, w);
        snprintf(sub, sizeof sub, "%s/%s", dir, xe->d_name);
        DIR *xd = x >= 0 ? opendir(sub) : NULL;
        if (!xd) {
            snprintf(im->err, im->errcap, "%s: not a column 0..%d of the %dx%d map", sub, w - 1,
                     w, h);
            rc = -1;
            break;
        }
        struct dirent *ye;
        while (!rc && (ye = readdir(xd))) {
            if (ye->d_name[0] == '.') continue;
            long y = coord_of(ye->d_name, 1, h);
            snprintf(path, sizeof path, "%s/%s", sub, ye->d_name);
            if (y < 0) {
                snprintf(im->err, im->errcap, "%s: not a tile {y}.{ext} with y 0..%d", path,
                         h - 1);
                rc = -1;
            } else {
                rc = import_file(im, path, (uint32_t)x, (uint32_t)y, tiles_ctype_for(ye->d_name));
            }
        }
        closedir(xd);
    }
    closedir(d);
    return rc;
}

/* The EVENT_MAP event and the manifest of the new version. */
static int import_publish(struct import *im, unsigned kept, int64_t now_ms, int64_t *version)
{
    int64_t n = engine_map_version(im->h) < 1 ? 1 : engine_map_version(im->h) + 1;
    struct event ev;
    int w, h;
    const struct tile_version *tv;
    uint8_t buf[64], *m;
    size_t len;
    engine_map_size(im->h, &w, &h);
    if (engine_map(im->h, n, now_ms, &ev) ||
        tiles_publish(im->t, im->hunt, n, (uint32_t)w, (uint32_t)h, &tv) ||
        tiles_manifest(tv, &m, &len)) {
        snprintf(im->err, im->errcap, "cannot publish version %lld", (long long)n);
        return -1;
    }
    size_t elen = engine_event_encode(&ev, buf, sizeof buf);
    struct store_event se = {im->hunt, ev.seq, ev.time_ms, ev.type, {0}, buf, elen};
    struct store_map_version mv = {im->hunt, n, tiles_keep_from(im->t, n), m, len};
    int rc = elen > sizeof buf || store_put_event(im->s, &se) || store_put_map_version(im->s, &mv);
    free(m);
    if (rc) snprintf(im->err, im->errcap, "the store refused the publish");
    *version = n;
    return rc ? -1 : 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tiles_import(const char *url, const char *hunt, const char *dir, unsigned versions_kept,
                 char *err, size_t errcap)
{
    struct tiles_config tc = {(size_t)1 << 40, versions_kept};
    struct import im = {NULL, tiles_create(&tc), engine_hunt_create(hunt), hunt, err, errcap,
                        0, 0, 0};
    int64_t version = 0;
    int rc = -1;
    err[0] = '\0';
    if (!im.t || !im.h || !auth_valid_id(hunt, strlen(hunt))) {
        snprintf(err, errcap, "'%s' is not a hunt id", hunt);
        goto out;
    }
    if (store_open(url, STORE_FSYNC_ALWAYS, &im.s, err, errcap)) goto out;
    if (store_each_event(im.s, hunt, 1, replay_event, &im)) goto out;
    if (!engine_defined(im.h)) {
        snprintf(err, errcap, "no hunt '%s' in %s", hunt, url);
        goto out;
    }
    if (tiles_restore(im.t, im.s, err, errcap) || store_begin(im.s)) goto out;
    if (import_dir(&im, dir) || import_publish(&im, versions_kept, wall_ms(), &version) ||
        store_commit(im.s)) {
        if (!err[0]) snprintf(err, errcap, "the store did not commit");
        store_rollback(im.s);
        goto out;
    }
    fprintf(stderr, "veltrix: imported %zu tiles (%zu bytes, %zu new blobs) into hunt '%s'; "
                    "published map version %lld\n", im.files, im.bytes, im.new_blobs, hunt,
            (long long)version);
    rc = 0;
out:
    store_close(im.s);
    tiles_destroy(im.t);
    if (im.h) engine_hunt_destroy(im.h);
    return rc;
}
