/* feed.h — several nodes: the owner pushes each hunt's committed events to the other nodes,
 * whose replicas apply them at once instead of waiting for their next look at the store
 * (issue 15 item 4: "streamed from the owner with the store as the catch-up path").
 *
 * Sending (the owner): every event that lands in the store on this node (log_on_landed)
 * is encoded and queued for each live peer of the view; at the end of the loop's turn
 * each peer's queue goes out in signed POSTs /v1/cluster/events (forward_post) of at most
 * FEED_POST_MAX bytes, one in flight per peer, so a peer gets the events in the order
 * they landed. A queue
 * over FEED_QUEUE_MAX (a slow or unreachable peer) is dropped whole: that peer's replicas
 * find the gap and read the store (they do anyway every poll).
 *
 * Receiving (a replica): api_cluster.c checks the request like a forwarded one, parses the
 * whole body first (feed_parse: a malformed body changes nothing), then applies each
 * event that continues its hunt's memory (seq = memory's + 1); an older one is skipped, a
 * newer one (a gap) sends the hunt to the store.
 *
 * Revocations travel the same way (feed_revocation): a node that revoked a player's
 * sessions (a refresh token reused) tells every peer the player's new session generation,
 * so the old access tokens are refused everywhere at once, not at their expiry.
 *
 * The body: records, integers big-endian, each either an event
 *   u8 hunt length (1-255), hunt, u64 seq, i64 time_ms, u8 type, 16 bytes player,
 *   u8 has_hash, 32 bytes hash, u32 data length, data
 * or a revocation
 *   u8 0, 16 bytes player, u32 generation.
 * Event loop only. */
#ifndef VELTRIX_FEED_H
#define VELTRIX_FEED_H
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

#define FEED_PATH "/v1/cluster/events"
#define FEED_QUEUE_MAX (8u << 20) /* bytes queued for one peer; more: the queue is dropped */
#define FEED_POST_MAX (60u << 10) /* whole records per post, under the 64 KiB that a request
                                   * without the admin key may carry (http.h); a record
                                   * larger alone (a big hunt definition) is not pushed:
                                   * the peers find the gap and read the store */

struct feed;
struct forward;

/* NULL when out of memory. f must outlive the feed's use, and be destroyed before it
 * (forward_destroy fails the posts in flight, whose callbacks reach the feed). */
struct feed *feed_create(void *loop, struct forward *f);
void feed_destroy(struct feed *fd);
/* An event that landed on this node: queued for every live peer (log_on_landed). */
void feed_event(struct feed *fd, const struct store_event *ev);
/* A player's sessions revoked here (their generation is now gen): queued for every live
 * peer. */
void feed_revocation(struct feed *fd, const uint8_t player[16], uint32_t gen);
/* veltrix_feed_* metrics. */
void feed_render_metrics(struct feed *fd, struct metrics_buf *b);

/* Calls on_event for each event of a pushed body and on_revoked for each revocation, in
 * order (pointers point into body); a non-zero return stops. 0, that value, or -1 when the
 * body is malformed (the callbacks may have run for the records before the fault: check
 * first with both NULL). */
int feed_parse(const void *body, size_t len,
               int (*on_event)(const struct store_event *ev, void *ctx),
               int (*on_revoked)(const uint8_t player[16], uint32_t gen, void *ctx), void *ctx);

#endif
