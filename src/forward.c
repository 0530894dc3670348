/* forward.c — see forward.h: the view of owners, the peers' connection pools, sending a
 * request and relaying its answer, checking a forwarded request where it arrives.
 *
 * A forwarded request's life: forward_send() builds the head and copies the body (the
 * client may leave, and h2o then frees its request), takes a connection from the peer's
 * socketpool (h2o_http1client_connect_with_pool: a pooled idle connection that is still
 * open, or a new one), writes, reads the answer's head and body into its own buffer,
 * then answers the held client request in one go (http_send_ref) and the connection goes
 * back to the pool (libh2o does it when the answer was complete and keep-alive). */
#include "forward.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <h2o/http1client.h>
#include <h2o/socketpool.h>
#include <h2o/url.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cluster.h"
#include "http.h"
#include "node.h"
#include "vx.h"

#define KEY_DOMAIN "veltrix-forward-key-v1:" /* auth_derive: one MAC key per receiving node */
#define VIEW_MAX_AGE_MS 100                  /* the view is parsed again after this */
#define VIEW_MIN_AGE_MS 10                   /* ... or after a failure, but not sooner */
#define ANSWER_BYTES_MAX (64u << 20)         /* a larger answer from a peer: 503 */
#define ADDR_TEXT_MAX 64

/* The answer headers relayed to the client (h2o gives them in lower case). */
static const char *const RELAYED[] = {"content-type", "retry-after", "location",
                                      "idempotent-replayed", "etag", "cache-control"};
#define N_RELAYED (sizeof RELAYED / sizeof RELAYED[0])

struct forward_peer {
    struct forward_peer *next;
    char id[CLUSTER_NODE_ID_MAX + 1];
    char *advertise;
    char authority[300]; /* the Host header */
    h2o_socketpool_t pool;
    size_t inflight;
    uint8_t key[32]; /* the MAC key of requests sent to it */
};

struct view_node {
    char id[CLUSTER_NODE_ID_MAX + 1];
    int alive;
    struct forward_peer *peer; /* NULL: this node, or an advertise URL that does not parse */
};
struct view_hunt {
    char hunt[VX_ID_MAX + 1];
    int owner; /* index in nodes, -1: no live lease */
};

enum { R_RELAYED, R_UNREACHABLE, R_BUSY, R_NO_OWNER, R_REFUSED, R_N };
static const char *const RESULT_NAME[R_N] = {"relayed", "unreachable", "busy", "no_owner",
                                             "refused"};

struct forward {
    struct forward_config c;
    char self[CLUSTER_NODE_ID_MAX + 1];
    uint8_t self_key[32];
    h2o_timeout_t io_timeout;
    h2o_multithread_queue_t *queue; /* name lookups (advertise URLs with a host name) */
    h2o_multithread_receiver_t getaddr;
    h2o_http1client_ctx_t ctx;
    struct forward_peer *peers;
    struct fwd *inflight; /* every request in flight, for forward_destroy */
    struct view_node *nodes;
    size_t n_nodes;
    struct view_hunt *hunts;
    size_t n_hunts;
    int64_t view_ms, stale; /* when the view was parsed; stale: parse again soon */
    uint64_t results[R_N];
    struct metrics_hist latency;
};

