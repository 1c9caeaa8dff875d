// Mixer CPU / RSS benchmark: rostrum-mixer (GStreamer) against the naive ffmpeg baseline of the design sketch
// (xstack + amix → libx264 veryfast 720p30 + AAC → fragmented MP4), both fed the same RTP in the same run.
// Called by scripts/bench-mixer.sh (which builds the release mixer and the clip); usable alone:
//
//   node bench/mixer-bench.mjs --mixer target/release/rostrum-mixer --clip /tmp/clip.webm \
//        [--inputs 1,2,4,9] [--warmup 5] [--window 20] [--keep DIR]
//
// Per case (N inputs, one sink):
//   sink = the mixer (ports from `bind` → `bound`) or ffmpeg (one SDP per input, ports picked free at run time),
//   N × `gst-launch-1.0 filesrc clip.webm ! matroskademux ! rtpvp8pay / rtpopuspay ! udpsink` (real-time pace),
//   warm-up, then utime+stime of the sink from /proc/PID/stat over the window, peak RSS = VmHWM,
//   and the sink's output (fMP4 file) decoded afterwards to count frozen tile-frames (a tile unchanged from
//   the previous output frame although the source, testsrc2, changes every frame).
// Everything binds 127.0.0.1 and ports chosen by the kernel; every child is killed at the end.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, openSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    mixer: { type: 'string', default: 'target/release/rostrum-mixer' },
    clip: { type: 'string' },
    // the 640×360 simulcast layer of the same content: what the router forwards to the mixer when a grid cell is
    // at most 640×360 (2 or more people); used for the mixer's inputs at N ≥ 2, the baseline keeps the 720p clip
    'layer-clip': { type: 'string' },
    inputs: { type: 'string', default: '1,2,4,9' },
    warmup: { type: 'string', default: '5' },
    window: { type: 'string', default: '20' },
    keep: { type: 'string' },
    sinks: { type: 'string', default: 'mixer,ffmpeg' },
    // pause between two participants' seat/bind/add: the mixer under repair crashes (SIGSEGV) when they come
    // back to back, see bench/repro-mixer-burst.sh; 0 reproduces that
    'gap-ms': { type: 'string', default: '500' },
    // seat everybody first (one re-layout to the final grid), then bind and add the inputs
    'seat-first': { type: 'boolean', default: false },
  },
});
const MIXER = resolve(opts.mixer);
const CLIP = resolve(opts.clip ?? '');
const LAYER_CLIP = opts['layer-clip'] ? resolve(opts['layer-clip']) : null;
const COUNTS = opts.inputs.split(',').map(Number);
const WARMUP_S = Number(opts.warmup);
const WINDOW_S = Number(opts.window);
const SINKS = opts.sinks.split(',');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const W = 1280;
const H = 720;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();

function track(proc) {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return proc;
}

async function killAll() {
  for (const p of [...children]) {
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      const t = setTimeout(() => p.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    }
  }
}

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function statusKiB(pid, key) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${key}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) : NaN;
}

function procState(pid) {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[0];
  } catch {
    return 'gone';
  }
}

function bindUdp(port) {
  return new Promise((res) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => res(null));
    s.bind(port, '127.0.0.1', () => res(s));
  });
}

/** A free even port P with P+1 free too (ffmpeg's RTP demuxer opens RTCP on P+1). */
async function freeRtpPair() {
  for (let i = 0; i < 200; i++) {
    const a = await bindUdp(0);
    const p = a.address().port;
    if (p % 2 === 1 || p > 65000) {
      a.close();
      continue;
    }
    const b = await bindUdp(p + 1);
    a.close();
    if (b) {
      b.close();
      return p;
    }
  }
  throw new Error('no free RTP port pair');
}

function grid(n) {
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  return { cols, rows };
}

function ssrcs(i) {
  return { v: 0x1000 + i * 2, a: 0x1001 + i * 2 };
}

