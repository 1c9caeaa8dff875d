//! Where the HLS objects live: an [`object_store`] (local disk by default, any
//! S3-compatible store when configured) under the design's key layout.
//!
//! ```text
//! [<prefix>/]<room>/master.m3u8
//! [<prefix>/]<room>/<rendition>/index.m3u8        classic live playlist (no LL-HLS tags)
//! [<prefix>/]<room>/<rendition>/vod.m3u8          the whole recording, written at the end
//! [<prefix>/]<room>/<rendition>/init.mp4          then init-<n>.mp4 after each encoder restart
//! [<prefix>/]<room>/<rendition>/<msn>.m4s         segments
//! [<prefix>/]<room>/<rendition>/<msn>.<part>.m4s  parts
//! ```
//!
//! Every object is written with its `Content-Type` and `Cache-Control` as
//! object attributes when the backend keeps them (S3 does; `LocalFileSystem`
//! refuses attributes, so there the HTTP side derives them from the name, see
//! [`HlsObject::content_type`]). Media objects never change once written, so
//! they are cached for a year; playlists that change are cached for a second.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
};

use crate::playlist::{init_uri, part_uri, segment_uri};

/// `Content-Type` of playlists.
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
/// `Content-Type` of init segments.
pub const INIT_CONTENT_TYPE: &str = "video/mp4";
/// `Content-Type` of media segments and parts (CMAF, RFC 8216bis §4.3.3).
pub const SEGMENT_CONTENT_TYPE: &str = "video/iso.segment";
/// `Cache-Control` of objects that never change once written.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of live playlists (they change every part).
pub const LIVE_CACHE_CONTROL: &str = "public, max-age=1";
/// `Cache-Control` of the finished recording's playlist (final, but written
/// under a fixed name, so not `immutable`).
pub const VOD_CACHE_CONTROL: &str = "public, max-age=86400";

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreConfig {
    /// Files under a local directory (created if missing).
    Local {
        /// The root directory.
        dir: PathBuf,
    },
    /// Any S3-compatible store (AWS, garage, MinIO, …), path-style requests.
    S3 {
        /// e.g. `http://127.0.0.1:3900`; `None` for AWS itself.
        #[serde(default)]
        endpoint: Option<String>,
        /// Bucket name.
        bucket: String,
        /// Region (garage: `garage`; AWS: `eu-west-1`, …).
        region: String,
        /// Access key id.
        access_key: String,
        /// Secret access key.
        secret_key: String,
        /// Allow a plain `http://` endpoint (local servers).
        #[serde(default)]
        allow_http: bool,
    },
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::Local {
            dir: PathBuf::from("hls"),
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend refused or failed.
    #[error("object store: {0}")]
    Backend(#[from] object_store::Error),
    /// The local root directory could not be created.
    #[error("cannot create {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A room, rendition or file name that cannot be a key segment.
    #[error("invalid name {0:?}: use 1-128 of [A-Za-z0-9_.-], not starting with '.'")]
    InvalidName(String),
}

/// One object of the layout, relative to its room (for [`HlsObject::Master`])
/// or rendition directory (all others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HlsObject {
    /// `master.m3u8`, the multivariant playlist (room level).
    Master,
    /// `index.m3u8`, the classic live playlist.
    MediaPlaylist,
    /// `vod.m3u8`, the recording.
    Vod,
    /// `init.mp4` (version 0) or `init-<n>.mp4`.
    Init(u32),
    /// `<msn>.<index>.m4s`.
    Part {
        /// Segment number.
        msn: u64,
        /// Part index.
        index: u32,
    },
    /// `<msn>.m4s`.
    Segment(u64),
}

impl HlsObject {
    /// The file name, as playlists name it.
    pub fn file_name(&self) -> String {
        match *self {
            Self::Master => "master.m3u8".to_owned(),
            Self::MediaPlaylist => "index.m3u8".to_owned(),
            Self::Vod => "vod.m3u8".to_owned(),
            Self::Init(v) => init_uri(v),
            Self::Part { msn, index } => part_uri(msn, index),
            Self::Segment(msn) => segment_uri(msn),
        }
    }

    /// Parses a file name, strictly: only the names [`Self::file_name`]
    /// produces (canonical decimals, no leading zeros), so anything else,
    /// path traversal included, is `None`. `master.m3u8` is the room-level one.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "master.m3u8" => return Some(Self::Master),
            "index.m3u8" => return Some(Self::MediaPlaylist),
            "vod.m3u8" => return Some(Self::Vod),
            "init.mp4" => return Some(Self::Init(0)),
            _ => {}
        }
        if let Some(v) = name
            .strip_prefix("init-")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return canonical::<u32>(v).filter(|&v| v > 0).map(Self::Init);
        }
        let stem = name.strip_suffix(".m4s")?;
        match stem.split_once('.') {
            None => canonical(stem).map(Self::Segment),
            Some((m, p)) => Some(Self::Part {
                msn: canonical(m)?,
                index: canonical(p)?,
            }),
        }
    }

    /// `Content-Type` to serve it with.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Master | Self::MediaPlaylist | Self::Vod => PLAYLIST_CONTENT_TYPE,
            Self::Init(_) => INIT_CONTENT_TYPE,
            Self::Part { .. } | Self::Segment(_) => SEGMENT_CONTENT_TYPE,
        }
    }

    /// `Cache-Control` to serve it with.
    pub fn cache_control(&self) -> &'static str {
        match self {
            Self::Master | Self::MediaPlaylist => LIVE_CACHE_CONTROL,
            Self::Vod => VOD_CACHE_CONTROL,
            Self::Init(_) | Self::Part { .. } | Self::Segment(_) => IMMUTABLE_CACHE_CONTROL,
        }
    }

    /// Whether it is a playlist (text) rather than media.
    pub fn is_playlist(&self) -> bool {
        matches!(self, Self::Master | Self::MediaPlaylist | Self::Vod)
    }

    /// The `PutOptions` carrying its content type and cache control.
    pub fn put_options(&self) -> PutOptions {
        let attributes: Attributes = [
            (
                Attribute::ContentType,
                AttributeValue::from(self.content_type()),
            ),
            (
                Attribute::CacheControl,
                AttributeValue::from(self.cache_control()),
            ),
        ]
        .into_iter()
        .collect();
        PutOptions {
            attributes,
            ..PutOptions::default()
        }
    }
}

