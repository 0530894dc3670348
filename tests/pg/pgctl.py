"""pgctl.py — a PostgreSQL server of the test's own, which the test may kill -9 and start
again (tests/pg/pgtmp.sh in Python: the same initdb, pg_hba and settings).

    pg = PgCluster()       initdb in a fresh temp directory and start on a free port;
                           raises PgError (with the reason) when it cannot
    pg.url(db)             postgres://postgres@127.0.0.1:PORT/db
    pg.psql(sql, db)       runs sql with psql, returns its unaligned output
    pg.kill9()             SIGKILL to the postmaster and every process of the cluster, at
                           once (a crash: no shutdown checkpoint), and waits until they are gone
    pg.start()             starts it again on the same port (crash recovery runs)
    pg.stop()              fast shutdown
    pg.destroy()           immediate shutdown, and the directory removed

Run as root (CI), the server runs as the `postgres` user through runuser, as pgtmp.sh does.
Only processes of this cluster are signalled: the postmaster's PID from postmaster.pid and
its children."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class PgError(Exception):
    pass


def _pgbin():
    for d in ["/usr/lib/postgresql/15/bin"] + sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                                      reverse=True):
        if os.path.isfile(os.path.join(d, "initdb")):
            return d
    raise PgError("no PostgreSQL server under /usr/lib/postgresql (Debian package postgresql)")


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class PgCluster:
    def __init__(self):
        self.bin = _pgbin()
        self.as_pg = []
        if os.getuid() == 0:
            self.as_pg = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="veltrix-pgctl-")
        self.data = os.path.join(self.dir, "data")
        os.chmod(self.dir, 0o755)
        if self.as_pg:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = None
        r = self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                       "--auth-host=trust", "--auth-local=peer", "-E", "UTF8", "--no-sync"])
        if r.returncode:
            raise PgError("initdb failed: %s" % r.stdout.decode(errors="replace")[-300:])
        last = ""
        for _ in range(3):  # a free port may be taken between the probe and the start
            self.port = _free_port()
            try:
                self.start()
                return
            except PgError as e:
                last = str(e)
        raise PgError(last)

    def _run(self, cmd, timeout=120):
        return subprocess.run(self.as_pg + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def start(self):
        opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on"
                % (self.port, self.dir))
        r = self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l",
                       os.path.join(self.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"])
        if r.returncode:
            raise PgError("pg_ctl start failed: %s" % self.log_tail())

    def log_tail(self, n=600):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def pids(self):
        """The postmaster's PID and its children's (empty when it is not running)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            return []
        try:
            os.kill(pm, 0)
        except OSError:
            return []
        kids = subprocess.run(["pgrep", "-P", str(pm)], stdout=subprocess.PIPE).stdout.split()
        return [pm] + [int(k) for k in kids]

    def kill9(self):
        pids = self.pids()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        for _ in range(200):
            if not any(os.path.exists("/proc/%d" % p) for p in pids):
                return
            time.sleep(0.05)
        raise PgError("the cluster's processes did not die: %s" % pids)

    def stop(self):
        if self.pids():
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-t", "30",
                       "stop"])

    def destroy(self):
        """Stops it at once (its data is thrown away: no checkpoint) and removes it."""
        try:
            if self.pids():
                self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate",
                           "-t", "30", "stop"])
        finally:
            if self.pids():
                self.kill9()
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db="postgres"):
        return "postgres://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def psql(self, sql, db="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                            self.url(db), "-c", sql], capture_output=True, timeout=60)
        if r.returncode:
            raise PgError("psql %r: %s" % (sql, r.stderr.decode(errors="replace").strip()))
        return r.stdout.decode().strip()
