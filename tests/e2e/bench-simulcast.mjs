// Benchmark (not a test): what simulcast saves in an N-person room (default 9), with and without simulcast in
// the same run. For each mode (`?simulcast=1`: l/m/h layers with viewport-driven layer choice and dynacast;
// `?simulcast=0`: one 720p stream) a fresh `rostrum serve --no-broadcast` and a fresh headless Debian chromium
// with N pages (one context each) join one room; after a warm-up, over a window, it measures:
//   - per participant: downstream bitrate (Σ inbound-rtp bytesReceived of the receive RTCPeerConnection, video
//     + audio = RTP payload, no headers), the ICE candidate pair's bytesReceived (everything on the wire), the
//     decoded size and frame rate of every remote video;
//   - per publisher: outbound-rtp per rid (bitrate, encoded size and frame rate, qualityLimitationReason and the
//     share of the window limited by cpu / bandwidth), the rids dynacast leaves on;
//   - the server: rate of rostrum_rtp_payload_bytes_forwarded_total and rostrum_rtp_packets_forwarded_total
//     (egress), rostrum_rtp_packets_in_total (ingress), CPU from /proc/<pid>/stat, RSS, and the distribution of
//     rostrum_consumer_layer_height over 1 s samples;
//   - the machine: busy share of each core (/proc/stat) and chromium's CPU (its whole process tree).
// Prints one JSON line per mode, then a Markdown table comparing the modes and the command line.
//
//   node tests/e2e/bench-simulcast.mjs [--participants 9] [--warmup 10] [--window 15] [--width 1280] [--height 720]
//                                      [--modes 1,0]
//
// Binary: ROSTRUM_BIN, else target/release/rostrum if it exists, else target/debug/rostrum; a binary whose
// /metrics lacks the per-consumer layer series (it predates viewport-driven simulcast) is refused, and without
// ROSTRUM_BIN the debug binary is tried instead (the output says which ran, and why).
// Pinning (when `taskset` exists): the server runs under `taskset -c 0` and chromium under `taskset -c 1`
// through a wrapper script, so every renderer it forks inherits the pin (pinning the browser's pid after
// launch would miss the zygote and the renderers).

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium, CHROMIUM_ARGS, newParticipantPage, repoRoot, sleep, startServer, stageUrl, waitJoined } from './helpers.mjs';

const { values: opts } = parseArgs({
  options: {
    participants: { type: 'string', default: '9' },
    warmup: { type: 'string', default: '10' },
    window: { type: 'string', default: '15' },
    width: { type: 'string', default: '1280' },
    height: { type: 'string', default: '720' },
    modes: { type: 'string', default: '1,0' },
    // Cores for chromium's process tree ('1' as the brief of this benchmark asks; 'all' leaves it unpinned).
    'browser-cores': { type: 'string', default: '1' },
    // Frame rate of Chromium's fake camera (its default is 30 when unset).
    'fake-fps': { type: 'string', default: '' },
    'join-timeout': { type: 'string', default: '90' },
  },
});
const N = Number(opts.participants);
const WARMUP_S = Number(opts.warmup);
const WINDOW_S = Number(opts.window);
const VIEW = { width: Number(opts.width), height: Number(opts.height) };
const MODES = opts.modes.split(',').map((m) => m.trim() === '1');
const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const BROWSER_CORES = opts['browser-cores'];
const FAKE_FPS = opts['fake-fps'];
const JOIN_TIMEOUT_MS = Number(opts['join-timeout']) * 1000;
const BROWSER_ARGS = FAKE_FPS
  ? CHROMIUM_ARGS.map((a) => (a === '--use-fake-device-for-media-stream' ? `${a}=fps=${Number(FAKE_FPS)}` : a))
  : CHROMIUM_ARGS;

const log = (...a) => console.log('[bench]', ...a);
const r1 = (x) => (Number.isFinite(x) ? +x.toFixed(1) : null);
const r2 = (x) => (Number.isFinite(x) ? +x.toFixed(2) : null);
const r3 = (x) => (Number.isFinite(x) ? +x.toFixed(3) : null);

