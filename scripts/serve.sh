#!/usr/bin/env bash
# One command from a fresh Debian machine to a running single-node Rostrum (no NATS, no S3):
# the stage, and its HLS broadcast written to ./data/hls.
# Extra arguments go to `rostrum serve` (e.g. --public-ip 192.168.1.20 --bind-ip 0.0.0.0).
source "$(dirname "$0")/lib.sh"
need_rust
apt_need pkg-config pkg-config
apt_need cc gcc
need_gstreamer
build_web
cargo build --release -p rostrum-server -p rostrum-mixer
exec ./target/release/rostrum serve "$@"
