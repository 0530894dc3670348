/* live.h — the live stream of a hunt (API.md "Live stream"): fan-out of durable events,
 * positions and the top 10 to WebSocket subscribers.
 *
 * Durable events: api.c has live encode each event once, when the engine applies it
 * (live_event_frame: the whole WebSocket frame, reference counted), and publishes it once
 * the log says it is durable (live_publish), in seq order. The same bytes are queued on
 * every subscriber and kept in a bounded window of recent events per hunt.
 * Resumes (`since=`) are served in slices, per connection, interleaved with the rest of
 * the loop: at most replay_slice_bytes per connection per loop turn, the next slice once
 * its socket took the last, at most replay_turn_bytes of replay work per turn in all;
 * the connection gets no live events until it has caught up, then all of them, so
 * nothing is missed or repeated. Events older than the window come from the hunt's
 * archive, the frames its log gives when replayed into a scratch engine (the messages
 * carry outcomes such as scores, which the log does not hold), built on demand a page at
 * a time and shared by the hunt's resumes, for hunts of at most replay_events_max events.
 * A `since` ahead of the hunt or older than what is kept gets {"type":"resync","seq":N}.
 * Positions are thinned per player and dropped first when a connection's queue is half
 * full; the top 10 is pushed when it changes, coalesced by a timer. A subscriber whose
 * queue would go over its cap gets {"type":"resync"} and is closed. Event loop thread
 * only. */
#ifndef VELTRIX_LIVE_H
#define VELTRIX_LIVE_H
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "metrics.h"
#include "store.h"
#include "ws.h"

struct live_config {
    size_t window_events;    /* --live-window: recent events kept per hunt for since= */
    size_t queue_bytes_max;  /* --live-queue-bytes: per-connection output cap */
    uint64_t ping_ms;        /* --live-ping-ms: keepalive interval */
    uint64_t leaderboard_ms; /* top-10 pushes at most this often per hunt */
    uint64_t position_ms;    /* a player's positions at most this often (200: 5/s) */
    int sndbuf_bytes;        /* SO_SNDBUF of live sockets */
    uint64_t replay_events_max; /* --live-replay-max: largest hunt replayed from the store */
    size_t replay_slice_bytes;  /* --live-replay-slice-bytes: per connection per loop turn */
    size_t replay_turn_bytes;   /* --live-replay-turn-bytes: all resumes per loop turn */
    uint64_t replay_keep_ms;    /* --live-replay-keep-ms: archive kept after its last resume */
};
#define LIVE_REPLAY_SLICE_BYTES (64 * 1024) /* the defaults (0 in live_config) */
#define LIVE_REPLAY_TURN_BYTES (256 * 1024)

/* A player's display name (for scan events and the leaderboard); "" when unknown. */
typedef const char *(*live_name_fn)(const uint8_t player[16], void *ctx);

struct live;

/* loop: the h2o evloop; reader: a store handle of this thread (resumes past the window).
 * NULL when out of memory. */
struct live *live_create(void *loop, struct store *reader, const struct live_config *cfg,
                         live_name_fn name, void *name_ctx);
/* Closes every live connection and frees everything. */
void live_destroy(struct live *l);
/* Checks a position a client sent over the live socket (the same speed check as POST
 * .../position): 0 to accept it, anything else drops it. Without one, all are accepted. */
typedef int (*live_move_fn)(const uint8_t player[16], const char *hunt, double x, double y);
void live_set_move_check(struct live *l, live_move_fn fn);

/* The message for an event of hunt h that the engine has just applied (out: its outcome,
 * may be NULL for events without one), framed; one reference for the caller, to hand to
 * live_publish once durable. NULL when out of memory. */
struct ws_buf *live_event_frame(struct live *l, struct hunt *h, const struct event *ev,
                                const struct engine_outcome *out);
/* Sends frame (ownership moves) to every subscriber of h and keeps it in h's window.
 * Frames must come in seq order, each seq once. */
void live_publish(struct live *l, struct hunt *h, struct ws_buf *frame);

/* Takes over sock (from http_upgrade_websocket) as a subscriber of h for player. since:
 * the last seq the client has, or -1 for live events only. -1 when out of memory (the
 * socket is then closed). */
int live_subscribe(struct live *l, struct hunt *h, void *sock, const uint8_t player[16],
                   int64_t since);
/* A player's position (validated by the caller), thinned and broadcast. */
void live_position(struct live *l, struct hunt *h, const uint8_t player[16], double x, double y);

size_t live_connections(const struct live *l, const struct hunt *h);
/* h's memory was rebuilt from the store at seq (several nodes: a fenced owner held events
 * that never landed, and others wrote seqs it never published): the published seq
 * becomes seq, the window is emptied, and each subscriber catches up from the last seq
 * it had, out of the store (the archive), as with since= (a resync when that is not
 * possible: the hunt is over replay_events_max, or seq is behind what was published).
 * Nothing when h has no live state or seq is what was published. */
void live_rebase(struct live *l, struct hunt *h, uint64_t seq);
void live_render_metrics(const struct live *l, struct metrics_buf *b);

#endif
