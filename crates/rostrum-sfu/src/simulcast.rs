//! Simulcast forwarding, sans-IO: which layer of a publisher's simulcast a consumer gets, when it may
//! switch (only on a keyframe of the target layer), and how the forwarded stream stays one continuous
//! stream for the receiver across switches (sequence numbers and timestamps rewritten).
//!
//! The router owns one [`LayerSelector`] and one [`Rewriter`] per video consumer of a simulcast
//! producer; everything here is a pure function of its inputs, so the rules are unit-tested without
//! peers. Keyframe detection reads the RTP payload ([`is_keyframe`]) because in RTP mode str0m does not
//! depacketise.

/// A layer index: 0 is the smallest (about 320×180), 2 the largest (about 1280×720).
pub type Layer = u8;

/// What the router knows of one layer of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    pub layer: Layer,
    /// Frame size as the publisher announced or the first keyframe showed.
    pub width: u32,
    pub height: u32,
    /// Measured bitrate (bits per second), 0 if unknown yet.
    pub bitrate: u64,
    /// Packets arrived recently: a layer the publisher turned off is not a choice.
    pub active: bool,
}

/// Why the selector wants what it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send this packet (rewritten) to the consumer.
    Forward,
    /// Not the layer being forwarded (or paused): drop it.
    Drop,
}

/// Picks and switches the layer of one consumer.
#[derive(Debug, Clone)]
pub struct LayerSelector {
    /// Being forwarded now.
    current: Option<Layer>,
    /// Rendered size of the consumer's tile in pixels; `None` = unknown (take the largest).
    viewport: Option<(u32, u32)>,
    /// The consumer's tile is hidden: forward nothing.
    paused: bool,
    /// Bandwidth estimate for this consumer's video (bits per second).
    estimate: Option<u64>,
    /// Layer switches done.
    switches: u64,
    /// Only ever this layer (a consumer that must not switch).
    pinned: Option<Layer>,
}