/* One request in flight. */
struct fwd {
    struct forward *f;
    struct forward_peer *p;
    struct fwd *prev, *next;
    struct http_req *r; /* held */
    h2o_http1client_t *client;
    h2o_iovec_t out[2]; /* head, body */
    char *head, *body;
    int status;
    struct http_hdr hdrs[N_RELAYED];
    size_t n_hdrs;
    char *answer;
    size_t answer_len, answer_cap;
    uint64_t t0_ns;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void node_key(const struct forward *f, const char *node, uint8_t key[32])
{
    auth_derive(f->c.auth, KEY_DOMAIN, node, strlen(node), key);
}

/* ---- peers and the view -------------------------------------------------------------- */

static struct forward_peer *peer_get(struct forward *f, const char *id, const char *advertise)
{
    struct forward_peer *p;
    h2o_url_t u;
    for (p = f->peers; p; p = p->next)
        if (!strcmp(p->id, id) && !strcmp(p->advertise, advertise)) return p;
    if (h2o_url_parse(advertise, strlen(advertise), &u) || u.scheme != &H2O_URL_SCHEME_HTTP ||
        u.authority.len >= sizeof p->authority || !(p = calloc(1, sizeof *p)))
        return NULL;
    if (!(p->advertise = strdup(advertise))) {
        free(p);
        return NULL;
    }
    snprintf(p->id, sizeof p->id, "%s", id);
    memcpy(p->authority, u.authority.base, u.authority.len);
    h2o_socketpool_init_by_hostport(&p->pool, u.host, h2o_url_get_port(&u), 0, f->c.inflight_max);
    h2o_socketpool_set_timeout(&p->pool, f->c.loop, f->c.idle_ms);
    node_key(f, id, p->key);
    p->next = f->peers;
    f->peers = p;
    return p;
}

static void view_clear(struct forward *f)
{
    free(f->nodes);
    free(f->hunts);
    f->nodes = NULL;
    f->hunts = NULL;
    f->n_nodes = f->n_hunts = 0;
}

static int view_node_index(const struct forward *f, const char *id)
{
    for (size_t i = 0; id && i < f->n_nodes; i++)
        if (!strcmp(f->nodes[i].id, id)) return (int)i;
    return -1;
}

/* Rebuilds the view from the node's last published round (GET /v1/cluster's body). */
static void view_load(struct forward *f, int64_t now)
{
    char *body = node_cluster_body(f->c.node);
    json_t *v = body ? json_loads(body, 0, NULL) : NULL, *nodes, *hunts, *x;
    size_t i;
    free(body);
    f->view_ms = now;
    f->stale = 0;
    if (!v) return; /* keep the last view: out of memory, or no round published yet */
    view_clear(f);
    nodes = json_object_get(v, "nodes");
    hunts = json_object_get(v, "hunts");
    f->nodes = calloc(json_array_size(nodes) + 1, sizeof *f->nodes);
    f->hunts = calloc(json_array_size(hunts) + 1, sizeof *f->hunts);
    if (!f->nodes || !f->hunts) {
        view_clear(f);
        json_decref(v);
        return;
    }
    json_array_foreach(nodes, i, x) {
        const char *id = json_string_value(json_object_get(x, "node_id"));
        const char *adv = json_string_value(json_object_get(x, "advertise"));
        if (!id || !adv || strlen(id) > CLUSTER_NODE_ID_MAX) continue;
        struct view_node *n = &f->nodes[f->n_nodes++];
        snprintf(n->id, sizeof n->id, "%s", id);
        n->alive = json_is_true(json_object_get(x, "alive"));
        n->peer = strcmp(id, f->self) ? peer_get(f, id, adv) : NULL;
    }
    json_array_foreach(hunts, i, x) {
        const char *h = json_string_value(json_object_get(x, "hunt"));
        if (!h || strlen(h) > VX_ID_MAX) continue;
        struct view_hunt *vh = &f->hunts[f->n_hunts++];
        snprintf(vh->hunt, sizeof vh->hunt, "%s", h);
        vh->owner = view_node_index(f, json_string_value(json_object_get(x, "owner")));
    }
    json_decref(v);
}

/* The live node placement gives a hunt that has no lease yet, or -1. */
static int view_place(const struct forward *f, const char *hunt)
{
    struct cluster_node live[64];
    int idx[64];
    size_t n = 0;
    for (size_t i = 0; i < f->n_nodes && n < 64; i++) {
        live[n] = (struct cluster_node){f->nodes[i].id, f->nodes[i].alive};
        idx[n++] = (int)i;
    }
    int k = cluster_place(hunt, live, n);
    return k < 0 ? -1 : idx[k];
}

enum forward_where forward_route(struct forward *f, const char *hunt, struct forward_peer **peer)
{
    int64_t now = wall_ms(), age = now - f->view_ms;
    if (age >= VIEW_MAX_AGE_MS || age < 0 || (f->stale && age >= VIEW_MIN_AGE_MS))
        view_load(f, now);
    int owner = -2;
    for (size_t i = 0; owner == -2 && i < f->n_hunts; i++)
        if (!strcmp(f->hunts[i].hunt, hunt)) owner = f->hunts[i].owner;
    if (owner == -2) { /* no lease yet: a hunt being created goes where it will be placed */
        owner = view_place(f, hunt);
        if (owner >= 0 && !strcmp(f->nodes[owner].id, f->self)) return FORWARD_HERE;
    }
    /* An owner whose heartbeat stopped (dead, paused or cut off) would hold the request
     * until a timeout: its lease is about to lapse, so the hunt is moving. */
    *peer = owner >= 0 && f->nodes[owner].alive ? f->nodes[owner].peer : NULL;
    if (*peer) return FORWARD_PEER;
    f->results[R_NO_OWNER]++;
    return FORWARD_NOWHERE;
}

/* ---- sending and relaying ------------------------------------------------------------ */

/* Takes w off the list of requests in flight (it is being answered). */
static void detach(struct fwd *w)
{
    struct forward *f = w->f;
    if (w->prev) w->prev->next = w->next;
    else f->inflight = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->p->inflight--;
}

static void fwd_free(struct fwd *w)
{
    free(w->head);
    free(w->body);
    for (size_t i = 0; i < w->n_hdrs; i++) free((char *)w->hdrs[i].value);
    free(w->answer);
    free(w);
}

static void answer_sent(void *arg) { fwd_free(arg); }

/* The whole answer came: relay it (w is freed once h2o has sent it). */
static void relay(struct fwd *w)
{
    w->client = NULL; /* libh2o frees it when the callback returns */
    detach(w);
    w->f->results[R_RELAYED]++;
    if (w->status == 503) w->f->stale = 1; /* e.g. hunt_moving: the owner may have changed */
    metrics_observe_ns(&w->f->latency, metrics_now_ns() - w->t0_ns);
    http_send_ref(w->r, w->status, w->hdrs, w->n_hdrs, w->answer ? w->answer : "",
                  w->answer_len, answer_sent, w);
}

static void fail(struct fwd *w, const char *why)
{
    w->client = NULL;
    detach(w);
    w->f->results[R_UNREACHABLE]++;
    w->f->stale = 1; /* the owner may have moved: read the view again */
    http_error(w->r, 503, "hunt_moving",
               "the node that owns this hunt (%s) did not answer (%s); retry", w->p->id, why);
    fwd_free(w);
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    struct fwd *w = client->data;
    h2o_buffer_t *in = client->sock->input;
    if (errstr && errstr != h2o_http1client_error_is_eos) {
        fail(w, errstr);
        return -1;
    }
    if (in->size) {
        if (w->answer_len + in->size > ANSWER_BYTES_MAX) {
            fail(w, "answer too large");
            return -1;
        }
        if (w->answer_len + in->size > w->answer_cap) {
            size_t cap = (w->answer_len + in->size) * 2;
            char *a = realloc(w->answer, cap);
            if (!a) {
                fail(w, "out of memory");
                return -1;
            }
            w->answer = a;
            w->answer_cap = cap;
        }
        memcpy(w->answer + w->answer_len, in->bytes, in->size);
        w->answer_len += in->size;
        h2o_buffer_consume(&client->sock->input, in->size);
    }
    if (errstr == h2o_http1client_error_is_eos) relay(w);
    return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       h2o_header_t *headers, size_t num_headers, int rlen)
{
    struct fwd *w = client->data;
    if (errstr && errstr != h2o_http1client_error_is_eos) {
        fail(w, errstr);
        return NULL;
    }
    w->status = status;
    for (size_t i = 0; i < num_headers && w->n_hdrs < N_RELAYED; i++)
        for (size_t k = 0; k < N_RELAYED; k++) {
            if (!h2o_memis(headers[i].name->base, headers[i].name->len, RELAYED[k],
                           strlen(RELAYED[k])))
                continue;
            char *v = strndup(headers[i].value.base, headers[i].value.len);
            if (!v) continue;
            w->hdrs[w->n_hdrs++] = (struct http_hdr){RELAYED[k], v, headers[i].value.len};
        }
    if (errstr == h2o_http1client_error_is_eos) { /* no body (204, 304) */
        relay(w);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    struct fwd *w = client->data;
    if (errstr) {
        fail(w, errstr);
        return NULL;
    }
    *reqbufs = w->out;
    *reqbufcnt = w->out[1].len ? 2 : 1;
    *method_is_head = 0;
    return on_head;
}

/* A copy of header name's value (NUL-terminated; "" when absent), or NULL. */
static char *header_dup(struct http_req *r, const char *name)
{
    struct http_str v = http_header(r, name);
    return v.p ? strndup(v.p, v.len) : strdup("");
}

static void addr_text(const uint8_t a[16], char out[ADDR_TEXT_MAX])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, mapped, 12)) inet_ntop(AF_INET, a + 12, out, ADDR_TEXT_MAX);
    else inet_ntop(AF_INET6, a, out, ADDR_TEXT_MAX);
}

