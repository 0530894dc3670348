/* store_fault.c — a store backend for tests: "fault:<inner url>" opens the inner store
 * and forwards every operation to it, failing on command (store_fault_set) the way a
 * full disk or a lost connection would: a failed write returns STORE_EIO and changes
 * nothing, a failed commit leaves the transaction for the caller to roll back (as a
 * failed COMMIT does); a commit may also fail AFTER it
 * landed ("in doubt": the caller is told STORE_EIO although its rows are durable),
 * which is what a connection cut between COMMIT and its answer looks like. A write or a
 * commit may also kill the process (SIGKILL) before it runs: a writer dying in the middle
 * of a transaction, for the simulator's torn commits (tests/sim).
 *
 * Faults are process-wide (every open fault: handle sees them), so that a test can steer
 * the log writer's handle from its own thread; the counters are atomics. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"

struct fault_store {
    struct store base;
    struct store *inner;
    int in_txn; /* begun and neither committed nor rolled back in the inner store */
    enum store_fsync fsync;
    char url[]; /* the inner store's */
};
#define FS(base) ((struct fault_store *)(base))

static struct store_fault faults; /* fields read and written with __atomic builtins */

void store_fault_set(const struct store_fault *f)
{
    __atomic_store_n(&faults.fail_commits, f->fail_commits, __ATOMIC_SEQ_CST);
    __atomic_store_n(&faults.fail_writes, f->fail_writes, __ATOMIC_SEQ_CST);
    __atomic_store_n(&faults.doubt_commits, f->doubt_commits, __ATOMIC_SEQ_CST);
    __atomic_store_n(&faults.fail_reads, f->fail_reads, __ATOMIC_SEQ_CST);
    __atomic_store_n(&faults.skip_reads, f->skip_reads, __ATOMIC_SEQ_CST);
    __atomic_store_n(&faults.kill_writes, f->kill_writes, __ATOMIC_SEQ_CST);
    __atomic_store_n(&faults.kill_commits, f->kill_commits, __ATOMIC_SEQ_CST);
}

void store_fault_get(struct store_fault *f)
{
    f->fail_commits = __atomic_load_n(&faults.fail_commits, __ATOMIC_SEQ_CST);
    f->fail_writes = __atomic_load_n(&faults.fail_writes, __ATOMIC_SEQ_CST);
    f->doubt_commits = __atomic_load_n(&faults.doubt_commits, __ATOMIC_SEQ_CST);
    f->fail_reads = __atomic_load_n(&faults.fail_reads, __ATOMIC_SEQ_CST);
    f->skip_reads = __atomic_load_n(&faults.skip_reads, __ATOMIC_SEQ_CST);
    f->kill_writes = __atomic_load_n(&faults.kill_writes, __ATOMIC_SEQ_CST);
    f->kill_commits = __atomic_load_n(&faults.kill_commits, __ATOMIC_SEQ_CST);
}

