// The /stream page: lobby (name, room, preview) and the stage (tiles, mute, leave).

import { ROOM_RE, validName, type Kind, type ProtocolError } from './protocol';
import { StageClient, type RemoteParticipant, type StageState } from './stage';
import { $, $input, $video, hue, initials, queryParams } from './ui';

// ---- elements ----------------------------------------------------------------------------------------------
const statusEl = $('status');
const alertEl = $('alert');
const lobbyEl = $('lobby');
const stageEl = $('stage');
const bannerEl = $('banner');
const noticeEl = $('notice');
const previewNotice = $('preview-notice');
const form = $('join-form') as HTMLFormElement;
const nameInput = $input('name');
const roomInput = $input('room');
const joinBtn = $('join') as HTMLButtonElement;
const tilesEl = $('tiles');
const emptyStage = $('empty-stage');
const micBtn = $('toggle-mic') as HTMLButtonElement;
const camBtn = $('toggle-cam') as HTMLButtonElement;
const soundBtn = $('enable-sound') as HTMLButtonElement;
const leaveBtn = $('leave') as HTMLButtonElement;
const endBtn = $('end-stage') as HTMLButtonElement;
const previewVideo = $video('preview');
const previewTile = $('preview-tile');
const localVideo = $video('local-video');
const localTile = $('local-tile');

// ---- local media -------------------------------------------------------------------------------------------
let media: MediaStream | null = null;
let mediaPromise: Promise<MediaStream | null> | null = null;

/** Camera and microphone, falling back to whichever one works, or null (listen-only). */
function getLocalMedia(): Promise<MediaStream | null> {
  if (media && media.getTracks().some((t) => t.readyState === 'live')) return Promise.resolve(media);
  if (mediaPromise) return mediaPromise;
  mediaPromise = (async () => {
    if (!navigator.mediaDevices?.getUserMedia) {
      previewNotice.textContent = 'This browser cannot capture a camera or microphone here (a secure origin is needed). You can still join to listen.';
      return null;
    }
    // 720p: a simulcast camera sends three layers only from a large enough capture (Chrome drops the others).
    const tries: MediaStreamConstraints[] = [
      { audio: true, video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } },
      { audio: true, video: false },
      { audio: false, video: true },
    ];
    let lastErr: unknown = null;
    for (const c of tries) {
      try {
        const s = await navigator.mediaDevices.getUserMedia(c);
        if (!c.video) previewNotice.textContent = 'No camera available: you will join with your microphone only.';
        else if (!c.audio) previewNotice.textContent = 'No microphone available: you will join with your camera only.';
        else previewNotice.textContent = '';
        return s;
      } catch (e) {
        lastErr = e;
      }
    }
    const why = lastErr instanceof Error ? lastErr.message : String(lastErr);
    previewNotice.textContent = `Camera and microphone unavailable (${why}). You can still join to listen.`;
    return null;
  })();
  mediaPromise.then((s) => {
    media = s;
    mediaPromise = null;
    showLocal();
  });
  return mediaPromise;
}

function stopLocalMedia(): void {
  media?.getTracks().forEach((t) => t.stop());
  media = null;
  previewVideo.srcObject = null;
  localVideo.srcObject = null;
  showLocal();
}

function showLocal(): void {
  const hasVideo = !!media?.getVideoTracks().some((t) => t.readyState === 'live');
  for (const v of [previewVideo, localVideo]) {
    if (v.srcObject !== media) v.srcObject = media;
    if (media) v.play().catch(() => {});
  }
  const camOff = !hasVideo || client.muted.video;
  previewTile.classList.toggle('video-off', camOff);
  localTile.classList.toggle('video-off', camOff);
  const n = nameInput.value.trim();
  $('preview-avatar').textContent = initials(n);
  $('local-avatar').textContent = initials(n);
  $('local-name').textContent = n ? `You (${n})` : 'You';
  $('local-mic-badge').hidden = !client.muted.audio && !!media?.getAudioTracks().length;
  $('local-mic-badge').textContent = media?.getAudioTracks().length ? 'Mic off' : 'No mic';
  micBtn.disabled = !media?.getAudioTracks().length;
  camBtn.disabled = !hasVideo;
}

