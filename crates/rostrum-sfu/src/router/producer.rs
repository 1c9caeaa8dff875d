//! `Producer`: one incoming track (a participant's audio or video) on a send transport.

use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid};

use crate::ids::{ConsumerId, ParticipantId, ProducerId, TransportId};

pub(crate) struct Producer {
    pub id: ProducerId,
    pub participant: ParticipantId,
    pub transport: TransportId,
    pub mid: Mid,
    pub kind: MediaKind,
    pub muted: bool,
    pub consumers: Vec<ConsumerId>,
    pub keyframes: KeyframeLimiter,
    /// The publisher's latest RTCP sender report: maps its RTP timestamps to wall-clock time.
    pub sender_info: Option<str0m::rtp::rtcp::SenderInfo>,
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
