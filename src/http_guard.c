/* http_guard.c — the request-head guard: framing, header and body limits enforced while
 * a request arrives, before libh2o reads its body.
 *
 * libh2o 2.2.5 (Debian 12) parses an HTTP/1 head with picohttpparser's phr_parse_request,
 * then reads the whole body before any handler runs, checking one global size only. On
 * its own it accepts two Content-Length headers (the first wins), Content-Length together
 * with chunked, no Host or two, and heads up to ~400 KB: request smuggling behind a lax
 * proxy, and any anonymous client filling memory or disk with bodies no route takes.
 *
 * libh2o calls phr_parse_request and phr_decode_chunked through its PLT, so the dynamic
 * linker resolves them to the definitions below, in the executable; they call the
 * library's own (dlsym(RTLD_NEXT)) and check what it parsed. A head that must be refused
 * is handed back as a complete body-less request whose method is one of the static
 * strings of `refusals`: http_dispatch() recognises it by address (no client can make
 * libh2o point there), answers the contract's JSON error and closes the connection, so no
 * byte after the head is ever read as a body or parsed as another request.
 *
 * Invariants:
 * - every request libh2o processes had at most HTTP_HEAD_BYTES_MAX of head, one Host
 *   (HTTP/1.1; at most one for 1.0), at most one Content-Length of plain digits, no
 *   Content-Length with Transfer-Encoding, and no transfer coding but "chunked";
 * - a declared body over its route's limit is refused before any of it is read; one over
 *   the default limit also needs the admin key (http_limits.big_body_ok) and room in the
 *   pending-bodies budget (net.c), reserved here and released when its request is done;
 * - a chunked body is cut at the default limit as it arrives: libh2o compares the global
 *   entity limit right after each phr_decode_chunked call, which sets it just before.
 * Tested by tests/blackbox/test_security.py (framing, limits, budget) and fuzzed through
 * tests/fuzz/http (the whole request path, this guard included). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "http_int.h"
#include "vx.h"
#include "net.h"

typedef ssize_t (*chunked_fn)(struct phr_chunked_decoder *, char *, size_t *);

/* One row per way a head is refused. `method` is what libh2o is handed: its address
 * identifies the row in http_guard_refusal(). */
static struct refusal {
    char method[8];
    const char *reason; /* the metric label */
    struct http_refusal answer;
    uint64_t count;
} refusals[] = {
    {"VXREF", "content_length_twice", {400, "invalid_framing", "two Content-Length headers"}, 0},
    {"VXREF", "content_length_bad", {400, "invalid_framing", "Content-Length is not a number"}, 0},
    {"VXREF", "length_and_chunked",
     {400, "invalid_framing", "Content-Length together with Transfer-Encoding"}, 0},
    {"VXREF", "transfer_encoding",
     {400, "invalid_framing", "the only transfer coding accepted is one 'chunked' (HTTP/1.1)"}, 0},
    {"VXREF", "host",
     {400, "invalid_framing", "an HTTP/1.1 request needs exactly one Host header"}, 0},
    {"VXREF", "head_too_large", {431, "headers_too_large", "the request head is over 32 KiB"}, 0},
    {"VXREF", "body_too_large",
     {413, "payload_too_large", "the declared body is over this route's limit"}, 0},
    {"VXREF", "body_needs_admin", {401, "unauthorized", "bodies over 64 KiB need the admin key"}, 0},
    {"VXREF", "bodies_pending",
     {503, "busy", "too many large bodies are arriving at once; retry shortly"}, 0},
};
enum { REF_CL_TWICE, REF_CL_BAD, REF_CL_TE, REF_TE, REF_HOST, REF_HEAD, REF_BODY, REF_ADMIN, REF_BUSY };
#define N_REFUSALS (sizeof refusals / sizeof refusals[0])

static struct http_limits limits = {HTTP_HEAD_BYTES_MAX, HTTP_BODY_BYTES_DEFAULT, NULL};
static size_t *entity_max; /* libh2o's global body limit (h2o_globalconf_t) */

void http_set_limits(const struct http_limits *l) { limits = *l; }

void http_guard_init(size_t *h2o_entity_max) { entity_max = h2o_entity_max; }

const struct http_refusal *http_guard_refusal(const char *method)
{
    uintptr_t p = (uintptr_t)method, lo = (uintptr_t)refusals, hi = (uintptr_t)(refusals + N_REFUSALS);
    if (p < lo || p >= hi) return NULL;
    return &refusals[(p - lo) / sizeof refusals[0]].answer;
}

