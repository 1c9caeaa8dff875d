//! A small Ogg reader that returns the packets of the first logical stream (for Ogg Opus: the
//! `OpusHead` and `OpusTags` headers, then one Opus packet per RTP payload).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OggError {
    #[error("not an Ogg page at byte {0}")]
    Capture(usize),
    #[error("Ogg page at byte {0} truncated")]
    ShortPage(usize),
    #[error("not an Ogg Opus stream (no OpusHead)")]
    NotOpus,
}

/// All complete packets of the stream whose serial number the first page carries. A packet
/// still open at the end of the file is dropped.
pub fn packets(bytes: &[u8]) -> Result<Vec<Vec<u8>>, OggError> {
    let mut out = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut serial = None;
    let mut at = 0usize;
    while at < bytes.len() {
        let page = bytes.get(at..).unwrap_or_default();
        if page.len() < 27 {
            return Err(OggError::ShortPage(at));
        }
        if &page[..4] != b"OggS" {
            return Err(OggError::Capture(at));
        }
        let page_serial = u32::from_le_bytes([page[14], page[15], page[16], page[17]]);
        let nseg = page[26] as usize;
        let table = page.get(27..27 + nseg).ok_or(OggError::ShortPage(at))?;
        let body_len: usize = table.iter().map(|&l| l as usize).sum();
        let body = page
            .get(27 + nseg..27 + nseg + body_len)
            .ok_or(OggError::ShortPage(at))?;
        let ours = *serial.get_or_insert(page_serial) == page_serial;
        if ours {
            let mut off = 0;
            for &lace in table {
                let lace = lace as usize;
                partial.extend_from_slice(&body[off..off + lace]);
                off += lace;
                if lace < 255 {
                    out.push(std::mem::take(&mut partial));
                }
            }
        }
        at += 27 + nseg + body_len;
    }
    Ok(out)
}

/// The Opus packets of an Ogg Opus file (the two header packets removed).
pub fn opus_packets(bytes: &[u8]) -> Result<Vec<Vec<u8>>, OggError> {
    let all = packets(bytes)?;
    if !all.first().is_some_and(|p| p.starts_with(b"OpusHead")) {
        return Err(OggError::NotOpus);
    }
    Ok(all.into_iter().skip(2).filter(|p| !p.is_empty()).collect())
}

/// Duration of an Opus packet in 48 kHz samples, from its TOC byte (RFC 6716 §3.1); `None` for
/// an empty or malformed packet.
pub fn opus_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][(config % 4) as usize],
        12..=15 => [480, 960][(config % 2) as usize],
        _ => [120, 240, 480, 960][(config % 4) as usize],
    };
    let count = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3f) as u32,
    };
    (count > 0).then_some(frame * count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One page per packet list entry group (packets split into 255-byte laces).
    fn page(serial: u32, seq: u32, packets: &[&[u8]]) -> Vec<u8> {
        let mut table = Vec::new();
        let mut body = Vec::new();
        for p in packets {
            let mut left = p.len();
            loop {
                let l = left.min(255);
                table.push(l as u8);
                left -= l;
                if l < 255 {
                    break;
                }
            }
            body.extend_from_slice(p);
        }
        let mut out = b"OggS".to_vec();
        out.push(0);
        out.push(0);
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&serial.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // CRC: not checked
        out.push(table.len() as u8);
        out.extend_from_slice(&table);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn reads_opus_packets_across_laces() {
        let big = vec![7u8; 600];
        let mut file = page(1, 0, &[b"OpusHead\x01\x02"]);
        file.extend(page(1, 1, &[b"OpusTags...."]));
        file.extend(page(2, 0, &[b"other stream"]));
        file.extend(page(1, 2, &[b"\x78abc", &big, b""]));
        let p = opus_packets(&file).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0], b"\x78abc");
        assert_eq!(p[1], big);
    }

    #[test]
    fn errors() {
        assert_eq!(opus_packets(b"OggS"), Err(OggError::ShortPage(0)));
        assert_eq!(
            opus_packets(b"RIFF0000000000000000000000000000"),
            Err(OggError::Capture(0))
        );
        let file = page(1, 0, &[b"vorbis"]);
        assert_eq!(opus_packets(&file), Err(OggError::NotOpus));
        let mut cut = page(1, 0, &[b"OpusHead"]);
        cut.pop();
        assert_eq!(opus_packets(&cut), Err(OggError::ShortPage(0)));
    }

    #[test]
    fn opus_durations() {
        // config 9 (SILK WB 20 ms) and 11 (SILK WB 60 ms), code 0
        assert_eq!(opus_samples(&[9 << 3]), Some(960));
        assert_eq!(opus_samples(&[11 << 3]), Some(2880));
        // config 31 (CELT FB 20 ms), code 1 → two frames
        assert_eq!(opus_samples(&[(31 << 3) | 1]), Some(1920));
        // code 3 with a frame count byte
        assert_eq!(opus_samples(&[(31 << 3) | 3, 3]), Some(2880));
        assert_eq!(opus_samples(&[(31 << 3) | 3]), None);
        assert_eq!(opus_samples(&[]), None);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = packets(&bytes);
            let mut f = b"OggS".to_vec();
            f.extend_from_slice(&bytes);
            let _ = opus_packets(&f);
            let _ = opus_samples(&bytes);
        }
    }
}
