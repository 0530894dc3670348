#!/usr/bin/env python3
"""Black-box tests: hunt definitions (admin), public hunt view, codes and QR codes,
validation, entity_in_use, the admin key, map tiles, the seed commitment and its reveal
(API.md "Hunts", "Map tiles", "Fairness evidence")."""
import copy
import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test, short  # noqa: E402


def srv():
    return vx.shared()


def hunt_def(name="Veltrix.conf Lisbon"):
    return {
        "name": name,
        "starts_at": "2020-01-01T09:00:00.000Z", "ends_at": "2099-12-03T09:00:00.000Z",
        "map": {"width": 64, "height": 64},
        "codes": [{"id": "lobby-1", "points": 50, "x": 3, "y": 4},
                  {"id": "lobby-2", "points": 0, "x": 63, "y": 63},
                  {"id": "roof_3", "points": 1000000, "x": 0, "y": 0}],
        "items": [{"id": "key-red", "x": 10, "y": 12, "quantity": 25},
                  {"id": "torch", "x": 63, "y": 0, "quantity": 1}],
        "zones": [{"id": "atrium", "x": 0, "y": 0, "w": 8, "h": 8,
                   "chests": [{"id": "atrium-1", "points": 100, "loot": ["gem"], "requires": "key-red"},
                              {"id": "atrium-2", "points": 5, "loot": []}]},
                  {"id": "drops", "x": 8, "y": 8, "w": 8, "h": 8, "chests": [],
                   "chest_range": {"prefix": "drop-", "count": 1000, "points": 10, "loot": ["coin"]}}],
    }


def by_id(lst, what):
    true(isinstance(lst, list), "%s is not a list: %s" % (what, short(lst)))
    out = {}
    for x in lst:
        true(isinstance(x, dict) and isinstance(x.get("id"), str), "%s: element without id: %s" % (what, short(x)))
        out[x["id"]] = x
    return out


def contains(defn, got, path="hunt"):
    """Every field of the definition appears in the public view with the same value."""
    if isinstance(defn, dict):
        true(isinstance(got, dict), "%s: expected an object, got %s" % (path, short(got)))
        for k, v in defn.items():
            true(k in got, "%s.%s missing in GET (got %s)" % (path, k, short(got, 200)))
            contains(v, got[k], path + "." + k)
    elif isinstance(defn, list) and defn and all(isinstance(x, dict) and "id" in x for x in defn):
        g = by_id(got, path)
        eq(sorted(g), sorted(x["id"] for x in defn), path + " ids")
        for x in defn:
            contains(x, g[x["id"]], "%s[%s]" % (path, x["id"]))
    else:
        eq(got, defn, path)


def check_public_view(c, hunt, defn):
    r = c.req("GET", "/v1/hunts/" + hunt)
    check(r, 200)
    true("application/json" in r.headers.get("content-type", ""), "content-type %r" % r.headers.get("content-type"))
    contains(defn, r.body)
    for code in r.body["codes"]:
        extra = set(code) - {"id", "points", "x", "y"}
        true(not (extra & {"payload", "secret", "signature", "sig", "key"}),
             "public GET exposes code secrets: %s" % short(code))
    return r


# ---------------------------------------------------------------------------------------
@test
def put_create_then_update():
    c = srv().client()
    d = hunt_def()
    r = c.req("PUT", "/v1/hunts/lisbon", d, admin=True)
    check(r, 201, what="create")
    r = c.req("PUT", "/v1/hunts/lisbon", d, admin=True)
    check(r, 200, what="same definition again")
    d2 = hunt_def("Lisbon, renamed")
    d2["codes"].append({"id": "new-code", "points": 7, "x": 1, "y": 1})
    r = c.req("PUT", "/v1/hunts/lisbon", d2, admin=True)
    check(r, 200, what="update")
    check_public_view(c, "lisbon", d2)
    # another hunt id is another hunt
    r = c.req("PUT", "/v1/hunts/lisbon-2", d, admin=True)
    check(r, 201, what="second hunt")
    check_public_view(c, "lisbon-2", d)
    check_public_view(c, "lisbon", d2)


@test
def get_public_view():
    c = srv().client()
    d = hunt_def()
    vx.put_hunt(c, "pub", d)
    r = check_public_view(c, "pub", d)
    b = r.body
    eq(b.get("chests_left"), {"atrium": 2, "drops": 1000}, "chests_left")
    eq(b.get("items_left"), {"key-red": 25, "torch": 1}, "items_left")
    true("map_version" in b and b["map_version"] is None, "map_version should be null before a publish: %s"
         % short(b.get("map_version", "(absent)")))
    eq(b.get("players"), 0, "players")
    payloads = vx.codes_of(c, "pub")
    text = r.raw.decode("utf-8")
    for cid, p in payloads.items():
        true(p not in text, "public GET contains the payload of %s" % cid)
        longest = max(re.split(r"[^A-Za-z0-9_\-+/=]", p) + [""], key=len)
        if len(longest) >= 16:
            true(longest not in text, "public GET contains the signature part %r of %s" % (longest, cid))
    # public: no Authorization needed, and a player token works too
    pid, tok, _ = vx.new_player(c, "Viewer")
    check(c.req("GET", "/v1/hunts/pub", token=tok), 200, what="GET hunt with a player token")
    # players counts players with an event in the hunt
    check(vx.scan(c, "pub", tok, payloads["lobby-1"]), 200)
    eq(vx.get_hunt(c, "pub").get("players"), 1, "players after one scan")
    check(vx.collect(c, "pub", tok, "key-red"), 200)
    b = vx.get_hunt(c, "pub")
    eq(b.get("items_left"), {"key-red": 24, "torch": 1}, "items_left after a collect")
    eq(b.get("players"), 1, "players after a scan and a collect of one player")


