//! A simulated LL-HLS player: master → media playlist, then blocking reloads and every new part.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;
use tokio::sync::watch;

use crate::hls::{first_variant, parse_media, Follower};
use crate::peer::Live;
use crate::stamp::now_us;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewerResult {
    pub name: String,
    /// From the viewer's start to its first part downloaded (includes waiting for the broadcast).
    pub startup_ms: Option<f64>,
    pub parts: u64,
    pub bytes: u64,
    pub playlist_requests: u64,
    pub stalls: u64,
    pub http_errors: u64,
    pub ended: bool,
    #[serde(skip)]
    pub part_latency_ms: Vec<f64>,
    #[serde(skip)]
    pub live_edge_delay_ms: Vec<f64>,
    pub last_error: Option<String>,
}

async fn get(
    http: &reqwest::Client,
    url: &Url,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let r = http
        .get(url.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, body.to_vec()))
}

/// Plays `master` until `stop`.
pub async fn hls_viewer(
    http: reqwest::Client,
    name: String,
    master: Url,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> ViewerResult {
    let mut res = ViewerResult {
        name,
        ..Default::default()
    };
    tokio::select! {
        _ = play(&http, &master, &live, &mut res) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    res
}

fn epoch_ms() -> f64 {
    now_us() as f64 / 1000.0
}

async fn play(http: &reqwest::Client, master: &Url, live: &Live, res: &mut ViewerResult) {
    let t0 = Instant::now();
    let since = |t: Instant| (t - t0).as_secs_f64() * 1000.0;
    let short = Duration::from_secs(5);
    // The broadcast may not exist yet: poll the multivariant playlist.
    let media = loop {
        match get(http, master, short).await {
            Ok((200, body)) => match first_variant(&String::from_utf8_lossy(&body)) {
                Ok(Some(uri)) => match master.join(&uri) {
                    Ok(u) => break u,
                    Err(e) => res.last_error = Some(e.to_string()),
                },
                Ok(None) => break master.clone(),
                Err(e) => res.last_error = Some(e.to_string()),
            },
            Ok((status, _)) => res.last_error = Some(format!("master: HTTP {status}")),
            Err(e) => {
                res.http_errors += 1;
                res.last_error = Some(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut follower = Follower::new();
    let mut map: Option<String> = None;
    let mut next: Option<(u64, usize)> = None;
    loop {
        let mut url = media.clone();
        let hold = Duration::from_secs_f64(3.0 * follower.part_target_s() + 5.0);
        if let Some((msn, part)) = next {
            url.query_pairs_mut()
                .append_pair("_HLS_msn", &msn.to_string())
                .append_pair("_HLS_part", &part.to_string());
        }
        res.playlist_requests += 1;
        let got = get(http, &url, hold).await;
        let appeared = Instant::now();
        if follower.tick(since(appeared)) {
            res.stalls = follower.stalls;
        }
        let body = match got {
            Ok((200, body)) => body,
            Ok((status, _)) => {
                // 503: the part did not come within the hold limit; 400: too far ahead (the
                // encoder restarted, say). Reload without blocking.
                res.http_errors += 1;
                res.last_error = Some(format!("playlist: HTTP {status}"));
                next = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                res.http_errors += 1;
                res.last_error = Some(e);
                next = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let pl = match parse_media(&String::from_utf8_lossy(&body)) {
            Ok(pl) => pl,
            Err(e) => {
                res.last_error = Some(e.to_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let step = follower.on_playlist(&pl, since(appeared));
        if let Some(edge) = step.live_edge_ms {
            res.live_edge_delay_ms.push(epoch_ms() - edge as f64);
        }
        if pl.map_uri != map {
            if let Some(u) = pl.map_uri.as_ref().and_then(|m| media.join(m).ok()) {
                if let Ok((200, b)) = get(http, &u, short).await {
                    res.bytes += b.len() as u64;
                }
            }
            map = pl.map_uri.clone();
        }
        for p in &step.new_parts {
            let Ok(u) = media.join(&p.uri) else { continue };
            match get(http, &u, short).await {
                Ok((200, b)) => {
                    let done = Instant::now();
                    res.bytes += b.len() as u64;
                    res.parts += 1;
                    live.hls_parts.fetch_add(1, Ordering::Relaxed);
                    res.part_latency_ms
                        .push((done - appeared).as_secs_f64() * 1000.0);
                    if res.startup_ms.is_none() {
                        res.startup_ms = Some(since(done));
                        live.hls_viewers_playing.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok((status, _)) => {
                    res.http_errors += 1;
                    res.last_error = Some(format!("part {}: HTTP {status}", p.uri));
                }
                Err(e) => {
                    res.http_errors += 1;
                    res.last_error = Some(e);
                }
            }
        }
        if step.ended {
            res.ended = true;
            return;
        }
        next = if pl.can_block_reload { step.next } else { None };
        if next.is_none() {
            let wait = follower.part_target_s().clamp(0.1, 2.0);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}
