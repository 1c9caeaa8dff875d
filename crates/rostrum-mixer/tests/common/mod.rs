//! Test harness: runs the built `rostrum-mixer`, feeds commands, collects its events, and starts
//! real RTP senders (`gst-launch-1.0`). Everything is on ports the OS picks; children are killed
//! on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command as Process, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rostrum_compositor::protocol::{Command, Event, InputSpec, MediaKind};

/// The tests each run a 720p encoder; on a small machine two at once would starve each other.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Mixer {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<(Instant, Event)>,
    seen: Mutex<Vec<(Instant, Event)>>,
    /// Every stderr line (events and logs), for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
    pub out: PathBuf,
    pub started: Instant,
    _dir: tempfile::TempDir,
}

impl Mixer {
    pub fn start(rtcp_to: &str) -> Mixer {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("programme.mp4");
        let file = std::fs::File::create(&out).expect("output file");
        let mut child = Process::new(env!("CARGO_BIN_EXE_rostrum-mixer"))
            .args(["--rtcp-to", rtcp_to])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(file))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rostrum-mixer");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(Some(ev)) = Event::parse(&line) {
                    let _ = tx.send((Instant::now(), ev));
                }
                log2.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Mixer {
            child,
            stdin,
            events: rx,
            seen: Mutex::new(Vec::new()),
            log,
            out,
            started: Instant::now(),
            _dir: dir,
        }
    }

    pub fn send(&mut self, cmd: &Command) {
        self.send_raw(&cmd.to_line());
    }

    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).expect("write command");
        stdin.flush().expect("flush command");
    }

    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let start = log.len().saturating_sub(40);
        log[start..].join("\n")
    }

    /// Waits for the first event matching `want`; panics (with the stderr tail) on timeout.
    pub fn expect(&self, what: &str, timeout: Duration, want: impl Fn(&Event) -> bool) -> Event {
        self.expect_at(what, timeout, want).1
    }

    pub fn expect_at(
        &self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Event) -> bool,
    ) -> (Instant, Event) {
        // Events may arrive in any order (two tiles going live): unmatched ones wait for a later
        // `expect` instead of being dropped.
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = seen.iter().position(|(_, ev)| want(ev)) {
                return seen.remove(i);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((at, ev)) if want(&ev) => return (at, ev),
                Ok(other) => self
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(other),
                Err(_) => panic!(
                    "no {what} within {timeout:?}; stderr tail:\n{}",
                    self.log_tail()
                ),
            }
        }
    }

    /// Forgets events received so far (so a later `expect` only sees new ones).
    pub fn forget(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.clear();
        while self.events.try_recv().is_ok() {}
    }

    pub fn bind(&mut self, input: &str) -> u16 {
        self.send(&Command::Bind {
            input: input.into(),
        });
        match self.expect(
            "bound",
            Duration::from_secs(5),
            |e| matches!(e, Event::Bound { input: i, .. } if i == input),
        ) {
            Event::Bound { port, .. } => port,
            _ => unreachable!(),
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `stop`, then the exit status (bounded wait).
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.send(&Command::Stop);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "mixer did not exit after stop; stderr tail:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn out_len(&self) -> u64 {
        std::fs::metadata(&self.out).map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for Mixer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn video(input: &str, participant: &str, codec: &str, pt: u8, ssrc: u32) -> Command {
    Command::Add(InputSpec {
        input: input.into(),
        participant: participant.into(),
        kind: MediaKind::Video,
        codec: codec.into(),
        payload_type: pt,
        clock_rate: 90_000,
        channels: None,
        ssrc,
        fmtp: if codec == "H264" {
            "packetization-mode=1;profile-level-id=42e01f".into()
        } else {
            String::new()
        },
    })
}

pub fn opus(input: &str, participant: &str, pt: u8, ssrc: u32) -> Command {
    Command::Add(InputSpec {
        input: input.into(),
        participant: participant.into(),
        kind: MediaKind::Audio,
        codec: "opus".into(),
        payload_type: pt,
        clock_rate: 48_000,
        channels: Some(2),
        ssrc,
        fmtp: "minptime=10;useinbandfec=1".into(),
    })
}

/// A `gst-launch-1.0` RTP sender, killed on drop.
pub struct Sender(Child);

impl Sender {
    pub fn launch(pipeline: &str) -> Sender {
        let child = Process::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gst-launch-1.0");
        Sender(child)
    }

    /// 640x360 VP8 (a keyframe a second, so a late joiner needs no PLI) and optionally Opus.
    pub fn vp8_opus(vport: u16, vssrc: u32, audio: Option<(u16, u32)>) -> Sender {
        Sender::vp8_opus_from(vport, vssrc, -1, audio)
    }

    /// Same, with the first RTP sequence number fixed (-1: random).
    pub fn vp8_opus_from(vport: u16, vssrc: u32, seq: i32, audio: Option<(u16, u32)>) -> Sender {
        let mut p = format!(
            "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 ! \
             vp8enc deadline=1 keyframe-max-dist=30 ! \
             rtpvp8pay pt=96 ssrc={vssrc} seqnum-offset={seq} ! \
             udpsink host=127.0.0.1 port={vport}"
        );
        if let Some((aport, assrc)) = audio {
            p.push_str(&format!(
                " audiotestsrc is-live=true ! audioconvert ! opusenc ! rtpopuspay pt=111 \
                 ssrc={assrc} ! udpsink host=127.0.0.1 port={aport}"
            ));
        }
        Sender::launch(&p)
    }

    pub fn h264(port: u16, ssrc: u32) -> Sender {
        Sender::launch(&format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1 ! \
             x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! \
             rtph264pay pt=102 ssrc={ssrc} config-interval=1 ! udpsink host=127.0.0.1 port={port}"
        ))
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stands in for the node's plain RTCP socket: records the source port of every datagram.
pub struct RtcpSink {
    pub addr: String,
    pub from_ports: Arc<Mutex<Vec<u16>>>,
    /// Source ports of compound packets carrying a PLI or FIR.
    pub key_requests: Arc<Mutex<Vec<u16>>>,
}

/// Walks a compound RTCP packet for payload-specific feedback PLI (206/1) or FIR (206/4).
fn has_keyframe_request(mut pkt: &[u8]) -> bool {
    while pkt.len() >= 4 {
        let (fmt, pt) = (pkt[0] & 0x1f, pkt[1]);
        if pt == 206 && (fmt == 1 || fmt == 4) {
            return true;
        }
        let len = (u16::from_be_bytes([pkt[2], pkt[3]]) as usize + 1) * 4;
        if len > pkt.len() {
            break;
        }
        pkt = &pkt[len..];
    }
    false
}

impl RtcpSink {
    pub fn start() -> RtcpSink {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind rtcp sink");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr").to_string();
        let from_ports = Arc::new(Mutex::new(Vec::new()));
        let ports = from_ports.clone();
        let key_requests = Arc::new(Mutex::new(Vec::new()));
        let plis = key_requests.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // Ends when the test process does; a test lasts seconds.
            loop {
                if let Ok((len, from)) = sock.recv_from(&mut buf) {
                    ports
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(from.port());
                    if has_keyframe_request(&buf[..len]) {
                        plis.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(from.port());
                    }
                }
            }
        });
        RtcpSink {
            addr,
            from_ports,
            key_requests,
        }
    }

    /// Whether a PLI or FIR came from `port`.
    pub fn key_request_from(&self, port: u16) -> bool {
        self.key_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&port)
    }

    pub fn saw_from(&self, port: u16) -> bool {
        self.from_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&port)
    }
}

/// `ffprobe` JSON of the programme's streams and format.
pub fn ffprobe(path: &std::path::Path) -> serde_json::Value {
    let out = Process::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate,channels:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// Asserts the file is H.264 1280x720 + AAC of at least `min_s` seconds.
pub fn assert_programme(path: &std::path::Path, min_s: f64) {
    let j = ffprobe(path);
    let streams = j["streams"].as_array().cloned().unwrap_or_default();
    let v = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream: {j}"));
    assert_eq!(v["codec_name"], "h264", "{j}");
    assert_eq!(v["width"], 1280, "{j}");
    assert_eq!(v["height"], 720, "{j}");
    let a = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("no audio stream: {j}"));
    assert_eq!(a["codec_name"], "aac", "{j}");
    let dur: f64 = j["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    assert!(dur >= min_s, "programme only {dur} s long: {j}");
}
