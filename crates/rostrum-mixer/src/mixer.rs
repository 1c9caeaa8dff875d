//! The pipeline and its live edits: seats (placeholder tile + a per-participant `rtpbin`), input
//! branches (socket → rtpbin session → depay → decode → compositor / audiomixer pad), re-layout
//! on the running compositor pads, tile state from decoded-frame timestamps, and error isolation
//! (an error inside a branch rebuilds that branch; only the shared core is fatal).
//!
//! Element naming carries ownership: every element of input branch N is `in<N>-…`, of seat N is
//! `seat<N>-…`, so a bus error is attributed by its top-level element's name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use gio::prelude::*;
use gstreamer as gst;
use gstreamer::prelude::*;
use rostrum_compositor::layout::{layout, Canvas, Seat, VideoState};
use rostrum_compositor::protocol::{Command, Event, InputSpec, MediaKind, TileState};

use crate::place::{self, Owner};
use crate::{emit, log, Args, Msg};

const MS: u64 = 1_000_000;

/// Per-pad converter options: inputs keep their own colour matrix instead of a bt601↔bt709
/// pass per pad per frame (pitfall 3; keys need the `GstVideoConverter.` prefix or are ignored).
const CONVERTER_CONFIG: &str = "cfg, GstVideoConverter.matrix-mode=(GstVideoMatrixMode)none, \
     GstVideoConverter.chroma-mode=(GstVideoChromaMode)none, \
     GstVideoConverter.primaries-mode=(GstVideoPrimariesMode)none, \
     GstVideoConverter.gamma-mode=(GstVideoGammaMode)none";

