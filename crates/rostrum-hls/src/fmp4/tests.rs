use std::time::Duration;

use proptest::prelude::*;

use super::test_builder::*;
use super::*;

/// Feeds `data` in the given chunk sizes (cycled) and collects events until
/// the first error.
fn parse_chunked(
    data: &[u8],
    sizes: &[usize],
    opts: Fmp4ParserOptions,
) -> (Vec<Fmp4Event>, Option<Fmp4Error>) {
    let mut p = Fmp4Parser::new(opts);
    let mut events = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(data.len())
            .max(1);
        let end = (pos + n).min(data.len());
        p.push(&data[pos..end]);
        pos = end;
        i += 1;
        loop {
            match p.poll() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, p.finish().err())
}

fn parse_all(data: &[u8]) -> (Vec<Fmp4Event>, Option<Fmp4Error>) {
    parse_chunked(data, &[data.len().max(1)], Fmp4ParserOptions::default())
}

fn fragments(events: &[Fmp4Event]) -> Vec<&Fragment> {
    events
        .iter()
        .filter_map(|e| match e {
            Fmp4Event::Fragment(f) => Some(f),
            Fmp4Event::Init(_) => None,
        })
        .collect()
}

#[test]
fn init_then_fragments_with_timing_and_keyframes() {
    let data = av_stream(6, 4);
    let (events, err) = parse_all(&data);
    assert_eq!(err, None);
    assert_eq!(events.len(), 7);
    let Fmp4Event::Init(init) = &events[0] else {
        panic!("first event must be the init segment")
    };
    assert_eq!(
        init.tracks,
        vec![
            Track {
                id: TrackId(1),
                kind: TrackKind::Video,
                timescale: 90_000,
                default_sample_duration: 0,
                default_sample_flags: NON_SYNC
            },
            Track {
                id: TrackId(2),
                kind: TrackKind::Audio,
                timescale: 48_000,
                default_sample_duration: 1024,
                default_sample_flags: 0
            },
        ]
    );
    // The init bytes are exactly ftyp+moov, i.e. the start of the stream.
    assert_eq!(
        init.bytes,
        init_segment(&[TrackSpec::video(1, 90_000), TrackSpec::audio(2, 48_000)])
    );

    let frags = fragments(&events);
    let independent: Vec<bool> = frags.iter().map(|f| f.independent).collect();
    assert_eq!(independent, [true, false, false, false, true, false]);
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.sequence_number, i as u32 + 1);
        let v = &f.tracks[0];
        assert_eq!(
            (v.kind, v.timescale, v.sample_count),
            (TrackKind::Video, 90_000, 15)
        );
        assert_eq!(v.base_media_decode_time, Some(i as u64 * 45_000));
        assert_eq!(v.duration_ticks, 45_000);
        assert_eq!(f.duration(), Duration::from_millis(500));
        assert_eq!(v.start(), Some(Duration::from_millis(500 * i as u64)));
        let a = &f.tracks[1];
        assert_eq!(
            (a.kind, a.duration_ticks, a.sample_count),
            (TrackKind::Audio, 23 * 1024, 23)
        );
        assert!(a.starts_with_sync);
        // styp precedes every third moof and is carried in the fragment bytes.
        let first_box = &f.bytes[4..8];
        assert_eq!(first_box, if i % 3 == 0 { b"styp" } else { b"moof" });
    }
    // Init + fragments reassemble the stream byte for byte.
    let mut again = init.bytes.clone();
    for f in &frags {
        again.extend_from_slice(&f.bytes);
    }
    assert_eq!(again, data);
}

#[test]
fn every_place_for_sample_flags_and_durations_is_honoured() {
    for layout in [
        Layout::PerSample,
        Layout::FirstSampleFlags,
        Layout::TfhdDefaults,
        Layout::TrexDefaults,
    ] {
        for key in [true, false] {
            let mut track = TrackSpec::video(7, 1000);
            track.trex_duration = 40;
            // With only trex defaults the flags come from trex as well.
            track.trex_flags = if layout == Layout::TrexDefaults && key {
                SYNC
            } else {
                NON_SYNC
            };
            let mut t = TrafSpec::video(7, 123, 5, 40, key);
            t.layout = layout;
            if layout == Layout::TfhdDefaults {
                // tfhd default flags apply to every sample, the first included.
                t.samples = vec![(40, if key { SYNC } else { NON_SYNC }); 5];
            }
            let mut data = init_segment(&[track]);
            data.extend(fragment(1, &[t], 10));
            let (events, err) = parse_all(&data);
            assert_eq!(err, None, "{layout:?}");
            let f = fragments(&events)[0];
            assert_eq!(f.tracks[0].duration_ticks, 200, "{layout:?}");
            assert_eq!(f.tracks[0].sample_count, 5, "{layout:?}");
            assert_eq!(f.independent, key, "{layout:?} key={key}");
            assert_eq!(f.duration(), Duration::from_millis(200));
        }
    }
}

