//! The task behind an [`super::HlsHandle`]: parser → assembler → playlist,
//! with the write-then-publish order of the [module docs](super).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};

use super::writer::Writer;
use super::{lock, Command, Counters, HlsError, HlsSessionOptions, LiveSnapshot, Shared};
use crate::fmp4::{describe_init, Fmp4Event, Fmp4Parser, Fragment, InitSegment, TrackId};
use crate::parts::{AssembledPart, PartAssembler};
use crate::playlist::{
    render_multivariant, ClosedSegment, MediaPlaylist, PlaylistError, VariantStream,
};
use crate::store::HlsObject;

pub(super) fn snapshot(playlist: &MediaPlaylist) -> LiveSnapshot {
    LiveSnapshot {
        playlist: playlist.render_live().into(),
        edge: playlist.live_edge(),
        target_duration: playlist.target_duration(),
        media_sequence: playlist.media_sequence(),
    }
}

/// Maps media time to wall-clock time for `EXT-X-PROGRAM-DATE-TIME`: fixed at
/// the first fragment after each init, so dates advance exactly with the media.
#[derive(Debug, Clone, Copy)]
struct ClockAnchor {
    wall_ms: u64,
    media: Duration,
}

pub(super) struct Actor {
    shared: Arc<Shared>,
    opts: HlsSessionOptions,
    parser: Fmp4Parser,
    parser_failed: bool,
    assembler: PartAssembler,
    playlist: MediaPlaylist,
    live: watch::Sender<Arc<LiveSnapshot>>,
    writer: Writer,
    /// Bytes of the open segment's parts, in order.
    open_segment: BytesMut,
    /// The current encoder's init segment.
    init: Option<Bytes>,
    /// `encoder_restarted` was called and no init has arrived since.
    restart_pending: bool,
    /// The track whose decode times date the parts (first video track).
    timing_track: Option<TrackId>,
    anchor: Option<ClockAnchor>,
    last_wall_ms: Option<u64>,
    /// Per track, where the previous fragment ended (ticks), to catch time going back.
    track_ends: HashMap<TrackId, u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Actor {
    pub(super) fn new(
        shared: Arc<Shared>,
        opts: HlsSessionOptions,
        playlist: MediaPlaylist,
        live: watch::Sender<Arc<LiveSnapshot>>,
        writer: Writer,
    ) -> Self {
        Self {
            parser: Fmp4Parser::new(opts.parser),
            parser_failed: false,
            assembler: PartAssembler::new(opts.playlist.part_target),
            shared,
            opts,
            playlist,
            live,
            writer,
            open_segment: BytesMut::new(),
            init: None,
            restart_pending: false,
            timing_track: None,
            anchor: None,
            last_wall_ms: None,
            track_ends: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Feed(bytes) => self.on_bytes(&bytes).await,
                Command::Restart => self.on_restart().await,
                Command::End(reply) => {
                    let r = self.on_end().await;
                    let _ = reply.send(r);
                    break;
                }
            }
        }
        if !self.playlist.is_ended() {
            // Every handle dropped without `end`: the broadcast is over all the same.
            if let Err(e) = self.on_end().await {
                tracing::warn!(room = %self.shared.room, error = %e, "ending an abandoned session");
            }
        }
        // Later sends fail with `Closed`; queued ones are answered.
        rx.close();
        while let Some(cmd) = rx.recv().await {
            if let Command::End(reply) = cmd {
                let _ = reply.send(Ok(()));
            }
        }
    }

    async fn on_bytes(&mut self, chunk: &[u8]) {
        if self.parser_failed || self.playlist.is_ended() {
            return;
        }
        self.parser.push(chunk);
        loop {
            match self.parser.poll() {
                Ok(None) => break,
                Ok(Some(Fmp4Event::Init(init))) => self.on_init(init).await,
                Ok(Some(Fmp4Event::Fragment(f))) => self.on_fragment(f).await,
                Err(e) => {
                    Counters::add(&self.shared.counters.parser_errors);
                    tracing::error!(
                        room = %self.shared.room, rendition = %self.shared.rendition, error = %e,
                        "encoder stream unreadable; ignoring input until the encoder is restarted"
                    );
                    self.parser_failed = true;
                    break;
                }
            }
        }
    }

