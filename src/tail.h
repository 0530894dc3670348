/* tail.h — a replica's reads of the store's log, off the event loop (issue 15 item 4,
 * docs/DESIGN.md "Several nodes").
 *
 * Several nodes: every node follows the hunts it does not own by reading their committed
 * events from the store. Those reads run here, on a thread of their own with a store
 * handle of its own, so that a slow or unreachable store never stalls the event loop:
 * the loop asks (tail_fetch: a hunt and the first seq it lacks), the thread reads the
 * hunt's events from that seq in one consistent walk (at most TAIL_ROWS_MAX of them) and
 * hands them back to the loop (the done callback, on the loop), where they are applied;
 * with them, the players they name that it did not hand back before (tail_player) and the
 * tiles of the map version they publish (tail_map), so that the loop reads neither.
 *
 * The answer doubles as ReadIndex: a fetch sent after a read arrived returns every event
 * committed before it was sent (the walk starts later), so once its events are applied the
 * read sees every write the owner acknowledged before the read came (the owner answers a
 * write only once it is durable).
 *
 * Invariants: fetches and jobs are answered in the order they were asked, each exactly
 * once (tail_destroy drops the fetches still queued, unanswered, and tells the jobs); the done callback runs on the loop
 * only. The store handle belongs to the thread until tail_destroy, which closes it. */
#ifndef VELTRIX_TAIL_H
#define VELTRIX_TAIL_H
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define TAIL_ROWS_MAX 4096 /* events per fetch; more: tail_result.more */

struct tail;

/* One fetch's answer, valid during the done callback. */
struct tail_result {
    const char *hunt;
    uint64_t from;   /* the first seq asked for */
    uint64_t tag;    /* the caller's, from tail_fetch */
    int rc;          /* 0, or a store error (store_err_str): the events read before it */
    int more;        /* 1: stopped at TAIL_ROWS_MAX, the hunt may have more */
    size_t n;        /* events, in seq order */
    size_t n_players; /* players of those events this thread had not handed back before */
};
typedef void (*tail_done_cb)(const struct tail_result *res, void *ctx);

/* Starts the thread; s becomes its own. NULL (s closed) when out of memory or the thread
 * cannot start. */
struct tail *tail_create(void *loop, struct store *s, tail_done_cb done, void *ctx);
/* Asks for hunt's events from seq from. 0, or -1 when out of memory (nothing asked). */
int tail_fetch(struct tail *t, const char *hunt, uint64_t from, uint64_t tag);
/* A job on the thread's store handle (several nodes: a player read, a refresh token's
 * rotation: statements that would otherwise wait for the store on the event loop).
 * run(store, arg) runs on the thread, in order with the fetches; done(arg, ran) on the
 * loop afterwards, ran = 1. tail_destroy calls done(arg, 0) for a job that has not run
 * or not come back yet (run may have run: its effects stand, its answer is lost). */
typedef void (*tail_job_run)(struct store *s, void *arg);
typedef void (*tail_job_done)(void *arg, int ran);
/* 0, or -1 when out of memory (nothing asked, done not called). */
int tail_job(struct tail *t, tail_job_run run, tail_job_done done, void *arg);
/* Player i of res (0 <= i < res->n_players), pointing into res. The thread reads the
 * player of every event it hands back unless it handed that player back before (once
 * per player: the loop keeps what it is given), so that a replica learns the players
 * created on other nodes without reading the store on the loop. */
void tail_player(const struct tail_result *res, size_t i, struct store_player *p);
/* The tiles of the map version that the event at seq of res publishes: the thread reads
 * them with the events (tiles_read_version), so that the loop can put the version in
 * place without reading the store (tiles_follow_read). 0 with *tiles set; 1: a later
 * event of res publishes a newer version (nothing read for this one); or the TILES_ error
 * the read gave (TILES_ENOVERSION also when seq is no map event of res). */
struct tiles_read;
int tail_map(const struct tail_result *res, uint64_t seq, const struct tiles_read **tiles);
/* Event i of res (0 <= i < res->n), pointing into res. */
void tail_event(const struct tail_result *res, size_t i, struct store_event *ev);
/* Fetches asked and not answered yet. */
size_t tail_pending(const struct tail *t);
/* Stops the thread (a fetch being read finishes first, bounded by the store's timeout),
 * drops the fetches not answered, closes the store. NULL is a no-op. */
void tail_destroy(struct tail *t);

#endif
