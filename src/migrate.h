/* migrate.h — `veltrix migrate --from URL --to URL`: copies a stopped node's whole store
 * (typically its SQLite file) into an empty store of another backend (typically
 * PostgreSQL), then proves the copy: every table's row count and content digest, and
 * every hunt recovered from both stores by the server's own recovery (snapshot + log
 * replay) to equal engine digests.
 *
 * Contract: nothing is written to the target before every check has passed (the URLs,
 * not one store twice, the source's lock held, both stores open, the target empty, the
 * source not). A copy that fails half way leaves the target partly written: it must be
 * emptied before the next attempt (the target-empty check refuses it otherwise). */
#ifndef VELTRIX_MIGRATE_H
#define VELTRIX_MIGRATE_H
#include <stdint.h>
#include <stdio.h>

enum migrate_err {
    MIGRATE_OK = 0,
    MIGRATE_EINPUT = -1,    /* refused before writing anything (bad URL, busy source, ...) */
    MIGRATE_EFAIL = -2,     /* a store failed during the copy or its verification */
    MIGRATE_EMISMATCH = -3, /* the target differs from the source */
};

struct migrate_config {
    const char *from, *to; /* store URLs (store.h) */
    FILE *progress;        /* a progress line at most twice a second (NULL: none) */
    FILE *out;             /* the summary (NULL: none) */
};

/* What was copied (and verified, when migrate_run returns MIGRATE_OK). */
struct migrate_stats {
    uint64_t hunts, events, players, refresh, idem, blobs, tiles, map_versions, snapshots;
    double copy_s;   /* from the first event copied to the last row */
    double verify_s; /* what the verification took after that (most of it runs beside) */
};

/* Copies cfg->from into the empty store cfg->to and verifies it. Holds the source's
 * store lock (store_lock) for the rest of the process. 0, or a migrate_err with one line
 * in err (never a password of either URL). */
int migrate_run(const struct migrate_config *cfg, struct migrate_stats *st, char *err,
                size_t errcap);

#endif
