//! `rostrum-mixer`: one child process per broadcast. Mixes N plain-RTP participants into one
//! 1280x720 H.264 + AAC programme, fragmented MP4 on stdout. Commands come as JSON lines on stdin,
//! events leave as `@rostrum {json}` lines on stderr (see `rostrum_compositor::protocol`).
//!
//! Design (docs/compositor-plan.md): one long-lived GStreamer pipeline whose encoder never
//! restarts; participants are groups of elements added to / removed from the running
//! `compositor` and `audiomixer`. One control thread owns the pipeline; stdin, the bus and
//! signals only feed it messages.

mod mixer;
mod place;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use gstreamer as gst;
use rostrum_compositor::protocol::{Command, Event};

/// Command line, set by the node.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Args {
    /// Where RTCP (receiver reports, PLI/FIR) goes: the node's plain RTCP socket.
    #[arg(long)]
    pub rtcp_to: SocketAddr,
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// mp4mux fragment duration; 0 = one video frame. The node groups fragments into LL-HLS
    /// parts of exactly its part target: mp4mux cutting at the part target itself overshoots
    /// it by up to a frame (an AAC frame boundary decides), which grows PART-TARGET and with
    /// it every viewer's hold-back.
    #[arg(long, default_value_t = 0)]
    pub fragment_ms: u32,
    /// Keyframe interval: the HLS segment target.
    #[arg(long, default_value_t = 2)]
    pub keyint_s: u32,
    #[arg(long, default_value_t = 2500)]
    pub video_kbps: u32,
    #[arg(long, default_value_t = 128)]
    pub audio_kbps: u32,
    /// rtpbin jitterbuffer latency.
    #[arg(long, default_value_t = 150)]
    pub jitter_ms: u32,
    /// No decoded frame for this long → the seat shows its placeholder.
    #[arg(long, default_value_t = 700)]
    pub placeholder_after_ms: u64,
}

/// Everything the control thread reacts to.
pub enum Msg {
    Line(String),
    Eof,
    Signal,
    Bus(gst::Message),
}

/// Writes one event line to stderr (never stdout: that carries only the fMP4 bytes).
pub fn emit(ev: &Event) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(ev.to_line().as_bytes());
}

/// A plain log line on stderr (kept by the node as the crash tail).
pub fn log(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "rostrum-mixer: {msg}");
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            log(&format!("fatal: {e:#}"));
            std::process::exit(1);
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // Block SIGTERM/SIGINT before any thread exists (GStreamer's included) so only our sigwait
    // thread sees them and turns them into a clean EOS.
    let sigs = signals::block();
    gst::init().context("gst::init")?;
    let (tx, rx) = mpsc::channel::<Msg>();
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                signals::wait(&sigs);
                let _ = tx.send(Msg::Signal);
            })?;
    }
    let mut mixer = mixer::Mixer::new(args, tx.clone())?;
    mixer.play()?;
    emit(&Event::Ready);
    mixer.announce_layout();
    // stdin is read only now, but lines written earlier simply wait in the pipe: commands sent
    // before Ready are queued, not lost.
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_stdin(tx))?;

    let heartbeat = Arc::new(AtomicU64::new(mixer::now_ms()));
    let stopping = Arc::new(AtomicBool::new(false));
    watchdog(
        mixer.last_output.clone(),
        heartbeat.clone(),
        stopping.clone(),
    )?;

    let tick = Duration::from_millis(100);
    let mut next_tick = Instant::now() + tick;
    let mut paced = Paced::default();
    loop {
        heartbeat.store(mixer::now_ms(), Ordering::Relaxed);
        let wake = paced.wake().map_or(next_tick, |w| w.min(next_tick));
        let wait = wake.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Msg::Line(line)) => match Command::parse(&line) {
                Ok(Command::Stop) => break,
                Ok(cmd) => paced.push(cmd),
                Err(e) => emit(&Event::Warning {
                    message: format!("bad command: {e}"),
                }),
            },
            Ok(Msg::Eof) => {
                log("stdin closed: stopping");
                break;
            }
            Ok(Msg::Signal) => {
                log("signal: stopping");
                break;
            }
            Ok(Msg::Bus(m)) => mixer.bus_message(&m)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while let Some(cmd) = paced.next(Instant::now()) {
            mixer.command(cmd);
        }
        if Instant::now() >= next_tick {
            mixer.tick();
            next_tick = Instant::now() + tick;
        }
    }
    stopping.store(true, Ordering::Relaxed);
    heartbeat.store(mixer::now_ms(), Ordering::Relaxed);
    mixer.finish(&rx, Duration::from_secs(5))
}

