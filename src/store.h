/* store.h — the durable store behind Veltrix: the event log of every hunt, players,
 * refresh tokens, idempotency records, snapshots and tile blobs.
 *
 * One interface, several backends, chosen by the URL's scheme (store.c; a backend is a
 * table of operations, store_int.h; store_sqlite.c today, PostgreSQL next). Writes happen
 * inside store_begin/store_commit, so a whole group-commit batch is one transaction and
 * one fsync. A handle is used by one thread at a time; the log writer owns one handle
 * and readers open their own. Rows handed to callbacks are valid only during the call. */
#ifndef VELTRIX_STORE_H
#define VELTRIX_STORE_H
#include <stddef.h>
#include <stdint.h>

enum store_err {
    STORE_OK = 0,
    STORE_EIO = -1001,       /* the backend failed (disk, connection) */
    STORE_ECONFLICT = -1002, /* a (hunt, seq) that is taken */
    STORE_ECORRUPT = -1003,  /* a row that does not decode */
    STORE_EURL = -1004,      /* unknown or malformed store URL */
    STORE_ESTOP = -1005,     /* a callback asked to stop */
    STORE_ENOTSUP = -1006,   /* the backend has no such operation (several nodes: PostgreSQL) */
    STORE_EFENCED = -1007,   /* the batch holds a hunt whose lease moved (store_fenced_hunts) */
};
const char *store_err_str(int err);

enum store_fsync { STORE_FSYNC_ALWAYS, STORE_FSYNC_BATCH, STORE_FSYNC_OFF };

struct store_event {
    const char *hunt;
    uint64_t seq;
    int64_t time_ms;
    uint8_t type;
    uint8_t player[16];
    const uint8_t *data;
    size_t data_len;
    /* The event's link of the hunt's hash chain (engine_apply's out->hash). has_hash 0:
     * none stored (rows written before the chain: a NULL column; recovery recomputes it). */
    uint8_t hash[32];
    int has_hash;
    /* Several nodes: the lease epoch its writer holds the hunt under. The batch commits only
     * if every epoch it carries is still its hunt's (store_commit: STORE_EFENCED). 0:
     * unfenced (a single node); a backend without leases refuses any other (STORE_ENOTSUP). */
    uint64_t epoch;
};

struct store_player {
    uint8_t id[16];
    const char *display_name;
    int64_t created_ms;
    uint32_t gen; /* session generation: bumped to revoke every session */
};

/* A refresh token. Ids are time-ordered (UUIDv7): a player's current token has the
 * highest id of its rows, and reuse is detected against it alone (api.c), so the store
 * keeps one row per player (store_put_refresh). */
struct store_refresh {
    uint8_t id[16];
    uint8_t player[16];
    uint32_t gen;
    int64_t expires_ms;
    int used;
};

struct store_idem {
    const char *scope; /* who and where: player, method and path */
    const char *key;
    uint8_t req_hash[32];
    int status;
    const char *body;
    size_t body_len;
    int64_t created_ms;
    /* The hunt of a hunt's write (the owner that takes the hunt over loads its records,
     * store_each_idem_of_hunt); NULL otherwise, and in rows read back. */
    const char *hunt;
};

struct store; /* opaque */
struct store_backend;

/* Opens (creating and migrating as needed) the store at url ("sqlite:PATH"). On error a
 * message goes to err (never a password of the URL); STORE_EURL for an unknown scheme. */
int store_open(const char *url, enum store_fsync fsync, struct store **out, char *err,
               size_t errcap);
void store_close(struct store *s);
/* url as it may be shown in a message or a log line: the password of its user info and
 * of a "password=" parameter replaced by "***". */
void store_url_redact(const char *url, char *out, size_t cap);
/* The default store of a data directory (the embedded one): "sqlite:<data_dir>/veltrix.db". */
void store_default_url(const char *data_dir, char *out, size_t cap);
/* Holds url's store for this process where its backend needs that (the embedded store:
 * an exclusive lock on "<path>.lock", so that no second server or `tiles import` writes
 * it behind this one's back). 0; STORE_EURL for an unknown scheme; or -1; with a message in err. */
int store_lock(const char *url, char *err, size_t errcap);
/* For tests: the registered backends (NULL-terminated), each one's URL scheme, and a URL
 * for a fresh store inside the empty directory dir, or in memory when dir is NULL (-1:
 * not testable here). */
