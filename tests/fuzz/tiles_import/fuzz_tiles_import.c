/* fuzz_tiles_import.c — the bundle walk of `veltrix tiles import` (tiles_import_walk) on
 * hostile directories: it must read nothing outside the bundle and never block.
 *
 * Input: [map u8] then records [op u8][parent u8][name u8][...] that build a bundle in a
 * temp dir: regular files (bytes from the input, or sparse files around TILES_FILE_MAX),
 * directories (nested at any depth), symbolic links (to a canary file outside the
 * bundle, to a directory outside, to "..", "/", /dev/zero, a sibling, themselves...),
 * FIFOs, sockets and, when root, device nodes, named from a table of coordinates and odd
 * names (".", "..", hidden, a 255-byte name, a name over NAME_MAX, control bytes) or by
 * raw bytes. The map byte gives the map size and whether DIR itself is reached through a
 * link (allowed). Then the walk runs, in process, against a model of what was built:
 *   - every tile handed over is a regular file the model made at that path, inside a
 *     real column directory, with its exact bytes: the canary's bytes (outside the
 *     bundle, and behind every link) never appear, as no file of the bundle holds them;
 *   - every skipped entry is one the walk visits and is not of the wanted type, and the
 *     reason names its type; no tile is handed over twice;
 *   - the walk fails exactly when a visited name is not a position in the map or a tile
 *     is over TILES_FILE_MAX; when it succeeds, every visited regular tile was handed over
 *     and every visited entry of another type reported;
 *   - no descriptor is left open, nothing leaks (ASan), and a FIFO never blocks: a
 *     blocking open either trips libFuzzer's -timeout or, interrupted by its timer
 *     signal, fails the walk where the model expects success.
 * tiles_import_walk is all of tiles_import that touches the bundle; the store side of
 * the import is tests/unit/test_tiles.c's. Each input gets a fresh temp dir, removed
 * after it (FTW_PHYS: the links are removed, not followed). */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "tiles.h"

#define ENTRIES_MAX 32
#define DATA_MAX 256

enum kind { K_REG, K_DIR, K_LINK, K_FIFO, K_SOCK, K_DEV };

struct entry {
    char path[PATH_MAX]; /* relative to the bundle: "a/b/c" */
    const char *name;    /* the last component, inside path */
    int parent;          /* index of the parent directory, -1 for the bundle itself */
    enum kind kind;
    uint8_t data[DATA_MAX]; /* K_REG: 'T' then input bytes; all zeros when sparse */
    size_t len;
    int seen;
};

static struct entry ent[ENTRIES_MAX];
static size_t n_ent;
static char root[32], bundle[64], via_link[64];
static char canary_path[96], outside_path[96];
static const char canary[] = "CANARY: bytes outside the bundle, never a tile";
static char long_ok[NAME_MAX + 1], long_bad[NAME_MAX + 40];
static uint32_t map_w, map_h;
static uint8_t zeros[TILES_FILE_MAX];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    remove(path); /* best effort */
    return 0;
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* FTW_PHYS: links are not followed */
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FUZZ_CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* A fresh root per input (libFuzzer may end with _Exit, so nothing is left for atexit):
 * root/{canary, outside/0.png, outside/0/0.png} (all the canary's bytes), root/b the
 * bundle, root/blink a link to it. */
static void setup(void)
{
    char p[128];
    snprintf(root, sizeof root, "/tmp/veltrix-fuzz-tiles-XXXXXX");
    FUZZ_CHECK(mkdtemp(root));
    snprintf(canary_path, sizeof canary_path, "%s/canary", root);
    snprintf(outside_path, sizeof outside_path, "%s/outside", root);
    snprintf(bundle, sizeof bundle, "%s/b", root);
    snprintf(via_link, sizeof via_link, "%s/blink", root);
    write_file(canary_path, canary, sizeof canary - 1);
    FUZZ_CHECK(mkdir(outside_path, 0700) == 0);
    snprintf(p, sizeof p, "%s/0.png", outside_path);
    write_file(p, canary, sizeof canary - 1);
    snprintf(p, sizeof p, "%s/0", outside_path);
    FUZZ_CHECK(mkdir(p, 0700) == 0);
    snprintf(p, sizeof p, "%s/0/0.png", outside_path);
    write_file(p, canary, sizeof canary - 1);
    FUZZ_CHECK(symlink("b", via_link) == 0 && mkdir(bundle, 0700) == 0);
    memset(long_ok, 'p', NAME_MAX); /* "1.ppp...": a valid tile name of NAME_MAX bytes */
    memcpy(long_ok, "1.", 2);
    memset(long_bad, '1', sizeof long_bad - 1);
}

/* The entry's name: from the table, or raw input bytes ('/' replaced) from 0xf0 on. */
static const char *pick_name(struct fuzz_in *in, char raw[65])
{
    static const char *const names[] = {
        "0",   "1",       "2",         "3",       "4",    "0.png", "1.svg", "2.jpg",
        "3.webp", "4.png", "00",       "01.png",  ".",    "..",    "...",   ".hidden",
        "-1",  "x",       "0x1",       "1.",      "9999999", "1.png\n", "2.p\\ng",
        "1.\xc3\xa9", "0.png.lnk", "", NULL, NULL};
    size_t n_names = sizeof names / sizeof names[0], len;
    uint8_t sel = fuzz_u8(in);
    if (sel >= 0xf0) {
        fuzz_str(in, raw, 64, &len);
        for (size_t i = 0; i < len; i++)
            if (raw[i] == '/' || !raw[i]) raw[i] = '_';
        return raw;
    }
    size_t i = sel % n_names;
    return i == n_names - 2 ? long_ok : i == n_names - 1 ? long_bad : names[i];
}

/* A link target: outside the bundle, inside it, or nowhere. */
static const char *pick_target(struct fuzz_in *in, const char *self)
{
    static const char *const rel[] = {"../canary",  "../../canary", "../../../canary",
                                      "../outside", "../../outside", "..", ".", "/",
                                      "/dev/zero",  "/proc/self/environ", "0.png", "../0",
                                      "nowhere"};
    uint8_t t = fuzz_u8(in) % (sizeof rel / sizeof rel[0] + 3);
    if (t == sizeof rel / sizeof rel[0]) return canary_path;
    if (t == sizeof rel / sizeof rel[0] + 1) return outside_path;
    if (t == sizeof rel / sizeof rel[0] + 2) return self; /* a loop */
    return rel[t];
}

static int make_socket(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) return -1;
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), rc = -1;
    if (fd >= 0) rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    if (fd >= 0) close(fd); /* the socket file stays */
    return rc;
}

