// Types of the Rostrum Socket.IO signaling protocol (docs/protocol.md).

export type Kind = 'audio' | 'video';

export interface ProtocolError {
  code: string;
  message: string;
}

export type Ack<T extends object = object> = ({ ok: true } & T) | { ok: false; error: ProtocolError };

export interface ProducerInfo {
  id: string;
  kind: Kind;
  muted: boolean;
}

export interface ParticipantInfo {
  id: string;
  name: string;
  producers: ProducerInfo[];
}

export interface JoinRequest {
  room: string;
  name: string;
}

export type JoinAck = Ack<{
  participantId: string;
  participants: ParticipantInfo[];
  /** Who can end the stage: the participant on stage the longest. */
  hostId?: string;
  iceServers?: RTCIceServer[];
}>;

export type PublishAck = Ack<{
  sdp: string;
  producers: Array<{ id: string; kind: Kind; mid: string }>;
}>;

export interface TrackInfo {
  mid: string;
  producerId: string;
  participantId: string;
  kind: Kind;
}

/** Simulcast layers of a camera, smallest first: about 320×180, 640×360 and 1280×720. */
export const SIMULCAST_RIDS = ['l', 'm', 'h'] as const;
export type SimulcastRid = (typeof SIMULCAST_RIDS)[number];

/** How large a received video is drawn, in device pixels, and whether anyone can see it. */
export interface ViewportReport {
  producerId: string;
  width: number;
  height: number;
  visible: boolean;
}

export interface OfferEvent {
  sdp: string;
  tracks: TrackInfo[];
}

export interface ServerToClientEvents {
  offer: (msg: OfferEvent) => void;
  'participant-joined': (msg: { id: string; name: string }) => void;
  'participant-left': (msg: { id: string }) => void;
  'producer-added': (msg: { id: string; participantId: string; kind: Kind }) => void;
  'producer-removed': (msg: { id: string; participantId: string }) => void;
  'producer-muted': (msg: { id: string; participantId: string; kind: Kind; muted: boolean }) => void;
  error: (msg: ProtocolError) => void;
  /** The server removed this participant (media timeout, transport failure): join again to come back. */
  closed: (msg: { reason: string }) => void;
  /** The host ended the stage for everyone (the broadcast ends too). */
  'stage-ended': (msg: { by: string }) => void;
  /** Dynacast: the rids of our producer that some consumer needs; the others may stop encoding. */
  layers: (msg: { producerId: string; active: string[] }) => void;
}

export interface ClientToServerEvents {
  join: (req: JoinRequest, ack: (res: JoinAck) => void) => void;
  publish: (req: { sdp: string }, ack: (res: PublishAck) => void) => void;
  answer: (req: { sdp: string }, ack: (res: Ack) => void) => void;
  mute: (req: { kind: Kind; muted: boolean }, ack: (res: Ack) => void) => void;
  leave: (req: Record<string, never>, ack: (res: Ack) => void) => void;
  'end-stage': (req: Record<string, never>, ack: (res: Ack) => void) => void;
  viewport: (req: ViewportReport, ack: (res: Ack) => void) => void;
}

/** Room names: 1–64 characters of [A-Za-z0-9_-]. */
export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function validName(name: string): boolean {
  const n = name.trim();
  return n.length >= 1 && [...n].length <= 64;
}
