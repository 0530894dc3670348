/* live.c — see live.h.
 *
 * Per hunt (struct lhunt, created when the hunt first has an event applied or a
 * subscriber, never freed before live_destroy): the subscribers (a doubly linked list),
 * the window (a ring of the last window_events durable frames), the last published seq,
 * the top 10 last pushed, each player's last position time, and while resumes need it
 * the archive (the frames of seqs 1..arch_n replayed from the store, see "resume").
 *
 * Invariants:
 * - lhunt.seq is the last durable seq published. An lhunt created on a subscription, with
 *   no event applied since startup, starts at engine_seq() (everything recovered is
 *   durable); one created by live_event_frame starts just before that event.
 * - a frame is queued, never written, inside a broadcast; the flush timer (0 ms: the next
 *   loop turn) writes every dirty hunt's connections, so a commit batch of N events costs
 *   one writev per connection, and no connection is freed during a broadcast.
 * - a connection's queue never exceeds queue_bytes_max: positions and the top 10 are
 *   dropped once it is half full; a durable event that does not fit closes it (resync).
 * - a subscriber catching up (sub.catching) has had every event before next_seq and gets
 *   nothing from broadcasts: the window, then live_publish, hand it everything after, in
 *   order, once; it turns live in the slice that reaches lh->seq.
 * - the window and the archive never overlap with a gap once joined: arch_eng is NULL
 *   exactly when the archive reached the window (arch_n + 1 == the oldest window seq, and
 *   every frame that leaves the window is appended, up to replay_events_max). */
#include "live.h"

#include <assert.h>
#include <h2o.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "jsonw.h"
#include "uuid.h"

#define LB_TOP 10

struct sub {
    struct ws_conn *c;
    struct lhunt *lh;
    struct sub *prev, *next;
    struct sub *rq_prev, *rq_next; /* the replay queue: catching up, ready for a slice */
    int catching, queued;
    uint64_t next_seq; /* catching: the next event it needs */
    uint8_t player[16];
};

struct lhunt {
    struct live *l;
    struct hunt *h;
    struct sub *subs;
    size_t n_subs;
    struct ws_buf **win; /* ring of window_events */
    size_t win_head, win_count;
    uint64_t seq;
    int dirty, lb_dirty;
    struct lhunt *next_dirty;
    h2o_timeout_entry_t lb_tick;
    uint64_t lb_at;          /* loop time of the last top-10 computation + 1 (0: none) */
    struct engine_lb_row lb[LB_TOP];
    size_t lb_n;
    struct ws_buf *lb_frame; /* the last top 10 pushed */
    struct hmap pos_ms;      /* player -> last position time + 1 */
    struct ws_buf **arch;    /* arch[i]: the frame of seq i + 1 */
    size_t arch_n, arch_cap, arch_bytes;
    struct hunt *arch_eng; /* the scratch engine at seq arch_n; NULL once joined */
    int arch_on;
    size_t readers;                /* subscribers catching up */
    h2o_timeout_entry_t arch_keep; /* frees the archive replay_keep_ms after the last one */
};

struct live {
    struct live_config cfg;
    h2o_loop_t *loop;
    struct store *reader;
    struct ws_ctx *ws;
    live_name_fn name;
    void *name_ctx;
    live_move_fn move_check;
    struct hmap hunts; /* struct hunt * -> struct lhunt */
    struct lhunt *dirty;
    h2o_timeout_t flush_timeout, lb_timeout, replay_timeout, keep_timeout;
    h2o_timeout_entry_t flush_tick, replay_tick;
    struct sub *rq_head, *rq_tail;
    size_t conns, catching, arch_bytes;
    uint64_t events, positions, positions_thinned, dropped, resyncs, slow_closed, lb_pushes;
    uint64_t store_replays, store_replayed, replay_refused;
    uint64_t replay_slices, replay_bytes, replay_store_events, replay_turns_full;
};

/* ---- JSON text -------------------------------------------------------------------- */

/* Frames are built with jsonw (no printf on the write path: one frame per event).
 * key is the literal text before the value, such as ",\"code\":". */
static void put_player(struct jsonw *b, const uint8_t id[16])
{
    jsonw_lit(b, ",\"player_id\":");
    jsonw_uuid(b, id);
}

static void put_str(struct jsonw *b, const char *key, const char *v)
{
    jsonw_lit(b, key);
    jsonw_str(b, v);
}

static void put_i64(struct jsonw *b, const char *key, int64_t v)
{
    jsonw_lit(b, key);
    jsonw_i64(b, v);
}

