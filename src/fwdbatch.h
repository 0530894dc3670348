/* fwdbatch.h — several nodes: the writes of one loop turn that a node forwards to the same
 * owner travel in one exchange, POST /v1/cluster/batch (issue 15 item 3; the hop cost two
 * more HTTP exchanges per write, see docs/DESIGN.md "Several nodes"). This file is the
 * body's codec, and nothing else: forward.c builds batches and relays their answers,
 * api_batch.c runs each request of a batch like a forwarded one.
 *
 * The request body: u8 version (1), u16 count (1..FWDBATCH_COUNT_MAX), then per request
 *   u8 flags (bit 0: Authorization present, 1: Idempotency-Key, 2: Content-Type),
 *   16 bytes client address (IPv4 mapped),
 *   u8 method length, method, u16 target length, target,
 *   u16 length + Authorization, u16 length + Idempotency-Key, u16 length + Content-Type,
 *   u32 body length, body.
 * The answer body: u8 version (1), u16 count (as many as requests, in their order), then
 * per answer
 *   u16 status (100-999), u8 header count (at most FWDBATCH_HEADERS_MAX), per header:
 *   u8 name length, name (a-z, 0-9, '-', '_'), u16 value length, value (no control
 *   character but tab); then u32 body length, body.
 * Integers are big-endian. The parsers check every length against what is left: a
 * malformed body is refused whole. Pure: no I/O. */
#ifndef VELTRIX_FWDBATCH_H
#define VELTRIX_FWDBATCH_H
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define FWDBATCH_PATH "/v1/cluster/batch"
#define FWDBATCH_VERSION 1
#define FWDBATCH_COUNT_MAX 256
#define FWDBATCH_BYTES_MAX (60u << 10) /* a batch body: under the 64 KiB a request without
                                        * the admin key may carry (http.h) */
#define FWDBATCH_HEADERS_MAX 16        /* answer headers kept per answer */

struct fwdbatch_req {
    struct http_str method, target, body;
    struct http_str authorization, idempotency_key, content_type; /* p == NULL: absent */
    uint8_t client[16];
};

struct fwdbatch_ans {
    int status;
    struct http_hdr h[FWDBATCH_HEADERS_MAX];
    size_t n;
    struct http_str body;
};

/* A growing byte buffer (malloc'd). */
struct fwdbatch_buf {
    uint8_t *p;
    size_t len, cap;
    int failed; /* out of memory, or a field too long for its length: the buffer is unusable */
};
void fwdbatch_buf_free(struct fwdbatch_buf *b);

/* The bytes q takes in a request body; 0 when a field is too long to encode. */
size_t fwdbatch_req_size(const struct fwdbatch_req *q);
/* n bytes as they are (an answer encoded apart). */
void fwdbatch_put_raw(struct fwdbatch_buf *b, const void *p, size_t n);
/* The head of a body of count items (request or answer). */
void fwdbatch_put_head(struct fwdbatch_buf *b, size_t count);
void fwdbatch_put_req(struct fwdbatch_buf *b, const struct fwdbatch_req *q);
/* An answer: headers whose name or value does not fit are left out. */
void fwdbatch_put_ans(struct fwdbatch_buf *b, int status, const struct http_hdr *h, size_t n,
                      const void *body, size_t len);

/* The count of a well-formed request body (every request parses, nothing follows), or -1.
 * out (count entries; may be NULL) gets them, pointing into body. */
int fwdbatch_parse_reqs(const void *body, size_t len, struct fwdbatch_req *out);
/* Calls each(ctx, i, answer) for the answers of a well-formed answer body, after checking
 * all of it (values and body point into body; names are NUL-terminated copies; valid
 * during the call only); each's non-zero return stops. The count, or -1 when malformed
 * (no callback has run then). */
int fwdbatch_parse_answers(const void *body, size_t len,
                           int (*each)(void *ctx, size_t i, const struct fwdbatch_ans *a),
                           void *ctx);

#endif
