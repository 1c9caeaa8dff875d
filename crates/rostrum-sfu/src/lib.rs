//! Rostrum's SFU: the mediasoup object model (Worker, Router, WebRtcTransport, Producer,
//! Consumer) on the sans-IO WebRTC crate str0m.
//!
//! * [`router`]: one room as a pure state machine (packets, timeouts and commands in; datagrams,
//!   notices and timeouts out). Unit-tested with in-memory str0m peers.
//! * [`demux`]: the node's single media port, routed by ICE username and 5-tuple.
//! * [`worker`]: the only part that touches sockets and time.

pub mod demux;
pub mod error;
pub mod ids;
pub mod router;
pub mod rtp;
pub mod simulcast;
pub mod worker;

pub use error::SfuError;
pub use ids::{ConsumerId, ParticipantId, ProducerId, RoomId, TransportId};
pub use router::{ConsumerLayers, Kind, Notice, ParticipantKind, Router, RouterOptions};
pub use worker::{spawn_worker, RoomEvent, WorkerHandle, WorkerMetrics, WorkerOptions};

/// Install str0m's crypto provider for the process (once; later calls are no-ops).
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
