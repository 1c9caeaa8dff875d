//! Blocking playlist reload (RFC 8216bis 6.2.5.2): a client asks for the
//! playlist with `_HLS_msn=M[&_HLS_part=P]` and the server holds the request
//! until that segment (or part) exists.
//!
//! Only the decision lives here; holding requests and waking them after each
//! [`crate::playlist::MediaPlaylist::push_part`] is the caller's (the HTTP
//! side keeps the waiters, re-runs [`decide`] on every playlist change and
//! answers 503 after [`hold_limit`]). The rules, from the spec:
//!
//! - `_HLS_part` without `_HLS_msn`, or a value that is not a decimal integer: 400.
//! - Once the playlist has `EXT-X-ENDLIST`, the directives are ignored: ready.
//! - `_HLS_msn` more than two beyond the last segment's MSN: 400. The "last
//!   Media Segment" is the last complete one (the open segment has no URI
//!   yet); with none, as if it were MSN −1.
//! - `_HLS_part` more than the Advance Part Limit (3 / PART-TARGET parts below
//!   a 1 s part target, else 3 parts) beyond the last part: 400.
//! - `_HLS_msn` alone waits for a complete segment M (a player not in
//!   low-latency mode wants whole segments; answering on M's first part would
//!   have it ask again at once, in a loop).
//! - `_HLS_msn` with `_HLS_part` waits for part P of segment M "or later"; a
//!   part index past the end of a complete segment means part 0 of the next one.

use std::time::Duration;

use crate::playlist::LiveEdge;

/// A parsed blocking reload request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadRequest {
    /// `_HLS_msn`.
    pub msn: u64,
    /// `_HLS_part`.
    pub part: Option<u64>,
}

/// A malformed reload query (answer 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadQueryError {
    /// The spec requires `_HLS_msn` whenever `_HLS_part` is given.
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
    /// Not a decimal integer that fits in 64 bits.
    #[error("{name} must be a decimal integer, got {value:?}")]
    Malformed {
        /// `_HLS_msn` or `_HLS_part`.
        name: &'static str,
        /// The value (shortened to 32 characters).
        value: String,
    },
    /// The same directive twice: ambiguous.
    #[error("{name} is given more than once")]
    Repeated {
        /// `_HLS_msn` or `_HLS_part`.
        name: &'static str,
    },
}

/// Why a request is refused with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReload {
    /// The query itself is malformed.
    #[error(transparent)]
    Query(#[from] ReloadQueryError),
    /// `_HLS_msn` is more than two beyond the last segment.
    #[error("_HLS_msn={msn} is more than two segments beyond the last segment ({last:?})")]
    MsnTooFarAhead {
        /// Requested MSN.
        msn: u64,
        /// MSN of the last complete segment.
        last: Option<u64>,
    },
    /// `_HLS_part` is beyond the Advance Part Limit.
    #[error("_HLS_msn={msn}&_HLS_part={part} is {ahead} parts past the last part, over the Advance Part Limit")]
    PartTooFarAhead {
        /// Requested MSN.
        msn: u64,
        /// Requested part.
        part: u64,
        /// At least this many parts past the newest one.
        ahead: u64,
    },
}

/// What to do with a playlist request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadDecision {
    /// Render and send the playlist now.
    Ready,
    /// Hold the request; decide again when the playlist changes.
    Wait,
    /// Answer 400 Bad Request.
    BadRequest(BadReload),
}

/// Parses the `_HLS_msn`/`_HLS_part` values of a playlist query string
/// (other parameters, such as a viewer token or `_HLS_skip`, are ignored:
/// we do not offer delta updates, and the spec says to ignore `_HLS_skip` then).
/// `Ok(None)` means an ordinary, non-blocking request. Never panics.
pub fn parse_reload_query(query: &str) -> Result<Option<ReloadRequest>, ReloadQueryError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut msn = None;
    let mut part = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "_HLS_msn" => &mut msn,
            "_HLS_part" => &mut part,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(ReloadQueryError::Repeated { name: name_of(key) });
        }
    }
    parse_reload_params(msn, part)
}

