"""Interoperability: aiortc (a WebRTC stack not written here) publishes by WHIP and plays back by WHEP.

The publisher sends a generated 640x480 30 fps video (moving diagonal stripes) and a 400 Hz sine; a WHEP
session, also aiortc, decodes both and the test counts what it decoded. The same module checks the
documented HTTP errors of the WHIP/WHEP endpoints (docs/protocol.md, "HTTP errors").

Everything stays on loopback: aioice skips 127.0.0.1 when it gathers host candidates, so the test
patches its host-address lookup to return only 127.0.0.1, and no STUN server is configured.

Env: ROSTRUM_BIN   the rostrum binary (default: $CARGO_TARGET_DIR or target/, then debug/rostrum)
"""

from __future__ import annotations

import array
import asyncio
import fractions
import http.client
import logging
import math
import os
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aioice.ice
import av
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger("interop")

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 640, 480
MIN_VIDEO_FRAMES = 30  # decoded at the WHEP side ...
MEDIA_DEADLINE_S = 10.0  # ... within this long after the WHEP answer
SERVER_START_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 10.0
ICE_TIMEOUT_S = 10.0
PUBLISH_BEFORE_WHEP_FRAMES = 45  # the viewer joins after the publisher has sent this many frames (1.5 s)

# --- loopback ICE for aiortc --------------------------------------------------------------------------

_real_get_host_addresses = aioice.ice.get_host_addresses


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice drops 127.0.0.1 (and gathers on every other interface): gather on loopback only."""
    return ["127.0.0.1"] if use_ipv4 else []


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch):
    # aioice 0.13 calls the module-level get_host_addresses() from Connection.gather_candidates().
    assert callable(_real_get_host_addresses), "aioice.ice.get_host_addresses moved: update the patch"
    monkeypatch.setattr(aioice.ice, "get_host_addresses", _loopback_only)


def new_pc() -> RTCPeerConnection:
    # iceServers=[]: no STUN (aiortc's default would be a public STUN server).
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


# --- the server ---------------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen
    host: str
    port: int
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    def stderr_tail(self, n: int = 60) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(cannot read server stderr: {e})"
        return "\n".join(lines[-n:])


def _die_with_parent() -> None:
    """In the child before exec: on Linux, have the kernel SIGTERM the server if pytest itself is killed."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; the fixture's finalizer is the main cleanup
        pass


def rostrum_bin() -> Path:
    if os.environ.get("ROSTRUM_BIN"):
        return Path(os.environ["ROSTRUM_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "rostrum"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = rostrum_bin()
    if not binary.is_file():
        pytest.fail(f"{binary} not found: run `cargo build -p rostrum-server` or set ROSTRUM_BIN")
    stderr_path = tmp_path_factory.mktemp("rostrum") / "stderr.log"
    cmd = [
        str(binary), "serve",
        "--http", "127.0.0.1:0",
        "--media-port", "0",
        "--public-ip", "127.0.0.1",
        "--no-broadcast",
        "--log", "rostrum_sfu=debug,info",
    ]
    log.info("starting %s (stderr: %s)", " ".join(cmd), stderr_path)
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
            preexec_fn=_die_with_parent,
        )
    srv = Server(proc=proc, host="127.0.0.1", port=0, stderr_path=stderr_path)
    found = threading.Event()

    def read_stdout():
        # Keep draining stdout for the server's whole life so it never blocks on a full pipe.
        for line in proc.stdout:
            srv.stdout_lines.append(line.rstrip("\n"))
            m = re.search(r"stage:\s+http://([0-9.]+):(\d+)/", line)
            if m and not found.is_set():
                srv.host, srv.port = m.group(1), int(m.group(2))
                found.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not found.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"rostrum did not come up (exit code {proc.poll()}); stdout: {srv.stdout_lines}\n"
                    f"stderr:\n{srv.stderr_tail()}"
                )
        log.info("rostrum is up on %s:%d: %s", srv.host, srv.port, srv.stdout_lines)
        yield srv
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.info("rostrum exited with %s", proc.returncode)


# --- HTTP (stdlib, so any header and body can be sent as is) ------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def request(srv: Server, method: str, path: str, body: bytes | str | None = None,
            content_type: str | None = "application/sdp") -> Reply:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=HTTP_TIMEOUT_S)
    try:
        headers = {}
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            if content_type is not None:
                headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace"))
    finally:
        conn.close()


