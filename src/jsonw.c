/* jsonw.c — see jsonw.h. The buffer doubles as it grows and is always NUL-terminated. */
#include "jsonw.h"

#include <stdlib.h>

#include "uuid.h"

int jsonw_reserve(struct jsonw *w, size_t n)
{
    if (w->oom) return -1;
    if (w->len + n + 1 <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n + 1) cap *= 2;
    char *p = realloc(w->p, cap);
    if (!p) {
        w->oom = 1;
        return -1;
    }
    w->p = p;
    w->cap = cap;
    return 0;
}

void jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
    if (jsonw_reserve(w, n)) return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

void jsonw_u64(struct jsonw *w, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (jsonw_reserve(w, n)) return;
    for (size_t i = 0; i < n; i++) w->p[w->len + i] = tmp[n - 1 - i];
    w->len += n;
    w->p[w->len] = '\0';
}

void jsonw_i64(struct jsonw *w, int64_t v)
{
    if (v < 0) {
        jsonw_raw(w, "-", 1);
        jsonw_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        jsonw_u64(w, (uint64_t)v);
    }
}

void jsonw_str(struct jsonw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    jsonw_raw(w, "\"", 1);
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jsonw_raw(w, run, (size_t)(s - run));
        if (!c) break;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jsonw_raw(w, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jsonw_raw(w, e, 6);
        }
        run = s + 1;
    }
    jsonw_raw(w, "\"", 1);
}

void jsonw_uuid(struct jsonw *w, const uint8_t id[16])
{
    if (jsonw_reserve(w, 38)) return;
    w->p[w->len] = '"';
    uuid_format(id, w->p + w->len + 1);
    w->p[w->len + 37] = '"';
    w->len += 38;
    w->p[w->len] = '\0';
}