/* ,"hash":"<64 hex>" of a link of the hash chain. */
static void put_hash(struct jsonw *b, const uint8_t hash[32])
{
    static const char digits[] = "0123456789abcdef";
    char hex[64];
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[hash[i] >> 4];
        hex[2 * i + 1] = digits[hash[i] & 15];
    }
    jsonw_lit(b, ",\"hash\":\"");
    jsonw_raw(b, hex, sizeof hex);
    jsonw_lit(b, "\"");
}

/* Frames b's text (freeing it); NULL when out of memory. */
static struct ws_buf *frame_of(struct jsonw *b, uint64_t seq)
{
    struct ws_buf *f = b->p && !b->oom ? ws_buf_frame(WS_TEXT, b->p, b->len) : NULL;
    free(b->p);
    if (f) f->seq = seq;
    return f;
}

/* ---- hunts ------------------------------------------------------------------------ */

static void on_lb_tick(h2o_timeout_entry_t *e);
static void on_arch_keep(h2o_timeout_entry_t *e);

static struct lhunt *lhunt_get(struct live *l, struct hunt *h, uint64_t seq)
{
    struct lhunt *lh = hmap_get(&l->hunts, &h, sizeof h);
    if (lh) return lh;
    if (!(lh = calloc(1, sizeof *lh)) ||
        !(lh->win = calloc(l->cfg.window_events, sizeof *lh->win))) {
        free(lh);
        return NULL;
    }
    lh->l = l;
    lh->h = h;
    lh->seq = seq;
    lh->lb_tick.cb = on_lb_tick;
    lh->arch_keep.cb = on_arch_keep;
    hmap_init(&lh->pos_ms);
    if (hmap_put(&l->hunts, &h, sizeof h, lh)) {
        free(lh->win);
        free(lh);
        return NULL;
    }
    return lh;
}

static void mark_dirty(struct lhunt *lh)
{
    struct live *l = lh->l;
    if (!lh->dirty) {
        lh->dirty = 1;
        lh->next_dirty = l->dirty;
        l->dirty = lh;
    }
    if (!h2o_timeout_is_linked(&l->flush_tick))
        h2o_timeout_link(l->loop, &l->flush_timeout, &l->flush_tick);
}

static void on_flush(h2o_timeout_entry_t *e)
{
    struct live *l = H2O_STRUCT_FROM_MEMBER(struct live, flush_tick, e);
    struct lhunt *lh = l->dirty;
    l->dirty = NULL;
    for (; lh; lh = lh->next_dirty) {
        lh->dirty = 0;
        for (struct sub *s = lh->subs; s; s = s->next) ws_conn_flush(s->c);
    }
}

/* ---- sending -------------------------------------------------------------------------- */

static struct ws_buf *resync_frame(uint64_t seq)
{
    struct jsonw b = {0};
    jsonw_lit(&b, "{\"type\":\"resync\",\"seq\":");
    jsonw_u64(&b, seq);
    jsonw_lit(&b, "}");
    return frame_of(&b, 0);
}

/* The subscriber cannot keep up: resync and close. */
static void cut_off(struct sub *s)
{
    struct ws_buf *r = resync_frame(s->lh->seq);
    s->lh->l->resyncs++;
    s->lh->l->slow_closed++;
    ws_conn_close(s->c, WS_CLOSE_POLICY, r);
    ws_buf_unref(r);
}

/* Queues a durable frame: cuts the subscriber off when it does not fit. */
static void send_durable(struct sub *s, struct ws_buf *f)
{
    if (ws_conn_closing(s->c)) return;
    if (ws_conn_send(s->c, f, 0)) cut_off(s);
}

/* Queues a lossy frame (position, top 10) unless the queue is half full. */
static void send_lossy(struct sub *s, struct ws_buf *f)
{
    struct live *l = s->lh->l;
    if (ws_conn_closing(s->c)) return;
    if (ws_conn_queued_bytes(s->c) + f->len > l->cfg.queue_bytes_max / 2 ||
        ws_conn_send(s->c, f, 0))
        l->dropped++;
}

/* Subscribers catching up are left out: their catch-up reaches f (durable) in order. */
static void broadcast(struct lhunt *lh, struct ws_buf *f, int lossy)
{
    for (struct sub *s = lh->subs; s; s = s->next)
        if (!s->catching) lossy ? send_lossy(s, f) : send_durable(s, f);
    if (lh->subs) mark_dirty(lh);
}

/* ---- durable events ------------------------------------------------------------------ */

