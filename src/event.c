/* event.c — see event.h: the table's lookups and the codec of event payloads. */
#include "event.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int event_type_known(unsigned code)
{
#define EVENT_KNOWN(name, code_, live, member) || code == code_
    return 0 EVENT_TYPES(EVENT_KNOWN);
#undef EVENT_KNOWN
}

const char *event_type_live(enum event_type t)
{
    switch (t) {
#define EVENT_LIVE(name, code, live, member) \
    case EVENT_##name:                         \
        return live;
        EVENT_TYPES(EVENT_LIVE)
#undef EVENT_LIVE
    }
    return "event";
}

static size_t put(uint8_t *buf, size_t cap, size_t at, const void *p, size_t n)
{
    if (at + n <= cap) memcpy(buf + at, p, n);
    return at + n;
}

size_t event_encode(const struct event *ev, uint8_t *buf, size_t cap)
{
    char num[24];
    if (!event_type_known(ev->type)) return 0;
    switch ((enum event_type)ev->type) {
    case EVENT_SCAN:
        return put(buf, cap, 0, ev->u.scan.code, strnlen(ev->u.scan.code, sizeof ev->u.scan.code));
    case EVENT_COLLECT:
        return put(buf, cap, 0, ev->u.collect.item,
                   strnlen(ev->u.collect.item, sizeof ev->u.collect.item));
    case EVENT_OPEN: {
        const struct event_open *o = &ev->u.open;
        size_t at = put(buf, cap, 0, o->zone, strnlen(o->zone, sizeof o->zone));
        at = put(buf, cap, at, "", 1);
        return put(buf, cap, at, o->chest, strnlen(o->chest, sizeof o->chest));
    }
    case EVENT_DEFINE: {
        const struct event_define *d = &ev->u.define;
        size_t at = 0;
        if (d->draw_rule) {
            uint8_t head[2] = {0, d->draw_rule};
            at = put(buf, cap, put(buf, cap, 0, head, 2), d->seed, EVENT_SEED_BYTES);
        }
        return put(buf, cap, at, d->json, d->json ? d->json_len : 0);
    }
    case EVENT_MAP:
        snprintf(num, sizeof num, "%" PRId64, ev->u.map.version);
        return put(buf, cap, 0, num, strlen(num));
    }
    return 0;
}

/* Copies a len-byte id of 1..max chars of [a-z0-9_-] into out; -1 if it is not one. */
static int decode_id(const uint8_t *s, size_t len, size_t max, char *out)
{
    if (!vx_is_id((const char *)s, len, max)) return -1;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static int decode_version(const uint8_t *s, size_t len, int64_t *v)
{
    if (len < 1 || len > 18 || (s[0] == '0' && len > 1)) return -1;
    *v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* A DEFINE payload: the bare JSON (no seed), or 0x00, rule 0x01, the seed, the JSON. */
static int decode_define(struct event_define *d, const uint8_t *data, size_t len)
{
    const size_t head = 2 + EVENT_SEED_BYTES;
    if (len && data[0] == 0) {
        if (len <= head || data[1] != EVENT_RULE_HMAC) return EVENT_EBAD;
        d->draw_rule = EVENT_RULE_HMAC;
        memcpy(d->seed, data + 2, EVENT_SEED_BYTES);
        data += head;
        len -= head;
    }
    if (!len) return EVENT_EBAD;
    d->json = (const char *)data;
    d->json_len = len;
    return 0;
}

int event_read(struct event *ev, uint64_t seq, int64_t time_ms, uint8_t type,
                      const uint8_t player[16], const uint8_t *data, size_t len)
{
    memset(ev, 0, sizeof *ev);
    ev->seq = seq;
    ev->time_ms = time_ms;
    ev->type = type;
    memcpy(ev->player, player, 16);
    return event_decode(ev, type, data, len);
}

int event_decode(struct event *ev, uint8_t type, const uint8_t *data, size_t len)
{
    const uint8_t *nul;
    memset(&ev->u, 0, sizeof ev->u);
    ev->type = type;
    if ((!data && len) || !event_type_known(type)) return EVENT_EBAD;
    switch ((enum event_type)type) {
    case EVENT_SCAN:
        return decode_id(data, len, VX_ID_MAX, ev->u.scan.code) ? EVENT_EBAD : 0;
    case EVENT_COLLECT:
        return decode_id(data, len, VX_ID_MAX, ev->u.collect.item) ? EVENT_EBAD : 0;
    case EVENT_OPEN:
        nul = len ? memchr(data, '\0', len) : NULL;
        if (!nul || decode_id(data, (size_t)(nul - data), VX_ID_MAX, ev->u.open.zone) ||
            decode_id(nul + 1, len - (size_t)(nul - data) - 1, VX_CHEST_ID_MAX, ev->u.open.chest))
            return EVENT_EBAD;
        return 0;
    case EVENT_DEFINE:
        return decode_define(&ev->u.define, data, len);
    case EVENT_MAP:
        return decode_version(data, len, &ev->u.map.version) ? EVENT_EBAD : 0;
    }
    return EVENT_EBAD;
}