// ---- remote tiles ------------------------------------------------------------------------------------------
interface Tile {
  el: HTMLElement;
  video: HTMLVideoElement;
  name: HTMLElement;
  avatar: HTMLElement;
  badge: HTMLElement;
  /** The remote video producer on the tile, whose drawn size goes to the server. */
  videoProducer: string | null;
  /** Whether the tile is within the window; null until the IntersectionObserver's first answer. */
  onScreen: boolean | null;
}
const tiles = new Map<string, Tile>();
let soundBlocked = false;

function createTile(p: RemoteParticipant): Tile {
  const el = document.createElement('figure');
  el.className = 'tile video-off';
  el.dataset.participantId = p.id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.srcObject = p.stream;
  const ph = document.createElement('div');
  ph.className = 'tile-placeholder';
  const avatar = document.createElement('span');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  avatar.dataset.hue = String(hue(p.id));
  ph.append(avatar);
  const cap = document.createElement('figcaption');
  cap.className = 'tile-caption';
  const name = document.createElement('span');
  name.className = 'tile-name';
  const badge = document.createElement('span');
  badge.className = 'tile-badge';
  badge.textContent = 'Mic off';
  badge.hidden = true;
  cap.append(name, badge);
  el.append(video, ph, cap);
  tilesEl.append(el);
  const tile: Tile = { el, video, name, avatar, badge, videoProducer: null, onScreen: null };
  tiles.set(p.id, tile);
  resizeObserver.observe(video);
  intersectionObserver.observe(el);
  updateTile(p);
  updateEmpty();
  return tile;
}

function updateTile(p: RemoteParticipant): void {
  const tile = tiles.get(p.id) ?? createTile(p);
  const videoProducer = p.trackProducer.video ?? null;
  if (tile.videoProducer !== videoProducer) {
    if (tile.videoProducer) client.forgetViewport(tile.videoProducer);
    tile.videoProducer = videoProducer;
    reportViewport(tile);
  }
  const shown = p.name || 'Guest';
  tile.name.textContent = shown;
  tile.avatar.textContent = initials(p.name || '?');
  tile.el.setAttribute('aria-label', shown);
  const producers = [...p.producers.values()];
  const video = producers.find((x) => x.kind === 'video');
  const audio = producers.find((x) => x.kind === 'audio');
  const liveVideo = p.stream.getVideoTracks().some((t) => t.readyState === 'live');
  tile.el.classList.toggle('video-off', !video || video.muted || !liveVideo);
  tile.badge.hidden = !(audio && audio.muted);
  if (p.stream.getTracks().length > 0 && tile.video.paused) play(tile.video);
}

function play(video: HTMLVideoElement): void {
  video.play().catch((e: unknown) => {
    if (e instanceof DOMException && e.name === 'NotAllowedError') {
      soundBlocked = true;
      soundBtn.hidden = false;
    }
  });
}

function removeTile(id: string): void {
  const tile = tiles.get(id);
  if (!tile) return;
  resizeObserver.unobserve(tile.video);
  intersectionObserver.unobserve(tile.el);
  if (tile.videoProducer) client.forgetViewport(tile.videoProducer);
  tile.video.srcObject = null;
  tile.el.remove();
  tiles.delete(id);
  updateEmpty();
}

// ---- viewport reports --------------------------------------------------------------------------------------
// The server forwards each remote video in the smallest simulcast layer that fills its tile, and nothing
// while nobody can see it: it learns each tile's drawn size and visibility from these observers.
const resizeObserver = new ResizeObserver((entries) => {
  for (const e of entries) {
    const tile = tileOf(e.target);
    if (tile) reportViewport(tile);
  }
});
const intersectionObserver = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const tile = tileOf(e.target);
    if (!tile) continue;
    tile.onScreen = e.isIntersecting;
    reportViewport(tile);
  }
});
document.addEventListener('visibilitychange', () => {
  for (const tile of tiles.values()) reportViewport(tile);
});

function tileOf(el: Element): Tile | undefined {
  const id = el.closest<HTMLElement>('.tile')?.dataset.participantId;
  return id ? tiles.get(id) : undefined;
}

function reportViewport(tile: Tile): void {
  if (!tile.videoProducer || tile.onScreen === null) return;
  const box = tile.video.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const width = Math.round(box.width * dpr);
  const height = Math.round(box.height * dpr);
  const visible = tile.onScreen && !document.hidden && width > 0 && height > 0;
  client.setViewport(tile.videoProducer, { width, height, visible });
}

function updateEmpty(): void {
  emptyStage.hidden = tiles.size > 0 || client.state !== 'joined';
}

