use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::test_parser::{parse, ParsedPlaylist};
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn part(duration_ms: u64, independent: bool) -> PartInfo {
    PartInfo {
        duration: ms(duration_ms),
        independent,
        wall_clock_ms: None,
    }
}

fn writer(options: MediaPlaylistOptions) -> MediaPlaylist {
    MediaPlaylist::new(options).expect("valid options")
}

/// Pushes `gops` GOPs of `parts_per_gop` 0.5 s parts, keyframe first.
fn push_gops(pl: &mut MediaPlaylist, gops: usize, parts_per_gop: usize) -> Vec<PartPlacement> {
    let mut out = Vec::new();
    for _ in 0..gops {
        for i in 0..parts_per_gop {
            out.push(pl.push_part(part(500, i == 0)).expect("push"));
        }
    }
    out
}

fn live(pl: &MediaPlaylist) -> ParsedPlaylist {
    let text = pl.render_live();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn golden_live_playlist() {
    let mut pl = writer(MediaPlaylistOptions::default());
    let t0 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
    for i in 0..10u64 {
        let p = PartInfo {
            duration: ms(500),
            independent: i % 4 == 0,
            wall_clock_ms: Some(t0 + i * 500),
        };
        pl.push_part(p).unwrap();
    }
    let expected = "\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,HOLD-BACK=6.0
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z
#EXT-X-PART:DURATION=0.5,URI=\"0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"0.1.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"0.2.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"0.3.m4s\"
#EXTINF:2.0,
0.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:02.000Z
#EXT-X-PART:DURATION=0.5,URI=\"1.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"1.1.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"1.2.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"1.3.m4s\"
#EXTINF:2.0,
1.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:04.000Z
#EXT-X-PART:DURATION=0.5,URI=\"2.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"2.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"2.2.m4s\"
";
    assert_eq!(pl.render_live(), expected);
}

#[test]
fn segments_close_on_the_keyframe_that_reaches_the_target() {
    let mut pl = writer(MediaPlaylistOptions::default());
    let placed = push_gops(&mut pl, 3, 4);
    let uris: Vec<&str> = placed.iter().map(|p| p.uri.as_str()).collect();
    assert_eq!(
        &uris[..6],
        ["0.0.m4s", "0.1.m4s", "0.2.m4s", "0.3.m4s", "1.0.m4s", "1.1.m4s"]
    );
    // Segment 0 is reported closed exactly when part 1.0 arrives.
    let closed: Vec<_> = placed.iter().filter_map(|p| p.closed.clone()).collect();
    assert_eq!(
        closed,
        vec![
            ClosedSegment {
                msn: 0,
                uri: "0.m4s".into(),
                duration: ms(2000),
                parts: 4
            },
            ClosedSegment {
                msn: 1,
                uri: "1.m4s".into(),
                duration: ms(2000),
                parts: 4
            },
        ]
    );
    assert_eq!(placed[4].closed.as_ref().map(|c| c.msn), Some(0));
    // Keyframes every second: still 2 s segments, keyframes inside are just parts.
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 6, 2);
    let p = live(&pl);
    let durations: Vec<f64> = p.complete().filter_map(|s| s.duration).collect();
    assert_eq!(durations, [2.0, 2.0]);
    assert_eq!(p.all_parts().filter(|(_, p)| p.independent).count(), 6);
}

#[test]
fn a_segment_a_hair_short_of_the_target_still_closes() {
    // 29.97 fps in a 1 kHz timescale: parts of 495 ms. 4 × 495 = 1.98 s.
    let mut pl = writer(MediaPlaylistOptions::default());
    for i in 0..12 {
        pl.push_part(part(495, i % 4 == 0)).unwrap();
    }
    let p = live(&pl);
    let durations: Vec<f64> = p.complete().filter_map(|s| s.duration).collect();
    assert_eq!(durations, [1.98, 1.98]);
    assert_eq!(p.target_duration, Some(2));
}

#[test]
fn a_late_keyframe_makes_a_long_segment_and_targetduration_never_shrinks() {
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 1, 4);
    push_gops(&mut pl, 1, 6); // keyframe 1 s late: a 3 s segment
    push_gops(&mut pl, 3, 4);
    let p = live(&pl);
    let durations: Vec<f64> = p.complete().filter_map(|s| s.duration).collect();
    assert_eq!(durations, [2.0, 3.0, 2.0, 2.0]);
    assert_eq!(p.target_duration, Some(3));
    assert_eq!(pl.target_duration(), 3);
    // Long after the 3 s segment left the window, TARGETDURATION stays 3.
    push_gops(&mut pl, 20, 4);
    assert_eq!(live(&pl).target_duration, Some(3));
}

