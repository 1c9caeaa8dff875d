//! Incremental parser for a fragmented MP4 (CMAF) byte stream, as an encoder
//! writes it to a pipe: `ftyp`+`moov` once, then `moof`+`mdat` fragments
//! (optionally preceded by `styp`, `prft`, `emsg`, `sidx`, …).
//!
//! Why a parser of our own: the mixer (ffmpeg `-movflags
//! frag_keyframe+empty_moov+default_base_moof`, GStreamer `mp4mux
//! fragment-duration=…`) only gives us bytes; to publish LL-HLS parts we must
//! know where each fragment ends, how long it lasts and whether it starts on a
//! keyframe. Only the boxes that answer those questions are read (`tkhd`,
//! `mdhd`, `hdlr`, `trex`, `mfhd`, `tfhd`, `tfdt`, `trun`); everything else is
//! carried through untouched in the output bytes.
//!
//! Sans-IO: [`Fmp4Parser::push`] bytes in any chunking, then
//! [`Fmp4Parser::poll`] until `Ok(None)`. Memory is bounded by
//! [`Fmp4ParserOptions`]: a box or a whole fragment declaring more than the
//! limit is rejected as soon as its header is read, before it is buffered.
//! Errors are fatal for the stream (a pipe cannot resynchronise on box
//! boundaries); the caller restarts the encoder and signals a discontinuity.

mod boxes;
mod codecs;
#[cfg(test)]
pub(crate) mod test_builder;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use boxes::FourCc;
use boxes::{children, read_header, Reader};
pub use codecs::{describe_init, InitCodecs};

/// Why a stream could not be parsed. Every variant is fatal for the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fmp4Error {
    /// A box declares a size over [`Fmp4ParserOptions::max_box_size`].
    #[error("box '{box_type}' declares {size} bytes, over the {limit}-byte limit")]
    BoxTooLarge {
        /// The offending box.
        box_type: FourCc,
        /// Its declared size.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// An init segment or fragment would exceed [`Fmp4ParserOptions::max_fragment_size`].
    #[error("init segment or fragment grows past the {limit}-byte limit (at box '{box_type}')")]
    FragmentTooLarge {
        /// The box that would cross the limit.
        box_type: FourCc,
        /// The configured limit.
        limit: usize,
    },
    /// A box declares a size smaller than its own header.
    #[error("box '{box_type}' declares size {size}, smaller than its {header}-byte header")]
    BadBoxSize {
        /// The offending box.
        box_type: FourCc,
        /// Its declared size.
        size: u64,
        /// Its header length (8 or 16).
        header: usize,
    },
    /// A top-level box with size 0 ("to the end of the file"): a live stream has no end to run to.
    #[error(
        "top-level box '{box_type}' has size 0 (to end of file), which a live stream cannot use"
    )]
    SizeToEndOfStream {
        /// The offending box.
        box_type: FourCc,
    },
    /// A box's fields run past its end.
    #[error("box '{box_type}' is truncated: its fields run past its end")]
    Truncated {
        /// The box being read.
        box_type: FourCc,
    },
    /// A box the parser needs is absent.
    #[error("missing box '{path}'")]
    MissingBox {
        /// Where it was expected, e.g. `moov/trak/mdia/mdhd`.
        path: &'static str,
    },
    /// Media arrived before the `moov` that describes it.
    #[error("'{box_type}' before the init segment: the stream must start with ftyp+moov (ffmpeg: -movflags empty_moov)")]
    BeforeInit {
        /// The early box.
        box_type: FourCc,
    },
    /// A `moof` was followed by another `moof` (or a new init) instead of its `mdat`.
    #[error("'moof' not followed by its 'mdat' (got '{next}')")]
    MoofWithoutMdat {
        /// The box that came instead.
        next: FourCc,
    },
    /// An `mdat` with no `moof` before it.
    #[error("'mdat' without a preceding 'moof'")]
    MdatWithoutMoof,
    /// A `traf` names a track the init segment does not declare.
    #[error("fragment names track {0}, which the init segment does not declare")]
    UnknownTrack(u32),
    /// Two `trak`s share an id.
    #[error("track id {0} is declared twice in 'moov'")]
    DuplicateTrack(u32),
    /// `mdhd` timescale 0 would make every duration a division by zero.
    #[error("track {track_id} has timescale 0")]
    ZeroTimescale {
        /// The track.
        track_id: u32,
    },
    /// A full box with a version this parser does not know.
    #[error("box '{box_type}' has unsupported version {version}")]
    UnsupportedVersion {
        /// The box.
        box_type: FourCc,
        /// Its version.
        version: u8,
    },
    /// [`Fmp4Parser::finish`] found an incomplete box or fragment at the end of input.
    #[error("stream ended inside a box or fragment ({buffered} bytes left unparsed)")]
    TruncatedStream {
        /// Bytes buffered but not emitted.
        buffered: usize,
    },
}

