//! One load-test run: ramp the clients up, let them run, stop them, and build the report.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;
use tokio::sync::watch;

use crate::media::{self, Clip, VideoSpec};
use crate::metrics;
use crate::peer::{self, Live, PublisherResult, SubscriberResult};
use crate::stats::{self, check, summarize, Summary, Thresholds};
use crate::viewer::{self, ViewerResult};

#[derive(Debug, Error)]
pub enum RunError {
    #[error("bad --url {0:?}")]
    Url(String),
    #[error("media clip: {0}")]
    Media(#[from] media::MediaError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("bad --room {0:?} (letters, digits, '-' and '_')")]
    Room(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub url: String,
    pub room: String,
    pub publishers: usize,
    pub subscribers: usize,
    pub hls_viewers: usize,
    pub duration_s: f64,
    pub ramp_per_s: f64,
    pub video: String,
    pub video_kbps: u32,
    pub clip_seconds: u32,
    #[serde(skip)]
    pub spec: VideoSpec,
    /// Local address for the peers' sockets; `None` picks the one that routes to the node.
    pub local_ip: Option<IpAddr>,
    pub thresholds: Thresholds,
    #[serde(skip)]
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishersReport {
    pub count: usize,
    pub joined: usize,
    pub join_ms: Option<Summary>,
    pub video_frames_sent: u64,
    pub audio_packets_sent: u64,
    pub errors: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscribersReport {
    pub count: usize,
    pub joined: usize,
    /// Subscribers that got at least one video frame.
    pub receiving: usize,
    pub join_ms: Option<Summary>,
    pub time_to_first_frame_ms: Option<Summary>,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub loss_pct: f64,
    pub video_frames_missing: u64,
    /// One-way delay publisher → node → subscriber, from the frames' stamps (same clock).
    pub delay_ms: Option<Summary>,
    pub video_kbps: Option<Summary>,
    pub errors: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HlsReport {
    pub count: usize,
    pub started: usize,
    pub startup_ms: Option<Summary>,
    pub parts: u64,
    pub bytes: u64,
    pub part_latency_ms: Option<Summary>,
    pub live_edge_delay_ms: Option<Summary>,
    pub stalls: u64,
    pub http_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub forwarded_packets_start: Option<f64>,
    pub forwarded_packets_end: Option<f64>,
    pub forwarded_packets_per_s: Option<f64>,
    pub metrics_window_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: RunConfig,
    pub started_at_ms: u64,
    pub elapsed_s: f64,
    pub publishers: PublishersReport,
    pub subscribers: SubscribersReport,
    pub hls: HlsReport,
    pub server: ServerReport,
    pub violations: Vec<String>,
    pub passed: bool,
    pub clients: Clients,
}

#[derive(Debug, Clone, Serialize)]
pub struct Clients {
    pub publishers: Vec<PublisherResult>,
    pub subscribers: Vec<SubscriberResult>,
    pub hls_viewers: Vec<ViewerResult>,
}

fn valid_room(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The local address that routes to the node (no packet is sent).
async fn route_to(url: &reqwest::Url) -> Result<IpAddr, RunError> {
    let host = url
        .host_str()
        .ok_or_else(|| RunError::Url(url.to_string()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let target = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| RunError::Url(url.to_string()))?;
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(target)?;
    Ok(s.local_addr()?.ip())
}

async fn forwarded(http: &reqwest::Client, base: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metrics::counter(&text, "rostrum_rtp_packets_forwarded_total")
}

pub async fn run(cfg: RunConfig) -> Result<Report, RunError> {
    let base = cfg.url.trim_end_matches('/').to_string();
    let url = reqwest::Url::parse(&base).map_err(|_| RunError::Url(cfg.url.clone()))?;
    if !valid_room(&cfg.room) {
        return Err(RunError::Room(cfg.room.clone()));
    }
    let local_ip = match cfg.local_ip {
        Some(ip) => ip,
        None => route_to(&url).await?,
    };
    let (spec, kbps, secs) = (cfg.spec, cfg.video_kbps, cfg.clip_seconds);
    let clip: Arc<Clip> = Arc::new(
        tokio::task::spawn_blocking(move || media::ensure_clip(spec, kbps, secs))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let live = Arc::new(Live::default());
    let (stop_tx, stop_rx) = watch::channel(false);

    let started_at_ms = crate::stamp::now_us() / 1000;
    let t0 = Instant::now();
    let fwd_start = forwarded(&http, &base).await;
    let fwd_start_at = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / cfg.ramp_per_s.max(0.001));
    let mut launch_at = t0;

    let mut pubs = Vec::new();
    let mut ids = Vec::new();
    for i in 0..cfg.publishers {
        let (id_tx, id_rx) = watch::channel(None);
        ids.push(id_rx);
        let a = peer::PublisherArgs {
            http: http.clone(),
            base: base.clone(),
            room: cfg.room.clone(),
            name: format!("lt-pub-{i}"),
            local_ip,
            clip: clip.clone(),
            live: live.clone(),
            id_tx,
        };
        let stop = stop_rx.clone();
        let at = launch_at;
        pubs.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            peer::publisher(a, stop).await
        }));
        launch_at += gap;
    }
    let mut subs = Vec::new();
    for i in 0..cfg.subscribers {
        let Some(target) = (!ids.is_empty()).then(|| i % ids.len()) else {
            break;
        };
        let a = peer::SubscriberArgs {
            http: http.clone(),
            base: base.clone(),
            room: cfg.room.clone(),
            name: format!("lt-sub-{i}"),
            local_ip,
            live: live.clone(),
            publisher_name: format!("lt-pub-{target}"),
            publisher_id: ids[target].clone(),
        };
        let stop = stop_rx.clone();
        let at = launch_at;
        subs.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            peer::subscriber(a, stop).await
        }));
        launch_at += gap;
    }
    let master = url
        .join(&format!("/hls/{}/master.m3u8", cfg.room))
        .map_err(|_| RunError::Url(cfg.url.clone()))?;
    let mut viewers = Vec::new();
    for i in 0..cfg.hls_viewers {
        // Each viewer its own connection pool, like separate players.
        let client = reqwest::Client::builder().build()?;
        let (m, l, s, at) = (master.clone(), live.clone(), stop_rx.clone(), launch_at);
        viewers.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            viewer::hls_viewer(client, format!("lt-hls-{i}"), m, l, s).await
        }));
        launch_at += gap;
    }

    let end = t0 + Duration::from_secs_f64(cfg.duration_s);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(end.into()) => break,
        }
        if cfg.progress {
            let l = &live;
            eprintln!(
                "[{:>5.1}s] publishers {}/{}  subscribers {}/{}  hls playing {}/{}  video frames sent {} received {}  hls parts {}  errors {}",
                t0.elapsed().as_secs_f64(),
                l.publishers_joined.load(Ordering::Relaxed),
                cfg.publishers,
                l.subscribers_joined.load(Ordering::Relaxed),
                cfg.subscribers,
                l.hls_viewers_playing.load(Ordering::Relaxed),
                cfg.hls_viewers,
                l.video_frames_sent.load(Ordering::Relaxed),
                l.video_frames_received.load(Ordering::Relaxed),
                l.hls_parts.load(Ordering::Relaxed),
                l.errors.load(Ordering::Relaxed),
            );
        }
    }
    let fwd_end = forwarded(&http, &base).await;
    let window = fwd_start_at.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let elapsed_s = t0.elapsed().as_secs_f64();

    let mut publishers = Vec::new();
    for h in pubs {
        publishers.push(h.await.unwrap_or_else(|e| PublisherResult {
            error: Some(format!("task: {e}")),
            ..Default::default()
        }));
    }
    let mut subscribers = Vec::new();
    for h in subs {
        subscribers.push(h.await.unwrap_or_else(|e| SubscriberResult {
            error: Some(format!("task: {e}")),
            ..Default::default()
        }));
    }
    let mut hls_viewers = Vec::new();
    for h in viewers {
        hls_viewers.push(h.await.unwrap_or_else(|e| ViewerResult {
            last_error: Some(format!("task: {e}")),
            ..Default::default()
        }));
    }
    let server = ServerReport {
        forwarded_packets_start: fwd_start,
        forwarded_packets_end: fwd_end,
        forwarded_packets_per_s: match (fwd_start, fwd_end) {
            (Some(a), Some(b)) if window > 0.0 => Some((b - a) / window),
            _ => None,
        },
        metrics_window_s: window,
    };
    Ok(build_report(
        cfg,
        started_at_ms,
        elapsed_s,
        server,
        Clients {
            publishers,
            subscribers,
            hls_viewers,
        },
    ))
}

