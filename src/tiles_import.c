/* tiles_import.c — `veltrix tiles import HUNT DIR`: a whole map in one step, offline.
 *
 * Reads DIR/{x}/{y}.{ext} (png, svg, jpg, webp... the extension gives the content type)
 * into the hunt's draft and publishes it as the hunt's next map version, writing straight
 * into the store in ONE transaction: the new blobs, the draft rows, the EVENT_MAP event
 * (seq = the hunt's last seq + 1, decided by the engine after replaying the hunt's log)
 * and the version's manifest. Either all of it is durable or none. The draft carries
 * over as with uploads: tiles that are not in DIR keep their draft content. The server
 * must not be running on the same store (main.c holds a lock file to refuse that).
 *
 * A bundle comes from outside, so the walk reads nothing but what is inside DIR: every
 * entry is opened relative to its directory's descriptor (openat) with O_NOFOLLOW and
 * O_NONBLOCK after an lstat-like look (fstatat) that skips symbolic links, FIFOs,
 * sockets and devices without opening them, and fstat after the open must agree (the
 * entry may have been swapped in between). Columns must be directories, tiles regular
 * files; any other entry is skipped and reported, never followed. A FIFO is never opened
 * blocking, a file is read up to TILES_FILE_MAX bytes. Names that are not a position of
 * the map are errors, as are I/O errors; names starting with '.' are ignored. DIR itself
 * is the operator's choice and may be a link. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "engine.h"
#include "tiles.h"

#define ENTRY_MAX (2 * NAME_MAX + 1) /* "x/name", a path relative to the bundle */
#define SKIPPED 1                    /* open_entry: not of the wanted type, not opened */

struct import {
    struct store *s;
    struct tiles *t;
    struct hunt *h;
    const char *hunt, *dir;
    char *err;
    size_t errcap;
    size_t files, new_blobs, bytes, skipped;
};

static int replay_event(const struct store_event *se, void *arg)
{
    struct import *im = arg;
    struct event ev;
    if (event_read(&ev, se->seq, se->time_ms, se->type, se->player, se->data,
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

/* A file type as the skip report names it (a regular file is skipped only where a column
 * belongs, a directory only where a tile does). */
static const char *kind_of(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file, not a column directory";
    case S_IFDIR: return "a directory, not a tile file";
    case S_IFLNK: return "a symbolic link";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "an unknown file type";
    }
}

/* Opens name in the directory dfd into *fd when it is of type want (S_IFDIR, S_IFREG)
 * without following a link, waiting on a FIFO or opening a device: 0 with its *st;
 * SKIPPED with *why when it is of another type; -1 with errno when the system fails. */
static int open_entry(int dfd, const char *name, mode_t want, int *fd, struct stat *st,
                      const char **why)
{
    *fd = -1;
    if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW)) return -1;
    if ((st->st_mode & S_IFMT) == want) {
        *fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
                                    (want == S_IFDIR ? O_DIRECTORY : 0));
        if (*fd < 0 && errno != ELOOP) return -1;
        if (*fd < 0) st->st_mode = S_IFLNK; /* it became a link after fstatat */
        if (*fd >= 0 && fstat(*fd, st)) st->st_mode = 0;
    }
    if ((st->st_mode & S_IFMT) == want) return 0;
    if (*fd >= 0) close(*fd); /* swapped for another type after fstatat */
    *fd = -1;
    *why = kind_of(st->st_mode);
    return SKIPPED;
}

/* Reads the regular file fd (st_size bytes when opened, at most TILES_FILE_MAX) whole:
 * a malloc'd buffer, or NULL with *why. */
