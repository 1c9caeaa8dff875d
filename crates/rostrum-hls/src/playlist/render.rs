//! Playlist text. Kept apart from the state machine so the tag order and the
//! number formatting (which the spec's rounding rules depend on) live in one place.

use std::fmt::Write as _;
use std::time::Duration;

use super::date::format_program_date_time;
use super::{init_uri, part_uri, segment_uri, MediaPlaylist, PlaylistError, Segment};

/// `EXT-X-VERSION`. 6 is the least that allows `EXT-X-MAP` without
/// `EXT-X-I-FRAMES-ONLY`; parts, preload hints and blocking reload need no
/// higher version, and the spec says the version SHOULD NOT exceed what the
/// playlist uses (9 is for `EXT-X-SKIP`, which we do not produce).
pub(crate) const VERSION: u32 = 6;

/// Durations are written with 5 decimals (10 µs), enough that thousands of
/// summed segments do not drift perceptibly, as the spec asks of `EXTINF`.
const UNITS_PER_SEC: u128 = 100_000;
const NANOS_PER_UNIT: u128 = 1_000_000_000 / UNITS_PER_SEC;

/// A duration in 10 µs units, rounded half up. Every rule that compares
/// rendered numbers (part ≤ `PART-TARGET`, rounded `EXTINF` ≤
/// `EXT-X-TARGETDURATION`) goes through this one rounding, so they hold for the
/// text a client reads, not just for the exact values.
fn units(d: Duration) -> u128 {
    (d.as_nanos() + NANOS_PER_UNIT / 2) / NANOS_PER_UNIT
}

fn fmt_units(u: u128) -> String {
    let mut s = format!("{}.{:05}", u / UNITS_PER_SEC, u % UNITS_PER_SEC);
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}

/// Decimal seconds: `2.0`, `0.5`, `0.50050`→`0.5005`.
pub(crate) fn fmt_secs(d: Duration) -> String {
    fmt_units(units(d))
}

/// Whole seconds, rounded half up from the rendered value (the spec's
/// "rounded to the nearest integer").
pub(crate) fn round_secs(d: Duration) -> u64 {
    u64::try_from((units(d) + UNITS_PER_SEC / 2) / UNITS_PER_SEC).unwrap_or(u64::MAX)
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    u64::try_from(units(d).div_ceil(UNITS_PER_SEC)).unwrap_or(u64::MAX)
}

/// Which segments the playlist lists, and which of them with parts.
struct Listing<'a> {
    segments: Vec<&'a Segment>,
    /// Index in `segments` from which `EXT-X-PART` tags are written.
    parts_from: usize,
    /// The last entry is the open segment (parts, no `EXTINF`).
    last_is_open: bool,
}

impl MediaPlaylist {
    /// The live LL-HLS playlist (`index.m3u8`): the sliding window of
    /// segments, parts for the last three target durations, a preload hint
    /// for the next part, and `EXT-X-ENDLIST` once ended.
    pub fn render_live(&self) -> String {
        self.render_window(true)
    }

    /// The same window as a classic (non-low-latency) live playlist: complete
    /// segments only, no parts, hints or blocking, for a store or CDN that
    /// cannot hold requests (the design's "classic playlist" in the store).
    pub fn render_classic(&self) -> String {
        self.render_window(false)
    }

