"""`lmforge webui` checked in a real browser: Debian's headless chromium (installed here with
apt-get when missing and we are root; skipped with the reason otherwise) loads the page from
127.0.0.1, sends a chat message and sees the model's reply appear; on the Train tab a bad value
gets the same error text as `lmforge validate`. No browser is downloaded."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1400"]
N = 16


def _install_chromium() -> None:
    if CHROMIUM.exists() and DRIVER.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium/chromedriver are not installed and apt-get cannot be run as root "
                    "here to install them (apt-get install chromium chromium-driver)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.skip(f"could not install Debian's chromium: {proc.stderr.strip()[-300:]}")


@pytest.fixture(scope="module")
def webui(tmp_path_factory):
    _install_chromium()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("webui") / "webui.log"
    log = log_path.open("w")
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "-m", "lmforge", "webui", "builtin:tiny-llama",
                             "--port", str(port), "--max-new-tokens", str(N)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "lmforge webui did not come up"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(webui):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="lmforge-chromium-")
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        driver.get(webui)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _norm(text: str) -> str:
    return " ".join(text.split())


def _wait(driver, condition, timeout=90):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _open_train_tab(driver) -> None:
    from selenium.webdriver.common.by import By

    def tab(d):
        return next((t for t in d.find_elements(By.CSS_SELECTOR, "button[role='tab']")
                     if t.text.strip() == "Train"), None)

    _wait(driver, tab).click()


def test_chat_reply_appears_in_the_browser(browser, tiny_model_dir):
    import torch
    from selenium.webdriver.common.by import By

    from lmforge.infer.engine import ChatEngine

    torch.set_num_threads(1)
    engine = ChatEngine.load(str(tiny_model_dir))
    want = engine.generate([[{"role": "user", "content": "hello"}]], max_new_tokens=N)[0].text
    box = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#chat-input textarea"))
    box.send_keys("hello")
    browser.find_element(By.CSS_SELECTOR, "#chat-send").click()
    shown = []

    def replied(d):
        bots = d.find_elements(By.CSS_SELECTOR, "#chatbot .message.bot")
        shown[:] = [b.text for b in bots]
        return bots and _norm(bots[-1].text) == _norm(want)

    try:
        _wait(browser, replied)
    except Exception:
        pytest.fail(f"the reply {want!r} did not appear; the page shows {shown!r}")
    users = browser.find_elements(By.CSS_SELECTOR, "#chatbot .message.user")
    assert [_norm(u.text) for u in users] == ["hello"]


def test_train_tab_shows_the_validators_error_text(browser):
    from selenium.webdriver.common.by import By

    from lmforge.webui import form

    _open_train_tab(browser)
    field = _wait(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "#f-train-learning_rate textarea, #f-train-learning_rate input"))
    field.clear()
    field.send_keys("abc")
    browser.find_element(By.CSS_SELECTOR, "#train-validate").click()
    defaults = {s.path: s.default for s in form.fields()}
    want = form.check(form.build_tree(defaults | {"model.path": "builtin:tiny-llama",
                                                  "train.learning_rate": "abc"}))[1]
    out = "#train-check textarea"
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, out).get_property("value"))
    assert browser.find_element(By.CSS_SELECTOR, out).get_property("value") == want
    assert "train.learning_rate" in want


@pytest.mark.slow
def test_train_tab_trains_and_draws_the_loss_curve_live(browser, tmp_path):
    from selenium.webdriver.common.by import By

    _open_train_tab(browser)
    fields = {"train.learning_rate": "5e-3", "train.max_steps": "6", "train.logging_steps": "1",
              "train.batch_size": "8", "train.num_threads": "1", "train.report_to": "[none]",
              "train.output_dir": str(tmp_path / "run"),
              "data.train": str(REPO / "examples/data/toy_train.jsonl")}
    for key, value in fields.items():
        css = f"#f-{key.replace('.', '-')}"
        field = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR,
                                                        f"{css} textarea, {css} input"))
        field.clear()
        field.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#config-file textarea").clear()
    browser.find_element(By.CSS_SELECTOR, "#config-file textarea").send_keys(
        str(tmp_path / "ui.yaml"))
    browser.find_element(By.CSS_SELECTOR, "#train-start").click()
    status = _wait(browser, lambda d: "finished" in d.find_element(
        By.CSS_SELECTOR, "#train-status").text and d.find_element(
        By.CSS_SELECTOR, "#train-status").text, timeout=300)
    assert status.startswith("finished after step 6")
    assert (tmp_path / "run" / "metrics.json").is_file()  # the run finished and saved
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#train-plot svg path"))
