/* fuzz_feed.c — the body of a push from another node (feed.h, feed_parse).
 *
 * Input: the body as sent. A body that parses must be checked and walked alike: the
 * validating pass (no callbacks) and the walking pass agree, every record lies inside the
 * input (its hunt 1-255 bytes without a NUL, seq >= 1, has_hash 0 or 1, its data within
 * the body), and the records use up the body exactly. */
#include "feed.h"
#include "fuzz_util.h"

struct walk {
    const uint8_t *start, *end;
    size_t bytes;
};

static int on_event(const struct store_event *ev, void *ctx)
{
    struct walk *w = ctx;
    size_t hl = strlen(ev->hunt);
    FUZZ_CHECK(hl >= 1 && hl <= 255);
    FUZZ_CHECK(ev->seq >= 1);
    FUZZ_CHECK(ev->has_hash == 0 || ev->has_hash == 1);
    FUZZ_CHECK(ev->data >= w->start && ev->data + ev->data_len <= w->end);
    w->bytes += 1 + hl + 8 + 8 + 1 + 16 + 1 + 32 + 4 + ev->data_len;
    return 0;
}

static int on_revoked(const uint8_t player[16], uint32_t gen, void *ctx)
{
    struct walk *w = ctx;
    FUZZ_CHECK(player > w->start && player + 16 + 4 <= w->end);
    w->bytes += 1 + 16 + 4;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct walk w = {data, data + size, 0};
    int valid = feed_parse(data, size, NULL, NULL, NULL);
    FUZZ_CHECK(valid == 0 || valid == -1);
    int walked = feed_parse(data, size, on_event, on_revoked, &w);
    FUZZ_CHECK(walked == valid);
    if (valid == 0) FUZZ_CHECK(w.bytes == size);
    return 0;
}
