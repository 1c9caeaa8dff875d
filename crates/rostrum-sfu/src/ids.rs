//! Typed identifiers: a `ProducerId` can never be passed where a `ConsumerId` is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::SfuError;

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl $name {
            /// A fresh random id; random so ids of different nodes never collide.
            pub fn random() -> Self {
                Self(rand::random::<u64>() >> 12)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:x}"), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = SfuError;
            fn from_str(s: &str) -> Result<Self, SfuError> {
                s.strip_prefix($prefix)
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                    .map($name)
                    .ok_or_else(|| SfuError::BadId(s.chars().take(80).collect()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

numeric_id!(
    /// A person (or WHIP publisher) on the stage of one room.
    ParticipantId,
    "p-"
);
numeric_id!(
    /// An incoming track: one participant's audio or video.
    ProducerId,
    "pr-"
);
numeric_id!(
    /// An outgoing copy of a producer towards one receive transport.
    ConsumerId,
    "c-"
);
numeric_id!(
    /// One str0m `Rtc`: one ICE/DTLS association with one peer.
    TransportId,
    "t-"
);

/// A room name, checked once at the edge so the rest of the code can trust it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RoomId(String);

impl RoomId {
    /// 1–64 characters of `[A-Za-z0-9_-]`: safe in URLs, storage keys and NATS subjects.
    pub fn new(name: &str) -> Result<Self, SfuError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(RoomId(name.to_string()))
        } else {
            Err(SfuError::BadRoomName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: trimmed, 1–64 characters, no control characters.
pub fn clean_display_name(name: &str) -> Result<String, SfuError> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > 64 || name.chars().any(char::is_control) {
        return Err(SfuError::BadDisplayName);
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = ProducerId(0xabc);
        assert_eq!(id.to_string(), "pr-abc");
        assert_eq!("pr-abc".parse::<ProducerId>().unwrap(), id);
        assert!("p-abc".parse::<ProducerId>().is_err());
        assert!("pr-zz".parse::<ProducerId>().is_err());
        assert!("".parse::<ParticipantId>().is_err());
    }

    #[test]
    fn room_names() {
        assert!(RoomId::new("demo_1-A").is_ok());
        assert!(RoomId::new("").is_err());
        assert!(RoomId::new("a/b").is_err());
        assert!(RoomId::new(&"x".repeat(65)).is_err());
        assert!(RoomId::new("ünï").is_err());
    }

    #[test]
    fn display_names() {
        assert_eq!(clean_display_name("  Zoë ").unwrap(), "Zoë");
        assert!(clean_display_name("   ").is_err());
        assert!(clean_display_name("a\u{0}b").is_err());
        assert!(clean_display_name(&"é".repeat(65)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn id_parser_never_panics(s in ".*") {
            let _ = s.parse::<ParticipantId>();
            let _ = RoomId::new(&s);
            let _ = clean_display_name(&s);
        }
    }
}
