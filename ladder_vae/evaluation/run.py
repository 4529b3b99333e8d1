"""One evaluation: a model and its data in; `eval/` with metrics.json, report.md and PNGs out.

`evaluate_run` loads, then runs the stages in order, each timed for info.json: the test split
(`test_split`), samples from the prior and the classifier's view of them (`sample_quality`),
what each level controls (`hierarchy`), and the figures.
"""

import contextlib
import functools
import logging
import os
import time

import numpy as np

from ladder_vae import run_dir as run_dir_lib
from ladder_vae import traversal
from ladder_vae.config import write_json
from ladder_vae.evaluation import (
    figures,
    hierarchy,
    loading,
    numpy_vae,
    report,
    sample_quality,
    test_split,
)
from ladder_vae.evaluation.loading import EvaluationError

logger = logging.getLogger(__name__)

INFO_FILE = "info.json"
REPORT_FILE = "report.md"
SAMPLES_FILE = "samples.png"
RECONSTRUCTIONS_FILE = "reconstructions.png"
HIERARCHY_FILE = "hierarchy.png"
LOSS_CURVES_FILE = "loss_curves.png"
DEFAULT_NUM_SAMPLES = 10_000
DEFAULT_BATCH_SIZE = 500


class _Timer:
    """Wall-clock and CPU seconds of each named stage, in order, for info.json and the benchmark.

    CPU seconds (all threads of this process) are what a stage costs whatever else the machine
    runs; wall-clock seconds grow with the load of other processes.
    """

    def __init__(self):
        self.seconds = []
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        yield
        # Not reached when the stage raises: a failed stage has no duration worth logging.
        wall = round(time.perf_counter() - begin, 3)
        cpu = round(time.process_time() - begin_cpu, 3)
        self.seconds.append([name, wall, cpu])
        logger.info("%s: %.1f s (%.1f CPU s)", name, wall, cpu)

    def total(self):
        return time.perf_counter() - self.start


