//! A small IVF reader: the 32-byte file header, then frames of `size: u32 LE, pts: u64 LE, data`.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IvfError {
    #[error("not an IVF file (bad signature)")]
    Signature,
    #[error("IVF header truncated")]
    ShortHeader,
    #[error("IVF frame {index} truncated")]
    ShortFrame { index: usize },
    #[error("IVF file has no frames")]
    Empty,
}

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvfHeader {
    pub fourcc: [u8; 4],
    pub width: u16,
    pub height: u16,
    /// Timebase numerator / denominator (frame rate = den / num for constant-rate files).
    pub timebase_num: u32,
    pub timebase_den: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvfFrame {
    pub pts: u64,
    pub data: Vec<u8>,
}

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses a whole IVF file. Never panics; any truncation or bad field is an error.
pub fn parse(bytes: &[u8]) -> Result<(IvfHeader, Vec<IvfFrame>), IvfError> {
    if bytes.len() < 4 || &bytes[..4] != b"DKIF" {
        return Err(IvfError::Signature);
    }
    let header_len = u16le(bytes, 6).ok_or(IvfError::ShortHeader)? as usize;
    if header_len < 32 || bytes.len() < header_len {
        return Err(IvfError::ShortHeader);
    }
    let mut fourcc = [0u8; 4];
    fourcc.copy_from_slice(&bytes[8..12]);
    let header = IvfHeader {
        fourcc,
        width: u16le(bytes, 12).ok_or(IvfError::ShortHeader)?,
        height: u16le(bytes, 14).ok_or(IvfError::ShortHeader)?,
        timebase_den: u32le(bytes, 16).ok_or(IvfError::ShortHeader)?,
        timebase_num: u32le(bytes, 20).ok_or(IvfError::ShortHeader)?,
    };
    let mut frames = Vec::new();
    let mut at = header_len;
    while at < bytes.len() {
        let index = frames.len();
        let size = u32le(bytes, at).ok_or(IvfError::ShortFrame { index })? as usize;
        let pts = u64le(bytes, at + 4).ok_or(IvfError::ShortFrame { index })?;
        let start = at + 12;
        let end = start
            .checked_add(size)
            .filter(|e| *e <= bytes.len())
            .ok_or(IvfError::ShortFrame { index })?;
        frames.push(IvfFrame {
            pts,
            data: bytes[start..end].to_vec(),
        });
        at = end;
    }
    if frames.is_empty() {
        return Err(IvfError::Empty);
    }
    Ok((header, frames))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn build(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"DKIF");
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&32u16.to_le_bytes());
        out.extend_from_slice(b"VP80");
        out.extend_from_slice(&640u16.to_le_bytes());
        out.extend_from_slice(&360u16.to_le_bytes());
        out.extend_from_slice(&30u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(i as u64).to_le_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn reads_header_and_frames() {
        let file = build(&[b"abc", b"", b"defgh"]);
        let (h, frames) = parse(&file).unwrap();
        assert_eq!(&h.fourcc, b"VP80");
        assert_eq!((h.width, h.height), (640, 360));
        assert_eq!((h.timebase_den, h.timebase_num), (30, 1));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].data, b"defgh");
        assert_eq!(frames[2].pts, 2);
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let file = build(&[b"abc", b"defgh"]);
        let cut = &file[..file.len() - 1];
        assert_eq!(parse(cut), Err(IvfError::ShortFrame { index: 1 }));
        assert_eq!(parse(&file[..32]), Err(IvfError::Empty));
        assert_eq!(parse(&file[..20]), Err(IvfError::ShortHeader));
        assert_eq!(parse(b"RIFF...."), Err(IvfError::Signature));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
            let mut signed = b"DKIF".to_vec();
            signed.extend_from_slice(&bytes);
            let _ = parse(&signed);
        }

        #[test]
        fn round_trip(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8)) {
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            let (_, parsed) = parse(&build(&refs)).unwrap();
            let data: Vec<Vec<u8>> = parsed.into_iter().map(|f| f.data).collect();
            prop_assert_eq!(data, frames);
        }
    }
}