// ---- state -------------------------------------------------------------------------------------------------
const STATUS_TEXT: Record<StageState, string> = {
  idle: 'Not connected',
  joining: 'Joining…',
  joined: 'Live',
  reconnecting: 'Reconnecting…',
  error: 'Not connected',
};

function errorText(err: ProtocolError): string {
  switch (err.code) {
    case 'room-full':
      return `Room “${client.room ?? roomInput.value}” is full. Try again later or pick another room.`;
    case 'unreachable':
      return err.message || "Can't reach the Rostrum server. Check your connection and try again.";
    case 'bad-request':
      return `The server did not accept the name or room: ${err.message}`;
    default:
      return err.message || `Something went wrong (${err.code}).`;
  }
}

function onState(state: StageState, error: ProtocolError | null): void {
  statusEl.dataset.state = state;
  statusEl.textContent = STATUS_TEXT[state];
  const onStage = state === 'joining' || state === 'joined' || state === 'reconnecting';
  stageEl.hidden = !onStage;
  lobbyEl.hidden = onStage;
  joinBtn.disabled = false;
  $('header-room').hidden = !onStage;
  $('header-room-name').textContent = client.room ?? '';
  if (state === 'joining') showBanner('Joining the room…');
  else if (state === 'reconnecting') showBanner('Reconnecting… The connection dropped; your stage comes back by itself.');
  else showBanner(null);
  if (state === 'joined') noticeEl.textContent = '';
  if (state === 'error' && error) {
    alertEl.innerHTML = '';
    const strong = document.createElement('strong');
    strong.textContent = error.code === 'room-full' ? 'Room full. ' : error.code === 'unreachable' ? 'Server unreachable. ' : 'Error. ';
    alertEl.append(strong, document.createTextNode(errorText(error)));
    alertEl.dataset.code = error.code;
    alertEl.hidden = false;
  } else if (state !== 'idle') {
    alertEl.hidden = true;
  }
  if (state === 'idle' || state === 'error') {
    for (const id of [...tiles.keys()]) removeTile(id);
  }
  updateEmpty();
  updateHost();
}

/** Only the participant on stage the longest sees "End stage for everyone". */
function updateHost(): void {
  endBtn.hidden = !client.isHost;
}

function showBanner(text: string | null): void {
  bannerEl.hidden = text === null;
  bannerEl.textContent = text ?? '';
}

const client = new StageClient({
  state: onState,
  participantAdded: (p) => {
    updateTile(p);
    updateHost();
  },
  participantChanged: (p) => updateTile(p),
  participantRemoved: (id) => {
    removeTile(id);
    updateHost();
  },
  stageEnded: () => {
    stopLocalMedia();
    previewNotice.textContent = 'The host ended the stage. Your camera and microphone are off.';
  },
  notice: (m) => {
    noticeEl.textContent = m;
  },
  localMuteChanged: (kind, muted) => {
    const btn = kind === 'audio' ? micBtn : camBtn;
    btn.setAttribute('aria-pressed', String(muted));
    if (kind === 'audio') btn.textContent = muted ? 'Unmute mic' : 'Mute mic';
    else btn.textContent = muted ? 'Turn camera on' : 'Turn camera off';
    showLocal();
  },
});

// ---- actions -----------------------------------------------------------------------------------------------
function validate(): boolean {
  const nameOk = validName(nameInput.value);
  const roomOk = ROOM_RE.test(roomInput.value.trim());
  nameInput.setAttribute('aria-invalid', String(!nameOk));
  roomInput.setAttribute('aria-invalid', String(!roomOk));
  if (!nameOk || !roomOk) {
    alertEl.innerHTML = '';
    const strong = document.createElement('strong');
    strong.textContent = 'Check the form. ';
    alertEl.append(
      strong,
      document.createTextNode(
        !nameOk ? 'Enter a display name (1–64 characters).' : 'A room name is 1–64 letters, digits, “-” or “_”.',
      ),
    );
    alertEl.hidden = false;
    (!nameOk ? nameInput : roomInput).focus();
  }
  return nameOk && roomOk;
}

