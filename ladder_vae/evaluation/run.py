"""One evaluation: a model and its data in; `eval/` with metrics.json, report.md and PNGs out."""

import contextlib
import logging
import os
import time

import numpy as np
import tensorflow as tf

from ladder_vae.evaluation import classifier as classifier_lib
from ladder_vae import run_dir as run_dir_lib
from ladder_vae import traversal
from ladder_vae.config import write_json
from ladder_vae.evaluation import figures, hierarchy, loading, metrics, report
from ladder_vae.evaluation.loading import EvaluationError

logger = logging.getLogger(__name__)

INFO_FILE = "info.json"
REPORT_FILE = "report.md"
SAMPLES_FILE = "samples.png"
HIERARCHY_FILE = "hierarchy.png"
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


def classifier_function(classifier):
    """A function from images [n, H, W, C] in [0, 1] to the classifier's (features [n, 128],
    probabilities [n, K]) as numpy arrays, in batches, through one traced graph."""
    feature_model = classifier_lib.feature_model(classifier)
    spec = tf.TensorSpec((None, *feature_model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: tuple(feature_model(x, training=False)), input_signature=[spec])

    def outputs(images, batch_size=1000):
        return loading.batched(graph, images, batch_size)

    return outputs


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
        classifier: a trained classifier (`classifier.build_classifier`) to use
            instead of the cached one (tests inject a tiny one); its test accuracy is measured
            here.
        classifier_dir: the classifier cache (default `$LADDER_VAE_CACHE` or
            `~/.cache/ladder_vae`).
        hierarchy_codes, hierarchy_redraws: base codes per level, and redraws of the level per
            base code, of the measure of what each level controls
            (`hierarchy.level_factor_shares`).

    Returns:
        (metrics, info): the dict written to metrics.json, and the one written to info.json
        (paths, data source, classifier, `stages`: [name, wall s, CPU s] in order, `seconds`).
    """
    if num_samples < 2:
        raise EvaluationError(f"--num-samples must be at least 2. Received: {num_samples}")
    if hierarchy_codes < 2 or hierarchy_redraws < 2:
        raise EvaluationError(
            "--hierarchy-codes and --hierarchy-redraws must be at least 2. Received: "
            f"{hierarchy_codes} and {hierarchy_redraws}"
        )
    timer = _Timer()
    with timer.stage("load model"):
        model_path, run_dir = loading.resolve(path, checkpoint)
        run_config = loading.read_run_config(run_dir)
        vae = loading.load_vae(model_path)
    with timer.stage("load data"):
        data = loading.load_eval_data(run_config, data_dir, tfds_data_dir, dataset)
    if tuple(data.image_shape) != tuple(vae.image_shape):
        raise EvaluationError(
            f"{model_path}: the model takes images of shape {vae.image_shape} but the data "
            f"({data.source.get('path', data.source.get('kind'))}) has {data.image_shape}; "
            "pass the run's --data-dir"
        )
    dataset_name = data.source.get("dataset") or dataset or "mnist"
    with timer.stage("classifier"):
        if classifier is None:
            classifier, classifier_info = classifier_lib.load_or_train(
                dataset_name,
                data.train_images,
                data.train_labels,
                data.val_images,
                data.val_labels,
                directory=classifier_dir,
            )
        else:
            classifier_info = {
                "path": "given in memory",
                "test_accuracy": classifier_lib.accuracy(
                    classifier, data.val_images, data.val_labels
                ),
            }
        classifier_outputs = classifier_function(classifier)

    out_dir = out_dir or run_dir_lib.RunDir(run_dir).eval
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise EvaluationError(f"{out_dir}: cannot create it ({error.strerror})") from None

    # One random stream per use, so that the prior samples are the same whether or not the model
    # has posterior scales to draw noise for (a .keras file and its SavedModel give equal samples).
    prior_rng, noise_rng, subset_rng = (np.random.default_rng([seed, use]) for use in range(3))
    test_images = data.val_images.astype(np.float32) / 255.0
    results = {}
    with timer.stage("encode and reconstruct the test split"):
        means, scales = vae.encode(test_images, batch_size)
        reconstructions = vae.decode(means, batch_size)
    with timer.stage("test metrics"):
        results["test_mse"] = metrics.mean_squared_error(test_images, reconstructions)
        results["test_ssim"] = metrics.mean_ssim(test_images, reconstructions)
        level_means = vae.split_levels(means)
        level_scales = vae.split_levels(scales) if scales is not None else [None] * len(level_means)
        sampled_codes = []
        for level, (level_mean, level_scale) in enumerate(zip(level_means, level_scales), 1):
            results[f"level_{level}_dims"] = int(level_mean.shape[1])
            results[f"level_{level}_active_dims"] = metrics.active_dimensions(level_mean)
            results[f"level_{level}_mean_spread"] = metrics.mean_spread(level_mean)
            results[f"level_{level}_mmd"] = metrics.prior_mmd(level_mean, seed=seed + level)
            if level_scale is not None:
                results[f"level_{level}_posterior_scale"] = float(np.mean(level_scale))
                noise = noise_rng.standard_normal(level_mean.shape).astype(np.float32)
                sampled_codes.append(level_mean + level_scale * noise)
        results["active_dims"] = sum(
            results[f"level_{level}_active_dims"] for level in range(1, len(level_means) + 1)
        )
        results["latent_mmd"] = sum(
            results[f"level_{level}_mmd"] for level in range(1, len(level_means) + 1)
        )
        results["latent_mmd_joint"] = metrics.prior_mmd(means, seed=seed)
        if sampled_codes:
            # The model's own MMD term: per level or over the whole code, as it was trained.
            if vae.mmd_per_level:
                results["latent_mmd_sampled"] = sum(
                    metrics.prior_mmd(codes, seed=seed + 100 + level)
                    for level, codes in enumerate(sampled_codes, 1)
                )
            else:
                results["latent_mmd_sampled"] = metrics.prior_mmd(
                    np.concatenate(sampled_codes, axis=1), seed=seed + 100
                )

    with timer.stage("sample from the prior"):
        prior_codes = prior_rng.standard_normal((num_samples, sum(vae.latent_dims))).astype(
            np.float32
        )
        samples = vae.decode(prior_codes, batch_size)

    with timer.stage("classifier features"):
        num_train = min(num_samples, len(data.train_images))
        train_subset = subset_rng.choice(len(data.train_images), num_train, replace=False)
        train_images = data.train_images[np.sort(train_subset)].astype(np.float32) / 255.0
        test_features, test_probabilities = classifier_outputs(test_images)
        train_features, _ = classifier_outputs(train_images)
        sample_features, sample_probabilities = classifier_outputs(samples)
        reconstruction_features, _ = classifier_outputs(reconstructions)

    with timer.stage("sample metrics"):
        test_statistics = metrics.gaussian_statistics(test_features)
        reference_sharpness = metrics.sharpness(test_images)
        results["test_reconstruction_frechet_distance"] = metrics.frechet_distance(
            metrics.gaussian_statistics(reconstruction_features), test_statistics
        )
        results["test_reconstruction_sharpness_ratio"] = (
            metrics.sharpness(reconstructions) / reference_sharpness
        )
        results["sample_frechet_distance"] = metrics.frechet_distance(
            metrics.gaussian_statistics(sample_features), test_statistics
        )
        results["sample_inception_score"] = metrics.inception_score(sample_probabilities)
        results["sample_class_coverage"] = metrics.class_coverage(sample_probabilities)
        results["sample_class_entropy"] = metrics.class_entropy(sample_probabilities)
        results["sample_sharpness"] = metrics.sharpness(samples)
        results["sample_sharpness_ratio"] = results["sample_sharpness"] / reference_sharpness
        results["reference_frechet_distance_train_test"] = metrics.frechet_distance(
            metrics.gaussian_statistics(train_features), test_statistics
        )
        results["reference_inception_score_test"] = metrics.inception_score(test_probabilities)
        results["reference_class_entropy_test"] = metrics.class_entropy(test_probabilities)
        results["reference_sharpness_test"] = reference_sharpness
        results["classifier_test_accuracy"] = float(classifier_info["test_accuracy"])
        results["num_test_images"] = int(len(test_images))
        results["num_samples"] = int(num_samples)

    with timer.stage("what each level controls"):
        level_factors = hierarchy.level_factor_shares(
            lambda codes: vae.decode(codes, batch_size),
            vae.latent_dims,
            lambda images: np.argmax(classifier_outputs(images, batch_size)[1], axis=1),
            num_codes=hierarchy_codes,
            redraws=hierarchy_redraws,
            seed=seed,
            batch_size=batch_size,
        )
        results.update(level_factors.metrics())

    with timer.stage("figures"):
        written = [(SAMPLES_FILE, f"{min(100, num_samples)} samples from the prior")]
        figures.sample_grid(samples[:100], os.path.join(out_dir, SAMPLES_FILE))
        written.append(("reconstructions.png", "test digits and their reconstructions"))
        figures.reconstruction_pairs(
            test_images[:48], reconstructions[:48], os.path.join(out_dir, written[-1][0])
        )
        for level in range(len(vae.latent_dims)):
            codes, num_columns = traversal.level_traversal_codes(vae.latent_dims, level)
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
        written.append((HIERARCHY_FILE, "what each level controls"))
        figures.hierarchy_heatmap(
            level_factors.shares,
            level_factors.attributes,
            os.path.join(out_dir, HIERARCHY_FILE),
            level_factors.class_change_rates,
            level_factors.hierarchy_summary,
        )
        history = loading.read_history(run_dir)
        if history is not None:
            figures.loss_curves(history, os.path.join(out_dir, "loss_curves.png"))
            written.append(("loss_curves.png", "loss curves (history.csv)"))

    results = {key: results[key] for key in sorted(results)}
    info = {
        "run_dir": run_dir,
        "model": model_path,
        "model_kind": "saved_model" if isinstance(vae, loading.SavedModelVAE) else "keras",
        "latent_dims": list(vae.latent_dims),
        "data": _describe_data(data.source),
        "data_source": data.source,
        "config": run_config.get("config", {}),
        "classifier": classifier_info,
        "epochs_trained": None if history is None else len(next(iter(history.values()))),
        "seed": seed,
        "hierarchy": {
            "num_codes": hierarchy_codes,
            "redraws": hierarchy_redraws,
            "independent_class_difference": level_factors.independent_class_difference,
            "attributes": list(level_factors.attributes),
            "shares": [
                [value if np.isfinite(value) else None for value in row]
                for row in level_factors.shares.tolist()
            ],
        },
        "figures": [name for name, _ in written],
        "stages": timer.seconds,
    }
    info["seconds"] = round(timer.total(), 3)
    write_json(os.path.join(out_dir, run_dir_lib.METRICS_FILE), results)
    write_json(os.path.join(out_dir, INFO_FILE), info)
    report.write_report(os.path.join(out_dir, REPORT_FILE), results, info, written)
    logger.info("Evaluation written to %s (%.1f s)", out_dir, info["seconds"])
    return results, info


def _describe_data(source):
    kind = source.get("kind", "?")
    where = source.get("path") or source.get("name") or ""
    return (
        f"{source.get('dataset', '?')} ({kind} {where}), "
        f"{source.get('train_examples', '?')} training and "
        f"{source.get('validation_examples', '?')} test images ({source.get('validation', '?')})"
    )