static void event_fields(struct live *l, struct jsonw *b, const struct event *ev,
                         const struct engine_outcome *out)
{
    static const struct engine_outcome none;
    if (!out) out = &none;
    put_str(b, "\"type\":", event_type_live((enum event_type)ev->type));
    switch ((enum event_type)ev->type) { /* every type, no default: -Wswitch names a new one */
    case EVENT_SCAN:
        put_player(b, ev->player);
        put_str(b, ",\"display_name\":", l->name(ev->player, l->name_ctx));
        put_str(b, ",\"code\":", ev->u.scan.code);
        put_i64(b, ",\"points\":", out->points);
        put_i64(b, ",\"score\":", out->score);
        break;
    case EVENT_OPEN:
        put_player(b, ev->player);
        put_str(b, ",\"zone\":", ev->u.open.zone);
        put_str(b, ",\"chest\":", ev->u.open.chest);
        put_i64(b, ",\"points\":", out->points);
        break;
    case EVENT_COLLECT:
        put_player(b, ev->player);
        put_str(b, ",\"item\":", ev->u.collect.item);
        put_i64(b, ",\"remaining\":", out->remaining);
        break;
    case EVENT_MAP:
        put_i64(b, ",\"version\":", ev->u.map.version);
        break;
    case EVENT_DEFINE:
        break;
    }
    put_hash(b, out->hash);
}

/* The message of one event (live and store replays alike). */
static struct ws_buf *event_frame(struct live *l, const struct event *ev,
                                  const struct engine_outcome *out)
{
    struct jsonw b = {0};
    put_i64(&b, "{\"seq\":", (int64_t)ev->seq);
    jsonw_lit(&b, ",");
    event_fields(l, &b, ev, out);
    jsonw_lit(&b, "}");
    return frame_of(&b, ev->seq);
}

struct ws_buf *live_event_frame(struct live *l, struct hunt *h, const struct event *ev,
                                const struct engine_outcome *out)
{
    if (!lhunt_get(l, h, ev->seq - 1)) return NULL;
    return event_frame(l, ev, out);
}

static void lb_push(struct lhunt *lh);
static int arch_take_evicted(struct lhunt *lh, struct ws_buf *f);

/* The top 10 may have changed. With subscribers and leaderboard_ms gone by since the last
 * computation, it goes out now, in the same flush as the event that changed it (one
 * writev per connection for both); otherwise the timer sends it later. A push of its own
 * was a second pass over every connection: at 10,000 subscribers ~40 ms of the loop, in
 * front of whichever event came next. */
static void lb_changed(struct lhunt *lh)
{
    lh->lb_dirty = 1;
    if (lh->subs && (!lh->lb_at || h2o_now(lh->l->loop) + 1 - lh->lb_at >=
                                       lh->l->cfg.leaderboard_ms)) {
        lb_push(lh);
        return;
    }
    if (!h2o_timeout_is_linked(&lh->lb_tick))
        h2o_timeout_link(lh->l->loop, &lh->l->lb_timeout, &lh->lb_tick);
}

void live_publish(struct live *l, struct hunt *h, struct ws_buf *f)
{
    struct lhunt *lh = hmap_get(&l->hunts, &h, sizeof h);
    assert(lh && f->seq == lh->seq + 1);
    lh->seq = f->seq;
    l->events++;
    broadcast(lh, f, 0);
    size_t cap = l->cfg.window_events;
    if (lh->win_count == cap) {
        if (!arch_take_evicted(lh, lh->win[lh->win_head])) ws_buf_unref(lh->win[lh->win_head]);
        lh->win_head = (lh->win_head + 1) % cap;
        lh->win_count--;
    }
    lh->win[(lh->win_head + lh->win_count++) % cap] = f; /* the window keeps our reference */
    lb_changed(lh);
}

/* ---- leaderboard ---------------------------------------------------------------------- */

static struct ws_buf *lb_frame(struct lhunt *lh)
{
    struct live *l = lh->l;
    struct jsonw b = {0};
    jsonw_lit(&b, "{\"type\":\"leaderboard\",\"seq\":");
    jsonw_u64(&b, lh->seq);
    jsonw_lit(&b, ",\"entries\":[");
    for (size_t i = 0; i < lh->lb_n; i++) {
        put_i64(&b, i ? ",{\"rank\":" : "{\"rank\":", (int64_t)lh->lb[i].rank);
        put_player(&b, lh->lb[i].player);
        put_str(&b, ",\"display_name\":", l->name(lh->lb[i].player, l->name_ctx));
        put_i64(&b, ",\"score\":", lh->lb[i].score);
        jsonw_lit(&b, "}");
    }
    jsonw_lit(&b, "]}");
    return frame_of(&b, 0);
}

/* Coalesced: at most one top-10 computation per leaderboard_ms per hunt (lb_changed). */
static void lb_push(struct lhunt *lh)
{
    struct engine_lb_row rows[LB_TOP];
    lh->lb_dirty = 0;
    lh->lb_at = h2o_now(lh->l->loop) + 1;
    if (h2o_timeout_is_linked(&lh->lb_tick)) h2o_timeout_unlink(&lh->lb_tick);
    size_t n = engine_lb_top(lh->h, 0, LB_TOP, rows);
    if (n == lh->lb_n && memcmp(rows, lh->lb, n * sizeof rows[0]) == 0) return;
    memcpy(lh->lb, rows, n * sizeof rows[0]);
    lh->lb_n = n;
    struct ws_buf *f = lb_frame(lh);
    if (!f) return;
    ws_buf_unref(lh->lb_frame);
    lh->lb_frame = f;
    lh->l->lb_pushes++;
    broadcast(lh, f, 1);
}

