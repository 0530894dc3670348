#!/usr/bin/env python3
"""Black-box tests: playing (scans, items, chests), /me, the leaderboard, idempotency
keys on game writes, the chest race, stats (API.md "Playing", "Leaderboard")."""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test, short, scan, collect, open_zone, me  # noqa: E402


ME_KEYS = ("score", "rank", "inventory", "scanned", "opened", "collected")
FRESH_ME = {"score": 0, "rank": None, "inventory": {}, "scanned": [], "opened": [], "collected": []}


def srv():
    return vx.shared()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"


def game_def(**extra):
    d = {"name": "game", "map": {"width": 64, "height": 64},
         "codes": [{"id": "lobby-1", "points": 50, "x": 3, "y": 4},
                   {"id": "lobby-2", "points": 80, "x": 5, "y": 4},
                   {"id": "lobby-3", "points": 10, "x": 7, "y": 4},
                   {"id": "zero", "points": 0, "x": 9, "y": 4}],
         "items": [{"id": "key-red", "x": 10, "y": 12, "quantity": 5},
                   {"id": "torch", "x": 11, "y": 12, "quantity": 2}],
         "zones": [{"id": "vault", "x": 0, "y": 0, "w": 4, "h": 4,
                    "chests": [{"id": "v1", "points": 300, "loot": ["gem"], "requires": "key-red"}]},
                   {"id": "atrium", "x": 4, "y": 0, "w": 4, "h": 4,
                    "chests": [{"id": "a1", "points": 100, "loot": ["gem"], "requires": "key-red"},
                               {"id": "a2", "points": 40, "loot": ["coin"]}]},
                   {"id": "bare", "x": 8, "y": 0, "w": 4, "h": 4, "chests": []},
                   {"id": "drops", "x": 12, "y": 0, "w": 4, "h": 4, "chests": [],
                    "chest_range": {"prefix": "drop-", "count": 1000, "points": 10, "loot": ["coin"]}}]}
    d.update(extra)
    return d


def setup(hunt, c=None, **extra):
    c = c or srv().client()
    vx.put_hunt(c, hunt, game_def(**extra), status=201)
    return c, vx.codes_of(c, hunt)


def fields(r, want, what):
    check(r, 200)
    for k, v in want.items():
        true(isinstance(r.body, dict) and k in r.body, "%s: field %r missing in %s" % (what, k, short(r.body)))
        eq(r.body[k], v, "%s: %s" % (what, k))


def stats(c, hunt):
    r = c.req("GET", "/v1/hunts/%s/stats" % hunt)
    check(r, 200)
    return r.body


def tamper(p, i):
    alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    ch = p[i]
    new = alpha[alpha.index(ch) ^ 0x20] if ch in alpha else ("Q" if ch != "Q" else "R")
    return p[:i] + new + p[i + 1:]


# ---------------------------------------------------------------------------------------
@test
def scans_and_me():
    c, pay = setup("sc")
    p1, t1, _ = vx.new_player(c, "Ana")
    p2, t2, _ = vx.new_player(c, "Bo")
    p3, t3, _ = vx.new_player(c, "Cy")
    m = me(c, "sc", t3)
    eq({k: m.get(k, "(absent)") for k in ME_KEYS}, FRESH_ME,
       "/me of a player who has not played")
    fields(scan(c, "sc", t1, pay["lobby-1"]), {"code": "lobby-1", "points": 50, "score": 50, "rank": 1}, "p1 scan")
    check(scan(c, "sc", t1, pay["lobby-1"]), 409, "already_scanned", what="scan twice")
    eq(me(c, "sc", t1)["score"], 50, "score after a refused second scan")
    fields(scan(c, "sc", t2, pay["lobby-2"]), {"code": "lobby-2", "points": 80, "score": 80, "rank": 1}, "p2 scan")
    eq(me(c, "sc", t1)["rank"], 2, "p1 rank after p2 overtakes")
    fields(scan(c, "sc", t1, pay["lobby-3"]), {"code": "lobby-3", "points": 10, "score": 60, "rank": 2}, "p1 2nd")
    fields(scan(c, "sc", t2, pay["lobby-1"]), {"code": "lobby-1", "points": 50, "score": 130, "rank": 1}, "p2 2nd")
    fields(scan(c, "sc", t3, pay["zero"]), {"code": "zero", "points": 0, "score": 0, "rank": 3}, "0-point scan")
    m1 = me(c, "sc", t1)
    eq(m1.get("score"), 60, "p1 score")
    eq(m1.get("rank"), 2, "p1 rank")
    eq(sorted(m1.get("scanned", [])), ["lobby-1", "lobby-3"], "p1 scanned")
    eq((m1.get("opened"), m1.get("collected"), m1.get("inventory")), ([], [], {}), "p1 opened/collected/inventory")
    m2 = me(c, "sc", t2)
    eq((m2["score"], m2["rank"], sorted(m2["scanned"])), (130, 1, ["lobby-1", "lobby-2"]), "p2 /me")
    m3 = me(c, "sc", t3)
    eq((m3["score"], m3["rank"], m3["scanned"]), (0, 3, ["zero"]), "p3 /me after a 0-point scan")
    lb = vx.leaderboard(c, "sc")
    eq(lb.get("total"), 3, "leaderboard total")
    eq([(e["player_id"], e["score"], e["rank"]) for e in lb["entries"]], [(p2, 130, 1), (p1, 60, 2), (p3, 0, 3)],
       "leaderboard")
    eq(vx.get_hunt(c, "sc").get("players"), 3, "players")
    # the other hunt knows nothing of this
    c2, pay2 = setup("sc-other", c)
    eq(me(c, "sc-other", t1)["score"], 0, "score in another hunt")
    check(c.req("GET", "/v1/hunts/sc/me"), 401, "unauthorized", what="/me without a token")


