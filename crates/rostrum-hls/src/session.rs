//! One broadcast rendition as an async actor: the mixer's fMP4 bytes in,
//! LL-HLS out (from memory) and everything written to the [`HlsStore`].
//!
//! [`HlsSession::spawn`] starts one tokio task that owns the sans-IO pieces
//! ([`Fmp4Parser`](crate::fmp4::Fmp4Parser) →
//! [`PartAssembler`](crate::parts::PartAssembler) →
//! [`MediaPlaylist`](crate::playlist::MediaPlaylist)) and returns an
//! [`HlsHandle`] (cloneable) for the encoder side ([`HlsHandle::feed`],
//! [`HlsHandle::encoder_restarted`], [`HlsHandle::end`]) and the HTTP side
//! ([`HlsHandle::live_playlist`], [`HlsHandle::media`], [`HlsHandle::master_playlist`]).
//!
//! The HTTP side never goes through the actor: the live playlist is a
//! `tokio::sync::watch` of [`LiveSnapshot`]s, and recent media is in a shared
//! memory cache, so a busy or store-bound actor cannot delay a viewer.
//!
//! Storage order (design: "a segment or part is written before the playlist
//! that names it"): for every part the actor plans its place, queues the part
//! (and the segment it closed) to a single FIFO store writer, waits for the
//! writer's acknowledgement, and only then pushes the part into the playlist
//! and publishes. Playlists written to the store (classic `index.m3u8`,
//! `master.m3u8`, `vod.m3u8`) go through the same FIFO, behind the media they
//! name, and are skipped if the writer gave up on anything they name.
//!
//! A store that fails or hangs must not stall live viewers: the writer retries
//! a few times ([`HlsSessionOptions::write_attempts`]) and then gives up on the
//! object (counted in [`HlsMetrics::store_lost`]); the actor waits at most
//! [`HlsSessionOptions::store_wait`] for an acknowledgement, and while the store
//! is unhealthy it does not wait at all. The part is then published from memory
//! anyway (counted in [`HlsMetrics::published_before_stored`]): the origin node
//! serves it, only the store's copy lags or is missing.

mod actor;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::blocking::{decide, hold_limit, BadReload, ReloadDecision, ReloadRequest};
use crate::fmp4::Fmp4ParserOptions;
use crate::playlist::{LiveEdge, MediaPlaylistOptions, PlaylistError, Resolution};
use crate::store::{is_valid_name, HlsObject, HlsStore, StoreError};

/// What a session needs to know; every field has a working default.
#[derive(Debug, Clone)]
pub struct HlsSessionOptions {
    /// Segment/part targets and the live window.
    pub playlist: MediaPlaylistOptions,
    /// Parser memory limits.
    pub parser: Fmp4ParserOptions,
    /// `CODECS` for the multivariant playlist when it cannot be read from the
    /// init segment (H.264 and AAC can). Default `avc1.640028,mp4a.40.2`.
    pub codecs: String,
    /// `RESOLUTION` when the init segment has no video sample entry size.
    pub resolution: Option<Resolution>,
    /// `BANDWIDTH` (peak bits per second) in the multivariant playlist.
    pub bandwidth: u64,
    /// Longest wait for the store's acknowledgement of a part before it is
    /// published from memory anyway (default: 0.5 s).
    pub store_wait: Duration,
    /// Attempts per object before the writer gives up on it (default 3).
    pub write_attempts: u32,
    /// Time limit of one put (default 5 s).
    pub write_timeout: Duration,
    /// Writes queued at most; beyond, new objects are dropped and counted (default 256).
    pub write_queue: usize,
    /// Encoder chunks queued before [`HlsHandle::feed`] waits (default 64).
    pub feed_queue: usize,
    /// Complete segments kept in memory before the live window's first one
    /// (default 2), for players that read an older playlist.
    pub cache_behind: u64,
    /// Longest [`HlsHandle::end`] waits for the store to confirm the
    /// recording (default 30 s); the writes go on in the background after.
    pub end_wait: Duration,
}

