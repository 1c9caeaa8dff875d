//! Groups encoder fragments into LL-HLS parts.
//!
//! Why: how often an encoder cuts fragments is its own setting. ffmpeg's
//! `frag_every_frame` cuts one per frame (33 ms), GStreamer's
//! `fragment-duration` whatever it is given. Publishing every 33 ms fragment
//! as a part would mean 30 playlist updates and requests per second per
//! viewer; parts near the part target (0.5 s) are what LL-HLS players expect.
//! With an encoder that already fragments at the part target this passes
//! fragments through one for one.
//!
//! Rules: a keyframe fragment always starts a new part (so segments can start
//! there and `INDEPENDENT=YES` means "starts with a keyframe"); a part is
//! closed as soon as one more fragment of the same length would take it past
//! the part target (no waiting for the next fragment to find out); a single
//! fragment longer than the target becomes a part on its own.
//!
//! Known gap: a keyframe in the middle of a segment (GOP shorter than the
//! segment) leaves a short part before it, below the spec's 85 %-of-target
//! floor for non-final parts. An encoder whose GOP equals the segment target
//! (the compositor's setting) never produces one.

use std::time::Duration;

use crate::fmp4::Fragment;
use crate::playlist::PartInfo;

/// A part made of one or more consecutive fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledPart {
    /// The fragments' bytes, concatenated (store as `<msn>.<part>.m4s`).
    pub bytes: Vec<u8>,
    /// Sum of the fragments' durations.
    pub duration: Duration,
    /// Whether the first fragment starts with a keyframe.
    pub independent: bool,
    /// Wall-clock time of the first fragment, ms since the Unix epoch.
    pub wall_clock_ms: Option<u64>,
    /// How many fragments it holds.
    pub fragments: usize,
}

impl AssembledPart {
    /// What [`crate::playlist::MediaPlaylist::push_part`] needs to know.
    pub fn info(&self) -> PartInfo {
        PartInfo {
            duration: self.duration,
            independent: self.independent,
            wall_clock_ms: self.wall_clock_ms,
        }
    }
}

/// The fragment-to-part grouper. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct PartAssembler {
    part_target: Duration,
    pending: Option<AssembledPart>,
}

impl PartAssembler {
    /// Groups towards `part_target` (the playlist's configured part target).
    pub fn new(part_target: Duration) -> Self {
        Self {
            part_target,
            pending: None,
        }
    }

    /// Adds a fragment; returns the parts it completed, oldest first (at most
    /// two: the one a keyframe or overflow closed, and the one this fragment filled).
    ///
    /// Zero-length fragments (the caller's way to say "not on the timeline",
    /// e.g. ffmpeg's audio-only fragments between video frames with
    /// `frag_every_frame`) ride along in the current part. If a part so far
    /// holds only such fragments, a keyframe joins it instead of closing it,
    /// and the part counts as independent: it starts with the keyframe's
    /// companions (audio), then the keyframe.
    pub fn push(&mut self, fragment: &Fragment, wall_clock_ms: Option<u64>) -> Vec<AssembledPart> {
        let duration = fragment.duration();
        let mut done = Vec::new();
        if let Some(p) = &self.pending {
            // A part of only zero-length fragments has nothing to separate
            // from: a keyframe joins it (see `push`'s docs).
            let keyframe_splits = fragment.independent && !p.duration.is_zero();
            if keyframe_splits || p.duration.saturating_add(duration) > self.part_target {
                done.extend(self.pending.take());
            }
        }
        let part = self.pending.get_or_insert_with(|| AssembledPart {
            bytes: Vec::with_capacity(fragment.bytes.len()),
            duration: Duration::ZERO,
            independent: fragment.independent,
            wall_clock_ms,
            fragments: 0,
        });
        if part.duration.is_zero() {
            part.independent |= fragment.independent;
            part.wall_clock_ms = part.wall_clock_ms.or(wall_clock_ms);
        }
        part.bytes.extend_from_slice(&fragment.bytes);
        part.duration = part.duration.saturating_add(duration);
        part.fragments += 1;
        // One more fragment like this one would overflow: the part is done now.
        if part.duration.saturating_add(duration) > self.part_target {
            done.extend(self.pending.take());
        }
        done
    }