@test
def admin_auth():
    col = vx.Collect()
    s = srv()
    c = s.client()
    vx.put_hunt(c, "auth", hunt_def())
    pid, tok, _ = vx.new_player(c, "NotAdmin")
    cases = [("PUT", "/v1/hunts/auth", hunt_def("hacked")),
             ("PUT", "/v1/hunts/auth-new", hunt_def("hacked")),
             ("GET", "/v1/hunts/auth/codes", None),
             ("GET", "/v1/hunts/auth/codes/lobby-1/qr.svg", None),
             ("PUT", "/v1/hunts/auth/tiles/0/0", b"tile"),
             ("POST", "/v1/hunts/auth/map/publish", {}),
             ("GET", "/v1/hunts/auth/digest", None)]
    cases = vx.without_tiles(cases)
    for m, p, body in cases:
        col.check(c.req(m, p, body), 401, "unauthorized", what="no Authorization")
        col.check(c.req(m, p, body, token=s.admin_key + "x"), 401, "unauthorized", what="wrong admin key")
        col.check(c.req(m, p, body, token=s.admin_key[:-1]), 401, "unauthorized", what="admin key prefix")
        col.check(c.req(m, p, body, headers={"Authorization": "Basic " + s.admin_key}), 401, "unauthorized",
                  what="admin key with the Basic scheme")
        col.check(c.req(m, p, body, token=tok), 403, "forbidden", what="player token on an admin endpoint")
    eq(vx.get_hunt(c, "auth").get("name"), "Veltrix.conf Lisbon", "name after refused updates")
    col.check(c.req("GET", "/v1/hunts/auth-new"), 404, "hunt_not_found", what="hunt refused at creation")
    eq(vx.get_hunt(c, "auth").get("map_version"), None, "map_version after refused publish")
    col.done()


BAD_DEFS = [
    ("code id uppercase", lambda d: d["codes"][0].update(id="Lobby-1")),
    ("code id empty", lambda d: d["codes"][0].update(id="")),
    ("code id 65 chars", lambda d: d["codes"][0].update(id="a" * 65)),
    ("code id with space", lambda d: d["codes"][0].update(id="a b")),
    ("code id with slash", lambda d: d["codes"][0].update(id="a/b")),
    ("code id with dot", lambda d: d["codes"][0].update(id="a.b")),
    ("code id non-ASCII", lambda d: d["codes"][0].update(id="café")),
    ("item id bad", lambda d: d["items"][0].update(id="Key!")),
    ("zone id bad", lambda d: d["zones"][0].update(id="at rium")),
    ("chest id bad", lambda d: d["zones"][0]["chests"][0].update(id="A1")),
    ("code points -1", lambda d: d["codes"][0].update(points=-1)),
    ("code points 1000001", lambda d: d["codes"][0].update(points=1000001)),
    ("code points 1.5", lambda d: d["codes"][0].update(points=1.5)),
    ("code points string", lambda d: d["codes"][0].update(points="50")),
    ("code points bool", lambda d: d["codes"][0].update(points=True)),
    ("code points null", lambda d: d["codes"][0].update(points=None)),
    ("chest points -5", lambda d: d["zones"][0]["chests"][0].update(points=-5)),
    ("chest points 1000001", lambda d: d["zones"][0]["chests"][0].update(points=1000001)),
    ("range points 1000001", lambda d: d["zones"][1]["chest_range"].update(points=1000001)),
    ("item quantity 0", lambda d: d["items"][0].update(quantity=0)),
    ("item quantity 1000001", lambda d: d["items"][0].update(quantity=1000001)),
    ("item quantity -1", lambda d: d["items"][0].update(quantity=-1)),
    ("map width 0", lambda d: d["map"].update(width=0)),
    ("map width 4097", lambda d: d["map"].update(width=4097)),
    ("map height 0", lambda d: d["map"].update(height=0)),
    ("map height -1", lambda d: d["map"].update(height=-1)),
    ("map height 1e9", lambda d: d["map"].update(height=1000000000)),
    ("map width string", lambda d: d["map"].update(width="64")),
    ("map missing", lambda d: d.pop("map")),
    ("map not an object", lambda d: d.update(map=[64, 64])),
    ("item x = width", lambda d: d["items"][0].update(x=64)),
    ("item y = -1", lambda d: d["items"][0].update(y=-1)),
    ("item x huge", lambda d: d["items"][0].update(x=10 ** 12)),
    ("code x = width", lambda d: d["codes"][0].update(x=64)),
    ("code y = height", lambda d: d["codes"][0].update(y=64)),
    ("duplicate code ids", lambda d: d["codes"].append(dict(d["codes"][0]))),
    ("duplicate item ids", lambda d: d["items"].append(dict(d["items"][0]))),
    ("duplicate zone ids", lambda d: d["zones"].append(copy.deepcopy(d["zones"][0]))),
    ("duplicate chest ids", lambda d: d["zones"][0]["chests"].append(dict(d["zones"][0]["chests"][0]))),
    ("name not a string", lambda d: d.update(name=5)),
    ("codes not a list", lambda d: d.update(codes={"id": "x"})),
    ("code not an object", lambda d: d["codes"].append("lobby-9")),
    ("code x string", lambda d: d["codes"][0].update(x="3")),
    ("code without id", lambda d: d["codes"][0].pop("id")),
    ("zone without id", lambda d: d["zones"][0].pop("id")),
    ("loot not a list", lambda d: d["zones"][0]["chests"][0].update(loot="gem")),
    ("loot element a number", lambda d: d["zones"][0]["chests"][0].update(loot=[1])),
    ("requires a number", lambda d: d["zones"][0]["chests"][0].update(requires=5)),
    ("starts_at not a time", lambda d: d.update(starts_at="tomorrow")),
    ("starts_at a number", lambda d: d.update(starts_at=1764579600000)),
    ("ends_at month 13", lambda d: d.update(ends_at="2026-13-01T09:00:00.000Z")),
    ("chest_range count 0", lambda d: d["zones"][1]["chest_range"].update(count=0)),
    ("chest_range count 10000001", lambda d: d["zones"][1]["chest_range"].update(count=10000001)),
    ("chest_range count string", lambda d: d["zones"][1]["chest_range"].update(count="5")),
    ("chest_range prefix uppercase", lambda d: d["zones"][1]["chest_range"].update(prefix="Drop-")),
    ("chest_range not an object", lambda d: d["zones"][1].update(chest_range=[1, 2])),
]


