//! A tiny fMP4 writer for test fixtures: just enough of ISO/IEC 14496-12 to
//! produce what ffmpeg/GStreamer produce for fragmented output (ftyp, moov with
//! mvhd/trak/mvex, then styp?/moof/mdat), with the knobs the parser must honour
//! (where durations and sample flags are stored, tfdt versions, largesize).

/// A box: 32-bit size, type, payload.
pub(crate) fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    v.extend_from_slice(typ);
    v.extend_from_slice(payload);
    v
}

/// A box with a 64-bit `largesize` header.
pub(crate) fn large_bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 16);
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(typ);
    v.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A full box: version and 24-bit flags before the payload.
pub(crate) fn full_bx(typ: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload.len() + 4);
    p.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    p.extend_from_slice(payload);
    bx(typ, &p)
}

fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// Sample flags of a keyframe / of a frame that depends on others.
pub(crate) const SYNC: u32 = 0x0200_0000; // sample_depends_on = 2
pub(crate) const NON_SYNC: u32 = 0x0101_0000; // depends_on = 1, is_non_sync

/// A track for [`init_segment`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackSpec {
    pub id: u32,
    pub handler: [u8; 4],
    pub timescale: u32,
    pub trex_duration: u32,
    pub trex_flags: u32,
    /// Write `tkhd`/`mdhd` as version 1 (64-bit times).
    pub v1: bool,
}

impl TrackSpec {
    pub fn video(id: u32, timescale: u32) -> Self {
        Self {
            id,
            handler: *b"vide",
            timescale,
            trex_duration: 0,
            trex_flags: NON_SYNC,
            v1: false,
        }
    }
    pub fn audio(id: u32, timescale: u32) -> Self {
        Self {
            id,
            handler: *b"soun",
            timescale,
            trex_duration: 1024,
            trex_flags: 0,
            v1: false,
        }
    }
}

/// `ftyp` + `moov(mvhd, trak(tkhd, mdia(mdhd, hdlr, minf)), mvex(trex))`.
pub(crate) fn init_segment(tracks: &[TrackSpec]) -> Vec<u8> {
    let mut out = bx(b"ftyp", b"iso6\0\0\0\0iso6cmfcmp41");
    out.extend(moov(tracks));
    out
}

pub(crate) fn moov(tracks: &[TrackSpec]) -> Vec<u8> {
    let mut moov = full_bx(b"mvhd", 0, 0, &[0u8; 96]);
    for t in tracks {
        let mut tkhd = Vec::new();
        let mut mdhd = Vec::new();
        if t.v1 {
            tkhd.extend_from_slice(&[0u8; 16]);
            be32(&mut tkhd, t.id);
            tkhd.extend_from_slice(&[0u8; 4 + 8 + 52]);
            mdhd.extend_from_slice(&[0u8; 16]);
            be32(&mut mdhd, t.timescale);
            mdhd.extend_from_slice(&[0u8; 8 + 4]);
        } else {
            tkhd.extend_from_slice(&[0u8; 8]);
            be32(&mut tkhd, t.id);
            tkhd.extend_from_slice(&[0u8; 4 + 4 + 52]);
            mdhd.extend_from_slice(&[0u8; 8]);
            be32(&mut mdhd, t.timescale);
            mdhd.extend_from_slice(&[0u8; 4 + 4]);
        }
        let version = u8::from(t.v1);
        let mut hdlr = vec![0u8; 4];
        hdlr.extend_from_slice(&t.handler);
        hdlr.extend_from_slice(&[0u8; 12]);
        hdlr.extend_from_slice(b"test\0");
        let mut mdia = full_bx(b"mdhd", version, 0, &mdhd);
        mdia.extend(full_bx(b"hdlr", 0, 0, &hdlr));
        mdia.extend(bx(b"minf", &bx(b"stbl", &[])));
        let mut trak = full_bx(b"tkhd", version, 3, &tkhd);
        trak.extend(bx(b"mdia", &mdia));
        moov.extend(bx(b"trak", &trak));
    }
    let mut mvex = Vec::new();
    for t in tracks {
        let mut trex = Vec::new();
        be32(&mut trex, t.id);
        be32(&mut trex, 1);
        be32(&mut trex, t.trex_duration);
        be32(&mut trex, 0);
        be32(&mut trex, t.trex_flags);
        mvex.extend(full_bx(b"trex", 0, 0, &trex));
    }
    moov.extend(bx(b"mvex", &mvex));
    bx(b"moov", &moov)
}

/// Where a `traf` stores its sample durations and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Per-sample duration and flags in `trun`.
    PerSample,
    /// Per-sample durations, `first-sample-flags` in `trun`, the rest from `tfhd` default flags.
    FirstSampleFlags,
    /// Everything from `tfhd` defaults (duration, flags of every sample).
    TfhdDefaults,
    /// Nothing in `tfhd`/`trun`: the `trex` defaults apply.
    TrexDefaults,
}