/* A regular file of e->len bytes: e->data, or zeros (sparse) past DATA_MAX. */
static int make_file(const char *path, const struct entry *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600), rc;
    if (fd < 0) return -1;
    if (e->len > DATA_MAX)
        rc = ftruncate(fd, (off_t)e->len);
    else
        rc = write(fd, e->data, e->len) == (ssize_t)e->len ? 0 : -1;
    close(fd);
    return rc;
}

/* Reads a record's arguments into e (kind, bytes) and *arg: all of them are taken from
 * the input whether or not the system then makes the entry. */
static void read_args(struct fuzz_in *in, uint8_t op, const char *name, struct entry *e,
                      const char **target, unsigned *minor)
{
    static const enum kind kinds[] = {K_REG, K_DIR, K_LINK, K_LINK, K_FIFO, K_SOCK, K_REG,
                                      K_DEV};
    size_t got;
    e->kind = kinds[op];
    *target = op == 2 ? canary_path : op == 3 ? pick_target(in, name) : NULL;
    *minor = op == 7 && fuzz_u8(in) & 1 ? 5 : 3; /* /dev/zero, /dev/null */
    if (op == 0) {
        const uint8_t *p = fuzz_bytes(in, fuzz_u8(in) % (DATA_MAX - 1), &got);
        e->data[0] = 'T'; /* no file of the bundle starts like the canary */
        memcpy(e->data + 1, p, got);
        e->len = got + 1;
    } else if (op == 6) {
        e->len = TILES_FILE_MAX - 1 + fuzz_u8(in) % 3; /* sparse: one under, at, one over */
    }
}

/* One record: creates the entry and adds it to the model when the system made it. */
static void build_one(struct fuzz_in *in)
{
    char raw[65], path[PATH_MAX + 80];
    uint8_t op = fuzz_u8(in) % 8, pi = fuzz_u8(in);
    int dirs[ENTRIES_MAX + 1], n_dirs = 0, rc;
    dirs[n_dirs++] = -1;
    for (size_t i = 0; i < n_ent; i++)
        if (ent[i].kind == K_DIR) dirs[n_dirs++] = (int)i;
    int parent = dirs[pi % n_dirs];
    const char *name = pick_name(in, raw), *target;
    unsigned minor;
    struct entry *e = &ent[n_ent];
    memset(e, 0, sizeof *e);
    read_args(in, op, name, e, &target, &minor);
    int n = parent < 0 ? snprintf(e->path, sizeof e->path, "%s", name)
                       : snprintf(e->path, sizeof e->path, "%s/%s", ent[parent].path, name);
    if (n >= (int)sizeof e->path || snprintf(path, sizeof path, "%s/%s", bundle, e->path) >=
                                        (int)sizeof path)
        return;
    e->name = e->path + n - strlen(name);
    e->parent = parent;
    switch (e->kind) {
    case K_REG: rc = make_file(path, e); break;
    case K_DIR: rc = mkdir(path, 0700); break;
    case K_LINK: rc = symlink(target, path); break;
    case K_FIFO: rc = mkfifo(path, 0600); break;
    case K_SOCK: rc = make_socket(path); break;
    default: rc = mknod(path, S_IFCHR | 0600, makedev(1, minor));
    }
    if (!rc) n_ent++;
}

