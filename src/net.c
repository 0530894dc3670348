/* net.c — see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hmap.h"
#include "http.h"
#include "http_int.h"

struct net {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_socket_t *wake; /* the self-pipe's read end (on_signal) */
    int listen_fd, spare_fd; /* spare_fd: kept open to accept-and-close when out of fds */
    int accept_paused;       /* out of fds without a spare: resumed when a connection closes */
    size_t conns, conns_max, per_ip_max;
    uint64_t accepted, refused, refused_ip;
    struct hmap per_ip; /* address (16 bytes) -> open connections, as a pointer-sized count */
    h2o_linklist_t conns_list; /* every open connection's struct conn */
    size_t bodies_pending, bodies_pending_max; /* bytes of large bodies reserved */
};

/* An open connection: counted against its address (when per_ip_max is set), and the
 * large body it is receiving, reserved in the pending budget (net_body_reserve). */
struct conn {
    struct net *n;
    h2o_socket_t *sock;
    h2o_linklist_t link;
    size_t body_reserved;
    int per_ip;
    uint8_t addr[16];
};

/* The server's one net: the request-head guard (a process-wide libh2o hook) reserves
 * body budget through it. */
static struct net *the_net;

static volatile sig_atomic_t stop_requested;
/* The self-pipe: a signal that lands after net_run's check of stop_requested and before
 * the loop blocks would otherwise wait for the loop's next event (an idle server could
 * sleep through SIGTERM). The handler writes a byte; the loop wakes and checks again. */
static int wake_fd[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    stop_requested = 1;
    if (wake_fd[1] >= 0 && write(wake_fd[1], "", 1) < 0) { /* full: a wake-up is pending */ }
    errno = saved;
}

static void on_wake(h2o_socket_t *sock, const char *err)
{
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) { return http_dispatch(req); }

static void on_accept(h2o_socket_t *listener, const char *err);

/* A connection closed: a descriptor is free again. */
static void conn_gone(struct net *n)
{
    n->conns--;
    if (n->spare_fd < 0) n->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (n->accept_paused && n->listener) {
        n->accept_paused = 0;
        h2o_socket_read_start(n->listener, on_accept);
    }
}

static void on_conn_close(void *data)
{
    struct conn *c = data;
    struct net *n = c->n;
    if (c->per_ip) {
        uintptr_t k = (uintptr_t)hmap_get(&n->per_ip, c->addr, 16);
        if (k <= 1) hmap_del(&n->per_ip, c->addr, 16);
        else hmap_put(&n->per_ip, c->addr, 16, (void *)(k - 1));
    }
    net_body_release(c->body_reserved);
    h2o_linklist_unlink(&c->link);
    free(c);
    conn_gone(n);
}

/* The peer address of sock as 16 bytes (IPv4 mapped into IPv6). */
static void peer_addr(h2o_socket_t *sock, uint8_t out[16])
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    memset(out, 0, 16);
    if (len && ss.ss_family == AF_INET6) {
        memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    } else if (len && ss.ss_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    }
}

/* Records sock (and counts it against its address) and hooks its close; 0 when the
 * address is at its cap (or out of memory): the caller refuses the connection. */
static int admit(struct net *n, h2o_socket_t *sock)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return 0;
    c->n = n;
    c->sock = sock;
    if (n->per_ip_max) {
        peer_addr(sock, c->addr);
        uintptr_t k = (uintptr_t)hmap_get(&n->per_ip, c->addr, 16);
        if (k >= n->per_ip_max || hmap_put(&n->per_ip, c->addr, 16, (void *)(k + 1))) {
            n->refused_ip++;
            free(c);
            return 0;
        }
        c->per_ip = 1;
    }
    h2o_linklist_insert(&n->conns_list, &c->link);
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = c;
    return 1;
}

int net_body_reserve(const void *input, size_t bytes)
{
    struct net *n = the_net;
    if (!n || bytes > n->bodies_pending_max - n->bodies_pending) return -1;
    /* Linear, but only for bodies over the default limit (admin uploads). */
    for (h2o_linklist_t *l = n->conns_list.next; l != &n->conns_list; l = l->next) {
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, l);
        if (c->sock->input && c->sock->input->bytes == input) {
            c->body_reserved += bytes;
            n->bodies_pending += bytes;
            return 0;
        }
    }
    return -1;
}

