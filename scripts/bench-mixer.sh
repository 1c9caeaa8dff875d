#!/usr/bin/env bash
# Mixer CPU and RSS for 1, 2, 4 and 9 inputs at 720p, next to the naive ffmpeg baseline of the design sketch
# (xstack + amix → libx264 veryfast 720p30 + AAC → fragmented MP4), both fed the same RTP in the same run.
#
#   bash scripts/bench-mixer.sh [--inputs 1,2,4,9] [--warmup 5] [--window 20] [--keep DIR]
#   BENCH_LAYER=1 bash scripts/bench-mixer.sh   # the mixer takes the 640×360 simulcast layer at N ≥ 2
#
# 1. builds the release mixer (cargo build --release -p rostrum-mixer);
# 2. encodes the input clip once (cached in ${BENCH_CLIP:-$TMPDIR/rostrum-bench-720p30-vp8-opus.webm}):
#    40 s of ffmpeg testsrc2 1280x720 30 fps → VP8 (libvpx realtime, 1.5 Mb/s, keyframe every 3 s) + a 440 Hz
#    sine → Opus 48 kHz stereo;
# 3. runs bench/mixer-bench.mjs: per N, the mixer then ffmpeg, each fed N real-time `gst-launch-1.0` replays
#    of the clip as plain RTP (VP8 pt 96, Opus pt 111) on loopback ports chosen at run time; CPU = utime+stime
#    of the sink over the window after the warm-up, peak RSS = VmHWM; frozen tile-frames counted in the output.
# Every process it starts is stopped before it returns.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in ffmpeg gst-launch-1.0 node cargo; do
  command -v "$tool" >/dev/null || { echo "bench-mixer: $tool missing" >&2; exit 1; }
done

cargo build --release -p rostrum-mixer >&2

clip="${BENCH_CLIP:-${TMPDIR:-/tmp}/rostrum-bench-720p30-vp8-opus.webm}"
if [[ ! -s "$clip" ]]; then
  echo "bench-mixer: encoding the 40 s input clip once → $clip (about a minute on 2 cores)" >&2
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 40 \
    -c:v libvpx -deadline realtime -cpu-used 8 -b:v 1500k -g 90 -pix_fmt yuv420p \
    -c:a libopus -b:a 64k -ac 2 "$clip.part.webm"
  mv "$clip.part.webm" "$clip"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(ffmpeg -version | head -1 | cut -d' ' -f1-3); $(gst-launch-1.0 --version | sed -n 2p)"
echo "command: bash scripts/bench-mixer.sh $*"
layer=()
if [[ "${BENCH_LAYER:-0}" == 1 ]]; then
  # The same content as the 640×360 simulcast layer (what a 2×2 or 3×3 cell takes from the router).
  lclip="${clip%.webm}-360p.webm"
  if [[ ! -s "$lclip" ]]; then
    echo "bench-mixer: encoding the 640x360 layer clip once → $lclip" >&2
    ffmpeg -hide_banner -loglevel error -y -i "$clip" -vf scale=640:360 \
      -c:v libvpx -deadline realtime -cpu-used 8 -b:v 500k -g 90 -pix_fmt yuv420p -c:a copy "$lclip.part.webm"
    mv "$lclip.part.webm" "$lclip"
  fi
  layer=(--layer-clip "$lclip")
fi
exec node bench/mixer-bench.mjs --mixer target/release/rostrum-mixer --clip "$clip" "${layer[@]}" "$@"