/// A canonical decimal: digits only, no leading zero (except "0"), fits `T`.
fn canonical<T: std::str::FromStr>(s: &str) -> Option<T> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// Whether `name` may be a room, rendition or prefix segment: 1–128 of
/// `[A-Za-z0-9_.-]`, not starting with `.` (so never `.` or `..`).
pub fn is_valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_owned()))
    }
}

/// The HLS view of an object store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HlsStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    attributes: bool,
}

impl HlsStore {
    /// Wraps a store. `keeps_attributes`: whether its `put_opts` accepts
    /// `Content-Type`/`Cache-Control` attributes (S3 and `InMemory` do,
    /// `LocalFileSystem` does not).
    pub fn new(inner: Arc<dyn ObjectStore>, keeps_attributes: bool) -> Self {
        Self {
            inner,
            prefix: Vec::new(),
            attributes: keeps_attributes,
        }
    }

    /// Builds the configured backend.
    pub fn from_config(config: &StoreConfig) -> Result<Self, StoreError> {
        match config {
            StoreConfig::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    dir: dir.clone(),
                    source,
                })?;
                Ok(Self::new(
                    Arc::new(LocalFileSystem::new_with_prefix(dir)?),
                    false,
                ))
            }
            StoreConfig::S3 {
                endpoint,
                bucket,
                region,
                access_key,
                secret_key,
                allow_http,
            } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key)
                    .with_secret_access_key(secret_key)
                    .with_allow_http(*allow_http)
                    // A live part is worth little after a few seconds: fail fast
                    // and let the session's writer count and retry.
                    .with_retry(object_store::RetryConfig {
                        max_retries: 2,
                        retry_timeout: std::time::Duration::from_secs(5),
                        ..Default::default()
                    });
                if let Some(e) = endpoint {
                    // Path-style (`endpoint/bucket/key`), what garage and MinIO expect.
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                }
                Ok(Self::new(Arc::new(b.build()?), true))
            }
        }
    }

    /// Puts every key under `prefix/` (one or more `/`-separated segments).
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self, StoreError> {
        for seg in prefix.split('/').filter(|s| !s.is_empty()) {
            check_name(seg)?;
            self.prefix.push(seg.to_owned());
        }
        Ok(self)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Whether puts carry content type and cache control attributes.
    pub fn keeps_attributes(&self) -> bool {
        self.attributes
    }

    /// The key of `object`: `[prefix/]room/master.m3u8` or
    /// `[prefix/]room/rendition/<name>`.
    pub fn key(&self, room: &str, rendition: &str, object: &HlsObject) -> Result<Path, StoreError> {
        check_name(room)?;
        let mut parts: Vec<String> = self.prefix.clone();
        parts.push(room.to_owned());
        if *object != HlsObject::Master {
            check_name(rendition)?;
            parts.push(rendition.to_owned());
        }
        parts.push(object.file_name());
        Ok(Path::from_iter(parts))
    }

    /// Writes `object` with its content type and cache control.
    pub async fn put(
        &self,
        room: &str,
        rendition: &str,
        object: &HlsObject,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let key = self.key(room, rendition, object)?;
        let opts = if self.attributes {
            object.put_options()
        } else {
            PutOptions::default()
        };
        self.inner
            .put_opts(&key, PutPayload::from(bytes), opts)
            .await?;
        Ok(())
    }

    /// `<room>/master.m3u8`.
    pub async fn put_master(&self, room: &str, text: String) -> Result<(), StoreError> {
        self.put(room, "", &HlsObject::Master, Bytes::from(text))
            .await
    }

    /// `<room>/<rendition>/index.m3u8` (the classic playlist).
    pub async fn put_media_playlist(
        &self,
        room: &str,
        rendition: &str,
        text: String,
    ) -> Result<(), StoreError> {
        self.put(
            room,
            rendition,
            &HlsObject::MediaPlaylist,
            Bytes::from(text),
        )
        .await
    }

    /// `<room>/<rendition>/vod.m3u8`.
    pub async fn put_vod(
        &self,
        room: &str,
        rendition: &str,
        text: String,
    ) -> Result<(), StoreError> {
        self.put(room, rendition, &HlsObject::Vod, Bytes::from(text))
            .await
    }

    /// `<room>/<rendition>/init.mp4` or `init-<version>.mp4`.
    pub async fn put_init(
        &self,
        room: &str,
        rendition: &str,
        version: u32,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        self.put(room, rendition, &HlsObject::Init(version), bytes)
            .await
    }

    /// `<room>/<rendition>/<msn>.<index>.m4s`.
    pub async fn put_part(
        &self,
        room: &str,
        rendition: &str,
        msn: u64,
        index: u32,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        self.put(room, rendition, &HlsObject::Part { msn, index }, bytes)
            .await
    }

    /// `<room>/<rendition>/<msn>.m4s`.
    pub async fn put_segment(
        &self,
        room: &str,
        rendition: &str,
        msn: u64,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        self.put(room, rendition, &HlsObject::Segment(msn), bytes)
            .await
    }

    /// Reads an object; `Ok(None)` if it does not exist.
    pub async fn get(
        &self,
        room: &str,
        rendition: &str,
        object: &HlsObject,
    ) -> Result<Option<Bytes>, StoreError> {
        let key = self.key(room, rendition, object)?;
        match self.inner.get(&key).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