/** One sender per input: the clip, demuxed, payloaded, paced in real time to the given ports. */
function startSender(i, vport, aport, clip) {
  const { v, a } = ssrcs(i);
  const args = [
    '-q',
    'filesrc', `location=${clip}`, '!', 'matroskademux', 'name=d',
    'd.video_0', '!', 'queue', '!', 'rtpvp8pay', 'pt=96', `ssrc=${v}`, 'mtu=1200', 'picture-id-mode=15-bit', '!',
    'udpsink', 'host=127.0.0.1', `port=${vport}`, 'sync=true', 'async=false',
    'd.audio_0', '!', 'queue', '!', 'rtpopuspay', 'pt=111', `ssrc=${a}`, '!',
    'udpsink', 'host=127.0.0.1', `port=${aport}`, 'sync=true', 'async=false',
  ];
  const p = track(spawn('gst-launch-1.0', args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  p.stderr.on('data', (d) => process.stderr.write(`[sender ${i}] ${d}`));
  return p;
}

async function startMixerSink(n, outFile, log) {
  const rtcp = await bindUdp(0); // the mixer's RTCP goes here and is dropped
  const args = ['--rtcp-to', `127.0.0.1:${rtcp.address().port}`];
  const out = openSync(outFile, 'w');
  const proc = track(spawn(MIXER, args, { stdio: ['pipe', out, 'pipe'], env: { ...process.env, GST_DEBUG: process.env.GST_DEBUG ?? '1' } }));
  proc.once('exit', () => rtcp.close());
  const bound = new Map();
  const waiters = new Map();
  let buf = '';
  proc.stderr.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('@rostrum ')) {
        const ev = JSON.parse(line.slice(9));
        log.push(line);
        if (ev.event === 'bound') {
          bound.set(ev.input, ev.port);
          waiters.get(ev.input)?.(ev.port);
        }
        if (ev.event === 'warning') console.log(`  mixer warning: ${ev.message}`);
      } else if (line.trim()) {
        log.push(line);
      }
    }
  });
  const send = (cmd) => proc.stdin.write(JSON.stringify(cmd) + '\n');
  const bind = (input) =>
    new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`mixer gave no bound for ${input} within 10 s (mixer exit code ${proc.exitCode}, signal ${proc.signalCode}, state ${procState(proc.pid)}); last lines:\n${log.slice(-12).join('\n')}`)), 10000);
      waiters.set(input, (port) => {
        clearTimeout(t);
        res(port);
      });
      send({ op: 'bind', input });
    });
  const ports = [];
  if (opts['seat-first']) {
    for (let i = 0; i < n; i++) send({ op: 'seat', participant: `p${i}`, name: `Input ${i + 1}` });
    await sleep(1500);
  }
  for (let i = 0; i < n; i++) {
    const participant = `p${i}`;
    if (!opts['seat-first']) send({ op: 'seat', participant, name: `Input ${i + 1}` });
    const vport = await bind(`v${i}`);
    const aport = await bind(`a${i}`);
    const { v, a } = ssrcs(i);
    send({ op: 'add', input: `v${i}`, participant, kind: 'video', codec: 'VP8', payload_type: 96, clock_rate: 90000, ssrc: v, fmtp: '' });
    send({ op: 'add', input: `a${i}`, participant, kind: 'audio', codec: 'opus', payload_type: 111, clock_rate: 48000, channels: 2, ssrc: a, fmtp: '' });
    ports.push([vport, aport]);
    await sleep(Number(opts['gap-ms']));
  }
  return {
    proc,
    ports,
    stop: async () => {
      send({ op: 'stop' });
      await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5000)]);
    },
  };
}

