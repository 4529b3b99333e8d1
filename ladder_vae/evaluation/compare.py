"""Several evaluated runs side by side: a markdown table and a figure (`evaluate.py --compare`)."""

import datetime
import json
import logging
import os

import numpy as np
from PIL import Image

from ladder_vae.config import write_json
from ladder_vae.run_dir import EVAL_DIR, METRICS_FILE
from ladder_vae.evaluation import figures, hierarchy, loading, metric_keys, report
from ladder_vae.evaluation.loading import EvaluationError
from ladder_vae.evaluation.run import (
    DEFAULT_NUM_SAMPLES,
    HIERARCHY_FILE,
    INFO_FILE,
    SAMPLES_FILE,
    evaluate_run,
)

logger = logging.getLogger(__name__)

TABLE_FILE = "comparison.md"
FIGURE_FILE = "comparison.png"
JSON_FILE = "comparison.json"
# Bar charts of the comparison figure: (key, title, reference key drawn as a dotted line).
PANELS = (
    ("test_mse", "test MSE (lower)", None),
    ("test_ssim", "test SSIM (higher)", None),
    (
        "sample_frechet_distance",
        "sample Frechet distance\n(lower; dotted: real floor)",
        "reference_frechet_distance_train_test",
    ),
    (
        "sample_inception_score",
        "sample Inception Score\n(higher; dotted: test digits)",
        "reference_inception_score_test",
    ),
    ("sample_sharpness_ratio", "sample sharpness / real\n(near 1)", None),
    ("latent_mmd_joint", "MMD$^2$ of posterior means (all\nlevels) to the prior (lower)", None),
    (
        "hierarchy_summary",
        "hierarchy summary (higher; 1 =\nidentity on the top level only)",
        None,
    ),
)
# Run settings shown in the table when they differ between the runs.
CONFIG_KEYS = (
    "ssim_weight",
    "mmd_weight",
    "latent_dims",
    "base_filters",
    "reconstruction_sigma",
    "mmd_per_level",
    "epochs",
    "batch_size",
    "learning_rate",
    "seed",
)


def default_out_dir(now=None):
    """`runs/compare-<timestamp>`, relative to the working directory (like train.py's runs)."""
    now = now or datetime.datetime.now()
    return os.path.join("runs", now.strftime("compare-%Y%m%d-%H%M%S"))


def _up_to_date(eval_dir, model_path, num_samples, seed, hierarchy_codes, hierarchy_redraws):
    """Whether `eval_dir` holds an evaluation of `model_path`, newer than the model file, with
    the same number of samples, seed and hierarchy measure (an evaluation made before
    `evaluate.py` measured what each level controls has none: stale)."""
    metrics_path = os.path.join(eval_dir, METRICS_FILE)
    info_path = os.path.join(eval_dir, INFO_FILE)
    if not (os.path.isfile(metrics_path) and os.path.isfile(info_path)):
        return False
    try:
        with open(info_path) as file:
            info = json.load(file)
        with open(metrics_path) as file:
            metrics = json.load(file)
    except (OSError, ValueError):
        return False
    hierarchy = info.get("hierarchy") or {}
    return (
        info.get("model") == model_path
        and info.get("seed") == seed
        and hierarchy.get("num_codes") == hierarchy_codes
        and hierarchy.get("redraws") == hierarchy_redraws
        and metrics.get("num_samples") == num_samples
        and os.path.getmtime(metrics_path) >= os.path.getmtime(model_path)
    )


def _labels(run_dirs):
    """Short, distinct names: the run directories' base names, with parents where they clash."""
    labels = [os.path.basename(os.path.normpath(path)) for path in run_dirs]
    for index, label in enumerate(labels):
        if labels.count(label) > 1:
            labels[index] = os.path.join(
                os.path.basename(os.path.dirname(os.path.normpath(run_dirs[index]))), label
            )
    return labels


