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
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "ROSTRUM_LOG")]
    log: Option<String>,
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
        if let Some(v) = &self.log {
            c.log = v.clone();
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
            let c = args.resolve()?;
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