/// Like [`parse_reload_query`], from already separated values (for a web
/// framework that parsed the query). Never panics.
pub fn parse_reload_params(
    msn: Option<&str>,
    part: Option<&str>,
) -> Result<Option<ReloadRequest>, ReloadQueryError> {
    match (msn, part) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ReloadQueryError::PartWithoutMsn),
        (Some(m), p) => Ok(Some(ReloadRequest {
            msn: decimal("_HLS_msn", m)?,
            part: p.map(|p| decimal("_HLS_part", p)).transpose()?,
        })),
    }
}

fn name_of(key: &str) -> &'static str {
    if key == "_HLS_msn" {
        "_HLS_msn"
    } else {
        "_HLS_part"
    }
}

/// A decimal-integer (RFC 8216 4.2): ASCII digits only, no sign, within u64.
fn decimal(name: &'static str, value: &str) -> Result<u64, ReloadQueryError> {
    let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| value.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| ReloadQueryError::Malformed {
            name,
            value: value.chars().take(32).collect(),
        })
}

/// Decides a blocking reload request against the playlist's live edge.
pub fn decide(edge: &LiveEdge, request: &ReloadRequest) -> ReloadDecision {
    if edge.ended {
        return ReloadDecision::Ready;
    }
    // "greater than the MSN of the last Media Segment plus two"; with no
    // segment yet, the last is taken as MSN −1 (the first segment will be 0).
    let limit = edge.last_msn.map_or(1, |m| m.saturating_add(2));
    if request.msn > limit {
        return ReloadDecision::BadRequest(BadReload::MsnTooFarAhead {
            msn: request.msn,
            last: edge.last_msn,
        });
    }
    let Some(part) = request.part else {
        return if edge.last_msn.is_some_and(|m| m >= request.msn) {
            ReloadDecision::Ready
        } else {
            ReloadDecision::Wait
        };
    };
    let ahead = parts_ahead(edge, request.msn, part);
    if exceeds_advance_part_limit(ahead, edge.part_target) {
        return ReloadDecision::BadRequest(BadReload::PartTooFarAhead {
            msn: request.msn,
            part,
            ahead,
        });
    }
    // Lexicographic "(M, P) or later": a part past the end of a complete
    // segment M compares above every part of M, so it waits for M+1's part 0.
    let ready = edge
        .last_part
        .is_some_and(|lp| (lp.msn, u64::from(lp.index)) >= (request.msn, part));
    if ready {
        ReloadDecision::Ready
    } else {
        ReloadDecision::Wait
    }
}

/// Parses and decides in one step; a request without directives is `Ready`.
pub fn decide_query(edge: &LiveEdge, query: &str) -> ReloadDecision {
    match parse_reload_query(query) {
        Ok(None) => ReloadDecision::Ready,
        Ok(Some(req)) => decide(edge, &req),
        Err(e) => ReloadDecision::BadRequest(e.into()),
    }
}

/// How long to hold a request before answering 503 (the spec's "more than
/// three Target Durations"), for an `EXT-X-TARGETDURATION` in seconds.
pub fn hold_limit(target_duration_secs: u64) -> Duration {
    Duration::from_secs(target_duration_secs.saturating_mul(3))
}

/// A lower bound on how many parts (M, P) lies beyond the newest part.
fn parts_ahead(edge: &LiveEdge, msn: u64, part: u64) -> u64 {
    match edge.last_part {
        None => part.saturating_add(1),
        Some(lp) if msn < lp.msn => 0,
        Some(lp) if msn == lp.msn => {
            let last = u64::from(lp.index);
            if part <= last {
                0
            } else if edge.last_part_open {
                part - last
            } else {
                // Past the end of a complete segment: part 0 of the next one.
                1
            }
        }
        // A later segment: at least its parts 0..=P.
        Some(_) => part.saturating_add(1),
    }
}

/// The Advance Part Limit: 3 / PART-TARGET parts below a 1 s part target, else 3.
fn exceeds_advance_part_limit(ahead: u64, part_target: Duration) -> bool {
    if part_target >= Duration::from_secs(1) || part_target.is_zero() {
        ahead > 3
    } else {
        // ahead > 3 / PT  ⇔  ahead · PT > 3 s, exactly, in nanoseconds.
        u128::from(ahead) * part_target.as_nanos() > 3_000_000_000
    }
}

#[cfg(test)]
mod tests;