static void on_lb_tick(h2o_timeout_entry_t *e)
{
    struct lhunt *lh = H2O_STRUCT_FROM_MEMBER(struct lhunt, lb_tick, e);
    if (lh->lb_dirty) lb_push(lh);
}

/* ---- positions ------------------------------------------------------------------------ */

/* 1 (and counted) when player had a position delivered less than position_ms ago. */
static int thinned(struct lhunt *lh, const uint8_t player[16], uint64_t now)
{
    uintptr_t last = (uintptr_t)hmap_get(&lh->pos_ms, player, 16);
    if (!last || now + 1 - last >= lh->l->cfg.position_ms) return 0;
    lh->l->positions_thinned++;
    return 1;
}

void live_position(struct live *l, struct hunt *h, const uint8_t player[16], double x, double y)
{
    struct lhunt *lh = lhunt_get(l, h, engine_seq(h));
    uint64_t now = h2o_now(l->loop);
    if (!lh || thinned(lh, player, now)) return;
    if (hmap_put(&lh->pos_ms, player, 16, (void *)(uintptr_t)(now + 1))) return;
    l->positions++;
    if (!lh->subs) return;
    struct jsonw b = {0};
    char xy[64];
    int n = snprintf(xy, sizeof xy, ",\"x\":%.10g,\"y\":%.10g}", x, y);
    jsonw_lit(&b, "{\"type\":\"position\"");
    put_player(&b, player);
    jsonw_raw(&b, xy, n > 0 && (size_t)n < sizeof xy ? (size_t)n : 0);
    struct ws_buf *f = frame_of(&b, 0);
    if (!f) return;
    broadcast(lh, f, 1);
    ws_buf_unref(f);
}

/* A client message: {"type":"position","x","y"}; anything else is ignored. Messages that
 * would be thinned are not even parsed, so a flood costs little. */
static void on_text(struct ws_conn *c, const char *data, size_t len)
{
    struct sub *s = ws_conn_data(c);
    if (thinned(s->lh, s->player, h2o_now(s->lh->l->loop))) return;
    json_t *j = json_loadb(data, len, 0, NULL);
    json_t *x = json_object_get(j, "x"), *y = json_object_get(j, "y");
    const char *type = json_string_value(json_object_get(j, "type"));
    int w, ht;
    engine_map_size(s->lh->h, &w, &ht);
    if (type && !strcmp(type, "position") && json_is_number(x) && json_is_number(y)) {
        double fx = json_number_value(x), fy = json_number_value(y);
        struct live *l = s->lh->l;
        if (fx >= 0 && fx < w && fy >= 0 && fy < ht &&
            (!l->move_check || l->move_check(s->player, engine_hunt_id(s->lh->h), fx, fy) == 0))
            live_position(l, s->lh->h, s->player, fx, fy);
    }
    json_decref(j);
}

void live_set_move_check(struct live *l, live_move_fn fn) { l->move_check = fn; }

/* ---- subscribers ---------------------------------------------------------------------- */

static void catch_up_leave(struct sub *s);
static void on_drain(struct ws_conn *c);

static void on_close(struct ws_conn *c)
{
    struct sub *s = ws_conn_data(c);
    struct lhunt *lh = s->lh;
    if (s->catching) catch_up_leave(s);
    if (s->prev) s->prev->next = s->next;
    else lh->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    lh->n_subs--;
    lh->l->conns--;
    free(s);
}

static const struct ws_ops sub_ops = {on_text, on_close, on_drain};

/* ---- resume ----------------------------------------------------------------------- */

/* A subscriber with since= catches up before it is live: it is queued in the replay
 * queue, and each loop turn (the replay tick, 1 ms: at least one poll for I/O between
 * two turns) serves the queued subscribers one slice each, first come first served, of
 * at most replay_slice_bytes (and half its connection's queue), until replay_turn_bytes
 * are used in the turn. After a slice the subscriber waits until its socket took it all
 * (on_drain), so a client that reads slowly is served slowly, and one that does not read
 * costs nothing. The frames come from the window or, older, from the hunt's archive: the
 * frames of seqs 1..arch_n, made by replaying the hunt's log from the store into a scratch
 * engine (the messages carry outcomes such as scores, which the log does not hold) a page
 * at a time, on demand, within the same byte budget. Each event is thus read, applied and
 * encoded once per archive, whatever the number of resumes (a big definition is parsed
 * once); the archive is shared by the hunt's resumes and freed replay_keep_ms after the
 * last one ends. Hunts over replay_events_max events are not replayed: a resume older than
 * their window gets a resync, which is the only way one resume affects another's. */

