/* idem_memory.c — memory per idempotency record held in memory (README "Limits"): the
 * heap growth (mallinfo2) of 100,000 records, and the hash map's share, for a scan answer
 * with a 36-byte key and for the largest common case (a player creation's answer with its
 * tokens, a 255-byte key). Run: build/bench_idem_memory */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "idem.h"

static double per_key(size_t key_len, size_t body_len, const char *scope)
{
    enum { N = 100000 };
    static char key[300], body[1024];
    uint8_t hash[32] = {0};
    memset(body, 'b', body_len);
    struct mallinfo2 before = mallinfo2();
    struct idem *t = idem_create(N, 24 * 3600 * 1000LL);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "%0*d", (int)key_len, i);
        if (idem_load(t, scope, key, hash, 200, body, body_len, 1000 + i)) return -1;
    }
    struct mallinfo2 after = mallinfo2();
    idem_destroy(t);
    return (double)(after.uordblks - before.uordblks) / N;
}

int main(void)
{
    printf("idempotency record in memory: scan answer (36-byte key, 80-byte answer): %.0f B\n",
           per_key(36, 80, "0193a5c4-0000-7000-8000-000000000000 POST /v1/hunts/demo/scans"));
    printf("idempotency record in memory: player creation (255-byte key, 330-byte answer): %.0f B\n",
           per_key(255, 330, "anon:127.0.0.1 POST /v1/players"));
    return 0;
}