function ffmpegArgs(n, sdps, outFile) {
  const { cols, rows } = grid(n);
  const tw = Math.floor(W / cols / 2) * 2;
  const th = Math.floor((tw * 9) / 16 / 2) * 2;
  const args = ['-hide_banner', '-nostats', '-loglevel', 'warning', '-y'];
  for (const sdp of sdps) {
    args.push(
      '-protocol_whitelist', 'file,udp,rtp',
      '-buffer_size', '8000000',
      '-reorder_queue_size', '500',
      '-thread_queue_size', '1024',
      '-analyzeduration', '0', '-probesize', '32', '-fpsprobesize', '0',
      '-i', sdp,
    );
  }
  const f = [];
  if (n === 1) {
    f.push(`[0:v]scale=${W}:${H},setsar=1,fps=30[v]`, `[0:a]aresample=48000[a]`);
  } else {
    const layout = [];
    for (let i = 0; i < n; i++) {
      f.push(`[${i}:v]scale=${tw}:${th},setsar=1,fps=30[v${i}]`);
      layout.push(`${(i % cols) * tw}_${Math.floor(i / cols) * th}`);
    }
    const ox = Math.floor((W - cols * tw) / 2);
    const oy = Math.floor((H - rows * th) / 2);
    f.push(
      `${[...Array(n).keys()].map((i) => `[v${i}]`).join('')}xstack=inputs=${n}:layout=${layout.join('|')},pad=${W}:${H}:${ox}:${oy}[v]`,
      `${[...Array(n).keys()].map((i) => `[${i}:a]`).join('')}amix=inputs=${n}:duration=longest[a]`,
    );
  }
  args.push(
    '-filter_complex', f.join(';'),
    '-map', '[v]', '-map', '[a]',
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-b:v', '2500k', '-maxrate', '2500k', '-bufsize', '2500k', '-g', '60', '-keyint_min', '60', '-sc_threshold', '0', '-bf', '0',
    '-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-ac', '2',
    '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '500000',
    outFile,
  );
  return args;
}

async function startFfmpegSink(n, outFile, dir, log) {
  const sdps = [];
  const ports = [];
  for (let i = 0; i < n; i++) {
    const vport = await freeRtpPair();
    let aport = await freeRtpPair();
    while (Math.abs(aport - vport) < 2) aport = await freeRtpPair();
    const sdp = join(dir, `in${i}.sdp`);
    writeFileSync(
      sdp,
      [
        'v=0', 'o=- 0 0 IN IP4 127.0.0.1', `s=input ${i}`, 'c=IN IP4 127.0.0.1', 't=0 0',
        `m=video ${vport} RTP/AVP 96`, 'a=rtpmap:96 VP8/90000',
        `m=audio ${aport} RTP/AVP 111`, 'a=rtpmap:111 opus/48000/2', '',
      ].join('\n'),
    );
    sdps.push(sdp);
    ports.push([vport, aport]);
  }
  const args = ffmpegArgs(n, sdps, outFile);
  const proc = track(spawn('ffmpeg', args, { stdio: ['pipe', 'ignore', 'pipe'] }));
  proc.stderr.on('data', (d) => {
    for (const l of d.toString().split('\n')) if (l.trim()) log.push(l);
  });
  await sleep(1000); // sockets bound before the senders start
  return {
    proc,
    ports,
    cmd: ['ffmpeg', ...args.map((a) => (/[\s;|[\]]/.test(a) ? `'${a}'` : a))].join(' '),
    stop: async () => {
      proc.stdin.write('q');
      await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5000)]);
    },
  };
}

/**
 * Frozen tile-frames in the last `windowS` seconds of an output file: decode to 320x180 grey, and per tile count
 * frames whose central region is (nearly) identical to the previous frame's. Also the output frame count.
 */
