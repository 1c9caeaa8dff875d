//! Plain RTP/RTCP on the wire, for transports without SRTP (PlainTransport to the mixer on
//! loopback). Writers for what we send, a parser for the feedback we accept; the parser never
//! panics on garbage.

/// Write an RTP packet (RFC 3550 fixed header, no CSRC, no extension).
pub fn write_rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + payload.len());
    b.push(0x80);
    b.push((pt & 0x7f) | if marker { 0x80 } else { 0 });
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// Seconds from 1900 (NTP era 0) to 1970 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp for a Unix time in microseconds.
pub fn ntp_from_unix_micros(us: u64) -> u64 {
    let secs = us / 1_000_000 + NTP_UNIX_OFFSET;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// An RTCP sender report without report blocks: it tells the receiver which wall-clock instant
/// an RTP timestamp stands for, which is how a mixer lines up one participant's audio and video.
pub fn write_sender_report(ssrc: u32, ntp: u64, rtp_ts: u32, packets: u32, octets: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    b.push(0x80);
    b.push(200);
    b.extend_from_slice(&6u16.to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend_from_slice(&ntp.to_be_bytes());
    b.extend_from_slice(&rtp_ts.to_be_bytes());
    b.extend_from_slice(&packets.to_be_bytes());
    b.extend_from_slice(&octets.to_be_bytes());
    b
}

/// An RTCP SDES packet with one CNAME item. Appended to a sender report (a compound packet), it
/// tells the receiver which streams come from one participant, which is what lets it lip-sync them.
pub fn write_sdes_cname(ssrc: u32, cname: &str) -> Vec<u8> {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // SSRC, CNAME item (type, length, text), then at least one zero octet, padded to 32 bits.
    let chunk_len = 4 + 2 + name.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    let mut b = Vec::with_capacity(4 + padded);
    b.push(0x81);
    b.push(202);
    b.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.push(1);
    b.push(name.len() as u8);
    b.extend_from_slice(name);
    b.resize(4 + padded, 0);
    b
}

/// Feedback from a plain-RTP receiver that the router acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Picture loss indication (RFC 4585) for this media SSRC.
    Pli(u32),
    /// Full intra request (RFC 5104) for this media SSRC.
    Fir(u32),
}

/// Parse a (compound) RTCP packet, keeping the keyframe requests. Anything else, or anything
/// malformed, is skipped.
pub fn parse_feedback(data: &[u8]) -> Vec<Feedback> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let b0 = data[at];
        if b0 >> 6 != 2 {
            break;
        }
        let fmt = b0 & 0x1f;
        let pt = data[at + 1];
        let len = (u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize + 1) * 4;
        let Some(pkt) = data.get(at..at + len) else {
            break;
        };
        if pt == 206 && pkt.len() >= 12 {
            let media = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
            match fmt {
                1 => out.push(Feedback::Pli(media)),
                // FIR: the media SSRC field is unused; each FCI entry names one (8 bytes).
                4 => {
                    for fci in pkt[12..].chunks_exact(8) {
                        out.push(Feedback::Fir(u32::from_be_bytes([
                            fci[0], fci[1], fci[2], fci[3],
                        ])));
                    }
                }
                _ => {}
            }
        }
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pli(sender: u32, media: u32) -> Vec<u8> {
        let mut b = vec![0x81, 206, 0, 2];
        b.extend_from_slice(&sender.to_be_bytes());
        b.extend_from_slice(&media.to_be_bytes());
        b
    }

    #[test]
    fn rtp_header_layout() {
        let p = write_rtp(96, true, 0x1234, 0xdeadbeef, 42, &[9, 9]);
        assert_eq!(p.len(), 14);
        assert_eq!(p[0], 0x80);
        assert_eq!(p[1], 0x80 | 96);
        assert_eq!(&p[2..4], &[0x12, 0x34]);
        assert_eq!(&p[4..8], &0xdeadbeefu32.to_be_bytes());
        assert_eq!(&p[8..12], &42u32.to_be_bytes());
    }

    #[test]
    fn sdes_cname_is_a_padded_rtcp_packet() {
        for name in ["", "p-1", "p-0123456789abcdef", &"x".repeat(300)] {
            let b = write_sdes_cname(9, name);
            assert_eq!(b.len() % 4, 0);
            assert_eq!(b[1], 202);
            let words = u16::from_be_bytes([b[2], b[3]]) as usize;
            assert_eq!(b.len(), 4 + words * 4);
            assert_eq!(u32::from_be_bytes([b[4], b[5], b[6], b[7]]), 9);
            assert_eq!(b[8], 1);
            let n = b[9] as usize;
            assert_eq!(&b[10..10 + n], &name.as_bytes()[..n]);
            assert_eq!(b[10 + n], 0, "item list ends with a zero octet");
        }
    }

    #[test]
    fn sender_report_layout_and_ntp() {
        let sr = write_sender_report(7, ntp_from_unix_micros(1_500_000), 90_000, 10, 1000);
        assert_eq!(sr.len(), 28);
        assert_eq!(sr[1], 200);
        let ntp = u64::from_be_bytes(sr[8..16].try_into().unwrap());
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET + 1);
        // Half a second is half of 2^32 in the fraction.
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn finds_pli_and_fir_in_compound_packets() {
        let mut compound = write_sender_report(1, 0, 0, 0, 0);
        compound.extend(pli(1, 0xaaaa));
        let mut fir = vec![0x84, 206, 0, 4];
        fir.extend_from_slice(&1u32.to_be_bytes());
        fir.extend_from_slice(&0u32.to_be_bytes());
        fir.extend_from_slice(&0xbbbbu32.to_be_bytes());
        fir.extend_from_slice(&[3, 0, 0, 0]);
        compound.extend(fir);
        assert_eq!(
            parse_feedback(&compound),
            vec![Feedback::Pli(0xaaaa), Feedback::Fir(0xbbbb)]
        );
        assert!(
            parse_feedback(&compound[..compound.len() - 3]).len() == 1,
            "truncated FIR dropped"
        );
        assert!(parse_feedback(&[0x00; 40]).is_empty(), "wrong version");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        #[test]
        fn feedback_parser_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_feedback(&data);
        }
    }
}
