use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::playlist::{MediaPlaylist, MediaPlaylistOptions, PartInfo, PartPosition};

fn req(msn: u64, part: Option<u64>) -> ReloadRequest {
    ReloadRequest { msn, part }
}

fn push(pl: &mut MediaPlaylist, independent: bool) {
    pl.push_part(PartInfo {
        duration: Duration::from_millis(500),
        independent,
        wall_clock_ms: None,
    })
    .expect("push");
}

/// Segments 0..=10 complete (4 parts each), segment 11 open with parts 0 and 1.
fn playlist() -> MediaPlaylist {
    let mut pl = MediaPlaylist::new(MediaPlaylistOptions::default()).expect("valid");
    for i in 0..(11 * 4 + 2) {
        push(&mut pl, i % 4 == 0);
    }
    pl
}

#[test]
fn query_parsing() {
    assert_eq!(parse_reload_query(""), Ok(None));
    assert_eq!(parse_reload_query("token=abc"), Ok(None));
    assert_eq!(parse_reload_query("_HLS_msn=12"), Ok(Some(req(12, None))));
    assert_eq!(
        parse_reload_query("?t=x&_HLS_msn=12&_HLS_part=3&_HLS_skip=YES"),
        Ok(Some(req(12, Some(3))))
    );
    assert_eq!(
        parse_reload_query("_HLS_part=3&_HLS_msn=0012"),
        Ok(Some(req(12, Some(3))))
    );
    assert_eq!(
        parse_reload_query("_HLS_part=3"),
        Err(ReloadQueryError::PartWithoutMsn)
    );
    for bad in [
        "_HLS_msn=",
        "_HLS_msn",
        "_HLS_msn=-1",
        "_HLS_msn=+1",
        "_HLS_msn=1.0",
        "_HLS_msn=0x1",
        "_HLS_msn= 1",
    ] {
        assert!(
            matches!(
                parse_reload_query(bad),
                Err(ReloadQueryError::Malformed {
                    name: "_HLS_msn",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        parse_reload_query("_HLS_msn=18446744073709551616"),
        Err(ReloadQueryError::Malformed { .. })
    ));
    assert_eq!(
        parse_reload_query("_HLS_msn=18446744073709551615"),
        Ok(Some(req(u64::MAX, None)))
    );
    assert!(matches!(
        parse_reload_query("_HLS_msn=1&_HLS_part=x"),
        Err(ReloadQueryError::Malformed {
            name: "_HLS_part",
            ..
        })
    ));
    assert_eq!(
        parse_reload_query("_HLS_msn=1&_HLS_msn=2"),
        Err(ReloadQueryError::Repeated { name: "_HLS_msn" })
    );
    // Error values are shortened so a hostile query cannot bloat logs.
    let long = format!("_HLS_msn={}", "9".repeat(1000));
    let Err(ReloadQueryError::Malformed { value, .. }) = parse_reload_query(&long) else {
        panic!("must fail")
    };
    assert_eq!(value.len(), 32);
    assert_eq!(parse_reload_params(Some("5"), None), Ok(Some(req(5, None))));
    assert_eq!(
        parse_reload_params(None, Some("5")),
        Err(ReloadQueryError::PartWithoutMsn)
    );
}

#[test]
fn waits_for_what_is_coming() {
    let pl = playlist();
    let e = pl.live_edge();
    assert_eq!(e.last_msn, Some(10));
    assert_eq!(e.last_part, Some(PartPosition { msn: 11, index: 1 }));
    // Complete segments and existing parts: now.
    assert_eq!(decide(&e, &req(10, None)), ReloadDecision::Ready);
    assert_eq!(decide(&e, &req(3, None)), ReloadDecision::Ready);
    assert_eq!(decide(&e, &req(11, Some(1))), ReloadDecision::Ready);
    assert_eq!(decide(&e, &req(10, Some(3))), ReloadDecision::Ready);
    // Part 7 of complete segment 10 means part 0 of 11, which exists.
    assert_eq!(decide(&e, &req(10, Some(7))), ReloadDecision::Ready);
    // Not yet.
    assert_eq!(
        decide(&e, &req(11, None)),
        ReloadDecision::Wait,
        "segment 11 is still open"
    );
    assert_eq!(decide(&e, &req(11, Some(2))), ReloadDecision::Wait);
    assert_eq!(decide(&e, &req(12, Some(0))), ReloadDecision::Wait);
    assert_eq!(decide(&e, &req(12, None)), ReloadDecision::Wait);
}

#[test]
fn refuses_what_is_too_far_ahead() {
    let e = playlist().live_edge();
    // Last complete segment is 10: 12 is fine, 13 is not.
    assert_eq!(decide(&e, &req(12, None)), ReloadDecision::Wait);
    assert_eq!(
        decide(&e, &req(13, None)),
        ReloadDecision::BadRequest(BadReload::MsnTooFarAhead {
            msn: 13,
            last: Some(10)
        })
    );
    // Advance Part Limit at a 0.5 s part target: 3 / 0.5 = 6 parts past the last (11.1).
    assert_eq!(decide(&e, &req(11, Some(7))), ReloadDecision::Wait);
    assert!(matches!(
        decide(&e, &req(11, Some(8))),
        ReloadDecision::BadRequest(BadReload::PartTooFarAhead { ahead: 7, .. })
    ));
    assert_eq!(decide(&e, &req(12, Some(5))), ReloadDecision::Wait);
    assert!(matches!(
        decide(&e, &req(12, Some(6))),
        ReloadDecision::BadRequest(_)
    ));
    assert!(matches!(
        decide(&e, &req(12, Some(u64::MAX))),
        ReloadDecision::BadRequest(_)
    ));
}

#[test]
fn advance_part_limit_is_three_parts_from_one_second_up() {
    assert!(!exceeds_advance_part_limit(3, Duration::from_secs(1)));
    assert!(exceeds_advance_part_limit(4, Duration::from_secs(2)));
    // 3 / 0.4 = 7.5: 7 is within, 8 is over.
    assert!(!exceeds_advance_part_limit(7, Duration::from_millis(400)));
    assert!(exceeds_advance_part_limit(8, Duration::from_millis(400)));
    assert!(!exceeds_advance_part_limit(u64::MAX, Duration::from_nanos(0)) || u64::MAX > 3);
}

#[test]
fn an_empty_playlist_accepts_the_first_segments_only() {
    let pl = MediaPlaylist::new(MediaPlaylistOptions::default()).expect("valid");
    let e = pl.live_edge();
    assert_eq!(decide(&e, &req(0, None)), ReloadDecision::Wait);
    assert_eq!(decide(&e, &req(1, Some(0))), ReloadDecision::Wait);
    assert!(matches!(
        decide(&e, &req(2, None)),
        ReloadDecision::BadRequest(BadReload::MsnTooFarAhead { .. })
    ));
    assert!(matches!(
        decide(&e, &req(0, Some(6))),
        ReloadDecision::BadRequest(BadReload::PartTooFarAhead { .. })
    ));
}

#[test]
fn after_a_discontinuity_a_part_past_the_closed_segment_waits_for_the_next() {
    let mut pl = playlist();
    pl.discontinuity(false).expect("live");
    let e = pl.live_edge();
    assert_eq!((e.last_msn, e.last_part_open), (Some(11), false));
    assert_eq!(decide(&e, &req(11, None)), ReloadDecision::Ready);
    assert_eq!(
        decide(&e, &req(11, Some(2))),
        ReloadDecision::Wait,
        "means 12.0"
    );
    // Any index past the end is just "12.0", one part ahead: never refused.
    assert_eq!(decide(&e, &req(11, Some(1000))), ReloadDecision::Wait);
    push(&mut pl, true);
    assert_eq!(
        decide(&pl.live_edge(), &req(11, Some(2))),
        ReloadDecision::Ready
    );
}

#[test]
fn ended_playlists_answer_at_once() {
    let mut pl = playlist();
    pl.end();
    let e = pl.live_edge();
    assert_eq!(decide(&e, &req(500, Some(3))), ReloadDecision::Ready);
    assert_eq!(decide_query(&e, "_HLS_msn=99"), ReloadDecision::Ready);
    // …but a malformed query is still malformed.
    assert!(matches!(
        decide_query(&e, "_HLS_part=1"),
        ReloadDecision::BadRequest(BadReload::Query(_))
    ));
}

#[test]
fn decide_query_combines_parse_and_decide() {
    let e = playlist().live_edge();
    assert_eq!(decide_query(&e, "token=1"), ReloadDecision::Ready);
    assert_eq!(
        decide_query(&e, "_HLS_msn=11&_HLS_part=2"),
        ReloadDecision::Wait
    );
    assert_eq!(
        decide_query(&e, "_HLS_msn=11&_HLS_part=1"),
        ReloadDecision::Ready
    );
    let ReloadDecision::BadRequest(why) = decide_query(&e, "_HLS_msn=abc") else {
        panic!("must be 400")
    };
    assert_eq!(
        why.to_string(),
        "_HLS_msn must be a decimal integer, got \"abc\""
    );
    assert_eq!(hold_limit(2), Duration::from_secs(6));
}

proptest! {
    /// The query parser never panics, whatever the bytes.
    #[test]
    fn query_parser_never_panics(q in ".{0,200}") {
        let _ = parse_reload_query(&q);
    }

    /// Plausible queries built from the directive names parse exactly.
    #[test]
    fn well_formed_queries_round_trip(msn in any::<u64>(), part in proptest::option::of(any::<u64>()), token in "[a-z0-9]{0,10}") {
        let mut q = format!("t={token}&_HLS_msn={msn}");
        if let Some(p) = part {
            q.push_str(&format!("&_HLS_part={p}"));
        }
        prop_assert_eq!(parse_reload_query(&q), Ok(Some(ReloadRequest { msn, part })));
    }

    /// As parts arrive, a decision only moves Wait → Ready (never back), a
    /// Ready (M, P) names a part that the playlist has reached, and a request
    /// refused as too far stays within the spec's bounds.
    #[test]
    fn decisions_are_monotonic_and_honest(
        keys in proptest::collection::vec(prop::bool::weighted(0.3), 1..60),
        msn in 0u64..20,
        part in proptest::option::of(0u64..10),
    ) {
        let mut pl = MediaPlaylist::new(MediaPlaylistOptions::default()).expect("valid");
        let r = ReloadRequest { msn, part };
        let mut was_ready = false;
        for k in keys {
            push(&mut pl, k);
            let e = pl.live_edge();
            match decide(&e, &r) {
                ReloadDecision::Ready => {
                    was_ready = true;
                    match part {
                        None => prop_assert!(e.last_msn.is_some_and(|m| m >= msn)),
                        Some(p) => prop_assert!(e.last_part.is_some_and(|lp| (lp.msn, u64::from(lp.index)) >= (msn, p))),
                    }
                }
                ReloadDecision::Wait => prop_assert!(!was_ready, "Ready went back to Wait"),
                ReloadDecision::BadRequest(BadReload::MsnTooFarAhead { .. }) => {
                    prop_assert!(msn > e.last_msn.map_or(1, |m| m + 2));
                }
                ReloadDecision::BadRequest(_) => prop_assert!(part.is_some()),
            }
        }
    }
}
