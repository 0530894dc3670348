/* ws.c — see ws.h.
 *
 * Framing: client frames must be masked; RSV bits must be 0 (no extension is negotiated);
 * control frames are final and at most 125 bytes; lengths use the shortest encoding;
 * a message (all its fragments) is at most WS_MESSAGE_MAX bytes, and that is checked on
 * the header, before its payload is read. Text messages must be valid UTF-8.
 *
 * Connections: the output is a ring of ws_buf references. At most one h2o write is in
 * flight: it covers the first `inflight` entries of the ring, which stay referenced until
 * h2o reports the write done (h2o keeps pointers to them, not copies). The socket's input
 * buffer is given back whenever it is empty, so an idle connection holds no buffer. */
#include "ws.h"

#include <assert.h>
#include <h2o.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- pure framing ------------------------------------------------------------------- */

static int known_opcode(int op)
{
    return op == WS_CONT || op == WS_TEXT || op == WS_BINARY || op == WS_CLOSE ||
           op == WS_PING || op == WS_PONG;
}

int ws_frame_parse(const uint8_t *p, size_t n, size_t payload_max, struct ws_frame *f)
{
    if (n < 2) return 0;
    f->fin = p[0] >> 7;
    f->opcode = p[0] & 0x0f;
    f->masked = p[1] >> 7;
    if ((p[0] & 0x70) || !known_opcode(f->opcode) || !f->masked) return -WS_CLOSE_PROTOCOL;
    uint64_t len = p[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4) return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        if (len < 126) return -WS_CLOSE_PROTOCOL;
        hl = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        len = 0;
        for (int i = 2; i < 10; i++) len = len << 8 | p[i];
        if (len >> 63 || len <= 0xffff) return -WS_CLOSE_PROTOCOL;
        hl = 10;
    }
    if (f->opcode >= WS_CLOSE && (!f->fin || len > 125)) return -WS_CLOSE_PROTOCOL;
    if (len > payload_max) return -WS_CLOSE_TOO_BIG;
    if (n < hl + 4) return 0;
    memcpy(f->mask, p + hl, 4);
    f->len = len;
    f->header_len = hl + 4;
    return 1;
}