const struct store_backend *const *store_backends(void);
const char *store_backend_scheme(const struct store_backend *be);
int store_backend_test_url(const struct store_backend *be, const char *dir, char *out,
                           size_t cap);

int store_begin(struct store *s);
/* STORE_EFENCED: a hunt's lease moved since its events were put (their epoch is no longer
 * the hunt's): the transaction rolled back (not in doubt); store_fenced_hunts names them. */
int store_commit(struct store *s);
void store_rollback(struct store *s);
/* The hunts of the last STORE_EFENCED commit (*hunts valid until the next store_begin);
 * how many (0 when the last commit was not fenced). */
size_t store_fenced_hunts(struct store *s, const char *const **hunts);

int store_put_event(struct store *s, const struct store_event *ev);
int store_put_player(struct store *s, const struct store_player *p); /* insert or update */
/* used == 0: r becomes the player's current refresh token, and its only row: the
 * player's other rows are deleted in the same transaction. used != 0: marks r's row
 * used; a token without a row stays without one. */
int store_put_refresh(struct store *s, const struct store_refresh *r);
/* Deletes refresh rows that expired before now_ms, at most STORE_PRUNE_REFRESH_MAX of
 * them (an expired token is refused whether its row is there or not). */
int store_prune_refresh(struct store *s, int64_t now_ms);
#define STORE_PRUNE_REFRESH_MAX 1000
int store_put_idem(struct store *s, const struct store_idem *i);
/* Deletes idempotency records created before cutoff_ms, at most STORE_PRUNE_IDEM_MAX of
 * them (a bounded pause for the transaction it is part of; call again for more). */
int store_prune_idem(struct store *s, int64_t cutoff_ms);
#define STORE_PRUNE_IDEM_MAX 2000 /* records one store_prune_idem deletes at most */

typedef int (*store_event_cb)(const struct store_event *ev, void *ctx);
typedef int (*store_player_cb)(const struct store_player *p, void *ctx);
typedef int (*store_refresh_cb)(const struct store_refresh *r, void *ctx);
typedef int (*store_idem_cb)(const struct store_idem *i, void *ctx);
typedef int (*store_hunt_cb)(const char *hunt, void *ctx);

/* Callbacks return 0 to go on, anything else stops the walk (returned as is). */
int store_each_hunt(struct store *s, store_hunt_cb cb, void *ctx);
int store_each_event(struct store *s, const char *hunt, uint64_t from_seq, store_event_cb cb,
                     void *ctx);
int store_each_player(struct store *s, store_player_cb cb, void *ctx);
/* The refresh rows that have not expired at now_ms. */
int store_each_refresh(struct store *s, int64_t now_ms, store_refresh_cb cb, void *ctx);
int store_each_idem(struct store *s, int64_t since_ms, store_idem_cb cb, void *ctx);
/* The idempotency records of hunt's writes created at or after since_ms (several nodes:
 * a new owner takes them over with the hunt, so that a retry of a write the previous
 * owner applied is replayed, never applied again). STORE_ENOTSUP on a store without
 * several nodes (SQLite). */
int store_each_idem_of_hunt(struct store *s, const char *hunt, int64_t since_ms,
                            store_idem_cb cb, void *ctx);
/* Looks one idempotency record up: 1 found (cb called), 0 not found, or an error. */
int store_get_idem(struct store *s, const char *scope, const char *key, store_idem_cb cb,
                   void *ctx);
/* Snapshots: one per hunt (the newest replaces the older); the log from seq+1 on is
 * replayed over it. Writing one never holds up event appends on another handle (SQLite:
 * they live in a companion file, see store_sqlite.c); store_put_snapshot is its own
 * transaction, outside store_begin/store_commit. store_get_snapshot returns 1 and calls
 * cb(seq, data, len, ctx) when there is one, 0 when not, or an error. */
typedef int (*store_snapshot_cb)(uint64_t seq, const uint8_t *data, size_t len, void *ctx);
int store_put_snapshot(struct store *s, const char *hunt, uint64_t seq, const uint8_t *data,
                       size_t len);
int store_get_snapshot(struct store *s, const char *hunt, store_snapshot_cb cb, void *ctx);
/* Removes hunt's snapshot (one that recovery found unusable). 0 or STORE_EIO. */
int store_delete_snapshot(struct store *s, const char *hunt);
/* Content-addressed blobs (tiles): stored once per hash; putting a known hash is a no-op.
 * store_get_blob: 1 and cb(0, data, len, ctx) when found, 0 when not, or an error. */
