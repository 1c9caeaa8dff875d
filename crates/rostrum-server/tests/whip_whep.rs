//! End to end through the real `rostrum` binary over loopback UDP: a str0m publisher sends RTP by
//! WHIP, a str0m WHEP viewer receives it; bad requests get clear errors.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rostrum"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--public-ip",
            "127.0.0.1",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rostrum starts");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let base = loop {
        let line = lines.next().expect("rostrum prints its URLs").unwrap();
        if let Some(url) = line.trim().strip_prefix("stage:") {
            break url.trim().trim_end_matches("/stream").to_string();
        }
    };
    // Keep reading so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, base }
}

/// A str0m peer on its own loopback UDP socket.
struct Peer {
    rtc: Rtc,
    sock: UdpSocket,
    addr: SocketAddr,
    rtp_audio: usize,
    rtp_video: usize,
}

impl Peer {
    fn new() -> Peer {
        str0m::crypto::from_feature_flags().install_process_default();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, Protocol::Udp).unwrap());
        Peer {
            rtc,
            sock,
            addr,
            rtp_audio: 0,
            rtp_video: 0,
        }
    }

    fn offer(&mut self, dir: Direction) -> (String, SdpPendingOffer, Vec<(Mid, MediaKind)>) {
        let mut api = self.rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, dir, None, None, None);
        let v = api.add_media(MediaKind::Video, dir, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        (
            offer.to_sdp_string(),
            pending,
            vec![(a, MediaKind::Audio), (v, MediaKind::Video)],
        )
    }

    /// Drain output, then read at most one datagram.
    fn step(&mut self) {
        let opus = self.pt(Codec::Opus);
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    self.sock.send_to(&t.contents, t.destination).unwrap();
                }
                Output::Event(Event::RtpPacket(p)) => {
                    if p.header.payload_type == opus {
                        self.rtp_audio += 1;
                    } else {
                        self.rtp_video += 1;
                    }
                }
                Output::Event(_) => {}
            }
        }
        let mut buf = [0u8; 2000];
        let input = match self.sock.recv_from(&mut buf) {
            Ok((n, source)) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.addr,
                    contents: buf[..n].try_into().unwrap(),
                },
            ),
            Err(_) => Input::Timeout(Instant::now()),
        };
        self.rtc.handle_input(input).unwrap();
    }

    fn pt(&self, codec: Codec) -> str0m::media::Pt {
        let p = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == codec);
        p.unwrap().pt()
    }
}

fn post_sdp(url: &str, sdp: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/sdp")
        .body(sdp.to_string())
        .send()
        .unwrap()
}

fn location(r: &reqwest::blocking::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

#[test]
fn whip_publisher_reaches_whep_viewer_through_the_sfu() {
    let server = start_server(&[]);
    let mut publisher = Peer::new();
    let (offer, pending, mids) = publisher.offer(Direction::SendOnly);
    let r = post_sdp(&format!("{}/whip/e2e?name=bot", server.base), &offer);
    assert_eq!(r.status(), 201);
    let whip_loc = location(&r);
    assert!(whip_loc.starts_with("/whip/e2e/p-"), "{whip_loc}");
    let answer = SdpAnswer::from_sdp_string(&r.text().unwrap()).unwrap();
    publisher
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .unwrap();

    let pid = whip_loc.rsplit('/').next().unwrap().to_string();
    let mut viewer = Peer::new();
    let (offer, pending, _) = viewer.offer(Direction::RecvOnly);
    let r = post_sdp(&format!("{}/whep/e2e/{pid}", server.base), &offer);
    assert_eq!(r.status(), 201);
    let whep_loc = location(&r);
    let answer = SdpAnswer::from_sdp_string(&r.text().unwrap()).unwrap();
    viewer.rtc.sdp_api().accept_answer(pending, answer).unwrap();

    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(4) {
        // 50 packets/s of each kind, stamped by wall clock.
        let due = start.elapsed().as_millis() as u64 / 20;
        while sent < due {
            sent += 1;
            for (mid, kind) in &mids {
                let codec = if *kind == MediaKind::Audio {
                    Codec::Opus
                } else {
                    Codec::Vp8
                };
                let pt = publisher.pt(codec);
                if let Some(tx) = publisher.rtc.direct_api().stream_tx_by_mid(*mid, None) {
                    let rtp = RtpWrite::new(
                        pt,
                        SeqNo::from(sent),
                        (sent * 960) as u32,
                        Instant::now(),
                        vec![0x10, 0, 1, 2, 3],
                    );
                    tx.write_rtp(rtp.marker(true));
                }
            }
        }
        publisher.step();
        viewer.step();
    }
    assert!(
        viewer.rtp_audio > 50,
        "viewer got {} audio packets",
        viewer.rtp_audio
    );
    assert!(
        viewer.rtp_video > 50,
        "viewer got {} video packets",
        viewer.rtp_video
    );

    let http = reqwest::blocking::Client::new();
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("rostrum_participants 1"), "{metrics}");
    assert!(
        metrics.contains("rostrum_keyframe_requests_total"),
        "{metrics}"
    );
    assert_eq!(
        http.delete(format!("{}{whep_loc}", server.base))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.delete(format!("{}{whip_loc}", server.base))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.delete(format!("{}{whip_loc}", server.base))
            .send()
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let server = start_server(&[]);
    let base = &server.base;
    let r = post_sdp(&format!("{base}/whip/room1"), "this is not sdp");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("bad-sdp"));
    let r = post_sdp(&format!("{base}/whip/bad%2Froom"), "v=0\r\n");
    assert_eq!(r.status(), 400);
    let r = post_sdp(&format!("{base}/whep/nosuchroom/p-1"), "v=0\r\n");
    assert_eq!(r.status(), 404);
    let r = post_sdp(&format!("{base}/whip/room1"), &"a".repeat(70 * 1024));
    assert_eq!(r.status(), 413);
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/whip/room1"))
        .header("content-type", "text/plain")
        .body("v=0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = reqwest::blocking::Client::new()
        .delete(format!("{base}/whip/room1/zzz"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let health = reqwest::blocking::get(format!("{base}/healthz")).unwrap();
    assert_eq!(health.status(), 200, "the node survived all of it");
}

#[test]
fn invalid_configuration_is_refused_at_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_rostrum"))
        .args(["serve", "--bind-ip", "0.0.0.0", "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public_ip"), "{err}");
}