size_t ws_frame_header(uint8_t out[10], int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int ws_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (n - i <= (size_t)k) return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

/* Checks a close frame's payload: empty, or a valid code and UTF-8 reason. */
static int close_payload_ok(const uint8_t *p, size_t len)
{
    if (len == 0) return 1;
    if (len == 1) return 0;
    int code = p[0] << 8 | p[1];
    int ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
             (code >= 3000 && code <= 4999);
    return ok && ws_utf8_valid(p + 2, len - 2);
}

/* A complete data message: text must be UTF-8. */
static int finish(int opcode, const uint8_t *data, size_t len, struct ws_msg *msg)
{
    if (opcode == WS_TEXT && !ws_utf8_valid(data, len)) return -WS_CLOSE_BAD_DATA;
    msg->opcode = opcode;
    msg->data = data;
    msg->len = len;
    return 1;
}

/* Appends a fragment; the buffer is allocated at its maximum once, freed on completion. */
static int add_fragment(struct ws_reader *r, const uint8_t *p, size_t len)
{
    if (r->frag_len + len > WS_MESSAGE_MAX) return -WS_CLOSE_TOO_BIG;
    if (!r->frag && !(r->frag = malloc(WS_MESSAGE_MAX))) return -WS_CLOSE_TRY_AGAIN;
    memcpy(r->frag + r->frag_len, p, len);
    r->frag_len += len;
    return 0;
}

static int on_frame(struct ws_reader *r, const struct ws_frame *f, uint8_t *payload,
                    struct ws_msg *msg)
{
    size_t len = (size_t)f->len;
    if (f->opcode >= WS_CLOSE) {
        if (f->opcode == WS_CLOSE && !close_payload_ok(payload, len)) return -WS_CLOSE_PROTOCOL;
        msg->opcode = f->opcode;
        msg->data = payload;
        msg->len = len;
        return 1;
    }
    if (f->opcode == WS_CONT && !r->frag_opcode) return -WS_CLOSE_PROTOCOL;
    if (f->opcode != WS_CONT && r->frag_opcode) return -WS_CLOSE_PROTOCOL;
    if (f->opcode != WS_CONT && f->fin) return finish(f->opcode, payload, len, msg);
    if (f->opcode != WS_CONT) r->frag_opcode = f->opcode;
    int rc = add_fragment(r, payload, len);
    if (rc || !f->fin) return rc;
    int op = r->frag_opcode;
    r->frag_opcode = 0;
    size_t total = r->frag_len;
    r->frag_len = 0;
    return finish(op, r->frag, total, msg); /* frag stays allocated until the next call */
}

int ws_read(struct ws_reader *r, uint8_t *p, size_t n, size_t *used, struct ws_msg *msg)
{
    struct ws_frame f;
    *used = 0;
    if (r->frag && !r->frag_opcode) { /* the previous call returned a reassembled message */
        free(r->frag);
        r->frag = NULL;
    }
    size_t room = WS_MESSAGE_MAX - (r->frag_opcode ? r->frag_len : 0);
    int rc = ws_frame_parse(p, n, WS_MESSAGE_MAX, &f);
    if (rc <= 0) return rc;
    if (f.opcode == WS_CONT && f.len > room) return -WS_CLOSE_TOO_BIG;
    if (n - f.header_len < f.len) return 0;
    uint8_t *payload = p + f.header_len;
    for (uint64_t i = 0; i < f.len; i++) payload[i] ^= f.mask[i & 3];
    *used = f.header_len + (size_t)f.len;
    return on_frame(r, &f, payload, msg);
}

void ws_reader_deinit(struct ws_reader *r)
{
    free(r->frag);
    memset(r, 0, sizeof *r);
}

void ws_accept_key(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char in[128 + sizeof guid];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (len > 128) len = 128; /* real keys are 24 characters */
    memcpy(in, key, len);
    memcpy(in + len, guid, sizeof guid - 1);
    EVP_Digest(in, len + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

struct ws_buf *ws_buf_frame(int opcode, const void *payload, size_t len)
{
    uint8_t h[10];
    size_t hl = ws_frame_header(h, opcode, len);
    if (len > UINT32_MAX - hl) return NULL;
    struct ws_buf *b = malloc(sizeof *b + hl + len);
    if (!b) return NULL;
    b->refs = 1;
    b->len = (uint32_t)(hl + len);
    b->seq = 0;
    memcpy(b->data, h, hl);
    if (len) memcpy(b->data + hl, payload, len);
    return b;
}

void ws_buf_unref(struct ws_buf *b)
{
    if (b && --b->refs == 0) free(b);
}

/* ---- connections -------------------------------------------------------------------- */

#define WRITE_BATCH_MAX 64 /* frames per writev */

struct ws_ctx {
    h2o_loop_t *loop;
    struct ws_config cfg;
    h2o_timeout_t tick;
    struct ws_buf *ping;
    struct ws_stats stats;
};

struct ws_conn {
    struct ws_ctx *x;
    h2o_socket_t *sock;
    const struct ws_ops *ops;
    void *data;
    struct ws_buf **q; /* ring: q[head] is the oldest; the first `inflight` are being written */
    uint32_t head, count, cap, inflight;
    size_t queued_bytes;
    uint8_t closing, heard, pinged;
    struct ws_reader rd;
    h2o_timeout_entry_t tick;
};

struct ws_ctx *ws_ctx_create(void *loop, const struct ws_config *cfg)
{
    struct ws_ctx *x = calloc(1, sizeof *x);
    if (!x || !(x->ping = ws_buf_frame(WS_PING, NULL, 0))) {
        free(x);
        return NULL;
    }
    x->loop = loop;
    x->cfg = *cfg;
    h2o_timeout_init(x->loop, &x->tick, cfg->ping_ms);
    return x;
}

void ws_ctx_destroy(struct ws_ctx *x)
{
    if (!x) return;
    h2o_timeout_dispose(x->loop, &x->tick);
    ws_buf_unref(x->ping);
    free(x);
}

const struct ws_stats *ws_ctx_stats(const struct ws_ctx *x) { return &x->stats; }

void *ws_conn_data(const struct ws_conn *c) { return c->data; }
size_t ws_conn_queued_bytes(const struct ws_conn *c) { return c->queued_bytes; }
int ws_conn_closing(const struct ws_conn *c) { return c->closing; }

static int push(struct ws_conn *c, struct ws_buf *b)
{
    if (c->count == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 4;
        struct ws_buf **q = malloc(cap * sizeof *q);
        if (!q) return -1;
        for (uint32_t i = 0; i < c->count; i++) q[i] = c->q[(c->head + i) % c->cap];
        free(c->q);
        c->q = q;
        c->head = 0;
        c->cap = cap;
    }
    c->q[(c->head + c->count++) % c->cap] = ws_buf_ref(b);
    c->queued_bytes += b->len;
    return 0;
}

static struct ws_buf *pop(struct ws_conn *c)
{
    struct ws_buf *b = c->q[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    c->queued_bytes -= b->len;
    return b;
}

/* Drops the queued frames that are not being written. */
static void drop_unsent(struct ws_conn *c)
{
    while (c->count > c->inflight) {
        uint32_t last = (c->head + c->count - 1) % c->cap;
        c->queued_bytes -= c->q[last]->len;
        ws_buf_unref(c->q[last]);
        c->count--;
    }
}

int ws_conn_send(struct ws_conn *c, struct ws_buf *b, int force)
{
    if (c->closing) return -1;
    if (!force && c->queued_bytes + b->len > c->x->cfg.queue_bytes_max) return -1;
    return push(c, b);
}

void ws_conn_abort(struct ws_conn *c)
{
    if (c->sock) h2o_socket_close(c->sock); /* no write callback after this */
    if (h2o_timeout_is_linked(&c->tick)) h2o_timeout_unlink(&c->tick);
    c->inflight = 0;
    drop_unsent(c);
    free(c->q);
    ws_reader_deinit(&c->rd);
    c->ops->on_close(c);
    free(c);
}

static void on_write(h2o_socket_t *sock, const char *err)
{
    struct ws_conn *c = sock->data;
    if (err) {
        ws_conn_abort(c);
        return;
    }
    for (uint32_t i = c->inflight; i > 0; i--) {
        struct ws_buf *b = pop(c);
        c->x->stats.frames_sent++;
        c->x->stats.bytes_sent += b->len;
        ws_buf_unref(b);
    }
    c->inflight = 0;
    if (c->count) {
        ws_conn_flush(c);
        return;
    }
    if (c->closing) {
        ws_conn_abort(c);
        return;
    }
    if (c->cap > 16) { /* a burst grew the ring: give it back */
        free(c->q);
        c->q = NULL;
        c->cap = c->head = 0;
    }
    if (c->ops->on_drain) c->ops->on_drain(c);
}

void ws_conn_flush(struct ws_conn *c)
{
    if (c->inflight || !c->count) return;
    h2o_iovec_t iov[WRITE_BATCH_MAX];
    uint32_t n = c->count < WRITE_BATCH_MAX ? c->count : WRITE_BATCH_MAX;
    for (uint32_t i = 0; i < n; i++) {
        struct ws_buf *b = c->q[(c->head + i) % c->cap];
        iov[i] = h2o_iovec_init(b->data, b->len);
    }
    c->inflight = n;
    h2o_socket_write(c->sock, iov, n, on_write);
}

void ws_conn_close(struct ws_conn *c, int code, struct ws_buf *b)
{
    if (c->closing) return;
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    struct ws_buf *cl = ws_buf_frame(WS_CLOSE, payload, 2);
    drop_unsent(c);
    if (b) push(c, b);
    if (cl) push(c, cl);
    ws_buf_unref(cl);
    c->closing = 1;
    h2o_socket_read_stop(c->sock);
    ws_conn_flush(c); /* nothing queued (out of memory): the next tick closes it */
}

/* Handles one complete client message; returns -1 when c is closing or gone. */
static int on_message(struct ws_conn *c, const struct ws_msg *m)
{
    switch (m->opcode) {
    case WS_TEXT:
        c->ops->on_text(c, (const char *)m->data, m->len);
        return c->closing ? -1 : 0;
    case WS_BINARY:
        c->x->stats.protocol_closes++;
        ws_conn_close(c, WS_CLOSE_UNSUPPORTED, NULL);
        return -1;
    case WS_PING: { /* a client that pings without reading the pongs hits the cap */
        struct ws_buf *pong = ws_buf_frame(WS_PONG, m->data, m->len);
        int rc = pong ? ws_conn_send(c, pong, 0) : -1;
        ws_buf_unref(pong);
        if (rc) {
            ws_conn_close(c, WS_CLOSE_POLICY, NULL);
            return -1;
        }
        ws_conn_flush(c);
        return 0;
    }
    case WS_CLOSE:
        ws_conn_close(c, WS_CLOSE_NORMAL, NULL);
        return -1;
    }
    return 0; /* pong */
}

/* An idle connection keeps no input buffer (8 KiB in libh2o): it is taken again on read. */
static void release_input(h2o_socket_t *sock)
{
    if (sock->input->size == 0 && sock->input->bytes) {
        h2o_buffer_dispose(&sock->input);
        h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct ws_conn *c = sock->data;
    if (err) {
        ws_conn_abort(c);
        return;
    }
    c->heard = 1;
    for (;;) {
        struct ws_msg m;
        size_t used;
        int rc = ws_read(&c->rd, (uint8_t *)sock->input->bytes, sock->input->size, &used, &m);
        if (rc < 0) {
            c->x->stats.protocol_closes++;
            ws_conn_close(c, -rc, NULL);
            return;
        }
        h2o_buffer_consume(&sock->input, used);
        if ((rc == 1 && on_message(c, &m)) || used == 0) break;
    }
    if (!c->closing) release_input(sock);
}

/* Every ping interval: close a connection silent since the last ping, else ping it. */
static void on_tick(h2o_timeout_entry_t *entry)
{
    struct ws_conn *c = H2O_STRUCT_FROM_MEMBER(struct ws_conn, tick, entry);
    if (c->closing || (c->pinged && !c->heard)) {
        if (!c->closing) c->x->stats.dead_closes++;
        ws_conn_abort(c);
        return;
    }
    if (c->heard) {
        c->heard = c->pinged = 0;
    } else {
        ws_conn_send(c, c->x->ping, 0); /* a full queue: no ping, the cap decides */
        ws_conn_flush(c);
        c->pinged = 1;
    }
    h2o_timeout_link(c->x->loop, &c->x->tick, &c->tick);
}

struct ws_conn *ws_conn_create(struct ws_ctx *x, void *sockp, const struct ws_ops *ops, void *data)
{
    h2o_socket_t *sock = sockp;
    struct ws_conn *c = calloc(1, sizeof *c);
    if (!c) {
        h2o_socket_close(sock);
        return NULL;
    }
    c->x = x;
    c->sock = sock;
    c->ops = ops;
    c->data = data;
    sock->data = c;
    if (x->cfg.sndbuf_bytes > 0)
        setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_SNDBUF, &x->cfg.sndbuf_bytes,
                   sizeof x->cfg.sndbuf_bytes);
    c->tick.cb = on_tick;
    h2o_timeout_link(x->loop, &x->tick, &c->tick);
    h2o_socket_read_start(sock, on_read);
    if (sock->input->size) on_read(sock, NULL); /* frames sent along with the handshake */
    else release_input(sock);                    /* the handshake's buffer */
    return c;
}
