//! RFC 6381 `CODECS` strings and the picture size, read from an init segment's
//! sample entries (`moov/trak/mdia/minf/stbl/stsd`), for the multivariant playlist.
//!
//! Known: H.264 (`avc1`/`avc3` with `avcC` → `avc1.PPCCLL`) and MPEG-4 audio
//! (`mp4a` with `esds` → `mp4a.40.<audio object type>`), Opus (`Opus`). Any
//! other sample entry leaves [`InitCodecs::complete`] false, and the caller
//! falls back to configured codecs: a wrong `CODECS` makes browsers refuse
//! the stream, a missing one only costs a guess.

use super::boxes::{children, read_header, FourCc, Reader};
use crate::playlist::Resolution;

/// What [`describe_init`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitCodecs {
    /// One RFC 6381 string per recognised track, in `moov` order.
    pub codecs: Vec<String>,
    /// The first video sample entry's width × height.
    pub resolution: Option<Resolution>,
    /// Every track's codec was recognised.
    pub complete: bool,
}

impl InitCodecs {
    /// The `CODECS` attribute value (`avc1.64001f,mp4a.40.2`), if every track was recognised.
    pub fn codecs_attribute(&self) -> Option<String> {
        (self.complete && !self.codecs.is_empty()).then(|| self.codecs.join(","))
    }
}

/// Reads the codecs of an init segment (`ftyp`+`moov` bytes). Never fails:
/// anything unreadable is simply not recognised.
pub fn describe_init(init: &[u8]) -> InitCodecs {
    let mut out = InitCodecs {
        complete: true,
        ..InitCodecs::default()
    };
    let mut pos = 0;
    let mut saw_track = false;
    while let Ok(Some(h)) = read_header(&init[pos..]) {
        let end = match h.size {
            Some(s) => match usize::try_from(s).ok().and_then(|s| pos.checked_add(s)) {
                Some(e) if e <= init.len() => e,
                _ => break,
            },
            None => init.len(),
        };
        if &h.typ.0 == b"moov" {
            for trak in children(&init[pos + h.header_len..end], h.typ).flatten() {
                if &trak.0 .0 != b"trak" {
                    continue;
                }
                saw_track = true;
                match sample_entry(trak.1) {
                    Some((codec, res)) => {
                        out.codecs.push(codec);
                        if out.resolution.is_none() {
                            out.resolution = res;
                        }
                    }
                    None => out.complete = false,
                }
            }
        }
        pos = end;
        if pos >= init.len() {
            break;
        }
    }
    out.complete &= saw_track;
    out
}

/// Finds a child box by type.
fn child<'a>(payload: &'a [u8], parent: FourCc, typ: &[u8; 4]) -> Option<&'a [u8]> {
    children(payload, parent)
        .flatten()
        .find(|(t, _)| &t.0 == typ)
        .map(|(_, b)| b)
}

fn sample_entry(trak: &[u8]) -> Option<(String, Option<Resolution>)> {
    let mdia = child(trak, FourCc(*b"trak"), b"mdia")?;
    let minf = child(mdia, FourCc(*b"mdia"), b"minf")?;
    let stbl = child(minf, FourCc(*b"minf"), b"stbl")?;
    let stsd = child(stbl, FourCc(*b"stbl"), b"stsd")?;
    // Full box header (4) + entry_count (4), then the first entry.
    let entries = stsd.get(8..)?;
    let (typ, body) = children(entries, FourCc(*b"stsd")).next()?.ok()?;
    match &typ.0 {
        b"avc1" | b"avc3" => {
            // VisualSampleEntry: 78 bytes of fields, width/height at 24/26.
            let mut r = Reader::new(body, typ);
            r.skip(24).ok()?;
            let wh = r.u32().ok()?;
            let resolution = Resolution {
                width: wh >> 16,
                height: wh & 0xffff,
            };
            let avcc = child(body.get(78..)?, typ, b"avcC")?;
            let [_, profile, compat, level, ..] = *avcc else {
                return None;
            };
            Some((
                format!("{typ}.{profile:02x}{compat:02x}{level:02x}"),
                Some(resolution),
            ))
        }
        b"mp4a" => {
            // AudioSampleEntry: 28 bytes (QuickTime versions 1/2 add 16/36).
            let version = u16::from_be_bytes([*body.get(8)?, *body.get(9)?]);
            let skip = match version {
                0 => 28,
                1 => 44,
                2 => 64,
                _ => return None,
            };
            let esds = child(body.get(skip..)?, typ, b"esds")?;
            let (oti, aot) = parse_esds(esds.get(4..)?)?;
            Some((
                match aot {
                    Some(aot) => format!("mp4a.{oti:02x}.{aot}"),
                    None => format!("mp4a.{oti:02x}"),
                },
                None,
            ))
        }
        b"Opus" => Some(("opus".to_owned(), None)),
        _ => None,
    }
}

