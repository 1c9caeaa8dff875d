//! The LL-HLS media playlist writer (RFC 8216bis with Apple's low-latency
//! extensions) and the multivariant playlist.
//!
//! [`MediaPlaylist`] is a pure state machine: the caller pushes one part per
//! fMP4 fragment ([`MediaPlaylist::push_part`]), signals encoder restarts
//! ([`MediaPlaylist::discontinuity`]) and the end of the broadcast
//! ([`MediaPlaylist::end`]); the writer groups parts into segments, numbers
//! them, and renders the live LL-HLS playlist ([`MediaPlaylist::render_live`],
//! served from memory so blocking reloads can be held), the same window
//! without low-latency tags for the store ([`MediaPlaylist::render_classic`])
//! and the recording's VOD playlist ([`MediaPlaylist::render_vod`]).
//!
//! Storage names follow the design's layout, relative to the rendition's
//! directory: [`segment_uri`] `<msn>.m4s`, [`part_uri`] `<msn>.<part>.m4s`,
//! [`init_uri`] `init.mp4` then `init-<n>.mp4` for each changed init segment.
//! The writer never holds media bytes: a segment's file is the concatenation
//! of its parts' bytes, which the caller keeps until [`ClosedSegment`] tells it
//! to write them.
//!
//! Ordering rule (a segment or part is written before the playlist naming it):
//! every mutating call returns the objects it made nameable (the part, and the
//! segment it closed); write those, then publish a newly rendered playlist.
//! [`MediaPlaylist::plan_part`] previews a push without changing anything.
//!
//! ```
//! use std::time::Duration;
//! use rostrum_hls::playlist::{MediaPlaylist, MediaPlaylistOptions, PartInfo};
//!
//! let mut playlist = MediaPlaylist::new(MediaPlaylistOptions::default())?;
//! for i in 0..5 {
//!     let part = PartInfo {
//!         duration: Duration::from_millis(500),
//!         independent: i % 4 == 0, // a keyframe every 2 s
//!         wall_clock_ms: Some(1_700_000_000_000 + i * 500),
//!     };
//!     let placed = playlist.plan_part(&part)?;
//!     // store.put(&placed.uri, part_bytes); if let Some(seg) = &placed.closed { store.put(&seg.uri, segment_bytes) }
//!     playlist.push_part(part)?;
//!     if i == 4 {
//!         assert_eq!(placed.uri, "1.0.m4s");
//!         assert_eq!(placed.closed.map(|s| s.uri).as_deref(), Some("0.m4s"));
//!     }
//! }
//! let text = playlist.render_live();
//! assert!(text.contains("#EXTINF:2.0,\n0.m4s\n"));
//! assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.1.m4s\"\n"));
//! # Ok::<(), rostrum_hls::playlist::PlaylistError>(())
//! ```

mod date;
mod multivariant;
mod render;
#[cfg(test)]
pub(crate) mod test_parser;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use date::format_program_date_time;
pub use multivariant::{render_multivariant, Resolution, VariantStream};

/// Why a playlist call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    /// [`MediaPlaylist::end`] was called; the playlist is final.
    #[error("the playlist has ended: no more parts or discontinuities")]
    Ended,
    /// A part must have a positive duration.
    #[error("a part must last longer than zero")]
    ZeroDuration,
    /// The VOD playlist is only final, hence only renderable, after [`MediaPlaylist::end`].
    #[error("the VOD playlist can only be rendered after the broadcast has ended")]
    NotEnded,
    /// [`MediaPlaylistOptions`] that cannot work.
    #[error("invalid playlist options: {0}")]
    InvalidOptions(&'static str),
    /// A caller-supplied attribute would break the playlist syntax.
    #[error("{attribute} {value:?} is not allowed in a playlist: {reason}")]
    InvalidAttribute {
        /// Which attribute.
        attribute: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// How the writer cuts and windows segments. All durations are [`Duration`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPlaylistOptions {
    /// Aimed-for segment duration (default 2 s). A segment closes at the first
    /// independent part once it is within half a part target of this; its
    /// ceiling is the least `EXT-X-TARGETDURATION` ever advertised.
    pub segment_target: Duration,
    /// Advertised `PART-TARGET` (default 0.5 s): the encoder's fragment
    /// duration. If a longer part arrives, `PART-TARGET` grows to cover it
    /// (the spec requires every part ≤ `PART-TARGET`).
    pub part_target: Duration,
    /// Complete segments kept in the live playlist (default 6). More are kept
    /// when needed for the spec's floor of three target durations.
    pub window_segments: usize,
    /// A segment that would grow past this closes even without a keyframe
    /// (default 3 × `segment_target`), so an encoder that stops sending
    /// keyframes cannot grow one segment, and `EXT-X-TARGETDURATION`, without bound.
    pub max_segment: Duration,
}

impl Default for MediaPlaylistOptions {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(500),
            window_segments: 6,
            max_segment: Duration::from_secs(6),
        }
    }
}

