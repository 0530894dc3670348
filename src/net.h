/* net.h — the event loop and the listening socket (libh2o evloop, HTTP/1.1 only).
 *
 * One I/O thread runs the loop; every request goes to http_dispatch(). Limits: at most
 * conns_max open connections and at most conns_per_ip_max from one client address (more
 * are accepted and closed at once, and counted), and
 * the request timeout, which bounds both a client slow to send its headers and an idle
 * keep-alive connection. SIGTERM/SIGINT ask the loop to stop: net_run() returns, and the
 * caller drains in-flight work with net_run_once() before exiting. */
#ifndef VELTRIX_NET_H
#define VELTRIX_NET_H
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct net_config {
    const char *listen; /* "127.0.0.1:8080" */
    size_t conns_max;
    size_t conns_per_ip_max; /* 0: no per-address cap */
    uint64_t req_timeout_ms;
    size_t body_max; /* largest body libh2o buffers (above every route limit) */
    size_t bodies_pending_max; /* bytes of bodies over the default limit arriving at once */
    size_t spill_bytes;    /* socket buffers larger than this go to unlinked temp files */
    const char *spill_dir; /* ... in this directory (the data directory) */
};

struct net;

/* Binds and listens. NULL with a message in err on failure. */
struct net *net_create(const struct net_config *cfg, char *err, size_t errcap);
void net_destroy(struct net *n);
/* The h2o evloop (for subsystems that post completions to this thread). */
void *net_loop(struct net *n);
/* Starts accepting connections and runs until SIGTERM/SIGINT; then accepts the
 * connections already waiting in the listen backlog and closes the listener (clients
 * that come later are refused), and every answer after that closes its connection.
 * (net_run_once before it serves what is already connected, accepts nothing new.) */
void net_run(struct net *n);
/* Open connections that were never answered anything: accepted, their first request not
 * yet come or not yet answered. A stopping server waits a little for them (main.c). */
size_t net_unanswered(const struct net *n);
/* Runs one loop iteration waiting at most max_wait_ms. */
void net_run_once(struct net *n, int max_wait_ms);
size_t net_connections(const struct net *n);
/* Serves fd, an already connected stream socket, as if it had been accepted (counted
 * against conns_max like the others). For tests and fuzzing: a socketpair gives a
 * connection without the network. 0, or -1 (fd closed) when at the cap. */
int net_adopt(struct net *n, int fd);
void net_render_metrics(const struct net *n, struct metrics_buf *b);

/* The budget of large bodies (over HTTP_BODY_BYTES_DEFAULT) arriving at once, so that
 * pending uploads cannot fill memory or the disk their buffers spill to. Reserves bytes
 * for the connection whose input buffer is `input` (the request-head guard knows only
 * that): 0, or -1 when over bodies_pending_max. The reservation is the connection's
 * until net_body_take() moves it to its request (which calls net_body_release() when
 * done), or until the connection closes. */
int net_body_reserve(const void *input, size_t bytes);
size_t net_body_take(void *h2o_socket);
void net_body_release(size_t bytes);

/* Destroys a h2o_multithread_queue_t whose receivers are unregistered. libh2o 2.2's
 * evloop build closes the queue's socket and mutex but never frees the queue itself
 * (later versions do): it is freed here for 2.2 only, or LeakSanitizer reports it. */
void net_queue_destroy(void *queue);

#endif
