//! The broadcast grid: 1 → full frame, 2 → side by side, 3–4 → 2×2, 5–9 → 3×3 (and the next
//! square beyond), every video letterboxed into its cell, every tile labelled with its name, a
//! placeholder for a camera that is off or silent, and a slate when nobody is on stage.
//!
//! Pure: the same seats always give the same layout, so a join or leave is a diff the mixer applies
//! to its running pads (no restart), and tests need no pixels.

use serde::Serialize;

/// The programme's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
}

impl Canvas {
    pub const HD: Canvas = Canvas {
        width: 1280,
        height: 720,
    };
}

/// A rectangle in canvas pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x
            && o.y >= self.y
            && o.x + o.w <= self.x + self.w
            && o.y + o.h <= self.y + self.h
    }

    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// What we know of a participant's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VideoState {
    /// Frames are arriving at this size.
    Live { width: u32, height: u32 },
    /// The participant turned the camera off.
    Off,
    /// No decodable frame lately (not arrived yet, stalled or corrupt).
    Missing,
}

/// One person on stage, in stage order (who joined first sits first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seat {
    pub id: String,
    pub name: String,
    pub video: VideoState,
}

/// One participant's place in the programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tile {
    pub id: String,
    /// The whole cell, background included.
    pub cell: Rect,
    /// Where the video goes, letterboxed inside the cell; `None` shows the placeholder instead.
    pub video: Option<Rect>,
    /// The name label: text and its box (bottom-left of the cell).
    pub label: String,
    pub label_box: Rect,
    /// Font size of the label in pixels, in proportion to the cell.
    pub font_px: u32,
    /// Placeholder background colour (0xRRGGBB), stable per participant.
    pub color: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub canvas: Canvas,
    pub columns: u32,
    pub rows: u32,
    pub tiles: Vec<Tile>,
    /// Shown instead of tiles when nobody is on stage.
    pub slate: Option<String>,
}

/// Grid shape for `n` people: the smallest square that holds them, except that two sit side by side.
pub fn grid(n: usize) -> (u32, u32) {
    match n {
        0 => (0, 0),
        1 => (1, 1),
        2 => (2, 1),
        n => {
            let side = (n as f64).sqrt().ceil() as u32;
            (side, side)
        }
    }
}

/// Space between cells and around the grid, in pixels.
const GAP: u32 = 8;
/// Label heights are this fraction of a cell's height, clamped.
const LABEL_FRACTION: f64 = 0.09;

/// Lay out `seats` on `canvas`.
pub fn layout(canvas: Canvas, seats: &[Seat]) -> Layout {
    let (columns, rows) = grid(seats.len());
    if seats.is_empty() {
        return Layout {
            canvas,
            columns,
            rows,
            tiles: Vec::new(),
            slate: Some("The stage is empty".to_string()),
        };
    }
    // Cells share the canvas minus gaps; with one person there is no gap at all.
    let gap = if seats.len() == 1 { 0 } else { GAP };
    let cell_w = (canvas.width - gap * (columns + 1)) / columns;
    let cell_h = (canvas.height - gap * (rows + 1)) / rows;
    // Centre the grid (rounding leaves a few pixels), and centre a last row that is not full.
    let used_h = rows * cell_h + (rows + 1) * gap;
    let top = (canvas.height - used_h) / 2;
    let tiles = seats
        .iter()
        .enumerate()
        .map(|(i, seat)| {
            let (col, row) = (i as u32 % columns, i as u32 / columns);
            let in_row = (seats.len() as u32 - row * columns).min(columns);
            let used_w = in_row * cell_w + (in_row + 1) * gap;
            let left = (canvas.width - used_w) / 2;
            let cell = Rect {
                x: left + gap + col * (cell_w + gap),
                y: top + gap + row * (cell_h + gap),
                w: cell_w,
                h: cell_h,
            };
            tile(seat, cell)
        })
        .collect();
    Layout {
        canvas,
        columns,
        rows,
        tiles,
        slate: None,
    }
}

fn tile(seat: &Seat, cell: Rect) -> Tile {
    let video = match seat.video {
        VideoState::Live { width, height } if width > 0 && height > 0 => {
            Some(letterbox(cell, width, height))
        }
        _ => None,
    };
    let font_px = ((cell.h as f64 * LABEL_FRACTION).round() as u32).clamp(12, 40);
    let pad = font_px / 2;
    let label: String = seat.name.chars().take(32).collect();
    // A rough width: 0.6 em per character, capped to the cell.
    let text_w =
        (label.chars().count() as u32 * font_px * 6 / 10).min(cell.w.saturating_sub(3 * pad));
    let label_box = Rect {
        x: cell.x + pad,
        y: cell.y + cell.h - pad - (font_px + pad),
        w: text_w + pad,
        h: font_px + pad,
    };
    Tile {
        id: seat.id.clone(),
        cell,
        video,
        label,
        label_box,
        font_px,
        color: color_of(&seat.id),
    }
}

/// The largest rectangle of the source's aspect ratio that fits in `cell`, centred; even sizes,
/// since encoders and scalers want them.
pub fn letterbox(cell: Rect, src_w: u32, src_h: u32) -> Rect {
    let (cw, ch) = (cell.w as u64, cell.h as u64);
    let (sw, sh) = (src_w as u64, src_h as u64);
    let (w, h) = if cw * sh <= ch * sw {
        (cw, cw * sh / sw)
    } else {
        (ch * sw / sh, ch)
    };
    let (w, h) = ((w as u32) & !1, (h as u32) & !1);
    Rect {
        x: cell.x + (cell.w - w) / 2,
        y: cell.y + (cell.h - h) / 2,
        w,
        h,
    }
}

