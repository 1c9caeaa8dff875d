// The /stream stage in Debian's firefox-esr, driven headless over WebDriver BiDi by puppeteer-core
// (playwright-core cannot drive a stock Firefox: it needs Playwright's own patched build).
//   bash tests/firefox/run.sh      (installs firefox-esr, npm ci, builds, then runs this file in a private
//                                  network namespace: see run.sh for why 127.0.0.1 does not work with Firefox)
// Env: ROSTRUM_BIN (default target/debug/rostrum), FIREFOX_BIN (default /usr/bin/firefox-esr),
//      CHROMIUM_BIN (default /usr/bin/chromium; the mixed test is skipped without it),
//      ROSTRUM_FF_MEDIA_IP (set by run.sh: a non-loopback address of this namespace the server binds and announces).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import playwright from 'playwright-core';

const { chromium } = playwright;
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const FIREFOX_BIN = process.env.FIREFOX_BIN || '/usr/bin/firefox-esr';
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const MEDIA_IP = process.env.ROSTRUM_FF_MEDIA_IP || '198.18.0.1';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('[firefox]', ...a);
const uniqueRoom = (p) => `${p}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;

/**
 * Firefox prefs: fake camera and microphone without a prompt, real host addresses in candidates, autoplay,
 * and no background traffic (the machine has no network). `media.peerconnection.ice.loopback` is set too,
 * though firefox-esr 140/153 still drop 127.0.0.1 when gathering (hence the namespace in run.sh).
 */
const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  'network.connectivity-service.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.http.speculative-parallel-limit': 0,
  'app.update.enabled': false,
  'app.update.auto': false,
  'app.normandy.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.downloads.remote.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.safebrowsing.provider.google4.updateURL': '',
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.search.update': false,
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'media.gmp-manager.updateEnabled': false,
  'media.gmp-manager.url': '',
  'services.settings.server': '',
};

const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-background-networking',
  '--no-sandbox',
  '--disable-gpu',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

function assertMediaAddress() {
  const local = Object.values(networkInterfaces()).flat().map((a) => a.address);
  if (!local.includes(MEDIA_IP)) {
    throw new Error(
      `${MEDIA_IP} is not an address of this network namespace (have ${local.join(', ')}). ` +
        'Run `bash tests/firefox/run.sh`: it creates a private namespace with that address. Firefox does not ' +
        'gather 127.0.0.1 candidates, so the server must announce a non-loopback address.',
    );
  }
}

/** Starts `rostrum serve`: HTTP on 127.0.0.1, media bound to and announced on MEDIA_IP, both on free ports. */
async function startServer() {
  const bin = process.env.ROSTRUM_BIN ? resolve(process.env.ROSTRUM_BIN) : join(repoRoot, 'target', 'debug', 'rostrum');
  if (!existsSync(bin)) throw new Error(`rostrum binary not found at ${bin}: cargo build -p rostrum-server, or set ROSTRUM_BIN`);
  const webRoot = join(repoRoot, 'web', 'dist');
  if (!existsSync(join(webRoot, 'stream.html'))) throw new Error(`${webRoot}/stream.html missing: npm run build --prefix web`);
  const args = ['serve', '--http', '127.0.0.1:0', '--media-port', '0', '--bind-ip', MEDIA_IP, '--public-ip', MEDIA_IP, '--web-root', webRoot, '--no-broadcast'];
  const proc = spawn(bin, args, { cwd: repoRoot, env: { RUST_LOG: 'info', ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const keep = (chunk) => {
    for (const l of chunk.toString().split('\n')) if (l.length) lines.push(l);
    if (lines.length > 2000) lines.splice(0, lines.length - 2000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const killOnExit = () => proc.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stageUrl = await new Promise((ok, fail) => {
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`rostrum printed no stage URL in 30 s:\n${lines.slice(-40).join('\n')}`)), 30000);
    proc.stdout.on('data', function onData(chunk) {
      buf += chunk.toString();
      const m = buf.match(/stage:\s+(https?:\/\/\S+\/stream)/);
      if (m) {
        clearTimeout(timer);
        proc.stdout.off('data', onData);
        ok(m[1]);
      }
    });
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      fail(new Error(`rostrum exited early (code ${code}, signal ${sig}):\n${lines.slice(-40).join('\n')}`));
    });
  });
  log(`server up: ${stageUrl}, media ${MEDIA_IP}`);
  return {
    stageUrl,
    output: () => lines.join('\n'),
    async stop() {
      process.off('exit', killOnExit);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * One participant: its own browser (own profile) and page, behind a small common interface:
 * { label, browser, version, goto(url), evaluate(fn, arg), console[], close() }.
 */
async function firefoxParticipant(label) {
  if (!existsSync(FIREFOX_BIN)) throw new Error(`${FIREFOX_BIN} missing: apt-get install -y firefox-esr (or set FIREFOX_BIN)`);
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX_BIN,
    headless: true,
    extraPrefsFirefox: FIREFOX_PREFS,
  });
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[${label}] pageerror: ${e.message}`));
  return {
    label,
    browser: 'firefox',
    version: await browser.version(),
    goto: (url) => page.goto(url),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    console: consoleLines,
    close: () => browser.close(),
  };
}