/// Limits that bound the parser's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fmp4ParserOptions {
    /// Largest single box accepted (default 16 MiB: a 2 s keyframe fragment of
    /// 1080p at 20 Mbit/s is 5 MB, so this is generous but not unbounded).
    pub max_box_size: usize,
    /// Largest init segment or fragment, all its boxes together (default 32 MiB).
    pub max_fragment_size: usize,
}

impl Default for Fmp4ParserOptions {
    fn default() -> Self {
        Self {
            max_box_size: 16 << 20,
            max_fragment_size: 32 << 20,
        }
    }
}

/// A track's id, as in `tkhd`/`tfhd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u32);

/// What a track carries, from its `hdlr` handler type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// `vide`.
    Video,
    /// `soun`.
    Audio,
    /// Anything else (`text`, `subt`, `meta`, …).
    Other(FourCc),
}

impl TrackKind {
    fn from_handler(h: FourCc) -> Self {
        match &h.0 {
            b"vide" => Self::Video,
            b"soun" => Self::Audio,
            _ => Self::Other(h),
        }
    }
}

/// A track declared by the init segment, with the `trex` defaults fragments fall back on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Track {
    /// The track id.
    pub id: TrackId,
    /// Video, audio or other.
    pub kind: TrackKind,
    /// Ticks per second of this track's media time (`mdhd`).
    pub timescale: u32,
    /// `trex` default sample duration, in ticks (0 when absent).
    pub default_sample_duration: u32,
    /// `trex` default sample flags (0 when absent, i.e. sync samples).
    pub default_sample_flags: u32,
}

/// The init segment (`ftyp`+`moov`, with any boxes between) and the tracks it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSegment {
    /// The bytes to store as `init.mp4`, exactly as the encoder wrote them.
    pub bytes: Vec<u8>,
    /// Tracks in `moov` order.
    pub tracks: Vec<Track>,
}

/// What one fragment holds for one track (one `traf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackFragment {
    /// The track.
    pub track_id: TrackId,
    /// Its kind, copied from the init segment.
    pub kind: TrackKind,
    /// Its timescale, copied from the init segment.
    pub timescale: u32,
    /// `tfdt` base media decode time in ticks, if the fragment carries one.
    pub base_media_decode_time: Option<u64>,
    /// Sum of the sample durations, in ticks.
    pub duration_ticks: u64,
    /// Number of samples over all `trun`s.
    pub sample_count: u64,
    /// Whether the first sample is a sync sample (keyframe); `false` if there are no samples.
    pub starts_with_sync: bool,
}

impl TrackFragment {
    /// The fragment's duration for this track.
    pub fn duration(&self) -> Duration {
        ticks_to_duration(self.duration_ticks, self.timescale)
    }

    /// The decode time of the first sample, if `tfdt` was present.
    pub fn start(&self) -> Option<Duration> {
        self.base_media_decode_time
            .map(|t| ticks_to_duration(t, self.timescale))
    }
}

/// One `moof`+`mdat` (with any boxes that preceded the `moof`, such as `styp` or `prft`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The bytes to store as (part of) a part and a segment.
    pub bytes: Vec<u8>,
    /// `mfhd` sequence number.
    pub sequence_number: u32,
    /// One entry per `traf`, in order.
    pub tracks: Vec<TrackFragment>,
    /// Whether a player can start decoding here: every video track with samples
    /// starts on a sync sample, and at least one does. Without any video track
    /// in the init segment every fragment is independent (audio frames are).
    pub independent: bool,
}

