"""The explorer as a person uses it: `explore.py` serving a run, driven in headless Chromium.

Needs Debian's `chromium` and `chromium-driver` (CI installs them in `.ci/run`) and Selenium
(the `[test]` extra).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
START_TIMEOUT = 90
WAIT = 20


pytestmark = pytest.mark.slow

METRICS = {
    "level_1_share_thickness": 0.6, "level_1_share_ink": 0.5, "level_1_share_identity": 0.05,
    "level_2_share_slant": 0.7, "level_2_share_width": 0.2, "level_2_class_change_rate": 0.1,
    "level_3_share_identity": 0.9, "level_3_class_change_rate": 0.65,
}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(explorer_run, tmp_path_factory):
    """`explore.py RUN_DIR` in a subprocess, with metrics.json level shares; yields its URL and
    the path of its output (read, not piped: a pipe nobody drains would block the server)."""
    metrics_dir = explorer_run / "eval"
    metrics_dir.mkdir(exist_ok=True)
    (metrics_dir / "metrics.json").write_text(json.dumps(METRICS))
    port = free_port()
    log = tmp_path_factory.mktemp("explore") / "explore.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "explore.py", str(explorer_run), "--port", str(port), "--seed", "5"],
            cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT, text=True,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT
    while f"at {url} (Ctrl-C to stop)" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("explore.py did not start:\n" + log.read_text())
        time.sleep(0.2)
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            time.sleep(0.2)
    server = types.SimpleNamespace(url=url, log=log)
    yield server
    process.terminate()
    process.wait(10)
    shutil.rmtree(metrics_dir)
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("the explorer's browser test needs Debian's chromium and chromium-driver: "
                    "apt-get install -y chromium chromium-driver (.ci/run installs them)")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads),
                  "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    yield driver
    driver.quit()


def code(driver):
    """The page's code as it shows it in the JSON box: one list per level."""
    return json.loads(driver.find_element(By.ID, "code-json").get_attribute("value"))["levels"]


def src(driver, element_id):
    return driver.find_element(By.ID, element_id).get_attribute("src") or ""


def wait_for(driver, condition, what):
    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(
        lambda _: condition(), message=what
    )


def dot_position(driver, level):
    """The (left, top) percentages of level `level`'s pad point."""
    style = driver.find_element(By.ID, f"pad-{level}-dot").get_attribute("style")
    found = re.fullmatch(r"left: ([-\d.]+)%; top: ([-\d.]+)%;", style.strip())
    assert found, style
    return [float(found.group(1)), float(found.group(2))]


def screenshot(driver, name):
    """Saves a screenshot to $EXPLORER_SCREENSHOTS (when set) for a person to look at."""
    directory = os.environ.get("EXPLORER_SCREENSHOTS")
    if directory:
        os.makedirs(directory, exist_ok=True)
        driver.save_screenshot(os.path.join(directory, name))


