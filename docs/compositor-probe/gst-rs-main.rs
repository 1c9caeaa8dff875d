//! Minimal gstreamer-rs check: live compositor, a VP8/RTP input added at t=2 s and removed at t=4 s,
//! fragmented MP4 out. usage: mixprobe OUT.mp4 RTP_PORT
use gst::prelude::*;
use gstreamer as gst;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gst::init()?;
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).cloned().unwrap_or_else(|| "rs_out.mp4".into());
    let port: u16 = args.get(2).map(|p| p.parse().unwrap()).unwrap_or(5000);
    let t0 = Instant::now();
    let pipeline = gst::parse::launch(&format!(
        "compositor name=comp background=black ignore-inactive-pads=true min-upstream-latency=300000000 ! \
         video/x-raw,format=I420,width=1280,height=720,framerate=30/1,colorimetry=bt709,chroma-site=mpeg2 ! queue ! \
         x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 bframes=0 option-string=scenecut=0 ! h264parse ! \
         mp4mux fragment-duration=500 streamable=true ! filesink location={out} \
         videotestsrc is-live=true pattern=solid-color foreground-color=0xff101018 ! \
         video/x-raw,format=I420,width=1280,height=720,framerate=30/1,colorimetry=bt709,chroma-site=mpeg2 ! \
         queue min-threshold-time=290000000 max-size-time=2000000000 max-size-buffers=0 max-size-bytes=0 ! comp.sink_0"
    ))?
    .downcast::<gst::Pipeline>()
    .unwrap();
    let comp = pipeline.by_name("comp").unwrap();
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let f2 = frames.clone();
    comp.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        f2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing)?;
    let log = |m: &str| eprintln!("[rs {:6.3}] {m}", t0.elapsed().as_secs_f64());

    std::thread::sleep(Duration::from_secs(2));
    // --- join: a participant bin with one request pad on the running compositor
    let bin = gst::parse::bin_from_description(
        &format!(
            "udpsrc port={port} caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96\" ! \
             rtpjitterbuffer latency=100 ! rtpvp8depay request-keyframe=true wait-for-keyframe=true ! vp8dec ! \
             videoconvert ! video/x-raw,format=I420 ! queue max-size-buffers=3"
        ),
        true,
    )?;
    pipeline.add(&bin)?;
    let sinkpad = comp.request_pad_simple("sink_%u").unwrap();
    sinkpad.set_property("xpos", 640i32);
    sinkpad.set_property("ypos", 0i32);
    sinkpad.set_property("width", 640i32);
    sinkpad.set_property("height", 720i32);
    sinkpad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
    sinkpad.set_property("zorder", 1u32);
    bin.static_pad("src").unwrap().link(&sinkpad)?;
    bin.sync_state_with_parent()?;
    log(&format!("added {} (frames so far {})", sinkpad.name(), frames.load(std::sync::atomic::Ordering::Relaxed)));

    std::thread::sleep(Duration::from_secs(1));
    // --- move it live (re-layout)
    sinkpad.set_property("xpos", 0i32);
    sinkpad.set_property("width", 1280i32);
    log("moved pad to full frame");

    std::thread::sleep(Duration::from_secs(1));
    // --- leave: block, unlink, release, NULL, remove
    let ghost = bin.static_pad("src").unwrap();
    ghost.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| gst::PadProbeReturn::Ok);
    ghost.unlink(&sinkpad)?;
    comp.release_request_pad(&sinkpad);
    bin.set_state(gst::State::Null)?;
    pipeline.remove(&bin)?;
    log(&format!("removed (frames so far {})", frames.load(std::sync::atomic::Ordering::Relaxed)));

    std::thread::sleep(Duration::from_secs(2));
    pipeline.send_event(gst::event::Eos::new());
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(5)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => {
                log(&format!("error {} {:?}", e.error(), e.debug()));
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    log(&format!("done, {} frames", frames.load(std::sync::atomic::Ordering::Relaxed)));
    Ok(())
}
// touch 1795565981