impl Fragment {
    /// The track the fragment's timing is measured by: the first video track
    /// with samples, else the first track with samples, else the first track.
    /// Segments are cut on video keyframes, so video time is what counts.
    pub fn primary_track(&self) -> Option<&TrackFragment> {
        self.tracks
            .iter()
            .find(|t| t.kind == TrackKind::Video && t.sample_count > 0)
            .or_else(|| self.tracks.iter().find(|t| t.sample_count > 0))
            .or_else(|| self.tracks.first())
    }

    /// The duration of the [primary track](Self::primary_track), zero without tracks.
    pub fn duration(&self) -> Duration {
        self.primary_track()
            .map(TrackFragment::duration)
            .unwrap_or_default()
    }
}

/// What the parser yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fmp4Event {
    /// A (new) init segment; later fragments refer to its tracks.
    Init(InitSegment),
    /// A complete fragment.
    Fragment(Fragment),
}

/// `sample_is_non_sync_sample` in ISO/IEC 14496-12 sample flags.
const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// The incremental fMP4 parser. See the [module docs](self).
#[derive(Debug)]
pub struct Fmp4Parser {
    options: Fmp4ParserOptions,
    /// Input bytes; `buf[unit_start..scan]` are the complete boxes of the unit
    /// (init segment or fragment) being assembled, `buf[scan..]` is not yet parsed.
    buf: Vec<u8>,
    unit_start: usize,
    scan: usize,
    tracks: Option<Vec<Track>>,
    pending_moof: Option<MoofSummary>,
    failed: Option<Fmp4Error>,
}

#[derive(Debug)]
struct MoofSummary {
    sequence_number: u32,
    tracks: Vec<TrackFragment>,
}

impl Default for Fmp4Parser {
    fn default() -> Self {
        Self::new(Fmp4ParserOptions::default())
    }
}

impl Fmp4Parser {
    /// A parser expecting an init segment first.
    pub fn new(options: Fmp4ParserOptions) -> Self {
        Self {
            options,
            buf: Vec::new(),
            unit_start: 0,
            scan: 0,
            tracks: None,
            pending_moof: None,
            failed: None,
        }
    }

