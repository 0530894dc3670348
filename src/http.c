/* http.c — see http.h.
 *
 * A request's wrapper lives in the h2o request pool (no malloc on the common path).
 * http_hold copies it to the heap with two references: the handler's, and a sentinel
 * allocated in the h2o pool whose dispose callback runs when h2o frees the request (the
 * client went away or the response finished). Whichever goes last frees the copy.
 *
 * A synthetic request (http_synth, a write forwarded inside another node's batch) has no
 * h2o request: its wrapper is on the heap, the headers added to its answer are kept in
 * it, and it is freed once answered. */
#include "http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/websocket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "vx.h"
#include "net.h"
#include "ws.h"


#define SYNTH_HEADERS_MAX 8

struct http_req {
    h2o_req_t *h2o; /* NULL once h2o has freed the request (and for a synthetic one) */
    struct http_synth *syn; /* a synthetic request: see http_synth */
    struct http_hdr *res;   /* a synthetic request's answer headers so far (malloc'd) */
    size_t n_res;
    struct http_route *route;
    uint64_t t0_ns;
    int held, refs;
    struct http_str params[HTTP_PARAMS_MAX];
};

static struct http_route *routes;
static size_t n_routes;
static int (*gate)(struct http_req *r);
static struct http_route route_not_found = {"*", "(unmatched)", NULL, 0, 0, {0}, {{0}, 0, 0}};
static struct http_route route_refused = {"*", "(refused)", NULL, 0, 0, {0}, {{0}, 0, 0}};

void http_set_gate(int (*g)(struct http_req *r)) { gate = g; }

const struct http_route *http_req_route(const struct http_req *r) { return r->route; }

void http_set_routes(struct http_route *r, size_t n)
{
    routes = r;
    n_routes = n;
}

/* Matches path (no query) against pattern, capturing ':' segments. */
static int match(const char *pattern, const char *path, size_t len, struct http_str *params)
{
    const char *p = pattern, *s = path, *end = path + len;
    int n = 0;
    while (*p && s < end) {
        if (*p != '/' || *s != '/') return 0;
        p++, s++;
        const char *seg = s;
        while (s < end && *s != '/') s++;
        if (*p == ':') {
            if (s == seg || n == HTTP_PARAMS_MAX) return 0;
            params[n].p = seg;
            params[n++].len = (size_t)(s - seg);
            p++;
        } else {
            size_t pl = strcspn(p, "/");
            if (pl != (size_t)(s - seg) || memcmp(p, seg, pl) != 0) return 0;
            p += pl;
        }
    }
    return !*p && s == end;
}

static void count(struct http_req *r, int status)
{
    int cls = status / 100;
    if (cls < 1 || cls > 5) cls = 5;
    metrics_inc(&r->route->count[cls], 1);
    metrics_observe_ns(&r->route->latency, metrics_now_ns() - r->t0_ns);
}

static void release(struct http_req *r)
{
    if (--r->refs == 0) free(r);
}

const struct http_route *http_route_for(const char *method, size_t mlen, const char *path,
                                        size_t plen)
{
    struct http_str unused[HTTP_PARAMS_MAX];
    const char *q = memchr(path, '?', plen);
    if (q) plen = (size_t)(q - path);
    for (size_t i = 0; i < n_routes; i++)
        if (h2o_memis(method, mlen, routes[i].method, strlen(routes[i].method)) &&
            match(routes[i].pattern, path, plen, unused))
            return &routes[i];
    return NULL;
}

/* A head the guard refused (http_guard.c): its answer, and the connection closes. */
static void refuse(struct http_req *r, const struct http_refusal *why)
{
    r->route = &route_refused;
    r->h2o->http1_is_persistent = 0;
    http_error(r, why->status, why->code, "%s", why->message);
}

static void body_done(void *p) { net_body_release(*(size_t *)p); }

/* A body over the default limit was reserved in the pending budget when its head came
 * (http_guard.c): the reservation now lasts as long as the request, which holds it. */
static void hold_body_budget(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    size_t n = sock ? net_body_take(sock) : 0;
    if (!n) return;
    size_t *hold = h2o_mem_alloc_shared(&req->pool, sizeof *hold, body_done);
    *hold = n;
}

