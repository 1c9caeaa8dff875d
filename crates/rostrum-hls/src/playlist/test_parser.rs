//! A small, strict media playlist parser for tests: what the writer renders
//! must read back into the same segments, parts and counters. Unknown tags,
//! misplaced header tags and dangling `EXTINF`s are errors, so a typo in the
//! writer fails a test instead of passing unnoticed.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedPart {
    pub duration: f64,
    pub uri: String,
    pub independent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedSegment {
    pub msn: u64,
    /// Discontinuity sequence number.
    pub dsn: u64,
    pub discontinuity: bool,
    /// `None` for the open segment (parts only).
    pub duration: Option<f64>,
    pub uri: Option<String>,
    /// The `EXT-X-MAP` in force.
    pub map: Option<String>,
    pub program_date_time: Option<String>,
    pub parts: Vec<ParsedPart>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ParsedPlaylist {
    pub version: Option<u64>,
    pub target_duration: Option<u64>,
    pub part_target: Option<f64>,
    pub server_control: BTreeMap<String, String>,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub playlist_type: Option<String>,
    pub segments: Vec<ParsedSegment>,
    pub preload_hint: Option<BTreeMap<String, String>>,
    pub endlist: bool,
}

impl ParsedPlaylist {
    pub fn complete(&self) -> impl Iterator<Item = &ParsedSegment> {
        self.segments.iter().filter(|s| s.uri.is_some())
    }
    pub fn all_parts(&self) -> impl Iterator<Item = (u64, &ParsedPart)> {
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter().map(move |p| (s.msn, p)))
    }
}

/// Splits an attribute list on commas outside quotes; strips quotes.
pub(crate) fn attributes(list: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = list;
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute without '=' in {list:?}"))?;
        let name = &rest[..eq];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!("bad attribute name {name:?}"));
        }
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let close = q
                .find('"')
                .ok_or_else(|| format!("unterminated quote in {list:?}"))?;
            (q[..close].to_owned(), &q[close + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        if out.insert(name.to_owned(), value).is_some() {
            return Err(format!("duplicate attribute {name}"));
        }
        rest = match next.strip_prefix(',') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return Err(format!("trailing comma in {list:?}")),
            None if next.is_empty() => "",
            None => return Err(format!("junk after value in {list:?}")),
        };
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad {what}: {s:?}"))
}