impl Default for HlsSessionOptions {
    fn default() -> Self {
        Self {
            playlist: MediaPlaylistOptions::default(),
            parser: Fmp4ParserOptions::default(),
            codecs: "avc1.640028,mp4a.40.2".to_owned(),
            resolution: None,
            bandwidth: 3_000_000,
            store_wait: Duration::from_millis(500),
            write_attempts: 3,
            write_timeout: Duration::from_secs(5),
            write_queue: 256,
            feed_queue: 64,
            cache_behind: 2,
            end_wait: Duration::from_secs(30),
        }
    }
}

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    /// A blocking reload the spec says to refuse (HTTP 400).
    #[error(transparent)]
    BadRequest(#[from] BadReload),
    /// The requested part or segment did not appear within the hold limit (HTTP 503).
    #[error("the requested part did not appear within {0:?}")]
    HoldTimeout(Duration),
    /// The session has ended or stopped: no more input is accepted.
    #[error("the HLS session has stopped")]
    Closed,
    /// Nothing to serve yet (no init segment has arrived).
    #[error("the broadcast has not started yet")]
    NotStarted,
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Playlist options or state.
    #[error(transparent)]
    Playlist(#[from] PlaylistError),
    /// The room or rendition name cannot be a storage key.
    #[error("invalid room or rendition name {0:?}")]
    InvalidName(String),
    /// Some objects could not be stored, so the VOD playlist was not written.
    #[error("{0} objects could not be stored; the VOD playlist was not written")]
    Incomplete(u64),
    /// The store had not confirmed the recording within [`HlsSessionOptions::end_wait`].
    #[error(
        "the store has not confirmed the recording within {0:?}; writing goes on in the background"
    )]
    EndTimeout(Duration),
}

/// The live playlist as last published.
#[derive(Debug, Clone)]
pub struct LiveSnapshot {
    /// The LL-HLS `index.m3u8` text.
    pub playlist: Arc<str>,
    /// Where its newest data is (for blocking reloads).
    pub edge: LiveEdge,
    /// `EXT-X-TARGETDURATION`.
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
}

/// Counters; see [`HlsHandle::metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HlsMetrics {
    /// Parts published in the live playlist.
    pub parts_published: u64,
    /// Parts the store acknowledged.
    pub parts_written: u64,
    /// Segments the store acknowledged.
    pub segments_written: u64,
    /// Playlists the store acknowledged.
    pub playlists_written: u64,
    /// Failed put attempts (each retry counts).
    pub store_errors: u64,
    /// Objects given up on (all attempts failed, or the write queue was full).
    pub store_lost: u64,
    /// Parts published before the store acknowledged them.
    pub published_before_stored: u64,
    /// Encoder streams the parser rejected.
    pub parser_errors: u64,
    /// `EXT-X-DISCONTINUITY`s inserted.
    pub discontinuities: u64,
    /// Fragments whose decode time went backwards without a restart.
    pub timestamp_regressions: u64,
    /// Time since the last part was published (`None` before the first):
    /// what a supervisor watches to restart a stalled encoder.
    pub last_part_age: Option<Duration>,
    /// The store's last write succeeded (or nothing was written yet).
    pub store_healthy: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub parts_published: AtomicU64,
    pub parts_written: AtomicU64,
    pub segments_written: AtomicU64,
    pub playlists_written: AtomicU64,
    pub store_errors: AtomicU64,
    pub store_lost: AtomicU64,
    pub published_before_stored: AtomicU64,
    pub parser_errors: AtomicU64,
    pub discontinuities: AtomicU64,
    pub timestamp_regressions: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Recent media by file name, plus the init segments.
#[derive(Debug, Default)]
pub(crate) struct MediaCache {
    pub objects: HashMap<String, Bytes>,
}

/// What the actor and every handle share.
pub(crate) struct Shared {
    pub room: String,
    pub rendition: String,
    pub store: HlsStore,
    pub cache: Mutex<MediaCache>,
    pub master: Mutex<Option<String>>,
    pub counters: Counters,
    pub last_part: Mutex<Option<Instant>>,
    pub store_healthy: AtomicBool,
    /// Test hook: called with every live playlist just before it is published.
    pub on_publish: Option<PublishHook>,
}

pub(crate) type PublishHook = Box<dyn Fn(&str) + Send + Sync>;

pub(crate) enum Command {
    Feed(Bytes),
    Restart,
    End(oneshot::Sender<Result<(), HlsError>>),
}

/// Starts sessions. See the [module docs](self).
pub struct HlsSession;

impl HlsSession {
    /// Spawns the actor for one rendition of one room's broadcast on the
    /// current tokio runtime. `room` and `rendition` become storage key
    /// segments: 1–128 of `[A-Za-z0-9_.-]`.
    pub fn spawn(
        room: &str,
        rendition: &str,
        store: HlsStore,
        opts: HlsSessionOptions,
    ) -> Result<HlsHandle, HlsError> {
        Self::spawn_inner(room, rendition, store, opts, None)
    }