def evaluate_run(
    path,
    out_dir=None,
    data_dir=None,
    tfds_data_dir=None,
    dataset=None,
    checkpoint="auto",
    num_samples=DEFAULT_NUM_SAMPLES,
    batch_size=DEFAULT_BATCH_SIZE,
    seed=0,
    classifier=None,
    classifier_dir=None,
    hierarchy_codes=hierarchy.DEFAULT_NUM_CODES,
    hierarchy_redraws=hierarchy.DEFAULT_REDRAWS,
):
    """Evaluates a run directory, `.keras` file or SavedModel, and writes its `eval/` directory.

    Args:
        path: what to evaluate (see `loading.resolve`).
        out_dir: where to write; default `<run dir>/eval`.
        data_dir, tfds_data_dir, dataset: override the data recorded in the run's config.json.
        checkpoint: `auto`, `final`, `best` or `saved_model` (for a run directory).
        num_samples: prior samples for the sample metrics; also the number of real training
            digits of the reference distance (at most the training set).
        batch_size: images per forward pass.
        seed: seed of the prior samples, the posterior noise and the training-digit subset.
        classifier: a trained classifier (`classifier.build_classifier`) to use instead of the
            cached one (tests inject a tiny one); its test accuracy is measured here.
        classifier_dir: the classifier cache (default `$LADDER_VAE_CACHE` or
            `~/.cache/ladder_vae`).
        hierarchy_codes, hierarchy_redraws: base codes per level, and redraws of the level per
            base code, of the measure of what each level controls
            (`hierarchy.level_factor_shares`).

    Returns:
        (metrics, info): the dict written to metrics.json, and the one written to info.json
        (paths, data source, classifier, `stages`: [name, wall s, CPU s] in order, `seconds`).
    """
    _check_counts(num_samples, hierarchy_codes, hierarchy_redraws)
    timer = _Timer()
    with timer.stage("load model"):
        model_path, run_dir = loading.resolve(path, checkpoint)
        run_config = loading.read_run_config(run_dir)
        vae = numpy_vae.load_vae(model_path)
    with timer.stage("load data"):
        data = loading.load_eval_data(run_config, data_dir, tfds_data_dir, dataset)
    _check_image_shape(model_path, vae, data)
    with timer.stage("classifier"):
        dataset_name = data.source.get("dataset") or dataset or "mnist"
        apply_classifier, classifier_info = sample_quality.ready_classifier(
            classifier, data, dataset_name, classifier_dir
        )
    out_dir = _made_directory(out_dir or run_dir_lib.RunDir(run_dir).eval)

    # One random stream per use, so that the prior samples are the same whether or not the model
    # has posterior scales to draw noise for (a .keras file and its SavedModel give equal samples).
    prior_rng, noise_rng, subset_rng = (np.random.default_rng([seed, use]) for use in range(3))
    test_images = data.val_images.astype(np.float32) / 255.0
    with timer.stage("encode and reconstruct the test split"):
        means, scales = vae.encode(test_images, batch_size)
        reconstructions = vae.decode(means, batch_size)
    with timer.stage("test metrics"):
        results = test_split.reconstruction_metrics(test_images, reconstructions)
        results.update(test_split.latent_metrics(vae, means, scales, noise_rng, seed))
    with timer.stage("sample from the prior"):
        samples = sample_quality.prior_samples(vae, num_samples, prior_rng, batch_size)
    with timer.stage("classifier features"):
        train_images = sample_quality.reference_images(data.train_images, num_samples, subset_rng)
        outputs = sample_quality.classifier_outputs(
            apply_classifier, test_images, train_images, samples, reconstructions
        )
    with timer.stage("sample metrics"):
        results.update(
            sample_quality.sample_metrics(outputs, test_images, samples, reconstructions)
        )
        results["classifier_test_accuracy"] = float(classifier_info["test_accuracy"])
        results["num_test_images"] = int(len(test_images))
        results["num_samples"] = int(num_samples)
    with timer.stage("what each level controls"):
        measure_levels = functools.partial(
            hierarchy.level_factor_shares,
            lambda codes: vae.decode(codes, batch_size),
            vae.latent_dims,
            lambda images: np.argmax(apply_classifier(images, batch_size)[1], axis=1),
            num_codes=hierarchy_codes,
            redraws=hierarchy_redraws,
            seed=seed,
            batch_size=batch_size,
            confidence=lambda images: np.max(apply_classifier(images, batch_size)[1], axis=1),
        )
        level_factors = measure_levels()
        results.update(level_factors.metrics())
        at_data_top = measure_levels(top_codes=vae.split_levels(means)[-1])
        results.update(_data_top_metrics(at_data_top))
    with timer.stage("figures"):
        history = loading.read_history(run_dir)
        written = [
            _sample_figure(out_dir, samples),
            _reconstruction_figure(out_dir, test_images, reconstructions),
            *_traversal_figures(out_dir, vae, batch_size, _training_seed(run_config)),
            _hierarchy_figure(out_dir, level_factors),
        ]
        if history is not None:
            written.append(_loss_figure(out_dir, history))

    results = {key: results[key] for key in sorted(results)}
    info = {
        "run_dir": run_dir,
        "model": model_path,
        "model_kind": "saved_model" if isinstance(vae, numpy_vae.SavedModelVAE) else "keras",
        "latent_dims": list(vae.latent_dims),
        "data": _describe_data(data.source),
        "data_source": data.source,
        "config": run_config.get("config", {}),
        "classifier": classifier_info,
        "epochs_trained": None if history is None else len(next(iter(history.values()))),
        "seed": seed,
        "hierarchy": _hierarchy_info(level_factors),
        "figures": [name for name, _ in written],
        "stages": timer.seconds,
    }
    info["seconds"] = round(timer.total(), 3)
    write_json(os.path.join(out_dir, run_dir_lib.METRICS_FILE), results)
    write_json(os.path.join(out_dir, INFO_FILE), info)
    report.write_report(os.path.join(out_dir, REPORT_FILE), results, info, written)
    logger.info("Evaluation written to %s (%.1f s)", out_dir, info["seconds"])
    return results, info


