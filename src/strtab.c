/* strtab.c — string maps and interning (see strtab.h).
 *
 * strmap is linear probing over a power-of-two slot array kept at most 3/4 full; each
 * slot caches 32 bits of the key's hash so most probes never touch the key text. Keys
 * are never deleted (definitions are rebuilt, not edited), so no tombstones.
 * strtab copies each new string into the current 64 KiB chunk (a fresh chunk when it
 * does not fit) and never moves or frees text before strtab_destroy: an id's text
 * pointer is valid for the table's whole life. Invariant: strs[id] is the text of id,
 * and map maps that text back to id. */
#include "strtab.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES 65536

static uint64_t mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t strtab_hash(const void *p, size_t len)
{
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len, w;
    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&w, s, 8);
        h = mix(h ^ w, 0xa0761d6478bd642full);
    }
    w = 0;
    memcpy(&w, s, len);
    h = mix(h ^ w, 0xe7037ed1a0b428dbull);
    return mix(h, 0x8ebc6af09c88c6e3ull);
}

void strmap_init(struct strmap *m)
{
    memset(m, 0, sizeof *m);
}

void strmap_deinit(struct strmap *m)
{
    free(m->slots);
    strmap_init(m);
}

static int key_eq(const char *key, const char *s, size_t len)
{
    return strncmp(key, s, len) == 0 && key[len] == '\0';
}

/* Slot index holding s, or the empty slot where it would go. */
static uint32_t probe(const struct strmap *m, const char *s, size_t len, uint32_t hash)
{
    uint32_t mask = m->cap - 1, i = hash & mask;
    while (m->slots[i].key && (m->slots[i].hash != hash || !key_eq(m->slots[i].key, s, len)))
        i = (i + 1) & mask;
    return i;
}

static int rehash(struct strmap *m, uint32_t cap)
{
    struct strmap_slot *old = m->slots;
    uint32_t old_cap = m->cap;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) {
        m->slots = old;
        return -ENOMEM;
    }
    m->cap = cap;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (!old[i].key) continue;
        uint32_t j = old[i].hash & (cap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
    return 0;
}

int strmap_reserve(struct strmap *m, uint32_t extra)
{
    uint64_t need = (uint64_t)m->n + extra, cap = m->cap ? m->cap : 8;
    while (need * 4 > cap * 3)
        cap *= 2;
    if (cap > (1u << 31)) return -ENOMEM;
    return cap == m->cap ? 0 : rehash(m, (uint32_t)cap);
}

int strmap_put(struct strmap *m, const char *key, uint32_t val, uint32_t *old)
{
    int rc = strmap_reserve(m, 1);
    if (rc) return rc;
    size_t len = strlen(key);
    uint32_t hash = (uint32_t)strtab_hash(key, len);
    uint32_t i = probe(m, key, len, hash);
    if (m->slots[i].key) {
        if (old) *old = m->slots[i].val;
        return 1;
    }
    m->slots[i] = (struct strmap_slot){key, hash, val};
    m->n++;
    return 0;
}

uint32_t strmap_get(const struct strmap *m, const char *s, size_t len)
{
    if (!m->cap) return STRMAP_NONE;
    uint32_t i = probe(m, s, len, (uint32_t)strtab_hash(s, len));
    return m->slots[i].key ? m->slots[i].val : STRMAP_NONE;
}

size_t strmap_memory_bytes(const struct strmap *m)
{
    return (size_t)m->cap * sizeof *m->slots;
}

struct strtab {
    struct strmap map;
    const char **strs; /* id -> text */
    uint32_t n, cap;
    char **chunks; /* every text chunk, for destroy */
    size_t n_chunks, cap_chunks;
    char *cur; /* free space in the newest chunk */
    size_t cur_left;
    size_t text_bytes; /* bytes of all chunks */
};

struct strtab *strtab_create(void)
{
    struct strtab *t = calloc(1, sizeof *t);
    if (t) strmap_init(&t->map);
    return t;
}

void strtab_destroy(struct strtab *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_chunks; i++)
        free(t->chunks[i]);
    free(t->chunks);
    free(t->strs);
    strmap_deinit(&t->map);
    free(t);
}

/* Space for len + 1 bytes of text that will never move. */
static char *text_alloc(struct strtab *t, size_t len)
{
    if (t->cur_left < len + 1) {
        size_t sz = len + 1 > CHUNK_BYTES ? len + 1 : CHUNK_BYTES;
        if (t->n_chunks == t->cap_chunks) {
            size_t cap = t->cap_chunks ? t->cap_chunks * 2 : 8;
            char **c = realloc(t->chunks, cap * sizeof *c);
            if (!c) return NULL;
            t->chunks = c;
            t->cap_chunks = cap;
        }
        char *chunk = malloc(sz);
        if (!chunk) return NULL;
        t->chunks[t->n_chunks++] = chunk;
        t->text_bytes += sz;
        t->cur = chunk;
        t->cur_left = sz;
    }
    char *p = t->cur;
    t->cur += len + 1;
    t->cur_left -= len + 1;
    return p;
}

static int strs_grow(struct strtab *t)
{
    if (t->n < t->cap) return 0;
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    const char **s = realloc(t->strs, (size_t)cap * sizeof *s);
    if (!s) return -ENOMEM;
    t->strs = s;
    t->cap = cap;
    return 0;
}

int strtab_intern(struct strtab *t, const char *s, size_t len, uint32_t *id)
{
    assert(memchr(s, '\0', len) == NULL);
    *id = strmap_get(&t->map, s, len);
    if (*id != STRMAP_NONE) return 0;
    if (t->n >= STRMAP_NONE - 1 || strs_grow(t) || strmap_reserve(&t->map, 1)) return -ENOMEM;
    char *p = text_alloc(t, len);
    if (!p) return -ENOMEM;
    memcpy(p, s, len);
    p[len] = '\0';
    int rc = strmap_put(&t->map, p, t->n, NULL);
    assert(rc == 0); /* room was reserved and the key is new */
    (void)rc;
    t->strs[t->n] = p;
    *id = t->n++;
    return 0;
}

uint32_t strtab_find(const struct strtab *t, const char *s, size_t len)
{
    return strmap_get(&t->map, s, len);
}

const char *strtab_str(const struct strtab *t, uint32_t id)
{
    assert(id < t->n);
    return t->strs[id];
}

uint32_t strtab_count(const struct strtab *t)
{
    return t->n;
}

size_t strtab_memory_bytes(const struct strtab *t)
{
    return sizeof *t + strmap_memory_bytes(&t->map) + (size_t)t->cap * sizeof *t->strs +
           t->cap_chunks * sizeof *t->chunks + t->text_bytes;
}
