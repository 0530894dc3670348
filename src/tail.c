/* tail.c — see tail.h: one thread, a FIFO of fetches under a mutex, answers back to the
 * loop through a h2o multithread queue.
 *
 * A fetch's events are copied as they are read (the store's row pointers live only
 * during its callback): fixed fields into an array, the event data into one byte
 * buffer, both grown by doubling. */
#include "tail.h"

#include <h2o.h>
#include <h2o/multithread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "hmap.h"
#include "net.h"
#include "tiles.h"
#include "vx.h"

struct row {
    uint64_t seq;
    int64_t time_ms;
    size_t off, len; /* in the fetch's data */
    uint8_t type, player[16], hash[32];
    int has_hash;
};

struct prow { /* a player of a fetch's events */
    uint8_t id[16];
    int64_t created_ms;
    uint32_t gen;
    size_t name_off, name_len; /* in the fetch's data */
};

struct mrow { /* a map version published by a fetch's events, and its tiles */
    uint64_t seq;
    int rc; /* 0: read (tiles); 1: a later event of the fetch publishes a newer one; < 0 */
    struct tiles_read *tiles;
};

struct fetch {
    h2o_multithread_message_t msg; /* first: the loop's list links it */
    struct fetch *next;             /* in the thread's queue */
    tail_job_run run;               /* a job (tail_job) rather than a fetch */
    tail_job_done job_done;
    void *job_arg;
    struct tail_result res;
    char hunt[VX_ID_MAX + 1];
    struct row *rows;
    size_t cap;
    uint8_t *data;
    size_t data_len, data_cap;
    struct prow *players;
    size_t players_cap;
    struct mrow *maps;
    size_t n_maps;
};

struct tail {
    struct store *s;
    tail_done_cb done;
    void *ctx;
    h2o_multithread_queue_t *mq;
    h2o_multithread_receiver_t receiver;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fetch *head, *last; /* asked, not read yet (under mu) */
    int stop;                  /* under mu */
    size_t pending;            /* asked, not answered (the loop's count) */
    struct hmap seen;          /* players handed to the loop already (the thread's) */
    struct tiles_seen *blobs;  /* tile blobs handed to the loop already (the thread's) */
};

static void fetch_free(struct fetch *f)
{
    for (size_t i = 0; i < f->n_maps; i++) tiles_read_free(f->maps[i].tiles);
    free(f->maps);
    free(f->rows);
    free(f->data);
    free(f->players);
    free(f);
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * size);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int copy_row(const struct store_event *ev, void *arg)
{
    struct fetch *f = arg;
    /* Full, or out of memory: what is here goes back, and the loop asks for the rest. */
    if (f->res.n == TAIL_ROWS_MAX ||
        grow((void **)&f->rows, &f->cap, f->res.n + 1, sizeof *f->rows) ||
        grow((void **)&f->data, &f->data_cap, f->data_len + ev->data_len + 1, 1)) {
        f->res.more = 1;
        return STORE_ESTOP;
    }
    struct row *r = &f->rows[f->res.n++];
    *r = (struct row){ev->seq, ev->time_ms, f->data_len, ev->data_len, ev->type, {0}, {0},
                      ev->has_hash};
    memcpy(r->player, ev->player, 16);
    memcpy(r->hash, ev->hash, 32);
    if (ev->data_len) memcpy(f->data + f->data_len, ev->data, ev->data_len);
    f->data_len += ev->data_len;
    return 0;
}

static int copy_player(const struct store_player *p, void *arg)
{
    struct fetch *f = arg;
    size_t nl = p->display_name ? strlen(p->display_name) : 0;
    if (grow((void **)&f->players, &f->players_cap, f->res.n_players + 1, sizeof *f->players) ||
        grow((void **)&f->data, &f->data_cap, f->data_len + nl + 1, 1))
        return STORE_EIO; /* out of memory: as a failed read */
    struct prow *r = &f->players[f->res.n_players++];
    *r = (struct prow){{0}, p->created_ms, p->gen, f->data_len, nl};
    memcpy(r->id, p->id, 16);
    if (nl) memcpy(f->data + f->data_len, p->display_name, nl);
    f->data[f->data_len + nl] = '\0';
    f->data_len += nl + 1;
    return 0;
}