@test
def body_spellings():
    """Every spelling of the same JSON body gets the same answer (the server reads the
    common {"code": "..."} and {} shapes without a full parse; nothing else may differ)."""
    c, pay = setup("bs")
    p = pay["lobby-1"]
    esc = p.replace(".", "\\u002e", 1)
    same = [b'{"code":"%s"}' % p.encode(), b' \r\n{ "code" :\t"%s" }\n ' % p.encode(),
            b'{"code":"%s"}' % esc.encode(), b'{"code":"%s","extra":[1,{"a":null}]}' % p.encode(),
            b'{"extra":true,"code":"%s"}' % p.encode()]
    for body in same:
        pid, tok, _ = vx.new_player(c, "Sp")
        r = c.req("POST", "/v1/hunts/bs/scans", body, token=tok)
        fields(r, {"code": "lobby-1", "points": 50, "score": 50}, "scan with body %r" % body)
    bad = {b'{"code":"%s"} x' % p.encode(): "invalid_json", b'{"code":"%s"}}' % p.encode(): "invalid_json",
           b'{"code":"%s","code":"%s"}' % (p.encode(), p.encode()): "invalid_json",
           b'{"code":"%s\x00"}' % p.encode(): "invalid_json", b'{"code":"%s"' % p.encode(): "invalid_json",
           b'{"Code":"%s"}' % p.encode(): "invalid_request", b'[{"code":"%s"}]' % p.encode(): "invalid_request",
           b'{"code":"%s\\"}' % p.encode(): "invalid_json", b'{"code":"%s\xff"}' % p.encode(): "invalid_json"}
    pid, tok, _ = vx.new_player(c, "Sp")
    for body, code in bad.items():
        r = c.req("POST", "/v1/hunts/bs/scans", body, token=tok)
        true(r.status == 400 and isinstance(r.body, dict) and r.body.get("error", {}).get("code") in (code, "invalid_code"),
             "scan with body %r: expected 400 %s, got %d %s" % (body, code, r.status, short(r.body)))
    eq(me(c, "bs", tok)["score"], 0, "score after refused bodies")
    for body in (b"", b"{}", b" { } ", b"\n{\n}\n", b'{"x":1}'):
        pid, tok, _ = vx.new_player(c, "Op")
        check(c.req("POST", "/v1/hunts/bs/zones/drops/open", body, token=tok), 200, what="open with body %r" % body)
    for body in (b"{}x", b"{}{}", b"{}}", b"{", b"}", b"[]", b"{ ,}"):
        r = c.req("POST", "/v1/hunts/bs/zones/drops/open", body, token=tok)
        true(r.status == 400, "open with body %r: expected 400, got %d %s" % (body, r.status, short(r.body)))
        r = c.req("POST", "/v1/hunts/bs/items/torch/collect", body, token=tok)
        true(r.status == 400, "collect with body %r: expected 400, got %d %s" % (body, r.status, short(r.body)))


