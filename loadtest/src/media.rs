//! The media every publisher sends: a short VP8 + Opus clip made once with ffmpeg and cached
//! under `$XDG_CACHE_HOME/rostrum-loadtest/` (or `~/.cache/…`), keyed by its parameters.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::{ivf, ogg};

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("cannot run ffmpeg (is it installed?): {0}")]
    Spawn(std::io::Error),
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    #[error("cache {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("clip video: {0}")]
    Ivf(#[from] ivf::IvfError),
    #[error("clip audio: {0}")]
    Ogg(#[from] ogg::OggError),
    #[error("bad video spec {0:?} (want WxH@FPS, e.g. 640x360@30)")]
    Spec(String),
}

/// `WxH@FPS`, e.g. `640x360@30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl std::str::FromStr for VideoSpec {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<VideoSpec, MediaError> {
        let err = || MediaError::Spec(s.to_string());
        let (size, fps) = s.split_once('@').unwrap_or((s, "30"));
        let (w, h) = size.split_once('x').ok_or_else(err)?;
        let spec = VideoSpec {
            width: w.parse().map_err(|_| err())?,
            height: h.parse().map_err(|_| err())?,
            fps: fps.parse().map_err(|_| err())?,
        };
        let even = spec.width.is_multiple_of(2) && spec.height.is_multiple_of(2);
        if !even || !(16..=3840).contains(&spec.width) || !(16..=2160).contains(&spec.height) {
            return Err(err());
        }
        if !(1..=60).contains(&spec.fps) {
            return Err(err());
        }
        Ok(spec)
    }
}

/// A decoded-from-container clip: VP8 frames at `fps`, Opus packets with their 48 kHz durations.
#[derive(Debug, Clone)]
pub struct Clip {
    pub fps: u32,
    pub video: Vec<Vec<u8>>,
    pub audio: Vec<(Vec<u8>, u32)>,
}

pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("rostrum-loadtest")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
    move |err| MediaError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Makes (or reuses) the clip and reads it. Blocking: call from `spawn_blocking`.
pub fn ensure_clip(spec: VideoSpec, kbps: u32, seconds: u32) -> Result<Clip, MediaError> {
    let dir = cache_root().join(format!(
        "clip-{}x{}-{}fps-{}k-{}s",
        spec.width, spec.height, spec.fps, kbps, seconds
    ));
    let video = dir.join("video.ivf");
    let audio = dir.join("audio.ogg");
    if !(video.is_file() && audio.is_file()) {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // Write beside, then rename: concurrent runs never read a half-written clip.
        let tmp = dir.join(format!("tmp-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let (tv, ta) = (tmp.join("video.ivf"), tmp.join("audio.ogg"));
        let out = Command::new("ffmpeg")
            .args([
                "-y",
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!(
                "testsrc2=size={}x{}:rate={}",
                spec.width, spec.height, spec.fps
            ))
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", &seconds.to_string(), "-map", "0:v", "-c:v", "libvpx"])
            .args([
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-lag-in-frames",
                "0",
            ])
            .args(["-b:v", &format!("{kbps}k"), "-g", &spec.fps.to_string()])
            .args(["-pix_fmt", "yuv420p", "-f", "ivf"])
            .arg(&tv)
            .args(["-t", &seconds.to_string(), "-map", "1:a", "-c:a", "libopus"])
            .args([
                "-b:a",
                "32k",
                "-frame_duration",
                "20",
                "-ac",
                "1",
                "-f",
                "ogg",
            ])
            .arg(&ta)
            .output()
            .map_err(MediaError::Spawn)?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(MediaError::Ffmpeg(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        std::fs::rename(&tv, &video).map_err(io(&video))?;
        std::fs::rename(&ta, &audio).map_err(io(&audio))?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let vbytes = std::fs::read(&video).map_err(io(&video))?;
    let abytes = std::fs::read(&audio).map_err(io(&audio))?;
    let (_, frames) = ivf::parse(&vbytes)?;
    let audio = ogg::opus_packets(&abytes)?
        .into_iter()
        .map(|p| {
            let n = ogg::opus_samples(&p).unwrap_or(960);
            (p, n)
        })
        .collect();
    Ok(Clip {
        fps: spec.fps,
        video: frames.into_iter().map(|f| f.data).collect(),
        audio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_specs() {
        let s: VideoSpec = "640x360@30".parse().unwrap();
        assert_eq!((s.width, s.height, s.fps), (640, 360, 30));
        assert_eq!("320x180".parse::<VideoSpec>().unwrap().fps, 30);
        for bad in ["640x", "x@30", "641x360@30", "640x360@0", "640x360@abc", ""] {
            assert!(bad.parse::<VideoSpec>().is_err(), "{bad}");
        }
    }
}
