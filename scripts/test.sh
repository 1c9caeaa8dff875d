#!/usr/bin/env bash
# One command that installs what the tests need and runs every test.
source "$(dirname "$0")/lib.sh"
need_rust
apt_need cc gcc
apt_need pkg-config pkg-config
apt_need chromium chromium
apt_need nft nftables
apt_need ip iproute2
apt_need ffmpeg ffmpeg
need_gstreamer
build_web

echo "== cargo fmt / clippy"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

# --- S3 store for the tests: garage (scripts/garage.sh) -------------------------
# A real S3-compatible server, so rostrum-hls's S3 round trip runs here instead of
# skipping; ROSTRUM_REQUIRE_S3=1 makes that test fail if the env ever goes missing.
echo "== S3-compatible store for the tests (garage from crates.io)"
source "$ROOT/scripts/garage.sh"
garage_install
trap garage_stop EXIT
garage_start
export ROSTRUM_REQUIRE_S3=1
# --- end of the S3 store block ---------------------------------------------------

echo "== unit and integration tests (cargo)"
cargo test --workspace

echo "== browser tests (headless Debian chromium via playwright-core)"
ROSTRUM_BIN="$ROOT/target/debug/rostrum" node --test --test-concurrency=1 tests/e2e/

echo "== browser tests in firefox-esr (WebDriver BiDi via puppeteer-core), in a private network namespace"
ROSTRUM_BIN="$ROOT/target/debug/rostrum" bash tests/firefox/run.sh

echo "== interop: aiortc publishes by WHIP, plays by WHEP"
ROSTRUM_BIN="$ROOT/target/debug/rostrum" bash tests/interop/run.sh