@test
def validation_rejected_and_nothing_changes():
    c = srv().client()
    base = hunt_def()
    vx.put_hunt(c, "valid", base)
    before = vx.get_hunt(c, "valid")
    problems = []
    for what, f in BAD_DEFS:
        d = copy.deepcopy(base)
        f(d)
        for hunt in ("valid", "valid-new"):
            r = c.req("PUT", "/v1/hunts/" + hunt, d, admin=True)
            if r.status != 400 or r.code() != "invalid_request":
                problems.append("%s on %s: expected 400 invalid_request, got %d %s"
                                % (what, hunt, r.status, short(r.body, 150)))
        after = c.req("GET", "/v1/hunts/valid")
        if after.status != 200 or after.body != before:
            problems.append("%s: GET /v1/hunts/valid changed: %s" % (what, short(after.body, 200)))
            before = after.body
        r = c.req("GET", "/v1/hunts/valid-new")
        if r.status != 404 or r.code() != "hunt_not_found":
            problems.append("%s: GET /v1/hunts/valid-new: expected 404 hunt_not_found, got %d" % (what, r.status))
            c.req("PUT", "/v1/hunts/valid-new", base, admin=True)  # nothing to undo: keep going
    for body in (b"[]", b"null", b'"hunt"', b"42", b"{}"):
        r = c.req("PUT", "/v1/hunts/valid", body, admin=True)
        if r.status != 400:
            problems.append("PUT body %s: expected 400, got %d %s" % (body, r.status, short(r.body, 150)))
    true(vx.get_hunt(c, "valid") == before, "hunt changed after the invalid bodies")
    true(not problems, "%d of %d invalid definitions mishandled: %s" % (
        len(problems), len(BAD_DEFS) * 2, " || ".join(problems[:25])))
    vx.note("test_hunts: %d invalid definitions tried" % (len(BAD_DEFS) * 2 + 5))


@test
def boundaries_accepted():
    c = srv().client()
    d = {"name": "b", "map": {"width": 4096, "height": 1},
         "codes": [{"id": "a" * 64, "points": 1000000, "x": 4095, "y": 0},
                   {"id": "z_9-", "points": 0, "x": 0, "y": 0}],
         "items": [{"id": "i1", "x": 4095, "y": 0, "quantity": 1000000},
                   {"id": "i2", "x": 0, "y": 0, "quantity": 1}],
         "zones": [{"id": "big", "x": 0, "y": 0, "w": 4096, "h": 1, "chests": [],
                    "chest_range": {"prefix": "r-", "count": 10000000, "points": 1000000, "loot": ["coin"]}}]}
    r = c.req("PUT", "/v1/hunts/" + "h" * 64, d, admin=True)
    check(r, 201, what="definition at every upper/lower bound")
    b = vx.get_hunt(c, "h" * 64)
    eq(b.get("chests_left"), {"big": 10000000}, "chests_left of a 10M chest range")
    eq(b.get("items_left"), {"i1": 1000000, "i2": 1}, "items_left")
    r = c.req("PUT", "/v1/hunts/" + "h" * 65, d, admin=True)
    check(r, 400, "invalid_id", what="hunt id of 65 chars")


@test
def unknown_hunt():
    col = vx.Collect()
    s = srv()
    c = s.client()
    pid, tok, _ = vx.new_player(c, "Lost")
    cases = [("GET", "/v1/hunts/nope", None, None),
             ("GET", "/v1/hunts/nope/codes", None, "admin"),
             ("GET", "/v1/hunts/nope/codes/c1/qr.svg", None, "admin"),
             ("GET", "/v1/hunts/nope/leaderboard", None, None),
             ("GET", "/v1/hunts/nope/stats", None, None),
             ("GET", "/v1/hunts/nope/me", None, tok),
             ("POST", "/v1/hunts/nope/scans", {"code": "x"}, tok),
             ("POST", "/v1/hunts/nope/items/i/collect", None, tok),
             ("POST", "/v1/hunts/nope/zones/z/open", {}, tok),
             ("POST", "/v1/hunts/nope/position", {"x": 1, "y": 1}, tok),
             ("POST", "/v1/hunts/nope/map/publish", {}, "admin"),
             ("GET", "/v1/hunts/nope/digest", None, "admin")]
    cases = vx.without_tiles(cases)
    for m, p, body, t in cases:
        r = c.req(m, p, body, token=(s.admin_key if t == "admin" else t))
        col.check(r, 404, "hunt_not_found")
    col.done()


@test
def invalid_ids_in_path():
    s = srv()
    c = s.client()
    vx.put_hunt(c, "ids", hunt_def())
    bad = ["UPPER", "a.b", "a%20b", "x" * 65, "caf%C3%A9", "a+b", "a%00b", "a:b", "a~b", "a*b", "%41bc"]
    for b in bad:
        for m, p, body in [("GET", "/v1/hunts/%s" % b, None),
                           ("PUT", "/v1/hunts/%s" % b, hunt_def()),
                           ("GET", "/v1/hunts/%s/codes" % b, None),
                           ("GET", "/v1/hunts/ids/codes/%s/qr.svg" % b, None),
                           ("GET", "/v1/hunts/%s/leaderboard" % b, None)]:
            r = c.req(m, p, body, admin=True)
            check(r, 400, "invalid_id", what="bad id %r" % b)
    eq(vx.get_hunt(c, "ids")["name"], "Veltrix.conf Lisbon", "hunt unchanged")