impl Default for LayerSelector {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerSelector {
    pub fn new() -> Self {
        Self {
            current: None,
            viewport: None,
            paused: false,
            estimate: None,
            switches: 0,
            pinned: None,
        }
    }

    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    pub fn switches(&self) -> u64 {
        self.switches
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The client's tile size (CSS pixels × device pixel ratio).
    pub fn set_viewport(&mut self, width: u32, height: u32) {
        self.viewport = Some((width, height));
    }

    /// Hidden tiles pause their video; shown again, they resume on the next keyframe.
    pub fn set_paused(&mut self, paused: bool) {
        if paused && !self.paused {
            // Resuming must start on a keyframe, like a first subscription.
            self.current = None;
        }
        self.paused = paused;
    }

    pub fn set_estimate(&mut self, bits_per_second: u64) {
        self.estimate = Some(bits_per_second);
    }

    /// Forward only `layer`, whatever the tile or the estimate (nothing while it is inactive).
    pub fn pin(&mut self, layer: Layer) {
        self.pinned = Some(layer);
    }

    /// This consumer's share of its transport's bandwidth estimate, if known.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// The layer the tile wants, bandwidth aside (what the allocator shares the estimate by).
    pub fn wanted(&self, layers: &[LayerInfo]) -> Option<Layer> {
        self.target_within(layers, None)
    }

    /// The layer this consumer should get: the smallest active layer at least as tall as the tile
    /// (the largest if none is), then lowered until its bitrate fits 90 % of the estimate. `None`
    /// when paused or nothing is active.
    pub fn target(&self, layers: &[LayerInfo]) -> Option<Layer> {
        self.target_within(layers, self.estimate)
    }

    /// [`Self::target`] with a given estimate. Going up to a larger layer than the current one
    /// needs more headroom (its bitrate within 75 % of the estimate) than staying (90 %), so an
    /// estimate hovering near a layer's bitrate does not flip the layer (and ask for a keyframe)
    /// every time it moves.
    fn target_within(&self, layers: &[LayerInfo], estimate: Option<u64>) -> Option<Layer> {
        if self.paused {
            return None;
        }
        if let Some(p) = self.pinned {
            return layers.iter().any(|l| l.layer == p && l.active).then_some(p);
        }
        let mut active: Vec<&LayerInfo> = layers.iter().filter(|l| l.active).collect();
        // Smallest first. A layer's index is its place in the publisher's rid list, whose order
        // is the publisher's choice; its frame height (from its keyframes) is what counts.
        active.sort_by_key(|l| (l.height, l.layer));
        let largest = active.last()?;
        let mut pick = match self.viewport {
            Some((_, h)) => active
                .iter()
                .find(|l| l.height >= h)
                .copied()
                .unwrap_or(largest),
            None => largest,
        };
        if let Some(e) = estimate {
            let current = self
                .current
                .and_then(|c| layers.iter().find(|l| l.layer == c))
                .map(|l| (l.height, l.layer));
            loop {
                let up = current.is_some_and(|c| (pick.height, pick.layer) > c);
                let budget = if up { e / 4 * 3 } else { e / 10 * 9 };
                if pick.bitrate <= budget {
                    break;
                }
                let at = active
                    .iter()
                    .position(|l| l.layer == pick.layer)
                    .unwrap_or(0);
                match at.checked_sub(1).and_then(|i| active.get(i)) {
                    Some(lower) => pick = lower,
                    None => break,
                }
            }
        }
        Some(pick.layer)
    }

    /// A packet of `layer` arrived: forward it, or not. Switching (and starting) happens only on a
    /// keyframe of the target layer, so the decoder never sees a predicted frame of another stream.
    /// Returns whether a switch happened with the decision, so the rewriter can re-base.
    pub fn on_packet(
        &mut self,
        layer: Layer,
        keyframe: bool,
        layers: &[LayerInfo],
    ) -> (Decision, bool) {
        let Some(target) = self.target(layers) else {
            return (Decision::Drop, false);
        };
        if layer == target && self.current != Some(target) && keyframe {
            if self.current.is_some() {
                self.switches += 1;
            }
            self.current = Some(target);
            return (Decision::Forward, true);
        }
        // The current layer stopped (publisher turned it off): nothing to forward until the
        // target's keyframe.
        if self.current == Some(layer) && layers.iter().any(|l| l.layer == layer && l.active) {
            return (Decision::Forward, false);
        }
        (Decision::Drop, false)
    }

    /// The layer to ask a keyframe of, if the consumer waits for a switch.
    pub fn wants_keyframe(&self, layers: &[LayerInfo]) -> Option<Layer> {
        let target = self.target(layers)?;
        (self.current != Some(target)).then_some(target)
    }
}

/// Layers at least one consumer needs (bit `i` = layer `i`): the publisher may stop encoding
/// the others (LiveKit's dynacast).
pub fn needed_layers<'a>(
    selectors: impl IntoIterator<Item = &'a LayerSelector>,
    layers: &[LayerInfo],
) -> u8 {
    let all: Vec<LayerInfo> = layers
        .iter()
        .map(|l| LayerInfo { active: true, ..*l })
        .collect();
    selectors
        .into_iter()
        .filter_map(|s| s.target(&all))
        .fold(0u8, |m, l| m | (1 << l.min(7)))
}

/// Rewrites one consumer's sequence numbers and timestamps so that switching layers (three
/// streams, three SSRCs, three sequence and timestamp spaces) looks like one stream.
#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    /// Added (wrapping) to the incoming sequence number / timestamp of the current layer.
    seq_delta: u64,
    ts_delta: u32,
    /// Last written, in the output space.
    last_seq: Option<u64>,
    last_ts: Option<u32>,
    /// Wall-clock microseconds of the last written packet, to advance timestamps over a switch.
    last_at_us: u64,
}

