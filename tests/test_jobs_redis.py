"""Jobs shared through Redis (a real ``redis-server``) by two replicas: two apps in-process on the fake
backend share the queue, the listing and cancels; of two real servers, a job taken by one that is then
killed is queued again once its lease expires and finished by the other, which sends the signed
callback (no disk is shared: each server's jobs.dir stays empty). And the store's pieces: a lapsed lease
taken back unless another replica took it, the audio in chunks."""

from __future__ import annotations

import asyncio
import io
import json
import os

import httpx
import redis

from audio_service.ops.redis_jobs import CHUNK, PREFIX, RedisJobStore
from tests.audio_utils import JFK_TEXT, wer
from tests.fast.conftest import App, settings
from tests.fast.fake_backend import FakeBackend
from tests.http_utils import JOBS, Receiver, assert_error, jfk_file, post, signature
from tests.ops_utils import wait_for
from tests.redis_server import RedisServer
from tests.server import ServerProcess

SECRET = "e2e-redis-callback-secret"
LEASE_S = 2.0  # a dead server's job is queued again within about two leases


def _job(server: ServerProcess, job_id: str) -> dict:
    return httpx.get(f"{server.base_url}{JOBS}/{job_id}", timeout=10).json()


def test_replicas_share_the_queue_the_list_and_cancels() -> None:
    fake = FakeBackend()  # one gate holds both apps' model calls
    fake.batch_gate.close()
    key_a, key_b = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}
    with RedisServer() as redis_server:
        values = {"jobs": {"storage": redis_server.url, "lease_s": 1.0}, "auth": {"api_keys": ["key-a", "key-b"]}}
        a, b = App(fake, settings(**values)), App(fake, settings(**values))
        with a, b:
            submitted = [post(a.client, jfk_file(), path=JOBS, headers=key_a).json() for _ in range(3)]
            ids = [j["id"] for j in sorted(submitted, key=lambda j: (j["created_at"], j["id"]), reverse=True)]
            fake.batch_gate.wait_for_waiting(2)  # each replica runs one job; the third waits in the queue
            seen = {i: b.client.get(f"{JOBS}/{i}", headers=key_a).json()["status"] for i in ids}
            assert sorted(seen.values()) == ["queued", "running", "running"], seen

            first = b.client.get(JOBS, params={"limit": 2}, headers=key_a).json()
            rest = b.client.get(JOBS, params={"limit": 2, "after": first["data"][-1]["id"]}, headers=key_a).json()
            assert [j["id"] for j in first["data"] + rest["data"]] == ids  # newest first, from either replica
            assert (first["has_more"], rest["has_more"]) == (True, False)
            assert a.client.get(JOBS, headers=key_b).json()["data"] == []
            assert_error(b.client.get(f"{JOBS}/{ids[0]}", headers=key_b), 404, "id", "job_not_found")

            cancelled = {i: b.client.delete(f"{JOBS}/{i}", headers=key_a).json()["status"] for i in ids}
            queued = next(i for i in ids if seen[i] == "queued")
            assert cancelled[queued] == "cancelled"  # at once; the running ones at their next check
            fake.batch_gate.open()
            wait_for(
                lambda: all(a.client.get(f"{JOBS}/{i}", headers=key_a).json()["status"] == "cancelled" for i in ids),
                20,
                "every job cancelled",
            )