function frozenShare(file, n, windowS) {
  const fw = 640;
  const fh = 360;
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, '-map', '0:v:0', '-vf', `scale=${fw}:${fh}:flags=area,format=gray`, '-f', 'rawvideo', '-'], {
    maxBuffer: 1 << 30,
  });
  const raw = r.stdout;
  const frameBytes = fw * fh;
  const total = Math.floor(raw.length / frameBytes);
  if (total < 10) return { frames: total, frozenShare: null };
  const take = Math.min(total - 1, Math.round(windowS * 30));
  const end = total - 5 > take ? total - 5 : total; // skip the flush tail
  const start = Math.max(1, end - take);
  const { cols, rows } = grid(n);
  const cw = fw / cols;
  const ch = fh / rows;
  let frozen = 0;
  let counted = 0;
  for (let t = 0; t < n; t++) {
    // the 16:9 picture, letterboxed in its cell; testsrc2's noisy checkerboard (x 0.64-0.86, y 0.64-0.85 of the
    // picture) changes every source frame, so an unchanged region = a repeated (frozen) tile-frame
    const pw = Math.min(cw, (ch * 16) / 9);
    const ph = (pw * 9) / 16;
    const px = (t % cols) * cw + (cw - pw) / 2;
    const py = Math.floor(t / cols) * ch + (ch - ph) / 2;
    const x0 = Math.floor(px + pw * 0.65);
    const x1 = Math.floor(px + pw * 0.85);
    const y0 = Math.floor(py + ph * 0.65);
    const y1 = Math.floor(py + ph * 0.84);
    for (let f = start; f < end; f++) {
      let diff = 0;
      const a = (f - 1) * frameBytes;
      const b = f * frameBytes;
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) diff += Math.abs(raw[a + y * fw + x] - raw[b + y * fw + x]);
      }
      const mean = diff / ((x1 - x0) * (y1 - y0));
      counted++;
      if (mean < 0.3) frozen++;
    }
  }
  return { frames: total, analysedFrames: end - start, frozenShare: counted ? frozen / counted : null };
}

async function runCase(sinkKind, n, dir) {
  const outFile = join(dir, `out-${sinkKind}-${n}.mp4`);
  const log = [];
  const sink = sinkKind === 'mixer' ? await startMixerSink(n, outFile, log) : await startFfmpegSink(n, outFile, dir, log);
  const clip = sinkKind === 'mixer' && n >= 2 && LAYER_CLIP ? LAYER_CLIP : CLIP;
  const senders = sink.ports.map(([v, a], i) => startSender(i, v, a, clip));
  const exited = () => sink.proc.exitCode !== null || sink.proc.signalCode !== null;
  const death = () => `${sinkKind} died (exit code ${sink.proc.exitCode}, signal ${sink.proc.signalCode})`;
  const res = { sink: sinkKind, inputs: n, clip };
  await sleep(WARMUP_S * 1000);
  const pid = sink.proc.pid;
  if (exited()) {
    res.failed = `${death()} during the ${WARMUP_S} s warm-up`;
  } else {
    let c0 = cpuSeconds(pid);
    const s0 = senders.map((x) => cpuSeconds(x.pid));
    const t0 = performance.now();
    let rssMax = 0;
    let hwm = 0;
    let c1 = c0;
    while (performance.now() - t0 < WINDOW_S * 1000) {
      await sleep(500);
      if (exited()) {
        res.failed = `${death()} ${((performance.now() - t0) / 1000).toFixed(1)} s into the ${WINDOW_S} s window`;
        break;
      }
      try {
        rssMax = Math.max(rssMax, statusKiB(pid, 'VmRSS'));
        hwm = statusKiB(pid, 'VmHWM');
        c1 = cpuSeconds(pid);
      } catch {
        /* exited between the check and the read */
      }
    }
    if (!res.failed) {
      const secs = (performance.now() - t0) / 1000;
      try {
        res.sendersCpuCores = +(senders.reduce((acc, x, i) => acc + cpuSeconds(x.pid) - s0[i], 0) / secs).toFixed(3);
      } catch {
        res.sendersCpuCores = null;
      }
      res.cpuCores = +((c1 - c0) / secs).toFixed(3);
      res.peakRssMiB = +(Math.max(hwm, rssMax) / 1024).toFixed(1);
    }
  }
  res.sendersAliveAtEnd = `${senders.filter((s) => s.exitCode === null).length}/${n}`;
  // stop the sink while its inputs still flow, so the end of its output is not a freeze of our own making
  if (!exited()) await sink.stop();
  for (const s of senders) s.kill('SIGINT');
  await killAll();
  // frozen tile-frames over the last (window − 5) s of output: ffmpeg's first seconds are probing and
  // waiting for each input's keyframe (3 s GOP), which is not what the comparison is about
  const fr = existsSync(outFile) ? frozenShare(outFile, n, Math.max(5, WINDOW_S - 5)) : { frames: 0, frozenShare: null };
  res.outputMiB = existsSync(outFile) ? +(statSync(outFile).size / 1048576).toFixed(1) : null;
  res.outputFrames = fr.frames;
  res.frozenTileShare = fr.frozenShare === null ? null : +fr.frozenShare.toFixed(3);
  if (sink.cmd && n === COUNTS[COUNTS.length - 1]) res.cmd = sink.cmd;
  const warnings = log.filter((l) => l.includes('"warning"') || /CRITICAL|WARNING|error/i.test(l));
  if (warnings.length) res.warnings = warnings.slice(-6).map((l) => l.slice(0, 300));
  if (res.failed || sinkKind === 'ffmpeg') res.logTail = log.slice(-15).map((l) => l.slice(0, 300));
  return res;
}

