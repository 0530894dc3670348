/* Unit tests: map tiles — draft vs published, versions kept and gone, bounds, content
 * dedup (bytes counted once), the memory limit, references outliving a version's
 * retirement, a restore from the store (draft rows, blobs, manifests), a version read
 * off the event loop and put in place (several nodes; PostgreSQL), and
 * `veltrix tiles import` reading only regular files inside the bundle. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "engine.h"
#include "harness.h"
#include "tiles.h"

/* rm -rf dir (a test's temporary directory). */
static void remove_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static struct tiles *mk(size_t bytes_max, unsigned kept)
{
    struct tiles_config c = {bytes_max, kept};
    return tiles_create(&c);
}

static int put(struct tiles *t, const char *hunt, uint32_t x, uint32_t y, const char *bytes,
               int *new_blob)
{
    uint8_t h[32];
    int nb;
    auth_sha256(bytes, strlen(bytes), h);
    return tiles_stage(t, hunt, x, y, "image/png", h, (const uint8_t *)bytes, strlen(bytes),
                       new_blob ? new_blob : &nb);
}

/* The bytes of (x, y) in version v (-1 current) as a string, or an error name. */
static const char *get(struct tiles *t, int64_t v, uint32_t x, uint32_t y)
{
    static char buf[256];
    struct tile_hit hit;
    int rc = tiles_find(t, "h", 1, v, x, y, &hit);
    if (rc) return tiles_err_str(rc);
    snprintf(buf, sizeof buf, "%.*s", (int)hit.len, (const char *)hit.body);
    tiles_release(hit.ref);
    return buf;
}

/* A 256 x 256 map is 256 chunks: the draft's table grows (and moves its entries
 * incrementally) while tiles arrive; every publish must still see every chunk. */
TEST(large_map_publishes_every_chunk)
{
    struct tiles *t = mk(64 << 20, 3);
    char b[32];
    for (uint32_t x = 0; x < 256; x += 3)
        for (uint32_t y = 0; y < 256; y += 5) {
            snprintf(b, sizeof b, "%u/%u", x, y);
            CHECK_EQ_INT(put(t, "h", x, y, b, NULL), 0);
        }
    for (int v = 1; v <= 4; v++) {
        snprintf(b, sizeof b, "new%d", v);
        CHECK_EQ_INT(put(t, "h", (uint32_t)v * 40, 7, b, NULL), 0);
        CHECK_EQ_INT(tiles_publish(t, "h", v, 256, 256, NULL), 0);
        int missing = 0;
        for (uint32_t x = 0; x < 256; x += 3)
            for (uint32_t y = 0; y < 256; y += 5) {
                snprintf(b, sizeof b, "%u/%u", x, y);
                if (y != 7 && strcmp(get(t, -1, x, y), b)) missing++;
            }
        CHECK_EQ_INT(missing, 0);
    }
    tiles_destroy(t);
}

TEST(draft_invisible_until_publish)
{
    struct tiles *t = mk(1 << 20, 3);
    CHECK_EQ_INT(put(t, "h", 0, 0, "a", NULL), 0);
    CHECK_EQ_STR(get(t, -1, 0, 0), tiles_err_str(TILES_ENOVERSION));
    CHECK_EQ_INT(tiles_publish(t, "h", 1, 4, 4, NULL), 0);
    CHECK_EQ_STR(get(t, -1, 0, 0), "a");
    CHECK_EQ_INT(put(t, "h", 0, 0, "b", NULL), 0);
    CHECK_EQ_STR(get(t, -1, 0, 0), "a");
    CHECK_EQ_STR(get(t, -1, 1, 1), tiles_err_str(TILES_ENOTILE));
    CHECK_EQ_STR(get(t, -1, 4, 0), tiles_err_str(TILES_EBOUNDS));
    CHECK_EQ_STR(get(t, -1, 0, 4), tiles_err_str(TILES_EBOUNDS));
    CHECK_EQ_INT(tiles_publish(t, "h", 2, 4, 4, NULL), 0);
    CHECK_EQ_STR(get(t, -1, 0, 0), "b");
    CHECK_EQ_STR(get(t, 1, 0, 0), "a");
    CHECK_EQ_STR(get(t, 3, 0, 0), tiles_err_str(TILES_ENOVERSION));
    struct tile_hit hit;
    CHECK_EQ_INT(tiles_find(t, "other", 5, -1, 0, 0, &hit), TILES_ENOVERSION);
    tiles_destroy(t);
}

/* Versions share 16x16 chunks with the draft: a change after a publish copies the chunk,
 * and neither the old version nor the neighbours in the chunk change. */
