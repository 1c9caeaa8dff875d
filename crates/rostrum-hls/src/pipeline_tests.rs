//! The pieces together, as the server will drive them: encoder bytes in
//! arbitrary chunks → [`Fmp4Parser`] → [`PartAssembler`] → [`MediaPlaylist`],
//! with a map standing in for the object store. Checks the design's storage
//! rule: everything a published playlist names is already stored.

use crate::blocking::{decide_query, ReloadDecision};
use crate::fmp4::test_builder::{fragment, init_segment, TrackSpec, TrafSpec};
use crate::fmp4::{Fmp4Event, Fmp4Parser};
use crate::parts::PartAssembler;
use crate::playlist::test_parser::parse;
use crate::playlist::{MediaPlaylist, MediaPlaylistOptions};
use std::collections::HashMap;

/// One rendition's packager: what `rostrum-server` will wrap in a task.
struct Packager {
    parser: Fmp4Parser,
    assembler: PartAssembler,
    playlist: MediaPlaylist,
    store: HashMap<String, Vec<u8>>,
    /// Parts of the open segment, to write `<msn>.m4s` when it closes.
    segment_bytes: Vec<u8>,
    last_init: Option<Vec<u8>>,
    /// The playlist as last published (rendered after the writes).
    published: String,
    clock_ms: u64,
}

impl Packager {
    fn new() -> Self {
        let options = MediaPlaylistOptions::default();
        Self {
            parser: Fmp4Parser::default(),
            assembler: PartAssembler::new(options.part_target),
            playlist: MediaPlaylist::new(options).expect("valid"),
            store: HashMap::new(),
            segment_bytes: Vec::new(),
            last_init: None,
            published: String::new(),
            clock_ms: 1_700_000_000_000,
        }
    }

    fn publish(&mut self) {
        self.published = self.playlist.render_live();
        assert_all_named_objects_exist(&self.published, &self.store);
    }

    fn write_closed(&mut self, closed: Option<crate::playlist::ClosedSegment>) {
        if let Some(c) = closed {
            self.store
                .insert(c.uri, std::mem::take(&mut self.segment_bytes));
        }
    }

    fn publish_part(&mut self, part: crate::parts::AssembledPart) {
        let placement = self.playlist.plan_part(&part.info()).expect("live");
        // Write first: the closed segment (its parts so far), then the part.
        self.write_closed(placement.closed.clone());
        self.store.insert(placement.uri.clone(), part.bytes.clone());
        self.segment_bytes.extend_from_slice(&part.bytes);
        // Then make them nameable and publish.
        assert_eq!(
            self.playlist.push_part(part.info()).expect("live"),
            placement
        );
        self.publish();
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.parser.push(chunk);
        loop {
            match self.parser.poll().expect("valid stream") {
                None => break,
                Some(Fmp4Event::Init(init)) => {
                    if let Some(part) = self.assembler.flush() {
                        self.publish_part(part);
                    }
                    let changed = self.last_init.as_ref().is_some_and(|b| *b != init.bytes);
                    let uri = if self.last_init.is_some() {
                        let d = self.playlist.discontinuity(changed).expect("live");
                        self.write_closed(d.closed);
                        d.init_uri
                    } else {
                        self.playlist.current_init_uri()
                    };
                    self.store.insert(uri, init.bytes.clone());
                    self.last_init = Some(init.bytes);
                    self.publish();
                }
                Some(Fmp4Event::Fragment(f)) => {
                    self.clock_ms += f.duration().as_millis() as u64;
                    for part in self.assembler.push(&f, Some(self.clock_ms)) {
                        self.publish_part(part);
                    }
                }
            }
        }
    }

    fn end(&mut self) {
        if let Some(part) = self.assembler.flush() {
            self.publish_part(part);
        }
        let closed = self.playlist.end();
        self.write_closed(closed);
        self.publish();
    }
}

/// Every `URI="…"` and URI line of a playlist, except the preload hint.
fn named_uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if line.starts_with("#EXT-X-PRELOAD-HINT") {
            continue;
        }
        if let Some(rest) = line.split("URI=\"").nth(1) {
            out.push(rest.split('"').next().unwrap_or_default().to_owned());
        } else if !line.starts_with('#') {
            out.push(line.to_owned());
        }
    }
    out
}

