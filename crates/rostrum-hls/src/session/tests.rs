//! The actor driven by the test builder's synthetic fMP4: 0.5 s fragments of
//! 90 kHz video (15 frames) and 48 kHz audio, a keyframe every `GOP` fragments.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::blocking::BadReload;
use crate::fmp4::test_builder::{fragment, init_segment, TrackSpec, TrafSpec};
use crate::playlist::test_parser::parse;
use crate::store::StoreConfig;

const GOP: usize = 4; // 2 s

fn av_init(video_track: u32) -> Vec<u8> {
    init_segment(&[
        TrackSpec::video(video_track, 90_000),
        TrackSpec::audio(video_track + 1, 48_000),
    ])
}

/// Fragment `i` (0.5 s from `i` × 0.5 s) of the stream whose video track is `video_track`.
fn av_fragment(i: usize, video_track: u32) -> Vec<u8> {
    let v = TrafSpec::video(
        video_track,
        i as u64 * 45_000,
        15,
        3000,
        i.is_multiple_of(GOP),
    );
    let a = TrafSpec::audio(video_track + 1, i as u64 * 24_000, 23, 1024);
    fragment(i as u32 + 1, &[v, a], 300 + i)
}

fn local_store(dir: &Path) -> HlsStore {
    HlsStore::from_config(&StoreConfig::Local {
        dir: dir.to_path_buf(),
    })
    .unwrap()
}

/// A session on a temp dir whose every published playlist is checked, at
/// the moment of publishing, against the files on disk.
struct Checked {
    handle: HlsHandle,
    dir: PathBuf,
    publishes: Arc<AtomicUsize>,
    violations: Arc<Mutex<Vec<String>>>,
}

fn checked_session(tmp: &Path, opts: HlsSessionOptions) -> Checked {
    let dir = tmp.join("stage/720p");
    let publishes = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(Mutex::new(Vec::new()));
    let (p, v, d) = (publishes.clone(), violations.clone(), dir.clone());
    let hook = Box::new(move |playlist: &str| {
        p.fetch_add(1, Ordering::SeqCst);
        for uri in named_uris(playlist) {
            if !d.join(&uri).is_file() {
                v.lock()
                    .unwrap()
                    .push(format!("{uri} named before stored:\n{playlist}"));
            }
        }
    });
    let handle =
        HlsSession::spawn_with_hook("stage", "720p", local_store(tmp), opts, hook).unwrap();
    Checked {
        handle,
        dir,
        publishes,
        violations,
    }
}

/// Waits (≤ 5 s) until the live edge satisfies `pred`.
async fn wait_edge(h: &HlsHandle, pred: impl Fn(&LiveEdge) -> bool) {
    let mut rx = h.subscribe();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if pred(&rx.borrow_and_update().edge) {
                return;
            }
            rx.changed().await.expect("session alive");
        }
    })
    .await
    .expect("the live edge got there in time");
}

fn at_part(msn: u64, index: u32) -> impl Fn(&LiveEdge) -> bool {
    move |e| {
        e.last_part
            .is_some_and(|p| (p.msn, p.index) >= (msn, index))
    }
}