@test
def codes_with_payloads():
    c = srv().client()
    d = hunt_def()
    vx.put_hunt(c, "codes", d)
    r = c.req("GET", "/v1/hunts/codes/codes", admin=True)
    check(r, 200)
    true(isinstance(r.body, dict) and isinstance(r.body.get("codes"), list), "codes list: %s" % short(r.body))
    got = by_id(r.body["codes"], "codes")
    eq(sorted(got), sorted(x["id"] for x in d["codes"]), "code ids")
    for x in d["codes"]:
        g = got[x["id"]]
        for k in ("points", "x", "y"):
            eq(g.get(k), x[k], "codes[%s].%s" % (x["id"], k))
        p = g.get("payload")
        true(isinstance(p, str) and len(p) >= 16, "payload of %s: %r" % (x["id"], p))
        true(p != x["id"], "payload equals the code id")
        true(all(32 < ord(ch) < 127 for ch in p), "payload of %s is not printable ASCII: %r" % (x["id"], p))
    payloads = [g["payload"] for g in got.values()]
    eq(len(set(payloads)), len(payloads), "distinct payloads")
    # another hunt with the same code ids has other payloads
    vx.put_hunt(c, "codes-2", d)
    other = vx.codes_of(c, "codes-2")
    for cid, p in other.items():
        true(p != got[cid]["payload"], "hunts codes and codes-2 share the payload of %s" % cid)


@test
def qr_svg():
    s = srv()
    c = s.client()
    vx.put_hunt(c, "qr", hunt_def())
    for cid in ("lobby-1", "roof_3"):
        r = c.req("GET", "/v1/hunts/qr/codes/%s/qr.svg" % cid, admin=True)
        check(r, 200)
        ct = r.headers.get("content-type", "")
        true(ct.split(";")[0].strip() == "image/svg+xml", "qr.svg content-type %r" % ct)
        body = r.raw.lstrip()
        true(body.startswith(b"<?xml") or body.startswith(b"<svg"), "qr.svg body starts with %r" % body[:40])
        true(b"<svg" in body and b"</svg>" in body, "qr.svg is not a complete SVG document")
        true(len(body) > 200, "qr.svg suspiciously small (%d bytes)" % len(body))
    a = c.req("GET", "/v1/hunts/qr/codes/lobby-1/qr.svg", admin=True).raw
    b = c.req("GET", "/v1/hunts/qr/codes/roof_3/qr.svg", admin=True).raw
    true(a != b, "two codes have the same QR svg")
    r = c.req("GET", "/v1/hunts/qr/codes/nope/qr.svg", admin=True)
    check(r, 404, what="qr.svg of an unknown code")


@test
def entity_in_use():
    c = srv().client()
    d = {"name": "eu", "map": {"width": 16, "height": 16},
         "codes": [{"id": "c1", "points": 10, "x": 1, "y": 1}, {"id": "c2", "points": 20, "x": 2, "y": 2}],
         "items": [{"id": "i1", "x": 1, "y": 1, "quantity": 3}, {"id": "i2", "x": 2, "y": 2, "quantity": 3}],
         "zones": [{"id": "z", "x": 0, "y": 0, "w": 4, "h": 4,
                    "chests": [{"id": "k1", "points": 100, "loot": ["gem"]},
                               {"id": "k2", "points": 100, "loot": ["gem"]}]},
                   {"id": "y", "x": 4, "y": 4, "w": 4, "h": 4,
                    "chests": [{"id": "k3", "points": 1, "loot": []}]}]}
    vx.put_hunt(c, "eu", d, status=201)
    pay = vx.codes_of(c, "eu")
    pid, tok, _ = vx.new_player(c, "User")
    check(vx.scan(c, "eu", tok, pay["c1"]), 200)
    check(vx.collect(c, "eu", tok, "i1"), 200)
    r = vx.open_zone(c, "eu", tok, "z")
    check(r, 200)
    opened = r.body["chest"]
    true(opened in ("k1", "k2"), "opened chest %r" % opened)
    other = "k2" if opened == "k1" else "k1"
    me_before = vx.me(c, "eu", tok)
    before = vx.get_hunt(c, "eu")

    def mutated(f):
        x = copy.deepcopy(d)
        f(x)
        return x
    in_use = [
        ("remove scanned code c1", lambda x: x.update(codes=[x["codes"][1]])),
        ("change points of scanned code c1", lambda x: x["codes"][0].update(points=11)),
        ("remove collected item i1", lambda x: x.update(items=[x["items"][1]])),
        ("remove opened chest", lambda x: x["zones"][0].update(
            chests=[ch for ch in x["zones"][0]["chests"] if ch["id"] != opened])),
        ("change points of the opened chest", lambda x: [ch.update(points=99) for ch in x["zones"][0]["chests"]
                                                          if ch["id"] == opened]),
        ("remove the zone of the opened chest", lambda x: x.update(zones=[x["zones"][1]])),
    ]
    for what, f in in_use:
        r = c.req("PUT", "/v1/hunts/eu", mutated(f), admin=True)
        check(r, 409, "entity_in_use", what=what)
        eq(vx.get_hunt(c, "eu"), before, "GET hunt after refused update (%s)" % what)
    # unused entities can go; progress is kept
    d2 = mutated(lambda x: (x.update(codes=[x["codes"][0], {"id": "c3", "points": 5, "x": 3, "y": 3}]),
                            x.update(items=[x["items"][0]]),
                            x["zones"][0].update(chests=[ch for ch in x["zones"][0]["chests"] if ch["id"] != other]),
                            x.update(zones=[x["zones"][0]])))
    r = c.req("PUT", "/v1/hunts/eu", d2, admin=True)
    check(r, 200, what="update removing only unused entities")
    check_public_view(c, "eu", d2)
    eq(vx.me(c, "eu", tok), me_before, "/me after the update")
    b = vx.get_hunt(c, "eu")
    eq(b.get("chests_left"), {"z": 0}, "chests_left after the update")
    eq(b.get("items_left"), {"i1": 2}, "items_left after the update")
    pay = vx.codes_of(c, "eu")
    r = vx.scan(c, "eu", tok, pay["c3"])
    check(r, 200, what="scan a code added by the update")
    eq(r.body.get("score"), me_before["score"] + 5, "score after scanning the new code")


