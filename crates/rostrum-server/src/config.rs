//! The node's one typed configuration: defaults < TOML file < environment < flags,
//! validated once at start-up with messages that say what to change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

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
    /// `tracing` filter, e.g. `info` or `rostrum_sfu=debug,info`.
    pub log: String,
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
            log: "info".into(),
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
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))
    }

    /// The address put in ICE candidates.
    pub fn announced_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.bind_ip)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=64).contains(&self.room_cap) {
            return Err(ConfigError::RoomCap(self.room_cap));
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
    }
}
