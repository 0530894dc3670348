#!/usr/bin/env python3
"""Black-box regression tests for the hostile review's defects (issue 12) that live in the
HTTP layer, the log and sessions: request framing (smuggling), header and body limits
applied while the request arrives, the budget of pending bodies, refresh tokens never
handed out by an idempotent replay, a full disk as a store outage, /metrics access.
Each was written to fail on the code before its fix."""
import json
import re
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test, short  # noqa: E402

MiB = 1024 * 1024


def srv():
    return vx.shared()


def head_of(raw):
    return raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()


def json_error(raw):
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    try:
        return json.loads(body.decode("utf-8"))["error"]["code"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def exchange(port, data, timeout=5.0):
    """Sends data on one connection and reads until the server closes it (or timeout).
    Returns (all bytes received, 'closed' | 'timeout')."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    how = "closed"
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                part = s.recv(65536)
            except socket.timeout:
                how = "timeout"
                break
            except (ConnectionResetError, OSError):
                break
            if not part:
                break
            got += part
        else:
            how = "timeout"
    finally:
        s.close()
    return got, how


def refused_and_closed(port, data, status, code, what):
    got, how = exchange(port, data)
    true(got.startswith(b"HTTP/1.1 %d " % status), "%s: expected %d, got %r" % (what, status, got[:200]))
    eq(len(re.findall(rb"(?:^|\r\n)HTTP/1\.1 \d{3} ", got)), 1, "%s: responses on the connection (a smuggled second request "
                                  "must never be answered): %r" % (what, got[:400]))
    eq(json_error(got), code, "%s: error code" % what)
    true("connection: close" in head_of(got), "%s: no Connection: close: %r" % (what, got[:300]))
    eq(how, "closed", "%s: the server must close the connection" % what)


# ------------------------------------------------------------------------------ framing
@test
def two_content_lengths_are_refused():
    s = srv()
    smuggled = b"GET /v1/hunts/x HTTP/1.1\r\nHost: a\r\n\r\n"
    body = b'{"display_name":"A"}'
    req = (b"POST /v1/players HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n"
           b"Content-Length: %d\r\n\r\n" % (len(body), len(body) + len(smuggled)) + body + smuggled)
    refused_and_closed(s.port, req, 400, "invalid_framing", "two Content-Length")
    # the same value twice is still two headers
    req = (b"POST /v1/players HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n"
           b"Content-Length: %d\r\n\r\n" % (len(body), len(body)) + body)
    refused_and_closed(s.port, req, 400, "invalid_framing", "two equal Content-Length")
    vx.assert_serving(s)


@test
def content_length_with_chunked_is_refused():
    s = srv()
    req = (b"POST /v1/players HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    refused_and_closed(s.port, req, 400, "invalid_framing", "Content-Length + chunked")
    req = (b"POST /v1/players HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Length: 4\r\n\r\n0\r\n\r\n")
    refused_and_closed(s.port, req, 400, "invalid_framing", "chunked + Content-Length")
    req = (b"POST /v1/players HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    refused_and_closed(s.port, req, 400, "invalid_framing", "a coding other than chunked")
    req = (b"POST /v1/players HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n{}  ")
    refused_and_closed(s.port, req, 400, "invalid_framing", "a signed Content-Length")
    vx.assert_serving(s)


@test
def host_header_is_required_once():
    s = srv()
    refused_and_closed(s.port, b"GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_framing",
                       "HTTP/1.1 without Host")
    refused_and_closed(s.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
                       "invalid_framing", "two Host headers")
    got, how = exchange(s.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    true(got.startswith(b"HTTP/1.1 200 "), "HTTP/1.0 needs no Host: %r" % got[:200])
    got, how = exchange(s.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    true(got.startswith(b"HTTP/1.1 200 "), "one Host: %r" % got[:200])


@test
def header_block_over_32k_gets_431():
    s = srv()
    big = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n"
    refused_and_closed(s.port, big, 431, "headers_too_large", "a 100 KB header line")
    # refused as soon as 32 KiB have come without the end of the block, not at its end
    sk = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (40 * 1024))
    got = sk.recv(4096)
    sk.close()
    true(got.startswith(b"HTTP/1.1 431 "), "431 before the block ends: %r" % got[:200])
    many = b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(90)) + b"\r\n"  # 90 x ~208 B
    got, how = exchange(s.port, many + b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    eq(got.count(b"HTTP/1.1 200 "), 2, "an 18 KB header block is fine: %r" % got[:200])
    vx.assert_serving(s)


# ------------------------------------------------------------------------------ bodies
@test
def route_body_limit_applies_before_the_body():
    """A declared length over the route's limit is answered at once, before any of the
    body is sent (the client has sent only its headers)."""
    s = srv()
    for method, path, size in (("POST", "/v1/players", 16 * MiB), ("POST", "/v1/players", 65537),
                               ("POST", "/v1/hunts/x/scans", 2 * MiB),
                               ("POST", "/v1/sessions/refresh", 100 * 1024)):
        sk = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sk.sendall(b"%s %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                   % (method.encode(), path.encode(), size))
        got = b""
        while b"}}" not in got:
            part = sk.recv(4096)
            if not part:
                break
            got += part
        sk.close()
        true(got.startswith(b"HTTP/1.1 413 "), "%s %s with %d bytes declared: %r"
             % (method, path, size, got[:200]))
        eq(json_error(got), "payload_too_large", "error code")


@test
def large_bodies_only_for_the_admin():
    s = srv()
    for auth in (b"", b"Authorization: Bearer not-the-key\r\n"):
        sk = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sk.sendall(b"PUT /v1/hunts/big HTTP/1.1\r\nHost: a\r\n%sContent-Length: %d\r\n\r\n"
                   % (auth, 2 * MiB))
        got = sk.recv(4096)
        sk.close()
        true(got.startswith(b"HTTP/1.1 401 "), "a 2 MiB definition without the admin key is "
             "refused before its body: %r" % got[:200])
    # with the key, the body is read and handled
    c = s.client()
    r = c.req("PUT", "/v1/hunts/big", b"[" + b" " * (2 * MiB) + b"]", admin=True)
    check(r, 400, what="2 MiB definition that is not an object, with the admin key")
    # a small body without the key reaches the handler's own 401
    check(c.req("PUT", "/v1/hunts/big", vx.basic_def()), 401, "unauthorized")


@test
def chunked_bodies_are_counted():
    s = srv()
    chunk = b"%x\r\n" % (16 * 1024) + b"c" * (16 * 1024) + b"\r\n"
    req = b"POST /v1/players HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 8
    got, how = exchange(s.port, req, timeout=10)
    true(got.startswith(b"HTTP/1.1 413 "), "128 KiB chunked body: %r" % got[:200])
    eq(how, "closed", "closed after 413")
    c = s.client()
    st, raw, how = vx.raw_http(s.port, b"POST /v1/players HTTP/1.1\r\nHost: a\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n14\r\n{\"display_name\":\"Z\"}\r\n0\r\n\r\n")
    eq(st, 201, "a small chunked body: %r" % raw[:200])


@test
def pending_bodies_have_a_budget():
    s = vx.Server(args=["--pending-bodies-max", str(5 * MiB)]).start()
    auth = b"Authorization: Bearer " + s.admin_key.encode() + b"\r\n"
    socks = []
    for i in range(2):
        sk = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sk.sendall(b"PUT /v1/hunts/h%d HTTP/1.1\r\nHost: a\r\n%sContent-Length: %d\r\n\r\n"
                   % (i, auth, 2 * MiB) + b"{")
        socks.append(sk)
    time.sleep(0.3)
    sk = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    sk.sendall(b"PUT /v1/hunts/h9 HTTP/1.1\r\nHost: a\r\n%sContent-Length: %d\r\n\r\n" % (auth, 2 * MiB))
    got = sk.recv(4096)
    sk.close()
    true(got.startswith(b"HTTP/1.1 503 "), "a third 2 MiB body over a 5 MiB budget: %r" % got[:300])
    true(b"retry-after" in got.lower(), "503 with Retry-After: %r" % got[:300])
    eq(json_error(got), "busy", "error code")
    c = s.client()
    eq(vx.metric(c, "veltrix_pending_body_bytes"), 4 * MiB, "reserved: two 2 MiB bodies")
    socks[0].close()  # the client left: its reservation is released
    deadline = time.time() + 5
    while time.time() < deadline and vx.metric(c, "veltrix_pending_body_bytes") != 2 * MiB:
        time.sleep(0.05)
    eq(vx.metric(c, "veltrix_pending_body_bytes"), 2 * MiB, "released when the client left")
    r = c.req("PUT", "/v1/hunts/h8", vx.basic_def(name="x" * 20) , admin=True)
    check(r, 201, what="a small definition while one large one is pending")
    big = vx.basic_def(codes=[{"id": "c%05d" % i, "points": 1, "x": 1, "y": 1} for i in range(50000)])
    raw = json.dumps(big).encode()
    true(len(raw) > 2 * MiB, "the large definition is %d bytes" % len(raw))
    check(c.req("PUT", "/v1/hunts/h7", raw, admin=True), 201, what="a large definition within budget")
    eq(vx.metric(c, "veltrix_pending_body_bytes"), 2 * MiB, "released once answered")
    socks[1].close()
    s.stop()


# ------------------------------------------------------------------------------ refresh
@test
def refresh_is_never_replayed():
    """Reuse detection cannot be bypassed by replaying a refresh's Idempotency-Key."""
    s = srv()
    c = s.client()
    victim = c.ok("POST", "/v1/players", {"display_name": "Victim"}, status=201)
    key = {"Idempotency-Key": "refresh-k1"}
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": victim["refresh_token"]}, headers=key)
    check(r, 200)
    new = r.body
    # the attacker holds a copy of the used refresh token and the key
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": victim["refresh_token"]}, headers=key)
    true("token" not in (r.body if isinstance(r.body, dict) else {}),
         "a replayed refresh handed out tokens: %s" % short(r.body))
    check(r, 401, "refresh_token_reused", what="the used refresh token, same key")
    true(r.headers.get("idempotent-replayed") is None, "answered as a replay")
    # reuse detection ran: every session of the victim is revoked
    check(c.req("GET", "/v1/players/me", token=new["token"]), 401, "unauthorized")
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": new["refresh_token"]}), 401)


@test
def refresh_keys_are_not_shared_between_players():
    s = srv()
    c = s.client()
    a = c.ok("POST", "/v1/players", {"display_name": "A"}, status=201)
    b = c.ok("POST", "/v1/players", {"display_name": "B"}, status=201)
    key = {"Idempotency-Key": "shared-key-7"}
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": a["refresh_token"]}, headers=key), 200)
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": b["refresh_token"]}, headers=key)
    check(r, 200, what="another player's refresh with the same key")
    true(r.body["refresh_token"] != b["refresh_token"], "rotated")


# ------------------------------------------------------------------------------ disk full
class SmallDisk:
    """A 48 MiB tmpfs for the server's data directory (needs root, as CI runs), which the
    test fills with a filler file and empties again: a real full disk."""

    def __init__(self):
        import subprocess
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="vx-disk-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", self.dir],
                           capture_output=True)
        if r.returncode != 0:
            os.rmdir(self.dir)
            raise vx.Skip("cannot mount a tmpfs (not root?): %s" % r.stderr.decode()[-200:])
        self.filler = os.path.join(self.dir, "filler")

    def fill(self):
        with open(self.filler, "ab") as f:
            block = b"\0" * 65536
            try:
                while True:
                    f.write(block)
                    f.flush()
            except OSError:
                pass
        try:  # the last bytes a page could still take
            with open(self.filler, "ab") as f:
                while True:
                    f.write(b"\0" * 512)
                    f.flush()
        except OSError:
            pass

    def free(self):
        os.unlink(self.filler)

    def close(self):
        import subprocess
        subprocess.run(["umount", "-l", self.dir])
        os.rmdir(self.dir)


