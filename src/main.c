/* main.c — the `veltrix` command: `veltrix serve [options]` (see API.md "Command line").
 *
 * Startup: parse options, open the store (a writer handle for the log thread and a
 * reader handle for recovery and health), recover every hunt, then serve. SIGTERM and
 * SIGINT stop accepting, let in-flight writes become durable and answered, and exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "log.h"
#include "migrate.h"
#include "net.h"
#include "node.h"
#include "ratelimit.h"
#include "snap.h"
#include "store.h"
#include "tiles.h"
#include "vx.h"
#include "cluster.h"

struct options {
    const char *listen, *data, *store, *admin_key, *fsync, *metrics_access, *metrics_token;
    const char *node_id, *advertise, *cluster_secret_file, *replica_feed;
    long token_ttl, conns_max, req_timeout_ms, queue_max, idem_max, players_max, hunts_max;
    long conns_per_ip_max, pending_bodies_max;
    long live_window, live_queue_bytes, live_ping_ms, live_replay_max;
    long live_replay_slice_bytes, live_replay_turn_bytes, live_replay_keep_ms;
    int demo;
    struct rl_config limits;
    long tiles_bytes_max, map_versions_kept, replica_poll_ms;
    long snapshot_every;
    int ignore_snapshots;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: veltrix serve [--listen 127.0.0.1:8080] [--data ./veltrix-data]\n"
            "                     [--store sqlite:PATH] [--admin-key KEY] [--token-ttl 600]\n"
            "                     [--fsync always|batch|off] [--demo]\n"
            "                     [--max-connections 50000] [--max-connections-per-ip 2000]\n"
            "                     [--request-timeout-ms 10000] [--pending-bodies-max 67108864]\n"
            "                     [--metrics-access public|admin] [--metrics-token TOKEN]\n"
            "                     [--log-queue-max 65536] [--idempotency-keys-max MEMORY/16KiB]\n"
            "                     [--players-max 10000000] [--hunts-max 1000]\n"
            "                     [--rate-player 10:20] [--rate-ip 500:1000]\n"
            "                     [--rate-ip-tiles 5000:20000]\n"
            "                     [--players-per-ip-per-min 120] [--max-speed 20]\n"
            "                     [--rate-keys-max 131072] [--trusted-proxy IPv4]\n"
            "                     [--tiles-bytes-max 1073741824] [--map-versions-kept 3]\n"
            "                     [--live-window 2048] [--live-queue-bytes 1048576]\n"
            "                     [--live-ping-ms 30000] [--live-replay-max 20000]\n"
            "                     [--live-replay-slice-bytes 65536]\n"
            "                     [--live-replay-turn-bytes 262144] [--live-replay-keep-ms 30000]\n"
            "                     [--snapshot-every 1000000] [--ignore-snapshots]\n"
            "                     [--node-id NAME --advertise http://HOST:PORT]\n"
            "                     [--cluster-secret-file FILE] [--replica-feed push|poll]\n"
            "                     [--replica-poll-ms 20]\n"
            "       veltrix tiles import HUNT DIR [--data ./veltrix-data | --store sqlite:PATH]\n"
            "                     [--map-versions-kept 3]\n"
            "       veltrix migrate --from sqlite:PATH --to postgres://USER@HOST/DB\n"
            "       veltrix audit HUNT (--store URL | --log FILE) [--seed HEX]\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* The limit options (ratelimit.h); -1 for an unknown name or a bad value. */
