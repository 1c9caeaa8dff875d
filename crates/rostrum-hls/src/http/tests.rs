use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;

use super::*;
use crate::fmp4::test_builder::{fragment, init_segment, TrackSpec, TrafSpec};
use crate::session::{HlsSession, HlsSessionOptions};
use crate::store::StoreConfig;

fn init() -> Vec<u8> {
    init_segment(&[TrackSpec::video(1, 90_000), TrackSpec::audio(2, 48_000)])
}

fn frag(i: usize) -> Vec<u8> {
    let v = TrafSpec::video(1, i as u64 * 45_000, 15, 3000, i.is_multiple_of(4));
    let a = TrafSpec::audio(2, i as u64 * 24_000, 23, 1024);
    fragment(i as u32 + 1, &[v, a], 100)
}

async fn serve(registry: HlsRegistry) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(registry)).await.unwrap();
    });
    format!("http://{addr}")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: HlsStore,
    registry: HlsRegistry,
    handle: HlsHandle,
    base: String,
    client: reqwest::Client,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = HlsStore::from_config(&StoreConfig::Local {
        dir: tmp.path().to_path_buf(),
    })
    .unwrap();
    let registry = HlsRegistry::with_archive(store.clone());
    let handle =
        HlsSession::spawn("stage", "720p", store.clone(), HlsSessionOptions::default()).unwrap();
    assert!(registry.insert(handle.clone()).is_none());
    let base = serve(registry.clone()).await;
    Fixture {
        _tmp: tmp,
        store,
        registry,
        handle,
        base,
        client: reqwest::Client::new(),
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    async fn feed_until(&self, frags: std::ops::Range<usize>, with_init: bool) {
        let mut bytes = if with_init { init() } else { Vec::new() };
        let last = frags.end - 1;
        for i in frags {
            bytes.extend(frag(i));
        }
        self.handle.feed(Bytes::from(bytes)).await.unwrap();
        let (msn, index) = ((last / 4) as u64, (last % 4) as u32);
        let mut rx = self.handle.subscribe();
        tokio::time::timeout(Duration::from_secs(5), async {
            while rx
                .borrow_and_update()
                .edge
                .last_part
                .is_none_or(|p| (p.msn, p.index) < (msn, index))
            {
                rx.changed().await.unwrap();
            }
        })
        .await
        .unwrap();
    }
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn assert_one_line_error(status: StatusCode, h: &reqwest::header::HeaderMap, body: &str) {
    assert!(status.is_client_error() || status.is_server_error());
    assert_eq!(body.matches('\n').count(), 1, "{body:?}");
    assert!(body.ends_with('\n') && body.len() > 1);
    assert_eq!(header(h, "cache-control"), "no-cache");
}

#[tokio::test]
async fn unknown_rooms_and_renditions_are_404() {
    let f = fixture().await;
    let registry = HlsRegistry::new();
    let bare = serve(registry).await;
    let r = f
        .client
        .get(format!("{bare}/hls/nowhere/720p/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for path in [
        "/hls/nowhere/master.m3u8",
        "/hls/nowhere/720p/index.m3u8",
        "/hls/nowhere/720p/0.m4s",
        "/hls/stage/1080p/index.m3u8",
        "/hls/stage/1080p/init.mp4",
    ] {
        let (status, h, body) = f.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_one_line_error(status, &h, &body);
        assert_eq!(header(&h, "access-control-allow-origin"), "*");
    }
}

#[tokio::test]
async fn playlists_and_media_have_the_right_headers() {
    let f = fixture().await;
    let (status, h, body) = f.get("/hls/stage/master.m3u8").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no init yet");
    assert_one_line_error(status, &h, &body);

    f.feed_until(0..6, true).await;
    let (status, h, body) = f.get("/hls/stage/master.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(header(&h, "cache-control"), "public, max-age=1");
    assert!(body.contains("720p/index.m3u8"));

    let (status, h, body) = f.get("/hls/stage/720p/index.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(header(&h, "cache-control"), "public, max-age=1");
    assert_eq!(header(&h, "access-control-allow-origin"), "*");
    for tag in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
        "#EXT-X-PART-INF:PART-TARGET=0.5",
        "#EXT-X-PART:DURATION=0.5,URI=\"1.1.m4s\"",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.2.m4s\"",
        "#EXT-X-PROGRAM-DATE-TIME:",
    ] {
        assert!(body.contains(tag), "{tag} in\n{body}");
    }

    for (path, ct) in [
        ("/hls/stage/720p/init.mp4", "video/mp4"),
        ("/hls/stage/720p/0.m4s", "video/iso.segment"),
        ("/hls/stage/720p/1.1.m4s", "video/iso.segment"),
    ] {
        let r = f
            .client
            .get(format!("{}{path}", f.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(r.headers(), "content-type"), ct);
        assert_eq!(
            header(r.headers(), "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let name = path.rsplit('/').next().unwrap();
        let stored = f
            .store
            .get("stage", "720p", &HlsObject::parse(name).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.bytes().await.unwrap(), stored);
    }
}

#[tokio::test]
async fn file_names_outside_the_layout_are_404() {
    let f = fixture().await;
    f.feed_until(0..2, true).await;
    for path in [
        "/hls/stage/720p/..%2F..%2Fetc%2Fpasswd",
        "/hls/stage/720p/x.txt",
        "/hls/stage/720p/01.m4s",
        "/hls/stage/720p/master.m3u8",
        "/hls/stage/720p/0.m4s.tmp",
        "/hls/stage/720p/init-0.mp4",
        "/hls/stage/..%2Fstage/init.mp4",
        "/hls/..%2F..%2Ftmp/720p/0.m4s",
    ] {
        let (status, h, body) = f.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_one_line_error(status, &h, &body);
    }
    // The client normalises `%2e%2e` away, leaving a path no route matches.
    let (status, _, _) = f.get("/hls/stage/720p/%2e%2e").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blocking_reload_over_http() {
    let f = fixture().await;
    f.feed_until(0..3, true).await;
    let url = format!(
        "{}/hls/stage/720p/index.m3u8?_HLS_msn=0&_HLS_part=3",
        f.base
    );
    let client = f.client.clone();
    let started = Instant::now();
    let req = tokio::spawn(async move {
        let r = client.get(url).send().await.unwrap();
        (r.status(), r.text().await.unwrap(), Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!req.is_finished());
    let fed = Instant::now();
    f.feed_until(3..4, false).await;
    let (status, body, done) = req.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(done >= fed && done - started < Duration::from_secs(2));
    assert!(body.contains("URI=\"0.3.m4s\""));

    for (query, fragment) in [
        ("_HLS_msn=9", "more than two segments beyond"),
        ("_HLS_msn=0&_HLS_part=20", "Advance Part Limit"),
        ("_HLS_msn=abc", "decimal integer"),
        ("_HLS_part=1", "requires _HLS_msn"),
        ("_HLS_msn=1&_HLS_msn=2", "more than once"),
    ] {
        let (status, h, body) = f.get(&format!("/hls/stage/720p/index.m3u8?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_one_line_error(status, &h, &body);
        assert!(body.contains(fragment), "{query}: {body}");
    }
    // Other parameters (a viewer token) are ignored.
    let (status, _, _) = f
        .get("/hls/stage/720p/index.m3u8?token=abc&_HLS_msn=0&_HLS_part=0")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_ended_and_removed_room_is_served_from_the_archive() {
    let f = fixture().await;
    f.feed_until(0..9, true).await;
    f.handle.end().await.unwrap();
    let (status, _, live) = f.get("/hls/stage/720p/index.m3u8?_HLS_msn=99").await;
    assert_eq!(status, StatusCode::OK, "ended: directives ignored");
    assert!(live.contains("#EXT-X-ENDLIST"));
    assert!(f.registry.remove("stage").is_some());
    assert!(f.registry.rooms().is_empty());
    let (status, h, vod) = f.get("/hls/stage/720p/vod.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/vnd.apple.mpegurl");
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains("2.m4s"));
    let (status, _, classic) = f.get("/hls/stage/720p/index.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(classic.contains("#EXT-X-ENDLIST") && !classic.contains("EXT-X-PART"));
    let (status, _, _) = f.get("/hls/stage/master.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    let (status, h, _) = f.get("/hls/stage/720p/2.m4s").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "video/iso.segment");
    let (status, _, _) = f.get("/hls/other/720p/2.m4s").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
