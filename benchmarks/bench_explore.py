"""Latency of the latent explorer: from a control change to the new image on the page.

    python benchmarks/bench_explore.py RUN_DIR                 # 200 changes of level 1
    python benchmarks/bench_explore.py RUN_DIR --changes 500 --level 3

Starts `python explore.py RUN_DIR` on a free port, opens it in headless Chromium (Debian's
`chromium` and `chromium-driver`, as the tests use) and, inside the page, sets level `--level`'s
values `--changes` times, one after another, as the control does while it is dragged: each time
it notes `performance.now()`, writes the new value into the page and waits until the image
element shows a new picture. So each figure is the whole path a user waits for: the page's
request, the server decoding the image, PNG encoding, the
answer, and the page drawing it. Then the image's request alone, from Python, without a
browser (the HTTP server's share). The traversal strips are a second request, sent at the same
time, that competes for the CPU but is not waited for. Then it times the same work on the
server alone, in this process (`Explorer.image`, `Explorer.strips`), to separate the server's
share from the browser's and the HTTP's.

Prints the machine (CPU model, cores, load average before and after: other processes on a
shared machine slow every figure down), then the median, p95 and max in milliseconds.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from machine import cpu_model  # benchmarks/machine.py, beside this script

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_P95_MS = 100.0

# Runs inside the page: `changes` sequential updates of one level, each timed until the image
# element's `src` changes. Selenium's async script calls `done` with the list of milliseconds.
MEASURE_JS = """
const [target, prop, dim, changes, done] = arguments;
const image = document.getElementById('image');
const durations = [];
function once(step) {
  return new Promise((resolve, reject) => {
    const before = image.src;
    const start = performance.now();
    const observer = new MutationObserver(() => {
      if (image.src !== before) { observer.disconnect(); resolve(performance.now() - start); }
    });
    observer.observe(image, {attributes: true, attributeFilter: ['src']});
    // A point on a circle of radius 2: every step is a new value inside [-3, 3].
    const angle = 0.7 * step;
    const values = Array.from({length: dim}, (_, i) => +(2 * Math.cos(angle + i)).toFixed(3));
    window.dash_clientside.set_props(target, {[prop]: prop === 'data' ? values : values[0]});
    setTimeout(() => reject(new Error('no new image after 10 s')), 10000);
  });
}
(async () => {
  try {
    for (let step = 0; step < changes; step++) { durations.push(await once(step)); }
    done(durations);
  } catch (error) { done(String(error)); }
})();
"""


def load_average():
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def summary(milliseconds):
    values = np.asarray(milliseconds, np.float64)
    return (f"median {np.median(values):6.1f} ms   p95 {np.percentile(values, 95):6.1f} ms   "
            f"max {values.max():6.1f} ms   (n = {len(values)})")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory or SavedModel")
    parser.add_argument("--changes", type=int, default=200, help="changes timed (default 200)")
    parser.add_argument("--level", type=int, default=1, help="level changed (default 1)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed changes first")
    return parser.parse_args(argv)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def browser_latencies(url, dims, level, changes, warmup):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    service = webdriver.ChromeService(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_script_timeout(changes * 10 + 60)
        driver.get(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            images = driver.find_elements("id", "image")
            if images and (images[0].get_attribute("src") or "").startswith("data:"):
                break
            time.sleep(0.1)
        dim = dims[level - 1]
        target, prop = (f"level-{level}", "data") if dim == 2 else (f"level-{level}-dim-0",
                                                                    "value")
        driver.execute_async_script(MEASURE_JS, target, prop, dim, warmup)
        result = driver.execute_async_script(MEASURE_JS, target, prop, dim, changes)
    finally:
        driver.quit()
    if isinstance(result, str):
        raise SystemExit(f"bench_explore.py: error: {result}")
    return result


def http_latencies(url, dims, changes):
    """Milliseconds of the image callback's HTTP request alone, sent as the page sends it."""
    import urllib.request

    props = [(f"level-{level}", "data") if dim == 2 else None
             for level, dim in enumerate(dims, start=1)]
    inputs = []
    for level, (dim, pair) in enumerate(zip(dims, props), start=1):
        if pair:
            inputs.append({"id": pair[0], "property": "data", "value": [0.0, 0.0]})
        else:
            inputs += [{"id": f"level-{level}-dim-{index}", "property": "value", "value": 0.0}
                       for index in range(dim)]
    outputs = (["image.src"] + [f"level-{level}-readout.children" for level in
                                range(1, len(dims) + 1)] + ["code-json.value", "message.children"])
    durations = []
    for step in range(changes + 10):
        inputs[0]["value"] = ([round(2 * np.cos(0.7 * step), 3), 0.5]
                              if dims[0] == 2 else round(2 * np.cos(0.7 * step), 3))
        body = json.dumps({
            "output": ".." + "...".join(outputs) + "..",
            "outputs": [{"id": name.split(".")[0], "property": name.split(".")[1]}
                        for name in outputs],
            "inputs": inputs, "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
            "state": [],
        }).encode()
        request = urllib.request.Request(url + "_dash-update-component", data=body,
                                         headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        durations.append((time.perf_counter() - start) * 1000)
    return durations[10:]


def server_latencies(run_dir, changes):
    sys.path.insert(0, REPOSITORY)
    from ladder_vae.explorer.exported import ExportedModel, find_saved_model
    from ladder_vae.explorer.session import Explorer

    saved_model, _ = find_saved_model(run_dir)
    explorer = Explorer(ExportedModel(saved_model), np.zeros((0, 28, 28, 1), np.uint8))
    durations = []
    for step in range(changes + 10):
        levels = explorer.draw(step)
        start = time.perf_counter()
        explorer.image(levels)
        explorer.code_json(levels)
        durations.append((time.perf_counter() - start) * 1000)
    strip_durations = []
    for step in range(changes + 10):
        levels = explorer.draw(step)
        start = time.perf_counter()
        explorer.strips(levels)
        strip_durations.append((time.perf_counter() - start) * 1000)
    return explorer.latent_dims, durations[10:], strip_durations[10:]


def main(argv=None):
    args = parse_args(argv)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_average()}")
    dims, server, strips = server_latencies(args.run_dir, args.changes)
    if not 1 <= args.level <= len(dims):
        raise SystemExit(f"bench_explore.py: error: --level {args.level}: the model has "
                         f"levels 1 to {len(dims)}")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as directory:
        log_path = os.path.join(directory, "explore.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, os.path.join(REPOSITORY, "explore.py"), args.run_dir,
                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 120
            while f"at {url}" not in open(log_path).read():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench_explore.py: error: explore.py did not start:\n"
                                     + open(log_path).read())
                time.sleep(0.2)
            page = browser_latencies(url, dims, args.level, args.changes, args.warmup)
            http = http_latencies(url, dims, args.changes)
        finally:
            process.terminate()
            process.wait(10)
    print(f"model: levels {list(dims)}; each change decodes the image (one request) and "
          f"{9 * sum(dims)} strip images (a second request, computed once changes rest 0.1 s)")
    print(f"change of level {args.level} -> new image on the page:  {summary(page)}")
    print(f"HTTP request of the image alone, no page:  {summary(http)}")
    print(f"server alone, image (decode, PNG, JSON):   {summary(server)}")
    print(f"server alone, strips ({9 * sum(dims):3d} decodes, PNGs): {summary(strips)}")
    print(f"target p95 < {TARGET_P95_MS:.0f} ms: "
          f"{'met' if np.percentile(page, 95) < TARGET_P95_MS else 'NOT met'}")
    print(f"load average after: {load_average()}")
    print(json.dumps({"page_ms": {"median": float(np.median(page)),
                                  "p95": float(np.percentile(page, 95))},
                      "server_ms": {"median": float(np.median(server)),
                                    "p95": float(np.percentile(server, 95))}}))


if __name__ == "__main__":
    main()
