//! Rostrum signaling: Socket.IO for the `/stream` page (docs/protocol.md) and WHIP/WHEP over
//! HTTP for OBS and standard players. Both turn client messages into SFU worker commands.

pub mod socketio;
pub mod whip;

use rostrum_sfu::WorkerHandle;

/// Every signaling route, ready to merge into the node's axum app.
pub fn app(worker: WorkerHandle) -> axum::Router {
    whip::routes(worker.clone()).layer(socketio::layer(worker))
}