    async fn on_restart(&mut self) {
        if self.playlist.is_ended() {
            return;
        }
        // Whatever the old encoder left half-written is garbage now.
        self.parser = Fmp4Parser::new(self.opts.parser);
        self.parser_failed = false;
        if self.init.is_none() || self.restart_pending {
            return;
        }
        if let Some(part) = self.assembler.flush() {
            self.publish_part(part).await;
        }
        // The new encoder's init gets a new name even if it is byte-identical:
        // a name is cheap, a stale cached init is not.
        match self.playlist.discontinuity(true) {
            Ok(d) => {
                self.restart_pending = true;
                Counters::add(&self.shared.counters.discontinuities);
                let closed = d.closed.is_some();
                self.store_closed(d.closed).await;
                self.publish();
                if closed {
                    self.store_classic();
                }
            }
            Err(e) => tracing::warn!(room = %self.shared.room, error = %e, "restart ignored"),
        }
    }

    async fn on_init(&mut self, init: InitSegment) {
        let bytes = Bytes::from(init.bytes);
        let first = self.init.is_none();
        if !first && !self.restart_pending {
            if self.init.as_ref() == Some(&bytes) {
                // The same init again (some muxers repeat it): nothing changes.
                return;
            }
            // A different init without a restart: the decoder configuration
            // changed, which players only accept behind a discontinuity.
            tracing::warn!(room = %self.shared.room, "init segment changed without an encoder restart: inserting a discontinuity");
            if let Some(part) = self.assembler.flush() {
                self.publish_part(part).await;
            }
            match self.playlist.discontinuity(true) {
                Ok(d) => {
                    Counters::add(&self.shared.counters.discontinuities);
                    self.store_closed(d.closed).await;
                }
                Err(e) => {
                    tracing::warn!(room = %self.shared.room, error = %e, "init ignored");
                    return;
                }
            }
        }
        let name = self.playlist.current_init_uri();
        let version = match HlsObject::parse(&name) {
            Some(HlsObject::Init(v)) => v,
            _ => 0,
        };
        lock(&self.shared.cache)
            .objects
            .insert(name.clone(), bytes.clone());
        let ack = self.writer.submit(HlsObject::Init(version), bytes.clone());
        self.await_store(vec![ack]).await;
        if first {
            self.store_classic();
            self.publish_master(&bytes);
        }
        self.timing_track = init
            .tracks
            .iter()
            .find(|t| t.kind == crate::fmp4::TrackKind::Video)
            .or(init.tracks.first())
            .map(|t| t.id);
        self.init = Some(bytes);
        self.restart_pending = false;
        self.anchor = None;
        self.track_ends.clear();
        self.publish();
    }

    fn publish_master(&mut self, init: &[u8]) {
        let found = describe_init(init);
        let codecs = found.codecs_attribute().unwrap_or_else(|| {
            tracing::info!(room = %self.shared.room, found = ?found.codecs, "codecs not recognised; using the configured ones");
            self.opts.codecs.clone()
        });
        let variant = VariantStream {
            uri: format!("{}/index.m3u8", self.shared.rendition),
            bandwidth: self.opts.bandwidth.max(1),
            resolution: found.resolution.or(self.opts.resolution),
            codecs,
        };
        match render_multivariant(&[variant]) {
            Ok(text) => {
                *lock(&self.shared.master) = Some(text.clone());
                // Behind the classic playlist it names, in the FIFO.
                drop(self.writer.submit(HlsObject::Master, Bytes::from(text)));
            }
            Err(e) => {
                tracing::error!(room = %self.shared.room, error = %e, "cannot render master.m3u8")
            }
        }
    }