size_t net_body_take(void *h2o_sock)
{
    h2o_socket_t *sock = h2o_sock;
    if (sock->on_close.cb != on_conn_close) return 0;
    struct conn *c = sock->on_close.data;
    size_t bytes = c->body_reserved;
    c->body_reserved = 0;
    return bytes;
}

void net_body_release(size_t bytes)
{
    if (the_net) the_net->bodies_pending -= bytes;
}

/* Out of file descriptors, a pending connection cannot be accepted and the listener stays
 * ready: the loop would spin. Give up the spare descriptor, accept that connection and
 * close it at once (the client sees a clean close), and take the spare back. */
static int shed_one(struct net *n)
{
    if (n->spare_fd < 0) n->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (n->spare_fd < 0) return 0;
    close(n->spare_fd);
    int fd = accept4(n->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) close(fd);
    n->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    n->refused++;
    return fd >= 0;
}

/* Serves sock, or closes it when at a connection cap. 0 or -1. */
static int serve(struct net *n, h2o_socket_t *sock)
{
    if (n->conns >= n->conns_max || !admit(n, sock)) {
        n->refused++;
        h2o_socket_close(sock);
        return -1;
    }
    n->conns++;
    n->accepted++;
    h2o_accept(&n->accept_ctx, sock);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct net *n = listener->data;
    h2o_socket_t *sock;
    if (err) return;
    for (;;) {
        errno = 0;
        if (!(sock = h2o_evloop_socket_accept(listener))) {
            if (errno != EMFILE && errno != ENFILE) break;
            if (shed_one(n)) continue;
            if (n->spare_fd < 0) {
                /* No spare either: stop reading the listener (it would stay ready and
                 * spin the loop) until a connection closes; clients wait in the backlog. */
                h2o_socket_read_stop(listener);
                n->accept_paused = 1;
            }
            break;
        }
        serve(n, sock);
    }
}

int net_adopt(struct net *n, int fd)
{
    return serve(n, h2o_evloop_socket_create(n->ctx.loop, fd, 0));
}

/* "host:port" -> bound, listening socket; -1 with err set. */
static int listen_on(const char *addr, char *err, size_t errcap)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (!colon || (size_t)(colon - addr) >= sizeof host) goto bad;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        goto bad;
    sa.sin_port = htons((uint16_t)port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) goto sys;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4096)) {
        close(fd);
        goto sys;
    }
    return fd;
bad:
    snprintf(err, errcap, "bad listen address '%s' (expected IPv4:PORT)", addr);
    return -1;
sys:
    snprintf(err, errcap, "cannot listen on %s: %s", addr, strerror(errno));
    return -1;
}

#define NET_BUFFERS_REUSED 1024 /* 8 KB each: 8 MB kept at most */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define NET_ASAN 1 /* keep libh2o's 16: recycled buffers would hide a use-after-free */
#else
#define NET_ASAN 0
#endif