/// A part as the caller knows it when a fragment arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartInfo {
    /// Media duration of the part (the fragment's [`crate::fmp4::Fragment::duration`]).
    pub duration: Duration,
    /// Whether it starts with an independent (key) frame.
    pub independent: bool,
    /// Wall-clock time of the part's first sample, milliseconds since the Unix
    /// epoch; becomes `EXT-X-PROGRAM-DATE-TIME` if this part starts a segment.
    pub wall_clock_ms: Option<u64>,
}

/// Where a pushed part went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartPlacement {
    /// Media sequence number of the segment it belongs to.
    pub msn: u64,
    /// Its index within that segment.
    pub index: u32,
    /// Its storage name, `<msn>.<index>.m4s`.
    pub uri: String,
    /// The segment this part's arrival completed, if any: write it before
    /// publishing the next playlist.
    pub closed: Option<ClosedSegment>,
}

/// A segment that has just become complete and will be named by `EXTINF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSegment {
    /// Its media sequence number.
    pub msn: u64,
    /// Its storage name, `<msn>.m4s` (the concatenation of its parts).
    pub uri: String,
    /// Its duration.
    pub duration: Duration,
    /// How many parts it has (indices `0..parts`).
    pub parts: u32,
}

/// The result of [`MediaPlaylist::discontinuity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discontinuity {
    /// The segment in progress, closed early by the restart.
    pub closed: Option<ClosedSegment>,
    /// The init segment URI the following parts use (write the new init there
    /// if it changed).
    pub init_uri: String,
}

/// A part's position: segment MSN and part index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartPosition {
    /// Media sequence number.
    pub msn: u64,
    /// Part index within the segment.
    pub index: u32,
}

/// What a blocking playlist reload is judged against; see [`crate::blocking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveEdge {
    /// MSN of the newest complete segment.
    pub last_msn: Option<u64>,
    /// The newest part in the playlist.
    pub last_part: Option<PartPosition>,
    /// Whether that part's segment is still open (more parts may join it).
    pub last_part_open: bool,
    /// `PART-TARGET` as currently advertised.
    pub part_target: Duration,
    /// `EXT-X-ENDLIST` is present.
    pub ended: bool,
}

/// Storage name of a segment: `<msn>.m4s`.
pub fn segment_uri(msn: u64) -> String {
    format!("{msn}.m4s")
}

/// Storage name of a part: `<msn>.<index>.m4s`.
pub fn part_uri(msn: u64, index: u32) -> String {
    format!("{msn}.{index}.m4s")
}

/// Storage name of an init segment: `init.mp4` for the first, `init-<n>.mp4`
/// for the n-th replacement (a new name, so no cache ever serves a stale one).
pub fn init_uri(version: u32) -> String {
    if version == 0 {
        "init.mp4".to_owned()
    } else {
        format!("init-{version}.mp4")
    }
}

#[derive(Debug, Clone, Copy)]
struct PartEntry {
    duration: Duration,
    independent: bool,
}

#[derive(Debug, Clone)]
struct Segment {
    msn: u64,
    duration: Duration,
    part_count: u32,
    /// Kept while the segment is in the live window, dropped after (memory).
    parts: Vec<PartEntry>,
    /// An `EXT-X-DISCONTINUITY` precedes this segment.
    discontinuity: bool,
    /// Its discontinuity sequence number.
    dsn: u64,
    /// Version of the init segment it needs (see [`init_uri`]).
    init: u32,
    program_date_time_ms: Option<u64>,
}

impl Segment {
    fn closed(&self) -> ClosedSegment {
        ClosedSegment {
            msn: self.msn,
            uri: segment_uri(self.msn),
            duration: self.duration,
            parts: self.part_count,
        }
    }
}

/// The media playlist writer for one rendition. See the [module docs](self).
///
/// Memory: parts are kept only for segments in the live window; every
/// complete segment keeps ~80 bytes for the VOD playlist (a 10-hour
/// broadcast at 2 s is ~1.5 MB).
#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    options: MediaPlaylistOptions,
    /// Every complete segment since the start, oldest first.
    segments: Vec<Segment>,
    /// Index in `segments` of the first segment in the live playlist; only grows.
    window_start: usize,
    /// The segment being filled with parts (listed with parts, no `EXTINF` yet).
    open: Option<Segment>,
    /// MSN the next segment to open will get.
    next_msn: u64,
    init_version: u32,
    pending_discontinuity: bool,
    dsn: u64,
    /// Longest part seen, for `PART-TARGET`.
    max_part: Duration,
    /// Largest rounded `EXTINF` seen, for `EXT-X-TARGETDURATION`.
    max_rounded_extinf: u64,
    ended: bool,
}

