"""The browser demo end to end: headless Chromium, a fake microphone fed from a wav file, the real server.

Screenshots of both views go to ``tmp/artifacts/`` (``AUDIO_SERVICE_ARTIFACTS`` overrides). The pictures
of docs/clients.md (docs/demo-live.png, docs/demo-file.png) are clipped from them when
``UPDATE_DOCS_SCREENSHOTS=1`` is set: a test run leaves the tracked files alone otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.audio_utils import JFK, ROOT, TWO_SPEAKERS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("AUDIO_SERVICE_ARTIFACTS", ROOT / "tmp" / "artifacts"))
UPDATE_DOCS = os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1"
WAIT_S = 120  # generous: the machine may be loaded; every wait ends as soon as its condition holds

FINAL_TEXT = "return [...document.querySelectorAll('#transcript .final')].map(e => e.textContent).join(' ')"
HEARD_TEXT = "return [...document.querySelectorAll('#transcript .final, #transcript .partial')].map(e => e.textContent).join(' ')"
# the colours of the speaker chips on final rows, by speaker id
SPEAKER_COLOURS = """
    const out = {};
    for (const c of document.querySelectorAll('#transcript .is-final .speaker'))
        out[c.dataset.speaker] = getComputedStyle(c).backgroundColor;
    return out;"""


def _mic_wav(src: Path, out: Path, start_s: float = 0.0) -> Path:
    """``src`` from ``start_s`` on as 16 kHz mono wav with 2 s of trailing silence (the fake device loops it)."""
    trim = ["trim", str(start_s)] if start_s else []
    subprocess.run(["sox", str(src), "-r", "16000", "-c", "1", "-b", "16", str(out), *trim, "pad", "0", "2"], check=True)
    return out


def _chromium(mic: Path, downloads: Path):
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1100,1000",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver, profile


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    """Chromium whose microphone plays jfk.flac."""
    driver, profile = _chromium(_mic_wav(JFK, tmp_path_factory.mktemp("mic") / "jfk_mic.wav"), downloads)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, server) -> None:
    driver.get(f"{server.base_url}/demo")
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _screenshot(driver, name: str, docs_of: tuple[str, ...] = ()) -> None:
    """The whole page to ARTIFACTS/name; with ``docs_of`` (element ids) and UPDATE_DOCS, also docs/name
    clipped to those elements."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    _capture(driver, ARTIFACTS / name, {"x": 0, "y": 0, "width": size["width"], "height": size["height"]})
    if docs_of and UPDATE_DOCS:
        rects = driver.execute_script(
            "return arguments[0].map(id => { const r = document.getElementById(id).getBoundingClientRect();"
            " return [r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY]; })",
            list(docs_of),
        )
        x0, y0 = min(r[0] for r in rects) - 16, min(r[1] for r in rects) - 16
        x1, y1 = max(r[2] for r in rects) + 16, max(r[3] for r in rects) + 16
        _capture(
            driver, ROOT / "docs" / name, {"x": max(0, x0), "y": max(0, y0), "width": x1 - max(0, x0), "height": y1 - max(0, y0)}
        )


def _capture(driver, path: Path, clip: dict) -> None:
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def _wait(driver, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)


def test_live_view_jfk_meter_partial_final_lag(server, browser):
    _open(browser, server)
    assert browser.current_url.endswith("/demo/") and "audio-service" in browser.title
    # record what the page shows over time: meter values, and whether italic partial text came before final text
    browser.execute_script("""
        window.seen = {levels: new Set(), partialFirst: false, final: false};
        new MutationObserver(() => {
            window.seen.levels.add(document.getElementById('level').getAttribute('aria-valuenow'));
            const p = document.querySelector('#transcript .partial');
            if (p && getComputedStyle(p).fontStyle === 'italic' && !window.seen.final) window.seen.partialFirst = true;
            if (document.querySelector('#transcript .final')) window.seen.final = true;
        }).observe(document.getElementById('live'), {attributes: true, childList: true, subtree: true});
    """)
    browser.find_element(By.ID, "start").click()
    _wait(browser, lambda d: "americans" in d.execute_script(FINAL_TEXT).lower())
    _wait(browser, lambda d: d.find_element(By.ID, "lag").text.endswith(" s"))
    lag = float(browser.find_element(By.ID, "lag").text.split()[0])
    assert 0.0 <= lag < 60.0
    levels = {int(v) for v in browser.execute_script("return [...window.seen.levels]") if v is not None}
    assert len(levels) >= 5 and max(levels) >= 40, levels  # the bar moved with the speech, up to a speech-like level
    assert browser.execute_script("return window.seen.partialFirst")
    # each final row shows its time range
    first = browser.find_element(By.CSS_SELECTOR, "#transcript .is-final .time").text
    assert "–" in first and ":" in first
    _screenshot(browser, "demo-live-jfk.png")

    # stop only once the server has heard the second phrase (as partial or final text): the fake microphone plays in
    # real time, so stopping at the first final can come before "country" was spoken; the flush must then make it final
    _wait(browser, lambda d: "your country" in " ".join(d.execute_script(HEARD_TEXT).lower().split()))
    browser.find_element(By.ID, "stop").click()
    _wait(browser, lambda d: d.find_element(By.ID, "status").text.startswith("done"))
    live = " ".join(browser.execute_script(FINAL_TEXT).lower().split())
    assert "fellow americans" in live and "your country" in live
    assert not browser.find_elements(By.CSS_SELECTOR, "#transcript .partial")  # all final after the flush
    assert browser.find_element(By.ID, "live-error").get_attribute("hidden")


