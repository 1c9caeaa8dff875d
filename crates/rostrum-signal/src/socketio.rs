//! Socket.IO signaling (docs/protocol.md): each socket is at most one participant; its notices
//! arrive through a mailbox task that emits them to that socket only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rostrum_sfu::{
    Kind, Notice, ParticipantId, ParticipantKind, ProducerId, RoomId, SfuError, WorkerHandle,
};
use serde::Deserialize;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use tokio::sync::mpsc;
use tracing::{debug, info};

/// Largest Socket.IO message accepted; an SDP is a few KiB.
pub const MAX_PAYLOAD: u64 = 64 * 1024;

#[derive(Deserialize)]
struct JoinReq {
    room: String,
    name: String,
}

#[derive(Deserialize)]
struct SdpReq {
    sdp: String,
}

#[derive(Deserialize)]
struct MuteReq {
    kind: Kind,
    muted: bool,
}

/// How the client shows one remote video: its tile in device pixels, or hidden.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewportReq {
    producer_id: ProducerId,
    width: u32,
    height: u32,
    visible: bool,
}

/// Larger than any screen: a report beyond it is a bad request, not a layer choice.
const MAX_VIEWPORT_PX: u32 = 16_384;

/// This socket's seat on the stage, if it joined.
type Seat = Arc<Mutex<Option<(RoomId, ParticipantId)>>>;

fn err(code: &str, message: impl std::fmt::Display) -> Value {
    json!({ "ok": false, "error": { "code": code, "message": message.to_string() } })
}

fn sfu_err(e: &SfuError) -> Value {
    err(e.code(), e)
}

/// Reply through the ack (a no-op if the client asked for none); a failure is also emitted as an
/// `error` event to this socket only, so clients that do not use acks still learn of it.
fn reply(s: &SocketRef, ack: AckSender, v: Value) {
    if v.get("ok") == Some(&Value::Bool(false)) {
        let _ = s.emit("error", &v["error"]);
    }
    let _ = ack.send(&v);
}

/// Parse a payload or explain what is wrong with it.
fn parse<T: for<'de> Deserialize<'de>>(
    data: Result<Value, impl std::fmt::Display>,
) -> Result<T, Value> {
    let v = data.map_err(|e| err("bad-request", format!("payload is not JSON: {e}")))?;
    // serde would read a struct from an array too; the protocol only has objects.
    if !v.is_object() {
        return Err(err("bad-request", "payload must be a JSON object"));
    }
    serde_json::from_value(v).map_err(|e| err("bad-request", format!("unexpected payload: {e}")))
}

fn seat_of(seat: &Seat) -> Option<(RoomId, ParticipantId)> {
    seat.lock().ok().and_then(|g| g.clone())
}

/// Build the Socket.IO layer and register the handlers.
pub fn layer(worker: WorkerHandle) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .max_payload(MAX_PAYLOAD)
        .ws_max_message_size(MAX_PAYLOAD as usize)
        .ws_max_frame_size(MAX_PAYLOAD as usize)
        // Notice a vanished browser quickly; media liveness catches the rest.
        .ping_interval(Duration::from_secs(5))
        .ping_timeout(Duration::from_secs(5))
        .build_layer();
    io.ns("/", move |s: SocketRef| on_connect(s, worker.clone()));
    layer
}