async def arequest(srv: Server, *args, **kw) -> Reply:
    return await asyncio.to_thread(request, srv, *args, **kw)


def metrics(srv: Server) -> str:
    try:
        text = request(srv, "GET", "/metrics").body
    except OSError as e:
        return f"(metrics unavailable: {e})"
    return "\n".join(l for l in text.splitlines() if l.startswith("rostrum_"))


def unique_room() -> str:
    return "interop-" + uuid.uuid4().hex[:10]


# --- generated media ----------------------------------------------------------------------------------

STRIPE_PERIOD = 32  # pixels; stripes move 4 px a frame, so one period every 8 frames
_STRIPES = bytes((228 if (i // (STRIPE_PERIOD // 2)) % 2 else 28) for i in range(WIDTH + STRIPE_PERIOD))
_CHROMA = bytes([128]) * ((WIDTH // 2) * (HEIGHT // 2))


class StripesTrack(VideoStreamTrack):
    """640x480 at 30 fps (VideoStreamTrack's clock): diagonal black/white stripes that move each frame,
    with the chroma of a grey picture."""

    def __init__(self):
        super().__init__()
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        t = self.frames
        self.frames += 1
        luma = b"".join(
            _STRIPES[(y + 4 * t) % STRIPE_PERIOD:][:WIDTH] for y in range(HEIGHT)
        )
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(luma)
        frame.planes[1].update(_CHROMA)
        frame.planes[2].update(_CHROMA)
        frame.pts, frame.time_base = pts, time_base
        return frame


class SineTrack(MediaStreamTrack):
    """A 400 Hz sine, mono 48 kHz s16, in 20 ms frames (exactly 8 periods each, so every frame is the same)."""

    kind = "audio"
    RATE, SAMPLES, HZ = 48000, 960, 400

    def __init__(self):
        super().__init__()
        self._start: float | None = None
        self._ts = 0
        self._pcm = array.array(
            "h", (int(0.3 * 32767 * math.sin(2 * math.pi * self.HZ * i / self.RATE)) for i in range(self.SAMPLES))
        ).tobytes()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._ts += self.SAMPLES
            await asyncio.sleep(max(0.0, self._start + self._ts / self.RATE - time.time()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(self._pcm)
        frame.pts, frame.sample_rate = self._ts, self.RATE
        frame.time_base = fractions.Fraction(1, self.RATE)
        return frame


# --- what the WHEP side decodes -----------------------------------------------------------------------


@dataclass
class Decoded:
    video_frames: int = 0
    video_sizes: dict[tuple[int, int], int] = field(default_factory=dict)
    first_video_at: float | None = None
    enough_video_at: float | None = None
    distinct_luma_rows: set[bytes] = field(default_factory=set)
    max_luma_spread: int = 0
    audio_frames: int = 0
    max_audio_rms: float = 0.0
    errors: list[str] = field(default_factory=list)
    enough: asyncio.Event = field(default_factory=asyncio.Event)


async def consume(track, got: Decoded, t0: float) -> None:
    try:
        while True:
            frame = await track.recv()
            if track.kind == "video":
                got.video_frames += 1
                size = (frame.width, frame.height)
                got.video_sizes[size] = got.video_sizes.get(size, 0) + 1
                if got.first_video_at is None:
                    got.first_video_at = time.monotonic() - t0
                # The middle row of the luma plane: stripes give a wide spread, motion gives new rows.
                plane = frame.planes[0]
                y = frame.height // 2
                row = bytes(plane)[y * plane.line_size: y * plane.line_size + frame.width]
                if row:
                    got.max_luma_spread = max(got.max_luma_spread, max(row) - min(row))
                    if len(got.distinct_luma_rows) < 64:
                        got.distinct_luma_rows.add(row)
                if size == (WIDTH, HEIGHT) and got.video_sizes[size] >= MIN_VIDEO_FRAMES and got.enough_video_at is None:
                    got.enough_video_at = time.monotonic() - t0
                    got.enough.set()
            else:
                got.audio_frames += 1
                if frame.format.name == "s16":
                    pcm = array.array("h", bytes(frame.planes[0])[: frame.samples * len(frame.layout.channels) * 2])
                    if pcm:
                        rms = math.sqrt(sum(s * s for s in pcm) / len(pcm))
                        got.max_audio_rms = max(got.max_audio_rms, rms)
    except MediaStreamError:
        pass
    except Exception as e:  # noqa: BLE001 - reported in the assertion message
        got.errors.append(f"{track.kind}: {e!r}")


async def wait_ice_connected(pc: RTCPeerConnection, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pc.iceConnectionState not in ("completed", "connected"):
        if pc.iceConnectionState == "failed":
            raise AssertionError(f"{what}: ICE failed")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: ICE still {pc.iceConnectionState} after {timeout} s")
        await asyncio.sleep(0.05)


def sdp_lines(sdp: str, prefixes=("m=", "a=candidate", "a=rtpmap", "a=send", "a=recv", "a=inactive", "a=ice-lite", "a=setup", "a=mid", "c=")) -> str:
    return "\n".join(l for l in sdp.splitlines() if l.startswith(prefixes))


def assert_loopback_candidates(sdp: str, what: str) -> None:
    """Candidates present, and all on 127.0.0.1: the test must never use the machine's other addresses."""
    addrs = [l.split()[4] for l in sdp.splitlines() if l.startswith("a=candidate")]
    assert addrs, f"{what}: no candidates:\n{sdp}"
    assert set(addrs) == {"127.0.0.1"}, f"{what}: candidates off loopback: {addrs}"


def run(coro, timeout: float):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


# --- tests --------------------------------------------------------------------------------------------


def test_aiortc_whip_publish_whep_playback(server: Server):
    run(_whip_whep(server), timeout=60)


async def _whip_whep(srv: Server) -> None:
    room = unique_room()
    publisher, viewer = new_pc(), new_pc()
    video, audio = StripesTrack(), SineTrack()
    whip_location = whep_location = None
    tasks: list[asyncio.Task] = []
    got = Decoded()
    notes: list[str] = []

    def context() -> str:
        return (
            "\n" + "\n".join(notes)
            + f"\n--- decoded: {got}\n--- publisher ICE {publisher.iceConnectionState}, "
            f"viewer ICE {viewer.iceConnectionState}, frames generated {video.frames}"
            f"\n--- metrics:\n{metrics(srv)}\n--- server stderr (tail):\n{srv.stderr_tail()}"
        )

    try:
        # WHIP: a sendonly audio + video offer with all of aiortc's (loopback) candidates in it.
        t_start = time.monotonic()
        publisher.addTransceiver(audio, direction="sendonly")
        publisher.addTransceiver(video, direction="sendonly")
        await publisher.setLocalDescription(await publisher.createOffer())  # returns once gathering is complete
        offer = publisher.localDescription.sdp
        assert_loopback_candidates(offer, "WHIP offer")
        notes.append(f"--- WHIP offer:\n{sdp_lines(offer)}")
        r = await arequest(srv, "POST", f"/whip/{room}?name=aiortc", offer)
        assert r.status == 201, f"WHIP POST: {r.status} {r.body!r}" + context()
        assert r.headers.get("content-type", "").startswith("application/sdp"), r.headers
        whip_location = r.headers.get("location", "")
        m = re.fullmatch(rf"/whip/{room}/([^/]+)", whip_location)
        assert m, f"WHIP Location {whip_location!r}"
        pid = m.group(1)
        notes.append(f"--- WHIP answer (Location {whip_location}):\n{sdp_lines(r.body)}")
        assert_loopback_candidates(r.body, "WHIP answer")
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=r.body, type="answer"))
        await wait_ice_connected(publisher, "publisher", ICE_TIMEOUT_S)
        log.info("publisher connected after %.2f s", time.monotonic() - t_start)
        # Join mid-stream, as a real viewer does: the publisher has been sending for a while and (aiortc's VP8
        # GOP being 3000 frames) its next keyframe is far away, so the viewer decodes only if Rostrum gets one
        # from the publisher for it (PLI/FIR, its own or the viewer's forwarded).
        deadline = time.monotonic() + 5
        while video.frames < PUBLISH_BEFORE_WHEP_FRAMES and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert video.frames >= PUBLISH_BEFORE_WHEP_FRAMES, f"publisher sent only {video.frames} frames" + context()

        # WHEP: a recvonly offer, one audio and one video m-line.
        t0 = time.monotonic()

        @viewer.on("track")
        def on_track(track):
            log.info("viewer got a %s track", track.kind)
            tasks.append(asyncio.ensure_future(consume(track, got, t0)))

        viewer.addTransceiver("audio", direction="recvonly")
        viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        voffer = viewer.localDescription.sdp
        assert_loopback_candidates(voffer, "WHEP offer")
        notes.append(f"--- WHEP offer:\n{sdp_lines(voffer)}")
        r = await arequest(srv, "POST", f"/whep/{room}/{pid}", voffer)
        assert r.status == 201, f"WHEP POST: {r.status} {r.body!r}" + context()
        whep_location = r.headers.get("location", "")
        assert re.fullmatch(rf"/whep/{room}/{pid}/[^/]+", whep_location), f"WHEP Location {whep_location!r}"
        notes.append(f"--- WHEP answer (Location {whep_location}):\n{sdp_lines(r.body)}")
        assert_loopback_candidates(r.body, "WHEP answer")
        for note in notes:
            log.info("%s", note)
        t0 = time.monotonic()  # the clock of the media deadline starts at the answer
        await viewer.setRemoteDescription(RTCSessionDescription(sdp=r.body, type="answer"))
        await wait_ice_connected(viewer, "viewer", ICE_TIMEOUT_S)
        t_ice = time.monotonic() - t0

        try:
            await asyncio.wait_for(got.enough.wait(), MEDIA_DEADLINE_S - (time.monotonic() - t0))
        except asyncio.TimeoutError:
            pass
        elapsed = time.monotonic() - t0
        log.info("viewer ICE after %.2f s; decoded %s", t_ice, got)
        print(
            f"\nWHEP decoded {got.video_frames} video frames (sizes {got.video_sizes}), first after "
            f"{got.first_video_at and round(got.first_video_at, 2)} s, {MIN_VIDEO_FRAMES} at "
            f"{got.enough_video_at and round(got.enough_video_at, 2)} s; {got.audio_frames} audio frames "
            f"(max RMS {got.max_audio_rms:.0f}); viewer ICE {t_ice:.2f} s; publisher sent {video.frames} frames"
        )

        assert not got.errors, f"decoding errors: {got.errors}" + context()
        assert got.video_sizes.get((WIDTH, HEIGHT), 0) >= MIN_VIDEO_FRAMES, (
            f"only {got.video_sizes.get((WIDTH, HEIGHT), 0)} decoded {WIDTH}x{HEIGHT} frames in "
            f"{elapsed:.1f} s" + context()
        )
        assert set(got.video_sizes) == {(WIDTH, HEIGHT)}, f"decoded sizes {got.video_sizes}" + context()
        # It is the generated picture (black/white stripes), and it moves.
        assert got.max_luma_spread > 120, f"flat picture (luma spread {got.max_luma_spread})" + context()
        assert len(got.distinct_luma_rows) >= 4, "the picture does not move" + context()
        # Audio: ~50 frames a second are sent; the decoded sine is far from silence.
        await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
        assert got.audio_frames >= 25, f"only {got.audio_frames} decoded audio frames" + context()
        assert got.max_audio_rms > 1000, f"audio is silent (max RMS {got.max_audio_rms:.0f})" + context()

        # A WHEP offer for a participant that is not in this room: 404, and nothing created.
        r = await arequest(srv, "POST", f"/whep/{room}/p-ffffffffffff", voffer)
        assert r.status == 404, f"WHEP to an unknown participant: {r.status} {r.body!r}"
        assert r.body.strip(), "404 without a reason"

        # Teardown through the Locations.
        r = await arequest(srv, "DELETE", whep_location)
        assert r.status == 200, f"DELETE {whep_location}: {r.status} {r.body!r}"
        whep_location = None
        r = await arequest(srv, "DELETE", whip_location)
        assert r.status == 200, f"DELETE {whip_location}: {r.status} {r.body!r}"
        deleted = whip_location
        whip_location = None
        # Gone: a second DELETE and a new WHEP session both find nothing.
        r = await arequest(srv, "DELETE", deleted)
        assert r.status == 404, f"second DELETE {deleted}: {r.status} {r.body!r}"
        r = await arequest(srv, "POST", f"/whep/{room}/{pid}", voffer)
        assert r.status == 404, f"WHEP after the publisher left: {r.status} {r.body!r}"
    finally:
        for loc in (whep_location, whip_location):
            if loc:
                try:
                    await arequest(srv, "DELETE", loc)
                except OSError:
                    pass
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pc in (viewer, publisher):
            try:
                await asyncio.wait_for(pc.close(), 5)
            except Exception as e:  # noqa: BLE001
                log.warning("closing a peer connection: %r", e)


async def recvonly_offer() -> str:
    pc = new_pc()
    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


@pytest.fixture(scope="module")
def whep_offer() -> str:
    """A real aiortc recvonly offer, so that errors come from what the test varies and not from the SDP."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aioice.ice, "get_host_addresses", _loopback_only)
        return run(recvonly_offer(), timeout=15)


def assert_error(r: Reply, status: int, what: str):
    assert r.status == status, f"{what}: expected {status}, got {r.status} {r.body!r}"
    assert r.body.strip(), f"{what}: {status} without a reason in the body"
    assert "\n" not in r.body.strip(), f"{what}: the reason is not one line: {r.body!r}"


def test_malformed_sdp_is_400(server):
    r = request(server, "POST", f"/whip/{unique_room()}?name=aiortc", "this is not an SDP offer\r\n")
    assert_error(r, 400, "WHIP with a malformed SDP")
    r = request(server, "POST", f"/whip/{unique_room()}?name=aiortc", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\n")
    assert_error(r, 400, "WHIP with an SDP without media")


def test_bad_room_name_is_400(server, whep_offer):
    r = request(server, "POST", "/whip/bad.room?name=aiortc", whep_offer)
    assert_error(r, 400, "WHIP to a bad room name")
    r = request(server, "POST", "/whip/" + "r" * 65 + "?name=aiortc", whep_offer)
    assert_error(r, 400, "WHIP to a 65-character room name")


def test_whep_unknown_room_is_404(server, whep_offer):
    r = request(server, "POST", f"/whep/{unique_room()}/p-1", whep_offer)
    assert_error(r, 404, "WHEP on an unknown room")
    r = request(server, "POST", f"/whep/{unique_room()}/somebody", whep_offer)
    assert_error(r, 404, "WHEP by name on an unknown room")


def test_body_over_64_kib_is_413(server, whep_offer):
    body = whep_offer + "a=x-padding:" + "x" * (64 * 1024) + "\r\n"
    assert len(body.encode()) > 64 * 1024
    r = request(server, "POST", f"/whip/{unique_room()}?name=aiortc", body)
    assert r.status == 413, f"WHIP with {len(body)} bytes: {r.status} {r.body!r}"
    r = request(server, "POST", f"/whep/{unique_room()}/p-1", body)
    assert r.status == 413, f"WHEP with {len(body)} bytes: {r.status} {r.body!r}"


def test_wrong_content_type_is_415(server, whep_offer):
    room = unique_room()
    for ct in ("text/plain", "application/json", None):
        r = request(server, "POST", f"/whip/{room}?name=aiortc", whep_offer, content_type=ct)
        assert_error(r, 415, f"WHIP with Content-Type {ct}")
    r = request(server, "POST", f"/whep/{room}/p-1", whep_offer, content_type="text/plain")
    assert_error(r, 415, "WHEP with Content-Type text/plain")


def test_delete_unknown_whip_participant(server):
    # Well-formed id that nobody has: 404 (unknown room or participant).
    r = request(server, "DELETE", f"/whip/{unique_room()}/p-ffffffffffff")
    assert_error(r, 404, "DELETE of an unknown WHIP participant")
    # Not a participant id at all: 400 (bad participant name).
    r = request(server, "DELETE", f"/whip/{unique_room()}/not-an-id")
    assert_error(r, 400, "DELETE of a malformed WHIP participant id")
    # Unknown WHEP session: 404.
    r = request(server, "DELETE", f"/whep/{unique_room()}/p-1/t-ffff")
    assert_error(r, 404, "DELETE of an unknown WHEP session")
    assert r.status == 404, f"DELETE of an unknown WHEP session: {r.status} {r.body!r}"


def test_trickle_patch_is_405(server):
    r = request(server, "PATCH", f"/whip/{unique_room()}/p-1", "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
                content_type="application/trickle-ice-sdpfrag")
    assert r.status == 405, f"PATCH (trickle): {r.status} {r.body!r}"
