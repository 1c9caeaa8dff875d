// Shared helpers of the browser tests: start the rostrum binary, launch Chromium, read media stats.
// Dependencies come from web/node_modules (`npm ci --prefix web`): playwright-core and socket.io-client.
// Env: ROSTRUM_BIN, CHROMIUM_BIN, E2E_LOG_DIR (write each server's full output there), ROSTRUM_LOG (server log filter).

import { spawn } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const webRequire = createRequire(join(repoRoot, 'web', 'package.json'));
export const { chromium } = webRequire('playwright-core');
export const { io } = webRequire('socket.io-client');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function log(...args) {
  console.log('[e2e]', ...args);
}

/**
 * Starts `rostrum serve` on ephemeral ports, announcing 127.0.0.1, and resolves once it prints its stage URL.
 * `prefix` runs it through another command, e.g. `['ip', 'netns', 'exec', NS]` (which execs, so the pid stays the server's).
 * Returns { origin, stageUrl, watchUrl, stop(), output() }.
 */
/**
 * Start the rostrum binary on free ports. Stage tests run without the compositor (`broadcast:
 * false`, the default here) so a 2-core CI machine spends its CPU on the browsers; broadcast tests
 * pass `broadcast: true`. HLS goes to a fresh temporary directory (`server.storageDir`).
 */
export async function startServer(extraArgs = [], { timeoutMs = 30000, http = '127.0.0.1:0', prefix = [], broadcast = false } = {}) {
  const bin = process.env.ROSTRUM_BIN ? resolve(process.env.ROSTRUM_BIN) : join(repoRoot, 'target', 'debug', 'rostrum');
  if (!existsSync(bin)) {
    throw new Error(`rostrum binary not found at ${bin}: build it with \`cargo build -p rostrum-server\` or set ROSTRUM_BIN`);
  }
  const webRoot = join(repoRoot, 'web', 'dist');
  if (!existsSync(join(webRoot, 'stream.html'))) {
    throw new Error(`${webRoot}/stream.html missing: run \`npm run build --prefix web\``);
  }
  const storageDir = mkdtempSync(join(tmpdir(), 'rostrum-hls-'));
  const args = [
    'serve',
    '--http', http,
    '--media-port', '0',
    '--public-ip', '127.0.0.1',
    '--web-root', 'web/dist',
    '--storage-dir', storageDir,
    ...(broadcast ? [] : ['--no-broadcast']),
    ...extraArgs,
  ];
  const [cmd, ...cmdArgs] = [...prefix, bin, ...args];
  const proc = spawn(cmd, cmdArgs, {
    cwd: repoRoot,
    env: { RUST_LOG: 'info', ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const keep = (prefix) => (chunk) => {
    for (const l of chunk.toString().split('\n')) if (l.length) lines.push(prefix + l);
    if (lines.length > 4000) lines.splice(0, lines.length - 4000);
  };
  proc.stdout.on('data', keep(''));
  proc.stderr.on('data', keep(''));
  if (process.env.E2E_LOG_DIR) {
    // Full server output, one file per server (the failure report shows only the tail).
    mkdirSync(process.env.E2E_LOG_DIR, { recursive: true });
    const file = createWriteStream(join(process.env.E2E_LOG_DIR, `server-${Date.now()}-${proc.pid}.log`));
    proc.stdout.pipe(file);
    proc.stderr.pipe(file);
  }

  const stageUrl = await new Promise((resolveUrl, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      reject(new Error(`rostrum did not print its stage URL within ${timeoutMs} ms:\n${lines.slice(-40).join('\n')}`));
    }, timeoutMs);
    const onData = (chunk) => {
      buf += chunk.toString();
      const m = buf.match(/stage:\s+(https?:\/\/\S+\/stream)/);
      if (m) {
        clearTimeout(timer);
        proc.stdout.off('data', onData);
        resolveUrl(m[1]);
      }
    };
    proc.stdout.on('data', onData);
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`rostrum exited early (code ${code}, signal ${sig}):\n${lines.slice(-40).join('\n')}`));
    });
  });
  const origin = new URL(stageUrl).origin;
  log(`server up: ${stageUrl} (${[bin, ...args].join(' ')})`);
  return {
    origin,
    stageUrl,
    watchUrl: `${origin}/watch`,
    storageDir,
    proc,
    output: () => lines.join('\n'),
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill(signal);
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      if (!process.env.E2E_KEEP_HLS) rmSync(storageDir, { recursive: true, force: true });
    },
  };
}

export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-background-networking',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} missing: apt-get install -y chromium (or set CHROMIUM_BIN)`);
  }
  return chromium.launch({ executablePath: niced(executablePath), args: CHROMIUM_ARGS });
}

