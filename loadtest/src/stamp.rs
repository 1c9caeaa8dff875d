//! The send-time stamp each video frame carries: a 16-byte trailer appended to the VP8 frame,
//! `send time (µs since the Unix epoch, u64 BE) | frame counter (u32 BE) | magic "RLT1"`.
//!
//! Why a trailer and not an RTP header extension: str0m 0.25 can register a custom extension
//! (`Extension::UnknownUri` with an `ExtensionSerializer`), but Rostrum's router rebuilds each
//! forwarded packet's extensions from the three it knows (audio level, voice activity, video
//! orientation), so a custom extension never reaches a subscriber. VP8 decoders (libvpx, the
//! mixer's `vp8dec`, browsers) read the last partition only as far as its bool decoder needs, so a
//! few trailing bytes are harmless. Audio is not stamped: Opus frame lengths are implicit, and a
//! trailer would corrupt the packet.

use std::time::{SystemTime, UNIX_EPOCH};

pub const MAGIC: [u8; 4] = *b"RLT1";
pub const LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub send_us: u64,
    pub counter: u32,
}

impl Stamp {
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(&self.send_us.to_be_bytes());
        out[8..12].copy_from_slice(&self.counter.to_be_bytes());
        out[12..].copy_from_slice(&MAGIC);
        out
    }

    /// Appends the stamp to a frame.
    pub fn append(&self, frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(frame.len() + LEN);
        out.extend_from_slice(frame);
        out.extend_from_slice(&self.encode());
        out
    }

    /// The stamp at the end of a received frame, if it has one.
    pub fn decode(frame: &[u8]) -> Option<Stamp> {
        let tail = frame.get(frame.len().checked_sub(LEN)?..)?;
        if tail[12..] != MAGIC {
            return None;
        }
        Some(Stamp {
            send_us: u64::from_be_bytes(tail[..8].try_into().ok()?),
            counter: u32::from_be_bytes(tail[8..12].try_into().ok()?),
        })
    }
}

/// Wall-clock now in µs since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let s = Stamp {
            send_us: 1_764_031_500_123_456,
            counter: 77,
        };
        let framed = s.append(b"vp8 frame");
        assert_eq!(framed.len(), 9 + LEN);
        assert_eq!(Stamp::decode(&framed), Some(s));
        assert_eq!(&framed[..9], b"vp8 frame");
    }

    #[test]
    fn unstamped_frames_have_none() {
        assert_eq!(Stamp::decode(b""), None);
        assert_eq!(Stamp::decode(b"RLT1"), None);
        assert_eq!(Stamp::decode(&[0u8; 40]), None);
    }

    proptest! {
        #[test]
        fn any_stamp_any_frame(us in any::<u64>(), c in any::<u32>(), frame in proptest::collection::vec(any::<u8>(), 0..100)) {
            let s = Stamp { send_us: us, counter: c };
            prop_assert_eq!(Stamp::decode(&s.append(&frame)), Some(s));
            let _ = Stamp::decode(&frame);
        }
    }
}