/// Milliseconds since process start; 0 means "never". Used by the per-frame probe (one atomic
/// store per decoded frame: the only per-frame Rust work).
pub fn now_ms() -> u64 {
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// One running decode branch of an input.
struct Branch {
    num: u64,
    participant: String,
    kind: MediaKind,
    session: u32,
    /// udpsrc first, then the chain; udpsink (RTCP out) last.
    elements: Vec<gst::Element>,
    udpsrc: gst::Element,
    /// rtpbin request pads of this session (recv_rtp_sink, recv_rtcp_sink, send_rtcp_src).
    rtp_pads: Vec<gst::Pad>,
    pad_added: Option<glib::SignalHandlerId>,
    /// The chain's last src pad, linked to `mixer_pad`.
    out: gst::Pad,
    mixer_pad: gst::Pad,
    /// Video only: the name label drawn on the decoded frames.
    label: Option<gst::Element>,
    /// Video only: `now_ms()` of the last decoded frame.
    last_frame: Arc<AtomicU64>,
}

/// A bound socket, and its branch once `add`ed.
struct Input {
    socket: gio::Socket,
    port: u16,
    spec: Option<InputSpec>,
    branch: Option<Branch>,
    /// After a branch error: when to rebuild, and the back-off so far.
    rebuild_at: Option<Instant>,
    backoff: Duration,
}

/// Someone on stage.
struct SeatState {
    id: String,
    name: String,
    num: u64,
    rtpbin: gst::Element,
    next_session: u32,
    ph_elements: Vec<gst::Element>,
    ph_label: gst::Element,
    ph_out: gst::Pad,
    ph_pad: gst::Pad,
    off: bool,
    state: TileState,
    /// Size of the shown video's decoded frames.
    dims: Option<(u32, u32)>,
}

pub struct Mixer {
    args: Args,
    pipeline: gst::Pipeline,
    comp: gst::Element,
    amix: gst::Element,
    slate_label: gst::Element,
    slate_pad: gst::Pad,
    seats: Vec<SeatState>,
    inputs: HashMap<String, Input>,
    next_num: u64,
    /// Throttle for GStreamer WARNING messages (a corrupt stream posts one per frame).
    warn_window: (Instant, u32),
    /// What each compositor pad was last given, by pad name: a pad property write makes the
    /// compositor rebuild that pad's converter and races its aggregation thread (GStreamer
    /// 1.22), so only real changes are written.
    applied: RefCell<HashMap<String, place::PadBox>>,
    /// Pad geometry waiting for the compositor's next output frame (see [`PendingBoxes`]).
    pending: PendingBoxes,
    /// `now_ms()` of the compositor's last output frame, for the watchdog.
    pub last_output: Arc<AtomicU64>,
}

impl Mixer {
    /// Builds the always-on core: slate + silence → compositor/audiomixer → x264/AAC → mp4mux → fd 1.
    pub fn new(args: Args, tx: mpsc::Sender<Msg>) -> anyhow::Result<Self> {
        let (w, h, fps) = (args.width, args.height, args.fps.max(1));
        if w == 0 || h == 0 || w % 2 == 1 || h % 2 == 1 {
            bail!("--width/--height must be even and non-zero");
        }
        let lat = 300 * MS;
        // Hold the always-present inputs back by ~the aggregator latency so the aggregators run
        // at their deadline from the start instead of jumping when the first participant arrives.
        let pace = format!(
            "queue min-threshold-time={} max-size-time={} max-size-buffers=0 max-size-bytes=0",
            lat - 10 * MS,
            2 * lat + 1000 * MS
        );
        // Pitfalls 2 + 3: pin I420 and the output colorimetry, or compositor negotiates 4:4:4
        // and converts every pad through a colour matrix every frame.
        let vcaps = format!(
            "video/x-raw,format=I420,width={w},height={h},framerate={fps}/1,\
             colorimetry=bt709,chroma-site=mpeg2"
        );
        let desc = format!(
            "compositor name=comp background=black ignore-inactive-pads=true \
               min-upstream-latency={lat} start-time-selection=first ! {vcaps} ! \
             queue name=venc_q max-size-buffers=2 max-size-time=0 max-size-bytes=0 ! \
             x264enc name=venc tune=zerolatency speed-preset=veryfast key-int-max={kim} bframes=0 \
               bitrate={vk} vbv-buf-capacity=1000 option-string=scenecut=0 ! \
             video/x-h264,profile=high ! h264parse name=vparse ! \
             queue name=vmux_q max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! mux.video_0 \
             audiomixer name=amix ignore-inactive-pads=true min-upstream-latency={lat} \
               start-time-selection=first ! audio/x-raw,rate=48000,channels=2 ! \
             audioconvert name=aconv ! avenc_aac name=aenc bitrate={ab} ! aacparse name=aparse ! \
             queue name=amux_q max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! mux.audio_0 \
             mp4mux name=mux fragment-duration={frag} streamable=true ! fdsink name=out fd=1 sync=false \
             videotestsrc name=slate_src is-live=true pattern=solid-color foreground-color=0xff101018 ! \
               {vcaps} ! textoverlay name=slate text=\"The stage is empty\" valignment=center \
               halignment=center font-desc=\"Sans {slate_px}px\" auto-resize=false ! {pace} ! comp.sink_0 \
             audiotestsrc name=silence is-live=true wave=silence samplesperbuffer=480 ! \
               audio/x-raw,rate=48000,channels=2 ! {pace} ! amix.sink_0",
            kim = fps * args.keyint_s.max(1),
            vk = args.video_kbps,
            ab = args.audio_kbps * 1000,
            frag = if args.fragment_ms == 0 { 1000 / fps } else { args.fragment_ms },
            slate_px = h / 18,
        );
        let pipeline = gst::parse::launch(&desc)
            .context("building the core pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("core is not a pipeline"))?;
        let by_name = |n: &str| {
            pipeline
                .by_name(n)
                .ok_or_else(|| anyhow!("core element {n} missing"))
        };
        let comp = by_name("comp")?;
        let amix = by_name("amix")?;
        let slate_label = by_name("slate")?;
        serialize_text(&slate_label);
        let slate_pad = comp
            .static_pad("sink_0")
            .ok_or_else(|| anyhow!("compositor sink_0 missing"))?;
        slate_pad.set_property("zorder", place::Z_SLATE);

        // One atomic store per output frame: lets the watchdog notice a wedged compositor. The
        // same probe applies queued pad geometry: it runs on the aggregator's own thread between
        // two frames, when no conversion is in flight.
        let last_output = Arc::new(AtomicU64::new(now_ms()));
        let pending = PendingBoxes::default();
        if let Some(src) = comp.static_pad("src") {
            let lo = last_output.clone();
            let pending = pending.clone();
            src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                lo.store(now_ms(), Ordering::Relaxed);
                pending.apply();
                gst::PadProbeReturn::Ok
            });
        }

        // Forward only what the control thread acts on; everything else is dropped right here.
        let bus = pipeline
            .bus()
            .ok_or_else(|| anyhow!("pipeline has no bus"))?;
        bus.set_sync_handler(move |_, msg| {
            use gst::MessageView as V;
            if matches!(
                msg.view(),
                V::Error(_) | V::Warning(_) | V::Eos(_) | V::Latency(_)
            ) {
                let _ = tx.send(Msg::Bus(msg.clone()));
            }
            gst::BusSyncReply::Drop
        });

        Ok(Mixer {
            args,
            pipeline,
            comp,
            amix,
            slate_label,
            slate_pad,
            seats: Vec::new(),
            inputs: HashMap::new(),
            next_num: 1,
            warn_window: (Instant::now(), 0),
            applied: RefCell::new(HashMap::new()),
            pending,
            last_output,
        })
    }

    /// PLAYING, and wait (bounded) until it is.
    pub fn play(&self) -> anyhow::Result<()> {
        self.pipeline
            .set_state(gst::State::Playing)
            .context("pipeline to PLAYING")?;
        let (res, cur, _) = self.pipeline.state(gst::ClockTime::from_seconds(5));
        res.context("pipeline did not reach PLAYING")?;
        if cur != gst::State::Playing {
            bail!("pipeline stuck in {cur:?}");
        }
        Ok(())
    }

    fn next_num(&mut self) -> u64 {
        let n = self.next_num;
        self.next_num += 1;
        n
    }

    fn warn(message: impl Into<String>) {
        emit(&Event::Warning {
            message: message.into(),
        });
    }

    pub fn command(&mut self, cmd: Command) {
        let res = match cmd {
            Command::Seat { participant, name } => self.seat(participant, name),
            Command::Unseat { participant } => self.unseat(&participant),
            Command::VideoOff { participant, off } => self.video_off(&participant, off),
            Command::Bind { input } => self.bind(input),
            Command::Add(spec) => self.add(spec),
            Command::Remove { input } => self.remove(&input),
            // Handled by the control loop.
            Command::Stop => Ok(()),
        };
        if let Err(e) = res {
            Self::warn(format!("{e:#}"));
        }
    }

    // ---- seats ---------------------------------------------------------------------------

    fn seat(&mut self, id: String, name: String) -> anyhow::Result<()> {
        if let Some(s) = self.seats.iter_mut().find(|s| s.id == id) {
            // Seating again is a rename, not an error.
            s.name = name;
            s.ph_label.set_property("text", &s.name);
            for b in self.inputs.values().filter_map(|i| i.branch.as_ref()) {
                if let (true, Some(l)) = (b.participant == id, &b.label) {
                    l.set_property("text", &s.name);
                }
            }
            return Ok(());
        }
        let num = self.next_num();
        let p = |what: &str| format!("seat{num}-{what}");
        let rtpbin = gst::ElementFactory::make("rtpbin")
            .name(p("rtpbin"))
            .property("latency", self.args.jitter_ms)
            .property("drop-on-latency", true)
            .build()?;
        // AVPF: PLI/FIR leave at once instead of waiting for the next regular RTCP interval.
        rtpbin.set_property_from_str("rtp-profile", "avpf");

        // Placeholder: a solid colour with the name, small and slow (scaled into the cell, and
        // only converted while visible).
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", place::PLACEHOLDER_W as i32)
            .field("height", place::PLACEHOLDER_H as i32)
            .field("framerate", gst::Fraction::new(5, 1))
            .field("colorimetry", "bt709")
            .field("chroma-site", "mpeg2")
            .build();
        let src = gst::ElementFactory::make("videotestsrc")
            .name(p("ph-src"))
            .property("is-live", true)
            .property_from_str("pattern", "solid-color")
            // Set once, before it runs: videotestsrc regenerates its cached solid frame when
            // the colour changes, racing its own streaming thread (SIGSEGV in
            // gst_video_frame_copy, GStreamer 1.22). The colour depends on the id only.
            .property(
                "foreground-color",
                0xff00_0000u32 | rostrum_compositor::layout::color_of(&id),
            )
            .build()?;
        let filter = gst::ElementFactory::make("capsfilter")
            .name(p("ph-caps"))
            .property("caps", &caps)
            .build()?;
        let label = gst::ElementFactory::make("textoverlay")
            .name(p("ph-label"))
            .property("text", &name)
            .property_from_str("valignment", "center")
            .property_from_str("halignment", "center")
            .property("auto-resize", false)
            .property("font-desc", "Sans Bold 30px")
            .build()?;
        serialize_text(&label);
        let ph_elements = vec![src, filter, label.clone()];
        self.pipeline.add(&rtpbin)?;
        self.pipeline.add_many(&ph_elements)?;
        gst::Element::link_many(&ph_elements)?;
        let ph_out = label
            .static_pad("src")
            .ok_or_else(|| anyhow!("textoverlay has no src pad"))?;
        let ph_pad = self
            .comp
            .request_pad_simple("sink_%u")
            .ok_or_else(|| anyhow!("compositor refused a pad"))?;
        // Pitfall 5: set the pad's layout only once it exists (apply_layout below).
        ph_pad.set_property("zorder", place::Z_PLACEHOLDER);
        ph_pad.set_property("alpha", 0.0f64);
        ph_out.link(&ph_pad)?;
        for e in ph_elements.iter().rev() {
            e.sync_state_with_parent()?;
        }
        rtpbin.sync_state_with_parent()?;
        self.seats.push(SeatState {
            id: id.clone(),
            name,
            num,
            rtpbin,
            next_session: 0,
            ph_elements,
            ph_label: label,
            ph_out,
            ph_pad,
            off: false,
            state: TileState::Missing,
            dims: None,
        });
        emit(&Event::Tile {
            participant: id,
            state: TileState::Missing,
        });
        self.apply_layout();
        self.announce_layout();
        Ok(())
    }

    fn unseat(&mut self, id: &str) -> anyhow::Result<()> {
        let idx = self
            .seats
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| anyhow!("unseat: unknown participant {id}"))?;
        // Its inputs stay bound (the node removes them), but stop decoding.
        let nums: Vec<String> = self
            .inputs
            .iter()
            .filter(|(_, i)| i.spec.as_ref().is_some_and(|s| s.participant == id))
            .map(|(k, _)| k.clone())
            .collect();
        for k in nums {
            let branch = self.inputs.get_mut(&k).and_then(|inp| {
                inp.spec = None;
                inp.rebuild_at = None;
                inp.branch.take()
            });
            if let Some(b) = branch {
                self.teardown_branch(b);
            }
        }
        let s = self.seats.remove(idx);
        block_unlink_release(&s.ph_out, &s.ph_pad, &self.comp);
        self.forget_pad(&s.ph_pad);
        for e in &s.ph_elements {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = s.rtpbin.set_state(gst::State::Null);
        let _ = self.pipeline.remove_many(&s.ph_elements);
        let _ = self.pipeline.remove(&s.rtpbin);
        self.apply_layout();
        self.announce_layout();
        Ok(())
    }

    fn video_off(&mut self, id: &str, off: bool) -> anyhow::Result<()> {
        let s = self
            .seats
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| anyhow!("video-off: unknown participant {id}"))?;
        s.off = off;
        self.tick();
        Ok(())
    }

    /// `Layout{tiles}`: after every re-flow, and at start (the slate).
    pub fn announce_layout(&self) {
        emit(&Event::Layout {
            tiles: self.seats.len(),
        });
    }

    // ---- inputs ---------------------------------------------------------------------------

    fn bind(&mut self, input: String) -> anyhow::Result<()> {
        if let Some(i) = self.inputs.get(&input) {
            // Idempotent: tell the port again.
            emit(&Event::Bound {
                input,
                port: i.port,
            });
            return Ok(());
        }
        let socket = gio::Socket::new(
            gio::SocketFamily::Ipv4,
            gio::SocketType::Datagram,
            gio::SocketProtocol::Udp,
        )?;
        let addr = gio::InetSocketAddress::from_string("127.0.0.1", 0)
            .ok_or_else(|| anyhow!("bad bind address"))?;
        socket.bind(&addr, false)?;
        // Room for a keyframe burst while the branch is still being built (and for jitter).
        socket.set_option(libc::SOL_SOCKET, libc::SO_RCVBUF, 1 << 20)?;
        let port = socket
            .local_address()?
            .downcast::<gio::InetSocketAddress>()
            .map_err(|_| anyhow!("socket has no inet address"))?
            .port();
        self.inputs.insert(
            input.clone(),
            Input {
                socket,
                port,
                spec: None,
                branch: None,
                rebuild_at: None,
                backoff: Duration::from_millis(250),
            },
        );
        emit(&Event::Bound { input, port });
        Ok(())
    }

    fn add(&mut self, spec: InputSpec) -> anyhow::Result<()> {
        if !self.inputs.contains_key(&spec.input) {
            bail!("add: input {} is not bound", spec.input);
        }
        if !self.seats.iter().any(|s| s.id == spec.participant) {
            bail!(
                "add: participant {} of input {} is not seated",
                spec.participant,
                spec.input
            );
        }
        check_codec(&spec)?;
        let key = spec.input.clone();
        if let Some(old) = self.inputs.get_mut(&key).and_then(|i| i.branch.take()) {
            self.teardown_branch(old);
        }
        let branch = self.build_branch(&key, &spec)?;
        if let Some(i) = self.inputs.get_mut(&key) {
            i.spec = Some(spec);
            i.branch = Some(branch);
            i.rebuild_at = None;
        }
        self.apply_layout();
        Ok(())
    }

    fn remove(&mut self, input: &str) -> anyhow::Result<()> {
        let inp = self
            .inputs
            .remove(input)
            .ok_or_else(|| anyhow!("remove: unknown input {input}"))?;
        if let Some(b) = inp.branch {
            self.teardown_branch(b);
        }
        let _ = inp.socket.close();
        self.apply_layout();
        Ok(())
    }

    /// Socket → rtpbin session (shared per participant, for lip-sync) → depay → decode → pad.
    fn build_branch(&mut self, key: &str, spec: &InputSpec) -> anyhow::Result<Branch> {
        let num = self.next_num();
        let (rtcp_host, rtcp_port) = (self.args.rtcp_to.ip().to_string(), self.args.rtcp_to.port());
        let socket = self
            .inputs
            .get(key)
            .map(|i| i.socket.clone())
            .ok_or_else(|| anyhow!("input {key} vanished"))?;
        let seat = self
            .seats
            .iter_mut()
            .find(|s| s.id == spec.participant)
            .ok_or_else(|| anyhow!("participant {} vanished", spec.participant))?;
        let session = seat.next_session;
        seat.next_session += 1;
        let rtpbin = seat.rtpbin.clone();
        let seat_name = seat.name.clone();
        let p = |what: &str| format!("in{num}-{what}");
        let make = |factory: &str, what: &str| {
            gst::ElementFactory::make(factory)
                .name(p(what))
                .build()
                .with_context(|| format!("element {factory}"))
        };

        let caps = rtp_caps(spec);
        let udpsrc = gst::ElementFactory::make("udpsrc")
            .name(p("udpsrc"))
            .property("socket", &socket)
            .property("close-socket", false)
            .property("caps", &caps)
            .property("buffer-size", 1i32 << 20)
            // No sender-address meta: rtpsession would otherwise drop a restarted sender (same
            // SSRC, new port) as an SSRC collision. RTCP goes to --rtcp-to anyway.
            .property("retrieve-sender-address", false)
            .build()?;
        // RTCP (RR, PLI, FIR) leaves from the receiving socket itself, to the node.
        let udpsink = gst::ElementFactory::make("udpsink")
            .name(p("rtcp"))
            .property("socket", &socket)
            .property("close-socket", false)
            .property("host", &rtcp_host)
            .property("port", rtcp_port as i32)
            .property("sync", false)
            .property("async", false)
            .build()?;

        let mut chain: Vec<gst::Element> = Vec::new();
        let mut label = None;
        let codec = spec.codec.to_ascii_uppercase();
        match spec.kind {
            MediaKind::Video => {
                let (depay, dec) = if codec == "VP8" {
                    let dec = make("vp8dec", "dec")?;
                    dec.set_property("threads", 2u32);
                    ("rtpvp8depay", dec)
                } else {
                    let dec = make("avdec_h264", "dec")?;
                    dec.set_property_from_str("thread-type", "slice");
                    dec.set_property("max-threads", 2i32);
                    ("rtph264depay", dec)
                };
                let depay = gst::ElementFactory::make(depay)
                    .name(p("depay"))
                    .property("request-keyframe", true)
                    .property("wait-for-keyframe", true)
                    .build()?;
                chain.push(depay);
                if codec == "H264" {
                    chain.push(make("h264parse", "parse")?);
                }
                // A corrupt payload must never become a flow error: decoders post warnings,
                // drop the frame and ask for a keyframe.
                dec.set_property("max-errors", -1i32);
                dec.set_property("discard-corrupted-frames", true);
                dec.set_property("automatic-request-sync-points", true);
                dec.set_property("min-force-key-unit-interval", 500 * MS);
                chain.push(dec);
                chain.push(make("videoconvert", "conv")?);
                // Pitfall 2: I420 into the compositor.
                chain.push(
                    gst::ElementFactory::make("capsfilter")
                        .name(p("i420"))
                        .property(
                            "caps",
                            gst::Caps::builder("video/x-raw")
                                .field("format", "I420")
                                .build(),
                        )
                        .build()?,
                );
                let l = gst::ElementFactory::make("textoverlay")
                    .name(p("label"))
                    .property("text", &seat_name)
                    .property_from_str("valignment", "bottom")
                    .property_from_str("halignment", "left")
                    .property("auto-resize", false)
                    .property("shaded-background", true)
                    .property("font-desc", "Sans Bold 20px")
                    .build()?;
                serialize_text(&l);
                chain.push(l.clone());
                label = Some(l);
                chain.push(
                    gst::ElementFactory::make("queue")
                        .name(p("queue"))
                        .property("max-size-buffers", 3u32)
                        .property("max-size-time", 0u64)
                        .property("max-size-bytes", 0u32)
                        .build()?,
                );
            }
            MediaKind::Audio => {
                chain.push(make("rtpopusdepay", "depay")?);
                chain.push(
                    gst::ElementFactory::make("opusdec")
                        .name(p("dec"))
                        .property("plc", true)
                        .build()?,
                );
                chain.push(make("audioconvert", "conv")?);
                chain.push(make("audioresample", "resample")?);
                chain.push(
                    gst::ElementFactory::make("queue")
                        .name(p("queue"))
                        .property("max-size-buffers", 0u32)
                        .property("max-size-time", 200 * MS)
                        .property("max-size-bytes", 0u32)
                        .build()?,
                );
            }
        }
        let (first, last) = match (chain.first(), chain.last()) {
            (Some(f), Some(l)) => (f.clone(), l.clone()),
            _ => bail!("empty chain"),
        };

        self.pipeline.add_many(&chain)?;
        self.pipeline.add_many([&udpsrc, &udpsink])?;
        let mut elements = vec![udpsrc.clone()];
        elements.extend(chain.iter().cloned());
        elements.push(udpsink.clone());
        // From here on a failure must undo what was added.
        let undo = |pipeline: &gst::Pipeline, pads: &[gst::Pad]| {
            for e in &elements {
                let _ = e.set_state(gst::State::Null);
            }
            for pad in pads {
                rtpbin.release_request_pad(pad);
            }
            let _ = pipeline.remove_many(&elements);
        };

        let mut rtp_pads = Vec::new();
        let wired = (|| -> anyhow::Result<(gst::Pad, gst::Pad, glib::SignalHandlerId)> {
            gst::Element::link_many(&chain)?;
            let sink = rtpbin
                .request_pad_simple(&format!("recv_rtp_sink_{session}"))
                .ok_or_else(|| anyhow!("rtpbin refused recv_rtp_sink_{session}"))?;
            rtp_pads.push(sink.clone());
            udpsrc
                .static_pad("src")
                .ok_or_else(|| anyhow!("udpsrc has no src"))?
                .link(&sink)?;
            // Pitfall 7: with rtcp-mux the SRs arrive on recv_rtp_sink, but rtpbin only wires the
            // session's lip-sync when recv_rtcp_sink is requested: request it, leave it unlinked.
            let rtcp_sink = rtpbin
                .request_pad_simple(&format!("recv_rtcp_sink_{session}"))
                .ok_or_else(|| anyhow!("rtpbin refused recv_rtcp_sink_{session}"))?;
            rtp_pads.push(rtcp_sink);
            let rtcp_src = rtpbin
                .request_pad_simple(&format!("send_rtcp_src_{session}"))
                .ok_or_else(|| anyhow!("rtpbin refused send_rtcp_src_{session}"))?;
            rtp_pads.push(rtcp_src.clone());
            rtcp_src.link(
                &udpsink
                    .static_pad("sink")
                    .ok_or_else(|| anyhow!("udpsink has no sink"))?,
            )?;

            // rtpbin makes recv_rtp_src_<session>_<ssrc>_<pt> once packets flow; link the newest
            // (a restarted sender gets a new SSRC).
            let depay_sink = first
                .static_pad("sink")
                .ok_or_else(|| anyhow!("depayloader has no sink"))?;
            let prefix = format!("recv_rtp_src_{session}_");
            let pad_added = rtpbin.connect_pad_added(move |_, pad| {
                if !pad.name().starts_with(&prefix) {
                    return;
                }
                if let Some(peer) = depay_sink.peer() {
                    let _ = peer.unlink(&depay_sink);
                }
                if let Err(e) = pad.link(&depay_sink) {
                    log(&format!("linking {} failed: {e:?}", pad.name()));
                }
            });

            let out = last
                .static_pad("src")
                .ok_or_else(|| anyhow!("chain has no src"))?;
            let mixer = if spec.kind == MediaKind::Video {
                &self.comp
            } else {
                &self.amix
            };
            let mixer_pad = mixer
                .request_pad_simple("sink_%u")
                .ok_or_else(|| anyhow!("mixer refused a pad"))?;
            if spec.kind == MediaKind::Video {
                mixer_pad.set_property("zorder", place::Z_VIDEO);
                mixer_pad.set_property("alpha", 0.0f64);
                mixer_pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
                if let Ok(cfg) = CONVERTER_CONFIG.parse::<gst::Structure>() {
                    mixer_pad.set_property("converter-config", cfg);
                }
            }
            if let Err(e) = out.link(&mixer_pad) {
                mixer.release_request_pad(&mixer_pad);
                rtpbin.disconnect(pad_added);
                return Err(e.into());
            }
            Ok((out, mixer_pad, pad_added))
        })();
        let (out, mixer_pad, pad_added) = match wired {
            Ok(w) => w,
            Err(e) => {
                undo(&self.pipeline, &rtp_pads);
                return Err(e.context(format!("building input {key}")));
            }
        };

        let last_frame = Arc::new(AtomicU64::new(0));
        if spec.kind == MediaKind::Video {
            let lf = last_frame.clone();
            out.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                lf.store(now_ms(), Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        // Downstream first, so nothing pushes into a not-yet-running element.
        for e in elements.iter().rev() {
            if let Err(e) = e.sync_state_with_parent() {
                rtpbin.disconnect(pad_added);
                block_unlink_release(&out, &mixer_pad, self.mixer_of(spec.kind));
                undo(&self.pipeline, &rtp_pads);
                return Err(anyhow!("starting input {key}: {e}"));
            }
        }
        log(&format!(
            "input {key}: {} {} pt={} ssrc={} → seat {} session {session}",
            if spec.kind == MediaKind::Video {
                "video"
            } else {
                "audio"
            },
            spec.codec,
            spec.payload_type,
            spec.ssrc,
            spec.participant
        ));
        Ok(Branch {
            num,
            participant: spec.participant.clone(),
            kind: spec.kind,
            session,
            elements,
            udpsrc,
            rtp_pads,
            pad_added: Some(pad_added),
            out,
            mixer_pad,
            label,
            last_frame,
        })
    }

    fn forget_pad(&self, pad: &gst::Pad) {
        self.applied.borrow_mut().remove(pad.name().as_str());
    }

    fn mixer_of(&self, kind: MediaKind) -> &gst::Element {
        match kind {
            MediaKind::Video => &self.comp,
            MediaKind::Audio => &self.amix,
        }
    }

    /// Unlinks and disposes a branch live; the socket stays open (it belongs to the input).
    fn teardown_branch(&self, mut b: Branch) {
        let rtpbin = self
            .seats
            .iter()
            .find(|s| s.id == b.participant)
            .map(|s| s.rtpbin.clone());
        if let (Some(rb), Some(id)) = (&rtpbin, b.pad_added.take()) {
            rb.disconnect(id);
        }
        // Stop the source first so nothing new enters, then cut the output.
        let _ = b.udpsrc.set_state(gst::State::Null);
        block_unlink_release(&b.out, &b.mixer_pad, self.mixer_of(b.kind));
        self.forget_pad(&b.mixer_pad);
        for e in &b.elements {
            let _ = e.set_state(gst::State::Null);
        }
        if let Some(rb) = &rtpbin {
            for pad in &b.rtp_pads {
                if let Some(peer) = pad.peer() {
                    if pad.direction() == gst::PadDirection::Src {
                        let _ = pad.unlink(&peer);
                    } else {
                        let _ = peer.unlink(pad);
                    }
                }
                rb.release_request_pad(pad);
            }
        }
        let _ = self.pipeline.remove_many(&b.elements);
        log(&format!(
            "branch in{} (session {}) of {} removed",
            b.num, b.session, b.participant
        ));
    }

    // ---- layout and tile state ---------------------------------------------------------------

    /// The shown video branch of a seat: its newest video input.
    fn shown_video(&self, seat: &str) -> Option<&Branch> {
        self.inputs
            .values()
            .filter_map(|i| i.branch.as_ref())
            .filter(|b| b.kind == MediaKind::Video && b.participant == seat)
            .max_by_key(|b| b.num)
    }

    /// Periodic (and on video-off): tile states from decoded-frame times, pending rebuilds.
    pub fn tick(&mut self) {
        let now = now_ms();
        let mut changed = false;
        for i in 0..self.seats.len() {
            let id = self.seats[i].id.clone();
            let (fresh, dims) = match self.shown_video(&id) {
                Some(b) => {
                    let last = b.last_frame.load(Ordering::Relaxed);
                    let fresh =
                        last != 0 && now.saturating_sub(last) < self.args.placeholder_after_ms;
                    (fresh, frame_size(&b.out))
                }
                None => (false, None),
            };
            let s = &mut self.seats[i];
            let state = if s.off {
                TileState::Off
            } else if fresh && dims.is_some() {
                TileState::Live
            } else {
                TileState::Missing
            };
            if state != s.state {
                s.state = state;
                changed = true;
                emit(&Event::Tile {
                    participant: id,
                    state,
                });
            }
            if dims.is_some() && dims != s.dims {
                s.dims = dims;
                changed = true;
            }
        }
        if changed {
            self.apply_layout();
        }
        self.rebuild_due();
    }

    /// Recomputes `layout()` and applies it to the running pads (never touches the encoder).
    fn apply_layout(&self) {
        let seats: Vec<Seat> = self
            .seats
            .iter()
            .map(|s| Seat {
                id: s.id.clone(),
                name: s.name.clone(),
                video: match (s.state, s.dims) {
                    (TileState::Live, Some((width, height))) => VideoState::Live { width, height },
                    (TileState::Off, _) => VideoState::Off,
                    _ => VideoState::Missing,
                },
            })
            .collect();
        let canvas = Canvas {
            width: self.args.width,
            height: self.args.height,
        };
        let l = layout(canvas, &seats);
        let empty = l.tiles.is_empty();
        let slate = place::PadBox {
            rect: rostrum_compositor::layout::Rect {
                x: 0,
                y: 0,
                w: self.args.width,
                h: self.args.height,
            },
            alpha: if empty { 1.0 } else { 0.0 },
            zorder: place::Z_SLATE,
        };
        set_box(&self.slate_pad, &slate, &self.applied, &self.pending);
        self.slate_label.set_property("silent", !empty);
        for (s, tile) in self.seats.iter().zip(&l.tiles) {
            let pads = place::tile_pads(tile);
            set_box(&s.ph_pad, &pads.placeholder, &self.applied, &self.pending);
            s.ph_label.set_property("text", &tile.label);
            s.ph_label.set_property(
                "font-desc",
                place::placeholder_font(tile.font_px, tile.cell.h),
            );
            let shown = self.shown_video(&s.id).map(|b| b.num);
            for b in self
                .inputs
                .values()
                .filter_map(|i| i.branch.as_ref())
                .filter(|b| b.kind == MediaKind::Video && b.participant == s.id)
            {
                let mut vbox = pads.video;
                if Some(b.num) != shown {
                    vbox.alpha = 0.0;
                }
                set_box(&b.mixer_pad, &vbox, &self.applied, &self.pending);
                if let (Some(label), Some((_, src_h))) = (&b.label, s.dims) {
                    let (font, pad) = place::label_font(tile.font_px, src_h, vbox.rect.h);
                    label.set_property("text", &tile.label);
                    label.set_property("font-desc", font);
                    label.set_property("xpad", pad);
                    label.set_property("ypad", pad);
                }
            }
        }
    }

    // ---- errors and the bus --------------------------------------------------------------------

    /// Branch/seat errors become warnings and a rebuild; a core error is fatal (`Err`).
    pub fn bus_message(&mut self, msg: &gst::Message) -> anyhow::Result<()> {
        match msg.view() {
            gst::MessageView::Error(e) => {
                let src = msg.src().map(|s| s.path_string().to_string());
                let text = format!(
                    "{}: {} ({})",
                    src.as_deref().unwrap_or("?"),
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                );
                match self.owner(msg.src()) {
                    Owner::Branch(n) => {
                        Self::warn(format!("input error, rebuilding: {text}"));
                        self.schedule_rebuild(|b| b.num == n);
                    }
                    Owner::Seat(n) => {
                        Self::warn(format!("participant error, rebuilding inputs: {text}"));
                        if let Some(id) =
                            self.seats.iter().find(|s| s.num == n).map(|s| s.id.clone())
                        {
                            self.schedule_rebuild(|b| b.participant == id);
                        }
                    }
                    Owner::Core => bail!("pipeline error: {text}"),
                }
            }
            gst::MessageView::Warning(w) => {
                let now = Instant::now();
                if now.duration_since(self.warn_window.0) > Duration::from_secs(5) {
                    self.warn_window = (now, 0);
                }
                self.warn_window.1 += 1;
                if self.warn_window.1 <= 5 {
                    let src = msg.src().map(|s| s.path_string().to_string());
                    log(&format!(
                        "gst warning from {}: {}",
                        src.as_deref().unwrap_or("?"),
                        w.error()
                    ));
                }
            }
            gst::MessageView::Latency(_) => {
                // A new input changed upstream latency: redistribute (within min-upstream-latency).
                let _ = self.pipeline.recalculate_latency();
            }
            _ => {}
        }
        Ok(())
    }

    /// Who owns a message source: its top-level element's name says so. Messages from elements
    /// already removed from the pipeline count as their (gone) branch, never as the core.
    fn owner(&self, src: Option<&gst::Object>) -> Owner {
        let Some(mut obj) = src.cloned() else {
            return Owner::Core;
        };
        let pipeline: &gst::Object = self.pipeline.upcast_ref();
        loop {
            match obj.parent() {
                Some(parent) if &parent == pipeline => return place::owner_of(&obj.name()),
                Some(parent) => obj = parent,
                None => {
                    // Detached (a removed branch): still judge by name, but never fatal.
                    return match place::owner_of(&obj.name()) {
                        Owner::Core if obj.name() != self.pipeline.name() => Owner::Branch(0),
                        o => o,
                    };
                }
            }
        }
    }

    /// Tears down the matching branches now and rebuilds them after a back-off.
    fn schedule_rebuild(&mut self, which: impl Fn(&Branch) -> bool) {
        let keys: Vec<String> = self
            .inputs
            .iter()
            .filter(|(_, i)| i.branch.as_ref().is_some_and(&which))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let Some(inp) = self.inputs.get_mut(&k) else {
                continue;
            };
            let b = inp.branch.take();
            inp.rebuild_at = Some(Instant::now() + inp.backoff);
            inp.backoff = (inp.backoff * 2).min(Duration::from_secs(5));
            if let Some(b) = b {
                self.teardown_branch(b);
            }
        }
        self.apply_layout();
    }

    fn rebuild_due(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, InputSpec)> = self
            .inputs
            .iter()
            .filter(|(_, i)| i.rebuild_at.is_some_and(|t| t <= now))
            .filter_map(|(k, i)| i.spec.clone().map(|s| (k.clone(), s)))
            .collect();
        for (key, spec) in due {
            if let Some(i) = self.inputs.get_mut(&key) {
                i.rebuild_at = None;
            }
            match self.build_branch(&key, &spec) {
                Ok(b) => {
                    if let Some(i) = self.inputs.get_mut(&key) {
                        i.branch = Some(b);
                    }
                    log(&format!("input {key} rebuilt"));
                }
                Err(e) => Self::warn(format!("rebuilding input {key}: {e:#}")),
            }
        }
        // A branch that has decoded again for a while earns its back-off back.
        for i in self.inputs.values_mut() {
            if let Some(b) = &i.branch {
                let last = b.last_frame.load(Ordering::Relaxed);
                if last != 0 && now_ms().saturating_sub(last) < 100 {
                    i.backoff = Duration::from_millis(250);
                }
            }
        }
    }

    // ---- the end ----------------------------------------------------------------------------------

    /// Participants out, EOS through the always-on inputs, wait for it on the bus (bounded),
    /// NULL. A core error while draining is still fatal.
    pub fn finish(mut self, rx: &mpsc::Receiver<Msg>, limit: Duration) -> anyhow::Result<()> {
        let ids: Vec<String> = self.seats.iter().map(|s| s.id.clone()).collect();
        for id in ids {
            let _ = self.unseat(&id);
        }
        for (_, i) in self.inputs.drain() {
            let _ = i.socket.close();
        }
        self.pipeline.send_event(gst::event::Eos::new());
        let deadline = Instant::now() + limit;
        let mut result = Ok(());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log("EOS did not arrive in time; closing anyway");
                break;
            }
            match rx.recv_timeout(left) {
                Ok(Msg::Bus(m)) => match m.view() {
                    gst::MessageView::Eos(_) => break,
                    gst::MessageView::Error(_) => {
                        if let Err(e) = self.bus_message(&m) {
                            result = Err(e);
                            break;
                        }
                    }
                    _ => {}
                },
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }
}

