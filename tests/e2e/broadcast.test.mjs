// The broadcast end to end: fake-camera Chromium participants on /stream → the node's mixer →
// LL-HLS → a Chromium viewer on /watch. Checks the programme with ffprobe, the layout re-flow
// without a discontinuity or a viewer stall, and recovery from `kill -9` of the mixer.
//   node --test tests/e2e/broadcast.test.mjs   (needs target/debug/rostrum and rostrum-mixer, web/dist)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  dumpConsole,
  launchBrowser,
  log,
  newParticipantPage,
  sleep,
  stageUrl,
  startServer,
  uniqueRoom,
  waitJoined,
} from './helpers.mjs';

async function status(server, room) {
  const r = await fetch(`${server.origin}/api/broadcasts/${room}`);
  return r.json();
}

async function text(url) {
  const r = await fetch(url);
  assert.equal(r.status, 200, `${url} → ${r.status}`);
  return r.text();
}

async function waitFor(what, fn, timeoutMs, every = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** `[{ uri, duration }]` of the complete segments of a media playlist. */
function segments(playlist) {
  const out = [];
  let dur = null;
  for (const line of playlist.split('\n')) {
    if (line.startsWith('#EXTINF:')) dur = parseFloat(line.slice(8));
    else if (line && !line.startsWith('#') && dur !== null) {
      out.push({ uri: line.trim(), duration: dur });
      dur = null;
    }
  }
  return out;
}

function ffprobe(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file]);
  return JSON.parse(out.toString());
}

/**
 * Follows a live playlist with blocking reloads and records when each new part appears, so a
 * viewer stall can be told apart from a gap in the programme. `stop()` returns the arrivals.
 */