/**
 * A wrapper that starts the browser at nice 10 (E2E_BROWSER_NICE=0: as is). Why: in production the participants'
 * browsers are other people's machines; here four of them share two cores with the node and its mixer, and at
 * equal priority their video encoders starve the mixer for long enough to stall a viewer on a 1 s hold-back —
 * a stall of the test bench, not of Rostrum. Children (renderers, GPU process) inherit the niceness.
 */
let nicedWrapper = null;
function niced(executablePath) {
  const n = process.env.E2E_BROWSER_NICE ?? '10';
  if (n === '0') return executablePath;
  if (nicedWrapper === null) {
    const dir = mkdtempSync(join(tmpdir(), 'rostrum-chromium-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    nicedWrapper = join(dir, 'chromium');
    writeFileSync(nicedWrapper, `#!/bin/sh\nexec nice -n ${Number(n) || 10} '${executablePath}' "$@"\n`);
    chmodSync(nicedWrapper, 0o755);
  }
  return nicedWrapper;
}

/** A fresh context and page, with its console kept for failure reports. */
export async function newParticipantPage(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 700 } });
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[${label}] pageerror: ${e.message}`));
  page.label = label;
  page.consoleLines = consoleLines;
  return page;
}

export function stageUrl(server, room, name, extra = '') {
  return `${server.stageUrl}?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}&autojoin=1${extra}`;
}

/** Waits for `window.rostrum.state` to be 'joined' (throws with the page's error otherwise). */
export async function waitJoined(page, timeoutMs = 20000) {
  await page.waitForFunction(
    () => window.rostrum && (window.rostrum.state === 'joined' || window.rostrum.state === 'error'),
    null,
    { timeout: timeoutMs, polling: 50 },
  );
  const st = await page.evaluate(() => ({ state: window.rostrum.state, error: window.rostrum.error, id: window.rostrum.participantId }));
  if (st.state !== 'joined') throw new Error(`${page.label} could not join: ${JSON.stringify(st.error)}`);
  return st.id;
}

/** { participantId → { audio: {packetsReceived}, video: {framesDecoded, packetsReceived} } } from recvPc stats. */
export async function mediaByParticipant(page) {
  const stats = await page.evaluate(() => window.rostrum.stats());
  const out = {};
  for (const s of stats) {
    if (!s.participantId) continue;
    const p = (out[s.participantId] ??= { audio: { packetsReceived: 0 }, video: { framesDecoded: 0, packetsReceived: 0 } });
    if (s.kind === 'video') {
      p.video.framesDecoded += s.framesDecoded;
      p.video.packetsReceived += s.packetsReceived;
    } else if (s.kind === 'audio') {
      p.audio.packetsReceived += s.packetsReceived;
    }
  }
  return out;
}

/**
 * Waits until, for every participant in `pids`, video framesDecoded and audio packetsReceived both rise
 * between two reads ~1 s apart. Returns the last pair of reads.
 */
export async function waitMediaFlowing(page, pids, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let a = await mediaByParticipant(page);
  for (;;) {
    await sleep(1000);
    const b = await mediaByParticipant(page);
    const bad = pids.filter((pid) => {
      const x = a[pid];
      const y = b[pid];
      return !x || !y || !(y.video.framesDecoded > x.video.framesDecoded) || !(y.audio.packetsReceived > x.audio.packetsReceived);
    });
    if (bad.length === 0) return { before: a, after: b };
    if (Date.now() > deadline) {
      throw new Error(
        `${page.label}: media not flowing from ${bad.join(', ')} within ${timeoutMs} ms\nbefore: ${JSON.stringify(a)}\nafter: ${JSON.stringify(b)}`,
      );
    }
    a = b;
  }
}

export async function remoteTiles(page) {
  return page.evaluate(() => window.rostrum.tiles());
}

/** Every tile's <video> has rendered a frame (videoWidth > 0) for the given participants. */
export async function tilesRendering(page, pids) {
  return page.evaluate((ids) => {
    return ids.map((id) => {
      const v = document.querySelector(`.tile[data-participant-id="${id}"] video`);
      return { id, videoWidth: v ? v.videoWidth : -1, paused: v ? v.paused : null, muted: v ? v.muted : null };
    });
  }, pids);
}

export function dumpConsole(pages) {
  for (const p of pages) {
    if (!p?.consoleLines?.length) continue;
    console.log(p.consoleLines.slice(-30).join('\n'));
  }
}

/** A room name no other test (or earlier run) uses. */
export const uniqueRoom = (p) => `${p}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;

/** Runs `fn`, and on failure prints the pages' consoles and the server's log tail before rethrowing. */
export async function withDiagnostics(server, pages, fn) {
  try {
    return await fn();
  } catch (e) {
    dumpConsole(pages);
    console.log('--- server output (tail) ---\n' + server.output().split('\n').slice(-80).join('\n'));
    throw e;
  }
}
