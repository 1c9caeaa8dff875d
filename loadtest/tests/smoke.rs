//! The real tool against the real node: 3 WHIP publishers, 3 WHEP subscribers and 5 LL-HLS
//! viewers for ~8 s over loopback; the JSON report must show media, delays and HLS parts.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sibling(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rostrum-loadtest"));
    let path = exe.with_file_name(name);
    assert!(
        path.is_file(),
        "{} missing: build the node first (`cargo build -p rostrum-server -p rostrum-mixer`, \
         or run `cargo test --workspace`, which builds every binary into the same target dir)",
        path.display()
    );
    path
}

#[test]
fn three_publishers_three_subscribers_five_hls_viewers() {
    let rostrum = sibling("rostrum");
    let mixer = sibling("rostrum-mixer");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(&rostrum)
        .args(["serve", "--http", "127.0.0.1:0", "--media-port", "0"])
        .args(["--public-ip", "127.0.0.1", "--storage-dir"])
        .arg(dir.path().join("storage"))
        .arg("--mixer")
        .arg(&mixer)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rostrum starts");
    let out = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut lines = BufReader::new(out).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("rostrum prints its URLs")
            .expect("utf-8");
        if let Some(url) = line.trim().strip_prefix("stage:") {
            break url.trim().trim_end_matches("/stream").to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    let json = dir.path().join("report.json");
    let run = Command::new(env!("CARGO_BIN_EXE_rostrum-loadtest"))
        .args([
            "run",
            "--url",
            &base,
            "--room",
            "smoke",
            "--publishers",
            "3",
        ])
        .args([
            "--subscribers",
            "3",
            "--hls-viewers",
            "5",
            "--duration",
            "8s",
        ])
        .args([
            "--ramp-per-s",
            "20",
            "--video",
            "320x180@30",
            "--video-kbps",
            "300",
        ])
        .args([
            "--max-delay-p99-ms",
            "200",
            "--require-all-joined",
            "--json",
        ])
        .arg(&json)
        .env("XDG_CACHE_HOME", cache_dir())
        .output()
        .expect("rostrum-loadtest runs");
    drop(server);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        run.status
    );
    assert!(stderr.contains("publishers 3/3"), "progress line: {stderr}");

    let text = std::fs::read_to_string(&json).expect("JSON report written");
    let r: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(r["publishers"]["joined"], 3, "{text}");
    assert_eq!(r["subscribers"]["joined"], 3, "{text}");
    for s in r["clients"]["subscribers"].as_array().expect("subscribers") {
        assert!(s["video_frames"].as_u64().unwrap_or(0) > 50, "{s}");
        assert!(s["audio_frames"].as_u64().unwrap_or(0) > 50, "{s}");
    }
    let p50 = r["subscribers"]["delay_ms"]["p50"]
        .as_f64()
        .expect("delay measured");
    assert!(p50 > 0.0 && p50 < 200.0, "delay p50 {p50}");
    assert!(r["subscribers"]["delay_ms"]["count"].as_u64().unwrap_or(0) > 100);
    assert!(
        r["hls"]["started"].as_u64().unwrap_or(0) >= 1,
        "{}",
        r["hls"]
    );
    for v in r["clients"]["hls_viewers"].as_array().expect("viewers") {
        assert!(
            v["parts"].as_u64().unwrap_or(0) > 0,
            "HLS viewer got no part: {v}"
        );
    }
    assert!(r["hls"]["part_latency_ms"]["p50"].as_f64().is_some());
    assert!(
        r["server"]["forwarded_packets_per_s"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(r["passed"], true);
}

/// The clip cache shared by test runs (target dir, so `cargo clean` removes it).
fn cache_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rostrum-loadtest"));
    exe.parent()
        .map(|d| d.join("loadtest-cache"))
        .unwrap_or_else(std::env::temp_dir)
}