@test
def definitions_survive_restart():
    s = vx.Server().start()
    c = s.client()
    d = hunt_def()
    vx.put_hunt(c, "keep", d, status=201)
    pay = vx.codes_of(c, "keep")
    before = vx.get_hunt(c, "keep")
    c.close()
    s.restart()
    c = s.client()
    eq(vx.get_hunt(c, "keep"), before, "GET hunt after restart")
    eq(vx.codes_of(c, "keep"), pay, "payloads after restart")
    check(c.req("PUT", "/v1/hunts/keep", d, admin=True), 200, what="PUT after restart updates")


def hidden_def():
    d = hunt_def()
    d["codes"] = [{"id": "shown", "points": 5, "x": 3, "y": 4},
                  {"id": "secret", "points": 50, "x": 10, "y": 20, "hidden": True},
                  {"id": "plain", "points": 1, "x": 1, "y": 2, "hidden": False}]
    return d


def check_hidden(c, hunt, hidden, what, view=None):
    """The public view leaves out x/y of the hidden codes only; the admin list has all."""
    d = {x["id"]: x for x in hidden_def()["codes"]}
    pub = by_id((view or vx.get_hunt(c, hunt))["codes"], "%s: public codes" % what)
    eq(sorted(pub), sorted(d), "%s: public code ids" % what)
    for cid, x in d.items():
        if cid in hidden:
            true("x" not in pub[cid] and "y" not in pub[cid],
                 "%s: public view shows where hidden code %s is: %s" % (what, cid, short(pub[cid])))
        else:
            eq((pub[cid].get("x"), pub[cid].get("y")), (x["x"], x["y"]), "%s: public x, y of %s" % (what, cid))
        eq(pub[cid].get("points"), x["points"], "%s: public points of %s" % (what, cid))
    r = c.req("GET", "/v1/hunts/%s/codes" % hunt, admin=True)
    check(r, 200)
    adm = by_id(r.body["codes"], "%s: admin codes" % what)
    for cid, x in d.items():
        eq((adm[cid].get("x"), adm[cid].get("y")), (x["x"], x["y"]), "%s: admin x, y of %s" % (what, cid))
        eq(adm[cid].get("hidden", False), cid in hidden, "%s: admin hidden of %s" % (what, cid))


@test
def hidden_codes():
    c = srv().client()
    r = c.req("PUT", "/v1/hunts/hide", hidden_def(), admin=True)
    check(r, 201)
    check_hidden(c, "hide", {"secret"}, "PUT answer", view=r.body)
    check_hidden(c, "hide", {"secret"}, "GET")
    before = vx.get_hunt(c, "hide")
    for v in ("yes", "true", 1, 0, None, [], {}):
        d = hidden_def()
        d["codes"][0]["hidden"] = v
        r = c.req("PUT", "/v1/hunts/hide", d, admin=True)
        check(r, 400, "invalid_request", what="hidden=%r" % (v,))
        true("codes[0].hidden" in r.body["error"]["message"], "the message names the field: %s" % short(r.body))
    eq(vx.get_hunt(c, "hide"), before, "hunt after the refused definitions")
    # hiding a code that was scanned changes nothing a player did: allowed
    _, tok, _ = vx.new_player(c, "Finder")
    check(vx.scan(c, "hide", tok, vx.codes_of(c, "hide")["shown"]), 200)
    d = hidden_def()
    d["codes"][0]["hidden"] = True
    vx.put_hunt(c, "hide", d, status=200)
    pub = by_id(vx.get_hunt(c, "hide")["codes"], "codes")
    true("x" not in pub["shown"] and "y" not in pub["shown"], "a code hidden by an update: %s" % short(pub["shown"]))
    vx.put_hunt(c, "hide", hidden_def(), status=200)
    check_hidden(c, "hide", {"secret"}, "shown again")


@test
def hidden_codes_survive_restart():
    s = vx.Server(args=["--snapshot-every", "1"]).start()
    c = s.client()
    vx.put_hunt(c, "hide", hidden_def(), status=201)
    for _ in range(400):  # bounded wait for the snapshot of the definition
        if vx.metric(c, "veltrix_snapshots_total") >= 1:
            break
        __import__("time").sleep(0.05)
    true(vx.metric(c, "veltrix_snapshots_total") >= 1, "no snapshot taken")
    c.close()
    s.restart()
    true("(1 from a snapshot)" in s.stderr_text(), "restart did not use the snapshot")
    check_hidden(s.client(), "hide", {"secret"}, "after a restart from a snapshot")
    s.args = ["--ignore-snapshots", "--snapshot-every", "0"]
    s.restart()
    check_hidden(s.client(), "hide", {"secret"}, "after a restart from the log")


HEX64 = re.compile(r"[0-9a-f]{64}")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t * 1000 % 1000)