def test_a_job_taken_by_a_killed_server_is_finished_by_the_other(tmp_path) -> None:
    receiver = Receiver()
    with RedisServer() as redis_server:
        store = redis.Redis.from_url(redis_server.url)

        def settings(name: str) -> dict[str, dict[str, object]]:
            # no model preloaded: each server is ready at once and loads whisper-base when it runs the job
            # (the first server is killed then: it cannot have finished)
            return {
                "models": {"preload": []},
                # jobs.storage left empty: the jobs follow the deployment's shared quotas.storage
                "quotas": {"storage": redis_server.url},
                "jobs": {"dir": str(tmp_path / name), "callback_secret": SECRET, "lease_s": LEASE_S},
                "server": {"url_fetch_allowlist": ["127.0.0.1"]},
            }

        second = ServerProcess(log_path=tmp_path / "second.log", **settings("second"))
        try:
            with ServerProcess(log_path=tmp_path / "first.log", **settings("first")) as first:
                r = post(first, jfk_file(), {"language": "en", "callback_url": receiver.url}, path=JOBS)
                assert r.status_code == 202, r.text
                job_id = r.json()["id"]
                wait_for(lambda: _job(first, job_id)["status"] == "running", 20, "the first server to take the job")
                assert first.proc is not None
                first.proc.kill()  # a crash in the middle of the job, its lease held
                first.proc.wait()
            stored = json.loads(store.get(f"{PREFIX}job:{job_id}") or b"{}")
            assert stored["status"] == "running", stored
            assert store.exists(f"{PREFIX}lease:{job_id}")

            second.start()
            job = wait_for(
                lambda: (j := _job(second, job_id))["status"] in ("succeeded", "failed", "cancelled") and j,
                120,  # a deadline for a busy machine: loading the model and decoding 11 s of audio
                "the job to end on the second server",
            )
            assert job["status"] == "succeeded", job
            assert wer(JFK_TEXT, job["result"]["text"]) <= 0.1, job["result"]["text"]
            wait_for(lambda: receiver.calls, 20, "the callback")
            listed = httpx.get(second.base_url + JOBS, timeout=10).json()
            assert [j["id"] for j in listed["data"]] == [job_id]
        finally:
            second.stop()
            receiver.close()
        headers, body, _ = receiver.calls[0]
        assert headers["x-audio-service-signature"] == signature(SECRET, headers, body)
        assert json.loads(body)["result"] == job["result"]
        assert not store.keys(f"{PREFIX}audio:*")  # the upload's chunks are deleted when the job ends
        assert 0 < store.ttl(f"{PREFIX}job:{job_id}") <= 7 * 86400  # kept for jobs.retention_s
        assert not list(tmp_path.glob("*/job_*"))  # nothing on either server's disk


def test_a_lapsed_lease_is_taken_back_unless_another_replica_took_it() -> None:
    with RedisServer() as redis_server:
        lease_key = f"{PREFIX}lease:job_x"
        direct = redis.Redis.from_url(redis_server.url)

        async def scenario() -> None:
            a = RedisJobStore(redis_server.url, lease_s=30, retention_s=60)
            b = RedisJobStore(redis_server.url, lease_s=30, retention_s=60)
            assert await a.lease("job_x") and not await b.lease("job_x")
            direct.delete(lease_key)  # lapsed (its heartbeat came late) and no one took it
            assert await a.renew("job_x") and not await b.lease("job_x")
            direct.delete(lease_key)
            assert await b.lease("job_x")  # lapsed, and taken by another replica
            assert not await a.renew("job_x")
            await a.release("job_x")  # not a's to give back: b still holds it
            assert not await a.lease("job_x") and await b.renew("job_x")
            await a.close()
            await b.close()

        asyncio.run(scenario())


def test_audio_is_stored_in_chunks_read_back_whole_and_deleted() -> None:
    audio = os.urandom(CHUNK * 2 + 12345)  # three chunks, the last one short
    with RedisServer() as redis_server:
        direct = redis.Redis.from_url(redis_server.url)

        async def scenario() -> None:
            store = RedisJobStore(redis_server.url, lease_s=30, retention_s=60)
            await store.save_audio("job_y", io.BytesIO(audio))
            assert sorted(direct.keys(f"{PREFIX}audio:job_y:*")) == [f"{PREFIX}audio:job_y:{n}".encode() for n in range(3)]
            async with store.audio_file("job_y") as path:
                assert path.read_bytes() == audio
            assert not path.exists()  # the local copy lasts as long as the run
            await store.drop_audio("job_y")
            assert not direct.keys(f"{PREFIX}audio:*")
            await store.close()

        asyncio.run(scenario())
