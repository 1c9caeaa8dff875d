//! `Router`: one room, as a sans-IO state machine.
//!
//! Inputs: commands (join, publish, answer, mute, leave, WHEP), datagrams for one of its
//! transports, and timeouts. Outputs ([`Router::poll_output`]): datagrams to transmit, notices
//! for signaling, transports opened/closed (for the demultiplexer) and the next timeout.
//! No socket, clock or task inside: tests drive it with str0m clients in memory.

mod consumer;
mod plain;
mod producer;
mod transport;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use str0m::bwe::Bitrate;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid, Rids};
use str0m::net::{Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output};
use tracing::{debug, info, warn};

use crate::error::SfuError;
use crate::ids::{ConsumerId, ParticipantId, ProducerId, RoomId, TransportId};
use crate::simulcast::{self, InboundLayers, Layer, VideoCodec, VideoOut};
use consumer::{Consumer, ConsumerState};
use plain::PlainConsumer;
pub use plain::PlainConsumerInfo;
use producer::{KeyframeLimiter, Producer};
use transport::{matching_pt, offered_mids, WebRtcTransport};
pub use transport::{parse_offer, TransportOwner, TransportRole};

/// Options of one router (room). Defaults suit a public stage.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// Most participants (publishers) on the stage at once; the next join gets `room-full`.
    pub max_participants: usize,
    /// Host candidates of the node's media port (UDP and passive TCP) put in every answer/offer.
    pub candidates: Vec<Candidate>,
    /// Keyframe requests to one publisher are at least this far apart.
    pub keyframe_min_interval: Duration,
    /// A connected transport silent this long is dead (tab killed, network gone).
    pub inactivity_timeout: Duration,
    /// A transport that never connects is dropped after this long.
    pub connect_timeout: Duration,
    /// Most m-lines accepted in one client offer.
    pub max_tracks_per_offer: usize,
    /// Estimate subscribers' downlinks (str0m TWCC) and lower the simulcast layers they cannot
    /// carry. Off by default: with it on, str0m's pacer starved a WHEP viewer's audio (28–38 of
    /// ~200 packets in 4 s in `whip_whep.rs`), not understood yet.
    pub bandwidth_estimation: bool,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            max_participants: 9,
            candidates: Vec::new(),
            keyframe_min_interval: Duration::from_millis(500),
            inactivity_timeout: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(20),
            max_tracks_per_offer: 16,
            bandwidth_estimation: false,
        }
    }
}

/// Who a notice is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every participant of the room, but one.
    Room { except: Option<ParticipantId> },
    /// One participant.
    Participant(ParticipantId),
}

/// What kind of media a producer carries, as signaling spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

impl From<MediaKind> for Kind {
    fn from(k: MediaKind) -> Self {
        match k {
            MediaKind::Audio => Kind::Audio,
            MediaKind::Video => Kind::Video,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerInfo {
    pub id: ProducerId,
    pub kind: Kind,
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: String,
    pub producers: Vec<ProducerInfo>,
}

/// A producer as seen from outside the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerSummary {
    pub id: ProducerId,
    pub participant_id: ParticipantId,
    pub kind: Kind,
    pub muted: bool,
}

/// One m-line of a receive-transport offer and the producer it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    pub mid: String,
    pub producer_id: ProducerId,
    pub participant_id: ParticipantId,
    pub kind: Kind,
}

/// Notices for signaling; names and payloads are those of docs/protocol.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", content = "data", rename_all = "kebab-case")]
pub enum Notice {
    ParticipantJoined {
        id: ParticipantId,
        name: String,
    },
    ParticipantLeft {
        id: ParticipantId,
    },
    #[serde(rename_all = "camelCase")]
    ProducerAdded {
        id: ProducerId,
        participant_id: ParticipantId,
        kind: Kind,
    },
    #[serde(rename_all = "camelCase")]
    ProducerRemoved {
        id: ProducerId,
        participant_id: ParticipantId,
    },
    #[serde(rename_all = "camelCase")]
    ProducerMuted {
        id: ProducerId,
        participant_id: ParticipantId,
        kind: Kind,
        muted: bool,
    },
    Offer {
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
    /// To a simulcast publisher: the layers (rids) someone consumes; it may stop encoding the
    /// others (dynacast).
    #[serde(rename_all = "camelCase")]
    Layers {
        producer_id: ProducerId,
        active: Vec<String>,
    },
    /// The host ended the stage: everyone is removed and the broadcast ends now.
    StageEnded {
        by: ParticipantId,
    },
    /// The server removed this participant (media timeout, transport failure): its seat is gone
    /// and the client must join again to come back.
    Closed {
        reason: String,
    },
}

impl Notice {
    /// The Socket.IO event name.
    pub fn event_name(&self) -> &'static str {
        match self {
            Notice::ParticipantJoined { .. } => "participant-joined",
            Notice::ParticipantLeft { .. } => "participant-left",
            Notice::ProducerAdded { .. } => "producer-added",
            Notice::ProducerRemoved { .. } => "producer-removed",
            Notice::ProducerMuted { .. } => "producer-muted",
            Notice::Offer { .. } => "offer",
            Notice::Closed { .. } => "closed",
            Notice::StageEnded { .. } => "stage-ended",
            Notice::Layers { .. } => "layers",
        }
    }
}

/// What the router asks its driver to do.
#[derive(Debug)]
pub enum RouterOutput {
    /// Send this datagram (or TCP frame) for this transport.
    Transmit(TransportId, Transmit),
    /// Tell these participants.
    Notify(Audience, Notice),
    /// Route datagrams whose STUN username starts with `ufrag` to this transport.
    TransportOpened(TransportId, String),
    /// Forget this transport in the demultiplexer.
    TransportClosed(TransportId),
    /// A participant left (asked to, timed out or failed); the driver drops its mailbox.
    ParticipantGone(ParticipantId),
    /// Send this plain RTP/RTCP datagram from the plain transport's socket.
    PlainTransmit(TransportId, SocketAddr, Vec<u8>),
    /// Nothing more to do before this instant.
    Timeout(Instant),
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RouterStats {
    pub rtp_in: u64,
    pub rtp_forwarded: u64,
    pub bytes_forwarded: u64,
    pub keyframe_requests: u64,
    pub transports_timed_out: u64,
    /// Simulcast layer switches done by video consumers.
    pub layer_switches: u64,
}

/// One video consumer's simulcast state, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLayers {
    pub consumer: String,
    pub producer: ProducerId,
    /// Layers the producer has (1 without simulcast).
    pub layers: usize,
    /// Being forwarded (index in the publisher's rid order), `None` before the first keyframe.
    pub current: Option<Layer>,
    pub target: Option<Layer>,
    /// Frame height of the current layer (0 unknown).
    pub height: u32,
    pub switches: u64,
    pub paused: bool,
    /// Its share of the subscriber's downlink estimate (bits per second), if known.
    pub estimate: Option<u64>,
}

impl ConsumerLayers {
    fn of(consumer: String, pr: &Producer, v: &VideoOut) -> Self {
        let infos = pr.layers.infos();
        let current = v.selector.current();
        ConsumerLayers {
            consumer,
            producer: pr.id,
            layers: infos.len(),
            current,
            target: v.selector.target(infos),
            height: current
                .and_then(|l| infos.get(l as usize))
                .map_or(0, |i| i.height),
            switches: v.selector.switches(),
            paused: v.selector.is_paused(),
            estimate: v.selector.estimate(),
        }
    }
}

/// Whether a participant is a person on `/stream` (receives everyone) or a WHIP ingest (sends only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantKind {
    Stage,
    Whip,
}

