"""Transcription jobs in-process on the fake backend, stored on disk: submit and poll, cancel, list a page
at a time, the callback's SSRF check, its signature and retries, jobs found unfinished on disk run by the
next app, and ended records deleted after the retention. (In Redis: tests/test_jobs_redis.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from audio_service.keys import KeyIdentity
from audio_service.ops.job_store import DiskJobStore, JobRecord
from audio_service.pipeline.batch import BatchJob
from tests.fast.conftest import App, settings
from tests.fast.fake_backend import FakeBackend
from tests.http_utils import JOBS, Receiver, assert_error, jfk_file, post, signature
from tests.ops_utils import wait_for
from tests.server import free_port

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
    asyncio.run(DiskJobStore(tmp_path / "jobs", retention_s=3600).save(ended))
    make_app(**_job_settings(tmp_path))
    wait_for(lambda: len(receiver.calls) == 2, 30, "the callback and its retry")
    assert json.loads(receiver.calls[1][1])["result"] == {"text": "done"}
    wait_for(lambda: not json.loads((tmp_path / "jobs" / f"{ended.id}.json").read_text())["callback_pending"], 10, "delivered")


def _ended(job_id: str, finished_at: int, who: str = "anonymous") -> JobRecord:
    return JobRecord(
        id=job_id,
        created_at=finished_at - 10,
        job=BatchJob(),
        who=KeyIdentity(who),
        status="succeeded",
        finished_at=finished_at,
        result={"text": "done"},
    )


def test_a_keys_jobs_are_listed_newest_first_a_page_at_a_time(make_app, tmp_path) -> None:
    app = make_app(**_job_settings(tmp_path, auth={"api_keys": ["key-a", "key-b"]}))
    a, b = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}
    submitted = [post(app.client, jfk_file(), path=JOBS, headers=a).json() for _ in range(3)]
    newest_first = [j["id"] for j in sorted(submitted, key=lambda j: (j["created_at"], j["id"]), reverse=True)]

    first = app.client.get(JOBS, params={"limit": 2}, headers=a).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [j["id"] for j in first["data"]] == newest_first[:2]
    assert first["data"][0]["object"] == "audio.transcription.job"
    rest = app.client.get(JOBS, params={"limit": 2, "after": first["data"][-1]["id"]}, headers=a).json()
    assert [j["id"] for j in rest["data"]] == newest_first[2:] and rest["has_more"] is False
    everything = app.client.get(JOBS, headers=a).json()  # default limit 20
    assert [j["id"] for j in everything["data"]] == newest_first and everything["has_more"] is False

    assert app.client.get(JOBS, headers=b).json() == {"object": "list", "data": [], "has_more": False}
    assert_error(app.client.get(JOBS, params={"after": newest_first[0]}, headers=b), 404, "after", "job_not_found")
    assert_error(app.client.get(JOBS, params={"limit": 0}, headers=a), 400, "limit")
    assert_error(app.client.get(JOBS, params={"limit": 101}, headers=a), 400, "limit")
    assert_error(app.client.get(JOBS), 401)
    for job_id in newest_first:
        _until_ended(_Authed(app.client, a), job_id)


def test_ended_jobs_past_the_retention_are_deleted_at_start(make_app, tmp_path) -> None:
    now = int(time.time())
    store = DiskJobStore(tmp_path / "jobs", retention_s=3600)
    old, recent = _ended("job_" + "0" * 24, now - 7200), _ended("job_" + "1" * 24, now - 60)
    for record in (old, recent):
        asyncio.run(store.save(record))
    app = make_app(**_job_settings(tmp_path, jobs={**_job_settings(tmp_path)["jobs"], "retention_s": 3600}))
    assert [j["id"] for j in app.client.get(JOBS).json()["data"]] == [recent.id]
    assert_error(app.client.get(f"{JOBS}/{old.id}"), 404, "id", "job_not_found")
    assert not (tmp_path / "jobs" / f"{old.id}.json").exists()


def test_the_disk_sweep_deletes_ended_records_once_the_retention_passed(tmp_path) -> None:
    clock = [1000.0]
    store = DiskJobStore(tmp_path, retention_s=100, clock=lambda: clock[0])
    ended, unfinished = _ended("job_" + "2" * 24, 1000), JobRecord("job_" + "3" * 24, 0, BatchJob(), KeyIdentity("anonymous"))
    pending = dataclasses.replace(_ended("job_" + "4" * 24, 1000), callback_url="http://x/", callback_pending=True)

    async def sweep_at(t: float) -> int:
        clock[0] = t
        return await store.sweep()

    async def scenario() -> None:
        for record in (ended, unfinished, pending):
            await store.save(record)
        assert await sweep_at(1099) == 0
        assert await sweep_at(1101) == 1  # the ended job; not the unfinished one, nor the undelivered callback
        assert await store.get(ended.id) is None and await store.get(unfinished.id) is not None

    asyncio.run(scenario())
    assert sorted(p.name for p in tmp_path.glob("job_*.json")) == [f"{unfinished.id}.json", f"{pending.id}.json"]


def test_jobs_answer_503_while_their_redis_is_down(make_app, tmp_path) -> None:
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    app = make_app(**_job_settings(tmp_path, jobs={"storage": nothing_listens, "lease_s": 1.0}))
    assert_error(post(app.client, jfk_file(), path=JOBS), 503, code="storage_unavailable")
    assert_error(app.client.get(JOBS), 503, code="storage_unavailable")
    assert_error(app.client.get(f"{JOBS}/job_{'0' * 24}"), 503, code="storage_unavailable")
    assert app.client.get("/health").status_code == 200  # the rest of the service is up


def test_a_job_queued_again_is_queued_with_its_lease_free(tmp_path) -> None:
    # a worker waiting on the queue pops the id as soon as it is pushed: were the recovering process still
    # holding the lease then, the worker would find the job taken and drop it, at every recovery pass again
    from types import SimpleNamespace

    from audio_service.ops.jobs import JobRunner

    events: list[tuple[str, object]] = []

    class Store:  # the calls of a recovery pass over one job whose process died while running it
        held: set[str] = set()

        async def unsettled(self) -> list[SimpleNamespace]:
            return [SimpleNamespace(id="job_x", status="running", progress=0.5, started_at=1)]

        async def lease(self, job_id: str) -> bool:
            taken = job_id not in self.held
            self.held.add(job_id)
            return taken

        async def release(self, job_id: str) -> None:
            self.held.discard(job_id)

        async def is_queued(self, job_id: str) -> bool:
            return False

        async def save(self, record: SimpleNamespace) -> None:
            events.append(("save", record.status))

        async def enqueue(self, job_id: str) -> None:
            events.append(("enqueue, lease held", job_id in self.held))

    runner = JobRunner(settings(jobs={"dir": str(tmp_path)}), batch=None, on_done=None)  # type: ignore[arg-type]
    runner.store = Store()  # type: ignore[assignment]
    asyncio.run(runner._recover())
    assert events == [("save", "queued"), ("enqueue, lease held", False)]
