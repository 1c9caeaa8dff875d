// The client side of the Rostrum stage protocol (docs/protocol.md): one Socket.IO connection, a send
// RTCPeerConnection that the client offers (`publish`) and a receive RTCPeerConnection that the server offers
// (`offer` events, answered one at a time). No DOM here: the page listens to the callbacks.

import { io, type Socket } from 'socket.io-client';
import {
  SIMULCAST_RIDS,
  type Ack,
  type ClientToServerEvents,
  type Kind,
  type OfferEvent,
  type ParticipantInfo,
  type ProtocolError,
  type ServerToClientEvents,
  type SimulcastRid,
  type TrackInfo,
  type ViewportReport,
} from './protocol';

export type StageState = 'idle' | 'joining' | 'joined' | 'reconnecting' | 'error';

export interface RemoteProducer {
  id: string;
  kind: Kind;
  muted: boolean;
}

export interface RemoteParticipant {
  id: string;
  name: string;
  /** One stream per participant with its audio and video tracks (as they arrive). */
  stream: MediaStream;
  producers: Map<string, RemoteProducer>;
  /** Which producer each attached track carries. */
  trackProducer: Partial<Record<Kind, string>>;
}

export interface StageHandlers {
  state?(state: StageState, error: ProtocolError | null): void;
  participantAdded?(p: RemoteParticipant): void;
  participantChanged?(p: RemoteParticipant): void;
  participantRemoved?(id: string): void;
  /** A transient message for the status line (not an error state). */
  notice?(message: string): void;
  localMuteChanged?(kind: Kind, muted: boolean): void;
  /** The host ended the stage: we are off it, and must not rejoin by ourselves. */
  stageEnded?(): void;
}

/** A remote video's drawn size in device pixels, and whether anyone can see it. */
export type Viewport = Omit<ViewportReport, 'producerId'>;

export interface TrackStats {
  mid: string;
  participantId: string | null;
  kind: string;
  framesDecoded: number;
  packetsReceived: number;
  bytesReceived: number;
  /** Size of the last decoded video frame (0 for audio): shows which simulcast layer arrives. */
  frameWidth: number;
  frameHeight: number;
}

export interface Timings {
  /** performance.now() of the user's join request. */
  joinRequested?: number;
  joinAcked?: number;
  published?: number;
  joined?: number;
  firstOffer?: number;
}

type RostrumSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

const ACK_TIMEOUT_MS = 8000;
const GATHER_CAP_MS = 1000;
/** connect_error count before the first join gives up with `unreachable`. */
const INITIAL_CONNECT_TRIES = 3;
/** A media connection `disconnected` this long counts as lost (`failed` counts at once). */
const MEDIA_DISCONNECTED_GRACE_MS = 6000;
/** At most this many media restarts within the window before giving up with an error. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 60000;
/**
 * Whether the camera is published as simulcast layers when the page does not say (`?simulcast=1` / `0`): each
 * viewer then gets the layer its tile needs, and layers nobody needs are turned off. Off by default for now: with
 * three or four Chromium publishers encoding three layers each on the 2-core test machine, the browser tests
 * became flaky (ack timeouts, ~1 s mixer pauses around joins); on again once the mixer no longer pauses.
 */