static uint64_t oldest_seq(const struct lhunt *lh) { return lh->seq + 1 - lh->win_count; }

/* The frame of durable event seq (at most lh->seq) if the window or the archive has it. */
static struct ws_buf *frame_at(const struct lhunt *lh, uint64_t seq)
{
    uint64_t oldest = oldest_seq(lh);
    if (seq >= oldest)
        return lh->win[(lh->win_head + (seq - oldest)) % lh->l->cfg.window_events];
    return seq <= lh->arch_n ? lh->arch[seq - 1] : NULL;
}

/* Appends f to the archive (the archive takes the caller's reference); -1 out of memory. */
static int arch_push(struct lhunt *lh, struct ws_buf *f)
{
    if (lh->arch_n == lh->arch_cap) {
        size_t cap = lh->arch_cap ? lh->arch_cap * 2 : 256;
        struct ws_buf **v = realloc(lh->arch, cap * sizeof *v);
        if (!v) return -1;
        lh->arch = v;
        lh->arch_cap = cap;
    }
    lh->arch[lh->arch_n++] = f;
    lh->arch_bytes += f->len;
    lh->l->arch_bytes += f->len;
    return 0;
}

static void arch_free(struct lhunt *lh)
{
    for (size_t i = 0; i < lh->arch_n; i++) ws_buf_unref(lh->arch[i]);
    free(lh->arch);
    engine_hunt_destroy(lh->arch_eng);
    lh->l->arch_bytes -= lh->arch_bytes;
    lh->arch = NULL;
    lh->arch_eng = NULL;
    lh->arch_n = lh->arch_cap = lh->arch_bytes = 0;
    lh->arch_on = 0;
    if (h2o_timeout_is_linked(&lh->arch_keep)) h2o_timeout_unlink(&lh->arch_keep);
}

static void on_arch_keep(h2o_timeout_entry_t *e)
{
    struct lhunt *lh = H2O_STRUCT_FROM_MEMBER(struct lhunt, arch_keep, e);
    if (!lh->readers) arch_free(lh);
}

/* A frame leaving the window: a joined archive keeps it (1: f's reference taken). */
static int arch_take_evicted(struct lhunt *lh, struct ws_buf *f)
{
    if (!lh->arch_on || lh->arch_eng || f->seq != lh->arch_n + 1 ||
        lh->arch_n >= lh->l->cfg.replay_events_max)
        return 0;
    if (arch_push(lh, f) == 0) return 1;
    arch_free(lh); /* out of memory: a later resume rebuilds it */
    return 0;
}

/* 1 if the archive can still grow from the store towards the window. */
static int arch_can_grow(const struct lhunt *lh)
{
    const struct live *l = lh->l;
    return l->reader && lh->seq <= l->cfg.replay_events_max && (!lh->arch_on || lh->arch_eng);
}

struct page {
    struct lhunt *lh;
    uint64_t upto;
    size_t max, used;
};

/* One event of the log into the archive; checked again as it is replayed. */
static int page_event(const struct store_event *se, void *arg)
{
    struct page *p = arg;
    struct lhunt *lh = p->lh;
    struct event ev;
    struct engine_outcome out;
    struct ws_buf *f;
    if (se->seq != lh->arch_n + 1 ||
        event_read(&ev, se->seq, se->time_ms, se->type, se->player, se->data,
                          se->data_len) ||
        engine_apply(lh->arch_eng, &ev, &out, NULL, 0) || !(f = event_frame(lh->l, &ev, &out)))
        return -1;
    if (arch_push(lh, f)) {
        ws_buf_unref(f);
        return -1;
    }
    lh->l->replay_store_events++;
    p->used += se->data_len + f->len;
    return lh->arch_n >= p->upto || p->used >= p->max ? 1 : 0;
}

/* Reads the next page of lh's log into the archive: events until max bytes (their log
 * data and frames; at least one event) or the window. The bytes used, or -1 when it
 * cannot (hunt too big, store error, out of memory). */
static long arch_grow(struct lhunt *lh, size_t max)
{
    struct live *l = lh->l;
    uint64_t upto = oldest_seq(lh) - 1;
    if (!arch_can_grow(lh)) return -1;
    if (!lh->arch_on) {
        if (!(lh->arch_eng = engine_hunt_create(engine_hunt_id(lh->h)))) return -1;
        lh->arch_on = 1;
        l->store_replays++;
    }
    assert(lh->arch_n < upto);
    struct page p = {lh, upto, max, 0};
    if (store_each_event(l->reader, engine_hunt_id(lh->h), lh->arch_n + 1, page_event, &p) != 1) {
        arch_free(lh);
        return -1;
    }
    if (lh->arch_n == upto) { /* joined: the window's evictions extend it from now on */
        engine_hunt_destroy(lh->arch_eng);
        lh->arch_eng = NULL;
    }
    return (long)p.used;
}

