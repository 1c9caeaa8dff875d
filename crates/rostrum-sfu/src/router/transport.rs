//! `WebRtcTransport`: one str0m `Rtc`, i.e. one ICE + DTLS association with one peer.
//!
//! A transport has one role. A participant's *send* transport only receives (the client offers,
//! we answer); its *receive* transport only sends (we offer whenever producers come and go, one
//! offer at a time); a WHEP transport only sends but the client offers.

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Mid, Pt};
use str0m::net::Receive;
use str0m::{Candidate, Input, Rtc, RtcConfig};

use crate::error::SfuError;
use crate::ids::{ConsumerId, ParticipantId, TransportId};

/// What a transport is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportRole {
    /// Client → SFU: carries a participant's producers. The client offers.
    Send,
    /// SFU → client: carries consumers of everyone else. The SFU offers.
    Recv,
    /// SFU → WHEP player: consumers of one participant. The player offers.
    Whep,
}

/// Who a transport belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportOwner {
    Participant(ParticipantId),
    /// A WHEP viewer watching this participant.
    Viewer(ParticipantId),
}

pub(crate) struct WebRtcTransport {
    pub id: TransportId,
    pub role: TransportRole,
    pub owner: TransportOwner,
    pub rtc: Rtc,
    /// When `rtc` next wants `handle_input(Timeout)`; `None` until first polled.
    pub next_timeout: Option<Instant>,
    /// Set (with the id pushed on the router's dirty list) when something was written into
    /// `rtc` and its output must be drained.
    pub dirty: bool,
    pub connected: bool,
    pub created: Instant,
    /// Last datagram received from the peer: our liveness signal (ICE-lite does no checks of its own).
    pub last_rx: Instant,
    /// Receive transports: whether we ever offered (the first offer adds the BUNDLE anchor).
    pub offered: bool,
    /// Receive transports: the offer waiting for the client's answer and the consumers it adds.
    pub pending: Option<(SdpPendingOffer, Vec<ConsumerId>)>,
    /// Receive transports: consumers waiting for the next offer.
    pub queued_add: Vec<ConsumerId>,
    /// Receive transports: m-lines to stop in the next offer.
    pub queued_stop: Vec<Mid>,
    /// Latest downlink estimate (TWCC), bits per second; `None` until str0m reports one.
    pub estimate: Option<u64>,
}

/// Where the bandwidth estimate of a transport that sends media starts: enough for a top layer
/// and two mid ones, so a new subscriber starts sharp and the estimate only ever has to come down
/// on a link that cannot carry it.
pub(crate) const START_ESTIMATE_BPS: u64 = 2_500_000;

/// Build one str0m `Rtc` the way every Rostrum transport needs it; `sends` = it carries media to
/// the peer, so it estimates the peer's downlink (TWCC) for simulcast layer choice.
pub(crate) fn new_rtc(now: Instant, candidates: &[Candidate], sends: bool) -> Rtc {
    let config = RtcConfig::new();
    let config = if sends {
        config.enable_bwe(Some(Bitrate::bps(START_ESTIMATE_BPS)))
    } else {
        config
    };
    let mut rtc = config
        // The SFU never re-packetizes: it forwards RTP as it came.
        .set_rtp_mode(true)
        // Like mediasoup: the server is ICE-lite, the client does the checks.
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .set_stats_interval(Some(Duration::from_secs(2)))
        .build(now);
    for c in candidates {
        rtc.add_local_candidate(c.clone());
    }
    rtc
}

impl WebRtcTransport {
    pub fn new(
        id: TransportId,
        role: TransportRole,
        owner: TransportOwner,
        now: Instant,
        candidates: &[Candidate],
        bwe: bool,
    ) -> Self {
        WebRtcTransport {
            id,
            role,
            owner,
            rtc: new_rtc(now, candidates, bwe),
            next_timeout: None,
            dirty: false,
            connected: false,
            created: now,
            last_rx: now,
            offered: false,
            pending: None,
            queued_add: Vec::new(),
            queued_stop: Vec::new(),
            estimate: None,
        }
    }

