//! Rostrum HLS packaging. The core is sans-IO (no files, sockets, clocks or
//! tasks: bytes and wall-clock readings come in as arguments; playlists,
//! storage keys and decisions come out); three IO modules drive it.
//!
//! - [`fmp4`]: splits the mixer's fragmented-MP4 byte stream into the init
//!   segment and fragments, with their timing and keyframe flags.
//! - [`parts`]: groups fragments into parts near the part target (for
//!   encoders that fragment every frame).
//! - [`playlist`]: groups fragments (parts) into segments and renders the
//!   LL-HLS live playlist, the VOD recording playlist and the multivariant playlist.
//! - [`blocking`]: answers a blocking playlist reload (`_HLS_msn`/`_HLS_part`).
//!
//! IO:
//!
//! - [`store`]: the storage layout over `object_store` (local disk or S3).
//! - [`session`]: one tokio task per broadcast rendition that runs the
//!   pieces above, writes to the store and publishes the live playlist.
//! - [`http`]: the axum origin (live playlists from memory, blocking reloads, media).
//!
//! Time: durations are [`std::time::Duration`] everywhere (exact integer
//! nanoseconds, so summing thousands of parts does not drift as `f64` seconds
//! would); wall-clock instants are milliseconds since the Unix epoch (`u64`).

pub mod blocking;
pub mod fmp4;
pub mod http;
pub mod parts;
pub mod playlist;
pub mod session;
pub mod store;

pub use http::{router, HlsRegistry};
pub use session::{HlsError, HlsHandle, HlsMetrics, HlsSession, HlsSessionOptions, LiveSnapshot};
pub use store::{HlsObject, HlsStore, StoreConfig, StoreError};

#[cfg(test)]
mod pipeline_tests;
