// Benchmark (not a test): the broadcast as a viewer sees it, in headless Debian chromium against a real
// `rostrum serve` with the compositor.
//
//   node tests/e2e/bench-broadcast.mjs [--window 20] [--warmup 8] [--record 15] [--only latency,classic,av]
//
// 1. Glass-to-glass latency. A participant page's camera is a canvas painting `Date.now()` as a block code
//    (3 rows × 16 black/white blocks on a blue field: a white/black start marker, 38 bits of the time in ms and
//    an 8-bit check), its microphone a quiet WebAudio oscillator (getUserMedia is overridden by an init script).
//    The viewer draws each frame of its <video> (requestVideoFrameCallback) into a canvas, finds the blue picture,
//    reads the code back and takes expected-display-time − painted time. All pages live in one browser, so they
//    share one clock. Measured for LL-HLS (the /watch page as shipped) and for classic HLS (a tiny page served by
//    the bench itself through page.route with the same bundled hls.js, lowLatencyMode: false, default
//    liveSyncDurationCount 3).
// 2. Audio/video offset per participant in the programme. Two participants flash their picture white and beep
//    at the same instant every 2 s (A at 0 ms, B at 700 ms of each 2 s period; A 1000 Hz, B 2500 Hz); the bench
//    records ~15 s of the live programme (init + the playlist's complete segments), then ffmpeg gives each
//    half-frame's mean luma per frame (signalstats) and each tone's level every 5 ms (bandpass + astats);
//    offset = beep onset − flash onset (positive: audio late).
//
// Env: ROSTRUM_BIN (server, default target/debug/rostrum), ROSTRUM_MIXER (default: target/release/rostrum-mixer
// when it exists, else the server's neighbour), CHROMIUM_BIN.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { launchBrowser, log, newParticipantPage, repoRoot, sleep, startServer, stageUrl, waitJoined, dumpConsole } from './helpers.mjs';

const { values: opts } = parseArgs({
  options: {
    window: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '8' },
    record: { type: 'string', default: '15' },
    only: { type: 'string', default: 'latency,classic,av' },
  },
});
const WINDOW_S = Number(opts.window);
/** B flashes this long after A in each 2 s period (not 1000: the halves must be told apart from the picture). */
const B_PHASE_MS = 700;
const WARMUP_S = Number(opts.warmup);
const RECORD_S = Number(opts.record);
const ONLY = new Set(opts.only.split(','));

if (!process.env.ROSTRUM_MIXER && existsSync(join(repoRoot, 'target', 'release', 'rostrum-mixer'))) {
  process.env.ROSTRUM_MIXER = join(repoRoot, 'target', 'release', 'rostrum-mixer');
}

