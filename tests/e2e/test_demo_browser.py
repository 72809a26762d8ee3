"""The demo page in a real browser: headless Chromium (Debian's package, driven by Selenium through
Debian's chromedriver, never a downloaded browser) against `python -m service` on the tiny fixtures.
Types a dialogue, filters by a pack, and checks that the stickers, their scores and the dialogue's
emotion and intention render. Skips when chromium, chromedriver or selenium is missing.

STICKERS_DEMO_SCREENSHOT=docs/demo.png saves the page after the recommendation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_service import live_service

from eigml.labels import EMOTIONS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,900"]

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, tiny_catalog: Path,
           cache_dir: Path) -> Iterator[str]:
    with live_service(tmp_path_factory.mktemp("demo-index"), tiny_checkpoint, tiny_catalog, cache_dir) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_demo_page_recommends_stickers_in_a_browser(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(f"{server}/demo")
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '#packs input[value="noto"]')))

    box = browser.find_element(By.ID, "dialogue")
    box.clear()
    box.send_keys("A: hey, how was your day?\nB: my dog died, I am heartbroken\nA: oh no, I am so sorry\n"
                  "B: I cannot stop crying")
    top_k = browser.find_element(By.ID, "top_k")
    top_k.clear()
    top_k.send_keys("5")
    browser.find_element(By.CSS_SELECTOR, '#packs input[value="noto"]').click()
    browser.find_element(By.ID, "recommend").click()

    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#stickers figure.sticker")) == 5)
    cards = browser.find_elements(By.CSS_SELECTOR, "#stickers figure.sticker")
    assert {card.get_attribute("data-pack") for card in cards} == {"noto"}  # the pack filter reached the API
    scores = [float(card.find_element(By.CSS_SELECTOR, ".score").text.removeprefix("score ")) for card in cards]
    assert scores == sorted(scores, reverse=True)
    # every sticker image was fetched from the service and decoded by the browser
    wait.until(lambda b: all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                              card.find_element(By.TAG_NAME, "img")) for card in cards))
    emotion = browser.find_element(By.CSS_SELECTOR, '.prediction[data-kind="emotion"] b').text.lower()  # shown capitalised by CSS
    assert emotion in EMOTIONS
    assert browser.find_element(By.CSS_SELECTOR, '.prediction[data-kind="intention"] b').text
    assert browser.find_element(By.ID, "error").text == ""
    assert "index" in browser.find_element(By.ID, "versions").text
    if screenshot := os.environ.get("STICKERS_DEMO_SCREENSHOT"):
        browser.save_screenshot(screenshot)