def compare_runs(paths, out_dir=None, force=False, checkpoint="auto", **evaluate_kwargs):
    """Evaluates each run whose `eval/` is missing or stale, then compares them.

    An `eval/` is reused when it evaluated the same model file, is newer than it, and used the
    same number of samples and seed on the run's own data.

    Writes to `out_dir` (default `default_out_dir()`): `comparison.md` (the table),
    `comparison.json` ({label: metrics}) and `comparison.png` (bar charts and sample grids).

    Args:
        paths: two or more run directories (or model files, as `evaluate_run` takes).
        force: evaluate every run again even where its `eval/` is up to date.
        evaluate_kwargs: passed to `evaluate_run` (data overrides, num_samples, seed...).

    Returns:
        (table, out_dir): the markdown table and where the files went.
    """
    if len(paths) < 2:
        raise EvaluationError(f"--compare needs at least two runs. Received: {list(paths)}")
    resolved = [loading.resolve(path, checkpoint) for path in paths]
    # Other data than the run's own: the saved evaluations do not apply.
    force = force or any(
        evaluate_kwargs.get(key) for key in ("data_dir", "tfds_data_dir", "dataset")
    )
    num_samples = evaluate_kwargs.get("num_samples", DEFAULT_NUM_SAMPLES)
    seed = evaluate_kwargs.get("seed", 0)
    hierarchy_settings = (
        evaluate_kwargs.get("hierarchy_codes", hierarchy.DEFAULT_NUM_CODES),
        evaluate_kwargs.get("hierarchy_redraws", hierarchy.DEFAULT_REDRAWS),
    )
    runs = []
    for (model_path, run_dir), path in zip(resolved, paths):
        eval_dir = os.path.join(run_dir, EVAL_DIR)
        if force or not _up_to_date(eval_dir, model_path, num_samples, seed, *hierarchy_settings):
            logger.info("Evaluating %s", path)
            metrics, info = evaluate_run(model_path, checkpoint=checkpoint, **evaluate_kwargs)
        else:
            logger.info("Using the evaluation in %s", eval_dir)
            with open(os.path.join(eval_dir, METRICS_FILE)) as file:
                metrics = json.load(file)
            with open(os.path.join(eval_dir, INFO_FILE)) as file:
                info = json.load(file)
        runs.append((run_dir, metrics, info))

    labels = _labels([run_dir for run_dir, _, _ in runs])
    table = comparison_table(
        labels, [metrics for _, metrics, _ in runs], [info for *_, info in runs]
    )
    out_dir = out_dir or default_out_dir()
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise EvaluationError(f"--out {out_dir}: cannot create it ({error.strerror})") from None
    with open(os.path.join(out_dir, TABLE_FILE), "w") as file:
        file.write(f"# Comparison\n\n{table}\n\nFigure: ![comparison]({FIGURE_FILE})\n")
    write_json(
        os.path.join(out_dir, JSON_FILE),
        {
            label: {"run_dir": run_dir, "metrics": metrics}
            for label, (run_dir, metrics, _) in zip(labels, runs)
        },
    )

    def image_of(run_dir, name):
        path = os.path.join(run_dir, EVAL_DIR, name)
        return np.asarray(Image.open(path)) if os.path.isfile(path) else None

    figures.comparison(
        labels,
        [metrics for _, metrics, _ in runs],
        PANELS,
        [image_of(run_dir, SAMPLES_FILE) for run_dir, _, _ in runs],
        os.path.join(out_dir, FIGURE_FILE),
        hierarchy_images=[image_of(run_dir, HIERARCHY_FILE) for run_dir, _, _ in runs],
    )
    return table, out_dir


def comparison_table(labels, metrics_list, infos):
    """Markdown: one column per run; rows for differing settings, then the metrics."""
    rows = []
    configs = [info.get("config") or {} for info in infos]
    for key in CONFIG_KEYS:
        values = [config.get(key) for config in configs]
        if any(value != values[0] for value in values):
            rows.append(
                [f"config: `{key}`"] + ["?" if value is None else str(value) for value in values]
            )
    epochs = [info.get("epochs_trained") for info in infos]
    if any(value is not None for value in epochs):
        rows.append(["epochs trained"] + ["?" if value is None else str(value) for value in epochs])
    keys = [key for key in metric_keys.HEADLINE if any(key in metrics for metrics in metrics_list)]
    levels = sorted(
        {key for metrics in metrics_list for key in metrics if key.startswith("level_")},
        key=lambda key: (int(key.split("_")[1]), key),
    )
    for key in keys + [key for key in levels if not key.endswith("_dims") or "active" in key]:
        better = metric_keys.describe(key)[0]
        arrow = {"lower": " (lower)", "higher": " (higher)", "1": " (near 1)"}.get(better, "")
        rows.append(
            [f"`{key}`{arrow}"]
            + [
                report.format_value(metrics[key]) if key in metrics else "n/a"
                for metrics in metrics_list
            ]
        )
    return report.markdown_table(["metric"] + labels, rows)
