// ICE-TCP acceptance test: participants whose UDP is dropped still connect, over TCP, and decode media.
//   node --test tests/e2e/icetcp.test.mjs      (as root; after `npm ci --prefix web && npm run build --prefix web`
//                                               and `cargo build -p rostrum-server`)
// Env: ROSTRUM_BIN (default target/debug/rostrum), CHROMIUM_BIN (default /usr/bin/chromium), ROSTRUM_LOG,
//      E2E_LOG_DIR (write the server's full output there).
//
// How: a private network namespace `rostrum-icetcp-<pid>` with only its loopback up and an nftables ruleset that
// drops every UDP packet (input and output). Both the rostrum node and Chromium run inside it (`ip netns exec`),
// on its 127.0.0.1; playwright drives Chromium over a pipe, which crosses namespaces. The node offers a UDP host
// candidate and a TCP passive host candidate on the same port; with UDP dropped, ICE can only succeed over TCP.
// Controls: a UDP datagram on the namespace's loopback arrives before the ruleset is installed and not after, and
// the ruleset's drop counters show that Chromium did try UDP. Needs root (network namespaces, nftables); skips with
// a message when not root or when `ip netns add` is refused. The namespace (and anything left inside it) is removed
// in all cases.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, CHROMIUM_ARGS, dumpConsole, log, newParticipantPage, sleep, startServer, waitJoined, waitMediaFlowing } from './helpers.mjs';

const NS_PREFIX = 'rostrum-icetcp-';
const NS = `${NS_PREFIX}${process.pid}`;