/// Aggregates the clients' results and checks the thresholds.
pub fn build_report(
    config: RunConfig,
    started_at_ms: u64,
    elapsed_s: f64,
    server: ServerReport,
    clients: Clients,
) -> Report {
    let p = &clients.publishers;
    let s = &clients.subscribers;
    let h = &clients.hls_viewers;
    let collect = |v: Vec<Option<f64>>| -> Vec<f64> { v.into_iter().flatten().collect() };
    let publishers = PublishersReport {
        count: config.publishers,
        joined: p.iter().filter(|r| r.join_ms.is_some()).count(),
        join_ms: summarize(&collect(p.iter().map(|r| r.join_ms).collect())),
        video_frames_sent: p.iter().map(|r| r.video_frames_sent).sum(),
        audio_packets_sent: p.iter().map(|r| r.audio_packets_sent).sum(),
        errors: p.iter().filter(|r| r.error.is_some()).count(),
    };
    let received: u64 = s.iter().map(|r| r.packets_received).sum();
    let lost: u64 = s.iter().map(|r| r.packets_lost).sum();
    let delays: Vec<f64> = s.iter().flat_map(|r| r.delays_ms.iter().copied()).collect();
    let subscribers = SubscribersReport {
        count: config.subscribers,
        joined: s.iter().filter(|r| r.join_ms.is_some()).count(),
        receiving: s.iter().filter(|r| r.video_frames > 0).count(),
        join_ms: summarize(&collect(s.iter().map(|r| r.join_ms).collect())),
        time_to_first_frame_ms: summarize(&collect(
            s.iter().map(|r| r.time_to_first_frame_ms).collect(),
        )),
        video_frames: s.iter().map(|r| r.video_frames).sum(),
        audio_frames: s.iter().map(|r| r.audio_frames).sum(),
        packets_received: received,
        packets_lost: lost,
        loss_pct: if received + lost > 0 {
            100.0 * lost as f64 / (received + lost) as f64
        } else {
            0.0
        },
        video_frames_missing: s.iter().map(|r| r.video_frames_missing).sum(),
        delay_ms: summarize(&delays),
        video_kbps: summarize(
            &s.iter()
                .filter(|r| r.video_frames > 0)
                .map(|r| r.video_kbps)
                .collect::<Vec<_>>(),
        ),
        errors: s.iter().filter(|r| r.error.is_some()).count(),
    };
    let lat: Vec<f64> = h
        .iter()
        .flat_map(|r| r.part_latency_ms.iter().copied())
        .collect();
    let edge: Vec<f64> = h
        .iter()
        .flat_map(|r| r.live_edge_delay_ms.iter().copied())
        .collect();
    let hls = HlsReport {
        count: config.hls_viewers,
        started: h.iter().filter(|r| r.startup_ms.is_some()).count(),
        startup_ms: summarize(&collect(h.iter().map(|r| r.startup_ms).collect())),
        parts: h.iter().map(|r| r.parts).sum(),
        bytes: h.iter().map(|r| r.bytes).sum(),
        part_latency_ms: summarize(&lat),
        live_edge_delay_ms: summarize(&edge),
        stalls: h.iter().map(|r| r.stalls).sum(),
        http_errors: h.iter().map(|r| r.http_errors).sum(),
    };
    let join_all: Vec<f64> = collect(
        p.iter()
            .map(|r| r.join_ms)
            .chain(s.iter().map(|r| r.join_ms))
            .collect(),
    );
    let measured = stats::Measured {
        loss_pct: subscribers.loss_pct,
        delay_p99_ms: subscribers.delay_ms.map(|d| d.p99),
        join_p99_ms: summarize(&join_all).map(|d| d.p99),
        part_latency_p99_ms: hls.part_latency_ms.map(|d| d.p99),
        hls_stalls: hls.stalls,
        joined: publishers.joined + subscribers.joined,
        expected_joins: config.publishers
            + if config.publishers > 0 {
                config.subscribers
            } else {
                0
            },
    };
    let violations = check(&config.thresholds, &measured);
    Report {
        passed: violations.is_empty(),
        violations,
        config,
        started_at_ms,
        elapsed_s,
        publishers,
        subscribers,
        hls,
        server,
        clients,
    }
}