impl Rewriter {
    /// Rewrite one packet. `switched` comes from [`LayerSelector::on_packet`]; `seq` is the
    /// incoming extended sequence number, `ts` its timestamp, `at_us` its arrival time, `clock`
    /// the codec clock rate.
    pub fn rewrite(
        &mut self,
        switched: bool,
        seq: u64,
        ts: u32,
        at_us: u64,
        clock: u32,
    ) -> (u64, u32) {
        if switched || self.last_seq.is_none() {
            let next_seq = self.last_seq.map_or(1, |s| s + 1);
            self.seq_delta = next_seq.wrapping_sub(seq);
            // Advance the output clock by the wall time since the last packet (at least one
            // tick), so the receiver's jitter buffer sees time go on at the right pace.
            let next_ts = match self.last_ts {
                Some(last) => {
                    let elapsed = at_us.saturating_sub(self.last_at_us);
                    let ticks = (elapsed as u128 * clock as u128 / 1_000_000) as u32;
                    last.wrapping_add(ticks.max(1))
                }
                None => ts,
            };
            self.ts_delta = next_ts.wrapping_sub(ts);
        }
        let out_seq = seq.wrapping_add(self.seq_delta);
        let out_ts = ts.wrapping_add(self.ts_delta);
        // Retransmissions and reordering keep their place; only the newest moves the marks.
        if self.last_seq.is_none_or(|l| out_seq > l) {
            self.last_seq = Some(out_seq);
            self.last_ts = Some(out_ts);
            self.last_at_us = at_us;
        }
        (out_seq, out_ts)
    }

    /// Maps an incoming timestamp of the current layer to the output's (for sender reports).
    pub fn map_ts(&self, ts: u32) -> u32 {
        ts.wrapping_add(self.ts_delta)
    }
}

/// One video consumer's forwarding state: the layer it gets and the rewriting that hides the
/// switches. A producer without simulcast is a single layer 0, so pausing a hidden tile and
/// resuming on a keyframe work the same for it.
#[derive(Debug, Clone, Default)]
pub struct VideoOut {
    pub selector: LayerSelector,
    pub rewriter: Rewriter,
}

impl VideoOut {
    /// The output sequence number and timestamp for a packet of `layer`, or `None` to drop it.
    #[allow(clippy::too_many_arguments)]
    pub fn on_packet(
        &mut self,
        layer: Layer,
        keyframe: bool,
        layers: &[LayerInfo],
        seq: u64,
        ts: u32,
        at_us: u64,
        clock: u32,
    ) -> Option<(u64, u32)> {
        match self.selector.on_packet(layer, keyframe, layers) {
            (Decision::Forward, switched) => {
                Some(self.rewriter.rewrite(switched, seq, ts, at_us, clock))
            }
            (Decision::Drop, _) => None,
        }
    }
}

/// A layer with no packet for this long is off (the publisher stopped it, or lost it).
const SILENT_AFTER_US: u64 = 1_000_000;
/// Bitrates are measured over windows this long.
const METER_WINDOW_US: u64 = 1_000_000;

/// What arrives of each layer of one producer: sizes from keyframes, bitrates, activity.
#[derive(Debug, Clone)]
pub struct InboundLayers {
    infos: Vec<LayerInfo>,
    /// Per layer: (window start, bytes in window, last packet), microseconds.
    meters: Vec<(u64, u64, Option<u64>)>,
}

impl InboundLayers {
    /// `count` layers, indexed in the publisher's rid order (1 for a producer without simulcast).
    pub fn new(count: usize) -> Self {
        let count = count.clamp(1, 8);
        Self {
            infos: (0..count)
                .map(|i| LayerInfo {
                    layer: i as Layer,
                    width: 0,
                    height: 0,
                    bitrate: 0,
                    active: false,
                })
                .collect(),
            meters: vec![(0, 0, None); count],
        }
    }

    pub fn infos(&self) -> &[LayerInfo] {
        &self.infos
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }

    /// A packet of `layer` (`bytes` long, at `at_us`); `size` when it started a keyframe whose
    /// frame size could be read.
    pub fn on_packet(&mut self, layer: Layer, at_us: u64, bytes: usize, size: Option<(u32, u32)>) {
        let i = layer as usize;
        let (Some(info), Some(m)) = (self.infos.get_mut(i), self.meters.get_mut(i)) else {
            return;
        };
        info.active = true;
        if let Some((w, h)) = size {
            info.width = w;
            info.height = h;
        }
        if m.2.is_none() {
            m.0 = at_us;
        }
        m.2 = Some(at_us);
        m.1 += bytes as u64;
        let span = at_us.saturating_sub(m.0);
        if span >= METER_WINDOW_US {
            info.bitrate = m.1 * 8 * 1_000_000 / span;
            *m = (at_us, 0, m.2);
        }
    }