/* Runs r's route (its gate, then its handler), or answers 404, 405 or 413. */
static void route(struct http_req *r)
{
    struct http_str m = http_method(r), path = http_path(r), body = http_body(r);
    int path_matched = 0;
    for (size_t i = 0; i < n_routes; i++) {
        /* The method first: it is cheaper to compare than the path. */
        if (!h2o_memis(m.p, m.len, routes[i].method, strlen(routes[i].method)) ||
            !match(routes[i].pattern, path.p, path.len, r->params))
            continue;
        r->route = &routes[i];
        size_t max = routes[i].body_max ? routes[i].body_max : HTTP_BODY_BYTES_DEFAULT;
        if (body.len > max) {
            http_error(r, 413, "payload_too_large", "request body over %zu bytes", max);
            return;
        }
        if (gate && gate(r)) return;
        routes[i].handler(r);
        return;
    }
    r->route = &route_not_found;
    struct http_str unused[HTTP_PARAMS_MAX];
    for (size_t i = 0; i < n_routes && !path_matched; i++)
        path_matched = match(routes[i].pattern, path.p, path.len, unused);
    if (path_matched)
        http_error(r, 405, "method_not_allowed", "method not allowed on this path");
    else
        http_error(r, 404, "not_found", "no such route");
}

int http_dispatch(void *h2o_req)
{
    h2o_req_t *req = h2o_req;
    struct http_req *r = h2o_mem_alloc_pool(&req->pool, sizeof *r);
    memset(r, 0, sizeof *r);
    r->h2o = req;
    r->t0_ns = metrics_now_ns();
    const struct http_refusal *why = http_guard_refusal(req->input.method.base);
    if (why) {
        refuse(r, why);
        return 0;
    }
    if (req->entity.base && req->entity.len > HTTP_BODY_BYTES_DEFAULT) hold_body_budget(req);
    route(r);
    return 0;
}

void http_dispatch_synth(struct http_synth *s)
{
    struct http_req *r = calloc(1, sizeof *r);
    VX_FATAL_IF(!r); /* a few dozen bytes: out of memory here is not recoverable */
    r->syn = s;
    r->t0_ns = metrics_now_ns();
    route(r);
}

const struct http_synth *http_synth_of(const struct http_req *r) { return r->syn; }

void http_resume(struct http_req *r)
{
    assert(r->held);
    if (!http_alive(r)) { /* the client left while it waited: nothing to run, nobody to answer */
        release(r);
        return;
    }
    r->route->handler(r);
}

struct http_str http_method(const struct http_req *r)
{
    if (r->syn) return r->syn->method;
    return (struct http_str){r->h2o->method.base, r->h2o->method.len};
}

/* Where the query string starts in the target ('?'), or the target's length. */
static size_t query_at(const struct http_req *r)
{
    if (r->syn) {
        const char *q = memchr(r->syn->target.p, '?', r->syn->target.len);
        return q ? (size_t)(q - r->syn->target.p) : r->syn->target.len;
    }
    return r->h2o->query_at != SIZE_MAX ? r->h2o->query_at : r->h2o->path.len;
}

struct http_str http_path(const struct http_req *r)
{
    return (struct http_str){http_target(r).p, query_at(r)};
}

struct http_str http_target(const struct http_req *r)
{
    if (r->syn) return r->syn->target;
    return (struct http_str){r->h2o->path.base, r->h2o->path.len};
}

struct http_str http_param(const struct http_req *r, int i)
{
    assert(i >= 0 && i < HTTP_PARAMS_MAX);
    if (!http_alive(r)) return (struct http_str){NULL, 0}; /* they pointed into its path */
    return r->params[i];
}

struct http_str http_query(const struct http_req *r, const char *name)
{
    struct http_str none = {NULL, 0}, t = http_target(r);
    size_t at = query_at(r);
    if (at == t.len) return none;
    const char *q = t.p + at + 1, *end = t.p + t.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - q) == nl && memcmp(q, name, nl) == 0)
            return (struct http_str){eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0};
        q = stop + 1;
    }
    return none;
}

struct http_str http_header(const struct http_req *r, const char *name)
{
    if (r->syn) {
        struct http_str none = {NULL, 0};
        return !strcmp(name, "authorization")     ? r->syn->authorization
               : !strcmp(name, "idempotency-key") ? r->syn->idempotency_key
               : !strcmp(name, "content-type")    ? r->syn->content_type
                                                  : none;
    }
    ssize_t i = h2o_find_header_by_str(&r->h2o->headers, name, strlen(name), -1);
    if (i < 0) return (struct http_str){NULL, 0};
    h2o_iovec_t v = r->h2o->headers.entries[i].value;
    return (struct http_str){v.base, v.len};
}

struct http_str http_body(const struct http_req *r)
{
    if (r->syn) return r->syn->body;
    h2o_iovec_t e = r->h2o->entity;
    return (struct http_str){e.base ? e.base : "", e.base ? e.len : 0};
}

