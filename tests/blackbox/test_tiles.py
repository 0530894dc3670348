"""Black-box tests: map tiles (API.md "Map tiles", issue 4) — publish atomicity under
concurrent reads, ETag/304, ?v= and 410, bounds, oversize, the memory limit, restarts
(SIGTERM and SIGKILL) keeping versions and the draft, metrics, `veltrix tiles import`
(and what it refuses to read: links, FIFOs, devices, sockets), the headers that keep a
tile from running as a page."""
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, test, true  # noqa: E402


def hunt(c, name, w=8, h=8):
    vx.put_hunt(c, name, vx.basic_def(name="tiles " + name, width=w, height=h), status=201)


def tile_bytes(version, x, y, pad=300):
    """A tile that names its version and position (so a reader can check it)."""
    head = b"V%d|%d|%d|" % (version, x, y)
    return head + bytes((version * 31 + x * 7 + y + i) % 251 for i in range(pad))


def stage_all(c, name, version, w, h):
    for x in range(w):
        for y in range(h):
            vx.put_tile(c, name, x, y, tile_bytes(version, x, y))


@test
def publish_is_atomic_under_concurrent_reads():
    """Readers fetching whole map views while versions are staged and published: every
    response's bytes belong to the version its X-Map-Version names, versions never go
    back for a reader, one ETag always means the same bytes, and staged tiles never show."""
    s = vx.Server().start()
    c = s.client()
    w = h = 6
    hunt(c, "at", w, h)
    stage_all(c, "at", 1, w, h)
    eq(vx.publish(c, "at"), 1, "first version")
    stop = threading.Event()
    problems, seen_versions, reads = [], set(), [0]
    etags = {}
    lock = threading.Lock()

    def reader(k):
        rc = s.client()
        last = 0
        try:
            while not stop.is_set():
                for x in range(w):
                    for y in range(h):
                        r = rc.req("GET", "/tiles/at/%d/%d" % (x, y))
                        if r.status != 200:
                            problems.append("%s -> %d" % (r.desc, r.status))
                            return
                        v = int(r.headers.get("x-map-version", "0"))
                        m = re.match(rb"V(\d+)\|(\d+)\|(\d+)\|", r.raw)
                        if not m or (int(m.group(1)), int(m.group(2)), int(m.group(3))) != (v, x, y):
                            problems.append("%s: X-Map-Version %d with bytes %r" % (r.desc, v, r.raw[:20]))
                            return
                        if v < last:
                            problems.append("reader %d: version went back from %d to %d" % (k, last, v))
                            return
                        last = v
                        with lock:
                            seen_versions.add(v)
                            reads[0] += 1
                            if etags.setdefault(r.headers.get("etag"), r.raw) != r.raw:
                                problems.append("one ETag for two contents: %s" % r.headers.get("etag"))
                                return
        finally:
            rc.close()

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for v in range(2, 7):
            stage_all(c, "at", v, w, h)  # staged: readers must keep seeing v - 1
            eq(vx.publish(c, "at"), v, "version")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    true(not problems, "; ".join(problems[:5]))
    true(reads[0] >= 4 * w * h, "readers made only %d requests" % reads[0])
    true(len(seen_versions) >= 2, "readers saw only versions %s" % sorted(seen_versions))
    vx.note("atomicity: %d reads saw versions %s" % (reads[0], sorted(seen_versions)))