struct net *net_create(const struct net_config *cfg, char *err, size_t errcap)
{
    int fd = listen_on(cfg->listen, err, errcap);
    if (fd < 0) return NULL;
    struct net *n = calloc(1, sizeof *n);
    if (!n) {
        close(fd);
        return NULL;
    }
    n->conns_max = cfg->conns_max;
    n->listen_fd = fd;
    n->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    n->per_ip_max = cfg->conns_per_ip_max;
    n->bodies_pending_max = cfg->bodies_pending_max;
    hmap_init(&n->per_ip);
    h2o_linklist_init_anchor(&n->conns_list);
    h2o_config_init(&n->config);
    n->config.server_name = h2o_iovec_init(H2O_STRLIT("veltrix"));
    n->config.http1.upgrade_to_http2 = 0;
    n->config.http1.req_timeout = cfg->req_timeout_ms;
    n->config.max_request_entity_size = cfg->body_max;
    http_guard_init(&n->config.max_request_entity_size);
    the_net = n;
    /* A body up to body_max is buffered whole before any route sees it; past spill_bytes
     * libh2o keeps it in an unlinked temp file instead of anonymous memory, so that many
     * large uploads at once cannot take the process's memory. */
    h2o_socket_buffer_mmap_settings.threshold = cfg->spill_bytes;
    snprintf(h2o_socket_buffer_mmap_settings.fn_template,
             sizeof h2o_socket_buffer_mmap_settings.fn_template, "%s/.vx-buf.XXXXXX",
             cfg->spill_dir);
    /* libh2o frees a connection's input buffer whenever a request has consumed all of it
     * and allocates another at the next read, reusing only 16 freed ones per thread: with
     * more connections than that, every request took malloc's slow path for a block of
     * H2O_SOCKET_INITIAL_INPUT_BUFFER_SIZE x 2 (perf: malloc and free ~8% of the server's
     * CPU at 64 connections). Reuse up to NET_BUFFERS_REUSED of them (this thread's). */
    if (!NET_ASAN) h2o_socket_buffer_prototype.allocator.max = NET_BUFFERS_REUSED;
    h2o_hostconf_t *host =
        h2o_config_register_host(&n->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof *h);
    h->on_req = on_req;
    h2o_context_init(&n->ctx, h2o_evloop_create(), &n->config);
    n->accept_ctx.ctx = &n->ctx;
    n->accept_ctx.hosts = n->config.hosts;
    n->listener = h2o_evloop_socket_create(n->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    n->listener->data = n;
    if (wake_fd[0] < 0 && pipe2(wake_fd, O_NONBLOCK | O_CLOEXEC) == 0) {
        n->wake = h2o_evloop_socket_create(n->ctx.loop, wake_fd[0], 0);
        h2o_socket_read_start(n->wake, on_wake);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return n;
}

void *net_loop(struct net *n) { return n->ctx.loop; }

void net_run(struct net *n)
{
    /* Connections are accepted from here on only: startup work that runs the loop (the
     * demo hunt waiting for room in the log) must not serve requests in between. Until
     * then clients wait in the listen backlog. */
    h2o_socket_read_start(n->listener, on_accept);
    /* h2o_evloop_run returns -1 on EINTR: that is how a signal wakes us. */
    while (!stop_requested) h2o_evloop_run(n->ctx.loop, INT32_MAX);
    if (n->listener) {
        /* Closing a listener resets the connections the kernel completed and queued in its
         * backlog, each perhaps with a write its client could not tell was applied: they
         * are accepted and served first. A client that comes after is refused. */
        if (!n->accept_paused) on_accept(n->listener, NULL);
        h2o_socket_read_stop(n->listener);
        h2o_socket_close(n->listener);
        n->listener = NULL;
    }
    h2o_context_request_shutdown(&n->ctx); /* every answer from now on closes its connection */
}

size_t net_unanswered(const struct net *n)
{
    size_t k = 0;
    for (h2o_linklist_t *l = n->conns_list.next; l != &n->conns_list; l = l->next)
        if (!H2O_STRUCT_FROM_MEMBER(struct conn, link, l)->sock->bytes_written) k++;
    return k;
}

void net_run_once(struct net *n, int max_wait_ms) { h2o_evloop_run(n->ctx.loop, max_wait_ms); }

size_t net_connections(const struct net *n) { return n->conns; }

void net_render_metrics(const struct net *n, struct metrics_buf *b)
{
    metrics_printf(b,
                   "# TYPE veltrix_connections gauge\nveltrix_connections %zu\n"
                   "# TYPE veltrix_connections_accepted_total counter\n"
                   "veltrix_connections_accepted_total %llu\n"
                   "# TYPE veltrix_connections_refused_total counter\n"
                   "veltrix_connections_refused_total %llu\n"
                   "# TYPE veltrix_connections_refused_per_ip_total counter\n"
                   "veltrix_connections_refused_per_ip_total %llu\n"
                   "# TYPE veltrix_connection_addresses gauge\n"
                   "veltrix_connection_addresses %zu\n"
                   "# TYPE veltrix_pending_body_bytes gauge\nveltrix_pending_body_bytes %zu\n",
                   n->conns, (unsigned long long)n->accepted, (unsigned long long)n->refused,
                   (unsigned long long)n->refused_ip, n->per_ip.count, n->bodies_pending);
}

void net_destroy(struct net *n)
{
    if (!n) return;
    if (n->listener) h2o_socket_close(n->listener);
    if (n->wake) { /* the handler stays: a late signal then only sets stop_requested */
        h2o_socket_close(n->wake);
        int w = wake_fd[1];
        wake_fd[0] = wake_fd[1] = -1;
        close(w);
    }
    hmap_deinit(&n->per_ip);
    if (n->spare_fd >= 0) close(n->spare_fd);
    if (the_net == n) {
        the_net = NULL;
        http_guard_init(NULL); /* it pointed into n->config */
    }
    free(n);
}

void net_queue_destroy(void *queue)
{
    h2o_multithread_destroy_queue(queue);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2 && !H2O_USE_LIBUV
    free(queue);
#endif
}
