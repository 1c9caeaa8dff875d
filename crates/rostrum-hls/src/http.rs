//! The HLS origin: an axum [`Router`] over a registry of live sessions.
//!
//! | route | answer |
//! |---|---|
//! | `GET /hls/{room}/master.m3u8` | multivariant playlist (503 until the first init segment) |
//! | `GET /hls/{room}/{rendition}/index.m3u8` | live LL-HLS playlist from memory; `_HLS_msn`/`_HLS_part` hold the request ([`crate::blocking`]); 400 for a malformed or too-far request, 503 after the hold limit |
//! | `GET /hls/{room}/{rendition}/{file}` | `init*.mp4`, `<msn>.m4s`, `<msn>.<part>.m4s`, `vod.m3u8`: memory, else the store; a request for the hinted next part is held until it exists |
//!
//! Unknown rooms, renditions and files are 404. File names are checked
//! against the layout's exact grammar ([`HlsObject::parse`]), so nothing else
//! (`..`, `%2F`, other extensions) ever reaches the store. With
//! [`HlsRegistry::with_archive`], rooms without a live session are served
//! from the store (the classic `index.m3u8` and the recording), for replay.
//!
//! Headers: playlists `application/vnd.apple.mpegurl` with a one-second
//! cache lifetime, media `video/mp4` / `video/iso.segment` cached for a year
//! as immutable, errors `no-cache`; `Access-Control-Allow-Origin: *` on everything.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::blocking::parse_reload_query;
use crate::session::{HlsError, HlsHandle};
use crate::store::{is_valid_name, HlsObject, HlsStore, LIVE_CACHE_CONTROL, PLAYLIST_CONTENT_TYPE};

/// Live sessions by room; cloning shares the same map.
#[derive(Debug, Clone, Default)]
pub struct HlsRegistry {
    rooms: Arc<RwLock<HashMap<String, HlsHandle>>>,
    archive: Option<HlsStore>,
}

impl HlsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry that serves rooms without a live session from `store`.
    pub fn with_archive(store: HlsStore) -> Self {
        Self {
            rooms: Arc::default(),
            archive: Some(store),
        }
    }

    /// Registers a session under its room; returns the one it replaces.
    pub fn insert(&self, handle: HlsHandle) -> Option<HlsHandle> {
        let room = handle.room().to_owned();
        self.write().insert(room, handle)
    }

    /// Unregisters a room.
    pub fn remove(&self, room: &str) -> Option<HlsHandle> {
        self.write().remove(room)
    }

    /// The session of a room.
    pub fn get(&self, room: &str) -> Option<HlsHandle> {
        self.rooms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(room)
            .cloned()
    }

    /// Rooms with a registered session.
    pub fn rooms(&self) -> Vec<String> {
        self.rooms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, HlsHandle>> {
        self.rooms
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The origin's routes (see the [module docs](self)), ready to merge into a server.
pub fn router(registry: HlsRegistry) -> Router {
    Router::new()
        .route("/hls/{room}/master.m3u8", get(master))
        .route("/hls/{room}/{rendition}/index.m3u8", get(index))
        .route("/hls/{room}/{rendition}/{file}", get(file))
        .with_state(registry)
}

fn respond(content_type: &'static str, cache_control: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// An error with a one-line plain-text body, never cached.
fn error(status: StatusCode, message: impl Display) -> Response {
    let line = message.to_string().replace(['\r', '\n'], " ");
    let mut r = respond(
        "text/plain; charset=utf-8",
        "no-cache",
        Body::from(format!("{line}\n")),
    );
    *r.status_mut() = status;
    r
}

fn not_found(what: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("{what} not found"))
}

async fn master(State(reg): State<HlsRegistry>, Path(room): Path<String>) -> Response {
    if let Some(h) = reg.get(&room) {
        return match h.master_playlist() {
            Some(text) => respond(PLAYLIST_CONTENT_TYPE, LIVE_CACHE_CONTROL, text.into()),
            None => error(StatusCode::SERVICE_UNAVAILABLE, HlsError::NotStarted),
        };
    }
    from_archive(&reg, &room, "", HlsObject::Master).await
}

async fn index(
    State(reg): State<HlsRegistry>,
    Path((room, rendition)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(h) = reg.get(&room) else {
        return from_archive(&reg, &room, &rendition, HlsObject::MediaPlaylist).await;
    };
    if h.rendition() != rendition {
        return not_found("rendition");
    }
    let reload = match parse_reload_query(query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match h.live_playlist(reload).await {
        Ok(text) => respond(PLAYLIST_CONTENT_TYPE, LIVE_CACHE_CONTROL, text.into()),
        Err(e @ HlsError::BadRequest(_)) => error(StatusCode::BAD_REQUEST, e),
        Err(e @ HlsError::HoldTimeout(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn file(
    State(reg): State<HlsRegistry>,
    Path((room, rendition, file)): Path<(String, String, String)>,
) -> Response {
    let object = match HlsObject::parse(&file) {
        Some(HlsObject::Master | HlsObject::MediaPlaylist) | None => return not_found("file"),
        Some(o) => o,
    };
    let Some(h) = reg.get(&room) else {
        return from_archive(&reg, &room, &rendition, object).await;
    };
    if h.rendition() != rendition {
        return not_found("rendition");
    }
    match h.media(&file).await {
        Some(bytes) => respond(object.content_type(), object.cache_control(), bytes.into()),
        None => not_found("file"),
    }
}

/// A room with no live session: the archive store, if configured.
async fn from_archive(
    reg: &HlsRegistry,
    room: &str,
    rendition: &str,
    object: HlsObject,
) -> Response {
    let Some(store) = &reg.archive else {
        return not_found("room");
    };
    let valid = is_valid_name(room) && (object == HlsObject::Master || is_valid_name(rendition));
    if !valid {
        return not_found("room");
    }
    match store.get(room, rendition, &object).await {
        Ok(Some(bytes)) => respond(object.content_type(), object.cache_control(), bytes.into()),
        Ok(None) => not_found("room or file"),
        Err(e) => {
            tracing::warn!(room, rendition, error = %e, "archive read failed");
            error(StatusCode::BAD_GATEWAY, "storage unavailable")
        }
    }
}

#[cfg(test)]
mod tests;
