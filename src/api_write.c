/* api_write.c — the one write path: where a hunt write goes (several nodes), idempotency keys,
 * room in the log, decide and apply in the engine, the log entry, and the answer once durable
 * (see the invariants in api.c).
 *
 * Invariant (several nodes): a hunt's event is logged here only under the lease epoch that
 * the gate was granted for the request being handled (api_write_route), never under one
 * looked up later: the store fences a batch whose epoch is no longer the hunt's. */
#include "api_int.h"
#include "node.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* ---- several nodes: where a hunt write goes ------------------------------------------ */

/* What the gate granted the request being handled (everything runs on the event loop: the
 * handler runs right after the gate, and the gate of every request sets or clears this). */
static struct {
    char hunt[ENGINE_ID_MAX + 1]; /* "": nothing granted */
    uint64_t epoch;
} granted;

/* A hunt write: any method but GET on a route under /v1/hunts/{hunt} (scans, items,
 * chests, positions, the definition, tiles, publishing the map). */
static int hunt_write(const struct http_route *rt)
{
    static const char prefix[] = "/v1/hunts/:";
    return strcmp(rt->method, "GET") != 0 && !strncmp(rt->pattern, prefix, sizeof prefix - 1) &&
           (rt->pattern[sizeof prefix - 1] == '/' || rt->pattern[sizeof prefix - 1] == '\0');
}

int api_write_route(struct http_req *r, int forwarded, const uint8_t client_addr[16])
{
    struct forward_peer *peer;
    struct http_str id = http_param(r, 0);
    char hunt[ENGINE_ID_MAX + 1];
    uint64_t epoch;
    granted.hunt[0] = '\0';
    if (!api_app.fwd || !hunt_write(http_req_route(r)) || !auth_valid_id(id.p, id.len))
        return 0; /* one node; not a hunt write; a bad id (the handler answers 400) */
    memcpy(hunt, id.p, id.len);
    hunt[id.len] = '\0';
    enum forward_where where = FORWARD_HERE;
    int ready = api_write_epoch(hunt, &epoch);
    if (!ready) {
        where = forward_route(api_app.fwd, hunt, &peer);
        /* A hunt without a lease yet (being created) placed here, or forwarded here by a
         * node whose placement says so (views may differ for a round): its first write
         * takes the lease, and every event of it is fenced. */
        if (where == FORWARD_HERE ||
            (forwarded && where == FORWARD_PEER && !forward_owner(api_app.fwd, hunt))) {
            int rc = node_claim(api_app.cfg.node, api_app.reader, hunt, &epoch);
            if (rc < 0) {
                http_error(r, 503, "store_unavailable", "the store did not answer; retry");
                return 1;
            }
            ready = rc == 1 ? api_write_epoch(hunt, &epoch) : 0;
            where = ready ? FORWARD_HERE : FORWARD_NOWHERE;
        }
    }
    if (ready == 2) { /* taking the hunt over: the write waits for it */
        if (api_take_wait(r, hunt, forwarded, client_addr)) return 1;
        where = FORWARD_NOWHERE;
    }
    if (where == FORWARD_HERE) {
        memcpy(granted.hunt, hunt, id.len + 1);
        granted.epoch = epoch;
        return 0;
    }
    if (where == FORWARD_PEER && !forwarded) {
        forward_send(api_app.fwd, peer, r, client_addr);
        return 1;
    }
    http_error(r, 503, "hunt_moving", "hunt '%s' is moving to another node; retry", hunt);
    return 1;
}

size_t api_forwards_in_flight(void)
{
    return api_app.fwd ? forward_in_flight(api_app.fwd) : 0;
}

/* The epoch h's events are logged under: the gate's grant for this request, or (writes of
 * no request: the demo hunt at start) this node's own lease, 0 when unfenced. */
static uint64_t write_epoch(const struct hunt *h)
{
    uint64_t epoch = 0;
    if (!strcmp(granted.hunt, engine_hunt_id(h))) return granted.epoch;
    if (api_write_epoch(engine_hunt_id(h), &epoch) != 1) epoch = 0;
    return epoch;
}

/* ---- idempotent, durable writes ------------------------------------------------------ */

struct write {
    struct http_req *req; /* held */
    struct idem_entry *idem;
    struct live_pending live; /* published once durable (frame NULL: none) */
    int status;
    char *body;
    size_t len;
};

static void replay(struct http_req *r, int status, const char *body, size_t len)
{
    http_add_header(r, "idempotent-replayed", "true");
    http_send(r, status, "application/json", body, len);
}

/* Reads the Idempotency-Key header and looks it up for (who, method, path). Returns 1
 * when the request was answered (replayed, key reused with another body, waiting on a
 * pending duplicate, or a malformed key); 0 to go on (ir->present says if a key came). */
