/* fwdbatch.c — see fwdbatch.h: the body of a batch of forwarded writes and of its answer. */
#include "fwdbatch.h"

#include <stdlib.h>
#include <string.h>

#define U8_MAX_LEN 255u
#define U16_MAX_LEN 65535u

/* A header name: lower-case letters, digits, '-' and '_' (what Veltrix sends), not empty. */
static int token(struct http_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!((s.p[i] >= 'a' && s.p[i] <= 'z') || (s.p[i] >= '0' && s.p[i] <= '9') ||
              s.p[i] == '-' || s.p[i] == '_'))
            return 0;
    return s.len > 0;
}

/* A header value with no control character (no CR or LF to split a header with). */
static int printable(struct http_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (((uint8_t)s.p[i] < 0x20 && s.p[i] != '\t') || s.p[i] == 0x7f) return 0;
    return 1;
}

/* A header the answer body can carry (the parser refuses the others). */
static int sendable(const struct http_hdr *h)
{
    struct http_str n = {h->name, strlen(h->name)}, v = {h->value, h->value_len};
    return n.len <= U8_MAX_LEN && v.len <= U16_MAX_LEN && token(n) && printable(v);
}

void fwdbatch_buf_free(struct fwdbatch_buf *b)
{
    free(b->p);
    *b = (struct fwdbatch_buf){0};
}

static uint8_t *room(struct fwdbatch_buf *b, size_t need)
{
    if (b->failed) return NULL;
    if (b->len + need > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->len + need) c *= 2;
        uint8_t *p = realloc(b->p, c);
        if (!p) {
            b->failed = 1;
            return NULL;
        }
        b->p = p;
        b->cap = c;
    }
    uint8_t *at = b->p + b->len;
    b->len += need;
    return at;
}

static void put_uint(struct fwdbatch_buf *b, uint64_t v, int bytes)
{
    uint8_t *p = room(b, (size_t)bytes);
    for (int i = 0; p && i < bytes; i++) p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static void put_bytes(struct fwdbatch_buf *b, const void *s, size_t n)
{
    uint8_t *p = room(b, n);
    if (p && n) memcpy(p, s, n);
}

void fwdbatch_put_raw(struct fwdbatch_buf *b, const void *p, size_t n) { put_bytes(b, p, n); }

/* A length-prefixed field (bytes: the prefix's size); too long: the buffer fails. */
static void put_field(struct fwdbatch_buf *b, struct http_str s, int bytes)
{
    uint64_t max = bytes == 1 ? U8_MAX_LEN : bytes == 2 ? U16_MAX_LEN : UINT32_MAX;
    if (s.len > max) {
        b->failed = 1;
        return;
    }
    put_uint(b, s.len, bytes);
    put_bytes(b, s.p, s.len);
}

size_t fwdbatch_req_size(const struct fwdbatch_req *q)
{
    if (q->method.len > U8_MAX_LEN || q->target.len > U16_MAX_LEN ||
        q->authorization.len > U16_MAX_LEN || q->idempotency_key.len > U16_MAX_LEN ||
        q->content_type.len > U16_MAX_LEN || q->body.len > UINT32_MAX)
        return 0;
    return 1 + 16 + 1 + 2 + 2 + 2 + 2 + 4 + q->method.len + q->target.len +
           q->authorization.len + q->idempotency_key.len + q->content_type.len + q->body.len;
}

void fwdbatch_put_head(struct fwdbatch_buf *b, size_t count)
{
    if (count > FWDBATCH_COUNT_MAX) b->failed = 1;
    put_uint(b, FWDBATCH_VERSION, 1);
    put_uint(b, count, 2);
}

void fwdbatch_put_req(struct fwdbatch_buf *b, const struct fwdbatch_req *q)
{
    uint8_t flags = (uint8_t)((q->authorization.p ? 1 : 0) | (q->idempotency_key.p ? 2 : 0) |
                              (q->content_type.p ? 4 : 0));
    put_uint(b, flags, 1);
    put_bytes(b, q->client, 16);
    put_field(b, q->method, 1);
    put_field(b, q->target, 2);
    put_field(b, q->authorization, 2);
    put_field(b, q->idempotency_key, 2);
    put_field(b, q->content_type, 2);
    put_field(b, q->body, 4);
}

void fwdbatch_put_ans(struct fwdbatch_buf *b, int status, const struct http_hdr *h, size_t n,
                      const void *body, size_t len)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) kept += sendable(&h[i]);
    if (kept > FWDBATCH_HEADERS_MAX) kept = FWDBATCH_HEADERS_MAX;
    put_uint(b, (uint64_t)(status < 0 || status > 999 ? 500 : status), 2);
    put_uint(b, kept, 1);
    for (size_t i = 0, k = 0; i < n && k < kept; i++) {
        if (!sendable(&h[i])) continue;
        put_field(b, (struct http_str){h[i].name, strlen(h[i].name)}, 1);
        put_field(b, (struct http_str){h[i].value, h[i].value_len}, 2);
        k++;
    }
    put_field(b, (struct http_str){body, len}, 4);
}

