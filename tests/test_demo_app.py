"""The demo app (examples/demo_app/app.py): its HTTP interface, and an upload in a real browser.

The browser test drives a system chromium (Debian: `apt-get install chromium chromium-driver`) through its
chromedriver with selenium; it never downloads a browser, and is skipped, saying why, when either is missing.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from segret_hf.visualization import classes_by_area

from helpers import load_script, png_bytes, save_model_folder

APP = Path(__file__).resolve().parents[1] / "examples" / "demo_app" / "app.py"
ID2LABEL = {0: "sky", 1: "road", 2: "tree", 3: "car"}
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def app():
    return load_script(APP)


@pytest.fixture
def served(app, tmp_path):
    """The app serving a small random SegRet (several classes per image) on a free port: (segmenter, URL)."""
    segmenter = app.load_segmenter(save_model_folder(tmp_path / "model", ID2LABEL))
    server = app.make_server(segmenter, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield segmenter, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _photo() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)


def _expected_names(segmenter, image: np.ndarray) -> list[str]:
    """The legend the app must show: the classes the model finds, largest first."""
    segmentation = segmenter.predict([PIL.Image.fromarray(image)])[0]
    return [ID2LABEL[class_id] for class_id, _ in classes_by_area(segmentation)]


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/segment", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_segment_endpoint_answers_overlay_and_legend(served) -> None:
    segmenter, url = served
    image = _photo()
    status, answer = _post(url, png_bytes(image))
    assert status == 200
    assert (answer["width"], answer["height"]) == (80, 60)
    header, encoded = answer["overlay"].split(",", 1)
    assert header == "data:image/png;base64"
    assert PIL.Image.open(io.BytesIO(base64.b64decode(encoded))).size == (80, 60)
    names = [entry["name"] for entry in answer["legend"]]
    assert names == _expected_names(segmenter, image) and len(names) >= 2
    assert sum(entry["percent"] for entry in answer["legend"]) == pytest.approx(100, abs=0.5)
    assert all(entry["color"].startswith("#") and len(entry["color"]) == 7 for entry in answer["legend"])


def test_segment_endpoint_refuses_a_file_that_is_not_an_image(served) -> None:
    _, url = served
    status, answer = _post(url, b"not an image")
    assert status == 400
    assert "not an image" in answer["error"]


def test_page_is_served(served) -> None:
    _, url = served
    with urllib.request.urlopen(url, timeout=30) as response:
        page = response.read().decode()
    assert 'id="image"' in page and 'id="overlay"' in page and 'id="legend"' in page


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver not found (Debian: apt-get install chromium chromium-driver)",
)
def test_browser_upload_shows_overlay_and_legend(served, tmp_path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    segmenter, url = served
    image = _photo()
    upload = tmp_path / "street.png"
    upload.write_bytes(png_bytes(image))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            driver.get(url)
            driver.find_element(By.ID, "image").send_keys(str(upload))
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#legend li .name"))
            names = [element.text for element in driver.find_elements(By.CSS_SELECTOR, "#legend li .name")]
            overlay = driver.find_element(By.ID, "overlay")
            WebDriverWait(driver, 30).until(lambda d: d.execute_script("return arguments[0].complete", overlay))
            natural_size = "return [arguments[0].naturalWidth, arguments[0].naturalHeight];"
            shown_size = driver.execute_script(natural_size, overlay)
            displayed = overlay.is_displayed()
            status = driver.find_element(By.ID, "status").text
        finally:
            driver.quit()
    assert names == _expected_names(segmenter, image)
    assert displayed and shown_size == [80, 60]
    assert status.startswith("street.png: 80x60")
