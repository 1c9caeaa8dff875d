// The /watch page: the audience side of a room. Plays the room's LL-HLS broadcast with hls.js (or the browser's own
// HLS where there is no MSE, i.e. Safari on older iOS), driven by `GET /api/broadcasts/{room}`:
//   waiting → poll every 2 s; live → play (muted autoplay, Unmute button, LIVE badge with the latency, Go live);
//   ended → "The broadcast has ended", with the recording (VOD) as a replay when there is one; error → invalid room.
// Viewers need no camera and no WebRTC: nothing of the stage code is imported here.

import Hls, { ErrorTypes, Events, type ErrorData, type HlsConfig } from 'hls.js';
import { ROOM_RE } from './protocol';
import { $, $input, $video, queryParams } from './ui';

// ---- types and constants -----------------------------------------------------------------------------------
type WatchState = 'waiting' | 'live' | 'ended' | 'error';
type Mode = 'live' | 'replay';

interface BroadcastStatus {
  room: string;
  state: 'waiting' | 'live' | 'ended';
  master: string;
  recording: string | null;
}

const POLL_WAITING_MS = 2000;
const POLL_LIVE_MS = 5000;
const POLL_ENDED_MS = 5000;
const POLL_RETRY_MS = 2000;
/** Behind the target latency by more than this: the viewer is "behind live" (Go live button). */
const BEHIND_SLACK_S = 2.5;
/** Behind the target by more than this (for 2 ticks) without having paused or seeked back: jump to live by
 * ourselves. hls.js only speeds up within one target duration of its target, so this covers the rest. */
const AUTO_CATCHUP_SLACK_S = 3.5;
/** A live stall longer than this: seek to the live sync position (hls.js 1.7 can loop on the last complete
 * segment when the buffer ends a microsecond before it and no part of the next one is listed yet). */
const STALL_RESCUE_MS = 2000;
/** The playhead has not moved for this long while it should play: rebuild the player. */
const WATCHDOG_MS = 12000;
const MAX_BACKOFF_MS = 10000;

// ---- elements ----------------------------------------------------------------------------------------------
const statusEl = $('status');
const bannerEl = $('banner');
const bannerText = $('banner-text');
const bannerAction = $('banner-action') as HTMLButtonElement;
const playerEl = $('player');
const video = $video('video');
const playerTop = $('player-top');
const liveBadge = $('live-badge');
const latencyEl = $('latency');
const latencyValue = $('latency-value');
const goLiveBtn = $('go-live') as HTMLButtonElement;
const unmuteBtn = $('unmute') as HTMLButtonElement;
const playBtn = $('play') as HTMLButtonElement;
const screenEl = $('screen');
const screenTitle = $('screen-title');
const screenText = $('screen-text');
const replayBtn = $('replay') as HTMLButtonElement;
const roomForm = $('room-form') as HTMLFormElement;
const roomInput = $input('room-input');

// ---- page state --------------------------------------------------------------------------------------------
const params = queryParams();
const room = (params.get('room') ?? '').trim();
const debug = params.get('debug') === '1';
/** `?latency=1.2` overrides the target latency (seconds); by default the playlist's PART-HOLD-BACK. */
const latencyOverride = Number(params.get('latency')) > 0 ? Number(params.get('latency')) : undefined;

let state: WatchState = 'waiting';
let mode: Mode | null = null;
let status: BroadcastStatus | null = null;
let pollTimer: number | undefined;
/** Set when the live player finished; a new broadcast starts only after the API said it is no longer live. */
let liveFinished = false;
let sawNotLiveSinceFinish = true;
let endGraceTimer: number | undefined;
let hasStatus = false;

// player
let hls: Hls | null = null;
let engine: 'hls.js' | 'native' | null = null;
let sourceUrl: string | null = null;
let started = false; // playback has started (first frame) for the current source
let userBehind = false; // the viewer paused or seeked back
let lastTime = 0;
let lastProgressAt = 0;
let retryTimer: number | undefined;
let backoffMs = 500;
let networkFailures = 0;
let lastMediaRecovery = -Infinity;
let lastCodecSwap = -Infinity;
let lastLatency: number | null = null;
let ownSeek = false;