/// Blocks `out`, unlinks it from the mixer's request pad and releases that pad, so nothing is
/// ever pushed into an unlinked pad (a not-linked flow error).
fn block_unlink_release(out: &gst::Pad, mixer_pad: &gst::Pad, mixer: &gst::Element) {
    let _ = out.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
        gst::PadProbeReturn::Ok
    });
    let _ = out.unlink(mixer_pad);
    mixer.release_request_pad(mixer_pad);
}

/// Pango (under `textoverlay`) crashed when several streaming threads rendered text at once
/// (GStreamer 1.22, pango 1.50: SIGSEGV in `g_type_class_get_private` under
/// `pango_cairo_show_layout`, reproduced by seating nine people in one burst). Every text overlay
/// therefore renders holding this one token: taken when a frame enters its video sink pad, given
/// back when the frame leaves its src pad. A thread never waits more than 200 ms for it: a late
/// frame is worse than the small risk of rendering unserialised.
static TEXT_TOKEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    static HOLDS_TEXT_TOKEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn take_text_token() {
    if HOLDS_TEXT_TOKEN.with(|h| h.get()) {
        return;
    }
    let deadline = Instant::now() + Duration::from_millis(200);
    while TEXT_TOKEN
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        if Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    HOLDS_TEXT_TOKEN.with(|h| h.set(true));
}