    async fn on_fragment(&mut self, f: Fragment) {
        // Time must not go back within one encoder run.
        let mut regressed = false;
        for t in &f.tracks {
            if let Some(start) = t.base_media_decode_time {
                if let Some(&prev_end) = self.track_ends.get(&t.track_id) {
                    regressed |= start < prev_end;
                }
                self.track_ends
                    .insert(t.track_id, start.saturating_add(t.duration_ticks));
            }
        }
        if regressed {
            Counters::add(&self.shared.counters.timestamp_regressions);
            tracing::warn!(room = %self.shared.room, "decode time went backwards without a restart: inserting a discontinuity");
            if let Some(part) = self.assembler.flush() {
                self.publish_part(part).await;
            }
            if let Ok(d) = self.playlist.discontinuity(false) {
                Counters::add(&self.shared.counters.discontinuities);
                self.store_closed(d.closed).await;
            }
            self.anchor = None;
        }
        // Only the timing track's samples advance the timeline: a fragment
        // without them (ffmpeg `frag_every_frame` writes audio frames as
        // fragments of their own) lasts zero and rides along with the video.
        let mut f = f;
        let timed = f
            .tracks
            .iter()
            .any(|t| Some(t.track_id) == self.timing_track && t.sample_count > 0);
        if !timed && self.timing_track.is_some() {
            for t in &mut f.tracks {
                t.duration_ticks = 0;
            }
        }
        let wall = self.wall_clock(&f);
        for part in self.assembler.push(&f, wall) {
            self.publish_part(part).await;
        }
    }

    /// Wall-clock time of the fragment's first sample.
    fn wall_clock(&mut self, f: &Fragment) -> Option<u64> {
        let start = f
            .tracks
            .iter()
            .find(|t| Some(t.track_id) == self.timing_track)
            .and_then(|t| t.start());
        let wall = match (start, self.anchor) {
            (Some(s), Some(a)) => {
                let delta = s.saturating_sub(a.media).as_millis() as u64;
                a.wall_ms.saturating_add(delta)
            }
            (Some(s), None) => {
                // It arrived once encoded: its first sample is about its duration old.
                let wall_ms = now_ms().saturating_sub(f.duration().as_millis() as u64);
                let wall_ms = wall_ms.max(self.last_wall_ms.map_or(0, |w| w + 1));
                self.anchor = Some(ClockAnchor { wall_ms, media: s });
                wall_ms
            }
            (None, _) => return self.last_wall_ms,
        };
        self.last_wall_ms = Some(wall);
        Some(wall)
    }

    /// The write-then-publish step for one part.
    async fn publish_part(&mut self, part: AssembledPart) {
        let info = part.info();
        let placement = match self.playlist.plan_part(&info) {
            Ok(p) => p,
            Err(PlaylistError::ZeroDuration) => {
                tracing::debug!(room = %self.shared.room, "dropping a part without samples");
                return;
            }
            Err(e) => {
                tracing::warn!(room = %self.shared.room, error = %e, "part dropped");
                return;
            }
        };
        let mut acks = Vec::with_capacity(2);
        let closed = placement.closed.is_some();
        if let Some(c) = placement.closed.clone() {
            acks.push(self.submit_segment(c));
        }
        let bytes = Bytes::from(part.bytes);
        self.open_segment.extend_from_slice(&bytes);
        lock(&self.shared.cache)
            .objects
            .insert(placement.uri.clone(), bytes.clone());
        acks.push(self.writer.submit(
            HlsObject::Part {
                msn: placement.msn,
                index: placement.index,
            },
            bytes,
        ));
        self.await_store(acks).await;
        if let Err(e) = self.playlist.push_part(info) {
            tracing::warn!(room = %self.shared.room, error = %e, "part not added");
            return;
        }
        Counters::add(&self.shared.counters.parts_published);
        *lock(&self.shared.last_part) = Some(Instant::now());
        self.publish();
        if closed {
            self.evict();
            self.store_classic();
        }
    }