async fn on_connect(s: SocketRef, worker: WorkerHandle) {
    debug!(socket = %s.id, "connected");
    let seat: Seat = Arc::new(Mutex::new(None));

    let (w, st) = (worker.clone(), seat.clone());
    s.on(
        "join",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let v = join(&s, &w, &st, data).await;
            reply(&s, ack, v);
        },
    );

    let (w, st) = (worker.clone(), seat.clone());
    s.on(
        "publish",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let v = match (parse::<SdpReq>(data), seat_of(&st)) {
                (Err(e), _) => e,
                (_, None) => err("not-joined", "join a room first"),
                (Ok(req), Some((room, pid))) => match w.publish(room, pid, req.sdp).await {
                    Ok(p) => json!({
                        "ok": true,
                        "sdp": p.answer,
                        "producers": p.producers.iter().map(|(id, kind, mid)| json!({"id": id, "kind": kind, "mid": mid})).collect::<Vec<_>>(),
                    }),
                    Err(e) => sfu_err(&e),
                },
            };
            reply(&s, ack, v);
        },
    );

    let (w, st) = (worker.clone(), seat.clone());
    s.on(
        "answer",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let v = match (parse::<SdpReq>(data), seat_of(&st)) {
                (Err(e), _) => e,
                (_, None) => err("not-joined", "join a room first"),
                (Ok(req), Some((room, pid))) => match w.answer(room, pid, req.sdp).await {
                    Ok(()) => json!({ "ok": true }),
                    Err(e) => sfu_err(&e),
                },
            };
            reply(&s, ack, v);
        },
    );

    let (w, st) = (worker.clone(), seat.clone());
    s.on(
        "mute",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let v = match (parse::<MuteReq>(data), seat_of(&st)) {
                (Err(e), _) => e,
                (_, None) => err("not-joined", "join a room first"),
                (Ok(req), Some((room, pid))) => {
                    match w.mute(room, pid, req.kind, req.muted).await {
                        Ok(()) => json!({ "ok": true }),
                        Err(e) => sfu_err(&e),
                    }
                }
            };
            reply(&s, ack, v);
        },
    );

    let (w, st) = (worker.clone(), seat.clone());
    s.on(
        "viewport",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let v = match (parse::<ViewportReq>(data), seat_of(&st)) {
                (Err(e), _) => e,
                (Ok(r), _) if r.width > MAX_VIEWPORT_PX || r.height > MAX_VIEWPORT_PX => err(
                    "bad-request",
                    format!("width and height must be at most {MAX_VIEWPORT_PX}"),
                ),
                (_, None) => err("not-joined", "join a room first"),
                (Ok(r), Some((room, pid))) => {
                    match w
                        .set_viewport(room, pid, r.producer_id, r.width, r.height, r.visible)
                        .await
                    {
                        Ok(()) => json!({ "ok": true }),
                        Err(e) => sfu_err(&e),
                    }
                }
            };
            reply(&s, ack, v);
        },
    );

    let (w, st) = (worker.clone(), seat.clone());
    s.on("end-stage", async move |s: SocketRef, ack: AckSender| {
        let v = match seat_of(&st) {
            None => err("not-joined", "join a room first"),
            Some((room, pid)) => match w.end_stage(room, pid).await {
                Ok(()) => json!({ "ok": true }),
                Err(e) => sfu_err(&e),
            },
        };
        reply(&s, ack, v);
    });

    let (w, st) = (worker.clone(), seat.clone());
    s.on("leave", async move |s: SocketRef, ack: AckSender| {
        leave(&w, &st).await;
        reply(&s, ack, json!({ "ok": true }));
    });

    let (w, st) = (worker.clone(), seat.clone());
    s.on_disconnect(async move |s: SocketRef| {
        debug!(socket = %s.id, "disconnected");
        leave(&w, &st).await;
    });
}

async fn join(
    s: &SocketRef,
    w: &WorkerHandle,
    seat: &Seat,
    data: Result<Value, impl std::fmt::Display>,
) -> Value {
    let req: JoinReq = match parse(data) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if seat_of(seat).is_some() {
        return err(
            "already-joined",
            "this connection already joined a room; leave first",
        );
    }
    let room = match RoomId::new(&req.room) {
        Ok(r) => r,
        Err(e) => return sfu_err(&e),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let joined = match w
        .join(room.clone(), req.name, ParticipantKind::Stage, Some(tx))
        .await
    {
        Ok(j) => j,
        Err(e) => return sfu_err(&e),
    };
    if let Ok(mut g) = seat.lock() {
        *g = Some((room.clone(), joined.participant_id));
    }
    info!(socket = %s.id, %room, participant = %joined.participant_id, "socket joined");
    tokio::spawn(deliver(s.clone(), rx, seat.clone(), joined.participant_id));
    json!({
        "ok": true,
        "participantId": joined.participant_id,
        "participants": joined.others,
        "hostId": joined.host,
        "iceServers": [],
    })
}

/// Emit a participant's notices to its socket, in order. The mailbox closes when the server
/// removed the participant; the socket's seat is then free for a new join.
async fn deliver(
    s: SocketRef,
    mut rx: mpsc::UnboundedReceiver<Notice>,
    seat: Seat,
    pid: ParticipantId,
) {
    while let Some(n) = rx.recv().await {
        let Ok(mut v) = serde_json::to_value(&n) else {
            continue;
        };
        if s.emit(n.event_name(), &v["data"].take()).is_err() {
            break;
        }
    }
    if let Ok(mut g) = seat.lock() {
        if g.as_ref().is_some_and(|(_, p)| *p == pid) {
            *g = None;
        }
    }
}

async fn leave(w: &WorkerHandle, seat: &Seat) {
    let taken = seat.lock().ok().and_then(|mut g| g.take());
    if let Some((room, pid)) = taken {
        let _ = w.leave(room, pid).await;
    }
}
