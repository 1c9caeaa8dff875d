//! The multivariant playlist (`master.m3u8`): which renditions exist and what
//! a player needs to pick one before fetching it.

use std::fmt::Write as _;

use super::PlaylistError;

/// Picture size for `RESOLUTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One variant stream (`EXT-X-STREAM-INF`) of the multivariant playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantStream {
    /// The rendition's media playlist, relative to `master.m3u8`, e.g. `720p/index.m3u8`.
    pub uri: String,
    /// Peak bit rate in bits per second (`BANDWIDTH`, required by the spec).
    pub bandwidth: u64,
    /// `RESOLUTION`, for video renditions.
    pub resolution: Option<Resolution>,
    /// RFC 6381 codecs of every track, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
}

/// Renders `master.m3u8` for the given variants, in order.
pub fn render_multivariant(variants: &[VariantStream]) -> Result<String, PlaylistError> {
    let mut out = String::from("#EXTM3U\n");
    for v in variants {
        check_quoted("CODECS", &v.codecs)?;
        check_uri(&v.uri)?;
        if v.bandwidth == 0 {
            return Err(PlaylistError::InvalidAttribute {
                attribute: "BANDWIDTH",
                value: "0".to_owned(),
                reason: "must be positive",
            });
        }
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
        if let Some(r) = v.resolution {
            let _ = write!(out, ",RESOLUTION={}x{}", r.width, r.height);
        }
        let _ = writeln!(out, ",CODECS=\"{}\"", v.codecs);
        let _ = writeln!(out, "{}", v.uri);
    }
    Ok(out)
}

/// A quoted-string may not contain `"`, CR or LF (RFC 8216 4.2).
fn check_quoted(attribute: &'static str, value: &str) -> Result<(), PlaylistError> {
    if value.is_empty() || value.contains(['"', '\r', '\n']) {
        return Err(PlaylistError::InvalidAttribute {
            attribute,
            value: value.to_owned(),
            reason: "must be non-empty, without quotes or line breaks",
        });
    }
    Ok(())
}

/// A URI line may not be empty, start with `#` (it would read as a tag) or break the line.
fn check_uri(uri: &str) -> Result<(), PlaylistError> {
    if uri.is_empty() || uri.starts_with('#') || uri.contains(['\r', '\n']) || uri.trim() != uri {
        return Err(PlaylistError::InvalidAttribute {
            attribute: "URI",
            value: uri.to_owned(),
            reason: "must be non-empty, not start with '#', and have no line breaks or edge spaces",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v720() -> VariantStream {
        VariantStream {
            uri: "720p/index.m3u8".to_owned(),
            bandwidth: 2_500_000,
            resolution: Some(Resolution {
                width: 1280,
                height: 720,
            }),
            codecs: "avc1.64001f,mp4a.40.2".to_owned(),
        }
    }

    #[test]
    fn one_rendition() {
        assert_eq!(
            render_multivariant(&[v720()]).unwrap(),
            "#EXTM3U\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\"\n\
             720p/index.m3u8\n"
        );
    }

    #[test]
    fn audio_only_has_no_resolution() {
        let v = VariantStream {
            resolution: None,
            codecs: "mp4a.40.2".to_owned(),
            ..v720()
        };
        let text = render_multivariant(&[v]).unwrap();
        assert!(text.contains("#EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS=\"mp4a.40.2\"\n"));
        assert!(!text.contains("RESOLUTION"));
    }

    #[test]
    fn attributes_that_would_break_the_syntax_are_refused() {
        let bad_codecs = VariantStream {
            codecs: "avc1\",x".to_owned(),
            ..v720()
        };
        assert!(matches!(
            render_multivariant(&[bad_codecs]),
            Err(PlaylistError::InvalidAttribute {
                attribute: "CODECS",
                ..
            })
        ));
        for uri in ["", "#x.m3u8", "a\nb.m3u8", " a.m3u8"] {
            let v = VariantStream {
                uri: uri.to_owned(),
                ..v720()
            };
            assert!(
                matches!(
                    render_multivariant(&[v]),
                    Err(PlaylistError::InvalidAttribute {
                        attribute: "URI",
                        ..
                    })
                ),
                "{uri:?}"
            );
        }
        let zero = VariantStream {
            bandwidth: 0,
            ..v720()
        };
        let err = render_multivariant(&[zero]).unwrap_err();
        assert!(err.to_string().contains("BANDWIDTH"), "{err}");
    }
}
