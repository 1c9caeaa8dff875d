//! The broadcast through the real binaries: a str0m WHIP publisher whose video payloads are
//! garbage → the node starts the mixer, the programme keeps coming as LL-HLS with the
//! participant's placeholder tile, the HLS origin refuses bad requests, and an empty stage ends
//! the broadcast with ENDLIST and a recording.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{location, post_sdp, Peer};
use rand::Rng;
use str0m::change::SdpAnswer;
use str0m::media::Direction;

fn mixer_bin() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rostrum"));
    let mixer = exe.with_file_name("rostrum-mixer");
    assert!(
        mixer.is_file(),
        "{} missing: `cargo build -p rostrum-mixer` (cargo test --workspace builds it)",
        mixer.display()
    );
    mixer
}

fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(url)
        .send()
        .unwrap()
}

fn status(base: &str, room: &str) -> serde_json::Value {
    get(&format!("{base}/api/broadcasts/{room}"))
        .json()
        .unwrap()
}

/// Media sequence number and part count of the newest segment in a live playlist.
fn live_edge(playlist: &str) -> (u64, usize) {
    let msn: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let segments = playlist
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .count() as u64;
    let trailing_parts = playlist
        .rsplit("#EXTINF")
        .next()
        .map(|tail| {
            tail.lines()
                .filter(|l| l.starts_with("#EXT-X-PART:"))
                .count()
        })
        .unwrap_or(0);
    (msn + segments, trailing_parts)
}

#[test]
fn corrupted_video_gets_a_placeholder_and_the_broadcast_goes_on_until_the_stage_empties() {
    let storage = tempdir();
    let room = "bcast";
    let (id, vod) = broadcast_scenario(room, &["--storage-dir", storage.to_str().unwrap()]);
    // Everything the recording names is on disk.
    let dir = storage.join(room).join(&id);
    for uri in media_uris(&vod) {
        assert!(dir.join(&uri).is_file(), "{uri} not in {}", dir.display());
    }
    let _ = std::fs::remove_dir_all(&storage);
}

/// The same broadcast written to a real S3-compatible server (garage, started by
/// `scripts/garage.sh`); then a fresh node with no broadcast of its own replays the recording
/// from the bucket.
#[test]
fn the_recording_goes_to_s3_and_a_fresh_node_replays_it() {
    let var = |k: &str| std::env::var(format!("ROSTRUM_TEST_S3_{k}")).ok();
    let (Some(endpoint), Some(bucket), Some(access), Some(secret)) = (
        var("ENDPOINT"),
        var("BUCKET"),
        var("ACCESS_KEY"),
        var("SECRET_KEY"),
    ) else {
        let required = std::env::var("ROSTRUM_REQUIRE_S3").is_ok_and(|v| v != "0")
            || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !required,
            "ROSTRUM_TEST_S3_* not set: run under `bash scripts/garage.sh run -- cargo test`"
        );
        eprintln!("skipped: no S3 server (ROSTRUM_TEST_S3_*); scripts/garage.sh starts one");
        return;
    };
    let region = var("REGION").unwrap_or_else(|| "garage".into());
    let s3 = [
        "--s3-bucket",
        &bucket,
        "--s3-endpoint",
        &endpoint,
        "--s3-region",
        &region,
        "--s3-access-key",
        &access,
        "--s3-secret-key",
        &secret,
    ];
    let room = format!("s3-{:x}", rand::random::<u32>());
    let (id, vod) = broadcast_scenario(&room, &s3);
    let mut args = vec!["--no-broadcast"];
    args.extend_from_slice(&s3);
    let fresh = common::start_server(&args);
    let stored = get(&format!("{}/hls/{room}/{id}/vod.m3u8", fresh.base));
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.text().unwrap(), vod);
    for uri in media_uris(&vod) {
        let r = get(&format!("{}/hls/{room}/{id}/{uri}", fresh.base));
        assert_eq!(r.status(), 200, "{uri}");
        assert!(!r.bytes().unwrap().is_empty(), "{uri}");
    }
}

/// Segments and the init segment a playlist names.
fn media_uris(playlist: &str) -> Vec<String> {
    let mut v: Vec<String> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    for l in playlist.lines() {
        if let Some(rest) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            v.extend(rest.split('"').next().map(str::to_owned));
        }
    }
    v.sort();
    v.dedup();
    v
}