    /// Returns the part in progress, if any: call before a discontinuity or
    /// at the end of the stream.
    pub fn flush(&mut self) -> Option<AssembledPart> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::{TrackFragment, TrackId, TrackKind};

    fn frag(ms: u64, key: bool, tag: u8) -> Fragment {
        Fragment {
            bytes: vec![tag],
            sequence_number: u32::from(tag),
            tracks: vec![TrackFragment {
                track_id: TrackId(1),
                kind: TrackKind::Video,
                timescale: 1000,
                base_media_decode_time: Some(0),
                duration_ticks: ms,
                sample_count: 1,
                starts_with_sync: key,
            }],
            independent: key,
        }
    }

    #[test]
    fn frame_fragments_are_grouped_up_to_the_part_target() {
        let mut a = PartAssembler::new(Duration::from_millis(500));
        let mut parts = Vec::new();
        // 2 s of 40 ms frames (25 fps), keyframe every 1 s.
        for i in 0..50u8 {
            parts.extend(a.push(&frag(40, i % 25 == 0, i), Some(1000 + u64::from(i) * 40)));
        }
        parts.extend(a.flush());
        let shape: Vec<(u128, bool, usize)> = parts
            .iter()
            .map(|p| (p.duration.as_millis(), p.independent, p.fragments))
            .collect();
        // 12 × 40 = 480 ms (a 13th would pass 500); the keyframe at frame 25 starts a part.
        assert_eq!(
            shape,
            [
                (480, true, 12),
                (480, false, 12),
                (40, false, 1),
                (480, true, 12),
                (480, false, 12),
                (40, false, 1)
            ]
        );
        assert_eq!(parts[3].wall_clock_ms, Some(1000 + 25 * 40));
        assert_eq!(parts[0].bytes, (0..12).collect::<Vec<u8>>());
        assert!(parts
            .iter()
            .all(|p| p.duration <= Duration::from_millis(500)));
    }

    #[test]
    fn fragments_at_the_part_target_pass_through_one_for_one() {
        let mut a = PartAssembler::new(Duration::from_millis(500));
        for i in 0..8u8 {
            let out = a.push(&frag(500, i % 4 == 0, i), None);
            assert_eq!(out.len(), 1, "fragment {i} must be a part at once");
            assert_eq!((out[0].fragments, out[0].independent), (1, i % 4 == 0));
        }
        assert_eq!(a.flush(), None);
    }

    fn untimed(tag: u8) -> Fragment {
        let mut f = frag(0, false, tag);
        f.tracks[0].kind = TrackKind::Audio;
        f
    }

    #[test]
    fn zero_length_fragments_ride_along_and_a_keyframe_joins_them() {
        let mut a = PartAssembler::new(Duration::from_millis(100));
        // audio, KEY, audio, video, audio, video, video(closes), audio, KEY
        assert!(a.push(&untimed(0), None).is_empty());
        assert!(a.push(&frag(40, true, 1), Some(7)).is_empty());
        assert!(a.push(&untimed(2), None).is_empty());
        let first = a.push(&frag(40, false, 3), None);
        assert_eq!(first.len(), 1, "40+40, one more would pass 100");
        assert_eq!(
            (
                first[0].independent,
                first[0].duration.as_millis(),
                first[0].fragments
            ),
            (true, 80, 4)
        );
        assert_eq!(first[0].wall_clock_ms, Some(7));
        assert_eq!(first[0].bytes, [0, 1, 2, 3]);
        assert!(a.push(&untimed(4), None).is_empty());
        assert!(a.push(&frag(40, false, 5), None).is_empty());
        let out = a.push(&frag(40, true, 6), None);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].independent, out[0].bytes.clone()),
            (false, vec![4, 5])
        );
        assert_eq!(a.flush().map(|p| p.independent), Some(true));
    }

    #[test]
    fn an_overlong_fragment_is_a_part_of_its_own() {
        let mut a = PartAssembler::new(Duration::from_millis(500));
        assert!(a.push(&frag(100, true, 0), None).is_empty());
        let out = a.push(&frag(900, false, 1), None);
        let shape: Vec<_> = out
            .iter()
            .map(|p| (p.duration.as_millis(), p.fragments))
            .collect();
        assert_eq!(shape, [(100, 1), (900, 1)]);
    }
}