pub(crate) fn parse(text: &str) -> Result<ParsedPlaylist, String> {
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("first line must be #EXTM3U".into());
    }
    if !text.ends_with('\n') {
        return Err("playlist must end with a newline".into());
    }
    let mut pl = ParsedPlaylist::default();
    let mut in_body = false;
    let mut map: Option<String> = None;
    let mut disc_count = 0u64;
    // Tags applying to the next segment.
    let mut discontinuity = false;
    let mut pdt = None;
    let mut parts = Vec::new();
    let mut extinf: Option<f64> = None;
    let mut pending_tags = false;

    for line in lines {
        if line.is_empty() {
            return Err("empty line".into());
        }
        let Some(tag) = line.strip_prefix('#') else {
            let duration = extinf
                .take()
                .ok_or_else(|| format!("URI {line:?} without EXTINF"))?;
            let msn = pl.media_sequence + pl.segments.len() as u64;
            pl.segments.push(ParsedSegment {
                msn,
                dsn: pl.discontinuity_sequence + disc_count,
                discontinuity: std::mem::take(&mut discontinuity),
                duration: Some(duration),
                uri: Some(line.to_owned()),
                map: map.clone(),
                program_date_time: pdt.take(),
                parts: std::mem::take(&mut parts),
            });
            pending_tags = false;
            continue;
        };
        if pl.endlist {
            return Err(format!("{line:?} after EXT-X-ENDLIST"));
        }
        let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
        let header = |in_body: bool| {
            if in_body {
                Err(format!("header tag {name} after a segment"))
            } else {
                Ok(())
            }
        };
        if extinf.is_some() {
            return Err(format!("{name} between EXTINF and its URI"));
        }
        match name {
            "EXT-X-VERSION" => {
                header(in_body)?;
                pl.version = Some(num(value, name)?);
            }
            "EXT-X-TARGETDURATION" => {
                header(in_body)?;
                pl.target_duration = Some(num(value, name)?);
            }
            "EXT-X-SERVER-CONTROL" => {
                header(in_body)?;
                pl.server_control = attributes(value)?;
            }
            "EXT-X-PART-INF" => {
                header(in_body)?;
                let a = attributes(value)?;
                pl.part_target = Some(num(
                    a.get("PART-TARGET").ok_or("PART-TARGET missing")?,
                    "PART-TARGET",
                )?);
            }
            "EXT-X-MEDIA-SEQUENCE" => {
                header(in_body)?;
                pl.media_sequence = num(value, name)?;
            }
            "EXT-X-DISCONTINUITY-SEQUENCE" => {
                header(in_body)?;
                pl.discontinuity_sequence = num(value, name)?;
            }
            "EXT-X-PLAYLIST-TYPE" => {
                header(in_body)?;
                pl.playlist_type = Some(value.to_owned());
            }
            "EXT-X-DISCONTINUITY" => {
                if !parts.is_empty() {
                    return Err("EXT-X-DISCONTINUITY after the segment's first part".into());
                }
                in_body = true;
                discontinuity = true;
                disc_count += 1;
                pending_tags = true;
            }
            "EXT-X-MAP" => {
                if !parts.is_empty() {
                    return Err("EXT-X-MAP after the segment's first part".into());
                }
                in_body = true;
                map = Some(
                    attributes(value)?
                        .remove("URI")
                        .ok_or("EXT-X-MAP without URI")?,
                );
                pending_tags = true;
            }
            "EXT-X-PROGRAM-DATE-TIME" => {
                if !parts.is_empty() {
                    return Err("EXT-X-PROGRAM-DATE-TIME after the segment's first part".into());
                }
                in_body = true;
                pdt = Some(value.to_owned());
                pending_tags = true;
            }
            "EXT-X-PART" => {
                in_body = true;
                let a = attributes(value)?;
                let independent = match a.get("INDEPENDENT").map(String::as_str) {
                    None => false,
                    Some("YES") => true,
                    Some(v) => return Err(format!("INDEPENDENT={v}")),
                };
                parts.push(ParsedPart {
                    duration: num(
                        a.get("DURATION").ok_or("part DURATION missing")?,
                        "DURATION",
                    )?,
                    uri: a.get("URI").ok_or("part URI missing")?.clone(),
                    independent,
                });
            }
            "EXTINF" => {
                in_body = true;
                let (d, _title) = value.split_once(',').ok_or("EXTINF without comma")?;
                extinf = Some(num(d, "EXTINF")?);
            }
            "EXT-X-PRELOAD-HINT" => {
                if pl.preload_hint.is_some() {
                    return Err("two preload hints".into());
                }
                pl.preload_hint = Some(attributes(value)?);
            }
            "EXT-X-ENDLIST" => pl.endlist = true,
            other => return Err(format!("unknown tag {other}")),
        }
    }
    if extinf.is_some() {
        return Err("EXTINF at the end without URI".into());
    }
    if !parts.is_empty() {
        let msn = pl.media_sequence + pl.segments.len() as u64;
        pl.segments.push(ParsedSegment {
            msn,
            dsn: pl.discontinuity_sequence + disc_count,
            discontinuity,
            duration: None,
            uri: None,
            map: map.clone(),
            program_date_time: pdt,
            parts,
        });
    } else if pending_tags {
        return Err("segment tags with no segment after them".into());
    }
    if pl.endlist && pl.preload_hint.is_some() {
        return Err("EXT-X-PRELOAD-HINT with EXT-X-ENDLIST".into());
    }
    Ok(pl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_lists_with_quoted_commas() {
        let a = attributes("A=1,B=\"x,y\",C=YES").unwrap();
        assert_eq!(a["B"], "x,y");
        assert_eq!(a.len(), 3);
        assert!(attributes("A=1,").is_err());
        assert!(attributes("A=\"x").is_err());
        assert!(attributes("A=1,A=2").is_err());
    }

    #[test]
    fn rejects_what_the_writer_must_never_produce() {
        assert!(parse("#EXTM3U\n#EXTINF:1.0,\n").is_err());
        assert!(parse("#EXTM3U\n#EXTINF:1.0,\na.m4s\n#EXT-X-TARGETDURATION:2\n").is_err());
        assert!(parse("#EXTM3U\n#EXT-X-FOO\n").is_err());
        assert!(
            parse("#EXTM3U\n#EXT-X-PART:DURATION=1,URI=\"a\"\n#EXT-X-MAP:URI=\"i\"\n").is_err()
        );
        assert!(
            parse("#EXTM3U\n#EXT-X-ENDLIST\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a\"\n").is_err()
        );
    }
}
