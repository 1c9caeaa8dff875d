//! Simulated WebRTC clients on one tokio runtime: a WHIP publisher sending the clip in real
//! time, and a WHEP subscriber measuring what it receives. Each is a str0m `Rtc` (frame mode,
//! not RTP mode) on its own UDP socket, driven by one task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::media::Clip;
use crate::stamp::{now_us, Stamp};

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("udp: {0}")]
    Io(#[from] std::io::Error),
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("sdp: {0}")]
    Sdp(String),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("no Location header in the answer")]
    NoLocation,
    #[error("not connected within {0:?}")]
    ConnectTimeout(Duration),
    #[error("stopped before it started")]
    Stopped,
}

/// Counters the progress line reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    pub publishers_joined: AtomicU64,
    pub subscribers_joined: AtomicU64,
    pub video_frames_sent: AtomicU64,
    pub video_frames_received: AtomicU64,
    pub hls_viewers_playing: AtomicU64,
    pub hls_parts: AtomicU64,
    pub errors: AtomicU64,
}

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// One `Rtc` and its socket.
struct Conn {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
    timeout: Instant,
}

impl Conn {
    async fn new(local_ip: IpAddr) -> Result<Conn, PeerError> {
        let sock = UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?;
        let local = sock.local_addr()?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(Instant::now());
        let cand =
            Candidate::host(local, Protocol::Udp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        rtc.add_local_candidate(cand);
        Ok(Conn {
            rtc,
            sock,
            local,
            buf: vec![0u8; 2000],
            timeout: Instant::now(),
        })
    }

    /// Offers one audio and one video m-line in `dir`; returns the SDP and the negotiation to
    /// finish with the answer.
    fn offer(
        &mut self,
        dir: Direction,
    ) -> Result<(String, str0m::change::SdpPendingOffer, Mid, Mid), PeerError> {
        let mut api = self.rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, dir, None, None, None);
        let v = api.add_media(MediaKind::Video, dir, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| PeerError::Sdp("nothing to offer".into()))?;
        Ok((offer.to_sdp_string(), pending, a, v))
    }

    fn accept(
        &mut self,
        pending: str0m::change::SdpPendingOffer,
        answer: &str,
    ) -> Result<(), PeerError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| PeerError::Sdp(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        Ok(())
    }

    /// Sends what str0m wants sent and collects its events.
    fn drain(&mut self, events: &mut Vec<Event>) -> Result<(), PeerError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as a network would.
                    let _ = self.sock.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => events.push(e),
            }
        }
    }

    /// Waits for a datagram, str0m's timeout, `until` or a stop; feeds str0m. Returns false on
    /// stop.
    async fn wait(
        &mut self,
        until: Instant,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, PeerError> {
        let wake = self.timeout.min(until);
        tokio::select! {
            r = self.sock.recv_from(&mut self.buf) => {
                let (n, source) = r?;
                if let Ok(contents) = self.buf[..n].try_into() {
                    self.rtc.handle_input(Input::Receive(
                        Instant::now(),
                        Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                    ))?;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => return Ok(false),
        }
        if *stop.borrow() {
            return Ok(false);
        }
        let now = Instant::now();
        if now >= self.timeout {
            self.rtc.handle_input(Input::Timeout(now))?;
        }
        Ok(true)
    }
}

fn pt_for(rtc: &mut Rtc, mid: Mid, codec: Codec) -> Option<Pt> {
    let w = rtc.writer(mid)?;
    let pt = w
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt());
    pt
}

/// POSTs an SDP offer; returns the answer and the absolute session URL.
pub async fn post_offer(
    http: &reqwest::Client,
    url: &str,
    sdp: String,
) -> Result<(String, String), PeerError> {
    let resp = http
        .post(url)
        .header("content-type", "application/sdp")
        .body(sdp)
        .send()
        .await?;
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await?;
    if status.as_u16() != 201 {
        return Err(PeerError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body: body.chars().take(200).collect(),
        });
    }
    let location = location.ok_or(PeerError::NoLocation)?;
    let abs = reqwest::Url::parse(url)
        .and_then(|u| u.join(&location))
        .map(|u| u.to_string())
        .unwrap_or(location);
    Ok((body, abs))
}

