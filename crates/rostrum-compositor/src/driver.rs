//! The IO edge of the compositor: one task per live broadcast owns its mixer child process, its
//! HLS session and its [`Broadcast`] state; a dispatcher task routes the worker's room events to
//! them and starts a broadcast on a room's first join. Nothing here decides anything the pure
//! parts ([`Broadcast`], [`Supervision`]) can decide.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rostrum_hls::{HlsHandle, HlsRegistry, HlsSession, HlsSessionOptions, HlsStore};
use rostrum_sfu::router::PlainConsumerInfo;
use rostrum_sfu::{Notice, ProducerId, RoomEvent, RoomId, SfuError, WorkerHandle};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command as Process};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::broadcast::{Action, Broadcast};
use crate::protocol::{Command, Event, TileState};
use crate::supervisor::{RestartPolicy, Supervision};

/// How broadcasts are made; every field has a working default.
#[derive(Debug, Clone)]
pub struct CompositorOptions {
    /// The `rostrum-mixer` executable.
    pub mixer_bin: PathBuf,
    /// Extra arguments for every mixer (after the ones derived from this struct).
    pub mixer_args: Vec<String>,
    /// HLS part target (the mixer cuts a fragment per frame; the HLS session groups them).
    pub part_target: Duration,
    /// HLS segment target = the keyframe interval.
    pub segment_target: Duration,
    /// A room with nobody on stage for this long ends its broadcast.
    pub idle_end: Duration,
    /// Restart back-off and stall limits (its `part_target` is overwritten with ours).
    pub restart: RestartPolicy,
    /// Longest wait for a stopping mixer to flush and exit before it is killed.
    pub stop_wait: Duration,
}

impl Default for CompositorOptions {
    fn default() -> Self {
        Self {
            mixer_bin: default_mixer_bin(),
            mixer_args: Vec::new(),
            part_target: Duration::from_millis(500),
            segment_target: Duration::from_secs(2),
            idle_end: Duration::from_secs(30),
            restart: RestartPolicy::default(),
            stop_wait: Duration::from_secs(5),
        }
    }
}

/// `rostrum-mixer` next to the running executable (or one directory up, where cargo puts
/// binaries when the running one is a test in `target/*/deps`).
pub fn default_mixer_bin() -> PathBuf {
    let name = "rostrum-mixer";
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            for candidate in [dir.join(name), dir.join("..").join(name)] {
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
    }
    PathBuf::from(name)
}

/// Where a room's broadcast is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BroadcastState {
    Live,
    Ended,
}

/// What the node tells viewers (and tests) about a room's broadcast.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastStatus {
    pub room: String,
    /// Also the HLS rendition name: recordings of one room never overwrite each other.
    pub id: String,
    pub state: BroadcastState,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    /// Tiles in the grid now (0 = the empty-stage slate).
    pub tiles: usize,
    /// Each seat's tile: video or placeholder (and why), as the mixer last reported.
    pub seats: BTreeMap<String, TileState>,
    /// Mixer restarts (crashes, kills, stalls) so far.
    pub restarts: u32,
    /// The running mixer's process id, if one runs.
    pub mixer_pid: Option<u32>,
}

/// Why a compositor call failed.
#[derive(Debug, thiserror::Error)]
pub enum CompositorError {
    #[error("room {0} has no live broadcast")]
    NotLive(String),
    #[error("the compositor has stopped")]
    Gone,
}

type StatusMap = Arc<RwLock<HashMap<String, BroadcastStatus>>>;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CompositorMetrics {
    pub broadcasts_started: std::sync::atomic::AtomicU64,
    pub broadcasts_ended: std::sync::atomic::AtomicU64,
    /// Mixer restarts after an exit, kill or stall.
    pub mixer_restarts: std::sync::atomic::AtomicU64,
    /// Of those, restarts because no part came for 3 × the part target.
    pub mixer_stalls: std::sync::atomic::AtomicU64,
}

/// Handle to the compositor service; cheap to clone.
#[derive(Clone)]
pub struct Compositor {
    status: StatusMap,
    tx: mpsc::Sender<Control>,
    pub metrics: Arc<CompositorMetrics>,
}

enum Control {
    End(String, oneshot::Sender<Result<(), CompositorError>>),
}

