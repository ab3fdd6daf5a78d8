"""Live diarized streams are not held up by a long diarized batch upload (issue: shared diarizer lock)."""

from __future__ import annotations

import asyncio
import statistics
import threading

import httpx
import numpy as np

from tests.audio_utils import TWO_SPEAKERS, load_16k, write_wav
from tests.diarization_utils import final_latencies
from tests.stream_client import stream

STREAM = {"language": "en", "diarize": "true"}
UPLOAD = {
    "response_format": "verbose_json",
    "timestamp_granularities[]": ["word", "segment"],
    "diarize": "true",
    "language": "en",
}


def two_streams(server, samples) -> list[float]:
    """Two concurrent real-time diarized streams; all their final latencies."""

    async def both():
        return await asyncio.gather(*(stream(server.ws_url, samples, pace=1.0, params=STREAM, timeout_s=300) for _ in range(2)))

    results = asyncio.run(both())
    for r in results:
        assert r.checkpoints == ["final"] and not r.errors, r.errors
        assert {s.get("speaker_id") for s in r.segments.values()} - {None}
    return [x for r in results for x in final_latencies(r)]


def test_long_diarized_upload_does_not_stall_diarized_streams(server, tmp_path):
    # 10 s of two_speakers where both talk in turns (its first 6.7 s are silent): five speaker changes
    samples = load_16k(TWO_SPEAKERS)[6 * 16000 : 16 * 16000]
    piece = write_wav(tmp_path / "piece.wav", samples)
    with open(piece, "rb") as f:  # loads the diarization models once
        assert httpx.post(f"{server.base_url}/v1/audio/transcriptions", files={"file": f}, data=UPLOAD, timeout=300).is_success
    alone = two_streams(server, samples)

    streams_done = threading.Event()
    uploading = threading.Event()
    status: list[int] = []

    # two_speakers (30 s) uploaded again and again while the streams run: the batch load lasts exactly as long
    # as the streams on any machine, and only one upload's tail is left after them (one 8-minute upload
    # outlasted the streams too, but kept the shared server busy for two more minutes)
    def upload_until_the_streams_end() -> None:
        while not streams_done.is_set():
            with open(TWO_SPEAKERS, "rb") as f:
                uploading.set()
                r = httpx.post(f"{server.base_url}/v1/audio/transcriptions", files={"file": f}, data=UPLOAD, timeout=900)
            status.append(r.status_code)

    uploader = threading.Thread(target=upload_until_the_streams_end)
    uploader.start()
    uploading.wait()
    beside = two_streams(server, samples)
    streams_done.set()
    uploader.join()
    assert status and set(status) == {200}, status
    print(
        f"final latency median alone {statistics.median(alone):.2f}s, beside {len(status)} uploads "
        f"{statistics.median(beside):.2f}s"
    )
    # Median over both streams' final segments; a floor keeps a very fast baseline from making noise
    # decisive. Measured 1.43x under load (8-minute upload). The bound is 2x because the upload also
    # takes CPU from the streams: beside a CPU hog on 2 cores that contention alone went past 1.5x.
    # That streams never wait for the batch job itself is checked exactly by the in-process test below.
    assert statistics.median(beside) <= 2.0 * max(statistics.median(alone), 1.0), (alone, beside)


def test_stream_tracker_does_not_wait_for_a_batch_diarization():
    """In-process, real models: the streaming tracker labels a segment while the batch endpoint's
    diarizer is busy with a long file (the tracker has a diarizer and a lock of its own, so it does not
    wait for the whole batch job)."""
    import time

    from audio_service.diarization.offline import DiarizerRegistry, SpeakerBounds
    from audio_service.diarization.tracker import speaker_tracker_factory
    from audio_service.schema import Audio
    from audio_service.settings import Settings

    class HeldAudio(Audio):
        """Audio that tells when a diarizer first reads its samples: it does so holding its lock, until done."""

        def __getattribute__(self, name: str):
            if name == "samples":
                taken.set()
            return super().__getattribute__(name)

    two = load_16k(TWO_SPEAKERS)
    taken = threading.Event()
    batch_diarizer = DiarizerRegistry(Settings()).get(None)
    tracker = speaker_tracker_factory()()
    piece = Audio(two[: 8 * 16000])
    batch_diarizer(Audio(two), SpeakerBounds())  # load the shared models once
    t0 = time.perf_counter()
    tracker.assign(piece, 0.0, 8.0)
    alone = time.perf_counter() - t0

    def batch() -> None:
        batch_diarizer(HeldAudio(np.concatenate([two] * 4)), SpeakerBounds())  # 2 minutes: still running when the tracker is done

    worker = threading.Thread(target=batch)
    worker.start()
    assert taken.wait(60), "the batch diarization did not start"
    t0 = time.perf_counter()
    tracker.assign(piece, 0.0, 8.0)
    beside = time.perf_counter() - t0
    batch_still_running = worker.is_alive()
    worker.join()
    assert batch_still_running, "the batch diarization ended first: nothing was measured"
    # both share 2 cores, so the tracker slows down, but it must not wait for the whole batch job
    assert beside <= max(3.0 * alone, alone + 5.0), (alone, beside)