fn assert_all_named_objects_exist(playlist: &str, store: &HashMap<String, Vec<u8>>) {
    for uri in named_uris(playlist) {
        assert!(
            store.contains_key(&uri),
            "{uri} is named before it was written:\n{playlist}"
        );
    }
}

/// An encoder writing one fragment per frame (ffmpeg `frag_every_frame`):
/// 30 fps video at 90 kHz, a keyframe every `gop` frames.
fn frame_fragments(track: u32, frames: usize, gop: usize, first_seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..frames {
        let t = TrafSpec::video(track, i as u64 * 3000, 1, 3000, i % gop == 0);
        out.extend(fragment(first_seq + i as u32, &[t], 50));
    }
    out
}

#[test]
fn frame_fragments_become_parts_and_segments_on_keyframes() {
    let mut pk = Packager::new();
    let mut stream = init_segment(&[TrackSpec::video(1, 90_000)]);
    stream.extend(frame_fragments(1, 300, 60, 1)); // 10 s, keyframe every 2 s
    for chunk in stream.chunks(777) {
        pk.feed(chunk);
    }
    let p = parse(&pk.published).expect("valid playlist");
    let durations: Vec<f64> = p.complete().filter_map(|s| s.duration).collect();
    assert_eq!(durations, [2.0, 2.0, 2.0, 2.0]);
    assert_eq!(p.part_target, Some(0.5));
    for s in p.segments.iter().filter(|s| !s.parts.is_empty()) {
        assert!(
            s.parts[0].independent,
            "segment {} starts on a keyframe",
            s.msn
        );
        // 15 frames per 0.5 s part.
        assert!(s.parts.iter().all(|x| (x.duration - 0.5).abs() < 1e-9));
    }
    // A segment's bytes are its parts' bytes, in order.
    let seg1 = &pk.store["1.m4s"];
    let parts: Vec<u8> = (0..4)
        .flat_map(|k| pk.store[&format!("1.{k}.m4s")].clone())
        .collect();
    assert_eq!(*seg1, parts);
    assert_eq!(
        seg1.len(),
        60 * fragment(1, &[TrafSpec::video(1, 0, 1, 3000, true)], 50).len()
    );
    // A player waiting for the next part is answered once it is published.
    let edge = pk.playlist.live_edge();
    assert_eq!(
        decide_query(&edge, "_HLS_msn=4&_HLS_part=3"),
        ReloadDecision::Ready
    );
    assert_eq!(
        decide_query(&edge, "_HLS_msn=5&_HLS_part=0"),
        ReloadDecision::Wait
    );
}

#[test]
fn an_encoder_restart_is_a_discontinuity_with_a_new_init() {
    let mut pk = Packager::new();
    let mut first = init_segment(&[TrackSpec::video(1, 90_000)]);
    first.extend(frame_fragments(1, 100, 60, 1)); // 3.33 s
    pk.feed(&first);
    // The restarted mixer: different track id, timestamps from zero again.
    let mut second = init_segment(&[TrackSpec::video(2, 90_000)]);
    second.extend(frame_fragments(2, 120, 60, 1));
    pk.feed(&second);
    pk.end();
    let p = parse(&pk.published).expect("valid");
    assert!(p.endlist);
    let disc: Vec<u64> = p
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.msn)
        .collect();
    assert_eq!(disc, [2]);
    assert_eq!(p.segments[2].map.as_deref(), Some("init-1.mp4"));
    assert_ne!(pk.store["init.mp4"], pk.store["init-1.mp4"]);
    // The first encoder's tail (1.33 s) closed as a short segment.
    let durations: Vec<f64> = p.segments.iter().filter_map(|s| s.duration).collect();
    assert_eq!(durations.len(), 4);
    assert!((durations[1] - 4.0 / 3.0).abs() < 1e-4, "{durations:?}");
    let vod = pk.playlist.render_vod().expect("ended");
    assert_all_named_objects_exist(&vod, &pk.store);
    assert_eq!(parse(&vod).expect("valid").segments.len(), 4);
    assert_eq!(pk.playlist.target_duration(), 2);
    assert!(p.segments.iter().all(|s| s.program_date_time.is_some()));
}