impl Compositor {
    /// Starts the service: every room that gets a participant gets a broadcast.
    pub fn start(
        worker: WorkerHandle,
        store: HlsStore,
        registry: HlsRegistry,
        opts: CompositorOptions,
    ) -> Self {
        let status = StatusMap::default();
        let metrics = Arc::new(CompositorMetrics::default());
        let (tx, rx) = mpsc::channel(64);
        let ctx = Ctx {
            worker: worker.clone(),
            store,
            registry,
            opts,
            status: status.clone(),
            metrics: metrics.clone(),
        };
        tokio::spawn(dispatch(ctx, worker.room_events(), rx));
        Self {
            status,
            tx,
            metrics,
        }
    }

    /// Rooms with a live broadcast.
    pub fn live_count(&self) -> usize {
        self.status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|s| s.state == BroadcastState::Live)
            .count()
    }

    /// The room's current or last broadcast.
    pub fn status(&self, room: &str) -> Option<BroadcastStatus> {
        self.status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(room)
            .cloned()
    }

    /// Ends a room's live broadcast now (the host ended the stage); returns once the recording
    /// is written.
    pub async fn end(&self, room: &str) -> Result<(), CompositorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Control::End(room.to_owned(), reply))
            .await
            .map_err(|_| CompositorError::Gone)?;
        rx.await.map_err(|_| CompositorError::Gone)?
    }
}

#[derive(Clone)]
struct Ctx {
    worker: WorkerHandle,
    store: HlsStore,
    registry: HlsRegistry,
    opts: CompositorOptions,
    status: StatusMap,
    metrics: Arc<CompositorMetrics>,
}

impl Ctx {
    fn set_status(&self, id: &str, f: impl FnOnce(&mut BroadcastStatus)) {
        let mut map = self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = map.values_mut().find(|s| s.id == id) {
            f(s);
        }
    }
}

/// Messages to one broadcast's task.
enum Msg {
    Notice(Notice),
    RoomClosed,
    Resync,
    End(oneshot::Sender<Result<(), CompositorError>>),
    /// A stderr line of mixer generation `.0`.
    MixerLine(u64, String),
    /// The plain consumer for a producer (generation `.0`).
    Consumed(u64, ProducerId, Result<PlainConsumerInfo, SfuError>),
}