async fn delete(http: &reqwest::Client, url: &str) {
    let _ = http
        .delete(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherResult {
    pub name: String,
    pub participant: Option<String>,
    pub join_ms: Option<f64>,
    pub video_frames_sent: u64,
    pub audio_packets_sent: u64,
    pub bytes_sent: u64,
    pub keyframe_requests: u64,
    pub error: Option<String>,
}

pub struct PublisherArgs {
    pub http: reqwest::Client,
    pub base: String,
    pub room: String,
    pub name: String,
    pub local_ip: IpAddr,
    pub clip: Arc<Clip>,
    pub live: Arc<Live>,
    /// Where the participant id goes once the node has answered.
    pub id_tx: watch::Sender<Option<String>>,
}

/// Joins by WHIP and sends the clip in a loop at real-time pace until `stop`.
pub async fn publisher(a: PublisherArgs, mut stop: watch::Receiver<bool>) -> PublisherResult {
    let mut res = PublisherResult {
        name: a.name.clone(),
        ..Default::default()
    };
    let mut session = None;
    if let Err(e) = publish(&a, &mut stop, &mut res, &mut session).await {
        a.live.errors.fetch_add(1, Ordering::Relaxed);
        res.error = Some(e.to_string());
    }
    if let Some(url) = session {
        delete(&a.http, &url).await;
    }
    res
}

async fn publish(
    a: &PublisherArgs,
    stop: &mut watch::Receiver<bool>,
    res: &mut PublisherResult,
    session: &mut Option<String>,
) -> Result<(), PeerError> {
    let t0 = Instant::now();
    let mut c = Conn::new(a.local_ip).await?;
    let (offer, pending, amid, vmid) = c.offer(Direction::SendOnly)?;
    let url = format!("{}/whip/{}?name={}", a.base, a.room, a.name);
    let (answer, location) = post_offer(&a.http, &url, offer).await?;
    *session = Some(location.clone());
    res.participant = location.rsplit('/').next().map(str::to_string);
    let _ = a.id_tx.send(res.participant.clone());
    c.accept(pending, &answer)?;

    let mut events = Vec::new();
    let mut connected_at: Option<Instant> = None;
    let (mut vpt, mut apt) = (None, None);
    let frame_dur = Duration::from_secs_f64(1.0 / a.clip.fps.max(1) as f64);
    let (mut vi, mut ai) = (0u64, 0u64); // frames / packets sent (global, across loops)
    let mut audio_samples = 0u64;
    let (mut next_v, mut next_a) = (Instant::now(), Instant::now());
    loop {
        c.drain(&mut events)?;
        for e in events.drain(..) {
            match e {
                Event::Connected => {
                    let now = Instant::now();
                    connected_at = Some(now);
                    res.join_ms = Some(ms(now - t0));
                    a.live.publishers_joined.fetch_add(1, Ordering::Relaxed);
                    (next_v, next_a) = (now, now);
                }
                Event::KeyframeRequest(_) => res.keyframe_requests += 1,
                _ => {}
            }
        }
        let now = Instant::now();
        let Some(_) = connected_at else {
            if now - t0 > CONNECT_TIMEOUT {
                return Err(PeerError::ConnectTimeout(CONNECT_TIMEOUT));
            }
            if !c.wait(now + Duration::from_millis(50), stop).await? {
                return Ok(());
            }
            continue;
        };
        // Far behind (a starved runtime): skip ahead instead of bursting.
        if now.saturating_duration_since(next_v) > Duration::from_millis(500) {
            next_v = now;
        }
        if now.saturating_duration_since(next_a) > Duration::from_millis(500) {
            next_a = now;
        }
        if vpt.is_none() {
            vpt = pt_for(&mut c.rtc, vmid, Codec::Vp8);
            apt = pt_for(&mut c.rtc, amid, Codec::Opus);
        }
        while next_v <= now && !a.clip.video.is_empty() {
            let frame = &a.clip.video[(vi % a.clip.video.len() as u64) as usize];
            let stamp = Stamp {
                send_us: now_us(),
                counter: vi as u32,
            };
            let data = stamp.append(frame);
            let rtp_time = MediaTime::new(
                vi * 90_000 / a.clip.fps.max(1) as u64,
                Frequency::NINETY_KHZ,
            );
            if let (Some(pt), Some(w)) = (vpt, c.rtc.writer(vmid)) {
                res.bytes_sent += data.len() as u64;
                w.write(pt, Instant::now(), rtp_time, data)?;
                res.video_frames_sent += 1;
                a.live.video_frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            vi += 1;
            next_v += frame_dur;
        }
        while next_a <= now && !a.clip.audio.is_empty() {
            let (pkt, samples) = &a.clip.audio[(ai % a.clip.audio.len() as u64) as usize];
            let rtp_time = MediaTime::new(audio_samples, Frequency::FORTY_EIGHT_KHZ);
            if let (Some(pt), Some(w)) = (apt, c.rtc.writer(amid)) {
                res.bytes_sent += pkt.len() as u64;
                w.write(pt, Instant::now(), rtp_time, pkt.clone())?;
                res.audio_packets_sent += 1;
            }
            ai += 1;
            audio_samples += *samples as u64;
            next_a += Duration::from_micros(*samples as u64 * 1_000_000 / 48_000);
        }
        c.drain(&mut events)?;
        if !c.wait(next_v.min(next_a), stop).await? {
            return Ok(());
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SubscriberResult {
    pub name: String,
    pub publisher: String,
    pub join_ms: Option<f64>,
    /// From the WHEP request to the first complete video frame.
    pub time_to_first_frame_ms: Option<f64>,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// RTP packets in the frames str0m handed over, and the sequence-number span they cover.
    pub packets_received: u64,
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub loss_pct: f64,
    /// Stamped frames whose counter never arrived (between the first and last seen).
    pub video_frames_missing: u64,
    pub bytes_received: u64,
    pub video_kbps: f64,
    pub nacks_sent: u64,
    #[serde(skip)]
    pub delays_ms: Vec<f64>,
    pub error: Option<String>,
}

pub struct SubscriberArgs {
    pub http: reqwest::Client,
    pub base: String,
    pub room: String,
    pub name: String,
    pub local_ip: IpAddr,
    pub live: Arc<Live>,
    pub publisher_name: String,
    pub publisher_id: watch::Receiver<Option<String>>,
}

#[derive(Default)]
struct SeqTrack {
    first: Option<u64>,
    max: u64,
    received: u64,
}

/// Plays one publisher by WHEP until `stop`.
pub async fn subscriber(
    mut a: SubscriberArgs,
    mut stop: watch::Receiver<bool>,
) -> SubscriberResult {
    let mut res = SubscriberResult {
        name: a.name.clone(),
        publisher: a.publisher_name.clone(),
        ..Default::default()
    };
    let mut session = None;
    if let Err(e) = subscribe(&mut a, &mut stop, &mut res, &mut session).await {
        if !matches!(e, PeerError::Stopped) {
            a.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        res.error = Some(e.to_string());
    }
    if let Some(url) = session {
        delete(&a.http, &url).await;
    }
    res
}

async fn subscribe(
    a: &mut SubscriberArgs,
    stop: &mut watch::Receiver<bool>,
    res: &mut SubscriberResult,
    session: &mut Option<String>,
) -> Result<(), PeerError> {
    // Wait for the publisher to be known to the node.
    let id = tokio::select! {
        r = a.publisher_id.wait_for(|v| v.is_some()) => r.ok().and_then(|v| v.clone()),
        _ = stop.changed() => None,
    }
    .ok_or(PeerError::Stopped)?;
    let t0 = Instant::now();
    let mut c = Conn::new(a.local_ip).await?;
    let (offer, pending, amid, vmid) = c.offer(Direction::RecvOnly)?;
    let url = format!("{}/whep/{}/{}", a.base, a.room, id);
    let (answer, location) = post_offer(&a.http, &url, offer).await?;
    *session = Some(location);
    c.accept(pending, &answer)?;

    let mut events = Vec::new();
    let mut seqs: HashMap<Mid, SeqTrack> = HashMap::new();
    let mut nacks: HashMap<Mid, u64> = HashMap::new();
    let mut video_bytes = 0u64;
    let (mut first_v, mut last_v): (Option<Instant>, Option<Instant>) = (None, None);
    let (mut c_first, mut c_last, mut c_count) = (None::<u32>, 0u32, 0u64);
    loop {
        c.drain(&mut events)?;
        for e in events.drain(..) {
            match e {
                Event::Connected => {
                    res.join_ms = Some(ms(t0.elapsed()));
                    a.live.subscribers_joined.fetch_add(1, Ordering::Relaxed);
                }
                Event::MediaData(d) => {
                    let now = Instant::now();
                    let t = seqs.entry(d.mid).or_default();
                    let (s, e) = (**d.seq_range.start(), **d.seq_range.end());
                    t.first = Some(t.first.map_or(s, |f| f.min(s)));
                    t.max = t.max.max(e);
                    t.received += e.saturating_sub(s) + 1;
                    res.bytes_received += d.data.len() as u64;
                    if d.mid == vmid {
                        res.video_frames += 1;
                        video_bytes += d.data.len() as u64;
                        a.live.video_frames_received.fetch_add(1, Ordering::Relaxed);
                        if res.time_to_first_frame_ms.is_none() {
                            res.time_to_first_frame_ms = Some(ms(now - t0));
                        }
                        first_v.get_or_insert(now);
                        last_v = Some(now);
                        if let Some(st) = Stamp::decode(&d.data) {
                            // Time since the last packet of the frame arrived is ours, not the network's.
                            let here =
                                now.saturating_duration_since(d.network_time).as_micros() as u64;
                            let delay_us = now_us() as i64 - st.send_us as i64 - here as i64;
                            res.delays_ms.push(delay_us as f64 / 1000.0);
                            c_first = Some(c_first.map_or(st.counter, |f| f.min(st.counter)));
                            c_last = c_last.max(st.counter);
                            c_count += 1;
                        }
                    } else if d.mid == amid {
                        res.audio_frames += 1;
                    }
                }
                Event::MediaIngressStats(s) => {
                    nacks.insert(s.mid, s.nacks);
                }
                _ => {}
            }
        }
        if res.join_ms.is_none() && t0.elapsed() > CONNECT_TIMEOUT {
            return Err(PeerError::ConnectTimeout(CONNECT_TIMEOUT));
        }
        let cont = c
            .wait(Instant::now() + Duration::from_millis(200), stop)
            .await?;
        // Keep the totals current: the run may stop us at any wake-up.
        res.packets_received = seqs.values().map(|t| t.received).sum();
        res.packets_expected = seqs
            .values()
            .map(|t| t.first.map_or(0, |f| t.max - f + 1))
            .sum();
        res.packets_lost = res.packets_expected.saturating_sub(res.packets_received);
        res.loss_pct = if res.packets_expected > 0 {
            100.0 * res.packets_lost as f64 / res.packets_expected as f64
        } else {
            0.0
        };
        res.nacks_sent = nacks.values().sum();
        if let Some(f) = c_first {
            res.video_frames_missing = (c_last as u64 - f as u64 + 1).saturating_sub(c_count);
        }
        if let (Some(f), Some(l)) = (first_v, last_v) {
            let secs = (l - f).as_secs_f64();
            if secs > 0.0 {
                res.video_kbps = video_bytes as f64 * 8.0 / secs / 1000.0;
            }
        }
        if !cont {
            return Ok(());
        }
    }
}