struct Participant {
    name: String,
    /// Join order: the stage (and the broadcast grid) seats people first come, first served.
    seq: u64,
    send: Option<TransportId>,
    recv: Option<TransportId>,
    producers: Vec<ProducerId>,
}

/// Result of a join.
#[derive(Debug, Clone)]
pub struct Joined {
    pub participant_id: ParticipantId,
    /// Everyone already there, in join order.
    pub others: Vec<ParticipantInfo>,
    /// Who can end the stage: the participant on stage the longest (maybe this one).
    pub host: ParticipantId,
}

/// Result of a publish.
#[derive(Debug, Clone)]
pub struct Published {
    pub answer: String,
    pub producers: Vec<(ProducerId, Kind, String)>,
}

pub struct Router {
    room: RoomId,
    opts: RouterOptions,
    participants: BTreeMap<ParticipantId, Participant>,
    /// Join counter behind [`Participant::seq`].
    next_seq: u64,
    transports: HashMap<TransportId, WebRtcTransport>,
    producers: HashMap<ProducerId, Producer>,
    consumers: HashMap<ConsumerId, Consumer>,
    producer_by_mid: HashMap<(TransportId, Mid), ProducerId>,
    consumer_by_mid: HashMap<(TransportId, Mid), ConsumerId>,
    /// WHEP transports: m-lines offered by the player not yet carrying a producer.
    whep_free_mids: HashMap<TransportId, Vec<(Mid, MediaKind)>>,
    /// Plain-RTP consumers (towards the mixer), by their transport id.
    plain: HashMap<TransportId, PlainConsumer>,
    out: VecDeque<RouterOutput>,
    /// Transports with output to drain (see [`mark`]).
    dirty: Vec<TransportId>,
    stats: RouterStats,
    last_liveness_check: Option<Instant>,
    /// Origin of the microsecond clock the simulcast state machines use.
    epoch: Option<Instant>,
}

/// Label of the data channel that anchors every receive transport's BUNDLE group.
pub const CONTROL_CHANNEL: &str = "rostrum";

/// The `why` of a leave the participant asked for (no `closed` notice is sent back).
pub const ASKED_TO_LEAVE: &str = "asked to leave";

const LIVENESS_TICK: Duration = Duration::from_millis(250);

/// How often plain consumers get an RTCP sender report.
const SR_INTERVAL: Duration = Duration::from_secs(1);

/// Flag a transport for draining, once: `drive` then visits only transports with output, not
/// every transport of the room per packet.
fn mark(list: &mut Vec<TransportId>, t: &mut WebRtcTransport) {
    if !t.dirty {
        t.dirty = true;
        list.push(t.id);
    }
}

/// What the forwarding path knows of one incoming packet besides the packet.
struct PacketAt {
    layer: Layer,
    keyframe: bool,
    /// Arrival, on the simulcast clock.
    at_us: u64,
    clock: u32,
}

/// Where one packet lands in one consumer's stream, or `None` when it is not for it. Video goes
/// through the consumer's layer choice and rewriting (the layer it waits a keyframe of is added
/// to `want_keyframes`, switches to `switches`); audio is rebased so the consumer's sequence
/// numbers start at 1 (rollover counter 0), whatever the producer's were when it joined.
fn place(
    video: Option<&mut VideoOut>,
    seq_base: &mut Option<u64>,
    pkt: &RtpPacket,
    at: &PacketAt,
    layers: &[simulcast::LayerInfo],
    want_keyframes: &mut u8,
    switches: &mut u64,
) -> Option<(u64, u32)> {
    let Some(v) = video else {
        let base = *seq_base.get_or_insert(*pkt.seq_no);
        let seq = (*pkt.seq_no + 1).checked_sub(base)?;
        return Some((seq, pkt.header.timestamp));
    };
    let before = v.selector.switches();
    let out = v.on_packet(
        at.layer,
        at.keyframe,
        layers,
        *pkt.seq_no,
        pkt.header.timestamp,
        at.at_us,
        at.clock,
    );
    *switches += v.selector.switches() - before;
    if let Some(l) = v.selector.wants_keyframe(layers) {
        *want_keyframes |= 1 << l.min(7);
    }
    out
}

impl Router {
    pub fn new(room: RoomId, opts: RouterOptions) -> Self {
        Router {
            room,
            opts,
            participants: BTreeMap::new(),
            next_seq: 0,
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            producer_by_mid: HashMap::new(),
            consumer_by_mid: HashMap::new(),
            whep_free_mids: HashMap::new(),
            plain: HashMap::new(),
            out: VecDeque::new(),
            dirty: Vec::new(),
            stats: RouterStats::default(),
            last_liveness_check: None,
            epoch: None,
        }
    }

    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// Counters since the last call (the node adds them to its monotonic totals, so a room
    /// that closes never makes a counter go backwards).
    pub fn take_stats(&mut self) -> RouterStats {
        std::mem::take(&mut self.stats)
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// A room with nobody in it and no viewers can be dropped by its owner.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty() && self.transports.is_empty() && self.plain.is_empty()
    }

    pub fn participant_ids(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.keys().copied()
    }

    /// Find a participant by id text or, failing that, by a unique display name.
    pub fn find_participant(&self, key: &str) -> Option<ParticipantId> {
        if let Ok(id) = key.parse::<ParticipantId>() {
            if self.participants.contains_key(&id) {
                return Some(id);
            }
        }
        let mut named = self
            .participants
            .iter()
            .filter(|(_, p)| p.name == key)
            .map(|(id, _)| *id);
        match (named.next(), named.next()) {
            (Some(id), None) => Some(id),
            _ => None,
        }
    }

    fn info(&self, id: ParticipantId, p: &Participant) -> ParticipantInfo {
        ParticipantInfo {
            id,
            name: p.name.clone(),
            producers: p
                .producers
                .iter()
                .filter_map(|pr| self.producers.get(pr))
                .map(|pr| ProducerInfo {
                    id: pr.id,
                    kind: pr.kind.into(),
                    muted: pr.muted,
                })
                .collect(),
        }
    }

    // ---------------------------------------------------------------- commands

    /// Put a participant on the stage. A stage participant gets a receive transport and a
    /// consumer of every producer already there; the server offers it as soon as there is one.
    pub fn join(
        &mut self,
        now: Instant,
        name: &str,
        kind: ParticipantKind,
    ) -> Result<Joined, SfuError> {
        let name = crate::ids::clean_display_name(name)?;
        if self.participants.len() >= self.opts.max_participants {
            return Err(SfuError::RoomFull(self.opts.max_participants));
        }
        let id = ParticipantId::random();
        self.next_seq += 1;
        let others = self.roster();
        let recv = (kind == ParticipantKind::Stage).then(|| {
            self.open_transport(now, TransportRole::Recv, TransportOwner::Participant(id))
        });
        self.participants.insert(
            id,
            Participant {
                name: name.clone(),
                seq: self.next_seq,
                send: None,
                recv,
                producers: Vec::new(),
            },
        );
        if let Some(recv) = recv {
            let existing: Vec<ProducerId> = self.producers.keys().copied().collect();
            for pr in existing {
                self.add_consumer(pr, recv);
            }
            self.negotiate(recv);
        }
        info!(room = %self.room, participant = %id, %name, "joined");
        self.notify(
            Audience::Room { except: Some(id) },
            Notice::ParticipantJoined { id, name },
        );
        Ok(Joined {
            participant_id: id,
            host: self.host().unwrap_or(id),
            others,
        })
    }