def commitment_of(view, what):
    cm = view.get("seed_commitment")
    true(isinstance(cm, str) and HEX64.fullmatch(cm), "%s: seed_commitment should be 64 lowercase hex "
         "characters: %s" % (what, short(cm)))
    return cm


def revealed(view, cm, what):
    seed = view.get("seed")
    true(isinstance(seed, str) and HEX64.fullmatch(seed), "%s: seed should be 64 lowercase hex "
         "characters: %s" % (what, short(seed)))
    eq(hashlib.sha256(bytes.fromhex(seed)).hexdigest(), cm, "%s: SHA-256(seed) vs seed_commitment" % what)
    return seed


@test
def seed_commitment_and_reveal():
    """API.md "Fairness evidence": seed_commitment (SHA-256 of a 32-byte secret seed) is
    public from creation, kept by updates and restarts (snapshots too); the seed shows
    only once ends_at has passed, never for a hunt without ends_at, and nowhere else.
    Answers count as "before the end" only when they arrived before ends_at."""
    s = vx.Server(args=["--snapshot-every", "3"]).start()
    c = s.client()
    end = time.time() + 5
    seen = []  # (answer bytes, arrived before ends_at): none of those may hold the seed

    def keep(r):
        seen.append((r.raw, time.time() < end))
        return r

    d = hunt_def("Fair")
    d.update(starts_at="2020-01-01T00:00:00.000Z", ends_at=iso(end), seed="f" * 64)
    r = keep(c.req("PUT", "/v1/hunts/fair", d, admin=True))
    check(r, 201, what="create")
    cm = commitment_of(r.body, "PUT answer")
    r = keep(c.req("GET", "/v1/hunts/fair"))
    check(r, 200)
    eq(commitment_of(r.body, "GET"), cm, "GET seed_commitment")
    if seen[-1][1]:
        true("seed" not in r.body, "GET shows a seed before ends_at (the definition's own 'seed' "
             "key included): %s" % short(r.body.get("seed")))
    # play a little (a snapshot every 3 events), update, look at everything
    pay = vx.codes_of(c, "fair")
    pid, tok, _ = vx.new_player(c, "Fair player")
    check(keep(vx.collect(c, "fair", tok, "key-red")), 200)
    for zone in ("atrium", "drops", "drops", "atrium"):
        check(keep(vx.open_zone(c, "fair", tok, zone)), (200, 404))
    check(keep(vx.scan(c, "fair", tok, pay["lobby-1"])), 200)
    d2 = dict(d, name="Fair, renamed")
    r = keep(c.req("PUT", "/v1/hunts/fair", d2, admin=True))
    check(r, 200, what="update")
    eq(commitment_of(r.body, "PUT update answer"), cm, "an update keeps the seed_commitment")
    for path in ("/v1/hunts/fair/stats", "/v1/hunts/fair/leaderboard", "/v1/hunts/fair/me",
                 "/metrics"):
        keep(c.req("GET", path, token=tok))
    for path in ("/v1/hunts/fair/codes", "/v1/hunts/fair/digest"):
        keep(c.req("GET", path, admin=True))
    keep(c.req("POST", "/v1/hunts/fair/zones/nowhere/open", {}, token=tok))
    # a hunt without ends_at, and one created already ended: other seeds
    d3 = hunt_def("Endless")
    d3.pop("ends_at")
    cm3 = commitment_of(vx.put_hunt(c, "endless", d3, status=201).body, "endless PUT")
    d4 = dict(hunt_def("Over"), starts_at="2020-01-01T00:00:00.000Z", ends_at="2020-01-02T00:00:00.000Z")
    over = vx.put_hunt(c, "over", d4, status=201).body
    cm4 = commitment_of(over, "ended hunt")
    seed4 = revealed(over, cm4, "a hunt created after its ends_at")
    true(len({cm, cm3, cm4}) == 3, "two hunts share a seed_commitment: %s" % [cm, cm3, cm4])
    # restart (from snapshot + log): same commitment
    c.close()
    s.restart()
    c = s.client()
    r = keep(c.req("GET", "/v1/hunts/fair"))
    eq(commitment_of(r.body, "GET after restart"), cm, "seed_commitment after a restart")
    if seen[-1][1]:
        true("seed" not in r.body, "seed shown after a restart before ends_at")
    # after ends_at (a bounded wait; nothing here is timed)
    while time.time() <= end + 0.05:
        time.sleep(0.05)
    b = vx.get_hunt(c, "fair")
    seed = revealed(b, cm, "GET after ends_at")
    eq(b.get("name"), "Fair, renamed", "the definition after the end")
    for raw, before in seen:
        true(not before or seed.encode() not in raw, "the seed appeared before ends_at in %s" % short(raw))
    for path, admin in (("/v1/hunts/fair/stats", False), ("/v1/hunts/fair/codes", True),
                        ("/v1/hunts/fair/me", False), ("/metrics", False)):
        raw = c.req("GET", path, token=None if admin else tok, admin=admin).raw
        true(seed.encode() not in raw, "the seed appears in GET %s" % path)
    check(vx.open_zone(c, "fair", tok, "drops"), 403, "hunt_not_active")
    # an update after the end is refused (the seed is public: reopened, draws could be
    # predicted); a restart keeps commitment and seed; endless never shows one
    check(c.req("PUT", "/v1/hunts/fair", d2, admin=True), 409, "hunt_ended")
    c.close()
    s.restart()
    c = s.client()
    b = vx.get_hunt(c, "fair")
    eq((b.get("seed_commitment"), b.get("seed")), (cm, seed), "commitment and seed after a restart")
    b = vx.get_hunt(c, "endless")
    eq(commitment_of(b, "endless after restart"), cm3, "endless seed_commitment after a restart")
    true("seed" not in b, "a hunt without ends_at shows a seed")
    eq(vx.get_hunt(c, "over").get("seed"), seed4, "the ended hunt's seed after a restart")


