#!/usr/bin/env python3
"""Black-box tests: rate limits and anti-cheat (README "Limits"): per-address and
per-player token buckets (429 rate_limited + Retry-After), players created per address
per minute, implausible position jumps (422 implausible_move), and the metrics of each.
A second client address comes from another loopback address (127.0.0.2): Linux routes
all of 127/8 to lo.

No timing assertions: each limit is set so low that what a test sends in any amount of
time it could plausibly take stays far over it, and the bound checked allows for the
time actually elapsed."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test  # noqa: E402


From = vx.SourceClient
metric = vx.metric


def check_429(r, what):
    check(r, 429, "rate_limited", what=what)
    ra = r.headers.get("retry-after", "")
    true(re.fullmatch(r"[1-9][0-9]*", ra), "%s: Retry-After must be whole seconds >= 1, got %r"
         % (what, ra))
    return int(ra)


def hunt(c, name):
    vx.put_hunt(c, name, vx.basic_def(name, codes=[{"id": "c1", "points": 10, "x": 1, "y": 1}]))
    return vx.codes_of(c, name)["c1"]


@test
def rate_per_address():
    s = vx.Server(args=["--rate-ip", "0.5:4"]).start()
    c = s.client()
    t0 = time.time()
    got = [c.req("GET", "/v1/hunts/none/stats") for _ in range(30)]
    elapsed = time.time() - t0
    served = [r for r in got if r.status != 429]
    limited = [r for r in got if r.status == 429]
    for r in served:
        check(r, 404, "hunt_not_found")
    # the start-up probe took one token; 0.5 more a second
    true(len(served) <= 4 + 0.5 * elapsed + 1,
         "%d of 30 served in %.1f s with --rate-ip 0.5:4" % (len(served), elapsed))
    true(limited, "nothing limited")
    for r in limited:
        true(check_429(r, "over the address limit") <= 2, "Retry-After over 2 s at 0.5/s: %s" % (r,))
    # another address has its own bucket (and reads the metrics)
    other = From(s, "127.0.0.2")
    check(other.req("GET", "/v1/hunts/none/stats"), 404, "hunt_not_found")
    true(metric(other, "veltrix_rate_limited_total", '{limit="ip"}') >= len(limited),
         "metric counts the 429s")


@test
def rate_per_player():
    s = vx.Server(args=["--rate-player", "0.2:5"]).start()
    c = s.client()
    pay = hunt(c, "rp")
    _, tok, _ = vx.new_player(c, "Fast")
    _, tok2, _ = vx.new_player(c, "Calm")
    t0 = time.time()
    got = [c.req("GET", "/v1/players/me", token=tok) for _ in range(20)]
    elapsed = time.time() - t0
    served = [r for r in got if r.status == 200]
    true(len(served) <= 5 + 0.2 * elapsed + 1,
         "%d of 20 served in %.1f s with --rate-player 0.2:5" % (len(served), elapsed))
    true(len(served) + sum(r.status == 429 for r in got) == 20, "only 200 or 429")
    check_429(got[-1], "player over the limit")
    # a limited write changes nothing (a token comes back every 5 s)
    seq0 = vx.digest(c, "rp")
    check_429(vx.scan(c, "rp", tok, pay), "scan over the player limit")
    eq(vx.digest(c, "rp"), seq0, "digest after a rate-limited scan")
    # tok2's bucket is its own: full, whatever tok did
    check(c.req("GET", "/v1/players/me", token=tok2), 200, what="the other player's bucket")
    off = vx.Server(args=["--rate-player", "0"]).start().client()
    _, tok3, _ = vx.new_player(off, "Free")
    true(all(off.req("GET", "/v1/players/me", token=tok3).status == 200 for _ in range(50)),
         "--rate-player 0 limits nothing")
    eq(metric(off, 'veltrix_limit_keys{limit="player"}'), 0, "no player buckets when off")
    # other players and anonymous reads go on
    check(vx.scan(c, "rp", tok2, pay), 200)
    check(c.req("GET", "/v1/hunts/rp/leaderboard"), 200)
    true(metric(c, "veltrix_rate_limited_total", '{limit="player"}') >= 2, "player metric")


@test
def players_per_address_per_minute():
    s = vx.Server(args=["--players-per-ip-per-min", "3"]).start()
    c = s.client()
    made = sum(c.req("POST", "/v1/players", {"display_name": "P%d" % i}).status == 201
               for i in range(3))
    eq(made, 3, "players created within the burst of 3")
    r = c.req("POST", "/v1/players", {"display_name": "Fourth"})
    ra = check_429(r, "4th player from one address in a minute")
    true(ra <= 20, "Retry-After %d s, expected <= 20 s at 3 per minute" % ra)
    other = From(s, "127.0.0.3")
    check(other.req("POST", "/v1/players", {"display_name": "Elsewhere"}), 201)
    eq(metric(other, "veltrix_players"), 4, "players after one refused creation")
    eq(metric(other, "veltrix_rate_limited_total", '{limit="players_per_ip"}'), 1, "metric")
    # other endpoints from the limited address are not affected
    check(c.req("GET", "/healthz"), 200)


@test
def implausible_moves():
    s = vx.Server(args=["--max-speed", "5"]).start()
    c = s.client()
    hunt(c, "mv")
    hunt(c, "mv2")
    _, tok, _ = vx.new_player(c, "Runner")
    pos = lambda h, x, y: c.req("POST", "/v1/hunts/%s/position" % h, {"x": x, "y": y}, token=tok)
    check(pos("mv", 1, 1), 202, what="first position")
    check(pos("mv", 3, 1), 202, what="2 units: within the 1 s grace at 5 units/s")
    r = check(pos("mv", 60, 60), 422, "implausible_move", what="a jump of 83 units")
    check(pos("mv2", 60, 60), 202, what="another hunt keeps its own last position")
    check(pos("mv", 4, 2), 202, what="back near the last accepted position")
    check(pos("mv", 63, 63), 422, "implausible_move", what="another jump")
    check(pos("mv", 64, 64), 400, "out_of_bounds", what="bounds are checked first")
    eq(metric(c, "veltrix_implausible_moves_total"), 2, "implausible moves counted")
    true(r.body["error"]["message"], "message")


@test
def limits_reject_bad_flags():
    for args in (["--rate-ip", "x"], ["--rate-player", "-1"], ["--rate-player", "5:0"],
                 ["--players-per-ip-per-min", "1.5"], ["--max-speed", "nan"],
                 ["--max-speed", "-3"], ["--rate-keys-max", "0"], ["--rate-nope", "1"],
                 ["--trusted-proxy", "localhost"], ["--max-connections-per-ip", "-1"],
                 ["--rate-ip-tiles", "x"], ["--rate-ip-tiles", "5:0"]):
        s = vx.Server(args=args)
        try:
            s.start(timeout=3)
        except AssertionError as e:
            true("exited with 2" in str(e), "%s: %s" % (args, e))
            s.expect_dead = True
            continue
        raise AssertionError("server started with %s" % args)


@test
def tiles_have_their_own_bucket():
    """Tile reads take from --rate-ip-tiles, every other route from --rate-ip: a map view
    of dozens of tiles does not spend the address's budget for game requests."""
    s = vx.Server(args=["--rate-ip", "3:3", "--rate-ip-tiles", "1000:1000"]).start()
    c = s.client()
    got = [c.req("GET", "/tiles/nohunt/%d/0" % i).status for i in range(30)]
    true(429 not in got, "30 tile reads under --rate-ip-tiles 1000:1000: %s" % got)
    got = [c.req("GET", "/healthz").status for _ in range(10)]
    true(429 in got, "--rate-ip 3:3 still limits other routes: %s" % got)
    s.stop()
    s = vx.Server(args=["--rate-ip-tiles", "2:2"]).start()
    c = s.client()
    got = [c.req("GET", "/tiles/nohunt/%d/0" % i) for i in range(10)]
    limited = [r for r in got if r.status == 429]
    true(limited, "--rate-ip-tiles 2:2: 10 quick tile reads, none limited")
    check(limited[0], 429, "rate_limited")
    true("tiles" in limited[0].body["error"]["message"], "the message names the tile bucket")
    true(int(limited[0].headers.get("retry-after", "0")) >= 1, "Retry-After")
    eq(metric(c, 'veltrix_rate_limited_total{limit="ip_tiles"}'), len(limited), "counted")
    s.stop()


