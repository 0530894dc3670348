/* api.h — the HTTP API of API.md: routes, authentication, idempotency, and the glue
 * between requests, the engine (one state machine per hunt) and the durable log.
 *
 * Writes follow one path: authenticate, check the idempotency key, let the engine decide
 * and apply the command in memory, build the response, then submit the event (and the
 * idempotency record, in the same transaction) to the log; the response leaves only
 * when the log says it is durable. */
#ifndef VELTRIX_API_H
#define VELTRIX_API_H
#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"
#include "live.h"
#include "store.h"

struct api_config {
    const char *admin_key;
    const char *data_dir;
    int metrics_public;        /* 0: /metrics needs the admin key or metrics_token */
    const char *metrics_token; /* NULL: none */
    int64_t token_ttl_s;
    int64_t refresh_ttl_s;
    size_t queue_max;   /* log entries in flight before writes get 503 */
    size_t idem_max;    /* idempotency entries kept in memory */
    int64_t idem_retention_ms;
    size_t hunts_max;
    size_t players_max;
    struct rl_config limits; /* rate limits and the position check */
    size_t tiles_bytes_max;     /* distinct tile bytes in memory (503 tile_limit beyond) */
    unsigned map_versions_kept; /* published map versions readable with ?v= */
    struct live_config live;
    struct snap *snap;       /* background snapshots (may be NULL: none) */
    int ignore_snapshots;    /* recovery replays every log from seq 1 */
    int fsync_always;        /* --fsync always: a snapshot ahead of the log is corruption */
    struct node *node;       /* one of several nodes (node.h), or NULL: a single node */
    const char *advertise;   /* the URL this server is reached at (GET /v1/cluster) */
    int feed_push;           /* several nodes: push committed events to the other nodes'
                              * replicas (feed.h); 0: they only read the store */
    uint64_t replica_poll_ms; /* several nodes: each replica hunt read from the store this
                               * often (the catch-up path under a push) */
    struct store *follower;  /* several nodes: a store handle of its own for the replica
                              * thread (tail.h), which closes it; NULL on a single node */
    const uint8_t *cluster_secret; /* several nodes: the 32 bytes they share (tokens, QR
                                    * payloads, forwarding), or NULL: the data directory's
                                    * secret.key (a single node) */
};

struct net;
struct log;
struct node;

/* Loads players, refresh tokens, idempotency records and every hunt (its newest snapshot,
 * then its log from the snapshot's seq + 1) from the store (reader handle), and installs
 * the routes. Returns 0, or -1 with a message in err naming what could not be recovered
 * (a corrupt event or snapshot stops startup). */
int api_init(const struct api_config *cfg, struct store *reader, struct log *log,
             struct net *net, char *err, size_t errcap);
/* Requests forwarded to other nodes and not answered yet (several nodes; 0 otherwise). */
size_t api_forwards_in_flight(void);
/* Defines the demo hunt if it does not exist; the write goes through the log. */
int api_create_demo(char *err, size_t errcap);
void api_deinit(void);
/* The position check of POST /position, for other position sources (WebSocket clients):
 * RL_OK (the position is remembered as the player's last in that hunt) or RL_IMPLAUSIBLE
 * (counted in veltrix_implausible_moves_total). */
int api_move_check(const uint8_t player[16], const char *hunt_id, double x, double y);

#endif
