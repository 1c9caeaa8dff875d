#!/usr/bin/python3
"""Prototype Rostrum mixer: N plain-RTP participants -> one 1280x720@30 H.264 + AAC fragmented MP4.

Process model: the supervisor starts this process once per room; it reads JSON commands on stdin
(one per line), writes fMP4 to --out (a file, or '-' = stdout via fdsink fd=1) and logs/events as
JSON-ish lines on stderr. The encoder never restarts: participants are GstBins added to / removed
from the running pipeline, each with request pads on `compositor` and `audiomixer`.

commands:
  {"cmd":"add","id":"A","name":"Alice",
   "video":{"port":5000,"codec":"VP8","pt":96,"rtcp_to":"127.0.0.1:6000"},   # rtcp_to optional: learnt from 1st packet
   "audio":{"port":5002,"pt":111,"rtcp_to":"127.0.0.1:6002"}}
  {"cmd":"remove","id":"A"}
  {"cmd":"stop"}                      # EOS, finalise, exit
"""
import argparse, json, math, os, signal, sys, threading, time
import gi
gi.require_version("Gst", "1.0"); gi.require_version("Gio", "2.0"); gi.require_version("GstNet", "1.0")
from gi.repository import Gst, GLib, Gio, GstNet

Gst.init(None)
import faulthandler; faulthandler.register(signal.SIGUSR1, all_threads=True)
T0 = time.monotonic()
W, H, FPS = 1280, 720, 30
# fix the programme's colorimetry: otherwise compositor copies it from whichever input negotiates first and
# then converts every other pad (incl. the full-frame slate) through a colour-matrix pass on every frame
OUTCOL = ",colorimetry=bt709,chroma-site=mpeg2"

def log(*a):
    print(f"[mixer {time.monotonic()-T0:7.3f}]", *a, file=sys.stderr, flush=True)