static uint8_t *read_tile(int fd, const struct stat *st, size_t *len, const char **why)
{
    if (st->st_size > TILES_FILE_MAX) {
        *why = "over 1 MiB";
        return NULL;
    }
    size_t cap = (size_t)st->st_size + 1; /* one byte more shows a file that grew */
    uint8_t *buf = malloc(cap);
    ssize_t n = 0;
    *len = 0;
    while (buf && *len < cap) {
        n = read(fd, buf + *len, cap - *len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        *len += (size_t)n;
    }
    if (buf && n >= 0 && *len < cap) return buf;
    *why = !buf ? "out of memory" : n < 0 ? strerror(errno) : "changed while being read";
    free(buf);
    return NULL;
}

/* One walk: the bundle, the caller's callbacks and where a failure is described. */
struct walk {
    const char *dir;
    const struct tiles_walk *wk;
    char *err;
    size_t errcap;
};

static int walk_fail(struct walk *w, const char *entry, const char *msg)
{
    snprintf(w->err, w->errcap, "%s/%s: %s", w->dir, entry, msg);
    return -1;
}

static int walk_skip(struct walk *w, const char *entry, const char *why)
{
    if (w->wk->skipped) w->wk->skipped(w->wk->arg, entry, why);
    return 0;
}

/* Reads the tile entry ("x/name", name in the column dfd) and hands it to the caller. */
static int walk_tile(struct walk *w, int dfd, const char *name, const char *entry, uint32_t x,
                     uint32_t y)
{
    struct stat st;
    const char *why;
    size_t len;
    int fd, rc = open_entry(dfd, name, S_IFREG, &fd, &st, &why);
    if (rc == SKIPPED) return walk_skip(w, entry, why);
    if (rc) return walk_fail(w, entry, strerror(errno));
    uint8_t *data = read_tile(fd, &st, &len, &why);
    close(fd);
    if (!data) return walk_fail(w, entry, why);
    rc = w->wk->tile(w->wk->arg, entry, x, y, data, len);
    free(data);
    return rc;
}

/* Every tile of column x, the entry name of the bundle dfd. */
static int walk_column(struct walk *w, int dfd, const char *name, uint32_t x)
{
    struct stat st;
    const char *why;
    char entry[ENTRY_MAX + 1], msg[64];
    int fd, rc = open_entry(dfd, name, S_IFDIR, &fd, &st, &why);
    if (rc == SKIPPED) return walk_skip(w, name, why);
    DIR *d = rc ? NULL : fdopendir(fd);
    if (!d) {
        walk_fail(w, name, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    struct dirent *e;
    while (!rc && (errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        long y = coord_of(e->d_name, 1, w->wk->height);
        snprintf(entry, sizeof entry, "%s/%s", name, e->d_name);
        snprintf(msg, sizeof msg, "not a tile {y}.{ext} with y 0..%ld", (long)w->wk->height - 1);
        rc = y < 0 ? walk_fail(w, entry, msg)
                   : walk_tile(w, dirfd(d), e->d_name, entry, x, (uint32_t)y);
    }
    if (!rc && errno) rc = walk_fail(w, name, strerror(errno));
    closedir(d);
    return rc;
}

int tiles_import_walk(const char *dir, const struct tiles_walk *wk, char *err, size_t errcap)
{
    struct walk w = {dir, wk, err, errcap};
    char msg[96];
    int rc = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* a link is allowed */
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        snprintf(err, errcap, "%s: %s", dir, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    snprintf(msg, sizeof msg, "not a column 0..%ld of the %ux%u map", (long)wk->width - 1,
             wk->width, wk->height);
    struct dirent *e;
    while (!rc && (errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        long x = coord_of(e->d_name, 0, wk->width);
        rc = x < 0 ? walk_fail(&w, e->d_name, msg)
                   : walk_column(&w, dirfd(d), e->d_name, (uint32_t)x);
    }
    if (!rc && errno) rc = walk_fail(&w, ".", strerror(errno));
    closedir(d);
    return rc;
}

static int import_fail(struct import *im, const char *entry, const char *msg)
{
    snprintf(im->err, im->errcap, "%s/%s: %s", im->dir, entry, msg);
    return -1;
}

/* tiles_walk.tile: stages one tile and writes its rows (the blob if new, the draft row). */
static int import_tile(void *arg, const char *entry, uint32_t x, uint32_t y,
                       const uint8_t *data, size_t len)
{
    struct import *im = arg;
    const char *ctype = tiles_ctype_for(entry);
    uint8_t hash[32];
    int new_blob;
    auth_sha256(data, len, hash);
    struct store_tile row = {im->hunt, x, y, {0}, ctype};
    memcpy(row.hash, hash, 32);
    if (tiles_stage(im->t, im->hunt, x, y, ctype, hash, data, len, &new_blob))
        return import_fail(im, entry, "out of memory");
    if ((new_blob && store_put_blob(im->s, hash, data, len)) || store_put_tile(im->s, &row))
        return import_fail(im, entry, "the store refused the tile");
    im->files++;
    im->new_blobs += new_blob;
    im->bytes += len;
    return 0;
}

/* name with control bytes and '\' as \xNN into out (4 * strlen(name) + 1 bytes). */
static void escape(const char *name, char *out)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            out += sprintf(out, "\\x%02x", *p);
        else
            *out++ = (char)*p;
    *out = '\0';
}

/* tiles_walk.skipped: one line on stderr (entry is at most ENTRY_MAX bytes). */
static void import_skipped(void *arg, const char *entry, const char *why)
{
    struct import *im = arg;
    char safe[4 * ENTRY_MAX + 1];
    escape(entry, safe);
    im->skipped++;
    fprintf(stderr, "veltrix: tiles import: skipped %s: %s\n", safe, why);
}

/* Every DIR/{x}/{y}.{ext} inside the map; a name that is not is an error naming it. */
static int import_dir(struct import *im)
{
    int w, h;
    engine_map_size(im->h, &w, &h);
    struct tiles_walk wk = {(uint32_t)w, (uint32_t)h, import_tile, import_skipped, im};
    return tiles_import_walk(im->dir, &wk, im->err, im->errcap);
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
    size_t elen = event_encode(&ev, buf, sizeof buf);
    struct store_event se = {im->hunt, ev.seq, ev.time_ms, ev.type, {0}, buf, elen, {0}, 0, 0};
    engine_head_hash(im->h, se.hash); /* im->h is at ev.seq - 1: the chain's next link */
    engine_chain_next(se.hash, &ev, se.hash);
    se.has_hash = 1;
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
    struct import im = {NULL, tiles_create(&tc), engine_hunt_create(hunt), hunt, dir, err,
                        errcap, 0, 0, 0, 0};
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
    if (import_dir(&im) || import_publish(&im, versions_kept, wall_ms(), &version) ||
        store_commit(im.s)) {
        if (!err[0]) snprintf(err, errcap, "the store did not commit");
        store_rollback(im.s);
        goto out;
    }
    fprintf(stderr, "veltrix: imported %zu tiles (%zu bytes, %zu new blobs) into hunt '%s'; "
                    "skipped %zu %s; published map version %lld\n", im.files, im.bytes,
            im.new_blobs, hunt, im.skipped, im.skipped == 1 ? "entry" : "entries",
            (long long)version);
    rc = 0;
out:
    store_close(im.s);
    tiles_destroy(im.t);
    if (im.h) engine_hunt_destroy(im.h);
    return rc;
}