@test
def etag_and_not_modified():
    s = vx.shared()
    c = s.client()
    hunt(c, "et")
    vx.put_tile(c, "et", 1, 2, b"\x89PNG etag tile", "image/png")
    vx.put_tile(c, "et", 2, 2, b"\x89PNG etag tile", "image/png")  # same bytes elsewhere
    vx.publish(c, "et")
    r = c.req("GET", "/tiles/et/1/2")
    check(r, 200)
    etag = r.headers.get("etag")
    true(etag and etag.startswith('"') and etag.endswith('"'), "ETag is a quoted string: %r" % etag)
    eq(c.req("GET", "/tiles/et/2/2").headers.get("etag"), etag, "ETag of the same bytes")
    for inm in (etag, 'W/' + etag, '"nope", ' + etag, "*"):
        r = c.req("GET", "/tiles/et/1/2", headers={"If-None-Match": inm})
        check(r, 304, what="If-None-Match: %s" % inm)
        eq(r.raw, b"", "304 body")
        eq(r.headers.get("etag"), etag, "ETag on the 304")
        eq(r.headers.get("x-map-version"), "1", "X-Map-Version on the 304")
    for inm in ('"nope"', etag[:-2] + '"', ""):
        check(c.req("GET", "/tiles/et/1/2", headers={"If-None-Match": inm}), 200, what="If-None-Match: %r" % inm)
    r = c.req("GET", "/tiles/et/1/2?v=1", headers={"If-None-Match": etag})
    check(r, 304, what="?v=1 with its ETag")
    eq(r.headers.get("cache-control"), "public, max-age=31536000, immutable", "Cache-Control of a 304 for ?v=")
    # a new version with other bytes: new ETag, the old one no longer matches
    vx.put_tile(c, "et", 1, 2, b"\x89PNG changed", "image/png")
    vx.publish(c, "et")
    r = c.req("GET", "/tiles/et/1/2", headers={"If-None-Match": etag})
    check(r, 200, what="old ETag after a change")
    true(r.headers.get("etag") != etag, "ETag changed with the bytes")
    # an unchanged tile keeps its ETag across versions (clients keep their cache)
    r = c.req("GET", "/tiles/et/2/2", headers={"If-None-Match": etag})
    check(r, 304, what="unchanged tile in version 2")
    eq(r.headers.get("x-map-version"), "2", "X-Map-Version of the unchanged tile")
    m = c.req("GET", "/metrics").raw.decode()
    true(re.search(r"^veltrix_tiles_not_modified_total [1-9]", m, re.M), "304s counted in /metrics")
    true(re.search(r"^veltrix_tiles_served_total [1-9]", m, re.M), "tiles counted in /metrics")


@test
def versions_kept_and_gone():
    s = vx.shared()
    c = s.client()
    hunt(c, "vg")
    for v in range(1, 6):
        vx.put_tile(c, "vg", 0, 0, tile_bytes(v, 0, 0), "image/png")
        eq(vx.publish(c, "vg"), v, "version")
    eq(vx.get_hunt(c, "vg")["map_version"], 5, "map_version")
    for v in (3, 4, 5):
        r = c.req("GET", "/tiles/vg/0/0?v=%d" % v)
        check(r, 200, what="kept version %d" % v)
        eq(r.raw, tile_bytes(v, 0, 0), "bytes of version %d" % v)
        eq(r.headers.get("x-map-version"), str(v), "X-Map-Version of ?v=%d" % v)
        eq(r.headers.get("cache-control"), "public, max-age=31536000, immutable", "Cache-Control of ?v=")
    for v in (1, 2):
        check(c.req("GET", "/tiles/vg/0/0?v=%d" % v), 410, "version_gone", what="expired version %d" % v)
    check(c.req("GET", "/tiles/vg/0/0?v=6"), 404, "tile_not_found", what="a version not published yet")
    for q in ("0", "-1", "abc", "", "1.5", "99999999999999999999"):
        check(c.req("GET", "/tiles/vg/0/0?v=" + q), 400, "invalid_request", what="?v=%s" % q)
    r = c.req("GET", "/tiles/vg/0/0")
    eq(r.headers.get("cache-control"), "public, max-age=5", "Cache-Control of the current version")


