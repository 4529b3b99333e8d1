"""Time a whole `python evaluate.py RUN_DIR` on this machine, and print the figures.

    python benchmarks/bench_evaluate.py                      # an untrained default-size model
    python benchmarks/bench_evaluate.py runs/mnist --repeats 3

What it measures:
- the machine: CPU model, cores, load average before and after (other processes on a shared
  machine slow every figure down; the CPU seconds below are what the evaluation itself costs);
- `python evaluate.py RUN_DIR --out <temporary dir>` as a user runs it, in a fresh process each
  time: wall-clock seconds and CPU seconds (user + system of the child). The first run trains the
  classifier when it is not cached yet (`$LADDER_VAE_CACHE`, default ~/.cache/ladder_vae) and is
  reported apart; the other `--repeats` runs find it cached;
- the seconds of each stage (from the last run's eval/info.json), and the throughput of the
  model's forward passes.

Without RUN_DIR, a run directory with an untrained LadderVAE of the default size (the
default latent sizes and level input, 32 base filters) is made in a temporary directory:
evaluation costs the same for a trained and an untrained model. Its data is `--data-dir`
(default: ../shared/data/mnist beside the repository, 10,000 test digits, else the 1,000
bundled ones).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from machine import cpu_model  # benchmarks/machine.py, beside this script

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(REPOSITORY), "shared", "data", "mnist")
LIMIT_SECONDS = 60.0


def load_average():
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def make_run_dir(directory, data_dir):
    """An untrained default LadderVAE saved as train.py would, and a config.json naming its data."""
    sys.path.insert(0, REPOSITORY)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ladder_vae.config import TrainConfig, write_json
    from ladder_vae.model import LadderVAE

    config = TrainConfig(data_dir=data_dir)
    model = LadderVAE(**config.model_kwargs((28, 28, 1)))
    model.build()
    model.save(os.path.join(directory, "model.keras"))
    data = {"kind": "idx", "path": data_dir, "dataset": "mnist"}
    write_json(os.path.join(directory, "config.json"), {"config": config.to_dict(), "data": data})
    return directory


def run_evaluate(run_dir, out_dir, extra):
    """One `python evaluate.py`, in a fresh process: (wall seconds, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "evaluate.py"), run_dir, "--out", out_dir]
        + extra,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"bench_evaluate.py: evaluate.py failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run to evaluate")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="timed runs with the classifier " "cached (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="IDX data for the made-up run "
        "(default: ../shared/data/mnist, else the bundled digits)",
    )
    parser.add_argument(
        "--num-samples", type=int, default=10_000, help="prior samples (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_evaluate-") as scratch:
        run_dir = args.run_dir
        if run_dir is None:
            data_dir = args.data_dir or (
                DEFAULT_DATA_DIR if os.path.isdir(DEFAULT_DATA_DIR) else None
            )
            if data_dir is None:
                sys.path.insert(0, REPOSITORY)
                from ladder_vae.data import BUNDLED_MNIST_DIR

                data_dir = BUNDLED_MNIST_DIR
            run_dir = make_run_dir(scratch, os.path.abspath(data_dir))
        out_dir = os.path.join(scratch, "eval")
        extra = ["--num-samples", str(args.num_samples)]

        print("# evaluate.py benchmark\n")
        print(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores")
        print(f"- load average (1/5/15 min) before: {load_average()}")
        print(f"- run: {run_dir}")
        print(f"- prior samples: {args.num_samples}\n")

        rows = []
        wall, cpu = run_evaluate(run_dir, out_dir, extra)
        with open(os.path.join(out_dir, "info.json")) as file:
            info = json.load(file)
        trained = info["classifier"].get("trained_now", False)
        label = "run 1 (classifier trained)" if trained else "run 1 (classifier cached)"
        rows.append((label, wall, cpu, info["seconds"]))
        for repeat in range(args.repeats):
            wall, cpu = run_evaluate(run_dir, out_dir, extra)
            with open(os.path.join(out_dir, "info.json")) as file:
                info = json.load(file)
            rows.append((f"run {len(rows) + 1} (classifier cached)", wall, cpu, info["seconds"]))
        with open(os.path.join(out_dir, "metrics.json")) as file:
            metrics = json.load(file)

    print("| evaluation | wall s (whole process) | CPU s | wall s inside evaluate_run |")
    print("| --- | --- | --- | --- |")
    for label, wall, cpu, inside in rows:
        print(f"| {label} | {wall:.1f} | {cpu:.1f} | {inside:.1f} |")
    print(f"\nStages of the last run (s), load average after: {load_average()}\n")
    print("| stage | wall s | CPU s |")
    print("| --- | --- | --- |")
    for stage, wall, cpu in info["stages"]:
        print(f"| {stage} | {wall:.2f} | {cpu:.2f} |")
    stages = {stage: cpu for stage, _, cpu in info["stages"]}
    reconstruct = metrics["num_test_images"] / stages["encode and reconstruct the test split"]
    sample = metrics["num_samples"] / stages["sample from the prior"]
    print(
        f"\nThroughput per CPU second: encode + decode {reconstruct:.0f} img, "
        f"decode of prior samples {sample:.0f} img"
    )
    cached = [row for row in rows if "cached" in row[0]]
    if cached:
        best_wall = min(row[1] for row in cached)
        best_cpu = min(row[2] for row in cached)
        verdict = "under" if best_wall < LIMIT_SECONDS else "OVER"
        print(
            f"\nBest cached run: {best_wall:.1f} s wall ({verdict} the {LIMIT_SECONDS:.0f} s "
            f"target), {best_cpu:.1f} CPU s. On an idle machine the wall time is at most about "
            "the CPU seconds."
        )


if __name__ == "__main__":
    main()
