//! Plain consumers: a producer forwarded as unencrypted RTP to an address on this machine (the
//! mixer), like a mediasoup PlainTransport with one consumer. The router writes the packets; the
//! worker owns the socket.

use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;
use str0m::format::{Codec, PayloadParams};

use crate::ids::{ParticipantId, ProducerId, TransportId};
use crate::router::Kind;
use crate::simulcast::VideoOut;

pub(crate) struct PlainConsumer {
    pub id: TransportId,
    pub producer: ProducerId,
    pub remote: SocketAddr,
    pub ssrc: u32,
    pub pt: u8,
    /// SDES CNAME in our sender reports: the participant, so a receiver can lip-sync their streams.
    pub cname: String,
    /// Audio: the producer sequence number of the first packet sent, so ours start at 1.
    pub seq_base: Option<u64>,
    /// Video: the layer the mixer's tile needs, and the rewriting across switches.
    pub video: Option<VideoOut>,
    pub packets: u32,
    pub octets: u32,
    pub last_sr: Option<Instant>,
}

/// What a plain-RTP receiver needs to know about one input (its SDP is [`PlainConsumerInfo::sdp`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlainConsumerInfo {
    pub transport_id: TransportId,
    pub producer_id: ProducerId,
    pub participant_id: ParticipantId,
    pub kind: Kind,
    pub ssrc: u32,
    pub payload_type: u8,
    /// Encoding name as SDP spells it: `opus`, `VP8`, `H264`.
    pub codec: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    /// `a=fmtp` parameters, empty when none.
    pub fmtp: String,
}

impl PlainConsumerInfo {
    pub(crate) fn new(
        transport_id: TransportId,
        producer_id: ProducerId,
        participant_id: ParticipantId,
        kind: Kind,
        ssrc: u32,
        params: &PayloadParams,
    ) -> Self {
        let spec = params.spec();
        let f = &spec.format;
        let fmtp = match spec.codec {
            Codec::H264 => format!(
                "level-asymmetry-allowed=1;packetization-mode={};profile-level-id={:06x}",
                f.packetization_mode.unwrap_or(1),
                f.profile_level_id.unwrap_or(0x42e01f)
            ),
            Codec::Opus => "minptime=10;useinbandfec=1".to_string(),
            _ => String::new(),
        };
        PlainConsumerInfo {
            transport_id,
            producer_id,
            participant_id,
            kind,
            ssrc,
            payload_type: *params.pt(),
            codec: spec.codec.to_string(),
            clock_rate: spec.clock_rate.get(),
            channels: spec.channels,
            fmtp,
        }
    }

    /// A receive-only SDP for this one stream arriving at `port` on 127.0.0.1 (what ffmpeg's
    /// `-protocol_whitelist file,udp,rtp -i x.sdp` or GStreamer's `sdpdemux` read).
    pub fn sdp(&self, port: u16) -> String {
        let media = match self.kind {
            Kind::Audio => "audio",
            Kind::Video => "video",
        };
        let pt = self.payload_type;
        let mut s = format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rostrum {}\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm={media} {port} RTP/AVP {pt}\r\n",
            self.producer_id
        );
        match self.channels {
            Some(ch) => s.push_str(&format!(
                "a=rtpmap:{pt} {}/{}/{ch}\r\n",
                self.codec, self.clock_rate
            )),
            None => s.push_str(&format!(
                "a=rtpmap:{pt} {}/{}\r\n",
                self.codec, self.clock_rate
            )),
        }
        if !self.fmtp.is_empty() {
            s.push_str(&format!("a=fmtp:{pt} {}\r\n", self.fmtp));
        }
        s.push_str(&format!(
            "a=ssrc:{} cname:{}\r\na=recvonly\r\n",
            self.ssrc, self.participant_id
        ));
        s
    }
}