/// A WHIP publisher of garbage joins `room`, the broadcast runs with its placeholder, the
/// publisher leaves, the idle time ends the broadcast. Returns the broadcast id and its VOD
/// playlist.
fn broadcast_scenario(room: &str, storage: &[&str]) -> (String, String) {
    let mixer = mixer_bin();
    let mut args = vec!["--mixer", mixer.to_str().unwrap(), "--idle-end-s", "2"];
    args.extend_from_slice(storage);
    let server = common::start_server(&args);
    let base = server.base.clone();

    // Nobody has been on this stage: viewers wait; bad rooms are refused.
    assert_eq!(status(&base, room)["state"], "waiting");
    assert_eq!(
        get(&format!("{base}/api/broadcasts/no%20spaces")).status(),
        400
    );
    assert_eq!(get(&format!("{base}/hls/{room}/master.m3u8")).status(), 404);

    let mut publisher = Peer::new();
    let (offer, pending, mids) = publisher.offer(Direction::SendOnly);
    let r = post_sdp(&format!("{base}/whip/{room}?name=Garbage"), &offer);
    assert_eq!(r.status(), 201);
    let whip = location(&r);
    let answer = SdpAnswer::from_sdp_string(&r.text().unwrap()).unwrap();
    publisher
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .unwrap();

    // 50 packets/s per kind of random bytes: valid RTP, undecodable payloads.
    let mut rng = rand::rng();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut last_poll = Instant::now();
    let mut live_playlist = String::new();
    let mut st = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(25) {
        publisher.send_due(start, &mut sent, &mids, |_| {
            let len = rng.random_range(20..900);
            (0..len).map(|_| rng.random()).collect()
        });
        publisher.step();
        if last_poll.elapsed() > Duration::from_millis(500) {
            last_poll = Instant::now();
            st = status(&base, room);
            let r = get(&format!(
                "{base}/hls/{room}/{}/index.m3u8",
                st["id"].as_str().unwrap_or("x")
            ));
            if r.status() == 200 {
                live_playlist = r.text().unwrap();
            }
            let placeholder = st["seats"]
                .as_object()
                .is_some_and(|s| s.values().any(|v| v == "missing"));
            // Done once the programme has run for a few segments with the placeholder up.
            if placeholder && live_edge(&live_playlist).0 >= 4 {
                break;
            }
        }
    }
    assert_eq!(st["state"], "live", "{st}");
    assert_eq!(st["tiles"], 1, "{st}");
    assert_eq!(
        st["restarts"], 0,
        "garbage input must not crash the mixer: {st}"
    );
    let seats = st["seats"].as_object().cloned().unwrap_or_default();
    assert!(
        seats.values().all(|v| v == "missing"),
        "the undecodable camera shows the placeholder: {st}"
    );
    assert!(
        live_edge(&live_playlist).0 >= 4,
        "programme kept coming:\n{live_playlist}"
    );
    for tag in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
        "#EXT-X-PART-INF:PART-TARGET=",
        "#EXT-X-PRELOAD-HINT:TYPE=PART",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXT-X-MAP:URI=",
    ] {
        assert!(
            live_playlist.contains(tag),
            "{tag} missing:\n{live_playlist}"
        );
    }
    assert!(
        !live_playlist.contains("#EXT-X-DISCONTINUITY\n"),
        "{live_playlist}"
    );
    let id = st["id"].as_str().unwrap().to_string();
    let master = get(&format!("{base}/hls/{room}/master.m3u8"))
        .text()
        .unwrap();
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert!(master.contains(&format!("{id}/index.m3u8")), "{master}");

    let metrics = get(&format!("{base}/metrics")).text().unwrap();
    for line in [
        "rostrum_broadcasts_live 1".to_string(),
        "rostrum_mixer_restarts_total 0".to_string(),
        format!("rostrum_hls_discontinuities_total{{room=\"{room}\"}} 0"),
    ] {
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    assert!(
        metrics.contains(&format!(
            "rostrum_hls_parts_published_total{{room=\"{room}\"}} "
        )),
        "{metrics}"
    );

    // Blocking reload far beyond the live edge is refused (RFC 8216bis 6.2.5.2).
    let (msn, _) = live_edge(&live_playlist);
    let far = get(&format!(
        "{base}/hls/{room}/{id}/index.m3u8?_HLS_msn={}",
        msn + 10
    ));
    assert_eq!(far.status(), 400);

    // Leave: the stage is empty → after the idle time, ENDLIST and a recording.
    let del = reqwest::blocking::Client::new()
        .delete(format!("{base}{whip}"))
        .send()
        .unwrap();
    assert_eq!(del.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&base, room)["state"] != "ended" {
        assert!(
            Instant::now() < deadline,
            "broadcast did not end: {}",
            status(&base, room)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = status(&base, room);
    let recording = st["recording"].as_str().unwrap().to_string();
    let vod = get(&format!("{base}{recording}"));
    assert_eq!(vod.status(), 200);
    let vod = vod.text().unwrap();
    assert!(
        vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains("#EXT-X-ENDLIST"),
        "{vod}"
    );
    let ended = get(&format!("{base}/hls/{room}/{id}/index.m3u8"))
        .text()
        .unwrap();
    assert!(ended.contains("#EXT-X-ENDLIST"), "{ended}");
    (id, vod)
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rostrum-bcast-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
