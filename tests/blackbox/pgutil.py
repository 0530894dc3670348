"""A throwaway PostgreSQL for black-box tests: VELTRIX_TEST_PG_URL when set (as
tests/run_all.sh does), otherwise one started on first use with tests/pg/pgtmp.sh and
stopped at exit. A server that does not start fails the test that asked, never skips."""
import atexit
import os
import subprocess
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
_pg = {"url": None, "error": None, "proc": None, "dbs": 0, "made": []}


def server():
    """The URL of the test server (started on first use), or an AssertionError saying why
    there is none."""
    if _pg["error"]:
        raise AssertionError(_pg["error"])
    if _pg["url"]:
        return _pg["url"]
    url = os.environ.get("VELTRIX_TEST_PG_URL")
    if not url:
        script = os.path.join(HERE, "..", "pg", "pgtmp.sh")
        p = subprocess.Popen(["bash", script, "--watch", str(os.getpid())], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        _pg["proc"] = p
        atexit.register(_stop)
        url = p.stdout.readline().decode().strip()
        if not url:
            err = p.stderr.read().decode(errors="replace").strip().splitlines()
            _pg["error"] = "no PostgreSQL to test with (tests/pg/pgtmp.sh): %s" % (
                err[-1] if err else "exit %s" % p.wait())
            raise AssertionError(_pg["error"])
    _pg["url"] = url
    return url


def _stop():
    p = _pg["proc"]
    if p and p.poll() is None:
        p.terminate()
        p.wait(60)


def psql(url, sql, *more):
    """Runs sql (then each of more, each in a transaction of its own: -c) with one psql on
    url; returns its unaligned output."""
    cs = [a for q in (sql,) + more for a in ("-c", q)]
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url] + cs,
                       capture_output=True, timeout=60)
    if r.returncode:
        raise AssertionError("psql %r: %s" % (sql, r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode().strip()


def fresh_db(tag="vx_bb"):
    """A new, empty database on the test server; its URL."""
    base = server()
    _pg["dbs"] += 1
    db = "%s_%d_%d" % (tag, os.getpid(), _pg["dbs"])
    psql(base, "DROP DATABASE IF EXISTS %s" % db, "CREATE DATABASE %s" % db)
    u = urllib.parse.urlsplit(base)
    url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))
    _pg["made"].append((db, url))
    return url


def drop_dbs(keep=()):
    """Drops every database fresh_db made in this process except those whose URL is in
    keep (a failed test's, left for a look); returns the names kept. Called at the end of a
    black-box run (vx.main), after its servers are gone; WITH (FORCE) ends any session a
    killed server's child left behind."""
    kept = []
    for db, url in _pg["made"]:
        if url in keep:
            kept.append(db)
        else:
            psql(_pg["url"], "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    _pg["made"] = []
    return kept