/* What check_head needs of the head, gathered in one pass. */
struct head {
    int n_length, n_coding, n_host;
    const struct phr_header *length, *coding, *auth;
};

static int is(const struct phr_header *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

static void scan_head(const struct phr_header *hs, size_t n, struct head *o)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < n; i++) {
        const struct phr_header *h = &hs[i];
        if (!h->name) continue; /* a continuation line */
        if (is(h, "content-length", 14)) o->n_length++, o->length = h;
        else if (is(h, "transfer-encoding", 17)) o->n_coding++, o->coding = h;
        else if (is(h, "host", 4)) o->n_host++;
        else if (is(h, "authorization", 13) && !o->auth) o->auth = h; /* the first, as handlers read */
    }
}

/* The declared length: digits only (no sign, no space), at most 18 of them. */
static int parse_length(const struct phr_header *h, size_t *out)
{
    size_t v = 0;
    if (h->value_len == 0 || h->value_len > 18) return -1;
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9') return -1;
        v = v * 10 + (size_t)(h->value[i] - '0');
    }
    *out = v;
    return 0;
}

/* The limits of a declared body of `len` bytes on method + path. -1 when allowed, or the
 * refusal. A body over the default limit is reserved in the pending budget here. */
static int check_body(const char *buf, const char *method, size_t mlen, const char *path,
                      size_t plen, const struct head *h, size_t len)
{
    if (len <= limits.body_bytes_default) return -1;
    const struct http_route *rt = http_route_for(method, mlen, path, plen);
    size_t max = rt && rt->body_max ? rt->body_max : limits.body_bytes_default;
    if (len > max) return REF_BODY;
    if (!h->auth || !limits.big_body_ok || !limits.big_body_ok(h->auth->value, h->auth->value_len))
        return REF_ADMIN;
    return net_body_reserve(buf, len) ? REF_BUSY : -1;
}

/* -1 when the parsed head may go on, or the index of its refusal. */
static int check_head(const char *buf, const char *method, size_t mlen, const char *path,
                      size_t plen, int minor, const struct phr_header *hs, size_t n)
{
    struct head h;
    size_t len = 0;
    scan_head(hs, n, &h);
    if (h.n_length > 1) return REF_CL_TWICE;
    if (h.n_length && parse_length(h.length, &len)) return REF_CL_BAD;
    if (h.n_length && h.n_coding) return REF_CL_TE;
    if (h.n_coding && (h.n_coding > 1 || minor == 0 ||
                       h.coding->value_len != 7 || strncasecmp(h.coding->value, "chunked", 7)))
        return REF_TE;
    if (h.n_host > 1 || (minor >= 1 && h.n_host == 0)) return REF_HOST; /* 1.1 and later */
    return h.n_length ? check_body(buf, method, mlen, path, plen, &h, len) : -1;
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len)
{
    static parse_fn real;
    VX_FATAL_IF(!real && !(real = (parse_fn)dlsym(RTLD_NEXT, "phr_parse_request")));
    int rc = real(buf, len, method, method_len, path, path_len, minor_version, headers,
                  num_headers, last_len);
    int why;
    if (rc == -2 && len > limits.head_bytes_max) why = REF_HEAD;
    else if (rc < 0) return rc;
    else if ((size_t)rc > limits.head_bytes_max) why = REF_HEAD;
    else why = check_head(buf, *method, *method_len, *path, *path_len, *minor_version, headers,
                          *num_headers);
    if (why < 0) {
        /* Content-Length was checked against the route above: libh2o's own single limit
         * must not refuse it again (chunked bodies set it back, see below). */
        if (entity_max) *entity_max = SIZE_MAX / 2;
        return rc;
    }
    refusals[why].count++;
    *method = refusals[why].method;
    *method_len = strlen(refusals[why].method);
    *path = "/";
    *path_len = 1;
    *minor_version = 1;
    *num_headers = 0;
    return rc > 0 ? rc : (int)len;
}

ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz)
{
    static chunked_fn real;
    VX_FATAL_IF(!real && !(real = (chunked_fn)dlsym(RTLD_NEXT, "phr_decode_chunked")));
    if (entity_max) *entity_max = limits.body_bytes_default;
    return real(decoder, buf, bufsz);
}

void http_guard_render_metrics(struct metrics_buf *b)
{
    metrics_printf(b, "# TYPE veltrix_http_refused_total counter\n");
    for (size_t i = 0; i < N_REFUSALS; i++)
        metrics_printf(b, "veltrix_http_refused_total{reason=\"%s\"} %llu\n", refusals[i].reason,
                       (unsigned long long)refusals[i].count);
}