TEST(copy_on_write_chunks)
{
    struct tiles *t = mk(1 << 20, 3);
    put(t, "h", 0, 0, "a", NULL);
    put(t, "h", 0, 1, "b", NULL);
    put(t, "h", 17, 17, "far", NULL);
    CHECK_EQ_INT(tiles_publish(t, "h", 1, 32, 32, NULL), 0);
    put(t, "h", 0, 0, "c", NULL);
    put(t, "h", 15, 15, "d", NULL);
    CHECK_EQ_STR(get(t, -1, 0, 0), "a");
    CHECK_EQ_STR(get(t, -1, 15, 15), tiles_err_str(TILES_ENOTILE));
    CHECK_EQ_INT(tiles_publish(t, "h", 2, 32, 32, NULL), 0);
    put(t, "h", 0, 1, "e", NULL); /* a third copy of the chunk, for the draft */
    CHECK_EQ_INT(tiles_publish(t, "h", 3, 32, 32, NULL), 0);
    const char *want[][4] = {{"a", "b", "far", tiles_err_str(TILES_ENOTILE)},
                             {"c", "b", "far", "d"},
                             {"c", "e", "far", "d"}};
    for (int v = 1; v <= 3; v++) {
        CHECK_EQ_STR(get(t, v, 0, 0), want[v - 1][0]);
        CHECK_EQ_STR(get(t, v, 0, 1), want[v - 1][1]);
        CHECK_EQ_STR(get(t, v, 17, 17), want[v - 1][2]);
        CHECK_EQ_STR(get(t, v, 15, 15), want[v - 1][3]);
    }
    /* a map that shrank: tiles beyond it are out of bounds, the rest is there */
    CHECK_EQ_INT(tiles_publish(t, "h", 4, 16, 16, NULL), 0);
    CHECK_EQ_STR(get(t, 4, 17, 17), tiles_err_str(TILES_EBOUNDS));
    CHECK_EQ_STR(get(t, 4, 15, 15), "d");
    tiles_destroy(t);
}

TEST(versions_kept_then_gone)
{
    struct tiles *t = mk(1 << 20, 3);
    char b[16];
    for (int v = 1; v <= 5; v++) {
        snprintf(b, sizeof b, "v%d", v);
        CHECK_EQ_INT(put(t, "h", 1, 2, b, NULL), 0);
        CHECK_EQ_INT(tiles_publish(t, "h", v, 8, 8, NULL), 0);
    }
    CHECK_EQ_STR(get(t, -1, 1, 2), "v5");
    CHECK_EQ_STR(get(t, 5, 1, 2), "v5");
    CHECK_EQ_STR(get(t, 4, 1, 2), "v4");
    CHECK_EQ_STR(get(t, 3, 1, 2), "v3");
    CHECK_EQ_STR(get(t, 2, 1, 2), tiles_err_str(TILES_EGONE));
    CHECK_EQ_STR(get(t, 1, 1, 2), tiles_err_str(TILES_EGONE));
    CHECK_EQ_INT(tiles_keep_from(t, 5), 3);
    /* only the kept versions and the draft hold blobs: v3, v4, v5 */
    CHECK_EQ_INT(tiles_stats(t)->blobs, 3);
    tiles_destroy(t);
}

TEST(same_bytes_stored_once)
{
    struct tiles *t = mk(1 << 20, 3);
    int nb = -1;
    CHECK_EQ_INT(put(t, "h", 0, 0, "same-bytes", &nb), 0);
    CHECK_EQ_INT(nb, 1);
    CHECK_EQ_INT(put(t, "h", 0, 1, "same-bytes", &nb), 0);
    CHECK_EQ_INT(nb, 0);
    CHECK_EQ_INT(put(t, "g", 3, 3, "same-bytes", &nb), 0);
    CHECK_EQ_INT(nb, 0);
    CHECK_EQ_INT(tiles_stats(t)->blobs, 1);
    CHECK_EQ_INT(tiles_stats(t)->blob_bytes, 10);
    for (int v = 1; v <= 4; v++) CHECK_EQ_INT(tiles_publish(t, "h", v, 4, 4, NULL), 0);
    CHECK_EQ_INT(tiles_stats(t)->blob_bytes, 10);
    /* replacing every use frees the bytes once no version needs them */
    CHECK_EQ_INT(put(t, "h", 0, 0, "x", NULL), 0);
    CHECK_EQ_INT(put(t, "h", 0, 1, "y", NULL), 0);
    CHECK_EQ_INT(put(t, "g", 3, 3, "z", NULL), 0);
    for (int v = 5; v <= 7; v++) CHECK_EQ_INT(tiles_publish(t, "h", v, 4, 4, NULL), 0);
    CHECK_EQ_INT(tiles_stats(t)->blob_bytes, 3);
    tiles_destroy(t);
}