async fn dispatch(
    ctx: Ctx,
    mut events: broadcast::Receiver<RoomEvent>,
    mut control: mpsc::Receiver<Control>,
) {
    let mut live: HashMap<RoomId, mpsc::UnboundedSender<Msg>> = HashMap::new();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(RoomEvent::Notice { room, notice }) => {
                    live.retain(|_, tx| !tx.is_closed());
                    if !live.contains_key(&room) {
                        if !matches!(notice, Notice::ParticipantJoined { .. }) {
                            continue;
                        }
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::spawn(run_broadcast(ctx.clone(), room.clone(), tx.clone(), rx));
                        live.insert(room.clone(), tx);
                    }
                    if matches!(notice, Notice::StageEnded { .. }) {
                        // The host ended it: no idle wait; the next join starts a new broadcast.
                        if let Some(tx) = live.remove(&room) {
                            let (reply, _) = oneshot::channel();
                            let _ = tx.send(Msg::End(reply));
                        }
                        continue;
                    }
                    if let Some(tx) = live.get(&room) {
                        let _ = tx.send(Msg::Notice(notice));
                    }
                }
                Ok(RoomEvent::Closed { room }) => {
                    if let Some(tx) = live.get(&room) {
                        let _ = tx.send(Msg::RoomClosed);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "compositor fell behind the room events; re-reading rosters");
                    for tx in live.values() {
                        let _ = tx.send(Msg::Resync);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            c = control.recv() => match c {
                Some(Control::End(room, reply)) => {
                    let tx = RoomId::new(&room).ok().and_then(|r| live.remove(&r));
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(Msg::End(reply));
                        }
                        None => {
                            let _ = reply.send(Err(CompositorError::NotLive(room)));
                        }
                    }
                }
                None => return,
            },
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A running mixer process.
struct Mixer {
    generation: u64,
    child: Child,
    stdin: mpsc::UnboundedSender<String>,
    /// Copies stdout into the HLS session; finishes at the mixer's end of stream.
    pump: tokio::task::JoinHandle<()>,
    /// Last log lines, for the crash report.
    tail: VecDeque<String>,
}

const TAIL_LINES: usize = 20;

/// One room's broadcast from its first join to its end.
async fn run_broadcast(
    ctx: Ctx,
    room: RoomId,
    me: mpsc::UnboundedSender<Msg>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let started = unix_ms();
    let id = format!("b{started}");
    let mut hls_opts = HlsSessionOptions::default();
    hls_opts.playlist.part_target = ctx.opts.part_target;
    hls_opts.playlist.segment_target = ctx.opts.segment_target;
    hls_opts.playlist.max_segment = ctx.opts.segment_target * 3;
    let hls = match HlsSession::spawn(room.as_str(), &id, ctx.store.clone(), hls_opts) {
        Ok(h) => h,
        Err(e) => {
            warn!(%room, "cannot start the broadcast's HLS session: {e}");
            return;
        }
    };
    ctx.registry.insert(hls.clone());
    ctx.status
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            room.to_string(),
            BroadcastStatus {
                room: room.to_string(),
                id: id.clone(),
                state: BroadcastState::Live,
                started_at_ms: started,
                ended_at_ms: None,
                tiles: 0,
                seats: BTreeMap::new(),
                restarts: 0,
                mixer_pid: None,
            },
        );
    info!(%room, broadcast = %id, "broadcast started");
    ctx.metrics
        .broadcasts_started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let mut b = Broadcast::new();
    if let Ok(roster) = ctx.worker.roster(room.clone()).await {
        b.load_roster(&roster);
    }
    let mut policy = ctx.opts.restart.clone();
    policy.part_target = ctx.opts.part_target;
    let mut sup = Supervision::new(policy);
    let mut generation = 0u64;
    let mut idle_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut end_reply: Option<oneshot::Sender<Result<(), CompositorError>>> = None;

    'life: loop {
        generation += 1;
        // Run one mixer to its end; the value is the back-off before the next one.
        let delay = 'run: {
            let mut mixer = match spawn_mixer(&ctx, generation, &hls, me.clone()) {
                Ok(m) => m,
                Err(e) => {
                    warn!(%room, bin = %ctx.opts.mixer_bin.display(), "cannot start the mixer: {e}");
                    break 'run sup.exited(Instant::now()).max(Duration::from_secs(1));
                }
            };
            sup.started(Instant::now(), hls.metrics().parts_published);
            let pid = mixer.child.id();
            ctx.set_status(&id, |s| s.mixer_pid = pid);
            debug!(%room, ?pid, generation, "mixer started");

            // Run this mixer until it exits, stalls, or the broadcast ends.
            let why: &str = loop {
                tokio::select! {
                    status = mixer.child.wait() => {
                        break match status {
                            Ok(s) if s.success() => "exited",
                            Ok(_) => "crashed",
                            Err(_) => "lost",
                        };
                    }
                    _ = tick.tick() => {
                        let now = Instant::now();
                        let m = hls.metrics();
                        if sup.stalled(now, m.parts_published, m.last_part_age) {
                            let _ = mixer.child.start_kill();
                            break "stalled";
                        }
                        if idle_since.is_some_and(|t| now.saturating_duration_since(t) >= ctx.opts.idle_end) {
                            info!(%room, "stage empty for {:?}: ending the broadcast", ctx.opts.idle_end);
                            break "idle";
                        }
                    }
                    msg = rx.recv() => {
                        let Some(msg) = msg else { break "idle" };
                        match msg {
                            Msg::End(reply) => {
                                end_reply = Some(reply);
                                break "ended";
                            }
                            Msg::MixerLine(g, line) if g == generation => {
                                on_mixer_line(&ctx, &id, &room, &mut b, &mut mixer, line, &me);
                            }
                            Msg::Consumed(g, producer, res) if g == generation => {
                                let actions = match res {
                                    Ok(info) => b.consumed(&info),
                                    Err(e) => {
                                        debug!(%room, %producer, "plain consume failed: {e}");
                                        b.consume_failed(producer)
                                    }
                                };
                                execute(&ctx, &room, &mixer, actions, &me);
                            }
                            Msg::MixerLine(..) => {}
                            Msg::Consumed(_, _, Ok(info)) => {
                                // For a dead mixer: nobody reads it.
                                close_plain(&ctx, &room, info.transport_id);
                            }
                            Msg::Consumed(..) => {}
                            other => {
                                let actions = on_stage(&ctx, &room, &mut b, other, &mut idle_since).await;
                                execute(&ctx, &room, &mixer, actions, &me);
                            }
                        }
                    }
                }
            };

            if matches!(why, "idle" | "ended") {
                let _ = mixer.stdin.send(Command::Stop.to_line());
                if tokio::time::timeout(ctx.opts.stop_wait, mixer.child.wait())
                    .await
                    .is_err()
                {
                    warn!(%room, "mixer did not stop in {:?}: killing it", ctx.opts.stop_wait);
                    let _ = mixer.child.kill().await;
                }
                let _ = mixer.pump.await;
                for a in b.mixer_stopped() {
                    if let Action::ClosePlain { transport } = a {
                        close_plain(&ctx, &room, transport);
                    }
                }
                break 'life;
            }

            // Crash, kill or stall: same playlist, one discontinuity, a fresh mixer.
            let _ = mixer.child.kill().await;
            let _ = mixer.pump.await;
            warn!(
                %room, generation, why,
                stderr = %mixer.tail.iter().cloned().collect::<Vec<_>>().join(" | "),
                "mixer {why}; restarting"
            );
            for a in b.mixer_stopped() {
                if let Action::ClosePlain { transport } = a {
                    close_plain(&ctx, &room, transport);
                }
            }
            let _ = hls.encoder_restarted().await;
            ctx.set_status(&id, |s| {
                s.restarts += 1;
                s.mixer_pid = None;
            });
            sup.exited(Instant::now())
        };
        if wait_out(
            delay,
            &ctx,
            &room,
            &mut b,
            &mut rx,
            &mut idle_since,
            &mut end_reply,
            generation,
        )
        .await
        {
            break 'life;
        }
    }

    if let Err(e) = hls.end().await {
        warn!(%room, broadcast = %id, "ending the HLS session: {e}");
    }
    ctx.set_status(&id, |s| {
        s.state = BroadcastState::Ended;
        s.ended_at_ms = Some(unix_ms());
        s.mixer_pid = None;
        s.tiles = 0;
        s.seats.clear();
    });
    info!(%room, broadcast = %id, "broadcast ended");
    ctx.metrics
        .broadcasts_ended
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(reply) = end_reply {
        let _ = reply.send(Ok(()));
    }
    // Close the channel so the dispatcher starts a new broadcast on the next join.
    drop(rx);
}