def test_a_person_explores_a_run(server, browser, explorer_run, bundled_digits):
    driver = browser
    driver.get(server.url)
    wait_for(driver, lambda: src(driver, "image").startswith("data:image/png"), "first image")
    wait_for(driver, lambda: src(driver, "strip-3").startswith("data:image/png"), "strips")
    # Nothing is fetched from another host: the page works offline.
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(name.startswith(server.url) for name in resources), resources
    # The levels carry what the evaluation measured; level 3 has sliders, levels 1-2 pads.
    assert "mostly thickness, ink" in driver.find_element(By.ID, "level-1-group").text
    assert "changes the class 65%" in driver.find_element(By.ID, "level-3-group").text
    assert driver.find_elements(By.ID, "pad-1") and driver.find_elements(By.ID, "pad-2")
    assert not driver.find_elements(By.ID, "pad-3")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#level-3-group [role=slider]")) == 3
    image = driver.find_element(By.ID, "image")
    assert image.size["width"] >= 64 and image.size["height"] >= 64
    # The pads' points sit at the first draw.
    start = code(driver)
    assert dot_position(driver, 2) == pytest.approx(
        [(start[1][0] + 3) / 6 * 100, (3 - start[1][1]) / 6 * 100], abs=0.02)
    screenshot(driver, "explorer-start.png")

    # Drag level 1's point: the image re-decodes while the button is still held.
    before_levels, before_image = code(driver), src(driver, "image")
    before_strips = [src(driver, f"strip-{level}") for level in (1, 2, 3)]
    pad = driver.find_element(By.ID, "pad-1")
    actions = ActionChains(driver, duration=20)
    actions.move_to_element_with_offset(pad, -50, 40).click_and_hold()
    for _ in range(6):
        actions.move_by_offset(6, -4)
    actions.perform()
    wait_for(driver, lambda: src(driver, "image") != before_image, "image while dragging")
    ActionChains(driver).release().perform()
    wait_for(driver, lambda: code(driver)[0] != before_levels[0], "level 1 moved")
    time.sleep(0.3)  # The last position of the drag is sent on release.
    after = code(driver)
    assert after[1:] == before_levels[1:], "dragging level 1 moved other levels"
    # The point is where the pointer let go: 14 px left and 16 px below the pad's centre.
    half = pad.size["width"] / 2
    assert after[0] == pytest.approx([-14 / half * 3, -16 / half * 3], abs=0.05), after[0]
    assert dot_position(driver, 1) == pytest.approx(
        [(after[0][0] + 3) / 6 * 100, (3 - after[0][1]) / 6 * 100], abs=0.02)
    # Every level's strip starts from the new point (the other levels' strips too).
    for level in (1, 2, 3):
        wait_for(driver, lambda: src(driver, f"strip-{level}") != before_strips[level - 1],
                 f"strip {level} updated")

    # Redraw level 3 only: a new seed is shown, the other levels stay.
    before = code(driver)
    driver.find_element(By.ID, "redraw-3").click()
    wait_for(driver, lambda: code(driver)[2] != before[2], "level 3 redrawn")
    assert code(driver)[:2] == before[:2]
    assert "Redrew level 3 with seed" in driver.find_element(By.ID, "action-message").text
    seed = driver.find_element(By.ID, "action-message").text.split()[-1].rstrip(".")
    assert driver.find_element(By.ID, "level-3-seed").text == f"from seed {seed}" != "from seed 5"
    assert driver.find_element(By.ID, "level-2-seed").text == "from seed 5"

    # Start from validation digit 4: the controls jump to its encoding.
    import tensorflow as tf

    model = tf.saved_model.load(str(explorer_run / "saved_model"))
    expected = model.encode(bundled_digits.val_images[4:5] / 255.0).numpy()[0]
    driver.find_element(By.ID, "digit-4").click()
    wait_for(driver, lambda: "validation digit 4" in driver.find_element(
        By.ID, "action-message").text, "digit encoded")
    wait_for(driver, lambda: np.allclose(np.concatenate(code(driver)), expected, atol=2e-4),
             "controls at the digit's encoding")
    assert dot_position(driver, 2) == pytest.approx(
        [(expected[2] + 3) / 6 * 100, (3 - expected[3]) / 6 * 100], abs=0.02)
    assert driver.find_element(By.ID, "level-1-seed").text == "from digit 4"
    handles = driver.find_elements(By.CSS_SELECTOR, "#level-3-group [role=slider]")
    values = [float(handle.get_attribute("aria-valuenow")) for handle in handles]
    assert np.allclose(values, expected[4:], atol=0.006), (values, expected)
    screenshot(driver, "explorer-digit.png")

    # Draw on the canvas: the drawing is encoded when the pen lifts.
    before = code(driver)
    canvas = driver.find_element(By.ID, "canvas")
    stroke = ActionChains(driver, duration=10).move_to_element_with_offset(canvas, -10, -40)
    stroke.click_and_hold()
    for dx, dy in ((10, 15), (5, 20), (0, 25), (-5, 20)):
        stroke.move_by_offset(dx, dy)
    stroke.release().perform()
    wait_for(driver, lambda: "the drawing" in driver.find_element(
        By.ID, "action-message").text, "drawing encoded")
    wait_for(driver, lambda: code(driver) != before, "controls at the drawing's code")
    assert src(driver, "picture-preview").startswith("data:image/png")

    # An upload that is not an image: a message on the page, and the page goes on working.
    not_an_image = driver.downloads / "notes.png"
    not_an_image.write_text("these are notes, not pixels")
    driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(not_an_image))
    wait_for(driver, lambda: "notes.png: not an image" in driver.find_element(
        By.ID, "action-message").text, "upload refused")

    # Download the current image.
    driver.find_element(By.ID, "download-button").click()
    target = driver.downloads / "ladder-vae.png"
    wait_for(driver, target.exists, "downloaded PNG")
    wait_for(driver, lambda: target.stat().st_size > 0, "downloaded PNG written")
    with Image.open(target) as picture:
        assert picture.format == "PNG" and picture.size[0] >= 64
        assert picture.size[0] % 28 == 0 and picture.size == (picture.size[0],) * 2


def post_levels(server, values):
    """Sends level values straight to the render callback, as a hand-made request would."""
    ids = [("level-1", "data"), ("level-2", "data")] + [
        (f"level-3-dim-{index}", "value") for index in range(3)
    ]
    outputs = ["image.src"] + [f"level-{i}-readout.children" for i in (1, 2, 3)] + [
        "code-json.value", "message.children"]
    body = {
        "output": ".." + "...".join(outputs) + "..",
        "outputs": [
            {"id": name.split(".")[0], "property": name.split(".")[1]} for name in outputs
        ],
        "inputs": [
            {"id": component, "property": prop, "value": value}
            for (component, prop), value in zip(ids, values)
        ],
        "changedPropIds": ["level-1.data"],
        "state": [],
    }
    request = urllib.request.Request(
        server.url + "_dash-update-component", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


@pytest.mark.parametrize(
    "values, message",
    [
        ([[1e9, 0], [0, 0], 0, 0, 0], "level 1: value 1000000000.0 is outside"),
        ([[0, 0], [0, 0], 0, 0, -3.5], "level 3: value -3.5 is outside"),
        ([[0, 0], [0, "x"], 0, 0, 0], "level 2: 'x' is not a number"),
        ([[0, 0, 0], [0, 0], 0, 0, 0], "level 1: expected 2 numbers"),
        ([[0, 0], [0, 0], None, 0, 0], "level 3: None is not a number"),
    ],
)
def test_out_of_range_values_sent_to_the_server_get_a_message(server, values, message):
    status, reply = post_levels(server, values)
    assert status == 200
    shown = json.dumps(reply["response"]["message"]["children"])
    assert message in shown, shown
    assert "image" not in reply["response"]  # the last good image stays
    status, reply = post_levels(server, [[0.5, 0], [0, 0], 0, 0, 0])  # and it keeps serving
    assert reply["response"]["image"]["src"].startswith("data:image/png")
    assert reply["response"]["message"]["children"] == ""


def test_a_malformed_request_gets_a_400_and_one_log_line(server):
    request = urllib.request.Request(
        server.url + "_dash-update-component", data=b'{"output": "no-such.thing"}',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "bad request" in refused.value.read().decode()
    assert urllib.request.urlopen(server.url, timeout=10).status == 200
    assert "refused a request to /_dash-update-component" in server.log.read_text()