static int parse_limit(const char *name, const char *v, struct rl_config *c)
{
    long n;
    char *end;
    if (!strcmp(name, "--rate-player")) return rl_rate_parse(v, &c->player) ? -1 : 0;
    if (!strcmp(name, "--rate-ip")) return rl_rate_parse(v, &c->ip) ? -1 : 0;
    if (!strcmp(name, "--rate-ip-tiles")) return rl_rate_parse(v, &c->ip_tiles) ? -1 : 0;
    if (!strcmp(name, "--rate-keys-max")) {
        if (parse_long(v, 1, 100000000, &n)) return -1;
        c->keys_max = (size_t)n;
        return 0;
    }
    if (!strcmp(name, "--players-per-ip-per-min")) {
        if (parse_long(v, 0, 100000000, &n)) return -1;
        c->players_per_ip = (struct rl_rate){n / 60.0, n > 0 ? (double)n : 0};
        return 0;
    }
    if (!strcmp(name, "--trusted-proxy")) {
        memset(c->proxy, 0, 16);
        c->proxy[10] = c->proxy[11] = 0xff;
        c->proxy_set = 1;
        return inet_pton(AF_INET, v, c->proxy + 12) == 1 ? 0 : -1;
    }
    if (!strcmp(name, "--max-speed")) {
        c->max_speed = strtod(v, &end);
        return end == v || *end || !(c->max_speed >= 0 && c->max_speed <= 1e12) ? -1 : 0;
    }
    return -1;
}

static int parse(int argc, char **argv, int first, struct options *o)
{
    static const struct {
        const char *name;
        long lo, hi;
        size_t off;
    } nums[] = {
        {"--token-ttl", 1, 86400 * 30, offsetof(struct options, token_ttl)},
        {"--max-connections", 1, 1000000, offsetof(struct options, conns_max)},
        {"--max-connections-per-ip", 0, 1000000, offsetof(struct options, conns_per_ip_max)},
        {"--request-timeout-ms", 100, 3600000, offsetof(struct options, req_timeout_ms)},
        {"--pending-bodies-max", 1 << 20, 1L << 40, offsetof(struct options, pending_bodies_max)},
        {"--log-queue-max", 1, 10000000, offsetof(struct options, queue_max)},
        {"--idempotency-keys-max", 1, 100000000, offsetof(struct options, idem_max)},
        {"--players-max", 1, 1000000000, offsetof(struct options, players_max)},
        {"--hunts-max", 1, 1000000, offsetof(struct options, hunts_max)},
        {"--tiles-bytes-max", 1, 1L << 40, offsetof(struct options, tiles_bytes_max)},
        {"--map-versions-kept", 3, 64, offsetof(struct options, map_versions_kept)},
        {"--live-window", 1, 1000000, offsetof(struct options, live_window)},
        {"--live-queue-bytes", 4096, 64 * 1024 * 1024, offsetof(struct options, live_queue_bytes)},
        {"--live-ping-ms", 100, 3600000, offsetof(struct options, live_ping_ms)},
        {"--live-replay-max", 0, 100000000, offsetof(struct options, live_replay_max)},
        {"--live-replay-slice-bytes", 1024, 64 * 1024 * 1024,
         offsetof(struct options, live_replay_slice_bytes)},
        {"--live-replay-turn-bytes", 1024, 1L << 30,
         offsetof(struct options, live_replay_turn_bytes)},
        {"--live-replay-keep-ms", 0, 86400000, offsetof(struct options, live_replay_keep_ms)},
        {"--snapshot-every", 0, 1000000000000L, offsetof(struct options, snapshot_every)},
        {"--replica-poll-ms", 1, 60000, offsetof(struct options, replica_poll_ms)},
    };
    const char *at = argc > first ? argv[first] : "";
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        at = a;
        if (!strcmp(a, "--demo")) {
            o->demo = 1;
            continue;
        }
        if (!strcmp(a, "--ignore-snapshots")) {
            o->ignore_snapshots = 1;
            continue;
        }
        if (!v) goto bad;
        i++;
        if (!strcmp(a, "--listen")) o->listen = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--store")) o->store = v;
        else if (!strcmp(a, "--admin-key")) o->admin_key = v;
        else if (!strcmp(a, "--fsync")) o->fsync = v;
        else if (!strcmp(a, "--metrics-access")) o->metrics_access = v;
        else if (!strcmp(a, "--metrics-token")) o->metrics_token = v;
        else if (!strcmp(a, "--node-id")) o->node_id = v;
        else if (!strcmp(a, "--advertise")) o->advertise = v;
        else if (!strcmp(a, "--cluster-secret-file")) o->cluster_secret_file = v;
        else if (!strcmp(a, "--replica-feed")) o->replica_feed = v;
        else if (!strncmp(a, "--rate-", 7) || !strcmp(a, "--players-per-ip-per-min") ||
                 !strcmp(a, "--max-speed") || !strcmp(a, "--trusted-proxy")) {
            if (parse_limit(a, v, &o->limits)) goto bad;
        } else {
            size_t k;
            for (k = 0; k < sizeof nums / sizeof nums[0]; k++)
                if (!strcmp(a, nums[k].name)) break;
            if (k == sizeof nums / sizeof nums[0] ||
                parse_long(v, nums[k].lo, nums[k].hi, (long *)((char *)o + nums[k].off)))
                goto bad;
        }
    }
    return 0;
