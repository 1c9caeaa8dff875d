//! Rostrum's compositor: the layout of the broadcast (who sits where), the node ↔ mixer protocol,
//! and the supervision of the mixer process that draws it (`rostrum-mixer`).

pub mod broadcast;
pub mod driver;
pub mod layout;
pub mod protocol;
pub mod supervisor;

pub use driver::{
    BroadcastState, BroadcastStatus, Compositor, CompositorError, CompositorMetrics,
    CompositorOptions,
};
pub use layout::{layout, Canvas, Layout, Rect, Seat, Tile, VideoState};
