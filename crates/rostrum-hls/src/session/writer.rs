//! The session's store writer: one task, one FIFO queue, so a playlist queued
//! after the media it names is only written once that media is stored (or
//! given up on, in which case the playlist is not written either).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{lock, named_uris, Counters, HlsSessionOptions, Shared};
use crate::store::HlsObject;

struct Job {
    object: HlsObject,
    bytes: Bytes,
    ack: Option<oneshot::Sender<bool>>,
}

/// The queue's sending side (owned by the actor).
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    /// File names given up on; playlists naming one are not written.
    lost: Arc<Mutex<HashSet<String>>>,
}

pub(crate) fn spawn(shared: Arc<Shared>, opts: HlsSessionOptions) -> Writer {
    let (tx, rx) = mpsc::channel(opts.write_queue.max(1));
    let lost = Arc::new(Mutex::new(HashSet::new()));
    tokio::spawn(run(shared.clone(), opts, rx, lost.clone()));
    Writer { tx, shared, lost }
}

impl Writer {
    /// Queues a write without waiting; the receiver tells whether it was
    /// stored. A full queue drops the object (counted as lost).
    pub fn submit(&self, object: HlsObject, bytes: Bytes) -> oneshot::Receiver<bool> {
        let (ack, rx) = oneshot::channel();
        let job = Job {
            object,
            bytes,
            ack: Some(ack),
        };
        if let Err(e) = self.tx.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            tracing::error!(
                room = %self.shared.room,
                rendition = %self.shared.rendition,
                object = %job.object.file_name(),
                "store write queue full: object dropped"
            );
            lock(&self.lost).insert(job.object.file_name());
            Counters::add(&self.shared.counters.store_lost);
            self.shared.store_healthy.store(false, Ordering::Relaxed);
            // The dropped job's sender answers `false` as it is dropped here.
        }
        rx
    }

    /// Queues a write, waiting for room in the queue (end of broadcast only).
    pub async fn submit_waiting(&self, object: HlsObject, bytes: Bytes) -> oneshot::Receiver<bool> {
        let (ack, rx) = oneshot::channel();
        let job = Job {
            object,
            bytes,
            ack: Some(ack),
        };
        // A closed queue drops the job, and the receiver reads "not stored".
        let _ = self.tx.send(job).await;
        rx
    }

    /// How many objects were given up on.
    pub fn lost_count(&self) -> usize {
        lock(&self.lost).len()
    }
}

async fn run(
    shared: Arc<Shared>,
    opts: HlsSessionOptions,
    mut rx: mpsc::Receiver<Job>,
    lost: Arc<Mutex<HashSet<String>>>,
) {
    let c = &shared.counters;
    while let Some(mut job) = rx.recv().await {
        let name = job.object.file_name();
        // A rendition playlist must not name something the store lacks.
        if matches!(job.object, HlsObject::MediaPlaylist | HlsObject::Vod) {
            let text = String::from_utf8_lossy(&job.bytes);
            let lost = lock(&lost);
            if let Some(missing) = named_uris(&text).into_iter().find(|u| lost.contains(u)) {
                tracing::warn!(
                    room = %shared.room, rendition = %shared.rendition, playlist = %name, %missing,
                    "playlist not stored: it names an object the store lacks"
                );
                if let Some(a) = job.ack.take() {
                    let _ = a.send(false);
                }
                continue;
            }
        }
        let mut stored = false;
        for attempt in 0..opts.write_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100) * 2u32.pow(attempt.min(6))).await;
            }
            let put = shared.store.put(
                &shared.room,
                &shared.rendition,
                &job.object,
                job.bytes.clone(),
            );
            let error = match tokio::time::timeout(opts.write_timeout, put).await {
                Ok(Ok(())) => {
                    stored = true;
                    break;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("timed out after {:?}", opts.write_timeout),
            };
            Counters::add(&c.store_errors);
            shared.store_healthy.store(false, Ordering::Relaxed);
            tracing::warn!(
                room = %shared.room, rendition = %shared.rendition, object = %name,
                attempt = attempt + 1, %error, "store write failed"
            );
        }
        if stored {
            match job.object {
                HlsObject::Part { .. } => Counters::add(&c.parts_written),
                HlsObject::Segment(_) => Counters::add(&c.segments_written),
                o if o.is_playlist() => Counters::add(&c.playlists_written),
                _ => {}
            }
            // Healthy again once it keeps up.
            if rx.len() <= 2 {
                shared.store_healthy.store(true, Ordering::Relaxed);
            }
        } else {
            tracing::error!(
                room = %shared.room, rendition = %shared.rendition, object = %name,
                "giving up on storing this object; it is served from memory only"
            );
            Counters::add(&c.store_lost);
            lock(&lost).insert(name);
        }
        if let Some(a) = job.ack.take() {
            let _ = a.send(stored);
        }
    }
}
