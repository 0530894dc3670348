#!/usr/bin/env bash
# pgtmp.sh — a throwaway PostgreSQL (15 when installed) for the tests of the postgres store.
#
#   tests/pg/pgtmp.sh -- CMD [ARG...]   starts a server, runs CMD with VELTRIX_TEST_PG_URL set
#                                       to it, stops it; exits with CMD's status
#   tests/pg/pgtmp.sh [--watch PID]     starts a server, prints its URL as one line on stdout,
#                                       and stops it on SIGTERM/SIGINT/SIGHUP (or once PID,
#                                       e.g. the caller, is gone)
#
# The cluster lives in a fresh temp directory (removed afterwards): initdb as the `postgres`
# user through runuser when run as root, as the current user otherwise; trust
# authentication on loopback TCP only (local sockets: peer; the role veltrix_pw alone must
# give a password, for the wrong-password tests), listening on 127.0.0.1 only,
# on a free port; fsync on (initdb itself runs with --no-sync: its files are throwaway).
# Only what this script started is stopped: pg_ctl stop on its data directory, then that
# postmaster's PID. When the server cannot start, one line on stderr says why, exit 3.
set -u
WATCH=""
CMD=()
while [ $# -gt 0 ]; do
  case $1 in
    --watch) WATCH=${2:?--watch needs a PID}; shift 2 ;;
    --) shift; CMD=("$@"); break ;;
    *) echo "usage: $0 [--watch PID] | -- CMD [ARG...]" >&2; exit 2 ;;
  esac
done

fail() { echo "pgtmp: cannot start a throwaway PostgreSQL: $*" >&2; exit 3; }

PGBIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] ||
  fail "no PostgreSQL server under /usr/lib/postgresql (Debian package postgresql; make deps)"
AS_PG=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || fail "running as root and there is no 'postgres' user to run it as"
  AS_PG=(runuser -u postgres --)
fi

DIR=$(mktemp -d /tmp/veltrix-pg.XXXXXX) || fail "mktemp failed"
DATA=$DIR/data
PG_PID=""
chmod 755 "$DIR"
[ ${#AS_PG[@]} -gt 0 ] && chown postgres: "$DIR"

stop_server() {
  trap - EXIT INT TERM HUP
  if [ -f "$DATA/postmaster.pid" ] || [ -n "$PG_PID" ]; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast -t 20 stop >/dev/null 2>&1
    if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
      kill -TERM "$PG_PID" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$PG_PID" 2>/dev/null && kill -KILL "$PG_PID" 2>/dev/null
    fi
  fi
  rm -rf "$DIR"
}
trap stop_server EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

"${AS_PG[@]}" "$PGBIN/initdb" -D "$DATA" -U postgres --auth-host=trust --auth-local=peer -E UTF8 \
  --no-sync >"$DIR/initdb.log" 2>&1 ||
  fail "initdb failed: $(tail -n 3 "$DIR/initdb.log" | tr '\n' ' ')"
# First match wins: the role veltrix_pw (made by tests that need it) must give its password,
# so that a wrong one can be tried; every other role is trusted on loopback.
"${AS_PG[@]}" sed -i '1i host all veltrix_pw 127.0.0.1/32 scram-sha-256' "$DATA/pg_hba.conf" ||
  fail "cannot edit pg_hba.conf"
started=""
for attempt in 1 2 3; do  # a free port may be taken between the probe and the start
  PORT=$(free_port) || fail "no free port"
  if timeout -k 5 90 "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
       -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" \
       start >/dev/null 2>&1; then
    started=1
    break
  fi
done
[ -n "$started" ] || fail "pg_ctl start failed: $(tail -n 3 "$DIR/server.log" | tr '\n' ' ')"
PG_PID=$(head -n 1 "$DATA/postmaster.pid")
URL="postgres://postgres@127.0.0.1:$PORT/postgres"
echo "pgtmp: $("$PGBIN/postgres" --version) at $URL (data in $DIR, PID $PG_PID)" >&2

if [ ${#CMD[@]} -gt 0 ]; then
  VELTRIX_TEST_PG_URL=$URL "${CMD[@]}"
  exit $?
fi
echo "$URL"
while [ -z "$WATCH" ] || kill -0 "$WATCH" 2>/dev/null; do
  sleep 1 &
  wait $!
done
