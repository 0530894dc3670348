/* cluster.h — the pure decisions of running on several nodes (issue 15, docs/DESIGN.md
 * "Several nodes"): which node should own a hunt, when an owner must stop writing, and
 * how a forwarded request proves that a node of the cluster sent it. No I/O, no clock:
 * times are arguments, like the engine's.
 *
 * Placement is rendezvous (highest-random-weight) hashing: every node scores every hunt
 * with a hash of (node, hunt) and the live node with the highest score owns it, so adding
 * or losing a node moves only the hunts it wins or held, and every node computes the same
 * answer from the same list of live nodes without talking to the others.
 *
 * The lease: ownership is a row in the store with an epoch that grows at every change of
 * owner, and each group commit checks the epoch inside its own transaction — that is the
 * fence. This file adds the owner's own stop: an owner may write only while its last
 * successful renewal, counted from the moment the renewal was *sent*, is younger than the
 * lease minus a margin. The store grants the lease from its own clock when the renewal
 * commits, which is after it was sent, so an owner that stops by its own clock stops
 * before the store would let another node take over (up to clock rate drift, which the
 * margin covers).
 *
 * Forwarding: a node forwards a write to the hunt's owner with a header
 *   X-Veltrix-Forwarded: vf1.<from node>.<time ms>.<hex(mac)>
 *   mac = HMAC-SHA-256(cluster secret, "veltrix-forward-v1" and then, each as a 4-byte
 *         big-endian length and its bytes: from node, time ms in decimal, client address,
 *         method, path with query, Authorization, Idempotency-Key, SHA-256(body))
 * so the owner trusts the client address it carries (rate limits) only when the MAC
 * holds and the time is within the allowed skew; anything else is 403. */
#ifndef VELTRIX_CLUSTER_H
#define VELTRIX_CLUSTER_H
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_NODE_ID_MAX 64 /* node ids: 1..64 chars of [a-z0-9_-] (vx_is_id) */
#define CLUSTER_FWD_MAX 160    /* the header value, with its NUL */

struct cluster_node {
    const char *id;
    int alive; /* heartbeat within the window, not draining */
};

/* The rendezvous score of (node, hunt): the first 8 bytes, big-endian, of
 * SHA-256("veltrix-place-v1" || len(node) as 1 byte || node || hunt). */
uint64_t cluster_score(const char *node, const char *hunt);
/* The index in nodes[0..n) of the live node that should own hunt (highest score; a tie,
 * which needs a 64-bit collision, goes to the smaller id in byte order), or -1 when no
 * node is alive. */
int cluster_place(const char *hunt, const struct cluster_node *nodes, size_t n);

/* An owner's view of its lease on one hunt. */
struct cluster_lease {
    uint64_t epoch;      /* the epoch the store gave this node; 0: not held */
    int64_t renewed_ms;  /* local monotonic time at which the newest successful renewal
                          * (or the acquisition) was sent */
};

/* Records a successful acquisition or renewal at epoch that was sent at sent_ms. A late
 * answer to an older renewal never moves renewed_ms back; another epoch replaces the
 * lease (a new ownership). */
void cluster_lease_renewed(struct cluster_lease *l, uint64_t epoch, int64_t sent_ms);
/* 1 when the owner may still commit at now_ms: it holds the lease and
 * now_ms < renewed_ms + lease_ms - margin_ms. 0 otherwise (hold writes: 503 hunt_moving). */
int cluster_lease_may_write(const struct cluster_lease *l, int64_t now_ms, int64_t lease_ms,
                            int64_t margin_ms);

/* What a forwarded request's MAC covers (strings may be empty, not NULL). */
struct cluster_fwd {
    const char *from;        /* the forwarding node's id */
    int64_t time_ms;         /* wall clock of the forwarding node when it sent */
    const char *client_addr; /* the client's address as the forwarding node saw it */
    const char *method, *path, *authorization, *idem_key;
    uint8_t body_sha256[32];
};

/* Writes the header value for f into out (CLUSTER_FWD_MAX bytes). 0, or -1 when from is
 * not a node id. */
int cluster_forward_sign(const uint8_t secret[32], const struct cluster_fwd *f,
                         char out[CLUSTER_FWD_MAX]);
/* The sender named by a header that checked. */
struct cluster_fwd_in {
    char from[CLUSTER_NODE_ID_MAX + 1];
    int64_t time_ms;
};
/* Checks header (len bytes) for the request described by f (f->from and f->time_ms are
 * ignored: they come from the header, into *in). 0 when the header is well formed, its
 * MAC holds and |now_ms - time| <= skew_ms; -1 otherwise. */
int cluster_forward_check(const uint8_t secret[32], const char *header, size_t len,
                          const struct cluster_fwd *f, int64_t now_ms, int64_t skew_ms,
                          struct cluster_fwd_in *in);

#endif
