/* store_int.h — for store backends only (store.c and store_<name>.c): the table of
 * operations a backend fills in, chosen by the URL's scheme in store.c (the
 * sqlite3_io_methods pattern), and the header every backend's handle starts with.
 *
 * Adding a backend: one store_<name>.c that defines a `const struct store_backend`, one
 * row in store.c's `backends[]`, and the store test suite (tests/unit/test_store.c) runs
 * against it as soon as its test_url() gives a URL. */
#ifndef VELTRIX_STORE_INT_H
#define VELTRIX_STORE_INT_H
#include "store.h"

/* Every backend's handle begins with this; store.c dispatches through be. */
struct store {
    const struct store_backend *be;
};

struct store_backend {
    const char *scheme; /* URLs "<scheme>:..." (e.g. "sqlite" for "sqlite:PATH") */
    int (*open)(const char *url, enum store_fsync fsync, struct store **out, char *err,
                size_t errcap);
    /* Holds the store for this process (the embedded store: an exclusive lock file, so
     * that a second server or an import cannot write it behind this one's back); NULL
     * when the backend needs none. 0, or -1 with a message in err. */
    int (*lock)(const char *url, char *err, size_t errcap);
    /* The URL of a fresh store for tests inside the empty directory dir (dir NULL: one
     * kept in memory, for fuzzing): 0, or -1 when this backend cannot be tested here
     * (then its tests are skipped and say so). */
    int (*test_url)(const char *dir, char *out, size_t cap);
    void (*close)(struct store *s);
    int (*begin)(struct store *s);
    int (*commit)(struct store *s);
    void (*rollback)(struct store *s);
    int (*put_event)(struct store *s, const struct store_event *ev);
    int (*put_player)(struct store *s, const struct store_player *p);
    int (*put_refresh)(struct store *s, const struct store_refresh *r);
    int (*prune_refresh)(struct store *s, int64_t now_ms);
    int (*put_idem)(struct store *s, const struct store_idem *i);
    int (*prune_idem)(struct store *s, int64_t cutoff_ms);
    int (*each_hunt)(struct store *s, store_hunt_cb cb, void *ctx);
    int (*each_event)(struct store *s, const char *hunt, uint64_t from_seq, store_event_cb cb,
                      void *ctx);
    int (*each_player)(struct store *s, store_player_cb cb, void *ctx);
    int (*each_refresh)(struct store *s, int64_t now_ms, store_refresh_cb cb, void *ctx);
    int (*each_idem)(struct store *s, int64_t since_ms, store_idem_cb cb, void *ctx);
    int (*each_idem_of_hunt)(struct store *s, const char *hunt, int64_t since_ms,
                             store_idem_cb cb, void *ctx); /* NULL: STORE_ENOTSUP */
    int (*get_idem)(struct store *s, const char *scope, const char *key, store_idem_cb cb,
                    void *ctx);
    int (*put_snapshot)(struct store *s, const char *hunt, uint64_t seq, const uint8_t *data,
                        size_t len);
    int (*get_snapshot)(struct store *s, const char *hunt, store_snapshot_cb cb, void *ctx);
    int (*delete_snapshot)(struct store *s, const char *hunt);
    int (*put_blob)(struct store *s, const uint8_t hash[32], const uint8_t *data, size_t len);
    int (*get_blob)(struct store *s, const uint8_t hash[32], store_snapshot_cb cb, void *ctx);
    int (*put_tile)(struct store *s, const struct store_tile *t);
    int (*put_map_version)(struct store *s, const struct store_map_version *v);
    int (*each_tile)(struct store *s, store_tile_cb cb, void *ctx);
    int (*each_map_version)(struct store *s, store_map_version_cb cb, void *ctx);
    int (*get_map_version)(struct store *s, const char *hunt, int64_t version,
                           store_map_version_cb cb, void *ctx); /* NULL: STORE_ENOTSUP */
    int (*ping)(struct store *s);
    int (*last_seq)(struct store *s, const char *hunt, uint64_t *seq);
    int (*heads)(struct store *s, const char *const *hunts, size_t n, uint64_t *seqs); /* NULL:
                                                                    * last_seq one by one */
    int (*other_sessions)(struct store *s, uint64_t *n); /* NULL: STORE_ENOTSUP */
    /* Several nodes (store.h); NULL: STORE_ENOTSUP. */
    int (*node_beat)(struct store *s, const char *id, const char *advertise, int draining);
    int (*each_node)(struct store *s, store_node_cb cb, void *ctx);
    int (*each_lease)(struct store *s, store_lease_cb cb, void *ctx);
    int (*lease_take)(struct store *s, const char *hunt, const char *node, int64_t lease_ms,
                      uint64_t *epoch);
    int (*lease_renew)(struct store *s, const char *node, int64_t lease_ms, store_lease_cb cb,
                       void *ctx);
    int (*lease_release)(struct store *s, const char *node, const char *hunt);
    int (*refresh_rotate)(struct store *s, const uint8_t player[16], const uint8_t old_id[16],
                          uint64_t gen, int64_t now_ms, const struct store_refresh *nw,
                          uint8_t cur_id[16], uint64_t *cur_gen); /* NULL: STORE_ENOTSUP */
    int (*revoke_player)(struct store *s, const uint8_t player[16], uint64_t *gen);
    int (*cluster_secret)(struct store *s, const uint8_t candidate[32], uint8_t out[32]);
    int (*get_player)(struct store *s, const uint8_t id[16], store_player_cb cb, void *ctx);
    int (*each_snapshot)(struct store *s, store_hunt_snapshot_cb cb, void *ctx);
    int (*each_blob)(struct store *s, store_blob_cb cb, void *ctx);
    /* Leases fence commits (store_event.epoch); NULL: a non-zero epoch is STORE_ENOTSUP. */
    size_t (*fenced_hunts)(struct store *s, const char *const **hunts);
    /* NULL: store.c calls put_event n times. */
    int (*put_events)(struct store *s, const struct store_event *evs, size_t n);
};

extern const struct store_backend store_sqlite_backend, store_fault_backend, store_pg_backend,
    store_postgresql_backend;

#endif
