//! `Worker`: the IO driver. One tokio task owns the node's media port (UDP, plus ICE-TCP on the
//! same port number), every router and the demultiplexer; signaling talks to it only through
//! [`WorkerHandle`] messages, so nothing on the packet path takes a lock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use str0m::net::{Protocol, Receive, TcpType};
use str0m::Candidate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::demux::Demux;
use crate::error::SfuError;
use crate::ids::{ParticipantId, ProducerId, RoomId, TransportId};
use crate::router::{
    Audience, ConsumerLayers, Joined, Kind, Notice, ParticipantInfo, ParticipantKind,
    PlainConsumerInfo, ProducerSummary, Published, Router, RouterOptions, RouterOutput,
};

/// Something that happened to a room as a whole (what its other participants are told), for
/// watchers that are not participants: the compositor, metrics, the cluster.
#[derive(Debug, Clone)]
pub enum RoomEvent {
    /// A stage notice: participant joined/left, producer added/removed/muted.
    Notice { room: RoomId, notice: Notice },
    /// The last participant left and the router is gone.
    Closed { room: RoomId },
}

/// Where the worker listens and what it announces.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Address the media port binds to.
    pub bind_ip: IpAddr,
    /// The media port (UDP and TCP); 0 picks a free one.
    pub port: u16,
    /// Address put in ICE candidates (the public address behind NAT, or the bind address).
    pub announced_ip: IpAddr,
    /// Offer ICE-TCP candidates too.
    pub enable_tcp: bool,
    /// Template for every room's router.
    pub router: RouterOptions,
}

/// Node-wide counters, readable without talking to the worker task.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub rooms: AtomicU64,
    pub participants: AtomicU64,
    pub producers: AtomicU64,
    pub consumers: AtomicU64,
    pub transports: AtomicU64,
    pub rtp_in: AtomicU64,
    pub rtp_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub transports_timed_out: AtomicU64,
    /// Simulcast layer switches by video consumers.
    pub layer_switches: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub datagrams_unroutable: AtomicU64,
}

/// A participant's mailbox: the notices the router addresses to it.
pub type Mailbox = mpsc::UnboundedSender<Notice>;

