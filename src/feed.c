/* feed.c — see feed.h: a turn's records encoded once, one queue per peer, the posts. */
#include "feed.h"

#include <h2o.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "forward.h"
#include "vx.h"

#define REC_FIXED (1 + 8 + 8 + 1 + 16 + 1 + 32 + 4) /* an event without hunt and data */
#define REC_REVOKED (1 + 16 + 4)                    /* a revocation */
#define PEERS_MAX 64

/* One peer's queue. Never freed before the feed: a post in flight points at it. */
struct queue {
    struct queue *next;
    struct feed *fd;
    char id[CLUSTER_NODE_ID_MAX + 1];
    uint8_t *buf;
    size_t off, len, cap; /* the queued records: buf[off..len) */
    int posting;          /* a post of this queue is in flight */
};

struct feed {
    h2o_loop_t *loop;
    struct forward *f;
    struct queue *queues;
    h2o_timeout_t turn;         /* 0 ms: the end of this loop turn */
    h2o_timeout_entry_t flush_tick;
    uint8_t *turn_buf; /* this turn's records, encoded once for every peer */
    size_t turn_len, turn_cap, turn_records;
    uint64_t events, revocations, posts, bytes, failed, dropped_records, dropped_queues;
};

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static struct queue *queue_of(struct feed *fd, const char *id)
{
    struct queue *q;
    for (q = fd->queues; q; q = q->next)
        if (!strcmp(q->id, id)) return q;
    if (!(q = calloc(1, sizeof *q))) return NULL;
    q->fd = fd;
    snprintf(q->id, sizeof q->id, "%s", id);
    q->next = fd->queues;
    fd->queues = q;
    return q;
}

/* Room for need more bytes after len in *buf (capacity *cap), or NULL: out of memory. */
static uint8_t *room(uint8_t **buf, size_t *cap, size_t len, size_t need)
{
    if (len + need > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < len + need) c *= 2;
        uint8_t *b = realloc(*buf, c);
        if (!b) return NULL;
        *buf = b;
        *cap = c;
    }
    return *buf + len;
}

static void on_posted(void *arg, int status)
{
    struct queue *q = arg;
    q->posting = 0;
    if (status != 204) q->fd->failed++;
    if (q->len > q->off && !h2o_timeout_is_linked(&q->fd->flush_tick))
        h2o_timeout_link(q->fd->loop, &q->fd->turn, &q->fd->flush_tick);
}