bad:
    fprintf(stderr, "veltrix: bad option or value: '%s'\n", at);
    usage(stderr);
    return -1;
}

/* Idempotency records kept in memory by default: 1/16 of the machine's memory at
 * IDEM_BYTES_PER_KEY each (a player's scan answer with its key; README "Limits"), between
 * 10,000 and 1,000,000. Older records are still found in the store. */
#define IDEM_BYTES_PER_KEY 1024
static long idem_default(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    long n = pages > 0 && page > 0 ? (long)((double)pages * page / 16 / IDEM_BYTES_PER_KEY) : 0;
    return n < 10000 ? 10000 : n > 1000000 ? 1000000 : n;
}

/* The admin key: flag, environment, or <data>/admin.key (generated on first start). */
static int admin_key(const struct options *o, char *out, size_t cap)
{
    const char *k = o->admin_key ? o->admin_key : getenv("VELTRIX_ADMIN_KEY");
    if (k && *k) {
        snprintf(out, cap, "%s", k);
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.key", o->data);
    FILE *f = fopen(path, "r");
    if (f) {
        int ok = fgets(out, (int)cap, f) != NULL;
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (ok && *out) goto print;
    }
    unsigned char rnd[24];
    if (auth_random(rnd, sizeof rnd)) return -1;
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, out, strlen(out)) < 0 || fsync(fd)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
print:
    fprintf(stderr, "veltrix: admin key: %s (stored in %s)\n", out, path);
    return 0;
}

/* File descriptors kept for everything but client connections (store, log, listener). */
#define FDS_RESERVED 128

/* Raises the open-files soft limit to the hard one (at most 1M), and returns conns_max
 * lowered, with a warning, to what that limit allows: an accept() that fails for lack of
 * descriptors would leave the listener ready and spin the loop. */
static size_t fit_fd_limit(long conns_max)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return (size_t)conns_max;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1 << 20) ? (1 << 20) : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) want = rl.rlim_cur;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl)) getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur == RLIM_INFINITY || (rlim_t)conns_max + FDS_RESERVED <= rl.rlim_cur)
        return (size_t)conns_max;
    long room = rl.rlim_cur > 2 * FDS_RESERVED ? (long)rl.rlim_cur - FDS_RESERVED : 1;
    fprintf(stderr, "veltrix: WARNING: --max-connections %ld lowered to %ld (open files limit %llu)\n",
            conns_max, room, (unsigned long long)rl.rlim_cur);
    return (size_t)room;
}

/* Holds the store for this process (store_lock: the embedded store's lock file). 0, or
 * the exit code after printing why: 2 for a URL no backend takes, 1 otherwise. */
static int lock_store(const char *url)
{
    char err[4400];
    int rc = store_lock(url, err, sizeof err);
    if (!rc) return 0;
    fprintf(stderr, "veltrix: %s\n", err);
    return rc == STORE_EURL ? 2 : 1;
}

/* Whether /metrics is public: --metrics-access, or by default only on a loopback
 * listener (it names every hunt and the server's load). -1 for a bad value. */
