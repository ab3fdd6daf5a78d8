"""Transcription jobs in-process on the fake backend: submit and poll, cancel, the callback's SSRF check,
its signature and retries, and jobs found unfinished on disk run by the next app."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from audio_service.keys import KeyIdentity
from audio_service.ops.jobs import JobRecord, JobStore
from audio_service.pipeline.batch import BatchJob
from tests.fast.conftest import App, settings
from tests.fast.fake_backend import FakeBackend
from tests.http_utils import JOBS, Receiver, assert_error, jfk_file, post, signature
from tests.ops_utils import wait_for

SECRET = "callback-secret"


def _job_settings(tmp_path, **values: object) -> dict:
    return {
        "jobs": {"dir": str(tmp_path / "jobs"), "callback_secret": SECRET, "callback_backoff_s": 0.05},
        "server": {"url_fetch_allowlist": ["127.0.0.1"]},
        **values,
    }


def _until_ended(client: TestClient, job_id: str) -> dict:
    return wait_for(
        lambda: (j := client.get(f"{JOBS}/{job_id}").json())["status"] in ("succeeded", "failed", "cancelled") and j,
        30,
        f"job {job_id} to end",
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)
    yield r
    r.close()


@pytest.mark.parametrize("fmt", ["json", "verbose_json", "srt"])
def test_a_job_gives_the_synchronous_endpoints_result(make_app, tmp_path, fmt: str) -> None:
    app = make_app(**_job_settings(tmp_path))
    r = post(app.client, jfk_file(), {"response_format": fmt}, path=JOBS)
    assert r.status_code == 202, r.text
    submitted = r.json()
    assert submitted["object"] == "audio.transcription.job" and submitted["status"] == "queued"
    assert submitted["id"].startswith("job_")
    job = _until_ended(app.client, submitted["id"])
    assert job["status"] == "succeeded" and job["progress"] == 1.0, job
    sync = post(app.client, jfk_file(), {"response_format": fmt})
    assert job["result"] == (sync.json() if fmt != "srt" else {"text": sync.text})
    assert not list((tmp_path / "jobs").glob("*.audio"))  # the upload is deleted when the job ends


def test_a_running_job_is_cancelled(make_app, tmp_path) -> None:
    app = make_app(**_job_settings(tmp_path))
    app.fake.batch_gate.close()
    job_id = post(app.client, jfk_file(), path=JOBS).json()["id"]
    app.fake.batch_gate.wait_for_waiting(1)
    assert app.client.get(f"{JOBS}/{job_id}").json()["status"] == "running"
    assert app.client.delete(f"{JOBS}/{job_id}").status_code == 200
    app.fake.batch_gate.open()
    assert _until_ended(app.client, job_id)["status"] == "cancelled"


def test_unknown_and_other_keys_jobs_are_not_found(make_app, tmp_path) -> None:
    app = make_app(**_job_settings(tmp_path, auth={"api_keys": ["key-a", "key-b"]}))
    a, b = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}
    job_id = post(app.client, jfk_file(), path=JOBS, headers=a).json()["id"]
    assert_error(app.client.get(f"{JOBS}/{job_id}", headers=b), 404, "id", "job_not_found")
    assert_error(app.client.delete(f"{JOBS}/job_nope", headers=a), 404, "id", "job_not_found")
    assert_error(app.client.get(f"{JOBS}/{job_id}"), 401)
    assert _until_ended(_Authed(app.client, a), job_id)["status"] == "succeeded"


class _Authed:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def get(self, url: str):
        return self.client.get(url, headers=self.headers)


@pytest.mark.parametrize(
    "url, code",
    [("http://127.0.0.1:9/hook", "url_not_allowed"), ("ftp://example.com/x", None), ("http://[::1]/x", "url_not_allowed")],
)
def test_a_bad_callback_url_is_refused(make_app, tmp_path, url: str, code: str | None) -> None:
    values = _job_settings(tmp_path)
    values["server"] = {"url_fetch_allowlist": []}
    app = make_app(**values)
    assert_error(post(app.client, jfk_file(), {"callback_url": url}, path=JOBS), 400, "callback_url", code)
    assert not list((tmp_path / "jobs").glob("job_*"))


def test_the_callback_is_signed_and_retried_after_a_500(make_app, tmp_path, receiver: Receiver) -> None:
    app = make_app(**_job_settings(tmp_path))
    job_id = post(app.client, jfk_file(), {"callback_url": receiver.url}, path=JOBS).json()["id"]
    wait_for(lambda: len(receiver.calls) == 2, 30, "the callback and its retry")
    assert [status for *_, status in receiver.calls] == [500, 200]
    headers, body, _ = receiver.calls[1]
    assert headers["x-audio-service-signature"] == signature(SECRET, headers, body)
    assert body == receiver.calls[0][1]  # the same delivery, retried
    assert app.client.get(f"{JOBS}/{job_id}").json() == json.loads(body)


def test_unfinished_jobs_on_disk_run_in_the_next_app(make_app, tmp_path, fake: FakeBackend) -> None:
    values = _job_settings(tmp_path)
    stopped = App(fake, settings(**values))  # no lifespan: its runner never starts, as if it died at once
    job_id = post(stopped.client, jfk_file(), path=JOBS).json()["id"]
    assert (tmp_path / "jobs" / f"{job_id}.audio").exists()
    restarted = make_app(**values)
    job = _until_ended(restarted.client, job_id)
    assert job["status"] == "succeeded" and job["result"]["text"]


def test_a_callback_left_undelivered_is_sent_by_the_next_app(make_app, tmp_path, receiver: Receiver) -> None:
    ended = JobRecord(
        id="job_0123456789abcdef01234567",
        created_at=1,
        job=BatchJob(),
        who=KeyIdentity("anonymous"),
        callback_url=receiver.url,
        status="succeeded",
        result={"text": "done"},
        callback_pending=True,
    )
    JobStore(tmp_path / "jobs").save(ended)
    make_app(**_job_settings(tmp_path))
    wait_for(lambda: len(receiver.calls) == 2, 30, "the callback and its retry")
    assert json.loads(receiver.calls[1][1])["result"] == {"text": "done"}
    wait_for(lambda: not json.loads((tmp_path / "jobs" / f"{ended.id}.json").read_text())["callback_pending"], 10, "delivered")