/* The players of f's events that this thread has not handed to the loop before, read
 * with them, so that the loop never reads one itself. A player that cannot be read ends
 * the fetch before its first event (rc set): the loop asks again. */
static void read_players(struct tail *t, struct fetch *f)
{
    static const uint8_t nobody[16];
    for (size_t i = 0; i < f->res.n && !f->res.rc; i++) {
        const uint8_t *id = f->rows[i].player;
        if (!memcmp(id, nobody, 16) || hmap_get(&t->seen, id, 16)) continue;
        int rc = store_get_player(t->s, id, copy_player, f);
        if (rc == STORE_ENOTSUP) return; /* a store of one node (tests): it holds them all */
        if (rc < 0) {
            f->res.rc = rc;
            f->res.n = i;
            f->res.more = 0;
        } else if (rc == 1) {
            static char present;
            hmap_put(&t->seen, id, 16, &present); /* out of memory: read again next time */
        }
    }
}

/* The tiles of the map versions f's events publish (the newest of them: the loop applies
 * the others on its way to it in the same turn), read with them so that the loop never
 * reads them itself. A store error ends the fetch before that event (rc set): the loop
 * asks again. A version the store no longer has (or that does not decode) goes back as
 * its error: the loop says so and goes on, as it would reading it itself. */
static void read_maps(struct tail *t, struct fetch *f)
{
    size_t n = 0, first = 0, last = 0;
    for (size_t i = 0; i < f->res.n; i++)
        if (f->rows[i].type == EVENT_MAP && !n++) first = i;
    for (size_t i = 0; i < f->res.n; i++)
        if (f->rows[i].type == EVENT_MAP) last = i;
    if (!n) return;
    if (!(f->maps = calloc(n, sizeof *f->maps))) {
        f->res.rc = STORE_EIO; /* out of memory: as a failed read, asked again */
        f->res.n = first;
        f->res.more = 0;
        return;
    }
    for (size_t i = 0; i < f->res.n; i++) {
        const struct row *r = &f->rows[i];
        if (r->type != EVENT_MAP) continue;
        struct mrow *m = &f->maps[f->n_maps++];
        m->seq = r->seq;
        if (i != last) {
            m->rc = 1;
            continue;
        }
        struct event ev;
        int rc = event_read(&ev, r->seq, r->time_ms, r->type, r->player, f->data + r->off, r->len);
        if (rc) {
            m->rc = TILES_ECORRUPT;
            continue;
        }
        m->tiles = tiles_read_version(t->s, t->blobs, f->hunt, ev.u.map.version, &m->rc);
        if (m->rc < -1000 || m->rc == TILES_ENOMEM) {
            /* The store failed: the fetch ends before its first map event (those before
             * the newest were left to it), and the loop asks again. */
            f->res.rc = m->rc == TILES_ENOMEM ? STORE_EIO : m->rc;
            f->n_maps = 0;
            f->res.n = first;
            f->res.more = 0;
            return;
        }
    }
}

static void *reader(void *arg)
{
    struct tail *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (!t->head && !t->stop) pthread_cond_wait(&t->cv, &t->mu);
        if (t->stop) {
            pthread_mutex_unlock(&t->mu);
            return NULL;
        }
        struct fetch *f = t->head;
        if (!(t->head = f->next)) t->last = NULL;
        pthread_mutex_unlock(&t->mu);
        if (f->run) {
            f->run(t->s, f->job_arg);
        } else {
            int rc = store_each_event(t->s, f->hunt, f->res.from, copy_row, f);
            f->res.rc = rc == STORE_ESTOP ? 0 : rc;
            read_players(t, f);
            read_maps(t, f);
        }
        h2o_multithread_send_message(&t->receiver, &f->msg);
    }
}

void tail_event(const struct tail_result *res, size_t i, struct store_event *ev)
{
    const struct fetch *f = (const struct fetch *)((const char *)res - offsetof(struct fetch, res));
    const struct row *r = &f->rows[i];
    *ev = (struct store_event){.hunt = f->hunt, .seq = r->seq, .time_ms = r->time_ms,
                               .type = r->type, .data = f->data + r->off, .data_len = r->len,
                               .has_hash = r->has_hash};
    memcpy(ev->player, r->player, 16);
    memcpy(ev->hash, r->hash, 32);
}

