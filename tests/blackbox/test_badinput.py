#!/usr/bin/env python3
"""Black-box tests: bad input on every endpoint (API.md "Conventions"). Each test is a
batch of bad requests; every answer must be the documented 4xx (never a 5xx), and after
each batch the server still serves and its state is unchanged."""
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test, short  # noqa: E402

TRIED = [0]
_env = {}


def game_def():
    return {"name": "bad input", "map": {"width": 16, "height": 16},
            "codes": [{"id": "lobby-1", "points": 50, "x": 3, "y": 4},
                      {"id": "lobby-2", "points": 80, "x": 5, "y": 4}],
            "items": [{"id": "torch", "x": 1, "y": 1, "quantity": 10}],
            "zones": [{"id": "bare", "x": 0, "y": 0, "w": 4, "h": 4, "chests": []},
                      {"id": "drops", "x": 4, "y": 4, "w": 4, "h": 4, "chests": [],
                       "chest_range": {"prefix": "d-", "count": 100, "points": 1, "loot": []}}]}


def env():
    """The shared server with hunt 'bi' and player P who scanned lobby-1 and collected
    torch; and a snapshot of the state that bad input must not change."""
    s = vx.shared()
    if _env.get("server") is not s:
        c = s.client()
        vx.put_hunt(c, "bi", game_def())
        pay = vx.codes_of(c, "bi")
        pid, tok, rt = vx.new_player(c, "Victim")
        check(vx.scan(c, "bi", tok, pay["lobby-1"]), 200)
        check(vx.collect(c, "bi", tok, "torch"), 200)
        # a published tile, when tiles work (test_hunts checks them)
        r1 = c.req("PUT", "/v1/hunts/bi/tiles/0/0", b"tile-bytes", admin=True, headers={"Content-Type": "image/png"})
        r2 = c.req("POST", "/v1/hunts/bi/map/publish", {}, admin=True)
        if (r1.status, r2.status) != (204, 200):
            vx.note("test_badinput: could not publish a tile (%d, %d): tile state not covered" % (r1.status, r2.status))
        opid, otok, _ = vx.new_player(c, "Other")
        _env.clear()
        _env.update(server=s, c=c, pay=pay, pid=pid, tok=tok, rt=rt, otok=otok)
        _env["snap"] = snapshot()
    return _env


def snapshot():
    e, c = _env, _env["c"]
    return {"hunt": vx.get_hunt(c, "bi"),
            "player": c.ok("GET", "/v1/players/me", token=e["tok"]),
            "me": vx.me(c, "bi", e["tok"]),
            "leaderboard": vx.leaderboard(c, "bi", "?limit=100"),
            "digest": vx.digest(c, "bi"),
            "tile": c.req("GET", "/tiles/bi/0/0").raw}


