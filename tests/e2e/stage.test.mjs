// End-to-end tests of the /stream stage page against a real `rostrum serve` and headless Chromium.
//   node --test tests/e2e/         (after `npm ci --prefix web && npm run build --prefix web`)
// Env: ROSTRUM_BIN (default target/debug/rostrum), CHROMIUM_BIN (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  io,
  launchBrowser,
  log,
  newParticipantPage,
  remoteTiles,
  sleep,
  stageUrl,
  startServer,
  tilesRendering,
  uniqueRoom,
  waitJoined,
  waitMediaFlowing,
  withDiagnostics,
} from './helpers.mjs';

describe('stage: 3 join at once, one leaves, one joins late', { timeout: 180000 }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('acceptance scenario', { timeout: 170000 }, async () => {
    const room = uniqueRoom('stage');
    const names = ['P1', 'P2', 'P3'];
    const pages = [];
    for (const n of names) pages.push(await newParticipantPage(browser, n));

    await withDiagnostics(server, pages, async () => {
      // All three start within 100 ms of each other.
      const t0 = Date.now();
      const starts = [];
      await Promise.all(
        pages.map((p, i) => {
          starts.push(Date.now());
          return p.goto(stageUrl(server, room, names[i]));
        }),
      );
      const spread = Math.max(...starts) - Math.min(...starts);
      log(`3 joins started within ${spread} ms`);
      assert.ok(spread < 100, `joins should start within 100 ms (took ${spread} ms)`);

      const ids = await Promise.all(pages.map((p) => waitJoined(p, 30000)));
      log(`all 3 joined ${Date.now() - t0} ms after start; ids ${ids.join(', ')}`);
      assert.equal(new Set(ids).size, 3, 'distinct participant ids');

      // Each sees the 2 others, with video frames being decoded and audio packets arriving.
      await Promise.all(
        pages.map(async (p, i) => {
          const others = ids.filter((_, j) => j !== i);
          await p.waitForFunction((n) => window.rostrum.tiles().length === n, 2, { timeout: 20000 });
          const { before, after } = await waitMediaFlowing(p, others, 30000);
          const tiles = await remoteTiles(p);
          assert.deepEqual(tiles.map((t) => t.participantId).sort(), [...others].sort());
          assert.deepEqual(
            tiles.map((t) => t.name).sort(),
            names.filter((_, j) => j !== i).sort(),
            `${names[i]} shows the others' names`,
          );
          for (const o of others) {
            log(
              `${names[i]} ← ${names[ids.indexOf(o)]}: framesDecoded ${before[o].video.framesDecoded}→${after[o].video.framesDecoded}, ` +
                `audio packets ${before[o].audio.packetsReceived}→${after[o].audio.packetsReceived}`,
            );
          }
          const render = await tilesRendering(p, others);
          for (const r of render) {
            assert.ok(r.videoWidth > 0, `${names[i]}: tile of ${r.id} renders video (${JSON.stringify(r)})`);
            assert.equal(r.muted, false, 'remote tile video element is not muted (audio plays)');
          }
        }),
      );
      log(`media flowing both ways among 3 participants ${Date.now() - t0} ms after start`);

      // P1 leaves: the others drop P1's tile within 5 s.
      const p1Id = ids[0];
      const leaveAt = Date.now();
      await pages[0].click('#leave');
      const goneMs = await Promise.all(
        pages.slice(1).map(async (p) => {
          await p.waitForFunction(
            (id) => !document.querySelector(`.tile[data-participant-id="${id}"]`),
            p1Id,
            { timeout: 15000, polling: 25 },
          );
          return Date.now() - leaveAt;
        }),
      );
      log(`P1's tile gone at P2 after ${goneMs[0]} ms, at P3 after ${goneMs[1]} ms`);
      for (const ms of goneMs) assert.ok(ms <= 5000, `P1's tile should disappear within 5 s (took ${ms} ms)`);
      assert.equal(await pages[0].evaluate(() => window.rostrum.state), 'idle');

      // Nobody else was dropped along the way (a participant the server removes rejoins with a new id).
      await sleep(1000);
      for (const [i, p] of pages.slice(1).entries()) {
        const st = await p.evaluate(() => ({ id: window.rostrum.participantId, sessions: window.rostrum.sessions, state: window.rostrum.state }));
        assert.deepEqual(
          st,
          { id: ids[i + 1], sessions: 1, state: 'joined' },
          `${names[i + 1]} kept its seat when P1 left (a new id or session means the server dropped it)`,
        );
      }

      // P4 joins late and decodes both remaining participants within 2 s of its join completing.
      const p4 = await newParticipantPage(browser, 'P4');
      pages.push(p4);
      const p4Start = Date.now();
      await p4.goto(stageUrl(server, room, 'P4'));
      const remaining = ids.slice(1);
      const r = await p4.evaluate(
        async ({ pids, limit }) => {
          const pause = (ms) => new Promise((res) => setTimeout(res, ms));
          while (!window.rostrum || window.rostrum.state !== 'joined') {
            if (window.rostrum?.state === 'error') return { error: window.rostrum.error };
            await pause(10);
          }
          const t = window.rostrum.timings;
          for (;;) {
            const s = await window.rostrum.stats();
            const ok = pids.every((pid) => s.some((x) => x.participantId === pid && x.kind === 'video' && x.framesDecoded > 0));
            const now = performance.now();
            if (ok || now - t.joined > limit) {
              return {
                ok,
                stats: s,
                joinedToDecodeMs: Math.round(now - t.joined),
                joinAckToDecodeMs: Math.round(now - t.joinAcked),
                requestToJoinedMs: Math.round(t.joined - t.joinRequested),
                requestToDecodeMs: Math.round(now - t.joinRequested),
              };
            }
            await pause(20);
          }
        },
        { pids: remaining, limit: 15000 },
      );
      assert.ok(!r.error, `P4 could not join: ${JSON.stringify(r.error)}`);
      log(
        `P4 (late): join request→joined ${r.requestToJoinedMs} ms; joined→first frames of both ${r.joinedToDecodeMs} ms ` +
          `(join ack→decode ${r.joinAckToDecodeMs} ms, request→decode ${r.requestToDecodeMs} ms; page load→decode ${Date.now() - p4Start} ms)`,
      );
      assert.ok(r.ok, `P4 should decode video of ${remaining.join(', ')}: ${JSON.stringify(r.stats)}`);
      assert.ok(r.joinedToDecodeMs <= 2000, `P4 decodes remote video within 2 s of joining (took ${r.joinedToDecodeMs} ms)`);
      const p4Tiles = await remoteTiles(p4);
      assert.deepEqual(p4Tiles.map((t) => t.name).sort(), ['P2', 'P3']);

      // And P2, P3 see P4 with media.
      const p4Id = await p4.evaluate(() => window.rostrum.participantId);
      await Promise.all(pages.slice(1, 3).map((p) => waitMediaFlowing(p, [p4Id], 20000)));
      log('P2 and P3 decode P4');
    });
  });
});