    #[cfg(test)]
    pub(crate) fn spawn_with_hook(
        room: &str,
        rendition: &str,
        store: HlsStore,
        opts: HlsSessionOptions,
        hook: PublishHook,
    ) -> Result<HlsHandle, HlsError> {
        Self::spawn_inner(room, rendition, store, opts, Some(hook))
    }

    fn spawn_inner(
        room: &str,
        rendition: &str,
        store: HlsStore,
        opts: HlsSessionOptions,
        hook: Option<PublishHook>,
    ) -> Result<HlsHandle, HlsError> {
        for name in [room, rendition] {
            if !is_valid_name(name) {
                return Err(HlsError::InvalidName(name.to_owned()));
            }
        }
        let playlist = crate::playlist::MediaPlaylist::new(opts.playlist)?;
        let shared = Arc::new(Shared {
            room: room.to_owned(),
            rendition: rendition.to_owned(),
            store,
            cache: Mutex::new(MediaCache::default()),
            master: Mutex::new(None),
            counters: Counters::default(),
            last_part: Mutex::new(None),
            store_healthy: AtomicBool::new(true),
            on_publish: hook,
        });
        let (live_tx, live_rx) = watch::channel(Arc::new(actor::snapshot(&playlist)));
        let (tx, rx) = mpsc::channel(opts.feed_queue.max(1));
        let writer = writer::spawn(shared.clone(), opts.clone());
        let actor = actor::Actor::new(shared.clone(), opts, playlist, live_tx, writer);
        tokio::spawn(actor.run(rx));
        Ok(HlsHandle {
            tx,
            shared,
            live: live_rx,
        })
    }
}

/// The session's handle; clone it freely. Dropping every handle ends the
/// broadcast as [`HlsHandle::end`] would.
#[derive(Clone)]
pub struct HlsHandle {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    live: watch::Receiver<Arc<LiveSnapshot>>,
}

impl std::fmt::Debug for HlsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsHandle")
            .field("room", &self.shared.room)
            .field("rendition", &self.shared.rendition)
            .finish_non_exhaustive()
    }
}

impl HlsHandle {
    /// The room.
    pub fn room(&self) -> &str {
        &self.shared.room
    }

    /// The rendition (its directory under the room).
    pub fn rendition(&self) -> &str {
        &self.shared.rendition
    }

    /// The store it writes to.
    pub fn store(&self) -> &HlsStore {
        &self.shared.store
    }

    /// Encoder output, in the order written (any chunking). Waits when the
    /// actor is behind (bounded queue), so a reader of the encoder's pipe slows down.
    pub async fn feed(&self, bytes: Bytes) -> Result<(), HlsError> {
        self.tx
            .send(Command::Feed(bytes))
            .await
            .map_err(|_| HlsError::Closed)
    }

    /// The encoder was restarted: whatever is buffered of the old stream is
    /// dropped, the segment in progress closes, and the next bytes (starting
    /// with a new init segment) follow an `EXT-X-DISCONTINUITY`.
    pub async fn encoder_restarted(&self) -> Result<(), HlsError> {
        self.tx
            .send(Command::Restart)
            .await
            .map_err(|_| HlsError::Closed)
    }

