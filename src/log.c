/* log.c — group commit (see log.h).
 *
 * Entries move: event loop --(turn list, then mutex queue)--> writer --(h2o multithread
 * message, one per batch)--> event loop. Entries submitted during one turn of the event
 * loop are handed to the writer together at the end of that turn (a zero-delay h2o
 * timeout), with one mutex operation and at most one wake-up: a writer woken by the first
 * request of a turn would commit it alone and make the rest of the turn wait a whole
 * fsync. The writer never blocks the loop. Invariant: entries are handed back in the
 * order they were submitted, so the responses of one hunt go out in seq order.
 *
 * Manual mode (log_create_manual, for the simulator) has no thread and no loop: entries
 * queue straight for the writer, log_commit_now() is one turn of the writer's loop run by
 * the caller, log_deliver() is the loop's side. Both modes commit through the same
 * functions (batch_start, attempt, write_batch, failed, landed); only the waiting
 * differs: the writer sleeps and retries a failing batch, manual mode returns the error
 * and keeps the batch for the next call.
 *
 * A commit that fails may have landed ("in doubt": the connection was lost before
 * COMMIT's answer). Such a batch is never written again blindly: its events' (hunt, seq)
 * are taken if it landed, so the rewrite would fail for ever. It is read back first
 * (landed_already: every hunt's range of seqs, row by row), before anyone is answered:
 * landed, its entries are acknowledged; absent, it is written again; partly there or
 * other rows at its seqs (another writer), the process stops unacknowledged, except for
 * a hunt whose events carry a lease epoch (several nodes): other rows at their seqs are
 * its next owner's, so those entries are fenced out as a fence would have done.
 *
 * Invariants: an entry is handed back with status 0 only once its rows are read back or
 * committed, and with STORE_EFENCED only when the store refused it in a transaction that
 * rolled back; a batch is never both written again and present; while a batch fails, the
 * queue cap (log_submit's -EAGAIN) bounds what waits behind it. */
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <h2o.h>
#include <h2o/multithread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "vx.h"

enum op_kind {
    OP_EVENT, OP_PLAYER, OP_REFRESH, OP_IDEM, OP_BLOB, OP_TILE, OP_MAPVER, OP_PRUNE_IDEM,
    OP_PRUNE_REFRESH
};

struct op {
    enum op_kind kind;
    union {
        struct store_event ev;
        struct store_player pl;
        struct store_refresh rt;
        struct store_idem idem;
        struct {
            uint8_t hash[32];
            const uint8_t *data;
            size_t len;
        } blob;
        struct store_tile tile;
        struct {
            struct store_map_version v;
            log_encode_fn encode;
            void (*release)(void *ctx);
            void *ctx;
        } mapver;
        int64_t cutoff_ms; /* the prunes */
    } u;
    void *mem[4]; /* copies owned by the op */
};

struct log_entry {
    h2o_multithread_message_t msg;
    struct log_entry *next;      /* writer queue and batch (under mu / writer-owned) */
    struct log_entry *loop_next; /* in-flight FIFO, touched by the event loop only */
    log_done_cb cb;
    void *arg;
    int status;
    uint64_t submitted_ns;
    size_t n_ops;
    struct op ops[5]; /* the most: two refresh rows and their prune, idem and its prune */
};

/* A batch being committed: its entries (linked by next) and what its attempts learnt. */
struct batch {
    struct log_entry *head;
    size_t n;
    int doubt;         /* a commit failed and may have landed: read back before writing */
    unsigned failures; /* failed attempts */
    uint64_t t0_ns, logged_ns;
};

struct log {
    struct store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct log_entry *head, *tail; /* queued for the writer */
    size_t queued, queue_max, in_flight; /* queued: under mu, read atomically by the loop */
    struct log_entry *turn_head, *turn_tail; /* submitted this turn (event loop only) */
    size_t turn_n;
    h2o_loop_t *loop;
    h2o_timeout_t turn_timeout; /* 0 ms: runs at the end of the current loop turn */
    h2o_timeout_entry_t turn_tick;
    struct log_entry *inflight_head, *inflight_tail; /* event loop only */
    int stop;  /* atomic: read by the writer while it retries */
    int down;  /* atomic: the last commit failed and is being retried */
    h2o_multithread_queue_t *mq;
    h2o_multithread_receiver_t receiver;
    struct log_stats stats;
    int manual;          /* log_create_manual: no thread, no loop */
    struct batch held;   /* manual: the batch a failed log_commit_now() keeps (head NULL: none) */
    h2o_linklist_t done; /* manual: committed batches not yet handed back */
    log_landed_cb landed; /* each durable event, on the loop (NULL: none) */
    void *landed_ctx;
};