class Batch:
    def __init__(self, name):
        self.name = name
        self.e = env()
        self.s = self.e["server"]
        self.c = self.s.client()
        self.n = 0
        self.problems = []

    def _count(self):
        self.n += 1
        TRIED[0] += 1

    def req(self, method, path, body=None, token=None, headers=None, status=400, code=None, admin=False,
            what=""):
        """One bad request through http.client; expects status (int or tuple) and code."""
        self._count()
        try:
            r = self.c.req(method, path, body, token=token, headers=headers, admin=admin)
        except ConnectionError as e:
            self.problems.append("%s%s" % (what + ": " if what else "", e))
            self.c.close()
            return None
        statuses = (status,) if isinstance(status, int) else tuple(status)
        codes = None if code is None else ((code,) if isinstance(code, str) else tuple(code))
        bad = None
        if r.status not in statuses:
            bad = "expected %s%s, got %d %s" % ("/".join(map(str, statuses)),
                                               " " + "/".join(codes) if codes else "", r.status, short(r.body, 160))
        elif r.status >= 400:
            p = vx.error_shape_problem(r.body)
            if p:
                bad = "%d with a bad error body (%s): %s" % (r.status, p, short(r.body, 160))
            elif codes and r.code() not in codes:
                bad = "expected %d %s, got %d %s" % (r.status, "/".join(codes), r.status, short(r.body, 160))
        if bad:
            self.problems.append("%s%s -> %s" % (what + ": " if what else "", r.desc, bad))
        return r

    def raw(self, data, accept, what, codes=None):
        """One raw request; accept is a predicate on the status (None: closed)."""
        self._count()
        try:
            st, buf, how = vx.raw_http(self.s.port, data)
        except OSError as e:
            self.problems.append("%s: connect/send failed: %r" % (what, e))
            return None, b""
        label = st if st is not None else how
        if how == "timeout":
            self.problems.append("%s: no answer and no close within 5 s" % what)
        elif not accept(st):
            self.problems.append("%s: got %s %s" % (what, label, short(buf[:300], 200)))
        elif st is not None and codes is not None:
            body = parse_body(buf)
            if vx.errcode(body) not in codes:
                self.problems.append("%s: %d, expected error code %s, got body %s"
                                     % (what, st, "/".join(codes), short(buf[:400], 300)))
        return st, buf

    def finish(self):
        self.c.close()
        vx.assert_serving(self.s, "after %d bad inputs (%s)" % (self.n, self.name))
        now = snapshot()
        for k, v in self.e["snap"].items():
            if now[k] != v:
                self.problems.append("state changed after the batch: %s was %s, now %s"
                                     % (k, short(v, 200), short(now[k], 200)))
        self.e["snap"] = now  # later batches compare with this state
        vx.note("%s: %d bad inputs" % (self.name, self.n))
        if self.problems:
            # group by endpoint so one endpoint's systematic failure does not hide the others
            groups = {}
            for p in self.problems:
                m = re.search(r"\b(GET|PUT|POST|DELETE|PATCH) (/\S*)", p)
                if m:
                    segs = re.sub(r"\?.*", "", m.group(2)).split("/")
                    key = m.group(1) + " " + "/".join(x if x in WORDS else ":" for x in segs)
                else:
                    key = p.split(":")[0]
                groups.setdefault(key, []).append(p)
            parts = []
            for key, ps in groups.items():
                parts.append("[%d x %s] e.g. %s" % (len(ps), key, ps[0]))
            raise AssertionError("%d of %d bad inputs mishandled: %s" % (
                len(self.problems), self.n, " || ".join(parts[:25])))


WORDS = {"", "v1", "hunts", "players", "me", "sessions", "refresh", "codes", "qr.svg", "tiles", "map", "publish",
         "scans", "items", "collect", "zones", "open", "position", "leaderboard", "stats", "digest", "healthz",
         "metrics"}


def parse_body(buf):
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    head, body = buf[:i].decode("latin-1"), buf[i + 4:]
    if re.search(r"(?im)^transfer-encoding:\s*chunked", head):
        out, rest = b"", body
        while True:
            j = rest.find(b"\r\n")
            if j < 0:
                break
            try:
                n = int(rest[:j].split(b";")[0], 16)
            except ValueError:
                break
            if n == 0:
                break
            out += rest[j + 2:j + 2 + n]
            rest = rest[j + 4 + n:]
        body = out
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def raw_req(method, path, body=b"", headers=None, content_length=None):
    h = {"Host": "127.0.0.1", "Connection": "close"}
    h.update(headers or {})
    if content_length is None:
        content_length = len(body)
    if content_length is not False:
        h["Content-Length"] = str(content_length)
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return head.encode("latin-1") + body


def json_endpoints(e):
    return vx.without_tiles(_json_endpoints(e))


def _json_endpoints(e):
    """(method, path, auth, a valid-looking body) for every endpoint that takes JSON. The
    bodies are chosen so that accepting them by mistake changes no state."""
    return [("POST", "/v1/players", None, {"display_name": "x"}),
            ("POST", "/v1/sessions/refresh", None, {"refresh_token": "not-a-real-one"}),
            ("PUT", "/v1/hunts/bi", "admin", game_def()),
            ("POST", "/v1/hunts/bi/scans", "player", {"code": e["pay"]["lobby-1"]}),
            ("POST", "/v1/hunts/bi/items/torch/collect", "player", {}),
            ("POST", "/v1/hunts/bi/zones/bare/open", "player", {}),
            ("POST", "/v1/hunts/bi/position", "player", {"x": 1, "y": 1}),
            ("POST", "/v1/hunts/bi/map/publish", "admin", {})]


def auth(e, kind):
    return {"admin": e["server"].admin_key, "player": e["tok"], None: None}[kind]