def _check_counts(num_samples, hierarchy_codes, hierarchy_redraws):
    if num_samples < 2:
        raise EvaluationError(f"--num-samples must be at least 2. Received: {num_samples}")
    if hierarchy_codes < 2 or hierarchy_redraws < 2:
        raise EvaluationError(
            "--hierarchy-codes and --hierarchy-redraws must be at least 2. Received: "
            f"{hierarchy_codes} and {hierarchy_redraws}"
        )


def _check_image_shape(model_path, vae, data):
    if tuple(data.image_shape) != tuple(vae.image_shape):
        raise EvaluationError(
            f"{model_path}: the model takes images of shape {vae.image_shape} but the data "
            f"({data.source.get('path', data.source.get('kind'))}) has {data.image_shape}; "
            "pass the run's --data-dir"
        )


def _made_directory(out_dir):
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise EvaluationError(f"{out_dir}: cannot create it ({error.strerror})") from None
    return out_dir


# The figures: each writes its file and returns (file name, caption) for report.md.


def _sample_figure(out_dir, samples):
    shown = samples[:100]
    figures.sample_grid(shown, os.path.join(out_dir, SAMPLES_FILE))
    return SAMPLES_FILE, f"{len(shown)} samples from the prior"


def _reconstruction_figure(out_dir, test_images, reconstructions):
    figures.reconstruction_pairs(
        test_images[:48], reconstructions[:48], os.path.join(out_dir, RECONSTRUCTIONS_FILE)
    )
    return RECONSTRUCTIONS_FILE, "test digits and their reconstructions"


def _training_seed(run_config):
    """The run's `--seed`, which drew its figures' codes (0 without a record, as by default)."""
    seed = (run_config.get("config") or {}).get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0


def _traversal_figures(out_dir, vae, batch_size, seed):
    """The training run's traversal grids of `vae` (`ladder_vae.traversal`), with titles."""
    written = []
    for level in range(len(vae.latent_dims)):
        codes, num_columns = traversal.level_traversal_codes(vae.latent_dims, level, seed)
        name = f"traversal_level_{level + 1}.png"
        figures.traversal(
            vae.decode(codes, batch_size),
            level,
            vae.latent_dims,
            os.path.join(out_dir, name),
            num_columns,
            traversal.SPAN,
        )
        written.append((name, f"traversal of level {level + 1}"))
    return written


def _hierarchy_figure(out_dir, level_factors):
    figures.hierarchy_heatmap(
        level_factors.shares,
        level_factors.attributes,
        os.path.join(out_dir, HIERARCHY_FILE),
        level_factors.class_change_rates,
        level_factors.hierarchy_summary,
    )
    return HIERARCHY_FILE, "what each level controls"


def _loss_figure(out_dir, history):
    figures.loss_curves(history, os.path.join(out_dir, LOSS_CURVES_FILE))
    return LOSS_CURVES_FILE, "loss curves (history.csv)"


def _data_top_metrics(level_factors):
    """The class change rates of the measure whose base codes take their top level from the
    test digits (`level_{i}_data_top_class_change_rate`, `data_top_clear_base_fraction`)."""
    results = {
        f"level_{level}_data_top_class_change_rate": float(rate)
        for level, rate in enumerate(level_factors.class_change_rates, start=1)
    }
    if level_factors.clear_base_fraction is not None:
        results["data_top_clear_base_fraction"] = level_factors.clear_base_fraction
    return results


def _hierarchy_info(level_factors):
    """What info.json records of the measure of what each level controls (JSON: NaN as null)."""
    return {
        "num_codes": level_factors.num_codes,
        "redraws": level_factors.redraws,
        "independent_class_difference": level_factors.independent_class_difference,
        "attributes": list(level_factors.attributes),
        "shares": [
            [value if np.isfinite(value) else None for value in row]
            for row in level_factors.shares.tolist()
        ],
    }


def _describe_data(source):
    kind = source.get("kind", "?")
    where = source.get("path") or source.get("name") or ""
    return (
        f"{source.get('dataset', '?')} ({kind} {where}), "
        f"{source.get('train_examples', '?')} training and "
        f"{source.get('validation_examples', '?')} test images ({source.get('validation', '?')})"
    )
