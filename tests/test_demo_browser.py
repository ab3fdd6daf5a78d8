"""The browser demo end to end: headless Chromium, a fake microphone fed from a wav file, the real server."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.audio_utils import JFK

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory) -> Path:
    """jfk.flac as 16 kHz mono wav with 2 s of trailing silence (the fake device loops it)."""
    out = tmp_path_factory.mktemp("mic") / "jfk_mic.wav"
    subprocess.run(["sox", str(JFK), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0", "2"], check=True)
    return out


@pytest.fixture(scope="module")
def browser(mic_wav):
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={mic_wav}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def test_demo_live_microphone_and_upload(server, browser):
    browser.get(f"{server.base_url}/demo")
    assert browser.current_url.endswith("/demo/") and "audio-service" in browser.title

    # note whether partial (still changing) text is ever shown, styled apart from final text
    browser.execute_script("""
        window.partialSeen = false;
        new MutationObserver(() => {
            const p = document.querySelector('#transcript .partial');
            if (p && getComputedStyle(p).fontStyle === 'italic') window.partialSeen = true;
        }).observe(document.getElementById('transcript'), {childList: true, subtree: true});
    """)
    browser.find_element(By.ID, "start").click()
    # the fake microphone plays jfk.flac; its words must appear as final text in the live transcript
    # read the text in one script call: the page re-renders its spans on every patch, so element handles go stale
    final_text = "return [...document.querySelectorAll('#transcript .final')].map(e => e.textContent).join(' ')"
    WebDriverWait(browser, 90, poll_frequency=0.5).until(lambda d: "americans" in d.execute_script(final_text).lower())
    browser.find_element(By.ID, "stop").click()
    WebDriverWait(browser, 60).until(lambda d: _text(d, "status").startswith("done"))
    live = _text(browser, "transcript").lower()
    assert "fellow americans" in live and "your country" in live
    assert browser.execute_script("return window.partialSeen")
    assert not browser.find_elements(By.CSS_SELECTOR, "#transcript .partial")  # all final after the flush

    browser.find_element(By.ID, "file").send_keys(str(JFK))
    browser.find_element(By.ID, "upload").click()
    WebDriverWait(browser, 60).until(lambda d: "country" in _text(d, "batch-result").lower())
    assert "ask not what your country can do for you" in _text(browser, "batch-result").lower()