#[test]
fn without_keyframes_segments_are_cut_at_max_segment() {
    let mut pl = writer(MediaPlaylistOptions::default());
    pl.push_part(part(500, true)).unwrap();
    for _ in 0..29 {
        pl.push_part(part(500, false)).unwrap();
    }
    let p = live(&pl);
    let durations: Vec<f64> = p.complete().filter_map(|s| s.duration).collect();
    assert_eq!(durations, [6.0, 6.0]);
    assert_eq!(p.target_duration, Some(6));
    // The forced segments start without a keyframe.
    assert!(!p.segments[1].parts[0].independent);
}

#[test]
fn discontinuity_closes_the_segment_and_marks_the_next() {
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 1, 4);
    pl.push_part(part(500, true)).unwrap();
    pl.push_part(part(500, false)).unwrap();
    let d = pl.discontinuity(false).unwrap();
    assert_eq!(
        d.closed,
        Some(ClosedSegment {
            msn: 1,
            uri: "1.m4s".into(),
            duration: ms(1000),
            parts: 2
        })
    );
    assert_eq!(d.init_uri, "init.mp4");
    // Calling it again changes nothing but the init name if asked.
    let d2 = pl.discontinuity(true).unwrap();
    assert_eq!((d2.closed, d2.init_uri.as_str()), (None, "init-1.mp4"));
    // Before the restarted encoder's first part the hint already names the next segment.
    assert_eq!(live(&pl).preload_hint.unwrap()["URI"], "2.0.m4s");
    // The restarted encoder's first fragment may even lack a keyframe flag; it still starts segment 2.
    assert_eq!(pl.push_part(part(500, true)).unwrap().uri, "2.0.m4s");
    push_gops(&mut pl, 1, 4);
    let text = pl.render_live();
    let p = parse(&text).unwrap();
    let seg2 = &p.segments[2];
    assert!(seg2.discontinuity && seg2.dsn == 1);
    assert_eq!(seg2.map.as_deref(), Some("init-1.mp4"));
    assert_eq!(p.segments[1].map.as_deref(), Some("init.mp4"));
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    // MAP is re-emitted right after the discontinuity.
    assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXT-X-PART:DURATION=0.5,URI=\"2.0.m4s\""));
}

#[test]
fn discontinuity_with_the_same_init_still_repeats_the_map() {
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 2, 4);
    pl.discontinuity(false).unwrap();
    push_gops(&mut pl, 2, 4);
    let text = pl.render_live();
    assert_eq!(text.matches("#EXT-X-MAP:URI=\"init.mp4\"").count(), 2);
}

#[test]
fn discontinuity_before_anything_is_not_a_discontinuity() {
    let mut pl = writer(MediaPlaylistOptions::default());
    let d = pl.discontinuity(true).unwrap();
    assert_eq!((d.closed, d.init_uri.as_str()), (None, "init-1.mp4"));
    push_gops(&mut pl, 2, 4);
    let text = pl.render_live();
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
    assert!(text.contains("#EXT-X-MAP:URI=\"init-1.mp4\""));
}

#[test]
fn the_window_slides_and_the_discontinuity_sequence_follows() {
    let options = MediaPlaylistOptions {
        window_segments: 3,
        ..MediaPlaylistOptions::default()
    };
    let mut pl = writer(options);
    push_gops(&mut pl, 2, 4);
    pl.discontinuity(false).unwrap();
    push_gops(&mut pl, 2, 4);
    let p = live(&pl);
    // Segments 0, 1 | 2, 3 (3 open): window of 3 complete is 0..=2 … plus open 3.
    assert_eq!((p.media_sequence, p.discontinuity_sequence), (0, 0));
    assert_eq!(
        p.segments.iter().map(|s| s.dsn).collect::<Vec<_>>(),
        [0, 0, 1, 1]
    );
    push_gops(&mut pl, 2, 4);
    let p = live(&pl);
    // Segment 2 (the discontinuity) is now first: its tag folds into the sequence.
    assert_eq!((p.media_sequence, p.discontinuity_sequence), (2, 1));
    assert!(!p.segments[0].discontinuity);
    assert_eq!(p.segments[0].map.as_deref(), Some("init.mp4"));
    assert_eq!(p.complete().count(), 3);
    push_gops(&mut pl, 10, 4);
    let p = live(&pl);
    assert_eq!((p.media_sequence, p.discontinuity_sequence), (12, 1));
    assert_eq!(p.complete().count(), 3);
}

