use thiserror::Error;

/// Everything the SFU can refuse. Each variant has a stable [`SfuError::code`] that signaling
/// sends to clients, so a browser can tell "room full" from "bad SDP" without parsing prose.
#[derive(Debug, Error)]
pub enum SfuError {
    #[error("room name must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")]
    BadRoomName,
    #[error("display name must be 1-64 printable characters")]
    BadDisplayName,
    #[error("malformed id {0:?}")]
    BadId(String),
    #[error("room is full ({0} participants)")]
    RoomFull(usize),
    #[error("unknown room")]
    UnknownRoom,
    #[error("unknown participant")]
    UnknownParticipant,
    #[error("unknown producer")]
    UnknownProducer,
    #[error("unknown session")]
    UnknownSession,
    #[error("malformed SDP: {0}")]
    BadSdp(String),
    #[error("SDP not acceptable: {0}")]
    SdpRejected(String),
    #[error("no offer is waiting for an answer")]
    NoPendingOffer,
    #[error("participant has nothing to watch yet")]
    NothingToWatch,
    #[error("too many media sections ({0}); the limit is {1}")]
    TooManyTracks(usize, usize),
    #[error("only the host (the participant on stage the longest) can end the stage")]
    NotHost,
    #[error("the SFU worker is gone")]
    WorkerGone,
}

impl SfuError {
    /// The stable machine-readable code of this error (see docs/protocol.md).
    pub fn code(&self) -> &'static str {
        match self {
            SfuError::BadRoomName | SfuError::BadDisplayName | SfuError::BadId(_) => "bad-request",
            SfuError::RoomFull(_) => "room-full",
            SfuError::NotHost => "not-host",
            SfuError::UnknownRoom => "unknown-room",
            SfuError::UnknownParticipant => "unknown-participant",
            SfuError::UnknownSession => "unknown-session",
            SfuError::UnknownProducer => "unknown-producer",
            SfuError::BadSdp(_) | SfuError::SdpRejected(_) => "bad-sdp",
            SfuError::NoPendingOffer => "no-pending-offer",
            SfuError::NothingToWatch => "nothing-to-watch",
            SfuError::TooManyTracks(..) => "too-many-tracks",
            SfuError::WorkerGone => "unavailable",
        }
    }
}