void http_peer(const struct http_req *r, char out[64])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (r->syn) {
        if (!memcmp(r->syn->client, mapped, 12)) inet_ntop(AF_INET, r->syn->client + 12, out, 64);
        else inet_ntop(AF_INET6, r->syn->client, out, 64);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = r->h2o->conn->callbacks->get_peername(r->h2o->conn, (void *)&ss);
    out[0] = '\0';
    if (len == 0) return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, 64);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, 64);
}

void http_peer_addr(const struct http_req *r, uint8_t out[16])
{
    if (r->syn) {
        memcpy(out, r->syn->client, 16);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = r->h2o->conn->callbacks->get_peername(r->h2o->conn, (void *)&ss);
    memset(out, 0, 16);
    if (len != 0 && ss.ss_family == AF_INET6) {
        memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    } else if (len != 0 && ss.ss_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    }
}

int http_alive(const struct http_req *r) { return r->h2o != NULL || r->syn != NULL; }

void http_add_header(struct http_req *r, const char *name, const char *value)
{
    if (r->syn) {
        char *n = strdup(name), *v = strdup(value);
        struct http_hdr *res = r->n_res < SYNTH_HEADERS_MAX
                                   ? realloc(r->res, (r->n_res + 1) * sizeof *res)
                                   : NULL;
        if (res) r->res = res;
        if (!n || !v || !res) { /* out of memory, or a handler adding more than it should */
            free(n);
            free(v);
            return;
        }
        for (char *c = n; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        r->res[r->n_res++] = (struct http_hdr){n, v, strlen(v)};
        return;
    }
    if (!r->h2o) return;
    h2o_mem_pool_t *pool = &r->h2o->pool;
    h2o_iovec_t n = h2o_strdup(pool, name, SIZE_MAX), v = h2o_strdup(pool, value, SIZE_MAX);
    h2o_add_header_by_str(pool, &r->h2o->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    }
    return status < 500 ? "Client Error" : "Server Error";
}

/* Answers the synthetic request r: its headers so far and the n in h, then frees r. */
static void synth_answer(struct http_req *r, int status, const struct http_hdr *h, size_t n,
                         const void *body, size_t len)
{
    struct http_hdr all[2 * SYNTH_HEADERS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < r->n_res; i++) all[k++] = r->res[i];
    for (size_t i = 0; i < n && k < sizeof all / sizeof all[0]; i++) all[k++] = h[i];
    r->syn->answer(r->syn, status, all, k, body, len);
    for (size_t i = 0; i < r->n_res; i++) {
        free((char *)r->res[i].name);
        free((char *)r->res[i].value);
    }
    free(r->res);
    free(r);
}

void http_send(struct http_req *r, int status, const char *content_type, const char *body,
               size_t len)
{
    count(r, status);
    if (r->syn) {
        struct http_hdr ct = {"content-type", content_type, content_type ? strlen(content_type) : 0};
        synth_answer(r, status, &ct, content_type ? 1 : 0, body, len);
        return;
    }
    h2o_req_t *req = r->h2o;
    if (req) {
        req->res.status = status;
        req->res.reason = reason(status);
        if (content_type)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           content_type, strlen(content_type));
        req->res.content_length = len;
        h2o_send_inline(req, body, len);
    }
    if (r->held) release(r);
}

struct ref_hold {
    void (*done)(void *);
    void *arg;
};

static void ref_dispose(void *p)
{
    struct ref_hold *h = p;
    h->done(h->arg);
}

void http_send_ref(struct http_req *r, int status, const struct http_hdr *h, size_t n,
                   const void *body, size_t len, void (*done)(void *arg), void *arg)
{
    static h2o_generator_t generator = {NULL, NULL};
    count(r, status);
    if (r->syn) {
        synth_answer(r, status, h, n, body, len);
        if (done) done(arg);
        return;
    }
    h2o_req_t *req = r->h2o;
    if (!req) {
        if (done) done(arg);
        if (r->held) release(r);
        return;
    }
    if (done) {
        struct ref_hold *hold = h2o_mem_alloc_shared(&req->pool, sizeof *hold, ref_dispose);
        hold->done = done;
        hold->arg = arg;
    }
    req->res.status = status;
    req->res.reason = reason(status);
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + n);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(h[i].name);
        const h2o_token_t *tok = h2o_lookup_token(h[i].name, nl);
        if (tok)
            h2o_add_header(&req->pool, &req->res.headers, tok, NULL, h[i].value, h[i].value_len);
        else
            h2o_add_header_by_str(&req->pool, &req->res.headers, h[i].name, nl, 0, NULL,
                                  h[i].value, h[i].value_len);
    }
    req->res.content_length = status == 304 ? SIZE_MAX : len;
    h2o_start_response(req, &generator);
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    h2o_send(req, &buf, status == 304 ? 0 : 1, H2O_SEND_STATE_FINAL);
    if (r->held) release(r);
}

