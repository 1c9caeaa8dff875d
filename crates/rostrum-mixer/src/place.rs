//! Pure helpers that turn a [`Layout`] tile into compositor pad properties and label fonts, kept
//! apart from GStreamer so they can be unit-tested without pixels.

use rostrum_compositor::layout::{Rect, Tile};

/// Z-order of the "stage is empty" slate: below everything.
pub const Z_SLATE: u32 = 0;
/// Z-order of a seat's placeholder tile.
pub const Z_PLACEHOLDER: u32 = 1;
/// Z-order of a seat's video tile: above its placeholder.
pub const Z_VIDEO: u32 = 2;

/// Where one compositor pad goes and whether it is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PadBox {
    pub rect: Rect,
    /// 1.0 shown, 0.0 hidden (the compositor skips converting a pad with alpha 0).
    pub alpha: f64,
    pub zorder: u32,
}

/// Both pads of one seat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TilePads {
    pub placeholder: PadBox,
    pub video: PadBox,
}

/// Maps a tile to its two pads: video (letterboxed rect) shown when the layout has a video rect,
/// otherwise the placeholder fills the cell. The hidden video pad keeps a sensible rect so a
/// first frame never flashes at the canvas origin.
pub fn tile_pads(tile: &Tile) -> TilePads {
    let live = tile.video.is_some();
    TilePads {
        placeholder: PadBox {
            rect: tile.cell,
            alpha: if live { 0.0 } else { 1.0 },
            zorder: Z_PLACEHOLDER,
        },
        video: PadBox {
            rect: tile.video.unwrap_or(tile.cell),
            alpha: if live { 1.0 } else { 0.0 },
            zorder: Z_VIDEO,
        },
    }
}

/// Label font and padding in *source* pixels: textoverlay draws before the compositor scales,
/// so `font_px` (canvas pixels) is scaled by `src_h / shown_h`.
pub fn label_font(font_px: u32, src_h: u32, shown_h: u32) -> (String, i32) {
    let scale = if shown_h == 0 {
        1.0
    } else {
        src_h as f64 / shown_h as f64
    };
    let px = ((font_px as f64 * scale).round() as u32).max(6);
    let pad = ((font_px as f64 / 2.0 * scale).round() as i32).max(2);
    (format!("Sans Bold {px}px"), pad)
}

/// Height of the placeholder source frames (width is 16:9 of it); small, since it is scaled up
/// into the cell and only converted while visible.
pub const PLACEHOLDER_H: u32 = 360;
pub const PLACEHOLDER_W: u32 = 640;

/// Placeholder name font: the label size × 1.5, centred, in placeholder source pixels.
pub fn placeholder_font(font_px: u32, cell_h: u32) -> String {
    label_font(font_px * 3 / 2, PLACEHOLDER_H, cell_h).0
}

/// `a=fmtp` parameters (`k=v;k=v`) that belong in H.264 RTP caps; anything else is dropped so a
/// strange fmtp can never make the caps unparsable.
pub fn h264_fmtp(fmtp: &str) -> Vec<(String, String)> {
    fmtp.split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            let keep = matches!(
                k.as_str(),
                "packetization-mode" | "profile-level-id" | "sprop-parameter-sets"
            );
            let clean = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | ','));
            (keep && clean).then(|| (k, v.to_string()))
        })
        .collect()
}

/// Runs of the programme's top-level element names: `in<N>-…` belongs to input branch N,
/// `seat<N>-…` to seat N, anything else is the shared core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Branch(u64),
    Seat(u64),
    Core,
}

/// Who owns a top-level element, from its name.
pub fn owner_of(name: &str) -> Owner {
    let num = |rest: &str| rest.split('-').next().and_then(|n| n.parse::<u64>().ok());
    if let Some(n) = name.strip_prefix("in").and_then(num) {
        Owner::Branch(n)
    } else if let Some(n) = name.strip_prefix("seat").and_then(num) {
        Owner::Seat(n)
    } else {
        Owner::Core
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rostrum_compositor::layout::{layout, Canvas, Seat, VideoState};

    fn seat(id: &str, video: VideoState) -> Seat {
        Seat {
            id: id.into(),
            name: id.to_uppercase(),
            video,
        }
    }

    #[test]
    fn live_tile_shows_letterboxed_video_and_hides_placeholder() {
        let l = layout(
            Canvas::HD,
            &[
                seat(
                    "a",
                    VideoState::Live {
                        width: 640,
                        height: 480,
                    },
                ),
                seat("b", VideoState::Missing),
            ],
        );
        let a = tile_pads(&l.tiles[0]);
        assert_eq!(a.video.alpha, 1.0);
        assert_eq!(a.placeholder.alpha, 0.0);
        assert_eq!(Some(a.video.rect), l.tiles[0].video);
        assert_eq!(a.placeholder.rect, l.tiles[0].cell);
        assert!(a.video.zorder > a.placeholder.zorder && a.placeholder.zorder > Z_SLATE);

        let b = tile_pads(&l.tiles[1]);
        assert_eq!(b.video.alpha, 0.0);
        assert_eq!(b.placeholder.alpha, 1.0);
        assert_eq!(b.video.rect, l.tiles[1].cell);
    }

    #[test]
    fn label_font_scales_to_source_pixels() {
        // 360p source shown at 720: a 40 px label is 20 px in the source.
        assert_eq!(label_font(40, 360, 720), ("Sans Bold 20px".into(), 10));
        assert_eq!(label_font(20, 720, 360).0, "Sans Bold 40px");
        assert_eq!(label_font(12, 100, 0).0, "Sans Bold 12px");
        assert_eq!(placeholder_font(40, 720), "Sans Bold 30px");
    }

    #[test]
    fn fmtp_keeps_only_safe_h264_keys() {
        let got = h264_fmtp(
            "level-asymmetry-allowed=1;packetization-mode=1; profile-level-id=42e01f;x=\"evil\"",
        );
        assert_eq!(
            got,
            vec![
                ("packetization-mode".to_string(), "1".to_string()),
                ("profile-level-id".to_string(), "42e01f".to_string()),
            ]
        );
        assert!(h264_fmtp("packetization-mode=1,\"a;b").is_empty());
        assert!(h264_fmtp("").is_empty());
    }

    #[test]
    fn element_names_map_to_owners() {
        assert_eq!(owner_of("in12-vp8dec"), Owner::Branch(12));
        assert_eq!(owner_of("seat3-rtpbin"), Owner::Seat(3));
        assert_eq!(owner_of("comp"), Owner::Core);
        assert_eq!(owner_of("input"), Owner::Core);
        assert_eq!(owner_of("seatx-foo"), Owner::Core);
    }
}