static int metrics_public(const struct options *o)
{
    if (!o->metrics_access) return strncmp(o->listen, "127.", 4) == 0;
    if (!strcmp(o->metrics_access, "public")) return 1;
    if (!strcmp(o->metrics_access, "admin")) return 0;
    return -1;
}

/* The secret the nodes share (auth.h: tokens, QR payloads, forwarded requests):
 * --cluster-secret-file, or the store's (the first node's random one). 0, or the exit
 * code after saying why. */
static int cluster_secret(const struct options *o, struct store *s, uint8_t out[32])
{
    struct auth a;
    uint8_t candidate[32];
    int rc;
    if (o->cluster_secret_file) {
        if ((rc = auth_load_secret_file(&a, o->cluster_secret_file))) {
            fprintf(stderr, "veltrix: --cluster-secret-file %s: %s\n", o->cluster_secret_file,
                    rc == -EINVAL ? "must hold 32 bytes or 64 hex digits" : strerror(-rc));
            return 2;
        }
        memcpy(out, a.secret, 32);
        auth_wipe(&a);
        return 0;
    }
    if (auth_random(candidate, sizeof candidate) ||
        (rc = store_cluster_secret(s, candidate, out))) {
        fprintf(stderr, "veltrix: cannot read the cluster secret from the store\n");
        return 1;
    }
    return 0;
}

/* --node-id: this server is one node of several sharing a PostgreSQL store (node.h). 0
 * with *out NULL (a single node) or the node started and secret filled; otherwise the
 * exit code after saying why (2: bad flags, a store without several nodes; 1: the store
 * does not answer). */
static int start_node(const struct options *o, const char *url, enum store_fsync fs,
                      struct node **out, uint8_t secret[32])
{
    char err[1024], adv[300];
    struct store *s = NULL;
    *out = NULL;
    if (!o->node_id) {
        if (!o->advertise && !o->cluster_secret_file && !o->replica_feed) return 0;
        fprintf(stderr, "veltrix: %s needs --node-id\n",
                o->advertise ? "--advertise"
                : o->cluster_secret_file ? "--cluster-secret-file" : "--replica-feed");
        return 2;
    }
    if (o->replica_feed && strcmp(o->replica_feed, "push") && strcmp(o->replica_feed, "poll")) {
        fprintf(stderr, "veltrix: --replica-feed must be push or poll\n");
        return 2;
    }
    if (!vx_is_id(o->node_id, strlen(o->node_id), CLUSTER_NODE_ID_MAX)) {
        fprintf(stderr, "veltrix: --node-id must be 1-64 characters of [a-z0-9_-]\n");
        return 2;
    }
    if (o->advertise && strncmp(o->advertise, "http://", 7) != 0) {
        fprintf(stderr, "veltrix: --advertise must be an http:// URL\n");
        return 2;
    }
    snprintf(adv, sizeof adv, "%s%s", o->advertise ? "" : "http://",
             o->advertise ? o->advertise : o->listen);
    if (store_open(url, fs, &s, err, sizeof err)) {
        fprintf(stderr, "veltrix: store: %s\n", err);
        return 2;
    }
    struct node_config nc = NODE_CONFIG_DEFAULT(o->node_id, adv);
    int rc = store_node_beat(s, o->node_id, adv, 0);
    if (rc == STORE_ENOTSUP) {
        fprintf(stderr, "veltrix: --node-id: several nodes need a postgres:// store\n");
        store_close(s);
        return 2;
    }
    if ((rc = cluster_secret(o, s, secret))) {
        store_close(s);
        return rc;
    }
    if (!(*out = node_start(&nc, s, err, sizeof err))) {
        fprintf(stderr, "veltrix: %s\n", err);
        return 1;
    }
    fprintf(stderr, "veltrix: node %s, advertised as %s\n", o->node_id, adv);
    return 0;
}