// ---- binary ------------------------------------------------------------------------------------------------

function candidateBins() {
  if (process.env.ROSTRUM_BIN) return [{ bin: process.env.ROSTRUM_BIN, why: 'ROSTRUM_BIN' }];
  const rel = join(repoRoot, 'target', 'release', 'rostrum');
  const dbg = join(repoRoot, 'target', 'debug', 'rostrum');
  const out = [];
  if (existsSync(rel)) out.push({ bin: rel, why: 'release binary exists' });
  out.push({ bin: dbg, why: existsSync(rel) ? 'release binary lacks the simulcast layer metrics' : 'no release binary' });
  return out;
}

function describeBin(bin) {
  const st = statSync(bin);
  return { path: relative(repoRoot, bin) || bin, mtime: st.mtime.toISOString(), profile: /release/.test(bin) ? 'release' : /debug/.test(bin) ? 'debug' : '?' };
}

// ---- server side -------------------------------------------------------------------------------------------

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
}

function rssMiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU seconds of `rootPid` and all its descendants (processes alive now), in all and per chromium --type. */
function treeCpuSeconds(rootPid) {
  const parent = new Map();
  const cpu = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(fields[1]));
      cpu.set(Number(d), (Number(fields[11]) + Number(fields[12])) / CLK_TCK);
    } catch {
      /* exited */
    }
  }
  let sum = 0;
  let procs = 0;
  const perPid = {};
  for (const [pid, c] of cpu) {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) {
      if (p === rootPid) {
        sum += c;
        procs++;
        let type = 'browser';
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          type = cmd.match(/--type=([a-z-]+)/)?.[1] ?? 'browser';
          if (type === 'utility') type = cmd.match(/--utility-sub-type=([\w.]+)/)?.[1] ?? type;
        } catch {
          /* exited */
        }
        perPid[pid] = { type, cpu: c };
        break;
      }
    }
  }
  return { sum, procs, perPid };
}

/** Chromium's CPU over the window per process type (% of one core), from two treeCpuSeconds reads. */
function cpuByType(a, b, dt) {
  const out = {};
  for (const [pid, x] of Object.entries(b.perPid)) {
    const before = a.perPid[pid]?.cpu ?? 0; // a process born in the window counts from 0
    out[x.type] = (out[x.type] ?? 0) + (x.cpu - before);
  }
  return Object.fromEntries(
    Object.entries(out)
      .sort((x, y) => y[1] - x[1])
      .map(([k, v]) => [k, r1((100 * v) / dt)]),
  );
}

/** Per core: [busy, total] jiffies from /proc/stat. */
function coreTimes() {
  const out = {};
  for (const l of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = l.match(/^(cpu\d+)\s+(.*)$/);
    if (!m) continue;
    const v = m[2].split(/\s+/).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // user nice system idle iowait irq softirq steal
    out[m[1]] = [total - v[3] - v[4], total];
  }
  return out;
}

async function metrics(server) {
  const text = await (await fetch(`${server.origin}/metrics`)).text();
  const scalar = (name) => Number(text.match(new RegExp(`^rostrum_${name} (\\d+)`, 'm'))?.[1] ?? NaN);
  const series = (name) =>
    [...text.matchAll(new RegExp(`^rostrum_${name}\\{([^}]*)\\} (-?\\d+)`, 'gm'))].map((m) => ({
      labels: Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]])),
      value: Number(m[2]),
    }));
  return {
    hasLayerSeries: /^# TYPE rostrum_consumer_layer_height /m.test(text),
    bytesForwarded: scalar('rtp_payload_bytes_forwarded_total'),
    packetsForwarded: scalar('rtp_packets_forwarded_total'),
    packetsIn: scalar('rtp_packets_in_total'),
    keyframeRequests: scalar('keyframe_requests_total'),
    layerSwitches: scalar('layer_switches_total'),
    consumers: scalar('consumers'),
    layerHeight: series('consumer_layer_height'),
    paused: series('consumer_paused'),
  };
}

// ---- browser side ------------------------------------------------------------------------------------------