/* Fills a cluster_fwd for r; its strings are malloc'd into s[0..4) (the caller frees). */
static int describe(struct http_req *r, const char *client, struct cluster_fwd *d, char *s[4])
{
    struct http_str m = http_method(r), t = http_target(r), b = http_body(r);
    s[0] = strndup(m.p, m.len);
    s[1] = strndup(t.p, t.len);
    s[2] = header_dup(r, "authorization");
    s[3] = header_dup(r, "idempotency-key");
    *d = (struct cluster_fwd){NULL, 0, client, s[0], s[1], s[2], s[3], {0}};
    auth_sha256(b.p, b.len, d->body_sha256);
    return s[0] && s[1] && s[2] && s[3] ? 0 : -1;
}

/* The request head for p: method, target, the client's headers that matter, the proof. */
static char *build_head(struct forward *f, struct forward_peer *p, struct http_req *r,
                        const char *client)
{
    char *s[4] = {NULL, NULL, NULL, NULL}, mac[CLUSTER_FWD_MAX], *head = NULL, *ctype = header_dup(r, "content-type");
    struct cluster_fwd d;
    size_t n = 0;
    if (!describe(r, client, &d, s) && ctype) {
        d.from = f->self;
        d.time_ms = wall_ms();
        if (!cluster_forward_sign(p->key, &d, mac)) {
            size_t cap = 1024 + strlen(s[0]) + strlen(s[1]) + strlen(s[2]) + strlen(s[3]) +
                         strlen(ctype) + strlen(p->authority) + strlen(client);
            if ((head = malloc(cap)))
                n = (size_t)snprintf(head, cap, "%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %zu\r\n",
                                     s[0], s[1], p->authority, http_body(r).len);
            for (int k = 2; head && k < 5; k++) {
                const char *name[] = {"", "", "authorization", "idempotency-key", "content-type"};
                const char *v = k < 4 ? s[k] : ctype;
                if (*v || http_header(r, name[k]).p)
                    n += (size_t)snprintf(head + n, cap - n, "%s: %s\r\n", name[k], v);
            }
            if (head)
                snprintf(head + n, cap - n, "x-veltrix-forwarded: %s\r\nx-veltrix-client: %s\r\n\r\n",
                         mac, client);
        }
    }
    for (int k = 0; k < 4; k++) free(s[k]);
    free(ctype);
    return head;
}