    /// Appends input bytes; boxes may be split anywhere. Call [`Self::poll`]
    /// until it returns `Ok(None)` before pushing more, so that at most one
    /// unit plus one chunk is ever buffered. Ignored once the parser failed.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Drop bytes already handed out; what remains is the partial unit.
        if self.unit_start > 0 {
            self.buf.drain(..self.unit_start);
            self.scan -= self.unit_start;
            self.unit_start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next init segment or fragment, `Ok(None)` when more input is needed.
    /// After an error every later call returns the same error.
    pub fn poll(&mut self) -> Result<Option<Fmp4Event>, Fmp4Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step() {
            Ok(ev) => Ok(ev),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.unit_start = 0;
                self.scan = 0;
                Err(e)
            }
        }
    }

    /// Checks that the input ended on a unit boundary (call at end of stream).
    pub fn finish(&self) -> Result<(), Fmp4Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let buffered = self.buf.len() - self.unit_start;
        if buffered > 0 {
            return Err(Fmp4Error::TruncatedStream { buffered });
        }
        Ok(())
    }

    /// Tracks of the latest init segment, if one was seen.
    pub fn tracks(&self) -> Option<&[Track]> {
        self.tracks.as_deref()
    }

    /// Bytes held for the unit being assembled plus unparsed input.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.unit_start
    }

    fn take_unit(&mut self) -> Vec<u8> {
        let unit = self.buf[self.unit_start..self.scan].to_vec();
        self.unit_start = self.scan;
        unit
    }

    fn step(&mut self) -> Result<Option<Fmp4Event>, Fmp4Error> {
        loop {
            let Some(h) = read_header(&self.buf[self.scan..])? else {
                return Ok(None);
            };
            let Some(size) = h.size else {
                return Err(Fmp4Error::SizeToEndOfStream { box_type: h.typ });
            };
            if size > self.options.max_box_size as u64 {
                return Err(Fmp4Error::BoxTooLarge {
                    box_type: h.typ,
                    size,
                    limit: self.options.max_box_size,
                });
            }
            // `ftyp` and `moov` start a new unit, so they count from their own start.
            let counts_from = if matches!(&h.typ.0, b"ftyp") {
                self.scan
            } else {
                self.unit_start
            };
            let unit_len = (self.scan - counts_from) as u64 + size;
            if unit_len > self.options.max_fragment_size as u64 {
                return Err(Fmp4Error::FragmentTooLarge {
                    box_type: h.typ,
                    limit: self.options.max_fragment_size,
                });
            }
            let start = self.scan;
            // `size` ≤ max_box_size, a usize, so this cannot truncate.
            let end = start + size as usize;
            if self.buf.len() < end {
                return Ok(None);
            }
            self.scan = end;
            let payload_start = start + h.header_len;
            match &h.typ.0 {
                b"ftyp" => {
                    if self.pending_moof.is_some() {
                        return Err(Fmp4Error::MoofWithoutMdat { next: h.typ });
                    }
                    // A new init: whatever stray boxes preceded it belong to nothing.
                    self.unit_start = start;
                }
                b"moov" => {
                    if self.pending_moof.is_some() {
                        return Err(Fmp4Error::MoofWithoutMdat { next: h.typ });
                    }
                    let tracks = parse_moov(&self.buf[payload_start..end])?;
                    self.tracks = Some(tracks.clone());
                    let bytes = self.take_unit();
                    return Ok(Some(Fmp4Event::Init(InitSegment { bytes, tracks })));
                }
                b"moof" => {
                    let Some(tracks) = &self.tracks else {
                        return Err(Fmp4Error::BeforeInit { box_type: h.typ });
                    };
                    if self.pending_moof.is_some() {
                        return Err(Fmp4Error::MoofWithoutMdat { next: h.typ });
                    }
                    self.pending_moof = Some(parse_moof(&self.buf[payload_start..end], tracks)?);
                }
                b"mdat" => {
                    let Some(tracks) = &self.tracks else {
                        return Err(Fmp4Error::BeforeInit { box_type: h.typ });
                    };
                    let Some(moof) = self.pending_moof.take() else {
                        return Err(Fmp4Error::MdatWithoutMoof);
                    };
                    let independent = is_independent(tracks, &moof.tracks);
                    let bytes = self.take_unit();
                    return Ok(Some(Fmp4Event::Fragment(Fragment {
                        bytes,
                        sequence_number: moof.sequence_number,
                        tracks: moof.tracks,
                        independent,
                    })));
                }
                // styp, prft, emsg, sidx, free, uuid…: carried in the unit's bytes.
                _ => {}
            }
        }
    }
}

/// See [`Fragment::independent`].
fn is_independent(init: &[Track], trafs: &[TrackFragment]) -> bool {
    if !init.iter().any(|t| t.kind == TrackKind::Video) {
        return true;
    }
    let mut video = trafs
        .iter()
        .filter(|t| t.kind == TrackKind::Video && t.sample_count > 0)
        .peekable();
    video.peek().is_some() && video.all(|t| t.starts_with_sync)
}

fn ticks_to_duration(ticks: u64, timescale: u32) -> Duration {
    if timescale == 0 {
        return Duration::ZERO;
    }
    let ts = u64::from(timescale);
    let secs = ticks / ts;
    // rem < ts ≤ u32::MAX, so rem * 1e9 fits in u64 and the quotient is < 1e9.
    let nanos = (ticks % ts) * 1_000_000_000 / ts;
    Duration::new(secs, nanos as u32)
}

fn fourcc(s: &[u8; 4]) -> FourCc {
    FourCc(*s)
}

fn parse_moov(payload: &[u8]) -> Result<Vec<Track>, Fmp4Error> {
    let mut tracks: Vec<Track> = Vec::new();
    let mut trex: Vec<(u32, u32, u32)> = Vec::new();
    for child in children(payload, fourcc(b"moov")) {
        let (typ, body) = child?;
        match &typ.0 {
            b"trak" => {
                let t = parse_trak(body)?;
                if tracks.iter().any(|o| o.id == t.id) {
                    return Err(Fmp4Error::DuplicateTrack(t.id.0));
                }
                tracks.push(t);
            }
            b"mvex" => {
                for c in children(body, typ) {
                    let (ctyp, cbody) = c?;
                    if &ctyp.0 == b"trex" {
                        let mut r = Reader::new(cbody, ctyp);
                        r.full_box()?;
                        let id = r.u32()?;
                        let _sample_description_index = r.u32()?;
                        let duration = r.u32()?;
                        let _size = r.u32()?;
                        let flags = r.u32()?;
                        trex.push((id, duration, flags));
                    }
                }
            }
            _ => {}
        }
    }
    for t in &mut tracks {
        if let Some(&(_, duration, flags)) = trex.iter().find(|(id, _, _)| *id == t.id.0) {
            t.default_sample_duration = duration;
            t.default_sample_flags = flags;
        }
    }
    Ok(tracks)
}