    /// Marks layers silent for a while as inactive; returns whether any changed.
    pub fn tick(&mut self, at_us: u64) -> bool {
        let mut changed = false;
        for (info, m) in self.infos.iter_mut().zip(self.meters.iter_mut()) {
            let silent =
                m.2.is_none_or(|t| at_us.saturating_sub(t) > SILENT_AFTER_US);
            if info.active && silent {
                info.active = false;
                info.bitrate = 0;
                *m = (0, 0, None);
                changed = true;
            }
        }
        changed
    }

    /// The smallest layer (by frame height, then index): kept on for every producer so a new
    /// consumer always has something to start from.
    pub fn smallest(&self) -> Layer {
        self.infos
            .iter()
            .min_by_key(|l| (l.height, l.layer))
            .map_or(0, |l| l.layer)
    }
}

/// The codec of a video payload, for keyframe detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

/// Whether this RTP payload starts a keyframe. Malformed payloads are "no".
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe(payload),
        VideoCodec::H264 => h264_keyframe(payload),
    }
}

/// The frame size a keyframe's first packet announces (VP8 only; H.264 would need its SPS
/// parsed: `None`, and such layers are ordered by their place in the rid list).
pub fn keyframe_size(codec: VideoCodec, payload: &[u8]) -> Option<(u32, u32)> {
    if codec != VideoCodec::Vp8 {
        return None;
    }
    let i = vp8_header_at(payload)?;
    // RFC 6386 9.1: 3-byte frame tag (P bit 0), start code 9d 01 2a, then 14-bit width and
    // height, little-endian, with 2 bits of scaling each.
    let h = payload.get(i..i + 10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([h[6], h[7]]) & 0x3fff);
    let ht = u32::from(u16::from_le_bytes([h[8], h[9]]) & 0x3fff);
    (w > 0 && ht > 0).then_some((w, ht))
}

/// RFC 7741: the payload descriptor, then (at the start of partition 0) the VP8 payload header,
/// whose P bit is 0 on a key frame.
fn vp8_keyframe(p: &[u8]) -> bool {
    vp8_header_at(p)
        .and_then(|i| p.get(i))
        .is_some_and(|h| h & 0x01 == 0)
}