/* The walk's own name rule, restated: 1-6 digits, below limit, then the end (column)
 * or a '.' (tile). */
static long model_coord(const char *name, int tile, uint32_t limit)
{
    long v = 0;
    const char *p = name;
    for (; *p >= '0' && *p <= '9' && p - name < 6; p++) v = v * 10 + (*p - '0');
    if (p == name || (*p && !(tile && *p == '.')) || v >= (long)limit) return -1;
    return v;
}

/* Whether the walk looks at e: a name at the top, or in a column directory. */
static int visited(const struct entry *e)
{
    if (e->name[0] == '.') return 0;
    if (e->parent < 0) return 1;
    const struct entry *c = &ent[e->parent];
    return c->parent < 0 && c->kind == K_DIR && c->name[0] != '.' &&
           model_coord(c->name, 0, map_w) >= 0;
}

static int tile_level(const struct entry *e) { return e->parent >= 0; }

static int wanted(const struct entry *e)
{
    return e->kind == (tile_level(e) ? K_REG : K_DIR);
}

static int valid_name(const struct entry *e)
{
    return model_coord(e->name, tile_level(e), tile_level(e) ? map_h : map_w) >= 0;
}

static struct entry *find(const char *path)
{
    for (size_t i = 0; i < n_ent; i++)
        if (!strcmp(ent[i].path, path)) return &ent[i];
    return NULL;
}

static int on_tile(void *arg, const char *entry, uint32_t x, uint32_t y, const uint8_t *data,
                   size_t len)
{
    struct entry *e = find(entry);
    FUZZ_CHECK(len != sizeof canary - 1 || memcmp(data, canary, len)); /* never outside */
    FUZZ_CHECK(e && e->kind == K_REG && visited(e) && valid_name(e) && !e->seen);
    FUZZ_CHECK(x == (uint32_t)model_coord(ent[e->parent].name, 0, map_w));
    FUZZ_CHECK(y == (uint32_t)model_coord(e->name, 1, map_h));
    FUZZ_CHECK(len == e->len && len <= TILES_FILE_MAX);
    FUZZ_CHECK(!memcmp(data, len <= DATA_MAX ? e->data : zeros, len)); /* sparse: zeros */
    e->seen = 1;
    return 0;
}

static const char *why_of(const struct entry *e)
{
    static const char *const why[] = {"a regular file, not a column directory",
                                      "a directory, not a tile file", "a symbolic link",
                                      "a FIFO", "a socket", "a character device"};
    return why[e->kind];
}

static void on_skipped(void *arg, const char *entry, const char *why)
{
    struct entry *e = find(entry);
    FUZZ_CHECK(e && visited(e) && valid_name(e) && !wanted(e) && !e->seen);
    FUZZ_CHECK(!strcmp(why, why_of(e)));
    e->seen = 1;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    FUZZ_CHECK(d);
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* What the model expects: 0 when every visited name is a position of the map and every
 * visited regular tile is within TILES_FILE_MAX, else -1. */
static int expected_rc(void)
{
    for (size_t i = 0; i < n_ent; i++) {
        const struct entry *e = &ent[i];
        if (!visited(e)) continue;
        if (!valid_name(e) || (wanted(e) && e->kind == K_REG && e->len > TILES_FILE_MAX))
            return -1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    char err[1024] = "";
    setup();
    uint8_t map = fuzz_u8(&in);
    map_w = 1 + map % 4, map_h = 1 + (map >> 2) % 4;
    n_ent = 0;
    while (fuzz_more(&in) && n_ent < ENTRIES_MAX) build_one(&in);
    struct tiles_walk wk = {map_w, map_h, on_tile, on_skipped, NULL};
    int fds = open_fds();
    int rc = tiles_import_walk(map & 0x80 ? via_link : bundle, &wk, err, sizeof err);
    FUZZ_CHECK(open_fds() == fds);
    FUZZ_CHECK(rc == expected_rc());
    FUZZ_CHECK(!rc || err[0]);
    for (size_t i = 0; !rc && i < n_ent; i++) /* a whole walk reports all but columns */
        FUZZ_CHECK(ent[i].seen == (visited(&ent[i]) && valid_name(&ent[i]) &&
                                   (tile_level(&ent[i]) || !wanted(&ent[i]))));
    rm_tree(root);
    return 0;
}