/** A chromium wrapper pinned to core 1 (children inherit the affinity). */
function pinnedChromium() {
  if (!hasTaskset || BROWSER_CORES === 'all') return { path: CHROMIUM, cleanup() {} };
  const dir = mkdtempSync(join(tmpdir(), 'rostrum-bench-chromium-'));
  const path = join(dir, 'chromium');
  writeFileSync(path, `#!/bin/sh\nexec taskset -c ${BROWSER_CORES} '${CHROMIUM}' "$@"\n`);
  chmodSync(path, 0o755);
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Pid of the chromium we launched: playwright's Browser has no process(), so the child of this node process that
 * is not the server and runs chromium (the wrapper execs taskset, which execs chromium: one pid).
 */
function browserPid(serverPid) {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === serverPid) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && /chrom/.test(readFileSync(`/proc/${d}/cmdline`, 'utf8'))) return Number(d);
    } catch {
      /* exited */
    }
  }
  return null;
}

/** Everything measured in one page at one instant (its own clock: Date.now() right after getStats). */
function snapshot(page) {
  return page.evaluate(async () => {
    const r = window.rostrum;
    const inbound = await r.stats();
    /** Bytes of the ICE candidate pair each transport of `pc` selected (all of it: RTP, RTCP, SRTP, STUN). */
    const pairBytes = (report) => {
      const all = new Map();
      report.forEach((s) => all.set(s.id, s));
      let got = null;
      for (const s of all.values()) {
        if (s.type !== 'transport' || !s.selectedCandidatePairId) continue;
        const p = all.get(s.selectedCandidatePairId);
        if (!p) continue;
        got ??= { bytesReceived: 0, bytesSent: 0, availableOutgoingBitrate: 0 };
        got.bytesReceived += p.bytesReceived ?? 0;
        got.bytesSent += p.bytesSent ?? 0;
        got.availableOutgoingBitrate += p.availableOutgoingBitrate ?? 0;
      }
      return got;
    };
    const recvPair = r.recvPc ? pairBytes(await r.recvPc.getStats()) : null;
    const out = {};
    let sendPair = null;
    if (r.sendPc) {
      const report = await r.sendPc.getStats();
      sendPair = pairBytes(report);
      report.forEach((s) => {
        if (s.type !== 'outbound-rtp') return;
        const key = s.kind === 'audio' ? 'audio' : `video:${s.rid ?? '-'}`;
        out[key] = {
          kind: s.kind,
          rid: s.rid ?? null,
          bytesSent: s.bytesSent ?? 0,
          packetsSent: s.packetsSent ?? 0,
          framesEncoded: s.framesEncoded ?? 0,
          frameWidth: s.frameWidth ?? 0,
          frameHeight: s.frameHeight ?? 0,
          framesPerSecond: s.framesPerSecond ?? 0,
          limitation: s.qualityLimitationReason ?? '',
          limitationDurations: s.qualityLimitationDurations ?? {},
          active: s.active,
        };
      });
    }
    return {
      at: Date.now(),
      participantId: r.participantId,
      simulcast: r.simulcast(),
      layersActive: r.layersActive(),
      viewports: r.viewports(),
      inbound,
      recvPair,
      sendPair,
      outbound: out,
    };
  });
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const countBy = (items) => {
  const m = {};
  for (const k of items) m[k] = (m[k] ?? 0) + 1;
  return Object.fromEntries(Object.entries(m).sort((a, b) => b[1] - a[1]));
};

/** Per participant, from two snapshots of its page. */
function participantRates(a, b) {
  const dt = (b.at - a.at) / 1000;
  const inA = new Map(a.inbound.map((s) => [s.mid, s]));
  let videoBytes = 0;
  let audioBytes = 0;
  const remoteVideos = [];
  for (const s of b.inbound) {
    const p = inA.get(s.mid) ?? { bytesReceived: 0, framesDecoded: 0 };
    const d = s.bytesReceived - p.bytesReceived;
    if (s.kind === 'video') {
      videoBytes += d;
      if (s.participantId)
        remoteVideos.push({
          from: s.participantId,
          size: `${s.frameWidth}x${s.frameHeight}`,
          height: s.frameHeight,
          fps: r1((s.framesDecoded - p.framesDecoded) / dt),
          kbps: Math.round((d * 8) / dt / 1000),
        });
    } else if (s.kind === 'audio') audioBytes += d;
  }
  const wire = a.recvPair && b.recvPair ? ((b.recvPair.bytesReceived - a.recvPair.bytesReceived) * 8) / dt / 1e6 : NaN;
  // Publisher side.
  const layers = {};
  let upBytes = 0;
  for (const [key, o] of Object.entries(b.outbound)) {
    const p = a.outbound[key] ?? { bytesSent: 0, framesEncoded: 0, limitationDurations: {} };
    const d = o.bytesSent - p.bytesSent;
    upBytes += d;
    if (o.kind !== 'video') continue;
    const lim = {};
    for (const k of ['cpu', 'bandwidth', 'other']) {
      const x = (o.limitationDurations[k] ?? 0) - (p.limitationDurations[k] ?? 0);
      if (x > 0) lim[k] = r2(x / dt);
    }
    const frames = o.framesEncoded - p.framesEncoded;
    layers[o.rid ?? '-'] = {
      kbps: Math.round((d * 8) / dt / 1000),
      fps: r1(frames / dt),
      // A layer that encoded nothing in the window still reports its last size: only sizes of live layers count.
      size: frames > 0 ? `${o.frameWidth}x${o.frameHeight}` : 'off',
      limitation: o.limitation,
      limitedShare: lim,
    };
  }
  const upWire = a.sendPair && b.sendPair ? ((b.sendPair.bytesSent - a.sendPair.bytesSent) * 8) / dt / 1e6 : NaN;
  return {
    id: b.participantId,
    windowS: r2(dt),
    downMbps: r3(((videoBytes + audioBytes) * 8) / dt / 1e6),
    downVideoMbps: r3((videoBytes * 8) / dt / 1e6),
    downAudioMbps: r3((audioBytes * 8) / dt / 1e6),
    downWireMbps: r3(wire),
    remoteVideos,
    upMbps: r3((upBytes * 8) / dt / 1e6),
    upWireMbps: r3(upWire),
    // The publisher's own send-side bandwidth estimate at the window's end.
    upEstimateMbps: r3((b.sendPair?.availableOutgoingBitrate ?? NaN) / 1e6),
    layersActive: b.layersActive,
    layers,
    viewports: b.viewports.map((v) => `${v.width}x${v.height}${v.visible ? '' : ' hidden'}`),
  };
}

// ---- one mode ----------------------------------------------------------------------------------------------

/** The binary to run: the first candidate whose /metrics has the per-consumer layer series (see the header). */
async function chooseBin() {
  const bins = candidateBins();
  const notes = [];
  for (const [i, { bin, why }] of bins.entries()) {
    process.env.ROSTRUM_BIN = bin;
    const d = describeBin(bin);
    let problem = null;
    try {
      const s = await startServer(['--log', 'warn']);
      if (!(await metrics(s)).hasLayerSeries) problem = 'its /metrics has no rostrum_consumer_layer_height, it predates viewport-driven simulcast';
      await s.stop();
    } catch (e) {
      problem = `it does not start as the helpers start it (${String(e.message).split('\n').slice(0, 2).join(' ')})`;
    }
    if (!problem) return { binary: { ...d, why }, notes };
    const note = `${d.path} (built ${d.mtime}): ${problem}`;
    log(note);
    if (i === bins.length - 1) throw new Error(`${note}: rebuild it or set ROSTRUM_BIN`);
    notes.push(`${note}: skipped`);
  }
}

async function runMode(simulcast, { binary, notes }) {
  process.env.ROSTRUM_BIN = join(repoRoot, binary.path);
  const server = await startServer(['--log', 'warn'], { prefix: hasTaskset ? ['taskset', '-c', '0'] : [] });
  const binInfo = binary;
  const spid = server.proc.pid;
  const chrome = pinnedChromium();
  const browser = await chromium.launch({ executablePath: chrome.path, args: BROWSER_ARGS });
  const bpid = browserPid(server.proc.pid);
  const room = `sim${simulcast ? 1 : 0}-${Date.now().toString(36)}`;
  const pages = [];
  try {
    const t0join = Date.now();
    for (let i = 0; i < N; i++) {
      const page = await newParticipantPage(browser, `P${i + 1}`);
      await page.setViewportSize(VIEW);
      await page.goto(stageUrl(server, room, `P${i + 1}`, `&simulcast=${simulcast ? 1 : 0}`));
      const tj = Date.now();
      await waitJoined(page, JOIN_TIMEOUT_MS);
      pages.push(page);
      log(`  P${i + 1} joined in ${Date.now() - tj} ms (load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`);
    }
    log(`mode simulcast=${simulcast ? 1 : 0}: ${N} joined in ${Date.now() - t0join} ms; waiting until every page decodes ${N - 1} videos`);
    // Everyone decodes everyone (framesDecoded > 0 for N-1 remote videos) before the warm-up starts.
    const deadline = Date.now() + 120000;
    for (const p of pages) {
      await p.waitForFunction(
        async (n) => (await window.rostrum.stats()).filter((s) => s.kind === 'video' && s.participantId && s.framesDecoded > 0).length >= n,
        N - 1,
        { timeout: Math.max(1000, deadline - Date.now()), polling: 500 },
      );
    }
    log(`all decoding after ${Date.now() - t0join} ms; warm-up ${WARMUP_S} s, then a ${WINDOW_S} s window`);
    await sleep(WARMUP_S * 1000);

    // Window start: server, machine, then pages (each page keeps its own timestamps).
    const m0 = await metrics(server);
    const c0 = cpuSeconds(spid);
    const b0 = bpid ? treeCpuSeconds(bpid) : null;
    const k0 = coreTimes();
    const n0 = process.cpuUsage();
    const t0 = Date.now();
    const s0 = [];
    for (const p of pages) s0.push(await snapshot(p));
    // Layer distribution: sample /metrics every second through the window.
    const heightSamples = [];
    const pausedSamples = [];
    while (Date.now() - t0 < WINDOW_S * 1000) {
      await sleep(Math.min(1000, Math.max(0, WINDOW_S * 1000 - (Date.now() - t0))));
      const m = await metrics(server);
      for (const x of m.layerHeight) heightSamples.push(x.value);
      for (const x of m.paused) pausedSamples.push(x.value);
    }
    const m1 = await metrics(server);
    const c1 = cpuSeconds(spid);
    const b1 = bpid ? treeCpuSeconds(bpid) : null;
    const k1 = coreTimes();
    const n1 = process.cpuUsage(n0);
    const t1 = Date.now();
    const s1 = [];
    for (const p of pages) s1.push(await snapshot(p));
    const dt = (t1 - t0) / 1000;

    const parts = pages.map((_, i) => participantRates(s0[i], s1[i]));
    const down = parts.map((p) => p.downMbps);
    const up = parts.map((p) => p.upMbps);
    const vids = parts.flatMap((p) => p.remoteVideos);
    const cores = Object.fromEntries(Object.keys(k1).map((c) => [c, r1((100 * (k1[c][0] - k0[c][0])) / (k1[c][1] - k0[c][1]))]));
    const layerRows = parts.flatMap((p) => Object.entries(p.layers).map(([rid, l]) => ({ rid, ...l })));
    const perRid = {};
    for (const l of layerRows) {
      const x = (perRid[l.rid] ??= { kbps: [], sizes: [], fps: [], limitation: [] });
      x.kbps.push(l.kbps);
      x.sizes.push(l.size);
      if (l.size !== 'off') x.fps.push(l.fps);
      x.limitation.push(l.limitation);
    }
    const lastHeights = m1.layerHeight.map((x) => x.value);
    return {
      mode: simulcast ? 'simulcast=1' : 'simulcast=0',
      participants: N,
      viewport: `${VIEW.width}x${VIEW.height}`,
      binary: binInfo,
      notes,
      pinned: hasTaskset ? { server: 'core 0', chromium: BROWSER_CORES === 'all' ? 'not pinned' : `core ${BROWSER_CORES} (whole tree)` } : false,
      fakeCameraFps: FAKE_FPS ? Number(FAKE_FPS) : 'default (30)',
      windowS: r2(dt),
      simulcastOnPages: countBy(s1.map((s) => String(s.simulcast))),
      downstreamMbps: { p50: r3(pct(down, 50)), max: r3(Math.max(...down)), min: r3(Math.min(...down)), sum: r3(down.reduce((a, b) => a + b, 0)) },
      downstreamVideoMbpsP50: r3(pct(parts.map((p) => p.downVideoMbps), 50)),
      downstreamAudioMbpsP50: r3(pct(parts.map((p) => p.downAudioMbps), 50)),
      downstreamWireMbps: { p50: r3(pct(parts.map((p) => p.downWireMbps), 50)), max: r3(Math.max(...parts.map((p) => p.downWireMbps))) },
      decoded: {
        sizes: countBy(vids.map((v) => v.size)),
        fpsP50: r1(pct(vids.map((v) => v.fps), 50)),
        fpsMin: r1(Math.min(...vids.map((v) => v.fps))),
        kbpsPerVideoP50: Math.round(pct(vids.map((v) => v.kbps), 50)),
      },
      viewportReports: countBy(parts.flatMap((p) => p.viewports)),
      uplinkMbps: { p50: r3(pct(up, 50)), max: r3(Math.max(...up)), sum: r3(up.reduce((a, b) => a + b, 0)) },
      uplinkEstimateMbps: { p50: r3(pct(parts.map((p) => p.upEstimateMbps), 50)), min: r3(Math.min(...parts.map((p) => p.upEstimateMbps))) },
      layersActive: countBy(parts.map((p) => (p.layersActive.length ? p.layersActive.join('') : '-'))),
      publisherLayers: Object.fromEntries(
        Object.entries(perRid).map(([rid, x]) => [
          rid,
          {
            kbpsP50: Math.round(pct(x.kbps, 50)),
            kbpsMax: Math.max(...x.kbps),
            sizes: countBy(x.sizes),
            fpsP50: r1(pct(x.fps, 50)),
            qualityLimitationReason: countBy(x.limitation),
          },
        ]),
      ),
      limitedShareP50: {
        cpu: r2(pct(layerRows.map((l) => l.limitedShare.cpu ?? 0), 50)),
        bandwidth: r2(pct(layerRows.map((l) => l.limitedShare.bandwidth ?? 0), 50)),
      },
      server: {
        egressMbps: r3(((m1.bytesForwarded - m0.bytesForwarded) * 8) / dt / 1e6),
        egressPacketsPerS: Math.round((m1.packetsForwarded - m0.packetsForwarded) / dt),
        ingressPacketsPerS: Math.round((m1.packetsIn - m0.packetsIn) / dt),
        cpuPercentOfOneCore: r1((100 * (c1 - c0)) / dt),
        cpuMicrosPerForwardedPacket: r2(((c1 - c0) * 1e6) / (m1.packetsForwarded - m0.packetsForwarded)),
        rssMiB: r1(rssMiB(spid)),
        consumers: m1.consumers,
        keyframeRequests: m1.keyframeRequests - m0.keyframeRequests,
        layerSwitches: m1.layerSwitches - m0.layerSwitches,
        consumerLayerHeightEnd: countBy(lastHeights.map(String)),
        consumerLayerHeightSamples: countBy(heightSamples.map(String)),
        pausedSamples: pausedSamples.filter((x) => x === 1).length,
      },
      chromium: b0 && b1 ? { cpuPercentOfOneCore: r1((100 * (b1.sum - b0.sum)) / dt), processes: b1.procs, byType: cpuByType(b0, b1, dt) } : null,
      coreBusyPercent: cores,
      // Busy time of all cores not spent by the server, chromium or this script: anything else running (a
      // compiler, another test) shows here and makes the run suspect.
      otherCpuPercentOfOneCore:
        b0 && b1
          ? r1(
              (100 *
                (Object.keys(k1).reduce((acc, c) => acc + (k1[c][0] - k0[c][0]), 0) / CLK_TCK -
                  (c1 - c0) -
                  (b1.sum - b0.sum) -
                  (n1.user + n1.system) / 1e6)) /
                dt,
            )
          : null,
      benchScriptCpuPercentOfOneCore: r1((100 * (n1.user + n1.system)) / 1e6 / dt),
      perParticipant: parts,
    };
  } catch (e) {
    for (const p of pages) if (p.consoleLines?.length) console.log(p.consoleLines.slice(-15).map((l) => l.slice(0, 300)).join('\n'));
    console.log('--- server output (tail) ---\n' + server.output().split('\n').slice(-60).join('\n'));
    throw e;
  } finally {
    await browser.close().catch(() => {});
    chrome.cleanup();
    await server.stop();
  }
}

// ---- report ------------------------------------------------------------------------------------------------

const fmtCounts = (o, top = 4) =>
  Object.entries(o ?? {})
    .slice(0, top)
    .map(([k, v]) => `${k} ×${v}`)
    .join(', ') + (Object.keys(o ?? {}).length > top ? ', …' : '');
const saving = (on, off) => {
  if (!Number.isFinite(on) || !Number.isFinite(off) || off <= 0) return '';
  const pc = Math.round((100 * (off - on)) / off);
  return pc >= 0 ? `${pc} % less` : `${-pc} % more`;
};

function table(results) {
  const on = results.find((r) => r.mode === 'simulcast=1');
  const off = results.find((r) => r.mode === 'simulcast=0');
  const cols = [on, off].filter(Boolean);
  const row = (label, f, save) => {
    const cells = cols.map((r) => f(r));
    const extra = on && off ? [save ? save(on, off) : ''] : [];
    return `| ${label} | ${[...cells, ...extra].join(' | ')} |`;
  };
  const num = (g) => (r) => g(r);
  const head = `| ${N}-person room, viewport ${VIEW.width}×${VIEW.height} | ${cols.map((r) => r.mode).join(' | ')}${on && off ? ' | simulcast saves' : ''} |`;
  const lines = [
    head,
    `|---|${cols.map(() => '---').join('|')}${on && off ? '|---' : ''}|`,
    row('downstream per participant p50, Mbit/s (RTP payload, video+audio)', num((r) => r.downstreamMbps.p50), (a, b) => saving(a.downstreamMbps.p50, b.downstreamMbps.p50)),
    row('downstream per participant max, Mbit/s', num((r) => r.downstreamMbps.max), (a, b) => saving(a.downstreamMbps.max, b.downstreamMbps.max)),
    row('  of which audio p50, Mbit/s', num((r) => r.downstreamAudioMbpsP50)),
    row('downstream on the wire p50, Mbit/s (ICE pair, all overhead)', num((r) => r.downstreamWireMbps.p50), (a, b) => saving(a.downstreamWireMbps.p50, b.downstreamWireMbps.p50)),
    row('server egress, Mbit/s (rtp_payload_bytes_forwarded)', num((r) => r.server.egressMbps), (a, b) => saving(a.server.egressMbps, b.server.egressMbps)),
    row('server egress, packets/s (rtp_packets_forwarded)', num((r) => r.server.egressPacketsPerS), (a, b) => saving(a.server.egressPacketsPerS, b.server.egressPacketsPerS)),
    row('server ingress, packets/s', num((r) => r.server.ingressPacketsPerS), (a, b) => saving(a.server.ingressPacketsPerS, b.server.ingressPacketsPerS)),
    row(`server CPU, % of one core (${cols[0].binary.profile} build)`, num((r) => r.server.cpuPercentOfOneCore), (a, b) => saving(a.server.cpuPercentOfOneCore, b.server.cpuPercentOfOneCore)),
    row('server CPU µs per forwarded packet', num((r) => r.server.cpuMicrosPerForwardedPacket)),
    row('consumer_layer_height (1 s samples)', (r) => fmtCounts(r.server.consumerLayerHeightSamples) || '–'),
    row('layer switches / keyframe requests in window', (r) => `${r.server.layerSwitches} / ${r.server.keyframeRequests}`),
    row('decoded remote video sizes (all tiles, window end)', (r) => fmtCounts(r.decoded.sizes)),
    row('decoded fps p50 (min)', (r) => `${r.decoded.fpsP50} (${r.decoded.fpsMin})`),
    row('kbit/s per remote video p50', (r) => r.decoded.kbpsPerVideoP50),
    row('tile sizes reported (viewport)', (r) => fmtCounts(r.viewportReports, 3)),
    row('publisher uplink p50 / max, Mbit/s', (r) => `${r.uplinkMbps.p50} / ${r.uplinkMbps.max}`, (a, b) => saving(a.uplinkMbps.p50, b.uplinkMbps.p50)),
    row('publisher send-side bandwidth estimate p50 (min), Mbit/s', (r) => `${r.uplinkEstimateMbps.p50} (${r.uplinkEstimateMbps.min})`),
    row('layers left on by dynacast', (r) => fmtCounts(r.layersActive)),
    row(
      'encoded per rid: kbit/s p50, size, fps p50',
      (r) =>
        Object.entries(r.publisherLayers)
          .map(([rid, l]) => `${rid}: ${l.kbpsP50} kbit/s, ${fmtCounts(l.sizes, 2)}, ${l.fpsP50} fps`)
          .join('; '),
    ),
    row('qualityLimitationReason (per encoding)', (r) => fmtCounts(Object.values(r.publisherLayers).reduce((acc, l) => {
      for (const [k, v] of Object.entries(l.qualityLimitationReason)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}))),
    row('share of window limited by cpu / bandwidth (p50 per encoding)', (r) => `${r.limitedShareP50.cpu} / ${r.limitedShareP50.bandwidth}`),
    row(`chromium CPU, % of one core (${N} pages, all its processes, cores ${BROWSER_CORES})`, (r) => r.chromium?.cpuPercentOfOneCore ?? '–'),
    row('chromium CPU by process type, % of one core', (r) => (r.chromium ? fmtCounts(Object.fromEntries(Object.entries(r.chromium.byType).map(([k, v]) => [k, v])), 4).replace(/ ×/g, ' ') : '–')),
    row('other processes\' CPU in the window, % of one core (should be ~0)', (r) => r.otherCpuPercentOfOneCore ?? '–'),
    row('core busy %', (r) => Object.entries(r.coreBusyPercent).map(([c, v]) => `${c} ${v}`).join(', ')),
  ];
  return lines.join('\n');
}

const ORIG_ENV = { ROSTRUM_BIN: process.env.ROSTRUM_BIN, CHROMIUM_BIN: process.env.CHROMIUM_BIN };

function commandLine() {
  const env = Object.entries(ORIG_ENV)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}=${v}`);
  let wrapper = '';
  try {
    const parent = readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const at = parent.findIndex((x) => /(^|\/)node$/.test(x));
    if (/(^|\/)flock$/.test(parent[0] ?? '') && at > 0) wrapper = `${parent.slice(0, at).join(' ')} `;
  } catch {
    /* no /proc */
  }
  return `${env.join(' ')}${env.length ? ' ' : ''}${wrapper}node ${relative(process.cwd(), process.argv[1])} ${process.argv.slice(2).join(' ')}`.trim();
}

async function main() {
  const chosen = await chooseBin();
  const results = [];
  for (const simulcast of MODES) {
    const r = await runMode(simulcast, chosen);
    results.push(r);
    console.log(JSON.stringify(r));
  }
  const cmd = commandLine();
  console.log('');
  const b = results[0].binary;
  console.log(
    `binary: ${b.path} (${b.profile}, built ${b.mtime}; ${b.why})${results[0].notes.length ? `; ${results[0].notes.join('; ')}` : ''}; chromium: ${execFileSync(CHROMIUM, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n').pop()}; ${hasTaskset ? `server pinned to core 0, chromium ${BROWSER_CORES === 'all' ? 'not pinned' : `(all processes) to core ${BROWSER_CORES}`}` : 'not pinned (no taskset)'}; fake camera ${FAKE_FPS ? `${FAKE_FPS} fps` : 'at its default 30 fps'}`,
  );
  console.log('');
  console.log(table(results));
  console.log('');
  console.log(`command: ${cmd}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