async function main() {
  if (!existsSync(CLIP)) throw new Error(`clip ${CLIP} missing (scripts/bench-mixer.sh makes it)`);
  if (SINKS.includes('mixer') && !existsSync(MIXER)) throw new Error(`${MIXER} missing: cargo build --release -p rostrum-mixer`);
  const dir = opts.keep ? (mkdirSync(resolve(opts.keep), { recursive: true }), resolve(opts.keep)) : mkdtempSync(join(tmpdir(), 'rostrum-mixbench-'));
  const results = [];
  try {
    for (const n of COUNTS) {
      for (const s of SINKS) {
        // a sink that dies (while the inputs are being set up, or later) is run again, up to 3 attempts in all;
        // every failure is kept in the result
        const setupFailures = [];
        let r = null;
        for (let attempt = 1; attempt <= 3 && !(r && !r.failed); attempt++) {
          try {
            r = await runCase(s, n, dir);
            if (r.failed) {
              console.log(`  ${s} × ${n}, attempt ${attempt}: ${r.failed}; ${(r.warnings ?? []).slice(-1).join('')}`);
              setupFailures.push(r.failed);
            }
          } catch (e) {
            await killAll();
            setupFailures.push(String(e.message).split('\n')[0]);
            console.log(`  ${s} × ${n}, attempt ${attempt}: set-up failed: ${e.message.split('\n')[0]}`);
            console.log(`    ${e.message.split('\n').slice(-3).join('\n    ')}`);
            r = { sink: s, inputs: n, failed: 'set-up failed' };
          }
        }
        if (setupFailures.length) r.failures = setupFailures;
        console.log(JSON.stringify(r));
        results.push(r);
      }
    }
  } finally {
    await killAll();
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  }
  if (LAYER_CLIP) console.log(`\nmixer inputs for N ≥ 2: ${LAYER_CLIP} (the 640×360 simulcast layer); baseline: ${CLIP}`);
  console.log('\n| inputs (720p VP8+opus) | mixer CPU (cores) | ffmpeg CPU (cores) | ratio mixer/ffmpeg | mixer peak RSS | ffmpeg peak RSS | frozen tile-frames mixer / ffmpeg | mixer runs that died |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const n of COUNTS) {
    const m = results.find((r) => r.sink === 'mixer' && r.inputs === n);
    const f = results.find((r) => r.sink === 'ffmpeg' && r.inputs === n);
    const pc = (x) => (x === null || x === undefined ? '—' : `${(x * 100).toFixed(1)} %`);
    const cell = (r) => (r?.failed ? 'failed' : r?.cpuCores ?? '—');
    console.log(
      `| ${n} | ${cell(m)} | ${cell(f)} | ${m?.cpuCores && f?.cpuCores ? (m.cpuCores / f.cpuCores).toFixed(2) : '—'} | ${m?.peakRssMiB ? m.peakRssMiB + ' MiB' : '—'} | ${f?.peakRssMiB ? f.peakRssMiB + ' MiB' : '—'} | ${pc(m?.frozenTileShare)} / ${pc(f?.frozenTileShare)} | ${m?.failures?.length ?? 0} of ${(m?.failures?.length ?? 0) + (m && !m.failed ? 1 : 0)} |`,
    );
  }
  console.log(`\nwindow ${WINDOW_S} s after ${WARMUP_S} s warm-up; ratio goal ≤ 0.8`);
}

main().catch(async (e) => {
  console.error(e);
  await killAll();
  process.exit(1);
});