impl MediaPlaylist {
    /// A writer with no segments yet; the first segment gets MSN 0.
    pub fn new(options: MediaPlaylistOptions) -> Result<Self, PlaylistError> {
        if options.part_target.is_zero() {
            return Err(PlaylistError::InvalidOptions(
                "part_target must be positive",
            ));
        }
        if options.segment_target < options.part_target {
            return Err(PlaylistError::InvalidOptions(
                "segment_target must be at least part_target",
            ));
        }
        if options.max_segment < options.segment_target {
            return Err(PlaylistError::InvalidOptions(
                "max_segment must be at least segment_target",
            ));
        }
        if options.window_segments == 0 {
            return Err(PlaylistError::InvalidOptions(
                "window_segments must be at least 1",
            ));
        }
        Ok(Self {
            options,
            segments: Vec::new(),
            window_start: 0,
            open: None,
            next_msn: 0,
            init_version: 0,
            pending_discontinuity: false,
            dsn: 0,
            max_part: Duration::ZERO,
            max_rounded_extinf: 0,
            ended: false,
        })
    }

    /// The options it was built with.
    pub fn options(&self) -> &MediaPlaylistOptions {
        &self.options
    }

    /// Where `part` would go, without changing anything (so the caller can
    /// write the objects before [`Self::push_part`] makes them nameable).
    pub fn plan_part(&self, part: &PartInfo) -> Result<PartPlacement, PlaylistError> {
        if self.ended {
            return Err(PlaylistError::Ended);
        }
        if part.duration.is_zero() {
            return Err(PlaylistError::ZeroDuration);
        }
        Ok(match &self.open {
            Some(open) if !self.starts_segment(open, part) => PartPlacement {
                msn: open.msn,
                index: open.part_count,
                uri: part_uri(open.msn, open.part_count),
                closed: None,
            },
            open => PartPlacement {
                msn: self.next_msn,
                index: 0,
                uri: part_uri(self.next_msn, 0),
                closed: open.as_ref().map(Segment::closed),
            },
        })
    }

    /// Adds a part (one fMP4 fragment), opening and closing segments as needed.
    pub fn push_part(&mut self, part: PartInfo) -> Result<PartPlacement, PlaylistError> {
        let placement = self.plan_part(&part)?;
        if placement.index == 0 {
            self.close_open();
            self.open = Some(Segment {
                msn: self.next_msn,
                duration: Duration::ZERO,
                part_count: 0,
                parts: Vec::new(),
                discontinuity: self.pending_discontinuity,
                dsn: self.dsn + u64::from(self.pending_discontinuity),
                init: self.init_version,
                program_date_time_ms: part.wall_clock_ms,
            });
            self.dsn += u64::from(self.pending_discontinuity);
            self.pending_discontinuity = false;
            self.next_msn += 1;
        }
        if let Some(open) = &mut self.open {
            // Saturating: absurd caller durations must not panic.
            open.duration = open.duration.saturating_add(part.duration);
            open.part_count += 1;
            open.parts.push(PartEntry {
                duration: part.duration,
                independent: part.independent,
            });
        }
        self.max_part = self.max_part.max(part.duration);
        Ok(placement)
    }

    /// The encoder restarted: the segment in progress closes now, and the next
    /// part starts a new segment behind `EXT-X-DISCONTINUITY` (and a new
    /// `EXT-X-MAP`). Set `init_changed` when the new encoder's init segment
    /// differs; it then gets a new name. Calling it twice in a row is the same
    /// as once (except each `init_changed` names a new init).
    pub fn discontinuity(&mut self, init_changed: bool) -> Result<Discontinuity, PlaylistError> {
        if self.ended {
            return Err(PlaylistError::Ended);
        }
        let closed = self.close_open();
        if init_changed {
            self.init_version += 1;
        }
        // Nothing before it, nothing to be discontinuous with.
        if !self.segments.is_empty() {
            self.pending_discontinuity = true;
        }
        Ok(Discontinuity {
            closed,
            init_uri: init_uri(self.init_version),
        })
    }