def test_live_view_shows_the_servers_error_message(server, browser):
    _open(browser, server)
    # a language the server refuses: it answers with an error message and closes the socket (1008)
    browser.execute_script("const s = document.getElementById('language'); s.add(new Option('bogus', 'xx')); s.value = 'xx';")
    browser.find_element(By.ID, "start").click()
    box = browser.find_element(By.ID, "live-error")
    _wait(browser, lambda d: box.is_displayed() and "1008" in box.text)
    assert "unsupported language 'xx'" in box.text.lower() or "'xx'" in box.text, box.text
    assert browser.find_element(By.ID, "start").is_enabled()


def test_file_view_two_speakers_timeline_playback_srt(server, browser, downloads, tmp_path):
    _open(browser, server)
    browser.find_element(By.ID, "diarize").click()
    browser.find_element(By.ID, "file").send_keys(str(TWO_SPEAKERS))
    browser.find_element(By.ID, "upload").click()
    WebDriverWait(browser, 2 * WAIT_S, poll_frequency=0.5).until(
        lambda d: d.find_element(By.ID, "file-result").is_displayed() or d.find_element(By.ID, "file-error").is_displayed()
    )
    assert not browser.find_element(By.ID, "file-error").is_displayed(), browser.find_element(By.ID, "file-error").text
    lanes = browser.find_elements(By.CSS_SELECTOR, "#timeline .lane")
    bars = browser.find_elements(By.CSS_SELECTOR, "#timeline .bar")
    speakers = {b.get_attribute("data-speaker") for b in bars}
    colours = {b.value_of_css_property("background-color") for b in bars}
    assert len(lanes) == len(speakers) >= 2 and len(colours) == len(speakers), (speakers, colours)
    assert all(b.size["width"] >= 3 for b in bars)  # drawn, not zero-width
    assert browser.find_elements(By.CSS_SELECTOR, "#batch-result .seg .speaker")

    # activating a bar plays that part of the file in the page
    bar = bars[len(bars) // 2]
    start, end = float(bar.get_attribute("data-start")), float(bar.get_attribute("data-end"))
    bar.click()
    _wait(
        browser, lambda d: d.execute_script("const p = document.getElementById('player'); return !p.paused && p.currentTime > 0")
    )
    at = browser.execute_script("return document.getElementById('player').currentTime")
    assert start - 0.1 <= at <= end + 1.0, (start, end, at)
    _screenshot(browser, "demo-file.png", docs_of=("batch",))

    # the SRT download is the endpoint's SRT for the same file and settings
    browser.find_element(By.CSS_SELECTOR, ".downloads button[data-format='srt']").click()
    srt_path = downloads / "two_speakers.srt"
    _wait(browser, lambda d: srt_path.exists() and srt_path.stat().st_size > 0)
    with TWO_SPEAKERS.open("rb") as f:
        direct = httpx.post(
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": f},
            data={"response_format": "srt", "language": "en"},
            timeout=300,
        )
    assert direct.status_code == 200
    assert srt_path.read_text() == direct.text and "-->" in direct.text

    # the page shows stream=true progress events where the server's event stream ends with segments
    # (what a timeline needs), and otherwise transcribes once without them: never twice
    silence = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", "0.1"], check=True)
    with silence.open("rb") as f:
        probe = httpx.post(
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": f},
            data={"stream": "true", "response_format": "verbose_json"},
            timeout=120,
        )
    events = [json.loads(line[5:]) for line in probe.text.splitlines() if line.startswith("data:")]
    done = [e for e in events if e.get("type") == "transcript.text.done"]
    sse_with_segments = probe.headers.get("content-type", "").startswith("text/event-stream") and "segments" in done[-1]
    assert browser.find_element(By.ID, "progress-label").get_attribute("data-sse") == ("true" if sse_with_segments else None)

    browser.set_window_size(390, 844)  # a phone: the same view must stay usable (artifact for a look)
    _screenshot(browser, "demo-file-phone.png")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_live_view_diarize_two_speakers_colours(server, tmp_path_factory, downloads):
    # from 6 s on: the recording's first 6.7 s are silent (the page would wait for them in real time)
    mic = _mic_wav(TWO_SPEAKERS, tmp_path_factory.mktemp("mic2") / "two_mic.wav", start_s=6.0)
    driver, profile = _chromium(mic, downloads)
    try:
        _open(driver, server)
        driver.find_element(By.ID, "diarize").click()
        driver.find_element(By.ID, "start").click()
        colours = _wait(driver, lambda d: (c := d.execute_script(SPEAKER_COLOURS)) and len(c) >= 2 and c)
        assert len(set(colours.values())) == len(colours), colours  # a distinct colour per speaker
        _screenshot(driver, "demo-live.png", docs_of=("settings", "live"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_realtime_page_jfk(server, browser):
    """The OpenAI Realtime page: server VAD items filled by their deltas, completed, then stopped with a commit."""
    browser.get(f"{server.base_url}/demo/realtime.html")
    _wait(browser, lambda d: d.execute_script("return document.readyState") == "complete")
    browser.find_element(By.ID, "start").click()
    _wait(browser, lambda d: "your country" in " ".join(d.execute_script(FINAL_TEXT).lower().split()))
    browser.find_element(By.ID, "stop").click()
    _wait(browser, lambda d: d.find_element(By.ID, "status").text.startswith(("done", "closed")))
    text = " ".join(browser.execute_script(FINAL_TEXT).lower().split())
    assert "fellow america" in text and "your country" in text  # "America asked" at times, through the browser's 24 kHz path
    events = browser.execute_script("return [...document.querySelectorAll('#events li')].map(e => e.textContent)")
    assert any(e.startswith("input_audio_buffer.speech_started item_") for e in events)
    assert browser.find_element(By.ID, "live-error").get_attribute("hidden"), browser.find_element(By.ID, "live-error").text
    _screenshot(browser, "demo-realtime-jfk.png")