#[test]
fn the_window_never_drops_below_three_target_durations() {
    let options = MediaPlaylistOptions {
        window_segments: 1,
        ..MediaPlaylistOptions::default()
    };
    let mut pl = writer(options);
    push_gops(&mut pl, 10, 4);
    let p = live(&pl);
    let total: f64 = p.complete().filter_map(|s| s.duration).sum();
    assert_eq!(p.complete().count(), 3);
    assert!(total >= 3.0 * p.target_duration.unwrap_or(0) as f64);
}

#[test]
fn parts_are_listed_for_the_last_three_target_durations_only() {
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 8, 4);
    pl.push_part(part(500, true)).unwrap();
    let p = live(&pl);
    let with_parts: Vec<u64> = p
        .segments
        .iter()
        .filter(|s| !s.parts.is_empty())
        .map(|s| s.msn)
        .collect();
    // Open segment 8 (0.5 s) + 7, 6, 5 end within 6 s of the edge; 4 ends 6.5 s before it.
    assert_eq!(with_parts, [5, 6, 7, 8]);
    assert_eq!(p.segments.first().map(|s| s.msn), Some(2));
}

#[test]
fn end_adds_endlist_and_drops_the_hint() {
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 2, 4);
    pl.push_part(part(500, true)).unwrap();
    let closed = pl.end();
    assert_eq!(closed.map(|c| (c.msn, c.parts)), Some((2, 1)));
    assert_eq!(pl.end(), None, "end is idempotent");
    let p = live(&pl);
    assert!(p.endlist && p.preload_hint.is_none());
    assert_eq!(p.complete().count(), 3);
    assert_eq!(pl.push_part(part(500, true)), Err(PlaylistError::Ended));
    assert_eq!(pl.discontinuity(false), Err(PlaylistError::Ended));
}

#[test]
fn vod_playlist_has_every_segment_and_no_parts() {
    let options = MediaPlaylistOptions {
        window_segments: 2,
        ..MediaPlaylistOptions::default()
    };
    let mut pl = writer(options);
    assert_eq!(pl.render_vod(), Err(PlaylistError::NotEnded));
    push_gops(&mut pl, 5, 4);
    pl.discontinuity(true).unwrap();
    let t = 1_700_000_000_000;
    pl.push_part(PartInfo {
        duration: ms(500),
        independent: true,
        wall_clock_ms: Some(t),
    })
    .unwrap();
    pl.end();
    let text = pl.render_vod().unwrap();
    let p = parse(&text).unwrap();
    assert_eq!(p.playlist_type.as_deref(), Some("VOD"));
    assert!(p.endlist && p.preload_hint.is_none() && p.server_control.is_empty());
    assert_eq!(p.media_sequence, 0);
    assert_eq!(
        p.segments.iter().map(|s| s.msn).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert!(p.segments.iter().all(|s| s.parts.is_empty()));
    assert_eq!(p.segments[5].map.as_deref(), Some("init-1.mp4"));
    assert!(p.segments[5].discontinuity);
    assert_eq!(
        p.segments[5].program_date_time.as_deref(),
        Some("2023-11-14T22:13:20.000Z")
    );
    assert!(!text.contains("EXT-X-PART"));
}

#[test]
fn preload_hint_names_the_next_part() {
    let mut pl = writer(MediaPlaylistOptions::default());
    assert_eq!(live(&pl).preload_hint.unwrap()["URI"], "0.0.m4s");
    for i in 0..9 {
        let hint = live(&pl).preload_hint.unwrap();
        assert_eq!(hint["TYPE"], "PART");
        let placed = pl.push_part(part(500, i % 4 == 0)).unwrap();
        assert_eq!(hint["URI"], placed.uri, "part {i}");
    }
}

#[test]
fn a_hinted_segment_start_whose_keyframe_is_late_comes_later() {
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 1, 4);
    // At the target the writer expects the keyframe and hints 1.0 …
    assert_eq!(live(&pl).preload_hint.unwrap()["URI"], "1.0.m4s");
    // … it is late: this part continues segment 0, and the hint stays on 1.0,
    // which the keyframe part will be.
    assert_eq!(pl.push_part(part(500, false)).unwrap().uri, "0.4.m4s");
    assert_eq!(live(&pl).preload_hint.unwrap()["URI"], "1.0.m4s");
    assert_eq!(pl.push_part(part(500, true)).unwrap().uri, "1.0.m4s");
}

