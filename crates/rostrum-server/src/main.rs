//! `rostrum`: the node binary. Thin: parse config, start the SFU worker, serve HTTP.

mod app;
mod config;

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use config::Config;

#[derive(Parser)]
#[command(
    name = "rostrum",
    version,
    about = "Rostrum: a live stage (WebRTC) with an HLS audience"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node (single node with embedded defaults unless told otherwise).
    Serve(ServeArgs),
    /// Print the effective configuration as TOML and exit.
    Config(ServeArgs),
}

/// Every flag can also come from the environment (`ROSTRUM_…`) or a TOML file (`--config`).
#[derive(Args, Clone)]
struct ServeArgs {
    /// TOML config file; flags and env override it.
    #[arg(long, env = "ROSTRUM_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP listen address, e.g. 127.0.0.1:8080 (port 0: any free port).
    #[arg(long, env = "ROSTRUM_HTTP")]
    http: Option<std::net::SocketAddr>,
    /// Media port for UDP and ICE-TCP (0: any free port).
    #[arg(long, env = "ROSTRUM_MEDIA_PORT")]
    media_port: Option<u16>,
    /// Address the media port binds to.
    #[arg(long, env = "ROSTRUM_BIND_IP")]
    bind_ip: Option<IpAddr>,
    /// Address announced to clients in ICE candidates.
    #[arg(long, env = "ROSTRUM_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// Do not offer ICE-TCP candidates (env: 1/0, true/false, yes/no).
    #[arg(long, env = "ROSTRUM_NO_ICE_TCP", value_parser = clap::builder::BoolishValueParser::new())]
    no_ice_tcp: bool,
    /// Directory of the built web app.
    #[arg(long, env = "ROSTRUM_WEB_ROOT")]
    web_root: Option<PathBuf>,
    /// Most participants on one stage.
    #[arg(long, env = "ROSTRUM_ROOM_CAP")]
    room_cap: Option<usize>,
    /// Estimate subscribers' downlinks (TWCC) for simulcast layer choice (env: 1/0).
    #[arg(long, env = "ROSTRUM_BANDWIDTH_ESTIMATION", value_parser = clap::builder::BoolishValueParser::new())]
    bandwidth_estimation: bool,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "ROSTRUM_LOG")]
    log: Option<String>,
    /// Do not run the compositor (no HLS broadcast) on this node.
    #[arg(long, env = "ROSTRUM_NO_BROADCAST", value_parser = clap::builder::BoolishValueParser::new())]
    no_broadcast: bool,
    /// The rostrum-mixer executable.
    #[arg(long, env = "ROSTRUM_MIXER")]
    mixer: Option<PathBuf>,
    /// LL-HLS part target (ms).
    #[arg(long, env = "ROSTRUM_PART_MS")]
    part_ms: Option<u64>,
    /// HLS segment target (ms, whole seconds).
    #[arg(long, env = "ROSTRUM_SEGMENT_MS")]
    segment_ms: Option<u64>,
    /// End a broadcast after its stage has been empty this long (s).
    #[arg(long, env = "ROSTRUM_IDLE_END_S")]
    idle_end_s: Option<u64>,
    /// Write HLS to this local directory.
    #[arg(long, env = "ROSTRUM_STORAGE_DIR", conflicts_with = "s3_bucket")]
    storage_dir: Option<PathBuf>,
    /// Write HLS to this S3 bucket (with the --s3-* settings).
    #[arg(long, env = "ROSTRUM_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// S3 endpoint, e.g. http://127.0.0.1:3900 (omit for AWS).
    #[arg(long, env = "ROSTRUM_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "ROSTRUM_S3_REGION", default_value = "garage")]
    s3_region: String,
    #[arg(long, env = "ROSTRUM_S3_ACCESS_KEY", default_value = "")]
    s3_access_key: String,
    #[arg(
        long,
        env = "ROSTRUM_S3_SECRET_KEY",
        default_value = "",
        hide_env_values = true
    )]
    s3_secret_key: String,
}

impl ServeArgs {
    fn resolve(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.http {
            c.http = v;
        }
        if let Some(v) = self.media_port {
            c.media_port = v;
        }
        if let Some(v) = self.bind_ip {
            c.bind_ip = v;
        }
        if let Some(v) = self.public_ip {
            c.public_ip = Some(v);
        }
        if self.no_ice_tcp {
            c.ice_tcp = false;
        }
        if let Some(v) = &self.web_root {
            c.web_root = v.clone();
        }
        if let Some(v) = self.room_cap {
            c.room_cap = v;
        }
        if self.bandwidth_estimation {
            c.bandwidth_estimation = true;
        }
        if let Some(v) = &self.log {
            c.log = v.clone();
        }
        if self.no_broadcast {
            c.broadcast = false;
        }
        if let Some(v) = &self.mixer {
            c.mixer = Some(v.clone());
        }
        if let Some(v) = self.part_ms {
            c.part_ms = v;
        }
        if let Some(v) = self.segment_ms {
            c.segment_ms = v;
        }
        if let Some(v) = self.idle_end_s {
            c.idle_end_s = v;
        }
        if let Some(dir) = &self.storage_dir {
            c.storage = rostrum_hls::StoreConfig::Local { dir: dir.clone() };
        }
        if let Some(bucket) = &self.s3_bucket {
            c.storage = rostrum_hls::StoreConfig::S3 {
                allow_http: self
                    .s3_endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
                endpoint: self.s3_endpoint.clone(),
                bucket: bucket.clone(),
                region: self.s3_region.clone(),
                access_key: self.s3_access_key.clone(),
                secret_key: self.s3_secret_key.clone(),
            };
        }
        c.validate().context("invalid configuration")?;
        Ok(c)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Config(args) => {
            let mut c = args.resolve()?;
            // Printed configs end up in tickets and logs: never the secret.
            if let rostrum_hls::StoreConfig::S3 { secret_key, .. } = &mut c.storage {
                if !secret_key.is_empty() {
                    *secret_key = "(hidden)".into();
                }
            }
            print!("{}", toml::to_string_pretty(&c)?);
            Ok(())
        }
        Cmd::Serve(args) => {
            let c = args.resolve()?;
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_new(&c.log).context("invalid log filter")?,
                )
                .with_writer(std::io::stderr)
                .init();
            app::serve(c).await
        }
    }
}