export const SIMULCAST_DEFAULT = false;
/** Per simulcast layer: how much smaller than the capture, and its bitrate cap. */
const LAYER_ENCODING: Record<SimulcastRid, { scaleResolutionDownBy: number; maxBitrate: number }> = {
  l: { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  m: { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  h: { scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
};
/** At most one `viewport` report per producer this often: resizing a window fires many observations. */
const VIEWPORT_INTERVAL_MS = 250;
/** A size change within this fraction cannot change the layer worth forwarding: not reported. */
const VIEWPORT_SLACK = 0.1;
/** Observers of one change fire apart (a tile shown again resizes a task before it intersects): one report. */
const VIEWPORT_SETTLE_MS = 40;

/** Resolves when ICE gathering is complete, or after `capMs` at the latest. */
export function gatheringComplete(pc: RTCPeerConnection, capMs = GATHER_CAP_MS): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function viewportChanged(sent: Viewport, v: Viewport): boolean {
  const far = (now: number, before: number) => Math.abs(now - before) > before * VIEWPORT_SLACK;
  return v.visible !== sent.visible || far(v.width, sent.width) || far(v.height, sent.height);
}

interface ViewportState {
  sent: Viewport | null;
  sentAt: number;
  /** Waiting for the interval to pass. */
  pending: Viewport | null;
  timer: ReturnType<typeof setTimeout> | null;
}

export class StageError extends Error {
  constructor(
    public readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function ackError(res: Ack | undefined | null, what: string): StageError | null {
  if (res && typeof res === 'object' && res.ok === true) return null;
  if (res && typeof res === 'object' && res.ok === false && res.error && typeof res.error.code === 'string') {
    return new StageError(res.error.code, res.error.message || `${what} failed (${res.error.code})`);
  }
  return new StageError('bad-response', `${what}: unexpected reply from the server`);
}

export class StageClient {
  state: StageState = 'idle';
  error: ProtocolError | null = null;
  participantId: string | null = null;
  room: string | null = null;
  name: string | null = null;
  sendPc: RTCPeerConnection | null = null;
  recvPc: RTCPeerConnection | null = null;
  readonly participants = new Map<string, RemoteParticipant>();
  /** mid → track, from the last `offer`. */
  tracks = new Map<string, TrackInfo>();
  /** Our own producers, from the last `publish` ack. */
  producers: Array<{ id: string; kind: Kind; mid: string }> = [];
  readonly muted: Record<Kind, boolean> = { audio: false, video: false };
  timings: Timings = {};
  /** How many times the session was (re)started on a fresh connection. */
  sessions = 0;
  /** Publish the camera as simulcast layers (`?simulcast=1` on the page). */
  simulcast = SIMULCAST_DEFAULT;
  /** The camera goes out as simulcast layers: asked for, and the server's answer kept them. */
  simulcasting = false;
  /** `viewport` events sent (for tests). */
  viewportReports = 0;
  /** Who was on stage before us when we joined: while any of them stays, one of them is host. */
  private before = new Set<string>();

  private socket: RostrumSocket | null = null;
  private localStream: MediaStream | null = null;
  private iceServers: RTCIceServer[] = [];
  /** Bumped on every (re)start and leave; async work of an older generation drops its result. */
  private gen = 0;
  private offerChain: Promise<void> = Promise.resolve();
  private wanted = false;
  private everConnected = false;
  private connectErrors = 0;
  private mediaTimer: ReturnType<typeof setTimeout> | null = null;
  /** performance.now() of recent media restarts (to give up on a connection that keeps failing). */
  private restarts: number[] = [];
  /** Per remote video producer: the last `viewport` report and the one waiting for its turn. */
  private viewports = new Map<string, ViewportState>();
  /** The last `layers` notice per producer id: one can arrive before the `publish` ack names our producers. */
  private layersWanted = new Map<string, string[]>();
  /** setParameters calls one at a time: a notice arriving during one applies after it. */
  private layersChain: Promise<void> = Promise.resolve();

  /** Log every SDP and signaling event to the console (`?debug=1` on the page). */
  debug = false;

  constructor(
    private readonly handlers: StageHandlers = {},
    private readonly url?: string,
  ) {}

  private trace(...args: unknown[]): void {
    if (this.debug) console.debug('rostrum:', ...args);
  }

  get connected(): boolean {
    return this.socket?.connected ?? false;
  }

  /** Joins `room` as `name` and publishes the tracks of `localStream` (if any). */
  join(room: string, name: string, localStream: MediaStream | null): void {
    if (this.wanted) return;
    this.wanted = true;
    this.room = room;
    this.name = name.trim();
    this.localStream = localStream;
    this.everConnected = false;
    this.connectErrors = 0;
    this.timings = { joinRequested: performance.now() };
    this.setState('joining', null);
    const socket = this.makeSocket();
    if (socket.connected) void this.startSession();
    else socket.connect();
  }

  /** We are the participant on stage the longest, so we may end the stage for everyone. */
  get isHost(): boolean {
    if (this.state !== 'joined') return false;
    for (const id of this.participants.keys()) if (this.before.has(id)) return false;
    return true;
  }

  /** Ends the stage for everyone (host only); resolves with the server's error, if any. */
  async endStage(): Promise<ProtocolError | null> {
    const socket = this.socket;
    if (!socket?.connected) return { code: 'unreachable', message: 'not connected' };
    try {
      const res = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('end-stage', {});
      return ackError(res, 'end-stage');
    } catch {
      return { code: 'timeout', message: 'the server did not answer' };
    }
  }

  async leave(): Promise<void> {
    const socket = this.socket;
    this.wanted = false;
    this.gen++;
    this.clearMediaTimer();
    if (socket?.connected && this.participantId) {
      try {
        await socket.timeout(1500).emitWithAck('leave', {});
      } catch {
        /* leaving anyway: disconnecting has the same effect */
      }
    }
    this.dropSocket();
    this.teardownMedia();
    this.participantId = null;
    this.setState('idle', null);
  }

  /** Mutes or unmutes our own audio or video: disables the track and tells the server. */
  async setMuted(kind: Kind, muted: boolean): Promise<void> {
    this.muted[kind] = muted;
    for (const t of this.localTracks(kind)) t.enabled = !muted;
    this.handlers.localMuteChanged?.(kind, muted);
    if (this.state === 'joined' && this.producers.some((p) => p.kind === kind)) {
      await this.sendMute(kind, muted);
    }
  }

  /**
   * How large the video of remote producer `producerId` is drawn: reported to the server as `viewport`, so it
   * forwards the smallest simulcast layer that looks sharp. At most one report per producer every 250 ms, and
   * only when visibility or a side changed by more than 10 %.
   */
  setViewport(producerId: string, v: Viewport): void {
    const st = this.viewports.get(producerId) ?? { sent: null, sentAt: -Infinity, pending: null, timer: null };
    this.viewports.set(producerId, st);
    st.pending = st.sent && !viewportChanged(st.sent, v) ? null : v;
    if (!st.pending || st.timer) return;
    const wait = Math.max(VIEWPORT_SETTLE_MS, st.sentAt + VIEWPORT_INTERVAL_MS - performance.now());
    st.timer = setTimeout(() => {
      st.timer = null;
      this.sendViewport(producerId, st);
    }, wait);
  }

  /** The producer's tile is gone: no more reports for it. */
  forgetViewport(producerId: string): void {
    const st = this.viewports.get(producerId);
    if (st?.timer) clearTimeout(st.timer);
    this.viewports.delete(producerId);
  }

  /** The last `viewport` report sent per producer (for tests). */
  sentViewports(): ViewportReport[] {
    return [...this.viewports].flatMap(([producerId, st]) => (st.sent ? [{ producerId, ...st.sent }] : []));
  }

  /** Rids of our camera's simulcast layers being encoded now; [] when not simulcasting. */
  layersActive(): string[] {
    const camera = this.producers.find((p) => p.kind === 'video');
    const sender = this.simulcasting && camera ? this.videoSender(camera.id) : null;
    if (!sender) return [];
    return sender
      .getParameters()
      .encodings.filter((e) => e.active !== false && e.rid)
      .map((e) => e.rid as string);
  }

  /** Per-track receive statistics of the receive transport (for tests and the debug overlay). */
  async stats(): Promise<TrackStats[]> {
    const pc = this.recvPc;
    if (!pc) return [];
    const report = await pc.getStats();
    const out: TrackStats[] = [];
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const mid = String(s.mid ?? '');
      const info = this.tracks.get(mid);
      out.push({
        mid,
        participantId: info?.participantId ?? null,
        kind: String(s.kind ?? s.mediaType ?? info?.kind ?? ''),
        framesDecoded: Number(s.framesDecoded ?? 0),
        packetsReceived: Number(s.packetsReceived ?? 0),
        bytesReceived: Number(s.bytesReceived ?? 0),
        frameWidth: Number(s.frameWidth ?? 0),
        frameHeight: Number(s.frameHeight ?? 0),
      });
    });
    return out;
  }

  // ---- socket ------------------------------------------------------------------------------------------

  private makeSocket(): RostrumSocket {
    if (this.socket) return this.socket;
    const opts = {
      path: '/socket.io',
      autoConnect: false,
      reconnection: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
      timeout: 5000,
    };
    const socket: RostrumSocket = this.url ? io(this.url, opts) : io(opts);
    this.socket = socket;

    if (this.debug) socket.onAny((event, ...args) => this.trace('event', event, JSON.stringify(args).slice(0, 500)));
    socket.on('connect', () => {
      this.everConnected = true;
      this.connectErrors = 0;
      if (this.wanted) void this.startSession();
    });
    socket.on('connect_error', (err) => {
      if (!this.wanted) return;
      this.connectErrors++;
      if (!this.everConnected) {
        if (this.connectErrors >= INITIAL_CONNECT_TRIES || !socket.active) {
          console.warn('rostrum: cannot connect:', err.message);
          this.fail('unreachable', "Can't reach the Rostrum server. Check your connection and try again.");
        } else {
          this.handlers.notice?.('Connecting to the server…');
        }
      } else if (!socket.active) {
        this.fail('disconnected', `The server refused the connection (${err.message}).`);
      } else {
        this.setState('reconnecting', null);
        this.handlers.notice?.(`Reconnecting… (attempt ${this.connectErrors + 1})`);
      }
    });
    socket.on('disconnect', (reason) => {
      if (!this.wanted) return;
      this.gen++;
      this.clearMediaTimer();
      this.teardownMedia();
      if (reason === 'io server disconnect') {
        this.fail('disconnected', 'The server ended the connection.');
      } else {
        this.setState('reconnecting', null);
      }
    });

    socket.on('offer', (msg) => {
      const gen = this.gen;
      this.offerChain = this.offerChain
        .then(() => this.handleOffer(gen, msg))
        .catch((err) => {
          console.error('rostrum: answering an offer failed', describe(err), '\noffer:', msg?.sdp, '\ntracks:', JSON.stringify(msg?.tracks));
          if (gen !== this.gen) return;
          // The server sends no further offer until this one is answered: start over with fresh transports.
          this.handlers.notice?.(`Media negotiation failed: ${describe(err)}`);
          void this.restart(gen, 'media negotiation failed');
        });
    });
    socket.on('participant-joined', (msg) => {
      if (!msg || typeof msg.id !== 'string' || msg.id === this.participantId) return;
      const p = this.ensureParticipant(msg.id, msg.name);
      if (typeof msg.name === 'string' && p.name !== msg.name) {
        p.name = msg.name;
        this.handlers.participantChanged?.(p);
      }
    });
    socket.on('participant-left', (msg) => {
      if (msg && typeof msg.id === 'string') this.removeParticipant(msg.id);
    });
    socket.on('producer-added', (msg) => {
      if (!msg || msg.participantId === this.participantId) return;
      const p = this.ensureParticipant(msg.participantId);
      p.producers.set(msg.id, { id: msg.id, kind: msg.kind, muted: false });
      this.handlers.participantChanged?.(p);
    });
    socket.on('producer-removed', (msg) => {
      if (!msg) return;
      const p = this.participants.get(msg.participantId);
      if (!p) return;
      p.producers.delete(msg.id);
      for (const kind of ['audio', 'video'] as const) {
        if (p.trackProducer[kind] === msg.id) {
          for (const t of p.stream.getTracks().filter((t) => t.kind === kind)) p.stream.removeTrack(t);
          delete p.trackProducer[kind];
        }
      }
      this.handlers.participantChanged?.(p);
    });
    socket.on('producer-muted', (msg) => {
      if (!msg) return;
      const p = this.participants.get(msg.participantId);
      if (!p) return;
      const prod = p.producers.get(msg.id);
      if (prod) prod.muted = !!msg.muted;
      else p.producers.set(msg.id, { id: msg.id, kind: msg.kind, muted: !!msg.muted });
      this.handlers.participantChanged?.(p);
    });
    socket.on('layers', (msg) => {
      if (!msg || typeof msg.producerId !== 'string' || !Array.isArray(msg.active)) return;
      this.layersWanted.set(msg.producerId, msg.active.filter((rid): rid is string => typeof rid === 'string'));
      this.applyLayers(msg.producerId);
    });
    socket.on('stage-ended', () => {
      // The `closed` that follows must not bring us back: leave for good.
      void this.leave().then(() => this.handlers.stageEnded?.());
    });
    socket.on('closed', (msg) => {
      const reason = typeof msg?.reason === 'string' ? msg.reason : 'unknown reason';
      console.warn('rostrum: removed from the room by the server:', reason);
      void this.restart(this.gen, `removed by the server: ${reason}`);
    });
    socket.on('error', (msg) => {
      console.warn('rostrum: server error', msg);
      // A viewport report can cross the removal of its producer: nothing the user needs to see.
      if (msg?.code === 'unknown-producer') return;
      if (msg && typeof msg.message === 'string') this.handlers.notice?.(`Server: ${msg.message}`);
    });
    return socket;
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.removeAllListeners();
      socket.disconnect();
    }
  }

  // ---- session -----------------------------------------------------------------------------------------

  /** Joins and publishes on the current connection, with fresh peer connections. */
  private async startSession(): Promise<void> {
    const socket = this.socket;
    if (!socket || !this.room || !this.name) return;
    const gen = ++this.gen;
    this.sessions++;
    this.clearMediaTimer();
    this.teardownMedia();
    this.participantId = null;
    if (this.state !== 'reconnecting') this.setState('joining', null);
    try {
      const res = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('join', { room: this.room, name: this.name });
      if (gen !== this.gen) return;
      const err = ackError(res, 'join');
      if (err || !res.ok) throw err;
      this.timings.joinAcked = performance.now();
      this.participantId = res.participantId;
      this.before = new Set((res.participants ?? []).map((p: ParticipantInfo) => p?.id).filter((id: unknown): id is string => typeof id === 'string'));
      this.iceServers = Array.isArray(res.iceServers) ? res.iceServers : [];
      for (const info of res.participants ?? []) this.addFromJoin(info);

      await this.publish(gen);
      if (gen !== this.gen) return;
      this.timings.published = performance.now();
      for (const kind of ['audio', 'video'] as const) {
        if (this.muted[kind] && this.producers.some((p) => p.kind === kind)) await this.sendMute(kind, true);
      }
      if (gen !== this.gen) return;
      this.timings.joined = performance.now();
      this.setState('joined', null);
    } catch (e) {
      if (gen !== this.gen) return;
      if (!socket.connected) return; // the disconnect handler takes it from here
      const err = e instanceof StageError ? e : new StageError('join-failed', `Joining failed: ${describe(e)}`);
      this.fail(err.code, err.message);
    }
  }

  private async publish(gen: number): Promise<void> {
    const tracks = this.localStream?.getTracks().filter((t) => t.readyState === 'live') ?? [];
    this.producers = [];
    if (tracks.length === 0) return; // listen-only
    const pc = new RTCPeerConnection(this.pcConfig());
    this.sendPc = pc;
    this.watchMedia(pc, gen);
    for (const kind of ['audio', 'video'] as const) {
      const track = tracks.find((t) => t.kind === kind);
      if (!track) continue;
      const init: RTCRtpTransceiverInit = { direction: 'sendonly', streams: this.localStream ? [this.localStream] : [] };
      if (kind === 'video' && this.simulcast) init.sendEncodings = SIMULCAST_RIDS.map((rid) => ({ rid, ...LAYER_ENCODING[rid] }));
      pc.addTransceiver(track, init);
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gatheringComplete(pc);
    if (gen !== this.gen) return;
    const sdp = pc.localDescription?.sdp ?? offer.sdp ?? '';
    this.trace('publish offer', sdp);
    const res = await this.socket!.timeout(ACK_TIMEOUT_MS).emitWithAck('publish', { sdp });
    if (gen !== this.gen) return;
    const err = ackError(res, 'publish');
    if (err || !res.ok) throw err;
    this.trace('publish answer', res.sdp, JSON.stringify(res.producers));
    await pc.setRemoteDescription({ type: 'answer', sdp: res.sdp });
    const camera = pc.getTransceivers().find((t) => t.sender.track?.kind === 'video')?.sender;
    if (this.simulcast && camera) {
      const params = camera.getParameters();
      this.simulcasting = params.encodings.length > 1;
      if (!this.simulcasting) {
        // A server without simulcast leaves only the first, smallest layer: send that one at full size.
        for (const e of params.encodings) {
          e.scaleResolutionDownBy = 1;
          delete e.maxBitrate;
        }
        await camera.setParameters(params);
        if (gen !== this.gen) return;
      }
    }
    this.producers = Array.isArray(res.producers) ? res.producers : [];
    for (const p of this.producers) if (this.layersWanted.has(p.id)) this.applyLayers(p.id);
  }

  /** Encodes just the layers of our producer that the last `layers` notice asks for (no-op unless simulcasting). */
  private applyLayers(producerId: string): void {
    const gen = this.gen;
    this.layersChain = this.layersChain
      .then(async () => {
        const wanted = this.layersWanted.get(producerId);
        const sender = this.simulcasting ? this.videoSender(producerId) : null;
        if (gen !== this.gen || !wanted || !sender) return;
        const params = sender.getParameters();
        let on = params.encodings.map((e) => !!e.rid && wanted.includes(e.rid));
        // Never all off: the smallest layer keeps the stream going for a consumer that needs it again.
        if (!on.includes(true)) on = params.encodings.map((e) => e.rid === SIMULCAST_RIDS[0]);
        if (params.encodings.every((e, i) => (e.active !== false) === on[i])) return;
        params.encodings.forEach((e, i) => (e.active = on[i]));
        await sender.setParameters(params);
        this.trace('layers', producerId, JSON.stringify(wanted));
      })
      .catch((err) => {
        if (gen === this.gen) console.warn('rostrum: switching simulcast layers failed:', describe(err));
      });
  }

  /** The sender of our video producer `producerId` (by the mid the `publish` ack gave it). */
  private videoSender(producerId: string): RTCRtpSender | null {
    const prod = this.producers.find((p) => p.id === producerId && p.kind === 'video');
    return (prod && this.sendPc?.getTransceivers().find((t) => t.mid === prod.mid)?.sender) || null;
  }

  private sendViewport(producerId: string, st: ViewportState): void {
    const v = st.pending;
    st.pending = null;
    const socket = this.socket;
    // Off the stage the report has no producer to refer to; tiles report again once back.
    if (!v || !socket?.connected || !this.participantId) return;
    st.sent = v;
    st.sentAt = performance.now();
    this.viewportReports++;
    // Fire and forget: a server without viewport support never acks, which costs nothing but a trace.
    socket.timeout(ACK_TIMEOUT_MS).emit('viewport', { producerId, ...v }, (err, res) => {
      if (err) this.trace('viewport: no ack', producerId);
      else if (res?.ok !== true) this.trace('viewport refused', producerId, JSON.stringify(res));
    });
  }

  private async handleOffer(gen: number, msg: OfferEvent): Promise<void> {
    if (gen !== this.gen || !this.socket) return;
    if (!msg || typeof msg.sdp !== 'string') throw new Error('offer without sdp');
    this.timings.firstOffer ??= performance.now();
    this.trace('recv offer', msg.sdp, JSON.stringify(msg.tracks));
    let pc = this.recvPc;
    if (!pc) {
      pc = new RTCPeerConnection(this.pcConfig());
      this.recvPc = pc;
      this.watchMedia(pc, gen);
      pc.addEventListener('track', (ev) => {
        if (gen !== this.gen) return;
        const mid = ev.transceiver?.mid;
        const info = mid != null ? this.tracks.get(mid) : undefined;
        if (info) this.attach(info, ev.track);
      });
    }
    this.tracks = new Map((Array.isArray(msg.tracks) ? msg.tracks : []).map((t) => [String(t.mid), t]));
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    if (gen !== this.gen) return;
    this.reconcileTracks(pc);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await gatheringComplete(pc);
    if (gen !== this.gen) return;
    const sdp = pc.localDescription?.sdp ?? answer.sdp ?? '';
    this.trace('recv answer', sdp);
    const res = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck('answer', { sdp });
    const err = ackError(res, 'answer');
    if (err) console.warn('rostrum: answer rejected', err.code, err.message);
  }

  /** Puts every receiving transceiver's track on the tile of the participant its mid belongs to. */
  private reconcileTracks(pc: RTCPeerConnection): void {
    const live = new Set<MediaStreamTrack>();
    for (const t of pc.getTransceivers()) {
      const info = t.mid != null ? this.tracks.get(t.mid) : undefined;
      const stopped = t.currentDirection === 'stopped' || t.direction === 'stopped';
      if (info && !stopped) {
        this.attach(info, t.receiver.track);
        live.add(t.receiver.track);
      }
    }
    // Tracks of m-lines that went away (stopped, or absent from `tracks`).
    for (const p of this.participants.values()) {
      let changed = false;
      for (const track of p.stream.getTracks()) {
        if (!live.has(track)) {
          p.stream.removeTrack(track);
          delete p.trackProducer[track.kind as Kind];
          changed = true;
        }
      }
      if (changed) this.handlers.participantChanged?.(p);
    }
  }

  private attach(info: TrackInfo, track: MediaStreamTrack): void {
    if (info.participantId === this.participantId) return;
    const p = this.ensureParticipant(info.participantId);
    const kind = info.kind;
    if (!p.producers.has(info.producerId)) p.producers.set(info.producerId, { id: info.producerId, kind, muted: false });
    const current = p.stream.getTracks().filter((t) => t.kind === kind);
    if (current.length === 1 && current[0] === track && p.trackProducer[kind] === info.producerId) return;
    for (const t of current) if (t !== track) p.stream.removeTrack(t);
    if (!current.includes(track)) p.stream.addTrack(track);
    p.trackProducer[kind] = info.producerId;
    this.handlers.participantChanged?.(p);
  }

  private addFromJoin(info: ParticipantInfo): void {
    if (!info || typeof info.id !== 'string' || info.id === this.participantId) return;
    const p = this.ensureParticipant(info.id, info.name);
    if (typeof info.name === 'string') p.name = info.name;
    for (const prod of info.producers ?? []) p.producers.set(prod.id, { id: prod.id, kind: prod.kind, muted: !!prod.muted });
    this.handlers.participantChanged?.(p);
  }

  private ensureParticipant(id: string, name?: string): RemoteParticipant {
    let p = this.participants.get(id);
    if (!p) {
      p = { id, name: typeof name === 'string' ? name : '', stream: new MediaStream(), producers: new Map(), trackProducer: {} };
      this.participants.set(id, p);
      this.handlers.participantAdded?.(p);
    }
    return p;
  }

  private removeParticipant(id: string): void {
    const p = this.participants.get(id);
    if (!p) return;
    this.participants.delete(id);
    for (const t of p.stream.getTracks()) p.stream.removeTrack(t);
    this.handlers.participantRemoved?.(id);
  }

  private async sendMute(kind: Kind, muted: boolean): Promise<void> {
    const socket = this.socket;
    if (!socket?.connected) return;
    try {
      const res = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('mute', { kind, muted });
      const err = ackError(res, 'mute');
      if (err) this.handlers.notice?.(`Could not ${muted ? 'mute' : 'unmute'} ${kind}: ${err.message}`);
    } catch (e) {
      this.handlers.notice?.(`Could not ${muted ? 'mute' : 'unmute'} ${kind}: ${describe(e)}`);
    }
  }

  /** If a media connection fails while the socket stays up, start over on the same socket. */
  private watchMedia(pc: RTCPeerConnection, gen: number): void {
    pc.addEventListener('connectionstatechange', () => {
      if (gen !== this.gen) return;
      const st = pc.connectionState;
      if (st === 'failed') {
        void this.restart(gen, 'media connection failed');
      } else if (st === 'disconnected') {
        this.clearMediaTimer();
        this.mediaTimer = setTimeout(() => {
          if (gen === this.gen && pc.connectionState === 'disconnected') void this.restart(gen, 'media connection lost');
        }, MEDIA_DISCONNECTED_GRACE_MS);
      } else if (st === 'connected') {
        this.clearMediaTimer();
      }
    });
  }

  private async restart(gen: number, why: string): Promise<void> {
    const socket = this.socket;
    if (gen !== this.gen || !this.wanted || !socket?.connected) return;
    const now = performance.now();
    this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    this.restarts.push(now);
    if (this.restarts.length > MAX_RESTARTS) {
      this.fail('media-failed', `The media connection keeps failing (${why}). Check your network and join again.`);
      return;
    }
    console.warn(`rostrum: restarting the session (${why})`);
    this.gen++;
    this.clearMediaTimer();
    this.setState('reconnecting', null);
    this.handlers.notice?.(`Reconnecting… (${why})`);
    this.teardownMedia();
    try {
      await socket.timeout(2000).emitWithAck('leave', {});
    } catch {
      /* the server may have dropped us already */
    }
    if (this.wanted && socket === this.socket && socket.connected) await this.startSession();
  }

  private teardownMedia(): void {
    this.sendPc?.close();
    this.recvPc?.close();
    this.sendPc = null;
    this.recvPc = null;
    this.tracks = new Map();
    this.producers = [];
    this.simulcasting = false;
    this.offerChain = Promise.resolve();
    this.layersChain = Promise.resolve();
    this.layersWanted.clear();
    for (const id of [...this.viewports.keys()]) this.forgetViewport(id);
    for (const id of [...this.participants.keys()]) this.removeParticipant(id);
  }

  private fail(code: string, message: string): void {
    this.wanted = false;
    this.gen++;
    this.clearMediaTimer();
    this.dropSocket();
    this.teardownMedia();
    this.participantId = null;
    this.setState('error', { code, message });
  }

  private clearMediaTimer(): void {
    if (this.mediaTimer) clearTimeout(this.mediaTimer);
    this.mediaTimer = null;
  }

  private setState(state: StageState, error: ProtocolError | null): void {
    this.state = state;
    this.error = error;
    this.handlers.state?.(state, error);
  }

  private pcConfig(): RTCConfiguration {
    return { iceServers: this.iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
  }

  private localTracks(kind: Kind): MediaStreamTrack[] {
    return this.localStream?.getTracks().filter((t) => t.kind === kind) ?? [];
  }
}

export function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