void http_send_json(struct http_req *r, int status, json_t *json)
{
    char *s = json ? json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(json);
    if (!s) {
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    http_send(r, status, "application/json", s, strlen(s));
    free(s);
}

/* Replaces every byte of s that does not start a whole, valid UTF-8 sequence with '?'.
 * Messages quote client bytes (jansson's error text stops in the middle of a character,
 * vsnprintf truncates anywhere), and a JSON string must be valid UTF-8. */
static void utf8_scrub(char *s)
{
    uint8_t *p = (uint8_t *)s;
    for (size_t i = 0, n = strlen(s); i < n;) {
        size_t k = p[i] < 0x80 ? 1 : (p[i] & 0xe0) == 0xc0 ? 2 : (p[i] & 0xf0) == 0xe0 ? 3 : 4;
        if (k <= n - i && ws_utf8_valid(p + i, k))
            i += k;
        else
            p[i++] = '?';
    }
}

void http_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
{
    static const char oom[] =
        "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}";
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_scrub(msg);
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) status = 503; /* only out of memory is left: answer without allocating */
    if (status == 503 && http_alive(r)) http_add_header(r, "retry-after", "1");
    http_send(r, status, "application/json", s ? s : oom, s ? strlen(s) : sizeof oom - 1);
    free(s);
}

int http_is_websocket(struct http_req *r)
{
    const char *key;
    return r->h2o && h2o_is_websocket_handshake(r->h2o, &key) == 0 && key != NULL;
}

struct upgrade {
    http_upgrade_cb cb;
    void *arg;
};

static void on_upgraded(void *data, h2o_socket_t *sock, size_t reqsize)
{
    struct upgrade u = *(struct upgrade *)data;
    free(data);
    if (sock) h2o_buffer_consume(&sock->input, reqsize);
    u.cb(u.arg, sock);
}

void http_upgrade_websocket(struct http_req *r, http_upgrade_cb cb, void *arg)
{
    const char *key = NULL;
    char accept[29];
    struct upgrade *u = malloc(sizeof *u);
    VX_FATAL_IF(!u); /* a few bytes: out of memory here is not recoverable */
    *u = (struct upgrade){cb, arg};
    h2o_req_t *req = r->h2o;
    assert(!r->syn); /* http_is_websocket is false for it */
    h2o_is_websocket_handshake(req, &key);
    struct http_str k = http_header(r, "sec-websocket-key");
    assert(key && k.p);
    ws_accept_key(k.p, k.len, accept);
    count(r, 101);
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0,
                          NULL, h2o_strdup(&req->pool, accept, 28).base, 28);
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, u);
    if (r->held) release(r); /* the handler's reference: r is answered */
}

static void sentinel_dispose(void *p)
{
    struct http_req *r = *(struct http_req **)p;
    r->h2o = NULL;
    release(r);
}

struct http_req *http_hold(struct http_req *r)
{
    assert(r->h2o || r->syn);
    if (r->held) return r; /* resumed by http_resume(): held already */
    if (r->syn) { /* on the heap already, freed once answered */
        r->held = 1;
        return r;
    }
    struct http_req *h = malloc(sizeof *h);
    VX_FATAL_IF(!h); /* a few dozen bytes: out of memory here is not recoverable */
    *h = *r;
    h->held = 1;
    h->refs = 2;
    struct http_req **s = h2o_mem_alloc_shared(&r->h2o->pool, sizeof *s, sentinel_dispose);
    *s = h;
    return h;
}

static void render_route(struct metrics_buf *b, const struct http_route *rt)
{
    char labels[160];
    snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\"", rt->method, rt->pattern);
    for (int c = 1; c <= 5; c++)
        metrics_printf(b, "veltrix_http_requests_total{%s,code=\"%dxx\"} %llu\n", labels, c,
                       (unsigned long long)metrics_get(&rt->count[c]));
    metrics_render_hist(b, "veltrix_http_request_duration_seconds", labels, &rt->latency, 0);
}

void http_render_metrics(struct metrics_buf *b)
{
    metrics_printf(b, "# TYPE veltrix_http_requests_total counter\n"
                      "# TYPE veltrix_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < n_routes; i++) render_route(b, &routes[i]);
    render_route(b, &route_not_found);
    render_route(b, &route_refused);
    http_guard_render_metrics(b);
}
