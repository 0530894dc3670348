#!/usr/bin/env bash
# bench/migrate.sh — how fast `veltrix migrate` moves a SQLite store into PostgreSQL.
#
#   bench/migrate.sh [EVENTS]        (default 1000000; the environment may say
#                                     BENCH_MIGRATE_EVENTS instead)
#
# build/bench_gen_store writes a SQLite store of EVENTS events (one hunt, EVENTS/10
# players, a snapshot EVENTS/20 events before the end); a throwaway PostgreSQL
# (tests/pg/pgtmp.sh, fsync on, max_wal_size raised to 8GB) gets a fresh database;
# `veltrix migrate` copies the store into it and verifies it (every row count and content
# digest, every hunt recovered from both stores). The time is the whole command,
# verification included. Prints the command's summary (stderr), then one line (stdout):
#
#   migrate: N events in S s = R events/s
#
# Exit status: the command's (0: copied and verified). Needs `make all` first
# (BUILD=build: $BUILD/veltrix and $BUILD/bench_gen_store). Everything it starts is
# stopped by PID on exit, and its temp directory removed (BENCH_KEEP=1 keeps it).
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) BDIR=$BUILD ;; *) BDIR=$ROOT/$BUILD ;; esac
EVENTS=${1:-${BENCH_MIGRATE_EVENTS:-1000000}}
case $EVENTS in ''|*[!0-9]*) echo "usage: $0 [EVENTS]" >&2; exit 2 ;; esac
[ "$EVENTS" -ge 20 ] || { echo "migrate.sh: EVENTS must be at least 20" >&2; exit 2; }
for b in veltrix bench_gen_store; do
  [ -x "$BDIR/$b" ] || { echo "migrate.sh: $BDIR/$b is missing (make all)" >&2; exit 2; }
done

TMPD=$(mktemp -d /tmp/veltrix-bench-migrate.XXXXXX)
PG_PID=""
cleanup() {
  if [ -n "$PG_PID" ]; then kill -TERM "$PG_PID" 2>/dev/null; wait "$PG_PID" 2>/dev/null; fi
  [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $TMPD" >&2 || rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "migrate: generating a store of $EVENTS events" >&2
if ! "$BDIR/bench_gen_store" "$TMPD/veltrix.db" "$EVENTS" "$((EVENTS / 20))" >"$TMPD/gen.txt" 2>&1; then
  echo "migrate.sh: bench_gen_store failed: $(tail -n 3 "$TMPD/gen.txt" | tr '\n' ' ')" >&2; exit 1
fi
sed 's/^/  /' "$TMPD/gen.txt" >&2

bash "$ROOT/tests/pg/pgtmp.sh" --watch $$ >"$TMPD/pg.url" 2>"$TMPD/pg.err" &
PG_PID=$!
for _ in $(seq 1200); do
  { [ -s "$TMPD/pg.url" ] || ! kill -0 "$PG_PID" 2>/dev/null; } && break
  sleep 0.1
done
BASE=$(head -n 1 "$TMPD/pg.url")
[ -n "$BASE" ] || { echo "migrate.sh: no PostgreSQL: $(tail -n 1 "$TMPD/pg.err")" >&2; exit 1; }
# As README "Running on PostgreSQL" advises for sustained writes: a larger max_wal_size,
# so that a 10M-event copy is not a string of forced checkpoints (a reload applies it).
psql -X -q -d "$BASE" -c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "SELECT pg_reload_conf()" \
  -c "CREATE DATABASE vx_bench_migrate" >/dev/null || exit 1
URL="${BASE%/*}/vx_bench_migrate"

t0=$(date +%s.%N)
"$BDIR/veltrix" migrate --from "sqlite:$TMPD/veltrix.db" --to "$URL" >"$TMPD/out.txt" 2>"$TMPD/err.txt"
rc=$?
t1=$(date +%s.%N)
sed 's/^/  /' "$TMPD/out.txt" >&2
if [ "$rc" -ne 0 ]; then
  echo "migrate.sh: veltrix migrate exited $rc: $(tail -n 2 "$TMPD/err.txt" | tr '\n' ' ')" >&2
  exit "$rc"
fi
python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); \
print('migrate: %d events in %.2f s = %.0f events/s' % (n, s, n / s))" "$EVENTS" "$t0" "$t1"
