//! Wiring: the SFU worker, signaling, the web pages, `/healthz` and `/metrics` on one HTTP port.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::Ordering;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use rostrum_sfu::{spawn_worker, RouterOptions, WorkerHandle, WorkerOptions};
use tower_http::services::{ServeDir, ServeFile};
use tracing::{info, warn};

use crate::config::Config;
use axum::extract::Path;
use axum::Json;
use rostrum_compositor::driver::default_mixer_bin;
use rostrum_compositor::{BroadcastState, Compositor, CompositorOptions};
use rostrum_hls::HlsRegistry;
use std::time::Duration;

/// `GET /api/broadcasts/{room}`: what a viewer's page needs to know (waiting, live, ended), and
/// where to play it from.
async fn broadcast_status(
    State(compositor): State<Option<Compositor>>,
    Path(room): Path<String>,
) -> axum::response::Response {
    let Ok(room) = rostrum_sfu::RoomId::new(&room) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid room name: 1–64 letters, digits, - or _"})),
        )
            .into_response();
    };
    let room = room.as_str();
    let status = compositor.as_ref().and_then(|c| c.status(room));
    let master = format!("/hls/{room}/master.m3u8");
    let body = match status {
        None => serde_json::json!({
            "room": room, "state": "waiting", "master": master, "recording": null,
            "broadcast": compositor.is_some(),
        }),
        Some(s) => {
            let recording = (s.state == BroadcastState::Ended)
                .then(|| format!("/hls/{room}/{}/vod.m3u8", s.id));
            // The status as the compositor reports it (camelCase), plus where to play it.
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("master".into(), master.into());
                o.insert("recording".into(), recording.into());
                o.insert("broadcast".into(), true.into());
            }
            v
        }
    };
    let mut r = Json(body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

pub async fn serve(c: Config) -> anyhow::Result<()> {
    rostrum_sfu::install_crypto();
    let worker = spawn_worker(WorkerOptions {
        bind_ip: c.bind_ip,
        port: c.media_port,
        announced_ip: c.announced_ip(),
        enable_tcp: c.ice_tcp,
        router: RouterOptions {
            max_participants: c.room_cap,
            bandwidth_estimation: c.bandwidth_estimation,
            ..Default::default()
        },
    })
    .await
    .with_context(|| format!("cannot bind the media port {}:{}", c.bind_ip, c.media_port))?;

    if !c.web_root.join("stream.html").is_file() {
        warn!(
            web_root = %c.web_root.display(),
            "the web app is not built here: /stream and /watch will be 404 (run `npm ci --prefix web && npm run build --prefix web`)"
        );
    }
    let store = rostrum_hls::HlsStore::from_config(&c.storage)
        .with_context(|| format!("cannot open the HLS storage {:?}", c.storage_label()))?;
    let registry = HlsRegistry::with_archive(store.clone());
    let compositor = c.broadcast.then(|| {
        Compositor::start(
            worker.clone(),
            store,
            registry.clone(),
            CompositorOptions {
                mixer_bin: c.mixer.clone().unwrap_or_else(default_mixer_bin),
                part_target: Duration::from_millis(c.part_ms),
                segment_target: Duration::from_millis(c.segment_ms),
                idle_end: Duration::from_secs(c.idle_end_s),
                ..Default::default()
            },
        )
    });
    let app = app(&c, worker.clone(), registry, compositor);
    let listener = tokio::net::TcpListener::bind(c.http)
        .await
        .with_context(|| format!("cannot listen on {}", c.http))?;
    let http = listener.local_addr()?;
    let host = if http.ip().is_unspecified() {
        c.announced_ip()
    } else {
        http.ip()
    };
    let base = format!("http://{}", std::net::SocketAddr::new(host, http.port()));
    // A closed stdout (a supervisor that stopped reading) must not take the node down.
    let _ = writeln!(
        std::io::stdout(),
        "Rostrum is up:\n  stage:    {base}/stream\n  audience: {base}/watch\n  media:    udp{} {}",
        if c.ice_tcp { "+tcp" } else { "" },
        std::net::SocketAddr::new(c.announced_ip(), worker.media_addr.port())
    );
    info!(%http, media = %worker.media_addr, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("http server failed")
}

fn app(
    c: &Config,
    worker: WorkerHandle,
    registry: HlsRegistry,
    compositor: Option<Compositor>,
) -> Router {
    let root = &c.web_root;
    Router::new()
        .route(
            "/api/broadcasts/{room}",
            get(broadcast_status).with_state(compositor.clone()),
        )
        .merge(rostrum_hls::router(registry.clone()))
        .route("/", get(|| async { Redirect::temporary("/stream") }))
        .route_service("/stream", ServeFile::new(root.join("stream.html")))
        .route_service("/watch", ServeFile::new(root.join("watch.html")))
        .nest_service("/assets", ServeDir::new(root.join("assets")))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(metrics).with_state(MetricsState {
                worker: worker.clone(),
                compositor: compositor.clone(),
                registry: registry.clone(),
            }),
        )
        .merge(rostrum_signal::app(worker))
}

/// Per-broadcast HLS counters, labelled by room.
fn hls_metrics(out: &mut String, registry: &HlsRegistry) {
    let mut rooms = registry.rooms();
    rooms.sort();
    let sessions: Vec<_> = rooms
        .iter()
        .filter_map(|r| registry.get(r).map(|h| (r, h.metrics())))
        .collect();
    type Pick = fn(&rostrum_hls::HlsMetrics) -> u64;
    let series: [(&str, &str, &str, Pick); 5] = [
        (
            "hls_parts_published_total",
            "counter",
            "LL-HLS parts published.",
            |m| m.parts_published,
        ),
        (
            "hls_segments_written_total",
            "counter",
            "Segments the store acknowledged.",
            |m| m.segments_written,
        ),
        (
            "hls_store_errors_total",
            "counter",
            "Failed storage writes (each retry counts).",
            |m| m.store_errors,
        ),
        (
            "hls_store_lost_total",
            "counter",
            "Objects given up on after every retry.",
            |m| m.store_lost,
        ),
        (
            "hls_discontinuities_total",
            "counter",
            "Encoder restarts marked in the playlist.",
            |m| m.discontinuities,
        ),
    ];
    for (name, kind, help, pick) in series {
        let _ = write!(
            out,
            "# HELP rostrum_{name} {help}\n# TYPE rostrum_{name} {kind}\n"
        );
        for (room, m) in &sessions {
            let _ = writeln!(out, "rostrum_{name}{{room=\"{room}\"}} {}", pick(m));
        }
    }
}

/// What `/metrics` reads: the SFU worker's gauges and counters, the compositor's, and each live
/// broadcast's HLS session.
#[derive(Clone)]
struct MetricsState {
    worker: WorkerHandle,
    compositor: Option<Compositor>,
    registry: HlsRegistry,
}

async fn metrics(State(st): State<MetricsState>) -> impl IntoResponse {
    let w = &st.worker;
    let m = &w.metrics;
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = write!(
            out,
            "# HELP rostrum_{name} {help}\n# TYPE rostrum_{name} {kind}\nrostrum_{name} {v}\n"
        );
    };
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    put(
        "rooms",
        "gauge",
        "Rooms with a router on this node.",
        g(&m.rooms),
    );
    put(
        "participants",
        "gauge",
        "Participants on stage.",
        g(&m.participants),
    );
    put("producers", "gauge", "Incoming tracks.", g(&m.producers));
    put("consumers", "gauge", "Outgoing tracks.", g(&m.consumers));
    put(
        "transports",
        "gauge",
        "WebRTC transports.",
        g(&m.transports),
    );
    put(
        "rtp_packets_in_total",
        "counter",
        "RTP packets received from publishers.",
        g(&m.rtp_in),
    );
    put(
        "rtp_packets_forwarded_total",
        "counter",
        "RTP packets written to consumers.",
        g(&m.rtp_forwarded),
    );
    put(
        "rtp_payload_bytes_forwarded_total",
        "counter",
        "RTP payload bytes written to consumers.",
        g(&m.bytes_forwarded),
    );
    put(
        "keyframe_requests_total",
        "counter",
        "PLIs sent to publishers.",
        g(&m.keyframe_requests),
    );
    put(
        "transports_timed_out_total",
        "counter",
        "Transports closed for silence or ICE failure.",
        g(&m.transports_timed_out),
    );
    put(
        "datagrams_in_total",
        "counter",
        "Datagrams received on the media port.",
        g(&m.datagrams_in),
    );
    put(
        "datagrams_unroutable_total",
        "counter",
        "Datagrams that matched no transport.",
        g(&m.datagrams_unroutable),
    );
    if let Some(c) = &st.compositor {
        let cm = &c.metrics;
        put(
            "broadcasts_live",
            "gauge",
            "Rooms whose broadcast is live on this node.",
            c.live_count() as u64,
        );
        put(
            "broadcasts_started_total",
            "counter",
            "Broadcasts started.",
            g(&cm.broadcasts_started),
        );
        put(
            "broadcasts_ended_total",
            "counter",
            "Broadcasts ended (host or idle).",
            g(&cm.broadcasts_ended),
        );
        put(
            "mixer_restarts_total",
            "counter",
            "Mixer processes restarted after an exit, kill or stall.",
            g(&cm.mixer_restarts),
        );
        put(
            "mixer_stalls_total",
            "counter",
            "Mixer restarts because no HLS part came for 3 part targets.",
            g(&cm.mixer_stalls),
        );
    }
    put(
        "layer_switches_total",
        "counter",
        "Simulcast layer switches by video consumers.",
        g(&m.layer_switches),
    );
    if let Ok(layers) = w.consumer_layers().await {
        layer_metrics(&mut out, &layers);
    }
    hls_metrics(&mut out, &st.registry);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}

