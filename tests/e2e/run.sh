#!/usr/bin/env bash
# Browser end-to-end tests of the stage: installs what they need, builds the web app and runs them.
#   tests/e2e/run.sh               (from anywhere; uses target/debug/rostrum, building it unless ROSTRUM_BIN is set)
# Env: ROSTRUM_BIN  path of a prebuilt rostrum binary (skips the cargo build)
#      CHROMIUM_BIN path of Chromium (default /usr/bin/chromium, installed with apt-get if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${CHROMIUM_BIN:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "e2e: installing chromium" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

npm ci --prefix web --no-audit --no-fund
npm run build --prefix web

if [ -z "${ROSTRUM_BIN:-}" ]; then
  cargo build -p rostrum-server
fi

exec node --test tests/e2e/