def find_key(text):
    m = re.search(r"admin[ _-]?key[^:=\n]*[:=]\s*[\"']?([A-Za-z0-9_\-+/=.~]{8,})", text, re.I)
    return m.group(1) if m else None


def files_containing(root, needle):
    hits = []
    for dp, _, fns in os.walk(root):
        for fn in fns:
            if fn.startswith("vx-std"):
                continue
            try:
                with open(os.path.join(dp, fn), "rb") as f:
                    if needle in f.read():
                        hits.append(fn)
            except OSError:
                pass
    return hits


@test
def generated_admin_key():
    s = vx.Server(admin_key=None).start()
    err = s.stderr_text()
    key = find_key(err)
    if key is None:
        k2 = find_key(s.stdout_text())
        raise AssertionError("no 'admin key: KEY' line on stderr%s; stderr: %s" % (
            " (it is on stdout: %s)" % k2 if k2 else "", short(err, 400)))
    true(len(key) >= 16, "generated admin key %r is shorter than 16 characters" % key)
    s.admin_key = key
    c = s.client()
    check(c.req("PUT", "/v1/hunts/gen", hunt_def(), admin=True), 201, what="PUT with the printed admin key")
    check(c.req("PUT", "/v1/hunts/gen", hunt_def(), token=key + "x"), 401, "unauthorized", what="wrong key")
    true(files_containing(s.data, key.encode()), "the generated key is not stored in the data directory")
    c.close()
    n_logs = len(s.logs)
    s.restart()
    c = s.client()
    check(c.req("PUT", "/v1/hunts/gen", hunt_def(), admin=True), 200, what="the same key after a restart")
    with open(s.logs[n_logs], "rb") as f:
        err2 = f.read().decode("utf-8", "replace")
    k2 = find_key(err2)
    true(k2 is None or k2 == key, "after restart the server printed another key %r (first %r)" % (k2, key))
    # a second fresh data dir gets a different key
    s2 = vx.Server(admin_key=None).start()
    k3 = find_key(s2.stderr_text())
    true(k3 is not None and k3 != key, "two data directories got the same generated key (%r)" % k3)
    s2.stop()


@test
def admin_key_from_environment():
    s = vx.Server(admin_key=None, env={"VELTRIX_ADMIN_KEY": "env-admin-key-0123456789"}).start()
    c = s.client()
    check(c.req("PUT", "/v1/hunts/envk", hunt_def(), token="env-admin-key-0123456789"), 201,
          what="PUT with VELTRIX_ADMIN_KEY")
    check(c.req("PUT", "/v1/hunts/envk", hunt_def(), token=vx.ADMIN_KEY), 401, "unauthorized",
          what="another key when VELTRIX_ADMIN_KEY is set")


@test
def map_tiles_publish_and_versions():
    vx.skip_unless_tiles()
    s = srv()
    c = s.client()
    d = {"name": "tiles", "map": {"width": 4, "height": 3}, "codes": [], "items": [], "zones": []}
    vx.put_hunt(c, "tl", d, status=201)
    t00a = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    r = c.req("PUT", "/v1/hunts/tl/tiles/0/0", t00a, admin=True, headers={"Content-Type": "image/png"})
    check(r, 204, what="stage tile 0/0")
    check(c.req("GET", "/tiles/tl/0/0"), 404, "tile_not_found", what="tile before the first publish")
    eq(vx.get_hunt(c, "tl").get("map_version"), None, "map_version before publish")
    r = c.req("POST", "/v1/hunts/tl/map/publish", {}, admin=True)
    check(r, 200, what="publish 1")
    eq(r.body.get("version"), 1, "first publish")
    eq(vx.get_hunt(c, "tl").get("map_version"), 1, "map_version after publish")
    r = c.req("GET", "/tiles/tl/0/0")
    check(r, 200)
    eq(r.raw, t00a, "tile bytes")
    eq(r.headers.get("content-type"), "image/png", "tile content-type")
    eq(r.headers.get("x-map-version"), "1", "X-Map-Version")
    eq(r.headers.get("cache-control"), "public, max-age=5", "Cache-Control of the current version")
    etag1 = r.headers.get("etag")
    true(etag1, "no ETag")
    r = c.req("GET", "/tiles/tl/0/0", headers={"If-None-Match": etag1})
    check(r, 304, what="If-None-Match with the ETag")
    eq(r.raw, b"", "304 body")
    check(c.req("GET", "/tiles/tl/1/1"), 404, "tile_not_found", what="tile never uploaded")
    # stage a new version: players do not see it until publish
    t00b = b"RIFF\x00\x00\x00\x00WEBPVP8 new-tile" * 10
    check(c.req("PUT", "/v1/hunts/tl/tiles/0/0", t00b, admin=True, headers={"Content-Type": "image/webp"}), 204)
    t11 = b"tile-1-1" * 50
    check(c.req("PUT", "/v1/hunts/tl/tiles/1/1", t11, admin=True, headers={"Content-Type": "image/png"}), 204)
    r = c.req("GET", "/tiles/tl/0/0")
    eq(r.raw, t00a, "current tile before the second publish")
    check(c.req("GET", "/tiles/tl/1/1"), 404, "tile_not_found", what="staged tile before publish")
    r = c.req("POST", "/v1/hunts/tl/map/publish", b"", admin=True)
    check(r, 200, what="publish 2 (empty body)")
    eq(r.body.get("version"), 2, "second publish")
    r = c.req("GET", "/tiles/tl/0/0")
    check(r, 200)
    eq(r.raw, t00b, "tile 0/0 of version 2")
    eq(r.headers.get("content-type"), "image/webp", "content-type of version 2")
    eq(r.headers.get("x-map-version"), "2", "X-Map-Version 2")
    true(r.headers.get("etag") and r.headers.get("etag") != etag1, "ETag did not change with the content")
    check(c.req("GET", "/tiles/tl/0/0", headers={"If-None-Match": etag1}), 200, what="stale ETag")
    r = c.req("GET", "/tiles/tl/1/1")
    check(r, 200)
    eq(r.raw, t11, "tile 1/1")
    r = c.req("GET", "/tiles/tl/0/0?v=1")
    check(r, 200, what="old version by ?v=1")
    eq(r.raw, t00a, "tile of version 1")
    eq(r.headers.get("content-type"), "image/png", "content-type of version 1")
    eq(r.headers.get("cache-control"), "public, max-age=31536000, immutable", "Cache-Control of ?v=")
    check(c.req("GET", "/tiles/tl/1/1?v=1"), 404, "tile_not_found", what="tile absent in version 1")
    # the draft carries over: version 3 only changes nothing, everything is still there
    r = c.req("POST", "/v1/hunts/tl/map/publish", {}, admin=True)
    eq(r.body.get("version"), 3, "third publish")
    for v, path, want in ((3, "0/0", t00b), (3, "1/1", t11), (2, "1/1", t11), (1, "0/0", t00a)):
        r = c.req("GET", "/tiles/tl/%s?v=%d" % (path, v))
        check(r, 200, what="tile %s of version %d" % (path, v))
        eq(r.raw, want, "tile %s of version %d" % (path, v))
    # bounds
    for x, y in ((4, 0), (0, 3), (100, 100)):
        check(c.req("PUT", "/v1/hunts/tl/tiles/%d/%d" % (x, y), b"x", admin=True), 400, "out_of_bounds",
              what="tile outside the 4x3 map")
    check(c.req("PUT", "/v1/hunts/tl/tiles/-1/0", b"x", admin=True), 400, what="tile at x=-1")
    check(c.req("GET", "/tiles/tl/9/9"), (400, 404), what="GET tile outside the map")
    # size limit 1 MiB
    check(c.req("PUT", "/v1/hunts/tl/tiles/2/2", b"\x01" * (1 << 20), admin=True,
                headers={"Content-Type": "application/octet-stream"}), 204, what="1 MiB tile")
    check(c.req("PUT", "/v1/hunts/tl/tiles/2/2", b"\x01" * ((1 << 20) + 1), admin=True,
                headers={"Content-Type": "application/octet-stream"}), 413, "payload_too_large",
          what="tile of 1 MiB + 1")
    eq(vx.get_hunt(c, "tl").get("map_version"), 3, "map_version")


