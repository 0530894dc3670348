#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need.
# A no-op when they are all present. Runs apt-get through sudo when not root.
set -euo pipefail
PKGS=(build-essential pkg-config
      libh2o-evloop-dev libwslay-dev libssl-dev libjansson-dev libsqlite3-dev
      libpq-dev libqrencode-dev sqlite3
      python3 curl wrk procps
      postgresql)  # the postgres store's tests start a throwaway server (tests/pg/pgtmp.sh)
# The web pages' build (web/) and browser tests (tests/browser/): Debian's node and npm
# unless a node with npm is installed already (e.g. NodeSource's, which conflicts with them).
command -v npm >/dev/null || PKGS+=(nodejs npm)
command -v chromium >/dev/null || PKGS+=(chromium)
[ "${1:-}" = "--bench" ] && PKGS+=(postgresql redis-server redis-tools nginx-light)
[ "${1:-}" = "--fuzz" ] && PKGS+=(clang libclang-rt-14-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