static int serve(const struct options *o)
{
    char err[1024] = "", url[4200], key[256];
    int rc;
    enum store_fsync fs = !strcmp(o->fsync, "always") ? STORE_FSYNC_ALWAYS
                          : !strcmp(o->fsync, "batch") ? STORE_FSYNC_BATCH
                          : !strcmp(o->fsync, "off")   ? STORE_FSYNC_OFF
                                                       : (enum store_fsync)-1;
    if ((int)fs < 0) {
        fprintf(stderr, "veltrix: --fsync must be always, batch or off\n");
        return 2;
    }
#ifdef VELTRIX_BENCH_NO_CHAIN
    fprintf(stderr, "veltrix: WARNING: a benchmark build without the hash chain (make NOCHAIN=1): "
                    "every event's hash is zero; never serve a game with it\n");
#endif
    if (metrics_public(o) < 0) {
        fprintf(stderr, "veltrix: --metrics-access must be public or admin\n");
        return 2;
    }
    /* A file-size limit (RLIMIT_FSIZE) is then an error on the write (EFBIG), handled like
     * a full disk (a store outage), not a signal that kills the server. */
    signal(SIGXFSZ, SIG_IGN);
    if (mkdir(o->data, 0700) && errno != EEXIST) {
        fprintf(stderr, "veltrix: cannot create %s: %s\n", o->data, strerror(errno));
        return 1;
    }
    if (admin_key(o, key, sizeof key)) {
        fprintf(stderr, "veltrix: cannot create the admin key in %s\n", o->data);
        return 1;
    }
    if (o->store) snprintf(url, sizeof url, "%s", o->store);
    else store_default_url(o->data, url, sizeof url);
    if ((rc = lock_store(url))) return rc;
    struct store *writer = NULL, *reader = NULL, *snapper = NULL;
    if (store_open(url, fs, &writer, err, sizeof err) ||
        store_open(url, fs, &reader, err, sizeof err) ||
        store_open(url, fs, &snapper, err, sizeof err)) {
        fprintf(stderr, "veltrix: store: %s\n", err);
        return 2; /* a store that cannot be opened: a bad --store or data dir, not a crash */
    }
    struct node *node;
    uint8_t secret[32];
    if ((rc = start_node(o, url, fs, &node, secret))) {
        store_close(snapper);
        store_close(reader);
        store_close(writer);
        return rc;
    }
    struct store *follower = NULL; /* the replicas' reads, on a thread of their own */
    if (node && store_open(url, fs, &follower, err, sizeof err)) {
        fprintf(stderr, "veltrix: store: %s\n", err);
        return 2;
    }
    if (fs != STORE_FSYNC_ALWAYS)
        fprintf(stderr, "veltrix: WARNING: --fsync %s: acknowledged writes may be lost on a "
                        "power failure or crash\n", o->fsync);
    struct net_config nc = {o->listen, fit_fd_limit(o->conns_max),
                            (size_t)o->conns_per_ip_max, (uint64_t)o->req_timeout_ms,
                            17 * 1024 * 1024, (size_t)o->pending_bodies_max, 64 * 1024,
                            o->data};
    struct net *net = net_create(&nc, err, sizeof err);
    if (!net) {
        fprintf(stderr, "veltrix: %s\n", err);
        return 1;
    }
    struct log *log = log_create(writer, net_loop(net), (size_t)o->queue_max);
    struct snap *snap = snap_create(snapper, (uint64_t)o->snapshot_every);
    const char *mtoken = o->metrics_token ? o->metrics_token : getenv("VELTRIX_METRICS_TOKEN");
    char advertise[300];
    snprintf(advertise, sizeof advertise, "%s%s", o->advertise ? "" : "http://",
             o->advertise ? o->advertise : o->listen);
    struct api_config ac = {.admin_key = key,
                            .metrics_public = metrics_public(o),
                            .metrics_token = mtoken && *mtoken ? mtoken : NULL,
                            .data_dir = o->data,
                            .token_ttl_s = o->token_ttl,
                            .refresh_ttl_s = 30 * 86400,
                            .queue_max = (size_t)o->queue_max,
                            .idem_max = (size_t)o->idem_max,
                            .idem_retention_ms = 24 * 3600 * 1000LL,
                            .hunts_max = (size_t)o->hunts_max,
                            .players_max = (size_t)o->players_max,
                            .limits = o->limits,
                            .tiles_bytes_max = (size_t)o->tiles_bytes_max,
                            .map_versions_kept = (unsigned)o->map_versions_kept,
                            .live = {(size_t)o->live_window, (size_t)o->live_queue_bytes,
                                     (uint64_t)o->live_ping_ms, 250, 200, 32 * 1024,
                                     (uint64_t)o->live_replay_max,
                                     (size_t)o->live_replay_slice_bytes,
                                     (size_t)o->live_replay_turn_bytes,
                                     (uint64_t)o->live_replay_keep_ms},
                            .snap = snap,
                            .ignore_snapshots = o->ignore_snapshots,
                            .fsync_always = fs == STORE_FSYNC_ALWAYS,
                            .node = node,
                            .advertise = advertise,
                            .follower = follower,
                            .feed_push = !o->replica_feed || !strcmp(o->replica_feed, "push"),
                            .replica_poll_ms = (uint64_t)o->replica_poll_ms,
                            .cluster_secret = node ? secret : NULL};
    if (!log || !snap || api_init(&ac, reader, log, net, err, sizeof err) ||
        (o->demo && api_create_demo(err, sizeof err))) {
        fprintf(stderr, "veltrix: cannot start: %s\n", err);
        return 1;
    }
    char shown[sizeof url];
    store_url_redact(url, shown, sizeof shown); /* never a password of the URL */
    fprintf(stderr, "veltrix: listening on http://%s (store %s, fsync %s)\n", o->listen, shown,
            o->fsync);
    net_run(net);
    fprintf(stderr, "veltrix: stopping: finishing %zu in-flight writes\n", log_pending(log));
    /* Until the writes in flight are durable: during a store outage they cannot be, so
     * they get 10 s, then log_destroy() ends the process with them unacknowledged
     * (log.h). Writes forwarded to other nodes get their answers too (each step of a
     * forward times out by itself: forward.h). A connection accepted but never answered
     * (its client connected just before the stop and its request is on the way) gets
     * 2 s: closing it unanswered would leave the client not knowing whether its write
     * was applied. Keep-alive connections already answered are closed as they are. */
    for (uint64_t t0 = metrics_now_ns();;) {
        uint64_t waited = metrics_now_ns() - t0;
        if (!(log_pending(log) && (!log_store_down(log) || waited < 10000000000ull)) &&
            !(api_forwards_in_flight() && waited < 30000000000ull) &&
            !(net_unanswered(net) && waited < 2000000000ull))
            break;
        net_run_once(net, 10);
    }
    for (int i = 0; i < 10; i++) net_run_once(net, 5); /* let the last answers go out */
    log_destroy(log);
    node_stop(node); /* the writes are durable: hand the hunts over */
    snap_destroy(snap); /* the log is drained: a running snapshot can finish */
    api_deinit();
    store_close(reader);
    store_close(writer);
    fprintf(stderr, "veltrix: stopped\n");
    return 0;
}