/// Per video consumer: the layer forwarded (frame height; -1 before the first keyframe), the
/// layer wanted, switches and pause.
fn layer_metrics(out: &mut String, layers: &[(rostrum_sfu::RoomId, rostrum_sfu::ConsumerLayers)]) {
    type Value = fn(&rostrum_sfu::ConsumerLayers) -> i64;
    let series: [(&str, &str, &str, Value); 5] = [
        (
            "consumer_layer",
            "gauge",
            "Simulcast layer forwarded (index in the publisher's rid order; -1 none yet).",
            |c| c.current.map_or(-1, i64::from),
        ),
        (
            "consumer_layer_height",
            "gauge",
            "Frame height of the layer forwarded (0 unknown).",
            |c| i64::from(c.height),
        ),
        (
            "consumer_layer_switches",
            "counter",
            "Layer switches of this consumer.",
            |c| c.switches as i64,
        ),
        (
            "consumer_paused",
            "gauge",
            "1 while the consumer's tile is hidden.",
            |c| i64::from(c.paused),
        ),
        (
            "consumer_estimate_bps",
            "gauge",
            "The consumer's share of its subscriber's downlink estimate (-1 unknown).",
            |c| c.estimate.map_or(-1, |e| e as i64),
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(
            out,
            "# HELP rostrum_{name} {help}\n# TYPE rostrum_{name} {kind}"
        );
        for (room, c) in layers {
            let _ = writeln!(
                out,
                "rostrum_{name}{{room=\"{room}\",producer=\"{}\",consumer=\"{}\",layers=\"{}\"}} {}",
                c.producer,
                c.consumer,
                c.layers,
                value(c)
            );
        }
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutting down");
}
