//! LL-HLS playlists as a player sees them, and the pure state machine that follows a live
//! media playlist part by part with blocking reloads (RFC 8216bis §6.2.5.2).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HlsError {
    #[error("not a playlist (no #EXTM3U)")]
    NotPlaylist,
    #[error("multivariant playlist names no variant")]
    NoVariant,
    #[error("bad value in line {0:?}")]
    BadLine(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration_s: f64,
    pub independent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub msn: u64,
    pub parts: Vec<Part>,
    /// `EXTINF` seen: the segment is closed and has no more parts to come.
    pub complete: bool,
    /// Wall-clock start of the segment (ms since the epoch) from `EXT-X-PROGRAM-DATE-TIME`.
    pub pdt_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    pub part_target_s: Option<f64>,
    pub media_sequence: u64,
    pub map_uri: Option<String>,
    pub segments: Vec<Segment>,
    pub endlist: bool,
    pub can_block_reload: bool,
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    // Split on commas outside quotes.
    let mut start = 0;
    let mut quoted = false;
    let bytes = attrs.as_bytes();
    let mut pieces = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                pieces.push(&attrs[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&attrs[start..]);
    pieces.into_iter().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The first variant's URI in a multivariant playlist (or `None` if `text` is a media playlist).
pub fn first_variant(text: &str) -> Result<Option<String>, HlsError> {
    if !text.trim_start().starts_with("#EXTM3U") {
        return Err(HlsError::NotPlaylist);
    }
    let mut lines = text.lines().map(str::trim);
    let mut any_inf = false;
    while let Some(l) = lines.next() {
        if l.starts_with("#EXT-X-STREAM-INF") {
            any_inf = true;
            if let Some(uri) = lines
                .by_ref()
                .find(|l| !l.is_empty() && !l.starts_with('#'))
            {
                return Ok(Some(uri.to_string()));
            }
        }
        if l.starts_with("#EXT-X-TARGETDURATION") {
            return Ok(None);
        }
    }
    if any_inf {
        Err(HlsError::NoVariant)
    } else {
        Ok(None)
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS(.fff)(Z|±HH:MM)` into ms since the Unix epoch.
pub fn parse_date_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset_min) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        let oh: i64 = oh.parse().ok()?;
        let om: i64 = om.parse().ok()?;
        (c, sign * (oh * 60 + om))
    };
    let mut t = clock.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let secs: f64 = t.next()?.parse().ok()?;
    if t.next().is_some() || hh > 23 || mm > 59 || !(0.0..61.0).contains(&secs) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = days * 86_400_000 + (hh * 3600 + mm * 60 - offset_min * 60) * 1000;
    Some(ms + (secs * 1000.0).round() as i64)
}

/// Parses a media playlist. Unknown tags are ignored; malformed known ones are errors.
pub fn parse_media(text: &str) -> Result<MediaPlaylist, HlsError> {
    if !text.trim_start().starts_with("#EXTM3U") {
        return Err(HlsError::NotPlaylist);
    }
    let bad = |l: &str| HlsError::BadLine(l.chars().take(80).collect());
    let mut pl = MediaPlaylist::default();
    let mut cur = Segment {
        msn: 0,
        parts: Vec::new(),
        complete: false,
        pdt_ms: None,
    };
    let mut started = false;
    let mut expect_uri = false;
    for l in text.lines().map(str::trim) {
        if l.is_empty() {
            continue;
        }
        if !started && l.starts_with("#EXT-X-MEDIA-SEQUENCE:") {
            pl.media_sequence = l[22..].trim().parse().map_err(|_| bad(l))?;
            cur.msn = pl.media_sequence;
        } else if let Some(v) = l.strip_prefix("#EXT-X-PART-INF:") {
            pl.part_target_s = Some(
                attr(v, "PART-TARGET")
                    .and_then(|x| x.parse().ok())
                    .ok_or_else(|| bad(l))?,
            );
        } else if let Some(v) = l.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            pl.can_block_reload = attr(v, "CAN-BLOCK-RELOAD") == Some("YES");
        } else if let Some(v) = l.strip_prefix("#EXT-X-MAP:") {
            pl.map_uri = Some(attr(v, "URI").ok_or_else(|| bad(l))?.to_string());
        } else if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            started = true;
            cur.pdt_ms = Some(parse_date_time_ms(v).ok_or_else(|| bad(l))?);
        } else if let Some(v) = l.strip_prefix("#EXT-X-PART:") {
            started = true;
            let uri = attr(v, "URI").ok_or_else(|| bad(l))?.to_string();
            let duration_s = attr(v, "DURATION")
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| bad(l))?;
            cur.parts.push(Part {
                uri,
                duration_s,
                independent: attr(v, "INDEPENDENT") == Some("YES"),
            });
        } else if l.starts_with("#EXTINF:") {
            started = true;
            expect_uri = true;
        } else if l == "#EXT-X-ENDLIST" {
            pl.endlist = true;
        } else if !l.starts_with('#') && expect_uri {
            expect_uri = false;
            let next_msn = cur.msn + 1;
            let mut done = std::mem::replace(
                &mut cur,
                Segment {
                    msn: next_msn,
                    parts: Vec::new(),
                    complete: false,
                    pdt_ms: None,
                },
            );
            done.complete = true;
            pl.segments.push(done);
        }
    }
    if !cur.parts.is_empty() {
        pl.segments.push(cur);
    }
    Ok(pl)
}

/// A part the follower has not downloaded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPart {
    pub msn: u64,
    pub index: usize,
    pub uri: String,
    /// Wall-clock end of the part (ms since the epoch), when the playlist dates its segment.
    pub end_ms: Option<i64>,
}

/// What the follower wants next.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub new_parts: Vec<NewPart>,
    /// `(msn, part)` for the next blocking reload (`_HLS_msn`, `_HLS_part`).
    pub next: Option<(u64, usize)>,
    /// Wall-clock end of the newest part in the playlist.
    pub live_edge_ms: Option<i64>,
    pub ended: bool,
}

/// Follows one live media playlist: which parts are new, which blocking reload to make next, and
/// when the stream stalled (no new part for more than 3 part targets).
#[derive(Debug, Clone, Default)]
pub struct Follower {
    /// The newest part handed out, `(msn, index)`.
    last: Option<(u64, usize)>,
    last_new_at_ms: Option<f64>,
    stalled: bool,
    pub stalls: u64,
    part_target_s: f64,
}

impl Follower {
    pub fn new() -> Follower {
        Follower {
            part_target_s: 1.0,
            ..Default::default()
        }
    }

    /// Feeds a playlist received at `now_ms` (any monotonic ms clock). The first playlist starts
    /// at its newest part, like a low-latency player joining at the live edge.
    pub fn on_playlist(&mut self, pl: &MediaPlaylist, now_ms: f64) -> Step {
        if let Some(t) = pl.part_target_s.filter(|t| *t > 0.0) {
            self.part_target_s = t;
        }
        let mut all = Vec::new();
        for seg in &pl.segments {
            let mut t = seg.pdt_ms.map(|v| v as f64);
            for (i, p) in seg.parts.iter().enumerate() {
                t = t.map(|t| t + p.duration_s * 1000.0);
                all.push(NewPart {
                    msn: seg.msn,
                    index: i,
                    uri: p.uri.clone(),
                    end_ms: t.map(|t| t.round() as i64),
                });
            }
        }
        let live_edge_ms = all.last().and_then(|p| p.end_ms);
        let new_parts: Vec<NewPart> = match self.last {
            None => all.last().cloned().into_iter().collect(),
            Some(last) => all
                .into_iter()
                .filter(|p| (p.msn, p.index) > last)
                .collect(),
        };
        if let Some(p) = new_parts.last() {
            self.last = Some((p.msn, p.index));
            self.last_new_at_ms = Some(now_ms);
            self.stalled = false;
        } else if self.last_new_at_ms.is_none() {
            self.last_new_at_ms = Some(now_ms);
        }
        let next = self.last.map(|(msn, i)| {
            let closed = pl
                .segments
                .iter()
                .find(|s| s.msn == msn)
                .is_some_and(|s| s.complete && i + 1 >= s.parts.len());
            if closed {
                (msn + 1, 0)
            } else {
                (msn, i + 1)
            }
        });
        Step {
            new_parts,
            next,
            live_edge_ms,
            ended: pl.endlist,
        }
    }

    /// Checks for a stall at `now_ms`; returns true when a new stall starts (counted once per
    /// episode, until a new part arrives).
    pub fn tick(&mut self, now_ms: f64) -> bool {
        let Some(t) = self.last_new_at_ms else {
            return false;
        };
        if !self.stalled && now_ms - t > 3.0 * self.part_target_s * 1000.0 {
            self.stalled = true;
            self.stalls += 1;
            return true;
        }
        false
    }

    pub fn part_target_s(&self) -> f64 {
        self.part_target_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIVE: &str = "\
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
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.2.m4s\"
";

    const T0: i64 = 1_735_689_600_000;

    #[test]
    fn dates() {
        assert_eq!(parse_date_time_ms("2025-01-01T00:00:00.000Z"), Some(T0));
        assert_eq!(
            parse_date_time_ms("2025-01-01T00:00:02.5Z"),
            Some(T0 + 2500)
        );
        assert_eq!(parse_date_time_ms("2025-01-01T01:00:00+01:00"), Some(T0));
        assert_eq!(parse_date_time_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_date_time_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        assert_eq!(parse_date_time_ms("2025-13-01T00:00:00Z"), None);
        assert_eq!(parse_date_time_ms("yesterday"), None);
    }

    #[test]
    fn parses_a_live_playlist() {
        let pl = parse_media(LIVE).unwrap();
        assert_eq!(pl.part_target_s, Some(0.5));
        assert!(pl.can_block_reload);
        assert_eq!(pl.map_uri.as_deref(), Some("init.mp4"));
        assert_eq!(pl.segments.len(), 2);
        assert!(pl.segments[0].complete);
        assert!(!pl.segments[1].complete);
        assert_eq!(pl.segments[1].msn, 1);
        assert_eq!(pl.segments[1].parts[1].uri, "1.1.m4s");
        assert_eq!(pl.segments[1].pdt_ms, Some(T0 + 2000));
        assert!(!pl.endlist);
    }

    #[test]
    fn master() {
        let m = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"a,b\"\nb1/index.m3u8\n";
        assert_eq!(first_variant(m).unwrap().as_deref(), Some("b1/index.m3u8"));
        assert_eq!(first_variant(LIVE), Ok(None));
        assert_eq!(first_variant("<html>"), Err(HlsError::NotPlaylist));
        assert_eq!(
            first_variant("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"),
            Err(HlsError::NoVariant)
        );
    }

    #[test]
    fn follows_the_live_edge_part_by_part() {
        let mut f = Follower::new();
        let s = f.on_playlist(&parse_media(LIVE).unwrap(), 0.0);
        // Starts at the newest part only.
        assert_eq!(s.new_parts.len(), 1);
        assert_eq!(s.new_parts[0].uri, "1.1.m4s");
        assert_eq!(s.new_parts[0].end_ms, Some(T0 + 3000));
        assert_eq!(s.live_edge_ms, Some(T0 + 3000));
        assert_eq!(s.next, Some((1, 2)));

        // Two more parts: 1.2 and 1.3 arrive; the segment is not yet closed.
        let more = LIVE.replace(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.2.m4s\"\n",
            "#EXT-X-PART:DURATION=0.5,URI=\"1.2.m4s\"\n#EXT-X-PART:DURATION=0.5,URI=\"1.3.m4s\"\n",
        );
        let s = f.on_playlist(&parse_media(&more).unwrap(), 500.0);
        let uris: Vec<_> = s.new_parts.iter().map(|p| p.uri.as_str()).collect();
        assert_eq!(uris, ["1.2.m4s", "1.3.m4s"]);
        assert_eq!(s.next, Some((1, 4)));

        // Segment 1 closes, 2.0 appears: next is (2, 1).
        let closed = format!(
            "{more}#EXTINF:2.0,\n1.m4s\n#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:04.000Z\n#EXT-X-PART:DURATION=0.5,URI=\"2.0.m4s\",INDEPENDENT=YES\n"
        );
        let s = f.on_playlist(&parse_media(&closed).unwrap(), 1000.0);
        assert_eq!(s.new_parts.len(), 1);
        assert_eq!(s.new_parts[0].uri, "2.0.m4s");
        assert_eq!(s.next, Some((2, 1)));

        // Same playlist again: nothing new.
        let s = f.on_playlist(&parse_media(&closed).unwrap(), 1200.0);
        assert!(s.new_parts.is_empty());
        assert_eq!(s.next, Some((2, 1)));
    }

    #[test]
    fn closed_segment_without_a_following_part_moves_to_the_next_msn() {
        let text = LIVE.replace(
            "#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:02.000Z\n#EXT-X-PART:DURATION=0.5,URI=\"1.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.5,URI=\"1.1.m4s\"\n",
            "",
        );
        let mut f = Follower::new();
        let s = f.on_playlist(&parse_media(&text).unwrap(), 0.0);
        assert_eq!(s.new_parts[0].uri, "0.3.m4s");
        assert_eq!(s.next, Some((1, 0)));
    }

    #[test]
    fn stalls_are_counted_once_per_episode() {
        let mut f = Follower::new();
        assert!(!f.tick(10_000.0), "no stall before the first playlist");
        let pl = parse_media(LIVE).unwrap();
        f.on_playlist(&pl, 0.0);
        assert!(!f.tick(1400.0));
        assert!(f.tick(1600.0), "3 × 0.5 s without a part");
        assert!(!f.tick(5000.0));
        assert_eq!(f.stalls, 1);
        // A new part ends the episode; the next gap is a second stall.
        let more = LIVE.replace(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.2.m4s\"",
            "#EXT-X-PART:DURATION=0.5,URI=\"1.2.m4s\"",
        );
        f.on_playlist(&parse_media(&more).unwrap(), 6000.0);
        assert!(!f.tick(7000.0));
        assert!(f.tick(7600.0));
        assert_eq!(f.stalls, 2);
    }

    #[test]
    fn endlist_and_errors() {
        let vod = format!("{LIVE}#EXT-X-ENDLIST\n");
        assert!(
            Follower::new()
                .on_playlist(&parse_media(&vod).unwrap(), 0.0)
                .ended
        );
        assert_eq!(parse_media("nope"), Err(HlsError::NotPlaylist));
        assert!(matches!(
            parse_media("#EXTM3U\n#EXT-X-PART:URI=\"a\"\n"),
            Err(HlsError::BadLine(_))
        ));
        assert!(matches!(
            parse_media("#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:later\n"),
            Err(HlsError::BadLine(_))
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in "\\PC{0,300}", cut in 0usize..2000) {
            let _ = parse_media(&s);
            let _ = first_variant(&s);
            let _ = parse_date_time_ms(&s);
            let prefixed = format!("#EXTM3U\n{s}");
            if let Ok(pl) = parse_media(&prefixed) {
                let mut f = Follower::new();
                f.on_playlist(&pl, 0.0);
                f.tick(10_000.0);
            }
            let mut end = cut.min(LIVE.len());
            while !LIVE.is_char_boundary(end) { end -= 1; }
            let _ = parse_media(&LIVE[..end]);
        }
    }
}
