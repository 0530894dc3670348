/* api_batch.c — POST /v1/cluster/batch (fwdbatch.h): the writes another node forwarded to
 * this one in one exchange.
 *
 * The gate checked the batch's signature (GATE_NODE: its MAC covers the whole body, so
 * every request's client address, Authorization and Idempotency-Key in it). Each request
 * then runs as a synthetic request (http_synth) through the same route, gate and handler
 * as a write forwarded alone: rate limits by the client address it carries, never
 * forwarded again (503 hunt_moving when this node does not own its hunt), its own answer.
 * The batch is answered once every one of its requests is (they mostly wait for the same
 * group commit). If the sending node goes away meanwhile, the requests still run to their
 * end, as a forwarded write whose client left does: only the answer is lost, and the
 * client's retry with its Idempotency-Key gets the first result. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

struct batch;

struct sub {
    struct http_synth s;
    struct batch *b;
    struct fwdbatch_buf ans; /* its answer, encoded */
};

struct batch {
    struct http_req *r; /* held */
    uint8_t *body;      /* a copy of the request's body: the subs point into it */
    size_t n, left;     /* left: answers still to come, +1 while the handler runs */
    struct sub subs[];
};

static uint64_t batches, batched;

/* One answer fewer to wait for; the last sends the batch's answer and frees it. */
static void one_done(struct batch *x)
{
    if (--x->left) return;
    struct fwdbatch_buf out = {0};
    fwdbatch_put_head(&out, x->n);
    for (size_t i = 0; i < x->n; i++) {
        if (x->subs[i].ans.failed) out.failed = 1;
        fwdbatch_put_raw(&out, x->subs[i].ans.p, x->subs[i].ans.len);
        fwdbatch_buf_free(&x->subs[i].ans);
    }
    if (out.failed)
        http_error(x->r, 503, "unavailable", "out of memory answering a batch");
    else
        http_send(x->r, 200, "application/octet-stream", (const char *)out.p, out.len);
    fwdbatch_buf_free(&out);
    free(x->body);
    free(x);
}

static void sub_answered(struct http_synth *s, int status, const struct http_hdr *h, size_t n,
                         const void *body, size_t len)
{
    struct sub *u = (struct sub *)s;
    fwdbatch_put_ans(&u->ans, status, h, n, body, len);
    one_done(u->b);
}

void api_cluster_batch(struct http_req *r)
{
    struct http_str b = http_body(r);
    if (!api_app.node_checked) {
        http_error(r, 403, "forbidden", "only the nodes of this cluster forward batches");
        return;
    }
    api_app.node_checked = 0;
    int n = fwdbatch_parse_reqs(b.p, b.len, NULL);
    if (n <= 0) {
        http_error(r, 400, "invalid_request", "a malformed batch of requests");
        return;
    }
    struct batch *x = calloc(1, sizeof *x + (size_t)n * sizeof x->subs[0]);
    struct fwdbatch_req *q = calloc((size_t)n, sizeof *q);
    uint8_t *body = x && q ? malloc(b.len) : NULL;
    if (!body) {
        free(x);
        free(q);
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    memcpy(body, b.p, b.len);
    fwdbatch_parse_reqs(body, b.len, q); /* as checked above: it parses */
    x->r = http_hold(r);
    x->body = body;
    x->n = (size_t)n;
    x->left = (size_t)n + 1;
    batches++;
    batched += (size_t)n;
    for (int i = 0; i < n; i++) {
        struct sub *u = &x->subs[i];
        u->b = x;
        u->s = (struct http_synth){q[i].method, q[i].target, q[i].body, q[i].authorization,
                                   q[i].idempotency_key, q[i].content_type, {0}, sub_answered};
        memcpy(u->s.client, q[i].client, 16);
        http_dispatch_synth(&u->s);
    }
    free(q);
    one_done(x);
}

void api_batch_render_metrics(struct metrics_buf *b)
{
    metrics_printf(b,
                   "# TYPE veltrix_batches_received_total counter\n"
                   "veltrix_batches_received_total %llu\n"
                   "# TYPE veltrix_batched_requests_received_total counter\n"
                   "veltrix_batched_requests_received_total %llu\n",
                   (unsigned long long)batches, (unsigned long long)batched);
}