/* The replay queue (FIFO). Pushing arms the replay tick. */
static void rq_push(struct sub *s)
{
    struct live *l = s->lh->l;
    if (s->queued) return;
    s->queued = 1;
    s->rq_next = NULL;
    s->rq_prev = l->rq_tail;
    if (l->rq_tail) l->rq_tail->rq_next = s;
    else l->rq_head = s;
    l->rq_tail = s;
    if (!h2o_timeout_is_linked(&l->replay_tick))
        h2o_timeout_link(l->loop, &l->replay_timeout, &l->replay_tick);
}

static void rq_remove(struct sub *s)
{
    struct live *l = s->lh->l;
    if (!s->queued) return;
    if (s->rq_prev) s->rq_prev->rq_next = s->rq_next;
    else l->rq_head = s->rq_next;
    if (s->rq_next) s->rq_next->rq_prev = s->rq_prev;
    else l->rq_tail = s->rq_prev;
    s->queued = 0;
    s->rq_prev = s->rq_next = NULL;
}

/* s no longer catches up (live now, or gone). */
static void catch_up_leave(struct sub *s)
{
    struct lhunt *lh = s->lh;
    rq_remove(s);
    s->catching = 0;
    lh->l->catching--;
    if (--lh->readers == 0 && lh->arch_on)
        h2o_timeout_link(lh->l->loop, &lh->l->keep_timeout, &lh->arch_keep);
}

static void send_resync(struct sub *s)
{
    struct ws_buf *r = resync_frame(s->lh->seq);
    s->lh->l->resyncs++;
    if (r) send_durable(s, r);
    ws_buf_unref(r);
}

/* s has every event up to lh->seq (or resync: what it needs is no longer kept); from now
 * on broadcasts reach it. */
static void catch_up_end(struct sub *s, int resync)
{
    catch_up_leave(s);
    if (resync) {
        s->lh->l->replay_refused++;
        send_resync(s);
    }
    if (s->lh->lb_frame) send_lossy(s, s->lh->lb_frame);
}

/* One slice of s's catch-up: the frames from next_seq on, at most max bytes of them (at
 * least one), reading pages of the log into the archive first when neither the window
 * nor the archive has the next one (counted in the same max). Returns the bytes it cost. */
static size_t slice(struct sub *s, size_t max)
{
    struct lhunt *lh = s->lh;
    struct live *l = lh->l;
    size_t cost = 0, sent = 0;
    int resync = 0;
    if (ws_conn_closing(s->c)) return 0; /* on_close is coming */
    while (s->next_seq <= lh->seq) {
        struct ws_buf *f = frame_at(lh, s->next_seq);
        if (!f) {
            long n = cost < max ? arch_grow(lh, max - cost) : 0;
            if (n < 0) resync = 1;
            if (n <= 0) break;
            cost += (size_t)n;
            continue;
        }
        if (sent && cost + f->len > max) break;
        if (ws_conn_send(s->c, f, 0)) {
            cut_off(s);
            return cost;
        }
        if (s->next_seq < oldest_seq(lh)) l->store_replayed++;
        cost += f->len;
        sent += f->len;
        s->next_seq++;
    }
    if (sent) {
        l->replay_slices++;
        l->replay_bytes += sent;
    }
    if (resync || s->next_seq > lh->seq) catch_up_end(s, resync);
    else if (!sent) rq_push(s); /* nothing queued, so no on_drain: next turn */
    ws_conn_flush(s->c);        /* its on_drain queues it for the next slice */
    return cost;
}

static void on_replay_tick(h2o_timeout_entry_t *e)
{
    struct live *l = H2O_STRUCT_FROM_MEMBER(struct live, replay_tick, e);
    size_t left = l->cfg.replay_turn_bytes, room = l->cfg.queue_bytes_max / 2;
    size_t max = l->cfg.replay_slice_bytes < room ? l->cfg.replay_slice_bytes : room;
    struct sub *s;
    while (left && (s = l->rq_head)) {
        rq_remove(s);
        size_t used = slice(s, max < left ? max : left);
        left -= used < left ? used : left;
    }
    if (!l->rq_head) return;
    l->replay_turns_full++;
    h2o_timeout_link(l->loop, &l->replay_timeout, &l->replay_tick);
}

static void on_drain(struct ws_conn *c)
{
    struct sub *s = ws_conn_data(c);
    if (s->catching) rq_push(s);
}

