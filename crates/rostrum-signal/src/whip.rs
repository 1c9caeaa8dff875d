//! WHIP (RFC 9725) ingest and WHEP playback over plain HTTP.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use rostrum_sfu::{ParticipantId, ParticipantKind, RoomId, SfuError, TransportId, WorkerHandle};
use serde::Deserialize;

/// Largest SDP body accepted.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// An HTTP error with a one-line reason in the body.
pub struct HttpError(StatusCode, String);

impl From<SfuError> for HttpError {
    fn from(e: SfuError) -> Self {
        let status = match e.code() {
            "room-full" | "no-pending-offer" => StatusCode::CONFLICT,
            "unknown-room" | "unknown-participant" | "unknown-session" => StatusCode::NOT_FOUND,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        HttpError(status, format!("{}: {e}\n", e.code()))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

fn sdp_body(headers: &HeaderMap, body: &Bytes) -> Result<String, HttpError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        return Err(HttpError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/sdp\n".into(),
        ));
    }
    String::from_utf8(body.to_vec()).map_err(|_| {
        HttpError(
            StatusCode::BAD_REQUEST,
            "bad-sdp: body is not UTF-8\n".into(),
        )
    })
}

fn created(location: String, answer: String) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response()
}

#[derive(Deserialize)]
struct WhipQuery {
    name: Option<String>,
}

async fn whip_post(
    State(w): State<WorkerHandle>,
    Path(room): Path<String>,
    Query(q): Query<WhipQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let sdp = sdp_body(&headers, &body)?;
    let room = RoomId::new(&room)?;
    // Refuse garbage before the publisher appears to anyone on the stage.
    rostrum_sfu::router::parse_offer(&sdp, 16)?;
    let name = q.name.unwrap_or_else(|| "WHIP".to_string());
    let joined = w
        .join(room.clone(), name, ParticipantKind::Whip, None)
        .await?;
    let pid = joined.participant_id;
    match w.publish(room.clone(), pid, sdp).await {
        Ok(p) => Ok(created(format!("/whip/{room}/{pid}"), p.answer)),
        Err(e) => {
            let _ = w.leave(room, pid).await;
            Err(e.into())
        }
    }
}

async fn whip_delete(
    State(w): State<WorkerHandle>,
    Path((room, pid)): Path<(String, String)>,
) -> Result<StatusCode, HttpError> {
    let room = RoomId::new(&room)?;
    let pid: ParticipantId = pid.parse()?;
    w.leave(room, pid).await?;
    Ok(StatusCode::OK)
}

async fn whep_post(
    State(w): State<WorkerHandle>,
    Path((room, target)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let sdp = sdp_body(&headers, &body)?;
    let room = RoomId::new(&room)?;
    let (pid, session, answer) = w.whep(room.clone(), target, sdp).await?;
    Ok(created(format!("/whep/{room}/{pid}/{session}"), answer))
}

async fn whep_delete(
    State(w): State<WorkerHandle>,
    Path((room, _pid, session)): Path<(String, String, String)>,
) -> Result<StatusCode, HttpError> {
    let room = RoomId::new(&room)?;
    let session: TransportId = session.parse()?;
    w.close_whep(room, session).await?;
    Ok(StatusCode::OK)
}

/// Trickle ICE is optional in WHIP/WHEP; Rostrum is ICE-lite and puts its candidates in the answer.
async fn no_trickle() -> HttpError {
    HttpError(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported: candidates are in the answer\n".into(),
    )
}

/// The WHIP/WHEP routes; bodies over [`MAX_SDP_BYTES`] get 413.
pub fn routes(worker: WorkerHandle) -> Router {
    Router::new()
        .route("/whip/{room}", post(whip_post))
        .route("/whip/{room}/{pid}", delete(whip_delete).patch(no_trickle))
        .route("/whep/{room}/{participant}", post(whep_post))
        .route(
            "/whep/{room}/{participant}/{session}",
            delete(whep_delete).patch(no_trickle),
        )
        .layer(DefaultBodyLimit::max(MAX_SDP_BYTES))
        .with_state(worker)
}