@test
def invalid_codes():
    c, pay = setup("ic")
    c, pay2 = setup("ic-2", c)
    pid, tok, _ = vx.new_player(c, "Forger")
    p = pay["lobby-1"]
    forged = {"code id": "lobby-1", "garbage": "garbage", "another hunt's code": pay2["lobby-1"],
              "truncated": p[:-1], "extended": p + "A", "prefix": p[: len(p) // 2], "doubled": p + p,
              "long": "A" * 10000, "unicode": "lobby-1\u00e9\u263a"}
    for i in sorted({0, len(p) // 2, len(p) - 2, len(p) - 1}):
        forged["char %d changed" % i] = tamper(p, i)
    if "lobby-1" in p:
        forged["code id swapped"] = p.replace("lobby-1", "lobby-2")
    if "ic" in p:
        forged["hunt id swapped"] = p.replace("ic", "iX", 1)
    for what, f in forged.items():
        r = scan(c, "ic", tok, f)
        check(r, 400, "invalid_code", what="forged payload (%s)" % what)
    # a payload of hunt ic scanned at ic-2 (which has a code with the same id)
    check(scan(c, "ic-2", tok, p), 400, "invalid_code", what="payload of hunt ic at ic-2")
    check(scan(c, "ic", tok, ""), 400, what="empty code")
    m = me(c, "ic", tok)
    eq((m["score"], m["scanned"]), (0, []), "/me after forged scans")
    fields(scan(c, "ic", tok, p), {"code": "lobby-1", "points": 50, "score": 50}, "genuine scan after forgeries")
    fields(scan(c, "ic-2", tok, pay2["lobby-1"]), {"code": "lobby-1", "score": 50}, "genuine scan at ic-2")


@test
def hunt_not_active():
    now = time.time()
    c, pay_past = setup("past", starts_at="2020-01-01T00:00:00.000Z", ends_at="2020-01-02T00:00:00.000Z")
    c, pay_future = setup("future", c, starts_at="2099-01-01T00:00:00.000Z", ends_at="2099-01-02T00:00:00.000Z")
    c, pay_now = setup("now", c, starts_at=iso(now - 3600), ends_at=iso(now + 3600))
    pid, tok, _ = vx.new_player(c, "Late")
    check(scan(c, "past", tok, pay_past["lobby-1"]), 403, "hunt_not_active", what="scan after ends_at")
    check(scan(c, "future", tok, pay_future["lobby-1"]), 403, "hunt_not_active", what="scan before starts_at")
    eq(me(c, "past", tok)["score"], 0, "score in the past hunt")
    eq(vx.leaderboard(c, "past")["total"], 0, "leaderboard of the past hunt")
    fields(scan(c, "now", tok, pay_now["lobby-1"]), {"code": "lobby-1", "score": 50}, "scan in an open window")


def ws_sync(w):
    """Returns once the server has read everything w sent before (a ping's pong)."""
    w.send(9, b"sync")
    while True:
        op, p = w.recv_frame()
        if op == 10 and p == b"sync":
            return


@test
def positions_only_while_the_hunt_is_active():
    """Positions are refused outside starts_at/ends_at like scans: 403 hunt_not_active
    over HTTP, and a live client's position message is not relayed."""
    now = time.time()
    c, _ = setup("pos-past", starts_at="2020-01-01T00:00:00.000Z", ends_at="2020-01-02T00:00:00.000Z")
    c, _ = setup("pos-future", c, starts_at="2099-01-01T00:00:00.000Z", ends_at="2099-01-02T00:00:00.000Z")
    c, _ = setup("pos-now", c, starts_at=iso(now - 3600), ends_at=iso(now + 3600))
    _, tok, _ = vx.new_player(c, "Walker")
    _, tok2, _ = vx.new_player(c, "Watcher")
    _, tok3, _ = vx.new_player(c, "Mover")  # positions are thinned per player: a fresh one
    for hunt, what in (("pos-past", "after ends_at"), ("pos-future", "before starts_at")):
        check(c.req("POST", "/v1/hunts/%s/position" % hunt, {"x": 1, "y": 1}, token=tok), 403,
              "hunt_not_active", what="position " + what)
    check(c.req("POST", "/v1/hunts/pos-now/position", {"x": 1, "y": 1}, token=tok), 202,
          what="position in an open window")
    port = srv().port
    for hunt, relayed in (("pos-now", True), ("pos-past", False)):
        watcher, mover = vx.live(port, hunt, tok2), vx.live(port, hunt, tok3)
        eq((watcher.status, mover.status), (101, 101), "live handshakes on %s" % hunt)
        mover.send_json({"type": "position", "x": 2, "y": 3})
        ws_sync(mover)
        # a durable event after it: a relayed position would reach the watcher first
        check(c.req("POST", "/v1/hunts/%s/map/publish" % hunt, {}, admin=True), 200)
        seen = []
        while True:
            m = watcher.recv_json()
            seen.append(m["type"])
            if m["type"] == "map_published":
                break
        eq("position" in seen, relayed, "%s: live position relayed (messages: %s)" % (hunt, seen))
        watcher.close()
        mover.close()


@test
def collect_items():
    c, pay = setup("co")
    p1, t1, _ = vx.new_player(c, "A")
    p2, t2, _ = vx.new_player(c, "B")
    p3, t3, _ = vx.new_player(c, "C")
    fields(collect(c, "co", t1, "torch"), {"item": "torch", "count": 1, "remaining": 1}, "p1 collect")
    check(collect(c, "co", t1, "torch"), 409, "already_collected", what="collect twice")
    fields(collect(c, "co", t2, "torch"), {"item": "torch", "count": 1, "remaining": 0}, "p2 collect")
    check(collect(c, "co", t3, "torch"), 409, "item_exhausted", what="collect when none is left")
    check(collect(c, "co", t3, "nope"), 404, "item_not_found", what="unknown item")
    check(collect(c, "co", t3, "Torch"), 400, "invalid_id", what="invalid item id")
    fields(collect(c, "co", t1, "key-red"), {"item": "key-red", "count": 1, "remaining": 4}, "p1 key")
    b = vx.get_hunt(c, "co")
    eq(b.get("items_left"), {"key-red": 4, "torch": 0}, "items_left")
    m = me(c, "co", t1)
    eq(sorted(m["collected"]), ["key-red", "torch"], "p1 collected")
    eq(m["inventory"], {"key-red": 1, "torch": 1}, "p1 inventory")
    eq((m["score"], m["rank"]), (0, None), "collecting does not score")
    eq(me(c, "co", t3)["collected"], [], "p3 collected")
    eq(vx.leaderboard(c, "co")["total"], 0, "leaderboard total after collects only")


@test
def open_chests():
    c, pay = setup("op")
    p1, t1, _ = vx.new_player(c, "A")
    p2, t2, _ = vx.new_player(c, "B")
    p3, t3, _ = vx.new_player(c, "C")
    check(open_zone(c, "op", t3, "vault"), 404, "no_chest_available", what="vault without the key")
    check(open_zone(c, "op", t3, "bare"), 404, "no_chest_available", what="zone without chests")
    check(open_zone(c, "op", t3, "nowhere"), 404, "zone_not_found", what="unknown zone")
    check(open_zone(c, "op", t3, "Vault"), 400, "invalid_id", what="invalid zone id")
    check(collect(c, "op", t1, "key-red"), 200)
    fields(open_zone(c, "op", t1, "vault"),
           {"chest": "v1", "points": 300, "loot": ["gem"], "score": 300, "rank": 1}, "open the vault")
    m = me(c, "op", t1)
    eq(m["opened"], ["v1"], "p1 opened")
    eq(m["collected"], ["key-red"], "p1 collected")
    eq({k: v for k, v in m["inventory"].items() if v}, {"gem": 1}, "p1 inventory (key consumed, gem looted)")
    eq((m["score"], m["rank"]), (300, 1), "p1 score/rank")
    check(open_zone(c, "op", t1, "vault"), 404, "no_chest_available", what="vault already opened")
    check(open_zone(c, "op", t1, "atrium"), 200, what="atrium a2 needs no key")
    check(collect(c, "op", t1, "key-red"), 409, "already_collected", what="collect a consumed key again")
    check(collect(c, "op", t2, "key-red"), 200)
    check(open_zone(c, "op", t2, "vault"), 404, "no_chest_available", what="vault opened by someone else")
    fields(open_zone(c, "op", t2, "atrium"), {"chest": "a1", "points": 100, "loot": ["gem"], "score": 100},
           "p2 opens the keyed atrium chest")
    check(open_zone(c, "op", t2, "atrium"), 404, "no_chest_available", what="atrium empty")
    m2 = me(c, "op", t2)
    eq({k: v for k, v in m2["inventory"].items() if v}, {"gem": 1}, "p2 inventory")
    b = vx.get_hunt(c, "op")
    eq(b.get("chests_left"), {"vault": 0, "atrium": 0, "bare": 0, "drops": 1000}, "chests_left")
    eq(b.get("items_left"), {"key-red": 3, "torch": 2}, "items_left (consumed keys do not come back)")
    m1 = me(c, "op", t1)
    eq(sorted(m1["opened"]), ["a2", "v1"], "p1 opened")
    eq(m1["score"], 340, "p1 score")
    eq({k: v for k, v in m1["inventory"].items() if v}, {"gem": 1, "coin": 1}, "p1 inventory")


@test
def open_range_chests():
    c, pay = setup("rg")
    got = []
    for i in range(20):
        pid, tok, _ = vx.new_player(c, "R%d" % i)
        r = open_zone(c, "rg", tok, "drops")
        fields(r, {"points": 10, "loot": ["coin"], "score": 10}, "open a range chest")
        ch = r.body["chest"]
        true(ch.startswith("drop-") and ch[5:].isdigit() and 0 <= int(ch[5:]) < 1000 and str(int(ch[5:])) == ch[5:],
             "range chest id %r" % ch)
        got.append(ch)
        m = me(c, "rg", tok)
        eq((m["opened"], m["inventory"].get("coin")), ([ch], 1), "/me after opening %s" % ch)
    eq(len(set(got)), 20, "distinct range chests")
    true(set(got) != {"drop-%d" % i for i in range(20)},
         "the chest choice is not random: the first 20 chests were handed out in order")
    eq(vx.get_hunt(c, "rg")["chests_left"]["drops"], 980, "chests_left after 20 opens")


@test
def leaderboard_order_and_paging():
    s = srv()
    c = s.client()
    codes = [{"id": "c10", "points": 10, "x": 0, "y": 0}, {"id": "c20", "points": 20, "x": 0, "y": 0},
             {"id": "c30", "points": 30, "x": 0, "y": 0}, {"id": "c30b", "points": 30, "x": 0, "y": 0},
             {"id": "c50", "points": 50, "x": 0, "y": 0}, {"id": "z0", "points": 0, "x": 0, "y": 0}] + \
            [{"id": "x%d" % i, "points": i, "x": 0, "y": 0} for i in range(1, 7)]
    vx.put_hunt(c, "lb", vx.basic_def("lb", codes=codes), status=201)
    pay = vx.codes_of(c, "lb")
    P = {}
    for n in ["A", "B", "C", "D", "E", "F"] + ["X%d" % i for i in range(1, 7)] + ["N"]:
        P[n] = vx.new_player(c, "name-" + n)

    def sc(n, code, rank=None):
        r = scan(c, "lb", P[n][1], pay[code])
        check(r, 200)
        if rank is not None:
            eq(r.body.get("rank"), rank, "rank in the response of %s scanning %s" % (n, code))
    sc("A", "c30", 1)
    sc("B", "c30b", 2)
    sc("C", "c10", 3)
    sc("E", "c10", 4)
    sc("C", "c20", 3)
    sc("D", "c50", 1)
    sc("F", "z0", 6)
    for i in range(1, 7):
        sc("X%d" % i, "x%d" % i)
    order = ["D", "A", "B", "C", "E", "X6", "X5", "X4", "X3", "X2", "X1", "F"]
    score = {"D": 50, "A": 30, "B": 30, "C": 30, "E": 10, "F": 0}
    score.update({"X%d" % i: i for i in range(1, 7)})

    def rows(b):
        return [(e.get("rank"), e.get("player_id"), e.get("display_name"), e.get("score")) for e in b["entries"]]

    def want(names, first_rank):
        return [(first_rank + i, P[n][0], "name-" + n, score[n]) for i, n in enumerate(names)]
    b = vx.leaderboard(c, "lb")
    eq(b.get("total"), 12, "total")
    true(isinstance(b.get("seq"), int), "seq: %r" % b.get("seq"))
    eq(rows(b), want(order[:10], 1), "default page (limit 10)")
    eq(rows(vx.leaderboard(c, "lb", "?limit=1000")), want(order, 1), "whole leaderboard")
    eq(rows(vx.leaderboard(c, "lb", "?limit=3&offset=2")), want(order[2:5], 3), "limit=3&offset=2")
    eq(rows(vx.leaderboard(c, "lb", "?limit=5&offset=11")), want(order[11:], 12), "last page")
    b = vx.leaderboard(c, "lb", "?offset=12")
    eq((b["total"], b["entries"]), (12, []), "offset past the end")
    eq(rows(vx.leaderboard(c, "lb", "?around=%s&radius=1" % P["C"][0])), want(["B", "C", "E"], 3), "around C")
    eq(rows(vx.leaderboard(c, "lb", "?around=%s&radius=2" % P["D"][0])), want(["D", "A", "B"], 1), "around D (top)")
    eq(rows(vx.leaderboard(c, "lb", "?around=%s&radius=2" % P["F"][0])), want(["X2", "X1", "F"], 10),
       "around F (bottom)")
    eq(rows(vx.leaderboard(c, "lb", "?around=%s&radius=0" % P["A"][0])), want(["A"], 2), "around A radius 0")
    eq(vx.leaderboard(c, "lb", "?around=%s&radius=3" % P["A"][0])["total"], 12, "total with around")
    r = c.req("GET", "/v1/hunts/lb/leaderboard?around=%s&radius=2" % P["N"][0])
    check(r, (200, 404), what="around a player who has not scored")
    if r.status == 200:
        eq(r.body.get("entries"), [], "around a player who has not scored")
    for n in order:
        m = me(c, "lb", P[n][1])
        eq((m["score"], m["rank"]), (score[n], order.index(n) + 1), "/me of %s" % n)
    for q in ("limit=0", "limit=1001", "limit=-1", "limit=abc", "offset=-1", "offset=x", "around=not-a-uuid",
              "limit=99999999999999999999999"):
        check(c.req("GET", "/v1/hunts/lb/leaderboard?" + q), 400, what="leaderboard ?" + q)
    # every acknowledged scan is visible at once; seq follows
    seq0 = vx.leaderboard(c, "lb")["seq"]
    sc("E", "c50", 1)
    b = vx.leaderboard(c, "lb", "?limit=2")
    eq(rows(b), [(1, P["E"][0], "name-E", 60), (2, P["D"][0], "name-D", 50)], "top 2 right after a scan")
    eq(b["seq"], seq0 + 1, "seq after one scan")
    # a player reaching an equal score later ranks after
    sc("A", "c20", 3)   # A: 50, reached after D
    b = vx.leaderboard(c, "lb", "?limit=3")
    eq([e["player_id"] for e in b["entries"]], [P["E"][0], P["D"][0], P["A"][0]], "tie broken by who reached first")


@test
def idempotent_scans_and_opens():
    s = srv()
    c, pay = setup("idm")
    p1, t1, _ = vx.new_player(c, "A")
    p2, t2, _ = vx.new_player(c, "B")
    K = {"Idempotency-Key": "scan-key-1"}
    r1 = scan(c, "idm", t1, pay["lobby-1"], headers=K)
    fields(r1, {"code": "lobby-1", "score": 50}, "first scan with a key")
    true(r1.headers.get("idempotent-replayed", "false").lower() != "true", "first response marked as a replay")
    seq0 = vx.digest(c, "idm")
    for i in range(3):
        r = scan(c, "idm", t1, pay["lobby-1"], headers=K)
        check(r, r1.status, what="replay %d" % i)
        eq(r.body, r1.body, "replayed body")
        eq(r.headers.get("idempotent-replayed", "").lower(), "true", "Idempotent-Replayed")
    eq(vx.digest(c, "idm"), seq0, "digest after replays (nothing changed)")
    eq(me(c, "idm", t1)["score"], 50, "score after replays")
    r = scan(c, "idm", t1, pay["lobby-2"], headers=K)
    check(r, 422, "idempotency_key_reused", what="same key, other code")
    eq(me(c, "idm", t1)["scanned"], ["lobby-1"], "scanned after the refused reuse")
    # keys are per player: the same key from another player is a new request
    r = scan(c, "idm", t2, pay["lobby-1"], headers=K)
    fields(r, {"code": "lobby-1", "score": 50}, "another player's request with the same key")
    true(r.headers.get("idempotent-replayed", "false").lower() != "true", "another player's request replayed")
    # ...and per method and path
    r = collect(c, "idm", t1, "key-red", headers=K)
    fields(r, {"item": "key-red", "count": 1}, "same key on another path")
    # opens
    left0 = vx.get_hunt(c, "idm")["chests_left"]["drops"]
    KO = {"Idempotency-Key": "open-key-1"}
    o1 = open_zone(c, "idm", t1, "drops", headers=KO)
    check(o1, 200)
    for i in range(3):
        r = open_zone(c, "idm", t1, "drops", headers=KO)
        check(r, 200, what="open replay %d" % i)
        eq(r.body, o1.body, "replayed open")
        eq(r.headers.get("idempotent-replayed", "").lower(), "true", "Idempotent-Replayed on open")
    eq(vx.get_hunt(c, "idm")["chests_left"]["drops"], left0 - 1, "chests taken by one open and its replays")
    eq(me(c, "idm", t1)["opened"], [o1.body["chest"]], "opened after replays")
    r = open_zone(c, "idm", t1, "atrium", headers=KO)
    check(r, 200, what="same key on another zone path is a new request")
    o2 = open_zone(c, "idm", t1, "drops", headers={"Idempotency-Key": "open-key-2"})
    check(o2, 200)
    true(o2.body["chest"] != o1.body["chest"], "a new key opened the same chest")


@test
def idempotency_survives_restart():
    s = vx.Server().start()
    c, pay = setup("idr", s.client())
    pid, tok, _ = vx.new_player(c, "R")
    a = scan(c, "idr", tok, pay["lobby-1"], headers={"Idempotency-Key": "r-1"})
    check(a, 200)
    b = open_zone(c, "idr", tok, "drops", headers={"Idempotency-Key": "r-2"})
    check(b, 200)
    d0 = vx.digest(c, "idr")
    c.close()
    s.restart()
    c = s.client()
    eq(vx.digest(c, "idr"), d0, "digest after a restart")
    for name, r0, f in (("scan", a, lambda: scan(c, "idr", tok, pay["lobby-1"], headers={"Idempotency-Key": "r-1"})),
                        ("open", b, lambda: open_zone(c, "idr", tok, "drops", headers={"Idempotency-Key": "r-2"}))):
        r = f()
        check(r, 200, what="%s replay after restart" % name)
        eq(r.body, r0.body, "%s replayed body after restart" % name)
        eq(r.headers.get("idempotent-replayed", "").lower(), "true", "%s Idempotent-Replayed after restart" % name)
    check(scan(c, "idr", tok, pay["lobby-2"], headers={"Idempotency-Key": "r-1"}), 422, "idempotency_key_reused",
          what="reuse after restart")
    eq(vx.digest(c, "idr"), d0, "digest after replays")
    # payloads printed before the restart still scan
    x = scan(c, "idr", tok, pay["lobby-3"], headers={"Idempotency-Key": "r-3"})
    fields(x, {"code": "lobby-3", "score": 70}, "scan with a payload from before the restart")
    c.close()
    s.kill()
    s.start()
    c = s.client()
    r = scan(c, "idr", tok, pay["lobby-3"], headers={"Idempotency-Key": "r-3"})
    check(r, 200, what="replay after SIGKILL")
    eq(r.body, x.body, "replayed body after SIGKILL")
    eq(r.headers.get("idempotent-replayed", "").lower(), "true", "Idempotent-Replayed after SIGKILL")
    eq(me(c, "idr", tok)["score"], 70, "score after SIGKILL and replays")


def race(port, hunt, zone, tokens):
    n = len(tokens)
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        cl = vx.Client(port=port, timeout=20.0, retry=False)
        try:
            cl.req("GET", "/healthz")  # connect first
            barrier.wait(timeout=30)
            results[i] = open_zone(cl, hunt, tokens[i], zone)
        except Exception as e:  # reported below
            results[i] = e
        finally:
            cl.close()
    ths = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    return results


@test
def race_100_players_20_chests():
    s = srv()
    c = s.client()
    chests = [{"id": "e-%d" % i, "points": 5, "loot": ["coin"]} for i in range(20)]
    d = vx.basic_def("race", zones=[
        {"id": "r", "x": 0, "y": 0, "w": 8, "h": 8, "chests": [],
         "chest_range": {"prefix": "r-", "count": 20, "points": 5, "loot": ["coin"]}},
        {"id": "e", "x": 8, "y": 8, "w": 8, "h": 8, "chests": chests}])
    vx.put_hunt(c, "race", d, status=201)
    players = [vx.new_player(c, "racer-%d" % i) for i in range(100)]
    tokens = [p[1] for p in players]
    owners = {}
    for zone, ids in (("r", {"r-%d" % i for i in range(20)}), ("e", {"e-%d" % i for i in range(20)})):
        res = race(s.port, "race", zone, tokens)
        wins, other = {}, []
        for i, r in enumerate(res):
            if isinstance(r, vx.R) and r.status == 200:
                wins[i] = r.body.get("chest")
            elif isinstance(r, vx.R) and r.status == 404 and r.code() == "no_chest_available":
                pass
            else:
                other.append(str(r) if isinstance(r, vx.R) else repr(r))
        true(not other, "zone %s: %d unexpected answers, e.g. %s" % (zone, len(other), "; ".join(other[:3])))
        eq(len(wins), 20, "zone %s: number of players who got a chest" % zone)
        eq(sorted(wins.values()), sorted(ids), "zone %s: chests handed out" % zone)
        for i, ch in wins.items():
            owners.setdefault(i, []).append(ch)
    b = vx.get_hunt(c, "race")
    eq(b["chests_left"], {"r": 0, "e": 0}, "chests_left after the race")
    for i, chs in owners.items():
        m = me(c, "race", tokens[i])
        eq(sorted(m["opened"]), sorted(chs), "opened of racer %d" % i)
        eq(m["score"], 5 * len(chs), "score of racer %d" % i)
    eq(vx.leaderboard(c, "race")["total"], len(owners), "leaderboard total after the race")
    # nobody else has any chest
    for i in range(100):
        if i not in owners and i % 10 == 0:
            eq(me(c, "race", tokens[i])["opened"], [], "opened of a racer who lost")


@test
def stats_shape_and_counts():
    c, pay = setup("st")
    p1, t1, _ = vx.new_player(c, "A")
    p2, t2, _ = vx.new_player(c, "B")
    st = stats(c, "st")
    for k in ("seq", "players", "scans", "chests_left", "live_connections", "store_lag_ms"):
        true(k in st, "stats: %r missing in %s" % (k, short(st)))
    for k in ("seq", "players", "scans", "live_connections"):
        true(type(st[k]) is int and st[k] >= 0, "stats.%s = %r" % (k, st[k]))
    true(type(st["store_lag_ms"]) in (int, float) and st["store_lag_ms"] >= 0, "store_lag_ms %r" % st["store_lag_ms"])
    eq((st["players"], st["scans"]), (0, 0), "stats of a fresh hunt")
    seq = st["seq"]
    steps = [(lambda: scan(c, "st", t1, pay["lobby-1"]), 200), (lambda: scan(c, "st", t1, pay["lobby-1"]), 409),
             (lambda: scan(c, "st", t2, pay["lobby-1"]), 200), (lambda: collect(c, "st", t1, "torch"), 200),
             (lambda: open_zone(c, "st", t2, "drops"), 200), (lambda: open_zone(c, "st", t2, "vault"), 404),
             (lambda: scan(c, "st", t2, pay["lobby-2"]), 200)]
    for f, status in steps:
        r = f()
        check(r, status)
        st2 = stats(c, "st")
        eq(st2["seq"], seq + (1 if status == 200 else 0), "stats.seq after %s" % r.desc)
        seq = st2["seq"]
    st = stats(c, "st")
    eq((st["players"], st["scans"]), (2, 3), "stats players/scans")
    h = vx.get_hunt(c, "st")
    eq(st["players"], h["players"], "stats.players vs GET hunt players")
    if isinstance(st["chests_left"], dict):
        eq(st["chests_left"], h["chests_left"], "stats.chests_left")
    else:
        eq(st["chests_left"], sum(h["chests_left"].values()), "stats.chests_left (total)")
    eq(st["seq"], vx.leaderboard(c, "st")["seq"], "stats.seq vs leaderboard seq")
    eq(st["seq"], vx.digest(c, "st")[0], "stats.seq vs digest seq")
    check(c.req("GET", "/v1/hunts/nope/stats"), 404, "hunt_not_found")


@test
def position_updates():
    c, pay = setup("pos")
    pid, tok, _ = vx.new_player(c, "Walker")
    d0 = vx.digest(c, "pos")
    for x, y in ((12.5, 3.25), (0, 0), (63.999, 63.999), (1, 2)):
        r = c.req("POST", "/v1/hunts/pos/position", {"x": x, "y": y}, token=tok)
        check(r, 202, what="position inside the map")
    for x, y in ((64, 0), (0, 64), (-0.01, 5), (5, -1), (1e308, 1), (100000, 100000)):
        r = c.req("POST", "/v1/hunts/pos/position", {"x": x, "y": y}, token=tok)
        check(r, 400, "out_of_bounds", what="position (%s, %s)" % (x, y))
    eq(vx.digest(c, "pos"), d0, "positions are not durable events")
    check(c.req("POST", "/v1/hunts/pos/position", {"x": 1, "y": 1}), 401, "unauthorized", what="no token")


@test
def metrics_endpoint():
    c = srv().client()
    check(c.req("GET", "/healthz"), 200)
    r = c.req("GET", "/healthz")
    eq(r.body, {"status": "ok"}, "GET /healthz body")
    r = c.req("GET", "/metrics")
    check(r, 200)
    true(r.headers.get("content-type", "").startswith("text/plain"), "metrics content-type %r" % r.headers.get("content-type"))
    text = r.raw.decode("utf-8")
    samples = [l for l in text.splitlines() if l and not l.startswith("#")]
    true(len(samples) >= 5, "only %d metric samples" % len(samples))
    for l in samples:
        true(re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+]?([0-9.]+([eE][-+]?[0-9]+)?|NaN|\+Inf|-Inf)( [0-9]+)?$', l),
             "not a Prometheus sample line: %r" % l)
    # Every commit observes its batch's queue wait: the two histograms count alike (one
    # scrape; a commit under way may have its wait counted and not yet its time).
    def counts():
        text = c.req("GET", "/metrics").raw.decode()
        got = [re.search(r"(?m)^veltrix_log_%s_seconds_count\{\} (\d+)$" % n, text) for n in ("commit", "wait")]
        true(all(got), "/metrics has veltrix_log_commit_seconds and veltrix_log_wait_seconds")
        return [int(m.group(1)) for m in got]
    commits0, _ = counts()
    vx.new_player(c)
    commits, waits = counts()
    true(commits > commits0, "a durable write made no commit (%d -> %d)" % (commits0, commits))
    true(waits - commits in (0, 1), "%d commits but %d queue waits" % (commits, waits))


if __name__ == "__main__":
    vx.run_all()