#[test]
fn durations_sum_over_several_truns_and_tfdt_v0() {
    let mut t = TrafSpec::video(1, 77, 9, 3000, true);
    t.truns = 3;
    t.tfdt_v1 = false;
    let mut data = init_segment(&[TrackSpec::video(1, 90_000)]);
    data.extend(fragment(1, &[t], 0));
    let (events, err) = parse_all(&data);
    assert_eq!(err, None);
    let f = fragments(&events)[0];
    assert_eq!(
        (f.tracks[0].duration_ticks, f.tracks[0].sample_count),
        (27_000, 9)
    );
    assert_eq!(f.tracks[0].base_media_decode_time, Some(77));
    assert!(f.independent, "first-sample flags come from the first trun");
}

#[test]
fn version_1_headers_and_largesize_mdat() {
    let mut tr = TrackSpec::video(3, 600);
    tr.v1 = true;
    let mut data = init_segment(&[tr]);
    let mut moof = full_bx(b"mfhd", 0, 0, &9u32.to_be_bytes());
    moof.extend(super::test_builder::bx(b"traf", &{
        let mut v = full_bx(b"tfhd", 0, 0x02_0000, &3u32.to_be_bytes());
        v.extend(full_bx(
            b"tfdt",
            1,
            0,
            &(u64::from(u32::MAX) + 5).to_be_bytes(),
        ));
        let mut trun = Vec::new();
        trun.extend_from_slice(&1u32.to_be_bytes());
        trun.extend_from_slice(&20u32.to_be_bytes());
        trun.extend_from_slice(&SYNC.to_be_bytes());
        v.extend(full_bx(b"trun", 0, 0x500, &trun));
        v
    }));
    data.extend(bx(b"moof", &moof));
    data.extend(large_bx(b"mdat", &[1, 2, 3]));
    let (events, err) = parse_all(&data);
    assert_eq!(err, None);
    let Fmp4Event::Init(init) = &events[0] else {
        panic!("init first")
    };
    assert_eq!(
        (init.tracks[0].id, init.tracks[0].timescale),
        (TrackId(3), 600)
    );
    let f = fragments(&events)[0];
    assert_eq!(f.sequence_number, 9);
    assert_eq!(
        f.tracks[0].base_media_decode_time,
        Some(u64::from(u32::MAX) + 5)
    );
    assert!(f.independent);
    assert_eq!(f.bytes.len(), data.len() - init.bytes.len());
}

#[test]
fn audio_only_stream_is_always_independent() {
    let mut data = init_segment(&[TrackSpec::audio(1, 48_000)]);
    data.extend(fragment(1, &[TrafSpec::audio(1, 0, 10, 1024)], 5));
    let (events, err) = parse_all(&data);
    assert_eq!(err, None);
    let f = fragments(&events)[0];
    assert!(f.independent);
    assert_eq!(f.primary_track().map(|t| t.kind), Some(TrackKind::Audio));
}

#[test]
fn video_init_but_fragment_without_video_is_not_independent() {
    let mut data = init_segment(&[TrackSpec::video(1, 90_000), TrackSpec::audio(2, 48_000)]);
    data.extend(fragment(1, &[TrafSpec::audio(2, 0, 10, 1024)], 5));
    let (events, _) = parse_all(&data);
    assert!(
        !fragments(&events)[0].independent,
        "audio alone cannot start a video rendition"
    );
}

#[test]
fn a_second_init_mid_stream_replaces_the_tracks() {
    let mut data = av_stream(2, 1);
    data.extend(init_segment(&[TrackSpec::video(5, 1000)]));
    data.extend(fragment(1, &[TrafSpec::video(5, 0, 2, 500, true)], 1));
    let (events, err) = parse_all(&data);
    assert_eq!(err, None);
    let inits: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Fmp4Event::Init(_)))
        .collect();
    assert_eq!(inits.len(), 2);
    let last = fragments(&events)
        .last()
        .copied()
        .map(|f| f.tracks[0].track_id);
    assert_eq!(last, Some(TrackId(5)));
}