    /// Accept an offer on the participant's send transport (created on first use).
    pub fn publish(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        sdp: &str,
    ) -> Result<Published, SfuError> {
        let p = self
            .participants
            .get(&pid)
            .ok_or(SfuError::UnknownParticipant)?;
        let existing = p.send;
        let max = self.opts.max_tracks_per_offer;
        parse_offer(sdp, max)?;
        let tid = match existing {
            Some(t) => t,
            None => {
                let t =
                    self.open_transport(now, TransportRole::Send, TransportOwner::Participant(pid));
                if let Some(p) = self.participants.get_mut(&pid) {
                    p.send = Some(t);
                }
                t
            }
        };
        let t = self
            .transports
            .get_mut(&tid)
            .ok_or(SfuError::UnknownParticipant)?;
        let answer = t.accept_offer(sdp, max)?;
        mark(&mut self.dirty, t);
        let incoming: Vec<(Mid, MediaKind, Vec<Rid>)> = offered_mids(sdp)
            .into_iter()
            .filter_map(|mid| t.rtc.media(mid).map(|m| (mid, m)))
            .filter(|(_, m)| m.direction().is_receiving())
            .map(|(mid, m)| {
                let rids = match m.rids_rx() {
                    Rids::Specific(v) if m.kind() == MediaKind::Video && v.len() > 1 => v.clone(),
                    _ => Vec::new(),
                };
                (mid, m.kind(), rids)
            })
            .collect();
        for (mid, kind, rids) in incoming {
            self.add_producer(now, pid, tid, mid, kind, rids);
        }
        self.negotiate_all();
        self.drive(now);
        let producers = self
            .participants
            .get(&pid)
            .map(|p| {
                p.producers
                    .iter()
                    .filter_map(|id| self.producers.get(id))
                    .map(|pr| (pr.id, pr.kind.into(), pr.mid.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Published { answer, producers })
    }

    /// The client's answer to our latest offer on its receive transport.
    pub fn answer(&mut self, now: Instant, pid: ParticipantId, sdp: &str) -> Result<(), SfuError> {
        let tid = self
            .participants
            .get(&pid)
            .and_then(|p| p.recv)
            .ok_or(SfuError::UnknownParticipant)?;
        let t = self
            .transports
            .get_mut(&tid)
            .ok_or(SfuError::UnknownParticipant)?;
        let Some((pending, added)) = t.pending.take() else {
            return Err(SfuError::NoPendingOffer);
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                // Keep the offer pending: the client may still send a good answer.
                t.pending = Some((pending, added));
                return Err(SfuError::BadSdp(e.to_string()));
            }
        };
        if let Err(e) = t.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is void: queue its consumers again for a fresh one.
            for cid in &added {
                if let Some(c) = self.consumers.get_mut(cid) {
                    if let Some(mid) = c.mid.take() {
                        self.consumer_by_mid.remove(&(tid, mid));
                    }
                    c.state = ConsumerState::Queued;
                    t.queued_add.push(*cid);
                }
            }
            self.negotiate(tid);
            return Err(SfuError::SdpRejected(e.to_string()));
        }
        mark(&mut self.dirty, t);
        let mut keyframes = Vec::new();
        for cid in added {
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.state = ConsumerState::Active;
                keyframes.push(c.producer);
            }
        }
        for pr in keyframes {
            self.request_keyframe(now, pr);
        }
        self.negotiate(tid);
        self.drive(now);
        Ok(())
    }

    /// Stop or resume forwarding a participant's producer of one kind.
    pub fn mute(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        kind: Kind,
        muted: bool,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get(&pid)
            .ok_or(SfuError::UnknownParticipant)?;
        let ids: Vec<ProducerId> = p.producers.clone();
        for id in ids {
            let Some(pr) = self.producers.get_mut(&id) else {
                continue;
            };
            if Kind::from(pr.kind) != kind || pr.muted == muted {
                continue;
            }
            pr.muted = muted;
            self.notify(
                Audience::Room { except: Some(pid) },
                Notice::ProducerMuted {
                    id,
                    participant_id: pid,
                    kind,
                    muted,
                },
            );
            if !muted {
                self.request_keyframe(now, id);
            }
        }
        self.drive(now);
        Ok(())
    }

    /// Remove a participant and everything it owns; everyone else is told.
    pub fn leave(&mut self, pid: ParticipantId, why: &str) {
        let Some(p) = self.participants.remove(&pid) else {
            return;
        };
        info!(room = %self.room, participant = %pid, name = %p.name, why, "left");
        if why != ASKED_TO_LEAVE {
            self.notify(
                Audience::Participant(pid),
                Notice::Closed {
                    reason: why.to_string(),
                },
            );
        }
        for pr in p.producers {
            self.remove_producer(pr);
        }
        self.negotiate_all();
        for tid in [p.send, p.recv].into_iter().flatten() {
            self.close_transport(tid);
        }
        let viewers: Vec<TransportId> = self
            .transports
            .values()
            .filter(|t| t.owner == TransportOwner::Viewer(pid))
            .map(|t| t.id)
            .collect();
        for tid in viewers {
            self.close_transport(tid);
        }
        self.notify(
            Audience::Room { except: Some(pid) },
            Notice::ParticipantLeft { id: pid },
        );
        self.out.push_back(RouterOutput::ParticipantGone(pid));
    }

    /// Start a WHEP session watching one participant: the player offers recvonly m-lines; the
    /// first audio and first video m-line carry the participant's producers (now or when they come).
    pub fn whep(
        &mut self,
        now: Instant,
        target: ParticipantId,
        sdp: &str,
    ) -> Result<(TransportId, String), SfuError> {
        if !self.participants.contains_key(&target) {
            return Err(SfuError::UnknownParticipant);
        }
        parse_offer(sdp, self.opts.max_tracks_per_offer)?;
        let tid = self.open_transport(now, TransportRole::Whep, TransportOwner::Viewer(target));
        let max = self.opts.max_tracks_per_offer;
        let answer = match self.transports.get_mut(&tid) {
            Some(t) => t.accept_offer(sdp, max).map(|answer| {
                mark(&mut self.dirty, t);
                let free: Vec<(Mid, MediaKind)> = offered_mids(sdp)
                    .into_iter()
                    .filter_map(|mid| t.rtc.media(mid).map(|m| (mid, m)))
                    .filter(|(_, m)| m.direction().is_sending())
                    .map(|(mid, m)| (mid, m.kind()))
                    .collect();
                (answer, free)
            }),
            None => Err(SfuError::UnknownSession),
        };
        match answer {
            Ok((answer, free)) => {
                self.whep_free_mids.insert(tid, free);
                self.bind_whep(now, tid);
                self.drive(now);
                Ok((tid, answer))
            }
            Err(e) => {
                self.close_transport(tid);
                Err(e)
            }
        }
    }