fn give_text_token() {
    if HOLDS_TEXT_TOKEN.with(|h| h.replace(false)) {
        TEXT_TOKEN.store(false, Ordering::Release);
    }
}

/// Makes a `textoverlay` render under [`TEXT_TOKEN`].
fn serialize_text(overlay: &gst::Element) {
    if let Some(sink) = overlay.static_pad("video_sink") {
        sink.add_probe(gst::PadProbeType::BUFFER, |_, _| {
            take_text_token();
            gst::PadProbeReturn::Ok
        });
    }
    if let Some(src) = overlay.static_pad("src") {
        src.add_probe(gst::PadProbeType::BUFFER, |_, _| {
            give_text_token();
            gst::PadProbeReturn::Ok
        });
    }
}

/// Compositor pad geometry (position, size, alpha) waiting to be written. GStreamer 1.22's
/// compositor rebuilds a pad's converter when these change, and doing that from another thread
/// while the aggregator converts frames in parallel crashed it (`gst_video_frame_map_id:
/// assertion 'GST_IS_BUFFER (buffer)'`, then SIGSEGV, on bursts of joins). So the control thread
/// only queues changes and the compositor's src-pad probe writes them between two output frames.
/// The lock is taken 30 times a second, never on a media packet's path.
#[derive(Clone, Default)]
struct PendingBoxes(Arc<std::sync::Mutex<Vec<PendingBox>>>);