async function chromiumParticipant(label) {
  const browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS });
  const page = await (await browser.newContext({ viewport: { width: 1024, height: 700 } })).newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[${label}] pageerror: ${e.message}`));
  return {
    label,
    browser: 'chromium',
    version: browser.version(),
    goto: (url) => page.goto(url),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    console: consoleLines,
    close: () => browser.close(),
  };
}

const stageUrlFor = (server, room, name) =>
  `${server.stageUrl}?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}&autojoin=1`;

async function waitFor(p, what, fn, arg, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await p.evaluate(fn, arg);
    if (last.ok) return last;
    if (Date.now() > deadline) throw new Error(`${p.label}: ${what} not reached in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}

/** Waits for `window.rostrum.state === 'joined'`; returns the participant id. */
async function waitJoined(p, timeoutMs = 30000) {
  const st = await waitFor(
    p,
    'joined',
    () => {
      const r = window.rostrum;
      const state = r ? r.state : 'no window.rostrum';
      return { ok: state === 'joined' || state === 'error', state, error: r?.error ?? null, id: r?.participantId ?? null };
    },
    null,
    timeoutMs,
  );
  if (st.state !== 'joined') throw new Error(`${p.label} could not join: ${JSON.stringify(st.error)}`);
  return st.id;
}

/** { participantId → { video: {framesDecoded, packetsReceived}, audio: {packetsReceived} } } from recvPc stats. */
async function mediaByParticipant(p) {
  const stats = await p.evaluate(() => window.rostrum.stats());
  const out = {};
  for (const s of stats) {
    if (!s.participantId) continue;
    const m = (out[s.participantId] ??= { video: { framesDecoded: 0, packetsReceived: 0 }, audio: { packetsReceived: 0 } });
    if (s.kind === 'video') {
      m.video.framesDecoded += s.framesDecoded;
      m.video.packetsReceived += s.packetsReceived;
    } else if (s.kind === 'audio') {
      m.audio.packetsReceived += s.packetsReceived;
    }
  }
  return out;
}

/** Video frames decoded and audio packets received both rise, between two reads 1 s apart, for `pid`. */
async function waitMediaFlowing(p, pid, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let a = await mediaByParticipant(p);
  for (;;) {
    await sleep(1000);
    const b = await mediaByParticipant(p);
    const x = a[pid];
    const y = b[pid];
    if (x && y && y.video.framesDecoded > x.video.framesDecoded && y.audio.packetsReceived > x.audio.packetsReceived) {
      return y;
    }
    if (Date.now() > deadline) {
      throw new Error(`${p.label}: media from ${pid} not flowing in ${timeoutMs} ms\nbefore: ${JSON.stringify(a)}\nafter: ${JSON.stringify(b)}`);
    }
    a = b;
  }
}

/** The nominated ICE pair of recvPc, as "local -> remote" addresses. */
async function recvPair(p) {
  return p.evaluate(async () => {
    const pc = window.rostrum.recvPc;
    if (!pc) return null;
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    });
    if (!pair) return null;
    const l = byId.get(pair.localCandidateId);
    const r = byId.get(pair.remoteCandidateId);
    return `${l?.address}:${l?.port}/${l?.protocol} -> ${r?.address}:${r?.port}`;
  });
}

/** Both join the same room at once; each must decode the other's video and receive its audio. */
async function twoOnStage(server, makeA, makeB) {
  const room = uniqueRoom('ff');
  const [a, b] = await Promise.all([makeA(), makeB()]);
  const people = [a, b];
  try {
    log(`${a.label}: ${a.browser} ${a.version}; ${b.label}: ${b.browser} ${b.version}`);
    await Promise.all(people.map((p) => p.goto(stageUrlFor(server, room, p.label))));
    const ids = await Promise.all(people.map((p) => waitJoined(p)));
    assert.notEqual(ids[0], ids[1], 'distinct participant ids');
    for (const [i, p] of people.entries()) {
      const other = people[1 - i];
      const otherId = ids[1 - i];
      await waitFor(p, 'a tile of the other participant', (n) => ({ ok: window.rostrum.tiles().length === n, tiles: window.rostrum.tiles() }), 1, 20000);
      const tiles = await p.evaluate(() => window.rostrum.tiles());
      assert.deepEqual(tiles, [{ participantId: otherId, name: other.label }]);
      const media = await waitMediaFlowing(p, otherId);
      const rendered = await waitFor(
        p,
        'the tile video rendering',
        (id) => {
          const v = document.querySelector(`.tile[data-participant-id="${id}"] video`);
          return { ok: !!v && v.videoWidth > 0, videoWidth: v ? v.videoWidth : -1 };
        },
        otherId,
        15000,
      );
      log(`${p.label} gets ${other.label}: ${JSON.stringify(media)}, tile video ${rendered.videoWidth}px wide, pair ${await recvPair(p)}`);
    }
  } catch (e) {
    for (const p of people) console.log(p.console.slice(-30).join('\n'));
    console.log('--- server output (tail) ---\n' + server.output().split('\n').slice(-60).join('\n'));
    throw e;
  } finally {
    await Promise.allSettled(people.map((p) => p.close()));
  }
}

describe('stage in firefox-esr (WebDriver BiDi)', { timeout: 240000 }, () => {
  let server;
  before(async () => {
    assertMediaAddress();
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('two Firefox participants see and hear each other', { timeout: 110000 }, async () => {
    await twoOnStage(server, () => firefoxParticipant('Fox'), () => firefoxParticipant('Vixen'));
  });

  test(
    'Firefox and Chromium see and hear each other',
    { timeout: 110000, skip: existsSync(CHROMIUM_BIN) ? false : `${CHROMIUM_BIN} missing (apt-get install -y chromium)` },
    async () => {
      await twoOnStage(server, () => firefoxParticipant('Fox'), () => chromiumParticipant('Chrome'));
    },
  );
});
