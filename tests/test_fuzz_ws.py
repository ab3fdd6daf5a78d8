"""WebSocket fuzzing with hypothesis against the real server: random sequences of binary frames (any
length, odd, empty, oversize), text frames (valid and invalid JSON, unknown types, huge strings),
checkpoints and traces in any order, ending in a clean close, an abrupt disconnect, or a client that
stops reading. Every session the server closes ends with a documented code (never 1011); a concurrent
well-behaved stream keeps its transcript and latency; server memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.audio_utils import JFK, JFK_TEXT, TWO_SPEAKERS, float_to_pcm16, load_16k, wer
from tests.raw_client import close_code, connect, read_until_closed, ws_frame, ws_frames, ws_handshake
from tests.stream_client import stream

DOCUMENTED_CLOSE_CODES = {1000, 1003, 1007, 1008, 1009, 1013}  # docs/streaming.md, "Errors and close codes"
EXAMPLES = int(os.environ.get("FUZZ_WS_EXAMPLES", "80"))
PATH = "/v1/audio/transcriptions/streaming?language=en"
JFK_PCM = float_to_pcm16(load_16k(TWO_SPEAKERS))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
text_frames = st.one_of(
    st.text(max_size=80),  # mostly not JSON
    json_values.map(json.dumps),
    json_values.map(lambda v: json.dumps({"checkpoint_id": v})),
    st.text(max_size=30).map(lambda v: json.dumps({"checkpoint_id": v})),
    st.tuples(json_values, json_values).map(
        lambda v: json.dumps({"object": "stt.input.trace", "trace_id": v[0], "event_id": v[1]})
    ),
    st.text(max_size=20).map(lambda t: json.dumps({"object": t, "checkpoint_id": "x"})),
    st.integers(200, 70_000).map(lambda n: json.dumps({"object": "stt.input.trace", "trace_id": "x" * n})),  # huge strings
)
binary_frames = st.one_of(
    st.binary(max_size=401),  # noise, odd lengths and empty frames included
    st.tuples(st.integers(0, 100), st.integers(1, 32)).map(lambda a: JFK_PCM[a[0] * 3200 : a[0] * 3200 + a[1] * 200]),  # speech
    st.sampled_from([64_001, 64_002, 66_000, 70_000]).map(lambda n: b"\0" * n),  # oversize
)
frames = st.lists(st.one_of(binary_frames.map(lambda b: (0x2, b)), text_frames.map(lambda t: (0x1, t.encode()))), max_size=12)
endings = st.sampled_from(["close", "final", "abrupt", "stop_reading"])


@pytest.fixture(scope="module")
def ws_server(tmp_path_factory):
    from tests.server import ServerProcess

    # The default model: whisper-tiny.en repeats phrases when streaming jfk.flac even alone (reported).
    settings_ = dict(quotas={"max_streams_per_key": 200}, streaming={"send_timeout_s": 5.0})
    with ServerProcess(log_path=tmp_path_factory.mktemp("fuzz_ws") / "server.log", **settings_) as srv:
        yield srv


class GoodStreams(threading.Thread):
    """jfk.flac streamed again and again at real-time pace (language=en) while the fuzzer runs."""

    def __init__(self, ws_url: str) -> None:
        super().__init__(daemon=True)
        self.ws_url = ws_url
        self.stop = threading.Event()
        self.results: list[tuple[str, float]] = []  # (transcript, final latency after the audio's end)
        self.error: BaseException | None = None
        self.samples = load_16k(JFK)

    def run(self) -> None:
        try:
            while True:  # at least once
                result = asyncio.run(stream(self.ws_url, self.samples, frame_ms=100, pace=1.0, params={"language": "en"}))
                final_at = next(t for t, m in result.messages if m.get("checkpoint_id") == "final")
                self.results.append((result.text, final_at - len(self.samples) / 16000))
                if self.stop.is_set():
                    return
        except BaseException as exc:  # reported by the test
            self.error = exc


def run_session(port: int, sequence: list[tuple[int, bytes]], ending: str, stuck: list, codes: list) -> None:
    sock = connect(port)
    ws_handshake(sock, PATH)
    try:
        for opcode, payload in sequence:
            sock.sendall(ws_frame(opcode, payload))
        if ending == "final":
            sock.sendall(ws_frame(0x1, b'{"checkpoint_id": "final"}'))
        if ending in ("close", "final"):
            sock.sendall(ws_frame(0x8, (1000).to_bytes(2, "big")))
    except OSError:
        pass  # the server closed first (an error): its close frame is in our buffer
    if ending == "abrupt":
        sock.close()
        return
    if ending == "stop_reading":
        stuck.append(sock)  # never read; closed at the end of the test
        return
    code = close_code(ws_frames(read_until_closed(sock, 60)))
    sock.close()
    codes.append(code)
    assert code in DOCUMENTED_CLOSE_CODES, f"close code {code} after {[(o, p[:40]) for o, p in sequence]}"


def test_fuzz_websocket_sessions(ws_server) -> None:
    server = psutil.Process(ws_server.pid)
    warm = GoodStreams(ws_server.ws_url)
    warm.stop.set()
    warm.run()  # one stream alone: warms the model and gives the latency baseline
    assert warm.error is None and warm.results
    baseline_latency = warm.results[0][1]
    rss_before = server.memory_info().rss

    good = GoodStreams(ws_server.ws_url)
    good.start()
    stuck: list = []
    codes: list[int | None] = []

    @given(sequence=frames, ending=endings)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def fuzz(sequence, ending) -> None:
        run_session(ws_server.port, sequence, ending, stuck, codes)

    try:
        fuzz()
    finally:
        good.stop.set()
        good.join(timeout=120)
        for sock in stuck:
            sock.close()
    assert {1000, 1003, 1007, 1009} <= set(codes), sorted(set(codes))  # the fuzzer reached each kind of error
    assert good.error is None, repr(good.error)
    assert good.results, "the well-behaved stream never finished"
    for text, latency in good.results:
        assert wer(JFK_TEXT, text) < 0.25, good.results
        assert latency < max(3 * baseline_latency, 10.0), (latency, baseline_latency)
    assert server.memory_info().rss - rss_before < 400 << 20
    assert server.is_running()
