/* net.c — see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

struct net {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    size_t conns, conns_max;
    uint64_t accepted, refused;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) { stop_requested = 1; }

static int on_req(h2o_handler_t *self, h2o_req_t *req) { return http_dispatch(req); }

static void on_conn_close(void *data)
{
    struct net *n = data;
    n->conns--;
}

/* Serves sock, or closes it when at the connection cap. 0 or -1. */
static int serve(struct net *n, h2o_socket_t *sock)
{
    if (n->conns >= n->conns_max) {
        n->refused++;
        h2o_socket_close(sock);
        return -1;
    }
    n->conns++;
    n->accepted++;
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = n;
    h2o_accept(&n->accept_ctx, sock);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct net *n = listener->data;
    h2o_socket_t *sock;
    if (err) return;
    while ((sock = h2o_evloop_socket_accept(listener)) != NULL) serve(n, sock);
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
    h2o_config_init(&n->config);
    n->config.server_name = h2o_iovec_init(H2O_STRLIT("veltrix"));
    n->config.http1.upgrade_to_http2 = 0;
    n->config.http1.req_timeout = cfg->req_timeout_ms;
    n->config.max_request_entity_size = cfg->body_max;
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
    h2o_socket_read_start(n->listener, on_accept);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return n;
}

void *net_loop(struct net *n) { return n->ctx.loop; }

void net_run(struct net *n)
{
    /* h2o_evloop_run returns -1 on EINTR: that is how a signal wakes us. */
    while (!stop_requested) h2o_evloop_run(n->ctx.loop, INT32_MAX);
    if (n->listener) {
        h2o_socket_read_stop(n->listener);
        h2o_socket_close(n->listener);
        n->listener = NULL;
    }
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
                   "veltrix_connections_refused_total %llu\n",
                   n->conns, (unsigned long long)n->accepted, (unsigned long long)n->refused);
}

void net_destroy(struct net *n)
{
    if (!n) return;
    if (n->listener) h2o_socket_close(n->listener);
    free(n);
}