/// A muted, stable colour per participant (FNV-1a of the id into a small palette).
/// A participant's placeholder colour (0xRRGGBB): a function of the id only, so it can be set once.
pub fn color_of(id: &str) -> u32 {
    const PALETTE: [u32; 8] = [
        0x3b4a6b, 0x4b3b6b, 0x6b3b55, 0x6b4b3b, 0x3b6b5a, 0x3b5f6b, 0x5a6b3b, 0x55406b,
    ];
    let h = id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    PALETTE[(h % PALETTE.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(n: usize) -> Vec<Seat> {
        (0..n)
            .map(|i| Seat {
                id: format!("p-{i}"),
                name: format!("Person {i}"),
                video: VideoState::Live {
                    width: 1280,
                    height: 720,
                },
            })
            .collect()
    }

    #[test]
    fn grid_shapes_follow_the_issue() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (2, 1));
        assert_eq!(grid(3), (2, 2));
        assert_eq!(grid(4), (2, 2));
        for n in 5..=9 {
            assert_eq!(grid(n), (3, 3));
        }
        assert_eq!(grid(10), (4, 4));
    }

    #[test]
    fn one_person_fills_the_frame() {
        let l = layout(Canvas::HD, &seats(1));
        assert_eq!(
            l.tiles[0].cell,
            Rect {
                x: 0,
                y: 0,
                w: 1280,
                h: 720
            }
        );
        assert_eq!(
            l.tiles[0].video,
            Some(Rect {
                x: 0,
                y: 0,
                w: 1280,
                h: 720
            })
        );
    }

    #[test]
    fn two_people_side_by_side_letterboxed() {
        let l = layout(Canvas::HD, &seats(2));
        let (a, b) = (&l.tiles[0], &l.tiles[1]);
        assert_eq!(a.cell.y, b.cell.y);
        assert!(a.cell.x + a.cell.w <= b.cell.x);
        let v = a.video.unwrap();
        // 16:9 into a tall half: full width, bars above and below.
        assert_eq!(v.w, a.cell.w & !1);
        assert!(v.h < a.cell.h && v.y > a.cell.y);
    }

    #[test]
    fn three_people_use_a_2x2_grid_with_the_last_row_centred() {
        let l = layout(Canvas::HD, &seats(3));
        assert_eq!((l.columns, l.rows), (2, 2));
        let last = &l.tiles[2];
        let centre = last.cell.x + last.cell.w / 2;
        assert!((centre as i64 - 640).abs() <= 2, "centre {centre}");
    }

    #[test]
    fn camera_off_or_missing_gets_a_placeholder_with_the_name() {
        let mut s = seats(4);
        s[1].video = VideoState::Off;
        s[2].video = VideoState::Missing;
        s[3].video = VideoState::Live {
            width: 0,
            height: 0,
        };
        let l = layout(Canvas::HD, &s);
        assert!(l.tiles[0].video.is_some());
        for t in &l.tiles[1..] {
            assert_eq!(t.video, None, "{}", t.id);
        }
        assert_eq!(l.tiles[1].label, "Person 1");
    }

    #[test]
    fn nobody_on_stage_shows_the_slate() {
        let l = layout(Canvas::HD, &[]);
        assert!(l.tiles.is_empty());
        assert!(l.slate.is_some());
    }

    #[test]
    fn portrait_video_is_pillarboxed() {
        let cell = Rect {
            x: 0,
            y: 0,
            w: 640,
            h: 360,
        };
        let v = letterbox(cell, 720, 1280);
        assert_eq!(v.h, 360);
        assert!(v.w < 640 && v.x > 0);
    }

    #[test]
    fn colours_are_stable_per_participant() {
        assert_eq!(color_of("p-1"), color_of("p-1"));
        let l1 = layout(Canvas::HD, &seats(3));
        let l2 = layout(Canvas::HD, &seats(5));
        assert_eq!(l1.tiles[0].color, l2.tiles[0].color);
    }

    proptest::proptest! {
        #[test]
        fn every_layout_is_inside_the_canvas_and_tiles_never_overlap(
            n in 0usize..=16,
            sw in 1u32..4000,
            sh in 1u32..4000,
            name in "\\PC{0,80}",
        ) {
            let mut s = seats(n);
            for seat in &mut s {
                seat.video = VideoState::Live { width: sw, height: sh };
                seat.name = name.clone();
            }
            let l = layout(Canvas::HD, &s);
            let canvas = Rect { x: 0, y: 0, w: 1280, h: 720 };
            proptest::prop_assert_eq!(l.tiles.len(), n);
            for (i, t) in l.tiles.iter().enumerate() {
                proptest::prop_assert!(canvas.contains(&t.cell));
                proptest::prop_assert!(t.cell.contains(&t.label_box));
                if let Some(v) = t.video {
                    proptest::prop_assert!(t.cell.contains(&v));
                }
                for u in &l.tiles[i + 1..] {
                    proptest::prop_assert!(!t.cell.overlaps(&u.cell));
                }
            }
        }
    }
}
