//! A real encoder end to end: ffmpeg writes fragmented MP4 (one fragment per
//! frame, as a low-latency mixer does) to a pipe; a session packages it into
//! a `LocalFileSystem` store; the axum origin serves it on 127.0.0.1; reqwest
//! plays the viewer. Skipped, with a printed reason, only if ffmpeg is absent.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rostrum_hls::session::named_uris;
use rostrum_hls::{router, HlsRegistry, HlsSession, HlsSessionOptions, HlsStore, StoreConfig};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `#EXTINF` durations, in order.
fn extinfs(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse().unwrap())
        .collect()
}

/// `(msn, part)` from a part URI `<msn>.<part>.m4s`.
fn part_position(uri: &str) -> (u64, u64) {
    let stem = uri.strip_suffix(".m4s").unwrap();
    let (m, p) = stem.split_once('.').unwrap();
    (m.parse().unwrap(), p.parse().unwrap())
}

fn preload_hint(playlist: &str) -> Option<String> {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    Some(line.split("URI=\"").nth(1)?.split('"').next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_to_ll_hls_over_http() {
    if !have("ffmpeg") || !have("ffprobe") {
        eprintln!(
            "skipped: ffmpeg/ffprobe not found on PATH (CI installs the Debian ffmpeg package)"
        );
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let store = HlsStore::from_config(&StoreConfig::Local {
        dir: tmp.path().to_path_buf(),
    })
    .unwrap();
    let dir = tmp.path().join("stage/720p");
    let handle = HlsSession::spawn("stage", "720p", store, HlsSessionOptions::default()).unwrap();
    let registry = HlsRegistry::new();
    registry.insert(handle.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/hls/stage", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(registry)).await.unwrap() });

    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args(["-t", "8"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "128k"])
        .args(["-f", "mp4", "-movflags"])
        .arg("frag_keyframe+empty_moov+default_base_moof+frag_every_frame")
        .arg("pipe:1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg starts");
    let mut stdout = ffmpeg.stdout.take().unwrap();
    let mut stderr = ffmpeg.stderr.take().unwrap();
    let feeder = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            loop {
                let n = stdout.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                total += n;
                handle
                    .feed(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .unwrap();
            }
            total
        })
    };
    let client = reqwest::Client::new();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        }
    };

    // Wait for the first complete segment.
    let playlist = loop {
        let (status, text) = get(format!("{base}/720p/index.m3u8")).await;
        assert_eq!(status, 200);
        if text.contains("#EXTINF:") {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no segment:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first_segment_at = t0.elapsed();
    for tag in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
        "#EXT-X-PART-INF:PART-TARGET=",
        "#EXT-X-PART:DURATION=",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXT-X-MAP:URI=\"init.mp4\"",
        "INDEPENDENT=YES",
    ] {
        assert!(playlist.contains(tag), "{tag} missing:\n{playlist}");
    }
    let (status, master) = get(format!("{base}/master.m3u8")).await;
    assert_eq!(status, 200);
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert!(
        master.contains("CODECS=\"avc1.64") && master.contains("mp4a.40.2\""),
        "codecs read from the init segment: {master}"
    );

    // Blocking reload for the hinted part: answered only once it exists.
    let mut reload_wait = None;
    for _ in 0..5 {
        let (_, text) = get(format!("{base}/720p/index.m3u8")).await;
        let hint = preload_hint(&text).expect("a preload hint");
        if dir.join(&hint).exists() {
            continue; // published between the two reads; take the next one
        }
        let (msn, part) = part_position(&hint);
        let asked = Instant::now();
        let (status, text) = get(format!(
            "{base}/720p/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
        ))
        .await;
        let waited = asked.elapsed();
        assert_eq!(status, 200);
        assert!(
            text.contains(&format!("URI=\"{hint}\"")),
            "{hint} in the answer:\n{text}"
        );
        assert!(
            dir.join(&hint).is_file(),
            "stored before the playlist named it"
        );
        for uri in named_uris(&text) {
            assert!(dir.join(&uri).is_file(), "{uri} named but not stored");
        }
        let r = client
            .get(format!("{base}/720p/{hint}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "video/iso.segment"
        );
        assert_eq!(
            r.bytes().await.unwrap(),
            std::fs::read(dir.join(&hint)).unwrap()
        );
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        reload_wait = Some(waited);
        break;
    }
    let reload_wait = reload_wait.expect("caught a hint before it was published");

    // A reload far in the future is refused.
    let (status, body) = get(format!("{base}/720p/index.m3u8?_HLS_msn=99")).await;
    assert_eq!(status, 400, "{body}");

    let bytes_in = feeder.await.unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    let exit = ffmpeg.wait().await.unwrap();
    assert!(exit.success(), "ffmpeg failed: {err}");
    handle.end().await.unwrap();

    let (_, live) = get(format!("{base}/720p/index.m3u8")).await;
    assert!(live.contains("#EXT-X-ENDLIST"));
    let vod = std::fs::read_to_string(dir.join("vod.m3u8")).unwrap();
    let durations = extinfs(&vod);
    assert!(durations.len() >= 3, "{vod}");
    // All but the tail are whole GOPs: within ±10 % of 2 s.
    for d in &durations[..durations.len() - 1] {
        assert!((1.8..=2.2).contains(d), "segment of {d} s in\n{vod}");
    }
    let total: f64 = durations.iter().sum();
    assert!((7.0..=8.5).contains(&total), "{total} s recorded");
    for uri in named_uris(&vod) {
        assert!(dir.join(&uri).is_file(), "{uri}");
    }
    // Parts: ≤ PART-TARGET and the segments' first parts independent.
    for line in live.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        let d: f64 = line["#EXT-X-PART:DURATION=".len()..]
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(d > 0.0 && d <= 0.5 + 1e-9, "{line}");
    }

    // ffprobe a stored segment: init + segment.
    let probe_file = tmp.path().join("probe.mp4");
    let mut joined = std::fs::read(dir.join("init.mp4")).unwrap();
    joined.extend(std::fs::read(dir.join("1.m4s")).unwrap());
    std::fs::write(&probe_file, &joined).unwrap();
    let streams = ffprobe_streams(&probe_file);
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 1280 && s["height"] == 720),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|s| s["codec_name"] == "aac"),
        "{streams:?}"
    );

    let m = handle.metrics();
    assert_eq!(
        (m.store_errors, m.store_lost, m.parser_errors),
        (0, 0, 0),
        "{m:?}"
    );
    assert_eq!(
        (m.discontinuities, m.timestamp_regressions),
        (0, 0),
        "{m:?}"
    );
    assert_eq!(m.parts_written, m.parts_published);
    eprintln!(
        "ffmpeg → LL-HLS: {bytes_in} bytes, {} segments {durations:?}, {} parts, first segment after {first_segment_at:?}, \
         blocking reload answered after {reload_wait:?}, published-before-stored {}, total {:?}",
        m.segments_written,
        m.parts_published,
        m.published_before_stored,
        t0.elapsed()
    );
}

fn ffprobe_streams(file: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"].as_array().cloned().unwrap_or_default()
}