fn parse_trak(payload: &[u8]) -> Result<Track, Fmp4Error> {
    let mut id = None;
    let mut timescale = None;
    let mut handler = None;
    for child in children(payload, fourcc(b"trak")) {
        let (typ, body) = child?;
        match &typ.0 {
            b"tkhd" => {
                let mut r = Reader::new(body, typ);
                let (version, _) = r.full_box()?;
                match version {
                    0 => r.skip(8)?,
                    1 => r.skip(16)?,
                    v => {
                        return Err(Fmp4Error::UnsupportedVersion {
                            box_type: typ,
                            version: v,
                        })
                    }
                }
                id = Some(r.u32()?);
            }
            b"mdia" => {
                for c in children(body, typ) {
                    let (ctyp, cbody) = c?;
                    let mut r = Reader::new(cbody, ctyp);
                    match &ctyp.0 {
                        b"mdhd" => {
                            let (version, _) = r.full_box()?;
                            match version {
                                0 => r.skip(8)?,
                                1 => r.skip(16)?,
                                v => {
                                    return Err(Fmp4Error::UnsupportedVersion {
                                        box_type: ctyp,
                                        version: v,
                                    })
                                }
                            }
                            timescale = Some(r.u32()?);
                        }
                        b"hdlr" => {
                            r.full_box()?;
                            let _pre_defined = r.u32()?;
                            handler = Some(r.fourcc()?);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let id = id.ok_or(Fmp4Error::MissingBox {
        path: "moov/trak/tkhd",
    })?;
    let timescale = timescale.ok_or(Fmp4Error::MissingBox {
        path: "moov/trak/mdia/mdhd",
    })?;
    let handler = handler.ok_or(Fmp4Error::MissingBox {
        path: "moov/trak/mdia/hdlr",
    })?;
    if timescale == 0 {
        return Err(Fmp4Error::ZeroTimescale { track_id: id });
    }
    Ok(Track {
        id: TrackId(id),
        kind: TrackKind::from_handler(handler),
        timescale,
        default_sample_duration: 0,
        default_sample_flags: 0,
    })
}

fn parse_moof(payload: &[u8], tracks: &[Track]) -> Result<MoofSummary, Fmp4Error> {
    let mut sequence_number = None;
    let mut trafs = Vec::new();
    for child in children(payload, fourcc(b"moof")) {
        let (typ, body) = child?;
        match &typ.0 {
            b"mfhd" => {
                let mut r = Reader::new(body, typ);
                r.full_box()?;
                sequence_number = Some(r.u32()?);
            }
            b"traf" => trafs.push(parse_traf(body, tracks)?),
            _ => {}
        }
    }
    let sequence_number = sequence_number.ok_or(Fmp4Error::MissingBox { path: "moof/mfhd" })?;
    Ok(MoofSummary {
        sequence_number,
        tracks: trafs,
    })
}

/// `tfhd` fields the sample walk needs.
struct Tfhd {
    track_id: u32,
    default_duration: Option<u32>,
    default_flags: Option<u32>,
}

fn parse_tfhd(body: &[u8], typ: FourCc) -> Result<Tfhd, Fmp4Error> {
    let mut r = Reader::new(body, typ);
    let (_, flags) = r.full_box()?;
    let track_id = r.u32()?;
    if flags & 0x01 != 0 {
        let _base_data_offset = r.u64()?;
    }
    if flags & 0x02 != 0 {
        let _sample_description_index = r.u32()?;
    }
    let default_duration = if flags & 0x08 != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    if flags & 0x10 != 0 {
        let _default_size = r.u32()?;
    }
    let default_flags = if flags & 0x20 != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    Ok(Tfhd {
        track_id,
        default_duration,
        default_flags,
    })
}

fn parse_traf(payload: &[u8], tracks: &[Track]) -> Result<TrackFragment, Fmp4Error> {
    let mut tfhd = None;
    let mut tfdt = None;
    let mut truns: Vec<&[u8]> = Vec::new();
    for child in children(payload, fourcc(b"traf")) {
        let (typ, body) = child?;
        match &typ.0 {
            b"tfhd" => tfhd = Some(parse_tfhd(body, typ)?),
            b"tfdt" => {
                let mut r = Reader::new(body, typ);
                let (version, _) = r.full_box()?;
                tfdt = Some(match version {
                    0 => u64::from(r.u32()?),
                    1 => r.u64()?,
                    v => {
                        return Err(Fmp4Error::UnsupportedVersion {
                            box_type: typ,
                            version: v,
                        })
                    }
                });
            }
            b"trun" => truns.push(body),
            _ => {}
        }
    }
    let tfhd = tfhd.ok_or(Fmp4Error::MissingBox {
        path: "moof/traf/tfhd",
    })?;
    let track = tracks
        .iter()
        .find(|t| t.id.0 == tfhd.track_id)
        .ok_or(Fmp4Error::UnknownTrack(tfhd.track_id))?;
    let default_duration = tfhd
        .default_duration
        .unwrap_or(track.default_sample_duration);
    let default_flags = tfhd.default_flags.unwrap_or(track.default_sample_flags);

    let mut duration_ticks = 0u64;
    let mut sample_count = 0u64;
    let mut first_flags = None;
    for body in truns {
        let run = parse_trun(body, default_duration, default_flags)?;
        if first_flags.is_none() && run.sample_count > 0 {
            first_flags = Some(run.first_sample_flags);
        }
        duration_ticks = duration_ticks.saturating_add(run.duration_ticks);
        sample_count += u64::from(run.sample_count);
    }
    Ok(TrackFragment {
        track_id: track.id,
        kind: track.kind,
        timescale: track.timescale,
        base_media_decode_time: tfdt,
        duration_ticks,
        sample_count,
        starts_with_sync: first_flags.is_some_and(|f| f & SAMPLE_IS_NON_SYNC == 0),
    })
}

struct TrunSummary {
    sample_count: u32,
    duration_ticks: u64,
    first_sample_flags: u32,
}

fn parse_trun(
    body: &[u8],
    default_duration: u32,
    default_flags: u32,
) -> Result<TrunSummary, Fmp4Error> {
    let typ = fourcc(b"trun");
    let mut r = Reader::new(body, typ);
    let (_, flags) = r.full_box()?;
    let sample_count = r.u32()?;
    if flags & 0x001 != 0 {
        let _data_offset = r.u32()?;
    }
    let first_sample_flags_field = if flags & 0x004 != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    let has_duration = flags & 0x100 != 0;
    let has_size = flags & 0x200 != 0;
    let has_flags = flags & 0x400 != 0;
    let has_cto = flags & 0x800 != 0;
    let record = 4
        * (usize::from(has_duration)
            + usize::from(has_size)
            + usize::from(has_flags)
            + usize::from(has_cto));
    // Check the whole table fits before walking it, so a huge sample_count in
    // a small box fails at once instead of looping.
    if (record as u64) * u64::from(sample_count) > r.remaining() as u64 {
        return Err(Fmp4Error::Truncated { box_type: typ });
    }
    let mut duration_ticks = 0u64;
    let mut first_per_sample_flags = None;
    if record == 0 {
        duration_ticks = u64::from(sample_count) * u64::from(default_duration);
    } else {
        for i in 0..sample_count {
            let d = if has_duration {
                r.u32()?
            } else {
                default_duration
            };
            duration_ticks += u64::from(d);
            if has_size {
                r.skip(4)?;
            }
            if has_flags {
                let f = r.u32()?;
                if i == 0 {
                    first_per_sample_flags = Some(f);
                }
            }
            if has_cto {
                r.skip(4)?;
            }
        }
    }
    // ISO/IEC 14496-12: first-sample-flags overrides the first sample's flags;
    // otherwise per-sample flags; otherwise the tfhd/trex default.
    let first_sample_flags = first_sample_flags_field
        .or(first_per_sample_flags)
        .unwrap_or(default_flags);
    Ok(TrunSummary {
        sample_count,
        duration_ticks,
        first_sample_flags,
    })
}