/// Commands in arrival order, with new text overlays spaced out: a seat (its placeholder label)
/// or a video input (its name label) starts a `textoverlay`, and several starting at once crashed
/// pango inside GStreamer 1.22 (SIGSEGV in `g_type_class_get_private`, 8 of 8 bursts of nine
/// seats; 0 of 8 with 250 ms between them). Everything behind such a command waits its turn, so
/// the order the node relies on (seat before bind before add) holds.
#[derive(Default)]
struct Paced {
    queue: std::collections::VecDeque<Command>,
    /// When the next overlay-starting command may run.
    ready_at: Option<Instant>,
}

/// Least time between two commands that start a text overlay.
const OVERLAY_GAP: Duration = Duration::from_millis(250);

impl Paced {
    fn push(&mut self, cmd: Command) {
        self.queue.push_back(cmd);
    }

    fn starts_overlay(cmd: &Command) -> bool {
        matches!(cmd, Command::Seat { .. })
            || matches!(cmd, Command::Add(spec) if spec.kind == rostrum_compositor::protocol::MediaKind::Video)
    }

    /// The next command to run now, if any.
    fn next(&mut self, now: Instant) -> Option<Command> {
        let front = self.queue.front()?;
        if Self::starts_overlay(front) {
            if self.ready_at.is_some_and(|t| now < t) {
                return None;
            }
            self.ready_at = Some(now + OVERLAY_GAP);
        }
        self.queue.pop_front()
    }

    /// When a waiting command becomes due.
    fn wake(&self) -> Option<Instant> {
        self.queue.front().and(self.ready_at)
    }
}

/// A wedged pipeline must become a restart, not a frozen broadcast: if the compositor stops
/// producing or the control thread stops turning for 5 s, exit non-zero (the node restarts us;
/// one discontinuity). While stopping, the EOS wait is bounded here too.
fn watchdog(
    output: Arc<AtomicU64>,
    heartbeat: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    const STALL_MS: u64 = 5_000;
    const STOP_MS: u64 = 8_000;
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = mixer::now_ms();
            let (out, beat) = (
                output.load(Ordering::Relaxed),
                heartbeat.load(Ordering::Relaxed),
            );
            if stopping.load(Ordering::Relaxed) {
                if now.saturating_sub(beat) > STOP_MS {
                    log("watchdog: stop did not finish in time; exiting");
                    std::process::exit(0);
                }
            } else if now.saturating_sub(out) > STALL_MS || now.saturating_sub(beat) > STALL_MS {
                log(&format!(
                    "watchdog: wedged (last output frame {} ms ago, control loop {} ms ago); exiting",
                    now.saturating_sub(out),
                    now.saturating_sub(beat)
                ));
                std::process::exit(3);
            }
        })?;
    Ok(())
}

/// Reads stdin lines (lossy UTF-8, blank lines skipped) into the control channel.
fn read_stdin(tx: mpsc::Sender<Msg>) {
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lock.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if line.trim().is_empty() {
                    continue;
                }
                if tx.send(Msg::Line(line.into_owned())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Msg::Eof);
}

/// SIGTERM/SIGINT → a message, via a dedicated `sigwait` thread (no async-signal-safety worries).
mod signals {
    pub struct Set(libc::sigset_t);

    /// Blocks SIGTERM and SIGINT in the calling thread; threads spawned later inherit the mask.
    pub fn block() -> Set {
        // SAFETY: sigset_t is plain data initialised by sigemptyset before use; the calls only
        // read/write that local set and this thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Set(set)
        }
    }

    /// Returns when one of the blocked signals arrives.
    pub fn wait(set: &Set) {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` was initialised by `block`; `sig` is a valid out pointer.
        unsafe {
            libc::sigwait(&set.0, &mut sig);
        }
    }
}
