#!/usr/bin/env bash
# Browser test of the stage in Debian's firefox-esr (WebDriver BiDi via puppeteer-core): installs what it
# needs and runs tests/firefox/*.test.mjs inside a private network namespace.
#   bash tests/firefox/run.sh        (from anywhere)
# Env: ROSTRUM_BIN   prebuilt rostrum binary (default: `cargo build -p rostrum-server`, target/debug/rostrum)
#      FIREFOX_BIN   Firefox to drive (default /usr/bin/firefox-esr, apt-get installed if missing)
#      CHROMIUM_BIN  Chromium for the mixed Firefox+Chromium test (default /usr/bin/chromium; skipped if absent)
#
# Why a network namespace: Firefox never gathers 127.0.0.1 host candidates (media.peerconnection.ice.loopback
# does not bring them back in firefox-esr 140/153) and will not pair its non-loopback candidates with the
# server's 127.0.0.1 one, so ICE fails against `--public-ip 127.0.0.1`. In its own namespace the test gives
# a veth end the address 198.18.0.1 (benchmarking range) plus a default route (Firefox gathers only
# default-route addresses for pages without a stored camera permission), and the server binds and announces
# that address. Nothing leaves the namespace: the veth's peer has no link to anything.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
APT_UPDATED=
apt_install() {
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ -z "${FIREFOX_BIN:-}" ] && [ ! -x /usr/bin/firefox-esr ]; then
  echo "firefox: installing firefox-esr" >&2
  apt_install firefox-esr
fi
command -v ip >/dev/null 2>&1 || apt_install iproute2
command -v unshare >/dev/null 2>&1 || apt_install util-linux

# puppeteer-core and playwright-core never download a browser; the variable only makes that explicit.
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix "$HERE" --no-audit --no-fund

if [ ! -f web/dist/stream.html ]; then
  npm ci --prefix web --no-audit --no-fund
  npm run build --prefix web
fi

if [ -z "${ROSTRUM_BIN:-}" ]; then
  cargo build -p rostrum-server
  export ROSTRUM_BIN="$ROOT/target/debug/rostrum"
fi

export ROSTRUM_FF_MEDIA_IP=198.18.0.1
# Root: a plain network namespace; otherwise a user namespace that maps us to root inside it.
if [ "$(id -u)" = 0 ]; then NS=(unshare --net); else NS=(unshare --map-root-user --net); fi
exec "${NS[@]}" bash -euo pipefail -c '
  ip link set lo up
  ip link add rff0 type veth peer name rff1
  ip addr add "$ROSTRUM_FF_MEDIA_IP/24" dev rff0
  ip link set rff0 up
  ip link set rff1 up
  ip route add default via 198.18.0.2 dev rff0
  exec node --test --test-concurrency=1 tests/firefox/
'