/* A tool that writes the store directly must not run beside servers on it: they would not
 * see what it wrote, and their next map version would collide with its. SQLite: lock_store
 * already refuses. PostgreSQL: refused while another veltrix session is connected to the
 * database. 0, or the exit code after saying why. */
static int no_server_on(const char *url)
{
    char err[1024];
    struct store *s;
    uint64_t n = 0;
    if (store_open(url, STORE_FSYNC_ALWAYS, &s, err, sizeof err)) {
        fprintf(stderr, "veltrix: store: %s\n", err);
        return 1;
    }
    int rc = store_other_sessions(s, &n);
    store_close(s);
    if (rc == STORE_ENOTSUP || (!rc && !n)) return 0;
    if (rc) {
        fprintf(stderr, "veltrix: store: cannot tell whether a server uses it: %s\n",
                store_err_str(rc));
        return 1;
    }
    fprintf(stderr, "veltrix: %llu other veltrix session(s) are connected to this database (a "
                    "running server or node?): stop them first, or upload the tiles through the "
                    "API (PUT /v1/hunts/HUNT/tiles/..., POST /v1/hunts/HUNT/map/publish)\n",
            (unsigned long long)n);
    return 1;
}

/* `veltrix tiles import HUNT DIR [options]`: the map straight into the store. */
static int tiles_cmd(int argc, char **argv, struct options *o)
{
    char url[4200], err[1024];
    int rc;
    if (argc < 5 || strcmp(argv[2], "import") != 0 || parse(argc, argv, 5, o)) {
        usage(stderr);
        return 2;
    }
    if (o->store) snprintf(url, sizeof url, "%s", o->store);
    else store_default_url(o->data, url, sizeof url);
    if ((rc = lock_store(url))) return rc;
    if ((rc = no_server_on(url))) return rc;
    if (tiles_import(url, argv[3], argv[4], (unsigned)o->map_versions_kept, err, sizeof err)) {
        fprintf(stderr, "veltrix: tiles import: %s\n", err);
        return 1;
    }
    return 0;
}

