"""A transcription job survives its server: submitted to one process that dies at once, it is run by the
next process on the same jobs directory, and its signed callback arrives."""

from __future__ import annotations

import json

import httpx

from tests.audio_utils import JFK_TEXT, wer
from tests.http_utils import JOBS, Receiver, jfk_file, post, signature
from tests.ops_utils import wait_for
from tests.server import ServerProcess

SECRET = "e2e-callback-secret"


def test_a_job_finishes_after_a_restart_and_calls_back_signed(tmp_path) -> None:
    receiver = Receiver()
    settings = {
        "jobs": {"dir": str(tmp_path / "jobs"), "callback_secret": SECRET},
        "server": {"url_fetch_allowlist": ["127.0.0.1"]},
    }
    try:
        # the first server loads no model before it is ready: it only has to take the job
        with ServerProcess(log_path=tmp_path / "first.log", models={"preload": []}, **settings) as first:
            r = post(first, jfk_file(), {"language": "en", "callback_url": receiver.url}, path=JOBS)
            assert r.status_code == 202, r.text
            assert first.proc is not None
            first.proc.kill()  # a crash, before the 11 s of audio can have been transcribed
            first.proc.wait()
        job_id = r.json()["id"]
        on_disk = json.loads((tmp_path / "jobs" / f"{job_id}.json").read_text())
        assert on_disk["status"] in ("queued", "running")

        with ServerProcess(log_path=tmp_path / "second.log", **settings) as second:
            job = wait_for(
                lambda: (
                    (j := httpx.get(f"{second.base_url}{JOBS}/{job_id}", timeout=10).json())["status"]
                    in ("succeeded", "failed", "cancelled")
                    and j
                ),
                60,
                "the job to end on the second server",
            )
            assert job["status"] == "succeeded", job
            assert wer(JFK_TEXT, job["result"]["text"]) <= 0.1, job["result"]["text"]
            wait_for(lambda: receiver.calls, 30, "the callback")
        headers, body, _ = receiver.calls[0]
        assert headers["x-audio-service-signature"] == signature(SECRET, headers, body)
        assert json.loads(body)["result"] == job["result"]
    finally:
        receiver.close()
