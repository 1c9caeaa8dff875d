//! Low-level ISO BMFF box reading: headers, child iteration and a bounds-checked
//! big-endian reader. Everything here works on complete, in-memory boxes; the
//! streaming side (boxes split across chunks) lives in [`super::Fmp4Parser`].

use std::fmt;

use super::Fmp4Error;

/// A four-character box or handler code such as `moof` or `vide`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    /// The code as raw bytes.
    pub const fn bytes(self) -> [u8; 4] {
        self.0
    }
}

impl fmt::Display for FourCc {
    /// Printable ASCII as is, anything else as `\xNN`, so garbage input still
    /// gives a readable error message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc(\"{self}\")")
    }
}

/// A parsed box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoxHeader {
    pub typ: FourCc,
    /// 8, or 16 with a 64-bit `largesize`.
    pub header_len: usize,
    /// Total size including the header; `None` for size 0 ("to the end of the
    /// enclosing container or file").
    pub size: Option<u64>,
}

/// Reads a box header from the front of `data`. `Ok(None)` means more bytes are
/// needed to tell.
pub(crate) fn read_header(data: &[u8]) -> Result<Option<BoxHeader>, Fmp4Error> {
    let Some(head) = data.get(..8) else {
        return Ok(None);
    };
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let typ = FourCc([head[4], head[5], head[6], head[7]]);
    let (header_len, size) = match size32 {
        0 => (8, None),
        1 => {
            let Some(large) = data.get(8..16) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            (16, Some(u64::from_be_bytes(b)))
        }
        n => (8, Some(u64::from(n))),
    };
    if let Some(size) = size {
        if size < header_len as u64 {
            return Err(Fmp4Error::BadBoxSize {
                box_type: typ,
                size,
                header: header_len,
            });
        }
    }
    Ok(Some(BoxHeader {
        typ,
        header_len,
        size,
    }))
}

/// Iterates over the child boxes packed in a container's payload. Each item is
/// the child's type and payload (header stripped). A malformed child yields
/// one error and ends the iteration.
pub(crate) struct Children<'a> {
    data: &'a [u8],
    pos: usize,
    parent: FourCc,
}

pub(crate) fn children(payload: &[u8], parent: FourCc) -> Children<'_> {
    Children {
        data: payload,
        pos: 0,
        parent,
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<(FourCc, &'a [u8]), Fmp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let item = match read_header(rest) {
            Err(e) => Err(e),
            Ok(None) => Err(Fmp4Error::Truncated {
                box_type: self.parent,
            }),
            Ok(Some(h)) => {
                let total = match h.size {
                    // Size 0 inside a container: extends to the container's end.
                    None => Some(rest.len()),
                    Some(s) => usize::try_from(s).ok().filter(|&s| s <= rest.len()),
                };
                match total {
                    None => Err(Fmp4Error::Truncated { box_type: h.typ }),
                    Some(total) => {
                        self.pos += total;
                        return Some(Ok((h.typ, &rest[h.header_len..total])));
                    }
                }
            }
        };
        // Stop after the first error: the rest of the container is unreadable.
        self.pos = self.data.len();
        Some(item)
    }
}

/// A bounds-checked big-endian reader over one box payload; running past the
/// end is a [`Fmp4Error::Truncated`] naming the box, never a panic.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    box_type: FourCc,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], box_type: FourCc) -> Self {
        Self {
            data,
            pos: 0,
            box_type,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fmp4Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Fmp4Error::Truncated {
                box_type: self.box_type,
            }),
        }
    }

    pub fn skip(&mut self, n: usize) -> Result<(), Fmp4Error> {
        self.take(n).map(|_| ())
    }

    pub fn u32(&mut self) -> Result<u32, Fmp4Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Fmp4Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn fourcc(&mut self) -> Result<FourCc, Fmp4Error> {
        let b = self.take(4)?;
        Ok(FourCc([b[0], b[1], b[2], b[3]]))
    }

    /// Version and 24-bit flags of a "full box".
    pub fn full_box(&mut self) -> Result<(u8, u32), Fmp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_eight_bytes_then_sixteen_for_largesize() {
        assert_eq!(read_header(&[0, 0, 0]).unwrap(), None);
        let h = read_header(b"\0\0\0\x10moofxxxxxxxx").unwrap().unwrap();
        assert_eq!(
            (h.typ, h.header_len, h.size),
            (FourCc(*b"moof"), 8, Some(16))
        );
        // size 1 announces a largesize that is not there yet
        assert_eq!(read_header(b"\0\0\0\x01mdat\0\0\0").unwrap(), None);
        let h = read_header(b"\0\0\0\x01mdat\0\0\0\0\0\0\0\x20")
            .unwrap()
            .unwrap();
        assert_eq!((h.header_len, h.size), (16, Some(32)));
    }

    #[test]
    fn header_smaller_than_itself_is_an_error() {
        assert!(matches!(
            read_header(b"\0\0\0\x07free"),
            Err(Fmp4Error::BadBoxSize { size: 7, .. })
        ));
        assert!(matches!(
            read_header(b"\0\0\0\x01mdat\0\0\0\0\0\0\0\x0f"),
            Err(Fmp4Error::BadBoxSize {
                size: 15,
                header: 16,
                ..
            })
        ));
    }

    #[test]
    fn children_stop_at_first_error() {
        let mut data = b"\0\0\0\x09abcdX".to_vec();
        data.extend_from_slice(b"\0\0\0\xffbig!");
        let items: Vec<_> = children(&data, FourCc(*b"moov")).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().1, b"X");
        assert!(
            matches!(items[1], Err(Fmp4Error::Truncated { box_type }) if box_type == FourCc(*b"big!"))
        );
    }

    #[test]
    fn child_with_size_zero_runs_to_container_end() {
        let data = b"\0\0\0\0abcdrest";
        let items: Vec<_> = children(data, FourCc(*b"moov"))
            .map(Result::unwrap)
            .collect();
        assert_eq!(items, vec![(FourCc(*b"abcd"), &b"rest"[..])]);
    }

    #[test]
    fn reader_reports_truncation_with_box_name() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6], FourCc(*b"tfhd"));
        assert_eq!(r.skip(4), Ok(()));
        assert!(
            matches!(r.u32(), Err(Fmp4Error::Truncated { box_type }) if box_type == FourCc(*b"tfhd"))
        );
        assert_eq!(r.remaining(), 2);
    }

    #[test]
    fn fourcc_display_escapes_binary() {
        assert_eq!(FourCc(*b"moov").to_string(), "moov");
        assert_eq!(FourCc([0, b'a', 0xff, b' ']).to_string(), "\\x00a\\xff ");
    }
}
