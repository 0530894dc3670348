/* http.h — requests and responses as the rest of Veltrix sees them, over libh2o.
 *
 * Handlers get a `struct http_req`, read the method, path parameters, query, headers and
 * body through these functions, and answer with http_send/http_send_json/http_error.
 * A handler that must wait (for the log to make a write durable) calls http_hold(): the
 * held request outlives the handler, and if the client goes away meanwhile the answer is
 * dropped safely. Routes are a static table of patterns ("/v1/hunts/:/scans"), matched
 * segment by segment; a path that matches with another method gets 405. */
#ifndef VELTRIX_HTTP_H
#define VELTRIX_HTTP_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

#define HTTP_PARAMS_MAX 4

struct http_req;
typedef void (*http_handler)(struct http_req *r);

struct http_route {
    const char *method;
    const char *pattern; /* ':' segments capture a parameter */
    http_handler handler;
    size_t body_max;     /* 0: the default (64 KiB) */
    int gate_class;      /* for the gate (http_set_gate): which budget the route spends */
    /* filled at run time */
    uint64_t count[6];   /* by status class: [1]=1xx .. [5]=5xx */
    struct metrics_hist latency;
};

struct http_str {
    const char *p;
    size_t len;
};

#define HTTP_HEAD_BYTES_MAX (32 * 1024)     /* request line + headers; larger: 431 */
#define HTTP_BODY_BYTES_DEFAULT (64 * 1024) /* routes without body_max, chunked bodies */

/* Limits applied while a request arrives (http_guard.c), before its body is read: the
 * head's size, the route's body_max by the declared Content-Length (chunked bodies are
 * cut at body_bytes_default as they arrive), and bodies over body_bytes_default only when
 * big_body_ok(Authorization value) says yes (the admin key) and the pending-bodies budget
 * has room (net.h). */
struct http_limits {
    size_t head_bytes_max;
    size_t body_bytes_default;
    int (*big_body_ok)(const char *authorization, size_t len);
};
void http_set_limits(const struct http_limits *l);

/* The route table: routes must stay valid while the server runs. */
void http_set_routes(struct http_route *routes, size_t n);
/* A gate runs before the handler of every matched route (after the body limit); when it
 * returns non-zero it has answered, or held the request (http_hold) to answer or resume
 * later (http_resume), and the handler is skipped. NULL: no gate. */
void http_set_gate(int (*gate)(struct http_req *r));
/* Entry point from net.c for every request; h2o_req is a h2o_req_t. */
int http_dispatch(void *h2o_req);

/* --- request ------------------------------------------------------------------------ */
struct http_str http_method(const struct http_req *r);
/* The path without the query string. */
struct http_str http_path(const struct http_req *r);
/* The request target as it came: the path with its query string, if any. */
struct http_str http_target(const struct http_req *r);
/* The route r matched (a placeholder route when none did). */
const struct http_route *http_req_route(const struct http_req *r);
/* i-th ':' parameter of the matched route (not decoded). */
struct http_str http_param(const struct http_req *r, int i);
/* Raw value of query parameter name; p == NULL when absent. */
struct http_str http_query(const struct http_req *r, const char *name);
/* Header value by lower-case name; p == NULL when absent. */
struct http_str http_header(const struct http_req *r, const char *name);
struct http_str http_body(const struct http_req *r);
/* Peer IPv4/IPv6 address as text. */
void http_peer(const struct http_req *r, char out[64]);
/* Peer address as 16 bytes (IPv4 mapped into IPv6, ::ffff:a.b.c.d); zeros if unknown. */
void http_peer_addr(const struct http_req *r, uint8_t out[16]);
/* Whether the request is still answerable (false once a held request's client left). */
int http_alive(const struct http_req *r);

/* --- response ----------------------------------------------------------------------- */
/* Adds a response header; name and value are copied. */
void http_add_header(struct http_req *r, const char *name, const char *value);
/* Sends the response; body is copied. For a held request, this also releases it. */
void http_send(struct http_req *r, int status, const char *content_type, const char *body,
               size_t len);
/* A response header for http_send_ref: name in lower case. */
struct http_hdr {
    const char *name;
    const char *value;
    size_t value_len;
};
/* Sends a response without copying: the n headers (names and values) and the body must
 * stay valid until done(arg) runs, which happens once h2o has finished with the request
 * (sent, or the client left); done may be NULL. For the hot read paths (tiles). A 304
 * goes out without a body or Content-Length. */
void http_send_ref(struct http_req *r, int status, const struct http_hdr *h, size_t n,
                   const void *body, size_t len, void (*done)(void *arg), void *arg);
/* Sends json (steals the reference) compactly encoded. */
void http_send_json(struct http_req *r, int status, json_t *json);
/* The contract's error body {"error":{"code","message"}}. The message may quote any
 * bytes: invalid UTF-8 in it becomes '?'. Out of memory: 503 unavailable instead. */
void http_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Keeps r past the handler's return; returns the handle to answer later (the old pointer
 * must not be used any more). Must be answered exactly once (http_send*, http_error). A
 * request held already (a gate held it, then resumed it) is returned as is. Its path
 * parameters stay (they point into its path, there as long as the client is: http_param
 * answers empty once it left), so a gate step that runs again after a hold reads them. */
struct http_req *http_hold(struct http_req *r);
/* Runs the handler of r, a request that the gate held instead of letting it through (it
 * had to wait for something first), as if it had just come. A client that left meanwhile
 * gets nothing: r is answered and released. */
void http_resume(struct http_req *r);

/* 1 if r is a WebSocket opening handshake (RFC 6455 §4.2.1: GET, Upgrade: websocket,
 * Connection: upgrade, Sec-WebSocket-Version: 13, a Sec-WebSocket-Key). */
int http_is_websocket(struct http_req *r);
/* Called once the 101 answer has gone out: sock is the raw connection (a h2o_socket_t *,
 * now the callee's), or NULL when the client left meanwhile. */
typedef void (*http_upgrade_cb)(void *arg, void *sock);
/* Answers r (a WebSocket handshake) with 101 Switching Protocols and hands the connection
 * to cb. r must not be used afterwards. */
void http_upgrade_websocket(struct http_req *r, http_upgrade_cb cb, void *arg);

/* --- synthetic requests ---------------------------------------------------------------
 * A request that did not come over a connection of its own: a write another node
 * forwarded inside a batch (api_batch.c). It is dispatched like one that came (route,
 * body limit, gate, handler) and read through the same functions: it has a method, a
 * target, a body, at most the three headers below, and a client address (http_peer);
 * http_alive is always true. Its answer goes to answer(), exactly once (maybe before
 * http_dispatch_synth returns): the status, the headers added (http_add_header, the
 * Content-Type, http_send_ref's) and the body, valid during the call only. */
struct http_synth {
    struct http_str method, target, body;
    struct http_str authorization, idempotency_key, content_type; /* p == NULL: absent */
    uint8_t client[16]; /* the client's address, IPv4 mapped */
    void (*answer)(struct http_synth *s, int status, const struct http_hdr *h, size_t n,
                   const void *body, size_t len);
};
/* s and what it points to must stay valid until s->answer has run. */
void http_dispatch_synth(struct http_synth *s);
/* The synthetic request r is, or NULL when r came over a connection. */
const struct http_synth *http_synth_of(const struct http_req *r);

/* Prometheus text for every route: requests by class and latency histograms. */
void http_render_metrics(struct metrics_buf *b);

#endif