#[test]
fn errors_are_clear_and_sticky() {
    // moof before any moov
    let data = fragment(1, &[TrafSpec::video(1, 0, 1, 1, true)], 1);
    let (_, err) = parse_all(&data);
    let err = err.expect("must fail");
    assert_eq!(
        err,
        Fmp4Error::BeforeInit {
            box_type: FourCc(*b"moof")
        }
    );
    assert!(err.to_string().contains("empty_moov"), "{err}");

    // The error repeats, and later input is ignored.
    let mut p = Fmp4Parser::default();
    p.push(&data);
    let first = p.poll().unwrap_err();
    p.push(&av_stream(1, 1));
    assert_eq!(p.poll().unwrap_err(), first);
    assert_eq!(p.buffered_len(), 0);
}

#[test]
fn structural_errors() {
    let init = init_segment(&[TrackSpec::video(1, 90_000)]);
    let frag = fragment(1, &[TrafSpec::video(1, 0, 1, 1, true)], 1);
    let moof_len = u32::from_be_bytes([frag[0], frag[1], frag[2], frag[3]]) as usize;

    let mut two_moofs = init.clone();
    two_moofs.extend_from_slice(&frag[..moof_len]);
    two_moofs.extend_from_slice(&frag);
    assert_eq!(
        parse_all(&two_moofs).1,
        Some(Fmp4Error::MoofWithoutMdat {
            next: FourCc(*b"moof")
        })
    );

    let mut lone_mdat = init.clone();
    lone_mdat.extend(bx(b"mdat", b"x"));
    assert_eq!(parse_all(&lone_mdat).1, Some(Fmp4Error::MdatWithoutMoof));

    let mut unknown = init.clone();
    unknown.extend(fragment(1, &[TrafSpec::video(9, 0, 1, 1, true)], 1));
    assert_eq!(parse_all(&unknown).1, Some(Fmp4Error::UnknownTrack(9)));

    let mut zero = init.clone();
    zero.extend_from_slice(b"\0\0\0\0mdat");
    assert_eq!(
        parse_all(&zero).1,
        Some(Fmp4Error::SizeToEndOfStream {
            box_type: FourCc(*b"mdat")
        })
    );

    let dup = init_segment(&[TrackSpec::video(1, 90_000), TrackSpec::audio(1, 48_000)]);
    assert_eq!(parse_all(&dup).1, Some(Fmp4Error::DuplicateTrack(1)));

    let no_ts = init_segment(&[TrackSpec::video(1, 0)]);
    assert_eq!(
        parse_all(&no_ts).1,
        Some(Fmp4Error::ZeroTimescale { track_id: 1 })
    );

    let no_trak_parts = {
        let mut v = bx(b"ftyp", b"iso6");
        v.extend(bx(
            b"moov",
            &bx(b"trak", &full_bx(b"tkhd", 0, 0, &[0u8; 20])),
        ));
        v
    };
    assert_eq!(
        parse_all(&no_trak_parts).1,
        Some(Fmp4Error::MissingBox {
            path: "moov/trak/mdia/mdhd"
        })
    );

    // A trun claiming four billion samples in a few bytes.
    let mut liar = init.clone();
    let mut traf = full_bx(b"tfhd", 0, 0, &1u32.to_be_bytes());
    traf.extend(full_bx(b"trun", 0, 0x100, &u32::MAX.to_be_bytes()));
    let mut moof = full_bx(b"mfhd", 0, 0, &1u32.to_be_bytes());
    moof.extend(bx(b"traf", &traf));
    liar.extend(bx(b"moof", &moof));
    liar.extend(bx(b"mdat", b""));
    assert_eq!(
        parse_all(&liar).1,
        Some(Fmp4Error::Truncated {
            box_type: FourCc(*b"trun")
        })
    );

    // Unknown tfdt version.
    let mut bad_tfdt = init;
    let mut traf = full_bx(b"tfhd", 0, 0, &1u32.to_be_bytes());
    traf.extend(full_bx(b"tfdt", 7, 0, &[0; 8]));
    let mut moof = full_bx(b"mfhd", 0, 0, &1u32.to_be_bytes());
    moof.extend(bx(b"traf", &traf));
    bad_tfdt.extend(bx(b"moof", &moof));
    assert_eq!(
        parse_all(&bad_tfdt).1,
        Some(Fmp4Error::UnsupportedVersion {
            box_type: FourCc(*b"tfdt"),
            version: 7
        })
    );
}

