/* log.h — the durable log: group commit of store writes on a writer thread.
 *
 * The event loop fills a log_entry with the rows one request makes durable (its event,
 * its idempotency record, a player...) and submits it. The writer thread takes every
 * entry queued while the previous commit was syncing, writes them in one transaction
 * (one fsync), then hands each entry back to the event loop, in submission order, where
 * its callback sends the response. A response therefore never leaves before its rows are
 * durable. A commit that fails (a full disk, a store that does not answer) is retried
 * until it succeeds, its entries held unanswered; meanwhile log_store_down() is true and
 * callers refuse new writes. Stopping during such an outage exits the process with those
 * entries never acknowledged (a restart rebuilds memory from what is durable). A commit
 * that failed may have landed ("in doubt"): before a retry the log reads back the batch's
 * (hunt, seq) range of every hunt it holds, and a batch that landed is not written again
 * (one the store holds only part of stops the process, unacknowledged). A batch the store
 * fences (several nodes: an event's epoch is no longer its hunt's) loses the entries of
 * the fenced hunts, handed back with STORE_EFENCED, and the rest is written again at once.
 *
 * Manual mode (log_create_manual) is the same log without its thread and event loop, for
 * the deterministic simulator: the caller commits (log_commit_now) and hands entries
 * back (log_deliver) when it chooses, through the same commit code. */
#ifndef VELTRIX_LOG_H
#define VELTRIX_LOG_H
#include "metrics.h"
#include "store.h"

struct log;
struct log_entry;

/* Called on the event loop thread once the entry is durable (status 0), or with
 * STORE_EFENCED when the store refused its event because its hunt's lease moved to
 * another node (several nodes: store_event.epoch is no longer the hunt's); such an entry
 * was not written, and the hunt's memory is ahead of the store. The entry is freed after
 * the callback returns. */
typedef void (*log_done_cb)(void *arg, int status);

struct log_stats {
    uint64_t events;     /* events appended */
    uint64_t entries;    /* entries committed */
    uint64_t batches;    /* transactions */
    uint64_t rejected;   /* submissions refused because the queue was full */
    uint64_t failures;   /* failed commits (retried) */
    uint64_t outages;    /* times the store went from writable to failing */
    uint64_t fenced;     /* entries refused because their hunt's lease moved (STORE_EFENCED) */
    struct metrics_hist batch_entries;
    struct metrics_hist commit_ns; /* the transaction including its fsync */
    struct metrics_hist wait_ns;   /* each batch's oldest entry: submitted -> commit began */
};

/* Called on the event loop for each event of an entry that landed, in seq order within
 * its hunt, before the entry's own callback (several nodes: the owner pushes them to the
 * replicas). ev and its pointers are valid during the call only. */
typedef void (*log_landed_cb)(const struct store_event *ev, void *ctx);

/* loop is the h2o evloop of the thread that submits. queue_max caps queued entries. */
struct log *log_create(struct store *s, void *loop, size_t queue_max);
/* Manual mode: no thread, no event loop; entries wait in the queue until log_commit_now().
 * NULL on out of memory. */
struct log *log_create_manual(struct store *s, size_t queue_max);
/* Threaded: drains the queue, stops the writer thread, frees (every callback has run).
 * Manual: commits nothing and runs no callback: entries not yet handed back are freed as
 * a crash would lose them (their args stay the caller's). */
void log_destroy(struct log *l);
/* Sets the landed callback (NULL: none). */
void log_on_landed(struct log *l, log_landed_cb cb, void *ctx);
/* Manual mode: one turn of the writer. Commits the batch a failed call kept, else every
 * queued entry, in one transaction (a commit in doubt is read back, never rewritten
 * blindly). 0 when that batch is durable (or nothing was queued): its entries wait for
 * log_deliver(). Otherwise the store's error: the batch stays held, unanswered, and the
 * next call retries it alone; log_store_down() is 1 until one succeeds. */
int log_commit_now(struct log *l);
/* Manual mode: runs the callbacks of the committed entries, in submission order, and
 * frees them. Returns how many. */
size_t log_deliver(struct log *l);

struct log_entry *log_entry_create(log_done_cb cb, void *arg);
void log_entry_free(struct log_entry *e);
/* Sets (or replaces) the completion callback of e. */
void log_entry_on_done(struct log_entry *e, log_done_cb cb, void *arg);
/* Each copies what it is given. 0 or -ENOMEM. */
int log_entry_event(struct log_entry *e, const struct store_event *ev);
int log_entry_player(struct log_entry *e, const struct store_player *p);
int log_entry_refresh(struct log_entry *e, const struct store_refresh *r);
/* Deletes refresh rows expired before now_ms (store_prune_refresh), in the transaction. */
int log_entry_prune_refresh(struct log_entry *e, int64_t now_ms);
/* Deletes the idempotency records created before cutoff_ms, in the entry's transaction. */
int log_entry_prune_idem(struct log_entry *e, int64_t cutoff_ms);
int log_entry_idem(struct log_entry *e, const struct store_idem *i);
/* Map tiles: a content-addressed blob, a draft tile row. */
int log_entry_blob(struct log_entry *e, const uint8_t hash[32], const uint8_t *data, size_t len);
int log_entry_tile(struct log_entry *e, const struct store_tile *t);
/* A published map version's manifest (v->data, v->len unused), encoded on the writer
 * thread because it is O(tiles) and the event loop must not stall on it: encode(ctx,
 * &data, &len) gives malloc'd bytes (0, or an error that fails the commit). release(ctx)
 * runs on the event loop thread when the entry is freed; ctx must stay valid and
 * unchanged until then. */
typedef int (*log_encode_fn)(void *ctx, uint8_t **data, size_t *len);
int log_entry_map_version(struct log_entry *e, const struct store_map_version *v,
                          log_encode_fn encode, void (*release)(void *ctx), void *ctx);

/* Queues e (ownership moves to the log). -EAGAIN when the queue is full: e is untouched
 * and still the caller's. */
int log_submit(struct log *l, struct log_entry *e);
/* 1 while a commit is failing and being retried (the store is unavailable). */
int log_store_down(const struct log *l);
/* Entries submitted and not yet handed back. */
size_t log_pending(const struct log *l);
/* How long the oldest entry not yet durable has been waiting, in ms (0 when none). */
uint64_t log_lag_ms(const struct log *l);
const struct log_stats *log_stats(const struct log *l);

#endif