TEST(memory_limit)
{
    struct tiles *t = mk(10, 3);
    CHECK_EQ_INT(put(t, "h", 0, 0, "12345678", NULL), 0);
    CHECK_EQ_INT(put(t, "h", 0, 1, "abc", NULL), TILES_EFULL);
    CHECK_EQ_INT(put(t, "h", 0, 1, "12345678", NULL), 0); /* known bytes cost nothing */
    CHECK_EQ_INT(put(t, "h", 0, 1, "ab", NULL), 0);
    CHECK_EQ_INT(tiles_stats(t)->rejected_full, 1);
    tiles_destroy(t);
}

TEST(reference_outlives_retirement)
{
    struct tiles *t = mk(1 << 20, 1);
    struct tile_hit hit;
    CHECK_EQ_INT(put(t, "h", 0, 0, "old", NULL), 0);
    CHECK_EQ_INT(tiles_publish(t, "h", 1, 2, 2, NULL), 0);
    CHECK_EQ_INT(tiles_find(t, "h", 1, -1, 0, 0, &hit), 0);
    CHECK_EQ_INT(put(t, "h", 0, 0, "new", NULL), 0);
    CHECK_EQ_INT(tiles_publish(t, "h", 2, 2, 2, NULL), 0);
    CHECK_EQ_STR(get(t, 1, 0, 0), tiles_err_str(TILES_EGONE));
    CHECK(hit.len == 3 && memcmp(hit.body, "old", 3) == 0); /* still readable (ASan) */
    CHECK_EQ_STR(hit.version_str, "1");
    CHECK_EQ_INT(hit.current, 1);
    CHECK_EQ_INT(tiles_stats(t)->blobs, 2);
    tiles_release(hit.ref);
    CHECK_EQ_INT(tiles_stats(t)->blobs, 1);
    tiles_destroy(t);
}

TEST(etag_follows_content)
{
    struct tiles *t = mk(1 << 20, 3);
    struct tile_hit a, b, c;
    put(t, "h", 0, 0, "one", NULL);
    put(t, "h", 1, 0, "one", NULL);
    put(t, "h", 2, 0, "two", NULL);
    tiles_publish(t, "h", 1, 4, 4, NULL);
    CHECK_EQ_INT(tiles_find(t, "h", 1, -1, 0, 0, &a), 0);
    CHECK_EQ_INT(tiles_find(t, "h", 1, -1, 1, 0, &b), 0);
    CHECK_EQ_INT(tiles_find(t, "h", 1, -1, 2, 0, &c), 0);
    CHECK_EQ_STR(a.etag, b.etag);
    CHECK(strcmp(a.etag, c.etag) != 0);
    CHECK_EQ_INT(strlen(a.etag), a.etag_len);
    CHECK(a.etag[0] == '"' && a.etag[a.etag_len - 1] == '"');
    CHECK_EQ_STR(a.ctype, "image/png");
    tiles_release(a.ref), tiles_release(b.ref), tiles_release(c.ref);
    /* the same bytes as another type: another tag (a 304 would keep the old type) */
    uint8_t h[32];
    int nb;
    struct tile_hit d;
    auth_sha256("one", 3, h);
    CHECK_EQ_INT(tiles_stage(t, "h", 3, 0, "image/webp", h, (const uint8_t *)"one", 3, &nb), 0);
    tiles_publish(t, "h", 2, 4, 4, NULL);
    CHECK_EQ_INT(tiles_find(t, "h", 1, -1, 0, 0, &a), 0);
    CHECK_EQ_INT(tiles_find(t, "h", 1, -1, 3, 0, &d), 0);
    CHECK(strcmp(a.etag, d.etag) != 0);
    CHECK_EQ_STR(d.ctype, "image/webp");
    tiles_release(a.ref), tiles_release(d.ref);
    tiles_destroy(t);
}

