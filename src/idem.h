/* idem.h — idempotency keys: the remembered answers of state-changing requests.
 *
 * An entry is (scope, key) -> (request fingerprint, status, body). scope names the
 * caller and the endpoint ("<player> POST /v1/hunts/h/scans"). An entry is pending from
 * the moment its request is accepted until its write is durable; a duplicate arriving
 * meanwhile waits on it. Done entries are the ones stored with their event in the log,
 * so they survive restarts (loaded back at start). Memory is bounded: entries older than
 * the retention are dropped first, and past entries_max the oldest go; a lookup that
 * misses after such an early eviction asks the store (idem_set_fallback). */
#ifndef VELTRIX_IDEM_H
#define VELTRIX_IDEM_H
#include <stddef.h>
#include <stdint.h>

struct http_req;

struct idem_waiter {
    struct idem_waiter *next;
    struct http_req *req; /* held */
};

struct idem_entry {
    struct idem_entry *older, *newer; /* FIFO by creation */
    char *hkey;                       /* scope "\n" key */
    size_t hkey_len;
    uint8_t req_hash[32];
    int pending;
    int status;
    char *body;
    size_t body_len;
    int64_t created_ms;
    struct idem_waiter *waiters;
};

struct idem_stats {
    uint64_t replayed, mismatched, evicted, entries, fallback_lookups;
};

struct idem;
/* Returns 1 and fills *status/body (malloc'd, caller frees) when found in the store. */
typedef int (*idem_fallback_fn)(void *ctx, const char *scope, const char *key,
                                uint8_t req_hash[32], int *status, char **body, size_t *len,
                                int64_t *created_ms);

struct idem *idem_create(size_t entries_max, int64_t retention_ms);
void idem_destroy(struct idem *t);
void idem_set_fallback(struct idem *t, idem_fallback_fn fn, void *ctx);
/* The entry for (scope, key), or NULL. now_ms drives expiry. When the lookup had to ask
 * the store (an entry evicted early) and the store failed, NULL with *failed set to 1:
 * the caller must not take that for "no such key" (the request may be a retry of one
 * already applied) and refuses the request instead. failed may be NULL. */
struct idem_entry *idem_find(struct idem *t, const char *scope, const char *key, int64_t now_ms,
                             int *failed);
/* A new pending entry. NULL when out of memory. */
struct idem_entry *idem_begin(struct idem *t, const char *scope, const char *key,
                              const uint8_t req_hash[32], int64_t now_ms);
/* Fills a pending entry with its answer (body copied); it is done from now on. */
int idem_finish(struct idem *t, struct idem_entry *e, int status, const char *body, size_t len);
/* Drops a pending entry whose request failed before writing anything. */
void idem_abort(struct idem *t, struct idem_entry *e);
/* Loads a done entry (from the store at start). */
int idem_load(struct idem *t, const char *scope, const char *key, const uint8_t req_hash[32],
              int status, const char *body, size_t len, int64_t created_ms);
/* Counts a duplicate request: a replay (same body) or a reused key (another body). */
void idem_count(struct idem *t, int replayed);
const struct idem_stats *idem_stats(const struct idem *t);

#endif
