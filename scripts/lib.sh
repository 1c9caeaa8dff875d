# Shared helpers for Rostrum's scripts: install what is missing, nothing by hand.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_UPDATED=""
# apt_need CMD PACKAGE...: install PACKAGEs when CMD is not on PATH.
apt_need() {
  local cmd="$1"; shift
  if ! command -v "$cmd" >/dev/null 2>&1; then
    if [ -z "$APT_UPDATED" ]; then
      $SUDO apt-get update -qq
      APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
  fi
}

# apt_pkgs PACKAGE...: install the PACKAGEs dpkg does not know as installed (libraries have no command).
apt_pkgs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ -z "$APT_UPDATED" ]; then
      $SUDO apt-get update -qq
      APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# The mixer (rostrum-mixer) builds against GStreamer 1.22 and runs its plugins.
need_gstreamer() {
  apt_pkgs libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x
}

need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Rostrum needs a Rust toolchain (1.94 or newer): https://rustup.rs" >&2
    exit 1
  fi
}

build_web() {
  apt_need node nodejs
  apt_need npm npm
  if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    npm ci --prefix web --no-audit --no-fund
  fi
  npm run --prefix web build
}