// test hook counters
let stalls = 0;
let stallStartedAt: number | null = null;
let stallMs = 0;
let discontinuities = 0;
let lastCc: number | null = null;
let recoveries = 0;
let rescues = 0;
let farBehindTicks = 0;
let restarts = 0;
const errors: string[] = [];
const warnings: string[] = [];
const timings: Record<string, number> = {};

function log(...args: unknown[]): void {
  if (debug) console.log('[watch]', ...args);
}

function pushCapped(list: string[], s: string): void {
  list.push(s);
  if (list.length > 200) list.splice(0, list.length - 200);
}

function mark(name: string): void {
  timings[name] = Math.round(performance.now());
}

// ---- status API --------------------------------------------------------------------------------------------
function schedulePoll(ms: number): void {
  window.clearTimeout(pollTimer);
  pollTimer = window.setTimeout(() => void poll(), ms);
}

async function fetchStatus(): Promise<BroadcastStatus | 'invalid' | null> {
  try {
    const res = await fetch(`/api/broadcasts/${encodeURIComponent(room)}`, { cache: 'no-store' });
    if (res.status === 400) return 'invalid';
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as BroadcastStatus;
    if (!body || !['waiting', 'live', 'ended'].includes(body.state)) throw new Error('unexpected response');
    return body;
  } catch (e) {
    log('status failed', e);
    return null;
  }
}

async function poll(): Promise<void> {
  window.clearTimeout(pollTimer);
  if (state === 'error') return;
  const s = await fetchStatus();
  if (s === 'invalid') {
    showError('invalid');
    return;
  }
  if (s === null) {
    if (state === 'waiting' && !hasStatus) setStatus('waiting', 'Cannot reach the server, retrying…');
    schedulePoll(POLL_RETRY_MS);
    return;
  }
  hasStatus = true;
  onStatus(s);
}

function onStatus(s: BroadcastStatus): void {
  const prev = status;
  status = s;
  if (s.state !== 'live') sawNotLiveSinceFinish = true;
  log('status', s.state, s);

  switch (s.state) {
    case 'waiting':
      if (state === 'live' && mode === 'live') stopPlayer(); // the broadcast is gone (server restarted)
      if (mode !== 'replay') showWaiting();
      schedulePoll(POLL_WAITING_MS);
      break;
    case 'live':
      if (mode === 'replay') {
        showBanner('The broadcast is live again.', 'Watch live');
      } else if (!(state === 'live' && mode === 'live') && (!liveFinished || sawNotLiveSinceFinish)) {
        startLive(s.master);
      } else if (state === 'live' && prev?.master && prev.master !== s.master) {
        startLive(s.master); // a new broadcast with another playlist
      }
      schedulePoll(state === 'live' ? POLL_LIVE_MS : POLL_ENDED_MS);
      break;
    case 'ended':
      if (state === 'live' && mode === 'live') {
        endLiveSoon();
      } else if (state !== 'ended') {
        showEnded();
      } else if (mode !== 'replay') {
        showEnded(); // refresh the replay button (the recording may have appeared)
      }
      if (mode === 'replay') hideBanner();
      schedulePoll(POLL_ENDED_MS);
      break;
  }
}

// ---- screens -----------------------------------------------------------------------------------------------
function setStatus(kind: string, text: string): void {
  statusEl.dataset.state = kind;
  statusEl.textContent = text;
}

function showScreen(kind: string, title: string, text: string): void {
  playerEl.dataset.view = 'screen';
  screenEl.dataset.kind = kind;
  screenEl.hidden = false;
  screenTitle.textContent = title;
  screenText.textContent = text;
  replayBtn.hidden = true;
  roomForm.hidden = true;
  playerTop.hidden = true;
  playBtn.hidden = true;
  video.controls = false;
}

function showWaiting(): void {
  state = 'waiting';
  mode = null;
  showScreen('waiting', "The broadcast hasn't started yet", 'This page starts playing by itself as soon as it does.');
  setStatus('waiting', 'Waiting for the broadcast');
}

function showStarting(): void {
  showScreen('starting', 'Starting the broadcast…', 'Loading the live picture.');
}