    /// The local ICE username fragment: the key the node's media port demultiplexes on.
    pub fn ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    /// Accept a client offer, returning our answer as SDP text.
    pub fn accept_offer(&mut self, sdp: &str, max_tracks: usize) -> Result<String, SfuError> {
        let offer = parse_offer(sdp, max_tracks)?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::SdpRejected(e.to_string()))?;
        Ok(answer.to_sdp_string())
    }

    pub fn handle_receive(&mut self, now: Instant, r: Receive) -> Result<(), str0m::RtcError> {
        self.last_rx = now;
        self.rtc.handle_input(Input::Receive(now, r))
    }

    /// The payload parameters this transport's peer agreed to for `mid`.
    pub fn negotiated_params(&self, mid: Mid) -> Vec<PayloadParams> {
        let Some(media) = self.rtc.media(mid) else {
            return Vec::new();
        };
        let remote = media.remote_pts();
        self.rtc
            .codec_config()
            .params()
            .iter()
            .filter(|p| remote.contains(&p.pt()))
            .cloned()
            .collect()
    }

    pub fn params_for_pt(&self, pt: Pt) -> Option<PayloadParams> {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt)
            .cloned()
    }
}

/// Parse an SDP offer without trusting it: size of the text and number of m-lines are capped
/// before str0m sees it, so a hostile offer cannot make us allocate hundreds of tracks.
pub fn parse_offer(sdp: &str, max_tracks: usize) -> Result<SdpOffer, SfuError> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(SfuError::BadSdp("an SDP must start with \"v=0\"".into()));
    }
    let m_lines = sdp.lines().filter(|l| l.starts_with("m=")).count();
    if m_lines == 0 {
        return Err(SfuError::BadSdp("no media sections (m= lines)".into()));
    }
    if m_lines > max_tracks {
        return Err(SfuError::TooManyTracks(m_lines, max_tracks));
    }
    SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))
}

/// The `a=mid:` values of an SDP, in order. str0m only reports remote media once DTLS is up;
/// the router needs them at answer time to create producers and bind WHEP m-lines.
pub(crate) fn offered_mids(sdp: &str) -> Vec<Mid> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(|m| Mid::from(m.trim()))
        .collect()
}

/// Find the payload type in `offered` that carries the same codec as `source`, so a packet
/// from a producer can be re-labelled for a consumer whose peer numbered its codecs differently.
pub(crate) fn matching_pt(source: &PayloadParams, offered: &[PayloadParams]) -> Option<Pt> {
    let s = source.spec();
    let same_codec = |p: &&PayloadParams| {
        let o = p.spec();
        o.codec == s.codec
    };
    let exact = offered.iter().filter(same_codec).find(|p| {
        let o = p.spec();
        s.codec != Codec::H264
            || (o.format.packetization_mode == s.format.packetization_mode
                && o.format.profile_level_id == s.format.profile_level_id)
    });
    exact
        .or_else(|| {
            // H.264 decoders accept any profile at or below what they announce; a mismatch in
            // profile-level-id is still better than no video.
            offered.iter().filter(same_codec).find(|p| {
                s.codec != Codec::H264
                    || p.spec().format.packetization_mode == s.format.packetization_mode
            })
        })
        .map(|p| p.pt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_offers_are_refused_with_a_reason() {
        assert!(matches!(parse_offer("", 16), Err(SfuError::BadSdp(_))));
        assert!(matches!(
            parse_offer("hello world", 16),
            Err(SfuError::BadSdp(_))
        ));
        assert!(matches!(
            parse_offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", 16),
            Err(SfuError::BadSdp(_))
        ));
        let many = format!(
            "v=0\r\n{}",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(40)
        );
        assert!(matches!(
            parse_offer(&many, 16),
            Err(SfuError::TooManyTracks(40, 16))
        ));
        assert!(matches!(
            parse_offer("v=0\r\nm=audio x\r\n", 16),
            Err(SfuError::BadSdp(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn offer_parser_never_panics(s in "(v=0\r\n)?([a-z]=[ -~]{0,40}\r\n){0,20}") {
            let _ = parse_offer(&s, 16);
        }
    }
}