/* since=: nothing to do when up to date, a resync when since is ahead or older than
 * what is kept, else s catches up from since + 1, starting at the next replay tick. */
static void catch_up_start(struct sub *s, uint64_t since)
{
    struct lhunt *lh = s->lh;
    struct live *l = lh->l;
    if (since == lh->seq) return;
    if (since > lh->seq || (!frame_at(lh, since + 1) && !arch_can_grow(lh))) {
        if (since < lh->seq) l->replay_refused++;
        send_resync(s);
        return;
    }
    s->catching = 1;
    s->next_seq = since + 1;
    l->catching++;
    if (lh->readers++ == 0 && h2o_timeout_is_linked(&lh->arch_keep))
        h2o_timeout_unlink(&lh->arch_keep);
    rq_push(s);
}

int live_subscribe(struct live *l, struct hunt *h, void *sock, const uint8_t player[16],
                   int64_t since)
{
    struct lhunt *lh = lhunt_get(l, h, engine_seq(h));
    struct sub *s = lh ? calloc(1, sizeof *s) : NULL;
    if (s) { /* ready before ws_conn_create, which may already pass messages to on_text */
        s->lh = lh;
        memcpy(s->player, player, 16);
    }
    struct ws_conn *c = s ? ws_conn_create(l->ws, sock, &sub_ops, s) : NULL;
    if (!c) {
        if (!s) h2o_socket_close(sock);
        free(s);
        return -1;
    }
    s->c = c;
    s->next = lh->subs;
    if (lh->subs) lh->subs->prev = s;
    lh->subs = s;
    lh->n_subs++;
    l->conns++;
    if (since >= 0) catch_up_start(s, (uint64_t)since);
    if (!s->catching && lh->lb_frame) send_lossy(s, lh->lb_frame);
    ws_conn_flush(c);
    return 0;
}

void live_rebase(struct live *l, struct hunt *h, uint64_t seq)
{
    struct lhunt *lh = hmap_get(&l->hunts, &h, sizeof h);
    if (!lh || seq == lh->seq) return;
    uint64_t had = lh->seq;
    for (size_t i = 0; i < lh->win_count; i++)
        ws_buf_unref(lh->win[(lh->win_head + i) % l->cfg.window_events]);
    lh->win_head = lh->win_count = 0;
    arch_free(lh); /* it was joined to the window: rebuilt from the store on demand */
    lh->seq = seq;
    for (struct sub *s = lh->subs; s; s = s->next) {
        if (!s->catching) catch_up_start(s, had); /* from had + 1, out of the store */
        else rq_push(s);
        ws_conn_flush(s->c);
    }
    lb_changed(lh);
}

/* ---- lifecycle and figures ------------------------------------------------------------ */

struct live *live_create(void *loop, struct store *reader, const struct live_config *cfg,
                         live_name_fn name, void *name_ctx)
{
    struct live *l = calloc(1, sizeof *l);
    struct ws_config wc = {cfg->queue_bytes_max, cfg->ping_ms, cfg->sndbuf_bytes};
    if (!l || !(l->ws = ws_ctx_create(loop, &wc))) {
        free(l);
        return NULL;
    }
    l->cfg = *cfg;
    if (l->cfg.window_events == 0) l->cfg.window_events = 1;
    if (l->cfg.replay_slice_bytes == 0) l->cfg.replay_slice_bytes = LIVE_REPLAY_SLICE_BYTES;
    if (l->cfg.replay_turn_bytes == 0) l->cfg.replay_turn_bytes = LIVE_REPLAY_TURN_BYTES;
    l->loop = loop;
    l->reader = reader;
    l->name = name;
    l->name_ctx = name_ctx;
    hmap_init(&l->hunts);
    h2o_timeout_init(l->loop, &l->flush_timeout, 0);
    h2o_timeout_init(l->loop, &l->lb_timeout, cfg->leaderboard_ms);
    h2o_timeout_init(l->loop, &l->replay_timeout, 1); /* 0 would run again in the same turn */
    h2o_timeout_init(l->loop, &l->keep_timeout, cfg->replay_keep_ms);
    l->flush_tick.cb = on_flush;
    l->replay_tick.cb = on_replay_tick;
    return l;
}

static void free_lhunt(void *v, void *ctx)
{
    struct lhunt *lh = v;
    while (lh->subs) ws_conn_abort(lh->subs->c);
    arch_free(lh);
    if (h2o_timeout_is_linked(&lh->lb_tick)) h2o_timeout_unlink(&lh->lb_tick);
    for (size_t i = 0; i < lh->win_count; i++)
        ws_buf_unref(lh->win[(lh->win_head + i) % lh->l->cfg.window_events]);
    free(lh->win);
    ws_buf_unref(lh->lb_frame);
    hmap_deinit(&lh->pos_ms);
    free(lh);
}