@test
def bounds_and_unknowns():
    s = vx.shared()
    c = s.client()
    hunt(c, "bd", 4, 3)
    check(c.req("GET", "/tiles/bd/0/0"), 404, "tile_not_found", what="before the first publish")
    vx.put_tile(c, "bd", 3, 2, b"corner")
    vx.publish(c, "bd")
    check(c.req("GET", "/tiles/bd/3/2"), 200, what="the last tile of a 4x3 map")
    for x, y in ((4, 0), (0, 3), (-1, 0), (0, -1), (4095, 4095), (999999, 0)):
        check(c.req("PUT", "/v1/hunts/bd/tiles/%d/%d" % (x, y), b"x", admin=True), 400, "out_of_bounds",
              what="PUT %d/%d" % (x, y))
        check(c.req("GET", "/tiles/bd/%d/%d" % (x, y)), 400, "out_of_bounds", what="GET %d/%d" % (x, y))
    for xy in ("a/0", "0/1e3", "+1/0", "1.0/0", "0x1/0", "12345678/0", "-/0"):
        check(c.req("PUT", "/v1/hunts/bd/tiles/" + xy, b"x", admin=True), 400, "invalid_request", what="PUT " + xy)
        check(c.req("GET", "/tiles/bd/" + xy), 400, "invalid_request", what="GET " + xy)
    check(c.req("GET", "/tiles/nohunt/0/0"), 404, "hunt_not_found")
    check(c.req("PUT", "/v1/hunts/nohunt/tiles/0/0", b"x", admin=True), 404, "hunt_not_found")
    check(c.req("POST", "/v1/hunts/nohunt/map/publish", {}, admin=True), 404, "hunt_not_found")
    check(c.req("GET", "/tiles/BAD!/0/0"), 400, "invalid_id")
    check(c.req("PUT", "/v1/hunts/bd/tiles/0/0", b"x"), 401, "unauthorized")
    check(c.req("POST", "/v1/hunts/bd/map/publish", {}), 401, "unauthorized")
    check(c.req("POST", "/v1/hunts/bd/map/publish", b"[1]", admin=True), 400, "invalid_request")
    check(c.req("POST", "/v1/hunts/bd/map/publish", b"{", admin=True), 400, "invalid_json")
    check(c.req("PUT", "/v1/hunts/bd/tiles/0/0", b"x", admin=True, headers={"Content-Type": "a" * 200}),
          400, "invalid_request", what="a 200-byte Content-Type")
    eq(vx.get_hunt(c, "bd")["map_version"], 1, "rejected publishes changed nothing")


@test
def oversize_and_content_types():
    s = vx.shared()
    c = s.client()
    hunt(c, "os")
    vx.put_tile(c, "os", 0, 0, b"small", "image/svg+xml")
    r = c.req("PUT", "/v1/hunts/os/tiles/0/0", b"\x02" * ((1 << 20) + 1), admin=True,
              headers={"Content-Type": "image/png"})
    check(r, 413, "payload_too_large", what="1 MiB + 1")
    vx.put_tile(c, "os", 1, 0, b"\x03" * (1 << 20), "image/png")
    r = c.req("PUT", "/v1/hunts/os/tiles/2/0", b"no type", admin=True, headers={"Content-Type": None})
    check(r, 204)
    vx.put_tile(c, "os", 3, 0, b"", "image/png")  # an empty tile is a tile
    vx.publish(c, "os")
    r = c.req("GET", "/tiles/os/0/0")
    eq(r.raw, b"small", "the draft kept its tile after the 413")
    eq(r.headers.get("content-type"), "image/svg+xml", "content type kept")
    r = c.req("GET", "/tiles/os/1/0")
    eq(len(r.raw), 1 << 20, "a 1 MiB tile")
    eq(c.req("GET", "/tiles/os/2/0").headers.get("content-type"), "application/octet-stream", "default type")
    r = c.req("GET", "/tiles/os/3/0")
    check(r, 200)
    eq(r.raw, b"", "empty tile")


@test
def publish_idempotency_key():
    s = vx.shared()
    c = s.client()
    hunt(c, "ik")
    vx.put_tile(c, "ik", 0, 0, b"ik")
    h = {"Idempotency-Key": "publish-ik-1"}
    r1 = c.req("POST", "/v1/hunts/ik/map/publish", {}, admin=True, headers=h)
    r2 = c.req("POST", "/v1/hunts/ik/map/publish", {}, admin=True, headers=h)
    check(r1, 200)
    check(r2, 200)
    eq(r2.body, r1.body, "replayed publish")
    eq(r2.headers.get("idempotent-replayed"), "true", "Idempotent-Replayed")
    eq(vx.get_hunt(c, "ik")["map_version"], 1, "one publish")


