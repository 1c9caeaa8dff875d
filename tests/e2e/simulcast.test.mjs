// End-to-end test of simulcast on the /stream page against a real `rostrum serve` and headless Chromium:
// the tile size a viewer reports (`viewport`) picks the layer it gets, and layers nobody needs stop at the
// publisher (`layers`, dynacast).
//   node --test tests/e2e/simulcast.test.mjs   (after `npm run build --prefix web`)
// Env: ROSTRUM_BIN (default target/debug/rostrum), CHROMIUM_BIN (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  launchBrowser,
  log,
  newParticipantPage,
  sleep,
  stageUrl,
  startServer,
  uniqueRoom,
  waitJoined,
  waitMediaFlowing,
  withDiagnostics,
} from './helpers.mjs';

/**
 * Polls `read()` every `pollMs` until `ok(value)`; resolves to { value, ms } (ms since `since`), or throws
 * `what` with the last value once `timeoutMs` after `since` has passed.
 */
async function waitFor(what, read, ok, { since = Date.now(), timeoutMs, pollMs = 100 }) {
  for (;;) {
    const value = await read();
    const ms = Date.now() - since;
    if (ok(value)) return { value, ms };
    if (ms > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(value)})`);
    await sleep(pollMs);
  }
}

/**
 * Sizes the tile of participant `id` on `page` so that its video is `size` CSS px (no border), pinned to the top
 * left so all of it is on screen; null hides it. Resolves to the page's devicePixelRatio.
 */
function setTile(page, id, size) {
  return page.evaluate(
    ({ id, size }) => {
      const el = document.querySelector(`.tile[data-participant-id="${id}"]`);
      if (!el) throw new Error(`no tile of ${id}`);
      const shown = { display: '', position: 'fixed', left: '0', top: '0', zIndex: '10', border: '0' };
      Object.assign(el.style, size ? { ...shown, width: `${size[0]}px`, height: `${size[1]}px` } : { display: 'none' });
      return window.devicePixelRatio || 1;
    },
    { id, size },
  );
}

/** The last `viewport` report the page sent for `producerId`, or null. */
function lastReport(page, producerId) {
  return page.evaluate((pid) => window.rostrum.viewports().find((v) => v.producerId === pid) ?? null, producerId);
}

/** Size of the last decoded frame of `id`'s video on `page`. */
async function inboundVideo(page, id) {
  const stats = await page.evaluate(() => window.rostrum.stats());
  const s = stats.find((x) => x.participantId === id && x.kind === 'video');
  return s ? { frameWidth: s.frameWidth, frameHeight: s.frameHeight, framesDecoded: s.framesDecoded } : null;
}

/** The publisher's outbound-rtp video stats per rid, with the layers it encodes now. */
function outbound(page) {
  return page.evaluate(async () => {
    const pc = window.rostrum.sendPc;
    const byRid = {};
    if (pc) {
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
        byRid[s.rid ?? '-'] = {
          bytesSent: s.bytesSent ?? 0,
          frameWidth: s.frameWidth ?? 0,
          frameHeight: s.frameHeight ?? 0,
          limitation: s.qualityLimitationReason ?? '',
        };
      });
    }
    return { byRid, active: window.rostrum.layersActive() };
  });
}

describe('stage: simulcast and dynacast', { timeout: 180000 }, () => {
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

  test('the viewer’s tile size picks the layer; a hidden tile stops the top layer at the publisher', { timeout: 170000 }, async () => {
    const room = uniqueRoom('simulcast');
    const ada = await newParticipantPage(browser, 'Ada');
    const bo = await newParticipantPage(browser, 'Bo');
    // Room for a whole 1280×720 tile on Bo's screen.
    await bo.setViewportSize({ width: 1400, height: 900 });
    await withDiagnostics(server, [ada, bo], async () => {
      await Promise.all([ada.goto(stageUrl(server, room, 'Ada', '&simulcast=1')), bo.goto(stageUrl(server, room, 'Bo', '&simulcast=1'))]);
      const [adaId] = await Promise.all([waitJoined(ada), waitJoined(bo)]);
      assert.equal(await ada.evaluate(() => window.rostrum.simulcast()), true, 'the server keeps the simulcast layers of Ada’s camera');
      await waitMediaFlowing(bo, [adaId], 20000);
      const producerId = await bo.evaluate(
        (id) => window.rostrum.trackMap().find((t) => t.participantId === id && t.kind === 'video')?.producerId,
        adaId,
      );
      assert.ok(producerId, 'Bo receives a video track of Ada');
      const rids = await ada.evaluate(() =>
        window.rostrum.sendPc.getSenders().find((s) => s.track?.kind === 'video').getParameters().encodings.map((e) => e.rid),
      );
      assert.deepEqual(rids, ['l', 'm', 'h'], 'Ada’s camera goes out as three layers');
      log(`Ada encodes ${JSON.stringify((await outbound(ada)).active)}; Bo has sent ${await bo.evaluate(() => window.rostrum.viewportReports())} viewport reports`);

      /** Resizes Bo's tile of Ada and waits for Bo to report it (the page's part, before the server's). */
      const resize = async (size) => {
        const t0 = Date.now();
        const dpr = await setTile(bo, adaId, size);
        const want = size ? { width: Math.round(size[0] * dpr), height: Math.round(size[1] * dpr), visible: true } : { visible: false };
        const { value, ms } = await waitFor(
          `Bo reports ${JSON.stringify(want)}`,
          () => lastReport(bo, producerId),
          (r) => !!r && Object.entries(want).every(([k, v]) => r[k] === v),
          { since: t0, timeoutMs: 1000, pollMs: 25 },
        );
        log(`Bo's tile of Ada ${size ? size.join('×') : 'hidden'}: reported ${JSON.stringify(value)} after ${ms} ms`);
        return t0;
      };
      /** What Bo decodes of Ada, with what Ada sends (for the failure message). */
      const bosView = async () => ({ frameWidth: 0, ...(await inboundVideo(bo, adaId)), ada: await outbound(ada) });

      // Small tile: the 'l' layer (about 320×180).
      let t0 = await resize([320, 180]);
      const small = await waitFor('Bo decodes Ada at ≤ 400 px wide', bosView, (v) => v.frameWidth > 0 && v.frameWidth <= 400, {
        since: t0,
        timeoutMs: 3000,
      });
      log(`320×180 tile: Bo decodes ${small.value.frameWidth}×${small.value.frameHeight} after ${small.ms} ms; Ada encodes ${JSON.stringify(small.value.ada.active)}`);

      // Large tile: the 'h' layer (1280×720) within 2 s.
      t0 = await resize([1280, 720]);
      const large = await waitFor('Bo decodes Ada at ≥ 1000 px wide', bosView, (v) => v.frameWidth >= 1000, { since: t0, timeoutMs: 2000 });
      log(`1280×720 tile: Bo decodes ${large.value.frameWidth}×${large.value.frameHeight} after ${large.ms} ms`);
      assert.ok((await outbound(ada)).active.includes('h'), 'Ada encodes the h layer while Bo shows a large tile');

      // Hidden tile: nobody needs 'h', so Ada stops encoding it (bytesSent of rid h stops growing) within ~3 s.
      t0 = await resize(null);
      const dropped = await waitFor('Ada turns the h layer off', () => ada.evaluate(() => window.rostrum.layersActive()), (a) => !a.includes('h'), {
        since: t0,
        timeoutMs: 3000,
      });
      log(`tile hidden: Ada encodes ${JSON.stringify(dropped.value)} after ${dropped.ms} ms`);
      assert.ok(dropped.value.length > 0, 'a publisher never turns every layer off');
      // Stopped = no growth for 750 ms; it stopped when that flat run began.
      const samples = [];
      const stopped = await waitFor(
        'rid h bytesSent stops growing',
        async () => {
          const o = await outbound(ada);
          const bytes = o.byRid.h?.bytesSent ?? 0;
          samples.push({ at: Date.now(), bytes });
          let i = samples.length - 1;
          while (i > 0 && samples[i - 1].bytes === bytes) i--;
          return { bytes, since: samples[i].at, flatMs: samples[samples.length - 1].at - samples[i].at, active: o.active };
        },
        (v) => v.flatMs >= 750,
        { since: t0, timeoutMs: 3000 + 1500, pollMs: 125 },
      );
      const stopMs = stopped.value.since - t0;
      log(`tile hidden: Ada's rid h stopped at ${stopped.value.bytes} bytes by ${stopMs} ms after hiding (flat for ${stopped.value.flatMs} ms)`);
      assert.ok(stopMs <= 3000, `rid h should stop within ~3 s of hiding the only tile that needs it (took ${stopMs} ms)`);

      // Shown again at 1280×720: 'h' comes back.
      const bytesOff = (await outbound(ada)).byRid.h?.bytesSent ?? 0;
      t0 = await resize([1280, 720]);
      const back = await waitFor(
        'Ada encodes the h layer again',
        () => outbound(ada),
        (o) => o.active.includes('h') && (o.byRid.h?.bytesSent ?? 0) > bytesOff,
        { since: t0, timeoutMs: 3000 },
      );
      log(`tile shown at 1280×720: Ada encodes ${JSON.stringify(back.value.active)}, rid h growing again after ${back.ms} ms`);
      const again = await waitFor('Bo decodes Ada at ≥ 1000 px wide again', bosView, (v) => v.frameWidth >= 1000, { since: t0, timeoutMs: 4000 });
      log(`tile shown at 1280×720: Bo decodes ${again.value.frameWidth}×${again.value.frameHeight} after ${again.ms} ms`);
      log(`Bo sent ${await bo.evaluate(() => window.rostrum.viewportReports())} viewport reports in all`);
    });
  });
});