/* Takes one fault from *counter: 1 when this call must fail (-1 fails every call). */
static int take(int *counter)
{
    int n = __atomic_load_n(counter, __ATOMIC_SEQ_CST);
    while (n != 0) {
        if (n < 0) return 1;
        if (__atomic_compare_exchange_n(counter, &n, n - 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return 1;
    }
    return 0;
}

/* 1 when this read must fail: fail_reads, once skip_reads reads have gone through. */
static int take_read(void)
{
    if (!__atomic_load_n(&faults.fail_reads, __ATOMIC_SEQ_CST)) return 0;
    int n = __atomic_load_n(&faults.skip_reads, __ATOMIC_SEQ_CST);
    while (n > 0)
        if (__atomic_compare_exchange_n(&faults.skip_reads, &n, n - 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return 0;
    return take(&faults.fail_reads);
}

/* Counts *countdown down; the call that takes it from 1 to 0 kills the process. */
static void maybe_die(int *countdown)
{
    int n = __atomic_load_n(countdown, __ATOMIC_SEQ_CST);
    while (n > 0)
        if (__atomic_compare_exchange_n(countdown, &n, n - 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            if (n == 1) kill(getpid(), SIGKILL);
            return;
        }
}

static int fs_open(const char *url, enum store_fsync fsync, struct store **out, char *err,
                   size_t errcap)
{
    struct fault_store *s = calloc(1, sizeof *s + strlen(url + 6) + 1);
    if (!s) return STORE_EIO;
    strcpy(s->url, url + 6);
    s->fsync = fsync;
    int rc = store_open(s->url, fsync, &s->inner, err, errcap);
    if (rc) {
        free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static int fs_lock(const char *url, char *err, size_t errcap)
{
    return store_lock(url + 6, err, errcap);
}

static int fs_test_url(const char *dir, char *out, size_t cap)
{
    return -1; /* a wrapper: its inner backend is the one tested */
}

static void fs_close(struct store *s)
{
    store_close(FS(s)->inner);
    free(s);
}

int store_fault_after_fork(struct store *s)
{
    char err[256];
    if (s->be != &store_fault_backend) return STORE_EURL;
    FS(s)->in_txn = 0;
    return store_open(FS(s)->url, FS(s)->fsync, &FS(s)->inner, err, sizeof err);
}

static int fs_begin(struct store *s)
{
    int rc = store_begin(FS(s)->inner);
    FS(s)->in_txn = !rc;
    return rc;
}

/* After a commit in doubt the inner transaction is over: nothing to roll back. */
static void fs_rollback(struct store *s)
{
    if (FS(s)->in_txn) store_rollback(FS(s)->inner);
    FS(s)->in_txn = 0;
}

static int fs_commit(struct store *s)
{
    maybe_die(&faults.kill_commits);
    if (take(&faults.fail_commits)) return STORE_EIO; /* the caller rolls back */
    int rc = store_commit(FS(s)->inner);
    if (!rc) FS(s)->in_txn = 0;
    return !rc && take(&faults.doubt_commits) ? STORE_EIO : rc;
}

#define WRITE(name, ...)                                                                   \
    do {                                                                                   \
        maybe_die(&faults.kill_writes);                                                    \
        if (take(&faults.fail_writes)) return STORE_EIO;                                   \
        return store_##name(FS(s)->inner, __VA_ARGS__);                                    \
    } while (0)
#define READ(name, ...)                                                                    \
    do {                                                                                   \
        if (take_read()) return STORE_EIO;                                                 \
        return store_##name(FS(s)->inner, __VA_ARGS__);                                    \
    } while (0)

static int fs_put_event(struct store *s, const struct store_event *ev) { WRITE(put_event, ev); }
static size_t fs_fenced_hunts(struct store *s, const char *const **hunts)
{
    return store_fenced_hunts(FS(s)->inner, hunts);
}
static int fs_put_player(struct store *s, const struct store_player *p) { WRITE(put_player, p); }
static int fs_put_refresh(struct store *s, const struct store_refresh *r)
{
    WRITE(put_refresh, r);
}
static int fs_prune_refresh(struct store *s, int64_t now) { WRITE(prune_refresh, now); }
static int fs_put_idem(struct store *s, const struct store_idem *i) { WRITE(put_idem, i); }
static int fs_prune_idem(struct store *s, int64_t cutoff) { WRITE(prune_idem, cutoff); }
static int fs_put_blob(struct store *s, const uint8_t h[32], const uint8_t *d, size_t n)
{
    WRITE(put_blob, h, d, n);
}
static int fs_put_tile(struct store *s, const struct store_tile *t) { WRITE(put_tile, t); }
static int fs_put_map_version(struct store *s, const struct store_map_version *v)
{
    WRITE(put_map_version, v);
}
static int fs_put_snapshot(struct store *s, const char *h, uint64_t seq, const uint8_t *d,
                           size_t n)
{
    WRITE(put_snapshot, h, seq, d, n);
}
static int fs_delete_snapshot(struct store *s, const char *h) { WRITE(delete_snapshot, h); }
static int fs_each_hunt(struct store *s, store_hunt_cb cb, void *ctx) { READ(each_hunt, cb, ctx); }
static int fs_each_event(struct store *s, const char *h, uint64_t from, store_event_cb cb,
                         void *ctx)
{
    READ(each_event, h, from, cb, ctx);
}
static int fs_each_player(struct store *s, store_player_cb cb, void *ctx)
{
    READ(each_player, cb, ctx);
}
static int fs_each_refresh(struct store *s, int64_t now, store_refresh_cb cb, void *ctx)
{
    READ(each_refresh, now, cb, ctx);
}
static int fs_each_idem(struct store *s, int64_t since, store_idem_cb cb, void *ctx)
{
    READ(each_idem, since, cb, ctx);
}
static int fs_get_idem(struct store *s, const char *scope, const char *key, store_idem_cb cb,
                       void *ctx)
{
    READ(get_idem, scope, key, cb, ctx);
}
static int fs_get_snapshot(struct store *s, const char *h, store_snapshot_cb cb, void *ctx)
{
    READ(get_snapshot, h, cb, ctx);
}
static int fs_get_blob(struct store *s, const uint8_t h[32], store_snapshot_cb cb, void *ctx)
{
    READ(get_blob, h, cb, ctx);
}
static int fs_each_tile(struct store *s, store_tile_cb cb, void *ctx) { READ(each_tile, cb, ctx); }
static int fs_each_map_version(struct store *s, store_map_version_cb cb, void *ctx)
{
    READ(each_map_version, cb, ctx);
}
static int fs_ping(struct store *s)
{
    return take_read() ? STORE_EIO : store_ping(FS(s)->inner);
}
static int fs_last_seq(struct store *s, const char *h, uint64_t *seq) { READ(last_seq, h, seq); }

/* Several nodes: passed through, beats and leases failing as writes, walks as reads. */
static int fs_node_beat(struct store *s, const char *id, const char *adv, int draining)
{
    WRITE(node_beat, id, adv, draining);
}
static int fs_each_node(struct store *s, store_node_cb cb, void *ctx) { READ(each_node, cb, ctx); }
static int fs_each_lease(struct store *s, store_lease_cb cb, void *ctx)
{
    READ(each_lease, cb, ctx);
}
static int fs_lease_take(struct store *s, const char *h, const char *node, int64_t ms,
                         uint64_t *epoch)
{
    WRITE(lease_take, h, node, ms, epoch);
}
static int fs_lease_renew(struct store *s, const char *node, int64_t ms, store_lease_cb cb,
                          void *ctx)
{
    WRITE(lease_renew, node, ms, cb, ctx);
}
static int fs_lease_release(struct store *s, const char *node, const char *h)
{
    WRITE(lease_release, node, h);
}
static int fs_each_snapshot(struct store *s, store_hunt_snapshot_cb cb, void *ctx)
{
    READ(each_snapshot, cb, ctx);
}
static int fs_each_blob(struct store *s, store_blob_cb cb, void *ctx) { READ(each_blob, cb, ctx); }
static int fs_put_events(struct store *s, const struct store_event *evs, size_t n)
{
    WRITE(put_events, evs, n);
}

const struct store_backend store_fault_backend = {
    .scheme = "fault",
    .open = fs_open,
    .lock = fs_lock,
    .test_url = fs_test_url,
    .close = fs_close,
    .begin = fs_begin,
    .commit = fs_commit,
    .rollback = fs_rollback,
    .put_event = fs_put_event,
    .fenced_hunts = fs_fenced_hunts,
    .put_player = fs_put_player,
    .put_refresh = fs_put_refresh,
    .prune_refresh = fs_prune_refresh,
    .put_idem = fs_put_idem,
    .prune_idem = fs_prune_idem,
    .each_hunt = fs_each_hunt,
    .each_event = fs_each_event,
    .each_player = fs_each_player,
    .each_refresh = fs_each_refresh,
    .each_idem = fs_each_idem,
    .get_idem = fs_get_idem,
    .put_snapshot = fs_put_snapshot,
    .get_snapshot = fs_get_snapshot,
    .delete_snapshot = fs_delete_snapshot,
    .put_blob = fs_put_blob,
    .get_blob = fs_get_blob,
    .put_tile = fs_put_tile,
    .put_map_version = fs_put_map_version,
    .each_tile = fs_each_tile,
    .each_map_version = fs_each_map_version,
    .ping = fs_ping,
    .last_seq = fs_last_seq,
    .node_beat = fs_node_beat,
    .each_node = fs_each_node,
    .each_lease = fs_each_lease,
    .lease_take = fs_lease_take,
    .lease_renew = fs_lease_renew,
    .lease_release = fs_lease_release,
    .each_snapshot = fs_each_snapshot,
    .each_blob = fs_each_blob,
    .put_events = fs_put_events,
};