    /// The broadcast is over: closes the segment in progress and adds
    /// `EXT-X-ENDLIST`. Idempotent.
    pub fn end(&mut self) -> Option<ClosedSegment> {
        self.ended = true;
        self.close_open()
    }

    /// Whether [`Self::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The init segment URI new parts refer to.
    pub fn current_init_uri(&self) -> String {
        init_uri(self.init_version)
    }

    /// `EXT-X-TARGETDURATION`, in whole seconds: the ceiling of the segment
    /// target, or the longest segment (rounded, as the spec measures it) if one
    /// was longer. Never decreases. (The spec wants it constant; it only grows
    /// when a segment outgrows the target, i.e. a keyframe came late, and
    /// staying below the truth would be the worse breach.)
    pub fn target_duration(&self) -> u64 {
        let floor = render::ceil_secs(self.options.segment_target);
        floor.max(self.max_rounded_extinf)
    }

    /// `PART-TARGET` as advertised: the configured one, or the longest part seen if longer.
    pub fn part_target(&self) -> Duration {
        self.options.part_target.max(self.max_part)
    }

    /// `EXT-X-MEDIA-SEQUENCE` of the live playlist.
    pub fn media_sequence(&self) -> u64 {
        self.segments
            .get(self.window_start)
            .or(self.open.as_ref())
            .map_or(self.next_msn, |s| s.msn)
    }

    /// Where the playlist's newest data is, for [`crate::blocking::decide`].
    pub fn live_edge(&self) -> LiveEdge {
        let last_msn = self.segments.last().map(|s| s.msn);
        let (last_part, last_part_open) = match &self.open {
            Some(o) if o.part_count > 0 => (
                Some(PartPosition {
                    msn: o.msn,
                    index: o.part_count - 1,
                }),
                true,
            ),
            _ => (
                self.segments
                    .last()
                    .filter(|s| s.part_count > 0)
                    .map(|s| PartPosition {
                        msn: s.msn,
                        index: s.part_count - 1,
                    }),
                false,
            ),
        };
        LiveEdge {
            last_msn,
            last_part,
            last_part_open,
            part_target: self.part_target(),
            ended: self.ended,
        }
    }

    /// The part the next push is expected to create (named by
    /// `EXT-X-PRELOAD-HINT`). A segment at its target is expected to end at
    /// the next part, as a correctly configured encoder sends its keyframe
    /// there; if the keyframe is late, the hinted `<msn+1>.0.m4s` simply comes
    /// later, which the spec allows for hints.
    pub fn next_part_position(&self) -> PartPosition {
        match &self.open {
            Some(o) => {
                let expected = PartInfo {
                    duration: self.options.part_target,
                    independent: true,
                    wall_clock_ms: None,
                };
                if self.starts_segment(o, &expected) {
                    PartPosition {
                        msn: self.next_msn,
                        index: 0,
                    }
                } else {
                    PartPosition {
                        msn: o.msn,
                        index: o.part_count,
                    }
                }
            }
            None => PartPosition {
                msn: self.next_msn,
                index: 0,
            },
        }
    }

    /// Whether `part` would start a new segment after `open`.
    fn starts_segment(&self, open: &Segment, part: &PartInfo) -> bool {
        // Half a part of slack: encoders round timestamps (29.97 fps, 1 kHz
        // timescales), and a segment of 1.999 s must not wait a whole GOP more.
        let near_target = open.duration.saturating_add(self.options.part_target / 2)
            >= self.options.segment_target;
        let over_max = open.duration.saturating_add(part.duration) > self.options.max_segment
            // Part indices are u32; a segment of 4 billion parts ends there.
            || open.part_count == u32::MAX;
        open.part_count > 0 && ((part.independent && near_target) || over_max)
    }

    fn close_open(&mut self) -> Option<ClosedSegment> {
        let open = self.open.take()?;
        let closed = open.closed();
        self.max_rounded_extinf = self
            .max_rounded_extinf
            .max(render::round_secs(open.duration));
        self.segments.push(open);
        self.slide_window();
        Some(closed)
    }

    /// Drops the oldest segments beyond `window_segments`, but never below
    /// three target durations of playlist (RFC 8216bis 6.2.2).
    fn slide_window(&mut self) {
        let floor = Duration::from_secs(self.target_duration().saturating_mul(3));
        while self.segments.len() - self.window_start > self.options.window_segments {
            let rest = self.segments[self.window_start + 1..]
                .iter()
                .fold(Duration::ZERO, |acc, s| acc.saturating_add(s.duration));
            if rest < floor {
                break;
            }
            let old = &mut self.segments[self.window_start];
            old.parts = Vec::new();
            self.window_start += 1;
        }
    }
}