describe('stage: room cap', { timeout: 120000 }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer(['--room-cap', '2']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the third participant of a room capped at 2 is told the room is full', { timeout: 110000 }, async () => {
    const room = uniqueRoom('full');
    const pages = [];
    for (const n of ['A', 'B', 'C']) pages.push(await newParticipantPage(browser, n));
    await withDiagnostics(server, pages, async () => {
      await Promise.all(pages.slice(0, 2).map((p, i) => p.goto(stageUrl(server, room, ['A', 'B'][i]))));
      await Promise.all(pages.slice(0, 2).map((p) => waitJoined(p)));
      const c = pages[2];
      await c.goto(stageUrl(server, room, 'C'));
      await c.waitForFunction(() => window.rostrum.state === 'error' || window.rostrum.state === 'joined', null, {
        timeout: 20000,
      });
      const st = await c.evaluate(() => ({ state: window.rostrum.state, error: window.rostrum.error }));
      assert.equal(st.state, 'error', `C should not get in: ${JSON.stringify(st)}`);
      assert.equal(st.error?.code, 'room-full');
      const alert = c.locator('#alert');
      assert.ok(await alert.isVisible(), 'room-full message is visible');
      const text = await alert.innerText();
      assert.match(text, /full/i);
      log(`C sees: "${text}"`);
      // The two inside are unaffected.
      for (const p of pages.slice(0, 2)) {
        assert.equal(await p.evaluate(() => window.rostrum.state), 'joined');
        assert.equal((await remoteTiles(p)).length, 1);
      }
    });
  });
});