/// A `traf` for [`fragment`]. With the default layouts the samples must all
/// have the same duration (only the first one's is written).
#[derive(Debug, Clone)]
pub(crate) struct TrafSpec {
    pub track_id: u32,
    /// `tfdt`: none, version 0 (u32) or version 1 (u64).
    pub base_time: Option<u64>,
    pub tfdt_v1: bool,
    pub samples: Vec<(u32, u32)>, // (duration, flags)
    pub layout: Layout,
    /// Split the samples over this many `trun`s.
    pub truns: usize,
}

impl TrafSpec {
    /// A video run: `n` frames of `dur` ticks, the first one a keyframe if `key`.
    pub fn video(track_id: u32, base: u64, n: usize, dur: u32, key: bool) -> Self {
        let samples = (0..n)
            .map(|i| (dur, if i == 0 && key { SYNC } else { NON_SYNC }))
            .collect();
        Self {
            track_id,
            base_time: Some(base),
            tfdt_v1: true,
            samples,
            layout: Layout::PerSample,
            truns: 1,
        }
    }
    /// An audio run: `n` frames of `dur` ticks, all sync.
    pub fn audio(track_id: u32, base: u64, n: usize, dur: u32) -> Self {
        Self {
            track_id,
            base_time: Some(base),
            tfdt_v1: false,
            samples: vec![(dur, 0); n],
            layout: Layout::TfhdDefaults,
            truns: 1,
        }
    }
}

fn traf(t: &TrafSpec) -> Vec<u8> {
    let first_dur = t.samples.first().map_or(0, |s| s.0);
    let rest_flags = t.samples.get(1).map_or(NON_SYNC, |s| s.1);
    let mut tfhd = Vec::new();
    be32(&mut tfhd, t.track_id);
    let tfhd_flags = match t.layout {
        Layout::PerSample | Layout::TrexDefaults => 0x02_0000,
        Layout::FirstSampleFlags => {
            be32(&mut tfhd, rest_flags);
            0x02_0020
        }
        Layout::TfhdDefaults => {
            be32(&mut tfhd, first_dur);
            be32(&mut tfhd, 100); // default size
            be32(&mut tfhd, t.samples.first().map_or(0, |s| s.1));
            0x02_0038
        }
    };
    let mut out = full_bx(b"tfhd", 0, tfhd_flags, &tfhd);
    if let Some(base) = t.base_time {
        if t.tfdt_v1 {
            out.extend(full_bx(b"tfdt", 1, 0, &base.to_be_bytes()));
        } else {
            out.extend(full_bx(b"tfdt", 0, 0, &(base as u32).to_be_bytes()));
        }
    }
    let runs = t.truns.max(1);
    let per_run = t.samples.len().div_ceil(runs).max(1);
    let mut chunks: Vec<&[(u32, u32)]> = t.samples.chunks(per_run).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in &chunks {
        let mut p = Vec::new();
        be32(&mut p, chunk.len() as u32);
        be32(&mut p, 0); // data offset (not meaningful in fixtures)
        let flags = match t.layout {
            Layout::PerSample => {
                for s in *chunk {
                    be32(&mut p, s.0);
                    be32(&mut p, 100);
                    be32(&mut p, s.1);
                }
                0x701
            }
            Layout::FirstSampleFlags => {
                // Insert first-sample-flags before the table.
                let first = chunk.first().map_or(0, |s| s.1);
                let mut q = Vec::new();
                be32(&mut q, chunk.len() as u32);
                be32(&mut q, 0);
                be32(&mut q, first);
                for s in *chunk {
                    be32(&mut q, s.0);
                    be32(&mut q, 100);
                }
                p = q;
                0x305
            }
            Layout::TfhdDefaults | Layout::TrexDefaults => 0x001,
        };
        out.extend(full_bx(b"trun", 0, flags, &p));
    }
    bx(b"traf", &out)
}

/// `moof(mfhd, traf…)` + `mdat` of `mdat_len` bytes.
pub(crate) fn fragment(seq: u32, trafs: &[TrafSpec], mdat_len: usize) -> Vec<u8> {
    let mut moof = full_bx(b"mfhd", 0, 0, &seq.to_be_bytes());
    for t in trafs {
        moof.extend(traf(t));
    }
    let mut out = bx(b"moof", &moof);
    out.extend(bx(b"mdat", &vec![0xAB; mdat_len]));
    out
}

/// A whole test stream: init then `fragments` fragments of one video track at
/// 90 kHz (15 frames of 3000 ticks = 0.5 s each, a keyframe every `gop` fragments)
/// and one 48 kHz audio track.
pub(crate) fn av_stream(fragments: usize, gop: usize) -> Vec<u8> {
    let mut out = init_segment(&[TrackSpec::video(1, 90_000), TrackSpec::audio(2, 48_000)]);
    for i in 0..fragments {
        let v = TrafSpec::video(1, i as u64 * 45_000, 15, 3000, i % gop.max(1) == 0);
        let a = TrafSpec::audio(2, i as u64 * 24_000, 23, 1024);
        if i % 3 == 0 {
            out.extend(bx(b"styp", b"msdhmsdhcmfs"));
        }
        out.extend(fragment(i as u32 + 1, &[v, a], 200 + i));
    }
    out
}
