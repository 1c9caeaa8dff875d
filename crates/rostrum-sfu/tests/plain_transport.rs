//! PlainTransport through a real worker over loopback UDP: a str0m publisher's video reaches a
//! plain-RTP receiver (standing in for the mixer) with its own SSRC, continuous sequence numbers and
//! sender reports, and the receiver's PLI reaches the publisher as a keyframe request.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rostrum_sfu::router::ParticipantKind;
use rostrum_sfu::{spawn_worker, Kind, RoomId, RouterOptions, WorkerOptions};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, RtcConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_consumer_gets_rtp_and_sender_reports_and_its_pli_reaches_the_publisher() {
    rostrum_sfu::install_crypto();
    let worker = spawn_worker(WorkerOptions {
        bind_ip: "127.0.0.1".parse().unwrap(),
        port: 0,
        announced_ip: "127.0.0.1".parse().unwrap(),
        enable_tcp: false,
        router: RouterOptions::default(),
    })
    .await
    .unwrap();
    let room = RoomId::new("plain").unwrap();

    // A publisher on its own socket, offering audio + video.
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
    let mut api = rtc.sdp_api();
    let video_mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let joined = worker
        .join(room.clone(), "pub".into(), ParticipantKind::Whip, None)
        .await
        .unwrap();
    let published = worker
        .publish(room.clone(), joined.participant_id, offer.to_sdp_string())
        .await
        .unwrap();
    rtc.sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&published.answer).unwrap(),
        )
        .unwrap();

    // The "mixer" input, and the video producer sent to it.
    let mixer = UdpSocket::bind("127.0.0.1:0").unwrap();
    mixer.set_nonblocking(true).unwrap();
    let producers = worker.producers(room.clone()).await.unwrap();
    let video = producers.iter().find(|p| p.kind == Kind::Video).unwrap().id;
    let info = worker
        .plain_consume(room.clone(), video, mixer.local_addr().unwrap())
        .await
        .unwrap();
    assert_eq!(info.codec, "VP8");
    let sdp = info.sdp(mixer.local_addr().unwrap().port());
    assert!(
        sdp.contains(&format!("a=rtpmap:{} VP8/90000", info.payload_type)),
        "{sdp}"
    );

    let vp8 = rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == Codec::Vp8)
        .unwrap()
        .pt();
    let start = Instant::now();
    let (mut sent, mut keyframe_requests, mut pli_sent_at_requests) = (0u64, 0, None);
    let (mut rtp_seqs, mut srs) = (Vec::new(), 0);
    let mut buf = [0u8; 2000];
    while start.elapsed() < Duration::from_secs(4) {
        while sent < start.elapsed().as_millis() as u64 / 33 {
            sent += 1;
            if let Some(tx) = rtc.direct_api().stream_tx_by_mid(video_mid, None) {
                let rtp = RtpWrite::new(
                    vp8,
                    SeqNo::from(sent),
                    (sent * 3000) as u32,
                    Instant::now(),
                    vec![0x10, 0, 1],
                );
                tx.write_rtp(rtp.marker(true));
            }
        }
        loop {
            match rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    sock.send_to(&t.contents, t.destination).unwrap();
                }
                Output::Event(Event::KeyframeRequest(_)) => keyframe_requests += 1,
                Output::Event(_) => {}
            }
        }
        let input = match sock.recv_from(&mut buf) {
            Ok((n, source)) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: addr,
                    contents: buf[..n].try_into().unwrap(),
                },
            ),
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).unwrap();
        while let Ok((n, from)) = mixer.recv_from(&mut buf) {
            assert_eq!(
                from, worker.plain_addr,
                "plain RTP leaves from the plain socket"
            );
            let ssrc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
            if buf[1] == 200 {
                assert_eq!(u32::from_be_bytes(buf[4..8].try_into().unwrap()), info.ssrc);
                srs += 1;
            } else if n >= 12 {
                assert_eq!(ssrc, info.ssrc);
                assert_eq!(buf[1] & 0x7f, info.payload_type);
                rtp_seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
            }
        }
        // After 2 s (past the rate limit of the keyframe request for the new consumer), the mixer
        // asks for a keyframe itself.
        if pli_sent_at_requests.is_none() && start.elapsed() > Duration::from_secs(2) {
            let mut pli = vec![0x81, 206, 0, 2, 0, 0, 0, 1];
            pli.extend_from_slice(&info.ssrc.to_be_bytes());
            mixer.send_to(&pli, worker.plain_addr).unwrap();
            pli_sent_at_requests = Some(keyframe_requests);
        }
    }
    assert!(
        rtp_seqs.len() > 60,
        "mixer got {} RTP packets",
        rtp_seqs.len()
    );
    assert_eq!(rtp_seqs[0], 1, "sequence numbers start at 1");
    assert!(
        rtp_seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "continuous sequence numbers on loopback"
    );
    assert!(srs >= 1, "sender reports for A/V sync");
    let before = pli_sent_at_requests.unwrap();
    assert!(
        keyframe_requests > before,
        "the mixer's PLI reached the publisher ({before} → {keyframe_requests})"
    );
    let _: SocketAddr = worker.plain_addr;
}
