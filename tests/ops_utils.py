"""Helpers for the operations tests: keys made with the real CLI, Prometheus scrapes, log lines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.http_utils import jfk_file, post
from tests.server import ROOT


def add_key(keys_file: Path, name: str, *limits: str) -> str:
    """``audio-service keys add NAME``: the key printed once (its hash goes to the file)."""
    out = subprocess.run(
        [sys.executable, "-m", "audio_service", "keys", "add", name, "--keys-file", str(keys_file), *limits],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def scrape(srv: Any) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``/metrics`` (parsed with prometheus_client's parser), by name and labels; ``srv``
    is a running server or a client bound to the app (tests/fast/)."""
    if callable(getattr(srv, "request", None)):
        return samples_of(srv.get("/metrics").text)
    return scrape_url(f"{srv.base_url}/metrics")


def scrape_url(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of the metrics page at ``url``, by name and labels."""
    return samples_of(httpx.get(url, timeout=10).text)


def samples_of(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(condition, timeout_s: float = 60.0, what: str = "condition"):
    """Poll ``condition()`` until it is truthy (the server's state, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def json_lines(log: Path) -> list[dict]:
    """The JSON log lines a server wrote (other output ignored)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def assert_quota_sequence(first: Any, second: Any, key: str, other: str) -> None:
    """jfk (11 s) twice is served under a 20 s/min budget, the third is refused; another key is not.
    ``first`` and ``second`` are servers or clients bound to an app that share the key's budget."""

    def transcribe(target: Any, k: str) -> httpx.Response:
        return post(target, jfk_file(), data={"language": "en"}, headers={"Authorization": f"Bearer {k}"})

    r1 = transcribe(first, key)
    assert r1.status_code == 200
    assert r1.headers["x-ratelimit-limit-audio-seconds"] == "20"
    assert r1.headers["x-ratelimit-remaining-audio-seconds"] == "9"
    r2 = transcribe(second, key)
    assert r2.status_code == 200 and r2.headers["x-ratelimit-remaining-audio-seconds"] == "0"
    r3 = transcribe(first, key)
    assert r3.status_code == 429, r3.text
    assert r3.json()["error"]["code"] == "rate_limit_exceeded" and r3.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(r3.headers["retry-after"]) <= 60, r3.headers
    assert r3.headers["x-ratelimit-remaining-audio-seconds"] == "0"
    assert r3.headers["x-ratelimit-reset-audio-seconds"].endswith("s")
    for h in ("limit", "remaining", "reset"):
        assert f"x-ratelimit-{h}-requests" in r3.headers
    unaffected = transcribe(second, other)
    assert unaffected.status_code == 200 and int(unaffected.headers["x-ratelimit-remaining-audio-seconds"]) > 11000