# ---------------------------------------------------------------------------------------
MALFORMED = [b"{", b'{"display_name":', b'{"a":1,}', b"nul", b"{'a':1}", b'{"a":1}}', b'{"a":1} x', b"[",
             b'"', b'{"a":"\\x"}', b'{"a" 1}', b"{a:1}", b'{"a":01}', b'{"a":.5}', b'{"a":+1}', b'{"a":NaN}',
             b'{"a":Infinity}', b'{"a":"unterminated}', b'{"a":"\x01"}', b"\x00", b'{"a":1}\x00', b'{"a":tru}',
             b"}", b"{" * 10 + b"}" * 9, b"[" * 20000, b"\xef\xbb", b'{"a":"\\ud800\\u"}', b",", b":",
             b'{"a":1e}', b'{"a":-}', b'{"a":"b"', b"\\", b'{"a":[1,2}']


@test
def malformed_json():
    b = Batch("malformed_json")
    for m, p, a, _ in json_endpoints(b.e):
        for body in MALFORMED:
            b.req(m, p, body, token=auth(b.e, a), code="invalid_json")
        deep = b'{"a":' * 3000 + b"1" + b"}" * 3000
        b.req(m, p, deep, token=auth(b.e, a), code=("invalid_json", "invalid_request"), what="3000 levels")
        b.req(m, p, b'{"a":"\\ud800"}', token=auth(b.e, a), code=("invalid_json", "invalid_request"),
              what="lone surrogate escape")
    b.finish()


BAD_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80",
            b"\xf4\x90\x80\x80", b"\x80", b"a\xc3", b"\xe0\x80\x80", b"\xc1\xbf", b"\xf0\x80\x80\x80"]


@test
def invalid_utf8():
    b = Batch("invalid_utf8")
    e = b.e
    strings = {"/v1/players": "display_name", "/v1/sessions/refresh": "refresh_token", "/v1/hunts/bi": "name",
               "/v1/hunts/bi/scans": "code"}
    for m, p, a, valid in json_endpoints(e):
        base = json.dumps(valid).encode()
        for bad in BAD_UTF8:
            # in an ignored extra field
            body = b'{"junk":"x' + bad + b'y",' + base[1:]
            b.req(m, p, body, token=auth(e, a), code="invalid_json", what="invalid UTF-8 %r in an extra field" % bad)
            # in a key
            body = b'{"k' + bad + b'":1,' + base[1:]
            b.req(m, p, body, token=auth(e, a), code="invalid_json", what="invalid UTF-8 %r in a key" % bad)
            if p in strings:
                v = dict(valid)
                v[strings[p]] = "@@"
                body = json.dumps(v).encode().replace(b"@@", b"ok" + bad)
                b.req(m, p, body, token=auth(e, a), code="invalid_json",
                      what="invalid UTF-8 %r in %s" % (bad, strings[p]))
    b.finish()


# An escape backslash followed by a multi-byte character: jansson's error text ends in the
# middle of that character, and the error body built from it used to fail to encode
# (503 "out of memory" on every JSON route).
ESCAPE_THEN_UTF8 = b'{"a":"\\\xc3\xa9"}'

# Values for the ':' segments of route patterns, by the segment before them.
PARAM_AFTER = {"hunts": "bi", "items": "torch", "zones": "bare", "codes": "lobby-1", "tiles": "1"}


def body_routes(c):
    """(method, path) of every POST/PUT route the server has, from /metrics (so a route
    added later is covered without editing this list), with ':' segments filled in."""
    r = c.req("GET", "/metrics")
    check(r, 200)
    out = []
    for m, pat in sorted(set(re.findall(r'veltrix_http_requests_total\{method="(POST|PUT)",route="([^"]+)"',
                                        r.raw.decode()))):
        segs = pat.split("/")
        for i, x in enumerate(segs):
            if x == ":":
                segs[i] = PARAM_AFTER.get(segs[i - 1], "1")
        out.append((m, "/".join(segs)))
    return out