    /// Ends the broadcast: `EXT-X-ENDLIST` on the live playlist, and the VOD
    /// playlist written to the store. Returns once it is written (or the
    /// store gave up). Idempotent.
    pub async fn end(&self) -> Result<(), HlsError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::End(tx)).await.is_err() {
            // The actor is gone: it already ended.
            return if self.live.borrow().edge.ended {
                Ok(())
            } else {
                Err(HlsError::Closed)
            };
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// The latest live snapshot.
    pub fn snapshot(&self) -> Arc<LiveSnapshot> {
        self.live.borrow().clone()
    }

    /// A receiver of every published live snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LiveSnapshot>> {
        self.live.clone()
    }

    /// Whether `EXT-X-ENDLIST` was published.
    pub fn is_ended(&self) -> bool {
        self.live.borrow().edge.ended
    }

    /// The live LL-HLS playlist. With a blocking reload request, waits until
    /// the requested segment or part exists ([`crate::blocking::decide`]), at
    /// most [`hold_limit`] (three target durations) → [`HlsError::HoldTimeout`];
    /// a request the spec refuses → [`HlsError::BadRequest`].
    pub async fn live_playlist(&self, reload: Option<ReloadRequest>) -> Result<String, HlsError> {
        let mut rx = self.live.clone();
        let Some(request) = reload else {
            return Ok(rx.borrow_and_update().playlist.to_string());
        };
        let limit = hold_limit(rx.borrow().target_duration);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let snap = rx.borrow_and_update().clone();
            match decide(&snap.edge, &request) {
                ReloadDecision::Ready => return Ok(snap.playlist.to_string()),
                ReloadDecision::BadRequest(b) => return Err(HlsError::BadRequest(b)),
                ReloadDecision::Wait => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The actor stopped without ending: nothing more will come.
                Ok(Err(_)) => return Err(HlsError::Closed),
                Err(_) => return Err(HlsError::HoldTimeout(limit)),
            }
        }
    }

    /// `master.m3u8`, once the first init segment has arrived.
    pub fn master_playlist(&self) -> Option<String> {
        lock(&self.shared.master).clone()
    }

    /// An init segment, part or segment (or `vod.m3u8`) by file name: from
    /// memory, else from the store; `None` if the name is not one of the
    /// layout's or the object does not exist. A request for the part the
    /// playlist's `EXT-X-PRELOAD-HINT` names (or another part no more than
    /// one segment ahead) is held until it exists, at most the hold limit
    /// (RFC 8216bis 6.2.6: a hinted resource is requested before it exists).
    pub async fn media(&self, name: &str) -> Option<Bytes> {
        let object = HlsObject::parse(name)?;
        if matches!(object, HlsObject::Master | HlsObject::MediaPlaylist) {
            return None;
        }
        if let Some(b) = self.cached(name) {
            return Some(b);
        }
        if let HlsObject::Part { msn, index } = object {
            if let Some(b) = self.wait_for_part(name, msn, index).await {
                return Some(b);
            }
        }
        match self
            .shared
            .store
            .get(&self.shared.room, &self.shared.rendition, &object)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(room = %self.shared.room, name, error = %e, "store read failed");
                None
            }
        }
    }

    fn cached(&self, name: &str) -> Option<Bytes> {
        lock(&self.shared.cache).objects.get(name).cloned()
    }

    /// Holds a request for a part just ahead of the live edge until it is published.
    async fn wait_for_part(&self, name: &str, msn: u64, index: u32) -> Option<Bytes> {
        let mut rx = self.live.clone();
        let (edge, td) = {
            let s = rx.borrow_and_update();
            (s.edge, s.target_duration)
        };
        let ahead = match edge.last_part {
            _ if edge.ended => false,
            None => msn == 0,
            Some(lp) => (msn, index) > (lp.msn, lp.index) && msn <= lp.msn + 1,
        };
        if !ahead {
            return None;
        }
        let deadline = tokio::time::Instant::now() + hold_limit(td);
        loop {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {
                    if let Some(b) = self.cached(name) {
                        return Some(b);
                    }
                    let edge = rx.borrow_and_update().edge;
                    let passed = edge.ended || edge.last_part.is_some_and(|lp| lp.msn > msn + 1);
                    if passed {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> HlsMetrics {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HlsMetrics {
            parts_published: get(&c.parts_published),
            parts_written: get(&c.parts_written),
            segments_written: get(&c.segments_written),
            playlists_written: get(&c.playlists_written),
            store_errors: get(&c.store_errors),
            store_lost: get(&c.store_lost),
            published_before_stored: get(&c.published_before_stored),
            parser_errors: get(&c.parser_errors),
            discontinuities: get(&c.discontinuities),
            timestamp_regressions: get(&c.timestamp_regressions),
            last_part_age: lock(&self.shared.last_part).map(|t| t.elapsed()),
            store_healthy: self.shared.store_healthy.load(Ordering::Relaxed),
        }
    }
}

/// Locks, ignoring poisoning (the data are plain maps and strings, always consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every URI a playlist names (`URI="…"` attributes and URI lines), except
/// `EXT-X-PRELOAD-HINT`'s, which may name a part that does not exist yet.
pub fn named_uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if line.is_empty() || line.starts_with("#EXT-X-PRELOAD-HINT") {
            continue;
        }
        if line.starts_with('#') {
            if let Some(rest) = line.split("URI=\"").nth(1) {
                out.push(rest.split('"').next().unwrap_or_default().to_owned());
            }
        } else {
            out.push(line.to_owned());
        }
    }
    out
}
