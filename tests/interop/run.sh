#!/usr/bin/env bash
# Interop test: aiortc publishes by WHIP to Rostrum and plays back by WHEP, plus WHIP/WHEP bad-input checks.
#   tests/interop/run.sh [pytest args]   (from anywhere; uses target/debug/rostrum, building it unless ROSTRUM_BIN is set)
# Env: ROSTRUM_BIN  path of a prebuilt rostrum binary (skips the cargo build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "interop: installing python3-venv" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Reinstall only when requirements.txt changed.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi

if [ -z "${ROSTRUM_BIN:-}" ]; then
  cargo build -p rostrum-server
fi

# pytest exits 5 when it collected nothing: that is a failure here too.
set +e
"$venv/bin/python" -m pytest -c "$here/pytest.ini" --rootdir "$here" "$here" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "interop: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
