"""Do live diarized streams wait for a long diarized upload? Final latency beside the upload / alone.

Two real-time ``diarize=true`` streams of two_speakers.wav (15 s each) run alone, then again while an
8-minute ``diarize=true`` upload is transcribed and diarized on the same server. The figure is the
ratio of their median final-segment latency (issue target: <= 1.5). Run it on a quiet machine:

    .venv/bin/python bench/diarization_load.py [--rounds 3]

The upload takes CPU from the streams on a 2-core machine, so part of the ratio is plain contention;
the streams do not wait for the batch diarizer's lock (``tests/test_diarization_load.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine_info, save, write_audio  # noqa: E402
from tests.audio_utils import TWO_SPEAKERS, load_16k  # noqa: E402
from tests.diarization_utils import final_latencies  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.stream_client import stream  # noqa: E402

STREAM = {"language": "en", "diarize": "true"}
UPLOAD = {
    "response_format": "verbose_json",
    "timestamp_granularities[]": ["word", "segment"],
    "diarize": "true",
    "language": "en",
}


def two_streams(srv: ServerProcess, samples: np.ndarray) -> list[float]:
    """Final-segment latencies of two concurrent real-time diarized streams."""

    async def both():
        return await asyncio.gather(*(stream(srv.ws_url, samples, pace=1.0, params=STREAM, timeout_s=300) for _ in range(2)))

    return [x for r in asyncio.run(both()) for x in final_latencies(r)]


def beside_upload(srv: ServerProcess, samples: np.ndarray, long_file: Path) -> tuple[list[float], bool]:
    """The two streams' latencies while the long upload runs, and whether it outlasted them."""
    done = threading.Event()

    def upload() -> None:
        with open(long_file, "rb") as f:
            httpx.post(f"{srv.base_url}/v1/audio/transcriptions", files={"file": f}, data=UPLOAD, timeout=1800).raise_for_status()
        done.set()

    uploader = threading.Thread(target=upload)
    uploader.start()
    latencies = two_streams(srv, samples)
    outlasted = not done.is_set()
    uploader.join()
    return latencies, outlasted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="alone/beside pairs to run")
    args = ap.parse_args()
    two = load_16k(TWO_SPEAKERS)
    samples = two[: 15 * 16000]
    long_file = write_audio("two_speakers_8min.wav", np.concatenate([two] * 16))
    alone: list[float] = []
    beside: list[float] = []
    outlasted = []
    with ServerProcess(log_path=RESULTS / "diarization_load_server.log") as srv:
        with open(TWO_SPEAKERS, "rb") as f:  # load the diarization models before measuring
            httpx.post(f"{srv.base_url}/v1/audio/transcriptions", files={"file": f}, data=UPLOAD, timeout=300).raise_for_status()
        for _ in range(args.rounds):
            alone += two_streams(srv, samples)
            lat, ok = beside_upload(srv, samples, long_file)
            beside += lat
            outlasted.append(ok)
    result = {
        "machine": machine_info(),
        "rounds": args.rounds,
        "upload_outlasted_streams": outlasted,
        "final_latency_median_alone_s": round(statistics.median(alone), 3),
        "final_latency_median_beside_upload_s": round(statistics.median(beside), 3),
        "ratio": round(statistics.median(beside) / statistics.median(alone), 3),
        "final_latency_p95_alone_s": round(float(np.percentile(alone, 95)), 3),
        "final_latency_p95_beside_upload_s": round(float(np.percentile(beside, 95)), 3),
    }
    save("diarization_load", result)
    print(result)


if __name__ == "__main__":
    main()