// ---- the publisher: getUserMedia → canvas + oscillator ---------------------------------------------------------
/** Runs in the participant page before its scripts. cfg: { mode: 'clock' | 'flash', phaseMs, freq }. */
const PUBLISHER_INIT = (cfg) => {
  const W = 640;
  const H = 360;
  const COLS = 16;
  const ROWS = 3;
  let made = null;
  const make = () => {
    const c = document.createElement('canvas');
    c.width = W;
    c.height = H;
    const g = c.getContext('2d');
    const stream = c.captureStream(0); // frames only on requestFrame(): capture time = paint time
    const vtrack = stream.getVideoTracks()[0];
    const ac = new AudioContext({ sampleRate: 48000 });
    const osc = ac.createOscillator();
    osc.frequency.value = cfg.freq;
    const gain = ac.createGain();
    gain.gain.value = cfg.mode === 'clock' ? 0.05 : 0;
    const dst = ac.createMediaStreamDestination();
    osc.connect(gain).connect(dst);
    osc.start();
    ac.resume().catch(() => {});
    const blockW = (W - 64) / COLS;
    const blockH = 60;
    let lastOn = false;
    window.__flashes = [];
    const paint = () => {
      const now = Date.now();
      if (cfg.mode === 'clock') {
        g.fillStyle = 'rgb(0,0,255)';
        g.fillRect(0, 0, W, H);
        const t38 = now % 2 ** 38;
        const check = t38 % 251;
        const bits = [1, 0];
        for (let i = 37; i >= 0; i--) bits.push(Math.floor(t38 / 2 ** i) % 2);
        for (let i = 7; i >= 0; i--) bits.push((check >> i) & 1);
        for (let r = 0; r < ROWS; r++) {
          for (let k = 0; k < COLS; k++) {
            g.fillStyle = bits[r * COLS + k] ? '#fff' : '#000';
            g.fillRect(32 + k * blockW, 40 + r * (blockH + 10), blockW, blockH);
          }
        }
      } else {
        const phase = (((now - cfg.phaseMs) % 2000) + 2000) % 2000;
        const on = phase < 300;
        g.fillStyle = on ? '#fff' : 'rgb(24,24,24)';
        g.fillRect(0, 0, W, H);
        if (on !== lastOn) {
          gain.gain.setValueAtTime(on ? 0.5 : 0, ac.currentTime);
          if (on) window.__flashes.push(now);
          lastOn = on;
        }
      }
      vtrack.requestFrame();
    };
    paint();
    setInterval(paint, 1000 / 30);
    return new MediaStream([vtrack, dst.stream.getAudioTracks()[0]]);
  };
  const fake = async (constraints) => {
    made ??= make();
    const tracks = [];
    if (constraints?.video) tracks.push(made.getVideoTracks()[0]);
    if (constraints?.audio) tracks.push(made.getAudioTracks()[0]);
    return new MediaStream(tracks);
  };
  navigator.mediaDevices.getUserMedia = fake;
};

// ---- the viewer: read the clock back --------------------------------------------------------------------------
/** Runs in a viewer page once `window.rostrumWatch.video` exists; collects into window.__lat. */
const SAMPLER = () => {
  const video = window.rostrumWatch.video;
  const CW = 640;
  const CH = 360;
  const c = document.createElement('canvas');
  c.width = CW;
  c.height = CH;
  const g = c.getContext('2d', { willReadFrequently: true });
  const S = (window.__lat = { samples: [], misreads: 0, noPicture: 0, frames: 0, rect: null, collecting: false });
  let rectAge = 1e9;
  const findRect = (d) => {
    // bounding box of the blue field (the publisher's picture inside its tile)
    let x0 = CW;
    let y0 = CH;
    let x1 = -1;
    let y1 = -1;
    for (let y = 0; y < CH; y += 2) {
      for (let x = 0; x < CW; x += 2) {
        const i = (y * CW + x) * 4;
        if (d[i + 2] > 150 && d[i] < 90 && d[i + 1] < 90) {
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
    }
    return x1 - x0 > 40 && y1 - y0 > 20 ? { x0, y0, w: x1 - x0 + 2, h: y1 - y0 + 2 } : null;
  };
  const lum = (d, x, y) => {
    let s = 0;
    let n = 0;
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) {
        const i = ((Math.round(y) + dy) * CW + Math.round(x) + dx) * 4;
        s += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
        n++;
      }
    }
    return s / n;
  };
  const onFrame = (nowMs, meta) => {
    video.requestVideoFrameCallback(onFrame);
    if (!S.collecting) return;
    const shownAt = Date.now() + (meta.expectedDisplayTime - performance.now());
    S.frames++;
    g.drawImage(video, 0, 0, CW, CH);
    const d = g.getImageData(0, 0, CW, CH).data;
    if (!S.rect || rectAge++ > 30) {
      S.rect = findRect(d) ?? S.rect;
      rectAge = 0;
    }
    const r = S.rect;
    if (!r) {
      S.noPicture++;
      return;
    }
    // block centres in the 640×360 publisher canvas, mapped into the picture's rectangle
    const bw = (640 - 64) / 16;
    const at = (k, row) => [r.x0 + ((32 + (k + 0.5) * bw) / 640) * r.w, r.y0 + ((40 + row * 70 + 30) / 360) * r.h];
    const white = lum(d, ...at(0, 0));
    const black = lum(d, ...at(1, 0));
    if (!(white - black > 80)) {
      S.misreads++;
      rectAge = 1e9;
      return;
    }
    const mid = (white + black) / 2;
    const bits = [];
    for (let row = 0; row < 3; row++) for (let k = 0; k < 16; k++) bits.push(lum(d, ...at(k, row)) > mid ? 1 : 0);
    let t38 = 0;
    for (let i = 2; i < 40; i++) t38 = t38 * 2 + bits[i];
    let check = 0;
    for (let i = 40; i < 48; i++) check = check * 2 + bits[i];
    if (t38 % 251 !== check) {
      S.misreads++;
      return;
    }
    const m = 2 ** 38;
    const painted = shownAt - ((((shownAt - t38) % m) + m) % m);
    S.samples.push(shownAt - painted);
  };
  video.requestVideoFrameCallback(onFrame);
};