@test
def defaults_are_on():
    """Without the test suite's generous flags, the README defaults apply."""
    s = vx.Server()
    saved = vx.TEST_LIMITS[:]
    vx.TEST_LIMITS[:] = []
    try:
        s.start()
    finally:
        vx.TEST_LIMITS[:] = saved
    c = s.client()
    codes = [c.req("POST", "/v1/players", {"display_name": "D%d" % i}).status for i in range(200)]
    true(codes.count(201) >= 120 and 429 in codes,
         "default --players-per-ip-per-min 120: %d created, %d limited"
         % (codes.count(201), codes.count(429)))
    c.req("GET", "/tiles/nohunt/0/0")
    eq(metric(c, 'veltrix_limit_keys{limit="ip_tiles"}'), 1, "default --rate-ip-tiles is on")
    _, tok, _ = vx.new_player(From(s, "127.0.0.4"), "Walker")
    hunt(c, "d")
    check(c.req("POST", "/v1/hunts/d/position", {"x": 1, "y": 1}, token=tok), 202)
    check(c.req("POST", "/v1/hunts/d/position", {"x": 63, "y": 63}, token=tok), 422,
          "implausible_move", what="default --max-speed 20")
    got = [c.req("GET", "/v1/players/me", token=tok).status for _ in range(100)]
    true(429 in got, "default --rate-player 10:20: 100 quick requests, none limited")
    # Each player holds its bucket: as many player keys as players, none ever evicted.
    eq(metric(c, 'veltrix_limit_keys{limit="player"}'), codes.count(201) + 1, "player buckets")
    eq(metric(c, 'veltrix_limit_evicted_live_total{limit="player"}'), 0, "player evictions")


@test
def trusted_proxy_forwarded_for():
    """Behind --trusted-proxy, the per-address limits key on the last X-Forwarded-For
    address; from anyone else the header is ignored."""
    s = vx.Server(args=["--trusted-proxy", "127.0.0.1", "--rate-ip", "0.1:3"]).start()
    c = s.client()
    xff = lambda v: c.req("GET", "/v1/hunts/none/stats", headers={"X-Forwarded-For": v}).status
    got = [xff("10.0.0.1") for _ in range(6)]
    true(got.count(404) <= 4 and 429 in got, "client 10.0.0.1 behind the proxy: %s" % got)
    eq(xff("10.0.0.2"), 404, "another client behind the proxy")
    eq(xff("10.0.0.1, 10.0.0.9"), 404, "the proxy's own (last) entry counts, not the first")
    eq(xff("1.2.3.4, 10.0.0.1"), 429, "a forged first entry does not help 10.0.0.1")
    eq(xff("2001:db8::1"), 404, "IPv6 client")
    direct = From(s, "127.0.0.2")
    got = [direct.req("GET", "/v1/hunts/none/stats", headers={"X-Forwarded-For": "10.1.%d.1" % i}).status
           for i in range(6)]
    true(got.count(404) <= 4 and 429 in got,
         "not from the proxy: X-Forwarded-For must be ignored: %s" % got)


if __name__ == "__main__":
    vx.run_all()