int api_idem_check(struct http_req *r, const char *who, struct idem_req *ir)
{
    struct http_str k = http_header(r, "idempotency-key");
    ir->present = 0;
    if (!k.p) return 0;
    int ok = k.len >= 1 && k.len <= 255;
    for (size_t i = 0; ok && i < k.len; i++)
        ok = k.p[i] >= 0x20 && k.p[i] <= 0x7e;
    if (!ok) {
        http_error(r, 400, "invalid_request", "Idempotency-Key must be 1-255 printable ASCII");
        return 1;
    }
    memcpy(ir->key, k.p, k.len);
    ir->key[k.len] = '\0';
    struct http_str m = http_method(r), path = http_path(r);
    snprintf(ir->scope, sizeof ir->scope, "%s %.*s %.*s", who, (int)m.len, m.p,
             (int)(path.len > 150 ? 150 : path.len), path.p);
    struct http_str b = http_body(r);
    auth_sha256(b.p, b.len, ir->hash);
    ir->present = 1;
    int failed;
    struct idem_entry *e = idem_find(api_app.idem, ir->scope, ir->key, api_now_ms(), &failed);
    if (failed) { /* it may be a retry of a write already applied: never apply it again */
        http_error(r, 503, "store_unavailable",
                   "cannot look the Idempotency-Key up: the store does not answer; retry");
        return 1;
    }
    if (!e) return 0;
    int same = memcmp(e->req_hash, ir->hash, 32) == 0;
    idem_count(api_app.idem, same);
    if (!same) {
        http_error(r, 422, "idempotency_key_reused",
                   "this Idempotency-Key was used with a different body");
        return 1;
    }
    if (!e->pending) {
        replay(r, e->status, e->body, e->body_len);
        return 1;
    }
    struct idem_waiter *w = malloc(sizeof *w);
    if (!w) {
        http_error(r, 503, "unavailable", "out of memory");
        return 1;
    }
    w->req = http_hold(r);
    w->next = e->waiters;
    e->waiters = w;
    return 1;
}

/* Answers 503 unless the log can take one more entry. Checked before the engine decides,
 * so that everything applied in memory reaches the log. */
int api_log_room(struct http_req *r)
{
    if (log_store_down(api_app.log)) {
        http_error(r, 503, "store_unavailable",
                   "the store cannot take writes right now (disk full or unreachable); retry");
        return 0;
    }
    if (log_pending(api_app.log) < api_app.cfg.queue_max) return 1;
    api_app.writes_rejected_busy++;
    http_error(r, 503, "busy", "too many writes in flight; retry shortly");
    return 0;
}

/* The store refused the write's event: its hunt's lease moved to another node while the
 * write waited (several nodes, STORE_EFENCED). Nothing was written; the hunt's memory,
 * which applied the event, is rebuilt from the store in place (api_hunt_fenced: the
 * hunt's address stays valid), and the write's live frame is dropped. The client and every request
 * waiting on the same Idempotency-Key get 503 hunt_moving, and the key is forgotten:
 * a retry is decided afresh by the hunt's new owner. */
static void on_fenced(struct write *w)
{
    static const char moving[] = "the hunt moved to another node before this write was "
                                 "durable: nothing was written; retry";
    if (w->idem) {
        struct idem_waiter *wt = w->idem->waiters, *next;
        w->idem->waiters = NULL;
        idem_abort(api_app.idem, w->idem);
        for (; wt; wt = next) {
            next = wt->next;
            http_error(wt->req, 503, "hunt_moving", "%s", moving);
            free(wt);
        }
    }
    if (w->live.frame) ws_buf_unref(w->live.frame);
    http_error(w->req, 503, "hunt_moving", "%s", moving);
    if (w->live.h) {
        api_cluster_write(w->live.h, -1);
        api_hunt_fenced(engine_hunt_id(w->live.h));
    }
    free(w->body);
    free(w);
}

static void on_durable(void *arg, int status)
{
    struct write *w = arg;
    if (status == STORE_EFENCED) {
        on_fenced(w);
        return;
    }
    VX_FATAL_IF(status != 0); /* the log retries every other failure until it is durable */
    if (w->idem) {
        struct idem_waiter *wt = w->idem->waiters, *next;
        w->idem->waiters = NULL;
        VX_FATAL_IF(idem_finish(api_app.idem, w->idem, w->status, w->body, w->len));
        for (; wt; wt = next) {
            next = wt->next;
            replay(wt->req, w->status, w->body, w->len);
            free(wt);
        }
    }
    if (w->live.frame) live_publish(api_app.live, w->live.h, w->live.frame);
    if (w->live.h) api_cluster_write(w->live.h, -1);
    http_send(w->req, w->status, "application/json", w->body, w->len);
    free(w->body);
    free(w);
}

/* Queues e (ownership moves) with the idempotency record, and answers r with status and
 * body (malloc'd, ownership moves) once durable. api_log_room() must have been checked. */
