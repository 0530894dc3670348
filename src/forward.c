/* forward.c — see forward.h: the view of owners, the connections to peers, sending a
 * request and relaying its answer, checking a forwarded request where it arrives.
 *
 * A forwarded request's life: forward_send() builds the head and copies the body (the
 * client may leave, and h2o then frees its request), takes an idle connection to the peer
 * (or has the peer's h2o socketpool connect a new one: it resolves host names off the
 * loop), writes, parses the answer's head (picohttpparser) and body as they come, answers
 * the held client request in one go (http_send_ref), and the connection goes back to the
 * peer's idle list. Connections are kept by this file rather than returned to the
 * socketpool, which exports and imports the socket at every request (four epoll_ctl, two
 * fcntl and a recv per request, measured). One timeout covers a request's whole way. */
#include "forward.h"

#include <arpa/inet.h>
#include <h2o.h>
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
#include "fwdbatch.h"
#include "http.h"
#include "net.h"
#include "node.h"
#include "vx.h"

#define KEY_DOMAIN "veltrix-forward-key-v1:" /* auth_derive: one MAC key per receiving node */
#define VIEW_MAX_AGE_MS 100                  /* the view is parsed again after this */
#define VIEW_MIN_AGE_MS 10                   /* ... or after a failure, but not sooner */
#define ANSWER_BYTES_MAX (64u << 20)         /* a larger answer from a peer: 503 */
#define HEAD_BYTES_MAX (64u << 10)         /* an answer's head larger than this: 503 */
#define ADDR_TEXT_MAX 64

/* The answer headers relayed to the client (h2o gives them in lower case). */
static const char *const RELAYED[] = {"content-type", "retry-after", "location",
                                      "idempotent-replayed", "etag", "cache-control"};
#define N_RELAYED (sizeof RELAYED / sizeof RELAYED[0])

struct conn;

struct forward_peer {
    struct forward_peer *next;
    char id[CLUSTER_NODE_ID_MAX + 1];
    char *advertise;
    char authority[300]; /* the Host header */
    h2o_socketpool_t pool; /* connects new connections (and resolves the host name) */
    struct forward *f;
    struct conn *idle;     /* idle connections, most recently used first */
    size_t inflight, conns;
    uint8_t key[32]; /* the MAC key of requests sent to it */
    struct fwd *pending, **pending_tail; /* writes waiting for the end of the turn */
    int no_batch; /* it answered a batch with 404/405 (an older build): one at a time */
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
    h2o_timeout_t io_timeout, idle_timeout;
    h2o_multithread_queue_t *queue; /* name lookups (advertise URLs with a host name) */
    h2o_multithread_receiver_t getaddr;
    struct forward_peer *peers;
    struct fwd *inflight; /* every request in flight, for forward_destroy */
    struct view_node *nodes;
    size_t n_nodes;
    struct view_hunt *hunts;
    size_t n_hunts;
    int64_t view_ms, stale; /* when the view was parsed; stale: parse again soon */
    uint64_t results[R_N], conns_opened, batches, batched;
    h2o_timeout_t turn;        /* 0 ms: the end of this loop turn */
    h2o_timeout_entry_t flush; /* sends the writes that wait (pending) */
    struct metrics_hist latency;
};