#[test]
fn classic_playlist_is_the_same_window_without_low_latency_tags() {
    let mut pl = writer(MediaPlaylistOptions {
        window_segments: 3,
        ..MediaPlaylistOptions::default()
    });
    push_gops(&mut pl, 6, 4);
    pl.push_part(part(500, true)).unwrap();
    let text = pl.render_classic();
    let p = parse(&text).unwrap();
    let ll = live(&pl);
    assert_eq!(p.media_sequence, ll.media_sequence);
    assert_eq!(p.target_duration, ll.target_duration);
    let msns = |x: &ParsedPlaylist| x.complete().map(|s| s.msn).collect::<Vec<_>>();
    assert_eq!(msns(&p), msns(&ll));
    assert_eq!(p.segments.len(), 3, "no open segment");
    for tag in ["EXT-X-PART", "EXT-X-SERVER-CONTROL", "EXT-X-PRELOAD-HINT"] {
        assert!(!text.contains(tag), "{tag} in classic playlist");
    }
    pl.end();
    assert!(parse(&pl.render_classic()).unwrap().endlist);
}

#[test]
fn plan_part_previews_push_part_exactly() {
    let mut pl = writer(MediaPlaylistOptions::default());
    for i in 0..20 {
        let p = part(400 + (i % 3) * 100, i % 5 == 0);
        let before = pl.render_live();
        let planned = pl.plan_part(&p).unwrap();
        assert_eq!(pl.render_live(), before, "plan must not change anything");
        assert_eq!(pl.push_part(p).unwrap(), planned);
    }
}

#[test]
fn part_target_grows_to_cover_a_long_part() {
    let mut pl = writer(MediaPlaylistOptions::default());
    push_gops(&mut pl, 1, 4);
    pl.push_part(part(501, true)).unwrap();
    let p = live(&pl);
    assert_eq!(p.part_target, Some(0.501));
    assert_eq!(p.server_control["PART-HOLD-BACK"], "1.503");
    assert!(p.all_parts().all(|(_, x)| x.duration <= 0.501));
}

#[test]
fn bad_input_is_refused_not_panicked_on() {
    let mut pl = writer(MediaPlaylistOptions::default());
    assert_eq!(
        pl.push_part(part(0, true)),
        Err(PlaylistError::ZeroDuration)
    );
    // Absurd durations saturate instead of overflowing.
    pl.push_part(PartInfo {
        duration: Duration::MAX,
        independent: true,
        wall_clock_ms: Some(u64::MAX),
    })
    .unwrap();
    pl.push_part(PartInfo {
        duration: Duration::MAX,
        independent: true,
        wall_clock_ms: None,
    })
    .unwrap();
    let _ = parse(&pl.render_live()).unwrap();
    let bad = [
        MediaPlaylistOptions {
            part_target: Duration::ZERO,
            ..MediaPlaylistOptions::default()
        },
        MediaPlaylistOptions {
            segment_target: ms(100),
            ..MediaPlaylistOptions::default()
        },
        MediaPlaylistOptions {
            max_segment: ms(1000),
            ..MediaPlaylistOptions::default()
        },
        MediaPlaylistOptions {
            window_segments: 0,
            ..MediaPlaylistOptions::default()
        },
    ];
    for o in bad {
        assert!(
            matches!(MediaPlaylist::new(o), Err(PlaylistError::InvalidOptions(_))),
            "{o:?}"
        );
    }
}

#[test]
fn live_edge_tracks_the_newest_part_and_segment() {
    let mut pl = writer(MediaPlaylistOptions::default());
    let e = pl.live_edge();
    assert_eq!((e.last_msn, e.last_part, e.ended), (None, None, false));
    push_gops(&mut pl, 1, 4);
    pl.push_part(part(500, true)).unwrap();
    let e = pl.live_edge();
    assert_eq!(e.last_msn, Some(0));
    assert_eq!(e.last_part, Some(PartPosition { msn: 1, index: 0 }));
    assert!(e.last_part_open);
    pl.discontinuity(false).unwrap();
    let e = pl.live_edge();
    assert_eq!((e.last_msn, e.last_part_open), (Some(1), false));
    assert_eq!(e.part_target, ms(500));
    pl.end();
    assert!(pl.live_edge().ended);
}