/// Waits `delay` (restart back-off) while still following the stage. True if the broadcast
/// must end instead of restarting.
#[allow(clippy::too_many_arguments)]
async fn wait_out(
    delay: Duration,
    ctx: &Ctx,
    room: &RoomId,
    b: &mut Broadcast,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    idle_since: &mut Option<Instant>,
    end_reply: &mut Option<oneshot::Sender<Result<(), CompositorError>>>,
    generation: u64,
) -> bool {
    let deadline = tokio::time::Instant::now() + delay;
    loop {
        if idle_since.is_some_and(|t| t.elapsed() >= ctx.opts.idle_end) {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return false,
            msg = rx.recv() => match msg {
                None => return true,
                Some(Msg::End(reply)) => {
                    *end_reply = Some(reply);
                    return true;
                }
                Some(Msg::Consumed(g, _, Ok(info))) if g <= generation => {
                    close_plain(ctx, room, info.transport_id);
                }
                Some(Msg::Consumed(..)) | Some(Msg::MixerLine(..)) => {}
                Some(other) => {
                    // No mixer runs: the stage is only remembered.
                    let _ = on_stage(ctx, room, b, other, idle_since).await;
                }
            },
        }
    }
}

/// A stage message (notice, room closed, resync): update the broadcast and the idle clock.
async fn on_stage(
    ctx: &Ctx,
    room: &RoomId,
    b: &mut Broadcast,
    msg: Msg,
    idle_since: &mut Option<Instant>,
) -> Vec<Action> {
    let actions = match msg {
        Msg::Notice(n) => b.notice(&n),
        // The router is gone, so is everyone in it.
        Msg::RoomClosed => b.load_roster(&[]),
        Msg::Resync => match ctx.worker.roster(room.clone()).await {
            Ok(roster) => b.load_roster(&roster),
            Err(_) => b.load_roster(&[]),
        },
        _ => Vec::new(),
    };
    if b.seats() == 0 {
        idle_since.get_or_insert_with(Instant::now);
    } else {
        *idle_since = None;
    }
    actions
}

