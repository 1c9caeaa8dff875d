//! `Producer`: one incoming track (a participant's audio or video) on a send transport.

use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid, Rid};

use crate::ids::{ConsumerId, ParticipantId, ProducerId, TransportId};
use crate::simulcast::{InboundLayers, Layer};

pub(crate) struct Producer {
    pub id: ProducerId,
    pub participant: ParticipantId,
    pub transport: TransportId,
    pub mid: Mid,
    pub kind: MediaKind,
    pub muted: bool,
    pub consumers: Vec<ConsumerId>,
    /// Simulcast rids in the publisher's order (a layer's index is its place here); empty
    /// without simulcast (one layer, 0).
    pub rids: Vec<Rid>,
    /// What arrives of each layer.
    pub layers: InboundLayers,
    /// Keyframe requests, per layer.
    pub keyframes: Vec<KeyframeLimiter>,
    /// Per layer: the publisher's latest RTCP sender report, mapping its RTP timestamps to
    /// wall-clock time.
    pub sender_info: Vec<Option<str0m::rtp::rtcp::SenderInfo>>,
    /// Layers last announced to the publisher as needed (bit i = layer i), simulcast only.
    pub needed: Option<u8>,
}

impl Producer {
    /// The layer index of a packet's rid (`None`: a rid we did not negotiate).
    pub fn layer_of(&self, rid: Option<Rid>) -> Option<Layer> {
        match rid {
            _ if self.rids.is_empty() => Some(0),
            Some(r) => self.rids.iter().position(|x| *x == r).map(|i| i as Layer),
            None => None,
        }
    }
}

/// Rate-limits keyframe requests towards a publisher: a burst of new consumers (or a lossy
/// subscriber) must not make the publisher encode a keyframe per request. A request that comes
/// too soon is not dropped but deferred to the end of the interval, so a late joiner still
/// gets its keyframe.
#[derive(Debug, Default)]
pub(crate) struct KeyframeLimiter {
    last_sent: Option<Instant>,
    deferred: bool,
}

impl KeyframeLimiter {
    /// Ask for a keyframe; returns whether to send the request now.
    pub fn request(&mut self, now: Instant, min_interval: Duration) -> bool {
        match self.last_sent {
            Some(t) if now.saturating_duration_since(t) < min_interval => {
                self.deferred = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.deferred = false;
                true
            }
        }
    }

    /// When a deferred request becomes due, if any.
    pub fn due(&self, min_interval: Duration) -> Option<Instant> {
        match (self.deferred, self.last_sent) {
            (true, Some(t)) => Some(t + min_interval),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_defers_instead_of_dropping() {
        let t0 = Instant::now();
        let gap = Duration::from_millis(500);
        let mut l = KeyframeLimiter::default();
        assert!(l.request(t0, gap));
        assert!(!l.request(t0 + Duration::from_millis(10), gap));
        assert!(!l.request(t0 + Duration::from_millis(20), gap));
        assert_eq!(l.due(gap), Some(t0 + gap));
        assert!(l.request(t0 + gap, gap));
        assert_eq!(l.due(gap), None);
    }
}
