/* node.h — this server as one node of several sharing a PostgreSQL store (issue 15,
 * docs/DESIGN.md "Several nodes"): a thread of its own that heartbeats into the store,
 * watches the other nodes, and takes, renews, hands over and releases the leases of the
 * hunts that placement (cluster_place) gives this node, so that each hunt has exactly one
 * owner at a time and a dead node's hunts find a new owner once its leases expire.
 *
 * Everything here runs on the node's thread with its own store handle; the event loop
 * only reads the published view (node_cluster_body, node_owns), under a mutex, never
 * waiting on the store.
 *
 * Invariants: this node holds a lease only while the store says so (a renewal that does
 * not return a hunt drops it); node_owns answers yes only while the lease is younger, by
 * this node's monotonic clock from the renewal's send time, than lease_ms - margin_ms;
 * a draining node takes nothing and releases what it holds.
 *
 * The rest of the node's part lives elsewhere: writes are gated by node_owns and carry the
 * lease epoch that the store fences in the commit (api_cluster.c, store_pg.c), writes for
 * hunts owned elsewhere are forwarded (forward.c), and hunts owned elsewhere are
 * followed from the store (api_cluster.c). */
#ifndef VELTRIX_NODE_H
#define VELTRIX_NODE_H
#include <stddef.h>
#include <stdint.h>

struct store;

struct node_config {
    const char *id;        /* --node-id (vx_is_id) */
    const char *advertise; /* --advertise: the URL other nodes reach this one at */
    int64_t beat_ms;       /* one round (heartbeat, renewals, placement) every beat_ms */
    int64_t dead_ms;       /* a node whose heartbeat is older is not alive */
    int64_t lease_ms;      /* a lease runs this long after its renewal */
    int64_t margin_ms;     /* the owner stops this long before its lease would run out */
};
/* A round every 250 ms, dead after 1 s, leases of 1.2 s of which the owner writes under
 * the first 0.9 s: a killed owner's hunts are taken ~1.2 s after its last renewal (the
 * failover target is 2 s median); an owner has three renewals to miss before it stops. */
#define NODE_CONFIG_DEFAULT(id_, adv_) {(id_), (adv_), 250, 1000, 1200, 300}

struct node;

/* Starts the node's thread on store s (a handle of its own; the node closes it). The
 * first round (heartbeat, leases) runs before this returns, so that a store that does not
 * answer or does not support several nodes is reported at start: NULL with a message in
 * err. */
struct node *node_start(const struct node_config *c, struct store *s, char *err, size_t cap);
/* Hands over: marks the node draining, releases its leases, stops the thread, closes its
 * store handle, frees n. NULL is a no-op. */
void node_stop(struct node *n);
/* The body of GET /v1/cluster as of the last round (malloc'd JSON text, the caller frees):
 * {"node_id", "nodes": [{"node_id", "advertise", "alive", "hunts_owned"}],
 *  "hunts": [{"hunt", "owner", "epoch", "seq"}]}; NULL when out of memory. */
char *node_cluster_body(struct node *n);
/* 1 with *epoch set when this node holds hunt's lease and may write it now; 0 otherwise. */
int node_owns(struct node *n, const char *hunt, uint64_t *epoch);
/* Takes hunt's lease now, for a hunt that has none yet (a new hunt's first write: it is
 * written under a lease, fenced like any other, from its first event), on s, a handle of
 * the caller's (the event loop's reader: one round trip). 1 with *epoch set and
 * node_owns() saying yes from now on; 0 when another node holds it; or a store error. The
 * node's rounds renew it, and hand it over if placement gives the hunt to another node. */
int node_claim(struct node *n, struct store *s, const char *hunt, uint64_t *epoch);
/* This node's id. */
const char *node_id(const struct node *n);

#endif