#[test]
fn uri_helpers_follow_the_storage_layout() {
    assert_eq!(segment_uri(42), "42.m4s");
    assert_eq!(part_uri(42, 3), "42.3.m4s");
    assert_eq!(init_uri(0), "init.mp4");
    assert_eq!(init_uri(2), "init-2.mp4");
}

// ---------------------------------------------------------------------------
// Property tests: random encoders against a model of what was pushed.

#[derive(Debug, Clone)]
enum Op {
    Part { duration_ms: u64, independent: bool },
    Discontinuity { init_changed: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Mostly exact part-target parts, sometimes odd ones.
        12 => (prop_oneof![3 => Just(500u64), 1 => 50u64..1600], prop::bool::weighted(0.3))
            .prop_map(|(duration_ms, independent)| Op::Part { duration_ms, independent }),
        1 => any::<bool>().prop_map(|init_changed| Op::Discontinuity { init_changed }),
    ]
}

/// What the test saw being pushed, per segment.
#[derive(Debug, Default)]
struct Model {
    /// msn → parts (duration, independent).
    segments: BTreeMap<u64, Vec<(Duration, bool)>>,
    /// msn of segments that follow a discontinuity.
    after_discontinuity: Vec<u64>,
    /// msn → init version.
    init: BTreeMap<u64, u32>,
}