void forward_send(struct forward *f, struct forward_peer *p, struct http_req *r,
                  const uint8_t client_addr[16])
{
    char client[ADDR_TEXT_MAX];
    struct http_str b = http_body(r);
    if (p->inflight >= f->c.inflight_max) {
        f->results[R_BUSY]++;
        http_error(r, 503, "busy", "too many writes in flight to node %s; retry shortly", p->id);
        return;
    }
    addr_text(client_addr, client);
    struct fwd *w = calloc(1, sizeof *w);
    char *head = w ? build_head(f, p, r, client) : NULL;
    char *body = head ? malloc(b.len ? b.len : 1) : NULL;
    if (!body) {
        free(head);
        free(w);
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    memcpy(body, b.p, b.len);
    *w = (struct fwd){.f = f, .p = p, .head = head, .body = body, .t0_ns = metrics_now_ns()};
    w->out[0] = h2o_iovec_init(head, strlen(head));
    w->out[1] = h2o_iovec_init(body, b.len);
    w->next = f->inflight;
    if (f->inflight) f->inflight->prev = w;
    f->inflight = w;
    p->inflight++;
    w->r = http_hold(r);
    h2o_http1client_connect_with_pool(&w->client, w, &f->ctx, &p->pool, on_connect);
}

/* ---- the receiving side -------------------------------------------------------------- */

/* Parses an IPv4 or IPv6 address (n bytes of text) into 16 bytes, IPv4 mapped. */
static int addr_parse(const char *p, size_t n, uint8_t out[16])
{
    char buf[ADDR_TEXT_MAX];
    uint8_t a[16] = {0};
    if (!p || n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, a + 12) == 1)
        a[10] = a[11] = 0xff;
    else if (inet_pton(AF_INET6, buf, a) != 1)
        return -1;
    memcpy(out, a, 16);
    return 0;
}

