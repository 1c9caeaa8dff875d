//! End to end: the built mixer, real RTP senders, ffprobe on the programme it wrote.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{assert_programme, opus, serial, video, Mixer, RtcpSink, Sender};
use rostrum_compositor::protocol::{Command, Event, TileState};

const T: Duration = Duration::from_secs(10);

fn tile(p: &str, s: TileState) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::Tile { participant, state } if participant == p && *state == s)
}

fn layout(n: usize) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Layout { tiles } if *tiles == n)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn two_participants_join_go_live_stall_and_leave() {
    let _one = serial();
    let rtcp = RtcpSink::start();
    let mut m = Mixer::start(&rtcp.addr);
    // Queued before Ready: must still be answered once playing.
    m.send_raw("this is not json\n");
    let (ready_at, _) = m.expect_at("ready", T, |e| matches!(e, Event::Ready));
    eprintln!("ready after {} ms", ms(ready_at - m.started));
    m.expect("slate layout", T, layout(0));
    m.expect("warning for the bad line", T, |e| {
        matches!(e, Event::Warning { .. })
    });

    m.send(&Command::Seat {
        participant: "p1".into(),
        name: "Ada".into(),
    });
    m.expect("layout 1", T, layout(1));
    m.send(&Command::Seat {
        participant: "p2".into(),
        name: "Bob".into(),
    });
    m.expect("layout 2", T, layout(2));

    let v1 = m.bind("v1");
    let a1 = m.bind("a1");
    let v2 = m.bind("v2");
    assert!(v1 != 0 && a1 != 0 && v2 != 0 && v1 != a1 && a1 != v2);
    m.send(&video("v1", "p1", "VP8", 96, 1111));
    m.send(&opus("a1", "p1", 111, 2222));
    m.send(&video("v2", "p2", "H264", 102, 3333));
    // Unknown participant and input: warnings, nothing else.
    m.send(&video("v1", "nobody", "VP8", 96, 1111));
    m.expect(
        "unknown participant warning",
        T,
        |e| matches!(e, Event::Warning { message } if message.contains("nobody")),
    );

    let started = Instant::now();
    let s1 = Sender::vp8_opus(v1, 1111, Some((a1, 2222)));
    let _s2 = Sender::h264(v2, 3333);
    let (live1, _) = m.expect_at("p1 live", T, tile("p1", TileState::Live));
    let (live2, _) = m.expect_at("p2 live", T, tile("p2", TileState::Live));
    eprintln!(
        "live after sender start: VP8 {} ms, H264 {} ms",
        ms(live1 - started),
        ms(live2 - started)
    );

    std::thread::sleep(Duration::from_secs(2));
    m.forget();
    let killed = Instant::now();
    drop(s1);
    let (missing, _) = m.expect_at("p1 missing", T, tile("p1", TileState::Missing));
    let stall = missing - killed;
    eprintln!("placeholder {} ms after the sender died", ms(stall));
    assert!(stall < Duration::from_secs(2), "placeholder took {stall:?}");

    // RTCP (receiver reports / PLI) leaves from the bound sockets to --rtcp-to.
    assert!(
        rtcp.saw_from(v1) || rtcp.saw_from(v2) || rtcp.saw_from(a1),
        "no RTCP from the mixer's sockets: {:?}",
        rtcp.from_ports
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    );

    m.send(&Command::VideoOff {
        participant: "p2".into(),
        off: true,
    });
    m.expect("p2 off", Duration::from_secs(2), tile("p2", TileState::Off));

    m.send(&Command::Unseat {
        participant: "p1".into(),
    });
    m.expect("layout 1 after unseat", T, layout(1));
    m.send(&Command::Remove { input: "v1".into() });
    m.send(&Command::Remove { input: "a1".into() });
    m.send(&Command::Remove { input: "v1".into() });
    m.expect(
        "unknown input warning",
        T,
        |e| matches!(e, Event::Warning { message } if message.contains("v1")),
    );
    m.send(&Command::Unseat {
        participant: "p2".into(),
    });
    m.expect("layout 0 after unseat", T, layout(0));
    std::thread::sleep(Duration::from_millis(500));

    let status = m.stop(T);
    assert!(status.success(), "exit {status:?}; {}", m.log_tail());
    assert_programme(&m.out, 3.0);
}

