//! Rostrum's compositor: the layout of the broadcast (who sits where), the node ↔ mixer protocol,
//! and the supervision of the mixer process that draws it (`rostrum-mixer`).

pub mod layout;
pub mod protocol;

pub use layout::{layout, Canvas, Layout, Rect, Seat, Tile, VideoState};