@test
def escape_then_multibyte_body_on_every_route():
    b = Batch("escape_then_multibyte_body")
    e = b.e
    routes = vx.without_tiles(body_routes(b.c))
    true(len(routes) >= 8, "too few POST/PUT routes in /metrics: %s" % routes)
    for m, p in routes:
        statuses = []
        # every credential, so the body is parsed whatever the route's authentication
        for a in (None, "player", "admin"):
            b._count()
            r = b.c.req(m, p, ESCAPE_THEN_UTF8, token=auth(e, a))
            statuses.append((r.status, r.code() if r.status >= 400 else None))
            shape = vx.error_shape_problem(r.body) if r.status >= 400 else None
            if r.status >= 500 or shape:
                b.problems.append("%s auth: %s -> %d %s%s" % (a or "no", r.desc, r.status,
                                                            short(r.body, 160), shape or ""))
        # POST /v1/cluster/events and /v1/cluster/batch take a binary body from the other
        # nodes only: 403 to any client credential (test_replica and test_forward check
        # their own bad bodies: 400, nothing changed)
        if p in ("/v1/cluster/events", "/v1/cluster/batch"):
            if any(st != (403, "forbidden") for st in statuses):
                b.problems.append("%s %s: not 403 forbidden to clients: %s" % (m, p, statuses))
            continue
        if "/tiles/" not in p and (400, "invalid_json") not in statuses:
            b.problems.append("%s %s: no 400 invalid_json with any credential: %s" % (m, p, statuses))
    b.finish()


@test
def wrong_types_and_missing_fields():
    b = Batch("wrong_types")
    e = b.e
    tok = e["tok"]
    for v in (1, None, [], {}, True, 1.5, ["x"]):  # not strings
        b.req("POST", "/v1/players", {"display_name": v}, code="invalid_request")
        b.req("POST", "/v1/sessions/refresh", {"refresh_token": v}, code="invalid_request")
        b.req("POST", "/v1/hunts/bi/scans", {"code": v}, token=tok, code="invalid_request")
        d = game_def()
        d["name"] = v
        b.req("PUT", "/v1/hunts/bi", d, admin=True, code="invalid_request", what="name=%r" % (v,))
    for v in ("1", None, [], {}, True, [1], "0x10", "1e3"):  # not numbers
        b.req("POST", "/v1/hunts/bi/position", {"x": v, "y": 1}, token=tok, code="invalid_request")
        b.req("POST", "/v1/hunts/bi/position", {"x": 1, "y": v}, token=tok, code="invalid_request")
        d = game_def()
        d["codes"][1]["points"] = v
        b.req("PUT", "/v1/hunts/bi", d, admin=True, code="invalid_request", what="points=%r" % (v,))
        d = game_def()
        d["map"]["width"] = v
        b.req("PUT", "/v1/hunts/bi", d, admin=True, code="invalid_request", what="width=%r" % (v,))
    for v in (1, {}, True, "zones", 1.5):  # not lists
        d = game_def()
        d["zones"] = v
        b.req("PUT", "/v1/hunts/bi", d, admin=True, code="invalid_request", what="zones=%r" % (v,))
    b.req("POST", "/v1/hunts/bi/position", b'{"x":1e999999,"y":1}', token=tok,
          code=("invalid_json", "invalid_request", "out_of_bounds"), what="number overflow")
    for m, p, body in (("POST", "/v1/players", {}), ("POST", "/v1/sessions/refresh", {}),
                       ("POST", "/v1/hunts/bi/scans", {}), ("POST", "/v1/hunts/bi/position", {"x": 1}),
                       ("POST", "/v1/hunts/bi/position", {"y": 1}), ("POST", "/v1/hunts/bi/position", {}),
                       ("POST", "/v1/players", {"displayname": "x"}), ("POST", "/v1/hunts/bi/scans", {"Code": "x"})):
        tk = tok if "/hunts/" in p else None
        b.req(m, p, body, token=tk, code="invalid_request", what="missing field")
    for m, p in (("POST", "/v1/players"), ("POST", "/v1/sessions/refresh"), ("POST", "/v1/hunts/bi/scans"),
                 ("POST", "/v1/hunts/bi/position"), ("PUT", "/v1/hunts/bi")):
        tk = e["server"].admin_key if m == "PUT" else (tok if "/hunts/" in p else None)
        b.req(m, p, b"", token=tk, code=("invalid_request", "invalid_json"), what="empty body")
        b.req(m, p, b"   \r\n ", token=tk, code=("invalid_request", "invalid_json"), what="whitespace body")
    b.finish()