function followParts(url) {
  const arrivals = [];
  let running = true;
  (async () => {
    let msn = null;
    let part = null;
    while (running) {
      const q = msn === null ? '' : `?_HLS_msn=${msn}&_HLS_part=${part}`;
      try {
        const r = await fetch(url + q);
        const text = await r.text();
        const seq = parseInt(text.match(/#EXT-X-MEDIA-SEQUENCE:(\d+)/)?.[1] ?? '0', 10);
        const tail = text.split('#EXTINF').length - 1;
        const parts = (text.split(/#EXTINF[^\n]*\n[^\n]*\n/).pop().match(/#EXT-X-PART:/g) ?? []).length;
        const edge = [seq + tail, parts];
        arrivals.push({ at: Date.now(), msn: edge[0], part: edge[1] });
        [msn, part] = edge;
      } catch {
        await sleep(100);
      }
    }
  })();
  return {
    stop() {
      running = false;
      return arrivals;
    },
    /** Waits over `min` ms between two new parts: `[{ at (ms after from), gap }]`. */
    gaps(from, min) {
      const out = [];
      for (let i = 1; i < arrivals.length; i++) {
        const gap = arrivals[i].at - arrivals[i - 1].at;
        if (gap > min && arrivals[i].at >= from) out.push({ at: arrivals[i].at - from, gap });
      }
      return out;
    },
    /** The longest wait between two new parts within [from, to] (ms since epoch). */
    maxGap(from, to) {
      const xs = arrivals.filter((a) => a.at >= from && a.at <= to).map((a) => a.at);
      let gap = 0;
      for (let i = 1; i < xs.length; i++) gap = Math.max(gap, xs[i] - xs[i - 1]);
      return gap;
    },
  };
}

/** A viewer's playback sample. */
async function watchSample(viewer) {
  return viewer.evaluate(() => {
    const w = window.rostrumWatch;
    return w ? { state: w.state, t: w.currentTime(), stalls: w.stalls, latency: w.latency(), discontinuities: w.discontinuities, errors: w.errors.slice(-3) } : null;
  });
}

describe('broadcast: stage → mixer → LL-HLS → /watch', { timeout: 300000 }, () => {
  let server;
  let browser;
  const pages = [];
  before(async () => {
    server = await startServer([], { broadcast: true });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('two on stage, a viewer, a join and a leave, a mixer crash, the end', { timeout: 290000 }, async () => {
    const room = uniqueRoom('bcast');
    const viewer = await newParticipantPage(browser, 'viewer');
    pages.push(viewer);
    const work = mkdtempSync(join(tmpdir(), 'rostrum-bcast-'));
    try {
      // A viewer who comes early waits.
      await viewer.goto(`${server.watchUrl}?room=${room}`);
      await viewer.waitForFunction(() => window.rostrumWatch?.state === 'waiting', null, { timeout: 15000 });

      // Two participants go on stage.
      for (const n of ['Ada', 'Bo']) {
        const p = await newParticipantPage(browser, n);
        pages.push(p);
        await p.goto(stageUrl(server, room, n));
        await waitJoined(p);
      }
      const live = await waitFor('a live broadcast with 2 live tiles', async () => {
        const s = await status(server, room);
        const seats = Object.values(s.seats ?? {});
        return s.state === 'live' && s.tiles === 2 && seats.length === 2 && seats.every((x) => x === 'live') ? s : null;
      }, 30000);
      log(`broadcast ${live.id} live with tiles`, live.seats);
      const media = `${server.origin}/hls/${room}/${live.id}`;

      // The programme: H.264 1280x720 + AAC, segments within ±10 % of the 2 s target.
      const playlist = await waitFor('3 complete segments', async () => {
        const p = await text(`${media}/index.m3u8`);
        return segments(p).length >= 3 ? p : null;
      }, 30000);
      const init = playlist.match(/#EXT-X-MAP:URI="([^"]+)"/)[1];
      const segs = segments(playlist);
      const initBytes = Buffer.from(await (await fetch(`${media}/${init}`)).arrayBuffer());
      const segBytes = Buffer.from(await (await fetch(`${media}/${segs[1].uri}`)).arrayBuffer());
      const file = join(work, 'probe.mp4');
      writeFileSync(file, Buffer.concat([initBytes, segBytes]));
      const probe = ffprobe(file);
      const v = probe.streams.find((s) => s.codec_type === 'video');
      const a = probe.streams.find((s) => s.codec_type === 'audio');
      assert.equal(v?.codec_name, 'h264', JSON.stringify(probe.streams));
      assert.equal(`${v.width}x${v.height}`, '1280x720');
      assert.equal(a?.codec_name, 'aac');
      for (const s of segs.slice(1)) {
        assert.ok(Math.abs(s.duration - 2) <= 0.2, `segment ${s.uri} lasts ${s.duration} s:\n${playlist}`);
      }
      const parts = [...playlist.matchAll(/#EXT-X-PART:DURATION=([\d.]+)/g)].map((m) => parseFloat(m[1]));
      const partTarget = parseFloat(playlist.match(/PART-TARGET=([\d.]+)/)[1]);
      assert.ok(parts.length > 0 && parts.every((d) => d <= partTarget + 1e-6), `parts ${parts} vs target ${partTarget}`);

      // The waiting viewer starts by itself and plays.
      await viewer.waitForFunction(() => window.rostrumWatch?.state === 'live' && window.rostrumWatch.currentTime() > 0.5, null, { timeout: 30000 });
      const s0 = await watchSample(viewer);
      await sleep(6000);
      const s1 = await watchSample(viewer);
      log('viewer', s0, '→', s1);
      assert.ok(s1.t - s0.t >= 5, `viewer advanced only ${s1.t - s0.t} s in 6 s`);

      // A third joins, then the first leaves: the grid re-flows in the running encoder.
      const follower = followParts(`${media}/index.m3u8`);
      const tReflow = Date.now();
      const third = await newParticipantPage(browser, 'Cy');
      pages.push(third);
      const tJoin = Date.now();
      await third.goto(stageUrl(server, room, 'Cy'));
      await waitJoined(third);
      await waitFor('3 tiles', async () => (await status(server, room)).tiles === 3, 10000, 100);
      const reflowJoin = Date.now() - tJoin;
      await pages[1].close();
      const tLeave = Date.now();
      await waitFor('2 tiles', async () => (await status(server, room)).tiles === 2, 10000, 100);
      const reflowLeave = Date.now() - tLeave;
      log(`re-flow: join → 3 tiles in ${reflowJoin} ms (page load and join included), leave → 2 tiles in ${reflowLeave} ms`);
      assert.ok(reflowLeave <= 6000, `leave re-flowed after ${reflowLeave} ms`);
      await sleep(4000);
      const s2 = await watchSample(viewer);
      follower.stop();
      const partGap = follower.maxGap(tReflow, Date.now());
      log(`longest wait between two new parts across the re-flow: ${partGap} ms; viewer`, s1, '→', s2);
      log(`join at +${tJoin - tReflow} ms, leave at +${tLeave - tReflow} ms; part gaps over 700 ms:`, follower.gaps(tReflow, 700), `load ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`);
      assert.ok(partGap < 1500, `the programme paused ${partGap} ms across the re-flow (a stall for the supervisor)`);
      assert.ok(s2.t - s1.t >= 4, `viewer stalled across the re-flow: ${JSON.stringify([s1, s2])}`);
      assert.equal(s2.stalls, s1.stalls, `viewer stalled across the re-flow: ${JSON.stringify([s1, s2])}`);
      const afterReflow = await text(`${media}/index.m3u8`);
      assert.ok(!/^#EXT-X-DISCONTINUITY$/m.test(afterReflow), `re-flow caused a discontinuity:\n${afterReflow}`);
      // Bo turns the camera off: a placeholder tile within 2 s; on again: video again.
      const bo = pages[2];
      const boId = await bo.evaluate(() => window.rostrum.participantId);
      const tOff = Date.now();
      await bo.click('#toggle-cam');
      await waitFor('a placeholder for the camera that is off', async () => (await status(server, room)).seats?.[boId] === 'off', 2000, 50);
      const offMs = Date.now() - tOff;
      await bo.click('#toggle-cam');
      await waitFor('video back', async () => (await status(server, room)).seats?.[boId] === 'live', 5000, 50);
      log(`camera off → placeholder in ${offMs} ms; on → video in ${Date.now() - tOff - offMs} ms`);

      const st = await status(server, room);
      assert.equal(st.restarts, 0);

      // kill -9 of the mixer: a new one within seconds, one discontinuity, the viewer goes on.
      process.kill(st.mixerPid, 'SIGKILL');
      const tKill = Date.now();
      await waitFor('a restarted mixer', async () => {
        const s = await status(server, room);
        return s.restarts === 1 && s.mixerPid && s.mixerPid !== st.mixerPid;
      }, 10000, 100);
      let lastSeen = '';
      await waitFor('new parts after the restart', async () => {
        const p = (lastSeen = await text(`${media}/index.m3u8`));
        // New parts after the discontinuity tag: the new mixer's programme is in the playlist.
        const after = p.split(/^#EXT-X-DISCONTINUITY$/m)[1];
        return after !== undefined && /#EXT-X-PART:/.test(after);
      }, 10000, 100).catch((e) => {
        throw new Error(`${e.message}\n${lastSeen}`);
      });
      const recovered = Date.now() - tKill;
      const s3 = await watchSample(viewer);
      await sleep(8000);
      const s4 = await watchSample(viewer);
      log(`mixer killed: new parts ${recovered} ms later; viewer`, s3, '→', s4);
      assert.ok(recovered <= 3000 + 1000, `new parts only ${recovered} ms after the kill`);
      assert.ok(s4.t - s3.t >= 4, `viewer did not recover: ${JSON.stringify([s3, s4])}`);
      const afterKill = await text(`${media}/index.m3u8`);
      assert.equal((afterKill.match(/#EXT-X-DISCONTINUITY\n/g) ?? []).length, 1, afterKill);

      // The host (Bo: on stage the longest now that Ada left) ends the stage: everyone is off it
      // and the broadcast ends at once (no idle wait), with a recording.
      const cy = pages[3];
      assert.equal(await cy.evaluate(() => window.rostrum.isHost()), false);
      assert.equal((await cy.evaluate(() => window.rostrum.endStage()))?.code, 'not-host');
      await bo.waitForFunction(() => window.rostrum.isHost() && !document.getElementById('end-stage').hidden, null, { timeout: 5000 });
      const tEnd = Date.now();
      await bo.click('#end-stage');
      const ended = await waitFor('the end', async () => {
        const s = await status(server, room);
        return s.state === 'ended' ? s : null;
      }, 15000, 100);
      log(`host ended the stage: broadcast ended ${Date.now() - tEnd} ms later`);
      for (const p of [bo, cy]) await p.waitForFunction(() => window.rostrum.state === 'idle', null, { timeout: 10000 });
      const vod = await text(`${server.origin}${ended.recording}`);
      assert.ok(vod.includes('#EXT-X-ENDLIST') && /^#EXT-X-DISCONTINUITY$/m.test(vod), vod);
      assert.ok((await text(`${media}/index.m3u8`)).includes('#EXT-X-ENDLIST'));
      await viewer.waitForFunction(() => window.rostrumWatch?.state === 'ended', null, { timeout: 40000 });
    } catch (e) {
      dumpConsole(pages);
      console.log('--- server output (tail) ---\n' + server.output().split('\n').slice(-120).join('\n'));
      throw e;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