enum Command {
    Join {
        room: RoomId,
        name: String,
        kind: ParticipantKind,
        mailbox: Option<Mailbox>,
        reply: oneshot::Sender<Result<Joined, SfuError>>,
    },
    Publish {
        room: RoomId,
        pid: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<Published, SfuError>>,
    },
    Answer {
        room: RoomId,
        pid: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Mute {
        room: RoomId,
        pid: ParticipantId,
        kind: Kind,
        muted: bool,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Leave {
        room: RoomId,
        pid: ParticipantId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Whep {
        room: RoomId,
        target: String,
        sdp: String,
        reply: oneshot::Sender<Result<(ParticipantId, TransportId, String), SfuError>>,
    },
    CloseWhep {
        room: RoomId,
        session: TransportId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    PlainConsume {
        room: RoomId,
        producer: ProducerId,
        remote: SocketAddr,
        reply: oneshot::Sender<Result<PlainConsumerInfo, SfuError>>,
    },
    Viewport {
        room: RoomId,
        pid: ParticipantId,
        producer: ProducerId,
        width: u32,
        height: u32,
        visible: bool,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    ConsumerLayers {
        reply: oneshot::Sender<Result<Vec<(RoomId, ConsumerLayers)>, SfuError>>,
    },
    ClosePlain {
        room: RoomId,
        transport: TransportId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Producers {
        room: RoomId,
        reply: oneshot::Sender<Result<Vec<ProducerSummary>, SfuError>>,
    },
    Roster {
        room: RoomId,
        reply: oneshot::Sender<Result<Vec<ParticipantInfo>, SfuError>>,
    },
    EndStage {
        room: RoomId,
        by: ParticipantId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
}

/// Cheap, cloneable handle signaling uses to talk to the worker.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: mpsc::Sender<Command>,
    pub metrics: Arc<WorkerMetrics>,
    /// The media port actually bound (UDP; TCP uses the same number).
    pub media_addr: SocketAddr,
    /// Where plain RTP to local receivers (the mixer) comes from, and where their RTCP goes.
    pub plain_addr: SocketAddr,
    events: broadcast::Sender<RoomEvent>,
}

macro_rules! call {
    ($self:ident, $variant:ident { $($field:ident),* }) => {{
        let (reply, rx) = oneshot::channel();
        $self
            .tx
            .send(Command::$variant { $($field,)* reply })
            .await
            .map_err(|_| SfuError::WorkerGone)?;
        rx.await.map_err(|_| SfuError::WorkerGone)?
    }};
}

impl WorkerHandle {
    /// Join `room` (created on first join). `mailbox` receives this participant's notices.
    pub async fn join(
        &self,
        room: RoomId,
        name: String,
        kind: ParticipantKind,
        mailbox: Option<Mailbox>,
    ) -> Result<Joined, SfuError> {
        call!(
            self,
            Join {
                room,
                name,
                kind,
                mailbox
            }
        )
    }

    pub async fn publish(
        &self,
        room: RoomId,
        pid: ParticipantId,
        sdp: String,
    ) -> Result<Published, SfuError> {
        call!(self, Publish { room, pid, sdp })
    }

    pub async fn answer(
        &self,
        room: RoomId,
        pid: ParticipantId,
        sdp: String,
    ) -> Result<(), SfuError> {
        call!(self, Answer { room, pid, sdp })
    }

    pub async fn mute(
        &self,
        room: RoomId,
        pid: ParticipantId,
        kind: Kind,
        muted: bool,
    ) -> Result<(), SfuError> {
        call!(
            self,
            Mute {
                room,
                pid,
                kind,
                muted
            }
        )
    }

    pub async fn leave(&self, room: RoomId, pid: ParticipantId) -> Result<(), SfuError> {
        call!(self, Leave { room, pid })
    }

    /// Start watching `target` (participant id or unique name) in `room`: returns the watched
    /// participant, the session id and the SDP answer.
    pub async fn whep(
        &self,
        room: RoomId,
        target: String,
        sdp: String,
    ) -> Result<(ParticipantId, TransportId, String), SfuError> {
        call!(self, Whep { room, target, sdp })
    }

    pub async fn close_whep(&self, room: RoomId, session: TransportId) -> Result<(), SfuError> {
        call!(self, CloseWhep { room, session })
    }

    /// Forward `producer` as plain RTP to `remote` (a receiver on this machine); its RTCP
    /// (PLI/FIR) is read from [`WorkerHandle::plain_addr`].
    pub async fn plain_consume(
        &self,
        room: RoomId,
        producer: ProducerId,
        remote: SocketAddr,
    ) -> Result<PlainConsumerInfo, SfuError> {
        call!(
            self,
            PlainConsume {
                room,
                producer,
                remote
            }
        )
    }

    pub async fn close_plain(&self, room: RoomId, transport: TransportId) -> Result<(), SfuError> {
        call!(self, ClosePlain { room, transport })
    }

    /// How `pid` shows `producer`'s video (tile size in device pixels, or hidden): picks the
    /// simulcast layer it gets.
    pub async fn set_viewport(
        &self,
        room: RoomId,
        pid: ParticipantId,
        producer: ProducerId,
        width: u32,
        height: u32,
        visible: bool,
    ) -> Result<(), SfuError> {
        call!(
            self,
            Viewport {
                room,
                pid,
                producer,
                width,
                height,
                visible
            }
        )
    }

    /// Every video consumer's layer state, for `/metrics`.
    pub async fn consumer_layers(&self) -> Result<Vec<(RoomId, ConsumerLayers)>, SfuError> {
        call!(self, ConsumerLayers {})
    }

    /// The room's producers.
    pub async fn producers(&self, room: RoomId) -> Result<Vec<ProducerSummary>, SfuError> {
        call!(self, Producers { room })
    }

    /// The room's participants and their producers, in join order.
    pub async fn roster(&self, room: RoomId) -> Result<Vec<ParticipantInfo>, SfuError> {
        call!(self, Roster { room })
    }

    /// The host (`by`) ends the stage for everyone.
    pub async fn end_stage(&self, room: RoomId, by: ParticipantId) -> Result<(), SfuError> {
        call!(self, EndStage { room, by })
    }

    /// Every room's events from now on. A receiver that falls behind gets `Lagged` and should
    /// re-read [`WorkerHandle::roster`].
    pub fn room_events(&self) -> broadcast::Receiver<RoomEvent> {
        self.events.subscribe()
    }
}

/// Bind the media port and start the worker task.
pub async fn spawn_worker(opts: WorkerOptions) -> std::io::Result<WorkerHandle> {
    let udp = UdpSocket::bind(SocketAddr::new(opts.bind_ip, opts.port)).await?;
    let local = udp.local_addr()?;
    let tcp = if opts.enable_tcp {
        Some(TcpListener::bind(local).await?)
    } else {
        None
    };
    let announced = SocketAddr::new(opts.announced_ip, local.port());
    // Plain RTP only ever goes to receivers on this machine.
    let plain_udp = UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let plain_addr = plain_udp.local_addr()?;
    let mut router_opts = opts.router.clone();
    router_opts.candidates.clear();
    router_opts.candidates.push(
        Candidate::host(announced, Protocol::Udp)
            .map_err(|e| std::io::Error::other(format!("udp candidate: {e}")))?,
    );
    if tcp.is_some() {
        router_opts.candidates.push(
            Candidate::builder()
                .tcp()
                .host(announced)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| std::io::Error::other(format!("tcp candidate: {e}")))?,
        );
    }
    let (tx, rx) = mpsc::channel(1024);
    let metrics = Arc::new(WorkerMetrics::default());
    let (tcp_in_tx, tcp_in_rx) = mpsc::channel(4096);
    let (tcp_conn_tx, tcp_conn_rx) = mpsc::channel(64);
    if let Some(listener) = tcp {
        tokio::spawn(accept_tcp(listener, tcp_in_tx, tcp_conn_tx));
    }
    let (events, _) = broadcast::channel(1024);
    let worker = Worker {
        events: events.clone(),
        udp,
        plain_udp,
        plain_by_remote: HashMap::new(),
        local,
        router_opts,
        routers: HashMap::new(),
        transport_room: HashMap::new(),
        mailboxes: HashMap::new(),
        demux: Demux::default(),
        tcp_conns: HashMap::new(),
        metrics: metrics.clone(),
        metrics_at: Instant::now(),
    };
    info!(%local, %announced, tcp = opts.enable_tcp, "media port bound");
    tokio::spawn(worker.run(rx, tcp_in_rx, tcp_conn_rx));
    Ok(WorkerHandle {
        tx,
        metrics,
        media_addr: local,
        plain_addr,
        events,
    })
}

struct Worker {
    events: broadcast::Sender<RoomEvent>,
    udp: UdpSocket,
    /// The one socket of every plain consumer; RTCP is routed by the receiver's address.
    plain_udp: UdpSocket,
    plain_by_remote: HashMap<SocketAddr, TransportId>,
    local: SocketAddr,
    router_opts: RouterOptions,
    routers: HashMap<RoomId, Router>,
    transport_room: HashMap<TransportId, RoomId>,
    mailboxes: HashMap<ParticipantId, Mailbox>,
    demux: Demux,
    /// ICE-TCP connections by remote address: where to write framed packets.
    tcp_conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    metrics: Arc<WorkerMetrics>,
    metrics_at: Instant,
}

/// An RFC 4571 frame that arrived on an ICE-TCP connection.
struct TcpFrame {
    remote: SocketAddr,
    local: SocketAddr,
    data: Vec<u8>,
}

impl Worker {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut tcp_in: mpsc::Receiver<TcpFrame>,
        mut tcp_conns: mpsc::Receiver<(SocketAddr, Option<mpsc::Sender<Vec<u8>>>)>,
    ) {
        let mut buf = vec![0u8; 2048];
        let mut plain_buf = vec![0u8; 2048];
        let mut deadline = Instant::now();
        loop {
            let sleep = tokio::time::sleep_until(deadline.into());
            tokio::select! {
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok((n, source)) => {
                        let now = Instant::now();
                        self.on_datagram(now, Protocol::Udp, source, self.local, &buf[..n]);
                    }
                    Err(e) => debug!("udp recv: {e}"),
                },
                r = self.plain_udp.recv_from(&mut plain_buf) => {
                    if let Ok((n, source)) = r {
                        self.on_plain_rtcp(Instant::now(), source, &plain_buf[..n]);
                    }
                }
                Some(f) = tcp_in.recv() => {
                    let now = Instant::now();
                    self.on_datagram(now, Protocol::Tcp, f.remote, f.local, &f.data);
                }
                Some((remote, conn)) = tcp_conns.recv() => match conn {
                    Some(c) => { self.tcp_conns.insert(remote, c); }
                    None => { self.tcp_conns.remove(&remote); }
                },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(Instant::now(), cmd),
                    None => {
                        info!("worker handle dropped; stopping");
                        return;
                    }
                },
                _ = sleep => {
                    let now = Instant::now();
                    for r in self.routers.values_mut() {
                        r.handle_timeout(now);
                    }
                }
            }
            deadline = self.flush().await;
        }
    }

    fn on_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.metrics.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let Some(tid) = self.demux.route(proto, source, data) else {
            self.metrics
                .datagrams_unroutable
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(contents) = data.try_into() else {
            return;
        };
        let Some(router) = self.router_of(tid) else {
            return;
        };
        router.handle_receive(
            now,
            tid,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
    }

    fn on_plain_rtcp(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let Some(tid) = self.plain_by_remote.get(&source).copied() else {
            return;
        };
        let Some(router) = self.router_of(tid) else {
            return;
        };
        router.handle_plain_rtcp(now, tid, data);
    }

    /// The router that owns a transport.
    fn router_of(&mut self, tid: TransportId) -> Option<&mut Router> {
        let room = self.transport_room.get(&tid)?;
        self.routers.get_mut(room)
    }

    fn router_for(&mut self, room: &RoomId) -> Result<&mut Router, SfuError> {
        self.routers.get_mut(room).ok_or(SfuError::UnknownRoom)
    }

    fn on_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Join {
                room,
                name,
                kind,
                mailbox,
                reply,
            } => {
                let opts = self.router_opts.clone();
                let router = self
                    .routers
                    .entry(room.clone())
                    .or_insert_with(|| Router::new(room, opts));
                let r = router.join(now, &name, kind);
                if let (Ok(j), Some(m)) = (&r, mailbox) {
                    self.mailboxes.insert(j.participant_id, m);
                }
                let _ = reply.send(r);
            }
            Command::Publish {
                room,
                pid,
                sdp,
                reply,
            } => {
                let _ = reply.send(
                    self.router_for(&room)
                        .and_then(|r| r.publish(now, pid, &sdp)),
                );
            }
            Command::Answer {
                room,
                pid,
                sdp,
                reply,
            } => {
                let _ = reply.send(
                    self.router_for(&room)
                        .and_then(|r| r.answer(now, pid, &sdp)),
                );
            }
            Command::Mute {
                room,
                pid,
                kind,
                muted,
                reply,
            } => {
                let _ = reply.send(
                    self.router_for(&room)
                        .and_then(|r| r.mute(now, pid, kind, muted)),
                );
            }
            Command::Leave { room, pid, reply } => {
                let _ = reply.send(
                    self.router_for(&room)
                        .map(|r| r.leave(pid, crate::router::ASKED_TO_LEAVE)),
                );
            }
            Command::Whep {
                room,
                target,
                sdp,
                reply,
            } => {
                let r = self.router_for(&room).and_then(|r| {
                    let pid = r
                        .find_participant(&target)
                        .ok_or(SfuError::UnknownParticipant)?;
                    let (tid, answer) = r.whep(now, pid, &sdp)?;
                    Ok((pid, tid, answer))
                });
                let _ = reply.send(r);
            }
            Command::CloseWhep {
                room,
                session,
                reply,
            } => {
                let _ = reply.send(self.router_for(&room).and_then(|r| r.close_whep(session)));
            }
            Command::PlainConsume {
                room,
                producer,
                remote,
                reply,
            } => {
                let r = self
                    .router_for(&room)
                    .and_then(|r| r.plain_consume(now, producer, remote));
                if let Ok(info) = &r {
                    self.plain_by_remote.insert(remote, info.transport_id);
                    self.transport_room.insert(info.transport_id, room);
                }
                let _ = reply.send(r);
            }
            Command::ClosePlain {
                room,
                transport,
                reply,
            } => {
                let _ = reply.send(
                    self.router_for(&room)
                        .and_then(|r| r.close_plain(transport)),
                );
            }
            Command::Viewport {
                room,
                pid,
                producer,
                width,
                height,
                visible,
                reply,
            } => {
                let _ = reply.send(
                    self.router_for(&room)
                        .and_then(|r| r.set_viewport(now, pid, producer, width, height, visible)),
                );
            }
            Command::ConsumerLayers { reply } => {
                let all = self
                    .routers
                    .iter()
                    .flat_map(|(room, r)| {
                        r.consumer_layers().into_iter().map(|c| (room.clone(), c))
                    })
                    .collect();
                let _ = reply.send(Ok(all));
            }
            Command::Producers { room, reply } => {
                let _ = reply.send(self.router_for(&room).map(|r| r.producer_list()));
            }
            Command::Roster { room, reply } => {
                let _ = reply.send(self.router_for(&room).map(|r| r.roster()));
            }
            Command::EndStage { room, by, reply } => {
                let _ = reply.send(self.router_for(&room).and_then(|r| r.end_stage(by)));
            }
        }
    }

    /// Drain every router's output: send datagrams, deliver notices, maintain the demux.
    /// Returns when the next timeout is due.
    async fn flush(&mut self) -> Instant {
        let mut next = Instant::now() + std::time::Duration::from_secs(1);
        let mut to_send: Vec<(Protocol, SocketAddr, Vec<u8>)> = Vec::new();
        // Indices in `to_send` that leave from the plain socket.
        let mut plain_sends: Vec<usize> = Vec::new();
        for (room, router) in self.routers.iter_mut() {
            loop {
                match router.poll_output() {
                    RouterOutput::Timeout(t) => {
                        next = next.min(t);
                        break;
                    }
                    RouterOutput::Transmit(_, t) => {
                        to_send.push((t.proto, t.destination, t.contents.into()));
                    }
                    RouterOutput::Notify(to, notice) => match to {
                        Audience::Participant(p) => {
                            if let Some(m) = self.mailboxes.get(&p) {
                                let _ = m.send(notice);
                            }
                        }
                        Audience::Room { except } => {
                            if !matches!(notice, Notice::Offer { .. }) {
                                // Nobody listening is fine.
                                let _ = self.events.send(RoomEvent::Notice {
                                    room: room.clone(),
                                    notice: notice.clone(),
                                });
                            }
                            for p in router.participant_ids().filter(|p| Some(*p) != except) {
                                if let Some(m) = self.mailboxes.get(&p) {
                                    let _ = m.send(notice.clone());
                                }
                            }
                        }
                    },
                    RouterOutput::TransportOpened(tid, ufrag) => {
                        self.demux.insert(tid, ufrag);
                        self.transport_room.insert(tid, room.clone());
                    }
                    RouterOutput::TransportClosed(tid) => {
                        self.demux.remove(tid);
                        self.transport_room.remove(&tid);
                        self.plain_by_remote.retain(|_, t| *t != tid);
                    }
                    RouterOutput::PlainTransmit(_, dest, data) => {
                        to_send.push((Protocol::Udp, dest, data));
                        plain_sends.push(to_send.len() - 1);
                    }
                    RouterOutput::ParticipantGone(pid) => {
                        self.mailboxes.remove(&pid);
                    }
                }
            }
        }
        for (i, (proto, dest, data)) in to_send.into_iter().enumerate() {
            if plain_sends.binary_search(&i).is_ok() {
                if let Err(e) = self.plain_udp.send_to(&data, dest).await {
                    debug!(%dest, "plain send: {e}");
                }
                continue;
            }
            match proto {
                Protocol::Udp => {
                    if let Err(e) = self.udp.send_to(&data, dest).await {
                        debug!(%dest, "udp send: {e}");
                    }
                }
                _ => {
                    if let Some(conn) = self.tcp_conns.get(&dest) {
                        let _ = conn.try_send(data);
                    }
                }
            }
        }
        let metrics = &self.metrics;
        let events = &self.events;
        self.routers.retain(|room, r| {
            let keep = !r.is_empty();
            if !keep {
                add_stats(metrics, r.take_stats());
                let _ = events.send(RoomEvent::Closed { room: room.clone() });
            }
            keep
        });
        self.publish_metrics(Instant::now());
        next
    }

    /// Gauges are snapshots; counters accumulate each router's increments. Called at most every
    /// [`METRICS_EVERY`] (and for a room about to be dropped), not per packet.
    fn publish_metrics(&mut self, now: Instant) {
        if now.saturating_duration_since(self.metrics_at) < METRICS_EVERY {
            return;
        }
        self.metrics_at = now;
        let m = &self.metrics;
        let (mut parts, mut prods, mut cons) = (0, 0, 0);
        for r in self.routers.values_mut() {
            parts += r.participant_count() as u64;
            prods += r.producer_count() as u64;
            cons += r.consumer_count() as u64;
            add_stats(m, r.take_stats());
        }
        m.rooms.store(self.routers.len() as u64, Ordering::Relaxed);
        m.participants.store(parts, Ordering::Relaxed);
        m.producers.store(prods, Ordering::Relaxed);
        m.consumers.store(cons, Ordering::Relaxed);
        m.transports
            .store(self.demux.len() as u64, Ordering::Relaxed);
    }
}

const METRICS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

fn add_stats(m: &WorkerMetrics, s: crate::router::RouterStats) {
    m.rtp_in.fetch_add(s.rtp_in, Ordering::Relaxed);
    m.rtp_forwarded
        .fetch_add(s.rtp_forwarded, Ordering::Relaxed);
    m.bytes_forwarded
        .fetch_add(s.bytes_forwarded, Ordering::Relaxed);
    m.keyframe_requests
        .fetch_add(s.keyframe_requests, Ordering::Relaxed);
    m.transports_timed_out
        .fetch_add(s.transports_timed_out, Ordering::Relaxed);
    m.layer_switches
        .fetch_add(s.layer_switches, Ordering::Relaxed);
}

/// Most bytes one RFC 4571 frame may carry; anything larger is not WebRTC.
const MAX_TCP_FRAME: usize = 1600;

async fn accept_tcp(
    listener: TcpListener,
    frames: mpsc::Sender<TcpFrame>,
    conns: mpsc::Sender<(SocketAddr, Option<mpsc::Sender<Vec<u8>>>)>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_tcp(stream, remote, frames.clone(), conns.clone()));
            }
            Err(e) => {
                warn!("tcp accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One ICE-TCP connection: RFC 4571 framing (2-byte length) both ways.
async fn serve_tcp(
    stream: TcpStream,
    remote: SocketAddr,
    frames: mpsc::Sender<TcpFrame>,
    conns: mpsc::Sender<(SocketAddr, Option<mpsc::Sender<Vec<u8>>>)>,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(512);
    if conns.send((remote, Some(out_tx))).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(pkt) = out_rx.recv().await {
            let Ok(len) = u16::try_from(pkt.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(pkt.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&pkt);
            if wr.write_all(&framed).await.is_err() {
                break;
            }
        }
    });
    loop {
        let mut len = [0u8; 2];
        if rd.read_exact(&mut len).await.is_err() {
            break;
        }
        let len = u16::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_TCP_FRAME {
            debug!(%remote, len, "ice-tcp: bad frame length; closing");
            break;
        }
        let mut data = vec![0u8; len];
        if rd.read_exact(&mut data).await.is_err() {
            break;
        }
        if frames
            .send(TcpFrame {
                remote,
                local,
                data,
            })
            .await
            .is_err()
        {
            break;
        }
    }
    writer.abort();
    let _ = conns.send((remote, None)).await;
}