#[test]
fn huge_box_is_rejected_from_its_header_alone() {
    let mut p = Fmp4Parser::new(Fmp4ParserOptions {
        max_box_size: 1000,
        max_fragment_size: 4000,
    });
    p.push(&init_segment(&[TrackSpec::video(1, 90_000)]));
    assert!(matches!(p.poll(), Ok(Some(Fmp4Event::Init(_)))));
    // Only the 8-byte header of a 1 GB mdat: rejected without buffering it.
    p.push(&(1u32 << 30).to_be_bytes());
    p.push(b"mdat");
    let err = p.poll().unwrap_err();
    assert_eq!(
        err,
        Fmp4Error::BoxTooLarge {
            box_type: FourCc(*b"mdat"),
            size: 1 << 30,
            limit: 1000
        }
    );
    assert!(err.to_string().contains("1000-byte limit"));
}

#[test]
fn a_fragment_of_many_small_boxes_is_bounded_too() {
    let mut p = Fmp4Parser::new(Fmp4ParserOptions {
        max_box_size: 1000,
        max_fragment_size: 4000,
    });
    p.push(&init_segment(&[TrackSpec::video(1, 90_000)]));
    assert!(matches!(p.poll(), Ok(Some(Fmp4Event::Init(_)))));
    let mut err = None;
    for _ in 0..10 {
        p.push(&bx(b"emsg", &[0; 900]));
        if let Err(e) = p.poll() {
            err = Some(e);
            break;
        }
    }
    assert_eq!(
        err,
        Some(Fmp4Error::FragmentTooLarge {
            box_type: FourCc(*b"emsg"),
            limit: 4000
        })
    );
}

#[test]
fn finish_reports_a_cut_off_stream() {
    let data = av_stream(2, 1);
    let mut p = Fmp4Parser::default();
    p.push(&data[..data.len() - 3]);
    while let Ok(Some(_)) = p.poll() {}
    assert!(matches!(p.finish(), Err(Fmp4Error::TruncatedStream { .. })));
    p.push(&data[data.len() - 3..]);
    assert!(matches!(p.poll(), Ok(Some(Fmp4Event::Fragment(_)))));
    assert_eq!(p.finish(), Ok(()));
    assert_eq!(p.buffered_len(), 0);
}

#[test]
fn byte_at_a_time_matches_all_at_once() {
    let data = av_stream(5, 2);
    assert_eq!(
        parse_chunked(&data, &[1], Fmp4ParserOptions::default()),
        parse_all(&data)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Boxes split anywhere: any chunking yields the same events as one push.
    #[test]
    fn any_chunking_yields_the_same_events(
        n in 1usize..8,
        gop in 1usize..4,
        sizes in proptest::collection::vec(1usize..200, 1..20),
    ) {
        let data = av_stream(n, gop);
        let whole = parse_all(&data);
        prop_assert_eq!(whole.1.clone(), None);
        prop_assert_eq!(whole.0.len(), n + 1);
        prop_assert_eq!(parse_chunked(&data, &sizes, Fmp4ParserOptions::default()), whole);
    }

    /// Random bytes never panic, and the parser stops (error or wants more).
    #[test]
    fn random_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let opts = Fmp4ParserOptions { max_box_size: 4096, max_fragment_size: 8192 };
        let _ = parse_chunked(&data, &sizes, opts);
    }

    /// A valid stream with bytes flipped or cut never panics, and never emits
    /// more bytes than it was given.
    #[test]
    fn corrupted_streams_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = av_stream(3, 2);
        for (i, b) in flips {
            let at = i.index(data.len());
            data[at] = b;
        }
        let end = cut.index(data.len() + 1);
        let (events, _) = parse_chunked(&data[..end], &[7, 100], Fmp4ParserOptions::default());
        let total: usize = events.iter().map(|e| match e {
            Fmp4Event::Init(i) => i.bytes.len(),
            Fmp4Event::Fragment(f) => f.bytes.len(),
        }).sum();
        prop_assert!(total <= end);
    }

    /// Random box trees of known types at any depth never panic either.
    #[test]
    fn random_boxes_with_known_names_never_panic(
        boxes in proptest::collection::vec(
            (prop::sample::select(vec![*b"ftyp", *b"moov", *b"trak", *b"moof", *b"traf", *b"mdat", *b"tfhd", *b"trun", *b"mvex", *b"trex"]),
             proptest::collection::vec(any::<u8>(), 0..64)),
            0..12),
    ) {
        let mut data = Vec::new();
        for (typ, payload) in &boxes {
            data.extend(bx(typ, payload));
        }
        let _ = parse_all(&data);
    }
}