int tail_map(const struct tail_result *res, uint64_t seq, const struct tiles_read **tiles)
{
    const struct fetch *f = (const struct fetch *)((const char *)res - offsetof(struct fetch, res));
    *tiles = NULL;
    for (size_t i = 0; i < f->n_maps; i++) {
        if (f->maps[i].seq != seq) continue;
        *tiles = f->maps[i].tiles;
        return f->maps[i].rc;
    }
    return TILES_ENOVERSION;
}

void tail_player(const struct tail_result *res, size_t i, struct store_player *p)
{
    const struct fetch *f = (const struct fetch *)((const char *)res - offsetof(struct fetch, res));
    const struct prow *r = &f->players[i];
    *p = (struct store_player){{0}, (const char *)f->data + r->name_off, r->created_ms, r->gen};
    memcpy(p->id, r->id, 16);
}

static void on_answers(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct tail *t = H2O_STRUCT_FROM_MEMBER(struct tail, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        struct fetch *f = H2O_STRUCT_FROM_MEMBER(struct fetch, msg.link, messages->next);
        h2o_linklist_unlink(&f->msg.link);
        t->pending--;
        if (f->run) f->job_done(f->job_arg, 1);
        else t->done(&f->res, t->ctx);
        fetch_free(f);
    }
}

static void enqueue(struct tail *t, struct fetch *f)
{
    pthread_mutex_lock(&t->mu);
    if (t->last) t->last->next = f;
    else t->head = f;
    t->last = f;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    t->pending++;
}

int tail_fetch(struct tail *t, const char *hunt, uint64_t from, uint64_t tag)
{
    struct fetch *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->hunt, sizeof f->hunt, "%s", hunt);
    f->res = (struct tail_result){.hunt = f->hunt, .from = from, .tag = tag};
    enqueue(t, f);
    return 0;
}

int tail_job(struct tail *t, tail_job_run run, tail_job_done done, void *arg)
{
    struct fetch *f = calloc(1, sizeof *f);
    if (!f) return -1;
    f->run = run;
    f->job_done = done;
    f->job_arg = arg;
    enqueue(t, f);
    return 0;
}

size_t tail_pending(const struct tail *t) { return t->pending; }

struct tail *tail_create(void *loop, struct store *s, tail_done_cb done, void *ctx)
{
    struct tail *t = calloc(1, sizeof *t);
    if (!t) {
        store_close(s);
        return NULL;
    }
    *t = (struct tail){.s = s, .done = done, .ctx = ctx};
    hmap_init(&t->seen);
    if (!(t->blobs = tiles_seen_create())) {
        store_close(s);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->mq = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(t->mq, &t->receiver, on_answers);
    int rc = vx_thread_start(&t->thread, NULL, reader, t);
    if (rc) {
        h2o_multithread_unregister_receiver(t->mq, &t->receiver);
        net_queue_destroy(t->mq);
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        store_close(s);
        hmap_deinit(&t->seen);
        tiles_seen_destroy(t->blobs);
        free(t);
        return NULL;
    }
    return t;
}

void tail_destroy(struct tail *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    for (struct fetch *f = t->head, *next; f; f = next) { /* never read */
        next = f->next;
        if (f->run) f->job_done(f->job_arg, 0);
        fetch_free(f);
    }
    /* Read, and not handed to the loop yet: dropped (h2o's queue holds them). */
    h2o_linklist_t *msgs = &t->receiver._messages;
    while (!h2o_linklist_is_empty(msgs)) {
        struct fetch *f = H2O_STRUCT_FROM_MEMBER(struct fetch, msg.link, msgs->next);
        h2o_linklist_unlink(&f->msg.link);
        if (f->run) f->job_done(f->job_arg, 0);
        fetch_free(f);
    }
    h2o_multithread_unregister_receiver(t->mq, &t->receiver);
    net_queue_destroy(t->mq);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    store_close(t->s);
    hmap_deinit(&t->seen);
    tiles_seen_destroy(t->blobs);
    free(t);
}