fn fmt(s: &Option<Summary>) -> String {
    match s {
        Some(s) => format!(
            "{:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6}",
            s.p50, s.p95, s.p99, s.max, s.count
        ),
        None => format!("{:>8} {:>8} {:>8} {:>8} {:>6}", "-", "-", "-", "-", 0),
    }
}

/// The human-readable summary printed on stdout.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let c = &r.config;
    out += &format!(
        "rostrum-loadtest: {} room {:?}, {:.1} s, {} publishers, {} subscribers, {} HLS viewers, video {} {} kb/s\n\n",
        c.url, c.room, r.elapsed_s, c.publishers, c.subscribers, c.hls_viewers, c.video, c.video_kbps
    );
    out += &format!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>6}\n",
        "metric (ms)", "p50", "p95", "p99", "max", "n"
    );
    for (name, s) in [
        ("publisher join", &r.publishers.join_ms),
        ("subscriber join", &r.subscribers.join_ms),
        ("time to first frame", &r.subscribers.time_to_first_frame_ms),
        ("one-way delay (WHIP→WHEP)", &r.subscribers.delay_ms),
        ("HLS startup", &r.hls.startup_ms),
        ("HLS part latency", &r.hls.part_latency_ms),
        ("HLS live-edge delay", &r.hls.live_edge_delay_ms),
    ] {
        out += &format!("{name:<28} {}\n", fmt(s));
    }
    let s = &r.subscribers;
    out += &format!(
        "\npublishers  joined {}/{}  video frames sent {}  audio packets sent {}  errors {}\n",
        r.publishers.joined,
        r.publishers.count,
        r.publishers.video_frames_sent,
        r.publishers.audio_packets_sent,
        r.publishers.errors
    );
    out += &format!(
        "subscribers joined {}/{}  receiving {}  video frames {}  audio frames {}  packets {}  lost {} ({:.2}%)  frames missing {}  video kb/s p50 {}  errors {}\n",
        s.joined, s.count, s.receiving, s.video_frames, s.audio_frames, s.packets_received,
        s.packets_lost, s.loss_pct, s.video_frames_missing,
        s.video_kbps.map_or("-".into(), |k| format!("{:.0}", k.p50)), s.errors
    );
    out += &format!(
        "hls         playing {}/{}  parts {}  bytes {}  stalls {}  http errors {}\n",
        r.hls.started, r.hls.count, r.hls.parts, r.hls.bytes, r.hls.stalls, r.hls.http_errors
    );
    out += &format!(
        "server      forwarded RTP packets/s {}\n",
        r.server
            .forwarded_packets_per_s
            .map_or("- (no /metrics)".into(), |v| format!("{v:.0}"))
    );
    if r.violations.is_empty() {
        out += "\nPASS\n";
    } else {
        out += "\nFAIL\n";
        for v in &r.violations {
            out += &format!("  {v}\n");
        }
    }
    out
}
