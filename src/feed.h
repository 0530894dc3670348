/* feed.h — several nodes: the owner pushes each hunt's committed events to the other nodes,
 * whose replicas apply them at once instead of waiting for their next look at the store
 * (issue 15 item 4: "streamed from the owner with the store as the catch-up path").
 *
 * Sending (the owner): every event that lands in the store on this node (log_on_landed)
 * is encoded and queued for each live peer of the view; at the end of the loop's turn
 * each peer's queue goes out as one signed POST /v1/cluster/events (forward_post), at
 * most one in flight per peer, so a peer gets the events in the order they landed. A queue
 * over FEED_QUEUE_MAX (a slow or unreachable peer) is dropped whole: that peer's replicas
 * find the gap and read the store (they do anyway every poll).
 *
 * Receiving (a replica): api_cluster.c checks the request like a forwarded one, parses the
 * whole body first (feed_parse: a malformed body changes nothing), then applies each
 * event that continues its hunt's memory (seq = memory's + 1); an older one is skipped, a
 * newer one (a gap) sends the hunt to the store.
 *
 * The body: records, each
 *   u8 hunt length, hunt, u64 seq, i64 time_ms, u8 type, 16 bytes player,
 *   u8 has_hash, 32 bytes hash, u32 data length, data
 * integers big-endian. Event loop only. */
#ifndef VELTRIX_FEED_H
#define VELTRIX_FEED_H
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

#define FEED_PATH "/v1/cluster/events"
#define FEED_QUEUE_MAX (8u << 20) /* bytes queued for one peer; more: the queue is dropped */
#define FEED_BODY_MAX (16u << 20) /* the receiving route's body limit */

struct feed;
struct forward;

/* NULL when out of memory. f must outlive the feed's use, and be destroyed before it
 * (forward_destroy fails the posts in flight, whose callbacks reach the feed). */
struct feed *feed_create(void *loop, struct forward *f);
void feed_destroy(struct feed *fd);
/* An event that landed on this node: queued for every live peer (log_on_landed). */
void feed_event(struct feed *fd, const struct store_event *ev);
/* veltrix_feed_* metrics. */
void feed_render_metrics(struct feed *fd, struct metrics_buf *b);

/* Calls cb for each event of a pushed body, in order (its pointers point into body);
 * cb's non-zero stops. 0, cb's value, or -1 when the body is malformed (cb may have been
 * called for the records before the fault: check first with cb NULL). */
int feed_parse(const void *body, size_t len, int (*cb)(const struct store_event *ev, void *ctx),
               void *ctx);

#endif