int store_put_blob(struct store *s, const uint8_t hash[32], const uint8_t *data, size_t len);
int store_get_blob(struct store *s, const uint8_t hash[32], store_snapshot_cb cb, void *ctx);
/* Map tiles (tiles.c). A draft tile row places a blob (by hash) at (x, y) of a hunt's
 * draft with its content type; putting the same (hunt, x, y) replaces it. A map version
 * row holds a published version's manifest (tiles.c encodes it); putting version N also
 * deletes that hunt's manifests below keep_from (versions no longer readable). */
struct store_tile {
    const char *hunt;
    uint32_t x, y;
    uint8_t hash[32];
    const char *ctype;
};
struct store_map_version {
    const char *hunt;
    int64_t version;
    int64_t keep_from;
    const uint8_t *data;
    size_t len;
};
typedef int (*store_tile_cb)(const struct store_tile *t, void *ctx);
typedef int (*store_map_version_cb)(const struct store_map_version *v, void *ctx);
int store_put_tile(struct store *s, const struct store_tile *t);
int store_put_map_version(struct store *s, const struct store_map_version *v);
/* Every draft tile of every hunt; every kept manifest, by hunt then version. */
int store_each_tile(struct store *s, store_tile_cb cb, void *ctx);
int store_each_map_version(struct store *s, store_map_version_cb cb, void *ctx);
/* One kept manifest: 1 found (cb called), 0 not found, or an error; STORE_ENOTSUP without
 * several nodes (a replica loads a version published elsewhere: tiles_follow). */
int store_get_map_version(struct store *s, const char *hunt, int64_t version,
                          store_map_version_cb cb, void *ctx);
/* Faults of the "fault:<inner url>" test backend (store_fault.c), process-wide: each
 * counter is how many of the next such calls fail (-1: all of them, 0: none).
 * fail_commits: the commit fails (the caller rolls back); doubt_commits: the commit lands but
 * reports STORE_EIO (a connection lost before COMMIT's answer); fail_writes: put/prune
 * calls fail; fail_reads: each_/get_/ping/last_seq calls fail, once skip_reads more of them
 * have succeeded (to aim at a later read). kill_writes and kill_commits count down
 * instead: the kill_writes-th next put/prune call (kill_commits-th commit) kills the
 * process with SIGKILL before it reaches the store (a writer dying in mid-transaction;
 * 0: never). */
struct store_fault {
    int fail_commits, doubt_commits, fail_writes, fail_reads, skip_reads;
    int kill_writes, kill_commits;
};
void store_fault_set(const struct store_fault *f);
void store_fault_get(struct store_fault *f);
/* In a child process after fork(): gives the fault: handle s a connection of its own to
 * its inner store (a SQLite connection must not be used across fork(); the inherited one
 * is abandoned, not closed). 0, or the inner store's error. */
int store_fault_after_fork(struct store *s);

/* ---- Several nodes (issue 15): membership and hunt leases -----------------------------
 * PostgreSQL only (other backends: STORE_ENOTSUP). Ages and expiries are measured by the
 * database's clock, so the nodes agree on them whatever their own clocks say. Each call is
 * its own transaction (outside store_begin/store_commit). docs/DESIGN.md "Several nodes". */
struct store_node {
    const char *id, *advertise;
    int64_t age_ms; /* since its last heartbeat */
    int draining;   /* stopping: it hands its hunts over */
};
struct store_lease {
    const char *hunt, *owner;
    uint64_t epoch;  /* grows at every change of owner (and at a re-take after expiry) */
    int64_t left_ms; /* until it expires; <= 0: expired, anyone placed may take it */
};
typedef int (*store_node_cb)(const struct store_node *n, void *ctx);
typedef int (*store_lease_cb)(const struct store_lease *l, void *ctx);
/* Inserts or refreshes node id's row: its advertised URL, draining, heartbeat = now. */
int store_node_beat(struct store *s, const char *id, const char *advertise, int draining);
/* Every node that ever beat, by id. */
int store_each_node(struct store *s, store_node_cb cb, void *ctx);
/* Every hunt's lease, by hunt. */
int store_each_lease(struct store *s, store_lease_cb cb, void *ctx);
/* Takes hunt's lease for node until now + lease_ms when it is free, expired, or node's
 * own and unexpired (then only extended, same epoch); a new holder gets epoch + 1 (1 for a
 * first lease). 1 with *epoch set; 0 when another node holds it unexpired; or an error. */