#[tokio::test]
async fn everything_a_playlist_names_is_stored_first_and_end_writes_the_vod() {
    let tmp = tempfile::tempdir().unwrap();
    let s = checked_session(tmp.path(), HlsSessionOptions::default());
    let mut stream = av_init(1);
    for i in 0..40 {
        stream.extend(av_fragment(i, 1));
    }
    // Any chunking: 1000-byte pieces split boxes everywhere.
    for chunk in stream.chunks(1000) {
        s.handle.feed(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    s.handle.end().await.unwrap();

    assert_eq!(s.violations.lock().unwrap().as_slice(), &[] as &[String]);
    assert!(s.publishes.load(Ordering::SeqCst) > 40);
    let live = parse(&s.handle.live_playlist(None).await.unwrap()).unwrap();
    assert!(live.endlist);
    assert_eq!(live.part_target, Some(0.5));
    assert!(live.server_control.contains_key("CAN-BLOCK-RELOAD"));

    let vod_text = std::fs::read_to_string(s.dir.join("vod.m3u8")).unwrap();
    let vod = parse(&vod_text).unwrap();
    assert_eq!(vod.playlist_type.as_deref(), Some("VOD"));
    assert!(vod.endlist);
    let msns: Vec<u64> = vod.segments.iter().map(|x| x.msn).collect();
    assert_eq!(msns, (0..10).collect::<Vec<_>>());
    assert!(vod.segments.iter().all(|x| x.duration == Some(2.0)));
    assert!(vod.segments.iter().all(|x| x.program_date_time.is_some()));
    for uri in named_uris(&vod_text) {
        assert!(s.dir.join(&uri).is_file(), "{uri}");
    }
    // A segment is its parts, in order.
    let seg = std::fs::read(s.dir.join("3.m4s")).unwrap();
    let parts: Vec<u8> = (0..4)
        .flat_map(|k| std::fs::read(s.dir.join(format!("3.{k}.m4s"))).unwrap())
        .collect();
    assert_eq!(seg, parts);
    // The classic playlist in the store: segments only, ended.
    let classic_text = std::fs::read_to_string(s.dir.join("index.m3u8")).unwrap();
    let classic = parse(&classic_text).unwrap();
    assert!(classic.endlist && classic.part_target.is_none());
    assert!(!classic_text.contains("EXT-X-PART"));
    let master = std::fs::read_to_string(tmp.path().join("stage/master.m3u8")).unwrap();
    assert!(master.contains("720p/index.m3u8"), "{master}");
    assert_eq!(s.handle.master_playlist().as_deref(), Some(master.as_str()));

    let m = s.handle.metrics();
    assert_eq!((m.parts_published, m.parts_written), (40, 40));
    assert_eq!(m.segments_written, 10);
    assert_eq!(
        (m.store_errors, m.store_lost, m.published_before_stored),
        (0, 0, 0)
    );
    assert_eq!((m.discontinuities, m.timestamp_regressions), (0, 0));
    assert!(m.store_healthy && m.last_part_age.is_some());
    // Ended: no more input.
    assert!(matches!(
        s.handle.feed(Bytes::from_static(b"x")).await,
        Err(HlsError::Closed)
    ));
    s.handle.end().await.unwrap();
}

#[tokio::test]
async fn a_blocking_reload_waits_for_its_part_then_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = checked_session(tmp.path(), HlsSessionOptions::default());
    let mut head = av_init(1);
    for i in 0..3 {
        head.extend(av_fragment(i, 1));
    }
    s.handle.feed(head.into()).await.unwrap();
    wait_edge(&s.handle, at_part(0, 2)).await;

    let started = Instant::now();
    let h = s.handle.clone();
    let waiting = tokio::spawn(async move {
        let r = h
            .live_playlist(Some(ReloadRequest {
                msn: 0,
                part: Some(3),
            }))
            .await;
        (r, Instant::now())
    });
    let h = s.handle.clone();
    let whole_segment = tokio::spawn(async move {
        h.live_playlist(Some(ReloadRequest { msn: 0, part: None }))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "part 0.3 does not exist yet");
    let fed_at = Instant::now();
    s.handle.feed(av_fragment(3, 1).into()).await.unwrap();
    let (text, answered_at) = waiting.await.unwrap();
    let text = text.unwrap();
    assert!(answered_at >= fed_at);
    assert!(answered_at - started < Duration::from_secs(2));
    assert!(text.contains("URI=\"0.3.m4s\""), "{text}");
    assert!(s.dir.join("0.3.m4s").is_file());
    // `_HLS_msn=0` alone waits for segment 0 to be complete: the next keyframe.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!whole_segment.is_finished());
    s.handle.feed(av_fragment(4, 1).into()).await.unwrap();
    let text = whole_segment.await.unwrap().unwrap();
    assert!(text.contains("#EXTINF:2.0,\n0.m4s\n"), "{text}");
    assert_eq!(s.violations.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn requests_too_far_ahead_are_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = checked_session(tmp.path(), HlsSessionOptions::default());
    let mut head = av_init(1);
    for i in 0..6 {
        head.extend(av_fragment(i, 1));
    }
    s.handle.feed(head.into()).await.unwrap();
    wait_edge(&s.handle, at_part(1, 1)).await;
    // Last complete segment 0: MSN 3 is more than two beyond.
    let r = s
        .handle
        .live_playlist(Some(ReloadRequest { msn: 3, part: None }))
        .await;
    assert!(
        matches!(
            r,
            Err(HlsError::BadRequest(BadReload::MsnTooFarAhead {
                msn: 3,
                ..
            }))
        ),
        "{r:?}"
    );
    // Newest part 1.1; 1.9 is 8 parts ahead, over 3 / 0.5 = 6.
    let r = s
        .handle
        .live_playlist(Some(ReloadRequest {
            msn: 1,
            part: Some(9),
        }))
        .await;
    assert!(
        matches!(
            r,
            Err(HlsError::BadRequest(BadReload::PartTooFarAhead { .. }))
        ),
        "{r:?}"
    );
    // Already there: at once.
    let r = s
        .handle
        .live_playlist(Some(ReloadRequest {
            msn: 1,
            part: Some(1),
        }))
        .await;
    assert!(r.is_ok());
}

#[tokio::test]
async fn a_request_is_held_at_most_three_target_durations() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = HlsSessionOptions {
        playlist: crate::playlist::MediaPlaylistOptions {
            segment_target: Duration::from_secs(1),
            part_target: Duration::from_millis(250),
            max_segment: Duration::from_secs(3),
            ..Default::default()
        },
        ..Default::default()
    };
    let h = HlsSession::spawn("stage", "720p", local_store(tmp.path()), opts).unwrap();
    h.feed(av_init(1).into()).await.unwrap();
    let started = Instant::now();
    let r = h
        .live_playlist(Some(ReloadRequest {
            msn: 0,
            part: Some(0),
        }))
        .await;
    let waited = started.elapsed();
    assert!(
        matches!(r, Err(HlsError::HoldTimeout(d)) if d == Duration::from_secs(3)),
        "{r:?}"
    );
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test]
async fn an_encoder_restart_is_one_discontinuity_and_numbers_keep_growing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = checked_session(tmp.path(), HlsSessionOptions::default());
    let mut first = av_init(1);
    for i in 0..6 {
        first.extend(av_fragment(i, 1));
    }
    // The old encoder dies in the middle of a fragment.
    let torn = av_fragment(6, 1);
    first.extend_from_slice(&torn[..torn.len() / 2]);
    s.handle.feed(first.into()).await.unwrap();
    s.handle.encoder_restarted().await.unwrap();
    // The new one: other track ids (a different init), time from zero again.
    let mut second = av_init(5);
    for i in 0..10 {
        second.extend(av_fragment(i, 5));
    }
    for chunk in second.chunks(4096) {
        s.handle.feed(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    wait_edge(&s.handle, at_part(3, 3)).await;
    let live_text = s.handle.live_playlist(None).await.unwrap();
    let live = parse(&live_text).unwrap();
    assert_eq!(
        live_text.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{live_text}"
    );
    s.handle.end().await.unwrap();

    let vod_text = std::fs::read_to_string(s.dir.join("vod.m3u8")).unwrap();
    let vod = parse(&vod_text).unwrap();
    let shape: Vec<(u64, Option<f64>, bool, Option<&str>)> = vod
        .segments
        .iter()
        .map(|x| (x.msn, x.duration, x.discontinuity, x.map.as_deref()))
        .collect();
    assert_eq!(
        shape,
        [
            (0, Some(2.0), false, Some("init.mp4")),
            (1, Some(1.0), false, Some("init.mp4")),
            (2, Some(2.0), true, Some("init-1.mp4")),
            (3, Some(2.0), false, Some("init-1.mp4")),
            (4, Some(1.0), false, Some("init-1.mp4")),
        ]
    );
    assert_eq!(vod_text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    assert!(live.segments.windows(2).all(|w| w[1].msn == w[0].msn + 1));
    assert_ne!(
        std::fs::read(s.dir.join("init.mp4")).unwrap(),
        std::fs::read(s.dir.join("init-1.mp4")).unwrap()
    );
    let m = s.handle.metrics();
    assert_eq!(
        (m.discontinuities, m.parser_errors, m.timestamp_regressions),
        (1, 0, 0)
    );
    assert_eq!(s.violations.lock().unwrap().as_slice(), &[] as &[String]);
}

#[tokio::test]
async fn time_going_back_without_a_restart_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let s = checked_session(tmp.path(), HlsSessionOptions::default());
    let mut stream = av_init(1);
    for i in (0..5).chain(0..5) {
        stream.extend(av_fragment(i, 1));
    }
    s.handle.feed(stream.into()).await.unwrap();
    s.handle.end().await.unwrap();
    let m = s.handle.metrics();
    assert_eq!((m.timestamp_regressions, m.discontinuities), (1, 1));
    let vod = std::fs::read_to_string(s.dir.join("vod.m3u8")).unwrap();
    assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{vod}");
}

#[tokio::test]
async fn media_comes_from_memory_then_the_store_and_hinted_parts_are_held() {
    let tmp = tempfile::tempdir().unwrap();
    let s = checked_session(tmp.path(), HlsSessionOptions::default());
    let mut stream = av_init(1);
    for i in 0..40 {
        stream.extend(av_fragment(i, 1));
    }
    s.handle.feed(stream.into()).await.unwrap();
    wait_edge(&s.handle, at_part(9, 3)).await;
    // Segment 0 left the window (and the memory cache) long ago.
    assert!(s.handle.cached("0.0.m4s").is_none());
    assert!(s.handle.cached("9.3.m4s").is_some());
    for name in ["0.0.m4s", "0.m4s", "init.mp4", "9.3.m4s", "8.m4s"] {
        let got = s.handle.media(name).await.expect(name);
        assert_eq!(got, std::fs::read(s.dir.join(name)).unwrap(), "{name}");
    }
    for name in [
        "index.m3u8",
        "master.m3u8",
        "../x",
        "01.m4s",
        "50.m4s",
        "vod.m3u8",
    ] {
        assert_eq!(s.handle.media(name).await, None, "{name}");
    }
    // The preload hint names 10.0.m4s: a request for it is held until it exists.
    let snap = s.handle.snapshot();
    assert!(snap
        .playlist
        .contains("PRELOAD-HINT:TYPE=PART,URI=\"10.0.m4s\""));
    let h = s.handle.clone();
    let held = tokio::spawn(async move { h.media("10.0.m4s").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished());
    s.handle.feed(av_fragment(40, 1).into()).await.unwrap();
    let part = tokio::time::timeout(Duration::from_secs(2), held)
        .await
        .unwrap()
        .unwrap()
        .expect("held request answered");
    assert_eq!(part, std::fs::read(s.dir.join("10.0.m4s")).unwrap());
}

#[tokio::test]
async fn a_hanging_store_never_stalls_the_live_playlist() {
    use object_store::memory::InMemory;
    use object_store::throttle::{ThrottleConfig, ThrottledStore};
    let slow = ThrottledStore::new(
        InMemory::new(),
        ThrottleConfig {
            wait_put_per_call: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let store = HlsStore::new(Arc::new(slow), true);
    let opts = HlsSessionOptions {
        write_attempts: 1,
        write_timeout: Duration::from_millis(300),
        end_wait: Duration::from_millis(500),
        ..Default::default()
    };
    let h = HlsSession::spawn("stage", "720p", store, opts).unwrap();
    let mut stream = av_init(1);
    for i in 0..24 {
        stream.extend(av_fragment(i, 1));
    }
    let started = Instant::now();
    h.feed(stream.into()).await.unwrap();
    wait_edge(&h, at_part(5, 3)).await;
    // 24 parts: one wait of `store_wait` (0.5 s), then no waiting while unhealthy.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(h.media("5.3.m4s").await.is_some(), "served from memory");
    let m = h.metrics();
    assert!(!m.store_healthy);
    assert_eq!(m.parts_published, 24);
    assert!(m.published_before_stored >= 23, "{m:?}");
    assert_eq!(m.parts_written, 0);
    // Ending does not wait for the backlog either.
    let started = Instant::now();
    let r = h.end().await;
    assert!(matches!(r, Err(HlsError::EndTimeout(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(h.is_ended());
}

#[tokio::test]
async fn a_failing_store_is_counted_and_the_vod_is_not_written() {
    let tmp = tempfile::tempdir().unwrap();
    // `stage` is a file, so nothing can be created under `stage/720p/`.
    std::fs::write(tmp.path().join("stage"), b"in the way").unwrap();
    let opts = HlsSessionOptions {
        write_attempts: 2,
        ..Default::default()
    };
    let h = HlsSession::spawn("stage", "720p", local_store(tmp.path()), opts).unwrap();
    let mut stream = av_init(1);
    for i in 0..9 {
        stream.extend(av_fragment(i, 1));
    }
    h.feed(stream.into()).await.unwrap();
    wait_edge(&h, at_part(2, 0)).await;
    let r = h.end().await;
    assert!(matches!(r, Err(HlsError::Incomplete(n)) if n > 0), "{r:?}");
    let m = h.metrics();
    assert_eq!(m.parts_published, 9);
    assert!(m.store_errors >= 2 * 9, "{m:?}");
    assert!(m.store_lost >= 9, "{m:?}");
    assert!(h
        .live_playlist(None)
        .await
        .unwrap()
        .contains("#EXT-X-ENDLIST"));
}

#[tokio::test]
async fn dropping_every_handle_ends_the_broadcast() {
    let tmp = tempfile::tempdir().unwrap();
    let h =
        HlsSession::spawn("stage", "720p", local_store(tmp.path()), Default::default()).unwrap();
    let mut stream = av_init(1);
    for i in 0..5 {
        stream.extend(av_fragment(i, 1));
    }
    h.feed(stream.into()).await.unwrap();
    drop(h);
    let vod = tmp.path().join("stage/720p/vod.m3u8");
    tokio::time::timeout(Duration::from_secs(5), async {
        while !vod.is_file() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("vod.m3u8 written");
}

#[tokio::test]
async fn bad_names_and_options_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    for (room, rendition) in [("../x", "720p"), ("room", "a/b"), ("", "720p")] {
        assert!(matches!(
            HlsSession::spawn(room, rendition, store.clone(), Default::default()),
            Err(HlsError::InvalidName(_))
        ));
    }
    let opts = HlsSessionOptions {
        playlist: crate::playlist::MediaPlaylistOptions {
            window_segments: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        HlsSession::spawn("room", "720p", store, opts),
        Err(HlsError::Playlist(_))
    ));
}

#[test]
fn named_uris_skips_the_preload_hint() {
    let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PART:DURATION=0.5,URI=\"0.0.m4s\"\n\
                #EXTINF:2.0,\n0.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.0.m4s\"\n";
    assert_eq!(named_uris(text), ["init.mp4", "0.0.m4s", "0.m4s"]);
}
