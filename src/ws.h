/* ws.h — WebSocket (RFC 6455), server side, on a raw libh2o socket.
 *
 * Two layers:
 * - pure framing (no I/O): ws_frame_parse() reads one client frame header, ws_read()
 *   turns client bytes into messages (unmasking in place, reassembling fragments, checking
 *   the RFC's rules) and ws_frame_header() writes a server frame header. These are what
 *   the unit tests and the libFuzzer target (tests/fuzz/ws_frame) exercise.
 * - connections: after http_upgrade_websocket() hands over the socket, ws_conn_create()
 *   owns it. Outgoing data is a queue of reference-counted frames (struct ws_buf): one
 *   frame encoded once can be queued on 10,000 connections, and each connection writes
 *   all it has queued in one writev. Queued bytes per connection are capped; a ping every
 *   ping interval, and a connection that stays silent for two intervals is closed. */
#ifndef VELTRIX_WS_H
#define VELTRIX_WS_H
#include <stddef.h>
#include <stdint.h>

#define WS_MESSAGE_MAX 4096 /* client messages (API.md: larger gets close 1009) */

enum ws_opcode { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* Close codes (RFC 6455 §7.4.1). Parse errors are returned negated. */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_TRY_AGAIN = 1013,
};

/* --- pure framing ----------------------------------------------------------------------- */
struct ws_frame {
    int fin, opcode, masked;
    uint8_t mask[4];
    uint64_t len;      /* payload length */
    size_t header_len; /* bytes before the payload */
};

/* Parses the header of one client frame from p[0..n). Returns 1 when the header is
 * complete (the payload may not be), 0 when more bytes are needed, or -code (1002, 1009)
 * when the frame breaks the RFC or its payload is over payload_max. */
int ws_frame_parse(const uint8_t *p, size_t n, size_t payload_max, struct ws_frame *f);

/* Writes a server (unmasked, final) frame header for a payload of len bytes into out;
 * returns its length (2, 4 or 10). */
size_t ws_frame_header(uint8_t out[10], int opcode, uint64_t len);

/* Message reassembly state of one connection; zero-initialised. The fragment buffer is
 * allocated only while a fragmented message is in progress. */
struct ws_reader {
    uint8_t *frag;
    size_t frag_len;
    int frag_opcode; /* 0: no fragmented message in progress */
};

struct ws_msg {
    int opcode;          /* WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG */
    const uint8_t *data; /* into the input (unmasked in place) or the fragment buffer */
    size_t len;
};

/* Consumes at most one frame from p[0..n) (unmasking its payload in place) and sets *used.
 * Returns 1 with *msg filled when a message (or control frame) is complete, 0 when a frame
 * was consumed without completing a message or more bytes are needed (*used == 0), or
 * -code on a protocol error (1002), an oversized message (1009) or invalid UTF-8 in a text
 * message (1007). msg->data is valid until the next call. */
int ws_read(struct ws_reader *r, uint8_t *p, size_t n, size_t *used, struct ws_msg *msg);
void ws_reader_deinit(struct ws_reader *r);
/* 1 if s[0..n) is valid UTF-8. */
int ws_utf8_valid(const uint8_t *s, size_t n);

/* Sec-WebSocket-Accept for a client key (RFC 6455 §4.2.2); out gets 28 chars + NUL. */
void ws_accept_key(const char *key, size_t len, char out[29]);

/* --- shared frames ---------------------------------------------------------------------- */
/* A complete server frame, reference counted. Created with one reference (the caller's). */
struct ws_buf {
    uint32_t refs;
    uint32_t len;
    uint64_t seq; /* free for the owner (live: the event's seq, 0 if none) */
    uint8_t data[];
};
/* Frames payload[0..len) as one final frame of opcode; NULL when out of memory. */
struct ws_buf *ws_buf_frame(int opcode, const void *payload, size_t len);
static inline struct ws_buf *ws_buf_ref(struct ws_buf *b)
{
    b->refs++;
    return b;
}
void ws_buf_unref(struct ws_buf *b);

/* --- connections ------------------------------------------------------------------------ */
struct ws_conn;
struct ws_ctx;

struct ws_config {
    size_t queue_bytes_max; /* per-connection cap on queued output */
    uint64_t ping_ms;       /* ping interval; silent for two intervals: closed */
    int sndbuf_bytes;       /* SO_SNDBUF of each connection (bounds kernel memory); 0: as is */
};

struct ws_ops {
    /* A text message from the client (valid UTF-8, at most WS_MESSAGE_MAX bytes). */
    void (*on_text)(struct ws_conn *c, const char *data, size_t len);
    /* The connection is gone; c is freed after this returns. */
    void (*on_close)(struct ws_conn *c);
    /* Optional: everything queued has been written to the socket (the queue is empty and
     * the connection is not closing). Called from the write callback: it may queue. */
    void (*on_drain)(struct ws_conn *c);
};

struct ws_stats {
    uint64_t frames_sent;  /* frames fully written */
    uint64_t bytes_sent;
    uint64_t protocol_closes; /* closed for a bad client frame (1002/1007/1009/1003) */
    uint64_t dead_closes;     /* closed for silence (no pong) */
};

/* loop is the h2o evloop. */
struct ws_ctx *ws_ctx_create(void *loop, const struct ws_config *cfg);
void ws_ctx_destroy(struct ws_ctx *x);
const struct ws_stats *ws_ctx_stats(const struct ws_ctx *x);

/* Takes over sock (a h2o_socket_t * from http_upgrade_websocket) and starts reading;
 * frames that came with the handshake are handled before it returns (ops->on_text may
 * run, ops->on_close does not). data is the owner's. NULL when out of memory (the socket
 * is then closed). */
struct ws_conn *ws_conn_create(struct ws_ctx *x, void *sock, const struct ws_ops *ops,
                               void *data);
void *ws_conn_data(const struct ws_conn *c);
/* Queues b (takes a new reference; the caller keeps its own). Nothing is written until
 * ws_conn_flush(). -1 (nothing queued) when the connection is closing or the queue would
 * go over queue_bytes_max unless force is set. */
int ws_conn_send(struct ws_conn *c, struct ws_buf *b, int force);
/* Starts writing what is queued, if no write is in flight. */
void ws_conn_flush(struct ws_conn *c);
size_t ws_conn_queued_bytes(const struct ws_conn *c);
/* Drops what is queued and not yet being written, queues b (may be NULL) and a close
 * frame with code, then closes once they are written (or at the next ping tick). Never
 * frees c before it returns (safe inside a broadcast or a message callback). */
void ws_conn_close(struct ws_conn *c, int code, struct ws_buf *b);
int ws_conn_closing(const struct ws_conn *c);
/* Closes at once; ops->on_close runs before it returns. */
void ws_conn_abort(struct ws_conn *c);

#endif