/* Writes what the server's log would: blobs, draft rows and a manifest per publish. */
TEST(restore_from_store)
{
    char dir[] = "/tmp/veltrix-tiles-XXXXXX", url[128], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
    struct store *s = NULL;
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    struct tiles *t = mk(1 << 20, 2);
    const char *bytes[] = {"v1-a", "v2-a", "v3-a"};
    CHECK_EQ_INT(store_begin(s), 0);
    for (int v = 1; v <= 3; v++) {
        uint8_t h[32];
        int nb;
        auth_sha256(bytes[v - 1], 4, h);
        tiles_stage(t, "h", 0, 0, "image/svg+xml", h, (const uint8_t *)bytes[v - 1], 4, &nb);
        store_put_blob(s, h, (const uint8_t *)bytes[v - 1], 4);
        struct store_tile row = {"h", 0, 0, {0}, "image/svg+xml"};
        memcpy(row.hash, h, 32);
        store_put_tile(s, &row);
        const struct tile_version *tv;
        CHECK_EQ_INT(tiles_publish(t, "h", v, 3, 3, &tv), 0);
        uint8_t *m;
        size_t len;
        CHECK_EQ_INT(tiles_manifest(tv, &m, &len), 0);
        struct store_map_version mv = {"h", v, tiles_keep_from(t, v), m, len};
        CHECK_EQ_INT(store_put_map_version(s, &mv), 0);
        free(m);
    }
    CHECK_EQ_INT(store_commit(s), 0);
    tiles_destroy(t);
    t = mk(1 << 20, 2);
    CHECK_EQ_INT(tiles_restore(t, s, err, sizeof err), 0);
    CHECK_EQ_STR(get(t, -1, 0, 0), "v3-a");
    CHECK_EQ_STR(get(t, 2, 0, 0), "v2-a");
    CHECK_EQ_STR(get(t, 1, 0, 0), tiles_err_str(TILES_EGONE));
    CHECK_EQ_STR(get(t, -1, 2, 2), tiles_err_str(TILES_ENOTILE));
    CHECK_EQ_STR(get(t, -1, 3, 0), tiles_err_str(TILES_EBOUNDS));
    CHECK_EQ_INT(tiles_stats(t)->blobs, 2);
    /* the draft came back too: publishing again gives the same tile */
    CHECK_EQ_INT(tiles_publish(t, "h", 4, 3, 3, NULL), 0);
    CHECK_EQ_STR(get(t, 4, 0, 0), "v3-a");
    struct tile_hit hit;
    CHECK_EQ_INT(tiles_find(t, "h", 1, -1, 0, 0, &hit), 0);
    CHECK_EQ_STR(hit.ctype, "image/svg+xml");
    tiles_release(hit.ref);
    tiles_destroy(t);
    store_close(s);
    remove_dir(dir);
}

/* Several nodes: a version read off the loop (tiles_read_version, with the reading
 * thread's `seen` blobs) and put in place (tiles_follow_read) without the store; a blob
 * the thread handed over before is not read again; one the loop lacks anyway is read from
 * the store there, or is an error without one; a blob whose bytes do not match its hash,
 * or a version the store lacks, is refused. */
static const struct store_backend *pg_backend(void)
{
    const struct store_backend *const *be = store_backends();
    for (size_t i = 0; be[i]; i++)
        if (!strcmp(store_backend_scheme(be[i]), "postgres")) return be[i];
    return NULL;
}

/* A fresh PostgreSQL database (map versions are read back by nodes only: PostgreSQL). */
static struct store *fresh_pg(const char *dir)
{
    char url[512], err[512];
    struct store *s = NULL;
    CHECK_EQ_INT(store_backend_test_url(pg_backend(), dir, url, sizeof url), 0);
    if (store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err)) fprintf(stderr, "  %s\n", err);
    CHECK(s != NULL);
    return s;
}