void api_submit_raw(struct http_req *r, struct idem_req *ir, struct log_entry *e, int status,
                    char *body, size_t len)
{
    struct write *w = calloc(1, sizeof *w);
    VX_FATAL_IF(!w || !body); /* small allocations: out of memory is fatal here */
    w->status = status;
    w->body = body;
    w->len = len;
    w->live = api_app.live_next; /* the event in e, if it has one */
    api_app.live_next = (struct live_pending){NULL, NULL};
    if (ir && ir->present) {
        int64_t now = api_now_ms();
        /* Every 100 ms a keyed write also prunes up to STORE_PRUNE_IDEM_MAX of the store's
         * expired records: 20,000/s at most, in bounded bites, whatever the backlog. */
        if (now - api_app.idem_pruned_ms >= 100) {
            VX_FATAL_IF(log_entry_prune_idem(e, now - api_app.cfg.idem_retention_ms));
            api_app.idem_pruned_ms = now;
        }
        w->idem = idem_begin(api_app.idem, ir->scope, ir->key, ir->hash, now);
        struct store_idem row = {ir->scope, ir->key, {0}, status, body, w->len, now, NULL};
        memcpy(row.req_hash, ir->hash, 32);
        if (granted.hunt[0]) row.hunt = granted.hunt; /* several nodes: it goes with the hunt */
        VX_FATAL_IF(!w->idem || log_entry_idem(e, &row));
    }
    if (w->live.h) api_cluster_write(w->live.h, 1);
    w->req = http_hold(r);
    log_entry_on_done(e, on_durable, w);
    VX_FATAL_IF(log_submit(api_app.log, e) != 0); /* api_log_room() said there was room */
}

/* api_submit_raw with resp (stolen) encoded compactly. */
void api_submit(struct http_req *r, struct idem_req *ir, struct log_entry *e, int status,
                json_t *resp)
{
    char *body = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    api_submit_raw(r, ir, e, status, body, body ? strlen(body) : 0);
}

struct log_entry *api_new_entry(void)
{
    struct log_entry *e = log_entry_create(NULL, NULL);
    VX_FATAL_IF(!e);
    return e;
}

/* Adds ev (of hunt h) to entry e. */
void api_entry_event(struct log_entry *e, struct hunt *h, const struct event *ev)
{
    uint8_t small[256], *buf = small;
    size_t need = event_encode(ev, small, sizeof small);
    if (need > sizeof small) {
        buf = malloc(need);
        VX_FATAL_IF(!buf);
        event_encode(ev, buf, need);
    }
    struct store_event se = {engine_hunt_id(h), ev->seq, ev->time_ms, ev->type, {0}, buf, need,
                             {0}, 0, write_epoch(h)};
    memcpy(se.player, ev->player, 16);
    assert(engine_seq(h) == ev->seq); /* applied (api_apply) before it is logged */
    engine_head_hash(h, se.hash);
    se.has_hash = 1;
    VX_FATAL_IF(log_entry_event(e, &se));
    if (buf != small) free(buf);
}

/* Applies an event the engine just decided; a failure here is a programmer error. Its
 * live message is encoded now, while the outcome is fresh, and published once durable
 * (see api_submit() and on_durable()). */
void api_apply(struct hunt *h, const struct event *ev, struct engine_outcome *out)
{
    char err[256];
    struct engine_outcome mine;
    if (!out) out = &mine; /* the live message needs its hash */
    int rc = engine_apply(h, ev, out, err, sizeof err);
    if (rc) {
        fprintf(stderr, "veltrix: engine refused its own decision: %s\n", err);
        vx_fatal(__FILE__, __LINE__, "engine_apply of a decided event");
    }
    assert(!api_app.live_next.frame);
    api_app.live_next.h = h;
    VX_FATAL_IF(!(api_app.live_next.frame = live_event_frame(api_app.live, h, ev, out)));
    snap_after_event(api_app.cfg.snap, h);
}

void api_engine_error(struct http_req *r, int rc)
{
    http_error(r, api_engine_status(rc), engine_err_code(rc), "%s", engine_err_code(rc));
}

/* The HTTP status of an engine refusal (the engine knows nothing of HTTP). */
int api_engine_status(int err)
{
    switch (err) {
    case ENGINE_OK:
        return 200;
    case ENGINE_EINVAL:
    case ENGINE_INVALID_CODE:
        return 400;
    case ENGINE_NOT_ACTIVE:
        return 403;
    case ENGINE_ITEM_NOT_FOUND:
    case ENGINE_ZONE_NOT_FOUND:
    case ENGINE_NO_CHEST:
    case ENGINE_NOT_DEFINED:
        return 404;
    case ENGINE_ENTITY_IN_USE:
    case ENGINE_ALREADY_SCANNED:
    case ENGINE_ITEM_EXHAUSTED:
    case ENGINE_ALREADY_COLLECTED:
        return 409;
    case ENGINE_NOMEM:
        return 503;
    default:
        return 500;
    }
}