/* `veltrix migrate --from URL --to URL` (migrate.h): 0 copied and verified, 1 a failure or
 * a difference, 2 refused before anything was written. */
static int migrate_cmd(int argc, char **argv)
{
    static const char synopsis[] = "veltrix migrate --from sqlite:PATH --to postgres://...";
    struct migrate_config c = {NULL, NULL, stderr, stdout};
    struct migrate_stats st;
    char err[2048];
    for (int i = 2; i < argc; i += 2) {
        const char **slot = !strcmp(argv[i], "--from") ? &c.from
                            : !strcmp(argv[i], "--to") ? &c.to
                                                       : NULL;
        if (!slot || *slot || i + 1 == argc || !argv[i + 1][0]) {
            fprintf(stderr, "veltrix: migrate: bad option or value: '%s' (usage: %s)\n",
                    argv[i], synopsis);
            return 2;
        }
        *slot = argv[i + 1];
    }
    if (!c.from || !c.to) {
        fprintf(stderr, "veltrix: migrate: --from and --to are both required (usage: %s)\n",
                synopsis);
        return 2;
    }
    int rc = migrate_run(&c, &st, err, sizeof err);
    if (rc) fprintf(stderr, "veltrix: migrate: %s\n", err);
    return rc == MIGRATE_OK ? 0 : rc == MIGRATE_EINPUT ? 2 : 1;
}

int main(int argc, char **argv)
{
    struct options o = {.listen = "127.0.0.1:8080",
                        .data = "./veltrix-data",
                        .fsync = "always",
                        .token_ttl = 600,
                        .conns_max = 50000,
                        .req_timeout_ms = 10000,
                        .queue_max = 65536,
                        .idem_max = idem_default(),
                        .players_max = 10000000,
                        .hunts_max = 1000,
                        .conns_per_ip_max = 2000,
                        .pending_bodies_max = 64L << 20,
                        /* limits: the defaults of the README's Limits table */
                        .limits = {{10, 20}, {500, 1000}, {120 / 60.0, 120}, 20, 131072, 0, {0},
                                   {5000, 20000}},
                        .tiles_bytes_max = 1L << 30,
                        .map_versions_kept = 3,
                        .live_window = 2048,
                        .live_queue_bytes = 1048576,
                        .live_ping_ms = 30000,
                        .live_replay_max = 20000,
                        .live_replay_slice_bytes = LIVE_REPLAY_SLICE_BYTES,
                        .live_replay_turn_bytes = LIVE_REPLAY_TURN_BYTES,
                        .live_replay_keep_ms = 30000,
                        .snapshot_every = 1000000,
                        .replica_poll_ms = 20};
    if (argc >= 2 && !strcmp(argv[1], "tiles")) return tiles_cmd(argc, argv, &o);
    if (argc >= 2 && !strcmp(argv[1], "migrate")) return migrate_cmd(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "audit")) return audit_main(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "serve") != 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 2;
    }
    if (parse(argc, argv, 2, &o)) return 2;
    return serve(&o);
}
