//! The node ↔ mixer contract. The node starts one `rostrum-mixer` child per broadcast and talks to
//! it with JSON lines: [`Command`]s on the child's stdin, [`Event`]s on its stderr (each prefixed
//! with [`EVENT_PREFIX`], so GStreamer's own log lines can share the pipe and be kept as the crash
//! tail), and the programme as fragmented MP4 on its stdout.
//!
//! An input is one producer (one RTP stream). Its life is two steps because the mixer owns its
//! receiving socket (ports are allocated at run time, never fixed): [`Command::Bind`] → the
//! mixer binds `127.0.0.1:0` and answers [`Event::Bound`] with the port → the node points a plain
//! consumer at that port and sends [`Command::Add`] with what it learned (payload type, SSRC,
//! codec). The mixer sends its RTCP (receiver reports, PLI/FIR) from that same socket to the
//! node's plain RTCP address given on its command line.
//!
//! Participants ("seats") are separate from inputs: a seat exists from join to leave, whether or
//! not its camera is on, so the grid has a tile (placeholder or video) for everyone on stage.

use serde::{Deserialize, Serialize};

/// Prefix of an event line on the mixer's stderr.
pub const EVENT_PREFIX: &str = "@rostrum ";

/// Longest command or event line either side accepts.
pub const MAX_LINE: usize = 16 * 1024;

/// Media kind of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

/// Node → mixer, one JSON object per stdin line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Someone is on stage; seats keep the order they were added in (stage order).
    Seat { participant: String, name: String },
    /// They left: their tile goes and the grid re-flows.
    Unseat { participant: String },
    /// The participant turned the camera off (`true`) or on again: off shows the placeholder at
    /// once instead of waiting for the stream to go quiet.
    VideoOff { participant: String, off: bool },
    /// Open a receiving socket for a new input; answered by [`Event::Bound`].
    Bind { input: String },
    /// Start decoding a bound input.
    Add(InputSpec),
    /// Stop decoding an input and close its socket.
    Remove { input: String },
    /// End of the broadcast: finish the current fragment, flush, exit 0.
    Stop,
}

/// What the mixer needs to depacketise and decode one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub input: String,
    /// The seat this input belongs to (its tile, its audio).
    pub participant: String,
    pub kind: MediaKind,
    /// Encoding name as SDP spells it: `VP8`, `H264`, `opus`.
    pub codec: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    #[serde(default)]
    pub channels: Option<u8>,
    pub ssrc: u32,
    /// `a=fmtp` parameters, empty when none.
    #[serde(default)]
    pub fmtp: String,
}

/// Whether a seat's tile shows video or the placeholder, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TileState {
    /// Decoded frames are arriving.
    Live,
    /// Camera off (the participant said so).
    Off,
    /// No decodable frame lately: not arrived yet, stalled, or corrupt.
    Missing,
}

/// Mixer → node, one JSON object per stderr line after [`EVENT_PREFIX`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The pipeline is playing; commands are accepted from now on (earlier ones are queued).
    Ready,
    /// The socket for `input` listens on `127.0.0.1:port`.
    Bound { input: String, port: u16 },
    /// A seat's tile changed between video and placeholder.
    Tile {
        participant: String,
        state: TileState,
    },
    /// The grid now has this many tiles (0 = the "stage empty" slate).
    Layout { tiles: usize },
    /// A command was refused or an input failed; the programme goes on.
    Warning { message: String },
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("not a mixer message: {0}")]
    Json(#[from] serde_json::Error),
}

impl Command {
    /// One stdin line, newline included.
    pub fn to_line(&self) -> String {
        // A command is plain data: serialising it cannot fail.
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses one stdin line (without or with its newline).
    pub fn parse(line: &str) -> Result<Self, LineError> {
        if line.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
        Ok(serde_json::from_str(line.trim_end())?)
    }
}

impl Event {
    /// One stderr line, prefix and newline included.
    pub fn to_line(&self) -> String {
        let mut s = String::from(EVENT_PREFIX);
        s.push_str(&serde_json::to_string(self).unwrap_or_default());
        s.push('\n');
        s
    }

    /// `Ok(None)` for a line that is not an event (a log line); an error for an event line that
    /// does not parse.
    pub fn parse(line: &str) -> Result<Option<Self>, LineError> {
        let Some(json) = line.strip_prefix(EVENT_PREFIX) else {
            return Ok(None);
        };
        if json.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
        Ok(Some(serde_json::from_str(json.trim_end())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands_round_trip_and_look_like_the_docs() {
        let add = Command::Add(InputSpec {
            input: "pr-1".into(),
            participant: "p-1".into(),
            kind: MediaKind::Video,
            codec: "VP8".into(),
            payload_type: 96,
            clock_rate: 90_000,
            channels: None,
            ssrc: 42,
            fmtp: String::new(),
        });
        let line = add.to_line();
        assert!(line.starts_with(r#"{"op":"add","input":"pr-1","#), "{line}");
        assert_eq!(Command::parse(&line).unwrap(), add);
        let seat = Command::parse(r#"{"op":"seat","participant":"p-1","name":"Ada"}"#).unwrap();
        assert_eq!(
            seat,
            Command::Seat {
                participant: "p-1".into(),
                name: "Ada".into()
            }
        );
        assert_eq!(Command::parse(r#"{"op":"stop"}"#).unwrap(), Command::Stop);
    }

    #[test]
    fn bad_commands_are_errors() {
        for bad in [
            "",
            "null",
            "[]",
            r#"{"op":"launch"}"#,
            r#"{"op":"seat","participant":"p"}"#,
            r#"{"op":"seat","participant":"p","name":"n","x":1}"#,
        ] {
            assert!(Command::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Command::parse(&"x".repeat(MAX_LINE + 1)),
            Err(LineError::TooLong)
        ));
    }

    #[test]
    fn events_are_told_apart_from_log_lines() {
        let ev = Event::Bound {
            input: "pr-1".into(),
            port: 40000,
        };
        assert_eq!(Event::parse(&ev.to_line()).unwrap(), Some(ev));
        assert_eq!(Event::parse("0:00:01.2 WARN vp8dec ...").unwrap(), None);
        assert!(Event::parse("@rostrum {not json").is_err());
    }

    proptest! {
        #[test]
        fn any_line_parses_or_errors_without_panicking(s in "\\PC{0,300}") {
            let _ = Command::parse(&s);
            let _ = Event::parse(&s);
            let _ = Event::parse(&format!("{EVENT_PREFIX}{s}"));
        }
    }
}