@test
def large_definition():
    c = srv().client()
    n = 20000
    d = {"name": "large", "map": {"width": 4096, "height": 4096},
         "codes": [{"id": "code-%05d" % i, "points": i % 1000, "x": i % 4096, "y": i // 4096} for i in range(n)],
         "items": [], "zones": []}
    body = json.dumps(d).encode()
    true(len(body) > 64 * 1024, "test definition too small")
    r = c.req("PUT", "/v1/hunts/large", body, admin=True)
    check(r, 201, what="a %d-byte definition (limit 16 MiB)" % len(body))
    got = vx.codes_of(c, "large")
    eq(len(got), n, "number of codes")
    pad = b" " * (16 * 1024 * 1024 + 1 - len(body))
    r = c.req("PUT", "/v1/hunts/large-2", body[:-1] + pad + b"}", admin=True)
    check(r, 413, "payload_too_large", what="a definition of 16 MiB + 1")
    check(c.req("GET", "/v1/hunts/large-2"), 404, "hunt_not_found")


@test
def demo_hunt():
    s = vx.Server(demo=True).start()
    c = s.client()
    b = vx.get_hunt(c, "demo")
    for k in ("codes", "items", "zones"):
        true(isinstance(b.get(k), list) and b[k], "demo hunt has no %s: %s" % (k, short(b.get(k))))
    true(any(z.get("chests") or z.get("chest_range") for z in b["zones"]), "demo zones have no chests")
    commitment_of(b, "demo hunt")
    pay = vx.codes_of(c, "demo")
    pid, tok, _ = vx.new_player(c, "Demo")
    cid = sorted(pay)[0]
    r = vx.scan(c, "demo", tok, pay[cid])
    check(r, 200, what="scan a demo code")
    before = vx.get_hunt(c, "demo")
    c.close()
    s.restart()  # --demo again: the existing demo hunt is kept, not recreated
    c = s.client()
    eq(vx.get_hunt(c, "demo"), before, "demo hunt after a restart with --demo")
    eq(vx.me(c, "demo", tok)["scanned"], [cid], "progress in the demo hunt after a restart")
    if vx.TILES:
        true(b.get("map_version") is not None, "demo hunt has no published map (map_version null)")
        r = c.req("GET", "/tiles/demo/0/0")
        check(r, 200, what="a tile of the demo map")


@test
def ended_hunt_cannot_be_reopened():
    """Once a hunt's seed is revealed (ends_at passed), an update could reopen it with a
    known seed: every update is refused (409 hunt_ended) and changes nothing."""
    c = vx.shared().client()
    d = hunt_def()
    d.update(starts_at="2020-01-01T00:00:00.000Z", ends_at="2020-01-02T00:00:00.000Z")
    check(c.req("PUT", "/v1/hunts/ended1", d, admin=True), 201)
    before = vx.get_hunt(c, "ended1")
    true("seed" in before, "the seed of an ended hunt is revealed")
    d["ends_at"] = "2099-01-01T00:00:00.000Z"
    check(c.req("PUT", "/v1/hunts/ended1", d, admin=True), 409, "hunt_ended")
    eq(vx.get_hunt(c, "ended1")["ends_at"], before["ends_at"], "ends_at unchanged")


if __name__ == "__main__":
    vx.run_all()