struct PendingBox {
    pad: gst::Pad,
    rect: Option<rostrum_compositor::layout::Rect>,
    alpha: Option<f64>,
}

impl PendingBoxes {
    fn push(&self, b: PendingBox) {
        if let Ok(mut q) = self.0.lock() {
            q.push(b);
        }
    }

    /// On the compositor's streaming thread.
    fn apply(&self) {
        let due = match self.0.lock() {
            Ok(mut q) if !q.is_empty() => std::mem::take(&mut *q),
            _ => return,
        };
        for b in due {
            if let Some(r) = b.rect {
                b.pad.set_property("xpos", r.x as i32);
                b.pad.set_property("ypos", r.y as i32);
                b.pad.set_property("width", r.w as i32);
                b.pad.set_property("height", r.h as i32);
            }
            if let Some(a) = b.alpha {
                b.pad.set_property("alpha", a);
            }
        }
    }
}

/// Queues only the properties that differ from what the pad last got (zorder is fixed at
/// creation: changing it re-sorts the compositor's pad list under the running aggregator).
fn set_box(
    pad: &gst::Pad,
    b: &place::PadBox,
    applied: &RefCell<HashMap<String, place::PadBox>>,
    pending: &PendingBoxes,
) {
    let mut applied = applied.borrow_mut();
    let name = pad.name().to_string();
    let old = applied.get(&name).copied();
    let rect = (old.map(|o| o.rect) != Some(b.rect)).then_some(b.rect);
    let alpha = (old.map(|o| o.alpha) != Some(b.alpha)).then_some(b.alpha);
    if rect.is_some() || alpha.is_some() {
        pending.push(PendingBox {
            pad: pad.clone(),
            rect,
            alpha,
        });
    }
    applied.insert(name, *b);
}