@test
def memory_limit():
    s = vx.Server(args=["--tiles-bytes-max", "3000"]).start()
    c = s.client()
    hunt(c, "ml")
    vx.put_tile(c, "ml", 0, 0, b"a" * 2000)
    r = c.req("PUT", "/v1/hunts/ml/tiles/1/0", b"b" * 2000, admin=True, headers={"Content-Type": "image/png"})
    check(r, 503, "tile_limit", what="over --tiles-bytes-max")
    true(r.headers.get("retry-after"), "Retry-After on 503")
    vx.put_tile(c, "ml", 1, 0, b"a" * 2000)  # the same bytes again cost nothing
    vx.put_tile(c, "ml", 2, 0, b"c" * 900)
    vx.publish(c, "ml")
    check(c.req("GET", "/tiles/ml/1/0"), 200)
    m = c.req("GET", "/metrics").raw.decode()
    true(re.search(r"^veltrix_tiles_rejected_full_total 1$", m, re.M), "rejections counted")
    true(re.search(r"^veltrix_tiles_memory_bytes 2900$", m, re.M), "distinct bytes held: %s" %
         re.findall(r"^veltrix_tiles_memory_bytes .*$", m, re.M))
    true(re.search(r'^veltrix_tiles_version_bytes\{hunt="ml",version="1"\} 4900$', m, re.M),
         "bytes of version 1 in /metrics")
    true(re.search(r'^veltrix_tiles_version_tiles\{hunt="ml",version="1"\} 3$', m, re.M),
         "tiles of version 1 in /metrics")
    true(re.search(r'^veltrix_tiles_draft_bytes\{hunt="ml"\} 4900$', m, re.M), "draft bytes in /metrics")


def snapshot(c, name, w, h, versions):
    out = {}
    for v in versions:
        for x in range(w):
            for y in range(h):
                r = c.req("GET", "/tiles/%s/%d/%d%s" % (name, x, y, "?v=%d" % v if v else ""))
                out[(v, x, y)] = (r.status, r.raw, r.headers.get("etag"), r.headers.get("content-type"),
                                  r.headers.get("x-map-version"))
    return out


@test
def restart_keeps_versions_and_draft():
    s = vx.Server(fsync="always").start()
    c = s.client()
    hunt(c, "rs", 3, 3)
    for v in range(1, 5):
        vx.put_tile(c, "rs", v % 3, 1, tile_bytes(v, v % 3, 1), "image/webp" if v % 2 else "image/png")
        vx.publish(c, "rs")
    vx.put_tile(c, "rs", 2, 2, b"draft only")
    before = snapshot(c, "rs", 3, 3, (None, 1, 2, 3, 4))
    hunt_before = vx.get_hunt(c, "rs")
    c.close()
    s.restart()
    c = s.client()
    eq(snapshot(c, "rs", 3, 3, (None, 1, 2, 3, 4)), before, "tiles, ETags, types and 410s after a restart")
    eq(vx.get_hunt(c, "rs"), hunt_before, "hunt after a restart")
    check(c.req("GET", "/tiles/rs/2/2"), 404, "tile_not_found", what="draft tile still unpublished")
    # SIGKILL right after acknowledged uploads and a publish
    vx.put_tile(c, "rs", 0, 0, b"acked before kill")
    eq(vx.publish(c, "rs"), 5, "version 5")
    vx.put_tile(c, "rs", 1, 0, b"staged before kill")
    c.close()
    s.kill()
    s.start()
    c = s.client()
    eq(c.req("GET", "/tiles/rs/0/0").raw, b"acked before kill", "published tile after SIGKILL")
    eq(c.req("GET", "/tiles/rs/1/0").status, 404, "draft tile not published by the restart")
    check(c.req("GET", "/tiles/rs/0/0?v=2"), 410, "version_gone", what="version 2 after 5 publishes")
    eq(vx.publish(c, "rs"), 6, "version 6 after SIGKILL")
    eq(c.req("GET", "/tiles/rs/2/2?v=3").status, 410, "version 3 after 6 publishes")
    eq(c.req("GET", "/tiles/rs/2/2").raw, b"draft only", "draft survived two restarts")
    eq(c.req("GET", "/tiles/rs/1/0").raw, b"staged before kill", "acknowledged draft upload after SIGKILL")