/* One request in flight. */
struct fwd {
    struct forward *f;
    struct forward_peer *p;
    struct fwd *prev, *next;
    struct http_req *r; /* held (NULL: a post of this node's own, forward_post) */
    void (*done)(void *arg, int status); /* a post's: the peer's status, 0 for none */
    void *done_arg;
    struct conn *c;     /* the connection carrying it (NULL: connecting, or answered) */
    h2o_socketpool_connect_request_t *connecting;
    h2o_timeout_entry_t timeout;
    h2o_iovec_t out[2]; /* head, body */
    char *head, *body;
    int status;
    struct http_hdr hdrs[N_RELAYED];
    size_t n_hdrs;
    char *answer;
    size_t answer_len;
    uint64_t t0_ns;
    struct fwdbatch_req q;  /* a client's write: what goes to the owner (into qbuf) */
    char *qbuf;
    struct fwd *mnext;      /* the next write waiting for its peer, or in the same batch */
    struct fwd *members;    /* a batch: the writes it carries (it answers no client) */
    size_t n_members;
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
    /* It keeps no socket (connections come back to p->idle), but it needs its loop. */
    h2o_socketpool_set_timeout(&p->pool, f->c.loop, f->c.idle_ms);
    p->f = f;
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

/* Reloads the view when it is old (or stale after a failure, and not too young). */
static void view_fresh(struct forward *f)
{
    int64_t now = wall_ms(), age = now - f->view_ms;
    if (age >= VIEW_MAX_AGE_MS || age < 0 || (f->stale && age >= VIEW_MIN_AGE_MS))
        view_load(f, now);
}

/* hunt's owner in the view (reloaded when old): a node index, -1 none, -2 no lease yet. */
static int view_owner(struct forward *f, const char *hunt)
{
    view_fresh(f);
    for (size_t i = 0; i < f->n_hunts; i++)
        if (!strcmp(f->hunts[i].hunt, hunt)) return f->hunts[i].owner;
    return -2;
}

const char *forward_owner(struct forward *f, const char *hunt)
{
    int owner = view_owner(f, hunt);
    return owner >= 0 ? f->nodes[owner].id : NULL;
}

enum forward_where forward_route(struct forward *f, const char *hunt, struct forward_peer **peer)
{
    int owner = view_owner(f, hunt);
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

/* ---- connections to peers ------------------------------------------------------------
 * Each peer has a list of idle connections; a request takes one (or a new one, connected
 * by the peer's socketpool: it resolves a host name off the loop) and gives it back once
 * the answer is complete. A connection is always reading: an idle one that gets data or
 * is closed by the peer is closed, a busy one parses the answer as it comes. One request
 * at a time per connection (no pipelining). */

struct phr_header { /* picohttpparser, inside libh2o (no header file installed) */
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status,
                       const char **msg, size_t *msg_len, struct phr_header *headers,
                       size_t *num_headers, size_t last_len);

struct conn {
    struct conn *next; /* in the peer's idle list */
    struct forward_peer *p;
    h2o_socket_t *sock;
    struct fwd *w;             /* the request it carries; NULL: idle */
    h2o_timeout_entry_t idle;  /* closes it after idle_ms unused */
};

/* Takes w off the list of requests in flight (it is being answered). */
static void detach(struct fwd *w)
{
    struct forward *f = w->f;
    if (h2o_timeout_is_linked(&w->timeout)) h2o_timeout_unlink(&w->timeout);
    if (w->prev) w->prev->next = w->next;
    else f->inflight = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->p->inflight -= w->members ? w->n_members : 1;
}

static void fwd_free(struct fwd *w)
{
    free(w->head);
    free(w->body);
    free(w->qbuf);
    for (size_t i = 0; i < w->n_hdrs; i++) free((char *)w->hdrs[i].value);
    free(w->answer);
    free(w);
}

static void answer_sent(void *arg) { fwd_free(arg); }

/* Relays w's answer (status, hdrs, answer set) to its client; w is freed once sent. */
static void relay_client(struct fwd *w)
{
    w->f->results[R_RELAYED]++;
    if (w->status == 503) w->f->stale = 1; /* e.g. hunt_moving: the owner may have changed */
    metrics_observe_ns(&w->f->latency, metrics_now_ns() - w->t0_ns);
    http_send_ref(w->r, w->status, w->hdrs, w->n_hdrs, w->answer ? w->answer : "",
                  w->answer_len, answer_sent, w);
}

/* A client's write that got no answer: 503 hunt_moving, and w is freed. */
static void fail_client(struct fwd *w, const char *why)
{
    w->f->results[R_UNREACHABLE]++;
    w->f->stale = 1; /* the owner may have moved: read the view again */
    http_error(w->r, 503, "hunt_moving",
               "the node that owns this hunt (%s) did not answer (%s); retry", w->p->id, why);
    fwd_free(w);
}

static void batch_relay(struct fwd *w);

/* The whole answer came: relay it (w is freed once h2o has sent it). */
static void relay(struct fwd *w)
{
    detach(w);
    if (w->members) {
        batch_relay(w);
    } else if (!w->r) { /* a post of this node's own: nobody waits for the bytes */
        w->done(w->done_arg, w->status);
        fwd_free(w);
    } else {
        relay_client(w);
    }
}

/* No answer: 503 hunt_moving (the connection, if any, is closed by the caller). */
static void fail(struct fwd *w, const char *why)
{
    detach(w);
    if (w->members) { /* every write of the batch */
        for (struct fwd *m = w->members, *next; m; m = next) {
            next = m->mnext;
            fail_client(m, why);
        }
        fwd_free(w);
    } else if (!w->r) {
        w->done(w->done_arg, 0);
        fwd_free(w);
    } else {
        fail_client(w, why);
    }
}

static void conn_close(struct conn *c)
{
    struct conn **pp;
    if (h2o_timeout_is_linked(&c->idle)) h2o_timeout_unlink(&c->idle);
    for (pp = &c->p->idle; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    c->p->conns--;
    h2o_socket_close(c->sock);
    free(c);
}

/* The connection broke: its request (if any) fails, the connection is closed. */
static void conn_fail(struct conn *c, const char *why)
{
    struct fwd *w = c->w;
    c->w = NULL;
    if (w) {
        w->c = NULL;
        fail(w, why);
    }
    conn_close(c);
}

static void on_idle_timeout(h2o_timeout_entry_t *e)
{
    conn_close(H2O_STRUCT_FROM_MEMBER(struct conn, idle, e));
}

static void conn_idle(struct conn *c)
{
    c->w = NULL;
    c->next = c->p->idle;
    c->p->idle = c;
    c->idle.cb = on_idle_timeout;
    h2o_timeout_link(c->p->f->c.loop, &c->p->f->idle_timeout, &c->idle);
}

/* Keeps a header of the owner's answer for the client if it is one to relay. */
static void keep_header(struct fwd *w, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    for (size_t k = 0; k < N_RELAYED && w->n_hdrs < N_RELAYED; k++) {
        if (!h2o_lcstris(name, name_len, RELAYED[k], strlen(RELAYED[k]))) continue;
        char *v = strndup(value, value_len);
        if (v) w->hdrs[w->n_hdrs++] = (struct http_hdr){RELAYED[k], v, value_len};
        return;
    }
}

/* The answer's status, the headers to relay, its body length and whether the connection
 * stays open. -1 for an answer this client does not take (chunked, no length). */
static int answer_head(struct fwd *w, int minor, int status, const struct phr_header *h, size_t n,
                       size_t *len, int *keep)
{
    int have_len = 0;
    *keep = minor >= 1;
    *len = 0;
    w->status = status;
    for (size_t i = 0; i < n; i++) {
        if (h2o_lcstris(h[i].name, h[i].name_len, H2O_STRLIT("content-length"))) {
            if ((*len = h2o_strtosize(h[i].value, h[i].value_len)) == SIZE_MAX) return -1;
            have_len = 1;
        } else if (h2o_lcstris(h[i].name, h[i].name_len, H2O_STRLIT("transfer-encoding"))) {
            return -1; /* Veltrix answers with a Content-Length */
        } else if (h2o_lcstris(h[i].name, h[i].name_len, H2O_STRLIT("connection"))) {
            *keep = h2o_contains_token(h[i].value, h[i].value_len, H2O_STRLIT("keep-alive"), ',') ||
                    (minor >= 1 && !h2o_contains_token(h[i].value, h[i].value_len,
                                                       H2O_STRLIT("close"), ','));
        }
        keep_header(w, h[i].name, h[i].name_len, h[i].value, h[i].value_len);
    }
    return have_len || status == 204 || status == 304 ? 0 : -1;
}

/* Parses what has come of c's answer; relays it once whole. */
static void conn_parse(struct conn *c)
{
    struct phr_header h[64];
    size_t n = 64, len;
    int minor, status, keep;
    const char *msg;
    size_t msg_len;
    h2o_buffer_t *in = c->sock->input;
    int rlen = phr_parse_response(in->bytes, in->size, &minor, &status, &msg, &msg_len, h, &n, 0);
    if (rlen == -2 && in->size <= HEAD_BYTES_MAX) return; /* the head is not all here yet */
    struct fwd *w = c->w;
    for (size_t i = 0; i < w->n_hdrs; i++) free((char *)w->hdrs[i].value);
    w->n_hdrs = 0;
    if (rlen < 0 || status < 200 || answer_head(w, minor, status, h, n, &len, &keep) ||
        len > ANSWER_BYTES_MAX) {
        conn_fail(c, "an answer this node cannot relay");
        return;
    }
    if (in->size - (size_t)rlen < len) return; /* the body is not all here yet */
    if (len && !(w->answer = malloc(len))) {
        conn_fail(c, "out of memory");
        return;
    }
    if (len) memcpy(w->answer, in->bytes + rlen, len);
    w->answer_len = len;
    h2o_buffer_consume(&c->sock->input, (size_t)rlen + len);
    keep = keep && c->sock->input->size == 0;
    c->w = NULL;
    w->c = NULL;
    relay(w);
    if (keep) conn_idle(c);
    else conn_close(c);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    if (err || !c->w) { /* closed, or data on an idle connection: it is of no use */
        conn_fail(c, err ? "connection lost" : "unexpected data");
        return;
    }
    conn_parse(c);
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    if (err) conn_fail(c, "send failed");
}

/* Sends w's request on c. */
static void conn_use(struct conn *c, struct fwd *w)
{
    if (h2o_timeout_is_linked(&c->idle)) h2o_timeout_unlink(&c->idle);
    c->w = w;
    w->c = c;
    h2o_socket_write(c->sock, w->out, w->out[1].len ? 2 : 1, on_written);
}

static void on_connected(h2o_socket_t *sock, const char *err, void *data)
{
    struct fwd *w = data;
    struct conn *c;
    w->connecting = NULL;
    if (!sock) {
        fail(w, err ? err : "cannot connect");
        return;
    }
    if (!(c = calloc(1, sizeof *c))) {
        h2o_socket_close(sock);
        fail(w, "out of memory");
        return;
    }
    c->p = w->p;
    c->sock = sock;
    sock->data = c;
    w->p->conns++;
    w->f->conns_opened++;
    h2o_socket_read_start(sock, on_read);
    conn_use(c, w);
}

/* The request took longer than timeout_ms in all. */
static void on_request_timeout(h2o_timeout_entry_t *e)
{
    struct fwd *w = H2O_STRUCT_FROM_MEMBER(struct fwd, timeout, e);
    if (w->connecting) {
        h2o_socketpool_cancel_connect(w->connecting);
        w->connecting = NULL;
        fail(w, "timeout");
    } else if (w->c) {
        conn_fail(w->c, "timeout");
    }
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

/* The head of a request to p of this node's own (a batch, a post of the feed), signed
 * like a forwarded request with no Authorization, no Idempotency-Key, client 0.0.0.0. */
static char *own_head(struct forward *f, struct forward_peer *p, const char *target,
                      const void *body, size_t len)
{
    struct cluster_fwd d = {f->self, wall_ms(), "0.0.0.0", "POST", target, "", "", {0}};
    char mac[CLUSTER_FWD_MAX];
    size_t cap = 512 + strlen(target) + strlen(p->authority);
    char *head = malloc(cap);
    auth_sha256(body, len, d.body_sha256);
    if (!head || cluster_forward_sign(p->key, &d, mac)) {
        free(head);
        return NULL;
    }
    snprintf(head, cap,
             "POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %zu\r\n"
             "content-type: application/octet-stream\r\nx-veltrix-forwarded: %s\r\n"
             "x-veltrix-client: 0.0.0.0\r\n\r\n",
             target, p->authority, len, mac);
    return head;
}

/* The head of w (a client's write, sent alone) for p: method, target, the client's
 * headers that matter, the proof. */
static char *write_head(struct forward *f, struct forward_peer *p, const struct fwd *w)
{
    const struct fwdbatch_req *q = &w->q;
    char client[ADDR_TEXT_MAX], mac[CLUSTER_FWD_MAX];
    addr_text(q->client, client);
    /* The strings are NUL-terminated in qbuf (capture). */
    struct cluster_fwd d = {f->self, wall_ms(), client, q->method.p, q->target.p,
                            q->authorization.p ? q->authorization.p : "",
                            q->idempotency_key.p ? q->idempotency_key.p : "", {0}};
    auth_sha256(q->body.p, q->body.len, d.body_sha256);
    if (cluster_forward_sign(p->key, &d, mac)) return NULL;
    size_t cap = 512 + q->method.len + q->target.len + q->authorization.len +
                 q->idempotency_key.len + q->content_type.len + strlen(p->authority);
    char *head = malloc(cap);
    if (!head) return NULL;
    size_t n = (size_t)snprintf(head, cap, "%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %zu\r\n",
                                q->method.p, q->target.p, p->authority, q->body.len);
    const char *name[] = {"authorization", "idempotency-key", "content-type"};
    const struct http_str *v[] = {&q->authorization, &q->idempotency_key, &q->content_type};
    for (int k = 0; k < 3; k++)
        if (v[k]->p) n += (size_t)snprintf(head + n, cap - n, "%s: %s\r\n", name[k], v[k]->p);
    snprintf(head + n, cap - n, "x-veltrix-forwarded: %s\r\nx-veltrix-client: %s\r\n\r\n", mac,
             client);
    return head;
}

/* Copies what r forwards into w (q, its strings NUL-terminated in qbuf); 0 or -1. */
static int capture(struct fwd *w, struct http_req *r, const uint8_t client_addr[16])
{
    struct http_str part[6] = {http_method(r), http_target(r), http_header(r, "authorization"),
                               http_header(r, "idempotency-key"), http_header(r, "content-type"),
                               http_body(r)};
    size_t total = 0;
    for (int k = 0; k < 6; k++) total += part[k].len + 1;
    if (!(w->qbuf = malloc(total))) return -1;
    char *at = w->qbuf;
    struct http_str *dst[6] = {&w->q.method, &w->q.target, &w->q.authorization,
                               &w->q.idempotency_key, &w->q.content_type, &w->q.body};
    for (int k = 0; k < 6; k++) {
        if (part[k].len) memcpy(at, part[k].p, part[k].len);
        at[part[k].len] = '\0';
        *dst[k] = (struct http_str){part[k].p ? at : NULL, part[k].len};
        at += part[k].len + 1;
    }
    memcpy(w->q.client, client_addr, 16);
    return 0;
}

static void start(struct forward *f, struct forward_peer *p, struct fwd *w);

void forward_send(struct forward *f, struct forward_peer *p, struct http_req *r,
                  const uint8_t client_addr[16])
{
    if (p->inflight >= f->c.inflight_max) {
        f->results[R_BUSY]++;
        http_error(r, 503, "busy", "too many writes in flight to node %s; retry shortly", p->id);
        return;
    }
    struct fwd *w = calloc(1, sizeof *w);
    if (!w || capture(w, r, client_addr)) {
        if (w) fwd_free(w);
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    w->f = f;
    w->p = p;
    w->t0_ns = metrics_now_ns();
    w->r = http_hold(r);
    p->inflight++;
    /* It waits for the end of the turn: the writes to p that came meanwhile go with it. */
    if (!p->pending) p->pending_tail = &p->pending;
    *p->pending_tail = w;
    p->pending_tail = &w->mnext;
    if (!h2o_timeout_is_linked(&f->flush)) h2o_timeout_link(f->c.loop, &f->turn, &f->flush);
}

/* Sends w (a client's write) alone. */
static void send_one(struct forward *f, struct forward_peer *p, struct fwd *w)
{
    w->mnext = NULL;
    if (!(w->head = write_head(f, p, w))) {
        p->inflight--;
        http_error(w->r, 503, "unavailable", "out of memory");
        fwd_free(w);
        return;
    }
    w->out[0] = h2o_iovec_init(w->head, strlen(w->head));
    w->out[1] = h2o_iovec_init(w->q.body.p, w->q.body.len);
    start(f, p, w);
}

/* Sends the n writes of list (bytes: their batch body's size) in one batch. */
static void send_batch(struct forward *f, struct forward_peer *p, struct fwd *list, size_t n,
                       size_t bytes)
{
    struct fwdbatch_buf b = {0};
    struct fwd *c = calloc(1, sizeof *c);
    char *head = NULL;
    if (c && (b.p = malloc(bytes))) b.cap = bytes;
    fwdbatch_put_head(&b, n);
    for (struct fwd *m = list; m; m = m->mnext) fwdbatch_put_req(&b, &m->q);
    if (!c || b.failed || !(head = own_head(f, p, FWDBATCH_PATH, b.p, b.len))) {
        for (struct fwd *m = list, *next; m; m = next) {
            next = m->mnext;
            p->inflight--;
            http_error(m->r, 503, "unavailable", "out of memory");
            fwd_free(m);
        }
        free(c);
        fwdbatch_buf_free(&b);
        return;
    }
    *c = (struct fwd){.f = f, .p = p, .head = head, .body = (char *)b.p, .members = list,
                      .n_members = n, .t0_ns = metrics_now_ns()};
    c->out[0] = h2o_iovec_init(c->head, strlen(c->head));
    c->out[1] = h2o_iovec_init(c->body, b.len);
    f->batches++;
    f->batched += n;
    start(f, p, c);
}

/* The end of a loop turn: each peer's waiting writes go out, in batches of at most
 * FWDBATCH_COUNT_MAX writes and FWDBATCH_BYTES_MAX bytes; a write alone (or too big for a
 * batch, or to a peer that does not take batches) goes as it came. */
static void on_flush(h2o_timeout_entry_t *e)
{
    struct forward *f = H2O_STRUCT_FROM_MEMBER(struct forward, flush, e);
    for (struct forward_peer *p = f->peers; p; p = p->next) {
        struct fwd *list = p->pending;
        p->pending = NULL;
        while (list) {
            struct fwd *first = list, *last = list;
            size_t n = 1, bytes = 3 + fwdbatch_req_size(&list->q), sz;
            list = list->mnext;
            if (bytes > FWDBATCH_BYTES_MAX || p->no_batch) {
                send_one(f, p, first);
                continue;
            }
            while (list && n < FWDBATCH_COUNT_MAX && (sz = fwdbatch_req_size(&list->q)) &&
                   bytes + sz <= FWDBATCH_BYTES_MAX) {
                bytes += sz;
                n++;
                last = list;
                list = list->mnext;
            }
            last->mnext = NULL;
            if (n == 1) send_one(f, p, first);
            else send_batch(f, p, first, n, bytes);
        }
    }
}

/* A batch's answer, one per write in order (cursor: the next write to answer). */
static int member_answer(void *ctx, size_t i, const struct fwdbatch_ans *a)
{
    struct fwd **cursor = ctx, *m = *cursor;
    (void)i;
    *cursor = m->mnext;
    m->status = a->status;
    for (size_t k = 0; k < a->n; k++)
        keep_header(m, a->h[k].name, strlen(a->h[k].name), a->h[k].value, a->h[k].value_len);
    if (a->body.len && (m->answer = malloc(a->body.len))) {
        memcpy(m->answer, a->body.p, a->body.len);
        m->answer_len = a->body.len;
    } else if (a->body.len) { /* out of memory: the write may have landed, as on a lost answer */
        fail_client(m, "out of memory");
        return 0;
    }
    relay_client(m);
    return 0;
}

/* The answer of batch c came (c is detached): each write gets its own. */
static void batch_relay(struct fwd *c)
{
    struct forward_peer *p = c->p;
    struct fwd *cursor = c->members;
    if (c->status == 200 &&
        fwdbatch_parse_answers(c->answer, c->answer_len, NULL, NULL) == (int)c->n_members) {
        fwdbatch_parse_answers(c->answer, c->answer_len, member_answer, &cursor);
    } else if (c->status == 404 || c->status == 405) {
        /* A node of an older build: none of them ran. They go again, one at a time. */
        p->no_batch = 1;
        for (struct fwd *m = c->members, *next; m; m = next) {
            next = m->mnext;
            p->inflight++;
            send_one(c->f, p, m);
        }
    } else {
        for (struct fwd *m = c->members, *next; m; m = next) {
            next = m->mnext;
            fail_client(m, c->status == 200 ? "a malformed batch answer" : "the batch was refused");
        }
    }
    fwd_free(c);
}

/* Sends w (out[] set) to p: on an idle connection, or a new one. */
static void start(struct forward *f, struct forward_peer *p, struct fwd *w)
{
    w->next = f->inflight;
    if (f->inflight) f->inflight->prev = w;
    f->inflight = w;
    w->timeout.cb = on_request_timeout;
    h2o_timeout_link(f->c.loop, &f->io_timeout, &w->timeout);
    struct conn *c = p->idle;
    if (c) {
        p->idle = c->next;
        conn_use(c, w);
    } else {
        h2o_socketpool_connect(&w->connecting, &p->pool, f->c.loop, &f->getaddr, on_connected, w);
    }
}

int forward_post(struct forward *f, const char *node, const char *target, char *body,
                 size_t len, void (*done)(void *arg, int status), void *arg)
{
    struct forward_peer *p = NULL;
    for (size_t i = 0; i < f->n_nodes && !p; i++)
        if (!strcmp(f->nodes[i].id, node)) p = f->nodes[i].peer;
    struct fwd *w = p && p->inflight < f->c.inflight_max ? calloc(1, sizeof *w) : NULL;
    char *head = w ? own_head(f, p, target, body, len) : NULL;
    if (!head) {
        free(w);
        free(body);
        return -1;
    }
    *w = (struct fwd){.f = f, .p = p, .head = head, .body = body, .done = done, .done_arg = arg,
                      .t0_ns = metrics_now_ns()};
    w->out[0] = h2o_iovec_init(w->head, strlen(w->head));
    w->out[1] = h2o_iovec_init(w->body, len);
    p->inflight++;
    start(f, p, w);
    return 0;
}

size_t forward_peers(struct forward *f, const char **ids, size_t max)
{
    size_t n = 0;
    view_fresh(f);
    for (size_t i = 0; i < f->n_nodes && n < max; i++)
        if (f->nodes[i].alive && f->nodes[i].peer) ids[n++] = f->nodes[i].id;
    return n;
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
    h2o_timeout_init(c->loop, &f->idle_timeout, c->idle_ms);
    h2o_timeout_init(c->loop, &f->turn, 0);
    f->flush.cb = on_flush;
    f->queue = h2o_multithread_create_queue(c->loop);
    h2o_multithread_register_receiver(f->queue, &f->getaddr, h2o_hostinfo_getaddr_receiver);
    return f;
}

void forward_destroy(struct forward *f)
{
    if (!f) return;
    if (h2o_timeout_is_linked(&f->flush)) h2o_timeout_unlink(&f->flush);
    for (struct forward_peer *p = f->peers; p; p = p->next) /* not sent yet */
        while (p->pending) {
            struct fwd *w = p->pending;
            p->pending = w->mnext;
            p->inflight--;
            fail_client(w, "this node is stopping");
        }
    while (f->inflight) { /* their clients get 503 hunt_moving (if the loop runs again) */
        struct fwd *w = f->inflight;
        if (w->connecting) {
            h2o_socketpool_cancel_connect(w->connecting);
            w->connecting = NULL;
            fail(w, "this node is stopping");
        } else {
            conn_fail(w->c, "this node is stopping");
        }
    }
    for (struct forward_peer *p = f->peers, *next; p; p = next) {
        next = p->next;
        while (p->idle) conn_close(p->idle);
        h2o_socketpool_dispose(&p->pool);
        free(p->advertise);
        free(p);
    }
    view_clear(f);
    h2o_multithread_unregister_receiver(f->queue, &f->getaddr);
    net_queue_destroy(f->queue);
    h2o_timeout_dispose(f->c.loop, &f->io_timeout);
    h2o_timeout_dispose(f->c.loop, &f->idle_timeout);
    h2o_timeout_dispose(f->c.loop, &f->turn);
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
    size_t conns = 0;
    for (const struct forward_peer *p = f->peers; p; p = p->next) conns += p->conns;
    metrics_printf(b, "# TYPE veltrix_forward_in_flight gauge\nveltrix_forward_in_flight %zu\n",
                   forward_in_flight(f));
    metrics_printf(b,
                   "# TYPE veltrix_forward_connections gauge\nveltrix_forward_connections %zu\n"
                   "# TYPE veltrix_forward_connections_opened_total counter\n"
                   "veltrix_forward_connections_opened_total %llu\n",
                   conns, (unsigned long long)f->conns_opened);
    metrics_printf(b,
                   "# TYPE veltrix_forward_batches_total counter\n"
                   "veltrix_forward_batches_total %llu\n"
                   "# TYPE veltrix_forward_batched_total counter\n"
                   "veltrix_forward_batched_total %llu\n",
                   (unsigned long long)f->batches, (unsigned long long)f->batched);
    metrics_printf(b, "# TYPE veltrix_forward_duration_seconds histogram\n");
    metrics_render_hist(b, "veltrix_forward_duration_seconds", "", &f->latency, 0);
}