/// Decoded frame size from the negotiated caps on a video branch's output.
fn frame_size(pad: &gst::Pad) -> Option<(u32, u32)> {
    let caps = pad.current_caps()?;
    let s = caps.structure(0)?;
    let w = s.get::<i32>("width").ok()?;
    let h = s.get::<i32>("height").ok()?;
    (w > 0 && h > 0).then_some((w as u32, h as u32))
}

fn check_codec(spec: &InputSpec) -> anyhow::Result<()> {
    let c = spec.codec.to_ascii_uppercase();
    let ok = match spec.kind {
        MediaKind::Video => c == "VP8" || c == "H264",
        MediaKind::Audio => c == "OPUS",
    };
    if !ok {
        bail!(
            "add: unsupported codec {} for {:?} input {}",
            spec.codec,
            spec.kind,
            spec.input
        );
    }
    if spec.clock_rate == 0 {
        bail!("add: clock rate 0 for input {}", spec.input);
    }
    Ok(())
}

/// RTP caps for udpsrc: without `rtcp-fb-nack-pli` rtpsession never sends a PLI (pitfall 6).
fn rtp_caps(spec: &InputSpec) -> gst::Caps {
    let codec = spec.codec.to_ascii_uppercase();
    let mut b = gst::Caps::builder("application/x-rtp")
        .field(
            "media",
            if spec.kind == MediaKind::Video {
                "video"
            } else {
                "audio"
            },
        )
        .field("clock-rate", spec.clock_rate as i32)
        .field("encoding-name", codec.as_str())
        .field("payload", spec.payload_type as i32)
        .field("ssrc", spec.ssrc);
    if spec.kind == MediaKind::Video {
        b = b
            .field("rtcp-fb-nack-pli", true)
            .field("rtcp-fb-ccm-fir", true);
        if codec == "H264" {
            for (k, v) in place::h264_fmtp(&spec.fmtp) {
                b = b.field(k.as_str(), v);
            }
        }
    } else {
        let ch = spec.channels.unwrap_or(2).to_string();
        b = b.field("encoding-params", ch);
    }
    b.build()
}
