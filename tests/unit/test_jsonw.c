/* Unit tests: the JSON writer (escaping checked against jansson's reading of the output). */
#include <jansson.h>
#include <stdlib.h>

#include "harness.h"
#include "jsonw.h"

TEST(integers)
{
    struct jsonw w = {0};
    jsonw_u64(&w, 0);
    jsonw_lit(&w, ",");
    jsonw_u64(&w, UINT64_MAX);
    jsonw_lit(&w, ",");
    jsonw_i64(&w, INT64_MIN);
    jsonw_lit(&w, ",");
    jsonw_i64(&w, -7);
    jsonw_lit(&w, ",");
    jsonw_i64(&w, 1000000);
    CHECK(!w.oom);
    CHECK_EQ_STR(w.p, "0,18446744073709551615,-9223372036854775808,-7,1000000");
    CHECK_EQ_INT(w.len, strlen(w.p));
    free(w.p);
}

TEST(strings_round_trip_through_jansson)
{
    const char *cases[] = {"", "Ana", "quote \" back \\ slash", "tab\tnl\ncr\r\x01\x1f\x7f",
                           "caf\xc3\xa9 \xe2\x98\xba \xf0\x9f\x98\x80", "</script>"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jsonw w = {0};
        jsonw_lit(&w, "[");
        jsonw_str(&w, cases[i]);
        jsonw_lit(&w, "]");
        json_error_t e;
        json_t *j = json_loadb(w.p, w.len, 0, &e);
        CHECK(j != NULL);
        CHECK_EQ_STR(json_string_value(json_array_get(j, 0)), cases[i]);
        json_decref(j);
        free(w.p);
    }
}

TEST(uuid_and_growth)
{
    struct jsonw w = {0};
    uint8_t id[16];
    for (int i = 0; i < 16; i++) id[i] = (uint8_t)(i * 17);
    for (int i = 0; i < 1000; i++) jsonw_uuid(&w, id);
    CHECK(!w.oom);
    CHECK_EQ_INT(w.len, 38000);
    CHECK(memcmp(w.p, "\"00112233-4455-6677-8899-aabbccddeeff\"", 38) == 0);
    CHECK_EQ_INT(w.p[w.len], '\0');
    free(w.p);
}

int main(void)
{
    RUN(integers);
    RUN(strings_round_trip_through_jansson);
    RUN(uuid_and_growth);
    return HARNESS_DONE();
}