@test
def demo_map_is_served():
    s = vx.Server(demo=True).start()
    c = s.client()
    b = vx.get_hunt(c, "demo")
    eq(b["map_version"], 1, "demo map published")
    w, h = b["map"]["width"], b["map"]["height"]
    for x, y in ((0, 0), (w - 1, h - 1), (w // 2, 3)):
        r = c.req("GET", "/tiles/demo/%d/%d" % (x, y))
        check(r, 200, what="demo tile %d/%d" % (x, y))
        eq(r.headers.get("content-type"), "image/svg+xml", "demo tile type")
        true(r.raw.startswith(b"<svg") and (b">%d,%d<" % (x, y)) in r.raw, "an SVG naming its tile")


def run_import(data, name, d, extra=(), timeout=120):
    """(exit code, stderr) of `veltrix tiles import`; a hang past timeout fails the test."""
    try:
        store = ["--store", vx.pg_store_of(data)] if vx.STORE == "pg" else []
        p = subprocess.run([vx.BIN, "tiles", "import", name, d, "--data", data] + store + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("tiles import of %s still running after %d s (killed)" % (d, timeout))
    return p.returncode, p.stderr.decode("utf-8", "replace")


def write_tiles(d, files):
    for (x, name), data in files.items():
        os.makedirs(os.path.join(d, str(x)), exist_ok=True)
        with open(os.path.join(d, str(x), name), "wb") as f:
            f.write(data)


@test
def import_command():
    s = vx.Server().start()
    c = s.client()
    hunt(c, "im", 16, 16)
    vx.put_tile(c, "im", 15, 15, b"uploaded before import")
    eq(vx.publish(c, "im"), 1, "version 1 by upload")
    d = tempfile.mkdtemp(prefix="vx-tiles-")
    files = {}
    for x in range(16):
        for y in range(16):
            files[(x, "%d.%s" % (y, "svg" if (x + y) % 2 else "png"))] = tile_bytes(2, x, y, pad=1200)
    del files[(15, "15.png")]  # keeps the uploaded tile in the draft
    write_tiles(d, files)
    rc, err = run_import(s.data, "im", d)
    # SQLite: the data directory's lock; PostgreSQL: the server's sessions on the database.
    why = "other veltrix session" if vx.STORE == "pg" else "lock"
    true(rc != 0 and why in err, "import refused while the server runs (rc %d: %s)"
         % (rc, err.strip()))
    c.close()
    s.stop()
    rc, err = run_import(s.data, "im", d)
    eq(rc, 0, "import exit code (%s)" % err.strip())
    bad = tempfile.mkdtemp(prefix="vx-tiles-bad-")
    write_tiles(bad, {(0, "0.png"): b"fine", (16, "0.png"): b"outside"})
    rc, err = run_import(s.data, "im", bad)
    true(rc != 0 and "16" in err, "a column outside the map is refused (rc %d: %s)" % (rc, err.strip()))
    rc, err = run_import(s.data, "nohunt", d)
    true(rc != 0 and "no hunt" in err, "unknown hunt refused: %s" % err.strip())
    s.start()
    c = s.client()
    eq(vx.get_hunt(c, "im")["map_version"], 2, "the import published version 2 (refused imports changed nothing)")
    for (x, name), data in list(files.items())[:40]:
        y = int(name.split(".")[0])
        r = c.req("GET", "/tiles/im/%d/%d" % (x, y))
        check(r, 200)
        eq(r.raw, data, "imported tile %d/%d" % (x, y))
        eq(r.headers.get("content-type"), "image/svg+xml" if name.endswith("svg") else "image/png", "type")
    eq(c.req("GET", "/tiles/im/15/15").raw, b"uploaded before import", "draft carried over")
    eq(c.req("GET", "/tiles/im/0/1?v=1").status, 404, "version 1 had no tile 0/1")
    eq(vx.publish(c, "im"), 3, "publishing after an import")
    eq(c.req("GET", "/tiles/im/3/4").raw, files[(3, "4.svg")], "the draft holds the import")


@test
def import_reads_only_regular_files_inside_the_bundle():
    """A hostile bundle: 1/1.png a symbolic link to the server's secret.key (the key that
    signs player tokens), 0/0.png a FIFO (an open that would wait forever), column 2 a
    symbolic link to a directory outside, 3/0.png a socket, 3/2.png a link to a tile inside
    the bundle and, when root, 3/1.png a device (/dev/zero). The import exits 0, names each
    skipped entry on stderr with the reason and counts them in its summary; the regular
    tiles are imported and none of the skipped positions serves anything."""
    s = vx.Server().start()
    c = s.client()
    hunt(c, "hx", 4, 4)
    c.close()
    s.stop()
    key_path = os.path.join(s.data, "secret.key")
    with open(key_path, "rb") as f:
        key = f.read()
    eq(len(key), 32, "secret.key length")
    d = tempfile.mkdtemp(prefix="vx-tiles-hostile-")
    outside = tempfile.mkdtemp(prefix="vx-tiles-outside-")
    try:
        import_hostile_bundle(s, d, outside, key_path, key)
    finally:  # rmtree removes links without following them
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)


def import_hostile_bundle(s, d, outside, key_path, key):
    """The body of the test above (the caller removes d and outside)."""
    with open(os.path.join(outside, "0.png"), "wb") as f:
        f.write(b"outside the bundle")
    good = {(0, "1.png"): b"tile 0/1", (1, "0.svg"): b"<svg>1,0</svg>", (3, "3.png"): b"tile 3/3"}
    write_tiles(d, good)
    os.makedirs(os.path.join(d, "1"), exist_ok=True)
    os.symlink(key_path, os.path.join(d, "1", "1.png"))
    os.mkfifo(os.path.join(d, "0", "0.png"))
    os.symlink(outside, os.path.join(d, "2"))
    os.symlink("../3/3.png", os.path.join(d, "3", "2.png"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.path.join(d, "3", "0.png"))
    skips = {"1/1.png": "a symbolic link", "0/0.png": "a FIFO", "2": "a symbolic link",
             "3/2.png": "a symbolic link", "3/0.png": "a socket"}
    try:
        os.mknod(os.path.join(d, "3", "1.png"), stat.S_IFCHR | 0o600, os.makedev(1, 5))
        skips["3/1.png"] = "a character device"
    except (PermissionError, AttributeError):
        vx.note("import_reads_only_regular_files_inside_the_bundle: no device node (not root)")
    try:
        rc, err = run_import(s.data, "hx", d, timeout=30)
    finally:
        sock.close()
    eq(rc, 0, "import exit code (%s)" % err.strip())
    for entry, why in sorted(skips.items()):
        true("skipped %s: %s" % (entry, why) in err, "stderr names %s as %s: %s" % (entry, why, err.strip()))
    true(re.search(r"skipped %d entries" % len(skips), err), "summary counts the skipped: %s" % err.strip())
    s.start()
    c = s.client()
    eq(vx.get_hunt(c, "hx")["map_version"], 1, "the import published version 1")
    for (x, name), data in good.items():
        r = c.req("GET", "/tiles/hx/%d/%s" % (x, name.split(".")[0]))
        check(r, 200, what="regular tile %d/%s" % (x, name))
        eq(r.raw, data, "imported tile %d/%s" % (x, name))
    for x, y in ((1, 1), (0, 0), (2, 0), (3, 0), (3, 1), (3, 2)):
        r = c.req("GET", "/tiles/hx/%d/%d" % (x, y))
        true(key not in r.raw, "GET /tiles/hx/%d/%d serves the signing key" % (x, y))
        check(r, 404, "tile_not_found", what="skipped entry %d/%d" % (x, y))


@test
def tiles_cannot_run_as_a_page():
    """An SVG tile with a script: served (200 and 304) with nosniff and a
    Content-Security-Policy that runs no script, so opening it is not a page of ours."""
    s = vx.shared()
    c = s.client()
    hunt(c, "xs")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
    vx.put_tile(c, "xs", 0, 0, svg, "image/svg+xml")
    vx.publish(c, "xs")
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
    r = c.req("GET", "/tiles/xs/0/0")
    check(r, 200)
    eq(r.raw, svg, "the SVG tile")
    r304 = c.req("GET", "/tiles/xs/0/0?v=1", headers={"If-None-Match": r.headers.get("etag")})
    check(r304, 304, what="If-None-Match")
    for what, resp in (("200", r), ("304", r304)):
        eq(resp.headers.get("x-content-type-options"), "nosniff", "X-Content-Type-Options on the " + what)
        eq(resp.headers.get("content-security-policy"), csp, "Content-Security-Policy on the " + what)


if __name__ == "__main__":
    vx.run_all()
