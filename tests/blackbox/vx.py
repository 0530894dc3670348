"""vx.py — helpers for the Veltrix black-box tests (Python 3 standard library only).

A test file registers functions with @test and ends with run_all(). It is run as
    python3 tests/blackbox/test_x.py --bin build/veltrix [--only SUBSTRING] [--keep]
and prints one "ok NAME" / "not ok NAME: REASON" line per test, then "N passed, N failed"
as its last line; it exits 1 when anything failed.

Server     starts the real binary on 127.0.0.1 with a fresh data directory; start/stop
           (SIGTERM, expects exit 0)/kill (SIGKILL)/restart keep the data dir and port.
Client     a keep-alive HTTP/1.1 client: req(method, path, body, token, headers) returns
           R = (status, headers lowercased, parsed JSON or bytes), with .raw and .desc.
check()    asserts status (and error code) and the error body shape.
raw_http() sends raw bytes over a socket (for malformed requests).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BIN = None
ADMIN_KEY = "vx-admin-key-4f1c2e9a7b"
# The suites create hundreds of players and send thousands of requests a second from
# 127.0.0.1, far over the default limits (README "Limits"); they run with every limit on
# but out of reach. test_abuse.py passes its own (later flags win).
# Memory bounds asserted by the tests are multiplied by this: ThreadSanitizer's shadow
# memory counts in the server's RSS (make SANITIZE=thread exports SANITIZE).
MEMORY_FACTOR = 4 if "thread" in os.environ.get("SANITIZE", "") else 1
TEST_LIMITS = ["--rate-player", "1000000", "--rate-ip", "10000000", "--rate-ip-tiles", "10000000",
               "--players-per-ip-per-min", "100000000", "--max-speed", "1e9"]
_servers = []          # every Server created, in order
_shared = {}           # name -> Server kept across tests
_notes = []            # extra lines printed before the summary
_failed_dirs = []


def note(line):
    """A line printed (prefixed with '# ') before the summary line."""
    _notes.append(line)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def short(x, n=300):
    if isinstance(x, bytes):
        try:
            x = x.decode("utf-8")
        except UnicodeDecodeError:
            x = repr(x)
    elif not isinstance(x, str):
        try:
            x = json.dumps(x, ensure_ascii=False)
        except (TypeError, ValueError):
            x = repr(x)
    x = x.replace("\n", "\\n").replace("\r", "\\r")
    return x if len(x) <= n else x[:n] + "...(%d chars)" % len(x)


# --------------------------------------------------------------------------- server
# VELTRIX_TEST_STORE=pg runs every server a test starts on PostgreSQL (tests/run_all.sh
# runs the black-box suite once more that way): a fresh database per data directory, so a
# server restarted on the same data keeps its store. Tests about the embedded store itself
# skip under it with a reason (on_pg). The databases are dropped at the end of the run
# (main), but a failed test's, which are kept with its data directory and named.
STORE = os.environ.get("VELTRIX_TEST_STORE", "sqlite")
_pg_stores = {}


def pg_store_of(data):
    if data not in _pg_stores:
        import pgutil  # noqa: E402 (only when asked: starts a PostgreSQL on first use)
        _pg_stores[data] = pgutil.fresh_db("vx_suite")
    return _pg_stores[data]


def on_pg(reason):
    """Skips the calling test (raises Skip, counted as skipped) when this run is on
    PostgreSQL and the test is about the embedded SQLite store; False otherwise."""
    if STORE == "pg":
        raise Skip("on PostgreSQL: " + reason)
    return False


class Server:
    def __init__(self, admin_key=ADMIN_KEY, token_ttl=None, fsync=None, demo=False,
                 env=None, args=(), data=None, shared=False):
        self.bin = BIN
        self.data = data or tempfile.mkdtemp(prefix="vx-bb-")
        self.port = free_port()
        self.admin_key = admin_key
        self.token_ttl = token_ttl
        self.fsync = fsync
        self.demo = demo
        self.env = env or {}
        self.args = list(args)
        self.proc = None
        self.starts = 0
        self.logs = []
        self.shared = shared
        self.expect_dead = False
        _servers.append(self)

    # command line and environment
    def cmd(self):
        c = [self.bin, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data", self.data]
        if STORE == "pg" and not any(a == "--store" or a.startswith("--store=") for a in self.args):
            c += ["--store", pg_store_of(self.data)]
        if self.admin_key is not None:
            c += ["--admin-key", self.admin_key]
        if self.token_ttl is not None:
            c += ["--token-ttl", str(self.token_ttl)]
        if self.fsync is not None:
            c += ["--fsync", self.fsync]
        if self.demo:
            c += ["--demo"]
        return c + TEST_LIMITS + self.args

    def start(self, timeout=10.0):
        if not self.bin or not os.path.isfile(self.bin):
            raise AssertionError("server binary not found: %s" % self.bin)
        if self.alive():
            raise AssertionError("start(): server already running")
        env = dict(os.environ)
        env.pop("VELTRIX_ADMIN_KEY", None)
        env.update(self.env)
        self.starts += 1
        errp = os.path.join(self.data, "vx-stderr.%d.log" % self.starts)
        outp = os.path.join(self.data, "vx-stdout.%d.log" % self.starts)
        self.logs.append(errp)
        self.outlogs = getattr(self, "outlogs", []) + [outp]
        with open(errp, "wb") as ef, open(outp, "wb") as of:
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=of,
                                         stderr=ef, env=env)
        self.expect_dead = False
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("server exited with %s during startup (%s)"
                                     % (rc, " ".join(self.cmd())))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return self
                last = "GET /healthz -> %d" % r.status
            except (OSError, http.client.HTTPException) as e:
                last = "GET /healthz: %s" % e
            time.sleep(0.05)
        self.kill()
        raise AssertionError("server not ready within %.0f s (%s)" % (timeout, last))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM; asserts exit code 0 within timeout."""
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            raise AssertionError("stop(): server not running (exit code %s)" % rc)
        self.expect_dead = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit within %.0f s of SIGTERM" % timeout)
        if rc != 0:
            raise AssertionError("server exited with %s after SIGTERM, expected 0" % rc)
        return rc

    def kill(self):
        self.expect_dead = True
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def client(self, **kw):
        return Client(self, **kw)

    def stderr_text(self):
        out = []
        for p in self.logs:
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(out)

    def stdout_text(self):
        out = []
        for p in getattr(self, "outlogs", []):
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(out)