fn on_mixer_line(
    ctx: &Ctx,
    id: &str,
    room: &RoomId,
    b: &mut Broadcast,
    mixer: &mut Mixer,
    line: String,
    me: &mpsc::UnboundedSender<Msg>,
) {
    match Event::parse(&line) {
        Ok(Some(ev)) => {
            debug!(%room, ?ev, "mixer event");
            let actions = match &ev {
                Event::Ready => b.mixer_started(),
                Event::Layout { tiles } => {
                    let tiles = *tiles;
                    let seated = b.seat_ids();
                    ctx.set_status(id, |s| {
                        s.tiles = tiles;
                        s.seats.retain(|p, _| seated.contains(p));
                    });
                    Vec::new()
                }
                Event::Tile { participant, state } => {
                    if b.seat_ids().contains(participant) {
                        let (p, st) = (participant.clone(), *state);
                        ctx.set_status(id, |s| {
                            s.seats.insert(p, st);
                        });
                    }
                    Vec::new()
                }
                Event::Warning { message } => {
                    warn!(%room, "mixer: {message}");
                    Vec::new()
                }
                _ => b.mixer_event(&ev),
            };
            execute(ctx, room, mixer, actions, me);
        }
        Ok(None) => {
            debug!(%room, "mixer: {line}");
            if mixer.tail.len() == TAIL_LINES {
                mixer.tail.pop_front();
            }
            mixer.tail.push_back(line);
        }
        Err(e) => warn!(%room, "unreadable mixer event ({e}): {line}"),
    }
}

/// Carry out actions; plain-consumer results come back to the broadcast task as messages.
fn execute(
    ctx: &Ctx,
    room: &RoomId,
    mixer: &Mixer,
    actions: Vec<Action>,
    me: &mpsc::UnboundedSender<Msg>,
) {
    for a in actions {
        match a {
            Action::Mixer(cmd) => {
                let _ = mixer.stdin.send(cmd.to_line());
            }
            Action::PlainConsume { producer, port } => {
                let worker = ctx.worker.clone();
                let room = room.clone();
                let me = me.clone();
                let generation = mixer.generation;
                tokio::spawn(async move {
                    let remote = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                    let res = worker.plain_consume(room, producer, remote).await;
                    let _ = me.send(Msg::Consumed(generation, producer, res));
                });
            }
            Action::ClosePlain { transport } => close_plain(ctx, room, transport),
        }
    }
}

fn close_plain(ctx: &Ctx, room: &RoomId, transport: rostrum_sfu::TransportId) {
    let worker = ctx.worker.clone();
    let room = room.clone();
    tokio::spawn(async move {
        let _ = worker.close_plain(room, transport).await;
    });
}

fn spawn_mixer(
    ctx: &Ctx,
    generation: u64,
    hls: &HlsHandle,
    me: mpsc::UnboundedSender<Msg>,
) -> std::io::Result<Mixer> {
    let o = &ctx.opts;
    let mut cmd = Process::new(&o.mixer_bin);
    cmd.arg("--rtcp-to")
        .arg(ctx.worker.plain_addr.to_string())
        .arg("--keyint-s")
        .arg(o.segment_target.as_secs().max(1).to_string())
        .args(&o.mixer_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("mixer pipes missing"));
    };
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = stdin_rx.recv().await {
            if stdin.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            let _ = stdin.flush().await;
        }
    });
    let feed = hls.clone();
    let pump = tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if feed.feed(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if me.send(Msg::MixerLine(generation, line)).is_err() {
                return;
            }
        }
    });
    Ok(Mixer {
        generation,
        child,
        stdin: stdin_tx,
        pump,
        tail: VecDeque::with_capacity(TAIL_LINES),
    })
}