@test
def full_disk_is_a_store_outage():
    if vx.on_pg("it fills the disk under the SQLite file (test_pg_faults.py: PostgreSQL's outages)"):
        return
    disk = SmallDisk()
    try:
        full_disk(disk)
    finally:
        disk.close()


def full_disk(disk):
    os.mkdir(os.path.join(disk.dir, "data"))
    s = vx.Server(data=os.path.join(disk.dir, "data")).start()
    c = s.client()
    c.ok("PUT", "/v1/hunts/d", vx.basic_def(codes=[{"id": "c%03d" % i, "points": 1, "x": 1, "y": 1}
                                                   for i in range(300)]), admin=True, status=201)
    codes = [{"id": k, "payload": v} for k, v in sorted(vx.codes_of(c, "d").items())]
    pid, token, _ = vx.new_player(c, "Disk")
    check(vx.scan(c, "d", token, codes[0]["payload"]), 200)
    disk.fill()
    results = []
    stop = threading.Event()

    def scan_all():
        cc = s.client(timeout=60)
        for cd in codes[1:]:
            if stop.is_set():
                break
            r = cc.req("POST", "/v1/hunts/d/scans", {"code": cd["payload"]}, token=token,
                       headers={"Idempotency-Key": "k-" + cd["id"]})
            results.append((cd["id"], r.status, vx.errcode(r.body), r.headers.get("retry-after")))

    t = threading.Thread(target=scan_all)
    t.start()
    deadline = time.time() + 30
    hz = None
    while time.time() < deadline:
        hz = vx.healthz(s.port)
        if hz.status == 503:
            break
        time.sleep(0.02)
    eq(hz.status, 503, "/healthz while the store cannot write")
    time.sleep(0.3)
    true(s.alive(), "the server exited on a full disk: " + s.stderr_text()[-400:])
    check(c.req("GET", "/v1/hunts/d/leaderboard"), 200, what="reads from memory during the outage")
    r = c.req("POST", "/v1/players", {"display_name": "Late"})
    check(r, 503, "store_unavailable", what="a write during the outage")
    true(r.headers.get("retry-after"), "Retry-After on store_unavailable")
    late = codes[-3:]
    for cd in late:
        r = c.req("POST", "/v1/hunts/d/scans", {"code": cd["payload"]}, token=token,
                  headers={"Idempotency-Key": "k-" + cd["id"]})
        check(r, 503, "store_unavailable", what="a scan during the outage")
    stop.set()
    disk.free()  # space is back
    t.join(60)
    true(not t.is_alive(), "held writes answered after recovery")
    deadline = time.time() + 20
    while time.time() < deadline and vx.healthz(s.port).status != 200:
        time.sleep(0.05)
    eq(vx.healthz(s.port).status, 200, "/healthz after recovery")
    for cid, st, code, ra in results:  # the write held through the outage was answered
        eq(st, 200, "scan %s sent before the outage was seen" % cid)
    for cd in late:  # the refused ones, retried with their keys after recovery
        r = c.req("POST", "/v1/hunts/d/scans", {"code": cd["payload"]}, token=token,
                  headers={"Idempotency-Key": "k-" + cd["id"]})
        check(r, 200, what="retry of %s after recovery" % cd["id"])
        r = c.req("POST", "/v1/hunts/d/scans", {"code": cd["payload"]}, token=token,
                  headers={"Idempotency-Key": "k-" + cd["id"]})
        eq(r.headers.get("idempotent-replayed"), "true", "a second retry is a replay")
    eq(vx.me(c, "d", token)["score"], 1 + len(results) + len(late), "score: every scan once")
    check(c.req("POST", "/v1/players", {"display_name": "After"}), 201, what="a write after recovery")
    d0 = vx.digest(c, "d")
    s.restart()
    c = s.client()
    eq(vx.digest(c, "d"), d0, "state digest after a restart")
    true("store unavailable" in s.stderr_text(), "the outage is logged: " + s.stderr_text()[-500:])
    vx.note("full disk: %d scans held through the outage and acknowledged after it, %d "
            "refused with 503 and retried" % (len(results), len(late)))
    s.stop()


# ------------------------------------------------------------------------------ metrics
@test
def metrics_can_require_a_key():
    s = vx.Server(args=["--metrics-access", "admin", "--metrics-token", "m-token-123"]).start()
    c = s.client()
    check(c.req("GET", "/metrics"), 401, "unauthorized")
    r = c.req("GET", "/metrics", admin=True)
    eq(r.status, 200, "/metrics with the admin key")
    r = c.req("GET", "/metrics", token="m-token-123")
    eq(r.status, 200, "/metrics with the metrics token")
    check(c.req("GET", "/metrics", token="wrong"), 401, "unauthorized")
    s.stop()
    # loopback listeners default to public
    eq(srv().client().req("GET", "/metrics").status, 200, "loopback default: public")


if __name__ == "__main__":
    vx.run_all()