describe('signaling: garbage payloads', { timeout: 120000 }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Connects a raw Socket.IO client and records the `error` events it gets. */
  async function rawClient() {
    const socket = io(server.origin, { path: '/socket.io', transports: ['websocket'], reconnection: false, timeout: 5000 });
    socket.errors = [];
    socket.on('error', (e) => socket.errors.push(e));
    await new Promise((res, rej) => {
      socket.once('connect', res);
      socket.once('connect_error', rej);
    });
    return socket;
  }

  /**
   * Sends `event` with `payload` (with an ack callback unless `noAck`) and resolves to how the server refused it:
   * { via: 'ack'|'event'|'disconnect', code }. Throws if it was accepted or nothing came back within 3 s.
   */
  async function expectRefused(socket, event, payload, { noAck = false } = {}) {
    const errorsBefore = socket.errors.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${event} ${preview(payload)}: no error ack, error event or disconnect within 3 s`));
      }, 3000);
      const poll = setInterval(() => {
        if (socket.errors.length > errorsBefore) {
          cleanup();
          resolve({ via: 'event', code: socket.errors[socket.errors.length - 1]?.code });
        }
      }, 10);
      const onDisconnect = (reason) => {
        cleanup();
        resolve({ via: 'disconnect', code: reason });
      };
      socket.once('disconnect', onDisconnect);
      function cleanup() {
        clearTimeout(timer);
        clearInterval(poll);
        socket.off('disconnect', onDisconnect);
      }
      const ack = (res) => {
        cleanup();
        if (res && res.ok === false && res.error && typeof res.error.code === 'string') resolve({ via: 'ack', code: res.error.code });
        else reject(new Error(`${event} ${preview(payload)} was accepted: ${JSON.stringify(res).slice(0, 300)}`));
      };
      if (noAck) socket.emit(event, payload);
      else socket.emit(event, payload, ack);
    });
  }

  const preview = (v) => {
    const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
    return s.length > 60 ? s.slice(0, 57) + '…' : s;
  };

  test('a socket sending garbage gets errors; a joined client in the room is unaffected', { timeout: 110000 }, async () => {
    const room = uniqueRoom('garbage');
    const pages = [await newParticipantPage(browser, 'A'), await newParticipantPage(browser, 'B')];
    await withDiagnostics(server, pages, async () => {
      await Promise.all(pages.map((p, i) => p.goto(stageUrl(server, room, ['A', 'B'][i]))));
      const [aId, bId] = await Promise.all(pages.map((p) => waitJoined(p)));
      await waitMediaFlowing(pages[0], [bId], 20000);

      let nested = { room, name: 'deep' };
      for (let i = 0; i < 2000; i++) nested = { a: nested, b: [i, String(i)] };
      const wide = {};
      for (let i = 0; i < 20000; i++) wide[`k${i}`] = { v: i, s: 'x'.repeat(8) };

      const cases = [
        ['join', 42],
        ['join', 'hello'],
        ['join', null],
        ['join', [room, 'A2']],
        ['join', nested],
        ['join', { room, name: wide }],
        ['join', { room: 'not a room!', name: 'X' }],
        ['join', { room: 'x'.repeat(65), name: 'X' }],
        ['join', { room, name: '' }],
        ['join', { room, name: '   ' }],
        ['join', { room, name: 'y'.repeat(65) }],
        ['join', { room: 7, name: 'X' }],
        ['publish', { sdp: 'v=0\r\nthis is not sdp\r\n' }],
        ['answer', { sdp: 'nope' }],
        ['mute', { kind: 'video', muted: true }],
      ];
      // Each case on a fresh connection, so that one accepted by mistake cannot mask the next.
      const results = [];
      const failures = [];
      const attempt = async (label, socket, event, payload, opts) => {
        try {
          const r = await expectRefused(socket, event, payload, opts);
          results.push(`${label}${event} ${preview(payload)} → ${r.via} ${r.code}`);
          return r;
        } catch (e) {
          failures.push(`${label}${e.message}`);
          return null;
        }
      };
      for (const [event, payload] of cases) {
        const socket = await rawClient();
        await attempt('', socket, event, payload);
        socket.disconnect();
      }
      // Without an ack callback the server must answer with an `error` event (or drop the socket).
      {
        const socket = await rawClient();
        const r = await attempt('(no ack) ', socket, 'join', 1234, { noAck: true });
        if (r && r.via === 'ack') failures.push('join 1234 without an ack callback was answered through an ack');
        socket.disconnect();
      }

      // A valid join in another room, then garbage from the joined socket.
      let socket = await rawClient();
      const other = uniqueRoom('garbage-other');
      const ok = await socket.timeout(5000).emitWithAck('join', { room: other, name: 'Raw' });
      assert.equal(ok.ok, true, `valid join accepted: ${JSON.stringify(ok)}`);
      const joinedCases = [
        ['join', { room: other, name: 'Again' }],
        ['publish', 12],
        ['publish', { sdp: 'garbage' }],
        ['publish', { sdp: 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n' }],
        ['publish', {}],
        ['answer', { sdp: 'garbage' }],
        ['answer', 'x'],
        ['mute', { kind: 'smell', muted: true }],
        ['mute', { kind: 'audio', muted: 'yes' }],
        ['mute', 'audio'],
      ];
      for (const [event, payload] of joinedCases) {
        if (!socket.connected) {
          results.push('(joined socket was disconnected; rejoining)');
          socket = await rawClient();
          await socket.timeout(5000).emitWithAck('join', { room: other, name: 'Raw' });
        }
        await attempt('(joined) ', socket, event, payload);
      }
      for (const l of results) log(l);
      for (const l of failures) log(`NOT REFUSED: ${l}`);
      socket.disconnect();

      // The browsers in the room are still connected, still see each other and still decode media.
      for (const [i, p] of pages.entries()) {
        const st = await p.evaluate(() => ({ state: window.rostrum.state, connected: window.rostrum.connected, n: window.rostrum.tiles().length }));
        assert.deepEqual(st, { state: 'joined', connected: true, n: 1 }, `page ${i} unaffected`);
      }
      await waitMediaFlowing(pages[0], [bId], 10000);
      await waitMediaFlowing(pages[1], [aId], 10000);

      // And still get room events: a raw client joining the room shows up on their stage, and goes away.
      const raw = await rawClient();
      const joinRes = await raw.timeout(5000).emitWithAck('join', { room, name: 'Raw visitor' });
      assert.equal(joinRes.ok, true, JSON.stringify(joinRes));
      await Promise.all(
        pages.map((p) => p.waitForFunction(() => window.rostrum.tiles().some((t) => t.name === 'Raw visitor'), null, { timeout: 5000 })),
      );
      raw.disconnect();
      await Promise.all(
        pages.map((p) => p.waitForFunction(() => !window.rostrum.tiles().some((t) => t.name === 'Raw visitor'), null, { timeout: 5000 })),
      );
      log('room members unaffected by garbage; they still see joins and leaves');
      assert.deepEqual(failures, [], 'every garbage payload is refused with an error ack, an error event or a disconnect');
    });
  });
});

describe('stage: reconnect', { timeout: 150000 }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('after the server restarts, participants rejoin and republish by themselves', { timeout: 140000 }, async () => {
    const room = uniqueRoom('blip');
    const pages = [await newParticipantPage(browser, 'A'), await newParticipantPage(browser, 'B')];
    await withDiagnostics(server, pages, async () => {
      await Promise.all(pages.map((p, i) => p.goto(stageUrl(server, room, ['A', 'B'][i]))));
      await Promise.all(pages.map((p) => waitJoined(p)));
      const [aId, bId] = await Promise.all(pages.map((p) => p.evaluate(() => window.rostrum.participantId)));
      await waitMediaFlowing(pages[0], [bId], 20000);

      // The server dies (a blip from the clients' point of view) and comes back on the same address.
      const http = new URL(server.origin).host;
      await server.stop('SIGKILL');
      const downAt = Date.now();
      await Promise.all(
        pages.map((p) => p.waitForFunction(() => window.rostrum.state === 'reconnecting', null, { timeout: 15000 })),
      );
      const banner = pages[0].locator('#banner');
      assert.ok(await banner.isVisible(), 'a reconnecting banner is shown');
      assert.match(await banner.innerText(), /Reconnecting/);
      server = await startServer([], { http });
      const upAt = Date.now();
      const ids = await Promise.all(pages.map((p) => waitJoined(p, 30000)));
      log(`server down ${upAt - downAt} ms; both rejoined ${Date.now() - upAt} ms after it came back`);
      assert.notEqual(ids[0], aId, 'a new participant id after rejoining a fresh server');
      await Promise.all([waitMediaFlowing(pages[0], [ids[1]], 20000), waitMediaFlowing(pages[1], [ids[0]], 20000)]);
      for (const p of pages) {
        assert.equal(await p.evaluate(() => window.rostrum.sessions), 2);
        assert.equal((await remoteTiles(p)).length, 1);
      }
      log(`media flowing again ${Date.now() - upAt} ms after the server came back`);
    });
  });

  test('joining while the server is unreachable says so', { timeout: 60000 }, async () => {
    const gone = await startServer();
    const page = await newParticipantPage(browser, 'U');
    await withDiagnostics(gone, [page], async () => {
      await page.goto(`${gone.stageUrl}?room=${uniqueRoom('down')}&name=U`);
      await gone.stop('SIGKILL');
      const t0 = Date.now();
      await page.click('#join');
      await page.waitForFunction(() => window.rostrum.state === 'error', null, { timeout: 20000 });
      const err = await page.evaluate(() => window.rostrum.error);
      assert.equal(err?.code, 'unreachable');
      const alert = page.locator('#alert');
      assert.ok(await alert.isVisible());
      assert.match(await alert.innerText(), /reach/i);
      log(`unreachable server reported after ${Date.now() - t0} ms: "${await alert.innerText()}"`);
    });
  });
});

describe('stage: mute', { timeout: 120000 }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('muting the camera shows a placeholder to the others; muting the mic shows a badge', { timeout: 110000 }, async () => {
    const room = uniqueRoom('mute');
    const pages = [await newParticipantPage(browser, 'A'), await newParticipantPage(browser, 'B')];
    await withDiagnostics(server, pages, async () => {
      await Promise.all(pages.map((p, i) => p.goto(stageUrl(server, room, ['Ada Lovelace', 'B'][i]))));
      const [aId] = await Promise.all(pages.map((p) => waitJoined(p)));
      const [a, b] = pages;
      await waitMediaFlowing(b, [aId], 20000);
      const tileSel = `.tile[data-participant-id="${aId}"]`;
      assert.equal(await b.locator(`${tileSel}.video-off`).count(), 0, 'video shown while unmuted');

      const t0 = Date.now();
      await a.click('#toggle-cam');
      assert.equal(await a.getAttribute('#toggle-cam', 'aria-pressed'), 'true');
      await b.waitForSelector(`${tileSel}.video-off .tile-placeholder`, { state: 'visible', timeout: 5000 });
      assert.equal((await b.locator(`${tileSel} .avatar`).innerText()).trim(), 'AL');
      log(`camera mute seen by B after ${Date.now() - t0} ms`);
      assert.equal(await a.evaluate(() => window.rostrum.sendPc.getSenders().find((s) => s.track?.kind === 'video').track.enabled), false);

      await a.click('#toggle-mic');
      await b.waitForSelector(`${tileSel} .tile-badge`, { state: 'visible', timeout: 5000 });
      assert.match(await b.locator(`${tileSel} .tile-badge`).innerText(), /mic off/i);

      const t1 = Date.now();
      await a.click('#toggle-cam');
      await a.click('#toggle-mic');
      await b.waitForFunction((sel) => !document.querySelector(`${sel}.video-off`), tileSel, { timeout: 5000 });
      await b.waitForSelector(`${tileSel} .tile-badge`, { state: 'hidden', timeout: 5000 });
      await waitMediaFlowing(b, [aId], 10000);
      log(`unmute seen by B and media flowing again after ${Date.now() - t1} ms`);
    });
  });
});
