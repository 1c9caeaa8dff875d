use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rostrum_loadtest::media::VideoSpec;
use rostrum_loadtest::run::{run, table, RunConfig};
use rostrum_loadtest::stats::Thresholds;

#[derive(Parser)]
#[command(
    name = "rostrum-loadtest",
    version,
    about = "Load tester for a running `rostrum serve`"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Simulate publishers (WHIP), subscribers (WHEP) and LL-HLS viewers, then report.
    Run(RunArgs),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad unit in {s:?} (ms, s, m)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(clap::Args)]
struct RunArgs {
    /// The node's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Room to join (created on first join).
    #[arg(long, default_value = "loadtest")]
    room: String,
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// WHEP viewers; subscriber i plays publisher i mod N.
    #[arg(long, default_value_t = 0)]
    subscribers: usize,
    #[arg(long, default_value_t = 0)]
    hls_viewers: usize,
    /// How long the run lasts from its start (ramp included): 30s, 2m, 500ms.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Clients started per second (publishers first, then subscribers, then HLS viewers).
    #[arg(long, default_value_t = 10.0)]
    ramp_per_s: f64,
    /// Publishers' video: WxH@FPS.
    #[arg(long, default_value = "640x360@30")]
    video: String,
    #[arg(long, default_value_t = 600)]
    video_kbps: u32,
    /// Length of the generated clip the publishers loop.
    #[arg(long, default_value_t = 10)]
    clip_seconds: u32,
    /// Local IP for the WebRTC sockets (default: the one that routes to the node).
    #[arg(long)]
    local_ip: Option<IpAddr>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    #[arg(long)]
    max_loss_pct: Option<f64>,
    #[arg(long)]
    max_delay_p99_ms: Option<f64>,
    #[arg(long)]
    max_join_p99_ms: Option<f64>,
    #[arg(long)]
    max_part_latency_p99_ms: Option<f64>,
    #[arg(long)]
    max_hls_stalls: Option<u64>,
    /// Fail unless every publisher and subscriber connected.
    #[arg(long)]
    require_all_joined: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("rostrum-loadtest: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> anyhow::Result<bool> {
    let Cmd::Run(a) = Cli::parse().cmd;
    str0m::crypto::from_feature_flags().install_process_default();
    let spec: VideoSpec = a.video.parse()?;
    let cfg = RunConfig {
        url: a.url,
        room: a.room,
        publishers: a.publishers,
        subscribers: a.subscribers,
        hls_viewers: a.hls_viewers,
        duration_s: a.duration.as_secs_f64(),
        ramp_per_s: a.ramp_per_s,
        video: a.video,
        video_kbps: a.video_kbps,
        clip_seconds: a.clip_seconds.max(1),
        spec,
        local_ip: a.local_ip,
        thresholds: Thresholds {
            max_loss_pct: a.max_loss_pct,
            max_delay_p99_ms: a.max_delay_p99_ms,
            max_join_p99_ms: a.max_join_p99_ms,
            max_part_latency_p99_ms: a.max_part_latency_p99_ms,
            max_hls_stalls: a.max_hls_stalls,
            require_all_joined: a.require_all_joined,
        },
        progress: !a.quiet,
    };
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    let report = rt.block_on(run(cfg))?;
    print!("{}", table(&report));
    if let Some(path) = &a.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.passed)
}
