#!/usr/bin/env bash
# bench/audit.sh — the `veltrix audit --log` benchmark: generates a /log export of a hunt
# with N events (build/bench_gen_log: scans and seeded chest opens, every one decided by
# the engine, the seed revealed so every draw is checked), times the audit of it, and
# prints "audit: N events in S s = R events/s". Standalone:
#   BUILD=build bash bench/audit.sh [events=10000000]
# The file (~240 bytes an event) goes to $TMPDIR and is removed afterwards.
set -euo pipefail
BUILD=${BUILD:-build}
N=${1:-10000000}
make -s BUILD="$BUILD" "$BUILD/veltrix" "$BUILD/bench_gen_log" >/dev/null
FILE=$(mktemp "${TMPDIR:-/tmp}/veltrix-audit-XXXXXX.jsonl")
trap 'rm -f "$FILE"' EXIT
echo "generating $N events into $FILE"
"$BUILD/bench_gen_log" "$FILE" "$N" >/dev/null
T0=$(date +%s.%N)
"$BUILD/veltrix" audit audit --log "$FILE" >"$FILE.out" || { cat "$FILE.out"; rm -f "$FILE.out"; exit 1; }
T1=$(date +%s.%N)
grep -E '^(draws|head):' "$FILE.out" || true
rm -f "$FILE.out"
awk -v n="$N" -v a="$T0" -v b="$T1" 'BEGIN { s = b - a; printf "audit: %d events in %.2f s = %.0f events/s\n", n, s, n / s }'