async function join(): Promise<void> {
  if (client.state === 'joining' || client.state === 'joined' || client.state === 'reconnecting') return;
  if (!validate()) return;
  alertEl.hidden = true;
  joinBtn.disabled = true;
  const room = roomInput.value.trim();
  const name = nameInput.value.trim();
  const url = new URL(window.location.href);
  url.searchParams.set('room', room);
  url.searchParams.set('name', name);
  url.searchParams.delete('autojoin');
  history.replaceState(null, '', url);
  const stream = await getLocalMedia();
  for (const kind of ['audio', 'video'] as const) {
    for (const t of stream?.getTracks().filter((t) => t.kind === kind) ?? []) t.enabled = !client.muted[kind];
  }
  showLocal();
  client.join(room, name, stream);
}

async function leave(): Promise<void> {
  leaveBtn.disabled = true;
  try {
    await client.leave();
  } finally {
    leaveBtn.disabled = false;
    stopLocalMedia();
    previewNotice.textContent = 'You left the stage. Your camera and microphone are off until you join again.';
  }
}

function toggle(kind: Kind): void {
  void client.setMuted(kind, !client.muted[kind]);
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void join();
});
micBtn.addEventListener('click', () => toggle('audio'));
camBtn.addEventListener('click', () => toggle('video'));
leaveBtn.addEventListener('click', () => void leave());
endBtn.addEventListener('click', async () => {
  endBtn.disabled = true;
  const err = await client.endStage();
  endBtn.disabled = false;
  if (err) noticeEl.textContent = `Could not end the stage: ${err.message}`;
});
soundBtn.addEventListener('click', () => {
  soundBlocked = false;
  soundBtn.hidden = true;
  for (const t of tiles.values()) play(t.video);
});
nameInput.addEventListener('input', showLocal);

// ---- test hook ---------------------------------------------------------------------------------------------
declare global {
  interface Window {
    rostrum: unknown;
  }
}
window.rostrum = {
  get participantId() {
    return client.participantId;
  },
  get state() {
    return client.state;
  },
  get error() {
    return client.error;
  },
  get sendPc() {
    return client.sendPc;
  },
  get recvPc() {
    return client.recvPc;
  },
  get timings() {
    return { ...client.timings };
  },
  get sessions() {
    return client.sessions;
  },
  get connected() {
    return client.connected;
  },
  get soundBlocked() {
    return soundBlocked;
  },
  /** Remote participants on the stage, as their tiles show them. */
  tiles(): Array<{ participantId: string; name: string }> {
    return [...tiles.entries()].map(([participantId, t]) => ({ participantId, name: t.name.textContent ?? '' }));
  },
  /** mid → participant and kind, from the last offer of the receive transport. */
  trackMap(): Array<{ mid: string; participantId: string; producerId: string; kind: string }> {
    return [...client.tracks.values()].map((t) => ({ ...t }));
  },
  /** inbound-rtp stats of the receive transport, each with the participant its mid carries. */
  stats: () => client.stats(),
  /** The camera goes out as simulcast layers (`?simulcast=1`, and the server kept them). */
  simulcast: () => client.simulcasting,
  /** Rids of the camera's simulcast layers being encoded now (dynacast); [] when not simulcasting. */
  layersActive: () => client.layersActive(),
  /** `viewport` events sent. */
  viewportReports: () => client.viewportReports,
  /** The last `viewport` report sent per remote video producer. */
  viewports: () => client.sentViewports(),
  join: () => join(),
  leave: () => leave(),
  endStage: async () => {
    const e = await client.endStage();
    return e && { code: e.code, message: e.message };
  },
  isHost: () => client.isHost,
  setMuted: (kind: Kind, muted: boolean) => client.setMuted(kind, muted),
};

/** localStorage get (or set, with a value), tolerating browsers that forbid storage. */
function storage(key: string, value?: string): string | null {
  try {
    if (value === undefined) return localStorage.getItem(key);
    localStorage.setItem(key, value);
  } catch {
    /* private mode or storage disabled */
  }
  return null;
}

// ---- start -------------------------------------------------------------------------------------------------
const params = queryParams();
client.debug = params.get('debug') === '1';
const simulcast = params.get('simulcast');
if (simulcast === '1' || simulcast === '0') client.simulcast = simulcast === '1';
nameInput.value = params.get('name') ?? storage('rostrum.name') ?? '';
roomInput.value = params.get('room') ?? 'demo';
nameInput.addEventListener('change', () => storage('rostrum.name', nameInput.value.trim()));
onState('idle', null);
showLocal();
if (params.get('autojoin') === '1') {
  void join();
} else {
  void getLocalMedia();
  (nameInput.value ? roomInput : nameInput).focus();
}