def grid(n):
    """tile rectangles for n participants: 1 full, 2 side by side, 3-4 2x2, 5-9 3x3"""
    if n <= 0: return []
    cols, rows = (1, 1) if n == 1 else (2, 1) if n == 2 else (2, 2) if n <= 4 else (3, 3)
    tw, th = W // cols, H // rows
    # 2 side by side: use 16:9 tiles centred vertically (letterbox comes from keep-aspect-ratio anyway)
    return [((i % cols) * tw, (i // cols) * th, tw, th) for i in range(n)]

VIDEO_CODECS = {
    "VP8": ("rtpvp8depay name=dp request-keyframe=true wait-for-keyframe=true",
            "vp8dec automatic-request-sync-points=true discard-corrupted-frames=true min-force-key-unit-interval=500000000"),
    "H264": ("rtph264depay name=dp request-keyframe=true wait-for-keyframe=true ! h264parse",
             "avdec_h264 thread-type=slice automatic-request-sync-points=true discard-corrupted-frames=true min-force-key-unit-interval=500000000"),
}

class Participant:
    def __init__(self, mixer, spec):
        self.m, self.id, self.name = mixer, spec["id"], spec.get("name", spec["id"])
        self.spec = spec
        self.bin = Gst.Bin.new(f"p_{self.id}")
        self.sockets = []
        self.last_video = None      # monotonic time of last decoded frame
        self.frames = 0
        self.video_shown = None
        self.pads = {}              # 'video'/'ph'/'audio' -> mixer request pad
        rb = self.rtpbin = Gst.ElementFactory.make("rtpbin", None)
        rb.set_property("latency", mixer.args.jitter_ms)
        rb.set_property("rtp-profile", 3)            # AVPF: PLI/FIR go out immediately (AVP waits ~1-5 s)
        rb.set_property("drop-on-latency", True)
        self.bin.add(rb)
        self.chains = {}
        if "video" in spec:
            v = spec["video"]; codec = v.get("codec", "VP8").upper()
            depay, dec = VIDEO_CODECS[codec]
            if codec == "VP8" and mixer.args.vp8dec == "avdec_vp8":   # ffmpeg's native VP8 decoder via gst-libav
                dec = "avdec_vp8 max-threads=1 automatic-request-sync-points=true discard-corrupted-frames=true min-force-key-unit-interval=500000000"
            caps = (f"application/x-rtp,media=video,clock-rate=90000,encoding-name={codec},payload={v.get('pt',96)},"
                    "rtcp-fb-nack-pli=(boolean)true")   # without rtcp-fb-nack-pli rtpsession never sends a PLI
            self._session(0, v, caps)
            chain = Gst.parse_bin_from_description(
                f"{depay} ! {dec} ! videoconvert ! video/x-raw,format=I420 ! "
                + ("" if mixer.args.bare else f"textoverlay text=\"{self.name}\" valignment=bottom halignment=left font-desc=\"Sans 18\" shaded-background=true ! ") +
                "queue name=out max-size-buffers=3 max-size-time=0 max-size-bytes=0", False)
            # explicit ghost pads: auto-ghosting picks textoverlay's text_sink instead of the depayloader's sink
            chain.add_pad(Gst.GhostPad.new("sink", chain.get_by_name("dp").get_static_pad("sink")))
            chain.add_pad(Gst.GhostPad.new("src", chain.get_by_name("out").get_static_pad("src")))
            self.bin.add(chain); self.chains[0] = chain
            self._ghost(chain.get_static_pad("src"), "video")
            chain.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._on_video_buffer)
        # placeholder tile: name on a plain background, shown while video is absent/stalled/undecodable
        ph = Gst.parse_bin_from_description(
            "videotestsrc is-live=true pattern=solid-color foreground-color=0xff2b3a55 ! "
            f"video/x-raw,format=I420,width=640,height=360,framerate=5/1{OUTCOL} ! "
            f"textoverlay name=out text=\"{self.name}\" valignment=center halignment=center font-desc=\"Sans 28\"", False)
        # NOT ghost_unlinked_pads=True: that ghosts textoverlay's text_sink, and a textoverlay whose
        # text_sink is "linked" waits forever for text buffers (placeholder never renders, EOS deadlocks)
        ph.add_pad(Gst.GhostPad.new("src", ph.get_by_name("out").get_static_pad("src")))
        self.bin.add(ph); self._ghost(ph.get_static_pad("src"), "ph")
        if "audio" in spec:
            a = spec["audio"]
            caps = f"application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={a.get('pt',111)}"
            self._session(1, a, caps)
            chain = Gst.parse_bin_from_description(
                "rtpopusdepay ! opusdec plc=true ! audioconvert ! audioresample ! "
                "queue max-size-time=200000000 max-size-buffers=0 max-size-bytes=0", True)
            self.bin.add(chain); self.chains[1] = chain
            self._ghost(chain.get_static_pad("src"), "audio")
            chain.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._on_audio_buffer)
        rb.connect("pad-added", self._on_rtpbin_pad)

    def _ghost(self, target, name):
        g = Gst.GhostPad.new(name, target); g.set_active(True); self.bin.add_pad(g)

    def _session(self, sid, s, caps):
        sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
        sock.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", s["port"]), False)
        self.sockets.append(sock)
        src = Gst.ElementFactory.make("udpsrc", None)
        src.set_property("socket", sock); src.set_property("close-socket", False)
        src.set_property("caps", Gst.Caps.from_string(caps))
        src.set_property("buffer-size", 1 << 20)
        # rtcp-mux: RTP and the sender's RTCP (SR) arrive on this one socket; rtpsession accepts
        # RTCP on recv_rtp_sink (checked: have-sr=true).  Our RTCP (RR, PLI) leaves from the SAME socket.
        sink = Gst.ElementFactory.make("udpsink", None)
        sink.set_property("socket", sock); sink.set_property("close-socket", False)
        sink.set_property("sync", False); sink.set_property("async", False)
        if s.get("rtcp_to"):
            host, port = s["rtcp_to"].rsplit(":", 1)
            sink.set_property("host", host); sink.set_property("port", int(port))
        else:   # learn the sender's address from the first packet (comedia style)
            sink.set_property("host", "127.0.0.1"); sink.set_property("port", 9)   # discard until learnt
            learnt = {"done": False}
            def probe(pad, info):
                if learnt["done"]: return Gst.PadProbeReturn.REMOVE
                meta = GstNet.buffer_get_net_address_meta(info.get_buffer())
                if meta:
                    addr = meta.addr
                    sink.set_property("host", addr.get_address().to_string()); sink.set_property("port", addr.get_port())
                    log(f"{self.id} session {sid}: learnt sender {addr.get_address().to_string()}:{addr.get_port()}")
                    learnt["done"] = True
                    return Gst.PadProbeReturn.REMOVE
                return Gst.PadProbeReturn.OK
            src.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
        self.bin.add(src); self.bin.add(sink)
        src.get_static_pad("src").link(self.rtpbin.request_pad_simple(f"recv_rtp_sink_{sid}"))
        if not self.m.args.no_rtcp_sink:
            # rtcp-mux: the SRs arrive on recv_rtp_sink and rtpsession parses them there, but rtpbin only wires the
            # session's sync_src (SR -> lip-sync) when recv_rtcp_sink is requested: request it, leave it unlinked.
            self.rtpbin.request_pad_simple(f"recv_rtcp_sink_{sid}")
        self.rtpbin.request_pad_simple(f"send_rtcp_src_{sid}").link(sink.get_static_pad("sink"))

    def _on_rtpbin_pad(self, rb, pad):
        name = pad.get_name()
        if not name.startswith("recv_rtp_src_"): return
        sid = int(name.split("_")[3])
        chain = self.chains.get(sid)
        if not chain: return
        sink = chain.get_static_pad("sink")
        if sink.is_linked():        # new SSRC (sender restarted): switch to the newest stream
            sink.get_peer().unlink(sink)
        r = pad.link(sink)
        if r != Gst.PadLinkReturn.OK:
            log("src caps:", pad.query_caps(None).to_string(), "| sink caps:", sink.query_caps(None).to_string()[:300])
        log(f"{self.id}: {name} -> {'video' if sid == 0 else 'audio'} chain: {r.value_nick}")

    def _lateness(self, buf):
        # how far behind the pipeline clock this buffer reaches the mixer (ms): must stay < aggregator latency
        clk = self.m.pipe.get_clock()
        if clk is None or buf.pts == Gst.CLOCK_TIME_NONE: return None
        return (clk.get_time() - self.m.pipe.get_base_time() - buf.pts) / 1e6

    def _on_video_buffer(self, pad, info):
        self.last_video = time.monotonic(); self.frames += 1
        l = self._lateness(info.get_buffer())
        if l is not None: self.vlate = max(getattr(self, "vlate", -1e9), l)
        return Gst.PadProbeReturn.OK

    def _on_audio_buffer(self, pad, info):
        l = self._lateness(info.get_buffer())
        if l is not None: self.alate = max(getattr(self, "alate", -1e9), l)
        return Gst.PadProbeReturn.OK

    def attach(self):
        m = self.m
        m.pipe.add(self.bin)
        if "video" in self.spec:
            self.pads["video"] = m.comp.request_pad_simple("sink_%u")
            self.pads["video"].set_property("zorder", 2)
            self.pads["video"].set_property("sizing-policy", 1)   # keep-aspect-ratio => letterbox in tile
            self.pads["video"].set_property("alpha", 0.0)
            # per-pad GstVideoConverter options (keys need the "GstVideoConverter." prefix, else silently ignored)
            opts = []
            if m.args.scaler:      # default scaling is cubic; linear/nearest is cheaper
                opts.append(f"GstVideoConverter.resampler-method=(GstVideoResamplerMethod){m.args.scaler}")
            if m.args.no_matrix:   # don't convert bt601<->bt709 per pad (tiny colour error, saves a matrix pass)
                opts += ["GstVideoConverter.matrix-mode=(GstVideoMatrixMode)none",
                         "GstVideoConverter.chroma-mode=(GstVideoChromaMode)none",
                         "GstVideoConverter.primaries-mode=(GstVideoPrimariesMode)none",
                         "GstVideoConverter.gamma-mode=(GstVideoGammaMode)none"]
            if opts:
                self.pads["video"].set_property("converter-config", Gst.Structure.new_from_string("cfg, " + ", ".join(opts)))
            self.bin.get_static_pad("video").link(self.pads["video"])
        self.pads["ph"] = m.comp.request_pad_simple("sink_%u")
        self.pads["ph"].set_property("zorder", 1)
        self.bin.get_static_pad("ph").link(self.pads["ph"])
        if "audio" in self.spec:
            self.pads["audio"] = m.amix.request_pad_simple("sink_%u")
            self.bin.get_static_pad("audio").link(self.pads["audio"])
        self.bin.sync_state_with_parent()

    def detach(self):
        m = self.m
        ghosts = [(k, self.bin.get_static_pad(k)) for k in self.pads]
        for k, g in ghosts:     # block so nothing is pushed into an unlinked pad (=> not-linked error)
            g.add_probe(Gst.PadProbeType.BLOCK_DOWNSTREAM, lambda *a: Gst.PadProbeReturn.OK)
        for k, g in ghosts:
            peer = self.pads[k]
            g.unlink(peer)
            (m.amix if k == "audio" else m.comp).release_request_pad(peer)
        self.bin.set_state(Gst.State.NULL)     # deactivating pads releases the blocked threads
        m.pipe.remove(self.bin)
        for s in self.sockets: s.close()

    def set_rect(self, r):
        x, y, w, h = r
        for k in ("video", "ph"):
            p = self.pads.get(k)
            if p:
                p.set_property("xpos", x); p.set_property("ypos", y)
                p.set_property("width", w); p.set_property("height", h)

    def check_stall(self, now, stall_s):
        show = self.last_video is not None and now - self.last_video < stall_s
        if show != self.video_shown:
            self.video_shown = show
            if "video" in self.pads: self.pads["video"].set_property("alpha", 1.0 if show else 0.0)
            self.pads["ph"].set_property("alpha", 0.0 if show else 1.0)
            self.m.event(kind="video_state", id=self.id, shown=show)


class Mixer:
    def __init__(self, args):
        self.args = args
        self.parts = {}
        self.order = []
        lat = args.latency_ms * Gst.MSECOND
        fl = "true" if args.force_live else "false"
        iip = "false" if args.no_ignore_inactive else "true"
        # pacing: hold the always-present slate/silence inputs back by ~the aggregator latency so the
        # aggregators always run at their deadline; otherwise they run early (as soon as the slate has
        # data) and jump ~latency later when the first real participant (jitterbuffer-delayed) arrives.
        pt = max(args.pace_ms, 0) * Gst.MSECOND
        pace = (f"queue min-threshold-time={pt} max-size-time={2*pt + Gst.SECOND} max-size-buffers=0 max-size-bytes=0"
                if pt else "identity")
        out = "fdsink fd=1 sync=false" if args.out == "-" else f"filesink location={args.out} sync=false"
        aac = "avenc_aac bitrate=128000" if args.aac == "avenc_aac" else "voaacenc bitrate=128000"
        desc = (
            f"compositor name=comp background=black ignore-inactive-pads={iip} min-upstream-latency={lat} force-live={fl} max-threads={args.comp_threads} "
            f"start-time-selection=first ! video/x-raw,format=I420,width={W},height={H},framerate={FPS}/1{OUTCOL} ! "
            f"queue max-size-buffers=2 max-size-time=0 max-size-bytes=0 ! "
            f"x264enc name=venc tune=zerolatency speed-preset={args.preset} key-int-max={2*FPS} bframes=0 "
            f"bitrate={args.vbitrate} vbv-buf-capacity=1000 option-string=scenecut=0 ! "
            "video/x-h264,profile=high ! h264parse ! queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! mux.video_0 "
            f"audiomixer name=amix ignore-inactive-pads={iip} min-upstream-latency={lat} force-live={fl} start-time-selection=first ! "
            "audio/x-raw,rate=48000,channels=2 ! audioconvert ! "
            f"{aac} ! aacparse ! queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! mux.audio_0 "
            f"mp4mux name=mux fragment-duration={args.fragment_ms} streamable=true ! {out} "
            # always-present live inputs: the slate (also keeps the compositor ticking with nobody on stage)
            f"videotestsrc is-live=true pattern=solid-color foreground-color=0xff101018 ! "
            f"video/x-raw,format=I420,width={W},height={H},framerate={FPS}/1{OUTCOL} ! "
            "textoverlay name=slate text=\"Stage empty\" valignment=center halignment=center font-desc=\"Sans 40\" ! "
            f"{pace} ! comp.sink_0 "
            f"audiotestsrc is-live=true wave=silence samplesperbuffer=480 ! audio/x-raw,rate=48000,channels=2 ! {pace} ! amix.sink_0 ")
        self.pipe = Gst.parse_launch(desc)
        self.comp = self.pipe.get_by_name("comp")
        self.amix = self.pipe.get_by_name("amix")
        self.comp.get_static_pad("sink_0").set_property("zorder", 0)
        # output timing instrumentation (cheap python probes, one per output frame / audio block)
        self.vstat = {"n": 0, "last_pts": None, "last_wall": None, "max_wall_gap": 0, "pts_errs": 0, "wall": []}
        self.astat = {"n": 0, "next": None, "discont": 0, "last_wall": None, "max_wall_gap": 0}
        if not args.no_probes:
            self.comp.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._vprobe)
            self.amix.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._aprobe)
        self.loop = GLib.MainLoop()
        bus = self.pipe.get_bus(); bus.add_signal_watch(); bus.connect("message", self._on_msg)
        GLib.timeout_add(100, self._tick)
        GLib.timeout_add(1000, self._stats)

    def event(self, **kw):
        kw["t"] = round(time.monotonic() - T0, 3)
        print(json.dumps(kw), file=sys.stderr, flush=True)

    def _vprobe(self, pad, info):
        b = info.get_buffer(); now = time.monotonic(); s = self.vstat
        if s["last_pts"] is not None:
            if abs((b.pts - s["last_pts"]) - Gst.SECOND // FPS) > Gst.MSECOND: s["pts_errs"] += 1
            s["max_wall_gap"] = max(s["max_wall_gap"], now - s["last_wall"])
            if now - s["last_wall"] > 0.06: log(f"video output gap {1000*(now - s['last_wall']):.0f} ms before pts {b.pts/1e9:.3f}")
        s["last_pts"], s["last_wall"] = b.pts, now; s["n"] += 1
        return Gst.PadProbeReturn.OK

    def _aprobe(self, pad, info):
        b = info.get_buffer(); now = time.monotonic(); s = self.astat
        if s["next"] is not None:
            if abs(b.pts - s["next"]) > Gst.MSECOND // 10: s["discont"] += 1
            s["max_wall_gap"] = max(s["max_wall_gap"], now - s["last_wall"])
        s["next"] = b.pts + b.duration; s["last_wall"] = now; s["n"] += 1
        return Gst.PadProbeReturn.OK

    def _stats(self):
        v, a = self.vstat, self.astat
        self.event(kind="stats", vframes=v["n"], v_pts_errs=v["pts_errs"], v_max_wall_gap_ms=round(v["max_wall_gap"]*1000, 1),
                   ablocks=a["n"], a_discont=a["discont"], a_max_wall_gap_ms=round(a["max_wall_gap"]*1000, 1),
                   parts={p.id: [p.frames, round(getattr(p, "vlate", 0)), round(getattr(p, "alate", 0))] for p in self.parts.values()})
        for p in self.parts.values(): p.vlate = p.alate = -1e9
        if self.args.debug_sync:
            for p in self.parts.values():
                it = p.rtpbin.iterate_recurse()
                offs = []
                while True:
                    ok, e = it.next()
                    if ok != Gst.IteratorResult.OK: break
                    if e.get_factory() and e.get_factory().get_name() == "rtpjitterbuffer":
                        offs.append((e.get_name(), round(e.get_property("ts-offset") / 1e6, 1)))
                log(f"{p.id} jitterbuffer ts-offset ms: {offs}")
        v["max_wall_gap"] = 0; a["max_wall_gap"] = 0
        if self.args.debug_caps and v["n"] > 150 and not getattr(self, "_caps_dumped", False):
            self._caps_dumped = True
            for e in (self.comp, self.amix):
                for pad in e.pads:
                    c = pad.get_current_caps()
                    log(f"caps {e.get_name()}.{pad.get_name()}: {c.to_string() if c else None}")
        return True

    def _tick(self):
        now = time.monotonic()
        for p in self.parts.values(): p.check_stall(now, self.args.stall_ms / 1000)
        return True

    def relayout(self):
        rects = grid(len(self.order))
        for pid, r in zip(self.order, rects): self.parts[pid].set_rect(r)
        self.pipe.get_by_name("slate").set_property("silent", len(self.order) > 0)
        self.event(kind="layout", order=list(self.order), rects=rects)

    def add(self, spec):
        if spec["id"] in self.parts: return
        t1 = time.monotonic()
        p = Participant(self, spec)
        self.parts[p.id] = p; self.order.append(p.id)
        t2 = time.monotonic()
        p.attach()                # request pads exist only now ...
        self.relayout()           # ... so place them after attaching (video alpha is 0 until the first frame)
        self.event(kind="added", id=p.id, build_ms=round(1000*(t2-t1), 1), attach_ms=round(1000*(time.monotonic()-t2), 1))

    def remove(self, pid):
        p = self.parts.pop(pid, None)
        if not p: return
        self.order.remove(pid)
        t1 = time.monotonic()
        p.detach()
        self.relayout()
        self.event(kind="removed", id=pid, detach_ms=round(1000*(time.monotonic()-t1), 1))

    def stop(self):
        if getattr(self, "_stopping", False): return
        self._stopping = True
        self.event(kind="stopping")
        for pid in list(self.order): self.remove(pid)   # participants out first, then EOS the always-on inputs
        self.pipe.send_event(Gst.Event.new_eos())
        GLib.timeout_add(3000, lambda: (self.loop.quit(), False)[1])   # safety

    def command(self, line):
        try:
            c = json.loads(line)
            {"add": lambda: self.add(c), "remove": lambda: self.remove(c["id"]), "stop": self.stop}[c["cmd"]]()
        except Exception as e:
            self.event(kind="command_error", error=repr(e), line=line.strip())

    def _on_msg(self, bus, msg):
        t = msg.type
        if t == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            src = msg.src
            # an error inside one participant's bin must not kill the programme: drop that participant
            owner = next((p for p in self.parts.values() if src is p.bin or self._inside(src, p.bin)), None)
            self.event(kind="error", src=src.get_path_string(), error=str(err), participant=owner.id if owner else None)
            if owner: GLib.idle_add(lambda: (self.remove(owner.id), False)[1])
            else: self.loop.quit()
        elif t == Gst.MessageType.EOS:
            self.event(kind="eos"); self.loop.quit()
        elif t == Gst.MessageType.LATENCY:
            t1 = time.monotonic()
            if not self.args.no_recalc: self.pipe.recalculate_latency()
            q = Gst.Query.new_latency(); self.comp.get_static_pad("src").query(q)
            self.event(kind="latency_msg", src=msg.src.get_path_string(), recalc_ms=round(1000*(time.monotonic()-t1), 1),
                       comp_latency=[x/1e6 if x < 2**63 else None for x in q.parse_latency()[1:]], pipe_latency_ms=self.pipe.get_latency()/1e6)
        elif t == Gst.MessageType.WARNING:
            self.event(kind="warning", src=msg.src.get_path_string(), warning=str(msg.parse_warning()[0]))

    @staticmethod
    def _inside(obj, bin_):
        while obj is not None:
            if obj is bin_: return True
            obj = obj.get_parent()
        return False

    def run(self):
        def stdin_cb(ch, cond):
            if cond & GLib.IOCondition.IN:
                line = ch.readline()
                if line:
                    self.command(line); return True
            self.stop(); return False
        ch = GLib.IOChannel.unix_new(sys.stdin.fileno())
        GLib.io_add_watch(ch, GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN | GLib.IOCondition.HUP, stdin_cb)
        for sig in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *x: (self.stop(), False)[1])
        self.pipe.set_state(Gst.State.PLAYING)
        self.pipe.get_state(Gst.CLOCK_TIME_NONE)
        clk = self.pipe.get_clock()
        rt0_wall = time.time() - (clk.get_time() - self.pipe.get_base_time()) / 1e9
        # wall-clock time of running-time 0 (tfdt 0 with start-time-selection=first ~ first output frame)
        self.event(kind="started", pid=os.getpid(), running_time_zero_wall=rt0_wall)
        self.loop.run()
        self._stats()
        self.pipe.set_state(Gst.State.NULL)

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="out.mp4")
    ap.add_argument("--latency-ms", type=int, default=300, help="aggregator min-upstream-latency (>= jitter + decode)")
    ap.add_argument("--jitter-ms", type=int, default=150)
    ap.add_argument("--fragment-ms", type=int, default=500)
    ap.add_argument("--stall-ms", type=int, default=700)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--vbitrate", type=int, default=2500)
    ap.add_argument("--aac", default="avenc_aac")
    ap.add_argument("--no-recalc", action="store_true")
    ap.add_argument("--force-live", action="store_true")
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--no-ignore-inactive", action="store_true")
    ap.add_argument("--debug-caps", action="store_true")
    ap.add_argument("--debug-sync", action="store_true")
    ap.add_argument("--no-rtcp-sink", action="store_true")
    ap.add_argument("--vp8dec", default="vp8dec")
    ap.add_argument("--no-matrix", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--scaler", default="", help="e.g. linear, nearest (default: converter default, cubic)")
    ap.add_argument("--bare", action="store_true", help="measurement only: no per-tile label")
    ap.add_argument("--comp-threads", type=int, default=0)
    ap.add_argument("--pace-ms", type=int, default=290)
    Mixer(ap.parse_args()).run()