/// Everything that must hold of one rendered live playlist.
fn check_live(
    pl: &MediaPlaylist,
    model: &Model,
    prev: Option<&ParsedPlaylist>,
) -> Result<ParsedPlaylist, TestCaseError> {
    let text = pl.render_live();
    let p = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    let o = pl.options();
    let td = p
        .target_duration
        .ok_or_else(|| TestCaseError::fail("no TARGETDURATION"))?;
    let pt = p
        .part_target
        .ok_or_else(|| TestCaseError::fail("no PART-TARGET"))?;
    prop_assert_eq!(p.version, Some(6));
    prop_assert_eq!(
        p.server_control.get("CAN-BLOCK-RELOAD").map(String::as_str),
        Some("YES")
    );
    let phb: f64 = p.server_control["PART-HOLD-BACK"].parse().unwrap_or(0.0);
    let hb: f64 = p.server_control["HOLD-BACK"].parse().unwrap_or(0.0);
    prop_assert!(phb >= 3.0 * pt - 1e-9 && hb >= 3.0 * td as f64);

    // Segments are consecutive, named by the layout, and match what was pushed.
    for (i, s) in p.segments.iter().enumerate() {
        prop_assert_eq!(s.msn, p.media_sequence + i as u64);
        let pushed = model
            .segments
            .get(&s.msn)
            .ok_or_else(|| TestCaseError::fail("unknown msn"))?;
        if let Some(d) = s.duration {
            prop_assert_eq!(s.uri.clone(), Some(segment_uri(s.msn)));
            let exact: Duration = pushed.iter().map(|x| x.0).sum();
            prop_assert!(
                (d - exact.as_secs_f64()).abs() <= 6e-6,
                "EXTINF {} vs {:?}",
                d,
                exact
            );
            // TARGETDURATION ≥ every EXTINF rounded to the nearest integer.
            prop_assert!((d + 0.5).floor() as u64 <= td, "EXTINF {} > TD {}", d, td);
        } else {
            prop_assert_eq!(i, p.segments.len() - 1, "only the last segment may be open");
        }
        if !s.parts.is_empty() {
            prop_assert_eq!(s.parts.len(), pushed.len());
        }
        for (k, part) in s.parts.iter().enumerate() {
            prop_assert_eq!(&part.uri, &part_uri(s.msn, k as u32));
            prop_assert_eq!(part.independent, pushed[k].1);
            prop_assert!(
                part.duration <= pt,
                "part {} > PART-TARGET {}",
                part.duration,
                pt
            );
        }
        prop_assert_eq!(s.map.clone(), Some(init_uri(model.init[&s.msn])));
        if i > 0 {
            prop_assert_eq!(s.discontinuity, model.after_discontinuity.contains(&s.msn));
        }
    }
    // Parts: listed for a suffix of segments, covering the last 3 target durations.
    let first_with_parts = p
        .segments
        .iter()
        .position(|s| !s.parts.is_empty())
        .unwrap_or(p.segments.len());
    prop_assert!(p.segments[first_with_parts..]
        .iter()
        .all(|s| !s.parts.is_empty()));
    if first_with_parts > 0 {
        let after: f64 = p.segments[first_with_parts..]
            .iter()
            .flat_map(|s| &s.parts)
            .map(|x| x.duration)
            .sum();
        prop_assert!(
            after >= 3.0 * td as f64 - 1e-6,
            "parts cover only {} s",
            after
        );
    }
    // The window: at most `window_segments` complete, unless needed for 3 × TD.
    let complete: Vec<f64> = p.complete().filter_map(|s| s.duration).collect();
    if complete.len() > o.window_segments {
        let without_first: f64 = complete[1..].iter().sum();
        prop_assert!(without_first < 3.0 * td as f64 + 1e-6);
    }
    // The classic playlist lists the same complete segments, nothing else.
    let classic = parse(&pl.render_classic()).map_err(TestCaseError::fail)?;
    let complete_msns = |x: &ParsedPlaylist| x.complete().map(|s| s.msn).collect::<Vec<_>>();
    prop_assert_eq!(complete_msns(&classic), complete_msns(&p));
    prop_assert!(classic
        .segments
        .iter()
        .all(|s| s.parts.is_empty() && s.uri.is_some()));
    prop_assert_eq!(p.endlist, pl.is_ended());
    prop_assert_eq!(p.preload_hint.is_some(), !pl.is_ended());
    if let Some(prev) = prev {
        // Counters only grow; segments keep their numbers.
        prop_assert!(p.media_sequence >= prev.media_sequence);
        prop_assert!(p.discontinuity_sequence >= prev.discontinuity_sequence);
        prop_assert!(td >= prev.target_duration.unwrap_or(0));
        for s in &p.segments {
            if let Some(old) = prev.segments.iter().find(|o| o.msn == s.msn) {
                prop_assert_eq!(
                    old.dsn,
                    s.dsn,
                    "msn {} changed its discontinuity sequence",
                    s.msn
                );
                if old.duration.is_some() {
                    prop_assert_eq!(old.duration, s.duration);
                }
            }
        }
    }
    Ok(p)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_encoders_give_valid_playlists(
        ops in proptest::collection::vec(op(), 1..120),
        window in 1usize..8,
        end in any::<bool>(),
    ) {
        let options = MediaPlaylistOptions { window_segments: window, ..MediaPlaylistOptions::default() };
        let mut pl = MediaPlaylist::new(options).expect("valid");
        let mut model = Model::default();
        let mut prev: Option<ParsedPlaylist> = None;
        let mut last_msn: Option<u64> = None;
        let mut init_version = 0u32;
        let mut pending_disc = false;
        for op in ops {
            match op {
                Op::Part { duration_ms, independent } => {
                    let info = part(duration_ms, independent);
                    let hint = prev.as_ref().and_then(|p| p.preload_hint.as_ref()).map(|h| h["URI"].clone());
                    let open_before = model.segments.get(&last_msn.unwrap_or(u64::MAX)).cloned();
                    let placed = pl.push_part(info).expect("push");
                    // MSNs only grow, by one per new segment; part indices count up.
                    match last_msn {
                        Some(m) if placed.index > 0 => prop_assert_eq!(placed.msn, m),
                        Some(m) => prop_assert_eq!(placed.msn, m + 1),
                        None => prop_assert_eq!((placed.msn, placed.index), (0, 0)),
                    }
                    if let Some(c) = &placed.closed {
                        prop_assert_eq!(Some(c.msn), last_msn);
                    }
                    if placed.index == 0 {
                        if pending_disc { model.after_discontinuity.push(placed.msn); }
                        pending_disc = false;
                        model.init.insert(placed.msn, init_version);
                    }
                    // Why a segment was (not) cut: an independent part once near the
                    // target, or a part that would overflow max_segment.
                    if let (Some(open), Some(m)) = (&open_before, last_msn) {
                        if placed.msn == m {
                            let so_far: Duration = open.iter().map(|x| x.0).sum();
                            prop_assert!(so_far + info.duration <= options.max_segment);
                            prop_assert!(!(independent && so_far + options.part_target / 2 >= options.segment_target));
                        } else if !model.after_discontinuity.contains(&placed.msn) {
                            let so_far: Duration = open.iter().map(|x| x.0).sum();
                            prop_assert!(
                                (independent && so_far + options.part_target / 2 >= options.segment_target)
                                    || so_far + info.duration > options.max_segment
                            );
                        }
                    }
                    // The hint named this part whenever it could know: a part of the
                    // expected duration lands where hinted, except that a predicted
                    // segment boundary moves on when its keyframe does not come.
                    if let Some(h) = hint {
                        if info.duration == options.part_target {
                            let predicted_boundary = last_msn.map_or(0, |m| m + 1);
                            let missed_boundary = !independent && h == part_uri(predicted_boundary, 0);
                            prop_assert!(h == placed.uri || missed_boundary, "hint {} but part went to {}", h, placed.uri);
                        }
                    }
                    model.segments.entry(placed.msn).or_default().push((info.duration, independent));
                    last_msn = Some(placed.msn);
                }
                Op::Discontinuity { init_changed } => {
                    let d = pl.discontinuity(init_changed).expect("not ended");
                    if let Some(c) = &d.closed {
                        prop_assert_eq!(Some(c.msn), last_msn);
                    }
                    if init_changed { init_version += 1; }
                    prop_assert_eq!(d.init_uri, init_uri(init_version));
                    if last_msn.is_some() { pending_disc = true; }
                }
            }
            prev = Some(check_live(&pl, &model, prev.as_ref())?);
        }
        if end {
            pl.end();
            check_live(&pl, &model, prev.as_ref())?;
            let vod = parse(&pl.render_vod().expect("ended")).map_err(TestCaseError::fail)?;
            prop_assert_eq!(vod.segments.len(), model.segments.len());
            for (s, (msn, parts)) in vod.segments.iter().zip(&model.segments) {
                prop_assert_eq!(s.msn, *msn);
                prop_assert!(s.parts.is_empty());
                let exact: Duration = parts.iter().map(|x| x.0).sum();
                prop_assert!((s.duration.unwrap_or(-1.0) - exact.as_secs_f64()).abs() <= 6e-6);
                prop_assert_eq!(s.discontinuity, model.after_discontinuity.contains(msn));
                prop_assert_eq!(s.map.clone(), Some(init_uri(model.init[msn])));
            }
        }
    }

    /// A well-behaved encoder (parts of 0.45–0.5 s, a steady GOP of at most
    /// 2 s) gets segments of at most 1.5 × target; a late keyframe is the only
    /// reason for a longer one, and then the segment holds no keyframe at a
    /// point where it could have been cut.
    #[test]
    fn segments_stay_within_one_and_a_half_targets_unless_a_keyframe_is_late(
        gop in 1usize..=4,
        dur in 450u64..=500,
        lates in proptest::collection::vec(prop::bool::weighted(0.1), 1..40),
    ) {
        let gops: Vec<(usize, u64, bool)> = lates.into_iter().map(|late| (gop, dur, late)).collect();
        let options = MediaPlaylistOptions::default();
        let mut pl = MediaPlaylist::new(options).expect("valid");
        // msn → parts (duration, keyframe, from a late GOP)
        let mut segs: BTreeMap<u64, Vec<(Duration, bool, bool)>> = BTreeMap::new();
        for (parts, dur, late) in gops {
            // A late GOP runs 3 s past the 2 s a keyframe is due.
            let n = if late { parts + 6 } else { parts };
            for i in 0..n {
                let placed = pl.push_part(part(dur, i == 0)).expect("push");
                segs.entry(placed.msn).or_default().push((ms(dur), i == 0, late));
            }
        }
        pl.end();
        let limit = options.segment_target.mul_f64(1.5);
        for (msn, parts) in &segs {
            let total: Duration = parts.iter().map(|x| x.0).sum();
            if total > limit {
                prop_assert!(parts.iter().any(|x| x.2), "msn {} is {:?} without a late keyframe", msn, total);
                let mut acc = Duration::ZERO;
                for (k, (d, key, _)) in parts.iter().enumerate() {
                    if k > 0 && *key {
                        prop_assert!(acc + options.part_target / 2 < options.segment_target, "msn {}", msn);
                    }
                    acc += *d;
                }
            }
        }
    }
}
