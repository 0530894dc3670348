/* jsonw.h — a small JSON writer for hot responses: appends literal text, integers and
 * escaped strings to a growable buffer without going through printf or a jansson tree.
 *
 * Usage: struct jsonw w = {0}; jsonw_lit(&w, "{\"total\":"); jsonw_u64(&w, n); ...
 * then w.p / w.len (w.p is malloc'd, NUL-terminated; the caller frees it). A failed
 * allocation sets w.oom and drops later appends: check it once at the end. */
#ifndef VELTRIX_JSONW_H
#define VELTRIX_JSONW_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jsonw {
    char *p;
    size_t len, cap;
    int oom;
};

/* Makes room for n more bytes; 0 or -1 (and w->oom set). */
int jsonw_reserve(struct jsonw *w, size_t n);
void jsonw_raw(struct jsonw *w, const char *s, size_t n);
static inline void jsonw_lit(struct jsonw *w, const char *s) { jsonw_raw(w, s, strlen(s)); }
void jsonw_u64(struct jsonw *w, uint64_t v);
void jsonw_i64(struct jsonw *w, int64_t v);
/* s (valid UTF-8, NUL-terminated) as a quoted JSON string: '"', '\\' and control
 * characters escaped. */
void jsonw_str(struct jsonw *w, const char *s);
/* A 16-byte id as a quoted UUID string. */
void jsonw_uuid(struct jsonw *w, const uint8_t id[16]);

#endif