void live_destroy(struct live *l)
{
    if (!l) return;
    hmap_each(&l->hunts, free_lhunt, NULL);
    hmap_deinit(&l->hunts);
    if (h2o_timeout_is_linked(&l->flush_tick)) h2o_timeout_unlink(&l->flush_tick);
    if (h2o_timeout_is_linked(&l->replay_tick)) h2o_timeout_unlink(&l->replay_tick);
    h2o_timeout_dispose(l->loop, &l->flush_timeout);
    h2o_timeout_dispose(l->loop, &l->lb_timeout);
    h2o_timeout_dispose(l->loop, &l->replay_timeout);
    h2o_timeout_dispose(l->loop, &l->keep_timeout);
    ws_ctx_destroy(l->ws);
    free(l);
}

size_t live_connections(const struct live *l, const struct hunt *h)
{
    struct lhunt *lh = hmap_get(&l->hunts, &h, sizeof h);
    return lh ? lh->n_subs : 0;
}

void live_render_metrics(const struct live *l, struct metrics_buf *b)
{
    const struct ws_stats *w = ws_ctx_stats(l->ws);
    metrics_printf(b,
                   "# TYPE veltrix_live_connections gauge\nveltrix_live_connections %zu\n"
                   "# TYPE veltrix_live_events_total counter\nveltrix_live_events_total %llu\n"
                   "# TYPE veltrix_live_messages_sent_total counter\n"
                   "veltrix_live_messages_sent_total %llu\n"
                   "# TYPE veltrix_live_bytes_sent_total counter\n"
                   "veltrix_live_bytes_sent_total %llu\n"
                   "# TYPE veltrix_live_messages_dropped_total counter\n"
                   "veltrix_live_messages_dropped_total %llu\n"
                   "# TYPE veltrix_live_positions_total counter\n"
                   "veltrix_live_positions_total %llu\n"
                   "# TYPE veltrix_live_positions_thinned_total counter\n"
                   "veltrix_live_positions_thinned_total %llu\n"
                   "# TYPE veltrix_live_leaderboard_pushes_total counter\n"
                   "veltrix_live_leaderboard_pushes_total %llu\n"
                   "# TYPE veltrix_live_resyncs_total counter\nveltrix_live_resyncs_total %llu\n"
                   "# TYPE veltrix_live_slow_closed_total counter\n"
                   "veltrix_live_slow_closed_total %llu\n"
                   "# TYPE veltrix_live_protocol_closed_total counter\n"
                   "veltrix_live_protocol_closed_total %llu\n"
                   "# TYPE veltrix_live_dead_closed_total counter\n"
                   "veltrix_live_dead_closed_total %llu\n"
                   "# TYPE veltrix_live_store_replays_total counter\n"
                   "veltrix_live_store_replays_total %llu\n"
                   "# TYPE veltrix_live_store_replayed_events_total counter\n"
                   "veltrix_live_store_replayed_events_total %llu\n",
                   l->conns, (unsigned long long)l->events, (unsigned long long)w->frames_sent,
                   (unsigned long long)w->bytes_sent, (unsigned long long)l->dropped,
                   (unsigned long long)l->positions, (unsigned long long)l->positions_thinned,
                   (unsigned long long)l->lb_pushes, (unsigned long long)l->resyncs,
                   (unsigned long long)l->slow_closed, (unsigned long long)w->protocol_closes,
                   (unsigned long long)w->dead_closes, (unsigned long long)l->store_replays,
                   (unsigned long long)l->store_replayed);
    metrics_printf(b,
                   "# TYPE veltrix_live_store_replays_refused_total counter\n"
                   "veltrix_live_store_replays_refused_total %llu\n"
                   "# TYPE veltrix_live_replay_catching_up gauge\n"
                   "veltrix_live_replay_catching_up %zu\n"
                   "# TYPE veltrix_live_replay_slices_total counter\n"
                   "veltrix_live_replay_slices_total %llu\n"
                   "# TYPE veltrix_live_replay_bytes_total counter\n"
                   "veltrix_live_replay_bytes_total %llu\n"
                   "# TYPE veltrix_live_replay_turns_full_total counter\n"
                   "veltrix_live_replay_turns_full_total %llu\n"
                   "# TYPE veltrix_live_replay_store_events_total counter\n"
                   "veltrix_live_replay_store_events_total %llu\n"
                   "# TYPE veltrix_live_replay_archive_bytes gauge\n"
                   "veltrix_live_replay_archive_bytes %zu\n",
                   (unsigned long long)l->replay_refused, l->catching,
                   (unsigned long long)l->replay_slices, (unsigned long long)l->replay_bytes,
                   (unsigned long long)l->replay_turns_full,
                   (unsigned long long)l->replay_store_events, l->arch_bytes);
}
