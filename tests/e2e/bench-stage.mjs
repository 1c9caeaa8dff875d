// Benchmark (not a test): join → first remote frame over many joins, and the server's CPU and RSS with
// 3 and 9 participants, all in headless Debian chromium against a real `rostrum serve`.
//
//   node tests/e2e/bench-stage.mjs [--joins 20] [--window 10]
//
// Use a release binary for numbers: ROSTRUM_BIN=target/release/rostrum. The server is pinned to core 0
// and chromium to core 1 when `taskset` exists (see ../shared/design.md); the server's CPU comes from its
// own /proc/<pid>/stat, so the browsers' load is not counted.

import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { chromium, CHROMIUM_ARGS, newParticipantPage, sleep, startServer, stageUrl, waitJoined } from './helpers.mjs';

const { values: opts } = parseArgs({
  options: { joins: { type: 'string', default: '20' }, window: { type: 'string', default: '10' } },
});
const JOINS = Number(opts.joins);
const WINDOW_S = Number(opts.window);
const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** Records, in the page's own clock, when each remote video track renders its first frame. */
const FIRST_FRAME_HOOK = () => {
  window.__firstFrames = [];
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Orig(...args);
    pc.addEventListener('track', (ev) => {
      if (ev.track.kind !== 'video') return;
      const v = document.createElement('video');
      v.muted = true;
      v.srcObject = new MediaStream([ev.track]);
      v.requestVideoFrameCallback(() => window.__firstFrames.push(performance.now()));
      v.play().catch(() => {});
    });
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
};

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
}

function rssMiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

async function forwardedTotal(server) {
  const metrics = await (await fetch(`${server.origin}/metrics`)).text();
  return Number(metrics.match(/^rostrum_rtp_packets_forwarded_total (\d+)/m)?.[1] ?? NaN);
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function joinPage(browser, server, room, name) {
  const page = await newParticipantPage(browser, name);
  await page.addInitScript(FIRST_FRAME_HOOK);
  await page.goto(stageUrl(server, room, name));
  await waitJoined(page, 30000);
  return page;
}

async function measureLoad(server, browser, count) {
  const room = `load${count}`;
  const pages = [];
  for (let i = 0; i < count; i++) pages.push(await joinPage(browser, server, room, `P${i + 1}`));
  // Everyone sees everyone before measuring.
  const deadline = Date.now() + 60000;
  for (const p of pages) {
    await p.waitForFunction((n) => window.__firstFrames.length >= n, count - 1, { timeout: Math.max(1000, deadline - Date.now()) });
  }
  await sleep(2000);
  const pid = server.proc.pid;
  const f0 = await forwardedTotal(server);
  const c0 = cpuSeconds(pid);
  const t0 = Date.now();
  await sleep(WINDOW_S * 1000);
  const secs = (Date.now() - t0) / 1000;
  const cpu = (cpuSeconds(pid) - c0) / secs;
  const pps = ((await forwardedTotal(server)) - f0) / secs;
  const rss = rssMiB(pid);
  for (const p of pages) await p.context().close();
  return {
    participants: count,
    cpuPercentOfOneCore: +(cpu * 100).toFixed(1),
    rssMiB: +rss.toFixed(1),
    forwardedPacketsPerSecond: Math.round(pps),
    cpuMicrosecondsPerForwardedPacket: +((cpu * 1e6) / pps).toFixed(2),
  };
}

async function main() {
  const server = await startServer(['--log', 'warn']);
  if (hasTaskset) execFileSync('taskset', ['-pc', '0', String(server.proc.pid)]);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium', args: CHROMIUM_ARGS });
  if (hasTaskset) {
    const bp = browser.process?.()?.pid;
    if (bp) spawnSync('taskset', ['-apc', '1', String(bp)]);
  }
  try {
    // Two people already on stage; each join measures its own request → first remote frame.
    const residents = [await joinPage(browser, server, 'joins', 'Resident1'), await joinPage(browser, server, 'joins', 'Resident2')];
    const samples = [];
    for (let i = 0; i < JOINS; i++) {
      const page = await joinPage(browser, server, 'joins', `Joiner${i}`);
      await page.waitForFunction(() => window.__firstFrames.length > 0, null, { timeout: 15000 });
      const ms = await page.evaluate(() => window.__firstFrames[0] - window.rostrum.timings.joinRequested);
      samples.push(ms);
      await page.context().close();
    }
    for (const r of residents) await r.context().close();
    samples.sort((a, b) => a - b);
    const join = {
      joins: samples.length,
      p50_ms: Math.round(pct(samples, 50)),
      p95_ms: Math.round(pct(samples, 95)),
      max_ms: Math.round(samples[samples.length - 1]),
    };
    console.log('join → first remote frame:', JSON.stringify(join));
    const load3 = await measureLoad(server, browser, 3);
    console.log('server with 3 participants:', JSON.stringify(load3));
    const load9 = await measureLoad(server, browser, 9);
    console.log('server with 9 participants:', JSON.stringify(load9));
    console.log(JSON.stringify({ join, load: [load3, load9], pinned: hasTaskset }));
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