const NFT_RULESET = `
table inet rostrum {
  chain output { type filter hook output priority 0; policy accept; meta l4proto udp counter drop; }
  chain input { type filter hook input priority 0; policy accept; meta l4proto udp counter drop; }
}
`;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20000, ...opts });
  return { ok: r.status === 0, status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function must(cmd, args, opts) {
  const r = run(cmd, args, opts);
  if (!r.ok) throw new Error(`\`${[cmd, ...args].join(' ')}\` failed (status ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Kills whatever still runs inside the namespace (only processes this test started) and deletes it. */
function removeNamespace(ns) {
  const pids = run('ip', ['netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  run('ip', ['netns', 'del', ns]);
}

/** Namespaces of earlier runs of this test whose process is gone (e.g. killed with SIGKILL). */
function removeStaleNamespaces() {
  const list = run('ip', ['netns', 'list']).stdout;
  for (const line of list.split('\n')) {
    const name = line.trim().split(/\s+/)[0];
    if (!name?.startsWith(NS_PREFIX)) continue;
    const pid = Number(name.slice(NS_PREFIX.length));
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch {
      /* not alive */
    }
    if (!alive && pid !== process.pid) removeNamespace(name);
  }
}

let nsCreated = false;
let tempDir = null;
function cleanupSync() {
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  tempDir = null;
  if (!nsCreated) return;
  nsCreated = false;
  removeNamespace(NS);
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    cleanupSync();
    process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[sig] ?? 0));
  });
}

/** Why this test cannot run here (not root, or namespaces refused), or null once the namespace exists. */
function createNamespace() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return `ICE-TCP test needs root (network namespace + nftables); running as uid ${process.getuid()}`;
  }
  const which = run('ip', ['-V']);
  if (!which.ok) throw new Error(`iproute2 \`ip\` not usable (${which.stderr.trim()}): apt-get install -y iproute2`);
  removeStaleNamespaces();
  const add = run('ip', ['netns', 'add', NS]);
  if (!add.ok) return `ICE-TCP test skipped: \`ip netns add ${NS}\` was refused: ${add.stderr.trim()}`;
  nsCreated = true;
  must('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  return null;
}

/**
 * Sends one UDP datagram to 127.0.0.1 inside the namespace (a dgram socket pair in a node child) and reports
 * whether it arrived and what the send returned.
 */
function udpProbe() {
  const script = `
    const dgram = require('node:dgram');
    const rx = dgram.createSocket('udp4');
    let got = 0;
    rx.on('message', () => got++);
    rx.bind(0, '127.0.0.1', () => {
      const tx = dgram.createSocket('udp4');
      tx.send('rostrum-icetcp-probe', rx.address().port, '127.0.0.1', (err) => {
        setTimeout(() => { console.log(JSON.stringify({ got, sendError: err ? err.code || String(err) : null })); process.exit(0); }, 500);
      });
    });`;
  const out = must('ip', ['netns', 'exec', NS, process.execPath, '-e', script]);
  return JSON.parse(out.trim().split('\n').pop());
}

/** Packets counted by the drop rules: { input, output }. */
function dropCounters() {
  const json = JSON.parse(must('ip', ['netns', 'exec', NS, 'nft', '-j', 'list', 'table', 'inet', 'rostrum']));
  const out = {};
  for (const item of json.nftables) {
    const rule = item.rule;
    if (!rule) continue;
    const counter = rule.expr.find((e) => e.counter)?.counter;
    if (counter) out[rule.chain] = counter.packets;
  }
  return out;
}

/** `rostrum serve` inside the namespace on ephemeral ports, announcing 127.0.0.1 (the namespace's loopback). */
function startServerInNs() {
  return startServer([], { prefix: ['ip', 'netns', 'exec', NS] });
}

/** Chromium inside the namespace: playwright starts a wrapper that enters the namespace and execs Chromium. */
async function launchBrowserInNs(dir) {
  const chromiumBin = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  if (!existsSync(chromiumBin)) throw new Error(`${chromiumBin} missing: apt-get install -y chromium (or set CHROMIUM_BIN)`);
  const wrapper = join(dir, 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec '${NS}' '${chromiumBin}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  return chromium.launch({ executablePath: wrapper, args: CHROMIUM_ARGS });
}

/**
 * For one PeerConnection of the page ('sendPc' or 'recvPc'): connection state, the selected candidate pair's
 * local and remote candidates, every candidate pair tried, and the candidates in the remote SDP.
 */
async function iceReport(page, which) {
  return page.evaluate(async (w) => {
    const pc = window.rostrum[w];
    if (!pc) return null;
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    const cand = (id) => {
      const c = byId.get(id);
      return c && { protocol: c.protocol, type: c.candidateType, address: c.address ?? c.ip, port: c.port, tcpType: c.tcpType ?? null };
    };
    const transports = [...byId.values()].filter((s) => s.type === 'transport');
    const selectedId = transports.map((t) => t.selectedCandidatePairId).find(Boolean);
    const sel = selectedId ? byId.get(selectedId) : null;
    const pairs = [...byId.values()]
      .filter((s) => s.type === 'candidate-pair')
      .map((p) => ({ local: cand(p.localCandidateId), remote: cand(p.remoteCandidateId), state: p.state, nominated: !!p.nominated }));
    const remoteSdpCandidates = (pc.remoteDescription?.sdp ?? '')
      .split(/\r?\n/)
      .filter((l) => l.startsWith('a=candidate:'))
      .map((l) => l.slice(2));
    return {
      connectionState: pc.connectionState,
      iceConnectionState: pc.iceConnectionState,
      selected: sel ? { local: cand(sel.localCandidateId), remote: cand(sel.remoteCandidateId), state: sel.state, bytesSent: sel.bytesSent, bytesReceived: sel.bytesReceived } : null,
      pairs,
      remoteSdpCandidates,
    };
  }, which);
}

async function waitSelectedPair(page, which, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await iceReport(page, which);
    if (r?.selected && r.connectionState === 'connected') return r;
    if (Date.now() > deadline) throw new Error(`${page.label}.${which}: no connected selected candidate pair within ${timeoutMs} ms: ${JSON.stringify(r)}`);
    await sleep(250);
  }
}

const fmtCand = (c) => (c ? `${c.protocol}${c.tcpType ? `/${c.tcpType}` : ''} ${c.type} ${c.address}:${c.port}` : 'none');

test('ICE-TCP: participants whose UDP is dropped connect over TCP and decode media', { timeout: 240000 }, async (t) => {
  const skip = createNamespace();
  if (skip) {
    log(skip);
    t.skip(skip);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'rostrum-icetcp-'));
  tempDir = dir;
  let server;
  let browser;
  const pages = [];
  const t0 = Date.now();
  try {
    // Control: UDP works on the namespace's loopback before the ruleset, and is dropped after it.
    const before = udpProbe();
    assert.equal(before.got, 1, `control: a UDP datagram on ${NS}'s loopback should arrive before the drop rules (${JSON.stringify(before)})`);
    const nft = run('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { input: NFT_RULESET });
    if (!nft.ok) throw new Error(`installing the UDP-drop ruleset in ${NS} failed (apt-get install -y nftables?): ${nft.stderr.trim()}`);
    const afterRules = udpProbe();
    assert.equal(afterRules.got, 0, `control: UDP must be dropped in ${NS} once the ruleset is in (${JSON.stringify(afterRules)})`);
    const c0 = dropCounters();
    log(`netns ${NS}: UDP datagram arrives without the rules, dropped with them (send: ${afterRules.sendError ?? 'ok'}); counters ${JSON.stringify(c0)}`);

    server = await startServerInNs();
    browser = await launchBrowserInNs(dir);
    const room = `icetcp-${Date.now().toString(36)}`;
    const names = ['A', 'B'];
    for (const n of names) pages.push(await newParticipantPage(browser, n));
    const url = (n) => `${server.stageUrl}?room=${room}&name=${n}&autojoin=1`;
    await Promise.all(pages.map((p, i) => p.goto(url(names[i]))));
    const ids = await Promise.all(pages.map((p) => waitJoined(p, 60000)));
    log(`A and B joined (${ids.join(', ')}) ${Date.now() - t0} ms after start`);

    // Each decodes the other's video (and receives its audio).
    await Promise.all(
      pages.map(async (p, i) => {
        const other = ids[1 - i];
        const { before: b, after: a } = await waitMediaFlowing(p, [other], 60000);
        log(`${names[i]} ← ${names[1 - i]}: framesDecoded ${b[other].video.framesDecoded}→${a[other].video.framesDecoded}, audio packets ${b[other].audio.packetsReceived}→${a[other].audio.packetsReceived}`);
      }),
    );
    log(`media flowing both ways ${Date.now() - t0} ms after start`);

    // Both PeerConnections of both pages are connected over TCP; the node offered UDP and TCP on one port.
    for (const p of pages) {
      for (const which of ['sendPc', 'recvPc']) {
        const r = await waitSelectedPair(p, which, 30000);
        const sel = r.selected;
        log(`${p.label}.${which}: selected ${fmtCand(sel.local)} → ${fmtCand(sel.remote)} (${sel.state}, ${sel.bytesSent} B sent, ${sel.bytesReceived} B received); pairs tried: ${r.pairs.map((x) => `${fmtCand(x.local)}→${fmtCand(x.remote)}:${x.state}`).join('; ')}`);
        assert.equal(sel.local.protocol, 'tcp', `${p.label}.${which}: selected local candidate should be tcp: ${JSON.stringify(r)}`);
        assert.equal(sel.remote.protocol, 'tcp', `${p.label}.${which}: selected remote candidate should be tcp: ${JSON.stringify(r)}`);
        const udp = r.remoteSdpCandidates.filter((c) => / udp /i.test(c));
        const tcp = r.remoteSdpCandidates.filter((c) => / tcp /i.test(c) && /tcptype passive/.test(c));
        assert.ok(udp.length > 0 && tcp.length > 0, `${p.label}.${which}: the node should offer a UDP and a TCP passive candidate: ${JSON.stringify(r.remoteSdpCandidates)}`);
        const port = (c) => Number(c.split(/\s+/)[5]);
        assert.ok(tcp.some((c) => port(c) === sel.remote.port), `${p.label}.${which}: selected remote port ${sel.remote.port} is the offered TCP candidate's`);
        assert.ok(udp.some((c) => port(c) === sel.remote.port), `${p.label}.${which}: UDP and TCP candidates share the port number ${sel.remote.port}: ${JSON.stringify(r.remoteSdpCandidates)}`);
      }
    }

    // The drop was real during the call: Chromium tried UDP and the rules dropped it.
    const c1 = dropCounters();
    log(`nft UDP drop counters: before browsers ${JSON.stringify(c0)}, after the call ${JSON.stringify(c1)}`);
    assert.ok(c1.output > c0.output, `Chromium's UDP packets should have been dropped (output counter ${c0.output}→${c1.output})`);
    log(`ICE-TCP test passed in ${Date.now() - t0} ms`);
  } catch (e) {
    dumpConsole(pages);
    for (const p of pages) {
      for (const which of ['sendPc', 'recvPc']) {
        const r = await iceReport(p, which).catch((err) => `unavailable: ${err.message}`);
        console.log(`--- ${p.label}.${which} ICE: ${JSON.stringify(r)}`);
      }
    }
    try {
      console.log(`--- nft UDP drop counters: ${JSON.stringify(dropCounters())}`);
    } catch {
      /* ruleset not installed */
    }
    if (server) console.log(`--- server output (tail) ---\n${server.output().split('\n').slice(-80).join('\n')}`);
    throw e;
  } finally {
    await browser?.close().catch(() => {});
    await server?.stop().catch(() => {});
    cleanupSync();
  }
  assert.ok(!run('ip', ['netns', 'list']).stdout.split('\n').some((l) => l.trim().split(/\s+/)[0] === NS), `namespace ${NS} removed`);
});