function showEnded(): void {
  state = 'ended';
  mode = null;
  const rec = status?.recording ?? null;
  showScreen(
    'ended',
    'The broadcast has ended',
    rec ? 'Thanks for watching. You can watch it again from the start.' : 'Thanks for watching.',
  );
  replayBtn.hidden = !rec;
  setStatus('ended', 'Broadcast ended');
}

function showError(kind: 'invalid' | 'missing' | 'unsupported'): void {
  state = 'error';
  mode = null;
  window.clearTimeout(pollTimer);
  stopPlayer();
  if (kind === 'unsupported') {
    showScreen('error', "This browser can't play the broadcast", 'Try a current version of Chrome, Edge, Firefox or Safari.');
    setStatus('error', 'Playback not supported');
    return;
  }
  if (kind === 'missing') {
    showScreen('error', 'Which room?', 'Enter the name of the room you want to watch.');
    setStatus('idle', 'No room');
  } else {
    showScreen('error', 'This room name is not valid', 'A room name is 1–64 letters, digits, “-” or “_”. Check the link you were given.');
    setStatus('error', 'Invalid room');
  }
  $('watch-room-title').textContent = 'Watch a broadcast';
  $('watch-text').textContent = 'Open the link you were given, or go to the stage to join the people on it.';
  roomForm.hidden = false;
  roomInput.value = kind === 'invalid' ? room : '';
  roomInput.setAttribute('aria-invalid', kind === 'invalid' ? 'true' : 'false');
}

function showBanner(text: string, action?: string): void {
  bannerText.textContent = text;
  bannerAction.hidden = !action;
  if (action) bannerAction.textContent = action;
  bannerEl.hidden = false;
}

function hideBanner(): void {
  bannerEl.hidden = true;
}

function showVideo(): void {
  playerEl.dataset.view = 'video';
  screenEl.hidden = true;
  playerTop.hidden = false;
  video.controls = true;
}

// ---- live and replay ---------------------------------------------------------------------------------------
function startLive(master: string): void {
  state = 'live';
  mode = 'live';
  liveFinished = false;
  sawNotLiveSinceFinish = false;
  hideBanner();
  mark('liveAt');
  setStatus('connecting', 'Starting…');
  showStarting();
  startPlayer(master);
}

/** The API says the broadcast ended: let the player drain to #EXT-X-ENDLIST, but not forever. */
function endLiveSoon(): void {
  if (endGraceTimer !== undefined) return;
  const grace = Math.min(20, Math.max(6, (lastLatency ?? 2) + 6)) * 1000;
  log('broadcast ended, finishing within', grace, 'ms');
  const check = () => {
    endGraceTimer = undefined;
    if (state !== 'live' || mode !== 'live') return;
    if (userBehind && !video.paused && !video.ended) {
      endGraceTimer = window.setTimeout(check, 5000); // still watching the past: let it play out
      return;
    }
    finishLive();
  };
  endGraceTimer = window.setTimeout(check, grace);
}

function finishLive(): void {
  log('live finished');
  window.clearTimeout(endGraceTimer);
  endGraceTimer = undefined;
  liveFinished = true;
  sawNotLiveSinceFinish = status?.state !== 'live';
  stopPlayer();
  mark('endedAt');
  showEnded();
  schedulePoll(status?.state === 'ended' ? POLL_ENDED_MS : 500); // learn about the recording soon
}

function startReplay(): void {
  const rec = status?.recording;
  if (!rec) return;
  mode = 'replay';
  state = 'ended';
  video.muted = false; // a click: sound is allowed
  showStarting();
  screenTitle.textContent = 'Loading the replay…';
  screenText.textContent = '';
  setStatus('replay', 'Replay');
  startPlayer(rec);
}

function goLive(): void {
  userBehind = false;
  if (mode !== 'live') return;
  const target = liveEdgeTarget();
  if (target !== null) seekTo(target);
  void playVideo();
  updateLiveUi();
}

function seekTo(t: number): void {
  ownSeek = true;
  video.currentTime = t;
}

function liveEdgeTarget(): number | null {
  if (hls) return hls.liveSyncPosition;
  if (video.seekable.length) return Math.max(0, video.seekable.end(video.seekable.length - 1) - (targetLatency() ?? 3));
  return null;
}