    /// End a WHEP session.
    pub fn close_whep(&mut self, tid: TransportId) -> Result<(), SfuError> {
        match self.transports.get(&tid) {
            Some(t) if t.role == TransportRole::Whep => {
                self.close_transport(tid);
                Ok(())
            }
            _ => Err(SfuError::UnknownSession),
        }
    }

    // ------------------------------------------------------------- network/time

    /// A datagram the demultiplexer routed to one of our transports.
    pub fn handle_receive(&mut self, now: Instant, tid: TransportId, r: Receive) {
        let Some(t) = self.transports.get_mut(&tid) else {
            return;
        };
        if let Err(e) = t.handle_receive(now, r) {
            debug!(transport = %tid, "bad input: {e}");
        }
        mark(&mut self.dirty, t);
        self.drive(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for t in self.transports.values_mut() {
            if t.next_timeout.is_some_and(|at| at <= now) {
                if let Err(e) = t.rtc.handle_input(Input::Timeout(now)) {
                    debug!(transport = %t.id, "timeout handling failed: {e}");
                }
                mark(&mut self.dirty, t);
            }
        }
        let due: Vec<ProducerId> = self
            .producers
            .values()
            .filter(|p| {
                p.keyframes.iter().any(|k| {
                    k.due(self.opts.keyframe_min_interval)
                        .is_some_and(|at| at <= now)
                })
            })
            .map(|p| p.id)
            .collect();
        for pr in due {
            let mask = self.producers.get(&pr).map_or(0, |p| {
                p.keyframes
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| {
                        k.due(self.opts.keyframe_min_interval)
                            .is_some_and(|at| at <= now)
                    })
                    .fold(0u8, |m, (i, _)| m | (1 << i.min(7)))
            });
            self.request_keyframe_layers(now, pr, mask);
        }
        if self
            .last_liveness_check
            .is_none_or(|t| now.saturating_duration_since(t) >= LIVENESS_TICK)
        {
            self.last_liveness_check = Some(now);
            self.check_liveness(now);
            self.tick_layers(now);
        }
        self.drive(now);
    }

    pub fn poll_output(&mut self) -> RouterOutput {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut next = self
            .last_liveness_check
            .map(|t| t + LIVENESS_TICK)
            .unwrap_or_else(Instant::now);
        for t in self.transports.values() {
            if let Some(at) = t.next_timeout {
                next = next.min(at);
            }
        }
        for k in self.producers.values().flat_map(|p| p.keyframes.iter()) {
            if let Some(at) = k.due(self.opts.keyframe_min_interval) {
                next = next.min(at);
            }
        }
        RouterOutput::Timeout(next)
    }

    // ---------------------------------------------------------------- internals

    fn notify(&mut self, to: Audience, n: Notice) {
        self.out.push_back(RouterOutput::Notify(to, n));
    }

    fn open_transport(
        &mut self,
        now: Instant,
        role: TransportRole,
        owner: TransportOwner,
    ) -> TransportId {
        let id = TransportId::random();
        let bwe = self.opts.bandwidth_estimation && role != TransportRole::Send;
        let mut t = WebRtcTransport::new(id, role, owner, now, &self.opts.candidates, bwe);
        let ufrag = t.ufrag();
        mark(&mut self.dirty, &mut t);
        self.transports.insert(id, t);
        self.out.push_back(RouterOutput::TransportOpened(id, ufrag));
        id
    }

    fn close_transport(&mut self, tid: TransportId) {
        let Some(mut t) = self.transports.remove(&tid) else {
            return;
        };
        t.rtc.disconnect();
        let gone: Vec<ConsumerId> = self
            .consumers
            .values()
            .filter(|c| c.transport == tid)
            .map(|c| c.id)
            .collect();
        for cid in gone {
            if let Some(c) = self.consumers.remove(&cid) {
                if let Some(pr) = self.producers.get_mut(&c.producer) {
                    pr.consumers.retain(|x| *x != cid);
                }
            }
        }
        self.consumer_by_mid.retain(|(t, _), _| *t != tid);
        self.producer_by_mid.retain(|(t, _), _| *t != tid);
        self.whep_free_mids.remove(&tid);
        self.out.push_back(RouterOutput::TransportClosed(tid));
    }

    fn add_producer(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        tid: TransportId,
        mid: Mid,
        kind: MediaKind,
        rids: Vec<Rid>,
    ) {
        if self.producer_by_mid.contains_key(&(tid, mid)) {
            return;
        }
        let id = ProducerId::random();
        let layers = InboundLayers::new(rids.len());
        let n = layers.len();
        if !rids.is_empty() {
            info!(room = %self.room, participant = %pid, producer = %id, rids = ?rids.iter().map(|r| r.to_string()).collect::<Vec<_>>(), "simulcast producer");
        }
        self.producers.insert(
            id,
            Producer {
                id,
                participant: pid,
                transport: tid,
                mid,
                kind,
                muted: false,
                consumers: Vec::new(),
                rids,
                layers,
                keyframes: (0..n).map(|_| KeyframeLimiter::default()).collect(),
                sender_info: vec![None; n],
                needed: None,
            },
        );
        self.producer_by_mid.insert((tid, mid), id);
        if let Some(p) = self.participants.get_mut(&pid) {
            p.producers.push(id);
        }
        debug!(room = %self.room, participant = %pid, producer = %id, ?kind, "producer opened");
        self.notify(
            Audience::Room { except: Some(pid) },
            Notice::ProducerAdded {
                id,
                participant_id: pid,
                kind: kind.into(),
            },
        );
        let receivers: Vec<TransportId> = self
            .participants
            .iter()
            .filter(|(other, _)| **other != pid)
            .filter_map(|(_, p)| p.recv)
            .collect();
        for recv in receivers {
            self.add_consumer(id, recv);
        }
        let viewers: Vec<TransportId> = self
            .transports
            .values()
            .filter(|t| t.owner == TransportOwner::Viewer(pid))
            .map(|t| t.id)
            .collect();
        for v in viewers {
            self.bind_whep(now, v);
        }
    }

    fn remove_producer(&mut self, id: ProducerId) {
        let Some(pr) = self.producers.remove(&id) else {
            return;
        };
        self.producer_by_mid.remove(&(pr.transport, pr.mid));
        let plain: Vec<TransportId> = self
            .plain
            .values()
            .filter(|p| p.producer == id)
            .map(|p| p.id)
            .collect();
        for tid in plain {
            self.plain.remove(&tid);
            self.out.push_back(RouterOutput::TransportClosed(tid));
        }
        for cid in pr.consumers {
            let Some(c) = self.consumers.remove(&cid) else {
                continue;
            };
            let Some(t) = self.transports.get_mut(&c.transport) else {
                continue;
            };
            t.queued_add.retain(|x| *x != cid);
            if let Some(mid) = c.mid {
                self.consumer_by_mid.remove(&(c.transport, mid));
                match t.role {
                    TransportRole::Recv => t.queued_stop.push(mid),
                    // A WHEP m-line is the player's: free it for a later producer of this kind.
                    _ => self
                        .whep_free_mids
                        .entry(c.transport)
                        .or_default()
                        .push((mid, c.kind)),
                }
            }
        }
        self.notify(
            Audience::Room {
                except: Some(pr.participant),
            },
            Notice::ProducerRemoved {
                id,
                participant_id: pr.participant,
            },
        );
    }