int forward_client_addr(struct http_req *r, uint8_t addr[16])
{
    struct http_str c = http_header(r, "x-veltrix-client");
    return addr_parse(c.p, c.len, addr);
}

int forward_check(struct forward *f, struct http_req *r, uint8_t addr[16])
{
    struct http_str h = http_header(r, "x-veltrix-forwarded"), c = http_header(r, "x-veltrix-client");
    struct cluster_fwd d;
    struct cluster_fwd_in in;
    char *s[4] = {NULL, NULL, NULL, NULL}, client[ADDR_TEXT_MAX] = "";
    if (!h.p) return 0;
    int ok = c.p && c.len < sizeof client && !addr_parse(c.p, c.len, addr);
    if (ok) memcpy(client, c.p, c.len), client[c.len] = '\0';
    ok = ok && !describe(r, client, &d, s) &&
         !cluster_forward_check(f->self_key, h.p, h.len, &d, wall_ms(), f->c.skew_ms, &in) &&
         strcmp(in.from, f->self) != 0;
    for (int k = 0; k < 4; k++) free(s[k]);
    if (!ok) f->results[R_REFUSED]++;
    return ok ? 1 : -1;
}

/* ---- lifecycle and metrics ----------------------------------------------------------- */

struct forward *forward_create(const struct forward_config *c)
{
    struct forward *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->c = *c;
    snprintf(f->self, sizeof f->self, "%s", node_id(c->node));
    node_key(f, f->self, f->self_key);
    h2o_timeout_init(c->loop, &f->io_timeout, c->timeout_ms);
    f->queue = h2o_multithread_create_queue(c->loop);
    h2o_multithread_register_receiver(f->queue, &f->getaddr, h2o_hostinfo_getaddr_receiver);
    f->ctx = (h2o_http1client_ctx_t){c->loop, &f->getaddr, &f->io_timeout, NULL, NULL};
    return f;
}

void forward_destroy(struct forward *f)
{
    if (!f) return;
    while (f->inflight) {
        struct fwd *w = f->inflight;
        if (w->client) h2o_http1client_cancel(w->client);
        detach(w);
        http_error(w->r, 503, "hunt_moving", "this node is stopping; retry");
        fwd_free(w);
    }
    for (struct forward_peer *p = f->peers, *next; p; p = next) {
        next = p->next;
        h2o_socketpool_dispose(&p->pool);
        free(p->advertise);
        free(p);
    }
    view_clear(f);
    h2o_multithread_unregister_receiver(f->queue, &f->getaddr);
    h2o_multithread_destroy_queue(f->queue);
    h2o_timeout_dispose(f->c.loop, &f->io_timeout);
    free(f);
}

size_t forward_in_flight(const struct forward *f)
{
    size_t n = 0;
    for (const struct forward_peer *p = f->peers; p; p = p->next) n += p->inflight;
    return n;
}

void forward_render_metrics(struct forward *f, struct metrics_buf *b)
{
    metrics_printf(b, "# TYPE veltrix_forward_requests_total counter\n");
    for (int i = 0; i < R_N; i++)
        metrics_printf(b, "veltrix_forward_requests_total{result=\"%s\"} %llu\n", RESULT_NAME[i],
                       (unsigned long long)f->results[i]);
    metrics_printf(b, "# TYPE veltrix_forward_in_flight gauge\nveltrix_forward_in_flight %zu\n",
                   forward_in_flight(f));
    metrics_printf(b, "# TYPE veltrix_forward_duration_seconds histogram\n");
    metrics_render_hist(b, "veltrix_forward_duration_seconds", "", &f->latency, 0);
}