TEST(follow_a_version_read_off_the_loop)
{
    char dir[] = "/tmp/veltrix-tiles-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct store *s = fresh_pg(dir);
    struct tiles *owner = mk(1 << 20, 4);
    const char *v1[] = {"a1", "b1", "c1"}, *v2[] = {"a1", "b2", "c1"};
    uint8_t *m1 = NULL;
    size_t m1_len = 0;
    CHECK_EQ_INT(store_begin(s), 0);
    for (int v = 1; v <= 2; v++) {
        for (uint32_t x = 0; x < 3; x++) {
            const char *b = (v == 1 ? v1 : v2)[x];
            uint8_t h[32];
            auth_sha256(b, 2, h);
            CHECK_EQ_INT(put(owner, "h", x, 0, b, NULL), 0);
            store_put_blob(s, h, (const uint8_t *)b, 2);
        }
        const struct tile_version *tv;
        CHECK_EQ_INT(tiles_publish(owner, "h", v, 3, 1, &tv), 0);
        uint8_t *m;
        size_t len;
        CHECK_EQ_INT(tiles_manifest(tv, &m, &len), 0);
        struct store_map_version mv = {"h", v, 1, m, len};
        CHECK_EQ_INT(store_put_map_version(s, &mv), 0);
        if (v == 1) m1 = m, m1_len = len;
        else free(m);
    }
    CHECK_EQ_INT(store_commit(s), 0);
    struct tiles *rep = mk(1 << 20, 4);
    struct tiles_seen *seen = tiles_seen_create();
    size_t on_loop = 9;
    int rc = 1;
    struct tiles_read *r = tiles_read_version(s, seen, "h", 1, &rc);
    CHECK(r != NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(tiles_read_blobs(r), 3);
    CHECK_EQ_INT(tiles_follow_read(rep, NULL, r, &on_loop), 0);
    CHECK_EQ_INT(on_loop, 0);
    tiles_read_free(r);
    CHECK_EQ_STR(get(rep, -1, 1, 0), "b1");
    r = tiles_read_version(s, seen, "h", 2, &rc); /* a1 and c1 were handed over with v1 */
    CHECK(r != NULL);
    CHECK_EQ_INT(tiles_read_blobs(r), 1);
    CHECK_EQ_INT(tiles_follow_read(rep, NULL, r, &on_loop), 0);
    CHECK_EQ_INT(on_loop, 0);
    CHECK_EQ_STR(get(rep, -1, 1, 0), "b2");
    CHECK_EQ_STR(get(rep, -1, 2, 0), "c1");
    CHECK_EQ_STR(get(rep, 1, 1, 0), "b1");
    CHECK_EQ_INT(tiles_follow_read(rep, NULL, r, &on_loop), 0); /* held already: nothing */
    /* A memory that lacks what the thread handed over before: read there, or an error. */
    struct tiles *fresh = mk(1 << 20, 4);
    CHECK(tiles_follow_read(fresh, NULL, r, &on_loop) < 0);
    CHECK_EQ_INT(tiles_follow_read(fresh, s, r, &on_loop), 0);
    CHECK_EQ_INT(on_loop, 2);
    CHECK_EQ_STR(get(fresh, -1, 0, 0), "a1");
    tiles_read_free(r);
    CHECK(tiles_read_version(s, seen, "h", 3, &rc) == NULL);
    CHECK_EQ_INT(rc, TILES_ENOVERSION);
    /* Version 1 in two more stores: one holds other bytes under a1's hash, the other
     * lacks a1's blob. Both refused. */
    for (int i = 0; i < 2; i++) {
        struct store *o = fresh_pg(dir);
        for (int x = 0; x < 3; x++) {
            uint8_t h[32];
            auth_sha256(v1[x], 2, h);
            if (x || !i) CHECK_EQ_INT(store_put_blob(o, h, (const uint8_t *)(x ? v1[x] : "zz"), 2), 0);
        }
        struct store_map_version mv = {"h", 1, 1, m1, m1_len};
        CHECK_EQ_INT(store_put_map_version(o, &mv), 0);
        CHECK(tiles_read_version(o, NULL, "h", 1, &rc) == NULL);
        CHECK_EQ_INT(rc, TILES_ECORRUPT);
        store_close(o);
    }
    free(m1);
    tiles_seen_destroy(seen);
    tiles_destroy(fresh);
    tiles_destroy(rep);
    tiles_destroy(owner);
    store_close(s);
    remove_dir(dir);
}

/* A manifest that does not decode (truncated, garbage, a tile outside its map, a blob
 * the store does not have) stops the restore with a message; never a crash. */
TEST(restore_refuses_bad_manifests)
{
    char dir[] = "/tmp/veltrix-tiles-XXXXXX", url[128], err[256];
    CHECK(mkdtemp(dir) != NULL);
    struct tiles *t = mk(1 << 20, 3);
    uint8_t h[32], *m;
    size_t len;
    int nb;
    auth_sha256("ok", 2, h);
    tiles_stage(t, "h", 1, 1, "image/png", h, (const uint8_t *)"ok", 2, &nb);
    const struct tile_version *tv;
    tiles_publish(t, "h", 1, 4, 4, &tv);
    CHECK_EQ_INT(tiles_manifest(tv, &m, &len), 0);
    uint8_t outside[64], *cases[5];
    size_t lens[5] = {len - 1, 3, len, len, len};
    memcpy(outside, m, len);
    outside[16] = 9; /* x = 9 in a 4 x 4 map */
    uint8_t unknown[64];
    memcpy(unknown, m, len);
    unknown[20] ^= 1; /* a hash the store does not hold */
    cases[0] = m, cases[1] = (uint8_t *)"VXM", cases[2] = outside, cases[3] = unknown;
    cases[4] = m; /* the good one, as a control */
    for (int i = 0; i < 5; i++) {
        snprintf(url, sizeof url, "sqlite:%s/t%d.db", dir, i);
        struct store *s = NULL;
        CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
        struct store_map_version mv = {"h", 1, 1, cases[i], lens[i]};
        CHECK_EQ_INT(store_put_blob(s, h, (const uint8_t *)"ok", 2), 0);
        CHECK_EQ_INT(store_put_map_version(s, &mv), 0);
        struct tiles *r = mk(1 << 20, 3);
        err[0] = '\0';
        int rc = tiles_restore(r, s, err, sizeof err);
        if (i < 4) {
            CHECK_EQ_INT(rc, -1);
            CHECK(strstr(err, "map version 1 of hunt 'h'") != NULL);
        } else {
            CHECK_EQ_INT(rc, 0);
            CHECK_EQ_STR(get(r, 1, 1, 1), "ok");
        }
        tiles_destroy(r);
        store_close(s);
    }
    free(m);
    tiles_destroy(t);
    remove_dir(dir);
}

TEST(many_tiles_table)
{
    struct tiles *t = mk(64 << 20, 3);
    char b[32];
    for (uint32_t x = 0; x < 256; x++)
        for (uint32_t y = 0; y < 256; y += 3) {
            snprintf(b, sizeof b, "%u/%u", x, y);
            put(t, "h", x, y, b, NULL);
        }
    CHECK_EQ_INT(tiles_publish(t, "h", 1, 256, 256, NULL), 0);
    int bad = 0;
    for (uint32_t x = 0; x < 256; x++)
        for (uint32_t y = 0; y < 256; y++) {
            snprintf(b, sizeof b, "%u/%u", x, y);
            const char *got = get(t, -1, x, y);
            if (y % 3 ? strcmp(got, tiles_err_str(TILES_ENOTILE)) : strcmp(got, b)) bad++;
        }
    CHECK_EQ_INT(bad, 0);
    tiles_destroy(t);
}

TEST(content_types)
{
    CHECK_EQ_STR(tiles_ctype_for("3.png"), "image/png");
    CHECK_EQ_STR(tiles_ctype_for("3.SVG"), "image/svg+xml");
    CHECK_EQ_STR(tiles_ctype_for("3"), "application/octet-stream");
}

/* ---- tiles import ---------------------------------------------------------------- */

static void import_hung(int sig)
{
    static const char msg[] = "  FAIL tiles_import still running after 20 s (a FIFO?)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

static void write_bytes(const char *path, const char *bytes)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(bytes, f);
    fclose(f);
}

/* A store at root/v.db holding hunt "h" (a 4 x 4 map) defined and nothing else. */
static void import_store(const char *root, char *url, size_t cap)
{
    static const char def[] = "{\"name\":\"t\",\"map\":{\"width\":4,\"height\":4},"
                              "\"codes\":[],\"items\":[],\"zones\":[]}";
    char err[256];
    uint8_t buf[512];
    struct event ev;
    struct store *s = NULL;
    struct hunt *h = engine_hunt_create("h");
    snprintf(url, cap, "sqlite:%s/v.db", root);
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    static const uint8_t seed[ENGINE_SEED_BYTES] = {1};
    CHECK_EQ_INT(engine_define(h, def, strlen(def), seed, 1000, &ev, err, sizeof err), ENGINE_OK);
    size_t len = event_encode(&ev, buf, sizeof buf);
    CHECK(len <= sizeof buf);
    struct store_event se = {"h", ev.seq, ev.time_ms, ev.type, {0}, buf, len, {0}, 0, 0};
    CHECK_EQ_INT(store_put_event(s, &se), 0);
    store_close(s);
    engine_hunt_destroy(h);
}

/* The published tiles in the store at url. */
static struct tiles *import_result(const char *url)
{
    char err[256];
    struct store *s = NULL;
    struct tiles *t = mk(1 << 20, 3);
    CHECK_EQ_INT(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err), 0);
    CHECK_EQ_INT(tiles_restore(t, s, err, sizeof err), 0);
    store_close(s);
    return t;
}