/* ---- parsing ------------------------------------------------------------------------- */

struct rd {
    const uint8_t *p, *end;
    int bad;
};

static uint64_t get_uint(struct rd *r, int bytes)
{
    uint64_t v = 0;
    if (r->bad || r->end - r->p < bytes) {
        r->bad = 1;
        return 0;
    }
    for (int i = 0; i < bytes; i++) v = v << 8 | *r->p++;
    return v;
}

static struct http_str get_field(struct rd *r, int bytes)
{
    size_t n = (size_t)get_uint(r, bytes);
    struct http_str s = {NULL, 0};
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return s;
    }
    s = (struct http_str){(const char *)r->p, n};
    r->p += n;
    return s;
}

static int get_head(struct rd *r)
{
    uint64_t v = get_uint(r, 1), n = get_uint(r, 2);
    return r->bad || v != FWDBATCH_VERSION || n == 0 || n > FWDBATCH_COUNT_MAX ? -1 : (int)n;
}

int fwdbatch_parse_reqs(const void *body, size_t len, struct fwdbatch_req *out)
{
    struct rd r = {body, (const uint8_t *)body + len, 0};
    int n = body ? get_head(&r) : -1;
    for (int i = 0; i < n && !r.bad; i++) {
        struct fwdbatch_req q;
        uint64_t flags = get_uint(&r, 1);
        if (flags > 7 || (size_t)(r.end - r.p) < 16) {
            r.bad = 1;
            break;
        }
        memcpy(q.client, r.p, 16);
        r.p += 16;
        q.method = get_field(&r, 1);
        q.target = get_field(&r, 2);
        q.authorization = get_field(&r, 2);
        q.idempotency_key = get_field(&r, 2);
        q.content_type = get_field(&r, 2);
        q.body = get_field(&r, 4);
        if (r.bad || !q.method.len || !q.target.len) {
            r.bad = 1;
            break;
        }
        /* An absent header is p == NULL; a present one points into body even when empty. */
        if (!(flags & 1)) q.authorization.p = NULL;
        if (!(flags & 2)) q.idempotency_key.p = NULL;
        if (!(flags & 4)) q.content_type.p = NULL;
        if ((!(flags & 1) && q.authorization.len) || (!(flags & 2) && q.idempotency_key.len) ||
            (!(flags & 4) && q.content_type.len)) {
            r.bad = 1;
            break;
        }
        if (!q.body.len) q.body.p = "";
        if (out) out[i] = q;
    }
    return n < 0 || r.bad || r.p != r.end ? -1 : n;
}

/* One answer at r (names copied into names); 0 or -1. */
static int get_ans(struct rd *r, struct fwdbatch_ans *a, char names[][U8_MAX_LEN + 1])
{
    a->status = (int)get_uint(r, 2);
    a->n = (size_t)get_uint(r, 1);
    if (r->bad || a->status < 100 || a->status > 999 || a->n > FWDBATCH_HEADERS_MAX) return -1;
    for (size_t k = 0; k < a->n; k++) {
        struct http_str nm = get_field(r, 1), v = get_field(r, 2);
        if (r->bad || !token(nm) || !printable(v)) return -1;
        memcpy(names[k], nm.p, nm.len);
        names[k][nm.len] = '\0';
        a->h[k] = (struct http_hdr){names[k], v.len ? v.p : "", v.len};
    }
    a->body = get_field(r, 4);
    if (!a->body.len) a->body.p = "";
    return r->bad ? -1 : 0;
}

int fwdbatch_parse_answers(const void *body, size_t len,
                           int (*each)(void *ctx, size_t i, const struct fwdbatch_ans *a),
                           void *ctx)
{
    char names[FWDBATCH_HEADERS_MAX][U8_MAX_LEN + 1];
    struct rd r = {body, (const uint8_t *)body + len, 0};
    struct fwdbatch_ans a;
    int n = body ? get_head(&r) : -1;
    for (int i = 0; i < n; i++)
        if (get_ans(&r, &a, names)) return -1;
    if (n < 0 || r.p != r.end) return -1;
    r = (struct rd){body, (const uint8_t *)body + len, 0};
    get_head(&r);
    for (int i = 0; i < n; i++) {
        get_ans(&r, &a, names);
        if (each && each(ctx, (size_t)i, &a)) break;
    }
    return n;
}