@test
def non_object_bodies():
    b = Batch("non_object_bodies")
    e = b.e
    for m, p, a, valid in json_endpoints(e):
        for body in (b"[]", b"[" + json.dumps(valid).encode() + b"]", b'"str"', b"123", b"null", b"true",
                     b"-1.5", b"[{}]"):
            b.req(m, p, body, token=auth(e, a), code=("invalid_request", "invalid_json"),
                  what="body %s" % body[:20])
    b.finish()


@test
def oversized_bodies():
    b = Batch("oversized_bodies")
    e = b.e
    limit = 64 * 1024
    for m, p, a, valid in json_endpoints(e):
        if p == "/v1/hunts/bi":
            continue  # definitions may be up to 16 MiB (test_hunts)
        hdr = {"Content-Type": "application/json"}
        if a:
            hdr["Authorization"] = "Bearer " + auth(e, a)
        base = json.dumps(valid).encode()
        prefix = base[:-1] + (b"," if len(base) > 2 else b"") + b'"pad":"'
        for size in (limit + 1, limit + 1000, 1 << 20):
            body = prefix + b"x" * (size - len(prefix) - 2) + b'"}'
            true(len(body) == size, "test bug: body size %d != %d" % (len(body), size))
            b.raw(raw_req(m, p, body, hdr), lambda st: st == 413, "%s %s with a %d-byte body" % (m, p, size),
                  codes=("payload_too_large",))
        # a huge Content-Length is refused without waiting for the body
        b.raw(raw_req(m, p, b"", hdr, content_length=100000000), lambda st: st == 413,
              "%s %s announcing 100 MB" % (m, p))  # over every route's limit: libh2o's own 413 page
        # chunked, without Content-Length
        chunk = b"x" * 8192
        body = prefix + chunk * 13 + b'"}'
        data = raw_req(m, p, b"", dict(hdr, **{"Transfer-Encoding": "chunked"}), content_length=False)
        data += b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                         for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
        # cut at 64 KiB as it arrives, by libh2o's own check (http_guard.c): its plain 413
        b.raw(data, lambda st: st == 413, "%s %s chunked %d bytes" % (m, p, len(body)))
    # exactly 64 KiB is not over the limit
    base = b'{"display_name":"Big","pad":"'
    body = base + b"y" * (limit - len(base) - 2) + b'"}'
    r = b.req("POST", "/v1/players", body, status=201, what="a body of exactly 64 KiB")
    b.finish()


