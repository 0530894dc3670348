/* http_int.h — inside the HTTP layer: what http.c and http_guard.c share, and net.c's
 * hooks into them. The rest of Veltrix includes http.h only. */
#ifndef VELTRIX_HTTP_INT_H
#define VELTRIX_HTTP_INT_H
#include <stddef.h>
#include <sys/types.h>

#include "http.h"

/* The route method + path (a query string is ignored) would be dispatched to, or NULL. */
const struct http_route *http_route_for(const char *method, size_t method_len, const char *path,
                                        size_t path_len);

/* A head the guard refused: the answer http_dispatch() sends before closing. */
struct http_refusal {
    int status;
    const char *code, *message;
};
/* The refusal whose marker method libh2o handed over, or NULL for a real request. */
const struct http_refusal *http_guard_refusal(const char *method);
/* h2o_entity_max: libh2o's global body limit, which the guard sets before each check
 * libh2o makes against it. Called by net_create(). */
void http_guard_init(size_t *h2o_entity_max);
void http_guard_render_metrics(struct metrics_buf *b);

/* picohttpparser's interface as libh2o 2.2.5 exports it (the header is not installed):
 * http_guard.c defines these two over libh2o's own (and the unit tests call them). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder;
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

typedef int (*parse_fn)(const char *, size_t, const char **, size_t *, const char **, size_t *,
                        int *, struct phr_header *, size_t *, size_t);

#endif