def shared(name="default", **kw):
    """A server kept running across the tests of a file (started on first use)."""
    s = _shared.get(name)
    if s is not None and not s.alive():
        _shared.pop(name)
        raise AssertionError("shared server %r is not running (exit code %s)"
                             % (name, s.proc.returncode if s.proc else None))
    if s is None:
        s = Server(shared=True, **kw)
        s.start()
        _shared[name] = s
    return s


# --------------------------------------------------------------------------- client
class R(tuple):
    """(status, headers, body) with .status .headers .body .raw .desc"""

    def __new__(cls, status, headers, body, raw, desc):
        t = tuple.__new__(cls, (status, headers, body))
        t.status, t.headers, t.body, t.raw, t.desc = status, headers, body, raw, desc
        return t

    def code(self):
        return errcode(self.body)

    def __str__(self):
        return "%s -> %s %s" % (self.desc, self.status, short(self.body))


def encode_body(body):
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class Client:
    def __init__(self, server=None, port=None, timeout=10.0, retry=True):
        self.server = server
        self.port = port if port is not None else server.port
        self.timeout = timeout
        self.retry = retry
        self.conn = None
        self.used = 0

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None
        self.used = 0

    def req(self, method, path, body=None, token=None, headers=None, admin=False):
        data = encode_body(body)
        h = {}
        if data is not None:
            h["Content-Type"] = "application/json"
        if admin:
            token = self.server.admin_key
        if token is not None:
            h["Authorization"] = "Bearer " + token
        for k, v in (headers or {}).items():
            for kk in list(h):
                if kk.lower() == k.lower():
                    del h[kk]
            if v is not None:
                h[k] = v
        desc = "%s %s" % (method, path)
        if data is not None:
            desc += " body=" + short(data, 160)
        if headers:
            desc += " headers=" + short({k: (v[:40] + "..." if isinstance(v, str) and len(v) > 40 else v)
                                          for k, v in headers.items()}, 160)
        attempts = 2 if self.retry else 1
        for attempt in range(attempts):
            reused = self.conn is not None and self.used > 0
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.used = 0
            try:
                try:
                    self.conn.request(method, path, body=data, headers=h)
                    resp = self.conn.getresponse()
                except (BrokenPipeError, ConnectionResetError):
                    # the server may answer (413...) and close before reading the whole
                    # body: read that answer if it is there
                    if data is None or len(data) < 65536 or self.conn.sock is None:
                        raise
                    resp = http.client.HTTPResponse(self.conn.sock, method=method)
                    resp.begin()
                    resp.will_close = True
                raw = resp.read()
                self.used += 1
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                self.close()
                if reused and attempt + 1 < attempts:
                    continue  # the server closed an idle keep-alive connection
                raise ConnectionError("%s: connection error: %r" % (desc, e))
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise ConnectionError("%s: %r" % (desc, e))
            hd = {}
            for k, v in resp.getheaders():
                k = k.lower()
                hd[k] = hd[k] + ", " + v if k in hd else v
            if resp.will_close:
                self.close()
            parsed = raw
            if "json" in hd.get("content-type", "").lower() and raw:
                try:
                    parsed = json.loads(raw.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    parsed = raw
            return R(resp.status, hd, parsed, raw, desc)

    # JSON convenience with expectations
    def ok(self, method, path, body=None, token=None, headers=None, admin=False, status=200):
        r = self.req(method, path, body, token, headers, admin)
        check(r, status)
        return r.body


def errcode(body):
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code")
    return None


def error_shape_problem(body):
    if not isinstance(body, dict):
        return "error body is not a JSON object"
    e = body.get("error")
    if not isinstance(e, dict):
        return "no 'error' object"
    if not isinstance(e.get("code"), str) or not re.fullmatch(r"[a-z0-9_]+", e["code"]):
        return "error.code missing or not snake_case"
    if not isinstance(e.get("message"), str):
        return "error.message missing or not a string"
    return None


def check(r, status, code=None, what=""):
    """Assert r has the status (an int or a collection of ints) and, when given, the
    error code (a string or a collection); errors must have the documented shape."""
    statuses = (status,) if isinstance(status, int) else tuple(status)
    codes = None if code is None else ((code,) if isinstance(code, str) else tuple(code))
    pre = (what + ": ") if what else ""
    if r.status not in statuses:
        raise AssertionError("%s%s: expected %s%s, got %d %s" % (
            pre, r.desc, "/".join(map(str, statuses)), (" " + "/".join(codes)) if codes else "",
            r.status, short(r.body)))
    if r.status >= 400:
        p = error_shape_problem(r.body)
        if p:
            raise AssertionError("%s%s: %d with bad error body (%s): %s" % (
                pre, r.desc, r.status, p, short(r.body)))
        if codes and errcode(r.body) not in codes:
            raise AssertionError("%s%s: expected %d %s, got %d %s" % (
                pre, r.desc, r.status, "/".join(codes), r.status, short(r.body)))
    elif codes is None and not isinstance(r.body, (dict, list)) and "json" in r.headers.get(
            "content-type", "") and r.raw:
        raise AssertionError("%s%s: %d with unparsable JSON body %s" % (pre, r.desc, r.status, short(r.raw)))
    return r


class Collect:
    """Soft assertions: gather every failure of a list of cases, then raise once."""

    def __init__(self):
        self.problems = []

    def check(self, *a, **kw):
        try:
            return check(*a, **kw)
        except AssertionError as e:
            self.problems.append(str(e))

    def eq(self, *a):
        try:
            eq(*a)
        except AssertionError as e:
            self.problems.append(str(e))

    def done(self, n=None):
        if self.problems:
            raise AssertionError("%d%s cases failed: %s" % (
                len(self.problems), " of %d" % n if n else "", " || ".join(self.problems[:15])))


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: expected %s, got %s" % (what, short(want, 400), short(got, 400)))


def true(cond, what):
    if not cond:
        raise AssertionError(what)


# --------------------------------------------------------------------------- API helpers
def new_player(c, name="Player"):
    r = c.req("POST", "/v1/players", {"display_name": name})
    check(r, 201)
    b = r.body
    for k in ("player_id", "token", "refresh_token"):
        true(isinstance(b, dict) and isinstance(b.get(k), str) and b[k],
             "POST /v1/players: field %r missing or not a non-empty string in %s" % (k, short(b)))
    return b["player_id"], b["token"], b["refresh_token"]


def put_hunt(c, hunt, definition, status=(200, 201)):
    r = c.req("PUT", "/v1/hunts/" + hunt, definition, admin=True)
    check(r, status)
    return r


def get_hunt(c, hunt):
    r = c.req("GET", "/v1/hunts/" + hunt)
    check(r, 200)
    return r.body


def codes_of(c, hunt):
    """{code id: payload}"""
    r = c.req("GET", "/v1/hunts/%s/codes" % hunt, admin=True)
    check(r, 200)
    true(isinstance(r.body, dict) and isinstance(r.body.get("codes"), list),
         "GET codes: no codes list: %s" % short(r.body))
    return {x["id"]: x["payload"] for x in r.body["codes"]}


def me(c, hunt, token):
    r = c.req("GET", "/v1/hunts/%s/me" % hunt, token=token)
    check(r, 200)
    return r.body


def digest(c, hunt):
    r = c.req("GET", "/v1/hunts/%s/digest" % hunt, admin=True)
    check(r, 200)
    b = r.body
    true(isinstance(b, dict) and isinstance(b.get("seq"), int) and isinstance(b.get("digest"), str)
         and re.fullmatch(r"[0-9a-fA-F]{16}", b["digest"]),
         "GET digest: expected {seq: int, digest: 16 hex}, got %s" % short(b))
    return b["seq"], b["digest"].lower()


def scan(c, hunt, token, payload, headers=None):
    return c.req("POST", "/v1/hunts/%s/scans" % hunt, {"code": payload}, token=token, headers=headers)


def collect(c, hunt, token, item, headers=None):
    return c.req("POST", "/v1/hunts/%s/items/%s/collect" % (hunt, item), token=token, headers=headers)


def open_zone(c, hunt, token, zone, headers=None):
    return c.req("POST", "/v1/hunts/%s/zones/%s/open" % (hunt, zone), {}, token=token, headers=headers)


def leaderboard(c, hunt, query=""):
    r = c.req("GET", "/v1/hunts/%s/leaderboard%s" % (hunt, query))
    check(r, 200)
    return r.body


def basic_def(name="Test hunt", width=64, height=64, codes=(), items=(), zones=(), **extra):
    d = {"name": name, "map": {"width": width, "height": height},
         "codes": list(codes), "items": list(items), "zones": list(zones)}
    d.update(extra)
    return d


# --------------------------------------------------------------------------- raw HTTP
def raw_http(port, data, timeout=5.0):
    """Sends raw bytes; returns (status, response_bytes, how) where status is None when
    the server closed the connection without a response ('closed') or sent nothing
    before the timeout ('timeout')."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    how = "response"
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                how = "timeout"
                break
            except (ConnectionResetError, OSError):
                break
            if not chunk:
                break
            buf += chunk
            hdr_end = buf.find(b"\r\n\r\n")
            if hdr_end >= 0:
                head = buf[:hdr_end].decode("latin-1")
                m = re.search(r"(?im)^content-length:\s*(\d+)", head)
                if m and len(buf) >= hdr_end + 4 + int(m.group(1)):
                    break
                if re.search(r"(?im)^transfer-encoding:\s*chunked", head) and buf.endswith(b"0\r\n\r\n"):
                    break
                if re.match(r"HTTP/1\.[01] (1\d\d|204|304)", head):
                    break
        else:
            how = "timeout"
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    if m:
        return int(m.group(1)), buf, "response"
    return None, buf, ("closed" if how == "response" else how)


def healthz(port):
    c = Client(port=port, timeout=5.0)
    try:
        r = c.req("GET", "/healthz")
    finally:
        c.close()
    return r


def assert_serving(server, what="after bad input"):
    if not server.alive():
        raise AssertionError("%s: server process died (exit code %s)" % (what, server.proc.returncode))
    try:
        r = healthz(server.port)
    except ConnectionError as e:
        raise AssertionError("%s: GET /healthz failed: %s" % (what, e))
    if r.status != 200:
        raise AssertionError("%s: GET /healthz -> %d %s" % (what, r.status, short(r.body)))


# --------------------------------------------------------------------------- runner
_tests = []

# Map tiles (issue 4) are served: their cases run by default. VELTRIX_TEST_TILES=0 leaves
# them out (for a build without tiles), and every test that does says so in its output.
TILES = os.environ.get("VELTRIX_TEST_TILES", "1") == "1"
_skipped_parts = []


class Skip(Exception):
    pass


def is_tile_path(path):
    return path.startswith("/tiles/") or "/tiles/" in path or "/map/publish" in path


def without_tiles(cases, path_index=1):
    """cases minus the tile routes unless TILES; notes what was left out."""
    if TILES:
        return cases
    kept = [c for c in cases if not is_tile_path(c[path_index])]
    if len(kept) != len(cases):
        _skipped_parts.append(len(cases) - len(kept))
    return kept


def skip_unless_tiles():
    if not TILES:
        raise Skip("map tiles are issue 4 (set VELTRIX_TEST_TILES=1)")


def test(fn):
    _tests.append(fn)
    return fn


def _tail(text, n=2500):
    text = text.rstrip()
    return text if len(text) <= n else "..." + text[-n:]


def run_all():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/veltrix")
    ap.add_argument("--only", default=None, help="run tests whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep data directories")
    args = ap.parse_args()
    BIN = os.path.abspath(args.bin)
    passed = failed = skipped = 0
    t_start = time.time()
    for fn in _tests:
        name = fn.__name__
        if args.only and args.only not in name:
            continue
        n_before = len(_servers)
        t0 = time.time()
        reason = None
        try:
            fn()
        except Skip as e:
            skipped += 1
            print("skip %s: %s" % (name, e))
            continue
        except AssertionError as e:
            reason = str(e) or "assertion failed"
        except ConnectionError as e:
            reason = "connection error: %s" % e
        except Exception as e:  # a bug in the test, or an unexpected server answer
            reason = "%s: %s | %s" % (type(e).__name__, e,
                                      traceback.format_exc().strip().splitlines()[-3].strip())
        involved = _servers[n_before:] + [s for s in _shared.values() if s not in _servers[n_before:]]
        # servers started by this test: stop them (checking a clean SIGTERM exit)
        for s in _servers[n_before:]:
            if s.shared:
                continue
            if s.alive():
                if reason is None:
                    try:
                        s.stop()
                    except AssertionError as e:
                        reason = "at end of test: %s" % e
                else:
                    s.kill()
            elif s.proc is not None and not s.expect_dead and reason is None:
                reason = "server process died during the test (exit code %s)" % s.proc.returncode
        for s in list(_shared.values()):
            if s.proc is not None and not s.alive() and not s.expect_dead:
                if reason is None:
                    reason = "shared server died during this test (exit code %s)" % s.proc.returncode
                s.expect_dead = True
        dt = time.time() - t0
        if reason is None:
            passed += 1
            print("ok %s (%.1fs)" % (name, dt))
        else:
            failed += 1
            print("not ok %s: %s" % (name, reason.replace("\n", " | ")))
            for s in involved:
                if s.proc is None:
                    continue
                _failed_dirs.append(s.data)
                # only what the server wrote since it was last shown, last 12 lines
                full = s.stderr_text()
                seen = getattr(s, "shown", 0)
                s.shown = len(full)
                lines = full[seen:].rstrip().splitlines()
                print("#   server stderr (%s, port %d)%s:" % (s.data, s.port, "" if seen == 0 else ", new lines"))
                for line in (lines[-12:] or ["(nothing new)"]):
                    print("#     " + line[:300])
        sys.stdout.flush()
    # shut the shared servers down: a clean SIGTERM exit is part of the contract
    for name, s in list(_shared.items()):
        if s.alive():
            try:
                s.stop()
                passed += 1
                print("ok shutdown_%s" % name)
            except AssertionError as e:
                failed += 1
                print("not ok shutdown_%s: %s" % (name, e))
                _failed_dirs.append(s.data)
    for s in _servers:
        if s.alive():
            s.kill()
    if not args.keep:
        for s in _servers:
            if s.data not in _failed_dirs and os.path.isdir(s.data) and "vx-bb-" in s.data:
                shutil.rmtree(s.data, ignore_errors=True)
    if "pgutil" in sys.modules and not args.keep:  # fresh databases were made
        keep = {_pg_stores[d] for d in _failed_dirs if d in _pg_stores}
        try:
            for db in sys.modules["pgutil"].drop_dbs(keep):
                _notes.append("kept PostgreSQL database %s (a failed test's store)" % db)
        except AssertionError as e:
            failed += 1
            print("not ok drop_databases: %s" % e)
    for line in _notes:
        print("# " + line)
    print("# %.1f s" % (time.time() - t_start))
    if _skipped_parts:
        print("# %d tile cases left out (VELTRIX_TEST_TILES=1 runs them)" % sum(_skipped_parts))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)


# --------------------------------------------------------------------------- limits
class SourceClient(Client):
    """A Client whose connections come from another loopback address (Linux routes all of
    127/8 to lo), so a test can be a second client address: SourceClient(server, "127.0.0.2")."""

    def __init__(self, server, source, **kw):
        Client.__init__(self, server, **kw)
        self.source = source

    def req(self, *a, **kw):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                                   source_address=(self.source, 0))
            self.used = 0
        return Client.req(self, *a, **kw)


def metric(c, name, labels=""):
    """The value of one line of /metrics, e.g. metric(c, "veltrix_connections")."""
    r = c.req("GET", "/metrics")
    check(r, 200)
    m = re.search(r"(?m)^%s%s (\d+)$" % (re.escape(name), re.escape(labels)), r.raw.decode())
    true(m, "/metrics has no %s%s" % (name, labels))
    return int(m.group(1))
# --------------------------------------------------------------------------- map tiles
def put_tile(c, hunt, x, y, data, ctype="image/png", status=204):
    r = c.req("PUT", "/v1/hunts/%s/tiles/%d/%d" % (hunt, x, y), data, admin=True,
              headers={"Content-Type": ctype})
    check(r, status, what="stage tile %d/%d" % (x, y))
    return r


def publish(c, hunt):
    """Publishes hunt's draft; returns the new version."""
    r = c.req("POST", "/v1/hunts/%s/map/publish" % hunt, {}, admin=True)
    check(r, 200, what="publish")
    return r.body["version"]
# --------------------------------------------------------------------------- WebSocket
class WSClosed(Exception):
    """The server closed the WebSocket: .code is the close code (None: no close frame)."""

    def __init__(self, code, reason=b""):
        Exception.__init__(self, "closed with %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class WS:
    """A minimal RFC 6455 client (standard library only). After __init__, .status is the
    HTTP status of the handshake answer (101 when upgraded) and, when not upgraded, .body
    the parsed JSON answer. recv_json() answers pings and returns the next text message
    as JSON; it raises WSClosed on a close frame or EOF, socket.timeout on timeout."""

    def __init__(self, port, path, timeout=10.0, rcvbuf=None, connect=True):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.buf = b""
        self.status, self.body, self.pongs = None, None, []
        self.s.connect(("127.0.0.1", port))
        key = __import__("base64").b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])
        if self.status == 101:
            import hashlib, base64
            want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                                 .encode()).digest())
            if want.lower() not in head.lower():
                raise AssertionError("bad Sec-WebSocket-Accept in %r" % head)
            return
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(self.buf) < n:
            self._fill()
        try:
            self.body = json.loads(self.buf[:n])
        except ValueError:
            self.body = self.buf[:n]
        self.close()

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise WSClosed(None)
        self.buf += d

    def _need(self, n):
        while len(self.buf) < n:
            self._fill()

    def send_raw(self, data):
        self.s.sendall(data)

    @staticmethod
    def frame(opcode, payload, fin=True, mask=True, rsv=0, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | rsv | opcode
        mbit = 0x80 if mask else 0
        if n < 126:
            h = bytes([b0, mbit | n])
        elif n < 65536:
            h = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
        else:
            h = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
        if not mask:
            return h + payload
        k = os.urandom(4)
        return h + k + bytes(c ^ k[i & 3] for i, c in enumerate(payload))

    def send(self, opcode, payload, **kw):
        self.s.sendall(self.frame(opcode, payload, **kw))

    def send_json(self, obj):
        self.send(1, json.dumps(obj).encode())

    def recv_frame(self):
        """(opcode, payload) of the next server frame (must be unmasked and final)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise AssertionError("server frame is masked")
        n, off = b1 & 0x7f, 2
        if n == 126:
            self._need(4)
            n, off = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10)
            n, off = int.from_bytes(self.buf[2:10], "big"), 10
        self._need(off + n)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        if not b0 & 0x80:
            raise AssertionError("server frame not final")
        return b0 & 0x0f, payload

    def recv_json(self):
        while True:
            op, p = self.recv_frame()
            if op == 9:
                self.send(10, p)
                continue
            if op == 10:
                self.pongs.append(p)
                continue
            if op == 8:
                code = int.from_bytes(p[:2], "big") if len(p) >= 2 else None
                raise WSClosed(code, p[2:])
            if op != 1:
                raise AssertionError("unexpected opcode %d" % op)
            return json.loads(p)

    def expect_close(self):
        """Reads until the close frame; returns (close code, text messages before it)."""
        msgs = []
        try:
            while True:
                msgs.append(self.recv_json())
        except WSClosed as e:
            return e.code, msgs

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def live(port, hunt, token, since=None, **kw):
    path = "/v1/hunts/%s/live?token=%s" % (hunt, token)
    if since is not None:
        path += "&since=%d" % since
    return WS(port, path, **kw)
