/* metrics.h — counters and latency histograms, rendered in Prometheus text format.
 *
 * Counters and histograms are plain structs owned by the subsystem that updates them;
 * updates are relaxed atomics, so the log writer thread can update while the event loop
 * renders /metrics. Histogram buckets are fixed (seconds, 50 µs .. 10 s). */
#ifndef VELTRIX_METRICS_H
#define VELTRIX_METRICS_H
#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS 14

struct metrics_hist {
    uint64_t bucket[METRICS_BUCKETS + 1]; /* last one is +Inf */
    uint64_t count;
    uint64_t sum_ns;
};

struct metrics_buf {
    char *p;
    size_t len, cap;
};

static inline void metrics_inc(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}
static inline uint64_t metrics_get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}
void metrics_observe_ns(struct metrics_hist *h, uint64_t ns);
/* Observes a plain value (a batch size) into buckets 1, 2, 4, ... 8192. */
void metrics_observe_count(struct metrics_hist *h, uint64_t n);

/* Appends printf-formatted text; on allocation failure the text is dropped. */
void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends a histogram named name with extra labels (may be "" or `route="x"`). counts=1
 * uses the count buckets of metrics_observe_count. */
void metrics_render_hist(struct metrics_buf *b, const char *name, const char *labels,
                         const struct metrics_hist *h, int counts);
uint64_t metrics_now_ns(void);

#endif