const CLASSIC_HTML = (room) => `<!doctype html><html><head><meta charset="utf-8"><title>classic HLS</title></head>
<body style="margin:0;background:#000"><video id="v" muted autoplay playsinline style="width:1280px;height:720px"></video>
<script src="/bench-hls.min.js"></script>
<script>
  const video = document.getElementById('v');
  const hls = new Hls({ lowLatencyMode: false });
  hls.loadSource('/hls/${room}/master.m3u8');
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  window.rostrumWatch = {
    video, hls,
    currentTime: () => video.currentTime,
    latency: () => hls.latency,
    get playing() { return !video.paused && video.currentTime > 0 && video.readyState >= 2; },
  };
</script></body></html>`;

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function waitLive(server, room, timeoutMs = 45000) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    last = await (await fetch(`${server.origin}/api/broadcasts/${room}`)).json().catch(() => null);
    if (last?.state === 'live') {
      const m = await fetch(`${server.origin}/hls/${room}/master.m3u8`);
      if (m.ok) return last;
    }
    await sleep(500);
  }
  throw new Error(`broadcast ${room} not live within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

async function publisher(browser, server, room, name, cfg) {
  const page = await newParticipantPage(browser, name);
  await page.addInitScript(PUBLISHER_INIT, cfg);
  await page.goto(stageUrl(server, room, name));
  await waitJoined(page, 30000);
  return page;
}

/** Opens a viewer, waits for playback, warms up, samples the painted clock for WINDOW_S seconds. */
async function measureLatency(browser, server, room, kind) {
  const page = await newParticipantPage(browser, `viewer-${kind}`);
  let url;
  if (kind === 'classic') {
    const hlsJs = readFileSync(join(repoRoot, 'web', 'node_modules', 'hls.js', 'dist', 'hls.min.js'));
    await page.route(`${server.origin}/bench-classic.html`, (r) => r.fulfill({ contentType: 'text/html', body: CLASSIC_HTML(room) }));
    await page.route(`${server.origin}/bench-hls.min.js`, (r) => r.fulfill({ contentType: 'text/javascript', body: hlsJs }));
    url = `${server.origin}/bench-classic.html`;
  } else {
    url = `${server.watchUrl}?room=${encodeURIComponent(room)}`;
  }
  await page.goto(url);
  await page.waitForFunction(() => window.rostrumWatch?.playing, null, { timeout: 60000, polling: 200 });
  await page.evaluate(SAMPLER);
  await sleep(WARMUP_S * 1000);
  await page.evaluate(() => (window.__lat.collecting = true));
  const pdt = [];
  const edge = [];
  const t0 = Date.now();
  while (Date.now() - t0 < WINDOW_S * 1000) {
    await sleep(1000);
    // the page's own figure (PROGRAM-DATE-TIME based on /watch) and hls.js's distance to the playlist's live edge
    const [l, e] = await page.evaluate(() => [window.rostrumWatch.latency(), window.rostrumWatch.hls?.latency]);
    if (typeof l === 'number' && Number.isFinite(l)) pdt.push(l * 1000);
    if (typeof e === 'number' && Number.isFinite(e)) edge.push(e * 1000);
  }
  const s = await page.evaluate(() => {
    window.__lat.collecting = false;
    const { samples, misreads, noPicture, frames, rect } = window.__lat;
    return { samples, misreads, noPicture, frames, rect, stalls: window.rostrumWatch.stalls ?? null, lowLatency: window.rostrumWatch.level?.()?.lowLatency ?? false };
  });
  await page.context().close();
  const sorted = [...s.samples].sort((a, b) => a - b);
  pdt.sort((a, b) => a - b);
  edge.sort((a, b) => a - b);
  return {
    player: kind === 'classic' ? 'classic HLS (hls.js lowLatencyMode:false)' : 'LL-HLS (/watch)',
    seconds: WINDOW_S,
    samples: sorted.length,
    framesSeen: s.frames,
    unreadable: s.misreads + s.noPicture,
    p50_ms: Math.round(pct(sorted, 50)),
    p95_ms: Math.round(pct(sorted, 95)),
    min_ms: Math.round(sorted[0]),
    max_ms: Math.round(sorted[sorted.length - 1]),
    playerReportedLatency_p50_ms: pdt.length ? Math.round(pct(pdt, 50)) : null,
    behindPlaylistEdge_p50_ms: edge.length ? Math.round(pct(edge, 50)) : null,
    stalls: s.stalls,
  };
}

// ---- A/V offset ---------------------------------------------------------------------------------------------
async function recordProgramme(server, room, seconds, file) {
  const master = await (await fetch(`${server.origin}/hls/${room}/master.m3u8`)).text();
  const variant = master.split('\n').find((l) => l.trim() && !l.startsWith('#')).trim();
  const mediaUrl = new URL(variant, `${server.origin}/hls/${room}/master.m3u8`);
  const got = new Map();
  let init = null;
  const t0 = Date.now();
  let firstMsn = null;
  while (Date.now() - t0 < seconds * 1000 + 2500) {
    const pl = await (await fetch(mediaUrl)).text();
    const lines = pl.split('\n');
    let msn = Number(lines.find((l) => l.startsWith('#EXT-X-MEDIA-SEQUENCE:'))?.split(':')[1] ?? 0);
    let pendingSeg = false;
    for (const l of lines) {
      if (l.startsWith('#EXT-X-MAP:') && !init) {
        const uri = l.match(/URI="([^"]+)"/)[1];
        init = Buffer.from(await (await fetch(new URL(uri, mediaUrl))).arrayBuffer());
      } else if (l.startsWith('#EXTINF')) {
        pendingSeg = true;
      } else if (pendingSeg && l.trim() && !l.startsWith('#')) {
        pendingSeg = false;
        // only segments completed after recording started: ~seconds of contiguous programme
        if (firstMsn === null) firstMsn = msn + 1;
        if (msn >= firstMsn && !got.has(msn) && Date.now() - t0 < seconds * 1000 + 2500) {
          got.set(msn, Buffer.from(await (await fetch(new URL(l.trim(), mediaUrl))).arrayBuffer()));
        }
        msn++;
      } else if (l.trim() === '#EXT-X-DISCONTINUITY') {
        log(`warning: discontinuity in the recorded window (msn ${msn})`);
      }
    }
    await sleep(1000);
  }
  const msns = [...got.keys()].sort((a, b) => a - b);
  writeFileSync(file, Buffer.concat([init, ...msns.map((m) => got.get(m))]));
  return { segments: msns.length, msnFirst: msns[0], msnLast: msns[msns.length - 1] };
}

/** [{t, v}] from an ffmpeg `metadata=print` / `ametadata=print` file. */
function readMeta(file, key) {
  const out = [];
  let t = null;
  for (const l of readFileSync(file, 'utf8').split('\n')) {
    const m = l.match(/pts_time:([-\d.]+)/);
    if (m) t = Number(m[1]);
    else if (l.startsWith(key + '=') && t !== null) out.push({ t, v: Number(l.split('=')[1]) });
  }
  return out;
}

/** Upward crossings of a threshold: half-way between min and max, or `dropDb` under the max (audio levels). */
function onsets(series, minGapS, dropDb = null) {
  if (!series.length) return { onsets: [], lo: null, hi: null };
  const vals = series.map((s) => s.v).filter(Number.isFinite);
  const lo = Math.min(...vals);
  const hi = Math.max(...vals);
  const th = dropDb === null ? (lo + hi) / 2 : hi - dropDb;
  const out = [];
  let above = series[0].v > th;
  for (const s of series) {
    const a = Number.isFinite(s.v) && s.v > th;
    if (a && !above && (!out.length || s.t - out[out.length - 1] > minGapS)) out.push(s.t);
    above = a;
  }
  return { onsets: out, lo, hi };
}

function analyseAv(file, dir, freqs) {
  const f = (n) => join(dir, n);
  const filter = [
    `[0:v]split[l][r]`,
    `[l]crop=iw/2:ih:0:0,signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=${f('left.txt')}[lo]`,
    `[r]crop=iw/2:ih:iw/2:0,signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=${f('right.txt')}[ro]`,
    `[0:a]aformat=channel_layouts=mono,asplit[a1][a2]`,
    `[a1]bandpass=f=${freqs[0]}:width_type=q:w=8,asetnsamples=n=240,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=${f('tone0.txt')}[ao1]`,
    `[a2]bandpass=f=${freqs[1]}:width_type=q:w=8,asetnsamples=n=240,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=${f('tone1.txt')}[ao2]`,
  ].join(';');
  const args = ['-hide_banner', '-loglevel', 'error', '-i', file, '-filter_complex', filter, '-map', '[lo]', '-f', 'null', '-', '-map', '[ro]', '-f', 'null', '-', '-map', '[ao1]', '-f', 'null', '-', '-map', '[ao2]', '-f', 'null', '-'];
  const r = spawnSync('ffmpeg', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg analysis failed: ${r.stderr}`);
  const video = { left: onsets(readMeta(f('left.txt'), 'lavfi.signalstats.YAVG'), 1), right: onsets(readMeta(f('right.txt'), 'lavfi.signalstats.YAVG'), 1) };
  const audio = [0, 1].map((i) => onsets(readMeta(f(`tone${i}.txt`), 'lavfi.astats.Overall.RMS_level').map((s) => ({ t: s.t, v: Number.isFinite(s.v) ? Math.max(s.v, -120) : -120 })), 1, 12));
  const pair = (vOn, aOn) => {
    const offs = [];
    for (const t of vOn) {
      let best = null;
      for (const a of aOn) if (best === null || Math.abs(a - t) < Math.abs(best - t)) best = a;
      if (best !== null && Math.abs(best - t) <= 1.0) offs.push(Math.round((best - t) * 1000));
    }
    return offs;
  };
  const summary = (offs) => {
    const s = [...offs].sort((a, b) => a - b);
    return s.length
      ? { n: s.length, median_ms: pct(s, 50), mean_ms: Math.round(s.reduce((a, b) => a + b, 0) / s.length), min_ms: s[0], max_ms: s[s.length - 1], all_ms: offs }
      : { n: 0 };
  };
  // Which half is A is read from the picture alone: B flashes B_PHASE_MS after A in every period.
  const L = video.left.onsets;
  const R = video.right.onsets;
  const lags = L.map((t) => R.find((r) => r > t)).map((r, i) => (r === undefined ? null : r - L[i])).filter((x) => x !== null);
  const lag = lags.length ? pct([...lags].sort((x, y) => x - y), 50) : null;
  const leftIsA = lag === null ? true : Math.abs(lag - B_PHASE_MS / 1000) < Math.abs(lag - (2 - B_PHASE_MS / 1000));
  const aTile = leftIsA ? 'left' : 'right';
  const bTile = leftIsA ? 'right' : 'left';
  return {
    A: { tile: aTile, flashes: video[aTile].onsets.length, beeps: audio[0].onsets.length, ...summary(pair(video[aTile].onsets, audio[0].onsets)) },
    B: { tile: bTile, flashes: video[bTile].onsets.length, beeps: audio[1].onsets.length, ...summary(pair(video[bTile].onsets, audio[1].onsets)) },
    flashLagLeftToRight_ms: lag === null ? null : Math.round(lag * 1000),
    levels: { lumaLeft: [video.left.lo, video.left.hi], lumaRight: [video.right.lo, video.right.hi], tone0_dB: [audio[0].lo, audio[0].hi], tone1_dB: [audio[1].lo, audio[1].hi] },
    onsets_s: { left: L, right: R, toneA: audio[0].onsets, toneB: audio[1].onsets },
  };
}

