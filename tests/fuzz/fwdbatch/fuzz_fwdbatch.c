/* fuzz_fwdbatch.c — the bodies of a batch of forwarded writes and of its answer
 * (fwdbatch.h), as another node sends them.
 *
 * Input: one byte choosing the parser (even: requests, odd: answers), then the body. A
 * body that parses is canonical: encoding what was parsed gives the same bytes back (so
 * every field lies inside the input and nothing is skipped or invented); the answers'
 * validating pass and walking pass agree on the count. */
#include "fuzz_util.h"
#include "fwdbatch.h"

static int on_answer(void *ctx, size_t i, const struct fwdbatch_ans *a)
{
    struct fwdbatch_buf *b = ctx;
    (void)i;
    FUZZ_CHECK(a->status >= 100 && a->status <= 999 && a->n <= FWDBATCH_HEADERS_MAX);
    fwdbatch_put_ans(b, a->status, a->h, a->n, a->body.p, a->body.len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    struct fwdbatch_buf b = {0};
    if (data[0] % 2 == 0) {
        struct fwdbatch_req q[FWDBATCH_COUNT_MAX];
        int n = fwdbatch_parse_reqs(body, len, q);
        FUZZ_CHECK(n == -1 || (n >= 1 && n <= FWDBATCH_COUNT_MAX));
        FUZZ_CHECK(fwdbatch_parse_reqs(body, len, NULL) == n);
        if (n < 0) return 0;
        size_t bytes = 3;
        fwdbatch_put_head(&b, (size_t)n);
        for (int i = 0; i < n; i++) {
            FUZZ_CHECK(q[i].method.len && q[i].target.len);
            bytes += fwdbatch_req_size(&q[i]);
            fwdbatch_put_req(&b, &q[i]);
        }
        FUZZ_CHECK(!b.failed && b.len == len && bytes == len && !memcmp(b.p, body, len));
    } else {
        int n = fwdbatch_parse_answers(body, len, NULL, NULL);
        FUZZ_CHECK(n == -1 || (n >= 1 && n <= FWDBATCH_COUNT_MAX));
        if (n > 0) fwdbatch_put_head(&b, (size_t)n);
        FUZZ_CHECK(fwdbatch_parse_answers(body, len, on_answer, &b) == n);
        if (n > 0) FUZZ_CHECK(!b.failed && b.len == len && !memcmp(b.p, body, len));
    }
    fwdbatch_buf_free(&b);
    return 0;
}