/* The size of the record at p (whole: buffers hold only whole records). */
static size_t rec_size(const uint8_t *p)
{
    if (!p[0]) return REC_REVOKED;
    const uint8_t *d = p + 1 + p[0] + 66; /* seq, time, type, player, has_hash, hash */
    return REC_FIXED + p[0] + ((size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 | d[3]);
}

/* The next post of q: its whole records up to FEED_POST_MAX bytes (malloc'd; q's buffer
 * itself when all of it fits), taken off q; NULL when q is empty or out of memory. */
static uint8_t *take(struct queue *q, size_t *len)
{
    size_t n = 0, rs;
    while (q->off + n < q->len && n + (rs = rec_size(q->buf + q->off + n)) <= FEED_POST_MAX) n += rs;
    uint8_t *body = NULL;
    if (n && q->off == 0 && n == q->len) { /* all of it: the buffer itself */
        body = q->buf;
        q->buf = NULL;
        q->len = q->cap = 0;
    } else if (n && (body = malloc(n))) {
        memcpy(body, q->buf + q->off, n);
        q->off += n;
    }
    if (q->off == q->len) q->off = q->len = 0;
    if (q->off > q->cap / 2) { /* compact now and then, not at every post */
        memmove(q->buf, q->buf + q->off, q->len - q->off);
        q->len -= q->off;
        q->off = 0;
    }
    *len = body ? n : 0;
    return body;
}

/* The end of a loop turn: this turn's records go to every live peer's queue (a queue
 * that would pass FEED_QUEUE_MAX is dropped first: that peer reads the store), then each
 * queue with records and no post in flight sends its next post. */
static void flush(struct feed *fd)
{
    const char *ids[PEERS_MAX];
    size_t n = fd->turn_len ? forward_peers(fd->f, ids, PEERS_MAX) : 0;
    for (size_t i = 0; i < n; i++) {
        struct queue *q = queue_of(fd, ids[i]);
        if (q && q->len - q->off + fd->turn_len > FEED_QUEUE_MAX) {
            free(q->buf);
            q->buf = NULL;
            q->off = q->len = q->cap = 0;
            fd->dropped_queues++;
        }
        uint8_t *p = q ? room(&q->buf, &q->cap, q->len, fd->turn_len) : NULL;
        if (!p) { /* out of memory: that peer reads the store */
            fd->dropped_records += fd->turn_records;
            continue;
        }
        memcpy(p, fd->turn_buf, fd->turn_len);
        q->len += fd->turn_len;
    }
    fd->turn_len = fd->turn_records = 0;
    for (struct queue *q = fd->queues; q; q = q->next) {
        if (q->posting) continue;
        size_t len;
        uint8_t *body = take(q, &len);
        if (!body) continue;
        if (forward_post(fd->f, q->id, FEED_PATH, (char *)body, len, on_posted, q)) {
            fd->failed++; /* not a peer any more, or too busy: its replicas read the store */
            continue;
        }
        q->posting = 1;
        fd->posts++;
        fd->bytes += len;
    }
}

static void on_flush(h2o_timeout_entry_t *e)
{
    flush(H2O_STRUCT_FROM_MEMBER(struct feed, flush_tick, e));
}

/* Room for a record of need bytes in this turn's buffer, the flush armed; NULL when out
 * of memory (counted). */
static uint8_t *record(struct feed *fd, size_t need)
{
    uint8_t *p = room(&fd->turn_buf, &fd->turn_cap, fd->turn_len, need);
    if (!p) {
        fd->dropped_records++;
        return NULL;
    }
    fd->turn_len += need;
    fd->turn_records++;
    if (!h2o_timeout_is_linked(&fd->flush_tick)) h2o_timeout_link(fd->loop, &fd->turn, &fd->flush_tick);
    return p;
}

void feed_event(struct feed *fd, const struct store_event *ev)
{
    size_t hl = strlen(ev->hunt), need = REC_FIXED + hl + ev->data_len;
    fd->events++;
    if (need > FEED_POST_MAX) { /* larger than a post: the peers read it from the store */
        fd->dropped_records++;
        return;
    }
    uint8_t *p = record(fd, need); /* ids are at most 64 bytes: hl fits its byte */
    if (!p) return;
    *p++ = (uint8_t)hl;
    memcpy(p, ev->hunt, hl), p += hl;
    put_u64(p, ev->seq), p += 8;
    put_u64(p, (uint64_t)ev->time_ms), p += 8;
    *p++ = ev->type;
    memcpy(p, ev->player, 16), p += 16;
    *p++ = (uint8_t)(ev->has_hash != 0);
    memcpy(p, ev->hash, 32), p += 32;
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(ev->data_len >> (24 - 8 * i));
    p += 4;
    if (ev->data_len) memcpy(p, ev->data, ev->data_len);
}

void feed_revocation(struct feed *fd, const uint8_t player[16], uint32_t gen)
{
    fd->revocations++;
    uint8_t *p = record(fd, REC_REVOKED);
    if (!p) return; /* out of memory: the other nodes refuse the tokens at their expiry */
    p[0] = 0;
    memcpy(p + 1, player, 16);
    for (int i = 0; i < 4; i++) p[17 + i] = (uint8_t)(gen >> (24 - 8 * i));
}

int feed_parse(const void *body, size_t len,
               int (*on_event)(const struct store_event *ev, void *ctx),
               int (*on_revoked)(const uint8_t player[16], uint32_t gen, void *ctx), void *ctx)
{
    const uint8_t *p = body, *end = p + len;
    char hunt[256];
    while (p < end) {
        size_t hl = *p;
        if (hl == 0) { /* a revocation */
            if ((size_t)(end - p) < REC_REVOKED) return -1;
            uint32_t gen = (uint32_t)p[17] << 24 | (uint32_t)p[18] << 16 | (uint32_t)p[19] << 8 | p[20];
            int rc = on_revoked ? on_revoked(p + 1, gen, ctx) : 0;
            if (rc) return rc;
            p += REC_REVOKED;
            continue;
        }
        if ((size_t)(end - p) < REC_FIXED + hl) return -1;
        struct store_event ev = {0};
        memcpy(hunt, p + 1, hl);
        hunt[hl] = '\0';
        if (strlen(hunt) != hl) return -1; /* a NUL inside */
        p += 1 + hl;
        ev.hunt = hunt;
        ev.seq = get_u64(p), p += 8;
        ev.time_ms = (int64_t)get_u64(p), p += 8;
        ev.type = *p++;
        memcpy(ev.player, p, 16), p += 16;
        if (*p > 1) return -1;
        ev.has_hash = *p++;
        memcpy(ev.hash, p, 32), p += 32;
        ev.data_len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        p += 4;
        if (ev.seq == 0 || (size_t)(end - p) < ev.data_len) return -1;
        ev.data = p;
        p += ev.data_len;
        int rc = on_event ? on_event(&ev, ctx) : 0;
        if (rc) return rc;
    }
    return 0;
}

struct feed *feed_create(void *loop, struct forward *f)
{
    struct feed *fd = calloc(1, sizeof *fd);
    if (!fd) return NULL;
    fd->loop = loop;
    fd->f = f;
    h2o_timeout_init(fd->loop, &fd->turn, 0);
    fd->flush_tick.cb = on_flush;
    return fd;
}

void feed_destroy(struct feed *fd)
{
    if (!fd) return;
    if (h2o_timeout_is_linked(&fd->flush_tick)) h2o_timeout_unlink(&fd->flush_tick);
    h2o_timeout_dispose(fd->loop, &fd->turn);
    for (struct queue *q = fd->queues, *next; q; q = next) {
        next = q->next;
        free(q->buf);
        free(q);
    }
    free(fd->turn_buf);
    free(fd);
}

void feed_render_metrics(struct feed *fd, struct metrics_buf *b)
{
    metrics_printf(b,
                   "# TYPE veltrix_feed_events_total counter\nveltrix_feed_events_total %llu\n"
                   "# TYPE veltrix_feed_revocations_total counter\n"
                   "veltrix_feed_revocations_total %llu\n"
                   "# TYPE veltrix_feed_posts_total counter\nveltrix_feed_posts_total %llu\n"
                   "# TYPE veltrix_feed_bytes_total counter\nveltrix_feed_bytes_total %llu\n"
                   "# TYPE veltrix_feed_failed_total counter\nveltrix_feed_failed_total %llu\n"
                   "# TYPE veltrix_feed_dropped_total counter\n"
                   "veltrix_feed_dropped_total{what=\"records\"} %llu\n"
                   "veltrix_feed_dropped_total{what=\"queues\"} %llu\n",
                   (unsigned long long)fd->events, (unsigned long long)fd->revocations,
                   (unsigned long long)fd->posts,
                   (unsigned long long)fd->bytes, (unsigned long long)fd->failed,
                   (unsigned long long)fd->dropped_records,
                   (unsigned long long)fd->dropped_queues);
}