// ---- main ---------------------------------------------------------------------------------------------------
async function main() {
  if (process.env.BENCH_ANALYSE) {
    // re-run the A/V analysis on a kept recording: BENCH_ANALYSE=/tmp/…/programme.mp4
    const dir = mkdtempSync(join(tmpdir(), 'rostrum-bench-bc-'));
    console.log(JSON.stringify(analyseAv(process.env.BENCH_ANALYSE, dir, [1000, 2500])));
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  // BENCH_SERVER_ARGS: extra `rostrum serve` flags to compare settings, e.g. "--part-ms 333".
  const extra = (process.env.BENCH_SERVER_ARGS ?? '').split(' ').filter(Boolean);
  const server = await startServer(['--log', 'warn', ...extra], { broadcast: true });
  const browser = await launchBrowser();
  const pages = [];
  const results = {};
  const tmp = mkdtempSync(join(tmpdir(), 'rostrum-bench-bc-'));
  try {
    if (ONLY.has('latency') || ONLY.has('classic')) {
      const room = 'benchclock';
      pages.push(await publisher(browser, server, room, 'Clock', { mode: 'clock', phaseMs: 0, freq: 440 }));
      const st = await waitLive(server, room);
      log(`broadcast live: ${JSON.stringify(st)}`);
      if (ONLY.has('latency')) {
        results.llhls = await measureLatency(browser, server, room, 'll');
        console.log('glass-to-glass, LL-HLS:', JSON.stringify(results.llhls));
      }
      if (ONLY.has('classic')) {
        results.classic = await measureLatency(browser, server, room, 'classic');
        console.log('glass-to-glass, classic HLS:', JSON.stringify(results.classic));
      }
      for (const p of pages.splice(0)) await p.context().close();
    }
    if (ONLY.has('av')) {
      const room = 'benchav';
      const freqs = [1000, 2500];
      pages.push(await publisher(browser, server, room, 'A', { mode: 'flash', phaseMs: 0, freq: freqs[0] }));
      pages.push(await publisher(browser, server, room, 'B', { mode: 'flash', phaseMs: B_PHASE_MS, freq: freqs[1] }));
      await waitLive(server, room);
      // two tiles composed and past the first segment
      const deadline = Date.now() + 30000;
      for (;;) {
        const s = await (await fetch(`${server.origin}/api/broadcasts/${room}`)).json();
        if (s.tiles === 2 || Date.now() > deadline) break;
        await sleep(500);
      }
      await sleep(4000);
      const file = join(tmp, 'programme.mp4');
      const rec = await recordProgramme(server, room, RECORD_S, file);
      log(`recorded ${JSON.stringify(rec)} → ${file}`);
      results.av = { recording: rec, ...analyseAv(file, tmp, freqs) };
      console.log('A/V offset (beep onset − flash onset, + = audio late):', JSON.stringify(results.av));
      for (const p of pages.splice(0)) await p.context().close();
    }
    console.log(JSON.stringify(results));
    console.log(`command: node tests/e2e/bench-broadcast.mjs --window ${WINDOW_S} --warmup ${WARMUP_S} --record ${RECORD_S} --only ${opts.only} (mixer: ${process.env.ROSTRUM_MIXER ?? 'next to the server'})`);
  } catch (e) {
    dumpConsole(pages);
    console.log(server.output().split('\n').slice(-40).join('\n'));
    throw e;
  } finally {
    await browser.close();
    await server.stop();
    if (!process.env.BENCH_KEEP) rmSync(tmp, { recursive: true, force: true });
    else log(`kept ${tmp}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
