/* strtab.h — string maps and string interning for the engine.
 *
 * strmap: an open-addressing hash map from a NUL-terminated string (not owned: the
 *   caller keeps it alive and unchanged while it is a key) to a uint32 value.
 * strtab: interning. Each distinct string gets a dense id (0, 1, 2, ...) for life; the
 *   text is copied into stable chunks, so strtab_str() pointers never move.
 * Pure data structures: no I/O, single-threaded. */
#ifndef VELTRIX_STRTAB_H
#define VELTRIX_STRTAB_H
#include <stddef.h>
#include <stdint.h>

#define STRMAP_NONE UINT32_MAX

struct strmap_slot {
    const char *key; /* NULL = empty */
    uint32_t hash;
    uint32_t val;
};

struct strmap {
    struct strmap_slot *slots;
    uint32_t cap; /* power of two, or 0 */
    uint32_t n;
};

/* 64-bit hash of len bytes (wyhash-style mixing); stable across runs. */
uint64_t strtab_hash(const void *p, size_t len);

void strmap_init(struct strmap *m);
void strmap_deinit(struct strmap *m);
/* Makes room for `extra` more keys without further allocation. 0 or -ENOMEM. */
int strmap_reserve(struct strmap *m, uint32_t extra);
/* Inserts key -> val. If key is present, leaves it and stores its value in *old (when
 * old is non-NULL) and returns 1. 0 when inserted, -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, uint32_t val, uint32_t *old);
/* Value of the len-byte string s, or STRMAP_NONE. s need not be NUL-terminated. */
uint32_t strmap_get(const struct strmap *m, const char *s, size_t len);
size_t strmap_memory_bytes(const struct strmap *m);

struct strtab; /* opaque */

/* NULL when out of memory. */
struct strtab *strtab_create(void);
void strtab_destroy(struct strtab *t);
/* The id of s (len bytes, no NUL inside), interning a copy if new. 0 or -ENOMEM. */
int strtab_intern(struct strtab *t, const char *s, size_t len, uint32_t *id);
/* The id of s, or STRMAP_NONE. */
uint32_t strtab_find(const struct strtab *t, const char *s, size_t len);
/* The NUL-terminated text of id (which must exist); stable for the table's life. */
const char *strtab_str(const struct strtab *t, uint32_t id);
uint32_t strtab_count(const struct strtab *t);
size_t strtab_memory_bytes(const struct strtab *t);

#endif