    fn add_consumer(&mut self, pr: ProducerId, recv: TransportId) {
        let Some(producer) = self.producers.get_mut(&pr) else {
            return;
        };
        let id = ConsumerId::random();
        producer.consumers.push(id);
        self.consumers.insert(
            id,
            Consumer {
                id,
                producer: pr,
                transport: recv,
                kind: producer.kind,
                mid: None,
                state: ConsumerState::Queued,
                pt_map: HashMap::new(),
                seq_base: None,
                video: (producer.kind == MediaKind::Video).then(VideoOut::default),
            },
        );
        if let Some(t) = self.transports.get_mut(&recv) {
            t.queued_add.push(id);
        }
    }

    /// Attach the watched participant's producers to free m-lines of a WHEP transport.
    fn bind_whep(&mut self, now: Instant, tid: TransportId) {
        let Some(TransportOwner::Viewer(target)) = self.transports.get(&tid).map(|t| t.owner)
        else {
            return;
        };
        let producers: Vec<ProducerId> = self
            .participants
            .get(&target)
            .map(|p| p.producers.clone())
            .unwrap_or_default();
        for pr in producers {
            let already = self
                .consumers
                .values()
                .any(|c| c.transport == tid && c.producer == pr);
            let Some(kind) = self.producers.get(&pr).map(|p| p.kind) else {
                continue;
            };
            if already {
                continue;
            }
            let free = self.whep_free_mids.entry(tid).or_default();
            let Some(pos) = free.iter().position(|(_, k)| *k == kind) else {
                continue;
            };
            let (mid, _) = free.remove(pos);
            let id = ConsumerId::random();
            if let Some(p) = self.producers.get_mut(&pr) {
                p.consumers.push(id);
            }
            self.consumers.insert(
                id,
                Consumer {
                    id,
                    producer: pr,
                    transport: tid,
                    kind,
                    mid: Some(mid),
                    state: ConsumerState::Active,
                    pt_map: HashMap::new(),
                    seq_base: None,
                    video: (kind == MediaKind::Video).then(VideoOut::default),
                },
            );
            self.consumer_by_mid.insert((tid, mid), id);
            self.request_keyframe(now, pr);
        }
    }

    /// Offer on every receive transport with queued changes (after a batch of producer changes,
    /// so one publish or leave is one offer per receiver, not one per track).
    fn negotiate_all(&mut self) {
        let recvs: Vec<TransportId> = self
            .transports
            .values()
            .filter(|t| t.role == TransportRole::Recv)
            .map(|t| t.id)
            .collect();
        for tid in recvs {
            self.negotiate(tid);
        }
    }

    /// Send the next offer on a receive transport if none is outstanding and something changed.
    /// This queue is what makes simultaneous joins glare-free.
    fn negotiate(&mut self, tid: TransportId) {
        let Some(t) = self.transports.get_mut(&tid) else {
            return;
        };
        if t.role != TransportRole::Recv || t.pending.is_some() {
            return;
        }
        if t.queued_add.is_empty() && t.queued_stop.is_empty() {
            return;
        }
        let TransportOwner::Participant(owner) = t.owner else {
            return;
        };
        let adds = std::mem::take(&mut t.queued_add);
        let stops = std::mem::take(&mut t.queued_stop);
        let first_offer = !t.offered;
        t.offered = true;
        let mut api = t.rtc.sdp_api();
        if first_offer {
            // The first m-line tags the BUNDLE group: browsers tear the whole transport down when it
            // is stopped, and refuse an offer whose every m-line is stopped. A data channel m-line
            // first, never stopped, keeps consumer m-lines free to come and go.
            api.add_channel(CONTROL_CHANNEL.into());
        }
        let mut added = Vec::new();
        for cid in adds {
            let Some(c) = self.consumers.get_mut(&cid) else {
                continue;
            };
            let Some(pr) = self.producers.get(&c.producer) else {
                continue;
            };
            let mid = api.add_media(
                c.kind,
                Direction::SendOnly,
                Some(pr.participant.to_string()),
                Some(pr.id.to_string()),
                None,
            );
            c.mid = Some(mid);
            c.state = ConsumerState::Negotiating;
            self.consumer_by_mid.insert((tid, mid), cid);
            added.push(cid);
        }
        for mid in stops {
            api.stop_media(mid);
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        t.pending = Some((pending, added));
        mark(&mut self.dirty, t);
        let mut tracks: Vec<TrackInfo> = self
            .consumers
            .values()
            .filter(|c| c.transport == tid && c.state != ConsumerState::Queued)
            .filter_map(|c| {
                let pr = self.producers.get(&c.producer)?;
                Some(TrackInfo {
                    mid: c.mid?.to_string(),
                    producer_id: pr.id,
                    participant_id: pr.participant,
                    kind: pr.kind.into(),
                })
            })
            .collect();
        tracks.sort_by(|a, b| a.mid.cmp(&b.mid));
        self.notify(
            Audience::Participant(owner),
            Notice::Offer {
                sdp: offer.to_sdp_string(),
                tracks,
            },
        );
    }

    /// Ask the publisher for a keyframe on every layer.
    fn request_keyframe(&mut self, now: Instant, pr: ProducerId) {
        self.request_keyframe_layers(now, pr, u8::MAX);
    }

    /// Ask the publisher for a keyframe on the layers in `mask` (bit i = layer i), each
    /// rate-limited on its own.
    fn request_keyframe_layers(&mut self, now: Instant, pr: ProducerId, mask: u8) {
        let min = self.opts.keyframe_min_interval;
        let Some(p) = self.producers.get_mut(&pr) else {
            return;
        };
        if p.kind != MediaKind::Video {
            return;
        }
        let (tid, mid) = (p.transport, p.mid);
        let Some(t) = self.transports.get_mut(&tid) else {
            return;
        };
        for (i, limiter) in p.keyframes.iter_mut().enumerate() {
            if mask & (1 << i.min(7)) == 0 || !limiter.request(now, min) {
                continue;
            }
            let rid = p.rids.get(i).copied();
            if let Some(rx) = t.rtc.direct_api().stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                mark(&mut self.dirty, t);
                self.stats.keyframe_requests += 1;
            }
        }
    }

    /// Microseconds on the simulcast state machines' clock.
    fn micros(&mut self, t: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(t);
        t.saturating_duration_since(epoch).as_micros() as u64
    }

