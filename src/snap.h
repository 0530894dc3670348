/* snap.h — background snapshots of hunts, like Redis's BGSAVE.
 *
 * When a hunt has advanced `every` events past its last snapshot, the event loop forks;
 * the child (a copy-on-write image of memory at that instant) encodes the hunt with
 * engine_snapshot_encode, writes it down a pipe and exits. A thread of the parent reads
 * it, checks its header and checksum, waits until the log has made that seq durable
 * (a snapshot is never ahead of the log), and stores it through its own store handle.
 * The event loop pays only for fork() itself (copying page tables: its duration is the
 * `fork_seconds` metric); the child never touches SQLite, h2o or stdio, so the log
 * writer thread and the store handles are safe. One snapshot runs at a time. */
#ifndef VELTRIX_SNAP_H
#define VELTRIX_SNAP_H
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

struct hunt;
struct snap; /* opaque */

struct snap_stats {
    uint64_t taken, failed;
    uint64_t last_seq, last_bytes;
    uint64_t last_ns;      /* fork to stored */
    uint64_t last_fork_ns; /* the event loop's pause */
    uint64_t max_fork_ns;
};

/* every = 0 turns snapshots off. Takes ownership of store (a handle used only by the
 * snapshot thread). NULL when out of memory or the thread cannot start. */
struct snap *snap_create(struct store *store, uint64_t every);
/* Waits for a running snapshot to be stored (or fail), stops the thread, closes the
 * store handle. Call after the log is drained, so the wait for durability ends. */
void snap_destroy(struct snap *s);
/* Tells s that hunt's newest snapshot (restored at startup) is at seq. */
int snap_loaded(struct snap *s, const char *hunt, uint64_t seq);
/* Called on the event loop after an event of h was applied: starts a snapshot of h when
 * it is `every` events past its last one and no snapshot is running. */
void snap_after_event(struct snap *s, const struct hunt *h);
/* A copy of the counters (they are updated by the snapshot thread). */
void snap_get_stats(struct snap *s, struct snap_stats *out);
void snap_render_metrics(struct snap *s, struct metrics_buf *b);

#endif
