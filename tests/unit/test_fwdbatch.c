/* Unit tests: the body of a batch of forwarded writes and of its answer (fwdbatch.h).
 * - Bodies built here by hand, byte by byte (independently of the encoder), parse to the
 *   requests and answers they hold, absent headers told apart from empty ones; the
 *   encoder gives those bytes back.
 * - Every malformed body (each cut short, trailing bytes, bad version, count 0 or over
 *   the maximum, unknown flags, a header flagged absent yet not empty, an empty method or
 *   target, a status under 100, too many headers, a header value with CR/LF, a header
 *   name that is not a lower-case token) is refused whole: the answer walker calls nothing
 *   for it; the encoder leaves such headers out.
 * - A field too long for its length prefix fails the encoder, never wraps. */
#include <stdlib.h>
#include <string.h>

#include "fwdbatch.h"
#include "harness.h"

struct bytes {
    uint8_t b[4096];
    size_t n;
};

static void u(struct bytes *x, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) x->b[x->n++] = (uint8_t)(v >> (8 * i));
}

static void f(struct bytes *x, const char *s, int n)
{
    size_t l = strlen(s);
    u(x, l, n);
    memcpy(x->b + x->n, s, l);
    x->n += l;
}

/* A request by hand: flags, client 198.51.100.7, the strings. */
static void req(struct bytes *x, int flags, const char *m, const char *t, const char *a,
                const char *k, const char *c, const char *body)
{
    static const uint8_t client[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
    u(x, (uint64_t)flags, 1);
    memcpy(x->b + x->n, client, 16);
    x->n += 16;
    f(x, m, 1);
    f(x, t, 2);
    f(x, a, 2);
    f(x, k, 2);
    f(x, c, 2);
    f(x, body, 4);
}

static int streq(struct http_str s, const char *want)
{
    return want ? s.p && s.len == strlen(want) && !memcmp(s.p, want, s.len) : s.p == NULL;
}

TEST(requests_parse_and_encode_back)
{
    struct bytes x = {.n = 0};
    u(&x, 1, 1);
    u(&x, 2, 2);
    req(&x, 7, "POST", "/v1/hunts/h/scans", "Bearer t", "key-1", "application/json", "{\"code\":\"a\"}");
    req(&x, 2, "PUT", "/v1/hunts/h?x=1", "", "", "", "");
    struct fwdbatch_req q[2];
    CHECK_EQ_INT(fwdbatch_parse_reqs(x.b, x.n, NULL), 2);
    CHECK_EQ_INT(fwdbatch_parse_reqs(x.b, x.n, q), 2);
    CHECK(streq(q[0].method, "POST") && streq(q[0].target, "/v1/hunts/h/scans"));
    CHECK(streq(q[0].authorization, "Bearer t") && streq(q[0].idempotency_key, "key-1"));
    CHECK(streq(q[0].content_type, "application/json") && streq(q[0].body, "{\"code\":\"a\"}"));
    CHECK(q[0].client[10] == 0xff && q[0].client[12] == 198 && q[0].client[15] == 7);
    /* Present but empty (an Idempotency-Key: with no value) is not absent. */
    CHECK(streq(q[1].authorization, NULL) && streq(q[1].idempotency_key, ""));
    CHECK(streq(q[1].content_type, NULL) && q[1].body.p && q[1].body.len == 0);
    struct fwdbatch_buf b = {0};
    fwdbatch_put_head(&b, 2);
    fwdbatch_put_req(&b, &q[0]);
    fwdbatch_put_req(&b, &q[1]);
    CHECK(!b.failed && b.len == x.n && !memcmp(b.p, x.b, x.n));
    CHECK_EQ_INT((int)(3 + fwdbatch_req_size(&q[0]) + fwdbatch_req_size(&q[1])), (int)x.n);
    fwdbatch_buf_free(&b);
}

TEST(malformed_requests_are_refused_whole)
{
    struct bytes x = {.n = 0}, y;
    u(&x, 1, 1);
    u(&x, 1, 2);
    req(&x, 4, "POST", "/p", "", "", "text/plain", "body");
    CHECK_EQ_INT(fwdbatch_parse_reqs(x.b, x.n, NULL), 1);
    for (size_t cut = 0; cut < x.n; cut++) CHECK_EQ_INT(fwdbatch_parse_reqs(x.b, cut, NULL), -1);
    y = x, y.b[y.n++] = 0; /* trailing */
    CHECK_EQ_INT(fwdbatch_parse_reqs(y.b, y.n, NULL), -1);
    y = x, y.b[0] = 2; /* version */
    CHECK_EQ_INT(fwdbatch_parse_reqs(y.b, y.n, NULL), -1);
    y = x, y.b[2] = 0; /* count 0 */
    CHECK_EQ_INT(fwdbatch_parse_reqs(y.b, y.n, NULL), -1);
    y = x, y.b[1] = 1, y.b[2] = 1; /* 257 */
    CHECK_EQ_INT(fwdbatch_parse_reqs(y.b, y.n, NULL), -1);
    y = x, y.b[3] = 8; /* unknown flag */
    CHECK_EQ_INT(fwdbatch_parse_reqs(y.b, y.n, NULL), -1);
    y = x, y.b[3] = 0; /* Content-Type absent, but "text/plain" follows */
    CHECK_EQ_INT(fwdbatch_parse_reqs(y.b, y.n, NULL), -1);
    struct bytes z = {.n = 0};
    u(&z, 1, 1);
    u(&z, 1, 2);
    req(&z, 0, "", "/p", "", "", "", ""); /* no method */
    CHECK_EQ_INT(fwdbatch_parse_reqs(z.b, z.n, NULL), -1);
    z.n = 3;
    req(&z, 0, "GET", "", "", "", "", ""); /* no target */
    CHECK_EQ_INT(fwdbatch_parse_reqs(z.b, z.n, NULL), -1);
    CHECK_EQ_INT(fwdbatch_parse_reqs(NULL, 0, NULL), -1);
}

struct seen {
    int calls, status[4];
    char hdr[4][64], body[4][64];
    size_t n_hdrs[4];
};

static int each(void *ctx, size_t i, const struct fwdbatch_ans *a)
{
    struct seen *s = ctx;
    s->calls++;
    s->status[i] = a->status;
    s->n_hdrs[i] = a->n;
    snprintf(s->hdr[i], sizeof s->hdr[i], "%s=%.*s", a->n ? a->h[0].name : "",
             a->n ? (int)a->h[0].value_len : 0, a->n ? a->h[0].value : "");
    snprintf(s->body[i], sizeof s->body[i], "%.*s", (int)a->body.len, a->body.p);
    return 0;
}

TEST(answers_parse_walk_and_encode_back)
{
    struct bytes x = {.n = 0};
    u(&x, 1, 1);
    u(&x, 2, 2);
    u(&x, 200, 2), u(&x, 1, 1), f(&x, "content-type", 1), f(&x, "application/json", 2);
    f(&x, "{\"points\":10}", 4);
    u(&x, 503, 2), u(&x, 2, 1), f(&x, "retry-after", 1), f(&x, "1", 2), f(&x, "etag", 1), f(&x, "", 2);
    f(&x, "", 4);
    struct seen s = {0};
    CHECK_EQ_INT(fwdbatch_parse_answers(x.b, x.n, each, &s), 2);
    CHECK_EQ_INT(s.calls, 2);
    CHECK_EQ_INT(s.status[0], 200);
    CHECK_EQ_STR(s.hdr[0], "content-type=application/json");
    CHECK_EQ_STR(s.body[0], "{\"points\":10}");
    CHECK_EQ_INT(s.status[1], 503);
    CHECK_EQ_INT((int)s.n_hdrs[1], 2);
    CHECK_EQ_STR(s.hdr[1], "retry-after=1");
    CHECK_EQ_STR(s.body[1], "");
    struct fwdbatch_buf b = {0};
    struct http_hdr h0[] = {{"content-type", "application/json", 16}};
    struct http_hdr h1[] = {{"retry-after", "1", 1}, {"etag", "", 0}};
    fwdbatch_put_head(&b, 2);
    fwdbatch_put_ans(&b, 200, h0, 1, "{\"points\":10}", 13);
    fwdbatch_put_ans(&b, 503, h1, 2, "", 0);
    CHECK(!b.failed && b.len == x.n && !memcmp(b.p, x.b, x.n));
    fwdbatch_buf_free(&b);
    /* Malformed: nothing is walked. */
    for (size_t cut = 0; cut < x.n; cut++) {
        struct seen t = {0};
        CHECK_EQ_INT(fwdbatch_parse_answers(x.b, cut, each, &t), -1);
        CHECK_EQ_INT(t.calls, 0);
    }
    struct bytes y = x;
    y.b[3] = 0, y.b[4] = 99; /* status 99 */
    CHECK_EQ_INT(fwdbatch_parse_answers(y.b, y.n, NULL, NULL), -1);
    y = x, y.b[5] = FWDBATCH_HEADERS_MAX + 1;
    CHECK_EQ_INT(fwdbatch_parse_answers(y.b, y.n, NULL, NULL), -1);
    y = x, y.b[y.n++] = 1;
    CHECK_EQ_INT(fwdbatch_parse_answers(y.b, y.n, NULL, NULL), -1);
    /* A header that could split the client's answer, or a name that is not a token. */
    const char *bad[][2] = {{"x-a", "1\r\nset-cookie: a=b"}, {"Content-Type", "a"}, {"a b", "c"}};
    for (int i = 0; i < 3; i++) {
        struct bytes z = {.n = 0};
        u(&z, 1, 1), u(&z, 1, 2), u(&z, 200, 2), u(&z, 1, 1);
        f(&z, bad[i][0], 1), f(&z, bad[i][1], 2), f(&z, "", 4);
        CHECK_EQ_INT(fwdbatch_parse_answers(z.b, z.n, NULL, NULL), -1);
        /* ... which the encoder leaves out, so the rest of the answer still goes. */
        struct http_hdr hh[2] = {{bad[i][0], bad[i][1], strlen(bad[i][1])}, {"etag", "e", 1}};
        struct seen t = {0};
        b = (struct fwdbatch_buf){0};
        fwdbatch_put_head(&b, 1);
        fwdbatch_put_ans(&b, 200, hh, 2, "", 0);
        CHECK_EQ_INT(fwdbatch_parse_answers(b.p, b.len, each, &t), 1);
        CHECK_EQ_INT((int)t.n_hdrs[0], 1);
        CHECK_EQ_STR(t.hdr[0], "etag=e");
        fwdbatch_buf_free(&b);
    }
}

TEST(a_field_too_long_fails_the_encoder)
{
    size_t big = 70000;
    char *t = malloc(big);
    CHECK(t != NULL);
    memset(t, 'a', big);
    struct fwdbatch_req q = {{"POST", 4}, {t, big}, {"", 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}, {0}};
    CHECK_EQ_INT((int)fwdbatch_req_size(&q), 0);
    struct fwdbatch_buf b = {0};
    fwdbatch_put_head(&b, 1);
    fwdbatch_put_req(&b, &q);
    CHECK(b.failed);
    fwdbatch_buf_free(&b);
    fwdbatch_put_head(&b, FWDBATCH_COUNT_MAX + 1);
    CHECK(b.failed);
    fwdbatch_buf_free(&b);
    free(t);
}

int main(void)
{
    RUN(requests_parse_and_encode_back);
    RUN(malformed_requests_are_refused_whole);
    RUN(answers_parse_walk_and_encode_back);
    RUN(a_field_too_long_fails_the_encoder);
    return HARNESS_DONE();
}