    fn check_liveness(&mut self, now: Instant) {
        let mut dead = Vec::new();
        for t in self.transports.values() {
            let silent = now.saturating_duration_since(t.last_rx);
            let why = if !t.rtc.is_alive() {
                "connection closed"
            } else if t.connected && silent > self.opts.inactivity_timeout {
                "media timeout"
            } else if !t.connected
                && now.saturating_duration_since(t.created) > self.opts.connect_timeout
                // A receive transport with nothing to receive yet legitimately idles.
                && !(t.role == TransportRole::Recv && t.pending.is_none())
            {
                "connect timeout"
            } else {
                continue;
            };
            dead.push((t.id, t.owner, t.role, why));
        }
        for (tid, owner, role, why) in dead {
            self.stats.transports_timed_out += 1;
            self.transport_failed(tid, owner, role, why);
        }
    }

    fn transport_failed(
        &mut self,
        tid: TransportId,
        owner: TransportOwner,
        role: TransportRole,
        why: &str,
    ) {
        warn!(room = %self.room, transport = %tid, why, "transport failed");
        match (owner, role) {
            (TransportOwner::Participant(pid), _) => self.leave(pid, why),
            (TransportOwner::Viewer(_), _) => self.close_transport(tid),
        }
    }

    /// Drain every transport that has pending output, handling events; events can make other
    /// transports dirty (forwarded packets), so loop until quiet.
    fn drive(&mut self, now: Instant) {
        let mut events = Vec::new();
        loop {
            let dirty = std::mem::take(&mut self.dirty);
            if dirty.is_empty() {
                break;
            }
            for tid in dirty {
                let Some(t) = self.transports.get_mut(&tid) else {
                    continue;
                };
                t.dirty = false;
                let _ = t.rtc.handle_input(Input::Timeout(now));
                let mut failed = false;
                loop {
                    match t.rtc.poll_output() {
                        Ok(Output::Timeout(at)) => {
                            t.next_timeout = Some(at);
                            break;
                        }
                        Ok(Output::Transmit(tx)) => {
                            self.out.push_back(RouterOutput::Transmit(tid, tx));
                        }
                        Ok(Output::Event(e)) => events.push(e),
                        Err(e) => {
                            debug!(transport = %tid, "poll failed: {e}");
                            failed = true;
                            break;
                        }
                    }
                }
                let (owner, role) = (t.owner, t.role);
                for e in events.drain(..) {
                    self.handle_event(now, tid, e);
                }
                if failed {
                    self.transport_failed(tid, owner, role, "rtc error");
                }
            }
        }
    }

    fn handle_event(&mut self, now: Instant, tid: TransportId, e: Event) {
        let Some(t) = self.transports.get_mut(&tid) else {
            return;
        };
        let (owner, role) = (t.owner, t.role);
        match e {
            Event::Connected => {
                t.connected = true;
                t.last_rx = now;
                let waiting: Vec<ProducerId> = self
                    .consumers
                    .values()
                    .filter(|c| c.transport == tid && c.state == ConsumerState::Active)
                    .map(|c| c.producer)
                    .collect();
                for pr in waiting {
                    self.request_keyframe(now, pr);
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.transport_failed(tid, owner, role, "ice disconnected");
            }
            Event::RtpPacket(pkt) => self.forward(now, tid, pkt),
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                t.estimate = Some(estimate.as_u64());
                self.allocate(tid);
            }
            Event::KeyframeRequest(req) => {
                // The layer the subscriber decodes (all of them before the first).
                if let Some((pr, mask)) = self
                    .consumer_by_mid
                    .get(&(tid, req.mid))
                    .and_then(|c| self.consumers.get(c))
                    .map(|c| {
                        let layer = c.video.as_ref().and_then(|v| v.selector.current());
                        (c.producer, layer.map_or(u8::MAX, |l| 1 << l.min(7)))
                    })
                {
                    self.request_keyframe_layers(now, pr, mask);
                }
            }
            _ => {}
        }
    }

