/* metrics.c — see metrics.h. Latency buckets are seconds; count buckets powers of two. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const double LAT_BOUNDS[METRICS_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.5, 1, 10};
static const double CNT_BOUNDS[METRICS_BUCKETS] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void observe(struct metrics_hist *h, const double *bounds, double v, uint64_t sum)
{
    int i = 0;
    while (i < METRICS_BUCKETS && v > bounds[i]) i++;
    __atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, sum, __ATOMIC_RELAXED);
}

void metrics_observe_ns(struct metrics_hist *h, uint64_t ns)
{
    observe(h, LAT_BOUNDS, (double)ns / 1e9, ns);
}

void metrics_observe_count(struct metrics_hist *h, uint64_t n)
{
    observe(h, CNT_BOUNDS, (double)n, n);
}

void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->len <= (size_t)n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
}

void metrics_render_hist(struct metrics_buf *b, const char *name, const char *labels,
                         const struct metrics_hist *h, int counts)
{
    const double *bounds = counts ? CNT_BOUNDS : LAT_BOUNDS;
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i <= METRICS_BUCKETS; i++) {
        cum += metrics_get(&h->bucket[i]);
        if (i < METRICS_BUCKETS)
            metrics_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
                           (unsigned long long)cum);
        else
            metrics_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                           (unsigned long long)cum);
    }
    uint64_t sum = metrics_get(&h->sum_ns);
    metrics_printf(b, "%s_sum{%s} %.9g\n", name, labels, counts ? (double)sum : sum / 1e9);
    metrics_printf(b, "%s_count{%s} %llu\n", name, labels,
                   (unsigned long long)metrics_get(&h->count));
}
