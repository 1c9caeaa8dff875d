//! Regression: nine seats written in one burst (what a mixer restart replays for a full stage)
//! crashed GStreamer 1.22's text rendering (SIGSEGV, 8 of 8 runs). The mixer now spaces new text
//! overlays; the grid must reach nine tiles and the mixer stop cleanly.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rostrum_compositor::protocol::Event;

#[test]
fn nine_seats_in_one_burst_reach_a_3x3_grid_without_crashing() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rostrum-mixer"))
        .args(["--rtcp-to", "127.0.0.1:9"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mixer starts");
    let mut stdin = child.stdin.take().unwrap();
    let burst: String = (0..9)
        .map(|i| format!("{{\"op\":\"seat\",\"participant\":\"p{i}\",\"name\":\"Seat {i}\"}}\n"))
        .collect();
    stdin.write_all(burst.as_bytes()).unwrap();
    stdin.flush().unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tail = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no 3x3 layout within 15 s; stderr:\n{}", tail.join("\n")));
        if let Ok(Some(Event::Layout { tiles: 9 })) = Event::parse(&line) {
            break;
        }
        tail.push(line);
    }
    // Let every placeholder render a few frames, then stop.
    std::thread::sleep(Duration::from_secs(2));
    stdin.write_all(b"{\"op\":\"stop\"}\n").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "mixer exit {status:?}; stderr:\n{}",
        tail.join("\n")
    );
}
