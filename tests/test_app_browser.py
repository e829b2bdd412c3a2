"""tools/app.py end to end in headless Chromium: upload, draw a box, read the caption; a text
file renamed .jpg gives a message in the page and the next upload still works."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
COCO = SHARED_DATA / "coco_39769" / "000000039769.png"
DOG = SHARED_DATA / "sam_demo_images" / "dog.jpg"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="no chromium + chromedriver (tools/setup_env.sh installs Debian's where apt works)",
    ),
    pytest.mark.skipif(not (COCO.is_file() and DOG.is_file()), reason=f"{SHARED_DATA} is absent"),
]
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tiny_sam_yaml, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "app.py"), "--config-file", str(tiny_sam_yaml)]
            + ["--port", str(port), "--max-pixels", "2000000"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the app did not start:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver, elem_id: str) -> str:
    return driver.find_element(By.ID, elem_id).text


def _upload(driver, wait, path: Path) -> None:
    before = _text(driver, "status")
    driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path.resolve()))
    wait.until(
        lambda d: _text(d, "status") not in ("", before) and "processing" not in _text(d, "status")
    )


def _caption_rows(driver) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#results table tbody tr")
    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def _click_image(driver, dx: int, dy: int) -> None:
    """Click the shown image at (dx, dy) pixels from its center."""
    image = driver.find_element(By.CSS_SELECTOR, "#canvas img")
    ActionChains(driver).move_to_element_with_offset(image, dx, dy).click().perform()


def test_upload_box_caption_bad_file_and_next_upload(app_url, browser, tmp_path):
    wait = WebDriverWait(browser, 120)
    browser.get(app_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))

    _upload(browser, wait, COCO)
    assert "Loaded 000000039769.png (640x480)" in _text(browser, "status")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#canvas img"))
    browser.find_element(By.XPATH, "//*[@id='mode']//label[contains(., 'box')]").click()
    _click_image(browser, -100, -60)
    wait.until(lambda d: "opposite corner" in _text(d, "status"))
    _click_image(browser, 60, 80)
    wait.until(lambda d: _caption_rows(d))
    (row,) = _caption_rows(browser)
    index, caption, iou, caption_score, box = row
    assert index == "0" and caption.strip()
    float(iou), float(caption_score)
    x1, y1, x2, y2 = (float(v) for v in box.split(","))
    # the image is shown at its own size (640x480), centered: the box is the two clicks
    assert (x2 - x1, y2 - y1) == pytest.approx((160, 140), abs=3)
    assert "1 box and 0 point prompts" in _text(browser, "status")

    # drag a second box: 120 x 90 pixels, from 200 px left and 150 px above the center
    image = browser.find_element(By.CSS_SELECTOR, "#canvas img")
    ActionChains(browser).move_to_element_with_offset(
        image, -200, -150
    ).click_and_hold().move_by_offset(60, 45).move_by_offset(60, 45).release().perform()
    wait.until(lambda d: len(_caption_rows(d)) == 2)
    box = [float(v) for v in _caption_rows(browser)[1][4].split(",")]
    assert (box[0], box[1], box[2] - box[0], box[3] - box[1]) == pytest.approx(
        (120, 90, 120, 90), abs=3
    )
    # the click that ends the drag is no box corner
    assert "2 box and 0 point prompts" in _text(browser, "status")

    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a text file, not a photo\n")
    _upload(browser, wait, fake)
    status = _text(browser, "status")
    assert "Error" in status and "holiday.jpg" in status and "not an image" in status

    _upload(browser, wait, DOG)
    assert "Loaded dog.jpg (800x534)" in _text(browser, "status")
    browser.find_element(By.XPATH, "//*[@id='mode']//label[contains(., 'point')]").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#canvas img"))
    _click_image(browser, 0, 0)
    wait.until(lambda d: "0 box and 1 point prompts" in _text(d, "status"))
    (row,) = _caption_rows(browser)
    assert row[1].strip()
