//! Shared by the integration tests: start the real `rostrum` binary on free ports, and a str0m
//! peer that publishes or plays over loopback UDP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(extra: &[&str]) -> Server {
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
pub struct Peer {
    pub rtc: Rtc,
    pub sock: UdpSocket,
    pub addr: SocketAddr,
    pub rtp_audio: usize,
    pub rtp_video: usize,
}

impl Peer {
    pub fn new() -> Peer {
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

    pub fn offer(&mut self, dir: Direction) -> (String, SdpPendingOffer, Vec<(Mid, MediaKind)>) {
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
    pub fn step(&mut self) {
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

    /// Sends every packet due by now at 50 packets/s per m-line (wall clock since `start`; `sent`
    /// counts rounds), each with the payload `payload` makes for its kind; marker set, 20 ms apart.
    pub fn send_due(
        &mut self,
        start: Instant,
        sent: &mut u64,
        mids: &[(Mid, MediaKind)],
        mut payload: impl FnMut(MediaKind) -> Vec<u8>,
    ) {
        let due = start.elapsed().as_millis() as u64 / 20;
        while *sent < due {
            *sent += 1;
            for (mid, kind) in mids {
                let (codec, ticks) = match kind {
                    MediaKind::Audio => (Codec::Opus, 960),
                    MediaKind::Video => (Codec::Vp8, 1800),
                };
                let pt = self.pt(codec);
                let data = payload(*kind);
                if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(*mid, None) {
                    let rtp = RtpWrite::new(
                        pt,
                        SeqNo::from(*sent),
                        (*sent * ticks) as u32,
                        Instant::now(),
                        data,
                    );
                    tx.write_rtp(rtp.marker(true));
                }
            }
        }
    }

    pub fn pt(&self, codec: Codec) -> str0m::media::Pt {
        let p = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == codec);
        p.unwrap().pt()
    }
}

pub fn post_sdp(url: &str, sdp: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/sdp")
        .body(sdp.to_string())
        .send()
        .unwrap()
}

pub fn location(r: &reqwest::blocking::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}