// ---- the player --------------------------------------------------------------------------------------------
function liveConfig(): Partial<HlsConfig> {
  return {
    lowLatencyMode: true,
    // Target latency: PART-HOLD-BACK of the playlist (3 parts: 1.5 s for the default 0.5 s parts, 1.0 s for 1/3 s), or ?latency=. Setting
    // liveSyncDuration(Count) here would override PART-HOLD-BACK, so it is only set for an explicit override.
    ...(latencyOverride !== undefined ? { liveSyncDuration: latencyOverride } : {}),
    // hls.js's own catch-up needs > 1 s buffered, which a 1 s target never has: trimLatency() does it instead.
    maxLiveSyncPlaybackRate: 1,
    // After a stall, add this much to the target (at most one target duration) so as not to stall again.
    liveSyncOnStallIncrease: 0.5,
    // Keep what a viewer can seek back to, but not the whole broadcast.
    backBufferLength: 30,
    maxBufferLength: 8,
    // Seeking back within the playlist window is allowed ("behind live"): no forced jump to the edge.
    liveDurationInfinity: false,
    debug: debug,
  };
}

function vodConfig(): Partial<HlsConfig> {
  return { lowLatencyMode: false, backBufferLength: 60, debug: debug };
}

function resetPlaybackCounters(): void {
  started = false;
  userBehind = false;
  lastTime = 0;
  lastProgressAt = performance.now();
  lastLatency = null;
  lastCc = null;
  backoffMs = 500;
  networkFailures = 0;
}

function startPlayer(url: string): void {
  stopPlayer();
  sourceUrl = url;
  resetPlaybackCounters();
  mark('playerStartAt');
  delete timings.firstFrameAt;
  delete timings.timeToFirstFrameMs;
  if (Hls.isSupported()) {
    engine = 'hls.js';
    createHls(url);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    engine = 'native';
    video.src = url;
    video.load();
    void playVideo();
  } else {
    showError('unsupported');
    return;
  }
  log('player started', engine, url);
}

function createHls(url: string): void {
  const h = new Hls(mode === 'live' ? liveConfig() : vodConfig());
  hls = h;
  h.on(Events.ERROR, (_e, data) => onHlsError(h, data));
  h.on(Events.MANIFEST_PARSED, () => {
    if (hls !== h) return;
    mark('manifestAt');
    void playVideo();
  });
  h.on(Events.LEVEL_UPDATED, (_e, data) => {
    if (hls !== h) return;
    const d = data.details;
    // LL playlist without PART-HOLD-BACK: hold back three parts, as the spec asks.
    if (mode === 'live' && latencyOverride === undefined && d.partTarget && !d.partHoldBack && !h.userConfig.liveSyncDuration) {
      h.targetLatency = 3 * d.partTarget;
    }
  });
  h.on(Events.FRAG_CHANGED, (_e, data) => {
    if (hls !== h) return;
    const cc = data.frag.cc;
    if (lastCc !== null && cc !== lastCc) {
      discontinuities++;
      log('discontinuity', lastCc, '→', cc);
    }
    lastCc = cc;
  });
  h.on(Events.FRAG_BUFFERED, () => {
    if (hls !== h) return;
    backoffMs = 500;
    networkFailures = 0;
  });
  h.attachMedia(video);
  h.loadSource(url);
}

function stopPlayer(): void {
  window.clearTimeout(retryTimer);
  retryTimer = undefined;
  if (hls) {
    const h = hls;
    hls = null;
    h.destroy();
  }
  if (engine === 'native' || video.getAttribute('src')) {
    video.removeAttribute('src');
    video.load();
  }
  engine = null;
  sourceUrl = null;
  started = false;
  stallStartedAt = null;
  playBtn.hidden = true;
}