#define BATCH_MAX 8192

struct log_entry *log_entry_create(log_done_cb cb, void *arg)
{
    struct log_entry *e = calloc(1, sizeof *e);
    if (e) {
        e->cb = cb;
        e->arg = arg;
    }
    return e;
}

void log_entry_on_done(struct log_entry *e, log_done_cb cb, void *arg)
{
    e->cb = cb;
    e->arg = arg;
}

void log_entry_free(struct log_entry *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n_ops; i++) {
        for (size_t j = 0; j < sizeof e->ops[i].mem / sizeof e->ops[i].mem[0]; j++)
            free(e->ops[i].mem[j]);
        if (e->ops[i].kind == OP_MAPVER && e->ops[i].u.mapver.release)
            e->ops[i].u.mapver.release(e->ops[i].u.mapver.ctx);
    }
    free(e);
}

static struct op *add_op(struct log_entry *e, enum op_kind kind)
{
    if (e->n_ops == sizeof e->ops / sizeof e->ops[0]) return NULL;
    struct op *op = &e->ops[e->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

/* Copies len bytes into op->mem[slot]; NULL on failure. */
static void *dup_mem(struct op *op, int slot, const void *p, size_t len)
{
    op->mem[slot] = malloc(len + 1);
    if (!op->mem[slot]) return NULL;
    if (len) memcpy(op->mem[slot], p, len);
    ((char *)op->mem[slot])[len] = '\0';
    return op->mem[slot];
}

int log_entry_event(struct log_entry *e, const struct store_event *ev)
{
    struct op *op = add_op(e, OP_EVENT);
    if (!op) return -ENOMEM;
    op->u.ev = *ev;
    op->u.ev.hunt = dup_mem(op, 0, ev->hunt, strlen(ev->hunt));
    op->u.ev.data = dup_mem(op, 1, ev->data, ev->data_len);
    return op->u.ev.hunt && op->u.ev.data ? 0 : -ENOMEM;
}

int log_entry_player(struct log_entry *e, const struct store_player *p)
{
    struct op *op = add_op(e, OP_PLAYER);
    if (!op) return -ENOMEM;
    op->u.pl = *p;
    op->u.pl.display_name = dup_mem(op, 0, p->display_name, strlen(p->display_name));
    return op->u.pl.display_name ? 0 : -ENOMEM;
}

int log_entry_prune_idem(struct log_entry *e, int64_t cutoff_ms)
{
    struct op *op = add_op(e, OP_PRUNE_IDEM);
    if (!op) return -ENOMEM;
    op->u.cutoff_ms = cutoff_ms;
    return 0;
}

int log_entry_prune_refresh(struct log_entry *e, int64_t now_ms)
{
    struct op *op = add_op(e, OP_PRUNE_REFRESH);
    if (!op) return -ENOMEM;
    op->u.cutoff_ms = now_ms;
    return 0;
}

int log_entry_refresh(struct log_entry *e, const struct store_refresh *r)
{
    struct op *op = add_op(e, OP_REFRESH);
    if (!op) return -ENOMEM;
    op->u.rt = *r;
    return 0;
}

int log_entry_idem(struct log_entry *e, const struct store_idem *i)
{
    struct op *op = add_op(e, OP_IDEM);
    if (!op) return -ENOMEM;
    op->u.idem = *i;
    op->u.idem.scope = dup_mem(op, 0, i->scope, strlen(i->scope));
    op->u.idem.key = dup_mem(op, 1, i->key, strlen(i->key));
    op->u.idem.body = dup_mem(op, 2, i->body, i->body_len);
    if (i->hunt && !(op->u.idem.hunt = dup_mem(op, 3, i->hunt, strlen(i->hunt)))) return -ENOMEM;
    return op->u.idem.scope && op->u.idem.key && op->u.idem.body ? 0 : -ENOMEM;
}

int log_entry_blob(struct log_entry *e, const uint8_t hash[32], const uint8_t *data, size_t len)
{
    struct op *op = add_op(e, OP_BLOB);
    if (!op) return -ENOMEM;
    memcpy(op->u.blob.hash, hash, 32);
    op->u.blob.len = len;
    op->u.blob.data = dup_mem(op, 0, data, len);
    return op->u.blob.data ? 0 : -ENOMEM;
}

int log_entry_tile(struct log_entry *e, const struct store_tile *t)
{
    struct op *op = add_op(e, OP_TILE);
    if (!op) return -ENOMEM;
    op->u.tile = *t;
    op->u.tile.hunt = dup_mem(op, 0, t->hunt, strlen(t->hunt));
    op->u.tile.ctype = dup_mem(op, 1, t->ctype, strlen(t->ctype));
    return op->u.tile.hunt && op->u.tile.ctype ? 0 : -ENOMEM;
}

int log_entry_map_version(struct log_entry *e, const struct store_map_version *v,
                          log_encode_fn encode, void (*release)(void *ctx), void *ctx)
{
    struct op *op = add_op(e, OP_MAPVER);
    if (!op) return -ENOMEM;
    op->u.mapver.v = *v;
    op->u.mapver.encode = encode;
    op->u.mapver.release = release;
    op->u.mapver.ctx = ctx;
    op->u.mapver.v.hunt = dup_mem(op, 0, v->hunt, strlen(v->hunt));
    return op->u.mapver.v.hunt ? 0 : -ENOMEM;
}

/* Writer thread: encodes the manifest now, writes it, frees the bytes. */
static int write_map_version(struct store *s, const struct op *op)
{
    struct store_map_version v = op->u.mapver.v;
    uint8_t *data = NULL;
    if (op->u.mapver.encode(op->u.mapver.ctx, &data, &v.len)) return STORE_EIO;
    v.data = data;
    int rc = store_put_map_version(s, &v);
    free(data);
    return rc;
}

static int write_op(struct store *s, const struct op *op)
{
    switch (op->kind) {
    case OP_EVENT: return store_put_event(s, &op->u.ev);
    case OP_PLAYER: return store_put_player(s, &op->u.pl);
    case OP_REFRESH: return store_put_refresh(s, &op->u.rt);
    case OP_IDEM: return store_put_idem(s, &op->u.idem);
    case OP_BLOB: return store_put_blob(s, op->u.blob.hash, op->u.blob.data, op->u.blob.len);
    case OP_TILE: return store_put_tile(s, &op->u.tile);
    case OP_MAPVER: return write_map_version(s, op);
    case OP_PRUNE_IDEM: return store_prune_idem(s, op->u.cutoff_ms);
    case OP_PRUNE_REFRESH: return store_prune_refresh(s, op->u.cutoff_ms);
    }
    return STORE_EIO;
}

/* One transaction for the whole batch. *doubt is set when the commit itself failed: the
 * rows may have landed all the same. */
static int write_batch(struct log *l, struct log_entry *batch, int *doubt)
{
    int rc = store_begin(l->store);
    for (struct log_entry *e = batch; !rc && e; e = e->next)
        for (size_t i = 0; !e->status && !rc && i < e->n_ops; i++)
            rc = write_op(l->store, &e->ops[i]);
    if (!rc && (rc = store_commit(l->store)) != 0) *doubt = 1;
    if (rc) store_rollback(l->store);
    return rc;
}

/* The read-back of a batch in doubt, hunt by hunt: ev[0..n) are the batch's events of
 * one hunt in seq order; the store's events from ev[0]'s seq on are walked and matched. */
struct readback {
    const struct store_event *const *ev;
    size_t n, next;       /* next: the first not yet matched */
    size_t found, differ; /* present and the same; present with other contents */
};

static int same_event(const struct store_event *a, const struct store_event *b)
{
    return a->time_ms == b->time_ms && a->type == b->type && a->data_len == b->data_len &&
           !memcmp(a->player, b->player, 16) && !memcmp(a->data, b->data, a->data_len);
}

static int readback_row(const struct store_event *row, void *arg)
{
    struct readback *r = arg;
    while (r->next < r->n && r->ev[r->next]->seq < row->seq) r->next++; /* absent */
    if (r->next == r->n) return 1;
    if (r->ev[r->next]->seq == row->seq) {
        if (same_event(r->ev[r->next], row)) r->found++;
        else r->differ++;
        r->next++;
    }
    return r->next == r->n;
}

static int by_hunt_seq(const void *x, const void *y)
{
    const struct store_event *a = *(const struct store_event *const *)x,
                             *b = *(const struct store_event *const *)y;
    int c = strcmp(a->hunt, b->hunt);
    return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

/* The entries of batch with an event of one of hunts[0..nh) get STORE_EFENCED (they are
 * handed back unwritten: the API answers 503 hunt_moving). Returns how many. */
static size_t fence_hunts(struct log *l, struct log_entry *batch, const char *const *hunts,
                          size_t nh)
{
    size_t n = 0;
    for (struct log_entry *e = batch; e; e = e->next)
        for (size_t i = 0; !e->status && i < e->n_ops; i++) {
            if (e->ops[i].kind != OP_EVENT) continue;
            for (size_t j = 0; j < nh && !e->status; j++)
                if (!strcmp(hunts[j], e->ops[i].u.ev.hunt)) e->status = STORE_EFENCED;
            n += e->status != 0;
        }
    metrics_inc(&l->stats.fenced, n);
    return n;
}

/* After a commit in doubt: 1 when the batch landed, 0 when not, or the store's error (still
 * in doubt). STORE_ECORRUPT when the store holds part of it, or other rows at its (hunt,
 * seq): a transaction lands whole, so another writer did that. When none of it landed,
 * a hunt whose events all carry a lease epoch and whose seqs hold other rows moved to
 * another owner while the commit was in doubt (the fence refused it, or it never reached
 * the store): its entries get STORE_EFENCED, and the rest is written again.
 *
 * Every event of the batch is looked for: its hunt's range of seqs is read back, hunt by
 * hunt, and compared row by row. The batch's other rows (players, tokens, idempotency
 * records, tiles, prunes) were in the same transaction, so the events' verdict is theirs.
 * A batch without events is written again: its rows are upserts or deletions of the
 * batch's own values, the same done twice (and nothing else wrote in between: this
 * writer is the store's only one and it is still on this batch). The store's session that
 * sent the lost COMMIT is gone before this runs (store_pg.c ends it on reconnecting), so
 * the read-back is final. */
static int landed_already(struct log *l, struct log_entry *batch)
{
    size_t n = 0, k = 0, found = 0, differ = 0;
    for (const struct log_entry *e = batch; e; e = e->next)
        for (size_t i = 0; !e->status && i < e->n_ops; i++) n += e->ops[i].kind == OP_EVENT;
    if (!n) return 0;
    const struct store_event **ev = malloc(n * sizeof *ev);
    if (!ev) return STORE_EIO;
    for (const struct log_entry *e = batch; e; e = e->next)
        for (size_t i = 0; !e->status && i < e->n_ops; i++)
            if (e->ops[i].kind == OP_EVENT) ev[k++] = &e->ops[i].u.ev;
    qsort(ev, n, sizeof *ev, by_hunt_seq);
    int rc = 0;
    size_t moved = 0, n_moved = 0; /* hunts (and their events) taken over meanwhile */
    const char **gone = malloc(n * sizeof *gone); /* the batch's own strings */
    if (!gone) {
        free(ev);
        return STORE_EIO;
    }
    for (size_t from = 0, to; !rc && from < n; from = to) {
        int fenced = ev[from]->epoch != 0;
        for (to = from + 1; to < n && !strcmp(ev[to]->hunt, ev[from]->hunt); to++)
            fenced &= ev[to]->epoch != 0;
        struct readback r = {ev + from, to - from, 0, 0, 0};
        rc = store_each_event(l->store, ev[from]->hunt, ev[from]->seq, readback_row, &r);
        if (rc == 1) rc = 0;
        found += r.found;
        if (fenced && !r.found && r.differ) {
            gone[moved++] = ev[from]->hunt;
            n_moved += to - from;
        } else {
            differ += r.differ;
        }
    }
    free(ev);
    if (!rc && !found && !differ) fence_hunts(l, batch, gone, moved);
    free(gone);
    if (rc) return rc;
    if (!found && !differ) return 0;
    if (!differ && found == n) return 1;
    differ += n_moved;
    fprintf(stderr, "veltrix: log: a batch in doubt is only partly in the store (%zu of %zu "
                    "events, %zu others at their seqs): another writer?\n", found, n, differ);
    return STORE_ECORRUPT;
}

static void batch_start(struct log *l, struct batch *b, struct log_entry *head, size_t n)
{
    *b = (struct batch){.head = head, .n = n, .t0_ns = metrics_now_ns()};
    metrics_observe_ns(&l->stats.wait_ns, b->t0_ns - head->submitted_ns);
}

/* After STORE_EFENCED: the entries of b whose event belongs to a hunt the store fenced
 * get that status (they are handed back unwritten: the API answers 503 hunt_moving).
 * Returns how many; 0 when none matched (the store fenced a hunt this batch has not). */
static size_t fence_out(struct log *l, struct batch *b)
{
    const char *const *hunts;
    size_t nh = store_fenced_hunts(l->store, &hunts);
    return fence_hunts(l, b->head, hunts, nh);
}

/* One try at making b durable: 0 when it is (but for the entries a fence refused, which
 * carry STORE_EFENCED). A fenced transaction is known rolled back, not in doubt: the
 * rest of the batch is written again at once. */
static int attempt(struct log *l, struct batch *b)
{
    if (b->doubt) {
        int rc = landed_already(l, b->head);
        if (rc < 0) return rc;
        b->doubt = 0;
        if (rc == 1) return 0;
    }
    int rc;
    while ((rc = write_batch(l, b->head, &b->doubt)) == STORE_EFENCED && fence_out(l, b))
        b->doubt = 0;
    return rc;
}

/* A failed attempt: counted, and the store is down until one succeeds. */
static void failed(struct log *l, struct batch *b, int rc)
{
    b->failures++;
    metrics_inc(&l->stats.failures, 1);
    if (!__atomic_load_n(&l->down, __ATOMIC_RELAXED)) metrics_inc(&l->stats.outages, 1);
    __atomic_store_n(&l->down, 1, __ATOMIC_RELAXED);
    uint64_t now = metrics_now_ns();
    if (!l->manual && (!b->logged_ns || now - b->logged_ns >= 10000000000ull)) {
        fprintf(stderr, "veltrix: log: store unavailable: commit of %zu entries failed (%s); "
                        "retrying, new writes get 503 until it succeeds\n", b->n,
                store_err_str(rc));
        b->logged_ns = now;
    }
}

static void landed(struct log *l, struct batch *b)
{
    if (__atomic_load_n(&l->down, __ATOMIC_RELAXED)) {
        if (!l->manual) fprintf(stderr, "veltrix: log: store available again\n");
        __atomic_store_n(&l->down, 0, __ATOMIC_RELAXED);
    }
    metrics_observe_ns(&l->stats.commit_ns, metrics_now_ns() - b->t0_ns);
    metrics_observe_count(&l->stats.batch_entries, b->n);
    metrics_inc(&l->stats.batches, 1);
    metrics_inc(&l->stats.entries, b->n);
    for (struct log_entry *e = b->head; e; e = e->next)
        for (size_t i = 0; !e->status && i < e->n_ops; i++)
            if (e->ops[i].kind == OP_EVENT) metrics_inc(&l->stats.events, 1);
}

/* Writer thread: a commit that fails (disk full, store unreachable) is retried until it
 * succeeds: its entries are already applied in memory, so they are neither dropped nor
 * answered until durable. Meanwhile log_store_down() says so and new writes are refused
 * (503 store_unavailable) while reads go on from memory. Only a stop requested during an
 * outage ends the process, with those writes never acknowledged. */
static void commit(struct log *l, struct batch *b)
{
    int rc;
    while ((rc = attempt(l, b)) != 0) {
        failed(l, b, rc);
        if (rc == STORE_ECORRUPT) { /* memory and the store disagree: rebuild from the store */
            fprintf(stderr, "veltrix: log: the store contradicts this server's log: stopping "
                            "with %zu writes never acknowledged (a restart rebuilds from the "
                            "store)\n", b->n);
            _exit(1);
        }
        if (__atomic_load_n(&l->stop, __ATOMIC_RELAXED)) {
            fprintf(stderr, "veltrix: log: stopping while the store is unavailable: %zu writes "
                            "were never durable and never acknowledged\n", b->n);
            _exit(1);
        }
        unsigned retry = b->failures - 1;
        usleep(retry < 6 ? 20000u << retry : 1000000u);
    }
    landed(l, b);
}

int log_store_down(const struct log *l) { return __atomic_load_n(&l->down, __ATOMIC_RELAXED); }

/* Takes up to BATCH_MAX queued entries; NULL when stopping with nothing left. */
static struct log_entry *take(struct log *l, size_t *n)
{
    pthread_mutex_lock(&l->mu);
    while (!l->head && !l->stop) pthread_cond_wait(&l->cv, &l->mu);
    struct log_entry *batch = l->head, *e = batch;
    *n = 0;
    if (batch && l->queued <= BATCH_MAX) {
        /* The whole queue, without walking it under the lock (its entries were written
         * by the loop's core: every hop would be a cache miss). */
        *n = l->queued;
        l->head = l->tail = NULL;
        __atomic_store_n(&l->queued, 0, __ATOMIC_RELAXED);
    } else if (batch) {
        for (*n = 1; e->next && *n < BATCH_MAX; (*n)++) e = e->next;
        l->head = e->next;
        if (!l->head) l->tail = NULL;
        e->next = NULL;
        __atomic_store_n(&l->queued, l->queued - *n, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&l->mu);
    return batch;
}

static void *writer(void *arg)
{
    struct log *l = arg;
    struct log_entry *batch;
    struct batch b;
    size_t n;
    while ((batch = take(l, &n)) != NULL) {
        batch_start(l, &b, batch, n);
        commit(l, &b);
        /* One message per batch (its first entry): one wake-up of the loop, which walks
         * the batch through `next`. */
        h2o_multithread_send_message(&l->receiver, &batch->msg);
    }
    return NULL;
}

/* Event loop side: completed batches (one message each) come back in order. Returns how
 * many entries were handed back. */
static size_t hand_back(struct log *l, h2o_linklist_t *messages)
{
    size_t n = 0;
    while (!h2o_linklist_is_empty(messages)) {
        struct log_entry *e = H2O_STRUCT_FROM_MEMBER(struct log_entry, msg.link, messages->next),
                         *next;
        h2o_linklist_unlink(&e->msg.link);
        for (; e; e = next) {
            next = e->next;
            l->in_flight--;
            assert(l->inflight_head == e); /* handed back in submission order */
            l->inflight_head = e->loop_next;
            if (!l->inflight_head) l->inflight_tail = NULL;
            for (size_t i = 0; l->landed && e->status == 0 && i < e->n_ops; i++)
                if (e->ops[i].kind == OP_EVENT) l->landed(&e->ops[i].u.ev, l->landed_ctx);
            e->cb(e->arg, e->status);
            log_entry_free(e);
            n++;
        }
    }
    return n;
}

static void on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    hand_back(H2O_STRUCT_FROM_MEMBER(struct log, receiver, receiver), messages);
}

/* Hands the entries of this turn to the writer. */
static void hand_over(struct log *l)
{
    if (!l->turn_n) return;
    pthread_mutex_lock(&l->mu);
    if (l->tail) l->tail->next = l->turn_head;
    else l->head = l->turn_head;
    l->tail = l->turn_tail;
    /* The writer only waits on an empty queue: one signal per wake-up is enough. */
    if (l->queued == 0) pthread_cond_signal(&l->cv);
    __atomic_store_n(&l->queued, l->queued + l->turn_n, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&l->mu);
    l->turn_head = l->turn_tail = NULL;
    l->turn_n = 0;
}

static void on_turn_end(h2o_timeout_entry_t *t)
{
    hand_over(H2O_STRUCT_FROM_MEMBER(struct log, turn_tick, t));
}

int log_submit(struct log *l, struct log_entry *e)
{
    if (__atomic_load_n(&l->queued, __ATOMIC_RELAXED) + l->turn_n >= l->queue_max) {
        metrics_inc(&l->stats.rejected, 1);
        return -EAGAIN;
    }
    e->submitted_ns = metrics_now_ns();
    e->next = NULL;
    if (l->manual) { /* no turn: straight to the writer's queue */
        if (l->tail) l->tail->next = e;
        else l->head = e;
        l->tail = e;
        l->queued++;
    } else {
        if (l->turn_tail) l->turn_tail->next = e;
        else l->turn_head = e;
        l->turn_tail = e;
        l->turn_n++;
        if (!h2o_timeout_is_linked(&l->turn_tick))
            h2o_timeout_link(l->loop, &l->turn_timeout, &l->turn_tick);
    }
    e->loop_next = NULL;
    if (l->inflight_tail) l->inflight_tail->loop_next = e;
    else l->inflight_head = e;
    l->inflight_tail = e;
    l->in_flight++;
    return 0;
}

size_t log_pending(const struct log *l) { return l->in_flight; }

void log_on_landed(struct log *l, log_landed_cb cb, void *ctx)
{
    l->landed = cb;
    l->landed_ctx = ctx;
}

uint64_t log_lag_ms(const struct log *l)
{
    if (!l->inflight_head) return 0;
    return (metrics_now_ns() - l->inflight_head->submitted_ns) / 1000000u;
}

const struct log_stats *log_stats(const struct log *l) { return &l->stats; }

struct log *log_create(struct store *s, void *loop, size_t queue_max)
{
    struct log *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->store = s;
    l->queue_max = queue_max;
    l->loop = loop;
    h2o_timeout_init(l->loop, &l->turn_timeout, 0);
    l->turn_tick.cb = on_turn_end;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->mq = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(l->mq, &l->receiver, on_done);
    int rc = vx_thread_start(&l->thread, NULL, writer, l);
    if (rc) {
        h2o_timeout_dispose(l->loop, &l->turn_timeout);
        h2o_multithread_unregister_receiver(l->mq, &l->receiver);
        net_queue_destroy(l->mq);
        free(l);
        return NULL;
    }
    return l;
}

struct log *log_create_manual(struct store *s, size_t queue_max)
{
    struct log *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->store = s;
    l->queue_max = queue_max;
    l->manual = 1;
    pthread_mutex_init(&l->mu, NULL); /* take() locks it: uncontended here */
    pthread_cond_init(&l->cv, NULL);
    h2o_linklist_init_anchor(&l->done);
    return l;
}

int log_commit_now(struct log *l)
{
    assert(l->manual);
    if (!l->held.head) {
        size_t n;
        if (!l->head) return 0;
        struct log_entry *batch = take(l, &n);
        batch_start(l, &l->held, batch, n);
    }
    int rc = attempt(l, &l->held);
    if (rc) {
        failed(l, &l->held, rc);
        return rc;
    }
    landed(l, &l->held);
    h2o_linklist_insert(&l->done, &l->held.head->msg.link);
    l->held.head = NULL;
    return 0;
}

size_t log_deliver(struct log *l)
{
    assert(l->manual);
    return hand_back(l, &l->done);
}

/* Manual mode: the process "dies": no commit, no callback. */
static void destroy_manual(struct log *l)
{
    while (l->inflight_head) {
        struct log_entry *e = l->inflight_head;
        l->inflight_head = e->loop_next;
        log_entry_free(e);
    }
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void log_destroy(struct log *l)
{
    if (!l) return;
    if (l->manual) {
        destroy_manual(l);
        return;
    }
    hand_over(l); /* what this turn submitted is committed too */
    if (h2o_timeout_is_linked(&l->turn_tick)) h2o_timeout_unlink(&l->turn_tick);
    h2o_timeout_dispose(l->loop, &l->turn_timeout);
    pthread_mutex_lock(&l->mu);
    __atomic_store_n(&l->stop, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    /* Entries committed but not yet handed back: the callbacks still run, so nothing
     * acknowledged-to-be is leaked (the caller has stopped answering by now). */
    h2o_linklist_t msgs;
    h2o_linklist_init_anchor(&msgs);
    while (l->inflight_head) {
        struct log_entry *e = l->inflight_head;
        l->inflight_head = e->loop_next;
        if (h2o_linklist_is_linked(&e->msg.link)) h2o_linklist_unlink(&e->msg.link);
        e->cb(e->arg, e->status);
        log_entry_free(e);
    }
    h2o_multithread_unregister_receiver(l->mq, &l->receiver);
    net_queue_destroy(l->mq);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
