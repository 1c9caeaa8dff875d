//! End to end through the real `rostrum` binary over loopback UDP: a str0m publisher sends RTP by
//! WHIP, a str0m WHEP viewer receives it; bad requests get clear errors.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{location, post_sdp, Peer};
use str0m::change::SdpAnswer;
use str0m::media::Direction;

/// The SFU alone: no compositor in these tests.
fn start_server(extra: &[&str]) -> common::Server {
    let mut args = vec!["--no-broadcast"];
    args.extend_from_slice(extra);
    common::start_server(&args)
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
        publisher.send_due(start, &mut sent, &mids, |_| vec![0x10, 0, 1, 2, 3]);
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
