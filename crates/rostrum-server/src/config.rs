//! The node's one typed configuration: defaults < TOML file < environment < flags,
//! validated once at start-up with messages that say what to change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use rostrum_hls::StoreConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address (pages, Socket.IO, WHIP/WHEP, /metrics). Port 0 picks a free one.
    pub http: SocketAddr,
    /// The media port, UDP and ICE-TCP. 0 picks a free one.
    pub media_port: u16,
    /// Address the media port binds to.
    pub bind_ip: IpAddr,
    /// Address announced in ICE candidates; defaults to `bind_ip`. Set it behind NAT.
    pub public_ip: Option<IpAddr>,
    /// Also offer ICE-TCP (same port number) for clients whose UDP is blocked.
    pub ice_tcp: bool,
    /// Built web app (`npm run build --prefix web`).
    pub web_root: PathBuf,
    /// Most participants on one stage.
    pub room_cap: usize,
    /// Estimate each subscriber's downlink (TWCC) and lower simulcast layers it cannot carry.
    /// Off by default: with it on, str0m's pacer starved a WHEP viewer's audio in a test.
    pub bandwidth_estimation: bool,
    /// `tracing` filter, e.g. `info` or `rostrum_sfu=debug,info`.
    pub log: String,
    /// Run the compositor here: every room with people on stage is mixed into an HLS broadcast.
    pub broadcast: bool,
    /// The `rostrum-mixer` executable; default: next to this binary.
    pub mixer: Option<PathBuf>,
    /// LL-HLS part target in milliseconds (PART-HOLD-BACK is 3 parts). 334 (ten frames at 30 fps)
    /// gives LL-HLS under 1.5 s glass to glass, at the cost of a viewer stall on any 1 s hiccup.
    pub part_ms: u64,
    /// HLS segment target in milliseconds (the keyframe interval): whole seconds.
    pub segment_ms: u64,
    /// A broadcast ends after its stage has been empty this many seconds.
    pub idle_end_s: u64,
    /// Where parts, segments and playlists are written: `{ kind = "local", dir = "…" }` or
    /// `{ kind = "s3", endpoint, bucket, region, access_key, secret_key, allow_http }`.
    pub storage: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            media_port: 40000,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: None,
            ice_tcp: true,
            web_root: PathBuf::from("web/dist"),
            room_cap: 9,
            bandwidth_estimation: false,
            log: "info".into(),
            broadcast: true,
            mixer: None,
            part_ms: 500,
            segment_ms: 2000,
            idle_end_s: 30,
            storage: StoreConfig::Local {
                dir: PathBuf::from("data/hls"),
            },
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0} is not valid: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("room_cap must be between 1 and 64 (got {0})")]
    RoomCap(usize),
    #[error("bind_ip is {0}, which is not an address clients can reach: set public_ip (flag --public-ip, env ROSTRUM_PUBLIC_IP) to the address they should use")]
    NeedPublicIp(IpAddr),
    #[error("public_ip {0} is unspecified; give the address clients reach this node at")]
    BadPublicIp(IpAddr),
    #[error("part_ms must be between 200 and 2000 (got {0})")]
    PartMs(u64),
    #[error("segment_ms must be whole seconds between 1000 and 10000 and at least twice part_ms (got {segment_ms} with part_ms {part_ms})")]
    SegmentMs { segment_ms: u64, part_ms: u64 },
    #[error("idle_end_s must be at least 1 (got 0)")]
    IdleEnd,
    #[error("mixer {0} is not a file: build it (`cargo build --bin rostrum-mixer`) or set mixer (--mixer, ROSTRUM_MIXER)")]
    Mixer(PathBuf),
    #[error("storage: {0}")]
    Storage(String),
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))
    }

    /// Where the storage is, without credentials (for messages).
    pub fn storage_label(&self) -> String {
        match &self.storage {
            StoreConfig::Local { dir } => dir.display().to_string(),
            StoreConfig::S3 {
                endpoint, bucket, ..
            } => format!("s3://{bucket} at {}", endpoint.as_deref().unwrap_or("AWS")),
        }
    }

    /// The address put in ICE candidates.
    pub fn announced_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.bind_ip)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=64).contains(&self.room_cap) {
            return Err(ConfigError::RoomCap(self.room_cap));
        }
        if !(200..=2000).contains(&self.part_ms) {
            return Err(ConfigError::PartMs(self.part_ms));
        }
        if !(1000..=10_000).contains(&self.segment_ms)
            || !self.segment_ms.is_multiple_of(1000)
            || self.segment_ms < 2 * self.part_ms
        {
            return Err(ConfigError::SegmentMs {
                segment_ms: self.segment_ms,
                part_ms: self.part_ms,
            });
        }
        if self.idle_end_s == 0 {
            return Err(ConfigError::IdleEnd);
        }
        if let Some(m) = &self.mixer {
            if self.broadcast && !m.is_file() {
                return Err(ConfigError::Mixer(m.clone()));
            }
        }
        match &self.storage {
            StoreConfig::Local { dir } if dir.as_os_str().is_empty() => {
                return Err(ConfigError::Storage("local storage needs a dir".into()))
            }
            StoreConfig::S3 { bucket, .. } if bucket.is_empty() => {
                return Err(ConfigError::Storage("s3 storage needs a bucket".into()))
            }
            _ => {}
        }
        match self.public_ip {
            Some(ip) if ip.is_unspecified() => return Err(ConfigError::BadPublicIp(ip)),
            None if self.bind_ip.is_unspecified() => {
                return Err(ConfigError::NeedPublicIp(self.bind_ip))
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.announced_ip().is_loopback());
    }

    #[test]
    fn file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("rostrum-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "media_port = 41000\nroom_cap = 4\n").unwrap();
        let c = Config::from_file(&good).unwrap();
        assert_eq!((c.media_port, c.room_cap), (41000, 4));
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "media_prot = 1\n").unwrap();
        let e = Config::from_file(&bad).unwrap_err().to_string();
        assert!(e.contains("media_prot"), "{e}");
        assert!(Config::from_file(&dir.join("missing.toml")).is_err());
    }

    #[test]
    fn validation_explains_itself() {
        let c = Config {
            bind_ip: "0.0.0.0".parse().unwrap(),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("public_ip"));
        let c = Config {
            room_cap: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("room_cap"));
        let c = Config {
            segment_ms: 1500,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("whole seconds"));
        let c = Config {
            mixer: Some(PathBuf::from("/nonexistent/rostrum-mixer")),
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cargo build"));
    }

    #[test]
    fn storage_reads_from_toml() {
        let c: Config = toml::from_str(
            "[storage]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"b\"\nregion = \"garage\"\naccess_key = \"k\"\nsecret_key = \"s\"\nallow_http = true\n",
        )
        .unwrap();
        assert!(matches!(c.storage, StoreConfig::S3 { ref bucket, .. } if bucket == "b"));
        c.validate().unwrap();
    }
}
