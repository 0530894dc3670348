/* test_cluster.c — placement by rendezvous hashing, the owner's lease clock, and the MAC
 * of forwarded requests (src/cluster.c). */
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "harness.h"

#define HUNTS 3000

static void hunt_name(char *out, int i) { snprintf(out, 32, "hunt-%d", i); }

TEST(t_score_known_answer)
{
    /* SHA-256("veltrix-place-v1" 0x06 "node-a" "demo"), first 8 bytes big-endian. */
    uint8_t msg[64], d[32];
    size_t n = 0;
    memcpy(msg, "veltrix-place-v1", 16), n = 16;
    msg[n++] = 6;
    memcpy(msg + n, "node-a", 6), n += 6;
    memcpy(msg + n, "demo", 4), n += 4;
    SHA256(msg, n, d);
    uint64_t want = 0;
    for (int i = 0; i < 8; i++)
        want = want << 8 | d[i];
    CHECK(cluster_score("node-a", "demo") == want);
    CHECK(cluster_score("node-a", "demo") != cluster_score("node-b", "demo"));
    /* The length byte keeps ("ab", "c...") and ("a", "bc...") apart. */
    CHECK(cluster_score("ab", "cd") != cluster_score("a", "bcd"));
}

TEST(t_place_live_only)
{
    struct cluster_node none[] = {{"a", 0}, {"b", 0}};
    CHECK_EQ_INT(cluster_place("demo", none, 2), -1);
    CHECK_EQ_INT(cluster_place("demo", none, 0), -1);
    struct cluster_node one[] = {{"a", 0}, {"b", 1}, {"c", 0}};
    CHECK_EQ_INT(cluster_place("demo", one, 3), 1);
    /* The same answer whatever the order of the list. */
    struct cluster_node x[] = {{"n1", 1}, {"n2", 1}, {"n3", 1}}, y[] = {{"n3", 1}, {"n1", 1}, {"n2", 1}};
    for (int i = 0; i < 200; i++) {
        char h[32];
        hunt_name(h, i);
        CHECK_EQ_STR(x[cluster_place(h, x, 3)].id, y[cluster_place(h, y, 3)].id);
    }
}

/* Three nodes share the hunts evenly enough; a fourth takes about a quarter, all of
 * them from the others, and nothing else moves; losing a node moves only its hunts. */
TEST(t_place_moves_only_its_share)
{
    struct cluster_node n[] = {{"node-1", 1}, {"node-2", 1}, {"node-3", 1}, {"node-4", 0}};
    static int before[HUNTS];
    int count[4] = {0}, moved = 0, wrong = 0;
    for (int i = 0; i < HUNTS; i++) {
        char h[32];
        hunt_name(h, i);
        before[i] = cluster_place(h, n, 4);
        count[before[i]]++;
    }
    for (int k = 0; k < 3; k++) CHECK(count[k] > HUNTS / 4 && count[k] < HUNTS * 5 / 12);
    CHECK_EQ_INT(count[3], 0);
    n[3].alive = 1;
    for (int i = 0; i < HUNTS; i++) {
        char h[32];
        hunt_name(h, i);
        int now = cluster_place(h, n, 4);
        moved += now != before[i];
        wrong += now != before[i] && now != 3;
    }
    printf("  a 4th node takes %d of %d hunts\n", moved, HUNTS);
    CHECK(moved > HUNTS * 15 / 100 && moved < HUNTS * 35 / 100);
    CHECK_EQ_INT(wrong, 0);
    n[3].alive = 0;
    n[1].alive = 0; /* node-2 dies */
    moved = wrong = 0;
    for (int i = 0; i < HUNTS; i++) {
        char h[32];
        hunt_name(h, i);
        int now = cluster_place(h, n, 4);
        CHECK(now == 0 || now == 2);
        wrong += before[i] != 1 && now != before[i];
    }
    CHECK_EQ_INT(wrong, 0);
}

TEST(t_lease_clock)
{
    struct cluster_lease l = {0};
    CHECK(!cluster_lease_may_write(&l, 1000, 5000, 500)); /* not held */
    cluster_lease_renewed(&l, 7, 1000);
    CHECK(cluster_lease_may_write(&l, 1000, 5000, 500));
    CHECK(cluster_lease_may_write(&l, 5499, 5000, 500));
    CHECK(!cluster_lease_may_write(&l, 5500, 5000, 500)); /* sent + lease - margin */
    cluster_lease_renewed(&l, 7, 3000);
    CHECK(cluster_lease_may_write(&l, 7000, 5000, 500));
    cluster_lease_renewed(&l, 7, 2000); /* a late answer to an older renewal */
    CHECK_EQ_INT(l.renewed_ms, 3000);
    cluster_lease_renewed(&l, 9, 2500); /* a new ownership replaces the old one */
    CHECK_EQ_INT(l.epoch, 9);
    CHECK_EQ_INT(l.renewed_ms, 2500);
    l.epoch = 0; /* lost */
    CHECK(!cluster_lease_may_write(&l, 2500, 5000, 500));
}

static const uint8_t SECRET[32] = "the cluster secret of the tests";

static struct cluster_fwd request(void)
{
    struct cluster_fwd f = {.from = "node-a",
                            .time_ms = 1796115600000,
                            .client_addr = "203.0.113.9",
                            .method = "POST",
                            .path = "/v1/hunts/demo/scans",
                            .authorization = "Bearer vt1.x.y",
                            .idem_key = "k-1"};
    SHA256((const uint8_t *)"{\"code\":\"c\"}", 12, f.body_sha256);
    return f;
}

static int check(const char *hdr, const struct cluster_fwd *f, int64_t now)
{
    struct cluster_fwd_in in;
    return cluster_forward_check(SECRET, hdr, strlen(hdr), f, now, 5000, &in);
}