function onHlsError(h: Hls, data: ErrorData): void {
  if (hls !== h) return;
  const what = `${data.type}/${data.details}`;
  if (!data.fatal) {
    pushCapped(warnings, what);
    log('warning', what);
    return;
  }
  const why = data.response?.code ? `HTTP ${data.response.code}` : data.error?.message?.split('\n')[0].slice(0, 160);
  pushCapped(errors, `fatal ${what}${why ? ` (${why})` : ''}`);
  log('fatal error', what, data);
  const now = performance.now();
  if (data.type === ErrorTypes.MEDIA_ERROR) {
    // Decoding or appending failed (e.g. odd timestamps around a discontinuity): recover in place first.
    recoveries++;
    if (now - lastMediaRecovery > 5000) {
      lastMediaRecovery = now;
      h.recoverMediaError();
      return;
    }
    if (now - lastCodecSwap > 5000) {
      lastCodecSwap = now;
      h.swapAudioCodec();
      h.recoverMediaError();
      return;
    }
    retryLater('rebuild');
    return;
  }
  if (data.type === ErrorTypes.NETWORK_ERROR) {
    // hls.js has already retried; the playlist may be gone because the broadcast ended: ask the API first.
    networkFailures++;
    const manifest = data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR || data.details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT || data.details === Hls.ErrorDetails.MANIFEST_PARSING_ERROR;
    retryLater(manifest || networkFailures > 3 ? 'rebuild' : 'reload');
    if (mode === 'live') void poll();
    return;
  }
  retryLater('rebuild');
}

/** Restart loading (or the whole player) after a growing delay; never gives up while the page wants playback. */
function retryLater(how: 'reload' | 'rebuild'): void {
  if (retryTimer !== undefined) return;
  const delay = backoffMs;
  backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
  log(`retry (${how}) in ${delay} ms`);
  if (mode === 'live' && started) setStatus('connecting', 'Reconnecting…');
  retryTimer = window.setTimeout(() => {
    retryTimer = undefined;
    const url = sourceUrl;
    if (!url || mode === null) return;
    if (state === 'ended' && mode === 'live') return;
    restarts++;
    if (engine === 'hls.js' && hls && how === 'reload') {
      hls.startLoad(-1);
      void playVideo();
      return;
    }
    if (engine === 'hls.js') {
      if (hls) {
        const h = hls;
        hls = null;
        h.destroy();
      }
      lastTime = 0;
      lastCc = null;
      createHls(url);
    } else {
      video.src = url;
      video.load();
      void playVideo();
    }
  }, delay);
}

async function playVideo(): Promise<void> {
  try {
    await video.play();
    playBtn.hidden = true;
  } catch (e) {
    const name = e instanceof DOMException ? e.name : '';
    log('play() rejected', name, e);
    if (name === 'NotAllowedError') {
      // Even muted autoplay is blocked (power saving, browser setting): one click is needed.
      playBtn.hidden = false;
      if (!started) {
        screenTitle.textContent = 'Ready to play';
        screenText.textContent = 'Press Play to start the broadcast.';
      }
    }
  }
}

// ---- latency -----------------------------------------------------------------------------------------------
/** Fastest catch-up rate (pitch is preserved by the browser). */
const MAX_CATCHUP_RATE = 1.1;

/** Seconds buffered ahead of the playhead in the range it is playing. */
function bufferAhead(): number {
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) {
    if (b.start(i) <= video.currentTime + 0.1 && video.currentTime <= b.end(i)) return b.end(i) - video.currentTime;
  }
  return 0;
}

/**
 * Plays slightly faster while more than 0.1 s behind the target latency with some buffer in hand, and at normal
 * speed again once on target or short of buffer. Why: a player starts a little later than the position it picked
 * (loading, decoding), so it sits 0.2–0.4 s behind its target for good; hls.js only speeds up with more than 1 s
 * buffered, which a 1 s PART-HOLD-BACK never has.
 */
function trimLatency(): void {
  let rate = 1;
  const edge = edgeLatency();
  const target = targetLatency();
  if (hls && started && !userBehind && !video.paused && edge !== null && target !== null) {
    const over = edge - target;
    const ahead = bufferAhead();
    if (over > 0.1 && over < BEHIND_SLACK_S && ahead > 0.3) rate = Math.min(MAX_CATCHUP_RATE, 1 + over * 0.2);
    else if (over > 0.02 && ahead > 0.2 && video.playbackRate > 1) rate = video.playbackRate;
  }
  if (video.playbackRate !== rate) video.playbackRate = rate;
}
window.setInterval(trimLatency, 250);