/// Where the VP8 payload header starts, if this packet starts partition 0.
fn vp8_header_at(p: &[u8]) -> Option<usize> {
    let &b0 = p.first()?;
    let (x, s, pid) = (b0 & 0x80 != 0, b0 & 0x10 != 0, b0 & 0x07);
    if !s || pid != 0 {
        return None;
    }
    let mut i = 1;
    if x {
        let &ext = p.get(i)?;
        i += 1;
        if ext & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let &m = p.get(i)?;
            i += if m & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    (i < p.len()).then_some(i)
}

/// RFC 6184: an IDR slice (5) or SPS (7) alone, in a STAP-A (24), or starting an FU-A (28).
fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else {
        return false;
    };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let len = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if matches!(p[i + 2] & 0x1f, 5 | 7) {
                    return true;
                }
                i += 2 + len;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, 5 | 7)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layers() -> Vec<LayerInfo> {
        [
            (0, 320, 180, 150_000),
            (1, 640, 360, 500_000),
            (2, 1280, 720, 1_500_000),
        ]
        .into_iter()
        .map(|(layer, width, height, bitrate)| LayerInfo {
            layer,
            width,
            height,
            bitrate,
            active: true,
        })
        .collect()
    }

    #[test]
    fn the_tile_size_picks_the_smallest_layer_that_fills_it() {
        let mut s = LayerSelector::new();
        assert_eq!(s.target(&layers()), Some(2), "unknown size: the largest");
        s.set_viewport(320, 180);
        assert_eq!(s.target(&layers()), Some(0));
        s.set_viewport(426, 240);
        assert_eq!(s.target(&layers()), Some(1));
        s.set_viewport(1920, 1080);
        assert_eq!(
            s.target(&layers()),
            Some(2),
            "nothing is big enough: the largest"
        );
        let mut off = layers();
        off[2].active = false;
        assert_eq!(
            s.target(&off),
            Some(1),
            "a layer the publisher stopped is no choice"
        );
        s.set_paused(true);
        assert_eq!(s.target(&layers()), None);
    }

    #[test]
    fn the_estimate_caps_the_layer() {
        let mut s = LayerSelector::new();
        s.set_viewport(1280, 720);
        s.set_estimate(1_000_000);
        assert_eq!(
            s.target(&layers()),
            Some(1),
            "1.5 Mbit/s does not fit 0.9 of 1 Mbit/s"
        );
        s.set_estimate(100_000);
        assert_eq!(
            s.target(&layers()),
            Some(0),
            "the smallest even if it does not fit"
        );
    }

    #[test]
    fn a_pinned_consumer_never_switches() {
        let mut l = layers();
        let mut s = LayerSelector::new();
        s.pin(2);
        s.set_viewport(320, 180);
        s.set_estimate(100_000);
        assert_eq!(
            s.target(&l),
            Some(2),
            "neither tile size nor estimate move it"
        );
        assert_eq!(s.on_packet(0, true, &l), (Decision::Drop, false));
        assert_eq!(s.on_packet(2, true, &l), (Decision::Forward, true));
        l[2].active = false;
        assert_eq!(
            s.target(&l),
            None,
            "its layer stopped: nothing, not another"
        );
        assert_eq!(needed_layers([&s], &layers()), 0b100);
    }

    #[test]
    fn going_up_needs_more_headroom_than_staying() {
        let l = layers();
        let mut s = LayerSelector::new();
        s.set_viewport(1280, 720);
        s.set_estimate(1_000_000);
        // Forwarding layer 1 (500 kbit/s).
        assert_eq!(s.on_packet(1, true, &l), (Decision::Forward, true));
        // 1.8 Mbit/s: 1.5 fits 90 % but not 75 %: stay.
        s.set_estimate(1_800_000);
        assert_eq!(s.target(&l), Some(1));
        // 2.1 Mbit/s: 75 % is 1.575: go up.
        s.set_estimate(2_100_000);
        assert_eq!(s.target(&l), Some(2));
        assert_eq!(s.on_packet(2, true, &l), (Decision::Forward, true));
        // Once there, 1.8 Mbit/s keeps it (90 % = 1.62).
        s.set_estimate(1_800_000);
        assert_eq!(s.target(&l), Some(2));
        assert_eq!(s.wanted(&l), Some(2));
        s.set_estimate(1_000_000);
        assert_eq!(s.target(&l), Some(1));
        assert_eq!(
            s.wanted(&l),
            Some(2),
            "what the tile wants, bandwidth aside"
        );
    }

    #[test]
    fn switches_happen_only_on_a_keyframe_of_the_target() {
        let l = layers();
        let mut s = LayerSelector::new();
        s.set_viewport(1280, 720);
        // Nothing forwarded until the target's keyframe.
        assert_eq!(s.on_packet(2, false, &l), (Decision::Drop, false));
        assert_eq!(s.wants_keyframe(&l), Some(2));
        assert_eq!(s.on_packet(0, true, &l), (Decision::Drop, false));
        assert_eq!(s.on_packet(2, true, &l), (Decision::Forward, true));
        assert_eq!(s.on_packet(2, false, &l), (Decision::Forward, false));
        assert_eq!(s.wants_keyframe(&l), None);
        // The tile shrinks: keep the old layer until the new one's keyframe.
        s.set_viewport(320, 180);
        assert_eq!(s.wants_keyframe(&l), Some(0));
        assert_eq!(s.on_packet(2, false, &l), (Decision::Forward, false));
        assert_eq!(s.on_packet(0, false, &l), (Decision::Drop, false));
        assert_eq!(s.on_packet(0, true, &l), (Decision::Forward, true));
        assert_eq!(s.on_packet(2, false, &l), (Decision::Drop, false));
        assert_eq!(s.switches(), 1);
        // Hidden: nothing; shown again: wait for a keyframe.
        s.set_paused(true);
        assert_eq!(s.on_packet(0, true, &l), (Decision::Drop, false));
        s.set_paused(false);
        assert_eq!(s.on_packet(0, false, &l), (Decision::Drop, false));
        assert_eq!(s.on_packet(0, true, &l), (Decision::Forward, true));
    }

    #[test]
    fn dynacast_needs_only_what_consumers_target() {
        let mut a = LayerSelector::new();
        a.set_viewport(320, 180);
        let mut b = LayerSelector::new();
        b.set_viewport(320, 180);
        assert_eq!(needed_layers([&a, &b], &layers()), 0b001);
        b.set_viewport(1280, 720);
        assert_eq!(needed_layers([&a, &b], &layers()), 0b101);
        // Even a layer the publisher has turned off counts as needed: that is how it comes back.
        let mut off = layers();
        off[2].active = false;
        assert_eq!(needed_layers([&a, &b], &off), 0b101);
        a.set_paused(true);
        b.set_paused(true);
        assert_eq!(needed_layers([&a, &b], &layers()), 0);
    }

    #[test]
    fn the_receiver_sees_one_continuous_stream_across_switches() {
        let mut r = Rewriter::default();
        // Layer 2: seq 1000.., ts 90_000.., 30 fps (3000 ticks), 33 ms apart.
        let mut out = Vec::new();
        for i in 0..10u64 {
            out.push(r.rewrite(
                i == 0,
                1000 + i,
                90_000 + 3000 * i as u32,
                33_333 * i,
                90_000,
            ));
        }
        // Switch to layer 0: unrelated seq and ts spaces.
        for i in 0..10u64 {
            let at = 33_333 * (10 + i);
            out.push(r.rewrite(i == 0, 77 + i, 5_000_000 + 3000 * i as u32, at, 90_000));
        }
        for w in out.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "sequence numbers continue: {w:?}");
            let dt = w[1].1.wrapping_sub(w[0].1);
            assert!(
                (2900..=3100).contains(&dt),
                "timestamps advance ~one frame: {w:?}"
            );
        }
        // A retransmission of an older packet keeps its place and does not move the marks.
        let (seq, _) = r.rewrite(false, 80, 5_000_000 + 9000, 0, 90_000);
        assert_eq!(seq, out[13].0);
        assert_eq!(
            r.rewrite(false, 87, 5_000_000 + 30_000, 33_333 * 20, 90_000)
                .0,
            out[19].0 + 1
        );
    }

    #[test]
    fn keyframes_are_recognised() {
        // VP8: S=1 PID=0, no extension, payload header P=0 → key; P=1 → delta.
        assert!(is_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x9d, 0x01]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10, 0x01]));
        assert!(
            !is_keyframe(VideoCodec::Vp8, &[0x00, 0x00]),
            "not the start of a partition"
        );
        // With X, I (15-bit picture id), L, T/K.
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xf0, 0x81, 0x23, 0x05, 0x40, 0x00]
        ));
        assert!(
            !is_keyframe(VideoCodec::Vp8, &[0x90, 0xf0, 0x81]),
            "truncated"
        );
        // H.264: IDR, SPS, STAP-A with SPS, FU-A start of IDR, and a non-IDR slice.
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(is_keyframe(
            VideoCodec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]
        ));
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(
            !is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]),
            "FU-A middle"
        );
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        assert!(!is_keyframe(VideoCodec::H264, &[]));
    }

    #[test]
    fn a_vp8_keyframe_tells_its_frame_size() {
        // Descriptor (S=1), frame tag (key), start code, 640 × 360 with scaling bits set.
        let p = [
            0x10, 0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0x68, 0x41,
        ];
        assert_eq!(keyframe_size(VideoCodec::Vp8, &p), Some((640, 360)));
        let mut delta = p;
        delta[1] |= 0x01;
        assert_eq!(keyframe_size(VideoCodec::Vp8, &delta), None);
        assert_eq!(keyframe_size(VideoCodec::Vp8, &p[..8]), None, "truncated");
        assert_eq!(keyframe_size(VideoCodec::H264, &[0x65, 0x88]), None);
    }

    #[test]
    fn inbound_layers_measure_size_bitrate_and_silence() {
        let mut l = InboundLayers::new(3);
        assert!(l.infos().iter().all(|i| !i.active));
        // Layer 2 arrives first, 1250 bytes every 10 ms = 1 Mbit/s; it is the 1280×720 one.
        for k in 0..=100u64 {
            let size = (k == 0).then_some((1280, 720));
            l.on_packet(2, k * 10_000, 1250, size);
        }
        l.on_packet(0, 5_000, 100, Some((320, 180)));
        let i = l.infos();
        assert!(i[2].active && i[0].active && !i[1].active);
        assert_eq!((i[2].width, i[2].height), (1280, 720));
        assert!(
            (990_000..=1_010_000).contains(&i[2].bitrate),
            "{}",
            i[2].bitrate
        );
        assert_eq!(l.smallest(), 1, "an unknown size sorts first");
        // 1.5 s later only layer 2 is still sending.
        l.on_packet(1, 1_000_000, 100, Some((640, 360)));
        l.on_packet(2, 1_500_000, 1250, None);
        assert!(l.tick(1_600_000));
        let i = l.infos();
        assert!(!i[0].active && i[1].active && i[2].active);
        assert_eq!(l.smallest(), 0);
        assert!(!l.tick(1_600_000), "no change twice");
    }

    #[test]
    fn layers_are_ordered_by_size_not_by_index() {
        // A publisher listing its rids large first (index 0 = 720p).
        let mut l = layers();
        l[0].height = 720;
        l[2].height = 180;
        let mut s = LayerSelector::new();
        s.set_viewport(320, 180);
        assert_eq!(s.target(&l), Some(2));
        s.set_viewport(1280, 720);
        s.set_estimate(1_000_000);
        l[0].bitrate = 1_500_000;
        l[2].bitrate = 150_000;
        assert_eq!(s.target(&l), Some(1), "one step down in size, not in index");
    }

    #[test]
    fn a_video_out_forwards_from_a_keyframe_and_stays_continuous() {
        let l = layers();
        let mut v = VideoOut::default();
        assert_eq!(v.on_packet(2, false, &l, 500, 9000, 0, 90_000), None);
        let first = v.on_packet(2, true, &l, 501, 12_000, 33_000, 90_000);
        assert_eq!(first, Some((1, 12_000)));
        assert_eq!(
            v.on_packet(2, false, &l, 502, 15_000, 66_000, 90_000),
            Some((2, 15_000))
        );
        assert_eq!(v.rewriter.map_ts(15_000), 15_000);
    }

    proptest! {
        #[test]
        fn any_payload_is_judged_without_panicking(p in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = is_keyframe(VideoCodec::Vp8, &p);
            let _ = is_keyframe(VideoCodec::H264, &p);
            let _ = keyframe_size(VideoCodec::Vp8, &p);
        }

        #[test]
        fn output_sequence_numbers_never_repeat_or_go_back_for_new_packets(
            switches in proptest::collection::vec((any::<bool>(), 1u64..50, any::<u32>()), 1..20)
        ) {
            let mut r = Rewriter::default();
            let mut last: Option<u64> = None;
            let mut at = 0u64;
            // Without a switch the same layer goes on where it was; a switch jumps to another
            // layer's unrelated sequence space.
            let mut next_in = 65_000u64;
            for (i, (switch, run, ts0)) in switches.into_iter().enumerate() {
                if switch {
                    next_in = (i as u64) * 1_000_000 + 65_000;
                }
                for k in 0..run {
                    at += 20_000;
                    let (seq, _) = r.rewrite(switch && k == 0, next_in, ts0.wrapping_add(k as u32 * 1800), at, 90_000);
                    next_in += 1;
                    if let Some(l) = last {
                        prop_assert_eq!(seq, l + 1);
                    }
                    last = Some(seq);
                }
            }
        }
    }
}
