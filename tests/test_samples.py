"""Every sample runs with its one command against a real server, and its output is checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import srt

from tests.audio_utils import JFK, JFK_TEXT, ROOT, espeak, wer

SAMPLES = ROOT / "samples"


def run(cmd: list[str], server, timeout: float = 180) -> str:
    env = {**os.environ, "AUDIO_SERVICE_URL": server.base_url}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def transcript_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("TRANSCRIPT: ")]
    assert len(lines) == 1, out
    return lines[0].removeprefix("TRANSCRIPT: ")


def test_every_sample_has_readme_and_is_tested():
    names = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
    assert names == ["batch_srt", "node_stream_file", "python_mic", "python_stream_file"]
    for name in names:
        readme = (SAMPLES / name / "README.md").read_text()
        assert "```bash" in readme, f"{name}: README shows no command"


def test_python_stream_file(server):
    # the sample's default is real time; 8x keeps the suite quick (pace is tested in the streaming tests)
    out = run(
        [sys.executable, str(SAMPLES / "python_stream_file" / "stream_file.py"), str(JFK), "--speed", "8", "--language", "en"],
        server,
    )
    assert "[final  ]" in out
    assert wer(JFK_TEXT, transcript_line(out)) <= 0.12


def test_python_mic_in_file_mode(server):
    out = run(
        [sys.executable, str(SAMPLES / "python_mic" / "mic.py"), "--file", str(JFK), "--speed", "8", "--language", "en"], server
    )
    assert any(line.startswith("> ") for line in out.splitlines())
    assert wer(JFK_TEXT, transcript_line(out)) <= 0.12


def test_node_stream_file(server):
    node = shutil.which("node")
    assert node, "node is required (installed by scripts/install.sh)"
    if not (ROOT / "clients" / "node" / "node_modules" / "ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT / "clients" / "node", check=True, timeout=300)
    out = run([node, str(SAMPLES / "node_stream_file" / "stream_file.js"), str(JFK), "--speed", "8"], server)
    assert "state after patch" in out and " final " in out
    assert wer(JFK_TEXT, transcript_line(out)) <= 0.12


def test_batch_srt(server, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    shutil.copy(JFK, folder / "jfk.flac")
    spoken = "The quick brown fox jumps over the lazy dog."
    espeak(spoken, folder / "fox.wav")
    (folder / "notes.txt").write_text("not audio")  # ignored
    out_dir = tmp_path / "subs"
    out = run([sys.executable, str(SAMPLES / "batch_srt" / "batch_srt.py"), str(folder), "--out", str(out_dir)], server)
    assert sorted(p.name for p in out_dir.iterdir()) == ["fox.srt", "jfk.srt"]
    assert out.count("wrote ") == 2
    jfk = list(srt.parse((out_dir / "jfk.srt").read_text()))
    fox = list(srt.parse((out_dir / "fox.srt").read_text()))
    assert wer(JFK_TEXT, " ".join(s.content for s in jfk)) <= 0.1
    assert wer(spoken, " ".join(s.content for s in fox)) <= 0.25
    assert all(s.start < s.end for s in jfk + fox)


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch):
    monkeypatch.delenv("AUDIO_SERVICE_API_KEY", raising=False)
