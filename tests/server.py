"""Start the real server (uvicorn on a loopback port) in a subprocess for tests and benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ok(proc: subprocess.Popen, url: str, timeout: float, interval: float = 0.2) -> None:
    """Until ``GET url`` answers 200. RuntimeError when ``proc`` exits first, TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=min(interval * 5, 2.0)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer 200 in {timeout:.0f} s")


class ServerProcess:
    """``audio-service serve`` with the given settings, by group (``streaming={"max_batch": 4}``, passed as
    ``AUDIO_SERVICE_STREAMING__MAX_BATCH``); use as a context manager."""

    def __init__(
        self, log_path: Path | None = None, extra_env: dict[str, str] | None = None, **settings: dict[str, object]
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.settings = settings
        self.extra_env = extra_env or {}  # e.g. PYTHONPATH additions for a test's sitecustomize
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> ServerProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it (``wait_ready`` waits); several servers then load their
        models at once."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_SERVICE_")}
        paths = [self.extra_env.get("PYTHONPATH", ""), str(ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env.update({k: v for k, v in self.extra_env.items() if k != "PYTHONPATH"})
        for group, fields in self.settings.items():
            for name, value in fields.items():
                env[f"AUDIO_SERVICE_{group.upper()}__{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "audio_service", "serve", "--server.host", "127.0.0.1", "--server.port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> ServerProcess:
        """Until ``/ready`` answers 200 (the process stopped and an error raised if it does not in time)."""
        assert self.proc is not None, "launch() first"
        try:
            wait_until_ok(self.proc, f"{self.base_url}/ready", timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"server {exc}; see {self.log_path}") from None
        except TimeoutError:
            self.stop()
            raise TimeoutError("server did not become ready") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