/** Seconds from the live edge of the playlist to the playhead (hls.js `latency`, or seekable end for native). */
function edgeLatency(): number | null {
  if (!started || mode !== 'live') return null;
  if (hls) {
    const l = hls.latency;
    return Number.isFinite(l) && l > 0 ? l : null;
  }
  if (video.seekable.length) return Math.max(0, video.seekable.end(video.seekable.length - 1) - video.currentTime);
  return null;
}

/** Seconds from EXT-X-PROGRAM-DATE-TIME of the frame on screen to now: the delay behind the stage itself. */
function pdtLatency(): number | null {
  if (!started || mode !== 'live') return null;
  let playing: number | null = null;
  if (hls) {
    playing = hls.playingDate?.getTime() ?? null;
  } else {
    const start = (video as HTMLVideoElement & { getStartDate?: () => Date }).getStartDate?.();
    const t = start?.getTime();
    if (t !== undefined && Number.isFinite(t)) playing = t + video.currentTime * 1000;
  }
  if (playing === null || !Number.isFinite(playing)) return null;
  return (Date.now() - playing) / 1000;
}

/** The latency shown: from PROGRAM-DATE-TIME when the clocks look sane, else from the playlist edge. */
function latency(): number | null {
  const pdt = pdtLatency();
  if (pdt !== null && pdt >= 0 && pdt < 120) return pdt;
  return edgeLatency();
}

function latencySource(): 'program-date-time' | 'playlist-edge' | null {
  const pdt = pdtLatency();
  if (pdt !== null && pdt >= 0 && pdt < 120) return 'program-date-time';
  return edgeLatency() === null ? null : 'playlist-edge';
}

function targetLatency(): number | null {
  if (hls) return hls.targetLatency;
  return latencyOverride ?? 3;
}

function isBehindLive(): boolean {
  if (mode !== 'live' || !started) return false;
  if (video.paused && !video.ended) return true;
  if (userBehind) return true;
  const edge = edgeLatency();
  const target = targetLatency();
  return edge !== null && target !== null && edge > target + BEHIND_SLACK_S;
}

function updateLiveUi(): void {
  if (mode === null || playerTop.hidden) return;
  if (mode === 'replay') {
    liveBadge.textContent = 'REPLAY';
    liveBadge.dataset.live = 'replay';
    latencyEl.hidden = true;
    goLiveBtn.hidden = true;
    return;
  }
  const edge = edgeLatency();
  const target = targetLatency();
  // Back near the edge after seeking back: live again.
  if (userBehind && !video.paused && edge !== null && target !== null && edge <= target + BEHIND_SLACK_S) userBehind = false;
  // Fell behind by itself (background tab, long stall): catch up, as nobody asked to watch the past.
  if (!userBehind && !video.paused && edge !== null && target !== null && edge > target + AUTO_CATCHUP_SLACK_S) {
    if (++farBehindTicks >= 2) {
      farBehindTicks = 0;
      const to = liveEdgeTarget();
      log('auto catch-up', edge, '→', to);
      if (to !== null && to > video.currentTime) {
        rescues++;
        seekTo(to);
      }
    }
  } else {
    farBehindTicks = 0;
  }
  // Stalled for a while at the live edge: jump to the live sync position (a forward seek reloads from there).
  if (!userBehind && stallStartedAt !== null && performance.now() - stallStartedAt > STALL_RESCUE_MS && !video.seeking) {
    const to = liveEdgeTarget();
    if (to !== null && to > video.currentTime + 0.25) {
      log('stall rescue', video.currentTime, '→', to);
      rescues++;
      stallMs += performance.now() - stallStartedAt;
      stallStartedAt = performance.now();
      seekTo(to);
    }
  }
  const behind = isBehindLive();
  const l = latency();
  lastLatency = l;
  liveBadge.textContent = behind ? 'BEHIND LIVE' : 'LIVE';
  liveBadge.dataset.live = behind ? 'false' : 'true';
  goLiveBtn.hidden = !behind;
  latencyEl.hidden = l === null;
  if (l !== null) {
    latencyValue.textContent = `${l.toFixed(1)} s`;
    latencyEl.title = `The picture is ${l.toFixed(1)} seconds behind the stage`;
  }
  if (started && retryTimer === undefined) {
    if (behind) setStatus('behind', 'Behind live');
    else setStatus('live', 'Live');
  }
}

