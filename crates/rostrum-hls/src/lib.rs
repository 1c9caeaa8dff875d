//! Rostrum HLS packaging, sans-IO: no files, sockets, clocks or tasks. Bytes
//! and wall-clock readings come in as arguments; playlists, storage keys and
//! decisions come out.
//!
//! - [`fmp4`]: splits the mixer's fragmented-MP4 byte stream into the init
//!   segment and fragments, with their timing and keyframe flags.
//! - [`parts`]: groups fragments into parts near the part target (for
//!   encoders that fragment every frame).
//! - [`playlist`]: groups fragments (parts) into segments and renders the
//!   LL-HLS live playlist, the VOD recording playlist and the multivariant playlist.
//! - [`blocking`]: answers a blocking playlist reload (`_HLS_msn`/`_HLS_part`).
//!
//! Time: durations are [`std::time::Duration`] everywhere (exact integer
//! nanoseconds, so summing thousands of parts does not drift as `f64` seconds
//! would); wall-clock instants are milliseconds since the Unix epoch (`u64`).

pub mod blocking;
pub mod fmp4;
pub mod parts;
pub mod playlist;

#[cfg(test)]
mod pipeline_tests;