    /// The hot path: one packet from a producer to each of its active consumers.
    fn forward(&mut self, now: Instant, tid: TransportId, pkt: RtpPacket) {
        self.stats.rtp_in += 1;
        let at_us = self.micros(pkt.timestamp);
        let Some(t) = self.transports.get_mut(&tid) else {
            return;
        };
        let Some((mid, rid)) = t
            .rtc
            .direct_api()
            .stream_rx(&pkt.header.ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let Some(pr) = self.producer_by_mid.get(&(tid, mid)).copied() else {
            return;
        };
        let Some(src_params) = t.params_for_pt(pkt.header.payload_type) else {
            return;
        };
        let Some(producer) = self.producers.get_mut(&pr) else {
            return;
        };
        let Some(layer) = producer.layer_of(rid) else {
            return;
        };
        if let Some(si) = pkt.last_sender_info {
            if let Some(slot) = producer.sender_info.get_mut(layer as usize) {
                *slot = Some(si);
            }
        }
        let kind = producer.kind;
        let codec = match src_params.spec().codec {
            str0m::format::Codec::Vp8 => Some(VideoCodec::Vp8),
            str0m::format::Codec::H264 => Some(VideoCodec::H264),
            _ => None,
        };
        let keyframe = codec.is_some_and(|c| simulcast::is_keyframe(c, &pkt.payload));
        if kind == MediaKind::Video {
            let size = codec
                .filter(|_| keyframe)
                .and_then(|c| simulcast::keyframe_size(c, &pkt.payload));
            producer
                .layers
                .on_packet(layer, at_us, pkt.payload.len(), size);
        }
        if producer.muted {
            return;
        }
        let at = PacketAt {
            layer,
            keyframe,
            at_us,
            clock: src_params.spec().clock_rate.get(),
        };
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let producer = &self.producers[&pr];
        let layers = producer.layers.infos();
        // Layers some consumer waits for a keyframe of.
        let mut want_keyframes = 0u8;
        for cid in producer.consumers.iter() {
            let Some(c) = self.consumers.get_mut(cid) else {
                continue;
            };
            if c.state != ConsumerState::Active {
                continue;
            }
            let (Some(mid), Some(ct)) = (c.mid, self.transports.get_mut(&c.transport)) else {
                continue;
            };
            if !ct.connected {
                continue;
            }
            let pt = *c
                .pt_map
                .entry(pkt.header.payload_type)
                .or_insert_with(|| matching_pt(&src_params, &ct.negotiated_params(mid)));
            let Some(pt) = pt else {
                continue;
            };
            let Some((seq, ts)) = place(
                c.video.as_mut(),
                &mut c.seq_base,
                &pkt,
                &at,
                layers,
                &mut want_keyframes,
                &mut self.stats.layer_switches,
            ) else {
                continue;
            };
            let mut api = ct.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            tx.write_rtp(
                RtpWrite::new(pt, SeqNo::from(seq), ts, pkt.timestamp, pkt.payload.clone())
                    .marker(pkt.header.marker)
                    .ext_vals(ext.clone())
                    .nackable(kind == MediaKind::Video),
            );
            mark(&mut self.dirty, ct);
            self.stats.rtp_forwarded += 1;
            self.stats.bytes_forwarded += pkt.payload.len() as u64;
        }
        want_keyframes |= self.forward_plain(now, pr, &at, &pkt);
        if want_keyframes != 0 {
            self.request_keyframe_layers(now, pr, want_keyframes);
        }
    }

    /// Plain consumers get the producer's packets with their own SSRC and sequence numbers (and,
    /// for video, timestamps rewritten across layer switches), plus a sender report a second so
    /// the mixer can line up audio and video of one participant. Returns the layers a plain
    /// consumer waits for a keyframe of.
    fn forward_plain(
        &mut self,
        now: Instant,
        pr: ProducerId,
        at: &PacketAt,
        pkt: &RtpPacket,
    ) -> u8 {
        let Some(producer) = self.producers.get(&pr) else {
            return 0;
        };
        let layers = producer.layers.infos();
        let mut want_keyframes = 0u8;
        for p in self.plain.values_mut().filter(|p| p.producer == pr) {
            let mut switches = 0;
            let Some((seq, ts)) = place(
                p.video.as_mut(),
                &mut p.seq_base,
                pkt,
                at,
                layers,
                &mut want_keyframes,
                &mut switches,
            ) else {
                continue;
            };
            let bytes = crate::rtp::write_rtp(
                p.pt,
                pkt.header.marker,
                seq as u16,
                ts,
                p.ssrc,
                &pkt.payload,
            );
            p.packets = p.packets.wrapping_add(1);
            p.octets = p.octets.wrapping_add(pkt.payload.len() as u32);
            self.out
                .push_back(RouterOutput::PlainTransmit(p.id, p.remote, bytes));
            self.stats.rtp_forwarded += 1;
            self.stats.bytes_forwarded += pkt.payload.len() as u64;
            // The sender report of the layer being forwarded, in the output's timestamps.
            let Some(si) = producer
                .sender_info
                .get(at.layer as usize)
                .copied()
                .flatten()
            else {
                continue;
            };
            if p.last_sr
                .is_some_and(|t| now.saturating_duration_since(t) < SR_INTERVAL)
            {
                continue;
            }
            p.last_sr = Some(now);
            let unix_us = si
                .ntp_time
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            let rtp_time = si.rtp_time.numer() as u32;
            let rtp_time = p
                .video
                .as_ref()
                .map_or(rtp_time, |v| v.rewriter.map_ts(rtp_time));
            let mut sr = crate::rtp::write_sender_report(
                p.ssrc,
                crate::rtp::ntp_from_unix_micros(unix_us),
                rtp_time,
                p.packets,
                p.octets,
            );
            sr.extend_from_slice(&crate::rtp::write_sdes_cname(p.ssrc, &p.cname));
            self.out
                .push_back(RouterOutput::PlainTransmit(p.id, p.remote, sr));
        }
        want_keyframes
    }

    // ------------------------------------------------------------ plain transports

    /// Forward one producer as plain RTP to `remote` (a mixer input on this machine). Returns
    /// the stream's description; packets come out as [`RouterOutput::PlainTransmit`].
    pub fn plain_consume(
        &mut self,
        now: Instant,
        producer: ProducerId,
        remote: SocketAddr,
    ) -> Result<PlainConsumerInfo, SfuError> {
        let pr = self
            .producers
            .get(&producer)
            .ok_or(SfuError::UnknownProducer)?;
        let t = self
            .transports
            .get(&pr.transport)
            .ok_or(SfuError::UnknownProducer)?;
        // The codec the publisher negotiated for this m-line (its first, preferred one).
        let params = t
            .negotiated_params(pr.mid)
            .into_iter()
            .next()
            .ok_or(SfuError::UnknownProducer)?;
        let id = TransportId::random();
        let ssrc = rand::random::<u32>() | 1;
        let info =
            PlainConsumerInfo::new(id, producer, pr.participant, pr.kind.into(), ssrc, &params);
        self.plain.insert(
            id,
            PlainConsumer {
                id,
                producer,
                remote,
                ssrc,
                pt: info.payload_type,
                cname: pr.participant.to_string(),
                seq_base: None,
                // The mixer takes the publisher's last rid (the top layer of /stream's l, m, h),
                // and only that: a GStreamer compositor pad whose input changes resolution
                // mid-stream froze or crashed the mixer (GStreamer 1.22), so no switching here.
                video: (pr.kind == MediaKind::Video).then(|| {
                    let mut v = VideoOut::default();
                    v.selector.pin(pr.rids.len().saturating_sub(1) as Layer);
                    v
                }),
                packets: 0,
                octets: 0,
                last_sr: None,
            },
        );
        self.request_keyframe(now, producer);
        self.update_needed(producer);
        self.drive(now);
        Ok(info)
    }

    /// Stop a plain consumer.
    pub fn close_plain(&mut self, tid: TransportId) -> Result<(), SfuError> {
        let p = self.plain.remove(&tid).ok_or(SfuError::UnknownSession)?;
        self.out.push_back(RouterOutput::TransportClosed(tid));
        self.update_needed(p.producer);
        Ok(())
    }

    // ------------------------------------------------------------------ simulcast

    /// A participant's report of how it shows a producer's video: the tile's size in device
    /// pixels, or hidden. Picks the layer it gets (and pauses a hidden tile).
    pub fn set_viewport(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        producer: ProducerId,
        width: u32,
        height: u32,
        visible: bool,
    ) -> Result<(), SfuError> {
        let recv = self
            .participants
            .get(&pid)
            .ok_or(SfuError::UnknownParticipant)?
            .recv;
        let pr = self
            .producers
            .get(&producer)
            .ok_or(SfuError::UnknownProducer)?;
        let cid = pr
            .consumers
            .iter()
            .copied()
            .find(|c| recv.is_some() && self.consumers.get(c).map(|c| c.transport) == recv)
            .ok_or(SfuError::UnknownProducer)?;
        if let Some(v) = self.consumers.get_mut(&cid).and_then(|c| c.video.as_mut()) {
            v.selector.set_viewport(width.max(1), height.max(1));
            v.selector.set_paused(!visible);
        }
        self.after_selector_change(now, producer);
        Ok(())
    }

    /// A consumer's wishes changed: ask for the keyframes a switch needs and tell the publisher
    /// which layers are needed now.
    fn after_selector_change(&mut self, now: Instant, producer: ProducerId) {
        self.update_needed(producer);
        let Some(pr) = self.producers.get(&producer) else {
            return;
        };
        let layers = pr.layers.infos();
        let consumers = pr
            .consumers
            .iter()
            .filter_map(|c| self.consumers.get(c))
            .filter_map(|c| c.video.as_ref());
        let plain = self
            .plain
            .values()
            .filter(|p| p.producer == producer)
            .filter_map(|p| p.video.as_ref());
        let mask = consumers
            .chain(plain)
            .filter_map(|v| v.selector.wants_keyframe(layers))
            .fold(0u8, |m, l| m | (1 << l.min(7)));
        if mask != 0 {
            self.request_keyframe_layers(now, producer, mask);
        }
        self.drive(now);
    }

    /// Dynacast: the layers some consumer needs (the smallest always, so a newcomer starts at
    /// once), announced to the publisher when they change.
    fn update_needed(&mut self, producer: ProducerId) {
        let Some(pr) = self.producers.get(&producer) else {
            return;
        };
        if pr.rids.len() < 2 {
            return;
        }
        let layers = pr.layers.infos();
        let consumers = pr
            .consumers
            .iter()
            .filter_map(|c| self.consumers.get(c))
            .filter_map(|c| c.video.as_ref())
            .map(|v| &v.selector);
        let plain = self
            .plain
            .values()
            .filter(|p| p.producer == producer)
            .filter_map(|p| p.video.as_ref())
            .map(|v| &v.selector);
        let mask =
            simulcast::needed_layers(consumers.chain(plain), layers) | (1 << pr.layers.smallest());
        if pr.needed == Some(mask) {
            return;
        }
        let active = pr
            .rids
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << (*i).min(7)) != 0)
            .map(|(_, r)| r.to_string())
            .collect();
        let to = pr.participant;
        if let Some(p) = self.producers.get_mut(&producer) {
            p.needed = Some(mask);
        }
        debug!(room = %self.room, producer = %producer, ?active, "layers needed");
        self.notify(
            Audience::Participant(to),
            Notice::Layers {
                producer_id: producer,
                active,
            },
        );
    }

    /// Shares a subscriber's downlink estimate among its video consumers in proportion to the
    /// bitrate of the layer each tile wants (audio first: 48 kbit/s each), and tells str0m how
    /// much we would like to send so it probes for it (padding up to that, capped by the
    /// estimate), which is how a consumer held low comes back up once the link allows.
    fn allocate(&mut self, tid: TransportId) {
        let Some(estimate) = self.transports.get(&tid).and_then(|t| t.estimate) else {
            return;
        };
        const AUDIO_BPS: u64 = 48_000;
        let mut audio = 0u64;
        let mut wants: Vec<(ConsumerId, u64)> = Vec::new();
        for c in self.consumers.values().filter(|c| c.transport == tid) {
            let Some(pr) = self.producers.get(&c.producer) else {
                continue;
            };
            match &c.video {
                None => audio += AUDIO_BPS,
                Some(v) => {
                    let layers = pr.layers.infos();
                    let want = v
                        .selector
                        .wanted(layers)
                        .and_then(|l| layers.get(l as usize))
                        .map_or(0, |l| l.bitrate);
                    wants.push((c.id, want));
                }
            }
        }
        let video = estimate.saturating_sub(audio);
        let total: u64 = wants.iter().map(|(_, w)| *w).sum();
        let n = wants.len().max(1) as u64;
        for (cid, want) in &wants {
            let share = match total {
                0 => video / n,
                t => (video as u128 * *want as u128 / t as u128) as u64,
            };
            if let Some(v) = self.consumers.get_mut(cid).and_then(|c| c.video.as_mut()) {
                v.selector.set_estimate(share);
            }
        }
        // Padding fills up to what the tiles want (none while media already sends that). The
        // estimator probes towards `desired`, and str0m's estimate does not grow past what it
        // probed: so desired is 1.5 × what is wanted (going up a layer needs 1.33 ×), and never
        // below the starting estimate, or a subscriber whose tiles were hidden for a while would
        // come back with an estimate shrunk to its audio.
        let wanted = total + audio;
        let desired = (wanted * 3 / 2).max(transport::START_ESTIMATE_BPS);
        if let Some(t) = self.transports.get_mut(&tid) {
            t.rtc
                .bwe()
                .set_bitrate(Bitrate::bps(wanted), Bitrate::bps(desired));
            mark(&mut self.dirty, t);
        }
    }

    /// Every 250 ms: layers that went silent are no choice any more; needs are re-announced
    /// (a layer's size becomes known with its first keyframe, which can change the choice);
    /// subscribers' estimates are shared out again.
    fn tick_layers(&mut self, now: Instant) {
        let senders: Vec<TransportId> = self
            .transports
            .values()
            .filter(|t| t.role != TransportRole::Send && t.estimate.is_some())
            .map(|t| t.id)
            .collect();
        for tid in senders {
            self.allocate(tid);
        }
        let at_us = self.micros(now);
        let mut simulcast = Vec::new();
        for p in self.producers.values_mut() {
            if p.kind == MediaKind::Video {
                p.layers.tick(at_us);
                if p.rids.len() > 1 {
                    simulcast.push(p.id);
                }
            }
        }
        for pr in simulcast {
            self.after_selector_change(now, pr);
        }
    }

    /// Per video consumer: the layer it gets and wants, its switches, whether paused.
    pub fn consumer_layers(&self) -> Vec<ConsumerLayers> {
        let webrtc = self.consumers.values().filter_map(|c| {
            let v = c.video.as_ref()?;
            let pr = self.producers.get(&c.producer)?;
            Some(ConsumerLayers::of(c.id.to_string(), pr, v))
        });
        let plain = self.plain.values().filter_map(|p| {
            let v = p.video.as_ref()?;
            let pr = self.producers.get(&p.producer)?;
            Some(ConsumerLayers::of(p.id.to_string(), pr, v))
        });
        webrtc.chain(plain).collect()
    }

    /// RTCP from a plain receiver: keyframe requests (PLI/FIR) reach the publisher.
    pub fn handle_plain_rtcp(&mut self, now: Instant, tid: TransportId, data: &[u8]) {
        let Some(p) = self.plain.get(&tid) else {
            return;
        };
        let (ssrc, producer) = (p.ssrc, p.producer);
        let layer = p.video.as_ref().and_then(|v| v.selector.current());
        let asks = crate::rtp::parse_feedback(data)
            .into_iter()
            .any(|f| match f {
                crate::rtp::Feedback::Pli(m) | crate::rtp::Feedback::Fir(m) => m == ssrc,
            });
        if asks {
            self.request_keyframe_layers(now, producer, layer.map_or(u8::MAX, |l| 1 << l.min(7)));
            self.drive(now);
        }
    }

    /// Every producer of the room, for a consumer such as the compositor.
    /// The participant on stage the longest: the one who may end it.
    pub fn host(&self) -> Option<ParticipantId> {
        self.participants
            .iter()
            .min_by_key(|(_, p)| p.seq)
            .map(|(id, _)| *id)
    }

    /// The host ends the stage: everyone is told, then removed; the room closes.
    pub fn end_stage(&mut self, by: ParticipantId) -> Result<(), SfuError> {
        if self.host() != Some(by) {
            return Err(SfuError::NotHost);
        }
        let everyone: Vec<ParticipantId> = self.participants.keys().copied().collect();
        // Each participant first (the room audience is resolved when delivered, by which time
        // they have all left), then the room as a whole for watchers such as the compositor.
        for pid in &everyone {
            self.notify(Audience::Participant(*pid), Notice::StageEnded { by });
        }
        self.notify(Audience::Room { except: None }, Notice::StageEnded { by });
        for pid in everyone {
            self.leave(pid, "the host ended the stage");
        }
        Ok(())
    }

    /// Everyone in the room with their producers, in join order.
    pub fn roster(&self) -> Vec<ParticipantInfo> {
        let mut v: Vec<_> = self.participants.iter().collect();
        v.sort_by_key(|(_, p)| p.seq);
        v.into_iter().map(|(id, p)| self.info(*id, p)).collect()
    }

    pub fn producer_list(&self) -> Vec<ProducerSummary> {
        let mut v: Vec<_> = self
            .producers
            .values()
            .map(|p| ProducerSummary {
                id: p.id,
                participant_id: p.participant,
                kind: p.kind.into(),
                muted: p.muted,
            })
            .collect();
        v.sort_by_key(|x| x.id);
        v
    }
}

#[cfg(test)]
mod tests;
