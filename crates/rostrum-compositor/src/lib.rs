//! Rostrum's compositor: the layout of the broadcast (this crate's pure part: who sits where) and,
//! as the compositor issue lands, the supervised mixer process that draws it.

pub mod layout;

pub use layout::{layout, Canvas, Layout, Rect, Seat, Tile, VideoState};