@test
def huge_headers_and_garbage():
    b = Batch("huge_headers")
    port = b.s.port

    def four(st):
        return st is None or 400 <= st < 500
    # one 64 KiB header is within libh2o's ~400 KiB header budget (README "Limits"): any non-5xx
    b.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
          lambda st: st is None or st < 500, "64 KiB header value")
    b.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H-%d: v\r\n" % i for i in range(200)) + b"\r\n",
          four, "200 headers")
    b.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * 1000)
                                                           for i in range(1000)) + b"\r\n", four, "1 MB of headers")
    b.raw(b"GET /healthz?" + b"q" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", lambda st: st is None or st < 500,
          "100 KB URL")
    b.raw(b"GET /v1/hunts/" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", four, "100 KB path")
    b.raw(b"GET /v1/players/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"A" * 65536 + b"\r\n\r\n",
          four, "64 KiB bearer token")
    b.raw(b"POST /v1/players HTTP/1.1\r\nHost: x\r\nIdempotency-Key: " + b"k" * 65536 +
          b"\r\nContent-Length: 2\r\n\r\n{}", four, "64 KiB idempotency key")
    garbage = [
        (b"GARBAGE\r\n\r\n", "garbage request line"),
        (b"GET\r\n\r\n", "request line without a path"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", "header without a colon"),
        (b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n", "NUL in the path"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "NUL in a header"),
        (b"POST /v1/players HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "negative Content-Length"),
        (b"POST /v1/players HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "non-numeric Content-Length"),
        (b"POST /v1/players HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         "Content-Length overflow"),
        (b"POST /v1/players HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}",
         "two Content-Length headers"),
        (b"POST /v1/players HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
         "bad chunk size"),
        (b"POST /v1/players HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}",
         "huge chunk size"),
        (b"\xff\xfe\xfd\r\n\r\n", "binary junk"),
    ]
    for data, what in garbage:
        b.raw(data, lambda st: st is None or 400 <= st < 500, what)
    b.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 3 + b"\n\n",
          lambda st: st is None or st < 500, "bare LF line ends")
    # clients that vanish mid-request
    for data in (b"GET /healthz HTTP/1.1\r\nHo", b"POST /v1/players HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"d"):
        TRIED[0] += 1
        b.n += 1
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        s.close()
    # pipelining still works afterwards
    TRIED[0] += 1
    b.n += 1
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req * 2 + req.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    out = b""
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            d = s.recv(65536)
        except OSError:
            break
        if not d:
            break
        out += d
    s.close()
    n200 = len(re.findall(rb"HTTP/1\.1 200", out))
    if n200 != 3:
        b.problems.append("3 pipelined GET /healthz: %d responses 200: %s" % (n200, short(out[:300])))
    b.finish()


BAD_IDS = ["UPPER", "a.b", "x" * 65, "a%20b", "caf%C3%A9", "a*b", "a%00b", "a:b"]


@test
def invalid_path_ids():
    b = Batch("invalid_path_ids")
    e = b.e
    tok, pay = e["tok"], e["pay"]
    for bad in BAD_IDS:
        cases = [("GET", "/v1/hunts/%s" % bad, None, None),
                 ("PUT", "/v1/hunts/%s" % bad, game_def(), "admin"),
                 ("GET", "/v1/hunts/%s/codes" % bad, None, "admin"),
                 ("GET", "/v1/hunts/%s/codes/lobby-1/qr.svg" % bad, None, "admin"),
                 ("GET", "/v1/hunts/bi/codes/%s/qr.svg" % bad, None, "admin"),
                 ("PUT", "/v1/hunts/%s/tiles/0/0" % bad, b"x", "admin"),
                 ("POST", "/v1/hunts/%s/map/publish" % bad, {}, "admin"),
                 ("GET", "/tiles/%s/0/0" % bad, None, None),
                 ("POST", "/v1/hunts/%s/scans" % bad, {"code": pay["lobby-1"]}, "player"),
                 ("POST", "/v1/hunts/%s/items/torch/collect" % bad, None, "player"),
                 ("POST", "/v1/hunts/bi/items/%s/collect" % bad, None, "player"),
                 ("POST", "/v1/hunts/%s/zones/bare/open" % bad, {}, "player"),
                 ("POST", "/v1/hunts/bi/zones/%s/open" % bad, {}, "player"),
                 ("POST", "/v1/hunts/%s/position" % bad, {"x": 1, "y": 1}, "player"),
                 ("GET", "/v1/hunts/%s/me" % bad, None, "player"),
                 ("GET", "/v1/hunts/%s/leaderboard" % bad, None, None),
                 ("GET", "/v1/hunts/%s/stats" % bad, None, None),
                 ("GET", "/v1/hunts/%s/digest" % bad, None, "admin")]
        cases = vx.without_tiles(cases)
        for m, p, body, a in cases:
            b.req(m, p, body, token=auth(e, a), code="invalid_id")
    # tile coordinates that are not numbers: a 4xx, never a 5xx
    for xy in ("abc/0", "0/abc", "-1/0", "0/99999999999999999999", "1.5/0", "0x1/0", "%30/0")[:7 if vx.TILES else 0]:
        b.req("GET", "/tiles/bi/%s" % xy, status=(400, 404))
        b.req("PUT", "/v1/hunts/bi/tiles/%s" % xy, b"t", admin=True, status=(400, 404))
    for p in ("/tiles/%2e%2e/%2e%2e/etc/passwd", "/tiles/../../etc/passwd", "/v1/hunts/%2e%2e/codes",
              "/v1/hunts/bi/../bi/codes/lobby-1/qr.svg/../../../../etc/passwd"):
        b.req("GET", p, admin=True, status=(400, 404), what="path traversal")
    b.finish()


@test
def unknown_routes():
    b = Batch("unknown_routes")
    e = b.e
    for p in ("/v1/nope", "/v1/hunts/bi/nope", "/v2/players", "/v1/players/me/extra", "/healthzz",
              "/v1/hunts/bi/codes/lobby-1/qr.png", "/v1/hunts/bi/items/torch", "/v1/hunts/bi/zones/drops",
              "/v1/hunts/bi/zones", "/tiles/bi", "/tiles/bi/0", "/tiles/bi/0/0/0", "/v1/nope?x=1",
              "/v1/hunts/bi/codes/lobby-1", "/v1/hunts/bi/items/torch/collect/more", "/v1/playerss",
              "/V1/PLAYERS", "/v1//players", "/metrics/x", "/v1/hunts/bi/leaderboard/x"):
        b.req("GET", p, token=e["tok"], status=404, code="not_found")
    b.req("POST", "/v1/hunts/bi/nope", {}, token=e["tok"], status=404, code="not_found")
    b.req("PUT", "/v1/hunts/bi/nope/deeper", {}, admin=True, status=404, code="not_found")
    b.finish()


@test
def wrong_methods():
    b = Batch("wrong_methods")
    e = b.e
    P, A = "player", "admin"
    cases = [("GET", "/v1/players", None), ("PUT", "/v1/players", None), ("DELETE", "/v1/players", None),
             ("DELETE", "/v1/players/me", P), ("POST", "/v1/players/me", P), ("PUT", "/v1/players/me", P),
             ("GET", "/v1/sessions/refresh", None), ("PUT", "/v1/sessions/refresh", None),
             ("DELETE", "/v1/hunts/bi", A), ("POST", "/v1/hunts/bi", A), ("PATCH", "/v1/hunts/bi", A),
             ("GET", "/v1/hunts/bi/scans", P), ("PUT", "/v1/hunts/bi/scans", P), ("DELETE", "/v1/hunts/bi/scans", P),
             ("GET", "/v1/hunts/bi/items/torch/collect", P), ("PUT", "/v1/hunts/bi/items/torch/collect", P),
             ("GET", "/v1/hunts/bi/zones/bare/open", P), ("DELETE", "/v1/hunts/bi/zones/bare/open", P),
             ("GET", "/v1/hunts/bi/position", P), ("PUT", "/v1/hunts/bi/position", P),
             ("POST", "/v1/hunts/bi/me", P), ("DELETE", "/v1/hunts/bi/me", P),
             ("POST", "/v1/hunts/bi/leaderboard", None), ("DELETE", "/v1/hunts/bi/leaderboard", None),
             ("POST", "/v1/hunts/bi/stats", None), ("POST", "/healthz", None), ("DELETE", "/healthz", None),
             ("POST", "/metrics", None), ("PUT", "/v1/hunts/bi/codes", A), ("POST", "/v1/hunts/bi/codes", A),
             ("DELETE", "/v1/hunts/bi/codes", A), ("POST", "/v1/hunts/bi/codes/lobby-1/qr.svg", A),
             ("GET", "/v1/hunts/bi/map/publish", A), ("PUT", "/v1/hunts/bi/map/publish", A),
             ("GET", "/v1/hunts/bi/tiles/0/0", A), ("POST", "/v1/hunts/bi/tiles/0/0", A),
             ("DELETE", "/v1/hunts/bi/tiles/0/0", A), ("POST", "/tiles/bi/0/0", None), ("PUT", "/tiles/bi/0/0", None),
             ("DELETE", "/tiles/bi/0/0", None), ("POST", "/v1/hunts/bi/digest", A), ("DELETE", "/v1/hunts/bi/digest", A)]
    cases = vx.without_tiles(cases)
    for m, p, a in cases:
        body = {} if m in ("POST", "PUT", "PATCH") else None
        r = b.req(m, p, body, token=auth(e, a), status=405, code="method_not_allowed")
    b.finish()


def tamper(tok, i):
    alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    ch = tok[i]
    new = alpha[alpha.index(ch) ^ 0x20] if ch in alpha else ("Q" if ch != "Q" else "R")
    return tok[:i] + new + tok[i + 1:]


def player_endpoints(e):
    return [("GET", "/v1/players/me", None),
            ("POST", "/v1/hunts/bi/scans", {"code": e["pay"]["lobby-2"]}),
            ("POST", "/v1/hunts/bi/items/torch/collect", None),
            ("POST", "/v1/hunts/bi/zones/drops/open", {}),
            ("POST", "/v1/hunts/bi/position", {"x": 1, "y": 1}),
            ("GET", "/v1/hunts/bi/me", None)]


@test
def bad_player_tokens():
    b = Batch("bad_player_tokens")
    e = b.e
    tok = e["tok"]
    n = len(tok)
    other = vx.Server(admin_key="another-admin-key-77").start()
    oc = other.client()
    _, foreign, _ = vx.new_player(oc, "Foreign")
    oc.close()
    other.stop()
    bad = {"garbage": "garbage", "empty": "", "tampered start": tamper(tok, 0), "tampered middle": tamper(tok, n // 2),
           "tampered end": tamper(tok, n - 1), "truncated": tok[:-1], "extended": tok + "A",
           "refresh token": e["rt"], "token of another server": foreign, "long": "A" * 8000,
           "non-ASCII": "t\u00e9st"}
    for m, p, body in player_endpoints(e):
        b.req(m, p, body, status=401, code="unauthorized", what="no Authorization")
        for what, t in bad.items():
            hv = ("Bearer " + t).encode("utf-8").decode("latin-1")
            b.req(m, p, body, headers={"Authorization": hv}, status=401, code="unauthorized", what=what)
        for hv in ("Basic " + tok, "Token " + tok, tok, "Bearer"):
            b.req(m, p, body, headers={"Authorization": hv}, status=401, code="unauthorized",
                  what="Authorization %r" % hv[:12])
        b.req(m, p, body, admin=True, status=(401, 403), what="admin key as a player token")
    b.finish()


@test
def expired_player_tokens():
    s = vx.Server(token_ttl=1).start()
    c = s.client()
    vx.put_hunt(c, "bi", game_def(), status=201)
    pay = vx.codes_of(c, "bi")
    pid, tok, rt = vx.new_player(c, "Soon")
    fake = {"pay": pay}
    time.sleep(2.2)
    n = 0
    problems = []
    for m, p, body in player_endpoints(fake):
        r = c.req(m, p, body, token=tok)
        n += 1
        if r.status != 401 or r.code() != "token_expired":
            problems.append("%s -> %d %s" % (r.desc, r.status, short(r.body, 120)))
    TRIED[0] += n
    vx.assert_serving(s)
    m = vx.me(c, "bi", c.ok("POST", "/v1/sessions/refresh", {"refresh_token": rt})["token"])
    eq((m.get("score"), m.get("scanned"), m.get("opened"), m.get("collected")), (0, [], [], []),
       "/me after the expired-token requests")
    true(not problems, "expired token not refused with 401 token_expired: " + " || ".join(problems))


@test
def admin_endpoints_without_admin():
    b = Batch("admin_auth")
    e = b.e
    s = e["server"]
    cases = [("PUT", "/v1/hunts/bi", game_def()), ("PUT", "/v1/hunts/bi-new", game_def()),
             ("GET", "/v1/hunts/bi/codes", None), ("GET", "/v1/hunts/bi/codes/lobby-1/qr.svg", None),
             ("PUT", "/v1/hunts/bi/tiles/0/0", b"evil"), ("POST", "/v1/hunts/bi/map/publish", {}),
             ("GET", "/v1/hunts/bi/digest", None)]
    cases = vx.without_tiles(cases)
    for m, p, body in cases:
        b.req(m, p, body, status=401, code="unauthorized", what="no Authorization")
        b.req(m, p, body, token=e["tok"], status=403, code="forbidden", what="player token")
        b.req(m, p, body, token=e["otok"], status=403, code="forbidden", what="another player token")
        b.req(m, p, body, token=s.admin_key + "x", status=401, code="unauthorized", what="wrong admin key")
        b.req(m, p, body, token=s.admin_key.upper(), status=401, code="unauthorized", what="admin key in upper case")
        b.req(m, p, body, token="", status=401, code="unauthorized", what="empty bearer")
        b.req(m, p, body, token=tamper(e["tok"], 3), status=401, code="unauthorized", what="tampered player token")
        b.req(m, p, body, headers={"Authorization": "Basic " + s.admin_key}, status=401, code="unauthorized",
              what="Basic scheme")
    b.req("GET", "/v1/hunts/bi-new", status=404, code="hunt_not_found", what="hunt not created")
    b.finish()


@test
def refresh_token_still_valid_after_all():
    e = env()
    c = e["c"]
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": e["rt"]})
    check(r, 200, what="the victim's refresh token after all the bad input")
    vx.note("test_badinput: %d bad inputs tried in total" % TRIED[0])


if __name__ == "__main__":
    vx.run_all()