// ---- video events ------------------------------------------------------------------------------------------
function onFirstFrame(): void {
  if (started || mode === null) return;
  started = true;
  mark('firstFrameAt');
  if (timings.playerStartAt !== undefined) timings.timeToFirstFrameMs = timings.firstFrameAt - timings.playerStartAt;
  log('first frame after', timings.timeToFirstFrameMs, 'ms');
  showVideo();
  updateMuteUi();
  updateLiveUi();
  if (mode === 'replay') setStatus('replay', 'Replay');
}

video.addEventListener('playing', () => {
  if (stallStartedAt !== null) {
    stallMs += performance.now() - stallStartedAt;
    stallStartedAt = null;
  }
  playBtn.hidden = true;
  if (!started) {
    const v = video as HTMLVideoElement & { requestVideoFrameCallback?: (cb: () => void) => number };
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(() => onFirstFrame());
    else onFirstFrame();
  } else {
    updateLiveUi();
  }
});

video.addEventListener('waiting', () => {
  // A stall: the buffer ran dry during playback (seeks are not stalls).
  if (!started || video.seeking) return;
  stalls++;
  stallStartedAt ??= performance.now();
  log('stall', stalls);
});

video.addEventListener('timeupdate', () => {
  const t = video.currentTime;
  if (t !== lastTime) lastProgressAt = performance.now();
  if (!video.seeking) lastTime = t;
});

video.addEventListener('seeking', () => {
  if (ownSeek) {
    ownSeek = false;
    return;
  }
  // The viewer dragged the timeline back (hls.js only ever seeks forward, to the live edge or over gaps).
  if (mode === 'live' && started && video.currentTime < lastTime - 1) userBehind = true;
  lastProgressAt = performance.now();
});

video.addEventListener('pause', () => {
  if (mode === 'live' && started && !video.ended && engine !== null) userBehind = true;
  updateLiveUi();
});

video.addEventListener('play', () => updateLiveUi());

video.addEventListener('ended', () => {
  log('video ended', mode);
  if (mode === 'live') finishLive();
  else if (mode === 'replay') {
    stopPlayer();
    showEnded();
    replayBtn.textContent = 'Watch again';
  }
});

video.addEventListener('error', () => {
  if (engine !== 'native' || !sourceUrl) return;
  const err = video.error;
  pushCapped(errors, `native media error ${err?.code ?? '?'}${err?.message ? `: ${err.message}` : ''}`);
  retryLater('rebuild');
});

video.addEventListener('volumechange', updateMuteUi);

function updateMuteUi(): void {
  unmuteBtn.hidden = !started || !(video.muted || video.volume === 0);
}

// ---- controls ----------------------------------------------------------------------------------------------
unmuteBtn.addEventListener('click', () => {
  video.muted = false;
  if (video.volume === 0) video.volume = 1;
  void playVideo();
  video.focus();
});

goLiveBtn.addEventListener('click', () => goLive());

playBtn.addEventListener('click', () => {
  video.muted = false; // the click allows sound
  void playVideo();
});

replayBtn.addEventListener('click', () => startReplay());

bannerAction.addEventListener('click', () => {
  hideBanner();
  if (status?.state === 'live') startLive(status.master);
});

roomForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const r = roomInput.value.trim();
  if (!ROOM_RE.test(r)) {
    roomInput.setAttribute('aria-invalid', 'true');
    roomInput.focus();
    return;
  }
  window.location.search = `?room=${encodeURIComponent(r)}`;
});

// Once a second: the latency, LIVE / BEHIND LIVE, and a watchdog for a playhead that stopped moving.
window.setInterval(() => {
  updateLiveUi();
  if (mode === null || !sourceUrl || !started || retryTimer !== undefined) return;
  const shouldPlay = !video.paused && !video.ended;
  if (shouldPlay && performance.now() - lastProgressAt > WATCHDOG_MS) {
    pushCapped(errors, `watchdog: no progress for ${WATCHDOG_MS / 1000} s at ${video.currentTime.toFixed(1)}`);
    lastProgressAt = performance.now();
    if (mode === 'live') void poll();
    retryLater('rebuild');
  }
}, 1000);

