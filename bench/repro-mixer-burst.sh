#!/usr/bin/env bash
# Reproduces a rostrum-mixer crash seen while writing the mixer benchmark (2026-11-25): seat + bind + add
# (VP8 video + Opus audio) for 9 participants written to stdin back to back, no RTP sent at all.
#   GAP=0   bash bench/repro-mixer-burst.sh   → exit 139 (SIGSEGV) after 2-5 participants, 8/8 runs; stderr shows
#           "GStreamer-Video-CRITICAL: gst_video_frame_map_id: assertion 'GST_IS_BUFFER (buffer)' failed" or
#           "GLib-GObject-WARNING: class of invalid type '(null)'" just before
#   GAP=0.3 bash bench/repro-mixer-burst.sh   → exit 0, 3/3 runs
# MIXER=path overrides the binary (default target/release/rostrum-mixer).
set -u
trap "" PIPE
cd "$(dirname "$0")/.."
M="${MIXER:-target/release/rostrum-mixer}"
err="$(mktemp)"
(
  for i in 0 1 2 3 4 5 6 7 8; do
    echo "{\"op\":\"seat\",\"participant\":\"p$i\",\"name\":\"Input $i\"}"
    echo "{\"op\":\"bind\",\"input\":\"v$i\"}"
    echo "{\"op\":\"bind\",\"input\":\"a$i\"}"
    echo "{\"op\":\"add\",\"input\":\"v$i\",\"participant\":\"p$i\",\"kind\":\"video\",\"codec\":\"VP8\",\"payload_type\":96,\"clock_rate\":90000,\"ssrc\":$((4096 + 2 * i)),\"fmtp\":\"\"}"
    echo "{\"op\":\"add\",\"input\":\"a$i\",\"participant\":\"p$i\",\"kind\":\"audio\",\"codec\":\"opus\",\"payload_type\":111,\"clock_rate\":48000,\"channels\":2,\"ssrc\":$((4097 + 2 * i)),\"fmtp\":\"\"}"
    sleep "${GAP:-0}"
  done
  sleep 5
  echo '{"op":"stop"}'
  sleep 3
) 2>/dev/null | timeout 30 "$M" --rtcp-to 127.0.0.1:9 >/dev/null 2>"$err"
rc=$?
echo "rostrum-mixer exit status: $rc (139 = SIGSEGV)"
grep -v '^$' "$err" | tail -8
rm -f "$err"