int store_lease_take(struct store *s, const char *hunt, const char *node, int64_t lease_ms,
                     uint64_t *epoch);
/* Extends to now + lease_ms every unexpired lease node holds, calling cb for each (an
 * expired one must be taken again: store_lease_take, which bumps its epoch). */
int store_lease_renew(struct store *s, const char *node, int64_t lease_ms, store_lease_cb cb,
                      void *ctx);
/* Expires node's lease on hunt now (hunt NULL: all of node's leases), so that the next
 * node placed takes it without waiting. */
int store_lease_release(struct store *s, const char *node, const char *hunt);
/* The secret the nodes share (tokens, QR payloads, forwarded requests: auth.h), 32 bytes:
 * the first node's candidate (drawn at random by the caller) is stored, and every node
 * after gets that one in out. 0, or an error. Without --cluster-secret-file the nodes use
 * this one (see README "Several nodes"). */
int store_cluster_secret(struct store *s, const uint8_t candidate[32], uint8_t out[32]);
/* Several nodes: refresh tokens rotate in the store, whichever node a player reaches.
 * store_refresh_rotate, in one statement: when player's current refresh row is old_id of
 * generation gen, unused and unexpired at now_ms, it becomes nw (its id and expiry);
 * returns 1. Otherwise 0, with *cur_id and *cur_gen the player's current row (cur_id all
 * zero: none); a concurrent rotation of the same token leaves cur_id == old_id. Or an
 * error; STORE_ENOTSUP without several nodes (SQLite: a single node decides in memory).
 * store_revoke_player, in one statement: the player's generation + 1 (every session
 * ends) and its refresh row gone; *gen the new generation. 1, 0 for an unknown player, or
 * an error. Both are durable when they return. */
int store_refresh_rotate(struct store *s, const uint8_t player[16], const uint8_t old_id[16],
                         uint64_t gen, int64_t now_ms, const struct store_refresh *nw,
                         uint8_t cur_id[16], uint64_t *cur_gen);
int store_revoke_player(struct store *s, const uint8_t player[16], uint64_t *gen);
/* Looks one player up by id: 1 found (cb called), 0 not found, or an error. A node learns
 * this way of a player another node created (api_req.c); bounded, one query, no walk. */
int store_get_player(struct store *s, const uint8_t id[16], store_player_cb cb, void *ctx);
/* For copying a whole store (`veltrix migrate`, migrate.c). store_each_snapshot: every
 * snapshot, by hunt (rows valid during the call). store_each_blob: every blob, by hash.
 * store_put_events: evs[0..n) appended as n store_put_event calls would (in the open
 * transaction, or as one of its own outside one); a backend may send them in bulk
 * (PostgreSQL: one COPY), so a taken (hunt, seq) is STORE_ECONFLICT from this call or
 * from the commit, as with store_put_event. */
typedef int (*store_hunt_snapshot_cb)(const char *hunt, uint64_t seq, const uint8_t *data,
                                      size_t len, void *ctx);
typedef int (*store_blob_cb)(const uint8_t hash[32], const uint8_t *data, size_t len, void *ctx);
int store_each_snapshot(struct store *s, store_hunt_snapshot_cb cb, void *ctx);
int store_each_blob(struct store *s, store_blob_cb cb, void *ctx);
int store_put_events(struct store *s, const struct store_event *evs, size_t n);

/* 0 when the store answers a trivial query. */
int store_ping(struct store *s);
/* The highest durable seq of hunt's log (0 when it has none). A snapshot is stored only
 * once the log holds its seq, so it is never ahead of what was acknowledged. */
int store_last_seq(struct store *s, const char *hunt, uint64_t *seq);
/* store_last_seq of each of the n hunts into seqs (several nodes: a replica's look at the
 * heads of the hunts it follows, in one round trip on PostgreSQL; one by one elsewhere). */
int store_heads(struct store *s, const char *const *hunts, size_t n, uint64_t *seqs);
/* PostgreSQL: how many other sessions of veltrix (servers, nodes, tools: their
 * application_name is 'veltrix') are connected to the store's database now, as far as
 * pg_stat_activity shows this role (sessions of another role without pg_read_all_stats
 * may not be counted). For a tool that must not write behind running servers' backs
 * (`tiles import`). STORE_ENOTSUP on SQLite, whose store_lock keeps a second process out. */
int store_other_sessions(struct store *s, uint64_t *n);

#endif