// Back to a hidden tab: the playhead may be far behind; updateLiveUi catches up unless the viewer paused.
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) updateLiveUi();
});

// ---- test hook ---------------------------------------------------------------------------------------------
declare global {
  interface Window {
    rostrumWatch: unknown;
  }
}
window.rostrumWatch = {
  get state() {
    return state;
  },
  /** 'live' or 'replay' while something plays (or loads), else null. */
  get mode() {
    return mode;
  },
  get engine() {
    return engine;
  },
  get status() {
    return status;
  },
  /** Playback has started (a frame was shown) for the current source. */
  get playing() {
    return started && !video.paused;
  },
  get started() {
    return started;
  },
  get muted() {
    return video.muted;
  },
  get behindLive() {
    return isBehindLive();
  },
  /** 'waiting' events on the video after playback started, outside seeks. */
  get stalls() {
    return stalls;
  },
  get stallMs() {
    return Math.round(stallMs + (stallStartedAt !== null ? performance.now() - stallStartedAt : 0));
  },
  /** Fatal errors (hls.js `fatal type/details`, native media errors, watchdog); each was followed by a recovery. */
  get errors() {
    return [...errors];
  },
  /** Non-fatal hls.js errors (hls.js handles them itself). */
  get warnings() {
    return [...warnings];
  },
  get discontinuities() {
    return discontinuities;
  },
  get recoveries() {
    return recoveries;
  },
  get restarts() {
    return restarts;
  },
  /** Jumps to the live sync position the page made by itself (long stall, far behind without a pause). */
  get rescues() {
    return rescues;
  },
  /** performance.now() marks: liveAt, playerStartAt, manifestAt, firstFrameAt, endedAt; timeToFirstFrameMs. */
  get timings() {
    return { ...timings };
  },
  currentTime: () => video.currentTime,
  /** Seconds behind the stage, as shown (PROGRAM-DATE-TIME based when possible), or null. */
  latency: () => latency(),
  latencySource: () => latencySource(),
  edgeLatency: () => edgeLatency(),
  pdtLatency: () => pdtLatency(),
  targetLatency: () => (mode === 'live' ? targetLatency() : null),
  /** Seconds buffered ahead of the playhead. */
  bufferAhead: () => bufferAhead(),
  /** The level (rendition) playing: index, size, bitrate, codecs. */
  level() {
    if (hls) {
      const i = hls.currentLevel;
      const l = i >= 0 ? hls.levels[i] : undefined;
      return {
        index: i,
        count: hls.levels.length,
        width: l?.width || video.videoWidth,
        height: l?.height || video.videoHeight,
        bitrate: l?.bitrate ?? null,
        videoCodec: l?.videoCodec ?? null,
        audioCodec: l?.audioCodec ?? null,
        lowLatency: !!hls.latestLevelDetails?.partList?.length,
        live: hls.latestLevelDetails?.live ?? null,
      };
    }
    if (engine === 'native') return { index: 0, count: 1, width: video.videoWidth, height: video.videoHeight, bitrate: null, videoCodec: null, audioCodec: null, lowLatency: null, live: null };
    return null;
  },
  droppedFrames(): number | null {
    return video.getVideoPlaybackQuality?.().droppedVideoFrames ?? null;
  },
  video,
  goLive,
  unmute: () => unmuteBtn.click(),
  replay: () => startReplay(),
  poll: () => poll(),
  get hls() {
    return hls;
  },
};

// ---- start -------------------------------------------------------------------------------------------------
mark('scriptAt');
if (!room) {
  showError('missing');
} else if (!ROOM_RE.test(room)) {
  showError('invalid');
} else {
  $('watch-room').textContent = `room “${room}”`;
  $('header-room-name').textContent = room;
  $('header-room').hidden = false;
  ($('to-stage') as HTMLAnchorElement).href = `/stream?room=${encodeURIComponent(room)}`;
  document.title = `Rostrum · Watch ${room}`;
  setStatus('connecting', 'Connecting…');
  void poll();
}
