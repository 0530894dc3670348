/* uuid.c — see uuid.h. */
#include "uuid.h"

#include <string.h>

void uuid7_next(struct uuid7_gen *g, int64_t now_ms, uint64_t rnd, uint8_t out[16])
{
    if (now_ms > g->last_ms) {
        g->last_ms = now_ms;
        g->counter = (uint16_t)(rnd & 0x7ff); /* top bit clear: room to count up */
    } else if (++g->counter > 0xfff) {
        g->last_ms++;
        g->counter = (uint16_t)(rnd & 0x7ff);
    }
    uint64_t ms = (uint64_t)g->last_ms;
    for (int i = 0; i < 6; i++) out[i] = (uint8_t)(ms >> (40 - 8 * i));
    out[6] = (uint8_t)(0x70 | (g->counter >> 8));
    out[7] = (uint8_t)g->counter;
    uint64_t r = rnd >> 11 | (rnd << 53); /* rotate: use bits not spent on the counter */
    for (int i = 8; i < 16; i++) out[i] = (uint8_t)(r >> (8 * (i - 8)));
    out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
}

void uuid_format(const uint8_t id[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[id[i] >> 4];
        *p++ = hex[id[i] & 15];
    }
    *p = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int uuid_parse(const char *s, uint8_t out[16])
{
    if (strlen(s) != 36) return -1;
    for (int i = 0, j = 0; i < 16; i++) {
        if (j == 8 || j == 13 || j == 18 || j == 23) {
            if (s[j++] != '-') return -1;
        }
        int hi = hexval(s[j]), lo = hexval(s[j + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
        j += 2;
    }
    return 0;
}