static void rm_rf(const char *dir)
{
    remove_dir(dir);
}

/* The review's bundle: 1/1.png a link to a key outside, 0/0.png a FIFO, column 2 a link
 * to a directory outside. Only the regular tiles are imported, and a FIFO cannot hang. */
TEST(import_reads_only_regular_files_inside)
{
    char root[] = "/tmp/veltrix-import-XXXXXX", p[512], q[512], url[600], err[512];
    CHECK(mkdtemp(root) != NULL);
    import_store(root, url, sizeof url);
    snprintf(p, sizeof p, "%s/secret.key", root);
    write_bytes(p, "SIGNING KEY");
    snprintf(p, sizeof p, "%s/outside", root);
    CHECK_EQ_INT(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/outside/0.png", root);
    write_bytes(p, "OUTSIDE");
    static const char *const dirs[] = {"b", "b/0", "b/1", "b/3"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        CHECK_EQ_INT(mkdir(p, 0700), 0);
    }
    snprintf(p, sizeof p, "%s/b/0/1.png", root);
    write_bytes(p, "a");
    snprintf(p, sizeof p, "%s/b/3/3.svg", root);
    write_bytes(p, "b");
    snprintf(p, sizeof p, "%s/secret.key", root);
    snprintf(q, sizeof q, "%s/b/1/1.png", root);
    CHECK_EQ_INT(symlink(p, q), 0);
    snprintf(p, sizeof p, "%s/b/0/0.png", root);
    CHECK_EQ_INT(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/outside", root);
    snprintf(q, sizeof q, "%s/b/2", root);
    CHECK_EQ_INT(symlink(p, q), 0);
    snprintf(p, sizeof p, "%s/b", root);
    signal(SIGALRM, import_hung);
    alarm(20);
    CHECK_EQ_INT(tiles_import(url, "h", p, 3, err, sizeof err), 0);
    alarm(0);
    struct tiles *t = import_result(url);
    CHECK_EQ_STR(get(t, -1, 0, 1), "a");
    CHECK_EQ_STR(get(t, -1, 3, 3), "b");
    CHECK_EQ_STR(get(t, -1, 1, 1), tiles_err_str(TILES_ENOTILE));
    CHECK_EQ_STR(get(t, -1, 0, 0), tiles_err_str(TILES_ENOTILE));
    CHECK_EQ_STR(get(t, -1, 2, 0), tiles_err_str(TILES_ENOTILE));
    tiles_destroy(t);
    rm_rf(root);
}

/* A tile file over the limit fails the import (nothing published), sparse or not. */
TEST(import_refuses_a_file_over_the_limit)
{
    char root[] = "/tmp/veltrix-import-XXXXXX", p[512], url[600], err[512];
    CHECK(mkdtemp(root) != NULL);
    import_store(root, url, sizeof url);
    snprintf(p, sizeof p, "%s/b", root);
    CHECK_EQ_INT(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/b/0", root);
    CHECK_EQ_INT(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/b/0/0.png", root);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)1 << 30) == 0);
    close(fd);
    snprintf(p, sizeof p, "%s/b", root);
    CHECK_EQ_INT(tiles_import(url, "h", p, 3, err, sizeof err), -1);
    CHECK(strstr(err, "0/0.png") && strstr(err, "over 1 MiB"));
    struct tiles *t = import_result(url);
    CHECK_EQ_STR(get(t, -1, 0, 0), tiles_err_str(TILES_ENOVERSION));
    tiles_destroy(t);
    rm_rf(root);
}

/* What a walk saw: "entry=x,y:bytes;" per tile, "entry: why;" per skipped entry. */
struct seen {
    char tiles[512], skips[1024];
    int n_tiles, n_skips;
};

static int seen_tile(void *arg, const char *entry, uint32_t x, uint32_t y, const uint8_t *data,
                     size_t len)
{
    struct seen *s = arg;
    size_t n = strlen(s->tiles);
    snprintf(s->tiles + n, sizeof s->tiles - n, "%s=%u,%u:%.*s;", entry, x, y, (int)len,
             (const char *)data);
    s->n_tiles++;
    return 0;
}

static void seen_skip(void *arg, const char *entry, const char *why)
{
    struct seen *s = arg;
    size_t n = strlen(s->skips);
    snprintf(s->skips + n, sizeof s->skips - n, "%s: %s;", entry, why);
    s->n_skips++;
}

/* Makes root/rel (a directory when bytes is NULL). */
static void mk_at(const char *root, const char *rel, const char *bytes)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (bytes) write_bytes(p, bytes);
    else CHECK_EQ_INT(mkdir(p, 0700), 0);
}

static void link_at(const char *root, const char *target, const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    CHECK_EQ_INT(symlink(target, p), 0);
}

/* A socket bound at root/rel; the descriptor (the caller closes it). */
static int socket_at(const char *root, const char *rel)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", root, rel);
    CHECK(n < (int)sizeof a.sun_path && fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Every kind of entry in the places a bundle has: only the regular files in real column
 * directories reach the callback, everything else is skipped with its type. */
TEST(walk_reads_only_regular_files_inside)
{
    char root[] = "/tmp/veltrix-walk-XXXXXX", b[300], p[512], err[512];
    CHECK(mkdtemp(root) != NULL);
    mk_at(root, "secret", "SECRET");
    mk_at(root, "out", NULL);
    mk_at(root, "out/0.png", "OUTSIDE");
    snprintf(b, sizeof b, "%s/b", root);
    static const char *const dirs[] = {"", "0", "1", "1/1.png"};
    for (int i = 0; i < 4; i++) mk_at(b, dirs[i], NULL);
    mk_at(b, "0/0.png", "t00");
    mk_at(b, "1/0.svg", "t10");
    mk_at(b, "2", "a file where a column belongs");
    link_at(b, "../1/0.svg", "0/1.png");
    link_at(b, "../out", "3");
    snprintf(p, sizeof p, "%s/secret", root);
    link_at(b, p, ".hidden");
    snprintf(p, sizeof p, "%s/0/2.png", b);
    CHECK_EQ_INT(mkfifo(p, 0600), 0);
    int sock = socket_at(b, "0/3.png");
    snprintf(p, sizeof p, "%s/1/2.png", b);
    int dev = mknod(p, S_IFCHR | 0600, makedev(1, 5)) == 0; /* /dev/zero, when root */
    struct seen s = {{0}, {0}, 0, 0};
    struct tiles_walk wk = {4, 4, seen_tile, seen_skip, &s};
    signal(SIGALRM, import_hung);
    alarm(20);
    CHECK_EQ_INT(tiles_import_walk(b, &wk, err, sizeof err), 0);
    alarm(0);
    close(sock);
    CHECK_EQ_INT(s.n_tiles, 2);
    CHECK(strstr(s.tiles, "0/0.png=0,0:t00;") && strstr(s.tiles, "1/0.svg=1,0:t10;"));
    static const char *const skips[] = {
        "0/1.png: a symbolic link;", "3: a symbolic link;", "0/2.png: a FIFO;",
        "0/3.png: a socket;", "1/1.png: a directory, not a tile file;",
        "2: a regular file, not a column directory;", "1/2.png: a character device;"};
    int n_skips = dev ? 7 : 6;
    for (int i = 0; i < n_skips; i++)
        if (!strstr(s.skips, skips[i])) CHECK_EQ_STR(s.skips, skips[i]);
    CHECK_EQ_INT(s.n_skips, n_skips);
    rm_rf(root);
}

/* A name that is not a position of the map stops the walk with an error naming it. */
TEST(walk_refuses_names_outside_the_map)
{
    static const char *const bad[][2] = {{"4", NULL},       {"0x1", NULL},   {"0/4.png", "x"},
                                         {"0/-1.png", "x"}, {"0/a.png", "x"}, {"0/1x", "x"}};
    for (int i = 0; i < 6; i++) {
        char root[] = "/tmp/veltrix-walk-XXXXXX", err[512] = "";
        CHECK(mkdtemp(root) != NULL);
        mk_at(root, "0", NULL);
        mk_at(root, "0/0.png", "fine");
        mk_at(root, bad[i][0], bad[i][1]);
        struct seen s = {{0}, {0}, 0, 0};
        struct tiles_walk wk = {4, 4, seen_tile, seen_skip, &s};
        CHECK_EQ_INT(tiles_import_walk(root, &wk, err, sizeof err), -1);
        if (!strstr(err, bad[i][0])) CHECK_EQ_STR(err, bad[i][0]);
        rm_rf(root);
    }
}

int main(void)
{
    RUN(draft_invisible_until_publish);
    RUN(copy_on_write_chunks);
    RUN(versions_kept_then_gone);
    RUN(same_bytes_stored_once);
    RUN(memory_limit);
    RUN(reference_outlives_retirement);
    RUN(etag_follows_content);
    RUN(restore_from_store);
    RUN(restore_refuses_bad_manifests);
    if (getenv("VELTRIX_TEST_PG_URL") && *getenv("VELTRIX_TEST_PG_URL"))
        RUN(follow_a_version_read_off_the_loop);
    else
        printf("# VELTRIX_TEST_PG_URL is not set (tests/pg/pgtmp.sh -- build/test_tiles): "
               "follow_a_version_read_off_the_loop skipped\n");
    RUN(many_tiles_table);
    RUN(large_map_publishes_every_chunk);
    RUN(content_types);
    RUN(import_refuses_a_file_over_the_limit);
    RUN(import_reads_only_regular_files_inside);
    RUN(walk_reads_only_regular_files_inside);
    RUN(walk_refuses_names_outside_the_map);
    return HARNESS_DONE();
}