/// An MPEG-4 descriptor: tag, then a size in 7-bit groups (ISO/IEC 14496-1 8.3.3).
fn descriptor(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let mut size = 0usize;
    let mut i = 1;
    loop {
        let b = *data.get(i)?;
        size = (size << 7) | usize::from(b & 0x7f);
        i += 1;
        if b & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let body = data.get(i..i.checked_add(size)?)?;
    Some((tag, body, &data[i + size..]))
}

/// `esds` payload (after the full-box header) → (objectTypeIndication, audio object type).
fn parse_esds(data: &[u8]) -> Option<(u8, Option<u8>)> {
    let (tag, es, _) = descriptor(data)?;
    if tag != 0x03 {
        return None;
    }
    // ES_ID (2), flags (1), then optional fields by flag.
    let flags = *es.get(2)?;
    let mut pos = 3;
    if flags & 0x80 != 0 {
        pos += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        pos += 1 + usize::from(*es.get(pos)?); // URL
    }
    if flags & 0x20 != 0 {
        pos += 2; // OCR_ES_Id
    }
    let mut rest = es.get(pos..)?;
    while let Some((tag, body, next)) = descriptor(rest) {
        if tag == 0x04 {
            let oti = *body.first()?;
            // objectTypeIndication(1) streamType(1) bufferSizeDB(3) maxBitrate(4) avgBitrate(4).
            let aot = body
                .get(13..)
                .and_then(descriptor)
                .filter(|(t, _, _)| *t == 0x05)
                .and_then(|(_, asc, _)| audio_object_type(asc));
            return Some((oti, aot.filter(|_| oti == 0x40)));
        }
        rest = next;
    }
    None
}

/// The AudioSpecificConfig's audio object type (5 bits, 31 = escape to 6 more).
fn audio_object_type(asc: &[u8]) -> Option<u8> {
    let first = *asc.first()?;
    let aot = first >> 3;
    if aot == 31 {
        let second = *asc.get(1)?;
        Some(32 + (((first & 0x07) << 3) | (second >> 5)))
    } else {
        Some(aot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::test_builder::{bx, full_bx};

    fn trak_with(entry: Vec<u8>) -> Vec<u8> {
        let mut stsd = 1u32.to_be_bytes().to_vec();
        stsd.extend(entry);
        let stbl = bx(b"stbl", &full_bx(b"stsd", 0, 0, &stsd));
        let minf = bx(b"minf", &stbl);
        bx(b"trak", &bx(b"mdia", &minf))
    }

    pub(crate) fn avc1_entry(width: u16, height: u16) -> Vec<u8> {
        let mut body = vec![0u8; 78];
        body[24..26].copy_from_slice(&width.to_be_bytes());
        body[26..28].copy_from_slice(&height.to_be_bytes());
        body.extend(bx(b"avcC", &[1, 0x64, 0x00, 0x1f, 0xff, 0xe1]));
        bx(b"avc1", &body)
    }

    pub(crate) fn mp4a_entry() -> Vec<u8> {
        let body = {
            let mut b = vec![0u8; 28];
            // ES_Descriptor(ES_ID 1, no flags) { DecoderConfig(0x40, …) { DSI(AAC-LC 48k stereo) } }
            let dsi = [0x05, 0x02, 0x11, 0x90];
            let mut dcd = vec![0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            dcd.extend(dsi);
            let mut es = vec![0x00, 0x01, 0x00, 0x04, dcd.len() as u8];
            es.extend(dcd);
            // A 4-byte size encoding, as ffmpeg writes it.
            let mut esd = vec![0x03, 0x80, 0x80, 0x80, es.len() as u8];
            esd.extend(es);
            b.extend(full_bx(b"esds", 0, 0, &esd));
            b
        };
        bx(b"mp4a", &body)
    }

    #[test]
    fn h264_and_aac_are_recognised() {
        let mut moov = trak_with(avc1_entry(1280, 720));
        moov.extend(trak_with(mp4a_entry()));
        let mut init = bx(b"ftyp", b"isom\0\0\0\0");
        init.extend(bx(b"moov", &moov));
        let d = describe_init(&init);
        assert_eq!(d.codecs, ["avc1.64001f", "mp4a.40.2"]);
        assert_eq!(
            d.resolution,
            Some(Resolution {
                width: 1280,
                height: 720
            })
        );
        assert_eq!(
            d.codecs_attribute().as_deref(),
            Some("avc1.64001f,mp4a.40.2")
        );
    }

    #[test]
    fn an_unknown_entry_makes_it_incomplete() {
        let mut moov = trak_with(avc1_entry(640, 360));
        moov.extend(trak_with(bx(b"hvc1", &[0u8; 78])));
        let d = describe_init(&bx(b"moov", &moov));
        assert!(!d.complete);
        assert_eq!(d.codecs_attribute(), None);
        // The test builder's init segments have empty stsd boxes.
        let fixture = crate::fmp4::test_builder::av_stream(0, 1);
        assert_eq!(describe_init(&fixture).codecs_attribute(), None);
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = describe_init(&junk);
            let mut m = bx(b"moov", &junk);
            m.truncate(m.len() / 2 + 4);
            let _ = describe_init(&m);
        }
        let mut entry = mp4a_entry();
        entry.truncate(40);
        let _ = describe_init(&bx(b"moov", &trak_with(entry)));
    }
}