    fn render_window(&self, low_latency: bool) -> String {
        let td = self.target_duration();
        let part_target = units(self.part_target());
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{td}");
        if low_latency {
            // PART-HOLD-BACK: the spec's recommended 3 × PART-TARGET (MUST be ≥ 2×);
            // HOLD-BACK: its minimum, 3 × TARGETDURATION.
            let _ = writeln!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},HOLD-BACK={}",
                fmt_units(part_target * 3),
                fmt_units(u128::from(td) * 3 * UNITS_PER_SEC)
            );
            let _ = writeln!(
                out,
                "#EXT-X-PART-INF:PART-TARGET={}",
                fmt_units(part_target)
            );
        }
        let listing = self.live_listing(td, low_latency);
        let first = listing.segments.first();
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence());
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            first.map_or(self.dsn, |s| s.dsn)
        );
        for (i, seg) in listing.segments.iter().enumerate() {
            let prev = i
                .checked_sub(1)
                .and_then(|p| listing.segments.get(p))
                .copied();
            write_segment_tags(&mut out, seg, prev);
            if i >= listing.parts_from {
                for (k, p) in seg.parts.iter().enumerate() {
                    let _ = write!(
                        out,
                        "#EXT-X-PART:DURATION={},URI=\"{}\"",
                        fmt_secs(p.duration),
                        part_uri(seg.msn, k as u32)
                    );
                    let _ = writeln!(
                        out,
                        "{}",
                        if p.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    );
                }
            }
            if !(listing.last_is_open && i + 1 == listing.segments.len()) {
                write_extinf(&mut out, seg);
            }
        }
        if self.ended {
            let _ = writeln!(out, "#EXT-X-ENDLIST");
        } else if low_latency {
            let next = self.next_part_position();
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                part_uri(next.msn, next.index)
            );
        }
        out
    }

    /// The recording's VOD playlist: every segment since the start, no parts.
    /// Only after [`MediaPlaylist::end`], since a VOD playlist must never change.
    pub fn render_vod(&self) -> Result<String, PlaylistError> {
        if !self.ended {
            return Err(PlaylistError::NotEnded);
        }
        let mut out = String::with_capacity(64 * self.segments.len() + 256);
        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration());
        let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:VOD");
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA-SEQUENCE:{}",
            self.segments.first().map_or(0, |s| s.msn)
        );
        let mut prev = None;
        for seg in &self.segments {
            write_segment_tags(&mut out, seg, prev);
            write_extinf(&mut out, seg);
            prev = Some(seg);
        }
        let _ = writeln!(out, "#EXT-X-ENDLIST");
        Ok(out)
    }

    fn live_listing(&self, td: u64, low_latency: bool) -> Listing<'_> {
        let mut segments: Vec<&Segment> = self.segments[self.window_start..].iter().collect();
        let open = self.open.as_ref().filter(|_| low_latency);
        let last_is_open = if let Some(open) = open {
            segments.push(open);
            true
        } else {
            false
        };
        if !low_latency {
            let parts_from = segments.len();
            return Listing {
                segments,
                parts_from,
                last_is_open,
            };
        }
        // RFC 8216bis 6.2.2: parts SHOULD go once more than three target
        // durations from the end; keep whole segments' parts while the segment
        // ends within that distance of the live edge.
        let horizon = Duration::from_secs(td.saturating_mul(3));
        let mut from_end = Duration::ZERO;
        let mut parts_from = segments.len();
        for (i, seg) in segments.iter().enumerate().rev() {
            if from_end >= horizon {
                break;
            }
            parts_from = i;
            from_end = from_end.saturating_add(seg.duration);
        }
        Listing {
            segments,
            parts_from,
            last_is_open,
        }
    }
}

/// Tags that apply to a segment (and to its first part, so they come before
/// its `EXT-X-PART` lines, as the spec requires).
fn write_segment_tags(out: &mut String, seg: &Segment, prev: Option<&Segment>) {
    // The first listed segment's discontinuity is already counted in
    // EXT-X-DISCONTINUITY-SEQUENCE, so its tag goes with it.
    if seg.discontinuity && prev.is_some() {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
    }
    if prev.is_none_or(|p| seg.discontinuity || p.init != seg.init) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_uri(seg.init));
    }
    if let Some(ms) = seg.program_date_time_ms {
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            format_program_date_time(ms)
        );
    }
}

fn write_extinf(out: &mut String, seg: &Segment) {
    let _ = writeln!(out, "#EXTINF:{},", fmt_secs(seg.duration));
    let _ = writeln!(out, "{}", segment_uri(seg.msn));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_with_five_decimals_at_most() {
        assert_eq!(fmt_secs(Duration::from_secs(2)), "2.0");
        assert_eq!(fmt_secs(Duration::from_millis(500)), "0.5");
        assert_eq!(fmt_secs(Duration::from_micros(500_500)), "0.5005");
        assert_eq!(fmt_secs(Duration::from_nanos(33_366_667)), "0.03337");
        assert_eq!(fmt_secs(Duration::from_nanos(4_999)), "0.0");
        assert_eq!(fmt_secs(Duration::from_nanos(5_000)), "0.00001");
        assert_eq!(fmt_secs(Duration::MAX), "18446744073709551616.0");
    }

    #[test]
    fn rounding_follows_the_rendered_text() {
        assert_eq!(round_secs(Duration::from_millis(2499)), 2);
        assert_eq!(round_secs(Duration::from_millis(2500)), 3);
        // 2.499996 s renders as 2.5 and so rounds to 3.
        assert_eq!(round_secs(Duration::from_nanos(2_499_996_000)), 3);
        assert_eq!(ceil_secs(Duration::from_millis(2000)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
        // Below the rendered precision: 2.000001 s is written 2.0.
        assert_eq!(ceil_secs(Duration::from_nanos(2_000_001_000)), 2);
        assert_eq!(round_secs(Duration::MAX), u64::MAX);
    }
}