TEST(t_forward_mac)
{
    struct cluster_fwd f = request(), g;
    char hdr[CLUSTER_FWD_MAX];
    struct cluster_fwd_in in;
    CHECK_EQ_INT(cluster_forward_sign(SECRET, &f, hdr), 0);
    CHECK(strncmp(hdr, "vf1.node-a.1796115600000.", 25) == 0 && strlen(hdr) == 25 + 64);
    /* Known answers (from the EVP_MAC implementation this replaced): nodes of two builds
     * must accept each other's headers during a rolling upgrade. */
    CHECK_EQ_STR(hdr, "vf1.node-a.1796115600000."
                      "174fce364d2f4beb497c1f0cfd37e6ce1a8d06dac7a0b481680b2da1e7675fe8");
    g = f, g.idem_key = "", g.authorization = "", g.time_ms = -5;
    CHECK_EQ_INT(cluster_forward_sign(SECRET, &g, hdr), 0);
    CHECK_EQ_STR(hdr, "vf1.node-a.-5."
                      "a5ffcab10a8576db50cf234f773f381ab0c5a6d85b98d36f9913ac1ef6f6f0d8");
    CHECK_EQ_INT(cluster_forward_sign(SECRET, &f, hdr), 0);
    CHECK_EQ_INT(cluster_forward_check(SECRET, hdr, strlen(hdr), &f, f.time_ms + 100, 5000, &in), 0);
    CHECK_EQ_STR(in.from, "node-a");
    CHECK_EQ_INT(in.time_ms, f.time_ms);
    /* Every covered field matters. */
    g = f, g.client_addr = "198.51.100.1";
    CHECK_EQ_INT(check(hdr, &g, f.time_ms), -1);
    g = f, g.method = "PUT";
    CHECK_EQ_INT(check(hdr, &g, f.time_ms), -1);
    g = f, g.path = "/v1/hunts/other/scans";
    CHECK_EQ_INT(check(hdr, &g, f.time_ms), -1);
    g = f, g.authorization = "Bearer vt1.x.z";
    CHECK_EQ_INT(check(hdr, &g, f.time_ms), -1);
    g = f, g.idem_key = "k-2";
    CHECK_EQ_INT(check(hdr, &g, f.time_ms), -1);
    g = f, g.body_sha256[31] ^= 1;
    CHECK_EQ_INT(check(hdr, &g, f.time_ms), -1);
    /* Field boundaries are part of the MAC: moving a byte between two fields fails. */
    g = f, g.method = "POST/", g.path = "v1/hunts/demo/scans";
    CHECK_EQ_INT(check(hdr, &g, f.time_ms), -1);
    /* Time: within the skew both ways, not beyond. */
    CHECK_EQ_INT(check(hdr, &f, f.time_ms + 5000), 0);
    CHECK_EQ_INT(check(hdr, &f, f.time_ms - 5000), 0);
    CHECK_EQ_INT(check(hdr, &f, f.time_ms + 5001), -1);
    /* Another secret. */
    uint8_t other[32];
    memcpy(other, SECRET, 32);
    other[0] ^= 1;
    CHECK_EQ_INT(cluster_forward_check(other, hdr, strlen(hdr), &f, f.time_ms, 5000, &in), -1);
    /* The header's node and time are covered too. */
    char forged[CLUSTER_FWD_MAX];
    snprintf(forged, sizeof forged, "vf1.node-b%s", hdr + 10);
    CHECK_EQ_INT(check(forged, &f, f.time_ms), -1);
    snprintf(forged, sizeof forged, "vf1.node-a.1796115600001%s", hdr + 24);
    CHECK_EQ_INT(check(forged, &f, f.time_ms), -1);
}

TEST(t_forward_malformed)
{
    struct cluster_fwd f = request();
    char hdr[CLUSTER_FWD_MAX], bad[2 * CLUSTER_FWD_MAX];
    CHECK_EQ_INT(cluster_forward_sign(SECRET, &f, hdr), 0);
    const char *mac = hdr + 25;
    const char *cases[] = {"", "vf1.", "vf2.node-a.1796115600000.", "vf1.node-a", "vf1.node-a.",
                           "vf1.Node-A.1796115600000.", "vf1..1796115600000.", "vf1.node-a.x.",
                           "vf1.node-a.1796115600000"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(bad, sizeof bad, "%s%s", cases[i], i == 8 ? "" : mac);
        CHECK_EQ_INT(check(bad, &f, f.time_ms), -1);
    }
    snprintf(bad, sizeof bad, "%.*s", (int)strlen(hdr) - 1, hdr); /* a hex digit short */
    CHECK_EQ_INT(check(bad, &f, f.time_ms), -1);
    snprintf(bad, sizeof bad, "%s0", hdr); /* one too many */
    CHECK_EQ_INT(check(bad, &f, f.time_ms), -1);
    snprintf(bad, sizeof bad, "%s", hdr);
    for (char *p = bad + 25; *p; p++) /* uppercase hex is not the encoding */
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    CHECK_EQ_INT(check(bad, &f, f.time_ms), -1);
    struct cluster_fwd in_bad = f;
    in_bad.from = "Not An Id";
    CHECK_EQ_INT(cluster_forward_sign(SECRET, &in_bad, hdr), -1);
    CHECK_EQ_INT(cluster_forward_check(SECRET, NULL, 0, &f, f.time_ms, 5000,
                                       &(struct cluster_fwd_in){{0}, 0}),
                 -1);
}

int main(void)
{
    RUN(t_score_known_answer);
    RUN(t_place_live_only);
    RUN(t_place_moves_only_its_share);
    RUN(t_lease_clock);
    RUN(t_forward_mac);
    RUN(t_forward_malformed);
    return HARNESS_DONE();
}