    /// Queues a closed segment (its parts' bytes) and caches it.
    fn submit_segment(&mut self, closed: ClosedSegment) -> oneshot::Receiver<bool> {
        let bytes = self.open_segment.split().freeze();
        lock(&self.shared.cache)
            .objects
            .insert(closed.uri.clone(), bytes.clone());
        self.writer.submit(HlsObject::Segment(closed.msn), bytes)
    }

    /// Stores a segment closed by a discontinuity or the end, before publishing.
    async fn store_closed(&mut self, closed: Option<ClosedSegment>) {
        if let Some(c) = closed {
            let ack = self.submit_segment(c);
            self.await_store(vec![ack]).await;
            self.evict();
        }
    }

    /// Waits for the store, but never long (see the module docs).
    async fn await_store(&mut self, acks: Vec<oneshot::Receiver<bool>>) {
        let healthy = self.shared.store_healthy.load(Ordering::Relaxed);
        let all = async {
            let mut ok = true;
            for a in acks {
                ok &= a.await.unwrap_or(false);
            }
            ok
        };
        let stored = if healthy {
            tokio::time::timeout(self.opts.store_wait, all)
                .await
                .unwrap_or(false)
        } else {
            false
        };
        if !stored {
            self.shared.store_healthy.store(false, Ordering::Relaxed);
            Counters::add(&self.shared.counters.published_before_stored);
        }
    }

    fn publish(&mut self) {
        let snap = snapshot(&self.playlist);
        if let Some(hook) = &self.shared.on_publish {
            hook(&snap.playlist);
        }
        self.live.send_replace(Arc::new(snap));
    }

    /// Queues the classic playlist (behind everything it names).
    fn store_classic(&mut self) {
        let text = self.playlist.render_classic();
        drop(
            self.writer
                .submit(HlsObject::MediaPlaylist, Bytes::from(text)),
        );
    }

    /// Forgets media older than the live window (plus `cache_behind` segments).
    fn evict(&mut self) {
        let keep_from = self
            .playlist
            .media_sequence()
            .saturating_sub(self.opts.cache_behind);
        lock(&self.shared.cache)
            .objects
            .retain(|name, _| match HlsObject::parse(name) {
                Some(HlsObject::Part { msn, .. } | HlsObject::Segment(msn)) => msn >= keep_from,
                _ => true,
            });
    }

    async fn on_end(&mut self) -> Result<(), HlsError> {
        if self.playlist.is_ended() {
            return Ok(());
        }
        if let Err(e) = self.parser.finish() {
            if !self.parser_failed {
                tracing::debug!(room = %self.shared.room, error = %e, "encoder output ended mid-box");
            }
        }
        if let Some(part) = self.assembler.flush() {
            self.publish_part(part).await;
        }
        let closed = self.playlist.end();
        self.store_closed(closed).await;
        self.publish();
        self.store_classic();
        let vod = self.playlist.render_vod()?;
        let writer = &self.writer;
        let stored = tokio::time::timeout(self.opts.end_wait, async move {
            let ack = writer
                .submit_waiting(HlsObject::Vod, Bytes::from(vod))
                .await;
            // The FIFO: once the VOD playlist is answered, everything before it is too.
            ack.await.unwrap_or(false)
        })
        .await;
        let Ok(stored) = stored else {
            tracing::error!(room = %self.shared.room, wait = ?self.opts.end_wait, "the store is too slow to confirm the recording");
            return Err(HlsError::EndTimeout(self.opts.end_wait));
        };
        if stored {
            tracing::info!(room = %self.shared.room, rendition = %self.shared.rendition, "broadcast ended; VOD playlist stored");
            Ok(())
        } else {
            let lost = self.writer.lost_count().max(1) as u64;
            tracing::error!(room = %self.shared.room, lost, "broadcast ended but the recording is incomplete in the store");
            Err(HlsError::Incomplete(lost))
        }
    }
}