/// Valid RTP headers, random payloads (some dressed as VP8 keyframes so the decoder really
/// chews on them) at ~200 packets/s.
fn send_garbage(to: u16, ssrc: u32, for_: Duration) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("garbage socket");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let end = Instant::now() + for_;
    let (mut seq, mut ts) = (1000u16, 5_000_000u32);
    let mut n = 0u32;
    while Instant::now() < end {
        let len = 100 + (rnd() % 1000) as usize;
        let mut pkt = vec![0u8; 12 + len];
        let marker = n % 6 == 5;
        pkt[0] = 0x80;
        pkt[1] = 96 | if marker { 0x80 } else { 0 };
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&ts.to_be_bytes());
        pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
        for b in pkt[12..].iter_mut() {
            *b = rnd() as u8;
        }
        if n.is_multiple_of(6) {
            // VP8 descriptor: start of partition 0; payload header: keyframe, shown; start
            // code; 320x240 so a "decoded" garbage frame stays small.
            pkt[12] = 0x10;
            pkt[13] = (pkt[13] & 0xe0) | 0x10;
            pkt[16..19].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            pkt[19..23].copy_from_slice(&[0x40, 0x01, 0xf0, 0x00]);
        }
        let _ = sock.send_to(&pkt, ("127.0.0.1", to));
        seq = seq.wrapping_add(1);
        if marker {
            ts = ts.wrapping_add(3000);
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn corrupt_video_shows_the_placeholder_and_the_programme_goes_on() {
    let _one = serial();
    let rtcp = RtcpSink::start();
    let mut m = Mixer::start(&rtcp.addr);
    m.expect("ready", T, |e| matches!(e, Event::Ready));
    m.send(&Command::Seat {
        participant: "p1".into(),
        name: "Ada".into(),
    });
    m.expect("layout 1", T, layout(1));
    let v1 = m.bind("v1");
    m.send(&video("v1", "p1", "VP8", 96, 1111));

    // Sequence numbers far from the garbage's (1000…~1800) on both sides, so each switch is a
    // clear sender restart for the jitterbuffer rather than a timestamp jump inside one stream.
    let good = Sender::vp8_opus_from(v1, 1111, 40_000, None);
    m.expect("live", T, tile("p1", TileState::Live));
    drop(good);
    m.forget();

    let sent = Instant::now();
    let garbage = std::thread::spawn(move || send_garbage(v1, 1111, Duration::from_secs(4)));
    m.expect(
        "missing under garbage",
        Duration::from_secs(3),
        tile("p1", TileState::Missing),
    );
    eprintln!("placeholder {} ms into the garbage", ms(sent.elapsed()));
    let size_before = m.out_len();
    let _ = garbage.join();
    assert!(m.running(), "mixer died on garbage: {}", m.log_tail());
    std::thread::sleep(Duration::from_millis(1500));
    let size_after = m.out_len();
    assert!(
        size_after > size_before,
        "programme stopped growing ({size_before} → {size_after})"
    );

    eprintln!(
        "keyframe request (PLI/FIR) from the input's socket: {}",
        rtcp.key_request_from(v1)
    );
    // A good stream again (same SSRC, new sequence) comes back live.
    let _good = Sender::vp8_opus_from(v1, 1111, 20_000, None);
    m.expect("live again", T, tile("p1", TileState::Live));
    assert!(m.running());

    let status = m.stop(T);
    assert!(status.success(), "exit {status:?}; {}", m.log_tail());
    assert_programme(&m.out, 5.0);
}
