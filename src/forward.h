/* forward.h — writes for a hunt this node does not own go to the node that does (issue 15
 * item 3, docs/DESIGN.md "Several nodes" step 3), and forwarded requests are checked
 * where they arrive.
 *
 * Sending: the request keeps its method, target (path and query), body, Authorization,
 * Idempotency-Key and Content-Type, and gains
 *   X-Veltrix-Forwarded: vf1.<this node>.<ms>.<mac>   (cluster_forward_sign)
 *   X-Veltrix-Client: <the client's address as this node saw it>
 * It travels over persistent HTTP/1.1 connections kept per peer (h2o sockets, connected
 * by libh2o's socketpool, on the event loop: nothing here blocks; one request at a time
 * per connection), and the owner's answer comes back as it was:
 * status, body byte for byte, and the headers a client may act on (Content-Type,
 * Retry-After, Location, Idempotent-Replayed, ETag, Cache-Control). An owner that cannot
 * be reached, or that breaks off its answer, gives 503 hunt_moving with Retry-After: 1
 * (the write may have landed: a retry with the same Idempotency-Key is safe).
 *
 * The MAC key of a forwarded request is derived from the cluster secret and the id of
 * the node it is sent to (auth_derive), so a header that holds for one node is refused
 * by every other: it cannot be replayed elsewhere.
 *
 * Where a hunt's writes go comes from the node's published view (node_cluster_body: the
 * last round's leases and live nodes), parsed here at most every 100 ms, or sooner after
 * a forward failed: the owner named by an unexpired lease; for a hunt without a lease
 * yet (being created) the live node that placement (cluster_place) gives it. An owner that
 * the view shows dead (no heartbeat for 1.5 s) is not waited for: 503 hunt_moving.
 *
 * Invariants: a forwarded request is never forwarded again (at most one hop: the caller
 * answers 503 hunt_moving instead); every held request is answered exactly once; at most
 * inflight_max requests are in flight to one peer (more: 503 busy). Event loop only. */
#ifndef VELTRIX_FORWARD_H
#define VELTRIX_FORWARD_H
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct auth;
struct http_req;
struct node;

struct forward_config {
    void *loop;              /* the event loop (h2o_loop_t) */
    struct node *node;       /* this node: its id and its view of the cluster */
    const struct auth *auth; /* the cluster secret: the MAC keys */
    int64_t skew_ms;         /* a forwarded request stamped further than this from now: 403 */
    uint64_t timeout_ms;     /* connect, send, answer head, answer body: each at most this */
    uint64_t idle_ms;        /* an idle pooled connection is closed after this (below the
                              * peers' --request-timeout-ms, which closes it on their side) */
    size_t inflight_max;     /* requests in flight to one peer */
};
#define FORWARD_CONFIG_DEFAULT {NULL, NULL, NULL, 5000, 15000, 2000, 1024}

struct forward;
struct forward_peer;

/* NULL when out of memory. The caller keeps node and auth alive longer. */
struct forward *forward_create(const struct forward_config *c);
/* Cancels the requests in flight (their clients get no answer: the loop has stopped) and
 * closes every connection. NULL is a no-op. */
void forward_destroy(struct forward *f);

enum forward_where {
    FORWARD_HERE,    /* a hunt without a lease yet that placement gives this node */
    FORWARD_PEER,    /* *peer holds the lease, or placement gives it a hunt without one */
    FORWARD_NOWHERE, /* nobody may write it now (lease expired, owner stale or moving) */
};
/* Where a write of hunt goes, for a node that does not hold a fresh lease on it. */
enum forward_where forward_route(struct forward *f, const char *hunt, struct forward_peer **peer);
/* The node id holding hunt's lease in this node's view (the last round's, at most about
 * 600 ms old), or NULL: no lease yet, or none known. Valid until the next call. */
const char *forward_owner(struct forward *f, const char *hunt);
/* Sends r to p and answers r (held meanwhile) with p's answer, or 503 hunt_moving / busy.
 * client_addr: the client's address as this node sees it (16 bytes, IPv4 mapped). */
void forward_send(struct forward *f, struct forward_peer *p, struct http_req *r,
                  const uint8_t client_addr[16]);

/* A request of this node's own to peer node (several nodes: the owner's feed of committed
 * events to the replicas): POST target with body (malloc'd; the callee's from now on),
 * signed like a forwarded request (no Authorization, no Idempotency-Key, client 0.0.0.0).
 * done(arg, status) runs on the loop with the peer's status, or 0 when it did not answer.
 * 0, or -1 (done not called, body freed): node is not a peer in the view, too many in
 * flight to it, or out of memory. */
int forward_post(struct forward *f, const char *node, const char *target, char *body,
                 size_t len, void (*done)(void *arg, int status), void *arg);
/* The ids of the live peers in this node's view (not itself), at most max of them in ids
 * (valid until the view is next reloaded: by any forward_* call). */
size_t forward_peers(struct forward *f, const char **ids, size_t max);

/* The receiving side, for every request: 0 when r has no X-Veltrix-Forwarded header; 1
 * when it has one that checks (MAC under this node's key, within skew_ms), with the client
 * address it carries in addr; -1 when it does not check (the caller answers 403). */
int forward_check(struct forward *f, struct http_req *r, uint8_t addr[16]);
/* The client address carried by a request that forward_check() accepted; 0, or -1 when r
 * carries none. */
int forward_client_addr(struct http_req *r, uint8_t addr[16]);

/* Requests sent and not answered yet. */
size_t forward_in_flight(const struct forward *f);
/* veltrix_forward_* metrics (Prometheus text). */
void forward_render_metrics(struct forward *f, struct metrics_buf *b);

#endif
