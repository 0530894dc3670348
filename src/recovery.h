/* recovery.h — hunts back from the store at start: each hunt's newest snapshot, then its
 * log from the snapshot's seq + 1, every event decoded and applied through the same
 * engine_apply() as live writes. No HTTP and no global state: the server (api.c) and the
 * simulator (tests/sim) run this same code.
 *
 * A snapshot that does not decode, or whose seq disagrees with its row, stops recovery
 * (with a message naming the hunt and suggesting --ignore-snapshots). A log that ends
 * before its hunt's snapshot is corruption under --fsync always; otherwise (a power
 * failure lost the log's tail while the snapshot survived) the log is the truth: the
 * snapshot is deleted and the hunt replayed from seq 1, with a warning. */
#ifndef VELTRIX_RECOVERY_H
#define VELTRIX_RECOVERY_H
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "store.h"

struct recovery_config {
    int ignore_snapshots; /* replay every log from seq 1 */
    int fsync_always;     /* a snapshot ahead of its log is corruption, not a lost tail */
};

struct recovery_stats {
    uint64_t events;  /* events replayed */
    size_t hunts;     /* hunts recovered */
    size_t snapshots; /* of them, restored from a snapshot */
};

/* Called for each recovered hunt (ownership moves to the callee); from is the seq its log
 * replay began after (its snapshot's, or 0). Non-zero stops recovery (returned as is). */
typedef int (*recovery_hunt_cb)(struct hunt *h, uint64_t from, void *ctx);

/* Recovers hunt id from reader: 0 with *out set, or -1 with a message in err. */
int recovery_load_hunt(struct store *reader, const struct recovery_config *cfg, const char *id,
                       struct hunt **out, uint64_t *from, struct recovery_stats *st, char *err,
                       size_t errcap);
/* Every hunt of the store, in the store's order. 0, or -1 (or cb's value) with err set. */
int recovery_load_hunts(struct store *reader, const struct recovery_config *cfg,
                        recovery_hunt_cb cb, void *ctx, struct recovery_stats *st, char *err,
                        size_t errcap);

/* Several nodes, a replica: what is called after each event applied, with its outcome. */
typedef void (*recovery_event_cb)(struct hunt *h, const struct event *ev,
                                  const struct engine_outcome *out, void *ctx);
/* One event of h's log, the next after engine_seq(h): decoded, applied, its stored hash
 * checked, then cb (when not NULL). 0, or -1 with a message in err (h unchanged unless the
 * hash disagreed: then it holds the event). */
int recovery_apply(struct hunt *h, const struct store_event *se, recovery_event_cb cb, void *ctx,
                   char *err, size_t errcap);
/* Applies the store's events of h after engine_seq(h), in seq order, calling cb (when not
 * NULL) after each. Returns how many, or -1 with a message in err (the store failed, or an
 * event does not apply: h is then at the last one that did). */
int64_t recovery_catch_up(struct store *reader, struct hunt *h, recovery_event_cb cb, void *ctx,
                          char *err, size_t errcap);

#endif
